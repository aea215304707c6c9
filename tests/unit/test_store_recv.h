/*
 * test_store_recv.h — a tiny HTTP/1.1 receiver on 127.0.0.1 for webhook
 * tests (shared by test_store*.c and test_staging*.c).  It answers each
 * request with the next status of a script (the last one repeats) and
 * keeps every request (headers + body) for the test to inspect.
 */
#ifndef TEST_STORE_RECV_H
#define TEST_STORE_RECV_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_MAX 64

struct recv_srv {
    int fd;
    int port;
    int statuses[8];
    int nstatuses;
    pthread_mutex_t mu;
    int nreq;
    char *req_head[RECV_MAX];
    char *req_body[RECV_MAX];
    pthread_t th;
    int stop; /* atomic */
    const char *extra_header; /* e.g. "Location: …\r\n", or NULL */
    const void *body; /* served to every request when set */
    size_t body_len;
    int delay_ms;     /* wait this long before each answer (set before start) */
    int64_t req_ms[RECV_MAX];  /* wall ms when request i was read */
    int64_t done_ms[RECV_MAX]; /* wall ms just before its answer was sent */
};

static int64_t recv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *recv_main(void *arg)
{
    struct recv_srv *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        char *buf = malloc(1 << 20);
        size_t len = 0;
        char *end = NULL;
        long clen = 0;
        while (len < (1u << 20) - 1) {
            ssize_t n = read(c, buf + len, (1u << 20) - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = 0;
            if (!end && (end = strstr(buf, "\r\n\r\n"))) {
                char *cl = strcasestr(buf, "content-length:");
                clen = cl ? atol(cl + 15) : 0;
            }
            if (end && (size_t)(end + 4 - buf) + (size_t)clen <= len)
                break;
        }
        buf[len] = 0;
        pthread_mutex_lock(&r->mu);
        int idx = r->nreq;
        int status = r->statuses[idx < r->nstatuses ? idx : r->nstatuses - 1];
        bool kept = idx < RECV_MAX && end;
        if (kept) {
            r->req_head[idx] = strndup(buf, (size_t)(end - buf));
            r->req_body[idx] = strdup(end + 4);
            r->req_ms[idx] = recv_now_ms();
        }
        pthread_mutex_unlock(&r->mu);
        int delay = __atomic_load_n(&r->delay_ms, __ATOMIC_ACQUIRE);
        if (delay > 0)
            usleep((useconds_t)delay * 1000);
        if (kept) {
            pthread_mutex_lock(&r->mu);
            r->done_ms[idx] = recv_now_ms();
            r->nreq++; /* counted once its times are known */
            pthread_mutex_unlock(&r->mu);
        }
        char resp[160];
        const void *rb = r->body ? r->body : "ok";
        size_t rbl = r->body ? r->body_len : 2;
        char resp2[512];
        int n = snprintf(resp2, sizeof resp2, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
                         status, rbl, r->extra_header ? r->extra_header : "");
        (void)resp;
        if (send(c, resp2, (size_t)n, MSG_NOSIGNAL) < 0 || send(c, rb, rbl, MSG_NOSIGNAL) < 0) {
        }
        close(c);
        free(buf);
    }
    return NULL;
}

/* Start a receiver on addr (e.g. "127.0.0.2"); statuses: e.g. {500, 200}. */
static void recv_start_addr(struct recv_srv *r, const int *statuses, int n, const char *addr)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof a;
    memset(r, 0, sizeof *r);
    memcpy(r->statuses, statuses, (size_t)n * sizeof *statuses);
    r->nstatuses = n;
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, addr, &a.sin_addr);
    bind(r->fd, (struct sockaddr *)&a, sizeof a);
    listen(r->fd, 16);
    getsockname(r->fd, (struct sockaddr *)&a, &al);
    r->port = ntohs(a.sin_port);
    struct timeval tv = {0, 200000};
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_create(&r->th, NULL, recv_main, r);
}

static void recv_start(struct recv_srv *r, const int *statuses, int n)
{
    recv_start_addr(r, statuses, n, "127.0.0.1");
}

static int recv_count(struct recv_srv *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->nreq;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Wait until at least n requests arrived or timeout_ms passed. */
static int recv_wait(struct recv_srv *r, int n, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 20) {
        if (recv_count(r) >= n)
            break;
        usleep(20000);
    }
    return recv_count(r);
}

static void recv_stop(struct recv_srv *r)
{
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
    pthread_join(r->th, NULL);
    close(r->fd);
    for (int i = 0; i < r->nreq; i++) {
        free(r->req_head[i]);
        free(r->req_body[i]);
    }
}

#endif
