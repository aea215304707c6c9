/*
 * store_int.h — private to src/store/: the store struct and helpers shared
 * between its files.
 */
#ifndef VBATCH_STORE_INT_H
#define VBATCH_STORE_INT_H

#include <pthread.h>
#include <sys/socket.h>

#include "base/base.h"

#include "store/store.h"
#include "store/db.h"

#define STORE_POOL_MAX 16

struct store_net_rule {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t addr[16];  /* network address */
    int prefix;        /* prefix length in bits */
};

/* One backend of the blob store (the local folder in blob.c, S3 in
 * blob_s3.c).  Keys are checked by each call; errors as in store.h. */
struct store_blob_ops {
    const char *name;
    /* sync: durable on return (local: temp file, fsync, rename) */
    int (*put)(struct store *st, const char *key, const void *data, size_t len, bool sync);
    /* Move the finished file src (open as fd, or -1) in under key; on
     * success src no longer exists. */
    int (*publish)(struct store *st, const char *key, const char *src, int fd);
    int (*open)(struct store *st, const char *key, int *fd, int64_t *size);
    int (*read)(struct store *st, const char *key, size_t max, char **data, size_t *len);
    int (*read_range)(struct store *st, const char *key, int64_t off, size_t len, void *buf, size_t *got);
    int (*size)(struct store *st, const char *key, int64_t *size);
    int (*del)(struct store *st, const char *key);
    int (*del_prefix)(struct store *st, const char *prefix);
    int (*sync)(struct store *st);
    int (*list)(struct store *st, const char *prefix, store_blob_list_fn fn, void *ud);
};
extern const struct store_blob_ops store__blob_local;
extern const struct store_blob_ops store__blob_s3;

struct s3;

struct store {
    char *dir;                 /* data folder, owned */
    char *blob_dir;            /* DATA/blobs, owned */
    const struct store_blob_ops *blob; /* the blob backend (store__blob_local
                                  unless store_blobs_configure chose S3) */
    struct s3 *s3;             /* the S3 client of the s3 backend, owned; else NULL */
    struct s3 *s3_sign;        /* the client that presigns (--blobs-presign-credentials),
                                  owned; NULL: s3 presigns */
    bool blob_copy_ins;        /* the store accepts an unsigned x-amz-copy-source on a
                                  URL this process presigns (probed at configure) */
    char *blob_name;           /* "s3://bucket/prefix at endpoint", owned; NULL: local */
    bool blob_put_once;        /* the S3 store refuses a PUT with "If-None-Match: *"
                                  to an existing key (probed at configure) */
    char *tmp_dir;             /* DATA/tmp, owned */
    char *db_path;             /* DATA/vbatch.db, owned */
    char *owner;               /* store_owner(): "<host>-<pid>-<rnd>", owned */
    uint8_t secret[32];        /* installation secret */
    int64_t reserve;           /* bytes kept free (store_reserve_set) */

    struct db *db;             /* the SQL layer's pool (db.h), owned */

    struct store_quota quota_def; /* quotas.c: defaults (0 = unlimited) */
    int64_t quota_upload_ttl_ms;  /* quotas.c: how long a URL counts as pending */

    pthread_mutex_t net_mu;    /* guards the allow-list */
    struct store_net_rule *net_rules; /* owned array */
    int net_nrules;

    /* outbox sender (outbox.c) */
    pthread_mutex_t ob_mu;     /* guards the ob_ fields */
    pthread_t ob_thread;
    bool ob_running;           /* thread started and not joined */
    bool ob_stop;              /* asks the thread to exit */
    bool ob_kick;              /* work may be due now */
    void *ob_multi;            /* the sender's CURLM * while it runs (for
                                  curl_multi_wakeup), else NULL; not owned */
    struct store_outbox_opts ob_opts;
    struct store_s3sink *ob_s3sink; /* where s3_put rows go (borrowed), or NULL */

    struct store_keycache *keys; /* keys.c: verified keys of this process, owned */
};

/* The SQL layer of st: owner files under store/ borrow connections here. */
static inline struct db *store__db(struct store *st)
{
    return st->db;
}

/* Borrow / give back a connection of st's pool for an owner file's
 * statements.  NULL with ERR_UNAVAILABLE in *e when a PostgreSQL server
 * cannot be reached. */
struct db_conn *store__acquire(struct store *st, struct err *e);
void store__release(struct store *st, struct db_conn *c);

/* keys.c: migrate the "keys" component (after "core") and make the key
 * cache; free it. */
int store__keys_init(struct store *st, struct err *e);
void store__keys_free(struct store *st);

/* sql_sqlite.c / sql_pg.c: the core schema, one statement text per
 * migration, one list per backend. */
extern const char *const store__core_migrations[];
extern const int store__core_migrations_n;
extern const char *const store__core_migrations_pg[];
extern const int store__core_migrations_pg_n;

/* blob_s3.c: the whole object key into file fd (a temp file). */
int store__blob_s3_get_fd(struct store *st, const char *key, int fd, int64_t *size);
/* blob_s3.c: bytes [off, off+len) of a blob with one range GET into an
 * unlinked temp file under DATA/tmp, positioned at 0 (store_blob_open_at
 * of an item inside a tar shard).  ERR_PARSE when the object is shorter. */
int store__blob_s3_open_range(struct store *st, const char *key, int64_t off, int64_t len, int *fd);
/* blob_s3.c: free the S3 backend's state (store_close). */
void store__blobs_free(struct store *st);

/* net.c */
bool store__net_addr_allowed(struct store *st, const struct sockaddr *sa);
void store__net_free(struct store *st);

/* outbox.c */
/* Queue a webhook inside c's open transaction (the owner files' way to
 * report a state change exactly when it commits; see store_outbox_enqueue
 * in store.h for the arguments).  ERR_INVALID for a bad argument. */
int store__outbox_enqueue(struct db_conn *c, const char *url, const char *workspace, const char *order_key,
                          const char *payload, bool sign, struct err *e);
void store__outbox_init(struct store *st);
/* Cut every " at <scheme>://host[:port]..." out of an error text, in
 * place (the object store's errors name the operator's endpoint, which a
 * job's log, read by the workspace's API users, does not show). */
void store__strip_endpoints(char *t);
/* Migrations of the outbox_once table (component "outbox_once"). */
int store__outbox_once_init(struct store *st, struct err *e);
void store__outbox_destroy(struct store *st);

#endif
