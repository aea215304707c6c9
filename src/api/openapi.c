/*
 * openapi.c — GET /openapi.json: vbatch's own OpenAPI 3.1 document.
 *
 * The document is the file src/api/openapi.json, written by hand and
 * embedded in the binary at build time (the assembler's .incbin; the
 * Makefile makes this object depend on the file).  It documents every
 * route that api_routes_register adds, with the schemas of the request
 * bodies, the answers and the error body; tests/unit/test_api_openapi.c
 * checks that the router's routes and the document's operations are the
 * same set, and tests/e2e/test_openapi.py calls every operation and
 * validates each answer against the document.
 *
 * No api_key: the document describes the API, not a workspace.
 */
#include "api/api.h"

#include "base/base.h"

/* The file's bytes followed by a NUL; api_openapi_json_end points at the NUL. */
__asm__(".section .rodata\n"
        ".global api_openapi_json\n"
        ".type api_openapi_json, @object\n"
        ".balign 16\n"
        "api_openapi_json:\n"
        ".incbin \"src/api/openapi.json\"\n"
        ".global api_openapi_json_end\n"
        "api_openapi_json_end:\n"
        ".byte 0\n"
        ".previous\n");
extern const char api_openapi_json[];
extern const char api_openapi_json_end[];

const char *api_openapi_document(size_t *len)
{
    if (len)
        *len = (size_t)(api_openapi_json_end - api_openapi_json);
    return api_openapi_json;
}

static int openapi_get(struct http_req *req, void *vctx)
{
    size_t n;
    const char *doc = api_openapi_document(&n);
    (void)vctx;
    return http_reply_data(req, 200, "application/json", doc, n);
}

int api_openapi_register(struct http_router *r, struct api_ctx *ctx)
{
    return http_router_get(r, "/openapi.json", openapi_get, ctx);
}
