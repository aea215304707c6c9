/*
 * store_jobs.h — the tables of the Batch Processing service: jobs, stages,
 * tasks and job_logs (migration component "jobs").  Their owner files are
 * src/store/jobs.c (jobs and stages: creation, restart, the rows the API
 * shows, the end of a job and its webhook), src/store/tasks.c (the tasks:
 * the SQL of the lease state machine whose diagram is at the top of
 * src/jobs/lease.c) and src/store/job_logs.c (the log rows); the schema is
 * in src/store/jobs_schema.c.  Only those files write SQL for these
 * tables; src/jobs/ calls the typed functions below.  The live worker
 * pool (table workers, same component) is src/store/workers.c's.
 *
 * Every function that changes state does the whole change in one
 * transaction (a job's webhook is queued into the outbox in the
 * transaction that ends the job), so any process may die at any instant.
 *
 * Strings in the row structs are owned by the struct (released by the
 * matching _release/_free call); a NULL column reads as NULL.
 * Errors (base.h): 0 or a negative code with the reason in *e (may be
 * NULL): ERR_NOTFOUND (no such row, or a lease no longer held),
 * ERR_EXISTS (a conflict), ERR_AGAIN (database busy), ERR_NOSPACE,
 * ERR_UNAVAILABLE, ERR_INTERNAL.
 * Thread safety: every function may be called from any thread.
 */
#ifndef VBATCH_STORE_JOBS_H
#define VBATCH_STORE_JOBS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "store/store.h"

#define STORE_STAGE_PROC "processing"
#define STORE_STAGE_EXPORT "export"

/* Apply the "jobs" migrations (jobs_new calls it). */
int store_jobs_migrate(struct store *st, struct err *e);

/* ---- jobs and stages (store/jobs.c) -------------------------------------- */

/* Find a job by (ws, job_id): *pk (0 when absent, which is not an error)
 * and, when def is not NULL, *def (malloc'd canonical definition). */
int store_job_find(struct store *st, const char *ws, const char *job_id, int64_t *pk, char **def, struct err *e);

/* A job to create (borrowed strings; NULL where optional). */
struct store_job_new {
    const char *ws, *job_id, *name;
    const char *definition;   /* canonical JSON of the posted body */
    const char *wf_def;       /* workflow snapshot */
    const char *image_input, *outputs; /* outputs: JSON array text */
    const char *batch, *part;
    const char *agg_format;
    bool persist;
    const char *persist_list; /* JSON array text or NULL */
    const char *params;       /* JSON object text */
    const char *notif_url;    /* or NULL */
    int64_t timeout_s;
    int64_t max_parallel;     /* 0: unset (NULL) */
    double max_fail_rate;     /* < 0: unset (NULL) */
    int workers;
    const char *machine_type;
    int64_t items_total;
};
/* One planned processing task: the items with after_id < id <= last_id. */
struct store_task_range {
    int64_t after_id, last_id;
    int n;
};
/* Create the job (state running, stage processing), its two stages
 * (processing with ntasks tasks, export with 1), its tasks (processing
 * 1..ntasks pending, export 1 waiting) and a "job-created" log row with
 * log_payload (stolen), in one transaction.  ERR_EXISTS when (ws, job_id)
 * exists already (created concurrently). */
int store_job_create(struct store *st, const struct store_job_new *jn, const struct store_task_range *tasks,
                     int ntasks, json_t *log_payload, int64_t *pk, struct err *e);

/* Delete a job that is not running (DELETE …/jobs/{job}): its stages,
 * tasks and logs (cascade) and its output batches (store_batch_delete's
 * two steps: made invisible in the same transaction, blobs and rows
 * removed after it; the expiry sweep finishes what a crash leaves).
 * ERR_NOTFOUND; ERR_EXISTS while it runs (abort it first). */
int store_job_delete(struct store *st, const char *ws, const char *job_id, struct err *e);

/* A job as the API shows it (JobMetadata), with the sums over its tasks. */
struct store_job_row {
    int64_t pk;
    char *job_id, *name, *definition, *state;
    char *current_stage, *message; /* NULL when unset */
    char *restart_overrides;       /* JSON array text */
    int64_t created_ms, updated_ms, items_total, machine_ms;
    int64_t images_done;   /* done items of the processing tasks done */
    int64_t images_failed; /* failed items of the processing tasks done or aborted */
    int64_t last_event_ms; /* latest task event (0: none) */
    double progress_items; /* sum over processing tasks of progress x n_items */
    bool started;          /* a task was ever claimed or done */
};
void store_job_row_release(struct store_job_row *r);
void store_job_rows_free(struct store_job_row *r, int n);
/* ERR_NOTFOUND (no message) when absent. */
int store_job_get(struct store *st, const char *ws, const char *job_id, struct store_job_row *r, struct err *e);
/* The jobs of ws with pk < before (0: from the newest), newest first, at
 * most limit rows; *rows malloc'd (store_job_rows_free). */
int store_jobs_page(struct store *st, const char *ws, int64_t before, int limit, struct store_job_row **rows,
                    int *n, struct err *e);

/* A stage of a job with the counts of its tasks. */
struct store_stage_row {
    char *stage_id, *name, *output_batch;
    int tasks_number, done, running, aborted;
    int64_t start_ms;         /* when the job was created */
    bool has_started;         /* some task was claimed: first_started_ms is set */
    int64_t first_started_ms;
    int64_t last_event_ms;
    double progress_sum;      /* sum of the tasks' progress */
    int64_t images_done, images_failed;
};
void store_stage_rows_free(struct store_stage_row *r, int n);
/* The stages of job_pk, processing first. */
int store_job_stages(struct store *st, int64_t job_pk, struct store_stage_row **rows, int *n, struct err *e);

/* End a running job with an error in one transaction: state (failed or
 * aborted) and msg, its unfinished tasks aborted, an error log row of
 * log_type, the webhook "fail".  No-op (0) when it is no longer running. */
int store_job_end_error(struct store *st, int64_t job_pk, const char *state, const char *msg, const char *log_type,
                        struct err *e);

/* The override of a restart (0 / < 0 / NULL: keep the job's value). */
struct store_job_restart {
    const json_t *override; /* appended to restart_overrides (NULL: {}) */
    int64_t timeout_s, max_parallel;
    double max_fail_rate;
    int workers;
    const char *machine_type;
    json_t *log_payload;    /* "job-restarted" log row payload, stolen */
};
/* Restart an ended job in one transaction: running again, current stage
 * processing when a processing task is left (or had failures) else
 * export, those processing tasks pending again with zeroed counts, the
 * export task waiting (or pending), a log row.  ERR_EXISTS (no message)
 * when the job is running or succeeded, its state in state_out[16]. */
int store_job_restart(struct store *st, int64_t job_pk, struct store_job_restart *r, char state_out[16],
                      struct err *e);

/* What a worker reads of a job. */
struct store_job_run {
    char ws[STORE_WS_MAX + 1];
    char job_id[32];
    char *batch, *part, *wf_def, *image_input, *params, *persist_list, *agg_format, *outputs, *definition;
    bool persist, has_fail_rate;
    char state[16];
    char machine_type[8];
};
void store_job_run_release(struct store_job_run *r);
/* ERR_NOTFOUND when absent. */
int store_job_run_get(struct store *st, int64_t job_pk, struct store_job_run *r, struct err *e);

/* ---- tasks: the lease state machine (store/tasks.c) ------------------------ */

/* One task as a worker sees it. */
struct store_task {
    int64_t pk, job_pk;
    char stage[16];
    int task_no;
    int64_t after_id, last_id;
    int n_items;
    int attempts;
};
/* ERR_NOTFOUND when absent. */
int store_task_get(struct store *st, int64_t pk, struct store_task *t, struct err *e);

struct store_claim {
    const char *owner;   /* the lease owner */
    const char *process; /* the process it belongs to (owner or its prefix before "-") */
    int64_t now_ms, lease_ms;
    int max_attempts;
};
/* Claim one task in one transaction: the first (by job, task) pending
 * task, or running one whose lease expired, of a running job whose
 * maxParallelTasks and workersPerMachine (tasks leased to c->process)
 * leave room.  A task already claimed max_attempts times fails its job
 * instead (*task_pk stays 0).  An expired lease is logged.  *task_pk = 0
 * when none is claimable. */
int store_task_claim(struct store *st, const struct store_claim *c, int64_t *task_pk, struct err *e);
/* Renew the lease (deadline now_ms + lease_ms), record progress, add
 * machine_ms to the job (failing it when its processing timeout is spent),
 * in one transaction.  *lost = true when the task is no longer owner's or
 * its job no longer runs. */
int store_task_heartbeat(struct store *st, int64_t task_pk, int64_t job_pk, const char *owner, int64_t now_ms,
                         int64_t lease_ms, int64_t machine_ms, double progress, bool *lost, struct err *e);

/* A failed image of a task, logged at completion. */
struct store_image_fail {
    char *file;  /* owned */
    char *cause; /* owned */
};
/* Task done: counts, failures logged, machine time, then for a
 * processing task the failure-rate check and the move to export when it
 * was the last, for the export task the end of the job (succeeded, or
 * failed when no image succeeded) with its webhook.  ERR_NOTFOUND when the
 * lease was lost (nothing changed). */
int store_task_complete(struct store *st, const struct store_task *t, const char *owner, int done_items,
                        int failed_items, const struct store_image_fail *fails, int nfails, int64_t machine_ms,
                        struct err *e);
/* The failure budget is spent: the task aborted with its failures logged,
 * the job failed with msg.  ERR_NOTFOUND when the lease was lost. */
int store_task_fail_job(struct store *st, const struct store_task *t, const char *owner, int done_items,
                        const struct store_image_fail *fails, int nfails, const char *msg, int64_t machine_ms,
                        struct err *e);
/* Hand a running task back: pending, this claim not counted, msg. */
int store_task_release(struct store *st, const struct store_task *t, const char *owner, const char *msg,
                       struct err *e);
/* The attempt failed with msg: pending again (aborted, and the job
 * failed, once t->attempts reached max_attempts), logged.  ERR_NOTFOUND
 * when the lease was lost. */
int store_task_error(struct store *st, const struct store_task *t, const char *owner, const char *msg,
                     int max_attempts, int64_t machine_ms, struct err *e);

/* A task as the API shows it (TaskStatus). */
struct store_task_row {
    int task_no;
    char *state;
    bool has_progress;
    double progress;
    int done_items, failed_items, n_items, attempts;
    char *message; /* NULL when unset */
    int64_t event_ms;
};
void store_task_rows_free(struct store_task_row *r, int n);
/* Tasks of (job_pk, stage) with task_no > after, by task_no, at most limit. */
int store_tasks_page(struct store *st, int64_t job_pk, const char *stage, int64_t after, int limit,
                     struct store_task_row **rows, int *n, struct err *e);
/* Task numbers of the job's processing tasks that are done, ascending
 * (*nos malloc'd). */
int store_tasks_done_numbers(struct store *st, int64_t job_pk, int **nos, int *n, struct err *e);

/* How many tasks and jobs each state holds, over every workspace (the
 * gauges of GET /metrics, read at scrape time).  Fills the counts of the
 * states named in the schema (tasks: waiting, pending, running, done,
 * aborted; jobs: running, succeeded, failed, aborted); a state not there
 * reads 0.  One read transaction-free pass over the (state, job_pk) index
 * and the jobs table. */
struct store_state_counts {
    int64_t tasks_waiting, tasks_pending, tasks_running, tasks_done, tasks_aborted;
    int64_t jobs_running, jobs_succeeded, jobs_failed, jobs_aborted;
};
int store_jobs_state_counts(struct store *st, struct store_state_counts *out, struct err *e);

/* ---- job logs (store/job_logs.c) ------------------------------------------- */

struct store_job_log_row {
    int64_t id, created_ms;
    char *severity, *module, *log_type, *payload; /* payload: JSON object text */
    char *stage_id;  /* NULL when unset */
    int task_no;     /* 0 when unset */
};
void store_job_log_rows_free(struct store_job_log_row *r, int n);
/* Log rows of job_pk with id > after (severity NULL: all), by id, at most
 * limit. */
int store_job_logs_page(struct store *st, int64_t job_pk, const char *severity, int64_t after, int limit,
                        struct store_job_log_row **rows, int *n, struct err *e);

/* ---- wake-ups of idle workers (store/tasks.c) -------------------------------- */

/* On PostgreSQL every transaction that makes a task claimable (job
 * created or restarted, task released, retried or completed) sends NOTIFY
 * vbatch_tasks; a listener waits for it on a connection of its own.
 * store_tasks_listen: ERR_UNSUPPORTED on SQLite (nothing to listen to:
 * keep polling), ERR_UNAVAILABLE when the server cannot be reached.
 * store_tasks_wait: 1 when notified (or reconnected after a loss: look for
 * work), 0 on timeout or store_tasks_wake, ERR_UNAVAILABLE when the
 * connection was lost (later calls reconnect).  store_tasks_wake may be
 * called from any thread; the others belong to one thread. */
struct store_tasks_listener;
int store_tasks_listen(struct store *st, struct store_tasks_listener **out, struct err *e);
int store_tasks_wait(struct store_tasks_listener *l, int64_t timeout_ms, struct err *e);
void store_tasks_wake(struct store_tasks_listener *l);
void store_tasks_listen_close(struct store_tasks_listener *l); /* NULL ok */

/* ---- the live worker pool (store/workers.c) ---------------------------------- */

#define STORE_WORKER_ID_MAX 200

/* One process that runs job workers (borrowed strings). */
struct store_worker {
    const char *id;     /* "host:pid:random", at most STORE_WORKER_ID_MAX bytes */
    const char *host;
    int64_t pid;
    int threads;        /* its job worker threads */
    const char *kind;   /* "gpu", "cpu", or NULL when not known */
    int64_t started_ms; /* wall clock */
};
/* Register w or renew its row (seen at now_ms): the start and every
 * heartbeat of a worker process.  A row deleted meanwhile as dead (the
 * process was stopped or cut off for a while) is written again. */
int store_worker_beat(struct store *st, const struct store_worker *w, int64_t now_ms, struct err *e);
/* Delete the row (a clean stop); no row is not an error. */
int store_worker_remove(struct store *st, const char *id, struct err *e);
/* The live pool: rows seen at or after now_ms - dead_after_ms; older rows
 * are deleted first (dead processes, cleaned lazily). */
struct store_pool {
    int64_t processes;   /* live worker processes */
    int64_t threads;     /* their worker threads in all */
    int64_t gpu_threads; /* of which in processes of kind "gpu" */
};
int store_workers_live(struct store *st, int64_t now_ms, int64_t dead_after_ms, struct store_pool *out,
                       struct err *e);

#endif
