/* Unit tests of the owner files of the jobs tables (src/store/jobs.c,
 * tasks.c, job_logs.c: store/store_jobs.h) and of the models table
 * (src/store/models.c: store/store_models.h), called directly, below
 * src/jobs/: a job's rows, the lease transitions, the end of a job read
 * from its stored definition, the models rows. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "store/store_models.h"
#include "store/store_staging.h"
#include "t.h"
#include "t_pg.h"
#include "test_store_recv.h"

static struct store *open_tmp(void)
{
    struct store *st = NULL;
    struct err e = ERR_INIT;
    char *d = strdup("/tmp/vbatch-store-jobs-XXXXXX");
    if (!mkdtemp(d))
        abort();
    if (t_open(d, &st) < 0)
        T_FAIL("store_open failed");
    free(d);
    if (store_jobs_migrate(st, &e) < 0 || store_staging_migrate(st, &e) < 0)
        T_FAIL("store_jobs_migrate: %s", e.msg);
    /* a job is created on a batch that exists (store_job_create checks) */
    struct store_batch b;
    if (store_batch_get_or_create(st, "ws", "b1", NULL, "single", 24LL * 3600 * 1000, &b, &e) < 0)
        T_FAIL("store_batch_get_or_create: %s", e.msg);
    return st;
}

/* workersPerMachine of the jobs make_job creates. */
static int mk_workers = 4;

/* A job of ntasks processing tasks of 2 items each. */
static int64_t make_job(struct store *st, const char *job_id, const char *type, int ntasks)
{
    struct store_task_range t[8];
    char *def = xasprintf("{\"type\":\"%s\"}", type);
    struct store_job_new jn = {
        .ws = "ws", .job_id = job_id, .name = job_id, .definition = def, .wf_def = "{}",
        .image_input = "image", .outputs = "[]", .batch = "b1", .agg_format = "jsonl",
        .params = "{}", .timeout_s = 3600, .max_fail_rate = -1, .workers = mk_workers, .machine_type = "cpu",
        .items_total = 2 * ntasks,
    };
    for (int i = 0; i < ntasks; i++)
        t[i] = (struct store_task_range){2 * i, 2 * i + 2, 2};
    int64_t pk = 0;
    struct err e = ERR_INIT;
    if (store_job_create(st, &jn, t, ntasks, json_pack("{s:i}", "tasks", ntasks), &pk, &e) < 0)
        T_FAIL("store_job_create: %s", e.msg);
    free(def);
    return pk;
}

static int64_t claim(struct store *st, const char *owner, int64_t now)
{
    struct store_claim c = {.owner = owner, .process = owner, .now_ms = now, .lease_ms = 1000, .max_attempts = 3};
    int64_t pk = -1;
    struct err e = ERR_INIT;
    if (store_task_claim(st, &c, &pk, &e) < 0)
        T_FAIL("store_task_claim: %s", e.msg);
    return pk;
}

static struct store_task task(struct store *st, int64_t pk)
{
    struct store_task t;
    if (store_task_get(st, pk, &t, NULL) < 0)
        T_FAIL("store_task_get %lld", (long long)pk);
    return t;
}

BOTH(create_claim_complete_export_succeeds)
{
    struct store *st = open_tmp();
    int64_t pk = make_job(st, "j1", "simple-image-processing-v1", 2), found = 0;
    struct store_job_row r;
    char *def = NULL;
    int64_t now = time_now_ms();

    ASSERT_OK(store_job_find(st, "ws", "j1", &found, &def, NULL));
    ASSERT_EQ(found, pk);
    ASSERT_STR_EQ(def, "{\"type\":\"simple-image-processing-v1\"}");
    free(def);
    ASSERT_OK(store_job_find(st, "ws", "nope", &found, NULL, NULL));
    ASSERT_EQ(found, 0);
    struct err e = ERR_INIT;
    ASSERT_EQ(store_job_create(st, &(struct store_job_new){.ws = "ws", .job_id = "j1"}, NULL, 0, json_object(),
                               NULL, &e),
              ERR_EXISTS);
    ASSERT(strstr(e.msg, "created concurrently") != NULL);

    ASSERT_OK(store_job_get(st, "ws", "j1", &r, NULL));
    ASSERT_STR_EQ(r.state, "running");
    ASSERT_STR_EQ(r.current_stage, "processing");
    ASSERT_EQ(r.items_total, 4);
    ASSERT(!r.started);
    store_job_row_release(&r);

    int64_t a = claim(st, "A", now), b = claim(st, "B", now);
    ASSERT(a > 0 && b > 0 && a != b);
    ASSERT_EQ(claim(st, "C", now), 0); /* the export task waits */
    struct store_task ta = task(st, a), tb = task(st, b);
    ASSERT_STR_EQ(ta.stage, "processing");
    ASSERT_EQ(ta.attempts, 1);
    /* another owner cannot complete A's task */
    ASSERT_EQ(store_task_complete(st, &ta, "B", 2, 0, NULL, 0, 0, NULL), ERR_NOTFOUND);
    ASSERT_OK(store_task_complete(st, &ta, "A", 2, 0, NULL, 0, 0, NULL));
    ASSERT_OK(store_task_complete(st, &tb, "B", 1, 1, NULL, 0, 0, NULL));
    int64_t x = claim(st, "C", now);
    ASSERT(x > 0);
    struct store_task tx = task(st, x);
    ASSERT_STR_EQ(tx.stage, "export");
    ASSERT_OK(store_task_complete(st, &tx, "C", 0, 0, NULL, 0, 0, NULL));

    ASSERT_OK(store_job_get(st, "ws", "j1", &r, NULL));
    ASSERT_STR_EQ(r.state, "succeeded");
    ASSERT_EQ(r.images_done, 3);
    ASSERT_EQ(r.images_failed, 1);
    ASSERT(r.started);
    store_job_row_release(&r);

    struct store_stage_row *sr = NULL;
    int ns = 0;
    ASSERT_OK(store_job_stages(st, pk, &sr, &ns, NULL));
    ASSERT_EQ(ns, 2);
    ASSERT_STR_EQ(sr[0].stage_id, "processing"); /* processing first */
    ASSERT_EQ(sr[0].tasks_number, 2);
    ASSERT_EQ(sr[0].done, 2);
    ASSERT(sr[0].has_started);
    ASSERT_STR_EQ(sr[1].output_batch, "j1-export");
    store_stage_rows_free(sr, ns);

    int *nos = NULL, nn = 0;
    ASSERT_OK(store_tasks_done_numbers(st, pk, &nos, &nn, NULL));
    ASSERT_EQ(nn, 2);
    ASSERT_EQ(nos[0], 1);
    ASSERT_EQ(nos[1], 2);
    free(nos);

    struct store_job_log_row *lr = NULL;
    int nl = 0;
    ASSERT_OK(store_job_logs_page(st, pk, NULL, 0, 10, &lr, &nl, NULL));
    ASSERT_EQ(nl, 3);
    ASSERT_STR_EQ(lr[0].log_type, "job-created");
    ASSERT_STR_EQ(lr[1].log_type, "stage-completed");
    ASSERT_STR_EQ(lr[1].stage_id, "processing");
    ASSERT_STR_EQ(lr[2].log_type, "job-completed");
    int64_t after = lr[0].id;
    store_job_log_rows_free(lr, nl);
    ASSERT_OK(store_job_logs_page(st, pk, "info", after, 1, &lr, &nl, NULL));
    ASSERT_EQ(nl, 1);
    ASSERT_STR_EQ(lr[0].log_type, "stage-completed");
    store_job_log_rows_free(lr, nl);
    ASSERT_OK(store_job_logs_page(st, pk, "error", 0, 10, &lr, &nl, NULL));
    ASSERT_EQ(nl, 0);
    store_job_log_rows_free(lr, nl);
    store_close(st);
}

/* The end of a job whose items all failed names videos or images by the
 * job type read from the stored definition (no json function in SQL). */
BOTH(all_failed_message_reads_the_job_type)
{
    struct store *st = open_tmp();
    const char *types[2] = {"simple-video-processing-v1", "simple-image-processing-v1"};
    for (int k = 0; k < 2; k++) {
        char id[8];
        snprintf(id, sizeof id, "f%d", k);
        make_job(st, id, types[k], 1);
        int64_t now = time_now_ms();
        struct store_task t = task(st, claim(st, "A", now));
        struct store_image_fail f = {.file = (char *)"v.bin", .cause = (char *)"boom"};
        ASSERT_OK(store_task_complete(st, &t, "A", 0, 1, &f, 1, 0, NULL));
        struct store_task x = task(st, claim(st, "A", now));
        ASSERT_STR_EQ(x.stage, "export");
        ASSERT_OK(store_task_complete(st, &x, "A", 0, 0, NULL, 0, 0, NULL));
        struct store_job_row r;
        ASSERT_OK(store_job_get(st, "ws", id, &r, NULL));
        ASSERT_STR_EQ(r.state, "failed");
        ASSERT(strstr(r.message, k == 0 ? "no video succeeded: all 1 failed" : "no image succeeded: all 1 failed"));
        ASSERT(strstr(r.message, "'v.bin': boom"));
        store_job_row_release(&r);
    }
    store_close(st);
}

BOTH(release_heartbeat_error_and_restart)
{
    struct store *st = open_tmp();
    int64_t pk = make_job(st, "j2", "simple-image-processing-v1", 1), now = time_now_ms();
    bool lost = false;

    struct store_task t = task(st, claim(st, "A", now));
    ASSERT_EQ(t.attempts, 1);
    ASSERT_OK(store_task_release(st, &t, "A", "handed back", NULL));
    t = task(st, t.pk);
    ASSERT_EQ(t.attempts, 0); /* the claim is not counted, and never below 0 */
    ASSERT_OK(store_task_release(st, &t, "A", "again", NULL)); /* not running: nothing changes */
    ASSERT_EQ(task(st, t.pk).attempts, 0);

    t = task(st, claim(st, "A", now));
    ASSERT_OK(store_task_heartbeat(st, t.pk, pk, "A", now, 1000, 10, 0.5, &lost, NULL));
    ASSERT(!lost);
    ASSERT_OK(store_task_heartbeat(st, t.pk, pk, "B", now, 1000, 0, 0.5, &lost, NULL));
    ASSERT(lost);
    /* the lease expires: B claims it again, A's heartbeat finds it lost */
    int64_t again = claim(st, "B", now + 5000);
    ASSERT_EQ(again, t.pk);
    ASSERT_OK(store_task_heartbeat(st, t.pk, pk, "A", now + 5000, 1000, 0, 0.5, &lost, NULL));
    ASSERT(lost);

    struct store_task_row *tr = NULL;
    int n = 0;
    ASSERT_OK(store_tasks_page(st, pk, "processing", 0, 10, &tr, &n, NULL));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(tr[0].state, "running");
    ASSERT_STR_EQ(tr[0].message, "claimed again after its lease expired");
    ASSERT_EQ(tr[0].attempts, 2);
    store_task_rows_free(tr, n);

    /* the last allowed attempt errs: the task is aborted, the job fails */
    t = task(st, t.pk);
    ASSERT_OK(store_task_error(st, &t, "B", "it broke", 2, 0, NULL));
    struct store_job_row r;
    ASSERT_OK(store_job_get(st, "ws", "j2", &r, NULL));
    ASSERT_STR_EQ(r.state, "failed");
    ASSERT(strstr(r.message, "failed 2 times: it broke"));
    store_job_row_release(&r);

    /* restart: running again, the task pending with zeroed counts */
    char state[16];
    struct store_job_restart rs = {.max_fail_rate = -1, .log_payload = json_object()};
    ASSERT_OK(store_job_restart(st, pk, &rs, state, NULL));
    ASSERT_STR_EQ(state, "failed");
    ASSERT_OK(store_job_get(st, "ws", "j2", &r, NULL));
    ASSERT_STR_EQ(r.state, "running");
    ASSERT_STR_EQ(r.restart_overrides, "[{}]");
    store_job_row_release(&r);
    ASSERT_OK(store_tasks_page(st, pk, "processing", 0, 10, &tr, &n, NULL));
    ASSERT_STR_EQ(tr[0].state, "pending");
    ASSERT_EQ(tr[0].attempts, 0);
    store_task_rows_free(tr, n);
    rs.log_payload = json_object();
    ASSERT_EQ(store_job_restart(st, pk, &rs, state, NULL), ERR_EXISTS);
    ASSERT_STR_EQ(state, "running");

    /* abort ends it with its tasks */
    ASSERT_OK(store_job_end_error(st, pk, "aborted", "job aborted on request", "job-aborted", NULL));
    ASSERT_EQ(claim(st, "A", now), 0);
    store_close(st);
}

/* A workflow sink's outbox row that fails for good is logged in its job
 * (once, with the job's ref and where it went); a row whose job is gone,
 * or that has none, fails without a log line. */
/* Start the outbox sender with o and wait until want rows have failed for
 * good (at most 5 s); *pending: the rows still pending then. */
static void outbox_wait_failed(struct store *st, const struct store_outbox_opts *o, int64_t want, int64_t *pending)
{
    int64_t p = 1, dl = 0, f = 0;
    ASSERT_OK(store_outbox_start(st, o));
    for (int i = 0; i < 500 && f != want; i++) {
        ASSERT_OK(store_outbox_counts(st, &p, &dl, &f));
        usleep(10000);
    }
    ASSERT_EQ(f, want);
    if (pending)
        *pending = p;
}

/* The payload of the one "sink-delivery-failed" line of job pk's log
 * (severity NULL: any severity), parsed; that line's severity and module
 * in sev and mod (owned). */
static json_t *sink_failed_line(struct store *st, int64_t pk, const char *severity, char **sev, char **mod)
{
    struct store_job_log_row *lr = NULL;
    struct err e = ERR_INIT;
    int n = 0, found = 0;
    json_t *pl = NULL;
    ASSERT_OK(store_job_logs_page(st, pk, severity, 0, 100, &lr, &n, &e));
    for (int i = 0; i < n; i++) {
        if (strcmp(lr[i].log_type, "sink-delivery-failed") != 0)
            continue;
        found++;
        pl = json_loads(lr[i].payload, 0, NULL);
        ASSERT(pl != NULL);
        if (sev)
            *sev = xstrdup(lr[i].severity);
        if (mod)
            *mod = xstrdup(lr[i].module);
    }
    store_job_log_rows_free(lr, n);
    ASSERT_EQ(found, 1);
    return pl;
}

BOTH(sink_delivery_failed_for_good_logged_in_its_job)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    int64_t pk = make_job(st, "jsink", "simple-image-processing-v1", 1);
    int64_t gone = make_job(st, "jgone", "simple-image-processing-v1", 1);
    bool q = false;
    /* loopback without --allow-private-urls: refused by the guard, no connection */
    const char *url = "http://127.0.0.1:9/hook?token=secret";
    struct store_outbox_job job = {pk, "{\"file_path\":\"a.png\",\"step\":\"hook\"}"};
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/1/1/0/hook", url, "ws", "{}", NULL, true, &job, &q));
    ASSERT(q);
    struct store_outbox_job job2 = {gone, "{\"file_path\":\"b.png\",\"step\":\"hook\"}"};
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/2/1/0/hook", url, "ws", "{}", NULL, true, &job2, &q));
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/3/1/0/hook", url, "ws", "{}", NULL, true, NULL, &q));
    /* bad references are refused, nothing queued */
    struct store_outbox_job bad = {0, "{}"};
    ASSERT_EQ(store_outbox_enqueue_once(st, "sink/4", url, "ws", "{}", NULL, true, &bad, &q), ERR_INVALID);
    char *big = xcalloc(1, STORE_OUTBOX_JOB_REF_MAX + 2);
    memset(big, 'x', STORE_OUTBOX_JOB_REF_MAX + 1);
    struct store_outbox_job bad2 = {pk, big};
    ASSERT_EQ(store_outbox_enqueue_once(st, "sink/5", url, "ws", "{}", NULL, true, &bad2, &q), ERR_INVALID);
    free(big);
    ASSERT_OK(store_job_end_error(st, gone, "aborted", "job aborted on request", "job-aborted", NULL));
    ASSERT_OK(store_job_delete(st, "ws", "jgone", &e));

    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.backoff_ms = 10;
    o.max_attempts = 2;
    int64_t p = 1;
    outbox_wait_failed(st, &o, 3, &p);
    ASSERT_EQ(p, 0);
    usleep(100000);
    store_outbox_stop(st);

    char *sev = NULL, *mod = NULL;
    json_t *pl = sink_failed_line(st, pk, NULL, &sev, &mod);
    ASSERT_STR_EQ(sev, "error");
    ASSERT_STR_EQ(mod, "sinks");
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "file_path")), "a.png");
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "step")), "hook");
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "destination")), "127.0.0.1:9");
    ASSERT_EQ(json_integer_value(json_object_get(pl, "attempts")), 2);
    const char *why = json_string_value(json_object_get(pl, "error"));
    ASSERT(why && *why);
    char *text = json_dumps(pl, JSON_COMPACT);
    ASSERT(strstr(text, "secret") == NULL); /* the URL's query is not logged */
    free(text);
    json_decref(pl);
    free(sev);
    free(mod);
    store_close(st);
}

/* An attempt's error cut at 128 bytes inside a character (here Slack's
 * error text, quoted up to 64 bytes) is made UTF-8 before it is recorded:
 * the row fails for good on its own attempt (PostgreSQL refused the whole
 * outcome transaction before, and the row failed later as "attempt
 * interrupted") and the job's log quotes the error. */
BOTH(sink_delivery_error_cut_inside_a_character)
{
    struct store *st = open_tmp();
    int64_t pk = make_job(st, "jutf8", "simple-image-processing-v1", 1);
    struct recv_srv r;
    static const int ok[] = {200};
    recv_start(&r, ok, 1);
    /* "x" then 2-byte characters: the 64th byte is the first half of one */
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"ok\":false,\"error\":\"x");
    for (int i = 0; i < 40; i++)
        buf_puts(&b, "\xc3\xa9");
    buf_puts(&b, "\"}");
    r.body = b.data;
    r.body_len = b.len;
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    char *url = xasprintf("http://127.0.0.1:%d/api/chat.postMessage", r.port);
    struct store_outbox_job job = {pk, "{\"file_path\":\"a.png\",\"step\":\"slack\"}"};
    bool q = false;
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/u/1/0/slack", url, "ws", "{}",
                                        "{\"method\":\"POST\",\"slack_ok\":true}", false, &job, &q));
    ASSERT(q);
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.timeout_ms = 1000;
    o.max_attempts = 1;
    outbox_wait_failed(st, &o, 1, NULL);
    store_outbox_stop(st);
    ASSERT_EQ(recv_wait(&r, 1, 1000), 1);

    json_t *pl = sink_failed_line(st, pk, "error", NULL, NULL);
    const char *why = json_string_value(json_object_get(pl, "error"));
    ASSERT(why != NULL);
    ASSERT(utf8_valid(why));
    ASSERT(strncmp(why, "chat.postMessage answered error x\xc3\xa9", 35) == 0);
    ASSERT_EQ(json_integer_value(json_object_get(pl, "attempts")), 1);
    json_decref(pl);
    store_close(st);
    recv_stop(&r);
    buf_release(&b);
    free(url);
}

/* A row whose last attempt's sender died (attempts used up, its lease
 * over) is failed by the next claim, in the claim's transaction, with one
 * log line in its job. */
BOTH(sink_delivery_failed_at_claim_logged_in_its_job)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    int64_t pk = make_job(st, "jclaim", "simple-image-processing-v1", 1);
    struct store_outbox_job job = {pk, "{\"file_path\":\"c.png\",\"step\":\"hook\"}"};
    bool q = false;
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/c/1/0/hook", "http://127.0.0.1:9/hook", "ws", "{}", NULL, true,
                                        &job, &q));
    ASSERT(q);
    /* as if a sender had claimed its second and last attempt and died */
    struct db *d = NULL;
    struct db_conn *c = t_side_open(st, &d);
    ASSERT_OK(db_run(c, &e, "UPDATE outbox SET attempts=2, next_ms=0", NULL));
    t_side_close(d, c);

    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.max_attempts = 2;
    outbox_wait_failed(st, &o, 1, NULL);
    usleep(100000);
    store_outbox_stop(st);

    json_t *pl = sink_failed_line(st, pk, "error", NULL, NULL);
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "file_path")), "c.png");
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "error")), "attempt interrupted");
    ASSERT_EQ(json_integer_value(json_object_get(pl, "attempts")), 2);
    json_decref(pl);
    store_close(st);
}

/* The job is deleted by a transaction that commits while the row's
 * failure is being recorded: the row still fails on its own attempt (its
 * error kept), without a log line; the delete is not a foreign-key error
 * that rolls back the outcomes (PostgreSQL). */
BOTH(sink_delivery_failed_while_its_job_is_deleted)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    int64_t pk = make_job(st, "jdel", "simple-image-processing-v1", 1);
    struct store_outbox_job job = {pk, "{\"file_path\":\"d.png\",\"step\":\"hook\"}"};
    bool q = false;
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/d/1/0/hook", "http://127.0.0.1:9/hook", "ws", "{}", NULL, true,
                                        &job, &q));
    struct db *d = NULL;
    struct db_conn *c = t_side_open(st, &d);
    ASSERT_OK(db_begin(c, &e));
    ASSERT_OK(db_run(c, &e, "DELETE FROM jobs WHERE pk=?1", "i", pk));

    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.max_attempts = 1;
    o.timeout_ms = 1000;
    ASSERT_OK(store_outbox_start(st, &o));
    usleep(500000); /* the attempt has failed; its outcome waits for the delete */
    ASSERT_OK(db_commit(c, &e));
    t_side_close(d, c);
    outbox_wait_failed(st, &o, 1, NULL); /* already started: waits only */
    store_outbox_stop(st);
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM outbox WHERE state='failed'"
                               " AND last_error<>'attempt interrupted'"), 1);
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM job_logs WHERE log_type='sink-delivery-failed'"), 0);
    store_close(st);
}

/* An s3_sink object that cannot be PUT: the job's log names the object
 * (s3://bucket/key) and the store's error without the operator's endpoint. */
BOTH(sink_s3_delivery_failed_logged_without_the_endpoint)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    int64_t pk = make_job(st, "js3", "simple-image-processing-v1", 1);
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    struct store_s3sink *k = NULL;
    ASSERT_OK(store_s3sink_open("s3://bkt?endpoint=http://127.0.0.1:1&path_style=1", NULL, &k, &e));
    store_outbox_set_s3sink(st, k);
    struct store_outbox_job job = {pk, "{\"file_path\":\"s.png\",\"step\":\"s3\"}"};
    bool q = false;
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/s/1/0/s3", "s3sink:bkt/out/s_js3_1_0_s3.txt", "ws", "{}",
                                        "{\"kind\":\"s3_put\",\"key\":\"out/s_js3_1_0_s3.txt\",\"data\":\"YQ==\"}",
                                        false, &job, &q));
    ASSERT(q);
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.max_attempts = 1;
    o.timeout_ms = 1000;
    o.s3_only = true;
    outbox_wait_failed(st, &o, 1, NULL);
    store_outbox_stop(st);
    json_t *pl = sink_failed_line(st, pk, "error", NULL, NULL);
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "destination")), "s3://bkt/out/s_js3_1_0_s3.txt");
    const char *why = json_string_value(json_object_get(pl, "error"));
    ASSERT(why && strstr(why, "object store"));
    ASSERT(strstr(why, "127.0.0.1") == NULL && strstr(why, "://") == NULL);
    json_decref(pl);
    store_close(st);
    store_s3sink_free(k);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
}

BOTH(models_rows)
{
    struct store *st = open_tmp();
    char *old = NULL;
    struct store_model_row *rows = NULL;
    size_t n = 0;

    ASSERT_OK(store_models_put(st, NULL, "m1", "models/m1/g1/weights.onnx", "models/m1/g1/metadata.json", 10, "aa",
                               &old, NULL));
    ASSERT(old == NULL);
    ASSERT_OK(store_models_put(st, "ws", "m1", "wsmodels/ws/m1/g1/weights.onnx", "k", 11, "bb", &old, NULL));
    ASSERT(old == NULL); /* another scope */
    ASSERT_OK(store_models_put(st, NULL, "m1", "models/m1/g2/weights.onnx", "models/m1/g2/metadata.json", 12, "cc",
                               &old, NULL));
    ASSERT_STR_EQ(old, "models/m1/g1/weights.onnx");
    free(old);
    ASSERT_OK(store_models_list(st, &rows, &n, NULL));
    ASSERT_EQ(n, 2);
    ASSERT(rows[0].ws == NULL); /* the operator's first */
    ASSERT_STR_EQ(rows[0].wkey, "models/m1/g2/weights.onnx");
    ASSERT_EQ(rows[0].size, 12);
    ASSERT_STR_EQ(rows[1].ws, "ws");
    store_model_rows_free(rows, n);
    ASSERT_OK(store_models_delete(st, "ws", "m1", &old, NULL));
    ASSERT_STR_EQ(old, "wsmodels/ws/m1/g1/weights.onnx");
    free(old);
    ASSERT_EQ(store_models_delete(st, "ws", "m1", &old, NULL), ERR_NOTFOUND);
    ASSERT(old == NULL);
    store_close(st);
}

/* Claimers of one process racing for one job's tasks never hold more than
 * its workersPerMachine (2 here) at once: on PostgreSQL the claim counts
 * again under the job's row lock. */
struct race_arg {
    struct store *st;
    char owner[32];
    int64_t now, pk;
    int rc;
};

static void *race_claim(void *p)
{
    struct race_arg *a = p;
    struct store_claim c = {.owner = a->owner, .process = "proc", .now_ms = a->now, .lease_ms = 60000,
                            .max_attempts = 3};
    struct err e = ERR_INIT;
    for (int tries = 0; tries < 50; tries++) {
        a->rc = store_task_claim(a->st, &c, &a->pk, &e);
        if (a->rc != ERR_AGAIN)
            break;
        err_clear(&e);
    }
    return NULL;
}

BOTH(racing_claims_respect_workers_per_machine)
{
    struct store *st = open_tmp();
    mk_workers = 2;
    for (int round = 0; round < 8; round++) {
        char id[16];
        snprintf(id, sizeof id, "race%d", round);
        int64_t job = make_job(st, id, "simple-image-processing-v1", 8);
        pthread_t th[6];
        struct race_arg a[6];
        int64_t now = time_now_ms();
        for (int i = 0; i < 6; i++) {
            a[i] = (struct race_arg){.st = st, .now = now};
            snprintf(a[i].owner, sizeof a[i].owner, "proc-w%d", i);
            pthread_create(&th[i], NULL, race_claim, &a[i]);
        }
        int claimed = 0;
        for (int i = 0; i < 6; i++) {
            pthread_join(th[i], NULL);
            ASSERT_OK(a[i].rc);
            claimed += a[i].pk != 0;
        }
        ASSERT_EQ(claimed, 2);
        struct err e = ERR_INIT;
        ASSERT_OK(store_job_end_error(st, job, "aborted", "round over", "aborted", &e));
    }
    store_close(st);
}

/* The last processing tasks of a job completed at once by two processes
 * move the job to its export stage: each completion counts the job's
 * unfinished tasks after taking the job's row lock (PostgreSQL; under READ
 * COMMITTED two racing completions without it each counted the other's
 * task as unfinished and the job stayed in processing for ever — found by
 * bench_store_tasks with 8 processes).  machine_ms 0: no machine-time
 * update of the job row to serialise them. */
struct race_done {
    struct store *st;
    struct store_task t;
    const char *owner;
    pthread_barrier_t *bar;
    int rc;
};

static void *race_complete(void *p)
{
    struct race_done *a = p;
    pthread_barrier_wait(a->bar);
    for (int tries = 0; tries < 50; tries++) {
        a->rc = store_task_complete(a->st, &a->t, a->owner, 2, 0, NULL, 0, 0, NULL);
        if (a->rc != ERR_AGAIN)
            break;
    }
    return NULL;
}

BOTH(racing_last_completions_move_the_job_to_export)
{
    struct store *st = open_tmp();
    mk_workers = 4;
    for (int round = 0; round < 20; round++) {
        char id[16];
        snprintf(id, sizeof id, "last%d", round);
        make_job(st, id, "simple-image-processing-v1", 2);
        int64_t now = time_now_ms();
        int64_t a = claim(st, "A", now), b = claim(st, "B", now);
        ASSERT(a > 0 && b > 0 && a != b);
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, 2);
        struct race_done ra = {st, task(st, a), "A", &bar, 0}, rb = {st, task(st, b), "B", &bar, 0};
        pthread_t th[2];
        pthread_create(&th[0], NULL, race_complete, &ra);
        pthread_create(&th[1], NULL, race_complete, &rb);
        pthread_join(th[0], NULL);
        pthread_join(th[1], NULL);
        pthread_barrier_destroy(&bar);
        ASSERT_OK(ra.rc);
        ASSERT_OK(rb.rc);
        struct store_job_row r;
        ASSERT_OK(store_job_get(st, "ws", id, &r, NULL));
        ASSERT_STR_EQ(r.current_stage, "export");
        store_job_row_release(&r);
        int64_t x = claim(st, "C", now);
        ASSERT(x > 0);
        struct store_task tx = task(st, x);
        ASSERT_STR_EQ(tx.stage, "export");
        ASSERT_OK(store_task_complete(st, &tx, "C", 0, 0, NULL, 0, 0, NULL));
    }
    store_close(st);
}

struct complete_arg {
    struct store *st;
    struct store_task t;
    int rc;
};

static void *complete_task(void *p)
{
    struct complete_arg *a = p;
    struct err e = ERR_INIT;
    a->rc = store_task_complete(a->st, &a->t, "w1", 2, 0, NULL, 0, 50, &e);
    return NULL;
}

/* PostgreSQL: a worker completing a task (task row, then the job row for
 * its machine time) and a transaction that holds the job row and then
 * wants the job's tasks (as the end of a job does) wait on each other; the
 * server rolls the completion back (SQLSTATE 40P01: its deadlock_timeout
 * runs out first).  The completion runs again and succeeds — before, it
 * came back as ERR_AGAIN, which the worker took for "shutting down" and
 * handed the finished task back to be processed again. */
TEST(deadlock_victim_transition_runs_again_pg)
{
    if (!t_use_pg())
        return;
    struct store *st = open_tmp();
    mk_workers = 4;
    int64_t job = make_job(st, "dl", "simple-image-processing-v1", 2);
    int64_t pk = claim(st, "w1", time_now_ms());
    ASSERT(pk > 0);
    struct err e = ERR_INIT;
    struct db *d = NULL;
    ASSERT_OK(db_open(t_db, 1, &d, &e));
    struct db_conn *x = db_acquire(d, &e);
    ASSERT(x != NULL);
    (void)db_exec(x, "SET deadlock_timeout = '30s'", NULL); /* the other side is the one to find it */
    ASSERT_OK(db_begin(x, &e));
    ASSERT_OK(db_run(x, &e, "UPDATE jobs SET updated_ms=updated_ms WHERE pk=?1", "i", job));
    struct complete_arg a = {.st = st, .t = task(st, pk), .rc = 1};
    pthread_t th;
    pthread_create(&th, NULL, complete_task, &a);
    struct timespec ts = {0, 300 * 1000000L}; /* the completion now waits for the job row */
    nanosleep(&ts, NULL);
    ASSERT_OK(db_run(x, &e, "UPDATE tasks SET event_ms=event_ms WHERE job_pk=?1", "i", job));
    ASSERT_OK(db_commit(x, &e));
    pthread_join(th, NULL);
    ASSERT_EQ(a.rc, 0);
    struct db_stmt *q = NULL;
    ASSERT_OK(db_prepare(x, "SELECT state FROM tasks WHERE pk=?1", &q, &e));
    db_bind_int64(q, 1, pk);
    ASSERT_EQ(db_step(q, &e), DB_ROW);
    ASSERT_STR_EQ(db_col_text(q, 0), "done");
    db_finalize(q);
    db_release(d, x);
    db_close(d);
    store_close(st);
}

/* The live worker pool (store/workers.c): rows registered and renewed by
 * heartbeats are summed; a row not seen for dead_after_ms is deleted by
 * the next reader; a clean stop removes its row; a row deleted as dead
 * comes back with the next heartbeat. */

/* The live worker pool (store/workers.c): rows registered and renewed by
 * heartbeats are summed; a row not seen for dead_after_ms is deleted by
 * the next reader; a clean stop removes its row; a row deleted as dead
 * comes back with the next heartbeat. */
BOTH(worker_pool_rows)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct store_pool p;
    int64_t t0 = 1700000000000;
    ASSERT_OK(store_workers_live(st, t0, 9000, &p, &e));
    ASSERT_EQ(p.processes, 0);
    ASSERT_EQ(p.threads, 0);
    struct store_worker a = {.id = "h1:10:aaaa", .host = "h1", .pid = 10, .threads = 2, .started_ms = t0};
    struct store_worker b = {.id = "h2:20:bbbb", .host = "h2", .pid = 20, .threads = 3, .kind = "gpu",
                             .started_ms = t0};
    struct store_worker c = {.id = "h2:21:cccc", .host = "h2", .pid = 21, .threads = 1, .kind = "cpu",
                             .started_ms = t0};
    ASSERT_OK(store_worker_beat(st, &a, t0, &e));
    ASSERT_OK(store_worker_beat(st, &b, t0, &e));
    ASSERT_OK(store_worker_beat(st, &c, t0 + 1000, &e));
    ASSERT_OK(store_worker_beat(st, &a, t0 + 1000, &e)); /* a heartbeat: still one row */
    ASSERT_OK(store_workers_live(st, t0 + 2000, 9000, &p, &e));
    ASSERT_EQ(p.processes, 3);
    ASSERT_EQ(p.threads, 6);
    ASSERT_EQ(p.gpu_threads, 3);
    /* b stops beating: 9 s after its last beat it is dead (and deleted),
     * a and c beat on */
    ASSERT_OK(store_worker_beat(st, &a, t0 + 9500, &e));
    ASSERT_OK(store_worker_beat(st, &c, t0 + 9500, &e));
    ASSERT_OK(store_workers_live(st, t0 + 9001, 9000, &p, &e));
    ASSERT_EQ(p.processes, 2);
    ASSERT_EQ(p.threads, 3);
    ASSERT_EQ(p.gpu_threads, 0);
    /* deleted, not only left out: an older 'now' does not bring it back */
    ASSERT_OK(store_workers_live(st, t0 + 1000, 9000, &p, &e));
    ASSERT_EQ(p.processes, 2);
    /* a heartbeat after being declared dead registers again */
    ASSERT_OK(store_worker_beat(st, &b, t0 + 9600, &e));
    ASSERT_OK(store_workers_live(st, t0 + 9700, 9000, &p, &e));
    ASSERT_EQ(p.processes, 3);
    ASSERT_EQ(p.threads, 6);
    /* a clean stop */
    ASSERT_OK(store_worker_remove(st, "h2:20:bbbb", &e));
    ASSERT_OK(store_worker_remove(st, "h2:20:bbbb", &e)); /* no row: not an error */
    ASSERT_OK(store_workers_live(st, t0 + 9700, 9000, &p, &e));
    ASSERT_EQ(p.processes, 2);
    ASSERT_EQ(p.threads, 3);
    /* bad rows are refused */
    struct store_worker bad = {.id = "", .host = "h", .threads = 1};
    ASSERT_EQ(store_worker_beat(st, &bad, t0, &e), ERR_INVALID);
    store_close(st);
}

TEST_MAIN()
