/*
 * views.c — the read side of the Data Staging API: batches, counts, parts,
 * item and shard listings, as the JSON spec/COMPAT.md shows.
 *
 * Pagination is keyset (store_staging.h): a page asks store/ for limit+1
 * rows after the last id of the previous page; the extra row says whether
 * there is a next page.  The token is page_token_make(scope, last id)
 * (base.h): opaque to clients, and refused by any other listing (the
 * scope names the listing: workspace, batch, part).
 */
#include "staging/staging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "staging/staging_int.h"

#define PAGE_SCOPE_MAX 512 /* "items|<ws>|<batch>|<part>": ids of bounded length */

/* pageSize and nextPageToken of a listing; scope names the listing so that
 * its tokens are refused by any other (page_token_make in base.h). */
static int page_args(struct staging *s, const char *scope, int page_size, const char *token, int *limit,
                     int64_t *after, struct err *err)
{
    *after = 0;
    if (page_size <= 0)
        page_size = s->o.default_page_size;
    if (page_size > s->o.max_page_size) {
        err_printf(err, "pageSize must be between 1 and %d", s->o.max_page_size);
        return ERR_INVALID;
    }
    *limit = page_size;
    if (page_token_parse(scope, token, after) < 0) {
        err_printf(err, "invalid nextPageToken: not one this listing gave");
        return ERR_INVALID;
    }
    return 0;
}

/* The token of the page after `last` when n rows came for a page of limit. */
static json_t *next_token(const char *scope, int n, int limit, int64_t last)
{
    if (n <= limit)
        return json_null();
    char *t = page_token_make(scope, last);
    json_t *j = json_string(t);
    free(t);
    return j;
}

static json_t *ts_json(int64_t ms)
{
    char b[TIME_ISO_LEN];
    time_iso8601(ms, b);
    return json_string(b);
}

static json_t *batch_json(const struct store_batch_info *r)
{
    json_t *b = json_object();
    json_object_set_new(b, "displayName", json_string(r->display_name));
    json_object_set_new(b, "batchId", json_string(r->batch_id));
    json_object_set_new(b, "batchType", json_string(r->batch_type));
    json_object_set_new(b, "batchContentType", json_string(r->content_type));
    json_object_set_new(b, "createdDate", ts_json(r->created_ms));
    json_object_set_new(b, "expiryDate", ts_json(r->expires_ms));
    /* vbatch's own (not in Roboflow's BatchMetadata; clients ignore them) */
    json_object_set_new(b, "fileCount", json_integer(r->item_count));
    if (r->bytes >= 0)
        json_object_set_new(b, "sizeBytes", json_integer(r->bytes));
    return b;
}

int staging_list_batches(struct staging *s, const char *ws, int page_size, const char *page_token_s, json_t **out,
                         struct err *err)
{
    int limit, n = 0;
    int64_t after;
    char scope[PAGE_SCOPE_MAX];
    struct store_batch_info *rows = NULL;
    snprintf(scope, sizeof scope, "batches|%s", ws);
    int rc = page_args(s, scope, page_size, page_token_s, &limit, &after, err);
    if (rc < 0)
        return rc;
    staging_settle(s, ws); /* file counts with the shards answered so far */
    if ((rc = store_batches_page(s->st, ws, after, limit + 1, &rows, &n, err)) < 0) {
        err_printf(err, "database error");
        return rc;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(arr, batch_json(&rows[i]));
    json_t *next = next_token(scope, n, limit, n > limit ? rows[limit - 1].bid : 0);
    store_batch_infos_free(rows, n);
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "batches", arr, "nextPageToken", next);
    return 0;
}

int staging_batch_get(struct staging *s, const char *ws, const char *batch, json_t **out, struct err *err)
{
    struct store_batch_info b;
    staging_settle(s, ws);
    int rc = store_batch_info_get(s->st, ws, batch, &b, err);
    if (rc < 0)
        return rc;
    *out = json_pack("{s:s,s:o}", "status", "ok", "batch", batch_json(&b));
    store_batch_info_release(&b);
    return 0;
}

int staging_batch_delete(struct staging *s, const char *ws, const char *batch, json_t **out, struct err *err)
{
    int rc = store_batch_delete(s->st, ws, batch, err);
    if (rc < 0)
        return rc;
    log_info("staging", "batch deleted ws=%s batch=%s", ws, batch);
    *out = json_pack("{s:s,s:s,s:b}", "status", "ok", "batchId", batch, "deleted", 1);
    return 0;
}

int staging_items_count(struct staging *s, const char *ws, const char *batch, const char *part, int64_t *n,
                        struct err *err)
{
    staging_settle(s, ws); /* the items of every shard answered so far (a job's plan too) */
    return store_batch_count(s->st, ws, batch, part, n, err);
}

int staging_batch_count(struct staging *s, const char *ws, const char *batch, const char *part_name, json_t **out,
                        struct err *err)
{
    int64_t n = 0;
    int rc = staging_items_count(s, ws, batch, part_name && *part_name ? part_name : NULL, &n, err);
    if (rc == 0)
        *out = json_pack("{s:s,s:I}", "status", "ok", "count", (json_int_t)n);
    return rc;
}

int staging_batch_parts(struct staging *s, const char *ws, const char *batch, json_t **out, struct err *err)
{
    struct store_part *parts = NULL;
    int n = 0;
    staging_settle(s, ws); /* a shard's sidecars make the metadata part as it is recorded */
    int rc = store_batch_parts(s->st, ws, batch, &parts, &n, err);
    if (rc < 0)
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_t *p = json_pack("{s:s,s:s,s:s}", "partName", parts[i].name, "partType", parts[i].type, "contentType",
                              parts[i].content_type);
        if (parts[i].description)
            json_object_set_new(p, "partDescription", json_string(parts[i].description));
        if (parts[i].nested_content_type)
            json_object_set_new(p, "nestedContentType", json_string(parts[i].nested_content_type));
        json_array_append_new(arr, p);
    }
    store_parts_free(parts, n);
    /* "batchParts" is what the CLI reads, "parts" what the seed documents */
    *out = json_pack("{s:s,s:O,s:o}", "status", "ok", "batchParts", arr, "parts", arr);
    return 0;
}

/* A whole blob, or (offset >= 0) the length bytes of a tar shard's item.
 * A whole blob on the S3 backend: a presigned GET of the object store
 * (the client downloads straight from it).  A shard item (a range of the
 * shard object: a presigned URL cannot impose a range) and every URL on
 * the local folder: vbatch's own signed /blobs URL. */
static char *download_url(struct staging *s, const char *key, int64_t offset, int64_t length)
{
    char *path = NULL, *url = NULL;
    int64_t exp = (time_now_ms() + s->o.download_url_ttl_ms) / 1000;
    if (offset < 0) {
        int rc = store_blob_presign(s->st, "GET", key, exp, -1, &url);
        if (rc == 0)
            return url;
        if (rc != ERR_UNSUPPORTED)
            return NULL;
    }
    if ((offset < 0 ? store_sign_path(s->st, "GET", key, exp, 0, &path)
                    : store_sign_get_range(s->st, key, exp, offset, length, &path)) < 0)
        return NULL;
    url = xasprintf("%s%s", s->base_url, path);
    free(path);
    return url;
}

int staging_list_items(struct staging *s, const char *ws, const char *batch, const char *part_name, int page_size,
                       const char *page_token_s, json_t **out, struct err *err)
{
    int limit, n = 0;
    int64_t after;
    char scope[PAGE_SCOPE_MAX];
    struct store_item *items = NULL;
    if (part_name && !*part_name)
        part_name = NULL;
    snprintf(scope, sizeof scope, "items|%s|%s|%s", ws, batch, part_name ? part_name : "");
    int rc = page_args(s, scope, page_size, page_token_s, &limit, &after, err);
    if (rc < 0)
        return rc;
    staging_settle(s, ws);
    if ((rc = store_items_list(s->st, ws, batch, part_name, after, limit + 1, &items, &n, err)) < 0)
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < n && i < limit; i++) {
        const struct store_item *it = &items[i];
        char *url = download_url(s, it->blob_key, it->offset, it->size);
        json_t *f = json_pack("{s:s?,s:s,s:s}", "downloadURL", url, "fileName", it->name, "contentType",
                              it->content_type);
        free(url);
        if (it->part)
            json_object_set_new(f, "partName", json_string(it->part));
        if (it->shard_id)
            json_object_set_new(f, "shardId", json_string(it->shard_id));
        if (it->nested_content_type)
            json_object_set_new(f, "nestedContentType", json_string(it->nested_content_type));
        json_array_append_new(arr, f);
    }
    json_t *next = next_token(scope, n, limit, n > limit ? items[limit - 1].id : 0);
    store_items_free(items, n);
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "filesMetadata", arr, "nextPageToken", next);
    return 0;
}

int staging_list_shards(struct staging *s, const char *ws, const char *batch, int page_size,
                        const char *page_token_s, json_t **out, struct err *err)
{
    int limit, n = 0;
    int64_t after;
    char scope[PAGE_SCOPE_MAX];
    struct store_shard_info *rows = NULL;
    snprintf(scope, sizeof scope, "shards|%s|%s", ws, batch);
    int rc = page_args(s, scope, page_size, page_token_s, &limit, &after, err);
    if (rc < 0)
        return rc;
    /* the shards of the URLs answered so far, written, and of the shards
     * answered so far, recorded: one second for both */
    int64_t t0 = time_mono_ms();
    staging__urls_settle(s, 1000);
    staging__commit_wait_idle(s, ws, MAX(0, 1000 - (time_mono_ms() - t0)));
    if ((rc = store_shards_page(s->st, ws, batch, after, limit + 1, &rows, &n, err)) < 0)
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < n && i < limit; i++) {
        const struct store_shard_info *r = &rows[i];
        json_t *meta = r->status_meta ? json_loads(r->status_meta, 0, NULL) : NULL;
        if (!json_is_object(meta)) {
            json_decref(meta);
            meta = json_object();
        }
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:o,s:I,s:o}", "shardId", r->shard_id, "statusName",
                                             r->status_name, "statusType", r->status_type, "eventTimestamp",
                                             ts_json(r->event_ms), "shardObjectsCount", (json_int_t)r->objects,
                                             "statusMetadata", meta));
    }
    json_t *next = next_token(scope, n, limit, n > limit ? rows[limit - 1].id : 0);
    store_shard_infos_free(rows, n);
    *out = json_pack("{s:s,s:o,s:o}", "status", "ok", "shards", arr, "nextPageToken", next);
    return 0;
}
