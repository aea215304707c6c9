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
 * deadlock.  The SQL layer keeps each connection's prepared statements
 * (a statement cache: a shard's transactions no longer prepare theirs
 * anew); WAL checkpoints stay SQLite's own, in the commit that crosses
 * 1000 pages (a background checkpointer is opt-in: db_sqlite.c,
 * docs/STORAGE.md).
 *
 * API keys: "vb_" + 37 random lowercase alphanumerics.  Chars 3..10 are the
 * key id (the lookup index); the row holds SHA-256(key).  Verification
 * (keys.c, with its per-process cache) hashes the offered key and compares
 * with ct_equal, so the clear key is never stored and timing does not
 * reveal how much of a hash matched.
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
    struct err e = ERR_INIT;
    if (db_kind(st->db) != DB_SQLITE) {
        /* Callers not yet moved onto db.h speak SQLite only; serve and
         * worker refuse a PostgreSQL target at start, so this is a bug. */
        log_error("store", "SQLite-only code called on the PostgreSQL database '%s'", db_display_name(st->db));
        abort();
    }
    struct db_conn *c = db_acquire(st->db, &e);
    if (!c) { /* SQLite: only when no file descriptor is left */
        log_error("store", "no database connection can be opened: %s", err_text(&e, ERR_INTERNAL));
        abort();
    }
    return db_conn_native(c);
}

void store_db_release(struct store *st, sqlite3 *db)
{
    if (!db)
        return;
    db_release(st->db, db_conn_of_native(st->db, db));
}

bool store_db_is_sqlite(const struct store *st)
{
    return db_kind(st->db) == DB_SQLITE;
}

const char *store_db_name(const struct store *st)
{
    return db_display_name(st->db);
}

struct db_conn *store__acquire(struct store *st, struct err *e)
{
    struct db_conn *c = db_acquire(st->db, e);
    if (!c && e && !e->code)
        err_set(e, ERR_UNAVAILABLE, "the database cannot be reached");
    return c;
}

void store__release(struct store *st, struct db_conn *c)
{
    db_release(st->db, c);
}

/* ---- the installation secret ------------------------------------------------ */

#define SECRET_NAME "installation"

/* The secret row of the database into st->secret: 0, ERR_NOTFOUND when
 * there is none. */
static int secret_read_db(struct db_conn *c, uint8_t out[32], struct err *e)
{
    struct db_stmt *q = NULL;
    int rc = db_prepare(c, "SELECT value FROM secrets WHERE name=?1", &q, e);
    if (rc == 0) {
        db_bind_text(q, 1, SECRET_NAME);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            size_t len = 0;
            const void *v = db_col_blob(q, 0, &len);
            if (v && len == 32) {
                memcpy(out, v, 32);
                rc = 0;
            } else {
                rc = err_set(e, ERR_INTERNAL, "the installation secret in the database has a wrong size (%zu)",
                             len);
            }
        } else if (rc == DB_DONE) {
            rc = ERR_NOTFOUND;
        }
    }
    db_finalize(q);
    return rc;
}

/* DATA/secret: 0 and its 32 bytes, ERR_NOTFOUND when absent. */
static int secret_read_file(const char *path, uint8_t out[32], struct err *e)
{
    char *data = NULL;
    size_t len = 0;
    int rc = file_read_all(path, 64, &data, &len);
    if (rc == -ENOENT)
        return ERR_NOTFOUND;
    if (rc == 0 && len == 32)
        memcpy(out, data, 32);
    else if (rc == 0)
        rc = err_set(e, ERR_INVALID, "secret file '%s' has a wrong size (%zu bytes, 32 expected)", path, len);
    else
        rc = err_set(e, rc, "cannot read the secret file '%s': %s", path, err_str(rc));
    free(data);
    return rc;
}

/* Keep DATA/secret equal to the secret in use: it is what operators give
 * to webhook receivers (docs/API.md).  A different file is kept as
 * DATA/secret.old. */
static int secret_mirror(struct store *st, struct err *e)
{
    char *path = xasprintf("%s/secret", st->dir);
    uint8_t cur[32];
    struct err tmp = ERR_INIT;
    int rc = secret_read_file(path, cur, &tmp);
    if (rc == 0 && ct_equal(cur, st->secret, 32)) {
        free(path);
        return 0;
    }
    if (rc == 0 || rc == ERR_INVALID) {
        char *old = xasprintf("%s/secret.old", st->dir);
        log_warn("store", "the installation secret of the database differs from '%s': the database's is used,"
                          " the file is kept as '%s'", path, old);
        if (rename(path, old) < 0)
            log_warn("store", "cannot rename '%s': %s", path, strerror(errno));
        free(old);
    }
    rc = file_write_atomic(path, st->secret, sizeof st->secret);
    if (rc == 0 && chmod(path, 0600) < 0)
        rc = -errno;
    if (rc < 0)
        err_set(e, rc, "cannot write the secret file '%s': %s", path, err_str(rc));
    free(path);
    return rc;
}

/* The installation secret lives in the database (core migration 6), so
 * that every process on it — on any machine, with any data folder —
 * signs and checks alike.  On open: the database's if it has one; else
 * DATA/secret's (an existing installation keeps its signed URLs valid);
 * else 32 new random bytes.  Two processes starting at once both INSERT
 * ... ON CONFLICT DO NOTHING and read back the one row that won. */
static int secret_init(struct store *st, struct err *e)
{
    uint8_t cand[32];
    struct db_stmt *q = NULL;
    char *path = xasprintf("%s/secret", st->dir);
    struct db_conn *c = store__acquire(st, e);
    int rc = c ? secret_read_db(c, st->secret, e) : e->code;
    if (rc == ERR_NOTFOUND) {
        rc = secret_read_file(path, cand, e);
        if (rc == ERR_NOTFOUND) {
            rand_bytes(cand, sizeof cand);
            rc = 0;
        }
        if (rc == 0)
            rc = db_prepare(c, "INSERT INTO secrets(name, value, created_ms) VALUES(?1, ?2, ?3)"
                               " ON CONFLICT(name) DO NOTHING", &q, e);
        if (rc == 0) {
            db_bind_text(q, 1, SECRET_NAME);
            db_bind_blob(q, 2, cand, sizeof cand);
            db_bind_int64(q, 3, time_now_ms());
            rc = db_step(q, e);
            if (rc == DB_DONE)
                rc = 0;
        }
        db_finalize(q);
        if (rc == 0) /* ours, or the one another process wrote first */
            rc = secret_read_db(c, st->secret, e);
        if (rc == ERR_NOTFOUND)
            rc = err_set(e, ERR_INTERNAL, "the installation secret vanished from the database");
    }
    if (c)
        db_release(st->db, c);
    free(path);
    if (rc == 0)
        rc = secret_mirror(st, e);
    return rc;
}

int store_secret_set_file(struct store *st, const char *path, struct err *e)
{
    char *data = NULL;
    size_t len = 0;
    uint8_t key[32];
    int rc = file_read_all(path, 4096, &data, &len);
    if (rc < 0)
        return err_set(e, rc == ERR_LIMIT ? ERR_INVALID : rc, "cannot read the secret file '%s': %s", path,
                       err_str(rc));
    if (len == 32) {
        memcpy(key, data, 32);
    } else {
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
            len--;
        if (len != 64 || hex_decode(data, 64, key) < 0) {
            free(data);
            return err_set(e, ERR_INVALID, "secret file '%s' must hold 32 bytes or 64 hex digits", path);
        }
    }
    free(data);
    memcpy(st->secret, key, 32);
    return secret_mirror(st, e);
}

int store_open(const char *data_dir, struct store **out)
{
    struct err e = ERR_INIT;
    int rc = store_open_ex(data_dir, NULL, out, &e);
    if (rc < 0)
        log_error("store", "%s", err_text(&e, rc));
    return rc;
}

int store_open_ex(const char *data_dir, const char *db_target, struct store **out, struct err *e)
{
    struct store *st = xcalloc(1, sizeof *st);
    int rc;

    *out = NULL;
    pthread_once(&curl_once, curl_init_once);

    st->dir = xstrdup(data_dir);
    st->reserve = STORE_RESERVE_DEFAULT;
    st->blob_dir = xasprintf("%s/blobs", data_dir);
    st->blob = &store__blob_local;
    st->tmp_dir = xasprintf("%s/tmp", data_dir);
    st->db_path = db_target && *db_target ? xstrdup(db_target) : xasprintf("%s/vbatch.db", data_dir);
    {
        char host[64] = "host", rnd[7];
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        rand_alnum(rnd, 6);
        st->owner = xasprintf("%s-%d-%s", host, (int)getpid(), rnd);
    }
    pthread_mutex_init(&st->net_mu, NULL);
    store__outbox_init(st);

    if ((rc = mkdir_p(st->blob_dir, 0755)) < 0 || (rc = mkdir_p(st->tmp_dir, 0700)) < 0) {
        err_set(e, rc, "cannot create folders under '%s': %s", data_dir, err_str(rc));
        goto out;
    }
    if ((rc = db_open(st->db_path, STORE_POOL_MAX, &st->db, e)) < 0)
        goto out;
    if (db_kind(st->db) == DB_POSTGRES)
        rc = db_migrate(st->db, "core", store__core_migrations_pg, store__core_migrations_pg_n, e);
    else
        rc = db_migrate(st->db, "core", store__core_migrations, store__core_migrations_n, e);
    if (rc == 0)
        rc = store__keys_init(st, e);
    if (rc == 0)
        rc = store__outbox_once_init(st, e);
    if (rc == 0)
        rc = secret_init(st, e);
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
    db_close(st->db);
    st->db = NULL;
    store__outbox_destroy(st);
    store__keys_free(st);
    store__net_free(st);
    pthread_mutex_destroy(&st->net_mu);
    free(st->dir);
    store__blobs_free(st);
    free(st->blob_dir);
    free(st->tmp_dir);
    free(st->db_path);
    free(st->owner);
    free(st);
}

const char *store_data_dir(const struct store *st)
{
    return st->dir;
}

const char *store_owner(const struct store *st)
{
    return st->owner;
}

/* ---- migrations ------------------------------------------------------------ */

int store_migrate(struct store *st, const char *component, const char *const *stmts, int n)
{
    struct err e = ERR_INIT;
    if (db_kind(st->db) != DB_SQLITE) {
        log_error("store", "component '%s' has only a SQLite schema: it cannot run on PostgreSQL yet", component);
        return ERR_UNSUPPORTED;
    }
    int rc = db_migrate(st->db, component, stmts, n, &e);
    if (rc < 0)
        log_error("store", "%s", err_text(&e, rc));
    return rc;
}

/* ---- workspaces and keys ----------------------------------------------------- */

static void key_new(char key[STORE_KEY_LEN + 1])
{
    memcpy(key, "vb_", 3);
    rand_alnum(key + 3, STORE_KEY_LEN - 3);
    key[STORE_KEY_LEN] = 0;
}

/* Inside c's transaction.  ERR_EXISTS on a key id collision (the row is
 * not written; ON CONFLICT keeps a PostgreSQL transaction usable). */
static int key_insert(struct db_conn *c, const char *ws, const char *key, struct err *e)
{
    uint8_t h[32];
    struct db_stmt *q = NULL;
    sha256(key, strlen(key), h);
    int rc = db_prepare(c, "INSERT INTO api_keys(key_id, workspace, key_hash, created_ms) VALUES(?1, ?2, ?3, ?4)"
                           " ON CONFLICT(key_id) DO NOTHING", &q, e);
    if (rc == 0) {
        db_bind_textn(q, 1, key + 3, 8);
        db_bind_text(q, 2, ws);
        db_bind_blob(q, 3, h, sizeof h);
        db_bind_int64(q, 4, time_now_ms());
        rc = db_step(q, e);
        if (rc == DB_DONE)
            rc = db_changes(c) == 1 ? 0 : ERR_EXISTS;
    }
    db_finalize(q);
    return rc;
}

static int ws_count(struct db_conn *c, const char *name, int64_t *n, struct err *e)
{
    struct db_stmt *q = NULL;
    const char *sql = name ? "SELECT count(*) FROM workspaces WHERE name=?1" : "SELECT count(*) FROM workspaces";
    int rc = db_prepare(c, sql, &q, e);
    if (rc == 0) {
        if (name)
            db_bind_text(q, 1, name);
        rc = db_step(q, e);
        if (rc == DB_ROW) {
            *n = db_col_int64(q, 0);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = ERR_INTERNAL;
        }
    }
    db_finalize(q);
    return rc;
}

/* Inside an open transaction: insert the workspace and a first key.
 * ERR_EXISTS when the name is taken. */
static int ws_insert(struct db_conn *c, const char *name, char key_out[STORE_KEY_LEN + 1], struct err *e)
{
    char key[STORE_KEY_LEN + 1];
    int rc = db_run(c, e, "INSERT INTO workspaces(name, created_ms) VALUES(?1, ?2) ON CONFLICT(name) DO NOTHING",
                    "ti", name, time_now_ms());
    if (rc == 0 && db_changes(c) != 1)
        rc = ERR_EXISTS;
    if (rc < 0)
        return rc;
    do {
        key_new(key);
        rc = key_insert(c, name, key, e);
    } while (rc == ERR_EXISTS); /* key id collision: astronomically rare */
    if (rc == 0)
        memcpy(key_out, key, sizeof key);
    return rc;
}

/* Finish c's transaction: commit when rc is 0, else roll back.  Returns
 * the outcome and gives c back. */
static int tx_end(struct store *st, struct db_conn *c, int rc, struct err *e)
{
    if (!c)
        return rc;
    if (rc == 0)
        rc = db_commit(c, e);
    else
        db_rollback(c);
    db_release(st->db, c);
    return rc;
}

int store_workspace_create(struct store *st, const char *name, char key_out[STORE_KEY_LEN + 1])
{
    struct err e = ERR_INIT;
    if (!id_valid(name, STORE_WS_MAX))
        return ERR_INVALID;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? db_begin(c, &e) : e.code;
    if (rc == 0)
        rc = ws_insert(c, name, key_out, &e);
    return tx_end(st, c, rc, &e);
}

int store_key_create(struct store *st, const char *workspace, char key_out[STORE_KEY_LEN + 1])
{
    struct err e = ERR_INIT;
    char key[STORE_KEY_LEN + 1];
    int64_t n = 0;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? db_begin(c, &e) : e.code;
    if (rc == 0)
        rc = ws_count(c, workspace, &n, &e);
    if (rc == 0 && n == 0)
        rc = ERR_NOTFOUND;
    if (rc == 0) {
        do {
            key_new(key);
            rc = key_insert(c, workspace, key, &e);
        } while (rc == ERR_EXISTS);
    }
    rc = tx_end(st, c, rc, &e);
    if (rc == 0)
        memcpy(key_out, key, sizeof key);
    return rc;
}

int store_workspace_ensure_default(struct store *st, const char *name, bool *created,
                                   char key_out[STORE_KEY_LEN + 1])
{
    struct err e = ERR_INIT;
    int64_t n = 0;
    *created = false;
    key_out[0] = 0;
    if (!id_valid(name, STORE_WS_MAX))
        return ERR_INVALID;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? db_begin(c, &e) : e.code;
    if (rc == 0)
        rc = ws_count(c, NULL, &n, &e);
    if (rc == 0 && n == 0) {
        rc = ws_insert(c, name, key_out, &e);
        if (rc == 0)
            *created = true;
        else if (rc == ERR_EXISTS) /* another process made it meanwhile */
            rc = 0;
    }
    rc = tx_end(st, c, rc, &e);
    if (rc < 0 || !*created) {
        *created = false;
        key_out[0] = 0;
    }
    return rc;
}

int store_workspace_exists(struct store *st, const char *name)
{
    struct err e = ERR_INIT;
    int64_t n = 0;
    struct db_conn *c = store__acquire(st, &e);
    if (!c)
        return e.code;
    int rc = ws_count(c, name, &n, &e);
    db_release(st->db, c);
    return rc < 0 ? rc : n > 0 ? 0 : ERR_NOTFOUND;
}

/* ---- workflow registry --------------------------------------------------------- */

#define WORKFLOW_MAX_BYTES (4u << 20)

int store_workflow_put(struct store *st, const char *ws, const char *workflow_id, const char *definition)
{
    struct err e = ERR_INIT;
    if (!id_valid(workflow_id, 64) || !definition)
        return ERR_INVALID;
    if (strlen(definition) > WORKFLOW_MAX_BYTES)
        return ERR_LIMIT;
    struct db_conn *c = store__acquire(st, &e);
    if (!c)
        return e.code;
    int64_t now = time_now_ms();
    int rc = db_run(c, &e,
                    "INSERT INTO workflows(workspace, workflow_id, definition, created_ms, updated_ms)"
                    " VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(workspace, workflow_id) DO UPDATE SET"
                    " definition=excluded.definition, updated_ms=excluded.updated_ms",
                    "ttti", ws, workflow_id, definition, now);
    db_release(st->db, c);
    return rc;
}

int store_workflow_get(struct store *st, const char *ws, const char *workflow_id, char **definition)
{
    struct err e = ERR_INIT;
    struct db_stmt *q = NULL;
    struct db_conn *c = store__acquire(st, &e);
    if (!c)
        return e.code;
    int rc = db_prepare(c, "SELECT definition FROM workflows WHERE workspace=?1 AND workflow_id=?2", &q, &e);
    if (rc == 0) {
        db_bind_text(q, 1, ws);
        db_bind_text(q, 2, workflow_id);
        rc = db_step(q, &e);
        if (rc == DB_ROW) {
            *definition = xstrdup(db_col_text(q, 0));
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = ERR_NOTFOUND;
        }
    }
    db_finalize(q);
    db_release(st->db, c);
    return rc;
}

int store_workflow_list(struct store *st, const char *ws, json_t **out)
{
    struct err e = ERR_INIT;
    struct db_stmt *q = NULL;
    json_t *arr = json_array();
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? 0 : e.code;
    if (rc == 0)
        rc = db_prepare(c, "SELECT workflow_id, created_ms, updated_ms FROM workflows WHERE workspace=?1"
                           " ORDER BY workflow_id", &q, &e);
    if (rc == 0) {
        db_bind_text(q, 1, ws);
        while ((rc = db_step(q, &e)) == DB_ROW) {
            char cr[TIME_ISO_LEN], up[TIME_ISO_LEN];
            time_iso8601(db_col_int64(q, 1), cr);
            time_iso8601(db_col_int64(q, 2), up);
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "workflowId", db_col_text(q, 0), "createdAt",
                                                 cr, "updatedAt", up));
        }
    }
    db_finalize(q);
    db_release(st->db, c);
    if (rc == 0)
        *out = arr;
    else
        json_decref(arr);
    return rc;
}

int store_workflow_delete(struct store *st, const char *ws, const char *workflow_id)
{
    struct err e = ERR_INIT;
    struct db_conn *c = store__acquire(st, &e);
    if (!c)
        return e.code;
    int rc = db_run(c, &e, "DELETE FROM workflows WHERE workspace=?1 AND workflow_id=?2", "tt", ws, workflow_id);
    if (rc == 0 && db_changes(c) == 0)
        rc = ERR_NOTFOUND;
    db_release(st->db, c);
    return rc;
}
