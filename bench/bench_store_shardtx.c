/*
 * bench_store_shardtx — the SQLite cost of one local tar shard as the
 * staging PUT records it (issue 12), in-process, one thread:
 *
 *   per shard: store_upload_tar_create (the signed URL's row: a small
 *   transaction), store_upload_get, then store_upload_done_indexed with
 *   500 items (the shard's one write transaction: upload used, shard
 *   row, 500 item rows, counts, usage).  N shards (default 200, argv[1]
 *   or BENCH_N) per run, a fresh data folder per run.
 *
 * Variants, alternating over ROUNDS (default 3, argv[2]) rounds in the
 * same process (the disk's speed swings): "plain" (statement cache and
 * checkpointer off: VBATCH_DB_SQLITE_STMT_CACHE=0,
 * VBATCH_DB_SQLITE_CHECKPOINTER=0, i.e. SQLite's defaults as before),
 * "cache" (statement cache only), "cache+ckpt" (both, the default).
 * Figures per variant, medians over the rounds: µs per 500-row shard
 * transaction (mean over the run), and the small transaction's p99 and
 * max in µs (where an auto-checkpoint inside a commit shows).
 *
 * One line per figure: bench=<name> <value> baseline=<name> <value> ratio=<x>.
 * The data folder is a temp folder under $BENCH_DIR or /tmp.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "store/store.h"
#include "store/store_staging.h"

#define ITEMS 500
#define MAX_ROUNDS 16

static double now_us(void)
{
    return (double)time_mono_ns() / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct fig {
    double shard_us; /* mean µs per shard transaction */
    double small_p99, small_max;
};

static void die(const char *what, const struct err *e)
{
    fprintf(stderr, "bench_store_shardtx: %s: %s\n", what, e->msg);
    exit(1);
}

static struct fig run(int n, const char *cache, const char *ckpt)
{
    setenv("VBATCH_DB_SQLITE_STMT_CACHE", cache, 1);
    setenv("VBATCH_DB_SQLITE_CHECKPOINTER", ckpt, 1);
    const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
    char *dir = xasprintf("%s/vbatch-bench-shardtx-XXXXXX", base);
    if (!mkdtemp(dir))
        abort();
    struct store *st = NULL;
    struct err e = ERR_INIT;
    if (store_open_ex(dir, NULL, &st, &e) < 0 || store_staging_migrate(st, &e) < 0)
        die("store", &e);
    struct store_item_new *items = xcalloc(ITEMS, sizeof *items);
    char (*names)[48] = xcalloc(ITEMS, sizeof *names);
    double *small = xcalloc((size_t)n, sizeof *small);
    double shard_total = 0;
    for (int s = 0; s < n; s++) {
        char id[16], key[96], blob[128];
        struct store_upload u;
        snprintf(id, sizeof id, "s-%05d", s);
        double t0 = now_us();
        if (store_upload_tar_create(st, "ws", "bench", NULL, id, 1 << 30, 86400000, key, &e) < 0)
            die("upload create", &e);
        small[s] = now_us() - t0;
        if (store_upload_get(st, key, &u, &e) < 0)
            die("upload get", &e);
        snprintf(blob, sizeof blob, "ws/bench/shards/%s.tar", id);
        for (int i = 0; i < ITEMS; i++) {
            snprintf(names[i], sizeof names[i], "%s-%04d.jpg", id, i);
            items[i] = (struct store_item_new){.name = names[i], .shard_id = id, .content_type = "image",
                                               .mime = "image/jpeg", .blob_key = blob, .size = 16000,
                                               .ranged = true, .offset = (int64_t)i * 16896 + 512};
        }
        struct store_shard_outcome o = {.bid = u.bid, .shard_id = id, .from_state = "uploaded", .state = "done",
                                        .status_name = "ingested", .status_type = "success", .objects = ITEMS,
                                        .items = items, .nitems = ITEMS, .ws = "ws"};
        t0 = now_us();
        if (store_upload_done_indexed(st, key, &u, (int64_t)ITEMS * 16896, &o, &e) < 0)
            die("upload done", &e);
        shard_total += now_us() - t0;
        store_upload_release(&u);
    }
    store_close(st);
    qsort(small, (size_t)n, sizeof *small, cmp_d);
    struct fig f = {shard_total / n, small[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], small[n - 1]};
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_store_shardtx: could not remove %s\n", dir);
    free(cmd);
    free(small);
    free(names);
    free(items);
    free(dir);
    return f;
}

static double med(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : getenv("BENCH_N") ? atoi(getenv("BENCH_N")) : 200;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (n <= 0)
        n = 200;
    if (rounds <= 0 || rounds > MAX_ROUNDS)
        rounds = 3;
    log_set_level(LOG_WARN);
    static const char *const names[3] = {"plain", "cache", "cache+ckpt"};
    static const char *const env[3][2] = {{"0", "0"}, {"1", "0"}, {"1", "1"}};
    double shard[3][MAX_ROUNDS], p99[3][MAX_ROUNDS], mx[3][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 3; k++) {
            int v = (k + r) % 3; /* alternate the order */
            struct fig f = run(n, env[v][0], env[v][1]);
            shard[v][r] = f.shard_us, p99[v][r] = f.small_p99, mx[v][r] = f.small_max;
            fprintf(stderr, "round %d %-10s shard tx %.0f us, small tx p99 %.0f us max %.0f us\n", r + 1, names[v],
                    f.shard_us, f.small_p99, f.small_max);
        }
    double ms[3], mp[3], mm[3];
    for (int v = 0; v < 3; v++)
        ms[v] = med(shard[v], rounds), mp[v] = med(p99[v], rounds), mm[v] = med(mx[v], rounds);
    for (int v = 1; v < 3; v++) {
        printf("bench=shard_tx_500_%s %.0fus baseline=shard_tx_500_plain %.0fus ratio=%.2f\n", names[v], ms[v],
               ms[0], ms[0] / ms[v]);
        printf("bench=small_tx_p99_%s %.0fus baseline=small_tx_p99_plain %.0fus ratio=%.2f\n", names[v], mp[v],
               mp[0], mp[0] / mp[v]);
        printf("bench=small_tx_max_%s %.0fus baseline=small_tx_max_plain %.0fus ratio=%.2f\n", names[v], mm[v],
               mm[0], mm[0] / mm[v]);
    }
    return 0;
}
