/*
 * jobs_int.h — private to the owner files of the jobs tables under
 * src/store/ (jobs.c, tasks.c, job_logs.c, jobs_schema.c): the pieces of
 * a state change that several of them put into one transaction; outbox.c
 * logs a workflow sink's delivery that failed for good in its job.
 */
#ifndef VBATCH_STORE_JOBS_INT_H
#define VBATCH_STORE_JOBS_INT_H

#include "store/db.h"
#include "store/store_int.h"
#include "store/store_jobs.h"

/* jobs_schema.c: one statement text per migration of each backend. */
extern const char *const store__jobs_migrations_sqlite[];
extern const int store__jobs_migrations_sqlite_n;
extern const char *const store__jobs_migrations_pg[];
extern const int store__jobs_migrations_pg_n;

/* job_logs.c: insert a log row (payload stolen) inside c's transaction;
 * task_no 0 = none. */
int store__job_log(struct db_conn *c, int64_t job_pk, const char *severity, const char *module,
                   const char *log_type, json_t *payload, const char *stage, int task_no, struct err *e);
/* job_logs.c: the payload text of the job's latest log row of log_type
 * (malloc'd), or NULL in *out when none. */
int store__job_log_last(struct db_conn *c, int64_t job_pk, const char *log_type, char **out, struct err *e);

/* jobs.c, inside c's transaction: */
/* store_job_end_error's work. */
int store__job_end_error(struct db_conn *c, int64_t job_pk, const char *state, const char *msg,
                         const char *log_type, struct err *e);
/* Queue the job's webhook (no-op without notificationsURL). */
int store__job_webhook(struct db_conn *c, int64_t job_pk, bool success, struct err *e);

/* tasks.c, inside c's transaction: wake the idle workers of every process
 * (PostgreSQL NOTIFY vbatch_tasks, sent at commit; no-op on SQLite) — in
 * every transaction that makes a task claimable: job created or
 * restarted, task released, retried, or completed (the export task
 * queued, a slot of the job's caps freed). */
int store__tasks_notify(struct db_conn *c, struct err *e);

/* Borrow a connection of st's database: 0, or the code with the reason
 * in *e (the server cannot be reached). */
int store__jobs_conn(struct store *st, struct db_conn **c, struct err *e);
void store__jobs_conn_release(struct store *st, struct db_conn *c);

/* tasks.c: after a transition's transaction ended with rc, whether to run
 * it again (ERR_AGAIN on PostgreSQL: a deadlock or serialization victim,
 * rolled back whole; at most STORE_TX_TRIES runs, *n counts them, starting
 * at 0).  Logs the reason, clears *e and sleeps a few ms before saying yes. */
#define STORE_TX_TRIES 5
bool store__tx_again(struct store *st, int rc, int *n, struct err *e);

#endif
