/*
 * bench_model_ocr — PP-OCR images/s on a rendered-text set, vbatch's whole
 * per-image path against bare ONNX Runtime on the same tensors, in one run.
 *
 *   bench_model_ocr [OCR_DIR] [ROUNDS]   (default $VBATCH_OCR_DIR or
 *                                         ~/.cache/vbatch/ocr/ppocr-v4, 5)
 *
 * The set: 12 images (black DejaVu Sans text on white, 1 to 3 lines, 24 to
 * 40 px, 300 to 900 px wide) of known strings; the character accuracy of
 * the run is printed beside the speed.
 * vbatch: model_ocr_run (resize + normalise, detector, boxes, one
 * recogniser run per box, CTC decode) + model_ocr_result_to_json +
 * json_dumps, 2 ONNX Runtime intra-op threads.
 * Baseline: our own ORT sessions of det.onnx and rec.onnx (2 intra-op
 * threads, full optimisation, no spin-waiting: as vbatch's) running tensors of exactly the shapes vbatch
 * ran for each image (the detector's input and one recogniser input per
 * box vbatch found), pre-filled, so only inference is timed.
 *
 * One line per figure: "bench_model_ocr <name> <value> <unit>".
 */
#include <math.h>
#include <onnxruntime_c_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model.h"
#include "vision/vision.h"

#define BENCH_PROG "bench_model_ocr"
#include "bench_util.h"

static const char *const set[][3] = {
    {"HELLO WORLD", NULL, NULL},
    {"Invoice 2024-117", "Due 2024-12-31", NULL},
    {"vbatch reads text", NULL, NULL},
    {"Total: 42.50 EUR", "VAT 20%", "Paid"},
    {"ROBOFLOW", NULL, NULL},
    {"The quick brown fox", "jumps over the lazy dog", NULL},
    {"PP-OCR v4", NULL, NULL},
    {"Batch processing 123", NULL, NULL},
    {"STOP", NULL, NULL},
    {"Model registry", "OCR family", NULL},
    {"Order #55812", "Ship to: Berlin", NULL},
    {"2026-12-06 06:00 UTC", NULL, NULL},
};

static struct vis_image *render(const char *const *lines, int px)
{
    struct vis_font *f = vis_font_default();
    int w = 40, h = 30;
    for (int i = 0; i < 3 && lines[i]; i++) {
        struct vis_text_metrics tm;
        if (vis_text_measure(f, lines[i], px, &tm) < 0)
            exit(1);
        w = MAX(w, tm.width + 80);
        h += tm.height + tm.baseline + px;
    }
    struct vis_image *img = vis_image_new(w, h, VIS_BGR);
    vis_image_fill(img, VIS_RGB(255, 255, 255));
    int y = 20;
    for (int i = 0; i < 3 && lines[i]; i++) {
        struct vis_text_metrics tm;
        if (vis_text_measure(f, lines[i], px, &tm) < 0)
            exit(1);
        y += tm.height;
        if (vis_text_draw(img, f, lines[i], px, 40, y, VIS_RGB(0, 0, 0)) < 0)
            exit(1);
        y += tm.baseline + px;
    }
    return img;
}

static size_t lev(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), *p = xcalloc(lb + 1, sizeof *p),
           *c = xcalloc(lb + 1, sizeof *c);
    for (size_t j = 0; j <= lb; j++)
        p[j] = j;
    for (size_t i = 1; i <= la; i++) {
        c[0] = i;
        for (size_t j = 1; j <= lb; j++)
            c[j] = MIN(MIN(p[j - 1] + (a[i - 1] != b[j - 1]), p[j] + 1), c[j - 1] + 1);
        size_t *t = p;
        p = c;
        c = t;
    }
    size_t d = p[lb];
    free(p);
    free(c);
    return d;
}

static void nospace(char *s)
{
    char *o = s;
    for (; *s; s++)
        if (*s != ' ')
            *o++ = *s;
    *o = 0;
}

/* A bare run on a (1, 3, h, w) float tensor. */
static void run_bare(const OrtApi *api, OrtMemoryInfo *mem, OrtSession *s, const char *in,
                     const char *out, float *t, int h, int w)
{
    int64_t shape[4] = {1, 3, h, w};
    bench_run1(api, mem, s, in, out, t, (size_t)3 * (size_t)h * (size_t)w * 4, shape, 4,
               ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
}

int main(int argc, char **argv)
{
    const char *envd = getenv("VBATCH_OCR_DIR");
    char *dir = argc > 1 ? xstrdup(argv[1])
                : envd   ? xstrdup(envd)
                         : xasprintf("%s/.cache/vbatch/ocr/ppocr-v4", getenv("HOME"));
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    size_t n = ARRAY_LEN(set);
    struct model *m = NULL;
    char err[1024];
    struct model_registry *reg = bench_model_open(dir, "pp_ocr", &m);
    struct vis_image **imgs = xcalloc(n, sizeof *imgs);
    /* per image: detector input size and the recogniser widths of its boxes */
    int *dh = xcalloc(n, sizeof *dh), *dw = xcalloc(n, sizeof *dw);
    int **rw = xcalloc(n, sizeof *rw);
    size_t *nb = xcalloc(n, sizeof *nb), chars = 0, errs = 0;
    for (size_t i = 0; i < n; i++) {
        imgs[i] = render(set[i], 24 + (int)(i % 5) * 4);
        struct model_ocr_result r;
        if (model_ocr_run(m, imgs[i], &r, err, sizeof err) < 0) {
            fprintf(stderr, "bench_model_ocr: %s\n", err);
            return 1;
        }
        int W = imgs[i]->w, H = imgs[i]->h;
        double ratio = MAX(W, H) > 960 ? 960.0 / MAX(W, H) : 1.0;
        dh[i] = MAX((int)lround((int)(H * ratio) / 32.0) * 32, 32);
        dw[i] = MAX((int)lround((int)(W * ratio) / 32.0) * 32, 32);
        nb[i] = r.n_words;
        rw[i] = xcalloc(r.n_words + 1, sizeof(int));
        for (size_t k = 0; k < r.n_words; k++) {
            double ar = (double)(r.words[k].x2 - r.words[k].x1) / (double)(r.words[k].y2 - r.words[k].y1);
            rw[i][k] = (int)(48 * MAX(320.0 / 48, ar));
        }
        json_t *j = model_ocr_result_to_json(&r);
        char got[1024], truth[256] = "";
        snprintf(got, sizeof got, "%s", json_string_value(json_object_get(j, "result")));
        for (int k = 0; k < 3 && set[i][k]; k++)
            strncat(truth, set[i][k], sizeof truth - strlen(truth) - 1);
        nospace(got);
        nospace(truth);
        chars += strlen(truth);
        errs += lev(got, truth);
        json_decref(j);
        model_ocr_result_release(&r);
    }
    printf("bench_model_ocr char_accuracy_no_spaces %.4f ratio\n", 1.0 - (double)errs / (double)chars);

    OrtEnv *env = NULL;
    OrtMemoryInfo *mem = NULL;
    const OrtApi *api = bench_ort(reg, &env, &mem);
    char *dp = xasprintf("%s/det.onnx", dir), *rp = xasprintf("%s/rec.onnx", dir);
    OrtSession *ds = bench_session(api, env, dp), *rs = bench_session(api, env, rp);
    char *din, *dout, *rin, *rout;
    bench_io_names(api, ds, &din, &dout);
    bench_io_names(api, rs, &rin, &rout);
    float *t = xcalloc((size_t)3 * 1024 * 1024, sizeof(float));
    for (size_t q = 0; q < (size_t)3 * 1024 * 1024; q++)
        t[q] = (float)((q * 2654435761u) % 255) / 255.0f - 0.5f;

    double best_v = 1e30, best_b = 1e30;
    for (int rd = 0; rd < rounds; rd++) {
        double t0 = bench_now_s();
        for (size_t i = 0; i < n; i++) {
            struct model_ocr_result r;
            if (model_ocr_run(m, imgs[i], &r, err, sizeof err) < 0) {
                fprintf(stderr, "bench_model_ocr: %s\n", err);
                return 1;
            }
            json_t *j = model_ocr_result_to_json(&r);
            char *s = json_dumps(j, JSON_COMPACT);
            free(s);
            json_decref(j);
            model_ocr_result_release(&r);
        }
        double v = bench_now_s() - t0;
        t0 = bench_now_s();
        for (size_t i = 0; i < n; i++) {
            run_bare(api, mem, ds, din, dout, t, dh[i], dw[i]);
            for (size_t k = 0; k < nb[i]; k++)
                run_bare(api, mem, rs, rin, rout, t, 48, rw[i][k]);
        }
        double b = bench_now_s() - t0;
        best_v = MIN(best_v, v);
        best_b = MIN(best_b, b);
        printf("bench_model_ocr round%d_vbatch %.2f images/s\n", rd, (double)n / v);
        printf("bench_model_ocr round%d_bare_ort %.2f images/s\n", rd, (double)n / b);
    }
    printf("bench_model_ocr vbatch_best %.2f images/s\n", (double)n / best_v);
    printf("bench_model_ocr bare_ort_best %.2f images/s\n", (double)n / best_b);
    printf("bench_model_ocr ratio %.3f vbatch/bare\n", best_b / best_v);
    bench_name_free(api, din);
    bench_name_free(api, dout);
    bench_name_free(api, rin);
    bench_name_free(api, rout);
    api->ReleaseSession(ds);
    api->ReleaseSession(rs);
    api->ReleaseMemoryInfo(mem);
    for (size_t i = 0; i < n; i++) {
        vis_image_free(imgs[i]);
        free(rw[i]);
    }
    free(imgs);
    free(rw);
    free(nb);
    free(dh);
    free(dw);
    free(t);
    free(dp);
    free(rp);
    free(dir);
    model_unref(m);
    model_registry_free(reg);
    return 0;
}
