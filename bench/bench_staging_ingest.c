/*
 * bench_staging_ingest — in-process figures for the staging core (no HTTP):
 *
 *  1. tar-shard ingest MB/s: signed PUT sink + indexer (libarchive, blob
 *     writes, syncfs, one transaction per shard) for 4 shards of 256
 *     ~100 KB JPEGs, against a dd-like baseline (1 MiB writes + fsync of
 *     the same byte count into the same data folder).
 *  2. count and list-page cost for a 10k-item batch vs a big one (default
 *     1,000,000 items, argv[1] or BENCH_BIG): first page and a deep page
 *     (keyset token near the end).  The ratio should stay near 1.
 *
 * One line per figure: bench=<name> <value> baseline=<name> <value> ratio=<x>.
 * The data folder is a temp folder under $BENCH_DIR or /tmp.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "base/base.h"
#include "staging/staging.h"
#include "store/store.h"
#include "vision/vision.h"

static double now_s(void)
{
    return (double)time_mono_ns() / 1e9;
}

static uint8_t *noise_jpeg(size_t *len, uint32_t seed)
{
    struct vis_image *img = vis_image_new(320, 240, VIS_BGR);
    uint8_t *out = NULL;
    for (int y = 0; y < 240; y++)
        for (int x = 0; x < 320 * 3; x++) {
            seed = seed * 1103515245u + 12345u;
            img->px[(size_t)y * (size_t)img->stride + (size_t)x] = (uint8_t)(((seed >> 16) & 0x3f) + x / 8);
        }
    if (vis_encode_jpeg(img, 92, &out, len) < 0)
        abort();
    vis_image_free(img);
    return out;
}

static char *qv(const char *url, const char *name)
{
    char pat[32];
    snprintf(pat, sizeof pat, "%s=", name);
    const char *p = strstr(url, pat);
    p += strlen(pat);
    return strndup(p, strcspn(p, "&"));
}

static void put_url(struct staging *s, const char *url, const void *data, size_t len)
{
    const char *p = strstr(url, "/blobs/") + 7;
    char *key = strndup(p, strcspn(p, "?"));
    char *m = qv(url, "method"), *e = qv(url, "expires"), *l = qv(url, "limit"), *g = qv(url, "signature");
    struct staging_put *put;
    if (staging_put_open(s, key, m, e, l, g, (int64_t)len, &put, NULL) < 0)
        abort();
    for (size_t off = 0; off < len; off += 65536)
        if (staging_put_write(put, (const uint8_t *)data + off, MIN(65536, len - off), NULL) < 0)
            abort();
    if (staging_put_finish(put, NULL) < 0)
        abort();
    free(key), free(m), free(e), free(l), free(g);
}

static double dd_baseline(const char *dir, size_t total)
{
    char *path = xasprintf("%s/dd.bin", dir);
    uint8_t *chunk = xmalloc(1 << 20);
    memset(chunk, 0x5a, 1 << 20);
    double t0 = now_s();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (size_t done = 0; done < total; done += 1 << 20)
        if (write(fd, chunk, MIN((size_t)1 << 20, total - done)) < 0)
            abort();
    fsync(fd);
    close(fd);
    double dt = now_s() - t0;
    unlink(path);
    free(path);
    free(chunk);
    return (double)total / 1e6 / dt;
}

static double median3(const double *v)
{
    double a = v[0], b = v[1], c = v[2];
    return MAX(MIN(a, b), MIN(MAX(a, b), c));
}

static void bench_tar(struct store *st, struct staging *s, const char *dir)
{
    enum { SHARDS = 4, PER = 256 };
    size_t jl[8];
    uint8_t *jp[8];
    for (int i = 0; i < 8; i++)
        jp[i] = noise_jpeg(&jl[i], (uint32_t)i + 1);
    uint8_t *tars[SHARDS];
    size_t tlen[SHARDS], total = 0;
    for (int k = 0; k < SHARDS; k++) {
        size_t cap = PER * (jl[0] * 2 + 1024) + 65536, used = 0;
        tars[k] = xmalloc(cap);
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        archive_write_open_memory(a, tars[k], cap, &used);
        for (int i = 0; i < PER; i++) {
            char name[64];
            snprintf(name, sizeof name, "s%d_%04d.jpg", k, i);
            struct archive_entry *e = archive_entry_new();
            archive_entry_set_pathname(e, name);
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, (la_int64_t)jl[i % 8]);
            archive_write_header(a, e);
            archive_write_data(a, jp[i % 8], jl[i % 8]);
            archive_entry_free(e);
        }
        archive_write_close(a);
        archive_write_free(a);
        tlen[k] = used;
        total += used;
    }
    double best = 0, best_dd = 0, mbs_v[3], dd_v[3];
    for (int round = 0; round < 3; round++) {
    char batch[32];
    snprintf(batch, sizeof batch, "tarbench%d", round);
    double t0 = now_s();
    for (int k = 0; k < SHARDS; k++) {
        json_t *r = NULL;
        if (staging_bulk_upload_url(s, "ws", batch, NULL, &r, NULL) < 0)
            abort();
        put_url(s, json_string_value(json_object_get(json_object_get(r, "signedURLDetails"), "uploadURL")), tars[k],
                tlen[k]);
        json_decref(r);
    }
    double t_put = now_s() - t0;
    int n = 0;
    staging_index_pending(s, &n);
    double dt = now_s() - t0;
    fprintf(stderr, "(tar: put %.3f s, index %.3f s)\n", t_put, dt - t_put);
    json_t *r = NULL;
    staging_batch_count(s, "ws", batch, NULL, &r, NULL);
    if (json_integer_value(json_object_get(r, "count")) != SHARDS * PER) {
        fprintf(stderr, "tar bench: count mismatch\n");
        exit(1);
    }
    json_decref(r);
    mbs_v[round] = (double)total / 1e6 / dt;
    dd_v[round] = dd_baseline(dir, total);
    best = MAX(best, mbs_v[round]);
    best_dd = MAX(best_dd, dd_v[round]);
    }
    /* Medians of 3 interleaved rounds: the shared disk is noisy. */
    double mbs = median3(mbs_v), dd = median3(dd_v);
    printf("bench=staging_tar_ingest mb_s=%.1f images_s=%.0f bytes=%zu baseline=dd_write_fsync baseline_mb_s=%.1f "
           "ratio=%.2f best_mb_s=%.1f best_dd_mb_s=%.1f\n", mbs, SHARDS * PER * mbs * 1e6 / (double)total, total, dd,
           mbs / dd, best, best_dd);
    for (int k = 0; k < SHARDS; k++)
        free(tars[k]);
    for (int i = 0; i < 8; i++)
        free(jp[i]);
    (void)st;
}

static void fill(struct store *st, struct staging *s, const char *batch, long n)
{
    if (staging_output_batch_create(s, "ws", batch, NULL, NULL) < 0)
        abort();
    sqlite3 *db = store_db_acquire(st);
    sqlite3_stmt *q = NULL;
    int64_t bid = 0;
    sqlite3_prepare_v2(db, "SELECT bid FROM batches WHERE workspace='ws' AND batch_id=?", -1, &q, NULL);
    sqlite3_bind_text(q, 1, batch, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW)
        bid = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    store_tx_begin(db);
    sqlite3_prepare_v2(db, "INSERT INTO items(bid, part, name, content_type, mime, blob_key, size, created_ms)"
                           " VALUES(?, 'results', ?, 'image', 'image/jpeg', ?, 1000, 0)", -1, &q, NULL);
    for (long i = 0; i < n; i++) {
        char name[32], key[64];
        snprintf(name, sizeof name, "img%08ld.jpg", i);
        snprintf(key, sizeof key, "b/%lld/i/%08ld", (long long)bid, i);
        sqlite3_bind_int64(q, 1, bid);
        sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, key, -1, SQLITE_TRANSIENT);
        sqlite3_step(q);
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    char *sql = xasprintf("UPDATE batches SET item_count=%ld WHERE bid=%lld;"
                          "INSERT INTO part_counts(bid, part, n) VALUES(%lld, 'results', %ld)",
                          n, (long long)bid, (long long)bid, n);
    store_exec(db, sql);
    free(sql);
    store_tx_commit(db);
    store_db_release(st, db);
}

struct reads {
    double count_ms, first_ms, deep_ms, part_count_ms;
};

static struct reads measure(struct staging *s, const char *batch)
{
    struct reads r = {0};
    enum { REPS = 50 };
    json_t *out = NULL;
    double t0 = now_s();
    for (int i = 0; i < 20 * REPS; i++) {
        staging_batch_count(s, "ws", batch, NULL, &out, NULL);
        json_decref(out);
    }
    r.count_ms = (now_s() - t0) * 1000 / (20 * REPS);
    t0 = now_s();
    for (int i = 0; i < REPS; i++) {
        staging_list_items(s, "ws", batch, NULL, 100, NULL, &out, NULL);
        json_decref(out);
    }
    r.first_ms = (now_s() - t0) * 1000 / REPS;
    /* a token near the end: keyset on the largest id minus 150 */
    struct staging_item *it;
    int n;
    int64_t total = 0;
    staging_items_count(s, "ws", batch, NULL, &total, NULL);
    staging_items_page(s, "ws", batch, NULL, 0, 1, &it, &n, NULL);
    int64_t first_id = it[0].id;
    staging_items_free(it, n);
    char tok_raw[40];
    int tl = snprintf(tok_raw, sizeof tok_raw, "k1:%lld", (long long)(first_id + total - 150));
    char *tok = base64url_encode(tok_raw, (size_t)tl);
    t0 = now_s();
    for (int i = 0; i < REPS; i++) {
        staging_list_items(s, "ws", batch, NULL, 100, tok, &out, NULL);
        json_decref(out);
    }
    r.deep_ms = (now_s() - t0) * 1000 / REPS;
    free(tok);
    t0 = now_s();
    for (int i = 0; i < 5; i++) {
        staging_batch_count(s, "ws", batch, "results", &out, NULL);
        json_decref(out);
    }
    r.part_count_ms = (now_s() - t0) * 1000 / 5;
    return r;
}

int main(int argc, char **argv)
{
    long big = argc > 1 ? atol(argv[1]) : getenv("BENCH_BIG") ? atol(getenv("BENCH_BIG")) : 1000000;
    const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
    char *dir = xasprintf("%s/vbatch-bench-stg-XXXXXX", base);
    if (!mkdtemp(dir))
        return 1;
    log_set_level(LOG_WARN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct store *st = NULL;
    struct staging *s = NULL;
    struct staging_opts o;
    staging_opts_default(&o);
    if (store_open(dir, &st) < 0 || staging_new(st, &o, &s, NULL) < 0)
        return 1;
    bench_tar(st, s, dir);

    double t0 = now_s();
    fill(st, s, "small", 10000);
    fill(st, s, "big", big);
    double fill_s = now_s() - t0;
    /* first pass warms the caches; the second is reported */
    struct reads a = measure(s, "small"), b = measure(s, "big");
    a = measure(s, "small");
    b = measure(s, "big");
    printf("bench=staging_count_%ld ms=%.4f baseline=staging_count_10000 baseline_ms=%.4f ratio=%.2f\n", big,
           b.count_ms, a.count_ms, b.count_ms / a.count_ms);
    printf("bench=staging_list_first_page_%ld ms=%.3f baseline=staging_list_first_page_10000 baseline_ms=%.3f "
           "ratio=%.2f\n", big, b.first_ms, a.first_ms, b.first_ms / a.first_ms);
    printf("bench=staging_list_deep_page_%ld ms=%.3f baseline=staging_list_deep_page_10000 baseline_ms=%.3f "
           "ratio=%.2f\n", big, b.deep_ms, a.deep_ms, b.deep_ms / a.deep_ms);
    printf("bench=staging_count_part_%ld ms=%.2f baseline=staging_count_part_10000 baseline_ms=%.2f ratio=%.2f\n", big, b.part_count_ms, a.part_count_ms,
           b.part_count_ms / a.part_count_ms);
    fprintf(stderr, "(filled %ld items in %.1f s)\n", big + 10000, fill_s);
    staging_free(s);
    store_close(st);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    free(cmd);
    free(dir);
    return 0;
}
