/*
 * tasks.c — owner of the tasks table: the SQL of the lease state machine
 * (its diagram is at the top of src/jobs/lease.c) and the task rows the
 * API shows.
 *
 *   waiting ──(last processing task done)──► pending ──claim──► running
 *   running ──complete──► done        running ──error──► pending (aborted
 *   running ──release──► pending      after max_attempts: the job fails)
 *   running ──lease expired──► claimed again (attempts+1)
 *   any unfinished ──job ends with an error──► aborted
 *
 * Every transition is one transaction and every UPDATE of a running task
 * checks that the caller still holds its lease (lease_owner, state).
 */
#include "store/jobs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int tx_end(struct db_conn *c, int rc, struct err *e)
{
    if (rc == 0)
        return db_commit(c, e);
    db_rollback(c);
    return rc;
}

/* Whether to run a transition again after ERR_AGAIN (*n: the runs so far).
 * On PostgreSQL two transactions of one job can wait on each other's rows
 * — a job ended (job row, then its tasks) while a worker completes or
 * heartbeats a task (task row, then the job row for its machine time) or
 * claims one (task row, then the job row) — and the server breaks the
 * deadlock (SQLSTATE 40P01) by rolling one of them back; the whole
 * transaction then runs again, as the server's documentation asks of
 * clients.  Before, the worker took such an ERR_AGAIN for "shutting down"
 * and handed a finished task back to be processed again.  SQLite's
 * ERR_AGAIN is a busy timeout already waited for: not run again. */
bool store__tx_again(struct store *st, int rc, int *n, struct err *e)
{
    if (rc != ERR_AGAIN || ++*n >= STORE_TX_TRIES || db_kind(store__db(st)) != DB_POSTGRES)
        return false;
    log_info("jobs", "%s: the transaction was rolled back, run again (%d)", e && e->msg[0] ? e->msg : "database busy",
             *n);
    err_clear(e);
    unsigned char r;
    rand_bytes(&r, 1);
    struct timespec ts = {0, (long)(2 + (r % 8) * *n) * 1000000L}; /* a few ms, growing, jittered */
    nanosleep(&ts, NULL);
    return true;
}

/* ---- wake-ups of idle workers (LISTEN/NOTIFY on PostgreSQL) ------------- */

#define TASKS_CHANNEL "vbatch_tasks"

int store__tasks_notify(struct db_conn *c, struct err *e)
{
    return db_notify(c, TASKS_CHANNEL, e);
}

struct store_tasks_listener {
    struct db_listener *l;
};

int store_tasks_listen(struct store *st, struct store_tasks_listener **out, struct err *e)
{
    struct db_listener *l = NULL;
    *out = NULL;
    int rc = db_listen(store__db(st), TASKS_CHANNEL, &l, e);
    if (rc < 0)
        return rc;
    *out = xcalloc(1, sizeof **out);
    (*out)->l = l;
    return 0;
}

int store_tasks_wait(struct store_tasks_listener *tl, int64_t timeout_ms, struct err *e)
{
    return db_listen_wait(tl->l, timeout_ms, e);
}

void store_tasks_wake(struct store_tasks_listener *tl)
{
    if (tl)
        db_listen_wake(tl->l);
}

void store_tasks_listen_close(struct store_tasks_listener *tl)
{
    if (!tl)
        return;
    db_listen_close(tl->l);
    free(tl);
}

static void task_read(struct db_stmt *q, int64_t pk, struct store_task *t)
{
    const char *s = db_col_text(q, 1);
    t->pk = pk;
    t->job_pk = db_col_int64(q, 0);
    snprintf(t->stage, sizeof t->stage, "%s", s ? s : "");
    t->task_no = (int)db_col_int64(q, 2);
    t->after_id = db_col_int64(q, 3);
    t->last_id = db_col_int64(q, 4);
    t->n_items = (int)db_col_int64(q, 5);
    t->attempts = (int)db_col_int64(q, 6);
}

int store_task_get(struct store *st, int64_t pk, struct store_task *t, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_prepare(c, "SELECT job_pk, stage_id, task_no, after_id, last_id, n_items, attempts FROM tasks"
                       " WHERE pk=?1", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, pk);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            task_read(q, pk, t);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = ERR_NOTFOUND;
        }
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    return rc;
}

/* ---- claim ------------------------------------------------------------------ */

/* The claimable task: pending, or running with an expired lease, of a
 * running job whose maxParallelTasks and workersPerMachine (the tasks this
 * process holds, ?2 and its "?2-..." threads) leave room. */
#define CLAIM_SELECT                                                                               \
    "SELECT t.pk, t.job_pk, t.attempts, t.state, t.stage_id, t.task_no, t.lease_owner"              \
    " FROM tasks t JOIN jobs jb ON jb.pk=t.job_pk"                                                  \
    " WHERE t.state IN ('pending','running') AND jb.state='running'"                                \
    "  AND (t.state='pending' OR t.lease_deadline_ms<?1)"                                           \
    "  AND (jb.max_parallel IS NULL OR (SELECT COUNT(*) FROM tasks r WHERE r.job_pk=t.job_pk"       \
    "       AND r.state='running' AND r.lease_deadline_ms>=?1) < jb.max_parallel)"                  \
    "  AND (SELECT COUNT(*) FROM tasks r WHERE r.job_pk=t.job_pk AND r.state='running'"             \
    "       AND r.lease_deadline_ms>=?1 AND (r.lease_owner=?2"                                      \
    "       OR substr(r.lease_owner, 1, length(?2) + 1)=?2 || '-')) < jb.workers"                   \
    " ORDER BY t.job_pk, t.pk LIMIT 1"

/* SQLite: BEGIN IMMEDIATE holds the one writer lock, so no other claimer
 * runs between this SELECT and the UPDATE below. */
static const char claim_sql_sqlite[] = CLAIM_SELECT;
/* PostgreSQL: concurrent claimers skip the task rows another transaction
 * has locked instead of waiting for them.  Under READ COMMITTED the per-job
 * counts of that SELECT may be stale by the claims of transactions still
 * open, so the claimer then locks the job row (claimers of one job take
 * turns from here) and counts again with a fresh snapshot: claim_room_pg. */
static const char claim_sql_pg[] = CLAIM_SELECT " FOR UPDATE OF t SKIP LOCKED";
static const char claim_lock_job_pg[] = "SELECT pk FROM jobs WHERE pk=?1 FOR UPDATE";
static const char claim_room_pg[] =
    "SELECT 1 FROM jobs jb WHERE jb.pk=?3 AND jb.state='running'"
    "  AND (jb.max_parallel IS NULL OR (SELECT COUNT(*) FROM tasks r WHERE r.job_pk=jb.pk"
    "       AND r.state='running' AND r.lease_deadline_ms>=?1) < jb.max_parallel)"
    "  AND (SELECT COUNT(*) FROM tasks r WHERE r.job_pk=jb.pk AND r.state='running'"
    "       AND r.lease_deadline_ms>=?1 AND (r.lease_owner=?2"
    "       OR substr(r.lease_owner, 1, length(?2) + 1)=?2 || '-')) < jb.workers";

/* PostgreSQL: 0 and *room when the job still has room for one more task of
 * cl->process, counted after taking the job's row lock. */
static int claim_recheck_pg(struct db_conn *c, const struct store_claim *cl, int64_t job_pk, bool *room,
                            struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_run(c, e, claim_lock_job_pg, "i", job_pk);
    *room = false;
    if (rc == 0)
        rc = db_prepare(c, claim_room_pg, &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, cl->now_ms);
        db_bind_text(q, 2, cl->process);
        db_bind_int64(q, 3, job_pk);
        rc = db_step(q, e);
        *room = rc == DB_ROW;
        rc = rc < 0 ? rc : 0;
    }
    db_finalize(q);
    return rc;
}

static int task_claim_tx(struct store *st, const struct store_claim *cl, int64_t *task_pk, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    int64_t pk = 0, job_pk = 0;
    int attempts = 0, task_no = 0;
    bool expired = false;
    char stage[16] = "", prev_owner[128] = "";
    int rc;

    *task_pk = 0;
    if ((rc = store__jobs_conn(st, &c, e)) < 0)
        return rc;
    if ((rc = db_begin(c, e)) < 0) {
        store__jobs_conn_release(st, c);
        return rc;
    }
    rc = db_prepare(c, db_conn_kind(c) == DB_POSTGRES ? claim_sql_pg : claim_sql_sqlite, &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, cl->now_ms);
        db_bind_text(q, 2, cl->process);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            const char *s;
            pk = db_col_int64(q, 0);
            job_pk = db_col_int64(q, 1);
            attempts = (int)db_col_int64(q, 2);
            expired = (s = db_col_text(q, 3)) && !strcmp(s, "running");
            snprintf(stage, sizeof stage, "%s", (s = db_col_text(q, 4)) ? s : "");
            task_no = (int)db_col_int64(q, 5);
            snprintf(prev_owner, sizeof prev_owner, "%s", (s = db_col_text(q, 6)) ? s : "");
        }
        if (rc > 0)
            rc = 0;
        db_finalize(q);
    }
    if (rc == 0 && pk && db_conn_kind(c) == DB_POSTGRES) {
        bool room = false;
        rc = claim_recheck_pg(c, cl, job_pk, &room, e);
        if (rc == 0 && !room)
            pk = 0; /* another claimer of the job took the last place meanwhile */
    }
    if (rc == 0 && pk && attempts >= cl->max_attempts) {
        char *msg = xasprintf("task %s-%05d failed %d times (last owner '%s'): the job is stopped", stage,
                              task_no, attempts, prev_owner);
        rc = store__job_end_error(c, job_pk, "failed", msg, "task-failed", e);
        free(msg);
        pk = 0;
    } else if (rc == 0 && pk) {
        rc = db_run(c, e,
                    "UPDATE tasks SET state='running', lease_owner=?1, lease_deadline_ms=?2,"
                    " attempts=attempts+1, progress=COALESCE(progress, 0), message=?3, event_ms=?4,"
                    " started_ms=COALESCE(started_ms, ?4) WHERE pk=?5",
                    "titii", cl->owner, cl->now_ms + cl->lease_ms,
                    expired ? "claimed again after its lease expired" : "running", time_now_ms(), pk);
        if (rc == 0 && expired)
            rc = store__job_log(c, job_pk, "warning", "worker", "lease-expired",
                                json_pack("{s:s,s:s,s:i}", "previousOwner", prev_owner, "newOwner", cl->owner,
                                          "attempt", attempts + 1),
                                stage, task_no, e);
    }
    rc = tx_end(c, rc, e);
    store__jobs_conn_release(st, c);
    if (rc == 0)
        *task_pk = pk;
    return rc;
}

int store_task_claim(struct store *st, const struct store_claim *cl, int64_t *task_pk, struct err *e)
{
    int rc, n = 0;
    do
        rc = task_claim_tx(st, cl, task_pk, e);
    while (store__tx_again(st, rc, &n, e));
    return rc;
}

/* ---- inside a transaction -------------------------------------------------------- */

/* Add machine time to the job and end it when the processing timeout is
 * spent. */
static int machine_time_c(struct db_conn *c, int64_t job_pk, int64_t add_ms, struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_run(c, e, "UPDATE jobs SET machine_ms=machine_ms+?1, updated_ms=?2 WHERE pk=?3", "iii", add_ms,
                    time_now_ms(), job_pk);
    if (rc < 0)
        return rc;
    if ((rc = db_prepare(c, "SELECT machine_ms, timeout_s FROM jobs WHERE pk=?1 AND state='running'", &q, e)) < 0)
        return rc;
    db_bind_int64(q, 1, job_pk);
    int64_t used = -1, limit = 0;
    rc = db_step(q, e);
    if (rc == DB_ROW && !db_col_null(q, 1)) {
        used = db_col_int64(q, 0);
        limit = db_col_int64(q, 1) * 1000;
    }
    db_finalize(q);
    if (rc < 0)
        return rc;
    rc = 0;
    if (used >= 0 && limit > 0 && used > limit) {
        char *msg = xasprintf("processing timeout: %.1f s of machine time spent, limit %lld s "
                              "(processingTimeoutSeconds)", (double)used / 1000.0, (long long)(limit / 1000));
        rc = store__job_end_error(c, job_pk, "failed", msg, "processing-timeout", e);
        free(msg);
    }
    return rc;
}

/* 0 when the job is running; ERR_NOTFOUND otherwise. */
static int job_running_c(struct db_conn *c, int64_t job_pk, struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_prepare(c, "SELECT state FROM jobs WHERE pk=?1", &q, e);
    if (rc < 0)
        return rc;
    db_bind_int64(q, 1, job_pk);
    rc = db_step(q, e);
    if (rc >= 0) {
        const char *s = rc == DB_ROW ? db_col_text(q, 0) : NULL;
        rc = s && !strcmp(s, "running") ? 0 : ERR_NOTFOUND;
    }
    db_finalize(q);
    return rc;
}

/* Lock the task as ours: 0, or ERR_NOTFOUND when lost. */
static int task_mark_c(struct db_conn *c, const struct store_task *t, const char *owner, const char *state,
                       int done_items, int failed_items, const char *msg, struct err *e)
{
    int rc = db_run(c, e,
                    "UPDATE tasks SET state=?1, progress=CASE WHEN ?1='done' THEN 1.0 ELSE progress END,"
                    " done_items=?2, failed_items=?3, message=?4, lease_owner=NULL, lease_deadline_ms=0,"
                    " event_ms=?5 WHERE pk=?6 AND lease_owner=?7 AND state='running'",
                    "tiitiit", state, (int64_t)done_items, (int64_t)failed_items, msg, time_now_ms(), t->pk, owner);
    if (rc == 0 && db_changes(c) == 0)
        rc = ERR_NOTFOUND;
    return rc;
}

/* After a processing task is done: failure rate, then the move to export.
 * On PostgreSQL the job's row is locked first, so completions of one job
 * take turns here and each counts with a snapshot taken after the previous
 * one committed: under READ COMMITTED two last tasks completed at once
 * would otherwise each see the other as unfinished, and neither would move
 * the job to export (SQLite's writer lock serialises them already). */
static int after_processing_c(struct db_conn *c, int64_t job_pk, struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_conn_kind(c) == DB_POSTGRES ? db_run(c, e, claim_lock_job_pg, "i", job_pk) : 0;
    if (rc < 0)
        return rc;
    rc = db_prepare(c, "SELECT jb.max_fail_rate, jb.items_total,"
                           " (SELECT COALESCE(SUM(failed_items),0) FROM tasks t WHERE t.job_pk=jb.pk"
                           "   AND t.stage_id='processing' AND t.state='done'),"
                           " (SELECT COUNT(*) FROM tasks t WHERE t.job_pk=jb.pk AND t.stage_id='processing'"
                           "   AND t.state<>'done')"
                           " FROM jobs jb WHERE jb.pk=?1 AND jb.state='running'", &q, e);
    if (rc < 0)
        return rc;
    db_bind_int64(q, 1, job_pk);
    rc = db_step(q, e);
    if (rc != DB_ROW) {
        db_finalize(q);
        return rc < 0 ? rc : 0;
    }
    bool has_rate = !db_col_null(q, 0);
    double rate = db_col_double(q, 0);
    int64_t total = db_col_int64(q, 1), failed = db_col_int64(q, 2);
    int64_t left = db_col_int64(q, 3);
    db_finalize(q);
    if (has_rate && total > 0 && (double)failed > rate * (double)total) {
        char *msg = xasprintf("image failure rate exceeded: %lld of %lld images failed (maxImageFailureRate %g)",
                              (long long)failed, (long long)total, rate);
        rc = store__job_end_error(c, job_pk, "failed", msg, "failure-rate-exceeded", e);
        free(msg);
        return rc;
    }
    if (left > 0)
        return 0;
    int64_t now = time_now_ms();
    rc = db_run(c, e,
                "UPDATE tasks SET state='pending', event_ms=?1 WHERE job_pk=?2 AND stage_id='export'"
                " AND state='waiting'",
                "ii", now, job_pk);
    if (rc == 0)
        rc = db_run(c, e, "UPDATE jobs SET current_stage='export', updated_ms=?1 WHERE pk=?2", "ii", time_now_ms(),
                    job_pk);
    if (rc == 0)
        rc = store__job_log(c, job_pk, "info", "jobs", "stage-completed",
                            json_pack("{s:s,s:I}", "stage", STORE_STAGE_PROC, "imagesFailed", (json_int_t)failed),
                            STORE_STAGE_PROC, 0, e);
    return rc;
}

/* After the export: the job succeeds, unless it had images and none of
 * them succeeded — then it fails with the last failure's cause (the
 * export, errors part included, is kept). */
static int after_export_c(struct db_conn *c, int64_t job_pk, struct err *e)
{
    struct db_stmt *q = NULL;
    int64_t total = 0, done = 0, failed = 0;
    bool video = false;
    int rc = db_prepare(c, "SELECT jb.items_total, jb.definition,"
                           " (SELECT COALESCE(SUM(done_items),0) FROM tasks t WHERE t.job_pk=jb.pk"
                           "   AND t.stage_id='processing' AND t.state='done'),"
                           " (SELECT COALESCE(SUM(failed_items),0) FROM tasks t WHERE t.job_pk=jb.pk"
                           "   AND t.stage_id='processing' AND t.state='done')"
                           " FROM jobs jb WHERE jb.pk=?1 AND jb.state='running'", &q, e);
    if (rc < 0)
        return rc;
    db_bind_int64(q, 1, job_pk);
    rc = db_step(q, e);
    if (rc == DB_ROW) {
        total = db_col_int64(q, 0);
        /* the job type from the stored definition (parsed here rather than
         * with a json function, which the two databases spell apart) */
        const char *def = db_col_text(q, 1);
        json_t *d = def ? json_loads(def, 0, NULL) : NULL;
        const char *type = json_string_value(json_object_get(d, "type"));
        video = type && !strcmp(type, "simple-video-processing-v1");
        json_decref(d);
        done = db_col_int64(q, 2);
        failed = db_col_int64(q, 3);
    }
    db_finalize(q);
    if (rc < 0)
        return rc;
    if (total > 0 && done == 0 && failed > 0) {
        char *first = NULL, *payload = NULL;
        rc = store__job_log_last(c, job_pk, "image-processing-failed", &payload, e);
        if (rc < 0)
            return rc;
        if (payload) {
            json_t *p = json_loads(payload, 0, NULL);
            first = xasprintf("'%s': %s", json_string_value(json_object_get(p, "file_path")),
                              json_string_value(json_object_get(p, "cause")));
            json_decref(p);
            free(payload);
        }
        char *msg = xasprintf("no %s succeeded: all %lld failed (the errors part of the export lists them);"
                              " the last: %s", video ? "video" : "image", (long long)failed,
                              first ? first : "(not logged)");
        rc = store__job_end_error(c, job_pk, "failed", msg, "all-images-failed", e);
        free(msg);
        free(first);
        return rc;
    }
    rc = db_run(c, e, "UPDATE jobs SET state='succeeded', message='job completed', updated_ms=?1"
                      " WHERE pk=?2 AND state='running'", "ii", time_now_ms(), job_pk);
    if (rc < 0 || db_changes(c) == 0)
        return rc;
    rc = store__job_log(c, job_pk, "info", "jobs", "job-completed", json_pack("{s:s}", "state", "success"),
                        STORE_STAGE_EXPORT, 0, e);
    if (rc == 0)
        rc = store__job_webhook(c, job_pk, true, e);
    return rc;
}

static int log_fails(struct db_conn *c, const struct store_task *t, const struct store_image_fail *fails, int nfails,
                     struct err *e)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < nfails; i++)
        rc = store__job_log(c, t->job_pk, "error", "worker", "image-processing-failed",
                            json_pack("{s:s,s:s}", "file_path", fails[i].file, "cause", fails[i].cause), t->stage,
                            t->task_no, e);
    return rc;
}

/* ---- transitions of a task in hand ------------------------------------------------ */

static int task_heartbeat_tx(struct store *st, int64_t task_pk, int64_t job_pk, const char *owner, int64_t now_ms,
                             int64_t lease_ms, int64_t machine_ms, double progress, bool *lost, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    int rc = store__jobs_conn(st, &c, e);
    *lost = false;
    if (rc < 0)
        return rc;
    rc = db_begin(c, e);
    if (rc == 0)
        rc = db_prepare(c, "UPDATE tasks SET lease_deadline_ms=?1, progress=?2, event_ms=?3 WHERE pk=?4 AND"
                           " lease_owner=?5 AND state='running'", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, now_ms + lease_ms);
        db_bind_double(q, 2, progress);
        db_bind_int64(q, 3, time_now_ms());
        db_bind_int64(q, 4, task_pk);
        db_bind_text(q, 5, owner);
        rc = db_step(q, e);
        if (rc > 0)
            rc = 0;
        db_finalize(q);
        *lost = rc == 0 && db_changes(c) == 0;
    }
    if (rc == 0 && !*lost && machine_ms > 0)
        rc = machine_time_c(c, job_pk, machine_ms, e);
    if (rc == 0 && !*lost) {
        int r = job_running_c(c, job_pk, e);
        if (r == ERR_NOTFOUND)
            *lost = true;
        else
            rc = r;
    }
    rc = tx_end(c, rc, e);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_task_heartbeat(struct store *st, int64_t task_pk, int64_t job_pk, const char *owner, int64_t now_ms,
                         int64_t lease_ms, int64_t machine_ms, double progress, bool *lost, struct err *e)
{
    int rc, n = 0;
    do
        rc = task_heartbeat_tx(st, task_pk, job_pk, owner, now_ms, lease_ms, machine_ms, progress, lost, e);
    while (store__tx_again(st, rc, &n, e));
    return rc;
}

static int task_complete_tx(struct store *st, const struct store_task *t, const char *owner, int done_items,
                            int failed_items, const struct store_image_fail *fails, int nfails, int64_t machine_ms,
                            struct err *e)
{
    struct db_conn *c = NULL;
    bool export = !strcmp(t->stage, STORE_STAGE_EXPORT);
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_begin(c, e);
    if (rc == 0)
        rc = task_mark_c(c, t, owner, "done", done_items, failed_items, export ? "export completed" : "task completed",
                         e);
    if (rc == 0)
        rc = log_fails(c, t, fails, nfails, e);
    if (rc == 0 && machine_ms > 0)
        rc = machine_time_c(c, t->job_pk, machine_ms, e);
    if (rc == 0)
        rc = export ? after_export_c(c, t->job_pk, e) : after_processing_c(c, t->job_pk, e);
    if (rc == 0 && !export) /* the export task may be pending now, and a slot of the job's caps is free */
        rc = store__tasks_notify(c, e);
    rc = tx_end(c, rc, e);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_task_complete(struct store *st, const struct store_task *t, const char *owner, int done_items,
                        int failed_items, const struct store_image_fail *fails, int nfails, int64_t machine_ms,
                        struct err *e)
{
    int rc, n = 0;
    do
        rc = task_complete_tx(st, t, owner, done_items, failed_items, fails, nfails, machine_ms, e);
    while (store__tx_again(st, rc, &n, e));
    return rc;
}

static int task_fail_job_tx(struct store *st, const struct store_task *t, const char *owner, int done_items,
                            const struct store_image_fail *fails, int nfails, const char *msg, int64_t machine_ms,
                            struct err *e)
{
    struct db_conn *c = NULL;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_begin(c, e);
    if (rc == 0)
        rc = task_mark_c(c, t, owner, "aborted", done_items, nfails, msg, e);
    if (rc == 0)
        rc = log_fails(c, t, fails, nfails, e);
    if (rc == 0 && machine_ms > 0)
        rc = machine_time_c(c, t->job_pk, machine_ms, e);
    if (rc == 0)
        rc = store__job_end_error(c, t->job_pk, "failed", msg, "failure-budget-spent", e);
    rc = tx_end(c, rc, e);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_task_fail_job(struct store *st, const struct store_task *t, const char *owner, int done_items,
                        const struct store_image_fail *fails, int nfails, const char *msg, int64_t machine_ms,
                        struct err *e)
{
    int rc, n = 0;
    do
        rc = task_fail_job_tx(st, t, owner, done_items, fails, nfails, msg, machine_ms, e);
    while (store__tx_again(st, rc, &n, e));
    return rc;
}

static int task_release_tx(struct store *st, const struct store_task *t, const char *owner, const char *msg,
                           struct err *e)
{
    struct db_conn *c = NULL;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_begin(c, e);
    if (rc == 0)
        rc = db_run(c, e,
                    "UPDATE tasks SET state='pending', lease_owner=NULL, lease_deadline_ms=0,"
                    " attempts=CASE WHEN attempts>0 THEN attempts-1 ELSE 0 END, message=?1, event_ms=?2"
                    " WHERE pk=?3 AND lease_owner=?4 AND state='running'",
                    "tiit", msg, time_now_ms(), t->pk, owner);
    if (rc == 0)
        rc = store__tasks_notify(c, e);
    rc = tx_end(c, rc, e);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_task_release(struct store *st, const struct store_task *t, const char *owner, const char *msg,
                       struct err *e)
{
    int rc, n = 0;
    do
        rc = task_release_tx(st, t, owner, msg, e);
    while (store__tx_again(st, rc, &n, e));
    return rc;
}

static int task_error_tx(struct store *st, const struct store_task *t, const char *owner, const char *msg,
                         int max_attempts, int64_t machine_ms, struct err *e)
{
    struct db_conn *c = NULL;
    bool last = t->attempts >= max_attempts;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_begin(c, e);
    if (rc == 0)
        rc = task_mark_c(c, t, owner, last ? "aborted" : "pending", 0, 0, msg, e);
    if (rc == 0)
        rc = store__job_log(c, t->job_pk, "error", "worker", "task-error",
                            json_pack("{s:s,s:i}", "message", msg, "attempt", t->attempts), t->stage, t->task_no, e);
    if (rc == 0 && machine_ms > 0)
        rc = machine_time_c(c, t->job_pk, machine_ms, e);
    if (rc == 0 && last) {
        char *m = xasprintf("task %s-%05d failed %d times: %s", t->stage, t->task_no, t->attempts, msg);
        rc = store__job_end_error(c, t->job_pk, "failed", m, "task-failed", e);
        free(m);
    }
    if (rc == 0 && !last) /* pending again: to be retried by anyone */
        rc = store__tasks_notify(c, e);
    rc = tx_end(c, rc, e);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_task_error(struct store *st, const struct store_task *t, const char *owner, const char *msg,
                     int max_attempts, int64_t machine_ms, struct err *e)
{
    int rc, n = 0;
    do
        rc = task_error_tx(st, t, owner, msg, max_attempts, machine_ms, e);
    while (store__tx_again(st, rc, &n, e));
    return rc;
}

/* ---- the rows the API and the export read ----------------------------------------- */

void store_task_rows_free(struct store_task_row *r, int n)
{
    for (int i = 0; i < n; i++) {
        free(r[i].state);
        free(r[i].message);
    }
    free(r);
}

int store_tasks_page(struct store *st, int64_t job_pk, const char *stage, int64_t after, int limit,
                     struct store_task_row **rows, int *n, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    struct store_task_row *r = NULL;
    int cnt = 0;
    *rows = NULL;
    *n = 0;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_prepare(c, "SELECT task_no, state, progress, done_items, failed_items, n_items, attempts, message,"
                       " event_ms FROM tasks WHERE job_pk=?1 AND stage_id=?2 AND task_no>?3 ORDER BY task_no"
                       " LIMIT ?4", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, job_pk);
        db_bind_text(q, 2, stage);
        db_bind_int64(q, 3, after);
        db_bind_int64(q, 4, limit);
        r = xcalloc((size_t)MAX(limit, 1), sizeof *r);
        while (cnt < limit && (rc = db_step(q, e)) == DB_ROW) {
            struct store_task_row *t = &r[cnt++];
            const char *s = db_col_text(q, 1), *m = db_col_text(q, 7);
            t->task_no = (int)db_col_int64(q, 0);
            t->state = xstrdup(s ? s : "");
            t->has_progress = !db_col_null(q, 2);
            t->progress = db_col_double(q, 2);
            t->done_items = (int)db_col_int64(q, 3);
            t->failed_items = (int)db_col_int64(q, 4);
            t->n_items = (int)db_col_int64(q, 5);
            t->attempts = (int)db_col_int64(q, 6);
            t->message = m ? xstrdup(m) : NULL;
            t->event_ms = db_col_int64(q, 8);
        }
        if (rc > 0)
            rc = 0;
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    if (rc < 0) {
        store_task_rows_free(r, cnt);
        return rc;
    }
    *rows = r;
    *n = cnt;
    return 0;
}

int store_tasks_done_numbers(struct store *st, int64_t job_pk, int **nos, int *n, struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    int cap = 0;
    *nos = NULL;
    *n = 0;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_prepare(c, "SELECT task_no FROM tasks WHERE job_pk=?1 AND stage_id='processing'"
                       " AND state='done' ORDER BY task_no", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, job_pk);
        while ((rc = db_step(q, e)) == DB_ROW) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                *nos = xrealloc(*nos, (size_t)cap * sizeof **nos);
            }
            (*nos)[(*n)++] = (int)db_col_int64(q, 0);
        }
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    return rc;
}

static int64_t *state_slot(struct store_state_counts *o, bool tasks, const char *s)
{
    if (tasks)
        return !strcmp(s, "waiting") ? &o->tasks_waiting
             : !strcmp(s, "pending") ? &o->tasks_pending
             : !strcmp(s, "running") ? &o->tasks_running
             : !strcmp(s, "done")    ? &o->tasks_done
             : !strcmp(s, "aborted") ? &o->tasks_aborted : NULL;
    return !strcmp(s, "running")   ? &o->jobs_running
         : !strcmp(s, "succeeded") ? &o->jobs_succeeded
         : !strcmp(s, "failed")    ? &o->jobs_failed
         : !strcmp(s, "aborted")   ? &o->jobs_aborted : NULL;
}

int store_jobs_state_counts(struct store *st, struct store_state_counts *out, struct err *e)
{
    static const char *const sql[2] = {"SELECT state, COUNT(*) FROM tasks GROUP BY state",
                                       "SELECT state, COUNT(*) FROM jobs GROUP BY state"};
    struct store_state_counts o;
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    int rc = store__jobs_conn(st, &c, e);

    if (rc < 0)
        return rc;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < 2 && rc >= 0; i++) {
        rc = db_prepare(c, sql[i], &q, e);
        while (rc >= 0 && (rc = db_step(q, e)) == DB_ROW) {
            const char *s = db_col_text(q, 0);
            int64_t *slot = s ? state_slot(&o, i == 0, s) : NULL;
            if (slot)
                *slot = db_col_int64(q, 1);
        }
        db_finalize(q);
        q = NULL;
    }
    store__jobs_conn_release(st, c);
    if (rc < 0)
        return rc;
    *out = o;
    return 0;
}
