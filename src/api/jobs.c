/*
 * jobs.c (api) — HTTP handlers of the Batch Processing API.  Each handler
 * authenticates (the key's workspace must be the path's), checks the ids
 * and query values and calls one jobs_* function, whose JSON is sent as it
 * is (200) or whose error becomes {"error": "<message>"} (api_reply: the
 * status from api_http_status, the message from the call's struct err).
 */
#include "api/jobs.h"

#include "base/base.h"
#include "jobs/jobs.h"

#include <string.h>

#define BP "/batch-processing/v1/external/{workspace}/jobs"
#define JOB_ID_MAX 20
#define JOB_BODY_MAX (1u << 20)

/* Authenticate; returns the service or NULL after replying. */
static struct jobs *bp_auth(struct http_req *req, struct api_ctx *ctx, char ws[STORE_WS_MAX + 1])
{
    if (api_auth(req, ctx, ws) < 0)
        return NULL;
    if (!ctx->jobs) {
        http_reply_error(req, 503, "batch processing is not running on this server");
        return NULL;
    }
    return ctx->jobs;
}

static const char *bp_job(struct http_req *req)
{
    return api_id_param(req, "job_id", "job id", JOB_ID_MAX);
}

static int bp_list(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    int page;
    struct jobs *j = bp_auth(req, vctx, ws);
    if (!j || api_int_query(req, "pageSize", 1000, &page) < 0)
        return 0;
    int rc = jobs_list(j, ws, page, http_req_query(req, "nextPageToken"), &out, &e);
    return api_reply(req, rc, out, &e);
}

static int bp_get(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    struct jobs *j = bp_auth(req, vctx, ws);
    const char *id = j ? bp_job(req) : NULL;
    if (!id)
        return 0;
    int rc = jobs_get(j, ws, id, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int bp_create(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    struct jobs *j = bp_auth(req, vctx, ws);
    const char *id = j ? bp_job(req) : NULL;
    if (!id)
        return 0;
    json_t *body = http_req_body_json(req);
    if (!body)
        return 0;
    int rc = jobs_create(j, ws, id, http_req_query(req, "name"), body, &out, &e);
    json_decref(body);
    return api_reply(req, rc, out, &e);
}

static int bp_stages(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    struct jobs *j = bp_auth(req, vctx, ws);
    const char *id = j ? bp_job(req) : NULL;
    if (!id)
        return 0;
    int rc = jobs_stages(j, ws, id, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int bp_tasks(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    int page;
    struct jobs *j = bp_auth(req, vctx, ws);
    const char *id = j ? bp_job(req) : NULL;
    if (!id)
        return 0;
    const char *stage = api_id_param(req, "stage_id", "stage id", 64);
    if (!stage || api_int_query(req, "pageSize", 1000, &page) < 0)
        return 0;
    int rc = jobs_tasks(j, ws, id, stage, page, http_req_query(req, "nextPageToken"), &out, &e);
    return api_reply(req, rc, out, &e);
}

static int bp_abort(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    struct jobs *j = bp_auth(req, vctx, ws);
    const char *id = j ? bp_job(req) : NULL;
    if (!id)
        return 0;
    int rc = jobs_abort(j, ws, id, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int bp_delete(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    struct jobs *j = bp_auth(req, vctx, ws);
    const char *id = j ? bp_job(req) : NULL;
    if (!id)
        return 0;
    int rc = jobs_delete(j, ws, id, &out, &e);
    return api_reply(req, rc, out, &e);
}

static int bp_restart(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL, *body = NULL;
    struct err e = ERR_INIT;
    size_t len = 0;
    struct jobs *j = bp_auth(req, vctx, ws);
    const char *id = j ? bp_job(req) : NULL;
    if (!id)
        return 0;
    const char *raw = http_req_body(req, &len);
    bool blank = true;
    for (size_t i = 0; raw && i < len; i++)
        blank &= raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n';
    if (!blank) {
        body = http_req_body_json(req);
        if (!body)
            return 0;
    }
    int rc = jobs_restart(j, ws, id, body, &out, &e);
    json_decref(body);
    return api_reply(req, rc, out, &e);
}

static int bp_logs(struct http_req *req, void *vctx)
{
    char ws[STORE_WS_MAX + 1];
    json_t *out = NULL;
    struct err e = ERR_INIT;
    int page;
    struct jobs *j = bp_auth(req, vctx, ws);
    const char *id = j ? bp_job(req) : NULL;
    if (!id || api_int_query(req, "pageSize", 1000, &page) < 0)
        return 0;
    int rc = jobs_logs(j, ws, id, http_req_query(req, "severity"), page, http_req_query(req, "nextPageToken"),
                       &out, &e);
    return api_reply(req, rc, out, &e);
}

int api_jobs_register(struct http_router *r, struct api_ctx *ctx)
{
    struct http_route_ops ops;
    int rc = 0;

#define GET(p, fn) if (rc == 0) rc = http_router_get(r, p, fn, ctx)
#define ADD(m, p, o) if (rc == 0) rc = http_router_add(r, m, p, &(o), ctx)
    GET(BP, bp_list);
    GET(BP "/{job_id}", bp_get);
    GET(BP "/{job_id}/stages", bp_stages);
    GET(BP "/{job_id}/stages/{stage_id}/tasks", bp_tasks);
    GET(BP "/{job_id}/logs", bp_logs);
    ops = (struct http_route_ops){.end = bp_create, .max_body = JOB_BODY_MAX};
    ADD("POST", BP "/{job_id}", ops);
    ops = (struct http_route_ops){.end = bp_delete, .max_body = 64 * 1024};
    ADD("DELETE", BP "/{job_id}", ops);
    ops = (struct http_route_ops){.end = bp_abort, .max_body = 64 * 1024};
    ADD("POST", BP "/{job_id}/abort", ops);
    ops = (struct http_route_ops){.end = bp_restart, .max_body = 64 * 1024};
    ADD("POST", BP "/{job_id}/restart", ops);
#undef GET
#undef ADD
    return rc;
}
