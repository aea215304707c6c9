/*
 * ui.c — the web dashboard: GET /ui/ (index.html) and GET /ui/<file> (its
 * CSS and JavaScript), served from the copies embedded in the binary
 * (src/ui/, ui_int.h).  The page needs no key to load: it holds no data.
 * It signs in with an API key kept in the browser's sessionStorage and
 * calls the API with "Authorization: Bearer <key>", so every answer goes
 * through api_auth like any client's (docs/UI.md).
 *
 * Every file is sent with a Content-Security-Policy that allows scripts
 * and styles from this origin only (no inline script, no eval), images
 * from this origin or the signed URLs of an object store (thumbnails),
 * requests to this origin only, and no framing; with nosniff and no
 * referrer.
 */
#include "api/api.h"
#include "api/ui_int.h"

#include "base/base.h"

#include <string.h>

#define UI_CSP                                                                                     \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' http: https:; "      \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const char *ui_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && !strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (dot && !strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (dot && !strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    return "application/octet-stream";
}

static int ui_send(struct http_req *req, const char *name)
{
    for (size_t i = 0; i < ui_assets_count; i++) {
        const struct ui_asset *a = &ui_assets[i];
        if (strcmp(a->name, name) != 0)
            continue;
        http_reply_header(req, "Content-Security-Policy", UI_CSP);
        http_reply_header(req, "X-Content-Type-Options", "nosniff");
        http_reply_header(req, "X-Frame-Options", "DENY");
        http_reply_header(req, "Referrer-Policy", "no-referrer");
        http_reply_header(req, "Cache-Control", "no-cache");
        return http_reply_data(req, 200, ui_content_type(name), a->data, a->len);
    }
    return http_reply_error(req, 404, "no dashboard file '%.80s'", name);
}

static int ui_index(struct http_req *req, void *vctx)
{
    (void)vctx;
    return ui_send(req, "index.html");
}

static int ui_file(struct http_req *req, void *vctx)
{
    (void)vctx;
    return ui_send(req, http_req_param(req, "file"));
}

static int ui_slash(struct http_req *req, void *vctx)
{
    (void)vctx;
    http_reply_header(req, "Location", "/ui/");
    return http_reply_data(req, 301, "text/plain; charset=utf-8", "see /ui/\n", 9);
}

int api_ui_register(struct http_router *r, struct api_ctx *ctx)
{
    int rc = http_router_get(r, "/ui", ui_slash, ctx);
    if (rc == 0)
        rc = http_router_get(r, "/ui/", ui_index, ctx);
    if (rc == 0)
        rc = http_router_get(r, "/ui/{file}", ui_file, ctx);
    return rc;
}
