/*
 * jobs.c — the job state machine, the planner and the Batch Processing API
 * answers.  The worker loop is in worker.c, the export stage in export.c.
 *
 * A job is one row of `jobs`; it has two stages (`processing`, `export`)
 * and tasks.  The processing stage has one task per run of at most
 * max_task_items items (cut also where the shard changes; a small batch is
 * cut finer, see plan_items), the export stage exactly one task, so
 * tasksNumber is never 0.
 *
 *   POST job ─► running/processing ─┬─ every processing task done ─► running/export
 *      │  tasks: pending ─claim─► running ─complete─► done          │
 *      │           ▲   (lease expired: claimed again,               │ export task done
 *      │           │    attempts+1; too many: job fails)            ▼
 *      │           └──────── restart (tasks not done) ◄──── failed | aborted      succeeded
 *      │                                                   ▲                        │
 *      └── abort / timeout spent / failure rate exceeded ──┘                        │
 *                                                            webhook on each terminal state
 *
 * Task states: waiting (export task before processing ends), pending,
 * running (lease_owner, lease_deadline_ms), done, aborted (job ended).
 *
 * Invariants:
 *  - every state change is one transaction (BEGIN IMMEDIATE on SQLite), and
 *    the job webhook is enqueued in the transaction that ends the job;
 *  - counts shown (images processed/failed) are sums over tasks that are
 *    done, so a task run twice after a crash is never counted twice;
 *  - a worker changes a task only while it is the lease owner and the task
 *    is running (every UPDATE checks both).
 */
#include "jobs/jobs_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- schema --------------------------------------------------------------------- */

static const char *const jobs_migrations[] = {
    "CREATE TABLE jobs ("
    "  pk INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  workspace TEXT NOT NULL, job_id TEXT NOT NULL, name TEXT NOT NULL,"
    "  definition TEXT NOT NULL,"          /* canonical JSON of the posted body */
    "  wf_def TEXT NOT NULL,"              /* workflow snapshot */
    "  image_input TEXT NOT NULL, outputs TEXT NOT NULL,"
    "  batch_id TEXT NOT NULL, part_name TEXT,"
    "  agg_format TEXT NOT NULL, persist INTEGER NOT NULL, persist_list TEXT,"
    "  params TEXT NOT NULL, notif_url TEXT,"
    "  timeout_s INTEGER, max_parallel INTEGER, max_fail_rate REAL,"
    "  workers INTEGER NOT NULL, machine_type TEXT NOT NULL,"
    "  state TEXT NOT NULL,"               /* running|succeeded|failed|aborted */
    "  current_stage TEXT, message TEXT,"
    "  restart_overrides TEXT NOT NULL DEFAULT '[]',"
    "  machine_ms INTEGER NOT NULL DEFAULT 0,"
    "  items_total INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  UNIQUE (workspace, job_id));"
    "CREATE TABLE stages ("
    "  job_pk INTEGER NOT NULL REFERENCES jobs(pk) ON DELETE CASCADE,"
    "  stage_id TEXT NOT NULL, name TEXT NOT NULL, tasks_number INTEGER NOT NULL,"
    "  output_batch TEXT NOT NULL, start_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (job_pk, stage_id));"
    "CREATE TABLE tasks ("
    "  pk INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_pk INTEGER NOT NULL REFERENCES jobs(pk) ON DELETE CASCADE,"
    "  stage_id TEXT NOT NULL, task_no INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"               /* waiting|pending|running|done|aborted */
    "  after_id INTEGER NOT NULL, last_id INTEGER NOT NULL, n_items INTEGER NOT NULL,"
    "  lease_owner TEXT, lease_deadline_ms INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0, progress REAL,"
    "  done_items INTEGER NOT NULL DEFAULT 0, failed_items INTEGER NOT NULL DEFAULT 0,"
    "  message TEXT, event_ms INTEGER NOT NULL,"
    "  UNIQUE (job_pk, stage_id, task_no));"
    "CREATE INDEX tasks_state ON tasks(state, job_pk);"
    "CREATE TABLE job_logs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_pk INTEGER NOT NULL REFERENCES jobs(pk) ON DELETE CASCADE,"
    "  created_ms INTEGER NOT NULL, severity TEXT NOT NULL, module TEXT NOT NULL,"
    "  log_type TEXT NOT NULL, payload TEXT NOT NULL, stage_id TEXT, task_no INTEGER);"
    "CREATE INDEX job_logs_job ON job_logs(job_pk, id);",
    /* 2: when a task was first claimed (stage startTimestamp) */
    "ALTER TABLE tasks ADD COLUMN started_ms INTEGER;",
};

/* ---- small SQL helpers ---------------------------------------------------------------- */

static int sql_prep(sqlite3 *db, const char *sql, sqlite3_stmt **q)
{
    int src = sqlite3_prepare_v2(db, sql, -1, q, NULL);
    if (src != SQLITE_OK) {
        log_error("jobs", "database error: %s", sqlite3_errmsg(db));
        return store_sql_err(db, src);
    }
    return 0;
}

static void bind_text_or_null(sqlite3_stmt *q, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(q, i);
}

static char *col_dup(sqlite3_stmt *q, int i)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    return s ? xstrdup((const char *)s) : NULL;
}

static const char *col_str(sqlite3_stmt *q, int i)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    return s ? (const char *)s : "";
}

static int sql_step_done(sqlite3 *db, sqlite3_stmt *q)
{
    int src = sqlite3_step(q), rc = 0;
    if (src != SQLITE_DONE) {
        log_error("jobs", "database error: %s", sqlite3_errmsg(db));
        rc = store_sql_err(db, src);
    }
    sqlite3_finalize(q);
    return rc;
}

/* Insert a log row inside the caller's transaction. */
static int log_db(sqlite3 *db, int64_t job_pk, const char *severity, const char *module,
                  const char *log_type, json_t *payload /* stolen */, const char *stage, int task_no)
{
    sqlite3_stmt *q = NULL;
    char *txt = json_dumps(payload, JSON_COMPACT | JSON_REAL_PRECISION(9));
    int rc;

    json_decref(payload);
    rc = sql_prep(db, "INSERT INTO job_logs(job_pk, created_ms, severity, module, log_type, payload,"
                      " stage_id, task_no) VALUES(?,?,?,?,?,?,?,?)", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, job_pk);
        sqlite3_bind_int64(q, 2, time_now_ms());
        sqlite3_bind_text(q, 3, severity, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, module, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, log_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, txt ? txt : "{}", -1, SQLITE_TRANSIENT);
        bind_text_or_null(q, 7, stage);
        if (task_no > 0)
            sqlite3_bind_int(q, 8, task_no);
        rc = sql_step_done(db, q);
    }
    free(txt);
    return rc;
}

/* Enqueue the job webhook inside the caller's transaction (no-op when the
 * job has no notificationsURL). */
static int webhook_db(sqlite3 *db, int64_t job_pk, bool success)
{
    sqlite3_stmt *q = NULL;
    int rc = sql_prep(db, "SELECT notif_url, workspace, job_id FROM jobs WHERE pk=?", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, job_pk);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
        char ev[37];
        uuid4(ev);
        json_t *p = json_pack("{s:s,s:s,s:s,s:s,s:i}", "type", "roboflow-batch-job-notification-v1",
                              "event_id", ev, "job_id", col_str(q, 2), "job_state",
                              success ? "success" : "fail", "delivery_attempt", 1);
        char *txt = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        char *key = xasprintf("job/%s", col_str(q, 2)); /* a job's webhooks go out in order */
        rc = store_outbox_enqueue_db(db, col_str(q, 0), col_str(q, 1), key, txt, true);
        free(key);
        free(txt);
        if (rc < 0)
            log_error("jobs", "cannot queue the job webhook: %s", err_str(rc));
    }
    sqlite3_finalize(q);
    return rc;
}

/* End a running job with an error (inside the caller's transaction):
 * state failed (or aborted), unfinished tasks aborted, log, webhook.
 * No-op when the job is no longer running. */
static int job_end_error_db(sqlite3 *db, int64_t job_pk, const char *state, const char *msg,
                            const char *log_type)
{
    sqlite3_stmt *q = NULL;
    int64_t now = time_now_ms();
    int rc = sql_prep(db, "UPDATE jobs SET state=?, message=?, updated_ms=? WHERE pk=? AND state='running'",
                      &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(q, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, msg, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, now);
    sqlite3_bind_int64(q, 4, job_pk);
    rc = sql_step_done(db, q);
    if (rc < 0 || sqlite3_changes(db) == 0)
        return rc;
    rc = sql_prep(db, "UPDATE tasks SET state='aborted', lease_owner=NULL, event_ms=?"
                      " WHERE job_pk=? AND state IN ('waiting','pending','running')", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, now);
    sqlite3_bind_int64(q, 2, job_pk);
    rc = sql_step_done(db, q);
    if (rc == 0)
        rc = log_db(db, job_pk, "error", "jobs", log_type, json_pack("{s:s}", "message", msg), NULL, 0);
    if (rc == 0)
        rc = webhook_db(db, job_pk, false);
    return rc;
}

/* ---- service lifecycle ------------------------------------------------------------------- */

void jobs_opts_default(struct jobs_opts *o)
{
    memset(o, 0, sizeof *o);
    o->workers = 2;
    o->lease_ms = 15000;
    o->heartbeat_ms = 1000;
    o->poll_ms = 200;
    o->max_task_items = 500;
    o->max_attempts = 8;
    o->archive_max_bytes = 256ll << 20;
    o->row_max_bytes = 16ll << 20;
    const char *d = getenv("VBATCH_JOBS_ITEM_DELAY_MS");
    if (d && *d)
        o->item_delay_ms = MAX(0, MIN(atoll(d), 60000));
}

int jobs_new(struct store *st, struct staging *sg, const struct jobs_opts *o, struct jobs **out, struct err *err)
{
    struct jobs *j;
    int rc = store_migrate(st, "jobs", jobs_migrations, (int)ARRAY_LEN(jobs_migrations));
    if (rc < 0) {
        err_printf(err, "cannot migrate the jobs tables: %s", err_str(rc));
        return rc;
    }
    j = xcalloc(1, sizeof *j);
    j->st = st;
    j->sg = sg;
    if (o)
        j->o = *o;
    else
        jobs_opts_default(&j->o);
    if (j->o.worker_id && *j->o.worker_id) {
        j->owner_prefix = xstrdup(j->o.worker_id);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        char rnd[7];
        rand_alnum(rnd, 6);
        j->owner_prefix = xasprintf("%s-%d-%s", host, (int)getpid(), rnd);
    }
    j->o.worker_id = j->owner_prefix;
    if (j->o.max_task_items <= 0 || j->o.max_task_items > 10000)
        j->o.max_task_items = 500;
    if (j->o.lease_ms <= 0)
        j->o.lease_ms = 15000;
    if (j->o.heartbeat_ms <= 0 || j->o.heartbeat_ms > j->o.lease_ms / 2)
        j->o.heartbeat_ms = MAX(j->o.lease_ms / 3, 1);
    if (j->o.poll_ms <= 0)
        j->o.poll_ms = 200;
    if (j->o.max_attempts <= 0)
        j->o.max_attempts = 8;
    if (j->o.archive_max_bytes <= 0)
        j->o.archive_max_bytes = 256ll << 20;
    if (j->o.row_max_bytes <= 0)
        j->o.row_max_bytes = 16ll << 20;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    *out = j;
    return 0;
}

void jobs_free(struct jobs *j)
{
    if (!j)
        return;
    jobs_stop(j);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->owner_prefix);
    free(j);
}

bool jobs__stopping(struct jobs *j)
{
    pthread_mutex_lock(&j->mu);
    bool s = j->stopping;
    pthread_mutex_unlock(&j->mu);
    return s;
}

static void jobs_kick(struct jobs *j)
{
    pthread_mutex_lock(&j->mu);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ---- planner ---------------------------------------------------------------------------------- */

struct plan_task {
    int64_t after_id, last_id;
    int n;
};
struct plan {
    struct plan_task *t;
    int n, cap;
    int max_items;
    int64_t last_id;   /* id of the last item pushed (0 = none) */
    char *shard;       /* shard of the current task (owned) */
};

static void plan_push(struct plan *p, int64_t id, const char *shard)
{
    struct plan_task *cur = p->n > 0 ? &p->t[p->n - 1] : NULL;
    bool same_shard = (!shard && !p->shard) || (shard && p->shard && !strcmp(shard, p->shard));
    if (!cur || cur->n >= p->max_items || !same_shard) {
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 16;
            p->t = xrealloc(p->t, (size_t)p->cap * sizeof *p->t);
        }
        cur = &p->t[p->n++];
        cur->after_id = p->last_id;
        cur->n = 0;
        free(p->shard);
        p->shard = shard ? xstrdup(shard) : NULL;
    }
    cur->n++;
    cur->last_id = id;
    p->last_id = id;
}

static void plan_finish(struct plan *p)
{
    if (p->n == 0) { /* an empty batch still gets one (empty) task */
        p->t = xrealloc(p->t, sizeof *p->t);
        p->t[0] = (struct plan_task){0, 0, 0};
        p->n = 1;
    }
    free(p->shard);
    p->shard = NULL;
}

int jobs_plan_split(const struct staging_item *items, int n, int max_items, int *ends)
{
    struct plan p = {.max_items = max_items > 0 ? max_items : 500};
    for (int i = 0; i < n; i++)
        plan_push(&p, items[i].id, items[i].shard_id);
    plan_finish(&p);
    int k = 0, idx = 0;
    for (int t = 0; t < p.n; t++) {
        idx += p.t[t].n;
        ends[k++] = idx;
    }
    free(p.t);
    return k;
}

/* ---- job definition validation ------------------------------------------------------------ */

struct jobdef {
    const char *batch, *part;
    int workers;
    const char *machine_type;
    json_int_t timeout_s, max_parallel; /* 0 = unset */
    double max_fail_rate;               /* < 0 = unset */
    const char *wf_ws, *wf_id;
    json_t *params;                     /* borrowed object or NULL */
    const char *image_input;            /* NULL = the workflow's only one */
    bool persist;
    json_t *persist_list;               /* borrowed array or NULL */
    const char *agg;
    const char *notif;
    bool video;                         /* simple-video-processing-v1 */
    double max_fps;                     /* maxVideoFPS, 0 = every frame */
    const char *backend;                /* inferenceBackend: "inference-models" | "old-inference" */
};

static bool opt_null(const json_t *v)
{
    return !v || json_is_null(v);
}

/* Parse a compute configuration into workers/machine type. */
static int parse_compute(const json_t *cc, int *workers, const char **machine, struct err *err)
{
    const char *type = json_string_value(json_object_get(cc, "type"));
    const json_t *mt = json_object_get(cc, "machineType");
    if (!json_is_object(cc)) {
        err_printf(err, "computeConfiguration must be an object");
        return ERR_INVALID;
    }
    if (!opt_null(mt)) {
        const char *m = json_string_value(mt);
        if (!m || (strcmp(m, "cpu") && strcmp(m, "gpu"))) {
            err_printf(err, "computeConfiguration.machineType must be \"cpu\" or \"gpu\"");
            return ERR_INVALID;
        }
        *machine = m;
    }
    if (type && !strcmp(type, "compute-configuration-v2")) {
        const json_t *w = json_object_get(cc, "workersPerMachine");
        if (!opt_null(w)) {
            if (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 64) {
                err_printf(err, "computeConfiguration.workersPerMachine must be an integer from 1 to 64");
                return ERR_INVALID;
            }
            *workers = (int)json_integer_value(w);
        }
        return 0;
    }
    if (type && !strcmp(type, "compute-configuration-v1")) {
        /* Legacy machineSize, mapped to workers as the CLI does. */
        static const struct { const char *size; int workers; } map[] = {
            {"xs", 8}, {"s", 4}, {"m", 2}, {"l", 1}, {"xl", 1}};
        const char *sz = json_string_value(json_object_get(cc, "machineSize"));
        if (!sz) {
            *workers = JOBS_WORKERS_DEFAULT;
            return 0;
        }
        for (size_t i = 0; i < ARRAY_LEN(map); i++)
            if (!strcmp(sz, map[i].size)) {
                *workers = map[i].workers;
                return 0;
            }
        err_printf(err, "computeConfiguration.machineSize must be one of xs, s, m, l, xl");
        return ERR_INVALID;
    }
    err_printf(err, "computeConfiguration.type must be \"compute-configuration-v2\" (or the legacy"
              " \"compute-configuration-v1\")");
    return ERR_INVALID;
}

static int parse_pos_int(const json_t *v, const char *what, json_int_t max, json_int_t *out, struct err *err)
{
    if (opt_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max) {
        err_printf(err, "%s must be an integer from 1 to %lld", what, (long long)max);
        return ERR_INVALID;
    }
    *out = json_integer_value(v);
    return 0;
}

static int parse_rate(const json_t *v, double *out, struct err *err)
{
    if (opt_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0.0 || json_number_value(v) > 1.0) {
        err_printf(err, "maxImageFailureRate must be a number from 0 to 1");
        return ERR_INVALID;
    }
    *out = json_number_value(v);
    return 0;
}

static int parse_def(struct jobs *j, const json_t *b, struct jobdef *d, struct err *err)
{
    const char *type = json_string_value(json_object_get(b, "type"));
    const json_t *in, *ps, *v;
    int rc;

    memset(d, 0, sizeof *d);
    d->workers = JOBS_WORKERS_DEFAULT;
    d->machine_type = "cpu";
    d->max_fail_rate = -1;
    d->agg = "jsonl";
    d->backend = "inference-models";
    if (!json_is_object(b)) {
        err_printf(err, "the body must be a JSON object");
        return ERR_INVALID;
    }
    if (!type) {
        err_printf(err, "missing job type: expected \"simple-image-processing-v1\" or \"simple-video-processing-v1\"");
        return ERR_INVALID;
    }
    if (!strcmp(type, "trt-compilation-v1") || !strcmp(type, "TRT_COMPILATION_V1")) {
        err_printf(err, "TensorRT compilation jobs are not supported by this server");
        return ERR_INVALID;
    }
    d->video = !strcmp(type, "simple-video-processing-v1");
    if (!d->video && strcmp(type, "simple-image-processing-v1") != 0) {
        err_printf(err, "unknown job type '%.64s': expected \"simple-image-processing-v1\" or "
                  "\"simple-video-processing-v1\"", type);
        return ERR_INVALID;
    }
    in = json_object_get(b, "jobInput");
    if (!json_is_object(in) || !json_string_value(json_object_get(in, "type")) ||
        strcmp(json_string_value(json_object_get(in, "type")), "staging-batch-input-v1") != 0) {
        err_printf(err, "jobInput must be {\"type\": \"staging-batch-input-v1\", \"batchId\": …}");
        return ERR_INVALID;
    }
    d->batch = json_string_value(json_object_get(in, "batchId"));
    if (!d->batch || !id_valid(d->batch, 64)) {
        err_printf(err, "jobInput.batchId must be 1 to 64 characters of a-z, 0-9, '-' and '_'");
        return ERR_INVALID;
    }
    v = json_object_get(in, "partName");
    if (!opt_null(v)) {
        d->part = json_string_value(v);
        if (!d->part || !id_valid(d->part, 64)) {
            err_printf(err, "jobInput.partName is not a valid part name");
            return ERR_INVALID;
        }
    }
    v = json_object_get(in, "imagesMetadataPart");
    if (!opt_null(v) && (!json_string_value(v) || !id_valid(json_string_value(v), 64))) {
        err_printf(err, "jobInput.imagesMetadataPart is not a valid part name");
        return ERR_INVALID;
    }
    if (!opt_null(v) && d->video) {
        err_printf(err, "jobInput.imagesMetadataPart is for image jobs only");
        return ERR_INVALID;
    }
    rc = parse_compute(json_object_get(b, "computeConfiguration"), &d->workers, &d->machine_type, err);
    if (rc < 0)
        return rc;
    if ((rc = parse_pos_int(json_object_get(b, "processingTimeoutSeconds"), "processingTimeoutSeconds",
                            31ll * 24 * 3600, &d->timeout_s, err)) < 0 ||
        (rc = parse_pos_int(json_object_get(b, "maxParallelTasks"), "maxParallelTasks", 10000,
                            &d->max_parallel, err)) < 0 ||
        (rc = parse_rate(json_object_get(b, "maxImageFailureRate"), &d->max_fail_rate, err)) < 0)
        return rc;
    if (d->video && d->max_fail_rate >= 0) {
        err_printf(err, "maxImageFailureRate is for image jobs only (a video job fails its videos one by one)");
        return ERR_INVALID;
    }
    v = json_object_get(b, "inferenceBackend");
    if (!opt_null(v) && (!json_is_string(v) || (strcmp(json_string_value(v), "inference-models") &&
                                                strcmp(json_string_value(v), "old-inference")))) {
        err_printf(err, "inferenceBackend must be \"inference-models\" or \"old-inference\"");
        return ERR_INVALID;
    }
    if (!opt_null(v))
        d->backend = json_string_value(v);
    ps = json_object_get(b, "processingSpecification");
    if (!json_is_object(ps) || !json_string_value(json_object_get(ps, "type")) ||
        strcmp(json_string_value(json_object_get(ps, "type")), "workflows-processing-specification-v1")) {
        err_printf(err, "processingSpecification must have \"type\": \"workflows-processing-specification-v1\"");
        return ERR_INVALID;
    }
    d->wf_ws = json_string_value(json_object_get(ps, "workspace"));
    d->wf_id = json_string_value(json_object_get(ps, "workflowId"));
    if (!d->wf_ws || !d->wf_id || !*d->wf_ws || !*d->wf_id) {
        err_printf(err, "processingSpecification needs \"workspace\" and \"workflowId\" strings");
        return ERR_INVALID;
    }
    v = json_object_get(ps, "workflowParameters");
    if (!opt_null(v)) {
        if (!json_is_object(v)) {
            err_printf(err, "processingSpecification.workflowParameters must be an object");
            return ERR_INVALID;
        }
        d->params = (json_t *)v;
    }
    v = json_object_get(ps, "imageInputName");
    if (!opt_null(v) && !(d->image_input = json_string_value(v))) {
        err_printf(err, "processingSpecification.imageInputName must be a string");
        return ERR_INVALID;
    }
    v = json_object_get(ps, "persistImagesOutputs");
    if (!opt_null(v)) {
        if (!json_is_boolean(v)) {
            err_printf(err, "processingSpecification.persistImagesOutputs must be a boolean");
            return ERR_INVALID;
        }
        d->persist = json_is_true(v);
    }
    v = json_object_get(ps, "imagesOutputsToBePersisted");
    if (!opt_null(v)) {
        size_t i;
        json_t *e;
        if (!json_is_array(v)) {
            err_printf(err, "processingSpecification.imagesOutputsToBePersisted must be a list of output names");
            return ERR_INVALID;
        }
        json_array_foreach(v, i, e) if (!json_is_string(e))
        {
            err_printf(err, "processingSpecification.imagesOutputsToBePersisted must be a list of output names");
            return ERR_INVALID;
        }
        d->persist_list = (json_t *)v;
    }
    v = json_object_get(ps, "aggregationFormat");
    if (!opt_null(v)) {
        d->agg = json_string_value(v);
        if (!d->agg || (strcmp(d->agg, "csv") && strcmp(d->agg, "jsonl"))) {
            err_printf(err, "processingSpecification.aggregationFormat must be \"csv\" or \"jsonl\"");
            return ERR_INVALID;
        }
    }
    v = json_object_get(ps, "maxVideoFPS");
    if (!opt_null(v)) {
        if (!d->video) {
            err_printf(err, "processingSpecification.maxVideoFPS is for video jobs only");
            return ERR_INVALID;
        }
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1000)) {
            err_printf(err, "processingSpecification.maxVideoFPS must be a number of frames per second in (0, 1000]");
            return ERR_INVALID;
        }
        d->max_fps = json_number_value(v);
    }
    v = json_object_get(ps, "imagesMetadataInputsMapping");
    if (!opt_null(v) && d->video) {
        err_printf(err, "processingSpecification.imagesMetadataInputsMapping is for image jobs only");
        return ERR_INVALID;
    }
    if (!opt_null(v)) {
        const char *k;
        json_t *e;
        if (!json_is_object(v)) {
            err_printf(err, "processingSpecification.imagesMetadataInputsMapping must be an object");
            return ERR_INVALID;
        }
        json_object_foreach((json_t *)v, k, e) if (!json_is_string(e))
        {
            err_printf(err, "imagesMetadataInputsMapping['%.64s'] must be a metadata key (string)", k);
            return ERR_INVALID;
        }
    }
    v = json_object_get(b, "notificationsURL");
    if (!opt_null(v)) {
        const char *why = NULL;
        d->notif = json_string_value(v);
        if (!d->notif || strlen(d->notif) > 2048) {
            err_printf(err, "notificationsURL must be a URL string");
            return ERR_INVALID;
        }
        if (j && store_net_check_url(j->st, d->notif, &why) < 0) {
            err_printf(err, "notificationsURL '%.200s' is not allowed: %s", d->notif, why ? why : "invalid");
            return ERR_INVALID;
        }
    }
    return 0;
}

int jobs_definition_check(const json_t *body, struct err *err)
{
    struct jobdef d;
    return parse_def(NULL, body, &d, err);
}

/* ---- POST job ------------------------------------------------------------------------------------ */

/* Find a job by (ws, job_id): *pk (0 when absent) and *def (malloc'd canonical
 * definition, may be NULL). */
static int job_find(sqlite3 *db, const char *ws, const char *job_id, int64_t *pk, char **def, struct err *err)
{
    sqlite3_stmt *q = NULL;
    int rc = sql_prep(db, "SELECT pk, definition FROM jobs WHERE workspace=? AND job_id=?", &q);
    *pk = 0;
    if (def)
        *def = NULL;
    if (rc < 0)
        return rc;
    sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, job_id, -1, SQLITE_STATIC);
    int s = sqlite3_step(q);
    if (s == SQLITE_ROW) {
        *pk = sqlite3_column_int64(q, 0);
        if (def)
            *def = col_dup(q, 1);
    } else if (s != SQLITE_DONE) {
        err_printf(err, "database error: %s", sqlite3_errmsg(db));
        rc = ERR_INTERNAL;
    }
    sqlite3_finalize(q);
    return rc;
}

static json_t *reply_created(const char *job_id, bool created)
{
    return json_pack("{s:s,s:s,s:b}", "status", "ok", "jobId", job_id, "created", created);
}

/* Can jobs of this machine type run here (the model runtime, and for
 * "gpu" a GPU execution provider)?  Loads no model.  ERR_INVALID (400)
 * with a message when not. */
static int machine_check(struct jobs *j, const char *machine_type, bool needs_models, struct err *err)
{
    char why[400];
    if (!j->o.model_select) {
        if (machine_type && !strcmp(machine_type, "gpu")) {
            err_printf(err, "computeConfiguration.machineType \"gpu\" is not available on this server (no GPU"
                      " model runtime configured)");
            return ERR_INVALID;
        }
        return 0;
    }
    if (j->o.model_select(j->o.model_select_ud, machine_type, NULL, needs_models, NULL, NULL, NULL, why,
                          sizeof why) < 0) {
        err_printf(err, "%s", why);
        return ERR_INVALID;
    }
    return 0;
}

/* Compile the snapshot and resolve the image input and the outputs. */
static int check_workflow(const char *wf_text, const struct jobdef *d, char **image_input,
                          json_t **outputs, bool *uses_models, struct err *err)
{
    struct wf_workflow *wf = NULL;
    char why[400];
    int rc = wf_compile_text(wf_text, strlen(wf_text), &wf, why, sizeof why);
    if (rc < 0) {
        err_printf(err, "workflow '%s' does not compile: %s", d->wf_id, why);
        return ERR_INVALID;
    }
    *uses_models = wf_uses_models(wf);
    size_t ni = wf_image_input_count(wf);
    if (d->image_input) {
        bool found = false;
        for (size_t i = 0; i < ni; i++)
            found |= !strcmp(wf_image_input_name(wf, i), d->image_input);
        if (!found) {
            err_printf(err, "imageInputName '%.64s' is not an image input of workflow '%s'", d->image_input,
                      d->wf_id);
            rc = ERR_INVALID;
            goto out;
        }
        *image_input = xstrdup(d->image_input);
    } else if (ni == 1) {
        *image_input = xstrdup(wf_image_input_name(wf, 0));
    } else {
        err_printf(err, "workflow '%s' has %zu image inputs: batch processing needs exactly one, or"
                  " imageInputName", d->wf_id, ni);
        rc = ERR_INVALID;
        goto out;
    }
    *outputs = json_array();
    for (size_t i = 0; i < wf_output_count(wf); i++)
        json_array_append_new(*outputs, json_string(wf_output_name(wf, i)));
    if (d->persist_list) {
        size_t i;
        json_t *e;
        json_array_foreach(d->persist_list, i, e)
        {
            bool found = false;
            for (size_t k = 0; k < wf_output_count(wf); k++)
                found |= !strcmp(wf_output_name(wf, k), json_string_value(e));
            if (!found) {
                err_printf(err, "imagesOutputsToBePersisted: '%.64s' is not an output of workflow '%s'",
                          json_string_value(e), d->wf_id);
                rc = ERR_INVALID;
                free(*image_input);
                *image_input = NULL;
                json_decref(*outputs);
                *outputs = NULL;
                goto out;
            }
        }
    }
out:
    wf_free(wf);
    return rc;
}

/* Smallest task the planner cuts a small batch into. */
#define PLAN_MIN_TASK_ITEMS 16

/* Read every item id of the input and plan the tasks.  An image job takes
 * only images and a video job only videos, one task per video.  For images,
 * a batch of fewer than 2 x workers x max_task_items images is cut into
 * about 2 tasks per local worker thread (of at least PLAN_MIN_TASK_ITEMS):
 * with tasks of 500, a 400-image job would run on one worker — one ONNX
 * Runtime thread of a 2-core machine — while the other waits. */
static int plan_items(struct jobs *j, const char *ws, const struct jobdef *d, struct plan *p,
                      int64_t *total, struct err *err)
{
    int64_t after = 0, count = 0;
    int rc = 0;
    *total = 0;
    p->max_items = d->video ? 1 : j->o.max_task_items;
    if (!d->video && staging_items_count(j->sg, ws, d->batch, d->part, &count, err) == 0 && count > 0) {
        int64_t want = 2 * (int64_t)MAX(j->o.workers, 1);
        int64_t per = MAX(PLAN_MIN_TASK_ITEMS, (count + want - 1) / want);
        p->max_items = (int)MIN((int64_t)j->o.max_task_items, per);
    }
    for (;;) {
        struct staging_item *it = NULL;
        int n = 0;
        /* Images only: metadata items (sidecars) are read by the worker. */
        rc = staging_items_page_media(j->sg, ws, d->batch, d->part, after, 5000, &it, &n, err);
        if (rc == ERR_NOTFOUND) {
            err_printf(err, "batch '%s' not found in workspace '%s'", d->batch, ws);
            return rc;
        }
        if (rc < 0) {
            return err_prefix(err, rc, "cannot read batch '%s'", d->batch);
        }
        for (int i = 0; i < n; i++) {
            bool is_video = it[i].content_type && !strcmp(it[i].content_type, "video");
            if (is_video != d->video) {
                err_printf(err, is_video ? "batch '%s' holds videos ('%.100s'): post a video job "
                                     "(\"type\": \"simple-video-processing-v1\") for them"
                                   : "batch '%s' holds images ('%.100s'): a video job takes videos only",
                          d->batch, it[i].name);
                staging_items_free(it, n);
                return ERR_INVALID;
            }
            plan_push(p, it[i].id, it[i].shard_id);
            after = it[i].id;
        }
        *total += n;
        staging_items_free(it, n);
        if (n < 5000)
            break;
    }
    plan_finish(p);
    return 0;
}

int jobs_create(struct jobs *j, const char *ws, const char *job_id, const char *name, const json_t *body,
                json_t **out, struct err *err)
{
    struct jobdef d;
    struct plan p = {0};
    char *canon = NULL, *existing = NULL, *wf_text = NULL, *image_input = NULL;
    char *params_txt = NULL, *plist_txt = NULL, *outputs_txt = NULL;
    json_t *outputs = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int64_t pk = 0, total = 0, now = time_now_ms();
    bool uses_models = false;
    int rc;

    if (!id_valid(job_id, JOBS_ID_MAX)) {
        err_printf(err, "invalid job id '%.40s': use 1 to 20 characters of a-z, 0-9, '-' and '_'", job_id);
        return ERR_INVALID;
    }
    if (name && strlen(name) > 256) {
        err_printf(err, "job name is longer than 256 characters");
        return ERR_INVALID;
    }
    rc = parse_def(j, body, &d, err);
    if (rc < 0)
        return rc;
    canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (!canon) {
        err_printf(err, "cannot serialise the job definition");
        return ERR_INVALID;
    }
    /* Idempotent re-POST: the same definition answers 200, another 409. */
    db = store_db_acquire(j->st);
    rc = job_find(db, ws, job_id, &pk, &existing, err);
    store_db_release(j->st, db);
    db = NULL;
    if (rc < 0)
        goto out;
    if (pk) {
        if (existing && !strcmp(existing, canon)) {
            *out = reply_created(job_id, false);
        } else {
            err_printf(err, "job '%s' already exists with a different definition", job_id);
            rc = ERR_EXISTS;
        }
        goto out;
    }
    if (strcmp(d.wf_ws, ws) != 0) {
        err_printf(err, "workflow workspace '%.64s' is not this workspace ('%s'): only workflows of the"
                  " job's workspace can be used", d.wf_ws, ws);
        rc = ERR_INVALID;
        goto out;
    }
    rc = store_workflow_get(j->st, ws, d.wf_id, &wf_text);
    if (rc == ERR_NOTFOUND || rc == ERR_INVALID) {
        err_printf(err, "workflow '%.64s' not found in workspace '%s'", d.wf_id, ws);
        rc = ERR_NOTFOUND;
        goto out;
    }
    if (rc < 0) {
        err_printf(err, "cannot read workflow '%.64s': %s", d.wf_id, err_str(rc));
        goto out;
    }
    rc = check_workflow(wf_text, &d, &image_input, &outputs, &uses_models, err);
    if (rc < 0)
        goto out;
    rc = machine_check(j, d.machine_type, uses_models, err);
    if (rc < 0)
        goto out;
    rc = plan_items(j, ws, &d, &p, &total, err);
    if (rc < 0)
        goto out;
    /* A job writes its results and exports: refused while the data
     * folder is below its reserve, with the cause, rather than failing
     * on its first write. */
    rc = store_space_check(j->st, 0, "a new job", err);
    if (rc < 0)
        goto out;
    params_txt = d.params ? json_dumps(d.params, JSON_COMPACT | JSON_REAL_PRECISION(17)) : xstrdup("{}");
    plist_txt = d.persist_list ? json_dumps(d.persist_list, JSON_COMPACT) : NULL;
    outputs_txt = json_dumps(outputs, JSON_COMPACT);

    db = store_db_acquire(j->st);
    rc = store_tx_begin(db);
    if (rc < 0) {
        err_printf(err, "%s", rc == ERR_AGAIN ? "database busy" : err_str(rc));
        goto out;
    }
    rc = job_find(db, ws, job_id, &pk, NULL, err);
    if (rc == 0 && pk) {
        err_printf(err, "job '%s' was created concurrently", job_id);
        rc = ERR_EXISTS;
    }
    if (rc == 0)
        rc = sql_prep(db, "INSERT INTO jobs(workspace, job_id, name, definition, wf_def, image_input, outputs,"
                          " batch_id, part_name, agg_format, persist, persist_list, params, notif_url,"
                          " timeout_s, max_parallel, max_fail_rate, workers, machine_type, state,"
                          " current_stage, items_total, created_ms, updated_ms)"
                          " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'running','processing',?,?,?)", &q);
    if (rc == 0) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, job_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, name && *name ? name : job_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, canon, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, wf_text, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, image_input, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 7, outputs_txt, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 8, d.batch, -1, SQLITE_STATIC);
        bind_text_or_null(q, 9, d.part);
        sqlite3_bind_text(q, 10, d.agg, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 11, d.persist);
        bind_text_or_null(q, 12, plist_txt);
        sqlite3_bind_text(q, 13, params_txt, -1, SQLITE_STATIC);
        bind_text_or_null(q, 14, d.notif);
        sqlite3_bind_int64(q, 15, d.timeout_s ? d.timeout_s : JOBS_TIMEOUT_S_DEFAULT);
        if (d.max_parallel)
            sqlite3_bind_int64(q, 16, d.max_parallel);
        if (d.max_fail_rate >= 0)
            sqlite3_bind_double(q, 17, d.max_fail_rate);
        sqlite3_bind_int(q, 18, d.workers);
        sqlite3_bind_text(q, 19, d.machine_type, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 20, total);
        sqlite3_bind_int64(q, 21, now);
        sqlite3_bind_int64(q, 22, now);
        rc = sql_step_done(db, q);
        pk = sqlite3_last_insert_rowid(db);
    }
    for (int s = 0; rc == 0 && s < 2; s++) {
        char *ob = xasprintf("%s-%s", job_id, s == 0 ? "processing" : "export");
        rc = sql_prep(db, "INSERT INTO stages(job_pk, stage_id, name, tasks_number, output_batch, start_ms)"
                          " VALUES(?,?,?,?,?,?)", &q);
        if (rc == 0) {
            sqlite3_bind_int64(q, 1, pk);
            sqlite3_bind_text(q, 2, s == 0 ? JOBS_STAGE_PROC : JOBS_STAGE_EXPORT, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, s == 0 ? "Processing images" : "Exporting results", -1, SQLITE_STATIC);
            sqlite3_bind_int(q, 4, s == 0 ? p.n : 1);
            sqlite3_bind_text(q, 5, ob, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 6, now);
            rc = sql_step_done(db, q);
        }
        free(ob);
    }
    for (int t = 0; rc == 0 && t <= p.n; t++) {
        bool exp = t == p.n;
        rc = sql_prep(db, "INSERT INTO tasks(job_pk, stage_id, task_no, state, after_id, last_id, n_items,"
                          " event_ms) VALUES(?,?,?,?,?,?,?,?)", &q);
        if (rc == 0) {
            sqlite3_bind_int64(q, 1, pk);
            sqlite3_bind_text(q, 2, exp ? JOBS_STAGE_EXPORT : JOBS_STAGE_PROC, -1, SQLITE_STATIC);
            sqlite3_bind_int(q, 3, exp ? 1 : t + 1);
            sqlite3_bind_text(q, 4, exp ? "waiting" : "pending", -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 5, exp ? 0 : p.t[t].after_id);
            sqlite3_bind_int64(q, 6, exp ? 0 : p.t[t].last_id);
            sqlite3_bind_int(q, 7, exp ? 0 : p.t[t].n);
            sqlite3_bind_int64(q, 8, now);
            rc = sql_step_done(db, q);
        }
    }
    if (rc == 0)
        rc = log_db(db, pk, "info", "jobs", "job-created",
                    json_pack("{s:s,s:s,s:I,s:i,s:s,s:i,s:I,s:s}", "batchId", d.batch, "workflowId", d.wf_id,
                              "images", (json_int_t)total, "tasks", p.n, "machineType", d.machine_type,
                              "workersPerMachine", d.workers, "processingTimeoutSeconds",
                              (json_int_t)(d.timeout_s ? d.timeout_s : JOBS_TIMEOUT_S_DEFAULT),
                              "inferenceBackend", d.backend),
                    NULL, 0);
    if (rc == 0)
        rc = store_tx_commit(db);
    else
        store_tx_rollback(db);
    if (rc == 0) {
        *out = reply_created(job_id, true);
        log_info("jobs", "job created ws=%s job=%s images=%lld tasks=%d", ws, job_id, (long long)total, p.n);
        jobs_kick(j);
    }
out:
    if (db)
        store_db_release(j->st, db);
    free(p.t);
    free(p.shard);
    free(canon);
    free(existing);
    free(wf_text);
    free(image_input);
    free(params_txt);
    free(plist_txt);
    free(outputs_txt);
    json_decref(outputs);
    return rc;
}

/* ---- reads --------------------------------------------------------------------------------------- */

static json_t *ts_json(int64_t ms)
{
    char b[TIME_ISO_LEN];
    time_iso8601(ms, b);
    return json_string(b);
}

static json_t *parse_or(const char *txt, json_t *dflt)
{
    json_t *v = txt ? json_loads(txt, 0, NULL) : NULL;
    if (!v)
        return dflt;
    json_decref(dflt);
    return v;
}

#define JOB_COLS                                                                                     \
    "j.pk, j.job_id, j.name, j.definition, j.state, j.current_stage, j.message, j.restart_overrides,"  \
    " j.created_ms, j.updated_ms, j.items_total, j.machine_ms,"                                        \
    " (SELECT COALESCE(SUM(done_items),0) FROM tasks t WHERE t.job_pk=j.pk AND t.state='done'"        \
    "   AND t.stage_id='processing'),"                                                               \
    " (SELECT COALESCE(SUM(failed_items),0) FROM tasks t WHERE t.job_pk=j.pk"                         \
    "   AND t.state IN ('done','aborted')" /* a task the failure budget stopped: its failures */      \
    "   AND t.stage_id='processing'),"                                                               \
    " (SELECT MAX(event_ms) FROM tasks t WHERE t.job_pk=j.pk),"                                      \
    " (SELECT COALESCE(SUM(COALESCE(progress,0)*n_items),0) FROM tasks t WHERE t.job_pk=j.pk"         \
    "   AND t.stage_id='processing'),"                                                               \
    " EXISTS(SELECT 1 FROM tasks t WHERE t.job_pk=j.pk AND (t.started_ms IS NOT NULL OR t.state='done'))"

static json_t *job_meta_from_row(sqlite3_stmt *q)
{
    const char *state = col_str(q, 4);
    const char *job_id = col_str(q, 1);
    bool running = !strcmp(state, "running");
    bool ok = !strcmp(state, "succeeded");
    int64_t updated = MAX(sqlite3_column_int64(q, 9), sqlite3_column_int64(q, 14));
    json_t *notif = json_object();
    json_t *batches = json_array();
    char *pb = xasprintf("%s-processing", job_id), *eb = xasprintf("%s-export", job_id);

    json_array_append_new(batches, json_string(pb));
    json_array_append_new(batches, json_string(eb));
    json_object_set_new(notif, "type", json_string("job-state-v1"));
    json_object_set_new(notif, "state", json_string(state));
    json_object_set_new(notif, "message",
                        json_string(sqlite3_column_type(q, 6) != SQLITE_NULL ? col_str(q, 6)
                                    : ok      ? "job completed"
                                    : running ? "job in progress"
                                              : state));
    json_object_set_new(notif, "imagesTotal", json_integer(sqlite3_column_int64(q, 10)));
    json_object_set_new(notif, "imagesProcessed", json_integer(sqlite3_column_int64(q, 12)));
    json_object_set_new(notif, "imagesFailed", json_integer(sqlite3_column_int64(q, 13)));
    /* fraction of the processing stage done, moving with the heartbeats */
    int64_t total = sqlite3_column_int64(q, 10);
    json_object_set_new(notif, "progress",
                        json_real(total > 0 ? MIN(1.0, sqlite3_column_double(q, 15) / (double)total)
                                  : (ok ? 1.0 : 0.0)));
    json_object_set_new(notif, "machineTimeSeconds", json_real((double)sqlite3_column_int64(q, 11) / 1000.0));
    json_object_set_new(notif, "resultsBatches", batches);
    free(pb);
    free(eb);

    json_t *m = json_object();
    json_object_set_new(m, "jobId", json_string(job_id));
    json_object_set_new(m, "name", json_string(col_str(q, 2)));
    json_object_set_new(m, "jobDefinition", parse_or(col_str(q, 3), json_object()));
    json_object_set_new(m, "currentStage", sqlite3_column_type(q, 5) != SQLITE_NULL
                                               ? json_string(col_str(q, 5)) : json_null());
    json_object_set_new(m, "plannedStages", json_pack("[s,s]", JOBS_STAGE_PROC, JOBS_STAGE_EXPORT));
    json_object_set_new(m, "error", json_boolean(!running && !ok));
    json_object_set_new(m, "isTerminal", json_boolean(!running));
    json_object_set_new(m, "lastNotification", notif);
    json_object_set_new(m, "createdAt", ts_json(sqlite3_column_int64(q, 8)));
    json_object_set_new(m, "lastUpdate", ts_json(updated));
    json_object_set_new(m, "restartParametersOverride", parse_or(col_str(q, 7), json_array()));
    return m;
}

/* Look a job up and return its pk (ERR_NOTFOUND with a message). */
static int job_pk_get(struct jobs *j, const char *ws, const char *job_id, int64_t *pk, struct err *err)
{
    sqlite3 *db = store_db_acquire(j->st);
    int rc = job_find(db, ws, job_id, pk, NULL, err);
    store_db_release(j->st, db);
    if (rc == 0 && !*pk) {
        err_printf(err, "job '%.40s' not found in workspace '%s'", job_id, ws);
        rc = ERR_NOTFOUND;
    }
    return rc;
}

/* The seed's job status of an internal state (docs/JOBS.md, "Job status"):
 * a running job is "pending" until a worker has claimed one of its tasks,
 * then "processing"; succeeded -> "completed"; aborted -> "aborted"; every
 * other end (failed, and any error state) -> "failed". */
static const char *job_status_of(const char *state, bool started)
{
    if (!strcmp(state, "running"))
        return started ? "processing" : "pending";
    if (!strcmp(state, "succeeded"))
        return "completed";
    if (!strcmp(state, "aborted"))
        return "aborted";
    return "failed";
}

int jobs_get(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err)
{
    sqlite3_stmt *q = NULL;
    sqlite3 *db = store_db_acquire(j->st);
    int rc = sql_prep(db, "SELECT " JOB_COLS " FROM jobs j WHERE j.workspace=? AND j.job_id=?", &q);
    if (rc == 0) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, job_id, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            json_t *m = job_meta_from_row(q);
            /* top-level progress: the very value of lastNotification.progress */
            json_t *prog = json_object_get(json_object_get(m, "lastNotification"), "progress");
            *out = json_pack("{s:s,s:s,s:f,s:o}", "status", "ok", "jobStatus",
                             job_status_of(col_str(q, 4), sqlite3_column_int(q, 16) != 0), "progress",
                             json_number_value(prog), "job", m);
        } else {
            err_printf(err, "job '%.40s' not found in workspace '%s'", job_id, ws);
            rc = ERR_NOTFOUND;
        }
    }
    sqlite3_finalize(q);
    store_db_release(j->st, db);
    return rc;
}

/* Page tokens carry the key of the last row of the previous page, bound
 * to the listing (page_token_make in base.h): "jobs|<ws>",
 * "tasks|<job pk>|<stage>", "logs|<job pk>|<severity>". */
#define PAGE_SCOPE_MAX 192

static int token_parse(const char *scope, const char *tok, int64_t *v, struct err *err)
{
    if (page_token_parse(scope, tok, v) < 0 || *v < 0) {
        err_printf(err, "invalid nextPageToken '%.40s': not one this listing gave", tok);
        return ERR_INVALID;
    }
    return 0;
}

static int page_size_fix(int page_size, int *out, struct err *err)
{
    if (page_size <= 0)
        page_size = 100;
    if (page_size > 1000) {
        err_printf(err, "pageSize must be at most 1000");
        return ERR_INVALID;
    }
    *out = page_size;
    return 0;
}

static json_t *token_json(const char *scope, bool more, int64_t last)
{
    if (!more)
        return json_null();
    char *t = page_token_make(scope, last);
    json_t *r = json_string(t);
    free(t);
    return r;
}

int jobs_list(struct jobs *j, const char *ws, int page_size, const char *token, json_t **out, struct err *err)
{
    int64_t before;
    int ps, rc;
    char scope[PAGE_SCOPE_MAX];
    snprintf(scope, sizeof scope, "jobs|%s", ws);
    if ((rc = token_parse(scope, token, &before, err)) < 0 || (rc = page_size_fix(page_size, &ps, err)) < 0)
        return rc;
    sqlite3_stmt *q = NULL;
    sqlite3 *db = store_db_acquire(j->st);
    rc = sql_prep(db, "SELECT " JOB_COLS " FROM jobs j WHERE j.workspace=? AND (?=0 OR j.pk<?)"
                      " ORDER BY j.pk DESC LIMIT ?", &q);
    if (rc == 0) {
        json_t *arr = json_array();
        int64_t last = 0;
        int n = 0;
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, before);
        sqlite3_bind_int64(q, 3, before);
        sqlite3_bind_int(q, 4, ps + 1);
        while (sqlite3_step(q) == SQLITE_ROW) {
            if (n == ps)
                break;
            json_array_append_new(arr, job_meta_from_row(q));
            last = sqlite3_column_int64(q, 0);
            n++;
        }
        bool more = sqlite3_stmt_busy(q) && n == ps;
        *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "jobs", arr, "nextPageToken", token_json(scope, more, last));
    }
    sqlite3_finalize(q);
    store_db_release(j->st, db);
    return rc;
}

static const char *task_status_type(const char *state)
{
    if (!strcmp(state, "done"))
        return "success";
    if (!strcmp(state, "running"))
        return "info";
    if (!strcmp(state, "aborted"))
        return "error";
    return "pending"; /* waiting, pending */
}

int jobs_stages(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err)
{
    int64_t pk;
    int rc = job_pk_get(j, ws, job_id, &pk, err);
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = NULL;
    sqlite3 *db = store_db_acquire(j->st);
    rc = sql_prep(db, "SELECT s.stage_id, s.name, s.tasks_number, s.output_batch, s.start_ms,"
                      " (SELECT COUNT(*) FROM tasks t WHERE t.job_pk=s.job_pk AND t.stage_id=s.stage_id"
                      "   AND t.state='done'),"
                      " (SELECT COUNT(*) FROM tasks t WHERE t.job_pk=s.job_pk AND t.stage_id=s.stage_id"
                      "   AND t.state='running'),"
                      " (SELECT COUNT(*) FROM tasks t WHERE t.job_pk=s.job_pk AND t.stage_id=s.stage_id"
                      "   AND t.state='aborted'),"
                      " (SELECT MAX(event_ms) FROM tasks t WHERE t.job_pk=s.job_pk AND t.stage_id=s.stage_id),"
                      " (SELECT MIN(started_ms) FROM tasks t WHERE t.job_pk=s.job_pk AND t.stage_id=s.stage_id),"
                      " (SELECT COALESCE(SUM(COALESCE(progress,0)),0) FROM tasks t WHERE t.job_pk=s.job_pk"
                      "   AND t.stage_id=s.stage_id),"
                      " (SELECT COALESCE(SUM(done_items),0) FROM tasks t WHERE t.job_pk=s.job_pk"
                      "   AND t.stage_id=s.stage_id AND t.state='done'),"
                      " (SELECT COALESCE(SUM(failed_items),0) FROM tasks t WHERE t.job_pk=s.job_pk"
                      "   AND t.stage_id=s.stage_id AND t.state IN ('done','aborted'))"
                      " FROM stages s WHERE s.job_pk=? ORDER BY s.stage_id='export', s.stage_id", &q);
    if (rc == 0) {
        json_t *arr = json_array();
        sqlite3_bind_int64(q, 1, pk);
        while (sqlite3_step(q) == SQLITE_ROW) {
            int total = sqlite3_column_int(q, 2), done = sqlite3_column_int(q, 5);
            int running = sqlite3_column_int(q, 6), aborted = sqlite3_column_int(q, 7);
            const char *st = done == total ? "success" : aborted ? "error" : running || done ? "info"
                                                                                           : "pending";
            int64_t start = sqlite3_column_type(q, 9) != SQLITE_NULL ? sqlite3_column_int64(q, 9)
                                                                      : sqlite3_column_int64(q, 4);
            json_t *notif = json_pack("{s:s,s:i,s:i,s:i,s:f}", "message",
                                      done == total ? "stage completed" : aborted ? "stage ended with an error"
                                      : running || done ? "stage in progress" : "stage not started",
                                      "tasksDone", done, "tasksRunning", running, "tasksNumber", total,
                                      "progress", total ? sqlite3_column_double(q, 10) / total : 1.0);
            if (!strcmp(col_str(q, 0), JOBS_STAGE_PROC)) { /* the images of the tasks done */
                json_object_set_new(notif, "imagesProcessed", json_integer(sqlite3_column_int64(q, 11)));
                json_object_set_new(notif, "imagesFailed", json_integer(sqlite3_column_int64(q, 12)));
            }
            json_t *s = json_object();
            json_object_set_new(s, "processingStageId", json_string(col_str(q, 0)));
            json_object_set_new(s, "processingStageName", json_string(col_str(q, 1)));
            json_object_set_new(s, "tasksNumber", json_integer(total > 0 ? total : 1));
            json_object_set_new(s, "outputBatches", json_pack("[s]", col_str(q, 3)));
            json_object_set_new(s, "startTimestamp", ts_json(start));
            json_object_set_new(s, "notification", notif);
            json_object_set_new(s, "statusType", json_string(st));
            json_object_set_new(s, "lastEventTimestamp",
                                ts_json(MAX(sqlite3_column_int64(q, 8), start)));
            json_array_append_new(arr, s);
        }
        *out = json_pack("{s:s,s:o}", "status", "ok", "stages", arr);
    }
    sqlite3_finalize(q);
    store_db_release(j->st, db);
    return rc;
}

int jobs_tasks(struct jobs *j, const char *ws, const char *job_id, const char *stage, int page_size,
               const char *token, json_t **out, struct err *err)
{
    int64_t pk, after;
    int ps, rc;
    char scope[PAGE_SCOPE_MAX];
    if ((rc = page_size_fix(page_size, &ps, err)) < 0)
        return rc;
    if ((rc = job_pk_get(j, ws, job_id, &pk, err)) < 0)
        return rc;
    snprintf(scope, sizeof scope, "tasks|%lld|%.40s", (long long)pk, stage);
    if ((rc = token_parse(scope, token, &after, err)) < 0)
        return rc;
    if (strcmp(stage, JOBS_STAGE_PROC) && strcmp(stage, JOBS_STAGE_EXPORT)) {
        err_printf(err, "job '%s' has no stage '%.40s' (stages: processing, export)", job_id, stage);
        return ERR_NOTFOUND;
    }
    sqlite3_stmt *q = NULL;
    sqlite3 *db = store_db_acquire(j->st);
    rc = sql_prep(db, "SELECT task_no, state, progress, done_items, failed_items, n_items, attempts, message,"
                      " event_ms FROM tasks WHERE job_pk=? AND stage_id=? AND task_no>? ORDER BY task_no LIMIT ?",
                  &q);
    if (rc == 0) {
        json_t *arr = json_array();
        int n = 0;
        int64_t last = 0;
        bool more = false;
        sqlite3_bind_int64(q, 1, pk);
        sqlite3_bind_text(q, 2, stage, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, after);
        sqlite3_bind_int(q, 4, ps + 1);
        while (sqlite3_step(q) == SQLITE_ROW) {
            if (n == ps) {
                more = true;
                break;
            }
            char tid[48];
            const char *state = col_str(q, 1);
            snprintf(tid, sizeof tid, "%s-%05d", stage, sqlite3_column_int(q, 0));
            json_t *notif = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i}", "message",
                                      sqlite3_column_type(q, 7) != SQLITE_NULL ? col_str(q, 7) : state,
                                      "state", state, "imagesProcessed", sqlite3_column_int(q, 3),
                                      "imagesFailed", sqlite3_column_int(q, 4), "images",
                                      sqlite3_column_int(q, 5), "attempts", sqlite3_column_int(q, 6));
            json_t *t = json_object();
            json_object_set_new(t, "taskId", json_string(tid));
            json_object_set_new(t, "notification", notif);
            json_object_set_new(t, "statusType", json_string(task_status_type(state)));
            /* not started: no "progress" key (the client reads it as None) */
            if (sqlite3_column_type(q, 2) != SQLITE_NULL)
                json_object_set_new(t, "progress", json_real(sqlite3_column_double(q, 2)));
            json_object_set_new(t, "eventTimestamp", ts_json(sqlite3_column_int64(q, 8)));
            json_array_append_new(arr, t);
            last = sqlite3_column_int64(q, 0);
            n++;
        }
        *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "tasks", arr, "nextPageToken", token_json(scope, more, last));
    }
    sqlite3_finalize(q);
    store_db_release(j->st, db);
    return rc;
}

int jobs_logs(struct jobs *j, const char *ws, const char *job_id, const char *severity, int page_size,
              const char *token, json_t **out, struct err *err)
{
    int64_t pk, after;
    int ps, rc;
    if (severity && *severity && strcmp(severity, "info") && strcmp(severity, "warning") &&
        strcmp(severity, "error")) {
        err_printf(err, "severity must be info, warning or error");
        return ERR_INVALID;
    }
    if (severity && !*severity)
        severity = NULL;
    char scope[PAGE_SCOPE_MAX];
    if ((rc = page_size_fix(page_size, &ps, err)) < 0)
        return rc;
    if ((rc = job_pk_get(j, ws, job_id, &pk, err)) < 0)
        return rc;
    snprintf(scope, sizeof scope, "logs|%lld|%s", (long long)pk, severity ? severity : "");
    if ((rc = token_parse(scope, token, &after, err)) < 0)
        return rc;
    sqlite3_stmt *q = NULL;
    sqlite3 *db = store_db_acquire(j->st);
    rc = sql_prep(db, "SELECT id, created_ms, severity, module, log_type, payload, stage_id, task_no"
                      " FROM job_logs WHERE job_pk=? AND id>? AND (?3 IS NULL OR severity=?3)"
                      " ORDER BY id LIMIT ?4", &q);
    if (rc == 0) {
        json_t *arr = json_array();
        int n = 0;
        int64_t last = 0;
        bool more = false;
        sqlite3_bind_int64(q, 1, pk);
        sqlite3_bind_int64(q, 2, after);
        bind_text_or_null(q, 3, severity);
        sqlite3_bind_int(q, 4, ps + 1);
        while (sqlite3_step(q) == SQLITE_ROW) {
            if (n == ps) {
                more = true;
                break;
            }
            json_t *l = json_object();
            json_object_set_new(l, "createdAt", ts_json(sqlite3_column_int64(q, 1)));
            /* optional keys are left out rather than null (the published
             * schema does not declare them nullable) */
            if (sqlite3_column_type(q, 6) != SQLITE_NULL)
                json_object_set_new(l, "processingStageId", json_string(col_str(q, 6)));
            if (sqlite3_column_type(q, 7) != SQLITE_NULL) {
                char tid[48];
                snprintf(tid, sizeof tid, "%s-%05d", col_str(q, 6), sqlite3_column_int(q, 7));
                json_object_set_new(l, "taskId", json_string(tid));
            }
            json_object_set_new(l, "severity", json_string(col_str(q, 2)));
            json_object_set_new(l, "reportingModule", json_string(col_str(q, 3)));
            json_object_set_new(l, "logType", json_string(col_str(q, 4)));
            json_object_set_new(l, "payload", parse_or(col_str(q, 5), json_object()));
            json_array_append_new(arr, l);
            last = sqlite3_column_int64(q, 0);
            n++;
        }
        *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "logs", arr, "nextPageToken", token_json(scope, more, last));
    }
    sqlite3_finalize(q);
    store_db_release(j->st, db);
    return rc;
}

/* ---- abort and restart ------------------------------------------------------------------------- */

int jobs_abort(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err)
{
    int64_t pk;
    int rc = job_pk_get(j, ws, job_id, &pk, err);
    if (rc < 0)
        return rc;
    sqlite3 *db = store_db_acquire(j->st);
    rc = store_tx_begin(db);
    if (rc == 0) {
        rc = job_end_error_db(db, pk, "aborted", "job aborted on request", "job-aborted");
        if (rc == 0)
            rc = store_tx_commit(db);
        else
            store_tx_rollback(db);
    }
    store_db_release(j->st, db);
    if (rc == 0) {
        json_t *m = NULL;
        rc = jobs_get(j, ws, job_id, &m, err);
        if (rc == 0) {
            json_t *job = json_object_get(m, "job");
            *out = json_pack("{s:s,s:s,s:O}", "status", "ok", "jobId", job_id, "job", job);
            json_decref(m);
            log_info("jobs", "job aborted ws=%s job=%s", ws, job_id);
        }
    }
    return rc;
}

int jobs_restart(struct jobs *j, const char *ws, const char *job_id, const json_t *body, json_t **out, struct err *err)
{
    int64_t pk;
    json_int_t timeout = 0, maxpar = 0;
    double rate = -1;
    int workers = 0;
    const char *machine = NULL;
    bool has_cc = false;
    int rc;

    if (json_is_object(body) && json_object_size(body) == 0)
        body = NULL; /* {} means no override, like no body */
    if (body && !json_is_null(body)) {
        const char *type = json_string_value(json_object_get(body, "type"));
        if (!json_is_object(body) || !type || strcmp(type, "parameters-override-v1")) {
            err_printf(err, "the restart body must be {\"type\": \"parameters-override-v1\", …}");
            return ERR_INVALID;
        }
        const json_t *cc = json_object_get(body, "computeConfiguration");
        if (!opt_null(cc)) {
            has_cc = true;
            if ((rc = parse_compute(cc, &workers, &machine, err)) < 0)
                return rc;
            if ((rc = machine_check(j, machine, false, err)) < 0)
                return rc;
        }
        if ((rc = parse_pos_int(json_object_get(body, "processingTimeoutSeconds"), "processingTimeoutSeconds",
                                31ll * 24 * 3600, &timeout, err)) < 0 ||
            (rc = parse_pos_int(json_object_get(body, "maxParallelTasks"), "maxParallelTasks", 10000,
                                &maxpar, err)) < 0 ||
            (rc = parse_rate(json_object_get(body, "maxImageFailureRate"), &rate, err)) < 0)
            return rc;
    }
    if ((rc = job_pk_get(j, ws, job_id, &pk, err)) < 0)
        return rc;

    sqlite3 *db = store_db_acquire(j->st);
    sqlite3_stmt *q = NULL;
    char *overrides = NULL;
    int64_t now = time_now_ms();
    rc = store_tx_begin(db);
    if (rc < 0) {
        err_printf(err, "database busy");
        store_db_release(j->st, db);
        return rc;
    }
    rc = sql_prep(db, "SELECT state, restart_overrides FROM jobs WHERE pk=?", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, pk);
        if (sqlite3_step(q) == SQLITE_ROW) {
            const char *st = col_str(q, 0);
            if (!strcmp(st, "running")) {
                err_printf(err, "job '%s' is still running: abort it first", job_id);
                rc = ERR_EXISTS;
            } else if (!strcmp(st, "succeeded")) {
                err_printf(err, "job '%s' already completed successfully", job_id);
                rc = ERR_EXISTS;
            } else {
                json_t *arr = parse_or(col_str(q, 1), json_array());
                json_array_append_new(arr, body && json_is_object(body) ? json_deep_copy(body) : json_object());
                overrides = json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(17));
                json_decref(arr);
            }
        } else {
            rc = ERR_INTERNAL;
        }
        sqlite3_finalize(q);
    }
    if (rc == 0)
        rc = sql_prep(db, "UPDATE jobs SET state='running', message=NULL, machine_ms=0, updated_ms=?1,"
                          " restart_overrides=?2,"
                          " timeout_s=CASE WHEN ?3>0 THEN ?3 ELSE timeout_s END,"
                          " max_parallel=CASE WHEN ?4>0 THEN ?4 ELSE max_parallel END,"
                          " max_fail_rate=CASE WHEN ?5>=0 THEN ?5 ELSE max_fail_rate END,"
                          " workers=CASE WHEN ?6>0 THEN ?6 ELSE workers END,"
                          " machine_type=COALESCE(?7, machine_type),"
                          " current_stage=CASE WHEN EXISTS(SELECT 1 FROM tasks WHERE job_pk=?8 AND"
                          "   stage_id='processing' AND (state<>'done' OR failed_items>0)) THEN 'processing'"
                          "   ELSE 'export' END"
                          " WHERE pk=?8", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, now);
        sqlite3_bind_text(q, 2, overrides ? overrides : "[]", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 3, timeout);
        sqlite3_bind_int64(q, 4, maxpar);
        sqlite3_bind_double(q, 5, rate);
        sqlite3_bind_int(q, 6, has_cc ? workers : 0);
        bind_text_or_null(q, 7, has_cc ? machine : NULL);
        sqlite3_bind_int64(q, 8, pk);
        rc = sql_step_done(db, q);
    }
    if (rc == 0)
        rc = sql_prep(db, "UPDATE tasks SET state='pending', lease_owner=NULL, lease_deadline_ms=0, attempts=0,"
                          " progress=NULL, started_ms=NULL, done_items=0, failed_items=0,"
                          " message='queued again by restart', event_ms=?"
                          " WHERE job_pk=? AND stage_id='processing' AND (state<>'done' OR failed_items>0)", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, now);
        sqlite3_bind_int64(q, 2, pk);
        rc = sql_step_done(db, q);
    }
    if (rc == 0) /* after the processing tasks: those requeued are no longer done */
        rc = sql_prep(db, "UPDATE tasks SET state=CASE WHEN EXISTS(SELECT 1 FROM tasks p WHERE p.job_pk=?2"
                          "   AND p.stage_id='processing' AND p.state<>'done') THEN 'waiting' ELSE 'pending' END,"
                          " lease_owner=NULL, lease_deadline_ms=0, attempts=0, progress=NULL, started_ms=NULL, message=NULL,"
                          " event_ms=?1 WHERE job_pk=?2 AND stage_id='export'", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, now);
        sqlite3_bind_int64(q, 2, pk);
        rc = sql_step_done(db, q);
    }
    if (rc == 0)
        rc = log_db(db, pk, "info", "jobs", "job-restarted",
                    json_pack("{s:O}", "parametersOverride",
                              body && json_is_object(body) ? (json_t *)body : json_null()),
                    NULL, 0);
    if (rc == 0)
        rc = store_tx_commit(db);
    else
        store_tx_rollback(db);
    store_db_release(j->st, db);
    free(overrides);
    if (rc == 0) {
        *out = json_pack("{s:s,s:s}", "status", "ok", "jobId", job_id);
        log_info("jobs", "job restarted ws=%s job=%s", ws, job_id);
        jobs_kick(j);
    }
    return rc;
}

/* ---- worker-side state changes ---------------------------------------------------------------- */

void jobs__job_release(struct jobs__job *jb)
{
    free(jb->batch);
    free(jb->part);
    free(jb->wf_def);
    free(jb->image_input);
    free(jb->params);
    free(jb->persist_list);
    free(jb->agg_format);
    free(jb->outputs);
    free(jb->meta_part);
    json_decref(jb->meta_map);
    memset(jb, 0, sizeof *jb);
}

int jobs__job_load(struct jobs *j, int64_t pk, struct jobs__job *jb)
{
    sqlite3_stmt *q = NULL;
    sqlite3 *db = store_db_acquire(j->st);
    memset(jb, 0, sizeof *jb);
    int rc = sql_prep(db, "SELECT workspace, job_id, batch_id, part_name, wf_def, image_input, params,"
                          " persist_list, agg_format, outputs, persist, state, machine_type, definition,"
                          " max_fail_rate IS NOT NULL FROM jobs WHERE pk=?", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, pk);
        if (sqlite3_step(q) == SQLITE_ROW) {
            jb->pk = pk;
            snprintf(jb->ws, sizeof jb->ws, "%s", col_str(q, 0));
            snprintf(jb->job_id, sizeof jb->job_id, "%s", col_str(q, 1));
            jb->batch = col_dup(q, 2);
            jb->part = col_dup(q, 3);
            jb->wf_def = col_dup(q, 4);
            jb->image_input = col_dup(q, 5);
            jb->params = col_dup(q, 6);
            jb->persist_list = col_dup(q, 7);
            jb->agg_format = col_dup(q, 8);
            jb->outputs = col_dup(q, 9);
            jb->persist = sqlite3_column_int(q, 10) != 0;
            snprintf(jb->state, sizeof jb->state, "%s", col_str(q, 11));
            snprintf(jb->machine_type, sizeof jb->machine_type, "%s", col_str(q, 12));
            jb->has_fail_rate = sqlite3_column_int(q, 14) != 0;
            /* imagesMetadataInputsMapping and imagesMetadataPart live only
             * in the stored definition (validated by parse_def). */
            json_t *def = json_loads(col_str(q, 13), 0, NULL);
            json_t *map = json_object_get(json_object_get(def, "processingSpecification"),
                                          "imagesMetadataInputsMapping");
            const char *mp = json_string_value(json_object_get(json_object_get(def, "jobInput"),
                                                               "imagesMetadataPart"));
            if (json_is_object(map) && json_object_size(map) > 0) {
                jb->meta_map = json_incref(map);
                jb->meta_part = xstrdup(mp ? mp : STAGING_METADATA_PART);
            }
            const char *type = json_string_value(json_object_get(def, "type"));
            jb->video = type && !strcmp(type, "simple-video-processing-v1");
            jb->max_fps = json_number_value(
                json_object_get(json_object_get(def, "processingSpecification"), "maxVideoFPS"));
            const char *be = json_string_value(json_object_get(def, "inferenceBackend"));
            jb->old_inference = be && !strcmp(be, "old-inference");
            json_decref(def);
        } else {
            rc = ERR_NOTFOUND;
        }
    }
    sqlite3_finalize(q);
    store_db_release(j->st, db);
    return rc;
}

int jobs__task_load(struct jobs *j, int64_t pk, struct jobs__task *t)
{
    sqlite3_stmt *q = NULL;
    sqlite3 *db = store_db_acquire(j->st);
    int rc = sql_prep(db, "SELECT job_pk, stage_id, task_no, after_id, last_id, n_items, attempts FROM tasks"
                          " WHERE pk=?", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, pk);
        if (sqlite3_step(q) == SQLITE_ROW) {
            t->pk = pk;
            t->job_pk = sqlite3_column_int64(q, 0);
            snprintf(t->stage, sizeof t->stage, "%s", col_str(q, 1));
            t->task_no = sqlite3_column_int(q, 2);
            t->after_id = sqlite3_column_int64(q, 3);
            t->last_id = sqlite3_column_int64(q, 4);
            t->n_items = sqlite3_column_int(q, 5);
            t->attempts = sqlite3_column_int(q, 6);
        } else {
            rc = ERR_NOTFOUND;
        }
    }
    sqlite3_finalize(q);
    store_db_release(j->st, db);
    return rc;
}

char *jobs__results_key(const struct jobs__job *jb, int task_no)
{
    return xasprintf("jobs/%s/%s/processing/task-%05d.jsonl", jb->ws, jb->job_id, task_no);
}

char *jobs__manifest_key(const struct jobs__job *jb, int task_no)
{
    return xasprintf("jobs/%s/%s/processing/task-%05d.images.jsonl", jb->ws, jb->job_id, task_no);
}

char *jobs__errors_key(const struct jobs__job *jb, int task_no)
{
    return xasprintf("jobs/%s/%s/processing/task-%05d.errors.jsonl", jb->ws, jb->job_id, task_no);
}

/* The process a lease owner belongs to: the service's prefix for its own
 * worker threads ("<prefix>-w<i>"), else the owner itself (an owner given
 * to jobs_work_once / jobs_claim by a caller is a process of its own). */
static const char *claim_process(const struct jobs *j, const char *owner)
{
    size_t n = strlen(j->owner_prefix);
    return !strncmp(owner, j->owner_prefix, n) && owner[n] == '-' ? j->owner_prefix : owner;
}

int jobs_claim(struct jobs *j, const char *owner, int64_t now_ms, int64_t *task_pk)
{
    sqlite3 *db = store_db_acquire(j->st);
    sqlite3_stmt *q = NULL;
    int64_t pk = 0, job_pk = 0;
    int attempts = 0, task_no = 0;
    bool expired = false;
    char stage[16] = "", prev_owner[128] = "";
    int rc = store_tx_begin(db);

    *task_pk = 0;
    if (rc < 0) {
        store_db_release(j->st, db);
        return rc;
    }
    rc = sql_prep(db, "SELECT t.pk, t.job_pk, t.attempts, t.state, t.stage_id, t.task_no, t.lease_owner"
                      " FROM tasks t JOIN jobs jb ON jb.pk=t.job_pk"
                      " WHERE t.state IN ('pending','running') AND jb.state='running'"
                      "  AND (t.state='pending' OR t.lease_deadline_ms<?1)"
                      "  AND (jb.max_parallel IS NULL OR (SELECT COUNT(*) FROM tasks r WHERE r.job_pk=t.job_pk"
                      "       AND r.state='running' AND r.lease_deadline_ms>=?1) < jb.max_parallel)"
                      /* workersPerMachine: this process runs at most that many of the job's tasks */
                      "  AND (SELECT COUNT(*) FROM tasks r WHERE r.job_pk=t.job_pk AND r.state='running'"
                      "       AND r.lease_deadline_ms>=?1 AND (r.lease_owner=?2"
                      "       OR substr(r.lease_owner, 1, length(?2) + 1)=?2 || '-')) < jb.workers"
                      " ORDER BY t.job_pk, t.pk LIMIT 1", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, now_ms);
        sqlite3_bind_text(q, 2, claim_process(j, owner), -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            pk = sqlite3_column_int64(q, 0);
            job_pk = sqlite3_column_int64(q, 1);
            attempts = sqlite3_column_int(q, 2);
            expired = !strcmp(col_str(q, 3), "running");
            snprintf(stage, sizeof stage, "%s", col_str(q, 4));
            task_no = sqlite3_column_int(q, 5);
            snprintf(prev_owner, sizeof prev_owner, "%s", col_str(q, 6));
        }
        sqlite3_finalize(q);
    }
    if (rc == 0 && pk && attempts >= j->o.max_attempts) {
        char *msg = xasprintf("task %s-%05d failed %d times (last owner '%s'): the job is stopped", stage,
                              task_no, attempts, prev_owner);
        rc = job_end_error_db(db, job_pk, "failed", msg, "task-failed");
        free(msg);
        pk = 0;
    } else if (rc == 0 && pk) {
        rc = sql_prep(db, "UPDATE tasks SET state='running', lease_owner=?, lease_deadline_ms=?,"
                          " attempts=attempts+1, progress=COALESCE(progress, 0), message=?, event_ms=?4,"
                          " started_ms=COALESCE(started_ms, ?4) WHERE pk=?5",
                      &q);
        if (rc == 0) {
            sqlite3_bind_text(q, 1, owner, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 2, now_ms + j->o.lease_ms);
            sqlite3_bind_text(q, 3, expired ? "claimed again after its lease expired" : "running", -1,
                              SQLITE_STATIC);
            sqlite3_bind_int64(q, 4, time_now_ms());
            sqlite3_bind_int64(q, 5, pk);
            rc = sql_step_done(db, q);
        }
        if (rc == 0 && expired)
            rc = log_db(db, job_pk, "warning", "worker", "lease-expired",
                        json_pack("{s:s,s:s,s:i}", "previousOwner", prev_owner, "newOwner", owner, "attempt",
                                  attempts + 1),
                        stage, task_no);
    }
    if (rc == 0)
        rc = store_tx_commit(db);
    else
        store_tx_rollback(db);
    store_db_release(j->st, db);
    if (rc == 0)
        *task_pk = pk;
    return rc;
}

/* Inside a transaction: add machine time to the job and end it when the
 * processing timeout is spent. */
static int machine_time_db(sqlite3 *db, int64_t job_pk, int64_t add_ms)
{
    sqlite3_stmt *q = NULL;
    int rc = sql_prep(db, "UPDATE jobs SET machine_ms=machine_ms+?, updated_ms=? WHERE pk=?", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, add_ms);
    sqlite3_bind_int64(q, 2, time_now_ms());
    sqlite3_bind_int64(q, 3, job_pk);
    if ((rc = sql_step_done(db, q)) < 0)
        return rc;
    rc = sql_prep(db, "SELECT machine_ms, timeout_s FROM jobs WHERE pk=? AND state='running'", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, job_pk);
    int64_t used = -1, limit = 0;
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 1) != SQLITE_NULL) {
        used = sqlite3_column_int64(q, 0);
        limit = sqlite3_column_int64(q, 1) * 1000;
    }
    sqlite3_finalize(q);
    if (used >= 0 && limit > 0 && used > limit) {
        char *msg = xasprintf("processing timeout: %.1f s of machine time spent, limit %lld s "
                              "(processingTimeoutSeconds)", (double)used / 1000.0, (long long)(limit / 1000));
        rc = job_end_error_db(db, job_pk, "failed", msg, "processing-timeout");
        free(msg);
    }
    return rc;
}

/* 0 when the job is running; ERR_NOTFOUND otherwise. */
static int job_running_db(sqlite3 *db, int64_t job_pk)
{
    sqlite3_stmt *q = NULL;
    int rc = sql_prep(db, "SELECT state FROM jobs WHERE pk=?", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, job_pk);
    rc = sqlite3_step(q) == SQLITE_ROW && !strcmp(col_str(q, 0), "running") ? 0 : ERR_NOTFOUND;
    sqlite3_finalize(q);
    return rc;
}

int jobs_heartbeat(struct jobs *j, int64_t task_pk, const char *owner, int64_t now_ms, int64_t machine_ms,
                   double progress)
{
    struct jobs__task t;
    int rc = jobs__task_load(j, task_pk, &t);
    if (rc < 0)
        return rc;
    sqlite3 *db = store_db_acquire(j->st);
    sqlite3_stmt *q = NULL;
    bool lost = false;
    rc = store_tx_begin(db);
    if (rc == 0)
        rc = sql_prep(db, "UPDATE tasks SET lease_deadline_ms=?, progress=?, event_ms=? WHERE pk=? AND"
                          " lease_owner=? AND state='running'", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, now_ms + j->o.lease_ms);
        sqlite3_bind_double(q, 2, progress);
        sqlite3_bind_int64(q, 3, time_now_ms());
        sqlite3_bind_int64(q, 4, task_pk);
        sqlite3_bind_text(q, 5, owner, -1, SQLITE_STATIC);
        rc = sql_step_done(db, q);
        lost = rc == 0 && sqlite3_changes(db) == 0;
    }
    if (rc == 0 && !lost && machine_ms > 0)
        rc = machine_time_db(db, t.job_pk, machine_ms);
    if (rc == 0 && !lost)
        lost = job_running_db(db, t.job_pk) < 0;
    if (rc == 0)
        rc = store_tx_commit(db);
    else
        store_tx_rollback(db);
    store_db_release(j->st, db);
    return rc < 0 ? rc : lost ? ERR_NOTFOUND : 0;
}

int jobs__hb_tick(struct jobs *j, struct jobs__hb *hb, const struct jobs__task *t, const char *owner,
                  double progress, bool force)
{
    int64_t now = time_mono_ms();
    if (jobs__stopping(j))
        return ERR_AGAIN; /* shutting down: the caller hands the task back */
    if (!force && now - hb->last_ms < j->o.heartbeat_ms)
        return 0;
    int64_t add = now - hb->start_ms - hb->counted_ms;
    int rc = jobs_heartbeat(j, t->pk, owner, time_now_ms(), add, progress);
    hb->last_ms = now;
    if (rc == 0 || rc == ERR_NOTFOUND)
        hb->counted_ms += add;
    return rc;
}

/* Lock the task as ours (inside a tx): 0, or ERR_NOTFOUND when lost. */
static int task_mark_db(sqlite3 *db, const struct jobs__task *t, const char *owner, const char *state,
                        int done_items, int failed_items, const char *msg)
{
    sqlite3_stmt *q = NULL;
    int rc = sql_prep(db, "UPDATE tasks SET state=?, progress=CASE WHEN ?='done' THEN 1.0 ELSE progress END,"
                          " done_items=?, failed_items=?, message=?, lease_owner=NULL, lease_deadline_ms=0,"
                          " event_ms=? WHERE pk=? AND lease_owner=? AND state='running'", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(q, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, done_items);
    sqlite3_bind_int(q, 4, failed_items);
    bind_text_or_null(q, 5, msg);
    sqlite3_bind_int64(q, 6, time_now_ms());
    sqlite3_bind_int64(q, 7, t->pk);
    sqlite3_bind_text(q, 8, owner, -1, SQLITE_STATIC);
    rc = sql_step_done(db, q);
    if (rc == 0 && sqlite3_changes(db) == 0)
        rc = ERR_NOTFOUND;
    return rc;
}

/* After a processing task is done: failure rate, then the move to export. */
static int after_processing_db(sqlite3 *db, int64_t job_pk)
{
    sqlite3_stmt *q = NULL;
    int rc = sql_prep(db, "SELECT jb.max_fail_rate, jb.items_total,"
                          " (SELECT COALESCE(SUM(failed_items),0) FROM tasks t WHERE t.job_pk=jb.pk"
                          "   AND t.stage_id='processing' AND t.state='done'),"
                          " (SELECT COUNT(*) FROM tasks t WHERE t.job_pk=jb.pk AND t.stage_id='processing'"
                          "   AND t.state<>'done')"
                          " FROM jobs jb WHERE jb.pk=? AND jb.state='running'", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, job_pk);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return 0;
    }
    bool has_rate = sqlite3_column_type(q, 0) != SQLITE_NULL;
    double rate = sqlite3_column_double(q, 0);
    int64_t total = sqlite3_column_int64(q, 1), failed = sqlite3_column_int64(q, 2);
    int left = sqlite3_column_int(q, 3);
    sqlite3_finalize(q);
    if (has_rate && total > 0 && (double)failed > rate * (double)total) {
        char *msg = xasprintf("image failure rate exceeded: %lld of %lld images failed (maxImageFailureRate %g)",
                              (long long)failed, (long long)total, rate);
        rc = job_end_error_db(db, job_pk, "failed", msg, "failure-rate-exceeded");
        free(msg);
        return rc;
    }
    if (left > 0)
        return 0;
    rc = sql_prep(db, "UPDATE tasks SET state='pending', event_ms=? WHERE job_pk=? AND stage_id='export'"
                      " AND state='waiting'", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, time_now_ms());
        sqlite3_bind_int64(q, 2, job_pk);
        rc = sql_step_done(db, q);
    }
    if (rc == 0)
        rc = sql_prep(db, "UPDATE jobs SET current_stage='export', updated_ms=? WHERE pk=?", &q);
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, time_now_ms());
        sqlite3_bind_int64(q, 2, job_pk);
        rc = sql_step_done(db, q);
    }
    if (rc == 0)
        rc = log_db(db, job_pk, "info", "jobs", "stage-completed",
                    json_pack("{s:s,s:I}", "stage", JOBS_STAGE_PROC, "imagesFailed", (json_int_t)failed),
                    JOBS_STAGE_PROC, 0);
    return rc;
}

/* After the export: the job succeeds, unless it had images and none of
 * them succeeded — then it fails with the first failure's cause (the
 * export, errors part included, is kept). */
static int after_export_db(sqlite3 *db, int64_t job_pk)
{
    sqlite3_stmt *q = NULL;
    int64_t total = 0, done = 0, failed = 0;
    bool video = false;
    int rc = sql_prep(db, "SELECT jb.items_total, json_extract(jb.definition, '$.type')='simple-video-processing-v1',"
                          " (SELECT COALESCE(SUM(done_items),0) FROM tasks t WHERE t.job_pk=jb.pk"
                          "   AND t.stage_id='processing' AND t.state='done'),"
                          " (SELECT COALESCE(SUM(failed_items),0) FROM tasks t WHERE t.job_pk=jb.pk"
                          "   AND t.stage_id='processing' AND t.state='done')"
                          " FROM jobs jb WHERE jb.pk=? AND jb.state='running'", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, job_pk);
    if (sqlite3_step(q) == SQLITE_ROW) {
        total = sqlite3_column_int64(q, 0);
        video = sqlite3_column_int(q, 1) != 0;
        done = sqlite3_column_int64(q, 2);
        failed = sqlite3_column_int64(q, 3);
    }
    sqlite3_finalize(q);
    if (total > 0 && done == 0 && failed > 0) {
        char *first = NULL;
        rc = sql_prep(db, "SELECT payload FROM job_logs WHERE job_pk=? AND log_type='image-processing-failed'"
                          " ORDER BY id DESC LIMIT 1", &q);
        if (rc < 0)
            return rc;
        sqlite3_bind_int64(q, 1, job_pk);
        if (sqlite3_step(q) == SQLITE_ROW) {
            json_t *p = json_loads(col_str(q, 0), 0, NULL);
            first = xasprintf("'%s': %s", json_string_value(json_object_get(p, "file_path")),
                              json_string_value(json_object_get(p, "cause")));
            json_decref(p);
        }
        sqlite3_finalize(q);
        char *msg = xasprintf("no %s succeeded: all %lld failed (the errors part of the export lists them);"
                              " the last: %s", video ? "video" : "image", (long long)failed,
                              first ? first : "(not logged)");
        rc = job_end_error_db(db, job_pk, "failed", msg, "all-images-failed");
        free(msg);
        free(first);
        return rc;
    }
    rc = sql_prep(db, "UPDATE jobs SET state='succeeded', message='job completed', updated_ms=?"
                      " WHERE pk=? AND state='running'", &q);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, time_now_ms());
    sqlite3_bind_int64(q, 2, job_pk);
    rc = sql_step_done(db, q);
    if (rc < 0 || sqlite3_changes(db) == 0)
        return rc;
    rc = log_db(db, job_pk, "info", "jobs", "job-completed", json_pack("{s:s}", "state", "success"),
                JOBS_STAGE_EXPORT, 0);
    if (rc == 0)
        rc = webhook_db(db, job_pk, true);
    return rc;
}

int jobs__task_complete(struct jobs *j, const struct jobs__task *t, const char *owner, int done_items,
                        int failed_items, const struct jobs__fail *fails, int nfails, int64_t machine_ms)
{
    sqlite3 *db = store_db_acquire(j->st);
    int rc = store_tx_begin(db);
    bool export = !strcmp(t->stage, JOBS_STAGE_EXPORT);
    if (rc == 0)
        rc = task_mark_db(db, t, owner, "done", done_items, failed_items,
                          export ? "export completed" : "task completed");
    for (int i = 0; rc == 0 && i < nfails; i++)
        rc = log_db(db, t->job_pk, "error", "worker", "image-processing-failed",
                    json_pack("{s:s,s:s}", "file_path", fails[i].file, "cause", fails[i].cause), t->stage,
                    t->task_no);
    if (rc == 0 && machine_ms > 0)
        rc = machine_time_db(db, t->job_pk, machine_ms);
    if (rc == 0)
        rc = export ? after_export_db(db, t->job_pk) : after_processing_db(db, t->job_pk);
    if (rc == 0)
        rc = store_tx_commit(db);
    else
        store_tx_rollback(db);
    store_db_release(j->st, db);
    if (rc == 0)
        jobs_kick(j);
    return rc;
}

int jobs__task_fail_job(struct jobs *j, const struct jobs__task *t, const char *owner, int done_items,
                        const struct jobs__fail *fails, int nfails, const char *msg, int64_t machine_ms)
{
    sqlite3 *db = store_db_acquire(j->st);
    int rc = store_tx_begin(db);
    if (rc == 0)
        rc = task_mark_db(db, t, owner, "aborted", done_items, nfails, msg);
    for (int i = 0; rc == 0 && i < nfails; i++)
        rc = log_db(db, t->job_pk, "error", "worker", "image-processing-failed",
                    json_pack("{s:s,s:s}", "file_path", fails[i].file, "cause", fails[i].cause), t->stage,
                    t->task_no);
    if (rc == 0 && machine_ms > 0)
        rc = machine_time_db(db, t->job_pk, machine_ms);
    if (rc == 0)
        rc = job_end_error_db(db, t->job_pk, "failed", msg, "failure-budget-spent");
    if (rc == 0)
        rc = store_tx_commit(db);
    else
        store_tx_rollback(db);
    store_db_release(j->st, db);
    if (rc == 0)
        jobs_kick(j);
    return rc;
}

int jobs__task_release(struct jobs *j, const struct jobs__task *t, const char *owner, const char *msg)
{
    sqlite3 *db = store_db_acquire(j->st);
    sqlite3_stmt *q = NULL;
    int rc = store_tx_begin(db);
    if (rc == 0)
        rc = sql_prep(db, "UPDATE tasks SET state='pending', lease_owner=NULL, lease_deadline_ms=0,"
                          " attempts=MAX(attempts-1,0), message=?, event_ms=?"
                          " WHERE pk=? AND lease_owner=? AND state='running'", &q);
    if (rc == 0) {
        sqlite3_bind_text(q, 1, msg, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 2, time_now_ms());
        sqlite3_bind_int64(q, 3, t->pk);
        sqlite3_bind_text(q, 4, owner, -1, SQLITE_STATIC);
        rc = sql_step_done(db, q);
    }
    if (rc == 0)
        rc = store_tx_commit(db);
    else
        store_tx_rollback(db);
    store_db_release(j->st, db);
    return rc;
}

int jobs__task_error(struct jobs *j, const struct jobs__task *t, const char *owner, const char *msg,
                     int64_t machine_ms)
{
    sqlite3 *db = store_db_acquire(j->st);
    int rc = store_tx_begin(db);
    if (rc == 0)
        rc = task_mark_db(db, t, owner, t->attempts >= j->o.max_attempts ? "aborted" : "pending", 0, 0, msg);
    if (rc == 0)
        rc = log_db(db, t->job_pk, "error", "worker", "task-error",
                    json_pack("{s:s,s:i}", "message", msg, "attempt", t->attempts), t->stage, t->task_no);
    if (rc == 0 && machine_ms > 0)
        rc = machine_time_db(db, t->job_pk, machine_ms);
    if (rc == 0 && t->attempts >= j->o.max_attempts) {
        char *m = xasprintf("task %s-%05d failed %d times: %s", t->stage, t->task_no, t->attempts, msg);
        rc = job_end_error_db(db, t->job_pk, "failed", m, "task-failed");
        free(m);
    }
    if (rc == 0)
        rc = store_tx_commit(db);
    else
        store_tx_rollback(db);
    store_db_release(j->st, db);
    return rc;
}
