/*
 * outbox.c — the durable webhook outbox and its sender thread.
 *
 * A webhook is a row in `outbox`, inserted in the same transaction as the
 * state change it reports (store__outbox_enqueue), so it exists exactly
 * when the change does.  The sender delivers at least once, several POSTs
 * at a time (one thread driving a curl multi handle):
 *
 *   pending, due --(claim: attempts+1, next_ms = lease, committed)--> POST
 *     POST 2xx           --> delivered
 *     other / no answer  --> pending with next_ms = failure time + backoff,
 *                            or, after max_attempts, failed
 *
 * Claims.  A row is claimed in a write transaction by a compare-and-set on
 * its attempt count, and the claim pushes next_ms to a lease (now + 1.5 x
 * the POST timeout, at least timeout + 1 s) that the POST ends before; the result is written
 * only while the attempt count is still the claimed one.  So several
 * senders (processes) on one database never send one row at once, and a
 * row whose sender died is taken again when its lease runs out, with the
 * same payload (same event_id) and the next delivery_attempt number.  A
 * clean stop hands its in-flight rows back at once (attempt not counted).
 *
 * Concurrency.  At most max_inflight POSTs run at once and at most
 * max_per_dest of them to one destination (scheme's host:port, kept in the
 * row), so a receiver that never answers holds max_per_dest slots for its
 * timeout, not the sender.  Rows to a destination at its limit are skipped,
 * not waited for.
 *
 * Order.  Rows with the same (workspace, order_key) are delivered one at a
 * time in id (= commit) order: a row is not claimed while an older row of
 * its key is still pending (in flight or waiting for a retry).  A key's
 * later event therefore waits until the earlier one is delivered or has
 * failed for good.  Rows without a key are independent.
 *
 * The payload stored is the caller's JSON object; each attempt sends it
 * with "delivery_attempt" set to the attempt number.
 *
 * Kinds (the row's req, store.h): a webhook_sink request; a slack_upload,
 * whose attempt is a chain of calls on the multi handle (one easy handle
 * at a time, the next set up when the previous answered, all of them
 * within the attempt's time, timeout_ms + 1 s per 128 KiB of attachments,
 * and the claim lengthens the lease to match); an s3_put, whose PUT runs
 * on a thread of its own (the s3 client is blocking) that wakes the loop
 * when done, all its tries ended within timeout_ms (so within the lease).
 * A sender claims an s3_put row only when its process has the row's bucket
 * (url "s3sink:<bucket>/<key>"): `serve` and `vbatch worker` both run a
 * sender, and the one with --sink-s3 writes the object.  A sender never
 * claims a row it has in flight.
 */
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/jobs_int.h"
#include "store/store_int.h"

#define OUTBOX_PAYLOAD_MAX (1u << 20)
#define OB_ORDER_KEY_MAX 512
#define OUTBOX_REQ_MAX (8u << 20) /* webhook_sink's request: headers, form, files (base64) */
#define OUTBOX_KIND_REQ_MAX (24u << 20) /* a slack_upload's files or an s3_put's object (base64) */
#define OB_SLACK_FILES_MAX 32
#define OB_RESP_MAX (64u << 10) /* a Slack API answer read */
#define OB_INFLIGHT_CAP 64     /* upper bound of max_inflight */
#define OB_SCAN 64             /* candidate rows read per claim query */
#define OB_IDLE_MS 1000        /* longest sleep without a kick (other processes' rows) */
#define OB_RETRY_MS 500        /* after a failed claim transaction (busy database) */
#define OB_SLACK_BPS (128 << 10) /* a Slack upload's attempt gets 1 s more per this many bytes */
#define OB_ATTEMPT_MAX_MS 600000 /* ... up to this long in all */
#define OB_S3_PREFIX "s3sink:" /* the url of an s3_put row: s3sink:<bucket>/<key> */

/* The integer in environment variable name when it is one in [lo, hi],
 * else def. */
static int64_t env_int(const char *name, int64_t lo, int64_t hi, int64_t def)
{
    const char *v = getenv(name);
    char *end = NULL;
    if (!v || !*v)
        return def;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    return errno == 0 && *end == 0 && x >= lo && x <= hi ? (int64_t)x : def;
}

void store_outbox_opts_default(struct store_outbox_opts *o)
{
    /* test-only settings (tests/README.md): a delivery that fails for good
     * in seconds; a value that is not a number in range is ignored */
    o->max_attempts = (int)env_int("VBATCH_OUTBOX_MAX_ATTEMPTS", 1, 100, 8);
    o->backoff_ms = env_int("VBATCH_OUTBOX_BACKOFF_MS", 1, 3600000, 1000);
    o->backoff_max_ms = 300000;
    o->timeout_ms = 10000;
    o->max_inflight = 16;
    o->max_per_dest = 4;
    o->s3_only = false;
}

void store__outbox_init(struct store *st)
{
    pthread_mutex_init(&st->ob_mu, NULL);
    store_outbox_opts_default(&st->ob_opts);
}

void store__outbox_destroy(struct store *st)
{
    pthread_mutex_destroy(&st->ob_mu);
}

/* "host:port" of url (host lower-cased, the scheme's port when none is
 * given), or "" when curl cannot parse it.  Caller frees. */
static char *dest_of(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *out;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        for (char *p = host; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        out = xasprintf("%s:%s", host, port);
    } else {
        out = xstrdup("");
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

/* The checks of an enqueue's arguments: 0 or ERR_INVALID. */
static int enqueue_check(const char *url, const char *workspace, const char *order_key, const char *payload)
{
    if (!url || !workspace || !payload || strlen(payload) > OUTBOX_PAYLOAD_MAX ||
        (order_key && strlen(order_key) > OB_ORDER_KEY_MAX))
        return ERR_INVALID;
    json_t *j = json_loads(payload, 0, NULL);
    bool ok = json_is_object(j);
    json_decref(j);
    return ok ? 0 : ERR_INVALID;
}

#define OB_INSERT_SQL                                                                                              \
    "INSERT INTO outbox(url, workspace, order_key, dest, payload, sign, next_ms, created_ms)"                     \
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)"

int store__outbox_enqueue(struct db_conn *c, const char *url, const char *workspace, const char *order_key,
                          const char *payload, bool sign, struct err *e)
{
    if (enqueue_check(url, workspace, order_key, payload) < 0)
        return err_set(e, ERR_INVALID, "bad webhook: no URL, a payload that is not a JSON object, or too long");
    char *dest = dest_of(url);
    int rc = db_run(c, e, OB_INSERT_SQL, "tttttii", url, workspace, order_key, dest, payload,
                    (int64_t)(sign ? 1 : 0), time_now_ms());
    free(dest);
    return rc;
}

/* ---- once per key (component "outbox_once") ------------------------------- */

/* 1: the keys of the webhooks queued with store_outbox_enqueue_once. */
static const char *const once_migrations[] = {
    "CREATE TABLE outbox_once ("
    "  once_key TEXT PRIMARY KEY,"
    "  created_ms BIGINT NOT NULL);"
    "CREATE INDEX outbox_once_age ON outbox_once(created_ms);"
    /* the request of a workflow webhook_sink row other than a JSON POST */
    "ALTER TABLE outbox ADD COLUMN req TEXT;",
    /* 2: the job a workflow sink's row delivers for (NULL: none) and what
     * its log says of the row if it fails for good (log_failed) */
    "ALTER TABLE outbox ADD COLUMN job_pk BIGINT;"
    "ALTER TABLE outbox ADD COLUMN job_ref TEXT;",
};

int store__outbox_once_init(struct store *st, struct err *e)
{
    return db_migrate(st->db, "outbox_once", once_migrations, (int)ARRAY_LEN(once_migrations), e);
}

/* The kinds of rows: a webhook (JSON POST or webhook_sink's request),
 * Slack's three-call file upload, a PUT into the s3_sink bucket. */
enum ob_kind { OB_HTTP, OB_SLACK, OB_S3 };

static int kind_of(const json_t *req) /* an enum ob_kind, or -1 for an unknown kind */
{
    const char *k = json_string_value(json_object_get(req, "kind"));
    return !k ? OB_HTTP : !strcmp(k, "slack_upload") ? OB_SLACK : !strcmp(k, "s3_put") ? OB_S3 : -1;
}

static bool str_field_ok(const json_t *j, const char *name, bool header)
{
    const char *v = json_string_value(json_object_get(j, name));
    return v && (!header || (*v && !strpbrk(v, "\r\n")));
}

/* The checks of a slack_upload or s3_put description. */
static bool kind_req_ok(const json_t *j, enum ob_kind kind)
{
    if (kind == OB_S3)
        return str_field_ok(j, "key", true) && str_field_ok(j, "data", false);
    json_t *files = json_object_get(j, "files");
    if (!str_field_ok(j, "api", true) || !str_field_ok(j, "token", true) || !str_field_ok(j, "channel", true) ||
        !str_field_ok(j, "comment", false) || !json_is_array(files) || json_array_size(files) < 1 ||
        json_array_size(files) > OB_SLACK_FILES_MAX)
        return false;
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        if (!str_field_ok(f, "name", true) || !str_field_ok(f, "data", false))
            return false;
    }
    return true;
}

/* The checks of a request description (store_outbox_enqueue_once). */
static bool req_ok(const char *req)
{
    if (!req)
        return true;
    if (strlen(req) > OUTBOX_KIND_REQ_MAX)
        return false;
    json_t *j = json_loads(req, 0, NULL);
    int kind = kind_of(j);
    if (json_is_object(j) && kind != OB_HTTP) {
        bool ok = kind >= 0 && kind_req_ok(j, (enum ob_kind)kind);
        json_decref(j);
        return ok;
    }
    if (strlen(req) > OUTBOX_REQ_MAX) {
        json_decref(j);
        return false;
    }
    const char *m = json_string_value(json_object_get(j, "method"));
    bool ok = json_is_object(j) && m && (!strcmp(m, "GET") || !strcmp(m, "POST") || !strcmp(m, "PUT"));
    const char *k;
    json_t *v;
    const char *const dicts[] = {"headers", "form", "files"};
    for (size_t d = 0; ok && d < ARRAY_LEN(dicts); d++) {
        json_t *o = json_object_get(j, dicts[d]);
        if (!o)
            continue;
        if (!json_is_object(o)) {
            ok = false;
            break;
        }
        json_object_foreach(o, k, v) {
            const char *t = json_string_value(v);
            if (!t || (d == 0 && (strpbrk(k, ":\r\n") || strpbrk(t, "\r\n") || !*k))) {
                ok = false;
                break;
            }
        }
    }
    json_decref(j);
    return ok;
}

int store_outbox_enqueue_once(struct store *st, const char *once_key, const char *url, const char *workspace,
                              const char *payload, const char *req, bool sign, const struct store_outbox_job *job,
                              bool *queued)
{
    struct err e = ERR_INIT;
    *queued = false;
    if (!once_key || !*once_key || strlen(once_key) > OB_ORDER_KEY_MAX)
        return ERR_INVALID;
    if (job && (job->pk <= 0 || !job->ref || strlen(job->ref) > STORE_OUTBOX_JOB_REF_MAX))
        return ERR_INVALID;
    if (enqueue_check(url, workspace, NULL, payload) < 0 || !req_ok(req))
        return ERR_INVALID;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? db_begin(c, &e) : e.code;
    bool fresh = false;
    if (rc == 0)
        rc = db_run(c, &e, "INSERT INTO outbox_once(once_key, created_ms) VALUES(?1, ?2) ON CONFLICT DO NOTHING",
                    "ti", once_key, time_now_ms());
    if (rc == 0 && db_changes(c) == 1) {
        fresh = true;
        char *dest = dest_of(url);
        rc = db_run(c, &e,
                    "INSERT INTO outbox(url, workspace, order_key, dest, payload, sign, next_ms, created_ms, req,"
                    " job_pk, job_ref) VALUES(?1, ?2, NULL, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9)",
                    job ? "ttttiitit" : "ttttiitnn", url, workspace, dest, payload, (int64_t)(sign ? 1 : 0),
                    time_now_ms(), req, job ? job->pk : 0, job ? job->ref : NULL);
        free(dest);
    }
    if (rc == 0)
        rc = db_commit(c, &e);
    else if (c)
        db_rollback(c);
    store__release(st, c);
    if (rc == 0 && fresh) {
        *queued = true;
        store_outbox_kick(st);
    }
    return rc;
}

int store_outbox_enqueue(struct store *st, const char *url, const char *workspace, const char *order_key,
                         const char *payload, bool sign)
{
    struct err e = ERR_INIT;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? db_begin(c, &e) : e.code;
    if (rc == 0)
        rc = store__outbox_enqueue(c, url, workspace, order_key, payload, sign, &e);
    if (rc == 0)
        rc = db_commit(c, &e);
    store__release(st, c);
    if (rc == 0)
        store_outbox_kick(st);
    return rc;
}

void store_outbox_kick(struct store *st)
{
    pthread_mutex_lock(&st->ob_mu);
    st->ob_kick = true;
    if (st->ob_multi)
        curl_multi_wakeup(st->ob_multi);
    pthread_mutex_unlock(&st->ob_mu);
}

int store_outbox_counts(struct store *st, int64_t *pending, int64_t *delivered, int64_t *failed)
{
    struct err e = ERR_INIT;
    struct db_stmt *q = NULL;
    *pending = *delivered = *failed = 0;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? db_prepare(c, "SELECT state, count(*) FROM outbox GROUP BY state", &q, &e) : e.code;
    if (rc == 0) {
        while ((rc = db_step(q, &e)) == DB_ROW) {
            const char *state = db_col_text(q, 0);
            int64_t n = db_col_int64(q, 1);
            if (!strcmp(state, "pending"))
                *pending = n;
            else if (!strcmp(state, "delivered"))
                *delivered = n;
            else if (!strcmp(state, "failed"))
                *failed = n;
        }
    }
    db_finalize(q);
    store__release(st, c);
    return rc;
}

int store_outbox_purge(struct store *st, int64_t older_than_ms, int64_t *n)
{
    struct err e = ERR_INIT;
    int64_t changed = 0;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? 0 : e.code;
    if (rc == 0)
        rc = db_run(c, &e, "DELETE FROM outbox WHERE state IN ('delivered','failed') AND done_ms < ?1", "i",
                    time_now_ms() - older_than_ms);
    if (rc == 0)
        changed = db_changes(c);
    if (rc == 0) /* keys as old as the rows they kept from repeating */
        rc = db_run(c, &e, "DELETE FROM outbox_once WHERE created_ms < ?1", "i", time_now_ms() - older_than_ms);
    store__release(st, c);
    if (rc == 0 && n)
        *n = changed;
    return rc;
}

/* ---- the sender ---------------------------------------------------------------------- */

/* One claimed row (in flight once its POST is added to the multi handle). */
struct ob_fly {
    int64_t id;
    int attempt;               /* the attempt being made, 1-based (= attempts in the row) */
    char *url, *dest, *workspace, *payload;
    char *req;                 /* NULL, or webhook_sink's method/headers/form/files */
    bool sign;
    char *body;                /* the POSTed bytes */
    size_t body_len;           /* their length (a multipart body may hold NULs) */
    struct curl_slist *hdrs;
    CURL *c;
    enum ob_kind kind;
    bool slack_ok;             /* a webhook request to Slack's API: the answer
                                  must be JSON with "ok": true (f->resp) */
    json_t *plan;              /* slack_upload / s3_put: the parsed req */
    /* slack_upload: stage 2k asks for file k's upload URL, 2k+1 uploads
     * it, 2n completes; the whole attempt ends by deadline_ms */
    int stage;
    int64_t deadline_ms;       /* slack_upload / s3_put: the attempt ends by then */
    int64_t budget_ms;         /* the attempt's length (timeout_ms, more for a large upload) */
    struct buf resp;           /* the API answer being read */
    char *upload_url, *file_id;
    json_t *done_files;        /* [{"id", "title"}] uploaded so far */
    uint8_t *bytes;            /* the file being uploaded */
    size_t nbytes;
    /* s3_put: its PUT runs on thread th; th_done (under st->ob_mu) when it
     * has finished with th_ok / th_err */
    struct store *st;
    pthread_t th;
    bool th_started, th_done, th_ok;
    char th_err[128];
};

/* The outcome of one attempt, written by ob_finish(). */
struct ob_done {
    int64_t id;
    int attempt;
    bool ok;
    char err[128];
};

struct ob_sender {
    struct store *st;
    struct store_outbox_opts o;
    CURLM *m;
    struct ob_fly *fly[OB_INFLIGHT_CAP];
    int nfly;
    int64_t claim_warned_ms; /* time_mono_ms() of the last "cannot claim" warning */
};

/* Free what one HTTP request of f used (a Slack stage's). */
static void fly_reset_http(struct ob_fly *f)
{
    if (f->c)
        curl_easy_cleanup(f->c);
    f->c = NULL;
    curl_slist_free_all(f->hdrs);
    f->hdrs = NULL;
    free(f->body);
    f->body = NULL;
    f->body_len = 0;
    free(f->bytes);
    f->bytes = NULL;
    buf_release(&f->resp);
}

static void fly_free(struct ob_fly *f)
{
    if (!f)
        return;
    if (f->th_started)
        pthread_join(f->th, NULL);
    fly_reset_http(f);
    json_decref(f->plan);
    json_decref(f->done_files);
    free(f->upload_url);
    free(f->file_id);
    free(f->url);
    free(f->dest);
    free(f->workspace);
    free(f->payload);
    free(f->req);
    free(f->body);
    free(f);
}

/* How long a claim lasts: the POST's timeout and some slack for recording
 * its outcome. */
static int64_t lease_ms(const struct store_outbox_opts *o)
{
    return o->timeout_ms + MAX(1000, o->timeout_ms / 2);
}

/* The lease of an attempt of budget ms (>= timeout_ms). */
static int64_t lease_for(const struct store_outbox_opts *o, int64_t budget)
{
    return budget + MAX(1000, o->timeout_ms / 2);
}

/* How long a slack_upload's attempt may take: timeout_ms plus 1 s per
 * OB_SLACK_BPS bytes of its files, at most OB_ATTEMPT_MAX_MS. */
static int64_t slack_budget(const struct store_outbox_opts *o, json_t *plan)
{
    int64_t bytes = 0, t = o->timeout_ms;
    json_t *file;
    size_t i;
    json_array_foreach(json_object_get(plan, "files"), i, file)
        bytes += (int64_t)((json_string_length(json_object_get(file, "data"))) / 4 * 3);
    t += bytes * 1000 / OB_SLACK_BPS;
    return MIN(t, MAX((int64_t)o->timeout_ms, (int64_t)OB_ATTEMPT_MAX_MS));
}

/* The claim filter on s3_put rows: only those of this process's bucket
 * (prefix "s3sink:<bucket>/", bound as ?pidx; NULL: none, so no s3_put
 * row); s3_only: nothing else either. */
static void kind_filter(struct buf *b, const char *prefix, bool s3_only, int pidx)
{
    if (prefix && s3_only)
        buf_printf(b, " AND substr(url, 1, %zu)=?%d", strlen(prefix), pidx);
    else if (prefix)
        buf_printf(b, " AND (substr(url, 1, %d)<>'%s' OR substr(url, 1, %zu)=?%d)", (int)strlen(OB_S3_PREFIX),
                   OB_S3_PREFIX, strlen(prefix), pidx);
    else if (s3_only)
        buf_puts(b, " AND 0=1");
    else
        buf_printf(b, " AND substr(url, 1, %d)<>'%s'", (int)strlen(OB_S3_PREFIX), OB_S3_PREFIX);
}

static int64_t backoff_for(const struct store_outbox_opts *o, int attempt)
{
    int64_t d = o->backoff_ms;
    for (int i = 1; i < attempt && d < o->backoff_max_ms; i++)
        d *= 2;
    return MIN(d, o->backoff_max_ms);
}

/* In-flight (and just claimed) POSTs to dest. */
static int dest_load(struct ob_fly *const *a, int n, const char *dest)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += !strcmp(a[i]->dest, dest);
    return k;
}

static bool str_in(char *const *a, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(a[i], s))
            return true;
    return false;
}

/* Candidate rows: pending, due, not behind an older pending row of their
 * order key, not to a destination in skip[].  On PostgreSQL the rows are
 * locked FOR UPDATE SKIP LOCKED: a sender in another process that is
 * claiming some of them passes them over instead of waiting (SQLite's
 * writer lock makes that needless).  The claim itself stays a
 * compare-and-set on the attempt count, so it is right on either. */
static int claim_query(struct db_conn *c, char *const *skip, int nskip, const char *prefix, bool s3_only,
                       int64_t now, struct db_stmt **out, struct err *e)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT id, url, dest, attempts FROM outbox o"
                 " WHERE state='pending' AND next_ms<=?1"
                 " AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state='pending'"
                 " AND p.workspace=o.workspace AND p.order_key=o.order_key AND p.id<o.id))");
    kind_filter(&b, prefix, s3_only, nskip + 2);
    if (nskip > 0) {
        buf_puts(&b, " AND dest NOT IN (");
        for (int i = 0; i < nskip; i++)
            buf_printf(&b, "%s?%d", i ? "," : "", i + 2);
        buf_puts(&b, ")");
    }
    buf_printf(&b, " ORDER BY next_ms, id LIMIT %d", OB_SCAN);
    if (db_conn_kind(c) == DB_POSTGRES)
        buf_puts(&b, " FOR UPDATE OF o SKIP LOCKED");
    int rc = db_prepare(c, b.data, out, e);
    buf_release(&b);
    if (rc == 0) {
        db_bind_int64(*out, 1, now);
        for (int i = 0; i < nskip; i++)
            db_bind_text(*out, i + 2, skip[i]);
        if (prefix)
            db_bind_text(*out, nskip + 2, prefix);
    }
    return rc;
}

/* One UPDATE of the sender's: ?1..?4 integers (a statement may leave some
 * unused), ?5 text. *changed: rows changed. */
static int exec_row_update(struct db_conn *c, const char *sql, int64_t a, int64_t b, int64_t cc, int64_t d,
                           const char *text, int *changed, struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_prepare(c, sql, &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, a);
        db_bind_int64(q, 2, b);
        db_bind_int64(q, 3, cc);
        db_bind_int64(q, 4, d); /* bound beyond the text's parameters: ignored */
        db_bind_text(q, 5, text);
        rc = db_step(q, e);
        if (rc == DB_DONE) {
            rc = 0;
            if (changed)
                *changed = (int)db_changes(c);
        }
    }
    db_finalize(q);
    return rc;
}

/* A due row read by claim_query, before it is claimed. */
struct ob_cand {
    int64_t id;
    int attempts;
    char *url, *dest;
};

/* Read up to OB_SCAN candidates (the statement is finished before any row
 * is changed).  Returns how many, <0 on error. */
static int read_candidates(struct db_conn *c, char *const *skip, int nskip, const char *prefix, bool s3_only,
                           int64_t now, struct ob_cand *cd, struct err *e)
{
    struct db_stmt *q = NULL;
    int n = 0, s_rc = DB_DONE;
    int rc = claim_query(c, skip, nskip, prefix, s3_only, now, &q, e);
    if (rc < 0)
        return rc;
    while (n < OB_SCAN && (s_rc = db_step(q, e)) == DB_ROW) {
        const char *url = db_col_text(q, 1);
        const char *dest = db_col_text(q, 2);
        cd[n].id = db_col_int64(q, 0);
        cd[n].url = xstrdup(url);
        cd[n].dest = dest && *dest ? xstrdup(dest) : dest_of(url); /* "" in rows older than the column */
        cd[n].attempts = (int)db_col_int64(q, 3);
        n++;
    }
    if (s_rc < 0) {
        for (int i = 0; i < n; i++) {
            free(cd[i].url);
            free(cd[i].dest);
        }
        n = s_rc;
    }
    db_finalize(q);
    return n;
}

/* Claim row cd (compare-and-set on its attempt count) and fill *out.
 * Returns 1 claimed, 0 taken by another sender meanwhile, <0 error.  Takes
 * cd's strings when it returns 1. */
static int claim_one(struct ob_sender *s, struct db_conn *c, int64_t now, struct ob_cand *cd, struct ob_fly **out,
                     struct err *e)
{
    struct db_stmt *q = NULL;
    int changed = 0;
    int rc = exec_row_update(c, "UPDATE outbox SET attempts=attempts+1, next_ms=?1"
                                " WHERE id=?2 AND attempts=?3 AND state='pending' AND next_ms<=?4",
                             now + lease_ms(&s->o), cd->id, cd->attempts, now, NULL, &changed, e);
    if (rc < 0)
        return rc;
    if (changed != 1)
        return 0;
    if ((rc = db_prepare(c, "SELECT workspace, payload, sign, req FROM outbox WHERE id=?1", &q, e)) < 0)
        return rc;
    db_bind_int64(q, 1, cd->id);
    rc = db_step(q, e);
    if (rc != DB_ROW) {
        db_finalize(q);
        return rc < 0 ? rc : err_set(e, ERR_INTERNAL, "a claimed webhook row vanished");
    }
    struct ob_fly *f = xcalloc(1, sizeof *f);
    f->id = cd->id;
    f->attempt = cd->attempts + 1;
    f->url = cd->url;
    f->dest = cd->dest;
    cd->url = cd->dest = NULL;
    f->workspace = xstrdup(db_col_text(q, 0));
    f->payload = xstrdup(db_col_text(q, 1));
    f->sign = db_col_int64(q, 2) != 0;
    f->req = db_col_text(q, 3) ? xstrdup(db_col_text(q, 3)) : NULL;
    db_finalize(q);
    if (f->req) { /* a slack_upload or s3_put (a bad kind fails when started) */
        json_t *r = json_loads(f->req, 0, NULL);
        int k = json_is_object(r) ? (int)kind_of(r) : OB_HTTP;
        if (k != OB_HTTP) {
            f->kind = k < 0 ? OB_SLACK : (enum ob_kind)k;
            f->plan = k < 0 ? NULL : json_incref(r);
        }
        json_decref(r);
    }
    f->budget_ms = s->o.timeout_ms;
    if (f->kind == OB_SLACK && f->plan)
        f->budget_ms = slack_budget(&s->o, f->plan);
    f->deadline_ms = now + f->budget_ms;
    if (f->budget_ms > s->o.timeout_ms &&
        (rc = exec_row_update(c, "UPDATE outbox SET next_ms=?1 WHERE id=?2 AND attempts=?3",
                              now + lease_for(&s->o, f->budget_ms), f->id, f->attempt, 0, NULL, NULL, e)) < 0) {
        fly_free(f);
        return rc;
    }
    *out = f;
    return 1;
}

/* min(next_ms) of the pending rows (above 'after' when after >= 0) into
 * *out, -1 when none. */
static int next_due(struct db_conn *c, int64_t after, const char *prefix, bool s3_only, int64_t *out,
                    struct err *e)
{
    struct db_stmt *q = NULL;
    struct buf b = {0};
    *out = -1;
    buf_puts(&b, "SELECT min(next_ms) FROM outbox WHERE state='pending'");
    if (after >= 0)
        buf_puts(&b, " AND next_ms>?1");
    kind_filter(&b, prefix, s3_only, 2);
    int rc = db_prepare(c, b.data, &q, e);
    buf_release(&b);
    if (rc == 0) {
        db_bind_int64(q, 1, after); /* bound beyond the statement's parameters: ignored */
        if (prefix)
            db_bind_text(q, 2, prefix);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            if (!db_col_null(q, 0))
                *out = db_col_int64(q, 0);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = 0;
        }
    }
    db_finalize(q);
    return rc;
}

void store__strip_endpoints(char *t)
{
    char *at = t;
    while ((at = strstr(at, " at ")) != NULL) {
        char *u = at + 4, *end = u;
        while (isalpha((unsigned char)*end))
            end++;
        if (end == u || strncmp(end, "://", 3) != 0) {
            at = u; /* not a URL right after " at " */
            continue;
        }
        while (*end && *end != ' ' && *end != ')' && *end != '\'')
            end++;
        if (end[-1] == ':')
            end--; /* "at http://h:p: why" keeps its ':' */
        memmove(at, end, strlen(end) + 1);
    }
}

/* Row id has just been marked failed for good: when it delivers for a job
 * that still exists, one "sink-delivery-failed" error in that job's log,
 * in the same transaction — the job's ref (which step, image, frame and
 * sink) with where it went (an s3_put's bucket and key, else the
 * destination's host:port, never the URL's path or query: they can hold a
 * token), the attempts made and the last error. */
static int log_failed(struct db_conn *c, int64_t id, struct err *e)
{
    struct db_stmt *q = NULL;
    /* the jobs table only for a job's row: a store without jobs has none */
    int rc = db_prepare(c,
                        "SELECT job_pk, job_ref, url, dest, attempts, last_error FROM outbox"
                        " WHERE id=?1 AND job_pk IS NOT NULL",
                        &q, e);
    if (rc < 0)
        return rc;
    db_bind_int64(q, 1, id);
    rc = db_step(q, e);
    if (rc != DB_ROW) {
        db_finalize(q);
        return rc < 0 ? rc : 0;
    }
    int64_t job_pk = db_col_int64(q, 0);
    json_t *p = json_loads(db_col_text(q, 1) ? db_col_text(q, 1) : "", 0, NULL);
    if (!json_is_object(p)) {
        json_decref(p);
        p = json_object();
    }
    const char *url = db_col_text(q, 2), *dest = db_col_text(q, 3), *last = db_col_text(q, 5);
    json_t *where = url && !strncmp(url, OB_S3_PREFIX, strlen(OB_S3_PREFIX))
                        ? json_sprintf("s3://%s", url + strlen(OB_S3_PREFIX))
                        : json_string(dest && *dest ? dest : "unknown");
    json_object_set_new(p, "destination", where ? where : json_string("unknown"));
    json_object_set_new(p, "attempts", json_integer(db_col_int64(q, 4)));
    char *why = xstrdup(last && utf8_valid(last) ? last : "unknown");
    store__strip_endpoints(why);
    json_object_set_new(p, "error", json_string(why));
    free(why);
    db_finalize(q);
    bool live = false;
    /* PostgreSQL: key-share lock the job row, as the foreign key of the
     * insert below would.  A delete of the job running meanwhile is
     * waited for and then leaves no row here (no log), instead of failing
     * that insert, which would roll back every outcome of the batch
     * (delivered rows sent again after their lease) or the whole claim. */
    if ((rc = db_prepare(c,
                         db_conn_kind(c) == DB_POSTGRES ? "SELECT 1 FROM jobs WHERE pk=?1 FOR KEY SHARE"
                                                        : "SELECT 1 FROM jobs WHERE pk=?1",
                         &q, e)) == 0) {
        db_bind_int64(q, 1, job_pk);
        rc = db_step(q, e);
        live = rc == DB_ROW;
        db_finalize(q);
    }
    if (rc < 0 || !live) {
        json_decref(p);
        return rc < 0 ? rc : 0;
    }
    return store__job_log(c, job_pk, "error", "sinks", "sink-delivery-failed", p, NULL, 0, e);
}

/* Whether row id is in flight here (its lease may have run out: it is
 * not claimed again while this sender still works on it). */
static bool in_flight(const struct ob_sender *s, int64_t id)
{
    for (int i = 0; i < s->nfly; i++)
        if (s->fly[i]->id == id)
            return true;
    return false;
}

/* Claim due rows into new[] (at most `room`), in one committed transaction.
 * Rows that used up max_attempts before (their last sender died) are marked
 * failed instead.  *next_due_ms = the earliest future next_ms of a pending
 * row, or -1.  Returns the number claimed, <0 on error (nothing claimed). */
static int ob_claim(struct ob_sender *s, int64_t now, struct ob_fly **new, int room, int64_t *next_due_ms)
{
    struct err e = ERR_INIT;
    char *skip[OB_INFLIGHT_CAP];
    struct ob_cand cand[OB_SCAN];
    int nskip = 0, n = 0, rc;
    int64_t first = -1;
    *next_due_ms = -1;
    char *prefix = NULL;
    pthread_mutex_lock(&s->st->ob_mu);
    if (s->st->ob_s3sink)
        prefix = xasprintf("%s%s/", OB_S3_PREFIX, store_s3sink_bucket(s->st->ob_s3sink));
    pthread_mutex_unlock(&s->st->ob_mu);
    struct db_conn *c = store__acquire(s->st, &e);
    if (!c) {
        free(prefix);
        return e.code;
    }
    /* A read first: when nothing is due, no write transaction (the sender
     * looks once a second for rows other processes queued). */
    if ((rc = next_due(c, -1, prefix, s->o.s3_only, &first, &e)) < 0) {
        free(prefix);
        store__release(s->st, c);
        return rc;
    }
    if (first < 0 || first > now) {
        *next_due_ms = first;
        store__release(s->st, c);
        free(prefix);
        return 0;
    }
    if ((rc = db_begin(c, &e)) < 0)
        goto out;
    for (int pass = 0; pass < OB_INFLIGHT_CAP && n < room; pass++) {
        int nc = read_candidates(c, skip, nskip, prefix, s->o.s3_only, now, cand, &e);
        if (nc < 0) {
            rc = nc;
            goto out;
        }
        rc = 0;
        for (int i = 0; i < nc; i++) {
            struct ob_cand *cd = &cand[i];
            if (rc < 0 || n >= room || in_flight(s, cd->id))
                goto next;
            if (dest_load(s->fly, s->nfly, cd->dest) + dest_load(new, n, cd->dest) >= s->o.max_per_dest) {
                if (!str_in(skip, nskip, cd->dest) && nskip < OB_INFLIGHT_CAP) {
                    skip[nskip++] = cd->dest;
                    cd->dest = NULL;
                }
                goto next;
            }
            if (cd->attempts >= s->o.max_attempts) {
                int changed = 0;
                rc = exec_row_update(c, "UPDATE outbox SET state='failed', done_ms=?1,"
                                        " last_error=coalesce(last_error, ?5) WHERE id=?2 AND attempts=?3"
                                        " AND state='pending'",
                                     now, cd->id, cd->attempts, 0, "attempt interrupted", &changed, &e);
                if (rc == 0 && changed == 1)
                    rc = log_failed(c, cd->id, &e);
                goto next;
            }
            int got = claim_one(s, c, now, cd, &new[n], &e);
            if (got < 0)
                rc = got;
            else
                n += got;
        next:
            free(cd->url);
            free(cd->dest);
        }
        if (rc < 0)
            goto out;
        /* A full page may hide more rows behind the ones just claimed or
         * skipped: look again, without the destinations now at their limit. */
        if (nc < OB_SCAN)
            break;
    }
    if ((rc = next_due(c, now, prefix, s->o.s3_only, next_due_ms, &e)) == 0)
        rc = db_commit(c, &e);
out:
    free(prefix);
    for (int i = 0; i < nskip; i++)
        free(skip[i]);
    if (rc < 0) {
        db_rollback(c);
        for (int i = 0; i < n; i++)
            fly_free(new[i]);
        n = 0;
        /* tried again every OB_RETRY_MS: said once a minute at most */
        int64_t t = time_mono_ms();
        if (t - s->claim_warned_ms >= 60000) {
            s->claim_warned_ms = t;
            log_warn("store", "cannot claim webhook rows: %s; trying again", err_text(&e, rc));
        }
    }
    store__release(s->st, c);
    return rc < 0 ? rc : n;
}

/* Write the outcomes of finished attempts, in one transaction.  A row
 * whose attempt count moved on (its lease ran out and another sender took
 * it) is left alone. */
static void ob_finish(struct ob_sender *s, const struct ob_done *d, int n)
{
    struct err e = ERR_INIT;
    struct db_conn *c = store__acquire(s->st, &e);
    int rc = c ? db_begin(c, &e) : e.code;
    int64_t now = time_now_ms();
    for (int i = 0; i < n && rc == 0; i++) {
        if (d[i].ok) {
            rc = exec_row_update(c, "UPDATE outbox SET state='delivered', done_ms=?1, last_error=NULL"
                                    " WHERE id=?2 AND attempts=?3 AND state='pending'",
                                 now, d[i].id, d[i].attempt, 0, NULL, NULL, &e);
        } else if (d[i].attempt >= s->o.max_attempts) {
            int changed = 0;
            rc = exec_row_update(c, "UPDATE outbox SET state='failed', done_ms=?1, last_error=?5"
                                    " WHERE id=?2 AND attempts=?3 AND state='pending'",
                                 now, d[i].id, d[i].attempt, 0, d[i].err, &changed, &e);
            if (rc == 0 && changed == 1)
                rc = log_failed(c, d[i].id, &e);
        } else { /* the backoff counts from this failure */
            rc = exec_row_update(c, "UPDATE outbox SET next_ms=?1, last_error=?5"
                                    " WHERE id=?2 AND attempts=?3 AND state='pending'",
                                 now + backoff_for(&s->o, d[i].attempt), d[i].id, d[i].attempt, 0, d[i].err,
                                 NULL, &e);
        }
    }
    if (rc == 0)
        rc = db_commit(c, &e);
    if (rc < 0)
        log_warn("store", "cannot record %d webhook attempt(s): %s; retried when their lease ends", n,
                 err_text(&e, rc));
    store__release(s->st, c);
}

/* Hand the in-flight rows back on a clean stop: due now, attempt not
 * counted (the receiver may still have got it: same event_id). */
static void ob_release(struct ob_sender *s)
{
    struct err e = ERR_INIT;
    if (s->nfly == 0)
        return;
    struct db_conn *c = store__acquire(s->st, &e);
    int rc = c ? db_begin(c, &e) : e.code;
    int64_t now = time_now_ms();
    for (int i = 0; i < s->nfly && rc == 0; i++)
        rc = exec_row_update(c, "UPDATE outbox SET attempts=attempts-1, next_ms=?1"
                                " WHERE id=?2 AND attempts=?3 AND state='pending'",
                             now, s->fly[i]->id, s->fly[i]->attempt, 0, NULL, NULL, &e);
    if (rc == 0)
        rc = db_commit(c, &e);
    store__release(s->st, c);
}

static size_t discard_cb(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

static size_t resp_cb(char *p, size_t sz, size_t n, void *ud);

/* Whether the header list of a webhook_sink request names h (case-insensitive). */
static bool has_header(const json_t *headers, const char *h)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)headers, k, v) {
        if (!strcasecmp(k, h))
            return true;
    }
    return false;
}

/* A webhook_sink request (f->req; Roboflow's requests.request(method, url,
 * headers=, json=, data=, files=)): with files a multipart/form-data body
 * of the form fields then the files (each named and file-named by its
 * key); else with form data an urlencoded body; else the JSON payload.
 * The user's headers are added last (their Authorization replaces the
 * workspace bearer); the idempotency key and the attempt go in headers. */
/* One part's head of a multipart/form-data body: the name (and, for a
 * file, the same filename) with '"', CR and LF escaped as browsers and
 * curl do (%22, %0D, %0A); no Content-Type, as Python's requests sends
 * bytes given without one. */
static void mime_part_head(struct buf *b, const char *boundary, const char *name, bool file)
{
    struct buf n = BUF_INIT;
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            buf_append(&n, "%22", 3);
        else if (*p == '\r')
            buf_append(&n, "%0D", 3);
        else if (*p == '\n')
            buf_append(&n, "%0A", 3);
        else
            buf_append(&n, p, 1);
    }
    const char *nm = n.data ? n.data : "";
    buf_printf(b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"", boundary, nm);
    if (file)
        buf_printf(b, "; filename=\"%s\"", nm); /* no Content-Type: as requests and curl */
    buf_append(b, "\r\n\r\n", 4);
    buf_release(&n);
}

static bool req_setup(struct ob_sender *s, struct ob_fly *f, json_t *payload, char err[128])
{
    json_t *r = json_loads(f->req, 0, NULL);
    const char *method = json_string_value(json_object_get(r, "method"));
    json_t *headers = json_object_get(r, "headers"), *form = json_object_get(r, "form"),
           *files = json_object_get(r, "files");
    const char *k;
    json_t *v;
    bool ok = false;
    snprintf(err, 128, "bad request description");
    if (!json_is_object(r) || !method)
        goto out;
    const char *idem = json_string_value(json_object_get(payload, "idempotency_key"));
    /* the key may be the user's (json_payload): a CR or LF would end the
     * header line and add the user's own lines to the request */
    if (idem && !strpbrk(idem, "\r\n")) {
        char *h = xasprintf("Idempotency-Key: %s", idem);
        f->hdrs = curl_slist_append(f->hdrs, h);
        free(h);
    }
    if (json_is_true(json_object_get(r, "slack_ok"))) {
        f->slack_ok = true;
        buf_init(&f->resp, OB_RESP_MAX);
        curl_easy_setopt(f->c, CURLOPT_WRITEFUNCTION, resp_cb);
        curl_easy_setopt(f->c, CURLOPT_WRITEDATA, &f->resp);
    }
    char att[64];
    snprintf(att, sizeof att, "X-Vbatch-Delivery-Attempt: %d", f->attempt);
    f->hdrs = curl_slist_append(f->hdrs, att);
    if (!json_is_object(headers) || !has_header(headers, "Authorization")) {
        char *auth = xasprintf("Authorization: Bearer rf_%s", f->workspace);
        f->hdrs = curl_slist_append(f->hdrs, auth);
        free(auth);
    }
    if (json_object_size(files) > 0) {
        /* multipart/form-data built here rather than by curl, so that the
         * exact bytes sent are known and signed like every other body */
        char boundary[41] = "vbatch-";
        rand_alnum(boundary + 7, 32);
        struct buf b = BUF_INIT;
        json_object_foreach(form, k, v) {
            mime_part_head(&b, boundary, k, false);
            const char *val = json_string_value(v);
            buf_append(&b, val ? val : "", val ? strlen(val) : 0);
            buf_append(&b, "\r\n", 2);
        }
        json_object_foreach(files, k, v) {
            const char *b64 = json_string_value(v);
            size_t n = 0;
            uint8_t *bytes = b64 ? base64_decode(b64, strlen(b64), &n) : NULL;
            if (!bytes) {
                buf_release(&b);
                goto out;
            }
            mime_part_head(&b, boundary, k, true);
            buf_append(&b, bytes, n);
            buf_append(&b, "\r\n", 2);
            free(bytes);
        }
        buf_printf(&b, "--%s--\r\n", boundary);
        f->body = buf_detach(&b, &f->body_len);
        char *ct = xasprintf("Content-Type: multipart/form-data; boundary=%s", boundary);
        f->hdrs = curl_slist_append(f->hdrs, ct);
        free(ct);
    } else if (json_object_size(form) > 0) {
        struct buf b = BUF_INIT;
        json_object_foreach(form, k, v) {
            char *ek = curl_easy_escape(f->c, k, 0), *ev = curl_easy_escape(f->c, json_string_value(v), 0);
            buf_printf(&b, "%s%s=%s", b.len ? "&" : "", ek ? ek : "", ev ? ev : "");
            curl_free(ek);
            curl_free(ev);
        }
        f->body = buf_detach(&b, &f->body_len);
        f->hdrs = curl_slist_append(f->hdrs, "Content-Type: application/x-www-form-urlencoded");
    } else {
        f->body = json_dumps(payload, JSON_COMPACT | JSON_REAL_PRECISION(9));
        f->body_len = f->body ? strlen(f->body) : 0;
        f->hdrs = curl_slist_append(f->hdrs, "Content-Type: application/json");
    }
    if (f->body) {
        curl_easy_setopt(f->c, CURLOPT_POSTFIELDS, f->body);
        curl_easy_setopt(f->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->body_len);
        if (f->sign) {
            char hex[65];
            store_secret_hmac_hex(s->st, f->body, f->body_len, hex);
            char *sig = xasprintf("X-Vbatch-Signature: sha256=%s", hex);
            f->hdrs = curl_slist_append(f->hdrs, sig);
            free(sig);
        }
    }
    json_object_foreach(headers, k, v) {
        char *h = xasprintf("%s: %s", k, json_string_value(v));
        f->hdrs = curl_slist_append(f->hdrs, h);
        free(h);
    }
    if (strcmp(method, "POST") != 0)
        curl_easy_setopt(f->c, CURLOPT_CUSTOMREQUEST, method);
    ok = true;
out:
    json_decref(r);
    return ok;
}

/* Prepare f's POST and add it to the multi handle.  On failure *err says
 * why (the attempt then counts as failed). */
static bool ob_start(struct ob_sender *s, struct ob_fly *f, char err[128])
{
    json_t *j = json_loads(f->payload, 0, NULL);
    char *auth = NULL, *sig = NULL;
    bool ok = false;
    snprintf(err, 128, "bad payload");
    if (!json_is_object(j))
        goto out;
    json_object_set_new(j, "delivery_attempt", json_integer(f->attempt));
    snprintf(err, 128, "cannot start the request");
    if (!(f->c = curl_easy_init()))
        goto out;
    if (f->req) {
        if (!req_setup(s, f, j, err))
            goto out;
    } else {
        f->body = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        if (!f->body)
            goto out;
        f->body_len = strlen(f->body);
        auth = xasprintf("Authorization: Bearer rf_%s", f->workspace);
        f->hdrs = curl_slist_append(f->hdrs, "Content-Type: application/json");
        f->hdrs = curl_slist_append(f->hdrs, auth);
        if (f->sign) {
            char hex[65];
            store_secret_hmac_hex(s->st, f->body, f->body_len, hex);
            sig = xasprintf("X-Vbatch-Signature: sha256=%s", hex);
            f->hdrs = curl_slist_append(f->hdrs, sig);
        }
        curl_easy_setopt(f->c, CURLOPT_POSTFIELDS, f->body);
        curl_easy_setopt(f->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->body_len);
    }
    store_net_guard_curl(s->st, f->c);
    curl_easy_setopt(f->c, CURLOPT_URL, f->url);
    curl_easy_setopt(f->c, CURLOPT_HTTPHEADER, f->hdrs);
    curl_easy_setopt(f->c, CURLOPT_TIMEOUT_MS, s->o.timeout_ms);
    curl_easy_setopt(f->c, CURLOPT_CONNECTTIMEOUT_MS, MIN(s->o.timeout_ms, 5000L));
    if (!f->slack_ok)
        curl_easy_setopt(f->c, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(f->c, CURLOPT_USERAGENT, "vbatch-webhook/1");
    ok = curl_multi_add_handle(s->m, f->c) == CURLM_OK;
out:
    free(auth);
    free(sig);
    json_decref(j);
    return ok;
}

static void note_result(const struct ob_fly *f, struct ob_done *d)
{
    d->id = f->id;
    d->attempt = f->attempt;
    metric_count(d->ok ? METRIC_WEBHOOK_DELIVERIES : METRIC_WEBHOOK_FAILURES, 1, NULL, NULL, NULL);
    /* cut at 128 bytes, maybe inside a character (an object store's
     * error quotes the key): last_error and the job's log take UTF-8 only,
     * and PostgreSQL refuses the whole outcome transaction otherwise */
    utf8_scrub(d->err);
    if (!d->ok)
        log_warn("store", "webhook attempt failed id=%lld attempt=%d url=%s: %s", (long long)f->id, f->attempt,
                 f->url, d->err);
    else
        log_debug("store", "webhook delivered id=%lld attempt=%d", (long long)f->id, f->attempt);
}

/* ---- slack_upload: Slack's files_upload_v2 as one delivery ---- */

static size_t resp_cb(char *p, size_t sz, size_t n, void *ud)
{
    struct buf *b = ud;
    return buf_append(b, p, sz * n) < 0 ? 0 : sz * n; /* 0: the answer is too long, the call fails */
}

static void form_add(struct buf *b, CURL *c, const char *k, const char *v)
{
    char *ev = curl_easy_escape(c, v, 0);
    buf_printf(b, "%s%s=%s", b->len ? "&" : "", k, ev ? ev : "");
    curl_free(ev);
}

/* Set up and start f's current stage.  false with err on failure. */
static bool slack_start(struct ob_sender *s, struct ob_fly *f, char err[128])
{
    json_t *files = json_object_get(f->plan, "files");
    size_t n = json_array_size(files);
    const char *api = json_string_value(json_object_get(f->plan, "api"));
    const char *token = json_string_value(json_object_get(f->plan, "token"));
    int64_t left = f->deadline_ms - time_now_ms();
    char *url = NULL;
    bool ok = false;
    if (left <= 0) {
        snprintf(err, 128, "the Slack upload ran out of time (%lld ms for all its calls)", (long long)f->budget_ms);
        return false;
    }
    snprintf(err, 128, "cannot start the request");
    if (!(f->c = curl_easy_init()))
        return false;
    buf_init(&f->resp, OB_RESP_MAX);
    struct buf b = BUF_INIT;
    json_t *file = (size_t)f->stage < 2 * n ? json_array_get(files, (size_t)f->stage / 2) : NULL;
    if (file) {
        const char *b64 = json_string_value(json_object_get(file, "data"));
        f->bytes = base64_decode(b64, strlen(b64), &f->nbytes);
        if (!f->bytes) {
            snprintf(err, 128, "bad attachment bytes");
            goto out;
        }
    }
    if (file && f->stage % 2 == 0) {
        url = xasprintf("%s/files.getUploadURLExternal", api);
        form_add(&b, f->c, "filename", json_string_value(json_object_get(file, "name")));
        char len[32];
        snprintf(len, sizeof len, "%zu", f->nbytes);
        form_add(&b, f->c, "length", len);
    } else if (file) { /* the bytes themselves, to the URL Slack gave */
        url = xstrdup(f->upload_url);
        f->hdrs = curl_slist_append(f->hdrs, "Content-Type: application/octet-stream");
    } else {
        url = xasprintf("%s/files.completeUploadExternal", api);
        char *ids = json_dumps(f->done_files, JSON_COMPACT);
        form_add(&b, f->c, "files", ids ? ids : "[]");
        free(ids);
        form_add(&b, f->c, "channel_id", json_string_value(json_object_get(f->plan, "channel")));
        form_add(&b, f->c, "initial_comment", json_string_value(json_object_get(f->plan, "comment")));
    }
    if (!file || f->stage % 2 == 0) {
        char *auth = xasprintf("Authorization: Bearer %s", token);
        f->hdrs = curl_slist_append(f->hdrs, auth);
        free(auth);
        f->hdrs = curl_slist_append(f->hdrs, "Content-Type: application/x-www-form-urlencoded");
        f->body = buf_detach(&b, NULL);
        if (!f->body)
            f->body = xstrdup("");
        curl_easy_setopt(f->c, CURLOPT_POSTFIELDS, f->body);
        curl_easy_setopt(f->c, CURLOPT_POSTFIELDSIZE, (long)strlen(f->body));
    } else {
        curl_easy_setopt(f->c, CURLOPT_POSTFIELDS, f->bytes);
        curl_easy_setopt(f->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->nbytes);
    }
    store_net_guard_curl(s->st, f->c);
    curl_easy_setopt(f->c, CURLOPT_URL, url);
    curl_easy_setopt(f->c, CURLOPT_HTTPHEADER, f->hdrs);
    curl_easy_setopt(f->c, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(f->c, CURLOPT_CONNECTTIMEOUT_MS, (long)MIN(left, 5000));
    curl_easy_setopt(f->c, CURLOPT_WRITEFUNCTION, resp_cb);
    curl_easy_setopt(f->c, CURLOPT_WRITEDATA, &f->resp);
    curl_easy_setopt(f->c, CURLOPT_USERAGENT, "vbatch-webhook/1");
    ok = curl_multi_add_handle(s->m, f->c) == CURLM_OK;
out:
    buf_release(&b);
    free(url);
    return ok;
}

/* Whether the Slack API answer in f->resp is JSON with "ok": true; else
 * err says what it answered. */
static bool slack_answer_ok(struct ob_fly *f, const char *call, char err[128])
{
    json_t *j = f->resp.data ? json_loadb(f->resp.data, f->resp.len, 0, NULL) : NULL;
    bool ok = json_is_true(json_object_get(j, "ok"));
    if (!ok) {
        const char *why = json_string_value(json_object_get(j, "error"));
        snprintf(err, 128, "%s answered %s%.64s", call, why ? "error " : "without \"ok\": true", why ? why : "");
    }
    json_decref(j);
    return ok;
}

/* Whether url is a well-formed http(s) URL with a host (*why: the reason
 * when not).  Syntax only, no name lookup (that would block the sender's
 * one thread): the addresses curl connects to are checked by the guard
 * of store_net_guard_curl. */
static bool url_syntax_ok(const char *url, const char **why)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = false;
    *why = "malformed url";
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host) {
        ok = !strcasecmp(scheme, "http") || !strcasecmp(scheme, "https");
        *why = ok ? NULL : "unsupported url scheme (http and https only)";
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* The outcome of f's finished stage (HTTP status code): 1 the next stage
 * is started, 0 the upload is complete, -1 failed (err). */
static int slack_after(struct ob_sender *s, struct ob_fly *f, long code, char err[128])
{
    size_t n = json_array_size(json_object_get(f->plan, "files"));
    bool api = (size_t)f->stage == 2 * n || f->stage % 2 == 0;
    static const char *const what[] = {"files.getUploadURLExternal", "the upload"};
    const char *call = (size_t)f->stage == 2 * n ? "files.completeUploadExternal" : what[f->stage % 2];
    if (code < 200 || code >= 300) {
        snprintf(err, 128, "%s: http status %ld", call, code);
        return -1;
    }
    if (api) {
        if (!slack_answer_ok(f, call, err))
            return -1;
        json_t *j = f->resp.data ? json_loadb(f->resp.data, f->resp.len, 0, NULL) : NULL;
        if ((size_t)f->stage < 2 * n) {
            const char *u = json_string_value(json_object_get(j, "upload_url"));
            const char *id = json_string_value(json_object_get(j, "file_id"));
            const char *why = NULL;
            if (!u || !id) {
                snprintf(err, 128, "%s answered no upload_url or file_id", call);
                json_decref(j);
                return -1;
            }
            if (!url_syntax_ok(u, &why)) {
                snprintf(err, 128, "the upload URL was refused: %s", why ? why : "not allowed");
                json_decref(j);
                return -1;
            }
            free(f->upload_url);
            free(f->file_id);
            f->upload_url = xstrdup(u);
            f->file_id = xstrdup(id);
        }
        json_decref(j);
    } else {
        json_t *file = json_array_get(json_object_get(f->plan, "files"), (size_t)f->stage / 2);
        if (!f->done_files)
            f->done_files = json_array();
        json_array_append_new(f->done_files, json_pack("{s:s, s:s}", "id", f->file_id, "title",
                                                       json_string_value(json_object_get(file, "name"))));
    }
    if ((size_t)f->stage == 2 * n)
        return 0;
    f->stage++;
    fly_reset_http(f);
    return slack_start(s, f, err) ? 1 : -1;
}

/* ---- s3_put: a PUT into the s3_sink bucket on a thread of its own ---- */

static void *s3_main(void *arg)
{
    struct ob_fly *f = arg;
    struct store *st = f->st;
    bool ok = false;
    char err[128] = "";
    pthread_mutex_lock(&st->ob_mu);
    struct store_s3sink *k = st->ob_s3sink;
    pthread_mutex_unlock(&st->ob_mu);
    const char *key = json_string_value(json_object_get(f->plan, "key"));
    const char *b64 = json_string_value(json_object_get(f->plan, "data"));
    size_t n = 0;
    uint8_t *bytes = b64 ? base64_decode(b64, strlen(b64), &n) : NULL;
    const char *bucket = f->url + strlen(OB_S3_PREFIX), *slash = strchr(bucket, '/');
    if (!k) {
        snprintf(err, sizeof err, "no bucket for s3_sink objects in this process (--sink-s3)");
    } else if (strncmp(f->url, OB_S3_PREFIX, strlen(OB_S3_PREFIX)) || !slash ||
               strlen(store_s3sink_bucket(k)) != (size_t)(slash - bucket) ||
               strncmp(bucket, store_s3sink_bucket(k), (size_t)(slash - bucket))) {
        /* the claim passes such rows over; never written to another bucket */
        snprintf(err, sizeof err, "the object is for another bucket than this process's '%.64s'",
                 store_s3sink_bucket(k));
    } else if (!bytes || !key) {
        snprintf(err, sizeof err, "bad object description");
    } else {
        struct err e = ERR_INIT;
        int rc = store_s3sink_put(k, key, bytes, n, f->deadline_ms, &e);
        ok = rc == 0;
        if (!ok)
            snprintf(err, sizeof err, "%s", err_text(&e, rc));
    }
    free(bytes);
    pthread_mutex_lock(&st->ob_mu);
    f->th_ok = ok;
    snprintf(f->th_err, sizeof f->th_err, "%s", err);
    f->th_done = true;
    if (st->ob_multi)
        curl_multi_wakeup(st->ob_multi);
    pthread_mutex_unlock(&st->ob_mu);
    return NULL;
}

void store_outbox_set_s3sink(struct store *st, struct store_s3sink *k)
{
    pthread_mutex_lock(&st->ob_mu);
    st->ob_s3sink = k;
    pthread_mutex_unlock(&st->ob_mu);
}

/* Start f whatever its kind. */
static bool fly_start(struct ob_sender *s, struct ob_fly *f, char err[128])
{
    switch (f->kind) {
    case OB_SLACK:
        if (!f->plan) {
            snprintf(err, 128, "unknown request kind");
            return false;
        }
        return slack_start(s, f, err);
    case OB_S3:
        f->st = s->st;
        if (pthread_create(&f->th, NULL, s3_main, f) != 0) {
            snprintf(err, 128, "cannot start a thread");
            return false;
        }
        f->th_started = true;
        return true;
    default:
        return ob_start(s, f, err);
    }
}

/* Claim what the free slots allow and start those POSTs.  Returns <0 when
 * the claim failed; *next_due_ms as ob_claim's. */
static int ob_fill(struct ob_sender *s, int64_t *next_due_ms)
{
    struct ob_fly *new[OB_INFLIGHT_CAP];
    struct ob_done bad[OB_INFLIGHT_CAP];
    int nbad = 0;
    int room = s->o.max_inflight - s->nfly;
    *next_due_ms = -1;
    if (room <= 0)
        return 0; /* a finished POST wakes us */
    int n = ob_claim(s, time_now_ms(), new, room, next_due_ms);
    for (int i = 0; i < n; i++) {
        struct ob_done *d = &bad[nbad];
        memset(d, 0, sizeof *d);
        if (fly_start(s, new[i], d->err)) {
            s->fly[s->nfly++] = new[i];
            continue;
        }
        note_result(new[i], d);
        nbad++;
        fly_free(new[i]);
    }
    if (nbad)
        ob_finish(s, bad, nbad);
    return n < 0 ? n : 0;
}

/* Collect finished POSTs and record them.  Returns how many finished. */
static int ob_reap(struct ob_sender *s)
{
    struct ob_done done[OB_INFLIGHT_CAP];
    int ndone = 0, left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(s->m, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *c = msg->easy_handle;
        CURLcode cc = msg->data.result;
        int k = 0;
        while (k < s->nfly && s->fly[k]->c != c)
            k++;
        if (k == s->nfly)
            continue;
        struct ob_fly *f = s->fly[k];
        struct ob_done *d = &done[ndone];
        memset(d, 0, sizeof *d);
        curl_multi_remove_handle(s->m, c);
        if (cc != CURLE_OK) {
            snprintf(d->err, sizeof d->err, "%s", curl_easy_strerror(cc));
        } else {
            long code = 0;
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            if (f->kind == OB_SLACK) {
                int r = slack_after(s, f, code, d->err);
                if (r == 1)
                    continue; /* its next call is on its way */
                d->ok = r == 0;
            } else {
                d->ok = code >= 200 && code < 300;
                if (!d->ok)
                    snprintf(d->err, sizeof d->err, "http status %ld", code);
                else if (f->slack_ok)
                    d->ok = slack_answer_ok(f, "chat.postMessage", d->err);
            }
        }
        ndone++;
        note_result(f, d);
        fly_free(f);
        s->fly[k] = s->fly[--s->nfly];
    }
    /* s3_put threads that have finished */
    for (int k = 0; k < s->nfly && ndone < OB_INFLIGHT_CAP;) {
        struct ob_fly *f = s->fly[k];
        pthread_mutex_lock(&s->st->ob_mu);
        bool fin = f->kind == OB_S3 && f->th_done;
        pthread_mutex_unlock(&s->st->ob_mu);
        if (!fin) {
            k++;
            continue;
        }
        struct ob_done *d = &done[ndone++];
        memset(d, 0, sizeof *d);
        d->ok = f->th_ok;
        snprintf(d->err, sizeof d->err, "%s", f->th_err);
        note_result(f, d);
        fly_free(f); /* joins the thread */
        s->fly[k] = s->fly[--s->nfly];
    }
    if (ndone)
        ob_finish(s, done, ndone);
    return ndone;
}

static void *ob_main(void *arg)
{
    struct ob_sender s = {.st = arg};
    struct store *st = s.st;
    pthread_mutex_lock(&st->ob_mu);
    s.o = st->ob_opts;
    pthread_mutex_unlock(&st->ob_mu);
    if (!(s.m = curl_multi_init())) {
        log_error("store", "webhook sender: cannot create a curl multi handle; webhooks are not sent");
        return NULL;
    }
    pthread_mutex_lock(&st->ob_mu);
    st->ob_multi = s.m;
    pthread_mutex_unlock(&st->ob_mu);
    int64_t next_fill = 0; /* wall ms of the next claim pass */
    bool fill_now = true;
    for (;;) {
        pthread_mutex_lock(&st->ob_mu);
        bool stop = st->ob_stop;
        fill_now |= st->ob_kick;
        st->ob_kick = false;
        pthread_mutex_unlock(&st->ob_mu);
        if (stop)
            break;
        int64_t now = time_now_ms();
        if (fill_now || now >= next_fill) {
            int64_t due = -1;
            int rc = ob_fill(&s, &due);
            fill_now = false;
            next_fill = now + (rc < 0 ? OB_RETRY_MS : OB_IDLE_MS);
            if (due >= 0 && due < next_fill)
                next_fill = due;
        }
        int running = 0;
        curl_multi_perform(s.m, &running);
        if (ob_reap(&s) > 0) {
            fill_now = true; /* slots are free, and rows behind the finished ones may be due */
            continue;
        }
        int64_t wait = next_fill - time_now_ms();
        if (wait > OB_IDLE_MS)
            wait = OB_IDLE_MS;
        /* curl_multi_poll also returns for socket activity, curl's own
         * timers and curl_multi_wakeup() (kick, stop). */
        if (wait > 0)
            curl_multi_poll(s.m, NULL, 0, (int)wait, NULL);
    }
    pthread_mutex_lock(&st->ob_mu);
    st->ob_multi = NULL;
    pthread_mutex_unlock(&st->ob_mu);
    /* PUTs on their threads finish (the s3 client's own timeouts) and are
     * recorded; the rest is handed back */
    for (int i = 0; i < s.nfly; i++)
        if (s.fly[i]->th_started) {
            pthread_join(s.fly[i]->th, NULL);
            s.fly[i]->th_started = false;
        }
    ob_reap(&s);
    ob_release(&s);
    for (int i = 0; i < s.nfly; i++) {
        if (s.fly[i]->c)
            curl_multi_remove_handle(s.m, s.fly[i]->c);
        fly_free(s.fly[i]);
    }
    curl_multi_cleanup(s.m);
    return NULL;
}

int store_outbox_start(struct store *st, const struct store_outbox_opts *o)
{
    int rc = 0;
    pthread_mutex_lock(&st->ob_mu);
    if (!st->ob_running) {
        if (o)
            st->ob_opts = *o;
        struct store_outbox_opts *so = &st->ob_opts;
        so->max_attempts = MAX(so->max_attempts, 1);
        so->max_inflight = MIN(MAX(so->max_inflight, 1), OB_INFLIGHT_CAP);
        so->max_per_dest = MIN(MAX(so->max_per_dest, 1), so->max_inflight);
        if (so->timeout_ms <= 0)
            so->timeout_ms = 10000;
        st->ob_stop = false;
        st->ob_kick = false;
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
    if (st->ob_multi)
        curl_multi_wakeup(st->ob_multi);
    pthread_mutex_unlock(&st->ob_mu);
    if (running)
        pthread_join(st->ob_thread, NULL);
    pthread_mutex_lock(&st->ob_mu);
    st->ob_running = false;
    pthread_mutex_unlock(&st->ob_mu);
}
