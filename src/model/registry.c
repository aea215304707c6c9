/*
 * registry.c — model_id -> loaded model.
 *
 * A registration reads the artefacts (weights.onnx plus whichever of
 * class_names.txt, environment.json, inference_config.json and the ONNX
 * custom metadata are present), opens one ONNX Runtime session, checks the
 * input (one float32 NCHW tensor with 1 or 3 channels), runs the network
 * once on a blank input and checks that the output shapes fit a decoder for
 * the model's task.  Anything wrong is refused there, with a message that
 * names the problem, so a bad model never reaches a worker.
 *
 * The task comes from, in order: the caller's metadata, model.json,
 * environment.json TASK, the Ultralytics "task" metadata, else the shapes
 * (two outputs with a rank-4 one: segmentation; rank 2: classification, or
 * multi-label when MULTICLASS; rank 3 with 4+nc rows: detection; rank 3 with
 * 4+nc+3k rows: keypoints).
 *
 * Models are reference counted: the registry holds one reference, each
 * lookup another, so a model re-registered under the same id while a worker
 * runs it stays valid until that worker lets go.  The registry lock guards
 * only the tables; sessions are created outside it.
 */
#include "model/model_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/base.h"

#define MODEL_ID_MAX 200

struct alias {
    char *ws; /* the workspace whose lookups see it; NULL: every lookup */
    char *name, *target;
};

/* Same scope: both NULL (the operator's) or the same workspace. */
static bool ws_eq(const char *a, const char *b)
{
    return a ? b && !strcmp(a, b) : !b;
}

struct model_registry {
    pthread_mutex_t lock;
    struct model_registry_opts opts; /* strings owned */
    struct model__ort *ort;          /* NULL until first needed */
    struct model **models;
    size_t n_models, cap_models;
    struct alias *aliases;
    size_t n_aliases, cap_aliases;
};

/* Roboflow's public aliases (inference/models/aliases.py). */
static const char *const builtin_aliases[][2] = {
    {"yolov8n-640", "coco/3"},       {"yolov8s-640", "coco/6"},
    {"yolov8m-640", "coco/8"},       {"yolov8l-640", "coco/7"},
    {"yolov8x-640", "coco/5"},       {"yolov8n-1280", "coco/9"},
    {"yolov8s-1280", "coco/10"},     {"yolov8m-1280", "coco/11"},
    {"yolov8l-1280", "coco/12"},     {"yolov8x-1280", "coco/13"},
    {"yolov8n-seg-640", "coco-dataset-vdnr1/2"}, {"yolov8n-pose-640", "coco-pose-detection/1"},
    {"yolov11n-640", "coco/25"},     {"yolo11n-640", "coco/25"},
    {"rfdetr-small", "coco/39"},     {"resnet50", "classifiers/3"},
};

static const char *task_names[] = {NULL, "object-detection", "instance-segmentation",
                                   "classification", "multi-label-classification",
                                   "keypoint-detection", "semantic-segmentation", "ocr",
                                   "segment-anything", "embedding"};

const char *model_task_name(enum model_task t)
{
    return (int)t >= 1 && (int)t < (int)ARRAY_LEN(task_names) ? task_names[t] : "unknown";
}

enum model_task model_task_parse(const char *s)
{
    if (!s)
        return 0;
    for (int i = 1; i < (int)ARRAY_LEN(task_names); i++)
        if (!strcmp(s, task_names[i]))
            return (enum model_task)i;
    /* Ultralytics and short names */
    if (!strcmp(s, "detect") || !strcmp(s, "object_detection"))
        return MODEL_TASK_DETECTION;
    if (!strcmp(s, "segment") || !strcmp(s, "instance_segmentation"))
        return MODEL_TASK_SEGMENTATION;
    if (!strcmp(s, "classify"))
        return MODEL_TASK_CLASSIFICATION;
    if (!strcmp(s, "multi-label") || !strcmp(s, "multi_label_classification"))
        return MODEL_TASK_MULTI_LABEL;
    if (!strcmp(s, "semantic_segmentation") || !strcmp(s, "semantic-segmentation"))
        return MODEL_TASK_SEMANTIC;
    if (!strcmp(s, "pose") || !strcmp(s, "keypoints") || !strcmp(s, "keypoint_detection"))
        return MODEL_TASK_KEYPOINTS;
    return 0;
}

/* ---- ids ---------------------------------------------------------------------- */

static bool model_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    int slashes = 0;
    if (n == 0 || n > MODEL_ID_MAX || id[0] == '.' || id[0] == '/' || id[n - 1] == '/')
        return false;
    if (strstr(id, "..") || strstr(id, "--"))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c == '/')
            slashes++;
        else if (!isalnum(c) && c != '-' && c != '_' && c != '.')
            return false;
    }
    return slashes <= 1;
}

char *model_id_dirname(const char *id)
{
    struct buf b = BUF_INIT;
    for (const char *p = id; *p; p++) {
        if (*p == '/')
            buf_puts(&b, "--");
        else
            buf_append(&b, p, 1);
    }
    return buf_detach(&b, NULL);
}

static char *dirname_to_id(const char *name)
{
    struct buf b = BUF_INIT;
    for (const char *p = name; *p; p++) {
        if (p[0] == '-' && p[1] == '-') {
            buf_puts(&b, "/");
            p++;
        } else {
            buf_append(&b, p, 1);
        }
    }
    return buf_detach(&b, NULL);
}

/* ---- registry lifecycle ---------------------------------------------------------- */

int model_registry_new(const struct model_registry_opts *opts, struct model_registry **out,
                       char *err, size_t errlen)
{
    struct model_registry *reg = xcalloc(1, sizeof(*reg));
    (void)err;
    (void)errlen;
    pthread_mutex_init(&reg->lock, NULL);
    if (opts)
        reg->opts = *opts;
    reg->opts.ort_lib = opts && opts->ort_lib ? xstrdup(opts->ort_lib) : NULL;
    reg->opts.models_dir = opts && opts->models_dir ? xstrdup(opts->models_dir) : NULL;
    reg->opts.machine_type = opts && opts->machine_type ? xstrdup(opts->machine_type) : NULL;
    if (!reg->opts.max_model_bytes)
        reg->opts.max_model_bytes = 1ull << 30;
    *out = reg;
    return 0;
}

void model_registry_free(struct model_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_models; i++)
        model_unref(reg->models[i]);
    free(reg->models);
    for (size_t i = 0; i < reg->n_aliases; i++) {
        free(reg->aliases[i].ws);
        free(reg->aliases[i].name);
        free(reg->aliases[i].target);
    }
    free(reg->aliases);
    model__ort_release(reg->ort);
    free((char *)reg->opts.ort_lib);
    free((char *)reg->opts.models_dir);
    free((char *)reg->opts.machine_type);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

static int registry_ort(struct model_registry *reg, struct model__ort **out, char *err,
                        size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&reg->lock);
    if (!reg->ort)
        rc = model__ort_acquire(reg->opts.ort_lib, &reg->ort, err, errlen);
    if (rc == 0)
        *out = reg->ort;
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

int model_registry_runtime_check(struct model_registry *reg, char *err, size_t errlen)
{
    struct model__ort *o = NULL;
    int rc = registry_ort(reg, &o, err, errlen);
    if (rc == 0)
        rc = model__provider_check(o, reg->opts.machine_type, err, errlen);
    return rc;
}

const void *model_registry_ort_api(struct model_registry *reg, void **env, char *err,
                                   size_t errlen)
{
    struct model__ort *o = NULL;
    if (registry_ort(reg, &o, err, errlen) < 0)
        return NULL;
    if (env)
        *env = o->env;
    return o->api;
}

/* ---- models ---------------------------------------------------------------------- */

void model_ref(struct model *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}

void model_unref(struct model *m)
{
    if (!m)
        return;
    int left = __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
    if (left < 0)
        abort();
    if (left == 0)
        model__free(m);
}

void model__free(struct model *m)
{
    if (!m)
        return;
    if (m->sess)
        m->ort->api->ReleaseSession(m->sess);
    if (m->ocr)
        model__ocr_free(m);
    if (m->sam)
        model__sam_free(m);
    if (m->clip)
        model__clip_free(m);
    model__ort_release(m->ort);
    for (size_t i = 0; i < m->n_classes; i++)
        free(m->classes[i]);
    free(m->classes);
    for (size_t i = 0; i < m->n_kpt; i++)
        free(m->kpt_names[i]);
    free(m->kpt_names);
    for (size_t i = 0; i < m->n_out; i++)
        free(m->out_names[i]);
    free(m->in_name);
    free(m->arch);
    free(m->class_map);
    free(m->id);
    free(m->ws);
    free(m->dir);
    free(m->tag);
    json_decref(m->info);
    free(m);
}

const char *model_workspace(const struct model *m)
{
    return m->ws;
}

const char *model_id(const struct model *m)
{
    return m->id;
}
enum model_task model_task(const struct model *m)
{
    return m->task;
}
size_t model_class_count(const struct model *m)
{
    return m->n_classes;
}
const char *model_class_name(const struct model *m, size_t i)
{
    return i < m->n_classes ? m->classes[i] : NULL;
}
void model_input_size(const struct model *m, int *w, int *h)
{
    *w = m->in_w;
    *h = m->in_h;
}
json_t *model_describe(const struct model *m)
{
    return json_deep_copy(m->info);
}

/* ---- artefact parsing ------------------------------------------------------------- */

/* What a registration starts from, whichever way it came in. */
struct spec {
    const char *id;
    const void *onnx;
    size_t onnx_len;
    json_t *names;    /* array of strings or NULL */
    json_t *env;      /* environment.json object or NULL */
    json_t *cfg;      /* inference_config.json object or NULL */
    json_t *meta;     /* vbatch metadata (task, keypoint_names, aliases) or NULL */
    json_t *mcfg;     /* model_config.json object or NULL */
    json_t *mtype;    /* model_type.json object or NULL */
    const char *dir;  /* artefact folder or NULL */
};

static int names_from_text(const char *txt, json_t **out, char *err, size_t errlen)
{
    json_t *a = json_array();
    const char *p = txt;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        size_t k = n;
        while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == ' ' || p[k - 1] == '\t'))
            k--;
        if (k > 0 || (e && e[1])) {
            if (json_array_size(a) >= MODEL_MAX_CLASSES) {
                json_decref(a);
                snprintf(err, errlen, "class_names.txt has more than %d classes",
                         MODEL_MAX_CLASSES);
                return ERR_LIMIT;
            }
            json_array_append_new(a, json_stringn(p, k));
        }
        if (!e)
            break;
        p = e + 1;
    }
    *out = a;
    return 0;
}

/* Ultralytics "names" metadata: a Python dict literal {0: 'a', 1: "b"}. */
static json_t *names_from_pydict(const char *s)
{
    json_t *a = json_array();
    const char *p = s;
    while (*p && *p != '{')
        p++;
    if (*p != '{')
        goto bad;
    p++;
    long expect = 0;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',')
            p++;
        if (*p == '}')
            break;
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k != expect || expect >= MODEL_MAX_CLASSES)
            goto bad;
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (*p++ != ':')
            goto bad;
        while (isspace((unsigned char)*p))
            p++;
        char q = *p;
        if (q != '\'' && q != '"')
            goto bad;
        p++;
        struct buf b = BUF_INIT;
        while (*p && *p != q) {
            if (*p == '\\' && p[1])
                p++;
            buf_append(&b, p, 1);
            p++;
        }
        if (*p != q) {
            buf_release(&b);
            goto bad;
        }
        p++;
        char *nm = buf_detach(&b, NULL);
        json_array_append_new(a, json_string(nm));
        free(nm);
        expect++;
    }
    return a;
bad:
    json_decref(a);
    return NULL;
}

/* PREPROCESSING is a JSON string in Roboflow's environment.json (an object
 * is accepted too).  Returns a new reference or NULL. */
static json_t *env_preprocessing(json_t *env)
{
    json_t *pre = env ? json_object_get(env, "PREPROCESSING") : NULL;
    if (json_is_string(pre))
        return json_loads(json_string_value(pre), 0, NULL);
    if (json_is_object(pre))
        return json_incref(pre);
    return NULL;
}

static bool step_enabled(json_t *step)
{
    if (!json_is_object(step))
        return false;
    json_t *en = json_object_get(step, "enabled");
    return !en || json_is_true(en);
}

static int parse_prep(struct model *m, const struct spec *sp, json_t *pre, bool ultralytics,
                      int *want_w, int *want_h, char *err, size_t errlen)
{
    struct model__prep *pp = &m->prep;
    memset(pp, 0, sizeof(*pp));
    pp->scale = 255;
    for (int k = 0; k < 3; k++)
        pp->std[k] = 1;
    pp->pad = 114;
    if (ultralytics && !pre && !sp->cfg)
        pp->resize = RESIZE_LETTERBOX;
    if (pre) {
        json_t *rs = json_object_get(pre, "resize");
        if (step_enabled(rs)) {
            const char *fmt = json_string_value(json_object_get(rs, "format"));
            if (fmt && str_has_prefix(fmt, "Fit")) {
                pp->resize = RESIZE_LETTERBOX;
                pp->pad = strstr(fmt, "black") ? 0 : strstr(fmt, "white") ? 255 : 114;
            }
            *want_w = (int)json_integer_value(json_object_get(rs, "width"));
            *want_h = (int)json_integer_value(json_object_get(rs, "height"));
        }
        json_t *sc = json_object_get(pre, "static-crop");
        if (step_enabled(sc)) {
            pp->static_crop = true;
            pp->crop_x0 = (float)json_number_value(json_object_get(sc, "x_min"));
            pp->crop_x1 = (float)json_number_value(json_object_get(sc, "x_max"));
            pp->crop_y0 = (float)json_number_value(json_object_get(sc, "y_min"));
            pp->crop_y1 = (float)json_number_value(json_object_get(sc, "y_max"));
            if (!(pp->crop_x0 >= 0 && pp->crop_x0 < pp->crop_x1 && pp->crop_x1 <= 100 &&
                  pp->crop_y0 >= 0 && pp->crop_y0 < pp->crop_y1 && pp->crop_y1 <= 100)) {
                snprintf(err, errlen, "static-crop needs 0 <= x_min < x_max <= 100 (percent)");
                return ERR_INVALID;
            }
        }
        json_t *ct = json_object_get(pre, "contrast");
        if (step_enabled(ct)) {
            const char *t = json_string_value(json_object_get(ct, "type"));
            if (t && !strcmp(t, "Contrast Stretching"))
                pp->contrast = CONTRAST_STRETCH;
            else if (t && !strcmp(t, "Histogram Equalization"))
                pp->contrast = CONTRAST_EQUALIZE;
            else {
                snprintf(err, errlen, "contrast type '%s' is not supported (vbatch has "
                         "'Contrast Stretching' and 'Histogram Equalization')", t ? t : "");
                return ERR_UNSUPPORTED;
            }
        }
        pp->grayscale = step_enabled(json_object_get(pre, "grayscale"));
    }
    if (m->task == MODEL_TASK_CLASSIFICATION || m->task == MODEL_TASK_MULTI_LABEL)
        for (int k = 0; k < 3; k++)
            pp->mean[k] = pp->std[k] = 0.5f;
    if (m->task == MODEL_TASK_SEMANTIC) {
        /* DeepLabV3Plus (Roboflow's semantic segmentation model) normalises
         * with the ImageNet statistics */
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
        for (int k = 0; k < 3; k++) {
            pp->mean[k] = mean[k];
            pp->std[k] = std[k];
        }
    }
    json_t *ni = sp->cfg ? json_object_get(sp->cfg, "network_input") : NULL;
    if (json_is_object(ni)) {
        json_t *tis = json_object_get(ni, "training_input_size");
        if (json_is_object(tis)) {
            *want_w = (int)json_integer_value(json_object_get(tis, "width"));
            *want_h = (int)json_integer_value(json_object_get(tis, "height"));
        }
        const char *rm = json_string_value(json_object_get(ni, "resize_mode"));
        if (rm) {
            if (!strcmp(rm, "stretch"))
                pp->resize = RESIZE_STRETCH;
            else if (str_has_prefix(rm, "letterbox"))
                pp->resize = RESIZE_LETTERBOX;
            else if (!strcmp(rm, "center-crop"))
                pp->resize = RESIZE_CENTER_CROP;
            else if (!strcmp(rm, "fit-longer-edge")) {
                /* a fixed-size export cannot fit the longer edge: Roboflow
                 * substitutes letterbox with padding 127 for the YOLO
                 * families, stretch for RF-DETR (parse_inference_config's
                 * implicit_resize_mode_substitutions).  The first pass runs
                 * before the family is known; the second settles it. */
                pp->resize = m->family == MODEL_FAMILY_RFDETR ? RESIZE_STRETCH : RESIZE_LETTERBOX;
                pp->pad = 127;
            } else {
                snprintf(err, errlen, "resize_mode '%s' is not supported", rm);
                return ERR_UNSUPPORTED;
            }
        }
        json_t *pv = json_object_get(ni, "padding_value");
        if (json_is_integer(pv) && !(rm && !strcmp(rm, "fit-longer-edge")))
            pp->pad = (uint8_t)MAX(0, MIN(255, json_integer_value(pv)));
        const char *cm = json_string_value(json_object_get(ni, "color_mode"));
        if (cm)
            pp->bgr = !strcasecmp(cm, "bgr");
        json_t *sf = json_object_get(ni, "scaling_factor");
        if (json_is_number(sf)) {
            pp->scale = (float)json_number_value(sf);
            if (!(pp->scale > 0)) {
                snprintf(err, errlen, "scaling_factor must be > 0");
                return ERR_INVALID;
            }
        }
        json_t *no = json_object_get(ni, "normalization");
        if (json_is_array(no) && json_array_size(no) == 2) {
            for (int k = 0; k < 3; k++) {
                json_t *mv = json_array_get(json_array_get(no, 0), (size_t)k);
                json_t *sv = json_array_get(json_array_get(no, 1), (size_t)k);
                if (!json_is_number(mv) || !json_is_number(sv) || !(json_number_value(sv) != 0)) {
                    snprintf(err, errlen, "normalization must be [[m, m, m], [s, s, s]], s != 0");
                    return ERR_INVALID;
                }
                /* given for 0..1 values when scaling is applied first */
                pp->mean[k] = (float)json_number_value(mv);
                pp->std[k] = (float)json_number_value(sv);
            }
        } else if (json_is_null(no)) {
            for (int k = 0; k < 3; k++) {
                pp->mean[k] = 0;
                pp->std[k] = 1;
            }
        }
    }
    json_t *pp_cfg = sp->cfg ? json_object_get(sp->cfg, "post_processing") : NULL;
    if (json_is_true(json_object_get(pp_cfg, "fused")))
        m->fused_softmax = true;
    return 0;
}

static int tensor_dims(const OrtApi *api, OrtTypeInfo *ti, ONNXTensorElementDataType *type,
                       int64_t *dims, size_t *rank)
{
    const OrtTensorTypeAndShapeInfo *tsi = NULL;
    enum ONNXType ot;
    if (!model__ok(api, api->GetOnnxTypeFromTypeInfo(ti, &ot)) || ot != ONNX_TYPE_TENSOR)
        return ERR_INVALID;
    if (!model__ok(api, api->CastTypeInfoToTensorInfo(ti, &tsi)) || !tsi)
        return ERR_INVALID;
    if (!model__ok(api, api->GetTensorElementType(tsi, type)) ||
        !model__ok(api, api->GetDimensionsCount(tsi, rank)) || *rank > 8)
        return ERR_INVALID;
    if (!model__ok(api, api->GetDimensions(tsi, dims, *rank)))
        return ERR_INVALID;
    return 0;
}

static void set_json_shape(json_t *o, const char *key, const int64_t *d, size_t r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r; i++)
        json_array_append_new(a, json_integer(d[i]));
    json_object_set_new(o, key, a);
}

/* Build and check a model from sp.  On success *out holds one reference. */
static int model_build(struct model_registry *reg, const struct spec *sp, struct model **out,
                       char *err, size_t errlen)
{
    struct model *m = NULL;
    struct model__ort *o = NULL;
    OrtAllocator *alloc = NULL;
    OrtTypeInfo *ti = NULL;
    OrtValue *outs[MODEL_MAX_OUTPUTS] = {0};
    json_t *pre = NULL, *unames = NULL, *info = NULL;
    char *meta_task = NULL, *meta_names = NULL, *meta_imgsz = NULL, *meta_kpt = NULL;
    char *meta_e2e = NULL, *meta_desc = NULL;
    float *zero = NULL;
    int rc;
    char e2[1024];

    if ((rc = registry_ort(reg, &o, err, errlen)) < 0)
        return rc;
    const OrtApi *api = o->api;
    m = xcalloc(1, sizeof(*m));
    m->refs = 1;
    m->id = xstrdup(sp->id);
    m->dir = sp->dir ? xstrdup(sp->dir) : NULL;
    if ((rc = model__ort_acquire(o->path, &m->ort, err, errlen)) < 0)
        goto out;
    if (sp->onnx_len > reg->opts.max_model_bytes) {
        snprintf(err, errlen, "model '%s': weights.onnx is %zu bytes, over the %llu byte limit",
                 sp->id, sp->onnx_len, (unsigned long long)reg->opts.max_model_bytes);
        rc = ERR_LIMIT;
        goto out;
    }
    rc = model__session_open(o, sp->onnx, sp->onnx_len, reg->opts.intra_op_threads,
                             reg->opts.intra_op_spinning, reg->opts.machine_type, &m->sess, e2,
                             sizeof(e2));
    if (rc < 0) {
        snprintf(err, errlen, "model '%s': %s", sp->id, e2);
        goto out;
    }
    if (!model__ok(api, api->GetAllocatorWithDefaultOptions(&alloc))) {
        snprintf(err, errlen, "no onnx runtime allocator");
        rc = ERR_INTERNAL;
        goto out;
    }

    /* ---- input */
    size_t nin = 0, nout = 0;
    if (!model__ok(api, api->SessionGetInputCount(m->sess, &nin)) ||
        !model__ok(api, api->SessionGetOutputCount(m->sess, &nout)))
        nin = nout = 0;
    if (nin != 1) {
        snprintf(err, errlen, "model '%s': expected 1 input tensor, the model has %zu", sp->id,
                 nin);
        rc = ERR_INVALID;
        goto out;
    }
    if (nout < 1 || nout > MODEL_MAX_OUTPUTS) {
        snprintf(err, errlen, "model '%s': expected 1 to %d outputs, the model has %zu", sp->id,
                 MODEL_MAX_OUTPUTS, nout);
        rc = ERR_INVALID;
        goto out;
    }
    char *nm_tmp = NULL;
    if (model__ok(api, api->SessionGetInputName(m->sess, 0, alloc, &nm_tmp))) {
        m->in_name = xstrdup(nm_tmp);
        (void)model__ok(api, api->AllocatorFree(alloc, nm_tmp));
    } else {
        m->in_name = xstrdup("images");
    }
    for (size_t i = 0; i < nout; i++) {
        nm_tmp = NULL;
        if (model__ok(api, api->SessionGetOutputName(m->sess, i, alloc, &nm_tmp))) {
            m->out_names[i] = xstrdup(nm_tmp);
            (void)model__ok(api, api->AllocatorFree(alloc, nm_tmp));
        } else {
            m->out_names[i] = xstrdup("");
        }
    }
    m->n_out = nout;
    ONNXTensorElementDataType et;
    int64_t d[8];
    size_t rank = 0;
    if (!model__ok(api, api->SessionGetInputTypeInfo(m->sess, 0, &ti)) ||
        tensor_dims(api, ti, &et, d, &rank) < 0) {
        snprintf(err, errlen, "model '%s': the input is not a tensor", sp->id);
        rc = ERR_INVALID;
        goto out;
    }
    if (et != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        snprintf(err, errlen, "model '%s': the input tensor has element type %d; vbatch needs "
                 "float32", sp->id, (int)et);
        rc = ERR_INVALID;
        goto out;
    }
    if (rank != 4) {
        snprintf(err, errlen, "model '%s': the input tensor has rank %zu; vbatch needs an NCHW "
                 "image tensor (rank 4)", sp->id, rank);
        rc = ERR_INVALID;
        goto out;
    }
    if (d[1] > 0 && d[1] != 1 && d[1] != 3) {
        snprintf(err, errlen, "model '%s': the input has %lld channels (need 1 or 3 in NCHW "
                 "order)", sp->id, (long long)d[1]);
        rc = ERR_INVALID;
        goto out;
    }
    m->in_c = d[1] > 0 ? (int)d[1] : 3;
    m->dyn_batch = d[0] <= 0;
    m->fixed_batch = d[0] > 0 ? (int)d[0] : 1;
    if (m->fixed_batch > MODEL_MAX_BATCH) {
        snprintf(err, errlen, "model '%s': fixed batch %d is over %d", sp->id, m->fixed_batch,
                 MODEL_MAX_BATCH);
        rc = ERR_LIMIT;
        goto out;
    }

    /* ---- metadata: names, task, sizes */
    meta_names = model__meta_lookup(o, m->sess, "names");
    meta_task = model__meta_lookup(o, m->sess, "task");
    meta_imgsz = model__meta_lookup(o, m->sess, "imgsz");
    meta_kpt = model__meta_lookup(o, m->sess, "kpt_shape");
    meta_e2e = model__meta_lookup(o, m->sess, "end2end");
    meta_desc = model__meta_lookup(o, m->sess, "description");
    bool ultralytics = meta_names != NULL;
    json_t *names = sp->names;
    if (!names && sp->env && json_is_object(json_object_get(sp->env, "CLASS_MAP"))) {
        json_t *cm = json_object_get(sp->env, "CLASS_MAP");
        size_t n = json_object_size(cm);
        unames = json_array();
        for (size_t i = 0; i < n; i++) {
            char k[32];
            snprintf(k, sizeof(k), "%zu", i);
            json_t *v = json_object_get(cm, k);
            if (!json_is_string(v)) {
                snprintf(err, errlen, "model '%s': CLASS_MAP has no class %zu", sp->id, i);
                rc = ERR_INVALID;
                goto out;
            }
            json_array_append(unames, v);
        }
        names = unames;
    }
    if (!names && meta_names) {
        unames = names_from_pydict(meta_names);
        if (!unames) {
            snprintf(err, errlen, "model '%s': cannot parse the 'names' metadata", sp->id);
            rc = ERR_INVALID;
            goto out;
        }
        names = unames;
    }
    if (!names || json_array_size(names) == 0) {
        snprintf(err, errlen, "model '%s': no class names (class_names.txt, CLASS_MAP or ONNX "
                 "'names' metadata)", sp->id);
        rc = ERR_INVALID;
        goto out;
    }
    m->n_classes = json_array_size(names);
    m->classes = xcalloc(m->n_classes, sizeof(char *));
    for (size_t i = 0; i < m->n_classes; i++) {
        const char *s = json_string_value(json_array_get(names, i));
        m->classes[i] = xstrdup(s ? s : "");
    }
    const char *task_s = json_string_value(json_object_get(sp->meta, "task"));
    if (!task_s)
        task_s = json_string_value(json_object_get(sp->mcfg, "task_type"));
    if (!task_s)
        task_s = json_string_value(json_object_get(sp->env, "TASK"));
    if (!task_s)
        task_s = meta_task;
    if (task_s) {
        m->task = model_task_parse(task_s);
        if (!m->task) {
            snprintf(err, errlen, "model '%s': unknown task '%s'", sp->id, task_s);
            rc = ERR_INVALID;
            goto out;
        }
        if (m->task == MODEL_TASK_OCR) {
            snprintf(err, errlen, "model '%s': an OCR model is a folder of det.onnx, rec.onnx "
                     "and dict.txt (docs/MODELS.md \"OCR\"), not one weights.onnx", sp->id);
            rc = ERR_INVALID;
            goto out;
        }
        if (m->task == MODEL_TASK_EMBEDDING) {
            snprintf(err, errlen, "model '%s': a CLIP model is a folder of visual.onnx, "
                     "textual.onnx and merges.txt (docs/MODELS.md \"CLIP\"), not one "
                     "weights.onnx", sp->id);
            rc = ERR_INVALID;
            goto out;
        }
        if (m->task == MODEL_TASK_SAM) {
            snprintf(err, errlen, "model '%s': a SAM2 model is encoder.onnx and decoder.onnx "
                     "(docs/MODELS.md \"SAM2\"), not one weights.onnx", sp->id);
            rc = ERR_INVALID;
            goto out;
        }
    }
    if (m->task == MODEL_TASK_CLASSIFICATION && json_is_true(json_object_get(sp->env, "MULTICLASS")))
        m->task = MODEL_TASK_MULTI_LABEL;

    /* ---- input size */
    int want_w = 0, want_h = 0;
    pre = env_preprocessing(sp->env);
    /* preprocessing needs the task for its normalisation default; guess now,
     * re-run after the outputs settle the task */
    if ((rc = parse_prep(m, sp, pre, ultralytics, &want_w, &want_h, e2, sizeof(e2))) < 0) {
        snprintf(err, errlen, "model '%s': %s", sp->id, e2);
        goto out;
    }
    if (meta_imgsz && (want_w <= 0 || want_h <= 0)) {
        int a = 0, b = 0;
        if (sscanf(meta_imgsz, "[%d, %d]", &a, &b) == 2) {
            want_h = a;
            want_w = b;
        }
    }
    m->in_h = d[2] > 0 ? (int)d[2] : want_h > 0 ? want_h : 640;
    m->in_w = d[3] > 0 ? (int)d[3] : want_w > 0 ? want_w : 640;
    if (m->in_w > MODEL_MAX_INPUT || m->in_h > MODEL_MAX_INPUT || m->in_w < 1 || m->in_h < 1) {
        snprintf(err, errlen, "model '%s': input size %dx%d out of range", sp->id, m->in_w,
                 m->in_h);
        rc = ERR_LIMIT;
        goto out;
    }

    /* ---- trial run: real output shapes */
    size_t plane = (size_t)m->in_c * (size_t)m->in_w * (size_t)m->in_h;
    zero = try_calloc(plane * (size_t)m->fixed_batch, sizeof(float));
    if (!zero) {
        rc = ERR_NOMEM;
        goto out;
    }
    if ((rc = model__session_run(m, zero, m->fixed_batch, outs, e2, sizeof(e2))) < 0) {
        snprintf(err, errlen, "model '%s' does not run on a %dx%d input: %s", sp->id, m->in_w,
                 m->in_h, e2);
        rc = ERR_INVALID;
        goto out;
    }
    int64_t od[MODEL_MAX_OUTPUTS][8];
    size_t orank[MODEL_MAX_OUTPUTS];
    info = json_object();
    json_t *jouts = json_array();
    json_object_set_new(info, "outputs", jouts);
    for (size_t i = 0; i < nout; i++) {
        OrtTensorTypeAndShapeInfo *tsi = NULL;
        ONNXTensorElementDataType ot = 0;
        orank[i] = 0;
        if (model__ok(api, api->GetTensorTypeAndShape(outs[i], &tsi))) {
            if (!model__ok(api, api->GetTensorElementType(tsi, &ot)) ||
                !model__ok(api, api->GetDimensionsCount(tsi, &orank[i])) || orank[i] > 8 ||
                !model__ok(api, api->GetDimensions(tsi, od[i], orank[i])))
                ot = 0;
            api->ReleaseTensorTypeAndShapeInfo(tsi);
        }
        if (ot != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || orank[i] > 8) {
            snprintf(err, errlen, "model '%s': output %zu ('%s') is not a float32 tensor", sp->id,
                     i, m->out_names[i]);
            rc = ERR_INVALID;
            goto out;
        }
        json_t *jo = json_object();
        json_object_set_new(jo, "name", json_string(m->out_names[i]));
        set_json_shape(jo, "shape", od[i], orank[i]);
        json_array_append_new(jouts, jo);
    }

    /* a network that answers NaN to a blank picture would answer it to real
     * ones: refuse it here rather than fail every image */
    for (size_t i = 0; i < nout; i++) {
        float *vals = NULL;
        size_t cnt = 1;
        for (size_t k = 0; k < orank[i]; k++)
            cnt *= (size_t)(od[i][k] > 0 ? od[i][k] : 0);
        if (!model__ok(api, api->GetTensorMutableData(outs[i], (void **)&vals)) || !vals)
            continue;
        for (size_t k = 0; k < cnt; k++)
            if (isnan(vals[k])) {
                snprintf(err, errlen, "model '%s': output %zu ('%s') holds NaN values on a blank "
                         "%dx%d input", sp->id, i, m->out_names[i], m->in_w, m->in_h);
                rc = ERR_INVALID;
                goto out;
            }
    }

    /* ---- architecture hints */
    struct model__hints hints = {0};
    hints.arch = json_string_value(json_object_get(sp->mcfg, "model_architecture"));
    hints.model_type = json_string_value(json_object_get(sp->mtype, "model_type"));
    hints.ul_desc = meta_desc;
    hints.ul_end2end = meta_e2e && !strcasecmp(meta_e2e, "true");
    {
        json_t *ppc = sp->cfg ? json_object_get(sp->cfg, "post_processing") : NULL;
        const char *pt = json_string_value(json_object_get(ppc, "type"));
        hints.fused_nms = pt && !strcmp(pt, "nms") && json_is_true(json_object_get(ppc, "fused"));
        hints.class_ops = sp->cfg ? json_object_get(sp->cfg, "class_names_operations") : NULL;
    }

    /* ---- decoder choice and checks */
    int r3 = -1, r4 = -1, r2 = -1;
    for (size_t i = 0; i < nout; i++) {
        if (orank[i] == 3 && r3 < 0)
            r3 = (int)i;
        if (orank[i] == 4 && r4 < 0)
            r4 = (int)i;
        if (orank[i] == 2 && r2 < 0)
            r2 = (int)i;
    }
    size_t nc = m->n_classes;
    if (!m->task) {
        if (nout == 1 && r4 == 0 && od[0][1] == (int64_t)nc && nc >= 1)
            m->task = MODEL_TASK_SEMANTIC; /* per-pixel class logits alone */
        else if (r3 >= 0 && r4 >= 0)
            m->task = MODEL_TASK_SEGMENTATION;
        else if (r2 >= 0)
            m->task = json_is_true(json_object_get(sp->env, "MULTICLASS"))
                          ? MODEL_TASK_MULTI_LABEL
                          : MODEL_TASK_CLASSIFICATION;
        else if (r3 >= 0 && od[r3][1] == (int64_t)(4 + nc))
            m->task = MODEL_TASK_DETECTION;
        else if (r3 >= 0 && model__family_detect(m, &hints, od, orank, nout, "", e2,
                                                 sizeof(e2)) == 0)
            m->task = MODEL_TASK_DETECTION; /* YOLOv5, YOLO-NAS, RF-DETR, end-to-end ... */
        else if (r3 >= 0 && od[r3][1] > (int64_t)(4 + nc) && (od[r3][1] - 4 - (int64_t)nc) % 3 == 0 &&
                 od[r3][2] > od[r3][1]) /* channel-major: more anchors than rows */
            m->task = MODEL_TASK_KEYPOINTS;
        else if (r3 >= 0)
            m->task = MODEL_TASK_DETECTION; /* refused below with what was found */
    }
    /* the task is settled: the hinted architecture decodes detection only
     * (its segmentation variants are not decoded yet) */
    {
        const char *an = hints.arch ? hints.arch : hints.model_type;
        if (!model__arch_decodes(an, m->task)) {
            snprintf(err, errlen, "model '%s': %s names architecture '%s'; vbatch does not decode "
                     "it for %s", sp->id,
                     hints.arch ? "model_config.json model_architecture" : "model_type.json",
                     an, model_task_name(m->task));
            rc = ERR_UNSUPPORTED;
            goto out;
        }
    }
    char shape_s[256] = "";
    {
        size_t off = 0;
        for (size_t i = 0; i < nout && off < sizeof(shape_s) - 40; i++) {
            if (m->out_names[i][0] && strlen(m->out_names[i]) < 32)
                off += (size_t)snprintf(shape_s + off, sizeof(shape_s) - off, "%s%s ", i ? ", " : "",
                                        m->out_names[i]);
            else if (i)
                off += (size_t)snprintf(shape_s + off, sizeof(shape_s) - off, ", ");
            off += (size_t)snprintf(shape_s + off, sizeof(shape_s) - off, "(");
            for (size_t k = 0; k < orank[i] && off < sizeof(shape_s) - 20; k++)
                off += (size_t)snprintf(shape_s + off, sizeof(shape_s) - off, "%s%lld",
                                        k ? ", " : "", (long long)od[i][k]);
            off += (size_t)snprintf(shape_s + off, sizeof(shape_s) - off, ")");
        }
    }
    switch (m->task) {
    case MODEL_TASK_DETECTION:
        if ((rc = model__family_detect(m, &hints, od, orank, nout, shape_s, e2, sizeof(e2))) < 0) {
            snprintf(err, errlen, "model '%s': %s", sp->id, e2);
            goto out;
        }
        names = NULL; /* class_names_operations may have changed m->classes */
        break;
    case MODEL_TASK_SEGMENTATION:
        rc = model__family_detect_seg(m, &hints, od, orank, nout, shape_s, e2, sizeof(e2));
        if (rc < 0) {
            snprintf(err, errlen, "model '%s': %s", sp->id, e2);
            goto out;
        }
        if (rc == 1) {
            rc = 0;
            names = NULL; /* class_names_operations may have changed m->classes */
            break;
        }
        if (r3 < 0 || r4 < 0 || od[r4][1] < 1 || od[r4][1] > 256 ||
            od[r3][1] != (int64_t)(4 + nc) + od[r4][1] || od[r4][2] < 1 || od[r4][3] < 1) {
            snprintf(err, errlen, "model '%s': no decoder understands outputs %s for instance "
                     "segmentation with %zu classes (expected (N, 4+%zu+nm, anchors) and "
                     "prototypes (N, nm, h, w))", sp->id, shape_s, nc, nc);
            rc = ERR_INVALID;
            goto out;
        }
        m->det_out = r3;
        m->proto_out = r4;
        m->nm = (int)od[r4][1];
        break;
    case MODEL_TASK_KEYPOINTS: {
        int64_t extra = r3 >= 0 ? od[r3][1] - 4 - (int64_t)nc : -1;
        if (extra <= 0 || extra % 3 != 0) {
            snprintf(err, errlen, "model '%s': no decoder understands outputs %s for keypoint "
                     "detection with %zu classes (expected (N, 4+%zu+3k, anchors))", sp->id,
                     shape_s, nc, nc);
            rc = ERR_INVALID;
            goto out;
        }
        int a = 0, b = 0;
        if (meta_kpt && sscanf(meta_kpt, "[%d, %d]", &a, &b) == 2 &&
            (b != 3 || (int64_t)a * 3 != extra)) {
            snprintf(err, errlen, "model '%s': kpt_shape %s does not match the output (vbatch "
                     "needs x, y, confidence per keypoint)", sp->id, meta_kpt);
            rc = ERR_UNSUPPORTED;
            goto out;
        }
        m->det_out = r3;
        m->n_kpt = (size_t)(extra / 3);
        json_t *kn = json_object_get(sp->meta, "keypoint_names");
        if (!kn)
            kn = json_object_get(sp->env, "KEYPOINT_NAMES");
        if (kn && json_array_size(kn) != m->n_kpt) {
            snprintf(err, errlen, "model '%s': %zu keypoint names for %zu keypoints", sp->id,
                     json_array_size(kn), m->n_kpt);
            rc = ERR_INVALID;
            goto out;
        }
        m->kpt_names = xcalloc(m->n_kpt, sizeof(char *));
        for (size_t i = 0; i < m->n_kpt; i++) {
            const char *s = json_string_value(json_array_get(kn, i));
            m->kpt_names[i] = s ? xstrdup(s) : xasprintf("%zu", i);
        }
        break;
    }
    case MODEL_TASK_SEMANTIC:
        /* Roboflow reads the first output; the class ids travel as uint8 */
        if (orank[0] != 4 || od[0][1] != (int64_t)nc || nc < 1 || nc > 256 || od[0][2] < 1 ||
            od[0][3] < 1) {
            snprintf(err, errlen, "model '%s': no decoder understands outputs %s for semantic "
                     "segmentation with %zu classes (expected logits (N, %zu, H, W) first, at "
                     "most 256 classes)", sp->id, shape_s, nc, nc);
            rc = ERR_INVALID;
            goto out;
        }
        m->det_out = 0;
        break;
    case MODEL_TASK_CLASSIFICATION:
    case MODEL_TASK_MULTI_LABEL: {
        int ri = r2 >= 0 ? r2 : 0;
        size_t per = 1;
        for (size_t k = 1; k < orank[ri]; k++)
            per *= (size_t)(od[ri][k] > 0 ? od[ri][k] : 0);
        if (orank[ri] < 2 || per != nc) {
            snprintf(err, errlen, "model '%s': no decoder understands outputs %s for "
                     "classification with %zu classes (expected (N, %zu))", sp->id, shape_s, nc,
                     nc);
            rc = ERR_INVALID;
            goto out;
        }
        m->det_out = ri;
        break;
    }
    default:
        snprintf(err, errlen, "model '%s': no decoder understands outputs %s with %zu classes "
                 "(need a YOLOv8-style detection, segmentation or pose head, or a classifier)",
                 sp->id, shape_s, nc);
        rc = ERR_INVALID;
        goto out;
    }
    /* the task is settled: redo the preprocessing defaults that depend on it */
    if ((rc = parse_prep(m, sp, pre, ultralytics, &want_w, &want_h, e2, sizeof(e2))) < 0) {
        snprintf(err, errlen, "model '%s': %s", sp->id, e2);
        goto out;
    }

    /* ---- description */
    json_object_set_new(info, "model_id", json_string(m->id));
    json_object_set_new(info, "task", json_string(model_task_name(m->task)));
    if (names) {
        json_object_set(info, "class_names", names);
    } else {
        json_t *cn = json_array();
        for (size_t i = 0; i < m->n_classes; i++)
            json_array_append_new(cn, json_string(m->classes[i]));
        json_object_set_new(info, "class_names", cn);
    }
    if (m->task == MODEL_TASK_DETECTION || m->family != MODEL_FAMILY_YOLOV8) {
        json_object_set_new(info, "architecture", json_string(m->arch ? m->arch : "yolov8"));
        json_object_set_new(info, "output_layout", json_string(model__family_label(m->family)));
    }
    json_t *jin = json_object();
    json_object_set_new(jin, "name", json_string(m->in_name ? m->in_name : ""));
    json_object_set_new(jin, "width", json_integer(m->in_w));
    json_object_set_new(jin, "height", json_integer(m->in_h));
    json_object_set_new(jin, "channels", json_integer(m->in_c));
    json_object_set_new(jin, "dynamic_batch", json_boolean(m->dyn_batch));
    json_object_set_new(info, "input", jin);
    json_t *jp = json_object();
    const char *rz[] = {"stretch", "letterbox", "center-crop"};
    json_object_set_new(jp, "resize", json_string(rz[m->prep.resize]));
    json_object_set_new(jp, "padding_value", json_integer(m->prep.pad));
    json_object_set_new(jp, "color_mode", json_string(m->prep.bgr ? "bgr" : "rgb"));
    json_object_set_new(jp, "static_crop", json_boolean(m->prep.static_crop));
    json_object_set_new(jp, "grayscale", json_boolean(m->prep.grayscale));
    json_object_set_new(jp, "contrast", json_string(m->prep.contrast == CONTRAST_STRETCH
                                                        ? "Contrast Stretching"
                                                    : m->prep.contrast == CONTRAST_EQUALIZE
                                                        ? "Histogram Equalization"
                                                        : "none"));
    json_object_set_new(jp, "scaling_factor", json_real(m->prep.scale));
    json_object_set_new(info, "preprocessing", jp);
    if (m->nm)
        json_object_set_new(info, "mask_coefficients", json_integer(m->nm));
    if (m->n_kpt) {
        json_t *ka = json_array();
        for (size_t i = 0; i < m->n_kpt; i++)
            json_array_append_new(ka, json_string(m->kpt_names[i]));
        json_object_set_new(info, "keypoint_names", ka);
    }
    if (m->dir)
        json_object_set_new(info, "artefacts", json_string(m->dir));
    /* the aliases given with the model (upload metadata or model.json):
     * registered with it by registry_add, reported by the /models API */
    json_t *al = sp->meta ? json_object_get(sp->meta, "aliases") : NULL;
    if (json_is_array(al)) {
        json_t *ja = json_array(), *v;
        size_t i;
        json_array_foreach(al, i, v) if (json_is_string(v) && model_id_valid(json_string_value(v)))
            json_array_append(ja, v);
        json_object_set_new(info, "aliases", ja);
    }
    m->info = info;
    info = NULL;
    *out = m;
    m = NULL;
    rc = 0;
out:
    for (size_t i = 0; i < MODEL_MAX_OUTPUTS; i++)
        if (outs[i])
            api->ReleaseValue(outs[i]);
    if (ti)
        api->ReleaseTypeInfo(ti);
    free(zero);
    free(meta_task);
    free(meta_names);
    free(meta_imgsz);
    free(meta_kpt);
    free(meta_e2e);
    free(meta_desc);
    json_decref(pre);
    json_decref(unames);
    json_decref(info);
    model__free(m);
    return rc;
}

/* Put m into the table (replacing a model of the same scope and id). */
static void registry_insert(struct model_registry *reg, struct model *m)
{
    struct model *old = NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n_models; i++)
        if (!strcmp(reg->models[i]->id, m->id) && ws_eq(reg->models[i]->ws, m->ws)) {
            old = reg->models[i];
            reg->models[i] = m;
            m = NULL;
            break;
        }
    if (m) {
        if (reg->n_models == reg->cap_models) {
            reg->cap_models = reg->cap_models ? reg->cap_models * 2 : 8;
            reg->models = xrealloc(reg->models, reg->cap_models * sizeof(*reg->models));
        }
        reg->models[reg->n_models++] = m;
    }
    pthread_mutex_unlock(&reg->lock);
    model_unref(old);
}

/* ---- registration from a folder --------------------------------------------------- */

static int read_json_file(const char *dir, const char *name, json_t **out, char *err,
                          size_t errlen)
{
    char *path = xasprintf("%s/%s", dir, name), *data = NULL;
    size_t len = 0;
    int rc = file_read_all(path, MODEL_MAX_CONFIG, &data, &len);
    *out = NULL;
    if (rc == -ENOENT) {
        rc = 0;
        goto out;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot read '%s': %s", path, err_str(rc));
        goto out;
    }
    char e2[300] = "";
    (void)json_parse_outside(data, len, 0, out, e2, sizeof e2);
    if (!*out || !json_is_object(*out)) {
        snprintf(err, errlen, "'%s' is not a JSON object (%s)", path, e2);
        json_decref(*out);
        *out = NULL;
        rc = ERR_PARSE;
    }
out:
    free(path);
    free(data);
    return rc;
}

static int copy_file(const char *src, const char *dst, uint64_t max)
{
    char *data = NULL;
    size_t len = 0;
    int rc = file_read_all(src, (size_t)max, &data, &len);
    if (rc == 0)
        rc = file_write_atomic(dst, data, len);
    free(data);
    return rc;
}

static const char *const artefact_files[] = {"weights.onnx",          "class_names.txt",
                                             "environment.json",      "inference_config.json",
                                             "model_config.json",     "model_type.json"};

static int write_model_json(const char *dir, const char *id, const json_t *meta)
{
    json_t *mj = json_object();
    json_object_set_new(mj, "model_id", json_string(id));
    const char *keys[] = {"task", "keypoint_names", "aliases"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        json_t *v = meta ? json_object_get(meta, keys[i]) : NULL;
        if (v)
            json_object_set(mj, keys[i], v);
    }
    char *s = json_dumps(mj, JSON_INDENT(1));
    char *path = xasprintf("%s/model.json", dir);
    int rc = file_write_atomic(path, s, strlen(s));
    free(path);
    free(s);
    json_decref(mj);
    return rc;
}

static int alias_set(struct model_registry *reg, const char *ws, const char *alias, const char *target);

static void add_meta_aliases(struct model_registry *reg, const char *ws, const char *id, const json_t *meta)
{
    json_t *al = meta ? json_object_get(meta, "aliases") : NULL;
    size_t i;
    json_t *v;
    json_array_foreach(al, i, v)
    {
        if (json_is_string(v))
            alias_set(reg, ws, json_string_value(v), id);
    }
}

/* A folder of a multi-file family: it holds every file of files (a
 * NULL-terminated list), or its model.json names the family. */
static bool is_family_folder(const char *src, const char *const *files, const char *family)
{
    bool yes = true;
    for (size_t i = 0; files[i] && yes; i++) {
        char *p = xasprintf("%s/%s", src, files[i]);
        struct stat st;
        yes = stat(p, &st) == 0;
        free(p);
    }
    if (!yes) {
        json_t *mj = NULL;
        char e[256];
        if (read_json_file(src, "model.json", &mj, e, sizeof e) == 0 && mj) {
            const char *f = json_string_value(json_object_get(mj, "family"));
            yes = f && !strcmp(f, family);
        }
        json_decref(mj);
    }
    return yes;
}

/* OCR: det.onnx; SAM2: encoder.onnx and decoder.onnx; CLIP: visual.onnx. */
static bool is_ocr_folder(const char *src)
{
    static const char *const files[] = {"det.onnx", NULL};
    return is_family_folder(src, files, "ocr");
}

static bool is_sam_folder(const char *src)
{
    static const char *const files[] = {"encoder.onnx", "decoder.onnx", NULL};
    return is_family_folder(src, files, "sam");
}

static bool is_clip_folder(const char *src)
{
    static const char *const files[] = {"visual.onnx", NULL};
    return is_family_folder(src, files, "clip");
}

/* Register the OCR model of folder src (ocr.c checks its parts). */
static int register_ocr_folder(struct model_registry *reg, const char *id, const char *src,
                               bool copy, char *err, size_t errlen)
{
    struct model__ort *o = NULL;
    struct model *m = NULL;
    json_t *meta = NULL;
    char *dest = NULL, rsrc[PATH_MAX], rdst[PATH_MAX];
    int rc;

    if ((rc = read_json_file(src, "model.json", &meta, err, errlen)) < 0)
        return rc;
    if ((rc = registry_ort(reg, &o, err, errlen)) < 0)
        goto out;
    m = xcalloc(1, sizeof(*m));
    m->refs = 1;
    m->id = xstrdup(id);
    m->dir = xstrdup(src);
    if ((rc = model__ort_acquire(o->path, &m->ort, err, errlen)) < 0)
        goto out;
    if ((rc = model__ocr_open(m, src, NULL, meta, reg->opts.max_model_bytes, reg->opts.intra_op_threads,
                              reg->opts.intra_op_spinning, reg->opts.machine_type, err,
                              errlen)) < 0)
        goto out;
    if (copy && reg->opts.models_dir) {
        static const char *const parts[][2] = {{"detector", "det.onnx"},
                                               {"recognizer", "rec.onnx"},
                                               {"dictionary", "dict.txt"}};
        char *dn = model_id_dirname(id);
        dest = xasprintf("%s/%s", reg->opts.models_dir, dn);
        free(dn);
        bool same = realpath(src, rsrc) && realpath(dest, rdst) && !strcmp(rsrc, rdst);
        if (!same) {
            if ((rc = mkdir_p(dest, 0755)) < 0) {
                snprintf(err, errlen, "cannot create '%s': %s", dest, err_str(rc));
                goto out;
            }
            for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
                const char *nm = json_string_value(json_object_get(meta, parts[i][0]));
                if (!nm || strchr(nm, '/'))
                    nm = parts[i][1];
                char *s = xasprintf("%s/%s", src, nm);
                char *d = xasprintf("%s/%s", dest, parts[i][1]);
                rc = copy_file(s, d, reg->opts.max_model_bytes);
                free(s);
                free(d);
                if (rc < 0) {
                    snprintf(err, errlen, "cannot copy model '%s' into '%s': %s", id, dest,
                             err_str(rc));
                    goto out;
                }
            }
            json_t *mj = json_pack("{s:s,s:s,s:s,s:s,s:s}", "model_id", id, "family", "ocr",
                                   "detector", "det.onnx", "recognizer", "rec.onnx",
                                   "dictionary", "dict.txt");
            json_t *al = json_object_get(meta, "aliases");
            if (al)
                json_object_set(mj, "aliases", al);
            char *js = json_dumps(mj, JSON_INDENT(1));
            char *path = xasprintf("%s/model.json", dest);
            rc = file_write_atomic(path, js, strlen(js));
            free(path);
            free(js);
            json_decref(mj);
            if (rc < 0) {
                snprintf(err, errlen, "cannot write '%s/model.json': %s", dest, err_str(rc));
                goto out;
            }
            free(m->dir);
            m->dir = xstrdup(dest);
        }
    }
    m->info = json_pack("{s:s,s:s,s:s,s:I,s:s}", "model_id", id, "task", "ocr", "architecture",
                        "pp-ocr", "dictionary_size", (json_int_t)model__ocr_dict_size(m),
                        "artefacts", m->dir);
    add_meta_aliases(reg, NULL, id, meta);
    registry_insert(reg, m);
    m = NULL;
    log_info("model", "registered OCR model '%s' from %s", id, src);
out:
    model_unref(m);
    json_decref(meta);
    free(dest);
    return rc;
}

/* ---- multi-file models (bundles) ---------------------------------------------------- */

/* The family of a bundle: metadata "family", else what its files say
 * (det.onnx: OCR).  NULL with a message naming the files when none fits. */
static const char *bundle_family(const struct model__files *fs, const json_t *meta, char *err,
                                 size_t errlen)
{
    const char *f = json_string_value(json_object_get(meta, "family"));
    if (f) {
        if (!strcmp(f, "ocr") || !strcmp(f, "sam") || !strcmp(f, "clip"))
            return f;
        snprintf(err, errlen, "metadata 'family' is '%.64s'; the multi-file families are: ocr, sam, clip", f);
        return NULL;
    }
    if (model__files_get(fs, "det.onnx"))
        return "ocr";
    if (model__files_get(fs, "encoder.onnx") && model__files_get(fs, "decoder.onnx"))
        return "sam";
    if (model__files_get(fs, "visual.onnx") && model__files_get(fs, "textual.onnx"))
        return "clip";
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < fs->n; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", fs->f[i].name);
    snprintf(err, errlen, "the files %s make no multi-file model vbatch knows: OCR is det.onnx, rec.onnx "
             "and dict.txt (or metadata \"family\": \"ocr\" with \"detector\", \"recognizer\", "
             "\"dictionary\" naming them); SAM2 is encoder.onnx and decoder.onnx; CLIP is visual.onnx, "
             "textual.onnx and merges.txt (+ vocab.json); a single-file model is one "
             "ONNX file", b.data ? b.data : "");
    buf_release(&b);
    return NULL;
}

/* prepare_bytes of a bundle: the model opened from the files in place. */
static int prepare_bundle(struct model_registry *reg, const char *id, const void *bytes, size_t len,
                          const json_t *meta, struct model **out, char *err, size_t errlen)
{
    struct model__files fs;
    struct model__ort *o = NULL;
    struct model *m = NULL;
    char e2[ERR_MSG_MAX];
    int rc;

    *out = NULL;
    if (!model_id_valid(id)) {
        snprintf(err, errlen, "invalid model id '%s' (letters, digits, '-', '_', '.', at most "
                 "one '/')", id ? id : "");
        return ERR_INVALID;
    }
    if (meta && !json_is_object(meta)) {
        snprintf(err, errlen, "model metadata must be a JSON object");
        return ERR_INVALID;
    }
    if ((rc = model__bundle_parse(bytes, len, &fs, e2, sizeof e2)) < 0) {
        snprintf(err, errlen, "model '%s': %s", id, e2);
        return rc;
    }
    const char *family = bundle_family(&fs, meta, e2, sizeof e2);
    if (!family) {
        snprintf(err, errlen, "model '%s': %s", id, e2);
        return ERR_INVALID;
    }
    if ((rc = registry_ort(reg, &o, err, errlen)) < 0)
        return rc;
    m = xcalloc(1, sizeof(*m));
    m->refs = 1;
    m->id = xstrdup(id);
    if ((rc = model__ort_acquire(o->path, &m->ort, err, errlen)) < 0)
        goto out;
    if (!strcmp(family, "sam")) {
        if ((rc = model__sam_open(m, &fs, reg->opts.max_model_bytes, reg->opts.intra_op_threads,
                                  reg->opts.intra_op_spinning, reg->opts.machine_type, err, errlen)) < 0)
            goto out;
        json_t *sf = json_array();
        for (size_t i = 0; i < fs.n; i++)
            json_array_append_new(sf, json_string(fs.f[i].name));
        m->info = json_pack("{s:s,s:s,s:s,s:o}", "model_id", id, "task", "segment-anything", "architecture", "sam2",
                            "files", sf);
        json_t *sal = json_object_get(meta, "aliases");
        if (json_is_array(sal))
            json_object_set(m->info, "aliases", sal);
        *out = m;
        m = NULL;
        goto out;
    }
    if (!strcmp(family, "clip")) {
        if ((rc = model__clip_open(m, NULL, &fs, meta, reg->opts.max_model_bytes,
                                   reg->opts.intra_op_threads, reg->opts.intra_op_spinning,
                                   reg->opts.machine_type, err, errlen)) < 0)
            goto out;
        json_t *cf = json_array();
        for (size_t i = 0; i < fs.n; i++)
            json_array_append_new(cf, json_string(fs.f[i].name));
        m->info = json_pack("{s:s,s:s,s:s,s:I,s:o}", "model_id", id, "task", "embedding",
                            "architecture", "clip", "embedding_size",
                            (json_int_t)model_clip_dim(m), "files", cf);
        json_t *cal = json_object_get(meta, "aliases");
        if (json_is_array(cal))
            json_object_set(m->info, "aliases", cal);
        *out = m;
        m = NULL;
        goto out;
    }
    if ((rc = model__ocr_open(m, NULL, &fs, meta, reg->opts.max_model_bytes, reg->opts.intra_op_threads,
                              reg->opts.intra_op_spinning, reg->opts.machine_type, err, errlen)) < 0)
        goto out; /* "OCR model 'id': ..." */
    json_t *files = json_array();
    for (size_t i = 0; i < fs.n; i++)
        json_array_append_new(files, json_string(fs.f[i].name));
    m->info = json_pack("{s:s,s:s,s:s,s:I,s:o}", "model_id", id, "task", "ocr", "architecture", "pp-ocr",
                        "dictionary_size", (json_int_t)model__ocr_dict_size(m), "files", files);
    json_t *al = json_object_get(meta, "aliases");
    if (json_is_array(al))
        json_object_set(m->info, "aliases", al);
    *out = m;
    m = NULL;
out:
    model_unref(m);
    return rc;
}

/* A multi-file folder (OCR) as a bundle of its files under their usual
 * names, and model.json (less model_id and the file roles) as metadata. */
static int bundle_read_dir(const char *dir, uint64_t max_bytes, char **out, size_t *len, json_t **meta,
                           char *err, size_t errlen)
{
    static const char *const ocr_parts[][2] = {{"detector", "det.onnx"},
                                               {"recognizer", "rec.onnx"},
                                               {"dictionary", "dict.txt"}};
    static const char *const sam_parts[][2] = {{"encoder", "encoder.onnx"}, {"decoder", "decoder.onnx"}};
    static const char *const clip_parts[][2] = {{"visual", "visual.onnx"},
                                                {"textual", "textual.onnx"},
                                                {"merges", "merges.txt"},
                                                {"vocab", "vocab.json"}};
    bool sam = is_sam_folder(dir), clip = !sam && is_clip_folder(dir);
    const char *const(*parts)[2] = sam ? sam_parts : clip ? clip_parts : ocr_parts;
    size_t n_parts = sam ? ARRAY_LEN(sam_parts) : clip ? ARRAY_LEN(clip_parts) : ARRAY_LEN(ocr_parts);
    struct buf b = BUF_INIT;
    json_t *mj = NULL;
    uint64_t total = 0;
    int rc;

    if ((rc = read_json_file(dir, "model.json", &mj, err, errlen)) < 0)
        return rc;
    if (!mj)
        mj = json_object();
    for (size_t i = 0; i < n_parts; i++) {
        const char *nm = json_string_value(json_object_get(mj, parts[i][0]));
        if (!nm || !model_bundle_name_ok(nm))
            nm = parts[i][1];
        char *p = xasprintf("%s/%s", dir, nm), *data = NULL;
        size_t n = 0;
        struct stat st;
        if (clip && !strcmp(parts[i][0], "vocab") && stat(p, &st) != 0) {
            free(p); /* optional: the vocabulary derived from the merges */
            json_object_del(mj, parts[i][0]);
            continue;
        }
        rc = file_read_all(p, (size_t)(max_bytes - total), &data, &n);
        if (rc < 0) {
            snprintf(err, errlen, "cannot read '%s': %s", p, rc == ERR_LIMIT ? "files too large" : err_str(rc));
            free(p);
            goto out;
        }
        free(p);
        total += n;
        model__bundle_add(&b, parts[i][1], data, n);
        free(data);
        json_object_del(mj, parts[i][0]);
    }
    model__bundle_finish(&b);
    json_object_del(mj, "model_id");
    json_object_set_new(mj, "family", json_string(sam ? "sam" : clip ? "clip" : "ocr"));
    *out = buf_detach(&b, len);
    *meta = mj;
    mj = NULL;
    rc = 0;
out:
    buf_release(&b);
    json_decref(mj);
    return rc;
}

/* Register the SAM2 or CLIP model of folder src, through a bundle of its files
 * (not copied into a models_dir: the folder is where it lives). */
static int register_bundle_folder(struct model_registry *reg, const char *id, const char *src,
                               const char *label, char *err, size_t errlen)
{
    char *bytes = NULL;
    size_t len = 0;
    json_t *meta = NULL;
    struct model *m = NULL;
    int rc = bundle_read_dir(src, reg->opts.max_model_bytes, &bytes, &len, &meta, err, errlen);
    if (rc == 0 && (rc = prepare_bundle(reg, id, bytes, len, meta, &m, err, errlen)) == 0) {
        m->dir = xstrdup(src);
        model_registry_add(reg, m, NULL, NULL);
        model_unref(m);
        log_info("model", "registered %s model '%s' from %s", label, id, src);
    }
    free(bytes);
    json_decref(meta);
    return rc;
}

static int register_folder(struct model_registry *reg, const char *id, const char *src,
                           bool copy, char *err, size_t errlen)
{
    if (model_id_valid(id) && is_ocr_folder(src))
        return register_ocr_folder(reg, id, src, copy, err, errlen);
    if (model_id_valid(id) && is_sam_folder(src))
        return register_bundle_folder(reg, id, src, "SAM2", err, errlen);
    if (model_id_valid(id) && is_clip_folder(src))
        return register_bundle_folder(reg, id, src, "CLIP", err, errlen);
    struct spec sp = {.id = id, .dir = src};
    char *wpath = NULL, *onnx = NULL, *txt = NULL, *dest = NULL, *tpath = NULL;
    size_t len = 0;
    struct model *m = NULL;
    char rsrc[PATH_MAX], rdst[PATH_MAX];
    int rc;

    if (!model_id_valid(id)) {
        snprintf(err, errlen, "invalid model id '%s' (letters, digits, '-', '_', '.', at most "
                 "one '/')", id ? id : "");
        return ERR_INVALID;
    }
    wpath = xasprintf("%s/weights.onnx", src);
    rc = file_read_all(wpath, (size_t)reg->opts.max_model_bytes, &onnx, &len);
    if (rc < 0) {
        snprintf(err, errlen, "model '%s': cannot read '%s': %s", id, wpath,
                 rc == ERR_LIMIT ? "file too large" : err_str(rc));
        goto out;
    }
    sp.onnx = onnx;
    sp.onnx_len = len;
    tpath = xasprintf("%s/class_names.txt", src);
    rc = file_read_all(tpath, MODEL_MAX_CONFIG, &txt, NULL);
    if (rc == 0) {
        if ((rc = names_from_text(txt, &sp.names, err, errlen)) < 0)
            goto out;
    } else if (rc != -ENOENT) {
        snprintf(err, errlen, "model '%s': cannot read '%s': %s", id, tpath, err_str(rc));
        goto out;
    }
    if ((rc = read_json_file(src, "environment.json", &sp.env, err, errlen)) < 0 ||
        (rc = read_json_file(src, "inference_config.json", &sp.cfg, err, errlen)) < 0 ||
        (rc = read_json_file(src, "model.json", &sp.meta, err, errlen)) < 0 ||
        (rc = read_json_file(src, "model_config.json", &sp.mcfg, err, errlen)) < 0 ||
        (rc = read_json_file(src, "model_type.json", &sp.mtype, err, errlen)) < 0)
        goto out;
    if ((rc = model_build(reg, &sp, &m, err, errlen)) < 0)
        goto out;
    if (copy && reg->opts.models_dir) {
        char *dn = model_id_dirname(id);
        dest = xasprintf("%s/%s", reg->opts.models_dir, dn);
        free(dn);
        bool same = realpath(src, rsrc) && realpath(dest, rdst) && !strcmp(rsrc, rdst);
        if (!same) {
            if ((rc = mkdir_p(dest, 0755)) < 0) {
                snprintf(err, errlen, "cannot create '%s': %s", dest, err_str(rc));
                goto out;
            }
            for (size_t i = 0; i < ARRAY_LEN(artefact_files); i++) {
                char *s = xasprintf("%s/%s", src, artefact_files[i]);
                char *d = xasprintf("%s/%s", dest, artefact_files[i]);
                struct stat st;
                rc = stat(s, &st) == 0 ? copy_file(s, d, reg->opts.max_model_bytes) : 0;
                free(s);
                free(d);
                if (rc < 0) {
                    snprintf(err, errlen, "cannot copy model '%s' into '%s': %s", id, dest,
                             err_str(rc));
                    goto out;
                }
            }
            if ((rc = write_model_json(dest, id, sp.meta)) < 0) {
                snprintf(err, errlen, "cannot write '%s/model.json': %s", dest, err_str(rc));
                goto out;
            }
            free(m->dir);
            m->dir = xstrdup(dest);
            json_object_set_new(m->info, "artefacts", json_string(dest));
        }
    }
    add_meta_aliases(reg, NULL, id, sp.meta);
    registry_insert(reg, m);
    m = NULL;
    log_info("model", "registered model '%s' from %s", id, src);
out:
    model_unref(m);
    free(wpath);
    free(tpath);
    free(onnx);
    free(txt);
    free(dest);
    json_decref(sp.names);
    json_decref(sp.env);
    json_decref(sp.cfg);
    json_decref(sp.meta);
    json_decref(sp.mcfg);
    json_decref(sp.mtype);
    return rc;
}

int model_registry_register_dir(struct model_registry *reg, const char *model_id,
                                const char *src_dir, char *err, size_t errlen)
{
    return register_folder(reg, model_id, src_dir, true, err, errlen);
}

int model_artefacts_read_dir(const char *dir, uint64_t max_bytes, char **onnx, size_t *len,
                             json_t **meta, char *err, size_t errlen)
{
    char *wpath = xasprintf("%s/weights.onnx", dir), *tpath = NULL, *txt = NULL;
    json_t *mj = NULL, *names = NULL, *env = NULL, *cfg = NULL, *mcfg = NULL, *mtype = NULL;
    int rc;

    *onnx = NULL;
    *meta = NULL;
    if (is_ocr_folder(dir) || is_sam_folder(dir) || is_clip_folder(dir)) {
        free(wpath);
        return bundle_read_dir(dir, max_bytes ? max_bytes : 1ull << 30, onnx, len, meta, err, errlen);
    }
    rc = file_read_all(wpath, (size_t)(max_bytes ? max_bytes : 1ull << 30), onnx, len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read '%s': %s", wpath,
                 rc == ERR_LIMIT ? "file too large" : err_str(rc));
        goto out;
    }
    tpath = xasprintf("%s/class_names.txt", dir);
    rc = file_read_all(tpath, MODEL_MAX_CONFIG, &txt, NULL);
    if (rc == 0) {
        if ((rc = names_from_text(txt, &names, err, errlen)) < 0)
            goto out;
    } else if (rc != -ENOENT) {
        snprintf(err, errlen, "cannot read '%s': %s", tpath, err_str(rc));
        goto out;
    }
    if ((rc = read_json_file(dir, "environment.json", &env, err, errlen)) < 0 ||
        (rc = read_json_file(dir, "inference_config.json", &cfg, err, errlen)) < 0 ||
        (rc = read_json_file(dir, "model.json", &mj, err, errlen)) < 0 ||
        (rc = read_json_file(dir, "model_config.json", &mcfg, err, errlen)) < 0 ||
        (rc = read_json_file(dir, "model_type.json", &mtype, err, errlen)) < 0)
        goto out;
    /* model.json gives task, keypoint_names, aliases; the rest comes from
     * the files, as register_dir reads them */
    if (!mj)
        mj = json_object();
    json_object_del(mj, "model_id");
    json_object_del(mj, "class_names");
    json_object_del(mj, "environment");
    json_object_del(mj, "inference_config");
    json_object_del(mj, "model_config");
    json_object_del(mj, "model_type");
    if (mcfg)
        json_object_set(mj, "model_config", mcfg);
    if (mtype)
        json_object_set(mj, "model_type", mtype);
    if (names)
        json_object_set(mj, "class_names", names);
    if (env)
        json_object_set(mj, "environment", env);
    if (cfg)
        json_object_set(mj, "inference_config", cfg);
    *meta = mj;
    mj = NULL;
    rc = 0;
out:
    if (rc < 0) {
        free(*onnx);
        *onnx = NULL;
    }
    free(wpath);
    free(tpath);
    free(txt);
    json_decref(mj);
    json_decref(names);
    json_decref(env);
    json_decref(cfg);
    json_decref(mcfg);
    json_decref(mtype);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int model_registry_load_dir(struct model_registry *reg, const char *dir, int *n_bad, char *err,
                            size_t errlen)
{
    DIR *dh = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int loaded = 0, bad = 0;
    struct dirent *de;

    if (!dh) {
        int e = -errno;
        snprintf(err, errlen, "cannot open models folder '%s': %s", dir, err_str(e));
        return e;
    }
    while ((de = readdir(dh)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xrealloc(names, cap * sizeof(char *));
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(dh);
    if (n)
        qsort(names, n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *sub = xasprintf("%s/%s", dir, names[i]);
        char *w = xasprintf("%s/weights.onnx", sub);
        struct stat st;
        if ((stat(w, &st) == 0 && S_ISREG(st.st_mode)) || is_ocr_folder(sub) || is_sam_folder(sub) ||
            is_clip_folder(sub)) {
            json_t *mj = NULL;
            char e2[512];
            char *id = NULL;
            if (read_json_file(sub, "model.json", &mj, e2, sizeof(e2)) == 0 && mj &&
                json_is_string(json_object_get(mj, "model_id")))
                id = xstrdup(json_string_value(json_object_get(mj, "model_id")));
            else
                id = dirname_to_id(names[i]);
            json_decref(mj);
            if (register_folder(reg, id, sub, false, e2, sizeof(e2)) == 0)
                loaded++;
            else {
                bad++;
                log_warn("model", "skipping model in %s: %s", sub, e2);
            }
            free(id);
        }
        free(w);
        free(sub);
        free(names[i]);
    }
    free(names);
    json_t *al = NULL;
    char e3[256];
    if (read_json_file(dir, "aliases.json", &al, e3, sizeof(e3)) == 0 && al) {
        const char *k;
        json_t *v;
        json_object_foreach(al, k, v)
        {
            if (json_is_string(v))
                model_registry_alias_set(reg, k, json_string_value(v));
        }
    }
    json_decref(al);
    if (n_bad)
        *n_bad = bad;
    return loaded;
}

/* ---- registration from bytes ----------------------------------------------------- */

/* Check the id and the metadata of a registration from bytes and fill sp
 * (its json members are new references: spec_release). */
static int spec_from_meta(struct spec *sp, const char *id, const void *onnx, size_t onnx_len,
                          const json_t *meta, char *err, size_t errlen)
{
    memset(sp, 0, sizeof(*sp));
    sp->id = id;
    sp->onnx = onnx;
    sp->onnx_len = onnx_len;
    if (!model_id_valid(id)) {
        snprintf(err, errlen, "invalid model id '%s' (letters, digits, '-', '_', '.', at most "
                 "one '/')", id ? id : "");
        return ERR_INVALID;
    }
    if (meta && !json_is_object(meta)) {
        snprintf(err, errlen, "model metadata must be a JSON object");
        return ERR_INVALID;
    }
    json_t *names = meta ? json_object_get(meta, "class_names") : NULL;
    if (json_is_string(names)) {
        /* class_names.txt as it is: one name a line */
        int rc = names_from_text(json_string_value(names), &sp->names, err, errlen);
        if (rc < 0)
            return rc;
    } else if (names && !json_is_null(names)) {
        size_t i;
        json_t *v;
        bool ok = json_is_array(names) && json_array_size(names) <= MODEL_MAX_CLASSES;
        json_array_foreach(names, i, v) ok = ok && json_is_string(v);
        if (!ok) {
            snprintf(err, errlen, "class_names must be an array of at most %d strings, or the "
                     "text of class_names.txt", MODEL_MAX_CLASSES);
            return ERR_INVALID;
        }
        sp->names = json_incref(names);
    }
    sp->meta = meta ? json_incref((json_t *)meta) : NULL;
    static const char *const keys[] = {"environment", "inference_config", "model_config",
                                       "model_type"};
    json_t **dst[] = {&sp->env, &sp->cfg, &sp->mcfg, &sp->mtype};
    for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
        json_t *v = meta ? json_object_get(meta, keys[k]) : NULL;
        if (!v || json_is_null(v))
            continue;
        if (json_is_object(v)) {
            *dst[k] = json_incref(v);
            continue;
        }
        if (json_is_string(v)) {
            /* the file's text as it is */
            json_t *o = json_loads(json_string_value(v), 0, NULL);
            if (json_is_object(o)) {
                *dst[k] = o;
                continue;
            }
            json_decref(o);
            if (k == 3 && json_string_length(v) > 0 && json_string_length(v) <= 100) {
                /* model_type given as the bare name */
                *dst[k] = json_pack("{s:O}", "model_type", v);
                continue;
            }
        }
        snprintf(err, errlen, "metadata '%s' must be a JSON object (the content of %s.json) or "
                 "that file's text", keys[k], keys[k]);
        return ERR_INVALID;
    }
    return 0;
}

static void spec_release(struct spec *sp)
{
    json_decref(sp->names);
    json_decref(sp->env);
    json_decref(sp->cfg);
    json_decref(sp->meta);
    json_decref(sp->mcfg);
    json_decref(sp->mtype);
}

int model_registry_prepare_bytes(struct model_registry *reg, const char *id, const void *onnx,
                                 size_t onnx_len, const json_t *meta, struct model **out,
                                 char *err, size_t errlen)
{
    struct spec sp;
    if (model_bundle_is(onnx, onnx_len))
        return prepare_bundle(reg, id, onnx, onnx_len, meta, out, err, errlen);
    int rc = spec_from_meta(&sp, id, onnx, onnx_len, meta, err, errlen);
    if (rc == 0)
        rc = model_build(reg, &sp, out, err, errlen);
    spec_release(&sp);
    return rc;
}

void model_registry_add(struct model_registry *reg, struct model *m, const char *workspace, const char *tag)
{
    /* m is not visible to other threads before registry_insert */
    free(m->tag);
    m->tag = tag ? xstrdup(tag) : NULL;
    free(m->ws);
    m->ws = workspace ? xstrdup(workspace) : NULL;
    model_ref(m);
    add_meta_aliases(reg, m->ws, m->id, m->info);
    registry_insert(reg, m);
    log_info("model", "registered model '%s'%s%s%s%s", m->id, workspace ? " workspace=" : "",
             workspace ? workspace : "", tag ? " tag=" : "", tag ? tag : "");
}

int model_registry_remove(struct model_registry *reg, const char *workspace, const char *id, const char *tag)
{
    struct model *gone = NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n_models; i++) {
        struct model *m = reg->models[i];
        if (strcmp(m->id, id) != 0 || !ws_eq(m->ws, workspace))
            continue;
        if (tag && (!m->tag || strcmp(m->tag, tag) != 0))
            break;
        gone = m;
        reg->models[i] = reg->models[--reg->n_models];
        break;
    }
    pthread_mutex_unlock(&reg->lock);
    if (!gone)
        return ERR_NOTFOUND;
    log_info("model", "removed model '%s'", id);
    model_unref(gone); /* the registry's reference; lookups keep theirs */
    return 0;
}

json_t *model_registry_tags(struct model_registry *reg)
{
    json_t *o = json_object();
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n_models; i++) {
        const struct model *m = reg->models[i];
        if (m->tag)
            json_object_set_new(o, m->tag, json_pack("{s:s,s:s?}", "modelId", m->id, "workspace", m->ws));
    }
    pthread_mutex_unlock(&reg->lock);
    return o;
}

const char *model_tag(const struct model *m)
{
    return m->tag;
}

int model_registry_register_bytes(struct model_registry *reg, const char *id, const void *onnx,
                                  size_t onnx_len, const json_t *meta, char *err, size_t errlen)
{
    struct spec sp;
    struct model *m = NULL;
    char *dest = NULL, *dn = NULL;
    int rc;

    if (model_bundle_is(onnx, onnx_len)) {
        /* a multi-file model: kept in memory (a models_dir takes folders:
         * register_dir) */
        if (reg->opts.models_dir) {
            snprintf(err, errlen, "model '%s': a multi-file model registers into a models folder as a "
                     "folder (model_registry_register_dir)", id ? id : "");
            return ERR_UNSUPPORTED;
        }
        if ((rc = prepare_bundle(reg, id, onnx, onnx_len, meta, &m, err, errlen)) < 0)
            return rc;
        model_registry_add(reg, m, NULL, NULL);
        model_unref(m);
        return 0;
    }
    if ((rc = spec_from_meta(&sp, id, onnx, onnx_len, meta, err, errlen)) < 0)
        goto out;
    if (reg->opts.models_dir) {
        dn = model_id_dirname(id);
        dest = xasprintf("%s/%s", reg->opts.models_dir, dn);
        sp.dir = dest;
    }
    if ((rc = model_build(reg, &sp, &m, err, errlen)) < 0)
        goto out;
    if (dest) {
        char *p = NULL;
        if ((rc = mkdir_p(dest, 0755)) < 0)
            goto io;
        p = xasprintf("%s/weights.onnx", dest);
        rc = file_write_atomic(p, onnx, onnx_len);
        free(p);
        if (rc < 0)
            goto io;
        if (sp.names) {
            struct buf b = BUF_INIT;
            size_t i;
            json_t *v;
            json_array_foreach(sp.names, i, v) buf_printf(&b, "%s\n", json_string_value(v));
            p = xasprintf("%s/class_names.txt", dest);
            rc = file_write_atomic(p, b.data ? b.data : "", b.len);
            free(p);
            buf_release(&b);
            if (rc < 0)
                goto io;
        }
        json_t *objs[4] = {sp.env, sp.cfg, sp.mcfg, sp.mtype};
        const char *fn[4] = {"environment.json", "inference_config.json", "model_config.json",
                             "model_type.json"};
        for (int k = 0; k < 4; k++) {
            if (!objs[k])
                continue;
            char *s = json_dumps(objs[k], JSON_INDENT(1) | JSON_REAL_PRECISION(9));
            p = xasprintf("%s/%s", dest, fn[k]);
            rc = file_write_atomic(p, s, strlen(s));
            free(p);
            free(s);
            if (rc < 0)
                goto io;
        }
        if ((rc = write_model_json(dest, id, meta)) < 0)
            goto io;
    }
    add_meta_aliases(reg, NULL, id, meta);
    registry_insert(reg, m);
    m = NULL;
    log_info("model", "registered model '%s' from upload (%zu bytes)", id, onnx_len);
    goto out;
io:
    snprintf(err, errlen, "cannot store model '%s' in '%s': %s", id, dest, err_str(rc));
out:
    model_unref(m);
    free(dest);
    free(dn);
    spec_release(&sp);
    return rc;
}

/* ---- aliases and lookup ------------------------------------------------------------ */

static int alias_set(struct model_registry *reg, const char *ws, const char *alias, const char *target)
{
    if (!model_id_valid(alias) || !model_id_valid(target))
        return ERR_INVALID;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n_aliases; i++)
        if (!strcmp(reg->aliases[i].name, alias) && ws_eq(reg->aliases[i].ws, ws)) {
            free(reg->aliases[i].target);
            reg->aliases[i].target = xstrdup(target);
            pthread_mutex_unlock(&reg->lock);
            return 0;
        }
    if (reg->n_aliases == reg->cap_aliases) {
        reg->cap_aliases = reg->cap_aliases ? reg->cap_aliases * 2 : 8;
        reg->aliases = xrealloc(reg->aliases, reg->cap_aliases * sizeof(*reg->aliases));
    }
    reg->aliases[reg->n_aliases].ws = ws ? xstrdup(ws) : NULL;
    reg->aliases[reg->n_aliases].name = xstrdup(alias);
    reg->aliases[reg->n_aliases].target = xstrdup(target);
    reg->n_aliases++;
    pthread_mutex_unlock(&reg->lock);
    return 0;
}

int model_registry_alias_set(struct model_registry *reg, const char *alias, const char *target)
{
    return alias_set(reg, NULL, alias, target);
}

/* The model of exactly this scope and id.  Caller holds the lock. */
static struct model *find_locked(struct model_registry *reg, const char *ws, const char *id)
{
    for (size_t i = 0; i < reg->n_models; i++)
        if (!strcmp(reg->models[i]->id, id) && ws_eq(reg->models[i]->ws, ws))
            return reg->models[i];
    return NULL;
}

/* The target of alias name in scope ws (NULL: the operator's aliases,
 * then the built-in ones); NULL when name is no alias there.  Caller holds
 * the lock. */
static const char *alias_locked(struct model_registry *reg, const char *ws, const char *name)
{
    for (size_t i = 0; i < reg->n_aliases; i++)
        if (!strcmp(reg->aliases[i].name, name) && ws_eq(reg->aliases[i].ws, ws))
            return reg->aliases[i].target;
    for (size_t i = 0; !ws && i < ARRAY_LEN(builtin_aliases); i++)
        if (!strcmp(builtin_aliases[i][0], name))
            return builtin_aliases[i][1];
    return NULL;
}

int model_registry_get(struct model_registry *reg, const char *workspace, const char *id, struct model **out,
                       char *err, size_t errlen)
{
    const char *target = NULL;
    struct model *m = NULL;
    int rc = 0;

    if (!id || !*id) {
        snprintf(err, errlen, "no model id given");
        return ERR_INVALID;
    }
    /* each name, then each alias target (4 hops at most): the workspace's
     * model, its alias, the operator's model, the operator's or built-in
     * alias */
    pthread_mutex_lock(&reg->lock);
    for (int hop = 0; hop < 5; hop++) {
        const char *cur = target ? target : id, *t = NULL;
        if (workspace && ((m = find_locked(reg, workspace, cur)) || (t = alias_locked(reg, workspace, cur))))
            ;
        else if (!(m = find_locked(reg, NULL, cur)))
            t = alias_locked(reg, NULL, cur);
        if (m || !t)
            break;
        target = t;
    }
    if (m)
        model_ref(m);
    else if (target)
        snprintf(err, errlen, "unknown model '%s': it is an alias of '%s', which is not "
                 "registered (register the model first)", id, target);
    else
        snprintf(err, errlen, "unknown model '%s' (not registered)", id);
    pthread_mutex_unlock(&reg->lock);
    if (!m)
        rc = ERR_NOTFOUND;
    else
        *out = m;
    return rc;
}

json_t *model_registry_list(struct model_registry *reg)
{
    json_t *a = json_array();
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n_models; i++)
        json_array_append_new(a, json_pack("{s:s,s:s?}", "modelId", reg->models[i]->id, "workspace",
                                           reg->models[i]->ws));
    pthread_mutex_unlock(&reg->lock);
    return a;
}
