/* test_http.c — router, multipart parser and the server over real sockets. */
#include "http/http.h"

#include "base/base.h"
#include "t.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* ---- router ----------------------------------------------------------------- */

static int h_ok(struct http_req *req, void *ctx)
{
    (void)ctx;
    return http_reply_json(req, 200, json_pack("{s:s}", "ok", http_req_path(req)));
}

TEST(router_params_and_errors)
{
    struct http_router *r = http_router_new();
    char scratch[512];
    struct http_param p[HTTP_MAX_PARAMS];
    int np = 0;
    const struct http_route_ops *ops;
    void *ctx;
    int tag1, tag2, tag3;

    ASSERT_OK(http_router_get(r, "/", h_ok, &tag1));
    ASSERT_OK(http_router_get(r, "/ws/{workspace}/batches/{batch_id}/count", h_ok, &tag2));
    ASSERT_OK(http_router_get(r, "/blobs/{key*}", h_ok, &tag3));
    ASSERT_EQ(http_router_get(r, "/ws/{x}/batches/{y}/count", h_ok, NULL), ERR_EXISTS);
    ASSERT_EQ(http_router_get(r, "nope", h_ok, NULL), ERR_INVALID);
    ASSERT_EQ(http_router_get(r, "/a/{k*}/b", h_ok, NULL), ERR_INVALID);

    ASSERT_OK(http_router_match(r, "GET", "/", scratch, sizeof scratch, p, &np, &ops, &ctx));
    ASSERT(ctx == &tag1);
    ASSERT_EQ(np, 0);
    ASSERT_OK(http_router_match(r, "GET", "/ws/acme/batches/b-1/count", scratch, sizeof scratch, p,
                                &np, &ops, &ctx));
    ASSERT(ctx == &tag2);
    ASSERT_EQ(np, 2);
    ASSERT_STR_EQ(p[0].name, "workspace");
    ASSERT_STR_EQ(p[0].value, "acme");
    ASSERT_STR_EQ(p[1].name, "batch_id");
    ASSERT_STR_EQ(p[1].value, "b-1");
    ASSERT_OK(http_router_match(r, "GET", "/blobs/a/b/c.jpg", scratch, sizeof scratch, p, &np,
                                &ops, &ctx));
    ASSERT(ctx == &tag3);
    ASSERT_STR_EQ(p[0].value, "a/b/c.jpg");
    ASSERT_EQ(http_router_match(r, "POST", "/ws/acme/batches/b/count", scratch, sizeof scratch, p,
                                &np, &ops, &ctx), ERR_UNSUPPORTED);
    ASSERT_EQ(http_router_match(r, "GET", "/ws/acme/batches//count", scratch, sizeof scratch, p,
                                &np, &ops, &ctx), ERR_NOTFOUND);
    ASSERT_EQ(http_router_match(r, "GET", "/ws/acme/batches/b/count/", scratch, sizeof scratch, p,
                                &np, &ops, &ctx), ERR_NOTFOUND);
    ASSERT_EQ(http_router_match(r, "GET", "/blobs", scratch, sizeof scratch, p, &np, &ops, &ctx),
              ERR_NOTFOUND);
    ASSERT_EQ(http_router_match(r, "GET", "", scratch, sizeof scratch, p, &np, &ops, &ctx),
              ERR_NOTFOUND);
    http_router_free(r);
}

/* Decode a copy of in; returns the result code, the text in out. */
static int url_dec(const char *in, enum http_url_part part, char *out, int *bad)
{
    strcpy(out, in);
    return http_url_decode(out, part, bad);
}

TEST(url_decode_target)
{
    char b[256];
    int bad = -1;

    ASSERT_EQ(url_dec("/a/b%2Fc/d%7E", HTTP_URL_PATH, b, &bad), 9);
    ASSERT_STR_EQ(b, "/a/b/c/d~");
    ASSERT_EQ(url_dec("a+b", HTTP_URL_PATH, b, &bad), 3);
    ASSERT_STR_EQ(b, "a+b");
    /* a NUL would cut the value: refused wherever it is */
    ASSERT_EQ(url_dec("/workflows/victim%00x", HTTP_URL_PATH, b, &bad), ERR_INVALID);
    ASSERT_EQ(bad, 0);
    ASSERT_EQ(url_dec("key%00junk", HTTP_URL_QUERY, b, &bad), ERR_INVALID);
    ASSERT_EQ(bad, 0);
    /* the path: printable ASCII other than space only */
    static const char *const path_bad[] = {"/x%01", "/x%1f", "/x%20", "/x%7f", "/x%80", "/x%c3%a9", "/x%ff",
                                           "/x%0a", "/x%09"};
    for (size_t i = 0; i < ARRAY_LEN(path_bad); i++)
        ASSERT_EQ(url_dec(path_bad[i], HTTP_URL_PATH, b, NULL), ERR_INVALID);
    ASSERT_EQ(url_dec("/x%c3%a9", HTTP_URL_PATH, b, &bad), ERR_INVALID);
    ASSERT_EQ(bad, 0xc3);
    /* the query: UTF-8, spaces, tab, CR and LF are fine; other controls not */
    ASSERT_EQ(url_dec("caf%C3%A9 %09%0d%0a", HTTP_URL_QUERY, b, &bad), 9);
    static const char *const query_bad[] = {"%01", "x%1b", "%7f", "%00"};
    for (size_t i = 0; i < ARRAY_LEN(query_bad); i++)
        ASSERT_EQ(url_dec(query_bad[i], HTTP_URL_QUERY, b, NULL), ERR_INVALID);
    /* malformed escapes */
    static const char *const malformed[] = {"/x%", "/x%4", "/x%zz", "/x%g0", "/%%"};
    for (size_t i = 0; i < ARRAY_LEN(malformed); i++) {
        ASSERT_EQ(url_dec(malformed[i], HTTP_URL_PATH, b, NULL), ERR_PARSE);
        ASSERT_EQ(url_dec(malformed[i], HTTP_URL_QUERY, b, NULL), ERR_PARSE);
    }
    ASSERT_EQ(url_dec("", HTTP_URL_QUERY, b, NULL), 0);
}

/* ---- multipart ----------------------------------------------------------------- */

struct mp_rec {
    struct buf log; /* "B name filename ctype|" "D..." "E|" */
};

static int rec_begin(void *arg, const struct http_mp_part *p)
{
    struct mp_rec *r = arg;
    return buf_printf(&r->log, "[%s;%s;%s]", p->name ? p->name : "-",
                      p->filename ? p->filename : "-", p->content_type ? p->content_type : "-");
}
static int rec_data(void *arg, const char *d, size_t n)
{
    struct mp_rec *r = arg;
    return buf_append(&r->log, d, n);
}
static int rec_end(void *arg)
{
    struct mp_rec *r = arg;
    return buf_puts(&r->log, "|");
}

/* Parse body in chunks of 'step' bytes (0 = whole); returns the final rc and
 * the log in *out (caller frees). */
static int mp_run(const char *ct, const char *body, size_t len, size_t step, char **out)
{
    struct mp_rec r = {BUF_INIT};
    struct http_mp_cb cb = {rec_begin, rec_data, rec_end, &r};
    struct http_multipart *mp = NULL;
    int rc = http_multipart_new(ct, &cb, &mp);
    if (rc < 0)
        return rc;
    size_t pos = 0;
    rc = ERR_AGAIN;
    while (pos < len) {
        size_t n = step && step < len - pos ? step : len - pos;
        rc = http_multipart_feed(mp, body + pos, n);
        pos += n;
        if (rc != ERR_AGAIN)
            break;
    }
    if (rc == ERR_AGAIN)
        rc = http_multipart_finish(mp);
    http_multipart_free(mp);
    *out = buf_detach(&r.log, NULL);
    return rc;
}

static const char MP_BODY[] =
    "preamble\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"a.jpg\"; filename=\"a.jpg\"\r\n"
    "\r\n"
    "hello\r\n--Xy-not-quite\r\n-\r\r\n"
    "--XyZ\r\n"
    "content-disposition: form-data; name=second; filename=\"q\\\"x\"\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "\r\n"
    "--XyZ\r\n"
    "\r\n"
    "nohdr\r\n"
    "--XyZ--\r\nepilogue --XyZ garbage";

TEST(multipart_every_split)
{
    const char *ct = "multipart/form-data; boundary=XyZ";
    const char *want = "[a.jpg;a.jpg;-]hello\r\n--Xy-not-quite\r\n-\r|"
                       "[second;q\"x;text/plain]|[-;-;-]nohdr|";
    size_t len = sizeof(MP_BODY) - 1;
    for (size_t step = 0; step <= 9; step++) {
        char *log = NULL;
        ASSERT_EQ(mp_run(ct, MP_BODY, len, step, &log), 0);
        ASSERT_STR_EQ(log, want);
        free(log);
    }
    /* quoted boundary with a leading delimiter at offset 0 */
    const char *b2 = "--b b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n--b b--";
    char *log = NULL;
    ASSERT_EQ(mp_run("multipart/form-data; boundary=\"b b\"", b2, strlen(b2), 1, &log), 0);
    ASSERT_STR_EQ(log, "[f;-;-]x|");
    free(log);
}

TEST(multipart_errors)
{
    char *log = NULL;
    ASSERT_EQ(http_multipart_new("text/plain", &(struct http_mp_cb){0}, &(struct http_multipart *){0}),
              ERR_PARSE);
    ASSERT_EQ(http_multipart_new("multipart/form-data", &(struct http_mp_cb){0},
                                 &(struct http_multipart *){0}), ERR_PARSE);
    ASSERT_EQ(http_multipart_new("multipart/form-data; boundary=\"unterminated",
                                 &(struct http_mp_cb){0}, &(struct http_multipart *){0}), ERR_PARSE);
    char longb[120];
    memset(longb, 'a', sizeof longb);
    memcpy(longb, "multipart/form-data; boundary=", 30);
    longb[sizeof longb - 1] = 0;
    ASSERT_EQ(http_multipart_new(longb, &(struct http_mp_cb){0}, &(struct http_multipart *){0}),
              ERR_PARSE);

    const char *ct = "multipart/form-data; boundary=B";
    /* truncated: no closing delimiter */
    const char *t1 = "--B\r\n\r\nabc";
    ASSERT_EQ(mp_run(ct, t1, strlen(t1), 0, &log), ERR_PARSE);
    free(log);
    /* junk after a delimiter */
    const char *t2 = "--Bx\r\n\r\nabc\r\n--B--";
    ASSERT_EQ(mp_run(ct, t2, strlen(t2), 0, &log), ERR_PARSE);
    free(log);
    /* header line without a colon */
    const char *t3 = "--B\r\nnot a header\r\n\r\nabc\r\n--B--";
    ASSERT_EQ(mp_run(ct, t3, strlen(t3), 0, &log), ERR_PARSE);
    free(log);
    /* a NUL inside a part's headers (it would cut the filename short) */
    const char t3n[] = "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\0.exe\"\r\n\r\nabc\r\n--B--";
    ASSERT_EQ(mp_run(ct, t3n, sizeof t3n - 1, 0, &log), ERR_PARSE);
    free(log);
    const char t3m[] = "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nX: \0\r\n\r\nabc\r\n--B--";
    ASSERT_EQ(mp_run(ct, t3m, sizeof t3m - 1, 0, &log), ERR_PARSE);
    free(log);
    /* header block over the cap */
    struct buf big = BUF_INIT;
    buf_puts(&big, "--B\r\nX-Long: ");
    for (int i = 0; i < HTTP_MP_MAX_HEADER; i++)
        buf_puts(&big, "a");
    buf_puts(&big, "\r\n\r\nx\r\n--B--");
    ASSERT_EQ(mp_run(ct, big.data, big.len, 100, &log), ERR_LIMIT);
    free(log);
    buf_release(&big);
    /* too many parts */
    struct buf many = BUF_INIT;
    for (int i = 0; i <= HTTP_MP_MAX_PARTS; i++)
        buf_puts(&many, "--B\r\n\r\nx\r\n");
    buf_puts(&many, "--B--");
    ASSERT_EQ(mp_run(ct, many.data, many.len, 0, &log), ERR_LIMIT);
    free(log);
    buf_release(&many);
    /* an error sticks */
    struct http_multipart *mp = NULL;
    struct http_mp_cb cb = {0};
    ASSERT_OK(http_multipart_new(ct, &cb, &mp));
    ASSERT_EQ(http_multipart_feed(mp, "--B?", 4), ERR_PARSE);
    ASSERT_EQ(http_multipart_feed(mp, "\r\n", 2), ERR_PARSE);
    ASSERT_EQ(http_multipart_finish(mp), ERR_PARSE);
    http_multipart_free(mp);
}

/* ---- server ---------------------------------------------------------------------- */

static int cleanup_pipe[2];

static void note_done(void *arg)
{
    char c = (char)(intptr_t)arg;
    if (write(cleanup_pipe[1], &c, 1) != 1)
        abort();
}

static int h_query(struct http_req *req, void *ctx)
{
    (void)ctx;
    const char *a = http_req_query(req, "a");
    const char *b = http_req_query(req, "b");
    const char *c = http_req_query(req, "c");
    return http_reply_json(req, 200, json_pack("{s:s?,s:s?,s:s?,s:s}", "a", a, "b", b, "c", c,
                                               "id", http_req_param(req, "id")));
}

static int h_echo(struct http_req *req, void *ctx)
{
    (void)ctx;
    size_t len;
    const char *b = http_req_body(req, &len);
    http_req_on_done(req, note_done, (void *)(intptr_t)'e');
    return http_reply_data(req, 201, "text/plain", b, len);
}

static int h_json(struct http_req *req, void *ctx)
{
    (void)ctx;
    json_t *j = http_req_body_json(req);
    if (!j)
        return 0;
    return http_reply_json(req, 200, j);
}

struct sink {
    uint64_t n;
};
static void sink_free(void *p)
{
    note_done((void *)(intptr_t)'s');
    free(p);
}
static int s_begin(struct http_req *req, void *ctx)
{
    (void)ctx;
    if (http_req_query(req, "deny"))
        return http_reply_error(req, 401, "denied");
    http_req_set_state(req, xcalloc(1, sizeof(struct sink)), sink_free);
    return 0;
}
static int s_body(struct http_req *req, const char *d, size_t n, void *ctx)
{
    (void)ctx;
    (void)d;
    struct sink *s = http_req_state(req);
    s->n += n;
    return 0;
}
static int s_end(struct http_req *req, void *ctx)
{
    (void)ctx;
    struct sink *s = http_req_state(req);
    return http_reply_json(req, 200, json_pack("{s:I}", "n", (json_int_t)s->n));
}
static int h_fail(struct http_req *req, void *ctx)
{
    (void)req;
    (void)ctx;
    return ERR_NOTFOUND;
}

/* The server's mapping of a bare failure code (the api's is api_http_status). */
static unsigned t_status(int err)
{
    return err == ERR_NOTFOUND ? 404 : 500;
}

static struct http_server *srv_start(struct http_router **rout)
{
    struct http_router *r = http_router_new();
    struct http_route_ops echo = {.end = h_echo, .max_body = 100};
    struct http_route_ops js = {.end = h_json, .max_body = 1000};
    struct http_route_ops st = {.begin = s_begin, .body = s_body, .end = s_end,
                                .max_body = 1 << 20};
    ASSERT_OK(http_router_get(r, "/q/{id}", h_query, NULL));
    ASSERT_OK(http_router_get(r, "/fail", h_fail, NULL));
    ASSERT_OK(http_router_add(r, "POST", "/echo", &echo, NULL));
    ASSERT_OK(http_router_add(r, "POST", "/json", &js, NULL));
    ASSERT_OK(http_router_add(r, "PUT", "/stream", &st, NULL));
    struct http_server_opts o = {.listen = "127.0.0.1:0", .threads = 2, .quiet = false,
                                 .err_status = t_status};
    struct http_server *s = NULL;
    ASSERT_OK(http_server_start(&o, r, &s));
    ASSERT_GT(http_server_port(s), 0);
    *rout = r;
    return s;
}

static int conn_open(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
    return fd;
}

/* Send raw bytes, read one response (headers + Content-Length body).
 * Returns the status; *body (caller frees) gets the body. */
static int roundtrip_fd(int fd, const char *raw, size_t rawlen, char **body)
{
    size_t off = 0;
    while (off < rawlen) {
        ssize_t w = send(fd, raw + off, rawlen - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer early and close */
        off += (size_t)w;
    }
    struct buf in = BUF_INIT;
    char tmp[4096];
    char *hdr_end = NULL;
    long clen = -1;
    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0)
            break;
        buf_append(&in, tmp, (size_t)r);
        hdr_end = strstr(in.data, "\r\n\r\n");
        if (hdr_end) {
            char *cl = strcasestr(in.data, "Content-Length:");
            clen = cl && cl < hdr_end ? atol(cl + 15) : 0;
            if ((long)(in.len - (size_t)(hdr_end + 4 - in.data)) >= clen)
                break;
        }
    }
    int status = 0;
    if (in.len > 12)
        status = atoi(in.data + 9);
    if (body)
        *body = xstrdup(hdr_end ? hdr_end + 4 : "");
    buf_release(&in);
    return status;
}

static int roundtrip(unsigned port, const char *raw, char **body)
{
    int fd = conn_open(port);
    int st = roundtrip_fd(fd, raw, strlen(raw), body);
    close(fd);
    return st;
}

TEST(server_routes_queries_errors)
{
    struct http_router *r;
    struct http_server *s = srv_start(&r);
    unsigned port = http_server_port(s);
    char *body = NULL;

    ASSERT_EQ(roundtrip(port, "GET /q/x1?a=1%202&b=x+y&c HTTP/1.1\r\nHost: h\r\n\r\n", &body), 200);
    ASSERT_STR_EQ(body, "{\"a\":\"1 2\",\"b\":\"x y\",\"c\":\"\",\"id\":\"x1\"}");
    free(body);
    ASSERT_EQ(roundtrip(port, "GET /nope HTTP/1.1\r\nHost: h\r\n\r\n", &body), 404);
    ASSERT(strstr(body, "\"error\""));
    free(body);
    /* escapes decoded by the server: a NUL or a bad byte is refused before routing */
    ASSERT_EQ(roundtrip(port, "GET /q/x%31?a=%C3%A9&b%3D=%2B HTTP/1.1\r\nHost: h\r\n\r\n", &body), 200);
    ASSERT_STR_EQ(body, "{\"a\":\"\xc3\xa9\",\"b\":null,\"c\":null,\"id\":\"x1\"}");
    free(body);
    static const char *const refused[] = {
        "GET /q/x%00y HTTP/1.1\r\nHost: h\r\n\r\n", "GET /q/x%01 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /q/x%zz HTTP/1.1\r\nHost: h\r\n\r\n",  "GET /nope%00 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /q/x?a=1%00 HTTP/1.1\r\nHost: h\r\n\r\n", "GET /q/x?a%00=1 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /q/x?a=%1b HTTP/1.1\r\nHost: h\r\n\r\n", "GET /q/x?a=%4 HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /echo%00 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab",
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        ASSERT_EQ(roundtrip(port, refused[i], &body), 400);
        ASSERT(strstr(body, "\"error\""));
        free(body);
    }
    ASSERT_EQ(roundtrip(port, "DELETE /q/x HTTP/1.1\r\nHost: h\r\n\r\n", &body), 405);
    ASSERT(strstr(body, "\"error\""));
    free(body);
    ASSERT_EQ(roundtrip(port, "GET /fail HTTP/1.1\r\nHost: h\r\n\r\n", &body), 404);
    ASSERT(strstr(body, "\"error\""));
    free(body);
    ASSERT_EQ(roundtrip(port, "POST /json HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n{\"a\":", &body), 400);
    ASSERT(strstr(body, "malformed JSON"));
    free(body);
    ASSERT_EQ(roundtrip(port, "POST /json HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n{\"a\":1}", &body), 200);
    ASSERT_STR_EQ(body, "{\"a\":1}");
    free(body);
    http_server_stop(s);
    http_router_free(r);
}

TEST(server_body_limits_and_cleanup)
{
    struct http_router *r;
    ASSERT_OK(pipe(cleanup_pipe));
    struct http_server *s = srv_start(&r);
    unsigned port = http_server_port(s);
    char *body = NULL;
    char c;

    /* buffered body under the limit, with keep-alive: two on one socket */
    int fd = conn_open(port);
    const char *two = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    ASSERT_EQ(roundtrip_fd(fd, two, strlen(two), &body), 201);
    ASSERT_STR_EQ(body, "hello");
    free(body);
    ASSERT_EQ(roundtrip_fd(fd, two, strlen(two), &body), 201);
    free(body);
    close(fd);
    ASSERT_EQ(read(cleanup_pipe[0], &c, 1), 1);
    ASSERT_EQ(c, 'e');
    ASSERT_EQ(read(cleanup_pipe[0], &c, 1), 1);
    ASSERT_EQ(c, 'e');

    /* declared length over the limit: 413; a small body is drained first so
     * the client reads the answer, a huge one is not read at all */
    char over[300];
    snprintf(over, sizeof over, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n%0101d", 7);
    fd = conn_open(port);
    ASSERT_EQ(roundtrip_fd(fd, over, strlen(over), &body), 413);
    ASSERT(strstr(body, "limit"));
    free(body);
    /* ...and the connection stays usable */
    ASSERT_EQ(roundtrip_fd(fd, two, strlen(two), &body), 201);
    free(body);
    close(fd);
    ASSERT_EQ(read(cleanup_pipe[0], &c, 1), 1);
    /* with Expect: 100-continue the answer comes before any body is sent */
    ASSERT_EQ(roundtrip(port, "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                              "Content-Length: 101\r\n\r\n", &body), 413);
    free(body);
    ASSERT_EQ(roundtrip(port, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 900000000\r\n\r\n", &body), 413);
    ASSERT(strstr(body, "limit"));
    free(body);
    /* a body on a GET route: 413 */
    ASSERT_EQ(roundtrip(port, "GET /q/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", &body), 413);
    free(body);
    /* chunked body growing over the limit */
    struct buf ch = BUF_INIT;
    buf_puts(&ch, "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++)
        buf_puts(&ch, "20\r\n01234567890123456789012345678901\r\n");
    buf_puts(&ch, "0\r\n\r\n");
    ASSERT_EQ(roundtrip(port, ch.data, &body), 413);
    free(body);
    buf_release(&ch);

    /* streamed body: counted chunk by chunk, state freed */
    struct buf big = BUF_INIT;
    buf_puts(&big, "PUT /stream HTTP/1.1\r\nHost: h\r\nContent-Length: 300000\r\n\r\n");
    for (int i = 0; i < 300000; i++)
        buf_append(&big, "x", 1);
    fd = conn_open(port);
    ASSERT_EQ(roundtrip_fd(fd, big.data, big.len, &body), 200);
    close(fd);
    ASSERT_STR_EQ(body, "{\"n\":300000}");
    free(body);
    ASSERT_EQ(read(cleanup_pipe[0], &c, 1), 1);
    ASSERT_EQ(c, 's');
    /* early reply from begin with a body on the way */
    const char *deny = "PUT /stream?deny HTTP/1.1\r\nHost: h\r\nContent-Length: 300000\r\n\r\n";
    buf_reset(&big);
    buf_puts(&big, deny);
    for (int i = 0; i < 300000; i++)
        buf_append(&big, "x", 1);
    fd = conn_open(port);
    ASSERT_EQ(roundtrip_fd(fd, big.data, big.len, &body), 401);
    close(fd);
    ASSERT(strstr(body, "denied"));
    free(body);
    buf_release(&big);

    /* garbage request line */
    ASSERT_EQ(roundtrip(port, "\x01\x02 garbage\r\n\r\n", &body) / 100, 4);
    free(body);
    http_server_stop(s);
    http_router_free(r);
}

TEST_MAIN()
