/*
 * blocks/fusion.c — blocks that bring nested data back one level or fuse
 * predictions: detections_stitch (none/nms/nmm), detections_classes_
 * replacement, dimension_collapse.
 *
 * NMS and NMM follow supervision (with_nms / with_nmm), class-aware: boxes
 * are visited in descending confidence; NMS drops every later box of the
 * same class whose IoU with a kept box exceeds the threshold; NMM merges
 * such boxes into the kept one (union box, area-weighted confidence, data of
 * the more confident box).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, flags, fn)                                                 \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,      \
                                        ARRAY_LEN(outs), 0, flags, NULL, fn, NULL}

static double box_area(const struct wf_det *d)
{
    return MAX(0.0, (double)d->x2 - d->x1) * MAX(0.0, (double)d->y2 - d->y1);
}

static double iou(const struct wf_det *a, const struct wf_det *b)
{
    double ix = MIN(a->x2, b->x2) - MAX(a->x1, b->x1), iy = MIN(a->y2, b->y2) - MAX(a->y1, b->y1);
    double inter, uni;
    if (ix <= 0 || iy <= 0)
        return 0;
    inter = ix * iy;
    uni = box_area(a) + box_area(b) - inter;
    return uni > 0 ? inter / uni : 0;
}

struct conf_idx {
    float conf;
    size_t i;
};

static int cmp_conf_desc(const void *a, const void *b)
{
    const struct conf_idx *x = a, *y = b;
    if (x->conf != y->conf)
        return x->conf > y->conf ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* In place: NMS (merge=false) or NMM (merge=true), class-aware. */
void wf__dets_nms(struct wf_dets *ds, double thr, bool merge)
{
    size_t n = ds->n;
    struct conf_idx *ord = xcalloc(n + 1, sizeof *ord);
    bool *gone = xcalloc(n + 1, sizeof *gone), *keep = xcalloc(n + 1, sizeof *keep);
    for (size_t i = 0; i < n; i++)
        ord[i] = (struct conf_idx){ds->d[i].confidence, i};
    qsort(ord, n, sizeof *ord, cmp_conf_desc);
    for (size_t a = 0; a < n; a++) {
        size_t ia = ord[a].i;
        struct wf_det *da = &ds->d[ia];
        if (gone[ia])
            continue;
        keep[ia] = true;
        for (size_t b = a + 1; b < n; b++) {
            size_t ib = ord[b].i;
            struct wf_det *db = &ds->d[ib];
            if (gone[ib] || db->class_id != da->class_id || iou(da, db) <= thr)
                continue;
            gone[ib] = true;
            if (merge) {
                double aa = box_area(da), ab = box_area(db);
                if (aa + ab > 0)
                    da->confidence = (float)((aa * da->confidence + ab * db->confidence) / (aa + ab));
                da->x1 = MIN(da->x1, db->x1), da->y1 = MIN(da->y1, db->y1);
                da->x2 = MAX(da->x2, db->x2), da->y2 = MAX(da->y2, db->y2);
            }
        }
    }
    /* keep the original order of the survivors */
    wf_dets_keep(ds, keep);
    free(ord);
    free(gone);
    free(keep);
}

/* ---- detections_stitch ---------------------------------------------------------------------- */
static int stitch_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *ref = wf_arg_image(c, i, "reference_image");
        const struct wf_value *list = wf_arg(c, i, "predictions");
        const char *strategy = wf_arg_str(c, i, "overlap_filtering_strategy");
        double thr = wf_arg_double(c, i, "iou_threshold", 0.3);
        struct wf_dets *out = wf_dets_new();
        if (!strategy)
            strategy = "nms";
        if (strcmp(strategy, "none") && strcmp(strategy, "nms") && strcmp(strategy, "nmm")) {
            wf_dets_free(out);
            return wf_call_fail(c, "field 'overlap_filtering_strategy': '%s' is not one of none, "
                                   "nms, nmm",
                                strategy);
        }
        for (size_t k = 0; list->type == WF_V_LIST && k < list->n; k++) {
            const struct wf_value *v = list->items[k];
            if (v->type != WF_V_DETS)
                continue; /* masked slice */
            for (size_t j = 0; j < v->dets->n; j++) {
                struct wf_det *d = wf_dets_push_copy(out, &v->dets->d[j]);
                /* the slice's offset inside the reference image */
                float dx = (float)(d->root.offset_x - ref->root.offset_x);
                float dy = (float)(d->root.offset_y - ref->root.offset_y);
                d->x1 += dx, d->x2 += dx, d->y1 += dy, d->y2 += dy;
                for (size_t p = 0; p < d->npoly; p++)
                    d->poly[p].x += dx, d->poly[p].y += dy;
                for (size_t p = 0; p < d->nkp; p++)
                    d->kp[p].x += dx, d->kp[p].y += dy;
                wf_det_attach_image(d, ref);
            }
        }
        if (strcmp(strategy, "none") != 0)
            wf__dets_nms(out, thr, !strcmp(strategy, "nmm"));
        wf_out_dets(c, i, "predictions", out);
    }
    return 0;
}

static const char *const stitch_strategies[] = {"none", "nms", "nmm", NULL};
static const struct wf_field stitch_fields[] = {
    {"reference_image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY | WF_F_DIM_UP,
     NULL},
    {"overlap_filtering_strategy", NULL, WF_FT_ENUM, "\"nms\"", WF_K_STRING, WF_F_NULLABLE,
     stitch_strategies},
    {"iou_threshold", NULL, WF_FT_FLOAT01, "0.3", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output stitch_outs[] = {{"predictions", WF_K_OD | WF_K_IS}};
TYPES(stitch, "roboflow_core/detections_stitch@v1");
BLOCK(stitch, stitch_fields, stitch_outs, 0, stitch_run);

/* ---- detections_classes_replacement ------------------------------------------------------------ */
/* Leading class of a classification result: "top" (single-label) or the most
 * confident predicted class (multi-label).  false when there is none. */
static bool leading_class(const json_t *p, const char **cls, int *cid, double *conf)
{
    const json_t *top = json_object_get(p, "top");
    const json_t *preds = json_object_get(p, "predictions");
    if (json_is_string(top) && json_string_length(top)) {
        size_t i;
        const json_t *e;
        *cls = json_string_value(top);
        *cid = 0;
        json_array_foreach(preds, i, e) {
            if (json_is_string(json_object_get(e, "class")) &&
                !strcmp(json_string_value(json_object_get(e, "class")), *cls)) {
                *cid = (int)json_integer_value(json_object_get(e, "class_id"));
                break;
            }
        }
        *conf = json_number_value(json_object_get(p, "confidence"));
        return true;
    }
    if (json_is_array(json_object_get(p, "predicted_classes")) && json_is_object(preds)) {
        size_t i;
        const json_t *e;
        bool found = false;
        json_array_foreach(json_object_get(p, "predicted_classes"), i, e) {
            const json_t *info = json_object_get(preds, json_string_value(e) ? json_string_value(e) : "");
            double cf = json_number_value(json_object_get(info, "confidence"));
            if (!info)
                continue;
            if (!found || cf > *conf) {
                *cls = json_string_value(e);
                *cid = (int)json_integer_value(json_object_get(info, "class_id"));
                *conf = cf;
                found = true;
            }
        }
        return found;
    }
    return false;
}

static int replace_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *ds = wf_arg_dets(c, i, "object_detection_predictions");
        const struct wf_value *cls = wf_arg(c, i, "classification_predictions");
        const char *fb_name = wf_arg_str(c, i, "fallback_class_name");
        const json_t *fb_id = wf_arg_json(c, i, "fallback_class_id");
        struct wf_dets *out;
        if (!ds)
            continue; /* None stays None */
        out = wf_dets_new();
        if (cls->type != WF_V_LIST || cls->n == 0) {
            wf_out_dets(c, i, "predictions", out); /* empty detections */
            continue;
        }
        for (size_t k = 0; k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            const char *name = NULL;
            int cid = 0;
            double conf = 0;
            bool found = false;
            for (size_t j = 0; j < cls->n && !found; j++) {
                const json_t *p = cls->items[j]->type == WF_V_JSON ? cls->items[j]->json : NULL;
                const char *pid = json_string_value(json_object_get(p, "parent_id"));
                if (pid && !strcmp(pid, d->detection_id))
                    found = leading_class(p, &name, &cid, &conf);
            }
            if (!found) {
                if (!fb_name)
                    continue; /* dropped */
                name = fb_name;
                cid = json_is_integer(fb_id) ? (int)json_integer_value(fb_id) : INT32_MAX;
                conf = 0;
            }
            struct wf_det *nd = wf_dets_push_copy(out, d);
            wf_det_set_str(&nd->class_name, name);
            nd->class_id = cid;
            nd->confidence = (float)conf;
            uuid4(nd->detection_id);
        }
        wf_out_dets(c, i, "predictions", out);
    }
    return 0;
}

static const struct wf_field replace_fields[] = {
    {"object_detection_predictions", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"classification_predictions", NULL, WF_FT_ANY, NULL, WF_K_CLS | WF_K_LIST | WF_K_STRING,
     WF_F_SELECTOR_ONLY | WF_F_DIM_UP, NULL},
    {"fallback_class_name", NULL, WF_FT_STRING, "null", WF_K_STRING, WF_F_NULLABLE, NULL},
    {"fallback_class_id", NULL, WF_FT_INT, "null", WF_K_INT, WF_F_NULLABLE, NULL},
};
static const struct wf_output replace_outs[] = {{"predictions", WF_K_DETS}};
TYPES(replace, "roboflow_core/detections_classes_replacement@v1", "DetectionsClassesReplacement");
BLOCK(replace, replace_fields, replace_outs, WF_BLOCK_ACCEPTS_EMPTY, replace_run);

/* ---- dimension_collapse ------------------------------------------------------------------------- */
static int collapse_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++)
        wf_out_set(c, i, "output", wf_value_ref((struct wf_value *)wf_arg(c, i, "data")));
    return 0;
}

static const struct wf_field collapse_fields[] = {
    {"data", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY | WF_F_DIM_UP, NULL},
};
static const struct wf_output collapse_outs[] = {{"output", WF_K_LIST}};
TYPES(collapse, "roboflow_core/dimension_collapse@v1", "DimensionCollapse");
BLOCK(collapse, collapse_fields, collapse_outs, 0, collapse_run);

const struct wf_block *const wf_blocks_fusion[] = {&stitch, &replace, &collapse, NULL};
