/*
 * quotas.c — owner of the table ws_quotas (store.h "workspace quotas"):
 * per-workspace limits and the checks made inside the transactions that
 * add bytes, jobs and upload URLs.
 *
 * Every check first locks the workspace's ws_usage row (store__ws_lock),
 * then counts in the database inside the transaction that adds: two
 * processes (or threads) adding to one workspace at once serialize on
 * that row, so the second counts what the first added and a quota holds
 * across every serve/worker process sharing the database.
 *
 * A workspace's row holds its own limits; NULL columns (and workspaces
 * without a row) use the process defaults set from the serve flags.
 *
 * The per-workspace request rate limit (store_rate_take) is a GCRA: the
 * table ws_rate keeps one "theoretical arrival time" per workspace (µs);
 * a request at now is allowed when max(tat, now) + T - now <= burst x T
 * (T = 1 s / rate), and then tat becomes max(tat, now) + T.  Test and
 * update are one INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING, so
 * two processes taking at once serialize on the row and the limit holds
 * for the workspace as a whole, whatever the number of processes.
 */
#include "store/staging_int.h"

#include <stdio.h>
#include <string.h>

void store_quota_defaults_set(struct store *st, const struct store_quota *q, int64_t upload_ttl_ms)
{
    st->quota_def = *q;
    st->quota_upload_ttl_ms = upload_ttl_ms;
}

static int quota_effective(struct store *st, struct db_conn *c, const char *ws, struct store_quota *out,
                           struct err *e)
{
    struct db_stmt *q = NULL;
    *out = st->quota_def;
    int rc = db_prepare(c, "SELECT max_staged_bytes, max_jobs, max_pending_uploads, rate_limit, rate_burst"
                           " FROM ws_quotas WHERE workspace=?1", &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, ws);
    rc = db_step(q, e);
    if (rc == DB_ROW) {
        int64_t *f[5] = {&out->max_staged_bytes, &out->max_jobs, &out->max_pending_uploads, &out->rate_limit,
                         &out->rate_burst};
        for (int i = 0; i < 5; i++)
            if (!db_col_null(q, i))
                *f[i] = db_col_int64(q, i);
    }
    db_finalize(q);
    return rc < 0 ? rc : 0;
}

static int64_t pending_since(struct store *st)
{
    int64_t ttl = st->quota_upload_ttl_ms > 0 ? st->quota_upload_ttl_ms : 24LL * 3600 * 1000;
    return time_now_ms() - ttl;
}

int store__quota_uploads_unlimited(struct store *st, struct db_conn *c, const char *ws, bool *unlimited,
                                   struct err *e)
{
    struct store_quota q;
    int rc = quota_effective(st, c, ws, &q, e);
    *unlimited = rc == 0 && q.max_staged_bytes <= 0 && q.max_pending_uploads <= 0;
    return rc;
}

int store__quota_bytes_check(struct store *st, struct db_conn *c, const char *ws, int64_t add, struct err *e)
{
    struct store_quota q;
    int64_t used = 0;
    int rc = store__ws_lock(c, ws, &used, e);
    if (rc == 0)
        rc = quota_effective(st, c, ws, &q, e);
    if (rc < 0 || q.max_staged_bytes <= 0)
        return rc;
    if (add > 0 ? used + add > q.max_staged_bytes : used >= q.max_staged_bytes)
        return err_set(e, ERR_LIMIT,
                       "workspace '%s' holds %lld staged bytes; its quota is %lld (this adds %lld): delete"
                       " batches or ask for a larger quota", ws, (long long)used, (long long)q.max_staged_bytes,
                       (long long)add);
    return 0;
}

int store__quota_jobs_check(struct store *st, struct db_conn *c, const char *ws, struct err *e)
{
    struct store_quota q;
    int64_t n = 0;
    int rc = store__ws_lock(c, ws, NULL, e);
    if (rc == 0)
        rc = quota_effective(st, c, ws, &q, e);
    if (rc < 0 || q.max_jobs <= 0)
        return rc;
    if ((rc = store__jobs_running(c, ws, &n, e)) < 0)
        return rc;
    if (n >= q.max_jobs)
        return err_set(e, ERR_QUOTA, "workspace '%s' has %lld running jobs, its quota: wait for one to end",
                       ws, (long long)n);
    return 0;
}

int store__quota_uploads_check(struct store *st, struct db_conn *c, const char *ws, struct err *e)
{
    struct store_quota q;
    int64_t n = 0;
    int rc = store__ws_lock(c, ws, NULL, e);
    if (rc == 0)
        rc = quota_effective(st, c, ws, &q, e);
    if (rc < 0 || q.max_pending_uploads <= 0)
        return rc;
    if ((rc = store__uploads_pending(c, ws, pending_since(st), &n, e)) < 0)
        return rc;
    if (n >= q.max_pending_uploads)
        return err_set(e, ERR_QUOTA,
                       "workspace '%s' has %lld upload URLs not used yet, its quota: upload to them first", ws,
                       (long long)n);
    return 0;
}

struct set_args {
    const char *ws;
    const struct store_quota *q;
};

static void bind_q(struct db_stmt *s, int i, int64_t v)
{
    if (v == STORE_QUOTA_DEFAULT)
        db_bind_null(s, i);
    else
        db_bind_int64(s, i, v);
}

static int set_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct set_args *a = ud;
    const int64_t v[5] = {a->q->max_staged_bytes, a->q->max_jobs, a->q->max_pending_uploads, a->q->rate_limit,
                          a->q->rate_burst};
    static const char *const col[5] = {"max_staged_bytes", "max_jobs", "max_pending_uploads", "rate_limit",
                                       "rate_burst"};
    (void)st;
    int rc = db_run(c, e, "INSERT INTO ws_quotas(workspace) VALUES(?1) ON CONFLICT(workspace) DO NOTHING", "t",
                    a->ws);
    for (int i = 0; rc == 0 && i < 5; i++) {
        if (v[i] == -1)
            continue;
        if (v[i] < STORE_QUOTA_DEFAULT)
            return err_set(e, ERR_INVALID, "%s: a quota is a number >= 0 (0: unlimited)", col[i]);
        char sql[96];
        snprintf(sql, sizeof sql, "UPDATE ws_quotas SET %s=?1 WHERE workspace=?2", col[i]);
        struct db_stmt *s = NULL;
        rc = db_prepare(c, sql, &s, e);
        if (rc < 0)
            break;
        bind_q(s, 1, v[i]);
        db_bind_text(s, 2, a->ws);
        rc = db_step(s, e);
        db_finalize(s);
        rc = rc < 0 ? rc : 0;
    }
    return rc;
}

int store_quota_set(struct store *st, const char *ws, const struct store_quota *q, struct err *e)
{
    struct set_args a = {ws, q};
    return store__staging_tx(st, set_body, &a, e);
}

struct get_args {
    const char *ws;
    struct store_quota *q, *usage;
};

static int get_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct get_args *a = ud;
    int rc = quota_effective(st, c, a->ws, a->q, e);
    if (rc == 0 && a->usage) {
        rc = store__ws_lock(c, a->ws, &a->usage->max_staged_bytes, e);
        if (rc == 0)
            rc = store__jobs_running(c, a->ws, &a->usage->max_jobs, e);
        if (rc == 0)
            rc = store__uploads_pending(c, a->ws, pending_since(st), &a->usage->max_pending_uploads, e);
    }
    return rc;
}

int store_quota_get(struct store *st, const char *ws, struct store_quota *q, struct store_quota *usage,
                    struct err *e)
{
    struct get_args a = {ws, q, usage};
    return store__staging_tx(st, get_body, &a, e);
}

int store_rate_limits(struct store *st, const char *ws, int64_t *rate, int64_t *burst, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct store_quota q;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = quota_effective(st, c, ws, &q, e);
    db_release(d, c);
    *rate = rc == 0 ? q.rate_limit : 0;
    *burst = rc == 0 ? q.rate_burst : 0;
    return rc;
}

/* 1e9 requests x T <= 1 s: at most 1e15 µs, far from overflowing */
#define STORE_RATE_BURST_MAX 1000000000LL

struct rate_args {
    const char *ws;
    int64_t now_us, t_us, limit_us, n, *got, *wait_ms;
};

/* Take k requests: 1 when a row comes back, 0 when refused, <0. */
static int rate_try(struct db_conn *c, const struct rate_args *a, int64_t k, struct err *e)
{
    struct db_stmt *s = NULL;
    /* ?2 now, ?3 k x T, ?4 burst x T (µs) */
    int rc = db_prepare(c, "INSERT INTO ws_rate(workspace, tat_us) VALUES(?1, ?2 + ?3)"
                           " ON CONFLICT(workspace) DO UPDATE SET"
                           " tat_us = (CASE WHEN ws_rate.tat_us > ?2 THEN ws_rate.tat_us ELSE ?2 END) + ?3"
                           " WHERE (CASE WHEN ws_rate.tat_us > ?2 THEN ws_rate.tat_us ELSE ?2 END) + ?3 - ?2 <= ?4"
                           " RETURNING tat_us", &s, e);
    if (rc < 0)
        return rc;
    db_bind_text(s, 1, a->ws);
    db_bind_int64(s, 2, a->now_us);
    db_bind_int64(s, 3, k * a->t_us);
    db_bind_int64(s, 4, a->limit_us);
    rc = db_step(s, e);
    db_finalize(s);
    return rc < 0 ? rc : rc == DB_ROW;
}

static int rate_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct rate_args *a = ud;
    struct db_stmt *s = NULL;
    (void)st;
    *a->wait_ms = 0;
    *a->got = 0;
    int rc = rate_try(c, a, a->n, e);
    if (rc == 0 && a->n > 1) { /* not n: one, at least? */
        rc = rate_try(c, a, 1, e);
        rc = rc > 0 ? 2 : rc;
    }
    if (rc < 0)
        return rc;
    if (rc > 0) {
        *a->got = rc == 1 ? a->n : 1;
        return 0;
    }
    /* over the limit: allowed again once tat + T - now <= burst x T */
    rc = db_prepare(c, "SELECT tat_us FROM ws_rate WHERE workspace=?1", &s, e);
    if (rc < 0)
        return rc;
    db_bind_text(s, 1, a->ws);
    rc = db_step(s, e);
    int64_t tat = rc == DB_ROW ? db_col_int64(s, 0) : a->now_us;
    db_finalize(s);
    if (rc < 0)
        return rc;
    int64_t wait_us = tat + a->t_us - a->limit_us - a->now_us;
    *a->wait_ms = wait_us > 0 ? (wait_us + 999) / 1000 : 1;
    return 0;
}

int store_rate_take_n(struct store *st, const char *ws, int64_t rate, int64_t burst, int64_t now_ms, int64_t n,
                      int64_t *got, int64_t *wait_ms, struct err *e)
{
    int64_t t_us = rate > 0 ? 1000000 / rate : 0;
    int64_t b = burst >= 1 ? burst : (rate > 1 ? rate : 1);
    /* burst x T is in microseconds: an operator's huge burst (the CLI and
     * the serve flags take any int64) must not overflow it */
    if (b > STORE_RATE_BURST_MAX)
        b = STORE_RATE_BURST_MAX;
    struct rate_args a = {ws, now_ms * 1000, t_us > 0 ? t_us : 1, 0, n < 1 ? 1 : (n > b ? b : n), got, wait_ms};
    a.limit_us = b * a.t_us;
    *wait_ms = 0;
    *got = n;
    if (rate <= 0)
        return 0;
    return store__staging_tx(st, rate_body, &a, e);
}

int store_rate_take(struct store *st, const char *ws, int64_t rate, int64_t burst, int64_t now_ms,
                    int64_t *wait_ms, struct err *e)
{
    int64_t got;
    return store_rate_take_n(st, ws, rate, burst, now_ms, 1, &got, wait_ms, e);
}
