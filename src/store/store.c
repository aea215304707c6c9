/*
 * store.c — opening a data folder, the SQLite connection pool,
 * transactions, per-component schema migrations, workspaces, API keys and
 * the workflow registry.
 *
 * Connections: SQLite connections are not shared between threads at the
 * same time.  The pool hands one connection to one thread; it opens up to
 * STORE_POOL_MAX lazily and makes callers wait when all are borrowed.  All
 * connections use WAL (readers never block the writer), a 5 s busy timeout
 * and synchronous=NORMAL (durable across process crashes; WAL checkpoints
 * are fsynced).  Writers use BEGIN IMMEDIATE so that lock upgrades never
 * deadlock.
 *
 * API keys: "vb_" + 37 random lowercase alphanumerics.  Chars 3..10 are the
 * key id (the lookup index); the row holds SHA-256(key).  Verification
 * hashes the offered key and compares with ct_equal, so the clear key is
 * never stored and timing does not reveal how much of a hash matched.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <curl/curl.h>

#include "store/store_int.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
}

static int db_open_one(struct store *st, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(st->db_path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        log_error("store", "cannot open '%s': %s", st->db_path, db ? sqlite3_errmsg(db) : "oom");
        sqlite3_close(db);
        return ERR_INTERNAL;
    }
    sqlite3_busy_timeout(db, 5000);
    if (store_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;") < 0) {
        sqlite3_close(db);
        return ERR_INTERNAL;
    }
    *out = db;
    return 0;
}

void store_reserve_set(struct store *st, int64_t bytes)
{
    st->reserve = bytes < 0 ? 0 : bytes;
}

int64_t store_free_bytes(struct store *st)
{
    struct statvfs sv;
    if (statvfs(st->dir, &sv) < 0)
        return -errno;
    return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

int store_space_check(struct store *st, int64_t need, const char *what, struct err *err)
{
    int64_t avail = store_free_bytes(st);
    if (avail < 0) /* cannot tell: let the write itself find out */
        return 0;
    if (need < 0)
        need = 0;
    if (avail >= need && avail - need >= st->reserve)
        return 0;
    log_warn("store", "storage full: %lld bytes free, %s needs %lld plus a reserve of %lld", (long long)avail,
             what, (long long)need, (long long)st->reserve);
    return err_set(err, ERR_NOSPACE, "storage full: %lld bytes free, %s needs %lld plus a reserve of %lld",
                   (long long)avail, what, (long long)need, (long long)st->reserve);
}

int store_sql_err(sqlite3 *db, int src)
{
    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ERR_AGAIN;
    case SQLITE_FULL:
        return ERR_NOSPACE;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: {
        int e = db ? sqlite3_system_errno(db) : 0;
        return e == ENOSPC || e == EDQUOT ? ERR_NOSPACE : ERR_INTERNAL;
    }
    default:
        return ERR_INTERNAL;
    }
}

int store_step_done(sqlite3 *db, sqlite3_stmt *q)
{
    int src = sqlite3_step(q);
    return src == SQLITE_DONE ? 0 : store_sql_err(db, src);
}

int store_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int src = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (src != SQLITE_OK) {
        log_error("store", "sql failed: %s", err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return store_sql_err(db, src);
    }
    return 0;
}

int store_tx_begin(sqlite3 *db)
{
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        log_warn("store", "database busy: write transaction not started");
        return ERR_AGAIN;
    }
    log_error("store", "BEGIN failed: %s", sqlite3_errmsg(db));
    return store_sql_err(db, rc);
}

int store_tx_commit(sqlite3 *db)
{
    int rc = store_exec(db, "COMMIT");
    if (rc < 0)
        store_tx_rollback(db);
    return rc;
}

void store_tx_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

sqlite3 *store_db_acquire(struct store *st)
{
    sqlite3 *db = NULL;
    pthread_mutex_lock(&st->pool_mu);
    for (;;) {
        if (st->pool_idle > 0) {
            db = st->pool[--st->pool_idle];
            break;
        }
        if (st->pool_open < STORE_POOL_MAX) {
            st->pool_open++;
            pthread_mutex_unlock(&st->pool_mu);
            if (db_open_one(st, &db) == 0)
                return db;
            /* Opening failed (fd exhaustion?): wait for a returned one. */
            pthread_mutex_lock(&st->pool_mu);
            st->pool_open--;
            if (st->pool_open == 0) {
                pthread_mutex_unlock(&st->pool_mu);
                log_error("store", "no database connection can be opened");
                abort();
            }
        }
        pthread_cond_wait(&st->pool_cv, &st->pool_mu);
    }
    pthread_mutex_unlock(&st->pool_mu);
    return db;
}

void store_db_release(struct store *st, sqlite3 *db)
{
    if (!db)
        return;
    store_tx_rollback(db); /* never hand back an open transaction */
    pthread_mutex_lock(&st->pool_mu);
    st->pool[st->pool_idle++] = db;
    pthread_cond_signal(&st->pool_cv);
    pthread_mutex_unlock(&st->pool_mu);
}

static int load_secret(struct store *st)
{
    char *path = xasprintf("%s/secret", st->dir);
    char *data = NULL;
    size_t len = 0;
    int rc = file_read_all(path, 64, &data, &len);
    if (rc == 0 && len == sizeof st->secret) {
        memcpy(st->secret, data, len);
    } else if (rc == -ENOENT) {
        rand_bytes(st->secret, sizeof st->secret);
        rc = file_write_atomic(path, st->secret, sizeof st->secret);
        if (rc == 0 && chmod(path, 0600) < 0)
            rc = -errno;
    } else if (rc == 0) {
        log_error("store", "secret file '%s' has a wrong size", path);
        rc = ERR_INVALID;
    }
    free(data);
    free(path);
    return rc;
}

int store_open(const char *data_dir, struct store **out)
{
    struct store *st = xcalloc(1, sizeof *st);
    sqlite3 *db = NULL;
    int rc;

    pthread_once(&curl_once, curl_init_once);

    st->dir = xstrdup(data_dir);
    st->reserve = STORE_RESERVE_DEFAULT;
    st->blob_dir = xasprintf("%s/blobs", data_dir);
    st->tmp_dir = xasprintf("%s/tmp", data_dir);
    st->db_path = xasprintf("%s/vbatch.db", data_dir);
    pthread_mutex_init(&st->pool_mu, NULL);
    pthread_cond_init(&st->pool_cv, NULL);
    pthread_mutex_init(&st->net_mu, NULL);
    store__outbox_init(st);

    if ((rc = mkdir_p(st->blob_dir, 0755)) < 0 || (rc = mkdir_p(st->tmp_dir, 0700)) < 0) {
        log_error("store", "cannot create folders under '%s': %s", data_dir, err_str(rc));
        goto out;
    }
    if ((rc = load_secret(st)) < 0)
        goto out;
    if ((rc = db_open_one(st, &db)) < 0)
        goto out;
    rc = store_exec(db, "CREATE TABLE IF NOT EXISTS schema_versions ("
                        " component TEXT PRIMARY KEY, version INTEGER NOT NULL)");
    sqlite3_close(db);
    db = NULL;
    if (rc < 0)
        goto out;
    rc = store_migrate(st, "core", store__core_migrations, store__core_migrations_n);
out:
    if (rc < 0) {
        store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    store_outbox_stop(st);
    pthread_mutex_lock(&st->pool_mu);
    if (st->pool_idle != st->pool_open)
        log_warn("store", "closing with %d connection(s) still borrowed", st->pool_open - st->pool_idle);
    for (int i = 0; i < st->pool_idle; i++)
        sqlite3_close(st->pool[i]);
    st->pool_idle = 0;
    pthread_mutex_unlock(&st->pool_mu);
    store__outbox_destroy(st);
    store__net_free(st);
    pthread_mutex_destroy(&st->pool_mu);
    pthread_cond_destroy(&st->pool_cv);
    pthread_mutex_destroy(&st->net_mu);
    free(st->dir);
    free(st->blob_dir);
    free(st->tmp_dir);
    free(st->db_path);
    free(st);
}

const char *store_data_dir(const struct store *st)
{
    return st->dir;
}

/* ---- migrations ------------------------------------------------------------ */

int store_migrate(struct store *st, const char *component, const char *const *stmts, int n)
{
    sqlite3 *db = store_db_acquire(st);
    sqlite3_stmt *q = NULL;
    int rc = 0;

    for (int i = 0; i < n; i++) {
        int64_t version = 0;
        if ((rc = store_tx_begin(db)) < 0)
            break;
        rc = ERR_INTERNAL;
        if (sqlite3_prepare_v2(db, "SELECT version FROM schema_versions WHERE component=?", -1, &q, NULL))
            goto fail;
        sqlite3_bind_text(q, 1, component, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            version = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        q = NULL;
        if (version > i) {
            store_tx_rollback(db);
            rc = 0;
            continue;
        }
        if (store_exec(db, stmts[i]) < 0)
            goto fail;
        if (sqlite3_prepare_v2(db, "INSERT INTO schema_versions(component, version) VALUES(?, ?)"
                                   " ON CONFLICT(component) DO UPDATE SET version=excluded.version",
                               -1, &q, NULL))
            goto fail;
        sqlite3_bind_text(q, 1, component, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 2, i + 1);
        if (sqlite3_step(q) != SQLITE_DONE)
            goto fail;
        sqlite3_finalize(q);
        q = NULL;
        if ((rc = store_tx_commit(db)) < 0)
            break;
        log_info("store", "migrated component=%s version=%d", component, i + 1);
        continue;
    fail:
        log_error("store", "migration %s/%d failed: %s", component, i + 1, sqlite3_errmsg(db));
        sqlite3_finalize(q);
        q = NULL;
        store_tx_rollback(db);
        rc = ERR_INTERNAL;
        break;
    }
    store_db_release(st, db);
    return rc;
}

/* ---- workspaces and keys ----------------------------------------------------- */

static void key_new(char key[STORE_KEY_LEN + 1])
{
    memcpy(key, "vb_", 3);
    rand_alnum(key + 3, STORE_KEY_LEN - 3);
    key[STORE_KEY_LEN] = 0;
}

static int key_insert(sqlite3 *db, const char *ws, const char *key)
{
    uint8_t h[32];
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    sha256(key, strlen(key), h);
    if (sqlite3_prepare_v2(db, "INSERT INTO api_keys(key_id, workspace, key_hash, created_ms) VALUES(?,?,?,?)",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, key + 3, 8, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, ws, -1, SQLITE_STATIC);
        sqlite3_bind_blob(q, 3, h, sizeof h, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, time_now_ms());
        int s = sqlite3_step(q);
        rc = s == SQLITE_DONE ? 0 : s == SQLITE_CONSTRAINT ? ERR_EXISTS : ERR_INTERNAL;
    }
    sqlite3_finalize(q);
    return rc;
}

static int ws_count(sqlite3 *db, const char *name, int64_t *n)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    const char *sql = name ? "SELECT count(*) FROM workspaces WHERE name=?" : "SELECT count(*) FROM workspaces";
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        if (name)
            sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            *n = sqlite3_column_int64(q, 0);
            rc = 0;
        }
    }
    sqlite3_finalize(q);
    return rc;
}

/* Inside an open transaction: insert the workspace and a first key. */
static int ws_insert(sqlite3 *db, const char *name, char key_out[STORE_KEY_LEN + 1])
{
    sqlite3_stmt *q = NULL;
    char key[STORE_KEY_LEN + 1];
    int rc = ERR_INTERNAL, s;
    if (sqlite3_prepare_v2(db, "INSERT INTO workspaces(name, created_ms) VALUES(?,?)", -1, &q, NULL))
        goto out;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, time_now_ms());
    s = sqlite3_step(q);
    if (s != SQLITE_DONE) {
        rc = s == SQLITE_CONSTRAINT ? ERR_EXISTS : ERR_INTERNAL;
        goto out;
    }
    do {
        key_new(key);
        rc = key_insert(db, name, key);
    } while (rc == ERR_EXISTS); /* key id collision: astronomically rare */
    if (rc == 0)
        memcpy(key_out, key, sizeof key);
out:
    sqlite3_finalize(q);
    return rc;
}

int store_workspace_create(struct store *st, const char *name, char key_out[STORE_KEY_LEN + 1])
{
    if (!id_valid(name, STORE_WS_MAX))
        return ERR_INVALID;
    sqlite3 *db = store_db_acquire(st);
    int rc = store_tx_begin(db);
    if (rc == 0)
        rc = ws_insert(db, name, key_out);
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    store_db_release(st, db);
    return rc;
}

int store_key_create(struct store *st, const char *workspace, char key_out[STORE_KEY_LEN + 1])
{
    char key[STORE_KEY_LEN + 1];
    int64_t n = 0;
    sqlite3 *db = store_db_acquire(st);
    int rc = store_tx_begin(db);
    if (rc == 0)
        rc = ws_count(db, workspace, &n);
    if (rc == 0 && n == 0)
        rc = ERR_NOTFOUND;
    if (rc == 0) {
        do {
            key_new(key);
            rc = key_insert(db, workspace, key);
        } while (rc == ERR_EXISTS);
    }
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    if (rc == 0)
        memcpy(key_out, key, sizeof key);
    store_db_release(st, db);
    return rc;
}

int store_workspace_ensure_default(struct store *st, const char *name, bool *created,
                                   char key_out[STORE_KEY_LEN + 1])
{
    int64_t n = 0;
    if (!id_valid(name, STORE_WS_MAX))
        return ERR_INVALID;
    sqlite3 *db = store_db_acquire(st);
    int rc = store_tx_begin(db);
    *created = false;
    key_out[0] = 0;
    if (rc == 0)
        rc = ws_count(db, NULL, &n);
    if (rc == 0 && n == 0) {
        rc = ws_insert(db, name, key_out);
        if (rc == 0)
            *created = true;
    }
    rc = rc == 0 ? store_tx_commit(db) : (store_tx_rollback(db), rc);
    if (rc < 0) {
        *created = false;
        key_out[0] = 0;
    }
    store_db_release(st, db);
    return rc;
}

int store_key_verify(struct store *st, const char *key, char ws_out[STORE_WS_MAX + 1])
{
    uint8_t h[32];
    sqlite3_stmt *q = NULL;
    int rc = ERR_AUTH;
    if (!key || strlen(key) != STORE_KEY_LEN || memcmp(key, "vb_", 3) != 0)
        return ERR_AUTH;
    sha256(key, STORE_KEY_LEN, h);
    sqlite3 *db = store_db_acquire(st);
    if (sqlite3_prepare_v2(db, "SELECT key_hash, workspace FROM api_keys WHERE key_id=?", -1, &q, NULL)) {
        rc = ERR_INTERNAL;
        goto out;
    }
    sqlite3_bind_text(q, 1, key + 3, 8, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const void *hash = sqlite3_column_blob(q, 0);
        const char *ws = (const char *)sqlite3_column_text(q, 1);
        if (hash && sqlite3_column_bytes(q, 0) == 32 && ws && ct_equal(hash, h, 32) &&
            strlen(ws) <= STORE_WS_MAX) {
            strcpy(ws_out, ws);
            rc = 0;
            break;
        }
    }
out:
    sqlite3_finalize(q);
    store_db_release(st, db);
    return rc;
}

int store_workspace_exists(struct store *st, const char *name)
{
    int64_t n = 0;
    sqlite3 *db = store_db_acquire(st);
    int rc = ws_count(db, name, &n);
    store_db_release(st, db);
    return rc < 0 ? rc : n > 0 ? 0 : ERR_NOTFOUND;
}

/* ---- workflow registry --------------------------------------------------------- */

#define WORKFLOW_MAX_BYTES (4u << 20)

int store_workflow_put(struct store *st, const char *ws, const char *workflow_id, const char *definition)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    if (!id_valid(workflow_id, 64) || !definition)
        return ERR_INVALID;
    if (strlen(definition) > WORKFLOW_MAX_BYTES)
        return ERR_LIMIT;
    sqlite3 *db = store_db_acquire(st);
    int64_t now = time_now_ms();
    if (sqlite3_prepare_v2(db, "INSERT INTO workflows(workspace, workflow_id, definition, created_ms, updated_ms)"
                               " VALUES(?,?,?,?,?) ON CONFLICT(workspace, workflow_id) DO UPDATE SET"
                               " definition=excluded.definition, updated_ms=excluded.updated_ms",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, workflow_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, definition, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, now);
        sqlite3_bind_int64(q, 5, now);
        rc = store_step_done(db, q);
    }
    sqlite3_finalize(q);
    store_db_release(st, db);
    return rc;
}

int store_workflow_get(struct store *st, const char *ws, const char *workflow_id, char **definition)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    sqlite3 *db = store_db_acquire(st);
    if (sqlite3_prepare_v2(db, "SELECT definition FROM workflows WHERE workspace=? AND workflow_id=?", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, workflow_id, -1, SQLITE_STATIC);
        int s = sqlite3_step(q);
        if (s == SQLITE_ROW) {
            *definition = xstrdup((const char *)sqlite3_column_text(q, 0));
            rc = 0;
        } else if (s == SQLITE_DONE) {
            rc = ERR_NOTFOUND;
        }
    }
    sqlite3_finalize(q);
    store_db_release(st, db);
    return rc;
}

int store_workflow_list(struct store *st, const char *ws, json_t **out)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    json_t *arr = json_array();
    sqlite3 *db = store_db_acquire(st);
    if (sqlite3_prepare_v2(db, "SELECT workflow_id, created_ms, updated_ms FROM workflows WHERE workspace=?"
                               " ORDER BY workflow_id", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        int s;
        while ((s = sqlite3_step(q)) == SQLITE_ROW) {
            char c[TIME_ISO_LEN], u[TIME_ISO_LEN];
            time_iso8601(sqlite3_column_int64(q, 1), c);
            time_iso8601(sqlite3_column_int64(q, 2), u);
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "workflowId",
                                                 (const char *)sqlite3_column_text(q, 0), "createdAt", c,
                                                 "updatedAt", u));
        }
        if (s == SQLITE_DONE)
            rc = 0;
    }
    sqlite3_finalize(q);
    store_db_release(st, db);
    if (rc == 0)
        *out = arr;
    else
        json_decref(arr);
    return rc;
}

int store_workflow_delete(struct store *st, const char *ws, const char *workflow_id)
{
    sqlite3_stmt *q = NULL;
    int rc = ERR_INTERNAL;
    sqlite3 *db = store_db_acquire(st);
    if (sqlite3_prepare_v2(db, "DELETE FROM workflows WHERE workspace=? AND workflow_id=?", -1, &q, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(q, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, workflow_id, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_DONE)
            rc = sqlite3_changes(db) > 0 ? 0 : ERR_NOTFOUND;
    }
    sqlite3_finalize(q);
    store_db_release(st, db);
    return rc;
}
