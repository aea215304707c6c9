/*
 * models.c — the model provider the workers hand to the workflow engine:
 * a model registry (model/model.h) loaded from the data folder's models/
 * and an optional extra folder, the few lines that adapt
 * model_registry_infer to wf_model_infer_fn, and the per-machine-type
 * choice (struct jobs_models):
 *
 *   - "cpu" jobs use the registry opened by jobs_models_open (the one the
 *     /models API registers into);
 *   - "gpu" jobs use a second registry opened with machine_type "gpu" over
 *     the same folders.  It is created lazily: a POST/restart check only
 *     loads ONNX Runtime and asks it for the CUDA/TensorRT provider
 *     (model_registry_runtime_check, no model is loaded); the models are
 *     loaded into it by the first worker that runs a gpu task.  A model id
 *     it does not know (registered through the API after that load) makes
 *     it re-read the folders once before failing.
 *
 * The GPU path cannot run on the development machine (its ONNX Runtime is
 * CPU-only): there the check refuses gpu jobs with ONNX Runtime's message.
 */
#include "jobs/jobs_int.h"

#include "model/model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Register the models of data_dir/models (when it exists) and extra_dir. */
static int models_load(struct model_registry *reg, const char *dir, const char *extra_dir, char *err,
                       size_t errlen)
{
    struct stat sb;
    int rc, bad = 0;

    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        rc = model_registry_load_dir(reg, dir, &bad, err, errlen);
        if (rc < 0)
            return rc;
        log_info("jobs", "models loaded dir=%s count=%d bad=%d", dir, rc, bad);
    }
    if (extra_dir) {
        rc = model_registry_load_dir(reg, extra_dir, &bad, err, errlen);
        if (rc < 0)
            return rc;
        log_info("jobs", "models loaded dir=%s count=%d bad=%d", extra_dir, rc, bad);
    }
    return 0;
}

int jobs_models_open(const char *data_dir, const char *extra_dir, int intra_threads,
                     struct model_registry **out, char *err, size_t errlen)
{
    struct model_registry_opts o = {0};
    struct model_registry *reg = NULL;
    char *dir = xasprintf("%s/models", data_dir);
    int rc;

    o.models_dir = dir;
    o.intra_op_threads = intra_threads;
    rc = model_registry_new(&o, &reg, err, errlen);
    if (rc < 0)
        goto out;
    log_info("jobs", "model runtime intra_op_threads=%d", intra_threads);
    if ((rc = models_load(reg, dir, extra_dir, err, errlen)) < 0)
        goto out;
    rc = 0;
    *out = reg;
    reg = NULL;
out:
    model_registry_free(reg);
    free(dir);
    return rc;
}

/* When inference failed because ONNX Runtime itself is unusable, say so
 * instead of the registry's "model not found" (its models were skipped at
 * load time for the same reason). */
static void runtime_explain(struct model_registry *reg, char *err, size_t errlen)
{
    char e2[400];
    if (model_registry_runtime_check(reg, e2, sizeof e2) < 0)
        snprintf(err, errlen, "model steps need ONNX Runtime, which cannot be used: %s", e2);
}

int jobs_model_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                     size_t n, json_t **out, char *err, size_t errlen)
{
    int rc = model_registry_infer(ud, req->model_id, req->task, req->params, images, n, out, err, errlen);
    if (rc < 0)
        runtime_explain(ud, err, errlen);
    return rc;
}

int jobs_model_prepare(void *ud, const struct wf_model_request *req, struct vis_image *img, char *err,
                       size_t errlen)
{
    return model_registry_prepare(ud, req->model_id, img, err, errlen);
}

/* ---- machine types ------------------------------------------------------------ */

struct jobs_models {
    struct model_registry *cpu; /* borrowed */
    char *dir;                  /* data_dir/models */
    char *extra_dir;            /* or NULL */
    int intra_threads;
    pthread_mutex_t lock;       /* guards gpu, gpu_loaded */
    struct model_registry *gpu; /* owned; created on the first gpu check */
    bool gpu_loaded;            /* models registered into gpu */
    struct timespec dir_mtime;  /* of dir at the last gpu load */
};

static struct timespec dir_mtime(const char *dir)
{
    struct stat sb;
    struct timespec z = {0, 0};
    return stat(dir, &sb) == 0 ? sb.st_mtim : z;
}

int jobs_models_new(struct model_registry *cpu, const char *data_dir, const char *extra_dir,
                    int intra_threads, struct jobs_models **out)
{
    struct jobs_models *m = xcalloc(1, sizeof *m);
    m->cpu = cpu;
    m->dir = xasprintf("%s/models", data_dir);
    m->extra_dir = extra_dir ? xstrdup(extra_dir) : NULL;
    m->intra_threads = intra_threads;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
}

void jobs_models_free(struct jobs_models *m)
{
    if (!m)
        return;
    model_registry_free(m->gpu);
    pthread_mutex_destroy(&m->lock);
    free(m->dir);
    free(m->extra_dir);
    free(m);
}

/* Inside m->lock: create the gpu registry (no model loaded) and check that
 * ONNX Runtime has a GPU execution provider. */
static int gpu_registry_locked(struct jobs_models *m, char *err, size_t errlen)
{
    char e2[400];
    int rc;
    if (!m->gpu) {
        struct model_registry_opts o = {0};
        o.models_dir = m->dir;
        o.intra_op_threads = m->intra_threads;
        o.machine_type = "gpu";
        if ((rc = model_registry_new(&o, &m->gpu, e2, sizeof e2)) < 0) {
            snprintf(err, errlen, "machineType gpu: %s", e2);
            return rc;
        }
    }
    if ((rc = model_registry_runtime_check(m->gpu, e2, sizeof e2)) < 0) {
        snprintf(err, errlen, "machineType gpu is not available on this server: %s", e2);
        return ERR_UNSUPPORTED;
    }
    return 0;
}

/* wf_model_infer_fn for gpu jobs (ud: struct jobs_models). */
static int gpu_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                     size_t n, json_t **out, char *err, size_t errlen)
{
    struct jobs_models *m = ud;
    struct model *mod = NULL;
    char e2[400];
    int rc;

    /* A model registered through the API after the gpu registry was
     * loaded (the models folder changed since): read the folders again. */
    if (model_registry_get(m->gpu, req->model_id, &mod, e2, sizeof e2) == ERR_NOTFOUND) {
        pthread_mutex_lock(&m->lock);
        struct timespec now = dir_mtime(m->dir);
        if (now.tv_sec != m->dir_mtime.tv_sec || now.tv_nsec != m->dir_mtime.tv_nsec) {
            m->dir_mtime = now;
            if (models_load(m->gpu, m->dir, m->extra_dir, e2, sizeof e2) < 0)
                log_warn("jobs", "gpu models reload failed: %s", e2);
        }
        pthread_mutex_unlock(&m->lock);
    }
    model_unref(mod);
    rc = model_registry_infer(m->gpu, req->model_id, req->task, req->params, images, n, out, err, errlen);
    if (rc < 0)
        runtime_explain(m->gpu, err, errlen);
    return rc;
}

int jobs_models_select(void *ud, const char *machine_type, bool needs_models, wf_model_infer_fn *fn,
                       void **fn_ud, char *err, size_t errlen)
{
    struct jobs_models *m = ud;
    char e2[400];
    int rc;

    if (!machine_type || !strcmp(machine_type, "cpu")) {
        if (needs_models && model_registry_runtime_check(m->cpu, e2, sizeof e2) < 0) {
            snprintf(err, errlen, "the workflow has model steps but ONNX Runtime cannot be used: %s", e2);
            return ERR_UNSUPPORTED;
        }
        if (fn) {
            *fn = jobs_model_infer;
            *fn_ud = m->cpu;
        }
        return 0;
    }
    if (strcmp(machine_type, "gpu") != 0) {
        snprintf(err, errlen, "unknown machine type '%.32s' (expected cpu or gpu)", machine_type);
        return ERR_INVALID;
    }
    pthread_mutex_lock(&m->lock);
    rc = gpu_registry_locked(m, err, errlen);
    if (rc == 0 && fn && !m->gpu_loaded) {
        m->dir_mtime = dir_mtime(m->dir);
        if ((rc = models_load(m->gpu, m->dir, m->extra_dir, e2, sizeof e2)) < 0)
            snprintf(err, errlen, "machineType gpu: cannot load the models: %s", e2);
        else
            m->gpu_loaded = true;
    }
    pthread_mutex_unlock(&m->lock);
    if (rc == 0 && fn) {
        *fn = gpu_infer;
        *fn_ud = m;
    }
    return rc;
}
