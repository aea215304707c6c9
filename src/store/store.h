/*
 * store — durable state of one vbatch installation: the SQL database
 * (SQLite in WAL mode under DATA/vbatch.db), the blob store (files under
 * DATA/blobs), signed URLs for the blob store, workspaces and API keys, the
 * workflow registry, and the webhook outbox with its sender thread.
 *
 * Everything above store/ (staging, jobs, api) reaches the database only
 * through a connection borrowed from the pool here, and changes state only
 * inside a transaction (store_tx_begin/commit/rollback).  Other modules add
 * their own tables with store_migrate(); the versions are kept per
 * component in the table schema_versions.
 *
 * Data dir layout (see docs/STORAGE.md):
 *   DATA/vbatch.db (+ -wal, -shm)   SQLite database
 *   DATA/secret                     32 bytes, 0600: a copy of the installation
 *                                   secret (kept in the database): HMAC key
 *                                   of signed URLs and webhook signatures
 *   DATA/blobs/<key>                one file per blob
 *   DATA/tmp/                       temp files; same file system as blobs,
 *                                   so a finished temp file is renamed in
 *
 * Thread safety: every function here may be called from any thread unless
 * said otherwise.  A sqlite3 connection returned by store_db_acquire() is
 * owned by the calling thread until it gives it back.
 *
 * Errors: 0 on success, <0 on failure (see base.h): ERR_NOTFOUND,
 * ERR_EXISTS, ERR_INVALID (bad id/key), ERR_AUTH (bad key or signature),
 * ERR_LIMIT (size limit), ERR_AGAIN (database busy), ERR_NOSPACE (storage
 * full: SQLITE_FULL, ENOSPC, EDQUOT on any write), ERR_INTERNAL (SQLite or
 * library failure), -errno.
 */
#ifndef VBATCH_STORE_H
#define VBATCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "base/base.h"

struct store;

/* ---- open / close ------------------------------------------------------ */

/* Open (creating if needed) the data folder 'data_dir': makes the folders,
 * opens the database, applies the core migrations ("core" component:
 * workspaces, api_keys, workflows, outbox, secrets) and reads (or makes)
 * the installation secret.
 * The caller frees *out with store_close(). */
int store_open(const char *data_dir, struct store **out);
/* The same with the database named: db_target NULL or "" is SQLite in
 * DATA/vbatch.db; "postgres://..." / "postgresql://..." is a PostgreSQL
 * database (any libpq URI; the data folder still holds the blobs and the
 * secret).  A bad URL, an unreachable server, a wrong password or a
 * database migrated by a newer vbatch fail here with a one-line reason in
 * *e (ERR_INVALID, ERR_UNAVAILABLE, ERR_AUTH, ERR_UNSUPPORTED); the
 * password never appears in it.  Every table runs on either backend
 * through the owner files; only the raw store_db_acquire()/store_migrate()
 * below (kept for tests of the SQLite file itself) are SQLite-only. */
int store_open_ex(const char *data_dir, const char *db_target, struct store **out, struct err *e);
/* The installation secret (HMAC key of signed URLs and webhook
 * signatures) is the database's, so that every process on one database
 * agrees whatever its data folder: store_open_ex uses the database's row;
 * without one it stores DATA/secret's (an existing installation keeps its
 * signed URLs valid) or 32 new random bytes (race-safe between processes
 * starting at once).  DATA/secret is kept equal to the secret in use
 * (what webhook receivers are given); a different one is renamed
 * DATA/secret.old.
 * store_secret_set_file: use the secret in 'path' instead (32 bytes, or
 * 64 hex digits and an optional newline) — give the same file to every
 * process.  ERR_INVALID with the reason for a bad file. */
int store_secret_set_file(struct store *st, const char *path, struct err *e);
/* Whether the database is SQLite (else PostgreSQL). */
bool store_db_is_sqlite(const struct store *st);
/* The database's name for messages: the SQLite path, or the URI without
 * its password. */
const char *store_db_name(const struct store *st);
/* Stop the outbox sender if running, close every connection.  NULL ok.
 * All borrowed connections must have been given back. */
void store_close(struct store *st);
/* The data folder given to store_open(); valid until store_close(). */
const char *store_data_dir(const struct store *st);
/* This handle's owner name for claims and leases in the database (shards
 * being indexed or fetched, singleton leases, and by default the jobs
 * module's task leases): "<host>-<pid>-<6 random [a-z0-9]>", made at
 * store_open; one per open store, so two handles in one process act as two
 * processes.  Valid until store_close(). */
const char *store_owner(const struct store *st);

/* ---- singleton leases (leases.c) ------------------------------------------ */

/* A named lease held by one owner at a time across every process on the
 * database (table `leases`: name, owner, until_ms), for background work
 * that one process should do at a time (the expiry sweeper's
 * "staging-sweep").  Take: 1 when owner now holds it until now + ttl_ms
 * (it was free, expired, or already owner's: renewed), 0 when another
 * owner holds it and it has not expired, <0 on a database error.  A holder
 * that dies loses it when until_ms passes.  Times are the callers' clocks
 * (ms since the epoch): machines sharing a database keep them in sync. */
int store_lease_take(struct store *st, const char *name, const char *owner, int64_t ttl_ms, struct err *e);
/* Give the lease up when owner holds it (a clean stop), so another process
 * takes it at its next try.  0 also when owner did not hold it. */
int store_lease_release(struct store *st, const char *name, const char *owner, struct err *e);

/* ---- workspace quotas (store/quotas.c, docs/STORAGE.md) -------------------- */

/* Limits of one workspace; 0 = unlimited.  In store_quota_set, -1 keeps
 * the stored value and STORE_QUOTA_DEFAULT goes back to the process's
 * default. */
struct store_quota {
    int64_t max_staged_bytes;    /* bytes of the workspace's items (all batches) */
    int64_t max_jobs;            /* running (non-terminal) jobs */
    int64_t max_pending_uploads; /* signed upload URLs issued and not used yet */
    int64_t rate_limit;          /* authenticated requests per second, all keys
                                  * and processes together (store_rate_take) */
    int64_t rate_burst;          /* requests at once before rate_limit applies;
                                  * 0: the rate */
};
#define STORE_QUOTA_DEFAULT (-2)
/* The defaults of workspaces without a value of their own (the serve
 * flags; all 0 = unlimited until set), and how long an unused upload URL
 * counts as pending (its lifetime).  Call before serving. */
void store_quota_defaults_set(struct store *st, const struct store_quota *q, int64_t upload_ttl_ms);
/* Store ws's own limits (fields as above). */
int store_quota_set(struct store *st, const char *ws, const struct store_quota *q, struct err *e);
/* ws's effective limits (its own, else the defaults) and, when usage is
 * not NULL, its current use in the same fields (staged bytes, running
 * jobs, pending upload URLs). */
int store_quota_get(struct store *st, const char *ws, struct store_quota *q, struct store_quota *usage,
                    struct err *e);

/* The request rate limits of ws alone (its own, else the defaults), read
 * without a transaction: what api_auth refreshes once a second. */
int store_rate_limits(struct store *st, const char *ws, int64_t *rate, int64_t *burst, struct err *e);
/* Take one request of ws's rate limit `rate` per second with bursts of
 * `burst` (>= 1), shared by every process of the database: a GCRA (the
 * token bucket as one timestamp per workspace, table ws_rate) updated in
 * one statement.  Returns 0 and *wait_ms = 0 when the request may go,
 * 0 and *wait_ms > 0 (ms until the next one may) when it is over the
 * limit (nothing is counted then), <0 on a database error. */
int store_rate_take(struct store *st, const char *ws, int64_t rate, int64_t burst, int64_t now_ms,
                    int64_t *wait_ms, struct err *e);
/* The same for up to n requests at once (a process reserving some ahead):
 * *got = n when all n fit, else 1 when one does, else 0 with *wait_ms as
 * above. */
int store_rate_take_n(struct store *st, const char *ws, int64_t rate, int64_t burst, int64_t now_ms, int64_t n,
                      int64_t *got, int64_t *wait_ms, struct err *e);

/* ---- free space ------------------------------------------------------------ */

/* An acknowledged write must never be lost to a full disk: every write
 * that is answered 200 (a tar shard or video PUT, an image upload) and the
 * work it queues (a shard's extraction) first asks store_space_check()
 * whether the bytes it will need fit, leaving `reserve` bytes free for the
 * database and small writes, and is refused with ERR_NOSPACE up front
 * otherwise.  Default reserve: STORE_RESERVE_DEFAULT. */
#define STORE_RESERVE_DEFAULT (16LL << 20)
/* Set the reserve (bytes, >= 0); call before serving. */
void store_reserve_set(struct store *st, int64_t bytes);
/* Bytes the data folder's file system has free for vbatch (statvfs
 * f_bavail * f_frsize), or -errno. */
int64_t store_free_bytes(struct store *st);
/* 0 when `need` more bytes fit with the reserve left free; else
 * ERR_NOSPACE and "storage full: <free> bytes free, <what> needs <need>
 * plus a reserve of <reserve>" in err.  A failed statvfs is not a refusal. */
int store_space_check(struct store *st, int64_t need, const char *what, struct err *err);

/* ---- SQL connections and transactions ---------------------------------- */

/* Borrow a connection from the pool (blocks while all are in use).  The
 * connection has WAL, foreign keys on and a 5 s busy timeout.  Give it back
 * with store_db_release() from the same thread; never close it.  SQLite
 * only (the way across for code not yet on the owner files): on a
 * PostgreSQL store it aborts. */
sqlite3 *store_db_acquire(struct store *st);
void store_db_release(struct store *st, sqlite3 *db);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK on a borrowed connection.  Every state
 * change runs between begin and commit.  begin returns ERR_AGAIN when the
 * write lock could not be had within the busy timeout (transient: retry
 * later).  rollback never fails visibly. */
int store_tx_begin(sqlite3 *db);
int store_tx_commit(sqlite3 *db);
void store_tx_rollback(sqlite3 *db);
/* Run one SQL text (may hold several statements, no parameters). */
int store_exec(sqlite3 *db, const char *sql);
/* The code for a failed SQLite call on db that returned src: ERR_AGAIN
 * (busy, locked), ERR_NOSPACE (SQLITE_FULL, or an I/O error whose errno
 * is ENOSPC or EDQUOT), ERR_INTERNAL otherwise. */
int store_sql_err(sqlite3 *db, int src);
/* sqlite3_step of a statement that returns no row (INSERT, UPDATE,
 * DELETE): 0 on SQLITE_DONE, else store_sql_err().  Does not finalize. */
int store_step_done(sqlite3 *db, sqlite3_stmt *q);

/* Schema migrations for a component (e.g. "jobs"); SQLite only (a
 * PostgreSQL store refuses with ERR_UNSUPPORTED: owner files under store/
 * migrate with db_migrate and one list per backend).   stmts[i] is the SQL of
 * migration i+1 (several statements separated by ';' are fine).  The ones
 * above the component's recorded version are applied in order, each in its
 * own transaction together with the version bump.  Calling it again with
 * the same or a longer list is safe (idempotent).  Never edit an applied
 * statement: append a new one. */
int store_migrate(struct store *st, const char *component, const char *const *stmts, int n);

/* ---- workspaces and API keys ------------------------------------------- */

#define STORE_KEY_LEN 40 /* API key: "vb_" + 37 lowercase alnum chars */
#define STORE_WS_MAX 64  /* workspace names: ^[a-z0-9_-]{1,64}$ */

/* Create workspace 'name' with one new API key, written to key_out (shown
 * once; only its SHA-256 is stored).  ERR_INVALID bad name, ERR_EXISTS. */
int store_workspace_create(struct store *st, const char *name, char key_out[STORE_KEY_LEN + 1]);
/* Add another key to an existing workspace.  ERR_NOTFOUND. */
int store_key_create(struct store *st, const char *workspace, char key_out[STORE_KEY_LEN + 1]);
/* First start: when there is no workspace at all, create 'name' (e.g.
 * "default") with a key, set *created = true and write the key; otherwise
 * *created = false and key_out is "". */
int store_workspace_ensure_default(struct store *st, const char *name, bool *created,
                                   char key_out[STORE_KEY_LEN + 1]);
/* Check an API key (constant-time hash compare).  On success writes the
 * workspace name to ws_out.  ERR_AUTH for an unknown, malformed or revoked
 * key.  Verified keys are cached per store handle (= process) by their
 * SHA-256; the cache is emptied when any process revokes a key, which
 * every handle notices within 250 ms of its next call (keys.c).  Records
 * the key's last use at most once per touch interval (60 s) per key and
 * handle. */
int store_key_verify(struct store *st, const char *key, char ws_out[STORE_WS_MAX + 1]);

#define STORE_KEY_ID_LEN 8 /* key id: characters 3..10 of the key */

/* Key names: 0 to 64 printable ASCII characters (NULL: none). */
bool store_key_name_valid(const char *name);
/* store_key_create with a name (NULL or "": none).  ERR_NOTFOUND no such
 * workspace, ERR_INVALID bad name. */
int store_key_add(struct store *st, const char *workspace, const char *name, char key_out[STORE_KEY_LEN + 1]);
/* *out = new JSON array of workspace's keys, oldest first:
 * {"keyId","name","createdAt","lastUsedAt" (null: never),"revokedAt"
 * (null: active),"active"}.  Never the clear key nor its hash.  An unknown
 * workspace lists []. Caller json_decref()s. */
int store_key_list(struct store *st, const char *workspace, json_t **out);
/* Revoke key key_id of workspace (the key stays listed with revokedAt).
 * ERR_INVALID malformed id, ERR_NOTFOUND no such key in that workspace
 * (another workspace's key included).  Revoking a revoked key is a no-op;
 * *was_active (may be NULL) says whether this call revoked it. */
int store_key_revoke(struct store *st, const char *workspace, const char *key_id, bool *was_active);
/* The last-use write interval (default 60000 ms; for tests). */
void store_key_touch_interval_set(struct store *st, int64_t ms);
/* 0 if the workspace exists, ERR_NOTFOUND otherwise. */
int store_workspace_exists(struct store *st, const char *name);

/* ---- workflow registry --------------------------------------------------- */

/* Insert or replace the definition text (JSON, not checked here, at most
 * 4 MiB -> ERR_LIMIT) of workflow_id (^[a-z0-9_-]{1,64}$) in workspace. */
int store_workflow_put(struct store *st, const char *ws, const char *workflow_id, const char *definition);
/* *definition is malloc'd (caller frees).  ERR_NOTFOUND. */
int store_workflow_get(struct store *st, const char *ws, const char *workflow_id, char **definition);
/* *out = new JSON array of {"workflowId","createdAt","updatedAt"} sorted
 * by id; caller json_decref()s. */
int store_workflow_list(struct store *st, const char *ws, json_t **out);
/* ERR_NOTFOUND if absent. */
int store_workflow_delete(struct store *st, const char *ws, const char *workflow_id);

/* ---- blob store ---------------------------------------------------------- */

/* Two backends behind one set of calls (docs/STORAGE.md): the local folder
 * DATA/blobs (the default) and S3-compatible object storage.  Every
 * key-based call below (put, put_nosync, put_file, open, read, read_range,
 * size, delete, delete_prefix, sync, the writer) works on both.  What is
 * local on either: temp files (store_tmp_create, DATA/tmp) and
 * store_blob_path, which names a file only on the local backend (callers
 * that hand a file name to a library use store_blob_local_copy).
 *
 * Choose S3 with store_blobs_configure() after opening, before serving:
 *   url  "s3://bucket[/prefix]?endpoint=http(s)://host:port&region=R&path_style=0|1"
 *        (NULL, "" or "local": keep the local folder)
 *   cred_file NULL: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 *        AWS_SESSION_TOKEN from the environment; else a file of the same
 *        KEY=VALUE lines.
 * It checks the bucket with a signed HEAD: ERR_INVALID (bad URL, missing
 * credentials), ERR_AUTH (wrong credentials), ERR_NOTFOUND (no such
 * bucket), ERR_UNAVAILABLE (endpoint unreachable), with one line in *e that
 * never holds the secret.  On S3 a store that goes away later makes the
 * calls fail with ERR_UNAVAILABLE after retries (5xx, SlowDown, connection
 * errors: 4 retries, backoff from 100 ms).
 *   presign_cred_file NULL: the URLs handed to clients are presigned with
 *        the credentials above; else with these (a PutObject-only user).
 * Start-up probes (docs/STORAGE.md): put-once ("If-None-Match: *") and
 * copy-ins (an unsigned x-amz-copy-source on a presigned URL): a store
 * that takes copy-ins gets no put-once URLs and a loud warning; with
 * presign credentials that can still copy, ERR_INVALID (exit 2). */
int store_blobs_configure(struct store *st, const char *url, const char *cred_file, const char *presign_cred_file,
                          struct err *e);
/* Whether the blobs are in the local folder. */
bool store_blobs_local(const struct store *st);
/* For messages: the blob folder, or "s3://bucket/prefix at endpoint". */
const char *store_blobs_name(const struct store *st);

/* Keys: 1..512 chars of [A-Za-z0-9._-] segments separated by single '/',
 * no empty, "." or ".." segment, no leading or trailing '/'. */
#define STORE_BLOB_KEY_MAX 512
bool store_blob_key_valid(const char *key);

/* Create a temp file under DATA/tmp (same file system as the blobs): *path
 * is malloc'd (caller frees), *fd is open for writing (caller closes).  The
 * HTTP layer streams request bodies into these. */
int store_tmp_create(struct store *st, char **path, int *fd);

/* Remove temp files under DATA/tmp older than older_than_ms (orphans of a
 * crash or an aborted request).  Returns how many were removed, or <0. */
int store_tmp_sweep(struct store *st, int64_t older_than_ms);

/* Store bytes under key (temp file + fsync + rename; replaces). */
int store_blob_put(struct store *st, const char *key, const void *data, size_t len);
/* Same without temp file and without fsync, for bulk writers (the tar
 * indexer) that write many blobs and then call store_blob_sync() once
 * before committing the rows that reference them. */
int store_blob_put_nosync(struct store *st, const char *key, const void *data, size_t len);
/* syncfs() the file system of the blob store. */
int store_blob_sync(struct store *st);
/* Move an existing file (fsynced by this call) into the store under key.
 * The file must be on the data dir's file system (use store_tmp_create).
 * On success the file at src_path no longer exists. */
int store_blob_put_file(struct store *st, const char *key, const char *src_path);
/* Open for reading: *fd (caller closes), *size in bytes.  ERR_NOTFOUND.
 * On S3 the object is first downloaded into an unlinked temp file. */
int store_blob_open(struct store *st, const char *key, int *fd, int64_t *size);
/* Read a whole blob of at most max bytes (ERR_LIMIT beyond); *data is
 * malloc'd and NUL-terminated, caller frees. */
int store_blob_read(struct store *st, const char *key, size_t max, char **data, size_t *len);
/* Bytes [off, off+len) of a blob into buf (local pread, S3 range GET);
 * *got = bytes read, fewer at the end of the blob.  ERR_NOTFOUND. */
int store_blob_read_range(struct store *st, const char *key, int64_t off, size_t len, void *buf, size_t *got);
/* Size of a blob.  ERR_NOTFOUND. */
int store_blob_size(struct store *st, const char *key, int64_t *size);
/* Item bytes by address.  An item is (key, offset, length): a tar shard's
 * image is `length` bytes at `offset` of the shard's blob; a single upload,
 * a video, a job output or an item of a data folder written before shards
 * were kept whole is a whole blob (offset < 0, length ignored).  These are
 * the only calls that read an item's bytes (job workers, sidecars, the
 * /blobs download); store_blob_read_at reads through store_blob_read_range
 * (a range GET on S3).
 *
 * store_blob_read_at: the bytes into *data (malloc'd, NUL-terminated),
 * at most max (ERR_LIMIT beyond).  ERR_NOTFOUND when the blob is missing;
 * ERR_PARSE when it is shorter than offset + length (a damaged blob). */
int store_blob_read_at(struct store *st, const char *key, int64_t offset, int64_t length, size_t max, char **data,
                       size_t *len);
/* Open the bytes for streaming: *fd (caller closes), *start = where they
 * begin in the file, *size = how many; the same errors as
 * store_blob_read_at (no max).  Through store_blob_open (the backend's). */
int store_blob_open_at(struct store *st, const char *key, int64_t offset, int64_t length, int *fd, int64_t *start,
                       int64_t *size);
/* Absolute path of the blob file in the local folder (may not exist);
 * malloc'd.  Meaningless on the S3 backend: see store_blob_local_copy. */
char *store_blob_path(struct store *st, const char *key);
/* A local file holding the blob, for a library that wants a file name
 * (ffmpeg): the blob's own file on the local backend, a downloaded temp
 * file under DATA/tmp on S3.  *path malloc'd; give it back with
 * store_blob_local_release (which removes a temp copy). */
int store_blob_local_copy(struct store *st, const char *key, char **path);
void store_blob_local_release(struct store *st, char *path);
/* A presigned URL of the S3 backend (SigV4 query signing): method "GET",
 * "PUT" or "HEAD" on key until expires_unix_s (at most 7 days ahead);
 * length >= 0 signs the content-length of a PUT, so that the store refuses
 * any other size.  *url malloc'd.  ERR_UNSUPPORTED on the local backend
 * (it has store_sign_path). */
int store_blob_presign(struct store *st, const char *method, const char *key, int64_t expires_unix_s,
                       int64_t length, char **url);
/* A presigned PUT of key that writes it once: it signs "If-None-Match: *",
 * which the client must send (extensionHeaders), and the store refuses
 * (412) a PUT to a key that holds an object.  ERR_UNSUPPORTED on the local
 * backend and on a store that was found at start to overwrite anyway.
 * length >= 0 also signs the content-length: the store refuses any other
 * size.  *url malloc'd. */
int store_blob_presign_put_once(struct store *st, const char *key, int64_t expires_unix_s, int64_t length,
                                char **url);
/* Server-side copy of blob src to dst on the S3 backend (whole or not at
 * all; up to 5 GiB).  ERR_NOTFOUND; ERR_UNSUPPORTED on the local folder. */
int store_blob_copy(struct store *st, const char *src, const char *dst);
/* The same, only while src still has ETag etag (as listed; NULL: any):
 * ERR_EXISTS when src was replaced since (not logged as an error). */
int store_blob_copy_if(struct store *st, const char *src, const char *etag, const char *dst);
/* One page (max <= 1000 keys, in key order) of the S3 listing of
 * prefix + "/" from the key after start_after (NULL: the first): fn gets
 * each key, size and ETag (or NULL); *more: keys follow the page.  One
 * request.  ERR_UNSUPPORTED on the local folder. */
typedef int (*store_blob_list_etag_fn)(void *ud, const char *key, int64_t size, const char *etag);
int store_blob_list_etags(struct store *st, const char *prefix, const char *start_after, int max,
                          store_blob_list_etag_fn fn, void *ud, bool *more);
/* Delete one blob (absent is fine: returns 0). */
int store_blob_delete(struct store *st, const char *key);
/* Delete every blob whose key starts with prefix + "/" (a folder). */
int store_blob_delete_prefix(struct store *st, const char *prefix);

/* Call fn for every blob whose key starts with prefix + "/" (order not
 * specified): its key, size and modification time (ms since the epoch).
 * fn returns 0 to go on, anything else to stop (returned).  Local: a walk
 * of the folder; S3: a listing, 1000 keys a request. */
typedef int (*store_blob_list_fn)(void *ud, const char *key, int64_t size, int64_t mtime_ms);
int store_blob_list(struct store *st, const char *prefix, store_blob_list_fn fn, void *ud);

/* ---- orphan blobs (orphans.c; docs/STORAGE.md "Orphan objects") ---------- */

/* Blobs that no database row references (a process died between writing
 * them and committing the row that names them) are deleted by
 * store_orphans_sweep once older than grace_ms: it walks the folders b/,
 * jobs/, models/ and wsmodels/ with store_blob_list (either backend), skips
 * the younger blobs without a query and looks each older one up by the
 * kind of its key (orphans.c lists the rules: items, shards, pending
 * uploads, jobs, models).  A database error keeps the blob.  At most
 * keys_per_s keys are visited a second (0: no pacing) and at most
 * max_deletes deleted (0: no limit); tick (may be NULL) is called about
 * every second of the walk, and a nonzero answer stops it (the caller
 * renews its lease there, or stops). */
struct store_orphan_opts {
    int64_t grace_ms;
    int64_t keys_per_s;
    int64_t max_deletes;
    int (*tick)(void *ud);
    void *tick_ud;
};
struct store_orphan_stats {
    int64_t listed;  /* blobs seen */
    int64_t young;   /* younger than the grace period: not looked up */
    int64_t checked; /* looked up */
    int64_t deleted; /* orphans deleted */
    int64_t errors;  /* lookups or deletes that failed (blob kept) */
};
/* Run one sweep.  *out (may be NULL) gets the counts, also on failure.
 * <0 (and e) when a listing failed. */
int store_orphans_sweep(struct store *st, const struct store_orphan_opts *o, struct store_orphan_stats *out,
                        struct err *e);


/* Streaming writer: bytes go to a temp file, finish fsyncs and renames it
 * to key, abort (or any error) removes the temp file, leaving nothing.
 * limit > 0 caps the total size: a write beyond it returns ERR_LIMIT (the
 * writer must then be aborted).  One writer is used by one thread. */
struct store_blob_writer;
int store_blob_writer_open(struct store *st, const char *key, int64_t limit, struct store_blob_writer **out);
int store_blob_writer_write(struct store_blob_writer *w, const void *data, size_t len);
int64_t store_blob_writer_size(const struct store_blob_writer *w);
/* Kept mode, for a blob its writer reads again at once (a tar shard is
 * indexed from its bytes before its upload is answered): while the blob is
 * at most keep_max bytes, the writer also keeps it in memory, and writes
 * it to the temp file from there with O_DIRECT in 1 MiB steps (no page
 * cache copy, the disk busy while the rest arrives; buffered where the
 * file system takes no O_DIRECT).  A blob that outgrows keep_max, or a
 * writer when the process's kept writers already hold 512 MiB, is written
 * as by store_blob_writer_open.  Durability is the same: finish syncs
 * before it publishes. */
int store_blob_writer_open_kept(struct store *st, const char *key, int64_t limit, size_t keep_max,
                                struct store_blob_writer **out);
/* The blob's bytes so far (store_blob_writer_size of them) when the whole
 * blob is kept in memory, else NULL.  Valid until finish or abort. */
const void *store_blob_writer_kept(const struct store_blob_writer *w);
/* Bytes of the blob not yet in its temp file (kept mode writes whole 1 MiB
 * steps as they arrive, the tail at finish): what finish still needs on
 * the disk. */
int64_t store_blob_writer_unwritten(struct store_blob_writer *w);
/* Wait until the kept bytes handed to the disk so far are written (the
 * feeder thread of kept mode; then store_blob_writer_unwritten and the
 * file system's free space are exact). */
void store_blob_writer_settle(struct store_blob_writer *w);
/* Mark the blob as answered for (local folder): a tar shard acknowledged
 * before its rows were committed (staging/commits.c); the mark goes with
 * the blob when finish publishes it.  ERR_UNSUPPORTED on a file system
 * without user extended attributes (or on S3): the caller does without. */
int store_blob_writer_mark(struct store_blob_writer *w);
/* 1 when the local blob at key exists and carries that mark (*size set),
 * 0 when it does not exist or has no mark, <0 on error; ERR_UNSUPPORTED on S3. */
int store_blob_marked(struct store *st, const char *key, int64_t *size);
/* Publishes the blob and frees w (also on failure). */
int store_blob_writer_finish(struct store_blob_writer *w);
/* Removes the temp file and frees w.  NULL ok. */
void store_blob_writer_abort(struct store_blob_writer *w);

/* ---- signed URLs ---------------------------------------------------------- */

/* URL format (path + query, to be appended to the public base URL):
 *   /blobs/<key>?method=PUT&expires=<unix s>&limit=<bytes>&signature=<b64url>
 * signature = base64url(HMAC-SHA256(secret,
 *                       "v1\n" METHOD "\n" key "\n" expires "\n" limit)).
 * limit is 0 for GET.  The key is percent-encoded per segment in the URL. */
#define STORE_SIGNED_PREFIX "/blobs/"
/* *out is malloc'd, e.g. "/blobs/b/ws/x/y?method=GET&expires=...". */
int store_sign_path(struct store *st, const char *method, const char *key, int64_t expires_unix_s,
                    int64_t limit, char **out);
/* Verify the parts of a signed request.  method is the request's method
 * ("GET"/"HEAD" verify as GET), key the decoded path after "/blobs/", the
 * other three the raw query values (NULL when absent).  On success returns
 * 0 and *limit_out (may be NULL) = the signed size limit.  ERR_AUTH for a
 * missing, tampered, expired or wrong-method signature; ERR_INVALID for a
 * malformed key. */
int store_signed_verify(struct store *st, const char *method, const char *key, const char *q_method,
                        const char *q_expires, const char *q_limit, const char *q_signature,
                        int64_t *limit_out);
/* A GET URL of `length` bytes at `offset` of key (a tar shard's item):
 *   /blobs/<key>?method=GET&expires=E&limit=0&offset=O&length=L&signature=S
 * signed over "v1\nGET\n" key "\n" E "\n0\n" O "\n" L, so neither the
 * range nor its absence can be changed without breaking the signature. */
int store_sign_get_range(struct store *st, const char *key, int64_t expires_unix_s, int64_t offset, int64_t length,
                         char **out);
/* store_signed_verify for a GET that may carry a range: q_offset and
 * q_length are the raw query values (both NULL: the whole blob; *offset_out
 * = -1).  ERR_AUTH when only one is given or either is not a number. */
int store_signed_verify_range(struct store *st, const char *method, const char *key, const char *q_method,
                              const char *q_expires, const char *q_limit, const char *q_offset,
                              const char *q_length, const char *q_signature, int64_t *offset_out,
                              int64_t *length_out);
/* HMAC-SHA256 of data with the installation secret, lowercase hex (65). */
void store_secret_hmac_hex(struct store *st, const void *data, size_t len, char out[65]);

/* ---- outbound network guard (SSRF) --------------------------------------- */

/* Comma-separated list of IPs or CIDRs ("127.0.0.1,10.0.0.0/8,::1") that
 * outbound fetches and webhooks may reach although they are loopback,
 * private, link-local or otherwise non-public.  NULL/"" = none (default).
 * ERR_PARSE on a bad entry. */
int store_net_allow_set(struct store *st, const char *list);
/* Configure a curl easy handle for a user-supplied URL: http/https only
 * (redirects too, at most 3), and every address curl connects to is
 * checked against the public/allow-list rule (connection refused
 * otherwise).  curl is a CURL *. */
void store_net_guard_curl(struct store *st, void *curl);
/* Cheap pre-check for a request handler: 0 if url is http(s) with a host
 * whose resolved addresses are all allowed; ERR_INVALID with *why set to a
 * static message ("unsupported scheme", "private address", ...). */
int store_net_check_url(struct store *st, const char *url, const char **why);

/* ---- object store of workflow s3_sink steps ----------------------------- */

/* An S3-compatible bucket given by the operator ("s3://bucket[/prefix]?
 * endpoint=URL&region=R&path_style=0|1", credentials as for the blob
 * store: the file cred_file or the AWS_* variables).  Makes no request.
 * Thread-safe; free with store_s3sink_free (accepts NULL). */
struct store_s3sink;
int store_s3sink_open(const char *url, const char *cred_file, struct store_s3sink **out, struct err *e);
void store_s3sink_free(struct store_s3sink *k);
const char *store_s3sink_bucket(const struct store_s3sink *k);
/* PUT data under "<prefix>/<key>" (the client's retries, all of them
 * ended by deadline_ms, time_now_ms() clock, 0: none); 0 or <0 with e set
 * (never holding the credentials). */
int store_s3sink_put(struct store_s3sink *k, const char *key, const void *data, size_t len, int64_t deadline_ms,
                     struct err *e);

/* ---- webhook outbox --------------------------------------------------------- */

/* Queue a webhook POST of payload (a JSON object text, <= 1 MiB) to url.
 * Sent with Content-Type: application/json and
 * "Authorization: Bearer rf_<workspace>"; each attempt sets
 * "delivery_attempt": N (1-based) in the body.  sign = also send
 * "X-Vbatch-Signature: sha256=<hex HMAC of the exact body, installation
 * secret>".  order_key (<= 512 bytes, NULL = none): webhooks of one
 * workspace with the same key are delivered one at a time in the order
 * they were queued (committed); a later one waits until the earlier is
 * delivered or has failed for good ("job/<id>", "ingest/<id>").  The
 * owner files under store/ queue inside their own transaction with
 * store__outbox_enqueue (store_int.h), so the webhook is durable exactly
 * when the state change is.  ERR_INVALID for a payload that is not a JSON
 * object or too long. */
int store_outbox_enqueue(struct store *st, const char *url, const char *workspace, const char *order_key,
                         const char *payload, bool sign);

/* Same without an order key, queued at most once per once_key (<= 512
 * bytes, e.g. a workflow sink's "<job>/<item>/<frame>/<step>"): a second
 * call with a key already queued does nothing and sets *queued false.
 * The key and the row are written in one transaction.  Keys are kept as
 * long as delivered rows (store_outbox_purge).
 * req (NULL: the JSON POST above; <= 8 MiB): a workflow webhook_sink's
 * request, a JSON object {"method": "GET"|"POST"|"PUT", "headers": {name:
 * value}, "form": {name: value}, "files": {name: base64 bytes}} (each dict
 * optional, values strings; header names without ':' or CR/LF, values
 * without CR/LF).  Sent as Roboflow's requests.request(): with files a
 * multipart/form-data body (form fields, then each file named and
 * file-named by its key), else with form an urlencoded body, else the JSON
 * payload (+ delivery_attempt); headers "Idempotency-Key: <the payload's
 * idempotency_key>" and "X-Vbatch-Delivery-Attempt: N", the user's headers
 * last (an Authorization of theirs replaces the workspace bearer); the
 * signature covers the body when it is not multipart.  "slack_ok": true
 * in req (a call of Slack's Web API): a 2xx answer counts only when its
 * body is JSON with "ok": true (Slack answers errors with 200).
 * job (NULL: none): the job whose workflow sink queues the row; if the
 * row fails for good while the job exists, the job's log gets one error
 * "sink-delivery-failed" (module "sinks") whose payload is job->ref with
 * "destination" (an s3_put's s3://bucket/key, else host:port), "attempts"
 * and "error" added.
 * ERR_INVALID for a bad req or job (pk <= 0, ref NULL or longer than
 * STORE_OUTBOX_JOB_REF_MAX). */
#define STORE_OUTBOX_JOB_REF_MAX 4096
struct store_outbox_job {
    int64_t pk;      /* the job's row (store_job pk) */
    const char *ref; /* a JSON object text: which step, image, frame, sink */
};
int store_outbox_enqueue_once(struct store *st, const char *once_key, const char *url, const char *workspace,
                              const char *payload, const char *req, bool sign, const struct store_outbox_job *job,
                              bool *queued);
/* Two more kinds of req (<= 24 MiB; url and payload as above, the url
 * only names the destination):
 * - {"kind": "slack_upload", "api": Slack Web API base URL, "token",
 *   "channel", "comment", "files": [{"name", "data": base64 bytes}] (1..32)}:
 *   Slack's files_upload_v2, as one delivery: per file
 *   <api>/files.getUploadURLExternal (filename, length), then the bytes
 *   POSTed to the upload_url it answers (checked by the SSRF guard first),
 *   then one <api>/files.completeUploadExternal (files [{"id", "title"}],
 *   channel_id, initial_comment); form-encoded, "Authorization: Bearer
 *   <token>"; each API answer must be JSON with "ok": true.  Any failure
 *   fails the whole attempt and the next attempt starts over (files
 *   uploaded but never completed are not shared by Slack).  The attempt,
 *   all calls together, ends within the sender's timeout_ms plus 1 s per
 *   128 KiB of attachment bytes (at most 10 minutes in all); its row's
 *   lease is lengthened to match when it is claimed.
 * - {"kind": "s3_put", "key", "data": base64 bytes}: a PUT of the bytes
 *   under key into the bucket given to store_outbox_set_s3sink; run on a
 *   thread of its own, the s3 client's retries included, all ended within
 *   timeout_ms (so within the row's lease).  The row's url is
 *   "s3sink:<bucket>/<key>": a sender claims such a row only when its
 *   process has that bucket set (a process without one, or with another,
 *   leaves the row to a process that has it). */
/* The bucket s3_put rows are written to (borrowed for the store's life;
 * NULL: none).  Set it before store_outbox_start; the sender claims
 * only the s3_put rows of this bucket. */
void store_outbox_set_s3sink(struct store *st, struct store_s3sink *k);

struct store_outbox_opts {
    int max_attempts;      /* give up after this many; default 8 */
    int64_t backoff_ms;    /* delay after the first failed attempt; doubles
                              each time; default 1000 */
    int64_t backoff_max_ms;/* cap of the delay; default 300000 */
    long timeout_ms;       /* per POST, connection included; default 10000 */
    int max_inflight;      /* POSTs in flight at once; default 16, at most 64 */
    int max_per_dest;      /* of which to one host:port; default 4 */
    bool s3_only;          /* claim only s3_put rows (a process without the
                              network settings webhooks need: vbatch worker) */
};
void store_outbox_opts_default(struct store_outbox_opts *o);
/* Start the sender thread (no-op if running).  It keeps up to max_inflight
 * POSTs in flight, at most max_per_dest of them to one destination (the
 * URL's host:port), so a receiver that does not answer only delays its own
 * webhooks.  A 2xx answer marks a row delivered; anything else (or no
 * answer within timeout_ms) schedules the next attempt at the time of the
 * failure + backoff_ms * 2^(attempt-1) (capped); after max_attempts the
 * row is marked failed.  Rows survive restarts.  Each row is claimed in
 * the database for the length of its POST (a lease of 1.5 x timeout_ms,
 * at least timeout_ms + 1 s),
 * so several processes can run senders on one database; a row whose
 * sender died during the POST is sent again, with the same payload and the
 * next delivery_attempt, when its lease ends. */
int store_outbox_start(struct store *st, const struct store_outbox_opts *o);
/* Wake the sender now (enqueue does this already). */
void store_outbox_kick(struct store *st);
/* Stop and join the sender (no-op if not running).  POSTs in flight are
 * abandoned and their rows handed back, due at once with the same
 * attempt number. */
void store_outbox_stop(struct store *st);
/* Delete delivered and failed rows finished before now - older_than_ms
 * (the staging sweeper calls it with 7 days).  *n (may be NULL) = rows. */
int store_outbox_purge(struct store *st, int64_t older_than_ms, int64_t *n);
/* Counts for tests/metrics: pending (incl. retrying), delivered, failed. */
int store_outbox_counts(struct store *st, int64_t *pending, int64_t *delivered, int64_t *failed);

#endif
