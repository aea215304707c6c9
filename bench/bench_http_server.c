/*
 * bench_http_server.c — cost of vbatch's HTTP layer over bare libmicrohttpd.
 *
 *   1. keep-alive GET req/s: a bare libmicrohttpd daemon answering a fixed
 *      body (baseline) vs http_server + router + JSON reply, same clients,
 *      same thread-pool size; ratio = ours / bare.
 *   2. multipart parse MB/s of a 32 MiB part fed in 64 KiB chunks vs a
 *      memcpy of the same bytes (baseline); ratio = parse / memcpy.
 *
 *   3. with arguments PORT PATH (bench_http_server 8080 '/?api_key=K'):
 *      keep-alive GET req/s of PATH on a running server (vbatch serve
 *      --quiet: authentication, routing, metrics, the JSON answer) vs the
 *      bare daemon, alternating rounds, same clients; only this figure.
 *   4. with arguments PORT PATH BARE_PORT: the same against a bare daemon
 *      running in its own process (bench_http_hello, bench/auth_bench.sh),
 *      so that both servers are separate processes and the clients are
 *      the same; BENCH_ROUNDS rounds (default 4).  Prints the best of
 *      each side and the median of the rounds' ratios.
 *
 * One line per figure: "bench http <name> key=value ...".
 */
#include "http/http.h"

#include "base/base.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 4
#define SECONDS_PER_RUN 1
#define ROUNDS 4 /* alternating bare/ours rounds; the best of each counts (the machine is shared) */

/* ---- clients ---------------------------------------------------------------- */

struct client {
    unsigned port;
    const char *req;
    volatile int *stop;
    long done;
};

static void *client_run(void *arg)
{
    struct client *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    char buf[8192];
    size_t rlen = strlen(c->req);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        abort();
    while (!*c->stop) {
        if (send(fd, c->req, rlen, MSG_NOSIGNAL) != (ssize_t)rlen)
            break;
        size_t have = 0;
        long need = -1;
        for (;;) {
            ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
            if (r <= 0)
                goto out;
            have += (size_t)r;
            buf[have] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (end && need < 0) {
                char *cl = strcasestr(buf, "Content-Length:");
                need = (long)(end + 4 - buf) + (cl ? atol(cl + 15) : 0);
            }
            if (need >= 0 && (long)have >= need)
                break;
        }
        c->done++;
    }
out:
    close(fd);
    return NULL;
}

static double run_clients(unsigned port, const char *req)
{
    pthread_t th[CLIENTS];
    struct client cl[CLIENTS];
    volatile int stop = 0;
    long total = 0;

    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (struct client){port, req, &stop, 0};
        pthread_create(&th[i], NULL, client_run, &cl[i]);
    }
    int64_t t0 = time_mono_ns();
    sleep(SECONDS_PER_RUN);
    stop = 1;
    double dt = (double)(time_mono_ns() - t0) / 1e9;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        total += cl[i].done;
    }
    return (double)total / dt;
}

/* ---- bare libmicrohttpd baseline ---------------------------------------------- */

static enum MHD_Result bare_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *data,
                                   size_t *size, void **con_cls)
{
    static const char body[] = "{\"count\":1}";
    (void)cls, (void)url, (void)method, (void)version, (void)data, (void)size;
    if (!*con_cls) { /* respond on the second call (DEPENDENCIES.md) */
        *con_cls = (void *)1;
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
                                                             MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- ours ------------------------------------------------------------------------ */

static int h_count(struct http_req *req, void *ctx)
{
    (void)ctx;
    if (!http_req_param(req, "batch_id") || !http_req_query(req, "api_key"))
        return http_reply_error(req, 400, "bad");
    return http_reply_json(req, 200, json_pack("{s:i}", "count", 1));
}

static int noop_data(void *arg, const char *d, size_t n)
{
    (void)arg;
    (void)d;
    *(size_t *)arg += n;
    return 0;
}

int main(int argc, char **argv)
{
    const char *req = "GET /data-staging/v1/external/ws/batches/b1/count?api_key=k HTTP/1.1\r\n"
                      "Host: 127.0.0.1\r\n\r\n";
    unsigned threads = 2;

    log_set_level(LOG_WARN);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, bare_access,
                                            NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
                                            MHD_OPTION_END);
    if (!d)
        return 1;
    unsigned bport = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;

    if (argc == 4) {
        /* a running server's GET vs a bare daemon in another process */
        char *ext = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
        const char *hello = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        unsigned eport = (unsigned)atoi(argv[1]), hport = (unsigned)atoi(argv[3]);
        const char *rs = getenv("BENCH_ROUNDS");
        int rounds = rs && atoi(rs) > 0 ? MIN(atoi(rs), 64) : ROUNDS;
        double bare = 0, ours = 0, ratios[64];
        MHD_stop_daemon(d);
        for (int k = 0; k < rounds; k++) {
            double b = run_clients(hport, hello), o = run_clients(eport, ext);
            bare = MAX(bare, b);
            ours = MAX(ours, o);
            ratios[k] = b > 0 ? o / b : 0;
            for (int j = k; j > 0 && ratios[j] < ratios[j - 1]; j--) {
                double t = ratios[j];
                ratios[j] = ratios[j - 1];
                ratios[j - 1] = t;
            }
        }
        printf("bench http server_vs_hello clients=%d rounds=%d hello_req_s=%.0f server_req_s=%.0f ratio_best=%.3f"
               " ratio_median=%.3f ratio_min=%.3f ratio_max=%.3f\n",
               CLIENTS, rounds, bare, ours, ours / bare, ratios[rounds / 2], ratios[0], ratios[rounds - 1]);
        free(ext);
        return 0;
    }
    if (argc == 3) {
        /* a running server's GET vs the bare daemon */
        char *ext = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
        unsigned eport = (unsigned)atoi(argv[1]);
        double bare = 0, ours = 0;
        for (int k = 0; k < ROUNDS; k++) {
            bare = MAX(bare, run_clients(bport, req));
            ours = MAX(ours, run_clients(eport, ext));
        }
        MHD_stop_daemon(d);
        printf("bench http server_get clients=%d bare_threads=%u bare_req_s=%.0f server_req_s=%.0f ratio=%.3f\n",
               CLIENTS, threads, bare, ours, ours / bare);
        free(ext);
        return 0;
    }
    struct http_router *r = http_router_new();
    http_router_get(r, "/healthz", h_count, NULL);
    http_router_get(r, "/data-staging/v1/external/{workspace}/batches", h_count, NULL);
    http_router_get(r, "/data-staging/v1/external/{workspace}/batches/{batch_id}", h_count, NULL);
    http_router_get(r, "/data-staging/v1/external/{workspace}/batches/{batch_id}/list", h_count, NULL);
    http_router_get(r, "/data-staging/v1/external/{workspace}/batches/{batch_id}/count", h_count, NULL);
    struct http_server_opts o = {.listen = "127.0.0.1:0", .threads = threads, .quiet = true};
    struct http_server *s = NULL;
    if (http_server_start(&o, r, &s) < 0)
        return 1;
    double bare = 0, ours = 0;
    for (int k = 0; k < ROUNDS; k++) {
        bare = MAX(bare, run_clients(bport, req));
        ours = MAX(ours, run_clients(http_server_port(s), req));
    }
    MHD_stop_daemon(d);
    http_server_stop(s);
    http_router_free(r);
    printf("bench http get_keepalive clients=%d threads=%u bare_req_s=%.0f vbatch_req_s=%.0f ratio=%.3f\n",
           CLIENTS, threads, bare, ours, ours / bare);

    /* multipart parse vs memcpy */
    size_t part = 32u << 20, chunk = 64 * 1024;
    struct buf body = BUF_INIT;
    buf_puts(&body, "--b0undary\r\nContent-Disposition: form-data; name=\"x.jpg\"; filename=\"x.jpg\"\r\n\r\n");
    size_t off = body.len;
    char *junk = xmalloc(part);
    rand_bytes(junk, part);
    buf_append(&body, junk, part);
    buf_puts(&body, "\r\n--b0undary--\r\n");
    (void)off;
    size_t got = 0;
    struct http_mp_cb cb = {NULL, noop_data, NULL, &got};
    int reps = 5;
    int64_t t0 = time_mono_ns();
    for (int k = 0; k < reps; k++) {
        struct http_multipart *mp = NULL;
        http_multipart_new("multipart/form-data; boundary=b0undary", &cb, &mp);
        for (size_t p = 0; p < body.len; p += chunk)
            http_multipart_feed(mp, body.data + p, MIN(chunk, body.len - p));
        if (http_multipart_finish(mp) < 0)
            return 1;
        http_multipart_free(mp);
    }
    double t_parse = (double)(time_mono_ns() - t0) / 1e9;
    char *dst = xmalloc(chunk);
    t0 = time_mono_ns();
    for (int k = 0; k < reps; k++)
        for (size_t p = 0; p < body.len; p += chunk) {
            memcpy(dst, body.data + p, MIN(chunk, body.len - p));
            __asm__ volatile("" : : "r"(dst) : "memory");
        }
    double t_copy = (double)(time_mono_ns() - t0) / 1e9;
    double mb = (double)body.len * reps / 1e6;
    printf("bench http multipart_parse mb=%.0f parse_mb_s=%.0f memcpy_mb_s=%.0f ratio=%.3f bytes_ok=%d\n", mb,
           mb / t_parse, mb / t_copy, (mb / t_parse) / (mb / t_copy), got == part * (size_t)reps);
    free(dst);
    free(junk);
    buf_release(&body);
    return 0;
}
