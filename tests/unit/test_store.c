/* Unit tests of src/store: migrations, keys, workflows, blobs, signed URLs,
 * network guard, outbox delivery with retries. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>

#include <pthread.h>

#include "base/base.h"
#include "store/db.h"
#include "store/store.h"
#include "t.h"
#include "t_pg.h"
#include "test_store_recv.h"

static char *tmpdir(void)
{
    char *d = strdup("/tmp/vbatch-store-XXXXXX");
    if (!mkdtemp(d))
        abort();
    return d;
}

static bool file_exists_in(const char *dir, const char *name)
{
    char *p = xasprintf("%s/%s", dir, name);
    struct stat sb;
    bool ok = stat(p, &sb) == 0;
    free(p);
    return ok;
}

static struct store *open_tmp(void)
{
    struct store *st = NULL;
    char *d = tmpdir();
    if (t_open(d, &st) < 0)
        T_FAIL("store_open failed");
    free(d);
    return st;
}

TEST(open_twice_and_migrate_idempotent)
{
    char *d = tmpdir();
    struct store *st = NULL;
    ASSERT_OK(t_open(d, &st));
    static const char *const m[] = {"CREATE TABLE jobs_x(id INTEGER PRIMARY KEY, v TEXT)",
                                    "ALTER TABLE jobs_x ADD COLUMN w INTEGER"};
    ASSERT_OK(store_migrate(st, "jobs", m, 1));
    ASSERT_OK(store_migrate(st, "jobs", m, 2));
    ASSERT_OK(store_migrate(st, "jobs", m, 2));
    store_close(st);
    ASSERT_OK(t_open(d, &st));
    ASSERT_OK(store_migrate(st, "jobs", m, 2));
    sqlite3 *db = store_db_acquire(st);
    ASSERT_OK(store_exec(db, "INSERT INTO jobs_x(v, w) VALUES('a', 1)"));
    sqlite3_stmt *q;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT version FROM schema_versions WHERE component='jobs'", -1, &q, NULL), 0);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(q, 0), 2);
    sqlite3_finalize(q);
    store_db_release(st, db);
    /* A broken migration fails cleanly and records nothing. */
    static const char *const bad[] = {"CREATE TABLE jobs_x(id INTEGER PRIMARY KEY, v TEXT)",
                                      "ALTER TABLE jobs_x ADD COLUMN w INTEGER", "THIS IS NOT SQL"};
    ASSERT(store_migrate(st, "jobs", bad, 3) < 0);
    store_close(st);
    free(d);
}

BOTH(workspace_keys)
{
    struct store *st = open_tmp();
    char key[STORE_KEY_LEN + 1], key2[STORE_KEY_LEN + 1], ws[STORE_WS_MAX + 1];
    bool created;
    ASSERT_OK(store_workspace_ensure_default(st, "default", &created, key));
    ASSERT(created);
    ASSERT_EQ(strlen(key), STORE_KEY_LEN);
    ASSERT_OK(store_workspace_ensure_default(st, "default", &created, key2));
    ASSERT(!created);
    ASSERT_STR_EQ(key2, "");
    ASSERT_OK(store_key_verify(st, key, ws));
    ASSERT_STR_EQ(ws, "default");
    ASSERT_OK(store_workspace_create(st, "other", key2));
    ASSERT_EQ(store_workspace_create(st, "other", key2), ERR_EXISTS);
    ASSERT_EQ(store_workspace_create(st, "Bad Name", key2), ERR_INVALID);
    ASSERT_OK(store_key_verify(st, key2, ws));
    ASSERT_STR_EQ(ws, "other");
    char tampered[STORE_KEY_LEN + 1];
    strcpy(tampered, key);
    tampered[STORE_KEY_LEN - 1] = tampered[STORE_KEY_LEN - 1] == 'a' ? 'b' : 'a';
    ASSERT_EQ(store_key_verify(st, tampered, ws), ERR_AUTH);
    ASSERT_EQ(store_key_verify(st, "", ws), ERR_AUTH);
    ASSERT_EQ(store_key_verify(st, NULL, ws), ERR_AUTH);
    ASSERT_EQ(store_key_create(st, "nope", key2), ERR_NOTFOUND);
    ASSERT_OK(store_key_create(st, "default", key2));
    ASSERT_OK(store_key_verify(st, key2, ws));
    ASSERT_STR_EQ(ws, "default");
    ASSERT_OK(store_workspace_exists(st, "default"));
    ASSERT_EQ(store_workspace_exists(st, "zzz"), ERR_NOTFOUND);
    /* The clear key is nowhere in the database (SQLite: its file). */
    if (t_db) {
        char *sql = xasprintf("SELECT count(*) FROM api_keys WHERE position('%.20s' in encode(key_hash, 'escape')) > 0"
                              " OR position('%.20s' in key_id) > 0", key + 11, key + 11);
        ASSERT_EQ(t_sql_int(st, sql), 0);
        ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM api_keys WHERE length(key_hash) = 32"), 3);
        free(sql);
        store_close(st);
        return;
    }
    char *path = xasprintf("%s/vbatch.db", store_data_dir(st));
    store_close(st);
    char *data;
    size_t len;
    ASSERT_OK(file_read_all(path, 1 << 24, &data, &len));
    ASSERT(memmem(data, len, key + 11, 20) == NULL);
    free(data);
    free(path);
}

/* A key's last_used_ms (0: never). */
static int64_t key_last_used(struct store *st, const char *key)
{
    char *sql = xasprintf("SELECT COALESCE(last_used_ms, 0) FROM api_keys WHERE key_id='%.8s'", key + 3);
    int64_t v = t_sql_int(st, sql);
    free(sql);
    return v;
}

/* The entry of key id in a store_key_list array (NULL if absent); keys
 * made in the same millisecond are listed in key id order, so tests look
 * them up by id. */
static json_t *key_entry(json_t *l, const char *id)
{
    size_t i;
    json_t *k;
    json_array_foreach(l, i, k)
    {
        if (!strcmp(json_string_value(json_object_get(k, "keyId")), id))
            return k;
    }
    return NULL;
}

static bool json_has(const json_t *j, const char *needle)
{
    char *txt = json_dumps(j, 0);
    bool found = txt && strstr(txt, needle) != NULL;
    free(txt);
    return found;
}

BOTH(keys_add_list_revoke)
{
    struct store *st = open_tmp();
    char k1[STORE_KEY_LEN + 1], k2[STORE_KEY_LEN + 1], ko[STORE_KEY_LEN + 1], ws[STORE_WS_MAX + 1];
    char id1[STORE_KEY_ID_LEN + 1], id2[STORE_KEY_ID_LEN + 1], ido[STORE_KEY_ID_LEN + 1];
    ASSERT_OK(store_workspace_create(st, "alpha", k1));
    ASSERT_OK(store_key_add(st, "alpha", "ci runner", k2));
    ASSERT_OK(store_workspace_create(st, "beta", ko));
    ASSERT_EQ(store_key_add(st, "nope", NULL, ws), ERR_NOTFOUND);
    ASSERT_EQ(store_key_add(st, "alpha", "bad\nname", ws), ERR_INVALID);
    snprintf(id1, sizeof id1, "%.8s", k1 + 3);
    snprintf(id2, sizeof id2, "%.8s", k2 + 3);
    snprintf(ido, sizeof ido, "%.8s", ko + 3);

    json_t *l = NULL;
    ASSERT_OK(store_key_list(st, "alpha", &l));
    ASSERT_EQ(json_array_size(l), 2);
    ASSERT(key_entry(l, id1) && key_entry(l, id2));
    ASSERT_STR_EQ(json_string_value(json_object_get(key_entry(l, id1), "name")), "");
    ASSERT_STR_EQ(json_string_value(json_object_get(key_entry(l, id2), "name")), "ci runner");
    ASSERT(json_is_null(json_object_get(key_entry(l, id1), "lastUsedAt")));
    ASSERT(json_is_null(json_object_get(key_entry(l, id1), "revokedAt")));
    ASSERT(json_is_true(json_object_get(key_entry(l, id1), "active")));
    /* never a clear key, never another workspace's key */
    ASSERT(!json_has(l, k1) && !json_has(l, k2) && !json_has(l, k1 + 11) && !json_has(l, k2 + 11));
    ASSERT(!json_has(l, ido));
    json_decref(l);
    ASSERT_OK(store_key_list(st, "nope", &l));
    ASSERT_EQ(json_array_size(l), 0);
    json_decref(l);

    /* another workspace's key: not found, and it still works */
    bool was = true;
    ASSERT_EQ(store_key_revoke(st, "alpha", ido, &was), ERR_NOTFOUND);
    ASSERT(!was);
    ASSERT_OK(store_key_verify(st, ko, ws));
    ASSERT_STR_EQ(ws, "beta");
    ASSERT_EQ(store_key_revoke(st, "alpha", "short", NULL), ERR_INVALID);
    ASSERT_EQ(store_key_revoke(st, "alpha", "ABCDEFGH", NULL), ERR_INVALID);

    ASSERT_OK(store_key_verify(st, k1, ws)); /* cached now */
    ASSERT_OK(store_key_verify(st, k1, ws));
    ASSERT_OK(store_key_revoke(st, "alpha", id1, &was));
    ASSERT(was);
    ASSERT_EQ(store_key_verify(st, k1, ws), ERR_AUTH); /* at once on this handle */
    ASSERT_OK(store_key_verify(st, k2, ws));
    ASSERT_STR_EQ(ws, "alpha");
    ASSERT_OK(store_key_revoke(st, "alpha", id1, &was)); /* again: a no-op */
    ASSERT(!was);
    ASSERT_OK(store_key_list(st, "alpha", &l));
    ASSERT(json_is_string(json_object_get(key_entry(l, id1), "revokedAt")));
    ASSERT(json_is_false(json_object_get(key_entry(l, id1), "active")));
    ASSERT(json_is_true(json_object_get(key_entry(l, id2), "active")));
    json_decref(l);
    /* still revoked after a restart */
    char *dir = xstrdup(store_data_dir(st));
    store_close(st);
    ASSERT_OK(t_open(dir, &st));
    ASSERT_EQ(store_key_verify(st, k1, ws), ERR_AUTH);
    ASSERT_OK(store_key_verify(st, k2, ws));
    store_close(st);
    free(dir);
}

/* Two store handles on one database are two processes: a key verified
 * (and cached) by the second is refused by it within a second of its
 * revocation by the first. */
BOTH(keys_revocation_reaches_other_process)
{
    char *d1 = tmpdir(), *d2 = tmpdir();
    struct store *a = NULL, *b = NULL;
    char key[STORE_KEY_LEN + 1], other[STORE_KEY_LEN + 1], id[STORE_KEY_ID_LEN + 1], ws[STORE_WS_MAX + 1];
    ASSERT_OK(t_open(d1, &a));
    if (t_db) {
        ASSERT_OK(t_open(d2, &b));
    } else { /* SQLite: the same database file from another data folder */
        char *path = xasprintf("%s/vbatch.db", d1);
        struct err e = ERR_INIT;
        ASSERT_OK(store_open_ex(d2, path, &b, &e));
        free(path);
    }
    ASSERT_OK(store_workspace_create(a, "alpha", key));
    ASSERT_OK(store_key_add(a, "alpha", NULL, other));
    snprintf(id, sizeof id, "%.8s", key + 3);
    for (int i = 0; i < 3; i++) /* verified and cached by b */
        ASSERT_OK(store_key_verify(b, key, ws));
    ASSERT_OK(store_key_verify(b, other, ws));
    int64_t t0 = time_mono_ms();
    ASSERT_OK(store_key_revoke(a, "alpha", id, NULL));
    int rc;
    while ((rc = store_key_verify(b, key, ws)) == 0 && time_mono_ms() - t0 < 3000)
        usleep(10 * 1000);
    int64_t dt = time_mono_ms() - t0;
    ASSERT_EQ(rc, ERR_AUTH);
    if (dt >= 1000)
        T_FAIL("the revoked key still worked on the other handle after %lld ms", (long long)dt);
    ASSERT_OK(store_key_verify(b, other, ws)); /* the other key still works there */
    store_close(a);
    store_close(b);
    free(d1);
    free(d2);
}

/* Last use: recorded by the first verification, then at most once per
 * touch interval, never once per request. */
BOTH(keys_last_use)
{
    struct store *st = open_tmp();
    char key[STORE_KEY_LEN + 1], ws[STORE_WS_MAX + 1];
    ASSERT_OK(store_workspace_create(st, "alpha", key));
    ASSERT_EQ(key_last_used(st, key), 0);
    int64_t t0 = time_now_ms();
    ASSERT_OK(store_key_verify(st, key, ws));
    int64_t lu = key_last_used(st, key);
    ASSERT(lu >= t0 && lu <= time_now_ms());
    json_t *l = NULL;
    ASSERT_OK(store_key_list(st, "alpha", &l));
    ASSERT(json_is_string(json_object_get(json_array_get(l, 0), "lastUsedAt")));
    json_decref(l);
    /* within the interval: no write (the row keeps an old value set here) */
    char *sql = xasprintf("UPDATE api_keys SET last_used_ms=1000 WHERE key_id='%.8s'", key + 3);
    t_sql_int(st, sql);
    for (int i = 0; i < 50; i++)
        ASSERT_OK(store_key_verify(st, key, ws));
    ASSERT_EQ(key_last_used(st, key), 1000);
    /* once the interval has passed: written again */
    store_key_touch_interval_set(st, 0);
    ASSERT_OK(store_key_verify(st, key, ws));
    ASSERT(key_last_used(st, key) >= t0);
    free(sql);
    store_close(st);
}

BOTH(workflows)
{
    struct store *st = open_tmp();
    char *def = NULL;
    json_t *list = NULL;
    ASSERT_EQ(store_workflow_get(st, "ws", "wf", &def), ERR_NOTFOUND);
    ASSERT_OK(store_workflow_put(st, "ws", "wf", "{\"a\":1}"));
    ASSERT_OK(store_workflow_put(st, "ws", "wf", "{\"a\":2}"));
    ASSERT_OK(store_workflow_put(st, "ws", "a-wf", "{}"));
    ASSERT_OK(store_workflow_put(st, "ws2", "wf", "{}"));
    ASSERT_EQ(store_workflow_put(st, "ws", "Bad/Id", "{}"), ERR_INVALID);
    ASSERT_OK(store_workflow_get(st, "ws", "wf", &def));
    ASSERT_STR_EQ(def, "{\"a\":2}");
    free(def);
    ASSERT_OK(store_workflow_list(st, "ws", &list));
    ASSERT_EQ(json_array_size(list), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(list, 0), "workflowId")), "a-wf");
    json_decref(list);
    ASSERT_OK(store_workflow_delete(st, "ws", "wf"));
    ASSERT_EQ(store_workflow_delete(st, "ws", "wf"), ERR_NOTFOUND);
    store_close(st);
}

TEST(blob_keys)
{
    ASSERT(store_blob_key_valid("a"));
    ASSERT(store_blob_key_valid("b/ws/batch/i/x.jpg"));
    ASSERT(store_blob_key_valid("a/.hidden/..x"));
    ASSERT(!store_blob_key_valid(""));
    ASSERT(!store_blob_key_valid("/a"));
    ASSERT(!store_blob_key_valid("a/"));
    ASSERT(!store_blob_key_valid("a//b"));
    ASSERT(!store_blob_key_valid("a/../b"));
    ASSERT(!store_blob_key_valid(".."));
    ASSERT(!store_blob_key_valid("a/./b"));
    ASSERT(!store_blob_key_valid("a b"));
    ASSERT(!store_blob_key_valid("a%2fb"));
    ASSERT(!store_blob_key_valid(NULL));
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ASSERT(!store_blob_key_valid(big));
}

TEST(blob_put_get_delete_writer)
{
    struct store *st = open_tmp();
    int fd;
    int64_t size;
    char *data;
    size_t len;
    ASSERT_OK(store_blob_put(st, "x/y/z.bin", "hello", 5));
    ASSERT_OK(store_blob_open(st, "x/y/z.bin", &fd, &size));
    ASSERT_EQ(size, 5);
    close(fd);
    ASSERT_OK(store_blob_read(st, "x/y/z.bin", 100, &data, &len));
    ASSERT_STR_EQ(data, "hello");
    free(data);
    ASSERT_EQ(store_blob_read(st, "x/y/z.bin", 3, &data, &len) < 0, 1);
    ASSERT_EQ(store_blob_open(st, "x/none", &fd, &size), ERR_NOTFOUND);
    ASSERT_EQ(store_blob_open(st, "../etc/passwd", &fd, &size), ERR_INVALID);

    /* writer: limit enforced, abort leaves nothing (also no temp file) */
    struct store_blob_writer *w;
    ASSERT_OK(store_blob_writer_open(st, "x/w1", 10, &w));
    ASSERT_OK(store_blob_writer_write(w, "12345", 5));
    ASSERT_OK(store_blob_writer_write(w, "12345", 5));
    ASSERT_EQ(store_blob_writer_write(w, "1", 1), ERR_LIMIT);
    store_blob_writer_abort(w);
    ASSERT_EQ(store_blob_open(st, "x/w1", &fd, &size), ERR_NOTFOUND);
    char *tmpd = xasprintf("%s/tmp", store_data_dir(st));
    DIR *d = opendir(tmpd);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        files += e->d_name[0] != '.';
    closedir(d);
    free(tmpd);
    ASSERT_EQ(files, 0);
    ASSERT_OK(store_blob_writer_open(st, "x/w2", 0, &w));
    ASSERT_OK(store_blob_writer_write(w, "abc", 3));
    ASSERT_EQ(store_blob_writer_size(w), 3);
    ASSERT_OK(store_blob_writer_finish(w));
    ASSERT_OK(store_blob_read(st, "x/w2", 100, &data, &len));
    ASSERT_STR_EQ(data, "abc");
    free(data);

    /* put_file from a temp file */
    char *tp;
    ASSERT_OK(store_tmp_create(st, &tp, &fd));
    ASSERT_EQ(write(fd, "qq", 2), 2);
    close(fd);
    ASSERT_OK(store_blob_put_file(st, "x/f", tp));
    ASSERT_EQ(access(tp, F_OK), -1);
    free(tp);

    ASSERT_OK(store_blob_delete(st, "x/w2"));
    ASSERT_OK(store_blob_delete(st, "x/w2"));
    ASSERT_OK(store_blob_delete_prefix(st, "x"));
    ASSERT_EQ(store_blob_open(st, "x/f", &fd, &size), ERR_NOTFOUND);
    ASSERT_EQ(store_blob_open(st, "x/y/z.bin", &fd, &size), ERR_NOTFOUND);
    store_close(st);
}

/* Pull a query value out of a signed path (test helper). */
static char *qv(const char *path, const char *name)
{
    char pat[32];
    snprintf(pat, sizeof pat, "%s=", name);
    const char *p = strstr(path, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    return strndup(p, strcspn(p, "&"));
}

/* Kept mode: the blob in memory while it fits (written to the file from
 * there in 1 MiB O_DIRECT steps and a buffered tail), the same bytes on
 * disk after finish; outgrowing keep_max turns it into an ordinary
 * writer; the limit holds; abort leaves no temp file. */
TEST(blob_writer_kept)
{
    struct store *st = open_tmp();
    size_t n = (5u << 20) / 2 + 12345; /* 2.5 MiB and an unaligned tail */
    uint8_t *src = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        src[i] = (uint8_t)(i * 131 + (i >> 13));
    for (int round = 0; round < 2; round++) {
        /* round 0: kept to the end; round 1: keep_max 1 MiB, spilled */
        struct store_blob_writer *w;
        const char *key = round ? "k/spilled" : "k/kept";
        ASSERT_OK(store_blob_writer_open_kept(st, key, (int64_t)n, round ? (1u << 20) : (3u << 20), &w));
        for (size_t off = 0; off < n;) {
            size_t k = MIN((size_t)100003, n - off);
            ASSERT_OK(store_blob_writer_write(w, src + off, k));
            off += k;
            const uint8_t *kept = store_blob_writer_kept(w);
            if (round == 0 || off <= (1u << 20)) {
                ASSERT(kept != NULL);
                ASSERT_EQ(memcmp(kept, src, off), 0);
            } else {
                ASSERT(kept == NULL);
            }
        }
        ASSERT_EQ(store_blob_writer_write(w, "x", 1), ERR_LIMIT); /* the limit holds in kept mode */
        ASSERT_EQ(store_blob_writer_size(w), (int64_t)n);
        /* what finish still writes: the tail after the last whole MiB */
        store_blob_writer_settle(w);
        ASSERT_EQ(store_blob_writer_unwritten(w), round ? 0 : (int64_t)(n % (1u << 20)));
        ASSERT_OK(store_blob_writer_finish(w));
        char *data = NULL;
        size_t len = 0;
        ASSERT_OK(store_blob_read(st, key, n + 1, &data, &len));
        ASSERT_EQ(len, n);
        ASSERT_EQ(memcmp(data, src, n), 0);
        free(data);
    }
    /* a kept writer aborted after O_DIRECT steps: no blob, no temp file */
    struct store_blob_writer *w;
    ASSERT_OK(store_blob_writer_open_kept(st, "k/aborted", 0, 4u << 20, &w));
    ASSERT_OK(store_blob_writer_write(w, src, n));
    store_blob_writer_abort(w);
    int fd;
    int64_t size;
    ASSERT_EQ(store_blob_open(st, "k/aborted", &fd, &size), ERR_NOTFOUND);
    char *tmpd = xasprintf("%s/tmp", store_data_dir(st));
    DIR *d = opendir(tmpd);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        files += e->d_name[0] != '.';
    closedir(d);
    free(tmpd);
    ASSERT_EQ(files, 0);
    /* an empty kept blob */
    ASSERT_OK(store_blob_writer_open_kept(st, "k/empty", 0, 1u << 20, &w));
    ASSERT(store_blob_writer_kept(w) != NULL);
    ASSERT_OK(store_blob_writer_finish(w));
    ASSERT_OK(store_blob_open(st, "k/empty", &fd, &size));
    close(fd);
    ASSERT_EQ(size, 0);
    free(src);
    store_close(st);
}

/* A blob marked as answered for (staging/commits.c) keeps the mark
 * through finish; others have none. */
TEST(blob_writer_mark)
{
    struct store *st = open_tmp();
    struct store_blob_writer *w;
    int64_t size = -1;
    ASSERT_OK(store_blob_writer_open_kept(st, "b/1/s/marked.tar", 0, 1u << 20, &w));
    ASSERT_OK(store_blob_writer_write(w, "abcdef", 6));
    int rc = store_blob_writer_mark(w);
    ASSERT_OK(store_blob_writer_finish(w));
    if (rc == ERR_UNSUPPORTED) { /* a file system without user xattrs: nothing marked */
        ASSERT_EQ(store_blob_marked(st, "b/1/s/marked.tar", &size), 0);
        store_close(st);
        return;
    }
    ASSERT_OK(rc);
    ASSERT_EQ(store_blob_marked(st, "b/1/s/marked.tar", &size), 1);
    ASSERT_EQ(size, 6);
    ASSERT_OK(store_blob_put(st, "b/1/s/plain.tar", "xyz", 3));
    ASSERT_EQ(store_blob_marked(st, "b/1/s/plain.tar", &size), 0);
    ASSERT_EQ(store_blob_marked(st, "b/1/s/missing.tar", &size), 0);
    ASSERT_EQ(store_blob_marked(st, "../escape", &size), ERR_INVALID);
    store_close(st);
}

TEST(signed_urls)
{
    struct store *st = open_tmp();
    char *path = NULL;
    int64_t limit = -1, exp = time_now_ms() / 1000 + 60;
    ASSERT_OK(store_sign_path(st, "PUT", "b/ws/k.tar", exp, 1000, &path));
    ASSERT(str_has_prefix(path, "/blobs/b/ws/k.tar?method=PUT&expires="));
    char *m = qv(path, "method"), *e = qv(path, "expires"), *l = qv(path, "limit"), *s = qv(path, "signature");
    ASSERT_OK(store_signed_verify(st, "PUT", "b/ws/k.tar", m, e, l, s, &limit));
    ASSERT_EQ(limit, 1000);
    /* wrong method, other key, tampered limit/expiry/signature, missing */
    ASSERT_EQ(store_signed_verify(st, "GET", "b/ws/k.tar", m, e, l, s, NULL), ERR_AUTH);
    ASSERT_EQ(store_signed_verify(st, "PUT", "b/ws/k2.tar", m, e, l, s, NULL), ERR_AUTH);
    ASSERT_EQ(store_signed_verify(st, "PUT", "b/ws/k.tar", m, e, "1001", s, NULL), ERR_AUTH);
    char *e2 = xasprintf("%lld", (long long)exp + 1);
    ASSERT_EQ(store_signed_verify(st, "PUT", "b/ws/k.tar", m, e2, l, s, NULL), ERR_AUTH);
    s[3] = s[3] == 'A' ? 'B' : 'A';
    ASSERT_EQ(store_signed_verify(st, "PUT", "b/ws/k.tar", m, e, l, s, NULL), ERR_AUTH);
    ASSERT_EQ(store_signed_verify(st, "PUT", "b/ws/k.tar", m, e, l, NULL, NULL), ERR_AUTH);
    ASSERT_EQ(store_signed_verify(st, "PUT", "b/ws/k.tar", m, "-5", l, "x", NULL), ERR_AUTH);
    ASSERT_EQ(store_signed_verify(st, "PUT", "../x", m, e, l, "x", NULL), ERR_INVALID);
    free(m), free(e), free(l), free(s), free(e2), free(path);
    /* expired */
    ASSERT_OK(store_sign_path(st, "GET", "b/ws/k.jpg", time_now_ms() / 1000 - 1, 0, &path));
    m = qv(path, "method"), e = qv(path, "expires"), l = qv(path, "limit"), s = qv(path, "signature");
    ASSERT_EQ(store_signed_verify(st, "GET", "b/ws/k.jpg", m, e, l, s, NULL), ERR_AUTH);
    free(m), free(e), free(l), free(s), free(path);
    /* GET verifies for HEAD too; signature differs per installation */
    ASSERT_OK(store_sign_path(st, "GET", "b/ws/k.jpg", exp, 0, &path));
    m = qv(path, "method"), e = qv(path, "expires"), l = qv(path, "limit"), s = qv(path, "signature");
    ASSERT_OK(store_signed_verify(st, "HEAD", "b/ws/k.jpg", m, e, l, s, NULL));
    struct store *st2 = open_tmp();
    ASSERT_EQ(store_signed_verify(st2, "GET", "b/ws/k.jpg", m, e, l, s, NULL), ERR_AUTH);
    store_close(st2);
    free(m), free(e), free(l), free(s), free(path);
    store_close(st);
}

/* ---- the installation secret (store.c, core migration 6) ------------------ */

static void hmac_of(struct store *st, char out[65])
{
    store_secret_hmac_hex(st, "probe", 5, out);
}

static void hmac_with(const uint8_t key[32], char out[65])
{
    uint8_t mac[32];
    hmac_sha256(key, 32, "probe", 5, mac);
    hex_encode(mac, 32, out);
}

static void file_bytes(const char *dir, const char *name, uint8_t out[32])
{
    char *path = xasprintf("%s/%s", dir, name), *data = NULL;
    size_t len = 0;
    ASSERT_OK(file_read_all(path, 64, &data, &len));
    ASSERT_EQ(len, 32);
    memcpy(out, data, 32);
    free(data);
    free(path);
}

/* A SQLite data folder made before the secret moved into the database
 * (DATA/secret, core version 4, no secrets table) keeps its secret: its
 * signed URLs stay valid; the database then holds it, so it survives the
 * file's loss; the file is written back. */
TEST(existing_data_folder_keeps_its_secret)
{
    char *d = tmpdir();
    struct store *st = NULL;
    struct err e = ERR_INIT;
    ASSERT_OK(store_open(d, &st));
    store_close(st);
    /* back to the state of an older vbatch's folder */
    char *dbp = xasprintf("%s/vbatch.db", d);
    struct db *db = NULL;
    ASSERT_OK(db_open(dbp, 1, &db, &e));
    struct db_conn *c = db_acquire(db, &e);
    ASSERT_OK(db_exec(c, "DROP TABLE secrets; UPDATE schema_versions SET version=5 WHERE component='core'", &e));
    db_release(db, c);
    db_close(db);
    uint8_t old[32];
    for (int i = 0; i < 32; i++)
        old[i] = (uint8_t)(i * 37 + 5);
    char *sp = xasprintf("%s/secret", d);
    ASSERT_OK(file_write_atomic(sp, old, 32));
    char want[65], got[65];
    hmac_with(old, want);
    ASSERT_OK(store_open(d, &st));
    hmac_of(st, got);
    ASSERT_STR_EQ(got, want);
    char *path = NULL;
    ASSERT_OK(store_sign_path(st, "GET", "b/1/i/x", time_now_ms() / 1000 + 60, 0, &path));
    store_close(st);
    /* the file is gone: the database still has it */
    ASSERT_OK(unlink(sp));
    ASSERT_OK(store_open(d, &st));
    hmac_of(st, got);
    ASSERT_STR_EQ(got, want);
    char *m = qv(path, "method"), *ex = qv(path, "expires"), *l = qv(path, "limit"), *sg = qv(path, "signature");
    ASSERT_OK(store_signed_verify(st, "GET", "b/1/i/x", m, ex, l, sg, NULL));
    store_close(st);
    uint8_t back[32];
    file_bytes(d, "secret", back);
    ASSERT(memcmp(back, old, 32) == 0);
    free(m), free(ex), free(l), free(sg), free(path), free(sp), free(dbp), free(d);
}

struct open_arg {
    char *dir;
    const char *target;
    struct store *st;
    int rc;
};

static void *open_main(void *p)
{
    struct open_arg *a = p;
    struct err e = ERR_INIT;
    a->rc = store_open_ex(a->dir, a->target, &a->st, &e);
    return NULL;
}

/* Processes with their own data folders on one database (PostgreSQL, or
 * one SQLite file) share one secret, also when they start at the same
 * moment on a fresh database: each one's signed URLs verify on the
 * others, their webhook signatures agree, and each data folder's
 * DATA/secret holds it. */
BOTH(one_secret_per_database)
{
    char *first = tmpdir();
    char *target = t_db ? xstrdup(t_db) : xasprintf("%s/shared.db", first);
    struct open_arg a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct open_arg){.dir = tmpdir(), .target = target};
        pthread_create(&th[i], NULL, open_main, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ASSERT_OK(a[i].rc);
    }
    char h0[65], h[65];
    hmac_of(a[0].st, h0);
    uint8_t f0[32], f[32];
    file_bytes(a[0].dir, "secret", f0);
    char hf[65];
    hmac_with(f0, hf);
    ASSERT_STR_EQ(hf, h0);
    char *path = NULL;
    ASSERT_OK(store_sign_path(a[0].st, "PUT", "b/1/s/x.tar", time_now_ms() / 1000 + 60, 99, &path));
    char *m = qv(path, "method"), *ex = qv(path, "expires"), *l = qv(path, "limit"), *sg = qv(path, "signature");
    for (int i = 1; i < 4; i++) {
        hmac_of(a[i].st, h);
        ASSERT_STR_EQ(h, h0);
        file_bytes(a[i].dir, "secret", f);
        ASSERT(memcmp(f, f0, 32) == 0);
        ASSERT_OK(store_signed_verify(a[i].st, "PUT", "b/1/s/x.tar", m, ex, l, sg, NULL));
    }
    for (int i = 0; i < 4; i++) {
        store_close(a[i].st);
        free(a[i].dir);
    }
    free(m), free(ex), free(l), free(sg), free(path), free(target), free(first);
}

/* --secret-file: 32 bytes or 64 hex digits override the database's; a bad
 * file is refused with its reason. */
TEST(secret_file_given_explicitly)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    char *dir = tmpdir();
    char *hexp = xasprintf("%s/hex", dir), *rawp = xasprintf("%s/raw", dir), *badp = xasprintf("%s/bad", dir);
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(255 - i);
    char hex[65], want[65], got[65];
    hex_encode(key, 32, hex);
    char *hexnl = xasprintf("%s\n", hex);
    ASSERT_OK(file_write_atomic(hexp, hexnl, strlen(hexnl)));
    ASSERT_OK(file_write_atomic(rawp, key, 32));
    ASSERT_OK(file_write_atomic(badp, "short\n", 6));
    hmac_with(key, want);
    hmac_of(st, got);
    ASSERT(strcmp(got, want) != 0);
    ASSERT_OK(store_secret_set_file(st, hexp, &e));
    hmac_of(st, got);
    ASSERT_STR_EQ(got, want);
    ASSERT_OK(store_secret_set_file(st, rawp, &e));
    hmac_of(st, got);
    ASSERT_STR_EQ(got, want);
    uint8_t f[32];
    file_bytes(store_data_dir(st), "secret", f);
    ASSERT(memcmp(f, key, 32) == 0);
    ASSERT(file_exists_in(store_data_dir(st), "secret.old"));
    ASSERT_EQ(store_secret_set_file(st, badp, &e), ERR_INVALID);
    ASSERT(strstr(e.msg, "64 hex digits") != NULL);
    char *missing = xasprintf("%s/none", dir);
    ASSERT(store_secret_set_file(st, missing, &e) < 0);
    store_close(st);
    free(missing), free(hexnl), free(hexp), free(rawp), free(badp), free(dir);
}

/* Processes that open a new data folder at the same moment (several
 * `serve` and `worker` started together on one shared folder) end up with
 * one secret: a URL signed by one verifies on every other.  Each round
 * releases 8 forked children at once on a fresh folder; each reports the
 * HMAC of the same text under its secret. */
TEST(secret_shared_by_processes_opening_at_once)
{
    enum { KIDS = 8, ROUNDS = 3 };
    for (int round = 0; round < ROUNDS; round++) {
        char *d = tmpdir();
        char *data = xasprintf("%s/data", d);
        int go[2], out[2];
        pid_t kids[KIDS];
        ASSERT_OK(pipe(go));
        ASSERT_OK(pipe(out));
        for (int k = 0; k < KIDS; k++) {
            kids[k] = fork();
            ASSERT(kids[k] >= 0);
            if (kids[k] == 0) {
                char c, hex[65];
                struct store *st = NULL;
                close(go[1]);
                if (read(go[0], &c, 1) < 0) /* EOF: all released together */
                    _exit(3);
                if (store_open(data, &st) < 0)
                    _exit(2);
                store_secret_hmac_hex(st, "same text", 9, hex);
                store_close(st);
                _exit(write(out[1], hex, 64) == 64 ? 0 : 4);
            }
        }
        close(go[0]);
        close(out[1]);
        usleep(100 * 1000);
        close(go[1]);
        char all[KIDS * 64 + 1];
        size_t got = 0;
        ssize_t r;
        while (got < sizeof all - 1 && (r = read(out[0], all + got, sizeof all - 1 - got)) > 0)
            got += (size_t)r;
        close(out[0]);
        for (int k = 0; k < KIDS; k++) {
            int ws = 0;
            ASSERT_EQ(waitpid(kids[k], &ws, 0), kids[k]);
            ASSERT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
        }
        ASSERT_EQ(got, KIDS * 64);
        /* ... and it is the one in DATA/secret, which a later open reads */
        struct store *st = NULL;
        char hex[65];
        ASSERT_OK(store_open(data, &st));
        store_secret_hmac_hex(st, "same text", 9, hex);
        store_close(st);
        for (int k = 0; k < KIDS; k++)
            ASSERT(!memcmp(all + 64 * k, hex, 64));
        struct stat sb;
        char *sp = xasprintf("%s/secret", data);
        ASSERT_OK(stat(sp, &sb));
        ASSERT_EQ(sb.st_mode & 0077, 0);
        free(sp);
        free(data);
        free(d);
    }
}

TEST(net_guard)
{
    struct store *st = open_tmp();
    const char *why;
    ASSERT_EQ(store_net_check_url(st, "http://127.0.0.1:9/x", &why), ERR_INVALID);
    ASSERT_EQ(store_net_check_url(st, "http://10.1.2.3/x", &why), ERR_INVALID);
    ASSERT_EQ(store_net_check_url(st, "http://[::1]/x", &why), ERR_INVALID);
    ASSERT_EQ(store_net_check_url(st, "http://169.254.169.254/latest", &why), ERR_INVALID);
    ASSERT_EQ(store_net_check_url(st, "http://[::ffff:127.0.0.1]/", &why), ERR_INVALID);
    ASSERT_EQ(store_net_check_url(st, "file:///etc/passwd", &why), ERR_INVALID);
    ASSERT_EQ(store_net_check_url(st, "gopher://8.8.8.8/", &why), ERR_INVALID);
    ASSERT_EQ(store_net_check_url(st, "not a url", &why), ERR_INVALID);
    ASSERT_OK(store_net_check_url(st, "https://8.8.8.8/x.jsonl", &why));
    ASSERT_EQ(store_net_allow_set(st, "127.0.0.1,bogus"), ERR_PARSE);
    ASSERT_EQ(store_net_allow_set(st, "10.0.0.0/33"), ERR_PARSE);
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1, 10.0.0.0/8"));
    ASSERT_OK(store_net_check_url(st, "http://127.0.0.1:9/x", &why));
    ASSERT_OK(store_net_check_url(st, "http://10.200.0.1/x", &why));
    ASSERT_EQ(store_net_check_url(st, "http://127.0.0.2/x", &why), ERR_INVALID);
    ASSERT_EQ(store_net_check_url(st, "http://192.168.1.1/x", &why), ERR_INVALID);
    store_close(st);
}

BOTH(outbox_retry_backoff_attempts)
{
    struct store *st = open_tmp();
    struct recv_srv r;
    static const int statuses[] = {500, 503, 200};
    recv_start(&r, statuses, 3);
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.backoff_ms = 100;
    o.timeout_ms = 2000;
    int64_t t0 = time_now_ms();
    ASSERT_OK(store_outbox_enqueue(st, url, "myws", NULL, "{\"type\":\"x\",\"n\":1}", true));
    ASSERT_OK(store_outbox_start(st, &o));
    ASSERT_EQ(recv_wait(&r, 3, 5000), 3);
    int64_t dt = time_now_ms() - t0;
    ASSERT_GE(dt, 100 + 200); /* two backoffs: 100 ms then 200 ms */
    int64_t p, dl, f;
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(store_outbox_counts(st, &p, &dl, &f));
        if (dl == 1)
            break;
        usleep(20000);
    }
    ASSERT_EQ(dl, 1);
    ASSERT_EQ(p, 0);
    int64_t purged = -1;
    ASSERT_OK(store_outbox_purge(st, 60000, &purged));
    ASSERT_EQ(purged, 0); /* too recent */
    ASSERT_OK(store_outbox_purge(st, -1000, &purged));
    ASSERT_EQ(purged, 1);
    for (int i = 0; i < 3; i++) {
        json_t *j = json_loads(r.req_body[i], 0, NULL);
        ASSERT(j != NULL);
        ASSERT_EQ(json_integer_value(json_object_get(j, "delivery_attempt")), i + 1);
        ASSERT_EQ(json_integer_value(json_object_get(j, "n")), 1);
        json_decref(j);
        ASSERT(strcasestr(r.req_head[i], "Authorization: Bearer rf_myws") != NULL);
        ASSERT(strcasestr(r.req_head[i], "Content-Type: application/json") != NULL);
        /* signature header matches the body */
        char hex[65];
        store_secret_hmac_hex(st, r.req_body[i], strlen(r.req_body[i]), hex);
        ASSERT(strstr(r.req_head[i], hex) != NULL);
    }
    store_outbox_stop(st);
    recv_stop(&r);
    free(url);
    store_close(st);
}

BOTH(outbox_gives_up_and_survives_restart)
{
    char *d = tmpdir();
    struct store *st = NULL;
    struct recv_srv r;
    static const int statuses[] = {500};
    recv_start(&r, statuses, 1);
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    ASSERT_OK(t_open(d, &st));
    ASSERT_OK(store_outbox_enqueue(st, url, "ws", NULL, "{\"a\":1}", false));
    ASSERT_EQ(store_outbox_enqueue(st, url, "ws", NULL, "[1]", false), ERR_INVALID);
    store_close(st); /* never sent: the row is durable */
    ASSERT_OK(t_open(d, &st));
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.backoff_ms = 20;
    o.max_attempts = 3;
    ASSERT_OK(store_outbox_start(st, &o));
    ASSERT_EQ(recv_wait(&r, 3, 5000), 3);
    int64_t p = 1, dl, f = 0;
    for (int i = 0; i < 100 && f != 1; i++) {
        ASSERT_OK(store_outbox_counts(st, &p, &dl, &f));
        usleep(20000);
    }
    ASSERT_EQ(f, 1);
    usleep(200000);
    ASSERT_EQ(recv_count(&r), 3);
    ASSERT(strcasestr(r.req_head[0], "X-Vbatch-Signature") == NULL);
    store_close(st);
    recv_stop(&r);
    free(url);
    free(d);
}

BOTH(outbox_refuses_loopback_without_allow)
{
    struct store *st = open_tmp();
    struct recv_srv r;
    static const int statuses[] = {200};
    recv_start(&r, statuses, 1);
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.backoff_ms = 10;
    o.max_attempts = 2;
    ASSERT_OK(store_outbox_enqueue(st, url, "ws", NULL, "{}", false));
    ASSERT_OK(store_outbox_start(st, &o));
    int64_t p = 1, dl, f = 0;
    for (int i = 0; i < 200 && f != 1; i++) {
        ASSERT_OK(store_outbox_counts(st, &p, &dl, &f));
        usleep(10000);
    }
    ASSERT_EQ(f, 1);
    ASSERT_EQ(recv_count(&r), 0);
    store_close(st);
    recv_stop(&r);
    free(url);
}

/* ---- concurrent delivery ------------------------------------------------------------- */

/* A receiver that accepts connections and never answers; counts how many
 * are open at once (a connection the sender gave up on is closed). */
struct hang_srv {
    int fd, port;
    pthread_mutex_t mu;
    int conns[64], nconns;
    int accepted, max_open;
    int stop; /* atomic */
    pthread_t th;
};

static void *hang_main(void *arg)
{
    struct hang_srv *h = arg;
    while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
        struct pollfd p[65];
        int n = 0;
        p[n++] = (struct pollfd){.fd = h->fd, .events = POLLIN};
        pthread_mutex_lock(&h->mu);
        for (int i = 0; i < h->nconns; i++)
            p[n++] = (struct pollfd){.fd = h->conns[i], .events = POLLIN};
        pthread_mutex_unlock(&h->mu);
        if (poll(p, (nfds_t)n, 50) <= 0)
            continue;
        pthread_mutex_lock(&h->mu);
        for (int i = n - 1; i >= 1; i--) {
            char buf[4096];
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = recv(p[i].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN)) { /* closed by the sender */
                close(p[i].fd);
                for (int k = 0; k < h->nconns; k++)
                    if (h->conns[k] == p[i].fd)
                        h->conns[k] = h->conns[--h->nconns];
            }
        }
        if ((p[0].revents & POLLIN) && h->nconns < 64) {
            int c = accept(h->fd, NULL, NULL);
            if (c >= 0) {
                h->conns[h->nconns++] = c;
                h->accepted++;
                if (h->nconns > h->max_open)
                    h->max_open = h->nconns;
            }
        }
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

/* Listen only (no thread yet): hang_run() starts it. */
static void hang_listen(struct hang_srv *h)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof a;
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(h->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(h->fd, 64) < 0)
        abort();
    getsockname(h->fd, (struct sockaddr *)&a, &al);
    h->port = ntohs(a.sin_port);
}

static void hang_run(struct hang_srv *h)
{
    pthread_create(&h->th, NULL, hang_main, h);
}

static int hang_get(struct hang_srv *h, int *max_open)
{
    pthread_mutex_lock(&h->mu);
    int n = h->accepted;
    if (max_open)
        *max_open = h->max_open;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void hang_wait(struct hang_srv *h, int n, int timeout_ms)
{
    for (int t = 0; t < timeout_ms && hang_get(h, NULL) < n; t += 10)
        usleep(10000);
    ASSERT_GE(hang_get(h, NULL), n);
}

static void hang_stop(struct hang_srv *h)
{
    __atomic_store_n(&h->stop, 1, __ATOMIC_RELEASE);
    pthread_join(h->th, NULL);
    for (int i = 0; i < h->nconns; i++)
        close(h->conns[i]);
    close(h->fd);
    pthread_mutex_destroy(&h->mu);
}

static json_t *req_json(struct recv_srv *r, int i)
{
    pthread_mutex_lock(&r->mu);
    json_t *j = json_loads(r->req_body[i], 0, NULL);
    pthread_mutex_unlock(&r->mu);
    if (!j)
        T_FAIL("request %d has no JSON body", i);
    return j;
}

static int64_t req_int(struct recv_srv *r, int i, const char *key)
{
    json_t *j = req_json(r, i);
    int64_t v = json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

static int64_t row_int(struct store *st, const char *sql)
{
    return t_sql_int(st, sql);
}

BOTH(outbox_hanging_destination_holds_only_its_slots)
{
    struct store *st = open_tmp();
    struct hang_srv h;
    struct recv_srv r;
    static const int ok[] = {200};
    hang_listen(&h);
    hang_run(&h);
    recv_start(&r, ok, 1);
    char *hurl = xasprintf("http://127.0.0.1:%d/hook", h.port);
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.max_inflight = 4;
    o.max_per_dest = 2;
    o.timeout_ms = 5000;
    /* more rows to the silent receiver than there are slots */
    for (int i = 0; i < 8; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        ASSERT_OK(store_outbox_enqueue(st, hurl, "slow", NULL, body, false));
    }
    ASSERT_OK(store_outbox_start(st, &o));
    hang_wait(&h, 2, 5000);
    usleep(200000);
    int64_t t0 = time_now_ms();
    for (int i = 0; i < 3; i++)
        ASSERT_OK(store_outbox_enqueue(st, url, "fast", NULL, "{\"fast\":1}", false));
    ASSERT_EQ(recv_wait(&r, 3, 5000), 3);
    ASSERT_LT(r.req_ms[2] - t0, 1500); /* not behind a 5 s timeout */
    int max_open = 0;
    ASSERT_EQ(hang_get(&h, &max_open), 2);
    ASSERT_EQ(max_open, 2);
    /* the fast rows were received; wait for their completions to be
     * recorded (under load that can trail the receiver by a moment) */
    for (int i = 0; i < 250 && row_int(st, "SELECT count(*) FROM outbox WHERE workspace='fast' AND state='pending'") > 0; i++)
        usleep(20000);
    ASSERT_EQ(row_int(st, "SELECT count(*) FROM outbox WHERE workspace='fast' AND state='pending'"), 0);
    /* a stop does not wait for the POSTs in flight: they are handed back,
     * due at once, attempt not counted */
    t0 = time_now_ms();
    store_outbox_stop(st);
    ASSERT_LT(time_now_ms() - t0, 1000);
    ASSERT_EQ(row_int(st, "SELECT count(*) FROM outbox WHERE state='pending' AND attempts>0"), 0);
    ASSERT_EQ(row_int(st, "SELECT count(*) FROM outbox WHERE state='pending'"), 8);
    store_close(st);
    hang_stop(&h);
    recv_stop(&r);
    free(hurl);
    free(url);
}

BOTH(outbox_order_key_one_at_a_time)
{
    struct store *st = open_tmp();
    struct recv_srv ra, rb;
    static const int a_script[] = {500, 500, 200};
    static const int b_script[] = {200};
    recv_start(&ra, a_script, 3);
    recv_start(&rb, b_script, 1);
    char *ua = xasprintf("http://127.0.0.1:%d/hook", ra.port);
    char *ub = xasprintf("http://127.0.0.1:%d/hook", rb.port);
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.backoff_ms = 200;
    /* job a: events 1 then 2; job b and an unkeyed row are independent */
    ASSERT_OK(store_outbox_enqueue(st, ua, "ws", "job/a", "{\"ev\":1}", false));
    ASSERT_OK(store_outbox_enqueue(st, ua, "ws", "job/a", "{\"ev\":2}", false));
    ASSERT_OK(store_outbox_enqueue(st, ub, "ws", "job/b", "{\"ev\":3}", false));
    ASSERT_OK(store_outbox_enqueue(st, ub, "ws", NULL, "{\"ev\":4}", false));
    /* the same key in another workspace is another sequence */
    ASSERT_OK(store_outbox_enqueue(st, ub, "other", "job/a", "{\"ev\":5}", false));
    ASSERT_OK(store_outbox_start(st, &o));
    ASSERT_EQ(recv_wait(&ra, 4, 10000), 4);
    ASSERT_EQ(recv_wait(&rb, 3, 2000), 3);
    /* a's receiver: event 1 three times (500, 500, 200), then event 2 */
    int64_t ev[4], att[4];
    for (int i = 0; i < 4; i++) {
        ev[i] = req_int(&ra, i, "ev");
        att[i] = req_int(&ra, i, "delivery_attempt");
    }
    ASSERT_EQ(ev[0], 1);
    ASSERT_EQ(ev[1], 1);
    ASSERT_EQ(ev[2], 1);
    ASSERT_EQ(ev[3], 2);
    ASSERT_EQ(att[2], 3);
    ASSERT_EQ(att[3], 1);
    ASSERT_GE(ra.req_ms[3], ra.done_ms[2]);
    /* the others went out at once, not behind job a's retries */
    for (int i = 0; i < 3; i++)
        ASSERT_LT(rb.req_ms[i], ra.req_ms[1]);
    store_close(st);
    recv_stop(&ra);
    recv_stop(&rb);
    free(ua);
    free(ub);
}

BOTH(outbox_backoff_counts_from_each_failure)
{
    struct store *st = open_tmp();
    struct recv_srv r;
    static const int script[] = {500, 500, 500, 200};
    recv_start(&r, script, 4);
    __atomic_store_n(&r.delay_ms, 400, __ATOMIC_RELEASE); /* each answer takes longer than the first backoff */
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.backoff_ms = 200;
    ASSERT_OK(store_outbox_enqueue(st, url, "ws", NULL, "{}", false));
    ASSERT_OK(store_outbox_start(st, &o));
    ASSERT_EQ(recv_wait(&r, 4, 15000), 4);
    /* next attempt = failure + 200, 400, 800 ms */
    for (int k = 0; k < 3; k++) {
        int64_t gap = r.req_ms[k + 1] - r.done_ms[k], want = 200LL << k;
        if (gap < want - 20 || gap > want + 700)
            T_FAIL("gap after failure %d: %lld ms, want %lld", k + 1, (long long)gap, (long long)want);
    }
    store_close(st);
    recv_stop(&r);
    free(url);
}

BOTH(outbox_two_senders_one_database)
{
    /* two stores on one data folder stand for two processes */
    char *d = tmpdir();
    struct store *a = NULL, *b = NULL;
    struct recv_srv r;
    static const int ok[] = {200};
    recv_start(&r, ok, 1);
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    ASSERT_OK(t_open(d, &a));
    ASSERT_OK(t_open(d, &b));
    ASSERT_OK(store_net_allow_set(a, "127.0.0.1"));
    ASSERT_OK(store_net_allow_set(b, "127.0.0.1"));
    enum { N = 48 };
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        ASSERT_OK(store_outbox_enqueue(i % 2 ? a : b, url, "ws", NULL, body, false));
    }
    ASSERT_OK(store_outbox_start(a, NULL));
    ASSERT_OK(store_outbox_start(b, NULL));
    ASSERT_EQ(recv_wait(&r, N, 15000), N);
    int64_t p = 1, dl = 0, f = 0;
    for (int i = 0; i < 200 && dl != N; i++) {
        ASSERT_OK(store_outbox_counts(a, &p, &dl, &f));
        usleep(10000);
    }
    ASSERT_EQ(dl, N);
    usleep(300000);
    ASSERT_EQ(recv_count(&r), N); /* each row sent once */
    int seen[N] = {0};
    for (int i = 0; i < N; i++) {
        int64_t n = req_int(&r, i, "n");
        ASSERT(n >= 0 && n < N);
        ASSERT_EQ(seen[n]++, 0);
        ASSERT_EQ(req_int(&r, i, "delivery_attempt"), 1);
    }
    store_close(a);
    store_close(b);
    recv_stop(&r);
    free(url);
    free(d);
}

BOTH(outbox_two_senders_order_keys_and_retries)
{
    /* two processes' senders on one database, rows of 4 order keys queued
     * through both, a receiver that fails the first attempts: every event
     * is answered 2xx exactly once, and one key's events are never sent
     * out of order (nor the next before the previous was delivered) */
    char *d = tmpdir();
    struct store *a = NULL, *b = NULL;
    struct recv_srv r;
    static const int script[] = {500, 200, 500, 200, 200, 500, 200};
    recv_start(&r, script, 7);
    r.delay_ms = 5;
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    ASSERT_OK(t_open(d, &a));
    ASSERT_OK(t_open(d, &b));
    ASSERT_OK(store_net_allow_set(a, "127.0.0.1"));
    ASSERT_OK(store_net_allow_set(b, "127.0.0.1"));
    enum { KEYS = 4, PER = 8, N = KEYS * PER };
    for (int i = 0; i < PER; i++)
        for (int k = 0; k < KEYS; k++) {
            char body[48], key[16];
            snprintf(body, sizeof body, "{\"k\":%d,\"n\":%d}", k, i);
            snprintf(key, sizeof key, "job/%d", k);
            ASSERT_OK(store_outbox_enqueue((i + k) % 2 ? a : b, url, "ws", key, body, false));
        }
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.backoff_ms = 50;
    ASSERT_OK(store_outbox_start(a, &o));
    ASSERT_OK(store_outbox_start(b, &o));
    int64_t p = 1, dl = 0, f = 0;
    for (int i = 0; i < 1500 && dl != N; i++) {
        ASSERT_OK(store_outbox_counts(a, &p, &dl, &f));
        usleep(10000);
    }
    ASSERT_EQ(dl, N);
    ASSERT_EQ(f, 0);
    usleep(300000);
    int nreq = recv_count(&r);
    ASSERT_EQ(nreq, N + 3); /* the three scripted failures were retried, nothing else sent twice */
    int ok_seen[KEYS][PER] = {{0}}, last[KEYS] = {-1, -1, -1, -1};
    for (int i = 0; i < nreq; i++) {
        int status = script[i < 7 ? i : 6];
        int k = (int)req_int(&r, i, "k"), n = (int)req_int(&r, i, "n");
        ASSERT(k >= 0 && k < KEYS && n >= 0 && n < PER);
        ASSERT_GE(n, last[k]); /* in order within the key */
        ASSERT(n == last[k] || last[k] < 0 || ok_seen[k][last[k]]); /* the previous one was delivered first */
        last[k] = n;
        if (status == 200)
            ASSERT_EQ(ok_seen[k][n]++, 0);
    }
    for (int k = 0; k < KEYS; k++)
        for (int n = 0; n < PER; n++)
            ASSERT_EQ(ok_seen[k][n], 1);
    store_close(a);
    store_close(b);
    recv_stop(&r);
    free(url);
    free(d);
}

BOTH(outbox_crash_during_post_retried_with_same_payload)
{
    char *d = tmpdir();
    struct hang_srv h;
    hang_listen(&h);
    char *hurl = xasprintf("http://127.0.0.1:%d/hook", h.port);
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.timeout_ms = 1000; /* lease 2 s */
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) { /* the process that dies during its POST */
        struct store *st = NULL;
        if (t_open(d, &st) < 0 || store_net_allow_set(st, "127.0.0.1") < 0 ||
            store_outbox_enqueue(st, hurl, "ws", "job/x", "{\"event_id\":\"ev-1\"}", false) < 0 ||
            store_outbox_start(st, &o) < 0)
            _exit(3);
        for (;;)
            pause();
    }
    hang_run(&h);
    hang_wait(&h, 1, 10000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int64_t killed = time_now_ms();
    struct store *st = NULL;
    ASSERT_OK(t_open(d, &st));
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    /* the row is claimed: attempt 1 counted, leased until next_ms */
    ASSERT_EQ(row_int(st, "SELECT attempts FROM outbox WHERE state='pending'"), 1);
    int64_t lease_end = row_int(st, "SELECT next_ms FROM outbox");
    ASSERT_GT(lease_end, killed);
    /* send the retry somewhere that answers */
    struct recv_srv r;
    static const int ok[] = {200};
    recv_start(&r, ok, 1);
    char *sql = xasprintf("UPDATE outbox SET url='http://127.0.0.1:%d/hook', dest='127.0.0.1:%d'", r.port, r.port);
    (void)t_sql_int(st, sql);
    free(sql);
    ASSERT_OK(store_outbox_start(st, &o));
    ASSERT_EQ(recv_wait(&r, 1, 10000), 1);
    ASSERT_GE(r.req_ms[0], lease_end - 5); /* not before the lease ended */
    json_t *j = req_json(&r, 0);
    ASSERT_EQ(json_integer_value(json_object_get(j, "delivery_attempt")), 2);
    ASSERT(!strcmp(json_string_value(json_object_get(j, "event_id")), "ev-1"));
    json_decref(j);
    usleep(200000);
    ASSERT_EQ(recv_count(&r), 1);
    ASSERT_EQ(row_int(st, "SELECT count(*) FROM outbox WHERE state='delivered'"), 1);
    store_close(st);
    recv_stop(&r);
    hang_stop(&h);
    free(hurl);
    free(d);
}

BOTH(outbox_rows_from_before_dest_column)
{
    /* rows queued before migration 4 have dest '': worked out from url */
    struct store *st = open_tmp();
    struct recv_srv r;
    static const int ok[] = {200};
    recv_start(&r, ok, 1);
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(store_outbox_enqueue(st, url, "ws", NULL, "{\"old\":true}", false));
    (void)t_sql_int(st, "UPDATE outbox SET dest=''");
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.max_per_dest = 1;
    ASSERT_OK(store_outbox_start(st, &o));
    ASSERT_EQ(recv_wait(&r, 3, 5000), 3);
    store_close(st);
    recv_stop(&r);
    free(url);
}

BOTH(outbox_enqueue_once_per_key)
{
    /* webhook_sink's rows: a second enqueue with a key already queued
     * (a retried task) queues nothing, also after a restart */
    char *d = tmpdir();
    struct store *st = NULL;
    bool q = false;
    ASSERT_OK(t_open(d, &st));
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/j/1/0/hook", "http://127.0.0.1:9/h", "ws", "{\"n\":1}", NULL, true, NULL, &q));
    ASSERT(q);
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/j/1/0/hook", "http://127.0.0.1:9/h", "ws", "{\"n\":2}", NULL, true, NULL, &q));
    ASSERT(!q);
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/j/2/0/hook", "http://127.0.0.1:9/h", "ws", "{\"n\":3}", NULL, true, NULL, &q));
    ASSERT(q);
    store_close(st);
    ASSERT_OK(t_open(d, &st));
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/j/2/0/hook", "http://127.0.0.1:9/h", "ws", "{\"n\":4}", NULL, true, NULL, &q));
    ASSERT(!q);
    int64_t p = 0, dl = 0, f = 0;
    ASSERT_OK(store_outbox_counts(st, &p, &dl, &f));
    ASSERT_EQ(p, 2);
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM outbox WHERE payload LIKE '%\"n\":2%' OR payload LIKE '%\"n\":4%'"), 0);
    /* bad arguments: nothing recorded */
    ASSERT_EQ(store_outbox_enqueue_once(st, "", "http://127.0.0.1:9/h", "ws", "{}", NULL, true, NULL, &q), ERR_INVALID);
    ASSERT_EQ(store_outbox_enqueue_once(st, "sink/k", "http://127.0.0.1:9/h", "ws", "[1]", NULL, true, NULL, &q), ERR_INVALID);
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM outbox_once"), 2);
    /* purged with the rows they guarded */
    (void)t_sql_int(st, "UPDATE outbox_once SET created_ms = 0");
    ASSERT_OK(store_outbox_purge(st, 1000, NULL));
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM outbox_once"), 0);
    store_close(st);
    free(d);
}

BOTH(outbox_kind_requests_checked)
{
    /* slack_upload and s3_put descriptions: a bad one is refused before
     * anything is recorded; a good one is queued with its req */
    char *d = tmpdir();
    struct store *st = NULL;
    bool q = false;
    ASSERT_OK(t_open(d, &st));
    const char *u = "http://127.0.0.1:9/api/files.completeUploadExternal";
    const char *bad[] = {
        "{\"kind\":\"ftp\"}",
        "{\"kind\":\"s3_put\",\"data\":\"YQ==\"}",                      /* no key */
        "{\"kind\":\"s3_put\",\"key\":\"a\\nb\",\"data\":\"YQ==\"}",    /* line break */
        "{\"kind\":\"slack_upload\",\"api\":\"http://h\",\"token\":\"t\",\"channel\":\"C\","
        "\"comment\":\"m\",\"files\":[]}",                                        /* no file */
        "{\"kind\":\"slack_upload\",\"api\":\"http://h\",\"token\":\"t\\r\\nX: 1\",\"channel\":\"C\","
        "\"comment\":\"m\",\"files\":[{\"name\":\"a\",\"data\":\"YQ==\"}]}",   /* token injection */
        "{\"kind\":\"slack_upload\",\"api\":\"http://h\",\"token\":\"t\",\"channel\":\"C\","
        "\"comment\":\"m\",\"files\":[{\"name\":\"a\"}]}",                   /* file without bytes */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        ASSERT_EQ(store_outbox_enqueue_once(st, "sink/x", u, "ws", "{}", bad[i], false, NULL, &q), ERR_INVALID);
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM outbox_once"), 0);
    /* 33 files: one over the limit */
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"kind\":\"slack_upload\",\"api\":\"http://h\",\"token\":\"t\",\"channel\":\"C\","
                 "\"comment\":\"m\",\"files\":[");
    for (int i = 0; i < 33; i++)
        buf_printf(&b, "%s{\"name\":\"f%d\",\"data\":\"YQ==\"}", i ? "," : "", i);
    buf_puts(&b, "]}");
    ASSERT_EQ(store_outbox_enqueue_once(st, "sink/x", u, "ws", "{}", b.data, false, NULL, &q), ERR_INVALID);
    buf_release(&b);
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/s3", "s3sink:b/k", "ws", "{}",
                                        "{\"kind\":\"s3_put\",\"key\":\"k\",\"data\":\"YQ==\"}", false, NULL, &q));
    ASSERT(q);
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM outbox WHERE req LIKE '%s3_put%'"), 1);
    store_close(st);
    free(d);
}

BOTH(outbox_s3_rows_only_where_their_bucket_is)
{
    /* an s3_put row (url s3sink:<bucket>/<key>) is claimed only by a
     * sender whose process has that bucket: serve without --sink-s3 leaves
     * the rows of a `vbatch worker --sink-s3` alone (it failed them "no
     * bucket" before), and a process with another bucket never takes them */
    struct store *st = open_tmp();
    struct recv_srv r;
    static const int ok[] = {200};
    recv_start(&r, ok, 1);
    char *url = xasprintf("http://127.0.0.1:%d/hook", r.port);
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    bool q = false;
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/b", "s3sink:bkt/k1", "ws", "{}",
                                        "{\"kind\":\"s3_put\",\"key\":\"k1\",\"data\":\"YQ==\"}", false, NULL, &q));
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/o", "s3sink:other/k2", "ws", "{}",
                                        "{\"kind\":\"s3_put\",\"key\":\"k2\",\"data\":\"YQ==\"}", false, NULL, &q));
    ASSERT_OK(store_outbox_enqueue(st, url, "ws", NULL, "{\"n\":1}", false));
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    ASSERT_OK(store_outbox_start(st, &o));
    ASSERT_EQ(recv_wait(&r, 1, 5000), 1);
    usleep(300000);
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM outbox WHERE url LIKE 's3sink:%' AND attempts=0 AND state='pending'"),
              2);
    store_outbox_stop(st);
    /* a worker's sender: bucket bkt (at an address that refuses), s3 rows only */
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    struct store_s3sink *k = NULL;
    struct err e = ERR_INIT;
    ASSERT_OK(store_s3sink_open("s3://bkt?endpoint=http://127.0.0.1:1&path_style=1", NULL, &k, &e));
    store_outbox_set_s3sink(st, k);
    ASSERT_OK(store_outbox_enqueue(st, url, "ws", NULL, "{\"n\":2}", false));
    o.s3_only = true;
    o.backoff_ms = 60000;
    ASSERT_OK(store_outbox_start(st, &o));
    int64_t t0 = time_now_ms();
    while (t_sql_int(st, "SELECT attempts FROM outbox WHERE url='s3sink:bkt/k1'") < 1 && time_now_ms() - t0 < 5000)
        usleep(20000);
    ASSERT_EQ(t_sql_int(st, "SELECT attempts FROM outbox WHERE url='s3sink:bkt/k1'"), 1);
    usleep(300000);
    ASSERT_EQ(t_sql_int(st, "SELECT attempts FROM outbox WHERE url='s3sink:other/k2'"), 0);
    ASSERT_EQ(t_sql_int(st, "SELECT attempts FROM outbox WHERE payload LIKE '%\"n\":2%'"), 0);
    ASSERT_EQ(recv_count(&r), 1);
    store_close(st);
    store_s3sink_free(k);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    recv_stop(&r);
    free(url);
}

BOTH(outbox_slack_upload_time_grows_with_its_bytes)
{
    /* a slack_upload of 512 KiB with a 1 s POST timeout, each of its three
     * calls answered after 600 ms: the attempt gets 1 s + 1 s per 128 KiB
     * (5 s) and its lease as long, so it is delivered (all its calls had to
     * end within the 1 s timeout: it never was) */
    struct store *st = open_tmp();
    struct recv_srv r;
    static const int ok[] = {200};
    recv_start(&r, ok, 1);
    __atomic_store_n(&r.delay_ms, 600, __ATOMIC_RELEASE);
    char *answer = xasprintf("{\"ok\":true,\"upload_url\":\"http://127.0.0.1:%d/up\",\"file_id\":\"F1\"}", r.port);
    r.body = answer;
    r.body_len = strlen(answer);
    ASSERT_OK(store_net_allow_set(st, "127.0.0.1"));
    size_t n = 512 << 10;
    uint8_t *bytes = xcalloc(n, 1);
    char *b64 = base64_encode(bytes, n);
    char *req = xasprintf("{\"kind\":\"slack_upload\",\"api\":\"http://127.0.0.1:%d/api\",\"token\":\"t\","
                          "\"channel\":\"C\",\"comment\":\"m\",\"files\":[{\"name\":\"a.bin\",\"data\":\"%s\"}]}",
                          r.port, b64);
    char *url = xasprintf("http://127.0.0.1:%d/api/files.completeUploadExternal", r.port);
    bool q = false;
    ASSERT_OK(store_outbox_enqueue_once(st, "sink/slack", url, "ws", "{}", req, false, NULL, &q));
    struct store_outbox_opts o;
    store_outbox_opts_default(&o);
    o.timeout_ms = 1000;
    o.backoff_ms = 60000;
    int64_t t0 = time_now_ms();
    ASSERT_OK(store_outbox_start(st, &o));
    ASSERT_EQ(recv_wait(&r, 1, 5000), 1);
    /* claimed: the lease covers the whole attempt */
    ASSERT_GE(t_sql_int(st, "SELECT next_ms FROM outbox") - t0, 5000);
    ASSERT_EQ(recv_wait(&r, 3, 10000), 3);
    while (t_sql_int(st, "SELECT count(*) FROM outbox WHERE state='delivered'") != 1 && time_now_ms() - t0 < 10000)
        usleep(20000);
    ASSERT_EQ(t_sql_int(st, "SELECT count(*) FROM outbox WHERE state='delivered'"), 1);
    ASSERT_EQ(t_sql_int(st, "SELECT attempts FROM outbox"), 1);
    store_close(st);
    recv_stop(&r);
    free(url);
    free(req);
    free(b64);
    free(bytes);
    free(answer);
}

static void *incr_main(void *arg)
{
    struct store *st = arg;
    for (int i = 0; i < 50; i++) {
        sqlite3 *db = store_db_acquire(st);
        if (store_tx_begin(db) == 0 && store_exec(db, "UPDATE c SET n = n + 1") == 0)
            store_tx_commit(db);
        else
            abort();
        store_db_release(st, db);
    }
    return NULL;
}

TEST(pool_threads_transactions)
{
    struct store *st = open_tmp();
    static const char *const m[] = {"CREATE TABLE c(n INTEGER); INSERT INTO c VALUES(0)"};
    ASSERT_OK(store_migrate(st, "t", m, 1));
    pthread_t th[20];
    for (int i = 0; i < 20; i++)
        pthread_create(&th[i], NULL, incr_main, st);
    for (int i = 0; i < 20; i++)
        pthread_join(th[i], NULL);
    sqlite3 *db = store_db_acquire(st);
    sqlite3_stmt *q;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT n FROM c", -1, &q, NULL), 0);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(q, 0), 1000);
    sqlite3_finalize(q);
    store_db_release(st, db);
    store_close(st);
}

TEST_MAIN()
