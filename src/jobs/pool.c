/*
 * pool.c — this process's place in the live worker pool (the workers
 * table, src/store/workers.c).  A process that runs job workers registers
 * one row when its workers start (id "host:pid:random", its thread count)
 * and a heartbeat thread renews it every o.pool_beat_ms; jobs_stop deletes
 * it.  A process killed without a clean stop leaves its row, which every
 * reader deletes once it is 3 beats old.  The planner (planner.c) cuts a
 * job for the pool's threads, whichever process received the POST.
 */
#include "jobs/jobs_int.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

/* A row older than this many beats is a dead process's. */
#define POOL_DEAD_BEATS 3

static int pool_beat(struct jobs *j)
{
    struct err e = ERR_INIT;
    struct store_worker w = {
        .id = j->pool_id,
        .host = j->pool_host,
        .pid = (int64_t)getpid(),
        .threads = j->nthreads,
        .kind = NULL, /* the machine's kind is not known here (gpu jobs load lazily) */
        .started_ms = j->pool_started_ms,
    };
    int rc = store_worker_beat(j->st, &w, time_now_ms(), &e);
    if (rc < 0)
        log_warn("jobs", "worker pool heartbeat failed id=%s: %s", j->pool_id, err_text(&e, rc));
    return rc;
}

static void *pool_main(void *p)
{
    struct jobs *j = p;
    int64_t next = time_mono_ms() + j->o.pool_beat_ms;
    pthread_mutex_lock(&j->mu);
    while (!j->stopping) {
        int64_t now = time_mono_ms();
        if (now >= next) {
            pthread_mutex_unlock(&j->mu);
            pool_beat(j);
            pthread_mutex_lock(&j->mu);
            next = time_mono_ms() + j->o.pool_beat_ms;
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = next - now;
        int64_t ns = ts.tv_nsec + (wait % 1000) * 1000000;
        ts.tv_sec += wait / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

int jobs__pool_join(struct jobs *j)
{
    char host[64] = "host", rnd[9];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    rand_alnum(rnd, 8);
    rnd[8] = '\0';
    free(j->pool_id);
    free(j->pool_host);
    j->pool_host = xstrdup(host);
    j->pool_id = xasprintf("%s:%d:%s", host, (int)getpid(), rnd);
    j->pool_started_ms = time_now_ms();
    /* a database that cannot be reached now does not stop the workers:
     * the heartbeat writes the row when it can */
    pool_beat(j);
    if (pthread_create(&j->pool_thread, NULL, pool_main, j) != 0) {
        log_error("jobs", "cannot start the worker pool heartbeat thread");
        return ERR_INTERNAL;
    }
    j->pool_running = true;
    log_info("jobs", "joined the worker pool id=%s threads=%d", j->pool_id, j->nthreads);
    return 0;
}

void jobs__pool_leave(struct jobs *j)
{
    if (!j->pool_running)
        return;
    pthread_join(j->pool_thread, NULL); /* j->stopping is set */
    j->pool_running = false;
    struct err e = ERR_INIT;
    int rc = store_worker_remove(j->st, j->pool_id, &e);
    if (rc < 0)
        log_warn("jobs", "cannot leave the worker pool id=%s: %s", j->pool_id, err_text(&e, rc));
}

int64_t jobs__pool_threads(struct jobs *j)
{
    struct store_pool p;
    struct err e = ERR_INIT;
    int rc = store_workers_live(j->st, time_now_ms(), POOL_DEAD_BEATS * j->o.pool_beat_ms, &p, &e);
    if (rc < 0) {
        log_warn("jobs", "cannot read the worker pool: %s", err_text(&e, rc));
        p.threads = 0;
    }
    if (p.threads > 0)
        return p.threads;
    return MAX(j->o.workers, 1);
}

int jobs_pool(struct jobs *j, int64_t *processes, int64_t *threads, struct err *err)
{
    struct store_pool p;
    int rc = store_workers_live(j->st, time_now_ms(), POOL_DEAD_BEATS * j->o.pool_beat_ms, &p, err);
    if (rc == 0) {
        *processes = p.processes;
        *threads = p.threads;
    }
    return rc;
}
