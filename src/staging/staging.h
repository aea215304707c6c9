/*
 * staging — the Data Staging service: batches, their items (one row per
 * staged file) and shards (bulk uploads with a status history), every
 * ingest path (single image, signed-URL video and tar-shard uploads, image
 * and video references fetched in the background), ingest webhooks, and
 * the expiry sweeper.  It answers the Data Staging API in ready-to-send
 * JSON shaped as spec/COMPAT.md says, so that the HTTP handlers stay thin:
 * parse the path/query, call one function, send the JSON (200) or its
 * error (api_reply_err: the status from the code, the message from the
 * struct err the call filled).
 *
 * Background threads (started by staging_start): shard indexer (tar ->
 * items, libarchive), reference fetcher (libcurl), expiry sweeper, and the
 * store's webhook outbox sender.
 *
 * Thread safety: every function may be called from any thread (handlers
 * run on libmicrohttpd's pool).  staging_start/stop/free from one thread.
 *
 * Returned JSON (json_t **out): a new reference, the caller json_decref()s.
 * Errors (base.h): the functions return 0 or a negative code and, on
 * failure, write the reason into their last parameter `struct err *err`
 * (may be NULL): ERR_INVALID/ERR_PARSE (bad input), ERR_NOTFOUND,
 * ERR_EXISTS, ERR_LIMIT (a size limit), ERR_AUTH (signed URLs), ERR_AGAIN
 * (database busy, retry), ERR_NOSPACE (storage full), others (internal).
 * Nothing here knows HTTP statuses: src/api/ maps the codes.
 */
#ifndef VBATCH_STAGING_H
#define VBATCH_STAGING_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "store/store.h"

struct staging;

struct staging_opts {
    const char *public_base_url;   /* "http://127.0.0.1:8080", no trailing '/'; copied */
    int64_t max_image_bytes;       /* single image limit; default 20971520 */
    int64_t max_video_bytes;       /* signed video upload limit; default 4 GiB */
    int64_t max_shard_bytes;       /* signed tar upload limit; default 1 GiB */
    int max_shard_images;          /* images per tar shard; default 500 */
    int64_t expiry_ms;             /* batch lifetime; default 7 days */
    int64_t upload_url_ttl_ms;     /* signed PUT URL lifetime; default 24 h */
    int64_t download_url_ttl_ms;   /* signed GET URL lifetime; default 24 h */
    int64_t upload_poll_ms;        /* S3 backend: arrival poller period; default 1000 */
    int64_t sweep_interval_ms;     /* sweeper period; default 60 s */
    int64_t orphan_sweep_ms;       /* orphan blob sweeper period; default 1 h */
    int64_t orphan_grace_ms;       /* blobs younger than this are never orphans; default 1 h */
    int64_t orphan_keys_per_s;     /* pace of the orphan walk (keys a second); default 2000 */
    int default_page_size;         /* default 100 */
    int max_page_size;             /* larger pageSize -> ERR_INVALID; default 1000 */
    int max_references;            /* per image-references request; default 20000
                                      (videos: max_references/4 = 5000) */
    const char *net_allow;         /* SSRF allow-list, see store_net_allow_set; copied */
    bool index_at_upload;          /* a tar shard PUT to vbatch's own signed URL is indexed
                                      as its PUT ends, from the bytes kept in memory while
                                      they were written (shards of at most 64 MiB), and
                                      acknowledged with its items; default true.  false
                                      (tests of the other path), a larger shard, a failed
                                      scan, a notification config in the shard, or
                                      index_delay_ms > 0: recorded "uploaded" and indexed
                                      by the indexer thread from the blob */
    int commit_behind;             /* a tar shard indexed at its upload is answered as soon
                                      as its blob is synced at its key; its rows are
                                      committed by a committer thread right after, at most
                                      this many shards waiting (then inline again);
                                      default 32, 0 = the 200 after the commit, or
                                      $VBATCH_STAGING_COMMIT_BEHIND (commits.c) */
    int64_t commit_behind_delay_ms; /* tests: the committer waits this long before each
                                      commit (a window for kill -9); default 0, or
                                      $VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS */
    int commit_group;              /* the committer records up to this many shards of one
                                      batch, queued one behind the other, in one
                                      transaction; default 8, 1 = one each, or
                                      $VBATCH_STAGING_COMMIT_GROUP (commits.c) */
    bool url_behind;               /* with the committer running (commit_behind > 0), a tar
                                      shard URL of an existing bulk batch of a workspace
                                      without staged-bytes or pending-uploads quota is
                                      answered before its rows are written; the committer
                                      writes them, ahead of the shards (commits.c); default
                                      true, or $VBATCH_STAGING_URL_BEHIND (0 = off) */
    int64_t url_behind_delay_ms;   /* tests: the committer waits this long before writing
                                      the URLs answered (a window for kill -9); default 0,
                                      or $VBATCH_STAGING_URL_BEHIND_DELAY_MS */
    int64_t index_delay_ms;        /* tests: wait this long before extracting each shard;
                                      default 0, or $VBATCH_STAGING_INDEX_DELAY_MS */
    int64_t commit_delay_ms;       /* tests: wait this long between a single upload's blob
                                      write and its item's commit (a window for kill -9);
                                      default 0, or $VBATCH_STAGING_COMMIT_DELAY_MS */
    int64_t claim_lease_ms;        /* a claimed shard stays this process's this long
                                      without renewal (renewed every third of it while
                                      it is worked on); default 15000, or
                                      $VBATCH_STAGING_CLAIM_LEASE_MS (tests) */
    int64_t lease_floor_ms;        /* tests: the least lifetime of the orphan sweeper's
                                      lease (else 60 s) and the arrival poller's (else
                                      5 s), so that a test that kill -9s their holder
                                      waits less for the lease to lapse; default 0 (the
                                      floors above), or $VBATCH_STAGING_LEASE_FLOOR_MS */
};
void staging_opts_default(struct staging_opts *o);

/* Create the context over an open store (borrowed; must outlive the
 * context): applies the "staging" migrations.  *out freed with
 * staging_free(). */
int staging_new(struct store *st, const struct staging_opts *o, struct staging **out, struct err *err);
/* Start the indexer, fetcher, sweeper and the outbox sender; requeues
 * work left unfinished by a crash (shards uploaded but not indexed,
 * reference shards not fetched). */
int staging_start(struct staging *s, struct err *err);
/* Stop and join the threads started by staging_start (idempotent). */
void staging_stop(struct staging *s);
/* Stops if needed, then frees.  NULL ok. */
void staging_free(struct staging *s);

/* ---- read endpoints ----------------------------------------------------- */
/* page_size <= 0 means the default; page_token NULL or "" = first page.
 * A bad token -> ERR_INVALID.  Pagination is keyset: a page costs the same
 * at any depth; the last page has "nextPageToken": null. */

/* Every answer below carries "status": "ok" first (the seed documents it on
 * every 2xx answer).
 *
 * GET /batches -> {"batches":[BatchMetadata...],"nextPageToken":…} */
int staging_list_batches(struct staging *s, const char *ws, int page_size, const char *page_token,
                         json_t **out, struct err *err);
/* GET /batches/{b} -> {"batch":BatchMetadata} (displayName, batchId,
 * batchType, batchContentType, createdDate, expiryDate) */
int staging_batch_get(struct staging *s, const char *ws, const char *batch, json_t **out, struct err *err);
/* DELETE /batches/{b} -> {"status":"ok","batchId":b,"deleted":true}: its
 * items, shards, uploads and blobs (store_batch_delete); ERR_EXISTS
 * while a running job reads or writes it. */
int staging_batch_delete(struct staging *s, const char *ws, const char *batch, json_t **out, struct err *err);
/* GET /batches/{b}/count[?partName] -> {"count":N} (part_name NULL = all) */
int staging_batch_count(struct staging *s, const char *ws, const char *batch, const char *part_name,
                        json_t **out, struct err *err);
/* GET /batches/{b}/parts -> {"batchParts":[{partName,partType,contentType,
 * partDescription?,nestedContentType?}],"parts":[the same]} ([] for a batch
 * without parts; the CLI reads batchParts, the seed documents parts);
 * after staging_settle (a shard's sidecars make the metadata part) */
int staging_batch_parts(struct staging *s, const char *ws, const char *batch, json_t **out, struct err *err);
/* GET /batches/{b}/list -> {"filesMetadata":[{downloadURL (signed GET),
 * fileName, contentType, partName?, shardId?, nestedContentType? (the
 * nested content type of the file's part: what its archives hold)}],
 * "nextPageToken":…} */
int staging_list_items(struct staging *s, const char *ws, const char *batch, const char *part_name,
                       int page_size, const char *page_token, json_t **out, struct err *err);
/* GET /batches/{b}/shards -> {"shards":[{shardId,statusName,statusType,
 * eventTimestamp,shardObjectsCount,statusMetadata}],"nextPageToken":…} */
int staging_list_shards(struct staging *s, const char *ws, const char *batch, int page_size,
                        const char *page_token, json_t **out, struct err *err);

/* ---- ingest endpoints ---------------------------------------------------- */
/* display_name NULL/"" -> the batch id.  A missing batch is created
 * (simple-batch for single uploads, sharded-batch for bulk ones).
 * Mixing single-image uploads and bulk uploads in one batch -> ERR_INVALID
 * with a clear message. */

/* POST /upload/image: tmp_path is the first multipart file part, already
 * on disk (use store_tmp_create).  Checks the file name, the size
 * (max_image_bytes -> ERR_LIMIT) and the type by content (JPEG, PNG, WebP,
 * BMP -> else ERR_INVALID), then moves the file into the blob store.  The
 * temp file is consumed in every case (moved or deleted).
 * -> {"status":"ok","fileName":…} */
int staging_upload_image(struct staging *s, const char *ws, const char *batch, const char *display_name,
                         const char *file_name, const char *tmp_path, json_t **out, struct err *err);
/* POST /upload/video?fileName -> {"status":"ok","signedURLDetails":
 * {"uploadURL","method":"PUT","extensionHeaders":{},"maxFileSize"}} */
int staging_upload_video_url(struct staging *s, const char *ws, const char *batch, const char *display_name,
                             const char *file_name, json_t **out, struct err *err);
/* POST /bulk-upload/image-files -> {"status":"ok","signedURLDetails":
 * {"shardId","uploadURL","method":"PUT","extensionHeaders":{},
 *  "maxNumberOfImages","maxShardSize"}} */
/* The same for a client that declares its shard's size (content_length >= 0;
 * over the shard limit: ERR_LIMIT): the URL takes exactly that many bytes
 * (S3: the content-length is signed and the store refuses another size;
 * the local folder: vbatch's URL takes at most that many). */
int staging_bulk_upload_url_sized(struct staging *s, const char *ws, const char *batch, const char *display_name,
                                  int64_t content_length, json_t **out, struct err *err);
int staging_bulk_upload_url(struct staging *s, const char *ws, const char *batch, const char *display_name,
                            json_t **out, struct err *err);
/* POST /bulk-upload/image-references or video-references with the raw JSON
 * body (<= 64 MiB): {"imageReferences":[{"name","url"}]} or
 * {"imageReferencesURL": "https://…jsonl"} (video: videoReferences[URL]),
 * optional ingestId, notificationsURL, notificationCategories.
 * -> {"status":"ok","ingestId","shardIds":[…]} (images) / {"status":"ok","ingestId"} (videos), plus
 * "duplicated": true when this ingestId was already used for the batch (the
 * first ingest's answer is returned and nothing new is queued).  Fetching
 * happens in the background; unsafe URLs are reported by webhook and in
 * the shard status. */
int staging_ingest_references(struct staging *s, const char *ws, const char *batch, const char *display_name,
                              bool video, const char *body, size_t len, json_t **out, struct err *err);

/* ---- signed blob URLs (/blobs/<key>?method&expires&limit&signature) ------ */

/* PUT sink.  key = decoded path after "/blobs/", the q_* the raw query
 * values.  content_length < 0 when unknown.  Verifies the signature
 * (ERR_AUTH) and that the key is a pending upload (ERR_NOTFOUND or
 * ERR_EXISTS when already uploaded), and that content_length fits the
 * signed limit (ERR_LIMIT).  Then write the body chunk by chunk
 * (ERR_LIMIT past the limit: abort; nothing is left behind)
 * and finish (fsync, rename, record: a tar shard is queued for indexing, a
 * video is probed and becomes an item or fails) or abort. */
struct staging_put;
int staging_put_open(struct staging *s, const char *key, const char *q_method, const char *q_expires,
                     const char *q_limit, const char *q_signature, int64_t content_length,
                     struct staging_put **out, struct err *err);
int staging_put_write(struct staging_put *p, const void *data, size_t len, struct err *err);
/* Frees p in every case.  0 -> answer 200 {"status":"ok"}. */
int staging_put_finish(struct staging_put *p, struct err *err);
/* Frees p; NULL ok. */
void staging_put_abort(struct staging_put *p);

/* GET download of a whole blob or, with the signed offset and length of
 * a tar shard's item (q_offset/q_length NULL when absent), of exactly that
 * item's bytes.  On success *fd (caller closes), the bytes are *size bytes
 * from *start of it, and *mime (static string like "image/jpeg" or
 * "application/octet-stream"). */
int staging_get_open(struct staging *s, const char *key, const char *q_method, const char *q_expires,
                     const char *q_limit, const char *q_offset, const char *q_length, const char *q_signature,
                     int *fd, int64_t *start, int64_t *size, const char **mime, struct err *err);

/* ---- for the jobs module: input items and output batches ----------------- */

struct staging_item {
    int64_t id;          /* row id, increasing in insertion order */
    char *name;          /* file name */
    char *part;          /* part name or NULL */
    char *shard_id;      /* shard uuid or NULL */
    char *content_type;  /* "image", "video", or what an output part set */
    char *mime;          /* "image/jpeg", ... */
    char *blob_key;      /* key in the blob store */
    int64_t size;        /* bytes */
    int64_t offset;      /* the item is size bytes at offset of blob_key (a tar shard's entry), or -1: the
                          * whole blob.  Read it with store_blob_read_at. */
};
/* Up to limit items (<= 10000) of batch (and part, NULL = all) with id >
 * after_id, ordered by id.  *items is a malloc'd array of *n entries; free
 * with staging_items_free().  ERR_NOTFOUND for an unknown batch. */
int staging_items_page(struct staging *s, const char *ws, const char *batch, const char *part,
                       int64_t after_id, int limit, struct staging_item **items, int *n, struct err *err);
/* Like staging_items_page, but without metadata items (content type
 * "metadata": image sidecars, see staging_item_find): the images (and
 * videos) a job processes. */
int staging_items_page_media(struct staging *s, const char *ws, const char *batch, const char *part,
                             int64_t after_id, int limit, struct staging_item **items, int *n, struct err *err);
void staging_items_free(struct staging_item *items, int n);

/* Image sidecars: a staged file "<image file name>.json" (not
 * notification_config.json), a JSON object of at most STAGING_SIDECAR_MAX
 * bytes, becomes an item of part STAGING_METADATA_PART with content type
 * "metadata" and mime application/json. */
#define STAGING_METADATA_PART "metadata"
#define STAGING_SIDECAR_MAX 65536
/* The newest item named name in (batch, part) (part NULL = items without
 * a part), by index: O(log n).  *out filled (release with
 * staging_item_release).  ERR_NOTFOUND for an unknown batch or no such
 * item. */
int staging_item_find(struct staging *s, const char *ws, const char *batch, const char *part, const char *name,
                      struct staging_item *out, struct err *err);
void staging_item_release(struct staging_item *it);
/* Wait (at most 1 s) until the tar shards of workspace ws answered
 * before this call and still waiting for the committer (commits.c) are
 * recorded: what a client reads after its 200 shows its shard.  The
 * views (counts, item, part and shard listings, batches) and a job's
 * plan call it; nothing to wait for costs a lock and a walk of at most
 * commit_behind entries. */
void staging_settle(struct staging *s, const char *ws);
/* Item count (part NULL = all), after staging_settle.  ERR_NOTFOUND. */
int staging_items_count(struct staging *s, const char *ws, const char *batch, const char *part, int64_t *n, struct err *err);

/* Create a multipart output batch (ERR_EXISTS if it exists). */
int staging_output_batch_create(struct staging *s, const char *ws, const char *batch, const char *display_name, struct err *err);
/* Add (or keep) a part: part_type e.g. "file-part", content_type e.g.
 * "archives"/"metadata"/"images"; description/nested may be NULL. */
int staging_output_part_add(struct staging *s, const char *ws, const char *batch, const char *part,
                            const char *part_type, const char *content_type, const char *description,
                            const char *nested_content_type, struct err *err);
/* Record a file already put in the blob store as an item of a part. */
int staging_output_item_add(struct staging *s, const char *ws, const char *batch, const char *part,
                            const char *file_name, const char *content_type, const char *mime,
                            const char *blob_key, int64_t size, struct err *err);

/* ---- maintenance ------------------------------------------------------------ */

/* Run the sweeper once now: deletes batches expired at now_ms with their
 * items, shards and blobs.  *removed (may be NULL) = batches removed. */
int staging_sweep(struct staging *s, int64_t now_ms, int *removed);
/* Index every shard that is uploaded but not yet indexed, synchronously in
 * the calling thread (tests, and the indexer thread's body). */
int staging_index_pending(struct staging *s, int *indexed);
/* Fetch every pending reference shard synchronously (tests). */
int staging_fetch_pending(struct staging *s, int *fetched);

#endif
