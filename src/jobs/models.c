/*
 * models.c — the model provider the workers hand to the workflow engine:
 * a model registry (model/model.h) loaded from the data folder's legacy
 * models/ folder, an optional extra folder and the stored models (blob
 * store + the core `models` table, below), the few lines that adapt
 * model_registry_infer to wf_model_infer_fn, and the per-machine-type
 * choice (struct jobs_models):
 *
 *   - "cpu" jobs use the registry opened by jobs_models_open (the one the
 *     /models API registers into); with a store set, an unknown model id
 *     makes it re-read the models table once before failing, and running
 *     tasks re-read it every few seconds (other processes' changes);
 *   - "gpu" jobs use a second registry opened with machine_type "gpu" over
 *     the same folders.  It is created lazily: a POST/restart check only
 *     loads ONNX Runtime and asks it for the CUDA/TensorRT provider
 *     (model_registry_runtime_check, no model is loaded); the models are
 *     loaded into it by the first worker that runs a gpu task.  A model id
 *     it does not know (registered through the API after that load) makes
 *     it re-read the folders and the models table once before failing.
 *
 * The GPU path cannot run on the development machine (its ONNX Runtime is
 * CPU-only): there the check refuses gpu jobs with ONNX Runtime's message.
 *
 * Workspaces: a job's model ids are looked up as the job's workspace sees
 * them (model/model.h, "Scopes": its own models first, then the
 * operator's).  jobs_models_select hands the worker a scope (machine type
 * + workspace) as the provider's ud; scopes are interned in struct
 * jobs_models and live as long as it.
 */
#include "jobs/jobs_int.h"

#include "model/model.h"
#include "store/store_models.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

    /* no models_dir: registrations go to the blob store (jobs_models_store_put),
     * the folders are only read */
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
    int rc = model_registry_infer(ud, NULL, req->model_id, req->task, req->params, images, n, out, err, errlen);
    if (rc < 0)
        runtime_explain(ud, err, errlen);
    return rc;
}

int jobs_model_prepare(void *ud, const struct wf_model_request *req, struct vis_image *img, char *err,
                       size_t errlen)
{
    return model_registry_prepare(ud, NULL, req->model_id, img, err, errlen);
}

/* ---- machine types ------------------------------------------------------------ */

/* A provider's ud: the machine type's registry and the job's workspace. */
struct jobs_models_scope {
    struct jobs_models *m;
    bool gpu;
    char *ws;                        /* NULL: operator models only */
    struct jobs_models_scope *next;
};

struct jobs_models {
    struct model_registry *cpu; /* borrowed */
    char *dir;                  /* data_dir/models */
    char *extra_dir;            /* or NULL */
    int intra_threads;
    pthread_mutex_t lock;       /* guards gpu, gpu_loaded */
    struct model_registry *gpu; /* owned; created on the first gpu check */
    bool gpu_loaded;            /* models registered into gpu */
    struct timespec dir_mtime;  /* of dir at the last gpu load */
    struct store *st;           /* borrowed; NULL: no models table re-reads */
    pthread_mutex_t sync_lock;  /* one re-read at a time */
    int64_t cpu_sync_ms;        /* last re-read of each registry (atomic) */
    int64_t gpu_sync_ms;
    struct jobs_models_scope *scopes; /* under lock; freed with m */
};

/* The interned scope of (gpu, ws). */
static struct jobs_models_scope *scope_get(struct jobs_models *m, bool gpu, const char *ws)
{
    struct jobs_models_scope *s;
    pthread_mutex_lock(&m->lock);
    for (s = m->scopes; s; s = s->next)
        if (s->gpu == gpu && (s->ws ? ws && !strcmp(s->ws, ws) : !ws))
            break;
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->m = m;
        s->gpu = gpu;
        s->ws = ws ? xstrdup(ws) : NULL;
        s->next = m->scopes;
        m->scopes = s;
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

static int ms_sync_period_ms(void);

/* Bring reg up to date with the models table (jobs_models_store_sync):
 * when force (reg did not know the model a task asked for: registered by
 * another process, or by the API after this registry was filled), else at
 * most every MS_SYNC_PERIOD_MS, which also picks up replacements and
 * deletions made by other processes while a job runs. */
static void models_resync(struct jobs_models *m, struct model_registry *reg, int64_t *last, bool force)
{
    if (!m->st)
        return;
    if (!force) {
        int64_t now = time_now_ms();
        if (now - __atomic_load_n(last, __ATOMIC_RELAXED) < ms_sync_period_ms())
            return;
        if (pthread_mutex_trylock(&m->sync_lock) != 0)
            return; /* another worker is at it */
    } else {
        pthread_mutex_lock(&m->sync_lock);
    }
    if (jobs_models_store_sync(m->st, reg, NULL, NULL) < 0)
        log_warn("jobs", "cannot re-read the models table");
    __atomic_store_n(last, time_now_ms(), __ATOMIC_RELAXED);
    pthread_mutex_unlock(&m->sync_lock);
}

/* wf_model_infer_fn for cpu jobs (ud: struct jobs_models_scope). */
static int cpu_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                     size_t n, json_t **out, char *err, size_t errlen)
{
    struct jobs_models_scope *sc = ud;
    struct jobs_models *m = sc->m;
    struct model *mod = NULL;
    char e2[400];
    bool miss = model_registry_get(m->cpu, sc->ws, req->model_id, &mod, e2, sizeof e2) == ERR_NOTFOUND;
    model_unref(mod);
    models_resync(m, m->cpu, &m->cpu_sync_ms, miss);
    int rc = model_registry_infer(m->cpu, sc->ws, req->model_id, req->task, req->params, images, n, out, err,
                                  errlen);
    if (rc < 0)
        runtime_explain(m->cpu, err, errlen);
    return rc;
}

void jobs_models_set_store(struct jobs_models *m, struct store *st)
{
    m->st = st;
    __atomic_store_n(&m->cpu_sync_ms, time_now_ms(), __ATOMIC_RELAXED);
}

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
    pthread_mutex_init(&m->sync_lock, NULL);
    *out = m;
    return 0;
}

void jobs_models_free(struct jobs_models *m)
{
    if (!m)
        return;
    model_registry_free(m->gpu);
    while (m->scopes) {
        struct jobs_models_scope *s = m->scopes;
        m->scopes = s->next;
        free(s->ws);
        free(s);
    }
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->sync_lock);
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

/* wf_model_infer_fn for gpu jobs (ud: struct jobs_models_scope). */
static int gpu_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                     size_t n, json_t **out, char *err, size_t errlen)
{
    struct jobs_models_scope *sc = ud;
    struct jobs_models *m = sc->m;
    struct model *mod = NULL;
    char e2[400];
    int rc;

    /* A model registered after the gpu registry was loaded: read the
     * folders again when the legacy models folder changed since, and the
     * models table. */
    bool miss = model_registry_get(m->gpu, sc->ws, req->model_id, &mod, e2, sizeof e2) == ERR_NOTFOUND;
    if (miss) {
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
    models_resync(m, m->gpu, &m->gpu_sync_ms, miss);
    rc = model_registry_infer(m->gpu, sc->ws, req->model_id, req->task, req->params, images, n, out, err, errlen);
    if (rc < 0)
        runtime_explain(m->gpu, err, errlen);
    return rc;
}

/* wf_model_prepare_fn of cpu_infer and gpu_infer (ud: struct
 * jobs_models_scope).  An id the registry does not know yet fails here;
 * the step's inference then re-reads the models table and pre-processes
 * the image itself. */
static int cpu_prepare(void *ud, const struct wf_model_request *req, struct vis_image *img, char *err,
                       size_t errlen)
{
    struct jobs_models_scope *sc = ud;
    return model_registry_prepare(sc->m->cpu, sc->ws, req->model_id, img, err, errlen);
}

static int gpu_prepare(void *ud, const struct wf_model_request *req, struct vis_image *img, char *err,
                       size_t errlen)
{
    struct jobs_models_scope *sc = ud;
    return model_registry_prepare(sc->m->gpu, sc->ws, req->model_id, img, err, errlen);
}

int jobs_models_select(void *ud, const char *machine_type, const char *workspace, bool needs_models,
                       wf_model_infer_fn *fn, wf_model_prepare_fn *prep, void **fn_ud, char *err, size_t errlen)
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
            *fn = cpu_infer;
            *fn_ud = scope_get(m, false, workspace);
            if (prep)
                *prep = cpu_prepare;
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
        if ((rc = models_load(m->gpu, m->dir, m->extra_dir, e2, sizeof e2)) < 0) {
            snprintf(err, errlen, "machineType gpu: cannot load the models: %s", e2);
        } else {
            m->gpu_loaded = true;
            if (m->st && jobs_models_store_sync(m->st, m->gpu, NULL, NULL) < 0)
                log_warn("jobs", "gpu registry: cannot read the models table");
            __atomic_store_n(&m->gpu_sync_ms, time_now_ms(), __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (rc == 0 && fn) {
        *fn = gpu_infer;
        *fn_ud = scope_get(m, true, workspace);
        if (prep)
            *prep = gpu_prepare;
    }
    return rc;
}

/* ---- models in the control database and the blob store ---------------------------
 *
 * A model registered through the API or the CLI is two blobs under a
 * generation folder, {weights.onnx (a multi-file model: model.tar, its
 * bundle), metadata.json} under
 * models/<id with '/' as "--">/<uuid>/ for an operator model and
 * wsmodels/<workspace>/<id with '/' as "--">/<uuid>/ for a workspace's,
 * and one row of the core table `models` (key: workspace, '' for the
 * operator's, and model_id) naming them.
 * Order of writes: both blobs (store_blob_put syncs each), then the row in
 * one transaction, then the blobs of the generation the row named before.
 * A crash before the commit leaves an orphan generation folder and the old
 * row (the old model stays whole); a crash after it leaves the old
 * generation's blobs behind, never a row naming missing bytes.  A model is
 * put into the in-memory registry only after its row is committed, tagged
 * with its weights key, so a re-read (jobs_models_store_sync) can tell
 * which rows it already has. */

#define MS_META_MAX (8u << 20)     /* metadata.json (class names may be long) */
#define MS_SYNC_PERIOD_MS 5000     /* re-read period while a job runs */

/* $VBATCH_MODELS_SYNC_MS overrides the period (tests). */
static int ms_sync_period_ms(void)
{
    const char *e = getenv("VBATCH_MODELS_SYNC_MS");
    long v = e && *e ? strtol(e, NULL, 10) : MS_SYNC_PERIOD_MS;
    return v >= 0 && v <= 3600000 ? (int)v : MS_SYNC_PERIOD_MS;
}

/* Within the process: the row switch and the registry change of a
 * registration or deletion happen together, and a re-read never sees one
 * without the other. */
static pthread_mutex_t ms_lock = PTHREAD_MUTEX_INITIALIZER;
/* Weights keys of rows whose blobs were missing, torn or unreadable (under
 * ms_lock): re-reads skip them instead of hashing them again every few
 * seconds; an entry goes when its row no longer names that key (a new
 * registration has a new key). */
static json_t *ms_bad_keys;

/* The generation folder of a weights key ("models/<dn>/<gen>" or
 * "wsmodels/<ws>/<dn>/<gen>" before "/weights.onnx", or "/model.tar" for a
 * multi-file model), malloc'd; NULL for a
 * key of another shape. */
static char *ms_gen_prefix(const char *wkey)
{
    const char *slash = strrchr(wkey, '/');
    if ((!str_has_prefix(wkey, "models/") && !str_has_prefix(wkey, "wsmodels/")) || !slash ||
        (strcmp(slash, "/weights.onnx") != 0 && strcmp(slash, "/model.tar") != 0))
        return NULL;
    return xstrndup(wkey, (size_t)(slash - wkey));
}

/* "model 'x'" or "model 'x' of workspace 'w'" for messages (static per thread). */
static const char *ms_name(const char *ws, const char *id)
{
    static __thread char s[400];
    if (ws)
        snprintf(s, sizeof s, "model '%s' of workspace '%s'", id, ws);
    else
        snprintf(s, sizeof s, "model '%s'", id);
    return s;
}

/* Delete a generation's blobs (and the id's folder when it is left empty). */
static void ms_blobs_delete(struct store *st, const char *wkey)
{
    char *gen = ms_gen_prefix(wkey);
    if (!gen)
        return;
    int rc = store_blob_delete_prefix(st, gen);
    if (rc < 0)
        log_warn("jobs", "cannot delete model blobs %s: %s", gen, err_str(rc));
    char *slash = strrchr(gen, '/');
    *slash = '\0';
    char *dir = store_blob_path(st, gen);
    (void)rmdir(dir); /* fails while another generation is there: fine */
    free(dir);
    free(gen);
}

int jobs_models_store_put(struct store *st, struct model_registry *reg, const char *ws, const char *id,
                          const void *onnx, size_t len, const json_t *meta, struct err *err)
{
    struct model *m = NULL;
    char gen[37], hex[65], *dn = NULL, *prefix = NULL, *wkey = NULL, *mkey = NULL, *text = NULL;
    char *old = NULL;
    uint8_t digest[32];
    json_t *mj = NULL;
    bool locked = false, blobs = false;
    int rc;

    /* build and check first: a bad model writes nothing; its failure is the
     * model's (ERR_INVALID) unless it is a limit, memory or a busy runtime */
    char why[ERR_MSG_MAX] = "";
    if ((rc = model_registry_prepare_bytes(reg, id, onnx, len, meta, &m, why, sizeof why)) < 0) {
        if (rc != ERR_LIMIT && rc != ERR_NOMEM && rc != ERR_AGAIN)
            rc = ERR_INVALID;
        return err_set(err, rc, "%s", why[0] ? why : "invalid model");
    }
    if (ws && !id_valid(ws, STORE_WS_MAX)) {
        err_printf(err, "invalid workspace '%.64s'", ws);
        rc = ERR_INVALID;
        goto out;
    }
    uuid4(gen);
    dn = model_id_dirname(id);
    prefix = ws ? xasprintf("wsmodels/%s/%s/%s", ws, dn, gen) : xasprintf("models/%s/%s", dn, gen);
    /* a multi-file model (a bundle: model/model.h) is one blob too */
    wkey = xasprintf("%s/%s", prefix, model_bundle_is(onnx, len) ? "model.tar" : "weights.onnx");
    mkey = xasprintf("%s/metadata.json", prefix);
    mj = meta ? json_deep_copy(meta) : json_object();
    json_object_set_new(mj, "model_id", json_string(id));
    text = json_dumps(mj, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!text || strlen(text) > MS_META_MAX) {
        err_printf(err, "%s: metadata is over %u bytes", ms_name(ws, id), MS_META_MAX);
        rc = ERR_LIMIT;
        goto out;
    }
    sha256(onnx, len, digest);
    hex_encode(digest, 32, hex);
    blobs = true;
    if ((rc = store_blob_put(st, wkey, onnx, len)) < 0 ||
        (rc = store_blob_put(st, mkey, text, strlen(text))) < 0) {
        err_printf(err, "cannot store %s in the blob store: %s", ms_name(ws, id), err_str(rc));
        goto out;
    }

    pthread_mutex_lock(&ms_lock);
    locked = true;
    if ((rc = store_models_put(st, ws, id, wkey, mkey, (int64_t)len, hex, &old, err)) < 0) {
        err_prefix(err, rc, "cannot store %s", ms_name(ws, id));
        goto out;
    }
    blobs = false; /* the row names them now */
    model_registry_add(reg, m, ws, wkey);
    pthread_mutex_unlock(&ms_lock);
    locked = false;
    if (old && strcmp(old, wkey) != 0)
        ms_blobs_delete(st, old);
    log_info("jobs", "model stored id=%s workspace=%s key=%s size=%zu sha256=%s", id, ws ? ws : "-", wkey, len, hex);
    rc = 0;
out:
    if (locked)
        pthread_mutex_unlock(&ms_lock);
    if (blobs) /* not committed: nothing names them */
        store_blob_delete_prefix(st, prefix);
    model_unref(m);
    json_decref(mj);
    free(text);
    free(old);
    free(dn);
    free(prefix);
    free(wkey);
    free(mkey);
    return rc;
}

int jobs_models_store_put_dir(struct store *st, struct model_registry *reg, const char *ws, const char *id,
                              const char *dir, struct err *err)
{
    char *onnx = NULL;
    size_t len = 0;
    json_t *meta = NULL;
    char e2[768];
    int rc = model_artefacts_read_dir(dir, 0, &onnx, &len, &meta, e2, sizeof e2);
    if (rc < 0)
        err_printf(err, "%s: %s", ms_name(ws, id), e2);
    else
        rc = jobs_models_store_put(st, reg, ws, id, onnx, len, meta, err);
    free(onnx);
    json_decref(meta);
    return rc;
}

/* The tag (weights key) reg holds for (ws, id), a copy, or NULL. */
static char *ms_reg_tag(struct model_registry *reg, const char *ws, const char *id)
{
    json_t *tags = model_registry_tags(reg);
    const char *tag;
    json_t *v;
    char *out = NULL;
    json_object_foreach(tags, tag, v)
    {
        const char *tws = json_string_value(json_object_get(v, "workspace"));
        if (!strcmp(json_string_value(json_object_get(v, "modelId")), id) && (tws ? ws && !strcmp(tws, ws) : !ws)) {
            out = xstrdup(tag);
            break;
        }
    }
    json_decref(tags);
    return out;
}

int jobs_models_store_delete(struct store *st, struct model_registry *reg, const char *ws, const char *id,
                             struct err *err)
{
    char *old = NULL;
    int rc;

    pthread_mutex_lock(&ms_lock);
    if ((rc = store_models_delete(st, ws, id, &old, err)) == ERR_NOTFOUND) {
        err_printf(err, "unknown %s (not registered)", ms_name(ws, id));
        goto out;
    }
    if (rc < 0) {
        err_prefix(err, rc, "cannot delete %s", ms_name(ws, id));
        goto out;
    }
    /* whatever generation this registry holds (another process may have
     * replaced it since we loaded it); a model of a models folder has no
     * tag and is not touched */
    char *tag = ms_reg_tag(reg, ws, id);
    if (tag)
        model_registry_remove(reg, ws, id, tag);
    free(tag);
    rc = 0;
out:
    pthread_mutex_unlock(&ms_lock);
    if (rc == 0) {
        ms_blobs_delete(st, old); /* after the row: never a row without bytes */
        log_info("jobs", "model deleted id=%s workspace=%s key=%s", id, ws ? ws : "-", old);
    }
    free(old);
    return rc;
}

/* Every row of the models table, by workspace ('' first) and id. */
static int ms_rows(struct store *st, struct store_model_row **out, size_t *n_out)
{
    struct err e = ERR_INIT;
    int rc = store_models_list(st, out, n_out, &e);
    if (rc < 0)
        log_warn("jobs", "cannot read the models table: %s", err_text(&e, rc));
    return rc;
}

/* Load one row's generation into reg (tagged with its weights key). */
static int ms_load(struct store *st, struct model_registry *reg, const struct store_model_row *row, bool *bytes_bad,
                   char *err, size_t errlen)
{
    int fd = -1;
    int64_t size = 0;
    void *map = MAP_FAILED;
    char *text = NULL, hex[65];
    uint8_t digest[32];
    json_t *meta = NULL;
    struct model *m = NULL;
    json_error_t je;
    int rc;

    if ((rc = store_blob_open(st, row->wkey, &fd, &size)) < 0) {
        snprintf(err, errlen, "model '%s': cannot open blob '%s': %s", row->id, row->wkey, err_str(rc));
        goto out;
    }
    if (size <= 0 || size != row->size) {
        snprintf(err, errlen, "model '%s': blob '%s' has %lld bytes, the row says %lld", row->id, row->wkey,
                 (long long)size, (long long)row->size);
        rc = ERR_INVALID;
        goto out;
    }
    map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        snprintf(err, errlen, "model '%s': cannot map blob '%s': %s", row->id, row->wkey, err_str(rc));
        goto out;
    }
    sha256(map, (size_t)size, digest);
    hex_encode(digest, 32, hex);
    if (strcmp(hex, row->sha) != 0) {
        snprintf(err, errlen, "model '%s': blob '%s' does not match its sha256", row->id, row->wkey);
        rc = ERR_INVALID;
        goto out;
    }
    if ((rc = store_blob_read(st, row->mkey, MS_META_MAX, &text, NULL)) < 0) {
        snprintf(err, errlen, "model '%s': cannot read blob '%s': %s", row->id, row->mkey, err_str(rc));
        goto out;
    }
    meta = json_loads(text, 0, &je); /* written by jobs_models_store_put */
    if (!json_is_object(meta)) {
        snprintf(err, errlen, "model '%s': blob '%s' is not a JSON object", row->id, row->mkey);
        rc = ERR_PARSE;
        goto out;
    }
    json_object_del(meta, "model_id");
    /* the bytes are whole: a refusal now is this registry's (its runtime) */
    if ((rc = model_registry_prepare_bytes(reg, row->id, map, (size_t)size, meta, &m, err, errlen)) < 0)
        goto out_model;
    model_registry_add(reg, m, row->ws, row->wkey);
    goto out_model;
out:
    *bytes_bad = rc != ERR_NOMEM;
out_model:
    model_unref(m);
    json_decref(meta);
    free(text);
    if (map != MAP_FAILED)
        munmap(map, (size_t)size);
    if (fd >= 0)
        close(fd);
    return rc;
}

int jobs_models_store_sync(struct store *st, struct model_registry *reg, int *n_loaded, int *n_bad)
{
    struct store_model_row *rows = NULL;
    size_t n = 0;
    int loaded = 0, bad = 0, removed = 0, rc;
    char err[1024];

    pthread_mutex_lock(&ms_lock);
    if ((rc = ms_rows(st, &rows, &n)) < 0)
        goto out;
    json_t *tags = model_registry_tags(reg);
    if (!ms_bad_keys)
        ms_bad_keys = json_object();
    for (size_t i = 0; i < n; i++) {
        if (json_object_get(tags, rows[i].wkey))
            continue; /* this generation is loaded (keys are unique per scope, id and generation) */
        if (json_object_get(ms_bad_keys, rows[i].wkey)) {
            bad++; /* reported when first seen */
            continue;
        }
        bool bytes_bad = false;
        if (ms_load(st, reg, &rows[i], &bytes_bad, err, sizeof err) == 0) {
            loaded++;
        } else {
            bad++;
            log_warn("jobs", "skipping stored model: %s", err);
            if (bytes_bad)
                json_object_set_new(ms_bad_keys, rows[i].wkey, json_true());
        }
    }
    /* forget the bad keys that no row names any more */
    const char *bk;
    json_t *bv;
    void *tmp;
    json_object_foreach_safe(ms_bad_keys, tmp, bk, bv)
    {
        bool named = false;
        for (size_t i = 0; i < n && !named; i++)
            named = !strcmp(rows[i].wkey, bk);
        if (!named)
            json_object_del(ms_bad_keys, bk);
    }
    /* rows deleted (by another process) since these were loaded */
    const char *tag;
    json_t *v;
    json_object_foreach(tags, tag, v)
    {
        const char *id = json_string_value(json_object_get(v, "modelId"));
        const char *ws = json_string_value(json_object_get(v, "workspace"));
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = !strcmp(rows[i].id, id) && (rows[i].ws ? ws && !strcmp(rows[i].ws, ws) : !ws);
        if (!found && model_registry_remove(reg, ws, id, tag) == 0)
            removed++;
    }
    json_decref(tags);
    if (loaded || bad || removed)
        log_info("jobs", "stored models read rows=%zu loaded=%d bad=%d removed=%d", n, loaded, bad, removed);
out:
    pthread_mutex_unlock(&ms_lock);
    store_model_rows_free(rows, n);
    if (n_loaded)
        *n_loaded = loaded;
    if (n_bad)
        *n_bad = bad;
    return rc;
}

int jobs_models_store_list(struct store *st, json_t **out)
{
    struct store_model_row *rows = NULL;
    size_t n = 0;
    int rc = ms_rows(st, &rows, &n);
    if (rc < 0)
        return rc;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char c[TIME_ISO_LEN], u[TIME_ISO_LEN];
        time_iso8601(rows[i].created_ms, c);
        time_iso8601(rows[i].updated_ms, u);
        json_array_append_new(a, json_pack("{s:s,s:s?,s:s,s:I,s:s,s:s,s:s}", "modelId", rows[i].id, "workspace",
                                           rows[i].ws, "weightsKey", rows[i].wkey, "size",
                                           (json_int_t)rows[i].size, "sha256", rows[i].sha, "createdAt", c,
                                           "updatedAt", u));
    }
    store_model_rows_free(rows, n);
    *out = a;
    return 0;
}

/* Is prefix (a generation folder) the generation of one of the rows? */
static bool ms_live(const struct store_model_row *rows, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(rows[i].wkey, prefix, pl) && rows[i].wkey[pl] == '/')
            return true;
    return false;
}

/* The generation folders the sweep saw: each prefix with its newest blob. */
struct ms_seen {
    int depth;                 /* segments of a generation prefix */
    struct ms_gen {
        char *prefix;
        int64_t mtime_ms;
    } *g;
    size_t n, cap;
};

static int ms_seen_blob(void *ud, const char *key, int64_t size, int64_t mtime_ms)
{
    struct ms_seen *c = ud;
    const char *p = key;
    int segs = 0;
    (void)size;
    for (; *p; p++)
        if (*p == '/' && ++segs == c->depth)
            break;
    if (!*p)
        return 0; /* a blob above the generation level: not a model's */
    size_t len = (size_t)(p - key);
    for (size_t i = c->n; i-- > 0;)
        if (strlen(c->g[i].prefix) == len && !strncmp(c->g[i].prefix, key, len)) {
            if (mtime_ms > c->g[i].mtime_ms)
                c->g[i].mtime_ms = mtime_ms;
            return 0;
        }
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->g = xrealloc(c->g, c->cap * sizeof *c->g);
    }
    c->g[c->n].prefix = xstrndup(key, len);
    c->g[c->n].mtime_ms = mtime_ms;
    c->n++;
    return 0;
}

/* Remove the empty folders above a swept generation (local backend only;
 * object storage has no folders): <root>/<dn>, and <ws> for wsmodels. */
static void ms_rmdirs(struct store *st, const char *gen_prefix)
{
    char *p = xstrdup(gen_prefix), *slash;
    while ((slash = strrchr(p, '/')) != NULL) {
        *slash = 0;
        if (!strchr(p, '/'))
            break; /* keep models/ and wsmodels/ */
        char *dir = store_blob_path(st, p);
        int rc = rmdir(dir); /* fails when not empty: fine */
        free(dir);
        if (rc < 0)
            break;
    }
    free(p);
}

/* Sweep the generations <root>/.../<gen> of one root (see
 * jobs_models_store_sweep); the count swept, or <0 when the blob store
 * cannot be listed. */
static int ms_sweep_root(struct store *st, const struct store_model_row *rows, size_t n, const char *root, int depth,
                         int64_t older_than_ms, int64_t now)
{
    struct ms_seen seen = {.depth = depth};
    int swept = 0;
    int rc = store_blob_list(st, root, ms_seen_blob, &seen);
    for (size_t i = 0; i < seen.n; i++) {
        const char *prefix = seen.g[i].prefix;
        /* a generation is written before its row: only old ones are orphans */
        if (rc == 0 && now - seen.g[i].mtime_ms >= older_than_ms && !ms_live(rows, n, prefix) &&
            store_blob_delete_prefix(st, prefix) == 0) {
            log_info("jobs", "swept orphan model blobs %s", prefix);
            swept++;
            if (store_blobs_local(st))
                ms_rmdirs(st, prefix);
        }
        free(seen.g[i].prefix);
    }
    free(seen.g);
    if (rc < 0) {
        log_warn("jobs", "cannot list the model blobs under %s: %s", root, err_str(rc));
        return rc;
    }
    return swept;
}

int jobs_models_store_sweep(struct store *st, int64_t older_than_ms)
{
    struct store_model_row *rows = NULL;
    size_t n = 0;
    int64_t now = time_now_ms();
    int rc = ms_rows(st, &rows, &n);

    if (rc < 0)
        return rc;
    /* the operator's: models/<dn>/<gen>; each workspace's: wsmodels/<ws>/<dn>/<gen> */
    int a = ms_sweep_root(st, rows, n, "models", 3, older_than_ms, now);
    int b = ms_sweep_root(st, rows, n, "wsmodels", 4, older_than_ms, now);
    rc = a < 0 ? a : b < 0 ? b : a + b;
    store_model_rows_free(rows, n);
    return rc;
}
