/*
 * ocr.c — PP-OCR text reading: a DB text detector and a CTC text recogniser
 * (two ONNX files) plus the recogniser's character dictionary, loaded from
 * one model folder (docs/MODELS.md, "OCR").  Follows PaddleOCR's published
 * pre- and post-processing (tools/infer/predict_det.py, predict_rec.py,
 * ppocr/postprocess/db_postprocess.py, rec_postprocess.py CTCLabelDecode):
 *
 *   detection    the BGR image resized so that its longer side is at most
 *                960 (never enlarged), each side then rounded to a multiple
 *                of 32 (at least 32); (x / 255 - mean) / std with ImageNet
 *                mean/std per channel in B, G, R order as PaddleOCR applies
 *                them to its cv2 image; output: probability map (1, 1, H, W).
 *                bitmap = prob > 0.3; boxes from the 8-connected components
 *                of the bitmap (at most 1000); score = mean probability
 *                inside the box; kept when >= 0.6; the box grown by
 *                unclip distance area * 1.5 / perimeter on each side; kept
 *                when its short side >= 5; scaled back to the image.
 *   recognition  each box cropped, resized to height 48 keeping its aspect
 *                ratio (width ceil(48 * w / h), at most 48 * max(320/48,
 *                w / h)), (x / 255 - 0.5) / 0.5, right-padded with zeros to
 *                the padded width; output (1, T, C) probabilities.  CTC
 *                greedy decoding: argmax per step, repeats merged, blank (0)
 *                dropped; class k >= 1 is dictionary line k - 1, the class
 *                after the dictionary a space (use_space_char); score = mean
 *                of the kept steps' maxima; text with score < 0.5 dropped
 *                (TextSystem drop_score).
 *
 * Departures (also in docs/MODELS.md): boxes are axis-aligned (the
 * components' bounding boxes, not minAreaRect of cv2 contours), so rotated
 * text is read only as far as its bounding box allows; each crop is
 * recognised alone (PaddleOCR batches six crops of similar aspect ratio and
 * pads them to the widest, which changes the padding only); crops are not
 * rotated by 90 degrees when they are tall, and the orientation classifier
 * is not run.
 */
#include "model/model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

#define CLAMP(v, lo, hi) ((v) < (lo) ? (lo) : (v) > (hi) ? (hi) : (v))

#define OCR_DET_LIMIT 960
#define OCR_DET_THRESH 0.3f
#define OCR_BOX_THRESH 0.6f
#define OCR_MAX_CANDIDATES 1000
#define OCR_UNCLIP 1.5f
#define OCR_MIN_SIZE 3
#define OCR_REC_H 48
#define OCR_REC_W 320
#define OCR_REC_MAX_W 4096 /* widest recogniser input accepted, pixels */
#define OCR_DROP_SCORE 0.5f
#define OCR_MAX_DICT 100000
#define OCR_MAX_TEXT 4096 /* bytes of one recognised text */

struct model__ocr {
    OrtSession *det, *rec;
    char *det_in, *det_out, *rec_in, *rec_out;
    char **dict; /* n_dict lines of dict.txt */
    size_t n_dict;
    size_t n_cls; /* recogniser classes: blank + dictionary (+ space) */
};

static void shape_str(const int64_t *d, size_t r, char *out, size_t cap)
{
    size_t l = 0;
    out[0] = 0;
    for (size_t i = 0; i < r && l + 24 < cap; i++)
        l += (size_t)snprintf(out + l, cap - l, "%s%lld", i ? "x" : "", (long long)d[i]);
    if (!r)
        snprintf(out, cap, "a scalar");
}

/* ---- loading ------------------------------------------------------------------ */

static void ocr_free(struct model__ocr *o, const OrtApi *api)
{
    if (!o)
        return;
    if (o->det)
        api->ReleaseSession(o->det);
    if (o->rec)
        api->ReleaseSession(o->rec);
    free(o->det_in);
    free(o->det_out);
    free(o->rec_in);
    free(o->rec_out);
    for (size_t i = 0; i < o->n_dict; i++)
        free(o->dict[i]);
    free(o->dict);
    free(o);
}

void model__ocr_free(struct model *m)
{
    if (m->ocr)
        ocr_free(m->ocr, m->ort->api);
    m->ocr = NULL;
}

static int parse_dict(const char *txt, size_t len, struct model__ocr *o, char *err, size_t errlen)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && txt[i] != '\n')
            continue;
        size_t e = i;
        if (e > start && txt[e - 1] == '\r')
            e--;
        if (i == len && e == start)
            break; /* no trailing line */
        if (o->n_dict >= OCR_MAX_DICT) {
            snprintf(err, errlen, "dict.txt has more than %d lines", OCR_MAX_DICT);
            return ERR_LIMIT;
        }
        if (memchr(txt + start, 0, e - start)) {
            snprintf(err, errlen, "dict.txt line %zu holds a NUL byte", o->n_dict + 1);
            return ERR_INVALID;
        }
        if (o->n_dict % 1024 == 0)
            o->dict = xrealloc(o->dict, (o->n_dict + 1024) * sizeof *o->dict);
        o->dict[o->n_dict++] = xstrndup(txt + start, e - start);
        start = i + 1;
    }
    if (!o->n_dict) {
        snprintf(err, errlen, "dict.txt is empty");
        return ERR_INVALID;
    }
    return 0;
}

/* The single float input and output of a session, their names and
 * input dims (NCHW, 3 channels). */
static int io_check(const OrtApi *api, OrtSession *s, const char *what, char **in_name,
                    char **out_name, int64_t in_dims[8], char *err, size_t errlen)
{
    ONNXTensorElementDataType ty;
    size_t r = 0;
    int rc = model__io1(api, s, what, "PP-OCR models have one of each", in_name, out_name, &ty, in_dims, &r,
                        err, errlen);
    if (rc < 0)
        return rc;
    if (ty != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || r != 4) {
        snprintf(err, errlen, "%s: input must be float32 NCHW (rank 4), found element type %d "
                 "rank %zu", what, (int)ty, r);
        rc = ERR_INVALID;
    } else if (in_dims[1] != 3) {
        snprintf(err, errlen, "%s: input has %lld channels, 3 expected", what,
                 (long long)in_dims[1]);
        rc = ERR_INVALID;
    }
    if (rc < 0) {
        free(*in_name);
        free(*out_name);
        *in_name = *out_name = NULL;
    }
    return rc;
}

/* Run one session on a (1, 3, h, w) tensor; *outv receives the output
 * (caller releases), dims/rank its shape. */
static int ocr_run1(struct model *m, OrtSession *s, const char *in_name, const char *out_name,
                    float *t, int h, int w, OrtValue **outv, const float **data, int64_t *dims,
                    size_t *rank, char *err, size_t errlen)
{
    int64_t shape[4] = {1, 3, h, w};
    char what[300];
    struct model__view v;
    snprintf(what, sizeof what, "model '%s' failed to run", m->id);
    int rc = model__run1(m, s, in_name, out_name, t, (size_t)3 * (size_t)h * (size_t)w * sizeof(float), shape, 4,
                         ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, what, outv, err, errlen);
    if (rc < 0)
        return rc;
    if (model__value_view(m->ort->api, *outv, &v) < 0) {
        m->ort->api->ReleaseValue(*outv);
        *outv = NULL;
        snprintf(err, errlen, "model '%s': unreadable output", m->id);
        return ERR_INVALID;
    }
    memcpy(dims, v.dims, v.rank * sizeof *dims);
    *data = v.data;
    *rank = v.rank;
    return 0;
}

int model__ocr_open(struct model *m, const char *dir, const struct model__files *fs,
                    const json_t *meta, uint64_t max_bytes,
                    int threads, bool spinning, const char *machine_type, char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    struct model__ocr *o = xcalloc(1, sizeof *o);
    char *buf = NULL;
    size_t len = 0, r = 0;
    int64_t din[8], rin[8], od[8];
    OrtValue *ov = NULL;
    const float *data = NULL;
    float *t = NULL;
    char e2[768], e3[512];
    int rc;

    /* dictionary */
    if ((rc = model__read_part(dir, fs, model__part_name(meta, "dictionary", "dict.txt"), 1u << 20, &buf, &len, e2,
                        sizeof e2)) < 0 ||
        (rc = parse_dict(buf, len, o, e2, sizeof e2)) < 0)
        goto fail;
    free(buf);
    buf = NULL;
    /* detector */
    if ((rc = model__part_session(m, dir, fs, model__part_name(meta, "detector", "det.onnx"), "text detector (det.onnx)", max_bytes,
                                  threads, spinning, machine_type, &o->det, e2, sizeof e2)) < 0)
        goto fail;
    if ((rc = io_check(api, o->det, "text detector (det.onnx)", &o->det_in, &o->det_out, din, e2,
                       sizeof e2)) < 0)
        goto fail;
    /* recogniser */
    if ((rc = model__part_session(m, dir, fs, model__part_name(meta, "recognizer", "rec.onnx"), "text recogniser (rec.onnx)", max_bytes,
                                  threads, spinning, machine_type, &o->rec, e2, sizeof e2)) < 0)
        goto fail;
    if ((rc = io_check(api, o->rec, "text recogniser (rec.onnx)", &o->rec_in, &o->rec_out, rin,
                       e2, sizeof e2)) < 0)
        goto fail;
    if (rin[2] != OCR_REC_H && rin[2] > 0) {
        snprintf(e2, sizeof e2, "text recogniser (rec.onnx): input height is %lld, PP-OCR "
                 "recognisers take %d", (long long)rin[2], OCR_REC_H);
        rc = ERR_INVALID;
        goto fail;
    }
    m->ocr = o;
    /* trial runs: shapes and finite values */
    t = xcalloc((size_t)3 * 64 * OCR_REC_W, sizeof(float));
    if ((rc = ocr_run1(m, o->det, o->det_in, o->det_out, t, 64, 64, &ov, &data, od, &r, e3,
                       sizeof e3)) < 0) {
        snprintf(e2, sizeof e2, "text detector (det.onnx): a run on a blank 1x3x64x64 image "
                 "failed: %s", e3);
        goto fail_m;
    }
    if (r != 4 || od[0] != 1 || od[1] != 1 || od[2] != 64 || od[3] != 64) {
        char sh[128];
        shape_str(od, r, sh, sizeof sh);
        snprintf(e2, sizeof e2, "text detector (det.onnx): a 1x3x64x64 input gave output %s; a "
                 "DB text detector gives a probability map 1x1x64x64", sh);
        rc = ERR_INVALID;
        goto fail_m;
    }
    for (size_t i = 0; i < 64 * 64; i++)
        if (!isfinite(data[i])) {
            snprintf(e2, sizeof e2, "text detector (det.onnx): output is not finite (NaN or "
                     "infinity) on a blank image");
            rc = ERR_INVALID;
            goto fail_m;
        }
    api->ReleaseValue(ov);
    ov = NULL;
    if ((rc = ocr_run1(m, o->rec, o->rec_in, o->rec_out, t, OCR_REC_H, OCR_REC_W, &ov, &data, od,
                       &r, e3, sizeof e3)) < 0) {
        snprintf(e2, sizeof e2, "text recogniser (rec.onnx): a run on a blank 1x3x48x320 image "
                 "failed: %s", e3);
        goto fail_m;
    }
    if (r != 3 || od[0] != 1 || od[1] < 1 || od[2] < 2) {
        char sh[128];
        shape_str(od, r, sh, sizeof sh);
        snprintf(e2, sizeof e2, "text recogniser (rec.onnx): a 1x3x48x320 input gave output %s; "
                 "a CTC recogniser gives 1 x steps x classes", sh);
        rc = ERR_INVALID;
        goto fail_m;
    }
    if ((size_t)od[2] != o->n_dict + 2 && (size_t)od[2] != o->n_dict + 1) {
        snprintf(e2, sizeof e2, "text recogniser (rec.onnx) has %lld classes but dict.txt has "
                 "%zu lines: expected %zu (blank + dictionary + space) or %zu (no space)",
                 (long long)od[2], o->n_dict, o->n_dict + 2, o->n_dict + 1);
        rc = ERR_INVALID;
        goto fail_m;
    }
    o->n_cls = (size_t)od[2];
    for (size_t i = 0; i < (size_t)od[1] * o->n_cls; i++)
        if (!isfinite(data[i])) {
            snprintf(e2, sizeof e2, "text recogniser (rec.onnx): output is not finite (NaN or "
                     "infinity) on a blank image");
            rc = ERR_INVALID;
            goto fail_m;
        }
    api->ReleaseValue(ov);
    free(t);
    m->task = MODEL_TASK_OCR;
    m->arch = xstrdup("pp-ocr");
    m->in_w = m->in_h = 0;
    m->in_c = 3;
    return 0;
fail_m:
    m->ocr = NULL;
fail:
    if (ov)
        api->ReleaseValue(ov);
    free(t);
    free(buf);
    ocr_free(o, api);
    snprintf(err, errlen, "OCR model '%s': %s", m->id, e2);
    return rc;
}

size_t model__ocr_dict_size(const struct model *m)
{
    return m->ocr ? m->ocr->n_dict : 0;
}

/* ---- detection ------------------------------------------------------------------- */

/* 3 x h x w tensor of img (BGR), channel c: (x / 255 - mean[c]) / std[c]. */
static void to_tensor(const struct vis_image *img, const float mean[3], const float stdv[3],
                      float *t, int tw)
{
    size_t plane = (size_t)img->h * (size_t)tw;
    for (int y = 0; y < img->h; y++) {
        const uint8_t *row = img->px + (size_t)y * (size_t)img->stride;
        for (int x = 0; x < img->w; x++)
            for (int c = 0; c < 3; c++)
                t[(size_t)c * plane + (size_t)y * (size_t)tw + (size_t)x] =
                    ((float)row[x * 3 + c] / 255.0f - mean[c]) / stdv[c];
    }
}

struct ocr_box {
    float x1, y1, x2, y2; /* image pixels */
    float score;          /* recognition score */
    char *text;
};

static int cmp_box(const void *a, const void *b)
{
    const struct ocr_box *p = a, *q = b;
    if (p->y1 != q->y1)
        return p->y1 < q->y1 ? -1 : 1;
    return p->x1 < q->x1 ? -1 : p->x1 > q->x1;
}

/* Boxes of the probability map prob (ph x pw; the image was resized to it
 * from iw x ih). */
static size_t det_boxes(const float *prob, int ph, int pw, int iw, int ih, struct ocr_box **out)
{
    size_t n = (size_t)ph * (size_t)pw, nb = 0;
    int32_t *lab = xcalloc(n, sizeof *lab);
    int32_t *stack = xmalloc(n * sizeof *stack);
    struct ocr_box *boxes = NULL;
    int ncomp = 0;

    for (size_t s = 0; s < n && ncomp < OCR_MAX_CANDIDATES; s++) {
        if (lab[s] || !(prob[s] > OCR_DET_THRESH))
            continue;
        int x0 = pw, y0 = ph, x1 = -1, y1 = -1;
        size_t sp = 0;
        lab[s] = ++ncomp;
        stack[sp++] = (int32_t)s;
        while (sp) {
            int32_t v = stack[--sp];
            int x = v % pw, y = v / pw;
            x0 = MIN(x0, x), x1 = MAX(x1, x), y0 = MIN(y0, y), y1 = MAX(y1, y);
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int nx = x + dx, ny = y + dy;
                    if (nx < 0 || ny < 0 || nx >= pw || ny >= ph)
                        continue;
                    size_t k = (size_t)ny * (size_t)pw + (size_t)nx;
                    if (!lab[k] && prob[k] > OCR_DET_THRESH) {
                        lab[k] = ncomp;
                        stack[sp++] = (int32_t)k;
                    }
                }
        }
        /* box of the component through pixel centres, as cv2 contours */
        float w = (float)(x1 - x0), h = (float)(y1 - y0);
        if (MIN(w, h) < OCR_MIN_SIZE)
            continue;
        double sum = 0;
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
                sum += prob[(size_t)y * (size_t)pw + (size_t)x];
        float score = (float)(sum / ((double)(x1 - x0 + 1) * (double)(y1 - y0 + 1)));
        if (score < OCR_BOX_THRESH)
            continue;
        float d = w * h * OCR_UNCLIP / (2.0f * (w + h));
        float bx0 = (float)x0 - d, by0 = (float)y0 - d, bx1 = (float)x1 + d, by1 = (float)y1 + d;
        if (MIN(bx1 - bx0, by1 - by0) < OCR_MIN_SIZE + 2)
            continue;
        float sx = (float)iw / (float)pw, sy = (float)ih / (float)ph;
        struct ocr_box b = {0};
        b.x1 = CLAMP(roundf(bx0 * sx), 0.0f, (float)iw);
        b.y1 = CLAMP(roundf(by0 * sy), 0.0f, (float)ih);
        b.x2 = CLAMP(roundf(bx1 * sx), 0.0f, (float)iw);
        b.y2 = CLAMP(roundf(by1 * sy), 0.0f, (float)ih);
        if (b.x2 - b.x1 < 1 || b.y2 - b.y1 < 1)
            continue;
        if (nb % 64 == 0)
            boxes = xrealloc(boxes, (nb + 64) * sizeof *boxes);
        boxes[nb++] = b;
    }
    free(lab);
    free(stack);
    if (nb)
        qsort(boxes, nb, sizeof *boxes, cmp_box);
    /* PaddleOCR sorted_boxes: boxes on one line (|dy| < 10) left to right */
    for (size_t i = 0; i + 1 < nb; i++)
        for (size_t j = i; j-- > 0;) {
            if (fabsf(boxes[j + 1].y1 - boxes[j].y1) < 10 && boxes[j + 1].x1 < boxes[j].x1) {
                struct ocr_box tmp = boxes[j];
                boxes[j] = boxes[j + 1];
                boxes[j + 1] = tmp;
            } else {
                break;
            }
        }
    *out = boxes;
    return nb;
}

/* ---- recognition ------------------------------------------------------------------ */

static void utf8_cat(char *dst, size_t cap, size_t *len, const char *s)
{
    size_t l = strlen(s);
    if (*len + l + 1 > cap)
        return;
    memcpy(dst + *len, s, l);
    *len += l;
    dst[*len] = 0;
}

static int recognise(struct model *m, const struct vis_image *img, struct ocr_box *b, char *err,
                     size_t errlen)
{
    static const float mean[3] = {0.5f, 0.5f, 0.5f}, stdv[3] = {0.5f, 0.5f, 0.5f};
    struct model__ocr *o = m->ocr;
    const OrtApi *api = m->ort->api;
    struct vis_image view, *rs = NULL;
    int x = (int)b->x1, y = (int)b->y1, w = (int)(b->x2 - b->x1), h = (int)(b->y2 - b->y1);
    int rc;
    OrtValue *ov = NULL;
    const float *d = NULL;
    int64_t od[8];
    size_t r = 0;
    float *t = NULL;

    b->text = NULL;
    b->score = 0;
    if ((rc = vis_image_view(img, x, y, w, h, &view)) < 0) {
        snprintf(err, errlen, "cannot crop a text box: %s", err_str(rc));
        return rc;
    }
    double ratio = (double)w / (double)h;
    int pad_w = (int)(OCR_REC_H * MAX((double)OCR_REC_W / OCR_REC_H, ratio));
    pad_w = MIN(pad_w, OCR_REC_MAX_W);
    int rw = (int)ceil(OCR_REC_H * ratio);
    rw = CLAMP(rw, 1, pad_w);
    if ((rc = vis_resize(&view, rw, OCR_REC_H, VIS_INTER_LINEAR, &rs)) < 0) {
        snprintf(err, errlen, "cannot resize a text box: %s", err_str(rc));
        return rc;
    }
    t = xcalloc((size_t)3 * OCR_REC_H * (size_t)pad_w, sizeof *t);
    to_tensor(rs, mean, stdv, t, pad_w);
    vis_image_free(rs);
    rc = ocr_run1(m, o->rec, o->rec_in, o->rec_out, t, OCR_REC_H, pad_w, &ov, &d, od, &r, err,
                  errlen);
    free(t);
    if (rc < 0)
        return rc;
    if (r != 3 || od[0] != 1 || (size_t)od[2] != o->n_cls || od[1] < 0) {
        api->ReleaseValue(ov);
        snprintf(err, errlen, "model '%s': the recogniser's output changed shape", m->id);
        return ERR_INVALID;
    }
    char *text = xmalloc(OCR_MAX_TEXT);
    size_t tl = 0, kept = 0, prev = 0;
    double sum = 0;
    text[0] = 0;
    for (int64_t s = 0; s < od[1]; s++) {
        const float *p = d + (size_t)s * o->n_cls;
        size_t best = 0;
        for (size_t k = 1; k < o->n_cls; k++)
            if (p[k] > p[best])
                best = k;
        if (!isfinite(p[best])) {
            api->ReleaseValue(ov);
            free(text);
            snprintf(err, errlen, "model '%s': the recogniser's output is not finite", m->id);
            return ERR_INVALID;
        }
        if (best != 0 && best != prev) {
            utf8_cat(text, OCR_MAX_TEXT, &tl, best <= o->n_dict ? o->dict[best - 1] : " ");
            sum += p[best];
            kept++;
        }
        prev = best;
    }
    api->ReleaseValue(ov);
    b->score = kept ? (float)(sum / (double)kept) : 0.0f;
    b->text = text;
    return 0;
}

int model_ocr_run(struct model *m, const struct vis_image *img0, struct model_ocr_result *res,
                   char *err, size_t errlen)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    struct model__ocr *o = m->ocr;
    const OrtApi *api = m->ort->api;
    struct vis_image *img = NULL, *rs = NULL;
    struct ocr_box *boxes = NULL;
    size_t nb = 0;
    float *t = NULL;
    OrtValue *ov = NULL;
    const float *d = NULL;
    int64_t od[8];
    size_t r = 0;
    int rc;

    memset(res, 0, sizeof *res);
    if (!o) {
        snprintf(err, errlen, "model '%s' is not an OCR model", m->id);
        return ERR_INVALID;
    }
    if (img0->fmt != VIS_BGR) {
        if ((rc = vis_convert(img0, VIS_BGR, &img)) < 0) {
            snprintf(err, errlen, "cannot convert the image: %s", err_str(rc));
            return rc;
        }
    }
    const struct vis_image *src = img ? img : img0;
    res->image_w = src->w;
    res->image_h = src->h;
    double ratio = MAX(src->w, src->h) > OCR_DET_LIMIT
                       ? (double)OCR_DET_LIMIT / (double)MAX(src->w, src->h)
                       : 1.0;
    int rh = (int)(src->h * ratio), rw = (int)(src->w * ratio);
    rh = MAX((int)lround(rh / 32.0) * 32, 32);
    rw = MAX((int)lround(rw / 32.0) * 32, 32);
    if ((rc = vis_resize(src, rw, rh, VIS_INTER_LINEAR, &rs)) < 0) {
        snprintf(err, errlen, "cannot resize the image: %s", err_str(rc));
        goto out;
    }
    t = xmalloc((size_t)3 * (size_t)rw * (size_t)rh * sizeof *t);
    to_tensor(rs, mean, stdv, t, rw);
    vis_image_free(rs);
    rs = NULL;
    if ((rc = ocr_run1(m, o->det, o->det_in, o->det_out, t, rh, rw, &ov, &d, od, &r, err,
                       errlen)) < 0)
        goto out;
    if (r != 4 || od[0] != 1 || od[1] != 1 || od[2] != rh || od[3] != rw) {
        snprintf(err, errlen, "model '%s': the detector's output is not a %dx%d map", m->id, rw,
                 rh);
        rc = ERR_INVALID;
        goto out;
    }
    for (size_t i = 0; i < (size_t)rw * (size_t)rh; i++)
        if (isnan(d[i])) {
            snprintf(err, errlen, "model '%s': the detector's output is not finite (NaN)", m->id);
            rc = ERR_INVALID;
            goto out;
        }
    nb = det_boxes(d, rh, rw, src->w, src->h, &boxes);
    api->ReleaseValue(ov);
    ov = NULL;
    res->words = xcalloc(nb ? nb : 1, sizeof *res->words);
    for (size_t i = 0; i < nb; i++) {
        if ((rc = recognise(m, src, &boxes[i], err, errlen)) < 0)
            goto out;
        if (boxes[i].score < OCR_DROP_SCORE || !boxes[i].text[0]) {
            free(boxes[i].text);
            boxes[i].text = NULL;
            continue;
        }
        struct model_ocr_word *wd = &res->words[res->n_words++];
        wd->x1 = boxes[i].x1, wd->y1 = boxes[i].y1, wd->x2 = boxes[i].x2, wd->y2 = boxes[i].y2;
        wd->confidence = boxes[i].score;
        wd->text = boxes[i].text;
        boxes[i].text = NULL;
    }
    rc = 0;
out:
    if (ov)
        api->ReleaseValue(ov);
    for (size_t i = 0; i < nb; i++)
        free(boxes[i].text);
    free(boxes);
    free(t);
    vis_image_free(rs);
    vis_image_free(img);
    if (rc < 0)
        model_ocr_result_release(res);
    return rc;
}

void model_ocr_result_release(struct model_ocr_result *r)
{
    for (size_t i = 0; i < r->n_words; i++)
        free(r->words[i].text);
    free(r->words);
    r->words = NULL;
    r->n_words = 0;
}

/* Roboflow's OCR response: "result" (the texts in reading order joined by
 * spaces), "predictions" (one object-detection prediction per text: box
 * centre/size, confidence, class = the text, class_id 0), "image". */
json_t *model_ocr_result_to_json(const struct model_ocr_result *r)
{
    json_t *preds = json_array();
    struct buf all = BUF_INIT;
    for (size_t i = 0; i < r->n_words; i++) {
        const struct model_ocr_word *w = &r->words[i];
        char uid[37];
        uuid4(uid);
        json_array_append_new(
            preds, json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i,s:s}", "x", (w->x1 + w->x2) / 2.0,
                             "y", (w->y1 + w->y2) / 2.0, "width", (double)(w->x2 - w->x1),
                             "height", (double)(w->y2 - w->y1), "confidence",
                             (double)w->confidence, "class", w->text, "class_id", 0,
                             "detection_id", uid));
        if (i)
            buf_puts(&all, " ");
        buf_puts(&all, w->text);
    }
    json_t *o = json_pack("{s:s,s:o,s:{s:i,s:i}}", "result", all.data ? all.data : "",
                          "predictions", preds, "image", "width", r->image_w, "height",
                          r->image_h);
    buf_release(&all);
    return o;
}
