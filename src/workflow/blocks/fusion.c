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
                /* Roboflow (manage_crops_metadata + move_detections): the
                 * offset is the slice's parent_coordinates; parent and root
                 * coordinates drop by it, image_dimensions and parent_id
                 * become the reference image's */
                int ox = d->parent.offset_x, oy = d->parent.offset_y;
                float dx = (float)ox, dy = (float)oy;
                d->x1 += dx, d->x2 += dx, d->y1 += dy, d->y2 += dy;
                for (size_t p = 0; p < d->npoly; p++)
                    d->poly[p].x += dx, d->poly[p].y += dy;
                for (size_t p = 0; p < d->nkp; p++)
                    d->kp[p].x += dx, d->kp[p].y += dy;
                d->parent.offset_x -= ox, d->parent.offset_y -= oy;
                d->root.offset_x -= ox, d->root.offset_y -= oy;
                d->img_w = ref->img->w, d->img_h = ref->img->h;
                wf_det_set_str(&d->parent_id, ref->parent_id);
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
struct leading {
    const char *name;
    json_int_t id;
    double conf;
    bool max_id; /* fallback id sys.maxsize */
};

/* Roboflow's extract_leading_class_from_prediction: 0 and *out, or -1
 * (no class: the detection is dropped). */
static int leading_class(const json_t *p, const char *fb_name, const json_t *fb_id,
                         struct leading *out)
{
    const json_t *preds = json_object_get(p, "predictions");
    if (json_is_string(p)) {
        *out = (struct leading){json_string_value(p), 0, 1.0, false};
        return 0;
    }
    if (json_is_array(p)) {
        if (json_array_size(p) == 0) {
            if (!fb_name || !fb_name[0])
                return -1;
            goto fallback;
        }
        if (!json_is_string(json_array_get(p, 0)))
            return -1;
        *out = (struct leading){json_string_value(json_array_get(p, 0)), 0, 1.0, false};
        return 0;
    }
    if (json_object_get(p, "top")) {
        const char *top = json_string_value(json_object_get(p, "top"));
        size_t i, nmatch = 0;
        const json_t *e;
        bool empty = !preds || (json_is_array(preds) && json_array_size(preds) == 0) ||
                     (json_is_object(preds) && json_object_size(preds) == 0);
        if (empty && (!fb_name || !fb_name[0]))
            return -1;
        if (empty)
            goto fallback;
        json_array_foreach(preds, i, e) {
            const char *cls = json_string_value(json_object_get(e, "class"));
            if (top && cls && !strcmp(cls, top)) {
                if (!nmatch++)
                    *out = (struct leading){top, json_integer_value(json_object_get(e, "class_id")),
                                            json_number_value(json_object_get(e, "confidence")),
                                            false};
            }
        }
        return nmatch == 1 ? 0 : -2;
    }
    if (json_array_size(json_object_get(p, "predicted_classes")) && json_is_object(preds)) {
        const char *k;
        json_t *e;
        bool found = false;
        json_object_foreach((json_t *)preds, k, e) {
            double cf = json_number_value(json_object_get(e, "confidence"));
            if (!found || cf > out->conf) {
                *out = (struct leading){k, json_integer_value(json_object_get(e, "class_id")), cf,
                                        false};
                found = true;
            }
        }
        return found && out->conf != 0 ? 0 : -1;
    }
    return -1;
fallback:
    out->name = fb_name;
    out->conf = 0;
    out->max_id = !json_is_integer(fb_id) || json_integer_value(fb_id) < 0;
    out->id = out->max_id ? 0 : json_integer_value(fb_id);
    return 0;
}

static void set_class(struct wf_det *d, const struct leading *l)
{
    wf_det_set_str(&d->class_name, l->name);
    d->class_id = (int)l->id;
    d->confidence = (float)l->conf;
    if (l->max_id || l->id != (json_int_t)d->class_id) {
        /* class ids beyond int (sys.maxsize) are kept exact in the data */
        if (!d->extra)
            d->extra = json_object();
        json_object_set_new(d->extra, "class_id",
                            l->max_id ? json_integer(INT64_MAX) : json_integer(l->id));
    }
    uuid4(d->detection_id);
}

static int replace_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *ds = wf_arg_dets(c, i, "object_detection_predictions");
        const struct wf_value *cls = wf_arg(c, i, "classification_predictions");
        const char *fb_name = wf_arg_str(c, i, "fallback_class_name");
        const json_t *fb_id = wf_arg_json(c, i, "fallback_class_id");
        struct wf_dets *out;
        const json_t *first = NULL;
        size_t n;
        if (!ds)
            continue; /* None stays None */
        out = wf_dets_new();
        n = cls->type == WF_V_LIST ? cls->n : 0;
        for (size_t j = 0; j < n && !first; j++)
            if (cls->items[j]->type == WF_V_JSON)
                first = cls->items[j]->json;
        if (json_is_string(first) || json_is_array(first)) {
            /* strings (OCR / LMM output): matched to detections by position */
            for (size_t k = 0; k < ds->n && k < n; k++) {
                const json_t *p = cls->items[k]->type == WF_V_JSON ? cls->items[k]->json : NULL;
                struct leading l;
                if (!p) {
                    if (!fb_name || !fb_name[0])
                        continue;
                    l = (struct leading){fb_name, json_is_integer(fb_id) ? json_integer_value(fb_id) : 0,
                                         0.0, !json_integer_value(fb_id)};
                } else if (leading_class(p, fb_name, fb_id, &l) < 0) {
                    continue;
                }
                set_class(wf_dets_push_copy(out, &ds->d[k]), &l);
            }
            wf_out_dets(c, i, "predictions", out);
            continue;
        }
        {
            bool all_empty = true;
            for (size_t j = 0; j < n && all_empty; j++) {
                const json_t *p = cls->items[j]->type == WF_V_JSON ? cls->items[j]->json : NULL;
                const json_t *top = json_object_get(p, "top");
                if (p && !(top && (!json_is_string(top) || !json_string_length(top))) &&
                    json_object_get(p, "predictions"))
                    all_empty = false;
            }
            if (all_empty) {
                wf_out_dets(c, i, "predictions", out);
                continue;
            }
        }
        for (size_t k = 0; k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            struct leading l = {0};
            int found = -1;
            /* the last classification of this detection wins, as a dict would */
            for (size_t j = 0; j < n; j++) {
                const json_t *p = cls->items[j]->type == WF_V_JSON ? cls->items[j]->json : NULL;
                const char *pid = json_string_value(json_object_get(p, "parent_id"));
                struct leading t;
                int rc;
                if (!pid || strcmp(pid, d->detection_id) != 0)
                    continue;
                rc = leading_class(p, fb_name, fb_id, &t);
                if (rc == -2) {
                    wf_dets_free(out);
                    return wf_call_fail(c, "could not resolve the class id of classification "
                                           "top class '%s'",
                                        json_string_value(json_object_get(p, "top")));
                }
                found = rc;
                if (rc == 0)
                    l = t;
            }
            if (found == 0)
                set_class(wf_dets_push_copy(out, d), &l);
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


/* ---- detections_consensus ---------------------------------------------------------------------- */
enum agg { AGG_AVG, AGG_MAX, AGG_MIN };

static enum agg agg_of(const char *s)
{
    if (s && !strcmp(s, "max"))
        return AGG_MAX;
    if (s && !strcmp(s, "min"))
        return AGG_MIN;
    return AGG_AVG;
}

static double agg_vals(const double *v, size_t n, enum agg a)
{
    double r = n ? v[0] : 0;
    for (size_t i = 1; i < n; i++) {
        if (a == AGG_AVG)
            r += v[i];
        else if (a == AGG_MAX)
            r = MAX(r, v[i]);
        else
            r = MIN(r, v[i]);
    }
    return a == AGG_AVG && n ? r / (double)n : r;
}

static bool class_considered(const json_t *classes, const char *name)
{
    size_t i;
    const json_t *e;
    if (!json_is_array(classes))
        return true;
    json_array_foreach(classes, i, e) {
        if (json_is_string(e) && !strcmp(json_string_value(e), name))
            return true;
    }
    return false;
}

/* Merge the group g[0..n) into one detection appended to out. */
static void consensus_merge(struct wf_dets *out, const struct wf_det *const *g, size_t n,
                            enum agg conf_a, enum agg coord_a)
{
    double *confs = xcalloc(n + 1, sizeof *confs);
    struct wf_det *d;
    size_t pick = 0;
    for (size_t i = 0; i < n; i++)
        confs[i] = g[i]->confidence;
    if (conf_a == AGG_AVG) { /* most common class, first seen wins ties */
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            size_t cnt = 0;
            for (size_t j = 0; j < n; j++)
                cnt += !strcmp(g[i]->class_name, g[j]->class_name);
            if (cnt > best)
                best = cnt, pick = i;
        }
    } else {
        for (size_t i = 1; i < n; i++)
            if (conf_a == AGG_MAX ? confs[i] > confs[pick] : confs[i] < confs[pick])
                pick = i;
    }
    d = wf_dets_push_copy(out, g[pick]);
    d->confidence = (float)agg_vals(confs, n, conf_a);
    if (coord_a == AGG_AVG) {
        double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
        for (size_t i = 0; i < n; i++)
            x1 += g[i]->x1, y1 += g[i]->y1, x2 += g[i]->x2, y2 += g[i]->y2;
        d->x1 = (float)(x1 / n), d->y1 = (float)(y1 / n), d->x2 = (float)(x2 / n),
        d->y2 = (float)(y2 / n);
    } else {
        size_t b = 0;
        for (size_t i = 1; i < n; i++)
            if (coord_a == AGG_MAX ? box_area(g[i]) > box_area(g[b]) : box_area(g[i]) < box_area(g[b]))
                b = i;
        d->x1 = g[b]->x1, d->y1 = g[b]->y1, d->x2 = g[b]->x2, d->y2 = g[b]->y2;
    }
    uuid4(d->detection_id);
    free(confs);
}

static int consensus_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_value *src = wf_arg(c, i, "predictions_batches");
        int votes = (int)wf_arg_int(c, i, "required_votes", 1);
        bool class_aware = wf_arg_bool(c, i, "class_aware", true);
        double thr = wf_arg_double(c, i, "iou_threshold", 0.3);
        double min_conf = wf_arg_double(c, i, "confidence", 0.0);
        const json_t *classes = wf_arg_json(c, i, "classes_to_consider");
        const json_t *required = wf_arg_json(c, i, "required_objects");
        enum agg pres_a = agg_of(wf_arg_str(c, i, "presence_confidence_aggregation"));
        enum agg conf_a = agg_of(wf_arg_str(c, i, "detections_merge_confidence_aggregation"));
        enum agg coord_a = agg_of(wf_arg_str(c, i, "detections_merge_coordinates_aggregation"));
        size_t ns = src->type == WF_V_LIST ? src->n : 0, total = 0;
        struct wf_dets *out = wf_dets_new();
        json_t *presence = json_object();
        bool present = false;

        for (size_t s = 0; s < ns; s++)
            if (src->items[s]->type == WF_V_DETS)
                total += src->items[s]->dets->n;
        if (total) {
            /* used[s][k]: detection k of source s already in a consensus */
            bool **used = xcalloc(ns, sizeof *used);
            const struct wf_det **grp = xcalloc(ns + 1, sizeof *grp);
            for (size_t s = 0; s < ns; s++)
                used[s] = xcalloc((src->items[s]->type == WF_V_DETS ? src->items[s]->dets->n : 0) + 1,
                                  sizeof **used);
            for (size_t s = 0; s < ns; s++) {
                const struct wf_dets *ds = src->items[s]->type == WF_V_DETS ? src->items[s]->dets : NULL;
                for (size_t k = 0; ds && k < ds->n; k++) {
                    const struct wf_det *d = &ds->d[k];
                    size_t ng = 0;
                    size_t *match = xcalloc(ns + 1, sizeof *match);
                    if (used[s][k] || !class_considered(classes, d->class_name)) {
                        free(match);
                        continue;
                    }
                    grp[ng++] = d;
                    for (size_t o = 0; o < ns; o++) {
                        const struct wf_dets *os;
                        double best = -1;
                        size_t bi = 0;
                        if (o == s || src->items[o]->type != WF_V_DETS)
                            continue;
                        os = src->items[o]->dets;
                        for (size_t q = 0; q < os->n; q++) {
                            double v;
                            if (used[o][q] || !class_considered(classes, os->d[q].class_name) ||
                                (class_aware && strcmp(os->d[q].class_name, d->class_name)))
                                continue;
                            v = iou(d, &os->d[q]);
                            if (v >= thr && v > best)
                                best = v, bi = q;
                        }
                        if (best >= 0) {
                            match[o] = bi + 1;
                            grp[ng++] = &os->d[bi];
                        }
                    }
                    if ((int)ng >= votes) {
                        size_t before = out->n;
                        consensus_merge(out, grp, ng, conf_a, coord_a);
                        if (out->d[before].confidence < min_conf) {
                            wf_det_release(&out->d[before]);
                            out->n--;
                        } else {
                            used[s][k] = true;
                            for (size_t o = 0; o < ns; o++)
                                if (match[o])
                                    used[o][match[o] - 1] = true;
                        }
                    }
                    free(match);
                }
            }
            for (size_t s = 0; s < ns; s++)
                free(used[s]);
            free(used);
            free(grp);
        }
        /* presence */
        if (out->n) {
            json_int_t req = json_is_integer(required) ? json_integer_value(required) : 0;
            if (json_is_object(required) && !class_aware) {
                const char *k;
                json_t *v;
                req = 0;
                json_object_foreach((json_t *)required, k, v) req += json_integer_value(v);
            }
            present = (json_int_t)out->n >= req;
            if (present && !class_aware) {
                double *cf = xcalloc(out->n, sizeof *cf);
                for (size_t k = 0; k < out->n; k++)
                    cf[k] = out->d[k].confidence;
                json_object_set_new(presence, "any_object", json_real(agg_vals(cf, out->n, pres_a)));
                free(cf);
            } else if (present) {
                double *cf = xcalloc(out->n, sizeof *cf);
                for (size_t k = 0; k < out->n; k++) {
                    const char *cls = out->d[k].class_name;
                    size_t m = 0;
                    if (json_object_get(presence, cls))
                        continue;
                    for (size_t q = 0; q < out->n; q++)
                        if (!strcmp(out->d[q].class_name, cls))
                            cf[m++] = out->d[q].confidence;
                    json_object_set_new(presence, cls, json_real(agg_vals(cf, m, pres_a)));
                }
                free(cf);
                if (json_is_object(required)) {
                    const char *k;
                    json_t *v;
                    json_object_foreach((json_t *)required, k, v) {
                        json_int_t cnt = 0;
                        for (size_t q = 0; q < out->n; q++)
                            cnt += !strcmp(out->d[q].class_name, k);
                        if (cnt < json_integer_value(v))
                            present = false;
                    }
                }
            }
            if (!present)
                json_object_clear(presence);
        }
        wf_out_dets(c, i, "predictions", out);
        wf_out_json(c, i, "object_present", json_boolean(present));
        wf_out_json(c, i, "presence_confidence", presence);
    }
    return 0;
}

static const char *const agg_modes[] = {"average", "max", "min", NULL};
static const char *const mask_modes[] = {"union", "intersection", "min", "max", NULL};
static const struct wf_field consensus_fields[] = {
    /* legacy key "predictions" (pydantic AliasChoices in Roboflow) */
    {"predictions_batches", "predictions", WF_FT_LIST, NULL, WF_K_DETS, WF_F_SELECTOR_LIST, NULL},
    {"required_votes", NULL, WF_FT_INT_POS, NULL, WF_K_INT, 0, NULL},
    {"class_aware", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},
    {"iou_threshold", NULL, WF_FT_FLOAT01, "0.3", WF_K_NUMBER, 0, NULL},
    {"confidence", NULL, WF_FT_FLOAT01, "0.0", WF_K_NUMBER, 0, NULL},
    {"classes_to_consider", NULL, WF_FT_LIST, "null", WF_K_LIST, WF_F_NULLABLE, NULL},
    {"required_objects", NULL, WF_FT_ANY, "null", WF_K_INT | WF_K_DICT, WF_F_NULLABLE, NULL},
    {"presence_confidence_aggregation", NULL, WF_FT_ENUM, "\"max\"", 0, WF_F_NO_SELECTOR, agg_modes},
    {"detections_merge_confidence_aggregation", NULL, WF_FT_ENUM, "\"average\"", 0,
     WF_F_NO_SELECTOR, agg_modes},
    {"detections_merge_coordinates_aggregation", NULL, WF_FT_ENUM, "\"average\"", 0,
     WF_F_NO_SELECTOR, agg_modes},
    {"detections_merge_mask_aggregation", NULL, WF_FT_ENUM, "\"union\"", 0, WF_F_NO_SELECTOR,
     mask_modes},
};
static const struct wf_output consensus_outs[] = {{"predictions", WF_K_OD | WF_K_IS},
                                                  {"object_present", WF_K_BOOL | WF_K_DICT},
                                                  {"presence_confidence", WF_K_FLOAT | WF_K_DICT}};
TYPES(consensus, "roboflow_core/detections_consensus@v1", "DetectionsConsensus");
BLOCK(consensus, consensus_fields, consensus_outs, 0, consensus_run);

const struct wf_block *const wf_blocks_fusion[] = {&stitch, &replace, &collapse, &consensus, NULL};
