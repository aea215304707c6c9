/*
 * fuzz_http_router.c — libFuzzer target for the request target's decoding
 * and the router's path matching, as the server does them.
 * Input: first byte picks the method, the rest (up to a NUL) is the raw
 * path as it came on the request line (percent escapes not decoded; the
 * server's unescape callback leaves it so).  It is decoded with
 * http_url_decode (a refused path goes no further, as the server answers
 * 400); checks that a decoded path holds only printable ASCII, that its
 * length is the one returned (no NUL inside), and that a match only ever
 * returns parameters that are non-empty pieces of the path holding only
 * those bytes.
 */
#include "http/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int fz_end(struct http_req *req, void *ctx)
{
    (void)req;
    (void)ctx;
    return 0;
}

static struct http_router *fz_router(void)
{
    static struct http_router *r;
    static const char *const pats[] = {
        "/", "/healthz", "/blobs/{key*}",
        "/data-staging/v1/external/{workspace}/batches",
        "/data-staging/v1/external/{workspace}/batches/{batch_id}",
        "/data-staging/v1/external/{workspace}/batches/{batch_id}/count",
        "/data-staging/v1/external/{workspace}/batches/{batch_id}/upload/image",
        "/workflows/v1/external/{workspace}/workflows/{workflow_id}",
        "/models/v1/external/{workspace}/models/{model_id*}",
        "/batch-processing/v1/external/{workspace}/jobs/{job_id}",
    };
    if (!r) {
        struct http_route_ops ops = {.end = fz_end};
        r = http_router_new();
        for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
            http_router_add(r, "GET", pats[i], &ops, NULL);
            http_router_add(r, "PUT", pats[i], &ops, NULL);
        }
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "PUT", "POST", "DELETE"};
    if (size < 1 || size > 4096)
        return 0;
    char *path = malloc(size);
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    int n = http_url_decode(path, HTTP_URL_PATH, NULL);
    if (n < 0) {
        free(path);
        return 0;
    }
    size_t plen = strlen(path);
    if (plen != (size_t)n)
        abort(); /* a NUL inside the decoded path */
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
            abort();
    char *scratch = malloc(plen + 1);
    struct http_param params[HTTP_MAX_PARAMS];
    int np = 0;
    const struct http_route_ops *ops;
    void *ctx;
    int rc = http_router_match(fz_router(), methods[data[0] % 4], path, scratch, plen + 1, params,
                               &np, &ops, &ctx);
    if (rc == 0) {
        for (int i = 0; i < np; i++)
            if (!params[i].value[0] || !strstr(path, params[i].value))
                abort();
    }
    free(scratch);
    free(path);
    return 0;
}
