/* Unit tests of deletion and quotas in the store (store/batches.c,
 * store/jobs.c, store/quotas.c): the workspace's staged bytes kept with
 * its items, batch and job deletion (refused while a job runs; blobs and
 * rows gone; the id usable again), and the quotas, checked in the
 * transaction that adds, holding across two store handles (processes). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "store/store_staging.h"
#include "t.h"
#include "t_pg.h"

#define DAY (24LL * 3600 * 1000)

static struct store *open_tmp(void)
{
    struct store *st = NULL;
    struct err e = ERR_INIT;
    char *d = strdup("/tmp/vbatch-squota-XXXXXX");
    if (!mkdtemp(d))
        abort();
    if (t_open(d, &st) < 0)
        T_FAIL("store_open failed");
    free(d);
    if (store_staging_migrate(st, &e) < 0 || store_jobs_migrate(st, &e) < 0)
        T_FAIL("migrate: %s", e.msg);
    return st;
}

static struct store *open_second(struct store *st)
{
    struct store *b = NULL;
    if (t_open(store_data_dir(st), &b) < 0)
        T_FAIL("second store_open failed");
    return b;
}

/* An image item of size bytes in ws/batch with a real blob. */
static int add_image(struct store *st, const char *ws, const char *batch, const char *name, int64_t size,
                     struct err *e)
{
    struct store_batch b;
    int rc = store_batch_get_or_create(st, ws, batch, NULL, "single", DAY, &b, e);
    if (rc < 0)
        return rc;
    char key[96];
    snprintf(key, sizeof key, "b/%lld/i/%s", (long long)b.bid, name);
    char *data = xcalloc(1, (size_t)size);
    if (store_blob_put(st, key, data, (size_t)size) < 0)
        T_FAIL("store_blob_put %s", key);
    free(data);
    struct store_item_new it = {.name = name, .content_type = "image", .mime = "image/png", .blob_key = key, .size = size};
    return store_item_add(st, ws, batch, b.bid, false, &it, e);
}

static bool blob_exists(struct store *st, const char *key)
{
    char *data = NULL;
    size_t len = 0;
    int rc = store_blob_read(st, key, 1 << 20, &data, &len);
    free(data);
    return rc == 0;
}

static int make_job(struct store *st, const char *ws, const char *job_id, const char *batch, struct err *e)
{
    struct store_task_range t[1] = {{0, 2, 2}};
    struct store_job_new jn = {
        .ws = ws, .job_id = job_id, .name = job_id, .definition = "{}", .wf_def = "{}",
        .image_input = "image", .outputs = "[]", .batch = batch, .agg_format = "jsonl",
        .params = "{}", .timeout_s = 3600, .max_fail_rate = -1, .workers = 1, .machine_type = "cpu",
        .items_total = 2,
    };
    int64_t pk = 0;
    int rc = store_job_create(st, &jn, t, 1, json_object(), &pk, e);
    return rc;
}

static int64_t job_pk(struct store *st, const char *ws, const char *job_id)
{
    int64_t pk = 0;
    if (store_job_find(st, ws, job_id, &pk, NULL, NULL) < 0)
        T_FAIL("store_job_find");
    return pk;
}

BOTH(staged_bytes_follow_items_and_deletion)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    int64_t used = -1;
    ASSERT_OK(store_ws_staged_bytes(st, "ws", &used, &e));
    ASSERT_EQ(used, 0);
    ASSERT_OK(add_image(st, "ws", "b1", "a.png", 100, &e));
    ASSERT_OK(add_image(st, "ws", "b1", "b.png", 50, &e));
    ASSERT_OK(add_image(st, "ws", "b2", "c.png", 7, &e));
    ASSERT_OK(add_image(st, "other", "b1", "d.png", 1000, &e));
    ASSERT_OK(store_ws_staged_bytes(st, "ws", &used, &e));
    ASSERT_EQ(used, 157);

    struct store_batch b1;
    ASSERT_OK(store_batch_find(st, "ws", "b1", &b1, &e));
    char key[96];
    snprintf(key, sizeof key, "b/%lld/i/a.png", (long long)b1.bid);
    ASSERT(blob_exists(st, key));
    ASSERT_OK(store_batch_delete(st, "ws", "b1", &e));
    ASSERT(!blob_exists(st, key));
    ASSERT_EQ(store_batch_find(st, "ws", "b1", &b1, &e), ERR_NOTFOUND);
    ASSERT_EQ(store_batch_delete(st, "ws", "b1", &e), ERR_NOTFOUND);
    ASSERT_OK(store_ws_staged_bytes(st, "ws", &used, &e));
    ASSERT_EQ(used, 7);
    ASSERT_OK(store_ws_staged_bytes(st, "other", &used, &e));
    ASSERT_EQ(used, 1000);
    /* the other workspace's batch of the same id is untouched */
    ASSERT_OK(store_batch_find(st, "other", "b1", &b1, &e));
    /* the id can be used again, from nothing */
    ASSERT_OK(add_image(st, "ws", "b1", "z.png", 3, &e));
    int64_t n = -1;
    ASSERT_OK(store_batch_count(st, "ws", "b1", NULL, &n, &e));
    ASSERT_EQ(n, 1);

    /* expiry keeps the count too */
    int64_t bid = 0;
    ASSERT_OK(store_batch_expire_one(st, time_now_ms() + 2 * DAY, &bid, &e));
    ASSERT_OK(store_batch_expire_one(st, time_now_ms() + 2 * DAY, &bid, &e));
    ASSERT_OK(store_ws_staged_bytes(st, "ws", &used, &e));
    ASSERT(used == 0 || used == 3 || used == 7); /* two of the three batches went */
    while (store_batch_expire_one(st, time_now_ms() + 2 * DAY, &bid, &e) == 0)
        ;
    ASSERT_OK(store_ws_staged_bytes(st, "ws", &used, &e));
    ASSERT_EQ(used, 0);
    ASSERT_OK(store_ws_staged_bytes(st, "other", &used, &e));
    ASSERT_EQ(used, 0);
    store_close(st);
}

BOTH(batch_delete_refused_while_a_job_runs_and_pending_urls_fail)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    ASSERT_OK(add_image(st, "ws", "in", "a.png", 10, &e));
    ASSERT_OK(make_job(st, "ws", "j1", "in", &e));
    ASSERT_OK(store_batch_create_output(st, "ws", "j1-processing", NULL, DAY, &e));
    ASSERT_EQ(store_batch_delete(st, "ws", "in", &e), ERR_EXISTS);
    ASSERT(strstr(e.msg, "running job 'j1'") != NULL);
    /* its output batch is written by it: refused too */
    ASSERT_EQ(store_batch_delete(st, "ws", "j1-processing", &e), ERR_EXISTS);
    /* a job whose batch was deleted cannot be created */
    ASSERT_EQ(make_job(st, "ws", "j2", "nope", &e), ERR_NOTFOUND);
    ASSERT(strstr(e.msg, "batch 'nope'") != NULL);
    /* job delete: refused while running, then the job and its outputs go */
    ASSERT_EQ(store_job_delete(st, "ws", "j1", &e), ERR_EXISTS);
    ASSERT(strstr(e.msg, "abort it first") != NULL);
    ASSERT_OK(store_job_end_error(st, job_pk(st, "ws", "j1"), "aborted", "stop", "job-aborted", &e));
    ASSERT_EQ(store_blob_put(st, "jobs/ws/j1/processing/task-00001.jsonl", "{}\n", 3), 0);
    ASSERT_EQ(store_blob_put(st, "jobs/ws/j10/keep.jsonl", "{}\n", 3), 0);
    ASSERT_OK(store_job_delete(st, "ws", "j1", &e));
    ASSERT(!blob_exists(st, "jobs/ws/j1/processing/task-00001.jsonl"));
    ASSERT(blob_exists(st, "jobs/ws/j10/keep.jsonl")); /* another job's folder */
    ASSERT_OK(store_blob_trash_purge(st, NULL, &e)); /* nothing left queued */
    ASSERT_EQ(job_pk(st, "ws", "j1"), 0);
    struct store_batch b;
    ASSERT_EQ(store_batch_find(st, "ws", "j1-processing", &b, &e), ERR_NOTFOUND);
    ASSERT_EQ(store_job_delete(st, "ws", "j1", &e), ERR_NOTFOUND);
    ASSERT_OK(store_batch_delete(st, "ws", "in", &e));

    /* a pending upload URL of a deleted batch is refused */
    char key[96];
    struct store_upload u;
    ASSERT_OK(store_upload_tar_create(st, "ws", "up", NULL, "sh-1", 1000, DAY, key, &e));
    ASSERT_OK(store_upload_get(st, key, &u, &e));
    ASSERT(u.pending);
    store_upload_release(&u);
    ASSERT_OK(store_batch_delete(st, "ws", "up", &e));
    ASSERT_EQ(store_upload_get(st, key, &u, &e), ERR_NOTFOUND);
    store_close(st);
}

BOTH(quotas_defaults_workspace_values_and_answers)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct store_quota def = {100, 1, 2, 0, 0}, q, use;
    store_quota_defaults_set(st, &def, DAY);
    ASSERT_OK(add_image(st, "ws", "b", "a.png", 60, &e));
    ASSERT_EQ(add_image(st, "ws", "b", "b.png", 41, &e), ERR_LIMIT);
    ASSERT(strstr(e.msg, "quota is 100") != NULL);
    ASSERT_OK(add_image(st, "ws", "b", "b.png", 40, &e)); /* exactly the quota */
    char key[96];
    /* at the quota: no new upload URL */
    ASSERT_EQ(store_upload_tar_create(st, "ws", "b2", NULL, "s0", 1000, DAY, key, &e), ERR_LIMIT);
    /* the workspace's own value wins; 0 = unlimited */
    ASSERT_OK(store_quota_set(st, "ws", &(struct store_quota){0, -1, -1, -1, -1}, &e));
    ASSERT_OK(add_image(st, "ws", "b", "c.png", 500, &e));
    /* pending upload URLs: 2 */
    ASSERT_OK(store_upload_tar_create(st, "ws", "b2", NULL, "s1", 1000, DAY, key, &e));
    ASSERT_OK(store_upload_video_create(st, "ws", "b3", NULL, "v.mp4", "u1", 1000, DAY, key, &e));
    ASSERT_EQ(store_upload_tar_create(st, "ws", "b2", NULL, "s2", 1000, DAY, key, &e), ERR_QUOTA);
    ASSERT_EQ(store_upload_video_create(st, "ws", "b3", NULL, "v.mp4", "u2", 1000, DAY, key, &e), ERR_QUOTA);
    /* another workspace has its own count */
    ASSERT_OK(store_upload_tar_create(st, "other", "b2", NULL, "o1", 1000, DAY, key, &e));
    /* using one frees a place */
    struct store_upload u;
    ASSERT_OK(store_upload_get(st, key, &u, &e));
    ASSERT_OK(store_upload_done(st, key, &u, NULL, 10, &e));
    store_upload_release(&u);
    ASSERT_OK(store_upload_tar_create(st, "other", "b2", NULL, "o2", 1000, DAY, key, &e));
    /* running jobs: 1 */
    ASSERT_OK(make_job(st, "ws", "j1", "b", &e));
    ASSERT_EQ(make_job(st, "ws", "j2", "b", &e), ERR_QUOTA);
    ASSERT(strstr(e.msg, "running jobs") != NULL);
    ASSERT_OK(store_quota_get(st, "ws", &q, &use, &e));
    ASSERT_EQ(q.max_staged_bytes, 0);
    ASSERT_EQ(q.max_jobs, 1);
    ASSERT_EQ(q.max_pending_uploads, 2);
    ASSERT_EQ(use.max_staged_bytes, 600);
    ASSERT_EQ(use.max_jobs, 1);
    ASSERT_EQ(use.max_pending_uploads, 2);
    ASSERT_OK(store_job_end_error(st, job_pk(st, "ws", "j1"), "failed", "x", "job-failed", &e));
    ASSERT_OK(make_job(st, "ws", "j2", "b", &e));
    /* back to the default */
    ASSERT_OK(store_quota_set(st, "ws", &(struct store_quota){STORE_QUOTA_DEFAULT, 3, -1, -1, -1}, &e));
    ASSERT_OK(store_quota_get(st, "ws", &q, NULL, &e));
    ASSERT_EQ(q.max_staged_bytes, 100);
    ASSERT_EQ(q.max_jobs, 3);
    ASSERT_EQ(store_quota_set(st, "ws", &(struct store_quota){-5, -1, -1, -1, -1}, &e), ERR_INVALID);
    store_close(st);
}

struct racer {
    struct store *st;
    char job[16];
    int rc;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    struct err e = ERR_INIT;
    do
        r->rc = make_job(r->st, "ws", r->job, "b", &e);
    while (r->rc == ERR_AGAIN || r->rc == ERR_UNAVAILABLE); /* a busy database: try again */
    return NULL;
}

BOTH(jobs_quota_holds_across_two_processes)
{
    enum { K = 6 };
    struct store *a = open_tmp();
    struct store *b = open_second(a);
    struct err e = ERR_INIT;
    ASSERT_OK(add_image(a, "ws", "b", "a.png", 1, &e));
    ASSERT_OK(store_quota_set(a, "ws", &(struct store_quota){-1, 2, -1, -1, -1}, &e));
    struct racer r[K];
    pthread_t th[K];
    for (int i = 0; i < K; i++) {
        r[i].st = i % 2 ? b : a;
        snprintf(r[i].job, sizeof r[i].job, "race-%d", i);
        ASSERT_EQ(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    }
    int ok = 0, quota = 0;
    for (int i = 0; i < K; i++) {
        pthread_join(th[i], NULL);
        if (r[i].rc == 0)
            ok++;
        else if (r[i].rc == ERR_QUOTA)
            quota++;
        else
            fprintf(stderr, "  racer %d: %s\n", i, err_str(r[i].rc));
    }
    ASSERT_EQ(ok, 2);
    ASSERT_EQ(quota, K - 2);
    store_close(b);
    store_close(a);
}

BOTH(workspace_rate_limit_is_one_bucket_for_every_handle)
{
    struct store *a = open_tmp();
    struct store *b = open_second(a);
    struct err e = ERR_INIT;
    struct store_quota def = {0, 0, 0, 7, 0}; /* the serve default: 7/s, burst = rate */
    int64_t rate, burst, wait;
    const int64_t t0 = 1700000000000;

    store_quota_defaults_set(a, &def, DAY);
    ASSERT_OK(store_rate_limits(a, "ws", &rate, &burst, &e));
    ASSERT_EQ(rate, 7);
    ASSERT_EQ(burst, 0);
    ASSERT_OK(store_quota_set(a, "ws", &(struct store_quota){-1, -1, -1, 2, 4}, &e));
    ASSERT_OK(store_rate_limits(b, "ws", &rate, &burst, &e));
    ASSERT_EQ(rate, 2);
    ASSERT_EQ(burst, 4);
    /* a burst of 4 over both handles (= processes), then refused */
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(store_rate_take(i % 2 ? b : a, "ws", 2, 4, t0, &wait, &e));
        ASSERT_EQ(wait, 0);
    }
    ASSERT_OK(store_rate_take(a, "ws", 2, 4, t0, &wait, &e));
    ASSERT_EQ(wait, 500); /* one request every 500 ms */
    ASSERT_OK(store_rate_take(b, "ws", 2, 4, t0 + 499, &wait, &e));
    ASSERT_EQ(wait, 1);
    /* refusals counted nothing: one more at +500 ms, then 500 ms again */
    ASSERT_OK(store_rate_take(b, "ws", 2, 4, t0 + 500, &wait, &e));
    ASSERT_EQ(wait, 0);
    ASSERT_OK(store_rate_take(a, "ws", 2, 4, t0 + 500, &wait, &e));
    ASSERT_EQ(wait, 500);
    /* after a long pause the burst is back, not more */
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(store_rate_take(a, "ws", 2, 4, t0 + 60000, &wait, &e));
        ASSERT_EQ(wait, 0);
    }
    ASSERT_OK(store_rate_take(b, "ws", 2, 4, t0 + 60000, &wait, &e));
    ASSERT(wait > 0);
    /* another workspace has its own bucket; rate 0 = no limit */
    ASSERT_OK(store_rate_take(a, "other", 2, 4, t0 + 60000, &wait, &e));
    ASSERT_EQ(wait, 0);
    ASSERT_OK(store_rate_take(a, "ws", 0, 0, t0 + 60000, &wait, &e));
    ASSERT_EQ(wait, 0);
    /* several at once (a process reserving ahead): all n, else one, else none */
    int64_t got;
    ASSERT_OK(store_rate_take_n(a, "n", 10, 10, t0, 6, &got, &wait, &e));
    ASSERT_EQ(got, 6);
    ASSERT_EQ(wait, 0);
    ASSERT_OK(store_rate_take_n(b, "n", 10, 10, t0, 6, &got, &wait, &e)); /* 4 left: one */
    ASSERT_EQ(got, 1);
    ASSERT_OK(store_rate_take_n(b, "n", 10, 10, t0, 3, &got, &wait, &e));
    ASSERT_EQ(got, 3);
    ASSERT_OK(store_rate_take_n(a, "n", 10, 10, t0, 3, &got, &wait, &e));
    ASSERT_EQ(got, 0);
    ASSERT_EQ(wait, 100);
    /* back to the default; negative values refused */
    ASSERT_OK(store_quota_set(a, "ws", &(struct store_quota){-1, -1, -1, STORE_QUOTA_DEFAULT, -1}, &e));
    ASSERT_OK(store_rate_limits(b, "ws", &rate, &burst, &e));
    ASSERT_EQ(rate, 0); /* b has no serve default */
    ASSERT_EQ(burst, 4);
    ASSERT_EQ(store_quota_set(a, "ws", &(struct store_quota){-1, -1, -1, -7, -1}, &e), ERR_INVALID);
    store_close(b);
    store_close(a);
}

BOTH(workspace_rate_limit_huge_burst_does_not_overflow)
{
    /* `vbatch workspace set W --rate-limit 1 --rate-burst 9223372036854775807`
     * (or a burst over ~9.2e12 at 1/s): burst x T in microseconds overflowed
     * int64 (undefined; wrapped negative, every request was refused) */
    struct store *a = open_tmp();
    struct err e = ERR_INIT;
    int64_t wait = -1, got = -1;
    const int64_t t0 = 1700000000000;
    ASSERT_OK(store_rate_take(a, "ws", 1, INT64_MAX, t0, &wait, &e));
    ASSERT_EQ(wait, 0);
    ASSERT_OK(store_rate_take_n(a, "ws", 1, INT64_MAX / 2, t0, INT64_MAX / 4, &got, &wait, &e));
    ASSERT_EQ(wait, 0);
    ASSERT(got >= 1);
    ASSERT_OK(store_rate_take(a, "ws2", INT64_MAX, INT64_MAX, t0, &wait, &e));
    ASSERT_EQ(wait, 0);
    store_close(a);
}

TEST_MAIN()
