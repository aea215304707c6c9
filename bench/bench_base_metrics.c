/*
 * bench_base_metrics.c — what the metrics cost a request: the HTTP
 * server's two bumps per request (a counter by method, route template and
 * status, and a latency histogram by method and route), timed in a loop
 * over 40 route templates, on 1 and on 4 threads at once (the same
 * series: the contended case).
 *
 * One line per figure: "bench metrics <name> key=value ...".
 */
#include "base/base.h"

#include <pthread.h>
#include <stdio.h>

#define ITERS 2000000
#define ROUTES 40

static char routes[ROUTES][96];

static void *bump_loop(void *arg)
{
    (void)arg;
    for (int i = 0; i < ITERS; i++) {
        const char *r = routes[i % ROUTES];
        metric_count(METRIC_HTTP_REQUESTS, 1, "GET", r, (i & 15) ? "200" : "404");
        metric_observe(METRIC_HTTP_DURATION, 0.0004, "GET", r, NULL);
    }
    return NULL;
}

int main(void)
{
    for (int i = 0; i < ROUTES; i++)
        snprintf(routes[i], sizeof routes[i], "/data-staging/v1/external/{workspace}/batches/{batch_id}/r%d", i);
    int64_t t0 = time_mono_ns();
    bump_loop(NULL);
    double ns1 = (double)(time_mono_ns() - t0) / ITERS;
    pthread_t th[4];
    t0 = time_mono_ns();
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, bump_loop, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    double ns4 = (double)(time_mono_ns() - t0) / ITERS; /* wall time per iteration of each thread */
    struct buf b = BUF_INIT;
    t0 = time_mono_ns();
    metrics_render(&b);
    double render_us = (double)(time_mono_ns() - t0) / 1e3;
    printf("bench metrics request_bumps ns_per_request_1thread=%.0f ns_per_request_4threads=%.0f "
           "render_us=%.0f render_bytes=%zu\n", ns1, ns4, render_us, b.len);
    buf_release(&b);
    return 0;
}
