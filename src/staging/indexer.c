/*
 * indexer.c — background ingest work: tar shards become items (indexer
 * thread) and reference ingests are fetched (fetcher thread); both report
 * through shard statuses and the webhook outbox.
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
 * Crash safety: a shard's images are written as blobs under the
 * deterministic keys b/<bid>/s/<shard>/<n> (refs: .../r/<shard>/<n>), the
 * file system is synced, and only then are all item rows inserted — in ONE
 * transaction together with the state change that takes the shard out of
 * "uploaded"/"queued".  A crash before the commit leaves the shard in its
 * old state, with no item visible; on restart it is processed again and
 * its blobs are overwritten, so items are never half-visible and never
 * duplicated.  The transaction re-checks the state, so two indexers (or a
 * test and the thread) cannot both commit one shard.
 */
#include "staging/staging.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "staging/staging_int.h"
#include "vision/vision.h"

#define NOTIF_CONFIG "notification_config.json"
#define LIST_CAP 1000 /* entries per webhook list before content_truncated */

/* ---- tar scanning ---------------------------------------------------------------- */

static const char *type_word(unsigned t)
{
    switch (t) {
    case AE_IFLNK:
        return "a symbolic link";
    case AE_IFDIR:
        return "a directory";
    case AE_IFCHR:
    case AE_IFBLK:
        return "a device";
    case AE_IFIFO:
        return "a fifo";
    case AE_IFSOCK:
        return "a socket";
    default:
        return "not a regular file";
    }
}

static int read_entry(struct archive *a, uint8_t *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        la_ssize_t n = archive_read_data(a, buf + got, size - got);
        if (n < 0)
            return ERR_PARSE;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return got == size ? 0 : ERR_PARSE;
}

int staging__tar_scan(int fd, const void *mem, size_t memlen, const struct staging__tar_limits *lim,
                      const struct staging__tar_cb *cb, int *nimages, char **notif_ingest, char **notif_url,
                      const char **why)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int rc = 0, images = 0, index = 0;
    char msg[320];
    *why = NULL;
    archive_read_support_format_tar(a);
    if ((fd >= 0 ? archive_read_open_fd(a, fd, 65536) : archive_read_open_memory(a, mem, memlen)) != ARCHIVE_OK) {
        *why = "corrupt-archive";
        rc = ERR_PARSE;
        goto out;
    }
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) { /* RETRY = damaged header */
            *why = "corrupt-archive";
            rc = ERR_PARSE;
            goto out;
        }
        if (++index > 10 * lim->max_images + 16) {
            /* Bounded work and memory for archives of many tiny entries. */
            *why = "too-many-entries";
            rc = ERR_LIMIT;
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        unsigned type = archive_entry_filetype(e);
        const char *shown = name ? name : "(no name)";
        if (type != AE_IFREG || archive_entry_hardlink(e) || archive_entry_symlink(e)) {
            snprintf(msg, sizeof msg, "entry is %s", archive_entry_hardlink(e) ? "a hard link" : type_word(type));
            cb->reject(cb->ud, shown, "not-a-regular-file", msg);
            continue;
        }
        if (!name || !staging__name_valid(name)) {
            cb->reject(cb->ud, shown, "unsafe-file-name", "entry names must be plain file names without '/' or '..'");
            continue;
        }
        int64_t size = archive_entry_size(e);
        if (!strcmp(name, NOTIF_CONFIG)) {
            if (size < 0 || size > 65536) {
                cb->reject(cb->ud, name, "invalid-notification-config", "notification config larger than 64 KiB");
                continue;
            }
            uint8_t *buf = xmalloc((size_t)size + 1);
            if (read_entry(a, buf, (size_t)size) < 0) {
                free(buf);
                *why = "corrupt-archive";
                rc = ERR_PARSE;
                goto out;
            }
            json_t *j = NULL;
            (void)json_parse_outside((const char *)buf, (size_t)size, 0, &j, NULL, 0); /* else ignored */
            const char *iid = json_string_value(json_object_get(j, "ingestId"));
            const char *url = json_string_value(json_object_get(j, "notificationsURL"));
            if (iid && strlen(iid) <= 256 && notif_ingest && !*notif_ingest)
                *notif_ingest = xstrdup(iid);
            if (url && strlen(url) <= 4096 && (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) &&
                notif_url && !*notif_url)
                *notif_url = xstrdup(url);
            json_decref(j);
            free(buf);
            continue;
        }
        if (staging__sidecar_name(name)) {
            /* Per-image metadata "<image>.json": a JSON object, staged in
             * the metadata part; it does not count as an image. */
            const char *bad = NULL;
            if (size < 0 || size > STAGING_SIDECAR_MAX) {
                cb->reject(cb->ud, name, "invalid-metadata-file",
                           "a metadata file (.json) must be at most 65536 bytes");
                continue;
            }
            uint8_t *buf = xmalloc((size_t)size + 1);
            if (read_entry(a, buf, (size_t)size) < 0) {
                free(buf);
                *why = "corrupt-archive";
                rc = ERR_PARSE;
                goto out;
            }
            if (staging__sidecar_check(buf, (size_t)size, &bad) < 0) {
                cb->reject(cb->ud, name, "invalid-metadata-file", bad);
                free(buf);
                continue;
            }
            rc = cb->image(cb->ud, index, name, buf, (size_t)size, "application/json");
            free(buf);
            if (rc < 0) {
                *why = "storage-error";
                goto out;
            }
            continue;
        }
        if (size < 0 || size > lim->max_image_bytes) {
            snprintf(msg, sizeof msg, "Max size of single image is %lldB.", (long long)lim->max_image_bytes);
            cb->reject(cb->ud, name, "file-size-limit-exceeded", msg);
            continue;
        }
        uint8_t *buf = try_alloc((size_t)size + 1, 1);
        if (!buf) {
            rc = ERR_NOMEM;
            *why = "out-of-memory";
            goto out;
        }
        if (read_entry(a, buf, (size_t)size) < 0) {
            free(buf);
            *why = "corrupt-archive";
            rc = ERR_PARSE;
            goto out;
        }
        const char *ftype = NULL, *bad = NULL;
        const char *mime = staging__image_mime(buf, (size_t)size, &ftype, &bad);
        if (!mime) {
            cb->reject(cb->ud, name, ftype, bad);
            free(buf);
            continue;
        }
        if (++images > lim->max_images) {
            free(buf);
            *why = "too-many-images";
            rc = ERR_LIMIT;
            goto out;
        }
        rc = cb->image(cb->ud, index, name, buf, (size_t)size, mime);
        free(buf);
        if (rc < 0) {
            *why = "storage-error";
            goto out;
        }
    }
    *nimages = images;
out:
    archive_read_free(a);
    return rc;
}

/* ---- webhooks ------------------------------------------------------------------------ */

/* Queue payload (owned) for url.  One ingest's webhooks (its shards'
 * files-status, then its ingest-status) go out in order; without an
 * ingest id, one batch's. */
static void notify(sqlite3 *db, const char *ws, const char *url, json_t *payload)
{
    char *body = json_dumps(payload, JSON_COMPACT);
    const char *ingest = json_string_value(json_object_get(payload, "ingest_id"));
    const char *batch = json_string_value(json_object_get(payload, "batch_id"));
    char *key = ingest ? xasprintf("ingest/%s", ingest) : xasprintf("batch/%s", batch ? batch : "");
    if (body && store_outbox_enqueue_db(db, url, ws, key, body, false) < 0)
        log_warn("staging", "cannot queue webhook to '%s'", url);
    free(key);
    free(body);
    json_decref(payload);
}

static json_t *envelope(const char *ingest_id, const char *batch, const char *shard_id, json_t *notification)
{
    char ev[37];
    uuid4(ev);
    return json_pack("{s:s,s:s,s:s?,s:s,s:s?,s:o}", "type", "roboflow-data-staging-notification-v1", "event_id", ev,
                     "ingest_id", ingest_id, "batch_id", batch, "shard_id", shard_id, "notification", notification);
}

void staging__notify_files(sqlite3 *db, const char *ws, const char *url, const char *ingest_id, const char *batch,
                           const char *shard_id, json_t *ingested, json_t *failed, bool truncated)
{
    bool trunc = truncated || json_array_size(ingested) > LIST_CAP || json_array_size(failed) > LIST_CAP;
    json_t *ing = json_array(), *fail = json_array();
    for (size_t i = 0; i < json_array_size(ingested) && i < LIST_CAP; i++)
        json_array_append(ing, json_array_get(ingested, i));
    for (size_t i = 0; i < json_array_size(failed) && i < LIST_CAP; i++)
        json_array_append(fail, json_array_get(failed, i));
    /* success: the shard delivered something, or had nothing to fail (the
     * COMPAT example is success with one failed file beside an ingested one);
     * a shard whose every file failed reports false. */
    int success = json_array_size(ingested) > 0 || json_array_size(failed) == 0;
    json_t *n = json_pack("{s:s,s:b,s:o,s:o,s:b}", "type", "ingest-files-status-notification-v1", "success", success,
                          "ingested_files", ing, "failed_files", fail, "content_truncated", trunc);
    notify(db, ws, url, envelope(ingest_id, batch, shard_id, n));
}

void staging__notify_ingest(sqlite3 *db, const char *ws, const char *url, const char *ingest_id, const char *batch,
                            bool success, const char *err_type, const char *err_reason)
{
    json_t *n = json_pack("{s:s,s:b}", "type", "ingest-status-notification-v1", "success", success);
    if (!success)
        json_object_set_new(n, "error_details",
                            json_pack("{s:s,s:s}", "type", err_type ? err_type : "ingest-failed", "reason",
                                      err_reason ? err_reason : ""));
    json_t *env = envelope(ingest_id, batch, NULL, n);
    /* shard_id is null, not absent, in ingest-status notifications. */
    json_t *ordered = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        json_object_set(ordered, k, v);
        if (!strcmp(k, "batch_id"))
            json_object_set_new(ordered, "shard_id", json_null());
    }
    json_decref(env);
    notify(db, ws, url, ordered);
}

/* ---- shared shard bookkeeping ------------------------------------------------------------ */

struct staged {
    char *name, *key, *mime;
    int64_t size;
};

struct shard_job {
    struct staging *s;
    int64_t bid;
    char *ws, *batch, *shard_id, *kind, *blob_key, *ingest_id, *notify_url, *refs, *refs_url;
    bool cat_ingest, cat_files;
    struct staged *items;   /* accepted, blobs written */
    int nitems, capitems;
    json_t *failed;         /* [{type,file_name,reason}], at most LIST_CAP */
    int nfailed;            /* all failures, also those beyond LIST_CAP */
    json_t *ingested;       /* [name] */
};

static void job_release(struct shard_job *j)
{
    free(j->ws), free(j->batch), free(j->shard_id), free(j->kind), free(j->blob_key);
    free(j->ingest_id), free(j->notify_url), free(j->refs), free(j->refs_url);
    for (int i = 0; i < j->nitems; i++) {
        free(j->items[i].name);
        free(j->items[i].key);
        free(j->items[i].mime);
    }
    free(j->items);
    json_decref(j->failed);
    json_decref(j->ingested);
}

static void job_reject(void *ud, const char *name, const char *type, const char *reason)
{
    struct shard_job *j = ud;
    j->nfailed++;
    if (json_array_size(j->failed) < LIST_CAP)
        json_array_append_new(j->failed,
                              json_pack("{s:s,s:s,s:s}", "type", type, "file_name", name, "reason", reason));
}

static int job_add(struct shard_job *j, const char *name, const char *key, const char *mime, int64_t size)
{
    if (j->nitems == j->capitems) {
        j->capitems = j->capitems ? j->capitems * 2 : 64;
        j->items = xrealloc(j->items, (size_t)j->capitems * sizeof *j->items);
    }
    j->items[j->nitems++] = (struct staged){xstrdup(name), xstrdup(key), xstrdup(mime), size};
    json_array_append_new(j->ingested, json_string(name));
    return 0;
}

static int tar_image(void *ud, int index, const char *name, const void *data, size_t len, const char *mime)
{
    struct shard_job *j = ud;
    char key[128];
    snprintf(key, sizeof key, "b/%lld/s/%s/%d", (long long)j->bid, j->shard_id, index);
    int rc = store_blob_put_nosync(j->s->st, key, data, len);
    if (rc < 0)
        return rc;
    return job_add(j, name, key, mime, (int64_t)len);
}

static char *col_dup(sqlite3_stmt *q, int i)
{
    const char *t = (const char *)sqlite3_column_text(q, i);
    return t ? xstrdup(t) : NULL;
}

/* Load the oldest shard of the given kinds in the given state. */
static int job_load(struct staging *s, const char *kind_sql, const char *state, struct shard_job *j)
{
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    char *sql = xasprintf("SELECT sh.bid, b.workspace, b.batch_id, sh.shard_id, sh.kind, sh.blob_key, sh.ingest_id,"
                          " sh.notify_url, sh.cat_ingest, sh.cat_files, sh.refs, sh.refs_url FROM shards sh"
                          " JOIN batches b ON b.bid = sh.bid WHERE sh.state=? AND sh.kind %s ORDER BY sh.id LIMIT 1",
                          kind_sql);
    memset(j, 0, sizeof *j);
    j->s = s;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, state, -1, SQLITE_STATIC);
        int st = sqlite3_step(q);
        if (st == SQLITE_DONE) {
            rc = ERR_NOTFOUND;
        } else if (st == SQLITE_ROW) {
            j->bid = sqlite3_column_int64(q, 0);
            j->ws = col_dup(q, 1);
            j->batch = col_dup(q, 2);
            j->shard_id = col_dup(q, 3);
            j->kind = col_dup(q, 4);
            j->blob_key = col_dup(q, 5);
            j->ingest_id = col_dup(q, 6);
            j->notify_url = col_dup(q, 7);
            j->cat_ingest = sqlite3_column_int(q, 8) != 0;
            j->cat_files = sqlite3_column_int(q, 9) != 0;
            j->refs = col_dup(q, 10);
            j->refs_url = col_dup(q, 11);
            j->failed = json_array();
            j->ingested = json_array();
            rc = 0;
        }
    }
    sqlite3_finalize(q);
    free(sql);
    store_db_release(s->st, db);
    return rc;
}

/* Inside a transaction: is the shard still in `state`? */
static bool shard_in_state(sqlite3 *db, const char *shard_id, const char *state)
{
    sqlite3_stmt *q = NULL;
    bool ok = false;
    if (sqlite3_prepare_v2(db, "SELECT state FROM shards WHERE shard_id=?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, shard_id, -1, SQLITE_STATIC);
        ok = sqlite3_step(q) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(q, 0), state);
    }
    sqlite3_finalize(q);
    return ok;
}

/* Inside a transaction: count a finished shard of a reference ingest and,
 * when it was the last one, queue the ingest-status webhook. */
static void ingest_shard_done(sqlite3 *db, struct shard_job *j, bool failed, const char *err_type, const char *reason)
{
    sqlite3_stmt *q = NULL;
    if (!j->ingest_id)
        return;
    if (sqlite3_prepare_v2(db, "UPDATE ingests SET shards_done = shards_done + 1, shards_failed = shards_failed + ?"
                               " WHERE bid=? AND ingest_id=? RETURNING shards_done, shards_total, shards_failed",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int(q, 1, failed ? 1 : 0);
    sqlite3_bind_int64(q, 2, j->bid);
    sqlite3_bind_text(q, 3, j->ingest_id, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
        int done = sqlite3_column_int(q, 0), total = sqlite3_column_int(q, 1), nf = sqlite3_column_int(q, 2);
        sqlite3_step(q);
        sqlite3_finalize(q);
        q = NULL;
        if (done >= total && j->notify_url && j->cat_ingest)
            staging__notify_ingest(db, j->ws, j->notify_url, j->ingest_id, j->batch, nf == 0,
                                   nf ? (err_type ? err_type : "ingest-failed") : NULL,
                                   nf ? (reason ? reason : "some shards failed") : NULL);
    }
    sqlite3_finalize(q);
}

/* Record a shard-level failure (no items), in one transaction. */
static int job_fail(struct shard_job *j, const char *from_state, const char *status_name, const char *reason)
{
    struct staging *s = j->s;
    char prefix[160];
    snprintf(prefix, sizeof prefix, "b/%lld/%s/%s", (long long)j->bid, !strcmp(j->kind, "tar") ? "s" : "r",
             j->shard_id);
    store_blob_delete_prefix(s->st, prefix);
    sqlite3 *db = store_db_acquire(s->st);
    int rc = store_tx_begin(db);
    if (rc == 0 && !shard_in_state(db, j->shard_id, from_state))
        rc = ERR_EXISTS;
    if (rc == 0) {
        json_t *meta = json_pack("{s:s,s:O,s:i}", "reason", reason, "failedFiles", j->failed, "failedCount",
                                 j->nfailed);
        rc = staging__shard_status(db, j->shard_id, "failed", status_name, "error", meta, 0);
        json_decref(meta);
    }
    if (rc == 0) {
        if (!strcmp(j->kind, "tar")) {
            if (j->notify_url && j->ingest_id)
                staging__notify_ingest(db, j->ws, j->notify_url, j->ingest_id, j->batch, false, status_name, reason);
        } else {
            ingest_shard_done(db, j, true, status_name, reason);
        }
    }
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    if (rc == 0) {
        log_warn("staging", "shard failed shard=%s status=%s reason=%s", j->shard_id, status_name, reason);
        store_outbox_kick(s->st);
    }
    return rc;
}

/* Publish a shard's staged items, in one transaction. */
static int job_commit(struct shard_job *j, const char *from_state)
{
    struct staging *s = j->s;
    int rc = store_blob_sync(s->st);
    if (rc < 0)
        return rc;
    sqlite3 *db = store_db_acquire(s->st);
    rc = store_tx_begin(db);
    if (rc == 0 && !shard_in_state(db, j->shard_id, from_state))
        rc = ERR_EXISTS;
    bool meta_part = false;
    for (int i = 0; rc == 0 && i < j->nitems; i++) {
        bool meta = !strcmp(j->items[i].mime, "application/json"); /* a sidecar (tar only) */
        if (meta && !meta_part) {
            rc = staging__sidecar_part_ensure(db, j->bid);
            meta_part = true;
        }
        if (rc == 0)
            rc = staging__item_insert(db, j->bid, meta ? STAGING_METADATA_PART : NULL, j->items[i].name, j->shard_id,
                                      meta ? "metadata" : !strcmp(j->kind, "video-refs") ? "video" : "image",
                                      j->items[i].mime, j->items[i].key, j->items[i].size);
    }
    bool all_failed = j->nitems == 0 && j->nfailed > 0;
    if (rc == 0) {
        json_t *meta = json_pack("{s:i,s:O,s:i}", "ingestedFiles", j->nitems, "failedFiles", j->failed,
                                 "failedCount", j->nfailed);
        rc = staging__shard_status(db, j->shard_id, "done", all_failed ? "all-files-failed" : "ingested",
                                   all_failed ? "error" : "success", meta, j->nitems);
        json_decref(meta);
    }
    if (rc == 0 && j->notify_url && j->ingest_id && (!strcmp(j->kind, "tar") || j->cat_files))
        staging__notify_files(db, j->ws, j->notify_url, j->ingest_id, j->batch, j->shard_id, j->ingested,
                              j->failed, j->nfailed > (int)json_array_size(j->failed));
    if (rc == 0 && strcmp(j->kind, "tar") != 0)
        ingest_shard_done(db, j, all_failed, "all-files-failed", "no file of the shard could be ingested");
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    if (rc == 0) {
        log_info("staging", "shard ingested shard=%s items=%d rejected=%zu", j->shard_id, j->nitems,
                 json_array_size(j->failed));
        store_outbox_kick(s->st);
    }
    return rc;
}

/* ---- tar shards -------------------------------------------------------------------------- */

/* Sleep ms, waking early when the context stops. */
static void sleep_ms_unless_stopped(struct staging *s, int64_t ms)
{
    int64_t end = time_mono_ms() + ms;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop && s->running;
        pthread_mutex_unlock(&s->mu);
        int64_t left = end - time_mono_ms();
        if (stop || left <= 0)
            return;
        struct timespec ts = {0, (long)MIN(left, 50) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Storage ran out while a shard was being staged (extraction, reference
 * fetches, the commit): the shard keeps its state (from_state, so it is
 * retried) and its upload; the blobs written so far are removed; its status
 * says "waiting-for-storage" with the cause (recorded once, when the disk
 * lets the database take it). */
static void job_wait_storage(struct shard_job *j, const char *from_state, const char *why)
{
    struct staging *s = j->s;
    char prefix[160];
    snprintf(prefix, sizeof prefix, "b/%lld/%s/%s", (long long)j->bid, !strcmp(j->kind, "tar") ? "s" : "r",
             j->shard_id);
    store_blob_delete_prefix(s->st, prefix);
    sqlite3 *db = store_db_acquire(s->st);
    sqlite3_stmt *q = NULL;
    bool already = false;
    if (sqlite3_prepare_v2(db, "SELECT status_name FROM shards WHERE shard_id=?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, j->shard_id, -1, SQLITE_STATIC);
        already = sqlite3_step(q) == SQLITE_ROW &&
                  !strcmp((const char *)sqlite3_column_text(q, 0), "waiting-for-storage");
    }
    sqlite3_finalize(q);
    int rc = already ? 0 : store_tx_begin(db);
    if (!already && rc == 0 && shard_in_state(db, j->shard_id, from_state)) {
        json_t *meta = json_pack("{s:s}", "reason", why);
        rc = staging__shard_status(db, j->shard_id, from_state, "waiting-for-storage", "info", meta, 0);
        json_decref(meta);
        rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    } else if (!already) {
        store_tx_rollback(db);
    }
    store_db_release(s->st, db);
    log_warn("staging", "shard waiting for storage shard=%s: %s", j->shard_id, why);
}

/* After a storage failure, the queue waits before its next try: 1 s,
 * doubling to 30 s; reset by the next shard that goes through. */
static bool backoff_waiting(struct staging *s, int64_t *until)
{
    pthread_mutex_lock(&s->mu);
    bool wait = time_mono_ms() < *until;
    pthread_mutex_unlock(&s->mu);
    return wait;
}

static void backoff_set(struct staging *s, int64_t *until, int64_t *delay, bool failed)
{
    pthread_mutex_lock(&s->mu);
    if (failed) {
        *delay = *delay <= 0 ? 1000 : MIN(*delay * 2, 30000);
        *until = time_mono_ms() + *delay;
    } else {
        *delay = 0;
        *until = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

static int index_one(struct shard_job *j, struct err *err)
{
    struct staging *s = j->s;
    struct staging__tar_limits lim = {s->o.max_image_bytes, s->o.max_shard_images};
    struct staging__tar_cb cb = {tar_image, job_reject, j};
    char reason[256];
    const char *why = NULL;
    int fd = -1, n = 0, rc;
    int64_t size = 0;
    rc = store_blob_open(s->st, j->blob_key, &fd, &size);
    if (rc < 0)
        return job_fail(j, "uploaded", "upload-missing", "the uploaded archive is missing");
    if (size > s->o.max_shard_bytes) {
        close(fd);
        snprintf(reason, sizeof reason, "Max size of a shard is %lldB.", (long long)s->o.max_shard_bytes);
        return job_fail(j, "uploaded", "shard-size-limit-exceeded", reason);
    }
    if (s->o.index_delay_ms > 0) /* tests: a window between the upload and its extraction */
        sleep_ms_unless_stopped(s, s->o.index_delay_ms);
    /* The extracted images take about as many bytes as the archive. */
    if ((rc = store_space_check(s->st, size, "the extraction of this shard", err)) < 0) {
        close(fd);
        return rc;
    }
    rc = staging__tar_scan(fd, NULL, 0, &lim, &cb, &n, j->ingest_id ? NULL : &j->ingest_id,
                           j->notify_url ? NULL : &j->notify_url, &why);
    close(fd);
    if (rc == ERR_LIMIT) {
        if (!strcmp(why, "too-many-entries"))
            snprintf(reason, sizeof reason, "Max number of archive entries in a shard is %d.",
                     10 * s->o.max_shard_images + 16);
        else
            snprintf(reason, sizeof reason, "Max number of images in a shard is %d.", s->o.max_shard_images);
        rc = job_fail(j, "uploaded", why, reason);
    } else if (rc == ERR_PARSE) {
        rc = job_fail(j, "uploaded", why, "the archive is not a valid uncompressed tar file");
    } else if (rc < 0) {
        /* storage trouble: leave the shard uploaded, retry later */
        return err_set(err, rc, "cannot extract the archive: %s", err_str(rc));
    } else {
        rc = job_commit(j, "uploaded");
        if (rc < 0 && rc != ERR_EXISTS)
            err_printf(err, "cannot record the shard's images: %s", err_str(rc));
    }
    if (rc == 0)
        store_blob_delete(s->st, j->blob_key);
    return rc;
}

int staging_index_pending(struct staging *s, int *indexed)
{
    int n = 0, rc = 0;
    if (backoff_waiting(s, &s->index_retry_at))
        goto done;
    for (;;) {
        struct shard_job j;
        struct err e = ERR_INIT;
        rc = job_load(s, "= 'tar'", "uploaded", &j);
        if (rc == ERR_NOTFOUND) {
            rc = 0;
            job_release(&j);
            break;
        }
        if (rc == 0)
            rc = index_one(&j, &e);
        if (err_is_nospace(rc)) {
            /* an acknowledged shard is never dropped for want of space */
            job_wait_storage(&j, "uploaded", err_text(&e, rc));
            job_release(&j);
            backoff_set(s, &s->index_retry_at, &s->index_backoff, true);
            break;
        }
        if (rc == 0)
            backoff_set(s, &s->index_retry_at, &s->index_backoff, false);
        if (rc < 0 && rc != ERR_EXISTS && rc != ERR_AGAIN) {
            /* A shard that cannot be processed must not block the queue;
             * a busy database (ERR_AGAIN) is retried on the next round. */
            char reason[160];
            snprintf(reason, sizeof reason, "internal error while indexing: %s", err_str(rc));
            if (j.shard_id && job_fail(&j, "uploaded", "internal-error", reason) == 0)
                rc = 0;
        }
        job_release(&j);
        if (rc < 0 && rc != ERR_EXISTS)
            break; /* ERR_AGAIN included: retried a second later */
        n++;
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop && s->running;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
    }
done:
    if (indexed)
        *indexed = n;
    return rc;
}

/* ---- reference fetching ------------------------------------------------------------------- */

struct sink {
    struct buf mem;   /* used when fd < 0 */
    int fd;
    int64_t limit, got;
    bool over;
    int werr;         /* a failed write to fd (-errno) */
};

static size_t sink_cb(char *p, size_t sz, size_t n, void *ud)
{
    struct sink *k = ud;
    size_t len = sz * n;
    if (k->got + (int64_t)len > k->limit) {
        k->over = true;
        return 0;
    }
    k->got += (int64_t)len;
    if (k->fd >= 0) {
        int rc = fd_write_all(k->fd, p, len);
        if (rc < 0)
            k->werr = rc;
        return rc == 0 ? len : 0;
    }
    return buf_append(&k->mem, p, len) == 0 ? len : 0;
}

/* GET url into the sink.  Returns 0, or ERR_LIMIT / ERR_INVALID (unsafe)
 * / ERR_NOTFOUND (HTTP error or network failure) with reason filled. */
static int fetch(struct staging *s, const char *url, struct sink *k, char reason[256])
{
    const char *why = NULL;
    if (store_net_check_url(s->st, url, &why) < 0) {
        CURLU *u = curl_url();
        char *host = NULL;
        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK)
            curl_url_get(u, CURLUPART_HOST, &host, 0);
        snprintf(reason, 256, "Untrusted domain found: %s", host ? host : "(unparsable url)");
        curl_free(host);
        curl_url_cleanup(u);
        return ERR_INVALID;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(reason, 256, "out of memory");
        return ERR_NOTFOUND;
    }
    store_net_guard_curl(s->st, c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)k->limit);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vbatch-fetch/1");
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    if (k->over || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(reason, 256, "Max size of single file is %lldB.", (long long)k->limit);
        rc = ERR_LIMIT;
    } else if (cc != CURLE_OK) {
        snprintf(reason, 256, "download failed: %s", curl_easy_strerror(cc));
        rc = ERR_NOTFOUND;
    }
    curl_easy_cleanup(c);
    return rc;
}

/* One reference's outcome, filled by a fetch worker, merged in order. */
struct ref_result {
    const char *name, *url; /* borrowed from the refs JSON */
    bool ok;
    bool nospace;           /* storing it failed for want of space: retry the shard */
    char key[160];
    const char *mime;       /* static */
    int64_t size;
    const char *ftype;      /* failure type (static) */
    char reason[256];
};

static void fetch_ref(struct shard_job *j, int index, struct ref_result *res)
{
    struct staging *s = j->s;
    bool video = !strcmp(j->kind, "video-refs");
    struct sink k = {BUF_INIT, -1, video ? s->o.max_video_bytes : s->o.max_image_bytes, 0, false, 0};
    char *tmp = NULL;
    int rc;
    snprintf(res->key, sizeof res->key, "b/%lld/r/%s/%d", (long long)j->bid, j->shard_id, index);
    res->ftype = "internal-error";
    snprintf(res->reason, sizeof res->reason, "cannot store the file");
    if (video && (rc = store_tmp_create(s->st, &tmp, &k.fd)) < 0) {
        res->nospace = err_is_nospace(rc);
        goto out;
    }
    rc = fetch(s, res->url, &k, res->reason);
    if (rc < 0 && err_is_nospace(k.werr)) {
        res->nospace = true;
        goto out;
    }
    if (rc < 0) {
        res->ftype = rc == ERR_LIMIT ? "file-size-limit-exceeded" : rc == ERR_INVALID ? "unsafe-url-detected"
                                                                                       : "download-failed";
        goto out;
    }
    if (video) {
        close(k.fd);
        k.fd = -1;
        if (staging__video_probe(tmp, &res->mime) < 0) {
            res->ftype = "unsupported-file-type";
            snprintf(res->reason, sizeof res->reason, "not a video container that can be read");
            goto out;
        }
        if ((rc = store_blob_put_file(s->st, res->key, tmp)) < 0) {
            res->nospace = err_is_nospace(rc);
            goto out;
        }
        free(tmp);
        tmp = NULL;
    } else {
        const char *bad = NULL;
        res->mime = staging__image_mime(k.mem.data, k.mem.len, &res->ftype, &bad);
        if (!res->mime) {
            snprintf(res->reason, sizeof res->reason, "%s", bad);
            goto out;
        }
        if ((rc = store_blob_put_nosync(s->st, res->key, k.mem.data, k.mem.len)) < 0) {
            res->nospace = err_is_nospace(rc);
            goto out;
        }
    }
    res->ok = true;
    res->size = k.got;
out:
    if (k.fd >= 0)
        close(k.fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    buf_release(&k.mem);
}

#define FETCH_THREADS 8

struct fetch_pool {
    struct shard_job *j;
    struct ref_result *res;
    int n;
    int next;          /* next index to take; guarded by mu */
    bool aborted;      /* the context is stopping; guarded by mu */
    pthread_mutex_t mu;
};

static void *fetch_worker(void *arg)
{
    struct fetch_pool *p = arg;
    struct staging *s = p->j->s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop && s->running;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&p->mu);
        if (stop)
            p->aborted = true;
        int i = p->aborted || p->next >= p->n ? -1 : p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i < 0)
            break;
        fetch_ref(p->j, i, &p->res[i]);
    }
    return NULL;
}

/* Fetch every valid reference of refs with up to FETCH_THREADS at once,
 * then record the outcomes in reference order.  ERR_AGAIN when stopped. */
static int fetch_all(struct shard_job *j, json_t *refs)
{
    struct fetch_pool p = {.j = j, .n = (int)json_array_size(refs)};
    pthread_t th[FETCH_THREADS];
    int nth = 0, rc = 0;
    p.res = xcalloc((size_t)MAX(p.n, 1), sizeof *p.res);
    for (int i = 0; i < p.n; i++) {
        json_t *e = json_array_get(refs, (size_t)i);
        if (staging__ref_entry(e, &p.res[i].name, &p.res[i].url) < 0)
            p.res[i].url = NULL; /* cannot happen for parsed refs; skipped */
    }
    pthread_mutex_init(&p.mu, NULL);
    for (int t = 0; t < FETCH_THREADS && t < p.n; t++)
        if (pthread_create(&th[nth], NULL, fetch_worker, &p) == 0)
            nth++;
    if (nth == 0)
        fetch_worker(&p);
    for (int t = 0; t < nth; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&p.mu);
    if (p.aborted) {
        rc = ERR_AGAIN; /* stays queued; redone after restart */
        goto out;
    }
    for (int i = 0; i < p.n; i++)
        if (p.res[i].nospace) {
            rc = ERR_NOSPACE; /* stays queued; fetched again once there is space */
            goto out;
        }
    for (int i = 0; i < p.n; i++) {
        struct ref_result *r = &p.res[i];
        if (!r->url)
            continue;
        if (r->ok)
            job_add(j, r->name, r->key, r->mime, r->size);
        else
            job_reject(j, r->name, r->ftype, r->reason);
    }
out:
    free(p.res);
    return rc;
}

#define REFS_FILE_MAX (64u << 20)

static int fetch_one(struct shard_job *j)
{
    struct staging *s = j->s;
    json_t *refs = NULL;
    char reason[256];
    bool video = !strcmp(j->kind, "video-refs");
    int max = video ? MAX(1, s->o.max_references / 4) : s->o.max_references;
    if (j->refs_url) {
        struct sink k = {BUF_INIT, -1, REFS_FILE_MAX, 0, false, 0};
        int rc = fetch(s, j->refs_url, &k, reason);
        if (rc < 0) {
            buf_release(&k.mem);
            return job_fail(j, "queued", rc == ERR_INVALID ? "unsafe-url-detected" : "references-fetch-failed",
                            reason);
        }
        refs = json_array();
        char *line = k.mem.data, *save = NULL;
        int lineno = 0;
        for (char *l = line ? strtok_r(line, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
            lineno++;
            size_t ll = strlen(l);
            while (ll && (l[ll - 1] == '\r' || l[ll - 1] == ' '))
                l[--ll] = 0;
            if (!ll)
                continue;
            json_t *e = NULL;
            (void)json_parse_outside(l, ll, 0, &e, NULL, 0); /* too deep or malformed: rejected below */
            const char *n, *u;
            if (staging__ref_entry(e, &n, &u) < 0) {
                char nm[32];
                snprintf(nm, sizeof nm, "line %d", lineno);
                job_reject(j, nm, "invalid-reference", "each line must be {\"name\": …, \"url\": \"http(s)://…\"}");
                json_decref(e);
                continue;
            }
            if ((int)json_array_size(refs) >= max) {
                json_decref(e);
                json_decref(refs);
                buf_release(&k.mem);
                snprintf(reason, sizeof reason, "more than %d references", max);
                return job_fail(j, "queued", "too-many-references", reason);
            }
            json_array_append_new(refs, e);
        }
        buf_release(&k.mem);
    } else {
        refs = json_loads(j->refs ? j->refs : "[]", 0, NULL);
    }
    int rc = fetch_all(j, refs);
    json_decref(refs);
    return rc < 0 ? rc : job_commit(j, "queued");
}

int staging_fetch_pending(struct staging *s, int *fetched)
{
    int n = 0, rc = 0;
    if (backoff_waiting(s, &s->fetch_retry_at))
        goto done;
    for (;;) {
        struct shard_job j;
        rc = job_load(s, "IN ('image-refs','video-refs')", "queued", &j);
        if (rc == ERR_NOTFOUND) {
            rc = 0;
            job_release(&j);
            break;
        }
        if (rc == 0)
            rc = fetch_one(&j);
        if (err_is_nospace(rc)) {
            job_wait_storage(&j, "queued", "storage full: the fetched files cannot be stored");
            job_release(&j);
            backoff_set(s, &s->fetch_retry_at, &s->fetch_backoff, true);
            break;
        }
        if (rc == 0)
            backoff_set(s, &s->fetch_retry_at, &s->fetch_backoff, false);
        if (rc < 0 && rc != ERR_EXISTS && rc != ERR_AGAIN) {
            char reason[160];
            snprintf(reason, sizeof reason, "internal error while fetching: %s", err_str(rc));
            if (j.shard_id && job_fail(&j, "queued", "internal-error", reason) == 0)
                rc = 0;
        }
        job_release(&j);
        if (rc < 0 && rc != ERR_EXISTS)
            break;
        n++;
    }
done:
    if (fetched)
        *fetched = n;
    return rc;
}
