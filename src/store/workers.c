/*
 * workers.c — owner of the workers table: the live worker pool.  Every
 * process that runs job workers (`serve --workers N>0`, `vbatch worker`)
 * has one row, written at start (store_worker_beat), rewritten by its
 * heartbeat and deleted at a clean stop.  A row not seen for dead_after_ms
 * belongs to a dead or cut-off process: store_workers_live deletes such
 * rows before it sums the others, so nothing else has to clean up.
 *
 * Times are the writers' wall clocks (ms since the epoch): the processes
 * of one installation are expected to keep their clocks within a second
 * or so of each other (NTP), far below the dead_after_ms of several
 * heartbeats.
 */
#include "store/jobs_int.h"

#include <string.h>

int store_worker_beat(struct store *st, const struct store_worker *w, int64_t now_ms, struct err *e)
{
    struct db_conn *c = NULL;
    if (!w || !w->id || !*w->id || strlen(w->id) > STORE_WORKER_ID_MAX || !w->host || w->threads < 0)
        return err_set(e, ERR_INVALID, "bad worker row");
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_run(c, e,
                "INSERT INTO workers(id, host, pid, threads, kind, started_ms, seen_ms)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET"
                " threads=excluded.threads, kind=excluded.kind, seen_ms=excluded.seen_ms",
                "tiiitii", w->id, w->host, w->pid, (int64_t)w->threads, w->kind, w->started_ms, now_ms);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_worker_remove(struct store *st, const char *id, struct err *e)
{
    struct db_conn *c = NULL;
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    rc = db_run(c, e, "DELETE FROM workers WHERE id=?1", "t", id);
    store__jobs_conn_release(st, c);
    return rc;
}

int store_workers_live(struct store *st, int64_t now_ms, int64_t dead_after_ms, struct store_pool *out,
                       struct err *e)
{
    struct db_conn *c = NULL;
    struct db_stmt *q = NULL;
    memset(out, 0, sizeof *out);
    int rc = store__jobs_conn(st, &c, e);
    if (rc < 0)
        return rc;
    int64_t cutoff = now_ms - dead_after_ms;
    /* lazy clean-up of the dead: an autocommit DELETE, so two readers at
     * once simply both delete nothing the second time */
    rc = db_run(c, e, "DELETE FROM workers WHERE seen_ms < ?1", "i", cutoff);
    if (rc == 0)
        rc = db_prepare(c, "SELECT count(*), COALESCE(sum(threads), 0), COALESCE(sum(CASE WHEN kind='gpu'"
                           " THEN threads ELSE 0 END), 0) FROM workers WHERE seen_ms >= ?1", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, cutoff);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            out->processes = db_col_int64(q, 0);
            out->threads = db_col_int64(q, 1);
            out->gpu_threads = db_col_int64(q, 2);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = 0;
        }
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    return rc;
}
