/*
 * models.c — owner of the models table (created by the core migrations in
 * sql_sqlite.c): one row per stored model, naming the live generation of
 * its blobs.  src/jobs/models.c does the rest (the blobs, the registry).
 */
#include "store/store_models.h"

#include <stdlib.h>
#include <string.h>

#include "store/db.h"
#include "store/store_int.h"

/* The column value of a scope: '' for the operator's. */
static const char *ws_col(const char *ws)
{
    return ws ? ws : "";
}

int store_models_put(struct store *st, const char *ws, const char *id, const char *wkey, const char *mkey,
                     int64_t size, const char *hex, char **old, struct err *e)
{
    struct db *d = store__db(st);
    struct db_stmt *q = NULL;
    struct db_conn *c;
    int rc;

    *old = NULL;
    if (!(c = db_acquire(d, e)))
        return e && e->code < 0 ? e->code : ERR_INTERNAL;
    if ((rc = db_begin(c, e)) < 0) {
        if (rc == ERR_AGAIN)
            err_printf(e, "the database is busy");
        db_release(d, c);
        return rc;
    }
    rc = db_prepare(c, "SELECT weights_key FROM models WHERE workspace=?1 AND model_id=?2", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, ws_col(ws));
        db_bind_text(q, 2, id);
        rc = db_step(q, e);
        if (rc == DB_ROW && db_col_text(q, 0))
            *old = xstrdup(db_col_text(q, 0));
        if (rc > 0)
            rc = 0;
        db_finalize(q);
    }
    if (rc == 0)
        rc = db_run(c, e,
                    "INSERT INTO models(workspace, model_id, weights_key, meta_key, size, sha256,"
                    " created_ms, updated_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?7) ON CONFLICT(workspace, model_id)"
                    " DO UPDATE SET weights_key=excluded.weights_key, meta_key=excluded.meta_key,"
                    " size=excluded.size, sha256=excluded.sha256, updated_ms=excluded.updated_ms",
                    "ttttiti", ws_col(ws), id, wkey, mkey, size, hex, time_now_ms());
    if (rc == 0) {
        if ((rc = db_commit(c, e)) < 0)
            err_prefix(e, rc, "commit failed");
    } else {
        db_rollback(c);
    }
    db_release(d, c);
    if (rc < 0) {
        free(*old);
        *old = NULL;
    }
    return rc;
}

int store_models_delete(struct store *st, const char *ws, const char *id, char **old, struct err *e)
{
    struct db *d = store__db(st);
    struct db_stmt *q = NULL;
    struct db_conn *c;
    int rc;

    *old = NULL;
    if (!(c = db_acquire(d, e)))
        return e && e->code < 0 ? e->code : ERR_INTERNAL;
    if ((rc = db_begin(c, e)) < 0) {
        if (rc == ERR_AGAIN)
            err_printf(e, "the database is busy");
        db_release(d, c);
        return rc;
    }
    rc = db_prepare(c, "DELETE FROM models WHERE workspace=?1 AND model_id=?2 RETURNING weights_key", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, ws_col(ws));
        db_bind_text(q, 2, id);
        rc = db_step(q, e);
        if (rc == DB_ROW && db_col_text(q, 0))
            *old = xstrdup(db_col_text(q, 0));
        if (rc > 0)
            rc = 0;
        db_finalize(q);
    }
    if (rc == 0 && !*old)
        rc = ERR_NOTFOUND;
    if (rc == 0) {
        if ((rc = db_commit(c, e)) < 0)
            err_prefix(e, rc, "commit failed");
    } else {
        db_rollback(c);
    }
    db_release(d, c);
    if (rc < 0) {
        free(*old);
        *old = NULL;
    }
    return rc;
}

void store_model_rows_free(struct store_model_row *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].ws);
        free(r[i].id);
        free(r[i].wkey);
        free(r[i].mkey);
        free(r[i].sha);
    }
    free(r);
}

static char *col_dup(struct db_stmt *q, int i)
{
    const char *s = db_col_text(q, i);
    return xstrdup(s ? s : "");
}

int store_models_list(struct store *st, struct store_model_row **out, size_t *n_out, struct err *e)
{
    struct db *d = store__db(st);
    struct db_stmt *q = NULL;
    struct store_model_row *r = NULL;
    size_t n = 0, cap = 0;
    struct db_conn *c;
    int rc;

    *out = NULL;
    *n_out = 0;
    if (!(c = db_acquire(d, e)))
        return e && e->code < 0 ? e->code : ERR_INTERNAL;
    rc = db_prepare(c, "SELECT model_id, weights_key, meta_key, sha256, size, created_ms, updated_ms,"
                       " workspace FROM models ORDER BY workspace, model_id", &q, e);
    while (rc == 0 && (rc = db_step(q, e)) == DB_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            r = xrealloc(r, cap * sizeof *r);
        }
        r[n].id = col_dup(q, 0);
        r[n].wkey = col_dup(q, 1);
        r[n].mkey = col_dup(q, 2);
        r[n].sha = col_dup(q, 3);
        r[n].size = db_col_int64(q, 4);
        r[n].created_ms = db_col_int64(q, 5);
        r[n].updated_ms = db_col_int64(q, 6);
        const char *ws = db_col_text(q, 7);
        r[n].ws = ws && *ws ? xstrdup(ws) : NULL;
        n++;
        rc = 0;
    }
    db_finalize(q);
    db_release(d, c);
    if (rc < 0) {
        store_model_rows_free(r, n);
        return rc;
    }
    *out = r;
    *n_out = n;
    return 0;
}
