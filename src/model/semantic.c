/*
 * semantic.c — semantic segmentation (per-pixel class logits, DeepLabV3+
 * style): decoding and the Roboflow response.
 *
 * Roboflow's SemanticSegmentationBaseOnnxRoboflowInferenceModel
 * (inference/core/models/semantic_segmentation_base.py) takes the first
 * output (N, C, H, W) of logits, applies a softmax over C, keeps per pixel
 * the best probability and its class (torch.max), scales the probability
 * to round(p * 255), resizes both maps to the original image with torch's
 * "nearest" interpolation (source index floor(dst * in / out)) and answers
 *   {"predictions": {"segmentation_mask": <base64 PNG of class ids>,
 *                    "confidence_mask": <base64 PNG of 0..255 confidences>,
 *                    "class_map": {"0": name, ...}, "image": {w, h}},
 *    "image": {w, h}}
 * Class ids are uint8 in the PNG, so a model has at most 256 classes.
 * The whole output is resized to the image (Roboflow does not undo a
 * letterbox or static crop here, and neither does vbatch).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model_int.h"

int model__decode_semantic(const struct model *m, const struct model__out *o, int b,
                           struct model_result *r, char *err, size_t errlen)
{
    size_t nc = m->n_classes;
    if (o->rank != 4 || o->shape[1] != (int64_t)nc || o->shape[2] < 1 || o->shape[3] < 1) {
        snprintf(err, errlen, "expected logits (N, %zu, H, W)", nc);
        return ERR_INVALID;
    }
    size_t oh = (size_t)o->shape[2], ow = (size_t)o->shape[3], plane = oh * ow;
    size_t W = (size_t)r->image_w, H = (size_t)r->image_h;
    const float *lg = o->data + (size_t)b * nc * plane;
    uint8_t *cls = try_alloc(plane, 1), *conf = try_alloc(plane, 1);
    size_t npx = (W && H) ? W * H : 1;
    uint8_t *ocls = try_alloc(npx, 1), *oconf = try_alloc(npx, 1);
    size_t *xs = try_alloc(W ? W : 1, sizeof(size_t));
    int rc = 0;

    r->task = MODEL_TASK_SEMANTIC;
    if (!cls || !conf || !ocls || !oconf || !xs) {
        rc = ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < plane; i++) {
        float mx = lg[i];
        size_t arg = 0;
        for (size_t c = 1; c < nc; c++)
            if (lg[c * plane + i] > mx) {
                mx = lg[c * plane + i];
                arg = c;
            }
        /* softmax of the best class: exp(0) / sum(exp(l - max)); a NaN
         * anywhere makes the sum NaN */
        float s = 0;
        for (size_t c = 0; c < nc; c++)
            s += expf(lg[c * plane + i] - mx);
        if (!isfinite(mx) || !(s >= 1.0f && s <= (float)nc)) {
            snprintf(err, errlen, "the logits hold NaN or infinite values");
            rc = ERR_INVALID;
            goto out;
        }
        float v = nearbyintf((1.0f / s) * 255.0f);
        cls[i] = (uint8_t)arg;
        conf[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    {
        float fx = (float)ow / (float)W, fy = (float)oh / (float)H;
        for (size_t x = 0; x < W; x++)
            xs[x] = MIN((size_t)floorf((float)x * fx), ow - 1);
        for (size_t y = 0; y < H; y++) {
            size_t sy = MIN((size_t)floorf((float)y * fy), oh - 1);
            for (size_t x = 0; x < W; x++) {
                ocls[y * W + x] = cls[sy * ow + xs[x]];
                oconf[y * W + x] = conf[sy * ow + xs[x]];
            }
        }
    }
    r->class_mask = ocls;
    r->conf_mask = oconf;
    ocls = oconf = NULL;
out:
    free(cls);
    free(conf);
    free(ocls);
    free(oconf);
    free(xs);
    return rc;
}

static json_t *png_b64(const uint8_t *px, int w, int h)
{
    struct vis_image *img = vis_image_new(w, h, VIS_GRAY);
    uint8_t *png = NULL;
    size_t len = 0;
    char *s;
    json_t *j;
    for (int y = 0; y < h; y++)
        memcpy(img->px + (size_t)y * img->stride, px + (size_t)y * (size_t)w, (size_t)w);
    if (vis_encode_png(img, &png, &len) < 0) {
        vis_image_free(img);
        return json_string("");
    }
    vis_image_free(img);
    s = base64_encode(png, len);
    free(png);
    j = json_string(s);
    free(s);
    return j;
}

json_t *model__semantic_json(const struct model *m, const struct model_result *r)
{
    json_t *o = json_object(), *p = json_object(), *cm = json_object();
    json_t *img = json_pack("{s:i, s:i}", "width", r->image_w, "height", r->image_h);
    for (size_t c = 0; c < m->n_classes; c++) {
        char k[24];
        snprintf(k, sizeof k, "%zu", c);
        json_object_set_new(cm, k, json_string(m->classes[c]));
    }
    json_object_set_new(p, "segmentation_mask", png_b64(r->class_mask, r->image_w, r->image_h));
    json_object_set_new(p, "confidence_mask", png_b64(r->conf_mask, r->image_w, r->image_h));
    json_object_set_new(p, "class_map", cm);
    json_object_set_new(p, "image", json_deep_copy(img));
    json_object_set_new(o, "predictions", p);
    json_object_set_new(o, "image", img);
    return o;
}


void model__keep_mask(struct model_detection *d, const uint8_t *mask, int x0, int y0, int w,
                      int h)
{
    size_t n = (size_t)w * (size_t)h;
    if (w <= 0 || h <= 0)
        return;
    d->mask = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        d->mask[i] = mask[i] != 0;
    d->mask_x = x0, d->mask_y = y0, d->mask_w = w, d->mask_h = h;
}
