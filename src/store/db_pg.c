/*
 * db_pg.c — the PostgreSQL backend of the SQL layer (db.h), on libpq.
 *
 * Connecting: the target is any libpq connection URI (postgres:// or
 * postgresql://).  It is parsed first (a bad URL fails with libpq's reason),
 * then connected with a 5 s connect timeout (the URI's connect_timeout wins)
 * and TCP keepalives, so that a server that vanished is noticed.  Failures
 * say why — unreachable, wrong password or user, no such database — and
 * never hold the password (it is scrubbed from libpq's text as well).
 *
 * Statements: the common dialect's ?N become $N outside string literals,
 * quoted identifiers, dollar-quoted strings and comments.  Each db_step
 * that starts a statement sends it with its parameters (extended
 * protocol), each with an explicit type — int8, float8, text or bytea
 * (binary) — and SQL NULLs untyped, so "?1 || '-'" and "length(?2)" need
 * no casts.  Each connection keeps its last PG_CACHE statements prepared
 * on the server (named "vb<n>", keyed by the text and the parameter types):
 * a statement run again skips the server's parse and plan (about 1.5x the
 * rate of one-shot statements for point queries).  A prepared statement
 * that a schema change made stale (SQLSTATE 0A000, "cached plan must not
 * change result type") is dropped and, outside a transaction, run again
 * once; inside one the caller sees ERR_AGAIN and runs the transaction
 * again.  The whole result comes back at once, in text
 * format; the statement then walks its rows.  Fetching whole results is what
 * lets one connection interleave statements (read rows of one SELECT while
 * running UPDATEs) as SQLite allows; callers page large lists with LIMIT.
 * bytea columns are decoded for db_col_blob.
 *
 * Text parameters must be UTF-8 (the database's encoding): one that is
 * not is ERR_INVALID before anything is sent (SQLite would store it).
 *
 * Errors map by SQLSTATE (see db.h): 23505 unique violation → ERR_EXISTS;
 * 40001 serialization failure, 40P01 deadlock, 55P03 lock not available →
 * ERR_AGAIN; 53100 disk full → ERR_NOSPACE; class 08 (connection
 * exception), 57P01-57P03 (server shutting down / starting) or a
 * connection libpq sees as bad → ERR_UNAVAILABLE, and the connection is
 * marked broken so that db_release closes it and the next db_acquire
 * connects afresh.  Note the PostgreSQL rule that an error inside a
 * transaction aborts it: owner code must not catch an error (e.g. a
 * unique-key ERR_EXISTS) and go on in the same transaction — write
 * ON CONFLICT instead.  A COMMIT of such an aborted transaction is reported
 * as an error here (PostgreSQL answers it with ROLLBACK, not an error).
 */
#include "store/db_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define PG_CONNECT_TIMEOUT_S "5"
#define PG_CACHE 64 /* prepared statements kept per connection */
#define PG_MIN_SERVER_VERSION 90500 /* ON CONFLICT, SKIP LOCKED */

/* Type OIDs of the parameters we send (pg_type.h). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25
#define OID_FLOAT8 701

/* A connection's prepared statements: key = SQL text + '\0' + one type
 * letter per parameter. */
struct pg_cached {
    char *key;
    size_t keylen;
    char name[24];
    uint64_t used; /* LRU clock */
};

struct pg_conn {
    struct pg_cached c[PG_CACHE];
    int n;
    uint64_t clock;
    uint64_t next_name;
};

/* What a statement keeps besides struct db_stmt. */
struct pg_stmt {
    char *sql;      /* rewritten: $N parameters */
    int nparams;    /* highest $N in the text */
    void **decoded; /* bytea values decoded for db_col_blob, one per column */
    size_t *decoded_len;
    int ncols;
};

/* ---- messages ------------------------------------------------------------ */

/* libpq's message on one line: newlines and tabs become spaces, the
 * trailing ones go, and none of secrets[0..n) (the password as written in
 * the target and as decoded; NULL entries skipped) ever shows. */
static void one_line(char *out, size_t n, const char *msg, char *const *secrets, int ns)
{
    size_t j = 0;
    bool space = false;
    for (const char *p = msg ? msg : ""; *p && j + 4 < n; p++) {
        size_t hit = 0;
        for (int k = 0; k < ns && !hit; k++)
            if (secrets[k] && *secrets[k] && !strncmp(p, secrets[k], strlen(secrets[k])))
                hit = strlen(secrets[k]);
        if (hit) {
            memcpy(out + j, "***", 3);
            j += 3;
            p += hit - 1;
            space = false;
            continue;
        }
        if (*p == '\n' || *p == '\t' || *p == '\r') {
            space = j > 0;
            continue;
        }
        if (*p == ' ' && space)
            continue;
        if (space) {
            out[j++] = ' ';
            space = false;
        }
        out[j++] = *p;
    }
    out[j] = 0;
}

/* ---- display ------------------------------------------------------------- */

char *db__pg_display(const char *target)
{
    /* scheme://user:password@host... -> scheme://user:***@host...; a
     * "password=" query parameter likewise. */
    struct buf b = BUF_INIT;
    const char *p = strstr(target, "://");
    const char *auth = p ? p + 3 : target;
    size_t auth_end = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_end; i++)
        if (auth[i] == '@')
            at = auth + i; /* the last '@' of the authority */
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    const char *q;
    if (colon) {
        buf_append(&b, target, (size_t)(colon - target));
        buf_puts(&b, ":***");
        q = at;
    } else {
        q = target;
    }
    /* the rest, with password=VALUE masked in the query */
    while (*q) {
        const char *hit = strstr(q, "password=");
        if (!hit || (hit > target && hit[-1] != '?' && hit[-1] != '&')) {
            if (!hit) {
                buf_puts(&b, q);
                break;
            }
            buf_append(&b, q, (size_t)(hit - q) + 9);
            q = hit + 9;
            continue;
        }
        buf_append(&b, q, (size_t)(hit - q) + 9);
        buf_puts(&b, "***");
        q = hit + 9;
        q += strcspn(q, "&#");
    }
    return buf_detach(&b, NULL);
}

/* ---- connecting ---------------------------------------------------------- */

static void notice_drop(void *arg, const char *msg)
{
    (void)arg;
    log_debug("db", "postgres notice: %.200s", msg);
}

/* The passwords of the target, to scrub them from messages: [0] as
 * libpq decodes it, [1] as written in the URI's user:password@ part, [2]
 * as written in a password= parameter (each malloc'd or NULL). */
struct secrets {
    char *s[3];
};

static void secrets_of(const char *target, struct secrets *out)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(target, &errmsg);
    memset(out, 0, sizeof *out);
    PQfreemem(errmsg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, "password") && o->val && *o->val)
            out->s[0] = xstrdup(o->val);
    PQconninfoFree(opts);
    const char *p = strstr(target, "://");
    const char *auth = p ? p + 3 : target;
    size_t auth_end = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_end; i++)
        if (auth[i] == '@')
            at = auth + i;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon && at > colon + 1)
        out->s[1] = xstrndup(colon + 1, (size_t)(at - colon - 1));
    const char *q = strstr(target, "password=");
    if (q && q > target && (q[-1] == '?' || q[-1] == '&') && q[9] && q[9] != '&')
        out->s[2] = xstrndup(q + 9, strcspn(q + 9, "&#"));
}

static void secrets_free(struct secrets *x)
{
    for (int i = 0; i < 3; i++)
        free(x->s[i]);
}

int db__pg_connect(struct db *d, struct db_conn *c, struct err *e)
{
    char msg[ERR_MSG_MAX];
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(d->target, &errmsg);
    if (!opts) {
        struct secrets x;
        secrets_of(d->target, &x);
        one_line(msg, sizeof msg, errmsg ? errmsg : "out of memory", x.s, 3);
        secrets_free(&x);
        PQfreemem(errmsg);
        return err_set(e, ERR_INVALID, "bad database URL '%s': %s", d->display, msg);
    }
    PQconninfoFree(opts);

    /* Later keywords win over earlier ones: our defaults first, then the
     * target (expanded), whose own settings override them. */
    const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                                "keepalives_count", "application_name", "dbname", NULL};
    const char *const vals[] = {PG_CONNECT_TIMEOUT_S, "1", "30", "10", "3", "vbatch", d->target, NULL};
    PGconn *h = PQconnectdbParams(keys, vals, 1);
    if (!h)
        return err_set(e, ERR_NOMEM, "cannot connect to '%s': out of memory", d->display);
    if (PQstatus(h) != CONNECTION_OK) {
        struct secrets x;
        const char *raw = PQerrorMessage(h);
        const char *why = "cannot reach the server";
        int code = ERR_UNAVAILABLE;
        secrets_of(d->target, &x);
        one_line(msg, sizeof msg, raw, x.s, 3);
        secrets_free(&x);
        if (strstr(raw, "invalid integer value") || strstr(raw, "invalid port number") ||
            strstr(raw, "invalid connection option") || strstr(raw, "invalid value for parameter") ||
            strstr(raw, "invalid sslmode") || strstr(raw, "invalid URI")) {
            PQfinish(h);
            return err_set(e, ERR_INVALID, "bad database URL '%s': %s", d->display, msg);
        }
        if (strstr(raw, "could not translate host name")) {
            why = "unknown host";
        } else if (strstr(raw, "password authentication failed") || strstr(raw, "no password supplied") ||
            strstr(raw, "authentication failed")) {
            why = "wrong user or password";
            code = ERR_AUTH;
        } else if (strstr(raw, "does not exist") && strstr(raw, "database")) {
            why = "no such database";
            code = ERR_INVALID;
        } else if (strstr(raw, "does not exist") && strstr(raw, "role")) {
            why = "no such user";
            code = ERR_AUTH;
        } else if (strstr(raw, "timeout expired")) {
            why = "the server did not answer in time";
        }
        PQfinish(h);
        return err_set(e, code, "cannot connect to the database '%s': %s (%s)", d->display, why, msg);
    }
    if (PQserverVersion(h) < PG_MIN_SERVER_VERSION) {
        int v = PQserverVersion(h);
        PQfinish(h);
        return err_set(e, ERR_UNSUPPORTED, "the database '%s' runs PostgreSQL %d.%d: vbatch needs 9.5 or newer",
                       d->display, v / 10000, v / 100 % 100);
    }
    PQsetNoticeProcessor(h, notice_drop, NULL);
    c->h = h;
    c->aux = xcalloc(1, sizeof(struct pg_conn));
    /* Times are int64 ms from the caller; nothing depends on the session's
     * time zone or encoding beyond UTF-8 text. */
    int rc = db__pg_exec(c, "SET client_encoding TO 'UTF8'; SET client_min_messages TO warning", e);
    if (rc < 0)
        db__pg_disconnect(c);
    return rc;
}

void db__pg_disconnect(struct db_conn *c)
{
    struct pg_conn *pc = c->aux;
    PQfinish(c->h);
    c->h = NULL;
    if (pc) {
        for (int i = 0; i < pc->n; i++)
            free(pc->c[i].key);
        free(pc);
        c->aux = NULL;
    }
}

bool db__pg_alive(struct db_conn *c)
{
    PGconn *h = c->h;
    if (!h || PQstatus(h) != CONNECTION_OK)
        return false;
    int fd = PQsocket(h);
    if (fd < 0)
        return false;
    /* An idle connection has nothing to read unless the server spoke on
     * its own: a notice, a parameter change, or a FATAL error and the end
     * of the stream.  Read what there is until it would block; the end of
     * the stream makes PQconsumeInput fail. */
    for (int i = 0; i < 8; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 0);
        if (r == 0)
            return true;
        if (r < 0 || (p.revents & (POLLERR | POLLNVAL)))
            return false;
        if (!PQconsumeInput(h) || PQstatus(h) != CONNECTION_OK)
            return false;
        PGnotify *n;
        while ((n = PQnotifies(h)) != NULL)
            PQfreemem(n);
    }
    return true;
}

/* ---- errors -------------------------------------------------------------- */

static bool sqlstate_is(const char *st, const char *want)
{
    return st && !strcmp(st, want);
}

/* The code, message and broken flag of a failed result (res may be NULL). */
static int fail(struct db_conn *c, PGresult *res, const char *sql, struct err *e)
{
    PGconn *h = c->h;
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[ERR_MSG_MAX];
    int rc;

    one_line(msg, sizeof msg, primary ? primary : PQerrorMessage(h), NULL, 0);
    if (PQstatus(h) == CONNECTION_BAD || (st && !strncmp(st, "08", 2)) || sqlstate_is(st, "57P01") ||
        sqlstate_is(st, "57P02") || sqlstate_is(st, "57P03")) {
        c->broken = true;
        c->in_tx = false; /* the server has dropped it */
        log_warn("db", "database connection lost: %s", msg);
        return err_set(e, ERR_UNAVAILABLE, "the database cannot be reached: %s", msg);
    }
    if (sqlstate_is(st, "23505"))
        return err_set(e, ERR_EXISTS, "database: %s", msg);
    if (sqlstate_is(st, "40001") || sqlstate_is(st, "40P01") || sqlstate_is(st, "55P03"))
        return err_set(e, ERR_AGAIN, "database busy (%s)", msg);
    if (sqlstate_is(st, "53100"))
        return err_set(e, ERR_NOSPACE, "storage full: the database cannot grow (%s)", msg);
    rc = ERR_INTERNAL;
    log_error("db", "postgres error %s: %s: %.200s", st ? st : "-", msg, sql ? sql : "");
    return err_set(e, rc, "database: %s", msg);
}

static void set_changes(struct db_conn *c, PGresult *res)
{
    const char *cmd = PQcmdStatus(res);
    if (!strncmp(cmd, "INSERT", 6) || !strncmp(cmd, "UPDATE", 6) || !strncmp(cmd, "DELETE", 6) ||
        !strncmp(cmd, "MERGE", 5))
        c->changes = strtoll(PQcmdTuples(res), NULL, 10);
}

/* ---- exec and transactions ----------------------------------------------- */

int db__pg_exec(struct db_conn *c, const char *sql, struct err *e)
{
    PGresult *res = PQexec(c->h, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        rc = fail(c, res, sql, e);
    } else {
        set_changes(c, res);
        /* COMMIT of a transaction aborted by an earlier error: PostgreSQL
         * answers "ROLLBACK" without an error. */
        if (!strcmp(PQcmdStatus(res), "ROLLBACK") && !strncasecmp(sql, "COMMIT", 6))
            rc = err_set(e, ERR_INTERNAL, "database: the transaction was rolled back by an earlier error");
    }
    PQclear(res);
    return rc;
}

int db__pg_begin(struct db_conn *c, struct err *e)
{
    return db__pg_exec(c, "BEGIN", e);
}

/* ---- statements ---------------------------------------------------------- */

/* ?N -> $N outside '...' / E'...' literals, "..." identifiers, $tag$...$tag$
 * strings and -- / block comments.  *maxp: the highest N.  NULL when a ?
 * is not followed by a number in range. */
static char *rewrite(const char *sql, int *maxp)
{
    struct buf b = BUF_INIT;
    const char *p = sql;
    int max = 0;
    while (*p) {
        if (*p == '\'' || *p == '"') {
            char qc = *p;
            const char *s = p++;
            bool backslash = qc == '\'' && s > sql && (s[-1] == 'E' || s[-1] == 'e') &&
                             (s - 1 == sql || !(isalnum((unsigned char)s[-2]) || s[-2] == '_'));
            while (*p) {
                if (backslash && *p == '\\' && p[1]) {
                    p += 2;
                    continue;
                }
                if (*p == qc) {
                    if (p[1] == qc) { /* doubled quote */
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                p++;
            }
            buf_append(&b, s, (size_t)(p - s));
        } else if (p[0] == '-' && p[1] == '-') {
            const char *s = p;
            p += strcspn(p, "\n");
            buf_append(&b, s, (size_t)(p - s));
        } else if (p[0] == '/' && p[1] == '*') {
            const char *s = p;
            int depth = 0;
            while (*p) {
                if (p[0] == '/' && p[1] == '*') {
                    depth++;
                    p += 2;
                } else if (p[0] == '*' && p[1] == '/') {
                    p += 2;
                    if (--depth == 0)
                        break;
                } else {
                    p++;
                }
            }
            buf_append(&b, s, (size_t)(p - s));
        } else if (*p == '$' && (p == sql || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
                   (p[1] == '$' || isalpha((unsigned char)p[1]) || p[1] == '_')) {
            /* a dollar-quoted string: $$...$$ or $tag$...$tag$ */
            const char *s = p;
            size_t tl = 1;
            while (isalnum((unsigned char)p[tl]) || p[tl] == '_')
                tl++;
            if (p[tl] != '$') { /* not a tag after all */
                buf_append(&b, p, tl);
                p += tl;
                continue;
            }
            tl++;
            const char *end = NULL;
            for (const char *x = p + tl; *x; x++)
                if (!strncmp(x, s, tl)) {
                    end = x + tl;
                    break;
                }
            p = end ? end : s + strlen(s);
            buf_append(&b, s, (size_t)(p - s));
        } else if (*p == '?' && isdigit((unsigned char)p[1])) {
            char *endp;
            long n = strtol(p + 1, &endp, 10);
            if (n < 1 || n > DB_MAX_PARAMS) {
                buf_release(&b);
                return NULL;
            }
            buf_printf(&b, "$%ld", n);
            if (n > max)
                max = (int)n;
            p = endp;
        } else {
            buf_append(&b, p, 1);
            p++;
        }
    }
    *maxp = max;
    return buf_detach(&b, NULL);
}

int db__pg_prepare(struct db_stmt *s, struct err *e)
{
    int max = 0;
    char *sql = rewrite(s->sql, &max);
    if (!sql) {
        log_error("db", "bad parameter number in: %.200s", s->sql);
        return err_set(e, ERR_INTERNAL, "database: bad parameter number in a statement");
    }
    struct pg_stmt *ps = xcalloc(1, sizeof *ps);
    ps->sql = sql;
    ps->nparams = max;
    s->aux = ps;
    s->h = NULL;
    s->row = -1;
    s->nrows = 0;
    return 0;
}

static void clear_decoded(struct pg_stmt *ps)
{
    for (int i = 0; i < ps->ncols; i++)
        PQfreemem(ps->decoded[i]);
    free(ps->decoded);
    free(ps->decoded_len);
    ps->decoded = NULL;
    ps->decoded_len = NULL;
    ps->ncols = 0;
}

static void clear_result(struct db_stmt *s)
{
    struct pg_stmt *ps = s->aux;
    clear_decoded(ps);
    PQclear(s->h);
    s->h = NULL;
    s->row = -1;
    s->nrows = 0;
}

/* The cached statement of key, or NULL. */
static struct pg_cached *cache_find(struct pg_conn *pc, const char *key, size_t keylen)
{
    for (int i = 0; i < pc->n; i++)
        if (pc->c[i].keylen == keylen && !memcmp(pc->c[i].key, key, keylen)) {
            pc->c[i].used = ++pc->clock;
            return &pc->c[i];
        }
    return NULL;
}

static void cache_forget(struct pg_conn *pc, struct pg_cached *x)
{
    free(x->key);
    *x = pc->c[--pc->n];
}

/* Prepare sql with types[0..n) on c and remember it under key.  The
 * least recently used one goes when the cache is full.  NULL when the
 * server refused, with its error result in *err_res (the caller's to
 * clear). */
static struct pg_cached *cache_add(struct db_conn *c, const char *key, size_t keylen, const char *sql, int n,
                                   const Oid *types, PGresult **err_res)
{
    struct pg_conn *pc = c->aux;
    struct pg_cached *x;
    if (pc->n == PG_CACHE) {
        int lru = 0;
        for (int i = 1; i < pc->n; i++)
            if (pc->c[i].used < pc->c[lru].used)
                lru = i;
        char *sql_d = xasprintf("DEALLOCATE %s", pc->c[lru].name);
        PQclear(PQexec(c->h, sql_d)); /* a failure leaves a name unused: harmless */
        free(sql_d);
        cache_forget(pc, &pc->c[lru]);
    }
    char name[24];
    snprintf(name, sizeof name, "vb%llu", (unsigned long long)++pc->next_name);
    PGresult *res = PQprepare(c->h, name, sql, n, types);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        *err_res = res;
        return NULL;
    }
    PQclear(res);
    x = &pc->c[pc->n++];
    x->key = xmalloc(keylen);
    memcpy(x->key, key, keylen);
    x->keylen = keylen;
    snprintf(x->name, sizeof x->name, "%s", name);
    x->used = ++pc->clock;
    return x;
}

static int run(struct db_stmt *s, struct err *e)
{
    struct pg_stmt *ps = s->aux;
    /* The parameters the text uses: one bound beyond them is ignored, as
     * SQLite ignores it (PostgreSQL would refuse the extra ones). */
    int n = ps->nparams;
    Oid types[DB_MAX_PARAMS];
    const char *values[DB_MAX_PARAMS];
    int lengths[DB_MAX_PARAMS];
    int formats[DB_MAX_PARAMS];
    char nums[DB_MAX_PARAMS][32];

    for (int i = 0; i < n; i++) {
        const struct db_param *p = &s->p[i];
        types[i] = 0;
        values[i] = NULL;
        lengths[i] = 0;
        formats[i] = 0;
        switch (p->type) {
        case DBP_NULL:
            break;
        case DBP_INT:
            types[i] = OID_INT8;
            snprintf(nums[i], sizeof nums[i], "%lld", (long long)p->i);
            values[i] = nums[i];
            break;
        case DBP_DOUBLE:
            types[i] = OID_FLOAT8;
            if (isnan(p->d))
                snprintf(nums[i], sizeof nums[i], "NaN");
            else if (isinf(p->d))
                snprintf(nums[i], sizeof nums[i], "%sInfinity", p->d < 0 ? "-" : "");
            else
                snprintf(nums[i], sizeof nums[i], "%.17g", p->d);
            values[i] = nums[i];
            break;
        case DBP_TEXT:
            /* The server refuses text that is not UTF-8 (SQLSTATE 22021,
             * and inside a transaction that aborts it): refused here,
             * without a round trip, as the caller's bad input. */
            if (!utf8_valid(p->s)) {
                log_warn("db", "text parameter %d is not valid UTF-8: %.200s", i + 1, s->sql);
                return err_set(e, ERR_INVALID, "a text value that is not valid UTF-8 cannot be stored or looked up");
            }
            types[i] = OID_TEXT;
            values[i] = p->s; /* NUL-terminated copy (a NUL inside ends it, as in SQLite's text) */
            break;
        case DBP_BLOB:
            types[i] = OID_BYTEA;
            values[i] = p->s;
            lengths[i] = (int)p->len;
            formats[i] = 1;
            break;
        }
    }
    /* The cache key: the text and the parameters' types.  Inside a
     * transaction that an error aborted nothing can be prepared: run it
     * as it is (it fails with the server's reason). */
    struct pg_conn *pc = s->c->aux;
    size_t sl = strlen(ps->sql);
    char *key = xmalloc(sl + 1 + (size_t)n + 1);
    memcpy(key, ps->sql, sl + 1);
    for (int i = 0; i < n; i++)
        key[sl + 1 + i] = "NIDTB"[s->p[i].type];
    size_t keylen = sl + 1 + (size_t)n;
    bool aborted = PQtransactionStatus(s->c->h) == PQTRANS_INERROR;
    PGresult *res = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct pg_cached *x = aborted ? NULL : cache_find(pc, key, keylen);
        if (!x && !aborted) {
            x = cache_add(s->c, key, keylen, ps->sql, n, types, &res);
            if (!x)
                break; /* the server's reason (syntax, types, connection) */
        }
        if (x)
            res = PQexecPrepared(s->c->h, x->name, n, values, lengths, formats, 0);
        else
            res = PQexecParams(s->c->h, ps->sql, n, types, values, lengths, formats, 0);
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (x && state && (!strcmp(state, "0A000") || !strcmp(state, "26000"))) {
            /* stale after a schema change, or gone: forget it */
            cache_forget(pc, x);
            if (!s->c->in_tx && attempt == 0) {
                PQclear(res);
                res = NULL;
                continue;
            }
            PQclear(res);
            free(key);
            return err_set(e, ERR_AGAIN, "database: the schema changed under a prepared statement; run again");
        }
        break;
    }
    free(key);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        int rc = fail(s->c, res, s->sql, e);
        PQclear(res);
        return rc;
    }
    set_changes(s->c, res);
    s->h = res;
    s->nrows = st == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    s->row = -1;
    ps->ncols = PQnfields(res);
    ps->decoded = xcalloc((size_t)ps->ncols + 1, sizeof *ps->decoded);
    ps->decoded_len = xcalloc((size_t)ps->ncols + 1, sizeof *ps->decoded_len);
    return 0;
}

int db__pg_step(struct db_stmt *s, struct err *e)
{
    if (!s->started) {
        int rc = run(s, e);
        if (rc < 0)
            return rc;
    }
    struct pg_stmt *ps = s->aux;
    for (int i = 0; i < ps->ncols; i++) { /* the previous row's decoded blobs */
        PQfreemem(ps->decoded[i]);
        ps->decoded[i] = NULL;
    }
    if (s->row + 1 < s->nrows) {
        s->row++;
        return DB_ROW;
    }
    s->row = s->nrows;
    return DB_DONE;
}

void db__pg_reset(struct db_stmt *s)
{
    clear_result(s);
}

void db__pg_finalize(struct db_stmt *s)
{
    struct pg_stmt *ps = s->aux;
    if (!ps)
        return;
    clear_result(s);
    free(ps->sql);
    free(ps);
    s->aux = NULL;
}

/* ---- columns ------------------------------------------------------------- */

static bool on_row(struct db_stmt *s, int col)
{
    return s->h && s->row >= 0 && s->row < s->nrows && col >= 0 && col < PQnfields(s->h);
}

bool db__pg_col_null(struct db_stmt *s, int col)
{
    return !on_row(s, col) || PQgetisnull(s->h, s->row, col);
}

int64_t db__pg_col_int64(struct db_stmt *s, int col)
{
    if (db__pg_col_null(s, col))
        return 0;
    const char *v = PQgetvalue(s->h, s->row, col);
    if (v[0] == 't' && !v[1]) /* boolean */
        return 1;
    if (v[0] == 'f' && !v[1])
        return 0;
    if (strpbrk(v, ".eE")) /* a numeric or float column read as an integer */
        return (int64_t)strtod(v, NULL);
    return strtoll(v, NULL, 10);
}

double db__pg_col_double(struct db_stmt *s, int col)
{
    if (db__pg_col_null(s, col))
        return 0.0;
    const char *v = PQgetvalue(s->h, s->row, col);
    if (v[0] == 't' && !v[1])
        return 1.0;
    return strtod(v, NULL);
}

const char *db__pg_col_text(struct db_stmt *s, int col)
{
    if (db__pg_col_null(s, col))
        return NULL;
    return PQgetvalue(s->h, s->row, col);
}

const void *db__pg_col_blob(struct db_stmt *s, int col, size_t *len)
{
    struct pg_stmt *ps = s->aux;
    *len = 0;
    if (db__pg_col_null(s, col))
        return NULL;
    if (PQftype(s->h, col) != OID_BYTEA) {
        *len = (size_t)PQgetlength(s->h, s->row, col);
        return PQgetvalue(s->h, s->row, col);
    }
    if (!ps->decoded[col]) {
        size_t n = 0;
        ps->decoded[col] = PQunescapeBytea((const unsigned char *)PQgetvalue(s->h, s->row, col), &n);
        if (!ps->decoded[col]) {
            log_error("db", "out of memory decoding a bytea column");
            abort(); /* as xmalloc does */
        }
        ps->decoded_len[col] = n;
    }
    *len = ps->decoded_len[col];
    return ps->decoded[col];
}

int db__pg_col_count(struct db_stmt *s)
{
    return s->h ? PQnfields(s->h) : 0;
}

/* ---- LISTEN / NOTIFY --------------------------------------------------------- */

/* A listener owns a connection of its own, outside the pool (a pooled
 * connection is lent to other threads between statements and would lose
 * its LISTEN), and a pipe that db_listen_wake writes to. */
struct db_listener {
    struct db *d;
    char *channel;
    struct db_conn c;   /* c.h NULL while disconnected */
    int wake[2];        /* self-pipe: [0] polled, [1] written by db_listen_wake */
    int64_t retry_ms;   /* monotonic ms before which no reconnect is tried */
    int64_t backoff_ms; /* last reconnect delay (250 ms doubling to 5 s) */
};

static bool channel_ok(const char *ch)
{
    if (!ch || !*ch || strlen(ch) > 63)
        return false;
    for (const char *p = ch; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

static void listener_drop(struct db_listener *l)
{
    if (l->c.h)
        db__pg_disconnect(&l->c);
    l->c.h = NULL;
}

/* Connect and LISTEN (notifications sent before this are not seen). */
static int listener_connect(struct db_listener *l, struct err *e)
{
    memset(&l->c, 0, sizeof l->c);
    l->c.d = l->d;
    l->c.kind = DB_POSTGRES;
    int rc = db__pg_connect(l->d, &l->c, e);
    if (rc < 0) {
        l->c.h = NULL;
        return rc;
    }
    char *sql = xasprintf("LISTEN %s", l->channel);
    rc = db__pg_exec(&l->c, sql, e);
    free(sql);
    if (rc < 0)
        listener_drop(l);
    return rc;
}

int db__pg_listen(struct db *d, const char *channel, struct db_listener **out, struct err *e)
{
    if (!channel_ok(channel))
        return err_set(e, ERR_INVALID, "bad notification channel name");
    struct db_listener *l = xcalloc(1, sizeof *l);
    l->d = d;
    l->channel = xstrdup(channel);
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        int rc = err_set(e, -errno, "cannot make a pipe: %s", strerror(errno));
        free(l->channel);
        free(l);
        return rc;
    }
    int rc = listener_connect(l, e);
    if (rc < 0) {
        db__pg_listen_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

static void drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

/* Read what the server sent; the number of notifications on our channel
 * (>= 0), or ERR_UNAVAILABLE when the connection is gone. */
static int consume(struct db_listener *l)
{
    PGconn *h = l->c.h;
    if (!PQconsumeInput(h) || PQstatus(h) != CONNECTION_OK)
        return ERR_UNAVAILABLE;
    int n = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(h)) != NULL) {
        if (nt->relname && !strcmp(nt->relname, l->channel))
            n++;
        PQfreemem(nt);
    }
    return n;
}

int db__pg_listen_wait(struct db_listener *l, int64_t timeout_ms, struct err *e)
{
    int64_t end = time_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int64_t now = time_mono_ms();
        if (!l->c.h && now >= l->retry_ms) {
            /* a new connection may have missed notifications: the caller
             * looks for work once it is back (return 1) */
            if (listener_connect(l, e) == 0) {
                l->backoff_ms = 0;
                return 1;
            }
            l->backoff_ms = l->backoff_ms ? MIN(l->backoff_ms * 2, 5000) : 250;
            l->retry_ms = now + l->backoff_ms;
        }
        int64_t left = end - now;
        if (!l->c.h && l->retry_ms - now < left)
            left = MAX(l->retry_ms - now, 0);
        if (left <= 0 && now >= end)
            return 0;
        struct pollfd p[2] = {{.fd = l->wake[0], .events = POLLIN}, {.fd = -1, .events = POLLIN}};
        if (l->c.h)
            p[1].fd = PQsocket(l->c.h);
        int r = poll(p, 2, (int)MIN(left, 60000));
        if (r < 0 && errno != EINTR)
            return err_set(e, -errno, "poll: %s", strerror(errno));
        if (r > 0 && (p[0].revents & POLLIN)) {
            drain_pipe(l->wake[0]);
            return 0;
        }
        if (r > 0 && l->c.h && p[1].revents) {
            int n = consume(l);
            if (n < 0) {
                listener_drop(l);
                l->retry_ms = time_mono_ms();
                return err_set(e, ERR_UNAVAILABLE, "the notification connection to '%s' was lost",
                               l->d->display);
            }
            if (n > 0)
                return 1;
        }
    }
}

void db__pg_listen_wake(struct db_listener *l)
{
    ssize_t w = write(l->wake[1], "x", 1);
    (void)w;
}

void db__pg_listen_close(struct db_listener *l)
{
    if (!l)
        return;
    listener_drop(l);
    close(l->wake[0]);
    close(l->wake[1]);
    free(l->channel);
    free(l);
}
