/*
 * bench_model — vbatch's whole per-image model path against bare ONNX
 * Runtime, in one run, on the YOLOv8n-sized model made by
 * scripts/make-bench-model.py (8.7 GFLOP at 640x640), or that network in
 * another architecture's output layout (make-bench-model.py DIR FAMILY:
 * yolov5, yolov10, yolo26, yolonas, rfdetr); the bare run fetches every
 * output, as vbatch's does.
 *
 *   bench_model [MODEL_DIR] [N]      (default ~/.cache/vbatch/bench/yolov8n-random, 108)
 *
 * Baseline: an ORT session of our own (2 intra-op threads, full graph
 * optimisation) running the already pre-processed 640x640 tensor.
 * vbatch: JPEG bytes (1920x1080) -> vis_decode -> model_run (pre-process,
 * inference on the registry's shared session, decode + NMS) ->
 * model_result_to_json -> json_dumps, measured three ways: all on one
 * thread ("vbatch_path"); as the jobs worker runs it, with decode and
 * pre-processing of the next image on a lookahead thread
 * ("vbatch_pipelined"); and that on 2 worker threads sharing one session
 * with 1 intra-op thread each (the default worker pool of a 2-core
 * machine), against bare ORT on 2 threads and on 2 x 1 threads.  Also the
 * decode / pre-process cost per 1080p JPEG.
 *
 * One line per figure: "bench_model <name> <value> <unit>".
 */
#include <math.h>
#include <onnxruntime_c_api.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "model/model.h"
#include "vision/vision.h"

static double now_ms(void)
{
    return (double)time_mono_ns() / 1e6;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double proc_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sequential per-image latencies: min and median, robust to a busy box. */
#define LAT_N 64
#define ROUNDS 9
static double lat_bare[LAT_N], lat_whole[LAT_N];
static int n_bare, n_whole;

static uint8_t *make_jpeg(size_t *len)
{
    struct vis_image *im = vis_image_new(1920, 1080, VIS_BGR);
    uint32_t s = 12345;
    for (int y = 0; y < im->h; y++) {
        uint8_t *r = vis_px(im, 0, y);
        for (int x = 0; x < im->w; x++) {
            s = s * 1103515245u + 12345u;
            int n = (int)((s >> 16) & 15) - 8;
            r[3 * x + 0] = (uint8_t)MAX(0, MIN(255, 128 + 100 * sin(x / 90.0) + n));
            r[3 * x + 1] = (uint8_t)MAX(0, MIN(255, 128 + 100 * cos(y / 70.0) + n));
            r[3 * x + 2] = (uint8_t)MAX(0, MIN(255, (x + y) / 12 + n));
        }
    }
    for (int k = 0; k < 20; k++) {
        int x0 = (k * 397) % 1700, y0 = (k * 211) % 900, w = 80 + (k * 53) % 200, h = 60 + (k * 31) % 150;
        for (int y = y0; y < MIN(1080, y0 + h); y++)
            for (int x = x0; x < MIN(1920, x0 + w); x++) {
                uint8_t *p = vis_px(im, x, y);
                p[0] = (uint8_t)(k * 37);
                p[1] = (uint8_t)(k * 91);
                p[2] = (uint8_t)(k * 13);
            }
    }
    uint8_t *jpg = NULL;
    if (vis_encode_jpeg(im, 90, &jpg, len) < 0) {
        fprintf(stderr, "cannot encode the test JPEG\n");
        exit(1);
    }
    vis_image_free(im);
    return jpg;
}

struct whole_arg {
    struct model *m;
    const uint8_t *jpg;
    size_t len;
    int n;
    int record; /* keep per-image latencies (single worker only) */
    int pipe;   /* decode + pre-process on a lookahead thread, as the jobs worker */
    double decode_ms, run_ms, json_ms;
    size_t dets, bytes;
};

static void *decode_one(void *ud, size_t i)
{
    struct whole_arg *a = ud;
    (void)i;
    struct vis_image *img = NULL;
    if (vis_decode(a->jpg, a->len, &img) < 0) {
        fprintf(stderr, "decode failed\n");
        exit(1);
    }
    if (a->pipe && model_prepare(a->m, img) < 0) {
        fprintf(stderr, "model_prepare failed\n");
        exit(1);
    }
    return img;
}

static void image_free(void *p)
{
    vis_image_free(p);
}

/* The per-image path a worker runs: decode, model, JSON text.  With
 * a->pipe the decode and the model's pre-processing (model_prepare) run
 * one image ahead on a lookahead thread (base.h), which is what
 * src/jobs/worker.c does. */
static void *whole_path(void *p)
{
    struct whole_arg *a = p;
    struct model_params prm;
    struct lookahead *la = NULL;
    char err[256];
    model_params_init(&prm);
    if (a->pipe && lookahead_start((size_t)a->n, 1, 10, decode_one, a, &la) < 0) {
        fprintf(stderr, "lookahead_start failed\n");
        exit(1);
    }
    for (int i = 0; i < a->n; i++) {
        double t0 = now_ms();
        struct vis_image *img = la ? lookahead_take(la, (size_t)i) : decode_one(a, (size_t)i);
        double t1 = now_ms();
        struct model_result r;
        const struct vis_image *imgs[1] = {img};
        if (model_run(a->m, imgs, 1, &prm, &r, err, sizeof(err)) < 0) {
            fprintf(stderr, "model_run: %s\n", err);
            exit(1);
        }
        double t2 = now_ms();
        json_t *j = model_result_to_json(a->m, &r, &prm);
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8));
        a->bytes += strlen(s);
        a->dets += r.n_dets;
        free(s);
        json_decref(j);
        model_result_release(&r);
        vis_image_free(img);
        double t3 = now_ms();
        if (a->record && n_whole < LAT_N)
            lat_whole[n_whole++] = t3 - t0;
        a->decode_ms += t1 - t0;
        a->run_ms += t2 - t1;
        a->json_ms += t3 - t2;
    }
    lookahead_stop(la, image_free);
    return NULL;
}

#define CHECK(x)                                                                 \
    do {                                                                         \
        OrtStatus *st_ = (x);                                                    \
        if (st_) {                                                               \
            fprintf(stderr, "%s: %s\n", #x, api->GetErrorMessage(st_));          \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

struct bare_arg {
    const OrtApi *api;
    OrtSession *sess;
    OrtValue *in;
    int n;
    int record;
};

/* The model's input name and every output name (any family's layout). */
static char bare_in[64], bare_out[4][64];
static size_t bare_nout;

static void bare_names(const OrtApi *api, OrtSession *s)
{
    OrtAllocator *al = NULL;
    char *nm = NULL;
    CHECK(api->GetAllocatorWithDefaultOptions(&al));
    CHECK(api->SessionGetInputName(s, 0, al, &nm));
    snprintf(bare_in, sizeof(bare_in), "%s", nm);
    CHECK(api->AllocatorFree(al, nm));
    CHECK(api->SessionGetOutputCount(s, &bare_nout));
    bare_nout = MIN(bare_nout, 4);
    for (size_t i = 0; i < bare_nout; i++) {
        CHECK(api->SessionGetOutputName(s, i, al, &nm));
        snprintf(bare_out[i], sizeof(bare_out[i]), "%s", nm);
        CHECK(api->AllocatorFree(al, nm));
    }
}

static void *bare_loop(void *p)
{
    struct bare_arg *a = p;
    const OrtApi *api = a->api;
    const char *in_names[] = {bare_in};
    const char *out_names[4] = {bare_out[0], bare_out[1], bare_out[2], bare_out[3]};
    for (int i = 0; i < a->n; i++) {
        OrtValue *out[4] = {NULL};
        double t0 = now_ms();
        CHECK(api->Run(a->sess, NULL, in_names, (const OrtValue *const *)&a->in, 1, out_names,
                       bare_nout, out));
        for (size_t k = 0; k < bare_nout; k++)
            api->ReleaseValue(out[k]);
        if (a->record && n_bare < LAT_N)
            lat_bare[n_bare++] = now_ms() - t0;
    }
    return NULL;
}

static OrtSession *bare_session(const OrtApi *api, OrtEnv *env, const char *path, int threads)
{
    OrtSessionOptions *so = NULL;
    OrtSession *s = NULL;
    CHECK(api->CreateSessionOptions(&so));
    CHECK(api->SetIntraOpNumThreads(so, threads));
    CHECK(api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL));
    /* the same settings as vbatch's sessions */
    CHECK(api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "0"));
    CHECK(api->CreateSession(env, path, so, &s));
    api->ReleaseSessionOptions(so);
    return s;
}

/* images/s of bare Run on 'workers' threads sharing one session */
static double bare_ips(const OrtApi *api, OrtSession *s, OrtValue *in, int workers, int n)
{
    struct bare_arg a[4];
    pthread_t th[4];
    for (int w = 0; w < workers; w++)
        a[w] = (struct bare_arg){api, s, in, n / workers, workers == 1};
    double t0 = now_ms();
    for (int w = 0; w < workers; w++)
        pthread_create(&th[w], NULL, bare_loop, &a[w]);
    for (int w = 0; w < workers; w++)
        pthread_join(th[w], NULL);
    return (n / workers) * workers / ((now_ms() - t0) / 1000.0);
}

static double whole_ips(struct model *m, const uint8_t *jpg, size_t len, int workers, int n, int pipe,
                        struct whole_arg *sum)
{
    struct whole_arg a[4];
    pthread_t th[4];
    memset(sum, 0, sizeof(*sum));
    for (int w = 0; w < workers; w++)
        a[w] = (struct whole_arg){.m = m, .jpg = jpg, .len = len, .n = n / workers,
                                  .record = workers == 1 && !pipe, .pipe = pipe};
    double t0 = now_ms();
    for (int w = 0; w < workers; w++)
        pthread_create(&th[w], NULL, whole_path, &a[w]);
    for (int w = 0; w < workers; w++)
        pthread_join(th[w], NULL);
    double el = now_ms() - t0;
    for (int w = 0; w < workers; w++) {
        sum->decode_ms += a[w].decode_ms;
        sum->run_ms += a[w].run_ms;
        sum->json_ms += a[w].json_ms;
        sum->dets += a[w].dets;
        sum->bytes += a[w].bytes;
        sum->n += a[w].n;
    }
    return sum->n / (el / 1000.0);
}

int main(int argc, char **argv)
{
    char def[1024];
    snprintf(def, sizeof(def), "%s/.cache/vbatch/bench/yolov8n-random",
             getenv("HOME") ? getenv("HOME") : ".");
    const char *dir = argc > 1 ? argv[1] : def;
    int n = argc > 2 ? atoi(argv[2]) : 108;
    char err[512] = "";
    n = MAX(n, 4) & ~1;
    log_set_level(LOG_WARN);

    size_t jlen = 0;
    uint8_t *jpg = make_jpeg(&jlen);

    struct model_registry *reg2 = NULL, *reg1 = NULL;
    struct model_registry_opts o2 = {.intra_op_threads = 2}, o1 = {.intra_op_threads = 1};
    model_registry_new(&o2, &reg2, err, sizeof(err));
    model_registry_new(&o1, &reg1, err, sizeof(err));
    if (model_registry_register_dir(reg2, "bench/1", dir, err, sizeof(err)) < 0 ||
        model_registry_register_dir(reg1, "bench/1", dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n(run /usr/bin/python3 scripts/make-bench-model.py first)\n", err);
        return 1;
    }
    struct model *m2 = NULL, *m1 = NULL;
    model_registry_get(reg2, NULL, "bench/1", &m2, err, sizeof(err));
    model_registry_get(reg1, NULL, "bench/1", &m1, err, sizeof(err));

    /* decode + pre-process per 1080p JPEG */
    int W, H;
    model_input_size(m2, &W, &H);
    float *tensor = xmalloc((size_t)3 * W * H * sizeof(float));
    struct model_letterbox lb;
    double dec = 0, pre = 0, cdec = 0, cpre = 0;
    for (int i = 0; i < 20; i++) {
        struct vis_image *img = NULL;
        double c0 = cpu_ms(), t0 = now_ms();
        if (vis_decode(jpg, jlen, &img) < 0)
            return 1;
        double c1 = cpu_ms(), t1 = now_ms();
        model_preprocess(m2, img, tensor, &lb);
        double c2 = cpu_ms(), t2 = now_ms();
        if (i >= 2) {
            dec += t1 - t0;
            pre += t2 - t1;
            cdec += c1 - c0;
            cpre += c2 - c1;
        }
        vis_image_free(img);
    }
    printf("bench_model jpeg_1080p_bytes %zu B\n", jlen);
    printf("bench_model decode_1080p %.2f ms\n", dec / 18);
    printf("bench_model preprocess_1080p_to_640 %.2f ms\n", pre / 18);
    printf("bench_model decode_plus_preprocess_1080p %.2f ms\n", (dec + pre) / 18);
    printf("bench_model decode_1080p_cpu %.2f ms (thread CPU time)\n", cdec / 18);
    printf("bench_model preprocess_1080p_to_640_cpu %.2f ms (thread CPU time)\n", cpre / 18);

    /* the decoder alone (candidates, NMS or top-k, mapping back) on the raw
     * outputs of the 1080p picture, default parameters */
    {
        struct vis_image *img = NULL;
        struct model_tensor outs[4];
        size_t nout = 0;
        struct model_params p;
        model_params_init(&p);
        if (vis_decode(jpg, jlen, &img) < 0 || model_run_raw(m1, img, outs, 4, &nout, err, sizeof(err)) < 0)
            return 1;
        model_preprocess(m1, img, tensor, &lb);
        double best = 1e9;
        size_t dets = 0;
        for (int rep = 0; rep < 5; rep++) {
            double c0 = cpu_ms();
            for (int i = 0; i < 40; i++) {
                struct model_result r;
                if (model_decode_raw(m1, outs, nout, &lb, img->w, img->h, &p, &r, err, sizeof(err)) < 0) {
                    fprintf(stderr, "%s\n", err);
                    return 1;
                }
                dets = r.n_dets;
                model_result_release(&r);
            }
            best = MIN(best, (cpu_ms() - c0) / 40);
        }
        printf("bench_model decode_only_cpu %.3f ms (%zu detections; best of 5 x 40, thread CPU time)\n",
               best, dets);
        for (size_t k = 0; k < nout; k++)
            free(outs[k].data);
        vis_image_free(img);
    }

    /* bare ORT on the same tensor */
    void *envp = NULL;
    const OrtApi *api = model_registry_ort_api(reg2, &envp, err, sizeof(err));
    if (!api) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char *wpath = xasprintf("%s/weights.onnx", dir);
    OrtSession *bs2 = bare_session(api, envp, wpath, 2), *bs1 = bare_session(api, envp, wpath, 1);
    bare_names(api, bs2);
    {
        json_t *d = model_describe(m2);
        printf("bench_model model %s, architecture %s, %zu outputs\n", dir,
               json_string_value(json_object_get(d, "architecture")), bare_nout);
        json_decref(d);
    }
    OrtMemoryInfo *mi = NULL;
    OrtValue *in = NULL;
    int64_t shape[4] = {1, 3, H, W};
    CHECK(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mi));
    CHECK(api->CreateTensorWithDataAsOrtValue(mi, tensor, (size_t)3 * W * H * 4, shape, 4,
                                              ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in));
    bare_ips(api, bs2, in, 1, 3); /* warm-up */
    bare_ips(api, bs1, in, 2, 4);
    struct whole_arg s;
    whole_ips(m2, jpg, jlen, 1, 2, 0, &s);
    whole_ips(m2, jpg, jlen, 1, 2, 1, &s);
    whole_ips(m1, jpg, jlen, 2, 2, 0, &s);
    n_bare = n_whole = 0;

    /* ROUNDS rounds, each running every set-up on m images one after the
     * other, so that the machine's load (a shared VM here) hits them
     * alike; ratios are taken per round and the median is reported with
     * the range. */
    enum { B2, SEQ, PIPE, B1, W2, NSET };
    static const char *const set_name[NSET] = {"bare_ort_2threads", "vbatch_path_2threads",
                                               "vbatch_pipelined_2threads", "bare_ort_2workers_x1thread",
                                               "vbatch_2workers_x1thread"};
    double ips[ROUNDS][NSET], cpu[NSET] = {0};
    int m = MAX(4, n / ROUNDS) & ~1;
    struct whole_arg sv = {0};
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < NSET; k++) {
            double c0 = proc_cpu_ms();
            switch (k) {
            case B2: ips[r][k] = bare_ips(api, bs2, in, 1, m); break;
            case SEQ:
                ips[r][k] = whole_ips(m2, jpg, jlen, 1, m, 0, &s);
                sv.decode_ms += s.decode_ms;
                sv.run_ms += s.run_ms;
                sv.json_ms += s.json_ms;
                sv.n += s.n;
                sv.dets += s.dets;
                sv.bytes += s.bytes;
                break;
            case PIPE: ips[r][k] = whole_ips(m2, jpg, jlen, 1, m, 1, &s); break;
            case B1: ips[r][k] = bare_ips(api, bs1, in, 2, m); break;
            default: ips[r][k] = whole_ips(m1, jpg, jlen, 2, m, 1, &s); break;
            }
            cpu[k] += proc_cpu_ms() - c0;
        }
    }
    double mean[NSET];
    for (int k = 0; k < NSET; k++) {
        mean[k] = 0;
        for (int r = 0; r < ROUNDS; r++)
            mean[k] += ips[r][k] / ROUNDS;
        cpu[k] /= (double)m * ROUNDS; /* CPU ms per image (ORT does not spin: work done) */
        printf("bench_model %s %.2f images/s (mean of %d rounds of %d images), %.2f ms CPU per image\n",
               set_name[k], mean[k], ROUNDS, m, cpu[k]);
    }
    struct {
        const char *name, *note;
        int num, den;
    } ratios[] = {
        {"vbatch_pipelined_over_bare_ratio", "the jobs worker's path, 1 worker x 2 intra-op threads; target >= 0.9",
         PIPE, B2},
        {"vbatch_path_over_bare_ratio", "everything on one thread, 1 x 2", SEQ, B2},
        {"vbatch_2workers_over_bare_2workers_ratio", "2 workers x 1 thread on both sides", W2, B1},
        {"vbatch_2workers_over_bare_2threads_ratio", "vbatch's default pool on 2 cores vs bare ORT on 2 threads",
         W2, B2},
    };
    for (size_t q = 0; q < ARRAY_LEN(ratios); q++) {
        double rr[ROUNDS];
        for (int r = 0; r < ROUNDS; r++)
            rr[r] = ips[r][ratios[q].num] / ips[r][ratios[q].den];
        qsort(rr, ROUNDS, sizeof(double), cmp_d);
        printf("bench_model %s %.3f (median of %d rounds; range %.3f-%.3f; %s)\n", ratios[q].name,
               rr[ROUNDS / 2], ROUNDS, rr[0], rr[ROUNDS - 1], ratios[q].note);
    }
    printf("bench_model vbatch_path_over_bare_ratio_cpu %.3f (CPU time per image, one thread)\n",
           cpu[B2] / cpu[SEQ]);
    printf("bench_model vbatch_pipelined_over_bare_ratio_cpu %.3f (CPU time per image, pipelined)\n",
           cpu[B2] / cpu[PIPE]);
    double bare_ms = 1000.0 / mean[B2];
    double dms = sv.decode_ms / sv.n, rms = sv.run_ms / sv.n, jms = sv.json_ms / sv.n;
    printf("bench_model path_decode %.2f ms\n", dms);
    printf("bench_model path_model_run %.2f ms (pre-process + inference + decode/NMS)\n", rms);
    printf("bench_model path_model_run_minus_bare_inference %.2f ms\n", rms - bare_ms);
    printf("bench_model path_json %.3f ms (%zu detections, %zu bytes per image)\n", jms, sv.dets / (size_t)sv.n,
           sv.bytes / (size_t)sv.n);

    qsort(lat_bare, (size_t)n_bare, sizeof(double), cmp_d);
    qsort(lat_whole, (size_t)n_whole, sizeof(double), cmp_d);
    if (n_bare && n_whole) {
        printf("bench_model bare_ort_latency_min %.2f ms median %.2f ms\n", lat_bare[0],
               lat_bare[n_bare / 2]);
        printf("bench_model vbatch_path_latency_min %.2f ms median %.2f ms\n", lat_whole[0],
               lat_whole[n_whole / 2]);
    }

    api->ReleaseValue(in);
    api->ReleaseMemoryInfo(mi);
    api->ReleaseSession(bs2);
    api->ReleaseSession(bs1);
    free(wpath);
    free(tensor);
    free(jpg);
    model_unref(m1);
    model_unref(m2);
    model_registry_free(reg1);
    model_registry_free(reg2);
    return 0;
}
