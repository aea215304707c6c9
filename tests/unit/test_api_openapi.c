/* The embedded OpenAPI document (src/api/openapi.json, GET /openapi.json)
 * against the router: every route that api_routes_register adds is a
 * documented operation and every documented operation is a route, so
 * neither can change without the other.  Also the document's own shape:
 * OpenAPI 3.1, one unique operationId, a success and an error answer per
 * operation, every error answer the Error body.  (The answers themselves
 * are validated against the document by tests/e2e/test_openapi.py.) */
#include "api/api.h"

#include "base/base.h"

#include <ctype.h>
#include <string.h>

#include "t.h"

static json_t *load_doc(void)
{
    size_t n;
    const char *s = api_openapi_document(&n);
    json_error_t je;
    ASSERT(s != NULL && n > 0);
    ASSERT_EQ(strlen(s), n); /* NUL terminated, no NUL inside */
    json_t *doc = json_loadb(s, n, 0, &je);
    if (!doc)
        T_FAIL("openapi.json: line %d: %s", je.line, je.text);
    return doc;
}

/* "/a/{x*}" -> "/a/{x}": the document names the rest-of-path parameter plainly. */
static void doc_path(const char *tmpl, char *out, size_t cap)
{
    size_t j = 0;
    for (const char *p = tmpl; *p && j + 1 < cap; p++)
        if (!(p[0] == '*' && p[1] == '}'))
            out[j++] = *p;
    out[j] = '\0';
}

struct walk {
    json_t *doc;
    json_t *seen; /* "method path" -> true */
    int routes;
};

static int check_route(const char *method, const char *tmpl, void *arg)
{
    struct walk *w = arg;
    char path[512], m[16], k[600];
    size_t i;

    doc_path(tmpl, path, sizeof path);
    for (i = 0; method[i] && i + 1 < sizeof m; i++)
        m[i] = (char)tolower((unsigned char)method[i]);
    m[i] = '\0';
    json_t *op = json_object_get(json_object_get(json_object_get(w->doc, "paths"), path), m);
    if (!json_is_object(op))
        T_FAIL("route %s %s is not in src/api/openapi.json", method, tmpl);
    snprintf(k, sizeof k, "%s %s", m, path);
    json_object_set_new(w->seen, k, json_true());
    w->routes++;
    return 0;
}

static struct http_router *all_routes(struct api_ctx *ctx)
{
    struct http_router *r = http_router_new();
    memset(ctx, 0, sizeof *ctx);
    ctx->max_image_bytes = 1 << 20;
    ctx->max_put_bytes = 1 << 20;
    ctx->max_json_bytes = 1 << 20;
    ctx->max_page_size = 1000;
    ASSERT_EQ(api_routes_register(r, ctx), 0);
    return r;
}

TEST(every_route_documented_and_every_operation_routed)
{
    struct api_ctx ctx;
    struct http_router *r = all_routes(&ctx);
    struct walk w = {load_doc(), json_object(), 0};
    const char *path, *m;
    json_t *item, *op;
    char k[600];
    int ops = 0;

    ASSERT_EQ(http_router_each(r, check_route, &w), 0);
    ASSERT_GT(w.routes, 30);
    json_object_foreach(json_object_get(w.doc, "paths"), path, item) {
        json_object_foreach(item, m, op) {
            if (strcmp(m, "get") && strcmp(m, "put") && strcmp(m, "post") && strcmp(m, "delete") &&
                strcmp(m, "head") && strcmp(m, "patch") && strcmp(m, "options"))
                continue; /* "parameters", "summary" … */
            snprintf(k, sizeof k, "%s %s", m, path);
            if (!json_object_get(w.seen, k))
                T_FAIL("openapi.json documents %s %s, which no route serves", m, path);
            ops++;
        }
    }
    ASSERT_EQ(ops, w.routes);
    json_decref(w.seen);
    json_decref(w.doc);
    http_router_free(r);
}

TEST(document_shape)
{
    json_t *doc = load_doc(), *ids = json_object();
    const char *path, *m, *status;
    json_t *item, *op, *resp;

    ASSERT(!strncmp(json_string_value(json_object_get(doc, "openapi")), "3.1.", 4));
    ASSERT(json_is_object(json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"),
                                          "Error")));
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        json_object_foreach(item, m, op) {
            if (!json_is_object(op) || !json_object_get(op, "responses"))
                continue;
            const char *id = json_string_value(json_object_get(op, "operationId"));
            if (!id)
                T_FAIL("%s %s: no operationId", m, path);
            if (json_object_get(ids, id))
                T_FAIL("%s %s: operationId %s used twice", m, path, id);
            json_object_set_new(ids, id, json_true());
            bool ok = false, bad = false;
            json_object_foreach(json_object_get(op, "responses"), status, resp) {
                if (status[0] == '2' || status[0] == '3') /* 3xx: GET /ui, a redirect */
                    ok = true;
                if (status[0] == '4' || status[0] == '5') {
                    bad = true;
                    /* errors are the shared Error answers */
                    const char *ref = json_string_value(json_object_get(resp, "$ref"));
                    if (!ref || strncmp(ref, "#/components/responses/", 23))
                        T_FAIL("%s %s %s: an error answer must be a #/components/responses/ one", m, path,
                               status);
                }
            }
            if (!ok || !bad)
                T_FAIL("%s %s: needs a 2xx (or 3xx) and an error answer", m, path);
        }
    }
    json_decref(ids);
    json_decref(doc);
}

TEST_MAIN()
