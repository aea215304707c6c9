/*
 * worker.c — the worker loop and the processing stage.
 *
 * A worker thread loops: claim a task (jobs_claim: one transaction that
 * sets the lease owner and deadline), run it, complete it (one
 * transaction).  While running it renews the lease every heartbeat_ms and
 * adds the machine time spent to the job; a heartbeat that finds the lease
 * lost, the job no longer running (abort, timeout, failure rate) or the
 * service stopping makes the worker drop the task at once, leaving
 * nothing visible: outputs are written through blob writers (temp file +
 * rename) that are aborted.
 *
 * Processing task: the image items (metadata items excluded, like the
 * planner) with ids in (after_id, last_id] of the input batch/part, each
 * read from the blob store, decoded, run (with per-image parameters from
 * its sidecar "<name>.json" when the job has imagesMetadataInputsMapping,
 * see meta_params) through the
 * workflow (compiled once per worker and cached by job), serialized as a
 * results row with images deducted plus "image": <file name> (WORKFLOWS.md
 * 3.4), one JSON line per image into
 *   jobs/<ws>/<job>/processing/task-NNNNN.jsonl          (results)
 *   jobs/<ws>/<job>/processing/task-NNNNN.images.jsonl   (persisted images manifest)
 *   jobs/<ws>/<job>/processing/task-NNNNN.errors.jsonl   (failed images: image, stage, cause)
 *   jobs/<ws>/<job>/images/tNNNNN/<item id>/<key path>.jpg (persisted images)
 * Without maxImageFailureRate the failure budget applies: JOBS_FAIL_BUDGET
 * consecutive images failing with the same cause stop the task and fail
 * the job (jobs__task_fail_job); in a video, as many frames stop the video.
 * Every key depends only on the task, so a task run again after a crash
 * overwrites its outputs instead of adding to them.  The results file is
 * registered in the <job>-processing output batch (once: the part is
 * searched by name first).
 */
#include "jobs/jobs_int.h"

#include <curl/curl.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_INPUT_BYTES (256ll << 20) /* largest staged image read */

void jobs__throttle(struct jobs *j)
{
    if (j->o.item_delay_ms > 0) {
        struct timespec ts = {j->o.item_delay_ms / 1000, (j->o.item_delay_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

void jobs__worker_release(struct jobs__worker *w)
{
    wf_free(w->wf);
    w->wf = NULL;
    w->wf_job_pk = 0;
}

int jobs__output_ensure(struct jobs *j, const char *ws, const char *batch, const char *part,
                        const char *content_type, const char *description, const char *file_name,
                        const char *item_type, const char *mime, const char *key, int64_t size, struct err *err)
{
    int rc = staging_output_batch_create(j->sg, ws, batch, batch, err);
    if (rc < 0 && rc != ERR_EXISTS) {
        return err_prefix(err, rc, "cannot create output batch '%s'", batch);
    }
    /* The only archives a job writes are the export's .tar.gz of persisted
     * image outputs: their part says so with nestedContentType "image". */
    const char *nested = !strcmp(content_type, "archives") ? "image" : NULL;
    rc = staging_output_part_add(j->sg, ws, batch, part, "file-part", content_type, description, nested, err);
    if (rc < 0) {
        return err_prefix(err, rc, "cannot add part '%s' to '%s'", part, batch);
    }
    if (!file_name)
        return 0;
    int64_t after = 0;
    for (;;) {
        struct staging_item *it = NULL;
        int n = 0;
        rc = staging_items_page(j->sg, ws, batch, part, after, 1000, &it, &n, err);
        if (rc < 0) {
            return err_prefix(err, rc, "cannot list '%s'", batch);
        }
        bool found = false;
        for (int i = 0; i < n && !found; i++) {
            found = !strcmp(it[i].name, file_name);
            after = it[i].id;
        }
        staging_items_free(it, n);
        if (found)
            return 0;
        if (n < 1000)
            break;
    }
    rc = staging_output_item_add(j->sg, ws, batch, part, file_name, item_type, mime, key, size, err);
    if (rc < 0)
        err_prefix(err, rc, "cannot register '%s' in '%s'", file_name, batch);
    return rc;
}

/* Replace what blob keys do not accept. */
static void key_sanitize(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-' || *s == '/'))
            *s = '_';
}

static bool persist_wanted(const json_t *list, const char *path)
{
    if (!list)
        return true;
    size_t top = strcspn(path, "/");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *s = json_string_value(e);
        if (s && strlen(s) == top && !strncmp(s, path, top))
            return true;
    }
    return false;
}

static int writer_puts(struct store_blob_writer *w, const char *s, size_t n)
{
    return store_blob_writer_write(w, s, n);
}

struct img_result {
    char *cause;   /* owned message when the image failed */
};

/* A failed read that is the image's own: missing, too large, a bad key, or
 * bytes its blob does not have (ERR_PARSE: cut short, damaged); anything
 * else is the store's (the task is handed back). */
static bool read_fault_is_image(int rc)
{
    return rc == ERR_NOTFOUND || rc == ERR_LIMIT || rc == ERR_INVALID || rc == ERR_PARSE;
}

/* Per-image parameters (imagesMetadataInputsMapping): *out = a copy of
 * base with W = sidecar[K] for each mapping entry {W: K} whose key the
 * sidecar "<image name>.json" of the metadata part has; *out stays NULL
 * when the image has no sidecar (base applies as is).  A sidecar that
 * cannot be parsed, or read for a reason of its own (read_fault_is_image),
 * sets *cause (the image fails) and returns 0; the database or the blob
 * store failing is not the image's fault: <0 with err set (the task is
 * handed back, as for the image's own bytes). */
static int meta_params(struct jobs *j, const struct jobs__job *jb, const struct staging_item *it,
                       const json_t *base, json_t **out, char **cause, struct err *err)
{
    struct staging_item sc;
    char *name = xasprintf("%s.json", it->name);
    char *data = NULL;
    size_t len = 0;
    json_t *meta = NULL, *v;
    const char *k;
    struct err e = ERR_INIT;
    int rc = staging_item_find(j->sg, jb->ws, jb->batch, jb->meta_part, name, &sc, &e);

    *out = NULL;
    if (rc == ERR_NOTFOUND)
        goto out; /* no sidecar: the job's parameters (or the workflow defaults) apply */
    if (rc < 0) {
        err_printf(err, "cannot look up the metadata file '%s' in part '%s': %s", name, jb->meta_part,
                   err_text(&e, rc));
        goto out;
    }
    rc = store_blob_read_at(j->st, sc.blob_key, sc.offset, sc.size, STAGING_SIDECAR_MAX, &data, &len);
    if (rc < 0 && !read_fault_is_image(rc)) {
        err_printf(err, "cannot read the metadata file '%s': %s", name, err_str(rc));
        goto out;
    }
    if (rc < 0) {
        *cause = xasprintf("cannot read the metadata file '%s': %s", name, err_str(rc));
        rc = 0;
        goto out;
    }
    char e2[300];
    if (json_parse_outside(data, len, 0, &meta, e2, sizeof e2) < 0 || !json_is_object(meta)) {
        *cause = xasprintf("cannot parse the metadata file '%s': %s", name,
                           meta ? "it is not a JSON object" : e2);
        goto out;
    }
    *out = base ? json_deep_copy(base) : json_object();
    json_object_foreach(jb->meta_map, k, v)
    {
        json_t *mv = json_object_get(meta, json_string_value(v));
        if (mv)
            json_object_set(*out, k, mv);
    }
out:
    if (*cause)
        log_warn("jobs", "job=%s image=%s failed: %s", jb->job_id, it->name, *cause);
    staging_item_release(&sc);
    json_decref(meta);
    free(data);
    free(name);
    return rc < 0 && rc != ERR_NOTFOUND && !*cause ? rc : 0;
}

/* Run one image.  Writes the results line and the persisted images.
 * Returns 0 (also when the image failed: *cause set), <0 on a store
 * failure that fails the task. */
/* ---- decode-ahead --------------------------------------------------------------------------- */

/* One staged image read and decoded on the lookahead thread (base.h) while
 * the worker thread runs the workflow over the previous one: JPEG decoding
 * is ~10% of the work per image for a YOLOv8n-sized model on CPU and most
 * of it on a GPU, and ONNX Runtime rarely keeps every core busy, so this
 * hides most of it (bench/bench_model: "pipelined").  Depth 1: at most one
 * decoded image waits per worker, so memory stays at two images. */
struct fetched {
    struct vis_image *img;
    char *cause;          /* why the image cannot be used (a per-image failure) */
    int store_rc;         /* <0: the blob store failed (unreachable, I/O): not the
                             image's fault, the task is handed back */
    long long frame;      /* a video frame: its 1-based number; 0 for an image */
    json_t *video_meta;   /* a video frame: its video_metadata (owned) */
    struct wf_state *state; /* a video frame: the video's block state (borrowed) */
    bool end;             /* a video: no more frames (cause set: it broke) */
};

/* The images of one tar shard lie one after the other in its blob (a
 * 512-byte header and the padding between two): the decode-ahead thread
 * reads a run of them with one ranged read — on S3 one range GET instead
 * of one per image — of at most SPAN_MAX bytes and SPAN_ITEMS images, two
 * of them at most SPAN_GAP bytes apart (a sidecar between them is read
 * along).  A run whose bytes its blob does not have is read image by
 * image, so such a failure stays the image's own; a run the store fails
 * to give hands the task back (span_bytes). */
#define SPAN_MAX (4 << 20)
#define SPAN_ITEMS 64
#define SPAN_GAP 4096

struct fetch_span {
    const char *key; /* the blob (an item's, borrowed), NULL: none read */
    int64_t off;     /* data = bytes [off, off + len) of key */
    size_t len;
    char *data;      /* NULL: that run could not be read */
};

struct fetch_ctx {
    struct jobs *j;
    const struct staging_item *items;
    const struct wf_workflow *wf; /* immutable: safe to read from that thread */
    const char *input;            /* the workflow's image input */
    wf_model_prepare_fn prepare;  /* NULL: decode only */
    void *prepare_ud;
    size_t n;                     /* items[0, n) are read */
    struct fetch_span span;       /* the lookahead thread's alone */
};

static void fetched_free(void *p)
{
    struct fetched *f = p;
    vis_image_free(f->img);
    free(f->cause);
    json_decref(f->video_meta);
    free(f);
}

/* The frames of one video, decoded (and pre-processed for the model steps)
 * on the lookahead thread, which owns the iterator until it is stopped. */
struct frame_ctx {
    struct vis_video *v;
    const struct vis_video_info *info;
    const char *name;             /* the video's file name */
    const struct wf_workflow *wf;
    const char *input;
    wf_model_prepare_fn prepare;
    void *prepare_ud;
    bool ended;
};

static void *fetch_frame(void *ud, size_t i)
{
    struct frame_ctx *c = ud;
    struct fetched *f = xcalloc(1, sizeof(*f));
    struct vis_frame_meta fm;
    int nr;

    if (c->ended) {
        f->end = true;
        return f;
    }
    nr = vis_video_next(c->v, &f->img, &fm);
    if (nr <= 0) {
        c->ended = f->end = true;
        if (nr < 0)
            f->cause = xasprintf("cannot decode the video after %zu frames: %s", i, err_str(nr));
        return f;
    }
    char ts[TIME_ISO_LEN];
    time_iso8601(time_now_ms(), ts);
    f->frame = fm.index + 1;
    f->video_meta = json_pack("{s:s,s:I,s:s,s:f,s:f,s:b}", "video_identifier", c->name, "frame_number",
                              (json_int_t)f->frame, "frame_timestamp", ts, "fps", c->info->fps, "measured_fps",
                              c->info->fps, "comes_from_video_file", 1);
    if (c->prepare)
        wf_prepare_input(c->wf, c->input, f->img, c->prepare, c->prepare_ud);
    return f;
}

static bool span_has(const struct fetch_span *sp, const struct staging_item *it)
{
    return sp->key && it->offset >= 0 && !strcmp(sp->key, it->blob_key) && it->offset >= sp->off &&
           it->size <= (int64_t)sp->len && it->offset - sp->off <= (int64_t)sp->len - it->size;
}

/* Item i's bytes from the run read with it (span above), reading the run
 * that starts at i when i is not in the last one; NULL when i is not part
 * of a run of two or more images or the run cannot be read.  When that read
 * fails for the store (not for the run's bytes, not for memory), *store_rc
 * is set: item i's own read would fail the same way after the same retries,
 * so it is not tried again and the task is handed back at once. */
static const char *span_bytes(struct fetch_ctx *c, size_t i, int *store_rc)
{
    const struct staging_item *it = &c->items[i];
    struct fetch_span *sp = &c->span;
    if (it->offset < 0 || it->size < 0 || it->size > SPAN_MAX)
        return NULL;
    if (!span_has(sp, it)) {
        int64_t end = it->offset + it->size;
        size_t k = i + 1;
        for (; k < c->n && k - i < SPAN_ITEMS; k++) {
            const struct staging_item *nx = &c->items[k];
            if (nx->offset < end || nx->offset - end > SPAN_GAP || nx->size < 0 ||
                nx->offset + nx->size - it->offset > SPAN_MAX || strcmp(nx->blob_key, it->blob_key) != 0)
                break;
            end = nx->offset + nx->size;
        }
        free(sp->data);
        *sp = (struct fetch_span){0};
        if (k == i + 1) /* a run of one: the image's own read */
            return NULL;
        char *data = NULL;
        size_t got = 0;
        int rc = store_blob_read_at(c->j->st, it->blob_key, it->offset, end - it->offset, SPAN_MAX, &data, &got);
        /* a run that cannot be read is kept as such (data NULL): its
         * images are read one by one, without trying the run again */
        *sp = (struct fetch_span){it->blob_key, it->offset, rc < 0 ? (size_t)(end - it->offset) : got,
                                  rc < 0 ? NULL : data};
        if (rc < 0 && rc != ERR_NOMEM && !read_fault_is_image(rc)) {
            *store_rc = rc;
            return NULL;
        }
        if (!span_has(sp, it))
            return NULL;
    }
    return sp->data ? sp->data + (it->offset - sp->off) : NULL;
}

static void *fetch_one(void *ud, size_t i)
{
    struct fetch_ctx *c = ud;
    struct fetched *f = xcalloc(1, sizeof(*f));
    char *data = NULL;
    size_t len = 0;
    const struct staging_item *it = &c->items[i];
    int rc = 0;
    const char *bytes = span_bytes(c, i, &rc);

    if (bytes) {
        len = (size_t)it->size;
    } else if (rc == 0) {
        rc = store_blob_read_at(c->j->st, it->blob_key, it->offset, it->size, MAX_INPUT_BYTES, &data, &len);
        bytes = data;
    }
    if (rc < 0) {
        f->cause = xasprintf("cannot read the staged file: %s", err_str(rc));
        if (!read_fault_is_image(rc))
            f->store_rc = rc;
        return f;
    }
    rc = vis_decode(bytes, len, &f->img);
    if (rc < 0)
        f->cause = xasprintf("cannot decode the image: %s", err_str(rc));
    else if (c->prepare) /* the model steps' pre-processing, off the critical path too */
        wf_prepare_input(c->wf, c->input, f->img, c->prepare, c->prepare_ud);
    free(data);
    return f;
}

/* webhook_sink's delivery: the durable outbox, one row per notification. */
struct sink_ctx {
    struct jobs *j;
    const struct jobs__job *jb;
    long long item_id, frame;
    const char *name; /* the item's file name */
    bool video;       /* frame is a video's frame number */
};

/* The job reference of a sink's outbox row (store_outbox_job): the image
 * (and the frame of a video) and the step, which the job's log shows if
 * the delivery fails for good.  NULL (no log line then) when it cannot
 * be written.  Caller frees. */
static char *sink_job_ref(const struct sink_ctx *sc, const char *step)
{
    json_t *r = json_pack("{s:s, s:s}", "file_path", sc->name ? sc->name : "", "step", step);
    if (r && sc->video)
        json_object_set_new(r, "frame", json_integer(sc->frame));
    char *t = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    if (t && strlen(t) > STORE_OUTBOX_JOB_REF_MAX) {
        free(t);
        t = NULL;
    }
    return t;
}

static int sink_webhook_req(void *ud, const char *step, const char *url, const char *payload, const char *req,
                            char *err, size_t errlen);

static int sink_webhook(void *ud, const char *step, const char *url, const char *payload, char *err,
                        size_t errlen)
{
    return sink_webhook_req(ud, step, url, payload, NULL, err, errlen);
}

/* req: NULL for a JSON POST, else webhook_sink's method/headers/form/files
 * (store_outbox_enqueue_once). */
static int sink_webhook_req(void *ud, const char *step, const char *url, const char *payload, const char *req,
                            char *err, size_t errlen)
{
    struct sink_ctx *sc = ud;
    const char *why = NULL;
    if (store_net_check_url(sc->j->st, url, &why) < 0) {
        snprintf(err, errlen, "url refused: %s", why ? why : "not allowed");
        return ERR_INVALID;
    }
    json_t *p = json_loads(payload, 0, NULL);
    if (!json_is_object(p)) {
        json_decref(p);
        snprintf(err, errlen, "the payload is not a JSON object");
        return ERR_INVALID;
    }
    /* a task retried after a crash sends the notification again: the
     * receiver drops the repeats by this key */
    if (!json_object_get(p, "idempotency_key"))
        json_object_set_new(p, "idempotency_key", json_sprintf("%s/%lld/%lld/%s", sc->jb->job_id, sc->item_id,
                                                               sc->frame, step));
    char *text = json_dumps(p, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(p);
    /* queued once per job, image, frame and step: a task retried after a
     * crash finds the key and queues nothing.  The job is its row (pk,
     * never reused), not its id: a job deleted and created again under the
     * same id over the same batch is a new job whose sinks deliver again. */
    char *once = xasprintf("sink/%lld/%lld/%lld/%s", (long long)sc->jb->pk, sc->item_id, sc->frame, step);
    char *ref = sink_job_ref(sc, step);
    struct store_outbox_job job = {sc->jb->pk, ref};
    bool queued = false;
    int rc = text ? store_outbox_enqueue_once(sc->j->st, once, url, sc->jb->ws, text, req, true, ref ? &job : NULL,
                                              &queued)
                  : ERR_NOMEM;
    free(ref);
    free(once);
    free(text);
    if (rc < 0)
        snprintf(err, errlen, "cannot queue the webhook: %s", err_str(rc));
    return rc;
}

/* s3_sink's delivery: a PUT into the operator's bucket (--sink-s3) queued
 * in the durable outbox once per job row, image, frame and step (the once
 * key is written in the same transaction as the row), so a task retried
 * after a crash queues nothing new and the PUT happens after the step even
 * when the process dies before the task's result is committed.  The key is
 * the same each time this image and step run: a PUT repeated by the
 * sender (a lost answer, a sender that died mid-PUT) overwrites the same
 * object with the same bytes. */
static int sink_s3(void *ud, const char *step, const char *bucket, const char *dir, const char *name,
                   const char *ext, const char *data, size_t len, char *key, size_t keylen, char *err,
                   size_t errlen)
{
    struct sink_ctx *sc = ud;
    struct store_s3sink *k = sc->j->o.sink_s3;
    if (!k) {
        snprintf(err, errlen, "no bucket configured for s3_sink (--sink-s3)");
        return ERR_UNSUPPORTED;
    }
    if (strcmp(bucket, store_s3sink_bucket(k)) != 0) {
        snprintf(err, errlen, "bucket '%.255s' refused: s3_sink writes only to the operator's bucket '%s'", bucket,
                 store_s3sink_bucket(k));
        return ERR_INVALID;
    }
    int n = snprintf(key, keylen, "%s%s%s_%s_%lld_%lld_%s.%s", dir, *dir ? "/" : "", name, sc->jb->job_id,
                     sc->item_id, sc->frame, step, ext);
    if (n < 0 || (size_t)n >= keylen) {
        snprintf(err, errlen, "object key too long");
        return ERR_LIMIT;
    }
    char *b64 = base64_encode(data, len);
    json_t *req = json_pack("{s:s, s:s, s:s}", "kind", "s3_put", "key", key, "data", b64);
    json_t *p = json_pack("{s:s, s:s}", "bucket", bucket, "key", key);
    char *rtext = req ? json_dumps(req, JSON_COMPACT) : NULL;
    char *ptext = p ? json_dumps(p, JSON_COMPACT) : NULL;
    char *url = xasprintf("s3sink:%s/%s", bucket, key); /* names the row; the sender PUTs with the s3 client */
    char *once = xasprintf("sink/%lld/%lld/%lld/%s", (long long)sc->jb->pk, sc->item_id, sc->frame, step);
    char *ref = sink_job_ref(sc, step);
    struct store_outbox_job job = {sc->jb->pk, ref};
    bool queued = false;
    int rc = rtext && ptext ? store_outbox_enqueue_once(sc->j->st, once, url, sc->jb->ws, ptext, rtext, false,
                                                        ref ? &job : NULL, &queued)
                            : ERR_INVALID; /* not UTF-8 */
    free(ref);
    if (rc < 0)
        snprintf(err, errlen, "cannot queue the object: %s", err_str(rc));
    free(once);
    free(url);
    free(rtext);
    free(ptext);
    json_decref(req);
    json_decref(p);
    free(b64);
    return rc;
}

/* email_notification's delivery: SMTP with libcurl, now, on this thread
 * (465: implicit TLS; other ports: STARTTLS when the server offers it),
 * connecting only where the store's SSRF guard lets reference URLs go.
 * A task retried after a crash sends again: the Message-ID is the same
 * idempotency key, so mail clients drop the repeat. */
struct mail_src {
    const char *p;
    size_t left;
};

static size_t mail_read(char *buf, size_t sz, size_t n, void *ud)
{
    struct mail_src *m = ud;
    size_t k = sz * n < m->left ? sz * n : m->left;
    memcpy(buf, m->p, k);
    m->p += k;
    m->left -= k;
    return k;
}

static int sink_email(void *ud, const char *step, const struct wf_email *m, char *err, size_t errlen)
{
    struct sink_ctx *sc = ud;
    CURL *c = curl_easy_init();
    struct curl_slist *rcpt = NULL;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    char *msg = xasprintf("Date: %s\r\nMessage-ID: <%s.%lld.%lld.%s@vbatch>\r\n%s", date, sc->jb->job_id,
                          sc->item_id, sc->frame, step, m->message);
    char *url = xasprintf("%s://%s:%d", m->port == 465 ? "smtps" : "smtp", m->server, m->port);
    char *from = xasprintf("<%s>", m->from);
    struct mail_src src = {msg, strlen(msg)};
    int rc = 0;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        rc = ERR_NOMEM;
        goto out;
    }
    for (size_t k = 0; k < m->nrcpt; k++) {
        char *a = xasprintf("<%s>", m->rcpt[k]);
        rcpt = curl_slist_append(rcpt, a);
        free(a);
    }
    store_net_guard_curl(sc->j->st, c);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, mail_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (m->password) {
        curl_easy_setopt(c, CURLOPT_USERNAME, m->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, m->password);
    }
    CURLcode cr = curl_easy_perform(c);
    if (cr != CURLE_OK) {
        snprintf(err, errlen, "SMTP to %s:%d failed: %s", m->server, m->port, curl_easy_strerror(cr));
        rc = ERR_UNAVAILABLE;
    }
out:
    curl_slist_free_all(rcpt);
    if (c)
        curl_easy_cleanup(c);
    free(msg);
    free(url);
    free(from);
    return rc;
}

/* onvif_sink's SOAP POST (wf_sinks.soap): http only, no redirects, the
 * store's SSRF guard (the camera's address must be allowed like any
 * outbound URL: --url-allowlist / --allow-private-urls), 3 s to connect,
 * 5 s in all, the answer capped at 1 MiB. */
static size_t soap_write(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) < 0 ? 0 : sz * n;
}

static int sink_soap(void *ud, const char *url, const char *action, const char *envelope, int *status, char **resp,
                     char *err, size_t errlen)
{
    struct sink_ctx *sc = ud;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b;
    buf_init(&b, 1u << 20);
    *resp = NULL;
    *status = 0;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    char *ct = xasprintf("Content-Type: application/soap+xml; charset=utf-8; action=\"%s\"", action);
    h = curl_slist_append(h, ct);
    free(ct);
    store_net_guard_curl(sc->j->st, c);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, envelope);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, soap_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode cr = curl_easy_perform(c);
    int rc = 0;
    if (cr != CURLE_OK) {
        snprintf(err, errlen, "%s", cr == CURLE_WRITE_ERROR ? "answer over 1 MiB" : curl_easy_strerror(cr));
        rc = ERR_UNAVAILABLE;
        buf_release(&b);
    } else {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        *status = (int)code;
        *resp = buf_detach(&b, NULL);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

/* Run the workflow over one decoded image (f, owned by the caller) and
 * append its results row (and persisted image outputs).  A per-image
 * failure sets *cause and returns 0; <0 only when the task cannot go on. */
static int process_item(struct jobs *j, struct jobs__worker *w, const struct jobs__job *jb, const struct store_task *t,
                        const struct staging_item *it, const struct fetched *f, const json_t *params,
                        const json_t *plist, struct store_blob_writer *rw, struct store_blob_writer *mw,
                        char **cause, struct err *err)
{
    char *line = NULL;
    const struct vis_image *img = f->img;
    json_t *results = NULL, *row = NULL;
    struct wf_image_output *imgs = NULL;
    size_t nimgs = 0;
    json_t *own_params = NULL;
    char why[512];
    int rc;

    *cause = NULL;
    if (f->store_rc < 0) { /* the store's, not the image's: checked first */
        err_printf(err, "%s", f->cause);
        rc = f->store_rc;
        goto out;
    }
    if (jb->meta_map) {
        if ((rc = meta_params(j, jb, it, params, &own_params, cause, err)) < 0)
            goto out;
        if (*cause) {
            rc = 0;
            goto out;
        }
        if (own_params)
            params = own_params;
    }
    if (f->cause) {
        *cause = xstrdup(f->cause);
        rc = 0;
        goto out;
    }
    {
        const struct vis_image *arr[1] = {img};
        struct wf_image_input in = {jb->image_input, arr, 1, false, f->video_meta};
        struct wf_run_inputs ri = {&in, 1, params};
        struct sink_ctx sc = {j, jb, (long long)it->id, f->frame, it->name,
                              it->content_type && !strcmp(it->content_type, "video")};
        char run_key[160];
        snprintf(run_key, sizeof run_key, "%s_%lld_%lld", jb->job_id, (long long)it->id, (long long)f->frame);
        struct wf_sinks sinks = {.file_root = j->o.sink_folder,
                                 .env_allow = j->o.secrets_env,
                                 .webhook = sink_webhook,
                                 .webhook_ud = &sc,
                                 .email = sink_email,
                                 .s3 = j->o.sink_s3 ? sink_s3 : NULL,
                                 .webhook_req = sink_webhook_req,
                                 .slack_api_url = j->o.slack_api_url,
                                 .soap = sink_soap,
                                 .run_key = run_key};
        struct wf_env env = {w->infer, w->infer_ud, 0, f->state, &sinks};
        rc = wf_run(w->wf, &env, &ri, &results, why, sizeof why);
        if (rc < 0 || !json_is_array(results) || json_array_size(results) < 1) {
            /* a step error may quote a remote answer (a camera's SOAP fault,
             * in any bytes) and is cut at 512 bytes, maybe inside a
             * character: the cause goes into JSON (errors file, job record),
             * which takes UTF-8 only */
            if (rc < 0)
                utf8_scrub(why);
            *cause = xasprintf("workflow error: %s", rc < 0 ? why : "no result");
            rc = 0;
            goto out;
        }
    }
    rc = wf_result_row(json_array_get(results, 0), &row, &imgs, &nimgs);
    if (rc < 0) {
        *cause = xasprintf("cannot serialise the result: %s", err_str(rc));
        rc = 0;
        goto out;
    }
    if (f->frame > 0)
        json_object_set_new(row, "frame_number", json_integer((json_int_t)f->frame));
    json_object_set_new(row, "image", json_string(it->name));
    line = json_dumps(row, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!line || (int64_t)strlen(line) > j->o.row_max_bytes) {
        *cause = xasprintf("results row is over the limit of %lld bytes", (long long)j->o.row_max_bytes);
        rc = 0;
        goto out;
    }
    if (mw) {
        for (size_t k = 0; k < nimgs; k++) {
            if (!persist_wanted(plist, imgs[k].path))
                continue;
            char *p = xstrdup(imgs[k].path);
            key_sanitize(p);
            char fdir[32] = "";
            if (f->frame > 0)
                snprintf(fdir, sizeof fdir, "f%07lld/", f->frame);
            char *key = xasprintf("jobs/%s/%s/images/t%05d/%lld/%s%s.jpg", jb->ws, jb->job_id, t->task_no,
                                  (long long)it->id, fdir, p);
            free(p);
            if (!store_blob_key_valid(key)) {
                free(key);
                continue;
            }
            rc = store_blob_put_nosync(j->st, key, imgs[k].jpeg, imgs[k].len);
            if (rc == 0) {
                char *arc = f->frame > 0 ? xasprintf("%s/%lld/%s.jpg", it->name, f->frame, imgs[k].path)
                                         : xasprintf("%s/%s.jpg", it->name, imgs[k].path);
                json_t *m = json_pack("{s:s,s:s,s:I}", "key", key, "arc", arc, "size", (json_int_t)imgs[k].len);
                char *ml = json_dumps(m, JSON_COMPACT);
                rc = writer_puts(mw, ml, strlen(ml));
                if (rc == 0)
                    rc = writer_puts(mw, "\n", 1);
                free(ml);
                json_decref(m);
                free(arc);
            }
            free(key);
            if (rc < 0) {
                err_printf(err, "cannot store an image output: %s", err_str(rc));
                goto out;
            }
        }
    }
    rc = writer_puts(rw, line, strlen(line));
    if (rc == 0)
        rc = writer_puts(rw, "\n", 1);
    if (rc < 0)
        err_printf(err, "cannot write the results: %s", err_str(rc));
out:
    json_decref(own_params);
    free(line);
    json_decref(results);
    json_decref(row);
    wf_image_outputs_free(imgs, nimgs);
    return rc;
}

/* One video of a video job: its frames — at most jb->max_fps per second of
 * video time — through the workflow, one results row each ("frame_number",
 * 1-based as in Roboflow's InferencePipeline, then "image": the video's
 * file name), with each frame's video_metadata.  A video that cannot be
 * opened, breaks part-way or has frames the workflow fails on sets *cause
 * (the rows of the good frames are kept) and counts as one failed item.
 * Returns <0 only when the task cannot go on (lease lost, storage). */
static int process_video(struct jobs *j, struct jobs__worker *w, const struct jobs__job *jb, const struct store_task *t,
                         const struct staging_item *it, const json_t *params, const json_t *plist,
                         struct store_blob_writer *rw, struct store_blob_writer *mw, struct jobs__hb *hb, int index,
                         int nitems, char **cause, struct err *err)
{
    /* A video is always a whole blob (tar shards hold images only). */
    char *path = NULL, *first_bad = NULL, *last_bad = NULL;
    struct vis_video *v = NULL;
    long long nframes = 0, nbad = 0, run = 0; /* run: consecutive frames failed with last_bad */
    /* ffmpeg wants a file: the blob's own, or a downloaded copy on S3 */
    int rc = it->offset < 0 ? store_blob_local_copy(j->st, it->blob_key, &path) : ERR_UNSUPPORTED;

    *cause = NULL;
    if (rc < 0 && rc != ERR_NOTFOUND) {
        err_printf(err, "cannot read the video '%s': %s", it->blob_key, err_str(rc));
        return rc;
    }
    if (rc == 0)
        rc = vis_video_open_file(path, jb->max_fps, &v);
    store_blob_local_release(j->st, path);
    if (rc < 0) {
        *cause = xasprintf("cannot open the video: %s", err_str(rc));
        return 0;
    }
    /* trackers and counters keep their state from frame to frame */
    struct wf_state *state = wf_state_new();
    const struct vis_video_info *info = vis_video_info(v);
    /* frames are decoded one ahead, as images are (fetch_frame) */
    struct frame_ctx fcx = {v, info, it->name, w->wf, jb->image_input, w->prepare, w->infer_ud, false};
    struct lookahead *ahead = NULL;
    if ((rc = lookahead_start(SIZE_MAX, 1, 10, fetch_frame, &fcx, &ahead)) < 0) {
        err_printf(err, "cannot start the decode-ahead thread: %s", err_str(rc));
        vis_video_free(v);
        wf_state_free(state);
        return rc;
    }
    double expect = info->frame_count > 0 ? (double)info->frame_count : 0;
    if (expect > 0 && jb->max_fps > 0 && info->fps > jb->max_fps)
        expect = expect * jb->max_fps / info->fps;
    for (;;) {
        double part = expect > 0 ? MIN(0.99, nframes / expect) : 0;
        rc = jobs__hb_tick(j, hb, t, w->owner, (index + part) / MAX(nitems, 1), false);
        if (rc < 0)
            break;
        jobs__throttle(j);
        struct fetched *f = lookahead_take(ahead, (size_t)nframes);
        if (f->end) {
            *cause = f->cause;
            f->cause = NULL;
            fetched_free(f);
            break;
        }
        char *fc = NULL;
        f->state = state;
        rc = process_item(j, w, jb, t, it, f, params, plist, rw, mw, &fc, err);
        fetched_free(f);
        nframes++;
        nbad += fc != NULL;
        run = !fc ? 0 : last_bad && !strcmp(fc, last_bad) ? run + 1 : 1;
        free(last_bad);
        last_bad = fc ? xstrdup(fc) : NULL;
        if (fc && !first_bad)
            first_bad = fc;
        else
            free(fc);
        if (rc < 0)
            break;
        if (run >= JOBS_FAIL_BUDGET) { /* the failure budget: a broken workflow stops the video */
            *cause = xasprintf("stopped after %lld consecutive frames failed with the same cause (%lld frames"
                               " processed): %s", run, nframes, last_bad);
            break;
        }
    }
    lookahead_stop(ahead, fetched_free); /* before the iterator it uses */
    vis_video_free(v);
    wf_state_free(state);
    if (rc >= 0 && nbad > 0 && !*cause)
        *cause = xasprintf("the workflow failed on %lld of %lld frames; the first: %s", nbad, nframes, first_bad);
    else if (rc >= 0 && nframes == 0 && !*cause)
        *cause = xasprintf("the video has no frame to process");
    free(first_bad);
    free(last_bad);
    return rc < 0 ? rc : 0;
}

/* wf_model_infer_fn when the job's machine type has no provider here
 * (ud: the message). */
static int infer_unavailable(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                             size_t n, json_t **out, char *err, size_t errlen)
{
    (void)req;
    (void)images;
    (void)n;
    (void)out;
    snprintf(err, errlen, "%s", (const char *)ud);
    return ERR_UNSUPPORTED;
}

/* inferenceBackend "old-inference" (ud: the worker): the request goes to
 * the job's provider with "nms_mode": "classic" added to its parameters,
 * so that detection models use the classic fast-NMS (docs/MODELS.md); a
 * step that sets nms_mode itself keeps it. */
static int infer_classic(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                         size_t n, json_t **out, char *err, size_t errlen)
{
    const struct jobs__worker *w = ud;
    json_t *params = json_is_object(req->params) ? json_copy((json_t *)req->params) : json_object();
    if (!json_object_get(params, "nms_mode"))
        json_object_set_new(params, "nms_mode", json_string("classic"));
    struct wf_model_request r = *req;
    r.params = params;
    int rc = w->base_infer(w->base_ud, &r, images, n, out, err, errlen);
    json_decref(params);
    return rc;
}

/* Pre-processing does not depend on the NMS: the provider's own. */
static int prepare_classic(void *ud, const struct wf_model_request *req, struct vis_image *img, char *err,
                           size_t errlen)
{
    const struct jobs__worker *w = ud;
    return w->base_prepare(w->base_ud, req, img, err, errlen);
}

/* The model provider for the job's machine type (checked again here: the
 * runtime may differ from the one of the process that accepted the job),
 * wrapped for the job's inferenceBackend. */
static void select_provider(struct jobs *j, struct jobs__worker *w, const struct jobs__job *jb)
{
    w->infer = j->o.model_infer;
    w->infer_ud = j->o.model_ud;
    w->prepare = j->o.model_prepare;
    if (j->o.model_select) {
        w->prepare = NULL;
        if (j->o.model_select(j->o.model_select_ud, jb->machine_type, jb->ws, wf_uses_models(w->wf), &w->infer,
                              &w->prepare, &w->infer_ud, w->infer_err, sizeof w->infer_err) < 0) {
            w->infer = infer_unavailable;
            w->prepare = NULL;
            w->infer_ud = w->infer_err;
        }
    } else if (!strcmp(jb->machine_type, "gpu")) {
        snprintf(w->infer_err, sizeof w->infer_err, "machineType gpu is not available on this server");
        w->infer = infer_unavailable;
        w->prepare = NULL;
        w->infer_ud = w->infer_err;
    }
    if (jb->old_inference && w->infer && w->infer != infer_unavailable) {
        w->base_infer = w->infer;
        w->base_ud = w->infer_ud;
        w->base_prepare = w->prepare;
        w->infer = infer_classic;
        w->prepare = w->prepare ? prepare_classic : NULL;
        w->infer_ud = w;
    }
}

/* The metrics of a task whose outcome was recorded (a task retried after
 * an error is counted by the attempt that ends it). */
static void count_images(const struct jobs__job *jb, int ndone, int nfailed)
{
    const char *type = jb->video ? "simple-video-processing-v1" : "simple-image-processing-v1";
    metric_count(METRIC_IMAGES_PROCESSED, (uint64_t)ndone, type, NULL, NULL);
    metric_count(METRIC_IMAGES_FAILED, (uint64_t)nfailed, type, NULL, NULL);
}

int jobs__run_process(struct jobs *j, struct jobs__worker *w, const struct store_task *t, struct err *err)
{
    struct jobs__job jb;
    struct staging_item *items = NULL;
    int nitems = 0, nuse = 0, ndone = 0, nfailed = 0;
    struct store_image_fail *fails = NULL;
    struct lookahead *ahead = NULL;
    struct fetch_ctx fc = {0};
    struct store_blob_writer *rw = NULL, *mw = NULL, *ew = NULL;
    json_t *params = NULL, *plist = NULL;
    char *rkey = NULL, *mkey = NULL, *ekey = NULL;
    int run = 0; /* consecutive images failed with the same cause (the failure budget) */
    struct jobs__hb hb = {time_mono_ms(), time_mono_ms(), 0};
    char why[512];
    int rc = jobs__job_load(j, t->job_pk, &jb);

    if (rc < 0)
        return ERR_NOTFOUND;
    if (w->wf_job_pk != jb.pk) {
        jobs__worker_release(w);
        rc = wf_compile_text(jb.wf_def, strlen(jb.wf_def), &w->wf, why, sizeof why);
        if (rc < 0) {
            err_printf(err, "the workflow snapshot does not compile: %s", why);
            goto out;
        }
        w->wf_job_pk = jb.pk;
    }
    select_provider(j, w, &jb);
    params = json_loads(jb.params, 0, NULL);
    plist = jb.persist_list ? json_loads(jb.persist_list, 0, NULL) : NULL;
    if (t->n_items > 0) {
        /* The same filter as the planner: n_items images after after_id. */
        rc = staging_items_page_media(j->sg, jb.ws, jb.batch, jb.part, t->after_id, t->n_items, &items, &nitems, err);
        if (rc < 0) {
            err_prefix(err, rc, "cannot read the input batch '%s'", jb.batch);
            goto out;
        }
    }
    rkey = jobs__results_key(&jb, t->task_no);
    ekey = jobs__errors_key(&jb, t->task_no);
    rc = store_blob_writer_open(j->st, rkey, 0, &rw);
    if (rc == 0)
        rc = store_blob_writer_open(j->st, ekey, 0, &ew);
    if (rc == 0 && jb.persist) {
        mkey = jobs__manifest_key(&jb, t->task_no);
        rc = store_blob_writer_open(j->st, mkey, 0, &mw);
    }
    if (rc < 0) {
        err_printf(err, "cannot open the results blob: %s", err_str(rc));
        goto out;
    }
    fails = xcalloc((size_t)MAX(nitems, 1), sizeof *fails);
    while (nuse < nitems && items[nuse].id <= t->last_id)
        nuse++; /* the rest was added to the batch after planning */
    fc = (struct fetch_ctx){j, items, w->wf, jb.image_input, w->prepare, w->infer_ud, (size_t)nuse, {0}};
    if (nuse > 0 && !jb.video && (rc = lookahead_start((size_t)nuse, 1, 10, fetch_one, &fc, &ahead)) < 0) {
        err_printf(err, "cannot start the decode-ahead thread: %s", err_str(rc));
        goto out;
    }
    for (int i = 0; i < nuse; i++) {
        rc = jobs__hb_tick(j, &hb, t, w->owner, nitems ? (double)i / nitems : 0.0, false);
        if (rc < 0)
            goto out;
        /* Below the data folder's reserve the task stops and waits for
         * space (work_once) rather than failing on a write. */
        if ((rc = store_space_check(j->st, 0, "this task's outputs", err)) < 0)
            goto out;
        jobs__throttle(j);
        char *cause = NULL;
        if (jb.video) {
            rc = process_video(j, w, &jb, t, &items[i], params, plist, rw, mw, &hb, i, nitems, &cause, err);
        } else {
            /* a slow store (a read of the image, its retries) can take
             * longer than the lease: renewed while the image is awaited */
            void *got = NULL;
            while (lookahead_take_wait(ahead, (size_t)i, j->o.heartbeat_ms, &got) == ERR_AGAIN)
                if ((rc = jobs__hb_tick(j, &hb, t, w->owner, nitems ? (double)i / nitems : 0.0, false)) < 0)
                    goto out;
            struct fetched *f = got;
            rc = process_item(j, w, &jb, t, &items[i], f, params, plist, rw, mw, &cause, err);
            fetched_free(f);
        }
        if (rc < 0) {
            free(cause);
            goto out;
        }
        if (!cause) {
            ndone++;
            run = 0;
            continue;
        }
        run = nfailed > 0 && run > 0 && !strcmp(fails[nfailed - 1].cause, cause) ? run + 1 : 1;
        fails[nfailed].file = xstrdup(items[i].name);
        fails[nfailed].cause = cause;
        nfailed++;
        /* one line per failed image: the export's errors part */
        json_t *e = json_pack("{s:s,s:s,s:s}", "image", items[i].name, "stage", JOBS_STAGE_PROC, "cause", cause);
        char *el = json_dumps(e, JSON_COMPACT);
        json_decref(e);
        rc = writer_puts(ew, el, strlen(el));
        if (rc == 0)
            rc = writer_puts(ew, "\n", 1);
        free(el);
        if (rc < 0) {
            err_printf(err, "cannot write the errors file: %s", err_str(rc));
            goto out;
        }
        if (!jb.has_fail_rate && run >= JOBS_FAIL_BUDGET) {
            /* the default failure budget is spent: stop here, fail the job */
            char *msg = xasprintf("failure budget spent: %d consecutive %s failed with the same cause (the last: "
                                  "'%s'): %s; set maxImageFailureRate to let a job go on past failures",
                                  run, jb.video ? "videos" : "images", items[i].name, cause);
            log_warn("jobs", "job=%s task=%d: %s", jb.job_id, t->task_no, msg);
            rc = jobs__task_fail_job(j, t, w->owner, ndone, fails, nfailed, msg,
                                     time_mono_ms() - hb.start_ms - hb.counted_ms);
            if (rc == 0)
                count_images(&jb, ndone, nfailed);
            free(msg);
            rc = rc == 0 ? 0 : ERR_NOTFOUND; /* either way nothing more to record */
            goto out;
        }
    }
    lookahead_stop(ahead, fetched_free);
    ahead = NULL;
    /* Last check before publishing: still ours and the job still running. */
    rc = jobs__hb_tick(j, &hb, t, w->owner, 1.0, true);
    if (rc < 0)
        goto out;
    if (mw) {
        rc = store_blob_sync(j->st);
        if (rc == 0)
            rc = store_blob_writer_finish(mw);
        mw = NULL;
    }
    if (rc == 0)
        rc = store_blob_writer_finish(ew); /* always written, empty too: a retry leaves no stale lines */
    ew = NULL;
    if (rc == 0) {
        int64_t size = store_blob_writer_size(rw);
        rc = store_blob_writer_finish(rw);
        rw = NULL;
        if (rc == 0) {
            char *pb = xasprintf("%s-processing", jb.job_id);
            char *fn = xasprintf("task-%05d.jsonl", t->task_no);
            rc = jobs__output_ensure(j, jb.ws, pb, "results", "metadata", "per-task results rows (JSONL)", fn,
                                     "metadata", "application/x-ndjson", rkey, size, err);
            free(pb);
            free(fn);
        }
    }
    if (rc < 0) {
        if (!err->msg[0])
            err_printf(err, "cannot publish the results: %s", err_str(rc));
        goto out;
    }
    rc = jobs__task_complete(j, t, w->owner, ndone, nfailed, fails, nfailed,
                             time_mono_ms() - hb.start_ms - hb.counted_ms);
    if (rc == 0) {
        count_images(&jb, ndone, nfailed);
        log_info("jobs", "task done job=%s task=%d images=%d failed=%d", jb.job_id, t->task_no, ndone, nfailed);
    }
out:
    lookahead_stop(ahead, fetched_free);
    free(fc.span.data); /* the thread that read it has stopped */
    store_blob_writer_abort(rw);
    store_blob_writer_abort(mw);
    store_blob_writer_abort(ew);
    for (int i = 0; i < nfailed; i++) {
        free(fails[i].file);
        free(fails[i].cause);
    }
    free(fails);
    staging_items_free(items, nitems);
    json_decref(params);
    json_decref(plist);
    free(rkey);
    free(mkey);
    free(ekey);
    jobs__job_release(&jb);
    return rc;
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* Storage-full backoff shared by the workers (struct jobs). */
static bool space_waiting(struct jobs *j)
{
    pthread_mutex_lock(&j->mu);
    bool wait = time_mono_ms() < j->space_retry_at;
    pthread_mutex_unlock(&j->mu);
    return wait;
}

static void space_backoff(struct jobs *j, bool full)
{
    pthread_mutex_lock(&j->mu);
    if (full) {
        j->space_backoff = j->space_backoff <= 0 ? 1000 : MIN(j->space_backoff * 2, 30000);
        j->space_retry_at = time_mono_ms() + j->space_backoff;
    } else {
        j->space_backoff = 0;
        j->space_retry_at = 0;
    }
    pthread_mutex_unlock(&j->mu);
}

static int work_once(struct jobs *j, struct jobs__worker *w, bool *did)
{
    int64_t pk = 0;
    struct store_task t;
    *did = false;
    if (space_waiting(j))
        return 0;
    int rc = jobs_claim(j, w->owner, time_now_ms(), &pk);
    if (rc < 0 || !pk)
        return rc;
    *did = true;
    rc = jobs__task_load(j, pk, &t);
    if (rc < 0)
        return 0;
    int64_t start = time_mono_ms();
    struct err e = ERR_INIT;
    rc = !strcmp(t.stage, JOBS_STAGE_EXPORT) ? jobs__run_export(j, w, &t, &e) : jobs__run_process(j, w, &t, &e);
    if (rc == ERR_AGAIN) { /* shutting down: hand the task back */
        jobs__task_release(j, &t, w->owner, "handed back at shutdown");
        return 0;
    }
    if (err_is_nospace(rc) || rc == ERR_UNAVAILABLE) {
        /* Not the task's fault (storage full, or the blob store or the
         * database unreachable): hand it back, not counted, and let every
         * worker wait a while; its outputs are written again from the
         * start (deterministic keys) once storage is back. */
        char msg[ERR_MSG_MAX + 32];
        snprintf(msg, sizeof msg, "waiting for storage: %s", err_text(&e, rc));
        log_warn("jobs", "task waits for storage task=%lld stage=%s: %s", (long long)t.pk, t.stage, msg);
        jobs__task_release(j, &t, w->owner, msg);
        space_backoff(j, true);
        return 0;
    }
    if (rc == 0)
        space_backoff(j, false);
    if (rc == ERR_NOTFOUND)
        return 0; /* lease lost or job ended: nothing to record */
    if (rc < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err_text(&e, rc));
        log_warn("jobs", "task failed task=%lld stage=%s: %s", (long long)t.pk, t.stage, msg);
        jobs__task_error(j, &t, w->owner, msg, time_mono_ms() - start);
    }
    return 0;
}

int jobs_work_once(struct jobs *j, const char *worker, bool *did)
{
    struct jobs__worker w;
    memset(&w, 0, sizeof w);
    snprintf(w.owner, sizeof w.owner, "%s", worker);
    int rc = work_once(j, &w, did);
    jobs__worker_release(&w);
    return rc;
}

struct worker_arg {
    struct jobs *j;
    int index;
};

/* PostgreSQL: wait for NOTIFY vbatch_tasks (sent by the transactions
 * that make a task claimable, in any process) and wake the idle workers
 * at once.  While the LISTEN connection is down the workers poll at
 * o.poll_ms again; a reconnect wakes them too (notifications may have
 * been missed meanwhile).  Lease expiry writes nothing, so nothing is
 * notified: the workers' fallback poll finds expired leases. */
static void *listen_main(void *p)
{
    struct jobs *j = p;
    bool live = true;
    while (!jobs__stopping(j)) {
        struct err e = ERR_INIT;
        int rc = store_tasks_wait(j->listener, 30000, &e);
        if (rc == 0) /* timeout, or jobs_stop's wake */
            continue;
        bool up = rc > 0;
        if (!up && live)
            log_warn("jobs", "task notifications lost, idle workers poll every %lld ms until they are back: %s",
                     (long long)j->o.poll_ms, err_text(&e, rc));
        else if (up && !live)
            log_info("jobs", "task notifications are back");
        live = up;
        pthread_mutex_lock(&j->mu);
        j->listen_live = up;
        pthread_cond_broadcast(&j->cv); /* look for work now (and wait by the new interval) */
        pthread_mutex_unlock(&j->mu);
    }
    return NULL;
}

static void listen_start(struct jobs *j)
{
    struct err e = ERR_INIT;
    int rc = store_tasks_listen(j->st, &j->listener, &e);
    if (rc == ERR_UNSUPPORTED) /* SQLite: one machine, the in-process kick suffices */
        return;
    if (rc < 0) {
        log_warn("jobs", "cannot listen for task notifications (idle workers poll every %lld ms): %s",
                 (long long)j->o.poll_ms, err_text(&e, rc));
        return;
    }
    pthread_mutex_lock(&j->mu);
    j->listen_live = true;
    pthread_mutex_unlock(&j->mu);
    if (pthread_create(&j->listen_thread, NULL, listen_main, j) != 0) {
        log_warn("jobs", "cannot start the task notification thread");
        store_tasks_listen_close(j->listener);
        j->listener = NULL;
        j->listen_live = false;
        return;
    }
    j->listen_running = true;
}

static void listen_stop(struct jobs *j)
{
    if (j->listen_running) {
        store_tasks_wake(j->listener);
        pthread_join(j->listen_thread, NULL);
        j->listen_running = false;
    }
    store_tasks_listen_close(j->listener);
    j->listener = NULL;
    j->listen_live = false;
}

static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    struct jobs *j = a->j;
    struct jobs__worker w;
    memset(&w, 0, sizeof w);
    snprintf(w.owner, sizeof w.owner, "%s-w%d", j->owner_prefix, a->index);
    free(a);
    while (!jobs__stopping(j)) {
        bool did = false;
        int rc = work_once(j, &w, &did);
        if (rc < 0)
            log_warn("jobs", "worker %s: %s", w.owner, err_str(rc));
        if (did && rc == 0)
            continue;
        pthread_mutex_lock(&j->mu);
        if (!j->stopping) {
            /* woken by jobs__kick: new work in this process, or a
             * notification from another (listen_main) */
            int64_t wait = j->listen_live ? j->o.listen_poll_ms : j->o.poll_ms;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (wait % 1000) * 1000000;
            ts.tv_sec += wait / 1000 + ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        }
        pthread_mutex_unlock(&j->mu);
    }
    jobs__worker_release(&w);
    return NULL;
}

int jobs_start(struct jobs *j)
{
    if (j->nthreads > 0 || j->o.workers <= 0)
        return 0;
    pthread_mutex_lock(&j->mu);
    j->stopping = false;
    pthread_mutex_unlock(&j->mu);
    j->threads = xcalloc((size_t)j->o.workers, sizeof *j->threads);
    for (int i = 0; i < j->o.workers; i++) {
        struct worker_arg *a = xmalloc(sizeof *a);
        a->j = j;
        a->index = i;
        if (pthread_create(&j->threads[i], NULL, worker_main, a) != 0) {
            free(a);
            log_error("jobs", "cannot start worker thread %d", i);
            jobs_stop(j);
            return ERR_INTERNAL;
        }
        j->nthreads++;
    }
    log_info("jobs", "workers started count=%d owner=%s", j->nthreads, j->owner_prefix);
    listen_start(j);
    if (jobs__pool_join(j) < 0) {
        jobs_stop(j);
        return ERR_INTERNAL;
    }
    return 0;
}

void jobs_stop(struct jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stopping = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    jobs__pool_leave(j);
    listen_stop(j);
    for (int i = 0; i < j->nthreads; i++)
        pthread_join(j->threads[i], NULL);
    j->nthreads = 0;
    free(j->threads);
    j->threads = NULL;
}
