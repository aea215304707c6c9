/*
 * family.c — object-detection architectures other than YOLOv8/v11: which
 * one a model is, and their decoders.  Each follows the ONNX path of
 * Roboflow's inference_models package (docs/MODELS.md, "Detection
 * families", lists the sources and every departure):
 *
 *   YOLOv5 / YOLOv7   one output (N, A, 5+nc): cx cy w h in input pixels,
 *                     objectness, nc class scores (all after sigmoid).  A
 *                     candidate needs objectness > confidence; its score is
 *                     the best class score, its class the argmax; greedy
 *                     per-class IoU NMS on that score (inference_models
 *                     yolov5/nms.py run_nms_yolov5).
 *   YOLOv10, YOLO26   one output (N, K, 6): x1 y1 x2 y2 score class, already
 *   end-to-end        free of duplicates.  Rows kept in the network's order
 *                     when score > confidence (YOLOv10) or >= (YOLO26 and
 *                     fused-NMS packages: post_process_nms_fused_model_output),
 *                     the first max_detections of them; no NMS.
 *   YOLO-NAS          boxes (N, A, 4) x1 y1 x2 y2 in input pixels and scores
 *                     (N, A, nc); best class > confidence, per-class IoU NMS
 *                     (yolonas/nms.py).
 *   RF-DETR           dets (N, Q, 4) cx cy w h relative to the input, labels
 *                     (N, Q, C) logits.  sigmoid over all Q*C; the Q best
 *                     (query, class) pairs; pairs whose class is not named
 *                     (the no-object logit, or a class removed by
 *                     class_names_operations) dropped; score > confidence;
 *                     sorted by score (rfdetr/common.py
 *                     post_process_object_detection_results).  No NMS.
 *
 * Instance segmentation: YOLOv5/v7-seg adds raw mask coefficients to each
 * row and a prototype output (decoded as YOLOv5 detection, masks by the
 * YOLOv8-seg pipeline of postproc.c); RF-DETR-seg adds masks (N, Q, h, w)
 * logits (the selection capped at max_detections; each mask's padding cut,
 * resized bilinearly to the image, > 0; polygon of its largest component).
 *
 * The family comes from the package first (model_config.json
 * model_architecture, model_type.json, Ultralytics "end2end" metadata,
 * inference_config.json fused NMS), then from the output shapes; a model
 * that fits none is refused with what was found.
 */
#include "model/model_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

/* ---- recognition ------------------------------------------------------------ */

static bool prefix_ci(const char *s, const char *p)
{
    if (!s)
        return false;
    for (; *p; s++, p++)
        if (tolower((unsigned char)*s) != *p)
            return false;
    return true;
}

/* s names architecture a: a, then nothing or a non-digit ("yolov5v6n",
 * "yolov10-s" and "rfdetr-base" match; "yolov99" is not "yolov9"). */
static bool arch_is(const char *s, const char *a)
{
    return prefix_ci(s, a) && !isdigit((unsigned char)s[strlen(a)]);
}

static bool contains_ci(const char *s, const char *needle)
{
    for (; s && *s; s++)
        if (prefix_ci(s, needle))
            return true;
    return false;
}

enum hint_fam { H_NONE = 0, H_V8, H_V5, H_V10, H_Y26, H_NAS, H_DETR, H_OTHER };

static const char *const fam_label[] = {
    [MODEL_FAMILY_YOLOV8] = "YOLOv8/v11",
    [MODEL_FAMILY_YOLOV5] = "YOLOv5/v7",
    [MODEL_FAMILY_E2E] = "end-to-end YOLOv10/YOLO26",
    [MODEL_FAMILY_YOLONAS] = "YOLO-NAS",
    [MODEL_FAMILY_RFDETR] = "RF-DETR",
};

/* Architecture named by the package, and where it was read. */
static enum hint_fam hint_of(const struct model__hints *h, const char **name, const char **src)
{
    const char *s = h->arch ? h->arch : h->model_type;
    *src = h->arch ? "model_config.json model_architecture" : "model_type.json model_type";
    *name = s;
    if (!s)
        return H_NONE;
    if (arch_is(s, "yolov5") || arch_is(s, "yolov7"))
        return H_V5;
    if (arch_is(s, "yolov10"))
        return H_V10;
    if (arch_is(s, "yolo26"))
        return H_Y26;
    if (arch_is(s, "yolonas") || arch_is(s, "yolo_nas") || arch_is(s, "yolo-nas"))
        return H_NAS;
    if (arch_is(s, "rfdetr") || arch_is(s, "rf-detr"))
        return H_DETR;
    if (arch_is(s, "yolov8") || arch_is(s, "yolov11") || arch_is(s, "yolo11") ||
        arch_is(s, "yolov9") || arch_is(s, "yolov12") || arch_is(s, "yolo12"))
        return H_V8;
    return H_OTHER;
}

/* YOLOv5/v7 anchors for an input: 3 anchors per cell at strides 8, 16, 32. */
static int64_t v5_anchor_count(int w, int h)
{
    int64_t n = 0;
    for (int s = 8; s <= 32; s *= 2)
        n += 3 * (int64_t)((w + s - 1) / s) * (int64_t)((h + s - 1) / s);
    return n;
}

bool model__arch_decodes(const char *name, enum model_task t)
{
    const char *src;
    struct model__hints h = {.arch = name};
    switch (hint_of(&h, &name, &src)) {
    case H_NONE:
    case H_V8:
    case H_Y26:
    case H_OTHER:
        return true;
    case H_DETR:
    case H_V5:
        return t == MODEL_TASK_DETECTION || t == MODEL_TASK_SEGMENTATION;
    default:
        return t == MODEL_TASK_DETECTION;
    }
}

static bool fits_v8(int64_t od[][8], const size_t *orank, size_t nout, int64_t nc, int *o)
{
    for (size_t i = 0; i < nout; i++)
        if (orank[i] == 3 && od[i][1] == 4 + nc && od[i][2] >= 1) {
            *o = (int)i;
            return true;
        }
    return false;
}

static bool fits_v5(int64_t od[][8], const size_t *orank, size_t nout, int64_t nc, int *o)
{
    for (size_t i = 0; i < nout; i++)
        if (orank[i] == 3 && od[i][2] == 5 + nc && od[i][1] >= 1) {
            *o = (int)i;
            return true;
        }
    return false;
}

static bool fits_e2e(int64_t od[][8], const size_t *orank, size_t nout, int *o)
{
    for (size_t i = 0; i < nout; i++)
        if (orank[i] == 3 && od[i][2] == 6 && od[i][1] >= 1) {
            *o = (int)i;
            return true;
        }
    return false;
}

/* Two rank-3 outputs (N, A, 4) and (N, A, k): boxes first, as both
 * YOLO-NAS and RF-DETR exports order them. */
static bool fits_pair(int64_t od[][8], const size_t *orank, size_t nout, int *ob, int *os)
{
    if (nout < 2 || orank[0] != 3 || orank[1] != 3)
        return false;
    if (od[0][2] != 4 || od[1][1] != od[0][1] || od[0][1] < 1 || od[1][2] < 1)
        return false;
    *ob = 0;
    *os = 1;
    return true;
}

/* RF-DETR's class_names_operations: [{"type": "class_name_removal",
 * "class_name": "x"}, ...].  Rebuild m->classes without the removed names
 * and m->class_map (original index -> new index or -1). */
static int apply_class_ops(struct model *m, const json_t *ops, char *err, size_t errlen)
{
    size_t i, n = m->n_classes;
    json_t *op;
    if (!ops || json_is_null(ops) || m->class_map)
        return 0; /* none, or applied already */
    if (!json_is_array(ops)) {
        snprintf(err, errlen, "inference_config class_names_operations must be an array");
        return ERR_INVALID;
    }
    bool *removed = xcalloc(n ? n : 1, sizeof(bool));
    json_array_foreach(ops, i, op)
    {
        const char *t = json_string_value(json_object_get(op, "type"));
        const char *cn = json_string_value(json_object_get(op, "class_name"));
        if (!t || strcmp(t, "class_name_removal") != 0 || !cn) {
            snprintf(err, errlen, "inference_config class_names_operations[%zu]: vbatch knows only "
                     "{\"type\": \"class_name_removal\", \"class_name\": ...}", i);
            free(removed);
            return ERR_UNSUPPORTED;
        }
        for (size_t c = 0; c < n; c++)
            if (!strcmp(m->classes[c], cn))
                removed[c] = true;
    }
    m->class_map = xcalloc(n ? n : 1, sizeof(int));
    m->n_class_map = n;
    size_t k = 0;
    for (size_t c = 0; c < n; c++) {
        if (removed[c]) {
            m->class_map[c] = -1;
            free(m->classes[c]);
            continue;
        }
        m->class_map[c] = (int)k;
        m->classes[k++] = m->classes[c];
    }
    m->n_classes = k;
    free(removed);
    if (k == 0) {
        snprintf(err, errlen, "class_names_operations remove every class");
        return ERR_INVALID;
    }
    return 0;
}

static void set_arch(struct model *m, const char *name)
{
    free(m->arch);
    m->arch = xstrdup(name);
}

int model__family_detect(struct model *m, const struct model__hints *h, int64_t od[][8],
                         const size_t *orank, size_t nout, const char *shapes, char *err,
                         size_t errlen)
{
    const char *hname = NULL, *hsrc = NULL;
    enum hint_fam hf = hint_of(h, &hname, &hsrc);
    int64_t nc = (int64_t)m->n_classes;
    int o = -1, ob = -1, os = -1;
    char found[160] = "";

    if (hf == H_NONE && h->ul_end2end)
        hf = h->ul_desc && contains_ci(h->ul_desc, "yolov10") ? H_V10 : H_Y26;
    if (hname || h->ul_end2end)
        snprintf(found, sizeof(found), " (%s '%s')", hname ? hsrc : "Ultralytics metadata",
                 hname ? hname : "end2end: True");

    m->scores_out = -1;
    m->e2e_inclusive = false;
    switch (hf) {
    case H_V5:
        if (!fits_v5(od, orank, nout, nc, &o))
            goto mismatch;
        m->family = MODEL_FAMILY_YOLOV5;
        m->det_out = o;
        set_arch(m, arch_is(hname, "yolov7") ? "yolov7" : "yolov5");
        return 0;
    case H_V10:
    case H_Y26:
        if (fits_e2e(od, orank, nout, &o)) {
            m->family = MODEL_FAMILY_E2E;
            m->det_out = o;
            m->e2e_inclusive = hf == H_Y26;
            set_arch(m, hf == H_V10 ? "yolov10" : "yolo26");
            return 0;
        }
        /* YOLO26 exported with end2end=False has the YOLOv8 head */
        if (hf == H_Y26 && fits_v8(od, orank, nout, nc, &o)) {
            m->family = MODEL_FAMILY_YOLOV8;
            m->det_out = o;
            set_arch(m, "yolo26");
            return 0;
        }
        goto mismatch;
    case H_NAS:
        if (!fits_pair(od, orank, nout, &ob, &os) || od[os][2] != nc)
            goto mismatch;
        m->family = MODEL_FAMILY_YOLONAS;
        m->det_out = ob;
        m->scores_out = os;
        set_arch(m, "yolonas");
        return 0;
    case H_DETR:
        if (!fits_pair(od, orank, nout, &ob, &os))
            goto mismatch;
        goto rfdetr;
    case H_V8:
        if (h->fused_nms && fits_e2e(od, orank, nout, &o)) {
            m->family = MODEL_FAMILY_E2E;
            m->det_out = o;
            m->e2e_inclusive = true;
            set_arch(m, hname);
            return 0;
        }
        if (!fits_v8(od, orank, nout, nc, &o))
            goto mismatch;
        m->family = MODEL_FAMILY_YOLOV8;
        m->det_out = o;
        set_arch(m, hname);
        return 0;
    case H_OTHER: /* a name vbatch does not know: the shapes decide, as without one */
    case H_NONE:
        break;
    }

    /* ---- no hint: the shapes decide */
    if (fits_pair(od, orank, nout, &ob, &os)) {
        bool detr_names = !strcmp(m->out_names[ob], "dets") && !strcmp(m->out_names[os], "labels");
        if (detr_names || od[os][2] == nc + 1)
            goto rfdetr;
        if (od[os][2] == nc) {
            m->family = MODEL_FAMILY_YOLONAS;
            m->det_out = ob;
            m->scores_out = os;
            set_arch(m, "yolonas");
            return 0;
        }
    }
    if (h->fused_nms && fits_e2e(od, orank, nout, &o)) {
        m->family = MODEL_FAMILY_E2E;
        m->det_out = o;
        m->e2e_inclusive = true;
        set_arch(m, "yolov8");
        return 0;
    }
    if (fits_v8(od, orank, nout, nc, &o)) {
        m->family = MODEL_FAMILY_YOLOV8;
        m->det_out = o;
        set_arch(m, "yolov8");
        return 0;
    }
    {
        int o5 = -1, oe = -1;
        bool v5 = fits_v5(od, orank, nout, nc, &o5), e2e = fits_e2e(od, orank, nout, &oe);
        /* one class: (N, A, 6) is both; YOLOv5's A is fixed by the input size */
        if (v5 && e2e && o5 == oe)
            e2e = od[o5][1] != v5_anchor_count(m->in_w, m->in_h);
        if (e2e) {
            m->family = MODEL_FAMILY_E2E;
            m->det_out = oe;
            m->e2e_inclusive = false;
            set_arch(m, "yolov10");
            return 0;
        }
        if (v5) {
            m->family = MODEL_FAMILY_YOLOV5;
            m->det_out = o5;
            set_arch(m, "yolov5");
            return 0;
        }
    }
    {
        char other[200] = "";
        if (hf == H_OTHER)
            snprintf(other, sizeof(other), "; %s names architecture '%.60s', which vbatch does "
                     "not know (it knows yolov5, yolov7, yolov8, yolov10, yolo11, yolo26, yolonas, "
                     "rfdetr)", hsrc, hname);
        snprintf(err, errlen, "no decoder understands outputs %s for object detection with %lld "
                 "classes; expected one of YOLOv8/v11 (N, %lld, anchors), YOLOv5/v7 (N, anchors, "
                 "%lld), YOLOv10/YOLO26 end-to-end (N, detections, 6), YOLO-NAS boxes (N, anchors, "
                 "4) + scores (N, anchors, %lld), RF-DETR dets (N, queries, 4) + labels (N, "
                 "queries, classes[+1])%s", shapes, (long long)nc, (long long)(4 + nc),
                 (long long)(5 + nc), (long long)nc, other);
    }
    return ERR_INVALID;

rfdetr: {
    int rc;
    m->family = MODEL_FAMILY_RFDETR;
    m->det_out = ob;
    m->scores_out = os;
    set_arch(m, "rfdetr");
    if ((rc = apply_class_ops(m, h->class_ops, err, errlen)) < 0)
        return rc;
    size_t named = m->class_map ? m->n_class_map : m->n_classes;
    if (od[os][2] < (int64_t)m->n_classes || od[os][2] > (int64_t)named + 1) {
        snprintf(err, errlen, "RF-DETR labels output has %lld logits per query for %zu class "
                 "names (expected %zu or %zu); outputs %s", (long long)od[os][2], named, named,
                 named + 1, shapes);
        return ERR_INVALID;
    }
    return 0;
}
mismatch: {
    static const char *const want[] = {
        [H_V5] = "(N, anchors, 5+classes)",
        [H_V10] = "(N, detections, 6)",
        [H_Y26] = "(N, detections, 6) or (N, 4+classes, anchors)",
        [H_NAS] = "boxes (N, anchors, 4) + scores (N, anchors, classes)",
        [H_DETR] = "dets (N, queries, 4) + labels (N, queries, classes[+1])",
        [H_V8] = "(N, 4+classes, anchors)",
    };
    snprintf(err, errlen, "outputs %s do not fit the architecture named by the package%s: "
             "expected %s with %lld classes", shapes, found, want[hf], (long long)nc);
    return ERR_INVALID;
}
}

/* RF-DETR segmentation: dets (N, Q, 4), labels (N, Q, C), masks (N, Q, h, w). */
static bool fits_detr_seg(int64_t od[][8], const size_t *orank, size_t nout)
{
    int ob, os;
    return nout >= 3 && fits_pair(od, orank, nout, &ob, &os) && orank[2] == 4 &&
           od[2][1] == od[0][1] && od[2][2] >= 1 && od[2][3] >= 1 && od[2][2] <= 4096 &&
           od[2][3] <= 4096;
}

/* YOLOv5/v7-seg: (N, A, 5+nc+nm) and prototypes (N, nm, h, w) among the
 * outputs (YOLOv7-seg exports carry more outputs; the first rank-4 one
 * with nm planes is the prototypes). */
static bool fits_v5_seg(int64_t od[][8], const size_t *orank, size_t nout, int64_t nc, int *o,
                        int *op)
{
    for (size_t i = 0; i < nout; i++) {
        if (orank[i] != 3 || od[i][1] < 1 || od[i][2] <= 5 + nc)
            continue;
        int64_t nm = od[i][2] - 5 - nc;
        for (size_t j = 0; j < nout; j++)
            if (orank[j] == 4 && od[j][1] == nm && nm <= 256 && od[j][2] >= 1 && od[j][3] >= 1) {
                *o = (int)i;
                *op = (int)j;
                return true;
            }
    }
    return false;
}

static bool fits_v8_seg(int64_t od[][8], const size_t *orank, size_t nout, int64_t nc)
{
    for (size_t i = 0; i < nout; i++)
        for (size_t j = 0; j < nout; j++)
            if (orank[i] == 3 && orank[j] == 4 && od[i][1] == 4 + nc + od[j][1])
                return true;
    return false;
}

int model__family_detect_seg(struct model *m, const struct model__hints *h, int64_t od[][8],
                             const size_t *orank, size_t nout, const char *shapes, char *err,
                             size_t errlen)
{
    const char *hname = NULL, *hsrc = NULL;
    enum hint_fam hf = hint_of(h, &hname, &hsrc);
    int64_t nc = (int64_t)m->n_classes;
    int o = -1, op = -1;
    if (hf == H_V5 || (hf == H_NONE && !fits_v8_seg(od, orank, nout, nc) &&
                       fits_v5_seg(od, orank, nout, nc, &o, &op))) {
        if (!fits_v5_seg(od, orank, nout, nc, &o, &op)) {
            snprintf(err, errlen, "outputs %s do not fit the architecture named by the package "
                     "(%s '%s'): expected (N, anchors, 5+%lld+masks) and prototypes (N, masks, h, "
                     "w) for instance segmentation", shapes, hsrc, hname, (long long)nc);
            return ERR_INVALID;
        }
        m->family = MODEL_FAMILY_YOLOV5;
        m->det_out = o;
        m->proto_out = op;
        m->nm = (int)od[op][1];
        set_arch(m, hname && arch_is(hname, "yolov7") ? "yolov7" : "yolov5");
        return 1;
    }
    if (hf == H_DETR) {
        if (!fits_detr_seg(od, orank, nout)) {
            snprintf(err, errlen, "outputs %s do not fit the architecture named by the package "
                     "(%s '%s'): expected dets (N, queries, 4) + labels (N, queries, classes[+1]) "
                     "+ masks (N, queries, h, w) for instance segmentation", shapes, hsrc, hname);
            return ERR_INVALID;
        }
    } else if (hf != H_NONE || !fits_detr_seg(od, orank, nout)) {
        return 0;
    } else {
        bool names = nout >= 3 && !strcmp(m->out_names[0], "dets") &&
                     !strcmp(m->out_names[1], "labels") && !strcmp(m->out_names[2], "masks");
        if (!names && od[1][2] != nc + 1)
            return 0;
    }
    m->family = MODEL_FAMILY_RFDETR;
    m->det_out = 0;
    m->scores_out = 1;
    m->proto_out = 2;
    set_arch(m, "rfdetr");
    int rc = apply_class_ops(m, h->class_ops, err, errlen);
    if (rc < 0)
        return rc;
    size_t named = m->class_map ? m->n_class_map : m->n_classes;
    if (od[1][2] < (int64_t)m->n_classes || od[1][2] > (int64_t)named + 1) {
        snprintf(err, errlen, "RF-DETR labels output has %lld logits per query for %zu class "
                 "names (expected %zu or %zu); outputs %s", (long long)od[1][2], named, named,
                 named + 1, shapes);
        return ERR_INVALID;
    }
    return 1;
}

/* ---- decoding ----------------------------------------------------------------- */

struct cand {
    struct model_box *b;
    size_t *a; /* anchor of each box */
    size_t n, cap;
};

static int cand_push(struct cand *c, float x1, float y1, float x2, float y2, float s, int cls,
                     size_t a)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        struct model_box *nb = try_alloc(nc, sizeof(*nb));
        size_t *na = try_alloc(nc, sizeof(*na));
        if (!nb || !na) {
            free(nb);
            free(na);
            return ERR_NOMEM;
        }
        if (c->n) {
            memcpy(nb, c->b, c->n * sizeof(*nb));
            memcpy(na, c->a, c->n * sizeof(*na));
        }
        free(c->b);
        free(c->a);
        c->b = nb;
        c->a = na;
        c->cap = nc;
    }
    c->a[c->n] = a;
    c->b[c->n++] = (struct model_box){x1, y1, x2, y2, s, cls};
    return 0;
}

static void cand_free(struct cand *c)
{
    free(c->b);
    free(c->a);
}

/* Prototype masks of a YOLOv5/v7-seg image: coefficients of anchor a at
 * coef[a * row + k], k < m->nm. */
struct seg_ctx {
    const float *coef;
    size_t row;
    const float *protos;
    int ph, pw;
};

static bool filter_ok(const struct model *m, const struct model_params *p, int cls)
{
    if (!p->class_filter)
        return true;
    for (size_t i = 0; i < p->n_class_filter; i++)
        if (p->class_filter[i] && (size_t)cls < m->n_classes &&
            !strcmp(p->class_filter[i], m->classes[cls]))
            return true;
    return false;
}

/* Append box b (input pixels) to r, mapped to the image; class filter
 * applied.  ERR_INVALID when the box is not finite. */
static int emit(const struct model *m, const struct model_params *p,
                const struct model_letterbox *lb, const struct model_box *b,
                struct model_result *r, char *err, size_t errlen)
{
    struct model_detection d;
    memset(&d, 0, sizeof(d));
    if (!model__box_to_image(lb, b->x1, b->y1, b->x2, b->y2, &d)) {
        snprintf(err, errlen, "the network produced a box that is not finite (NaN or infinity)");
        return ERR_INVALID;
    }
    if (!filter_ok(m, p, b->class_id))
        return 0;
    d.confidence = b->score;
    d.class_id = b->class_id;
    r->dets[r->n_dets++] = d;
    return 0;
}

/* Candidates -> max_candidates cap -> NMS -> max_detections -> r. */
static int nms_emit(const struct model *m, const struct model_params *p,
                    const struct model_letterbox *lb, struct cand *c, const struct seg_ctx *seg,
                    struct model_result *r, char *err, size_t errlen)
{
    size_t n = c->n;
    /* max_candidates: the new (IoU) path only, as for YOLOv8 */
    if (p->nms == MODEL_NMS_IOU && p->max_candidates > 0 && n > (size_t)p->max_candidates) {
        /* the best scores (ties: anchor order): an NMS that suppresses
         * nothing (no IoU exceeds 2) returns exactly that order */
        size_t *ord = xmalloc(n * sizeof(size_t));
        size_t k = model_nms(c->b, n, MODEL_NMS_IOU, 2.0f, true, (size_t)p->max_candidates, ord);
        struct model_box *nb = xmalloc(k * sizeof(*nb));
        size_t *na = xmalloc(k * sizeof(*na));
        for (size_t i = 0; i < k; i++) {
            nb[i] = c->b[ord[i]];
            na[i] = c->a[ord[i]];
        }
        free(ord);
        free(c->b);
        free(c->a);
        c->b = nb;
        c->a = na;
        c->n = c->cap = n = k;
    }
    size_t maxk = p->max_detections > 0 ? (size_t)p->max_detections : n;
    size_t *keep = try_alloc(n ? n : 1, sizeof(size_t));
    r->dets = try_calloc(MIN(n, maxk) ? MIN(n, maxk) : 1, sizeof(*r->dets));
    if (!keep || !r->dets) {
        free(keep);
        return ERR_NOMEM;
    }
    size_t nk = model_nms(c->b, n, p->nms, p->iou_threshold, p->class_agnostic_nms, maxk, keep);
    int rc = 0;
    for (size_t i = 0; i < nk && rc == 0; i++) {
        const struct model_box *bx = &c->b[keep[i]];
        size_t before = r->n_dets;
        rc = emit(m, p, lb, bx, r, err, errlen);
        if (rc == 0 && seg && r->n_dets > before)
            rc = model__mask_polygon(m, seg->coef + c->a[keep[i]] * seg->row, 1, seg->protos,
                                     seg->ph, seg->pw, bx->x1, bx->y1, bx->x2, bx->y2, lb, p,
                                     &r->dets[r->n_dets - 1]);
    }
    free(keep);
    return rc;
}

static bool pass(const struct model_params *p, float v)
{
    return p->nms == MODEL_NMS_CLASSIC ? v >= p->confidence : v > p->confidence;
}

static int decode_v5(const struct model *m, const struct model__out *o,
                     const struct model__out *op, int b, const struct model_letterbox *lb,
                     const struct model_params *p, struct model_result *r, char *err,
                     size_t errlen)
{
    size_t A = (size_t)o->shape[1], C = (size_t)o->shape[2], nc = m->n_classes;
    size_t nm = op ? (size_t)m->nm : 0;
    const float *base = o->data + (size_t)b * A * C;
    struct cand c = {0};
    struct seg_ctx seg;
    int rc = 0;
    if (C != 5 + nc + nm)
        return ERR_INVALID;
    if (op) {
        if (op->rank != 4 || op->shape[1] != (int64_t)nm || op->shape[2] < 1 || op->shape[3] < 1)
            return ERR_INVALID;
        seg = (struct seg_ctx){base + 5 + nc, C,
                               op->data + (size_t)b * nm * (size_t)op->shape[2] * (size_t)op->shape[3],
                               (int)op->shape[2], (int)op->shape[3]};
    }
    for (size_t a = 0; a < A && rc == 0; a++) {
        const float *row = base + a * C;
        if (isnan(row[4])) {
            snprintf(err, errlen, "the network produced a NaN objectness (anchor %zu)", a);
            rc = ERR_INVALID;
            break;
        }
        if (!pass(p, row[4]))
            continue;
        float best = row[5];
        int cls = 0;
        bool nan = isnan(best);
        for (size_t k = 1; k < nc; k++) {
            nan = nan || isnan(row[5 + k]);
            if (row[5 + k] > best) {
                best = row[5 + k];
                cls = (int)k;
            }
        }
        if (nan) {
            snprintf(err, errlen, "the network produced a NaN class score (anchor %zu)", a);
            rc = ERR_INVALID;
            break;
        }
        float hw = row[2] / 2, hh = row[3] / 2;
        rc = cand_push(&c, row[0] - hw, row[1] - hh, row[0] + hw, row[1] + hh, best, cls, a);
    }
    if (rc == 0)
        rc = nms_emit(m, p, lb, &c, op ? &seg : NULL, r, err, errlen);
    cand_free(&c);
    return rc;
}

static int decode_nas(const struct model *m, const struct model__out *ob,
                      const struct model__out *os, int b, const struct model_letterbox *lb,
                      const struct model_params *p, struct model_result *r, char *err,
                      size_t errlen)
{
    size_t A = (size_t)ob->shape[1], nc = m->n_classes;
    if (ob->shape[2] != 4 || os->shape[1] != (int64_t)A || os->shape[2] != (int64_t)nc)
        return ERR_INVALID;
    const float *bx = ob->data + (size_t)b * A * 4, *sc = os->data + (size_t)b * A * nc;
    struct cand c = {0};
    int rc = 0;
    for (size_t a = 0; a < A && rc == 0; a++) {
        const float *row = sc + a * nc;
        float best = row[0];
        int cls = 0;
        bool nan = isnan(best);
        for (size_t k = 1; k < nc; k++) {
            nan = nan || isnan(row[k]);
            if (row[k] > best) {
                best = row[k];
                cls = (int)k;
            }
        }
        if (nan) {
            snprintf(err, errlen, "the network produced a NaN score (anchor %zu)", a);
            rc = ERR_INVALID;
            break;
        }
        if (!pass(p, best))
            continue;
        const float *q = bx + a * 4;
        rc = cand_push(&c, q[0], q[1], q[2], q[3], best, cls, a);
    }
    if (rc == 0)
        rc = nms_emit(m, p, lb, &c, NULL, r, err, errlen);
    cand_free(&c);
    return rc;
}

static int decode_e2e(const struct model *m, const struct model__out *o, int b,
                      const struct model_letterbox *lb, const struct model_params *p,
                      struct model_result *r, char *err, size_t errlen)
{
    size_t K = (size_t)o->shape[1];
    const float *base = o->data + (size_t)b * K * 6;
    /* YOLOv10 keeps the first max_detections rows; YOLO26 and fused-NMS
     * packages keep every row (post_process_nms_fused_model_output) */
    size_t maxk = p->max_detections > 0 && !m->e2e_inclusive ? (size_t)p->max_detections : K;
    r->dets = try_calloc(MIN(K, maxk) ? MIN(K, maxk) : 1, sizeof(*r->dets));
    if (!r->dets)
        return ERR_NOMEM;
    size_t kept = 0;
    for (size_t k = 0; k < K && kept < maxk; k++) {
        const float *row = base + k * 6;
        if (isnan(row[4])) {
            snprintf(err, errlen, "the network produced a NaN score (detection %zu)", k);
            return ERR_INVALID;
        }
        bool ok = m->e2e_inclusive ? row[4] >= p->confidence : row[4] > p->confidence;
        if (!ok)
            continue;
        float cf = row[5];
        if (!(cf >= 0 && cf < (float)m->n_classes) || cf != floorf(cf)) {
            snprintf(err, errlen, "the network produced class %g for detection %zu; the model "
                     "has %zu classes", (double)cf, k, m->n_classes);
            return ERR_INVALID;
        }
        struct model_box bx = {row[0], row[1], row[2], row[3], row[4], (int)cf};
        kept++;
        int rc = emit(m, p, lb, &bx, r, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

struct detr_item {
    float s;
    uint32_t idx; /* query * C + class */
};

static int cmp_detr(const void *a, const void *b)
{
    const struct detr_item *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static inline float mask_at(const float *plane, int mw, int mh, int x, int y)
{
    /* outside the logits (a centre crop's negative padding): zeros, as
     * Roboflow pads them */
    return x < 0 || y < 0 || x >= mw || y >= mh ? 0.0f : plane[(size_t)y * (size_t)mw + (size_t)x];
}

/* RF-DETR mask of one query (logits mh x mw at the network input's
 * resolution ratio) -> polygon in image pixels, as
 * align_instance_segmentation_results does it: the letterbox padding cut
 * in mask cells (rounded), bilinear resize (half-pixel centres) to the
 * image after static crop, logit > 0; then the largest component's
 * boundary.  Only the pixels whose bilinear samples can touch a positive
 * logit are evaluated. */
static int detr_mask_polygon(const struct model *m, const float *plane, int mh, int mw,
                             const struct model_letterbox *lb, bool keep,
                             struct model_detection *d)
{
    double W = m->in_w, H = m->in_h;
    double pl = lb->ox, pt = lb->oy;
    double pr = W - pl - (double)lb->crop_w * lb->sx, pb = H - pt - (double)lb->crop_h * lb->sy;
    int mpl = (int)nearbyint(mw / W * pl), mpr = (int)nearbyint(mw / W * pr);
    int mpt = (int)nearbyint(mh / H * pt), mpb = (int)nearbyint(mh / H * pb);
    int x0 = mpl, y0 = mpt, sw = mw - mpr - mpl, sh = mh - mpb - mpt;
    int ow = lb->crop_w, oh = lb->crop_h, rc = 0;
    if (sw <= 0 || sh <= 0 || ow <= 0 || oh <= 0)
        return 0;
    /* positive cells of the cut-out */
    int cx0 = sw, cy0 = sh, cx1 = -1, cy1 = -1;
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++)
            if (mask_at(plane, mw, mh, x0 + x, y0 + y) > 0) {
                cx0 = MIN(cx0, x);
                cx1 = MAX(cx1, x);
                cy0 = MIN(cy0, y);
                cy1 = MAX(cy1, y);
            }
    if (cx1 < 0)
        return 0;
    float fx = (float)sw / (float)ow, fy = (float)sh / (float)oh;
    /* output pixels whose source position lies within one cell of them */
    int rx0 = MAX(0, (int)floor((cx0 - 1 + 0.5) / fx - 0.5) - 1);
    int rx1 = MIN(ow - 1, (int)ceil((cx1 + 1 + 0.5) / fx - 0.5) + 1);
    int ry0 = MAX(0, (int)floor((cy0 - 1 + 0.5) / fy - 0.5) - 1);
    int ry1 = MIN(oh - 1, (int)ceil((cy1 + 1 + 0.5) / fy - 0.5) + 1);
    int rw = rx1 - rx0 + 1, rh = ry1 - ry0 + 1;
    if (rw <= 0 || rh <= 0)
        return 0;
    uint8_t *mask = try_calloc((size_t)rw * (size_t)rh, 1);
    if (!mask)
        return ERR_NOMEM;
    for (int y = 0; y < rh; y++) {
        float sy = ((float)(ry0 + y) + 0.5f) * fy - 0.5f;
        if (sy < 0)
            sy = 0;
        int ya = (int)sy, yb = ya + (ya < sh - 1 ? 1 : 0);
        float ly = sy - (float)ya;
        for (int x = 0; x < rw; x++) {
            float sx = ((float)(rx0 + x) + 0.5f) * fx - 0.5f;
            if (sx < 0)
                sx = 0;
            int xa = (int)sx, xb = xa + (xa < sw - 1 ? 1 : 0);
            float lx = sx - (float)xa;
            float v00 = mask_at(plane, mw, mh, x0 + xa, y0 + ya);
            float v01 = mask_at(plane, mw, mh, x0 + xb, y0 + ya);
            float v10 = mask_at(plane, mw, mh, x0 + xa, y0 + yb);
            float v11 = mask_at(plane, mw, mh, x0 + xb, y0 + yb);
            float v = (1 - ly) * ((1 - lx) * v00 + lx * v01) + ly * ((1 - lx) * v10 + lx * v11);
            mask[(size_t)y * (size_t)rw + (size_t)x] = v > 0;
        }
    }
    if (keep) /* the whole mask, all its components, before the polygon's choice */
        model__keep_mask(d, mask, rx0 + lb->crop_x, ry0 + lb->crop_y, rw, rh);
    rc = model__mask_to_polygon(mask, rw, rh, (float)(rx0 + lb->crop_x), (float)(ry0 + lb->crop_y),
                                d);
    free(mask);
    return rc;
}

static int decode_detr(const struct model *m, const struct model__out *ob,
                       const struct model__out *os, const struct model__out *om, int b,
                       const struct model_letterbox *lb, const struct model_params *p,
                       struct model_result *r, char *err, size_t errlen)
{
    size_t Q = (size_t)ob->shape[1], C = (size_t)os->shape[2];
    if (ob->shape[2] != 4 || os->shape[1] != (int64_t)Q || Q * C > UINT32_MAX)
        return ERR_INVALID;
    const float *bx = ob->data + (size_t)b * Q * 4, *lg = os->data + (size_t)b * Q * C;
    size_t QC = Q * C;
    struct detr_item *it = try_alloc(QC ? QC : 1, sizeof(*it));
    size_t n = 0;
    int rc = 0;
    if (!it)
        return ERR_NOMEM;
    /* The Q best pairs over all classes (no-object included), then the named
     * ones above the threshold: only pairs above it can survive, so collect
     * those and cut at Q. */
    for (size_t i = 0; i < Q * C; i++) {
        float v = lg[i];
        if (isnan(v)) {
            snprintf(err, errlen, "the network produced a NaN class logit (query %zu)", i / C);
            rc = ERR_INVALID;
            goto out;
        }
        float s = 1.0f / (1.0f + expf(-v));
        if (s > p->confidence)
            it[n++] = (struct detr_item){s, (uint32_t)i};
    }
    qsort(it, n, sizeof(*it), cmp_detr);
    n = MIN(n, Q);
    /* no max_detections for detection: Roboflow's RF-DETR detection path
     * has none (the Q queries bound the count); segmentation caps before
     * the masks, as post_process_instance_segmentation_results does */
    r->dets = try_calloc(n ? n : 1, sizeof(*r->dets));
    if (!r->dets) {
        rc = ERR_NOMEM;
        goto out;
    }
    float W = (float)m->in_w, H = (float)m->in_h;
    size_t kept = 0, maxk = om && p->max_detections > 0 ? (size_t)p->max_detections : n;
    for (size_t i = 0; i < n && kept < maxk && rc == 0; i++) {
        size_t q = it[i].idx / C, cl = it[i].idx % C;
        int cls;
        if (m->class_map)
            cls = cl < m->n_class_map ? m->class_map[cl] : -1;
        else
            cls = cl < m->n_classes ? (int)cl : -1;
        if (cls < 0)
            continue;
        const float *d = bx + q * 4;
        float x1 = d[0] - 0.5f * d[2], y1 = d[1] - 0.5f * d[3];
        float x2 = d[0] + 0.5f * d[2], y2 = d[1] + 0.5f * d[3];
        struct model_box box = {x1 * W, y1 * H, x2 * W, y2 * H, it[i].s, cls};
        size_t before = r->n_dets;
        kept++;
        rc = emit(m, p, lb, &box, r, err, errlen);
        if (rc == 0 && om && r->n_dets > before) {
            int mh = (int)om->shape[2], mw = (int)om->shape[3];
            const float *plane = om->data + ((size_t)b * Q + q) * (size_t)mh * (size_t)mw;
            rc = detr_mask_polygon(m, plane, mh, mw, lb, p->rle_masks,
                                   &r->dets[r->n_dets - 1]);
        }
    }
out:
    free(it);
    return rc;
}

int model__decode_family(const struct model *m, const struct model__out *outs, int b,
                         const struct model_letterbox *lb, const struct model_params *p,
                         struct model_result *r, char *err, size_t errlen)
{
    const struct model__out *o = &outs[m->det_out];
    r->task = m->task;
    if (m->task == MODEL_TASK_SEGMENTATION && m->family != MODEL_FAMILY_RFDETR &&
        m->family != MODEL_FAMILY_YOLOV5)
        return ERR_INVALID;
    if (o->rank != 3)
        return ERR_INVALID;
    switch (m->family) {
    case MODEL_FAMILY_YOLOV5:
        return decode_v5(m, o, m->task == MODEL_TASK_SEGMENTATION ? &outs[m->proto_out] : NULL, b,
                         lb, p, r, err, errlen);
    case MODEL_FAMILY_E2E:
        if (o->shape[2] != 6)
            return ERR_INVALID;
        return decode_e2e(m, o, b, lb, p, r, err, errlen);
    case MODEL_FAMILY_YOLONAS:
        if (outs[m->scores_out].rank != 3)
            return ERR_INVALID;
        return decode_nas(m, o, &outs[m->scores_out], b, lb, p, r, err, errlen);
    case MODEL_FAMILY_RFDETR: {
        const struct model__out *om = NULL;
        if (outs[m->scores_out].rank != 3)
            return ERR_INVALID;
        if (m->task == MODEL_TASK_SEGMENTATION) {
            om = &outs[m->proto_out];
            if (om->rank != 4 || om->shape[1] != o->shape[1] || om->shape[2] < 1 ||
                om->shape[3] < 1)
                return ERR_INVALID;
        }
        return decode_detr(m, o, &outs[m->scores_out], om, b, lb, p, r, err, errlen);
    }
    default:
        return ERR_INVALID;
    }
}

const char *model__family_label(enum model__family f)
{
    return (size_t)f < ARRAY_LEN(fam_label) && fam_label[f] ? fam_label[f] : "unknown";
}
