/*
 * planner.c — cut a job's input into tasks: runs of at most
 * max_task_items items, cut also where the shard changes (a task reads
 * one shard's files), one task per video, and finer for a small batch so
 * that every worker thread of the live pool gets some.  The tasks are written with
 * the job (store_job_create), so planning reads the batch but writes
 * nothing.
 */
#include "jobs/jobs_int.h"

#include <stdlib.h>
#include <string.h>

void jobs__plan_push(struct plan *p, int64_t id, const char *shard)
{
    struct store_task_range *cur = p->n > 0 ? &p->t[p->n - 1] : NULL;
    bool same_shard = (!shard && !p->shard) || (shard && p->shard && !strcmp(shard, p->shard));
    if (!cur || cur->n >= p->max_items || !same_shard) {
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 16;
            p->t = xrealloc(p->t, (size_t)p->cap * sizeof *p->t);
        }
        cur = &p->t[p->n++];
        cur->after_id = p->last_id;
        cur->n = 0;
        free(p->shard);
        p->shard = shard ? xstrdup(shard) : NULL;
    }
    cur->n++;
    cur->last_id = id;
    p->last_id = id;
}

void jobs__plan_finish(struct plan *p)
{
    if (p->n == 0) { /* an empty batch still gets one (empty) task */
        p->t = xrealloc(p->t, sizeof *p->t);
        p->t[0] = (struct store_task_range){0, 0, 0};
        p->n = 1;
    }
    free(p->shard);
    p->shard = NULL;
}

int jobs_plan_split(const struct staging_item *items, int n, int max_items, int *ends)
{
    struct plan p = {.max_items = max_items > 0 ? max_items : 500};
    for (int i = 0; i < n; i++)
        jobs__plan_push(&p, items[i].id, items[i].shard_id);
    jobs__plan_finish(&p);
    int k = 0, idx = 0;
    for (int t = 0; t < p.n; t++) {
        idx += p.t[t].n;
        ends[k++] = idx;
    }
    free(p.t);
    return k;
}

/* Smallest task the planner cuts a small batch into. */
#define PLAN_MIN_TASK_ITEMS 16

/* Read every item id of the input and plan the tasks.  An image job takes
 * only images and a video job only videos, one task per video.  For images,
 * a batch of fewer than 2 x workers x max_task_items images is cut into
 * about 2 tasks per worker thread (of at least PLAN_MIN_TASK_ITEMS): with
 * tasks of 500, a 400-image job would run on one worker — one ONNX
 * Runtime thread of a 2-core machine — while the other waits.  The worker
 * threads are the live pool's, over every process on the database
 * (pool.c): an API-only `serve --workers 0` plans for the `vbatch worker`
 * processes that will run the job. */
int jobs__plan_items(struct jobs *j, const char *ws, const struct jobdef *d, struct plan *p,
                      int64_t *total, struct err *err)
{
    int64_t after = 0, count = 0;
    int rc = 0;
    *total = 0;
    p->max_items = d->video ? 1 : j->o.max_task_items;
    staging_settle(j->sg, ws); /* the items of every shard answered so far, video jobs too */
    if (!d->video && staging_items_count(j->sg, ws, d->batch, d->part, &count, err) == 0 && count > 0) {
        int64_t want = 2 * jobs__pool_threads(j);
        int64_t per = MAX(PLAN_MIN_TASK_ITEMS, (count + want - 1) / want);
        p->max_items = (int)MIN((int64_t)j->o.max_task_items, per);
    }
    for (;;) {
        struct staging_item *it = NULL;
        int n = 0;
        /* Images only: metadata items (sidecars) are read by the worker. */
        rc = staging_items_page_media(j->sg, ws, d->batch, d->part, after, 5000, &it, &n, err);
        if (rc == ERR_NOTFOUND) {
            err_printf(err, "batch '%s' not found in workspace '%s'", d->batch, ws);
            return rc;
        }
        if (rc < 0) {
            return err_prefix(err, rc, "cannot read batch '%s'", d->batch);
        }
        for (int i = 0; i < n; i++) {
            bool is_video = it[i].content_type && !strcmp(it[i].content_type, "video");
            if (is_video != d->video) {
                err_printf(err, is_video ? "batch '%s' holds videos ('%.100s'): post a video job "
                                     "(\"type\": \"simple-video-processing-v1\") for them"
                                   : "batch '%s' holds images ('%.100s'): a video job takes videos only",
                          d->batch, it[i].name);
                staging_items_free(it, n);
                return ERR_INVALID;
            }
            jobs__plan_push(p, it[i].id, it[i].shard_id);
            after = it[i].id;
        }
        *total += n;
        staging_items_free(it, n);
        if (n < 5000)
            break;
    }
    jobs__plan_finish(p);
    return 0;
}

