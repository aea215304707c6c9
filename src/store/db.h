/*
 * db.h — the SQL layer under store/: one pool of connections to one
 * database, with two backends behind the same calls — SQLite (the embedded
 * default, DATA/vbatch.db in WAL mode) and PostgreSQL (libpq).
 *
 * Only files under src/store/ include this header: they are the owners of
 * the tables and the only code that writes SQL text.  Everything above
 * store/ calls their typed functions (store.h and the headers beside it).
 *
 * The common dialect.  A statement's text is written once for both
 * backends:
 *   - parameters are numbered: ?1, ?2, ... (the PostgreSQL backend rewrites
 *     them to $1, $2, ... outside string literals); a number may repeat;
 *   - the SQL both speak: INSERT ... RETURNING, ON CONFLICT ... DO
 *     NOTHING/UPDATE, COALESCE, CASE, EXISTS, substr, length, ||, LIMIT;
 *     booleans are integers 0/1, times are int64 milliseconds;
 *   - what differs is chosen with db_kind(): row locks (FOR UPDATE SKIP
 *     LOCKED is PostgreSQL's; SQLite's writer lock makes it needless),
 *     scalar MIN/MAX of two values (LEAST/GREATEST), and the schema (each
 *     backend has its own migration list: types, identity columns).
 * A bound parameter has the type of its db_bind_* call (int8, float8,
 * text, bytea on PostgreSQL), so "?1 || '-'" or "length(?2)" need no casts.
 * A NULL (db_bind_null, 't' with NULL) is sent untyped: PostgreSQL takes
 * its type from the context (a column it is compared with or stored in);
 * where nothing gives one ("?3 IS NULL" alone) write CAST(?3 AS TEXT).
 * On PostgreSQL an error inside a transaction aborts it: do not catch an
 * error (e.g. ERR_EXISTS) and go on in the same transaction; write
 * ON CONFLICT instead.
 *
 * Errors follow base.h: 0 or a negative code, with the reason in the
 * caller's struct err.  The codes the backends produce:
 *   ERR_EXISTS       a unique or primary-key constraint refused a row
 *   ERR_AGAIN        transient: SQLite busy, PostgreSQL serialization
 *                    failure or deadlock — run the transaction again
 *   ERR_INVALID      PostgreSQL: a text parameter is not valid UTF-8 (the
 *                    server would refuse it; SQLite stores any bytes) —
 *                    input from outside is checked before it gets here
 *                    (http/ refuses a query value that is not UTF-8)
 *   ERR_NOSPACE      the database's disk is full (SQLITE_FULL, SQLSTATE 53100)
 *   ERR_UNAVAILABLE  the server cannot be reached (PostgreSQL connection
 *                    lost; the pool reconnects on the next db_acquire)
 *   ERR_INTERNAL     anything else (a bug in the SQL, a library failure)
 *
 * Threads: a struct db may be used from any thread.  A connection from
 * db_acquire belongs to the calling thread until db_release; its
 * statements live no longer than that.
 */
#ifndef VBATCH_STORE_DB_H
#define VBATCH_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

struct db;      /* a pool of connections to one database */
struct db_conn; /* one connection, borrowed from the pool */
struct db_stmt; /* one statement being run on a connection */

enum db_kind { DB_SQLITE = 1, DB_POSTGRES = 2 };

/* ---- opening ------------------------------------------------------------- */

/* Open the database named by 'target':
 *   "postgres://user:pass@host:port/dbname?..." or "postgresql://..."
 *       (any libpq connection URI; "host=/path" selects a Unix socket);
 *   anything else is the path of a SQLite file (created if missing).
 * At most 'max_conns' connections are open at once (0: 8).  A PostgreSQL
 * server is contacted here, so a bad URL, an unreachable server or a wrong
 * password fail now, with the reason in *e (the password never appears in
 * it).  The caller frees *out with db_close(). */
int db_open(const char *target, int max_conns, struct db **out, struct err *e);
/* Close every connection; all borrowed ones must have been given back. */
void db_close(struct db *d);
enum db_kind db_kind(const struct db *d);
/* The target without its password, for log lines and messages. */
const char *db_display_name(const struct db *d);

/* ---- connections and transactions ---------------------------------------- */

/* Borrow a connection (blocks while all are in use).  NULL only when a
 * PostgreSQL server cannot be reached (ERR_UNAVAILABLE in *e). */
struct db_conn *db_acquire(struct db *d, struct err *e);
/* Give it back (NULL ok).  A connection returned inside a transaction is
 * rolled back first. */
void db_release(struct db *d, struct db_conn *c);
enum db_kind db_conn_kind(const struct db_conn *c);

/* Start a write transaction (SQLite: BEGIN IMMEDIATE, waiting up to the
 * busy timeout for the writer lock; PostgreSQL: BEGIN, READ COMMITTED).
 * ERR_AGAIN when the lock could not be had. */
int db_begin(struct db_conn *c, struct err *e);
int db_commit(struct db_conn *c, struct err *e);
/* Never fails visibly; a no-op outside a transaction. */
void db_rollback(struct db_conn *c);
bool db_in_tx(const struct db_conn *c);

/* Run SQL text without parameters and without rows (may hold several
 * statements separated by ';'). */
int db_exec(struct db_conn *c, const char *sql, struct err *e);

/* ---- statements ------------------------------------------------------------ */

/* Prepare sql (the common dialect above) on c.  Bind with db_bind_*
 * (index i is the parameter number, 1-based), then db_step until it
 * returns DB_DONE.  db_reset makes it runnable again with new bindings;
 * db_finalize frees it (NULL ok). */
int db_prepare(struct db_conn *c, const char *sql, struct db_stmt **out, struct err *e);
void db_bind_int64(struct db_stmt *s, int i, int64_t v);
void db_bind_double(struct db_stmt *s, int i, double v);
/* text is copied; NULL binds SQL NULL. */
void db_bind_text(struct db_stmt *s, int i, const char *text);
void db_bind_textn(struct db_stmt *s, int i, const char *text, size_t len);
void db_bind_blob(struct db_stmt *s, int i, const void *data, size_t len);
void db_bind_null(struct db_stmt *s, int i);

#define DB_ROW 1
#define DB_DONE 0
/* Run the statement (first call) and move to the next row: DB_ROW, DB_DONE
 * or a negative code. */
int db_step(struct db_stmt *s, struct err *e);
void db_reset(struct db_stmt *s);
void db_finalize(struct db_stmt *s);

/* Columns of the current row, 0-based.  Text and blob pointers stay valid
 * until the next db_step/db_reset/db_finalize of s.  A NULL reads as 0,
 * 0.0 or NULL. */
bool db_col_null(struct db_stmt *s, int col);
int64_t db_col_int64(struct db_stmt *s, int col);
double db_col_double(struct db_stmt *s, int col);
const char *db_col_text(struct db_stmt *s, int col);
const void *db_col_blob(struct db_stmt *s, int col, size_t *len);
int db_col_count(struct db_stmt *s);

/* Rows inserted, updated or deleted by the last statement run on c. */
int64_t db_changes(struct db_conn *c);

/* ---- shorthands ---------------------------------------------------------- */

/* One statement, no rows wanted: prepare, bind with a format, step, finalize.
 * fmt has one letter per parameter: 'i' int64_t, 'd' double, 't' const
 * char * (NULL: SQL NULL), 'n' NULL (no argument).  e.g.
 *   db_run(c, e, "UPDATE t SET a=?1 WHERE id=?2", "ti", a, id)  */
int db_run(struct db_conn *c, struct err *e, const char *sql, const char *fmt, ...);

/* ---- notifications (PostgreSQL LISTEN/NOTIFY) ------------------------------ */

/* Channels are [a-z0-9_]{1,63}. */
struct db_listener;
/* Listen on 'channel' on a dedicated connection of its own (not one of
 * the pool's).  ERR_UNSUPPORTED on SQLite (one process at a time writes:
 * callers keep their in-process wake-ups); ERR_UNAVAILABLE when the server
 * cannot be reached now.  Close with db_listen_close. */
int db_listen(struct db *d, const char *channel, struct db_listener **out, struct err *e);
/* Wait up to timeout_ms: 1 when a notification on the channel arrived
 * (all pending ones are consumed) or the connection was made again after
 * a loss (notifications may have been missed: look for work), 0 on
 * timeout or db_listen_wake, ERR_UNAVAILABLE when the connection was lost
 * (the next calls reconnect, backing off 250 ms doubling to 5 s). */
int db_listen_wait(struct db_listener *l, int64_t timeout_ms, struct err *e);
/* Make a db_listen_wait in another thread return 0 now (async-signal and
 * thread safe). */
void db_listen_wake(struct db_listener *l);
void db_listen_close(struct db_listener *l); /* NULL ok */
/* Notify 'channel' when c's transaction commits (outside one: at once);
 * a no-op on SQLite.  PostgreSQL folds several identical notifications of
 * one transaction into one. */
int db_notify(struct db_conn *c, const char *channel, struct err *e);

/* ---- the way across (until every statement is on this layer) ------------- */

/* The backend's own handle of c (a sqlite3 * or a PGconn *), for code not
 * yet moved onto this layer that must join c's transaction. */
void *db_conn_native(struct db_conn *c);
/* The pooled connection whose native handle is h (NULL if none). */
struct db_conn *db_conn_of_native(struct db *d, const void *h);

/* ---- schema ------------------------------------------------------------- */

/* Apply the migrations of 'component' above its recorded version, each in
 * its own transaction with the version bump (table schema_versions).  The
 * list for the open backend is chosen by the caller (db_kind).  A database
 * whose recorded version is above n was migrated by a newer vbatch:
 * ERR_UNSUPPORTED with a message saying so. */
int db_migrate(struct db *d, const char *component, const char *const *stmts, int n, struct err *e);

#endif
