/*
 * models.c — the model registry over HTTP (issue 4 item 2).
 *
 *   PUT|POST /models/v1/external/{workspace}/models/{model_id*}  register / replace
 *   GET      /models/v1/external/{workspace}/models/{model_id*}  describe
 *   GET      /models/v1/external/{workspace}/models              {"models":[…]}
 *
 * The id is the rest of the path, so a Roboflow id "dataset/3" is written
 * either as .../models/dataset/3 or URL-encoded as .../models/dataset%2F3.
 * The registry checks the id (letters, digits, '-', '_', '.', at most one
 * '/', at most 200 characters).
 *
 * Models have a scope (model/model.h "Scopes"; docs/API.md, Models): a
 * model registered here belongs to the workspace of the path, and only
 * that workspace sees, uses, replaces or deletes it (another workspace
 * gets 404, and may register its own model of the same id).  The
 * operator's models (models folders, `vbatch model register` without
 * --workspace) are seen and used by every workspace and written by none
 * here: a PUT or DELETE of such an id is 409, unless the workspace has its
 * own model of that id (which it then replaces or deletes).  A workspace
 * sees its own model of an id before the operator's.  Each call needs a
 * valid key of the workspace in the path (api_auth: 401 / 403).
 *
 * Upload body, either
 *   - the raw ONNX bytes (any Content-Type but multipart/form-data), with
 *     the metadata JSON object in the "metadata" query parameter or the
 *     X-Model-Metadata header (both optional), or
 *   - multipart/form-data: the part named "metadata" holds the JSON object
 *     (when there is no such part, the query parameter or header as for a
 *     raw body); the file parts hold the model: a part whose name has a dot
 *     is the file of that name ("det.onnx"), else a part with a filename is
 *     the file of that name (its last path segment), else a part named
 *     "weights" or "file" is the ONNX; other parts are ignored.  One file
 *     part: the ONNX model.  Several (at most MODEL_BUNDLE_MAX_FILES, all
 *     together within the weights limit): a multi-file model (OCR's
 *     det.onnx, rec.onnx, dict.txt), streamed into the temp file as a model
 *     bundle (model/model.h) and stored as one blob (docs/MODELS.md,
 *     "Multi-file models").  A file name that is not accepted, two files of
 *     one name, two metadata parts or too many files: 400.
 * The weights stream into a temp file under DATA/tmp (never held in the
 * request), bounded by ctx->max_model_bytes (413 beyond); the file is
 * mapped and handed to jobs_models_store_put, which validates the model
 * (its message is the 400 body), writes the weights and a metadata JSON
 * into the blob store under a fresh generation folder
 * (wsmodels/<workspace>/<id with '/' as "--">/<uuid>/), switches the `models` row to
 * them in one transaction, puts the model into the registry and deletes
 * the previous generation's blobs (docs/MODELS.md, "Stored models").  The
 * temp file is removed when the request ends, whatever the outcome.
 *
 *   DELETE   /models/v1/external/{workspace}/models/{model_id*}  {"status":"ok","modelId"}
 *
 * removes the row, the model from the registry (tasks holding it finish
 * with it) and the blobs; 404 for an id that is not stored (an alias is
 * not followed), 409 for a model that comes from a models folder
 * (DATA/models of older versions, --models-dir): remove it there.
 *
 * Models registered by another process (the CLI, another server on the
 * same data) are found too: every GET, list, PUT and DELETE re-reads the
 * `models` table first (jobs_models_store_sync: only changed rows load).
 */
#include "api/api.h"

#include "base/base.h"
#include "jobs/jobs.h"
#include "model/model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define MR "/models/v1/external/{workspace}/models"
#define MR_META_MAX (4u << 20)            /* metadata JSON (class_names may be long) */
#define MR_DEFAULT_MAX ((uint64_t)1 << 30) /* weights, when ctx->max_model_bytes is 0 */
#define MR_FRAMING (64u * 1024)           /* multipart headers and boundaries */


static uint64_t mr_max(const struct api_ctx *ctx)
{
    return ctx->max_model_bytes ? ctx->max_model_bytes : MR_DEFAULT_MAX;
}

/* 0, or replied 503 when the server runs without a registry. */
static int mr_have_registry(struct http_req *req, struct api_ctx *ctx)
{
    if (ctx->models)
        return 0;
    http_reply_error(req, 503, "this server has no model registry");
    return ERR_UNSUPPORTED;
}

/* The model id of the path (the {model_id*} tail), bounded for messages. */
static const char *mr_id(struct http_req *req)
{
    const char *id = http_req_param(req, "model_id");
    return id ? id : "";
}

/* The aliases given with the model at registration (upload metadata or
 * model.json), [] when none; aliases.json entries and aliases set by other
 * means are not reported: the registry cannot list them. */
static json_t *mr_aliases(const json_t *info)
{
    json_t *al = json_object_get(info, "aliases");
    return json_is_array(al) ? json_deep_copy(al) : json_array();
}

static const char *mr_task(const struct model *m)
{
    const char *t = model_task_name(model_task(m));
    return t ? t : "unknown";
}

/* A JSON string, "" for text that is not UTF-8 (keeps class indexes). */
static json_t *mr_str(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_string("");
}

/* "workspace" for a model of the caller's workspace, "operator" for one of
 * the operator's (the only two kinds a caller ever sees). */
static const char *mr_scope(const struct model *m)
{
    return model_workspace(m) ? "workspace" : "operator";
}

/* The describe body of one model (new reference; NULL on allocation failure). */
static json_t *mr_summary(const struct model *m)
{
    json_t *info = model_describe(m);
    json_t *names = json_array();
    int w = 0, h = 0;

    if (!info)
        info = json_object();
    for (size_t i = 0; i < model_class_count(m); i++)
        json_array_append_new(names, mr_str(model_class_name(m, i)));
    model_input_size(m, &w, &h);
    json_t *aliases = mr_aliases(info);
    json_object_del(info, "artefacts"); /* a server path: not the client's business */
    json_object_del(info, "aliases");   /* reported at the top */
    return json_pack("{s:s,s:s,s:s,s:{s:i,s:i},s:o,s:o,s:o}", "modelId", model_id(m), "scope", mr_scope(m),
                     "task", mr_task(m), "inputSize", "width", w, "height", h, "classNames", names, "aliases",
                     aliases, "details", info);
}

/* Does ws (NULL: the operator) have a model of exactly this id?  (Not
 * through an alias, not the other scope's.) */
static bool mr_has_exact(struct api_ctx *ctx, const char *ws, const char *id)
{
    struct model *m = NULL;
    char err[256];
    bool yes = model_registry_get(ctx->models, ws, id, &m, err, sizeof err) == 0 && !strcmp(model_id(m), id) &&
               (ws ? model_workspace(m) && !strcmp(model_workspace(m), ws) : !model_workspace(m));
    model_unref(m);
    return yes;
}

/* Replied 409 when id is the operator's and ws has no model of its own
 * under it (what = "replaced" / "deleted"); 0 otherwise.  The registry is
 * brought up to date with the table first (the CLI may have registered
 * it). */
static int mr_operator_guard(struct http_req *req, struct api_ctx *ctx, const char *ws, const char *id,
                             const char *what)
{
    if (jobs_models_store_sync(ctx->st, ctx->models, NULL, NULL) < 0) {
        http_reply_error(req, 500, "cannot read the models table");
        return ERR_INTERNAL;
    }
    if (mr_has_exact(ctx, ws, id) || !mr_has_exact(ctx, NULL, id))
        return 0;
    http_reply_error(req, 409, "model '%s' is provided by the operator of this server (a models folder or "
                     "`vbatch model register` without --workspace): every workspace may use it, none may "
                     "have it %s over the API; register your own model under another id", id, what);
    return ERR_EXISTS;
}

/* ---- reads -------------------------------------------------------------------------- */

static int mr_list(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    char err[256];
    size_t i;
    json_t *v;

    if (api_auth(req, ctx, ws) < 0 || mr_have_registry(req, ctx) < 0)
        return 0;
    /* models stored by other processes since (loads only what changed) */
    if (jobs_models_store_sync(ctx->st, ctx->models, NULL, NULL) < 0)
        return http_reply_error(req, 500, "cannot read the models table");
    json_t *all = model_registry_list(ctx->models);
    json_t *out = json_array();
    json_array_foreach(all, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "modelId"));
        const char *mws = json_string_value(json_object_get(v, "workspace"));
        struct model *m = NULL;
        int w = 0, h = 0;
        /* the caller's own models, and the operator's it does not shadow;
         * never another workspace's */
        if (mws ? strcmp(mws, ws) != 0 : mr_has_exact(ctx, ws, id))
            continue;
        /* a model replaced or gone between list and get is just left out */
        if (model_registry_get(ctx->models, mws, id, &m, err, sizeof err) < 0)
            continue;
        model_input_size(m, &w, &h);
        json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:I,s:{s:i,s:i}}", "modelId", model_id(m), "scope",
                                             mr_scope(m), "task", mr_task(m), "classCount",
                                             (json_int_t)model_class_count(m), "inputSize", "width", w,
                                             "height", h));
        model_unref(m);
    }
    json_decref(all);
    return http_reply_json(req, 200, json_pack("{s:o}", "models", out));
}

static int mr_get(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    struct model *m = NULL;
    char err[512];

    if (api_auth(req, ctx, ws) < 0 || mr_have_registry(req, ctx) < 0)
        return 0;
    /* stored, replaced or deleted by other processes since (loads only what
     * changed): a workspace's own model may now hide an operator's */
    if (jobs_models_store_sync(ctx->st, ctx->models, NULL, NULL) < 0)
        return http_reply_error(req, 500, "cannot read the models table");
    int rc = model_registry_get(ctx->models, ws, mr_id(req), &m, err, sizeof err);
    if (rc == ERR_NOTFOUND)
        return http_reply_error(req, 404, "%s", err);
    if (rc < 0)
        return http_reply_error(req, 400, "%s", err);
    json_t *out = mr_summary(m);
    model_unref(m);
    if (!out)
        return http_reply_error(req, 500, "cannot describe the model");
    return http_reply_json(req, 200, out);
}

/* ---- register: streamed upload ------------------------------------------------------- */

enum mr_part { MR_SKIP, MR_WEIGHTS, MR_META };

/* A multipart upload writes every file part into the temp file as an
 * entry of a model bundle (model/model.h): a 512-byte header, patched
 * with the part's size when it ends, then the bytes, padded.  One file:
 * its bytes alone are the ONNX model (as before bundles); several: the
 * whole file is the bundle. */
#define MR_HDR 512

struct mr_up {
    struct api_ctx *ctx;
    char ws[STORE_WS_MAX + 1]; /* the caller's workspace: the model's scope */
    struct http_multipart *mp; /* NULL: raw body */
    int fd;                    /* temp file, -1 once closed */
    char *tmp_path;            /* owned; the file is removed at completion */
    enum mr_part part;         /* multipart: what the current part is */
    bool have_weights;         /* at least one file part */
    bool have_meta;
    size_t n_files;            /* multipart file parts (bundle entries) */
    char names[MODEL_BUNDLE_MAX_FILES][MODEL_BUNDLE_NAME_MAX + 1];
    uint64_t hdr_off[MODEL_BUNDLE_MAX_FILES]; /* each entry's header in the temp file */
    uint64_t fsize[MODEL_BUNDLE_MAX_FILES];   /* each entry's bytes */
    uint64_t off;              /* bytes written to the temp file, wbuf included */
    char bad[400];             /* a refused form part: the 400 message */
    struct buf meta;           /* multipart "metadata" part */
    uint64_t size;             /* weights bytes received */
    bool too_big;
    bool meta_too_big;
    int write_err;
    size_t wlen;               /* bytes waiting in wbuf */
    char wbuf[64 * 1024];      /* batch the parser's small pieces into few writes */
};

static void mr_up_free(void *p)
{
    struct mr_up *u = p;
    if (!u)
        return;
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp_path) {
        unlink(u->tmp_path);
        free(u->tmp_path);
    }
    http_multipart_free(u->mp);
    buf_release(&u->meta);
    free(u);
}

static int mr_flush(struct mr_up *u)
{
    int rc = fd_write_all(u->fd, u->wbuf, u->wlen);
    if (rc < 0)
        return u->write_err = rc;
    u->wlen = 0;
    return 0;
}

/* Append n bytes to the temp file (through wbuf). */
static int mr_emit(struct mr_up *u, const char *d, size_t n)
{
    u->off += n;
    while (n > 0) {
        size_t k = MIN(n, sizeof(u->wbuf) - u->wlen);
        memcpy(u->wbuf + u->wlen, d, k);
        u->wlen += k;
        d += k;
        n -= k;
        if (u->wlen == sizeof(u->wbuf) && mr_flush(u) < 0)
            return u->write_err;
    }
    return 0;
}

static const char mr_zeros[2 * MR_HDR];

/* Model bytes: all files together are bounded by the weights limit. */
static int mr_weights_data(struct mr_up *u, const char *d, size_t n)
{
    if (u->size + n > mr_max(u->ctx)) {
        u->too_big = true;
        return ERR_LIMIT;
    }
    u->size += n;
    if (u->mp && u->n_files)
        u->fsize[u->n_files - 1] += n;
    return mr_emit(u, d, n);
}

/* The file name a multipart part carries, or NULL when the part is not a
 * file: a name with a dot ("det.onnx") is the file name; else the
 * filename attribute's last path segment; else "weights" / "file" (the
 * ONNX of a single-file upload). */
static const char *mr_file_name(const struct http_mp_part *p, const char *name)
{
    if (strchr(name, '.'))
        return name;
    if (p->filename) {
        const char *f = p->filename, *slash = strrchr(f, '/'), *bs = strrchr(f, '\\');
        if (bs && (!slash || bs > slash))
            slash = bs;
        return slash ? slash + 1 : f;
    }
    if (!strcmp(name, "weights") || !strcmp(name, "file"))
        return "weights.onnx";
    return NULL;
}

static int mr_part_begin(void *arg, const struct http_mp_part *p)
{
    struct mr_up *u = arg;
    const char *name = p->name ? p->name : "";

    u->part = MR_SKIP;
    if (!strcmp(name, "metadata")) {
        if (u->have_meta) {
            snprintf(u->bad, sizeof u->bad, "the form has two \"metadata\" parts");
            return ERR_INVALID;
        }
        u->have_meta = true;
        u->part = MR_META;
        return 0;
    }
    const char *fn = mr_file_name(p, name);
    if (!fn)
        return 0; /* not a file: ignored */
    if (!model_bundle_name_ok(fn)) {
        snprintf(u->bad, sizeof u->bad, "file name '%.80s' of part '%.80s' is not accepted (letters, digits, '.', "
                 "'-', '_', at most %d characters, not starting with '.')", fn, name, MODEL_BUNDLE_NAME_MAX);
        return ERR_INVALID;
    }
    for (size_t i = 0; i < u->n_files; i++)
        if (!strcmp(u->names[i], fn)) {
            snprintf(u->bad, sizeof u->bad, "the form has two files named '%s'", fn);
            return ERR_INVALID;
        }
    if (u->n_files == MODEL_BUNDLE_MAX_FILES) {
        snprintf(u->bad, sizeof u->bad, "the form has more than %d files", MODEL_BUNDLE_MAX_FILES);
        return ERR_LIMIT;
    }
    memcpy(u->names[u->n_files], fn, strlen(fn) + 1);
    u->hdr_off[u->n_files] = u->off;
    u->fsize[u->n_files] = 0;
    u->n_files++;
    u->have_weights = true;
    u->part = MR_WEIGHTS;
    return mr_emit(u, mr_zeros, MR_HDR); /* the header, written at the part's end */
}

static int mr_part_data(void *arg, const char *d, size_t n)
{
    struct mr_up *u = arg;
    if (u->part == MR_WEIGHTS)
        return mr_weights_data(u, d, n);
    if (u->part == MR_META) {
        if (u->meta.len + n > MR_META_MAX) {
            u->meta_too_big = true;
            return ERR_LIMIT;
        }
        buf_append(&u->meta, d, n);
    }
    return 0;
}

static int mr_part_end(void *arg)
{
    struct mr_up *u = arg;
    int rc = 0;
    if (u->part == MR_WEIGHTS) {
        /* pad the entry, then write its header now that its size is known */
        size_t i = u->n_files - 1, pad = (size_t)(u->fsize[i] % MR_HDR);
        char hdr[MR_HDR];
        if ((pad && (rc = mr_emit(u, mr_zeros, MR_HDR - pad)) < 0) || (rc = mr_flush(u)) < 0)
            goto out;
        model_bundle_header(hdr, u->names[i], u->fsize[i]);
        if (pwrite(u->fd, hdr, MR_HDR, (off_t)u->hdr_off[i]) != MR_HDR)
            rc = u->write_err = errno ? -errno : -EIO;
    }
out:
    u->part = MR_SKIP;
    return rc;
}

static int mr_begin(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    const char *ct = http_req_header(req, "Content-Type");
    struct mr_up *u;
    int rc;

    u = xcalloc(1, sizeof(*u));
    u->fd = -1;
    u->ctx = ctx;
    u->meta = (struct buf)BUF_INIT;
    http_req_set_state(req, u, mr_up_free);
    if (api_auth(req, ctx, u->ws) < 0 || mr_have_registry(req, ctx) < 0)
        return 0;
    if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
        struct http_mp_cb cb = {mr_part_begin, mr_part_data, mr_part_end, u};
        if (http_multipart_new(ct, &cb, &u->mp) < 0)
            return http_reply_error(req, 400, "expected a multipart/form-data body with a boundary");
    } else {
        /* a raw body cannot be larger than the weights limit */
        int64_t cl = http_req_content_length(req);
        if (cl > 0 && (uint64_t)cl > mr_max(ctx))
            return http_reply_error(req, 413, "model weights are over the limit of %llu bytes",
                                    (unsigned long long)mr_max(ctx));
    }
    struct err e = ERR_INIT;
    int64_t need = http_req_content_length(req);
    /* the weights and their stored copy */
    if ((rc = store_space_check(ctx->st, need > 0 ? 2 * need : 0, "this model", &e)) < 0)
        return api_reply_err(req, rc, &e);
    rc = store_tmp_create(ctx->st, &u->tmp_path, &u->fd);
    if (rc < 0)
        return api_reply_errf(req, rc, "cannot create a temp file: %s", err_str(rc));
    return 0;
}

static int mr_body(struct http_req *req, const char *d, size_t n, void *vctx)
{
    struct mr_up *u = http_req_state(req);
    int rc;
    (void)vctx;

    if (http_req_replied(req))
        return 0;
    if (u->mp) {
        rc = http_multipart_feed(u->mp, d, n);
        if (rc == ERR_AGAIN)
            rc = 0;
    } else {
        rc = mr_weights_data(u, d, n);
    }
    if (rc == 0)
        return 0;
    if (u->too_big)
        return http_reply_error(req, 413, "model weights are over the limit of %llu bytes",
                                (unsigned long long)mr_max(u->ctx));
    if (u->meta_too_big)
        return http_reply_error(req, 413, "model metadata is over the limit of %u bytes", MR_META_MAX);
    if (u->bad[0])
        return http_reply_error(req, 400, "%s", u->bad);
    if (u->write_err)
        return api_reply_errf(req, u->write_err, "cannot write the upload: %s", err_str(u->write_err));
    return http_reply_error(req, 400, "malformed multipart body: %s", err_str(rc));
}

/* Parse the metadata text (may be NULL: none).  0 and *out (may stay
 * NULL), or replied 400. */
static int mr_meta_parse(struct http_req *req, const char *text, size_t len, json_t **out)
{
    json_t *meta = NULL;
    char err[300];

    *out = NULL;
    if (!text || len == 0)
        return 0;
    if (len > MR_META_MAX) {
        http_reply_error(req, 413, "model metadata is over the limit of %u bytes", MR_META_MAX);
        return ERR_LIMIT;
    }
    int rc = json_parse_outside(text, len, JSON_REJECT_DUPLICATES, &meta, err, sizeof err);
    if (rc == ERR_LIMIT) {
        http_reply_error(req, 400, "model metadata is %s", err);
        return ERR_PARSE;
    }
    if (rc < 0) {
        http_reply_error(req, 400, "model metadata is not valid JSON: %s", err);
        return ERR_PARSE;
    }
    if (!json_is_object(meta)) {
        json_decref(meta);
        http_reply_error(req, 400, "model metadata must be a JSON object");
        return ERR_INVALID;
    }
    *out = meta;
    return 0;
}

static int mr_end(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct mr_up *u = http_req_state(req);
    struct model *m = NULL;
    json_t *meta = NULL;
    void *map = MAP_FAILED;
    char err[1024];
    const char *id = mr_id(req);
    int rc;

    if (http_req_replied(req)) /* begin or body replied already */
        return 0;
    if (!u || u->fd < 0)
        return http_reply_error(req, 500, "upload state lost");
    if (u->mp && http_multipart_finish(u->mp) < 0)
        return http_reply_error(req, 400, "malformed multipart body: it ends before the closing boundary");
    if (u->mp && !u->have_weights)
        return http_reply_error(req, 400, "the multipart body has no weights part (name it \"weights\")");
    if (u->mp && mr_emit(u, mr_zeros, 2 * MR_HDR) < 0) /* the bundle's end blocks */
        return api_reply_errf(req, u->write_err, "cannot write the upload: %s", err_str(u->write_err));
    if (mr_flush(u) < 0)
        return api_reply_errf(req, u->write_err, "cannot write the upload: %s", err_str(u->write_err));
    if (u->size == 0 || (u->mp && u->n_files == 1 && u->fsize[0] == 0))
        return http_reply_error(req, 400, "empty model: the body holds no ONNX bytes");
    for (size_t i = 0; u->n_files > 1 && i < u->n_files; i++)
        if (u->fsize[i] == 0)
            return http_reply_error(req, 400, "file '%s' of the form is empty", u->names[i]);
    if (u->mp && u->have_meta) {
        rc = mr_meta_parse(req, u->meta.data, u->meta.len, &meta);
    } else {
        const char *q = http_req_query(req, "metadata");
        if (!q)
            q = http_req_header(req, "X-Model-Metadata");
        rc = mr_meta_parse(req, q, q ? strlen(q) : 0, &meta);
    }
    if (rc < 0)
        return 0;
    if (mr_operator_guard(req, ctx, u->ws, id, "replaced") < 0) {
        json_decref(meta);
        return 0;
    }
    rc = model_registry_runtime_check(ctx->models, err, sizeof err);
    if (rc < 0) {
        json_decref(meta);
        return http_reply_error(req, 503, "cannot register models: %s", err);
    }
    map = mmap(NULL, (size_t)u->off, PROT_READ, MAP_PRIVATE, u->fd, 0);
    if (map == MAP_FAILED) {
        json_decref(meta);
        return http_reply_error(req, 500, "cannot map the upload: %s", strerror(errno));
    }
    /* two uploads of one id at once each write their own generation; the
     * last row switch wins, whole.  The runtime is there (checked above): a
     * model that does not load or check is ERR_INVALID (400); storing it
     * fails with the store's codes (503, 507, 500). */
    struct err e = ERR_INIT;
    /* raw body: the file is the ONNX; one file part: its entry's bytes;
     * several: the whole file, a bundle */
    const char *bytes = map;
    size_t len = (size_t)u->off;
    if (u->mp && u->n_files == 1) {
        bytes += MR_HDR;
        len = (size_t)u->fsize[0];
    }
    rc = jobs_models_store_put(ctx->st, ctx->models, u->ws, id, bytes, len, meta, &e);
    munmap(map, (size_t)u->off);
    json_decref(meta);
    if (rc < 0)
        return api_reply_err(req, rc, &e);
    rc = model_registry_get(ctx->models, u->ws, id, &m, err, sizeof err);
    if (rc < 0) /* replaced and gone in between: still registered once */
        return http_reply_json(req, 200, json_pack("{s:s,s:s}", "status", "ok", "modelId", id));
    json_t *out = mr_summary(m);
    model_unref(m);
    if (!out)
        return http_reply_json(req, 200, json_pack("{s:s,s:s}", "status", "ok", "modelId", id));
    json_object_set_new(out, "status", json_string("ok"));
    return http_reply_json(req, 200, out);
}

/* ---- delete ---------------------------------------------------------------------------- */

static int mr_delete(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    const char *id = mr_id(req);
    struct err e = ERR_INIT;

    if (api_auth(req, ctx, ws) < 0 || mr_have_registry(req, ctx) < 0)
        return 0;
    int rc = jobs_models_store_delete(ctx->st, ctx->models, ws, id, &e);
    if (rc == ERR_NOTFOUND) {
        /* not a stored model of this workspace: the operator's (stored or
         * a models folder's), or nothing this workspace may know of */
        if (mr_operator_guard(req, ctx, ws, id, "deleted") < 0)
            return 0;
        return http_reply_error(req, 404, "unknown model '%s' (not registered in workspace '%s')", id, ws);
    }
    if (rc < 0)
        return api_reply_err(req, rc, &e);
    return http_reply_json(req, 200, json_pack("{s:s,s:s}", "status", "ok", "modelId", id));
}

int api_models_register(struct http_router *r, struct api_ctx *ctx)
{
    struct http_route_ops del = {.end = mr_delete};
    struct http_route_ops up = {.begin = mr_begin, .body = mr_body, .end = mr_end,
                                .max_body = mr_max(ctx) + MR_META_MAX + MR_FRAMING};
    int rc = http_router_get(r, MR, mr_list, ctx);
    if (rc == 0)
        rc = http_router_get(r, MR "/{model_id*}", mr_get, ctx);
    if (rc == 0)
        rc = http_router_add(r, "PUT", MR "/{model_id*}", &up, ctx);
    if (rc == 0)
        rc = http_router_add(r, "POST", MR "/{model_id*}", &up, ctx);
    if (rc == 0)
        rc = http_router_add(r, "DELETE", MR "/{model_id*}", &del, ctx);
    return rc;
}
