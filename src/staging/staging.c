/*
 * staging.c — the staging context, its background threads, batches and
 * the read side of the Data Staging API.
 *
 * Batches: one row per (workspace, batch_id) with an internal, never
 * reused row id `bid`; every blob of the batch lives under "b/<bid>/", so
 * deleting a batch removes one folder.  A batch's ingest_mode is fixed by
 * its first upload: "single" (upload/image, upload/video), "bulk" (tar
 * shards and references) or "output" (job results); single-image and bulk
 * image uploads never mix.  item_count (batch row) and part_counts are
 * kept inside the same transaction as the item inserts, so count is O(1)
 * with or without partName.  Code that inserts items must go through
 * staging__item_insert.
 *
 * Pagination is keyset: a page is "WHERE bid/id > last ORDER BY id LIMIT
 * n+1" on an index that starts with the batch, so page N costs the same as
 * page 1.  The token is base64url("k1:<last id>") — opaque to clients,
 * validated strictly.
 *
 * Threads (staging_start): indexer (tar shards, indexer.c), fetcher
 * (reference ingests, indexer.c), sweeper (expiry) — plus the store's
 * outbox sender.  They wake on a kick or once a second, and all their
 * work is recorded in the database first, so a restart picks up whatever a
 * crash interrupted.
 */
#include "staging/staging.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "staging/staging_int.h"

void staging_opts_default(struct staging_opts *o)
{
    memset(o, 0, sizeof *o);
    o->public_base_url = "http://127.0.0.1:8080";
    o->max_image_bytes = 20971520;
    o->max_video_bytes = 4LL << 30;
    o->max_shard_bytes = 1LL << 30;
    o->max_shard_images = 500;
    o->expiry_ms = 7LL * 24 * 3600 * 1000;
    o->upload_url_ttl_ms = 24LL * 3600 * 1000;
    o->download_url_ttl_ms = 24LL * 3600 * 1000;
    o->sweep_interval_ms = 60000;
    o->default_page_size = 100;
    o->max_page_size = 1000;
    o->max_references = 20000;
    o->net_allow = NULL;
    const char *d = getenv("VBATCH_STAGING_INDEX_DELAY_MS");
    o->index_delay_ms = d ? strtoll(d, NULL, 10) : 0;
}

void staging__batch_prefix(int64_t bid, char out[32])
{
    snprintf(out, 32, "b/%lld", (long long)bid);
}

bool staging__utf8_valid(const char *str)
{
    const unsigned char *p = (const unsigned char *)str;
    while (*p) {
        unsigned c = *p++;
        int more;
        unsigned cp, min;
        if (c < 0x80)
            continue;
        if ((c & 0xe0) == 0xc0) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (; more > 0; more--, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*p & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

bool staging__name_valid(const char *name)
{
    size_t n;
    if (!name || !name[0])
        return false;
    n = strlen(name);
    if (n > 255 || strchr(name, '/') || strchr(name, '\\') || strstr(name, "..") || !strcmp(name, "."))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return false;
    /* Names go out in JSON (lists, exports): jansson refuses non-UTF-8. */
    return staging__utf8_valid(name);
}

/* ---- context and threads ---------------------------------------------------- */

int staging_new(struct store *st, const struct staging_opts *o, struct staging **out, struct err *err)
{
    struct staging *s = xcalloc(1, sizeof *s);
    int rc;
    s->st = st;
    if (o)
        s->o = *o;
    else
        staging_opts_default(&s->o);
    s->base_url = xstrdup(s->o.public_base_url ? s->o.public_base_url : "");
    size_t bl = strlen(s->base_url);
    while (bl > 0 && s->base_url[bl - 1] == '/')
        s->base_url[--bl] = 0;
    s->o.public_base_url = s->base_url;
    s->net_allow = s->o.net_allow ? xstrdup(s->o.net_allow) : NULL;
    s->o.net_allow = s->net_allow;
    if (s->o.max_page_size <= 0)
        s->o.max_page_size = 1000;
    if (s->o.default_page_size <= 0 || s->o.default_page_size > s->o.max_page_size)
        s->o.default_page_size = MIN(100, s->o.max_page_size);
    if (s->o.max_shard_images <= 0)
        s->o.max_shard_images = 500;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (s->net_allow && (rc = store_net_allow_set(st, s->net_allow)) < 0) {
        err_printf(err, "bad network allow-list '%s'", s->net_allow);
        goto fail;
    }
    if ((rc = store_migrate(st, "staging", staging__migrations, staging__migrations_n)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    staging_free(s);
    return rc;
}

void staging__kick(struct staging *s, bool index, bool fetch)
{
    pthread_mutex_lock(&s->mu);
    s->kick_index |= index;
    s->kick_fetch |= fetch;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Wait up to ms for a kick of the given kind (NULL = any) or stop.
 * Returns false when the thread must exit. */
static bool wait_kick(struct staging *s, bool *flag, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stop && !(flag && *flag))
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    if (flag)
        *flag = false;
    bool go = !s->stop;
    pthread_mutex_unlock(&s->mu);
    return go;
}

static void *index_main(void *arg)
{
    struct staging *s = arg;
    do {
        int n = 0;
        staging_index_pending(s, &n);
    } while (wait_kick(s, &s->kick_index, 1000));
    return NULL;
}

static void *fetch_main(void *arg)
{
    struct staging *s = arg;
    do {
        int n = 0;
        staging_fetch_pending(s, &n);
    } while (wait_kick(s, &s->kick_fetch, 1000));
    return NULL;
}

static void *sweep_main(void *arg)
{
    struct staging *s = arg;
    int64_t period = s->o.sweep_interval_ms > 0 ? s->o.sweep_interval_ms : 60000;
    while (wait_kick(s, NULL, period)) {
        int removed = 0;
        staging_sweep(s, time_now_ms(), &removed);
        store_tmp_sweep(s->st, 24LL * 3600 * 1000);
        store_outbox_purge(s->st, 7LL * 24 * 3600 * 1000, NULL);
    }
    return NULL;
}

int staging_start(struct staging *s, struct err *err)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->running) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    s->stop = false;
    s->kick_index = s->kick_fetch = true;
    pthread_mutex_unlock(&s->mu);
    if ((rc = store_outbox_start(s->st, NULL)) < 0)
        return err_set(err, rc, "cannot start the webhook sender: %s", err_str(rc));
    if (pthread_create(&s->th_index, NULL, index_main, s) != 0)
        return err_set(err, ERR_INTERNAL, "cannot start the shard indexer thread");
    if (pthread_create(&s->th_fetch, NULL, fetch_main, s) != 0)
        goto fail1;
    if (pthread_create(&s->th_sweep, NULL, sweep_main, s) != 0)
        goto fail2;
    pthread_mutex_lock(&s->mu);
    s->running = true;
    pthread_mutex_unlock(&s->mu);
    return 0;
fail2:
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th_fetch, NULL);
    pthread_join(s->th_index, NULL);
    return err_set(err, ERR_INTERNAL, "cannot start the staging threads");
fail1:
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th_index, NULL);
    return err_set(err, ERR_INTERNAL, "cannot start the staging threads");
}

void staging_stop(struct staging *s)
{
    pthread_mutex_lock(&s->mu);
    bool running = s->running;
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (running) {
        pthread_join(s->th_index, NULL);
        pthread_join(s->th_fetch, NULL);
        pthread_join(s->th_sweep, NULL);
        store_outbox_stop(s->st);
    }
    pthread_mutex_lock(&s->mu);
    s->running = false;
    pthread_mutex_unlock(&s->mu);
}

void staging_free(struct staging *s)
{
    if (!s)
        return;
    staging_stop(s);
    while (s->putting) { /* only if a writer outlived the server: not expected */
        struct staging__putting *e = s->putting;
        s->putting = e->next;
        free(e);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->base_url);
    free(s->net_allow);
    free(s);
}

/* ---- batches ---------------------------------------------------------------------- */

static int batch_row(sqlite3 *db, const char *ws, const char *batch, struct staging__batch *out)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT bid, ingest_mode, batch_type, content_type FROM batches"
                               " WHERE workspace=? AND batch_id=? AND expires_ms>?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, batch, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, time_now_ms());
        int s = sqlite3_step(q);
        if (s == SQLITE_ROW) {
            out->bid = sqlite3_column_int64(q, 0);
            snprintf(out->mode, sizeof out->mode, "%s", (const char *)sqlite3_column_text(q, 1));
            snprintf(out->type, sizeof out->type, "%s", (const char *)sqlite3_column_text(q, 2));
            snprintf(out->content, sizeof out->content, "%s", (const char *)sqlite3_column_text(q, 3));
            rc = 0;
        } else if (s == SQLITE_DONE) {
            rc = ERR_NOTFOUND;
        }
    }
    sqlite3_finalize(q);
    return rc;
}

int staging__batch_find(struct staging *s, sqlite3 *db, const char *ws, const char *batch,
                        struct staging__batch *out, struct err *err)
{
    (void)s;
    if (!id_valid(batch, 64)) {
        err_printf(err, "invalid batch id '%.80s': use 1-64 of a-z 0-9 _ -", batch ? batch : "");
        return ERR_INVALID;
    }
    int rc = batch_row(db, ws, batch, out);
    if (rc == ERR_NOTFOUND)
        err_printf(err, "batch '%s' not found", batch);
    return rc;
}

/* Inside a transaction: delete a batch row; the child tables cascade,
 * the shard status history (keyed by shard id) is deleted here. */
static int batch_rows_delete(sqlite3 *db, int64_t bid)
{
    static const char *const sql[] = {
        "DELETE FROM shard_events WHERE shard IN (SELECT shard_id FROM shards WHERE bid=?)",
        "DELETE FROM batches WHERE bid=?",
    };
    for (size_t i = 0; i < ARRAY_LEN(sql); i++) {
        sqlite3_stmt *q = NULL;
        int ok = sqlite3_prepare_v2(db, sql[i], -1, &q, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_int64(q, 1, bid);
            ok = sqlite3_step(q) == SQLITE_DONE;
        }
        sqlite3_finalize(q);
        if (!ok)
            return ERR_INTERNAL;
    }
    return 0;
}

/* Remove a batch row that expired but was not swept yet (with its blob
 * folder), so that the id can be used again. */
static int drop_expired(struct staging *s, sqlite3 *db, const char *ws, const char *batch)
{
    sqlite3_stmt *q = NULL;
    int64_t bid = -1;
    int rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT bid FROM batches WHERE workspace=? AND batch_id=? AND expires_ms<=?", -1,
                           &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, batch, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, time_now_ms());
    if (sqlite3_step(q) == SQLITE_ROW)
        bid = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    q = NULL;
    rc = 0;
    if (bid < 0)
        goto out;
    char prefix[32];
    staging__batch_prefix(bid, prefix);
    store_blob_delete_prefix(s->st, prefix);
    rc = batch_rows_delete(db, bid);
out:
    sqlite3_finalize(q);
    return rc;
}

int staging__batch_get_or_create(struct staging *s, sqlite3 *db, const char *ws, const char *batch,
                                 const char *display_name, const char *create_mode, struct staging__batch *out, struct err *err)
{
    sqlite3_stmt *q = NULL;
    int rc = staging__batch_find(s, db, ws, batch, out, err);
    if (rc == 0 && create_mode) {
        if (!strcmp(out->mode, "output")) {
            err_printf(err, "batch '%s' holds job outputs and cannot take uploads", batch);
            return ERR_INVALID;
        }
        if (strcmp(out->mode, create_mode) != 0) {
            err_printf(err, "batch '%s' was filled by %s uploads; single-image and bulk uploads cannot be "
                         "combined in one batch: use another batch id",
                         batch, !strcmp(out->mode, "single") ? "single-image" : "bulk");
            return ERR_INVALID;
        }
        return 0;
    }
    if (rc != ERR_NOTFOUND || !create_mode)
        return rc;
    if (display_name && strlen(display_name) > 256) {
        err_printf(err, "displayName is longer than 256 bytes");
        return ERR_INVALID;
    }
    if (display_name && !staging__utf8_valid(display_name)) {
        err_printf(err, "displayName is not valid UTF-8");
        return ERR_INVALID;
    }
    if ((rc = drop_expired(s, db, ws, batch)) < 0)
        return rc;
    const char *type = !strcmp(create_mode, "single") ? "simple-batch"
                       : !strcmp(create_mode, "bulk") ? "sharded-batch"
                                                      : "multipart-batch";
    int64_t now = time_now_ms();
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "INSERT INTO batches(workspace, batch_id, display_name, batch_type, content_type,"
                               " ingest_mode, created_ms, expires_ms) VALUES(?,?,?,?,?,?,?,?)", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, batch, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, display_name && *display_name ? display_name : batch, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, !strcmp(create_mode, "output") ? "mixed" : "images", -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, create_mode, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 7, now);
        sqlite3_bind_int64(q, 8, now + s->o.expiry_ms);
        if (sqlite3_step(q) == SQLITE_DONE) {
            out->bid = sqlite3_last_insert_rowid(db);
            snprintf(out->mode, sizeof out->mode, "%s", create_mode);
            snprintf(out->type, sizeof out->type, "%s", type);
            snprintf(out->content, sizeof out->content, "%s", "images");
            rc = 0;
        }
    }
    if (rc == ERR_INTERNAL) /* a failed step: busy, full or internal */
        rc = store_sql_err(db, sqlite3_errcode(db));
    sqlite3_finalize(q);
    return rc;
}

int staging__item_insert(sqlite3 *db, int64_t bid, const char *part, const char *name, const char *shard_id,
                         const char *content_type, const char *mime, const char *blob_key, int64_t size)
{
    static const char sql_item[] = "INSERT INTO items(bid, part, name, shard_id, content_type, mime, blob_key,"
                                   " size, created_ms) VALUES(?,?,?,?,?,?,?,?,?)";
    /* The first item decides the content type; a different kind makes it
     * mixed.  Sidecars (metadata items) never change it. */
    static const char sql_batch[] =
        "UPDATE batches SET item_count = item_count + 1, content_type = CASE"
        " WHEN ingest_mode='output' THEN content_type"
        " WHEN ?2 = 'metadata' THEN content_type"
        " WHEN item_count - COALESCE((SELECT n FROM part_counts WHERE bid=?1 AND part='" STAGING_METADATA_PART "'),"
        " 0) = 0 THEN ?2"
        " WHEN content_type <> ?2 THEN 'mixed' ELSE content_type END WHERE bid=?1";
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, sql_item, -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(q, 1, bid);
    if (part)
        sqlite3_bind_text(q, 2, part, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, name, -1, SQLITE_STATIC);
    if (shard_id)
        sqlite3_bind_text(q, 4, shard_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, content_type, -1, SQLITE_STATIC);
    if (mime)
        sqlite3_bind_text(q, 6, mime, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, blob_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 8, size);
    sqlite3_bind_int64(q, 9, time_now_ms());
    if (sqlite3_step(q) != SQLITE_DONE)
        goto out;
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_prepare_v2(db, sql_batch, -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(q, 1, bid);
    sqlite3_bind_text(q, 2, !strcmp(content_type, "image") ? "images"
                            : !strcmp(content_type, "video") ? "videos"
                                                             : content_type, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto out;
    sqlite3_finalize(q);
    q = NULL;
    if (part) {
        if (sqlite3_prepare_v2(db, "INSERT INTO part_counts(bid, part, n) VALUES(?,?,1)"
                                   " ON CONFLICT(bid, part) DO UPDATE SET n = n + 1", -1, &q, NULL) != SQLITE_OK)
            goto out;
        sqlite3_bind_int64(q, 1, bid);
        sqlite3_bind_text(q, 2, part, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        log_error("staging", "item insert failed: %s", sqlite3_errmsg(db));
        rc = store_sql_err(db, sqlite3_errcode(db));
    }
    sqlite3_finalize(q);
    return rc;
}

bool staging__sidecar_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".json") && strcmp(name, "notification_config.json") != 0;
}

int staging__sidecar_check(const void *data, size_t len, const char **why)
{
    if (len > STAGING_SIDECAR_MAX) {
        *why = "a metadata file (.json) must be at most 65536 bytes";
        return ERR_LIMIT;
    }
    json_t *j = NULL;
    if (json_parse_outside(data, len, JSON_REJECT_DUPLICATES, &j, NULL, 0) == ERR_LIMIT) {
        *why = "a metadata file (.json) may nest arrays and objects at most 64 levels deep";
        return ERR_INVALID;
    }
    bool ok = json_is_object(j);
    json_decref(j);
    if (!ok) {
        *why = "a metadata file (.json) must hold one JSON object";
        return ERR_INVALID;
    }
    *why = NULL;
    return 0;
}

int staging__sidecar_part_ensure(sqlite3 *db, int64_t bid)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO parts(bid, part_name, part_type, content_type, description)"
                               " VALUES(?,'" STAGING_METADATA_PART "','file-part','metadata',"
                               "'per-image metadata (<image file name>.json)')", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, bid);
        rc = store_step_done(db, q);
    }
    if (rc < 0)
        log_error("staging", "metadata part insert failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(q);
    return rc;
}

int staging__shard_status(sqlite3 *db, const char *shard_id, const char *state, const char *status_name,
                          const char *status_type, json_t *meta, int64_t objects)
{
    sqlite3_stmt *q = NULL;
    char *m = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    int64_t now = time_now_ms();
    int rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "UPDATE shards SET state=?, status_name=?, status_type=?, status_meta=?,"
                               " objects=?, event_ms=? WHERE shard_id=?", -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(q, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, status_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, status_type, -1, SQLITE_STATIC);
    if (m)
        sqlite3_bind_text(q, 4, m, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, objects);
    sqlite3_bind_int64(q, 6, now);
    sqlite3_bind_text(q, 7, shard_id, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto out;
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO shard_events(shard, status_name, status_type, meta, event_ms)"
                               " VALUES(?,?,?,?,?)", -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(q, 1, shard_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, status_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, status_type, -1, SQLITE_STATIC);
    if (m)
        sqlite3_bind_text(q, 4, m, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, now);
    rc = store_step_done(db, q);
out:
    if (rc == ERR_INTERNAL) /* a failed step: busy, full or internal */
        rc = store_sql_err(db, sqlite3_errcode(db));
    sqlite3_finalize(q);
    free(m);
    return rc;
}

/* ---- pagination ------------------------------------------------------------------ */

#define PAGE_SCOPE_MAX 512 /* "items|<ws>|<batch>|<part>": ids of bounded length */

/* pageSize and nextPageToken of a listing; scope names the listing so that
 * its tokens are refused by any other (page_token_make in base.h). */
static int page_args(struct staging *s, const char *scope, int page_size, const char *token, int *limit,
                     int64_t *after, struct err *err)
{
    *after = 0;
    if (page_size <= 0)
        page_size = s->o.default_page_size;
    if (page_size > s->o.max_page_size) {
        err_printf(err, "pageSize must be between 1 and %d", s->o.max_page_size);
        return ERR_INVALID;
    }
    *limit = page_size;
    if (page_token_parse(scope, token, after) < 0) {
        err_printf(err, "invalid nextPageToken: not one this listing gave");
        return ERR_INVALID;
    }
    return 0;
}

static json_t *page_token(const char *scope, int64_t last)
{
    char *t = page_token_make(scope, last);
    json_t *j = json_string(t);
    free(t);
    return j;
}

static json_t *ts_json(int64_t ms)
{
    char b[TIME_ISO_LEN];
    time_iso8601(ms, b);
    return json_string(b);
}

static const char *col_text(sqlite3_stmt *q, int i)
{
    return (const char *)sqlite3_column_text(q, i);
}

static json_t *batch_json(sqlite3_stmt *q, int off)
{
    json_t *b = json_object();
    json_object_set_new(b, "displayName", json_string(col_text(q, off + 0)));
    json_object_set_new(b, "batchId", json_string(col_text(q, off + 1)));
    json_object_set_new(b, "batchType", json_string(col_text(q, off + 2)));
    json_object_set_new(b, "batchContentType", json_string(col_text(q, off + 3)));
    json_object_set_new(b, "createdDate", ts_json(sqlite3_column_int64(q, off + 4)));
    json_object_set_new(b, "expiryDate", ts_json(sqlite3_column_int64(q, off + 5)));
    return b;
}

int staging_list_batches(struct staging *s, const char *ws, int page_size, const char *page_token_s, json_t **out, struct err *err)
{
    int limit;
    int64_t after;
    char scope[PAGE_SCOPE_MAX];
    snprintf(scope, sizeof scope, "batches|%s", ws);
    int rc = page_args(s, scope, page_size, page_token_s, &limit, &after, err);
    if (rc < 0)
        return rc;
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    json_t *arr = json_array(), *next = json_null();
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT bid, display_name, batch_id, batch_type, content_type, created_ms,"
                               " expires_ms FROM batches WHERE workspace=? AND bid>? AND expires_ms>?"
                               " ORDER BY bid LIMIT ?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, after);
        sqlite3_bind_int64(q, 3, time_now_ms());
        sqlite3_bind_int(q, 4, limit + 1);
        int st, n = 0;
        int64_t last = 0;
        while ((st = sqlite3_step(q)) == SQLITE_ROW) {
            if (n == limit) {
                json_decref(next);
                next = page_token(scope, last);
                break;
            }
            last = sqlite3_column_int64(q, 0);
            json_array_append_new(arr, batch_json(q, 1));
            n++;
        }
        if (st == SQLITE_ROW || st == SQLITE_DONE)
            rc = 0;
    }
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    if (rc < 0) {
        json_decref(arr);
        json_decref(next);
        err_printf(err, "database error");
        return rc;
    }
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "batches", arr, "nextPageToken", next);
    return 0;
}

int staging_batch_get(struct staging *s, const char *ws, const char *batch, json_t **out, struct err *err)
{
    struct staging__batch b;
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    int rc = staging__batch_find(s, db, ws, batch, &b, err);
    if (rc < 0)
        goto out;
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT display_name, batch_id, batch_type, content_type, created_ms, expires_ms"
                               " FROM batches WHERE bid=?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, b.bid);
        if (sqlite3_step(q) == SQLITE_ROW) {
            *out = json_pack("{s:s,s:o}", "status", "ok", "batch", batch_json(q, 0));
            rc = 0;
        }
    }
out:
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    return rc;
}

int staging_items_count(struct staging *s, const char *ws, const char *batch, const char *part, int64_t *n, struct err *err)
{
    struct staging__batch b;
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    int rc = staging__batch_find(s, db, ws, batch, &b, err);
    if (rc < 0)
        goto out;
    rc = ERR_INTERNAL;
    const char *sql = part ? "SELECT n FROM part_counts WHERE bid=? AND part=?"
                           : "SELECT item_count FROM batches WHERE bid=?";
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, b.bid);
        if (part)
            sqlite3_bind_text(q, 2, part, -1, SQLITE_STATIC);
        int st = sqlite3_step(q);
        if (st == SQLITE_ROW || (part && st == SQLITE_DONE)) {
            *n = st == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
            rc = 0;
        }
    }
out:
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    return rc;
}

int staging_batch_count(struct staging *s, const char *ws, const char *batch, const char *part_name, json_t **out, struct err *err)
{
    int64_t n = 0;
    int rc = staging_items_count(s, ws, batch, part_name && *part_name ? part_name : NULL, &n, err);
    if (rc == 0)
        *out = json_pack("{s:s,s:I}", "status", "ok", "count", (json_int_t)n);
    return rc;
}

int staging_batch_parts(struct staging *s, const char *ws, const char *batch, json_t **out, struct err *err)
{
    struct staging__batch b;
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    json_t *arr = json_array();
    int rc = staging__batch_find(s, db, ws, batch, &b, err);
    if (rc < 0)
        goto out;
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT part_name, part_type, content_type, description, nested_content_type"
                               " FROM parts WHERE bid=? ORDER BY part_name", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, b.bid);
        int st;
        while ((st = sqlite3_step(q)) == SQLITE_ROW) {
            json_t *p = json_pack("{s:s,s:s,s:s}", "partName", col_text(q, 0), "partType", col_text(q, 1),
                                  "contentType", col_text(q, 2));
            if (col_text(q, 3))
                json_object_set_new(p, "partDescription", json_string(col_text(q, 3)));
            if (col_text(q, 4))
                json_object_set_new(p, "nestedContentType", json_string(col_text(q, 4)));
            json_array_append_new(arr, p);
        }
        if (st == SQLITE_DONE)
            rc = 0;
    }
out:
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    /* "batchParts" is what the CLI reads, "parts" what the seed documents */
    *out = json_pack("{s:s,s:O,s:o}", "status", "ok", "batchParts", arr, "parts", arr);
    return 0;
}

static char *download_url(struct staging *s, const char *key)
{
    char *path = NULL;
    int64_t exp = (time_now_ms() + s->o.download_url_ttl_ms) / 1000;
    if (store_sign_path(s->st, "GET", key, exp, 0, &path) < 0)
        return NULL;
    char *url = xasprintf("%s%s", s->base_url, path);
    free(path);
    return url;
}

int staging_list_items(struct staging *s, const char *ws, const char *batch, const char *part_name, int page_size,
                       const char *page_token_s, json_t **out, struct err *err)
{
    struct staging__batch b;
    int limit;
    int64_t after;
    char scope[PAGE_SCOPE_MAX];
    if (part_name && !*part_name)
        part_name = NULL;
    snprintf(scope, sizeof scope, "items|%s|%s|%s", ws, batch, part_name ? part_name : "");
    int rc = page_args(s, scope, page_size, page_token_s, &limit, &after, err);
    if (rc < 0)
        return rc;
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    json_t *arr = json_array(), *next = json_null();
    if ((rc = staging__batch_find(s, db, ws, batch, &b, err)) < 0)
        goto out;
    rc = ERR_INTERNAL;
    /* nestedContentType: the item's part says what its archives hold */
#define LIST_COLS                                                                                \
    "SELECT i.id, i.name, i.part, i.shard_id, i.content_type, i.blob_key, p.nested_content_type"  \
    " FROM items i LEFT JOIN parts p ON p.bid=i.bid AND p.part_name=i.part"
    const char *sql = part_name ? LIST_COLS " WHERE i.bid=?1 AND i.part=?4 AND i.id>?2 ORDER BY i.id LIMIT ?3"
                                : LIST_COLS " WHERE i.bid=?1 AND i.id>?2 ORDER BY i.id LIMIT ?3";
#undef LIST_COLS
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(q, 1, b.bid);
    sqlite3_bind_int64(q, 2, after);
    sqlite3_bind_int(q, 3, limit + 1);
    if (part_name)
        sqlite3_bind_text(q, 4, part_name, -1, SQLITE_STATIC);
    int st, n = 0;
    int64_t last = 0;
    while ((st = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == limit) {
            json_decref(next);
            next = page_token(scope, last);
            break;
        }
        last = sqlite3_column_int64(q, 0);
        char *url = download_url(s, col_text(q, 5));
        json_t *f = json_pack("{s:s?,s:s,s:s}", "downloadURL", url, "fileName", col_text(q, 1), "contentType",
                              col_text(q, 4));
        free(url);
        if (col_text(q, 2))
            json_object_set_new(f, "partName", json_string(col_text(q, 2)));
        if (col_text(q, 3))
            json_object_set_new(f, "shardId", json_string(col_text(q, 3)));
        if (col_text(q, 6))
            json_object_set_new(f, "nestedContentType", json_string(col_text(q, 6)));
        json_array_append_new(arr, f);
        n++;
    }
    if (st == SQLITE_ROW || st == SQLITE_DONE)
        rc = 0;
out:
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    if (rc < 0) {
        json_decref(arr);
        json_decref(next);
        return rc;
    }
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "filesMetadata", arr, "nextPageToken", next);
    return 0;
}

int staging_list_shards(struct staging *s, const char *ws, const char *batch, int page_size,
                        const char *page_token_s, json_t **out, struct err *err)
{
    struct staging__batch b;
    int limit;
    int64_t after;
    char scope[PAGE_SCOPE_MAX];
    snprintf(scope, sizeof scope, "shards|%s|%s", ws, batch);
    int rc = page_args(s, scope, page_size, page_token_s, &limit, &after, err);
    if (rc < 0)
        return rc;
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    json_t *arr = json_array(), *next = json_null();
    if ((rc = staging__batch_find(s, db, ws, batch, &b, err)) < 0)
        goto out;
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT id, shard_id, status_name, status_type, event_ms, objects, status_meta"
                               " FROM shards WHERE bid=? AND id>? ORDER BY id LIMIT ?", -1, &q, NULL))
        goto out;
    sqlite3_bind_int64(q, 1, b.bid);
    sqlite3_bind_int64(q, 2, after);
    sqlite3_bind_int(q, 3, limit + 1);
    int st, n = 0;
    int64_t last = 0;
    while ((st = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == limit) {
            json_decref(next);
            next = page_token(scope, last);
            break;
        }
        last = sqlite3_column_int64(q, 0);
        json_t *meta = col_text(q, 6) ? json_loads(col_text(q, 6), 0, NULL) : NULL;
        if (!json_is_object(meta)) {
            json_decref(meta);
            meta = json_object();
        }
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:o,s:I,s:o}", "shardId", col_text(q, 1), "statusName",
                                             col_text(q, 2), "statusType", col_text(q, 3), "eventTimestamp",
                                             ts_json(sqlite3_column_int64(q, 4)), "shardObjectsCount",
                                             (json_int_t)sqlite3_column_int64(q, 5), "statusMetadata", meta));
        n++;
    }
    if (st == SQLITE_ROW || st == SQLITE_DONE)
        rc = 0;
out:
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    if (rc < 0) {
        json_decref(arr);
        json_decref(next);
        return rc;
    }
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "shards", arr, "nextPageToken", next);
    return 0;
}

/* ---- items for jobs, output batches -------------------------------------------------- */

static char *dup_col(sqlite3_stmt *q, int i)
{
    const char *t = col_text(q, i);
    return t ? xstrdup(t) : NULL;
}

static void item_fill(sqlite3_stmt *q, struct staging_item *it)
{
    it->id = sqlite3_column_int64(q, 0);
    it->name = dup_col(q, 1);
    it->part = dup_col(q, 2);
    it->shard_id = dup_col(q, 3);
    it->content_type = dup_col(q, 4);
    it->mime = dup_col(q, 5);
    it->blob_key = dup_col(q, 6);
    it->size = sqlite3_column_int64(q, 7);
}

static int items_page(struct staging *s, const char *ws, const char *batch, const char *part, bool media_only,
                      int64_t after_id, int limit, struct staging_item **items, int *n, struct err *err)
{
    struct staging__batch b;
    struct staging_item *arr = NULL;
    int cnt = 0;
    if (limit <= 0 || limit > 10000) {
        err_printf(err, "limit must be 1..10000");
        return ERR_INVALID;
    }
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    int rc = staging__batch_find(s, db, ws, batch, &b, err);
    if (rc < 0)
        goto out;
    rc = ERR_INTERNAL;
    char *sql = xasprintf("SELECT id, name, part, shard_id, content_type, mime, blob_key, size FROM items"
                          " WHERE bid=?1 AND %s id>?2 %s ORDER BY id LIMIT ?3", part ? "part=?4 AND" : "",
                          media_only ? "AND content_type <> 'metadata'" : "");
    int prc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    free(sql);
    if (prc != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(q, 1, b.bid);
    sqlite3_bind_int64(q, 2, after_id);
    sqlite3_bind_int(q, 3, limit);
    if (part)
        sqlite3_bind_text(q, 4, part, -1, SQLITE_STATIC);
    arr = xcalloc((size_t)limit, sizeof *arr);
    int st;
    while ((st = sqlite3_step(q)) == SQLITE_ROW)
        item_fill(q, &arr[cnt++]);
    if (st == SQLITE_DONE)
        rc = 0;
out:
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    if (rc < 0) {
        staging_items_free(arr, cnt);
        return rc;
    }
    *items = arr;
    *n = cnt;
    return 0;
}

int staging_items_page(struct staging *s, const char *ws, const char *batch, const char *part, int64_t after_id,
                       int limit, struct staging_item **items, int *n, struct err *err)
{
    return items_page(s, ws, batch, part, false, after_id, limit, items, n, err);
}

int staging_items_page_media(struct staging *s, const char *ws, const char *batch, const char *part,
                             int64_t after_id, int limit, struct staging_item **items, int *n, struct err *err)
{
    return items_page(s, ws, batch, part, true, after_id, limit, items, n, err);
}

int staging_item_find(struct staging *s, const char *ws, const char *batch, const char *part, const char *name,
                      struct staging_item *out, struct err *err)
{
    struct staging__batch b;
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    memset(out, 0, sizeof *out);
    int rc = staging__batch_find(s, db, ws, batch, &b, err);
    if (rc < 0)
        goto out;
    rc = ERR_INTERNAL;
    /* Served by items_name(bid, part, name, id). */
    const char *sql = part ? "SELECT id, name, part, shard_id, content_type, mime, blob_key, size FROM items"
                             " WHERE bid=?1 AND part=?2 AND name=?3 ORDER BY id DESC LIMIT 1"
                           : "SELECT id, name, part, shard_id, content_type, mime, blob_key, size FROM items"
                             " WHERE bid=?1 AND part IS NULL AND name=?3 ORDER BY id DESC LIMIT 1";
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(q, 1, b.bid);
    if (part)
        sqlite3_bind_text(q, 2, part, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, name, -1, SQLITE_STATIC);
    int st = sqlite3_step(q);
    if (st == SQLITE_ROW) {
        item_fill(q, out);
        rc = 0;
    } else if (st == SQLITE_DONE) {
        err_printf(err, "no item '%.255s' in the batch", name);
        rc = ERR_NOTFOUND;
    }
out:
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    return rc;
}

void staging_item_release(struct staging_item *it)
{
    if (!it)
        return;
    free(it->name);
    free(it->part);
    free(it->shard_id);
    free(it->content_type);
    free(it->mime);
    free(it->blob_key);
    memset(it, 0, sizeof *it);
}

void staging_items_free(struct staging_item *items, int n)
{
    if (!items)
        return;
    for (int i = 0; i < n; i++) {
        free(items[i].name);
        free(items[i].part);
        free(items[i].shard_id);
        free(items[i].content_type);
        free(items[i].mime);
        free(items[i].blob_key);
    }
    free(items);
}

int staging_output_batch_create(struct staging *s, const char *ws, const char *batch, const char *display_name, struct err *err)
{
    struct staging__batch b;
    sqlite3 *db = store_db_acquire(s->st);
    int rc = store_tx_begin(db);
    if (rc == 0) {
        rc = staging__batch_find(s, db, ws, batch, &b, err);
        if (rc == 0) {
            err_printf(err, "batch '%s' already exists", batch);
            rc = ERR_EXISTS;
        } else if (rc == ERR_NOTFOUND) {
            rc = staging__batch_get_or_create(s, db, ws, batch, display_name, "output", &b, err);
        }
    }
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    return rc;
}

int staging_output_part_add(struct staging *s, const char *ws, const char *batch, const char *part,
                            const char *part_type, const char *content_type, const char *description,
                            const char *nested_content_type, struct err *err)
{
    struct staging__batch b;
    sqlite3_stmt *q = NULL;
    if (!id_valid(part, 64) || !part_type || !content_type) {
        err_printf(err, "invalid part");
        return ERR_INVALID;
    }
    sqlite3 *db = store_db_acquire(s->st);
    int rc = store_tx_begin(db);
    if (rc == 0)
        rc = staging__batch_find(s, db, ws, batch, &b, err);
    if (rc == 0) {
        rc = ERR_INTERNAL;
        if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO parts(bid, part_name, part_type, content_type,"
                                   " description, nested_content_type) VALUES(?,?,?,?,?,?)", -1, &q,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_int64(q, 1, b.bid);
            sqlite3_bind_text(q, 2, part, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, part_type, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 4, content_type, -1, SQLITE_STATIC);
            if (description)
                sqlite3_bind_text(q, 5, description, -1, SQLITE_STATIC);
            if (nested_content_type)
                sqlite3_bind_text(q, 6, nested_content_type, -1, SQLITE_STATIC);
            rc = store_step_done(db, q);
        }
        sqlite3_finalize(q);
    }
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    return rc;
}

int staging_output_item_add(struct staging *s, const char *ws, const char *batch, const char *part,
                            const char *file_name, const char *content_type, const char *mime,
                            const char *blob_key, int64_t size, struct err *err)
{
    struct staging__batch b;
    if (!staging__name_valid(file_name) || !store_blob_key_valid(blob_key) || !content_type) {
        err_printf(err, "invalid output item");
        return ERR_INVALID;
    }
    sqlite3 *db = store_db_acquire(s->st);
    int rc = store_tx_begin(db);
    if (rc == 0)
        rc = staging__batch_find(s, db, ws, batch, &b, err);
    if (rc == 0)
        rc = staging__item_insert(db, b.bid, part, file_name, NULL, content_type, mime, blob_key, size);
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    return rc;
}

/* ---- expiry ------------------------------------------------------------------------ */

int staging_sweep(struct staging *s, int64_t now_ms, int *removed)
{
    int count = 0, rc = 0;
    for (;;) {
        sqlite3 *db = store_db_acquire(s->st);
        sqlite3_stmt *q = NULL;
        int64_t bid = -1;
        char **keys = NULL;
        int nkeys = 0;
        if (sqlite3_prepare_v2(db, "SELECT bid FROM batches WHERE expires_ms<=? ORDER BY expires_ms LIMIT 1", -1,
                               &q, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(q, 1, now_ms);
            if (sqlite3_step(q) == SQLITE_ROW)
                bid = sqlite3_column_int64(q, 0);
        }
        sqlite3_finalize(q);
        q = NULL;
        if (bid < 0) {
            store_db_release(s->st, db);
            break;
        }
        char prefix[32], pfx_slash[40];
        staging__batch_prefix(bid, prefix);
        snprintf(pfx_slash, sizeof pfx_slash, "%s/", prefix);
        /* Output items may point at blobs outside the batch folder. */
        if (sqlite3_prepare_v2(db, "SELECT blob_key FROM items WHERE bid=? AND substr(blob_key,1,?)<>?", -1, &q,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_int64(q, 1, bid);
            sqlite3_bind_int(q, 2, (int)strlen(pfx_slash));
            sqlite3_bind_text(q, 3, pfx_slash, -1, SQLITE_STATIC);
            while (sqlite3_step(q) == SQLITE_ROW) {
                keys = xrealloc(keys, (size_t)(nkeys + 1) * sizeof *keys);
                keys[nkeys++] = xstrdup(col_text(q, 0));
            }
        }
        sqlite3_finalize(q);
        q = NULL;
        /* Blobs first, rows second: a crash in between leaves rows of an
         * expired batch (swept again), never blobs nobody points at. */
        for (int i = 0; i < nkeys; i++) {
            store_blob_delete(s->st, keys[i]);
            free(keys[i]);
        }
        free(keys);
        store_blob_delete_prefix(s->st, prefix);
        /* Items go in chunks of 10k, each its own short transaction, so a
         * 1M-item batch never holds the write lock for seconds. */
        for (;;) {
            int changed = -1;
            if (store_tx_begin(db) == 0 &&
                sqlite3_prepare_v2(db, "DELETE FROM items WHERE id IN (SELECT id FROM items WHERE bid=? LIMIT 10000)",
                                   -1, &q, NULL) == SQLITE_OK) {
                sqlite3_bind_int64(q, 1, bid);
                if (sqlite3_step(q) == SQLITE_DONE)
                    changed = sqlite3_changes(db);
            }
            sqlite3_finalize(q);
            q = NULL;
            if (changed < 0 || store_tx_commit(db) < 0) {
                store_tx_rollback(db);
                break;
            }
            if (changed == 0)
                break;
        }
        rc = store_tx_begin(db);
        if (rc == 0)
            rc = batch_rows_delete(db, bid);
        rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
        store_db_release(s->st, db);
        if (rc < 0)
            break;
        count++;
        log_info("staging", "expired batch removed bid=%lld", (long long)bid);
    }
    if (removed)
        *removed = count;
    return rc;
}
