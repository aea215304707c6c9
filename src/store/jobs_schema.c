/*
 * jobs_schema.c — the schema of the jobs tables (migration component
 * "jobs"): jobs, stages, tasks, job_logs.  Each array element is one
 * migration; never edit an applied one, append.
 */
#include "store/jobs_int.h"

/* SQLite: the list as it was in src/jobs/jobs.c (existing data folders
 * have these applied). */
const char *const store__jobs_migrations_sqlite[] = {
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
const int store__jobs_migrations_sqlite_n = (int)ARRAY_LEN(store__jobs_migrations_sqlite);

/* PostgreSQL: EMPTY for now — the `db` branch (db_pg.c) writes this list
 * (the same tables with PostgreSQL types: BIGINT GENERATED ALWAYS AS
 * IDENTITY for the AUTOINCREMENT keys, DOUBLE PRECISION for REAL).  Until
 * then the jobs tables do not exist on PostgreSQL. */
const char *const store__jobs_migrations_pg[] = {NULL};
const int store__jobs_migrations_pg_n = 0;
