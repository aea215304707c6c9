/*
 * keys.c — owner of the API key columns added by the "keys" migration
 * component (name, last use, revocation) and of the revocation generation
 * (table api_key_gen); the per-process cache of verified keys.
 *
 * Why a cache: checking a key against the database costs a pooled
 * connection, a statement and a round trip (on PostgreSQL a network one)
 * on every request.  A verified key is kept in a small direct-mapped table
 * indexed by the SHA-256 of the whole key (never the clear key), so a
 * request that hits it does one SHA-256 and a mutex.
 *
 * Revocation across processes.  store_key_revoke bumps the one row of
 * api_key_gen in the transaction that marks the key revoked.  Every
 * process reads that generation at most every KEYCACHE_CHECK_MS, lazily:
 * the first request after the interval reads it (one primary-key SELECT)
 * before using the cache; a new generation empties the cache.  So a key
 * revoked on any process is refused by every process within
 * KEYCACHE_CHECK_MS plus one read.  A cache entry is only added when no
 * emptying happened between the start of its row read and its insertion
 * (the epoch below), so an entry read before a revocation never outlives
 * the next generation check.  When the generation cannot be read (the
 * database is unreachable), the cache is not used.
 *
 * Last use: written when a key is first verified by a process and then at
 * most once per touch interval (60 s) per key and process, never once per
 * request.  A failed write is not retried before the next interval.
 */
#include <string.h>

#include "store/store_int.h"

#define KEYCACHE_SLOTS 1024     /* direct-mapped on the key's hash */
#define KEYCACHE_CHECK_MS 250   /* generation read at most this often */
#define KEY_TOUCH_MS_DEFAULT 60000
#define KEY_NAME_MAX 64

struct keycache_slot {
    bool used;
    uint8_t hash[32];            /* SHA-256 of the whole key */
    char key_id[STORE_KEY_ID_LEN + 1];
    char ws[STORE_WS_MAX + 1];
    int64_t touched_ms;          /* last_used_ms this process wrote or read */
};

struct store_keycache {
    pthread_mutex_t mu;          /* guards everything below */
    bool valid;                  /* gen was read and nothing emptied since */
    bool checking;               /* a thread is reading the generation */
    int64_t gen;                 /* the generation the slots belong to */
    int64_t checked_ms;          /* monotonic time of the last read's start */
    uint64_t epoch;              /* bumped on every emptying */
    int64_t touch_ms;            /* last-use write interval */
    struct keycache_slot slots[KEYCACHE_SLOTS];
};

/* ---- schema (component "keys") ------------------------------------------------ */

/* 1: key names, last use, revocation; the revocation generation. */
static const char *const keys_migrations_sqlite[] = {
    "ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE api_keys ADD COLUMN last_used_ms INTEGER;"
    "ALTER TABLE api_keys ADD COLUMN revoked_ms INTEGER;"
    "CREATE INDEX api_keys_ws ON api_keys(workspace, created_ms);"
    "CREATE TABLE api_key_gen (id INTEGER PRIMARY KEY, gen INTEGER NOT NULL);"
    "INSERT INTO api_key_gen(id, gen) VALUES (1, 0);",
};
static const char *const keys_migrations_pg[] = {
    "ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE api_keys ADD COLUMN last_used_ms BIGINT;"
    "ALTER TABLE api_keys ADD COLUMN revoked_ms BIGINT;"
    "CREATE INDEX api_keys_ws ON api_keys(workspace, created_ms);"
    "CREATE TABLE api_key_gen (id INTEGER PRIMARY KEY, gen BIGINT NOT NULL);"
    "INSERT INTO api_key_gen(id, gen) VALUES (1, 0);",
};

int store__keys_init(struct store *st, struct err *e)
{
    int rc;
    if (db_kind(st->db) == DB_POSTGRES)
        rc = db_migrate(st->db, "keys", keys_migrations_pg, (int)ARRAY_LEN(keys_migrations_pg), e);
    else
        rc = db_migrate(st->db, "keys", keys_migrations_sqlite, (int)ARRAY_LEN(keys_migrations_sqlite), e);
    if (rc < 0)
        return rc;
    struct store_keycache *kc = xcalloc(1, sizeof *kc);
    pthread_mutex_init(&kc->mu, NULL);
    kc->touch_ms = KEY_TOUCH_MS_DEFAULT;
    st->keys = kc;
    return 0;
}

void store__keys_free(struct store *st)
{
    if (!st->keys)
        return;
    pthread_mutex_destroy(&st->keys->mu);
    free(st->keys);
    st->keys = NULL;
}

void store_key_touch_interval_set(struct store *st, int64_t ms)
{
    pthread_mutex_lock(&st->keys->mu);
    st->keys->touch_ms = ms < 0 ? 0 : ms;
    pthread_mutex_unlock(&st->keys->mu);
}

/* ---- the cache ------------------------------------------------------------------ */

/* Under kc->mu. */
static void kc_empty(struct store_keycache *kc)
{
    memset(kc->slots, 0, sizeof kc->slots);
    kc->epoch++;
}

static struct keycache_slot *kc_slot(struct store_keycache *kc, const uint8_t h[32])
{
    unsigned i = ((unsigned)h[0] | (unsigned)h[1] << 8) % KEYCACHE_SLOTS;
    return &kc->slots[i];
}

static int gen_read(struct store *st, int64_t *gen)
{
    struct err e = ERR_INIT;
    struct db_stmt *q = NULL;
    struct db_conn *c = store__acquire(st, &e);
    if (!c)
        return e.code;
    int rc = db_prepare(c, "SELECT gen FROM api_key_gen WHERE id=1", &q, &e);
    if (rc == 0) {
        rc = db_step(q, &e);
        if (rc == DB_ROW) {
            *gen = db_col_int64(q, 0);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = ERR_INTERNAL;
        }
    }
    db_finalize(q);
    store__release(st, c);
    return rc;
}

/* Read the generation when the last read is older than KEYCACHE_CHECK_MS
 * (one thread at a time; the others go on with the cache as it is). */
static void kc_refresh(struct store *st)
{
    struct store_keycache *kc = st->keys;
    int64_t now = time_mono_ms(), gen = 0;
    pthread_mutex_lock(&kc->mu);
    bool due = !kc->checking && (!kc->valid || now - kc->checked_ms >= KEYCACHE_CHECK_MS);
    uint64_t epoch = kc->epoch;
    if (due)
        kc->checking = true;
    pthread_mutex_unlock(&kc->mu);
    if (!due)
        return;
    int rc = gen_read(st, &gen);
    pthread_mutex_lock(&kc->mu);
    kc->checking = false;
    kc->checked_ms = now;
    if (rc < 0) {
        if (kc->valid)
            log_warn("store", "cannot read the API key generation (%s): keys are checked in the database",
                     err_str(rc));
        kc_empty(kc);
        kc->valid = false;
    } else if (!kc->valid || gen != kc->gen || epoch != kc->epoch) {
        kc_empty(kc);
        kc->gen = gen;
        /* emptied meanwhile (a revocation here): read again next time */
        kc->valid = epoch == kc->epoch - 1;
    }
    pthread_mutex_unlock(&kc->mu);
}

/* After a revocation on this process: refuse the key here at once. */
static void kc_invalidate(struct store *st)
{
    pthread_mutex_lock(&st->keys->mu);
    kc_empty(st->keys);
    st->keys->valid = false;
    pthread_mutex_unlock(&st->keys->mu);
}

/* ---- last use ----------------------------------------------------------------- */

static void key_touch(struct store *st, const char *key_id, int64_t now)
{
    struct err e = ERR_INIT;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? db_run(c, &e,
                        "UPDATE api_keys SET last_used_ms=?2 WHERE key_id=?1"
                        " AND (last_used_ms IS NULL OR last_used_ms < ?2)",
                        "ti", key_id, now)
               : e.code;
    store__release(st, c);
    if (rc < 0)
        log_warn("store", "cannot record the last use of API key %s: %s", key_id, err_text(&e, rc));
}

/* ---- verification --------------------------------------------------------------- */

/* The key's row: 0 with ws_out when it matches and is not revoked,
 * ERR_AUTH otherwise.  *last_used is its recorded last use (0: never). */
static int key_lookup(struct store *st, const char *key, const uint8_t h[32], char ws_out[STORE_WS_MAX + 1],
                      int64_t *last_used)
{
    struct err e = ERR_INIT;
    struct db_stmt *q = NULL;
    int rc, s;
    struct db_conn *c = store__acquire(st, &e);
    if (!c)
        return e.code;
    rc = db_prepare(c, "SELECT key_hash, workspace, revoked_ms, last_used_ms FROM api_keys WHERE key_id=?1", &q,
                    &e);
    if (rc == 0) {
        db_bind_textn(q, 1, key + 3, STORE_KEY_ID_LEN);
        rc = ERR_AUTH;
        while ((s = db_step(q, &e)) == DB_ROW) {
            size_t len = 0;
            const void *hash = db_col_blob(q, 0, &len);
            const char *ws = db_col_text(q, 1);
            if (hash && len == 32 && ws && ct_equal(hash, h, 32) && strlen(ws) <= STORE_WS_MAX) {
                if (db_col_null(q, 2)) {
                    strcpy(ws_out, ws);
                    *last_used = db_col_int64(q, 3);
                    rc = 0;
                }
                break;
            }
        }
        if (s < 0)
            rc = s;
    }
    db_finalize(q);
    store__release(st, c);
    return rc;
}

static bool key_syntax_ok(const char *key)
{
    if (!key || strlen(key) != STORE_KEY_LEN || memcmp(key, "vb_", 3) != 0)
        return false;
    for (const char *p = key + 3; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

int store_key_verify(struct store *st, const char *key, char ws_out[STORE_WS_MAX + 1])
{
    struct store_keycache *kc = st->keys;
    uint8_t h[32];
    if (!key_syntax_ok(key))
        return ERR_AUTH;
    sha256(key, STORE_KEY_LEN, h);
    kc_refresh(st);

    int64_t now = time_now_ms();
    pthread_mutex_lock(&kc->mu);
    struct keycache_slot *sl = kc_slot(kc, h);
    if (kc->valid && sl->used && ct_equal(sl->hash, h, 32)) {
        char key_id[STORE_KEY_ID_LEN + 1];
        bool touch = now - sl->touched_ms >= kc->touch_ms;
        if (touch) {
            sl->touched_ms = now;
            memcpy(key_id, sl->key_id, sizeof key_id);
        }
        memcpy(ws_out, sl->ws, sizeof sl->ws);
        pthread_mutex_unlock(&kc->mu);
        if (touch)
            key_touch(st, key_id, now);
        return 0;
    }
    bool cacheable = kc->valid;
    uint64_t epoch = kc->epoch;
    int64_t touch_ms = kc->touch_ms;
    pthread_mutex_unlock(&kc->mu);

    int64_t last_used = 0;
    int rc = key_lookup(st, key, h, ws_out, &last_used);
    if (rc < 0)
        return rc;
    char key_id[STORE_KEY_ID_LEN + 1];
    memcpy(key_id, key + 3, STORE_KEY_ID_LEN);
    key_id[STORE_KEY_ID_LEN] = 0;
    /* another process may have written it a moment ago */
    int64_t touched = last_used;
    if (now - last_used >= touch_ms) {
        key_touch(st, key_id, now);
        touched = now;
    }
    if (cacheable) {
        pthread_mutex_lock(&kc->mu);
        if (kc->valid && kc->epoch == epoch) {
            sl->used = true;
            memcpy(sl->hash, h, 32);
            memcpy(sl->key_id, key_id, sizeof key_id);
            memcpy(sl->ws, ws_out, sizeof sl->ws);
            sl->touched_ms = touched;
        }
        pthread_mutex_unlock(&kc->mu);
    }
    return 0;
}

/* ---- add, list, revoke --------------------------------------------------------------- */

bool store_key_name_valid(const char *name)
{
    if (!name)
        return true;
    size_t n = strlen(name);
    if (n > KEY_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
            return false;
    return true;
}

static bool key_id_valid(const char *id)
{
    if (!id || strlen(id) != STORE_KEY_ID_LEN)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

int store_key_add(struct store *st, const char *workspace, const char *name, char key_out[STORE_KEY_LEN + 1])
{
    struct err e = ERR_INIT;
    if (!id_valid(workspace, STORE_WS_MAX))
        return ERR_NOTFOUND;
    if (!store_key_name_valid(name))
        return ERR_INVALID;
    int rc = store_key_create(st, workspace, key_out);
    if (rc < 0 || !name || !*name)
        return rc;
    char key_id[STORE_KEY_ID_LEN + 1];
    memcpy(key_id, key_out + 3, STORE_KEY_ID_LEN);
    key_id[STORE_KEY_ID_LEN] = 0;
    struct db_conn *c = store__acquire(st, &e);
    rc = c ? db_run(c, &e, "UPDATE api_keys SET name=?2 WHERE key_id=?1", "tt", key_id, name) : e.code;
    store__release(st, c);
    return rc;
}

int store_key_list(struct store *st, const char *workspace, json_t **out)
{
    struct err e = ERR_INIT;
    struct db_stmt *q = NULL;
    json_t *arr = json_array();
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? 0 : e.code;
    if (rc == 0)
        rc = db_prepare(c,
                        "SELECT key_id, name, created_ms, last_used_ms, revoked_ms FROM api_keys"
                        " WHERE workspace=?1 ORDER BY created_ms, key_id",
                        &q, &e);
    if (rc == 0) {
        db_bind_text(q, 1, workspace);
        while ((rc = db_step(q, &e)) == DB_ROW) {
            char cr[TIME_ISO_LEN], lu[TIME_ISO_LEN], rv[TIME_ISO_LEN];
            time_iso8601(db_col_int64(q, 2), cr);
            time_iso8601(db_col_int64(q, 3), lu);
            time_iso8601(db_col_int64(q, 4), rv);
            bool used = !db_col_null(q, 3), revoked = !db_col_null(q, 4);
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:o,s:o,s:b}", "keyId", db_col_text(q, 0), "name",
                                                 db_col_text(q, 1) ? db_col_text(q, 1) : "", "createdAt", cr,
                                                 "lastUsedAt", used ? json_string(lu) : json_null(), "revokedAt",
                                                 revoked ? json_string(rv) : json_null(), "active", !revoked));
        }
        if (rc == DB_DONE)
            rc = 0;
    }
    db_finalize(q);
    store__release(st, c);
    if (rc == 0)
        *out = arr;
    else
        json_decref(arr);
    return rc;
}

int store_key_revoke(struct store *st, const char *workspace, const char *key_id, bool *was_active)
{
    struct err e = ERR_INIT;
    struct db_stmt *q = NULL;
    bool active = false;
    if (was_active)
        *was_active = false;
    if (!key_id_valid(key_id))
        return ERR_INVALID;
    struct db_conn *c = store__acquire(st, &e);
    int rc = c ? db_begin(c, &e) : e.code;
    if (rc == 0)
        rc = db_prepare(c, "SELECT revoked_ms FROM api_keys WHERE key_id=?1 AND workspace=?2", &q, &e);
    if (rc == 0) {
        db_bind_text(q, 1, key_id);
        db_bind_text(q, 2, workspace);
        rc = db_step(q, &e);
        if (rc == DB_ROW) {
            active = db_col_null(q, 0);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = ERR_NOTFOUND;
        }
    }
    db_finalize(q);
    if (rc == 0 && active)
        rc = db_run(c, &e, "UPDATE api_keys SET revoked_ms=?3 WHERE key_id=?1 AND workspace=?2", "tti", key_id,
                    workspace, time_now_ms());
    if (rc == 0 && active)
        rc = db_run(c, &e, "UPDATE api_key_gen SET gen=gen+1 WHERE id=1", "");
    if (c) {
        if (rc == 0)
            rc = db_commit(c, &e);
        else
            db_rollback(c);
        store__release(st, c);
    }
    if (rc == 0 && active)
        kc_invalidate(st);
    if (rc == 0 && was_active)
        *was_active = active;
    return rc;
}
