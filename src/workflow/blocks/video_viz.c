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
    *out = 0;
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


/* ---- text_display v1 ------------------------------------------------------------------------ */

#define TD_MAX_TEXT 65536
#define TD_MAX_LINES 1000
#define TD_MAX_PADDING 10000
#define TD_MAX_SCALE 100.0

static const char *const TD_ALIGNS[] = {"left", "center", "right", NULL};
static const char *const TD_MODES[] = {"absolute", "relative", NULL};
static const char *const TD_ANCHORS[] = {"center",      "top_left",      "top_center",   "top_right",   "bottom_left",
                                         "bottom_center", "bottom_right", "center_left", "center_right", NULL};
static const double TD_ANCHOR_XY[][2] = {{0.5, 0.5}, {0, 0}, {0.5, 0}, {1, 0},   {0, 1},
                                         {0.5, 1},   {1, 1}, {0, 0.5}, {1, 0.5}};

static int choice_index(const char *const *list, const char *s)
{
    for (int k = 0; s && list[k]; k++)
        if (!strcmp(list[k], s))
            return k;
    return -1;
}

/* format_text_with_parameters: "{{ $parameters.name }}" replaced by str()
 * of the parameter after its operations; unknown names are left as is. */
static int td_format(struct wf_call *c, size_t i, const char *text, struct buf *b)
{
    const struct wf_value *params = wf_arg(c, i, "text_parameters");
    const json_t *ops = wf_arg_json(c, i, "text_parameters_operations");
    const char *t = text;
    while (*t) {
        const char *open = strstr(t, "{{"), *p, *close;
        char name[128];
        size_t nl = 0;
        if (!open) {
            buf_puts(b, t);
            break;
        }
        buf_append(b, t, (size_t)(open - t));
        p = open + 2;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
            p++;
        close = strstr(p, "}}");
        if (close && !strncmp(p, "$parameters.", 12)) {
            p += 12;
            while ((p[nl] == '_' || (p[nl] >= '0' && p[nl] <= '9') || (p[nl] >= 'a' && p[nl] <= 'z') ||
                    (p[nl] >= 'A' && p[nl] <= 'Z')) && nl < sizeof name - 1)
                nl++;
            memcpy(name, p, nl);
            name[nl] = 0;
            const char *q = p + nl;
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == '\f' || *q == '\v')
                q++;
            struct wf_value *v = nl && q == close && params ? wf_value_dict_get(params, name) : NULL;
            if (v) {
                struct wf_value *tv = NULL;
                const json_t *chain = json_is_object(ops) ? json_object_get(ops, name) : NULL;
                if (json_array_size(chain) > 0) {
                    char err[256];
                    struct wf_ql_ctx cx = {NULL, NULL, NULL, err, sizeof err};
                    if (wf__ql_apply(&cx, chain, v, &tv) < 0)
                        return wf_call_fail(c, "field 'text_parameters_operations': '%s': %s", name, err);
                    v = tv;
                }
                json_t *j = wf_value_to_json(v, false);
                char *str = wf__py_str(j);
                buf_puts(b, str);
                free(str);
                json_decref(j);
                wf_value_unref(tv);
                t = close + 2;
                continue;
            }
        }
        buf_append(b, open, 2);
        t = open + 2;
    }
    if (b->len > TD_MAX_TEXT)
        return wf_call_fail(c, "the text is longer than %d bytes", TD_MAX_TEXT);
    return 0;
}

/* Filled rectangle (corners included) clipped to img. */
static void td_fill(struct vis_image *img, int x1, int y1, int x2, int y2, struct vis_color col)
{
    struct vis_image view;
    x1 = MAX(x1, 0), y1 = MAX(y1, 0), x2 = MIN(x2, img->w - 1), y2 = MIN(y2, img->h - 1);
    if (x2 >= x1 && y2 >= y1 && vis_image_view(img, x1, y1, x2 - x1 + 1, y2 - y1 + 1, &view) == 0)
        vis_image_fill(&view, col);
}

/* text_display's draw_background: opaque, or blended (cv2.addWeighted) over
 * the clipped box; rounded corners with border_radius. */
static int td_background(struct vis_image *img, int x1, int y1, int x2, int y2, struct vis_color col, double alpha,
                         int radius)
{
    if (x2 <= x1 || y2 <= y1 || alpha <= 0)
        return 0;
    if (alpha >= 1) {
        if (radius > 0)
            viz__rounded_rect(img, x1, y1, x2 - 1, y2 - 1, col, radius);
        else
            td_fill(img, x1, y1, x2 - 1, y2 - 1, col);
        return 0;
    }
    struct vis_image roi, *ov = NULL;
    if (vis_image_view(img, x1, y1, x2 - x1, y2 - y1, &roi) < 0)
        return 0;
    if (!(ov = vis_image_clone(&roi)))
        return ERR_NOMEM;
    if (radius > 0)
        viz__rounded_rect(ov, 0, 0, ov->w - 1, ov->h - 1, col, radius);
    else
        vis_image_fill(ov, col);
    int ch = vis_channels(&roi);
    for (int y = 0; y < roi.h; y++)
        for (int x = 0; x < roi.w; x++) {
            uint8_t *p = vis_px(&roi, x, y);
            const uint8_t *o = vis_px(ov, x, y);
            for (int k = 0; k < ch; k++)
                p[k] = (uint8_t)lrint(o[k] * alpha + p[k] * (1 - alpha));
        }
    vis_image_free(ov);
    return 0;
}

static int td_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *text = wf_arg_str(c, i, "text"), *bg = wf_arg_str(c, i, "background_color");
        double scale = wf_arg_double(c, i, "font_scale", 1.0), opacity = wf_arg_double(c, i, "background_opacity", 1.0);
        int thick, pad, radius, align, mode, anchor, rc;
        struct vis_color fg, bgc = {0, 0, 0};
        bool transparent;
        struct buf b = BUF_INIT;
        if (!im || !text)
            return wf_call_fail(c, "image and text are required");
        if (int_arg(c, i, "font_thickness", 1, 100, 2, &thick) < 0 ||
            int_arg(c, i, "padding", 0, TD_MAX_PADDING, 10, &pad) < 0 ||
            int_arg(c, i, "border_radius", 0, TD_MAX_PADDING, 0, &radius) < 0)
            return ERR_INVALID;
        if (!(scale > 0 && scale <= TD_MAX_SCALE))
            return wf_call_fail(c, "font_scale must be in (0, %g]", TD_MAX_SCALE);
        if ((align = choice_index(TD_ALIGNS, wf_arg_str(c, i, "text_align"))) < 0 ||
            (mode = choice_index(TD_MODES, wf_arg_str(c, i, "position_mode"))) < 0)
            return wf_call_fail(c, "invalid text_align or position_mode");
        {
            char low[32] = "";
            const char *a = wf_arg_str(c, i, "anchor");
            for (size_t k = 0; a && a[k] && k < sizeof low - 1; k++)
                low[k] = (char)(a[k] >= 'A' && a[k] <= 'Z' ? a[k] + 32 : a[k]), low[k + 1] = 0;
            if ((anchor = choice_index(TD_ANCHORS, low)) < 0)
                return wf_call_fail(c, "unknown anchor '%s'", a ? a : "");
        }
        if (viz__color_parse(wf_arg_str(c, i, "text_color"), &fg) < 0)
            return wf_call_fail(c, "invalid text_color");
        transparent = bg && !strcasecmp(bg, "transparent");
        if (!transparent && viz__color_parse(bg, &bgc) < 0)
            return wf_call_fail(c, "invalid background_color");
        int64_t pxx = wf_arg_int(c, i, "position_x", 0), pyy = wf_arg_int(c, i, "position_y", 0);
        int64_t ox = wf_arg_int(c, i, "offset_x", 10), oy = wf_arg_int(c, i, "offset_y", 10);
        if (llabs(pxx) > 1000000 || llabs(pyy) > 1000000 || llabs(ox) > 1000000 || llabs(oy) > 1000000)
            return wf_call_fail(c, "positions and offsets must be within +-1000000");
        buf_init(&b, TD_MAX_TEXT + 1024);
        if ((rc = td_format(c, i, text, &b)) < 0) {
            buf_release(&b);
            return rc;
        }
        /* compute_layout */
        struct vis_font *font = vis_font_default();
        const char *ft = b.data ? b.data : "";
        int nlines = 1;
        for (const char *q = ft; *q; q++)
            nlines += *q == '\n';
        if (nlines > TD_MAX_LINES) {
            buf_release(&b);
            return wf_call_fail(c, "more than %d lines of text", TD_MAX_LINES);
        }
        char **lines = xcalloc((size_t)nlines, sizeof *lines);
        int *lw = xcalloc((size_t)nlines, sizeof *lw), maxw = 0, refw, refh;
        {
            const char *q = ft;
            for (int k = 0; k < nlines; k++) {
                const char *e = strchr(q, '\n');
                size_t n = e ? (size_t)(e - q) : strlen(q);
                lines[k] = xstrndup(q, n);
                q = e ? e + 1 : q + n;
            }
        }
        viz__text_size(font, "Ag", scale, thick, &refw, &refh);
        int base = (int)lrint(9 * scale); /* cv2 baseline of FONT_HERSHEY_SIMPLEX */
        int adv = refh + base, spacing = MAX(1, (int)lrint(0.25 * adv));
        for (int k = 0; k < nlines; k++) {
            bool blank = true;
            for (const char *q = lines[k]; *q; q++)
                blank &= *q == ' ' || *q == '\t' || *q == '\r' || *q == '\f' || *q == '\v';
            if (!blank && viz__text_size(font, lines[k], scale, thick, &lw[k], &refw) < 0)
                lw[k] = 0;
            maxw = MAX(maxw, lw[k]);
        }
        int64_t total_h = (int64_t)nlines * adv + (int64_t)MAX(0, nlines - 1) * spacing;
        int64_t bw = maxw + 2 * (int64_t)pad, bh = total_h + 2 * (int64_t)pad, bx, by;
        int W = im->img->w, H = im->img->h;
        if (mode == 0) {
            bx = pxx, by = pyy;
        } else {
            double ax = TD_ANCHOR_XY[anchor][0], ay = TD_ANCHOR_XY[anchor][1];
            bx = (int64_t)lrint(ax * W) - (int64_t)lrint(ax * (double)bw) + ox;
            by = (int64_t)lrint(ay * H) - (int64_t)lrint(ay * (double)bh) + oy;
        }
        bx = bw > W ? 0 : MAX(0, MIN(bx, W - bw));
        by = bh > H ? 0 : MAX(0, MIN(by, H - bh));
        struct vis_image *px = vis_image_clone(im->img);
        rc = px ? 0 : ERR_NOMEM;
        if (rc == 0 && !transparent)
            rc = td_background(px, (int)MAX(0, bx), (int)MAX(0, by), (int)MIN(W, bx + bw), (int)MIN(H, by + bh), bgc,
                               opacity, radius);
        int64_t cy = by + pad;
        for (int k = 0; k < nlines && rc == 0; k++) {
            if (lw[k] > 0) {
                int64_t tx = bx + pad + (align == 1 ? (maxw - lw[k]) / 2 : align == 2 ? maxw - lw[k] : 0);
                int64_t ty = cy + refh;
                if (ty > 0 && cy < H && tx < W)
                    viz__text_draw(px, font, lines[k], vis_text_px_for_scale(scale), (int)tx, (int)ty, thick, fg);
            }
            cy += adv + (k < nlines - 1 ? spacing : 0);
        }
        for (int k = 0; k < nlines; k++)
            free(lines[k]);
        free(lines);
        free(lw);
        buf_release(&b);
        if (rc < 0) {
            vis_image_free(px);
            return wf_call_fail(c, "out of memory");
        }
        wf_out_image(c, i, "image", im, px);
    }
    return 0;
}

static int td_check(const json_t *step, char *err, size_t errlen)
{
    const json_t *ops = json_object_get(step, "text_parameters_operations");
    const char *key;
    const json_t *v;
    if (!json_is_object(ops))
        return 0;
    json_object_foreach((json_t *)ops, key, v) {
        char sub[256];
        if (wf__ql_check_ops(v, sub, sizeof sub) < 0) {
            wf__errf(err, errlen, "field 'text_parameters_operations': '%s': %s", key, sub);
            return ERR_INVALID;
        }
    }
    return 0;
}

/* ---- rich_label_visualization v1 -------------------------------------------------------------- */

#define RL_MAX_FONT 1000
#define RL_MAX_LABEL 4096

/* sv wrap_text (textwrap.wrap with break_long_words, drop_whitespace) on
 * byte columns; existing newlines kept. */
static int rl_wrap(const char *text, int maxlen, char ***out)
{
    char **lines = NULL;
    int n = 0;
    const char *p = text;
    for (;;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (maxlen <= 0 || len == 0) {
            lines = xrealloc(lines, (size_t)(n + 1) * sizeof *lines);
            lines[n++] = xstrndup(p, len);
        } else {
            size_t k = 0;
            bool any = false;
            while (k < len) {
                while (k < len && p[k] == ' ')
                    k++;
                if (k >= len)
                    break;
                size_t start = k, last_space = 0, end = k;
                while (end < len && end - start < (size_t)maxlen) {
                    if (p[end] == ' ')
                        last_space = end;
                    end++;
                }
                if (end < len && p[end] != ' ' && last_space > start)
                    end = last_space; /* break at the last space */
                size_t trim = end;
                while (trim > start && p[trim - 1] == ' ')
                    trim--;
                lines = xrealloc(lines, (size_t)(n + 1) * sizeof *lines);
                lines[n++] = xstrndup(p + start, trim - start);
                any = true;
                k = end;
            }
            if (!any) {
                lines = xrealloc(lines, (size_t)(n + 1) * sizeof *lines);
                lines[n++] = xstrdup("");
            }
        }
        if (!e)
            break;
        p = e + 1;
    }
    *out = lines;
    return n;
}

static int rl_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        const char *text = wf_arg_str(c, i, "text"), *mode = wf_arg_str(c, i, "text_size_mode");
        int fsize, pad, radius, pos, axis, maxlen = 0, rc = 0;
        struct vis_color fg;
        struct viz_palette pal = {0};
        char err[256];
        if (!im || !ds)
            return wf_call_fail(c, "image and predictions are required");
        if (int_arg(c, i, "font_size", 1, RL_MAX_FONT, 14, &fsize) < 0 ||
            int_arg(c, i, "text_padding", 0, TD_MAX_PADDING, 10, &pad) < 0 ||
            int_arg(c, i, "border_radius", 0, TD_MAX_PADDING, 0, &radius) < 0)
            return ERR_INVALID;
        if (!wf_value_is_null(wf_arg(c, i, "max_line_length")) &&
            int_arg(c, i, "max_line_length", 1, 100000, 1, &maxlen) < 0)
            return ERR_INVALID;
        if ((pos = viz__pos_parse(wf_arg_str(c, i, "text_position"))) < 0 ||
            (axis = viz__axis_parse(wf_arg_str(c, i, "color_axis"))) < 0)
            return wf_call_fail(c, "invalid text_position or color_axis");
        if (viz__color_parse(wf_arg_str(c, i, "text_color"), &fg) < 0)
            return wf_call_fail(c, "invalid text_color");
        struct vis_image *px = vis_image_clone(im->img);
        if (!px)
            return wf_call_fail(c, "out of memory");
        if (ds->n == 0) {
            wf_out_image(c, i, "image", im, px);
            continue;
        }
        if (mode && !strcmp(mode, "Automatic")) {
            /* compute_adaptive_rich_font_size: 14 pt at 1080 px, scaled, 8..128 */
            double base = 14.0 * MIN(px->w, px->h) / 1080.0;
            fsize = (int)MAX(8, MIN(128, lrint(base * fsize / 14.0)));
        }
        if (viz__palette_init(&pal, wf_arg_str(c, i, "color_palette"), wf_arg_json(c, i, "custom_colors"), err,
                              sizeof err) < 0) {
            vis_image_free(px);
            return wf_call_fail(c, "%s", err);
        }
        struct vis_font *font = vis_font_default();
        struct vis_text_metrics tg;
        if (vis_text_measure(font, "Tg", fsize, &tg) < 0)
            memset(&tg, 0, sizeof tg);
        int tg_ascent = tg.height - tg.baseline;
        bool masks = false;
        for (size_t k = 0; k < ds->n; k++)
            masks |= ds->d[k].has_mask;
        for (size_t k = 0; k < ds->n && rc == 0; k++) {
            char label[RL_MAX_LABEL], **lines = NULL;
            struct vis_color bgc;
            int ax, ay, n, maxw = 0, total = 0, *lh;
            if (viz__det_label(ds, k, text ? text : "Class", px->w, px->h, masks, label, sizeof label, err,
                               sizeof err) < 0 ||
                viz__color_for(&pal, axis, k, ds->d[k].class_id, ds->d[k].tracker_id, &bgc, err, sizeof err) < 0) {
                rc = wf_call_fail(c, "%s", err);
                break;
            }
            if (viz__anchor(&ds->d[k], pos, px->w, px->h, &ax, &ay) < 0) {
                rc = wf_call_fail(c, "text_position CENTER_OF_MASS needs masks");
                break;
            }
            n = rl_wrap(label, maxlen, &lines);
            lh = xcalloc((size_t)n, sizeof *lh);
            for (int q = 0; q < n; q++) {
                struct vis_text_metrics m = {0, 0, 0};
                if (lines[q][0])
                    vis_text_measure(font, lines[q], fsize, &m);
                maxw = MAX(maxw, m.width);
                lh[q] = m.height;
                total += m.height;
            }
            total += (n - 1) * pad;
            int w = maxw + 2 * pad, h = total + 2 * pad, hw = w / 2, hh = h / 2, xy[4];
            switch (pos) {
            case VIZ_POS_TOP_LEFT: xy[0] = ax, xy[1] = ay - h, xy[2] = ax + w, xy[3] = ay; break;
            case VIZ_POS_TOP_RIGHT: xy[0] = ax - w, xy[1] = ay - h, xy[2] = ax, xy[3] = ay; break;
            case VIZ_POS_TOP_CENTER: xy[0] = ax - hw, xy[1] = ay - h, xy[2] = ax + hw, xy[3] = ay; break;
            case VIZ_POS_BOTTOM_LEFT: xy[0] = ax, xy[1] = ay, xy[2] = ax + w, xy[3] = ay + h; break;
            case VIZ_POS_BOTTOM_RIGHT: xy[0] = ax - w, xy[1] = ay, xy[2] = ax, xy[3] = ay + h; break;
            case VIZ_POS_BOTTOM_CENTER: xy[0] = ax - hw, xy[1] = ay, xy[2] = ax + hw, xy[3] = ay + h; break;
            case VIZ_POS_CENTER_LEFT: xy[0] = ax - w, xy[1] = ay - hh, xy[2] = ax, xy[3] = ay + hh; break;
            case VIZ_POS_CENTER_RIGHT: xy[0] = ax, xy[1] = ay - hh, xy[2] = ax + w, xy[3] = ay + hh; break;
            default: xy[0] = ax - hw, xy[1] = ay - hh, xy[2] = ax + hw, xy[3] = ay + hh; break;
            }
            /* PIL rounded_rectangle: corners included */
            if (radius > 0)
                viz__rounded_rect(px, xy[0], xy[1], xy[2], xy[3], bgc, radius);
            else
                td_fill(px, xy[0], xy[1], xy[2], xy[3], bgc);
            int ty = xy[1] + pad;
            for (int q = 0; q < n; q++) {
                if (lines[q][0])
                    vis_text_draw(px, font, lines[q], fsize, xy[0] + pad, ty + tg_ascent, fg);
                ty += lh[q] + pad;
                free(lines[q]);
            }
            free(lines);
            free(lh);
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

static const struct wf_field td_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"text", NULL, WF_FT_STRING, NULL, 0, WF_F_NO_SELECTOR, NULL},
    {"text_parameters", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"text_parameters_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"text_color", NULL, WF_FT_STRING, "\"WHITE\"", WF_K_STRING, 0, NULL},
    {"background_color", NULL, WF_FT_STRING, "\"BLACK\"", WF_K_STRING, 0, NULL},
    {"background_opacity", NULL, WF_FT_FLOAT01, "1.0", WF_K_FLOAT, 0, NULL},
    {"font_scale", NULL, WF_FT_FLOAT, "1.0", WF_K_NUMBER, 0, NULL},
    {"font_thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
    {"padding", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"text_align", NULL, WF_FT_ENUM, "\"left\"", WF_K_STRING, 0, TD_ALIGNS},
    {"border_radius", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
    {"position_mode", NULL, WF_FT_ENUM, "\"relative\"", WF_K_STRING, 0, TD_MODES},
    {"position_x", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
    {"position_y", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
    {"anchor", NULL, WF_FT_ENUM, "\"top_left\"", WF_K_STRING, 0, TD_ANCHORS},
    {"offset_x", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"offset_y", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    F_COPY,
};
static const char *const RL_TEXTS[] = {"Class", "Confidence", "Class and Confidence", "Index", "Dimensions", "Area",
                                       "Area (mask)", "Area (converted)", "Tracker Id", "Time In Zone", NULL};
static const char *const RL_SIZE_MODES[] = {"Manual", "Automatic", NULL};
static const struct wf_field rl_fields[] = {
    F_IMAGE, F_COPY, F_PRED, F_COLORABLE,
    {"text", NULL, WF_FT_ENUM, "\"Class\"", WF_K_STRING, 0, RL_TEXTS},
    {"text_position", NULL, WF_FT_ENUM, "\"TOP_LEFT\"", WF_K_STRING, 0, POSITIONS},
    {"text_color", NULL, WF_FT_STRING, "\"WHITE\"", WF_K_STRING, 0, NULL},
    {"font_family", NULL, WF_FT_STRING, "\"Geist Mono\"", WF_K_STRING, 0, NULL},
    {"text_size_mode", NULL, WF_FT_ENUM, "\"Manual\"", WF_K_STRING, 0, RL_SIZE_MODES},
    {"font_size", NULL, WF_FT_INT_POS, "14", WF_K_INT, 0, NULL},
    {"text_padding", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"border_radius", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
    {"max_line_length", NULL, WF_FT_INT_POS, "null", WF_K_INT, WF_F_NULLABLE, NULL},
};
static const struct wf_block td_v1 = {
    .types = (const char *const[]){"roboflow_core/text_display@v1", NULL},
    .fields = td_fields, .nfields = ARRAY_LEN(td_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = td_run, .check = td_check,
};
static const struct wf_block rl_v1 = {
    .types = (const char *const[]){"roboflow_core/rich_label_visualization@v1", NULL},
    .fields = rl_fields, .nfields = ARRAY_LEN(rl_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = rl_run,
};

const struct wf_block *const wf_blocks_video_viz[] = {&trace_v1, &heat_v1, &grid_v1, &icon_v1, &td_v1, &rl_v1, NULL};
