/*
 * jobs — the Batch Processing service: jobs, their stages and tasks, the
 * planner, the worker loop (leases, heartbeats, processing through the
 * workflow engine), the export stage (aggregated JSONL/CSV and .tar.gz
 * archives of image outputs) and job webhooks through the store's outbox.
 *
 * Like staging/, it answers the Batch Processing API with ready-to-send
 * JSON shaped as spec/COMPAT.md sections 1-4 say, so the HTTP handlers stay
 * thin: call one function, send the JSON (200) or its error (the code
 * mapped to a status in src/api/, the message from the struct err).
 *
 * State lives only in the store (tables jobs, stages, tasks, job_logs of
 * the "jobs" migration component, reached through the typed calls of
 * store/store_jobs.h: no SQL in this module) and in blobs at
 * deterministic keys, so
 * any process may die at any instant: a task whose lease is not renewed is
 * claimed again by another worker and its outputs overwritten, never
 * duplicated.  docs/JOBS.md describes the lifecycle and the layout.
 *
 * Thread safety: every function may be called from any thread.
 * jobs_start/stop/free from one thread.
 * Returned JSON (json_t **out): a new reference, the caller json_decref()s.
 * Errors (base.h): 0 or a negative code, the reason written into the last
 * parameter `struct err *err` (may be NULL): ERR_INVALID/ERR_PARSE (bad
 * definition), ERR_NOTFOUND, ERR_EXISTS (conflict), ERR_AGAIN (database
 * busy), ERR_NOSPACE (storage full), others (internal).
 */
#ifndef VBATCH_JOBS_H
#define VBATCH_JOBS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "staging/staging.h"
#include "store/store.h"
#include "workflow/workflow.h"

struct jobs;

struct jobs_opts {
    int workers;               /* worker threads started by jobs_start; default 2 (0 = none) */
    const char *worker_id;     /* lease owner prefix; default "<host>-<pid>"; copied */
    int64_t lease_ms;          /* task lease; renewed by heartbeat; default 15000 */
    int64_t heartbeat_ms;      /* lease renewal / progress period; default 1000 */
    int64_t poll_ms;           /* idle worker sleep between claim attempts; default 200 */
    int64_t listen_poll_ms;    /* the same while a PostgreSQL LISTEN wakes idle workers (the
                                  poll is then only the fallback); default 2000, or
                                  $VBATCH_JOBS_IDLE_POLL_MS (tests) */
    int64_t pool_beat_ms;      /* worker pool heartbeat (the workers table); a row 3 beats
                                  old is a dead process's; default 3000 */
    int max_task_items;        /* items per processing task; default 500 */
    int max_attempts;          /* claims of one task before the job fails; default 8 */
    int64_t archive_max_bytes; /* bound of one image-outputs .tar.gz; default 256 MiB */
    int64_t row_max_bytes;     /* bound of one results row; default 16 MiB */
    int64_t item_delay_ms;     /* throttle: sleep this long per image and per archived
                                  file (crash/abort tests, benchmarks); default 0, or
                                  $VBATCH_JOBS_ITEM_DELAY_MS */
    /* Model provider handed to the workflow engine (NULL: model steps fail
     * with a clear error).  Borrowed; must outlive the service. */
    wf_model_infer_fn model_infer;
    void *model_ud;
    /* Optional companion of model_infer over the same model_ud
     * (jobs_model_prepare): the decode-ahead thread pre-processes the next
     * image for the workflow's model steps with it.  Used when there is no
     * model_select (which gives its own). */
    wf_model_prepare_fn model_prepare;
    /* Machine types (computeConfiguration.machineType).  NULL: every job
     * runs on model_infer/model_ud and a "gpu" job is refused with 400.
     * Otherwise model_select(model_select_ud, machine_type, workspace,
     * needs_models, &fn, &prep, &fn_ud, err, errlen) gives the provider for
     * a job's machine type and workspace (whose models its model ids name)
     * and its prepare companion over the same fn_ud (may be set to NULL)
     * (jobs_models_select); called with fn NULL at POST/restart time, it
     * only checks (no model may be loaded then) and its error refuses the
     * job with 400.  needs_models: the workflow has model steps. */
    int (*model_select)(void *ud, const char *machine_type, const char *workspace, bool needs_models,
                        wf_model_infer_fn *fn, wf_model_prepare_fn *prep, void **fn_ud, char *err,
                        size_t errlen);
    void *model_select_ud;
    /* What workflow sink and secrets blocks may touch (borrowed; must
     * outlive the service).  sink_folder: the only folder local_file_sink
     * writes (absolute; NULL: the block is refused); secrets_env:
     * NULL-terminated names of the environment variables
     * environment_secrets_store may read (NULL: none).  webhook_sink always
     * queues its POSTs in the store's outbox (SSRF guard of
     * store_net_check_url, idempotency_key "<job>/<item>/<frame>/<step>" added
     * to the payload). */
    const char *sink_folder;
    const char *const *secrets_env;
    /* s3_sink's bucket (borrowed; NULL: the block is refused).  Objects
     * are named "<s3_prefix>/<file_name_prefix>_<job>_<item>_<frame>_<step>.<ext>":
     * a retried task overwrites them with the same content. */
    struct store_s3sink *sink_s3;
    /* slack_notification's Slack Web API base URL (borrowed; NULL: the
     * block is refused); its POSTs go through the outbox like webhook_sink's. */
    const char *slack_api_url;
};
void jobs_opts_default(struct jobs_opts *o);

/* Create the service over an open store and staging context (borrowed;
 * they must outlive it): applies the "jobs" migrations.  Free with
 * jobs_free(). */
int jobs_new(struct store *st, struct staging *sg, const struct jobs_opts *o, struct jobs **out, struct err *err);
/* Start o->workers worker threads (no-op when 0). */
int jobs_start(struct jobs *j);
/* Ask the workers to stop and join them; a task in hand is left with its
 * lease, to be claimed again when the lease expires (idempotent). */
void jobs_stop(struct jobs *j);
void jobs_free(struct jobs *j); /* stops first; NULL ok */
/* The live worker pool over every process on the database: worker
 * processes and their threads in all (rows of dead processes are deleted
 * on the way). */
int jobs_pool(struct jobs *j, int64_t *processes, int64_t *threads, struct err *err);

/* ---- API ------------------------------------------------------------------ */

/* POST /jobs/{job_id}?name=…  body: the parsed WorkflowProcessingJobV1
 * (borrowed).  Validates every field (video jobs and TRT compilation jobs
 * -> ERR_INVALID with a clear message), snapshots the workflow, plans the
 * tasks and commits everything in one transaction.  The same definition
 * posted again -> 0 (*created false); a different one -> ERR_EXISTS.
 * *out = {"status":"ok","jobId":…,"created":bool}. */
int jobs_create(struct jobs *j, const char *ws, const char *job_id, const char *name,
                const json_t *body, json_t **out, struct err *err);
/* Check a job definition's shape and values alone (no store: the batch,
 * the workflow and the notificationsURL address are not looked at).
 * 0 or ERR_INVALID with the reason in *err.  The fuzz target's entry. */
int jobs_definition_check(const json_t *body, struct err *err);
/* Every answer below carries "status": "ok" (the seed documents it on every
 * 2xx answer).
 *
 * GET /jobs/{id} -> {"status":"ok","jobStatus","progress","job": JobMetadata}:
 * jobStatus pending|processing|completed|failed|aborted (docs/JOBS.md),
 * progress the value of job.lastNotification.progress (0..1). */
int jobs_get(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err);
/* GET /jobs -> {"status":"ok","jobs":[JobMetadata…],"nextPageToken":…|null}, newest first */
int jobs_list(struct jobs *j, const char *ws, int page_size, const char *token, json_t **out, struct err *err);
/* GET /jobs/{id}/stages -> {"status":"ok","stages":[JobStageDetails…]} */
int jobs_stages(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err);
/* GET /jobs/{id}/stages/{stage}/tasks -> {"status":"ok","tasks":[TaskStatus…],"nextPageToken":…} */
int jobs_tasks(struct jobs *j, const char *ws, const char *job_id, const char *stage, int page_size,
               const char *token, json_t **out, struct err *err);
/* POST /jobs/{id}/abort -> {"status":"ok","jobId","job":JobMetadata}: a
 * running job ends at once (error, webhook "fail"); its workers drop their
 * tasks at their next heartbeat check.  A terminal job is left as it is. */
int jobs_abort(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err);
/* DELETE /jobs/{id} -> {"status":"ok","jobId","deleted":true}: the job,
 * its stages, tasks, logs and output batches (store_job_delete);
 * ERR_EXISTS while it runs (abort it first). */
int jobs_delete(struct jobs *j, const char *ws, const char *job_id, json_t **out, struct err *err);
/* POST /jobs/{id}/restart, body NULL or {"type":"parameters-override-v1",…}.
 * Only a job that ended with an error may be restarted (ERR_EXISTS for a
 * running or succeeded one); unfinished and failed tasks are queued again. */
int jobs_restart(struct jobs *j, const char *ws, const char *job_id, const json_t *body, json_t **out, struct err *err);
/* GET /jobs/{id}/logs -> {"status":"ok","logs":[JobLog…],"nextPageToken":…}; severity NULL = all */
int jobs_logs(struct jobs *j, const char *ws, const char *job_id, const char *severity, int page_size,
              const char *token, json_t **out, struct err *err);

/* ---- worker loop (also for `vbatch worker` and tests) ------------------------ */

/* Claim one task (as owner 'worker') and run it to the end in the calling
 * thread.  *did = true when a task was run.  Returns <0 only for store
 * failures. */
int jobs_work_once(struct jobs *j, const char *worker, bool *did);

/* ---- model provider ------------------------------------------------------------ */

struct model_registry;
/* Open a model registry for the workers: ONNX Runtime loaded lazily,
 * intra_threads per session (0 = ORT default), models registered from
 * data_dir/models (when it exists) and from extra_dir (may be NULL; an
 * error when given but unreadable); the registry writes no folder (stored
 * models: jobs_models_store_sync / _put below).  *out freed with
 * model_registry_free. */
int jobs_models_open(const char *data_dir, const char *extra_dir, int intra_threads,
                     struct model_registry **out, char *err, size_t errlen);
/* wf_model_infer_fn over a struct model_registry * (ud): put it with the
 * registry into jobs_opts.model_infer / model_ud.  It sees the operator's
 * models only (no workspace: see jobs_models_select). */
int jobs_model_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                     size_t n, json_t **out, char *err, size_t errlen);

/* wf_model_prepare_fn over the same registry (jobs_opts.model_prepare). */
int jobs_model_prepare(void *ud, const struct wf_model_request *req, struct vis_image *img, char *err,
                       size_t errlen);

/* Per-machine-type providers over the cpu registry (borrowed; it must
 * outlive *out) of jobs_models_open: "cpu" -> jobs_model_infer on it;
 * "gpu" -> a second registry opened with machine_type "gpu" over the same
 * folders, created on the first check and loaded on the first gpu task
 * (refused with a clear message when ONNX Runtime has no CUDA/TensorRT
 * execution provider).  Free with jobs_models_free after jobs_free. */
struct jobs_models;
int jobs_models_new(struct model_registry *cpu, const char *data_dir, const char *extra_dir,
                    int intra_threads, struct jobs_models **out);
void jobs_models_free(struct jobs_models *m); /* accepts NULL */
/* jobs_opts.model_select over a struct jobs_models * (ud).  "cpu" with
 * needs_models checks that ONNX Runtime loads.  The provider looks model
 * ids up as workspace sees them (its own models first, then the
 * operator's; model/model.h "Scopes"); *fn_ud lives as long as ud.  <0
 * with a message. */
int jobs_models_select(void *ud, const char *machine_type, const char *workspace, bool needs_models,
                       wf_model_infer_fn *fn, wf_model_prepare_fn *prep, void **fn_ud, char *err,
                       size_t errlen);

/* ---- models stored in the blob store + the models table (docs/MODELS.md) ---- */

struct store;
/* Stored models have a scope (model/model.h "Scopes"): workspace NULL for
 * the operator's (the CLI without --workspace; rows stored before models
 * had workspaces), else the workspace that registered it over HTTP.  The
 * table's key is (workspace, model_id), '' standing for the operator. */

/* Register model_id in scope workspace from bytes (metadata as
 * model_registry_register_bytes): the model is built and checked first,
 * then its weights and metadata are written as blobs under a new
 * generation folder (models/<id, '/' as "--">/<uuid>/ for the operator,
 * wsmodels/<workspace>/<id, '/' as "--">/<uuid>/ for a workspace), then
 * the models row is switched to them in one transaction, then the model is
 * put into reg, then the previous generation's blobs are deleted.  <0 with
 * the reason in *err: ERR_INVALID a bad model (ERR_LIMIT, ERR_NOMEM and
 * ERR_AGAIN as register_bytes gives them), then the store's codes for
 * writing it ("cannot store model ...": ERR_AGAIN database busy,
 * ERR_NOSPACE storage full, others internal). */
int jobs_models_store_put(struct store *st, struct model_registry *reg, const char *workspace,
                          const char *model_id, const void *onnx, size_t len, const json_t *metadata,
                          struct err *err);
/* The same from a model folder (model_artefacts_read_dir): the CLI. */
int jobs_models_store_put_dir(struct store *st, struct model_registry *reg, const char *workspace,
                              const char *model_id, const char *dir, struct err *err);
/* Delete the row of (workspace, model_id), then that model from reg (when
 * reg holds the stored one), then the blobs.  ERR_NOTFOUND when the table
 * has no such row (a model of a models folder is not in the table, nor is
 * another scope's model of the same id). */
int jobs_models_store_delete(struct store *st, struct model_registry *reg, const char *workspace,
                             const char *model_id, struct err *err);
/* Bring reg up to date with the table: load the rows whose generation reg
 * does not hold (a row whose blobs are missing or do not match the row's
 * size/sha256 is skipped with a warning and counted in *n_bad), and remove
 * the stored models whose row is gone.  n_loaded / n_bad may be NULL.  <0
 * only when the table cannot be read. */
int jobs_models_store_sync(struct store *st, struct model_registry *reg, int *n_loaded, int *n_bad);
/* Delete the generation folders models/<dn>/<gen>/ and
 * wsmodels/<ws>/<dn>/<gen>/ that no row names and
 * that are older than older_than_ms (left by a crash between the blob
 * writes and the commit, or by a failed deletion of a replaced
 * generation).  Returns how many were deleted, or <0. */
int jobs_models_store_sweep(struct store *st, int64_t older_than_ms);
/* The rows: [{"modelId","workspace" (absent: the operator's),"weightsKey","size","sha256",
 * "createdAt","updatedAt"}], by workspace then id. */
int jobs_models_store_list(struct store *st, json_t **out);
/* Let the providers of m re-read the models table (jobs_models_store_sync)
 * when a task asks for a model id they do not know, and every few seconds
 * while tasks run ($VBATCH_MODELS_SYNC_MS, default 5000), so that a model
 * registered by another process (the API of a server, the CLI) is found
 * without a restart.  st borrowed. */
void jobs_models_set_store(struct jobs_models *m, struct store *st);

/* ---- pieces exposed for unit tests ------------------------------------------- */

/* Planner: split items (ids ascending, shard ids may be NULL) into tasks
 * of at most max_items, cutting also where the shard changes.  Writes
 * task i's last item index (exclusive end) into ends[i]; returns the task
 * count (>= 1 even for no items: one empty task, so tasksNumber is never
 * 0).  ends must hold n + 1 entries. */
int jobs_plan_split(const struct staging_item *items, int n, int max_items, int *ends);

/* Claim with an explicit clock (tests): 0 and *task_pk (>0) when a task
 * was leased to owner, 0 and *task_pk = 0 when none is claimable. */
int jobs_claim(struct jobs *j, const char *owner, int64_t now_ms, int64_t *task_pk);
/* Renew the lease; ERR_NOTFOUND when the task is no longer this owner's
 * or its job is no longer running (the worker must stop). */
int jobs_heartbeat(struct jobs *j, int64_t task_pk, const char *owner, int64_t now_ms,
                   int64_t machine_ms, double progress);

/* Aggregation writers (export): one row (object) at a time into a blob
 * writer.  CSV columns: 'columns' (output names) then "image"; list and
 * dict cells JSON-dumped; RFC 4180 quoting. */
int jobs_csv_header(struct buf *b, const char *const *columns, size_t n);
int jobs_csv_row(struct buf *b, const json_t *row, const char *const *columns, size_t n);
int jobs_jsonl_row(struct buf *b, const json_t *row);

#endif
