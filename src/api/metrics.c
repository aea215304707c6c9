/*
 * metrics.c — GET /metrics: the Prometheus text exposition format (0.0.4).
 *
 * Three sources, in this order: the registry of base/metrics.c (counters
 * and histograms that every module bumps as work happens), gauges read
 * from the database at scrape time through store_jobs_state_counts (tasks
 * and jobs by state, over every workspace of the database, so every
 * process sharing it reports the same values), and the process_* metrics
 * from /proc.  No label carries an id or a key.
 *
 * No api_key: a scraper is not a workspace.  With --metrics-token the
 * request must carry "Authorization: Bearer <token>" (compared in constant
 * time); otherwise 401 with a JSON error and WWW-Authenticate.
 */
#include "api/api.h"

#include "base/base.h"
#include "store/store_jobs.h"

#include <string.h>
#include <strings.h>

#define METRICS_MAX_BYTES (8u << 20) /* the registry caps series; this caps the text */

static bool metrics_token_ok(struct http_req *req, const char *want)
{
    const char *h = http_req_header(req, "Authorization");
    size_t n = strlen(want);

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return strlen(h) == n && ct_equal(h, want, n);
}

static void put_gauge(struct buf *b, const char *name, const char *label, const char *value, int64_t n)
{
    buf_printf(b, "%s{%s=\"", name, label);
    metrics_escape_label(b, value);
    buf_printf(b, "\"} %lld\n", (long long)n);
}

static int metrics_get(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct store_state_counts sc;
    struct buf b;
    size_t len;

    if (ctx->metrics_token && *ctx->metrics_token && !metrics_token_ok(req, ctx->metrics_token)) {
        http_reply_header(req, "WWW-Authenticate", "Bearer realm=\"vbatch metrics\"");
        return http_reply_error(req, 401, "GET /metrics needs the header 'Authorization: Bearer <token>' "
                                          "with the server's metrics token");
    }
    buf_init(&b, METRICS_MAX_BYTES);
    metrics_render(&b);
    if (ctx->st && store_jobs_state_counts(ctx->st, &sc, NULL) == 0) {
        metrics_put_help(&b, "vbatch_tasks", "gauge", "Job tasks in the database, by state");
        put_gauge(&b, "vbatch_tasks", "state", "waiting", sc.tasks_waiting);
        put_gauge(&b, "vbatch_tasks", "state", "pending", sc.tasks_pending);
        put_gauge(&b, "vbatch_tasks", "state", "running", sc.tasks_running);
        put_gauge(&b, "vbatch_tasks", "state", "done", sc.tasks_done);
        put_gauge(&b, "vbatch_tasks", "state", "aborted", sc.tasks_aborted);
        metrics_put_help(&b, "vbatch_jobs", "gauge", "Batch jobs in the database, by state");
        put_gauge(&b, "vbatch_jobs", "state", "running", sc.jobs_running);
        put_gauge(&b, "vbatch_jobs", "state", "succeeded", sc.jobs_succeeded);
        put_gauge(&b, "vbatch_jobs", "state", "failed", sc.jobs_failed);
        put_gauge(&b, "vbatch_jobs", "state", "aborted", sc.jobs_aborted);
    }
    /* the database gauges are left out when it cannot be read: the
     * failure shows in vbatch_db_errors_total, and a scrape still answers */
    metrics_render_process(&b);
    char *text = buf_detach(&b, &len);
    int rc = http_reply_data(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return rc;
}

int api_metrics_register(struct http_router *r, struct api_ctx *ctx)
{
    return http_router_get(r, "/metrics", metrics_get, ctx);
}
