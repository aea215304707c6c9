/* Unit tests of src/jobs: the planner, job definition validation and
 * idempotency, leases (no double claim, expiry -> requeue, heartbeat of a
 * lost lease), the state machine through processing and export with a fake
 * model provider, failure rate, abort/restart, and the CSV/JSONL writers. */
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "jobs/jobs.h"
#include "model/model.h"
#include "staging/staging.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "t.h"
#include "vision/vision.h"

/* The message of the last call that was handed &te. */
static struct err te;

struct ctx {
    char dir[64];
    struct store *st;
    struct staging *sg;
    struct jobs *j;
    struct jobs_opts o;
};

static int fake_calls;
static int prep_seen;
static void prep_free(void *p);
static const char prep_marker[];

/* Fake detector: one box per image, size-dependent confidence. */
static int fake_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                      size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud;
    (void)req;
    (void)err;
    (void)errlen;
    __atomic_fetch_add(&fake_calls, 1, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; i++)
        if (images[i]->aux_free == prep_free && !strcmp(images[i]->aux, prep_marker))
            __atomic_fetch_add(&prep_seen, 1, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; i++)
        out[i] = json_pack("{s:{s:i,s:i},s:[{s:f,s:f,s:f,s:f,s:f,s:s,s:i}]}", "image", "width", images[i]->w,
                           "height", images[i]->h, "predictions", "x", 4.0, "y", 4.0, "width", 4.0, "height",
                           4.0, "confidence", 0.9, "class", "thing", "class_id", 0);
    return 0;
}

/* Fake model_prepare: attaches a marker the provider looks for, so the
 * test sees that the decode-ahead thread prepared the very image the
 * workflow ran on (and LeakSanitizer that the worker freed it). */
static int prep_calls;
static const char prep_marker[] = "prepared";

static void prep_free(void *p)
{
    free(p);
}

static int fake_prepare(void *ud, const struct wf_model_request *req, struct vis_image *img, char *err,
                        size_t errlen)
{
    (void)ud;
    (void)err;
    (void)errlen;
    if (strcmp(req->model_id, "fake") != 0 || img->aux)
        return ERR_INVALID;
    __atomic_fetch_add(&prep_calls, 1, __ATOMIC_RELAXED);
    img->aux = xstrdup(prep_marker);
    img->aux_free = prep_free;
    return 0;
}

static void ctx_open(struct ctx *c, int max_items)
{
    struct staging_opts so;
    snprintf(c->dir, sizeof c->dir, "/tmp/vbatch-jobs-XXXXXX");
    if (!mkdtemp(c->dir))
        abort();
    staging_opts_default(&so);
    so.public_base_url = "http://127.0.0.1:9999";
    ASSERT_OK(store_open(c->dir, &c->st));
    ASSERT_OK(store_workspace_create(c->st, "ws", (char[STORE_KEY_LEN + 1]){0}));
    ASSERT_OK(staging_new(c->st, &so, &c->sg, NULL));
    jobs_opts_default(&c->o);
    c->o.workers = 0;
    c->o.max_task_items = max_items;
    c->o.lease_ms = 1000;
    c->o.heartbeat_ms = 100;
    c->o.max_attempts = 3;
    c->o.model_infer = fake_infer;
    c->o.model_prepare = fake_prepare;
    ASSERT_OK(jobs_new(c->st, c->sg, &c->o, &c->j, NULL));
}

static void ctx_close(struct ctx *c)
{
    jobs_free(c->j);
    staging_free(c->sg);
    store_close(c->st);
}

static void upload(struct ctx *c, const char *batch, const char *name, int seed, bool corrupt)
{
    struct vis_image *img = vis_image_new(16, 12, VIS_BGR);
    uint8_t *png = NULL;
    size_t len = 0;
    char *tmp = NULL;
    int fd = -1;
    json_t *out = NULL;
    for (size_t i = 0; i < (size_t)img->stride * 12; i++)
        img->px[i] = (uint8_t)(i * 7 + seed);
    ASSERT_OK(vis_encode_png(img, &png, &len));
    ASSERT_OK(store_tmp_create(c->st, &tmp, &fd));
    ASSERT_EQ(write(fd, png, len), (ssize_t)len);
    close(fd);
    ASSERT_OK(staging_upload_image(c->sg, "ws", batch, NULL, name, tmp, &out, NULL));
    json_decref(out);
    if (corrupt) {
        /* staging refuses a truncated image: damage the stored blob instead,
         * so that decoding fails when the job runs */
        struct staging_item it;
        ASSERT_OK(staging_item_find(c->sg, "ws", batch, NULL, name, &it, NULL));
        ASSERT_OK(store_blob_put(c->st, it.blob_key, png, len / 2));
        staging_item_release(&it);
    }
    free(tmp);
    free(png);
    vis_image_free(img);
}

static const char *CROP_WF =
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
    "{\"type\":\"WorkflowParameter\",\"name\":\"tag\",\"default_value\":\"none\"}],"
    "\"steps\":[{\"type\":\"roboflow_core/absolute_static_crop@v1\",\"name\":\"crop\",\"images\":\"$inputs.image\","
    "\"x_center\":4,\"y_center\":4,\"width\":4,\"height\":4}],"
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"crop\",\"selector\":\"$steps.crop.crops\"},"
    "{\"type\":\"JsonField\",\"name\":\"tag\",\"selector\":\"$inputs.tag\"}]}";

static const char *DET_WF =
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
    "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","
    "\"images\":\"$inputs.image\",\"model_id\":\"fake\"}],"
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"predictions\",\"selector\":\"$steps.det.predictions\"}]}";

static json_t *body(const char *batch, const char *wf, const char *extra_json)
{
    json_t *b = json_pack("{s:s,s:{s:s,s:s},s:{s:s},s:{s:s,s:s,s:s,s:b,s:s,s:{s:s}}}", "type",
                          "simple-image-processing-v1", "jobInput", "type", "staging-batch-input-v1", "batchId",
                          batch, "computeConfiguration", "type", "compute-configuration-v2",
                          "processingSpecification", "type", "workflows-processing-specification-v1", "workspace",
                          "ws", "workflowId", wf, "persistImagesOutputs", 1, "aggregationFormat", "jsonl",
                          "workflowParameters", "tag", "t1");
    if (extra_json) {
        json_t *e = json_loads(extra_json, 0, NULL);
        ASSERT(e);
        json_object_update(b, e);
        json_decref(e);
    }
    return b;
}

static json_t *get_job(struct ctx *c, const char *id)
{
    json_t *out = NULL;
    ASSERT_OK(jobs_get(c->j, "ws", id, &out, NULL));
    json_t *job = json_incref(json_object_get(out, "job"));
    json_decref(out);
    return job;
}

static void run_all(struct ctx *c)
{
    bool did = true;
    for (int k = 0; k < 100 && did; k++)
        ASSERT_OK(jobs_work_once(c->j, "w1", &did));
}

TEST(planner_splits_by_size_and_shard)
{
    struct staging_item it[7] = {0};
    int ends[8];
    static char a[] = "a", bb[] = "b";
    char *sh[7] = {a, a, a, bb, bb, NULL, NULL};
    for (int i = 0; i < 7; i++) {
        it[i].id = i + 1;
        it[i].shard_id = sh[i];
    }
    ASSERT_EQ(jobs_plan_split(it, 7, 2, ends), 4); /* aa, a, bb, (NULL NULL) */
    ASSERT_EQ(ends[0], 2);
    ASSERT_EQ(ends[1], 3);
    ASSERT_EQ(ends[2], 5);
    ASSERT_EQ(ends[3], 7);
    ASSERT_EQ(jobs_plan_split(it, 7, 500, ends), 3);
    ASSERT_EQ(jobs_plan_split(it, 0, 500, ends), 1); /* never 0 tasks */
    ASSERT_EQ(ends[0], 0);
}

TEST(csv_and_jsonl_writers)
{
    struct buf b = BUF_INIT;
    const char *cols[] = {"a", "b", "c", "d"};
    json_t *row = json_loads("{\"a\":\"x,y\\\"z\",\"b\":[1,{\"k\":2.5}],\"c\":true,\"d\":null,\"image\":\"i.png\"}", 0,
                             NULL);
    ASSERT_OK(jobs_csv_header(&b, cols, 4));
    ASSERT_OK(jobs_csv_row(&b, row, cols, 4));
    ASSERT_STR_EQ(b.data, "a,b,c,d,image\n\"x,y\"\"z\",\"[1, {\"\"k\"\": 2.5}]\",True,,i.png\n");
    buf_reset(&b);
    ASSERT_OK(jobs_jsonl_row(&b, row));
    ASSERT_STR_EQ(b.data, "{\"a\":\"x,y\\\"z\",\"b\":[1,{\"k\":2.5}],\"c\":true,\"d\":null,\"image\":\"i.png\"}\n");
    json_decref(row);
    row = json_loads("{\"a\":1.0,\"b\":3,\"image\":\"j\"}", 0, NULL);
    buf_reset(&b);
    ASSERT_OK(jobs_csv_row(&b, row, cols, 2));
    ASSERT_STR_EQ(b.data, "1.0,3,j\n");
    json_decref(row);
    buf_release(&b);
}

TEST(create_validates_and_is_idempotent)
{
    struct ctx c;
    json_t *out = NULL, *b;
    ctx_open(&c, 500);
    ASSERT_OK(store_workflow_put(c.st, "ws", "crop", CROP_WF));
    upload(&c, "b1", "a.png", 1, false);

    b = body("nope", "crop", NULL);
    ASSERT_EQ(jobs_create(c.j, "ws", "j1", NULL, b, &out, &te), ERR_NOTFOUND);
    ASSERT(strstr(te.msg, "batch 'nope' not found"));
    json_decref(b);
    b = body("b1", "nope", NULL);
    ASSERT_EQ(jobs_create(c.j, "ws", "j1", NULL, b, &out, &te), ERR_NOTFOUND);
    ASSERT(strstr(te.msg, "workflow 'nope' not found"));
    json_decref(b);
    b = body("b1", "crop", "{\"maxImageFailureRate\": 1.5}");
    ASSERT_EQ(jobs_create(c.j, "ws", "j1", NULL, b, &out, &te), ERR_INVALID);
    ASSERT(strstr(te.msg, "maxImageFailureRate"));
    json_decref(b);
    b = body("b1", "crop", "{\"type\": \"simple-video-processing-v1\"}");
    ASSERT_EQ(jobs_create(c.j, "ws", "j1", NULL, b, &out, &te), ERR_INVALID);
    ASSERT(strstr(te.msg, "video"));
    json_decref(b);
    b = body("b1", "crop", "{\"computeConfiguration\": {\"type\": \"compute-configuration-v1\", \"machineSize\": \"q\"}}");
    ASSERT_EQ(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL), ERR_INVALID);
    json_decref(b);

    b = body("b1", "crop", "{\"computeConfiguration\": {\"type\": \"compute-configuration-v1\", \"machineSize\": \"xs\"}}");
    ASSERT_OK(jobs_create(c.j, "ws", "j1", "my job", b, &out, NULL));
    ASSERT(json_is_true(json_object_get(out, "created")));
    json_decref(out);
    ASSERT_OK(jobs_create(c.j, "ws", "j1", "my job", b, &out, NULL)); /* same definition: idempotent */
    ASSERT(json_is_false(json_object_get(out, "created")));
    json_decref(out);
    json_decref(b);
    b = body("b1", "crop", "{\"maxParallelTasks\": 3}");
    ASSERT_EQ(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL), ERR_EXISTS);
    json_decref(b);

    json_t *job = get_job(&c, "j1");
    ASSERT_STR_EQ(json_string_value(json_object_get(job, "name")), "my job");
    ASSERT(json_is_false(json_object_get(job, "isTerminal")));
    ASSERT(str_has_suffix(json_string_value(json_object_get(job, "createdAt")), "Z"));
    json_decref(job);
    ASSERT_OK(jobs_list(c.j, "ws", 10, NULL, &out, NULL));
    ASSERT_EQ(json_array_size(json_object_get(out, "jobs")), 1);
    ASSERT(json_is_null(json_object_get(out, "nextPageToken")));
    json_decref(out);
    ctx_close(&c);
}

TEST(leases_no_double_claim_and_expiry_requeues)
{
    struct ctx c;
    json_t *out = NULL, *b;
    int64_t t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    int64_t now = time_now_ms();
    ctx_open(&c, 2);
    ASSERT_OK(store_workflow_put(c.st, "ws", "crop", CROP_WF));
    for (int i = 0; i < 4; i++) {
        char n[16];
        snprintf(n, sizeof n, "i%d.png", i);
        upload(&c, "b1", n, i, false);
    }
    b = body("b1", "crop", "{\"maxParallelTasks\": 2}");
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    ASSERT_OK(jobs_claim(c.j, "A", now, &t1));
    ASSERT_OK(jobs_claim(c.j, "B", now, &t2));
    ASSERT_GT(t1, 0);
    ASSERT_GT(t2, 0);
    ASSERT_NE(t1, t2);
    ASSERT_OK(jobs_claim(c.j, "C", now, &t3)); /* only 2 processing tasks; export waits */
    ASSERT_EQ(t3, 0);
    /* heartbeat keeps A's lease; B's expires and C takes it over */
    ASSERT_OK(jobs_heartbeat(c.j, t1, "A", now + 900, 0, 0.5));
    ASSERT_OK(jobs_claim(c.j, "C", now + 1500, &t3));
    ASSERT_EQ(t3, t2);
    ASSERT_EQ(jobs_heartbeat(c.j, t2, "B", now + 1600, 0, 0.5), ERR_NOTFOUND); /* B lost it */
    ASSERT_OK(jobs_claim(c.j, "D", now + 1600, &t4));
    ASSERT_EQ(t4, 0);
    ctx_close(&c);
}

struct claimer {
    struct jobs *j;
    char owner[8];
    int64_t got[64];
    int n;
};

static void *claim_loop(void *p)
{
    struct claimer *c = p;
    int64_t pk;
    for (int k = 0; k < 64; k++) {
        if (jobs_claim(c->j, c->owner, time_now_ms(), &pk) < 0)
            abort();
        if (pk)
            c->got[c->n++] = pk;
    }
    return NULL;
}

TEST(concurrent_claims_never_share_a_task)
{
    struct ctx c;
    json_t *out = NULL, *b;
    struct claimer cl[4];
    pthread_t th[4];
    ctx_open(&c, 1);
    ASSERT_OK(store_workflow_put(c.st, "ws", "crop", CROP_WF));
    for (int i = 0; i < 24; i++) {
        char n[16];
        snprintf(n, sizeof n, "i%d.png", i);
        upload(&c, "b1", n, i, false);
    }
    /* each claimer is a process of its own holding many tasks: lift the
     * workersPerMachine cap (default 4) above the 24 tasks */
    b = body("b1", "crop", "{\"computeConfiguration\": {\"type\": \"compute-configuration-v2\","
                           " \"workersPerMachine\": 64}}");
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    for (int i = 0; i < 4; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].j = c.j;
        snprintf(cl[i].owner, sizeof cl[i].owner, "T%d", i);
        pthread_create(&th[i], NULL, claim_loop, &cl[i]);
    }
    int total = 0;
    int64_t all[256];
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        for (int k = 0; k < cl[i].n; k++)
            all[total++] = cl[i].got[k];
    }
    ASSERT_EQ(total, 24); /* every processing task once; the export task waits */
    for (int x = 0; x < total; x++)
        for (int y = x + 1; y < total; y++)
            ASSERT_NE(all[x], all[y]);
    ctx_close(&c);
}

/* workersPerMachine caps the tasks of a job that the threads of one process
 * ("<worker_id>-w<i>") hold at once; other processes and expired leases do
 * not count.  GET job says pending before the first claim, processing after. */
TEST(workers_per_machine_caps_one_process)
{
    struct ctx c;
    json_t *out = NULL, *b;
    int64_t t[6] = {0}, now = time_now_ms();
    ctx_open(&c, 1);
    jobs_free(c.j);
    c.o.worker_id = "pa";
    ASSERT_OK(jobs_new(c.st, c.sg, &c.o, &c.j, NULL));
    ASSERT_OK(store_workflow_put(c.st, "ws", "crop", CROP_WF));
    for (int i = 0; i < 6; i++) {
        char n[16];
        snprintf(n, sizeof n, "i%d.png", i);
        upload(&c, "b1", n, i, false);
    }
    b = body("b1", "crop", "{\"computeConfiguration\": {\"type\": \"compute-configuration-v2\","
                           " \"workersPerMachine\": 2}}");
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    json_t *g = NULL;
    ASSERT_OK(jobs_get(c.j, "ws", "j1", &g, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(g, "status")), "ok");
    ASSERT_STR_EQ(json_string_value(json_object_get(g, "jobStatus")), "pending");
    ASSERT_NEAR(json_number_value(json_object_get(g, "progress")), 0.0, 1e-12);
    json_decref(g);
    ASSERT_OK(jobs_claim(c.j, "pa-w0", now, &t[0]));
    ASSERT_OK(jobs_claim(c.j, "pa-w1", now, &t[1]));
    ASSERT_OK(jobs_claim(c.j, "pa-w2", now, &t[2]));
    ASSERT_GT(t[0], 0);
    ASSERT_GT(t[1], 0);
    ASSERT_EQ(t[2], 0); /* this process already runs 2 of the job's tasks */
    ASSERT_OK(jobs_claim(c.j, "pb-w0", now, &t[3])); /* another process */
    ASSERT_GT(t[3], 0);
    ASSERT_OK(jobs_claim(c.j, "pb-w0", now, &t[4])); /* a caller-named owner is a process */
    ASSERT_GT(t[4], 0);
    ASSERT_OK(jobs_claim(c.j, "pb-w0", now, &t[5]));
    ASSERT_EQ(t[5], 0);
    ASSERT_OK(jobs_get(c.j, "ws", "j1", &g, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(g, "jobStatus")), "processing");
    json_decref(g);
    /* the process's leases expired (lease 1000 ms): it may claim again */
    ASSERT_OK(jobs_claim(c.j, "pa-w2", now + 1500, &t[2]));
    ASSERT_GT(t[2], 0);
    ctx_close(&c);
}

TEST(max_parallel_tasks_honoured)
{
    struct ctx c;
    json_t *out = NULL, *b;
    int64_t t1 = 0, t2 = 0, now = time_now_ms();
    ctx_open(&c, 1);
    ASSERT_OK(store_workflow_put(c.st, "ws", "crop", CROP_WF));
    upload(&c, "b1", "a.png", 1, false);
    upload(&c, "b1", "b.png", 2, false);
    b = body("b1", "crop", "{\"maxParallelTasks\": 1}");
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    ASSERT_OK(jobs_claim(c.j, "A", now, &t1));
    ASSERT_GT(t1, 0);
    ASSERT_OK(jobs_claim(c.j, "B", now, &t2));
    ASSERT_EQ(t2, 0);
    ctx_close(&c);
}

/* A small batch is cut into about two tasks per local worker (at least 16
 * items each) so that every worker gets a share; a big one into 500s. */
TEST(small_batches_cut_for_every_worker)
{
    struct ctx c;
    json_t *out = NULL, *b;
    ctx_open(&c, 500);
    jobs_free(c.j);
    c.o.workers = 2; /* not started: only the planner looks at it */
    ASSERT_OK(jobs_new(c.st, c.sg, &c.o, &c.j, NULL));
    ASSERT_OK(store_workflow_put(c.st, "ws", "det", DET_WF));
    for (int i = 0; i < 40; i++) {
        char n[16];
        snprintf(n, sizeof n, "i%02d.png", i);
        upload(&c, "b40", n, i, false);
        if (i < 10)
            upload(&c, "b10", n, i, false);
    }
    b = body("b40", "det", NULL);
    ASSERT_OK(jobs_create(c.j, "ws", "j40", NULL, b, &out, NULL)); /* 40 / (2 x 2) = 10 -> 16, 16, 8 */
    json_decref(out);
    json_decref(b);
    ASSERT_OK(jobs_stages(c.j, "ws", "j40", &out, NULL));
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(out, "stages"), 0), "tasksNumber")), 3);
    json_decref(out);
    b = body("b10", "det", NULL);
    ASSERT_OK(jobs_create(c.j, "ws", "j10", NULL, b, &out, NULL)); /* under 16: one task */
    json_decref(out);
    json_decref(b);
    ASSERT_OK(jobs_stages(c.j, "ws", "j10", &out, NULL));
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(out, "stages"), 0), "tasksNumber")), 1);
    json_decref(out);
    ctx_close(&c);
}

/* The planner cuts for the live worker pool of every process on the
 * database, not for the receiving process's own workers: an API-only
 * service (0 workers) with two live worker processes of 2 threads each
 * cuts 256 images into 8 tasks of 32 (2 per pool thread), where it cut 2
 * tasks of 128 before; a dead process's row (not seen for 3 beats) does
 * not count.  A started service registers itself and a stopped one
 * leaves. */
TEST(planner_cuts_for_the_live_worker_pool)
{
    struct ctx c;
    json_t *out = NULL, *b;
    struct err e = ERR_INIT;
    int64_t procs = -1, threads = -1;
    ctx_open(&c, 500);
    ASSERT_OK(jobs_pool(c.j, &procs, &threads, &e));
    ASSERT_EQ(procs, 0);
    /* a started service joins the pool with its threads and leaves at stop */
    struct jobs *j2 = NULL;
    struct jobs_opts o2 = c.o;
    o2.workers = 3;
    o2.pool_beat_ms = 50;
    ASSERT_OK(jobs_new(c.st, c.sg, &o2, &j2, NULL));
    ASSERT_OK(jobs_start(j2));
    ASSERT_OK(jobs_pool(c.j, &procs, &threads, &e));
    ASSERT_EQ(procs, 1);
    ASSERT_EQ(threads, 3);
    usleep(200 * 1000); /* beats renew the row: still live after 4 beats */
    ASSERT_OK(jobs_pool(j2, &procs, &threads, &e));
    ASSERT_EQ(procs, 1);
    jobs_free(j2);
    ASSERT_OK(jobs_pool(c.j, &procs, &threads, &e));
    ASSERT_EQ(procs, 0);
    /* two live worker processes and a dead one */
    int64_t now = time_now_ms();
    struct store_worker w1 = {.id = "m1:1:x", .host = "m1", .pid = 1, .threads = 2, .started_ms = now};
    struct store_worker w2 = {.id = "m2:2:y", .host = "m2", .pid = 2, .threads = 2, .started_ms = now};
    struct store_worker dead = {.id = "m3:3:z", .host = "m3", .pid = 3, .threads = 4, .started_ms = now - 60000};
    ASSERT_OK(store_worker_beat(c.st, &w1, now, &e));
    ASSERT_OK(store_worker_beat(c.st, &w2, now, &e));
    ASSERT_OK(store_worker_beat(c.st, &dead, now - 60000, &e));
    ASSERT_OK(store_workflow_put(c.st, "ws", "det", DET_WF));
    for (int i = 0; i < 256; i++) {
        char n[16];
        snprintf(n, sizeof n, "i%03d.png", i);
        upload(&c, "b256", n, i, false);
    }
    b = body("b256", "det", NULL);
    ASSERT_OK(jobs_create(c.j, "ws", "jp", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    ASSERT_OK(jobs_stages(c.j, "ws", "jp", &out, NULL));
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(out, "stages"), 0), "tasksNumber")), 8);
    json_decref(out);
    ASSERT_OK(jobs_pool(c.j, &procs, &threads, &e));
    ASSERT_EQ(procs, 2);
    ASSERT_EQ(threads, 4);
    ctx_close(&c);
}

TEST(processing_and_export_end_to_end)
{
    struct ctx c;
    json_t *out = NULL, *b;
    ctx_open(&c, 2);
    ASSERT_OK(store_workflow_put(c.st, "ws", "det", DET_WF));
    for (int i = 0; i < 5; i++) {
        char n[16];
        snprintf(n, sizeof n, "i%d.png", i);
        upload(&c, "b1", n, i, i == 3);
    }
    b = body("b1", "det", "{\"notificationsURL\": null}");
    json_object_set_new(json_object_get(b, "processingSpecification"), "aggregationFormat", json_string("csv"));
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    ASSERT_OK(jobs_stages(c.j, "ws", "j1", &out, NULL));
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(out, "stages"), 0), "tasksNumber")), 3);
    json_decref(out);
    run_all(&c);
    ASSERT_EQ(fake_calls, 4);
    /* every decodable image was prepared ahead, and the run got that image */
    ASSERT_EQ(prep_calls, 4);
    ASSERT_EQ(prep_seen, 4);
    json_t *job = get_job(&c, "j1");
    ASSERT(json_is_true(json_object_get(job, "isTerminal")));
    ASSERT(json_is_false(json_object_get(job, "error")));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(job, "lastNotification"), "imagesFailed")), 1);
    json_decref(job);
    /* one error log naming the corrupt file */
    ASSERT_OK(jobs_logs(c.j, "ws", "j1", "error", 10, NULL, &out, NULL));
    ASSERT_EQ(json_array_size(json_object_get(out, "logs")), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(
                      json_object_get(json_array_get(json_object_get(out, "logs"), 0), "payload"), "file_path")),
                  "i3.png");
    json_decref(out);
    /* export: CSV with 4 rows */
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(store_blob_read(c.st, "jobs/ws/j1/export/aggregated_results.csv", 1 << 20, &data, &len));
    ASSERT(str_has_prefix(data, "predictions,image\n"));
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += data[i] == '\n';
    ASSERT_EQ(lines, 5);
    ASSERT(strstr(data, "i4.png"));
    ASSERT(!strstr(data, "i3.png"));
    free(data);
    json_t *cnt = NULL;
    ASSERT_OK(staging_batch_count(c.sg, "ws", "j1-export", NULL, &cnt, NULL));
    /* no image outputs: the results and the failed image's errors.jsonl */
    ASSERT_EQ(json_integer_value(json_object_get(cnt, "count")), 2);
    json_decref(cnt);
    ASSERT_OK(store_blob_read(c.st, "jobs/ws/j1/export/errors.jsonl", 1 << 20, &data, &len));
    json_t *err = json_loadb(data, len, JSON_DISABLE_EOF_CHECK, NULL);
    ASSERT_STR_EQ(json_string_value(json_object_get(err, "image")), "i3.png");
    ASSERT_STR_EQ(json_string_value(json_object_get(err, "stage")), "processing");
    ASSERT(strstr(json_string_value(json_object_get(err, "cause")), "decode"));
    ASSERT_EQ(data[len - 1], '\n');
    ASSERT(memchr(data, '\n', len) == data + len - 1); /* one line */
    json_decref(err);
    free(data);
    ASSERT_OK(staging_batch_count(c.sg, "ws", "j1-processing", NULL, &cnt, NULL));
    ASSERT_EQ(json_integer_value(json_object_get(cnt, "count")), 3);
    json_decref(cnt);
    ctx_close(&c);
}

TEST(failure_rate_fails_the_job_and_restart_reruns_unfinished)
{
    struct ctx c;
    json_t *out = NULL, *b;
    ctx_open(&c, 1);
    ASSERT_OK(store_workflow_put(c.st, "ws", "det", DET_WF));
    upload(&c, "b1", "bad0.png", 0, true);
    upload(&c, "b1", "ok1.png", 1, false);
    upload(&c, "b1", "ok2.png", 2, false);
    b = body("b1", "det", "{\"maxImageFailureRate\": 0.2}");
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    run_all(&c);
    json_t *job = get_job(&c, "j1");
    ASSERT(json_is_true(json_object_get(job, "error")));
    ASSERT(strstr(json_string_value(json_object_get(json_object_get(job, "lastNotification"), "message")),
                  "failure rate"));
    json_decref(job);
    ASSERT_EQ(fake_calls, 0);
    /* restart with a higher limit: only the two unfinished tasks run */
    b = json_loads("{\"type\":\"parameters-override-v1\",\"maxImageFailureRate\":0.5}", 0, NULL);
    ASSERT_OK(jobs_restart(c.j, "ws", "j1", b, &out, NULL));
    json_decref(out);
    json_decref(b);
    run_all(&c);
    ASSERT_EQ(fake_calls, 2);
    job = get_job(&c, "j1");
    ASSERT(json_is_false(json_object_get(job, "error")));
    ASSERT(json_is_true(json_object_get(job, "isTerminal")));
    ASSERT_EQ(json_array_size(json_object_get(job, "restartParametersOverride")), 1);
    json_decref(job);
    /* a succeeded job cannot be restarted */
    ASSERT_EQ(jobs_restart(c.j, "ws", "j1", NULL, &out, NULL), ERR_EXISTS);
    ctx_close(&c);
}

TEST(abort_stops_claims)
{
    struct ctx c;
    json_t *out = NULL, *b;
    int64_t t = 0;
    ctx_open(&c, 1);
    ASSERT_OK(store_workflow_put(c.st, "ws", "crop", CROP_WF));
    upload(&c, "b1", "a.png", 1, false);
    upload(&c, "b1", "b.png", 2, false);
    b = body("b1", "crop", NULL);
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    ASSERT_OK(jobs_claim(c.j, "A", time_now_ms(), &t));
    ASSERT_GT(t, 0);
    ASSERT_OK(jobs_abort(c.j, "ws", "j1", &out, NULL));
    json_decref(out);
    ASSERT_EQ(jobs_heartbeat(c.j, t, "A", time_now_ms(), 0, 0.5), ERR_NOTFOUND);
    ASSERT_OK(jobs_claim(c.j, "B", time_now_ms(), &t));
    ASSERT_EQ(t, 0);
    ASSERT_OK(jobs_tasks(c.j, "ws", "j1", "processing", 1, NULL, &out, NULL));
    ASSERT_EQ(json_array_size(json_object_get(out, "tasks")), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(out, "tasks"), 0), "statusType")),
                  "error");
    char *tok = xstrdup(json_string_value(json_object_get(out, "nextPageToken")));
    char *first = xstrdup(json_string_value(json_object_get(json_array_get(json_object_get(out, "tasks"), 0), "taskId")));
    json_decref(out);
    /* the token gives the second task; other listings refuse it */
    ASSERT_OK(jobs_tasks(c.j, "ws", "j1", "processing", 1, tok, &out, NULL));
    ASSERT_EQ(json_array_size(json_object_get(out, "tasks")), 1);
    ASSERT(strcmp(json_string_value(json_object_get(json_array_get(json_object_get(out, "tasks"), 0), "taskId")),
                  first) != 0);
    free(first);
    ASSERT(json_is_null(json_object_get(out, "nextPageToken")));
    json_decref(out);
    ASSERT_EQ(jobs_tasks(c.j, "ws", "j1", "export", 1, tok, &out, NULL), ERR_INVALID);
    ASSERT_EQ(jobs_logs(c.j, "ws", "j1", NULL, 1, tok, &out, NULL), ERR_INVALID);
    ASSERT_EQ(jobs_list(c.j, "ws", 1, tok, &out, NULL), ERR_INVALID);
    ASSERT_EQ(jobs_tasks(c.j, "ws", "j1", "processing", 1, "1", &out, NULL), ERR_INVALID); /* the old form */
    free(tok);
    b = json_object(); /* {} is the same as no body */
    ASSERT_OK(jobs_restart(c.j, "ws", "j1", b, &out, NULL));
    json_decref(b);
    json_decref(out);
    run_all(&c);
    json_t *job = get_job(&c, "j1");
    ASSERT(json_is_false(json_object_get(job, "error")));
    ASSERT(json_is_true(json_object_get(job, "isTerminal")));
    json_decref(job);
    ctx_close(&c);
}

TEST(worker_threads_run_a_job)
{
    struct ctx c;
    json_t *out = NULL, *b;
    ctx_open(&c, 2);
    jobs_free(c.j); /* again, with two worker threads */
    c.o.workers = 2;
    c.o.poll_ms = 20;
    ASSERT_OK(jobs_new(c.st, c.sg, &c.o, &c.j, NULL));
    ASSERT_OK(jobs_start(c.j));
    ASSERT_OK(store_workflow_put(c.st, "ws", "det", DET_WF));
    for (int i = 0; i < 7; i++) {
        char n[16];
        snprintf(n, sizeof n, "i%d.png", i);
        upload(&c, "b1", n, i, false);
    }
    b = body("b1", "det", NULL);
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    json_t *job = NULL;
    for (int k = 0; k < 1000; k++) {
        json_decref(job);
        job = get_job(&c, "j1");
        if (json_is_true(json_object_get(job, "isTerminal")))
            break;
        usleep(10000);
    }
    ASSERT(json_is_true(json_object_get(job, "isTerminal")));
    ASSERT(json_is_false(json_object_get(job, "error")));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(job, "lastNotification"), "imagesProcessed")), 7);
    json_decref(job);
    ctx_close(&c); /* stops and joins the workers */
}

TEST(timeout_ends_the_job)
{
    struct ctx c;
    json_t *out = NULL, *b;
    int64_t t = 0;
    ctx_open(&c, 1);
    ASSERT_OK(store_workflow_put(c.st, "ws", "crop", CROP_WF));
    upload(&c, "b1", "a.png", 1, false);
    b = body("b1", "crop", "{\"processingTimeoutSeconds\": 1}");
    ASSERT_OK(jobs_create(c.j, "ws", "j1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    ASSERT_OK(jobs_claim(c.j, "A", time_now_ms(), &t));
    ASSERT_OK(jobs_heartbeat(c.j, t, "A", time_now_ms(), 600, 0.1));
    ASSERT_EQ(jobs_heartbeat(c.j, t, "A", time_now_ms(), 600, 0.2), ERR_NOTFOUND);
    json_t *job = get_job(&c, "j1");
    ASSERT(json_is_true(json_object_get(job, "error")));
    ASSERT(strstr(json_string_value(json_object_get(json_object_get(job, "lastNotification"), "message")),
                  "timeout"));
    json_decref(job);
    ctx_close(&c);
}

/* ---- machine types ----------------------------------------------------------- */

static bool sel_gpu_ok;
static int sel_checks, sel_picks, gpu_calls;

static int gpu_fake_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                          size_t n, json_t **out, char *err, size_t errlen)
{
    ASSERT_STR_EQ((const char *)ud, "gpu-provider");
    __atomic_fetch_add(&gpu_calls, 1, __ATOMIC_RELAXED);
    return fake_infer(NULL, req, images, n, out, err, errlen);
}

static int fake_select(void *ud, const char *machine_type, const char *workspace, bool needs_models,
                       wf_model_infer_fn *fn, wf_model_prepare_fn *prep, void **fn_ud, char *err, size_t errlen)
{
    (void)ud;
    (void)needs_models;
    if (fn && (!workspace || strcmp(workspace, "ws") != 0)) { /* a worker picks for the job's workspace */
        snprintf(err, errlen, "provider picked for workspace '%s'", workspace ? workspace : "(none)");
        return ERR_INVALID;
    }
    if (fn)
        sel_picks++;
    else
        sel_checks++;
    if (!strcmp(machine_type, "gpu")) {
        if (!sel_gpu_ok) {
            snprintf(err, errlen, "machineType gpu is not available on this server: no CUDA provider");
            return ERR_UNSUPPORTED;
        }
        if (fn) {
            *fn = gpu_fake_infer;
            *fn_ud = (void *)"gpu-provider";
            *prep = NULL; /* a provider without prepare: images are only decoded ahead */
        }
        return 0;
    }
    if (fn) {
        *fn = fake_infer;
        *prep = fake_prepare;
        *fn_ud = NULL;
    }
    return 0;
}

static const char *GPU_CC =
    "{\"computeConfiguration\": {\"type\": \"compute-configuration-v2\", \"machineType\": \"gpu\"}}";

TEST(gpu_jobs_refused_without_provider_and_routed_with_one)
{
    struct ctx c;
    json_t *out = NULL, *b;
    /* no model_select at all: a gpu job is refused */
    ctx_open(&c, 10);
    ASSERT_OK(store_workflow_put(c.st, "ws", "det", DET_WF));
    upload(&c, "b1", "a.png", 1, false);
    b = body("b1", "det", GPU_CC);
    ASSERT_EQ(jobs_create(c.j, "ws", "g0", NULL, b, &out, &te), ERR_INVALID);
    ASSERT(strstr(te.msg, "gpu"));
    json_decref(b);
    ctx_close(&c);

    /* a provider that has no GPU: refused with its message, only checked */
    ctx_open(&c, 10);
    jobs_free(c.j);
    c.o.model_select = fake_select;
    ASSERT_OK(jobs_new(c.st, c.sg, &c.o, &c.j, NULL));
    ASSERT_OK(store_workflow_put(c.st, "ws", "det", DET_WF));
    upload(&c, "b1", "a.png", 1, false);
    upload(&c, "b1", "b.png", 2, false);
    b = body("b1", "det", GPU_CC);
    sel_gpu_ok = false;
    ASSERT_EQ(jobs_create(c.j, "ws", "g1", NULL, b, &out, &te), ERR_INVALID);
    ASSERT(strstr(te.msg, "no CUDA provider"));
    ASSERT_EQ(sel_picks, 0);
    ASSERT_GE(sel_checks, 1);
    ASSERT_EQ(jobs_get(c.j, "ws", "g1", &out, NULL), ERR_NOTFOUND);
    /* with a GPU: accepted, and the worker runs the gpu provider */
    sel_gpu_ok = true;
    ASSERT_OK(jobs_create(c.j, "ws", "g1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    int cpu_before = fake_calls, prep_before = prep_calls, seen_before = prep_seen;
    run_all(&c);
    ASSERT_EQ(gpu_calls, 2);
    ASSERT_EQ(fake_calls - cpu_before, 2); /* gpu_fake_infer delegates to fake_infer */
    ASSERT_EQ(prep_calls - prep_before, 0); /* that provider has no prepare */
    ASSERT_EQ(prep_seen - seen_before, 0);
    ASSERT_GE(sel_picks, 1);
    json_t *job = get_job(&c, "g1");
    ASSERT(json_is_false(json_object_get(job, "error")));
    json_decref(job);
    /* a cpu job on the same service uses the cpu provider */
    b = body("b1", "det", NULL);
    ASSERT_OK(jobs_create(c.j, "ws", "c1", NULL, b, &out, NULL));
    json_decref(out);
    json_decref(b);
    prep_before = prep_calls;
    run_all(&c);
    ASSERT_EQ(gpu_calls, 2);
    ASSERT_EQ(prep_calls - prep_before, 2); /* the selected cpu provider's prepare, per image */
    /* restart with a gpu override is refused when the GPU goes away */
    sel_gpu_ok = false;
    b = json_loads("{\"type\": \"parameters-override-v1\", \"computeConfiguration\":"
                   " {\"type\": \"compute-configuration-v2\", \"machineType\": \"gpu\"}}", 0, NULL);
    ASSERT_EQ(jobs_restart(c.j, "ws", "c1", b, &out, &te), ERR_INVALID);
    ASSERT(strstr(te.msg, "no CUDA provider"));
    json_decref(b);
    ctx_close(&c);
}

TEST(missing_onnx_runtime_is_named_by_the_providers)
{
    struct model_registry_opts o = {0};
    struct model_registry *reg = NULL;
    struct jobs_models *m = NULL;
    char err[512] = "";
    wf_model_infer_fn fn = NULL;
    wf_model_prepare_fn prep = NULL;
    void *ud = NULL;
    o.ort_lib = "/nonexistent/libonnxruntime.so";
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof err));
    ASSERT_OK(jobs_models_new(reg, "/nonexistent-data", NULL, 1, &m));
    /* a workflow without models does not need the runtime */
    ASSERT_OK(jobs_models_select(m, "cpu", "ws", false, NULL, NULL, NULL, err, sizeof err));
    ASSERT(jobs_models_select(m, "cpu", "ws", true, NULL, NULL, NULL, err, sizeof err) < 0);
    ASSERT(strstr(err, "model steps") && strstr(err, "ONNX Runtime"));
    /* the gpu registry loads ONNX Runtime from the default place (VBATCH_ORT_LIB
     * or the built-in path, as jobs_models_open does): CPU-only here */
    ASSERT(jobs_models_select(m, "gpu", "ws", false, &fn, &prep, &ud, err, sizeof err) < 0);
    ASSERT(strstr(err, "gpu"));
    ASSERT(jobs_models_select(m, "tpu", "ws", false, NULL, NULL, NULL, err, sizeof err) < 0);
    /* at run time the model step's error says why, not "model not found" */
    ASSERT_OK(jobs_models_select(m, "cpu", "ws", false, &fn, &prep, &ud, err, sizeof err));
    struct vis_image *img = vis_image_new(8, 8, VIS_BGR);
    const struct vis_image *arr[1] = {img};
    struct wf_model_request req = {0};
    req.model_id = "some/1";
    json_t *out[1] = {NULL};
    ASSERT(fn(ud, &req, arr, 1, out, err, sizeof err) < 0);
    ASSERT(strstr(err, "ONNX Runtime"));
    vis_image_free(img);
    jobs_models_free(m);
    model_registry_free(reg);
}

TEST_MAIN()
