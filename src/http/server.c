/*
 * server.c — libmicrohttpd glue: one access-handler state machine per
 * request, replies, per-request cleanups and the request log line.
 *
 * libmicrohttpd calls the access handler several times per request on the
 * pool thread that owns the connection:
 *
 *   call 1 (*con_cls == NULL)   headers only: route, size check, ops.begin.
 *                               A reply made here is held back unless a body
 *                               is on its way: queueing on the first call
 *                               makes libmicrohttpd close the connection
 *                               (DEPENDENCIES.md: 10k instead of 112k req/s).
 *   calls 2..n (size > 0)       body chunks: ops.body, or the body buffer
 *                               (capped at the route's max_body).
 *   last call (size == 0)       ops.end, then queue the reply.
 *
 * A reply made before the body is complete (413, 401 on an upload, a bad
 * multipart) is held while the rest of the body is read and dropped, as
 * long as that rest is known to be at most DISCARD_MAX bytes (so a client
 * that writes its whole body before reading gets the reply, not a reset).
 * Past that, or for a chunked body that keeps going, the reply is queued
 * at once: libmicrohttpd sends it and closes the connection instead of
 * reading the rest.
 *
 * The completion callback (MHD_OPTION_NOTIFY_COMPLETED) runs for every
 * request that got a *con_cls, whatever happened to the connection: it runs
 * the request's cleanups (temp files, sinks), writes the one log line and
 * frees the request.
 */
#include "http/http.h"

#include "base/base.h"
#include "http/http_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define DISCARD_MAX (32u << 20)
#define MAX_DONE 8
#define MAX_HDRS 8

struct http_server {
    struct MHD_Daemon *d;
    struct http_router *router;
    unsigned port;
    char default_host[64]; /* "127.0.0.1:PORT" when there is no Host header */
    bool quiet;
    unsigned (*err_status)(int err); /* may be NULL: 500 */
};

struct http_req {
    struct MHD_Connection *conn;
    struct http_server *srv;
    char method[16];
    char *path;                 /* owned, decoded path (raw when refused) */
    char **qkey, **qval;        /* owned, the decoded query, nq pairs in order */
    int nq;
    char *scratch;              /* owned, split path holding param values */
    struct http_param params[HTTP_MAX_PARAMS];
    int nparams;
    const struct http_route_ops *ops; /* NULL: reply decided at call 1 */
    void *ctx;
    bool has_body;              /* Content-Length > 0 or chunked */
    int64_t content_length;     /* -1 unknown */
    uint64_t body_size;         /* bytes received */
    uint64_t discarded;         /* bytes dropped after an early reply */
    uint64_t size_at_reply;     /* body_size when the early reply was made */
    struct buf body;            /* buffered routes only */
    void *state;
    void (*state_fn)(void *);
    struct { void (*fn)(void *); void *arg; } done[MAX_DONE];
    int ndone;
    unsigned status;
    struct MHD_Response *resp;  /* the reply, until queued */
    bool replied, queued;
    uint64_t resp_bytes;
    char *hdr_name[MAX_HDRS], *hdr_value[MAX_HDRS];
    int nhdrs;
    char *base_url;
    int64_t t0_ns;
};

/* ---- replies ------------------------------------------------------------------ */

bool http_req_replied(const struct http_req *req)
{
    return req->replied;
}

static int reply_set(struct http_req *req, unsigned status, struct MHD_Response *resp,
                     const char *content_type, uint64_t size)
{
    if (!resp)
        return ERR_INTERNAL;
    if (req->replied) {
        MHD_destroy_response(resp);
        return 0;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (int i = 0; i < req->nhdrs; i++)
        MHD_add_response_header(resp, req->hdr_name[i], req->hdr_value[i]);
    req->resp = resp;
    req->status = status;
    req->replied = true;
    req->resp_bytes = size;
    return 0;
}

int http_reply_data(struct http_req *req, unsigned status, const char *content_type,
                    const void *data, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    return reply_set(req, status, r, content_type, len);
}

int http_reply_json(struct http_req *req, unsigned status, json_t *body)
{
    char *text;
    int rc;

    if (!body)
        return http_reply_error(req, 500, "out of memory");
    text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(body);
    if (!text)
        return http_reply_error(req, 500, "cannot serialise the response");
    size_t len = strlen(text);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r)
        free(text);
    rc = reply_set(req, status, r, "application/json", len);
    return rc;
}

int http_reply_error(struct http_req *req, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    if (!json_object_get(o, "error")) {
        /* Not UTF-8 (a client's bytes, or a multi-byte character cut by a
         * %.Ns): keep the message, with '?' for every non-ASCII byte. */
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        json_object_set_new(o, "error", json_string(msg));
    }
    return http_reply_json(req, status, o);
}

int http_reply_fd(struct http_req *req, unsigned status, const char *content_type, int fd,
                  uint64_t size)
{
    return http_reply_fd_at(req, status, content_type, fd, 0, size);
}

int http_reply_fd_at(struct http_req *req, unsigned status, const char *content_type, int fd, uint64_t offset,
                     uint64_t size)
{
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(size, fd, offset);
    if (!r) {
        close(fd);
        return ERR_INTERNAL;
    }
    return reply_set(req, status, r, content_type, size);
}

int http_reply_header(struct http_req *req, const char *name, const char *value)
{
    if (req->resp) {
        MHD_add_response_header(req->resp, name, value);
        return 0;
    }
    if (req->nhdrs == MAX_HDRS)
        return ERR_LIMIT;
    req->hdr_name[req->nhdrs] = xstrdup(name);
    req->hdr_value[req->nhdrs] = xstrdup(value);
    req->nhdrs++;
    return 0;
}

/* ---- request accessors -------------------------------------------------------- */

const char *http_req_method(const struct http_req *req) { return req->method; }
const char *http_req_path(const struct http_req *req) { return req->path; }
int64_t http_req_content_length(const struct http_req *req) { return req->content_length; }
uint64_t http_req_body_size(const struct http_req *req) { return req->body_size; }
void *http_req_state(const struct http_req *req) { return req->state; }

const char *http_req_param(const struct http_req *req, const char *name)
{
    for (int i = 0; i < req->nparams; i++)
        if (!strcmp(req->params[i].name, name))
            return req->params[i].value;
    return NULL;
}

const char *http_req_query(const struct http_req *req, const char *name)
{
    for (int i = 0; i < req->nq; i++)
        if (!strcmp(req->qkey[i], name))
            return req->qval[i];
    return NULL;
}

int http_req_query_count(const struct http_req *req, const char *name)
{
    int n = 0;
    for (int i = 0; i < req->nq; i++)
        n += !strcmp(req->qkey[i], name);
    return n;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_req_body(const struct http_req *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

json_t *http_req_body_json(struct http_req *req)
{
    json_t *j = NULL;
    char err[300];

    if (req->body.len == 0) {
        http_reply_error(req, 400, "a JSON body is required");
        return NULL;
    }
    int rc = json_parse_outside(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &j, err, sizeof err);
    if (rc == ERR_LIMIT)
        http_reply_error(req, 400, "the JSON body is %s", err);
    else if (rc < 0)
        http_reply_error(req, 400, "malformed JSON body: %s", err);
    return rc < 0 ? NULL : j;
}

void http_req_set_state(struct http_req *req, void *state, void (*fn)(void *state))
{
    req->state = state;
    req->state_fn = fn;
}

int http_req_on_done(struct http_req *req, void (*fn)(void *arg), void *arg)
{
    if (req->ndone == MAX_DONE)
        return ERR_LIMIT;
    req->done[req->ndone].fn = fn;
    req->done[req->ndone].arg = arg;
    req->ndone++;
    return 0;
}

static bool host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 255)
        return false;
    for (; *h; h++)
        if (!isalnum((unsigned char)*h) && !strchr(".-:[]_", *h))
            return false;
    return true;
}

const char *http_req_base_url(struct http_req *req)
{
    if (!req->base_url) {
        const char *h = http_req_header(req, MHD_HTTP_HEADER_HOST);
        if (!h || !host_ok(h))
            h = req->srv->default_host;
        req->base_url = xasprintf("http://%s", h);
    }
    return req->base_url;
}

/* ---- the access handler ---------------------------------------------------------- */

static void req_free(struct http_req *req)
{
    for (int i = req->ndone - 1; i >= 0; i--)
        req->done[i].fn(req->done[i].arg);
    if (req->state_fn)
        req->state_fn(req->state);
    if (req->resp)
        MHD_destroy_response(req->resp);
    for (int i = 0; i < req->nhdrs; i++) {
        free(req->hdr_name[i]);
        free(req->hdr_value[i]);
    }
    buf_release(&req->body);
    for (int i = 0; i < req->nq; i++) {
        free(req->qkey[i]);
        free(req->qval[i]);
    }
    free(req->qkey);
    free(req->qval);
    free(req->base_url);
    free(req->path);
    free(req->scratch);
    free(req);
}

static enum MHD_Result req_queue(struct http_req *req)
{
    enum MHD_Result r;
    if (req->queued)
        return MHD_YES;
    if (!req->resp) {
        req->replied = false;
        http_reply_error(req, 500, "no response");
        if (!req->resp)
            return MHD_NO;
    }
    r = MHD_queue_response(req->conn, req->status, req->resp);
    if (r == MHD_YES) {
        req->queued = true;
        MHD_destroy_response(req->resp);
        req->resp = NULL;
    }
    return r;
}

static void req_fail(struct http_req *req, int rc)
{
    if (req->replied)
        return;
    unsigned st = req->srv->err_status ? req->srv->err_status(rc) : 500;
    if (st < 400 || st > 599)
        st = 500;
    http_reply_error(req, st, "%s", st == 500 ? "internal error" : err_str(rc));
}

/* ---- the request target ---------------------------------------------------------- */

/* libmicrohttpd's unescape callback: leave every piece as it came (only
 * '+' -> ' ' in the query, done by libmicrohttpd before this).  Its own
 * decoder writes a %00 as a NUL into a string that is then read as a C
 * string: "victim%00x" would reach a handler as "victim".  The pieces are
 * decoded and checked by req_target instead. */
static size_t unescape_none(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

struct query_walk {
    struct http_req *req;
    int rc, bad; /* rc: http_url_decode's, or ERR_UNSUPPORTED for a piece that is not UTF-8 */
};

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                 const char *value, size_t value_size)
{
    struct query_walk *qw = cls;
    struct http_req *req = qw->req;
    char *k = xstrndup(key ? key : "", key ? key_size : 0);
    char *v = xstrndup(value ? value : "", value ? value_size : 0);
    int rc;
    (void)kind;

    if ((rc = http_url_decode(k, HTTP_URL_QUERY, &qw->bad)) < 0 ||
        (rc = http_url_decode(v, HTTP_URL_QUERY, &qw->bad)) < 0) {
        qw->rc = rc;
        free(k);
        free(v);
        return MHD_NO;
    }
    if (!utf8_valid(k) || !utf8_valid(v)) {
        /* a query value is text: names, ids, JSON; the database keeps UTF-8 */
        qw->rc = ERR_UNSUPPORTED;
        free(k);
        free(v);
        return MHD_NO;
    }
    req->qkey = xrealloc(req->qkey, (size_t)(req->nq + 1) * sizeof(char *));
    req->qval = xrealloc(req->qval, (size_t)(req->nq + 1) * sizeof(char *));
    req->qkey[req->nq] = k;
    req->qval[req->nq] = v;
    req->nq++;
    return MHD_YES;
}

/* Decode the path and the query of the request (http_url_decode).  false
 * after replying 400 when a piece holds a bad escape or a byte that may not
 * stand there, or a query key or value is not UTF-8: refused before
 * routing, whatever the route. */
static bool req_target(struct http_req *req, const char *url)
{
    struct query_walk qw = {req, 0, 0};
    int rc = http_url_decode(req->path, HTTP_URL_PATH, &qw.bad);

    if (rc < 0) {
        free(req->path);
        req->path = xstrdup(url); /* the raw form, for the log line */
        if (rc == ERR_PARSE)
            http_reply_error(req, 400, "malformed request path: a '%%' must be followed by two hex digits");
        else
            http_reply_error(req, 400, "the request path holds the byte 0x%02X (%%%02X), which no path of "
                             "this API may hold (only printable ASCII other than space)", qw.bad, qw.bad);
        return false;
    }
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, query_one, &qw);
    if (qw.rc == ERR_PARSE) {
        http_reply_error(req, 400, "malformed query string: a '%%' must be followed by two hex digits");
        return false;
    }
    if (qw.rc == ERR_UNSUPPORTED) {
        http_reply_error(req, 400, "a query parameter is not valid UTF-8 (query keys and values are text)");
        return false;
    }
    if (qw.rc < 0) {
        http_reply_error(req, 400, "a query parameter holds the byte 0x%02X (%%%02X), which no query value "
                         "may hold (NUL and control bytes other than tab, CR and LF)", qw.bad, qw.bad);
        return false;
    }
    return true;
}

static void req_begin(struct http_req *req)
{
    const struct http_route_ops *ops = NULL;
    void *ctx = NULL;
    const char *path = req->path;
    size_t cap = strlen(path) + 1;
    int rc;

    req->scratch = xmalloc(cap);
    rc = http_router_match(req->srv->router, req->method, path, req->scratch, cap, req->params,
                           &req->nparams, &ops, &ctx);
    if (rc == ERR_NOTFOUND) {
        http_reply_error(req, 404, "no such endpoint: %s %.200s", req->method, path);
        return;
    }
    if (rc == ERR_UNSUPPORTED) {
        http_reply_error(req, 405, "method %s is not allowed on %.200s", req->method, path);
        return;
    }
    if (rc < 0) {
        req_fail(req, rc);
        return;
    }
    req->ops = ops;
    req->ctx = ctx;
    if (req->content_length > 0 && (uint64_t)req->content_length > ops->max_body) {
        if (ops->max_body == 0)
            http_reply_error(req, 413, "this endpoint takes no request body");
        else
            http_reply_error(req, 413, "request body of %lld bytes is over the limit of %llu bytes",
                             (long long)req->content_length, (unsigned long long)ops->max_body);
        return;
    }
    if (!ops->body)
        buf_init(&req->body, (size_t)(ops->max_body > (64u << 20) ? (64u << 20) : ops->max_body));
    if (ops->begin) {
        rc = ops->begin(req, ctx);
        if (rc < 0)
            req_fail(req, rc);
    }
}

static void req_chunk(struct http_req *req, const char *data, size_t n)
{
    int rc = 0;

    req->body_size += n;
    if (req->body_size > req->ops->max_body) {
        http_reply_error(req, 413, "request body is over the limit of %llu bytes",
                         (unsigned long long)req->ops->max_body);
        return;
    }
    if (req->ops->body)
        rc = req->ops->body(req, data, n, req->ctx);
    else if (buf_append(&req->body, data, n) < 0) {
        http_reply_error(req, 413, "request body is over the limit of %zu bytes", req->body.limit);
        return;
    }
    if (rc < 0)
        req_fail(req, rc);
}

/* After an early reply: keep reading and dropping the body (true), or
 * send the reply now and let the connection close (false)? */
static bool req_drain(struct http_req *req)
{
    if (req->content_length >= 0)
        return (uint64_t)req->content_length - MIN((uint64_t)req->content_length, req->size_at_reply) <=
               DISCARD_MAX;
    return req->discarded <= DISCARD_MAX;
}

/* Transfer-Encoding is exactly "chunked" (any case): the only coding
 * libmicrohttpd decodes; with anything else it would take the body as
 * running until the client closes. */
static bool te_is_chunked(const char *te)
{
    return strcasecmp(te, "chunked") == 0;
}

/* Bounds of a request's head, checked before anything else: the
 * connection buffer (256 KiB, sized for request bodies) would take more. */
#define HTTP_HEADERS_MAX (32 * 1024) /* all header lines: 431 beyond */
#define HTTP_TARGET_MAX (32 * 1024)  /* the path and the query: 414 beyond */

static enum MHD_Result head_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    *(size_t *)cls += (key ? strlen(key) : 0) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF, or '&' '=' */
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_req *req = *con_cls;
    (void)version;

    if (!req) {
        req = xcalloc(1, sizeof(*req));
        req->t0_ns = time_mono_ns();
        req->conn = conn;
        req->srv = srv;
        req->content_length = -1;
        snprintf(req->method, sizeof(req->method), "%s", method);
        req->path = xstrdup(url);
        *con_cls = req;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (cl) {
            char *end;
            errno = 0;
            long long v = strtoll(cl, &end, 10);
            if (!errno && end != cl && *end == '\0' && v >= 0)
                req->content_length = v;
        }
        req->has_body = req->content_length > 0 || te;
        size_t head = 0, target = strlen(url);
        MHD_get_connection_values(conn, MHD_HEADER_KIND, head_bytes, &head);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, head_bytes, &target);
        if (head > HTTP_HEADERS_MAX || target > HTTP_TARGET_MAX) {
            if (head > HTTP_HEADERS_MAX)
                http_reply_error(req, 431, "the request's header lines exceed %d bytes", HTTP_HEADERS_MAX);
            else
                http_reply_error(req, 414, "the request target exceeds %d bytes", HTTP_TARGET_MAX);
            return req_queue(req);
        }
        if (te && !te_is_chunked(te)) {
            /* libmicrohttpd would read such a body until the client closes
             * and never answer (RFC 9112 6.1: 501). */
            http_reply_error(req, 501, "Transfer-Encoding '%.64s' is not supported: send chunked or a "
                             "Content-Length", te);
            return req_queue(req);
        }
        if (te && cl) { /* the request-smuggling shape (RFC 9112 6.3): refuse, and close */
            http_reply_error(req, 400, "a request may not carry both Content-Length and Transfer-Encoding");
            return req_queue(req);
        }
        if (req_target(req, url))
            req_begin(req);
        if (req->replied && req->has_body) {
            /* A client that sent "Expect: 100-continue" waits for us: answer
             * now rather than invite a body we would only drop. */
            const char *ex = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
            if ((ex && strcasestr(ex, "100-continue")) || !req_drain(req))
                return req_queue(req);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!req->replied) {
            req_chunk(req, upload_data, n);
            req->size_at_reply = req->body_size;
            if (req->replied && !req_drain(req))
                return req_queue(req);
            return MHD_YES;
        }
        if (req->queued)
            return MHD_YES;
        req->discarded += n;
        if (req_drain(req))
            return MHD_YES;
        return req_queue(req);
    }
    if (req->queued)
        return MHD_YES;
    if (!req->replied && req->ops) {
        int rc = req->ops->end(req, req->ctx);
        if (rc < 0)
            req_fail(req, rc);
        if (!req->replied)
            http_reply_error(req, 500, "the handler made no reply");
    }
    return req_queue(req);
}

/* The request's metrics: labelled by the route's template, never by the
 * raw path (ids), and by one of a fixed set of methods (a client may send
 * any token as its method). */
static void req_metrics(const struct http_req *req, int64_t dt_ns)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    const char *method = "other";
    const char *route = req->ops ? http__route_template(req->ops) : "unmatched";
    char status[16] = "aborted";

    for (size_t i = 0; i < ARRAY_LEN(methods); i++)
        if (!strcmp(req->method, methods[i]))
            method = methods[i];
    if (req->queued)
        snprintf(status, sizeof status, "%u", req->status);
    metric_count(METRIC_HTTP_REQUESTS, 1, method, route, status);
    metric_observe(METRIC_HTTP_DURATION, (double)dt_ns / 1e9, method, route, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct http_req *req = *con_cls;
    (void)conn;

    if (!req)
        return;
    *con_cls = NULL;
    int64_t dt_ns = time_mono_ns() - req->t0_ns;
    req_metrics(req, dt_ns);
    if (!srv->quiet) {
        double ms = (double)dt_ns / 1e6;
        log_info("http", "request method=%s path=%s status=%u bytes_in=%llu bytes_out=%llu "
                 "ms=%.2f%s",
                 req->method, req->path, req->queued ? req->status : 0,
                 (unsigned long long)req->body_size,
                 (unsigned long long)(req->queued ? req->resp_bytes : 0), ms,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    }
    req_free(req);
}

/* ---- start / stop ------------------------------------------------------------------ */

/* libmicrohttpd's own messages (protocol errors, accept failures) go to our
 * log as one line each instead of raw stderr. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';
    log_warn("http", "libmicrohttpd: %s", msg);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                        bool *v6)
{
    char host[256];
    const char *colon, *port;
    struct addrinfo hints, *ai = NULL;

    if (!listen || !*listen)
        return ERR_INVALID;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - listen - 1) >= sizeof(host))
            return ERR_INVALID;
        memcpy(host, listen + 1, (size_t)(rb - listen - 1));
        host[rb - listen - 1] = '\0';
        port = rb + 2;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(host, sizeof(host), "127.0.0.1");
            port = listen;
        } else {
            if ((size_t)(colon - listen) >= sizeof(host))
                return ERR_INVALID;
            memcpy(host, listen, (size_t)(colon - listen));
            host[colon - listen] = '\0';
            port = colon + 1;
        }
    }
    if (!*host)
        snprintf(host, sizeof(host), "0.0.0.0");
    for (const char *p = port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return ERR_INVALID;
    if (!*port || atoi(port) > 65535)
        return ERR_INVALID;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return ERR_INVALID;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    *v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return 0;
}

int http_server_start(const struct http_server_opts *opts, struct http_router *router,
                      struct http_server **out)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    bool v6 = false;
    struct http_server *s;
    unsigned threads = opts->threads;
    int rc;

    rc = parse_listen(opts->listen, &ss, &sslen, &v6);
    if (rc < 0)
        return rc;
    if (threads == 0) {
        /* Handlers block on fsync and SQLite commits, and a blocked handler
         * holds every connection of its pool thread: use more threads than
         * CPUs. */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (unsigned)MIN(64, MAX(8, 4 * (n > 0 ? n : 1)));
    }
    s = xcalloc(1, sizeof(*s));
    s->router = router;
    s->quiet = opts->quiet;
    s->err_status = opts->err_status;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, NULL,
                            MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)(opts->conn_timeout_s ? opts->conn_timeout_s : 60),
                            MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)(opts->max_conns ? opts->max_conns : 1024),
                            /* A connection's buffer: request bodies (tar
                             * shards, videos) arrive in pieces of up to about
                             * half of it; 256 KiB pieces cost a quarter of the
                             * CPU of 64 KiB ones per byte received (fewer
                             * polls, reads and handler calls).  Pool pages are
                             * touched only as used. */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 512u,
                            MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    char ip[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (!v6) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        if (sin->sin_addr.s_addr != htonl(INADDR_ANY))
            inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(s->default_host, sizeof(s->default_host), "%s:%u", ip, s->port);
    } else {
        snprintf(s->default_host, sizeof(s->default_host), "[::1]:%u", s->port);
    }
    *out = s;
    return 0;
}

unsigned http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
