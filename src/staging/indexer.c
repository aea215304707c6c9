/*
 * indexer.c — the indexer thread's work: a tar shard that was uploaded
 * becomes items (tar.c scans it, shardjob.c records it).  The shard blob
 * is kept whole; each item is (shard blob, offset, length).
 *
 *   tar:  awaiting-upload ─PUT─► uploaded ─index─► done   (ingested/success)
 *                                        └───────► failed (too-many-images,
 *                                          shard-size-limit-exceeded,
 *                                          corrupt-archive, upload-missing,
 *                                          internal-error /error)
 */
#include "staging/staging.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "staging/staging_int.h"

static int tar_image(void *ud, int index, const char *name, const void *data, size_t len, int64_t offset,
                     const char *mime)
{
    struct staging__job *j = ud;
    (void)index, (void)data;
    if (staging__job_lost(j))
        return ERR_EXISTS; /* another process has the shard now: stop */
    return staging__job_add(j, name, j->blob_key, mime, (int64_t)len, offset);
}

static int index_one(struct staging__job *j, struct err *err)
{
    struct staging *s = j->s;
    struct staging__tar_limits lim = {s->o.max_image_bytes, s->o.max_shard_images};
    struct staging__tar_cb cb = {tar_image, staging__job_reject, j};
    char reason[256];
    const char *why = NULL;
    int fd = -1, n = 0, rc;
    int64_t size = 0;
    void *m = NULL;
    rc = store_blob_open(s->st, j->blob_key, &fd, &size);
    if (rc == ERR_NOTFOUND)
        return staging__job_fail(j, "uploaded", "upload-missing", "the uploaded archive is missing");
    if (rc < 0) /* the blob store cannot be reached (or storage trouble): retried later */
        return err_set(err, rc, "cannot read the uploaded archive: %s", err_str(rc));
    if (size > s->o.max_shard_bytes) {
        close(fd);
        snprintf(reason, sizeof reason, "Max size of a shard is %lldB.", (long long)s->o.max_shard_bytes);
        return staging__job_fail(j, "uploaded", "shard-size-limit-exceeded", reason);
    }
    if (s->o.index_delay_ms > 0) /* tests: a window between the upload and its indexing */
        staging__sleep_ms_unless_stopped(s, s->o.index_delay_ms);
    /* Nothing is written but the rows: the reserve is all it needs. */
    if ((rc = store_space_check(s->st, 0, "the index of this shard", err)) < 0) {
        close(fd);
        return rc;
    }
    /* The shard is read in place: mapped, its headers parsed, each entry
     * checked where it lies; no byte is copied or written again. */
    /* MAP_POPULATE: the archive was just written, its pages are cached;
     * mapping them all at once costs less than a fault per few pages. */
    if (size > 0 && (m = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0)) == MAP_FAILED) {
        rc = -errno;
        close(fd);
        return err_set(err, rc, "cannot map the archive: %s", err_str(rc));
    }
    close(fd);
    rc = staging__tar_scan(m ? m : "", (size_t)size, &lim, &cb, &n, j->ingest_id ? NULL : &j->ingest_id,
                           j->notify_url ? NULL : &j->notify_url, &why);
    if (m)
        munmap(m, (size_t)size);
    if (rc == ERR_LIMIT) {
        if (!strcmp(why, "too-many-entries"))
            snprintf(reason, sizeof reason, "Max number of archive entries in a shard is %d.",
                     10 * s->o.max_shard_images + 16);
        else
            snprintf(reason, sizeof reason, "Max number of images in a shard is %d.", s->o.max_shard_images);
        rc = staging__job_fail(j, "uploaded", why, reason);
    } else if (rc == ERR_PARSE) {
        rc = staging__job_fail(j, "uploaded", why, "the archive is not a valid uncompressed tar file");
    } else if (rc < 0) {
        /* storage trouble: leave the shard uploaded, retry later */
        return err_set(err, rc, "cannot index the archive: %s", err_str(rc));
    } else {
        /* The shard blob stays: its items are read from it by offset. */
        rc = staging__job_commit(j, "uploaded");
        if (rc < 0 && rc != ERR_EXISTS)
            err_printf(err, "cannot record the shard's images: %s", err_str(rc));
        return rc;
    }
    if (rc == 0) /* failed: nothing refers to the archive */
        store_blob_delete(s->st, j->blob_key);
    return rc;
}

static int kept_image(void *ud, int index, const char *name, const void *data, size_t len, int64_t offset,
                      const char *mime)
{
    struct staging__job *j = ud;
    (void)index, (void)data;
    return staging__job_add(j, name, j->blob_key, mime, (int64_t)len, offset);
}

bool staging__index_kept(struct staging *s, const char *key, const struct store_upload *u, const void *mem,
                         size_t size, struct staging__job *j)
{
    struct staging__tar_limits lim = {s->o.max_image_bytes, s->o.max_shard_images};
    struct staging__tar_cb cb = {kept_image, staging__job_reject, j};
    const char *why = NULL;
    int n = 0;
    memset(j, 0, sizeof *j);
    j->s = s;
    j->slot = STAGING__INDEXER;
    j->bid = u->bid;
    j->shard_id = xstrdup(u->shard_id ? u->shard_id : "");
    j->kind = xstrdup("tar");
    j->blob_key = xstrdup(key);
    j->failed = json_array();
    j->ingested = json_array();
    if (!u->shard_id || (int64_t)size > s->o.max_shard_bytes)
        return false;
    /* the same scan as index_one's, over the bytes the writer kept */
    int rc = staging__tar_scan(size ? mem : "", size, &lim, &cb, &n, &j->ingest_id, &j->notify_url, &why);
    return rc == 0 && !j->ingest_id && !j->notify_url;
}

int staging_index_pending(struct staging *s, int *indexed)
{
    int n = 0, rc = 0;
    if (staging__backoff_waiting(s, &s->index_retry_at))
        goto done;
    for (;;) {
        struct staging__job j;
        struct err e = ERR_INIT;
        rc = staging__job_load(s, false, "uploaded", &j);
        if (rc == ERR_NOTFOUND) {
            rc = 0;
            staging__job_release(&j);
            break;
        }
        if (rc == 0)
            rc = index_one(&j, &e);
        if (err_is_nospace(rc) || rc == ERR_UNAVAILABLE) {
            /* an acknowledged shard is never dropped for want of space or
             * while the blob store cannot be reached */
            staging__job_wait_storage(&j, "uploaded", err_text(&e, rc));
            staging__job_release(&j);
            staging__backoff_set(s, &s->index_retry_at, &s->index_backoff, true);
            break;
        }
        if (rc == 0)
            staging__backoff_set(s, &s->index_retry_at, &s->index_backoff, false);
        if (rc < 0 && rc != ERR_EXISTS && rc != ERR_AGAIN) {
            /* A shard that cannot be processed must not block the queue;
             * a busy database (ERR_AGAIN) is retried on the next round. */
            char reason[160];
            snprintf(reason, sizeof reason, "internal error while indexing: %s", err_str(rc));
            if (j.shard_id && staging__job_fail(&j, "uploaded", "internal-error", reason) == 0)
                rc = 0;
        }
        staging__job_release(&j);
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

