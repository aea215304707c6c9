/*
 * root.c — GET /healthz (no key) and GET /?api_key=… , the workspace lookup
 * every rf-cloud CLI command makes first (COMPAT.md section 1): the root
 * path without a trailing slash answers {"workspace": "<name>"}.
 */
#include "api/api.h"

#include "base/base.h"

static int root_healthz(struct http_req *req, void *vctx)
{
    (void)vctx;
    return http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static int root_workspace(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];

    if (api_auth(req, ctx, ws) < 0)
        return 0;
    return http_reply_json(req, 200, json_pack("{s:s}", "workspace", ws));
}

int api_root_register(struct http_router *r, struct api_ctx *ctx)
{
    int rc = http_router_get(r, "/healthz", root_healthz, ctx);
    if (rc == 0)
        rc = http_router_get(r, "/", root_workspace, ctx);
    return rc;
}
