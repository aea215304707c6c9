/*
 * indexer.c — the indexer thread's work: a tar shard that was uploaded
 * becomes items (tar.c scans it, shardjob.c records it).
 *
 *   tar:  awaiting-upload ─PUT─► uploaded ─index─► done   (ingested/success)
 *                                        └───────► failed (too-many-images,
 *                                          shard-size-limit-exceeded,
 *                                          corrupt-archive, upload-missing,
 *                                          internal-error /error)
 */
#include "staging/staging.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "staging/staging_int.h"

static int tar_image(void *ud, int index, const char *name, const void *data, size_t len, const char *mime)
{
    struct staging__job *j = ud;
    char key[128];
    if (staging__job_lost(j))
        return ERR_EXISTS; /* another process has the shard now: stop writing */
    snprintf(key, sizeof key, "b/%lld/s/%s/%d", (long long)j->bid, j->shard_id, index);
    int rc = store_blob_put_nosync(j->s->st, key, data, len);
    if (rc < 0)
        return rc;
    return staging__job_add(j, name, key, mime, (int64_t)len);
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
    rc = store_blob_open(s->st, j->blob_key, &fd, &size);
    if (rc < 0)
        return staging__job_fail(j, "uploaded", "upload-missing", "the uploaded archive is missing");
    if (size > s->o.max_shard_bytes) {
        close(fd);
        snprintf(reason, sizeof reason, "Max size of a shard is %lldB.", (long long)s->o.max_shard_bytes);
        return staging__job_fail(j, "uploaded", "shard-size-limit-exceeded", reason);
    }
    if (s->o.index_delay_ms > 0) /* tests: a window between the upload and its extraction */
        staging__sleep_ms_unless_stopped(s, s->o.index_delay_ms);
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
        rc = staging__job_fail(j, "uploaded", why, reason);
    } else if (rc == ERR_PARSE) {
        rc = staging__job_fail(j, "uploaded", why, "the archive is not a valid uncompressed tar file");
    } else if (rc < 0) {
        /* storage trouble: leave the shard uploaded, retry later */
        return err_set(err, rc, "cannot extract the archive: %s", err_str(rc));
    } else {
        rc = staging__job_commit(j, "uploaded");
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
        if (err_is_nospace(rc)) {
            /* an acknowledged shard is never dropped for want of space */
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

