/* Unit tests of the PostgreSQL backend of the SQL layer (src/store/db_pg.c).
 *
 * The connect-error tests need no server and always run.  The others need
 * VBATCH_TEST_PG (a libpq URI; scripts/test.sh starts a throwaway cluster
 * with scripts/pg-up.sh and sets it) and say "skipped" without it. */
#include <stdlib.h>
#include <unistd.h>

#include "base/base.h"
#include "store/db.h"
#include "t.h"

static const char *pg_uri(void)
{
    const char *u = getenv("VBATCH_TEST_PG");
    if (!u || !*u) {
        fprintf(stderr, "  skipped: VBATCH_TEST_PG is not set\n");
        return NULL;
    }
    return u;
}

static struct db *open_pg(const char *uri, int conns)
{
    struct db *d = NULL;
    struct err e = ERR_INIT;
    if (db_open(uri, conns, &d, &e) < 0)
        T_FAIL("db_open: %s", e.msg);
    return d;
}

/* The URI with its password replaced by 'pw' (the test cluster's URIs are
 * postgresql://user:PASS@/db?host=...). */
static char *with_password(const char *uri, const char *pw)
{
    const char *colon = strchr(uri + strlen("postgresql://"), ':');
    const char *at = strchr(uri, '@');
    if (!colon || !at || colon > at)
        return NULL;
    return xasprintf("%.*s:%s%s", (int)(colon - uri), uri, pw, at);
}

TEST(connect_errors_say_why_without_the_password)
{
    struct db *d = NULL;
    struct err e = ERR_INIT;
    /* bad URL */
    ASSERT_EQ(db_open("postgresql://u:s3cretpw@host:notaport/db", 1, &d, &e), ERR_INVALID);
    ASSERT(d == NULL);
    ASSERT(strstr(e.msg, "bad database URL") != NULL);
    ASSERT(strstr(e.msg, "s3cretpw") == NULL);
    ASSERT(strstr(e.msg, "u:***@host") != NULL);
    ASSERT(strchr(e.msg, '\n') == NULL);
    /* unreachable: nothing listens on port 1 of loopback */
    err_clear(&e);
    ASSERT_EQ(db_open("postgres://u:s3cretpw@127.0.0.1:1/db", 1, &d, &e), ERR_UNAVAILABLE);
    ASSERT(strstr(e.msg, "cannot reach the server") != NULL);
    ASSERT(strstr(e.msg, "s3cretpw") == NULL);
    ASSERT(strchr(e.msg, '\n') == NULL);
    /* a password libpq cannot decode is not echoed by its message */
    err_clear(&e);
    ASSERT_EQ(db_open("postgres://u:pa%zzss@host/db", 1, &d, &e), ERR_INVALID);
    ASSERT(strstr(e.msg, "pa%zzss") == NULL && strstr(e.msg, "zzss") == NULL);
    /* a password given as a query parameter is hidden as well */
    err_clear(&e);
    ASSERT_EQ(db_open("postgresql://127.0.0.1:1/db?password=s3cretpw&connect_timeout=2", 1, &d, &e),
              ERR_UNAVAILABLE);
    ASSERT(strstr(e.msg, "s3cretpw") == NULL);
    ASSERT(strstr(e.msg, "password=***") != NULL);

    const char *uri = pg_uri();
    if (!uri)
        return;
    /* wrong password */
    char *bad = with_password(uri, "wrong-pw-123");
    ASSERT(bad != NULL);
    err_clear(&e);
    ASSERT_EQ(db_open(bad, 1, &d, &e), ERR_AUTH);
    ASSERT(strstr(e.msg, "wrong user or password") != NULL);
    ASSERT(strstr(e.msg, "wrong-pw-123") == NULL);
    free(bad);
    /* the display name of a good one hides the password */
    d = open_pg(uri, 1);
    ASSERT(strstr(db_display_name(d), ":***@") != NULL);
    db_close(d);
}

TEST(parameters_in_literals_comments_identifiers)
{
    const char *uri = pg_uri();
    if (!uri)
        return;
    struct db *d = open_pg(uri, 2);
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(d, &e);
    struct db_stmt *s = NULL;
    ASSERT(c != NULL);
    /* ?N inside '...', E'...', "...", $$...$$ and comments stays as written;
     * ?1 repeats; "?1 || '-'" and "length(?2)" need no casts */
    ASSERT_OK(db_prepare(c,
                         "SELECT ?1 || '-' || ?1, length(?2), 'it''s ?3', E'a\\'?4', \"?x\".y, $$?5$$, $t$?6$t$"
                         " /* ?7 /* nested ?8 */ */ -- ?9\n"
                         " FROM (SELECT 1 AS y) AS \"?x\"",
                         &s, &e));
    db_bind_text(s, 1, "ab");
    db_bind_text(s, 2, "héllo");
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_STR_EQ(db_col_text(s, 0), "ab-ab");
    ASSERT_EQ(db_col_int64(s, 1), 5); /* characters, as SQLite counts text */
    ASSERT_STR_EQ(db_col_text(s, 2), "it's ?3");
    ASSERT_STR_EQ(db_col_text(s, 3), "a'?4");
    ASSERT_EQ(db_col_int64(s, 4), 1);
    ASSERT_STR_EQ(db_col_text(s, 5), "?5");
    ASSERT_STR_EQ(db_col_text(s, 6), "?6");
    ASSERT_EQ(db_step(s, &e), DB_DONE);
    /* run again with new bindings */
    db_reset(s);
    db_bind_text(s, 1, "z");
    db_bind_text(s, 2, "");
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_STR_EQ(db_col_text(s, 0), "z-z");
    ASSERT_EQ(db_col_int64(s, 1), 0);
    db_finalize(s);
    /* integers beyond 32 bits, doubles, NULL (untyped: the SQL gives it a
     * type where nothing around it does), booleans */
    ASSERT_OK(db_prepare(c, "SELECT ?1 + 1, ?2 * 2, CAST(?3 AS TEXT) IS NULL, ?1 > 5", &s, &e));
    db_bind_int64(s, 1, INT64_C(9007199254740993));
    db_bind_double(s, 2, 0.1);
    db_bind_null(s, 3);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_int64(s, 0), INT64_C(9007199254740994));
    ASSERT(db_col_double(s, 1) == 0.2);
    ASSERT_EQ(db_col_int64(s, 2), 1);
    ASSERT_EQ(db_col_int64(s, 3), 1);
    db_finalize(s);
    db_release(d, c);
    db_close(d);
}

TEST(bytea_round_trip_and_interleaved_statements)
{
    const char *uri = pg_uri();
    if (!uri)
        return;
    struct db *d = open_pg(uri, 2);
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(d, &e);
    struct db_stmt *s = NULL, *u = NULL;
    ASSERT_OK(db_exec(c, "DROP TABLE IF EXISTS t_pg; CREATE TABLE t_pg (id BIGINT PRIMARY KEY, b BYTEA, n BIGINT)",
                      &e));
    uint8_t blob[256];
    for (int i = 0; i < 256; i++)
        blob[i] = (uint8_t)i; /* NULs and high bytes */
    ASSERT_OK(db_prepare(c, "INSERT INTO t_pg(id, b, n) VALUES(?1, ?2, 0) RETURNING id * 10", &s, &e));
    for (int i = 1; i <= 3; i++) {
        db_bind_int64(s, 1, i);
        db_bind_blob(s, 2, blob, sizeof blob - (size_t)i);
        ASSERT_EQ(db_step(s, &e), DB_ROW);
        ASSERT_EQ(db_col_int64(s, 0), i * 10);
        ASSERT_EQ(db_step(s, &e), DB_DONE);
        ASSERT_EQ(db_changes(c), 1);
        db_reset(s);
    }
    db_finalize(s);
    /* walk a SELECT while updating rows on the same connection */
    ASSERT_OK(db_prepare(c, "SELECT id, b FROM t_pg ORDER BY id", &s, &e));
    ASSERT_OK(db_prepare(c, "UPDATE t_pg SET n = n + 1 WHERE id <= ?1", &u, &e));
    int rows = 0;
    while (db_step(s, &e) == DB_ROW) {
        size_t len = 0;
        int64_t id = db_col_int64(s, 0);
        const uint8_t *b = db_col_blob(s, 1, &len);
        ASSERT_EQ(len, sizeof blob - (size_t)id);
        ASSERT(memcmp(b, blob, len) == 0);
        db_bind_int64(u, 1, id);
        ASSERT_EQ(db_step(u, &e), DB_DONE);
        ASSERT_EQ(db_changes(c), id);
        db_reset(u);
        rows++;
    }
    ASSERT_EQ(rows, 3);
    db_finalize(s);
    db_finalize(u);
    /* a SELECT leaves db_changes alone, as on SQLite */
    ASSERT_OK(db_run(c, &e, "SELECT n FROM t_pg", NULL));
    ASSERT_EQ(db_changes(c), 3);
    db_exec(c, "DROP TABLE t_pg", NULL);
    db_release(d, c);
    db_close(d);
}

TEST(error_codes_by_sqlstate)
{
    const char *uri = pg_uri();
    if (!uri)
        return;
    struct db *d = open_pg(uri, 3);
    struct err e = ERR_INIT;
    struct db_conn *a = db_acquire(d, &e);
    struct db_conn *b = db_acquire(d, &e);
    ASSERT(a && b);
    ASSERT_OK(db_exec(a, "DROP TABLE IF EXISTS t_pg; CREATE TABLE t_pg (id BIGINT PRIMARY KEY)", &e));
    ASSERT_OK(db_run(a, &e, "INSERT INTO t_pg VALUES(?1)", "i", (int64_t)1));
    ASSERT_EQ(db_run(a, &e, "INSERT INTO t_pg VALUES(?1)", "i", (int64_t)1), ERR_EXISTS);
    /* a row lock that cannot be had in time: ERR_AGAIN */
    ASSERT_OK(db_begin(a, &e));
    ASSERT_OK(db_run(a, &e, "UPDATE t_pg SET id = id WHERE id = 1", NULL));
    ASSERT_OK(db_exec(b, "SET lock_timeout = '50ms'", &e));
    err_clear(&e);
    ASSERT_EQ(db_run(b, &e, "UPDATE t_pg SET id = id WHERE id = 1", NULL), ERR_AGAIN);
    db_rollback(a);
    /* an error inside a transaction: COMMIT reports it instead of a silent
     * rollback */
    ASSERT_OK(db_begin(b, &e));
    ASSERT_OK(db_run(b, &e, "INSERT INTO t_pg VALUES(?1)", "i", (int64_t)2));
    ASSERT_EQ(db_run(b, &e, "INSERT INTO t_pg VALUES(?1)", "i", (int64_t)1), ERR_EXISTS);
    err_clear(&e);
    ASSERT(db_commit(b, &e) < 0);
    ASSERT(!db_in_tx(b));
    struct db_stmt *s = NULL;
    ASSERT_OK(db_prepare(b, "SELECT COUNT(*) FROM t_pg", &s, &e));
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_int64(s, 0), 1);
    db_finalize(s);
    db_exec(a, "DROP TABLE t_pg", NULL);
    db_release(d, a);
    db_release(d, b);
    db_close(d);
}

/* Text that is not UTF-8 is the caller's bad input (ERR_INVALID), found
 * before anything is sent: inside a transaction, that transaction goes on
 * (the server's error 22021 would have aborted it, and was a 500). */
TEST(text_that_is_not_utf8_is_invalid_input)
{
    const char *uri = pg_uri();
    if (!uri)
        return;
    struct db *d = open_pg(uri, 1);
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(d, &e);
    ASSERT(c);
    ASSERT_OK(db_exec(c, "DROP TABLE IF EXISTS t_u8; CREATE TABLE t_u8 (name TEXT PRIMARY KEY)", &e));
    ASSERT_OK(db_begin(c, &e));
    ASSERT_OK(db_run(c, &e, "INSERT INTO t_u8 VALUES(?1)", "t", "caf\xc3\xa9"));
    const char *bad[] = {"\xff\xfe", "ab\xc3", "\xed\xa0\x80", "\xc0\xaf"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err_clear(&e);
        ASSERT_EQ(db_run(c, &e, "INSERT INTO t_u8 VALUES(?1)", "t", bad[i]), ERR_INVALID);
        ASSERT(strstr(e.msg, "not valid UTF-8") != NULL);
        struct db_stmt *q = NULL;
        err_clear(&e);
        ASSERT_OK(db_prepare(c, "SELECT COUNT(*) FROM t_u8 WHERE name=?1", &q, &e));
        db_bind_text(q, 1, bad[i]);
        ASSERT_EQ(db_step(q, &e), ERR_INVALID);
        db_finalize(q);
    }
    err_clear(&e);
    ASSERT_OK(db_commit(c, &e)); /* not aborted: the good row is there */
    struct db_stmt *q = NULL;
    ASSERT_OK(db_prepare(c, "SELECT COUNT(*) FROM t_u8", &q, &e));
    ASSERT_EQ(db_step(q, &e), DB_ROW);
    ASSERT_EQ(db_col_int64(q, 0), 1);
    db_finalize(q);
    db_exec(c, "DROP TABLE t_u8", NULL);
    db_release(d, c);
    db_close(d);
}

TEST(a_lost_connection_is_unavailable_and_replaced)
{
    const char *uri = pg_uri();
    if (!uri)
        return;
    struct db *d = open_pg(uri, 2);
    struct err e = ERR_INIT;
    struct db_conn *a = db_acquire(d, &e);
    struct db_conn *b = db_acquire(d, &e);
    struct db_stmt *s = NULL;
    ASSERT(a && b);
    ASSERT_OK(db_prepare(a, "SELECT pg_backend_pid()", &s, &e));
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    int64_t pid = db_col_int64(s, 0);
    db_finalize(s);
    /* the server ends a's session (as a restart or a failover would) */
    ASSERT_OK(db_run(b, &e, "SELECT pg_terminate_backend(?1::int)", "i", pid));
    usleep(100 * 1000);
    err_clear(&e);
    ASSERT_EQ(db_run(a, &e, "SELECT 1", NULL), ERR_UNAVAILABLE);
    ASSERT(strstr(e.msg, "cannot be reached") != NULL);
    db_release(d, a); /* closed, not pooled */
    db_release(d, b);
    /* an idle pooled connection whose session the server ends is
     * replaced at the next db_acquire: no error reaches the caller */
    a = db_acquire(d, &e);
    b = db_acquire(d, &e);
    ASSERT(a && b);
    ASSERT_OK(db_prepare(a, "SELECT pg_backend_pid()", &s, &e));
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    int64_t idle_pid = db_col_int64(s, 0);
    db_finalize(s);
    db_release(d, a); /* idle in the pool now */
    ASSERT_OK(db_run(b, &e, "SELECT pg_terminate_backend(?1::int)", "i", idle_pid));
    usleep(100 * 1000);
    a = db_acquire(d, &e);
    ASSERT(a != NULL);
    ASSERT_OK(db_prepare(a, "SELECT pg_backend_pid()", &s, &e));
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_NE(db_col_int64(s, 0), idle_pid);
    db_finalize(s);
    db_release(d, a);
    db_release(d, b);
    /* the pool hands out working connections again, with new sessions */
    for (int i = 0; i < 3; i++) {
        struct db_conn *c = db_acquire(d, &e);
        ASSERT(c != NULL);
        ASSERT_OK(db_prepare(c, "SELECT pg_backend_pid()", &s, &e));
        ASSERT_EQ(db_step(s, &e), DB_ROW);
        ASSERT_NE(db_col_int64(s, 0), pid);
        db_finalize(s);
        db_release(d, c);
    }
    db_close(d);
}

TEST(prepared_statement_cache)
{
    const char *uri = pg_uri();
    if (!uri)
        return;
    struct db *d = open_pg(uri, 1);
    struct err e = ERR_INIT;
    struct db_conn *c = db_acquire(d, &e);
    struct db_stmt *s = NULL;
    ASSERT_OK(db_exec(c, "DROP TABLE IF EXISTS t_pgc; CREATE TABLE t_pgc (id BIGINT PRIMARY KEY, v TEXT)", &e));
    ASSERT_OK(db_run(c, &e, "INSERT INTO t_pgc VALUES(?1, ?2)", "it", (int64_t)1, "one"));
    /* bounded: 100 different texts leave at most 64 prepared */
    for (int i = 0; i < 100; i++) {
        char *sql = xasprintf("SELECT v FROM t_pgc WHERE id = ?1 AND %d = %d", i, i);
        ASSERT_OK(db_run(c, &e, sql, "i", (int64_t)1));
        free(sql);
    }
    ASSERT_OK(db_prepare(c, "SELECT count(*) FROM pg_prepared_statements", &s, &e));
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_LE(db_col_int64(s, 0), 64);
    ASSERT_GE(db_col_int64(s, 0), 60);
    db_finalize(s);
    /* a schema change that alters a cached statement's result: outside a
     * transaction it is run again transparently */
    const char *q = "SELECT * FROM t_pgc WHERE id = ?1";
    ASSERT_OK(db_prepare(c, q, &s, &e));
    db_bind_int64(s, 1, 1);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_count(s), 2);
    db_finalize(s);
    ASSERT_OK(db_exec(c, "ALTER TABLE t_pgc ADD COLUMN w BIGINT DEFAULT 7", &e));
    ASSERT_OK(db_prepare(c, q, &s, &e));
    db_bind_int64(s, 1, 1);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_count(s), 3);
    ASSERT_EQ(db_col_int64(s, 2), 7);
    db_finalize(s);
    /* inside a transaction: ERR_AGAIN, the transaction is to be run again */
    ASSERT_OK(db_exec(c, "ALTER TABLE t_pgc DROP COLUMN w", &e));
    ASSERT_OK(db_begin(c, &e));
    ASSERT_OK(db_prepare(c, q, &s, &e));
    db_bind_int64(s, 1, 1);
    err_clear(&e);
    ASSERT_EQ(db_step(s, &e), ERR_AGAIN);
    db_finalize(s);
    db_rollback(c);
    ASSERT_OK(db_prepare(c, q, &s, &e));
    db_bind_int64(s, 1, 1);
    ASSERT_EQ(db_step(s, &e), DB_ROW);
    ASSERT_EQ(db_col_count(s), 2);
    db_finalize(s);
    /* a bad statement inside a transaction says what is wrong with it */
    ASSERT_OK(db_begin(c, &e));
    err_clear(&e);
    ASSERT(db_run(c, &e, "SELECT nosuchcolumn FROM t_pgc WHERE id = ?1", "i", (int64_t)1) < 0);
    ASSERT(strstr(e.msg, "nosuchcolumn") != NULL);
    db_rollback(c);
    db_exec(c, "DROP TABLE t_pgc", NULL);
    db_release(d, c);
    db_close(d);
}

/* LISTEN/NOTIFY (db_listen, db_notify): a committed transaction's
 * notification wakes a waiting listener at once, a rolled-back one's
 * never; db_listen_wake ends a wait; a listener whose session the server
 * ends reports it and reconnects (returning 1: look for work); SQLite has
 * no notifications. */
TEST(listen_notify_wake_and_reconnect)
{
    struct err e = ERR_INIT;
    /* SQLite */
    char dir[] = "/tmp/vbatch-listen-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char *path = xasprintf("%s/x.db", dir);
    struct db *sq = NULL;
    struct db_listener *l = NULL;
    ASSERT_OK(db_open(path, 1, &sq, &e));
    ASSERT_EQ(db_listen(sq, "t_chan", &l, &e), ERR_UNSUPPORTED);
    struct db_conn *sc = db_acquire(sq, &e);
    ASSERT_OK(db_notify(sc, "t_chan", &e));
    db_release(sq, sc);
    db_close(sq);
    free(path);

    const char *uri = pg_uri();
    if (!uri)
        return;
    char ch[32];
    snprintf(ch, sizeof ch, "t_listen_%d", (int)getpid());
    struct db *d = open_pg(uri, 2);
    ASSERT_EQ(db_listen(d, "Bad-Name", &l, &e), ERR_INVALID);
    ASSERT_OK(db_listen(d, ch, &l, &e));
    ASSERT_EQ(db_listen_wait(l, 50, &e), 0);
    struct db_conn *c = db_acquire(d, &e);
    /* committed: delivered at once */
    ASSERT_OK(db_begin(c, &e));
    ASSERT_OK(db_notify(c, ch, &e));
    ASSERT_OK(db_notify(c, ch, &e));
    ASSERT_OK(db_commit(c, &e));
    int64_t t0 = time_mono_ms();
    ASSERT_EQ(db_listen_wait(l, 5000, &e), 1);
    ASSERT(time_mono_ms() - t0 < 1000);
    ASSERT_EQ(db_listen_wait(l, 50, &e), 0); /* both were consumed */
    /* rolled back: never */
    ASSERT_OK(db_begin(c, &e));
    ASSERT_OK(db_notify(c, ch, &e));
    db_rollback(c);
    ASSERT_EQ(db_listen_wait(l, 300, &e), 0);
    /* another channel: not ours */
    ASSERT_OK(db_notify(c, "t_other_channel", &e));
    ASSERT_EQ(db_listen_wait(l, 300, &e), 0);
    /* wake */
    db_listen_wake(l);
    t0 = time_mono_ms();
    ASSERT_EQ(db_listen_wait(l, 5000, &e), 0);
    ASSERT(time_mono_ms() - t0 < 1000);
    /* the server ends the listener's session */
    struct db_stmt *q = NULL;
    char *sql = xasprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query='LISTEN %s'", ch);
    ASSERT_OK(db_prepare(c, sql, &q, &e));
    ASSERT_EQ(db_step(q, &e), DB_ROW);
    db_finalize(q);
    free(sql);
    err_clear(&e);
    ASSERT_EQ(db_listen_wait(l, 5000, &e), ERR_UNAVAILABLE);
    ASSERT_EQ(db_listen_wait(l, 5000, &e), 1); /* reconnected */
    ASSERT_OK(db_notify(c, ch, &e));
    ASSERT_EQ(db_listen_wait(l, 5000, &e), 1);
    db_release(d, c);
    db_listen_close(l);
    db_close(d);
}

TEST(statements_per_second)
{
    /* Not a pass/fail figure: a point of comparison for docs/STORAGE.md
     * (one connection, autocommit INSERTs then point SELECTs). */
    char *targets[2] = {NULL, NULL};
    char dir[] = "/tmp/vbatch-dbpg-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    targets[0] = xasprintf("%s/t.db", dir);
    const char *uri = getenv("VBATCH_TEST_PG");
    if (uri && *uri)
        targets[1] = xstrdup(uri);
    for (int k = 0; k < 2 && targets[k]; k++) {
        struct db *d = NULL;
        struct err e = ERR_INIT;
        ASSERT_OK(db_open(targets[k], 1, &d, &e));
        struct db_conn *c = db_acquire(d, &e);
        ASSERT_OK(db_exec(c, "DROP TABLE IF EXISTS t_speed; CREATE TABLE t_speed (id BIGINT PRIMARY KEY, v TEXT)",
                          &e));
        const int n = 2000;
        int64_t t0 = time_now_ms();
        for (int i = 0; i < n; i++)
            ASSERT_OK(db_run(c, &e, "INSERT INTO t_speed(id, v) VALUES(?1, ?2)", "it", (int64_t)i, "value"));
        int64_t t1 = time_now_ms();
        for (int i = 0; i < n; i++)
            ASSERT_OK(db_run(c, &e, "SELECT v FROM t_speed WHERE id=?1", "i", (int64_t)i));
        int64_t t2 = time_now_ms();
        fprintf(stderr, "  %s: %d autocommit INSERTs in %lld ms (%.0f/s), %d SELECTs in %lld ms (%.0f/s)\n",
                k ? "postgresql" : "sqlite", n, (long long)(t1 - t0), n * 1000.0 / (double)(t1 - t0 + 1), n,
                (long long)(t2 - t1), n * 1000.0 / (double)(t2 - t1 + 1));
        db_exec(c, "DROP TABLE t_speed", NULL);
        db_release(d, c);
        db_close(d);
        free(targets[k]);
    }
}

TEST_MAIN()
