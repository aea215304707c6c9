/*
 * jobs_int.h — private declarations shared by the files of src/jobs/.
 */
#ifndef VBATCH_JOBS_INT_H
#define VBATCH_JOBS_INT_H

#include "jobs/jobs.h"

#include <pthread.h>

#include "base/base.h"
#include "store/store_jobs.h"

#define JOBS_ID_MAX 20
#define JOBS_STAGE_PROC STORE_STAGE_PROC
#define JOBS_STAGE_EXPORT STORE_STAGE_EXPORT
/* Defaults of a job definition (the seed's): computeConfiguration.
 * workersPerMachine, processingTimeoutSeconds. */
#define JOBS_WORKERS_DEFAULT 4
#define JOBS_TIMEOUT_S_DEFAULT 3600

struct jobs {
    struct store *st;          /* borrowed */
    struct staging *sg;        /* borrowed */
    struct jobs_opts o;        /* worker_id owned (o.worker_id points to owner_prefix) */
    char *owner_prefix;        /* owned */
    pthread_t *threads;        /* o.workers entries while started */
    int nthreads;              /* threads started */
    pthread_mutex_t mu;        /* guards stop/cv */
    pthread_cond_t cv;         /* signalled on stop and on new work */
    bool stopping;             /* set by jobs_stop; read by workers under mu */
    /* storage full (worker.c): no task is claimed before space_retry_at
     * (monotonic ms); space_backoff is the last delay (1 s doubling to
     * 30 s, reset by a task that goes through); guarded by mu */
    int64_t space_retry_at, space_backoff;
    /* the live worker pool (pool.c): this process's row while its workers
     * run; pool_thread renews it every o.pool_beat_ms */
    char *pool_id;             /* owned: "host:pid:random", NULL before jobs_start */
    char *pool_host;           /* owned */
    int64_t pool_started_ms;   /* wall clock */
    pthread_t pool_thread;
    bool pool_running;         /* pool_thread started and not joined */
    /* wake-ups from other processes (worker.c, PostgreSQL only): a thread
     * waits for NOTIFY vbatch_tasks and kicks the idle workers */
    struct store_tasks_listener *listener; /* owned, NULL on SQLite */
    pthread_t listen_thread;
    bool listen_running;       /* listen_thread started and not joined */
    bool listen_live;          /* the LISTEN connection is up (guarded by mu):
                                  idle workers poll every o.listen_poll_ms */
};

/* Everything a worker needs about a job, read in one query. */
struct jobs__job {
    int64_t pk;
    char ws[STORE_WS_MAX + 1];
    char job_id[JOBS_ID_MAX + 1];
    char *batch;         /* owned */
    char *part;          /* owned or NULL */
    char *wf_def;        /* owned: snapshot of the workflow definition */
    char *image_input;   /* owned */
    char *params;        /* owned JSON object text */
    char *persist_list;  /* owned JSON array text or NULL (all) */
    char *agg_format;    /* owned: "jsonl" | "csv" */
    char *outputs;       /* owned JSON array text of output names */
    bool persist;
    char state[16];
    char machine_type[8]; /* "cpu" | "gpu" */
    json_t *meta_map;    /* owned: imagesMetadataInputsMapping {input: key}, NULL when unset/empty */
    bool video;          /* simple-video-processing-v1: one video per task, a row per frame */
    double max_fps;      /* maxVideoFPS; 0 = every frame */
    char *meta_part;     /* owned: part of the sidecars when meta_map is set */
    bool has_fail_rate;  /* maxImageFailureRate set: it rules, not the failure budget */
    bool old_inference;  /* inferenceBackend "old-inference": the classic NMS (docs/MODELS.md) */
};
void jobs__job_release(struct jobs__job *jb);
/* Read job pk into *jb (release with jobs__job_release).  ERR_NOTFOUND. */
int jobs__job_load(struct jobs *j, int64_t pk, struct jobs__job *jb);

/* One task as the worker sees it: struct store_task (store/store_jobs.h). */
int jobs__task_load(struct jobs *j, int64_t pk, struct store_task *t);


/* Blob keys of a task's outputs (malloc'd). */
char *jobs__results_key(const struct jobs__job *jb, int task_no);
char *jobs__manifest_key(const struct jobs__job *jb, int task_no);
/* The task's failed images, one JSON line each {"image","stage","cause"}
 * (rewritten whole by a task run again; the export concatenates them). */
char *jobs__errors_key(const struct jobs__job *jb, int task_no);

/* The default failure budget (no maxImageFailureRate): a processing task
 * that sees this many consecutive images fail with the same cause stops
 * and fails the job; in a video, this many consecutive frames failing with
 * the same cause stop that video (one failed item). */
#define JOBS_FAIL_BUDGET 10

/* A failed image of a task, logged at completion: struct store_image_fail. */

/* Task completion (one transaction each).  For a processing task:
 * done/failed image counts and the failures to log; moves the stage and
 * the job on (export task queued when the last processing task is done,
 * failure-rate check).  ERR_NOTFOUND when the lease was lost (nothing
 * changed). */
int jobs__task_complete(struct jobs *j, const struct store_task *t, const char *owner, int done_items,
                        int failed_items, const struct store_image_fail *fails, int nfails,
                        int64_t machine_ms);
/* The failure budget is spent (JOBS_FAIL_BUDGET): in one transaction the
 * task is aborted (not done: a restart runs it again), its failures are
 * logged and the job fails with msg.  ERR_NOTFOUND when the lease was
 * lost. */
int jobs__task_fail_job(struct jobs *j, const struct store_task *t, const char *owner, int done_items,
                        const struct store_image_fail *fails, int nfails, const char *msg, int64_t machine_ms);
/* Hand a running task back (pending, this claim not counted) with msg as
 * its message: at shutdown, or while the storage is full. */
int jobs__task_release(struct jobs *j, const struct store_task *t, const char *owner, const char *msg);
/* Fail the task's attempt (error message); after max_attempts the job
 * fails.  ERR_NOTFOUND when the lease was lost. */
int jobs__task_error(struct jobs *j, const struct store_task *t, const char *owner, const char *msg,
                     int64_t machine_ms);

/* Run a claimed task (worker.c / export.c). */
struct jobs__worker {
    char owner[128];
    int64_t wf_job_pk;           /* job whose compiled workflow is cached, 0 = none */
    struct wf_workflow *wf;      /* owned cache */
    wf_model_infer_fn infer;     /* model provider of the task in hand */
    void *infer_ud;
    wf_model_prepare_fn prepare; /* its companion, or NULL */
    char infer_err[512];         /* why the machine type has no provider */
    /* inferenceBackend "old-inference": infer/prepare above wrap these
     * (over infer_ud = this worker), adding "nms_mode": "classic" */
    wf_model_infer_fn base_infer;
    void *base_ud;
    wf_model_prepare_fn base_prepare;
};
void jobs__worker_release(struct jobs__worker *w);
int jobs__run_process(struct jobs *j, struct jobs__worker *w, const struct store_task *t, struct err *err);
int jobs__run_export(struct jobs *j, struct jobs__worker *w, const struct store_task *t, struct err *err);

/* Heartbeat helper used during a task: renews at most every heartbeat_ms;
 * returns ERR_NOTFOUND when the worker must stop (lease lost, job no longer
 * running, timeout spent). */
struct jobs__hb {
    int64_t last_ms;   /* monotonic ms of the last renewal */
    int64_t start_ms;  /* monotonic ms when the attempt started */
    int64_t counted_ms;/* machine time already added to the job */
};
int jobs__hb_tick(struct jobs *j, struct jobs__hb *hb, const struct store_task *t, const char *owner,
                  double progress, bool force);

bool jobs__stopping(struct jobs *j);
/* Sleep o.item_delay_ms (no-op when 0). */
void jobs__throttle(struct jobs *j);

/* Make sure the output batch and part exist and, when file_name is not
 * NULL, that the file is an item of the part exactly once (the part is
 * searched by name first).  A part of content_type "archives" gets the
 * nestedContentType "image" (jobs archive only image outputs). */
int jobs__output_ensure(struct jobs *j, const char *ws, const char *batch, const char *part,
                        const char *content_type, const char *description, const char *file_name,
                        const char *item_type, const char *mime, const char *key, int64_t size, struct err *err);

/* pool.c: write this process's row of the worker pool and start its
 * heartbeat thread (jobs_start, after the workers); jobs__pool_leave
 * joins the thread (j->stopping set) and deletes the row. */
int jobs__pool_join(struct jobs *j);
void jobs__pool_leave(struct jobs *j);
/* pool.c: the worker threads the planner cuts a job for: the live pool's
 * (every process's), else this process's o.workers, else 1. */
int64_t jobs__pool_threads(struct jobs *j);

/* jobs.c: wake the idle workers (new work). */
void jobs__kick(struct jobs *j);
/* views.c: the pk of (ws, job_id); ERR_NOTFOUND with a message. */
int jobs__job_pk(struct jobs *j, const char *ws, const char *job_id, int64_t *pk, struct err *err);

/* ---- definition.c: the job definition ---------------------------------------- */

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
/* Absent or JSON null. */
bool jobs__opt_null(const json_t *v);
/* Parse a whole definition into *d (borrowing from b).  j may be NULL
 * (no store: the notificationsURL address is not checked).  ERR_INVALID. */
int jobs__parse_def(struct jobs *j, const json_t *b, struct jobdef *d, struct err *err);
/* Parse a compute configuration into workers/machine type. */
int jobs__parse_compute(const json_t *cc, int *workers, const char **machine, struct err *err);
int jobs__parse_pos_int(const json_t *v, const char *what, json_int_t max, json_int_t *out, struct err *err);
int jobs__parse_rate(const json_t *v, double *out, struct err *err);
/* Can jobs of this machine type run here?  ERR_INVALID with a message. */
int jobs__machine_check(struct jobs *j, const char *machine_type, bool needs_models, struct err *err);
/* Compile the workflow snapshot and resolve the image input and the
 * outputs (*image_input malloc'd, *outputs a new JSON array). */
int jobs__check_workflow(const char *wf_text, const struct jobdef *d, char **image_input, json_t **outputs,
                         bool *uses_models, struct err *err);

/* ---- planner.c ---------------------------------------------------------------- */

struct plan {
    struct store_task_range *t;
    int n, cap;
    int max_items;
    int64_t last_id;   /* id of the last item pushed (0 = none) */
    char *shard;       /* shard of the current task (owned) */
};
void jobs__plan_push(struct plan *p, int64_t id, const char *shard);
void jobs__plan_finish(struct plan *p);
/* Read every item of the job's input and plan its tasks into *p (free
 * p->t); *total = the items. */
int jobs__plan_items(struct jobs *j, const char *ws, const struct jobdef *d, struct plan *p, int64_t *total,
                     struct err *err);

#endif
