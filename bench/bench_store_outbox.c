/*
 * bench_store_outbox — webhook outbox delivery figures, in-process:
 *
 *  1. deliveries/s: N webhooks (default 2000, argv[1] or BENCH_N) queued to
 *     one local keep-alive receiver that answers 200 at once, then the
 *     sender started; time until every row is delivered.  Baseline: the
 *     same N POSTs made back to back by one curl handle (one keep-alive
 *     connection), i.e. what the receiver and loopback allow one client.
 *  2. a healthy receiver's latency (enqueue to arrival) while two
 *     deliveries to a receiver that accepts and never answers are in
 *     flight (timeout 10 s, the default).  Baseline: the same latency with
 *     no hanging neighbour.
 *  3. deliveries/s with 8 receivers (N spread over them).
 *
 * One line per figure: bench=<name> <value> baseline=<name> <value> ratio=<x>.
 * The data folder is a temp folder under $BENCH_DIR or /tmp; the database
 * is SQLite in it, or with BENCH_DB=postgres://... a fresh schema of that
 * PostgreSQL database per figure.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "store/db.h"
#include "store/store.h"

static double now_s(void)
{
    return (double)time_mono_ns() / 1e9;
}

/* ---- a keep-alive receiver: one thread per connection ------------------------------- */

struct rx {
    int fd, port;
    bool hang;            /* read requests, never answer */
    int nreq;             /* atomic: requests read */
    int64_t first_ns;     /* atomic: arrival of the first request */
    int stop;             /* atomic */
    pthread_t th;
};

struct rx_conn {
    struct rx *r;
    int c;
};

static void *rx_conn_main(void *arg)
{
    struct rx_conn *cn = arg;
    struct rx *r = cn->r;
    int c = cn->c;
    free(cn);
    char buf[65536];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(c, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
        for (;;) {
            char *end = strstr(buf, "\r\n\r\n");
            if (!end)
                break;
            char *cl = strcasestr(buf, "content-length:");
            size_t clen = cl && cl < end ? (size_t)atol(cl + 15) : 0;
            size_t total = (size_t)(end + 4 - buf) + clen;
            if (total > len)
                break;
            int64_t zero = 0;
            __atomic_compare_exchange_n(&r->first_ns, &zero, time_mono_ns(), false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST);
            __atomic_add_fetch(&r->nreq, 1, __ATOMIC_SEQ_CST);
            if (!r->hang) {
                static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                if (send(c, ok, sizeof ok - 1, MSG_NOSIGNAL) < 0)
                    goto done;
            }
            memmove(buf, buf + total, len - total);
            len -= total;
            buf[len] = 0;
        }
        if (len >= sizeof buf - 1)
            break;
    }
done:
    close(c);
    return NULL;
}

static void *rx_main(void *arg)
{
    struct rx *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval none = {0, 0}; /* accepted sockets inherit the listener's timeout */
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
        struct rx_conn *cn = malloc(sizeof *cn);
        cn->r = r;
        cn->c = c;
        pthread_t t;
        pthread_create(&t, NULL, rx_conn_main, cn);
        pthread_detach(t);
    }
    return NULL;
}

static void rx_start(struct rx *r, bool hang)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof a;
    memset(r, 0, sizeof *r);
    r->hang = hang;
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(r->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(r->fd, 128) < 0)
        abort();
    getsockname(r->fd, (struct sockaddr *)&a, &al);
    r->port = ntohs(a.sin_port);
    struct timeval tv = {0, 100000};
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_create(&r->th, NULL, rx_main, r);
}

static int rx_count(struct rx *r)
{
    return __atomic_load_n(&r->nreq, __ATOMIC_SEQ_CST);
}

static void rx_stop(struct rx *r)
{
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
    pthread_join(r->th, NULL);
    close(r->fd);
}

/* ---- helpers ------------------------------------------------------------------------- */

/* BENCH_DB=postgres://... runs the figures on PostgreSQL: each store gets
 * a fresh schema there (dropped at exit), as each gets a fresh folder. */
static char *schemas[16];
static int nschemas;

static void drop_schemas(void)
{
    struct db *d = NULL;
    if (db_open(getenv("BENCH_DB"), 1, &d, NULL) < 0)
        return;
    struct db_conn *c = db_acquire(d, NULL);
    for (int i = 0; c && i < nschemas; i++) {
        char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE", schemas[i]);
        (void)db_exec(c, sql, NULL);
        free(sql);
        free(schemas[i]);
    }
    db_release(d, c);
    db_close(d);
}

static char *fresh_pg_target(const char *uri)
{
    struct db *d = NULL;
    struct err e = ERR_INIT;
    char *name = xasprintf("bench_outbox_%d_%d", (int)getpid(), nschemas);
    char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", name, name);
    struct db_conn *c = NULL;
    if (nschemas >= 16 || db_open(uri, 1, &d, &e) < 0 || !(c = db_acquire(d, &e)) || db_exec(c, sql, &e) < 0) {
        fprintf(stderr, "BENCH_DB: %s\n", e.msg);
        exit(1);
    }
    db_release(d, c);
    db_close(d);
    free(sql);
    if (nschemas == 0)
        atexit(drop_schemas);
    schemas[nschemas++] = name;
    return xasprintf("%s%coptions=-csearch_path%%3D%s", uri, strchr(uri, '?') ? '&' : '?', name);
}

static struct store *open_store(void)
{
    const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
    const char *pg = getenv("BENCH_DB");
    char *d = xasprintf("%s/vbatch-bench-outbox-XXXXXX", base);
    char *target = pg && *pg ? fresh_pg_target(pg) : NULL;
    struct err e = ERR_INIT;
    if (!mkdtemp(d))
        abort();
    struct store *st = NULL;
    if (store_open_ex(d, target, &st, &e) < 0 || store_net_allow_set(st, "127.0.0.1") < 0) {
        fprintf(stderr, "store_open_ex: %s\n", e.msg);
        abort();
    }
    free(target);
    free(d);
    return st;
}

static void enqueue(struct store *st, const char *url, const char *ws, int i)
{
    char body[128], key[32];
    snprintf(body, sizeof body, "{\"type\":\"bench\",\"event_id\":\"ev-%d\",\"job_id\":\"j%d\"}", i, i);
    snprintf(key, sizeof key, "job/j%d", i);
    if (store_outbox_enqueue(st, url, ws, key, body, true) < 0)
        abort();
}

static int64_t delivered(struct store *st)
{
    int64_t p, d, f;
    if (store_outbox_counts(st, &p, &d, &f) < 0)
        abort();
    return d;
}

/* Queue n rows spread over nr receivers, start the sender, time delivery. */
static double deliveries_per_s(struct rx *rs, int nr, int n)
{
    struct store *st = open_store();
    for (int i = 0; i < n; i++) {
        char *url = xasprintf("http://127.0.0.1:%d/hook", rs[i % nr].port);
        enqueue(st, url, "bench", i);
        free(url);
    }
    double t0 = now_s();
    if (store_outbox_start(st, NULL) < 0)
        abort();
    while (delivered(st) < n)
        usleep(2000);
    double dt = now_s() - t0;
    store_close(st);
    return n / dt;
}

static size_t sink(char *p, size_t sz, size_t nm, void *ud)
{
    (void)p;
    (void)ud;
    return sz * nm;
}

static double curl_baseline(int port, int n)
{
    CURL *c = curl_easy_init();
    char *url = xasprintf("http://127.0.0.1:%d/hook", port);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    const char *body = "{\"type\":\"bench\",\"event_id\":\"ev-0\",\"job_id\":\"j0\",\"delivery_attempt\":1}";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        if (curl_easy_perform(c) != CURLE_OK)
            abort();
    double dt = now_s() - t0;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(url);
    return n / dt;
}

/* Latency from enqueue to arrival at a healthy receiver; with `hanging`
 * deliveries to a silent receiver in flight first (0 = none). */
static double healthy_latency(int hanging)
{
    struct rx hang, ok;
    rx_start(&hang, true);
    rx_start(&ok, false);
    struct store *st = open_store();
    if (store_outbox_start(st, NULL) < 0)
        abort();
    char *hurl = xasprintf("http://127.0.0.1:%d/hook", hang.port);
    char *ourl = xasprintf("http://127.0.0.1:%d/hook", ok.port);
    for (int i = 0; i < hanging; i++)
        enqueue(st, hurl, "slow", 1000 + i);
    while (hanging && rx_count(&hang) < 1)
        usleep(1000);
    double t0 = now_s();
    enqueue(st, ourl, "fast", 1);
    while (rx_count(&ok) < 1)
        usleep(500);
    double lat = (double)__atomic_load_n(&ok.first_ns, __ATOMIC_SEQ_CST) / 1e9 - t0;
    store_close(st);
    rx_stop(&ok);
    rx_stop(&hang);
    free(hurl);
    free(ourl);
    return lat;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : getenv("BENCH_N") ? atoi(getenv("BENCH_N")) : 2000;
    if (n <= 0)
        n = 2000;
    log_set_level(LOG_WARN);
    curl_global_init(CURL_GLOBAL_ALL);

    struct rx one;
    rx_start(&one, false);
    double base = curl_baseline(one.port, n);
    double got = deliveries_per_s(&one, 1, n);
    printf("bench=outbox_deliveries_per_s_1_receiver %.0f baseline=curl_sequential_keepalive_per_s %.0f ratio=%.2f\n",
           got, base, got / base);
    rx_stop(&one);

    struct rx many[8];
    for (int i = 0; i < 8; i++)
        rx_start(&many[i], false);
    double got8 = deliveries_per_s(many, 8, n);
    printf("bench=outbox_deliveries_per_s_8_receivers %.0f baseline=curl_sequential_keepalive_per_s %.0f ratio=%.2f\n",
           got8, base, got8 / base);
    for (int i = 0; i < 8; i++)
        rx_stop(&many[i]);

    double l0 = healthy_latency(0);
    double l2 = healthy_latency(2);
    printf("bench=healthy_latency_s_with_2_hanging %.3f baseline=healthy_latency_s_alone %.3f ratio=%.1f\n", l2, l0,
           l2 / l0);
    curl_global_cleanup();
    return 0;
}
