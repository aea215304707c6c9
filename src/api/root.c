/*
 * root.c — GET /healthz (no key) and GET /?api_key=… , the workspace lookup
 * every rf-cloud CLI command makes first (COMPAT.md section 1): the root
 * path without a trailing slash answers {"workspace": "<name>"}.  A
 * browser asking for / without a key (Accept: text/html) is sent to the
 * dashboard with 302 Location: /ui/.
 */
#include "api/api.h"

#include "base/base.h"

#include <string.h>

static int root_healthz(struct http_req *req, void *vctx)
{
    (void)vctx;
    return http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* A browser's request: no key in the query or a header, and an Accept
 * header naming text/html (a CLI sends the key; curl sends no text/html). */
static bool root_is_browser(struct http_req *req)
{
    const char *accept = http_req_header(req, "Accept");
    return !http_req_query(req, "api_key") && !api_bearer_key(req) && accept && strstr(accept, "text/html");
}

static int root_workspace(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];

    if (root_is_browser(req)) {
        http_reply_header(req, "Location", "/ui/");
        return http_reply_data(req, 302, "text/plain; charset=utf-8", "see /ui/\n", 9);
    }
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
