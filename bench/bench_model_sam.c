/*
 * bench_model_sam — SAM2 images/s, vbatch's whole per-image path against
 * bare ONNX Runtime on the same tensors, in one run.
 *
 *   bench_model_sam [SAM_DIR] [ROUNDS]   (default tests/data/models/sam2-tiny, 5)
 *
 * The set: 8 pictures of 640 x 480, 4 box prompts each.
 * vbatch: model_sam_run (RGB + bilinear resize to the encoder's 1024 x 1024
 * + normalise, encoder, prompt tensors, decoder, mask choice, bilinear
 * resize of the chosen logits to the picture, threshold) +
 * model_sam_result_to_json (polygons) + json_dumps, 2 ONNX Runtime intra-op
 * threads.
 * Baseline: our own ORT sessions of encoder.onnx and decoder.onnx (2
 * intra-op threads, full optimisation, no spin-waiting: as vbatch's)
 * running a pre-filled (1, 3, 1024, 1024) tensor and the decoder on its
 * outputs with the same 4 prompts, so only inference is timed.
 *
 * With the tiny replica the networks cost little and the figure is mostly
 * vbatch's own pre- and post-processing; a real SAM2 encoder (hiera) is
 * orders of magnitude heavier and dominates the whole path.
 *
 * One line per figure: "bench_model_sam <name> <value> <unit>".
 */
#include <onnxruntime_c_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model.h"
#include "vision/vision.h"

#define BENCH_PROG "bench_model_sam"
#include "bench_util.h"

static OrtValue *tensor(const OrtApi *api, OrtMemoryInfo *mem, float *d, const int64_t *shape, size_t rank)
{
    size_t c = 1;
    OrtValue *v = NULL;
    for (size_t i = 0; i < rank; i++)
        c *= (size_t)shape[i];
    BENCH_CHK(api, api->CreateTensorWithDataAsOrtValue(mem, d, c * sizeof(float), shape, rank, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                            &v));
    return v;
}

int main(int argc, char **argv)
{
    char *dir = argc > 1 ? xstrdup(argv[1]) : xstrdup("tests/data/models/sam2-tiny");
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    enum { N = 8, P = 4 };
    struct model *m = NULL;
    char err[1024];
    struct model_registry *reg = bench_model_open(dir, "sam2/hiera_tiny", &m);
    struct vis_image *imgs[N];
    for (int i = 0; i < N; i++) {
        imgs[i] = vis_image_new(640, 480, VIS_BGR);
        for (int y = 0; y < 480; y++)
            for (int x = 0; x < 640 * 3; x++)
                imgs[i]->px[(size_t)y * (size_t)imgs[i]->stride + (size_t)x] = (uint8_t)((x * 7 + y * 13 + i * 31) % 251);
    }
    struct model_sam_prompt ps[P];
    memset(ps, 0, sizeof ps);
    for (int k = 0; k < P; k++) {
        ps[k].has_box = true;
        ps[k].box[0] = 40.0f + 130 * k, ps[k].box[1] = 60.0f + 50 * k;
        ps[k].box[2] = ps[k].box[0] + 120, ps[k].box[3] = ps[k].box[1] + 160;
    }
    OrtEnv *env = NULL;
    OrtMemoryInfo *mem = NULL;
    const OrtApi *api = bench_ort(reg, &env, &mem);
    char *ep = xasprintf("%s/encoder.onnx", dir), *dp = xasprintf("%s/decoder.onnx", dir);
    OrtSession *es = bench_session(api, env, ep), *ds = bench_session(api, env, dp);
    float *t = xcalloc((size_t)3 * 1024 * 1024, sizeof(float));
    for (size_t q = 0; q < (size_t)3 * 1024 * 1024; q++)
        t[q] = (float)((q * 2654435761u) % 255) / 255.0f - 0.5f;
    float coords[P * 2 * 2], labels[P * 2], *mask_in = xcalloc((size_t)P * 256 * 256, sizeof(float)), has[P] = {0};
    for (int k = 0; k < P; k++) {
        for (int j = 0; j < 4; j++)
            coords[k * 4 + j] = ps[k].box[j] * (j % 2 ? 1024.0f / 480 : 1024.0f / 640);
        labels[k * 2] = 2, labels[k * 2 + 1] = 3;
    }
    const char *enc_in = "image", *enc_out[3] = {"image_embed", "high_res_feats_0", "high_res_feats_1"};
    const char *dec_in[7] = {"image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords",
                             "point_labels", "mask_input", "has_mask_input"};
    const char *dec_out[2] = {"masks", "iou_predictions"};
    int64_t is[4] = {1, 3, 1024, 1024}, cs[3] = {P, 2, 2}, ls[2] = {P, 2}, ms[4] = {P, 1, 256, 256}, hs[1] = {P};

    double best_v = 1e30, best_b = 1e30;
    for (int rd = 0; rd < rounds; rd++) {
        double t0 = bench_now_s();
        for (int i = 0; i < N; i++) {
            struct model_sam_result r;
            if (model_sam_run(m, imgs[i], ps, P, true, &r, NULL, err, sizeof err) < 0) {
                fprintf(stderr, "bench_model_sam: %s\n", err);
                return 1;
            }
            json_t *j = model_sam_result_to_json(&r, false);
            char *s = json_dumps(j, JSON_COMPACT);
            free(s);
            json_decref(j);
            model_sam_result_release(&r);
        }
        double v = bench_now_s() - t0;
        t0 = bench_now_s();
        for (int i = 0; i < N; i++) {
            OrtValue *iv = tensor(api, mem, t, is, 4), *f[3] = {NULL, NULL, NULL}, *out[2] = {NULL, NULL};
            BENCH_CHK(api, api->Run(es, NULL, &enc_in, (const OrtValue *const *)&iv, 1, enc_out, 3, f));
            OrtValue *in[7] = {f[0], f[1], f[2], tensor(api, mem, coords, cs, 3), tensor(api, mem, labels, ls, 2),
                               tensor(api, mem, mask_in, ms, 4), tensor(api, mem, has, hs, 1)};
            BENCH_CHK(api, api->Run(ds, NULL, dec_in, (const OrtValue *const *)in, 7, dec_out, 2, out));
            for (int k = 0; k < 7; k++)
                api->ReleaseValue(in[k]);
            api->ReleaseValue(out[0]);
            api->ReleaseValue(out[1]);
            api->ReleaseValue(iv);
        }
        double b = bench_now_s() - t0;
        best_v = MIN(best_v, v);
        best_b = MIN(best_b, b);
        printf("bench_model_sam round%d_vbatch %.2f images/s\n", rd, N / v);
        printf("bench_model_sam round%d_bare_ort %.2f images/s\n", rd, N / b);
    }
    printf("bench_model_sam vbatch_best %.2f images/s\n", N / best_v);
    printf("bench_model_sam bare_ort_best %.2f images/s\n", N / best_b);
    printf("bench_model_sam ratio %.3f vbatch/bare\n", best_b / best_v);
    api->ReleaseSession(es);
    api->ReleaseSession(ds);
    api->ReleaseMemoryInfo(mem);
    for (int i = 0; i < N; i++)
        vis_image_free(imgs[i]);
    free(t);
    free(mask_in);
    free(ep);
    free(dp);
    free(dir);
    model_unref(m);
    model_registry_free(reg);
    return 0;
}
