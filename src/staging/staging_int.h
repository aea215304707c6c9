/*
 * staging_int.h — private to src/staging/.
 */
#ifndef VBATCH_STAGING_INT_H
#define VBATCH_STAGING_INT_H

#include <pthread.h>

#include "base/base.h"
#include "staging/staging.h"

struct staging {
    struct store *st;            /* borrowed */
    struct staging_opts o;       /* strings owned (copied) */
    char *base_url;              /* owned copy of o.public_base_url */
    char *net_allow;             /* owned copy of o.net_allow */

    pthread_mutex_t mu;          /* guards the fields below */
    pthread_cond_t cv;           /* kicks for the background threads */
    bool running;
    bool stop;
    bool kick_index, kick_fetch; /* work was queued */
    pthread_t th_index, th_fetch, th_sweep;
    struct staging__putting *putting; /* keys of signed PUTs in flight (ingest.c) */
    /* storage-full backoff of the indexer and the fetcher (indexer.c):
     * no try before *_retry_at (monotonic ms); *_backoff the last delay */
    int64_t index_retry_at, index_backoff, fetch_retry_at, fetch_backoff;
};

struct staging__putting {
    struct staging__putting *next;
    char key[];
};

void staging__kick(struct staging *s, bool index, bool fetch);

/* sql.c */
extern const char *const staging__migrations[];
extern const int staging__migrations_n;

/* Batch row lookup (staging.c).  bid = internal row id. */
struct staging__batch {
    int64_t bid;
    char mode[16];        /* single | bulk | output */
    char type[32];        /* simple-batch | sharded-batch | multipart-batch */
    char content[16];     /* images | videos | mixed */
};
/* Inside a transaction: find the (unexpired) batch, or create it when
 * create_mode is not NULL ("single" or "bulk").  Refuses mixing. */
int staging__batch_get_or_create(struct staging *s, sqlite3 *db, const char *ws, const char *batch,
                                 const char *display_name, const char *create_mode, struct staging__batch *out, struct err *err);
int staging__batch_find(struct staging *s, sqlite3 *db, const char *ws, const char *batch,
                        struct staging__batch *out, struct err *err);
/* Inside a transaction: insert one item row and bump counters/content type. */
int staging__item_insert(sqlite3 *db, int64_t bid, const char *part, const char *name, const char *shard_id,
                         const char *content_type, const char *mime, const char *blob_key, int64_t size);
/* Sidecar files (staging.c).  Is name "<something>.json" other than
 * notification_config.json? */
bool staging__sidecar_name(const char *name);
/* Check a sidecar's bytes: 0 when it is a JSON object of at most
 * STAGING_SIDECAR_MAX bytes, else ERR_INVALID/ERR_LIMIT with a static
 * reason in *why. */
int staging__sidecar_check(const void *data, size_t len, const char **why);
/* Inside a transaction: make sure the batch has the metadata part. */
int staging__sidecar_part_ensure(sqlite3 *db, int64_t bid);
/* Inside a transaction: set a shard's state and status, append to history. */
int staging__shard_status(sqlite3 *db, const char *shard_id, const char *state, const char *status_name,
                          const char *status_type, json_t *meta, int64_t objects);
/* File names for staged files: 1..255 bytes, no '/', no "..", no control
 * characters, not "." */
bool staging__name_valid(const char *name);
/* true when str (NUL-terminated) is well-formed UTF-8 (no surrogates, no overlongs) */
bool staging__utf8_valid(const char *str);

/* ingest.c: content check of a whole image (vis_check: the header, the
 * size limits and the whole stream decoded at a tiny scale): the MIME type
 * (static) when a job can decode the bytes, else NULL with *why (may be
 * NULL) a static phrase saying why and *type (may be NULL) the failure
 * type of a shard's failedFiles: "unsupported-file-type" (not an image
 * format vbatch decodes, animated WebP) or "corrupt-image-file"
 * (truncated, corrupt, too many pixels). */
const char *staging__image_mime(const void *data, size_t len, const char **type, const char **why);
/* ingest.c: container probe of a file (vis_video_probe_file): 0 if it holds at least
 * one video stream, ERR_INVALID otherwise. *mime gets a static string. */
int staging__video_probe(const char *path, const char **mime);

/* Tar scanning (indexer.c), separated from the DB for the fuzz target. */
struct staging__tar_limits {
    int64_t max_image_bytes;
    int max_images;
};
struct staging__tar_cb {
    /* Called for each accepted image; return <0 to abort the scan. */
    int (*image)(void *ud, int index, const char *name, const void *data, size_t len, const char *mime);
    /* Called for each rejected entry (reason type + text). */
    void (*reject)(void *ud, const char *name, const char *type, const char *reason);
    void *ud;
};
/* Scan a tar from an fd (or memory when fd < 0).  Returns 0 with the
 * number of images; or a shard-level failure: ERR_LIMIT (too many images,
 * *why set), ERR_PARSE (corrupt archive, *why set).  notif_* receive the
 * notification_config.json fields (malloc'd, caller frees) if present. */
int staging__tar_scan(int fd, const void *mem, size_t memlen, const struct staging__tar_limits *lim,
                      const struct staging__tar_cb *cb, int *nimages, char **notif_ingest, char **notif_url,
                      const char **why);

/* References body parsing (ingest.c), separated for the fuzz target.
 * On success *refs is a new JSON array of {"name","url"} (inline) or NULL
 * and *refs_url set (URL form; malloc'd).  Optional fields are returned
 * borrowed from *root (caller json_decref()s root). */
struct staging__refs_req {
    json_t *root;
    json_t *refs;            /* borrowed from root, or NULL */
    const char *refs_url;    /* borrowed, or NULL */
    const char *ingest_id;   /* borrowed, or NULL */
    const char *notify_url;  /* borrowed, or NULL */
    bool cat_ingest, cat_files; /* notification categories */
};
int staging__refs_parse(const char *body, size_t len, bool video, int max_refs, struct staging__refs_req *out, struct err *err);
/* Validate one parsed reference entry; returns name/url borrowed. */
int staging__ref_entry(json_t *e, const char **name, const char **url);

/* Webhook payloads (indexer.c). */
void staging__notify_files(sqlite3 *db, const char *ws, const char *url, const char *ingest_id,
                           const char *batch, const char *shard_id, json_t *ingested, json_t *failed,
                           bool truncated);
void staging__notify_ingest(sqlite3 *db, const char *ws, const char *url, const char *ingest_id,
                            const char *batch, bool success, const char *err_type, const char *err_reason);

/* Blob key prefix of a batch row: "b/<bid>" into out (32 bytes). */
void staging__batch_prefix(int64_t bid, char out[32]);

#endif
