/*
 * views.c — the Batch Processing API's read answers (GET /jobs, /jobs/{id},
 * its stages, tasks and logs): the rows store/ gives (store_jobs.h) shaped
 * as spec/COMPAT.md sections 1-4 say, with page tokens bound to their
 * listing.
 */
#include "jobs/jobs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* JobMetadata of a row. */
static json_t *job_meta(const struct store_job_row *r)
{
    const char *state = r->state;
    const char *job_id = r->job_id;
    bool running = !strcmp(state, "running");
    bool ok = !strcmp(state, "succeeded");
    int64_t updated = MAX(r->updated_ms, r->last_event_ms);
    json_t *notif = json_object();
    json_t *batches = json_array();
    char *pb = xasprintf("%s-processing", job_id), *eb = xasprintf("%s-export", job_id);

    json_array_append_new(batches, json_string(pb));
    json_array_append_new(batches, json_string(eb));
    json_object_set_new(notif, "type", json_string("job-state-v1"));
    json_object_set_new(notif, "state", json_string(state));
    json_object_set_new(notif, "message",
                        json_string(r->message ? r->message
                                    : ok       ? "job completed"
                                    : running  ? "job in progress"
                                               : state));
    json_object_set_new(notif, "imagesTotal", json_integer(r->items_total));
    json_object_set_new(notif, "imagesProcessed", json_integer(r->images_done));
    json_object_set_new(notif, "imagesFailed", json_integer(r->images_failed));
    /* fraction of the processing stage done, moving with the heartbeats */
    int64_t total = r->items_total;
    json_object_set_new(notif, "progress",
                        json_real(total > 0 ? MIN(1.0, r->progress_items / (double)total) : (ok ? 1.0 : 0.0)));
    json_object_set_new(notif, "machineTimeSeconds", json_real((double)r->machine_ms / 1000.0));
    json_object_set_new(notif, "resultsBatches", batches);
    free(pb);
    free(eb);

    json_t *m = json_object();
    json_object_set_new(m, "jobId", json_string(job_id));
    json_object_set_new(m, "name", json_string(r->name));
    json_object_set_new(m, "jobDefinition", parse_or(r->definition, json_object()));
    json_object_set_new(m, "currentStage", r->current_stage ? json_string(r->current_stage) : json_null());
    json_object_set_new(m, "plannedStages", json_pack("[s,s]", JOBS_STAGE_PROC, JOBS_STAGE_EXPORT));
    json_object_set_new(m, "error", json_boolean(!running && !ok));
    json_object_set_new(m, "isTerminal", json_boolean(!running));
    json_object_set_new(m, "lastNotification", notif);
    json_object_set_new(m, "createdAt", ts_json(r->created_ms));
    json_object_set_new(m, "lastUpdate", ts_json(updated));
    json_object_set_new(m, "restartParametersOverride", parse_or(r->restart_overrides, json_array()));
    return m;
}

int jobs__job_pk(struct jobs *j, const char *ws, const char *job_id, int64_t *pk, struct err *err)
{
    int rc = store_job_find(j->st, ws, job_id, pk, NULL, err);
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
    struct store_job_row r;
    int rc = store_job_get(j->st, ws, job_id, &r, err);
    if (rc == ERR_NOTFOUND) {
        err_printf(err, "job '%.40s' not found in workspace '%s'", job_id, ws);
        return rc;
    }
    if (rc < 0)
        return rc;
    json_t *m = job_meta(&r);
    /* top-level progress: the very value of lastNotification.progress */
    json_t *prog = json_object_get(json_object_get(m, "lastNotification"), "progress");
    *out = json_pack("{s:s,s:s,s:f,s:o}", "status", "ok", "jobStatus", job_status_of(r.state, r.started),
                     "progress", json_number_value(prog), "job", m);
    store_job_row_release(&r);
    return 0;
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
    int64_t before, last = 0;
    int ps, rc, n = 0;
    struct store_job_row *rows = NULL;
    char scope[PAGE_SCOPE_MAX];
    snprintf(scope, sizeof scope, "jobs|%s", ws);
    if ((rc = token_parse(scope, token, &before, err)) < 0 || (rc = page_size_fix(page_size, &ps, err)) < 0)
        return rc;
    /* one row more than the page: is there a next one? */
    if ((rc = store_jobs_page(j->st, ws, before, ps + 1, &rows, &n, err)) < 0)
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < n && i < ps; i++) {
        json_array_append_new(arr, job_meta(&rows[i]));
        last = rows[i].pk;
    }
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "jobs", arr, "nextPageToken", token_json(scope, n > ps, last));
    store_job_rows_free(rows, n);
    return 0;
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
    struct store_stage_row *rows = NULL;
    int n = 0;
    int rc = jobs__job_pk(j, ws, job_id, &pk, err);
    if (rc < 0)
        return rc;
    if ((rc = store_job_stages(j->st, pk, &rows, &n, err)) < 0)
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const struct store_stage_row *r = &rows[i];
        int total = r->tasks_number, done = r->done, running = r->running, aborted = r->aborted;
        const char *st = done == total ? "success" : aborted ? "error" : running || done ? "info" : "pending";
        int64_t start = r->has_started ? r->first_started_ms : r->start_ms;
        json_t *notif = json_pack("{s:s,s:i,s:i,s:i,s:f}", "message",
                                  done == total ? "stage completed" : aborted ? "stage ended with an error"
                                  : running || done ? "stage in progress" : "stage not started",
                                  "tasksDone", done, "tasksRunning", running, "tasksNumber", total,
                                  "progress", total ? r->progress_sum / total : 1.0);
        if (!strcmp(r->stage_id, JOBS_STAGE_PROC)) { /* the images of the tasks done */
            json_object_set_new(notif, "imagesProcessed", json_integer(r->images_done));
            json_object_set_new(notif, "imagesFailed", json_integer(r->images_failed));
        }
        json_t *s = json_object();
        json_object_set_new(s, "processingStageId", json_string(r->stage_id));
        json_object_set_new(s, "processingStageName", json_string(r->name));
        json_object_set_new(s, "tasksNumber", json_integer(total > 0 ? total : 1));
        json_object_set_new(s, "outputBatches", json_pack("[s]", r->output_batch));
        json_object_set_new(s, "startTimestamp", ts_json(start));
        json_object_set_new(s, "notification", notif);
        json_object_set_new(s, "statusType", json_string(st));
        json_object_set_new(s, "lastEventTimestamp", ts_json(MAX(r->last_event_ms, start)));
        json_array_append_new(arr, s);
    }
    store_stage_rows_free(rows, n);
    *out = json_pack("{s:s,s:o}", "status", "ok", "stages", arr);
    return 0;
}

int jobs_tasks(struct jobs *j, const char *ws, const char *job_id, const char *stage, int page_size,
               const char *token, json_t **out, struct err *err)
{
    int64_t pk, after, last = 0;
    int ps, rc, n = 0;
    struct store_task_row *rows = NULL;
    char scope[PAGE_SCOPE_MAX];
    if ((rc = page_size_fix(page_size, &ps, err)) < 0)
        return rc;
    if ((rc = jobs__job_pk(j, ws, job_id, &pk, err)) < 0)
        return rc;
    snprintf(scope, sizeof scope, "tasks|%lld|%.40s", (long long)pk, stage);
    if ((rc = token_parse(scope, token, &after, err)) < 0)
        return rc;
    if (strcmp(stage, JOBS_STAGE_PROC) && strcmp(stage, JOBS_STAGE_EXPORT)) {
        err_printf(err, "job '%s' has no stage '%.40s' (stages: processing, export)", job_id, stage);
        return ERR_NOTFOUND;
    }
    if ((rc = store_tasks_page(j->st, pk, stage, after, ps + 1, &rows, &n, err)) < 0)
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < n && i < ps; i++) {
        const struct store_task_row *r = &rows[i];
        char tid[48];
        snprintf(tid, sizeof tid, "%s-%05d", stage, r->task_no);
        json_t *notif = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i}", "message", r->message ? r->message : r->state,
                                  "state", r->state, "imagesProcessed", r->done_items, "imagesFailed",
                                  r->failed_items, "images", r->n_items, "attempts", r->attempts);
        json_t *t = json_object();
        json_object_set_new(t, "taskId", json_string(tid));
        json_object_set_new(t, "notification", notif);
        json_object_set_new(t, "statusType", json_string(task_status_type(r->state)));
        /* not started: no "progress" key (the client reads it as None) */
        if (r->has_progress)
            json_object_set_new(t, "progress", json_real(r->progress));
        json_object_set_new(t, "eventTimestamp", ts_json(r->event_ms));
        json_array_append_new(arr, t);
        last = r->task_no;
    }
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "tasks", arr, "nextPageToken", token_json(scope, n > ps, last));
    store_task_rows_free(rows, n);
    return 0;
}

int jobs_logs(struct jobs *j, const char *ws, const char *job_id, const char *severity, int page_size,
              const char *token, json_t **out, struct err *err)
{
    int64_t pk, after, last = 0;
    int ps, rc, n = 0;
    struct store_job_log_row *rows = NULL;
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
    if ((rc = jobs__job_pk(j, ws, job_id, &pk, err)) < 0)
        return rc;
    snprintf(scope, sizeof scope, "logs|%lld|%s", (long long)pk, severity ? severity : "");
    if ((rc = token_parse(scope, token, &after, err)) < 0)
        return rc;
    if ((rc = store_job_logs_page(j->st, pk, severity, after, ps + 1, &rows, &n, err)) < 0)
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < n && i < ps; i++) {
        const struct store_job_log_row *r = &rows[i];
        json_t *l = json_object();
        json_object_set_new(l, "createdAt", ts_json(r->created_ms));
        /* optional keys are left out rather than null (the published
         * schema does not declare them nullable) */
        if (r->stage_id)
            json_object_set_new(l, "processingStageId", json_string(r->stage_id));
        if (r->task_no) {
            char tid[48];
            snprintf(tid, sizeof tid, "%s-%05d", r->stage_id ? r->stage_id : "", r->task_no);
            json_object_set_new(l, "taskId", json_string(tid));
        }
        json_object_set_new(l, "severity", json_string(r->severity));
        json_object_set_new(l, "reportingModule", json_string(r->module));
        json_object_set_new(l, "logType", json_string(r->log_type));
        json_object_set_new(l, "payload", parse_or(r->payload, json_object()));
        json_array_append_new(arr, l);
        last = r->id;
    }
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "logs", arr, "nextPageToken", token_json(scope, n > ps, last));
    store_job_log_rows_free(rows, n);
    return 0;
}
