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
