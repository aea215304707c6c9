/*
 * blocks/video_viz.c — visualizations that keep state across the frames
 * of a video (trace_visualization v1, heatmap_visualization v1) and the
 * compositing ones (grid_visualization v1, icon_visualization v1).
 *
 * - trace: sv.TraceAnnotator — each tracker's anchor points of the last
 *   trace_length frames that had detections (sv's Trace buffer, pending
 *   ids -1 left out), drawn as an open polyline at int32 coordinates.
 * - heatmap: sv.HeatMapAnnotator — a float heat mask accumulating a filled
 *   circle of `radius` at each anchor, mapped to hue
 *   low_hue - heat / max * (low_hue - top_hue) (truncated to uint8),
 *   box-blurred by kernel_size, HSV(h, 255, 255) to BGR, and blended with
 *   `opacity` where the heat, cast to uint8 as numpy does, is non-zero.
 *   With ignore_stationary only tracked detections that moved at least
 *   motion_threshold pixels since their last recorded position add heat
 *   (Roboflow's HeatmapVisualizationBlockV1).
 * - grid: the images (lists flattened) laid out on a ceil(sqrt(n)) square
 *   grid of width x height, each resized with INTER_AREA to fit its cell
 *   keeping its aspect ratio, centred.
 * - icon: sv.IconAnnotator — the icon letterboxed (aspect kept, INTER_LINEAR)
 *   into icon_width x icon_height and pasted centred on each anchor
 *   (dynamic) or at x_position / y_position (static; negative = from the
 *   right / bottom edge).  Icons here have no alpha channel (images are
 *   decoded to BGR), so the icon is opaque, as Roboflow's block makes a
 *   3-channel icon.
 *
 * State is per step and video_identifier (wf_call_state), as for the
 * trackers: a job gives every video its own, an image job starts fresh.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/blocks/viz_int.h"
#include "workflow/wf_int.h"

#define VV_MAX_THICKNESS 1000
#define VV_MAX_TRACE 10000       /* trace_length */
#define VV_MAX_TRACE_POINTS 1000000
#define VV_MAX_RADIUS 10000
#define VV_MAX_KERNEL 1000
#define VV_MAX_GRID_SIDE 10000   /* grid width / height */
#define VV_MAX_GRID_IMAGES 1024
#define VV_MAX_ICON 4096
#define VV_MAX_TRACKS 100000

static const char *const PALETTES[] = {
    "DEFAULT",            "CUSTOM",            "ROBOFLOW",          "LEGACY",
    "Matplotlib Viridis", "Matplotlib Plasma", "Matplotlib Inferno", "Matplotlib Magma",
    "Matplotlib Cividis", "Matplotlib Pastel1", "Matplotlib Pastel2", "Matplotlib Paired",
    "Matplotlib Accent",  "Matplotlib Dark2",  "Matplotlib Set1",   "Matplotlib Set2",
    "Matplotlib Set3",    "Matplotlib Tab10",  "Matplotlib Tab20",  "Matplotlib Tab20b",
    "Matplotlib Tab20c",  NULL,
};
static const char *const AXES[] = {"INDEX", "CLASS", "TRACK", NULL};
static const char *const POSITIONS[] = {
    "CENTER",    "CENTER_LEFT", "CENTER_RIGHT",  "TOP_CENTER",   "TOP_LEFT",
    "TOP_RIGHT", "BOTTOM_LEFT", "BOTTOM_CENTER", "BOTTOM_RIGHT", "CENTER_OF_MASS", NULL,
};
static const char *const HEAT_POSITIONS[] = {
    "CENTER",    "CENTER_LEFT",   "CENTER_RIGHT", "TOP_CENTER",   "TOP_LEFT",
    "TOP_RIGHT", "BOTTOM_CENTER", "BOTTOM_LEFT",  "BOTTOM_RIGHT", NULL,
};
static const char *const ICON_MODES[] = {"static", "dynamic", NULL};

#define F_IMAGE {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL}
#define F_COPY {"copy_image", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL}
#define F_PRED {"predictions", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL}
#define F_COLORABLE                                                                      \
    {"color_palette", NULL, WF_FT_ENUM, "\"DEFAULT\"", WF_K_STRING, 0, PALETTES},        \
        {"palette_size", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},                      \
        {"custom_colors", NULL, WF_FT_LIST, "[]", WF_K_LIST, 0, NULL},                   \
        {"color_axis", NULL, WF_FT_ENUM, "\"CLASS\"", WF_K_STRING, 0, AXES}

static const struct wf_output OUT_IMAGE[] = {{"image", WF_K_IMAGE}};

static int int_arg(struct wf_call *c, size_t i, const char *name, int64_t lo, int64_t hi, int64_t def, int *out)
{
    int64_t v = wf_arg_int(c, i, name, def);
    if (v < lo || v > hi)
        return wf_call_fail(c, "field '%s': %lld is out of range [%lld, %lld]", name, (long long)v,
                            (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

/* video_identifier of an image (its parent id without video metadata). */
static const char *image_video(const struct wf_image *im)
{
    const json_t *vm = im ? im->video_metadata : NULL;
    const char *id = json_string_value(json_object_get(vm, "video_identifier"));
    return id ? id : im && im->parent_id ? im->parent_id : "image";
}

/* sv.Detections.get_anchors_coordinates (float); CENTER_OF_MASS through
 * the shared integer anchor (mask pixels). */
static int anchor_f(const struct wf_det *d, int pos, int w, int h, double *x, double *y)
{
    double cx = ((double)d->x1 + d->x2) / 2, cy = ((double)d->y1 + d->y2) / 2;
    switch (pos) {
    case VIZ_POS_CENTER_LEFT: *x = d->x1, *y = cy; return 0;
    case VIZ_POS_CENTER_RIGHT: *x = d->x2, *y = cy; return 0;
    case VIZ_POS_TOP_CENTER: *x = cx, *y = d->y1; return 0;
    case VIZ_POS_TOP_LEFT: *x = d->x1, *y = d->y1; return 0;
    case VIZ_POS_TOP_RIGHT: *x = d->x2, *y = d->y1; return 0;
    case VIZ_POS_BOTTOM_LEFT: *x = d->x1, *y = d->y2; return 0;
    case VIZ_POS_BOTTOM_CENTER: *x = cx, *y = d->y2; return 0;
    case VIZ_POS_BOTTOM_RIGHT: *x = d->x2, *y = d->y2; return 0;
    case VIZ_POS_CENTER_OF_MASS: {
        int ax, ay;
        if (viz__anchor(d, pos, w, h, &ax, &ay) < 0)
            return ERR_INVALID;
        *x = ax, *y = ay;
        return 0;
    }
    default: *x = cx, *y = cy; return 0;
    }
}

/* ---- trace_visualization v1 -------------------------------------------------------------- */

struct trace_pt {
    int64_t frame, id;
    float x, y; /* float32, as sv's Trace.xy */
};

struct trace_state {
    struct trace_pt *p;
    size_t n, cap;
    int64_t frame; /* current_frame_id */
};

static void trace_free(void *p)
{
    struct trace_state *s = p;
    free(s->p);
    free(s);
}

static int trace_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        int len, thick, pos, axis, rc = 0;
        struct viz_palette pal = {0};
        char err[256];
        if (!im || !ds)
            return wf_call_fail(c, "image and predictions are required");
        if (int_arg(c, i, "trace_length", 1, VV_MAX_TRACE, 30, &len) < 0 ||
            int_arg(c, i, "thickness", 1, VV_MAX_THICKNESS, 1, &thick) < 0)
            return ERR_INVALID;
        if ((pos = viz__pos_parse(wf_arg_str(c, i, "position"))) < 0)
            return wf_call_fail(c, "invalid position");
        if ((axis = viz__axis_parse(wf_arg_str(c, i, "color_axis"))) < 0)
            return wf_call_fail(c, "invalid color_axis");
        for (size_t k = 0; k < ds->n; k++)
            if (ds->d[k].tracker_id == WF_NO_TRACKER)
                return wf_call_fail(c, "expected tracked predictions (put a byte_tracker step before it)");
        void **slot = wf_call_state(c, image_video(im), trace_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct trace_state *s = *slot;
        if (!s)
            *slot = s = xcalloc(1, sizeof *s);
        /* put(): this frame's anchors (pending ids -1 left out) */
        size_t added = 0;
        for (size_t k = 0; k < ds->n; k++) {
            double x, y;
            if (ds->d[k].tracker_id == -1)
                continue;
            if (anchor_f(&ds->d[k], pos, im->img->w, im->img->h, &x, &y) < 0)
                return wf_call_fail(c, "position CENTER_OF_MASS needs masks");
            if (s->n >= VV_MAX_TRACE_POINTS)
                return wf_call_fail(c, "more than %d trace points kept", VV_MAX_TRACE_POINTS);
            if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 64;
                s->p = xrealloc(s->p, s->cap * sizeof *s->p);
            }
            s->p[s->n++] = (struct trace_pt){s->frame, ds->d[k].tracker_id, (float)x, (float)y};
            added++;
        }
        /* unique frame ids beyond max_size: drop the points older than
         * current - max_size + 1 (the points are in frame order) */
        size_t uniq = 0;
        for (size_t k = 0; k < s->n; k++)
            uniq += k == 0 || s->p[k].frame != s->p[k - 1].frame;
        if ((size_t)len < uniq) {
            int64_t min_frame = s->frame - len + 1;
            size_t w = 0;
            for (size_t k = 0; k < s->n; k++)
                if (s->p[k].frame >= min_frame)
                    s->p[w++] = s->p[k];
            s->n = w;
        }
        s->frame++;
        (void)added;
        if (viz__palette_init(&pal, wf_arg_str(c, i, "color_palette"), wf_arg_json(c, i, "custom_colors"), err,
                              sizeof err) < 0)
            return wf_call_fail(c, "%s", err);
        struct vis_image *px = vis_image_clone(im->img);
        if (!px) {
            viz__palette_release(&pal);
            return wf_call_fail(c, "out of memory");
        }
        size_t idx = 0; /* index in the detections without pending ids */
        for (size_t k = 0; k < ds->n && rc == 0; k++) {
            const struct wf_det *d = &ds->d[k];
            struct vis_color col;
            int px0 = 0, py0 = 0, cnt = 0;
            if (d->tracker_id == -1)
                continue;
            if (viz__color_for(&pal, axis, idx++, d->class_id, d->tracker_id, &col, err, sizeof err) < 0) {
                rc = wf_call_fail(c, "%s", err);
                break;
            }
            for (size_t q = 0; q < s->n; q++) {
                if (s->p[q].id != d->tracker_id)
                    continue;
                int x = viz__trunc(s->p[q].x), y = viz__trunc(s->p[q].y);
                if (cnt > 0)
                    vis_draw_line(px, px0, py0, x, y, col, thick);
                px0 = x, py0 = y, cnt++;
            }
        }
        viz__palette_release(&pal);
        if (rc < 0) {
            vis_image_free(px);
            return rc;
        }
        wf_out_image(c, i, "image", im, px);
    }
    return 0;
}

/* ---- heatmap_visualization v1 ------------------------------------------------------------- */

struct heat_track {
    int64_t id;
    double x, y;
};

struct heat_state {
    float *heat; /* w x h */
    int w, h;
    struct heat_track *t;
    size_t n, cap;
};

static void heat_free(void *p)
{
    struct heat_state *s = p;
    free(s->heat);
    free(s->t);
    free(s);
}

/* OpenCV's 8-bit HSV2BGR with S = V = 255 (hue 0..179; larger wraps). */
static struct vis_color hue_bgr(int hue)
{
    double h = hue * (6.0 / 180.0), t, q;
    while (h >= 6)
        h -= 6;
    int sector = (int)floor(h);
    h -= sector;
    t = h, q = 1 - h;
    double r, g, b;
    switch (sector) {
    case 0: r = 1, g = t, b = 0; break;
    case 1: r = q, g = 1, b = 0; break;
    case 2: r = 0, g = 1, b = t; break;
    case 3: r = 0, g = q, b = 1; break;
    case 4: r = t, g = 0, b = 1; break;
    default: r = 1, g = 0, b = q; break;
    }
    return VIS_RGB((int)lrint(r * 255), (int)lrint(g * 255), (int)lrint(b * 255));
}

static int heat_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        const json_t *meta = wf_arg_json(c, i, "metadata");
        double opacity = wf_arg_double(c, i, "opacity", 0.2);
        int radius, kernel, top, low, motion, pos;
        bool ignore_stationary = wf_arg_bool(c, i, "ignore_stationary", true);
        if (!im || !ds)
            return wf_call_fail(c, "image and predictions are required");
        if (int_arg(c, i, "radius", 0, VV_MAX_RADIUS, 40, &radius) < 0 ||
            int_arg(c, i, "kernel_size", 1, VV_MAX_KERNEL, 25, &kernel) < 0 ||
            int_arg(c, i, "top_hue", 0, 255, 0, &top) < 0 || int_arg(c, i, "low_hue", 0, 255, 125, &low) < 0 ||
            int_arg(c, i, "motion_threshold", 0, 1000000, 25, &motion) < 0)
            return ERR_INVALID;
        if (!(opacity >= 0 && opacity <= 1))
            return wf_call_fail(c, "opacity must be between 0 and 1");
        if ((pos = viz__pos_parse(wf_arg_str(c, i, "position"))) < 0 || pos == VIZ_POS_CENTER_OF_MASS)
            return wf_call_fail(c, "invalid position");
        const char *vid = json_string_value(json_object_get(meta, "video_identifier"));
        void **slot = wf_call_state(c, vid ? vid : "default_video", heat_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct heat_state *s = *slot;
        if (!s)
            *slot = s = xcalloc(1, sizeof *s);
        int w = im->img->w, h = im->img->h;
        if (!s->heat || s->w != w || s->h != h) {
            free(s->heat);
            s->heat = xcalloc((size_t)w * h, sizeof *s->heat);
            s->w = w, s->h = h;
        }
        bool tracked = ds->n > 0;
        for (size_t k = 0; k < ds->n; k++)
            tracked &= ds->d[k].tracker_id != WF_NO_TRACKER;
        struct vis_image *circles = vis_image_new(w, h, VIS_GRAY);
        if (!circles)
            return wf_call_fail(c, "out of memory");
        for (size_t k = 0; k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            double x, y;
            anchor_f(d, pos, w, h, &x, &y);
            if (ignore_stationary && tracked) {
                struct heat_track *t = NULL;
                for (size_t q = 0; q < s->n && !t; q++)
                    if (s->t[q].id == d->tracker_id)
                        t = &s->t[q];
                if (!t) {
                    if (s->n == VV_MAX_TRACKS) {
                        memmove(&s->t[0], &s->t[1], (s->n - 1) * sizeof *s->t);
                        s->n--;
                    }
                    if (s->n == s->cap) {
                        s->cap = s->cap ? 2 * s->cap : 32;
                        s->t = xrealloc(s->t, s->cap * sizeof *s->t);
                    }
                    s->t[s->n++] = (struct heat_track){d->tracker_id, x, y};
                    continue; /* first sighting: not moving */
                }
                if (hypot(x - t->x, y - t->y) < motion)
                    continue;
                t->x = x, t->y = y;
            }
            vis_draw_circle(circles, viz__trunc(x), viz__trunc(y), radius, VIS_RGB(1, 1, 1), VIS_FILLED);
        }
        float mx = 0;
        for (size_t p = 0; p < (size_t)w * h; p++) {
            s->heat[p] += circles->px[(p / w) * circles->stride + p % w];
            mx = s->heat[p] > mx ? s->heat[p] : mx;
        }
        struct vis_image *px = vis_image_clone(im->img);
        if (!px) {
            vis_image_free(circles);
            return wf_call_fail(c, "out of memory");
        }
        if (mx > 0) {
            /* hue per pixel (reusing the circle buffer), blurred */
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double v = low - (double)s->heat[(size_t)y * w + x] / mx * (low - top);
                    *vis_px(circles, x, y) = (uint8_t)(int)v;
                }
            int rc = cv__box_blur(circles, kernel, kernel);
            if (rc < 0) {
                vis_image_free(circles);
                vis_image_free(px);
                return wf_call_fail(c, "heatmap blur failed (%s)", err_str(rc));
            }
            struct vis_color lut[256];
            for (int k = 0; k < 256; k++)
                lut[k] = hue_bgr(k);
            int ch = vis_channels(px);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    /* numpy's float -> uint8 cast of the heat wraps modulo 256 */
                    if (((int64_t)s->heat[(size_t)y * w + x] & 255) == 0)
                        continue;
                    struct vis_color hc = lut[*vis_px(circles, x, y)];
                    uint8_t *p = vis_px(px, x, y);
                    const uint8_t hb[3] = {hc.b, hc.g, hc.r};
                    for (int k = 0; k < ch; k++) {
                        double o = hb[ch == 1 ? 0 : k] * opacity + p[k] * (1 - opacity);
                        p[k] = (uint8_t)(o >= 255 ? 255 : o <= 0 ? 0 : lrint(o));
                    }
                }
        }
        vis_image_free(circles);
        wf_out_image(c, i, "image", im, px);
    }
    return 0;
}

/* ---- grid_visualization v1 ---------------------------------------------------------------- */

static void grid_collect(const struct wf_value *v, const struct wf_image **out, size_t *n, size_t cap)
{
    if (!v)
        return;
    if (v->type == WF_V_IMAGE) {
        if (*n < cap)
            out[(*n)++] = v->image;
        else
            (*n)++;
    } else if (v->type == WF_V_LIST) {
        for (size_t k = 0; k < v->n; k++)
            if (v->items[k] && v->items[k]->type == WF_V_IMAGE) {
                if (*n < cap)
                    out[(*n)++] = v->items[k]->image;
                else
                    (*n)++;
            } else if (v->items[k] && v->items[k]->type == WF_V_NULL) {
                if (*n < cap)
                    out[(*n)++] = NULL;
                else
                    (*n)++;
            }
    } else if (v->type == WF_V_NULL) {
        if (*n < cap)
            out[(*n)++] = NULL;
        else
            (*n)++;
    }
}

static int grid_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_value *imgs = wf_arg(c, i, "images");
        const struct wf_image *list[VV_MAX_GRID_IMAGES];
        size_t n = 0;
        int w, h;
        if (int_arg(c, i, "width", 1, VV_MAX_GRID_SIDE, 2560, &w) < 0 ||
            int_arg(c, i, "height", 1, VV_MAX_GRID_SIDE, 1440, &h) < 0)
            return ERR_INVALID;
        if (imgs->type == WF_V_LIST)
            for (size_t k = 0; k < imgs->n; k++)
                grid_collect(imgs->items[k], list, &n, VV_MAX_GRID_IMAGES);
        else
            grid_collect(imgs, list, &n, VV_MAX_GRID_IMAGES);
        if (n > VV_MAX_GRID_IMAGES)
            return wf_call_fail(c, "%zu images in the grid (at most %d)", n, VV_MAX_GRID_IMAGES);
        struct vis_image *px = vis_image_new(w, h, VIS_BGR);
        const struct wf_image *first = NULL;
        if (!px)
            return wf_call_fail(c, "out of memory");
        memset(px->px, 0, (size_t)px->stride * h);
        int g = (int)ceil(sqrt((double)n));
        int cw = g ? w / g : 0, chh = g ? h / g : 0;
        for (size_t k = 0; k < n && g > 0; k++) {
            const struct wf_image *im = list[k];
            int r = (int)(k / (size_t)g), col = (int)(k % (size_t)g);
            if (!first)
                first = im;
            if (!im || !im->img || cw <= 0 || chh <= 0)
                continue;
            double sc = fmin((double)cw / im->img->w, (double)chh / im->img->h);
            int nw = (int)(im->img->w * sc), nh = (int)(im->img->h * sc);
            if (nw < 1 || nh < 1)
                continue;
            struct vis_image *src = NULL, *rs = NULL;
            if (im->img->fmt != VIS_BGR) {
                if (vis_convert(im->img, VIS_BGR, &src) < 0) {
                    vis_image_free(px);
                    return wf_call_fail(c, "out of memory");
                }
            }
            int rc = vis_resize(src ? src : im->img, nw, nh, VIS_INTER_AREA, &rs);
            vis_image_free(src);
            if (rc < 0) {
                vis_image_free(px);
                return wf_call_fail(c, "cannot resize image %zu (%s)", k, err_str(rc));
            }
            int sx = MAX(col * cw + (cw - nw) / 2, 0), sy = MAX(r * chh + (chh - nh) / 2, 0);
            vis_image_paste(px, rs, sx, sy);
            vis_image_free(rs);
        }
        if (first) {
            wf_out_image(c, i, "image", first, px);
        } else {
            struct wf_image *blank = wf_image_new_root(px, "grid");
            wf_out_set(c, i, "image", wf_value_image(blank));
        }
    }
    return 0;
}

/* ---- icon_visualization v1 ---------------------------------------------------------------- */

/* sv.letterbox_image's resized part: aspect kept, INTER_LINEAR; *ox, *oy is
 * its offset inside the iw x ih box. */
static int icon_prepare(const struct vis_image *icon, int iw, int ih, struct vis_image **out, int *ox, int *oy)
{
    double ratio = (double)icon->w / icon->h, target = (double)iw / ih;
    int nw, nh;
    struct vis_image *src = NULL;
    if (ratio >= target) {
        nw = iw;
        nh = (int)(iw / ratio);
    } else {
        nh = ih;
        nw = (int)(ih * ratio);
    }
    nw = MAX(nw, 1), nh = MAX(nh, 1);
    if (icon->fmt != VIS_BGR && vis_convert(icon, VIS_BGR, &src) < 0)
        return ERR_NOMEM;
    int rc = vis_resize(src ? src : icon, nw, nh, VIS_INTER_LINEAR, out);
    vis_image_free(src);
    *ox = (iw - nw) / 2;
    *oy = (ih - nh) / 2;
    return rc;
}

static int icon_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image"), *icon = wf_arg_image(c, i, "icon");
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        const char *mode = wf_arg_str(c, i, "mode");
        int iw, ih, pos;
        if (!im || !icon)
            return wf_call_fail(c, "image and icon are required");
        if (int_arg(c, i, "icon_width", 1, VV_MAX_ICON, 64, &iw) < 0 ||
            int_arg(c, i, "icon_height", 1, VV_MAX_ICON, 64, &ih) < 0)
            return ERR_INVALID;
        struct vis_image *px = vis_image_clone(im->img), *ic = NULL;
        int ox, oy, rc;
        if (!px)
            return wf_call_fail(c, "out of memory");
        if ((rc = icon_prepare(icon->img, iw, ih, &ic, &ox, &oy)) < 0) {
            vis_image_free(px);
            return wf_call_fail(c, "cannot resize the icon (%s)", err_str(rc));
        }
        if (px->fmt != VIS_BGR) { /* paste needs one format */
            struct vis_image *g = NULL;
            if (vis_convert(ic, px->fmt, &g) == 0) {
                vis_image_free(ic);
                ic = g;
            }
        }
        if (mode && !strcmp(mode, "static")) {
            int64_t xp = wf_arg_int(c, i, "x_position", 10), yp = wf_arg_int(c, i, "y_position", 10);
            if (llabs(xp) > 1000000 || llabs(yp) > 1000000) {
                vis_image_free(px);
                vis_image_free(ic);
                return wf_call_fail(c, "x_position / y_position out of range");
            }
            int ax = (int)(xp < 0 ? px->w + xp - iw : xp), ay = (int)(yp < 0 ? px->h + yp - ih : yp);
            int cx = ax + iw / 2, cy = ay + ih / 2;
            /* a 2x2 box around the centre, icon anchored at its CENTER */
            vis_image_paste(px, ic, (int)(cx - iw / 2.0) + ox, (int)(cy - ih / 2.0) + oy);
        } else if (ds && ds->n > 0) {
            if ((pos = viz__pos_parse(wf_arg_str(c, i, "position"))) < 0) {
                vis_image_free(px);
                vis_image_free(ic);
                return wf_call_fail(c, "invalid position");
            }
            for (size_t k = 0; k < ds->n; k++) {
                int ax, ay;
                if (viz__anchor(&ds->d[k], pos, px->w, px->h, &ax, &ay) < 0) {
                    vis_image_free(px);
                    vis_image_free(ic);
                    return wf_call_fail(c, "position CENTER_OF_MASS needs masks");
                }
                vis_image_paste(px, ic, (int)(ax - iw / 2.0) + ox, (int)(ay - ih / 2.0) + oy);
            }
        }
        vis_image_free(ic);
        wf_out_image(c, i, "image", im, px);
    }
    return 0;
}

/* ---- manifests ------------------------------------------------------------------------------ */

static const struct wf_field trace_fields[] = {
    F_IMAGE, F_COPY, F_PRED, F_COLORABLE,
    {"position", NULL, WF_FT_ENUM, "\"CENTER\"", WF_K_STRING, 0, POSITIONS},
    {"trace_length", NULL, WF_FT_INT_POS, "30", WF_K_INT, 0, NULL},
    {"thickness", NULL, WF_FT_INT_POS, "1", WF_K_INT, 0, NULL},
};
static const struct wf_field heat_fields[] = {
    F_IMAGE, F_COPY, F_PRED,
    {"metadata", NULL, WF_FT_DICT, "null", WF_K_VIDEO_META, WF_F_SELECTOR_ONLY | WF_F_NULLABLE, NULL},
    {"position", NULL, WF_FT_ENUM, "\"BOTTOM_CENTER\"", WF_K_STRING, 0, HEAT_POSITIONS},
    {"opacity", NULL, WF_FT_FLOAT, "0.2", WF_K_NUMBER, 0, NULL},
    {"radius", NULL, WF_FT_INT, "40", WF_K_INT, 0, NULL},
    {"kernel_size", NULL, WF_FT_INT, "25", WF_K_INT, 0, NULL},
    {"top_hue", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
    {"low_hue", NULL, WF_FT_INT, "125", WF_K_INT, 0, NULL},
    {"ignore_stationary", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},
    {"motion_threshold", NULL, WF_FT_INT, "25", WF_K_INT, 0, NULL},
};
static const struct wf_field grid_fields[] = {
    {"images", NULL, WF_FT_LIST, NULL, WF_K_IMAGE | WF_K_LIST, WF_F_SELECTOR_LIST, NULL},
    {"width", NULL, WF_FT_INT, "2560", WF_K_INT, 0, NULL},
    {"height", NULL, WF_FT_INT, "1440", WF_K_INT, 0, NULL},
};
static const struct wf_field icon_fields[] = {
    F_IMAGE, F_COPY,
    {"icon", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"mode", NULL, WF_FT_ENUM, "\"dynamic\"", WF_K_STRING, 0, ICON_MODES},
    {"predictions", NULL, WF_FT_DETS, "null", WF_K_DETS, WF_F_SELECTOR_ONLY | WF_F_NULLABLE, NULL},
    {"icon_width", NULL, WF_FT_INT, "64", WF_K_INT, 0, NULL},
    {"icon_height", NULL, WF_FT_INT, "64", WF_K_INT, 0, NULL},
    {"position", NULL, WF_FT_ENUM, "\"TOP_CENTER\"", WF_K_STRING, WF_F_NULLABLE, POSITIONS},
    {"x_position", NULL, WF_FT_INT, "10", WF_K_INT, WF_F_NULLABLE, NULL},
    {"y_position", NULL, WF_FT_INT, "10", WF_K_INT, WF_F_NULLABLE, NULL},
};

static const struct wf_block trace_v1 = {
    .types = (const char *const[]){"roboflow_core/trace_visualization@v1", NULL},
    .fields = trace_fields, .nfields = ARRAY_LEN(trace_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = trace_run,
};
static const struct wf_block heat_v1 = {
    .types = (const char *const[]){"roboflow_core/heatmap_visualization@v1", "HeatmapVisualization", NULL},
    .fields = heat_fields, .nfields = ARRAY_LEN(heat_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = heat_run,
};
static const struct wf_block grid_v1 = {
    .types = (const char *const[]){"roboflow_core/grid_visualization@v1", NULL},
    .fields = grid_fields, .nfields = ARRAY_LEN(grid_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = grid_run,
};
static const struct wf_block icon_v1 = {
    .types = (const char *const[]){"roboflow_core/icon_visualization@v1", "IconVisualization", NULL},
    .fields = icon_fields, .nfields = ARRAY_LEN(icon_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = icon_run,
};

const struct wf_block *const wf_blocks_video_viz[] = {&trace_v1, &heat_v1, &grid_v1, &icon_v1, NULL};
