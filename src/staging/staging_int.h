/*
 * staging_int.h — private to src/staging/.
 */
#ifndef VBATCH_STAGING_INT_H
#define VBATCH_STAGING_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/base.h"
#include "staging/staging.h"
#include "store/store_staging.h"

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
    pthread_t th_index, th_fetch, th_sweep, th_renew, th_poll, th_orphan;
    bool polling;                /* th_poll runs (S3 backend) */
    /* the shards this process has claimed and is working on, renewed by
     * the th_renew thread (shardjob.c): [STAGING__INDEXER] tar shard,
     * [STAGING__FETCHER] reference shard; NULL when none; *_lost set when
     * a renewal found the claim taken over */
    char *claimed[2];
    bool claim_lost[2];
    int64_t claim_ok_ms[2];      /* monotonic ms the claim was last confirmed */
    struct staging__putting *putting; /* keys of signed PUTs in flight (ingest.c), and of
                                         shards acknowledged but not yet committed */
    /* tar shards acknowledged, waiting for the committer (commits.c) */
    struct staging__acked *acked, **acked_tail;
    int n_acked;
    int n_reserved;              /* places taken by PUTs about to queue their shard */
    bool committing;             /* th_commit runs */
    pthread_t th_commit;
    pthread_cond_t commit_cv;    /* a shard was queued, or stop */
    /* tar shard URLs answered before their rows are written (commits.c):
     * queued, and the batch the committer is writing now */
    struct staging__url *urls, **urls_tail, *urls_writing;
    int n_urls, n_urls_writing;
    uint64_t url_seq, url_seq_done; /* URLs queued so far; the last one written (or dropped at stop) */
    uint64_t acked_seq, acked_seq_done; /* shards queued so far; the last one recorded (or left at stop) */
    uint64_t poll_arrivals;              /* objects the arrival poller recorded (its thread's own) */
    _Atomic bool url_last_inline; /* the latest URL request wrote its rows itself */
    _Atomic int url_writers;     /* upload-URL transactions under way (the committer lets them go first) */
    _Atomic int64_t url_done;    /* upload-URL transactions ended (ditto) */
    int64_t recover_at;          /* monotonic ms of the next staging__recover_acked round */
    /* storage-full backoff of the indexer and the fetcher (shardjob.c):
     * no try before *_retry_at (monotonic ms); *_backoff the last delay */
    int64_t index_retry_at, index_backoff, fetch_retry_at, fetch_backoff;
};

struct staging__putting {
    struct staging__putting *next;
    char key[];
};

void staging__kick(struct staging *s, bool index, bool fetch);

/* ingest.c: this process's claims on signed-PUT targets.  put_busy: a PUT
 * to key is streaming, or its shard waits for the committer;
 * put_release: drop the claim (NULL ok). */
bool staging__put_busy(struct staging *s, const char *key);
void staging__put_release(struct staging *s, const char *key);

/* commits.c: tar shards answered before their rows are committed.
 * commit_behind: queue a shard whose blob is synced at its key (j scanned
 * by staging__index_kept; *key the PUT's claim): true when queued — j, *key
 * and *u are taken (cleared) and the PUT can be answered; false when the
 * committer does not run or its queue is full (commit inline). */
struct staging__acked;
struct staging__url;
struct staging__job;
/* A place in the queue for a PUT that will answer before its commit
 * (false: none, commit inline); given back by unreserve, or taken by
 * commit_behind (which may still refuse after a stop). */
bool staging__commit_reserve(struct staging *s);
void staging__commit_unreserve(struct staging *s);
bool staging__commit_behind(struct staging *s, struct staging__job *j, char **key, struct store_upload *u,
                            int64_t size);
/* The committer thread (started by staging_start on the local folder). */
void *staging__commit_main(void *arg);
/* Wait up to ms until the shards of workspace ws that wait for the
 * committer now are recorded: true when some did and all are recorded
 * now (false: none did, or timeout).  Shards queued meanwhile are not
 * waited for; other workspaces' only as far as they are queued before
 * them. */
bool staging__commit_wait_idle(struct staging *s, const char *ws, int64_t ms);
/* A tar shard URL of batch bid answered before its rows are written:
 * queued for the committer (false: not now, the queue is full or the
 * committer stopped; the caller writes them itself). */
bool staging__url_behind(struct staging *s, int64_t bid, const char *shard_id);
/* Before a PUT to a URL with no row at its open (adopted) is acknowledged:
 * its rows are written (waits a little for the committer, then writes
 * them itself).  ERR_NOTFOUND when its batch went meanwhile, ERR_EXISTS
 * when another PUT used it. */
int staging__url_ensure(struct staging *s, const char *key, const struct store_upload *u, struct err *err);
/* Wait up to ms until every URL this process answered is written (reads
 * that show shards: the client sees the URL it was given). */
void staging__urls_settle(struct staging *s, int64_t ms);
/* Free what is left queued (the committer is not running). */
void staging__commit_free(struct staging *s);
/* Record the tar shards acknowledged and never committed (a crash in
 * between): pending uploads created before created_before_ms whose blob is
 * at its key.  at_start: the first RECOVER_AT_START_MAX are indexed at once
 * (counted when this returns), the rest recorded "uploaded" for the
 * indexer.  *n: shards recovered. */
int staging__recover_acked(struct staging *s, int64_t created_before_ms, bool at_start, int *n);
/* Wait up to ms or until stop: false when the thread must exit. */
bool staging__wait_stop(struct staging *s, int64_t ms);
/* orphans.c: the orphan blob sweeper's thread. */
void *staging__orphans_main(void *arg);

/* Sidecar files (names.c).  Is name "<something>.json" other than
 * notification_config.json? */
bool staging__sidecar_name(const char *name);
/* Check a sidecar's bytes: 0 when it is a JSON object of at most
 * STAGING_SIDECAR_MAX bytes, else ERR_INVALID/ERR_LIMIT with a static
 * reason in *why. */
int staging__sidecar_check(const void *data, size_t len, const char **why);
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
/* ingest.c: the bytes of upload target key (u) are stored, size bytes:
 * record them as a PUT to vbatch's signed URL does (a video probed and
 * made an item, a tar shard "uploaded" and the indexer kicked).  Over
 * u->size_limit: the target fails (a tar shard as
 * shard-size-limit-exceeded), the object is deleted, ERR_LIMIT.  A video
 * that is not readable: deleted, target failed, ERR_INVALID.  ERR_EXISTS
 * when the target was used already (another process recorded it).
 * in_place: the object at key is the client's own, acknowledged PUT (a
 * put-once shard on S3, arrivals.c): a failure to record it (the database
 * busy or unreachable) keeps it for the next poll round; only a refusal
 * (over the limit) deletes it. */
int staging__upload_arrived(struct staging *s, const char *key, const struct store_upload *u, int64_t size,
                            bool in_place, struct err *err);
/* ingest.c: the object a client PUTs to with a presigned URL on the S3
 * backend for upload target key "b/<bid>/<kind>/<name>":
 * "b/<bid>/u/<name>".  The poller copies it to key on arrival, so a
 * second PUT to the same URL (S3 cannot refuse a reused presigned URL
 * before it expires) never changes the bytes that were indexed. */
void staging__upload_key(const char *key, char out[128]);
/* arrivals.c: the S3 arrival poller's thread (started by staging_start
 * on the S3 backend only). */
void *staging__poll_main(void *arg);

/* Tar scanning (tar.c), separated from storage for the fuzz target. */
struct staging__tar_limits {
    int64_t max_image_bytes;
    int max_images;
};
struct staging__tar_cb {
    /* Called for each accepted image (or sidecar): its bytes in place
     * (len bytes at data, which is offset bytes into the archive); return
     * <0 to abort the scan. */
    int (*image)(void *ud, int index, const char *name, const void *data, size_t len, int64_t offset,
                 const char *mime);
    /* Called for each rejected entry (reason type + text). */
    void (*reject)(void *ud, const char *name, const char *type, const char *reason);
    void *ud;
};
/* Scan a tar in memory (the indexer maps the shard blob), copying no
 * entry.  Returns 0 with the number of images; or a shard-level failure:
 * ERR_LIMIT (too many images, *why set), ERR_PARSE (corrupt archive, *why
 * set), or the callback's error.  notif_* receive the
 * notification_config.json fields (malloc'd, caller frees) if present. */
int staging__tar_scan(const void *mem, size_t memlen, const struct staging__tar_limits *lim,
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

/* Shard work shared by the indexer and the fetcher (shardjob.c). */
#define STAGING_LIST_CAP 1000 /* entries per webhook list before content_truncated */
struct staging__staged {
    char *name, *key, *mime;
    int64_t size;
    int64_t offset; /* size bytes at offset of key (a tar shard's entry), or -1: the whole blob */
};
#define STAGING__INDEXER 0
#define STAGING__FETCHER 1
/* The largest tar shard indexed from memory as its PUT ends (larger ones
 * are indexed by the indexer thread from the blob). */
#define STAGING_KEEP_MAX ((size_t)64 << 20)

struct staging__job {
    struct staging *s;
    int slot;               /* STAGING__INDEXER or STAGING__FETCHER */
    bool claimed;           /* this process holds the shard's claim */
    bool ended;             /* finished, handed back, or found lost */
    int64_t bid;
    char *ws, *batch, *shard_id, *kind, *blob_key, *ingest_id, *notify_url, *refs, *refs_url;
    bool cat_ingest, cat_files;
    struct staging__staged *items; /* accepted, blobs written */
    int nitems, capitems;
    json_t *failed;         /* [{type,file_name,reason}], at most STAGING_LIST_CAP */
    int nfailed;            /* all failures, also those beyond STAGING_LIST_CAP */
    json_t *ingested;       /* [name] */
};
/* Claim the oldest unclaimed tar shard (refs false) or reference shard in
 * `state` for this process (ERR_NOTFOUND: none): its claim is renewed by
 * the th_renew thread until the job is released; release with
 * staging__job_release, which hands the claim back unless the shard was
 * ended (finished, or marked waiting for storage). */
int staging__job_load(struct staging *s, bool refs, const char *state, struct staging__job *j);
void staging__job_release(struct staging__job *j);
/* true when a renewal found the job's claim taken over by another process
 * (its lease ran out): stop working on it, its outcome would be refused. */
bool staging__job_lost(struct staging__job *j);
/* The claim renewal loop (th_renew). */
void *staging__renew_main(void *arg);
/* A file staged (blob written) / rejected (a tar_cb reject callback). */
int staging__job_add(struct staging__job *j, const char *name, const char *key, const char *mime, int64_t size,
                     int64_t offset);
void staging__job_reject(void *ud, const char *name, const char *type, const char *reason);
/* End the shard: failed (no items) or done with its staged items, with
 * its webhooks, in one transaction; ERR_EXISTS when another worker did or
 * this process's claim was taken over (nothing written, no blob touched). */
int staging__job_fail(struct staging__job *j, const char *from_state, const char *status_name, const char *reason);
int staging__job_commit(struct staging__job *j, const char *from_state);
/* A tar shard scanned from its bytes as its PUT ends (staging__index_kept;
 * j holds no claim): record the upload of key and the shard done with j's
 * items in one transaction (store_upload_done_indexed). */
int staging__job_commit_upload(struct staging__job *j, const char *key, const struct store_upload *u, int64_t size,
                               struct err *err);
/* Several such shards of one batch in one transaction
 * (store_uploads_done_indexed): any error records none of them. */
struct staging__upload_commit {
    struct staging__job *j;
    const char *key;
    const struct store_upload *u;
    int64_t size;
};
int staging__jobs_commit_uploads(const struct staging__upload_commit *v, int n, struct err *err);
/* A tar shard's bytes at hand as its PUT ends (kept in memory by the
 * writer): scan them into j, a job with no claim (release it with
 * staging__job_release).  true when the shard can be recorded at once
 * (staging__job_commit_upload); false leaves it to the indexer thread,
 * which reads the blob again: a scan that failed (the indexer records the
 * failure as for any shard), a shard over the size limit, or a
 * notification config inside the shard (its webhooks go through the
 * indexer's path). */
bool staging__index_kept(struct staging *s, const char *key, const struct store_upload *u, const void *mem,
                         size_t size, struct staging__job *j);
/* Storage ran out: the shard keeps from_state, shows waiting-for-storage. */
void staging__job_wait_storage(struct staging__job *j, const char *from_state, const char *why);
/* Sleep ms, waking early when the context stops. */
void staging__sleep_ms_unless_stopped(struct staging *s, int64_t ms);
/* After a storage failure a queue waits before its next try: 1 s doubling
 * to 30 s, reset by the next shard that goes through. */
bool staging__backoff_waiting(struct staging *s, int64_t *until);
void staging__backoff_set(struct staging *s, int64_t *until, int64_t *delay, bool failed);

/* Webhook payloads (notify.c): the JSON text (malloc'd) of an
 * ingest-files-status or ingest-status notification, each with a new
 * event id; store/ queues them with the state change they report. */
char *staging__notify_files(const char *ingest_id, const char *batch, const char *shard_id, json_t *ingested,
                            json_t *failed, bool truncated);
char *staging__notify_ingest(const char *ingest_id, const char *batch, bool success, const char *err_type,
                             const char *err_reason);
/* The outbox order key of those webhooks: one ingest's go out in order
 * ("ingest/<id>"); without an ingest id, one batch's ("batch/<id>").
 * malloc'd. */
char *staging__notify_key(const char *ingest_id, const char *batch);

#endif
