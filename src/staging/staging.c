/*
 * staging.c — the staging context: options, the background threads
 * (indexer and fetcher in indexer.c, the expiry sweeper here) and expiry.
 *
 * Files of the module, one responsibility each:
 *   staging.c   context, threads, expiry
 *   names.c     file names, UTF-8, image sidecars
 *   views.c     the read side of the Data Staging API (JSON views, pages)
 *   items.c     items for jobs and output batches
 *   ingest.c    the ingest endpoints and the signed PUT/GET sinks
 *   tar.c       tar scanning (separate from storage for the fuzz target)
 *   notify.c    ingest webhook payloads
 *   shardjob.c  a shard's work: load, record its files, end it (one
 *               transaction), wait for storage, back off
 *   indexer.c   the indexer thread's work: tar shards
 *   fetcher.c   the fetcher thread's work: reference shards
 *   arrivals.c  the S3 arrival poller (uploads PUT straight to the store)
 *   commits.c   tar shards answered before their rows are committed: the
 *               committer thread and the recovery of those a crash left
 * None of them speaks SQL: the tables belong to store/ (store_staging.h:
 * store/batches.c, store/shards.c).
 *
 * Threads (staging_start): indexer (tar shards), fetcher (reference
 * ingests), sweeper (expiry), claim renewal, on S3 the arrival poller
 * (arrivals.c), on the local folder the committer (commits.c) — plus the
 * store's outbox
 * sender.  They wake on a kick or once a second, and all their work is
 * recorded in the database first, so a restart picks up whatever a crash
 * interrupted.  Several processes may run them on one database: a shard
 * is claimed by one process at a time (shardjob.c), the expiry sweep runs
 * in the process holding the "staging-sweep" lease.
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
    o->upload_poll_ms = 1000;
    o->sweep_interval_ms = 60000;
    o->orphan_sweep_ms = 3600 * 1000LL;
    o->orphan_grace_ms = 3600 * 1000LL;
    o->orphan_keys_per_s = 2000;
    o->default_page_size = 100;
    o->max_page_size = 1000;
    o->max_references = 20000;
    o->net_allow = NULL;
    o->index_at_upload = true;
    const char *cb = getenv("VBATCH_STAGING_COMMIT_BEHIND");
    o->commit_behind = cb ? (int)MAX(0, MIN(strtoll(cb, NULL, 10), 4096)) : 32;
    const char *cbd = getenv("VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS");
    o->commit_behind_delay_ms = cbd ? strtoll(cbd, NULL, 10) : 0;
    const char *cg = getenv("VBATCH_STAGING_COMMIT_GROUP");
    o->commit_group = cg ? (int)MAX(1, MIN(strtoll(cg, NULL, 10), 64)) : 8;
    const char *ub = getenv("VBATCH_STAGING_URL_BEHIND");
    o->url_behind = !ub || strcmp(ub, "0") != 0;
    const char *ubd = getenv("VBATCH_STAGING_URL_BEHIND_DELAY_MS");
    o->url_behind_delay_ms = ubd ? strtoll(ubd, NULL, 10) : 0;
    const char *d = getenv("VBATCH_STAGING_INDEX_DELAY_MS");
    o->index_delay_ms = d ? strtoll(d, NULL, 10) : 0;
    const char *cd = getenv("VBATCH_STAGING_COMMIT_DELAY_MS");
    o->commit_delay_ms = cd ? strtoll(cd, NULL, 10) : 0;
    const char *l = getenv("VBATCH_STAGING_CLAIM_LEASE_MS");
    o->claim_lease_ms = l ? strtoll(l, NULL, 10) : 0;
    if (o->claim_lease_ms <= 0)
        o->claim_lease_ms = 15000;
    const char *lf = getenv("VBATCH_STAGING_LEASE_FLOOR_MS");
    o->lease_floor_ms = lf ? MAX(0, MIN(strtoll(lf, NULL, 10), 3600000LL)) : 0;
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
    if (s->o.claim_lease_ms <= 0)
        s->o.claim_lease_ms = 15000;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_cond_init(&s->commit_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->acked_tail = &s->acked;
    s->urls_tail = &s->urls;
    if (s->net_allow && (rc = store_net_allow_set(st, s->net_allow)) < 0) {
        err_printf(err, "bad network allow-list '%s'", s->net_allow);
        goto fail;
    }
    if ((rc = store_staging_migrate(st, err)) < 0)
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
    time_mono_deadline(&ts, ms);
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

/* Acknowledged shards that a dead process never committed (commits.c)
 * are looked for this often, in the indexer thread (local folder). */
#define RECOVER_EVERY_MS 30000

static void *index_main(void *arg)
{
    struct staging *s = arg;
    do {
        int n = 0;
        pthread_mutex_lock(&s->mu);
        bool recover = s->committing && time_mono_ms() >= s->recover_at;
        if (recover)
            s->recover_at = time_mono_ms() + RECOVER_EVERY_MS;
        pthread_mutex_unlock(&s->mu);
        if (recover) /* older than a round: this process's own are committed or queued (put_busy) */
            staging__recover_acked(s, time_now_ms() - RECOVER_EVERY_MS, false, &n);
        staging_index_pending(s, &n);
    } while (wait_kick(s, &s->kick_index, 1000));
    return NULL;
}

bool staging__wait_stop(struct staging *s, int64_t ms)
{
    return wait_kick(s, NULL, ms);
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

/* The expiry sweep runs in one process at a time across the processes on
 * the database: the one holding the "staging-sweep" lease, taken (or
 * renewed) at each round for three periods; a process that dies leaves it
 * to expire, and another takes over at its next round.  The temp-file
 * sweep is this process's own (its data folder). */
#define SWEEP_LEASE "staging-sweep"

static void *sweep_main(void *arg)
{
    struct staging *s = arg;
    int64_t period = s->o.sweep_interval_ms > 0 ? s->o.sweep_interval_ms : 60000;
    const char *me = store_owner(s->st);
    int held = -1; /* last outcome of the take: -1 unknown, 0 another's, 1 ours */
    while (wait_kick(s, NULL, period)) {
        struct err e = ERR_INIT;
        store_tmp_sweep(s->st, 24LL * 3600 * 1000);
        int got = store_lease_take(s->st, SWEEP_LEASE, me, 3 * period, &e);
        if (got < 0) {
            log_warn("staging", "expiry sweeper: cannot take its lease: %s", err_text(&e, got));
            continue;
        }
        if (got != held)
            log_info("staging", got ? "expiry sweeper lease taken owner=%s"
                                    : "expiry sweeper lease held by another process (this one is owner=%s)", me);
        held = got;
        if (!got)
            continue;
        int removed = 0;
        staging_sweep(s, time_now_ms(), &removed);
        store_outbox_purge(s->st, 7LL * 24 * 3600 * 1000, NULL);
    }
    if (held == 1) { /* a clean stop: another process may sweep at once */
        struct err e = ERR_INIT;
        store_lease_release(s->st, SWEEP_LEASE, me, &e);
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
    if (pthread_create(&s->th_renew, NULL, staging__renew_main, s) != 0)
        goto fail3;
    if (pthread_create(&s->th_orphan, NULL, staging__orphans_main, s) != 0) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th_renew, NULL);
        goto fail3;
    }
    /* S3 backend (it presigns): clients PUT straight to the store, so
     * their arrivals are polled for (arrivals.c). */
    char *probe = NULL;
    bool poll = store_blob_presign(s->st, "GET", "probe", time_now_ms() / 1000 + 60, -1, &probe) == 0;
    free(probe);
    if (poll && pthread_create(&s->th_poll, NULL, staging__poll_main, s) != 0) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th_renew, NULL);
        pthread_join(s->th_orphan, NULL);
        goto fail3;
    }
    /* Local folder: tar shards may be answered before their commit
     * (commits.c).  Those a crash left unrecorded are committed now, before
     * the server listens. */
    if (!poll) {
        int n = 0, rc2 = staging__recover_acked(s, INT64_MAX, true, &n);
        if (rc2 < 0) /* the indexer thread looks again later */
            log_warn("staging", "acknowledged shards not looked for at start: %s", err_str(rc2));
    }
    bool commit = !poll && s->o.commit_behind > 0 && pthread_create(&s->th_commit, NULL, staging__commit_main, s) == 0;
    pthread_mutex_lock(&s->mu);
    s->running = true;
    s->polling = poll;
    s->committing = commit;
    s->recover_at = time_mono_ms() + RECOVER_EVERY_MS;
    pthread_mutex_unlock(&s->mu);
    return 0;
fail3:
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th_sweep, NULL);
    pthread_join(s->th_fetch, NULL);
    pthread_join(s->th_index, NULL);
    return err_set(err, ERR_INTERNAL, "cannot start the staging threads");
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
        pthread_join(s->th_renew, NULL);
        pthread_join(s->th_orphan, NULL);
        if (s->polling)
            pthread_join(s->th_poll, NULL);
        if (s->committing) { /* drains its queue first */
            pthread_mutex_lock(&s->mu);
            pthread_cond_broadcast(&s->commit_cv);
            pthread_mutex_unlock(&s->mu);
            pthread_join(s->th_commit, NULL);
        }
        store_outbox_stop(s->st);
    }
    pthread_mutex_lock(&s->mu);
    s->running = false;
    s->polling = false;
    s->committing = false;
    pthread_mutex_unlock(&s->mu);
}

void staging_free(struct staging *s)
{
    if (!s)
        return;
    staging_stop(s);
    staging__commit_free(s);
    while (s->putting) { /* only if a writer outlived the server: not expected */
        struct staging__putting *e = s->putting;
        s->putting = e->next;
        free(e);
    }
    free(s->claimed[0]);
    free(s->claimed[1]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->commit_cv);
    free(s->base_url);
    free(s->net_allow);
    free(s);
}

/* ---- expiry ------------------------------------------------------------------------ */

int staging_sweep(struct staging *s, int64_t now_ms, int *removed)
{
    int count = 0, rc = 0;
    for (;;) {
        struct err e = ERR_INIT;
        int64_t bid = -1;
        rc = store_batch_expire_one(s->st, now_ms, &bid, &e);
        if (rc == ERR_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        count++;
        log_info("staging", "expired batch removed bid=%lld", (long long)bid);
    }
    if (rc == 0) {
        struct err e = ERR_INIT;
        rc = store_blob_trash_purge(s->st, NULL, &e);
        if (rc < 0)
            log_warn("staging", "%s", err_text(&e, rc));
    }
    if (removed)
        *removed = count;
    return rc;
}
