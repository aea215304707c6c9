/*
 * bench_model_clip — CLIP embeddings/s: vbatch's whole path against bare
 * ONNX Runtime on the same tensors, in one run.
 *
 *   bench_model_clip [CLIP_DIR] [ROUNDS]   (default
 *        tests/data/models/clip-tiny under $VBATCH_SRCDIR or ., 5 rounds)
 *
 * CLIP_DIR: a CLIP model folder (visual.onnx, textual.onnx, merges.txt;
 * docs/MODELS.md "CLIP").
 * Images: 16 synthetic 640x480 pictures.  vbatch: model_clip_embed_image
 * (RGB copy, Pillow-exact bicubic resize of the shorter side, centre crop,
 * normalisation, image encoder) + the embedding as a JSON list + json_dumps;
 * baseline: our own ORT session of visual.onnx (2 intra-op threads, full
 * optimisation, no spin-waiting: as vbatch's) running the tensor vbatch
 * pre-processed, so that only inference is timed.  Texts: 16 class
 * prompts, model_clip_embed_texts (tokenizer + one batched run) against the
 * bare session on the same ids.  Best round of ROUNDS.
 *
 * One line per figure: "bench_model_clip <name> <value> <unit>".
 */
#include <onnxruntime_c_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model.h"
#include "vision/vision.h"

#define BENCH_PROG "bench_model_clip"
#include "bench_util.h"

#define N_IMG 16

static const char *const prompts[N_IMG] = {
    "a photo of a cat", "a photo of a dog", "a photo of a car", "a photo of a person",
    "a red bicycle", "a blue truck on the road", "a bird in the sky", "a horse in a field",
    "people playing in the street", "a small white house", "a large green tree",
    "a zebra", "an elephant and a giraffe", "a black and white picture",
    "a yellow taxi in new york city", "a picture of a street at night",
};

int main(int argc, char **argv)
{
    const char *sd = getenv("VBATCH_SRCDIR");
    char *dir = argc > 1 ? xstrdup(argv[1])
                         : xasprintf("%s/tests/data/models/clip-tiny", sd ? sd : ".");
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (rounds < 1)
        rounds = 1;
    struct model *m = NULL;
    char err[1024];
    struct model_registry *reg = bench_model_open(dir, "clip/bench", &m);
    int R, R2;
    model_input_size(m, &R, &R2);
    size_t dim = model_clip_dim(m), tn = (size_t)3 * (size_t)R * (size_t)R;

    struct vis_image *imgs[N_IMG];
    float *tensors[N_IMG];
    for (int i = 0; i < N_IMG; i++) {
        imgs[i] = vis_image_new(640, 480, VIS_BGR);
        for (int y = 0; y < 480; y++)
            for (int x = 0; x < 640; x++) {
                uint8_t *p = vis_px(imgs[i], x, y);
                p[0] = (uint8_t)(x * (i + 1) + y);
                p[1] = (uint8_t)((x ^ y) + 16 * i);
                p[2] = (uint8_t)(y * 3 - x + i * 7);
            }
        tensors[i] = xmalloc(tn * sizeof(float));
        model_clip_preprocess(m, imgs[i], tensors[i]);
    }

    /* vbatch: whole path */
    double best_v = 1e30, best_t = 1e30, best_p = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = bench_now_s();
        for (int i = 0; i < N_IMG; i++) {
            float *e = NULL;
            if (model_clip_embed_image(m, imgs[i], &e, err, sizeof err) < 0) {
                fprintf(stderr, "bench_model_clip: %s\n", err);
                return 1;
            }
            json_t *a = json_array();
            for (size_t k = 0; k < dim; k++)
                json_array_append_new(a, json_real((double)e[k]));
            char *s = json_dumps(a, JSON_COMPACT);
            free(s);
            json_decref(a);
            free(e);
        }
        double t1 = bench_now_s();
        if (t1 - t0 < best_v)
            best_v = t1 - t0;
        float *te = NULL;
        if (model_clip_embed_texts(m, prompts, N_IMG, &te, err, sizeof err) < 0) {
            fprintf(stderr, "bench_model_clip: %s\n", err);
            return 1;
        }
        free(te);
        double t2 = bench_now_s();
        if (t2 - t1 < best_t)
            best_t = t2 - t1;
        float *scratch = xmalloc(tn * sizeof(float));
        for (int i = 0; i < N_IMG; i++)
            model_clip_preprocess(m, imgs[i], scratch);
        free(scratch);
        double t3 = bench_now_s();
        if (t3 - t2 < best_p)
            best_p = t3 - t2;
    }

    /* bare ONNX Runtime */
    OrtEnv *env = NULL;
    OrtMemoryInfo *mem = NULL;
    const OrtApi *api = bench_ort(reg, &env, &mem);
    char *vp = xasprintf("%s/visual.onnx", dir), *tp = xasprintf("%s/textual.onnx", dir);
    OrtSession *vs = bench_session(api, env, vp), *ts = bench_session(api, env, tp);
    char *vin, *vout, *tin, *tout;
    bench_io_names(api, vs, &vin, &vout);
    bench_io_names(api, ts, &tin, &tout);
    /* the ids vbatch feeds: tokenised with the folder's merges */
    char *mp = xasprintf("%s/merges.txt", dir), *mb = NULL;
    size_t ml = 0;
    struct model_clip_bpe *bpe = NULL;
    if (file_read_all(mp, 64u << 20, &mb, &ml) < 0 ||
        model_clip_bpe_load(mb, ml, NULL, &bpe, err, sizeof err) < 0) {
        fprintf(stderr, "bench_model_clip: merges: %s\n", err);
        return 1;
    }
    int32_t *ids = xmalloc((size_t)N_IMG * MODEL_CLIP_CONTEXT * sizeof(int32_t));
    for (int i = 0; i < N_IMG; i++)
        model_clip_bpe_tokenize(bpe, prompts[i], false, ids + (size_t)i * MODEL_CLIP_CONTEXT, err,
                                sizeof err);
    double bare_v = 1e30, bare_t = 1e30;
    int64_t vshape[4] = {1, 3, R, R}, tshape[2] = {N_IMG, MODEL_CLIP_CONTEXT};
    for (int r = 0; r < rounds; r++) {
        double t0 = bench_now_s();
        for (int i = 0; i < N_IMG; i++)
            bench_run1(api, mem, vs, vin, vout, tensors[i], tn * sizeof(float), vshape, 4,
                     ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
        double t1 = bench_now_s();
        bench_run1(api, mem, ts, tin, tout, ids, (size_t)N_IMG * MODEL_CLIP_CONTEXT * 4, tshape, 2,
                 ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32);
        double t2 = bench_now_s();
        if (t1 - t0 < bare_v)
            bare_v = t1 - t0;
        if (t2 - t1 < bare_t)
            bare_t = t2 - t1;
    }
    printf("bench_model_clip input_side %d px\n", R);
    printf("bench_model_clip embedding_size %zu floats\n", dim);
    printf("bench_model_clip image_embeddings_per_s_vbatch %.1f 1/s\n", N_IMG / best_v);
    printf("bench_model_clip image_embeddings_per_s_bare_ort %.1f 1/s\n", N_IMG / bare_v);
    printf("bench_model_clip image_preprocess_ms %.3f ms\n", best_p * 1e3 / N_IMG);
    printf("bench_model_clip image_overhead_ratio %.2f ratio\n", best_v / bare_v);
    printf("bench_model_clip text_embeddings_per_s_vbatch %.1f 1/s\n", N_IMG / best_t);
    printf("bench_model_clip text_embeddings_per_s_bare_ort %.1f 1/s\n", N_IMG / bare_t);
    printf("bench_model_clip text_overhead_ratio %.2f ratio\n", best_t / bare_t);

    bench_name_free(api, vin);
    bench_name_free(api, vout);
    bench_name_free(api, tin);
    bench_name_free(api, tout);
    api->ReleaseSession(vs);
    api->ReleaseSession(ts);
    api->ReleaseMemoryInfo(mem);
    model_clip_bpe_free(bpe);
    free(ids);
    free(mb);
    free(mp);
    free(vp);
    free(tp);
    for (int i = 0; i < N_IMG; i++) {
        vis_image_free(imgs[i]);
        free(tensors[i]);
    }
    model_unref(m);
    model_registry_free(reg);
    free(dir);
    return 0;
}
