/*
 * ingest.c — the ingest endpoints: single-image upload, signed upload URLs
 * for videos and tar shards, the signed PUT sink and GET download, the
 * video container probe (vision's FFmpeg probe), and reference ingests (parsed and queued here,
 * fetched by the fetcher thread in indexer.c).
 *
 * Upload flow of a signed PUT (tar shard or video):
 *
 *   POST bulk-upload/image-files ──► uploads row (pending) + shards row
 *        (awaiting-upload) + signed PUT URL (key b/<bid>/s/<shard>.tar)
 *   PUT /blobs/<key>?… ──► temp file (limit enforced while streaming)
 *        ─finish─► fsync + rename ─► tx { uploads done; shard "uploaded" }
 *        ─► indexer (indexer.c) ─► tx { items; shard "ingested" | error }
 *
 * Nothing the client sends becomes visible before its transaction
 * commits, and every step is recorded before the next starts, so a crash
 * anywhere is recovered by redoing the last recorded step.
 */
#include "staging/staging.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "staging/staging_int.h"
#include "vision/vision.h"

/* ---- single image ------------------------------------------------------------------ */

const char *staging__image_mime(const void *data, size_t len, const char **type, const char **why)
{
    enum vis_type t = VIS_TYPE_UNKNOWN;
    const char *msg = NULL;
    /* an image no decoder will take (a PNG header claiming 100000x100000,
     * a truncated scan, an animated WebP) is refused now, not at job time */
    int rc = vis_check(data, len, &t, &msg);
    if (rc < 0) {
        if (type)
            *type = rc == ERR_UNSUPPORTED ? "unsupported-file-type" : "corrupt-image-file";
        if (why)
            *why = msg;
        return NULL;
    }
    return vis_type_mime(t);
}

/* Size and content check of an uploaded file (mapped, not copied).  The
 * size is checked before the content is read. */
static int check_file(const char *path, int64_t max, int64_t *size, const char **mime, const char **why)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
        goto out;
    }
    *size = sb.st_size;
    *mime = NULL;
    if (sb.st_size > max || sb.st_size == 0)
        goto out;
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    *mime = staging__image_mime(m, (size_t)sb.st_size, NULL, why);
    munmap(m, (size_t)sb.st_size);
out:
    close(fd);
    return rc;
}

/* Short transaction: find or create the batch in the given mode. */
static int batch_prepare(struct staging *s, const char *ws, const char *batch, const char *display_name,
                         const char *mode, struct staging__batch *b, struct err *err)
{
    sqlite3 *db = store_db_acquire(s->st);
    /* Fast path without the write lock: the batch exists in this mode. */
    int rc = staging__batch_find(s, db, ws, batch, b, err);
    if (rc == 0 && !strcmp(b->mode, mode)) {
        store_db_release(s->st, db);
        return 0;
    }
    rc = store_tx_begin(db);
    if (rc == 0)
        rc = staging__batch_get_or_create(s, db, ws, batch, display_name, mode, b, err);
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    return rc;
}

int staging_upload_image(struct staging *s, const char *ws, const char *batch, const char *display_name,
                         const char *file_name, const char *tmp_path, json_t **out, struct err *err)
{
    struct staging__batch b;
    const char *mime = NULL, *bad = "not a JPEG, PNG, WebP or BMP image";
    int64_t size = 0;
    char uuid[37], key[96];
    bool consumed = false;
    int rc;
    if (!id_valid(batch, 64)) {
        err_printf(err, "invalid batch id: use 1-64 of a-z 0-9 _ -");
        rc = ERR_INVALID;
        goto out;
    }
    if (!staging__name_valid(file_name)) {
        err_printf(err, "fileName is missing or invalid (1-255 bytes, no '/' or '..')");
        rc = ERR_INVALID;
        goto out;
    }
    bool meta = staging__sidecar_name(file_name);
    if (meta) {
        /* Per-image metadata "<image>.json" (staging.h, image sidecars). */
        char *data = NULL;
        size_t len = 0;
        const char *why = NULL;
        rc = file_read_all(tmp_path, STAGING_SIDECAR_MAX + 1, &data, &len);
        if (rc == ERR_LIMIT || (rc == 0 && (rc = staging__sidecar_check(data, len, &why)) < 0)) {
            err_printf(err, "'%s': %s", file_name, why ? why : "a metadata file (.json) must be at most 65536 bytes");
            rc = rc == ERR_LIMIT ? ERR_LIMIT : ERR_INVALID;
        } else if (rc < 0) {
            err_printf(err, "cannot read the uploaded file");
        }
        free(data);
        if (rc < 0)
            goto out;
        size = (int64_t)len;
        mime = "application/json";
    } else if ((rc = check_file(tmp_path, s->o.max_image_bytes, &size, &mime, &bad)) < 0) {
        err_printf(err, "cannot read the uploaded file");
        goto out;
    }
    if (size > s->o.max_image_bytes) {
        err_printf(err, "Max size of single image is %lldB.", (long long)s->o.max_image_bytes);
        rc = ERR_LIMIT;
        goto out;
    }
    if (!mime) {
        err_printf(err, "'%s' cannot be staged: %s (a JPEG, PNG, WebP or BMP image of at most %u pixels that a "
                     "job can decode is needed)", file_name, bad, (unsigned)VIS_MAX_PIXELS);
        rc = ERR_INVALID;
        goto out;
    }
    if ((rc = batch_prepare(s, ws, batch, display_name, "single", &b, err)) < 0)
        goto out;
    uuid4(uuid);
    snprintf(key, sizeof key, "b/%lld/i/%s", (long long)b.bid, uuid);
    if ((rc = store_blob_put_file(s->st, key, tmp_path)) < 0) {
        err_printf(err, "cannot store the image: %s", err_str(rc));
        goto out;
    }
    consumed = true;
    sqlite3 *db = store_db_acquire(s->st);
    struct staging__batch b2;
    rc = store_tx_begin(db);
    if (rc == 0)
        rc = staging__batch_find(s, db, ws, batch, &b2, err);
    if (rc == 0 && b2.bid != b.bid) {
        err_printf(err, "batch '%s' was removed during the upload", batch);
        rc = ERR_NOTFOUND;
    }
    if (rc == 0 && meta)
        rc = staging__sidecar_part_ensure(db, b.bid);
    if (rc == 0)
        rc = staging__item_insert(db, b.bid, meta ? STAGING_METADATA_PART : NULL, file_name, NULL,
                                  meta ? "metadata" : "image", mime, key, size);
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    if (rc < 0) {
        store_blob_delete(s->st, key);
        goto out;
    }
    *out = json_pack("{s:s,s:s}", "status", "ok", "fileName", file_name);
out:
    if (!consumed)
        unlink(tmp_path);
    return rc;
}

/* ---- signed upload URLs ------------------------------------------------------------ */

static char *upload_url(struct staging *s, const char *key, int64_t limit)
{
    char *path = NULL;
    int64_t exp = (time_now_ms() + s->o.upload_url_ttl_ms) / 1000;
    if (store_sign_path(s->st, "PUT", key, exp, limit, &path) < 0)
        return NULL;
    char *url = xasprintf("%s%s", s->base_url, path);
    free(path);
    return url;
}

static int uploads_insert(sqlite3 *db, const char *key, int64_t bid, const char *kind, const char *shard_id,
                          const char *file_name, int64_t limit)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "INSERT INTO uploads(blob_key, bid, kind, shard_id, file_name, size_limit, state,"
                               " created_ms) VALUES(?,?,?,?,?,?,'pending',?)", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, bid);
        sqlite3_bind_text(q, 3, kind, -1, SQLITE_STATIC);
        if (shard_id)
            sqlite3_bind_text(q, 4, shard_id, -1, SQLITE_STATIC);
        if (file_name)
            sqlite3_bind_text(q, 5, file_name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 6, limit);
        sqlite3_bind_int64(q, 7, time_now_ms());
        rc = store_step_done(db, q);
    }
    sqlite3_finalize(q);
    return rc;
}

int staging_upload_video_url(struct staging *s, const char *ws, const char *batch, const char *display_name,
                             const char *file_name, json_t **out, struct err *err)
{
    struct staging__batch b;
    char uuid[37], key[96];
    int rc;
    if (!staging__name_valid(file_name)) {
        err_printf(err, "fileName is missing or invalid (1-255 bytes, no '/' or '..')");
        return ERR_INVALID;
    }
    if ((rc = store_space_check(s->st, 0, "a new upload URL", err)) < 0)
        return rc;
    sqlite3 *db = store_db_acquire(s->st);
    rc = store_tx_begin(db);
    if (rc == 0) {
        /* Videos go into any input batch; a new batch becomes a simple one. */
        rc = staging__batch_find(s, db, ws, batch, &b, err);
        if (rc == 0 && !strcmp(b.mode, "output")) {
            err_printf(err, "batch '%s' holds job outputs and cannot take uploads", batch);
            rc = ERR_INVALID;
        } else if (rc == ERR_NOTFOUND) {
            rc = staging__batch_get_or_create(s, db, ws, batch, display_name, "single", &b, err);
        }
    }
    if (rc == 0) {
        uuid4(uuid);
        snprintf(key, sizeof key, "b/%lld/v/%s", (long long)b.bid, uuid);
        rc = uploads_insert(db, key, b.bid, "video", NULL, file_name, s->o.max_video_bytes);
    }
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    if (rc < 0)
        return rc;
    char *url = upload_url(s, key, s->o.max_video_bytes);
    *out = json_pack("{s:s,s:{s:s?,s:s,s:{},s:I}}", "status", "ok", "signedURLDetails", "uploadURL", url,
                     "method", "PUT", "extensionHeaders", "maxFileSize", (json_int_t)s->o.max_video_bytes);
    free(url);
    return 0;
}

static int shard_insert(sqlite3 *db, int64_t bid, const char *shard_id, const char *kind, const char *state,
                        const char *status_name, const char *blob_key, const char *ingest_id, const char *notify_url,
                        bool cat_ingest, bool cat_files, const char *refs, const char *refs_url)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    int64_t now = time_now_ms();
    if (sqlite3_prepare_v2(db, "INSERT INTO shards(bid, shard_id, kind, state, status_name, status_type, blob_key,"
                               " ingest_id, notify_url, cat_ingest, cat_files, refs, refs_url, event_ms, created_ms)"
                               " VALUES(?,?,?,?,?,'info',?,?,?,?,?,?,?,?,?)", -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(q, 1, bid);
    sqlite3_bind_text(q, 2, shard_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, status_name, -1, SQLITE_STATIC);
    if (blob_key)
        sqlite3_bind_text(q, 6, blob_key, -1, SQLITE_STATIC);
    if (ingest_id)
        sqlite3_bind_text(q, 7, ingest_id, -1, SQLITE_STATIC);
    if (notify_url)
        sqlite3_bind_text(q, 8, notify_url, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 9, cat_ingest);
    sqlite3_bind_int(q, 10, cat_files);
    if (refs)
        sqlite3_bind_text(q, 11, refs, -1, SQLITE_STATIC);
    if (refs_url)
        sqlite3_bind_text(q, 12, refs_url, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 13, now);
    sqlite3_bind_int64(q, 14, now);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto out;
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO shard_events(shard, status_name, status_type, event_ms)"
                               " VALUES(?,?,'info',?)", -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(q, 1, shard_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, status_name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, now);
    rc = store_step_done(db, q);
out:
    if (rc == ERR_INTERNAL) /* a failed step: busy, full or internal */
        rc = store_sql_err(db, sqlite3_errcode(db));
    sqlite3_finalize(q);
    return rc;
}

int staging_bulk_upload_url(struct staging *s, const char *ws, const char *batch, const char *display_name,
                            json_t **out, struct err *err)
{
    struct staging__batch b;
    char shard[37], key[96];
    int rc = store_space_check(s->st, 0, "a new upload URL", err);
    if (rc < 0)
        return rc;
    sqlite3 *db = store_db_acquire(s->st);
    rc = store_tx_begin(db);
    if (rc == 0)
        rc = staging__batch_get_or_create(s, db, ws, batch, display_name, "bulk", &b, err);
    if (rc == 0) {
        uuid4(shard);
        snprintf(key, sizeof key, "b/%lld/s/%s.tar", (long long)b.bid, shard);
        rc = shard_insert(db, b.bid, shard, "tar", "awaiting-upload", "awaiting-upload", key, NULL, NULL, false,
                          true, NULL, NULL);
    }
    if (rc == 0)
        rc = uploads_insert(db, key, b.bid, "tar", shard, NULL, s->o.max_shard_bytes);
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    if (rc < 0)
        return rc;
    char *url = upload_url(s, key, s->o.max_shard_bytes);
    *out = json_pack("{s:s,s:{s:s,s:s?,s:s,s:{},s:i,s:I}}", "status", "ok", "signedURLDetails", "shardId", shard,
                     "uploadURL", url, "method", "PUT", "extensionHeaders", "maxNumberOfImages",
                     s->o.max_shard_images, "maxShardSize", (json_int_t)s->o.max_shard_bytes);
    free(url);
    return 0;
}

/* ---- signed PUT sink and GET -------------------------------------------------------- */

struct staging_put {
    struct staging *s;
    struct store_blob_writer *w; /* owned */
    char *key;                   /* owned */
    char kind[8];                /* tar | video */
    char *shard_id;              /* owned, tar only */
    char *file_name;             /* owned, video only */
    int64_t bid;
};

/* One writer per signed URL: a second PUT to a URL whose first PUT is
 * still streaming is refused.  Without this both would pass the "pending"
 * check, and the later one's rename would replace (or, for a failed video
 * probe, delete) the blob the first one was acknowledged for. */
static int put_claim(struct staging *s, const char *key)
{
    size_t n = strlen(key) + 1;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    for (struct staging__putting *e = s->putting; e; e = e->next)
        if (!strcmp(e->key, key))
            rc = ERR_EXISTS;
    if (rc == 0) {
        struct staging__putting *e = xmalloc(sizeof(*e) + n);
        memcpy(e->key, key, n);
        e->next = s->putting;
        s->putting = e;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void put_release(struct staging *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    for (struct staging__putting **pe = &s->putting; *pe; pe = &(*pe)->next) {
        if (!strcmp((*pe)->key, key)) {
            struct staging__putting *e = *pe;
            *pe = e->next;
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static void put_free(struct staging_put *p)
{
    if (p->key)
        put_release(p->s, p->key);
    free(p->key);
    free(p->shard_id);
    free(p->file_name);
    free(p);
}

int staging_put_open(struct staging *s, const char *key, const char *q_method, const char *q_expires,
                     const char *q_limit, const char *q_signature, int64_t content_length, struct staging_put **out, struct err *err)
{
    int64_t limit = 0;
    sqlite3_stmt *q = NULL;
    struct staging_put *p = NULL;
    int rc = store_signed_verify(s->st, "PUT", key, q_method, q_expires, q_limit, q_signature, &limit);
    if (rc < 0) {
        err_printf(err, "invalid, expired or tampered signed URL");
        return rc == ERR_INVALID ? ERR_AUTH : rc;
    }
    if (put_claim(s, key) < 0) {
        err_printf(err, "an upload to this URL is already in progress");
        return ERR_EXISTS;
    }
    sqlite3 *db = store_db_acquire(s->st);
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT bid, kind, shard_id, file_name, state, size_limit FROM uploads"
                               " WHERE blob_key=?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        int st = sqlite3_step(q);
        if (st == SQLITE_DONE) {
            err_printf(err, "no upload is expected at this URL (batch expired or removed?)");
            rc = ERR_NOTFOUND;
        } else if (st == SQLITE_ROW) {
            const char *state = (const char *)sqlite3_column_text(q, 4);
            if (strcmp(state, "pending") != 0) {
                err_printf(err, "this upload URL was already used");
                rc = ERR_EXISTS;
            } else {
                p = xcalloc(1, sizeof *p);
                p->s = s;
                p->bid = sqlite3_column_int64(q, 0);
                snprintf(p->kind, sizeof p->kind, "%s", (const char *)sqlite3_column_text(q, 1));
                if (sqlite3_column_text(q, 2))
                    p->shard_id = xstrdup((const char *)sqlite3_column_text(q, 2));
                if (sqlite3_column_text(q, 3))
                    p->file_name = xstrdup((const char *)sqlite3_column_text(q, 3));
                limit = MIN(limit, sqlite3_column_int64(q, 5));
                rc = 0;
            }
        }
    }
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    if (rc < 0)
        goto fail;
    if (content_length > limit) {
        err_printf(err, "upload of %lld bytes exceeds the limit of %lld bytes", (long long)content_length,
                     (long long)limit);
        rc = ERR_LIMIT;
        goto fail;
    }
    /* Refuse now what could not be kept: the bytes of the upload and, for
     * a tar shard, as many again for its extracted images. */
    bool tar = !strcmp(p->kind, "tar");
    if (content_length > 0 &&
        (rc = store_space_check(s->st, tar ? 2 * content_length : content_length,
                                tar ? "this tar shard and its extraction" : "this upload", err)) < 0)
        goto fail;
    if (content_length <= 0 && (rc = store_space_check(s->st, 0, "an upload", err)) < 0)
        goto fail;
    p->key = xstrdup(key); /* from here put_free releases the claim */
    if ((rc = store_blob_writer_open(s->st, key, limit, &p->w)) < 0) {
        err_printf(err, "cannot create the upload file");
        goto fail;
    }
    *out = p;
    return 0;
fail:
    if (p && p->key)
        put_free(p);
    else {
        put_release(s, key);
        if (p)
            put_free(p);
    }
    return rc;
}

int staging_put_write(struct staging_put *p, const void *data, size_t len, struct err *err)
{
    int rc = store_blob_writer_write(p->w, data, len);
    if (rc == ERR_LIMIT)
        err_printf(err, "upload exceeds its size limit");
    else if (rc < 0)
        err_printf(err, "cannot write the upload: %s", err_str(rc));
    return rc;
}

void staging_put_abort(struct staging_put *p)
{
    if (!p)
        return;
    store_blob_writer_abort(p->w);
    put_free(p);
}

static int upload_mark(sqlite3 *db, const char *key, const char *state, struct err *err)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "UPDATE uploads SET state=? WHERE blob_key=? AND state='pending'", -1, &q, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(q, 1, state, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_DONE)
            rc = sqlite3_changes(db) == 1 ? 0 : ERR_EXISTS;
    }
    sqlite3_finalize(q);
    if (rc == ERR_EXISTS)
        err_printf(err, "this upload URL was already used");
    return rc;
}

int staging_put_finish(struct staging_put *p, struct err *err)
{
    struct staging *s = p->s;
    int64_t size = store_blob_writer_size(p->w);
    const char *mime = NULL;
    int rc = 0;
    /* Before the 200: a tar shard's extraction needs as many bytes again.
     * Refused, nothing is kept and the URL stays usable for a retry. */
    if (!strcmp(p->kind, "tar"))
        rc = store_space_check(s->st, size, "the extraction of this tar shard", err);
    if (rc < 0) {
        store_blob_writer_abort(p->w);
        p->w = NULL;
        goto out;
    }
    rc = store_blob_writer_finish(p->w);
    p->w = NULL;
    if (rc < 0) {
        err_printf(err, "cannot store the upload: %s", err_str(rc));
        goto out;
    }
    if (!strcmp(p->kind, "video")) {
        char *path = store_blob_path(s->st, p->key);
        rc = staging__video_probe(path, &mime);
        free(path);
        if (rc < 0) {
            store_blob_delete(s->st, p->key);
            sqlite3 *db = store_db_acquire(s->st);
            if (store_tx_begin(db) == 0 && upload_mark(db, p->key, "failed", err) == 0)
                store_tx_commit(db);
            store_tx_rollback(db);
            store_db_release(s->st, db);
            err_printf(err, "'%s' is not a video container that can be read", p->file_name);
            rc = ERR_INVALID;
            goto out;
        }
    }
    sqlite3 *db = store_db_acquire(s->st);
    rc = store_tx_begin(db);
    if (rc == 0)
        rc = upload_mark(db, p->key, "done", err);
    if (rc == 0 && !strcmp(p->kind, "video"))
        rc = staging__item_insert(db, p->bid, NULL, p->file_name, NULL, "video", mime, p->key, size);
    if (rc == 0 && !strcmp(p->kind, "tar"))
        rc = staging__shard_status(db, p->shard_id, "uploaded", "uploaded", "info", NULL, 0);
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    if (rc < 0 && rc != ERR_EXISTS)
        store_blob_delete(s->st, p->key);
    if (rc == 0 && !strcmp(p->kind, "tar"))
        staging__kick(s, true, false);
out:
    put_free(p);
    return rc;
}

static const char *mime_static(const char *m)
{
    static const char *const known[] = {"image/jpeg", "image/png",       "image/webp",       "image/bmp",
                                        "video/mp4",  "video/quicktime", "video/x-matroska", "video/webm",
                                        "video/x-msvideo", "application/json", "text/csv", "application/x-tar",
                                        "application/gzip", "application/jsonl"};
    for (size_t i = 0; m && i < ARRAY_LEN(known); i++)
        if (!strcmp(m, known[i]))
            return known[i];
    return "application/octet-stream";
}

int staging_get_open(struct staging *s, const char *key, const char *q_method, const char *q_expires,
                     const char *q_limit, const char *q_signature, int *fd, int64_t *size, const char **mime, struct err *err)
{
    sqlite3_stmt *q = NULL;
    int rc = store_signed_verify(s->st, "GET", key, q_method, q_expires, q_limit, q_signature, NULL);
    if (rc < 0) {
        err_printf(err, "invalid, expired or tampered signed URL");
        return rc == ERR_INVALID ? ERR_AUTH : rc;
    }
    const char *m = NULL;
    sqlite3 *db = store_db_acquire(s->st);
    if (sqlite3_prepare_v2(db, "SELECT mime FROM items WHERE blob_key=? LIMIT 1", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            m = mime_static((const char *)sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    store_db_release(s->st, db);
    rc = store_blob_open(s->st, key, fd, size);
    if (rc < 0) {
        err_printf(err, "object not found");
        return rc == ERR_INVALID ? ERR_NOTFOUND : rc;
    }
    *mime = m ? m : "application/octet-stream";
    return 0;
}

/* ---- video probe -------------------------------------------------------------------------- */

int staging__video_probe(const char *path, const char **mime)
{
    struct vis_video_info info;
    /* vision refuses still images (image2 / *_pipe demuxers) and streams
     * without a decodable video track. */
    if (vis_video_probe_file(path, &info) < 0)
        return ERR_INVALID;
    if (strstr(info.container, "mp4") || strstr(info.container, "mov"))
        *mime = "video/mp4";
    else if (strstr(info.container, "matroska") || strstr(info.container, "webm"))
        *mime = "video/x-matroska";
    else if (strstr(info.container, "avi"))
        *mime = "video/x-msvideo";
    else
        *mime = "application/octet-stream";
    return 0;
}

/* ---- reference ingests ------------------------------------------------------------------- */

static bool http_url(const char *u)
{
    return u && strlen(u) <= 4096 && (!strncasecmp(u, "http://", 7) || !strncasecmp(u, "https://", 8));
}

int staging__ref_entry(json_t *e, const char **name, const char **url)
{
    const char *n = json_string_value(json_object_get(e, "name"));
    const char *u = json_string_value(json_object_get(e, "url"));
    if (!json_is_object(e) || !staging__name_valid(n) || !http_url(u))
        return ERR_INVALID;
    *name = n;
    *url = u;
    return 0;
}

int staging__refs_parse(const char *body, size_t len, bool video, int max_refs, struct staging__refs_req *out, struct err *err)
{
    const char *k_list = video ? "videoReferences" : "imageReferences";
    const char *k_url = video ? "videoReferencesURL" : "imageReferencesURL";
    memset(out, 0, sizeof *out);
    out->cat_ingest = true;
    json_t *root = NULL;
    char e2[300];
    if (json_parse_outside(body, len, JSON_REJECT_DUPLICATES, &root, e2, sizeof e2) == ERR_LIMIT) {
        err_printf(err, "the body is %s", e2);
        return ERR_INVALID;
    }
    if (!json_is_object(root)) {
        err_printf(err, "body must be a JSON object");
        json_decref(root);
        return ERR_INVALID;
    }
    out->root = root;
    json_t *list = json_object_get(root, k_list), *url = json_object_get(root, k_url);
    if ((list && url) || (!list && !url)) {
        err_printf(err, "give exactly one of '%s' and '%s'", k_list, k_url);
        goto bad;
    }
    if (list) {
        if (!json_is_array(list) || json_array_size(list) == 0) {
            err_printf(err, "'%s' must be a non-empty list", k_list);
            goto bad;
        }
        if (json_array_size(list) > (size_t)max_refs) {
            err_printf(err, "'%s' holds more than %d references", k_list, max_refs);
            json_decref(root);
            out->root = NULL;
            return ERR_LIMIT;
        }
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            const char *n, *u;
            if (staging__ref_entry(e, &n, &u) < 0) {
                err_printf(err, "reference %zu needs a valid 'name' (no '/' or '..') and an http(s) 'url'", i);
                goto bad;
            }
        }
        out->refs = list;
    } else {
        if (!http_url(json_string_value(url))) {
            err_printf(err, "'%s' must be an http(s) URL", k_url);
            goto bad;
        }
        out->refs_url = json_string_value(url);
    }
    json_t *v = json_object_get(root, "ingestId");
    if (v && !json_is_null(v)) {
        const char *id = json_string_value(v);
        if (!id || !*id || strlen(id) > 256) {
            err_printf(err, "'ingestId' must be a string of 1-256 bytes");
            goto bad;
        }
        out->ingest_id = id;
    }
    v = json_object_get(root, "notificationsURL");
    if (v && !json_is_null(v)) {
        if (!http_url(json_string_value(v))) {
            err_printf(err, "'notificationsURL' must be an http(s) URL");
            goto bad;
        }
        out->notify_url = json_string_value(v);
    }
    v = json_object_get(root, "notificationCategories");
    if (v && !json_is_null(v)) {
        size_t i;
        json_t *e;
        if (!json_is_array(v) || json_array_size(v) > 8) {
            err_printf(err, "'notificationCategories' must be a list");
            goto bad;
        }
        out->cat_ingest = false;
        json_array_foreach(v, i, e) {
            const char *c = json_string_value(e);
            if (c && !strcmp(c, "ingest-status"))
                out->cat_ingest = true;
            else if (c && !strcmp(c, "files-status"))
                out->cat_files = true;
            else {
                err_printf(err, "unknown notification category (use ingest-status, files-status)");
                goto bad;
            }
        }
    }
    return 0;
bad:
    json_decref(root);
    out->root = NULL;
    return ERR_INVALID;
}

#define REFS_PER_SHARD 500

int staging_ingest_references(struct staging *s, const char *ws, const char *batch, const char *display_name,
                              bool video, const char *body, size_t len, json_t **out, struct err *err)
{
    struct staging__refs_req r;
    struct staging__batch b;
    sqlite3_stmt *q = NULL;
    json_t *resp = NULL, *shard_ids = NULL;
    char gen_id[37];
    int max = video ? MAX(1, s->o.max_references / 4) : s->o.max_references;
    int rc = staging__refs_parse(body, len, video, max, &r, err);
    if (rc < 0)
        return rc;
    if (!id_valid(batch, 64)) {
        err_printf(err, "invalid batch id: use 1-64 of a-z 0-9 _ -");
        json_decref(r.root);
        return ERR_INVALID;
    }
    const char *ingest_id = r.ingest_id;
    if (!ingest_id) {
        uuid4(gen_id);
        ingest_id = gen_id;
    }
    if ((rc = store_space_check(s->st, 0, "a new ingest", err)) < 0) {
        json_decref(r.root);
        return rc;
    }
    sqlite3 *db = store_db_acquire(s->st);
    rc = store_tx_begin(db);
    if (rc == 0)
        rc = staging__batch_get_or_create(s, db, ws, batch, display_name, "bulk", &b, err);
    if (rc < 0)
        goto out;
    /* De-duplication: the same ingestId for the same batch answers the
     * first ingest's response and queues nothing. */
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT response FROM ingests WHERE bid=? AND ingest_id=?", -1, &q, NULL))
        goto out;
    sqlite3_bind_int64(q, 1, b.bid);
    sqlite3_bind_text(q, 2, ingest_id, -1, SQLITE_STATIC);
    int st = sqlite3_step(q);
    if (st == SQLITE_ROW) {
        resp = json_loads((const char *)sqlite3_column_text(q, 0), 0, NULL);
        if (resp) {
            json_object_set_new(resp, "status", json_string("ok")); /* absent from older rows */
            json_object_set_new(resp, "duplicated", json_true());
            rc = 0;
        }
        goto out;
    }
    sqlite3_finalize(q);
    q = NULL;
    resp = json_pack("{s:s,s:s}", "status", "ok", "ingestId", ingest_id);
    shard_ids = json_array();
    const char *kind = video ? "video-refs" : "image-refs";
    int nshards = 0;
    rc = 0;
    if (r.refs) {
        size_t n = json_array_size(r.refs);
        for (size_t off = 0; off < n && rc == 0; off += REFS_PER_SHARD) {
            json_t *chunk = json_array();
            for (size_t i = off; i < n && i < off + REFS_PER_SHARD; i++) {
                json_t *e = json_array_get(r.refs, i);
                json_array_append_new(chunk, json_pack("{s:O,s:O}", "name", json_object_get(e, "name"), "url",
                                                       json_object_get(e, "url")));
            }
            char *refs = json_dumps(chunk, JSON_COMPACT);
            char sid[37];
            uuid4(sid);
            rc = shard_insert(db, b.bid, sid, kind, "queued", "queued", NULL, ingest_id, r.notify_url, r.cat_ingest,
                              r.cat_files, refs, NULL);
            json_array_append_new(shard_ids, json_string(sid));
            nshards++;
            free(refs);
            json_decref(chunk);
        }
    } else {
        char sid[37];
        uuid4(sid);
        rc = shard_insert(db, b.bid, sid, kind, "queued", "queued", NULL, ingest_id, r.notify_url, r.cat_ingest,
                          r.cat_files, NULL, r.refs_url);
        json_array_append_new(shard_ids, json_string(sid));
        nshards++;
    }
    if (rc < 0)
        goto out;
    if (!video)
        json_object_set(resp, "shardIds", shard_ids);
    char *stored = json_dumps(resp, JSON_COMPACT);
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "INSERT INTO ingests(bid, ingest_id, response, shards_total, created_ms)"
                               " VALUES(?,?,?,?,?)", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, b.bid);
        sqlite3_bind_text(q, 2, ingest_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, stored, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 4, nshards);
        sqlite3_bind_int64(q, 5, time_now_ms());
        rc = store_step_done(db, q);
    }
    free(stored);
    json_object_set_new(resp, "duplicated", json_false());
out:
    sqlite3_finalize(q);
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(s->st, db);
    json_decref(shard_ids);
    json_decref(r.root);
    if (rc < 0) {
        if (rc == ERR_INTERNAL)
            err_printf(err, "database error");
        json_decref(resp);
        return rc;
    }
    staging__kick(s, false, true);
    *out = resp;
    return 0;
}
