/*
 * shards.c — owner of the tables shards, shard_events, uploads and
 * ingests (store_staging.h): bulk uploads and their status history, the
 * signed PUT targets, reference ingests, and the shard work of the
 * indexer and fetcher threads.
 *
 * Shard states (shards.state) and the statuses clients see:
 *
 *   tar:  awaiting-upload ─PUT─► uploaded ─index─► done   (ingested/success)
 *                                        └───────► failed (too-many-images,
 *                                          shard-size-limit-exceeded,
 *                                          corrupt-archive, upload-missing,
 *                                          internal-error /error)
 *   refs: queued ─fetch─► done (ingested/success | all-files-failed/error)
 *               └───────► failed (unsafe-url-detected, references-fetch-failed)
 *
 * Every status change appends a row to shard_events.  A shard leaves
 * "uploaded"/"queued" in ONE transaction together with its items, its
 * webhooks and its ingest's count, and that transaction re-checks the
 * state and the claim first (on PostgreSQL under a row lock), so two
 * workers cannot both finish one shard.
 *
 * Claims (claim_owner, claim_until; staging migration 4) of a shard in
 * "uploaded"/"queued", so that several processes on one database never
 * work on one shard at once:
 *
 *   unclaimed ─claim─► claimed by A until T ─renew by A─► … until T'
 *      ▲   ▲               │    │   └─finish by A (done/failed): claim ends
 *      │   └─wait-storage──┘    │
 *      │     or unclaim by A    └─T passes (A killed or stalled)─► claimable:
 *      │                          claim by B; A's finish/renew → ERR_EXISTS
 *
 * The claim is one UPDATE of the oldest claimable row (SQLite: its writer
 * lock serialises claimers; PostgreSQL: the row is picked FOR UPDATE SKIP
 * LOCKED, so a concurrent claimer takes the next one instead of waiting).
 *
 * Upload targets (uploads.state): pending ─PUT done─► done | failed; a
 * target is used once.
 */
#include "store/store_staging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/staging_int.h"

/* ---- shard rows -------------------------------------------------------------------------- */

static int shard_insert(struct db_conn *c, int64_t bid, const char *shard_id, const char *kind, const char *state,
                        const char *status_name, const char *blob_key, const char *ingest_id, const char *notify_url,
                        bool cat_ingest, bool cat_files, const char *refs, const char *refs_url, struct err *e)
{
    int64_t now = time_now_ms();
    int rc = db_run(c, e, "INSERT INTO shards(bid, shard_id, kind, state, status_name, status_type, blob_key,"
                          " ingest_id, notify_url, cat_ingest, cat_files, refs, refs_url, event_ms, created_ms)"
                          " VALUES(?1,?2,?3,?4,?5,'info',?6,?7,?8,?9,?10,?11,?12,?13,?14)", "itttttttiittii",
                    bid, shard_id, kind, state, status_name, blob_key, ingest_id, notify_url, (int64_t)cat_ingest,
                    (int64_t)cat_files, refs, refs_url, now, now);
    if (rc == 0)
        rc = db_run(c, e, "INSERT INTO shard_events(shard, status_name, status_type, event_ms)"
                          " VALUES(?1,?2,'info',?3)", "tti", shard_id, status_name, now);
    return rc;
}

/* Inside a transaction: set a shard's state and status, append to its
 * history.  meta: JSON text or NULL. */
static int shard_status(struct db_conn *c, const char *shard_id, const char *state, const char *status_name,
                        const char *status_type, const char *meta, int64_t objects, struct err *e)
{
    int64_t now = time_now_ms();
    int rc = db_run(c, e, "UPDATE shards SET state=?1, status_name=?2, status_type=?3, status_meta=?4,"
                          " objects=?5, event_ms=?6 WHERE shard_id=?7", "ttttiit",
                    state, status_name, status_type, meta, objects, now, shard_id);
    if (rc == 0)
        rc = db_run(c, e, "INSERT INTO shard_events(shard, status_name, status_type, meta, event_ms)"
                          " VALUES(?1,?2,?3,?4,?5)", "tttti", shard_id, status_name, status_type, meta, now);
    return rc;
}

/* Inside a transaction: is the shard still in `state` and (owner not
 * NULL) still claimed by owner?  (1 yes, 0 no, <0) */
static int shard_in_state(struct db_conn *c, const char *shard_id, const char *state, const char *owner,
                          struct err *e)
{
    struct db_stmt *q = NULL;
    /* PostgreSQL: the row lock makes a second worker wait for the first's
     * commit and then see the new state. */
    const char *sql = db_conn_kind(c) == DB_POSTGRES
                          ? "SELECT state, claim_owner FROM shards WHERE shard_id=?1 FOR UPDATE"
                          : "SELECT state, claim_owner FROM shards WHERE shard_id=?1";
    int rc = db_prepare(c, sql, &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, shard_id);
    rc = db_step(q, e);
    if (rc == DB_ROW)
        rc = !strcmp(db_col_text(q, 0), state) &&
             (!owner || (!db_col_null(q, 1) && !strcmp(db_col_text(q, 1), owner)));
    else if (rc == DB_DONE)
        rc = 0;
    db_finalize(q);
    return rc;
}

void store_shard_infos_free(struct store_shard_info *rows, int n)
{
    for (int i = 0; rows && i < n; i++) {
        free(rows[i].shard_id);
        free(rows[i].status_name);
        free(rows[i].status_type);
        free(rows[i].status_meta);
    }
    free(rows);
}

int store_shards_page(struct store *st, const char *ws, const char *batch, int64_t after, int limit,
                      struct store_shard_info **rows, int *n, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    struct store_batch b;
    struct store_shard_info *arr = NULL;
    int cnt = 0;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = store__batch_find(c, ws, batch, &b, e);
    if (rc == 0)
        rc = db_prepare(c, "SELECT id, shard_id, status_name, status_type, event_ms, objects, status_meta"
                           " FROM shards WHERE bid=?1 AND id>?2 ORDER BY id LIMIT ?3", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, b.bid);
        db_bind_int64(q, 2, after);
        db_bind_int64(q, 3, limit);
        arr = xcalloc((size_t)MAX(limit, 1), sizeof *arr);
        while (cnt < limit && (rc = db_step(q, e)) == DB_ROW) {
            struct store_shard_info *r = &arr[cnt++];
            r->id = db_col_int64(q, 0);
            r->shard_id = store__col_dup(q, 1);
            r->status_name = store__col_dup(q, 2);
            r->status_type = store__col_dup(q, 3);
            r->event_ms = db_col_int64(q, 4);
            r->objects = db_col_int64(q, 5);
            r->status_meta = store__col_dup(q, 6);
        }
        if (rc > 0)
            rc = 0;
    }
    db_finalize(q);
    db_release(d, c);
    if (rc < 0) {
        store_shard_infos_free(arr, cnt);
        return rc;
    }
    *rows = arr;
    *n = cnt;
    return 0;
}

/* ---- signed uploads ------------------------------------------------------------------------ */

int store__uploads_pending(struct db_conn *c, const char *ws, int64_t since_ms, int64_t *n, struct err *e)
{
    struct db_stmt *q = NULL;
    *n = 0;
    int rc = db_prepare(c, "SELECT count(*) FROM uploads u JOIN batches b ON b.bid = u.bid"
                           " WHERE b.workspace=?1 AND u.state='pending' AND u.created_ms>?2", &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, ws);
    db_bind_int64(q, 2, since_ms);
    rc = db_step(q, e);
    if (rc == DB_ROW)
        *n = db_col_int64(q, 0);
    db_finalize(q);
    return rc < 0 ? rc : 0;
}

static int uploads_insert(struct db_conn *c, const char *key, int64_t bid, const char *kind, const char *shard_id,
                          const char *file_name, int64_t limit, struct err *e)
{
    return db_run(c, e, "INSERT INTO uploads(blob_key, bid, kind, shard_id, file_name, size_limit, state,"
                        " created_ms) VALUES(?1,?2,?3,?4,?5,?6,'pending',?7)", "titttii",
                  key, bid, kind, shard_id, file_name, limit, time_now_ms());
}

struct upload_args {
    const char *ws, *batch, *display_name, *file_name, *id;
    int64_t size_limit, expiry_ms;
    char *key;
};

static int video_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct upload_args *a = ud;
    struct store_batch b;
    /* Videos go into any input batch; a new batch becomes a simple one. */
    int rc = store__batch_find(c, a->ws, a->batch, &b, e);
    if (rc == 0 && !strcmp(b.mode, "output"))
        return err_set(e, ERR_INVALID, "batch '%s' holds job outputs and cannot take uploads", a->batch);
    if (rc == 0 || rc == ERR_NOTFOUND) {
        int qrc = store__quota_bytes_check(st, c, a->ws, 0, e);
        if (qrc == 0)
            qrc = store__quota_uploads_check(st, c, a->ws, e);
        if (qrc < 0)
            return qrc;
    }
    if (rc == ERR_NOTFOUND)
        rc = store__batch_get_or_create(st, c, a->ws, a->batch, a->display_name, "single", a->expiry_ms, &b, e);
    if (rc < 0)
        return rc;
    snprintf(a->key, 96, "b/%lld/v/%s", (long long)b.bid, a->id);
    return uploads_insert(c, a->key, b.bid, "video", NULL, a->file_name, a->size_limit, e);
}

int store_upload_video_create(struct store *st, const char *ws, const char *batch, const char *display_name,
                              const char *file_name, const char *uuid, int64_t size_limit, int64_t expiry_ms,
                              char key[96], struct err *e)
{
    struct upload_args a = {ws, batch, display_name, file_name, uuid, size_limit, expiry_ms, key};
    return store__staging_tx(st, video_body, &a, e);
}

static int tar_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct upload_args *a = ud;
    struct store_batch b;
    int rc = store__quota_bytes_check(st, c, a->ws, 0, e);
    if (rc == 0)
        rc = store__quota_uploads_check(st, c, a->ws, e);
    if (rc == 0)
        rc = store__batch_get_or_create(st, c, a->ws, a->batch, a->display_name, "bulk", a->expiry_ms, &b, e);
    if (rc < 0)
        return rc;
    store_upload_tar_key(b.bid, a->id, a->key);
    rc = shard_insert(c, b.bid, a->id, "tar", "awaiting-upload", "awaiting-upload", a->key, NULL, NULL, false, true,
                      NULL, NULL, e);
    if (rc == 0)
        rc = uploads_insert(c, a->key, b.bid, "tar", a->id, NULL, a->size_limit, e);
    return rc;
}

int store_upload_tar_create(struct store *st, const char *ws, const char *batch, const char *display_name,
                            const char *shard_id, int64_t size_limit, int64_t expiry_ms, char key[96],
                            struct err *e)
{
    struct upload_args a = {ws, batch, display_name, NULL, shard_id, size_limit, expiry_ms, key};
    return store__staging_tx(st, tar_body, &a, e);
}

void store_upload_tar_key(int64_t bid, const char *shard_id, char key[96])
{
    snprintf(key, 96, "b/%lld/s/%s.tar", (long long)bid, shard_id);
}

int store_upload_tar_probe(struct store *st, const char *ws, const char *batch, int64_t *bid, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct store_batch b;
    bool unlimited = false;
    if (!c)
        return ERR_UNAVAILABLE;
    /* reads only: no transaction, no lock (a batch removed right after is
     * seen by the record's insert, store_upload_tar_record) */
    int rc = store__batch_find(c, ws, batch, &b, e);
    if (rc == 0 && strcmp(b.mode, "bulk") != 0)
        rc = 1;
    if (rc == 0)
        rc = store__quota_uploads_unlimited(st, c, ws, &unlimited, e);
    if (rc == 0 && !unlimited)
        rc = 1;
    if (rc == 0)
        *bid = b.bid;
    db_release(d, c);
    if (rc == ERR_NOTFOUND) { /* made by store_upload_tar_create */
        err_clear(e);
        rc = 1;
    }
    return rc;
}

/* Hold the workspace of batch bid (store__ws_lock; nothing when the
 * batch is gone). */
static int ws_lock_by_bid(struct db_conn *c, int64_t bid, struct err *e)
{
    return db_run(c, e, "INSERT INTO ws_usage(workspace, staged_bytes) SELECT workspace, 0 FROM batches"
                        " WHERE bid=?1 ON CONFLICT(workspace) DO UPDATE SET staged_bytes = ws_usage.staged_bytes",
                  "i", bid);
}

struct record_args {
    const struct store_upload_rec *r;
    int n, done;
};

static int record_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct record_args *a = ud;
    int64_t now = time_now_ms();
    (void)st;
    a->done = 0;
    for (int i = 0; i < a->n; i++) {
        const struct store_upload_rec *r = &a->r[i];
        char key[96];
        store_upload_tar_key(r->bid, r->shard_id, key);
        /* the batch's workspace held first (store__ws_lock), as
         * store_upload_tar_create does: a removal in progress holds it
         * while it fails the pending URLs, and PostgreSQL's UPDATE there
         * does not see rows not yet committed — without it these would
         * stay pending in a removed batch.  The next statement reads the
         * batch after the removal's commit. */
        if (i == 0 || r->bid != a->r[i - 1].bid) {
            int lrc = ws_lock_by_bid(c, r->bid, e);
            if (lrc < 0)
                return lrc;
        }
        /* only into a live batch (not removed, not expired: a removal
         * fails the pending URLs it finds, store__batch_tombstone), and
         * once (recorded already by a PUT to it, here or in another
         * process) */
        int rc = db_run(c, e, "INSERT INTO shards(bid, shard_id, kind, state, status_name, status_type, blob_key,"
                              " cat_ingest, cat_files, event_ms, created_ms)"
                              " SELECT bid, ?2, 'tar', 'awaiting-upload', 'awaiting-upload', 'info', ?3, 0, 1, ?4, ?4"
                              " FROM batches WHERE bid=?1 AND expires_ms>?5 ON CONFLICT(shard_id) DO NOTHING",
                        "ittii", r->bid, r->shard_id, key, r->created_ms, now);
        if (rc < 0)
            return rc;
        if (db_changes(c) != 1)
            continue;
        rc = db_run(c, e, "INSERT INTO shard_events(shard, status_name, status_type, event_ms)"
                          " VALUES(?1,'awaiting-upload','info',?2)", "ti", r->shard_id, r->created_ms);
        if (rc == 0)
            rc = db_run(c, e, "INSERT INTO uploads(blob_key, bid, kind, shard_id, size_limit, state, created_ms)"
                              " VALUES(?1,?2,'tar',?3,?4,'pending',?5) ON CONFLICT(blob_key) DO NOTHING", "titii",
                        key, r->bid, r->shard_id, r->size_limit, r->created_ms);
        if (rc < 0)
            return rc;
        a->done++;
    }
    return 0;
}

int store_upload_tar_record(struct store *st, const struct store_upload_rec *r, int n, int *recorded,
                            struct err *e)
{
    struct record_args a = {r, n, 0};
    int rc = n > 0 ? store__staging_tx(st, record_body, &a, e) : 0;
    if (recorded)
        *recorded = rc == 0 ? a.done : 0;
    return rc;
}

int store_upload_tar_adopt(struct store *st, const char *key, int64_t size_limit, struct store_upload *out,
                           struct err *e)
{
    long long bid = 0;
    char shard[40] = "", tail[8] = "";
    int end = 0;
    memset(out, 0, sizeof *out);
    /* b/<bid>/s/<uuid>.tar, as store_upload_tar_key writes it */
    if (sscanf(key, "b/%lld/s/%36[0-9a-f-]%7s%n", &bid, shard, tail, &end) != 3 || key[end] || bid <= 0 ||
        strlen(shard) != 36 || strcmp(tail, ".tar") != 0)
        return err_set(e, ERR_NOTFOUND, "no upload is expected at this URL (batch expired or removed?)");
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_prepare(c, "SELECT workspace FROM batches WHERE bid=?1 AND expires_ms>?2 AND ingest_mode='bulk'",
                        &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, bid);
        db_bind_int64(q, 2, time_now_ms());
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            out->bid = bid;
            snprintf(out->kind, sizeof out->kind, "tar");
            out->shard_id = xstrdup(shard);
            out->workspace = store__col_dup(q, 0);
            out->pending = true;
            out->size_limit = size_limit;
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = err_set(e, ERR_NOTFOUND, "no upload is expected at this URL (batch expired or removed?)");
        }
    }
    db_finalize(q);
    db_release(d, c);
    return rc;
}

void store_upload_release(struct store_upload *u)
{
    if (!u)
        return;
    free(u->shard_id);
    free(u->file_name);
    free(u->workspace);
    memset(u, 0, sizeof *u);
}

int store_upload_get(struct store *st, const char *key, struct store_upload *out, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    memset(out, 0, sizeof *out);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_prepare(c, "SELECT bid, kind, shard_id, file_name, state, size_limit,"
                           " (SELECT workspace FROM batches b WHERE b.bid = uploads.bid) FROM uploads WHERE blob_key=?1",
                        &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, key);
        rc = db_step(q, e);
        if (rc == DB_DONE) {
            rc = err_set(e, ERR_NOTFOUND, "no upload is expected at this URL (batch expired or removed?)");
        } else if (rc == DB_ROW) {
            out->bid = db_col_int64(q, 0);
            snprintf(out->kind, sizeof out->kind, "%s", db_col_text(q, 1));
            out->shard_id = store__col_dup(q, 2);
            out->file_name = store__col_dup(q, 3);
            out->pending = !strcmp(db_col_text(q, 4), "pending");
            out->size_limit = db_col_int64(q, 5);
            out->workspace = store__col_dup(q, 6);
            rc = 0;
        }
    }
    db_finalize(q);
    db_release(d, c);
    return rc;
}

static int upload_mark(struct db_conn *c, const char *key, const char *state, struct err *e)
{
    int rc = db_run(c, e, "UPDATE uploads SET state=?1 WHERE blob_key=?2 AND state='pending'", "tt", state, key);
    if (rc == 0 && db_changes(c) != 1)
        rc = err_set(e, ERR_EXISTS, "this upload URL was already used");
    return rc;
}

static int fail_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    (void)st;
    return upload_mark(c, ud, "failed", e);
}

int store_upload_fail(struct store *st, const char *key, struct err *e)
{
    return store__staging_tx(st, fail_body, (void *)key, e);
}

struct done_args {
    const char *key, *mime;
    const struct store_upload *u;
    int64_t size;
    bool over; /* size was over the limit: recorded as failed */
    const struct store_shard_outcome *indexed; /* a tar shard indexed at once, or NULL */
};

static int finish_body(struct store *st, struct db_conn *c, void *ud, struct err *e);

static int done_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct done_args *a = ud;
    (void)st;
    /* The batch's workspace first, as a removal takes it before it fails
     * the batch's pending URLs: on PostgreSQL this transaction would
     * otherwise hold an upload row and then wait for the workspace (its
     * items' staged bytes) that such a removal holds while it waits for
     * the upload row. */
    int rc = ws_lock_by_bid(c, a->u->bid, e);
    if (rc < 0)
        return rc;
    /* An object store took a PUT of any size (a presigned PUT signs no
     * maximum): past the limit, the target is used up and a tar shard
     * fails without being indexed (the caller deletes the object). */
    if (a->size > a->u->size_limit) {
        rc = upload_mark(c, a->key, "failed", e);
        if (rc == 0 && !strcmp(a->u->kind, "tar")) {
            char meta[160];
            snprintf(meta, sizeof meta, "{\"reason\":\"Max size of a shard is %lldB.\"}", (long long)a->u->size_limit);
            rc = shard_status(c, a->u->shard_id, "failed", "shard-size-limit-exceeded", "error", meta, 0, e);
        }
        a->over = rc == 0; /* committed, then ERR_LIMIT */
        return rc;
    }
    rc = upload_mark(c, a->key, "done", e);
    if (rc == 0 && !strcmp(a->u->kind, "video")) {
        struct store_item_new it = {NULL, a->u->file_name, NULL, "video", a->mime, a->key, a->size, false, 0};
        rc = store__item_insert(c, a->u->bid, &it, e);
    }
    if (rc == 0 && !strcmp(a->u->kind, "tar"))
        rc = shard_status(c, a->u->shard_id, "uploaded", "uploaded", "info", NULL, 0, e);
    if (rc == 0 && a->indexed) /* uploaded and indexed in one step: its history shows both */
        rc = finish_body(st, c, (void *)a->indexed, e);
    return rc;
}

int store_upload_done(struct store *st, const char *key, const struct store_upload *u, const char *mime,
                      int64_t size, struct err *e)
{
    struct done_args a = {key, mime, u, size, false, NULL};
    int rc = store__staging_tx(st, done_body, &a, e);
    if (rc == 0 && a.over)
        rc = err_set(e, ERR_LIMIT, "upload of %lld bytes exceeds the limit of %lld bytes", (long long)size,
                     (long long)u->size_limit);
    return rc;
}

int store_upload_done_indexed(struct store *st, const char *key, const struct store_upload *u, int64_t size,
                              const struct store_shard_outcome *o, struct err *e)
{
    struct store_upload_indexed one = {key, u, size, o};
    return store_uploads_done_indexed(st, &one, 1, e);
}

struct done_many_args {
    const struct store_upload_indexed *v;
    int n;
};

static int done_many_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct done_many_args *a = ud;
    int rc = 0;
    for (int i = 0; rc == 0 && i < a->n; i++) {
        struct done_args d = {a->v[i].key, NULL, a->v[i].u, a->v[i].size, false, a->v[i].o};
        rc = done_body(st, c, &d, e);
    }
    return rc;
}

int store_uploads_done_indexed(struct store *st, const struct store_upload_indexed *v, int n, struct err *e)
{
    if (n < 1)
        return 0;
    for (int i = 0; i < n; i++) {
        const struct store_upload *u = v[i].u;
        const struct store_shard_outcome *o = v[i].o;
        if (strcmp(u->kind, "tar") != 0 || !o || o->owner || strcmp(o->from_state, "uploaded") != 0 ||
            v[i].size > u->size_limit || u->bid != v[0].u->bid)
            return err_set(e, ERR_INVALID, "not tar shards of one batch indexed at their uploads");
    }
    struct done_many_args a = {v, n};
    return store__staging_tx(st, done_many_body, &a, e);
}

void store_uploads_pending_free(struct store_upload_pending *rows, int n)
{
    for (int i = 0; rows && i < n; i++) {
        free(rows[i].key);
        store_upload_release(&rows[i].u);
    }
    free(rows);
}

/* The rows of a pending-uploads query (blob_key, bid, kind, shard_id,
 * file_name, size_limit, created_ms), its parameters bound by bind. */
static int pending_rows(struct store *st, const char *sql, void (*bind)(struct db_stmt *, const void *),
                        const void *ud, struct store_upload_pending **rows, int *n, struct err *e)
{
    struct db_conn *c = store__acquire(st, e);
    struct db_stmt *q = NULL;
    struct store_upload_pending *v = NULL;
    int cnt = 0, cap = 0;
    *rows = NULL;
    *n = 0;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_prepare(c, sql, &q, e);
    if (rc == 0) {
        bind(q, ud);
        while ((rc = db_step(q, e)) == DB_ROW) {
            if (cnt == cap) {
                cap = cap ? 2 * cap : 64;
                v = xrealloc(v, (size_t)cap * sizeof *v);
            }
            struct store_upload_pending *r = &v[cnt++];
            memset(r, 0, sizeof *r);
            r->key = store__col_dup(q, 0);
            r->u.bid = db_col_int64(q, 1);
            snprintf(r->u.kind, sizeof r->u.kind, "%s", db_col_text(q, 2));
            r->u.shard_id = store__col_dup(q, 3);
            r->u.file_name = store__col_dup(q, 4);
            r->u.pending = true;
            r->u.size_limit = db_col_int64(q, 5);
            r->created_ms = db_col_int64(q, 6);
        }
        if (rc == DB_DONE)
            rc = 0;
    }
    db_finalize(q);
    store__release(st, c);
    if (rc < 0) {
        store_uploads_pending_free(v, cnt);
        return rc;
    }
    *rows = v;
    *n = cnt;
    return 0;
}

struct pending_args {
    int64_t after_ms, before_ms;
    const char *after_key;
    int limit;
};

static void bind_pending(struct db_stmt *q, const void *ud)
{
    const struct pending_args *a = ud;
    db_bind_int64(q, 1, a->after_ms);
    db_bind_int64(q, 2, a->limit);
}

int store_uploads_pending(struct store *st, int64_t created_after_ms, int limit, struct store_upload_pending **rows,
                          int *n, struct err *e)
{
    struct pending_args a = {created_after_ms, 0, NULL, limit};
    return pending_rows(st,
                        "SELECT blob_key, bid, kind, shard_id, file_name, size_limit, created_ms FROM uploads"
                        " WHERE state='pending' AND created_ms>?1 ORDER BY bid, kind, created_ms LIMIT ?2",
                        bind_pending, &a, rows, n, e);
}

static void bind_tar_page(struct db_stmt *q, const void *ud)
{
    const struct pending_args *a = ud;
    db_bind_int64(q, 1, a->after_ms);
    db_bind_text(q, 2, a->after_key ? a->after_key : "");
    db_bind_int64(q, 3, a->before_ms);
    db_bind_int64(q, 4, a->limit);
}

int store_uploads_pending_tar(struct store *st, int64_t after_ms, const char *after_key, int64_t created_before_ms,
                              int limit, struct store_upload_pending **rows, int *n, struct err *e)
{
    struct pending_args a = {after_ms, created_before_ms, after_key, limit};
    return pending_rows(st,
                        "SELECT blob_key, bid, kind, shard_id, file_name, size_limit, created_ms FROM uploads"
                        " WHERE state='pending' AND kind='tar' AND created_ms<=?3"
                        " AND (created_ms>?1 OR (created_ms=?1 AND blob_key>?2))"
                        " ORDER BY created_ms, blob_key LIMIT ?4",
                        bind_tar_page, &a, rows, n, e);
}

/* ---- reference ingests ---------------------------------------------------------------------- */

struct ingest_args {
    const char *ws, *batch, *display_name;
    int64_t expiry_ms;
    const struct store_ingest_new *in;
    char **dup;
};

static int ingest_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct ingest_args *a = ud;
    const struct store_ingest_new *in = a->in;
    struct store_batch b;
    struct db_stmt *q = NULL;
    int rc = store__quota_bytes_check(st, c, a->ws, 0, e);
    if (rc == 0)
        rc = store__batch_get_or_create(st, c, a->ws, a->batch, a->display_name, "bulk", a->expiry_ms, &b, e);
    if (rc < 0)
        return rc;
    /* De-duplication: the same ingestId for the same batch answers the
     * first ingest's response and queues nothing.  The ingest row is
     * claimed first: a retry racing the first ingest from another process
     * (PostgreSQL; SQLite's writer lock serialises them) waits here for
     * that commit and then reads its response, instead of failing on the
     * key at the end. */
    rc = db_run(c, e, "INSERT INTO ingests(bid, ingest_id, response, shards_total, created_ms)"
                      " VALUES(?1,?2,?3,?4,?5) ON CONFLICT DO NOTHING", "ittii", b.bid, in->ingest_id, in->response,
                (int64_t)in->nshards, time_now_ms());
    if (rc < 0)
        return rc;
    if (db_changes(c) == 0) {
        if ((rc = db_prepare(c, "SELECT response FROM ingests WHERE bid=?1 AND ingest_id=?2", &q, e)) < 0)
            return rc;
        db_bind_int64(q, 1, b.bid);
        db_bind_text(q, 2, in->ingest_id);
        rc = db_step(q, e);
        if (rc == DB_ROW)
            *a->dup = store__col_dup(q, 0);
        db_finalize(q);
        if (rc == DB_DONE)
            return err_set(e, ERR_AGAIN, "ingest '%s' is being created and removed at once", in->ingest_id);
        return rc < 0 ? rc : 0;
    }
    for (int i = 0; i < in->nshards && rc == 0; i++)
        rc = shard_insert(c, b.bid, in->shards[i].shard_id, in->kind, "queued", "queued", NULL, in->ingest_id,
                          in->notify_url, in->cat_ingest, in->cat_files, in->shards[i].refs, in->shards[i].refs_url,
                          e);
    return rc;
}

int store_ingest_create(struct store *st, const char *ws, const char *batch, const char *display_name,
                        int64_t expiry_ms, const struct store_ingest_new *in, char **dup_response, struct err *e)
{
    struct ingest_args a = {ws, batch, display_name, expiry_ms, in, dup_response};
    *dup_response = NULL;
    int rc = store__staging_tx(st, ingest_body, &a, e);
    if (rc < 0) {
        free(*dup_response);
        *dup_response = NULL;
    }
    return rc;
}

/* ---- shard work ------------------------------------------------------------------------------ */

void store_shard_work_release(struct store_shard_work *w)
{
    if (!w)
        return;
    free(w->ws), free(w->batch), free(w->shard_id), free(w->kind), free(w->blob_key);
    free(w->ingest_id), free(w->notify_url), free(w->refs), free(w->refs_url);
    memset(w, 0, sizeof *w);
}

/* The claimable candidates: `state`, the kind, no live claim. */
#define CLAIM_PICK(kinds, lock)                                                                                   \
    "UPDATE shards SET claim_owner=?2, claim_until=?3 WHERE id = (SELECT id FROM shards"                          \
    " WHERE state=?1 AND kind " kinds " AND (claim_owner IS NULL OR claim_until<=?4)"                             \
    " ORDER BY id LIMIT 1" lock ") RETURNING id"
#define KINDS_TAR "= 'tar'"
#define KINDS_REFS "IN ('image-refs','video-refs')"
#define PG_LOCK " FOR UPDATE SKIP LOCKED"

struct claim_args {
    bool refs;
    const char *state, *owner;
    int64_t lease_ms;
    struct store_shard_work *w;
};

static int claim_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct claim_args *a = ud;
    struct store_shard_work *w = a->w;
    struct db_stmt *q = NULL;
    int64_t now = time_now_ms(), id = -1;
    (void)st;
    bool pg = db_conn_kind(c) == DB_POSTGRES;
    const char *sql = a->refs ? (pg ? CLAIM_PICK(KINDS_REFS, PG_LOCK) : CLAIM_PICK(KINDS_REFS, ""))
                              : (pg ? CLAIM_PICK(KINDS_TAR, PG_LOCK) : CLAIM_PICK(KINDS_TAR, ""));
    int rc = db_prepare(c, sql, &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, a->state);
    db_bind_text(q, 2, a->owner);
    db_bind_int64(q, 3, now + MAX(a->lease_ms, 1));
    db_bind_int64(q, 4, now);
    rc = db_step(q, e);
    if (rc == DB_ROW) {
        id = db_col_int64(q, 0);
        rc = db_step(q, e); /* the end of the RETURNING rows */
    }
    db_finalize(q);
    q = NULL;
    if (rc < 0)
        return rc;
    if (id < 0)
        return ERR_NOTFOUND;
    rc = db_prepare(c, "SELECT sh.bid, b.workspace, b.batch_id, sh.shard_id, sh.kind, sh.blob_key, sh.ingest_id,"
                       " sh.notify_url, sh.cat_ingest, sh.cat_files, sh.refs, sh.refs_url"
                       " FROM shards sh JOIN batches b ON b.bid = sh.bid WHERE sh.id=?1", &q, e);
    if (rc < 0)
        return rc;
    db_bind_int64(q, 1, id);
    rc = db_step(q, e);
    if (rc == DB_DONE) {
        rc = err_set(e, ERR_INTERNAL, "a claimed shard vanished");
    } else if (rc == DB_ROW) {
        w->bid = db_col_int64(q, 0);
        w->ws = store__col_dup(q, 1);
        w->batch = store__col_dup(q, 2);
        w->shard_id = store__col_dup(q, 3);
        w->kind = store__col_dup(q, 4);
        w->blob_key = store__col_dup(q, 5);
        w->ingest_id = store__col_dup(q, 6);
        w->notify_url = store__col_dup(q, 7);
        w->cat_ingest = db_col_int64(q, 8) != 0;
        w->cat_files = db_col_int64(q, 9) != 0;
        w->refs = store__col_dup(q, 10);
        w->refs_url = store__col_dup(q, 11);
        rc = 0;
    }
    db_finalize(q);
    return rc;
}
#undef CLAIM_PICK
#undef KINDS_TAR
#undef KINDS_REFS
#undef PG_LOCK

int store_shard_claim(struct store *st, bool refs, const char *state, const char *owner, int64_t lease_ms,
                      struct store_shard_work *w, struct err *e)
{
    struct claim_args a = {refs, state, owner, lease_ms, w};
    memset(w, 0, sizeof *w);
    int rc = store__staging_tx(st, claim_body, &a, e);
    if (rc < 0)
        store_shard_work_release(w);
    return rc;
}

int store_shard_renew(struct store *st, const char *shard_id, const char *owner, int64_t lease_ms, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_run(c, e, "UPDATE shards SET claim_until=?1 WHERE shard_id=?2 AND claim_owner=?3", "itt",
                    time_now_ms() + MAX(lease_ms, 1), shard_id, owner);
    if (rc == 0 && db_changes(c) != 1)
        rc = err_set(e, ERR_EXISTS, "shard '%s' is no longer claimed by this process", shard_id);
    db_release(d, c);
    return rc;
}

/* Inside a transaction: end owner's claim of the shard. */
static int shard_unclaim(struct db_conn *c, const char *shard_id, const char *owner, struct err *e)
{
    return db_run(c, e, "UPDATE shards SET claim_owner=NULL, claim_until=0 WHERE shard_id=?1 AND claim_owner=?2",
                  "tt", shard_id, owner);
}

int store_shard_unclaim(struct store *st, const char *shard_id, const char *owner, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = shard_unclaim(c, shard_id, owner, e);
    db_release(d, c);
    return rc;
}

/* Inside the transaction on c: queue a webhook (the outbox's owner call,
 * on db.h: either backend). */
static void webhook(struct db_conn *c, const struct store_shard_outcome *o, const char *payload)
{
    const char *url = o->webhook_url;
    struct err e = ERR_INIT;
    if (url && payload && store__outbox_enqueue(c, url, o->ws, o->webhook_key, payload, false, &e) < 0)
        log_warn("staging", "cannot queue webhook to '%s': %s", url, err_text(&e, ERR_INTERNAL));
}

/* Inside a transaction: count a finished shard of a reference ingest and,
 * when it was the last one, queue the ingest-status webhook. */
static void ingest_shard_done(struct db_conn *c, const struct store_shard_outcome *o)
{
    struct db_stmt *q = NULL;
    struct err e = ERR_INIT;
    if (!o->ingest_id)
        return;
    if (db_prepare(c, "UPDATE ingests SET shards_done = shards_done + 1, shards_failed = shards_failed + ?1"
                      " WHERE bid=?2 AND ingest_id=?3 RETURNING shards_done, shards_total, shards_failed",
                   &q, &e) < 0)
        return;
    db_bind_int64(q, 1, o->failed ? 1 : 0);
    db_bind_int64(q, 2, o->bid);
    db_bind_text(q, 3, o->ingest_id);
    if (db_step(q, &e) == DB_ROW) {
        int64_t done = db_col_int64(q, 0), total = db_col_int64(q, 1), nf = db_col_int64(q, 2);
        db_step(q, &e);
        db_finalize(q);
        q = NULL;
        if (done >= total)
            webhook(c, o, nf == 0 ? o->ingest_ok : o->ingest_failed);
    }
    db_finalize(q);
}

static int finish_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    const struct store_shard_outcome *o = ud;
    (void)st;
    int rc = shard_in_state(c, o->shard_id, o->from_state, o->owner, e);
    if (rc == 0)
        return err_set(e, ERR_EXISTS, "shard '%s' was finished or taken over by another process", o->shard_id);
    if (rc < 0)
        return rc;
    rc = o->owner ? shard_unclaim(c, o->shard_id, o->owner, e) : 0;
    for (int i = 0; rc == 0 && i < o->nitems; i++) {
        const struct store_item_new *it = &o->items[i];
        if (it->part && !strcmp(it->part, STORE_METADATA_PART)) {
            rc = store__meta_part_ensure(c, o->bid, e);
            break;
        }
    }
    if (rc == 0)
        rc = store__items_insert(c, o->bid, o->items, o->nitems, e);
    if (rc == 0)
        rc = shard_status(c, o->shard_id, o->state, o->status_name, o->status_type, o->meta, o->objects, e);
    if (rc == 0) {
        webhook(c, o, o->webhook);
        ingest_shard_done(c, o);
    }
    return rc;
}

/* A shard finished on its own (indexer, fetcher): the batch's workspace
 * first, as done_body and a removal take it.  finish_body inserts the
 * items (the batch's counts, then the workspace's staged bytes); after
 * the shard and batch rows alone, on PostgreSQL it would wait for a
 * recording of another shard of the batch that holds the workspace and
 * waits for the batch row: a deadlock. */
static int shard_finish_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    const struct store_shard_outcome *o = ud;
    int rc = ws_lock_by_bid(c, o->bid, e);
    return rc < 0 ? rc : finish_body(st, c, ud, e);
}

int store_shard_finish(struct store *st, const struct store_shard_outcome *o, struct err *e)
{
    return store__staging_tx(st, shard_finish_body, (void *)o, e);
}

struct wait_args {
    const char *shard_id, *from_state, *owner, *meta;
};

static int wait_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct wait_args *a = ud;
    struct db_stmt *q = NULL;
    bool already = false;
    (void)st;
    int rc = shard_in_state(c, a->shard_id, a->from_state, a->owner, e);
    if (rc <= 0)
        return rc < 0 ? rc : err_set(e, ERR_EXISTS, "shard '%s' was finished or taken over", a->shard_id);
    if ((rc = db_prepare(c, "SELECT status_name FROM shards WHERE shard_id=?1", &q, e)) < 0)
        return rc;
    db_bind_text(q, 1, a->shard_id);
    rc = db_step(q, e);
    already = rc == DB_ROW && !strcmp(db_col_text(q, 0), "waiting-for-storage");
    db_finalize(q);
    if (rc < 0)
        return rc;
    rc = already ? 0 : shard_status(c, a->shard_id, a->from_state, "waiting-for-storage", "info", a->meta, 0, e);
    if (rc == 0 && a->owner)
        rc = shard_unclaim(c, a->shard_id, a->owner, e);
    return rc;
}

int store_shard_wait_storage(struct store *st, const char *shard_id, const char *from_state, const char *owner,
                             const char *meta, struct err *e)
{
    struct wait_args a = {shard_id, from_state, owner, meta};
    return store__staging_tx(st, wait_body, &a, e);
}
