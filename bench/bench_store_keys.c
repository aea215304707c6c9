/*
 * bench_store_keys.c — where an API key check spends its time, in-process
 * (no HTTP): store_key_verify of a cached key (the common case: SHA-256,
 * a mutex), of a key that is not cached (the database lookup: a pooled
 * connection, a prepared statement, a round trip), and SHA-256 alone.
 *
 *   bench_store_keys [N]      N = keys for the uncached figure (default
 *                             4096, more than the cache's 1,024 slots: a
 *                             round-robin over them misses almost always)
 *
 * The database is SQLite in a fresh /tmp folder, or with BENCH_DB=
 * postgres://… a fresh schema of that database (dropped at exit).  One line
 * per figure: "bench keys <name> us_per_call=… calls_s=…".
 */
#include "base/base.h"
#include "store/db.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *schema;

static void drop_schema(void)
{
    struct db *d = NULL;
    if (!schema || db_open(getenv("BENCH_DB"), 1, &d, NULL) < 0)
        return;
    struct db_conn *c = db_acquire(d, NULL);
    char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE", schema);
    if (c)
        (void)db_exec(c, sql, NULL);
    free(sql);
    db_release(d, c);
    db_close(d);
}

static char *target_for(void)
{
    const char *pg = getenv("BENCH_DB");
    if (!pg || !*pg)
        return NULL;
    struct db *db = NULL;
    struct err e = ERR_INIT;
    struct db_conn *c = NULL;
    schema = xasprintf("bench_keys_%d", (int)getpid());
    char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema, schema);
    if (db_open(pg, 1, &db, &e) < 0 || !(c = db_acquire(db, &e)) || db_exec(c, sql, &e) < 0) {
        fprintf(stderr, "BENCH_DB: %s\n", e.msg);
        exit(1);
    }
    db_release(db, c);
    db_close(db);
    free(sql);
    atexit(drop_schema);
    return xasprintf("%s%coptions=-csearch_path%%3D%s", pg, strchr(pg, '?') ? '&' : '?', schema);
}

static void line(const char *name, int64_t ns, long calls)
{
    double us = (double)ns / 1e3 / (double)calls;
    printf("bench keys %s calls=%ld us_per_call=%.2f calls_s=%.0f\n", name, calls, us, 1e6 / us);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4096;
    char dir[] = "/tmp/vbatch-bench-keys-XXXXXX";
    struct store *st = NULL;
    struct err e = ERR_INIT;
    char ws[STORE_WS_MAX + 1];

    if (n < 2048)
        n = 2048;
    log_set_level(LOG_WARN);
    if (!mkdtemp(dir))
        return 1;
    char *target = target_for();
    if (store_open_ex(dir, target, &st, &e) < 0) {
        fprintf(stderr, "store: %s\n", e.msg);
        return 1;
    }
    char(*keys)[STORE_KEY_LEN + 1] = xcalloc((size_t)n, sizeof *keys);
    if (store_workspace_create(st, "bench", keys[0]) < 0)
        return 1;
    for (int i = 1; i < n; i++)
        if (store_key_create(st, "bench", keys[i]) < 0)
            return 1;
    /* first use of every key: its last use is written once; not timed */
    for (int i = 0; i < n; i++)
        if (store_key_verify(st, keys[i], ws) < 0)
            return 1;

    uint8_t h[32];
    long calls = 200000;
    int64_t t0 = time_mono_ns();
    for (long i = 0; i < calls; i++)
        sha256(keys[i % n], STORE_KEY_LEN, h);
    line("sha256", time_mono_ns() - t0, calls);

    calls = 200000;
    t0 = time_mono_ns();
    for (long i = 0; i < calls; i++)
        if (store_key_verify(st, keys[0], ws) < 0)
            return 1;
    line("verify_cached", time_mono_ns() - t0, calls);

    /* round-robin over n keys in 1,024 direct-mapped slots: nearly every
     * call is a miss and reads the row (last use fresh: no write) */
    calls = 3L * n;
    t0 = time_mono_ns();
    for (long i = 0; i < calls; i++)
        if (store_key_verify(st, keys[i % n], ws) < 0)
            return 1;
    line("verify_uncached", time_mono_ns() - t0, calls);

    printf("bench keys db=%s keys=%d\n", target ? "postgres" : "sqlite", n);
    free(keys);
    store_close(st);
    free(target);
    char *rm = xasprintf("rm -rf %s", dir);
    if (system(rm) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    free(rm);
    return 0;
}
