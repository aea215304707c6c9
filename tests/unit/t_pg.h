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

#endif
