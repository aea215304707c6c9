/*
 * jobs.c — owner of the jobs and stages tables: a job's creation with its
 * stages and planned tasks, its restart, its end with an error (abort,
 * timeout, failure rate, too many attempts) and the webhook queued with
 * it, and the rows the Batch Processing API shows.  The tasks' lease state
 * machine is in tasks.c, the log rows in job_logs.c, the schema in
 * jobs_schema.c.
 *
 * Every state change is one transaction (db_begin ... db_commit); the
 * webhook of a job's end is queued into the outbox in the transaction
 * that ends it.
 */
#include "store/jobs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store__jobs_conn(struct store *st, struct db_conn **c, struct err *e)
{
    struct err tmp = ERR_INIT;
    struct err *ee = e ? e : &tmp;
    *c = db_acquire(store__db(st), ee);
    if (*c)
        return 0;
    return ee->code < 0 ? ee->code : ERR_INTERNAL;
}

void store__jobs_conn_release(struct store *st, struct db_conn *c)
{
    db_release(store__db(st), c);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static char *dup_or_empty(const char *s)
{
    return xstrdup(s ? s : "");
}

/* Commit when rc is 0, else roll back; returns the outcome. */
static int tx_end(struct db_conn *c, int rc, struct err *e)
{
    if (rc == 0)
        return db_commit(c, e);
    db_rollback(c);
    return rc;
}

int store_jobs_migrate(struct store *st, struct err *e)
{
    struct db *d = store__db(st);
    if (db_kind(d) == DB_POSTGRES)
        return db_migrate(d, "jobs", store__jobs_migrations_pg, store__jobs_migrations_pg_n, e);
    return db_migrate(d, "jobs", store__jobs_migrations_sqlite, store__jobs_migrations_sqlite_n, e);
}

/* ---- find and create ------------------------------------------------------ */

static int job_find_c(struct db_conn *c, const char *ws, const char *job_id, int64_t *pk, char **def,
                      struct err *e)
{
    struct db_stmt *q = NULL;
    *pk = 0;
    if (def)
        *def = NULL;
    int rc = db_prepare(c, "SELECT pk, definition FROM jobs WHERE workspace=?1 AND job_id=?2", &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, ws);
    db_bind_text(q, 2, job_id);
    rc = db_step(q, e);
    if (rc == DB_ROW) {
        *pk = db_col_int64(q, 0);
        if (def)
            *def = dup_or_null(db_col_text(q, 1));
        rc = 0;
    }
    db_finalize(q);
    return rc;
}

int store_job_find(struct store *st, const char *ws, const char *job_id, int64_t *pk, char **def, struct err *e)
{
    struct db_conn *c = NULL;
    int rc;
    *pk = 0;
    if (def)
        *def = NULL;
    if ((rc = store__jobs_conn(st, &c, e)) < 0)
        return rc;
    rc = job_find_c(c, ws, job_id, pk, def, e);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_job_create(struct store *st, const struct store_job_new *jn, const struct store_task_range *tasks,
                     int ntasks, json_t *log_payload, int64_t *pk_out, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    int64_t pk = 0, now = time_now_ms();
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0) {
        json_decref(log_payload);
        return rc;
    }
    rc = db_begin(c, e);
    if (rc < 0) {
        err_printf(e, "%s", rc == ERR_AGAIN ? "database busy" : err_str(rc));
        json_decref(log_payload);
        store__jobs_conn_release(st, c);
        return rc;
    }
    rc = job_find_c(c, jn->ws, jn->job_id, &pk, NULL, e);
    if (rc == 0 && pk) {
        err_printf(e, "job '%s' was created concurrently", jn->job_id);
        rc = ERR_EXISTS;
    }
    if (rc == 0)
        rc = db_prepare(c, "INSERT INTO jobs(workspace, job_id, name, definition, wf_def, image_input, outputs,"
                           " batch_id, part_name, agg_format, persist, persist_list, params, notif_url,"
                           " timeout_s, max_parallel, max_fail_rate, workers, machine_type, state,"
                           " current_stage, items_total, created_ms, updated_ms)"
                           " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,"
                           "'running','processing',?20,?21,?22) RETURNING pk", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, jn->ws);
        db_bind_text(q, 2, jn->job_id);
        db_bind_text(q, 3, jn->name);
        db_bind_text(q, 4, jn->definition);
        db_bind_text(q, 5, jn->wf_def);
        db_bind_text(q, 6, jn->image_input);
        db_bind_text(q, 7, jn->outputs);
        db_bind_text(q, 8, jn->batch);
        db_bind_text(q, 9, jn->part);
        db_bind_text(q, 10, jn->agg_format);
        db_bind_int64(q, 11, jn->persist ? 1 : 0);
        db_bind_text(q, 12, jn->persist_list);
        db_bind_text(q, 13, jn->params);
        db_bind_text(q, 14, jn->notif_url);
        db_bind_int64(q, 15, jn->timeout_s);
        if (jn->max_parallel)
            db_bind_int64(q, 16, jn->max_parallel);
        else
            db_bind_null(q, 16);
        if (jn->max_fail_rate >= 0)
            db_bind_double(q, 17, jn->max_fail_rate);
        else
            db_bind_null(q, 17);
        db_bind_int64(q, 18, jn->workers);
        db_bind_text(q, 19, jn->machine_type);
        db_bind_int64(q, 20, jn->items_total);
        db_bind_int64(q, 21, now);
        db_bind_int64(q, 22, now);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            pk = db_col_int64(q, 0);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = err_set(e, ERR_INTERNAL, "the job insert returned no key");
        }
        db_finalize(q);
        q = NULL;
    }
    for (int s = 0; rc == 0 && s < 2; s++) {
        char *ob = xasprintf("%s-%s", jn->job_id, s == 0 ? "processing" : "export");
        rc = db_run(c, e,
                    "INSERT INTO stages(job_pk, stage_id, name, tasks_number, output_batch, start_ms)"
                    " VALUES(?1,?2,?3,?4,?5,?6)",
                    "ittiti", pk, s == 0 ? STORE_STAGE_PROC : STORE_STAGE_EXPORT,
                    s == 0 ? "Processing images" : "Exporting results", (int64_t)(s == 0 ? ntasks : 1), ob, now);
        free(ob);
    }
    if (rc == 0)
        rc = db_prepare(c, "INSERT INTO tasks(job_pk, stage_id, task_no, state, after_id, last_id, n_items,"
                           " event_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)", &q, e);
    for (int t = 0; rc == 0 && t <= ntasks; t++) {
        bool exp = t == ntasks;
        db_reset(q);
        db_bind_int64(q, 1, pk);
        db_bind_text(q, 2, exp ? STORE_STAGE_EXPORT : STORE_STAGE_PROC);
        db_bind_int64(q, 3, exp ? 1 : t + 1);
        db_bind_text(q, 4, exp ? "waiting" : "pending");
        db_bind_int64(q, 5, exp ? 0 : tasks[t].after_id);
        db_bind_int64(q, 6, exp ? 0 : tasks[t].last_id);
        db_bind_int64(q, 7, exp ? 0 : tasks[t].n);
        db_bind_int64(q, 8, now);
        rc = db_step(q, e);
        if (rc == DB_ROW)
            rc = 0;
    }
    db_finalize(q);
    if (rc == 0)
        rc = store__job_log(c, pk, "info", "jobs", "job-created", log_payload, NULL, 0, e);
    else
        json_decref(log_payload);
    if (rc == 0) /* idle workers of every process: new tasks */
        rc = store__tasks_notify(c, e);
    rc = tx_end(c, rc, e);
    store__jobs_conn_release(st, c);
    if (rc == 0 && pk_out)
        *pk_out = pk;
    return rc;
}

/* ---- the rows the API shows ----------------------------------------------- */

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
    " CASE WHEN EXISTS(SELECT 1 FROM tasks t WHERE t.job_pk=j.pk"                                    \
    "   AND (t.started_ms IS NOT NULL OR t.state='done')) THEN 1 ELSE 0 END"

static void job_row_read(struct db_stmt *q, struct store_job_row *r)
{
    r->pk = db_col_int64(q, 0);
    r->job_id = dup_or_empty(db_col_text(q, 1));
    r->name = dup_or_empty(db_col_text(q, 2));
    r->definition = dup_or_empty(db_col_text(q, 3));
    r->state = dup_or_empty(db_col_text(q, 4));
    r->current_stage = dup_or_null(db_col_text(q, 5));
    r->message = dup_or_null(db_col_text(q, 6));
    r->restart_overrides = dup_or_empty(db_col_text(q, 7));
    r->created_ms = db_col_int64(q, 8);
    r->updated_ms = db_col_int64(q, 9);
    r->items_total = db_col_int64(q, 10);
    r->machine_ms = db_col_int64(q, 11);
    r->images_done = db_col_int64(q, 12);
    r->images_failed = db_col_int64(q, 13);
    r->last_event_ms = db_col_int64(q, 14);
    r->progress_items = db_col_double(q, 15);
    r->started = db_col_int64(q, 16) != 0;
}

void store_job_row_release(struct store_job_row *r)
{
    if (!r)
        return;
    free(r->job_id);
    free(r->name);
    free(r->definition);
    free(r->state);
    free(r->current_stage);
    free(r->message);
    free(r->restart_overrides);
    memset(r, 0, sizeof *r);
}

void store_job_rows_free(struct store_job_row *r, int n)
{
    for (int i = 0; i < n; i++)
        store_job_row_release(&r[i]);
    free(r);
}

int store_job_get(struct store *st, const char *ws, const char *job_id, struct store_job_row *r, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    memset(r, 0, sizeof *r);
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_prepare(c, "SELECT " JOB_COLS " FROM jobs j WHERE j.workspace=?1 AND j.job_id=?2", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, ws);
        db_bind_text(q, 2, job_id);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            job_row_read(q, r);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = ERR_NOTFOUND;
        }
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_jobs_page(struct store *st, const char *ws, int64_t before, int limit, struct store_job_row **rows,
                    int *n, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    struct store_job_row *r = NULL;
    int cnt = 0;
    *rows = NULL;
    *n = 0;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_prepare(c, "SELECT " JOB_COLS " FROM jobs j WHERE j.workspace=?1 AND (?2=0 OR j.pk<?2)"
                       " ORDER BY j.pk DESC LIMIT ?3", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, ws);
        db_bind_int64(q, 2, before);
        db_bind_int64(q, 3, limit);
        r = xcalloc((size_t)MAX(limit, 1), sizeof *r);
        while (cnt < limit && (rc = db_step(q, e)) == DB_ROW)
            job_row_read(q, &r[cnt++]);
        if (rc > 0)
            rc = 0;
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    if (rc < 0) {
        store_job_rows_free(r, cnt);
        return rc;
    }
    *rows = r;
    *n = cnt;
    return 0;
}

void store_stage_rows_free(struct store_stage_row *r, int n)
{
    for (int i = 0; i < n; i++) {
        free(r[i].stage_id);
        free(r[i].name);
        free(r[i].output_batch);
    }
    free(r);
}

int store_job_stages(struct store *st, int64_t job_pk, struct store_stage_row **rows, int *n, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    struct store_stage_row *r = NULL;
    int cnt = 0, cap = 0;
    *rows = NULL;
    *n = 0;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_prepare(c, "SELECT s.stage_id, s.name, s.tasks_number, s.output_batch, s.start_ms,"
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
                       " FROM stages s WHERE s.job_pk=?1"
                       " ORDER BY CASE WHEN s.stage_id='export' THEN 1 ELSE 0 END, s.stage_id", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, job_pk);
        while ((rc = db_step(q, e)) == DB_ROW) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 4;
                r = xrealloc(r, (size_t)cap * sizeof *r);
            }
            struct store_stage_row *s = &r[cnt++];
            s->stage_id = dup_or_empty(db_col_text(q, 0));
            s->name = dup_or_empty(db_col_text(q, 1));
            s->tasks_number = (int)db_col_int64(q, 2);
            s->output_batch = dup_or_empty(db_col_text(q, 3));
            s->start_ms = db_col_int64(q, 4);
            s->done = (int)db_col_int64(q, 5);
            s->running = (int)db_col_int64(q, 6);
            s->aborted = (int)db_col_int64(q, 7);
            s->last_event_ms = db_col_int64(q, 8);
            s->has_started = !db_col_null(q, 9);
            s->first_started_ms = db_col_int64(q, 9);
            s->progress_sum = db_col_double(q, 10);
            s->images_done = db_col_int64(q, 11);
            s->images_failed = db_col_int64(q, 12);
        }
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    if (rc < 0) {
        store_stage_rows_free(r, cnt);
        return rc;
    }
    *rows = r;
    *n = cnt;
    return 0;
}

/* ---- the end of a job --------------------------------------------------------- */

/* Queue a webhook in c's transaction (the outbox's owner call, on db.h:
 * either backend). */
static int outbox_enqueue_c(struct db_conn *c, const char *url, const char *ws, const char *order_key,
                            const char *payload, bool sign, struct err *e)
{
    int rc = store__outbox_enqueue(c, url, ws, order_key, payload, sign, e);
    if (rc < 0)
        err_prefix(e, rc, "cannot queue the job webhook");
    return rc;
}

int store__job_webhook(struct db_conn *c, int64_t job_pk, bool success, struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_prepare(c, "SELECT notif_url, workspace, job_id FROM jobs WHERE pk=?1", &q, e);
    if (rc < 0)
        return rc;
    db_bind_int64(q, 1, job_pk);
    rc = db_step(q, e);
    if (rc == DB_ROW && !db_col_null(q, 0)) {
        char ev[37];
        uuid4(ev);
        json_t *p = json_pack("{s:s,s:s,s:s,s:s,s:i}", "type", "roboflow-batch-job-notification-v1",
                              "event_id", ev, "job_id", db_col_text(q, 2) ? db_col_text(q, 2) : "", "job_state",
                              success ? "success" : "fail", "delivery_attempt", 1);
        char *txt = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        char *key = xasprintf("job/%s", db_col_text(q, 2) ? db_col_text(q, 2) : ""); /* a job's webhooks go out in order */
        rc = outbox_enqueue_c(c, db_col_text(q, 0), db_col_text(q, 1) ? db_col_text(q, 1) : "", key, txt, true, e);
        free(key);
        free(txt);
        if (rc < 0)
            log_error("jobs", "cannot queue the job webhook: %s", err_text(e, rc));
    } else if (rc >= 0) {
        rc = 0;
    }
    db_finalize(q);
    return rc;
}

int store__job_end_error(struct db_conn *c, int64_t job_pk, const char *state, const char *msg,
                         const char *log_type, struct err *e)
{
    int64_t now = time_now_ms();
    int rc = db_run(c, e, "UPDATE jobs SET state=?1, message=?2, updated_ms=?3 WHERE pk=?4 AND state='running'",
                    "ttii", state, msg, now, job_pk);
    if (rc < 0 || db_changes(c) == 0)
        return rc;
    rc = db_run(c, e,
                "UPDATE tasks SET state='aborted', lease_owner=NULL, event_ms=?1"
                " WHERE job_pk=?2 AND state IN ('waiting','pending','running')",
                "ii", now, job_pk);
    if (rc == 0)
        rc = store__job_log(c, job_pk, "error", "jobs", log_type, json_pack("{s:s}", "message", msg), NULL, 0, e);
    if (rc == 0)
        rc = store__job_webhook(c, job_pk, false, e);
    return rc;
}

static int job_end_error_tx(struct store *st, int64_t job_pk, const char *state, const char *msg, const char *log_type,
                            struct err *e)
{
    struct db_conn *c = NULL;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_begin(c, e);
    if (rc == 0)
        rc = tx_end(c, store__job_end_error(c, job_pk, state, msg, log_type, e), e);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_job_end_error(struct store *st, int64_t job_pk, const char *state, const char *msg, const char *log_type,
                        struct err *e)
{
    int rc, n = 0;
    do
        rc = job_end_error_tx(st, job_pk, state, msg, log_type, e);
    while (store__tx_again(st, rc, &n, e));
    return rc;
}

/* ---- restart ------------------------------------------------------------------ */

int store_job_restart(struct store *st, int64_t job_pk, struct store_job_restart *r, char state_out[16],
                      struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    char *overrides = NULL;
    json_t *log_payload = r->log_payload;
    int64_t now = time_now_ms();
    int rc;

    r->log_payload = NULL;
    state_out[0] = '\0';
    if ((rc = store__jobs_conn(st, &c, e)) < 0) {
        json_decref(log_payload);
        return rc;
    }
    rc = db_begin(c, e);
    if (rc < 0) {
        err_printf(e, "database busy");
        json_decref(log_payload);
        store__jobs_conn_release(st, c);
        return rc;
    }
    rc = db_prepare(c, "SELECT state, restart_overrides FROM jobs WHERE pk=?1", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, job_pk);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            const char *s = db_col_text(q, 0) ? db_col_text(q, 0) : "";
            snprintf(state_out, 16, "%s", s);
            if (!strcmp(s, "running") || !strcmp(s, "succeeded")) {
                rc = ERR_EXISTS;
            } else {
                const char *txt = db_col_text(q, 1);
                json_t *arr = txt ? json_loads(txt, 0, NULL) : NULL;
                if (!arr)
                    arr = json_array();
                json_array_append_new(arr, r->override && json_is_object(r->override)
                                               ? json_deep_copy(r->override) : json_object());
                overrides = json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(17));
                json_decref(arr);
                rc = 0;
            }
        } else if (rc == DB_DONE) {
            rc = ERR_INTERNAL;
        }
        db_finalize(q);
        q = NULL;
    }
    if (rc == 0)
        rc = db_prepare(c, "UPDATE jobs SET state='running', message=NULL, machine_ms=0, updated_ms=?1,"
                           " restart_overrides=?2,"
                           " timeout_s=CASE WHEN ?3>0 THEN ?3 ELSE timeout_s END,"
                           " max_parallel=CASE WHEN ?4>0 THEN ?4 ELSE max_parallel END,"
                           " max_fail_rate=CASE WHEN ?5>=0 THEN ?5 ELSE max_fail_rate END,"
                           " workers=CASE WHEN ?6>0 THEN ?6 ELSE workers END,"
                           " machine_type=COALESCE(?7, machine_type),"
                           " current_stage=CASE WHEN EXISTS(SELECT 1 FROM tasks WHERE job_pk=?8 AND"
                           "   stage_id='processing' AND (state<>'done' OR failed_items>0)) THEN 'processing'"
                           "   ELSE 'export' END"
                           " WHERE pk=?8", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, now);
        db_bind_text(q, 2, overrides ? overrides : "[]");
        db_bind_int64(q, 3, r->timeout_s);
        db_bind_int64(q, 4, r->max_parallel);
        db_bind_double(q, 5, r->max_fail_rate);
        db_bind_int64(q, 6, r->workers);
        db_bind_text(q, 7, r->machine_type);
        db_bind_int64(q, 8, job_pk);
        rc = db_step(q, e);
        if (rc > 0)
            rc = 0;
        db_finalize(q);
    }
    if (rc == 0)
        rc = db_run(c, e,
                    "UPDATE tasks SET state='pending', lease_owner=NULL, lease_deadline_ms=0, attempts=0,"
                    " progress=NULL, started_ms=NULL, done_items=0, failed_items=0,"
                    " message='queued again by restart', event_ms=?1"
                    " WHERE job_pk=?2 AND stage_id='processing' AND (state<>'done' OR failed_items>0)",
                    "ii", now, job_pk);
    if (rc == 0) /* after the processing tasks: those requeued are no longer done */
        rc = db_run(c, e,
                    "UPDATE tasks SET state=CASE WHEN EXISTS(SELECT 1 FROM tasks p WHERE p.job_pk=?2"
                    "   AND p.stage_id='processing' AND p.state<>'done') THEN 'waiting' ELSE 'pending' END,"
                    " lease_owner=NULL, lease_deadline_ms=0, attempts=0, progress=NULL, started_ms=NULL,"
                    " message=NULL, event_ms=?1 WHERE job_pk=?2 AND stage_id='export'",
                    "ii", now, job_pk);
    if (rc == 0) {
        rc = store__job_log(c, job_pk, "info", "jobs", "job-restarted", log_payload, NULL, 0, e);
        log_payload = NULL;
    }
    json_decref(log_payload);
    if (rc == 0)
        rc = store__tasks_notify(c, e);
    rc = tx_end(c, rc, e);
    store__jobs_conn_release(st, c);
    free(overrides);
    return rc;
}

/* ---- what a worker reads ------------------------------------------------------ */

void store_job_run_release(struct store_job_run *r)
{
    free(r->batch);
    free(r->part);
    free(r->wf_def);
    free(r->image_input);
    free(r->params);
    free(r->persist_list);
    free(r->agg_format);
    free(r->outputs);
    free(r->definition);
    memset(r, 0, sizeof *r);
}

int store_job_run_get(struct store *st, int64_t job_pk, struct store_job_run *r, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    memset(r, 0, sizeof *r);
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_prepare(c, "SELECT workspace, job_id, batch_id, part_name, wf_def, image_input, params,"
                       " persist_list, agg_format, outputs, persist, state, machine_type, definition,"
                       " CASE WHEN max_fail_rate IS NOT NULL THEN 1 ELSE 0 END FROM jobs WHERE pk=?1", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, job_pk);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            snprintf(r->ws, sizeof r->ws, "%s", db_col_text(q, 0) ? db_col_text(q, 0) : "");
            snprintf(r->job_id, sizeof r->job_id, "%s", db_col_text(q, 1) ? db_col_text(q, 1) : "");
            r->batch = dup_or_null(db_col_text(q, 2));
            r->part = dup_or_null(db_col_text(q, 3));
            r->wf_def = dup_or_null(db_col_text(q, 4));
            r->image_input = dup_or_null(db_col_text(q, 5));
            r->params = dup_or_null(db_col_text(q, 6));
            r->persist_list = dup_or_null(db_col_text(q, 7));
            r->agg_format = dup_or_null(db_col_text(q, 8));
            r->outputs = dup_or_null(db_col_text(q, 9));
            r->persist = db_col_int64(q, 10) != 0;
            snprintf(r->state, sizeof r->state, "%s", db_col_text(q, 11) ? db_col_text(q, 11) : "");
            snprintf(r->machine_type, sizeof r->machine_type, "%s", db_col_text(q, 12) ? db_col_text(q, 12) : "");
            r->definition = dup_or_empty(db_col_text(q, 13));
            r->has_fail_rate = db_col_int64(q, 14) != 0;
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = ERR_NOTFOUND;
        }
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    return rc;
}
