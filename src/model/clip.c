/*
 * clip.c — CLIP image and text embeddings: an image encoder and a text
 * encoder in ONNX, CLIP's BPE tokenizer (clip_bpe.c), after Roboflow's
 * inference/models/clip/clip_model.py (the files of Roboflow's CLIP model
 * package are visual.onnx and textual.onnx):
 *
 * image: RGB; torchvision Resize(R) (shorter side to R, the longer one
 *   int(R * long / short), PIL bicubic with its antialiasing filter
 *   support, 8-bit fixed point as Pillow: reproduced exactly here),
 *   CenterCrop(R) (offsets round((size - R) / 2), half to even), /255,
 *   (x - mean) / std with CLIP's mean (0.48145466, 0.4578275, 0.40821073)
 *   and std (0.26862954, 0.26130258, 0.27577711), RGB planes; R is the
 *   encoder's input height (clip.clip._transform(resolution));
 *   the first output, (N, D), is the embedding.
 * text: clip.tokenize (77 ids, int32 as Roboflow casts them; int64 when
 *   the encoder's input is int64), the first output (N, D).
 * Embeddings are returned as the encoders give them (not normalised).
 */
#include "model/model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"

#define CLIP_MAX_RES 1024
#define CLIP_MAX_DIM 65536
#define CLIP_TEXT_BATCH 16
#define CLIP_MAX_MERGES_BYTES (16u << 20)

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

struct model__clip {
    OrtSession *vis, *txt;
    char *vis_in, *vis_out, *txt_in, *txt_out;
    int res;          /* image encoder input side */
    bool vis_batch1;  /* the image encoder's batch dimension is fixed */
    bool txt_batch1;
    bool txt_i64;     /* text input int64 (else int32) */
    size_t dim;
    struct model_clip_bpe *bpe;
};

static void clip_free(struct model__clip *c, const OrtApi *api)
{
    if (!c)
        return;
    if (c->vis)
        api->ReleaseSession(c->vis);
    if (c->txt)
        api->ReleaseSession(c->txt);
    free(c->vis_in);
    free(c->vis_out);
    free(c->txt_in);
    free(c->txt_out);
    model_clip_bpe_free(c->bpe);
    free(c);
}

void model__clip_free(struct model *m)
{
    if (m->clip)
        clip_free(m->clip, m->ort->api);
    m->clip = NULL;
}

size_t model_clip_dim(const struct model *m) { return m->clip ? m->clip->dim : 0; }

/* ---- Pillow's bicubic resize (8 bits per channel) ------------------------------------- */

#define PREC 22

static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc: for each output
 * position from .. from + count - 1 (of out_size) its first input index,
 * count and fixed-point weights (at index position - from). */
static int coeffs(int in_size, int out_size, int from, int count, int **bounds, int **kk)
{
    double scale = (double)in_size / out_size, fs = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * fs;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = xcalloc((size_t)count * (size_t)ksize, sizeof *pre);
    *bounds = xcalloc((size_t)count * 2, sizeof **bounds);
    *kk = xcalloc((size_t)count * (size_t)ksize, sizeof **kk);
    for (int xi = 0; xi < count; xi++) {
        int xx = from + xi;
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / fs;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double *k = pre + (size_t)xi * (size_t)ksize;
        for (int x = 0; x < xmax; x++) {
            double w = bicubic((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        (*bounds)[xi * 2] = xmin;
        (*bounds)[xi * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)count * (size_t)ksize; i++)
        (*kk)[i] = pre[i] < 0 ? (int)(-0.5 + pre[i] * (1 << PREC))
                              : (int)(0.5 + pre[i] * (1 << PREC));
    free(pre);
    return ksize;
}

static inline uint8_t clip8(int v)
{
    v >>= PREC;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* The R x R window at (left, top) of a tightly packed 3-channel image (w x
 * h) resized to ow x oh as Pillow's Image.resize(BICUBIC): horizontal pass
 * over the rows the vertical pass reads, rounded to 8 bits, then the
 * vertical pass.  Only the window is computed (each output pixel depends on
 * its own position alone), so that a picture of an extreme aspect ratio,
 * whose resized size is huge, costs no more than R x R. */
static uint8_t *pil_bicubic(const uint8_t *src, int w, int h, int ow, int oh, int left, int top,
                            int R)
{
    int *bh, *kh, *bv, *kv;
    int ksh = coeffs(w, ow, left, R, &bh, &kh), ksv = coeffs(h, oh, top, R, &bv, &kv);
    int y0 = bv[0], y1 = bv[(R - 1) * 2] + bv[(R - 1) * 2 + 1];
    uint8_t *tmp = xmalloc((size_t)R * (size_t)(y1 - y0) * 3 + 1);
    for (int y = y0; y < y1; y++) {
        const uint8_t *row = src + (size_t)y * (size_t)w * 3;
        uint8_t *o = tmp + (size_t)(y - y0) * (size_t)R * 3;
        for (int x = 0; x < R; x++) {
            int xmin = bh[x * 2], n = bh[x * 2 + 1];
            const int *k = kh + (size_t)x * (size_t)ksh;
            int s0 = 1 << (PREC - 1), s1 = s0, s2 = s0;
            const uint8_t *px = row + (size_t)xmin * 3;
            for (int i = 0; i < n; i++, px += 3) {
                s0 += px[0] * k[i];
                s1 += px[1] * k[i];
                s2 += px[2] * k[i];
            }
            o[x * 3] = clip8(s0);
            o[x * 3 + 1] = clip8(s1);
            o[x * 3 + 2] = clip8(s2);
        }
    }
    uint8_t *out = xmalloc((size_t)R * (size_t)R * 3);
    size_t rowlen = (size_t)R * 3;
    int *acc = xmalloc(rowlen * sizeof *acc);
    for (int y = 0; y < R; y++) {
        int ymin = bv[y * 2] - y0, n = bv[y * 2 + 1];
        const int *k = kv + (size_t)y * (size_t)ksv;
        for (size_t q = 0; q < rowlen; q++)
            acc[q] = 1 << (PREC - 1);
        for (int i = 0; i < n; i++) {
            const uint8_t *row = tmp + (size_t)(ymin + i) * rowlen;
            int kw = k[i];
            for (size_t q = 0; q < rowlen; q++)
                acc[q] += row[q] * kw;
        }
        uint8_t *o = out + (size_t)y * rowlen;
        for (size_t q = 0; q < rowlen; q++)
            o[q] = clip8(acc[q]);
    }
    free(acc);
    free(tmp);
    free(bh);
    free(kh);
    free(bv);
    free(kv);
    return out;
}

int model_clip_preprocess(const struct model *m, const struct vis_image *img, float *dst)
{
    int R = m->clip->res;
    struct vis_image *bgr = NULL;
    if (img->fmt != VIS_BGR) {
        int rc = vis_convert(img, VIS_BGR, &bgr);
        if (rc < 0)
            return rc;
        img = bgr;
    }
    /* tight RGB copy */
    uint8_t *rgb = xmalloc((size_t)img->w * (size_t)img->h * 3);
    for (int y = 0; y < img->h; y++) {
        const uint8_t *row = img->px + (size_t)y * (size_t)img->stride;
        uint8_t *o = rgb + (size_t)y * (size_t)img->w * 3;
        for (int x = 0; x < img->w; x++) {
            o[x * 3] = row[x * 3 + 2];
            o[x * 3 + 1] = row[x * 3 + 1];
            o[x * 3 + 2] = row[x * 3];
        }
    }
    int w = img->w, h = img->h, nw, nh;
    if (w <= h) {
        nw = R;
        nh = (int)((double)R * h / w);
    } else {
        nh = R;
        nw = (int)((double)R * w / h);
    }
    int top = (int)nearbyint((nh - R) / 2.0), left = (int)nearbyint((nw - R) / 2.0);
    /* rs: the centre crop, R x R (resized) or within the picture (not) */
    bool same = nw == w && nh == h;
    uint8_t *rs = same ? rgb : pil_bicubic(rgb, w, h, nw, nh, left, top, R);
    size_t rs_w = same ? (size_t)nw : (size_t)R, ox = same ? (size_t)left : 0,
           oy = same ? (size_t)top : 0;
    size_t plane = (size_t)R * (size_t)R;
    for (int y = 0; y < R; y++)
        for (int x = 0; x < R; x++) {
            const uint8_t *p = rs + (((size_t)y + oy) * rs_w + (size_t)x + ox) * 3;
            for (int c = 0; c < 3; c++)
                dst[(size_t)c * plane + (size_t)y * (size_t)R + (size_t)x] =
                    ((float)p[c] / 255.0f - clip_mean[c]) / clip_std[c];
        }
    if (rs != rgb)
        free(rs);
    free(rgb);
    vis_image_free(bgr);
    return 0;
}

/* ---- running ----------------------------------------------------------------------------- */

/* Run session s on one input tensor; copy its (N, D) first output into
 * *out (malloc'd N * dim).  Checks rank, N, D (dim 0: set it) and finite
 * values. */
static int run_enc(struct model *m, OrtSession *s, const char *in_name, const char *out_name,
                   void *data, size_t bytes, const int64_t *shape, size_t rank,
                   ONNXTensorElementDataType ty, const char *what, size_t *dim, float **out,
                   char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    OrtValue *ov = NULL;
    struct model__view v;
    char w[300];
    int rc = 0;
    snprintf(w, sizeof w, "model '%s': %s failed to run", m->id, what);
    if ((rc = model__run1(m, s, in_name, out_name, data, bytes, shape, rank, ty, w, &ov, err, errlen)) < 0)
        return rc;
    if (model__value_view(api, ov, &v) < 0) {
        snprintf(err, errlen, "model '%s': %s: unreadable output", m->id, what);
        rc = ERR_INVALID;
        goto out;
    }
    ONNXTensorElementDataType oty = v.ty;
    const int64_t *od = v.dims;
    size_t r = v.rank;
    const float *d = v.data;
    if (oty != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || r != 2 || od[0] != shape[0] || od[1] < 1 ||
        od[1] > CLIP_MAX_DIM || (*dim && (size_t)od[1] != *dim)) {
        char sh[128] = "";
        size_t l = 0;
        for (size_t i = 0; i < r && l + 24 < sizeof sh; i++)
            l += (size_t)snprintf(sh + l, sizeof sh - l, "%s%lld", i ? "x" : "", (long long)od[i]);
        snprintf(err, errlen, "model '%s': %s gave %soutput of shape %s (element type %d) "
                 "for a batch of %lld; a CLIP encoder gives float32 (batch, %s)", m->id, what,
                 r == 2 ? "an " : "a wrong-rank ", r ? sh : "a scalar", (int)oty, (long long)shape[0],
                 *dim ? "the other encoder's embedding size" : "embedding size");
        rc = ERR_INVALID;
        goto out;
    }
    size_t cnt = (size_t)od[0] * (size_t)od[1];
    if (!model__all_finite(d, cnt)) {
        snprintf(err, errlen, "model '%s': %s gave a non-finite embedding (NaN or infinity)", m->id, what);
        rc = ERR_INVALID;
        goto out;
    }
    *dim = (size_t)od[1];
    *out = xmalloc(cnt * sizeof(float));
    memcpy(*out, d, cnt * sizeof(float));
out:
    api->ReleaseValue(ov);
    return rc;
}

int model_clip_embed_image(struct model *m, const struct vis_image *img, float **emb, char *err,
                           size_t errlen)
{
    if (!m->clip) {
        snprintf(err, errlen, "model '%s' is not a CLIP model", m->id);
        return ERR_INVALID;
    }
    struct model__clip *c = m->clip;
    size_t n = (size_t)3 * (size_t)c->res * (size_t)c->res;
    float *t = xmalloc(n * sizeof(float));
    int rc = model_clip_preprocess(m, img, t);
    if (rc < 0) {
        snprintf(err, errlen, "cannot pre-process the image: %s", err_str(rc));
        free(t);
        return rc;
    }
    int64_t shape[4] = {1, 3, c->res, c->res};
    size_t dim = c->dim;
    rc = run_enc(m, c->vis, c->vis_in, c->vis_out, t, n * sizeof(float), shape, 4,
                 ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "the image encoder (visual.onnx)", &dim, emb,
                 err, errlen);
    free(t);
    return rc;
}

int model_clip_embed_texts(struct model *m, const char *const *texts, size_t n, float **emb,
                           char *err, size_t errlen)
{
    if (!m->clip) {
        snprintf(err, errlen, "model '%s' is not a CLIP model", m->id);
        return ERR_INVALID;
    }
    struct model__clip *c = m->clip;
    size_t bmax = c->txt_batch1 ? 1 : CLIP_TEXT_BATCH;
    float *all = xcalloc(n ? n * c->dim : 1, sizeof(float));
    int32_t *ids = xmalloc(bmax * MODEL_CLIP_CONTEXT * sizeof(int32_t));
    int64_t *ids64 = c->txt_i64 ? xmalloc(bmax * MODEL_CLIP_CONTEXT * sizeof(int64_t)) : NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += bmax) {
        size_t b = n - i < bmax ? n - i : bmax;
        for (size_t k = 0; k < b && rc == 0; k++)
            rc = model_clip_bpe_tokenize(c->bpe, texts[i + k] ? texts[i + k] : "", false,
                                         ids + k * MODEL_CLIP_CONTEXT, err, errlen);
        if (rc < 0)
            break;
        int64_t shape[2] = {(int64_t)b, MODEL_CLIP_CONTEXT};
        void *data = ids;
        size_t bytes = b * MODEL_CLIP_CONTEXT * sizeof(int32_t);
        if (ids64) {
            for (size_t k = 0; k < b * MODEL_CLIP_CONTEXT; k++)
                ids64[k] = ids[k];
            data = ids64;
            bytes = b * MODEL_CLIP_CONTEXT * sizeof(int64_t);
        }
        float *o = NULL;
        size_t dim = c->dim;
        rc = run_enc(m, c->txt, c->txt_in, c->txt_out, data, bytes, shape, 2,
                     ids64 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
                     "the text encoder (textual.onnx)", &dim, &o, err, errlen);
        if (rc == 0)
            memcpy(all + i * c->dim, o, b * c->dim * sizeof(float));
        free(o);
    }
    free(ids);
    free(ids64);
    if (rc < 0) {
        free(all);
        return rc;
    }
    *emb = all;
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* The single input and output of an encoder: names, input element type
 * and dims. */
static int enc_io(const OrtApi *api, OrtSession *s, const char *what, char **in_name,
                  char **out_name, ONNXTensorElementDataType *ty, int64_t dims[8], size_t *rank,
                  char *err, size_t errlen)
{
    return model__io1(api, s, what, "a CLIP encoder has one input and one output (the embeddings)", in_name,
                      out_name, ty, dims, rank, err, errlen);
}

/* The file of role key: the bundle's usual name def, else model.json's
 * name in the folder dir.  1 when optional and absent. */
static int get_part(const char *dir, const struct model__files *fs, const json_t *meta,
                    const char *key, const char *def, size_t max, bool optional, char **buf,
                    size_t *len, char *err, size_t errlen)
{
    const char *nm = fs ? def : model__part_name(meta, key, def);
    if (optional) {
        bool there;
        if (fs) {
            there = model__files_get(fs, nm) != NULL;
        } else {
            char *p = xasprintf("%s/%s", dir, nm);
            struct stat st;
            there = stat(p, &st) == 0;
            free(p);
        }
        if (!there)
            return 1;
    }
    return model__read_part(dir, fs, nm, max, buf, len, err, errlen);
}

int model__clip_open(struct model *m, const char *dir, const struct model__files *fs,
                     const json_t *meta, uint64_t max_bytes, int threads, bool spinning,
                     const char *machine_type, char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    struct model__clip *c = xcalloc(1, sizeof *c);
    char *buf = NULL, e2[768], e3[600];
    size_t len = 0, rank = 0;
    int64_t dims[8];
    ONNXTensorElementDataType ty;
    json_t *vocab = NULL;
    float *o = NULL;
    int rc;

    /* tokenizer: merges.txt (+ vocab.json) */
    if ((rc = get_part(dir, fs, meta, "merges", "merges.txt", CLIP_MAX_MERGES_BYTES, false, &buf,
                       &len, e2, sizeof e2)) < 0)
        goto fail;
    {
        const char *vn = fs ? "vocab.json" : model__part_name(meta, "vocab", "vocab.json");
        char *vb = NULL;
        size_t vl = 0;
        int vr = get_part(dir, fs, meta, "vocab", "vocab.json", CLIP_MAX_MERGES_BYTES, true, &vb,
                          &vl, e2, sizeof e2);
        if (vr == 0) {
            json_error_t je;
            vocab = json_loadb(vb, vl, 0, &je);
            free(vb);
            if (!json_is_object(vocab)) {
                snprintf(e2, sizeof e2, "%s is not a JSON object {token: id}", vn);
                rc = ERR_INVALID;
                goto fail;
            }
        } else if (vr < 0) {
            rc = vr;
            goto fail;
        }
    }
    if ((rc = model_clip_bpe_load(buf, len, vocab, &c->bpe, e3, sizeof e3)) < 0) {
        snprintf(e2, sizeof e2, "tokenizer (merges.txt): %s", e3);
        goto fail;
    }
    free(buf);
    buf = NULL;

    /* image encoder */
    if ((rc = model__part_session(m, dir, fs, fs ? "visual.onnx" : model__part_name(meta, "visual", "visual.onnx"),
                                  "image encoder (visual.onnx)", max_bytes, threads, spinning, machine_type, &c->vis, e2,
                                  sizeof e2)) < 0)
        goto fail;
    if ((rc = enc_io(api, c->vis, "image encoder (visual.onnx)", &c->vis_in, &c->vis_out, &ty,
                     dims, &rank, e2, sizeof e2)) < 0)
        goto fail;
    if (ty != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || rank != 4 || dims[1] != 3) {
        snprintf(e2, sizeof e2, "image encoder (visual.onnx): input must be float32 (N, 3, R, R), "
                 "found element type %d rank %zu", (int)ty, rank);
        rc = ERR_INVALID;
        goto fail;
    }
    c->res = dims[2] > 0 ? (int)dims[2] : 224;
    if (c->res < 8 || c->res > CLIP_MAX_RES || (dims[3] > 0 && dims[3] != dims[2])) {
        snprintf(e2, sizeof e2, "image encoder (visual.onnx): input %lldx%lld; a CLIP image "
                 "encoder takes a square input of 8..%d pixels", (long long)dims[2],
                 (long long)dims[3], CLIP_MAX_RES);
        rc = ERR_INVALID;
        goto fail;
    }
    c->vis_batch1 = dims[0] > 0;

    /* text encoder */
    if ((rc = model__part_session(m, dir, fs, fs ? "textual.onnx" : model__part_name(meta, "textual", "textual.onnx"),
                                  "text encoder (textual.onnx)", max_bytes, threads, spinning, machine_type, &c->txt, e2,
                                  sizeof e2)) < 0)
        goto fail;
    if ((rc = enc_io(api, c->txt, "text encoder (textual.onnx)", &c->txt_in, &c->txt_out, &ty,
                     dims, &rank, e2, sizeof e2)) < 0)
        goto fail;
    if ((ty != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 && ty != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) ||
        rank != 2 || (dims[1] > 0 && dims[1] != MODEL_CLIP_CONTEXT)) {
        snprintf(e2, sizeof e2, "text encoder (textual.onnx): input must be int32 or int64 "
                 "(N, %d) token ids, found element type %d rank %zu", MODEL_CLIP_CONTEXT, (int)ty,
                 rank);
        rc = ERR_INVALID;
        goto fail;
    }
    c->txt_i64 = ty == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    c->txt_batch1 = dims[0] > 0;
    m->clip = c;

    /* trial runs: shapes, equal embedding sizes, finite values */
    {
        /* a grey image: the image embedding size */
        struct vis_image *blank = vis_image_new(c->res, c->res, VIS_BGR);
        if (!blank) {
            rc = ERR_NOMEM;
            snprintf(e2, sizeof e2, "out of memory");
            goto fail_m;
        }
        float *t = xmalloc((size_t)3 * (size_t)c->res * (size_t)c->res * sizeof(float));
        memset(blank->px, 128, (size_t)blank->stride * (size_t)blank->h);
        model_clip_preprocess(m, blank, t);
        vis_image_free(blank);
        int64_t shape[4] = {1, 3, c->res, c->res};
        size_t dim = 0;
        rc = run_enc(m, c->vis, c->vis_in, c->vis_out, t,
                     (size_t)3 * (size_t)c->res * (size_t)c->res * sizeof(float), shape, 4,
                     ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "the image encoder (visual.onnx)", &dim,
                     &o, e3, sizeof e3);
        free(t);
        free(o);
        o = NULL;
        if (rc < 0) {
            snprintf(e2, sizeof e2, "a trial run on a grey image: %s", e3);
            goto fail_m;
        }
        c->dim = dim;
    }
    {
        const char *probe[1] = {"a photo of a cat"};
        if ((rc = model_clip_embed_texts(m, probe, 1, &o, e3, sizeof e3)) < 0) {
            snprintf(e2, sizeof e2, "a trial run on a text: %s", e3);
            goto fail_m;
        }
        free(o);
        o = NULL;
    }
    json_decref(vocab);
    m->task = MODEL_TASK_EMBEDDING;
    m->arch = xstrdup("clip");
    m->in_w = m->in_h = c->res;
    m->in_c = 3;
    return 0;
fail_m:
    m->clip = NULL;
fail:
    free(o);
    free(buf);
    json_decref(vocab);
    clip_free(c, api);
    snprintf(err, errlen, "CLIP model '%s': %s", m->id, e2);
    return rc;
}
