/* Unit tests of src/staging: pagination, counts, parts, single uploads,
 * signed uploads, tar indexing with hostile entries, crash recovery of
 * indexing, reference ingests with de-duplication and webhooks, expiry. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "base/base.h"
#include "staging/staging.h"
#include "staging/staging_int.h"
#include "store/store.h"
#include "t.h"
#include "test_store_recv.h"
#include "vision/vision.h"

/* The message of the last call that was handed &te. */
static struct err te;

struct ctx {
    char dir[64]; /* temp data folder, kept across ctx_close/ctx_open */
    struct store *st;
    struct staging *s;
    struct staging_opts o;
};

static void ctx_open(struct ctx *c, struct staging_opts *o)
{
    if (!c->dir[0]) {
        strcpy(c->dir, "/tmp/vbatch-stg-XXXXXX");
        if (!mkdtemp(c->dir))
            abort();
    }
    if (o)
        c->o = *o;
    else
        staging_opts_default(&c->o);
    c->o.public_base_url = "http://127.0.0.1:9999/";
    c->o.net_allow = "127.0.0.1";
    if (store_open(c->dir, &c->st) < 0)
        T_FAIL("store_open");
    if (staging_new(c->st, &c->o, &c->s, NULL) < 0)
        T_FAIL("staging_new");
}

static void ctx_close(struct ctx *c)
{
    staging_free(c->s);
    store_close(c->st);
    c->s = NULL;
    c->st = NULL;
}

/* A real small JPEG (decodable header). */
static uint8_t *jpeg(size_t *len, int w)
{
    struct vis_image *img = vis_image_new(w, 8, VIS_BGR);
    uint8_t *out = NULL;
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)img->stride * 8; i++) {
        x = x * 1103515245u + 12345u;
        img->px[i] = w > 100 ? (uint8_t)(x >> 16) : 0x80;
    }
    if (vis_encode_jpeg(img, 80, &out, len) < 0)
        abort();
    vis_image_free(img);
    return out;
}

/* ---- tar building ---- */
struct tarb {
    struct archive *a;
    uint8_t *buf;
    size_t cap, used;
};
static void tar_begin(struct tarb *t, size_t cap)
{
    t->cap = cap;
    t->buf = malloc(cap);
    t->a = archive_write_new();
    archive_write_set_format_pax_restricted(t->a);
    archive_write_set_bytes_in_last_block(t->a, 1);
    if (archive_write_open_memory(t->a, t->buf, cap, &t->used) != ARCHIVE_OK)
        abort();
}
static void tar_add(struct tarb *t, const char *name, unsigned type, const void *data, size_t len)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0644);
    if (type == AE_IFLNK)
        archive_entry_set_symlink(e, "/etc/passwd");
    if (type == AE_IFCHR)
        archive_entry_set_rdev(e, 0x0101);
    archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)len : 0);
    if (archive_write_header(t->a, e) != ARCHIVE_OK)
        abort();
    if (type == AE_IFREG && len && archive_write_data(t->a, data, len) != (la_ssize_t)len)
        abort();
    archive_entry_free(e);
}
static void tar_end(struct tarb *t)
{
    archive_write_close(t->a);
    archive_write_free(t->a);
}

/* Tar of n valid JPEGs named img<base+i>.jpg. */
static void tar_images(struct tarb *t, int n, int base)
{
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    tar_begin(t, (size_t)(n + 4) * (jl + 2048) + 65536);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "img%05d.jpg", base + i);
        tar_add(t, name, AE_IFREG, j, jl);
    }
    tar_end(t);
    free(j);
}

static char *qv(const char *url, const char *name)
{
    char pat[32];
    snprintf(pat, sizeof pat, "%s=", name);
    const char *p = strstr(url, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    return strndup(p, strcspn(p, "&"));
}

/* Split a signed URL into key + query values. */
struct surl {
    char *key, *m, *e, *l, *off, *len, *sig; /* off, len: NULL unless a shard item's range */
};
static void surl_parse(const char *url, struct surl *u)
{
    const char *p = strstr(url, "/blobs/");
    if (!p)
        T_FAIL("no /blobs/ in %s", url);
    p += 7;
    u->key = strndup(p, strcspn(p, "?"));
    u->m = qv(url, "method");
    u->e = qv(url, "expires");
    u->l = qv(url, "limit");
    u->off = qv(url, "offset");
    u->len = qv(url, "length");
    u->sig = qv(url, "signature");
}
static void surl_free(struct surl *u)
{
    free(u->key), free(u->m), free(u->e), free(u->l), free(u->off), free(u->len), free(u->sig);
}

/* Ask for a bulk URL and PUT data to it; returns put_finish rc. */
static int put_shard(struct ctx *c, const char *batch, const void *data, size_t len, char shard_out[64])
{
    json_t *r = NULL;
    struct surl u;
    struct staging_put *p;
    int rc = staging_bulk_upload_url(c->s, "ws", batch, NULL, &r, NULL);
    if (rc < 0)
        return rc;
    json_t *d = json_object_get(r, "signedURLDetails");
    if (shard_out)
        snprintf(shard_out, 64, "%s", json_string_value(json_object_get(d, "shardId")));
    surl_parse(json_string_value(json_object_get(d, "uploadURL")), &u);
    json_decref(r);
    rc = staging_put_open(c->s, u.key, u.m, u.e, u.l, u.sig, (int64_t)len, &p, NULL);
    surl_free(&u);
    if (rc < 0)
        return rc;
    for (size_t off = 0; off < len; off += 7000) {
        rc = staging_put_write(p, (const uint8_t *)data + off, MIN(7000, len - off), NULL);
        if (rc < 0) {
            staging_put_abort(p);
            return rc;
        }
    }
    return staging_put_finish(p, NULL);
}

static int64_t count(struct ctx *c, const char *batch, const char *part)
{
    json_t *r = NULL;
    if (staging_batch_count(c->s, "ws", batch, part, &r, NULL) < 0)
        return -1;
    int64_t n = json_integer_value(json_object_get(r, "count"));
    json_decref(r);
    return n;
}

static json_t *shard0(struct ctx *c, const char *batch, int idx)
{
    json_t *r = NULL;
    if (staging_list_shards(c->s, "ws", batch, 0, NULL, &r, NULL) < 0)
        T_FAIL("list shards");
    json_t *s = json_incref(json_array_get(json_object_get(r, "shards"), (size_t)idx));
    json_decref(r);
    return s;
}

static int upload_file(struct ctx *c, const char *batch, const char *name, const void *data, size_t len)
{
    char *path;
    int fd;
    json_t *r = NULL;
    if (store_tmp_create(c->st, &path, &fd) < 0)
        abort();
    if (write(fd, data, len) != (ssize_t)len)
        abort();
    close(fd);
    err_clear(&te);
    int rc = staging_upload_image(c->s, "ws", batch, "Shown", name, path, &r, &te);
    ASSERT(access(path, F_OK) != 0); /* consumed in every case */
    free(path);
    json_decref(r);
    return rc;
}

/* ------------------------------------------------------------------------- */

TEST(tar_shards_pagination_1200_items)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.index_at_upload = false; /* the indexer thread's path */
    ctx_open(&c, &o);
    for (int k = 0; k < 3; k++) {
        struct tarb t;
        tar_images(&t, 400, k * 400);
        ASSERT_OK(put_shard(&c, "big", t.buf, t.used, NULL));
        free(t.buf);
    }
    ASSERT_EQ(count(&c, "big", NULL), 0); /* not indexed yet: nothing visible */
    json_t *sh = shard0(&c, "big", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "uploaded");
    json_decref(sh);
    int n = 0;
    ASSERT_OK(staging_index_pending(c.s, &n));
    ASSERT_EQ(n, 3);
    ASSERT_EQ(count(&c, "big", NULL), 1200);
    sh = shard0(&c, "big", 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "ingested");
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusType")), "success");
    ASSERT_EQ(json_integer_value(json_object_get(sh, "shardObjectsCount")), 400);
    ASSERT(str_has_suffix(json_string_value(json_object_get(sh, "eventTimestamp")), "Z"));
    json_decref(sh);

    /* Walk every page of 100: 12 pages, all names distinct, last token null. */
    char *token = NULL;
    int pages = 0, total = 0;
    char seen[1200] = {0};
    for (;;) {
        json_t *r = NULL;
        ASSERT_OK(staging_list_items(c.s, "ws", "big", NULL, 100, token, &r, NULL));
        json_t *files = json_object_get(r, "filesMetadata");
        size_t i;
        json_t *f;
        json_array_foreach(files, i, f) {
            const char *name = json_string_value(json_object_get(f, "fileName"));
            int idx = atoi(name + 3);
            ASSERT(idx >= 0 && idx < 1200);
            ASSERT_EQ(seen[idx], 0);
            seen[idx] = 1;
            ASSERT(str_has_prefix(json_string_value(json_object_get(f, "downloadURL")),
                                  "http://127.0.0.1:9999/blobs/"));
            ASSERT_STR_EQ(json_string_value(json_object_get(f, "contentType")), "image");
            ASSERT(json_is_string(json_object_get(f, "shardId")));
            total++;
        }
        pages++;
        json_t *next = json_object_get(r, "nextPageToken");
        ASSERT(next != NULL); /* key always present */
        free(token);
        token = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
        json_decref(r);
        if (!token)
            break;
        ASSERT_LE(pages, 12);
    }
    ASSERT_EQ(total, 1200);
    ASSERT_EQ(pages, 12);

    /* Download one item through its signed GET URL. */
    json_t *r = NULL;
    ASSERT_OK(staging_list_items(c.s, "ws", "big", NULL, 1, NULL, &r, NULL));
    struct surl u;
    surl_parse(json_string_value(json_object_get(json_array_get(json_object_get(r, "filesMetadata"), 0),
                                                 "downloadURL")), &u);
    int fd;
    int64_t start, size;
    const char *mime;
    /* the item lies in its shard's blob: the URL names the shard and the
     * item's range, and serves exactly the image's bytes */
    ASSERT(str_has_suffix(u.key, ".tar"));
    ASSERT(u.off && u.len);
    ASSERT_OK(staging_get_open(c.s, u.key, u.m, u.e, u.l, u.off, u.len, u.sig, &fd, &start, &size, &mime, NULL));
    ASSERT_STR_EQ(mime, "image/jpeg");
    size_t jl;
    uint8_t *jp = jpeg(&jl, 8);
    ASSERT_EQ(size, (int64_t)jl);
    ASSERT_EQ(start, atoll(u.off));
    uint8_t *got = malloc(jl);
    ASSERT_EQ(pread(fd, got, jl, (off_t)start), (ssize_t)jl);
    ASSERT(memcmp(got, jp, jl) == 0);
    free(got);
    free(jp);
    close(fd);
    /* the range is signed: without it, or moved, the URL is refused (no
     * reading the whole shard or a neighbour through it) */
    ASSERT_EQ(staging_get_open(c.s, u.key, u.m, u.e, u.l, NULL, NULL, u.sig, &fd, &start, &size, &mime, NULL),
              ERR_AUTH);
    ASSERT_EQ(staging_get_open(c.s, u.key, u.m, u.e, u.l, "0", u.len, u.sig, &fd, &start, &size, &mime, NULL),
              ERR_AUTH);
    ASSERT_EQ(staging_get_open(c.s, u.key, u.m, u.e, u.l, u.off, "99999999", u.sig, &fd, &start, &size, &mime,
                               NULL), ERR_AUTH);
    ASSERT_EQ(staging_get_open(c.s, u.key, u.m, u.e, u.l, u.off, NULL, u.sig, &fd, &start, &size, &mime, NULL),
              ERR_AUTH);
    u.sig[2] = u.sig[2] == 'x' ? 'y' : 'x';
    ASSERT_EQ(staging_get_open(c.s, u.key, u.m, u.e, u.l, u.off, u.len, u.sig, &fd, &start, &size, &mime, NULL),
              ERR_AUTH);
    surl_free(&u);
    json_decref(r);

    /* Bad tokens and page sizes. */
    ASSERT_EQ(staging_list_items(c.s, "ws", "big", NULL, 100, "garbage!", &r, NULL), ERR_INVALID);
    ASSERT_EQ(staging_list_items(c.s, "ws", "big", NULL, 100000, NULL, &r, NULL), ERR_INVALID);
    ASSERT_EQ(staging_list_items(c.s, "ws", "nope", NULL, 10, NULL, &r, NULL), ERR_NOTFOUND);
    ASSERT_EQ(staging_list_items(c.s, "ws", "BAD ID", NULL, 10, NULL, &r, NULL), ERR_INVALID);
    ASSERT_EQ(staging_list_items(c.s, "other-ws", "big", NULL, 10, NULL, &r, NULL), ERR_NOTFOUND);
    /* 1000-per-page: two pages. */
    ASSERT_OK(staging_list_items(c.s, "ws", "big", NULL, 1000, NULL, &r, NULL));
    ASSERT_EQ(json_array_size(json_object_get(r, "filesMetadata")), 1000);
    ASSERT(json_is_string(json_object_get(r, "nextPageToken")));
    json_decref(r);
    /* expiry removes every row and blob of the batch */
    int removed = 0;
    ASSERT_OK(staging_sweep(c.s, time_now_ms() + 8LL * 24 * 3600 * 1000, &removed));
    ASSERT_EQ(removed, 1);
    /* read the SQLite file itself: no store call can see every table */
    char *dbpath = xasprintf("%s/vbatch.db", c.dir);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    free(dbpath);
    sqlite3_stmt *q;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM items) + (SELECT count(*) FROM shards)"
                                     " + (SELECT count(*) FROM shard_events) + (SELECT count(*) FROM uploads)",
                                 -1, &q, NULL), 0);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(q, 0), 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    char *bdir = xasprintf("%s/blobs/b/1", c.dir);
    ASSERT(access(bdir, F_OK) != 0);
    free(bdir);
    ctx_close(&c);
}

TEST(batches_metadata_and_list)
{
    struct ctx c = {0};
    ctx_open(&c, NULL);
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    char name[32];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "b%d", i);
        ASSERT_OK(upload_file(&c, name, "a.jpg", j, jl));
    }
    free(j);
    json_t *r = NULL;
    ASSERT_OK(staging_batch_get(c.s, "ws", "b3", &r, NULL));
    json_t *b = json_object_get(r, "batch");
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "batchId")), "b3");
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "displayName")), "Shown");
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "batchType")), "simple-batch");
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "batchContentType")), "images");
    ASSERT(str_has_suffix(json_string_value(json_object_get(b, "createdDate")), "Z"));
    int64_t cr, ex;
    ASSERT_OK(time_parse_iso8601(json_string_value(json_object_get(b, "createdDate")), &cr));
    ASSERT_OK(time_parse_iso8601(json_string_value(json_object_get(b, "expiryDate")), &ex));
    ASSERT_EQ(ex - cr, 7LL * 24 * 3600 * 1000);
    json_decref(r);
    ASSERT_OK(staging_list_batches(c.s, "ws", 2, NULL, &r, NULL));
    ASSERT_EQ(json_array_size(json_object_get(r, "batches")), 2);
    char *tok = strdup(json_string_value(json_object_get(r, "nextPageToken")));
    json_decref(r);
    ASSERT_OK(staging_list_batches(c.s, "ws", 2, tok, &r, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(r, "batches"), 0), "batchId")),
                  "b2");
    json_decref(r);
    free(tok);
    ASSERT_OK(staging_list_batches(c.s, "ws", 5, NULL, &r, NULL));
    ASSERT(json_is_null(json_object_get(r, "nextPageToken")));
    json_decref(r);
    ASSERT_OK(staging_list_batches(c.s, "nobody", 5, NULL, &r, NULL));
    ASSERT_EQ(json_array_size(json_object_get(r, "batches")), 0);
    json_decref(r);
    ASSERT_OK(staging_batch_parts(c.s, "ws", "b1", &r, NULL));
    ASSERT_EQ(json_array_size(json_object_get(r, "batchParts")), 0);
    json_decref(r);
    ctx_close(&c);
}

TEST(single_upload_validation_and_mixing)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.max_image_bytes = 4000;
    ctx_open(&c, &o);
    size_t jl, bl;
    uint8_t *j = jpeg(&jl, 8), *big = jpeg(&bl, 1200);
    ASSERT_LT(jl, 4000);
    ASSERT_GT(bl, 4000);
    ASSERT_OK(upload_file(&c, "s1", "a.jpg", j, jl));
    ASSERT_EQ(upload_file(&c, "s1", "big.jpg", big, bl), ERR_LIMIT);
    ASSERT(strstr(te.msg, "Max size of single image is 4000B.") != NULL);
    ASSERT_EQ(upload_file(&c, "s1", "t.jpg", "hello world, not an image", 25), ERR_INVALID);
    ASSERT_EQ(upload_file(&c, "s1", "../x.jpg", j, jl), ERR_INVALID);
    ASSERT_EQ(upload_file(&c, "s1", "", j, jl), ERR_INVALID);
    ASSERT_EQ(upload_file(&c, "Bad_Batch", "a.jpg", j, jl), ERR_INVALID);
    char longid[70];
    memset(longid, 'a', 65);
    longid[65] = 0;
    ASSERT_EQ(upload_file(&c, longid, "a.jpg", j, jl), ERR_INVALID);
    /* truncated JPEG header: sniff passes, probe fails */
    ASSERT_EQ(upload_file(&c, "s1", "cut.jpg", j, 20), ERR_INVALID);
    ASSERT_EQ(count(&c, "s1", NULL), 1);
    /* mixing single and bulk */
    json_t *r = NULL;
    ASSERT_EQ(staging_bulk_upload_url(c.s, "ws", "s1", NULL, &r, &te), ERR_INVALID);
    ASSERT(strstr(te.msg, "cannot be combined") != NULL);
    ASSERT_EQ(staging_ingest_references(c.s, "ws", "s1", NULL, false,
                                        "{\"imageReferences\":[{\"name\":\"a.jpg\",\"url\":\"http://x/a.jpg\"}]}", 61,
                                        &r, NULL), ERR_INVALID);
    ASSERT_OK(staging_bulk_upload_url(c.s, "ws", "bulk1", NULL, &r, NULL));
    json_decref(r);
    ASSERT_EQ(upload_file(&c, "bulk1", "a.jpg", j, jl), ERR_INVALID);
    free(j);
    free(big);
    ctx_close(&c);
}

TEST(tar_hostile_entries_and_notifications)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.max_image_bytes = 4000;
    ctx_open(&c, &o);
    struct recv_srv rv;
    static const int ok200[] = {200};
    recv_start(&rv, ok200, 1);
    struct store_outbox_opts oo;
    store_outbox_opts_default(&oo);
    oo.backoff_ms = 50;
    ASSERT_OK(store_outbox_start(c.st, &oo));

    size_t jl, bl;
    uint8_t *j = jpeg(&jl, 8), *big = jpeg(&bl, 1200);
    struct tarb t;
    tar_begin(&t, 1 << 20);
    tar_add(&t, "good.jpg", AE_IFREG, j, jl);
    tar_add(&t, "../evil.jpg", AE_IFREG, j, jl);
    tar_add(&t, "dir/x.jpg", AE_IFREG, j, jl);
    tar_add(&t, "link.jpg", AE_IFLNK, NULL, 0);
    tar_add(&t, "dev", AE_IFCHR, NULL, 0);
    tar_add(&t, "subdir", AE_IFDIR, NULL, 0);
    tar_add(&t, "big.jpg", AE_IFREG, big, bl);
    tar_add(&t, "notes.txt", AE_IFREG, "hello", 5);
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"ingestId\":\"my-ingest\",\"notificationsURL\":\"http://127.0.0.1:%d/n\"}", rv.port);
    tar_add(&t, "notification_config.json", AE_IFREG, cfg, strlen(cfg));
    tar_add(&t, "good2.jpg", AE_IFREG, j, jl);
    tar_end(&t);
    char shard[64];
    ASSERT_OK(put_shard(&c, "h", t.buf, t.used, shard));
    free(t.buf);
    ASSERT_OK(staging_index_pending(c.s, NULL));
    ASSERT_EQ(count(&c, "h", NULL), 2);
    json_t *sh = shard0(&c, "h", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "ingested");
    json_t *failed = json_object_get(json_object_get(sh, "statusMetadata"), "failedFiles");
    ASSERT_EQ(json_array_size(failed), 7);
    const char *want[][2] = {{"../evil.jpg", "unsafe-file-name"},  {"dir/x.jpg", "unsafe-file-name"},
                             {"link.jpg", "not-a-regular-file"},   {"dev", "not-a-regular-file"},
                             {"subdir/", "not-a-regular-file"},     {"big.jpg", "file-size-limit-exceeded"},
                             {"notes.txt", "unsupported-file-type"}};
    for (int i = 0; i < 7; i++) {
        json_t *f = json_array_get(failed, (size_t)i);
        ASSERT_STR_EQ(json_string_value(json_object_get(f, "file_name")), want[i][0]);
        ASSERT_STR_EQ(json_string_value(json_object_get(f, "type")), want[i][1]);
        ASSERT(json_string_value(json_object_get(f, "reason"))[0] != 0);
    }
    json_decref(sh);
    /* notification_config.json is not an item */
    json_t *r = NULL;
    ASSERT_OK(staging_list_items(c.s, "ws", "h", NULL, 10, NULL, &r, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(r, "filesMetadata"), 0),
                                                    "fileName")), "good.jpg");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(r, "filesMetadata"), 1),
                                                    "fileName")), "good2.jpg");
    json_decref(r);
    /* webhook: ingest-files-status, exactly the COMPAT shape */
    ASSERT_EQ(recv_wait(&rv, 1, 5000), 1);
    json_t *p = json_loads(rv.req_body[0], 0, NULL);
    ASSERT(p != NULL);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "type")), "roboflow-data-staging-notification-v1");
    ASSERT_EQ(strlen(json_string_value(json_object_get(p, "event_id"))), 36);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "ingest_id")), "my-ingest");
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "batch_id")), "h");
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "shard_id")), shard);
    ASSERT_EQ(json_integer_value(json_object_get(p, "delivery_attempt")), 1);
    json_t *n = json_object_get(p, "notification");
    ASSERT_STR_EQ(json_string_value(json_object_get(n, "type")), "ingest-files-status-notification-v1");
    ASSERT(json_is_true(json_object_get(n, "success")));
    ASSERT_EQ(json_array_size(json_object_get(n, "ingested_files")), 2);
    ASSERT_EQ(json_array_size(json_object_get(n, "failed_files")), 7);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(n, "failed_files"), 5), "reason")),
                  "Max size of single image is 4000B.");
    ASSERT(json_is_false(json_object_get(n, "content_truncated")));
    ASSERT(strcasestr(rv.req_head[0], "Authorization: Bearer rf_ws") != NULL);
    json_decref(p);
    recv_stop(&rv);
    free(j);
    free(big);
    ctx_close(&c);
}

TEST(tar_too_many_images_corrupt_and_size_limit)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.max_shard_images = 5;
    o.max_shard_bytes = 200000;
    ctx_open(&c, &o);
    struct tarb t;
    tar_images(&t, 6, 0);
    ASSERT_OK(put_shard(&c, "m", t.buf, t.used, NULL));
    free(t.buf);
    /* corrupt: a valid header block followed by garbage */
    tar_images(&t, 3, 0);
    memset(t.buf + 700, 0x5a, t.used - 700);
    ASSERT_OK(put_shard(&c, "m", t.buf, t.used, NULL));
    free(t.buf);
    /* random bytes that are not a tar at all */
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 7 + 3);
    ASSERT_OK(put_shard(&c, "m", junk, sizeof junk, NULL));
    /* a good one next to them */
    tar_images(&t, 5, 100);
    ASSERT_OK(put_shard(&c, "m", t.buf, t.used, NULL));
    free(t.buf);
    ASSERT_OK(staging_index_pending(c.s, NULL));
    json_t *sh = shard0(&c, "m", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "too-many-images");
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusType")), "error");
    ASSERT(strstr(json_string_value(json_object_get(json_object_get(sh, "statusMetadata"), "reason")), "5") != NULL);
    ASSERT_EQ(json_integer_value(json_object_get(sh, "shardObjectsCount")), 0);
    json_decref(sh);
    sh = shard0(&c, "m", 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "corrupt-archive");
    json_decref(sh);
    sh = shard0(&c, "m", 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "corrupt-archive");
    json_decref(sh);
    sh = shard0(&c, "m", 3);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "ingested");
    json_decref(sh);
    ASSERT_EQ(count(&c, "m", NULL), 5); /* only the good shard */
    /* extracted blobs of failed shards are gone */
    char *p = xasprintf("%s/blobs/b/1/s", c.dir);
    int dirs = 0;
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d)))
        dirs += e->d_name[0] != '.';
    if (d)
        closedir(d);
    free(p);
    ASSERT_EQ(dirs, 1);

    /* size limit on PUT: declared too big -> ERR_LIMIT; streamed too big -> ERR_LIMIT, nothing left */
    uint8_t *buf = calloc(1, 300000);
    ASSERT_EQ(put_shard(&c, "m", buf, 300000, NULL), ERR_LIMIT);
    json_t *r = NULL;
    struct surl u;
    struct staging_put *pp;
    ASSERT_OK(staging_bulk_upload_url(c.s, "ws", "m", NULL, &r, NULL));
    surl_parse(json_string_value(json_object_get(json_object_get(r, "signedURLDetails"), "uploadURL")), &u);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(r, "signedURLDetails"), "maxShardSize")), 200000);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(r, "signedURLDetails"), "maxNumberOfImages")), 5);
    json_decref(r);
    ASSERT_OK(staging_put_open(c.s, u.key, u.m, u.e, u.l, u.sig, -1, &pp, NULL));
    ASSERT_OK(staging_put_write(pp, buf, 150000, NULL));
    ASSERT_EQ(staging_put_write(pp, buf, 150000, NULL), ERR_LIMIT);
    staging_put_abort(pp);
    int fd;
    int64_t size;
    ASSERT_EQ(store_blob_open(c.st, u.key, &fd, &size), ERR_NOTFOUND);
    char *tmpd = xasprintf("%s/tmp", c.dir);
    d = opendir(tmpd);
    int files = 0;
    while ((e = readdir(d)))
        files += e->d_name[0] != '.';
    closedir(d);
    free(tmpd);
    ASSERT_EQ(files, 0);
    /* the URL still works for a retry within the limit, then is spent */
    ASSERT_OK(staging_put_open(c.s, u.key, u.m, u.e, u.l, u.sig, 10, &pp, NULL));
    ASSERT_OK(staging_put_write(pp, "0123456789", 10, NULL));
    ASSERT_OK(staging_put_finish(pp, NULL));
    ASSERT_EQ(staging_put_open(c.s, u.key, u.m, u.e, u.l, u.sig, 10, &pp, NULL), ERR_EXISTS);
    /* tampered, wrong-method */
    u.l[0] = '9';
    ASSERT_EQ(staging_put_open(c.s, u.key, u.m, u.e, u.l, u.sig, 10, &pp, NULL), ERR_AUTH);
    ASSERT_EQ(staging_put_open(c.s, u.key, "GET", u.e, u.l, u.sig, 10, &pp, NULL), ERR_AUTH);
    ASSERT_EQ(staging_put_open(c.s, "../../etc", u.m, u.e, u.l, u.sig, 10, &pp, NULL), ERR_AUTH);
    surl_free(&u);
    free(buf);
    ctx_close(&c);
}

TEST(tar_many_entries_bounded)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.max_shard_images = 200; /* entry cap: 10 * 200 + 16 = 2016 */
    ctx_open(&c, &o);
    struct tarb t;
    tar_begin(&t, 4 << 20);
    for (int i = 0; i < 1500; i++) {
        char name[32];
        snprintf(name, sizeof name, "n%04d.txt", i);
        tar_add(&t, name, AE_IFREG, "x", 1);
    }
    tar_end(&t);
    ASSERT_OK(put_shard(&c, "many", t.buf, t.used, NULL));
    free(t.buf);
    tar_begin(&t, 4 << 20);
    for (int i = 0; i < 2100; i++) {
        char name[32];
        snprintf(name, sizeof name, "n%04d.txt", i);
        tar_add(&t, name, AE_IFREG, "x", 1);
    }
    tar_end(&t);
    ASSERT_OK(put_shard(&c, "many", t.buf, t.used, NULL));
    free(t.buf);
    ASSERT_OK(staging_index_pending(c.s, NULL));
    json_t *sh = shard0(&c, "many", 0);
    json_t *meta = json_object_get(sh, "statusMetadata");
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "all-files-failed");
    ASSERT_EQ(json_array_size(json_object_get(meta, "failedFiles")), 1000); /* capped */
    ASSERT_EQ(json_integer_value(json_object_get(meta, "failedCount")), 1500);
    json_decref(sh);
    sh = shard0(&c, "many", 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "too-many-entries");
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusType")), "error");
    json_decref(sh);
    ctx_close(&c);
}

/* A tar shard is indexed as its PUT ends (index_at_upload, the default):
 * counted and "ingested" when staging_put_finish returns, with the
 * status history of the indexer's path; a corrupt shard, one with a
 * notification config, and one over the shard limit go the indexer's
 * way ("uploaded" first) and end as they always did. */
/* The key of a fresh signed upload URL of batch. */
static char *url_key(struct ctx *c, const char *batch)
{
    json_t *r = NULL;
    struct surl u;
    if (staging_bulk_upload_url(c->s, "ws", batch, NULL, &r, NULL) < 0)
        abort();
    surl_parse(json_string_value(json_object_get(json_object_get(r, "signedURLDetails"), "uploadURL")), &u);
    json_decref(r);
    char *key = xstrdup(u.key);
    surl_free(&u);
    return key;
}

/* The bytes of a shard at its key as a PUT leaves them: marked as
 * answered for (commits.c) or not (an inline PUT that died before its
 * commit, never answered). */
static void blob_at(struct ctx *c, const char *key, const void *data, size_t len, bool marked)
{
    struct store_blob_writer *w;
    if (store_blob_writer_open_kept(c->st, key, 0, 1u << 20, &w) < 0 || store_blob_writer_write(w, data, len) < 0)
        abort();
    if (marked && store_blob_writer_mark(w) < 0)
        abort();
    if (store_blob_writer_finish(w) < 0)
        abort();
}

/* Shards answered before their commit and left unrecorded by a crash are
 * found again (staging__recover_acked): only marked blobs, also behind
 * more abandoned URLs than one page of the look. */
TEST(acked_shards_found_again_past_many_pending_urls)
{
    struct ctx c = {0};
    ctx_open(&c, NULL);
    for (int i = 0; i < 1030; i++) /* abandoned URLs, older than the shard below */
        free(url_key(&c, "idle"));
    struct tarb t;
    tar_images(&t, 50, 0);
    char *acked = url_key(&c, "acked"), *unanswered = url_key(&c, "unanswered");
    blob_at(&c, acked, t.buf, t.used, true);
    blob_at(&c, unanswered, t.buf, t.used, false);
    int64_t size = 0;
    if (store_blob_marked(c.st, acked, &size) != 1) { /* no user xattrs here: nothing is answered first */
        free(acked), free(unanswered), free(t.buf);
        ctx_close(&c);
        return;
    }
    int n = -1;
    ASSERT_OK(staging__recover_acked(c.s, INT64_MAX, true, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(count(&c, "acked", NULL), 50); /* indexed at once */
    ASSERT_EQ(count(&c, "unanswered", NULL), 0);
    ASSERT_OK(staging_index_pending(c.s, &n));
    ASSERT_EQ(count(&c, "unanswered", NULL), 0); /* not recorded at all */
    /* a second look finds nothing more */
    ASSERT_OK(staging__recover_acked(c.s, INT64_MAX, true, &n));
    ASSERT_EQ(n, 0);
    ASSERT_EQ(count(&c, "acked", NULL), 50);
    free(acked), free(unanswered), free(t.buf);
    ctx_close(&c);
}

TEST(tar_shard_indexed_at_its_upload)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.max_shard_images = 60;
    ctx_open(&c, &o);
    struct tarb t;
    tar_images(&t, 50, 0);
    char shard[64];
    ASSERT_OK(put_shard(&c, "now", t.buf, t.used, shard));
    ASSERT_EQ(count(&c, "now", NULL), 50); /* no indexer ran */
    json_t *sh = shard0(&c, "now", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "ingested");
    ASSERT_EQ(json_integer_value(json_object_get(sh, "shardObjectsCount")), 50);
    json_decref(sh);
    int n = -1;
    ASSERT_OK(staging_index_pending(c.s, &n));
    ASSERT_EQ(n, 0); /* nothing left for the indexer */
    ASSERT_EQ(count(&c, "now", NULL), 50);
    /* items are ranges of the shard's blob, byte for byte */
    char *tarkey = xasprintf("b/1/s/%s.tar", shard);
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(store_blob_read(c.st, tarkey, 1 << 24, &data, &len));
    ASSERT_EQ(len, t.used);
    ASSERT(memcmp(data, t.buf, len) == 0);
    free(data);
    free(tarkey);
    free(t.buf);

    /* over the image limit: the indexer's path, which fails it as before */
    tar_images(&t, 61, 100);
    ASSERT_OK(put_shard(&c, "many", t.buf, t.used, NULL));
    free(t.buf);
    ASSERT_EQ(count(&c, "many", NULL), 0);
    sh = shard0(&c, "many", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "uploaded");
    json_decref(sh);
    /* corrupt: likewise */
    tar_images(&t, 3, 200);
    memset(t.buf + 700, 0x5a, t.used - 700); /* a valid header block followed by garbage */
    ASSERT_OK(put_shard(&c, "bad", t.buf, t.used, NULL));
    free(t.buf);
    sh = shard0(&c, "bad", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "uploaded");
    json_decref(sh);
    /* a notification config: the indexer's path (it queues the webhooks) */
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    tar_begin(&t, 1 << 20);
    tar_add(&t, "a.jpg", AE_IFREG, j, jl);
    const char *cfg = "{\"ingestId\":\"ing-1\",\"notificationsURL\":\"http://127.0.0.1:9/n\"}";
    tar_add(&t, "notification_config.json", AE_IFREG, cfg, strlen(cfg));
    tar_end(&t);
    free(j);
    ASSERT_OK(put_shard(&c, "cfg", t.buf, t.used, NULL));
    free(t.buf);
    sh = shard0(&c, "cfg", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "uploaded");
    json_decref(sh);
    ASSERT_OK(staging_index_pending(c.s, &n));
    ASSERT_EQ(n, 3);
    sh = shard0(&c, "many", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "too-many-images");
    json_decref(sh);
    sh = shard0(&c, "bad", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "corrupt-archive");
    json_decref(sh);
    sh = shard0(&c, "cfg", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "ingested");
    json_decref(sh);
    ASSERT_EQ(count(&c, "cfg", NULL), 1);
    ctx_close(&c);
}

/* The committer records the shards of a batch queued one behind the
 * other in one transaction; when that is refused (here: one shard's URL
 * was used meanwhile, as by another process), one by one: nothing lost,
 * nothing twice. */
TEST(shards_committed_together_or_one_by_one)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.commit_behind_delay_ms = 400; /* the shards queue up behind the first */
    ctx_open(&c, &o);
    ASSERT_OK(staging_start(c.s, NULL));
    char shard[3][64];
    int64_t size[3];
    for (int i = 0; i < 3; i++) {
        struct tarb t;
        tar_images(&t, 20, 100 * i);
        ASSERT_OK(put_shard(&c, "grp", t.buf, t.used, shard[i]));
        size[i] = (int64_t)t.used;
        free(t.buf);
    }
    /* the second one's URL used now: the group {2, 3} that the committer
     * takes after the first shard is refused */
    char *key = xasprintf("b/1/s/%s.tar", shard[1]);
    struct store_upload u;
    ASSERT_OK(store_upload_get(c.st, key, &u, &te));
    ASSERT(u.pending);
    ASSERT_OK(store_upload_done(c.st, key, &u, NULL, size[1], &te));
    store_upload_release(&u);
    free(key);
    /* the first and the third committed, the second indexed from its blob */
    for (int i = 0; i < 500 && count(&c, "grp", NULL) < 60; i++)
        usleep(20000);
    staging_stop(c.s);
    ASSERT_EQ(count(&c, "grp", NULL), 60);
    for (int i = 0; i < 3; i++) {
        json_t *sh = shard0(&c, "grp", i);
        ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "ingested");
        json_decref(sh);
    }
    struct staging_item *it = NULL;
    int ni = 0;
    ASSERT_OK(staging_items_page(c.s, "ws", "grp", NULL, 0, 100, &it, &ni, NULL));
    ASSERT_EQ(ni, 60);
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < i; j++)
            ASSERT(strcmp(it[i].name, it[j].name) != 0);
    staging_items_free(it, ni);
    ctx_close(&c);
}

TEST(indexing_is_crash_safe)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.index_at_upload = false; /* the indexer thread's path */
    ctx_open(&c, &o);
    struct tarb t;
    tar_images(&t, 50, 0);
    char shard[64];
    ASSERT_OK(put_shard(&c, "cr", t.buf, t.used, shard));
    /* "Crash": the shard is uploaded (its blob synced before the 200),
     * indexing never ran. */
    ctx_close(&c);
    ctx_open(&c, NULL);
    ASSERT_EQ(count(&c, "cr", NULL), 0);
    ASSERT_OK(staging_start(c.s, NULL)); /* the indexer thread picks it up */
    for (int i = 0; i < 200 && count(&c, "cr", NULL) < 50; i++)
        usleep(20000);
    staging_stop(c.s);
    ASSERT_EQ(count(&c, "cr", NULL), 50);
    /* indexing again changes nothing: never duplicated */
    int n = -1;
    ASSERT_OK(staging_index_pending(c.s, &n));
    ASSERT_EQ(n, 0);
    ASSERT_EQ(count(&c, "cr", NULL), 50);
    /* the shard was kept whole: every item is a range of the uploaded
     * archive, byte for byte, and nothing was extracted beside it */
    char *tarkey = xasprintf("b/1/s/%s.tar", shard), *dir = xasprintf("b/1/s/%s", shard);
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(store_blob_read(c.st, tarkey, 1 << 24, &data, &len));
    ASSERT_EQ(len, t.used);
    ASSERT(memcmp(data, t.buf, len) == 0);
    free(data);
    char *path = store_blob_path(c.st, dir);
    ASSERT(access(path, F_OK) < 0);
    free(path);
    struct staging_item *it = NULL;
    int ni = 0;
    ASSERT_OK(staging_items_page(c.s, "ws", "cr", NULL, 0, 100, &it, &ni, NULL));
    ASSERT_EQ(ni, 50);
    size_t jl;
    uint8_t *jp = jpeg(&jl, 8);
    int64_t last = -1;
    for (int i = 0; i < ni; i++) {
        ASSERT_STR_EQ(it[i].blob_key, tarkey);
        ASSERT(it[i].offset > last); /* in archive order, each its own range */
        last = it[i].offset;
        ASSERT_EQ(it[i].size, (int64_t)jl);
        ASSERT(memcmp(t.buf + it[i].offset, jp, jl) == 0);
        ASSERT_OK(store_blob_read_at(c.st, it[i].blob_key, it[i].offset, it[i].size, 1 << 20, &data, &len));
        ASSERT_EQ(len, jl);
        ASSERT(memcmp(data, jp, jl) == 0);
        free(data);
    }
    /* a range beyond the blob is a damaged item, not a short read */
    ASSERT_EQ(store_blob_read_at(c.st, tarkey, (int64_t)t.used - 10, 20, 1 << 20, &data, &len), ERR_PARSE);
    ASSERT_EQ(store_blob_read_at(c.st, tarkey, 0, 2048, 1024, &data, &len), ERR_LIMIT);
    staging_items_free(it, ni);
    free(jp);
    free(tarkey);
    free(dir);
    free(t.buf);
    ctx_close(&c);
}

/* Files under DATA/blobs/<prefix>/ */
/* How many items of batch are ranges of the blob key that read back as
 * the images they were (tar_images' JPEG). */
static int items_readable(struct ctx *c, const char *batch, const char *key)
{
    struct staging_item *it = NULL;
    int n = 0, ok = 0;
    size_t jl, len;
    uint8_t *jp = jpeg(&jl, 8);
    if (staging_items_page(c->s, "ws", batch, NULL, 0, 100, &it, &n, NULL) < 0)
        n = 0;
    for (int i = 0; i < n; i++) {
        char *data = NULL;
        if (!strcmp(it[i].blob_key, key) && it[i].offset >= 0 &&
            store_blob_read_at(c->st, key, it[i].offset, it[i].size, 1 << 20, &data, &len) == 0 && len == jl &&
            !memcmp(data, jp, jl))
            ok++;
        free(data);
    }
    staging_items_free(it, n);
    free(jp);
    return ok;
}

TEST(claim_taken_over_leaves_the_new_owners_work_alone)
{
    /* two contexts on one data folder stand for two processes */
    struct ctx a = {0}, b = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.claim_lease_ms = 300;
    o.index_at_upload = false; /* the indexer thread's claims */
    ctx_open(&a, &o);
    memcpy(b.dir, a.dir, sizeof b.dir);
    ctx_open(&b, &o);
    struct tarb t;
    tar_images(&t, 5, 0);
    char shard[64];
    ASSERT_OK(put_shard(&a, "to", t.buf, t.used, shard));
    free(t.buf);
    /* A claims the shard, then stalls past its lease without renewing */
    struct staging__job ja;
    ASSERT_OK(staging__job_load(a.s, false, "uploaded", &ja));
    ASSERT_STR_EQ(ja.shard_id, shard);
    int n = -1;
    ASSERT_OK(staging_index_pending(b.s, &n));
    ASSERT_EQ(n, 0); /* claimed by A: B leaves it */
    usleep(400000);
    ASSERT_OK(staging_index_pending(b.s, &n)); /* expired: B takes it over and indexes it */
    ASSERT_EQ(n, 1);
    ASSERT_EQ(count(&b, "to", NULL), 5);
    /* B's work: the items, ranges of the shard's blob (kept whole) */
    char tarkey[96];
    snprintf(tarkey, sizeof tarkey, "b/%lld/s/%s.tar", (long long)ja.bid, shard);
    ASSERT_EQ(items_readable(&b, "to", tarkey), 5);
    /* A wakes up: whatever it decides is refused and removes nothing of B's */
    ASSERT_EQ(staging__job_fail(&ja, "uploaded", "internal-error", "stalled"), ERR_EXISTS);
    staging__job_wait_storage(&ja, "uploaded", "storage full: test");
    ASSERT_EQ(staging__job_commit(&ja, "uploaded"), ERR_EXISTS);
    staging__job_release(&ja);
    ASSERT_EQ(items_readable(&b, "to", tarkey), 5);
    ASSERT_EQ(count(&a, "to", NULL), 5);
    json_t *sh = shard0(&a, "to", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "ingested");
    json_decref(sh);
    ctx_close(&b);
    ctx_close(&a);
}

TEST(output_batches_parts_and_counts)
{
    struct ctx c = {0};
    ctx_open(&c, NULL);
    ASSERT_OK(staging_output_batch_create(c.s, "ws", "job-1-export", NULL, NULL));
    ASSERT_EQ(staging_output_batch_create(c.s, "ws", "job-1-export", NULL, NULL), ERR_EXISTS);
    ASSERT_OK(staging_output_part_add(c.s, "ws", "job-1-export", "results", "file-part", "metadata", NULL, NULL, NULL));
    ASSERT_OK(staging_output_part_add(c.s, "ws", "job-1-export", "images", "file-part", "archives", "viz", "images", NULL));
    for (int i = 0; i < 3; i++) {
        char key[64], name[32];
        snprintf(key, sizeof key, "jobs/ws/job-1/out-%d.jsonl", i);
        snprintf(name, sizeof name, "out-%d.jsonl", i);
        ASSERT_OK(store_blob_put(c.st, key, "{}\n", 3));
        ASSERT_OK(staging_output_item_add(c.s, "ws", "job-1-export", "results", name, "application/jsonl",
                                          "application/jsonl", key, 3, NULL));
    }
    ASSERT_OK(store_blob_put(c.st, "jobs/ws/job-1/img.tar", "x", 1));
    ASSERT_OK(staging_output_item_add(c.s, "ws", "job-1-export", "images", "img.tar", "archive",
                                      "application/x-tar", "jobs/ws/job-1/img.tar", 1, NULL));
    ASSERT_EQ(count(&c, "job-1-export", NULL), 4);
    ASSERT_EQ(count(&c, "job-1-export", "results"), 3);
    ASSERT_EQ(count(&c, "job-1-export", "images"), 1);
    ASSERT_EQ(count(&c, "job-1-export", "nope"), 0);
    json_t *r = NULL;
    ASSERT_OK(staging_batch_parts(c.s, "ws", "job-1-export", &r, NULL));
    json_t *parts = json_object_get(r, "batchParts");
    ASSERT_EQ(json_array_size(parts), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(parts, 0), "partName")), "images");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(parts, 0), "nestedContentType")), "images");
    json_decref(r);
    ASSERT_OK(staging_list_items(c.s, "ws", "job-1-export", "results", 2, NULL, &r, NULL));
    ASSERT_EQ(json_array_size(json_object_get(r, "filesMetadata")), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(r, "filesMetadata"), 0),
                                                    "partName")), "results");
    json_decref(r);
    ASSERT_OK(staging_batch_get(c.s, "ws", "job-1-export", &r, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "batch"), "batchType")), "multipart-batch");
    json_decref(r);
    struct staging_item *items;
    int n;
    ASSERT_OK(staging_items_page(c.s, "ws", "job-1-export", "results", 0, 2, &items, &n, NULL));
    ASSERT_EQ(n, 2);
    int64_t last = items[1].id;
    ASSERT_STR_EQ(items[0].blob_key, "jobs/ws/job-1/out-0.jsonl");
    staging_items_free(items, n);
    ASSERT_OK(staging_items_page(c.s, "ws", "job-1-export", "results", last, 10, &items, &n, NULL));
    ASSERT_EQ(n, 1);
    staging_items_free(items, n);
    /* uploads into an output batch are refused */
    json_t *rr = NULL;
    ASSERT_EQ(staging_bulk_upload_url(c.s, "ws", "job-1-export", NULL, &rr, NULL), ERR_INVALID);
    /* sweeping removes the blobs outside the batch folder too */
    int removed = 0;
    ASSERT_OK(staging_sweep(c.s, time_now_ms() + 8LL * 24 * 3600 * 1000, &removed));
    ASSERT_EQ(removed, 1);
    int fd;
    int64_t sz;
    ASSERT_EQ(store_blob_open(c.st, "jobs/ws/job-1/img.tar", &fd, &sz), ERR_NOTFOUND);
    ctx_close(&c);
}

TEST(expiry_sweeper)
{
    struct ctx c = {0};
    struct staging_opts o;
    staging_opts_default(&o);
    o.expiry_ms = 300;
    o.sweep_interval_ms = 50;
    ctx_open(&c, &o);
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    ASSERT_OK(upload_file(&c, "e1", "a.jpg", j, jl));
    struct staging_item *items;
    int n;
    ASSERT_OK(staging_items_page(c.s, "ws", "e1", NULL, 0, 10, &items, &n, NULL));
    ASSERT_EQ(n, 1);
    char *key = strdup(items[0].blob_key);
    staging_items_free(items, n);
    ASSERT_OK(staging_start(c.s, NULL));
    int fd;
    int64_t sz;
    ASSERT_OK(store_blob_open(c.st, key, &fd, &sz));
    close(fd);
    usleep(700000);
    staging_stop(c.s);
    ASSERT_EQ(store_blob_open(c.st, key, &fd, &sz), ERR_NOTFOUND);
    json_t *r = NULL;
    ASSERT_EQ(staging_batch_get(c.s, "ws", "e1", &r, NULL), ERR_NOTFOUND);
    /* the id can be used again */
    ASSERT_OK(upload_file(&c, "e1", "a.jpg", j, jl));
    ASSERT_EQ(count(&c, "e1", NULL), 1);
    free(key);
    free(j);
    ctx_close(&c);
}

TEST(references_dedup_webhooks_and_ssrf)
{
    struct ctx c = {0};
    ctx_open(&c, NULL);
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    struct recv_srv files, hooks;
    static const int ok200[] = {200};
    recv_start(&files, ok200, 1);
    files.body = j;
    files.body_len = jl;
    recv_start(&hooks, ok200, 1);
    struct store_outbox_opts oo;
    store_outbox_opts_default(&oo);
    oo.backoff_ms = 50;
    ASSERT_OK(store_outbox_start(c.st, &oo));

    char body[1024];
    int bl = snprintf(body, sizeof body,
                      "{\"imageReferences\":[{\"name\":\"a.jpg\",\"url\":\"http://127.0.0.1:%d/a.jpg\"},"
                      "{\"name\":\"b.jpg\",\"url\":\"http://127.0.0.1:%d/b.jpg\"},"
                      "{\"name\":\"c.jpg\",\"url\":\"http://10.255.0.1/c.jpg\"}],"
                      "\"ingestId\":\"ing-1\",\"notificationsURL\":\"http://127.0.0.1:%d/hook\","
                      "\"notificationCategories\":[\"ingest-status\",\"files-status\"]}",
                      files.port, files.port, hooks.port);
    json_t *r = NULL;
    ASSERT_OK(staging_ingest_references(c.s, "ws", "refs", "Refs", false, body, (size_t)bl, &r, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "ingestId")), "ing-1");
    ASSERT_EQ(json_array_size(json_object_get(r, "shardIds")), 1);
    char *sid = strdup(json_string_value(json_array_get(json_object_get(r, "shardIds"), 0)));
    ASSERT(!json_is_true(json_object_get(r, "duplicated")));
    json_decref(r);
    /* repeated ingestId: same answer, duplicated, nothing queued */
    ASSERT_OK(staging_ingest_references(c.s, "ws", "refs", "Refs", false, body, (size_t)bl, &r, NULL));
    ASSERT(json_is_true(json_object_get(r, "duplicated")));
    ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(r, "shardIds"), 0)), sid);
    json_decref(r);
    int n = 0;
    ASSERT_OK(staging_fetch_pending(c.s, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(count(&c, "refs", NULL), 2);
    ASSERT_EQ(recv_count(&files), 2); /* the private 10.x address was never contacted */
    json_t *sh = shard0(&c, "refs", 0);
    json_t *failed = json_object_get(json_object_get(sh, "statusMetadata"), "failedFiles");
    ASSERT_EQ(json_array_size(failed), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(failed, 0), "type")), "unsafe-url-detected");
    json_decref(sh);
    /* two webhooks: files-status for the shard, ingest-status at the end */
    ASSERT_EQ(recv_wait(&hooks, 2, 5000), 2);
    int seen_files = 0, seen_ingest = 0;
    for (int i = 0; i < 2; i++) {
        json_t *p = json_loads(hooks.req_body[i], 0, NULL);
        const char *type = json_string_value(json_object_get(json_object_get(p, "notification"), "type"));
        if (!strcmp(type, "ingest-files-status-notification-v1")) {
            seen_files++;
            ASSERT_STR_EQ(json_string_value(json_object_get(p, "shard_id")), sid);
            ASSERT_EQ(json_array_size(json_object_get(json_object_get(p, "notification"), "ingested_files")), 2);
            ASSERT(json_is_true(json_object_get(json_object_get(p, "notification"), "success")));
        } else {
            ASSERT_STR_EQ(type, "ingest-status-notification-v1");
            seen_ingest++;
            ASSERT(json_is_null(json_object_get(p, "shard_id")));
            ASSERT(json_is_true(json_object_get(json_object_get(p, "notification"), "success")));
        }
        ASSERT_STR_EQ(json_string_value(json_object_get(p, "ingest_id")), "ing-1");
        json_decref(p);
    }
    ASSERT_EQ(seen_files, 1);
    ASSERT_EQ(seen_ingest, 1);
    free(sid);

    /* A references file at a private address: the shard fails and the
     * ingest-status webhook says why. */
    bl = snprintf(body, sizeof body,
                  "{\"imageReferencesURL\":\"https://192.168.7.7/refs.jsonl\",\"ingestId\":\"ing-2\","
                  "\"notificationsURL\":\"http://127.0.0.1:%d/hook\"}", hooks.port);
    ASSERT_OK(staging_ingest_references(c.s, "ws", "refs", NULL, false, body, (size_t)bl, &r, NULL));
    json_decref(r);
    ASSERT_OK(staging_fetch_pending(c.s, &n));
    sh = shard0(&c, "refs", 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "unsafe-url-detected");
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusType")), "error");
    json_decref(sh);
    ASSERT_EQ(recv_wait(&hooks, 3, 5000), 3);
    json_t *p = json_loads(hooks.req_body[2], 0, NULL);
    json_t *nt = json_object_get(p, "notification");
    ASSERT_STR_EQ(json_string_value(json_object_get(nt, "type")), "ingest-status-notification-v1");
    ASSERT(json_is_false(json_object_get(nt, "success")));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(nt, "error_details"), "type")),
                  "unsafe-url-detected");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(nt, "error_details"), "reason")),
                  "Untrusted domain found: 192.168.7.7");
    /* key order as COMPAT shows */
    const char *order[] = {"type", "event_id", "ingest_id", "batch_id", "shard_id", "notification",
                           "delivery_attempt"};
    void *it = json_object_iter(p);
    for (int i = 0; i < 7; i++, it = json_object_iter_next(p, it))
        ASSERT_STR_EQ(json_object_iter_key(it), order[i]);
    json_decref(p);

    /* A JSONL references file from an allowed address. */
    char jsonl[512];
    snprintf(jsonl, sizeof jsonl,
             "{\"name\":\"x.jpg\",\"url\":\"http://127.0.0.1:%d/x.jpg\"}\n\nnot json\n"
             "{\"name\":\"y.jpg\",\"url\":\"http://127.0.0.1:%d/y.jpg\"}\n", files.port, files.port);
    /* serve jsonl then images: swap bodies between fetches */
    files.body = jsonl;
    files.body_len = strlen(jsonl);
    bl = snprintf(body, sizeof body, "{\"imageReferencesURL\":\"http://127.0.0.1:%d/r.jsonl\"}", files.port);
    ASSERT_OK(staging_ingest_references(c.s, "ws", "refs2", NULL, false, body, (size_t)bl, &r, NULL));
    json_decref(r);
    ASSERT_OK(staging_fetch_pending(c.s, &n));
    sh = shard0(&c, "refs2", 0);
    /* the images came back as jsonl text: both fail as unsupported, the bad line is reported */
    failed = json_object_get(json_object_get(sh, "statusMetadata"), "failedFiles");
    ASSERT_EQ(json_array_size(failed), 3);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "all-files-failed");
    json_decref(sh);

    /* bad bodies */
    ASSERT_EQ(staging_ingest_references(c.s, "ws", "refs", NULL, false, "[]", 2, &r, NULL), ERR_INVALID);
    ASSERT_EQ(staging_ingest_references(c.s, "ws", "refs", NULL, false, "{}", 2, &r, NULL), ERR_INVALID);
    const char *b2 = "{\"imageReferences\":[{\"name\":\"a/b.jpg\",\"url\":\"http://x/\"}]}";
    ASSERT_EQ(staging_ingest_references(c.s, "ws", "refs", NULL, false, b2, strlen(b2), &r, NULL), ERR_INVALID);
    b2 = "{\"imageReferences\":[{\"name\":\"b.jpg\",\"url\":\"file:///etc/passwd\"}]}";
    ASSERT_EQ(staging_ingest_references(c.s, "ws", "refs", NULL, false, b2, strlen(b2), &r, NULL), ERR_INVALID);
    b2 = "{\"videoReferencesURL\":\"ftp://x/y\"}";
    ASSERT_EQ(staging_ingest_references(c.s, "ws", "refs", NULL, true, b2, strlen(b2), &r, NULL), ERR_INVALID);
    recv_stop(&files);
    recv_stop(&hooks);
    free(j);
    ctx_close(&c);
}

TEST(references_redirect_to_private_address_refused)
{
    struct ctx c = {0};
    ctx_open(&c, NULL); /* allow-list: 127.0.0.1 only */
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    struct recv_srv inner, outer;
    static const int ok200[] = {200}, found302[] = {302};
    recv_start_addr(&inner, ok200, 1, "127.0.0.2");
    inner.body = j;
    inner.body_len = jl;
    recv_start(&outer, found302, 1);
    char loc[128];
    snprintf(loc, sizeof loc, "Location: http://127.0.0.2:%d/a.jpg\r\n", inner.port);
    outer.extra_header = loc;
    char body[512];
    int bl = snprintf(body, sizeof body,
                      "{\"imageReferences\":[{\"name\":\"a.jpg\",\"url\":\"http://127.0.0.1:%d/a.jpg\"},"
                      "{\"name\":\"b.jpg\",\"url\":\"http://127.0.0.2:%d/b.jpg\"}]}", outer.port, inner.port);
    json_t *r = NULL;
    ASSERT_OK(staging_ingest_references(c.s, "ws", "rd", NULL, false, body, (size_t)bl, &r, NULL));
    json_decref(r);
    ASSERT_OK(staging_fetch_pending(c.s, NULL));
    ASSERT_EQ(recv_count(&outer), 1);
    ASSERT_EQ(recv_count(&inner), 0); /* neither the redirect nor the direct URL reached it */
    ASSERT_EQ(count(&c, "rd", NULL), 0);
    json_t *sh = shard0(&c, "rd", 0);
    json_t *failed = json_object_get(json_object_get(sh, "statusMetadata"), "failedFiles");
    ASSERT_EQ(json_array_size(failed), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(failed, 0), "type")), "download-failed");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(failed, 1), "type")), "unsafe-url-detected");
    json_decref(sh);
    recv_stop(&inner);
    recv_stop(&outer);
    free(j);
    ctx_close(&c);
}

struct scan_seen {
    const uint8_t *base;
    int n;
    bool in_place;
    int64_t last_off;
};
static int scan_img(void *ud, int index, const char *name, const void *data, size_t len, int64_t offset,
                    const char *mime)
{
    struct scan_seen *sc = ud;
    (void)index, (void)name, (void)len, (void)mime;
    sc->in_place &= (const uint8_t *)data == sc->base + offset;
    sc->last_off = offset;
    sc->n++;
    return 0;
}
static void scan_rej(void *ud, const char *name, const char *type, const char *reason)
{
    (void)ud, (void)name, (void)type, (void)reason;
}

/* The scan copies nothing: each entry is reported in place with its
 * offset, also behind a pax extended header (a long name),
 * and an entry whose header claims more bytes than the archive has is a
 * corrupt archive. */
TEST(tar_scan_entries_in_place)
{
    struct tarb t;
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    char longname[200];
    memset(longname, 'a', 180);
    strcpy(longname + 180, ".jpg");
    tar_begin(&t, 1 << 20);
    tar_add(&t, "one.jpg", AE_IFREG, j, jl);
    tar_add(&t, longname, AE_IFREG, j, jl); /* a pax header first */
    tar_add(&t, "empty.jpg", AE_IFREG, "", 0);
    tar_add(&t, "two.jpg", AE_IFREG, j, jl);
    tar_end(&t);
    struct staging__tar_limits lim = {1 << 20, 500};
    struct scan_seen sc = {t.buf, 0, true, -1};
    struct staging__tar_cb cb = {scan_img, scan_rej, &sc};
    char *iid = NULL, *url = NULL;
    const char *why = NULL;
    int n = -1;
    ASSERT_OK(staging__tar_scan(t.buf, t.used, &lim, &cb, &n, &iid, &url, &why));
    ASSERT_EQ(n, 3);
    ASSERT_EQ(sc.n, 3);
    ASSERT(sc.in_place);
    /* cut in the middle of the last image: refused as before */
    size_t cut = (size_t)sc.last_off + jl / 2;
    sc = (struct scan_seen){t.buf, 0, true, -1};
    ASSERT_EQ(staging__tar_scan(t.buf, cut, &lim, &cb, &n, &iid, &url, &why), ERR_PARSE);
    ASSERT_STR_EQ(why, "corrupt-archive");
    free(iid);
    free(url);
    free(j);
    free(t.buf);
}

TEST(tmp_sweep_removes_only_old_files)
{
    struct ctx c = {0};
    ctx_open(&c, NULL);
    char *p1, *p2;
    int fd1, fd2;
    ASSERT_OK(store_tmp_create(c.st, &p1, &fd1));
    ASSERT_OK(store_tmp_create(c.st, &p2, &fd2));
    close(fd1);
    close(fd2);
    struct timespec old[2] = {{time(NULL) - 3 * 86400, 0}, {time(NULL) - 3 * 86400, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, p1, old, 0), 0);
    ASSERT_EQ(store_tmp_sweep(c.st, 86400LL * 1000), 1);
    ASSERT(access(p1, F_OK) != 0);
    ASSERT(access(p2, F_OK) == 0);
    free(p1);
    free(p2);
    ctx_close(&c);
}

TEST(video_upload_rejects_non_video)
{
    struct ctx c = {0};
    ctx_open(&c, NULL);
    json_t *r = NULL;
    struct surl u;
    struct staging_put *p;
    ASSERT_EQ(staging_upload_video_url(c.s, "ws", "v", NULL, "../a.mp4", &r, NULL), ERR_INVALID);
    ASSERT_OK(staging_upload_video_url(c.s, "ws", "v", NULL, "a.mp4", &r, NULL));
    json_t *d = json_object_get(r, "signedURLDetails");
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "method")), "PUT");
    ASSERT(json_is_object(json_object_get(d, "extensionHeaders")));
    surl_parse(json_string_value(json_object_get(d, "uploadURL")), &u);
    json_decref(r);
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    ASSERT_OK(staging_put_open(c.s, u.key, u.m, u.e, u.l, u.sig, (int64_t)jl, &p, NULL));
    ASSERT_OK(staging_put_write(p, j, jl, NULL));
    ASSERT_EQ(staging_put_finish(p, NULL), ERR_INVALID);
    int fd;
    int64_t sz;
    ASSERT_EQ(store_blob_open(c.st, u.key, &fd, &sz), ERR_NOTFOUND);
    ASSERT_EQ(count(&c, "v", NULL), 0);
    surl_free(&u);
    free(j);
    ctx_close(&c);
}

#define SAMPLE_MP4 "/usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4"

TEST(video_upload_probe_records_item)
{
    char *data;
    size_t len;
    if (file_read_all(SAMPLE_MP4, 64 << 20, &data, &len) < 0) {
        fprintf(stderr, "  (skipped: %s not installed)\n", SAMPLE_MP4);
        return;
    }
    struct ctx c = {0};
    ctx_open(&c, NULL);
    json_t *r = NULL;
    struct surl u;
    struct staging_put *p;
    ASSERT_OK(staging_upload_video_url(c.s, "ws", "vid", "Videos", "clip.mp4", &r, NULL));
    surl_parse(json_string_value(json_object_get(json_object_get(r, "signedURLDetails"), "uploadURL")), &u);
    json_decref(r);
    ASSERT_OK(staging_put_open(c.s, u.key, u.m, u.e, u.l, u.sig, (int64_t)len, &p, NULL));
    ASSERT_OK(staging_put_write(p, data, len, NULL));
    ASSERT_OK(staging_put_finish(p, NULL));
    ASSERT_EQ(count(&c, "vid", NULL), 1);
    ASSERT_OK(staging_list_items(c.s, "ws", "vid", NULL, 10, NULL, &r, NULL));
    json_t *f = json_array_get(json_object_get(r, "filesMetadata"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(f, "fileName")), "clip.mp4");
    ASSERT_STR_EQ(json_string_value(json_object_get(f, "contentType")), "video");
    json_decref(r);
    ASSERT_OK(staging_batch_get(c.s, "ws", "vid", &r, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "batch"), "batchContentType")), "videos");
    json_decref(r);
    /* an image next to it makes the batch mixed */
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    ASSERT_OK(upload_file(&c, "vid", "a.jpg", j, jl));
    ASSERT_OK(staging_batch_get(c.s, "ws", "vid", &r, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "batch"), "batchContentType")), "mixed");
    json_decref(r);
    int fd;
    int64_t st0, sz;
    const char *mime;
    ASSERT_OK(staging_get_open(c.s, u.key, "GET", u.e, "0", NULL, NULL, u.sig, &fd, &st0, &sz, &mime, NULL) == ERR_AUTH
                  ? 0
                  : -1);
    surl_free(&u);
    free(j);
    free(data);
    ctx_close(&c);
}

/* Image sidecars "<image>.json": staged in the metadata part (not images:
 * the batch content type, the images-only page and per-part counts), bad
 * ones rejected with a reason; lookup by name; single uploads too. */
TEST(tar_sidecars_metadata_part)
{
    struct ctx c = {0};
    ctx_open(&c, NULL);
    size_t jl;
    uint8_t *j = jpeg(&jl, 8);
    char *big = xmalloc(STAGING_SIDECAR_MAX + 100);
    memset(big, ' ', STAGING_SIDECAR_MAX + 100);
    memcpy(big, "{\"k\":1}", 7);
    struct tarb t;
    tar_begin(&t, 1 << 20);
    tar_add(&t, "a.jpg", AE_IFREG, j, jl);
    tar_add(&t, "a.jpg.json", AE_IFREG, "{\"tag\":\"A\"}", 11);
    tar_add(&t, "b.jpg", AE_IFREG, j, jl);
    tar_add(&t, "b.jpg.json", AE_IFREG, "[1,2]", 5);
    tar_add(&t, "c.jpg.json", AE_IFREG, "{not json", 9);
    tar_add(&t, "d.jpg.json", AE_IFREG, big, STAGING_SIDECAR_MAX + 100);
    tar_add(&t, "c.jpg", AE_IFREG, j, jl);
    tar_add(&t, "c.jpg.json", AE_IFREG, "{\"tag\":\"C\"}", 11);
    tar_end(&t);
    ASSERT_OK(put_shard(&c, "m", t.buf, t.used, NULL));
    free(t.buf);
    ASSERT_OK(staging_index_pending(c.s, NULL));
    ASSERT_EQ(count(&c, "m", NULL), 5);
    ASSERT_EQ(count(&c, "m", STAGING_METADATA_PART), 2);
    json_t *sh = shard0(&c, "m", 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(sh, "statusName")), "ingested");
    ASSERT_EQ(json_integer_value(json_object_get(sh, "shardObjectsCount")), 5);
    json_t *failed = json_object_get(json_object_get(sh, "statusMetadata"), "failedFiles");
    ASSERT_EQ(json_array_size(failed), 3);
    const char *want[] = {"b.jpg.json", "c.jpg.json", "d.jpg.json"};
    for (int i = 0; i < 3; i++) {
        json_t *f = json_array_get(failed, (size_t)i);
        ASSERT_STR_EQ(json_string_value(json_object_get(f, "file_name")), want[i]);
        ASSERT_STR_EQ(json_string_value(json_object_get(f, "type")), "invalid-metadata-file");
    }
    json_decref(sh);
    /* still an image batch; the metadata part is listed */
    json_t *r = NULL;
    ASSERT_OK(staging_batch_get(c.s, "ws", "m", &r, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "batch"), "batchContentType")), "images");
    json_decref(r);
    ASSERT_OK(staging_batch_parts(c.s, "ws", "m", &r, NULL));
    json_t *parts = json_object_get(r, "batchParts");
    ASSERT_EQ(json_array_size(parts), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(parts, 0), "partName")), "metadata");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(parts, 0), "contentType")), "metadata");
    json_decref(r);
    ASSERT_OK(staging_list_items(c.s, "ws", "m", STAGING_METADATA_PART, 10, NULL, &r, NULL));
    json_t *fm = json_object_get(r, "filesMetadata");
    ASSERT_EQ(json_array_size(fm), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(fm, 0), "fileName")), "a.jpg.json");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(fm, 0), "contentType")), "metadata");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(fm, 1), "partName")), "metadata");
    json_decref(r);
    /* the images-only page skips sidecars; all items with part NULL */
    struct staging_item *it = NULL;
    int n = 0;
    ASSERT_OK(staging_items_page_media(c.s, "ws", "m", NULL, 0, 10, &it, &n, NULL));
    ASSERT_EQ(n, 3);
    for (int i = 0; i < n; i++)
        ASSERT_STR_EQ(it[i].content_type, "image");
    staging_items_free(it, n);
    ASSERT_OK(staging_items_page(c.s, "ws", "m", NULL, 0, 10, &it, &n, NULL));
    ASSERT_EQ(n, 5);
    staging_items_free(it, n);
    /* lookup by name */
    struct staging_item sc;
    ASSERT_OK(staging_item_find(c.s, "ws", "m", STAGING_METADATA_PART, "c.jpg.json", &sc, NULL));
    ASSERT_STR_EQ(sc.mime, "application/json");
    ASSERT_EQ(sc.size, 11);
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(store_blob_read_at(c.st, sc.blob_key, sc.offset, sc.size, 1000, &data, &len));
    ASSERT_EQ(len, 11);
    ASSERT(memcmp(data, "{\"tag\":\"C\"}", 11) == 0);
    free(data);
    staging_item_release(&sc);
    ASSERT_EQ(staging_item_find(c.s, "ws", "m", STAGING_METADATA_PART, "b.jpg.json", &sc, NULL), ERR_NOTFOUND);
    ASSERT_EQ(staging_item_find(c.s, "ws", "m", STAGING_METADATA_PART, "a.jpg", &sc, NULL), ERR_NOTFOUND);
    ASSERT_OK(staging_item_find(c.s, "ws", "m", NULL, "a.jpg", &sc, NULL));
    ASSERT_STR_EQ(sc.content_type, "image");
    staging_item_release(&sc);
    ASSERT_EQ(staging_item_find(c.s, "ws", "nope", NULL, "a.jpg", &sc, NULL), ERR_NOTFOUND);
    /* single uploads: a sidecar first keeps the batch an image batch */
    ASSERT_OK(upload_file(&c, "single", "x.png.json", "{\"tag\":\"X\"}", 11));
    ASSERT_OK(upload_file(&c, "single", "x.png", j, jl));
    ASSERT_EQ(upload_file(&c, "single", "y.png.json", "\"str\"", 5), ERR_INVALID);
    ASSERT_EQ(upload_file(&c, "single", "z.png.json", big, STAGING_SIDECAR_MAX + 100), ERR_LIMIT);
    ASSERT_EQ(count(&c, "single", NULL), 2);
    ASSERT_EQ(count(&c, "single", STAGING_METADATA_PART), 1);
    ASSERT_OK(staging_batch_get(c.s, "ws", "single", &r, NULL));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "batch"), "batchContentType")), "images");
    json_decref(r);
    free(big);
    free(j);
    ctx_close(&c);
}

TEST_MAIN()
