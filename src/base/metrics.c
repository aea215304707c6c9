/*
 * metrics.c — the process-wide metrics registry behind GET /metrics.
 *
 * The catalogue of metric families is fixed (metric_defs below, one row
 * per enum metric_id of base.h): every family is rendered on each scrape,
 * an unlabelled one as 0 before its first bump, so a dashboard sees the
 * series from the first scrape on.  Modules bump a family by id with up
 * to three label values; they never see HTTP or the text format.
 *
 * Series storage, per family: an open-addressing table of
 * METRIC_SLOTS atomic pointers, written only by insertion (under one
 * global mutex) and never cleared.  A lookup hashes the label values
 * (FNV-1a), probes with acquire loads and compares hash, then values;
 * finding the series takes no lock.  A series is fully built before the
 * release store that publishes it, and is never freed (a process has a
 * bounded number of them: a family holds at most METRIC_MAX_SERIES, past
 * which new label sets are counted in one series whose labels are all
 * "other"; label values are cut to METRIC_LABEL_MAX bytes).
 *
 * Values: counters are _Atomic uint64_t; a histogram has one atomic count
 * per fixed bucket (non-cumulative; the renderer sums them), a count and
 * a sum of doubles kept as its bit pattern and added with a
 * compare-and-swap loop.  All updates are relaxed: a scrape may see a
 * count one ahead of its sum, which Prometheus tolerates.
 */
#include "base/base.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define METRIC_SLOTS 1024     /* per family; a power of two */
#define METRIC_MAX_SERIES 400 /* per family, the "other" series included */
#define METRIC_MAX_LABELS 3
#define METRIC_MAX_BUCKETS 16

struct metric_def {
    const char *name;
    const char *help;
    enum metric_type type;
    int nlabels;
    const char *labels[METRIC_MAX_LABELS];
    const double *bounds; /* histograms: upper bounds, ascending, +Inf implied */
    int nbounds;
};

static const double b_http[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double b_model[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10,   30};

static const struct metric_def metric_defs[METRIC__COUNT] = {
    [METRIC_HTTP_REQUESTS] = {"vbatch_http_requests_total",
                              "HTTP requests answered, by method, route template and status "
                              "(route \"unmatched\": no route; status \"aborted\": the client left first)",
                              METRIC_COUNTER, 3, {"method", "route", "status"}, NULL, 0},
    [METRIC_HTTP_DURATION] = {"vbatch_http_request_duration_seconds",
                              "Time from a request's headers to its completion, by method and route template",
                              METRIC_HISTOGRAM, 2, {"method", "route"}, b_http, (int)ARRAY_LEN(b_http)},
    [METRIC_INGEST_BYTES] = {"vbatch_ingest_bytes_total",
                             "Bytes received into staging, by kind (image upload, signed-URL PUT)",
                             METRIC_COUNTER, 1, {"kind"}, NULL, 0},
    [METRIC_INGEST_ITEMS] = {"vbatch_ingest_items_total",
                             "Items published into batches, by kind (image upload, shard file, reference)",
                             METRIC_COUNTER, 1, {"kind"}, NULL, 0},
    [METRIC_IMAGES_PROCESSED] = {"vbatch_images_processed_total",
                                 "Images (videos, in a video job) that job tasks processed, by job type",
                                 METRIC_COUNTER, 1, {"job_type"}, NULL, 0},
    [METRIC_IMAGES_FAILED] = {"vbatch_images_failed_total",
                              "Images a job task could not process, by job type", METRIC_COUNTER, 1,
                              {"job_type"}, NULL, 0},
    [METRIC_TASK_ERRORS] = {"vbatch_task_errors_total",
                            "Task attempts that ended in an error (retried or failing the job)",
                            METRIC_COUNTER, 0, {NULL}, NULL, 0},
    [METRIC_MODEL_INFER] = {"vbatch_model_inference_seconds",
                            "Time of one model call (pre-processing unless done ahead, inference, post-processing), by model id",
                            METRIC_HISTOGRAM, 1, {"model"}, b_model, (int)ARRAY_LEN(b_model)},
    [METRIC_WEBHOOK_DELIVERIES] = {"vbatch_webhook_deliveries_total",
                                   "Webhook POSTs answered with a 2xx", METRIC_COUNTER, 0, {NULL}, NULL, 0},
    [METRIC_WEBHOOK_FAILURES] = {"vbatch_webhook_failures_total",
                                 "Webhook POST attempts that failed (error status, no answer, refused URL)",
                                 METRIC_COUNTER, 0, {NULL}, NULL, 0},
    [METRIC_WORKER_HEARTBEATS] = {"vbatch_worker_heartbeats_total",
                                  "Task lease heartbeats written by this process's job workers",
                                  METRIC_COUNTER, 0, {NULL}, NULL, 0},
    [METRIC_WORKER_HEARTBEAT_TIME] = {"vbatch_worker_last_heartbeat_timestamp_seconds",
                                      "Unix time of the last task lease heartbeat of this process (0: none yet)",
                                      METRIC_GAUGE, 0, {NULL}, NULL, 0},
    [METRIC_DB_ERRORS] = {"vbatch_db_errors_total",
                          "Database calls that failed, by reason (busy, unavailable, full, error)",
                          METRIC_COUNTER, 1, {"reason"}, NULL, 0},
    [METRIC_BLOB_ERRORS] = {"vbatch_blob_errors_total",
                            "Blob store operations that failed, by operation (write, read, delete)",
                            METRIC_COUNTER, 1, {"op"}, NULL, 0},
    [METRIC_UPLOAD_POLLS] = {"vbatch_upload_poll_total",
                             "S3 arrival poller: rounds, list and HEAD requests sent, uploads found (round, list, head, arrival)",
                             METRIC_COUNTER, 1, {"what"}, NULL, 0},
};

struct metric_series {
    uint64_t hash;
    char *values[METRIC_MAX_LABELS]; /* owned; NULL past the family's nlabels */
    _Atomic uint64_t count;          /* counter value, or histogram observations */
    _Atomic uint64_t sum_bits;       /* histogram sum (a double's bits); gauge value */
    _Atomic uint64_t buckets[METRIC_MAX_BUCKETS + 1]; /* non-cumulative; last: +Inf */
};

struct metric_family {
    _Atomic(struct metric_series *) slots[METRIC_SLOTS];
    _Atomic int n; /* series published */
};

static struct metric_family families[METRIC__COUNT];
static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t labels_hash(const char *const v[METRIC_MAX_LABELS], int n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        for (const char *p = v[i]; *p; p++) {
            h ^= (unsigned char)*p;
            h *= 1099511628211ull;
        }
        h ^= 0xff; /* separator: ("ab","c") != ("a","bc") */
        h *= 1099511628211ull;
    }
    return h;
}

static bool labels_equal(const struct metric_series *s, const char *const v[METRIC_MAX_LABELS], int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s->values[i], v[i]) != 0)
            return false;
    return true;
}

/* Probe for the label set; NULL when absent.  *free_slot gets the first
 * empty slot seen (or -1 when the table is full). */
static struct metric_series *family_find(struct metric_family *f, uint64_t h,
                                         const char *const v[METRIC_MAX_LABELS], int n, int *free_slot)
{
    for (unsigned i = 0; i < METRIC_SLOTS; i++) {
        unsigned k = (unsigned)(h + i) & (METRIC_SLOTS - 1);
        struct metric_series *s = atomic_load_explicit(&f->slots[k], memory_order_acquire);
        if (!s) {
            *free_slot = (int)k;
            return NULL;
        }
        if (s->hash == h && labels_equal(s, v, n))
            return s;
    }
    *free_slot = -1;
    return NULL;
}

struct metric_series *metric_series_get(enum metric_id id, const char *l0, const char *l1, const char *l2)
{
    const struct metric_def *d;
    struct metric_family *f;
    struct metric_series *s;
    char cut[METRIC_MAX_LABELS][METRIC_LABEL_MAX + 1];
    const char *v[METRIC_MAX_LABELS] = {l0, l1, l2};
    static const char *const other[METRIC_MAX_LABELS] = {"other", "other", "other"};
    int slot;

    if ((unsigned)id >= METRIC__COUNT)
        return NULL;
    d = &metric_defs[id];
    f = &families[id];
    for (int i = 0; i < d->nlabels; i++) {
        if (!v[i])
            v[i] = "";
        if (strlen(v[i]) > METRIC_LABEL_MAX) {
            memcpy(cut[i], v[i], METRIC_LABEL_MAX);
            cut[i][METRIC_LABEL_MAX] = '\0';
            v[i] = cut[i];
        }
    }
    uint64_t h = labels_hash(v, d->nlabels);
    s = family_find(f, h, v, d->nlabels, &slot);
    if (s)
        return s;
    pthread_mutex_lock(&metrics_mu);
    s = family_find(f, h, v, d->nlabels, &slot); /* another thread may have added it */
    if (!s && atomic_load_explicit(&f->n, memory_order_relaxed) >= METRIC_MAX_SERIES - 1 &&
        d->nlabels > 0) {
        /* cardinality cap: one shared series for every further label set */
        h = labels_hash(other, d->nlabels);
        for (int i = 0; i < d->nlabels; i++)
            v[i] = other[i];
        s = family_find(f, h, v, d->nlabels, &slot);
    }
    if (!s && slot >= 0) {
        s = xcalloc(1, sizeof *s);
        s->hash = h;
        for (int i = 0; i < d->nlabels; i++)
            s->values[i] = xstrdup(v[i]);
        atomic_store_explicit(&f->slots[slot], s, memory_order_release);
        atomic_fetch_add_explicit(&f->n, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&metrics_mu);
    return s;
}

void metric_series_add(struct metric_series *s, uint64_t n)
{
    if (s)
        atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
}

static void add_double(_Atomic uint64_t *bits, double v, bool replace)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed), nw;
    do {
        double cur;
        memcpy(&cur, &old, sizeof cur);
        double next = replace ? v : cur + v;
        memcpy(&nw, &next, sizeof nw);
    } while (!atomic_compare_exchange_weak_explicit(bits, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
}

void metric_series_observe(enum metric_id id, struct metric_series *s, double v)
{
    const struct metric_def *d;
    int b = 0;

    if (!s || (unsigned)id >= METRIC__COUNT || !isfinite(v))
        return;
    d = &metric_defs[id];
    while (b < d->nbounds && v > d->bounds[b])
        b++;
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    add_double(&s->sum_bits, v, false);
}

void metric_series_set(struct metric_series *s, double v)
{
    if (s && isfinite(v))
        add_double(&s->sum_bits, v, true);
}

void metric_count(enum metric_id id, uint64_t n, const char *l0, const char *l1, const char *l2)
{
    metric_series_add(metric_series_get(id, l0, l1, l2), n);
}

void metric_observe(enum metric_id id, double v, const char *l0, const char *l1, const char *l2)
{
    metric_series_observe(id, metric_series_get(id, l0, l1, l2), v);
}

void metric_set(enum metric_id id, double v)
{
    metric_series_set(metric_series_get(id, NULL, NULL, NULL), v);
}

/* ---- text exposition format (Prometheus 0.0.4) ------------------------------ */

void metrics_escape_label(struct buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            buf_puts(b, "\\\\");
        else if (*v == '"')
            buf_puts(b, "\\\"");
        else if (*v == '\n')
            buf_puts(b, "\\n");
        else
            buf_append(b, v, 1);
    }
}

/* "{a=\"x\",b=\"y\"" without the closing brace (the caller may add le=). */
static void put_labels(struct buf *b, const struct metric_def *d, const struct metric_series *s)
{
    buf_puts(b, "{");
    for (int i = 0; i < d->nlabels; i++) {
        buf_printf(b, "%s%s=\"", i ? "," : "", d->labels[i]);
        metrics_escape_label(b, s->values[i]);
        buf_puts(b, "\"");
    }
}

void metrics_put_double(struct buf *b, double v)
{
    if (isinf(v))
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        buf_puts(b, "NaN");
    else {
        /* the shortest of %.15g and %.17g that reads back as v */
        char t[40];
        snprintf(t, sizeof t, "%.15g", v);
        if (strtod(t, NULL) != v)
            snprintf(t, sizeof t, "%.17g", v);
        buf_puts(b, t);
    }
}

static void render_series(struct buf *b, const struct metric_def *d, const struct metric_series *s)
{
    double sum;
    uint64_t bits = atomic_load_explicit(&s->sum_bits, memory_order_relaxed);
    memcpy(&sum, &bits, sizeof sum);

    if (d->type == METRIC_COUNTER || d->type == METRIC_GAUGE) {
        buf_puts(b, d->name);
        if (d->nlabels) {
            put_labels(b, d, s);
            buf_puts(b, "}");
        }
        if (d->type == METRIC_COUNTER)
            buf_printf(b, " %llu\n",
                       (unsigned long long)atomic_load_explicit(&s->count, memory_order_relaxed));
        else {
            buf_puts(b, " ");
            metrics_put_double(b, sum);
            buf_puts(b, "\n");
        }
        return;
    }
    uint64_t cum = 0;
    for (int i = 0; i <= d->nbounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        buf_printf(b, "%s_bucket", d->name);
        put_labels(b, d, s);
        buf_printf(b, "%sle=\"", d->nlabels ? "," : "");
        metrics_put_double(b, i < d->nbounds ? d->bounds[i] : INFINITY);
        buf_printf(b, "\"} %llu\n", (unsigned long long)cum);
    }
    /* _count is the +Inf bucket, so the two always agree */
    buf_printf(b, "%s_sum", d->name);
    if (d->nlabels) {
        put_labels(b, d, s);
        buf_puts(b, "}");
    }
    buf_puts(b, " ");
    metrics_put_double(b, sum);
    buf_printf(b, "\n%s_count", d->name);
    if (d->nlabels) {
        put_labels(b, d, s);
        buf_puts(b, "}");
    }
    buf_printf(b, " %llu\n", (unsigned long long)cum);
}

void metrics_render(struct buf *b)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};

    for (int id = 0; id < METRIC__COUNT; id++) {
        const struct metric_def *d = &metric_defs[id];
        struct metric_family *f = &families[id];
        if (d->nlabels == 0)
            (void)metric_series_get((enum metric_id)id, NULL, NULL, NULL); /* exists from the start */
        metrics_put_help(b, d->name, types[d->type], d->help);
        for (unsigned k = 0; k < METRIC_SLOTS; k++) {
            struct metric_series *s = atomic_load_explicit(&f->slots[k], memory_order_acquire);
            if (s)
                render_series(b, d, s);
        }
    }
}

void metrics_put_help(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            buf_puts(b, "\\\\");
        else if (*p == '\n')
            buf_puts(b, "\\n");
        else
            buf_append(b, p, 1);
    }
    buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* ---- process metrics (the names of Prometheus's client libraries) ------------ */

static int64_t process_start_s;

void metrics_process_init(void)
{
    if (!process_start_s)
        process_start_s = time_now_ms() / 1000;
}

void metrics_render_process(struct buf *b)
{
    char *stat = NULL;
    size_t len = 0;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    int nfd = 0;
    struct rlimit rl;

    /* /proc/self/stat: fields after the ")" closing the command name;
     * utime and stime are the 14th and 15th fields, vsize and rss the
     * 23rd and 24th */
    if (file_read_all("/proc/self/stat", 4096, &stat, &len) == 0) {
        const char *p = strrchr(stat, ')');
        unsigned long long ut = 0, stime = 0, vsize = 0;
        long long rss = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                               "%*d %*u %llu %lld", &ut, &stime, &vsize, &rss) == 4 && tick > 0) {
            metrics_put_help(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds");
            buf_printf(b, "process_cpu_seconds_total %.2f\n", (double)(ut + stime) / (double)tick);
            metrics_put_help(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes");
            buf_printf(b, "process_resident_memory_bytes %lld\n", rss * (long long)(page > 0 ? page : 4096));
            metrics_put_help(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes");
            buf_printf(b, "process_virtual_memory_bytes %llu\n", vsize);
        }
        free(stat);
    }
    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir)))
            nfd += de->d_name[0] != '.';
        closedir(dir);
        metrics_put_help(b, "process_open_fds", "gauge", "Number of open file descriptors");
        buf_printf(b, "process_open_fds %d\n", nfd - 1); /* not the one opendir holds */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        metrics_put_help(b, "process_max_fds", "gauge", "Maximum number of open file descriptors");
        buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    if (process_start_s) {
        metrics_put_help(b, "process_start_time_seconds", "gauge",
                         "Start time of the process since unix epoch in seconds");
        buf_printf(b, "process_start_time_seconds %lld\n", (long long)process_start_s);
    }
}
