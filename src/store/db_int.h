/*
 * db_int.h — inside the SQL layer: the pool, connection and statement
 * structures shared by db.c (pool, parameters, dispatch, migrations) and the
 * two backends, db_sqlite.c and db_pg.c.  Nothing outside those files
 * includes it.
 *
 * Parameters are kept in the statement (struct db_param) by db.c for both
 * backends: SQLite binds them at the first db_step, PostgreSQL sends them
 * with the query.  Each backend provides the functions declared below; db.c
 * calls the ones of the connection's kind.
 */
#ifndef VBATCH_STORE_DB_INT_H
#define VBATCH_STORE_DB_INT_H

#include <pthread.h>

#include "store/db.h"

#define DB_MAX_PARAMS 64

enum db_ptype { DBP_NULL = 0, DBP_INT, DBP_DOUBLE, DBP_TEXT, DBP_BLOB };

struct db_param {
    enum db_ptype type;
    int64_t i;
    double d;
    char *s;    /* DBP_TEXT (NUL-terminated) / DBP_BLOB: owned copy */
    size_t len; /* DBP_TEXT / DBP_BLOB */
};

struct db {
    enum db_kind kind;
    char *target;  /* as given (may hold a password: never print it) */
    char *display; /* target without the password */
    int max_conns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_conn **all;  /* max_conns slots: every open connection (NULL: free) */
    struct db_conn **idle; /* max_conns slots */
    int n_idle;
    int n_open; /* idle + borrowed */
    void *bk;   /* the backend's own, per database (SQLite: its checkpointer) */
};

struct db_conn {
    struct db *d;
    enum db_kind kind;
    bool in_tx;
    bool broken;     /* the server went away: closed instead of pooled */
    int64_t changes; /* rows changed by the last statement */
    void *h;         /* sqlite3 * or PGconn * */
    void *aux;       /* the backend's own (PostgreSQL: its statement cache) */
};

struct db_stmt {
    struct db_conn *c;
    char *sql; /* as given (common dialect) */
    struct db_param p[DB_MAX_PARAMS];
    int np;       /* highest parameter index bound */
    bool started; /* run by the first db_step since prepare/reset */
    bool done;
    void *h;     /* sqlite3_stmt * or PGresult * */
    int row;     /* PostgreSQL: current row of the result */
    int nrows;   /* PostgreSQL: rows in the result */
    void *aux;   /* backend's own (e.g. the rewritten SQL text) */
};

/* ---- SQLite backend (db_sqlite.c) ---- */
/* Per database: start (before the first connection) and stop (after the
 * last one is closed) the background WAL checkpointer.  db__sqlite_open
 * never fails: without its thread the connections checkpoint as SQLite
 * does by default. */
void db__sqlite_open(struct db *d);
void db__sqlite_close(struct db *d);
int db__sqlite_connect(struct db *d, struct db_conn *c, struct err *e);
void db__sqlite_disconnect(struct db_conn *c);
int db__sqlite_exec(struct db_conn *c, const char *sql, struct err *e);
int db__sqlite_begin(struct db_conn *c, struct err *e);
bool db__sqlite_in_tx(const struct db_conn *c);
/* c goes back to the pool: warn when one of its statements still runs
 * (cached ones are reset when finalized, so none of them). */
void db__sqlite_idle(struct db_conn *c);
int db__sqlite_prepare(struct db_stmt *s, struct err *e);
int db__sqlite_step(struct db_stmt *s, struct err *e);
void db__sqlite_reset(struct db_stmt *s);
void db__sqlite_finalize(struct db_stmt *s);
bool db__sqlite_col_null(struct db_stmt *s, int col);
int64_t db__sqlite_col_int64(struct db_stmt *s, int col);
double db__sqlite_col_double(struct db_stmt *s, int col);
const char *db__sqlite_col_text(struct db_stmt *s, int col);
const void *db__sqlite_col_blob(struct db_stmt *s, int col, size_t *len);
int db__sqlite_col_count(struct db_stmt *s);

/* ---- PostgreSQL backend (db_pg.c) ---- */
int db__pg_connect(struct db *d, struct db_conn *c, struct err *e);
void db__pg_disconnect(struct db_conn *c);
int db__pg_exec(struct db_conn *c, const char *sql, struct err *e);
int db__pg_begin(struct db_conn *c, struct err *e);
int db__pg_prepare(struct db_stmt *s, struct err *e);
int db__pg_step(struct db_stmt *s, struct err *e);
void db__pg_reset(struct db_stmt *s);
void db__pg_finalize(struct db_stmt *s);
bool db__pg_col_null(struct db_stmt *s, int col);
int64_t db__pg_col_int64(struct db_stmt *s, int col);
double db__pg_col_double(struct db_stmt *s, int col);
const char *db__pg_col_text(struct db_stmt *s, int col);
const void *db__pg_col_blob(struct db_stmt *s, int col, size_t *len);
int db__pg_col_count(struct db_stmt *s);
/* Whether an idle connection is still usable: false when the server has
 * closed it (restart, failover, idle timeout) — db_acquire then opens a
 * new one instead of handing out a dead one.  Never blocks. */
bool db__pg_alive(struct db_conn *c);
/* LISTEN/NOTIFY (db.h's db_listen*, PostgreSQL only). */
int db__pg_listen(struct db *d, const char *channel, struct db_listener **out, struct err *e);
int db__pg_listen_wait(struct db_listener *l, int64_t timeout_ms, struct err *e);
void db__pg_listen_wake(struct db_listener *l);
void db__pg_listen_close(struct db_listener *l);
/* The display form of a libpq URI / conninfo: the password replaced by
 * "***".  malloc'd. */
char *db__pg_display(const char *target);

#endif
