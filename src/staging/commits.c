/*
 * commits.c — tar shards acknowledged before their rows are committed
 * (local blob folder; staging.h, staging_opts.commit_behind).
 *
 * A tar shard PUT to vbatch's own signed URL is scanned from the bytes the
 * writer kept (ingest.c), its blob is synced and renamed to its key
 * b/<bid>/s/<shard>.tar, and from there it is answered 200 at once: the
 * transaction that records the upload and inserts its items (the same as
 * at_once in ingest.c: store_upload_done_indexed) is run by the committer
 * thread here, one shard after the other, while the client already sends
 * its next shard.  SQLite takes one writer at a time; with the commit on
 * the PUT's path each client waited for the 500-row transactions of the
 * others as well as its own.
 *
 *   PUT ends ─► scan (kept bytes) ─► fdatasync + rename ─► queue ─► 200
 *                                                           │
 *   committer: tx { upload done; shard uploaded → done; items } ◄┘
 *
 * What "acknowledged" means is unchanged: the shard's bytes are on disk
 * whole under its final key before the 200.  Its items show in count/list
 * once the committer has committed them (milliseconds; the shard's status
 * says awaiting-upload until then).
 *
 * Crash between the 200 and the commit: the upload row is still pending
 * and the blob is at its final key.  A PUT that commits inline renames
 * its blob before its commit too, and if it died in between it was never
 * answered (its client sends the images again, the vbatch CLI through a
 * fresh URL): recording that one would duplicate them.  So a PUT that
 * will answer first takes a place in the queue and marks its blob (an
 * extended attribute of the temp file, store_blob_writer_mark) before the
 * sync and rename; a blob at the key of a pending upload WITH the mark is
 * the sign of a shard acknowledged and not recorded (on a file system
 * without user extended attributes nothing is marked and every shard is
 * committed inline).  Such shards are found again by staging__recover_acked: at start
 * (before the server listens: such shards are committed at once, so they
 * are counted at the first request after a restart) and every
 * RECOVER_EVERY_MS in the indexer thread (another process on the same data
 * folder may have died).  Recording it twice is harmless: the pending ->
 * done move is conditional, the second attempt gets ERR_EXISTS.
 *
 * Bounds: at most commit_behind shards wait (each holds its item list,
 * about 100 bytes an item, not its bytes); a PUT that finds the queue full
 * (the database slower than the disk, or failing) commits inline as
 * before and gets the database's answer.  A commit that fails for a
 * reason other than "already recorded" is retried as a plain arrival
 * (the shard recorded "uploaded", indexed by the indexer from its blob)
 * and, if the database refuses that too, again after a growing pause
 * (100 ms to 5 s).  On stop the queue is drained first, for at most
 * DRAIN_MAX_MS; what the database would not take by then is recovered at
 * the next start.
 *
 * Shards of one batch queued one behind the other are committed together
 * (staging_opts.commit_group, 8 by default): one transaction
 * (store_uploads_done_indexed) writes the batch's rows and the indexes'
 * last pages once instead of once per shard — 25% fewer WAL pages a shard
 * measured, and the queue left when the last PUT is answered drains
 * sooner (bench/ingest_tar.py: last answer -> all counted 13.5 ms instead
 * of 19 ms with groups of one).  The group is all
 * or nothing; when it is refused (a URL used meanwhile by another process,
 * the database failing) its shards are committed one by one as above.
 * Only one batch a group: its transaction holds that batch's workspace
 * first, as a removal does (PostgreSQL row locks in one order).
 *
 * Upload URLs answered before their rows (staging_opts.url_behind): a tar
 * shard URL of an existing bulk batch whose workspace has no quota to
 * count is answered by its request (ingest.c) and queued here; the
 * committer writes every queued URL (a transaction per batch) before its
 * next shard (though a waiting shard gets its turn between two rounds of
 * URLs).  The rows are idempotent and go only into a live batch
 * (store_upload_tar_record), so a PUT that comes before them — it builds
 * its target from the signed key, store_upload_tar_adopt — writes them
 * itself if they are still not there at its end (staging__url_ensure),
 * before it acknowledges anything; after a crash that lost them, the PUT
 * to the URL does the same.  At most URLS_MAX wait (then the request
 * writes its own); a stop writes them for at most DRAIN_MAX_MS.
 */
#include "staging/staging_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define YIELD_STEPS 100 /* 20 ms */
#define NEXT_URL_WAIT_US 2500
#define DRAIN_MAX_MS 10000
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define RECOVER_PAGE 1000
#define RECOVER_AT_START_MAX 64 /* shards committed before the server listens; more go to the indexer */
#define URLS_MAX 1024          /* URLs answered and not yet written; more are written by their request */
#define URL_ENSURE_WAIT_MS 100 /* a PUT's end waits this long for the committer to write its URL */
#define SETTLE_MS 1000         /* a read waits at most this long for the shards answered before it */

struct staging__url {
    struct staging__url *next;
    uint64_t seq; /* s->url_seq when queued */
    struct store_upload_rec r;
    char shard_id[37];
    char key[96];
};

struct staging__acked {
    struct staging__acked *next;
    struct staging__job j; /* the shard scanned: its items */
    char *key;             /* its blob; also this process's PUT claim on it (ingest.c) until committed */
    struct store_upload u;
    int64_t size;
    int64_t url_done;      /* s->url_done when it was queued */
    int64_t queued_us;     /* monotonic µs when it was queued */
    uint64_t seq;          /* s->acked_seq when it was queued */
};

bool staging__commit_reserve(struct staging *s)
{
    pthread_mutex_lock(&s->mu);
    bool ok = s->committing && !s->stop && s->n_acked + s->n_reserved < s->o.commit_behind;
    if (ok)
        s->n_reserved++;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void staging__commit_unreserve(struct staging *s)
{
    pthread_mutex_lock(&s->mu);
    s->n_reserved--;
    pthread_mutex_unlock(&s->mu);
}

bool staging__commit_behind(struct staging *s, struct staging__job *j, char **key, struct store_upload *u,
                            int64_t size)
{
    pthread_mutex_lock(&s->mu);
    s->n_reserved--;
    /* the committer ends only once stopped and drained: after a stop,
     * the caller commits inline */
    bool ok = s->committing && !s->stop;
    if (ok) {
        struct staging__acked *a = xcalloc(1, sizeof *a);
        a->j = *j;
        a->key = *key;
        a->u = *u;
        a->size = size;
        a->url_done = atomic_load(&s->url_done);
        a->queued_us = time_mono_ns() / 1000;
        a->seq = ++s->acked_seq;
        memset(j, 0, sizeof *j);
        memset(u, 0, sizeof *u);
        *key = NULL;
        *s->acked_tail = a;
        s->acked_tail = &a->next;
        s->n_acked++;
        pthread_cond_broadcast(&s->commit_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void acked_free(struct staging *s, struct staging__acked *a)
{
    staging__job_release(&a->j);
    staging__put_release(s, a->key);
    free(a->key);
    store_upload_release(&a->u);
    free(a);
}

/* Record the k acknowledged shards from a (one batch's, k > 1) in one
 * transaction: 0 when recorded; <0 records none of them (one of them used
 * or recorded already, the database refusing): then one by one. */
static int commit_group(struct staging__acked *a, int k)
{
    struct staging__upload_commit *v = xcalloc((size_t)k, sizeof *v);
    struct staging__acked *b = a;
    for (int i = 0; i < k; i++, b = b->next)
        v[i] = (struct staging__upload_commit){&b->j, b->key, &b->u, b->size};
    struct err e = ERR_INIT;
    int rc = staging__jobs_commit_uploads(v, k, &e);
    free(v);
    if (rc < 0) {
        log_debug("staging", "%d shards not committed together (one by one now): %s", k, err_text(&e, rc));
        return rc;
    }
    for (b = a; k-- > 0; b = b->next)
        metric_count(METRIC_INGEST_BYTES, (uint64_t)b->size, "shard", NULL, NULL);
    return 0;
}

/* Record one acknowledged shard: 0 when recorded (or recorded already by
 * someone else), <0 when the database would take neither the commit nor
 * the plain arrival (try again later). */
static int commit_one(struct staging *s, struct staging__acked *a)
{
    struct err e = ERR_INIT;
    int rc = staging__job_commit_upload(&a->j, a->key, &a->u, a->size, &e);
    if (rc == 0)
        metric_count(METRIC_INGEST_BYTES, (uint64_t)a->size, "shard", NULL, NULL);
    if (rc == 0 || rc == ERR_EXISTS)
        return 0;
    log_warn("staging", "shard=%s not committed behind its answer: %s", a->u.shard_id ? a->u.shard_id : "",
             err_text(&e, rc));
    err_clear(&e);
    /* recorded "uploaded" instead: the indexer indexes it from its blob */
    rc = staging__upload_arrived(s, a->key, &a->u, a->size, true, &e);
    if (rc == 0 || rc == ERR_EXISTS)
        return 0;
    log_warn("staging", "shard=%s acknowledged, not yet recorded: %s", a->u.shard_id ? a->u.shard_id : "",
             err_text(&e, rc));
    return rc;
}

bool staging__url_behind(struct staging *s, int64_t bid, const char *shard_id)
{
    pthread_mutex_lock(&s->mu);
    bool ok = s->committing && !s->stop && s->o.url_behind && s->n_urls + s->n_urls_writing < URLS_MAX;
    if (ok) {
        struct staging__url *u = xcalloc(1, sizeof *u);
        snprintf(u->shard_id, sizeof u->shard_id, "%s", shard_id);
        store_upload_tar_key(bid, u->shard_id, u->key);
        u->r = (struct store_upload_rec){bid, u->shard_id, s->o.max_shard_bytes, time_now_ms()};
        u->seq = ++s->url_seq;
        *s->urls_tail = u;
        s->urls_tail = &u->next;
        s->n_urls++;
        pthread_cond_broadcast(&s->commit_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int rec_by_bid(const void *a, const void *b)
{
    int64_t x = ((const struct store_upload_rec *)a)->bid, y = ((const struct store_upload_rec *)b)->bid;
    return x < y ? -1 : x > y;
}

/* Write the rows of k URLs, one transaction per batch: each locks its
 * batch's workspace first (store_upload_tar_record), and two processes
 * locking several in different orders could deadlock on PostgreSQL.
 * Sorts rs. */
static int urls_record(struct staging *s, struct store_upload_rec *rs, int k, struct err *e)
{
    qsort(rs, (size_t)k, sizeof *rs, rec_by_bid);
    int rc = 0;
    for (int i = 0, j; rc == 0 && i < k; i = j) {
        for (j = i + 1; j < k && rs[j].bid == rs[i].bid; j++)
            ;
        rc = store_upload_tar_record(s->st, rs + i, j - i, NULL, e);
    }
    return rc;
}

/* key is queued or being written by the committer (s->mu held) */
static bool url_waiting(struct staging *s, const char *key)
{
    for (int l = 0; l < 2; l++)
        for (struct staging__url *u = l ? s->urls_writing : s->urls; u; u = u->next)
            if (!strcmp(u->key, key))
                return true;
    return false;
}

static void url_wait(struct staging *s, const char *key, int64_t ms)
{
    struct timespec ts;
    time_mono_deadline(&ts, ms);
    pthread_mutex_lock(&s->mu);
    while (url_waiting(s, key) && pthread_cond_timedwait(&s->commit_cv, &s->mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&s->mu);
}

void staging__urls_settle(struct staging *s, int64_t ms)
{
    /* the URLs answered before this call, not those queued while it waits */
    struct timespec ts;
    time_mono_deadline(&ts, ms);
    pthread_mutex_lock(&s->mu);
    uint64_t upto = s->url_seq;
    while (s->url_seq_done < upto && pthread_cond_timedwait(&s->commit_cv, &s->mu, &ts) != ETIMEDOUT)
        ;
    if (s->url_seq_done >= upto) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    /* the committer is held up (a long commit, a refusing database):
     * their rows from here, as a PUT's end does (twice is harmless) */
    struct url_copy {
        struct store_upload_rec r;
        char shard_id[37];
    } *cp = xcalloc((size_t)(s->n_urls + s->n_urls_writing) + 1, sizeof *cp);
    int k = 0;
    for (int l = 0; l < 2; l++)
        for (struct staging__url *u = l ? s->urls_writing : s->urls; u; u = u->next)
            if (u->seq <= upto) {
                cp[k].r = u->r;
                memcpy(cp[k].shard_id, u->shard_id, sizeof cp[k].shard_id);
                k++;
            }
    pthread_mutex_unlock(&s->mu);
    struct store_upload_rec *rs = xcalloc((size_t)k + 1, sizeof *rs);
    for (int i = 0; i < k; i++) {
        rs[i] = cp[i].r;
        rs[i].shard_id = cp[i].shard_id;
    }
    struct err e = ERR_INIT;
    int rc = k > 0 ? urls_record(s, rs, k, &e) : 0;
    if (rc < 0)
        log_warn("staging", "%d upload URL(s) answered, not written for a listing: %s", k, err_text(&e, rc));
    free(rs);
    free(cp);
}

/* Forget the URLs queued (s->mu held): stopping, and the database would
 * not take them; a PUT to one after the restart writes its rows itself. */
static void urls_drop(struct staging *s)
{
    if (s->urls)
        log_warn("staging", "stopping: %d upload URL(s) left unwritten (their PUTs write them)", s->n_urls);
    while (s->urls) {
        struct staging__url *u = s->urls;
        s->urls = u->next;
        free(u);
    }
    s->urls_tail = &s->urls;
    s->n_urls = 0;
    s->url_seq_done = s->url_seq;
    pthread_cond_broadcast(&s->commit_cv);
}

int staging__url_ensure(struct staging *s, const char *key, const struct store_upload *u, struct err *err)
{
    struct store_upload now;
    url_wait(s, key, URL_ENSURE_WAIT_MS);
    int rc = store_upload_get(s->st, key, &now, err);
    if (rc == ERR_NOTFOUND) {
        /* not written yet (the committer busy or failing), or lost to a
         * crash, or written by nobody: the same rows, from here (twice is
         * harmless: the second insert leaves them) */
        int n = 0;
        struct store_upload_rec r = {u->bid, u->shard_id, u->size_limit, time_now_ms()};
        err_clear(err);
        rc = store_upload_tar_record(s->st, &r, 1, &n, err);
        if (rc == 0)
            rc = store_upload_get(s->st, key, &now, err);
        if (rc == ERR_NOTFOUND)
            err_printf(err, "batch was removed during the upload");
    }
    if (rc == 0 && !now.pending)
        rc = err_set(err, ERR_EXISTS, "this upload URL was already used");
    store_upload_release(&now);
    return rc;
}

/* Write the URLs queued (s->mu held; released while writing): 0 when
 * written, <0 when the database refused them (they stay queued). */
static int urls_write(struct staging *s, bool stopping)
{
    struct staging__url *w = s->urls;
    int n = s->n_urls;
    s->urls = NULL;
    s->urls_tail = &s->urls;
    s->n_urls = 0;
    s->urls_writing = w;
    s->n_urls_writing = n;
    pthread_mutex_unlock(&s->mu);
    if (s->o.url_behind_delay_ms > 0 && !stopping) /* tests: a window for kill -9 */
        staging__sleep_ms_unless_stopped(s, s->o.url_behind_delay_ms);
    struct store_upload_rec *rs = xcalloc((size_t)n, sizeof *rs);
    int k = 0;
    for (struct staging__url *u = w; u; u = u->next)
        rs[k++] = u->r;
    struct err e = ERR_INIT;
    int rc = urls_record(s, rs, k, &e);
    free(rs);
    if (rc < 0)
        log_warn("staging", "upload URLs answered, not all written (%d to try again): %s", k, err_text(&e, rc));
    pthread_mutex_lock(&s->mu);
    s->urls_writing = NULL;
    s->n_urls_writing = 0;
    if (rc == 0) {
        for (struct staging__url *u = w; u; u = u->next)
            s->url_seq_done = MAX(s->url_seq_done, u->seq);
        while (w) {
            struct staging__url *next = w->next;
            free(w);
            w = next;
        }
    } else { /* back to the head of the queue */
        struct staging__url **end = &w;
        while (*end)
            end = &(*end)->next;
        *end = s->urls;
        if (!s->urls)
            s->urls_tail = end;
        s->urls = w;
        s->n_urls += k;
    }
    pthread_cond_broadcast(&s->commit_cv);
    return rc;
}

void *staging__commit_main(void *arg)
{
    struct staging *s = arg;
    /* each queue has its own backoff after a refusal: no try before its
     * retry time (a stop drains both at once) */
    int64_t url_pause = 0, url_retry_at = 0, shard_pause = 0, shard_retry_at = 0, stop_at = 0;
    bool urls_last = false; /* the last round wrote URLs */
    int solo = 0;           /* shards to record one by one (their group was refused) */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int64_t now = time_mono_ms();
        bool url_ready = s->urls && (s->stop || now >= url_retry_at);
        bool shard_ready = s->acked && (s->stop || now >= shard_retry_at);
        if (!url_ready && !shard_ready) {
            if (s->stop)
                break; /* stopping, drained */
            int64_t until = INT64_MAX;
            if (s->urls)
                until = url_retry_at;
            if (s->acked)
                until = MIN(until, shard_retry_at);
            if (until == INT64_MAX) {
                pthread_cond_wait(&s->commit_cv, &s->mu);
            } else {
                struct timespec ts;
                time_mono_deadline(&ts, until - now);
                pthread_cond_timedwait(&s->commit_cv, &s->mu, &ts);
            }
            continue;
        }
        bool stopping = s->stop;
        if (stopping && !stop_at)
            stop_at = now;
        /* a stop drains the queues for at most DRAIN_MAX_MS (a database
         * that does not answer would hold it for minutes): the shards
         * left are marked on disk and found again at the next start, the
         * URLs left get their rows from their PUTs */
        bool late = stopping && now - stop_at > DRAIN_MAX_MS;
        /* URLs answered go first: their clients PUT to them now, and a
         * PUT's end needs its URL's rows (staging__url_ensure); but a
         * shard waiting gets its turn between two rounds of URLs, so that
         * steady URL traffic cannot hold the shards back. */
        if (url_ready && !(urls_last && shard_ready)) {
            urls_last = true;
            if (late) {
                urls_drop(s);
                continue;
            }
            if (urls_write(s, stopping) == 0) {
                url_pause = 0;
                continue;
            }
            if (stopping) { /* refused while stopping: as the shards below */
                urls_drop(s);
                continue;
            }
            url_pause = url_pause ? MIN(url_pause * 2, RETRY_MAX_MS) : RETRY_MIN_MS;
            url_retry_at = time_mono_ms() + url_pause;
            continue;
        }
        urls_last = false;
        struct staging__acked *a = s->acked;
        /* the shards of its batch queued right behind it go in its
         * transaction (fewer pages written per shard: the batch's rows
         * and the indexes' last pages once); after a group was refused,
         * its shards one by one */
        int k = 1;
        if (solo == 0 && !late)
            for (struct staging__acked *b = a->next; b && k < s->o.commit_group && b->u.bid == a->u.bid; b = b->next)
                k++;
        pthread_mutex_unlock(&s->mu);
        /* URL requests (short transactions a client waits for before it
         * can send anything) go first: a shard's commit waits for them,
         * at most YIELD_STEPS x 200 us */
        for (int i = 0; i < YIELD_STEPS && atomic_load(&s->url_writers) > 0; i++)
            nanosleep(&(struct timespec){0, 200 * 1000L}, NULL);
        /* The client just answered asks for its next URL at once (the
         * CLI's upload loop): with nothing else waiting, let that request
         * pass before the commit, if it comes within NEXT_URL_WAIT_US of
         * the answer (else it would wait for the whole commit). */
        pthread_mutex_lock(&s->mu);
        bool alone = s->n_acked == 1 && atomic_load(&s->url_last_inline);
        pthread_mutex_unlock(&s->mu);
        while (alone && !stopping && atomic_load(&s->url_done) == a->url_done &&
               time_mono_ns() / 1000 - a->queued_us < NEXT_URL_WAIT_US)
            nanosleep(&(struct timespec){0, 100 * 1000L}, NULL);
        for (int i = 0; i < YIELD_STEPS && atomic_load(&s->url_writers) > 0; i++)
            nanosleep(&(struct timespec){0, 200 * 1000L}, NULL);
        if (s->o.commit_behind_delay_ms > 0 && !stopping) /* tests: a window for kill -9 */
            staging__sleep_ms_unless_stopped(s, s->o.commit_behind_delay_ms);
        int rc = late ? ERR_UNAVAILABLE : k > 1 ? commit_group(a, k) : commit_one(s, a);
        if (late)
            log_warn("staging", "stopping: shard=%s left for the next start", a->u.shard_id ? a->u.shard_id : "");
        pthread_mutex_lock(&s->mu);
        if (rc < 0 && k > 1) {
            solo = k;
            continue;
        }
        if (rc == 0 || stopping) {
            /* done; or stopping and the database refuses: left for the
             * recovery at the next start (its blob is on disk) */
            struct staging__acked *last = a;
            for (int i = 1; i < k; i++)
                last = last->next;
            s->acked = last->next;
            last->next = NULL;
            if (!s->acked)
                s->acked_tail = &s->acked;
            s->n_acked -= k;
            s->acked_seq_done = last->seq; /* the queue is recorded in its order */
            solo = MAX(0, solo - k);       /* counted by shards done, not by tries */
            pthread_cond_broadcast(&s->commit_cv); /* staging__commit_wait_idle */
            pthread_mutex_unlock(&s->mu);
            while (a) {
                struct staging__acked *next = a->next;
                acked_free(s, a);
                a = next;
            }
            pthread_mutex_lock(&s->mu);
            shard_pause = 0;
            continue;
        }
        shard_pause = shard_pause ? MIN(shard_pause * 2, RETRY_MAX_MS) : RETRY_MIN_MS;
        shard_retry_at = time_mono_ms() + shard_pause;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The last shard of workspace ws in the queue (s->mu held; one whose
 * workspace is unknown counts): its sequence number, 0 when none. */
static uint64_t ws_queued_last(struct staging *s, const char *ws)
{
    uint64_t last = 0;
    for (struct staging__acked *a = s->acked; a; a = a->next)
        if (!a->u.workspace || !ws || !strcmp(a->u.workspace, ws))
            last = a->seq;
    return last;
}

bool staging__commit_wait_idle(struct staging *s, const char *ws, int64_t ms)
{
    struct timespec ts;
    time_mono_deadline(&ts, ms);
    pthread_mutex_lock(&s->mu);
    uint64_t upto = ws_queued_last(s, ws);
    while (upto && s->acked_seq_done < upto && pthread_cond_timedwait(&s->commit_cv, &s->mu, &ts) != ETIMEDOUT)
        ;
    bool idle = upto && s->acked_seq_done >= upto;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

void staging_settle(struct staging *s, const char *ws)
{
    staging__commit_wait_idle(s, ws, SETTLE_MS);
}

void staging__commit_free(struct staging *s)
{
    while (s->urls) { /* only when the committer never ran */
        struct staging__url *u = s->urls;
        s->urls = u->next;
        free(u);
    }
    s->urls_tail = &s->urls;
    s->n_urls = 0;
    while (s->acked) { /* only when the committer never ran */
        struct staging__acked *a = s->acked;
        s->acked = a->next;
        acked_free(s, a);
    }
    s->acked_tail = &s->acked;
    s->n_acked = 0;
}

/* Index a recovered shard at once from its blob (mapped; the same scan and
 * transaction as a PUT's); false when it has to go the indexer's way. */
static bool index_now(struct staging *s, const char *key, const struct store_upload *u, int64_t *size)
{
    int fd = -1;
    bool done = false;
    if (store_blob_open(s->st, key, &fd, size) < 0)
        return false;
    void *m = *size > 0 ? mmap(NULL, (size_t)*size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED)
        return false;
    struct staging__job j;
    struct err e = ERR_INIT;
    memset(&j, 0, sizeof j);
    if (*size <= u->size_limit && staging__index_kept(s, key, u, m, (size_t)*size, &j)) {
        int rc = staging__job_commit_upload(&j, key, u, *size, &e);
        done = rc == 0 || rc == ERR_EXISTS;
    }
    staging__job_release(&j);
    munmap(m, (size_t)*size);
    return done;
}

int staging__recover_acked(struct staging *s, int64_t created_before_ms, bool at_start, int *n)
{
    struct err e = ERR_INIT;
    int now_left = at_start ? RECOVER_AT_START_MAX : 0, rc = 0;
    *n = 0;
    /* at start: every pending tar upload, however old its URL (it was
     * valid when the PUT was answered; a process may stay down for days);
     * afterwards the rows a URL's lifetime (+1 h) can still bring.  Paged
     * through all of them: abandoned URLs stay pending until their batch
     * goes, and must not hide a newer shard. */
    int64_t after = at_start ? -1 : time_now_ms() - s->o.upload_url_ttl_ms - 3600 * 1000LL;
    char *after_key = NULL;
    for (;;) {
        struct store_upload_pending *rows = NULL;
        int nrows = 0;
        rc = store_uploads_pending_tar(s->st, after, after_key, created_before_ms, RECOVER_PAGE, &rows, &nrows, &e);
        if (rc < 0)
            break;
        for (int i = 0; i < nrows; i++) {
            struct store_upload_pending *r = &rows[i];
            int64_t size = 0;
            if (staging__put_busy(s, r->key))
                continue;
            /* only a blob marked as answered for: an inline PUT renames its
             * blob before its commit too, and if it died there it was never
             * answered (its client tries again, maybe with a new URL) */
            if (store_blob_marked(s->st, r->key, &size) != 1)
                continue;
            if (now_left > 0) {
                now_left--;
                if (index_now(s, r->key, &r->u, &size)) {
                    (*n)++;
                    continue;
                }
            }
            err_clear(&e);
            int rc2 = staging__upload_arrived(s, r->key, &r->u, size, true, &e);
            if (rc2 == 0)
                (*n)++;
            else if (rc2 != ERR_EXISTS && rc2 != ERR_LIMIT)
                log_warn("staging", "acknowledged shard %s not recovered yet: %s", r->key, err_text(&e, rc2));
        }
        if (nrows > 0) {
            after = rows[nrows - 1].created_ms;
            free(after_key);
            after_key = xstrdup(rows[nrows - 1].key);
        }
        store_uploads_pending_free(rows, nrows);
        if (nrows < RECOVER_PAGE)
            break;
    }
    free(after_key);
    if (*n > 0)
        log_info("staging", "recovered %d tar shard(s) acknowledged before a stop or crash and not recorded", *n);
    return rc;
}
