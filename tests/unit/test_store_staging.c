/* Unit tests of the Data Staging tables' owner files (store/batches.c,
 * store/shards.c through store/store_staging.h): each state change is one
 * transaction with its invariants (mode mixing refused, counts and content
 * type kept with the items, a shard finished once, an ingest id answered
 * once, webhooks queued with the change, expiry removing everything). */
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "store/store_staging.h"
#include "t.h"
#include "t_pg.h"

#define DAY (24LL * 3600 * 1000)

static struct store *open_tmp(void)
{
    struct store *st = NULL;
    struct err e = ERR_INIT;
    char *d = strdup("/tmp/vbatch-sstaging-XXXXXX");
    if (!mkdtemp(d))
        abort();
    if (t_open(d, &st) < 0)
        T_FAIL("store_open failed");
    free(d);
    if (store_staging_migrate(st, &e) < 0 || store_staging_migrate(st, &e) < 0)
        T_FAIL("store_staging_migrate: %s", e.msg);
    return st;
}

static struct store_item_new item(const char *part, const char *name, const char *ct, const char *key)
{
    return (struct store_item_new){part, name, NULL, ct, "image/png", key, 10, false, 0};
}

BOTH(batch_modes_counts_and_content_type)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct store_batch b, b2;
    ASSERT_EQ(store_batch_find(st, "ws", "Bad!", &b, &e), ERR_INVALID);
    ASSERT_EQ(store_batch_find(st, "ws", "b1", &b, &e), ERR_NOTFOUND);
    ASSERT_STR_EQ(e.msg, "batch 'b1' not found");
    ASSERT_OK(store_batch_get_or_create(st, "ws", "b1", "My batch", "single", DAY, &b, &e));
    ASSERT_STR_EQ(b.type, "simple-batch");
    /* the same batch again; another mode is refused */
    ASSERT_OK(store_batch_get_or_create(st, "ws", "b1", NULL, "single", DAY, &b2, &e));
    ASSERT_EQ(b2.bid, b.bid);
    ASSERT_EQ(store_batch_get_or_create(st, "ws", "b1", NULL, "bulk", DAY, &b2, &e), ERR_INVALID);
    ASSERT(strstr(e.msg, "cannot be combined") != NULL);
    /* a bad display name refuses only a new batch */
    ASSERT_EQ(store_batch_get_or_create(st, "ws", "b2", "\xff", "single", DAY, &b2, &e), ERR_INVALID);
    ASSERT_EQ(store_batch_find(st, "ws", "b2", &b2, &e), ERR_NOTFOUND);

    struct store_item_new a = item(NULL, "a.png", "image", "b/1/i/a");
    struct store_item_new m = item(STORE_METADATA_PART, "a.png.json", "metadata", "b/1/i/m");
    struct store_item_new v = item(NULL, "v.mp4", "video", "b/1/v/v");
    ASSERT_OK(store_item_add(st, "ws", "b1", b.bid, true, &m, &e)); /* a sidecar first: type stays */
    ASSERT_OK(store_item_add(st, "ws", "b1", b.bid, false, &a, &e));
    struct store_batch_info info;
    ASSERT_OK(store_batch_info_get(st, "ws", "b1", &info, &e));
    ASSERT_STR_EQ(info.content_type, "images");
    ASSERT_STR_EQ(info.display_name, "My batch");
    store_batch_info_release(&info);
    ASSERT_OK(store_item_add(st, "ws", "b1", 0, false, &v, &e));
    ASSERT_OK(store_batch_info_get(st, "ws", "b1", &info, &e));
    ASSERT_STR_EQ(info.content_type, "mixed");
    store_batch_info_release(&info);
    /* a batch replaced under an upload refuses its item */
    ASSERT_EQ(store_item_add(st, "ws", "b1", b.bid + 100, false, &a, &e), ERR_NOTFOUND);

    int64_t n = -1;
    ASSERT_OK(store_batch_count(st, "ws", "b1", NULL, &n, &e));
    ASSERT_EQ(n, 3);
    ASSERT_OK(store_batch_count(st, "ws", "b1", STORE_METADATA_PART, &n, &e));
    ASSERT_EQ(n, 1);
    ASSERT_OK(store_batch_count(st, "ws", "b1", "nopart", &n, &e));
    ASSERT_EQ(n, 0);
    struct store_part *parts = NULL;
    int np = 0;
    ASSERT_OK(store_batch_parts(st, "ws", "b1", &parts, &np, &e));
    ASSERT_EQ(np, 1);
    ASSERT_STR_EQ(parts[0].name, STORE_METADATA_PART);
    store_parts_free(parts, np);

    /* pages: media only leaves the sidecar out; keyset after the last id */
    struct store_item *items = NULL;
    int ni = 0;
    ASSERT_OK(store_items_page(st, "ws", "b1", NULL, true, 0, 10, &items, &ni, &e));
    ASSERT_EQ(ni, 2);
    ASSERT_STR_EQ(items[0].name, "a.png");
    int64_t after = items[0].id;
    store_items_free(items, ni);
    ASSERT_OK(store_items_list(st, "ws", "b1", NULL, after, 10, &items, &ni, &e));
    ASSERT_EQ(ni, 1);
    ASSERT_STR_EQ(items[0].name, "v.mp4");
    store_items_free(items, ni);
    struct store_item it;
    ASSERT_OK(store_item_find(st, "ws", "b1", STORE_METADATA_PART, "a.png.json", &it, &e));
    ASSERT_STR_EQ(it.blob_key, "b/1/i/m");
    store_item_release(&it);
    char *mime = NULL;
    ASSERT_OK(store_item_mime(st, "b/1/v/v", &mime, &e));
    ASSERT_STR_EQ(mime, "image/png");
    free(mime);
    ASSERT_OK(store_item_mime(st, "b/none", &mime, &e));
    ASSERT(mime == NULL);

    /* output batches: created once */
    ASSERT_OK(store_batch_create_output(st, "ws", "out", NULL, DAY, &e));
    ASSERT_EQ(store_batch_create_output(st, "ws", "out", NULL, DAY, &e), ERR_EXISTS);
    ASSERT_EQ(store_batch_get_or_create(st, "ws", "out", NULL, "single", DAY, &b2, &e), ERR_INVALID);
    store_close(st);
}

BOTH(tar_upload_shard_finished_once_with_webhook)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    char key[96];
    ASSERT_OK(store_upload_tar_create(st, "ws", "bulk1", NULL, "shard-1", 1000, DAY, key, &e));
    ASSERT(strstr(key, "/s/shard-1.tar") != NULL);
    struct store_upload u;
    ASSERT_OK(store_upload_get(st, key, &u, &e));
    ASSERT(u.pending);
    ASSERT_STR_EQ(u.kind, "tar");
    ASSERT_EQ(u.size_limit, 1000);
    struct store_shard_work w;
    ASSERT_EQ(store_shard_claim(st, false, "uploaded", "me", 60000, &w, &e), ERR_NOTFOUND);
    ASSERT_OK(store_upload_done(st, key, &u, NULL, 100, &e));
    ASSERT_EQ(store_upload_done(st, key, &u, NULL, 100, &e), ERR_EXISTS); /* used once */
    store_upload_release(&u);

    ASSERT_OK(store_shard_claim(st, false, "uploaded", "me", 60000, &w, &e));
    ASSERT_STR_EQ(w.shard_id, "shard-1");
    ASSERT_STR_EQ(w.batch, "bulk1");
    /* a shard kept whole: its items are ranges of the shard's blob */
    struct store_item_new items[2] = {item(NULL, "x.png", "image", key),
                                      item(STORE_METADATA_PART, "x.png.json", "metadata", key)};
    items[0].ranged = items[1].ranged = true;
    items[0].offset = 512;
    items[1].offset = 1536;
    items[1].mime = "application/json";
    struct store_shard_outcome o = {.bid = w.bid, .shard_id = w.shard_id, .from_state = "uploaded", .owner = "me",
                                    .state = "done",
                                    .status_name = "ingested", .status_type = "success",
                                    .meta = "{\"ingestedFiles\":2}", .objects = 2, .items = items, .nitems = 2,
                                    .ws = "ws", .webhook_url = "http://127.0.0.1:9/hook",
                                    .webhook = "{\"event_id\":\"e1\"}"};
    ASSERT_OK(store_shard_finish(st, &o, &e));
    ASSERT_EQ(store_shard_finish(st, &o, &e), ERR_EXISTS); /* a second worker: nothing twice */
    store_shard_work_release(&w);
    int64_t n = 0, pending = 0, delivered = 0, failed = 0;
    ASSERT_OK(store_batch_count(st, "ws", "bulk1", NULL, &n, &e));
    ASSERT_EQ(n, 2);
    ASSERT_OK(store_batch_count(st, "ws", "bulk1", STORE_METADATA_PART, &n, &e));
    ASSERT_EQ(n, 1);
    struct store_item *its = NULL;
    int ni = 0;
    ASSERT_OK(store_items_page(st, "ws", "bulk1", NULL, false, 0, 10, &its, &ni, &e));
    ASSERT_EQ(ni, 2);
    ASSERT_STR_EQ(its[0].blob_key, key);
    ASSERT_EQ(its[0].offset, 512);
    ASSERT_EQ(its[1].offset, 1536);
    ASSERT_EQ(its[1].size, 10);
    store_items_free(its, ni);
    ASSERT_OK(store_items_list(st, "ws", "bulk1", NULL, 0, 10, &its, &ni, &e));
    ASSERT_EQ(ni, 2);
    ASSERT_EQ(its[1].offset, 1536);
    ASSERT_EQ(its[1].size, 10);
    store_items_free(its, ni);
    char *mime = NULL;
    ASSERT_OK(store_item_mime(st, key, &mime, &e)); /* no item is the whole archive */
    ASSERT(mime == NULL);
    ASSERT_OK(store_outbox_counts(st, &pending, &delivered, &failed));
    ASSERT_EQ(pending, 1);
    struct store_shard_info *rows = NULL;
    int nr = 0;
    ASSERT_OK(store_shards_page(st, "ws", "bulk1", 0, 10, &rows, &nr, &e));
    ASSERT_EQ(nr, 1);
    ASSERT_STR_EQ(rows[0].status_name, "ingested");
    ASSERT_EQ(rows[0].objects, 2);
    store_shard_infos_free(rows, nr);

    /* expiry removes the batch with everything in it */
    int64_t bid = 0;
    ASSERT_EQ(store_batch_expire_one(st, time_now_ms(), &bid, &e), ERR_NOTFOUND);
    ASSERT_OK(store_batch_expire_one(st, time_now_ms() + 2 * DAY, &bid, &e));
    ASSERT_EQ(bid, o.bid);
    struct store_batch gone;
    ASSERT_EQ(store_batch_find(st, "ws", "bulk1", &gone, &e), ERR_NOTFOUND);
    ASSERT_EQ(store_upload_get(st, key, &u, &e), ERR_NOTFOUND);
    store_close(st);
}

/* A tar shard URL answered before its rows (staging's url-behind): the
 * probe says when that is allowed, a PUT finds its target by its key
 * (adopt), and its rows are written once, only into a live batch. */
BOTH(tar_upload_recorded_after_its_answer)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    char key[96], key2[96], bad[160];
    int64_t bid = 0;
    struct store_upload u;
    ASSERT_OK(store_jobs_migrate(st, &e)); /* store_batch_delete looks for jobs using it */
    /* no batch yet, or another mode, or a quota to count: made with its rows */
    ASSERT_EQ(store_upload_tar_probe(st, "ws", "bulk1", &bid, &e), 1);
    ASSERT_OK(store_upload_tar_create(st, "ws", "bulk1", NULL, "11111111-2222-4333-8444-555555555555", 1000, DAY,
                                      key, &e));
    ASSERT_OK(store_upload_tar_probe(st, "ws", "bulk1", &bid, &e));
    ASSERT(bid > 0);
    struct store_batch b;
    ASSERT_OK(store_batch_get_or_create(st, "ws", "single1", NULL, "single", DAY, &b, &e));
    ASSERT_EQ(store_upload_tar_probe(st, "ws", "single1", &bid, &e), 1);
    struct store_quota q = {-1, -1, 5, -1, -1};
    ASSERT_OK(store_quota_set(st, "wq", &q, &e));
    ASSERT_OK(store_upload_tar_create(st, "wq", "bulkq", NULL, "21111111-2222-4333-8444-555555555555", 1000, DAY,
                                      key2, &e));
    ASSERT_EQ(store_upload_tar_probe(st, "wq", "bulkq", &bid, &e), 1);
    ASSERT_OK(store_upload_tar_probe(st, "ws", "bulk1", &bid, &e));

    /* answered, not written: adopted from its key */
    const char *id = "31111111-2222-4333-8444-555555555555";
    store_upload_tar_key(bid, id, key2);
    ASSERT_EQ(store_upload_get(st, key2, &u, &e), ERR_NOTFOUND);
    ASSERT_OK(store_upload_tar_adopt(st, key2, 4096, &u, &e));
    ASSERT(u.pending);
    ASSERT_STR_EQ(u.kind, "tar");
    ASSERT_STR_EQ(u.shard_id, id);
    ASSERT_STR_EQ(u.workspace, "ws");
    ASSERT_EQ(u.bid, bid);
    ASSERT_EQ(u.size_limit, 4096);
    store_upload_release(&u);
    /* only keys as store_upload_tar_key writes them, of a live bulk batch */
    const char *shapes[] = {"b/%lld/s/3111.tar", "b/%lld/s/31111111-2222-4333-8444-555555555555.tarx",
                            "b/%lld/s/31111111-2222-4333-8444-555555555555", "b/%lld/v/31111111-2222-4333-8444-555555555555",
                            "b/%lld/s/31111111-2222-4333-8444-55555555555G.tar", "x/%lld/s/31111111-2222-4333-8444-555555555555.tar"};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        snprintf(bad, sizeof bad, shapes[i], (long long)bid);
        ASSERT_EQ(store_upload_tar_adopt(st, bad, 4096, &u, &e), ERR_NOTFOUND);
    }
    store_upload_tar_key(b.bid, id, bad); /* the single batch */
    ASSERT_EQ(store_upload_tar_adopt(st, bad, 4096, &u, &e), ERR_NOTFOUND);
    store_upload_tar_key(bid + 1000, id, bad);
    ASSERT_EQ(store_upload_tar_adopt(st, bad, 4096, &u, &e), ERR_NOTFOUND);

    /* written once: the second time (the committer after a PUT did it) leaves the rows */
    struct store_upload_rec r = {bid, id, 4096, 1234};
    int n = -1;
    ASSERT_OK(store_upload_tar_record(st, &r, 1, &n, &e));
    ASSERT_EQ(n, 1);
    ASSERT_OK(store_upload_get(st, key2, &u, &e));
    ASSERT(u.pending);
    ASSERT_EQ(u.size_limit, 4096);
    ASSERT_OK(store_upload_done(st, key2, &u, NULL, 100, &e));
    store_upload_release(&u);
    ASSERT_OK(store_upload_tar_record(st, &r, 1, &n, &e));
    ASSERT_EQ(n, 0);
    ASSERT_OK(store_upload_get(st, key2, &u, &e));
    ASSERT(!u.pending); /* still used */
    store_upload_release(&u);
    struct store_shard_info *rows = NULL;
    int nr = 0;
    ASSERT_OK(store_shards_page(st, "ws", "bulk1", 0, 10, &rows, &nr, &e));
    ASSERT_EQ(nr, 2);
    ASSERT_STR_EQ(rows[1].shard_id, id);
    ASSERT_STR_EQ(rows[1].status_name, "uploaded");
    store_shard_infos_free(rows, nr);

    /* a batch removed before the rows are written: none are, and no PUT adopts it */
    const char *id2 = "41111111-2222-4333-8444-555555555555";
    store_upload_tar_key(bid, id2, key2);
    ASSERT_OK(store_batch_delete(st, "ws", "bulk1", &e));
    struct store_upload_rec r2 = {bid, id2, 4096, 1234};
    ASSERT_OK(store_upload_tar_record(st, &r2, 1, &n, &e));
    ASSERT_EQ(n, 0);
    ASSERT_EQ(store_upload_get(st, key2, &u, &e), ERR_NOTFOUND);
    ASSERT_EQ(store_upload_tar_adopt(st, key2, 4096, &u, &e), ERR_NOTFOUND);
    store_close(st);
}

struct record_run {
    struct store *st;
    struct store_upload_rec r;
    int rc, n;
};

static void *record_main(void *arg)
{
    struct record_run *a = arg;
    struct err e = ERR_INIT;
    a->rc = store_upload_tar_record(a->st, &a->r, 1, &a->n, &e);
    return NULL;
}

/* PostgreSQL: the rows of a URL answered before them, written while the
 * batch is being removed (store_batch_delete: the workspace held, its
 * pending URLs failed, the batch expired, in one transaction), are either
 * failed with the others or not written: never a pending URL of a removed
 * batch (a PUT to it would be taken).  (SQLite takes one writer at a time.) */
BOTH(tar_upload_record_during_a_batch_removal)
{
    if (!t_db)
        return;
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    char key[96];
    struct store_batch b;
    struct store_upload u;
    ASSERT_OK(store_upload_tar_create(st, "ws", "gone1", NULL, "51111111-2222-4333-8444-555555555555", 1000, DAY,
                                      key, &e));
    ASSERT_OK(store_batch_find(st, "ws", "gone1", &b, &e));
    struct db *d = NULL;
    ASSERT_OK(db_open(t_db, 1, &d, &e));
    struct db_conn *c = db_acquire(d, &e);
    ASSERT(c != NULL);
    /* the removal's transaction, as store_batch_delete runs it */
    ASSERT_OK(db_begin(c, &e));
    ASSERT_OK(db_run(c, &e, "INSERT INTO ws_usage(workspace, staged_bytes) VALUES('ws', 0) ON CONFLICT(workspace)"
                            " DO UPDATE SET staged_bytes = ws_usage.staged_bytes", ""));
    ASSERT_OK(db_run(c, &e, "UPDATE uploads SET state='failed' WHERE bid=?1 AND state='pending'", "i", b.bid));
    ASSERT_OK(db_run(c, &e, "UPDATE batches SET expires_ms=0 WHERE bid=?1", "i", b.bid));
    /* meanwhile the committer writes a URL of that batch answered before */
    struct record_run a = {st, {b.bid, "61111111-2222-4333-8444-555555555555", 1000, time_now_ms()}, -1, -1};
    pthread_t th;
    ASSERT(pthread_create(&th, NULL, record_main, &a) == 0);
    usleep(500 * 1000);
    ASSERT_OK(db_commit(c, &e));
    pthread_join(th, NULL);
    db_release(d, c);
    db_close(d);
    ASSERT_OK(a.rc);
    char key2[96];
    store_upload_tar_key(b.bid, a.r.shard_id, key2);
    int rc = store_upload_get(st, key2, &u, &e);
    ASSERT(rc == ERR_NOTFOUND || (rc == 0 && !u.pending));
    store_upload_release(&u);
    ASSERT_OK(store_upload_get(st, key, &u, &e));
    ASSERT(!u.pending);
    store_upload_release(&u);
    store_close(st);
}

/* Tar shards of one batch indexed at their uploads, k of them: their
 * outcomes (2 ranged items each), for store_uploads_done_indexed. */
struct group {
    char key[3][96];
    struct store_upload u[3];
    struct store_item_new items[3][2];
    struct store_shard_outcome o[3];
    struct store_upload_indexed v[3];
};

static void group_make(struct store *st, const char *batch, const char *id_fmt, struct group *g)
{
    struct err e = ERR_INIT;
    for (int i = 0; i < 3; i++) {
        char id[40];
        snprintf(id, sizeof id, id_fmt, i);
        ASSERT_OK(store_upload_tar_create(st, "ws", batch, NULL, id, 100000, DAY, g->key[i], &e));
        ASSERT_OK(store_upload_get(st, g->key[i], &g->u[i], &e));
        for (int k = 0; k < 2; k++) {
            g->items[i][k] = item(NULL, k ? "b.png" : "a.png", "image", g->key[i]);
            g->items[i][k].ranged = true;
            g->items[i][k].offset = 512 + 1024 * k;
        }
        g->o[i] = (struct store_shard_outcome){.bid = g->u[i].bid, .shard_id = g->u[i].shard_id,
                                               .from_state = "uploaded", .state = "done",
                                               .status_name = "ingested", .status_type = "success",
                                               .objects = 2, .items = g->items[i], .nitems = 2, .ws = "ws"};
        g->v[i] = (struct store_upload_indexed){g->key[i], &g->u[i], 4096, &g->o[i]};
    }
}

static void group_free(struct group *g)
{
    for (int i = 0; i < 3; i++)
        store_upload_release(&g->u[i]);
}

static bool upload_pending(struct store *st, const char *key)
{
    struct store_upload u;
    struct err e = ERR_INIT;
    ASSERT_OK(store_upload_get(st, key, &u, &e));
    bool p = u.pending;
    store_upload_release(&u);
    return p;
}

/* The staging committer records several shards of one batch in one
 * transaction: all of them or, when one cannot be (its URL used already),
 * none; never shards of two batches together. */
BOTH(tar_uploads_recorded_together)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct group g, h;
    group_make(st, "bulk1", "71111111-2222-4333-8444-55555555555%d", &g);
    group_make(st, "bulk2", "81111111-2222-4333-8444-55555555555%d", &h);
    int64_t n = -1;
    /* the second URL used meanwhile: none of the three recorded */
    ASSERT_OK(store_upload_done(st, g.key[1], &g.u[1], NULL, 4096, &e));
    ASSERT_EQ(store_uploads_done_indexed(st, g.v, 3, &e), ERR_EXISTS);
    ASSERT_OK(store_batch_count(st, "ws", "bulk1", NULL, &n, &e));
    ASSERT_EQ(n, 0);
    ASSERT(upload_pending(st, g.key[0]) && upload_pending(st, g.key[2]));
    /* two batches in one call: refused, nothing written */
    struct store_upload_indexed mixed[2] = {g.v[0], h.v[0]};
    ASSERT_EQ(store_uploads_done_indexed(st, mixed, 2, &e), ERR_INVALID);
    ASSERT(upload_pending(st, g.key[0]) && upload_pending(st, h.key[0]));
    /* the first and the third together; then the other batch's three */
    struct store_upload_indexed two[2] = {g.v[0], g.v[2]};
    ASSERT_OK(store_uploads_done_indexed(st, two, 2, &e));
    ASSERT_OK(store_uploads_done_indexed(st, h.v, 3, &e));
    ASSERT_OK(store_batch_count(st, "ws", "bulk1", NULL, &n, &e));
    ASSERT_EQ(n, 4);
    ASSERT_OK(store_batch_count(st, "ws", "bulk2", NULL, &n, &e));
    ASSERT_EQ(n, 6);
    ASSERT(!upload_pending(st, g.key[0]) && !upload_pending(st, g.key[2]) && !upload_pending(st, h.key[1]));
    ASSERT_EQ(store_uploads_done_indexed(st, two, 2, &e), ERR_EXISTS); /* once */
    ASSERT_EQ(store_upload_done_indexed(st, h.key[2], &h.u[2], 4096, &h.o[2], &e), ERR_EXISTS);
    struct store_shard_info *rows = NULL;
    int nr = 0;
    ASSERT_OK(store_shards_page(st, "ws", "bulk1", 0, 10, &rows, &nr, &e));
    ASSERT_EQ(nr, 3);
    ASSERT_STR_EQ(rows[0].status_name, "ingested");
    ASSERT_STR_EQ(rows[1].status_name, "uploaded"); /* the one used by store_upload_done: the indexer's */
    ASSERT_STR_EQ(rows[2].status_name, "ingested");
    ASSERT_EQ(rows[2].objects, 2);
    store_shard_infos_free(rows, nr);
    ASSERT_OK(store_uploads_done_indexed(st, NULL, 0, &e));
    group_free(&g);
    group_free(&h);
    store_close(st);
}

struct group_run {
    struct store *st;
    const struct store_upload_indexed *v;
    int n, rc;
};

static void *group_main(void *arg)
{
    struct group_run *a = arg;
    struct err e = ERR_INIT;
    a->rc = store_uploads_done_indexed(a->st, a->v, a->n, &e);
    return NULL;
}

/* PostgreSQL: shards recorded while their batch is removed.  The removal
 * holds the workspace and fails the batch's pending URLs one row after the
 * other; had the recording taken an upload row before the workspace (the
 * items' staged bytes), a removal that had reached another of its rows
 * would wait for it while it waits for the workspace: a deadlock (one of
 * the two fails).  Here the removal has failed the second URL, then the
 * recording starts, then the removal fails the first: both end, the
 * recording with ERR_EXISTS and nothing written. */
BOTH(tar_uploads_recorded_during_a_batch_removal)
{
    if (!t_db)
        return;
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct group g;
    group_make(st, "gone2", "91111111-2222-4333-8444-55555555555%d", &g);
    struct db *d = NULL;
    ASSERT_OK(db_open(t_db, 1, &d, &e));
    struct db_conn *c = db_acquire(d, &e);
    ASSERT(c != NULL);
    ASSERT_OK(db_begin(c, &e));
    ASSERT_OK(db_run(c, &e, "INSERT INTO ws_usage(workspace, staged_bytes) VALUES('ws', 0) ON CONFLICT(workspace)"
                            " DO UPDATE SET staged_bytes = ws_usage.staged_bytes", ""));
    ASSERT_OK(db_run(c, &e, "UPDATE uploads SET state='failed' WHERE blob_key=?1 AND state='pending'", "t",
                     g.key[1]));
    struct group_run a = {st, g.v, 2, 1};
    pthread_t th;
    ASSERT(pthread_create(&th, NULL, group_main, &a) == 0);
    usleep(300 * 1000);
    ASSERT_OK(db_run(c, &e, "UPDATE uploads SET state='failed' WHERE bid=?1 AND state='pending'", "i", g.u[0].bid));
    ASSERT_OK(db_run(c, &e, "UPDATE batches SET expires_ms=0 WHERE bid=?1", "i", g.u[0].bid));
    ASSERT_OK(db_commit(c, &e));
    pthread_join(th, NULL);
    db_release(d, c);
    db_close(d);
    ASSERT_EQ(a.rc, ERR_EXISTS);
    int64_t n = -1;
    struct store_batch b;
    ASSERT_EQ(store_batch_find(st, "ws", "gone2", &b, &e), ERR_NOTFOUND);
    ASSERT_OK(db_open(t_db, 1, &d, &e));
    c = db_acquire(d, &e);
    struct db_stmt *q = NULL;
    ASSERT_OK(db_prepare(c, "SELECT count(*) FROM items WHERE bid=?1", &q, &e));
    db_bind_int64(q, 1, g.u[0].bid);
    ASSERT_EQ(db_step(q, &e), DB_ROW);
    n = db_col_int64(q, 0);
    db_finalize(q);
    db_release(d, c);
    db_close(d);
    ASSERT_EQ(n, 0);
    group_free(&g);
    store_close(st);
}

struct finish_run {
    struct store *st;
    const struct store_shard_outcome *o;
    int rc;
};

static void *finish_main(void *arg)
{
    struct finish_run *a = arg;
    struct err e = ERR_INIT;
    a->rc = store_shard_finish(a->st, a->o, &e);
    return NULL;
}

/* PostgreSQL: a shard of a batch finished by the indexer (its items: the
 * batch's counts, then the workspace's staged bytes) while other shards of
 * the batch are recorded at their uploads (the workspace first, then the
 * batch's counts).  Both must take the workspace first, or each waits for
 * the other (a deadlock: one fails).  Here the recording holds the
 * workspace and waits for an upload row held elsewhere while the finish
 * starts; then the row is let go: both end, everything counted once. */
BOTH(shard_finished_while_others_are_recorded)
{
    if (!t_db)
        return;
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct group g;
    group_make(st, "mixfin", "a1111111-2222-4333-8444-55555555555%d", &g);
    /* the third: recorded "uploaded", the indexer's to finish */
    ASSERT_OK(store_upload_done(st, g.key[2], &g.u[2], NULL, 4096, &e));
    struct db *d = NULL;
    ASSERT_OK(db_open(t_db, 1, &d, &e));
    struct db_conn *c = db_acquire(d, &e);
    ASSERT(c != NULL);
    ASSERT_OK(db_begin(c, &e));
    ASSERT_OK(db_run(c, &e, "UPDATE uploads SET size_limit = size_limit WHERE blob_key=?1", "t", g.key[0]));
    struct group_run a = {st, g.v, 2, 1};
    struct finish_run f = {st, &g.o[2], 1};
    pthread_t th, tf;
    ASSERT(pthread_create(&th, NULL, group_main, &a) == 0);
    usleep(300 * 1000); /* the recording holds the workspace, waits for the first upload row */
    ASSERT(pthread_create(&tf, NULL, finish_main, &f) == 0);
    usleep(300 * 1000);
    ASSERT_OK(db_commit(c, &e));
    pthread_join(th, NULL);
    pthread_join(tf, NULL);
    db_release(d, c);
    db_close(d);
    ASSERT_EQ(a.rc, 0);
    ASSERT_EQ(f.rc, 0);
    int64_t n = -1;
    ASSERT_OK(store_batch_count(st, "ws", "mixfin", NULL, &n, &e));
    ASSERT_EQ(n, 6);
    int64_t bytes = -1;
    ASSERT_OK(store_ws_staged_bytes(st, "ws", &bytes, &e));
    ASSERT_EQ(bytes, 60);
    group_free(&g);
    store_close(st);
}

BOTH(reference_ingest_once_and_last_shard_webhook)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct store_ingest_shard sh[2] = {{"r-1", "[]", NULL}, {"r-2", "[]", NULL}};
    struct store_ingest_new in = {"ing-1", "image-refs", "http://127.0.0.1:9/hook", true, true, sh, 2,
                                  "{\"ingestId\":\"ing-1\"}"};
    char *dup = NULL;
    ASSERT_OK(store_ingest_create(st, "ws", "refs", NULL, DAY, &in, &dup, &e));
    ASSERT(dup == NULL);
    ASSERT_OK(store_ingest_create(st, "ws", "refs", NULL, DAY, &in, &dup, &e));
    ASSERT_STR_EQ(dup, "{\"ingestId\":\"ing-1\"}");
    free(dup);
    int64_t pending = 0, delivered = 0, failed = 0;
    for (int i = 0; i < 2; i++) {
        struct store_shard_work w;
        ASSERT_OK(store_shard_claim(st, true, "queued", "me", 60000, &w, &e));
        ASSERT_STR_EQ(w.shard_id, sh[i].shard_id);
        ASSERT(w.cat_ingest && w.cat_files);
        struct store_shard_outcome o = {.bid = w.bid, .shard_id = w.shard_id, .from_state = "queued", .owner = "me",
                                        .state = i ? "failed" : "done", .status_name = i ? "x-failed" : "ingested",
                                        .status_type = i ? "error" : "success", .ws = "ws",
                                        .webhook_url = w.notify_url, .ingest_id = w.ingest_id, .failed = i == 1,
                                        .ingest_ok = "{\"ok\":true}", .ingest_failed = "{\"ok\":false}"};
        ASSERT_OK(store_shard_finish(st, &o, &e));
        store_shard_work_release(&w);
        ASSERT_OK(store_outbox_counts(st, &pending, &delivered, &failed));
        ASSERT_EQ(pending, i); /* the ingest-status webhook after the last shard only */
    }
    struct store_shard_work w;
    ASSERT_EQ(store_shard_claim(st, true, "queued", "me", 60000, &w, &e), ERR_NOTFOUND);
    store_close(st);
}

/* ---- claims across processes: two store handles on one database ---------------------------- */

/* A second handle on st's database (another process's). */
static struct store *open_second(struct store *st)
{
    struct store *b = NULL;
    if (t_open(store_data_dir(st), &b) < 0)
        T_FAIL("second store_open failed");
    return b;
}

/* n uploaded tar shards "<prefix>-<i>" in batch "claims". */
static void uploaded_shards(struct store *st, const char *prefix, int n)
{
    struct err e = ERR_INIT;
    for (int i = 0; i < n; i++) {
        char id[64], key[96];
        struct store_upload u;
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        ASSERT_OK(store_upload_tar_create(st, "ws", "claims", NULL, id, 1000, DAY, key, &e));
        ASSERT_OK(store_upload_get(st, key, &u, &e));
        ASSERT_OK(store_upload_done(st, key, &u, NULL, 100, &e));
        store_upload_release(&u);
    }
}

struct claimer {
    struct store *st;
    char owner[16];
    char *got[64];
    int n;
};

static void *claimer_main(void *arg)
{
    struct claimer *c = arg;
    struct err e = ERR_INIT;
    for (;;) {
        struct store_shard_work w;
        int rc = store_shard_claim(c->st, false, "uploaded", c->owner, 60000, &w, &e);
        if (rc == ERR_NOTFOUND)
            break;
        if (rc == ERR_AGAIN || rc == ERR_UNAVAILABLE) /* a busy database: try again */
            continue;
        if (rc < 0 || c->n == 64) {
            fprintf(stderr, "  claim: %s\n", err_text(&e, rc));
            c->n = -1;
            break;
        }
        c->got[c->n++] = xstrdup(w.shard_id);
        store_shard_work_release(&w);
    }
    return NULL;
}

BOTH(two_claimers_never_get_the_same_shard)
{
    enum { N = 40, K = 4 };
    struct store *a = open_tmp();
    struct store *b = open_second(a);
    uploaded_shards(a, "sh", N);
    struct claimer c[K];
    pthread_t th[K];
    for (int i = 0; i < K; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].st = i % 2 ? b : a; /* two threads per "process" */
        snprintf(c[i].owner, sizeof c[i].owner, "owner-%d", i);
        ASSERT_EQ(pthread_create(&th[i], NULL, claimer_main, &c[i]), 0);
    }
    for (int i = 0; i < K; i++)
        pthread_join(th[i], NULL);
    int seen[N] = {0}, total = 0;
    for (int i = 0; i < K; i++) {
        ASSERT(c[i].n >= 0);
        for (int k = 0; k < c[i].n; k++) {
            int idx = atoi(c[i].got[k] + 3);
            ASSERT(idx >= 0 && idx < N);
            ASSERT_EQ(seen[idx]++, 0); /* nobody got a shard twice */
            free(c[i].got[k]);
            total++;
        }
    }
    ASSERT_EQ(total, N);
    /* every shard is claimed: nothing left for anyone */
    struct err e = ERR_INIT;
    struct store_shard_work w;
    ASSERT_EQ(store_shard_claim(b, false, "uploaded", "late", 60000, &w, &e), ERR_NOTFOUND);
    store_close(b);
    store_close(a);
}

BOTH(expired_claim_is_taken_over_and_renewal_keeps_it)
{
    struct store *a = open_tmp();
    struct store *b = open_second(a);
    struct err e = ERR_INIT;
    struct store_shard_work wa, wb, wx;
    uploaded_shards(a, "x", 2);
    /* A claims x-0 for 300 ms, B gets the next one */
    ASSERT_OK(store_shard_claim(a, false, "uploaded", "A", 300, &wa, &e));
    ASSERT_STR_EQ(wa.shard_id, "x-0");
    ASSERT_OK(store_shard_claim(b, false, "uploaded", "B", 60000, &wb, &e));
    ASSERT_STR_EQ(wb.shard_id, "x-1");
    store_shard_work_release(&wb);
    /* renewals keep A's claim past its first lease */
    for (int i = 0; i < 4; i++) {
        usleep(150000);
        ASSERT_OK(store_shard_renew(a, "x-0", "A", 300, &e));
        ASSERT_EQ(store_shard_claim(b, false, "uploaded", "B", 60000, &wx, &e), ERR_NOTFOUND);
    }
    ASSERT_EQ(store_shard_renew(b, "x-0", "B", 300, &e), ERR_EXISTS); /* not B's */
    /* A stops renewing (killed): B takes x-0 once the lease has run out */
    usleep(400000);
    ASSERT_OK(store_shard_claim(b, false, "uploaded", "B", 60000, &wx, &e));
    ASSERT_STR_EQ(wx.shard_id, "x-0");
    ASSERT_EQ(store_shard_renew(a, "x-0", "A", 300, &e), ERR_EXISTS); /* A learns it lost it */
    /* A's late outcome is refused, B's is recorded */
    struct store_item_new it = item(NULL, "late.png", "image", "b/1/s/x-0/0");
    struct store_shard_outcome o = {.bid = wa.bid, .shard_id = "x-0", .from_state = "uploaded", .owner = "A",
                                    .state = "done", .status_name = "ingested", .status_type = "success",
                                    .objects = 1, .items = &it, .nitems = 1, .ws = "ws"};
    ASSERT_EQ(store_shard_finish(a, &o, &e), ERR_EXISTS);
    ASSERT_EQ(store_shard_wait_storage(a, "x-0", "uploaded", "A", "{}", &e), ERR_EXISTS);
    int64_t n = -1;
    ASSERT_OK(store_batch_count(a, "ws", "claims", NULL, &n, &e));
    ASSERT_EQ(n, 0);
    o.owner = "B";
    ASSERT_OK(store_shard_finish(b, &o, &e));
    ASSERT_OK(store_batch_count(a, "ws", "claims", NULL, &n, &e));
    ASSERT_EQ(n, 1);
    /* the claim ended with the shard: nothing to renew, nothing to claim */
    ASSERT_EQ(store_shard_renew(b, "x-0", "B", 300, &e), ERR_EXISTS);
    store_shard_work_release(&wx);
    ASSERT_EQ(store_shard_claim(a, false, "uploaded", "A", 60000, &wx, &e), ERR_NOTFOUND);
    store_shard_work_release(&wa);
    store_close(b);
    store_close(a);
}

BOTH(unclaim_and_wait_storage_hand_the_shard_back)
{
    struct store *a = open_tmp();
    struct store *b = open_second(a);
    struct err e = ERR_INIT;
    struct store_shard_work w;
    uploaded_shards(a, "y", 1);
    ASSERT_OK(store_shard_claim(a, false, "uploaded", "A", 60000, &w, &e));
    store_shard_work_release(&w);
    ASSERT_OK(store_shard_unclaim(b, "y-0", "B", &e)); /* not B's: changes nothing */
    ASSERT_EQ(store_shard_claim(b, false, "uploaded", "B", 60000, &w, &e), ERR_NOTFOUND);
    ASSERT_OK(store_shard_unclaim(a, "y-0", "A", &e)); /* handed back: B may take it at once */
    ASSERT_OK(store_shard_claim(b, false, "uploaded", "B", 60000, &w, &e));
    store_shard_work_release(&w);
    /* storage ran out: the shard stays uploaded, waiting, and unclaimed */
    ASSERT_OK(store_shard_wait_storage(b, "y-0", "uploaded", "B", "{\"reason\":\"full\"}", &e));
    struct store_shard_info *rows = NULL;
    int nr = 0;
    ASSERT_OK(store_shards_page(a, "ws", "claims", 0, 10, &rows, &nr, &e));
    ASSERT_EQ(nr, 1);
    ASSERT_STR_EQ(rows[0].status_name, "waiting-for-storage");
    store_shard_infos_free(rows, nr);
    ASSERT_OK(store_shard_claim(a, false, "uploaded", "A", 60000, &w, &e));
    ASSERT_STR_EQ(w.shard_id, "y-0");
    store_shard_work_release(&w);
    /* a claim of reference shards never takes a tar shard and vice versa */
    ASSERT_EQ(store_shard_claim(a, true, "uploaded", "C", 60000, &w, &e), ERR_NOTFOUND);
    store_close(b);
    store_close(a);
}

BOTH(singleton_lease_one_holder_and_takeover)
{
    struct store *a = open_tmp();
    struct store *b = open_second(a);
    struct err e = ERR_INIT;
    ASSERT(strcmp(store_owner(a), store_owner(b)) != 0); /* one identity per handle */
    ASSERT_EQ(store_lease_take(a, "sweep", store_owner(a), 300, &e), 1);
    ASSERT_EQ(store_lease_take(b, "sweep", store_owner(b), 300, &e), 0);
    ASSERT_EQ(store_lease_take(b, "other", store_owner(b), 300, &e), 1); /* names are separate */
    for (int i = 0; i < 4; i++) { /* the holder renews: it keeps it */
        usleep(150000);
        ASSERT_EQ(store_lease_take(a, "sweep", store_owner(a), 300, &e), 1);
        ASSERT_EQ(store_lease_take(b, "sweep", store_owner(b), 300, &e), 0);
    }
    usleep(400000); /* the holder died: taken over after it expired */
    ASSERT_EQ(store_lease_take(b, "sweep", store_owner(b), 300, &e), 1);
    ASSERT_EQ(store_lease_take(a, "sweep", store_owner(a), 300, &e), 0);
    ASSERT_OK(store_lease_release(a, "sweep", store_owner(a), &e)); /* not a's: no change */
    ASSERT_EQ(store_lease_take(a, "sweep", store_owner(a), 300, &e), 0);
    ASSERT_OK(store_lease_release(b, "sweep", store_owner(b), &e)); /* a clean stop: free at once */
    ASSERT_EQ(store_lease_take(a, "sweep", store_owner(a), 60000, &e), 1);
    store_close(b);
    store_close(a);
}

struct taker {
    struct store *st;
    int wins;
};

static void *taker_main(void *arg)
{
    struct taker *t = arg;
    struct err e = ERR_INIT;
    for (int i = 0; i < 30; i++) {
        int rc = store_lease_take(t->st, "race", store_owner(t->st), 60000, &e);
        if (rc == 1)
            t->wins++;
    }
    return NULL;
}

BOTH(singleton_lease_racing_takers_one_winner)
{
    enum { K = 4 };
    struct store *st[K];
    struct taker t[K];
    pthread_t th[K];
    st[0] = open_tmp();
    for (int i = 1; i < K; i++)
        st[i] = open_second(st[0]);
    for (int i = 0; i < K; i++) {
        t[i] = (struct taker){st[i], 0};
        ASSERT_EQ(pthread_create(&th[i], NULL, taker_main, &t[i]), 0);
    }
    int holders = 0;
    for (int i = 0; i < K; i++) {
        pthread_join(th[i], NULL);
        holders += t[i].wins > 0;
    }
    ASSERT_EQ(holders, 1); /* the first taker keeps it for 60 s: nobody else ever got it */
    for (int i = K - 1; i >= 0; i--)
        store_close(st[i]);
}

/* Another process creates the output batch in a transaction that is still
 * open when this one looks: this one waits for it and answers "exists"
 * (jobs__output_ensure goes on), not "holds job outputs and cannot take
 * uploads" (PostgreSQL: the INSERT ... ON CONFLICT DO NOTHING waits for the
 * other commit, then the re-read found an output batch and refused it as
 * for an upload — two workers finishing their first tasks of a job at once
 * failed one of them, which then ran the task again). */
/* Another process's transaction: runs sql (int64 parameters ?1, ?2), says
 * so, and commits 300 ms later. */
struct other_tx {
    const char *target, *sql;
    int64_t p1, p2;
    atomic_int ran;
    int rc;
};

static void *run_other_tx(void *p)
{
    struct other_tx *o = p;
    struct db *d = NULL;
    struct err e = ERR_INIT;
    o->rc = db_open(o->target, 1, &d, &e);
    struct db_conn *c = o->rc == 0 ? db_acquire(d, &e) : NULL;
    if (o->rc == 0)
        o->rc = c ? db_begin(c, &e) : ERR_UNAVAILABLE;
    if (o->rc == 0)
        o->rc = db_run(c, &e, o->sql, "ii", o->p1, o->p2);
    atomic_store(&o->ran, 1);
    usleep(300 * 1000); /* the other side runs into the open transaction */
    if (o->rc == 0)
        o->rc = db_commit(c, &e);
    if (c)
        db_release(d, c);
    db_close(d);
    return NULL;
}

static void other_tx_start(struct other_tx *o, pthread_t *th)
{
    if (pthread_create(th, NULL, run_other_tx, o) != 0)
        T_FAIL("pthread_create");
    while (!atomic_load(&o->ran))
        usleep(1000);
}

BOTH(output_batch_created_by_two_at_once)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    char *sqlite_path = xasprintf("%s/vbatch.db", store_data_dir(st));
    struct other_tx o = {.target = t_db ? t_db : sqlite_path,
                         .sql = "INSERT INTO batches(workspace, batch_id, display_name, batch_type, content_type,"
                                " ingest_mode, created_ms, expires_ms) VALUES('ws','job-1-processing',"
                                "'job-1-processing','multipart-batch','mixed','output',?1,?2)",
                         .p1 = time_now_ms(), .p2 = time_now_ms() + DAY};
    pthread_t th;
    other_tx_start(&o, &th);
    int rc = store_batch_create_output(st, "ws", "job-1-processing", NULL, DAY, &e);
    pthread_join(th, NULL);
    ASSERT_OK(o.rc);
    ASSERT_EQ(rc, ERR_EXISTS);
    /* one batch, usable for outputs */
    ASSERT_OK(store_part_add(st, "ws", "job-1-processing", "results", "file-part", "metadata", NULL, NULL, &e));
    struct store_item_new r = item("results", "task-00001.jsonl", "metadata", "jobs/ws/job-1/t1");
    ASSERT_OK(store_item_add(st, "ws", "job-1-processing", 0, false, &r, &e));
    int64_t n = -1;
    ASSERT_OK(store_batch_count(st, "ws", "job-1-processing", NULL, &n, &e));
    ASSERT_EQ(n, 1);
    free(sqlite_path);
    store_close(st);
}

/* A client sends a reference ingest again (its answer was late) and the
 * retry reaches another process while the first is still committing: the
 * retry waits for it and answers the first response ("duplicated"), not an
 * error (PostgreSQL: both found no ingest row, the second INSERT failed on
 * the unique key). */
BOTH(reference_ingest_retried_at_once)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct store_batch b;
    ASSERT_OK(store_batch_get_or_create(st, "ws", "refs", NULL, "bulk", DAY, &b, &e));
    char *sqlite_path = xasprintf("%s/vbatch.db", store_data_dir(st));
    struct other_tx o = {.target = t_db ? t_db : sqlite_path,
                         .sql = "INSERT INTO ingests(bid, ingest_id, response, shards_total, created_ms)"
                                " VALUES(?1,'ing-1','{\"first\":true}',1,?2)",
                         .p1 = b.bid, .p2 = time_now_ms()};
    pthread_t th;
    other_tx_start(&o, &th);
    struct store_ingest_shard sh[1] = {{"r-9", "[]", NULL}};
    struct store_ingest_new in = {"ing-1", "image-refs", NULL, true, false, sh, 1, "{\"second\":true}"};
    char *dup = NULL;
    int rc = store_ingest_create(st, "ws", "refs", NULL, DAY, &in, &dup, &e);
    pthread_join(th, NULL);
    ASSERT_OK(o.rc);
    ASSERT_OK(rc);
    ASSERT(dup != NULL);
    ASSERT_STR_EQ(dup, "{\"first\":true}");
    free(dup);
    /* nothing of the retry was queued */
    struct store_shard_work w;
    ASSERT_EQ(store_shard_claim(st, true, "queued", "t", 60000, &w, &e), ERR_NOTFOUND);
    free(sqlite_path);
    store_close(st);
}

/* SQL on the test's SQLite database beside the store (triggers to make a
 * statement fail). */
static void sqlite_exec(struct store *st, const char *sql)
{
    char *path = xasprintf("%s/vbatch.db", store_data_dir(st));
    struct db *d = NULL;
    struct err e = ERR_INIT;
    if (db_open(path, 1, &d, &e) < 0)
        T_FAIL("db_open: %s", e.msg);
    struct db_conn *c = db_acquire(d, &e);
    if (!c || db_exec(c, sql, &e) < 0)
        T_FAIL("%s: %s", sql, e.msg);
    db_release(d, c);
    db_close(d);
    free(path);
}

/* A purge of a job's last output batch that fails between its item
 * transactions and its last one (the batch row's deletion) must not leave
 * the job's folder behind: the purge tried again finds no items any more,
 * so it cannot learn the folder from them.  The orphan sweeper does not
 * help while the job row exists (jobs/<ws>/<job>/ is the job's): the
 * folder is queued for deletion in the first transaction instead. */
TEST(batch_purge_failing_late_still_deletes_the_job_folder)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    struct store_batch b;
    ASSERT_OK(store_jobs_migrate(st, &e));
    sqlite_exec(st, "INSERT INTO jobs(workspace, job_id, name, definition, wf_def, image_input, outputs, batch_id,"
                    " agg_format, persist, params, workers, machine_type, state, items_total, created_ms,"
                    " updated_ms) VALUES('ws','job-1','job-1','{}','{}','image','[]','pics','jsonl',1,'{}',1,"
                    "'cpu','succeeded',1,1,1)");
    ASSERT_OK(store_batch_create_output(st, "ws", "job-1-processing", NULL, DAY, &e));
    ASSERT_OK(store_part_add(st, "ws", "job-1-processing", "results", "file-part", "metadata", NULL, NULL, &e));
    struct store_item_new r = item("results", "task-00001.jsonl", "metadata", "jobs/ws/job-1/t1");
    ASSERT_OK(store_item_add(st, "ws", "job-1-processing", 0, false, &r, &e));
    ASSERT_OK(store_blob_put(st, "jobs/ws/job-1/t1", "{}\n", 3));
    ASSERT_OK(store_blob_put(st, "jobs/ws/job-1/errors.jsonl", "{}\n", 3)); /* no item names it */
    ASSERT_OK(store_batch_find(st, "ws", "job-1-processing", &b, &e));
    /* the last transaction fails */
    sqlite_exec(st, "CREATE TRIGGER purge_fails BEFORE DELETE ON batches BEGIN SELECT RAISE(ABORT, 'injected'); END");
    ASSERT(store_batch_purge(st, b.bid, &e) < 0);
    ASSERT_OK(store_batch_find(st, "ws", "job-1-processing", &b, &e)); /* the row stays */
    sqlite_exec(st, "DROP TRIGGER purge_fails");
    /* tried again: the batch goes, and so does the rest of the job's folder */
    ASSERT_OK(store_batch_purge(st, b.bid, &e));
    ASSERT_EQ(store_batch_find(st, "ws", "job-1-processing", &b, &e), ERR_NOTFOUND);
    /* the orphan sweeper does not delete the folder of a job that exists:
     * were it left by the purge, it would stay */
    struct store_orphan_opts oo = {.grace_ms = 0};
    struct store_orphan_stats os;
    usleep(20 * 1000);
    ASSERT_OK(store_orphans_sweep(st, &oo, &os, &e));
    char *data = NULL;
    size_t len = 0;
    ASSERT(store_blob_read(st, "jobs/ws/job-1/errors.jsonl", 1024, &data, &len) < 0);
    ASSERT(store_blob_read(st, "jobs/ws/job-1/t1", 1024, &data, &len) < 0);
    free(data);
    store_close(st);
}

TEST_MAIN()
