/*
 * staging.c (api) — HTTP handlers of the Data Staging API
 * (/data-staging/v1/external/{workspace}/batches…, COMPAT.md section 1)
 * and of the signed blob URLs vbatch serves for its local store
 * (/blobs/<key>?method&expires&limit&signature).
 *
 * The handlers only authenticate, check ids and query values, and call one
 * staging function each; the JSON shapes are built by staging/.
 *
 * Uploads never sit in memory:
 *   - upload/image: the multipart body is parsed as it arrives
 *     (http_multipart_*) and the first file part (whatever its field name,
 *     the CLI names it after the file) streams into a temp file under
 *     DATA/tmp; other parts are dropped.  The temp file is handed to
 *     staging_upload_image, which moves it into the blob store, or deleted
 *     when the request ends any other way (client gone, error).
 *   - PUT /blobs/…: chunks go straight to staging_put_write (temp file,
 *     fsync, rename in staging_put_finish; abort removes it).
 */
#include "api/api.h"

#include "base/base.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DS "/data-staging/v1/external/{workspace}/batches"
#define BATCH_ID_MAX 64

/* Authenticate and return the batch id, or NULL after replying. */
static const char *ds_batch(struct http_req *req, struct api_ctx *ctx, char ws[STORE_WS_MAX + 1])
{
    if (api_auth(req, ctx, ws) < 0)
        return NULL;
    return api_id_param(req, "batch_id", "batch id", BATCH_ID_MAX);
}

static const char *ds_display_name(struct http_req *req)
{
    const char *d = http_req_query(req, "displayName");
    return d && *d ? d : NULL;
}

/* ---- reads ------------------------------------------------------------------ */

static int ds_list_batches(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    int page;

    if (api_auth(req, ctx, ws) < 0 || api_int_query(req, "pageSize", ctx->max_page_size > 0 ? ctx->max_page_size : 1000, &page) < 0)
        return 0;
    int rc = staging_list_batches(ctx->sg, ws, page, http_req_query(req, "nextPageToken"), &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_batch_get(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    const char *b = ds_batch(req, ctx, ws);

    if (!b)
        return 0;
    int rc = staging_batch_get(ctx->sg, ws, b, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_count(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    const char *b = ds_batch(req, ctx, ws);

    if (!b)
        return 0;
    int rc = staging_batch_count(ctx->sg, ws, b, http_req_query(req, "partName"), &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_parts(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    const char *b = ds_batch(req, ctx, ws);

    if (!b)
        return 0;
    int rc = staging_batch_parts(ctx->sg, ws, b, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_list(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    int page;
    const char *b = ds_batch(req, ctx, ws);

    if (!b || api_int_query(req, "pageSize", ctx->max_page_size > 0 ? ctx->max_page_size : 1000, &page) < 0)
        return 0;
    int rc = staging_list_items(ctx->sg, ws, b, http_req_query(req, "partName"), page,
                                http_req_query(req, "nextPageToken"), &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_shards(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    int page;
    const char *b = ds_batch(req, ctx, ws);

    if (!b || api_int_query(req, "pageSize", ctx->max_page_size > 0 ? ctx->max_page_size : 1000, &page) < 0)
        return 0;
    int rc = staging_list_shards(ctx->sg, ws, b, page, http_req_query(req, "nextPageToken"), &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_batch_delete(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    const char *b = ds_batch(req, ctx, ws);

    if (!b)
        return 0;
    int rc = staging_batch_delete(ctx->sg, ws, b, &out, &e);
    return api_reply(req, rc, out, &e);
}

/* ---- signed-URL requests and reference ingests --------------------------------- */

static int ds_video_url(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    const char *b = ds_batch(req, ctx, ws);

    if (!b)
        return 0;
    const char *fn = http_req_query(req, "fileName");
    if (!fn || !*fn)
        return http_reply_error(req, 400, "missing fileName query parameter");
    int rc = staging_upload_video_url(ctx->sg, ws, b, ds_display_name(req), fn, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_bulk_url(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    const char *b = ds_batch(req, ctx, ws);

    if (!b)
        return 0;
    /* contentLength (vbatch's own; not in Roboflow's API): the shard's size,
     * signed into the URL so that the store refuses any other */
    int64_t len = -1;
    const char *cl = http_req_query(req, "contentLength");
    if (cl) {
        char *end;
        errno = 0;
        long long n = strtoll(cl, &end, 10);
        /* 0 is refused too: an empty file is no tar, and vbatch's own URL
         * (the local folder) signs limit 0 as "no limit" */
        if (end == cl || *end || errno || n < 1 || !isdigit((unsigned char)cl[0]))
            return http_reply_error(req, 400, "invalid contentLength '%.32s': expected a byte count of at least 1",
                                    cl);
        len = n;
    }
    int rc = staging_bulk_upload_url_sized(ctx->sg, ws, b, ds_display_name(req), len, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_refs(struct http_req *req, struct api_ctx *ctx, bool video)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    size_t len;
    const char *b = ds_batch(req, ctx, ws);

    if (!b)
        return 0;
    const char *body = http_req_body(req, &len);
    /* Check the JSON here so that a malformed body gets the parser's message. */
    json_t *j = http_req_body_json(req);
    if (!j)
        return 0;
    bool is_obj = json_is_object(j);
    json_decref(j);
    if (!is_obj)
        return http_reply_error(req, 400, "the body must be a JSON object");
    int rc = staging_ingest_references(ctx->sg, ws, b, ds_display_name(req), video, body, len, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int ds_image_refs(struct http_req *req, void *vctx)
{
    return ds_refs(req, vctx, false);
}

static int ds_video_refs(struct http_req *req, void *vctx)
{
    return ds_refs(req, vctx, true);
}

/* ---- upload/image: streamed multipart ------------------------------------------------ */

struct up_img {
    struct api_ctx *ctx;
    char ws[STORE_WS_MAX + 1];
    struct http_multipart *mp;
    int fd;               /* temp file, -1 once closed */
    char *tmp_path;       /* owned; NULL once handed to staging */
    char *part_filename;  /* owned: filename= of the part kept */
    bool writing;         /* inside the part being kept */
    bool have_file;       /* a part with a filename is being/was kept */
    bool any_part;
    uint64_t size;        /* bytes of the kept part (buffered + written) */
    bool too_big;
    int write_err;
    size_t wlen;          /* bytes waiting in wbuf */
    char wbuf[64 * 1024]; /* the parser hands data over in small pieces (it
                           * splits at every CR): batch them into few writes */
};

static int up_flush(struct up_img *u)
{
    int rc = fd_write_all(u->fd, u->wbuf, u->wlen);
    if (rc < 0)
        return u->write_err = rc;
    u->wlen = 0;
    return 0;
}

static void up_img_free(void *p)
{
    struct up_img *u = p;
    if (!u)
        return;
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp_path) {
        unlink(u->tmp_path);
        free(u->tmp_path);
    }
    free(u->part_filename);
    http_multipart_free(u->mp);
    free(u);
}

static int up_part_begin(void *arg, const struct http_mp_part *p)
{
    struct up_img *u = arg;
    bool take = false;

    if (!u->have_file && p->filename) {
        take = true;
        u->have_file = true;
    } else if (!u->any_part) {
        take = true; /* provisional: replaced by a later part that has a filename */
    }
    u->any_part = true;
    if (take) {
        if (u->size > 0) {
            if (ftruncate(u->fd, 0) < 0 || lseek(u->fd, 0, SEEK_SET) < 0)
                return -errno;
            u->size = 0;
            u->wlen = 0;
        }
        free(u->part_filename);
        u->part_filename = p->filename ? xstrdup(p->filename) : NULL;
    }
    u->writing = take;
    return 0;
}

static int up_part_data(void *arg, const char *d, size_t n)
{
    struct up_img *u = arg;
    if (!u->writing)
        return 0;
    if (u->size + n > u->ctx->max_image_bytes) {
        u->too_big = true;
        return ERR_LIMIT;
    }
    u->size += n;
    while (n > 0) {
        size_t k = MIN(n, sizeof(u->wbuf) - u->wlen);
        memcpy(u->wbuf + u->wlen, d, k);
        u->wlen += k;
        d += k;
        n -= k;
        if (u->wlen == sizeof(u->wbuf) && up_flush(u) < 0)
            return u->write_err;
    }
    return 0;
}

static int up_part_end(void *arg)
{
    struct up_img *u = arg;
    int rc = u->writing ? up_flush(u) : 0;
    u->writing = false;
    return rc;
}

static int up_begin(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct up_img *u;
    const char *b;
    int rc;

    u = xcalloc(1, sizeof(*u));
    u->fd = -1;
    u->ctx = ctx;
    http_req_set_state(req, u, up_img_free);
    b = ds_batch(req, ctx, u->ws);
    if (!b)
        return 0;
    struct http_mp_cb cb = {up_part_begin, up_part_data, up_part_end, u};
    rc = http_multipart_new(http_req_header(req, "Content-Type"), &cb, &u->mp);
    if (rc < 0)
        return http_reply_error(req, 400, "expected a multipart/form-data body with a boundary");
    struct err e = ERR_INIT;
    int64_t cl = http_req_content_length(req);
    rc = store_space_check(ctx->st, cl > 0 ? cl : 0, "this upload", &e);
    if (rc < 0)
        return api_reply_err(req, rc, &e);
    rc = store_tmp_create(ctx->st, &u->tmp_path, &u->fd);
    if (rc < 0)
        return api_reply_errf(req, rc, "cannot create a temp file: %s", err_str(rc));
    return 0;
}

static int up_body(struct http_req *req, const char *d, size_t n, void *vctx)
{
    struct up_img *u = http_req_state(req);
    (void)vctx;
    int rc = http_multipart_feed(u->mp, d, n);
    if (rc == 0 || rc == ERR_AGAIN)
        return 0;
    if (u->too_big)
        return http_reply_error(req, 413, "image is over the limit of %llu bytes",
                                (unsigned long long)u->ctx->max_image_bytes);
    if (u->write_err)
        return api_reply_errf(req, u->write_err, "cannot write the upload: %s", err_str(u->write_err));
    return http_reply_error(req, 400, "malformed multipart body: %s", err_str(rc));
}

static int up_end(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct up_img *u = http_req_state(req);
    json_t *out = NULL;
    struct err e = ERR_INIT;

    if (http_multipart_finish(u->mp) < 0)
        return http_reply_error(req, 400, "malformed multipart body: it ends before the closing boundary");
    if (!u->any_part)
        return http_reply_error(req, 400, "the multipart body has no file part");
    const char *fn = http_req_query(req, "fileName");
    if (!fn || !*fn)
        fn = u->part_filename;
    if (!fn || !*fn)
        return http_reply_error(req, 400, "missing fileName query parameter");
    if (close(u->fd) < 0) {
        int rc = -errno;
        u->fd = -1;
        err_set(&e, rc, "cannot write the upload: %s", err_str(rc));
        return api_reply_err(req, rc, &e);
    }
    u->fd = -1;
    char *tmp = u->tmp_path;
    u->tmp_path = NULL; /* consumed by staging in every case */
    int rc = staging_upload_image(ctx->sg, u->ws, http_req_param(req, "batch_id"),
                                  ds_display_name(req), fn, tmp, &out, &e);
    free(tmp);
    return api_reply(req, rc, out, &e);
}

/* ---- signed blob URLs ----------------------------------------------------------------- */

/* A signed URL carries each of its fields once: a second copy would be
 * ignored here (the first wins) but might be the one a proxy reads. */
static int blob_query_unique(struct http_req *req)
{
    static const char *const f[] = {"method", "expires", "limit", "offset", "length", "signature"};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (http_req_query_count(req, f[i]) > 1) {
            http_reply_error(req, 400, "signed URL field '%s' is given more than once", f[i]);
            return ERR_INVALID;
        }
    return 0;
}

static void blob_put_free(void *p)
{
    staging_put_abort(p);
}

static int blob_put_begin(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct staging_put *p = NULL;
    struct err e = ERR_INIT;
    if (blob_query_unique(req) < 0)
        return 0;
    int rc = staging_put_open(ctx->sg, http_req_param(req, "key"), http_req_query(req, "method"),
                              http_req_query(req, "expires"), http_req_query(req, "limit"),
                              http_req_query(req, "signature"), http_req_content_length(req), &p, &e);
    if (rc < 0)
        return api_reply(req, rc, NULL, &e);
    http_req_set_state(req, p, blob_put_free);
    return 0;
}

static int blob_put_body(struct http_req *req, const char *d, size_t n, void *vctx)
{
    struct err e = ERR_INIT;
    (void)vctx;
    int rc = staging_put_write(http_req_state(req), d, n, &e);
    return rc < 0 ? api_reply_err(req, rc, &e) : 0;
}

static int blob_put_end(struct http_req *req, void *vctx)
{
    struct staging_put *p = http_req_state(req);
    struct err e = ERR_INIT;
    (void)vctx;
    http_req_set_state(req, NULL, NULL); /* finish frees p in every case */
    int rc = staging_put_finish(p, &e);
    return api_reply(req, rc, rc < 0 ? NULL : json_pack("{s:s}", "status", "ok"), &e);
}

static int blob_get(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    int fd = -1;
    int64_t start = 0, size = 0;
    const char *mime = NULL;
    struct err e = ERR_INIT;
    if (blob_query_unique(req) < 0)
        return 0;
    int rc = staging_get_open(ctx->sg, http_req_param(req, "key"), http_req_query(req, "method"),
                              http_req_query(req, "expires"), http_req_query(req, "limit"),
                              http_req_query(req, "offset"), http_req_query(req, "length"),
                              http_req_query(req, "signature"), &fd, &start, &size, &mime, &e);
    if (rc < 0)
        return api_reply(req, rc, NULL, &e);
    return http_reply_fd_at(req, 200, mime ? mime : "application/octet-stream", fd, (uint64_t)start,
                            (uint64_t)size);
}

/* ---- registration ---------------------------------------------------------------------- */

int api_staging_register(struct http_router *r, struct api_ctx *ctx)
{
    const struct http_route_ops small_post = {.end = NULL, .max_body = 64 * 1024};
    struct http_route_ops ops;
    int rc = 0;

#define GET(p, fn) if (rc == 0) rc = http_router_get(r, p, fn, ctx)
#define ADD(m, p, o) if (rc == 0) rc = http_router_add(r, m, p, &(o), ctx)
    GET(DS, ds_list_batches);
    GET(DS "/{batch_id}", ds_batch_get);
    GET(DS "/{batch_id}/count", ds_count);
    GET(DS "/{batch_id}/parts", ds_parts);
    GET(DS "/{batch_id}/list", ds_list);
    GET(DS "/{batch_id}/shards", ds_shards);

    ops = small_post;
    ops.end = ds_batch_delete;
    ADD("DELETE", DS "/{batch_id}", ops);
    ops.end = ds_video_url;
    ADD("POST", DS "/{batch_id}/upload/video", ops);
    ops.end = ds_bulk_url;
    ADD("POST", DS "/{batch_id}/bulk-upload/image-files", ops);

    ops = (struct http_route_ops){.end = ds_image_refs, .max_body = ctx->max_json_bytes};
    ADD("POST", DS "/{batch_id}/bulk-upload/image-references", ops);
    ops.end = ds_video_refs;
    ADD("POST", DS "/{batch_id}/bulk-upload/video-references", ops);

    ops = (struct http_route_ops){.begin = up_begin, .body = up_body, .end = up_end,
                                  .max_body = ctx->max_image_bytes + 64 * 1024};
    ADD("POST", DS "/{batch_id}/upload/image", ops);

    ops = (struct http_route_ops){.begin = blob_put_begin, .body = blob_put_body,
                                  .end = blob_put_end, .max_body = ctx->max_put_bytes};
    ADD("PUT", "/blobs/{key*}", ops);
    GET("/blobs/{key*}", blob_get);
    ops = (struct http_route_ops){.end = blob_get};
    ADD("HEAD", "/blobs/{key*}", ops);
#undef GET
#undef ADD
    return rc;
}
