/*
 * arrivals.c — the arrival poller of the S3 backend: clients PUT tar
 * shards and videos straight to the object store with a presigned URL and
 * never tell vbatch, so vbatch notices each object's arrival here and
 * records it as a PUT to its own signed URL does (staging__upload_arrived:
 * a tar shard becomes "uploaded" and the indexer takes it).
 *
 * One process polls at a time across the processes on the database: the
 * holder of the "upload-poller" lease (as the expiry sweeper).  A round,
 * every poll interval (--upload-poll-ms, default 1 s):
 *
 *   pending targets (uploads.state = pending, younger than the URL
 *   lifetime + 1 h, at most POLL_ROWS_MAX) grouped by batch
 *     └─ one listing of the batch's upload folder "b/<bid>/u" (where the
 *        presigned URLs point: staging__upload_key) per group, not a HEAD
 *        per target: 1,000 pending shards of one batch cost one list
 *        request (of 1000 keys) a round; at most POLL_LISTS_MAX listings
 *        a round (groups past it wait for the next round, in turn);
 *     └─ a group whose youngest target is older than 10 poll intervals
 *        is listed every age/10 intervals, at most every 60 intervals
 *        (old URLs are rarely used).
 *
 * An arrived object is copied (server side) to the target's key, recorded,
 * and the upload object deleted: a second PUT to the same presigned URL
 * (S3 accepts it until the URL expires) only writes an upload object that
 * nobody reads (and that the next round does not look for: the target is
 * no longer pending); it goes with the batch.  Over the size limit, the
 * target fails without a copy.
 *
 * An upload recorded twice (two pollers after a lease handover, or a
 * racing vbatch PUT) is harmless: the pending -> done move is conditional
 * and the second gets ERR_EXISTS.  S3 PUTs are atomic, so a listed object
 * is always whole.
 */
#include "staging/staging_int.h"

#include <stdlib.h>
#include <string.h>

#define POLL_LEASE "upload-poller"
#define POLL_ROWS_MAX 20000
#define POLL_LISTS_MAX 32
#define POLL_SLOW_MAX 60

struct listed {
    char *key;
    int64_t size;
};
struct listing {
    struct listed *v;
    int n, cap;
};

static int list_cb(void *ud, const char *key, int64_t size, int64_t mtime_ms)
{
    struct listing *l = ud;
    (void)mtime_ms;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n].key = xstrdup(key);
    l->v[l->n].size = size;
    l->n++;
    return 0;
}

static int listed_cmp(const void *a, const void *b)
{
    return strcmp(((const struct listed *)a)->key, ((const struct listed *)b)->key);
}

static void listing_free(struct listing *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* One arrival: the object at the upload key (size bytes) of pending
 * target r.  Copied to the target's key and recorded; the upload object
 * is then deleted (kept when the database could not be reached, so the
 * next round tries again). */
static void arrived(struct staging *s, const struct store_upload_pending *r, const char *ukey, int64_t size)
{
    struct err ae = ERR_INIT;
    int rc = 0;
    metric_count(METRIC_UPLOAD_POLLS, 1, "arrival", NULL, NULL);
    if (size <= r->u.size_limit && (rc = store_blob_copy(s->st, ukey, r->key)) < 0) {
        log_warn("staging", "upload poller: cannot copy '%s' to '%s': %s", ukey, r->key, err_str(rc));
        return;
    }
    rc = staging__upload_arrived(s, r->key, &r->u, size, &ae);
    if (rc == 0)
        log_info("staging", "upload poller: '%s' arrived (%lld bytes)", r->key, (long long)size);
    else if (rc != ERR_EXISTS)
        log_info("staging", "upload poller: '%s' (%lld bytes) refused: %s", r->key, (long long)size,
                 err_text(&ae, rc));
    if (rc != ERR_UNAVAILABLE)
        store_blob_delete(s->st, ukey);
}

static void poll_round(struct staging *s, int64_t poll_ms, uint64_t tick, uint64_t *turn)
{
    struct err e = ERR_INIT;
    struct store_upload_pending *rows = NULL;
    int n = 0, lists = 0;
    int64_t now = time_now_ms();
    metric_count(METRIC_UPLOAD_POLLS, 1, "round", NULL, NULL);
    int rc = store_uploads_pending(s->st, now - s->o.upload_url_ttl_ms - 3600 * 1000LL, POLL_ROWS_MAX, &rows, &n,
                                   &e);
    if (rc < 0) {
        log_warn("staging", "upload poller: cannot read the pending uploads: %s", err_text(&e, rc));
        return;
    }
    /* groups: runs of rows of one batch (rows are ordered by batch) */
    int ngroups = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || rows[i].u.bid != rows[i - 1].u.bid)
            ngroups++;
    int first = ngroups ? (int)(*turn % (uint64_t)ngroups) : 0;
    for (int pass = 0; pass < 2 && lists < POLL_LISTS_MAX; pass++) {
        int g = -1;
        for (int i = 0; i < n && lists < POLL_LISTS_MAX;) {
            int64_t bid = rows[i].u.bid, youngest = rows[i].created_ms;
            int j = i + 1;
            for (; j < n && rows[j].u.bid == bid; j++)
                youngest = MAX(youngest, rows[j].created_ms);
            g++;
            /* pass 0: the groups from this round's turn on; pass 1: the ones before */
            bool mine = pass == 0 ? g >= first : g < first;
            int64_t every = (now - youngest) / 10 / MAX(poll_ms, 1);
            every = MIN(MAX(every, 1), POLL_SLOW_MAX);
            if (!mine || (tick + (uint64_t)bid) % (uint64_t)every != 0) {
                i = j;
                continue;
            }
            char dir[64];
            snprintf(dir, sizeof dir, "b/%lld/u", (long long)bid);
            struct listing l = {0};
            lists++;
            metric_count(METRIC_UPLOAD_POLLS, 1, "list", NULL, NULL);
            rc = store_blob_list(s->st, dir, list_cb, &l);
            if (rc < 0) {
                listing_free(&l);
                log_warn("staging", "upload poller: cannot list '%s': %s", dir, err_str(rc));
                i = j;
                continue;
            }
            if (l.n > 1)
                qsort(l.v, (size_t)l.n, sizeof *l.v, listed_cmp);
            for (int k = i; k < j && l.n; k++) {
                char ukey[128];
                staging__upload_key(rows[k].key, ukey);
                struct listed want = {ukey, 0};
                struct listed *got = bsearch(&want, l.v, (size_t)l.n, sizeof *l.v, listed_cmp);
                if (got)
                    arrived(s, &rows[k], ukey, got->size);
            }
            listing_free(&l);
            i = j;
        }
    }
    (*turn)++;
    store_uploads_pending_free(rows, n);
}

void *staging__poll_main(void *arg)
{
    struct staging *s = arg;
    int64_t poll_ms = s->o.upload_poll_ms > 0 ? s->o.upload_poll_ms : 1000;
    int64_t lease_ms = MAX(3 * poll_ms, s->o.lease_floor_ms > 0 ? s->o.lease_floor_ms : 5000);
    const char *me = store_owner(s->st);
    uint64_t tick = 0, turn = 0;
    int held = -1;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        struct err e = ERR_INIT;
        int got = store_lease_take(s->st, POLL_LEASE, me, lease_ms, &e);
        if (got >= 0 && got != held)
            log_info("staging", got ? "upload poller lease taken owner=%s"
                                    : "upload poller lease held by another process (this one is owner=%s)", me);
        if (got >= 0)
            held = got;
        if (got == 1)
            poll_round(s, poll_ms, tick, &turn);
        tick++;
        staging__sleep_ms_unless_stopped(s, poll_ms);
    }
    if (held == 1) {
        struct err e = ERR_INIT;
        store_lease_release(s->st, POLL_LEASE, me, &e);
    }
    return NULL;
}
