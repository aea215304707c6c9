/*
 * blocks/ocr.c — OCR blocks: roboflow_core/pp_ocr@v1 and
 * roboflow_core/ocr_model@v1 (the PP-OCR path), and
 * roboflow_core/stitch_ocr_detections@v1/@v2.
 *
 * The two model blocks ask the model provider for task "ocr" of model id
 * "pp_ocr" (the operator registers the PP-OCR folder under that id:
 * docs/MODELS.md "OCR"); the response is {"result", "predictions",
 * "image"} with one object-detection prediction per text, its class the
 * text.  Outputs as Roboflow's blocks: result (the texts joined by spaces),
 * predictions (detections: class_name = the text, class_id 0, parent
 * metadata of the image), parent_id, root_parent_id, prediction_type
 * ("ocr").  pp_ocr's text_detection / text_recognition sizes all use the
 * one registered model; "none" is refused (vbatch has no recognition-only
 * path yet).
 *
 * stitch_ocr_detections follows Roboflow's
 * transformations/stitch_ocr_detections/v1.py and v2.py ("tolerance"):
 * boxes rounded half to even; for vertical reading x and y swapped; lines
 * by the (swapped) y1 — v1: sorted by y1, a new line when the gap to the
 * previous box exceeds tolerance, keyed by its first y1; v2: keyed by
 * round(y1 / tolerance) * tolerance —, lines in key order (reversed for
 * vertical_bottom_to_top), boxes in a line by x1 (descending for
 * right_to_left and vertical_bottom_to_top), a "\n" (horizontal) or " "
 * (vertical) element between lines, every element joined by delimiter.
 * "auto" picks left_to_right when the first batch element's mean box
 * width exceeds its mean height, else vertical_top_to_bottom.  v2's
 * "otsu" and "collimate" algorithms are not implemented: the step fails
 * saying so.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define OCR_MODEL_ID "pp_ocr"

static const char *const det_sizes[] = {"none", "tiny", "small", "medium", NULL};
static const char *const directions[] = {"left_to_right", "right_to_left",
                                         "vertical_top_to_bottom", "vertical_bottom_to_top",
                                         "auto", NULL};
static const char *const algorithms[] = {"tolerance", "otsu", "collimate", NULL};

static int ocr_run(struct wf_call *c, bool pp)
{
    const struct wf_env *env = wf_call_env(c);
    size_t n = wf_call_n(c);
    const struct vis_image **imgs = xcalloc(n + 1, sizeof *imgs);
    json_t **resps = xcalloc(n + 1, sizeof *resps);
    char perr[512] = "";
    int rc = 0;

    if (!env || !env->model_infer) {
        rc = wf_call_fail(c, "no model provider is configured (model steps cannot run)");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (pp) {
            const char *td = wf_arg_str(c, i, "text_detection");
            const char *tr = wf_arg_str(c, i, "text_recognition");
            if ((td && !strcmp(td, "none")) || (tr && !strcmp(tr, "none"))) {
                rc = wf_call_fail(c, "text_detection / text_recognition 'none' is not supported: "
                                  "vbatch runs the full PP-OCR model '%s' (detection and "
                                  "recognition)", OCR_MODEL_ID);
                goto out;
            }
        }
        imgs[i] = wf_arg_image(c, i, "images")->img;
    }
    struct wf_model_request req = {OCR_MODEL_ID, "ocr", NULL};
    json_t *params = json_object();
    req.params = params;
    rc = env->model_infer(env->model_ud, &req, (const struct vis_image *const *)imgs, n, resps,
                          perr, sizeof perr);
    json_decref(params);
    if (rc < 0) {
        rc = wf_call_fail(c, "model '%s': %s", OCR_MODEL_ID, perr[0] ? perr : err_str(rc));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct wf_image *im = wf_arg_image(c, i, "images");
        const json_t *res = json_object_get(resps[i], "result");
        struct wf_dets *ds = NULL;
        char uid[37];
        uuid4(uid);
        if (!json_is_object(resps[i]) ||
            wf_dets_from_inference(resps[i], im, "object-detection", uid, NULL, &ds) < 0) {
            rc = wf_call_fail(c, "model '%s': malformed response (no 'predictions' list)",
                              OCR_MODEL_ID);
            goto out;
        }
        wf_out_json(c, i, "result", json_string(json_is_string(res) ? json_string_value(res) : ""));
        wf_out_dets(c, i, "predictions", ds);
        wf_out_json(c, i, "parent_id", json_string(im->parent_id));
        wf_out_json(c, i, "root_parent_id", json_string(im->root_parent_id));
        wf_out_json(c, i, "prediction_type", json_string("ocr"));
    }
out:
    for (size_t i = 0; i < n; i++)
        json_decref(resps[i]);
    free(resps);
    free(imgs);
    return rc;
}

static int pp_ocr_run(struct wf_call *c) { return ocr_run(c, true); }
static int ocr_model_run(struct wf_call *c) { return ocr_run(c, false); }

/* ---- stitch_ocr_detections ------------------------------------------------------ */

struct sbox {
    long x1, y1, x2, y2; /* rounded, swapped for vertical reading */
    size_t idx;
    long key;            /* line key */
};

static int cmp_y(const void *a, const void *b)
{
    const struct sbox *p = a, *q = b;
    if (p->y1 != q->y1)
        return p->y1 < q->y1 ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static int cmp_key_x(const void *a, const void *b)
{
    const struct sbox *p = a, *q = b;
    if (p->key != q->key)
        return p->key < q->key ? -1 : 1;
    if (p->x1 != q->x1)
        return p->x1 < q->x1 ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static int cmp_key_xdesc(const void *a, const void *b)
{
    const struct sbox *p = a, *q = b;
    if (p->key != q->key)
        return p->key < q->key ? -1 : 1;
    if (p->x1 != q->x1)
        return p->x1 > q->x1 ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static const char *auto_direction(const struct wf_dets *ds)
{
    double w = 0, h = 0;
    if (!ds || !ds->n)
        return "left_to_right";
    for (size_t i = 0; i < ds->n; i++) {
        w += ds->d[i].x2 - ds->d[i].x1;
        h += ds->d[i].y2 - ds->d[i].y1;
    }
    return w / (double)ds->n > h / (double)ds->n ? "left_to_right" : "vertical_top_to_bottom";
}

static char *stitch(const struct wf_dets *ds, const char *dir, long tol, const char *delim,
                    int version)
{
    struct buf out = BUF_INIT;
    bool vertical = !strncmp(dir, "vertical", 8);
    bool reverse_lines = !strcmp(dir, "vertical_bottom_to_top");
    bool desc = !strcmp(dir, "right_to_left") || reverse_lines;
    size_t n = ds ? ds->n : 0;
    struct sbox *b;

    if (!n)
        return xstrdup("");
    b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < n; i++) {
        const struct wf_det *d = &ds->d[i];
        long x1 = lrint(d->x1), y1 = lrint(d->y1), x2 = lrint(d->x2), y2 = lrint(d->y2);
        b[i] = vertical ? (struct sbox){y1, x1, y2, x2, i, 0} : (struct sbox){x1, y1, x2, y2, i, 0};
    }
    if (version == 1) {
        qsort(b, n, sizeof *b, cmp_y);
        long key = b[0].y1, prev = b[0].y1;
        for (size_t i = 0; i < n; i++) {
            if (i && b[i].y1 - prev > tol)
                key = b[i].y1;
            b[i].key = key;
            prev = b[i].y1;
        }
    } else {
        for (size_t i = 0; i < n; i++) /* numpy round: half to even */
            b[i].key = (long)nearbyint((double)b[i].y1 / (double)tol) * tol;
    }
    qsort(b, n, sizeof *b, desc ? cmp_key_xdesc : cmp_key_x);
    /* lines in key order, reversed for vertical_bottom_to_top */
    size_t nl = 0;
    size_t *starts = xcalloc(n + 1, sizeof *starts);
    for (size_t i = 0; i < n; i++)
        if (!i || b[i].key != b[i - 1].key)
            starts[nl++] = i;
    starts[nl] = n;
    bool first = true;
    for (size_t l = 0; l < nl; l++) {
        size_t li = reverse_lines ? nl - 1 - l : l;
        for (size_t k = starts[li]; k < starts[li + 1]; k++) {
            const char *t = ds->d[b[k].idx].class_name;
            if (!first)
                buf_puts(&out, delim);
            buf_puts(&out, t ? t : "");
            first = false;
        }
        if (l + 1 < nl) {
            buf_puts(&out, delim);
            buf_puts(&out, vertical ? " " : "\n");
        }
    }
    free(starts);
    free(b);
    return buf_detach(&out, NULL);
}

static int stitch_run(struct wf_call *c, int version)
{
    size_t n = wf_call_n(c);
    const char *autodir = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *dir = wf_arg_str(c, i, "reading_direction");
        const char *delim = wf_arg_str(c, i, "delimiter");
        long tol = (long)wf_arg_int(c, i, "tolerance", 10);
        if (version == 2) {
            const char *alg = wf_arg_str(c, i, "stitching_algorithm");
            if (alg && strcmp(alg, "tolerance") != 0)
                return wf_call_fail(c, "stitching_algorithm '%s' is not implemented in vbatch "
                                    "(only 'tolerance')", alg);
        }
        if (tol <= 0)
            return wf_call_fail(c, "field 'tolerance': must be greater than zero");
        if (!dir)
            dir = "left_to_right";
        if (!strcmp(dir, "auto")) { /* Roboflow decides once, from the first element */
            if (!autodir)
                autodir = auto_direction(wf_arg_dets(c, 0, "predictions"));
            dir = autodir;
        }
        char *s = stitch(wf_arg_dets(c, i, "predictions"), dir, tol, delim ? delim : "", version);
        wf_out_json(c, i, "ocr_text", json_string(s));
        free(s);
    }
    return 0;
}

static int stitch1_run(struct wf_call *c) { return stitch_run(c, 1); }
static int stitch2_run(struct wf_call *c) { return stitch_run(c, 2); }

static const struct wf_field pp_fields[] = {
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"text_detection", NULL, WF_FT_ENUM, "\"small\"", WF_K_STRING, 0, det_sizes},
    {"text_recognition", NULL, WF_FT_ENUM, "\"small\"", WF_K_STRING, 0, det_sizes},
};
static const struct wf_field ocr_fields[] = {
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
};
static const struct wf_output ocr_outs[] = {
    {"result", WF_K_STRING},    {"predictions", WF_K_OD},       {"parent_id", WF_K_STRING},
    {"root_parent_id", WF_K_STRING}, {"prediction_type", WF_K_STRING},
};
#define F_STITCH_COMMON                                                                         \
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_OD, WF_F_SELECTOR_ONLY, NULL},                 \
    {"reading_direction", NULL, WF_FT_ENUM, NULL, WF_K_STRING, 0, directions},                \
    {"tolerance", NULL, WF_FT_INT_POS, "10", WF_K_INT, 0, NULL},                                \
    {"delimiter", NULL, WF_FT_STRING, "\"\"", WF_K_STRING, 0, NULL}
static const struct wf_field stitch1_fields[] = {F_STITCH_COMMON};
static const struct wf_field stitch2_fields[] = {
    {"stitching_algorithm", NULL, WF_FT_ENUM, NULL, WF_K_STRING, 0, algorithms},
    F_STITCH_COMMON,
    {"otsu_threshold_multiplier", NULL, WF_FT_FLOAT, "1.0", WF_K_NUMBER, 0, NULL},
    {"collimate_tolerance", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
};
static const struct wf_output stitch_outs[] = {{"ocr_text", WF_K_STRING}};

#define BLOCK(var, fields, outs, fn, ...)                                                     \
    static const char *const var##_types[] = {__VA_ARGS__, NULL};                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,       \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL};

BLOCK(pp_ocr1, pp_fields, ocr_outs, pp_ocr_run, "roboflow_core/pp_ocr@v1")
BLOCK(ocr_model1, ocr_fields, ocr_outs, ocr_model_run, "roboflow_core/ocr_model@v1", "OCRModel")
BLOCK(stitch1, stitch1_fields, stitch_outs, stitch1_run, "roboflow_core/stitch_ocr_detections@v1")
BLOCK(stitch2, stitch2_fields, stitch_outs, stitch2_run, "roboflow_core/stitch_ocr_detections@v2")

const struct wf_block *const wf_blocks_ocr[] = {&pp_ocr1, &ocr_model1, &stitch1, &stitch2, NULL};
