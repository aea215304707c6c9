/*
 * bench_store_claims — the coordination cost of shard claims across
 * processes (store/shards.c), in-process:
 *
 *   N uploaded tar shards (default 2000, argv[1] or BENCH_N); K claimers
 *   (1, 2, 4), each with a store handle of its own (= a process), loop:
 *   claim the oldest claimable shard, renew the claim once, record it done
 *   (an outcome without items: the fenced ending transaction).  Figure:
 *   shards/s through claim + renew + finish.  Baseline: the same N
 *   shards finished by one handle without claiming (the ending
 *   transaction alone, owner NULL: no fence), i.e. what the claim adds.
 *   Every run checks that no shard was claimed twice.
 *
 * One line per figure: bench=<name> <value> baseline=<name> <value> ratio=<x>.
 * The data folder is a temp folder under $BENCH_DIR or /tmp; the database
 * is SQLite in it, or with BENCH_DB=postgres://... a fresh schema of that
 * PostgreSQL database per figure.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_staging.h"

static double now_s(void)
{
    return (double)time_mono_ns() / 1e9;
}

static char *schemas[16];
static int nschemas;

static void drop_schemas(void)
{
    struct db *d = NULL;
    if (db_open(getenv("BENCH_DB"), 1, &d, NULL) < 0)
        return;
    struct db_conn *c = db_acquire(d, NULL);
    for (int i = 0; c && i < nschemas; i++) {
        char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE", schemas[i]);
        (void)db_exec(c, sql, NULL);
        free(sql);
        free(schemas[i]);
    }
    db_release(d, c);
    db_close(d);
}

/* A fresh data folder (and schema on BENCH_DB); *target the database. */
static char *fresh(char **target)
{
    const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
    const char *pg = getenv("BENCH_DB");
    char *d = xasprintf("%s/vbatch-bench-claims-XXXXXX", base);
    if (!mkdtemp(d))
        abort();
    *target = NULL;
    if (pg && *pg) {
        struct db *db = NULL;
        struct err e = ERR_INIT;
        char *name = xasprintf("bench_claims_%d_%d", (int)getpid(), nschemas);
        char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", name, name);
        struct db_conn *c = NULL;
        if (nschemas >= 16 || db_open(pg, 1, &db, &e) < 0 || !(c = db_acquire(db, &e)) || db_exec(c, sql, &e) < 0) {
            fprintf(stderr, "BENCH_DB: %s\n", e.msg);
            exit(1);
        }
        db_release(db, c);
        db_close(db);
        free(sql);
        if (nschemas == 0)
            atexit(drop_schemas);
        schemas[nschemas++] = name;
        *target = xasprintf("%s%coptions=-csearch_path%%3D%s", pg, strchr(pg, '?') ? '&' : '?', name);
    }
    return d;
}

static struct store *open_store(const char *dir, const char *target)
{
    struct store *st = NULL;
    struct err e = ERR_INIT;
    if (store_open_ex(dir, target, &st, &e) < 0 || store_staging_migrate(st, &e) < 0) {
        fprintf(stderr, "store: %s\n", e.msg);
        exit(1);
    }
    return st;
}

static void make_shards(struct store *st, int n)
{
    struct err e = ERR_INIT;
    for (int i = 0; i < n; i++) {
        char id[32], key[96];
        struct store_upload u;
        snprintf(id, sizeof id, "s-%d", i);
        if (store_upload_tar_create(st, "ws", "bench", NULL, id, 1000, 86400000, key, &e) < 0 ||
            store_upload_get(st, key, &u, &e) < 0 || store_upload_done(st, key, &u, NULL, 100, &e) < 0) {
            fprintf(stderr, "setup: %s\n", e.msg);
            exit(1);
        }
        store_upload_release(&u);
    }
}

struct claimer {
    struct store *st;
    char owner[16];
    unsigned char *seen; /* shared, one byte per shard */
    int n, dup, err;
};

static void *claimer_main(void *arg)
{
    struct claimer *c = arg;
    struct err e = ERR_INIT;
    for (;;) {
        struct store_shard_work w;
        int rc = store_shard_claim(c->st, false, "uploaded", c->owner, 60000, &w, &e);
        if (rc == ERR_NOTFOUND)
            break;
        if (rc == ERR_AGAIN || rc == ERR_UNAVAILABLE)
            continue;
        if (rc < 0) {
            c->err++;
            break;
        }
        int idx = atoi(w.shard_id + 2);
        if (__atomic_fetch_add(&c->seen[idx], 1, __ATOMIC_RELAXED))
            c->dup++;
        struct store_shard_outcome o = {.bid = w.bid, .shard_id = w.shard_id, .from_state = "uploaded",
                                        .owner = c->owner, .state = "done", .status_name = "ingested",
                                        .status_type = "success", .ws = "ws"};
        if (store_shard_renew(c->st, w.shard_id, c->owner, 60000, &e) < 0 || store_shard_finish(c->st, &o, &e) < 0)
            c->err++;
        else
            c->n++;
        store_shard_work_release(&w);
    }
    return NULL;
}

/* shards/s of k claimers over n shards */
static double run_claims(int n, int k)
{
    char *target = NULL;
    char *dir = fresh(&target);
    struct store *st[8];
    struct claimer c[8];
    pthread_t th[8];
    st[0] = open_store(dir, target);
    for (int i = 1; i < k; i++)
        st[i] = open_store(dir, target);
    make_shards(st[0], n);
    unsigned char *seen = xcalloc((size_t)n, 1);
    double t0 = now_s();
    for (int i = 0; i < k; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].st = st[i];
        c[i].seen = seen;
        snprintf(c[i].owner, sizeof c[i].owner, "p%d", i);
        pthread_create(&th[i], NULL, claimer_main, &c[i]);
    }
    int done = 0, dup = 0, errs = 0;
    for (int i = 0; i < k; i++) {
        pthread_join(th[i], NULL);
        done += c[i].n, dup += c[i].dup, errs += c[i].err;
    }
    double dt = now_s() - t0;
    if (done != n || dup || errs) {
        fprintf(stderr, "claims k=%d: done %d of %d, %d claimed twice, %d errors\n", k, done, n, dup, errs);
        exit(1);
    }
    for (int i = k - 1; i >= 0; i--)
        store_close(st[i]);
    free(seen);
    free(dir);
    free(target);
    return n / dt;
}

/* shards/s finished by one handle without claims (owner NULL) */
static double run_plain(int n)
{
    char *target = NULL;
    char *dir = fresh(&target);
    struct store *st = open_store(dir, target);
    struct err e = ERR_INIT;
    make_shards(st, n);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "s-%d", i);
        struct store_shard_outcome o = {.bid = 1, .shard_id = id, .from_state = "uploaded", .state = "done",
                                        .status_name = "ingested", .status_type = "success", .ws = "ws"};
        if (store_shard_finish(st, &o, &e) < 0) {
            fprintf(stderr, "finish: %s\n", e.msg);
            exit(1);
        }
    }
    double dt = now_s() - t0;
    store_close(st);
    free(dir);
    free(target);
    return n / dt;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : getenv("BENCH_N") ? atoi(getenv("BENCH_N")) : 2000;
    if (n <= 0)
        n = 2000;
    log_set_level(LOG_WARN);
    const char *db = getenv("BENCH_DB") && *getenv("BENCH_DB") ? "postgres" : "sqlite";
    double plain = run_plain(n);
    for (int k = 1; k <= 4; k *= 2) {
        double r = run_claims(n, k);
        printf("bench=shard_claims_%s_%dproc %.0f/s baseline=finish_without_claim %.0f/s ratio=%.2f\n", db, k, r,
               plain, r / plain);
        fflush(stdout);
    }
    return 0;
}
