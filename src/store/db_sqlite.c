/*
 * db_sqlite.c — the SQLite backend of the SQL layer (db.h).
 *
 * Each connection runs in WAL mode (readers never block the writer) with a
 * 5 s busy timeout, synchronous=NORMAL (durable across process crashes;
 * checkpoints are fsynced) and foreign keys on.  Write transactions start
 * with BEGIN IMMEDIATE so that lock upgrades never deadlock.  The common
 * dialect's ?N parameters are SQLite's own, so the text runs as written;
 * the parameters kept by db.c are bound at the first db_step.
 */
#include "store/db_int.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#define BUSY_TIMEOUT_MS 5000

/* The code of a failed SQLite call (the extended code's primary part). */
static int code_of(sqlite3 *h, int src)
{
    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ERR_AGAIN;
    case SQLITE_FULL:
        return ERR_NOSPACE;
    case SQLITE_CONSTRAINT: {
        /* Primary codes are kept on the connection (code not yet on this
         * layer compares them); the extended one tells unique keys apart. */
        int x = h ? sqlite3_extended_errcode(h) : src;
        return x == SQLITE_CONSTRAINT_UNIQUE || x == SQLITE_CONSTRAINT_PRIMARYKEY ? ERR_EXISTS : ERR_INTERNAL;
    }
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: {
        int en = h ? sqlite3_system_errno(h) : 0;
        return en == ENOSPC || en == EDQUOT ? ERR_NOSPACE : ERR_INTERNAL;
    }
    default:
        return ERR_INTERNAL;
    }
}

static int fail(struct db_conn *c, int src, const char *what, struct err *e)
{
    sqlite3 *h = c->h;
    int rc = code_of(h, src);
    const char *msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(src);
    if (rc == ERR_INTERNAL)
        log_error("db", "%s: %s", what, msg);
    if (rc == ERR_NOSPACE)
        return err_set(e, rc, "storage full: the database cannot grow (%s)", msg);
    if (rc == ERR_AGAIN)
        return err_set(e, rc, "database busy");
    return err_set(e, rc, "database: %s", msg);
}

int db__sqlite_connect(struct db *d, struct db_conn *c, struct err *e)
{
    sqlite3 *h = NULL;
    int src = sqlite3_open_v2(d->target, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                              NULL);
    if (src != SQLITE_OK) {
        int rc = err_set(e, code_of(h, src), "cannot open the database '%s': %s", d->display,
                         h ? sqlite3_errmsg(h) : sqlite3_errstr(src));
        sqlite3_close(h);
        return rc < 0 ? rc : ERR_INTERNAL;
    }
    sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS);
    c->h = h;
    /* Switching a new database file to WAL takes an exclusive lock that
     * SQLite does not wait for with the busy handler: processes opening a
     * new data folder at the same moment get SQLITE_BUSY here.  Wait for it
     * as the busy timeout would. */
    int rc = 0;
    for (int waited = 0;; waited += 10) {
        rc = db__sqlite_exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", e);
        if (rc != ERR_AGAIN || waited >= BUSY_TIMEOUT_MS)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
    }
    if (rc < 0) {
        sqlite3_close(h);
        c->h = NULL;
    }
    return rc;
}

void db__sqlite_disconnect(struct db_conn *c)
{
    sqlite3_close(c->h);
    c->h = NULL;
}

int db__sqlite_exec(struct db_conn *c, const char *sql, struct err *e)
{
    int src = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return fail(c, src, "exec", e);
    c->changes = sqlite3_changes64(c->h);
    return 0;
}

int db__sqlite_begin(struct db_conn *c, struct err *e)
{
    int src = sqlite3_exec(c->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src == SQLITE_OK)
        return 0;
    if (code_of(c->h, src) == ERR_AGAIN)
        log_warn("db", "database busy: write transaction not started");
    return fail(c, src, "BEGIN", e);
}

bool db__sqlite_in_tx(const struct db_conn *c)
{
    return c->h && !sqlite3_get_autocommit(c->h);
}

int db__sqlite_prepare(struct db_stmt *s, struct err *e)
{
    sqlite3_stmt *q = NULL;
    int src = sqlite3_prepare_v2(s->c->h, s->sql, -1, &q, NULL);
    if (src != SQLITE_OK) {
        log_error("db", "cannot prepare: %s: %.200s", sqlite3_errmsg(s->c->h), s->sql);
        return fail(s->c, src, "prepare", e);
    }
    s->h = q;
    return 0;
}

static void bind_all(struct db_stmt *s)
{
    sqlite3_stmt *q = s->h;
    sqlite3_clear_bindings(q);
    for (int i = 0; i < s->np; i++) {
        const struct db_param *p = &s->p[i];
        switch (p->type) {
        case DBP_INT:
            sqlite3_bind_int64(q, i + 1, p->i);
            break;
        case DBP_DOUBLE:
            sqlite3_bind_double(q, i + 1, p->d);
            break;
        case DBP_TEXT:
            sqlite3_bind_text(q, i + 1, p->s, (int)p->len, SQLITE_STATIC);
            break;
        case DBP_BLOB:
            sqlite3_bind_blob(q, i + 1, p->s, (int)p->len, SQLITE_STATIC);
            break;
        case DBP_NULL:
            sqlite3_bind_null(q, i + 1);
            break;
        }
    }
}

int db__sqlite_step(struct db_stmt *s, struct err *e)
{
    if (!s->started)
        bind_all(s);
    int src = sqlite3_step(s->h);
    if (src == SQLITE_ROW)
        return DB_ROW;
    if (src == SQLITE_DONE) {
        s->c->changes = sqlite3_changes64(s->c->h);
        return DB_DONE;
    }
    return fail(s->c, src, "step", e);
}

void db__sqlite_reset(struct db_stmt *s)
{
    sqlite3_reset(s->h);
}

void db__sqlite_finalize(struct db_stmt *s)
{
    sqlite3_finalize(s->h);
    s->h = NULL;
}

bool db__sqlite_col_null(struct db_stmt *s, int col)
{
    return sqlite3_column_type(s->h, col) == SQLITE_NULL;
}

int64_t db__sqlite_col_int64(struct db_stmt *s, int col)
{
    return sqlite3_column_int64(s->h, col);
}

double db__sqlite_col_double(struct db_stmt *s, int col)
{
    return sqlite3_column_double(s->h, col);
}

const char *db__sqlite_col_text(struct db_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(s->h, col);
}

const void *db__sqlite_col_blob(struct db_stmt *s, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(s->h, col);
    *len = (size_t)sqlite3_column_bytes(s->h, col);
    return p;
}

int db__sqlite_col_count(struct db_stmt *s)
{
    return sqlite3_column_count(s->h);
}
