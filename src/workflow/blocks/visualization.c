/*
 * blocks/visualization.c — the visualization block family: Roboflow's
 * core_steps/visualizations, which wrap supervision's annotators.
 *
 * Every block here takes an image (and usually predictions), draws on a
 * copy of the pixels and outputs "image" with the metadata of its input
 * (WorkflowImageData.copy_and_replace).  We always draw on a copy: values
 * are shared between steps, so copy_image=false cannot be honoured by
 * mutating the input; the output pixels are the same either way.
 *
 * Colours follow supervision: a palette (DEFAULT, ROBOFLOW, LEGACY or
 * CUSTOM from custom_colors) indexed by color_axis — CLASS (class_id),
 * INDEX (position of the detection) or TRACK (tracker id) — modulo its
 * length.  Coordinates are cast to int as numpy's astype(int) does
 * (truncation toward zero), anchors as sv.Detections.get_anchors_coordinates.
 *
 * Text is FreeType (vision's vis_text_*_ex), sized so that text_scale
 * matches cv2's FONT_HERSHEY_SIMPLEX height, text_thickness widening the
 * strokes as cv2's thickness does.  Instance masks are the detections'
 * polygons rasterized as sv's polygon_to_mask does (points truncated to
 * int, cv2.fillPoly).
 *
 * Blocks: bounding_box (and round boxes), label v1/v2, blur, pixelate,
 * polygon, mask, dot, circle, corner, crop, polygon_zone,
 * classification_label, line_counter, ellipse, triangle, color,
 * background_color, keypoint, halo, reference_path, model_comparison.
 *
 * Known differences from Roboflow: label widths come from DejaVu Sans, not
 * Hershey (heights use cv2's getTextSize formula); polygon outlines are the
 * detections' polygons rather than re-traced mask contours.
 * Not done: the matplotlib palettes ("Matplotlib Viridis", ...) need
 * matplotlib's colour tables and fail with a clear error; the stateful
 * video visualizations (trace, heatmap), text_display, grid, icon and
 * rich_label are not implemented.
 */
#include "workflow/wf_block.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/blocks/viz_int.h"

/* ---- limits on parameters (every size from a definition is bounded) --------- */
#define VIZ_MAX_THICKNESS 1000
#define VIZ_MAX_RADIUS 10000
#define VIZ_MAX_PADDING 10000
#define VIZ_MAX_CUSTOM_COLORS 1024
#define VIZ_MAX_LABEL 1024 /* bytes of one label */
#define VIZ_COORD_MAX 1e7  /* detection coordinates are clamped to +-this before int casts */

/* ---- shared choices ------------------------------------------------------------ */
static const char *const PALETTES[] = {
    "DEFAULT",            "CUSTOM",            "ROBOFLOW",          "LEGACY",
    "Matplotlib Viridis",
    "Matplotlib Plasma",  "Matplotlib Inferno", "Matplotlib Magma", "Matplotlib Cividis",
    "Matplotlib Pastel1", "Matplotlib Pastel2", "Matplotlib Paired", "Matplotlib Accent",
    "Matplotlib Dark2",   "Matplotlib Set1",   "Matplotlib Set2",   "Matplotlib Set3",
    "Matplotlib Tab10",   "Matplotlib Tab20",  "Matplotlib Tab20b", "Matplotlib Tab20c",
    NULL,
};
static const char *const AXES[] = {"INDEX", "CLASS", "TRACK", NULL};
static const char *const POSITIONS[] = {
    "CENTER",      "CENTER_LEFT",   "CENTER_RIGHT",  "TOP_CENTER",   "TOP_LEFT",
    "TOP_RIGHT",   "BOTTOM_LEFT",   "BOTTOM_CENTER", "BOTTOM_RIGHT", "CENTER_OF_MASS",
    NULL,
};
static const char *const CLS_POSITIONS[] = {
    "CENTER",      "CENTER_LEFT",   "CENTER_RIGHT", "TOP_CENTER", "TOP_LEFT",
    "TOP_RIGHT",   "BOTTOM_LEFT",   "BOTTOM_CENTER", "BOTTOM_RIGHT", NULL,
};
static const char *const CLS_TEXTS[] = {"Class", "Confidence", "Class and Confidence", NULL};
static const char *const SIZE_MODES[] = {"Manual", "Automatic", NULL};

#define F_IMAGE {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL}
#define F_COPY {"copy_image", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL}
#define F_PRED(k) {"predictions", NULL, WF_FT_DETS, NULL, (k), WF_F_SELECTOR_ONLY, NULL}
#define F_COLORABLE                                                                      \
    {"color_palette", NULL, WF_FT_ENUM, "\"DEFAULT\"", WF_K_STRING, 0, PALETTES},        \
        {"palette_size", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},                      \
        {"custom_colors", NULL, WF_FT_LIST, "[]", WF_K_LIST, 0, NULL},                   \
        {"color_axis", NULL, WF_FT_ENUM, "\"CLASS\"", WF_K_STRING, 0, AXES}

static const struct wf_output OUT_IMAGE[] = {{"image", WF_K_IMAGE}};

/* ---- colours ------------------------------------------------------------------- */

/* supervision/draw/color.py palettes, "RRGGBB". */
static const char *const PAL_DEFAULT[] = {
    "A351FB", "FF4040", "FFA1A0", "FF7633", "FFB633", "D1D435", "4CFB12",
    "94CF1A", "40DE8A", "1B9640", "00D6C1", "2E9CAA", "00C4FF", "364797",
    "6675FF", "0019EF", "863AFF", "530087", "CD3AFF", "FF97CA", "FF39C9",
};
static const char *const PAL_LEGACY[] = {
    "A351FB", "E6194B", "3CB44B", "FFE119", "0082C8", "F58231", "911EB4", "46F0F0", "F032E6",
    "D2F53C", "FABEBE", "008080", "E6BEFF", "AA6E28", "FFFAC8", "800000", "AAFFC3",
};
static const char *const PAL_ROBOFLOW[] = {"C28DFC", "A351FB", "8315F9",
                                           "6706CE", "5905B3", "4D049A"};

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* sv.Color.from_hex: "#RGB", "#RRGGBB" (the '#' optional here). */
static int color_from_hex(const char *s, struct vis_color *out)
{
    int v[6];
    size_t n;
    if (*s == '#')
        s++;
    n = strlen(s);
    if (n != 3 && n != 6)
        return ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if ((v[i] = hexval((unsigned char)s[i])) < 0)
            return ERR_INVALID;
    if (n == 3)
        *out = VIS_RGB(v[0] * 17, v[1] * 17, v[2] * 17);
    else
        *out = VIS_RGB(v[0] * 16 + v[1], v[2] * 16 + v[3], v[4] * 16 + v[5]);
    return 0;
}

int viz__color_parse(const char *s, struct vis_color *out)
{
    int a, b, c;
    char tail;
    static const struct {
        const char *name;
        const char *hex;
    } names[] = {
        {"WHITE", "FFFFFF"}, {"BLACK", "000000"}, {"GREY", "808080"},  {"RED", "FF0000"},
        {"GREEN", "00FF00"}, {"BLUE", "0000FF"},  {"YELLOW", "FFFF00"}, {"ROBOFLOW", "A351FB"},
    };
    if (!s)
        return ERR_INVALID;
    if (s[0] == '#')
        return color_from_hex(s, out);
    /* inference's str_to_color: "rgb(r, g, b)" / "bgr(b, g, r)" */
    if (!strncmp(s, "rgb(", 4) || !strncmp(s, "bgr(", 4)) {
        if (sscanf(s + 4, "%d , %d , %d %c", &a, &b, &c, &tail) != 4 || tail != ')')
            return ERR_INVALID;
        if (a < 0 || a > 255 || b < 0 || b > 255 || c < 0 || c > 255)
            return ERR_INVALID;
        *out = s[0] == 'r' ? VIS_RGB(a, b, c) : VIS_RGB(c, b, a);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (!strcasecmp(s, names[i].name))
            return color_from_hex(names[i].hex, out);
    return ERR_INVALID;
}

void viz__palette_release(struct viz_palette *p)
{
    free(p->c);
    p->c = NULL;
    p->n = 0;
}

/* ColorableVisualizationBlock.getPalette.  On failure writes a message. */
int viz__palette_init(struct viz_palette *p, const char *name, const json_t *custom, char *err,
                      size_t errlen)
{
    const char *const *hex = NULL;
    size_t n = 0;

    p->c = NULL;
    p->n = 0;
    if (!name)
        name = "DEFAULT";
    if (!strcmp(name, "CUSTOM")) {
        size_t k;
        const json_t *it;
        if (!json_is_array(custom) || json_array_size(custom) == 0) {
            snprintf(err, errlen, "color_palette CUSTOM needs a non-empty custom_colors list");
            return ERR_INVALID;
        }
        if (json_array_size(custom) > VIZ_MAX_CUSTOM_COLORS) {
            snprintf(err, errlen, "custom_colors: more than %d colours", VIZ_MAX_CUSTOM_COLORS);
            return ERR_LIMIT;
        }
        p->c = xcalloc(json_array_size(custom), sizeof *p->c);
        json_array_foreach(custom, k, it)
        {
            if (viz__color_parse(json_string_value(it), &p->c[k]) < 0) {
                snprintf(err, errlen, "custom_colors[%zu]: invalid colour", k);
                viz__palette_release(p);
                return ERR_INVALID;
            }
        }
        p->n = json_array_size(custom);
        return 0;
    }
    if (!strcmp(name, "DEFAULT"))
        hex = PAL_DEFAULT, n = ARRAY_LEN(PAL_DEFAULT);
    else if (!strcmp(name, "ROBOFLOW"))
        hex = PAL_ROBOFLOW, n = ARRAY_LEN(PAL_ROBOFLOW);
    else if (!strcmp(name, "LEGACY"))
        hex = PAL_LEGACY, n = ARRAY_LEN(PAL_LEGACY);
    if (!hex) {
        snprintf(err, errlen, "color_palette '%s' is not supported (matplotlib palettes are not "
                              "available)", name);
        return ERR_UNSUPPORTED;
    }
    p->c = xcalloc(n, sizeof *p->c);
    for (size_t i = 0; i < n; i++)
        color_from_hex(hex[i], &p->c[i]);
    p->n = n;
    return 0;
}

int viz__axis_parse(const char *s)
{
    if (!s || !strcmp(s, "CLASS"))
        return VIZ_AXIS_CLASS;
    if (!strcmp(s, "INDEX"))
        return VIZ_AXIS_INDEX;
    if (!strcmp(s, "TRACK"))
        return VIZ_AXIS_TRACK;
    return ERR_INVALID;
}

/* supervision resolve_color_idx + ColorPalette.by_idx. */
int viz__color_for(const struct viz_palette *p, int axis, size_t idx, int class_id,
                   int64_t tracker_id, struct vis_color *out, char *err, size_t errlen)
{
    int64_t k;
    switch (axis) {
    case VIZ_AXIS_INDEX:
        k = (int64_t)idx;
        break;
    case VIZ_AXIS_TRACK:
        if (tracker_id == WF_NO_TRACKER) {
            snprintf(err, errlen, "could not resolve color by track because detections do not "
                                  "have tracker_id");
            return ERR_INVALID;
        }
        k = tracker_id;
        break;
    default:
        k = class_id;
        break;
    }
    if (k < 0) {
        snprintf(err, errlen, "color index %lld is negative", (long long)k);
        return ERR_INVALID;
    }
    *out = p->c[(size_t)(k % (int64_t)p->n)];
    return 0;
}

/* ---- geometry ------------------------------------------------------------------ */

int viz__trunc(double v)
{
    if (!(v == v))
        return 0;
    if (v > VIZ_COORD_MAX)
        v = VIZ_COORD_MAX;
    if (v < -VIZ_COORD_MAX)
        v = -VIZ_COORD_MAX;
    return (int)v;
}

/* Python's a // b for b > 0. */
static int floordiv(int a, int b)
{
    int q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

int viz__pos_parse(const char *s)
{
    for (int i = 0; POSITIONS[i]; i++)
        if (s && !strcmp(s, POSITIONS[i]))
            return i;
    return ERR_INVALID;
}

/* Rasterize the mask polygon of d into a GRAY image covering [ox, ox+w) x
 * [oy, oy+h) of an img_w x img_h image (points truncated to int as
 * polygon_to_mask).  *out NULL when the mask is empty. */
int viz__det_mask(const struct wf_det *d, int img_w, int img_h, struct vis_image **out, int *ox,
                  int *oy)
{
    int *pts = NULL, minx = INT32_MAX, miny = INT32_MAX, maxx = INT32_MIN, maxy = INT32_MIN;
    int rc = 0;
    struct vis_image *m = NULL;

    *out = NULL;
    if (!d->has_mask || d->npoly < 3)
        return 0;
    if (d->npoly > VIS_MAX_POLY_POINTS)
        return ERR_LIMIT;
    pts = xcalloc(d->npoly * 2, sizeof *pts);
    for (size_t k = 0; k < d->npoly; k++) {
        int x = viz__trunc(d->poly[k].x), y = viz__trunc(d->poly[k].y);
        pts[2 * k] = x, pts[2 * k + 1] = y;
        minx = x < minx ? x : minx, maxx = x > maxx ? x : maxx;
        miny = y < miny ? y : miny, maxy = y > maxy ? y : maxy;
    }
    minx = minx < 0 ? 0 : minx, miny = miny < 0 ? 0 : miny;
    maxx = maxx >= img_w ? img_w - 1 : maxx, maxy = maxy >= img_h ? img_h - 1 : maxy;
    if (minx > maxx || miny > maxy)
        goto out;
    m = vis_image_new(maxx - minx + 1, maxy - miny + 1, VIS_GRAY);
    if (!m) {
        rc = ERR_NOMEM;
        goto out;
    }
    for (size_t k = 0; k < d->npoly; k++)
        pts[2 * k] -= minx, pts[2 * k + 1] -= miny;
    rc = vis_fill_polygon(m, pts, (int)d->npoly, VIS_RGB(255, 255, 255), VIS_FILL_EVEN_ODD);
    if (rc < 0)
        goto out;
    *out = m, *ox = minx, *oy = miny;
    m = NULL;
out:
    vis_image_free(m);
    free(pts);
    return rc;
}

/* sv.Detections.area for one detection: mask pixel count or box area. */
static double det_area(const struct wf_det *d, int img_w, int img_h, bool masks)
{
    if (masks) {
        struct vis_image *m = NULL;
        int ox, oy;
        double n = 0;
        if (viz__det_mask(d, img_w, img_h, &m, &ox, &oy) < 0 || !m)
            return 0;
        for (int y = 0; y < m->h; y++)
            for (int x = 0; x < m->w; x++)
                n += *vis_px(m, x, y) != 0;
        vis_image_free(m);
        return n;
    }
    return ((double)d->x2 - d->x1) * ((double)d->y2 - d->y1);
}

static bool dets_have_masks(const struct wf_dets *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        if (ds->d[i].has_mask)
            return true;
    return false;
}

/* sv get_anchors_coordinates, then astype(int). */
int viz__anchor(const struct wf_det *d, int pos, int img_w, int img_h, int *ax, int *ay)
{
    double x1 = d->x1, y1 = d->y1, x2 = d->x2, y2 = d->y2, cx = (x1 + x2) / 2,
           cy = (y1 + y2) / 2, x, y;
    switch (pos) {
    case VIZ_POS_CENTER_LEFT: x = x1, y = cy; break;
    case VIZ_POS_CENTER_RIGHT: x = x2, y = cy; break;
    case VIZ_POS_TOP_CENTER: x = cx, y = y1; break;
    case VIZ_POS_TOP_LEFT: x = x1, y = y1; break;
    case VIZ_POS_TOP_RIGHT: x = x2, y = y1; break;
    case VIZ_POS_BOTTOM_LEFT: x = x1, y = y2; break;
    case VIZ_POS_BOTTOM_CENTER: x = cx, y = y2; break;
    case VIZ_POS_BOTTOM_RIGHT: x = x2, y = y2; break;
    case VIZ_POS_CENTER_OF_MASS: {
        struct vis_image *m = NULL;
        int ox, oy;
        double sx = 0, sy = 0, n = 0;
        if (!d->has_mask)
            return ERR_INVALID;
        if (viz__det_mask(d, img_w, img_h, &m, &ox, &oy) < 0)
            return ERR_INVALID;
        if (m) {
            for (int yy = 0; yy < m->h; yy++)
                for (int xx = 0; xx < m->w; xx++)
                    if (*vis_px(m, xx, yy))
                        sx += xx + ox, sy += yy + oy, n++;
            vis_image_free(m);
        }
        /* numpy: mean of an empty mask is nan -> 0 after the cast here */
        x = n > 0 ? sx / n : 0, y = n > 0 ? sy / n : 0;
        break;
    }
    default: x = cx, y = cy; break;
    }
    *ax = viz__trunc(x), *ay = viz__trunc(y);
    return 0;
}

/* ---- text and labels ---------------------------------------------------------- */

/* Text thickness as cv2's: 1..px (vision widens strokes by one pixel per step). */
static int text_thickness(int thickness, int px)
{
    return thickness < 1 ? 1 : thickness > px ? px : thickness;
}

/* Draw text with its baseline origin at (x, y) (cv2.putText's org). */
int viz__text_draw(struct vis_image *img, struct vis_font *f, const char *s, int px, int x, int y,
                   int thickness, struct vis_color c)
{
    if (!*s)
        return 0;
    return vis_text_draw_ex(img, f, s, px, text_thickness(thickness, px), x, y, c);
}

/* cv2.getTextSize's (w, h) for FONT_HERSHEY_SIMPLEX at `scale`: the width is
 * the FreeType advance width of the text at the matching pixel size; the
 * height is cv2's own formula, round(21 * scale + (thickness + 1) / 2), so
 * that label rectangles are as tall as supervision's (the glyphs' cap
 * height matches it by construction of vis_text_px_for_scale). */
int viz__text_size(struct vis_font *f, const char *s, double scale, int thickness, int *w,
                   int *h)
{
    struct vis_text_metrics m;
    int px = vis_text_px_for_scale(scale), rc = 0;
    if (*s && (rc = vis_text_measure_ex(f, s, px, text_thickness(thickness, px), &m)) < 0)
        return rc;
    *w = *s ? m.width : 0;
    *h = (int)lrint(21.0 * scale + (thickness + 1) / 2);
    return 0;
}

/* cv2.rectangle(..., FILLED) with corners included, through a view and
 * row copies (vision's per-pixel span fill is the slow part of labels). */
static void fill_rect(struct vis_image *img, int x1, int y1, int x2, int y2, struct vis_color c)
{
    struct vis_image view;
    int t;
    if (x1 > x2)
        t = x1, x1 = x2, x2 = t;
    if (y1 > y2)
        t = y1, y1 = y2, y2 = t;
    if (vis_image_view(img, x1, y1, x2 - x1 + 1, y2 - y1 + 1, &view) == 0)
        vis_image_fill(&view, c);
}

/* LabelAnnotator.draw_rounded_rectangle (filled). */
void viz__rounded_rect(struct vis_image *img, int x1, int y1, int x2, int y2, struct vis_color c,
                       int radius)
{
    int w = x2 - x1, h = y2 - y1, mn = w < h ? w : h;
    int r = radius < floordiv(mn, 2) ? radius : floordiv(mn, 2);
    if (r <= 0) {
        /* cv2.rectangle filled twice over the same box: one rectangle */
        fill_rect(img, x1, y1, x2, y2, c);
        return;
    }
    fill_rect(img, x1 + r, y1, x2 - r, y2, c);
    fill_rect(img, x1, y1 + r, x2, y2 - r, c);
    vis_draw_circle(img, x1 + r, y1 + r, r, c, VIS_FILLED);
    vis_draw_circle(img, x2 - r, y1 + r, r, c, VIS_FILLED);
    vis_draw_circle(img, x1 + r, y2 - r, r, c, VIS_FILLED);
    vis_draw_circle(img, x2 - r, y2 - r, r, c, VIS_FILLED);
}

/* sv resolve_text_background_xyxy. */
static void text_bg_xyxy(int pos, int cx, int cy, int w, int h, int xyxy[4])
{
    int hw = floordiv(w, 2), hh = floordiv(h, 2);
    switch (pos) {
    case VIZ_POS_TOP_LEFT: xyxy[0] = cx, xyxy[1] = cy - h, xyxy[2] = cx + w, xyxy[3] = cy; break;
    case VIZ_POS_TOP_RIGHT: xyxy[0] = cx - w, xyxy[1] = cy - h, xyxy[2] = cx, xyxy[3] = cy; break;
    case VIZ_POS_TOP_CENTER:
        xyxy[0] = cx - hw, xyxy[1] = cy - h, xyxy[2] = cx + hw, xyxy[3] = cy;
        break;
    case VIZ_POS_BOTTOM_LEFT: xyxy[0] = cx, xyxy[1] = cy, xyxy[2] = cx + w, xyxy[3] = cy + h; break;
    case VIZ_POS_BOTTOM_RIGHT: xyxy[0] = cx - w, xyxy[1] = cy, xyxy[2] = cx, xyxy[3] = cy + h; break;
    case VIZ_POS_BOTTOM_CENTER:
        xyxy[0] = cx - hw, xyxy[1] = cy, xyxy[2] = cx + hw, xyxy[3] = cy + h;
        break;
    case VIZ_POS_CENTER_LEFT:
        xyxy[0] = cx - w, xyxy[1] = cy - hh, xyxy[2] = cx, xyxy[3] = cy + hh;
        break;
    case VIZ_POS_CENTER_RIGHT:
        xyxy[0] = cx, xyxy[1] = cy - hh, xyxy[2] = cx + w, xyxy[3] = cy + hh;
        break;
    default: /* CENTER, CENTER_OF_MASS */
        xyxy[0] = cx - hw, xyxy[1] = cy - hh, xyxy[2] = cx + hw, xyxy[3] = cy + hh;
        break;
    }
}

int viz__label_draw(struct vis_image *img, const struct viz_label_style *st, const char *text,
                    int ax, int ay, struct vis_color bg, int out_xyxy[4])
{
    int tw, th, xyxy[4], rc;
    rc = viz__text_size(st->font, text, st->scale, st->thickness, &tw, &th);
    if (rc < 0)
        return rc;
    text_bg_xyxy(st->pos, ax, ay, tw + 2 * st->padding, th + 2 * st->padding, xyxy);
    viz__rounded_rect(img, xyxy[0], xyxy[1], xyxy[2], xyxy[3], bg, st->radius);
    rc = viz__text_draw(img, st->font, text, st->px, xyxy[0] + st->padding,
                        xyxy[1] + st->padding + th, st->thickness, st->text_color);
    if (out_xyxy)
        memcpy(out_xyxy, xyxy, sizeof xyxy);
    return rc;
}

/* ---- the common frame of a visualization run -------------------------------------- */

struct viz {
    struct wf_call *c;
    size_t i;
    const struct wf_image *im;
    const struct wf_dets *ds; /* NULL for blocks without detections */
    struct viz_palette pal;
    int axis;
    struct vis_image *px; /* the copy being drawn on */
    char err[256];
};

/* Read image (+ predictions + palette when colorable) and clone the pixels. */
static int viz_begin(struct wf_call *c, size_t i, bool dets, bool colorable, struct viz *v)
{
    memset(v, 0, sizeof *v);
    v->c = c, v->i = i;
    v->im = wf_arg_image(c, i, "image");
    if (!v->im)
        return wf_call_fail(c, "field 'image': not an image");
    if (dets) {
        v->ds = wf_arg_dets(c, i, "predictions");
        if (!v->ds)
            return wf_call_fail(c, "field 'predictions': not detections");
    }
    if (colorable) {
        if ((v->axis = viz__axis_parse(wf_arg_str(c, i, "color_axis"))) < 0)
            return wf_call_fail(c, "invalid color_axis '%s'", wf_arg_str(c, i, "color_axis"));
        if (viz__palette_init(&v->pal, wf_arg_str(c, i, "color_palette"),
                              wf_arg_json(c, i, "custom_colors"), v->err, sizeof v->err) < 0)
            return wf_call_fail(c, "%s", v->err);
    }
    v->px = vis_image_clone(v->im->img);
    if (!v->px) {
        viz__palette_release(&v->pal);
        return wf_call_fail(c, "out of memory");
    }
    return 0;
}

/* Colour of detection k (palette + axis). */
static int viz_color(struct viz *v, size_t k, struct vis_color *out)
{
    const struct wf_det *d = &v->ds->d[k];
    if (viz__color_for(&v->pal, v->axis, k, d->class_id, d->tracker_id, out, v->err,
                       sizeof v->err) < 0)
        return wf_call_fail(v->c, "%s", v->err);
    return 0;
}

/* Publish (rc == 0) or drop the drawing; returns rc. */
static int viz_end(struct viz *v, int rc)
{
    viz__palette_release(&v->pal);
    if (rc == 0 && v->px)
        wf_out_image(v->c, v->i, "image", v->im, v->px);
    else
        vis_image_free(v->px);
    v->px = NULL;
    return rc;
}

static int arg_int_bounded(struct wf_call *c, size_t i, const char *name, int64_t lo, int64_t hi,
                           int64_t def, int *out)
{
    int64_t v = wf_arg_int(c, i, name, def);
    *out = 0;
    if (v < lo || v > hi)
        return wf_call_fail(c, "field '%s': %lld is out of range [%lld, %lld]", name,
                            (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

/* cv2 thickness: 0 draws as 1, negative fills. */
static int cv_thickness(int t)
{
    return t < 0 ? VIS_FILLED : t == 0 ? 1 : t;
}

/* ---- bounding_box_visualization ----------------------------------------------------- */

static int bbox_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        int rc, t;
        double roundness = wf_arg_double(c, i, "roundness", 0.0);
        if ((rc = arg_int_bounded(c, i, "thickness", -1, VIZ_MAX_THICKNESS, 2, &t)) < 0)
            return rc;
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        t = cv_thickness(t);
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            int x1 = viz__trunc(d->x1), y1 = viz__trunc(d->y1), x2 = viz__trunc(d->x2),
                y2 = viz__trunc(d->y2);
            struct vis_color col;
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            if (roundness <= 0) {
                vis_draw_rect(v.px, x1, y1, x2, y2, col, t);
                continue;
            }
            /* sv.RoundBoxAnnotator */
            {
                int r = abs(x1 - x2) < abs(y1 - y2)
                            ? (int)(floordiv(x2 - x1, 2) * roundness)
                            : (int)(floordiv(y2 - y1, 2) * roundness);
                int lt = t < 0 ? 1 : t;
                vis_draw_ellipse(v.px, x1 + r, y1 + r, r, r, 0, 180, 270, col, lt);
                vis_draw_ellipse(v.px, x2 - r, y1 + r, r, r, 0, 270, 360, col, lt);
                vis_draw_ellipse(v.px, x2 - r, y2 - r, r, r, 0, 0, 90, col, lt);
                vis_draw_ellipse(v.px, x1 + r, y2 - r, r, r, 0, 90, 180, col, lt);
                vis_draw_line(v.px, x1 + r, y1, x2 - r, y1, col, lt);
                vis_draw_line(v.px, x2, y1 + r, x2, y2 - r, col, lt);
                vis_draw_line(v.px, x1 + r, y2, x2 - r, y2, col, lt);
                vis_draw_line(v.px, x1, y1 + r, x1, y2 - r, col, lt);
            }
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field bbox_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE,
    {"thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
    {"roundness", NULL, WF_FT_FLOAT01, "0.0", WF_K_FLOAT, 0, NULL},
};
static const char *const bbox_types[] = {"roboflow_core/bounding_box_visualization@v1",
                                         "BoundingBoxVisualization", NULL};
static const struct wf_block bbox_v1 = {
    .types = bbox_types, .fields = bbox_fields, .nfields = ARRAY_LEN(bbox_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = bbox_run,
};

/* ---- label_visualization v1 / v2 -------------------------------------------------------- */

/* Python str() of a JSON scalar (repr of floats: shortest round-trip). */
static void py_str(const json_t *j, char *out, size_t cap)
{
    if (json_is_string(j)) {
        snprintf(out, cap, "%s", json_string_value(j));
    } else if (json_is_integer(j)) {
        snprintf(out, cap, "%lld", (long long)json_integer_value(j));
    } else if (json_is_real(j)) {
        double d = json_real_value(j);
        for (int p = 1; p <= 17; p++) {
            snprintf(out, cap, "%.*g", p, d);
            if (strtod(out, NULL) == d)
                break;
        }
        if (!strpbrk(out, ".eni"))
            strncat(out, ".0", cap - strlen(out) - 1);
    } else if (json_is_true(j)) {
        snprintf(out, cap, "True");
    } else if (json_is_false(j)) {
        snprintf(out, cap, "False");
    } else if (json_is_null(j)) {
        snprintf(out, cap, "None");
    } else {
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(out, cap, "%s", s ? s : "");
        free(s);
    }
}

static bool py_truthy(const json_t *j)
{
    if (!j || json_is_null(j) || json_is_false(j))
        return false;
    if (json_is_number(j))
        return json_number_value(j) != 0;
    if (json_is_string(j))
        return json_string_length(j) > 0;
    if (json_is_array(j))
        return json_array_size(j) > 0;
    if (json_is_object(j))
        return json_object_size(j) > 0;
    return true;
}

/* f"{round(t, 2)}" for a float: two decimals, trailing zeros trimmed to one. */
static void round2_str(double t, char *out, size_t cap)
{
    size_t n;
    snprintf(out, cap, "%.2f", t);
    n = strlen(out);
    if (n >= 2 && out[n - 1] == '0' && out[n - 2] != '.')
        out[n - 1] = '\0';
}

/* label_text.build_detection_labels for detection k.  <0 with a message
 * for an unknown text type. */
int viz__det_label(const struct wf_dets *ds, size_t k, const char *text, int img_w, int img_h,
                   bool masks, char *out, size_t cap, char *err, size_t errlen)
{
    const struct wf_det *d = &ds->d[k];
    const json_t *x;
    if (!strcmp(text, "Class")) {
        snprintf(out, cap, "%s", d->class_name);
    } else if (!strcmp(text, "Tracker Id")) {
        if (d->tracker_id == WF_NO_TRACKER)
            snprintf(out, cap, "No Tracker ID");
        else
            snprintf(out, cap, "%lld", (long long)d->tracker_id);
    } else if (!strcmp(text, "Time In Zone")) {
        x = d->extra ? json_object_get(d->extra, "time_in_zone") : NULL;
        if (json_is_number(x) && json_number_value(x) != 0) {
            char num[64];
            if (json_is_integer(x))
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(x));
            else
                round2_str(json_real_value(x), num, sizeof num);
            snprintf(out, cap, "In zone: %ss", num);
        } else {
            snprintf(out, cap, "In zone: N/A");
        }
    } else if (!strcmp(text, "Confidence")) {
        snprintf(out, cap, "%.2f", (double)d->confidence);
    } else if (!strcmp(text, "Class and Confidence")) {
        snprintf(out, cap, "%s %.2f", d->class_name, (double)d->confidence);
    } else if (!strcmp(text, "Index")) {
        snprintf(out, cap, "%zu", k);
    } else if (!strcmp(text, "Dimensions")) {
        double cx = ((double)d->x1 + d->x2) / 2, cy = ((double)d->y1 + d->y2) / 2;
        snprintf(out, cap, "%d, %d %dx%d", viz__trunc(cx), viz__trunc(cy),
                 viz__trunc((double)d->x2 - d->x1), viz__trunc((double)d->y2 - d->y1));
    } else if (!strcmp(text, "Area")) {
        snprintf(out, cap, "%d", viz__trunc(det_area(d, img_w, img_h, masks)));
    } else if (!strcmp(text, "Area (mask)") || !strcmp(text, "Area (converted)")) {
        bool conv = text[6] == 'c';
        x = d->extra ? json_object_get(d->extra, conv ? "area_converted" : "area_px") : NULL;
        if (json_is_number(x))
            snprintf(out, cap, "Area (%s): %.2f", conv ? "conv" : "mask", json_number_value(x));
        else
            snprintf(out, cap, "Area (%s): N/A", conv ? "conv" : "mask");
    } else if (!strcmp(text, "class_name")) {
        snprintf(out, cap, "%s", d->class_name);
    } else if (!strcmp(text, "detection_id")) {
        snprintf(out, cap, "%s", d->detection_id);
    } else if (!strcmp(text, "parent_id")) {
        snprintf(out, cap, "%s", d->parent_id);
    } else if (!strcmp(text, "root_parent_id")) {
        snprintf(out, cap, "%s", d->root_parent_id);
    } else if (d->extra && (x = json_object_get(d->extra, text))) {
        if (py_truthy(x))
            py_str(x, out, cap);
        else
            out[0] = '\0';
    } else {
        snprintf(err, errlen, "invalid text type: %s", text);
        return ERR_INVALID;
    }
    return 0;
}

/* Read the text style fields shared by label and classification label. */
static int label_style_read(struct wf_call *c, size_t i, double scale, struct viz_label_style *st)
{
    const char *tc = wf_arg_str(c, i, "text_color");
    int rc;
    st->font = vis_font_default();
    if (!st->font)
        return wf_call_fail(c, "no font available (set VBATCH_FONT or install %s)",
                            VIS_FONT_DEFAULT_PATH);
    if ((st->pos = viz__pos_parse(wf_arg_str(c, i, "text_position"))) < 0)
        return wf_call_fail(c, "invalid text_position '%s'", wf_arg_str(c, i, "text_position"));
    if (viz__color_parse(tc, &st->text_color) < 0)
        return wf_call_fail(c, "invalid text color: %s; valid formats are #RRGGBB, rgb(R, G, B), "
                               "bgr(B, G, R), or a valid color name (like WHITE, BLACK, or BLUE)",
                            tc ? tc : "null");
    if (!(scale > 0 && scale <= 100))
        return wf_call_fail(c, "field 'text_scale': %g is out of range (0, 100]", scale);
    st->px = vis_text_px_for_scale(scale);
    st->scale = scale;
    if ((rc = arg_int_bounded(c, i, "text_thickness", 0, 100, 1, &st->thickness)) < 0 ||
        (rc = arg_int_bounded(c, i, "text_padding", -VIZ_MAX_PADDING, VIZ_MAX_PADDING, 10,
                              &st->padding)) < 0 ||
        (rc = arg_int_bounded(c, i, "border_radius", -VIZ_MAX_RADIUS, VIZ_MAX_RADIUS, 0,
                              &st->radius)) < 0)
        return rc;
    return 0;
}

static int label_run_common(struct wf_call *c, bool v2)
{
    char label[VIZ_MAX_LABEL];
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct viz_label_style st;
        const char *text = wf_arg_str(c, i, "text");
        double scale = wf_arg_double(c, i, "text_scale", 1.0);
        bool masks;
        int rc;

        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        if (v.ds->n == 0) { /* no detections: the image unchanged */
            viz_end(&v, 0);
            continue;
        }
        if (v2) {
            const char *mode = wf_arg_str(c, i, "text_size_mode");
            if (mode && !strcmp(mode, "Automatic")) {
                /* label_text.compute_adaptive_label_text_scale */
                int mn = v.px->w < v.px->h ? v.px->w : v.px->h;
                scale = 0.7 * (mn / 1080.0) * (scale / 0.7);
                scale = scale < 0.3 ? 0.3 : scale > 5.0 ? 5.0 : scale;
            }
        }
        if ((rc = label_style_read(c, i, scale, &st)) < 0)
            return viz_end(&v, rc);
        if (!text)
            text = "Class";
        masks = dets_have_masks(v.ds);
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            struct vis_color bg;
            int ax, ay;
            if ((rc = viz__det_label(v.ds, k, text, v.px->w, v.px->h, masks, label, sizeof label,
                                     v.err, sizeof v.err)) < 0) {
                rc = wf_call_fail(c, "%s", v.err);
                break;
            }
            if ((rc = viz_color(&v, k, &bg)) < 0)
                break;
            if (viz__anchor(&v.ds->d[k], st.pos, v.px->w, v.px->h, &ax, &ay) < 0) {
                rc = wf_call_fail(c, "text_position CENTER_OF_MASS needs instance masks");
                break;
            }
            if ((rc = viz__label_draw(v.px, &st, label, ax, ay, bg, NULL)) < 0)
                rc = wf_call_fail(c, "cannot draw label '%s'", label);
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static int label_v1_run(struct wf_call *c) { return label_run_common(c, false); }
static int label_v2_run(struct wf_call *c) { return label_run_common(c, true); }

#define F_LABEL_TEXT                                                                     \
    {"text", NULL, WF_FT_STRING, "\"Class\"", WF_K_STRING, 0, NULL},                     \
        {"text_position", NULL, WF_FT_ENUM, "\"TOP_LEFT\"", WF_K_STRING, 0, POSITIONS},  \
        {"text_color", NULL, WF_FT_STRING, "\"WHITE\"", WF_K_STRING, 0, NULL}
#define F_LABEL_STYLE                                                                    \
    {"text_scale", NULL, WF_FT_FLOAT, "1.0", WF_K_FLOAT, 0, NULL},                       \
        {"text_thickness", NULL, WF_FT_INT, "1", WF_K_INT, 0, NULL},                     \
        {"text_padding", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},                      \
        {"border_radius", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL}

static const struct wf_field label_v1_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE, F_LABEL_TEXT, F_LABEL_STYLE,
};
static const struct wf_field label_v2_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE, F_LABEL_TEXT,
    {"text_size_mode", NULL, WF_FT_ENUM, "\"Manual\"", WF_K_STRING, 0, SIZE_MODES},
    F_LABEL_STYLE,
};
static const char *const label_v1_types[] = {"roboflow_core/label_visualization@v1",
                                             "LabelVisualization", NULL};
static const char *const label_v2_types[] = {"roboflow_core/label_visualization@v2", NULL};
static const struct wf_block label_v1 = {
    .types = label_v1_types, .fields = label_v1_fields, .nfields = ARRAY_LEN(label_v1_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = label_v1_run,
};
static const struct wf_block label_v2 = {
    .types = label_v2_types, .fields = label_v2_fields, .nfields = ARRAY_LEN(label_v2_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = label_v2_run,
};

/* ---- blur / pixelate ------------------------------------------------------------------- */

/* sv clip_boxes + astype(int): the box clipped to [0, w] x [0, h]. */
static bool det_box_clipped(const struct wf_det *d, int w, int h, int *x, int *y, int *bw,
                            int *bh)
{
    double x1 = d->x1 < 0 ? 0 : d->x1 > w ? w : d->x1, x2 = d->x2 < 0 ? 0 : d->x2 > w ? w : d->x2;
    double y1 = d->y1 < 0 ? 0 : d->y1 > h ? h : d->y1, y2 = d->y2 < 0 ? 0 : d->y2 > h ? h : d->y2;
    *x = viz__trunc(x1), *y = viz__trunc(y1);
    *bw = viz__trunc(x2) - *x, *bh = viz__trunc(y2) - *y;
    return *bw > 0 && *bh > 0;
}

static int roi_filter_run(struct wf_call *c, bool pixelate)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        int rc, size;
        if ((rc = arg_int_bounded(c, i, pixelate ? "pixel_size" : "kernel_size", 1,
                                  VIS_MAX_KERNEL, pixelate ? 20 : 15, &size)) < 0)
            return rc;
        if ((rc = viz_begin(c, i, true, false, &v)) < 0)
            return rc;
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            struct vis_image roi;
            int x, y, w, h;
            if (!det_box_clipped(&v.ds->d[k], v.px->w, v.px->h, &x, &y, &w, &h))
                continue; /* an empty region (cv2 would reject it) */
            if (vis_image_view(v.px, x, y, w, h, &roi) < 0)
                continue;
            rc = pixelate ? vis_pixelate(&roi, size) : cv__box_blur(&roi, size, size);
            if (rc < 0)
                rc = wf_call_fail(c, "%s failed (%s)", pixelate ? "pixelate" : "blur",
                                  err_str(rc));
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static int blur_run(struct wf_call *c) { return roi_filter_run(c, false); }
static int pixelate_run(struct wf_call *c) { return roi_filter_run(c, true); }

static const struct wf_field blur_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS),
    {"kernel_size", NULL, WF_FT_INT, "15", WF_K_INT, 0, NULL},
};
static const char *const blur_types[] = {"roboflow_core/blur_visualization@v1",
                                         "BlurVisualization", NULL};
static const struct wf_block blur_v1 = {
    .types = blur_types, .fields = blur_fields, .nfields = ARRAY_LEN(blur_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = blur_run,
};
static const struct wf_field pixelate_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS),
    {"pixel_size", NULL, WF_FT_INT, "20", WF_K_INT, 0, NULL},
};
static const char *const pixelate_types[] = {"roboflow_core/pixelate_visualization@v1",
                                             "PixelateVisualization", NULL};
static const struct wf_block pixelate_v1 = {
    .types = pixelate_types, .fields = pixelate_fields, .nfields = ARRAY_LEN(pixelate_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = pixelate_run,
};

/* ---- polygon_visualization --------------------------------------------------------------- */

/* inference's PolygonAnnotator: the outline of each mask (here: its
 * polygon, points truncated to int); boxes when there are no masks. */
static int polygon_common(struct wf_call *c, bool v2);
static int polygon_run(struct wf_call *c) { return polygon_common(c, false); }
/* v2 is sv.PolygonAnnotator: without masks nothing is drawn. */
static int polygon_v2_run(struct wf_call *c) { return polygon_common(c, true); }

static int polygon_common(struct wf_call *c, bool v2)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        int rc, t;
        bool masks;
        if ((rc = arg_int_bounded(c, i, "thickness", -1, VIZ_MAX_THICKNESS, 2, &t)) < 0)
            return rc;
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        t = cv_thickness(t);
        masks = dets_have_masks(v.ds);
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            struct vis_color col;
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            if (!masks && v2)
                break;
            if (!masks) {
                vis_draw_rect(v.px, viz__trunc(d->x1), viz__trunc(d->y1), viz__trunc(d->x2),
                              viz__trunc(d->y2), col, t);
                continue;
            }
            if (!d->has_mask || d->npoly < 2)
                continue;
            if (d->npoly > VIS_MAX_POLY_POINTS) {
                rc = wf_call_fail(c, "polygon of detection %zu has too many points", k);
                break;
            }
            {
                int *pts = xcalloc(d->npoly * 2, sizeof *pts);
                for (size_t p = 0; p < d->npoly; p++)
                    pts[2 * p] = viz__trunc(d->poly[p].x),
                    pts[2 * p + 1] = viz__trunc(d->poly[p].y);
                vis_draw_polygon(v.px, pts, (int)d->npoly, col, t < 0 ? 1 : t);
                free(pts);
            }
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field polygon_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_IS), F_COLORABLE,
    {"thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
};
static const char *const polygon_types[] = {"roboflow_core/polygon_visualization@v1",
                                            "PolygonVisualization", NULL};
static const struct wf_block polygon_v1 = {
    .types = polygon_types, .fields = polygon_fields, .nfields = ARRAY_LEN(polygon_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = polygon_run,
};
static const char *const polygon_v2_types[] = {"roboflow_core/polygon_visualization@v2", NULL};
static const struct wf_block polygon_v2 = {
    .types = polygon_v2_types, .fields = polygon_fields, .nfields = ARRAY_LEN(polygon_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = polygon_v2_run,
};

/* ---- mask_visualization ------------------------------------------------------------------ */

struct area_idx {
    double area;
    size_t k;
};

static int area_cmp(const void *a, const void *b)
{
    const struct area_idx *x = a, *y = b;
    if (x->area != y->area)
        return x->area < y->area ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

/* cv2.addWeighted(src, a, dst, 1 - a, 0, dst=dst) for same-size images:
 * float32 arithmetic, rounded half to even as cv2's saturate_cast. */
static void add_weighted(struct vis_image *dst, const struct vis_image *src, double a)
{
    float fa = (float)a, fb = (float)(1.0 - a);
    int n = dst->w * vis_channels(dst);
    for (int y = 0; y < dst->h; y++) {
        uint8_t *d = vis_px(dst, 0, y);
        const uint8_t *s = vis_px(src, 0, y);
        for (int k = 0; k < n; k++) {
            long v = lrintf((float)s[k] * fa + (float)d[k] * fb);
            d[k] = (uint8_t)(v > 255 ? 255 : v < 0 ? 0 : v);
        }
    }
}

/* sv.MaskAnnotator: paint masks (largest first) on a copy, then blend the
 * copy over the scene with opacity (cv2.addWeighted). */
static int mask_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct vis_image *colored = NULL;
        struct area_idx *order = NULL;
        double opacity = wf_arg_double(c, i, "opacity", 0.5);
        int rc;
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        if (!dets_have_masks(v.ds)) {
            viz_end(&v, 0);
            continue;
        }
        colored = vis_image_clone(v.px);
        order = xcalloc(v.ds->n, sizeof *order);
        if (!colored) {
            rc = wf_call_fail(c, "out of memory");
            goto next;
        }
        for (size_t k = 0; k < v.ds->n; k++)
            order[k].k = k, order[k].area = det_area(&v.ds->d[k], v.px->w, v.px->h, true);
        qsort(order, v.ds->n, sizeof *order, area_cmp);
        for (size_t r = v.ds->n; r-- > 0 && rc == 0;) {
            const struct wf_det *d = &v.ds->d[order[r].k];
            struct vis_image *m = NULL, view;
            struct vis_color col;
            int ox, oy;
            if ((rc = viz_color(&v, order[r].k, &col)) < 0)
                break;
            if (viz__det_mask(d, v.px->w, v.px->h, &m, &ox, &oy) < 0) {
                rc = wf_call_fail(c, "cannot rasterize the mask of detection %zu", order[r].k);
                break;
            }
            if (!m)
                continue;
            if (vis_image_view(colored, ox, oy, m->w, m->h, &view) == 0)
                vis_mask_overlay(&view, m, col, 1.0);
            vis_image_free(m);
        }
        if (rc == 0)
            add_weighted(v.px, colored, opacity);
    next:
        vis_image_free(colored);
        free(order);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field mask_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_IS), F_COLORABLE,
    {"opacity", NULL, WF_FT_FLOAT01, "0.5", WF_K_FLOAT, 0, NULL},
};
static const char *const mask_types[] = {"roboflow_core/mask_visualization@v1",
                                         "MaskVisualization", NULL};
static const struct wf_block mask_v1 = {
    .types = mask_types, .fields = mask_fields, .nfields = ARRAY_LEN(mask_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = mask_run,
};

/* ---- dot / circle / corner ------------------------------------------------------------- */

static int dot_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        int rc, radius, outline, pos;
        if ((rc = arg_int_bounded(c, i, "radius", 0, VIZ_MAX_RADIUS, 4, &radius)) < 0 ||
            (rc = arg_int_bounded(c, i, "outline_thickness", -1, VIZ_MAX_THICKNESS, 0,
                                  &outline)) < 0)
            return rc;
        if ((pos = viz__pos_parse(wf_arg_str(c, i, "position"))) < 0)
            return wf_call_fail(c, "invalid position '%s'", wf_arg_str(c, i, "position"));
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            struct vis_color col;
            int x, y;
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            if (viz__anchor(&v.ds->d[k], pos, v.px->w, v.px->h, &x, &y) < 0) {
                rc = wf_call_fail(c, "position CENTER_OF_MASS needs instance masks");
                break;
            }
            vis_draw_circle(v.px, x, y, radius, col, VIS_FILLED);
            if (outline)
                vis_draw_circle(v.px, x, y, radius, VIS_RGB(0, 0, 0), cv_thickness(outline));
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field dot_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE,
    {"position", NULL, WF_FT_ENUM, "\"CENTER\"", WF_K_STRING, 0, POSITIONS},
    {"radius", NULL, WF_FT_INT, "4", WF_K_INT, 0, NULL},
    {"outline_thickness", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
};
static const char *const dot_types[] = {"roboflow_core/dot_visualization@v1", "DotVisualization",
                                        NULL};
static const struct wf_block dot_v1 = {
    .types = dot_types, .fields = dot_fields, .nfields = ARRAY_LEN(dot_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = dot_run,
};

static int circle_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        int rc, t;
        if ((rc = arg_int_bounded(c, i, "thickness", -1, VIZ_MAX_THICKNESS, 2, &t)) < 0)
            return rc;
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            int x1 = viz__trunc(d->x1), y1 = viz__trunc(d->y1), x2 = viz__trunc(d->x2),
                y2 = viz__trunc(d->y2);
            int cx = floordiv(x1 + x2, 2), cy = floordiv(y1 + y2, 2);
            double dist = sqrt((double)(x1 - cx) * (x1 - cx) + (double)(y1 - cy) * (y1 - cy));
            struct vis_color col;
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            vis_draw_circle(v.px, cx, cy, (int)dist, col, cv_thickness(t));
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field circle_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE,
    {"thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
};
static const char *const circle_types[] = {"roboflow_core/circle_visualization@v1",
                                           "CircleVisualization", NULL};
static const struct wf_block circle_v1 = {
    .types = circle_types, .fields = circle_fields, .nfields = ARRAY_LEN(circle_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = circle_run,
};

static int corner_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        int rc, t, len;
        if ((rc = arg_int_bounded(c, i, "thickness", 0, VIZ_MAX_THICKNESS, 4, &t)) < 0 ||
            (rc = arg_int_bounded(c, i, "corner_length", -VIS_MAX_SIDE, VIS_MAX_SIDE, 15,
                                  &len)) < 0)
            return rc;
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        t = cv_thickness(t);
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            int x1 = viz__trunc(d->x1), y1 = viz__trunc(d->y1), x2 = viz__trunc(d->x2),
                y2 = viz__trunc(d->y2);
            int cs[4][2] = {{x1, y1}, {x2, y1}, {x1, y2}, {x2, y2}};
            struct vis_color col;
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            for (int q = 0; q < 4; q++) {
                int x = cs[q][0], y = cs[q][1];
                int xe = x == x1 ? x + len : x - len, ye = y == y1 ? y + len : y - len;
                vis_draw_line(v.px, x, y, xe, y, col, t);
                vis_draw_line(v.px, x, y, x, ye, col, t);
            }
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field corner_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE,
    {"thickness", NULL, WF_FT_INT, "4", WF_K_INT, 0, NULL},
    {"corner_length", NULL, WF_FT_INT, "15", WF_K_INT, 0, NULL},
};
static const char *const corner_types[] = {"roboflow_core/corner_visualization@v1",
                                           "CornerVisualization", NULL};
static const struct wf_block corner_v1 = {
    .types = corner_types, .fields = corner_fields, .nfields = ARRAY_LEN(corner_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = corner_run,
};

/* ---- crop_visualization ----------------------------------------------------------------- */

/* sv.CropAnnotator.calculate_crop_coordinates */
static void crop_xyxy(int pos, int ax, int ay, int w, int h, int xyxy[4])
{
    int hw = floordiv(w, 2), hh = floordiv(h, 2);
    switch (pos) {
    case VIZ_POS_TOP_LEFT: xyxy[0] = ax - w, xyxy[1] = ay - h, xyxy[2] = ax, xyxy[3] = ay; break;
    case VIZ_POS_TOP_CENTER:
        xyxy[0] = ax - hw, xyxy[1] = ay - h, xyxy[2] = ax + hw, xyxy[3] = ay;
        break;
    case VIZ_POS_TOP_RIGHT: xyxy[0] = ax, xyxy[1] = ay - h, xyxy[2] = ax + w, xyxy[3] = ay; break;
    case VIZ_POS_CENTER_LEFT:
        xyxy[0] = ax - w, xyxy[1] = ay - hh, xyxy[2] = ax, xyxy[3] = ay + hh;
        break;
    case VIZ_POS_CENTER_RIGHT:
        xyxy[0] = ax, xyxy[1] = ay - hh, xyxy[2] = ax + w, xyxy[3] = ay + hh;
        break;
    case VIZ_POS_BOTTOM_LEFT: xyxy[0] = ax - w, xyxy[1] = ay, xyxy[2] = ax, xyxy[3] = ay + h; break;
    case VIZ_POS_BOTTOM_CENTER:
        xyxy[0] = ax - hw, xyxy[1] = ay, xyxy[2] = ax + hw, xyxy[3] = ay + h;
        break;
    case VIZ_POS_BOTTOM_RIGHT: xyxy[0] = ax, xyxy[1] = ay, xyxy[2] = ax + w, xyxy[3] = ay + h; break;
    default:
        xyxy[0] = ax - hw, xyxy[1] = ay - hh, xyxy[2] = ax + hw, xyxy[3] = ay + hh;
        break;
    }
}

static int crop_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct vis_image **crops = NULL;
        double scale = wf_arg_double(c, i, "scale_factor", 2.0), total = 0;
        int rc, t, pos;
        if ((rc = arg_int_bounded(c, i, "border_thickness", -1, VIZ_MAX_THICKNESS, 2, &t)) < 0)
            return rc;
        if (!(scale > 0 && scale <= 100))
            return wf_call_fail(c, "field 'scale_factor': %g is out of range (0, 100]", scale);
        if ((pos = viz__pos_parse(wf_arg_str(c, i, "position"))) < 0)
            return wf_call_fail(c, "invalid position '%s'", wf_arg_str(c, i, "position"));
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        t = cv_thickness(t);
        /* all crops come from the scene before any is pasted */
        crops = xcalloc(v.ds->n ? v.ds->n : 1, sizeof *crops);
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            struct vis_image *raw = NULL;
            int x1 = viz__trunc(d->x1), y1 = viz__trunc(d->y1), x2 = viz__trunc(d->x2),
                y2 = viz__trunc(d->y2), nw, nh;
            if (x2 <= x1 || y2 <= y1 || vis_crop(v.px, x1, y1, x2 - x1, y2 - y1, &raw) < 0)
                continue; /* empty crop: nothing to show */
            nw = (int)(raw->w * scale), nh = (int)(raw->h * scale);
            total += (double)nw * nh;
            if (nw > VIS_MAX_SIDE || nh > VIS_MAX_SIDE || total > VIS_MAX_PIXELS)
                rc = wf_call_fail(c, "scaled crops exceed %u pixels", VIS_MAX_PIXELS);
            else if (nw > 0 && nh > 0 && vis_resize(raw, nw, nh, VIS_INTER_LINEAR, &crops[k]) < 0)
                rc = wf_call_fail(c, "cannot resize crop %zu", k);
            vis_image_free(raw);
        }
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            struct vis_color col;
            int ax, ay, xyxy[4];
            if (!crops[k])
                continue;
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            if (viz__anchor(&v.ds->d[k], pos, v.px->w, v.px->h, &ax, &ay) < 0) {
                rc = wf_call_fail(c, "position CENTER_OF_MASS needs instance masks");
                break;
            }
            crop_xyxy(pos, ax, ay, crops[k]->w, crops[k]->h, xyxy);
            vis_image_paste(v.px, crops[k], xyxy[0], xyxy[1]);
            vis_draw_rect(v.px, xyxy[0], xyxy[1], xyxy[2], xyxy[3], col, t);
        }
        for (size_t k = 0; k < v.ds->n; k++)
            vis_image_free(crops[k]);
        free(crops);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field crop_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE,
    {"position", NULL, WF_FT_ENUM, "\"TOP_CENTER\"", WF_K_STRING, 0, POSITIONS},
    {"scale_factor", NULL, WF_FT_FLOAT, "2.0", WF_K_FLOAT, 0, NULL},
    {"border_thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
};
static const char *const crop_types[] = {"roboflow_core/crop_visualization@v1",
                                         "CropVisualization", NULL};
static const struct wf_block crop_v1 = {
    .types = crop_types, .fields = crop_fields, .nfields = ARRAY_LEN(crop_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = crop_run,
};

/* ---- polygon_zone_visualization --------------------------------------------------------- */

/* cv2.addWeighted(canvas, opacity, img, 1, 0) where canvas holds colour c
 * under the non-zero pixels of mask (GRAY, same size) and 0 elsewhere:
 * the colour is added (float32, saturating, rounded half to even). */
static void add_masked(struct vis_image *img, const struct vis_image *mask, struct vis_color c,
                       double opacity)
{
    int ch = vis_channels(img);
    float add[3];
    /* on a single-channel image cv2 uses the colour tuple's first value (B) */
    const uint8_t cb[3] = {c.b, c.g, c.r};
    for (int k = 0; k < 3; k++)
        add[k] = (float)cb[k] * (float)opacity;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            uint8_t *p;
            if (!*vis_px(mask, x, y))
                continue;
            p = vis_px(img, x, y);
            for (int k = 0; k < ch && k < 3; k++) {
                long sum = lrintf((float)p[k] + add[k]);
                p[k] = (uint8_t)(sum > 255 ? 255 : sum);
            }
        }
}

/* Parse one polygon [[x, y], ...] into int points (np.int32 truncation). */
static int zone_points(const json_t *poly, int **pts, int *n)
{
    size_t k;
    const json_t *p;
    size_t np = json_array_size(poly);
    if (!json_is_array(poly) || np > VIS_MAX_POLY_POINTS)
        return ERR_INVALID;
    *pts = xcalloc(np ? np * 2 : 1, sizeof **pts);
    json_array_foreach(poly, k, p)
    {
        const json_t *x = json_array_get(p, 0), *y = json_array_get(p, 1);
        if (!json_is_array(p) || json_array_size(p) < 2 || !json_is_number(x) ||
            !json_is_number(y)) {
            free(*pts);
            *pts = NULL;
            return ERR_INVALID;
        }
        (*pts)[2 * k] = viz__trunc(json_number_value(x));
        (*pts)[2 * k + 1] = viz__trunc(json_number_value(y));
    }
    *n = (int)np;
    return 0;
}

/* inference's PolygonZoneVisualizationBlockV1: fillPoly the zone(s) with
 * the colour on a black canvas, then addWeighted(canvas, opacity, image, 1):
 * the colour is ADDED (saturating) inside the zone; outside is unchanged. */
static int zone_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct vis_image *mask = NULL;
        const json_t *zone = wf_arg_json(c, i, "zone");
        const char *cs = wf_arg_str(c, i, "color");
        double opacity = wf_arg_double(c, i, "opacity", 0.3);
        struct vis_color col;
        int rc;
        bool single;
        if (viz__color_parse(cs, &col) < 0)
            return wf_call_fail(c, "invalid color '%s'", cs ? cs : "null");
        if (zone && !json_is_array(zone))
            return wf_call_fail(c, "field 'zone': expected a list of points");
        if ((rc = viz_begin(c, i, false, false, &v)) < 0)
            return rc;
        if (!zone || json_array_size(zone) == 0) {
            viz_end(&v, 0);
            continue;
        }
        if (json_array_size(zone) > VIS_MAX_POLY_POINTS) {
            rc = wf_call_fail(c, "field 'zone': too many points");
            goto next;
        }
        /* zone[0][0] a number: one polygon; else a list of polygons */
        single = json_is_number(json_array_get(json_array_get(zone, 0), 0));
        mask = vis_image_new(v.px->w, v.px->h, VIS_GRAY);
        if (!mask) {
            rc = wf_call_fail(c, "out of memory");
            goto next;
        }
        for (size_t z = 0; z < (single ? 1 : json_array_size(zone)) && rc == 0; z++) {
            int *pts = NULL, n = 0;
            if (zone_points(single ? zone : json_array_get(zone, z), &pts, &n) < 0) {
                rc = wf_call_fail(c, "field 'zone': expected [[x, y], ...] points");
                break;
            }
            if (vis_fill_polygon(mask, pts, n, VIS_RGB(255, 255, 255), VIS_FILL_EVEN_ODD) < 0)
                rc = wf_call_fail(c, "field 'zone': cannot fill the polygon");
            free(pts);
        }
        if (rc == 0)
            add_masked(v.px, mask, col, opacity);
    next:
        vis_image_free(mask);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field zone_fields[] = {
    F_IMAGE, F_COPY,
    {"zone", NULL, WF_FT_LIST, NULL, WF_K_LIST | WF_K_ZONE, 0, NULL},
    {"color", NULL, WF_FT_STRING, "\"#5bb573\"", WF_K_STRING, 0, NULL},
    {"opacity", NULL, WF_FT_FLOAT01, "0.3", WF_K_FLOAT, 0, NULL},
};
static const char *const zone_types[] = {"roboflow_core/polygon_zone_visualization@v1", NULL};
static const struct wf_block zone_v1 = {
    .types = zone_types, .fields = zone_fields, .nfields = ARRAY_LEN(zone_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = zone_run,
};

/* ---- ellipse / triangle / color / background_color ---------------------------------------- */

/* sv.EllipseAnnotator: an arc under the box, centre (int((x1 + x2) / 2), y2),
 * axes (width, int(0.35 * width)). */
static int ellipse_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        int rc, t, a0, a1;
        if ((rc = arg_int_bounded(c, i, "thickness", -1, VIZ_MAX_THICKNESS, 2, &t)) < 0 ||
            (rc = arg_int_bounded(c, i, "start_angle", -3600, 3600, -45, &a0)) < 0 ||
            (rc = arg_int_bounded(c, i, "end_angle", -3600, 3600, 235, &a1)) < 0)
            return rc;
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            int x1 = viz__trunc(d->x1), x2 = viz__trunc(d->x2), y2 = viz__trunc(d->y2);
            int w = x2 - x1;
            struct vis_color col;
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            if (w < 0)
                continue; /* cv2 rejects negative axes */
            vis_draw_ellipse(v.px, viz__trunc(((double)x1 + x2) / 2), y2, w,
                             viz__trunc(0.35 * w), 0.0, a0, a1, col, cv_thickness(t));
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field ellipse_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE,
    {"thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
    {"start_angle", NULL, WF_FT_INT, "-45", WF_K_INT, 0, NULL},
    {"end_angle", NULL, WF_FT_INT, "235", WF_K_INT, 0, NULL},
};
static const char *const ellipse_types[] = {"roboflow_core/ellipse_visualization@v1",
                                            "EllipseVisualization", NULL};
static const struct wf_block ellipse_v1 = {
    .types = ellipse_types, .fields = ellipse_fields, .nfields = ARRAY_LEN(ellipse_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = ellipse_run,
};

/* sv.TriangleAnnotator: a filled triangle pointing at the anchor. */
static int triangle_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        int rc, base, height, outline, pos;
        if ((rc = arg_int_bounded(c, i, "base", 0, VIS_MAX_SIDE, 10, &base)) < 0 ||
            (rc = arg_int_bounded(c, i, "height", 0, VIS_MAX_SIDE, 10, &height)) < 0 ||
            (rc = arg_int_bounded(c, i, "outline_thickness", -1, VIZ_MAX_THICKNESS, 0,
                                  &outline)) < 0)
            return rc;
        if ((pos = viz__pos_parse(wf_arg_str(c, i, "position"))) < 0)
            return wf_call_fail(c, "invalid position '%s'", wf_arg_str(c, i, "position"));
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            struct vis_color col;
            int x, y, pts[6];
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            if (viz__anchor(&v.ds->d[k], pos, v.px->w, v.px->h, &x, &y) < 0) {
                rc = wf_call_fail(c, "position CENTER_OF_MASS needs instance masks");
                break;
            }
            pts[0] = x - base / 2, pts[1] = y - height;
            pts[2] = x + base / 2, pts[3] = y - height;
            pts[4] = x, pts[5] = y;
            vis_fill_polygon(v.px, pts, 3, col, VIS_FILL_EVEN_ODD);
            if (outline)
                vis_draw_polygon(v.px, pts, 3, VIS_RGB(0, 0, 0), outline < 0 ? 1 : outline);
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field triangle_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE,
    {"position", NULL, WF_FT_ENUM, "\"TOP_CENTER\"", WF_K_STRING, 0, POSITIONS},
    {"base", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"height", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"outline_thickness", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
};
static const char *const triangle_types[] = {"roboflow_core/triangle_visualization@v1",
                                             "TriangleVisualization", NULL};
static const struct wf_block triangle_v1 = {
    .types = triangle_types, .fields = triangle_fields, .nfields = ARRAY_LEN(triangle_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = triangle_run,
};

/* sv.ColorAnnotator: filled boxes on a copy, blended over the scene. */
static int color_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct vis_image *boxes;
        double opacity = wf_arg_double(c, i, "opacity", 0.5);
        int rc;
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        if (!(boxes = vis_image_clone(v.px))) {
            viz_end(&v, ERR_NOMEM);
            return wf_call_fail(c, "out of memory");
        }
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            struct vis_color col;
            if ((rc = viz_color(&v, k, &col)) < 0)
                break;
            fill_rect(boxes, viz__trunc(d->x1), viz__trunc(d->y1), viz__trunc(d->x2),
                      viz__trunc(d->y2), col);
        }
        if (rc == 0)
            add_weighted(v.px, boxes, opacity);
        vis_image_free(boxes);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field color_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS), F_COLORABLE,
    {"opacity", NULL, WF_FT_FLOAT01, "0.5", WF_K_FLOAT, 0, NULL},
};
static const char *const color_types[] = {"roboflow_core/color_visualization@v1",
                                          "ColorVisualization", NULL};
static const struct wf_block color_v1 = {
    .types = color_types, .fields = color_fields, .nfields = ARRAY_LEN(color_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = color_run,
};

/* inference's BackgroundColorAnnotator: everything blended towards the
 * colour except the boxes (or the masks, when there are masks), which keep
 * the original pixels. */
static int background_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct vis_image *orig = NULL, *flat = NULL;
        const char *cs = wf_arg_str(c, i, "color");
        double opacity = wf_arg_double(c, i, "opacity", 0.5);
        struct vis_color col;
        bool masks;
        int rc;
        if (viz__color_parse(cs, &col) < 0)
            return wf_call_fail(c, "invalid color '%s'", cs ? cs : "null");
        if ((rc = viz_begin(c, i, true, false, &v)) < 0)
            return rc;
        orig = vis_image_clone(v.px);
        flat = vis_image_clone(v.px);
        if (!orig || !flat) {
            rc = wf_call_fail(c, "out of memory");
            goto next;
        }
        /* addWeighted(scene, 1 - opacity, colour, opacity) */
        vis_image_fill(flat, col);
        add_weighted(v.px, flat, opacity);
        masks = dets_have_masks(v.ds);
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            if (masks) {
                struct vis_image *m = NULL;
                int ox, oy;
                if (viz__det_mask(d, v.px->w, v.px->h, &m, &ox, &oy) < 0) {
                    rc = wf_call_fail(c, "cannot rasterize the mask of detection %zu", k);
                    break;
                }
                for (int y = 0; m && y < m->h; y++)
                    for (int x = 0; x < m->w; x++)
                        if (*vis_px(m, x, y))
                            memcpy(vis_px(v.px, x + ox, y + oy), vis_px(orig, x + ox, y + oy),
                                   (size_t)vis_channels(orig));
                vis_image_free(m);
            } else {
                int x, y, w, h;
                struct vis_image src;
                if (det_box_clipped(d, v.px->w, v.px->h, &x, &y, &w, &h) &&
                    vis_image_view(orig, x, y, w, h, &src) == 0)
                    vis_image_paste(v.px, &src, x, y);
            }
        }
    next:
        vis_image_free(orig);
        vis_image_free(flat);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field background_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_DETS),
    {"color", NULL, WF_FT_STRING, "\"BLACK\"", WF_K_STRING, 0, NULL},
    {"opacity", NULL, WF_FT_FLOAT01, "0.5", WF_K_FLOAT, 0, NULL},
};
static const char *const background_types[] = {"roboflow_core/background_color_visualization@v1",
                                               "BackgroundColorVisualization", NULL};
static const struct wf_block background_v1 = {
    .types = background_types, .fields = background_fields,
    .nfields = ARRAY_LEN(background_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = background_run,
};

/* ---- keypoint_visualization -------------------------------------------------------------- */

/* sv Skeleton.COCO (1-based vertex pairs), the default for 17 keypoints. */
static const uint8_t COCO_EDGES[][2] = {
    {1, 2},   {1, 3},   {2, 3},   {2, 4},   {3, 5},   {6, 12},  {6, 7},   {6, 8},  {7, 13},
    {7, 9},   {8, 10},  {9, 11},  {12, 13}, {14, 12}, {15, 13}, {16, 14}, {17, 15},
};
static const char *const KP_TYPES[] = {"edge", "vertex", "vertex_label", NULL};
#define KP_MAX_EDGES 4096

/* The keypoints of one detection as sv.KeyPoints.xy: every slot, padded
 * ones included (they sit at 0, 0 and are skipped where sv skips them). */
static int kp_xy(const struct wf_det *d, size_t k, int *x, int *y)
{
    *x = viz__trunc(d->kp[k].x), *y = viz__trunc(d->kp[k].y);
    return d->kp[k].x == 0 && d->kp[k].y == 0;
}

static int keypoint_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct viz_label_style st;
        const char *type = wf_arg_str(c, i, "annotator_type"), *cs = wf_arg_str(c, i, "color");
        const char *tcs = wf_arg_str(c, i, "text_color");
        const json_t *edges = wf_arg_json(c, i, "edges");
        double scale = wf_arg_double(c, i, "text_scale", 0.5);
        struct vis_color col;
        int rc, t, radius, tt, pad;
        if (!type)
            type = "edge";
        if (viz__color_parse(cs, &col) < 0)
            return wf_call_fail(c, "invalid color '%s'", cs ? cs : "null");
        if ((rc = arg_int_bounded(c, i, "thickness", -1, VIZ_MAX_THICKNESS, 2, &t)) < 0 ||
            (rc = arg_int_bounded(c, i, "radius", 0, VIZ_MAX_RADIUS, 10, &radius)) < 0 ||
            (rc = arg_int_bounded(c, i, "text_thickness", 0, 100, 1, &tt)) < 0 ||
            (rc = arg_int_bounded(c, i, "text_padding", -VIZ_MAX_PADDING, VIZ_MAX_PADDING, 10,
                                  &pad)) < 0)
            return rc;
        if (edges && !json_is_null(edges) &&
            (!json_is_array(edges) || json_array_size(edges) > KP_MAX_EDGES))
            return wf_call_fail(c, "field 'edges': expected a list of [a, b] vertex pairs");
        memset(&st, 0, sizeof st);
        if (!strcmp(type, "vertex_label")) {
            if (!(scale > 0 && scale <= 100))
                return wf_call_fail(c, "field 'text_scale': %g is out of range (0, 100]", scale);
            if (viz__color_parse(tcs, &st.text_color) < 0)
                return wf_call_fail(c, "invalid text color '%s'", tcs ? tcs : "null");
            if (!(st.font = vis_font_default()))
                return wf_call_fail(c, "no font available (set VBATCH_FONT or install %s)",
                                    VIS_FONT_DEFAULT_PATH);
            st.scale = scale, st.px = vis_text_px_for_scale(scale);
            st.thickness = tt, st.padding = pad, st.radius = radius;
        }
        if ((rc = viz_begin(c, i, true, false, &v)) < 0)
            return rc;
        for (size_t k = 0; k < v.ds->n && rc == 0; k++) {
            const struct wf_det *d = &v.ds->d[k];
            if (!strcmp(type, "vertex")) {
                for (size_t q = 0; q < d->nkp; q++) {
                    int x, y;
                    kp_xy(d, q, &x, &y);
                    vis_draw_circle(v.px, x, y, radius, col, VIS_FILLED);
                }
            } else if (!strcmp(type, "vertex_label")) {
                for (size_t q = 0; q < d->nkp && rc == 0; q++) {
                    char label[24];
                    int x, y, tw, th, x1, y1, y2;
                    kp_xy(d, q, &x, &y);
                    if (x == 0 || y == 0)
                        continue; /* np.all(anchors != 0) */
                    snprintf(label, sizeof label, "%zu", q);
                    if ((rc = viz__text_size(st.font, label, st.scale, tt, &tw, &th)) < 0) {
                        rc = wf_call_fail(c, "cannot measure text");
                        break;
                    }
                    x1 = x - floordiv(tw, 2), y1 = y - floordiv(th, 2), y2 = y + floordiv(th, 2);
                    viz__rounded_rect(v.px, x1 - pad, y1 - pad, x + floordiv(tw, 2) + pad,
                                      y2 + pad, col, radius);
                    if (viz__text_draw(v.px, st.font, label, st.px, x1, y2, tt, st.text_color) <
                        0)
                        rc = wf_call_fail(c, "cannot draw text");
                }
            } else {
                /* edges: the given pairs, else the skeleton for 17 vertices (COCO) */
                size_t ne = edges && json_is_array(edges) ? json_array_size(edges) : 0;
                bool coco = ne == 0;
                if (coco && d->nkp != 17)
                    break; /* sv: no skeleton for this count, nothing drawn */
                if (coco)
                    ne = ARRAY_LEN(COCO_EDGES);
                for (size_t e = 0; e < ne && rc == 0; e++) {
                    long a, b;
                    int xa, ya, xb, yb;
                    if (coco) {
                        a = COCO_EDGES[e][0], b = COCO_EDGES[e][1];
                    } else {
                        const json_t *pr = json_array_get(edges, e);
                        if (!json_is_integer(json_array_get(pr, 0)) ||
                            !json_is_integer(json_array_get(pr, 1))) {
                            rc = wf_call_fail(c, "field 'edges': item %zu is not [a, b]", e);
                            break;
                        }
                        a = (long)json_integer_value(json_array_get(pr, 0));
                        b = (long)json_integer_value(json_array_get(pr, 1));
                    }
                    /* Python's xy[a - 1]: 1-based, negative counts from the end */
                    a = a - 1 < 0 ? (long)d->nkp + a - 1 : a - 1;
                    b = b - 1 < 0 ? (long)d->nkp + b - 1 : b - 1;
                    if (a < 0 || b < 0 || a >= (long)d->nkp || b >= (long)d->nkp) {
                        rc = wf_call_fail(c, "field 'edges': vertex out of range for %zu keypoints",
                                          d->nkp);
                        break;
                    }
                    if (kp_xy(d, (size_t)a, &xa, &ya) || kp_xy(d, (size_t)b, &xb, &yb))
                        continue; /* a missing vertex */
                    vis_draw_line(v.px, xa, ya, xb, yb, col, cv_thickness(t));
                }
            }
        }
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field keypoint_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_KP),
    {"annotator_type", NULL, WF_FT_ENUM, "\"edge\"", 0, WF_F_NO_SELECTOR, KP_TYPES},
    {"color", NULL, WF_FT_STRING, "\"#A351FB\"", WF_K_STRING, 0, NULL},
    {"text_color", NULL, WF_FT_STRING, "\"black\"", WF_K_STRING, 0, NULL},
    {"text_scale", NULL, WF_FT_FLOAT, "0.5", WF_K_FLOAT, 0, NULL},
    {"text_thickness", NULL, WF_FT_INT, "1", WF_K_INT, 0, NULL},
    {"text_padding", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
    {"radius", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"edges", NULL, WF_FT_LIST, "null", WF_K_LIST, WF_F_NULLABLE, NULL},
};
static const char *const keypoint_types[] = {"roboflow_core/keypoint_visualization@v1",
                                             "KeypointVisualization", NULL};
static const struct wf_block keypoint_v1 = {
    .types = keypoint_types, .fields = keypoint_fields, .nfields = ARRAY_LEN(keypoint_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = keypoint_run,
};

/* ---- halo / reference_path ------------------------------------------------------------------ */

/* inference's HaloAnnotator: masks (boxes without masks) painted, box
 * blurred 40x40, the objects themselves cleared, then blended with
 * alpha = opacity * gray / max(gray).  As in Roboflow the block's
 * kernel_size is not passed to the annotator, whose default (40) applies.
 * Where Python would produce NaN (nothing drawn) or wrap around past 255,
 * the image is left unchanged / saturated. */
static int halo_common(struct wf_call *c, bool v2);
static int halo_run(struct wf_call *c) { return halo_common(c, false); }
/* v2 is sv.HaloAnnotator: kernel_size is used (1 to 1000), and without
 * masks the image is left as it is. */
static int halo_v2_run(struct wf_call *c) { return halo_common(c, true); }

static int halo_common(struct wf_call *c, bool v2)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct vis_image *colored = NULL, *fmask = NULL, *gray = NULL;
        struct area_idx *order = NULL;
        double opacity = wf_arg_double(c, i, "opacity", 0.8);
        bool masks;
        int rc, gmax = 0, HALO_KERNEL = 40;
        if (v2 && (rc = arg_int_bounded(c, i, "kernel_size", 1, VIZ_MAX_THICKNESS, 40, &HALO_KERNEL)) < 0)
            return rc;
        if ((rc = viz_begin(c, i, true, true, &v)) < 0)
            return rc;
        if (v2 && !dets_have_masks(v.ds)) {
            if ((rc = viz_end(&v, 0)) < 0)
                return rc;
            continue;
        }
        colored = vis_image_new(v.px->w, v.px->h, v.px->fmt);
        fmask = vis_image_new(v.px->w, v.px->h, VIS_GRAY);
        order = xcalloc(v.ds->n + 1, sizeof *order);
        if (!colored || !fmask) {
            rc = wf_call_fail(c, "out of memory");
            goto next;
        }
        masks = dets_have_masks(v.ds);
        for (size_t k = 0; k < v.ds->n; k++)
            order[k].k = k, order[k].area = det_area(&v.ds->d[k], v.px->w, v.px->h, masks);
        qsort(order, v.ds->n, sizeof *order, area_cmp);
        for (size_t r = v.ds->n; r-- > 0 && rc == 0;) {
            const struct wf_det *d = &v.ds->d[order[r].k];
            struct vis_color col;
            struct vis_image view, fview;
            if ((rc = viz_color(&v, order[r].k, &col)) < 0)
                break;
            if (masks) {
                struct vis_image *m = NULL;
                int ox, oy;
                if (viz__det_mask(d, v.px->w, v.px->h, &m, &ox, &oy) < 0) {
                    rc = wf_call_fail(c, "cannot rasterize the mask of detection %zu",
                                      order[r].k);
                    break;
                }
                if (m && vis_image_view(colored, ox, oy, m->w, m->h, &view) == 0 &&
                    vis_image_view(fmask, ox, oy, m->w, m->h, &fview) == 0) {
                    vis_mask_overlay(&view, m, col, 1.0);
                    vis_mask_overlay(&fview, m, VIS_RGB(255, 255, 255), 1.0);
                }
                vis_image_free(m);
            } else {
                int x, y, w, h;
                if (det_box_clipped(d, v.px->w, v.px->h, &x, &y, &w, &h) &&
                    vis_image_view(colored, x, y, w, h, &view) == 0 &&
                    vis_image_view(fmask, x, y, w, h, &fview) == 0) {
                    vis_image_fill(&view, col);
                    vis_image_fill(&fview, VIS_RGB(255, 255, 255));
                }
            }
        }
        if (rc < 0)
            goto next;
        if ((rc = cv__box_blur(colored, HALO_KERNEL, HALO_KERNEL)) < 0) {
            rc = wf_call_fail(c, "halo failed (%s)", err_str(rc));
            goto next;
        }
        for (int y = 0; y < colored->h; y++) /* the objects themselves stay clear */
            for (int x = 0; x < colored->w; x++)
                if (*vis_px(fmask, x, y))
                    memset(vis_px(colored, x, y), 0, (size_t)vis_channels(colored));
        rc = colored->fmt == VIS_GRAY ? ((gray = vis_image_clone(colored)) ? 0 : ERR_NOMEM)
                                      : vis_convert(colored, VIS_GRAY, &gray);
        if (rc < 0) {
            rc = wf_call_fail(c, "halo failed (%s)", err_str(rc));
            goto next;
        }
        for (int y = 0; y < gray->h; y++)
            for (int x = 0; x < gray->w; x++)
                gmax = *vis_px(gray, x, y) > gmax ? *vis_px(gray, x, y) : gmax;
        if (gmax > 0) {
            int ch = vis_channels(v.px);
            for (int y = 0; y < v.px->h; y++)
                for (int x = 0; x < v.px->w; x++) {
                    double a = opacity * *vis_px(gray, x, y) / gmax;
                    uint8_t *p = vis_px(v.px, x, y);
                    const uint8_t *q = vis_px(colored, x, y);
                    for (int k = 0; k < ch; k++) {
                        double o = p[k] * (1 - a) + q[k] * opacity;
                        p[k] = (uint8_t)(o >= 255 ? 255 : o <= 0 ? 0 : (int)o);
                    }
                }
        }
    next:
        vis_image_free(colored);
        vis_image_free(fmask);
        vis_image_free(gray);
        free(order);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field halo_fields[] = {
    F_IMAGE, F_COPY, F_PRED(WF_K_IS), F_COLORABLE,
    {"opacity", NULL, WF_FT_FLOAT01, "0.8", WF_K_FLOAT, 0, NULL},
    {"kernel_size", NULL, WF_FT_INT, "40", WF_K_INT, 0, NULL},
};
static const char *const halo_types[] = {"roboflow_core/halo_visualization@v1",
                                         "HaloVisualization", NULL};
static const struct wf_block halo_v1 = {
    .types = halo_types, .fields = halo_fields, .nfields = ARRAY_LEN(halo_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = halo_run,
};
static const char *const halo_v2_types[] = {"roboflow_core/halo_visualization@v2", NULL};
static const struct wf_block halo_v2 = {
    .types = halo_v2_types, .fields = halo_fields, .nfields = ARRAY_LEN(halo_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = halo_v2_run,
};

/* inference's ReferencePathVisualizationBlockV1: cv2.polylines (open). */
static int reference_path_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        const json_t *path = wf_arg_json(c, i, "reference_path");
        const char *cs = wf_arg_str(c, i, "color");
        struct vis_color col;
        int rc, t, *pts = NULL, n = 0;
        if (viz__color_parse(cs, &col) < 0)
            return wf_call_fail(c, "invalid color '%s'", cs ? cs : "null");
        if ((rc = arg_int_bounded(c, i, "thickness", 1, VIZ_MAX_THICKNESS, 2, &t)) < 0)
            return rc;
        if (zone_points(path, &pts, &n) < 0)
            return wf_call_fail(c, "field 'reference_path': expected [[x, y], ...] points");
        if ((rc = viz_begin(c, i, false, false, &v)) < 0) {
            free(pts);
            return rc;
        }
        for (int k = 1; k < n; k++)
            vis_draw_line(v.px, pts[2 * k - 2], pts[2 * k - 1], pts[2 * k], pts[2 * k + 1], col,
                          t);
        if (n == 1)
            vis_draw_line(v.px, pts[0], pts[1], pts[0], pts[1], col, t);
        free(pts);
        if ((rc = viz_end(&v, 0)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field reference_path_fields[] = {
    F_IMAGE, F_COPY,
    {"reference_path", NULL, WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},
    {"color", NULL, WF_FT_STRING, "\"#5bb573\"", WF_K_STRING, 0, NULL},
    {"thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
};
static const char *const reference_path_types[] = {
    "roboflow_core/reference_path_visualization@v1", NULL};
static const struct wf_block reference_path_v1 = {
    .types = reference_path_types, .fields = reference_path_fields,
    .nfields = ARRAY_LEN(reference_path_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = reference_path_run,
};

/* ---- model_comparison_visualization -------------------------------------------------------- */

/* Paint the boxes (or the masks, when the detections have them) of ds into
 * the GRAY image m as 255. */
static int mark_dets(const struct wf_dets *ds, struct vis_image *m)
{
    bool masks = dets_have_masks(ds);
    for (size_t k = 0; k < ds->n; k++) {
        struct vis_image view;
        if (masks) {
            struct vis_image *dm = NULL;
            int ox, oy;
            if (viz__det_mask(&ds->d[k], m->w, m->h, &dm, &ox, &oy) < 0)
                return ERR_INVALID;
            if (dm && vis_image_view(m, ox, oy, dm->w, dm->h, &view) == 0)
                vis_mask_overlay(&view, dm, VIS_RGB(255, 255, 255), 1.0);
            vis_image_free(dm);
        } else {
            int x, y, w, h;
            if (det_box_clipped(&ds->d[k], m->w, m->h, &x, &y, &w, &h) &&
                vis_image_view(m, x, y, w, h, &view) == 0)
                vis_image_fill(&view, VIS_RGB(255, 255, 255));
        }
    }
    return 0;
}

/* inference's ModelComparisonAnnotator: where only A predicted, blend
 * towards color_a; only B, color_b; neither, background_color; both:
 * unchanged (addWeighted(base, 1 - opacity, colour, opacity)). */
static int comparison_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct vis_image *ma = NULL, *mb = NULL;
        const struct wf_dets *da = wf_arg_dets(c, i, "predictions_a");
        const struct wf_dets *db = wf_arg_dets(c, i, "predictions_b");
        const char *names[3] = {wf_arg_str(c, i, "background_color"),
                                wf_arg_str(c, i, "color_a"), wf_arg_str(c, i, "color_b")};
        double opacity = wf_arg_double(c, i, "opacity", 0.7);
        float fa = (float)opacity, fb = (float)(1.0 - opacity);
        struct vis_color cols[3];
        int rc;
        if (!da || !db)
            return wf_call_fail(c, "fields 'predictions_a' and 'predictions_b' must be detections");
        for (int k = 0; k < 3; k++)
            if (viz__color_parse(names[k], &cols[k]) < 0)
                return wf_call_fail(c, "invalid color '%s'", names[k] ? names[k] : "null");
        if ((rc = viz_begin(c, i, false, false, &v)) < 0)
            return rc;
        ma = vis_image_new(v.px->w, v.px->h, VIS_GRAY);
        mb = vis_image_new(v.px->w, v.px->h, VIS_GRAY);
        if (!ma || !mb) {
            rc = wf_call_fail(c, "out of memory");
        } else if (mark_dets(da, ma) < 0 || mark_dets(db, mb) < 0) {
            rc = wf_call_fail(c, "cannot rasterize the masks");
        } else {
            int ch = vis_channels(v.px);
            for (int y = 0; y < v.px->h; y++)
                for (int x = 0; x < v.px->w; x++) {
                    bool a = *vis_px(ma, x, y) != 0, b = *vis_px(mb, x, y) != 0;
                    const struct vis_color *col = !a && !b ? &cols[0] : a && !b ? &cols[1]
                                                  : !a && b ? &cols[2] : NULL;
                    uint8_t *p = vis_px(v.px, x, y);
                    const uint8_t cb[3] = {col ? col->b : 0, col ? col->g : 0,
                                           col ? col->r : 0};
                    if (!col)
                        continue;
                    for (int k = 0; k < ch && k < 3; k++) {
                        long o = lrintf((float)p[k] * fb + (float)cb[k] * fa);
                        p[k] = (uint8_t)(o > 255 ? 255 : o < 0 ? 0 : o);
                    }
                }
        }
        vis_image_free(ma);
        vis_image_free(mb);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field comparison_fields[] = {
    F_IMAGE, F_COPY,
    {"predictions_a", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"color_a", NULL, WF_FT_STRING, "\"GREEN\"", WF_K_STRING, 0, NULL},
    {"predictions_b", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"color_b", NULL, WF_FT_STRING, "\"RED\"", WF_K_STRING, 0, NULL},
    {"background_color", NULL, WF_FT_STRING, "\"BLACK\"", WF_K_STRING, 0, NULL},
    {"opacity", NULL, WF_FT_FLOAT01, "0.7", WF_K_FLOAT, 0, NULL},
};
static const char *const comparison_types[] = {
    "roboflow_core/model_comparison_visualization@v1", NULL};
static const struct wf_block comparison_v1 = {
    .types = comparison_types, .fields = comparison_fields,
    .nfields = ARRAY_LEN(comparison_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = comparison_run,
};

/* ---- line_counter_visualization -------------------------------------------------------- */

/* inference's LineCounterZoneVisualizationBlockV1: the line (colour added
 * at opacity, as the polygon zone), then sv.draw_text of
 * "in: N, out: M" centred on the first point: black text on a white
 * rectangle of the text's size (padding 0). */
static int line_zone_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct vis_image *mask = NULL;
        const json_t *zone = wf_arg_json(c, i, "zone");
        const char *cs = wf_arg_str(c, i, "color");
        double opacity = wf_arg_double(c, i, "opacity", 0.3);
        double scale = wf_arg_double(c, i, "text_scale", 1.0);
        int64_t cin = wf_arg_int(c, i, "count_in", 0), cout = wf_arg_int(c, i, "count_out", 0);
        struct vis_color col;
        struct vis_font *font = vis_font_default();
        int rc, t, tt, *pts = NULL, n = 0;
        char text[96];
        if (viz__color_parse(cs, &col) < 0)
            return wf_call_fail(c, "invalid color '%s'", cs ? cs : "null");
        if ((rc = arg_int_bounded(c, i, "thickness", 0, VIZ_MAX_THICKNESS, 2, &t)) < 0 ||
            (rc = arg_int_bounded(c, i, "text_thickness", 0, 100, 1, &tt)) < 0)
            return rc;
        if (!(scale > 0 && scale <= 100))
            return wf_call_fail(c, "field 'text_scale': %g is out of range (0, 100]", scale);
        if (!font)
            return wf_call_fail(c, "no font available (set VBATCH_FONT or install %s)",
                                VIS_FONT_DEFAULT_PATH);
        if (zone_points(zone, &pts, &n) < 0 || n != 2) {
            free(pts);
            return wf_call_fail(c, "field 'zone': expected exactly two points [[x1, y1], [x2, y2]]");
        }
        if ((rc = viz_begin(c, i, false, false, &v)) < 0) {
            free(pts);
            return rc;
        }
        mask = vis_image_new(v.px->w, v.px->h, VIS_GRAY);
        if (!mask) {
            rc = wf_call_fail(c, "out of memory");
        } else {
            int tw, th, px = vis_text_px_for_scale(scale);
            vis_draw_line(mask, pts[0], pts[1], pts[2], pts[3], VIS_RGB(255, 255, 255),
                          cv_thickness(t));
            add_masked(v.px, mask, col, opacity);
            snprintf(text, sizeof text, "in: %lld, out: %lld", (long long)cin, (long long)cout);
            if (viz__text_size(font, text, scale, tt, &tw, &th) < 0) {
                rc = wf_call_fail(c, "cannot measure text");
            } else {
                int x = pts[0] - floordiv(tw, 2), y = pts[1] - floordiv(th, 2);
                fill_rect(v.px, x, y, x + tw, y + th, VIS_RGB(255, 255, 255));
                if (viz__text_draw(v.px, font, text, px, x, pts[1] + floordiv(th, 2), tt,
                                   VIS_RGB(0, 0, 0)) < 0)
                    rc = wf_call_fail(c, "cannot draw text");
            }
        }
        vis_image_free(mask);
        free(pts);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field line_zone_fields[] = {
    F_IMAGE, F_COPY,
    {"zone", NULL, WF_FT_LIST, NULL, WF_K_LIST | WF_K_ZONE, 0, NULL},
    {"color", NULL, WF_FT_STRING, "\"#5bb573\"", WF_K_STRING, 0, NULL},
    {"thickness", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
    {"text_thickness", NULL, WF_FT_INT, "1", WF_K_INT, 0, NULL},
    {"text_scale", NULL, WF_FT_FLOAT, "1.0", WF_K_FLOAT, 0, NULL},
    {"count_in", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
    {"count_out", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
    {"opacity", NULL, WF_FT_FLOAT01, "0.3", WF_K_FLOAT, 0, NULL},
};
static const char *const line_zone_types[] = {"roboflow_core/line_counter_visualization@v1",
                                              NULL};
static const struct wf_block line_zone_v1 = {
    .types = line_zone_types, .fields = line_zone_fields, .nfields = ARRAY_LEN(line_zone_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = line_zone_run,
};

/* ---- classification_label_visualization ------------------------------------------------- */

struct cls_pred {
    const char *cls;
    int class_id;
    double conf;
    size_t order;
};

static int cls_pred_cmp(const void *a, const void *b)
{
    const struct cls_pred *x = a, *y = b;
    if (x->conf != y->conf)
        return x->conf > y->conf ? -1 : 1; /* descending, stable on ties */
    return x->order < y->order ? -1 : x->order > y->order;
}

#define CLS_MAX_PREDS 10000

/* The classes to show, sorted by confidence (single-label: the top one). */
static int cls_preds_read(const json_t *p, struct cls_pred **out, size_t *n)
{
    const json_t *preds = json_object_get(p, "predictions");
    struct cls_pred *v = NULL;
    size_t cnt = 0;
    if (json_is_array(preds)) {
        size_t k;
        const json_t *it;
        if (json_array_size(preds) > CLS_MAX_PREDS)
            return ERR_LIMIT;
        v = xcalloc(json_array_size(preds) + 1, sizeof *v);
        json_array_foreach(preds, k, it)
        {
            const json_t *cf = json_object_get(it, "confidence");
            if (!json_is_number(cf) || !json_is_string(json_object_get(it, "class")))
                goto bad;
            v[cnt].cls = json_string_value(json_object_get(it, "class"));
            v[cnt].class_id = (int)json_integer_value(json_object_get(it, "class_id"));
            v[cnt].conf = json_number_value(cf);
            v[cnt].order = cnt;
            cnt++;
        }
        qsort(v, cnt, sizeof *v, cls_pred_cmp);
        if (cnt > 1)
            cnt = 1;
    } else if (json_is_object(preds)) {
        const json_t *pc = json_object_get(p, "predicted_classes"), *it;
        size_t k;
        if (!json_is_array(pc))
            goto bad;
        if (json_array_size(pc) > CLS_MAX_PREDS)
            return ERR_LIMIT;
        v = xcalloc(json_array_size(pc) + 1, sizeof *v);
        json_array_foreach(pc, k, it)
        {
            const json_t *info = json_object_get(preds, json_string_value(it));
            const json_t *cf = json_object_get(info, "confidence");
            if (!json_is_string(it) || !json_is_number(cf))
                goto bad;
            v[cnt].cls = json_string_value(it);
            v[cnt].class_id = (int)json_integer_value(json_object_get(info, "class_id"));
            v[cnt].conf = json_number_value(cf);
            v[cnt].order = cnt;
            cnt++;
        }
        qsort(v, cnt, sizeof *v, cls_pred_cmp);
    } else {
        goto bad;
    }
    *out = v, *n = cnt;
    return 0;
bad:
    free(v);
    return ERR_INVALID;
}

static void cls_label(const struct cls_pred *p, const char *text, char *out, size_t cap)
{
    if (!strcmp(text, "Confidence"))
        snprintf(out, cap, "%.2f", p->conf);
    else if (!strcmp(text, "Class and Confidence"))
        snprintf(out, cap, "%s %.2f", p->cls, p->conf);
    else
        snprintf(out, cap, "%s", p->cls);
}

static int cls_label_run(struct wf_call *c)
{
    char label[VIZ_MAX_LABEL];
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct viz v;
        struct viz_label_style st;
        struct cls_pred *preds = NULL;
        size_t n = 0;
        const json_t *p = wf_arg_json(c, i, "predictions");
        const char *text = wf_arg_str(c, i, "text");
        const char *posname = wf_arg_str(c, i, "text_position");
        double scale = wf_arg_double(c, i, "text_scale", 1.0), ts, off, w, h;
        int rc;
        if (!json_is_object(p))
            return wf_call_fail(c, "invalid prediction format: expected a classification result");
        if ((rc = cls_preds_read(p, &preds, &n)) < 0)
            return wf_call_fail(c, "invalid prediction format: expected a classification result");
        if ((rc = viz_begin(c, i, false, true, &v)) < 0 ||
            (rc = label_style_read(c, i, scale, &st)) < 0) {
            free(preds);
            return v.px ? viz_end(&v, rc) : rc;
        }
        if (!text)
            text = "Class";
        /* layout from ClassificationLabelVisualizationBlockV1 */
        ts = 20.0 * scale + st.padding * 2 + st.thickness * 2 + 5;
        off = ts;
        w = json_number_value(json_object_get(json_object_get(p, "image"), "width"));
        h = json_number_value(json_object_get(json_object_get(p, "image"), "height"));
        if (!json_is_number(json_object_get(json_object_get(p, "image"), "width")))
            w = v.px->w, h = v.px->h;
        if (posname && !strncmp(posname, "BOTTOM", 6)) {
            /* reversed order, boxes [0, 0, w, h - (off + k * ts)] */
            for (size_t a = 0, b = n ? n - 1 : 0; a < b; a++, b--) {
                struct cls_pred t = preds[a];
                preds[a] = preds[b], preds[b] = t;
            }
        }
        for (size_t k = 0; k < n && rc == 0; k++) {
            struct wf_det d;
            struct vis_color bg;
            int ax, ay;
            memset(&d, 0, sizeof d);
            if (posname && !strncmp(posname, "BOTTOM", 6)) {
                d.x1 = 0, d.y1 = 0, d.x2 = (float)w, d.y2 = (float)(h - (off + k * ts));
            } else if (posname && !strncmp(posname, "CENTER", 6)) {
                double total = ts * n, sy = (h - total) / 2, maxlen = 0, lw, extra;
                for (size_t q = 0; q < n; q++) {
                    char tmp[VIZ_MAX_LABEL];
                    cls_label(&preds[q], text, tmp, sizeof tmp);
                    maxlen = strlen(tmp) > maxlen ? (double)strlen(tmp) : maxlen;
                }
                if (sy > h - total)
                    sy = h - total;
                if (sy < 0)
                    sy = 0;
                lw = maxlen * 15 * scale + st.padding * 2;
                extra = 20 + (10 - st.padding > 0 ? 10 - st.padding : 0) * 3;
                d.x1 = 0, d.x2 = (float)w;
                if (!strcmp(posname, "CENTER_LEFT"))
                    d.x1 = (float)(lw + extra);
                else if (!strcmp(posname, "CENTER_RIGHT"))
                    d.x2 = (float)(w - (lw + extra));
                d.y1 = (float)(sy + k * ts), d.y2 = (float)(sy + (k + 1) * ts);
            } else {
                d.x1 = 0, d.y1 = (float)(off + k * ts), d.x2 = (float)w, d.y2 = (float)h;
            }
            cls_label(&preds[k], text, label, sizeof label);
            if (viz__color_for(&v.pal, v.axis, k, preds[k].class_id, 0, &bg, v.err,
                               sizeof v.err) < 0) {
                rc = wf_call_fail(c, "%s", v.err);
                break;
            }
            viz__anchor(&d, st.pos, v.px->w, v.px->h, &ax, &ay);
            if ((rc = viz__label_draw(v.px, &st, label, ax, ay, bg, NULL)) < 0)
                rc = wf_call_fail(c, "cannot draw label '%s'", label);
        }
        free(preds);
        if ((rc = viz_end(&v, rc)) < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field cls_label_fields[] = {
    F_IMAGE, F_COPY,
    {"predictions", NULL, WF_FT_DICT, NULL, WF_K_CLS, WF_F_SELECTOR_ONLY, NULL},
    F_COLORABLE,
    {"text", NULL, WF_FT_ENUM, "\"Class\"", WF_K_STRING, 0, CLS_TEXTS},
    {"text_position", NULL, WF_FT_ENUM, "\"TOP_LEFT\"", WF_K_STRING, 0, CLS_POSITIONS},
    {"text_color", NULL, WF_FT_STRING, "\"WHITE\"", WF_K_STRING, 0, NULL},
    F_LABEL_STYLE,
};
static const char *const cls_label_types[] = {
    "roboflow_core/classification_label_visualization@v1", NULL};
static const struct wf_block cls_label_v1 = {
    .types = cls_label_types, .fields = cls_label_fields, .nfields = ARRAY_LEN(cls_label_fields),
    .outputs = OUT_IMAGE, .noutputs = 1, .run = cls_label_run,
};

const struct wf_block *const wf_blocks_visualization[] = {
    &bbox_v1,  &label_v1, &label_v2,  &blur_v1, &pixelate_v1, &polygon_v1,   &mask_v1,
    &dot_v1,   &circle_v1, &corner_v1, &crop_v1, &zone_v1,     &cls_label_v1, &line_zone_v1,
    &ellipse_v1, &triangle_v1, &color_v1, &background_v1, &keypoint_v1,
    &halo_v1,    &reference_path_v1, &comparison_v1, &polygon_v2, &halo_v2, NULL,
};
