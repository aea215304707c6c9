/*
 * http — the HTTP server of vbatch: libmicrohttpd with its own thread pool,
 * a router with path parameters, a request/response abstraction, streamed
 * request bodies with per-route size limits, JSON helpers (jansson),
 * streaming file responses, and an incremental multipart/form-data parser.
 *
 * Nothing in here knows about workspaces, batches or jobs: the api module
 * registers routes and answers them.
 *
 * Life of a request (all calls on one libmicrohttpd pool thread; a request
 * never moves between threads):
 *
 *     headers received ─► route lookup ─► 404/405 JSON if none
 *            │
 *            ├─► Content-Length > route max_body ─► 413 JSON
 *            ├─► ops.begin(req)          (optional; may reply, e.g. 401)
 *            ├─► body chunks ─► ops.body(req, chunk)  streamed routes, or
 *            │                  appended to req's buffer (≤ max_body)
 *            └─► ops.end(req)            (whole body received; must reply)
 *     response sent ─► cleanups registered on the request run ─► log line
 *
 * A reply made in begin/body before the body is complete is sent at once
 * and the connection is closed afterwards (libmicrohttpd cannot skip the
 * rest of a body on a kept-alive connection).
 */
#ifndef VBATCH_HTTP_H
#define VBATCH_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_server;
struct http_router;
struct http_req;

/* ---- route callbacks ----------------------------------------------------- */
/* Each callback returns 0 on success.  A negative return without a reply
 * already made becomes an error reply whose status is the server's
 * err_status(code) (http_server_opts; 500 without one) and whose message
 * is err_str().  'ctx' is the pointer given to http_router_add. */
typedef int (*http_begin_fn)(struct http_req *req, void *ctx);
typedef int (*http_body_fn)(struct http_req *req, const char *data, size_t len, void *ctx);
typedef int (*http_end_fn)(struct http_req *req, void *ctx);

struct http_route_ops {
    http_begin_fn begin; /* optional: headers are in; may reply early */
    http_body_fn body;   /* optional: receive the body in chunks (streamed
                          * routes); NULL: the body is buffered, see
                          * http_req_body() */
    http_end_fn end;     /* required: the whole body has arrived; must reply */
    uint64_t max_body;   /* bytes; 0 = no body allowed (413 otherwise) */
};

/* ---- router ---------------------------------------------------------------- */
/* Not thread safe while routes are added; read-only (and shareable by all
 * pool threads) once the server runs. */
struct http_router *http_router_new(void);
void http_router_free(struct http_router *r);
/* Add a route.  'pattern' is an absolute path whose segments are literals or
 * "{name}" parameters matching one non-empty segment, e.g.
 * "/data-staging/v1/external/{workspace}/batches/{batch_id}/count".
 * A trailing "{name*}" segment matches the rest of the path (one or more
 * segments).  'method' is "GET", "POST", "PUT", "DELETE"...  The pattern and
 * ops are copied; ctx is borrowed and must outlive the router.
 * Returns 0, ERR_INVALID for a bad pattern, ERR_EXISTS for a duplicate. */
int http_router_add(struct http_router *r, const char *method, const char *pattern,
                    const struct http_route_ops *ops, void *ctx);
/* Convenience for body-less routes (GET, DELETE, POST without a body). */
int http_router_get(struct http_router *r, const char *pattern, http_end_fn fn, void *ctx);

/* Call fn(method, template, arg) for every route in insertion order, with
 * the pattern as given to http_router_add ("{name*}" included); stops at
 * and returns the first non-zero value fn returns.  (The OpenAPI document's
 * test compares this list with the document, tests/unit/test_api_openapi.c.) */
int http_router_each(const struct http_router *r, int (*fn)(const char *method, const char *tmpl, void *arg),
                     void *arg);

/* Look a path up (exposed for tests).  Returns 0 and fills the route's ops
 * and ctx and the parameters into *params (NUL-separated name=value pairs
 * stored in 'scratch' of 'cap' bytes, counted by *nparams), ERR_NOTFOUND
 * when no pattern matches, ERR_UNSUPPORTED when a pattern matches the path
 * but not the method. */
struct http_param {
    const char *name;
    const char *value;
};
#define HTTP_MAX_PARAMS 8
int http_router_match(const struct http_router *r, const char *method, const char *path,
                      char *scratch, size_t cap, struct http_param params[HTTP_MAX_PARAMS],
                      int *nparams, const struct http_route_ops **ops, void **ctx);

/* ---- request target ------------------------------------------------------- */
/* Percent-decode one piece of a request target in place: the path, or one
 * query key or value ('+' is not touched here: libmicrohttpd has already
 * turned it into a space in the query).  Returns the decoded length, or
 *   ERR_PARSE    a '%' not followed by two hex digits;
 *   ERR_INVALID  a decoded byte that may not stand there, in *bad (may be
 *                NULL): in the path only printable ASCII other than space
 *                (0x21..0x7e), which every literal, id, model id and blob
 *                key of the API is made of; in the query anything but NUL
 *                and the other control bytes (tab, CR and LF are allowed).
 * The server refuses a request whose target fails here with 400 before
 * routing, so no handler ever sees a value cut short by a NUL ("victim%00x"
 * is not "victim"). */
enum http_url_part { HTTP_URL_PATH, HTTP_URL_QUERY };
int http_url_decode(char *s, enum http_url_part part, int *bad);

/* ---- server ---------------------------------------------------------------- */
struct http_server_opts {
    const char *listen;       /* "ADDR:PORT" (IPv4, or [v6]:port); port 0 picks a free one */
    unsigned threads;         /* pool size; 0 = 4 x CPUs, at least 8, at most 64 */
    unsigned conn_timeout_s;  /* idle connection timeout; 0 = 60 */
    unsigned max_conns;       /* 0 = 1024 */
    bool quiet;               /* no per-request log line (benchmarks) */
    /* Status of a callback's negative return made without a reply: the
     * one code-to-status mapping lives above http/ (api_http_status);
     * NULL: 500.  This module knows only the statuses of HTTP itself
     * (400 malformed request, 404/405 routing, 413 body size, 501). */
    unsigned (*err_status)(int err);
};
/* Start serving 'router' (borrowed; must outlive the server).  On success
 * returns 0 and *out; the caller stops it with http_server_stop(). */
int http_server_start(const struct http_server_opts *opts, struct http_router *router,
                      struct http_server **out);
/* The TCP port actually bound (useful with port 0). */
unsigned http_server_port(const struct http_server *s);
/* Stop accepting, wait for the pool threads, free.  NULL is fine. */
void http_server_stop(struct http_server *s);

/* ---- request accessors (valid until the request completes) ----------------- */
const char *http_req_method(const struct http_req *req);
/* Decoded path, without the query string (http_url_decode: no NUL, only
 * printable ASCII). */
const char *http_req_path(const struct http_req *req);
/* Path parameter of the matched pattern; NULL if absent. */
const char *http_req_param(const struct http_req *req, const char *name);
/* Decoded query parameter (http_url_decode: no NUL or control byte); the
 * first one when the key is given twice; NULL if absent.  A key given
 * without '=' is "". */
const char *http_req_query(const struct http_req *req, const char *name);
/* How many times the query carries `name` (a signed URL or a key given twice is refused). */
int http_req_query_count(const struct http_req *req, const char *name);
/* Request header, case-insensitive name; NULL if absent. */
const char *http_req_header(const struct http_req *req, const char *name);
/* Declared Content-Length, or -1 when there is none (chunked or no body). */
int64_t http_req_content_length(const struct http_req *req);
/* Body bytes received so far. */
uint64_t http_req_body_size(const struct http_req *req);
/* Buffered body (routes without ops.body), NUL-terminated; len may be NULL.
 * Owned by the request. */
const char *http_req_body(const struct http_req *req, size_t *len);
/* Parse the buffered body as JSON (json_parse_outside: at most
 * JSON_MAX_DEPTH levels deep).  On failure replies 400 with the parser's
 * message, or one naming the nesting limit, and returns NULL.  Caller owns
 * the result (json_decref). */
json_t *http_req_body_json(struct http_req *req);

/* Per-request state for the route's callbacks: 'fn' (may be NULL) is called
 * with 'state' when the request completes, whatever the outcome (client
 * gone, error, success), so temp files are never left behind. */
void http_req_set_state(struct http_req *req, void *state, void (*fn)(void *state));
void *http_req_state(const struct http_req *req);
/* Register an extra cleanup run at completion (LIFO).  Up to 8. */
int http_req_on_done(struct http_req *req, void (*fn)(void *arg), void *arg);

/* Base URL the client used: "http://" + Host header, or "http://127.0.0.1:PORT"
 * when there is none.  Static per request; valid until completion. */
const char *http_req_base_url(struct http_req *req);

/* ---- replies (one per request; a second one is ignored) -------------------- */
bool http_req_replied(const struct http_req *req);
/* Reply with a JSON value (stolen: the reply takes the reference). */
int http_reply_json(struct http_req *req, unsigned status, json_t *body);
/* Reply {"error": "<message>"}. */
int http_reply_error(struct http_req *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reply with bytes (copied). */
int http_reply_data(struct http_req *req, unsigned status, const char *content_type,
                    const void *data, size_t len);
/* Reply with the content of an open file, streamed by libmicrohttpd.  'fd'
 * is stolen (closed by the reply, also on failure). */
int http_reply_fd(struct http_req *req, unsigned status, const char *content_type, int fd,
                  uint64_t size);
/* The same for size bytes from offset of the file. */
int http_reply_fd_at(struct http_req *req, unsigned status, const char *content_type, int fd, uint64_t offset,
                     uint64_t size);
/* Add a header to the reply made next (or already made).  Up to 8. */
int http_reply_header(struct http_req *req, const char *name, const char *value);

/* ---- multipart/form-data (RFC 7578), incremental --------------------------- */
/* A part's headers, borrowed for the duration of the part_begin callback.
 * Fields are NULL when absent. */
struct http_mp_part {
    const char *name;         /* Content-Disposition name= */
    const char *filename;     /* Content-Disposition filename= */
    const char *content_type; /* Content-Type of the part */
};
struct http_mp_cb {
    /* Each returns 0 to go on, <0 to stop the parse with that error. */
    int (*part_begin)(void *arg, const struct http_mp_part *part);
    int (*part_data)(void *arg, const char *data, size_t len);
    int (*part_end)(void *arg);
    void *arg;
};
struct http_multipart;
#define HTTP_MP_MAX_HEADER 8192 /* bytes of one part's header block */
#define HTTP_MP_MAX_PARTS 256
/* Create a parser from a Content-Type header value
 * ("multipart/form-data; boundary=..."); ERR_PARSE when it is not one or
 * the boundary is missing or longer than 70 characters.  Caller frees with
 * http_multipart_free(). */
int http_multipart_new(const char *content_type, const struct http_mp_cb *cb,
                       struct http_multipart **out);
void http_multipart_free(struct http_multipart *mp);
/* Feed the next 'len' bytes (reads exactly those).  Returns ERR_AGAIN when
 * more bytes are needed, 0 once the closing delimiter has been seen (later
 * bytes, the epilogue, are ignored), or <0 on malformed input (ERR_PARSE),
 * a limit (ERR_LIMIT) or a callback's error; after an error every later
 * call returns the same error. */
int http_multipart_feed(struct http_multipart *mp, const char *data, size_t len);
/* 0 when the body was complete, ERR_PARSE when it ended early. */
int http_multipart_finish(const struct http_multipart *mp);

#endif
