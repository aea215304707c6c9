/*
 * store_models.h — the models table (core migrations 2 and 3): which
 * generation of blobs is the live one of each stored model.  Its owner
 * file is src/store/models.c; src/jobs/models.c (the registry side:
 * building, checking, loading models, the blobs) calls these, as api/
 * calls store_workflow_* for the workflows table.
 *
 * A model's scope is its workspace: NULL for the operator's ('' in the
 * table).  Errors (base.h): 0 or a negative code, the reason in *e.
 * Thread safety: every function may be called from any thread.
 */
#ifndef VBATCH_STORE_MODELS_H
#define VBATCH_STORE_MODELS_H

#include <stdint.h>

#include "base/base.h"
#include "store/store.h"

/* Insert or replace the row of (ws, id) in one transaction; *old_wkey is
 * the weights key the row named before (malloc'd), NULL for a new row.
 * ERR_AGAIN "the database is busy". */
int store_models_put(struct store *st, const char *ws, const char *id, const char *weights_key,
                     const char *meta_key, int64_t size, const char *sha256_hex, char **old_wkey,
                     struct err *e);
/* Delete the row of (ws, id); *old_wkey its weights key (malloc'd).
 * ERR_NOTFOUND (no message) when there is no such row. */
int store_models_delete(struct store *st, const char *ws, const char *id, char **old_wkey, struct err *e);

struct store_model_row {
    char *ws; /* NULL: the operator's */
    char *id, *wkey, *mkey, *sha;
    int64_t size, created_ms, updated_ms;
};
void store_model_rows_free(struct store_model_row *r, size_t n);
/* Every row, by workspace (the operator's first) then id; *rows malloc'd. */
int store_models_list(struct store *st, struct store_model_row **rows, size_t *n, struct err *e);

#endif
