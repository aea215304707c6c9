/*
 * blocks/transform.c — transformation blocks: dynamic_crop,
 * absolute_static_crop, relative_statoic_crop (Roboflow's spelling),
 * image_slicer v1/v2, detections_filter, detections_transformation,
 * detection_offset, per_class_confidence_filter, detections_merge.
 *
 * Crops copy their pixels (crops are small next to the frame and a copy
 * keeps values independent of their parent's lifetime).  Coordinates
 * follow Roboflow: crop boxes are xyxy rounded half-to-even, static crops
 * round the centre-based corner the same way, and slicer offsets come from
 * arange(0, W, stride) with stride = slice - int(overlap * slice).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define F_IMAGES {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL}
#define F_IMAGE {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL}
#define F_PREDS {"predictions", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL}
#define F_OPS {"operations", NULL, WF_FT_LIST, NULL, 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL}
#define F_OPS_PARAMS \
    {"operations_parameters", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL}

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, dim, flags, fn, check)                                        \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,         \
                                        ARRAY_LEN(outs), dim, flags, NULL, fn, check}

/* Crops are copies: bound what one image's crops may take. */
#define WF_MAX_CROP_BYTES ((size_t)1 << 30)

/* Copy the pixels of [x1,x2)x[y1,y2) (already clipped, non-empty). */
static struct vis_image *crop_px(const struct vis_image *src, int x1, int y1, int x2, int y2)
{
    struct vis_image *c = vis_image_new(x2 - x1, y2 - y1, src->fmt);
    if (!c)
        return NULL;
    for (int y = y1; y < y2; y++)
        memcpy(vis_px(c, 0, y - y1), vis_px(src, x1, y), (size_t)(x2 - x1) * (size_t)src->fmt);
    return c;
}

static int clampi(double v, int lo, int hi)
{
    if (!(v >= lo))
        return lo;
    if (v > hi)
        return hi;
    return (int)v;
}

/* ---- dynamic_crop ------------------------------------------------------------------- */
static bool in_poly(const struct wf_point *p, size_t n, double x, double y)
{
    bool in = false;
    for (size_t i = 0, j = n - 1; i < n; j = i++)
        if ((p[i].y > y) != (p[j].y > y) &&
            x < ((double)p[j].x - p[i].x) * (y - p[i].y) / ((double)p[j].y - p[i].y) + p[i].x)
            in = !in;
    return in;
}

/* Blend the pixels of crop px (at x0, y0 in the parent) outside the mask
 * polygon towards the background colour by 'opacity', as Roboflow's
 * dynamic_crop does with mask_opacity. */
static void mask_background(struct vis_image *px, const struct wf_det *d, int x0, int y0,
                            double opacity, const uint8_t bgr[3])
{
    int ch = (int)px->fmt;
    for (int y = 0; y < px->h; y++)
        for (int x = 0; x < px->w; x++) {
            uint8_t *p;
            if (in_poly(d->poly, d->npoly, x0 + x + 0.5, y0 + y + 0.5))
                continue;
            p = vis_px(px, x, y);
            for (int k = 0; k < ch && k < 3; k++)
                p[k] = (uint8_t)nearbyint(p[k] * (1 - opacity) + bgr[ch == 1 ? 0 : k] * opacity);
        }
}

static int dynamic_crop_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "images");
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        double opacity = wf_arg_double(c, i, "mask_opacity", 0);
        size_t bytes = 0;
        uint8_t bg[3] = {0, 0, 0};
        if (opacity > 0 && wf_color_parse(wf_arg_json(c, i, "background_color"), bg) < 0)
            return wf_call_fail(c, "field 'background_color': not a colour");
        struct wf_value *crops = wf_value_list(ds->n), *preds = wf_value_list(ds->n);
        for (size_t k = 0; k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            int x1 = clampi(nearbyint(d->x1), 0, im->img->w);
            int y1 = clampi(nearbyint(d->y1), 0, im->img->h);
            int x2 = clampi(nearbyint(d->x2), 0, im->img->w);
            int y2 = clampi(nearbyint(d->y2), 0, im->img->h);
            struct vis_image *px;
            struct wf_image *ci;
            struct wf_dets *one;
            struct wf_det *nd;
            if (x2 <= x1 || y2 <= y1)
                continue; /* zero-area crop: None */
            bytes += (size_t)(x2 - x1) * (size_t)(y2 - y1) * (size_t)im->img->fmt;
            if (bytes > WF_MAX_CROP_BYTES) {
                wf_value_unref(crops);
                wf_value_unref(preds);
                return wf_call_fail(c, "crops of one image exceed %d MiB",
                                    (int)(WF_MAX_CROP_BYTES >> 20));
            }
            px = crop_px(im->img, x1, y1, x2, y2);
            if (!px) {
                wf_value_unref(crops);
                wf_value_unref(preds);
                return wf_call_fail(c, "out of memory cropping %dx%d", x2 - x1, y2 - y1);
            }
            if (opacity > 0 && d->has_mask && d->npoly >= 3)
                mask_background(px, d, x1, y1, opacity, bg);
            ci = wf_image_new_child(im, px, x1, y1, d->detection_id);
            /* the detection itself with box, polygon and keypoints moved into
             * the crop's coordinates; like Roboflow, its data (parent_id,
             * image_dimensions, origins) is left as it was */
            one = wf_dets_new();
            nd = wf_dets_push_copy(one, d);
            nd->x1 -= (float)x1, nd->x2 -= (float)x1, nd->y1 -= (float)y1, nd->y2 -= (float)y1;
            for (size_t p = 0; p < nd->npoly; p++)
                nd->poly[p].x -= (float)x1, nd->poly[p].y -= (float)y1;
            for (size_t p = 0; p < nd->nkp; p++)
                nd->kp[p].x -= (float)x1, nd->kp[p].y -= (float)y1;
            wf_value_list_set(crops, k, wf_value_image(ci));
            wf_value_list_set(preds, k, wf_value_dets(one));
        }
        wf_out_set(c, i, "crops", crops);
        wf_out_set(c, i, "predictions", preds);
    }
    return 0;
}

/* Roboflow's DynamicCropManifest takes its predictions also under the
 * legacy key "detections" (pydantic AliasChoices). */
static const struct wf_field dynamic_crop_fields[] = {
    F_IMAGES,
    {"predictions", "detections", WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"mask_opacity", NULL, WF_FT_FLOAT01, "0.0", WF_K_NUMBER, 0, NULL},
    {"background_color", NULL, WF_FT_ANY, "[0, 0, 0]", WF_K_STRING | WF_K_COLOR, 0, NULL},
};
static const struct wf_output dynamic_crop_outs[] = {{"crops", WF_K_IMAGE}, {"predictions", WF_K_DETS}};
TYPES(dynamic_crop, "roboflow_core/dynamic_crop@v1", "DynamicCrop", "Crop");
BLOCK(dynamic_crop, dynamic_crop_fields, dynamic_crop_outs, 1, 0, dynamic_crop_run, NULL);

/* ---- static crops ----------------------------------------------------------------------- */
static void static_crop_one(struct wf_call *c, size_t i, const struct wf_image *im, double xc,
                            double yc, double w, double h, const char *prefix)
{
    double x_min = wf__round_half_even(xc - w / 2), y_min = wf__round_half_even(yc - h / 2);
    double x_max = wf__round_half_even(x_min + w), y_max = wf__round_half_even(y_min + h);
    int x1 = clampi(x_min, 0, im->img->w), y1 = clampi(y_min, 0, im->img->h);
    int x2 = clampi(x_max, 0, im->img->w), y2 = clampi(y_max, 0, im->img->h);
    struct vis_image *px;
    char id[64], uid[37];
    if (x2 <= x1 || y2 <= y1)
        return; /* None */
    px = crop_px(im->img, x1, y1, x2, y2);
    if (!px)
        return;
    uuid4(uid);
    snprintf(id, sizeof id, "%s.%s", prefix, uid);
    wf_out_set(c, i, "crops", wf_value_image(wf_image_new_child(im, px, x1, y1, id)));
}

static int abs_crop_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++)
        static_crop_one(c, i, wf_arg_image(c, i, "images"), wf_arg_double(c, i, "x_center", 0),
                        wf_arg_double(c, i, "y_center", 0), wf_arg_double(c, i, "width", 0),
                        wf_arg_double(c, i, "height", 0), "absolute_static_crop");
    return 0;
}

static int rel_crop_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "images");
        double W = im->img->w, H = im->img->h;
        static_crop_one(c, i, im, wf_arg_double(c, i, "x_center", 0) * W,
                        wf_arg_double(c, i, "y_center", 0) * H, wf_arg_double(c, i, "width", 0) * W,
                        wf_arg_double(c, i, "height", 0) * H, "relative_static_crop");
    }
    return 0;
}

static const struct wf_field abs_crop_fields[] = {
    F_IMAGES,
    {"x_center", NULL, WF_FT_INT_POS, NULL, WF_K_INT, 0, NULL},
    {"y_center", NULL, WF_FT_INT_POS, NULL, WF_K_INT, 0, NULL},
    {"width", NULL, WF_FT_INT_POS, NULL, WF_K_INT, 0, NULL},
    {"height", NULL, WF_FT_INT_POS, NULL, WF_K_INT, 0, NULL},
};
static const struct wf_field rel_crop_fields[] = {
    F_IMAGES,
    {"x_center", NULL, WF_FT_FLOAT01, NULL, WF_K_NUMBER, 0, NULL},
    {"y_center", NULL, WF_FT_FLOAT01, NULL, WF_K_NUMBER, 0, NULL},
    {"width", NULL, WF_FT_FLOAT01, NULL, WF_K_NUMBER, 0, NULL},
    {"height", NULL, WF_FT_FLOAT01, NULL, WF_K_NUMBER, 0, NULL},
};
static const struct wf_output crops_out[] = {{"crops", WF_K_IMAGE}};
TYPES(abs_crop, "roboflow_core/absolute_static_crop@v1", "AbsoluteStaticCrop");
BLOCK(abs_crop, abs_crop_fields, crops_out, 0, 0, abs_crop_run, NULL);
TYPES(rel_crop, "roboflow_core/relative_statoic_crop@v1", "RelativeStaticCrop");
BLOCK(rel_crop, rel_crop_fields, crops_out, 0, 0, rel_crop_run, NULL);

/* ---- image_slicer ----------------------------------------------------------------------- */
#define SLICER_MAX 4096

/* Offsets along one axis; v2 clamps the slice into the image and drops
 * duplicates.  Returns the count written to out (<= SLICER_MAX). */
static size_t slice_axis(int len, int size, double overlap, int v2, int *out)
{
    int stride = size - (int)(overlap * size);
    size_t n = 0;
    if (stride < 1)
        stride = 1;
    for (long a = 0; a < len && n < SLICER_MAX; a += stride) {
        int o = (int)a;
        if (v2 && o + size > len)
            o = len - size;
        if (v2 && n && out[n - 1] == o)
            continue;
        out[n++] = o;
    }
    return n;
}

static int slicer_run_v(struct wf_call *c, int v2)
{
    static _Thread_local int xs[SLICER_MAX], ys[SLICER_MAX];
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        int W = im->img->w, H = im->img->h;
        int sw = (int)wf_arg_int(c, i, "slice_width", 640), sh = (int)wf_arg_int(c, i, "slice_height", 640);
        double ow = wf_arg_double(c, i, "overlap_ratio_width", 0.2);
        double oh = wf_arg_double(c, i, "overlap_ratio_height", 0.2);
        size_t nx, ny;
        struct wf_value *list;
        if (ow >= 1 || oh >= 1)
            return wf_call_fail(c, "overlap ratios must be < 1");
        if (v2) {
            sw = MIN(sw, W);
            sh = MIN(sh, H);
        }
        nx = slice_axis(W, sw, ow, v2, xs);
        ny = slice_axis(H, sh, oh, v2, ys);
        if (nx * ny > (size_t)WF_MAX_ELEMENTS)
            return wf_call_fail(c, "too many slices (%zu)", nx * ny);
        if (nx * ny * (size_t)MIN(sw, W) * (size_t)MIN(sh, H) * (size_t)im->img->fmt >
            WF_MAX_CROP_BYTES)
            return wf_call_fail(c, "slices of one image would exceed %d MiB",
                                (int)(WF_MAX_CROP_BYTES >> 20));
        list = wf_value_list(nx * ny);
        for (size_t y = 0; y < ny; y++)
            for (size_t x = 0; x < nx; x++) {
                int x1 = xs[x], y1 = ys[y], x2 = MIN(x1 + sw, W), y2 = MIN(y1 + sh, H);
                char id[64], uid[37];
                struct vis_image *px = crop_px(im->img, x1, y1, x2, y2);
                if (!px) {
                    wf_value_unref(list);
                    return wf_call_fail(c, "out of memory slicing");
                }
                uuid4(uid);
                snprintf(id, sizeof id, "image_slicer.%s", uid);
                wf_value_list_set(list, y * nx + x,
                                  wf_value_image(wf_image_new_child(im, px, x1, y1, id)));
            }
        wf_out_set(c, i, "slices", list);
    }
    return 0;
}

static int slicer1_run(struct wf_call *c)
{
    return slicer_run_v(c, 0);
}

static int slicer2_run(struct wf_call *c)
{
    return slicer_run_v(c, 1);
}

static const struct wf_field slicer_fields[] = {
    F_IMAGE,
    {"slice_width", NULL, WF_FT_INT_POS, "640", WF_K_INT, 0, NULL},
    {"slice_height", NULL, WF_FT_INT_POS, "640", WF_K_INT, 0, NULL},
    {"overlap_ratio_width", NULL, WF_FT_FLOAT01, "0.2", WF_K_NUMBER, 0, NULL},
    {"overlap_ratio_height", NULL, WF_FT_FLOAT01, "0.2", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output slices_out[] = {{"slices", WF_K_IMAGE}};
TYPES(slicer1, "roboflow_core/image_slicer@v1");
BLOCK(slicer1, slicer_fields, slices_out, 1, 0, slicer1_run, NULL);
TYPES(slicer2, "roboflow_core/image_slicer@v2");
BLOCK(slicer2, slicer_fields, slices_out, 1, 0, slicer2_run, NULL);

/* ---- detections_filter / detections_transformation ------------------------------------------ */
static int ops_run(struct wf_call *c)
{
    char err[512];
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_value *preds = wf_arg(c, i, "predictions");
        const json_t *ops = wf_arg_json(c, i, "operations");
        const struct wf_value *params = wf_arg(c, i, "operations_parameters");
        struct wf_value *dict = NULL, *out = NULL;
        struct wf_ql_ctx cx = {0};
        int rc;
        /* parameters as a dict of values (a literal {} arrives as JSON) */
        if (params->type == WF_V_DICT) {
            dict = wf_value_ref((struct wf_value *)params);
        } else {
            const char *k;
            json_t *v;
            dict = wf_value_dict_new();
            json_object_foreach((json_t *)wf_arg_json(c, i, "operations_parameters"), k, v)
                wf_value_dict_add(dict, k, wf_value_json(json_deep_copy(v)));
        }
        cx.params = dict;
        cx.err = err;
        cx.errlen = sizeof err;
        rc = wf__ql_apply(&cx, ops, (struct wf_value *)preds, &out);
        wf_value_unref(dict);
        if (rc < 0)
            return wf_call_fail(c, "field 'operations': %s", err);
        if (out->type != WF_V_DETS) {
            wf_value_unref(out);
            return wf_call_fail(c, "field 'operations': the operations must produce detections");
        }
        wf_out_set(c, i, "predictions", out);
    }
    return 0;
}

static int ops_check(const json_t *step, char *err, size_t errlen)
{
    char sub[256];
    if (wf__ql_check_ops(json_object_get(step, "operations"), sub, sizeof sub) < 0) {
        wf__errf(err, errlen, "field 'operations': %s", sub);
        return ERR_INVALID;
    }
    return 0;
}

static const struct wf_field ops_fields[] = {F_PREDS, F_OPS, F_OPS_PARAMS};
static const struct wf_output preds_out[] = {{"predictions", WF_K_DETS}};
TYPES(dfilter, "roboflow_core/detections_filter@v1", "DetectionsFilter");
BLOCK(dfilter, ops_fields, preds_out, 0, 0, ops_run, ops_check);
TYPES(dtrans, "roboflow_core/detections_transformation@v1", "DetectionsTransformation");
BLOCK(dtrans, ops_fields, preds_out, 0, 0, ops_run, ops_check);

/* ---- detection_offset ---------------------------------------------------------------------- */
static int offset_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct wf_dets *ds = wf_dets_clone(wf_arg_dets(c, i, "predictions"));
        double ow = wf_arg_double(c, i, "offset_width", 0), oh = wf_arg_double(c, i, "offset_height", 0);
        const char *units = wf_arg_str(c, i, "units");
        bool pct = units && !strcmp(units, "Percent (%)");
        for (size_t k = 0; k < ds->n; k++) {
            struct wf_det *d = &ds->d[k];
            double dx, dy;
            if (pct) {
                dx = ((double)d->x2 - d->x1) * ow / 200.0;
                dy = ((double)d->y2 - d->y1) * oh / 200.0;
            } else {
                dx = floor(ow / 2);
                dy = floor(oh / 2);
            }
            d->x1 = (float)MAX(0.0, d->x1 - dx);
            d->y1 = (float)MAX(0.0, d->y1 - dy);
            d->x2 = (float)(d->img_w > 0 ? MIN((double)d->img_w, d->x2 + dx) : d->x2 + dx);
            d->y2 = (float)(d->img_h > 0 ? MIN((double)d->img_h, d->y2 + dy) : d->y2 + dy);
            wf_det_set_str(&d->parent_id, d->detection_id);
            uuid4(d->detection_id);
        }
        wf_out_dets(c, i, "predictions", ds);
    }
    return 0;
}

static const char *const offset_units[] = {"Pixels", "Percent (%)", NULL};
static const struct wf_field offset_fields[] = {
    F_PREDS,
    /* legacy keys offset_x / offset_y (pydantic AliasChoices in Roboflow) */
    {"offset_width", "offset_x", WF_FT_INT_POS, NULL, WF_K_INT, 0, NULL},
    {"offset_height", "offset_y", WF_FT_INT_POS, NULL, WF_K_INT, 0, NULL},
    {"units", NULL, WF_FT_ENUM, "\"Pixels\"", 0, WF_F_NO_SELECTOR, offset_units},
};
TYPES(offset, "roboflow_core/detection_offset@v1", "DetectionOffset");
BLOCK(offset, offset_fields, preds_out, 0, 0, offset_run, NULL);

/* ---- per_class_confidence_filter ------------------------------------------------------------- */
static int pccf_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct wf_dets *ds = wf_dets_clone(wf_arg_dets(c, i, "predictions"));
        const json_t *th = wf_arg_json(c, i, "class_thresholds");
        double def = wf_arg_double(c, i, "default_threshold", 0.3);
        bool *keep = xcalloc(ds->n + 1, sizeof *keep);
        for (size_t k = 0; k < ds->n; k++) {
            const json_t *t = json_object_get(th, ds->d[k].class_name);
            double thr = json_is_number(t) ? json_number_value(t) : def;
            keep[k] = ds->d[k].confidence >= thr;
        }
        wf_dets_keep(ds, keep);
        free(keep);
        wf_out_dets(c, i, "predictions", ds);
    }
    return 0;
}

static const struct wf_field pccf_fields[] = {
    F_PREDS,
    {"class_thresholds", NULL, WF_FT_DICT, NULL, WF_K_DICT, 0, NULL},
    {"default_threshold", NULL, WF_FT_FLOAT01, "0.3", WF_K_NUMBER, 0, NULL},
};
TYPES(pccf, "roboflow_core/per_class_confidence_filter@v1");
BLOCK(pccf, pccf_fields, preds_out, 0, 0, pccf_run, NULL);

/* ---- detections_merge -------------------------------------------------------------------------- */
static int merge_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        const char *cls = wf_arg_str(c, i, "class_name");
        struct wf_dets *out = wf_dets_new();
        if (ds->n) {
            struct wf_det *d = wf_dets_push_new(out);
            const struct wf_det *f = &ds->d[0];
            d->x1 = f->x1, d->y1 = f->y1, d->x2 = f->x2, d->y2 = f->y2;
            d->confidence = f->confidence;
            for (size_t k = 1; k < ds->n; k++) {
                const struct wf_det *e = &ds->d[k];
                d->x1 = MIN(d->x1, e->x1), d->y1 = MIN(d->y1, e->y1);
                d->x2 = MAX(d->x2, e->x2), d->y2 = MAX(d->y2, e->y2);
                d->confidence = MIN(d->confidence, e->confidence);
            }
            /* like Roboflow: union box, lowest confidence, class_id 0, and a
             * data dict with only class_name and detection_id */
            d->class_id = 0;
            wf_det_set_str(&d->class_name, cls ? cls : "merged_detection");
            d->no_parent = true;
        }
        wf_out_dets(c, i, "predictions", out);
    }
    return 0;
}

static const struct wf_field merge_fields[] = {
    F_PREDS,
    {"class_name", NULL, WF_FT_STRING, "\"merged_detection\"", 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output merge_outs[] = {{"predictions", WF_K_OD}};
TYPES(merge, "roboflow_core/detections_merge@v1");
BLOCK(merge, merge_fields, merge_outs, 0, 0, merge_run, NULL);


/* ---- bounding_rect ----------------------------------------------------------------------------- */
static int cmp_pt(const void *a, const void *b)
{
    const struct wf_point *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    return p->y < q->y ? -1 : p->y > q->y;
}

static double cross3(struct wf_point o, struct wf_point a, struct wf_point b)
{
    return ((double)a.x - o.x) * ((double)b.y - o.y) - ((double)a.y - o.y) * ((double)b.x - o.x);
}

/* Minimum-area rectangle of a polygon (convex hull + rotating edges):
 * corners out[4], side lengths, angle in degrees normalised to (0, 90]
 * with width/height swapped accordingly (OpenCV >= 4.5 convention). */
static void min_area_rect(const struct wf_point *pts, size_t n, struct wf_point out[4],
                          double *w, double *h, double *angle)
{
    struct wf_point *s = xcalloc(n + 1, sizeof *s), *hull = xcalloc(2 * n + 2, sizeof *hull);
    size_t k = 0;
    double best = -1;
    memcpy(s, pts, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_pt);
    for (size_t i = 0; i < n; i++) {
        while (k >= 2 && cross3(hull[k - 2], hull[k - 1], s[i]) <= 0)
            k--;
        hull[k++] = s[i];
    }
    for (size_t i = n - 1, t = k + 1; i-- > 0;) {
        while (k >= t && cross3(hull[k - 2], hull[k - 1], s[i]) <= 0)
            k--;
        hull[k++] = s[i];
    }
    if (k > 1)
        k--;
    *w = *h = *angle = 0;
    for (int c = 0; c < 4; c++)
        out[c] = s[0];
    for (size_t e = 0; e < k; e++) {
        struct wf_point a = hull[e], b = hull[(e + 1) % k];
        double dx = (double)b.x - a.x, dy = (double)b.y - a.y, len = sqrt(dx * dx + dy * dy);
        double ux, uy, mnu = 1e300, mxu = -1e300, mnv = 1e300, mxv = -1e300, area;
        if (len == 0)
            continue;
        ux = dx / len, uy = dy / len;
        for (size_t q = 0; q < k; q++) {
            double u = hull[q].x * ux + hull[q].y * uy, v = -hull[q].x * uy + hull[q].y * ux;
            mnu = MIN(mnu, u), mxu = MAX(mxu, u), mnv = MIN(mnv, v), mxv = MAX(mxv, v);
        }
        area = (mxu - mnu) * (mxv - mnv);
        if (best < 0 || area < best) {
            double us[4] = {mnu, mxu, mxu, mnu}, vs[4] = {mnv, mnv, mxv, mxv};
            best = area;
            for (int c = 0; c < 4; c++) {
                out[c].x = (float)(us[c] * ux - vs[c] * uy);
                out[c].y = (float)(us[c] * uy + vs[c] * ux);
            }
            *w = mxu - mnu, *h = mxv - mnv;
            *angle = atan2(uy, ux) * 180.0 / M_PI;
        }
    }
    while (*angle <= 0)
        *angle += 90, best = *w, *w = *h, *h = best;
    while (*angle > 90)
        *angle -= 90, best = *w, *w = *h, *h = best;
    free(s);
    free(hull);
}

static int bounding_rect_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *in = wf_arg_dets(c, i, "predictions");
        struct wf_dets *ds;
        for (size_t k = 0; k < in->n; k++)
            if (!in->d[k].has_mask)
                return wf_call_fail(c, "mask missing: this block operates on the output of a "
                                       "segmentation model");
        ds = wf_dets_clone(in);
        for (size_t k = 0; k < ds->n; k++) {
            struct wf_det *d = &ds->d[k];
            struct wf_point r[4];
            double w, h, a;
            json_t *rect = json_array();
            if (d->npoly < 1)
                continue;
            min_area_rect(d->poly, d->npoly, r, &w, &h, &a);
            free(d->poly);
            d->poly = xmalloc(4 * sizeof *d->poly);
            d->npoly = 4;
            d->x1 = d->y1 = 1e30f, d->x2 = d->y2 = -1e30f;
            for (int q = 0; q < 4; q++) {
                /* cv.boxPoints then dtype=int: truncation toward zero */
                float x = (float)(int)r[q].x, y = (float)(int)r[q].y;
                d->poly[q] = (struct wf_point){x, y};
                d->x1 = MIN(d->x1, x), d->y1 = MIN(d->y1, y);
                d->x2 = MAX(d->x2, x), d->y2 = MAX(d->y2, y);
                json_array_append_new(rect, json_pack("[f,f]", (double)x, (double)y));
            }
            if (!d->extra)
                d->extra = json_object();
            json_object_set_new(d->extra, "angle", json_real(a));
            json_object_set_new(d->extra, "rect", rect);
            json_object_set_new(d->extra, "height", json_real(h));
            json_object_set_new(d->extra, "width", json_real(w));
        }
        wf_out_dets(c, i, "detections_with_rect", ds);
    }
    return 0;
}

static const struct wf_field bounding_rect_fields[] = {
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
};
static const struct wf_output bounding_rect_outs[] = {{"detections_with_rect", WF_K_IS}};
TYPES(bounding_rect, "roboflow_core/bounding_rect@v1");
BLOCK(bounding_rect, bounding_rect_fields, bounding_rect_outs, 0, 0, bounding_rect_run, NULL);

const struct wf_block *const wf_blocks_transform[] = {
    &dynamic_crop, &abs_crop, &rel_crop, &slicer1, &slicer2, &dfilter, &dtrans,
    &offset,       &pccf,     &merge,    &bounding_rect, NULL,
};
