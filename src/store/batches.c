/*
 * batches.c — owner of the tables batches, parts, part_counts and items
 * (store_staging.h): batches and their ingest modes, parts, items with
 * their counts, the API's batch and item listings, and expiry.
 *
 * Invariants kept here, inside the transaction of every change:
 *   - batches.item_count = the batch's items; part_counts.n = the items of
 *     each part (every item insert goes through store__item_insert);
 *   - batches.content_type follows the items: the first non-metadata item
 *     decides ("images"/"videos"), a different kind makes it "mixed";
 *     output batches keep "mixed";
 *   - a batch's blobs live under "b/<bid>/"; bid is never reused
 *     (AUTOINCREMENT), so a new batch of an expired id never sees them.
 */
#include "store/store_staging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/staging_int.h"

char *store__col_dup(struct db_stmt *q, int i)
{
    const char *t = db_col_text(q, i);
    return t ? xstrdup(t) : NULL;
}

void store_batch_blob_prefix(int64_t bid, char out[32])
{
    snprintf(out, 32, "b/%lld", (long long)bid);
}

/* ---- finding and creating batches ----------------------------------------------------- */

static int batch_row(struct db_conn *c, const char *ws, const char *batch, struct store_batch *out, struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_prepare(c, "SELECT bid, ingest_mode, batch_type, content_type FROM batches"
                           " WHERE workspace=?1 AND batch_id=?2 AND expires_ms>?3", &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, ws);
    db_bind_text(q, 2, batch);
    db_bind_int64(q, 3, time_now_ms());
    rc = db_step(q, e);
    if (rc == DB_ROW) {
        out->bid = db_col_int64(q, 0);
        snprintf(out->mode, sizeof out->mode, "%s", db_col_text(q, 1));
        snprintf(out->type, sizeof out->type, "%s", db_col_text(q, 2));
        snprintf(out->content, sizeof out->content, "%s", db_col_text(q, 3));
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = ERR_NOTFOUND;
    }
    db_finalize(q);
    return rc;
}

int store__batch_find(struct db_conn *c, const char *ws, const char *batch, struct store_batch *out, struct err *e)
{
    if (!id_valid(batch, 64))
        return err_set(e, ERR_INVALID, "invalid batch id '%.80s': use 1-64 of a-z 0-9 _ -", batch ? batch : "");
    int rc = batch_row(c, ws, batch, out, e);
    if (rc == ERR_NOTFOUND)
        err_printf(e, "batch '%s' not found", batch);
    return rc;
}

int store_batch_find(struct store *st, const char *ws, const char *batch, struct store_batch *out, struct err *e)
{
    struct db_conn *c = db_acquire(store__db(st), e);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = store__batch_find(c, ws, batch, out, e);
    db_release(store__db(st), c);
    return rc;
}

/* Inside a transaction: delete a batch row; the child tables cascade,
 * the shard status history (keyed by shard id) is deleted here. */
static int batch_rows_delete(struct db_conn *c, int64_t bid, struct err *e)
{
    /* The items that cascade leave the workspace's usage. */
    int rc = db_run(c, e, "UPDATE ws_usage SET staged_bytes = staged_bytes -"
                          " COALESCE((SELECT sum(size) FROM items WHERE bid=?1), 0)"
                          " WHERE workspace=(SELECT workspace FROM batches WHERE bid=?1)", "i", bid);
    if (rc == 0)
        rc = db_run(c, e, "DELETE FROM shard_events WHERE shard IN (SELECT shard_id FROM shards WHERE bid=?1)", "i",
                    bid);
    if (rc == 0)
        rc = db_run(c, e, "DELETE FROM batches WHERE bid=?1", "i", bid);
    return rc;
}

/* Inside a transaction: remove a batch row that expired but was not swept
 * yet (with its blob folder), so that the id can be used again. */
static int drop_expired(struct store *st, struct db_conn *c, const char *ws, const char *batch, struct err *e)
{
    struct db_stmt *q = NULL;
    int64_t bid = -1;
    int rc = db_prepare(c, "SELECT bid FROM batches WHERE workspace=?1 AND batch_id=?2 AND expires_ms<=?3", &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, ws);
    db_bind_text(q, 2, batch);
    db_bind_int64(q, 3, time_now_ms());
    rc = db_step(q, e);
    if (rc == DB_ROW)
        bid = db_col_int64(q, 0);
    db_finalize(q);
    if (rc < 0)
        return rc;
    if (bid < 0)
        return 0;
    char prefix[32];
    store_batch_blob_prefix(bid, prefix);
    store_blob_delete_prefix(st, prefix);
    return batch_rows_delete(c, bid, e);
}

int store__batch_get_or_create(struct store *st, struct db_conn *c, const char *ws, const char *batch,
                               const char *display_name, const char *create_mode, int64_t expiry_ms,
                               struct store_batch *out, struct err *e)
{
    int rc = store__batch_find(c, ws, batch, out, e);
    if (rc == 0 && create_mode) {
        /* an output batch made meanwhile by another process (the re-read
         * below): "exists", as store_batch_create_output answers */
        if (!strcmp(out->mode, "output") && !strcmp(create_mode, "output"))
            return err_set(e, ERR_EXISTS, "batch '%s' already exists", batch);
        if (!strcmp(out->mode, "output"))
            return err_set(e, ERR_INVALID, "batch '%s' holds job outputs and cannot take uploads", batch);
        if (strcmp(out->mode, create_mode) != 0)
            return err_set(e, ERR_INVALID,
                           "batch '%s' was filled by %s uploads; single-image and bulk uploads cannot be "
                           "combined in one batch: use another batch id",
                           batch, !strcmp(out->mode, "single") ? "single-image" : "bulk");
        return 0;
    }
    if (rc != ERR_NOTFOUND || !create_mode)
        return rc;
    err_clear(e);
    if (display_name && strlen(display_name) > 256)
        return err_set(e, ERR_INVALID, "displayName is longer than 256 bytes");
    if (display_name && !utf8_valid(display_name))
        return err_set(e, ERR_INVALID, "displayName is not valid UTF-8");
    if ((rc = drop_expired(st, c, ws, batch, e)) < 0)
        return rc;
    const char *type = !strcmp(create_mode, "single") ? "simple-batch"
                       : !strcmp(create_mode, "bulk") ? "sharded-batch"
                                                      : "multipart-batch";
    int64_t now = time_now_ms();
    struct db_stmt *q = NULL;
    rc = db_prepare(c, "INSERT INTO batches(workspace, batch_id, display_name, batch_type, content_type,"
                       " ingest_mode, created_ms, expires_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)"
                       " ON CONFLICT(workspace, batch_id) DO NOTHING RETURNING bid", &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, ws);
    db_bind_text(q, 2, batch);
    db_bind_text(q, 3, display_name && *display_name ? display_name : batch);
    db_bind_text(q, 4, type);
    db_bind_text(q, 5, !strcmp(create_mode, "output") ? "mixed" : "images");
    db_bind_text(q, 6, create_mode);
    db_bind_int64(q, 7, now);
    db_bind_int64(q, 8, now + expiry_ms);
    rc = db_step(q, e);
    if (rc == DB_ROW) {
        out->bid = db_col_int64(q, 0);
        snprintf(out->mode, sizeof out->mode, "%s", create_mode);
        snprintf(out->type, sizeof out->type, "%s", type);
        snprintf(out->content, sizeof out->content, "%s", "images");
        rc = 0;
    } else if (rc == DB_DONE) {
        /* PostgreSQL: another transaction created the batch since the
         * find above (SQLite's writer lock rules that out); it has
         * committed, so take it as found, with the same mode checks. */
        db_finalize(q);
        rc = store__batch_find(c, ws, batch, out, e);
        if (rc == ERR_NOTFOUND)
            return err_set(e, ERR_AGAIN, "batch '%s' is being created and removed at once", batch);
        if (rc < 0)
            return rc;
        return store__batch_get_or_create(st, c, ws, batch, display_name, create_mode, expiry_ms, out, e);
    }
    db_finalize(q);
    return rc;
}

int store__staging_tx(struct store *st, int (*body)(struct store *, struct db_conn *, void *, struct err *),
                      void *ud, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = body(st, c, ud, e);
    if (rc == 0)
        rc = db_commit(c, e);
    else
        db_rollback(c);
    db_release(d, c);
    return rc;
}

struct goc_args {
    const char *ws, *batch, *display_name, *mode;
    int64_t expiry_ms;
    struct store_batch *out;
};

static int goc_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct goc_args *a = ud;
    return store__batch_get_or_create(st, c, a->ws, a->batch, a->display_name, a->mode, a->expiry_ms, a->out, e);
}

int store_batch_get_or_create(struct store *st, const char *ws, const char *batch, const char *display_name,
                              const char *mode, int64_t expiry_ms, struct store_batch *out, struct err *e)
{
    struct goc_args a = {ws, batch, display_name, mode, expiry_ms, out};
    return store__staging_tx(st, goc_body, &a, e);
}

static int output_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct goc_args *a = ud;
    int rc = store__batch_find(c, a->ws, a->batch, a->out, e);
    if (rc == 0)
        return err_set(e, ERR_EXISTS, "batch '%s' already exists", a->batch);
    if (rc != ERR_NOTFOUND)
        return rc;
    return store__batch_get_or_create(st, c, a->ws, a->batch, a->display_name, "output", a->expiry_ms, a->out, e);
}

int store_batch_create_output(struct store *st, const char *ws, const char *batch, const char *display_name,
                              int64_t expiry_ms, struct err *e)
{
    struct store_batch b;
    struct goc_args a = {ws, batch, display_name, "output", expiry_ms, &b};
    return store__staging_tx(st, output_body, &a, e);
}

/* ---- batch views --------------------------------------------------------------------------- */

#define INFO_COLS "bid, display_name, batch_id, batch_type, content_type, created_ms, expires_ms, item_count"

static void info_fill(struct db_stmt *q, struct store_batch_info *b)
{
    b->bid = db_col_int64(q, 0);
    b->display_name = store__col_dup(q, 1);
    b->batch_id = store__col_dup(q, 2);
    b->batch_type = store__col_dup(q, 3);
    b->content_type = store__col_dup(q, 4);
    b->created_ms = db_col_int64(q, 5);
    b->expires_ms = db_col_int64(q, 6);
    b->item_count = db_col_int64(q, 7);
    b->bytes = -1;
}

void store_batch_info_release(struct store_batch_info *b)
{
    if (!b)
        return;
    free(b->display_name);
    free(b->batch_id);
    free(b->batch_type);
    free(b->content_type);
    memset(b, 0, sizeof *b);
}

void store_batch_infos_free(struct store_batch_info *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        store_batch_info_release(&rows[i]);
    free(rows);
}

int store_batches_page(struct store *st, const char *ws, int64_t after, int limit, struct store_batch_info **rows,
                       int *n, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    struct store_batch_info *arr = NULL;
    int cnt = 0;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_prepare(c, "SELECT " INFO_COLS " FROM batches WHERE workspace=?1 AND bid>?2 AND expires_ms>?3"
                           " ORDER BY bid LIMIT ?4", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, ws);
        db_bind_int64(q, 2, after);
        db_bind_int64(q, 3, time_now_ms());
        db_bind_int64(q, 4, limit);
        arr = xcalloc((size_t)MAX(limit, 1), sizeof *arr);
        while (cnt < limit && (rc = db_step(q, e)) == DB_ROW)
            info_fill(q, &arr[cnt++]);
        if (rc > 0)
            rc = 0;
    }
    db_finalize(q);
    db_release(d, c);
    if (rc < 0) {
        store_batch_infos_free(arr, cnt);
        return rc;
    }
    *rows = arr;
    *n = cnt;
    return 0;
}

int store_batch_info_get(struct store *st, const char *ws, const char *batch, struct store_batch_info *out,
                         struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    struct store_batch b;
    memset(out, 0, sizeof *out);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = store__batch_find(c, ws, batch, &b, e);
    if (rc == 0)
        rc = db_prepare(c, "SELECT " INFO_COLS ", CAST(COALESCE((SELECT sum(size) FROM items WHERE bid=?1), 0)"
                           " AS BIGINT) FROM batches WHERE bid=?1", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, b.bid);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            info_fill(q, out);
            out->bytes = db_col_int64(q, 8);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = err_set(e, ERR_NOTFOUND, "batch '%s' not found", batch);
        }
    }
    db_finalize(q);
    db_release(d, c);
    return rc;
}

int store_batch_count(struct store *st, const char *ws, const char *batch, const char *part, int64_t *n,
                      struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    struct store_batch b;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = store__batch_find(c, ws, batch, &b, e);
    if (rc == 0)
        rc = db_prepare(c, part ? "SELECT n FROM part_counts WHERE bid=?1 AND part=?2"
                                : "SELECT item_count FROM batches WHERE bid=?1", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, b.bid);
        if (part)
            db_bind_text(q, 2, part);
        rc = db_step(q, e);
        if (rc == DB_ROW || (part && rc == DB_DONE)) {
            *n = rc == DB_ROW ? db_col_int64(q, 0) : 0;
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = err_set(e, ERR_NOTFOUND, "batch '%s' not found", batch);
        }
    }
    db_finalize(q);
    db_release(d, c);
    return rc;
}

/* ---- parts ------------------------------------------------------------------------------------ */

void store_parts_free(struct store_part *parts, int n)
{
    for (int i = 0; parts && i < n; i++) {
        free(parts[i].name);
        free(parts[i].type);
        free(parts[i].content_type);
        free(parts[i].description);
        free(parts[i].nested_content_type);
    }
    free(parts);
}

int store_batch_parts(struct store *st, const char *ws, const char *batch, struct store_part **parts, int *n,
                      struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    struct store_batch b;
    struct store_part *arr = NULL;
    int cnt = 0, cap = 0;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = store__batch_find(c, ws, batch, &b, e);
    if (rc == 0)
        rc = db_prepare(c, "SELECT part_name, part_type, content_type, description, nested_content_type"
                           " FROM parts WHERE bid=?1 ORDER BY part_name", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, b.bid);
        while ((rc = db_step(q, e)) == DB_ROW) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 8;
                arr = xrealloc(arr, (size_t)cap * sizeof *arr);
            }
            arr[cnt++] = (struct store_part){store__col_dup(q, 0), store__col_dup(q, 1), store__col_dup(q, 2), store__col_dup(q, 3),
                                             store__col_dup(q, 4)};
        }
    }
    db_finalize(q);
    db_release(d, c);
    if (rc < 0) {
        store_parts_free(arr, cnt);
        return rc;
    }
    *parts = arr;
    *n = cnt;
    return 0;
}

struct part_args {
    const char *ws, *batch, *part, *part_type, *content_type, *description, *nested;
};

static int part_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct part_args *a = ud;
    struct store_batch b;
    (void)st;
    int rc = store__batch_find(c, a->ws, a->batch, &b, e);
    if (rc == 0)
        rc = db_run(c, e, "INSERT INTO parts(bid, part_name, part_type, content_type, description,"
                          " nested_content_type) VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT DO NOTHING", "ittttt",
                    b.bid, a->part, a->part_type, a->content_type, a->description, a->nested);
    return rc;
}

int store_part_add(struct store *st, const char *ws, const char *batch, const char *part, const char *part_type,
                   const char *content_type, const char *description, const char *nested_content_type,
                   struct err *e)
{
    struct part_args a = {ws, batch, part, part_type, content_type, description, nested_content_type};
    return store__staging_tx(st, part_body, &a, e);
}

int store__meta_part_ensure(struct db_conn *c, int64_t bid, struct err *e)
{
    int rc = db_run(c, e, "INSERT INTO parts(bid, part_name, part_type, content_type, description)"
                          " VALUES(?1,'" STORE_METADATA_PART "','file-part','metadata',"
                          "'per-image metadata (<image file name>.json)') ON CONFLICT DO NOTHING", "i", bid);
    if (rc < 0)
        log_error("store", "metadata part insert failed: %s", err_text(e, rc));
    return rc;
}

/* ---- items -------------------------------------------------------------------------------------- */

/* The batch's count and content type after k more items of content type
 * ct.  The first media item decides the content type; a different kind
 * makes it mixed.  Sidecars (metadata items) never change it. */
static int batch_count_add(struct db_conn *c, int64_t bid, const char *ct, int64_t k, struct err *e)
{
    static const char sql_batch[] =
        "UPDATE batches SET item_count = item_count + ?3, content_type = CASE"
        " WHEN ingest_mode='output' THEN content_type"
        " WHEN ?2 = 'metadata' THEN content_type"
        " WHEN item_count - COALESCE((SELECT n FROM part_counts WHERE bid=?1 AND part='" STORE_METADATA_PART "'),"
        " 0) = 0 THEN ?2"
        " WHEN content_type <> ?2 THEN 'mixed' ELSE content_type END WHERE bid=?1";
    return db_run(c, e, sql_batch, "iti", bid,
                  !strcmp(ct, "image") ? "images" : !strcmp(ct, "video") ? "videos" : ct, k);
}

static int part_count_add(struct db_conn *c, int64_t bid, const char *part, int64_t k, struct err *e)
{
    return db_run(c, e, "INSERT INTO part_counts(bid, part, n) VALUES(?1,?2,?3)"
                        " ON CONFLICT(bid, part) DO UPDATE SET n = part_counts.n + ?3", "iti", bid, part, k);
}

int store__items_insert(struct db_conn *c, int64_t bid, const struct store_item_new *items, int n, struct err *e)
{
    struct db_stmt *q = NULL;
    int64_t now = time_now_ms();
    int rc = 0;
    if (n <= 0)
        return 0;
    /* One prepared INSERT for all the rows, then one count update per
     * content type and per part (not three statements per item). */
    rc = db_prepare(c, "INSERT INTO items(bid, part, name, shard_id, content_type, mime, blob_key, size,"
                       " created_ms, blob_offset) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)", &q, e);
    for (int i = 0; rc == 0 && i < n; i++) {
        const struct store_item_new *it = &items[i];
        if (i > 0)
            db_reset(q);
        db_bind_int64(q, 1, bid);
        db_bind_text(q, 2, it->part);
        db_bind_text(q, 3, it->name);
        db_bind_text(q, 4, it->shard_id);
        db_bind_text(q, 5, it->content_type);
        db_bind_text(q, 6, it->mime);
        db_bind_text(q, 7, it->blob_key);
        db_bind_int64(q, 8, it->size);
        db_bind_int64(q, 9, now);
        if (it->ranged)
            db_bind_int64(q, 10, it->offset);
        else
            db_bind_null(q, 10);
        rc = db_step(q, e);
        if (rc == DB_DONE)
            rc = 0;
        else if (rc > 0)
            rc = err_set(e, ERR_INTERNAL, "an INSERT returned rows");
    }
    db_finalize(q);
    /* The counts: each media content type in order of first appearance,
     * then the metadata items (they leave the content type alone), so
     * every step sees the counts of a consistent state, as item by item. */
    struct tally {
        const char *v;
        int64_t k;
    } *ts = xcalloc((size_t)n, sizeof *ts), *ps = xcalloc((size_t)n, sizeof *ps);
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        int nt = 0, np = 0;
        for (int i = 0; i < n; i++) {
            const struct store_item_new *it = &items[i];
            if (!strcmp(it->content_type, "metadata") != (pass == 1))
                continue;
            int t = 0, p = 0;
            while (t < nt && strcmp(ts[t].v, it->content_type))
                t++;
            if (t == nt)
                ts[nt++] = (struct tally){it->content_type, 0};
            ts[t].k++;
            if (!it->part)
                continue;
            while (p < np && strcmp(ps[p].v, it->part))
                p++;
            if (p == np)
                ps[np++] = (struct tally){it->part, 0};
            ps[p].k++;
        }
        for (int t = 0; rc == 0 && t < nt; t++)
            rc = batch_count_add(c, bid, ts[t].v, ts[t].k, e);
        for (int p = 0; rc == 0 && p < np; p++)
            rc = part_count_add(c, bid, ps[p].v, ps[p].k, e);
    }
    free(ts);
    free(ps);
    /* the workspace's staged bytes, in the same transaction */
    int64_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += items[i].size > 0 ? items[i].size : 0;
    if (rc == 0 && bytes > 0)
        rc = db_run(c, e, "INSERT INTO ws_usage(workspace, staged_bytes) SELECT workspace, ?2 FROM batches"
                          " WHERE bid=?1 ON CONFLICT(workspace) DO UPDATE"
                          " SET staged_bytes = ws_usage.staged_bytes + excluded.staged_bytes", "ii", bid, bytes);
    if (rc < 0)
        log_error("store", "item insert failed: %s", err_text(e, rc));
    return rc;
}

int store__item_insert(struct db_conn *c, int64_t bid, const struct store_item_new *it, struct err *e)
{
    return store__items_insert(c, bid, it, 1, e);
}

struct item_args {
    const char *ws, *batch;
    int64_t expect_bid;
    bool meta_part;
    const struct store_item_new *it;
};

static int item_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct item_args *a = ud;
    struct store_batch b;
    int rc = store__batch_find(c, a->ws, a->batch, &b, e);
    if (rc == 0 && a->expect_bid > 0 && b.bid != a->expect_bid)
        rc = err_set(e, ERR_NOTFOUND, "batch '%s' was removed during the upload", a->batch);
    if (rc == 0)
        rc = store__quota_bytes_check(st, c, a->ws, a->it->size, e);
    if (rc == 0 && a->meta_part)
        rc = store__meta_part_ensure(c, b.bid, e);
    if (rc == 0)
        rc = store__item_insert(c, b.bid, a->it, e);
    return rc;
}

int store_item_add(struct store *st, const char *ws, const char *batch, int64_t expect_bid, bool ensure_meta_part,
                   const struct store_item_new *it, struct err *e)
{
    struct item_args a = {ws, batch, expect_bid, ensure_meta_part, it};
    return store__staging_tx(st, item_body, &a, e);
}

void store_item_release(struct store_item *it)
{
    if (!it)
        return;
    free(it->name);
    free(it->part);
    free(it->shard_id);
    free(it->content_type);
    free(it->mime);
    free(it->blob_key);
    free(it->nested_content_type);
    memset(it, 0, sizeof *it);
}

void store_items_free(struct store_item *items, int n)
{
    for (int i = 0; items && i < n; i++)
        store_item_release(&items[i]);
    free(items);
}

#define ITEM_COLS "SELECT id, name, part, shard_id, content_type, mime, blob_key, size, blob_offset FROM items"

/* blob_offset NULL: the whole blob (-1) */
static int64_t col_offset(struct db_stmt *q, int i)
{
    return db_col_null(q, i) ? -1 : db_col_int64(q, i);
}

static void item_fill(struct db_stmt *q, struct store_item *it)
{
    memset(it, 0, sizeof *it);
    it->id = db_col_int64(q, 0);
    it->name = store__col_dup(q, 1);
    it->part = store__col_dup(q, 2);
    it->shard_id = store__col_dup(q, 3);
    it->content_type = store__col_dup(q, 4);
    it->mime = store__col_dup(q, 5);
    it->blob_key = store__col_dup(q, 6);
    it->size = db_col_int64(q, 7);
    it->offset = col_offset(q, 8);
}

/* nestedContentType: the item's part says what its archives hold */
#define LIST_COLS                                                                                     \
    "SELECT i.id, i.name, i.part, i.shard_id, i.content_type, i.blob_key, p.nested_content_type,"      \
    " i.size, i.blob_offset FROM items i LEFT JOIN parts p ON p.bid=i.bid AND p.part_name=i.part"

static void list_fill(struct db_stmt *q, struct store_item *it)
{
    memset(it, 0, sizeof *it);
    it->id = db_col_int64(q, 0);
    it->name = store__col_dup(q, 1);
    it->part = store__col_dup(q, 2);
    it->shard_id = store__col_dup(q, 3);
    it->content_type = store__col_dup(q, 4);
    it->blob_key = store__col_dup(q, 5);
    it->nested_content_type = store__col_dup(q, 6);
    it->size = db_col_int64(q, 7);
    it->offset = col_offset(q, 8);
}

static int items_query(struct store *st, const char *ws, const char *batch, const char *part, const char *sql,
                       void (*fill)(struct db_stmt *, struct store_item *), int64_t after, int limit,
                       struct store_item **items, int *n, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    struct store_batch b;
    struct store_item *arr = NULL;
    int cnt = 0;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = store__batch_find(c, ws, batch, &b, e);
    if (rc == 0)
        rc = db_prepare(c, sql, &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, b.bid);
        db_bind_int64(q, 2, after);
        db_bind_int64(q, 3, limit);
        if (part)
            db_bind_text(q, 4, part);
        arr = xcalloc((size_t)MAX(limit, 1), sizeof *arr);
        while (cnt < limit && (rc = db_step(q, e)) == DB_ROW)
            fill(q, &arr[cnt++]);
        if (rc > 0)
            rc = 0;
    }
    db_finalize(q);
    db_release(d, c);
    if (rc < 0) {
        store_items_free(arr, cnt);
        return rc;
    }
    *items = arr;
    *n = cnt;
    return 0;
}

int store_items_page(struct store *st, const char *ws, const char *batch, const char *part, bool media_only,
                     int64_t after, int limit, struct store_item **items, int *n, struct err *e)
{
    static const char *const sql[2][2] = {
        {ITEM_COLS " WHERE bid=?1 AND id>?2 ORDER BY id LIMIT ?3",
         ITEM_COLS " WHERE bid=?1 AND id>?2 AND content_type <> 'metadata' ORDER BY id LIMIT ?3"},
        {ITEM_COLS " WHERE bid=?1 AND part=?4 AND id>?2 ORDER BY id LIMIT ?3",
         ITEM_COLS " WHERE bid=?1 AND part=?4 AND id>?2 AND content_type <> 'metadata' ORDER BY id LIMIT ?3"},
    };
    return items_query(st, ws, batch, part, sql[part != NULL][media_only], item_fill, after, limit, items, n, e);
}

int store_items_list(struct store *st, const char *ws, const char *batch, const char *part, int64_t after,
                     int limit, struct store_item **items, int *n, struct err *e)
{
    const char *sql = part ? LIST_COLS " WHERE i.bid=?1 AND i.part=?4 AND i.id>?2 ORDER BY i.id LIMIT ?3"
                           : LIST_COLS " WHERE i.bid=?1 AND i.id>?2 ORDER BY i.id LIMIT ?3";
    return items_query(st, ws, batch, part, sql, list_fill, after, limit, items, n, e);
}

int store_item_find(struct store *st, const char *ws, const char *batch, const char *part, const char *name,
                    struct store_item *out, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    struct store_batch b;
    memset(out, 0, sizeof *out);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = store__batch_find(c, ws, batch, &b, e);
    /* Served by items_name(bid, part, name, id). */
    if (rc == 0)
        rc = db_prepare(c, part ? ITEM_COLS " WHERE bid=?1 AND part=?2 AND name=?3 ORDER BY id DESC LIMIT 1"
                                : ITEM_COLS " WHERE bid=?1 AND part IS NULL AND name=?3 ORDER BY id DESC LIMIT 1",
                        &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, b.bid);
        if (part)
            db_bind_text(q, 2, part);
        db_bind_text(q, 3, name);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            item_fill(q, out);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = err_set(e, ERR_NOTFOUND, "no item '%.255s' in the batch", name);
        }
    }
    db_finalize(q);
    db_release(d, c);
    return rc;
}

int store_item_mime(struct store *st, const char *blob_key, char **mime, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    *mime = NULL;
    if (!c)
        return ERR_UNAVAILABLE;
    /* served by items_blob(blob_key) WHERE blob_offset IS NULL */
    int rc = db_prepare(c, "SELECT mime FROM items WHERE blob_key=?1 AND blob_offset IS NULL LIMIT 1", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, blob_key);
        rc = db_step(q, e);
        if (rc == DB_ROW)
            *mime = store__col_dup(q, 0);
        if (rc > 0 || rc == DB_DONE)
            rc = 0;
    }
    db_finalize(q);
    db_release(d, c);
    return rc;
}

/* ---- workspace usage ---------------------------------------------------------------------------- */

int store__ws_lock(struct db_conn *c, const char *ws, int64_t *staged_bytes, struct err *e)
{
    struct db_stmt *q = NULL;
    /* An upsert that writes the row: PostgreSQL holds its row lock, SQLite
     * its database write lock, until the transaction ends. */
    int rc = db_prepare(c, "INSERT INTO ws_usage(workspace, staged_bytes) VALUES(?1, 0) ON CONFLICT(workspace)"
                           " DO UPDATE SET staged_bytes = ws_usage.staged_bytes RETURNING staged_bytes", &q, e);
    if (rc < 0)
        return rc;
    db_bind_text(q, 1, ws);
    rc = db_step(q, e);
    if (rc == DB_ROW) {
        if (staged_bytes)
            *staged_bytes = db_col_int64(q, 0);
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = err_set(e, ERR_INTERNAL, "the workspace usage upsert returned no row");
    }
    db_finalize(q);
    return rc;
}

int store_ws_staged_bytes(struct store *st, const char *ws, int64_t *out, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    *out = 0;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_prepare(c, "SELECT staged_bytes FROM ws_usage WHERE workspace=?1", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, ws);
        rc = db_step(q, e);
        if (rc == DB_ROW)
            *out = db_col_int64(q, 0);
        rc = rc < 0 ? rc : 0;
    }
    db_finalize(q);
    db_release(d, c);
    return rc;
}

/* ---- deletion -------------------------------------------------------------------------------- */

int store__batch_tombstone(struct db_conn *c, int64_t bid, struct err *e)
{
    /* Pending signed upload URLs of the batch stop working now; the rows
     * and blobs go in store_batch_purge. */
    int rc = db_run(c, e, "UPDATE uploads SET state='failed' WHERE bid=?1 AND state='pending'", "i", bid);
    if (rc == 0)
        rc = db_run(c, e, "UPDATE batches SET expires_ms=0 WHERE bid=?1", "i", bid);
    return rc;
}

struct del_args {
    const char *ws, *batch;
    int64_t bid;
};

static int del_body(struct store *st, struct db_conn *c, void *ud, struct err *e)
{
    struct del_args *a = ud;
    struct store_batch b;
    char job[80];
    (void)st;
    int rc = store__ws_lock(c, a->ws, NULL, e);
    if (rc == 0)
        rc = store__batch_find(c, a->ws, a->batch, &b, e);
    if (rc == 0) {
        rc = store__jobs_using_batch(c, a->ws, a->batch, job, e);
        if (rc > 0)
            rc = err_set(e, ERR_EXISTS, "batch '%s' is used by the running job '%s': abort the job first", a->batch,
                         job);
    }
    if (rc == 0)
        rc = store__batch_tombstone(c, b.bid, e);
    if (rc == 0)
        a->bid = b.bid;
    return rc;
}

int store_batch_delete(struct store *st, const char *ws, const char *batch, struct err *e)
{
    struct del_args a = {ws, batch, -1};
    int rc = store__staging_tx(st, del_body, &a, e);
    if (rc < 0)
        return rc;
    struct err e2 = ERR_INIT;
    rc = store_batch_purge(st, a.bid, &e2);
    if (rc < 0) /* the batch is gone for the API; the expiry sweep finishes it */
        log_warn("store", "batch bid=%lld deleted, its blobs and rows are left to the expiry sweep: %s",
                 (long long)a.bid, err_text(&e2, rc));
    return 0;
}

int store__blob_trash_add(struct db_conn *c, const char *prefix, struct err *e)
{
    return db_run(c, e, "INSERT INTO blob_trash(prefix, created_ms) VALUES(?1,?2) ON CONFLICT(prefix) DO NOTHING",
                  "ti", prefix, time_now_ms());
}

int store__blob_trash_cancel(struct db_conn *c, const char *prefix, struct err *e)
{
    return db_run(c, e, "DELETE FROM blob_trash WHERE prefix=?1", "t", prefix);
}

int store_blob_trash_purge(struct store *st, const char *prefix, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    char **p = NULL;
    int n = 0, rc;
    if (!c)
        return ERR_UNAVAILABLE;
    rc = db_prepare(c, prefix ? "SELECT prefix FROM blob_trash WHERE prefix=?1"
                              : "SELECT prefix FROM blob_trash ORDER BY created_ms LIMIT 100", &q, e);
    if (rc == 0) {
        if (prefix)
            db_bind_text(q, 1, prefix);
        while ((rc = db_step(q, e)) == DB_ROW) {
            p = xrealloc(p, (size_t)(n + 1) * sizeof *p);
            p[n++] = xstrdup(db_col_text(q, 0));
        }
        db_finalize(q);
    }
    for (int i = 0; i < n; i++) {
        int brc = store_blob_delete_prefix(st, p[i]);
        if (brc == 0 || brc == ERR_INVALID) {
            int r = db_run(c, e, "DELETE FROM blob_trash WHERE prefix=?1", "t", p[i]);
            if (r < 0 && rc == 0)
                rc = r;
        } else if (rc == 0) {
            rc = err_set(e, brc, "cannot delete the blob folder '%s': %s (retried by the expiry sweep)", p[i],
                         err_str(brc));
        }
        free(p[i]);
    }
    free(p);
    db_release(d, c);
    return rc < 0 ? rc : 0;
}

/* ---- expiry ----------------------------------------------------------------------------------- */

int store_batch_expire_one(struct store *st, int64_t now_ms, int64_t *bid_out, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    int64_t bid = -1;
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_prepare(c, "SELECT bid FROM batches WHERE expires_ms<=?1 ORDER BY expires_ms LIMIT 1", &q, e);
    if (rc == 0) {
        db_bind_int64(q, 1, now_ms);
        rc = db_step(q, e);
        if (rc == DB_ROW)
            bid = db_col_int64(q, 0);
    }
    db_finalize(q);
    db_release(d, c);
    if (rc < 0 || bid < 0)
        return rc < 0 ? rc : ERR_NOTFOUND;
    rc = store_batch_purge(st, bid, e);
    if (rc == 0)
        *bid_out = bid;
    return rc;
}

/* The job folder "jobs/<ws>/<job>" of an output blob key (noted once in
 * *v), if key is one. */
static void job_folder_note(const char *key, char ***v, int *n)
{
    const char *p = key;
    if (strncmp(key, "jobs/", 5) != 0)
        return;
    for (int slashes = 0; *p; p++)
        if (*p == '/' && ++slashes == 3)
            break;
    if (*p != '/')
        return;
    size_t len = (size_t)(p - key);
    for (int i = 0; i < *n; i++)
        if (strlen((*v)[i]) == len && !strncmp((*v)[i], key, len))
            return;
    *v = xrealloc(*v, (size_t)(*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrndup(key, len);
}

static void folders_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* 1 when an item of an output batch of the folder's workspace (folder:
 * "jobs/<ws>/<job>") other than batch except_bid names a blob under
 * folder/, 0 when none, or an error.
 * An exact prefix test (substr), not a range: a collation of PostgreSQL
 * may order '/' apart from its byte value. */
static int folder_has_items(struct db_conn *c, const char *folder, int64_t except_bid, struct err *e)
{
    struct db_stmt *q = NULL;
    const char *ws = folder + 5, *end = strchr(ws, '/');
    char *w = xstrndup(ws, end ? (size_t)(end - ws) : strlen(ws)), *pre = xasprintf("%s/", folder);
    int rc = db_prepare(c, "SELECT 1 FROM items WHERE bid IN (SELECT bid FROM batches WHERE workspace=?1 AND"
                           " ingest_mode='output' AND bid<>?3) AND substr(blob_key, 1, length(?2))=?2 LIMIT 1",
                        &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, w);
        db_bind_text(q, 2, pre);
        db_bind_int64(q, 3, except_bid);
        rc = db_step(q, e);
        rc = rc == DB_ROW ? 1 : rc < 0 ? rc : 0;
    }
    db_finalize(q);
    free(w);
    free(pre);
    return rc;
}

/* Queue in blob_trash (in c's transaction) the job folders whose last
 * output items are those of batch bid; trash[i] says which. */
static int trash_queue(struct db_conn *c, int64_t bid, char **folders, int nfolders, bool *trash, struct err *e)
{
    for (int i = 0; i < nfolders; i++) {
        int live = folder_has_items(c, folders[i], bid, e);
        if (live < 0)
            return live;
        trash[i] = false;
        if (!live) {
            int rc = store__blob_trash_add(c, folders[i], e);
            if (rc < 0)
                return rc;
            trash[i] = true;
        }
    }
    return 0;
}

int store_batch_purge(struct store *st, int64_t bid, struct err *e)
{
    struct db *d = store__db(st);
    struct db_conn *c = db_acquire(d, e);
    struct db_stmt *q = NULL;
    char **keys = NULL, **folders = NULL;
    int nkeys = 0, nfolders = 0, rc;
    if (!c)
        return ERR_UNAVAILABLE;
    char prefix[32], pfx_slash[40];
    store_batch_blob_prefix(bid, prefix);
    snprintf(pfx_slash, sizeof pfx_slash, "%s/", prefix);
    /* Output items may point at blobs outside the batch folder. */
    if (db_prepare(c, "SELECT DISTINCT blob_key FROM items WHERE bid=?1 AND substr(blob_key, 1, length(?2))<>?2", &q, e) == 0) {
        db_bind_int64(q, 1, bid);
        db_bind_text(q, 2, pfx_slash);
        while (db_step(q, e) == DB_ROW) {
            keys = xrealloc(keys, (size_t)(nkeys + 1) * sizeof *keys);
            keys[nkeys++] = xstrdup(db_col_text(q, 0));
        }
    }
    db_finalize(q);
    q = NULL;
    /* Blobs first, rows second: a crash in between leaves rows of an
     * expired batch (swept again), never blobs nobody points at.  So does
     * a blob store that fails (an object store out of reach): the rows
     * stay until a later sweep removes the blobs. */
    int brc = 0;
    for (int i = 0; i < nkeys; i++) {
        int r = store_blob_delete(st, keys[i]);
        if (r < 0 && r != ERR_INVALID && brc == 0)
            brc = r;
        job_folder_note(keys[i], &folders, &nfolders);
        free(keys[i]);
    }
    free(keys);
    if (brc == 0) {
        int r = store_blob_delete_prefix(st, prefix);
        brc = r == ERR_INVALID ? 0 : r;
    }
    if (brc < 0) {
        db_release(d, c);
        folders_free(folders, nfolders);
        return err_set(e, brc, "cannot delete the blobs of batch bid=%lld: %s (left to the expiry sweep)",
                       (long long)bid, err_str(brc));
    }
    /* The last output batch of a job gone: the rest of the job's blob
     * folder (persisted images packed into the export archives, files no
     * item names) is queued in blob_trash in the first transaction that
     * deletes anything of the batch, and deleted at the end.  Not later:
     * once the batch's items are gone a purge tried again (the last
     * transaction failed) no longer knows the folder. */
    bool *trash = nfolders ? xcalloc((size_t)nfolders, sizeof *trash) : NULL, queued = nfolders == 0;
    /* Items go in chunks of 10k, each its own short transaction, so a
     * 1M-item batch never holds the write lock for seconds. */
    for (;;) {
        struct err e2 = ERR_INIT;
        int64_t changed = -1;
        if (db_begin(c, &e2) == 0 && (queued || trash_queue(c, bid, folders, nfolders, trash, &e2) == 0) &&
            db_run(c, &e2, "UPDATE ws_usage SET staged_bytes = staged_bytes - COALESCE((SELECT sum(size) FROM items"
                           " WHERE id IN (SELECT id FROM items WHERE bid=?1 ORDER BY id LIMIT 10000)), 0)"
                           " WHERE workspace=(SELECT workspace FROM batches WHERE bid=?1)", "i", bid) == 0 &&
            db_run(c, &e2, "DELETE FROM items WHERE id IN (SELECT id FROM items WHERE bid=?1 ORDER BY id"
                           " LIMIT 10000)", "i", bid) == 0)
            changed = db_changes(c);
        if (changed < 0 || db_commit(c, &e2) < 0) {
            db_rollback(c);
            if (!queued)
                memset(trash, 0, (size_t)nfolders * sizeof *trash);
            break;
        }
        queued = true;
        if (changed == 0)
            break;
    }
    rc = db_begin(c, e);
    bool queued_now = !queued;
    if (rc == 0 && !queued)
        rc = trash_queue(c, bid, folders, nfolders, trash, e);
    if (rc == 0)
        rc = batch_rows_delete(c, bid, e);
    if (rc == 0)
        rc = db_commit(c, e);
    else
        db_rollback(c);
    if (rc == 0 && queued_now)
        queued = true;
    db_release(d, c);
    for (int i = 0; queued && i < nfolders; i++) {
        struct err e2 = ERR_INIT;
        if (trash[i] && store_blob_trash_purge(st, folders[i], &e2) < 0)
            log_warn("store", "batch bid=%lld expired; %s", (long long)bid, e2.msg);
    }
    free(trash);
    folders_free(folders, nfolders);
    return rc;
}
