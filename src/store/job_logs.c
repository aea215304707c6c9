/*
 * job_logs.c — owner of the job_logs table: the rows written inside the
 * transactions of jobs.c and tasks.c, and the pages GET /jobs/{id}/logs
 * reads.
 */
#include "store/jobs_int.h"

#include <stdlib.h>
#include <string.h>

int store__job_log(struct db_conn *c, int64_t job_pk, const char *severity, const char *module,
                   const char *log_type, json_t *payload, const char *stage, int task_no, struct err *e)
{
    char *txt = json_dumps(payload, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(payload);
    int rc = db_run(c, e,
                    "INSERT INTO job_logs(job_pk, created_ms, severity, module, log_type, payload,"
                    " stage_id, task_no) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                    task_no > 0 ? "iittttti" : "iitttttn", job_pk, time_now_ms(), severity, module, log_type,
                    txt ? txt : "{}", stage, (int64_t)task_no);
    free(txt);
    return rc;
}

int store__job_log_last(struct db_conn *c, int64_t job_pk, const char *log_type, char **out, struct err *e)
{
    struct db_stmt *q = NULL;
    *out = NULL;
    int rc = db_prepare(c, "SELECT payload FROM job_logs WHERE job_pk=?1 AND log_type=?2 ORDER BY id DESC LIMIT 1",
                        &q, e);
    if (rc < 0)
        return rc;
    db_bind_int64(q, 1, job_pk);
    db_bind_text(q, 2, log_type);
    rc = db_step(q, e);
    if (rc == DB_ROW) {
        const char *p = db_col_text(q, 0);
        *out = xstrdup(p ? p : "");
        rc = 0;
    }
    db_finalize(q);
    return rc;
}

void store_job_log_rows_free(struct store_job_log_row *r, int n)
{
    for (int i = 0; i < n; i++) {
        free(r[i].severity);
        free(r[i].module);
        free(r[i].log_type);
        free(r[i].payload);
        free(r[i].stage_id);
    }
    free(r);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

int store_job_logs_page(struct store *st, int64_t job_pk, const char *severity, int64_t after, int limit,
                        struct store_job_log_row **rows, int *n, struct err *e)
{
    struct db_stmt *q = NULL;
    struct store_job_log_row *r = NULL;
    int cnt = 0, rc;
    *rows = NULL;
    *n = 0;
    struct db_conn *c = NULL;
    if ((rc = store__jobs_conn(st, &c, e)) < 0)
        return rc;
    /* '' stands for every severity (a NULL parameter would need a type on
     * PostgreSQL) */
    rc = db_prepare(c, "SELECT id, created_ms, severity, module, log_type, payload, stage_id, task_no"
                       " FROM job_logs WHERE job_pk=?1 AND id>?2 AND (?3='' OR severity=?3)"
                       " ORDER BY id LIMIT ?4", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, job_pk);
        db_bind_int64(q, 2, after);
        db_bind_text(q, 3, severity ? severity : "");
        db_bind_int64(q, 4, limit);
        r = xcalloc((size_t)MAX(limit, 1), sizeof *r);
        while (cnt < limit && (rc = db_step(q, e)) == DB_ROW) {
            struct store_job_log_row *l = &r[cnt++];
            l->id = db_col_int64(q, 0);
            l->created_ms = db_col_int64(q, 1);
            l->severity = xstrdup(db_col_text(q, 2) ? db_col_text(q, 2) : "");
            l->module = xstrdup(db_col_text(q, 3) ? db_col_text(q, 3) : "");
            l->log_type = xstrdup(db_col_text(q, 4) ? db_col_text(q, 4) : "");
            l->payload = xstrdup(db_col_text(q, 5) ? db_col_text(q, 5) : "");
            l->stage_id = dup_or_null(db_col_text(q, 6));
            l->task_no = db_col_null(q, 7) ? 0 : (int)db_col_int64(q, 7);
        }
        if (rc > 0)
            rc = 0;
    }
    db_finalize(q);
    store__jobs_conn_release(st, c);
    if (rc < 0) {
        store_job_log_rows_free(r, cnt);
        return rc;
    }
    *rows = r;
    *n = cnt;
    return 0;
}
