/*
 * jobs.c — the Batch Processing service: its lifecycle (options, worker
 * threads are in worker.c) and the API's commands: POST a job (definition
 * checked by definition.c, tasks cut by planner.c, everything written in
 * one transaction by store_job_create), abort and restart.  The read
 * answers are in views.c, the lease state machine of tasks in lease.c,
 * the processing stage in worker.c, the export stage in export.c.  The
 * SQL of all of it is under src/store/ (store_jobs.h).
 */
#include "jobs/jobs_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- service lifecycle ------------------------------------------------------------------- */

void jobs_opts_default(struct jobs_opts *o)
{
    memset(o, 0, sizeof *o);
    o->workers = 2;
    o->lease_ms = 15000;
    o->heartbeat_ms = 1000;
    o->poll_ms = 200;
    o->pool_beat_ms = 3000;
    o->listen_poll_ms = 2000;
    const char *ip = getenv("VBATCH_JOBS_IDLE_POLL_MS");
    if (ip && *ip)
        o->listen_poll_ms = MAX(1, MIN(atoll(ip), 600000));
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
    int rc = store_jobs_migrate(st, err);
    if (rc < 0)
        return err_prefix(err, rc, "cannot migrate the jobs tables");
    j = xcalloc(1, sizeof *j);
    j->st = st;
    j->sg = sg;
    if (o)
        j->o = *o;
    else
        jobs_opts_default(&j->o);
    if (j->o.sink_s3) /* s3_sink objects are PUT by the outbox sender */
        store_outbox_set_s3sink(st, j->o.sink_s3);
    if (j->o.worker_id && *j->o.worker_id) {
        j->owner_prefix = xstrdup(j->o.worker_id);
    } else { /* the process's identity, also its shard claims' owner */
        j->owner_prefix = xstrdup(store_owner(st));
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
    if (j->o.pool_beat_ms <= 0)
        j->o.pool_beat_ms = 3000;
    if (j->o.listen_poll_ms <= 0)
        j->o.listen_poll_ms = 2000;
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
    free(j->pool_id);
    free(j->pool_host);
    free(j);
}

bool jobs__stopping(struct jobs *j)
{
    pthread_mutex_lock(&j->mu);
    bool s = j->stopping;
    pthread_mutex_unlock(&j->mu);
    return s;
}

void jobs__kick(struct jobs *j)
{
    pthread_mutex_lock(&j->mu);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Blob keys of a task's outputs. */

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


/* ---- POST job ------------------------------------------------------------------------------------ */

static json_t *reply_created(const char *job_id, bool created)
{
    return json_pack("{s:s,s:s,s:b}", "status", "ok", "jobId", job_id, "created", created);
}


int jobs_create(struct jobs *j, const char *ws, const char *job_id, const char *name, const json_t *body,
                json_t **out, struct err *err)
{
    struct jobdef d;
    struct plan p = {0};
    char *canon = NULL, *existing = NULL, *wf_text = NULL, *image_input = NULL;
    char *params_txt = NULL, *plist_txt = NULL, *outputs_txt = NULL;
    json_t *outputs = NULL;
    int64_t pk = 0, total = 0;
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
    rc = jobs__parse_def(j, body, &d, err);
    if (rc < 0)
        return rc;
    canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (!canon) {
        err_printf(err, "cannot serialise the job definition");
        return ERR_INVALID;
    }
    /* Idempotent re-POST: the same definition answers 200, another 409. */
    rc = store_job_find(j->st, ws, job_id, &pk, &existing, err);
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
    rc = jobs__check_workflow(wf_text, &d, &image_input, &outputs, &uses_models, err);
    if (rc < 0)
        goto out;
    rc = jobs__machine_check(j, d.machine_type, uses_models, err);
    if (rc < 0)
        goto out;
    rc = jobs__plan_items(j, ws, &d, &p, &total, err);
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

    struct store_job_new jn = {
        .ws = ws,
        .job_id = job_id,
        .name = name && *name ? name : job_id,
        .definition = canon,
        .wf_def = wf_text,
        .image_input = image_input,
        .outputs = outputs_txt,
        .batch = d.batch,
        .part = d.part,
        .agg_format = d.agg,
        .persist = d.persist,
        .persist_list = plist_txt,
        .params = params_txt,
        .notif_url = d.notif,
        .timeout_s = d.timeout_s ? d.timeout_s : JOBS_TIMEOUT_S_DEFAULT,
        .max_parallel = d.max_parallel,
        .max_fail_rate = d.max_fail_rate,
        .workers = d.workers,
        .machine_type = d.machine_type,
        .items_total = total,
    };
    rc = store_job_create(j->st, &jn, p.t, p.n,
                          json_pack("{s:s,s:s,s:I,s:i,s:s,s:i,s:I,s:s}", "batchId", d.batch, "workflowId", d.wf_id,
                                    "images", (json_int_t)total, "tasks", p.n, "machineType", d.machine_type,
                                    "workersPerMachine", d.workers, "processingTimeoutSeconds",
                                    (json_int_t)(d.timeout_s ? d.timeout_s : JOBS_TIMEOUT_S_DEFAULT),
                                    "inferenceBackend", d.backend),
                          &pk, err);
    if (rc == 0) {
        *out = reply_created(job_id, true);
        log_info("jobs", "job created ws=%s job=%s images=%lld tasks=%d", ws, job_id, (long long)total, p.n);
        jobs__kick(j);
    }
out:
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


/* ---- abort and restart ------------------------------------------------------------------------- */

int jobs_abort(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err)
{
    int64_t pk;
    int rc = jobs__job_pk(j, ws, job_id, &pk, err);
    if (rc < 0)
        return rc;
    rc = store_job_end_error(j->st, pk, "aborted", "job aborted on request", "job-aborted", err);
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

int jobs_delete(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err)
{
    int rc = store_job_delete(j->st, ws, job_id, err);
    if (rc < 0)
        return rc;
    log_info("jobs", "job deleted ws=%s job=%s", ws, job_id);
    *out = json_pack("{s:s,s:s,s:b}", "status", "ok", "jobId", job_id, "deleted", 1);
    return 0;
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
        if (!jobs__opt_null(cc)) {
            has_cc = true;
            if ((rc = jobs__parse_compute(cc, &workers, &machine, err)) < 0)
                return rc;
            if ((rc = jobs__machine_check(j, machine, false, err)) < 0)
                return rc;
        }
        if ((rc = jobs__parse_pos_int(json_object_get(body, "processingTimeoutSeconds"), "processingTimeoutSeconds",
                                31ll * 24 * 3600, &timeout, err)) < 0 ||
            (rc = jobs__parse_pos_int(json_object_get(body, "maxParallelTasks"), "maxParallelTasks", 10000,
                                &maxpar, err)) < 0 ||
            (rc = jobs__parse_rate(json_object_get(body, "maxImageFailureRate"), &rate, err)) < 0)
            return rc;
    }
    if ((rc = jobs__job_pk(j, ws, job_id, &pk, err)) < 0)
        return rc;

    char state[16];
    struct store_job_restart r = {
        .override = body && json_is_object(body) ? body : NULL,
        .timeout_s = timeout,
        .max_parallel = maxpar,
        .max_fail_rate = rate,
        .workers = has_cc ? workers : 0,
        .machine_type = has_cc ? machine : NULL,
        .log_payload = json_pack("{s:O}", "parametersOverride",
                                 body && json_is_object(body) ? (json_t *)body : json_null()),
    };
    rc = store_job_restart(j->st, pk, &r, state, err);
    if (rc == ERR_EXISTS && !strcmp(state, "running"))
        err_printf(err, "job '%s' is still running: abort it first", job_id);
    else if (rc == ERR_EXISTS)
        err_printf(err, "job '%s' already completed successfully", job_id);
    if (rc == 0) {
        *out = json_pack("{s:s,s:s}", "status", "ok", "jobId", job_id);
        log_info("jobs", "job restarted ws=%s job=%s", ws, job_id);
        jobs__kick(j);
    }
    return rc;
}

