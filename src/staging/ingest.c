/*
 * ingest.c — the ingest endpoints: single-image upload, signed upload URLs
 * for videos and tar shards, the signed PUT sink and GET download, the
 * video container probe (vision's FFmpeg probe), and reference ingests (parsed and queued here,
 * fetched by the fetcher thread in fetcher.c).
 *
 * Upload flow of a signed PUT (tar shard or video):
 *
 *   POST bulk-upload/image-files ──► uploads row (pending) + shards row
 *        (awaiting-upload) + signed PUT URL (key b/<bid>/s/<shard>.tar)
 *   PUT /blobs/<key>?… ──► temp file (limit enforced while streaming)
 *        ─finish─► fsync + rename ─► tx { uploads done; shard "uploaded" }
 *        ─► indexer (indexer.c) ─► tx { items; shard "ingested" | error }
 *
 * A tar shard of at most STAGING_KEEP_MAX bytes is kept in memory as it
 * arrives and scanned from there at finish; after the rename it is
 * answered at once and its one transaction (uploads done, items, shard
 * "ingested") is run by the committer (commits.c), or before the answer
 * when the committer cannot take it.
 *
 * With the blobs on S3 the client PUTs to the store instead (a presigned
 * URL of the shard's own key, written once: If-None-Match; upload_url)
 * and the arrival poller (arrivals.c) records the same transaction.
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
                         const char *mode, struct store_batch *b, struct err *err)
{
    /* Fast path without the write lock: the batch exists in this mode. */
    int rc = store_batch_find(s->st, ws, batch, b, err);
    if (rc == 0 && !strcmp(b->mode, mode))
        return 0;
    err_clear(err);
    return store_batch_get_or_create(s->st, ws, batch, display_name, mode, s->o.expiry_ms, b, err);
}

int staging_upload_image(struct staging *s, const char *ws, const char *batch, const char *display_name,
                         const char *file_name, const char *tmp_path, json_t **out, struct err *err)
{
    struct store_batch b;
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
    if (s->o.commit_delay_ms > 0) /* tests: a window between the bytes and their row */
        staging__sleep_ms_unless_stopped(s, s->o.commit_delay_ms);
    struct store_item_new it = {meta ? STAGING_METADATA_PART : NULL, file_name, NULL, meta ? "metadata" : "image",
                                mime, key, size, false, 0};
    rc = store_item_add(s->st, ws, batch, b.bid, meta, &it, err);
    if (rc < 0) {
        store_blob_delete(s->st, key);
        goto out;
    }
    metric_count(METRIC_INGEST_BYTES, (uint64_t)size, "image", NULL, NULL);
    metric_count(METRIC_INGEST_ITEMS, 1, meta ? "metadata" : "image", NULL, NULL);
    *out = json_pack("{s:s,s:s}", "status", "ok", "fileName", file_name);
out:
    if (!consumed)
        unlink(tmp_path);
    return rc;
}

/* ---- signed upload URLs ------------------------------------------------------------ */

void staging__upload_key(const char *key, char out[128])
{
    const char *last = strrchr(key, '/'), *third = NULL;
    int slashes = 0;
    for (const char *p = key; *p && !third; p++)
        if (*p == '/' && ++slashes == 2)
            third = p;
    if (!last || !third)
        snprintf(out, 128, "%s", key);
    else
        snprintf(out, 128, "%.*s/u/%s", (int)(third - key), key, last + 1);
}

/* On the S3 backend the client PUTs straight to the object store; on the
 * local folder to vbatch's own signed /blobs URL (which enforces limit).
 * A tar shard on a store that honours "If-None-Match: *" is PUT to its own
 * key, once (*once set: the client sends that header, the answer's
 * extensionHeaders), and indexed where it lands.  Else (videos, and stores
 * that would overwrite) to the upload key b/<bid>/u/<name>, copied to the
 * target on arrival so that a second PUT to the URL changes nothing that
 * was acknowledged.  An S3 presigned PUT signs no maximum size: the
 * arrival poller refuses an oversized object (docs/STORAGE.md); a client
 * that declared its size (length >= 0, at most limit) gets it signed, and
 * the store refuses any other (the local folder: limit = length). */
static char *upload_url(struct staging *s, const char *key, int64_t limit, int64_t length, bool tar, bool *once)
{
    char *path = NULL, *url = NULL, ukey[128];
    int64_t exp = (time_now_ms() + s->o.upload_url_ttl_ms) / 1000;
    *once = false;
    if (tar && store_blob_presign_put_once(s->st, key, exp, length, &url) == 0) {
        *once = true;
        return url;
    }
    staging__upload_key(key, ukey);
    int rc = store_blob_presign(s->st, "PUT", ukey, exp, length, &url);
    if (rc == 0)
        return url;
    if (rc != ERR_UNSUPPORTED)
        return NULL;
    if (store_sign_path(s->st, "PUT", key, exp, length >= 0 ? length : limit, &path) < 0)
        return NULL;
    url = xasprintf("%s%s", s->base_url, path);
    free(path);
    return url;
}

int staging_upload_video_url(struct staging *s, const char *ws, const char *batch, const char *display_name,
                             const char *file_name, json_t **out, struct err *err)
{
    char uuid[37], key[96];
    int rc;
    if (!staging__name_valid(file_name)) {
        err_printf(err, "fileName is missing or invalid (1-255 bytes, no '/' or '..')");
        return ERR_INVALID;
    }
    if ((rc = store_space_check(s->st, 0, "a new upload URL", err)) < 0)
        return rc;
    /* Videos go into any input batch; a new batch becomes a simple one. */
    uuid4(uuid);
    rc = store_upload_video_create(s->st, ws, batch, display_name, file_name, uuid, s->o.max_video_bytes,
                                   s->o.expiry_ms, key, err);
    if (rc == ERR_QUOTA && staging__commit_wait_idle(s, ws, 5000)) { /* as staging_bulk_upload_url_sized */
        err_clear(err);
        rc = store_upload_video_create(s->st, ws, batch, display_name, file_name, uuid, s->o.max_video_bytes,
                                       s->o.expiry_ms, key, err);
    }
    if (rc < 0)
        return rc;
    bool once;
    char *url = upload_url(s, key, s->o.max_video_bytes, -1, false, &once);
    *out = json_pack("{s:s,s:{s:s?,s:s,s:{},s:I}}", "status", "ok", "signedURLDetails", "uploadURL", url,
                     "method", "PUT", "extensionHeaders", "maxFileSize", (json_int_t)s->o.max_video_bytes);
    free(url);
    return 0;
}

int staging_bulk_upload_url(struct staging *s, const char *ws, const char *batch, const char *display_name,
                            json_t **out, struct err *err)
{
    return staging_bulk_upload_url_sized(s, ws, batch, display_name, -1, out, err);
}

int staging_bulk_upload_url_sized(struct staging *s, const char *ws, const char *batch, const char *display_name,
                                  int64_t content_length, json_t **out, struct err *err)
{
    char shard[37], key[96];
    if (content_length > s->o.max_shard_bytes) {
        err_printf(err, "contentLength %lld exceeds the shard limit of %lld bytes", (long long)content_length,
                   (long long)s->o.max_shard_bytes);
        return ERR_LIMIT;
    }
    int rc = store_space_check(s->st, 0, "a new upload URL", err);
    if (rc < 0)
        return rc;
    uuid4(shard);
    /* An existing bulk batch of a workspace without quotas to count: the
     * URL is answered now and its rows written by the committer right
     * after (commits.c; SQLite takes one writer at a time, and this
     * request would wait for a shard's 500-row commit).  A PUT to it
     * before they are written, or after a crash lost them, finds its
     * target by its key (store_upload_tar_adopt). */
    int64_t bid = 0;
    if (s->o.url_behind && s->o.commit_behind > 0 && store_upload_tar_probe(s->st, ws, batch, &bid, err) == 0 &&
        staging__url_behind(s, bid, shard)) {
        store_upload_tar_key(bid, shard, key);
        atomic_store(&s->url_last_inline, false);
        s->url_done++;
        goto answer;
    }
    err_clear(err);
    atomic_store(&s->url_last_inline, true);
    s->url_writers++; /* the committer lets it go first (commits.c) */
    rc = store_upload_tar_create(s->st, ws, batch, display_name, shard, s->o.max_shard_bytes, s->o.expiry_ms, key,
                                 err);
    s->url_writers--;
    s->url_done++;
    /* Over the pending-uploads quota while shards answered already wait
     * for the committer: those URLs were used — once they are recorded,
     * ask again. */
    if (rc == ERR_QUOTA && staging__commit_wait_idle(s, ws, 5000)) {
        err_clear(err);
        rc = store_upload_tar_create(s->st, ws, batch, display_name, shard, s->o.max_shard_bytes, s->o.expiry_ms,
                                     key, err);
    }
    if (rc < 0)
        return rc;
answer:;
    bool once;
    char *url = upload_url(s, key, s->o.max_shard_bytes, content_length, true, &once);
    json_t *hdrs = once ? json_pack("{s:s}", "If-None-Match", "*") : json_object();
    *out = json_pack("{s:s,s:{s:s,s:s?,s:s,s:o,s:i,s:I}}", "status", "ok", "signedURLDetails", "shardId", shard,
                     "uploadURL", url, "method", "PUT", "extensionHeaders", hdrs, "maxNumberOfImages",
                     s->o.max_shard_images, "maxShardSize", (json_int_t)s->o.max_shard_bytes);
    free(url);
    return 0;
}

/* ---- signed PUT sink and GET -------------------------------------------------------- */

struct staging_put {
    struct staging *s;
    struct store_blob_writer *w; /* owned */
    char *key;                   /* owned */
    struct store_upload u;       /* owned: the target (kind, batch, shard or file name) */
    bool adopted;                /* u built from the key: its rows were not written at the open */
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

bool staging__put_busy(struct staging *s, const char *key)
{
    bool busy = false;
    pthread_mutex_lock(&s->mu);
    for (struct staging__putting *e = s->putting; e && !busy; e = e->next)
        busy = !strcmp(e->key, key);
    pthread_mutex_unlock(&s->mu);
    return busy;
}

void staging__put_release(struct staging *s, const char *key)
{
    if (!key)
        return;
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
        staging__put_release(p->s, p->key);
    free(p->key);
    store_upload_release(&p->u);
    free(p);
}

int staging_put_open(struct staging *s, const char *key, const char *q_method, const char *q_expires,
                     const char *q_limit, const char *q_signature, int64_t content_length, struct staging_put **out, struct err *err)
{
    int64_t limit = 0;
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
    struct store_upload u;
    bool adopted = false;
    rc = store_upload_get(s->st, key, &u, err);
    if (rc == ERR_NOTFOUND) { /* a tar shard URL answered before its rows were written (commits.c) */
        err_clear(err);
        rc = store_upload_tar_adopt(s->st, key, s->o.max_shard_bytes, &u, err);
        adopted = rc == 0;
    }
    if (rc == 0 && !u.pending) {
        store_upload_release(&u);
        err_printf(err, "this upload URL was already used");
        rc = ERR_EXISTS;
    }
    if (rc < 0)
        goto fail;
    p = xcalloc(1, sizeof *p);
    p->s = s;
    p->u = u;
    p->adopted = adopted;
    limit = MIN(limit, u.size_limit);
    if (content_length > limit) {
        err_printf(err, "upload of %lld bytes exceeds the limit of %lld bytes", (long long)content_length,
                     (long long)limit);
        rc = ERR_LIMIT;
        goto fail;
    }
    /* Refuse now what could not be kept: the bytes of the upload (a tar
     * shard is kept whole: its images take no more room). */
    bool tar = !strcmp(p->u.kind, "tar");
    if (content_length > 0 &&
        (rc = store_space_check(s->st, content_length, tar ? "this tar shard" : "this upload", err)) < 0)
        goto fail;
    if (content_length <= 0 && (rc = store_space_check(s->st, 0, "an upload", err)) < 0)
        goto fail;
    p->key = xstrdup(key); /* from here put_free releases the claim */
    /* A tar shard is also kept in memory while it is at most
     * STAGING_KEEP_MAX bytes: indexed from there as its PUT ends (unless a
     * test asked for a window between the upload and its indexing). */
    rc = tar && s->o.index_at_upload && s->o.index_delay_ms <= 0 ? store_blob_writer_open_kept(s->st, key, limit, STAGING_KEEP_MAX, &p->w)
             : store_blob_writer_open(s->st, key, limit, &p->w);
    if (rc < 0) {
        err_printf(err, "cannot create the upload file");
        goto fail;
    }
    *out = p;
    return 0;
fail:
    if (p && p->key)
        put_free(p);
    else {
        staging__put_release(s, key);
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

int staging_put_finish(struct staging_put *p, struct err *err)
{
    struct staging *s = p->s;
    int64_t size = store_blob_writer_size(p->w);
    struct staging__job j;
    bool have_job = false;
    int rc = 0;
    /* a target adopted at the open: its rows before anything is acknowledged */
    if (p->adopted && (rc = staging__url_ensure(s, p->key, &p->u, err)) < 0) {
        store_blob_writer_abort(p->w);
        p->w = NULL;
        put_free(p);
        return rc;
    }
    /* A shard the writer kept in memory is scanned from there (its bytes
     * are never read again), while the writer's feeder still writes them,
     * and, once synced, recorded with its items in the transaction that
     * acknowledges it. */
    const void *kept = store_blob_writer_kept(p->w);
    have_job = kept != NULL;
    bool at_once = have_job && staging__index_kept(s, p->key, &p->u, kept, (size_t)size, &j);
    /* Before the 200: the reserve for the rows of its items (once what
     * was handed to the disk is written: the free space is exact then).
     * Refused, nothing is kept and the URL stays usable for a retry. */
    if (!strcmp(p->u.kind, "tar")) {
        store_blob_writer_settle(p->w);
        rc = store_space_check(s->st, store_blob_writer_unwritten(p->w), "the index of this tar shard", err);
    }
    if (rc < 0) {
        store_blob_writer_abort(p->w);
        p->w = NULL;
        goto out;
    }
    /* To be answered before its commit (commits.c): a place in the
     * committer's queue first, then the blob marked as answered for, so
     * that only such a blob is taken for acknowledged if a crash comes
     * before the commit (an inline shard renamed and not answered is not). */
    bool behind = at_once && staging__commit_reserve(s);
    if (behind && store_blob_writer_mark(p->w) < 0) {
        staging__commit_unreserve(s);
        behind = false;
    }
    rc = store_blob_writer_finish(p->w);
    p->w = NULL;
    if (rc < 0) {
        if (behind)
            staging__commit_unreserve(s);
        err_printf(err, "cannot store the upload: %s", err_str(rc));
        goto out;
    }
    /* answered now, committed right after by the committer; the claim on
     * the URL (p->key) goes with it until then */
    if (behind && staging__commit_behind(s, &j, &p->key, &p->u, size)) {
        have_job = false; /* its bytes are counted as it is recorded */
        goto out;
    }
    if (at_once) {
        rc = staging__job_commit_upload(&j, p->key, &p->u, size, err);
        if (rc == 0) {
            metric_count(METRIC_INGEST_BYTES, (uint64_t)size, "shard", NULL, NULL);
            goto out;
        }
        if (rc == ERR_EXISTS) /* the URL was used meanwhile: the same answer as below */
            goto out;
        /* anything else (a busy database): recorded as uploaded, the
         * indexer thread does it again */
        log_warn("staging", "shard=%s not indexed at its upload: %s", p->u.shard_id, err_text(err, rc));
        err_clear(err);
    }
    rc = staging__upload_arrived(s, p->key, &p->u, size, false, err);
out:
    if (have_job)
        staging__job_release(&j);
    put_free(p);
    return rc;
}

int staging__upload_arrived(struct staging *s, const char *key, const struct store_upload *u, int64_t size,
                            bool in_place, struct err *err)
{
    const char *mime = NULL;
    int rc;
    if (size > u->size_limit) { /* a presigned PUT to the object store signs no maximum */
        rc = store_upload_done(s->st, key, u, NULL, size, err);
        if (rc == ERR_LIMIT)
            store_blob_delete(s->st, key);
        return rc;
    }
    if (!strcmp(u->kind, "video")) {
        char *path = NULL; /* the blob's file, or a downloaded copy on S3 */
        rc = store_blob_local_copy(s->st, key, &path);
        if (rc == ERR_UNAVAILABLE) {
            /* the store cannot be reached: nothing recorded, the arrival
             * is noticed again (the poller keeps the upload object) */
            err_printf(err, "cannot read the uploaded video: %s", err_str(rc));
            return rc;
        }
        if (rc == 0)
            rc = staging__video_probe(path, &mime);
        store_blob_local_release(s->st, path);
        if (rc < 0) {
            store_blob_delete(s->st, key);
            store_upload_fail(s->st, key, err);
            err_printf(err, "'%s' is not a video container that can be read", u->file_name);
            return ERR_INVALID;
        }
    }
    rc = store_upload_done(s->st, key, u, mime, size, err);
    /* not recorded: a copy (or vbatch's own PUT, answered with the error)
     * goes; the client's only copy stays for the next round to record */
    if (rc < 0 && rc != ERR_EXISTS && !in_place)
        store_blob_delete(s->st, key);
    if (rc == 0) {
        bool tar = !strcmp(u->kind, "tar");
        /* a video PUT is its item; a shard's items are counted when indexed */
        metric_count(METRIC_INGEST_BYTES, (uint64_t)size, tar ? "shard" : "video", NULL, NULL);
        if (!tar)
            metric_count(METRIC_INGEST_ITEMS, 1, "video", NULL, NULL);
        else
            staging__kick(s, true, false);
    }
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
                     const char *q_limit, const char *q_offset, const char *q_length, const char *q_signature,
                     int *fd, int64_t *start, int64_t *size, const char **mime, struct err *err)
{
    int64_t offset = -1, length = -1;
    int rc = store_signed_verify_range(s->st, "GET", key, q_method, q_expires, q_limit, q_offset, q_length,
                                       q_signature, &offset, &length);
    if (rc < 0) {
        err_printf(err, "invalid, expired or tampered signed URL");
        return rc == ERR_INVALID ? ERR_AUTH : rc;
    }
    const char *m = NULL;
    char *recorded = NULL;
    struct err e2 = ERR_INIT; /* no recorded type is not an error: octet-stream */
    if (offset < 0 && store_item_mime(s->st, key, &recorded, &e2) == 0 && recorded)
        m = mime_static(recorded);
    free(recorded);
    rc = store_blob_open_at(s->st, key, offset, length, fd, start, size);
    if (rc < 0) {
        err_printf(err, "object not found");
        return rc == ERR_INVALID || rc == ERR_PARSE ? ERR_NOTFOUND : rc;
    }
    if (offset >= 0) {
        /* a tar shard's item: an image whose type its ingest read from its
         * bytes (staging__image_mime: vis_check, whose type is
         * vis_sniff's), or a JSON sidecar (the only other item a shard
         * gives): the same answer from its first bytes, no lookup */
        uint8_t head[16];
        ssize_t n = pread(*fd, head, (size_t)MIN(*size, (int64_t)sizeof head), *start);
        m = vis_type_mime(vis_sniff(head, n > 0 ? (size_t)n : 0));
        if (!m)
            m = "application/json";
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
    /* The shards (REFS_PER_SHARD references each) and the answer, stored
     * with the ingest so that a repeated ingestId gets it again. */
    size_t nrefs = r.refs ? json_array_size(r.refs) : 0;
    int nshards = r.refs ? (int)((nrefs + REFS_PER_SHARD - 1) / REFS_PER_SHARD) : 1;
    struct store_ingest_shard *shards = xcalloc((size_t)nshards, sizeof *shards);
    char (*sids)[37] = xcalloc((size_t)nshards, sizeof *sids);
    resp = json_pack("{s:s,s:s}", "status", "ok", "ingestId", ingest_id);
    shard_ids = json_array();
    for (int k = 0; k < nshards; k++) {
        uuid4(sids[k]);
        shards[k].shard_id = sids[k];
        if (r.refs) {
            json_t *chunk = json_array();
            size_t off = (size_t)k * REFS_PER_SHARD;
            for (size_t i = off; i < nrefs && i < off + REFS_PER_SHARD; i++) {
                json_t *e = json_array_get(r.refs, i);
                json_array_append_new(chunk, json_pack("{s:O,s:O}", "name", json_object_get(e, "name"), "url",
                                                       json_object_get(e, "url")));
            }
            shards[k].refs = json_dumps(chunk, JSON_COMPACT);
            json_decref(chunk);
        } else {
            shards[k].refs_url = r.refs_url;
        }
        json_array_append_new(shard_ids, json_string(sids[k]));
    }
    if (!video)
        json_object_set(resp, "shardIds", shard_ids);
    char *stored = json_dumps(resp, JSON_COMPACT), *dup = NULL;
    struct store_ingest_new in = {ingest_id, video ? "video-refs" : "image-refs", r.notify_url, r.cat_ingest,
                                  r.cat_files, shards, nshards, stored};
    rc = store_ingest_create(s->st, ws, batch, display_name, s->o.expiry_ms, &in, &dup, err);
    free(stored);
    for (int k = 0; k < nshards; k++)
        free((char *)shards[k].refs);
    free(shards);
    free(sids);
    if (rc == 0 && dup) {
        /* De-duplication: the same ingestId for the same batch answers the
         * first ingest's response and queues nothing. */
        json_decref(resp);
        resp = json_loads(dup, 0, NULL);
        if (resp) {
            json_object_set_new(resp, "status", json_string("ok")); /* absent from older rows */
            json_object_set_new(resp, "duplicated", json_true());
        } else {
            rc = ERR_INTERNAL;
        }
        free(dup);
    } else if (rc == 0) {
        json_object_set_new(resp, "duplicated", json_false());
    }
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
