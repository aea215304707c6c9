/*
 * outbox.c — the durable webhook outbox and its sender thread.
 *
 * A webhook is a row in `outbox`, inserted in the same transaction as the
 * state change it reports (store_outbox_enqueue_db), so it exists exactly
 * when the change does.  The sender delivers at least once:
 *
 *   pending --(claim: attempts+1, next_ms = now+backoff, committed)--> POST
 *     POST 2xx           --> delivered
 *     other / no answer  --> pending (next_ms already set) or, after
 *                            max_attempts, failed
 *
 * Because the attempt is counted and the retry time pushed forward *before*
 * the POST, a crash during a POST makes the row due again after the
 * backoff, with the next delivery_attempt number.  The payload stored is
 * the caller's JSON object; each attempt sends it with "delivery_attempt"
 * set to the attempt number.
 */
#include "store/store.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "store/store_int.h"

#define OUTBOX_PAYLOAD_MAX (1u << 20)

void store_outbox_opts_default(struct store_outbox_opts *o)
{
    o->max_attempts = 8;
    o->backoff_ms = 1000;
    o->backoff_max_ms = 300000;
    o->timeout_ms = 10000;
}

void store__outbox_init(struct store *st)
{
    pthread_mutex_init(&st->ob_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->ob_cv, &ca);
    pthread_condattr_destroy(&ca);
    store_outbox_opts_default(&st->ob_opts);
}

void store__outbox_destroy(struct store *st)
{
    pthread_mutex_destroy(&st->ob_mu);
    pthread_cond_destroy(&st->ob_cv);
}

int store_outbox_enqueue_db(sqlite3 *db, const char *url, const char *workspace, const char *payload, bool sign)
{
    sqlite3_stmt *q = NULL;
    json_t *j;
    int rc = ERR_INTERNAL;
    if (!url || !workspace || !payload || strlen(payload) > OUTBOX_PAYLOAD_MAX)
        return ERR_INVALID;
    j = json_loads(payload, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return ERR_INVALID;
    }
    json_decref(j);
    int64_t now = time_now_ms();
    if (sqlite3_prepare_v2(db, "INSERT INTO outbox(url, workspace, payload, sign, next_ms, created_ms)"
                               " VALUES(?,?,?,?,?,?)", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, url, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, workspace, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, payload, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 4, sign ? 1 : 0);
        sqlite3_bind_int64(q, 5, now);
        sqlite3_bind_int64(q, 6, now);
        if (sqlite3_step(q) == SQLITE_DONE)
            rc = 0;
    }
    sqlite3_finalize(q);
    return rc;
}

int store_outbox_enqueue(struct store *st, const char *url, const char *workspace, const char *payload, bool sign)
{
    sqlite3 *db = store_db_acquire(st);
    int rc = store_tx_begin(db);
    if (rc == 0)
        rc = store_outbox_enqueue_db(db, url, workspace, payload, sign);
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(st, db);
    if (rc == 0)
        store_outbox_kick(st);
    return rc;
}

void store_outbox_kick(struct store *st)
{
    pthread_mutex_lock(&st->ob_mu);
    st->ob_kick = true;
    pthread_cond_signal(&st->ob_cv);
    pthread_mutex_unlock(&st->ob_mu);
}

int store_outbox_counts(struct store *st, int64_t *pending, int64_t *delivered, int64_t *failed)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    *pending = *delivered = *failed = 0;
    sqlite3 *db = store_db_acquire(st);
    if (sqlite3_prepare_v2(db, "SELECT state, count(*) FROM outbox GROUP BY state", -1, &q, NULL) == SQLITE_OK) {
        int s;
        while ((s = sqlite3_step(q)) == SQLITE_ROW) {
            const char *state = (const char *)sqlite3_column_text(q, 0);
            int64_t n = sqlite3_column_int64(q, 1);
            if (!strcmp(state, "pending"))
                *pending = n;
            else if (!strcmp(state, "delivered"))
                *delivered = n;
            else if (!strcmp(state, "failed"))
                *failed = n;
        }
        rc = s == SQLITE_DONE ? 0 : ERR_INTERNAL;
    }
    sqlite3_finalize(q);
    store_db_release(st, db);
    return rc;
}

int store_outbox_purge(struct store *st, int64_t older_than_ms, int64_t *n)
{
    sqlite3 *db = store_db_acquire(st);
    sqlite3_stmt *q = NULL;
    int rc = store_tx_begin(db);
    int64_t changed = 0;
    if (rc == 0) {
        rc = ERR_INTERNAL;
        if (sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE state IN ('delivered','failed') AND done_ms < ?", -1,
                               &q, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(q, 1, time_now_ms() - older_than_ms);
            if (sqlite3_step(q) == SQLITE_DONE) {
                changed = sqlite3_changes(db);
                rc = 0;
            }
        }
        sqlite3_finalize(q);
        rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    }
    store_db_release(st, db);
    if (rc == 0 && n)
        *n = changed;
    return rc;
}

struct ob_row {
    int64_t id;
    char *url, *workspace, *payload;
    bool sign;
    int attempt; /* the attempt about to be made, 1-based */
};

static int64_t backoff_for(const struct store_outbox_opts *o, int attempt)
{
    int64_t d = o->backoff_ms;
    for (int i = 1; i < attempt && d < o->backoff_max_ms; i++)
        d *= 2;
    return MIN(d, o->backoff_max_ms);
}

/* Claim one due row: bump attempts and push next_ms, committed.  Returns 1
 * with *row filled, 0 when nothing is due (then *next_due_ms is the next
 * due time or -1), <0 on error. */
static int ob_claim(struct store *st, const struct store_outbox_opts *o, struct ob_row *row, int64_t *next_due_ms)
{
    sqlite3 *db = store_db_acquire(st);
    sqlite3_stmt *q = NULL;
    int rc = store_tx_begin(db), s;
    int64_t now = time_now_ms();
    *next_due_ms = -1;
    if (rc < 0)
        goto out;
    rc = ERR_INTERNAL;
    if (sqlite3_prepare_v2(db, "SELECT id, url, workspace, payload, sign, attempts, next_ms FROM outbox"
                               " WHERE state='pending' ORDER BY next_ms LIMIT 1", -1, &q, NULL))
        goto out;
    s = sqlite3_step(q);
    if (s == SQLITE_DONE) {
        rc = 0;
        goto out;
    }
    if (s != SQLITE_ROW)
        goto out;
    int64_t next = sqlite3_column_int64(q, 6);
    if (next > now) {
        *next_due_ms = next;
        rc = 0;
        goto out;
    }
    row->id = sqlite3_column_int64(q, 0);
    row->url = xstrdup((const char *)sqlite3_column_text(q, 1));
    row->workspace = xstrdup((const char *)sqlite3_column_text(q, 2));
    row->payload = xstrdup((const char *)sqlite3_column_text(q, 3));
    row->sign = sqlite3_column_int(q, 4) != 0;
    row->attempt = sqlite3_column_int(q, 5) + 1;
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_prepare_v2(db, "UPDATE outbox SET attempts=?, next_ms=? WHERE id=?", -1, &q, NULL))
        goto out;
    sqlite3_bind_int(q, 1, row->attempt);
    sqlite3_bind_int64(q, 2, now + backoff_for(o, row->attempt));
    sqlite3_bind_int64(q, 3, row->id);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto out;
    sqlite3_finalize(q);
    q = NULL;
    rc = store_tx_commit(db);
    if (rc == 0)
        rc = 1;
out:
    sqlite3_finalize(q);
    if (rc <= 0) {
        store_tx_rollback(db);
        if (rc < 0 || !row->url) {
            free(row->url);
            free(row->workspace);
            free(row->payload);
            row->url = row->workspace = row->payload = NULL;
        }
    }
    store_db_release(st, db);
    return rc;
}

static void ob_finish(struct store *st, const struct store_outbox_opts *o, const struct ob_row *row, bool ok,
                      const char *err)
{
    sqlite3 *db = store_db_acquire(st);
    sqlite3_stmt *q = NULL;
    const char *sql;
    if (ok)
        sql = "UPDATE outbox SET state='delivered', done_ms=?, last_error=NULL WHERE id=?";
    else if (row->attempt >= o->max_attempts)
        sql = "UPDATE outbox SET state='failed', done_ms=?, last_error=? WHERE id=?";
    else
        sql = "UPDATE outbox SET last_error=? WHERE id=?";
    if (store_tx_begin(db) == 0 && sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        if (ok) {
            sqlite3_bind_int64(q, 1, time_now_ms());
            sqlite3_bind_int64(q, 2, row->id);
        } else if (row->attempt >= o->max_attempts) {
            sqlite3_bind_int64(q, 1, time_now_ms());
            sqlite3_bind_text(q, 2, err, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 3, row->id);
        } else {
            sqlite3_bind_text(q, 1, err, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 2, row->id);
        }
        if (sqlite3_step(q) == SQLITE_DONE)
            store_tx_commit(db);
    }
    sqlite3_finalize(q);
    store_tx_rollback(db);
    store_db_release(st, db);
}

static size_t discard_cb(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* One POST.  Returns true on a 2xx answer; *err gets a static/short text. */
static bool ob_post(struct store *st, const struct store_outbox_opts *o, const struct ob_row *row, char err[128])
{
    json_t *j = json_loads(row->payload, 0, NULL);
    char *body = NULL, *auth = NULL, *sig = NULL;
    struct curl_slist *h = NULL;
    CURL *c = NULL;
    bool ok = false;
    long code = 0;
    snprintf(err, 128, "bad payload");
    if (!json_is_object(j))
        goto out;
    json_object_set_new(j, "delivery_attempt", json_integer(row->attempt));
    body = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!body)
        goto out;
    c = curl_easy_init();
    if (!c)
        goto out;
    auth = xasprintf("Authorization: Bearer rf_%s", row->workspace);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, auth);
    if (row->sign) {
        char hex[65];
        store_secret_hmac_hex(st, body, strlen(body), hex);
        sig = xasprintf("X-Vbatch-Signature: sha256=%s", hex);
        h = curl_slist_append(h, sig);
    }
    store_net_guard_curl(st, c);
    curl_easy_setopt(c, CURLOPT_URL, row->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, MIN(o->timeout_ms, 5000L));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vbatch-webhook/1");
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(err, 128, "%s", curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    ok = code >= 200 && code < 300;
    if (!ok)
        snprintf(err, 128, "http status %ld", code);
out:
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(auth);
    free(sig);
    free(body);
    json_decref(j);
    return ok;
}

static void *ob_main(void *arg)
{
    struct store *st = arg;
    struct store_outbox_opts o;
    pthread_mutex_lock(&st->ob_mu);
    o = st->ob_opts;
    pthread_mutex_unlock(&st->ob_mu);
    for (;;) {
        struct ob_row row = {0};
        int64_t next_due = -1;
        pthread_mutex_lock(&st->ob_mu);
        bool stop = st->ob_stop;
        st->ob_kick = false;
        pthread_mutex_unlock(&st->ob_mu);
        if (stop)
            break;
        int rc = ob_claim(st, &o, &row, &next_due);
        if (rc == 1) {
            char err[128];
            bool ok = ob_post(st, &o, &row, err);
            if (!ok)
                log_warn("store", "webhook attempt failed id=%lld attempt=%d url=%s: %s", (long long)row.id,
                         row.attempt, row.url, err);
            else
                log_debug("store", "webhook delivered id=%lld attempt=%d", (long long)row.id, row.attempt);
            ob_finish(st, &o, &row, ok, err);
            free(row.url);
            free(row.workspace);
            free(row.payload);
            continue;
        }
        /* Nothing due: sleep until the next due row, a kick, or 5 s. */
        int64_t wait_ms = 5000;
        if (next_due >= 0)
            wait_ms = MAX(1, MIN(wait_ms, next_due - time_now_ms()));
        if (rc < 0)
            wait_ms = 1000;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&st->ob_mu);
        while (!st->ob_stop && !st->ob_kick) {
            if (pthread_cond_timedwait(&st->ob_cv, &st->ob_mu, &ts) == ETIMEDOUT)
                break;
        }
        pthread_mutex_unlock(&st->ob_mu);
    }
    return NULL;
}

int store_outbox_start(struct store *st, const struct store_outbox_opts *o)
{
    int rc = 0;
    pthread_mutex_lock(&st->ob_mu);
    if (!st->ob_running) {
        if (o)
            st->ob_opts = *o;
        if (st->ob_opts.max_attempts < 1)
            st->ob_opts.max_attempts = 1;
        st->ob_stop = false;
        if (pthread_create(&st->ob_thread, NULL, ob_main, st) != 0)
            rc = ERR_INTERNAL;
        else
            st->ob_running = true;
    }
    pthread_mutex_unlock(&st->ob_mu);
    return rc;
}

void store_outbox_stop(struct store *st)
{
    pthread_mutex_lock(&st->ob_mu);
    bool running = st->ob_running;
    st->ob_stop = true;
    pthread_cond_broadcast(&st->ob_cv);
    pthread_mutex_unlock(&st->ob_mu);
    if (running)
        pthread_join(st->ob_thread, NULL);
    pthread_mutex_lock(&st->ob_mu);
    st->ob_running = false;
    pthread_mutex_unlock(&st->ob_mu);
}
