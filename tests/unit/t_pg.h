/* Unit-test helpers for tests that run on both backends: a BOTH(name) test
 * body runs as NAME on SQLite (in the test's data folder) and as NAME_pg
 * on the PostgreSQL database of VBATCH_TEST_PG (scripts/test.sh starts a
 * throwaway cluster and sets it), in a fresh schema of its own (the URI's
 * options=-csearch_path=...), dropped when the test process exits.
 * Without VBATCH_TEST_PG the _pg variants say "skipped" and pass.
 * Include after t.h; links the store module (db.h). */
#ifndef VBATCH_T_PG_H
#define VBATCH_T_PG_H

#include "base/base.h"
#include "store/db.h"
#include "store/store.h"

/* The database of the running test: NULL for SQLite in the data folder,
 * else the URI of this test's schema. */
static char *t_db;
static char *t_schema;

static void t_pg_drop_schema(void)
{
    struct db *d = NULL;
    if (!t_schema || db_open(getenv("VBATCH_TEST_PG"), 1, &d, NULL) < 0)
        return;
    struct db_conn *c = db_acquire(d, NULL);
    char *sql = xasprintf("SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS %s CASCADE", t_schema);
    if (c)
        (void)db_exec(c, sql, NULL);
    free(sql);
    db_release(d, c);
    db_close(d);
}

/* A fresh schema on VBATCH_TEST_PG for this test; false when unset. */
static bool t_use_pg(void)
{
    const char *pg = getenv("VBATCH_TEST_PG");
    struct db *d = NULL;
    struct err e = ERR_INIT;
    if (!pg || !*pg) {
        fprintf(stderr, "  skipped: VBATCH_TEST_PG is not set\n");
        return false;
    }
    t_schema = xasprintf("t_%d_%lld", (int)getpid(), (long long)time_now_ms());
    if (db_open(pg, 1, &d, &e) < 0)
        T_FAIL("VBATCH_TEST_PG: %s", e.msg);
    struct db_conn *c = db_acquire(d, &e);
    char *sql = xasprintf("CREATE SCHEMA %s", t_schema);
    if (!c || db_exec(c, sql, &e) < 0)
        T_FAIL("cannot create a test schema: %s", e.msg);
    free(sql);
    db_release(d, c);
    db_close(d);
    atexit(t_pg_drop_schema);
    t_db = xasprintf("%s%coptions=-csearch_path%%3D%s", pg, strchr(pg, '?') ? '&' : '?', t_schema);
    return true;
}

/* A test body that runs on SQLite (NAME) and on PostgreSQL (NAME_pg). */
#define BOTH(name)                                                                                                  \
    static void both_##name(void);                                                                                 \
    TEST(name)                                                                                                     \
    {                                                                                                              \
        both_##name();                                                                                             \
    }                                                                                                              \
    TEST(name##_pg)                                                                                                \
    {                                                                                                              \
        if (t_use_pg())                                                                                            \
            both_##name();                                                                                         \
    }                                                                                                              \
    static void both_##name(void)

/* store_open on the test's database. */
static int t_open(const char *dir, struct store **st)
{
    struct err e = ERR_INIT;
    int rc = store_open_ex(dir, t_db, st, &e);
    if (rc < 0)
        fprintf(stderr, "  store_open_ex: %s\n", e.msg);
    return rc;
}

/* A second connection to the test's database, opened beside the store as
 * another process would have it: release with t_side_close. */
static inline struct db_conn *t_side_open(struct store *st, struct db **d)
{
    struct err e = ERR_INIT;
    char *path = t_db ? xstrdup(t_db) : xasprintf("%s/vbatch.db", store_data_dir(st));
    if (db_open(path, 1, d, &e) < 0)
        T_FAIL("db_open: %s", e.msg);
    free(path);
    struct db_conn *c = db_acquire(*d, &e);
    if (!c)
        T_FAIL("db_acquire: %s", e.msg);
    return c;
}

static inline void t_side_close(struct db *d, struct db_conn *c)
{
    db_release(d, c);
    db_close(d);
}

/* One statement on a second connection: the first column of its first
 * row (-1 when none). */
static inline int64_t t_sql_int(struct store *st, const char *sql)
{
    struct db *d = NULL;
    struct err e = ERR_INIT;
    struct db_conn *c = t_side_open(st, &d);
    struct db_stmt *q = NULL;
    int64_t v = -1;
    if (db_prepare(c, sql, &q, &e) < 0)
        T_FAIL("%s: %s", sql, e.msg);
    int rc = db_step(q, &e);
    if (rc < 0)
        T_FAIL("%s: %s", sql, e.msg);
    if (rc == DB_ROW)
        v = db_col_int64(q, 0);
    db_finalize(q);
    t_side_close(d, c);
    return v;
}

#endif
