/*
 * shardjob.c — the bookkeeping shared by the indexer (indexer.c) and the
 * fetcher (fetcher.c): a shard taken from the queue, the files it staged
 * and rejected, and the one transaction that ends it (items, status,
 * webhooks: store_shard_finish) or marks it waiting for storage.
 *
 * Crash safety.  A tar shard is kept whole: its blob
 * b/<bid>/s/<shard>.tar was written once and fsynced before its upload
 * was acknowledged (state "uploaded"), and the indexer writes no bytes —
 * its items are (that blob, offset, length).  A reference shard's files
 * are written as blobs under the deterministic keys b/<bid>/r/<shard>/<n>
 * and the file system is synced.  Only then are all item rows inserted —
 * in ONE transaction together with the state change that takes the shard
 * out of "uploaded"/"queued".  A crash before the commit leaves the shard
 * in its old state, with no item visible; on restart it is processed
 * again (a tar shard's blob is read again, a reference shard's blobs are
 * overwritten), so items are never half-visible and never duplicated.
 * The transaction re-checks the state, so two indexers (or a test and the
 * thread) cannot both commit one shard.  The rows belong to
 * store/ (store/shards.c, where the shard state diagram is).
 *
 * Claims across processes: a shard is claimed for this process
 * (store_owner) before any work (staging__job_load), the th_renew thread
 * renews the claims of the shards being worked on every third of the lease
 * (staging_opts.claim_lease_ms), and the ending transaction succeeds only
 * while the claim is still ours.  A process killed with kill -9 leaves its
 * claim to expire; another process (or this one after a restart) then
 * claims the shard and does it again.  Blobs are deleted only by the owner
 * of a live claim, or after the shard has ended: a process whose claim was
 * taken over never removes what the new owner wrote.
 */
#include "staging/staging.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "staging/staging_int.h"

/* Register or clear the job's claim for the renewal thread (one slot per
 * queue: the thread's job; a test calling staging_index_pending beside the
 * running thread only shares the slot, its claims expire as usual). */
static void claim_track(struct staging__job *j, bool on)
{
    struct staging *s = j->s;
    pthread_mutex_lock(&s->mu);
    char **slot = &s->claimed[j->slot];
    if (on || (*slot && !strcmp(*slot, j->shard_id))) {
        free(*slot);
        *slot = on ? xstrdup(j->shard_id) : NULL;
        s->claim_lost[j->slot] = false;
        s->claim_ok_ms[j->slot] = time_mono_ms();
    }
    pthread_mutex_unlock(&s->mu);
}

void staging__job_release(struct staging__job *j)
{
    if (j->claimed) {
        claim_track(j, false);
        if (!j->ended) { /* not finished: another claimer may take it now */
            struct err e = ERR_INIT;
            if (store_shard_unclaim(j->s->st, j->shard_id, store_owner(j->s->st), &e) < 0)
                log_warn("staging", "cannot hand back the claim of shard=%s: %s (it expires)", j->shard_id,
                         err_text(&e, ERR_INTERNAL));
        }
    }
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

bool staging__job_lost(struct staging__job *j)
{
    pthread_mutex_lock(&j->s->mu);
    bool lost = j->s->claim_lost[j->slot];
    pthread_mutex_unlock(&j->s->mu);
    return lost;
}

void *staging__renew_main(void *arg)
{
    struct staging *s = arg;
    int64_t lease = s->o.claim_lease_ms;
    for (;;) {
        /* wait a third of the lease, or stop */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (MAX(lease / 3, 1) % 1000) * 1000000LL;
        ts.tv_sec += MAX(lease / 3, 1) / 1000 + ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_mutex_lock(&s->mu);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT)
            ;
        bool stop = s->stop;
        char *ids[2];
        for (int i = 0; i < 2; i++)
            ids[i] = s->claimed[i] && !s->claim_lost[i] ? xstrdup(s->claimed[i]) : NULL;
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < 2; i++) {
            struct err e = ERR_INIT;
            int rc = ids[i] && !stop ? store_shard_renew(s->st, ids[i], store_owner(s->st), lease, &e) : 0;
            if (rc == 0 && ids[i]) {
                pthread_mutex_lock(&s->mu);
                if (s->claimed[i] && !strcmp(s->claimed[i], ids[i]))
                    s->claim_ok_ms[i] = time_mono_ms();
                pthread_mutex_unlock(&s->mu);
            } else if (rc == ERR_EXISTS) {
                pthread_mutex_lock(&s->mu);
                if (s->claimed[i] && !strcmp(s->claimed[i], ids[i]))
                    s->claim_lost[i] = true;
                pthread_mutex_unlock(&s->mu);
                log_warn("staging", "claim of shard=%s lost: its lease ran out and another process took it",
                         ids[i]);
            } else if (rc < 0) {
                log_warn("staging", "cannot renew the claim of shard=%s: %s", ids[i], err_text(&e, rc));
            }
            free(ids[i]);
        }
        if (stop)
            return NULL;
    }
}

void staging__job_reject(void *ud, const char *name, const char *type, const char *reason)
{
    struct staging__job *j = ud;
    j->nfailed++;
    if (json_array_size(j->failed) < STAGING_LIST_CAP)
        json_array_append_new(j->failed,
                              json_pack("{s:s,s:s,s:s}", "type", type, "file_name", name, "reason", reason));
}

int staging__job_add(struct staging__job *j, const char *name, const char *key, const char *mime, int64_t size,
                     int64_t offset)
{
    if (j->nitems == j->capitems) {
        j->capitems = j->capitems ? j->capitems * 2 : 64;
        j->items = xrealloc(j->items, (size_t)j->capitems * sizeof *j->items);
    }
    j->items[j->nitems++] = (struct staging__staged){xstrdup(name), xstrdup(key), xstrdup(mime), size, offset};
    json_array_append_new(j->ingested, json_string(name));
    return 0;
}

/* Claim the oldest unclaimed tar shard (refs false) or reference shard in
 * `state`. */
int staging__job_load(struct staging *s, bool refs, const char *state, struct staging__job *j)
{
    struct store_shard_work w;
    struct err e = ERR_INIT;
    memset(j, 0, sizeof *j);
    j->s = s;
    j->slot = refs ? STAGING__FETCHER : STAGING__INDEXER;
    int rc = store_shard_claim(s->st, refs, state, store_owner(s->st), s->o.claim_lease_ms, &w, &e);
    if (rc < 0)
        return rc;
    j->bid = w.bid;
    j->ws = w.ws, j->batch = w.batch, j->shard_id = w.shard_id, j->kind = w.kind, j->blob_key = w.blob_key;
    j->ingest_id = w.ingest_id, j->notify_url = w.notify_url, j->refs = w.refs, j->refs_url = w.refs_url;
    j->cat_ingest = w.cat_ingest;
    j->cat_files = w.cat_files;
    j->failed = json_array();
    j->ingested = json_array();
    j->claimed = true;
    claim_track(j, true);
    log_info("staging", "shard claimed shard=%s owner=%s", j->shard_id, store_owner(s->st));
    return 0;
}

/* For a reference shard: the ingest's count and, when the ingest asked for
 * ingest-status webhooks, both possible payloads of its last shard. */
static void outcome_ingest(struct staging__job *j, struct store_shard_outcome *o, bool failed, const char *err_type,
                           const char *reason, char **ok, char **bad)
{
    if (!strcmp(j->kind, "tar") || !j->ingest_id)
        return;
    o->ingest_id = j->ingest_id;
    o->failed = failed;
    if (j->notify_url && j->cat_ingest) {
        *ok = staging__notify_ingest(j->ingest_id, j->batch, true, NULL, NULL);
        *bad = staging__notify_ingest(j->ingest_id, j->batch, false, err_type ? err_type : "ingest-failed",
                                      reason ? reason : "some shards failed");
        o->ingest_ok = *ok;
        o->ingest_failed = *bad;
    }
}

/* Record a shard-level failure (no items), in one transaction. */
int staging__job_fail(struct staging__job *j, const char *from_state, const char *status_name, const char *reason)
{
    struct staging *s = j->s;
    struct err e = ERR_INIT;
    char prefix[160], *hook = NULL, *ok = NULL, *bad = NULL;
    json_t *meta = json_pack("{s:s,s:O,s:i}", "reason", reason, "failedFiles", j->failed, "failedCount", j->nfailed);
    char *meta_s = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    struct store_shard_outcome o = {.bid = j->bid, .shard_id = j->shard_id, .from_state = from_state,
                                    .owner = store_owner(s->st), .state = "failed", .status_name = status_name,
                                    .status_type = "error", .meta = meta_s, .ws = j->ws,
                                    .webhook_url = j->notify_url};
    char *okey = staging__notify_key(j->ingest_id, j->batch);
    o.webhook_key = okey;
    if (!strcmp(j->kind, "tar") && j->notify_url && j->ingest_id)
        o.webhook = hook = staging__notify_ingest(j->ingest_id, j->batch, false, status_name, reason);
    outcome_ingest(j, &o, true, status_name, reason, &ok, &bad);
    int rc = store_shard_finish(s->st, &o, &e);
    free(meta_s), free(hook), free(ok), free(bad), free(okey);
    if (rc == 0 || rc == ERR_EXISTS)
        j->ended = true;
    if (rc == 0) {
        /* the shard has ended: no claimer writes under its prefix any more
         * (a crash before this leaves files that the batch's expiry removes) */
        snprintf(prefix, sizeof prefix, "b/%lld/%s/%s", (long long)j->bid, !strcmp(j->kind, "tar") ? "s" : "r",
                 j->shard_id);
        store_blob_delete_prefix(s->st, prefix);
        log_warn("staging", "shard failed shard=%s status=%s reason=%s", j->shard_id, status_name, reason);
        store_outbox_kick(s->st);
    }
    return rc;
}

/* The outcome of a shard done with j's staged items (no webhooks): *items
 * and *meta_s are the caller's to free after the store call. */
static void done_outcome(struct staging__job *j, const char *from_state, const char *owner,
                         struct store_shard_outcome *o, struct store_item_new **items_out, char **meta_out)
{
    struct store_item_new *items = xcalloc((size_t)MAX(j->nitems, 1), sizeof *items);
    for (int i = 0; i < j->nitems; i++) {
        bool meta = !strcmp(j->items[i].mime, "application/json"); /* a sidecar (tar only) */
        items[i] = (struct store_item_new){meta ? STAGING_METADATA_PART : NULL, j->items[i].name, j->shard_id,
                                           meta ? "metadata" : !strcmp(j->kind, "video-refs") ? "video" : "image",
                                           j->items[i].mime, j->items[i].key, j->items[i].size,
                                           j->items[i].offset >= 0, j->items[i].offset};
    }
    bool all_failed = j->nitems == 0 && j->nfailed > 0;
    json_t *meta = json_pack("{s:i,s:O,s:i}", "ingestedFiles", j->nitems, "failedFiles", j->failed, "failedCount",
                             j->nfailed);
    char *meta_s = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    *o = (struct store_shard_outcome){.bid = j->bid, .shard_id = j->shard_id, .from_state = from_state,
                                      .owner = owner, .state = "done",
                                      .status_name = all_failed ? "all-files-failed" : "ingested",
                                      .status_type = all_failed ? "error" : "success", .meta = meta_s,
                                      .objects = j->nitems, .items = items, .nitems = j->nitems, .ws = j->ws,
                                      .webhook_url = j->notify_url};
    *items_out = items;
    *meta_out = meta_s;
}

/* After the commit of a shard done with j's items. */
static void done_recorded(struct staging__job *j)
{
    /* kind: tar, image-refs, video-refs (fixed by the shards table) */
    const char *mk = !strcmp(j->kind, "tar") ? "shard" : j->kind;
    int64_t bytes = 0;
    for (int i = 0; i < j->nitems; i++)
        bytes += j->items[i].size;
    metric_count(METRIC_INGEST_ITEMS, (uint64_t)j->nitems, mk, NULL, NULL);
    if (strcmp(j->kind, "tar") != 0) /* a shard's bytes were counted at its PUT */
        metric_count(METRIC_INGEST_BYTES, (uint64_t)bytes, mk, NULL, NULL);
    log_info("staging", "shard ingested shard=%s items=%d rejected=%zu", j->shard_id, j->nitems,
             json_array_size(j->failed));
}

/* Publish a shard's staged items, in one transaction. */
int staging__job_commit(struct staging__job *j, const char *from_state)
{
    struct staging *s = j->s;
    struct err e = ERR_INIT;
    char *hook = NULL, *ok = NULL, *bad = NULL, *meta_s = NULL;
    struct store_item_new *items = NULL;
    struct store_shard_outcome o;
    /* A tar shard's items lie in its blob, synced before its upload was
     * acknowledged; fetched references were written without a sync. */
    int rc = strcmp(j->kind, "tar") != 0 ? store_blob_sync(s->st) : 0;
    if (rc < 0)
        return rc;
    done_outcome(j, from_state, store_owner(s->st), &o, &items, &meta_s);
    bool all_failed = j->nitems == 0 && j->nfailed > 0;
    char *okey = staging__notify_key(j->ingest_id, j->batch);
    o.webhook_key = okey;
    if (j->notify_url && j->ingest_id && (!strcmp(j->kind, "tar") || j->cat_files))
        o.webhook = hook = staging__notify_files(j->ingest_id, j->batch, j->shard_id, j->ingested, j->failed,
                                                 j->nfailed > (int)json_array_size(j->failed));
    outcome_ingest(j, &o, all_failed, "all-files-failed", "no file of the shard could be ingested", &ok, &bad);
    rc = store_shard_finish(s->st, &o, &e);
    free(items), free(meta_s), free(hook), free(ok), free(bad), free(okey);
    if (rc == 0 || rc == ERR_EXISTS)
        j->ended = true;
    if (rc == ERR_EXISTS)
        log_warn("staging", "shard not recorded shard=%s: finished or taken over by another process", j->shard_id);
    if (rc == 0) {
        done_recorded(j);
        store_outbox_kick(s->st);
    }
    return rc;
}

int staging__job_commit_upload(struct staging__job *j, const char *key, const struct store_upload *u, int64_t size,
                               struct err *err)
{
    char *meta_s = NULL;
    struct store_item_new *items = NULL;
    struct store_shard_outcome o;
    done_outcome(j, "uploaded", NULL, &o, &items, &meta_s);
    int rc = store_upload_done_indexed(j->s->st, key, u, size, &o, err);
    free(items), free(meta_s);
    if (rc == 0)
        done_recorded(j);
    return rc;
}

int staging__jobs_commit_uploads(const struct staging__upload_commit *v, int n, struct err *err)
{
    struct store_upload_indexed *ix = xcalloc((size_t)n, sizeof *ix);
    struct store_shard_outcome *os = xcalloc((size_t)n, sizeof *os);
    struct store_item_new **items = xcalloc((size_t)n, sizeof *items);
    char **metas = xcalloc((size_t)n, sizeof *metas);
    for (int i = 0; i < n; i++) {
        done_outcome(v[i].j, "uploaded", NULL, &os[i], &items[i], &metas[i]);
        ix[i] = (struct store_upload_indexed){v[i].key, v[i].u, v[i].size, &os[i]};
    }
    int rc = n > 0 ? store_uploads_done_indexed(v[0].j->s->st, ix, n, err) : 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            done_recorded(v[i].j);
        free(items[i]);
        free(metas[i]);
    }
    free(metas), free(items), free(os), free(ix);
    return rc;
}

/* Sleep ms, waking early when the context stops. */
void staging__sleep_ms_unless_stopped(struct staging *s, int64_t ms)
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
void staging__job_wait_storage(struct staging__job *j, const char *from_state, const char *why)
{
    struct staging *s = j->s;
    struct err e = ERR_INIT;
    char prefix[160];
    /* Delete what was written only while the claim is surely ours: renewed
     * now, or — when the database cannot take the renewal (a full disk) —
     * confirmed less than half a lease ago, so that nobody can have taken
     * it yet; the space is what this is for. */
    int rc = store_shard_renew(s->st, j->shard_id, store_owner(s->st), s->o.claim_lease_ms, &e);
    if (rc < 0 && rc != ERR_EXISTS) {
        pthread_mutex_lock(&s->mu);
        bool recent = !s->claim_lost[j->slot] && s->claimed[j->slot] && !strcmp(s->claimed[j->slot], j->shard_id) &&
                      time_mono_ms() - s->claim_ok_ms[j->slot] < s->o.claim_lease_ms / 2;
        pthread_mutex_unlock(&s->mu);
        if (recent)
            rc = 0;
    }
    if (rc < 0) {
        log_warn("staging", "shard not marked waiting for storage shard=%s: %s", j->shard_id, err_text(&e, rc));
        return;
    }
    snprintf(prefix, sizeof prefix, "b/%lld/%s/%s", (long long)j->bid, !strcmp(j->kind, "tar") ? "s" : "r",
             j->shard_id);
    store_blob_delete_prefix(s->st, prefix);
    json_t *meta = json_pack("{s:s}", "reason", why);
    char *meta_s = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    /* the claim is handed back with it: tried again after the backoff */
    if (store_shard_wait_storage(s->st, j->shard_id, from_state, store_owner(s->st), meta_s, &e) == 0)
        j->ended = true;
    free(meta_s);
    log_warn("staging", "shard waiting for storage shard=%s: %s", j->shard_id, why);
}

/* After a storage failure, the queue waits before its next try: 1 s,
 * doubling to 30 s; reset by the next shard that goes through. */
bool staging__backoff_waiting(struct staging *s, int64_t *until)
{
    pthread_mutex_lock(&s->mu);
    bool wait = time_mono_ms() < *until;
    pthread_mutex_unlock(&s->mu);
    return wait;
}

void staging__backoff_set(struct staging *s, int64_t *until, int64_t *delay, bool failed)
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
