/*
 * lease.c — the lease state machine of tasks, as the workers drive it.
 *
 * A job is one row of `jobs`; it has two stages (`processing`, `export`)
 * and tasks.  The processing stage has one task per run of at most
 * max_task_items items (planner.c), the export stage exactly one task, so
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
 *   claim       pending, or running with an expired lease ─► running
 *               (owner, deadline now + lease_ms, attempts+1); a task
 *               claimed max_attempts times fails its job instead
 *   heartbeat   running ─► running (deadline renewed, progress, machine
 *               time added; the timeout spent fails the job); the worker
 *               stops when the lease is lost or the job no longer runs
 *   complete    running ─► done; the last processing task moves the job
 *               to export (waiting ─► pending), the export task ends it
 *   error       running ─► pending (aborted and the job failed after
 *               max_attempts)
 *   fail_job    running ─► aborted, the job failed (failure budget)
 *   release     running ─► pending, the claim not counted (shutdown,
 *               storage full)
 *
 * Invariants:
 *  - every state change is one transaction in src/store/tasks.c (the SQL
 *    of each arrow above), and the job webhook is enqueued in the
 *    transaction that ends the job;
 *  - counts shown (images processed/failed) are sums over tasks that are
 *    done, so a task run twice after a crash is never counted twice;
 *  - a worker changes a task only while it is the lease owner and the task
 *    is running (every UPDATE checks both).
 */
#include "jobs/jobs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed state change of the store, logged once here (the workers have
 * nobody to answer). */
static int store_failed(int rc, const struct err *e)
{
    if (rc < 0 && rc != ERR_NOTFOUND)
        log_error("jobs", "database error: %s", err_text(e, rc));
    return rc;
}

/* ---- what a worker reads -------------------------------------------------------- */

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
    struct store_job_run r;
    struct err e = ERR_INIT;
    memset(jb, 0, sizeof *jb);
    int rc = store_job_run_get(j->st, pk, &r, &e);
    if (rc < 0)
        return store_failed(rc, &e);
    jb->pk = pk;
    snprintf(jb->ws, sizeof jb->ws, "%s", r.ws);
    snprintf(jb->job_id, sizeof jb->job_id, "%.*s", JOBS_ID_MAX, r.job_id);
    /* the strings move into jb */
    jb->batch = r.batch;
    jb->part = r.part;
    jb->wf_def = r.wf_def;
    jb->image_input = r.image_input;
    jb->params = r.params;
    jb->persist_list = r.persist_list;
    jb->agg_format = r.agg_format;
    jb->outputs = r.outputs;
    r.batch = r.part = r.wf_def = r.image_input = r.params = r.persist_list = r.agg_format = r.outputs = NULL;
    jb->persist = r.persist;
    snprintf(jb->state, sizeof jb->state, "%s", r.state);
    snprintf(jb->machine_type, sizeof jb->machine_type, "%s", r.machine_type);
    jb->has_fail_rate = r.has_fail_rate;
    /* imagesMetadataInputsMapping and imagesMetadataPart live only in the
     * stored definition (validated by jobs__parse_def). */
    json_t *def = json_loads(r.definition, 0, NULL);
    json_t *map = json_object_get(json_object_get(def, "processingSpecification"), "imagesMetadataInputsMapping");
    const char *mp = json_string_value(json_object_get(json_object_get(def, "jobInput"), "imagesMetadataPart"));
    if (json_is_object(map) && json_object_size(map) > 0) {
        jb->meta_map = json_incref(map);
        jb->meta_part = xstrdup(mp ? mp : STAGING_METADATA_PART);
    }
    const char *type = json_string_value(json_object_get(def, "type"));
    jb->video = type && !strcmp(type, "simple-video-processing-v1");
    jb->max_fps = json_number_value(json_object_get(json_object_get(def, "processingSpecification"), "maxVideoFPS"));
    const char *be = json_string_value(json_object_get(def, "inferenceBackend"));
    jb->old_inference = be && !strcmp(be, "old-inference");
    json_decref(def);
    store_job_run_release(&r);
    return 0;
}

int jobs__task_load(struct jobs *j, int64_t pk, struct store_task *t)
{
    struct err e = ERR_INIT;
    return store_failed(store_task_get(j->st, pk, t, &e), &e);
}

/* ---- claim and heartbeat -------------------------------------------------------- */

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
    struct err e = ERR_INIT;
    struct store_claim c = {
        .owner = owner,
        .process = claim_process(j, owner),
        .now_ms = now_ms,
        .lease_ms = j->o.lease_ms,
        .max_attempts = j->o.max_attempts,
    };
    return store_failed(store_task_claim(j->st, &c, task_pk, &e), &e);
}

int jobs_heartbeat(struct jobs *j, int64_t task_pk, const char *owner, int64_t now_ms, int64_t machine_ms,
                   double progress)
{
    struct store_task t;
    struct err e = ERR_INIT;
    bool lost = false;
    int rc = jobs__task_load(j, task_pk, &t);
    if (rc < 0)
        return rc;
    rc = store_task_heartbeat(j->st, task_pk, t.job_pk, owner, now_ms, j->o.lease_ms, machine_ms, progress, &lost, &e);
    if (rc < 0)
        return store_failed(rc, &e);
    return lost ? ERR_NOTFOUND : 0;
}

int jobs__hb_tick(struct jobs *j, struct jobs__hb *hb, const struct store_task *t, const char *owner,
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

/* ---- the end of a task in hand ----------------------------------------------------- */

int jobs__task_complete(struct jobs *j, const struct store_task *t, const char *owner, int done_items,
                        int failed_items, const struct store_image_fail *fails, int nfails, int64_t machine_ms)
{
    struct err e = ERR_INIT;
    int rc = store_task_complete(j->st, t, owner, done_items, failed_items, fails, nfails, machine_ms, &e);
    if (rc == 0)
        jobs__kick(j);
    return store_failed(rc, &e);
}

int jobs__task_fail_job(struct jobs *j, const struct store_task *t, const char *owner, int done_items,
                        const struct store_image_fail *fails, int nfails, const char *msg, int64_t machine_ms)
{
    struct err e = ERR_INIT;
    int rc = store_task_fail_job(j->st, t, owner, done_items, fails, nfails, msg, machine_ms, &e);
    if (rc == 0)
        jobs__kick(j);
    return store_failed(rc, &e);
}

int jobs__task_release(struct jobs *j, const struct store_task *t, const char *owner, const char *msg)
{
    struct err e = ERR_INIT;
    return store_failed(store_task_release(j->st, t, owner, msg, &e), &e);
}

int jobs__task_error(struct jobs *j, const struct store_task *t, const char *owner, const char *msg,
                     int64_t machine_ms)
{
    struct err e = ERR_INIT;
    return store_failed(store_task_error(j->st, t, owner, msg, j->o.max_attempts, machine_ms, &e), &e);
}
