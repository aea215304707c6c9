/*
 * ort.c — ONNX Runtime loaded at run time.
 *
 * The library is dlopen()ed on first use from the registry's path, and its
 * OrtApi, one OrtEnv and a CPU memory info are kept for the whole process
 * (ONNX Runtime wants a single environment per process).  Registries take
 * a reference; the last release closes the environment but keeps the
 * library mapped, since ORT's own threads and atexit handlers may still
 * point into it.  A process uses one library path: asking for another
 * while one is in use is an error.
 *
 * Sessions: one per model, created from the weights bytes with graph
 * optimisation on and the configured intra-op thread count.  OrtApi::Run
 * is thread-safe, so all worker threads share the session.
 */
#include "model/model_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

#if defined(__SANITIZE_ADDRESS__)
/* ONNX Runtime keeps a few small allocations of its own for the life of
 * the process (14 bytes from inside libonnxruntime.so, no vbatch frame on
 * the stack); LeakSanitizer would fail every sanitizer test that loads it.
 * Only allocations made by that library (a frame of it on the stack) are
 * suppressed; vbatch never hands it allocation callbacks. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libonnxruntime.so\n";
}
#endif

static pthread_mutex_t ort_lock = PTHREAD_MUTEX_INITIALIZER;
static struct model__ort ort_global;
static void *ort_dl_kept; /* a library once opened stays mapped */
static char ort_dl_kept_path[1024];

int model__ort_status(const OrtApi *api, OrtStatus *st, const char *what, char *err, size_t errlen)
{
    if (!st)
        return 0;
    snprintf(err, errlen, "%s: %s", what, api->GetErrorMessage(st));
    api->ReleaseStatus(st);
    return ERR_INTERNAL;
}

int model__ort_acquire(const char *path, struct model__ort **out, char *err, size_t errlen)
{
    int rc = 0;
    char def[1024];

    if (!path || !*path)
        path = getenv("VBATCH_ORT_LIB");
    if (!path || !*path) {
        snprintf(def, sizeof(def), "%s/lib/libonnxruntime.so", VBATCH_ORT_DIR);
        path = def;
    }
    pthread_mutex_lock(&ort_lock);
    struct model__ort *o = &ort_global;
    if (o->refs > 0) {
        if (strcmp(o->path, path) != 0) {
            snprintf(err, errlen, "onnx runtime '%s' is already loaded; cannot also load '%s'",
                     o->path, path);
            rc = ERR_INVALID;
            goto out;
        }
        o->refs++;
        *out = o;
        goto out;
    }
    if (ort_dl_kept && strcmp(ort_dl_kept_path, path) == 0) {
        o->dl = ort_dl_kept;
    } else {
        o->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!o->dl) {
            const char *e = dlerror();
            snprintf(err, errlen,
                     "cannot load onnx runtime from '%s' (%s); set VBATCH_ORT_LIB or "
                     "--ort-lib to the path of libonnxruntime.so",
                     path, e ? e : "unknown error");
            rc = ERR_UNSUPPORTED;
            goto out;
        }
        if (!ort_dl_kept) {
            ort_dl_kept = o->dl;
            snprintf(ort_dl_kept_path, sizeof(ort_dl_kept_path), "%s", path);
        }
    }
    typedef const OrtApiBase *(*get_base_fn)(void);
    get_base_fn get_base = NULL;
    *(void **)&get_base = dlsym(o->dl, "OrtGetApiBase");
    if (!get_base) {
        snprintf(err, errlen, "'%s' is not an onnx runtime library (no OrtGetApiBase)", path);
        rc = ERR_UNSUPPORTED;
        goto out;
    }
    const OrtApiBase *base = get_base();
    o->api = NULL;
    /* Newest first; the calls vbatch makes all exist since API 16. */
    for (uint32_t v = ORT_API_VERSION; v >= 16 && !o->api; v--)
        o->api = base->GetApi(v);
    if (!o->api) {
        snprintf(err, errlen, "onnx runtime '%s' (version %s) is too old: need API 16 or newer",
                 path, base->GetVersionString());
        rc = ERR_UNSUPPORTED;
        goto out;
    }
    OrtStatus *st = o->api->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "vbatch", &o->env);
    if (st) {
        rc = model__ort_status(o->api, st, "cannot create onnx runtime environment", err, errlen);
        goto out;
    }
    st = o->api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &o->cpu_mem);
    if (st) {
        rc = model__ort_status(o->api, st, "cannot create memory info", err, errlen);
        o->api->ReleaseEnv(o->env);
        o->env = NULL;
        goto out;
    }
    snprintf(o->path, sizeof(o->path), "%s", path);
    o->refs = 1;
    log_info("model", "onnx runtime %s loaded from %s", base->GetVersionString(), path);
    *out = o;
out:
    pthread_mutex_unlock(&ort_lock);
    return rc;
}

void model__ort_release(struct model__ort *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&ort_lock);
    if (--o->refs == 0) {
        o->api->ReleaseMemoryInfo(o->cpu_mem);
        o->api->ReleaseEnv(o->env);
        o->cpu_mem = NULL;
        o->env = NULL;
        o->path[0] = 0;
    }
    pthread_mutex_unlock(&ort_lock);
}

/* Whether the loaded library lists the named execution provider. */
static int provider_has(struct model__ort *o, const char *name, bool *has, char *err, size_t errlen)
{
    char **list = NULL;
    int n = 0;
    OrtStatus *st = o->api->GetAvailableProviders(&list, &n);
    if (st)
        return model__ort_status(o->api, st, "cannot list execution providers", err, errlen);
    *has = false;
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name))
            *has = true;
    (void)model__ok(o->api, o->api->ReleaseAvailableProviders(list, n));
    return 0;
}

int model__provider_check(struct model__ort *o, const char *machine_type, char *err, size_t errlen)
{
    bool cuda = false, trt = false;
    int rc;
    if (!machine_type || !strcmp(machine_type, "cpu"))
        return 0;
    if (strcmp(machine_type, "gpu") != 0) {
        snprintf(err, errlen, "unknown machine type '%s' (expected cpu or gpu)", machine_type);
        return ERR_INVALID;
    }
    if ((rc = provider_has(o, "CUDAExecutionProvider", &cuda, err, errlen)) < 0 ||
        (rc = provider_has(o, "TensorrtExecutionProvider", &trt, err, errlen)) < 0)
        return rc;
    if (!cuda && !trt) {
        snprintf(err, errlen,
                 "machine type gpu needs an onnx runtime with the CUDA or TensorRT execution "
                 "provider, and '%s' has neither (point VBATCH_ORT_LIB at a GPU build)",
                 o->path);
        return ERR_UNSUPPORTED;
    }
    return 0;
}

static int append_gpu(struct model__ort *o, OrtSessionOptions *so, char *err, size_t errlen)
{
    bool cuda = false, trt = false;
    int rc;
    OrtStatus *st = NULL;
    if ((rc = provider_has(o, "CUDAExecutionProvider", &cuda, err, errlen)) < 0 ||
        (rc = provider_has(o, "TensorrtExecutionProvider", &trt, err, errlen)) < 0)
        return rc;
    if (cuda) {
        OrtCUDAProviderOptionsV2 *co = NULL;
        st = o->api->CreateCUDAProviderOptions(&co);
        if (!st)
            st = o->api->SessionOptionsAppendExecutionProvider_CUDA_V2(so, co);
        if (co)
            o->api->ReleaseCUDAProviderOptions(co);
        return model__ort_status(o->api, st, "cannot enable the CUDA execution provider", err,
                                 errlen);
    }
    if (trt) {
        OrtTensorRTProviderOptionsV2 *to = NULL;
        st = o->api->CreateTensorRTProviderOptions(&to);
        if (!st)
            st = o->api->SessionOptionsAppendExecutionProvider_TensorRT_V2(so, to);
        if (to)
            o->api->ReleaseTensorRTProviderOptions(to);
        return model__ort_status(o->api, st, "cannot enable the TensorRT execution provider",
                                 err, errlen);
    }
    return model__provider_check(o, "gpu", err, errlen);
}

int model__session_open(struct model__ort *o, const void *data, size_t len, int threads,
                        bool spinning, const char *machine_type, OrtSession **out, char *err,
                        size_t errlen)
{
    const OrtApi *api = o->api;
    OrtSessionOptions *so = NULL;
    OrtStatus *st;
    int rc = 0;

    st = api->CreateSessionOptions(&so);
    if (!st && threads > 0)
        st = api->SetIntraOpNumThreads(so, threads);
    if (!st)
        st = api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL);
    if (!st)
        st = api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning",
                                        spinning ? "1" : "0");
    if (st) {
        rc = model__ort_status(api, st, "cannot set session options", err, errlen);
        goto out;
    }
    if (machine_type && !strcmp(machine_type, "gpu")) {
        if ((rc = append_gpu(o, so, err, errlen)) < 0)
            goto out;
    } else if ((rc = model__provider_check(o, machine_type, err, errlen)) < 0) {
        goto out;
    }
    st = api->CreateSessionFromArray(o->env, data, len, so, out);
    if (st) {
        snprintf(err, errlen, "cannot load the onnx model: %s", api->GetErrorMessage(st));
        api->ReleaseStatus(st);
        rc = ERR_INVALID;
    }
out:
    if (so)
        api->ReleaseSessionOptions(so);
    return rc;
}

char *model__meta_lookup(struct model__ort *o, OrtSession *sess, const char *key)
{
    const OrtApi *api = o->api;
    OrtModelMetadata *md = NULL;
    OrtAllocator *alloc = NULL;
    char *val = NULL, *res = NULL;

    if (!model__ok(api, api->GetAllocatorWithDefaultOptions(&alloc)))
        return NULL;
    OrtStatus *st = api->SessionGetModelMetadata(sess, &md);
    if (st) {
        api->ReleaseStatus(st);
        return NULL;
    }
    st = api->ModelMetadataLookupCustomMetadataMap(md, alloc, key, &val);
    if (st)
        api->ReleaseStatus(st);
    else if (val) {
        res = xstrdup(val);
        (void)model__ok(api, api->AllocatorFree(alloc, val));
    }
    api->ReleaseModelMetadata(md);
    return res;
}

int model__session_run(struct model *m, float *tensor, int batch, OrtValue **outs, char *err,
                       size_t errlen)
{
    const OrtApi *api = m->ort->api;
    OrtValue *in = NULL;
    int64_t shape[4] = {batch, m->in_c, m->in_h, m->in_w};
    size_t bytes = (size_t)batch * (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w * 4;
    int rc = 0;

    for (size_t i = 0; i < m->n_out; i++)
        outs[i] = NULL;
    OrtStatus *st = api->CreateTensorWithDataAsOrtValue(m->ort->cpu_mem, tensor, bytes, shape, 4,
                                                        ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in);
    if (st)
        return model__ort_status(api, st, "cannot create input tensor", err, errlen);
    const char *in_names[1] = {m->in_name};
    st = api->Run(m->sess, NULL, in_names, (const OrtValue *const *)&in, 1,
                  (const char *const *)m->out_names, m->n_out, outs);
    if (st) {
        char what[300];
        snprintf(what, sizeof(what), "model '%s' failed to run", m->id);
        rc = model__ort_status(api, st, what, err, errlen);
        for (size_t i = 0; i < m->n_out; i++) {
            if (outs[i])
                api->ReleaseValue(outs[i]);
            outs[i] = NULL;
        }
    }
    api->ReleaseValue(in);
    return rc;
}

/* ---- helpers of the multi-session families (ocr.c, clip.c, sam.c) ------------------------ */

int model__input_info(const OrtApi *api, OrtSession *s, size_t idx, ONNXTensorElementDataType *ty,
                      int64_t dims[8], size_t *rank)
{
    OrtTypeInfo *ti = NULL;
    const OrtTensorTypeAndShapeInfo *tsi = NULL;
    memset(dims, 0, 8 * sizeof *dims);
    *ty = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    *rank = 0;
    bool ok = model__ok(api, api->SessionGetInputTypeInfo(s, idx, &ti)) &&
              model__ok(api, api->CastTypeInfoToTensorInfo(ti, &tsi)) && tsi &&
              model__ok(api, api->GetTensorElementType(tsi, ty)) &&
              model__ok(api, api->GetDimensionsCount(tsi, rank)) &&
              (*rank > 8 || model__ok(api, api->GetDimensions(tsi, dims, *rank)));
    if (ti)
        api->ReleaseTypeInfo(ti);
    return ok ? 0 : ERR_INVALID;
}

int model__io1(const OrtApi *api, OrtSession *s, const char *what, const char *expect, char **in_name,
               char **out_name, ONNXTensorElementDataType *ty, int64_t dims[8], size_t *rank, char *err,
               size_t errlen)
{
    size_t nin = 0, nout = 0;
    OrtAllocator *alloc = NULL;
    char *nm = NULL;
    if (!model__ok(api, api->SessionGetInputCount(s, &nin)) ||
        !model__ok(api, api->SessionGetOutputCount(s, &nout)) ||
        !model__ok(api, api->GetAllocatorWithDefaultOptions(&alloc))) {
        snprintf(err, errlen, "%s: cannot read its inputs and outputs", what);
        return ERR_INTERNAL;
    }
    if (nin != 1 || nout != 1) {
        snprintf(err, errlen, "%s has %zu inputs and %zu outputs; %s", what, nin, nout, expect);
        return ERR_INVALID;
    }
    if (model__input_info(api, s, 0, ty, dims, rank) < 0) {
        snprintf(err, errlen, "%s: its input is not a tensor", what);
        return ERR_INVALID;
    }
    if (!model__ok(api, api->SessionGetInputName(s, 0, alloc, &nm)))
        return ERR_INTERNAL;
    *in_name = xstrdup(nm);
    alloc->Free(alloc, nm);
    nm = NULL;
    if (!model__ok(api, api->SessionGetOutputName(s, 0, alloc, &nm))) {
        free(*in_name);
        *in_name = NULL;
        return ERR_INTERNAL;
    }
    *out_name = xstrdup(nm);
    alloc->Free(alloc, nm);
    return 0;
}

int model__value_view(const OrtApi *api, const OrtValue *v, struct model__view *w)
{
    OrtTensorTypeAndShapeInfo *tsi = NULL;
    memset(w, 0, sizeof *w);
    bool ok = model__ok(api, api->GetTensorTypeAndShape(v, &tsi)) &&
              model__ok(api, api->GetTensorElementType(tsi, &w->ty)) &&
              model__ok(api, api->GetDimensionsCount(tsi, &w->rank)) && w->rank <= 8 &&
              model__ok(api, api->GetDimensions(tsi, w->dims, w->rank)) &&
              model__ok(api, api->GetTensorMutableData((OrtValue *)v, &w->data));
    if (tsi)
        api->ReleaseTensorTypeAndShapeInfo(tsi);
    if (!ok)
        return ERR_INVALID;
    w->count = 1;
    for (size_t i = 0; i < w->rank; i++)
        w->count *= w->dims[i] > 0 ? (size_t)w->dims[i] : 0;
    return 0;
}

int model__run1(struct model *m, OrtSession *s, const char *in_name, const char *out_name, void *data,
                size_t bytes, const int64_t *shape, size_t rank, ONNXTensorElementDataType ty,
                const char *fail_what, OrtValue **out, char *err, size_t errlen)
{
    const OrtApi *api = m->ort->api;
    OrtValue *in = NULL;
    *out = NULL;
    OrtStatus *st = api->CreateTensorWithDataAsOrtValue(m->ort->cpu_mem, data, bytes, shape, rank, ty, &in);
    if (st)
        return model__ort_status(api, st, "cannot create input tensor", err, errlen);
    st = api->Run(s, NULL, &in_name, (const OrtValue *const *)&in, 1, &out_name, 1, out);
    api->ReleaseValue(in);
    if (st) {
        *out = NULL;
        return model__ort_status(api, st, fail_what, err, errlen);
    }
    return 0;
}

bool model__all_finite(const float *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(d[i]))
            return false;
    return true;
}

const char *model__part_name(const json_t *meta, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(meta, key));
    if (!s || !*s || strchr(s, '/') || !strcmp(s, "..") || !strcmp(s, "."))
        return def;
    return s;
}

int model__read_part(const char *dir, const struct model__files *fs, const char *name, size_t max, char **buf,
                     size_t *len, char *err, size_t errlen)
{
    if (fs) {
        const struct model__file *f = model__files_get(fs, name);
        if (!f) {
            snprintf(err, errlen, "the model has no file '%s'", name);
            return ERR_INVALID;
        }
        if (f->len > max) {
            snprintf(err, errlen, "file '%s' is too large (%zu bytes, at most %zu)", name, f->len, max);
            return ERR_LIMIT;
        }
        *buf = xmalloc(f->len + 1);
        memcpy(*buf, f->data, f->len);
        (*buf)[f->len] = 0;
        *len = f->len;
        return 0;
    }
    char *p = xasprintf("%s/%s", dir, name);
    int rc = file_read_all(p, max, buf, len);
    if (rc < 0)
        snprintf(err, errlen, "cannot read '%s': %s", p, rc == ERR_LIMIT ? "file too large" : err_str(rc));
    free(p);
    return rc;
}

int model__part_session(struct model *m, const char *dir, const struct model__files *fs, const char *name,
                        const char *label, uint64_t max_bytes, int threads, bool spinning,
                        const char *machine_type, OrtSession **out, char *err, size_t errlen)
{
    char *buf = NULL, e3[600];
    size_t len = 0;
    int rc = model__read_part(dir, fs, name, (size_t)MIN(max_bytes, (uint64_t)SIZE_MAX), &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = model__session_open(m->ort, buf, len, threads, spinning, machine_type, out, e3, sizeof e3);
    free(buf);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", label, e3);
    return rc;
}
