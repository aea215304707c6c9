/*
 * staging_int.h (store) — private to the owner files of the Data Staging
 * tables (batches.c, shards.c, staging_schema.c): the calls they share
 * inside one transaction on one borrowed connection.
 */
#ifndef VBATCH_STORE_STAGING_INT_H
#define VBATCH_STORE_STAGING_INT_H

#include "store/db.h"
#include "store/store_int.h"
#include "store/store_staging.h"

/* batches.c: a text column as a malloc'd copy (NULL for SQL NULL). */
char *store__col_dup(struct db_stmt *q, int i);
/* batches.c, inside a transaction on c. */
int store__batch_find(struct db_conn *c, const char *ws, const char *batch, struct store_batch *out,
                      struct err *e);
int store__batch_get_or_create(struct store *st, struct db_conn *c, const char *ws, const char *batch,
                               const char *display_name, const char *mode, int64_t expiry_ms,
                               struct store_batch *out, struct err *e);
int store__item_insert(struct db_conn *c, int64_t bid, const struct store_item_new *it, struct err *e);
/* n items at once: one prepared INSERT, one count update per content type
 * and per part (the counts come out as n store__item_insert calls leave
 * them).  The only code that writes items rows. */
int store__items_insert(struct db_conn *c, int64_t bid, const struct store_item_new *items, int n, struct err *e);
int store__meta_part_ensure(struct db_conn *c, int64_t bid, struct err *e);
/* batches.c: upsert and so lock the workspace's ws_usage row until the
 * transaction ends (the quota checks of several processes serialize on
 * it); *staged_bytes (may be NULL) = its usage. */
int store__ws_lock(struct db_conn *c, const char *ws, int64_t *staged_bytes, struct err *e);
/* batches.c: make the batch invisible (expires_ms = 0) and its pending
 * upload URLs fail; store_batch_purge removes it afterwards. */
int store__batch_tombstone(struct db_conn *c, int64_t bid, struct err *e);
/* batches.c: queue the blob folder prefix for deletion (blob_trash), or
 * take it off the queue (a new job of the same id owns the folder again). */
int store__blob_trash_add(struct db_conn *c, const char *prefix, struct err *e);
int store__blob_trash_cancel(struct db_conn *c, const char *prefix, struct err *e);
/* jobs.c: 1 (job id in job, <= 79 bytes) when a running job of ws reads
 * batch or writes it (a stage's output batch), else 0; inside the
 * caller's transaction. */
int store__jobs_using_batch(struct db_conn *c, const char *ws, const char *batch, char job[80], struct err *e);
/* jobs.c: running (non-terminal) jobs of ws. */
int store__jobs_running(struct db_conn *c, const char *ws, int64_t *n, struct err *e);
/* shards.c: pending upload URLs of ws created after since_ms. */
int store__uploads_pending(struct db_conn *c, const char *ws, int64_t since_ms, int64_t *n, struct err *e);
/* quotas.c, inside a transaction on c, each locking the workspace first
 * (store__ws_lock): ERR_LIMIT when the workspace's items plus add bytes
 * would pass its staged-bytes quota (add 0: when it is reached);
 * ERR_QUOTA when its running jobs / pending upload URLs are at their
 * quota (one more would pass it). */
int store__quota_bytes_check(struct store *st, struct db_conn *c, const char *ws, int64_t add, struct err *e);
int store__quota_jobs_check(struct store *st, struct db_conn *c, const char *ws, struct err *e);
int store__quota_uploads_check(struct store *st, struct db_conn *c, const char *ws, struct err *e);
/* quotas.c, no lock: true in *unlimited when ws has neither a staged-bytes
 * nor a pending-uploads quota (a new upload URL needs no count then). */
int store__quota_uploads_unlimited(struct store *st, struct db_conn *c, const char *ws, bool *unlimited,
                                   struct err *e);

/* Run body(st, c, ud, e) in one transaction on a borrowed connection:
 * committed when it returns 0, rolled back otherwise. */
int store__staging_tx(struct store *st, int (*body)(struct store *, struct db_conn *, void *, struct err *),
                      void *ud, struct err *e);

/* staging_schema.c */
extern const char *const store__staging_migrations_sqlite[];
extern const int store__staging_migrations_sqlite_n;
extern const char *const store__staging_migrations_pg[];
extern const int store__staging_migrations_pg_n;

#endif
