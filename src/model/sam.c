/*
 * sam.c — Segment Anything 2 (SAM2) from an ONNX encoder + decoder pair,
 * the multi-file "sam" family (docs/MODELS.md "SAM2").
 *
 * After Roboflow's SAM2 path (inference_models/models/sam2/sam2_torch.py
 * with the SAM2 library's SAM2Transforms, and
 * inference/models/sam2/segment_anything2_inference_models.py):
 *
 *   - pre-processing: the RGB picture resized (stretched) to the encoder's
 *     input (1024 x 1024), /255, ImageNet mean/std;
 *   - prompts: coordinates scaled from picture pixels to encoder-input
 *     pixels (x * 1024 / w, y * 1024 / h); a box becomes two points
 *     labelled 2 and 3 placed before the prompt's points; prompts with
 *     fewer points are padded with (0, 0) labelled -1; no prompt at all is
 *     one prompt of the point (0, 0) labelled -1;
 *   - the decoder's low-resolution logits of the chosen mask resized to the
 *     picture with bilinear interpolation (torch F.interpolate,
 *     align_corners=False), mask = logit > 0;
 *   - the chosen mask: the one with the highest predicted IoU among the
 *     multimask outputs (tokens 1..3 of a four-mask decoder), or the
 *     single-mask output (token 0) without multimask; its IoU is the
 *     confidence.
 */
#include "model/model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision.h"

struct model__sam {
    OrtSession *enc, *dec;
    char *enc_in;
    int in_w, in_h;         /* encoder input */
    int mask_w, mask_h;     /* decoder's low-resolution masks */
    int k;                  /* masks per prompt: 1, 3 or 4 */
    int64_t feat[3][4];     /* encoder outputs, in SAM_FEATS order */
};

static const char *const SAM_FEATS[3] = {"image_embed", "high_res_feats_0", "high_res_feats_1"};
static const char *const SAM_DEC_IN[7] = {"image_embed",  "high_res_feats_0", "high_res_feats_1", "point_coords",
                                          "point_labels", "mask_input",       "has_mask_input"};
static const char *const SAM_DEC_OUT[2] = {"masks", "iou_predictions"};
static const float SAM_MEAN[3] = {0.485f, 0.456f, 0.406f}, SAM_STD[3] = {0.229f, 0.224f, 0.225f};

void model__sam_free(struct model *m)
{
    struct model__sam *s = m->sam;
    if (!s)
        return;
    if (s->enc)
        m->ort->api->ReleaseSession(s->enc);
    if (s->dec)
        m->ort->api->ReleaseSession(s->dec);
    free(s->enc_in);
    free(s);
    m->sam = NULL;
}

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Names of a session's inputs (in = true) or outputs, malloc'd array.  On
 * failure *names is NULL and *n 0 (the callers list them in messages). */
static int io_names(const OrtApi *api, OrtSession *s, bool in, char ***names, size_t *n)
{
    OrtAllocator *alloc = NULL;
    size_t cnt = 0;
    *names = NULL;
    *n = 0;
    if (!model__ok(api, in ? api->SessionGetInputCount(s, &cnt) : api->SessionGetOutputCount(s, &cnt)) ||
        !model__ok(api, api->GetAllocatorWithDefaultOptions(&alloc)) || cnt > 16)
        return ERR_INVALID;
    char **v = xcalloc(cnt ? cnt : 1, sizeof(char *));
    for (size_t i = 0; i < cnt; i++) {
        char *nm = NULL;
        if (!model__ok(api, in ? api->SessionGetInputName(s, i, alloc, &nm) : api->SessionGetOutputName(s, i, alloc, &nm))) {
            names_free(v, i);
            return ERR_INVALID;
        }
        v[i] = xstrdup(nm);
        alloc->Free(alloc, nm);
    }
    *names = v;
    *n = cnt;
    return 0;
}

static void names_str(char **names, size_t n, char *out, size_t len)
{
    size_t at = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(out + at, len - at, "%s%s", i ? ", " : "", names[i]);
}

/* Does the session have exactly these names (any order)? */
static bool same_names(char **have, size_t n, const char *const *want, size_t nw)
{
    if (n != nw)
        return false;
    for (size_t i = 0; i < nw; i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++)
            found = found || !strcmp(have[j], want[i]);
        if (!found)
            return false;
    }
    return true;
}

static int tensor_of(struct model *m, float *data, const int64_t *shape, size_t rank, OrtValue **out, char *err,
                     size_t errlen)
{
    size_t count = 1;
    for (size_t i = 0; i < rank; i++)
        count *= (size_t)shape[i];
    OrtStatus *st = m->ort->api->CreateTensorWithDataAsOrtValue(m->ort->cpu_mem, data, count * sizeof(float), shape,
                                                                 rank, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, out);
    return st ? model__ort_status(m->ort->api, st, "cannot create a tensor", err, errlen) : 0;
}

/* Shape and data of a float output value; its element count in *count. */
static int value_view(const OrtApi *api, OrtValue *v, int64_t *dims, size_t *rank, float **data, size_t *count)
{
    struct model__view w;
    if (model__value_view(api, v, &w) < 0 || w.ty != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
        return ERR_INVALID;
    memcpy(dims, w.dims, sizeof w.dims);
    *rank = w.rank;
    *data = w.data;
    *count = w.count;
    return 0;
}

static void shape_text(const int64_t *d, size_t r, char *out, size_t len)
{
    size_t at = (size_t)snprintf(out, len, "(");
    for (size_t i = 0; i < r && at < len; i++)
        at += (size_t)snprintf(out + at, len - at, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (at < len)
        snprintf(out + at, len - at, ")");
}

/* Run the encoder on t (1, 3, in_h, in_w); feats[3] in SAM_FEATS order. */
static int run_encoder(struct model *m, float *t, OrtValue *feats[3], char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    struct model__sam *s = m->sam;
    int64_t shape[4] = {1, 3, s->in_h, s->in_w};
    OrtValue *in = NULL;
    int rc = tensor_of(m, t, shape, 4, &in, err, errlen);
    if (rc < 0)
        return rc;
    const char *in_name = s->enc_in;
    OrtStatus *st = api->Run(s->enc, NULL, &in_name, (const OrtValue *const *)&in, 1, SAM_FEATS, 3, feats);
    api->ReleaseValue(in);
    if (st)
        return model__ort_status(api, st, "the SAM2 encoder (encoder.onnx) failed to run", err, errlen);
    return 0;
}

/* Run the decoder for n prompts of p points each (coords n*p*2, labels
 * n*p); outs[2] in SAM_DEC_OUT order. */
static int run_decoder(struct model *m, OrtValue *feats[3], float *coords, float *labels, int n, int p,
                       OrtValue *outs[2], char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    struct model__sam *s = m->sam;
    float *mask_in = xcalloc((size_t)n * (size_t)s->mask_w * (size_t)s->mask_h, sizeof(float));
    float *has = xcalloc((size_t)n, sizeof(float));
    int64_t cs[3] = {n, p, 2}, ls[2] = {n, p}, ms[4] = {n, 1, s->mask_h, s->mask_w}, hs[1] = {n};
    OrtValue *in[7] = {feats[0], feats[1], feats[2], NULL, NULL, NULL, NULL};
    int rc;
    if ((rc = tensor_of(m, coords, cs, 3, &in[3], err, errlen)) < 0 || (rc = tensor_of(m, labels, ls, 2, &in[4], err, errlen)) < 0 ||
        (rc = tensor_of(m, mask_in, ms, 4, &in[5], err, errlen)) < 0 || (rc = tensor_of(m, has, hs, 1, &in[6], err, errlen)) < 0)
        goto out;
    OrtStatus *st = api->Run(s->dec, NULL, SAM_DEC_IN, (const OrtValue *const *)in, 7, SAM_DEC_OUT, 2, outs);
    if (st)
        rc = model__ort_status(api, st, "the SAM2 decoder (decoder.onnx) failed to run", err, errlen);
out:
    for (int i = 3; i < 7; i++)
        if (in[i])
            api->ReleaseValue(in[i]);
    free(mask_in);
    free(has);
    return rc;
}

/* Check the decoder's outputs for n prompts: masks (n, k, mh, mw) and
 * iou_predictions (n, k), finite.  Sets *k, *mh, *mw. */
static int check_dec_out(const OrtApi *api, OrtValue *outs[2], int n, int *k, int *mh, int *mw, float **masks,
                         float **iou, char *err, size_t errlen)
{
    int64_t md[8], id[8];
    size_t mr = 0, ir = 0, mc = 0, ic = 0;
    char a[160], b[160];
    if (value_view(api, outs[0], md, &mr, masks, &mc) < 0 || value_view(api, outs[1], id, &ir, iou, &ic) < 0) {
        snprintf(err, errlen, "decoder.onnx: outputs are not float tensors");
        return ERR_INVALID;
    }
    shape_text(md, mr, a, sizeof a);
    shape_text(id, ir, b, sizeof b);
    if (mr != 4 || ir != 2 || md[0] != n || id[0] != n || md[1] != id[1] || !(md[1] == 1 || md[1] == 3 || md[1] == 4) ||
        md[2] < 1 || md[3] < 1 || md[2] > 4096 || md[3] > 4096) {
        snprintf(err, errlen, "decoder.onnx: outputs masks %s and iou_predictions %s for %d prompt(s); expected "
                 "masks (N, K, H, W) and iou_predictions (N, K) with K 1, 3 or 4", a, b, n);
        return ERR_INVALID;
    }
    if (!model__all_finite(*masks, mc) || !model__all_finite(*iou, ic)) {
        snprintf(err, errlen, "decoder.onnx: output is not finite (NaN or infinity)");
        return ERR_INVALID;
    }
    *k = (int)md[1];
    *mh = (int)md[2];
    *mw = (int)md[3];
    return 0;
}

int model__sam_open(struct model *m, const struct model__files *fs, uint64_t max_bytes, int threads, bool spinning,
                    const char *machine_type, char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    struct model__sam *s = xcalloc(1, sizeof *s);
    char **names = NULL, e3[512], list[512];
    size_t nn = 0;
    OrtValue *feats[3] = {NULL, NULL, NULL}, *outs[2] = {NULL, NULL};
    float *t = NULL;
    int rc = ERR_INVALID;

    m->sam = s;
    static const char *const files[2] = {"encoder.onnx", "decoder.onnx"};
    OrtSession **sess[2] = {&s->enc, &s->dec};
    for (int i = 0; i < 2; i++) {
        const struct model__file *f = model__files_get(fs, files[i]);
        if (!f) {
            snprintf(err, errlen, "SAM2 model '%s': the model has no file '%s'", m->id, files[i]);
            goto fail;
        }
        if (f->len > max_bytes) {
            snprintf(err, errlen, "SAM2 model '%s': %s is too large", m->id, files[i]);
            rc = ERR_LIMIT;
            goto fail;
        }
        if ((rc = model__session_open(m->ort, f->data, f->len, threads, spinning, machine_type, sess[i], e3, sizeof e3)) < 0) {
            snprintf(err, errlen, "SAM2 model '%s': %s: %s", m->id, files[i], e3);
            goto fail;
        }
    }
    rc = ERR_INVALID;
    /* encoder: one float (1, 3, H, W) input, the three feature outputs */
    if (io_names(api, s->enc, true, &names, &nn) < 0 || nn != 1) {
        snprintf(err, errlen, "SAM2 model '%s': encoder.onnx must have one input (the image)", m->id);
        goto fail;
    }
    s->enc_in = xstrdup(names[0]);
    names_free(names, nn);
    names = NULL;
    if (io_names(api, s->enc, false, &names, &nn) < 0 || !same_names(names, nn, SAM_FEATS, 3)) {
        names_str(names, nn, list, sizeof list);
        snprintf(err, errlen, "SAM2 model '%s': encoder.onnx outputs are %s; expected image_embed, "
                 "high_res_feats_0, high_res_feats_1", m->id, list);
        goto fail;
    }
    names_free(names, nn);
    names = NULL;
    {
        ONNXTensorElementDataType ty;
        int64_t d[8];
        size_t r = 0;
        bool ok = model__input_info(api, s->enc, 0, &ty, d, &r) == 0 && r == 4;
        if (!ok || d[1] != 3) {
            snprintf(err, errlen, "SAM2 model '%s': encoder.onnx input must be float (1, 3, H, W)", m->id);
            goto fail;
        }
        s->in_h = d[2] > 0 ? (int)d[2] : 1024;
        s->in_w = d[3] > 0 ? (int)d[3] : 1024;
        if (s->in_h > 4096 || s->in_w > 4096) {
            snprintf(err, errlen, "SAM2 model '%s': encoder input %dx%d is too large", m->id, s->in_w, s->in_h);
            goto fail;
        }
    }
    if (io_names(api, s->dec, true, &names, &nn) < 0 || !same_names(names, nn, SAM_DEC_IN, 7)) {
        names_str(names, nn, list, sizeof list);
        snprintf(err, errlen, "SAM2 model '%s': decoder.onnx inputs are %s; expected image_embed, high_res_feats_0, "
                 "high_res_feats_1, point_coords, point_labels, mask_input, has_mask_input", m->id, list);
        goto fail;
    }
    names_free(names, nn);
    names = NULL;
    if (io_names(api, s->dec, false, &names, &nn) < 0 || !same_names(names, nn, SAM_DEC_OUT, 2)) {
        names_str(names, nn, list, sizeof list);
        snprintf(err, errlen, "SAM2 model '%s': decoder.onnx outputs are %s; expected masks, iou_predictions", m->id, list);
        goto fail;
    }
    names_free(names, nn);
    names = NULL;
    /* trial runs: a blank picture, one box prompt */
    t = xcalloc((size_t)3 * (size_t)s->in_w * (size_t)s->in_h, sizeof(float));
    if ((rc = run_encoder(m, t, feats, e3, sizeof e3)) < 0) {
        snprintf(err, errlen, "SAM2 model '%s': a run on a blank image failed: %s", m->id, e3);
        goto fail;
    }
    rc = ERR_INVALID;
    for (int i = 0; i < 3; i++) {
        int64_t d[8];
        size_t r = 0, c = 0;
        float *data = NULL;
        if (value_view(api, feats[i], d, &r, &data, &c) < 0 || r != 4 || d[0] != 1) {
            snprintf(err, errlen, "SAM2 model '%s': encoder.onnx output %s is not a float (1, C, H, W) tensor", m->id,
                     SAM_FEATS[i]);
            goto fail;
        }
        if (!model__all_finite(data, c)) {
            snprintf(err, errlen, "SAM2 model '%s': encoder.onnx output %s is not finite (NaN or infinity) on a blank "
                     "image", m->id, SAM_FEATS[i]);
            goto fail;
        }
        if (d[1] < 1 || d[1] > 4096 || d[2] < 1 || d[2] > 1024 || d[3] < 1 || d[3] > 1024) {
            snprintf(err, errlen, "SAM2 model '%s': encoder.onnx output %s has shape (1, %lld, %lld, %lld): at most "
                     "(1, 4096, 1024, 1024)", m->id, SAM_FEATS[i], (long long)d[1], (long long)d[2], (long long)d[3]);
            goto fail;
        }
        memcpy(s->feat[i], d, sizeof s->feat[i]);
    }
    s->mask_h = (int)s->feat[0][2] * 4;
    s->mask_w = (int)s->feat[0][3] * 4;
    float coords[4] = {0, 0, (float)s->in_w / 2, (float)s->in_h / 2}, labels[2] = {2, 3};
    if ((rc = run_decoder(m, feats, coords, labels, 1, 2, outs, e3, sizeof e3)) < 0) {
        snprintf(err, errlen, "SAM2 model '%s': a decoder run on a blank image failed: %s", m->id, e3);
        goto fail;
    }
    float *mk = NULL, *iou = NULL;
    int mh = 0, mw = 0;
    if ((rc = check_dec_out(api, outs, 1, &s->k, &mh, &mw, &mk, &iou, e3, sizeof e3)) < 0) {
        snprintf(err, errlen, "SAM2 model '%s': %s", m->id, e3);
        goto fail;
    }
    if (mh != s->mask_h || mw != s->mask_w) {
        snprintf(err, errlen, "SAM2 model '%s': decoder.onnx masks are %dx%d, mask_input is %dx%d (4x image_embed)",
                 m->id, mw, mh, s->mask_w, s->mask_h);
        rc = ERR_INVALID;
        goto fail;
    }
    m->task = MODEL_TASK_SAM;
    rc = 0;
    goto done;
fail:
    model__sam_free(m);
done:
    for (int i = 0; i < 3; i++)
        if (feats[i])
            api->ReleaseValue(feats[i]);
    for (int i = 0; i < 2; i++)
        if (outs[i])
            api->ReleaseValue(outs[i]);
    if (names)
        names_free(names, nn);
    free(t);
    return rc;
}

/* ---- inference -------------------------------------------------------------------- */

/* The picture as the encoder's input: RGB, bilinear (half-pixel centres)
 * to in_w x in_h, /255, ImageNet mean/std. */
static void sam_preprocess(const struct model__sam *s, const struct vis_image *img, float *t)
{
    int W = s->in_w, H = s->in_h, ch = (int)img->fmt;
    float sx = (float)img->w / (float)W, sy = (float)img->h / (float)H;
    size_t plane = (size_t)W * (size_t)H;
    for (int y = 0; y < H; y++) {
        float fy = ((float)y + 0.5f) * sy - 0.5f;
        if (fy < 0)
            fy = 0;
        int y0 = (int)fy, y1 = y0 + 1 < img->h ? y0 + 1 : img->h - 1;
        float ly = fy - (float)y0;
        const uint8_t *r0 = img->px + (size_t)y0 * (size_t)img->stride, *r1 = img->px + (size_t)y1 * (size_t)img->stride;
        for (int x = 0; x < W; x++) {
            float fx = ((float)x + 0.5f) * sx - 0.5f;
            if (fx < 0)
                fx = 0;
            int x0 = (int)fx, x1 = x0 + 1 < img->w ? x0 + 1 : img->w - 1;
            float lx = fx - (float)x0;
            for (int c = 0; c < 3; c++) {
                /* RGB plane c from BGR(A) channel 2 - c, gray from its one channel */
                int sc = ch == 1 ? 0 : 2 - c;
                float v = (1 - ly) * ((1 - lx) * r0[x0 * ch + sc] + lx * r0[x1 * ch + sc]) +
                          ly * ((1 - lx) * r1[x0 * ch + sc] + lx * r1[x1 * ch + sc]);
                t[(size_t)c * plane + (size_t)y * (size_t)W + (size_t)x] = (v / 255.0f - SAM_MEAN[c]) / SAM_STD[c];
            }
        }
    }
}

int model_sam_decode(const float *masks, const float *iou, int n, int k, int mh, int mw, bool multimask, int W, int H,
                     struct model_sam_result *r)
{
    memset(r, 0, sizeof *r);
    r->image_w = W;
    r->image_h = H;
    if (n <= 0)
        return 0;
    if (!(k == 1 || k == 3 || k == 4) || mh <= 0 || mw <= 0 || W <= 0 || H <= 0)
        return ERR_INVALID;
    r->masks = try_alloc((size_t)n, sizeof *r->masks);
    if (!r->masks)
        return ERR_NOMEM;
    /* source index and weight per destination column / row (torch
     * area_pixel_compute_source_index, align_corners=False) */
    int *xi = xcalloc((size_t)W, sizeof(int)), *yi = xcalloc((size_t)H, sizeof(int));
    float *xl = xcalloc((size_t)W, sizeof(float)), *yl = xcalloc((size_t)H, sizeof(float));
    float scx = (float)mw / (float)W, scy = (float)mh / (float)H;
    for (int x = 0; x < W; x++) {
        float f = scx * ((float)x + 0.5f) - 0.5f;
        if (f < 0)
            f = 0;
        xi[x] = (int)f;
        xl[x] = f - (float)xi[x];
    }
    for (int y = 0; y < H; y++) {
        float f = scy * ((float)y + 0.5f) - 0.5f;
        if (f < 0)
            f = 0;
        yi[y] = (int)f;
        yl[y] = f - (float)yi[y];
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const float *sc = iou + (size_t)i * (size_t)k;
        int lo = multimask ? (k == 4 ? 1 : 0) : 0, hi = multimask ? k - 1 : (k == 3 ? 2 : 0);
        int best = lo;
        for (int j = lo + 1; j <= hi; j++)
            if (sc[j] >= sc[best]) /* numpy argsort(...)[-1]: the last of equal maxima */
                best = j;
        const float *lg = masks + ((size_t)i * (size_t)k + (size_t)best) * (size_t)mh * (size_t)mw;
        uint8_t *mask = try_alloc((size_t)W * (size_t)H, 1);
        if (!mask) {
            rc = ERR_NOMEM;
            break;
        }
        for (int y = 0; y < H; y++) {
            int y0 = yi[y], y1 = y0 + 1 < mh ? y0 + 1 : mh - 1;
            float ly = yl[y];
            const float *a = lg + (size_t)y0 * (size_t)mw, *b = lg + (size_t)y1 * (size_t)mw;
            for (int x = 0; x < W; x++) {
                int x0 = xi[x], x1 = x0 + 1 < mw ? x0 + 1 : mw - 1;
                float lx = xl[x];
                float v = (1 - ly) * ((1 - lx) * a[x0] + lx * a[x1]) + ly * ((1 - lx) * b[x0] + lx * b[x1]);
                mask[(size_t)y * (size_t)W + (size_t)x] = v > 0.0f;
            }
        }
        r->masks[r->n].mask = mask;
        r->masks[r->n].confidence = sc[best];
        r->masks[r->n].prompt = i;
        r->n++;
    }
    free(xi);
    free(yi);
    free(xl);
    free(yl);
    if (rc < 0)
        model_sam_result_release(r);
    return rc;
}

void model_sam_result_release(struct model_sam_result *r)
{
    for (size_t i = 0; r && i < r->n; i++)
        free(r->masks[i].mask);
    if (r) {
        free(r->masks);
        r->masks = NULL;
        r->n = 0;
    }
}

int model_sam_run(struct model *m, const struct vis_image *img, const struct model_sam_prompt *prompts, size_t n,
                  bool multimask, struct model_sam_result *r, struct model_tensor *raw, char *err, size_t errlen)
{
    struct model__sam *s = m->sam;
    const OrtApi *api;
    OrtValue *feats[3] = {NULL, NULL, NULL}, *outs[2] = {NULL, NULL};
    float *t = NULL, *coords = NULL, *labels = NULL;
    struct model_sam_prompt none;
    int rc;

    memset(r, 0, sizeof *r);
    if (!s) {
        snprintf(err, errlen, "model '%s' is not a SAM2 model", m->id);
        return ERR_INVALID;
    }
    api = m->ort->api;
    if (!img || img->w <= 0 || img->h <= 0 || (img->fmt != VIS_BGR && img->fmt != VIS_BGRA && img->fmt != VIS_GRAY)) {
        snprintf(err, errlen, "SAM2 model '%s': unsupported image", m->id);
        return ERR_INVALID;
    }
    if (n > MODEL_SAM_MAX_PROMPTS) {
        snprintf(err, errlen, "SAM2 model '%s': %zu prompts, at most %d", m->id, n, MODEL_SAM_MAX_PROMPTS);
        return ERR_LIMIT;
    }
    if (n == 0) {
        /* Roboflow: no prompt is one prompt of a padding point */
        memset(&none, 0, sizeof none);
        none.n_points = 1;
        none.points[0].label = -1;
        prompts = &none;
        n = 1;
    }
    if ((uint64_t)n * (uint64_t)img->w * (uint64_t)img->h > MODEL_SAM_MAX_MASK_PIXELS) {
        snprintf(err, errlen, "SAM2 model '%s': %zu prompt(s) on a %dx%d picture make %zu mask pixels, at most %llu",
                 m->id, n, img->w, img->h, n * (size_t)img->w * (size_t)img->h,
                 (unsigned long long)MODEL_SAM_MAX_MASK_PIXELS);
        return ERR_LIMIT;
    }
    int p = 1;
    for (size_t i = 0; i < n; i++) {
        if (prompts[i].n_points > MODEL_SAM_MAX_POINTS) {
            snprintf(err, errlen, "SAM2 model '%s': a prompt has %zu points, at most %d", m->id, prompts[i].n_points,
                     MODEL_SAM_MAX_POINTS);
            return ERR_LIMIT;
        }
        int k = (int)prompts[i].n_points + (prompts[i].has_box ? 2 : 0);
        if (k > p)
            p = k;
    }
    float fx = (float)s->in_w / (float)img->w, fy = (float)s->in_h / (float)img->h;
    coords = xcalloc(n * (size_t)p * 2, sizeof(float));
    labels = xcalloc(n * (size_t)p, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float *c = coords + i * (size_t)p * 2, *l = labels + i * (size_t)p;
        int j = 0;
        if (prompts[i].has_box) {
            c[0] = prompts[i].box[0] * fx, c[1] = prompts[i].box[1] * fy, l[0] = 2;
            c[2] = prompts[i].box[2] * fx, c[3] = prompts[i].box[3] * fy, l[1] = 3;
            j = 2;
        }
        for (size_t q = 0; q < prompts[i].n_points; q++, j++) {
            c[2 * j] = prompts[i].points[q].x * fx;
            c[2 * j + 1] = prompts[i].points[q].y * fy;
            l[j] = (float)prompts[i].points[q].label;
        }
        for (; j < p; j++)
            l[j] = -1; /* padding: (0, 0) labelled -1 */
    }
    t = try_alloc((size_t)3 * (size_t)s->in_w * (size_t)s->in_h, sizeof(float));
    if (!t) {
        rc = ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    sam_preprocess(s, img, t);
    if ((rc = run_encoder(m, t, feats, err, errlen)) < 0 ||
        (rc = run_decoder(m, feats, coords, labels, (int)n, p, outs, err, errlen)) < 0)
        goto out;
    float *mk = NULL, *iou = NULL;
    int k = 0, mh = 0, mw = 0;
    char e3[400];
    if ((rc = check_dec_out(api, outs, (int)n, &k, &mh, &mw, &mk, &iou, e3, sizeof e3)) < 0) {
        snprintf(err, errlen, "SAM2 model '%s': %s", m->id, e3);
        goto out;
    }
    if (raw) {
        size_t mc = (size_t)n * (size_t)k * (size_t)mh * (size_t)mw, ic = (size_t)n * (size_t)k;
        raw[0].data = xmalloc(mc * sizeof(float));
        memcpy(raw[0].data, mk, mc * sizeof(float));
        raw[0].rank = 4, raw[0].count = mc;
        raw[0].shape[0] = (int64_t)n, raw[0].shape[1] = k, raw[0].shape[2] = mh, raw[0].shape[3] = mw;
        raw[1].data = xmalloc(ic * sizeof(float));
        memcpy(raw[1].data, iou, ic * sizeof(float));
        raw[1].rank = 2, raw[1].count = ic;
        raw[1].shape[0] = (int64_t)n, raw[1].shape[1] = k;
    }
    if ((rc = model_sam_decode(mk, iou, (int)n, k, mh, mw, multimask, img->w, img->h, r)) < 0)
        snprintf(err, errlen, "SAM2 model '%s': cannot decode the masks: %s", m->id, err_str(rc));
out:
    for (int i = 0; i < 3; i++)
        if (feats[i])
            api->ReleaseValue(feats[i]);
    for (int i = 0; i < 2; i++)
        if (outs[i])
            api->ReleaseValue(outs[i]);
    free(t);
    free(coords);
    free(labels);
    return rc;
}

json_t *model_sam_result_to_json(const struct model_sam_result *r, bool rle)
{
    json_t *preds = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const struct model_sam_mask *sm = &r->masks[i];
        struct model_detection d;
        memset(&d, 0, sizeof d);
        size_t area = (size_t)r->image_w * (size_t)r->image_h;
        uint8_t *copy = xmalloc(area);
        memcpy(copy, sm->mask, area);
        int rc = model__mask_to_polygon(copy, r->image_w, r->image_h, 0, 0, &d);
        free(copy);
        if (rc < 0 || d.n_points == 0) { /* an empty mask: skipped, as Roboflow's block does */
            free(d.points);
            continue;
        }
        /* the box of the polygon (Roboflow: min/max of the mask polygon's points) */
        float x1 = d.points[0].x, y1 = d.points[0].y, x2 = x1, y2 = y1;
        json_t *pts = json_array();
        for (size_t k = 0; k < d.n_points; k++) {
            x1 = fminf(x1, d.points[k].x), x2 = fmaxf(x2, d.points[k].x);
            y1 = fminf(y1, d.points[k].y), y2 = fmaxf(y2, d.points[k].y);
            if (!rle)
                json_array_append_new(pts, json_pack("{s:f,s:f}", "x", (double)d.points[k].x, "y", (double)d.points[k].y));
        }
        free(d.points);
        json_t *pj = json_pack("{s:f,s:f,s:f,s:f,s:f,s:i}", "x", (double)(x1 + x2) / 2, "y", (double)(y1 + y2) / 2, "width",
                               (double)(x2 - x1), "height", (double)(y2 - y1), "confidence", (double)sm->confidence,
                               "prompt_index", sm->prompt);
        if (rle) {
            json_decref(pts);
            char *counts = vis_coco_rle(sm->mask, r->image_w, r->image_h, 0, 0, r->image_w, r->image_h, -1);
            json_object_set_new(pj, "rle_mask", json_pack("{s:[i,i],s:s}", "size", r->image_h, r->image_w, "counts", counts));
            free(counts);
        } else {
            json_object_set_new(pj, "points", pts);
        }
        json_array_append_new(preds, pj);
    }
    return json_pack("{s:o,s:{s:i,s:i}}", "predictions", preds, "image", "width", r->image_w, "height", r->image_h);
}

int model__sam_infer(struct model *m, const json_t *params, const struct vis_image *img, json_t **out, char *err,
                     size_t errlen)
{
    const json_t *pr = json_object_get(params, "prompts");
    const json_t *mm = json_object_get(params, "multimask_output");
    const char *fmt = json_string_value(json_object_get(params, "response_mask_format"));
    struct model_sam_prompt *ps = NULL;
    size_t n = json_array_size(pr);
    struct model_sam_result r;
    int rc;

    if (pr && !json_is_array(pr)) {
        snprintf(err, errlen, "'prompts' must be a list");
        return ERR_INVALID;
    }
    if (fmt && strcmp(fmt, "rle") != 0 && strcmp(fmt, "polygon") != 0) {
        snprintf(err, errlen, "response_mask_format must be \"polygon\" or \"rle\"");
        return ERR_INVALID;
    }
    if (n > MODEL_SAM_MAX_PROMPTS) {
        snprintf(err, errlen, "%zu prompts, at most %d", n, MODEL_SAM_MAX_PROMPTS);
        return ERR_LIMIT;
    }
    ps = xcalloc(n ? n : 1, sizeof *ps);
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_array_get(pr, i), *box = json_object_get(p, "box"), *pts = json_object_get(p, "points");
        if (!json_is_object(p) || (box && !(json_is_array(box) && json_array_size(box) == 4)) ||
            (pts && !(json_is_array(pts) && json_array_size(pts) <= MODEL_SAM_MAX_POINTS))) {
            snprintf(err, errlen, "prompt %zu: expected {\"box\": [x1, y1, x2, y2], \"points\": [{\"x\", \"y\", "
                     "\"positive\"}, ...]} (at most %d points)", i, MODEL_SAM_MAX_POINTS);
            free(ps);
            return ERR_INVALID;
        }
        if (box) {
            ps[i].has_box = true;
            for (int k = 0; k < 4; k++)
                ps[i].box[k] = (float)json_number_value(json_array_get(box, (size_t)k));
        }
        size_t k;
        const json_t *pt;
        json_array_foreach(pts, k, pt)
        {
            ps[i].points[k].x = (float)json_number_value(json_object_get(pt, "x"));
            ps[i].points[k].y = (float)json_number_value(json_object_get(pt, "y"));
            ps[i].points[k].label = json_is_false(json_object_get(pt, "positive")) ? 0 : 1;
        }
        ps[i].n_points = json_array_size(pts);
    }
    rc = model_sam_run(m, img, ps, n, mm ? json_is_true(mm) : true, &r, NULL, err, errlen);
    free(ps);
    if (rc < 0)
        return rc;
    *out = model_sam_result_to_json(&r, fmt && !strcmp(fmt, "rle"));
    model_sam_result_release(&r);
    return 0;
}
