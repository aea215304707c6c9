/*
 * blocks/models.c — the Roboflow model blocks (object detection, instance
 * segmentation, keypoints, classification, multi-label classification; v1 to
 * v3 and their legacy aliases).
 *
 * A model block does no inference itself: it groups the batch elements that
 * share a model id and parameters, calls the embedding program's model
 * provider (struct wf_env) once per group, and converts each Roboflow
 * inference response into the engine's values the way Roboflow's blocks
 * do: detections get a uuid4 detection_id, parent/root metadata of the
 * image and prediction_type (convert_inference_detections_batch_to_sv_
 * detections + attach_parents_coordinates_to_sv_detections); classification
 * responses pass through with time (when the provider gives none),
 * prediction_type, parent_id and root_parent_id added.
 *
 * Instance segmentation v4 asks the provider for "response_mask_format":
 * "rle" and keeps each prediction's "rle_mask" (COCO RLE, no polygon).
 *
 * Semantic segmentation (v1, v2) converts Roboflow's response (class-id and
 * confidence PNG masks) the way RoboflowSemanticSegmentationModelBlockV1/V2
 * _convert_to_sv_detections do: one detection per class present except 0,
 * box [first col, first row, last col, last row] of its pixels, confidence
 * the mean of its confidence-mask pixels / 255, class name from class_map
 * (else the id), the class mask as COCO RLE under data "rle_mask", no
 * parent metadata (v2: image_dimensions).  The detections serialise with
 * "rle_mask" as Roboflow's serialise_rle_sv_detections does.
 *
 * confidence: v1/v2 pass "confidence"; v3 resolves confidence_mode: "custom"
 * sends custom_confidence as "confidence", "default" sends none (the model's
 * default), "best" sends none plus "confidence_mode": "best" so that a
 * provider knowing per-class optimal thresholds can apply them.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision.h"
#include "workflow/wf_int.h"

enum task { T_OD, T_IS, T_KP, T_CLS, T_MLC, T_SEM };

static const char *const task_names[] = {
    [T_OD] = "object-detection", [T_IS] = "instance-segmentation",
    [T_KP] = "keypoint-detection", [T_CLS] = "classification",
    [T_MLC] = "multi-label-classification", [T_SEM] = "semantic-segmentation",
};

static const struct wf_block *models_block_of(enum task t, int v);

static const char *const conf_modes3[] = {"best", "default", "custom", NULL};
static const char *const conf_modes2[] = {"default", "custom", NULL};
static const char *const mask_modes[] = {"accurate", "tradeoff", "fast", NULL};

#define F_IMAGES {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL}
#define F_MODEL_ID {"model_id", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL}
#define F_CONF {"confidence", NULL, WF_FT_FLOAT01, "0.4", WF_K_NUMBER, 0, NULL}
#define F_CONF_MODE(def, ch) {"confidence_mode", NULL, WF_FT_ENUM, def, WF_K_STRING, 0, ch}
#define F_CUSTOM_CONF \
    {"custom_confidence", NULL, WF_FT_FLOAT01, "0.4", WF_K_NUMBER, WF_F_NULLABLE, NULL}
#define F_DET_COMMON                                                                        \
    {"class_filter", NULL, WF_FT_LIST, "null", WF_K_LIST, WF_F_NULLABLE, NULL},            \
    {"iou_threshold", NULL, WF_FT_FLOAT01, "0.3", WF_K_NUMBER, 0, NULL},                    \
    {"max_detections", NULL, WF_FT_INT_POS, "300", WF_K_INT, 0, NULL},                      \
    {"class_agnostic_nms", NULL, WF_FT_BOOL, "false", WF_K_BOOL, WF_F_NULLABLE, NULL},      \
    {"max_candidates", NULL, WF_FT_INT_POS, "3000", WF_K_INT, 0, NULL}
#define F_AL                                                                           \
    {"disable_active_learning", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},         \
    {"active_learning_target_dataset", NULL, WF_FT_STRING, "null", WF_K_STRING,        \
     WF_F_NULLABLE, NULL}
#define F_MASK                                                                               \
    {"mask_decode_mode", NULL, WF_FT_ENUM, "\"accurate\"", WF_K_STRING, 0, mask_modes},     \
    {"tradeoff_factor", NULL, WF_FT_FLOAT01, "0.0", WF_K_NUMBER, 0, NULL}
#define F_KPCONF {"keypoint_confidence", NULL, WF_FT_FLOAT01, "0.0", WF_K_NUMBER, 0, NULL}
#define F_DENSE \
    {"enforce_dense_masks_in_inference_models", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL}

/* fields that are not model parameters */
static bool param_skipped(const char *n)
{
    static const char *const skip[] = {"images", "model_id", "disable_active_learning",
                                       "active_learning_target_dataset", "confidence_mode",
                                       "custom_confidence", NULL};
    for (size_t i = 0; skip[i]; i++)
        if (!strcmp(skip[i], n))
            return true;
    return false;
}

static json_t *build_params(struct wf_call *c, size_t i, const struct wf_block *blk)
{
    json_t *p = json_object();
    for (size_t f = 0; f < blk->nfields; f++) {
        const char *n = blk->fields[f].name;
        const json_t *v;
        if (param_skipped(n))
            continue;
        v = wf_arg_json(c, i, n);
        if (v && !json_is_null(v))
            json_object_set_new(p, n, json_deep_copy(v));
    }
    if (blk == models_block_of(T_IS, 4)) /* v4: masks as COCO RLE */
        json_object_set_new(p, "response_mask_format", json_string("rle"));
    if (wf__field_index(blk, "confidence_mode") >= 0) {
        const char *mode = wf_arg_str(c, i, "confidence_mode");
        if (mode && !strcmp(mode, "custom")) {
            const json_t *cc = wf_arg_json(c, i, "custom_confidence");
            if (json_is_number(cc))
                json_object_set_new(p, "confidence", json_deep_copy(cc));
        } else if (mode && !strcmp(mode, "best")) {
            json_object_set_new(p, "confidence_mode", json_string("best"));
        }
    }
    return p;
}

/* Roboflow passes a classification response through as the model dict
 * (WORKFLOWS.md 3.2): inference_id, time (seconds the inference took: the
 * provider's own "time" when it gives one, else the provider call's, shared
 * by the images of a batched call as in Roboflow), then the model's keys
 * (image, predictions, top/confidence or predicted_classes), then
 * prediction_type, parent_id, root_parent_id. */
static json_t *classification_value(json_t *resp, const struct wf_image *im,
                                    const char *inference_id, double seconds)
{
    json_t *o = json_object();
    const char *k;
    json_t *v;
    const json_t *t = json_object_get(resp, "time");
    json_object_set_new(o, "inference_id", json_string(inference_id));
    json_object_set_new(o, "time", json_real(json_is_number(t) ? json_number_value(t) : seconds));
    json_object_foreach(resp, k, v) {
        if (strcmp(k, "inference_id") != 0 && strcmp(k, "time") != 0)
            json_object_set(o, k, v);
    }
    json_object_set_new(o, "prediction_type", json_string("classification"));
    json_object_set_new(o, "parent_id", json_string(im->parent_id));
    json_object_set_new(o, "root_parent_id", json_string(im->root_parent_id));
    return o;
}


/* The first channel of a base64 PNG (gray), w x h; NULL when unreadable. */
static uint8_t *b64_gray(const json_t *j, int *w, int *h)
{
    const char *s = json_string_value(j);
    size_t blen = 0;
    uint8_t *bytes, *px = NULL;
    struct vis_image *img = NULL;
    if (!s || !*s)
        return NULL;
    if (!(bytes = base64_decode(s, strlen(s), &blen)))
        return NULL;
    if (vis_decode(bytes, blen, &img) == 0) {
        int ch = (int)img->fmt;
        px = xmalloc((size_t)img->w * (size_t)img->h);
        for (int y = 0; y < img->h; y++)
            for (int x = 0; x < img->w; x++)
                px[(size_t)y * (size_t)img->w + (size_t)x] =
                    img->px[(size_t)y * (size_t)img->stride + (size_t)x * (size_t)ch];
        *w = img->w;
        *h = img->h;
        vis_image_free(img);
    }
    free(bytes);
    return px;
}

/* Roboflow's _convert_to_sv_detections of a semantic segmentation
 * response; ERR_PARSE when it has no predictions object. */
static int semantic_dets(const json_t *resp, int version, struct wf_dets **out)
{
    const json_t *p = json_object_get(resp, "predictions");
    const json_t *cmap = json_object_get(p, "class_map");
    int w = 0, h = 0, cw = 0, chh = 0;
    uint8_t *cls, *conf;
    struct wf_dets *ds;
    if (!json_is_object(p))
        return ERR_PARSE;
    ds = wf_dets_new();
    cls = b64_gray(json_object_get(p, "segmentation_mask"), &w, &h);
    conf = b64_gray(json_object_get(p, "confidence_mask"), &cw, &chh);
    if (conf && (cw != w || chh != h)) {
        free(conf);
        conf = NULL;
    }
    if (cls) {
        size_t n = (size_t)w * (size_t)h;
        int x0[256], y0[256], x1[256], y1[256];
        double sum[256] = {0};
        size_t cnt[256] = {0};
        for (int k = 0; k < 256; k++)
            x0[k] = y0[k] = INT32_MAX, x1[k] = y1[k] = -1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t i = (size_t)y * (size_t)w + (size_t)x;
                int k = cls[i];
                cnt[k]++;
                sum[k] += conf ? conf[i] : 0;
                x0[k] = MIN(x0[k], x), x1[k] = MAX(x1[k], x);
                y0[k] = MIN(y0[k], y), y1[k] = MAX(y1[k], y);
            }
        (void)n;
        for (int k = 1; k < 256; k++) {
            char key[8], *rle;
            const json_t *nm;
            struct wf_det *d;
            if (!cnt[k])
                continue;
            d = wf_dets_push_new(ds);
            d->x1 = (float)x0[k], d->y1 = (float)y0[k];
            d->x2 = (float)x1[k], d->y2 = (float)y1[k];
            d->class_id = k;
            d->confidence = conf ? (float)(sum[k] / (double)cnt[k] / 255.0) : 1.0f;
            snprintf(key, sizeof key, "%d", k);
            nm = json_object_get(cmap, key);
            wf_det_set_str(&d->class_name, json_is_string(nm) ? json_string_value(nm) : key);
            d->no_parent = true;
            if (version >= 2)
                d->img_w = w, d->img_h = h;
            rle = vis_coco_rle(cls, w, h, 0, 0, w, h, k);
            d->extra = json_pack("{s:{s:[i,i],s:s}}", "rle_mask", "size", h, w, "counts", rle);
            free(rle);
        }
    }
    free(cls);
    free(conf);
    *out = ds;
    return 0;
}

/* Instance segmentation v4: the response's "rle_mask" of each prediction
 * that wf_dets_from_inference kept (same class filter, same order) goes to
 * the detection's data, serialised after the other keys as Roboflow's
 * serialise_rle_sv_detections does (no "points"). */
static void attach_rle(const json_t *resp, const json_t *class_filter, struct wf_dets *ds)
{
    const json_t *preds = json_object_get(resp, "predictions"), *p;
    size_t i, k = 0;
    json_array_foreach(preds, i, p) {
        const json_t *cls = json_object_get(p, "class"), *rle = json_object_get(p, "rle_mask");
        bool ok = !json_is_array(class_filter);
        size_t f;
        const json_t *v;
        if (!json_is_object(p))
            continue;
        json_array_foreach(class_filter, f, v) {
            if (json_is_string(v) && json_is_string(cls) &&
                !strcmp(json_string_value(v), json_string_value(cls)))
                ok = true;
        }
        if (!ok || k >= ds->n)
            continue;
        if (json_is_object(rle)) {
            if (!ds->d[k].extra)
                ds->d[k].extra = json_object();
            json_object_set(ds->d[k].extra, "rle_mask", (json_t *)rle);
        }
        k++;
    }
}

static int model_run(struct wf_call *c, enum task task, int version)
{
    const struct wf_env *env = wf_call_env(c);
    const struct wf_block *blk = NULL;
    size_t n = wf_call_n(c);
    json_t **params = xcalloc(n + 1, sizeof *params);
    bool *done = xcalloc(n + 1, sizeof *done);
    size_t *grp = xcalloc(n + 1, sizeof *grp);
    const struct vis_image **imgs = xcalloc(n + 1, sizeof *imgs);
    json_t **resps = xcalloc(n + 1, sizeof *resps);
    char perr[512];
    int rc = 0;

    if (!env || !env->model_infer) {
        rc = wf_call_fail(c, "no model provider is configured (model steps cannot run)");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!wf_arg_str(c, i, "model_id")) {
            rc = wf_call_fail(c, "field 'model_id': a model id is required");
            goto out;
        }
    }
    blk = models_block_of(task, version);
    for (size_t i = 0; i < n; i++)
        params[i] = build_params(c, i, blk);
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        const char *mid = wf_arg_str(c, i, "model_id");
        struct wf_model_request req;
        if (done[i])
            continue;
        for (size_t j = i; j < n; j++) {
            if (done[j] || strcmp(mid, wf_arg_str(c, j, "model_id")) != 0 ||
                !json_equal(params[i], params[j]))
                continue;
            done[j] = true;
            grp[m] = j;
            imgs[m] = wf_arg_image(c, j, "images")->img;
            m++;
        }
        req.model_id = mid;
        req.task = task_names[task];
        req.params = params[i];
        perr[0] = 0;
        memset(resps, 0, (n + 1) * sizeof *resps);
        int64_t t0 = time_mono_ns();
        rc = env->model_infer(env->model_ud, &req, (const struct vis_image *const *)imgs, m, resps,
                              perr, sizeof perr);
        double seconds = (double)(time_mono_ns() - t0) / 1e9;
        if (rc < 0) {
            rc = wf_call_fail(c, "model '%s': %s", mid, perr[0] ? perr : err_str(rc));
            goto out;
        }
        for (size_t k = 0; k < m; k++) {
            size_t j = grp[k];
            const struct wf_image *im = wf_arg_image(c, j, "images");
            json_t *resp = resps[k];
            const json_t *iid = json_object_get(resp, "inference_id");
            char uid[37];
            const char *inference_id;
            if (!json_is_object(resp)) {
                for (size_t q = k; q < m; q++)
                    json_decref(resps[q]);
                rc = wf_call_fail(c, "model '%s': provider returned no response object", mid);
                goto out;
            }
            uuid4(uid);
            inference_id = json_is_string(iid) ? json_string_value(iid) : uid;
            wf_out_json(c, j, "inference_id", json_string(inference_id));
            if (version >= 2)
                wf_out_json(c, j, "model_id", json_string(mid));
            if (task == T_CLS || task == T_MLC) {
                wf_out_json(c, j, "predictions", classification_value(resp, im, inference_id, seconds));
            } else if (task == T_SEM) {
                struct wf_dets *ds = NULL;
                if (semantic_dets(resp, version, &ds) < 0) {
                    for (size_t q = k; q < m; q++)
                        json_decref(resps[q]);
                    rc = wf_call_fail(c, "model '%s': malformed response (no 'predictions' "
                                      "object)", mid);
                    goto out;
                }
                wf_out_dets(c, j, "predictions", ds);
            } else {
                struct wf_dets *ds = NULL;
                if (wf_dets_from_inference(resp, im, task_names[task], inference_id,
                                           json_object_get(params[j], "class_filter"), &ds) < 0) {
                    for (size_t q = k; q < m; q++)
                        json_decref(resps[q]);
                    rc = wf_call_fail(c, "model '%s': malformed response (no 'predictions' list)",
                                      mid);
                    goto out;
                }
                if (task == T_IS && version >= 4)
                    attach_rle(resp, json_object_get(params[j], "class_filter"), ds);
                wf_out_dets(c, j, "predictions", ds);
            }
            json_decref(resp);
        }
    }
out:
    for (size_t i = 0; i < n; i++)
        json_decref(params[i]);
    free(params);
    free(done);
    free(grp);
    free(imgs);
    free(resps);
    return rc;
}

#define RUNFN(name, task, ver) \
    static int name(struct wf_call *c) { return model_run(c, task, ver); }
RUNFN(od1_run, T_OD, 1)
RUNFN(od2_run, T_OD, 2)
RUNFN(od3_run, T_OD, 3)
RUNFN(is1_run, T_IS, 1)
RUNFN(is2_run, T_IS, 2)
RUNFN(is3_run, T_IS, 3)
RUNFN(is4_run, T_IS, 4)
RUNFN(kp1_run, T_KP, 1)
RUNFN(kp2_run, T_KP, 2)
RUNFN(kp3_run, T_KP, 3)
RUNFN(cls1_run, T_CLS, 1)
RUNFN(cls2_run, T_CLS, 2)
RUNFN(cls3_run, T_CLS, 3)
RUNFN(mlc1_run, T_MLC, 1)
RUNFN(mlc2_run, T_MLC, 2)
RUNFN(mlc3_run, T_MLC, 3)
RUNFN(sem1_run, T_SEM, 1)
RUNFN(sem2_run, T_SEM, 2)

static const struct wf_field od12_fields[] = {F_IMAGES, F_MODEL_ID, F_CONF, F_DET_COMMON, F_AL};
static const struct wf_field od3_fields[] = {F_IMAGES, F_MODEL_ID,
                                             F_CONF_MODE("\"best\"", conf_modes3), F_CUSTOM_CONF,
                                             F_DET_COMMON, F_AL};
static const struct wf_field is12_fields[] = {F_IMAGES, F_MODEL_ID, F_CONF, F_DET_COMMON,
                                              F_MASK, F_AL, F_DENSE};
static const struct wf_field is3_fields[] = {F_IMAGES, F_MODEL_ID,
                                             F_CONF_MODE("\"best\"", conf_modes3), F_CUSTOM_CONF,
                                             F_DET_COMMON, F_MASK, F_AL, F_DENSE};
static const struct wf_field is4_fields[] = {F_IMAGES, F_MODEL_ID,
                                             F_CONF_MODE("\"best\"", conf_modes3), F_CUSTOM_CONF,
                                             F_DET_COMMON, F_MASK, F_AL};
static const struct wf_field kp12_fields[] = {F_IMAGES, F_MODEL_ID, F_CONF, F_KPCONF,
                                              F_DET_COMMON, F_AL};
static const struct wf_field kp3_fields[] = {F_IMAGES, F_MODEL_ID,
                                             F_CONF_MODE("\"default\"", conf_modes2),
                                             F_CUSTOM_CONF, F_KPCONF, F_DET_COMMON, F_AL};
static const struct wf_field cls12_fields[] = {F_IMAGES, F_MODEL_ID, F_CONF, F_AL};
static const struct wf_field cls3_fields[] = {F_IMAGES, F_MODEL_ID,
                                              F_CONF_MODE("\"default\"", conf_modes2),
                                              F_CUSTOM_CONF, F_AL};
static const struct wf_field mlc3_fields[] = {F_IMAGES, F_MODEL_ID,
                                              F_CONF_MODE("\"best\"", conf_modes3),
                                              F_CUSTOM_CONF, F_AL};

static const struct wf_field sem1_fields[] = {F_IMAGES, F_MODEL_ID};
static const struct wf_field sem2_fields[] = {F_IMAGES, F_MODEL_ID,
                                              F_CONF_MODE("\"best\"", conf_modes3),
                                              F_CUSTOM_CONF};

static const struct wf_output od1_outs[] = {{"inference_id", WF_K_STRING}, {"predictions", WF_K_OD}};
static const struct wf_output od2_outs[] = {{"inference_id", WF_K_STRING},
                                            {"predictions", WF_K_OD},
                                            {"model_id", WF_K_STRING}};
static const struct wf_output is1_outs[] = {{"inference_id", WF_K_STRING}, {"predictions", WF_K_IS}};
static const struct wf_output is2_outs[] = {{"inference_id", WF_K_STRING},
                                            {"predictions", WF_K_IS},
                                            {"model_id", WF_K_STRING}};
static const struct wf_output kp1_outs[] = {{"inference_id", WF_K_STRING}, {"predictions", WF_K_KP}};
static const struct wf_output kp2_outs[] = {{"inference_id", WF_K_STRING},
                                            {"predictions", WF_K_KP},
                                            {"model_id", WF_K_STRING}};
static const struct wf_output cls1_outs[] = {{"predictions", WF_K_CLS}, {"inference_id", WF_K_STRING}};
static const struct wf_output cls2_outs[] = {{"predictions", WF_K_CLS},
                                             {"inference_id", WF_K_STRING},
                                             {"model_id", WF_K_STRING}};

static const struct wf_output sem_outs[] = {{"inference_id", WF_K_STRING},
                                            {"predictions", WF_K_IS}, /* Roboflow: semantic_segmentation_prediction */
                                            {"model_id", WF_K_STRING}};

#define BLOCK(var, fields, outs, fn, ...)                                                     \
    static const char *const var##_types[] = {__VA_ARGS__, NULL};                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,       \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL};

BLOCK(od1, od12_fields, od1_outs, od1_run, "roboflow_core/roboflow_object_detection_model@v1",
      "RoboflowObjectDetectionModel", "ObjectDetectionModel")
BLOCK(od2, od12_fields, od2_outs, od2_run, "roboflow_core/roboflow_object_detection_model@v2")
BLOCK(od3, od3_fields, od2_outs, od3_run, "roboflow_core/roboflow_object_detection_model@v3")
BLOCK(is1, is12_fields, is1_outs, is1_run, "roboflow_core/roboflow_instance_segmentation_model@v1",
      "RoboflowInstanceSegmentationModel", "InstanceSegmentationModel")
BLOCK(is2, is12_fields, is2_outs, is2_run, "roboflow_core/roboflow_instance_segmentation_model@v2")
BLOCK(is3, is3_fields, is2_outs, is3_run, "roboflow_core/roboflow_instance_segmentation_model@v3")
BLOCK(is4, is4_fields, is2_outs, is4_run, "roboflow_core/roboflow_instance_segmentation_model@v4")
BLOCK(kp1, kp12_fields, kp1_outs, kp1_run, "roboflow_core/roboflow_keypoint_detection_model@v1",
      "RoboflowKeypointDetectionModel", "KeypointsDetectionModel")
BLOCK(kp2, kp12_fields, kp2_outs, kp2_run, "roboflow_core/roboflow_keypoint_detection_model@v2")
BLOCK(kp3, kp3_fields, kp2_outs, kp3_run, "roboflow_core/roboflow_keypoint_detection_model@v3")
BLOCK(cls1, cls12_fields, cls1_outs, cls1_run, "roboflow_core/roboflow_classification_model@v1",
      "RoboflowClassificationModel", "ClassificationModel")
BLOCK(cls2, cls12_fields, cls2_outs, cls2_run, "roboflow_core/roboflow_classification_model@v2")
BLOCK(cls3, cls3_fields, cls2_outs, cls3_run, "roboflow_core/roboflow_classification_model@v3")
BLOCK(mlc1, cls12_fields, cls1_outs, mlc1_run,
      "roboflow_core/roboflow_multi_label_classification_model@v1",
      "RoboflowMultiLabelClassificationModel", "MultiLabelClassificationModel")
BLOCK(mlc2, cls12_fields, cls2_outs, mlc2_run,
      "roboflow_core/roboflow_multi_label_classification_model@v2")
BLOCK(mlc3, mlc3_fields, cls2_outs, mlc3_run,
      "roboflow_core/roboflow_multi_label_classification_model@v3")

BLOCK(sem1, sem1_fields, sem_outs, sem1_run,
      "roboflow_core/roboflow_semantic_segmentation_model@v1")
BLOCK(sem2, sem2_fields, sem_outs, sem2_run,
      "roboflow_core/roboflow_semantic_segmentation_model@v2")

static const struct wf_block *models_block_of(enum task t, int v)
{
    if (t == T_SEM)
        return v == 1 ? &sem1 : &sem2;
    if (t == T_IS && v == 4)
        return &is4;
    static const struct wf_block *const table[5][3] = {
        [T_OD] = {&od1, &od2, &od3},     [T_IS] = {&is1, &is2, &is3},
        [T_KP] = {&kp1, &kp2, &kp3},     [T_CLS] = {&cls1, &cls2, &cls3},
        [T_MLC] = {&mlc1, &mlc2, &mlc3},
    };
    return table[t][v - 1];
}

const struct wf_block *const wf_blocks_models[] = {
    &od1, &od2, &od3, &is1, &is2, &is3, &kp1, &kp2, &kp3,
    &cls1, &cls2, &cls3, &mlc1, &mlc2, &mlc3, &sem1, &sem2, &is4, NULL,
};

const char *wf__model_block_task(const struct wf_block *blk)
{
    static const enum task order[] = {T_OD, T_IS, T_KP, T_CLS, T_MLC}; /* wf_blocks_models, 3 each */
    if (blk == &sem1 || blk == &sem2)
        return task_names[T_SEM];
    if (blk == &is4)
        return task_names[T_IS];
    for (size_t k = 0; wf_blocks_models[k]; k++)
        if (wf_blocks_models[k] == blk)
            return task_names[order[k / 3]];
    return NULL;
}
