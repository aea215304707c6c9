/*
 * router.c — method + path pattern table with "{name}" parameters.
 *
 * Routes are kept in insertion order and matched segment by segment; the
 * first route whose segments all match wins, so literal routes that overlap
 * a parameter route must be added first (the api module adds its routes in
 * a fixed order).  A path that matches some pattern under another method
 * gives ERR_UNSUPPORTED (405), no pattern at all ERR_NOTFOUND (404).
 *
 * The table is written before the server starts and only read afterwards,
 * so pool threads share it without locks.
 */
#include "http/http.h"

#include "base/base.h"
#include "http/http_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define ROUTER_MAX_SEGS 16

struct route {
    char method[8];
    char *pattern;               /* owned copy, split into segs in place */
    char *tmpl;                  /* owned copy as given: the metrics' route label */
    char *segs[ROUTER_MAX_SEGS]; /* literal, or parameter name */
    bool is_param[ROUTER_MAX_SEGS];
    int nsegs;
    bool rest;                   /* last segment is "{name*}" */
    struct http_route_ops ops;
    void *ctx;
};

struct http_router {
    struct route *routes;
    size_t n, cap;
};

struct http_router *http_router_new(void)
{
    return xcalloc(1, sizeof(struct http_router));
}

void http_router_free(struct http_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->routes[i].pattern);
        free(r->routes[i].tmpl);
    }
    free(r->routes);
    free(r);
}

/* Split an absolute path in place into segments; returns the count or <0.
 * "/" has zero segments; "/a/" has two ("a" and ""). */
static int router_split(char *p, char **segs, int max)
{
    int n = 0;

    if (*p != '/')
        return ERR_INVALID;
    if (p[1] == '\0')
        return 0;
    while (*p == '/') {
        *p++ = '\0';
        if (n == max)
            return ERR_LIMIT;
        segs[n++] = p;
        p = strchr(p, '/');
        if (!p)
            break;
    }
    return n;
}

int http_router_add(struct http_router *r, const char *method, const char *pattern,
                    const struct http_route_ops *ops, void *ctx)
{
    struct route rt;
    int n;

    memset(&rt, 0, sizeof(rt));
    if (!method || strlen(method) >= sizeof(rt.method) || !pattern || !ops || !ops->end)
        return ERR_INVALID;
    strcpy(rt.method, method);
    rt.pattern = xstrdup(pattern);
    n = router_split(rt.pattern, rt.segs, ROUTER_MAX_SEGS);
    if (n < 0) {
        free(rt.pattern);
        return ERR_INVALID;
    }
    rt.nsegs = n;
    for (int i = 0; i < n; i++) {
        char *s = rt.segs[i];
        size_t len = strlen(s);
        if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
            s[len - 1] = '\0';
            rt.segs[i] = s + 1;
            rt.is_param[i] = true;
            if (len >= 3 && s[len - 2] == '*') {
                if (i != n - 1) {
                    free(rt.pattern);
                    return ERR_INVALID;
                }
                s[len - 2] = '\0';
                rt.rest = true;
            }
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        struct route *o = &r->routes[i];
        if (strcmp(o->method, rt.method) || o->nsegs != rt.nsegs || o->rest != rt.rest)
            continue;
        bool same = true;
        for (int k = 0; k < n && same; k++)
            same = o->is_param[k] == rt.is_param[k] &&
                   (o->is_param[k] || !strcmp(o->segs[k], rt.segs[k]));
        if (same) {
            free(rt.pattern);
            return ERR_EXISTS;
        }
    }
    rt.ops = *ops;
    rt.ctx = ctx;
    rt.tmpl = xstrdup(pattern);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->routes = xrealloc(r->routes, r->cap * sizeof(*r->routes));
    }
    r->routes[r->n++] = rt;
    return 0;
}

int http_router_get(struct http_router *r, const char *pattern, http_end_fn fn, void *ctx)
{
    struct http_route_ops ops = {.end = fn};
    return http_router_add(r, "GET", pattern, &ops, ctx);
}

int http_router_each(const struct http_router *r, int (*fn)(const char *method, const char *tmpl, void *arg),
                     void *arg)
{
    for (size_t i = 0; i < r->n; i++) {
        int rc = fn(r->routes[i].method, r->routes[i].tmpl, arg);
        if (rc)
            return rc;
    }
    return 0;
}

static bool route_match(const struct route *rt, char **segs, int n)
{
    if (rt->rest ? n < rt->nsegs : n != rt->nsegs)
        return false;
    for (int i = 0; i < rt->nsegs; i++) {
        if (rt->is_param[i]) {
            if (segs[i][0] == '\0')
                return false;
        } else if (strcmp(rt->segs[i], segs[i]) != 0) {
            return false;
        }
    }
    return true;
}

int http_router_match(const struct http_router *r, const char *method, const char *path,
                      char *scratch, size_t cap, struct http_param params[HTTP_MAX_PARAMS],
                      int *nparams, const struct http_route_ops **ops, void **ctx)
{
    char *segs[ROUTER_MAX_SEGS + 1];
    size_t plen = strlen(path);
    bool other_method = false;
    int n;

    if (plen + 1 > cap)
        return ERR_NOTFOUND;
    memcpy(scratch, path, plen + 1);
    n = router_split(scratch, segs, ROUTER_MAX_SEGS + 1);
    if (n < 0)
        return ERR_NOTFOUND;
    for (size_t i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        if (!route_match(rt, segs, n))
            continue;
        if (strcmp(rt->method, method) != 0) {
            other_method = true;
            continue;
        }
        int np = 0;
        for (int k = 0; k < rt->nsegs && np < HTTP_MAX_PARAMS; k++) {
            if (!rt->is_param[k])
                continue;
            params[np].name = rt->segs[k];
            params[np].value = segs[k];
            np++;
        }
        if (rt->rest) /* rejoin the tail: undo the NULs the split wrote */
            for (int k = rt->nsegs; k < n; k++)
                segs[k][-1] = '/';
        *nparams = np;
        *ops = &rt->ops;
        *ctx = rt->ctx;
        return 0;
    }
    /* HEAD is GET without the body (RFC 9110 9.3.2); libmicrohttpd drops
     * the body.  A route may still register its own HEAD. */
    if (other_method && !strcmp(method, "HEAD"))
        return http_router_match(r, "GET", path, scratch, cap, params, nparams, ops, ctx);
    return other_method ? ERR_UNSUPPORTED : ERR_NOTFOUND;
}

const char *http__route_template(const struct http_route_ops *ops)
{
    const struct route *rt = (const struct route *)(const void *)((const char *)ops - offsetof(struct route, ops));
    return rt->tmpl;
}

int http_url_decode(char *s, enum http_url_part part, int *bad)
{
    int n = url_decode(s, false);

    if (n < 0)
        return ERR_PARSE;
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = part == HTTP_URL_PATH ? c > 0x20 && c < 0x7f
                                        : (c >= 0x20 && c != 0x7f) || c == '\t' || c == '\r' || c == '\n';
        if (!ok) {
            if (bad)
                *bad = c;
            return ERR_INVALID;
        }
    }
    return n;
}
