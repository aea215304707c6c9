/*
 * items.c — staged files for the jobs module (input pages, sidecar
 * lookups, counts) and the output batches jobs write their results to.
 */
#include "staging/staging.h"

#include <stdlib.h>
#include <string.h>

#include "staging/staging_int.h"

/* Move a store row into the jobs' view of an item (the strings change
 * owner; the store row is left empty). */
static void item_take(struct staging_item *dst, struct store_item *src)
{
    dst->id = src->id;
    dst->name = src->name;
    dst->part = src->part;
    dst->shard_id = src->shard_id;
    dst->content_type = src->content_type;
    dst->mime = src->mime;
    dst->blob_key = src->blob_key;
    dst->size = src->size;
    dst->offset = src->offset;
    free(src->nested_content_type);
    memset(src, 0, sizeof *src);
}

static int items_page(struct staging *s, const char *ws, const char *batch, const char *part, bool media_only,
                      int64_t after_id, int limit, struct staging_item **items, int *n, struct err *err)
{
    struct store_item *rows = NULL;
    int cnt = 0;
    if (limit <= 0 || limit > 10000) {
        err_printf(err, "limit must be 1..10000");
        return ERR_INVALID;
    }
    int rc = store_items_page(s->st, ws, batch, part, media_only, after_id, limit, &rows, &cnt, err);
    if (rc < 0)
        return rc;
    struct staging_item *arr = xcalloc((size_t)limit, sizeof *arr);
    for (int i = 0; i < cnt; i++)
        item_take(&arr[i], &rows[i]);
    free(rows);
    *items = arr;
    *n = cnt;
    return 0;
}

int staging_items_page(struct staging *s, const char *ws, const char *batch, const char *part, int64_t after_id,
                       int limit, struct staging_item **items, int *n, struct err *err)
{
    return items_page(s, ws, batch, part, false, after_id, limit, items, n, err);
}

int staging_items_page_media(struct staging *s, const char *ws, const char *batch, const char *part,
                             int64_t after_id, int limit, struct staging_item **items, int *n, struct err *err)
{
    return items_page(s, ws, batch, part, true, after_id, limit, items, n, err);
}

int staging_item_find(struct staging *s, const char *ws, const char *batch, const char *part, const char *name,
                      struct staging_item *out, struct err *err)
{
    struct store_item row;
    memset(out, 0, sizeof *out);
    int rc = store_item_find(s->st, ws, batch, part, name, &row, err);
    if (rc == 0)
        item_take(out, &row);
    return rc;
}

void staging_item_release(struct staging_item *it)
{
    if (!it)
        return;
    free(it->name);
    free(it->part);
    free(it->shard_id);
    free(it->content_type);
    free(it->mime);
    free(it->blob_key);
    memset(it, 0, sizeof *it);
}

void staging_items_free(struct staging_item *items, int n)
{
    if (!items)
        return;
    for (int i = 0; i < n; i++)
        staging_item_release(&items[i]);
    free(items);
}

int staging_output_batch_create(struct staging *s, const char *ws, const char *batch, const char *display_name,
                                struct err *err)
{
    return store_batch_create_output(s->st, ws, batch, display_name, s->o.expiry_ms, err);
}

int staging_output_part_add(struct staging *s, const char *ws, const char *batch, const char *part,
                            const char *part_type, const char *content_type, const char *description,
                            const char *nested_content_type, struct err *err)
{
    if (!id_valid(part, 64) || !part_type || !content_type) {
        err_printf(err, "invalid part");
        return ERR_INVALID;
    }
    return store_part_add(s->st, ws, batch, part, part_type, content_type, description, nested_content_type, err);
}

int staging_output_item_add(struct staging *s, const char *ws, const char *batch, const char *part,
                            const char *file_name, const char *content_type, const char *mime,
                            const char *blob_key, int64_t size, struct err *err)
{
    if (!staging__name_valid(file_name) || !store_blob_key_valid(blob_key) || !content_type) {
        err_printf(err, "invalid output item");
        return ERR_INVALID;
    }
    struct store_item_new it = {part, file_name, NULL, content_type, mime, blob_key, size, false, 0};
    return store_item_add(s->st, ws, batch, 0, false, &it, err);
}
