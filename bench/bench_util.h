/*
 * bench_util.h — what the model benchmarks (bench_model_clip, _ocr, _sam)
 * share: a registry with one model folder, bare ONNX Runtime sessions set
 * up as vbatch's (2 intra-op threads, full graph optimisation, no
 * spin-waiting) for the baseline, one-input runs, the clock.  Any failure
 * prints "<BENCH_PROG>: <why>" and exits 1.
 *
 * Define BENCH_PROG (the program's name, a string) before including.
 */
#ifndef VBATCH_BENCH_UTIL_H
#define VBATCH_BENCH_UTIL_H

#include <onnxruntime_c_api.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "model/model.h"

#ifndef BENCH_PROG
#error "define BENCH_PROG before including bench_util.h"
#endif

/* x: an OrtStatus * of api's; a failure ends the program. */
#define BENCH_CHK(api, x)                                                                 \
    do {                                                                                  \
        OrtStatus *st_ = (x);                                                             \
        if (st_) {                                                                        \
            fprintf(stderr, "%s: %s\n", BENCH_PROG, (api)->GetErrorMessage(st_));         \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

static inline double bench_now_s(void) { return (double)time_mono_ns() / 1e9; }

/* A registry (2 intra-op threads) with the folder dir registered as id;
 * *m referenced (model_unref, then model_registry_free). */
static inline struct model_registry *bench_model_open(const char *dir, const char *id, struct model **m)
{
    struct model_registry_opts o = {0};
    struct model_registry *reg = NULL;
    char err[1024];
    o.intra_op_threads = 2;
    if (model_registry_new(&o, &reg, err, sizeof err) < 0 ||
        model_registry_register_dir(reg, id, dir, err, sizeof err) < 0 ||
        model_registry_get(reg, NULL, id, m, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", BENCH_PROG, err);
        exit(1);
    }
    return reg;
}

/* The registry's ONNX Runtime, its environment and a CPU memory info (the
 * caller releases it). */
static inline const OrtApi *bench_ort(struct model_registry *reg, OrtEnv **env, OrtMemoryInfo **mem)
{
    void *envp = NULL;
    char err[1024];
    const OrtApi *api = model_registry_ort_api(reg, &envp, err, sizeof err);
    if (!api) {
        fprintf(stderr, "%s: %s\n", BENCH_PROG, err);
        exit(1);
    }
    *env = envp;
    *mem = NULL;
    BENCH_CHK(api, api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, mem));
    return api;
}

/* A bare session of the file at path, set up as vbatch's. */
static inline OrtSession *bench_session(const OrtApi *api, OrtEnv *env, const char *path)
{
    OrtSessionOptions *so = NULL;
    OrtSession *s = NULL;
    BENCH_CHK(api, api->CreateSessionOptions(&so));
    BENCH_CHK(api, api->SetIntraOpNumThreads(so, 2));
    BENCH_CHK(api, api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL));
    BENCH_CHK(api, api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "0"));
    if (api->CreateSession(env, path, so, &s)) {
        fprintf(stderr, "%s: cannot open %s\n", BENCH_PROG, path);
        exit(1);
    }
    api->ReleaseSessionOptions(so);
    return s;
}

/* The names of s's first input and output (free both with bench_name_free). */
static inline void bench_io_names(const OrtApi *api, OrtSession *s, char **in, char **out)
{
    OrtAllocator *alloc = NULL;
    BENCH_CHK(api, api->GetAllocatorWithDefaultOptions(&alloc));
    BENCH_CHK(api, api->SessionGetInputName(s, 0, alloc, in));
    BENCH_CHK(api, api->SessionGetOutputName(s, 0, alloc, out));
}

static inline void bench_name_free(const OrtApi *api, char *name)
{
    OrtAllocator *alloc = NULL;
    BENCH_CHK(api, api->GetAllocatorWithDefaultOptions(&alloc));
    alloc->Free(alloc, name);
}

/* One run of s on one input tensor for its output out; the output is
 * dropped (only inference is timed). */
static inline void bench_run1(const OrtApi *api, OrtMemoryInfo *mem, OrtSession *s, const char *in,
                              const char *out, void *t, size_t bytes, const int64_t *shape, size_t rank,
                              ONNXTensorElementDataType ty)
{
    OrtValue *iv = NULL, *ov = NULL;
    BENCH_CHK(api, api->CreateTensorWithDataAsOrtValue(mem, t, bytes, shape, rank, ty, &iv));
    if (api->Run(s, NULL, &in, (const OrtValue *const *)&iv, 1, &out, 1, &ov)) {
        fprintf(stderr, "%s: bare run failed\n", BENCH_PROG);
        exit(1);
    }
    api->ReleaseValue(ov);
    api->ReleaseValue(iv);
}

#endif
