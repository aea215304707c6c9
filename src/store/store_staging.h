/*
 * store_staging.h — the Data Staging tables, owned by store/: typed calls
 * for src/staging/, which sees no SQL.
 *
 * Owner files (each the only code that speaks SQL to its tables):
 *   store/batches.c         batches, parts, part_counts, items; expiry
 *   store/shards.c          shards, shard_events, uploads (signed PUT
 *                           targets), ingests (reference ingests)
 *   store/staging_schema.c  the "staging" migrations (SQLite list; the
 *                           PostgreSQL list is filled by the db backend work)
 *
 * Every call that changes state runs its whole change in one transaction
 * of its own (a batch created together with its first shard, a shard's
 * items together with its status and its webhooks), so a crash leaves
 * either all of it or nothing.
 *
 * Batches: one row per (workspace, batch_id) with an internal, never
 * reused row id `bid`; every blob of the batch lives under "b/<bid>/"
 * (store_batch_blob_prefix), so deleting a batch removes one folder.  A
 * batch's ingest mode is fixed by its first upload: "single"
 * (upload/image, upload/video), "bulk" (tar shards and references) or
 * "output" (job results); single and bulk uploads never mix.  The item
 * count of the batch row and of each part (part_counts) is kept in the
 * same transaction as the item inserts, so a count is O(1).
 *
 * Listings are keyset pages: "WHERE id > after ORDER BY id LIMIT n" on an
 * index that starts with the batch, so page N costs what page 1 costs.
 *
 * Errors (base.h): 0 or a negative code, the reason in the struct err
 * passed last: ERR_INVALID (bad batch id, mode mixing, bad display name),
 * ERR_NOTFOUND (batch not found or expired, no such row), ERR_EXISTS,
 * ERR_AGAIN (database busy), ERR_NOSPACE, ERR_UNAVAILABLE, ERR_INTERNAL.
 *
 * Returned strings and arrays are malloc'd; each struct has its release or
 * free call.  Thread safety: every call may be made from any thread.
 */
#ifndef VBATCH_STORE_STAGING_H
#define VBATCH_STORE_STAGING_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "store/store.h"

/* The part that holds image sidecars ("<image>.json" files). */
#define STORE_METADATA_PART "metadata"

/* Apply the "staging" migrations (staging_new calls it). */
int store_staging_migrate(struct store *st, struct err *e);

/* ---- batches ------------------------------------------------------------------ */

struct store_batch {
    int64_t bid;
    char mode[16];    /* single | bulk | output */
    char type[32];    /* simple-batch | sharded-batch | multipart-batch */
    char content[16]; /* images | videos | mixed */
};

/* "b/<bid>" into out: the blob folder of a batch. */
void store_batch_blob_prefix(int64_t bid, char out[32]);

/* The unexpired batch: ERR_INVALID for a malformed id, ERR_NOTFOUND. */
int store_batch_find(struct store *st, const char *ws, const char *batch, struct store_batch *out, struct err *e);
/* Find the batch, or create it in `mode` ("single", "bulk") living
 * expiry_ms.  An existing batch of another mode -> ERR_INVALID (mixing);
 * display_name (NULL/"" = the id) of a new batch: <= 256 bytes of UTF-8.
 * An expired batch of the same id is removed first (rows and blobs). */
int store_batch_get_or_create(struct store *st, const char *ws, const char *batch, const char *display_name,
                              const char *mode, int64_t expiry_ms, struct store_batch *out, struct err *e);
/* Create an output batch ("multipart-batch"); ERR_EXISTS if it exists. */
int store_batch_create_output(struct store *st, const char *ws, const char *batch, const char *display_name,
                              int64_t expiry_ms, struct err *e);

/* A batch as the API shows it. */
struct store_batch_info {
    int64_t bid;
    char *display_name, *batch_id, *batch_type, *content_type;
    int64_t created_ms, expires_ms;
    int64_t item_count; /* the batch's items (every staged file, sidecars included) */
    int64_t bytes;      /* sum of their sizes: store_batch_info_get only (a sum over
                         * the items), -1 from store_batches_page */
};
/* Up to limit unexpired batches of ws with bid > after, by bid. */
int store_batches_page(struct store *st, const char *ws, int64_t after, int limit, struct store_batch_info **rows,
                       int *n, struct err *e);
int store_batch_info_get(struct store *st, const char *ws, const char *batch, struct store_batch_info *out,
                         struct err *e);
void store_batch_info_release(struct store_batch_info *b);
void store_batch_infos_free(struct store_batch_info *rows, int n);

/* Items of the batch (part NULL) or of one part (0 for a part without
 * items). */
int store_batch_count(struct store *st, const char *ws, const char *batch, const char *part, int64_t *n,
                      struct err *e);

struct store_part {
    char *name, *type, *content_type, *description, *nested_content_type; /* the last two may be NULL */
};
/* The parts of a batch by name. */
int store_batch_parts(struct store *st, const char *ws, const char *batch, struct store_part **parts, int *n,
                      struct err *e);
void store_parts_free(struct store_part *parts, int n);
/* Add a part (kept as it is when it exists).  description/nested may be NULL. */
int store_part_add(struct store *st, const char *ws, const char *batch, const char *part, const char *part_type,
                   const char *content_type, const char *description, const char *nested_content_type,
                   struct err *e);

/* ---- items ------------------------------------------------------------------- */

struct store_item {
    int64_t id;                 /* increasing in insertion order */
    char *name, *part, *shard_id, *content_type, *mime, *blob_key; /* part, shard_id, mime may be NULL */
    int64_t size;
    int64_t offset;             /* the item is size bytes at offset of blob_key (a tar shard's entry), or
                                 * -1: the whole blob (store_blob_read_at) */
    char *nested_content_type;  /* store_items_list only: the part's, or NULL */
};
void store_item_release(struct store_item *it);
void store_items_free(struct store_item *items, int n);

/* Up to limit items of the batch (part NULL = all) with id > after, by id;
 * media_only leaves out metadata items. */
int store_items_page(struct store *st, const char *ws, const char *batch, const char *part, bool media_only,
                     int64_t after, int limit, struct store_item **items, int *n, struct err *e);
/* The same for the API listing: with nested_content_type, without mime
 * and size. */
int store_items_list(struct store *st, const char *ws, const char *batch, const char *part, int64_t after,
                     int limit, struct store_item **items, int *n, struct err *e);
/* The newest item named name in (batch, part) (part NULL: items without a
 * part).  ERR_NOTFOUND. */
int store_item_find(struct store *st, const char *ws, const char *batch, const char *part, const char *name,
                    struct store_item *out, struct err *e);
/* The MIME type recorded for the item that is the whole blob blob_key
 * (*mime malloc'd), or NULL when no such item is there.  A tar shard's
 * items (ranges of its archive) are not looked up by key: their type is
 * that of their bytes (staging_get_open). */
int store_item_mime(struct store *st, const char *blob_key, char **mime, struct err *e);

struct store_item_new {
    const char *part, *name, *shard_id, *content_type, *mime, *blob_key; /* part, shard_id, mime may be NULL */
    int64_t size;
    bool ranged;    /* true: size bytes at offset of blob_key (a tar shard's entry); false: the whole blob */
    int64_t offset;
};
/* Record a file already in the blob store as an item of the batch, which
 * must still be the batch with row id expect_bid when expect_bid > 0
 * (else ERR_NOTFOUND "removed during the upload").  ensure_meta_part
 * creates the metadata part first.  The batch's content type follows the
 * items: the first decides, a different kind makes it mixed; metadata
 * items and output batches keep it. */
int store_item_add(struct store *st, const char *ws, const char *batch, int64_t expect_bid, bool ensure_meta_part,
                   const struct store_item_new *it, struct err *e);

/* ---- deletion and usage ---------------------------------------------------------- */

/* Delete the batch (DELETE …/batches/{batch}).  One transaction (after
 * locking the workspace's usage row): ERR_NOTFOUND, or ERR_EXISTS when a
 * running job of ws reads the batch or writes it (an output batch); else
 * the batch gets expires_ms = 0 (every read treats it as gone, its id can
 * be used again) and its pending upload URLs are marked failed (a PUT to
 * them is refused).  Then store_batch_purge removes its blobs and rows;
 * when that fails (or the process dies) the expiry sweep finishes it, so
 * no blob is left without a row pointing at it. */
int store_batch_delete(struct store *st, const char *ws, const char *batch, struct err *e);
/* Remove the blobs of batch row bid (its folder and its output items'
 * blobs elsewhere), then its items in chunks of 10,000 (short
 * transactions), then its rows; the workspace's usage drops by its items'
 * bytes in the same transactions.  Idempotent. */
int store_batch_purge(struct store *st, int64_t bid, struct err *e);
/* Delete the blob folders queued in blob_trash (prefix NULL: every one,
 * else that one) and their rows; a folder whose delete fails stays queued.
 * The expiry sweep calls it with NULL. */
int store_blob_trash_purge(struct store *st, const char *prefix, struct err *e);
/* Bytes of ws's items (every batch, outputs included). */
int store_ws_staged_bytes(struct store *st, const char *ws, int64_t *out, struct err *e);

/* ---- expiry ------------------------------------------------------------------- */

/* Remove the batch that expired first (at now_ms): its blobs (also those of
 * output items outside its folder), then its items in chunks of 10,000
 * (short transactions), then its rows.  *bid = the batch removed;
 * ERR_NOTFOUND when none has expired. */
int store_batch_expire_one(struct store *st, int64_t now_ms, int64_t *bid, struct err *e);

/* ---- shards ------------------------------------------------------------------- */

/* A shard as the API shows it. */
struct store_shard_info {
    int64_t id;
    char *shard_id, *status_name, *status_type, *status_meta; /* meta: JSON text or NULL */
    int64_t event_ms, objects;
};
int store_shards_page(struct store *st, const char *ws, const char *batch, int64_t after, int limit,
                      struct store_shard_info **rows, int *n, struct err *e);
void store_shard_infos_free(struct store_shard_info *rows, int n);

/* ---- signed uploads ------------------------------------------------------------ */

/* A video upload target in batch (any input batch; a new one is a
 * "single" batch): key "b/<bid>/v/<uuid>" written to key. */
int store_upload_video_create(struct store *st, const char *ws, const char *batch, const char *display_name,
                              const char *file_name, const char *uuid, int64_t size_limit, int64_t expiry_ms,
                              char key[96], struct err *e);
/* A tar shard awaiting its upload in a "bulk" batch: shard row
 * (awaiting-upload) and upload target "b/<bid>/s/<shard_id>.tar". */
int store_upload_tar_create(struct store *st, const char *ws, const char *batch, const char *display_name,
                            const char *shard_id, int64_t size_limit, int64_t expiry_ms, char key[96],
                            struct err *e);

/* The key of a tar shard's upload target: "b/<bid>/s/<shard_id>.tar". */
void store_upload_tar_key(int64_t bid, const char *shard_id, char key[96]);
/* May a tar shard URL of ws's batch be recorded after its answer
 * (staging's url-behind, reads only, no lock)?  0 with *bid when the batch
 * exists, takes bulk uploads and ws has neither a staged-bytes nor a
 * pending-uploads quota (nothing to count); 1 when the URL must be made
 * by store_upload_tar_create (a new batch, a quota, another mode: it
 * answers the right error); <0 a database error. */
int store_upload_tar_probe(struct store *st, const char *ws, const char *batch, int64_t *bid, struct err *e);
struct store_upload_rec {
    int64_t bid;
    const char *shard_id;
    int64_t size_limit;
    int64_t created_ms; /* when the URL was made */
};
/* Record tar shard URLs answered already, in one transaction: each its
 * shard (awaiting-upload) and its pending upload row, as
 * store_upload_tar_create does.  One recorded already (by a PUT to it,
 * here or in another process) or whose batch is gone, removed or expired
 * is left out; *recorded (may be NULL): how many were inserted.  Each
 * batch's workspace is locked first, in the order of r: callers that
 * may run in several processes at once pass one batch per call. */
int store_upload_tar_record(struct store *st, const struct store_upload_rec *r, int n, int *recorded,
                            struct err *e);
struct store_upload {
    int64_t bid;
    char kind[16];              /* tar | video */
    char *shard_id, *file_name; /* may be NULL */
    char *workspace;            /* its batch's (store_upload_get; else NULL) */
    bool pending;               /* not yet used */
    int64_t size_limit;
};
/* The upload target of key; ERR_NOTFOUND. */
int store_upload_get(struct store *st, const char *key, struct store_upload *out, struct err *e);
void store_upload_release(struct store_upload *u);
/* The target of a signed tar shard URL with no row yet (answered and not
 * yet recorded, or its record lost to a crash): built from its key
 * (b/<bid>/s/<uuid>.tar) while the batch lives and takes bulk uploads,
 * else ERR_NOTFOUND.  Not recorded: the caller does that
 * (store_upload_tar_record) before it acknowledges anything. */
int store_upload_tar_adopt(struct store *st, const char *key, int64_t size_limit, struct store_upload *out,
                           struct err *e);
/* The upload of key failed (not a readable video): mark it used. */
int store_upload_fail(struct store *st, const char *key, struct err *e);
/* The upload of key is stored: mark it used and record it (a video as an
 * item with mime and size, a tar shard as "uploaded").  ERR_EXISTS when
 * the target was used already.  size above u->size_limit (an object store
 * takes a presigned PUT of any size): the target is marked failed, a tar
 * shard fails as shard-size-limit-exceeded, and ERR_LIMIT is returned. */
int store_upload_done(struct store *st, const char *key, const struct store_upload *u, const char *mime,
                      int64_t size, struct err *e);

/* Pending upload targets created after created_after_ms, at most limit,
 * ordered by batch, kind and age (the arrival poller on S3).  *rows
 * freed with store_uploads_pending_free. */
struct store_upload_pending {
    char *key;
    struct store_upload u;
    int64_t created_ms;
};
int store_uploads_pending(struct store *st, int64_t created_after_ms, int limit, struct store_upload_pending **rows,
                          int *n, struct err *e);
/* One page of the pending tar-shard targets created at or before
 * created_before_ms, in (created_ms, key) order after (after_ms,
 * after_key) (start with after_ms = -1, after_key = NULL): the local
 * folder's look for shards answered before their commit
 * (staging/commits.c), which pages through all of them. */
int store_uploads_pending_tar(struct store *st, int64_t after_ms, const char *after_key, int64_t created_before_ms,
                              int limit, struct store_upload_pending **rows, int *n, struct err *e);
void store_uploads_pending_free(struct store_upload_pending *rows, int n);

/* ---- reference ingests ----------------------------------------------------------- */

struct store_ingest_shard {
    const char *shard_id;
    const char *refs;     /* JSON array of {name,url}, or NULL */
    const char *refs_url; /* or a JSON-lines URL */
};
struct store_ingest_new {
    const char *ingest_id;
    const char *kind;        /* image-refs | video-refs */
    const char *notify_url;  /* may be NULL */
    bool cat_ingest, cat_files;
    const struct store_ingest_shard *shards;
    int nshards;
    const char *response;    /* JSON text answered again for a repeated ingest id */
};
/* In a "bulk" batch (found or created): when the ingest id was used for
 * the batch already, *dup_response = the first answer (malloc'd) and
 * nothing is queued; else the shards are queued and *dup_response = NULL. */
int store_ingest_create(struct store *st, const char *ws, const char *batch, const char *display_name,
                        int64_t expiry_ms, const struct store_ingest_new *in, char **dup_response, struct err *e);

/* ---- shard work (indexer and fetcher) -------------------------------------------------- */

/*
 * Shard states (shards.state) and the statuses clients see:
 *
 *   tar:  awaiting-upload ─PUT─► uploaded ─index─► done   (ingested/success)
 *                                        └───────► failed (…/error)
 *   refs: queued ─fetch─► done (ingested/success | all-files-failed/error)
 *               └───────► failed (unsafe-url-detected, references-fetch-failed)
 *
 * Claims.  A shard in "uploaded"/"queued" is worked on by the process that
 * claimed it (claim_owner, claim_until): store_shard_claim takes the
 * oldest one whose claim is free or expired, the claimer renews it while
 * it works (store_shard_renew), and store_shard_finish /
 * store_shard_wait_storage succeed only while the claim is still the
 * caller's, so two processes never do one shard's work at once, and a
 * killed process's shard is taken by another when its claim expires.
 */
struct store_shard_work {
    int64_t bid;
    char *ws, *batch, *shard_id, *kind, *blob_key, *ingest_id, *notify_url, *refs, *refs_url; /* may be NULL */
    bool cat_ingest, cat_files;
};
/* Claim the oldest tar shard (refs false) or reference shard (refs true)
 * in `state` that no one has claimed or whose claim has expired (also one
 * of owner's own that expired): it becomes owner's until now + lease_ms,
 * committed before this returns.  ERR_NOTFOUND when there is none.  On
 * PostgreSQL the candidate row is locked FOR UPDATE SKIP LOCKED, so
 * claimers in other processes pass it over instead of waiting. */
int store_shard_claim(struct store *st, bool refs, const char *state, const char *owner, int64_t lease_ms,
                      struct store_shard_work *out, struct err *e);
/* Extend owner's claim of a shard to now + lease_ms: 0, or ERR_EXISTS when
 * it is no longer owner's (finished, handed back, or expired and taken by
 * another process). */
int store_shard_renew(struct store *st, const char *shard_id, const char *owner, int64_t lease_ms, struct err *e);
/* Hand owner's claim back (another claimer may take the shard at once); 0
 * also when owner did not hold it. */
int store_shard_unclaim(struct store *st, const char *shard_id, const char *owner, struct err *e);
void store_shard_work_release(struct store_shard_work *w);

/* The end of a shard's processing, recorded in one transaction. */
struct store_shard_outcome {
    int64_t bid;
    const char *shard_id;
    const char *from_state;  /* must still be the shard's state, else ERR_EXISTS */
    const char *owner;       /* must still hold the shard's claim, else ERR_EXISTS */
    const char *state, *status_name, *status_type;
    const char *meta;        /* JSON text or NULL */
    int64_t objects;
    const struct store_item_new *items; /* published with it; a metadata part is created for sidecars */
    int nitems;
    const char *ws, *webhook_url; /* webhooks below go to webhook_url as workspace ws, */
    const char *webhook_key;      /* in the order of this outbox key ("ingest/<id>") */
    const char *webhook;     /* a payload queued unconditionally, or NULL */
    /* a reference ingest's shard: count it done (failed or not) in the
     * ingest; after its last shard queue ingest_ok (no shard failed) or
     * ingest_failed when those are not NULL */
    const char *ingest_id;
    bool failed;
    const char *ingest_ok, *ingest_failed;
};
/* A tar shard indexed from its bytes as its upload ends (staging's
 * kept-mode PUT): in one transaction the upload of key is marked used,
 * the shard "uploaded" and then o (from_state "uploaded", owner NULL: no
 * claim, nobody else can see the shard in "uploaded") recorded as by
 * store_shard_finish.  ERR_EXISTS when the target was used already;
 * nothing is written on any error. */
int store_upload_done_indexed(struct store *st, const char *key, const struct store_upload *u, int64_t size,
                              const struct store_shard_outcome *o, struct err *e);
/* Several tar shards of one batch indexed at their uploads (the staging
 * committer's queue): store_upload_done_indexed for each, in one
 * transaction that holds the batch's workspace first.  Any error (one
 * target used already: ERR_EXISTS) writes nothing; record them one by one
 * then. */
struct store_upload_indexed {
    const char *key;
    const struct store_upload *u;
    int64_t size;
    const struct store_shard_outcome *o;
};
int store_uploads_done_indexed(struct store *st, const struct store_upload_indexed *v, int n, struct err *e);
/* Record the outcome and end the claim, in one transaction that holds the
 * batch's workspace first (as the recordings at an upload and a removal
 * do): ERR_EXISTS (nothing written) when the shard left from_state or
 * o->owner no longer holds its claim. */
int store_shard_finish(struct store *st, const struct store_shard_outcome *o, struct err *e);
/* Storage ran out while the shard was processed: it keeps from_state,
 * shows "waiting-for-storage" with meta (recorded once), and owner's claim
 * is handed back so that the shard is tried again; ERR_EXISTS (nothing
 * written) when owner no longer holds the claim or the shard left
 * from_state. */
int store_shard_wait_storage(struct store *st, const char *shard_id, const char *from_state, const char *owner,
                             const char *meta, struct err *e);

#endif
