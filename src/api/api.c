/*
 * api.c — route registration for every resource group, authentication and
 * the small helpers shared by the handlers.
 *
 * Adding a resource group: write api/<group>.c with
 *     int api_<group>_register(struct http_router *r, struct api_ctx *ctx);
 * declare it in api.h (or, for the jobs group, in api/jobs.h) and it is
 * called from api_routes_register below.  The jobs group is picked up
 * automatically when src/api/jobs.h exists (it must declare
 * api_jobs_register), so the jobs work can land without editing this file.
 *
 * Authentication: every API call carries ?api_key=… or the header
 * "Authorization: Bearer <key>" (the dashboard's form: a key in a header
 * never lands in a URL, a log or a browser history).  The key's workspace
 * (store_key_verify, constant-time hash compare) must equal the workspace
 * in the path: a missing or unknown key is 401, another workspace's key 403,
 * a key given twice 400 (which one counts would be ambiguous).
 */
#include "api/api.h"

#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__has_include)
#if __has_include("api/jobs.h")
#include "api/jobs.h"
#define API_HAVE_JOBS 1
#endif
#endif

int api_routes_register(struct http_router *r, struct api_ctx *ctx)
{
    int rc;

    rc = api_root_register(r, ctx);
    if (rc == 0)
        rc = api_staging_register(r, ctx);
    if (rc == 0)
        rc = api_workflows_register(r, ctx);
    if (rc == 0)
        rc = api_models_register(r, ctx);
    if (rc == 0)
        rc = api_metrics_register(r, ctx);
    if (rc == 0)
        rc = api_openapi_register(r, ctx);
    if (rc == 0)
        rc = api_ui_register(r, ctx);
#ifdef API_HAVE_JOBS
    if (rc == 0)
        rc = api_jobs_register(r, ctx);
#endif
    return rc;
}

const char *api_bearer_key(struct http_req *req)
{
    const char *h = http_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return h;
}

int api_auth(struct http_req *req, struct api_ctx *ctx, char ws_out[STORE_WS_MAX + 1])
{
    char ws[STORE_WS_MAX + 1];
    const char *key = http_req_query(req, "api_key");
    const char *bearer = api_bearer_key(req);
    const char *want = http_req_param(req, "workspace");
    int rc;

    if (http_req_query_count(req, "api_key") > 1) {
        http_reply_error(req, 400, "api_key is given more than once");
        return ERR_AUTH;
    }
    if (key && bearer && strcmp(key, bearer) != 0) {
        http_reply_error(req, 400, "two different api keys: the api_key query parameter and the Authorization header");
        return ERR_AUTH;
    }
    if (!key || !*key)
        key = bearer;
    if (!key || !*key) {
        http_reply_error(req, 401, "missing api_key query parameter (or Authorization: Bearer header)");
        return ERR_AUTH;
    }
    rc = store_key_verify(ctx->st, key, ws);
    if (rc == ERR_AUTH || rc == ERR_INVALID || rc == ERR_NOTFOUND) {
        http_reply_error(req, 401, "unknown api_key");
        return ERR_AUTH;
    }
    if (rc < 0) {
        http_reply_error(req, 500, "cannot check the api_key: %s", err_str(rc));
        return ERR_AUTH;
    }
    if (want && strcmp(want, ws) != 0) {
        http_reply_error(req, 403, "this api_key does not belong to workspace '%.64s'", want);
        return ERR_AUTH;
    }
    if (ctx->rl) {
        int64_t wait_ms = api_ratelimit_take(ctx->rl, key, time_now_ms());
        if (wait_ms > 0) {
            char ra[24];
            snprintf(ra, sizeof ra, "%lld", (long long)((wait_ms + 999) / 1000));
            http_reply_header(req, "Retry-After", ra);
            http_reply_error(req, 429, "request rate limit of this api_key reached: retry in %s s", ra);
            return ERR_AUTH;
        }
    }
    if (ctx->wsrl) {
        int64_t wait_ms = api_wsrate_take(ctx->wsrl, ws, time_now_ms());
        if (wait_ms > 0) {
            char ra[24];
            snprintf(ra, sizeof ra, "%lld", (long long)((wait_ms + 999) / 1000));
            http_reply_header(req, "Retry-After", ra);
            http_reply_error(req, 429, "request rate limit of workspace '%s' reached: retry in %s s", ws, ra);
            return ERR_AUTH;
        }
    }
    if (ws_out)
        memcpy(ws_out, ws, sizeof(ws));
    return 0;
}

const char *api_id_param(struct http_req *req, const char *name, const char *what, size_t maxlen)
{
    const char *v = http_req_param(req, name);
    if (!v || !id_valid(v, maxlen)) {
        http_reply_error(req, 400, "invalid %s '%.80s': use 1 to %zu characters of a-z, 0-9, '-' and '_'",
                         what, v ? v : "", maxlen);
        return NULL;
    }
    return v;
}

int api_int_query(struct http_req *req, const char *name, int max, int *out)
{
    const char *v = http_req_query(req, name);
    char *end;
    long n;

    *out = 0;
    if (!v)
        return 0;
    n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > max) {
        http_reply_error(req, 400, "invalid %s '%.32s': expected an integer from 1 to %d", name, v, max);
        return ERR_INVALID;
    }
    *out = (int)n;
    return 0;
}

unsigned api_http_status(int rc)
{
    if (err_is_nospace(rc))
        return 507;
    switch (rc) {
    case ERR_PARSE:
    case ERR_INVALID:
        return 400;
    case ERR_AUTH:
        return 403;
    case ERR_NOTFOUND:
        return 404;
    case ERR_EXISTS:
        return 409;
    case ERR_LIMIT:
        return 413;
    case ERR_UNSUPPORTED:
        return 415;
    case ERR_QUOTA:
        return 429;
    case ERR_AGAIN:
    case ERR_UNAVAILABLE:
        return 503;
    default:
        return rc >= 0 ? 200 : 500;
    }
}

int api_reply_err(struct http_req *req, int rc, const struct err *e)
{
    unsigned st = api_http_status(rc);
    const char *msg = err_text(e, rc);
    if (st < 400)
        st = 500; /* a bug below: a failure without a failure code */
    if (st == 429) /* a quota frees up as jobs end and URLs are used: ask again later */
        http_reply_header(req, "Retry-After", API_QUOTA_RETRY_AFTER_S);
    if (st == 503 && rc == ERR_UNAVAILABLE)
        return http_reply_error(req, st, "the database or the blob store cannot be reached, retry the request");
    if (st == 503)
        return http_reply_error(req, st, "server busy, retry the request");
    if (st == 507 && !str_has_prefix(msg, "storage full")) {
        /* "storage full: cannot write the upload", not "...: storage full" twice */
        size_t n = strlen(msg), k = strlen(": storage full");
        if (n > k && !strcmp(msg + n - k, ": storage full"))
            n -= k;
        return http_reply_error(req, st, "storage full: %.*s", (int)n, msg);
    }
    return http_reply_error(req, st, "%s", msg);
}

int api_reply_errf(struct http_req *req, int rc, const char *fmt, ...)
{
    struct err e = ERR_INIT;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    e.code = rc;
    return api_reply_err(req, rc, &e);
}

int api_reply(struct http_req *req, int rc, json_t *out, const struct err *e)
{
    if (rc >= 0) {
        if (!out) /* a bug below: say so rather than send an empty 200 */
            return http_reply_error(req, 500, "internal error: the service produced no response");
        return http_reply_json(req, 200, out);
    }
    json_decref(out);
    return api_reply_err(req, rc, e);
}
