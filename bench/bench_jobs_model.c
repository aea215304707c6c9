/*
 * bench_jobs_model — the model-only figure for bench/jobs_bench.py: the
 * same images a batch job processes, decoded once up front, then
 * model_registry_infer alone (the exact call the job workers make through
 * the workflow engine) on T threads sharing the registry, one image per
 * call, N calls in all.  The registry is opened like `vbatch serve` opens
 * it (jobs_models_open, intra-op threads = CPUs / T).
 *
 *   bench_jobs_model MODELS_DIR MODEL_ID IMAGES_DIR N T
 *
 * Prints "bench_jobs_model model_only_images_per_s <v> img/s threads=<T>"
 * and the decode cost per image for reference.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "jobs/jobs.h"
#include "model/model.h"
#include "vision/vision.h"

#define MAX_IMAGES 256

static struct model_registry *reg;
static const char *bench_model_id;
static struct vis_image *imgs[MAX_IMAGES];
static int nimgs;
static int per_thread;

static void *run(void *arg)
{
    int off = (int)(intptr_t)arg;
    char err[256];
    for (int i = 0; i < per_thread; i++) {
        const struct vis_image *im[1] = {imgs[(off + i) % nimgs]};
        json_t *out[1] = {NULL};
        if (model_registry_infer(reg, NULL, bench_model_id, "object-detection", NULL, im, 1, out, err, sizeof err) < 0) {
            fprintf(stderr, "infer: %s\n", err);
            exit(1);
        }
        json_decref(out[0]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    char err[512];
    if (argc < 6) {
        fprintf(stderr, "usage: bench_jobs_model MODELS_DIR MODEL_ID IMAGES_DIR N THREADS\n");
        return 2;
    }
    bench_model_id = argv[2];
    int n = atoi(argv[4]), threads = atoi(argv[5]);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1 || threads < 1 || threads > 64)
        return 2;
    char tmpl[] = "/tmp/vbatch-bench-XXXXXX";
    if (!mkdtemp(tmpl))
        return 1;
    if (jobs_models_open(tmpl, argv[1], (int)MAX(1, ncpu / threads), &reg, err, sizeof err) < 0) {
        fprintf(stderr, "models: %s\n", err);
        return 1;
    }
    DIR *d = opendir(argv[3]);
    struct dirent *e;
    double dec_ms = 0;
    while (d && (e = readdir(d)) && nimgs < MAX_IMAGES) {
        if (e->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", argv[3], e->d_name);
        char *data = NULL;
        size_t len = 0;
        if (file_read_all(p, 64u << 20, &data, &len) == 0) {
            int64_t t0 = time_mono_ns();
            if (vis_decode(data, len, &imgs[nimgs]) == 0)
                nimgs++;
            dec_ms += (double)(time_mono_ns() - t0) / 1e6;
        }
        free(data);
        free(p);
    }
    if (d)
        closedir(d);
    if (nimgs == 0) {
        fprintf(stderr, "no images in %s\n", argv[3]);
        return 1;
    }
    /* warm-up: session creation and first run outside the timing */
    per_thread = 2;
    run(0);
    per_thread = (n + threads - 1) / threads;
    pthread_t th[64];
    int64_t t0 = time_mono_ns();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, run, (void *)(intptr_t)(i * 7));
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double s = (double)(time_mono_ns() - t0) / 1e9;
    printf("bench_jobs_model model_only_images_per_s %.1f img/s threads=%d images=%d\n",
           per_thread * threads / s, threads, per_thread * threads);
    printf("bench_jobs_model decode_ms_per_image %.2f ms\n", dec_ms / nimgs);
    for (int i = 0; i < nimgs; i++)
        vis_image_free(imgs[i]);
    model_registry_free(reg);
    char *cmd = xasprintf("rm -rf '%s'", tmpl);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpl);
    free(cmd);
    return 0;
}
