/*
 * db.c — the SQL layer's common part: the connection pool, statement
 * parameters, the dispatch to the connection's backend (db_sqlite.c,
 * db_pg.c), the db_run shorthand and schema migrations.
 *
 * Pool: connections are opened lazily, at most max_conns at once; a caller
 * waits while all are borrowed.  A connection marked broken (its server
 * went away) is closed when given back instead of being pooled, so the
 * next db_acquire connects afresh; an idle PostgreSQL connection whose
 * server closed it meanwhile is noticed at db_acquire (db__pg_alive) and
 * replaced the same way.
 */
#include "store/db_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define DB_DEFAULT_CONNS 8

static bool is_pg_target(const char *t)
{
    return !strncmp(t, "postgres://", 11) || !strncmp(t, "postgresql://", 13);
}

/* ---- dispatch ------------------------------------------------------------ */

#define DISPATCH(kind, fn, ...) ((kind) == DB_SQLITE ? db__sqlite_##fn(__VA_ARGS__) : db__pg_##fn(__VA_ARGS__))

static int conn_connect(struct db *d, struct db_conn **out, struct err *e)
{
    struct db_conn *c = xcalloc(1, sizeof *c);
    c->d = d;
    c->kind = d->kind;
    int rc = DISPATCH(d->kind, connect, d, c, e);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void conn_free(struct db_conn *c)
{
    if (!c)
        return;
    if (c->kind == DB_SQLITE)
        db__sqlite_disconnect(c);
    else
        db__pg_disconnect(c);
    free(c);
}

/* ---- opening ------------------------------------------------------------- */

int db_open(const char *target, int max_conns, struct db **out, struct err *e)
{
    struct db *d;
    struct db_conn *c = NULL;
    int rc;

    *out = NULL;
    if (!target || !*target)
        return err_set(e, ERR_INVALID, "no database given");
    const char *scheme_end = strstr(target, "://");
    if (scheme_end && !is_pg_target(target))
        return err_set(e, ERR_INVALID,
                       "bad database URL: the scheme '%.*s' is none this vbatch knows (postgres://…,"
                       " postgresql://…, or the path of a SQLite file)",
                       (int)(scheme_end - target) + 3, target);
    d = xcalloc(1, sizeof *d);
    d->kind = is_pg_target(target) ? DB_POSTGRES : DB_SQLITE;
    d->target = xstrdup(target);
    d->display = d->kind == DB_POSTGRES ? db__pg_display(target) : xstrdup(target);
    d->max_conns = max_conns > 0 ? max_conns : DB_DEFAULT_CONNS;
    d->all = xcalloc((size_t)d->max_conns, sizeof *d->all);
    d->idle = xcalloc((size_t)d->max_conns, sizeof *d->idle);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    if (d->kind == DB_SQLITE)
        db__sqlite_open(d);
    /* One connection now: a bad target fails here, not at the first query. */
    rc = conn_connect(d, &c, e);
    if (rc < 0) {
        db_close(d);
        return rc;
    }
    d->all[0] = c;
    d->idle[d->n_idle++] = c;
    d->n_open = 1;
    *out = d;
    return 0;
}

void db_close(struct db *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    if (d->n_idle != d->n_open)
        log_warn("db", "closing with %d connection(s) still borrowed", d->n_open - d->n_idle);
    for (int i = 0; i < d->n_idle; i++)
        conn_free(d->idle[i]);
    d->n_idle = d->n_open = 0;
    pthread_mutex_unlock(&d->mu);
    if (d->kind == DB_SQLITE)
        db__sqlite_close(d);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->all);
    free(d->idle);
    free(d->target);
    free(d->display);
    free(d);
}

enum db_kind db_kind(const struct db *d)
{
    return d->kind;
}

const char *db_display_name(const struct db *d)
{
    return d->display;
}

/* ---- connections --------------------------------------------------------- */

static void all_put(struct db *d, struct db_conn *c)
{
    for (int i = 0; i < d->max_conns; i++)
        if (!d->all[i]) {
            d->all[i] = c;
            return;
        }
}

static void all_drop(struct db *d, struct db_conn *c)
{
    for (int i = 0; i < d->max_conns; i++)
        if (d->all[i] == c)
            d->all[i] = NULL;
}

struct db_conn *db_acquire(struct db *d, struct err *e)
{
    struct db_conn *c = NULL;

    pthread_mutex_lock(&d->mu);
    for (;;) {
        if (d->n_idle > 0) {
            c = d->idle[--d->n_idle];
            if (c->kind == DB_POSTGRES && !db__pg_alive(c)) {
                /* its server went away while it was idle: a new one */
                all_drop(d, c);
                d->n_open--;
                pthread_mutex_unlock(&d->mu);
                log_info("db", "dropping a closed idle connection to %s", d->display);
                conn_free(c);
                pthread_mutex_lock(&d->mu);
                c = NULL;
                continue;
            }
            break;
        }
        if (d->n_open < d->max_conns) {
            d->n_open++;
            pthread_mutex_unlock(&d->mu);
            int rc = conn_connect(d, &c, e);
            pthread_mutex_lock(&d->mu);
            if (rc < 0) {
                d->n_open--;
                pthread_cond_signal(&d->cv);
                c = NULL;
            } else {
                all_put(d, c);
            }
            break;
        }
        pthread_cond_wait(&d->cv, &d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return c;
}

void db_release(struct db *d, struct db_conn *c)
{
    if (!c)
        return;
    db_rollback(c); /* never pool an open transaction */
    pthread_mutex_lock(&d->mu);
    if (c->broken) {
        all_drop(d, c);
        d->n_open--;
        pthread_mutex_unlock(&d->mu);
        conn_free(c);
        pthread_mutex_lock(&d->mu);
    } else {
        if (c->kind == DB_SQLITE)
            db__sqlite_idle(c);
        d->idle[d->n_idle++] = c;
    }
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

enum db_kind db_conn_kind(const struct db_conn *c)
{
    return c->kind;
}

void *db_conn_native(struct db_conn *c)
{
    return c->h;
}

struct db_conn *db_conn_of_native(struct db *d, const void *h)
{
    struct db_conn *c = NULL;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->max_conns && !c; i++)
        if (d->all[i] && d->all[i]->h == h)
            c = d->all[i];
    pthread_mutex_unlock(&d->mu);
    return c;
}

/* ---- metrics ------------------------------------------------------------ */

/* Count a failed database call (vbatch_db_errors_total) by reason.  A
 * UNIQUE conflict (ERR_EXISTS) is an answer the callers ask for, not an
 * error of the database.  Returns rc. */
static int db_err(int rc)
{
    if (rc >= 0 || rc == ERR_EXISTS)
        return rc;
    metric_count(METRIC_DB_ERRORS, 1,
                 rc == ERR_AGAIN ? "busy" : rc == ERR_UNAVAILABLE ? "unavailable"
                 : err_is_nospace(rc) ? "full" : "error", NULL, NULL);
    return rc;
}

/* ---- transactions ------------------------------------------------------ */

int db_begin(struct db_conn *c, struct err *e)
{
    int rc = db_err(DISPATCH(c->kind, begin, c, e));
    if (rc == 0)
        c->in_tx = true;
    return rc;
}

int db_commit(struct db_conn *c, struct err *e)
{
    int rc = db_exec(c, "COMMIT", e);
    if (rc < 0)
        db_rollback(c);
    c->in_tx = false;
    return rc;
}

void db_rollback(struct db_conn *c)
{
    if (!db_in_tx(c))
        return;
    (void)db_exec(c, "ROLLBACK", NULL);
    c->in_tx = false;
}

bool db_in_tx(const struct db_conn *c)
{
    if (c->kind == DB_SQLITE)
        return db__sqlite_in_tx(c);
    return c->in_tx;
}

int db_exec(struct db_conn *c, const char *sql, struct err *e)
{
    return db_err(DISPATCH(c->kind, exec, c, sql, e));
}

/* ---- notifications --------------------------------------------------- */

int db_listen(struct db *d, const char *channel, struct db_listener **out, struct err *e)
{
    *out = NULL;
    if (d->kind != DB_POSTGRES)
        return err_set(e, ERR_UNSUPPORTED, "notifications need PostgreSQL");
    return db__pg_listen(d, channel, out, e);
}

int db_listen_wait(struct db_listener *l, int64_t timeout_ms, struct err *e)
{
    return db__pg_listen_wait(l, timeout_ms, e);
}

void db_listen_wake(struct db_listener *l)
{
    if (l)
        db__pg_listen_wake(l);
}

void db_listen_close(struct db_listener *l)
{
    db__pg_listen_close(l);
}

int db_notify(struct db_conn *c, const char *channel, struct err *e)
{
    if (c->kind != DB_POSTGRES)
        return 0;
    return db_run(c, e, "SELECT pg_notify(?1, '')", "t", channel);
}

int64_t db_changes(struct db_conn *c)
{
    return c->changes;
}

/* ---- statements -------------------------------------------------------- */

int db_prepare(struct db_conn *c, const char *sql, struct db_stmt **out, struct err *e)
{
    struct db_stmt *s = xcalloc(1, sizeof *s);
    s->c = c;
    s->sql = xstrdup(sql);
    int rc = db_err(DISPATCH(c->kind, prepare, s, e));
    if (rc < 0) {
        free(s->sql);
        free(s);
        *out = NULL;
        return rc;
    }
    *out = s;
    return 0;
}

static struct db_param *param(struct db_stmt *s, int i)
{
    if (i < 1 || i > DB_MAX_PARAMS) {
        log_error("db", "parameter ?%d out of range in: %.80s", i, s->sql);
        abort(); /* a bug in the SQL text's caller, never input */
    }
    struct db_param *p = &s->p[i - 1];
    free(p->s);
    memset(p, 0, sizeof *p);
    if (i > s->np)
        s->np = i;
    return p;
}

void db_bind_int64(struct db_stmt *s, int i, int64_t v)
{
    struct db_param *p = param(s, i);
    p->type = DBP_INT;
    p->i = v;
}

void db_bind_double(struct db_stmt *s, int i, double v)
{
    struct db_param *p = param(s, i);
    p->type = DBP_DOUBLE;
    p->d = v;
}

void db_bind_textn(struct db_stmt *s, int i, const char *text, size_t len)
{
    struct db_param *p = param(s, i);
    if (!text)
        return;
    p->type = DBP_TEXT;
    p->s = xstrndup(text, len);
    p->len = len;
}

void db_bind_text(struct db_stmt *s, int i, const char *text)
{
    db_bind_textn(s, i, text, text ? strlen(text) : 0);
}

void db_bind_blob(struct db_stmt *s, int i, const void *data, size_t len)
{
    struct db_param *p = param(s, i);
    p->type = DBP_BLOB;
    p->s = xmalloc(len ? len : 1);
    if (len)
        memcpy(p->s, data, len);
    p->len = len;
}

void db_bind_null(struct db_stmt *s, int i)
{
    (void)param(s, i);
}

int db_step(struct db_stmt *s, struct err *e)
{
    if (s->done)
        return DB_DONE;
    int rc = db_err(DISPATCH(s->c->kind, step, s, e));
    s->started = true;
    if (rc == DB_DONE)
        s->done = true;
    return rc;
}

void db_reset(struct db_stmt *s)
{
    if (!s)
        return;
    if (s->c->kind == DB_SQLITE)
        db__sqlite_reset(s);
    else
        db__pg_reset(s);
    s->started = s->done = false;
}

void db_finalize(struct db_stmt *s)
{
    if (!s)
        return;
    if (s->c->kind == DB_SQLITE)
        db__sqlite_finalize(s);
    else
        db__pg_finalize(s);
    for (int i = 0; i < s->np; i++)
        free(s->p[i].s);
    free(s->sql);
    free(s);
}

bool db_col_null(struct db_stmt *s, int col)
{
    return DISPATCH(s->c->kind, col_null, s, col);
}

int64_t db_col_int64(struct db_stmt *s, int col)
{
    return DISPATCH(s->c->kind, col_int64, s, col);
}

double db_col_double(struct db_stmt *s, int col)
{
    return DISPATCH(s->c->kind, col_double, s, col);
}

const char *db_col_text(struct db_stmt *s, int col)
{
    return DISPATCH(s->c->kind, col_text, s, col);
}

const void *db_col_blob(struct db_stmt *s, int col, size_t *len)
{
    return DISPATCH(s->c->kind, col_blob, s, col, len);
}

int db_col_count(struct db_stmt *s)
{
    return DISPATCH(s->c->kind, col_count, s);
}

/* ---- shorthands ---------------------------------------------------------- */

static void bind_va(struct db_stmt *s, const char *fmt, va_list ap)
{
    for (int i = 0; fmt && fmt[i]; i++) {
        switch (fmt[i]) {
        case 'i':
            db_bind_int64(s, i + 1, va_arg(ap, int64_t));
            break;
        case 'd':
            db_bind_double(s, i + 1, va_arg(ap, double));
            break;
        case 't':
            db_bind_text(s, i + 1, va_arg(ap, const char *));
            break;
        case 'n':
            db_bind_null(s, i + 1);
            break;
        default:
            log_error("db", "bad db_run format '%s'", fmt);
            abort(); /* a bug in the caller */
        }
    }
}

int db_run(struct db_conn *c, struct err *e, const char *sql, const char *fmt, ...)
{
    struct db_stmt *s = NULL;
    va_list ap;
    int rc = db_prepare(c, sql, &s, e);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    bind_va(s, fmt, ap);
    va_end(ap);
    while ((rc = db_step(s, e)) == DB_ROW)
        ;
    db_finalize(s);
    return rc < 0 ? rc : 0;
}

/* ---- schema ------------------------------------------------------------- */

/* On PostgreSQL, processes starting at once take turns: the first applies
 * the migrations, the others find them applied.  (SQLite's BEGIN IMMEDIATE
 * serialises writers already.) */
#define DB_MIGRATE_LOCK "SELECT pg_advisory_xact_lock(7306292)"

static int version_read(struct db_conn *c, const char *component, int64_t *version, struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_prepare(c, "SELECT version FROM schema_versions WHERE component=?1", &q, e);
    *version = 0;
    if (rc == 0) {
        db_bind_text(q, 1, component);
        rc = db_step(q, e);
        if (rc == DB_ROW)
            *version = db_col_int64(q, 0);
    }
    db_finalize(q);
    return rc < 0 ? rc : 0;
}

static int begin_locked(struct db_conn *c, struct err *e)
{
    int rc = db_begin(c, e);
    if (rc == 0 && c->kind == DB_POSTGRES)
        rc = db_run(c, e, DB_MIGRATE_LOCK, NULL);
    return rc;
}

int db_migrate(struct db *d, const char *component, const char *const *stmts, int n, struct err *e)
{
    struct db_conn *c = db_acquire(d, e);
    int64_t version = 0;
    int rc;

    if (!c)
        return e && e->code ? e->code : ERR_UNAVAILABLE;
    rc = begin_locked(c, e);
    if (rc == 0)
        rc = db_exec(c, "CREATE TABLE IF NOT EXISTS schema_versions ("
                        " component TEXT PRIMARY KEY, version INTEGER NOT NULL)", e);
    if (rc == 0)
        rc = version_read(c, component, &version, e);
    if (rc == 0)
        rc = db_commit(c, e);
    if (rc == 0 && version > n)
        rc = err_set(e, ERR_UNSUPPORTED,
                     "the schema of '%s' is at version %lld, newer than this vbatch knows (%d):"
                     " the database was migrated by a newer vbatch", component, (long long)version, n);
    for (int i = (int)version; rc == 0 && i < n; i++) {
        if ((rc = begin_locked(c, e)) < 0)
            break;
        rc = version_read(c, component, &version, e);
        if (rc == 0 && version > i) { /* another process got here first */
            db_rollback(c);
            continue;
        }
        if (rc == 0)
            rc = db_exec(c, stmts[i], e);
        if (rc == 0)
            rc = db_run(c, e,
                        "INSERT INTO schema_versions(component, version) VALUES(?1, ?2)"
                        " ON CONFLICT(component) DO UPDATE SET version=excluded.version",
                        "ti", component, (int64_t)(i + 1));
        if (rc == 0)
            rc = db_commit(c, e);
        if (rc < 0) {
            db_rollback(c);
            err_prefix(e, rc, "migration %s/%d", component, i + 1);
            break;
        }
        log_info("store", "migrated component=%s version=%d", component, i + 1);
    }
    db_rollback(c);
    db_release(d, c);
    return rc;
}
