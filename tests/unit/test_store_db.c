/* Unit tests of the SQL layer (src/store/db.h): statements, parameters,
 * NULLs, changes, constraint codes, transactions, the pool, migrations.
 *
 * Every test runs on SQLite; with VBATCH_TEST_PG set to a libpq URI it
 * runs on that PostgreSQL database too (scripts/test.sh sets it when
 * it started a throwaway cluster). */
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/base.h"
#include "store/db.h"
#include "t.h"

static char *tmp_sqlite(void)
{
    char *d = strdup("/tmp/vbatch-db-XXXXXX");
    if (!mkdtemp(d))
        abort();
    char *p = xasprintf("%s/t.db", d);
    free(d);
    return p;
}

/* The targets a test runs on: SQLite always, PostgreSQL when given. */
static int targets(char *out[2])
{
    int n = 0;
    out[n++] = tmp_sqlite();
    const char *pg = getenv("VBATCH_TEST_PG");
    if (pg && *pg)
        out[n++] = xstrdup(pg);
    return n;
}

static struct db *open_db(const char *target, int conns)
{
    struct db *d = NULL;
    struct err e = ERR_INIT;
    if (db_open(target, conns, &d, &e) < 0)
        T_FAIL("db_open(%s): %s", target, e.msg);
    /* PostgreSQL databases are shared between runs: start clean. */
    struct db_conn *c = db_acquire(d, &e);
    if (!c)
        T_FAIL("db_acquire: %s", e.msg);
    if (db_exec(c, "DROP TABLE IF EXISTS t_items; DROP TABLE IF EXISTS t_mig;"
                   " CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);"
                   " DELETE FROM schema_versions WHERE component LIKE 'test-%'",
                &e) < 0)
        T_FAIL("cleaning up: %s", e.msg);
    db_release(d, c);
    return d;
}

TEST(statements_params_nulls_changes)
{
    char *tg[2];
    int nt = targets(tg);
    for (int k = 0; k < nt; k++) {
        struct db *d = open_db(tg[k], 4);
        struct err e = ERR_INIT;
        struct db_conn *c = db_acquire(d, &e);
        struct db_stmt *s = NULL;
        ASSERT(c != NULL);
        ASSERT_OK(db_exec(c, "CREATE TABLE t_items (id BIGINT PRIMARY KEY, name TEXT UNIQUE, score DOUBLE PRECISION,"
                             " note TEXT)", &e));
        /* numbered parameters, one used twice, a NULL, a double */
        ASSERT_OK(db_prepare(c, "INSERT INTO t_items(id, name, score, note) VALUES(?1, ?2, ?3, ?4)", &s, &e));
        for (int i = 1; i <= 3; i++) {
            char name[16];
            snprintf(name, sizeof name, "item-%d", i);
            db_bind_int64(s, 1, (int64_t)i * 10000000000LL);
            db_bind_text(s, 2, name);
            db_bind_double(s, 3, i / 4.0);
            if (i == 2)
                db_bind_null(s, 4);
            else
                db_bind_text(s, 4, "n'ote ?1"); /* a literal-looking parameter inside a value */
            ASSERT_EQ(db_step(s, &e), DB_DONE);
            ASSERT_EQ(db_changes(c), 1);
            db_reset(s);
        }
        db_finalize(s);
        ASSERT_OK(db_run(c, &e, "UPDATE t_items SET note=?1 || '-' || ?1 WHERE id > ?2", "ti", "x",
                         (int64_t)10000000000LL));
        ASSERT_EQ(db_changes(c), 2);
        ASSERT_OK(db_prepare(c, "SELECT id, name, score, note FROM t_items WHERE name <> '?3' ORDER BY id", &s, &e));
        int n = 0;
        while (db_step(s, &e) == DB_ROW) {
            n++;
            ASSERT_EQ(db_col_int64(s, 0), (int64_t)n * 10000000000LL);
            ASSERT(db_col_double(s, 2) == n / 4.0);
            ASSERT_EQ(db_col_count(s), 4);
            if (n == 1)
                ASSERT_STR_EQ(db_col_text(s, 3), "n'ote ?1");
            else
                ASSERT_STR_EQ(db_col_text(s, 3), "x-x");
        }
        ASSERT_EQ(n, 3);
        db_finalize(s);
        ASSERT_OK(db_prepare(c, "SELECT note, score FROM t_items WHERE id=?1", &s, &e));
        db_bind_int64(s, 1, 20000000000LL);
        ASSERT_OK(db_run(c, &e, "UPDATE t_items SET note=NULL WHERE id=?1", "i", (int64_t)20000000000LL));
        ASSERT_EQ(db_step(s, &e), DB_ROW);
        ASSERT(db_col_null(s, 0));
        ASSERT(db_col_text(s, 0) == NULL);
        ASSERT(!db_col_null(s, 1));
        ASSERT_EQ(db_step(s, &e), DB_DONE);
        ASSERT_EQ(db_step(s, &e), DB_DONE);
        db_finalize(s);
        /* a unique key refuses a row with ERR_EXISTS */
        ASSERT_EQ(db_run(c, &e, "INSERT INTO t_items(id, name) VALUES(?1, ?2)", "it", (int64_t)99, "item-1"),
                  ERR_EXISTS);
        /* a bad statement is an error with a message, not a crash */
        err_clear(&e);
        ASSERT(db_prepare(c, "SELEC nonsense", &s, &e) < 0 || db_step(s, &e) < 0);
        db_finalize(s);
        ASSERT(e.msg[0] != 0);
        db_exec(c, "DROP TABLE t_items", NULL);
        db_release(d, c);
        db_close(d);
        free(tg[k]);
    }
}

TEST(transactions_commit_and_rollback)
{
    char *tg[2];
    int nt = targets(tg);
    for (int k = 0; k < nt; k++) {
        struct db *d = open_db(tg[k], 2);
        struct err e = ERR_INIT;
        struct db_conn *c = db_acquire(d, &e);
        struct db_stmt *s = NULL;
        ASSERT_OK(db_exec(c, "CREATE TABLE t_items (id BIGINT PRIMARY KEY)", &e));
        ASSERT(!db_in_tx(c));
        ASSERT_OK(db_begin(c, &e));
        ASSERT(db_in_tx(c));
        ASSERT_OK(db_run(c, &e, "INSERT INTO t_items VALUES(?1)", "i", (int64_t)1));
        db_rollback(c);
        ASSERT(!db_in_tx(c));
        ASSERT_OK(db_begin(c, &e));
        ASSERT_OK(db_run(c, &e, "INSERT INTO t_items VALUES(?1)", "i", (int64_t)2));
        ASSERT_OK(db_commit(c, &e));
        /* a connection given back inside a transaction is rolled back */
        ASSERT_OK(db_begin(c, &e));
        ASSERT_OK(db_run(c, &e, "INSERT INTO t_items VALUES(?1)", "i", (int64_t)3));
        db_release(d, c);
        c = db_acquire(d, &e);
        ASSERT(!db_in_tx(c));
        ASSERT_OK(db_prepare(c, "SELECT COALESCE(SUM(id), 0), COUNT(*) FROM t_items", &s, &e));
        ASSERT_EQ(db_step(s, &e), DB_ROW);
        ASSERT_EQ(db_col_int64(s, 0), 2);
        ASSERT_EQ(db_col_int64(s, 1), 1);
        db_finalize(s);
        db_exec(c, "DROP TABLE t_items", NULL);
        db_release(d, c);
        db_close(d);
        free(tg[k]);
    }
}

struct pool_arg {
    struct db *d;
    int rounds;
    int max_seen;
    int *busy;
    pthread_mutex_t *mu;
};

static void *pool_worker(void *p)
{
    struct pool_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        struct db_conn *c = db_acquire(a->d, NULL);
        if (!c)
            abort();
        pthread_mutex_lock(a->mu);
        int now = ++*a->busy;
        if (now > a->max_seen)
            a->max_seen = now;
        pthread_mutex_unlock(a->mu);
        (void)db_run(c, NULL, "SELECT 1", NULL);
        usleep(200);
        pthread_mutex_lock(a->mu);
        --*a->busy;
        pthread_mutex_unlock(a->mu);
        db_release(a->d, c);
    }
    return NULL;
}

TEST(pool_never_exceeds_its_size)
{
    char *p = tmp_sqlite();
    struct db *d = open_db(p, 2);
    pthread_t th[6];
    int busy = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct pool_arg a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = (struct pool_arg){d, 50, 0, &busy, &mu};
        pthread_create(&th[i], NULL, pool_worker, &a[i]);
    }
    int most = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        if (a[i].max_seen > most)
            most = a[i].max_seen;
    }
    ASSERT_LE(most, 2);
    ASSERT_GE(most, 1);
    /* the native handle leads back to its pooled connection */
    struct db_conn *c = db_acquire(d, NULL);
    ASSERT(db_conn_of_native(d, db_conn_native(c)) == c);
    ASSERT(db_conn_of_native(d, (void *)&most) == NULL);
    db_release(d, c);
    db_close(d);
    free(p);
}

TEST(migrations_apply_once_and_refuse_newer)
{
    char *tg[2];
    int nt = targets(tg);
    for (int k = 0; k < nt; k++) {
        struct db *d = open_db(tg[k], 2);
        struct err e = ERR_INIT;
        static const char *const m[] = {"CREATE TABLE t_mig (id BIGINT PRIMARY KEY, v TEXT)",
                                        "ALTER TABLE t_mig ADD COLUMN w BIGINT",
                                        "CREATE INDEX t_mig_w ON t_mig(w)"};
        ASSERT_OK(db_migrate(d, "test-a", m, 1, &e));
        ASSERT_OK(db_migrate(d, "test-a", m, 3, &e));
        ASSERT_OK(db_migrate(d, "test-a", m, 3, &e)); /* idempotent */
        struct db_conn *c = db_acquire(d, &e);
        ASSERT_OK(db_run(c, &e, "INSERT INTO t_mig(id, v, w) VALUES(1, 'a', 2)", NULL));
        db_release(d, c);
        /* an older binary (knows 2 migrations) refuses a database at 3 */
        err_clear(&e);
        ASSERT_EQ(db_migrate(d, "test-a", m, 2, &e), ERR_UNSUPPORTED);
        ASSERT(strstr(e.msg, "newer vbatch") != NULL);
        /* a broken migration is refused and recorded nowhere */
        static const char *const bad[] = {"CREATE TABLE t_items (id BIGINT)", "THIS IS NOT SQL"};
        err_clear(&e);
        ASSERT(db_migrate(d, "test-b", bad, 2, &e) < 0);
        ASSERT(strstr(e.msg, "migration test-b/2") != NULL);
        c = db_acquire(d, &e);
        struct db_stmt *s = NULL;
        ASSERT_OK(db_prepare(c, "SELECT version FROM schema_versions WHERE component='test-b'", &s, &e));
        ASSERT_EQ(db_step(s, &e), DB_ROW);
        ASSERT_EQ(db_col_int64(s, 0), 1);
        db_finalize(s);
        db_exec(c, "DROP TABLE t_mig; DROP TABLE t_items", NULL);
        db_release(d, c);
        db_close(d);
        free(tg[k]);
    }
}

/* ---- SQLite: the statement cache and the checkpointer (db_sqlite.c) ---- */

/* Statements the SQLite connection h holds (cached or in use), and how
 * many of them are busy (started and not reset: a read transaction). */
static int sq_stmts(sqlite3 *h, int *busy)
{
    int n = 0;
    *busy = 0;
    for (sqlite3_stmt *q = sqlite3_next_stmt(h, NULL); q; q = sqlite3_next_stmt(h, q)) {
        n++;
        *busy += sqlite3_stmt_busy(q) != 0;
    }
    return n;
}

static int64_t sq_one(struct db_conn *c, const char *sql, int64_t arg)
{
    struct err e = ERR_INIT;
    struct db_stmt *s = NULL;
    ASSERT_OK(db_prepare(c, sql, &s, &e));
    db_bind_int64(s, 1, arg);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    int64_t v = db_col_int64(s, 0);
    db_finalize(s);
    return v;
}

TEST(sqlite_statement_cache_reuses_and_nests)
{
    char *path = tmp_sqlite();
    struct db *d = open_db(path, 2);
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(d, &e);
    ASSERT(c != NULL);
    sqlite3 *h = db_conn_native(c);
    int busy = 0;
    ASSERT_OK(db_exec(c, "CREATE TABLE t_items (a INTEGER); INSERT INTO t_items VALUES (1),(2),(3)", &e));
    int before = sq_stmts(h, &busy);
    static const char sql[] = "SELECT a * 10 FROM t_items WHERE a >= ?1 ORDER BY a";
    ASSERT_EQ(sq_one(c, sql, 2), 20);
    /* finalized: kept by the connection, reset (no read transaction) */
    ASSERT_EQ(sq_stmts(h, &busy), before + 1);
    ASSERT_EQ(busy, 0);
    sqlite3_stmt *cached = NULL;
    for (sqlite3_stmt *q = sqlite3_next_stmt(h, NULL); q; q = sqlite3_next_stmt(h, q))
        if (!strcmp(sqlite3_sql(q), sql))
            cached = q;
    ASSERT(cached != NULL);
    ASSERT_EQ(sqlite3_stmt_status(cached, SQLITE_STMTSTATUS_RUN, 0), 1);
    /* the same text again: the same handle, its old binding gone */
    ASSERT_EQ(sq_one(c, sql, 3), 30);
    ASSERT_EQ(sqlite3_stmt_status(cached, SQLITE_STMTSTATUS_RUN, 0), 2);
    ASSERT_EQ(sq_stmts(h, &busy), before + 1);
    struct db_stmt *s = NULL;
    ASSERT_OK(db_prepare(c, sql, &s, &e));
    ASSERT_EQ(db_step(s, &e), DB_DONE); /* the old binding is gone: ?1 is NULL, a >= NULL no row */
    db_finalize(s);

    /* nested: the same text while the first is in use gets a fresh handle */
    struct db_stmt *outer = NULL, *inner = NULL;
    ASSERT_OK(db_prepare(c, sql, &outer, &e));
    db_bind_int64(outer, 1, 1);
    ASSERT_EQ(db_step(outer, &e), DB_ROW);
    ASSERT_EQ(db_col_int64(outer, 0), 10);
    ASSERT_OK(db_prepare(c, sql, &inner, &e));
    db_bind_int64(inner, 1, 3);
    ASSERT_EQ(db_step(inner, &e), DB_ROW);
    ASSERT_EQ(db_col_int64(inner, 0), 30);
    ASSERT_EQ(sq_stmts(h, &busy), before + 2);
    ASSERT_EQ(busy, 2);
    ASSERT_EQ(db_step(outer, &e), DB_ROW); /* the outer loop goes on undisturbed */
    ASSERT_EQ(db_col_int64(outer, 0), 20);
    db_finalize(inner);
    ASSERT_EQ(db_step(outer, &e), DB_ROW);
    ASSERT_EQ(db_col_int64(outer, 0), 30);
    db_finalize(outer); /* finalized mid-result: reset, holds nothing */
    ASSERT_EQ(sq_stmts(h, &busy), before + 2);
    ASSERT_EQ(busy, 0);

    /* bounded: 100 texts leave at most 64 statements; 80 in use at once work */
    for (int i = 0; i < 100; i++) {
        char *q = xasprintf("SELECT ?1 + %d", i);
        ASSERT_EQ(sq_one(c, q, 1), i + 1);
        free(q);
    }
    ASSERT_LE(sq_stmts(h, &busy), 64);
    /* a text that does not prepare, with the cache full: an error, and
     * the cache goes on working */
    for (int i = 0; i < 3; i++) {
        struct db_stmt *bad = NULL;
        ASSERT(db_prepare(c, "SELECT FROM WHERE", &bad, &e) < 0);
        ASSERT(bad == NULL);
        ASSERT_EQ(sq_one(c, "SELECT ?1 + 1000", i), 1000 + i);
        ASSERT_EQ(sq_one(c, sql, 2), 20);
    }
    ASSERT_LE(sq_stmts(h, &busy), 64);
    struct db_stmt *many[80];
    for (int i = 0; i < 80; i++) {
        char *q = xasprintf("SELECT a + %d FROM t_items ORDER BY a", i % 40);
        ASSERT_OK(db_prepare(c, q, &many[i], &e));
        ASSERT_EQ(db_step(many[i], &e), DB_ROW);
        free(q);
    }
    for (int i = 0; i < 80; i++) {
        ASSERT_EQ(db_col_int64(many[i], 0), 1 + i % 40);
        db_finalize(many[i]);
    }
    ASSERT_LE(sq_stmts(h, &busy), 64);
    ASSERT_EQ(busy, 0);
    db_release(d, c);
    db_close(d);
    free(path);
}

TEST(sqlite_statement_cache_after_schema_changes)
{
    char *path = tmp_sqlite();
    struct db *d = open_db(path, 2);
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(d, &e), *c2 = db_acquire(d, &e);
    ASSERT(c != NULL && c2 != NULL);
    sqlite3 *h = db_conn_native(c);
    ASSERT_OK(db_exec(c, "CREATE TABLE t_items (a INTEGER); INSERT INTO t_items VALUES (1),(2)", &e));
    static const char sql[] = "SELECT * FROM t_items WHERE a = ?1";
    struct db_stmt *s = NULL;
    ASSERT_OK(db_prepare(c, sql, &s, &e));
    db_bind_int64(s, 1, 2);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_count(s), 1);
    db_finalize(s);
    sqlite3_stmt *cached = NULL;
    for (sqlite3_stmt *q = sqlite3_next_stmt(h, NULL); q; q = sqlite3_next_stmt(h, q))
        if (!strcmp(sqlite3_sql(q), sql))
            cached = q;
    ASSERT(cached != NULL);
    /* another connection changes the schema: a column, an index, a table
     * dropped and made again with other columns */
    ASSERT_OK(db_exec(c2, "ALTER TABLE t_items ADD COLUMN b TEXT DEFAULT 'x'", &e));
    s = NULL;
    ASSERT_OK(db_prepare(c, sql, &s, &e));
    db_bind_int64(s, 1, 2);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_count(s), 2);
    ASSERT_STR_EQ(db_col_text(s, 1), "x");
    db_finalize(s);
    /* the same handle, prepared anew by SQLite (its run counter counts the
     * run that met the changed schema too) */
    ASSERT_GE(sqlite3_stmt_status(cached, SQLITE_STMTSTATUS_RUN, 0), 2);
    ASSERT_EQ(sqlite3_next_stmt(h, cached) == NULL && sqlite3_next_stmt(h, NULL) == cached, 1);
    ASSERT_OK(db_exec(c2, "CREATE INDEX t_items_a ON t_items(a); INSERT INTO t_items(a, b) VALUES (2, 'y')", &e));
    s = NULL;
    ASSERT_OK(db_prepare(c, "SELECT count(*), max(b) FROM t_items WHERE a = ?1", &s, &e));
    db_bind_int64(s, 1, 2);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_int64(s, 0), 2);
    ASSERT_STR_EQ(db_col_text(s, 1), "y");
    db_finalize(s);
    ASSERT_OK(db_exec(c2, "DROP TABLE t_items; CREATE TABLE t_items (z TEXT, a INTEGER, w INTEGER);"
                          " INSERT INTO t_items VALUES ('new', 2, 7)", &e));
    s = NULL;
    ASSERT_OK(db_prepare(c, sql, &s, &e));
    db_bind_int64(s, 1, 2);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_count(s), 3);
    ASSERT_STR_EQ(db_col_text(s, 0), "new");
    ASSERT_EQ(db_col_int64(s, 2), 7);
    ASSERT_EQ(db_step(s, &e), DB_DONE);
    db_finalize(s);
    /* a table gone: a clear error, not a stale result */
    ASSERT_OK(db_exec(c2, "DROP TABLE t_items", &e));
    s = NULL;
    ASSERT(db_prepare(c, sql, &s, &e) < 0 || db_step(s, &e) < 0);
    db_finalize(s);
    db_release(d, c2);
    db_release(d, c);
    db_close(d);
    free(path);
}

/* The frames in the WAL after a commit of the test's own connection. */
static int probe_frames;
static int probe_hook(void *ud, sqlite3 *h, const char *db, int frames)
{
    (void)ud, (void)h, (void)db;
    probe_frames = frames;
    return SQLITE_OK;
}

static int64_t file_size(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

TEST(sqlite_checkpointer_bounds_the_wal)
{
    setenv("VBATCH_DB_SQLITE_CHECKPOINTER", "1", 1); /* opt-in (db_sqlite.c) */
    char *path = tmp_sqlite();
    char *wal = xasprintf("%s-wal", path);
    struct db *d = open_db(path, 2);
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(d, &e);
    ASSERT(c != NULL);
    ASSERT_OK(db_exec(c, "CREATE TABLE t_items (id INTEGER PRIMARY KEY, v TEXT)", &e));
    /* a few commits, far below SQLite's 1000-page auto-checkpoint: the
     * checkpointer still copies them back within about a second, so that a
     * later commit starts the WAL afresh (frames counted from 1 again). */
    for (int i = 0; i < 10; i++) {
        ASSERT_OK(db_begin(c, &e));
        ASSERT_OK(db_run(c, &e, "INSERT INTO t_items(v) VALUES (?1)", "t", "a small row"));
        ASSERT_OK(db_commit(c, &e));
    }
    sqlite3 *p = NULL;
    ASSERT_EQ(sqlite3_open_v2(path, &p, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(p, 5000);
    sqlite3_wal_hook(p, probe_hook, NULL); /* (no auto-checkpoint on this one) */
    int first = -1, low = 1 << 30;
    for (int t = 0; t < 60 && low > 4; t++) { /* up to ~6 s on a loaded machine */
        probe_frames = -1;
        ASSERT_EQ(sqlite3_exec(p, "INSERT INTO t_items(v) VALUES ('probe')", NULL, NULL, NULL), SQLITE_OK);
        ASSERT_GT(probe_frames, 0);
        if (first < 0)
            first = probe_frames;
        if (probe_frames < low)
            low = probe_frames;
        usleep(100 * 1000);
    }
    ASSERT_GE(first, 10);
    ASSERT_LE(low, 4);

    /* 5000 small transactions: the WAL file stays small, and a checkpoint
     * at the end finds (almost) everything copied back already */
    int64_t peak = 0;
    for (int i = 0; i < 5000; i++) {
        ASSERT_OK(db_begin(c, &e));
        ASSERT_OK(db_run(c, &e, "INSERT INTO t_items(v) VALUES (?1)", "t",
                         "a row of some length, so that the pages fill up over the run"));
        ASSERT_OK(db_commit(c, &e));
        if (i % 100 == 0) {
            int64_t sz = file_size(wal);
            if (sz > peak)
                peak = sz;
        }
    }
    ASSERT_GT(peak, 0);
    ASSERT_LT(peak, (int64_t)24 << 20); /* without checkpoints: ~5000 x 2 frames of 4 KiB = 40 MiB */
    int nlog = -1, nckpt = -1;
    int src;
    for (int t = 0; (src = sqlite3_wal_checkpoint_v2(p, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt)) == SQLITE_BUSY &&
                    t < 100; t++)
        usleep(10 * 1000); /* the checkpointer's own is running: they take turns */
    ASSERT_EQ(src, SQLITE_OK);
    ASSERT_EQ(nlog, nckpt);
    ASSERT_LT(nlog, 3000);
    sqlite3_close(p);
    db_release(d, c);
    int64_t t0 = time_mono_ms();
    db_close(d); /* the checkpointer waits on a 1 s period: woken, not waited for */
    ASSERT_LT(time_mono_ms() - t0, 500);
    /* short-lived opens (CLI commands) close promptly too */
    for (int i = 0; i < 5; i++) {
        t0 = time_mono_ms();
        struct db *d2 = NULL;
        ASSERT_OK(db_open(path, 1, &d2, &e));
        db_close(d2);
        ASSERT_LT(time_mono_ms() - t0, 500);
    }
    unsetenv("VBATCH_DB_SQLITE_CHECKPOINTER");
    free(wal);
    free(path);
}

TEST(targets_and_display_names)
{
    struct db *d = NULL;
    struct err e = ERR_INIT;
    /* a SQLite file in a folder that does not exist: a clear error */
    ASSERT(db_open("/nonexistent-dir/x/y.db", 1, &d, &e) < 0);
    ASSERT(strstr(e.msg, "/nonexistent-dir/x/y.db") != NULL);
    ASSERT(d == NULL);
    ASSERT(db_open("", 1, &d, &e) < 0);
    /* a URL of another scheme is not taken for a SQLite file name */
    err_clear(&e);
    ASSERT_EQ(db_open("mysql://u:secretpw@h/db", 1, &d, &e), ERR_INVALID);
    ASSERT(strstr(e.msg, "mysql://") != NULL);
    ASSERT(strstr(e.msg, "secretpw") == NULL);
    ASSERT(d == NULL);
}

TEST_MAIN()
