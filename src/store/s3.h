/*
 * s3.h — private to src/store/: a small client of S3-compatible object
 * storage (AWS S3, Ceph radosgw, MinIO), the transport of the "s3" blob
 * backend (blob.c).
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4, payload hash
 * "UNSIGNED-PAYLOAD" in x-amz-content-sha256, query strings sorted and
 * encoded here); presigned URLs (SigV4 query signing) are computed here.
 * Objects live under "<prefix>/<key>" in one bucket.
 *
 * Retries: a connection failure, a timeout, HTTP 500/502/503/504 (503 is
 * also S3's SlowDown) are retried up to max_retries times with a doubling
 * delay (100 ms, 200 ms, ... capped at 3.2 s, +-25 % jitter); other
 * answers are final.  Connections: a pool of at most pool_size idle CURL
 * handles (each keeps its one connection alive) is reused; a request that
 * finds the pool empty makes a new handle, and a handle given back to a
 * full pool is closed, so at most pool_size connections stay open.
 *
 * Errors (0 / <0 as in base.h, with a one-line reason in *e that never
 * holds the credentials): ERR_NOTFOUND (no such key, or no such bucket),
 * ERR_AUTH (403: wrong key or signature, access denied), ERR_UNAVAILABLE
 * (cannot connect, timeout, 5xx after the retries), ERR_LIMIT (object over
 * the caller's limit), ERR_INVALID (bad argument / URL), ERR_INTERNAL
 * (anything else the store answered).
 *
 * Thread safety: every function may be called from any thread on one
 * struct s3.
 */
#ifndef VBATCH_STORE_S3_H
#define VBATCH_STORE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

struct s3_cfg {
    char *endpoint;       /* "http(s)://host[:port]" without a trailing '/';
                             default https://s3.<region>.amazonaws.com */
    char *bucket;
    char *prefix;         /* "" or "a/b" (no '/' at either end) */
    char *region;         /* default "us-east-1" */
    bool path_style;      /* URL endpoint/bucket/key (else bucket.host/key) */
    char *access_key;
    char *secret_key;
    char *session_token;  /* NULL: none */
    long timeout_ms;      /* whole request; default 60000 */
    long connect_timeout_ms; /* default 5000 */
    int max_retries;      /* default 4 */
    int pool_size;        /* idle connections kept; default 8 */
    int64_t part_size;    /* multipart part size; default 16 MiB, >= 5 MiB */
    int64_t multipart_min;/* objects from this size go multipart; default 64 MiB */
};

/* Parse "s3://bucket[/prefix]?endpoint=URL&region=R&path_style=0|1" into
 * *c (fields malloc'd; release with s3_cfg_free; credentials untouched).
 * ERR_INVALID with the reason in *e. */
int s3_cfg_parse(const char *url, struct s3_cfg *c, struct err *e);
/* Credentials: from the file 'path' when not NULL (lines KEY=VALUE with
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; '#'
 * comments), else from the same environment variables.  ERR_INVALID when
 * the key id or the secret is missing. */
int s3_cfg_credentials(struct s3_cfg *c, const char *path, struct err *e);
void s3_cfg_free(struct s3_cfg *c);

struct s3;
/* Copies c.  Makes no request. */
int s3_new(const struct s3_cfg *c, struct s3 **out);
void s3_free(struct s3 *s);
/* "s3://bucket/prefix at endpoint" for messages (no credentials). */
const char *s3_name(const struct s3 *s);

/* HEAD of the bucket: 0, or ERR_NOTFOUND ("no such bucket"), ERR_AUTH,
 * ERR_UNAVAILABLE.  The start-up check. */
int s3_check_bucket(struct s3 *s, struct err *e);

int s3_put(struct s3 *s, const char *key, const void *data, size_t len, struct err *e);
/* A PUT with "If-None-Match: *": ERR_EXISTS (HTTP 412) when key holds an
 * object already (on a store that honours the header; one that ignores it
 * overwrites and returns 0). */
/* s3_put that ends, retries included, by deadline_ms (time_now_ms()
 * clock; 0: no deadline): each try's curl timeout is cut to what is
 * left and no retry starts that its backoff would take past it. */
int s3_put_by(struct s3 *s, const char *key, const void *data, size_t len, int64_t deadline_ms, struct err *e);
int s3_put_new(struct s3 *s, const char *key, const void *data, size_t len, struct err *e);
/* Upload 'size' bytes of file fd from offset 0: one PUT below
 * multipart_min, else a multipart upload (aborted on failure). */
int s3_put_fd(struct s3 *s, const char *key, int fd, int64_t size, struct err *e);
/* Whole object of at most max bytes (ERR_LIMIT beyond): *data malloc'd
 * and NUL-terminated. */
int s3_get(struct s3 *s, const char *key, size_t max, char **data, size_t *len, struct err *e);
/* Bytes [off, off+len) into buf; *got = bytes read (less at the end). */
int s3_get_range(struct s3 *s, const char *key, int64_t off, size_t len, void *buf, size_t *got, struct err *e);
/* Whole object into file fd (written from its current position). */
int s3_get_fd(struct s3 *s, const char *key, int fd, int64_t *size, struct err *e);
/* Bytes [off, off+len) (len > 0) into file fd with one range GET (a part
 * of the object, never the whole of it); *got = bytes written (less at
 * the end of the object, 0 past it).  A store that ignores the range is
 * an error (ERR_INTERNAL). */
int s3_get_range_fd(struct s3 *s, const char *key, int64_t off, int64_t len, int fd, int64_t *got, struct err *e);
/* *size: the Content-Length; an answer without one is ERR_INTERNAL when
 * size is wanted (an unknown size is never passed on as -1). */
int s3_head(struct s3 *s, const char *key, int64_t *size, struct err *e);
/* Deleting an absent key is not an error. */
int s3_delete(struct s3 *s, const char *key, struct err *e);

/* One page of a listing v2 of keys starting with prefix (relative to the
 * configured prefix; keys returned relative too).  token NULL = first
 * page; *next = continuation token (malloc'd) or NULL after the last. */
struct s3_obj {
    char *key;
    int64_t size;
    int64_t mtime_ms; /* LastModified, ms since the epoch (0: unknown) */
    char *etag;       /* ETag as listed (with its quotes), or NULL */
};
int s3_list(struct s3 *s, const char *prefix, const char *token, int max_keys, struct s3_obj **objs, int *n,
            char **next, struct err *e);
/* The same from the key after start_after (relative; NULL/"": the first),
 * one page; *more: the listing goes on past it. */
int s3_list_after(struct s3 *s, const char *prefix, const char *start_after, int max_keys, struct s3_obj **objs,
                  int *n, bool *more, struct err *e);
void s3_objs_free(struct s3_obj *objs, int n);
/* Delete every key starting with prefix (list + delete). */
int s3_delete_prefix(struct s3 *s, const char *prefix, struct err *e);

/* Server-side copy of src_key to dst_key (one request, objects up to
 * 5 GiB): the copy appears whole or not at all. */
int s3_copy(struct s3 *s, const char *src_key, const char *dst_key, struct err *e);
/* The same, of the object with ETag etag only (NULL: any): a copy whose
 * ETag (CopyObjectResult) is another (src_key was replaced since it was
 * listed) is deleted again and ERR_EXISTS returned.  Not with
 * x-amz-copy-source-if-match: libcurl 7.88's SigV4 sorts that header before
 * x-amz-copy-source and radosgw answers SignatureDoesNotMatch. */
int s3_copy_if(struct s3 *s, const char *src_key, const char *etag, const char *dst_key, struct err *e);
/* The start-up probe of docs/STORAGE.md "Copy-ins": a PUT to the
 * presigned URL url (signed elsewhere, sent as it is) with an UNSIGNED
 * "x-amz-copy-source" of src_key and no body.  0 when the store answered
 * 2xx (it may have copied: look at the target), else its refusal. */
int s3_presigned_copy_probe(struct s3 *s, const char *url, const char *src_key, struct err *e);

/* Multipart upload, the parts of s3_put_fd (exposed for tests). */
int s3_mpu_create(struct s3 *s, const char *key, char **upload_id, struct err *e);
/* *etag malloc'd (with its quotes, as the store sent it). */
int s3_mpu_part(struct s3 *s, const char *key, const char *upload_id, int part_no, const void *data, size_t len,
                char **etag, struct err *e);
int s3_mpu_complete(struct s3 *s, const char *key, const char *upload_id, char *const *etags, int n,
                    struct err *e);
int s3_mpu_abort(struct s3 *s, const char *key, const char *upload_id, struct err *e);

/* A presigned URL (SigV4 query signing, UNSIGNED-PAYLOAD) of method "GET",
 * "PUT" or "HEAD" on key, valid expires_s seconds (1..604800) from
 * now_unix_s.  content_length >= 0 also signs the content-length header:
 * the store then refuses a PUT of any other length.  *out malloc'd. */
int s3_presign(struct s3 *s, const char *method, const char *key, int64_t now_unix_s, int64_t expires_s,
               int64_t content_length, char **out);
/* A presigned PUT of key that also signs "If-None-Match: *": the client
 * must send that header (the upload answer's extensionHeaders), and a
 * store that honours it (AWS S3, radosgw, MinIO) refuses with 412 a PUT to
 * a key that holds an object, so the URL writes the object once.
 * content_length >= 0 also signs the content-length.  *out malloc'd. */
int s3_presign_put_once(struct s3 *s, const char *key, int64_t now_unix_s, int64_t expires_s, int64_t content_length,
                        char **out);

/* The SigV4 query signature itself, for the unit test against AWS's
 * documented example: the full URL of 'method' on 'path' (already
 * encoded, starting with '/') at host/scheme; amz_date "YYYYMMDDTHHMMSSZ". */
char *s3__presign_raw(const char *scheme, const char *host, const char *path, const char *method,
                      const char *access_key, const char *secret_key, const char *session_token,
                      const char *region, const char *amz_date, int64_t expires_s, int64_t content_length,
                      bool put_once);

#endif
