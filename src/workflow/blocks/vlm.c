/*
 * blocks/vlm.c — the VLM output parsers vlm_as_classifier v1/v2 and
 * vlm_as_detector v1/v2 (roboflow/inference core_steps/formatters/
 * vlm_as_classifier and vlm_as_detector with their *_detection_parsing.py
 * helpers, read, not copied).  They parse text given as input (a VLM's
 * answer): nothing here calls a model, so they run offline.
 *
 * The text: the first Markdown block "```json ... ```" (case-insensitive
 * "json", shortest match, as re.findall of ```json([\s\S]*?)```), else the
 * whole text, parsed as JSON.  Unparsable text, or content of the wrong
 * shape, gives error_status true, predictions None and a fresh
 * inference_id (Roboflow's try/except around each parser); the step itself
 * does not fail.
 *
 * vlm_as_classifier: {"class_name", "confidence"} is a multi-class result
 * (the top class first with class_id -1 when it is not among `classes`,
 * then every class in order with its confidence or 0.0), {"predicted_classes":
 * [{"class", "confidence"}]} a multi-label one (unknown classes appended with
 * class_id -1, the highest confidence of repeated classes); confidences
 * clamped to [0, 1] (float() of the value: numbers, booleans and numeric
 * strings).
 *
 * vlm_as_detector: per (model_type, task_type) as Roboflow's
 * REGISTERED_PARSERS:
 * - v1 google-gemini / anthropic-claude and v2 google-gemini: a list or
 *   {"detections": [...]} of entries with "box_2d" [y_min, x_min, y_max,
 *   x_max] on a 0..1000 scale, or normalised x_min/y_min/x_max/y_max; the
 *   class from "class_name", "label" or "class" (else "unknown");
 * - v2 anthropic-claude: {"detections": [...]} with normalised
 *   coordinates and "class_name";
 * - v2 openai: {"detections": [...]} normalised as claude, or a list (or
 *   detections whose first entry has "box_2d") of [x_min, y_min, x_max,
 *   y_max] pixels of the upload (the image scaled so its longest side is at
 *   most 2048), clamped to it and scaled back;
 * - florence-2 (every task): supervision's from_florence_2 — "bboxes" (and
 *   "labels", or "bboxes_labels" for open vocabulary, or "quad_boxes" for
 *   OCR) in pixels; class ids 0, the MD5 4-digit id of the label (<OD>,
 *   phrase grounding), the index in `classes` (open vocabulary), class
 *   "roi" for region proposals; confidence 1.0.
 * Boxes are rounded half-to-even (numpy's round) except Florence-2's
 * (float32 as given); confidence defaults to 1.0;
 * - v2 spacexai (Grok): a list or {"detections": [...]} of "box_2d"
 *   [x_min, y_min, x_max, y_max] in percent (0..100, clamped; float() of
 *   each value), the gemini label keys and a confidence; any malformed
 *   entry is an error;
 * - v2 qwen: a list or {"detections": [...]} of "box_2d" (else "bbox_2d")
 *   [x_min, y_min, x_max, y_max] on 0..1000 (clamped), the label from
 *   "label", "description", "class_name" or "class"; entries without four
 *   plain numbers are skipped; confidence 1.0;
 * - v2 muse: a list, {"detections": [...]} or one bare entry with named
 *   x_min/y_min/x_max/y_max on 0..1000 (clamped; entries without four
 *   finite plain numbers skipped), `label or "unknown"`, confidence 1.0;
 *   text that is not JSON is scanned for loose top-level {...} objects
 *   carrying the four fields (Roboflow's extract_flat_object_entries).
 * Departures: labels that are floats, lists or objects (Roboflow prints
 * them with str()) give error_status; NaN / Infinity literals, which
 * Python's json accepts, are not JSON to jansson (error_status).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define VLM_MAX_TEXT (4u * 1024u * 1024u)
#define VLM_MAX_DETS 100000
#define OPENAI_MAX_EDGE 2048

/* Roboflow's string2json: the first ```json block, else the whole text. */
static json_t *vlm_parse(const char *text)
{
    size_t len = strlen(text);
    for (const char *p = text; (p = strstr(p, "```")) != NULL; p++) {
        if (strncasecmp(p + 3, "json", 4) != 0)
            continue;
        const char *body = p + 7, *end = strstr(body, "```");
        if (!end)
            break;
        return json_loadb(body, (size_t)(end - body), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    }
    return json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

/* Python float(v) for a confidence; false when float() would raise. */
static bool py_float(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v) ? 1.0 : 0.0;
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        if (!*s)
            return false;
        *out = strtod(s, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
            end++;
        return *end == '\0' && end != s;
    }
    return false;
}

static bool scale_conf(const json_t *v, double *out)
{
    double d;
    if (!py_float(v, &d))
        return false;
    if (isnan(d))
        d = 0.0; /* float('nan') of a string: Python keeps nan, JSON cannot carry it */
    *out = d < 0.0 ? 0.0 : d > 1.0 ? 1.0 : d;
    return true;
}

/* {name: index} of classes, as Roboflow's create_classes_index (a repeated
 * name keeps its first position and its last index).  NULL when an item is
 * not a string. */
static json_t *classes_index(const json_t *classes)
{
    json_t *idx = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(classes, i, c) {
        if (!json_is_string(c)) {
            json_decref(idx);
            return NULL;
        }
        json_object_set_new(idx, json_string_value(c), json_integer((json_int_t)i));
    }
    return idx;
}

static void set_outputs(struct wf_call *c, size_t i, bool error, struct wf_value *pred, const char *iid)
{
    wf_out_set(c, i, "error_status", wf_value_json(json_boolean(error)));
    wf_out_set(c, i, "predictions", pred ? pred : wf_value_null());
    wf_out_set(c, i, "inference_id", wf_value_json(json_string(iid)));
}

/* ---- vlm_as_classifier ---------------------------------------------------------- */

static json_t *multi_class(const struct wf_image *im, const json_t *res, const json_t *classes,
                           const char *iid)
{
    const char *top = json_string_value(json_object_get(res, "class_name"));
    double conf;
    if (!top || !scale_conf(json_object_get(res, "confidence"), &conf))
        return NULL;
    json_t *idx = classes_index(classes);
    if (!idx)
        return NULL;
    json_t *preds = json_array();
    if (!json_object_get(idx, top))
        json_array_append_new(preds, json_pack("{s:s,s:i,s:f}", "class", top, "class_id", -1,
                                               "confidence", conf));
    const char *name;
    json_t *id;
    json_object_foreach(idx, name, id)
        json_array_append_new(preds, json_pack("{s:s,s:O,s:f}", "class", name, "class_id", id,
                                               "confidence", strcmp(name, top) ? 0.0 : conf));
    json_decref(idx);
    return json_pack("{s:{s:i,s:i},s:o,s:s,s:f,s:s,s:s}", "image", "width", im->img->w, "height",
                     im->img->h, "predictions", preds, "top", top, "confidence", conf,
                     "inference_id", iid, "parent_id", im->parent_id ? im->parent_id : "");
}

static json_t *multi_label(const struct wf_image *im, const json_t *res, const json_t *classes,
                           const char *iid)
{
    const json_t *list = json_object_get(res, "predicted_classes");
    if (!json_is_array(list))
        return NULL;
    json_t *idx = classes_index(classes);
    if (!idx)
        return NULL;
    json_t *confs = json_object(); /* predicted class -> confidence, first-seen order */
    size_t k;
    json_t *p;
    json_array_foreach(list, k, p) {
        const char *cls = json_string_value(json_object_get(p, "class"));
        double conf;
        if (!cls || !scale_conf(json_object_get(p, "confidence"), &conf)) {
            json_decref(idx);
            json_decref(confs);
            return NULL;
        }
        if (!json_object_get(idx, cls))
            json_object_set_new(idx, cls, json_integer(-1));
        json_t *old = json_object_get(confs, cls);
        if (!old || json_real_value(old) < conf)
            json_object_set_new(confs, cls, json_real(conf));
    }
    json_t *preds = json_object(), *predicted = json_array();
    const char *name;
    json_t *v;
    json_object_foreach(idx, name, v) {
        json_t *cf = json_object_get(confs, name);
        json_object_set_new(preds, name, json_pack("{s:f,s:O}", "confidence",
                                                   cf ? json_real_value(cf) : 0.0, "class_id", v));
    }
    json_object_foreach(confs, name, v)
        json_array_append_new(predicted, json_string(name));
    json_decref(idx);
    json_decref(confs);
    return json_pack("{s:{s:i,s:i},s:o,s:o,s:s,s:s}", "image", "width", im->img->w, "height",
                     im->img->h, "predictions", preds, "predicted_classes", predicted,
                     "inference_id", iid, "parent_id", im->parent_id ? im->parent_id : "");
}

static int classifier_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *text = wf_arg_str(c, i, "vlm_output");
        const json_t *classes = wf_arg_json(c, i, "classes");
        char iid[37];
        uuid4(iid);
        if (!im || !text)
            return wf_call_fail(c, "field 'vlm_output': expected a string");
        if (!json_is_array(classes))
            return wf_call_fail(c, "field 'classes': expected a list of class names");
        if (strlen(text) > VLM_MAX_TEXT)
            return wf_call_fail(c, "field 'vlm_output': text over %u bytes", VLM_MAX_TEXT);
        json_t *res = vlm_parse(text), *out = NULL;
        if (json_is_object(res)) {
            if (json_object_get(res, "class_name") && json_object_get(res, "confidence"))
                out = multi_class(im, res, classes, iid);
            else if (json_object_get(res, "predicted_classes"))
                out = multi_label(im, res, classes, iid);
        }
        json_decref(res);
        set_outputs(c, i, out == NULL, out ? wf_value_json(out) : NULL, iid);
    }
    return 0;
}

/* ---- vlm_as_detector -------------------------------------------------------------- */

enum parser { P_GEMINI, P_LLM, P_OPENAI, P_FLORENCE, P_SPACEXAI, P_QWEN, P_MUSE };

/* Roboflow's get_4digit_from_md5: int(md5(name).hexdigest()[:9], 16) % 10000. */
static int md5_4digit(const char *s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(s, strlen(s), md, &n, EVP_md5(), NULL) || n < 5)
        return -1;
    /* the first 9 hex digits: 4 bytes and the high nibble of the fifth */
    uint64_t v = ((uint64_t)md[0] << 28) | ((uint64_t)md[1] << 20) | ((uint64_t)md[2] << 12) |
                 ((uint64_t)md[3] << 4) | ((uint64_t)md[4] >> 4);
    return (int)(v % 10000u);
}

static const char *entry_label(const json_t *e)
{
    static const char *const keys[] = {"class_name", "label", "class"};
    for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
        const json_t *v = json_object_get(e, keys[k]);
        if (v && !json_is_null(v))
            return json_is_string(v) ? json_string_value(v) : NULL; /* str() of others: not served */
    }
    return "unknown";
}

static bool num_at(const json_t *arr, size_t k, double *out)
{
    const json_t *v = json_array_get(arr, k);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

static bool num_key(const json_t *o, const char *k, double *out)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

/* Python round(x) of numpy: half to even. */
static float round_even(double x)
{
    return (float)nearbyint(x);
}

static void openai_upload_size(int w, int h, double *uw, double *uh)
{
    if ((w > h ? w : h) <= OPENAI_MAX_EDGE) {
        *uw = w, *uh = h;
    } else if (w >= h) {
        *uw = OPENAI_MAX_EDGE;
        double s = nearbyint((double)h * OPENAI_MAX_EDGE / w);
        *uh = s < 1 ? 1 : s;
    } else {
        *uh = OPENAI_MAX_EDGE;
        double s = nearbyint((double)w * OPENAI_MAX_EDGE / h);
        *uw = s < 1 ? 1 : s;
    }
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* One entry of the LLM formats into xyxy pixels; false when malformed. */
static bool entry_box(enum parser p, const json_t *e, bool openai_abs, int w, int h, double b[4])
{
    const json_t *box = json_object_get(e, "box_2d");
    if (!json_is_object(e))
        return false;
    if (openai_abs) {
        double uw, uh, v[4];
        if (json_array_size(box) != 4)
            return false;
        for (int k = 0; k < 4; k++)
            if (!num_at(box, (size_t)k, &v[k]))
                return false;
        openai_upload_size(w, h, &uw, &uh);
        b[0] = clampd(v[0], 0, uw) * (w / uw);
        b[1] = clampd(v[1], 0, uh) * (h / uh);
        b[2] = clampd(v[2], 0, uw) * (w / uw);
        b[3] = clampd(v[3], 0, uh) * (h / uh);
        return true;
    }
    if (p == P_GEMINI && box) {
        double v[4];
        if (json_array_size(box) != 4)
            return false;
        for (int k = 0; k < 4; k++)
            if (!num_at(box, (size_t)k, &v[k]))
                return false;
        b[0] = v[1] / 1000.0 * w, b[1] = v[0] / 1000.0 * h;
        b[2] = v[3] / 1000.0 * w, b[3] = v[2] / 1000.0 * h;
        return true;
    }
    double x0, y0, x1, y1;
    if (!num_key(e, "x_min", &x0) || !num_key(e, "y_min", &y0) || !num_key(e, "x_max", &x1) ||
        !num_key(e, "y_max", &y1))
        return false;
    b[0] = x0 * w, b[1] = y0 * h, b[2] = x1 * w, b[3] = y1 * h;
    return true;
}

static struct wf_det *new_det(struct wf_dets *ds, const struct wf_image *im, const char *iid,
                              const double b[4], bool round, const char *cls, int cid, double conf)
{
    struct wf_det *d = wf_dets_push_new(ds);
    d->x1 = round ? round_even(b[0]) : (float)b[0];
    d->y1 = round ? round_even(b[1]) : (float)b[1];
    d->x2 = round ? round_even(b[2]) : (float)b[2];
    d->y2 = round ? round_even(b[3]) : (float)b[3];
    d->confidence = (float)conf;
    d->class_id = cid;
    wf_det_set_str(&d->class_name, cls);
    wf_det_set_str(&d->inference_id, iid);
    wf_det_set_str(&d->prediction_type, "object-detection");
    wf_det_attach_image(d, im);
    return d;
}

/* Gemini / Claude / OpenAI formats.  NULL when malformed (error_status). */
static struct wf_dets *parse_llm(enum parser p, const json_t *data, const json_t *classes,
                                 const struct wf_image *im, const char *iid)
{
    const json_t *list = NULL;
    bool openai_abs = false;
    if (json_is_array(data) && p != P_LLM)
        list = data, openai_abs = p == P_OPENAI;
    else if (json_is_object(data))
        list = json_object_get(data, "detections");
    if (!json_is_array(list))
        return NULL;
    if (p == P_OPENAI && list != data) {
        const json_t *first = json_array_get(list, 0);
        openai_abs = json_is_object(first) && json_object_get(first, "box_2d");
    }
    if (json_array_size(list) > VLM_MAX_DETS)
        return NULL;
    json_t *idx = classes_index(classes);
    if (!idx)
        return NULL;
    struct wf_dets *ds = wf_dets_new();
    size_t k;
    json_t *e;
    json_array_foreach(list, k, e) {
        double b[4], conf = 1.0;
        const char *cls = p == P_LLM ? json_string_value(json_object_get(e, "class_name"))
                                     : entry_label(e);
        const json_t *cf = json_object_get(e, "confidence");
        if (!cls || !entry_box(p, e, openai_abs, im->img->w, im->img->h, b) ||
            (cf && !scale_conf(cf, &conf))) {
            wf_dets_free(ds);
            json_decref(idx);
            return NULL;
        }
        const json_t *id = json_object_get(idx, cls);
        new_det(ds, im, iid, b, true, cls, id ? (int)json_integer_value(id) : -1, conf);
    }
    json_decref(idx);
    return ds;
}

static struct wf_dets *parse_florence(const char *task, const json_t *data, const json_t *classes,
                                      const struct wf_image *im, const char *iid)
{
    bool quad = !strcmp(task, "ocr-with-text-detection");
    bool proposal = !strcmp(task, "region-proposal");
    bool open_vocab = !strcmp(task, "open-vocabulary-object-detection");
    bool md5_ids = !strcmp(task, "object-detection") || !strcmp(task, "phrase-grounded-object-detection");
    const json_t *boxes = json_object_get(data, quad ? "quad_boxes" : "bboxes");
    const json_t *labels = proposal ? NULL
                           : json_object_get(data, open_vocab ? "bboxes_labels" : "labels");
    if (!json_is_object(data) || !json_is_array(boxes) || (!proposal && !json_is_array(labels)))
        return NULL;
    size_t n = json_array_size(boxes);
    if (n > VLM_MAX_DETS || (labels && json_array_size(labels) != n))
        return NULL;
    json_t *idx = NULL;
    if (open_vocab && !(idx = classes_index(classes)))
        return NULL;
    struct wf_dets *ds = wf_dets_new();
    for (size_t k = 0; k < n; k++) {
        const json_t *bx = json_array_get(boxes, k);
        double b[4], v[8];
        size_t need = quad ? 8 : 4;
        bool ok = json_array_size(bx) == need;
        for (size_t j = 0; ok && j < need; j++)
            ok = num_at(bx, j, &v[j]);
        const char *cls = proposal ? "roi" : json_string_value(json_array_get(labels, k));
        if (!ok || !cls) {
            wf_dets_free(ds);
            json_decref(idx);
            return NULL;
        }
        if (quad) { /* polygon_to_xyxy: min / max of the four corners */
            b[0] = b[2] = v[0], b[1] = b[3] = v[1];
            for (int j = 1; j < 4; j++) {
                b[0] = fmin(b[0], v[2 * j]), b[2] = fmax(b[2], v[2 * j]);
                b[1] = fmin(b[1], v[2 * j + 1]), b[3] = fmax(b[3], v[2 * j + 1]);
            }
        } else {
            memcpy(b, v, sizeof b);
        }
        int cid = 0;
        if (md5_ids)
            cid = md5_4digit(cls);
        else if (open_vocab) {
            const json_t *id = json_object_get(idx, cls);
            cid = id ? (int)json_integer_value(id) : -1;
        }
        new_det(ds, im, iid, b, false, cls, cid, 1.0);
    }
    json_decref(idx);
    return ds;
}

/* ---- v2 spacexai / qwen / muse ------------------------------------------------------- */

/* Python str() of a label value: strings, integers and booleans.  Other
 * types (floats, lists, objects) give NULL: error_status (Roboflow would
 * print them with str()). */
static const char *py_str(const json_t *v, char *buf, size_t n)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "True" : "False";
    return NULL;
}

/* Python truthiness of a JSON value (muse's `label or "unknown"`). */
static bool py_truthy(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0.0;
    case JSON_TRUE: return true;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_OBJECT: return json_object_size(v) > 0;
    default: return false;
    }
}

/* The entries of a qwen / spacexai / muse answer, as each parser's extract_*:
 * a list, or {"detections": [...]}; muse also takes one bare entry carrying
 * the four named fields.  *empty is set for spacexai's non-list "detections"
 * that Python iterates as empty ("" or {}).  NULL when the shape is wrong. */
static const json_t *new_entries(enum parser p, const json_t *data, json_t **own)
{
    *own = NULL;
    if (json_is_array(data))
        return data;
    const json_t *d = json_object_get(data, "detections");
    if (json_is_array(d))
        return d;
    if (p == P_SPACEXAI && d) {
        /* len() of a str / dict that Python then iterates: only empty ones succeed */
        if ((json_is_string(d) && json_string_length(d) == 0) || (json_is_object(d) && json_object_size(d) == 0))
            return *own = json_array();
        return NULL;
    }
    if (p == P_MUSE && json_is_object(data) && json_object_get(data, "x_min") && json_object_get(data, "y_min") &&
        json_object_get(data, "x_max") && json_object_get(data, "y_max")) {
        *own = json_array();
        json_array_append(*own, (json_t *)data);
        return *own;
    }
    return NULL;
}

/* Muse's get_muse_detection_box: four plain finite numbers named x_min..y_max. */
static bool muse_box(const json_t *e, double v[4])
{
    static const char *const keys[] = {"x_min", "y_min", "x_max", "y_max"};
    for (int k = 0; k < 4; k++) {
        const json_t *x = json_object_get(e, keys[k]);
        if (!json_is_number(x) || !isfinite(json_number_value(x)))
            return false;
        v[k] = json_number_value(x);
    }
    return true;
}

/* Qwen's get_qwen_detection_box: "box_2d", else "bbox_2d", a list of four
 * plain numbers [x_min, y_min, x_max, y_max]. */
static bool qwen_box(const json_t *e, double v[4])
{
    static const char *const keys[] = {"box_2d", "bbox_2d"};
    for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
        const json_t *b = json_object_get(e, keys[k]);
        bool ok = json_is_array(b) && json_array_size(b) == 4;
        for (size_t j = 0; ok && j < 4; j++)
            ok = num_at(b, j, &v[j]);
        if (ok)
            return true;
    }
    return false;
}

/* SpaceXAI Grok, Qwen-VL and Meta Muse (Roboflow's spacexai_/qwen_/
 * muse_detection_parsing.py).  Boxes [x_min, y_min, x_max, y_max] on a
 * 0..100 (spacexai) or 0..1000 (qwen, muse) scale, clamped to it, scaled to
 * the image and rounded half to even.  spacexai fails on any malformed entry
 * and reads the gemini label keys and a confidence; qwen and muse skip
 * entries without a well-formed box, confidence 1.0. */
static struct wf_dets *parse_new(enum parser p, const json_t *data, const json_t *classes,
                                 const struct wf_image *im, const char *iid)
{
    json_t *own;
    const json_t *list = new_entries(p, data, &own);
    if (!list || json_array_size(list) > VLM_MAX_DETS) {
        json_decref(own);
        return NULL;
    }
    json_t *idx = classes_index(classes);
    if (!idx) {
        json_decref(own);
        return NULL;
    }
    double scale = p == P_SPACEXAI ? 100.0 : 1000.0;
    int w = im->img->w, h = im->img->h;
    struct wf_dets *ds = wf_dets_new();
    size_t k;
    json_t *e;
    json_array_foreach(list, k, e) {
        double v[4], conf = 1.0;
        char buf[32];
        const char *cls = "unknown";
        bool ok = true;
        if (p == P_SPACEXAI) {
            /* x_min, y_min, x_max, y_max = detection["box_2d"]; float() each */
            const json_t *b = json_object_get(e, "box_2d"), *cf = json_object_get(e, "confidence");
            ok = json_is_object(e) && json_is_array(b) && json_array_size(b) == 4;
            for (size_t j = 0; ok && j < 4; j++)
                ok = py_float(json_array_get(b, j), &v[j]) && !isnan(v[j]);
            const json_t *lv = NULL;
            static const char *const keys[] = {"class_name", "label", "class"};
            for (size_t j = 0; ok && !lv && j < ARRAY_LEN(keys); j++) {
                lv = json_object_get(e, keys[j]);
                if (json_is_null(lv))
                    lv = NULL;
            }
            if (ok && lv)
                ok = (cls = py_str(lv, buf, sizeof buf)) != NULL;
            if (ok && cf)
                ok = scale_conf(cf, &conf);
            if (!ok) {
                wf_dets_free(ds);
                json_decref(idx);
                json_decref(own);
                return NULL;
            }
        } else {
            if (!json_is_object(e) || !(p == P_QWEN ? qwen_box(e, v) : muse_box(e, v)))
                continue; /* skipped, as Roboflow's parser (with a debug log) */
            const json_t *lv = NULL;
            if (p == P_QWEN) {
                static const char *const keys[] = {"label", "description", "class_name", "class"};
                for (size_t j = 0; !lv && j < ARRAY_LEN(keys); j++) {
                    lv = json_object_get(e, keys[j]);
                    if (json_is_null(lv))
                        lv = NULL;
                }
            } else {
                lv = json_object_get(e, "label");
                if (!py_truthy(lv))
                    lv = NULL;
            }
            if (lv && !(cls = py_str(lv, buf, sizeof buf))) {
                wf_dets_free(ds);
                json_decref(idx);
                json_decref(own);
                return NULL;
            }
        }
        double b[4];
        for (int j = 0; j < 4; j++)
            v[j] = clampd(v[j], 0.0, scale);
        b[0] = p == P_SPACEXAI ? v[0] / scale * w : v[0] * (w / scale);
        b[1] = p == P_SPACEXAI ? v[1] / scale * h : v[1] * (h / scale);
        b[2] = p == P_SPACEXAI ? v[2] / scale * w : v[2] * (w / scale);
        b[3] = p == P_SPACEXAI ? v[3] / scale * h : v[3] * (h / scale);
        const json_t *id = json_object_get(idx, cls);
        new_det(ds, im, iid, b, true, cls, id ? (int)json_integer_value(id) : -1, conf);
    }
    json_decref(idx);
    json_decref(own);
    return ds;
}

/* Muse's extract_flat_object_entries, used when the text is not JSON: every
 * top-level {...} that decodes (json.JSONDecoder.raw_decode from each '{')
 * and carries the four named box fields.  The bytes the decoder looks at
 * are bounded (a text of many unterminated objects would be quadratic). */
#define MUSE_SCAN_BUDGET (64u * 1024u * 1024u)

static json_t *muse_loose(const char *text)
{
    json_t *out = json_array();
    size_t len = strlen(text), i = 0, spent = 0;
    while (i < len) {
        const char *s = memchr(text + i, '{', len - i);
        if (!s)
            break;
        size_t start = (size_t)(s - text);
        json_error_t je;
        json_t *v = json_loadb(s, len - start, JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &je);
        size_t used = je.position > 0 ? (size_t)je.position : 1;
        spent += used;
        if (spent > MUSE_SCAN_BUDGET) {
            json_decref(v);
            break;
        }
        if (!v) {
            i = start + 1;
            continue;
        }
        if (json_is_object(v) && json_object_get(v, "x_min") && json_object_get(v, "y_min") &&
            json_object_get(v, "x_max") && json_object_get(v, "y_max"))
            json_array_append(out, v);
        json_decref(v);
        i = start + used;
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static enum parser parser_of(const char *model, bool v2)
{
    if (v2 && !strcmp(model, "spacexai"))
        return P_SPACEXAI;
    if (v2 && !strcmp(model, "qwen"))
        return P_QWEN;
    if (v2 && !strcmp(model, "muse"))
        return P_MUSE;
    if (!strcmp(model, "florence-2"))
        return P_FLORENCE;
    if (!strcmp(model, "openai"))
        return P_OPENAI;
    if (!strcmp(model, "anthropic-claude") && v2)
        return P_LLM;
    return P_GEMINI;
}

static int detector_run_v(struct wf_call *c, bool v2)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *text = wf_arg_str(c, i, "vlm_output");
        const json_t *classes = wf_arg_json(c, i, "classes");
        const char *model = wf_arg_str(c, i, "model_type"), *task = wf_arg_str(c, i, "task_type");
        char iid[37];
        uuid4(iid);
        if (!im || !text)
            return wf_call_fail(c, "field 'vlm_output': expected a string");
        if (classes && !json_is_array(classes) && !json_is_null(classes))
            return wf_call_fail(c, "field 'classes': expected a list of class names");
        if (strlen(text) > VLM_MAX_TEXT)
            return wf_call_fail(c, "field 'vlm_output': text over %u bytes", VLM_MAX_TEXT);
        enum parser p = parser_of(model, v2);
        if (p != P_FLORENCE && !json_is_array(classes))
            return wf_call_fail(c, "field 'classes': a list of classes is required for model_type '%s'",
                                model);
        json_t *data = vlm_parse(text);
        struct wf_dets *ds = NULL;
        if (!json_is_object(data) && !json_is_array(data) && p == P_MUSE) {
            json_decref(data); /* muse: the loose {...}, {...} objects of a non-JSON answer */
            data = muse_loose(text);
        }
        if (json_is_object(data) || json_is_array(data))
            ds = p == P_FLORENCE                                  ? parse_florence(task, data, classes, im, iid)
                 : p == P_SPACEXAI || p == P_QWEN || p == P_MUSE ? parse_new(p, data, classes, im, iid)
                                                                  : parse_llm(p, data, classes, im, iid);
        json_decref(data);
        set_outputs(c, i, ds == NULL, ds ? wf_value_dets(ds) : NULL, iid);
    }
    return 0;
}

static int detector_v1_run(struct wf_call *c)
{
    return detector_run_v(c, false);
}

static int detector_v2_run(struct wf_call *c)
{
    return detector_run_v(c, true);
}

/* Roboflow's manifest validator: the (model_type, task_type) pair must have a
 * parser, and classes are required except for florence-2. */
static int detector_check(const json_t *step, char *err, size_t errlen)
{
    const char *model = json_string_value(json_object_get(step, "model_type"));
    const char *task = json_string_value(json_object_get(step, "task_type"));
    if (!model || !task)
        return 0; /* the field checks report it */
    if (strcmp(model, "florence-2") && strcmp(task, "object-detection")) {
        wf__errf(err, errlen, "Could not parse result of task %s for model %s", task, model);
        return ERR_INVALID;
    }
    const json_t *classes = json_object_get(step, "classes");
    if (strcmp(model, "florence-2") && (!classes || json_is_null(classes))) {
        wf__errf(err, errlen, "field 'classes': Must pass list of classes to this block for every "
                              "model type except florence-2");
        return ERR_INVALID;
    }
    return 0;
}


static const char *const tasks[] = {"object-detection", "object-detection-and-caption",
                                    "open-vocabulary-object-detection",
                                    "phrase-grounded-object-detection", "region-proposal",
                                    "ocr-with-text-detection", NULL};
static const char *const models_v1[] = {"google-gemini", "anthropic-claude", "florence-2", NULL};
static const char *const models_v2[] = {"openai", "google-gemini", "anthropic-claude", "spacexai",
                                        "qwen", "muse", "florence-2", NULL};

static const struct wf_field cls_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"vlm_output", NULL, WF_FT_STRING, NULL, WF_K_STRING, WF_F_SELECTOR_ONLY, NULL},
    {"classes", NULL, WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},
};
static const struct wf_output cls_outs[] = {
    {"error_status", WF_K_BOOL}, {"predictions", WF_K_CLS}, {"inference_id", WF_K_STRING}};

static const struct wf_block vlm_as_classifier_v1 = {
    (const char *const[]){"roboflow_core/vlm_as_classifier@v1", NULL},
    cls_fields, ARRAY_LEN(cls_fields), cls_outs, ARRAY_LEN(cls_outs), 0, 0, NULL, classifier_run, NULL};
static const struct wf_block vlm_as_classifier_v2 = {
    (const char *const[]){"roboflow_core/vlm_as_classifier@v2", NULL},
    cls_fields, ARRAY_LEN(cls_fields), cls_outs, ARRAY_LEN(cls_outs), 0, 0, NULL, classifier_run, NULL};

static const struct wf_field det_fields_v1[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"vlm_output", NULL, WF_FT_STRING, NULL, WF_K_STRING, WF_F_SELECTOR_ONLY, NULL},
    {"classes", NULL, WF_FT_LIST, NULL, WF_K_LIST, WF_F_NULLABLE, NULL},
    {"model_type", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, models_v1},
    {"task_type", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, tasks},
};
static const struct wf_field det_fields_v2[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"vlm_output", NULL, WF_FT_STRING, NULL, WF_K_STRING, WF_F_SELECTOR_ONLY, NULL},
    {"classes", NULL, WF_FT_LIST, NULL, WF_K_LIST, WF_F_NULLABLE, NULL},
    {"model_type", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, models_v2},
    {"task_type", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, tasks},
};
static const struct wf_output det_outs[] = {
    {"error_status", WF_K_BOOL}, {"predictions", WF_K_OD}, {"inference_id", WF_K_STRING}};

static const struct wf_block vlm_as_detector_v1 = {
    (const char *const[]){"roboflow_core/vlm_as_detector@v1", NULL},
    det_fields_v1, ARRAY_LEN(det_fields_v1), det_outs, ARRAY_LEN(det_outs), 0, 0, NULL,
    detector_v1_run, detector_check};
static const struct wf_block vlm_as_detector_v2 = {
    (const char *const[]){"roboflow_core/vlm_as_detector@v2", NULL},
    det_fields_v2, ARRAY_LEN(det_fields_v2), det_outs, ARRAY_LEN(det_outs), 0, 0, NULL,
    detector_v2_run, detector_check};

const struct wf_block *const wf_blocks_vlm[] = {
    &vlm_as_classifier_v1, &vlm_as_classifier_v2, &vlm_as_detector_v1, &vlm_as_detector_v2, NULL,
};
