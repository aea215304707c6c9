/*
 * run.c — inference entry points: block parameters, batched runs, raw
 * outputs, and the Roboflow response JSON.
 *
 * model_run pre-processes up to MODEL_MAX_BATCH images into one NCHW tensor
 * when the model's batch dimension is symbolic (one image at a time
 * otherwise), runs the shared session, and decodes each image.  Nothing is
 * shared between calls, so any number of threads may run the same model.
 */
#include "model/model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

void model_params_init(struct model_params *p)
{
    memset(p, 0, sizeof(*p));
    p->confidence = 0.4f;
    p->iou_threshold = 0.3f;
    p->max_detections = 300;
    p->max_candidates = 3000;
    p->mask_mode = MODEL_MASK_ACCURATE;
    p->tradeoff_factor = 0.0f;
    p->keypoint_confidence = 0.0f;
    p->nms = MODEL_NMS_IOU;
}

void model_params_release(struct model_params *p)
{
    if (!p)
        return;
    free(p->class_filter);
    p->class_filter = NULL;
    p->n_class_filter = 0;
}

static int get_num(const json_t *params, const char *key, double lo, double hi, float *out,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(params, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi)) {
        snprintf(err, errlen, "parameter '%s' must be a number in [%g, %g]", key, lo, hi);
        return ERR_INVALID;
    }
    *out = (float)json_number_value(v);
    return 0;
}

static int get_int(const json_t *params, const char *key, int lo, int hi, int *out, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(params, key);
    if (!v || json_is_null(v))
        return 0;
    double d = json_number_value(v);
    if (!json_is_number(v) || d != floor(d) || d < lo || d > hi) {
        snprintf(err, errlen, "parameter '%s' must be an integer in [%d, %d]", key, lo, hi);
        return ERR_INVALID;
    }
    *out = (int)d;
    return 0;
}

int model_params_from_json(struct model_params *p, const json_t *params, char *err, size_t errlen)
{
    int rc;
    if (!params || json_is_null(params))
        return 0;
    if (!json_is_object(params)) {
        snprintf(err, errlen, "model parameters must be a JSON object");
        return ERR_INVALID;
    }
    if ((rc = get_num(params, "confidence", 0, 1, &p->confidence, err, errlen)) < 0 ||
        (rc = get_num(params, "iou_threshold", 0, 1, &p->iou_threshold, err, errlen)) < 0 ||
        (rc = get_num(params, "tradeoff_factor", 0, 1, &p->tradeoff_factor, err, errlen)) < 0 ||
        (rc = get_num(params, "keypoint_confidence", 0, 1, &p->keypoint_confidence, err,
                      errlen)) < 0 ||
        (rc = get_int(params, "max_detections", 0, 100000, &p->max_detections, err, errlen)) < 0 ||
        (rc = get_int(params, "max_candidates", 0, 1000000, &p->max_candidates, err, errlen)) < 0)
        return rc;
    json_t *v = json_object_get(params, "class_agnostic_nms");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            snprintf(err, errlen, "parameter 'class_agnostic_nms' must be a boolean");
            return ERR_INVALID;
        }
        p->class_agnostic_nms = json_is_true(v);
    }
    v = json_object_get(params, "mask_decode_mode");
    if (v && !json_is_null(v)) {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, "accurate"))
            p->mask_mode = MODEL_MASK_ACCURATE;
        else if (s && !strcmp(s, "fast"))
            p->mask_mode = MODEL_MASK_FAST;
        else if (s && !strcmp(s, "tradeoff"))
            p->mask_mode = MODEL_MASK_TRADEOFF;
        else {
            snprintf(err, errlen, "parameter 'mask_decode_mode' must be accurate, fast or "
                     "tradeoff");
            return ERR_INVALID;
        }
    }
    v = json_object_get(params, "response_mask_format");
    if (v && !json_is_null(v)) {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, "rle"))
            p->rle_masks = true;
        else if (s && !strcmp(s, "polygon"))
            p->rle_masks = false;
        else {
            snprintf(err, errlen, "parameter 'response_mask_format' must be polygon or rle");
            return ERR_INVALID;
        }
    }
    v = json_object_get(params, "nms_mode");
    if (v && !json_is_null(v)) {
        const char *s = json_string_value(v);
        if (s && (!strcmp(s, "iou") || !strcmp(s, "torchvision")))
            p->nms = MODEL_NMS_IOU;
        else if (s && !strcmp(s, "classic"))
            p->nms = MODEL_NMS_CLASSIC;
        else {
            snprintf(err, errlen, "parameter 'nms_mode' must be iou or classic");
            return ERR_INVALID;
        }
    }
    v = json_object_get(params, "class_filter");
    if (v && !json_is_null(v)) {
        size_t i, n = json_array_size(v);
        json_t *e;
        if (!json_is_array(v) || n > MODEL_MAX_CLASSES) {
            snprintf(err, errlen, "parameter 'class_filter' must be an array of class names");
            return ERR_INVALID;
        }
        free(p->class_filter);
        p->class_filter = xcalloc(n ? n : 1, sizeof(char *));
        p->n_class_filter = 0;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                snprintf(err, errlen, "parameter 'class_filter' must hold strings");
                model_params_release(p);
                return ERR_INVALID;
            }
            p->class_filter[p->n_class_filter++] = json_string_value(e);
        }
    }
    return 0;
}

/* Shape and data of output i of an ORT value. */
static int out_view(const OrtApi *api, OrtValue *v, float **data, int64_t *shape, int *rank)
{
    OrtTensorTypeAndShapeInfo *tsi = NULL;
    size_t r = 0;
    if (!model__ok(api, api->GetTensorTypeAndShape(v, &tsi)))
        return ERR_INTERNAL;
    int rc = 0;
    if (!model__ok(api, api->GetDimensionsCount(tsi, &r)) || r > 8 ||
        !model__ok(api, api->GetDimensions(tsi, shape, r)))
        rc = ERR_INTERNAL;
    api->ReleaseTensorTypeAndShapeInfo(tsi);
    if (rc == 0 && !model__ok(api, api->GetTensorMutableData(v, (void **)data)))
        rc = ERR_INTERNAL;
    *rank = (int)r;
    return rc;
}

/* Per-thread input tensor, reused between calls: a fresh multi-megabyte
 * calloc per image costs page faults comparable to the pre-processing
 * itself.  Freed by the thread-exit destructor. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

struct scratch {
    float *p;
    size_t n; /* floats */
};

static void scratch_free(void *v)
{
    struct scratch *s = v;
    if (s) {
        free(s->p);
        free(s);
    }
}

static void scratch_init(void)
{
    (void)pthread_key_create(&scratch_key, scratch_free);
}

/* A buffer of at least n floats owned by the calling thread, or NULL. */
static float *scratch_get(size_t n)
{
    pthread_once(&scratch_once, scratch_init);
    struct scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->n < n) {
        free(s->p);
        s->p = try_alloc(n, sizeof(float));
        s->n = s->p ? n : 0;
    }
    return s->p;
}

/* ---- inputs prepared ahead (model_prepare) --------------------------------------- */

/* One pre-processed tensor attached to an image's aux, a list per image.
 * The pixel geometry it was made from is kept so that a view of another
 * region (which never carries aux, but better safe) cannot match. */
struct model__prepared {
    struct model__prepared *next;
    struct model *m; /* a reference: the pointer cannot be reused meanwhile */
    const uint8_t *px;
    int w, h, stride;
    float *tensor; /* in_c * in_w * in_h floats */
    struct model_letterbox lb;
};

static void prepared_free(void *p)
{
    struct model__prepared *e = p;
    while (e) {
        struct model__prepared *next = e->next;
        model_unref(e->m);
        free(e->tensor);
        free(e);
        e = next;
    }
}

static const struct model__prepared *prepared_find(const struct model *m, const struct vis_image *img)
{
    if (img->aux_free != prepared_free)
        return NULL;
    for (const struct model__prepared *e = img->aux; e; e = e->next)
        if (e->m == m && e->px == img->px && e->w == img->w && e->h == img->h && e->stride == img->stride)
            return e;
    return NULL;
}

int model_prepare(struct model *m, struct vis_image *img)
{
    size_t plane = (size_t)m->in_c * (size_t)m->in_w * (size_t)m->in_h;
    struct model__prepared *e;
    int rc;

    if (m->ocr || m->sam || m->clip)
        return 0; /* OCR pre-processing depends on the detected boxes: done in model_ocr_run;
                     SAM2's in model_sam_run; CLIP's in model_clip_embed_image */
    if (img->aux && img->aux_free != prepared_free)
        return ERR_EXISTS;
    if (prepared_find(m, img))
        return 0;
    e = try_calloc(1, sizeof(*e));
    if (!e)
        return ERR_NOMEM;
    e->tensor = try_alloc(plane, sizeof(float));
    if (!e->tensor) {
        free(e);
        return ERR_NOMEM;
    }
    if ((rc = model_preprocess(m, img, e->tensor, &e->lb)) < 0) {
        free(e->tensor);
        free(e);
        return rc;
    }
    model_ref(m);
    e->m = m;
    e->px = img->px;
    e->w = img->w;
    e->h = img->h;
    e->stride = img->stride;
    e->next = img->aux;
    img->aux = e;
    img->aux_free = prepared_free;
    return 0;
}

int model_run(struct model *m, const struct vis_image *const *images, size_t n,
              const struct model_params *p, struct model_result *out, char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    size_t plane = (size_t)m->in_c * (size_t)m->in_w * (size_t)m->in_h;
    size_t bmax = m->dyn_batch ? MIN(n, (size_t)MODEL_MAX_BATCH) : (size_t)m->fixed_batch;
    struct model_letterbox lb[MODEL_MAX_BATCH];
    OrtValue *outs[MODEL_MAX_OUTPUTS] = {0};
    float *tensor = NULL;

    if (m->ocr) {
        snprintf(err, errlen, "model '%s' is an OCR model: it runs through model_ocr_run", m->id);
        return ERR_INVALID;
    }
    if (m->sam) {
        snprintf(err, errlen, "model '%s' is a SAM2 model: it runs through model_sam_run", m->id);
        return ERR_INVALID;
    }
    if (m->clip) {
        snprintf(err, errlen, "model '%s' is a CLIP model: it runs through "
                 "model_clip_embed_image / model_clip_embed_texts", m->id);
        return ERR_INVALID;
    }
    int rc = 0;
    size_t done = 0;

    memset(out, 0, n * sizeof(*out));
    if (n == 0)
        return 0;
    tensor = scratch_get(plane * bmax);
    if (!tensor) {
        snprintf(err, errlen, "out of memory for the input tensor");
        return ERR_NOMEM;
    }
    for (size_t start = 0; start < n; start += bmax) {
        size_t nb = MIN(bmax, n - start);
        int batch = m->dyn_batch ? (int)nb : m->fixed_batch;
        if (nb < (size_t)batch) /* fixed batch, last chunk: blank the unused slots */
            memset(tensor + nb * plane, 0, ((size_t)batch - nb) * plane * sizeof(float));
        float *input = tensor;
        for (size_t i = 0; i < nb; i++) {
            const struct vis_image *img = images[start + i];
            if (!img || img->w <= 0 || img->h <= 0 || !img->px) {
                snprintf(err, errlen, "image %zu is empty", start + i);
                rc = ERR_INVALID;
                goto out;
            }
            const struct model__prepared *pr = prepared_find(m, img);
            if (pr) {
                lb[i] = pr->lb;
                if (batch == 1) /* ORT reads the input, never writes it */
                    input = pr->tensor;
                else
                    memcpy(tensor + i * plane, pr->tensor, plane * sizeof(float));
                continue;
            }
            if ((rc = model_preprocess(m, img, tensor + i * plane, &lb[i])) < 0) {
                snprintf(err, errlen, "cannot pre-process image %zu: %s", start + i, err_str(rc));
                goto out;
            }
        }
        if ((rc = model__session_run(m, input, batch, outs, err, errlen)) < 0)
            goto out;
        struct model__out views[MODEL_MAX_OUTPUTS];
        memset(views, 0, sizeof(views));
        for (size_t k = 0; k < m->n_out; k++) {
            float *d = NULL;
            if ((rc = out_view(api, outs[k], &d, views[k].shape, &views[k].rank)) < 0) {
                snprintf(err, errlen, "model '%s': cannot read its outputs", m->id);
                goto out;
            }
            views[k].data = d;
            if (views[k].rank < 1 || views[k].shape[0] < (int64_t)nb) {
                snprintf(err, errlen, "model '%s': output batch is smaller than the input's", m->id);
                rc = ERR_INVALID;
                goto out;
            }
        }
        if (m->task == MODEL_TASK_SEGMENTATION && views[m->proto_out].rank != 4) {
            snprintf(err, errlen, "model '%s': the prototype output is not of rank 4", m->id);
            rc = ERR_INVALID;
            goto out;
        }
        for (size_t i = 0; i < nb; i++) {
            struct model_result *r = &out[start + i];
            char e2[256] = "";
            r->image_w = images[start + i]->w;
            r->image_h = images[start + i]->h;
            rc = model__decode(m, views, (int)i, &lb[i], p, r, e2, sizeof(e2));
            if (rc < 0) {
                snprintf(err, errlen, "model '%s': cannot decode its output for image %zu: %s",
                         m->id, start + i, e2[0] ? e2 : err_str(rc));
                goto out;
            }
            done = start + i + 1;
        }
        for (size_t i = 0; i < m->n_out; i++) {
            api->ReleaseValue(outs[i]);
            outs[i] = NULL;
        }
    }
out:
    for (size_t i = 0; i < m->n_out; i++)
        if (outs[i])
            api->ReleaseValue(outs[i]);
    if (rc < 0)
        for (size_t i = 0; i < n; i++)
            model_result_release(&out[i]);
    (void)done;
    return rc;
}

int model_run_raw(struct model *m, const struct vis_image *img, struct model_tensor *res,
                  size_t max_out, size_t *n_out, char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    size_t plane = (size_t)m->in_c * (size_t)m->in_w * (size_t)m->in_h;
    OrtValue *outs[MODEL_MAX_OUTPUTS] = {0};
    struct model_letterbox lb;
    float *tensor = try_calloc(plane * (size_t)m->fixed_batch, sizeof(float));
    int rc;
    size_t k = 0;

    if (!tensor)
        return ERR_NOMEM;
    if ((rc = model_preprocess(m, img, tensor, &lb)) < 0) {
        snprintf(err, errlen, "cannot pre-process the image: %s", err_str(rc));
        goto out;
    }
    if ((rc = model__session_run(m, tensor, m->fixed_batch, outs, err, errlen)) < 0)
        goto out;
    for (k = 0; k < m->n_out && k < max_out; k++) {
        float *d;
        int rank;
        memset(&res[k], 0, sizeof(res[k]));
        if ((rc = out_view(api, outs[k], &d, res[k].shape, &rank)) < 0)
            goto out;
        res[k].rank = rank;
        size_t cnt = 1;
        for (int i = 0; i < rank; i++)
            cnt *= (size_t)res[k].shape[i];
        res[k].count = cnt;
        res[k].data = try_alloc(cnt ? cnt : 1, sizeof(float));
        if (!res[k].data) {
            rc = ERR_NOMEM;
            goto out;
        }
        memcpy(res[k].data, d, cnt * sizeof(float));
    }
    *n_out = k;
out:
    if (rc < 0)
        for (size_t i = 0; i < k && i < max_out; i++) {
            free(res[i].data);
            res[i].data = NULL;
        }
    for (size_t i = 0; i < m->n_out; i++)
        if (outs[i])
            api->ReleaseValue(outs[i]);
    free(tensor);
    return rc;
}

int model_decode_raw(const struct model *m, const struct model_tensor *outs, size_t n_out,
                     const struct model_letterbox *lb, int image_w, int image_h,
                     const struct model_params *p, struct model_result *r, char *err,
                     size_t errlen)
{
    struct model__out views[MODEL_MAX_OUTPUTS];
    char e2[256] = "";
    memset(r, 0, sizeof(*r));
    if (n_out != m->n_out) {
        snprintf(err, errlen, "model '%s' has %zu outputs, %zu given", m->id, m->n_out, n_out);
        return ERR_INVALID;
    }
    for (size_t k = 0; k < n_out; k++) {
        size_t cnt = 1;
        if (outs[k].rank < 1 || outs[k].rank > 8 || !outs[k].data) {
            snprintf(err, errlen, "output %zu: bad rank or no data", k);
            return ERR_INVALID;
        }
        for (int i = 0; i < outs[k].rank; i++)
            cnt = outs[k].shape[i] > 0 ? cnt * (size_t)outs[k].shape[i] : 0;
        if (cnt == 0 || cnt != outs[k].count) {
            snprintf(err, errlen, "output %zu: shape and count disagree", k);
            return ERR_INVALID;
        }
        views[k].data = outs[k].data;
        views[k].rank = outs[k].rank;
        memcpy(views[k].shape, outs[k].shape, sizeof(views[k].shape));
    }
    if (m->task == MODEL_TASK_SEGMENTATION && views[m->proto_out].rank != 4) {
        snprintf(err, errlen, "the prototype output is not of rank 4");
        return ERR_INVALID;
    }
    r->image_w = image_w;
    r->image_h = image_h;
    int rc = model__decode(m, views, 0, lb, p, r, e2, sizeof(e2));
    if (rc < 0) {
        snprintf(err, errlen, "model '%s': cannot decode its output: %s", m->id,
                 e2[0] ? e2 : err_str(rc));
        model_result_release(r);
    }
    return rc;
}

/* ---- JSON ------------------------------------------------------------------------- */

static json_t *image_json(const struct model_result *r)
{
    return json_pack("{s:i, s:i}", "width", r->image_w, "height", r->image_h);
}

static double round4(double v)
{
    return nearbyint(v * 10000.0) / 10000.0;
}

json_t *model_result_to_json(const struct model *m, const struct model_result *r,
                             const struct model_params *p)
{
    if (r->task == MODEL_TASK_SEMANTIC)
        return model__semantic_json(m, r);
    json_t *o = json_object();
    json_object_set_new(o, "image", image_json(r));
    if (r->task == MODEL_TASK_CLASSIFICATION) {
        size_t n = r->n_scores, *ord = xmalloc((n ? n : 1) * sizeof(size_t));
        for (size_t i = 0; i < n; i++)
            ord[i] = i;
        /* insertion sort: class counts are small, and it is stable */
        for (size_t i = 1; i < n; i++) {
            size_t v = ord[i], j = i;
            while (j > 0 && r->scores[ord[j - 1]] < r->scores[v]) {
                ord[j] = ord[j - 1];
                j--;
            }
            ord[j] = v;
        }
        json_t *preds = json_array();
        for (size_t i = 0; i < n; i++) {
            size_t c = ord[i];
            if (r->scores[c] < p->confidence)
                continue;
            json_array_append_new(preds, json_pack("{s:s, s:i, s:f}", "class", m->classes[c],
                                                   "class_id", (int)c, "confidence",
                                                   round4(r->scores[c])));
        }
        bool any = json_array_size(preds) > 0;
        json_object_set_new(o, "predictions", preds);
        json_object_set_new(o, "top", json_string(any ? m->classes[ord[0]] : ""));
        json_object_set_new(o, "confidence", json_real(any ? round4(r->scores[ord[0]]) : 0.0));
        json_object_set_new(o, "prediction_type", json_string("classification"));
        free(ord);
        return o;
    }
    if (r->task == MODEL_TASK_MULTI_LABEL) {
        json_t *preds = json_object(), *pc = json_array();
        for (size_t c = 0; c < r->n_scores; c++) {
            json_object_set_new(preds, m->classes[c],
                                json_pack("{s:f, s:i}", "confidence", round4(r->scores[c]),
                                          "class_id", (int)c));
            if (r->scores[c] > p->confidence)
                json_array_append_new(pc, json_string(m->classes[c]));
        }
        json_object_set_new(o, "predictions", preds);
        json_object_set_new(o, "predicted_classes", pc);
        json_object_set_new(o, "prediction_type", json_string("classification"));
        return o;
    }
    json_t *preds = json_array();
    for (size_t i = 0; i < r->n_dets; i++) {
        const struct model_detection *d = &r->dets[i];
        json_t *pj = json_object();
        json_object_set_new(pj, "x", json_real((d->x1 + d->x2) / 2.0));
        json_object_set_new(pj, "y", json_real((d->y1 + d->y2) / 2.0));
        json_object_set_new(pj, "width", json_real(d->x2 - d->x1));
        json_object_set_new(pj, "height", json_real(d->y2 - d->y1));
        json_object_set_new(pj, "confidence", json_real(d->confidence));
        json_object_set_new(pj, "class", json_string(m->classes[d->class_id]));
        json_object_set_new(pj, "class_id", json_integer(d->class_id));
        if (r->task == MODEL_TASK_SEGMENTATION && p->rle_masks) {
            char *counts = vis_coco_rle(d->mask, d->mask_w, d->mask_h, d->mask_x, d->mask_y,
                                         r->image_w, r->image_h, -1);
            json_object_set_new(pj, "rle_mask", json_pack("{s:[i,i], s:s}", "size", r->image_h,
                                                          r->image_w, "counts", counts));
            free(counts);
        } else if (r->task == MODEL_TASK_SEGMENTATION) {
            json_t *pts = json_array();
            for (size_t k = 0; k < d->n_points; k++)
                json_array_append_new(pts, json_pack("{s:f, s:f}", "x", (double)d->points[k].x,
                                                     "y", (double)d->points[k].y));
            json_object_set_new(pj, "points", pts);
        }
        if (r->task == MODEL_TASK_KEYPOINTS) {
            json_t *kps = json_array();
            for (size_t k = 0; k < d->n_keypoints; k++) {
                const struct model_keypoint *kp = &d->keypoints[k];
                const char *nm = (size_t)kp->class_id < m->n_kpt ? m->kpt_names[kp->class_id] : "";
                json_array_append_new(kps, json_pack("{s:f, s:f, s:f, s:i, s:s}", "x",
                                                     (double)kp->x, "y", (double)kp->y,
                                                     "confidence", (double)kp->confidence,
                                                     "class_id", kp->class_id, "class", nm));
            }
            json_object_set_new(pj, "keypoints", kps);
        }
        json_array_append_new(preds, pj);
    }
    json_object_set_new(o, "predictions", preds);
    return o;
}

static json_t *emb_json(const float *e, size_t dim)
{
    json_t *a = json_array();
    for (size_t k = 0; k < dim; k++)
        json_array_append_new(a, json_real((double)e[k]));
    return a;
}

/* CLIP: {"embeddings": [[...]]} per image (Roboflow's ClipEmbeddingResponse),
 * or with params "texts" one response holding every text's embedding. */
static int clip_infer(struct model *m, const json_t *params, const struct vis_image *const *images,
                      size_t n, json_t **out, char *err, size_t errlen)
{
    size_t dim = model_clip_dim(m);
    const json_t *texts = json_object_get(params, "texts");
    float *e = NULL;
    int rc;
    int64_t t0 = time_mono_ns();
    if (texts) {
        size_t nt = json_array_size(texts);
        if (!json_is_array(texts) || nt > MODEL_CLIP_MAX_TEXTS) {
            snprintf(err, errlen, "'texts' must be a list of at most %d strings",
                     MODEL_CLIP_MAX_TEXTS);
            return ERR_INVALID;
        }
        const char **tv = xcalloc(nt + 1, sizeof *tv);
        for (size_t i = 0; i < nt; i++) {
            tv[i] = json_string_value(json_array_get(texts, i));
            if (!tv[i]) {
                snprintf(err, errlen, "'texts' item %zu is not a string", i);
                free(tv);
                return ERR_INVALID;
            }
        }
        rc = model_clip_embed_texts(m, tv, nt, &e, err, errlen);
        free(tv);
        if (rc < 0)
            return rc;
        json_t *embs = json_array();
        for (size_t i = 0; i < nt; i++)
            json_array_append_new(embs, emb_json(e + i * dim, dim));
        free(e);
        out[0] = json_pack("{s:o}", "embeddings", embs);
    } else {
        for (size_t i = 0; i < n; i++) {
            if ((rc = model_clip_embed_image(m, images[i], &e, err, errlen)) < 0) {
                for (size_t k = 0; k < i; k++) {
                    json_decref(out[k]);
                    out[k] = NULL;
                }
                return rc;
            }
            json_t *embs = json_array();
            json_array_append_new(embs, emb_json(e, dim));
            free(e);
            out[i] = json_pack("{s:o}", "embeddings", embs);
        }
    }
    metric_observe(METRIC_MODEL_INFER, (double)(time_mono_ns() - t0) / 1e9, m->id, NULL, NULL);
    return 0;
}

int model_registry_infer(struct model_registry *reg, const char *workspace, const char *id, const char *task,
                         const json_t *params, const struct vis_image *const *images, size_t n,
                         json_t **out, char *err, size_t errlen)
{
    struct model *m = NULL;
    struct model_params p;
    struct model_result *res = NULL;
    int rc;

    model_params_init(&p);
    if ((rc = model_registry_get(reg, workspace, id, &m, err, errlen)) < 0)
        return rc;
    if (task) {
        enum model_task want = model_task_parse(task);
        if (!want) {
            snprintf(err, errlen, "unknown task '%s'", task);
            rc = ERR_INVALID;
            goto out;
        }
        if (want != m->task) {
            snprintf(err, errlen, "model '%s' is a %s model, not %s", id,
                     model_task_name(m->task), model_task_name(want));
            rc = ERR_INVALID;
            goto out;
        }
    }
    if ((rc = model_params_from_json(&p, params, err, errlen)) < 0)
        goto out;
    if (m->task == MODEL_TASK_EMBEDDING) {
        rc = clip_infer(m, params, images, n, out, err, errlen);
        goto out;
    }
    if (m->task == MODEL_TASK_OCR) {
        int64_t t1 = time_mono_ns();
        for (size_t i = 0; i < n; i++) {
            struct model_ocr_result o;
            if ((rc = model_ocr_run(m, images[i], &o, err, errlen)) < 0) {
                for (size_t k = 0; k < i; k++) {
                    json_decref(out[k]);
                    out[k] = NULL;
                }
                goto out;
            }
            out[i] = model_ocr_result_to_json(&o);
            model_ocr_result_release(&o);
        }
        metric_observe(METRIC_MODEL_INFER, (double)(time_mono_ns() - t1) / 1e9, id, NULL, NULL);
        goto out;
    }
    if (m->task == MODEL_TASK_SAM) {
        int64_t t1 = time_mono_ns();
        for (size_t i = 0; i < n; i++) {
            if ((rc = model__sam_infer(m, params, images[i], &out[i], err, errlen)) < 0) {
                for (size_t k = 0; k < i; k++) {
                    json_decref(out[k]);
                    out[k] = NULL;
                }
                goto out;
            }
        }
        metric_observe(METRIC_MODEL_INFER, (double)(time_mono_ns() - t1) / 1e9, id, NULL, NULL);
        goto out;
    }
    res = xcalloc(n ? n : 1, sizeof(*res));
    int64_t t0 = time_mono_ns();
    if ((rc = model_run(m, images, n, &p, res, err, errlen)) < 0)
        goto out;
    /* labelled by the model id (a bounded set: the registry's models),
     * never by the workspace */
    metric_observe(METRIC_MODEL_INFER, (double)(time_mono_ns() - t0) / 1e9, id, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        out[i] = model_result_to_json(m, &res[i], &p);
        model_result_release(&res[i]);
    }
out:
    free(res);
    model_params_release(&p);
    model_unref(m);
    return rc;
}

int model_registry_prepare(struct model_registry *reg, const char *workspace, const char *model_id,
                           struct vis_image *img, char *err, size_t errlen)
{
    struct model *m = NULL;
    int rc = model_registry_get(reg, workspace, model_id, &m, err, errlen);
    if (rc < 0)
        return rc;
    rc = model_prepare(m, img);
    if (rc < 0)
        snprintf(err, errlen, "cannot prepare the input of model '%s': %s", model_id, err_str(rc));
    model_unref(m);
    return rc;
}
