/*
 * orphans.c — the orphan blob sweep (store.h, "orphan blobs";
 * docs/STORAGE.md "Orphan objects"): deletes the blobs that no database
 * row references, older than a grace period.
 *
 * Every writer puts its bytes first and commits the row naming them after
 * (an acknowledged item always has its bytes); a process that dies in
 * between leaves a blob that no row names.  This sweep finds those: it
 * walks the known top-level folders with store_blob_list (the local folder
 * or S3 list v2, 1000 keys a request), skips the blobs younger than the
 * grace period without a query, and asks the database about the older
 * ones, by the kind of their key:
 *
 *   b/<bid>/…                 no batches row <bid>: orphan (the batch is gone)
 *   b/<bid>/u/<name>          kept while its target b/<bid>/s/<name> or
 *                             b/<bid>/v/<name> is a pending upload (the
 *                             arrival poller has not copied it yet)
 *   b/<bid>/s/<shard>.tar     kept while an item names it or its shard is
 *                             not failed (awaiting-upload, uploaded, done)
 *   b/<bid>/r/<shard>/<n>     kept while an item names it or its shard is
 *                             being fetched (queued)
 *   b/<bid>/<other>/…         kept while an item or a pending upload names it
 *                             (i/ single uploads, v/ videos, s/<shard>/<n>)
 *   jobs/<ws>/<job>/…         kept while the job row exists (its folder is
 *                             the job's: results, persisted images, exports)
 *   models/…, wsmodels/…      kept while a models row names it
 *
 * Other top-level folders are not walked.  A database error keeps the blob
 * (never delete on doubt).  The walk is paced (opts.keys_per_s) and calls
 * opts.tick every second so that the caller can renew its lease or stop.
 *
 * SQL here only reads the staging, jobs and models tables (their owner
 * files write them).
 */
#include "store/store.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/db.h"
#include "store/store_int.h"

struct sweep {
    struct store *st;
    const struct store_orphan_opts *o;
    struct store_orphan_stats s;
    int64_t cutoff_ms;    /* blobs last modified before this are checked */
    int64_t t0_ms;        /* monotonic start of the pacing window */
    int64_t paced;        /* keys visited in the pacing window */
    int64_t tick_ms;      /* monotonic time of the last tick */
    int64_t bid_cached;   /* the last batch looked up, -1 none */
    bool bid_exists;
    char job_cached[160]; /* "ws/job" of the last job looked up, "" none */
    bool job_exists;
    bool stopped;
};

/* 1 when the query (one row wanted) returns a row, 0 when none, <0 on an
 * error.  fmt as db_run's ('i', 't'). */
static int exists(struct store *st, const char *sql, const char *fmt, ...)
{
    struct err e = ERR_INIT;
    struct db_stmt *q = NULL;
    struct db_conn *c = store__acquire(st, &e);
    va_list ap;
    int rc;
    if (!c)
        return ERR_UNAVAILABLE;
    rc = db_prepare(c, sql, &q, &e);
    if (rc == 0) {
        va_start(ap, fmt);
        for (int i = 0; fmt[i]; i++) {
            if (fmt[i] == 'i')
                db_bind_int64(q, i + 1, va_arg(ap, int64_t));
            else
                db_bind_text(q, i + 1, va_arg(ap, const char *));
        }
        va_end(ap);
        rc = db_step(q, &e);
        if (rc >= 0)
            rc = rc == DB_ROW ? 1 : 0;
    }
    db_finalize(q);
    store__release(st, c);
    return rc;
}

/* The n-th '/'-separated segment of key (0-based) into out; false when
 * there is none or it does not fit. */
static bool segment(const char *key, int n, char *out, size_t cap)
{
    const char *p = key;
    for (int i = 0; i < n; i++) {
        p = strchr(p, '/');
        if (!p)
            return false;
        p++;
    }
    size_t len = strcspn(p, "/");
    if (len == 0 || len >= cap)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

static int nsegments(const char *key)
{
    int n = 1;
    for (const char *p = key; *p; p++)
        n += *p == '/';
    return n;
}

/* A key under b/: 1 referenced, 0 not, <0 unknown (kept). */
static int batch_key_referenced(struct sweep *w, const char *key)
{
    char sbid[24], kind[8], name[STORE_BLOB_KEY_MAX + 1];
    int rc;
    if (!segment(key, 1, sbid, sizeof sbid) || !segment(key, 2, kind, sizeof kind) ||
        !segment(key, 3, name, sizeof name))
        return 1; /* not a layout this version writes: left alone */
    char *end = NULL;
    long long bid = strtoll(sbid, &end, 10);
    if (!end || *end || bid <= 0)
        return 1;
    if (w->bid_cached != bid) {
        rc = exists(w->st, "SELECT 1 FROM batches WHERE bid=?1", "i", (int64_t)bid);
        if (rc < 0)
            return rc;
        w->bid_cached = bid;
        w->bid_exists = rc == 1;
    }
    if (!w->bid_exists)
        return 0;
    bool deeper = nsegments(key) > 4;
    if (!strcmp(kind, "u") && !deeper) {
        char *s = xasprintf("b/%lld/s/%s", bid, name), *v = xasprintf("b/%lld/v/%s", bid, name);
        rc = exists(w->st, "SELECT 1 FROM uploads WHERE blob_key IN (?1, ?2) AND state='pending'", "tt", s, v);
        free(s);
        free(v);
        return rc;
    }
    /* a whole-blob item (items_blob); a tar shard's items are ranges of
     * its archive, which the shard's row below answers for */
    rc = exists(w->st, "SELECT 1 FROM items WHERE blob_key=?1 AND blob_offset IS NULL LIMIT 1", "t", key);
    if (rc != 0)
        return rc;
    if (!strcmp(kind, "s") && !deeper) {
        size_t n = strlen(name);
        if (n > 4 && !strcmp(name + n - 4, ".tar")) {
            name[n - 4] = '\0';
            return exists(w->st, "SELECT 1 FROM shards WHERE shard_id=?1 AND bid=?2 AND state<>'failed'", "ti",
                          name, (int64_t)bid);
        }
    }
    if (!strcmp(kind, "r") && deeper)
        return exists(w->st, "SELECT 1 FROM shards WHERE shard_id=?1 AND bid=?2 AND state='queued'", "ti", name,
                      (int64_t)bid);
    return exists(w->st, "SELECT 1 FROM uploads WHERE blob_key=?1 AND state='pending'", "t", key);
}

static int job_key_referenced(struct sweep *w, const char *key)
{
    char ws[72], job[80], both[160];
    if (nsegments(key) < 4 || !segment(key, 1, ws, sizeof ws) || !segment(key, 2, job, sizeof job))
        return 1;
    snprintf(both, sizeof both, "%s/%s", ws, job);
    if (strcmp(w->job_cached, both) != 0) {
        int rc = exists(w->st, "SELECT 1 FROM jobs WHERE workspace=?1 AND job_id=?2", "tt", ws, job);
        if (rc < 0)
            return rc;
        snprintf(w->job_cached, sizeof w->job_cached, "%s", both);
        w->job_exists = rc == 1;
    }
    return w->job_exists;
}

static int referenced(struct sweep *w, const char *key)
{
    if (!strncmp(key, "b/", 2))
        return batch_key_referenced(w, key);
    if (!strncmp(key, "jobs/", 5))
        return job_key_referenced(w, key);
    return exists(w->st, "SELECT 1 FROM models WHERE weights_key=?1 OR meta_key=?1", "t", key);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Pace the walk to keys_per_s and call tick every second: nonzero stops. */
static int pace(struct sweep *w)
{
    int64_t now = mono_ms();
    if (w->o->keys_per_s > 0 && ++w->paced >= w->o->keys_per_s) {
        int64_t left = w->t0_ms + 1000 - now;
        if (left > 0) {
            struct timespec ts = {left / 1000, (left % 1000) * 1000000};
            nanosleep(&ts, NULL);
            now = mono_ms();
        }
        w->paced = 0;
        w->t0_ms = now;
    }
    if (now - w->tick_ms >= 1000) {
        w->tick_ms = now;
        if (w->o->tick && w->o->tick(w->o->tick_ud)) {
            w->stopped = true;
            return 1;
        }
    }
    return 0;
}

static int visit(void *ud, const char *key, int64_t size, int64_t mtime_ms)
{
    struct sweep *w = ud;
    (void)size;
    w->s.listed++;
    if (pace(w))
        return 1;
    if (mtime_ms >= w->cutoff_ms) {
        w->s.young++;
        return 0;
    }
    w->s.checked++;
    int rc = referenced(w, key);
    if (rc < 0) {
        w->s.errors++;
        return 0;
    }
    if (rc == 1)
        return 0;
    if (w->o->max_deletes > 0 && w->s.deleted >= w->o->max_deletes)
        return 0;
    rc = store_blob_delete(w->st, key);
    if (rc < 0) {
        w->s.errors++;
        log_warn("store", "orphan sweep: cannot delete '%s': %s", key, err_str(rc));
        return 0;
    }
    w->s.deleted++;
    log_info("store", "orphan sweep: deleted '%s' (%lld bytes, no row names it, last written %lld s ago)", key,
             (long long)size, (long long)((w->cutoff_ms + w->o->grace_ms - mtime_ms) / 1000));
    return 0;
}

int store_orphans_sweep(struct store *st, const struct store_orphan_opts *o, struct store_orphan_stats *out,
                        struct err *e)
{
    static const char *const roots[] = {"b", "jobs", "models", "wsmodels"};
    struct sweep w = {0};
    int rc = 0;
    w.st = st;
    w.o = o;
    w.cutoff_ms = time_now_ms() - MAX(o->grace_ms, 0);
    w.t0_ms = w.tick_ms = mono_ms();
    w.bid_cached = -1;
    for (size_t i = 0; i < sizeof roots / sizeof *roots && !w.stopped; i++) {
        rc = store_blob_list(st, roots[i], visit, &w);
        if (rc > 0)
            rc = 0; /* stopped by tick */
        if (rc < 0) {
            err_printf(e, "cannot list the blobs under '%s/': %s", roots[i], err_str(rc));
            break;
        }
    }
    if (out)
        *out = w.s;
    return rc;
}
