/*
 * bench_store_s3 — the blob interface on S3 (VBATCH_TEST_S3 + AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY, e.g. from scripts/s3-up.sh) against the local folder,
 * in-process, the same calls on both:
 *
 *  1. small blobs: N (default 500, argv[1] or BENCH_N) puts of 16 KB
 *     (store_blob_put), then N reads (store_blob_read), 1 thread and 4
 *     threads: blobs/s;
 *  2. a 64 MiB blob through the streaming writer (multipart upload on S3,
 *     16 MiB parts) and read back with store_blob_open: MB/s;
 *  3. 200 range reads of 16 KB at random offsets of that blob: reads/s.
 *
 * One line per figure: bench=<name> <value> baseline=<name> <value> ratio=<x>
 * (the baseline is the local folder, fsync included, in the same run).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "store/store.h"

static double now_s(void)
{
    return (double)time_mono_ns() / 1e9;
}

struct job {
    struct store *st;
    int from, to;
    bool read;
    const char *data;
    int fails;
};

static void *small_worker(void *ud)
{
    struct job *j = ud;
    for (int i = j->from; i < j->to; i++) {
        char key[64];
        snprintf(key, sizeof key, "bench/small/%06d", i);
        if (j->read) {
            char *d = NULL;
            size_t n = 0;
            if (store_blob_read(j->st, key, 1 << 20, &d, &n) < 0 || n != 16384)
                j->fails++;
            free(d);
        } else if (store_blob_put(j->st, key, j->data, 16384) < 0) {
            j->fails++;
        }
    }
    return NULL;
}

/* blobs/s of N puts or reads over `threads` threads. */
static double small(struct store *st, int n, int threads, bool read, const char *data)
{
    pthread_t th[8];
    struct job jobs[8];
    double t0 = now_s();
    for (int k = 0; k < threads; k++) {
        jobs[k] = (struct job){st, n * k / threads, n * (k + 1) / threads, read, data, 0};
        pthread_create(&th[k], NULL, small_worker, &jobs[k]);
    }
    int fails = 0;
    for (int k = 0; k < threads; k++) {
        pthread_join(th[k], NULL);
        fails += jobs[k].fails;
    }
    double dt = now_s() - t0;
    if (fails)
        fprintf(stderr, "bench: %d failures\n", fails);
    return n / dt;
}

static double big_write(struct store *st, const char *data, size_t size)
{
    struct store_blob_writer *w = NULL;
    double t0 = now_s();
    if (store_blob_writer_open(st, "bench/big", 0, &w) < 0)
        return 0;
    for (size_t off = 0; off < size; off += 1 << 20)
        if (store_blob_writer_write(w, data + off, 1 << 20) < 0) {
            store_blob_writer_abort(w);
            return 0;
        }
    if (store_blob_writer_finish(w) < 0)
        return 0;
    return size / 1e6 / (now_s() - t0);
}

static double big_read(struct store *st, size_t size)
{
    int fd;
    int64_t n = 0;
    char *buf = xmalloc(1 << 20);
    double t0 = now_s();
    if (store_blob_open(st, "bench/big", &fd, &n) < 0 || (size_t)n != size) {
        free(buf);
        return 0;
    }
    while (read(fd, buf, 1 << 20) > 0)
        ;
    close(fd);
    free(buf);
    return size / 1e6 / (now_s() - t0);
}

static double ranges(struct store *st, size_t size)
{
    char buf[16384];
    double t0 = now_s();
    for (int i = 0; i < 200; i++) {
        size_t got = 0;
        int64_t off = (int64_t)(((uint64_t)i * 2654435761u) % (size - sizeof buf));
        if (store_blob_read_range(st, "bench/big", off, sizeof buf, buf, &got) < 0 || got != sizeof buf)
            return 0;
    }
    return 200 / (now_s() - t0);
}

static void line(const char *name, double v, double base)
{
    printf("bench=%s %.1f baseline=local %.1f ratio=%.3f\n", name, v, base, base > 0 ? v / base : 0);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *url = getenv("VBATCH_TEST_S3");
    int n = argc > 1 ? atoi(argv[1]) : getenv("BENCH_N") ? atoi(getenv("BENCH_N")) : 500;
    struct store *loc = NULL, *s3 = NULL;
    struct err e = ERR_INIT;
    if (!url || !*url) {
        fprintf(stderr, "bench_store_s3: set VBATCH_TEST_S3 (scripts/s3-up.sh prints it)\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    char d1[] = "/tmp/vbatch-bench-s3-XXXXXX", d2[] = "/tmp/vbatch-bench-s3-XXXXXX";
    if (!mkdtemp(d1) || !mkdtemp(d2) || store_open(d1, &loc) < 0 || store_open(d2, &s3) < 0)
        return 1;
    char rnd[13];
    rand_alnum(rnd, 12);
    const char *q = strchr(url, '?');
    size_t bl = q ? (size_t)(q - url) : strlen(url);
    char *u = xasprintf("%.*s/bench-%s%s", (int)bl, url, rnd, q ? q : "");
    if (store_blobs_configure(s3, u, NULL, NULL, &e) < 0) {
        fprintf(stderr, "bench_store_s3: %s\n", e.msg);
        return 1;
    }
    free(u);
    size_t big = 64 << 20;
    char *data = xmalloc(big);
    rand_bytes(data, big);

    double lp1 = small(loc, n, 1, false, data), sp1 = small(s3, n, 1, false, data);
    line("put_16k_1thread_per_s", sp1, lp1);
    double lg1 = small(loc, n, 1, true, NULL), sg1 = small(s3, n, 1, true, NULL);
    line("get_16k_1thread_per_s", sg1, lg1);
    double lp4 = small(loc, n, 4, false, data), sp4 = small(s3, n, 4, false, data);
    line("put_16k_4threads_per_s", sp4, lp4);
    double lg4 = small(loc, n, 4, true, NULL), sg4 = small(s3, n, 4, true, NULL);
    line("get_16k_4threads_per_s", sg4, lg4);
    double lw = big_write(loc, data, big), sw = big_write(s3, data, big);
    line("write_64MiB_MB_per_s", sw, lw);
    double lr = big_read(loc, big), sr = big_read(s3, big);
    line("read_64MiB_MB_per_s", sr, lr);
    double lrg = ranges(loc, big), srg = ranges(s3, big);
    line("range_16k_per_s", srg, lrg);

    store_blob_delete_prefix(s3, "bench");
    store_blob_delete_prefix(loc, "bench");
    store_close(loc);
    store_close(s3);
    free(data);
    char *cmd = xasprintf("rm -rf '%s' '%s'", d1, d2);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_store_s3: cannot remove the temp folders\n");
    free(cmd);
    return 0;
}
