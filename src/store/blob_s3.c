/*
 * blob_s3.c — the S3 backend of the blob store: blob <key> is the object
 * "<prefix>/<key>" of one bucket (s3.c is the client).
 *
 * A PUT is durable when the store answers 200, so "sync" and
 * store_blob_sync() have nothing to do; an object is visible whole or not
 * at all (S3 never shows a half-written object, multipart uploads
 * included).  Temp files (uploads streamed in by the HTTP layer, the
 * streaming writer) stay in DATA/tmp on the local disk and are uploaded
 * when finished: store_blob_put_file and the writer's finish upload the
 * file (multipart from 64 MiB) and remove it.  store_blob_open downloads
 * the object into an unlinked temp file (the callers that want a file
 * descriptor); store_blob_read_range is a range GET.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/s3.h"
#include "store/store_int.h"

/* Log a failure of the store (not a missing key or a caller's limit),
 * count it, return rc. */
static int s3_fail(const char *op, const char *key, int rc, const struct err *e)
{
    if (rc < 0 && rc != ERR_NOTFOUND && rc != ERR_LIMIT && rc != ERR_INVALID) {
        metric_count(METRIC_BLOB_ERRORS, 1, op, NULL, NULL);
        log_warn("store", "blob %s '%s': %s", op, key, err_text(e, rc));
    }
    return rc;
}

static int b_put(struct store *st, const char *key, const void *data, size_t len, bool sync)
{
    struct err e = ERR_INIT;
    (void)sync;
    return s3_fail("write", key, s3_put(st->s3, key, data, len, &e), &e);
}

static int b_publish(struct store *st, const char *key, const char *src, int fd)
{
    struct err e = ERR_INIT;
    struct stat sb;
    int own = -1, rc;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    if (fd < 0 && (own = fd = open(src, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if (fstat(fd, &sb) < 0)
        rc = -errno;
    else
        rc = s3_fail("write", key, s3_put_fd(st->s3, key, fd, (int64_t)sb.st_size, &e), &e);
    if (own >= 0)
        close(own);
    if (rc == 0)
        unlink(src);
    return rc;
}

int store__blob_s3_get_fd(struct store *st, const char *key, int fd, int64_t *size)
{
    struct err e = ERR_INIT;
    return s3_fail("read", key, s3_get_fd(st->s3, key, fd, size, &e), &e);
}

static int b_open(struct store *st, const char *key, int *fd, int64_t *size)
{
    char *tmp = NULL;
    int f = -1, rc;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    if ((rc = store_tmp_create(st, &tmp, &f)) < 0)
        return rc;
    unlink(tmp); /* gone when closed */
    free(tmp);
    rc = store__blob_s3_get_fd(st, key, f, size);
    if (rc == 0 && lseek(f, 0, SEEK_SET) < 0)
        rc = -errno;
    if (rc < 0) {
        close(f);
        return rc;
    }
    *fd = f;
    return 0;
}

int store__blob_s3_open_range(struct store *st, const char *key, int64_t off, int64_t len, int *fd)
{
    struct err e = ERR_INIT;
    char *tmp = NULL;
    int f = -1, rc;
    int64_t got = 0;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    if ((rc = store_tmp_create(st, &tmp, &f)) < 0)
        return rc;
    unlink(tmp); /* gone when closed */
    free(tmp);
    if (len > 0)
        rc = s3_fail("read", key, s3_get_range_fd(st->s3, key, off, len, f, &got, &e), &e);
    else /* an empty item: the object must still be there */
        rc = s3_fail("read", key, s3_head(st->s3, key, NULL, &e), &e);
    if (rc == 0 && got < len)
        rc = ERR_PARSE; /* the object is shorter than the item: damaged */
    if (rc == 0 && lseek(f, 0, SEEK_SET) < 0)
        rc = -errno;
    if (rc < 0) {
        close(f);
        return rc;
    }
    *fd = f;
    return 0;
}

static int b_read(struct store *st, const char *key, size_t max, char **data, size_t *len)
{
    struct err e = ERR_INIT;
    return s3_fail("read", key, s3_get(st->s3, key, max, data, len, &e), &e);
}

static int b_read_range(struct store *st, const char *key, int64_t off, size_t len, void *buf, size_t *got)
{
    struct err e = ERR_INIT;
    return s3_fail("read", key, s3_get_range(st->s3, key, off, len, buf, got, &e), &e);
}

static int b_size(struct store *st, const char *key, int64_t *size)
{
    struct err e = ERR_INIT;
    return s3_fail("read", key, s3_head(st->s3, key, size, &e), &e);
}

static int b_del(struct store *st, const char *key)
{
    struct err e = ERR_INIT;
    return s3_fail("delete", key, s3_delete(st->s3, key, &e), &e);
}

static int b_del_prefix(struct store *st, const char *prefix)
{
    struct err e = ERR_INIT;
    if (!store_blob_key_valid(prefix))
        return ERR_INVALID;
    char *p = xasprintf("%s/", prefix);
    int rc = s3_fail("delete", prefix, s3_delete_prefix(st->s3, p, &e), &e);
    free(p);
    return rc;
}

static int b_list(struct store *st, const char *prefix, store_blob_list_fn fn, void *ud)
{
    struct err e = ERR_INIT;
    char *token = NULL, *p;
    int rc = 0;
    if (!store_blob_key_valid(prefix))
        return ERR_INVALID;
    p = xasprintf("%s/", prefix);
    do {
        struct s3_obj *objs;
        int n;
        char *next = NULL;
        rc = s3_fail("list", prefix, s3_list(st->s3, p, token, 1000, &objs, &n, &next, &e), &e);
        free(token);
        token = next;
        for (int i = 0; i < n && rc == 0; i++)
            if (store_blob_key_valid(objs[i].key)) /* objects of other writers: skipped */
                rc = fn(ud, objs[i].key, objs[i].size, objs[i].mtime_ms);
        s3_objs_free(objs, n);
    } while (rc == 0 && token);
    free(token);
    free(p);
    return rc;
}

static int b_sync(struct store *st)
{
    (void)st;
    return 0;
}

const struct store_blob_ops store__blob_s3 = {
    .name = "s3",
    .put = b_put,
    .publish = b_publish,
    .open = b_open,
    .read = b_read,
    .read_range = b_read_range,
    .size = b_size,
    .del = b_del,
    .del_prefix = b_del_prefix,
    .sync = b_sync,
    .list = b_list,
};

/* Does the store honour "If-None-Match: *" on PUT (AWS S3 since 2024,
 * radosgw, MinIO)?  Two conditional PUTs of one new key: the second must be
 * refused.  The probe key is outside the folders the orphan sweep walks and
 * deleted at once. */
static bool put_once_probe(struct s3 *s)
{
    struct err e = ERR_INIT;
    uint8_t rnd[8];
    char hex[17], key[64];
    rand_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, hex);
    snprintf(key, sizeof key, "probe/put-once-%s", hex);
    bool once = s3_put_new(s, key, "1", 1, &e) == 0 && s3_put_new(s, key, "2", 1, &e) == ERR_EXISTS;
    s3_delete(s, key, &e);
    if (!once)
        log_info("store", "the object store overwrites on a PUT with If-None-Match: *: uploads are copied on arrival");
    return once;
}

/* Does the store take an UNSIGNED "x-amz-copy-source" header on a URL that
 * sign presigned (radosgw 16 does; AWS S3 refuses unsigned x-amz-*
 * headers)?  Then a client could copy any object the signing credential
 * can read into its upload key (docs/STORAGE.md "Copy-ins").  Tried on a
 * probe key: a source object of 10 bytes, a presigned PUT of another key
 * sent with the copy header and no body; copied when the target then
 * holds 10 bytes.  Both keys deleted.  A store that cannot be asked counts
 * as accepting (the safe side). */
static bool copy_in_probe(struct s3 *s, struct s3 *sign)
{
    struct err e = ERR_INIT;
    uint8_t rnd[8];
    char hex[17], src[64], dst[64], *url = NULL;
    int64_t size = -1;
    rand_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, hex);
    snprintf(src, sizeof src, "probe/copy-src-%s", hex);
    snprintf(dst, sizeof dst, "probe/copy-dst-%s", hex);
    bool accepted = true;
    int64_t now = time_now_ms() / 1000;
    if (s3_put(s, src, "copy-probe", 10, &e) == 0 && s3_presign(sign, "PUT", dst, now, 60, -1, &url) == 0) {
        int rc = s3_presigned_copy_probe(s, url, src, &e);
        int hrc = s3_head(s, dst, &size, &e);
        accepted = rc == 0 && hrc == 0 && size == 10;
        if (rc < 0 && rc != ERR_AUTH && rc != ERR_INTERNAL && rc != ERR_INVALID && rc != ERR_NOTFOUND)
            accepted = true; /* unreachable: not known */
    }
    free(url);
    s3_delete(s, dst, &e);
    s3_delete(s, src, &e);
    return accepted;
}

int store_blobs_configure(struct store *st, const char *url, const char *cred_file, const char *presign_cred_file,
                          struct err *e)
{
    struct s3_cfg c, pc = {0};
    struct s3 *s = NULL, *sign = NULL;
    bool have_pc = false;
    int rc;
    if (!url || !*url || !strcmp(url, "local"))
        return 0;
    if ((rc = s3_cfg_parse(url, &c, e)) < 0)
        return rc;
    if ((rc = s3_cfg_credentials(&c, cred_file, e)) < 0) {
        s3_cfg_free(&c);
        return rc;
    }
    if (presign_cred_file && *presign_cred_file) {
        if ((rc = s3_cfg_parse(url, &pc, e)) < 0 || (rc = s3_cfg_credentials(&pc, presign_cred_file, e)) < 0) {
            s3_cfg_free(&pc);
            s3_cfg_free(&c);
            return rc;
        }
        have_pc = true;
    }
    c.max_retries = 2; /* the start-up check: fail fast; then the default */
    rc = s3_new(&c, &s);
    if (rc == 0 && (rc = s3_check_bucket(s, e)) < 0) {
        s3_free(s);
        s = NULL;
    }
    if (rc == 0 && have_pc)
        rc = s3_new(&pc, &sign);
    bool once = false, copy_ins = false;
    if (rc == 0) {
        once = put_once_probe(s);
        copy_ins = copy_in_probe(s, sign ? sign : s);
    }
    if (rc == 0 && copy_ins && sign) {
        /* a separate credential that can still copy: it can read */
        rc = err_set(e, ERR_INVALID,
                     "the presign credentials (--blobs-presign-credentials) can copy objects of the bucket "
                     "into an upload: give them PutObject only, no GetObject (docs/DEPLOY.md)");
    }
    if (rc == 0) {
        s3_free(s);
        c.max_retries = 0; /* default */
        rc = s3_new(&c, &s);
    }
    s3_cfg_free(&c);
    if (have_pc)
        s3_cfg_free(&pc);
    if (rc < 0) {
        s3_free(s);
        s3_free(sign);
        if (e && !e->msg[0])
            err_set(e, rc, "cannot use the blob store %s: %s", url, err_str(rc));
        return rc;
    }
    if (copy_ins) {
        once = false; /* a copy ignores If-None-Match: an indexed shard could be replaced */
        log_warn("store", "SECURITY: the object store %s accepts an unsigned x-amz-copy-source header on presigned "
                          "upload URLs: a client can copy into its upload any object these credentials can read "
                          "(other workspaces' files); put-once shard URLs are off.  Presign with a PutObject-only "
                          "credential: --blobs-presign-credentials FILE (docs/DEPLOY.md)",
                 s3_name(s));
    }
    store__blobs_free(st);
    st->s3 = s;
    st->s3_sign = sign;
    st->blob_name = xstrdup(s3_name(s));
    st->blob = &store__blob_s3;
    st->blob_put_once = once;
    st->blob_copy_ins = copy_ins;
    return 0;
}

void store__blobs_free(struct store *st)
{
    s3_free(st->s3);
    st->s3 = NULL;
    s3_free(st->s3_sign);
    st->s3_sign = NULL;
    st->blob_copy_ins = false;
    free(st->blob_name);
    st->blob_name = NULL;
    st->blob = &store__blob_local;
}

int store_blob_presign(struct store *st, const char *method, const char *key, int64_t expires_unix_s,
                       int64_t length, char **url)
{
    if (!st->s3)
        return ERR_UNSUPPORTED;
    int64_t now = time_now_ms() / 1000;
    if (expires_unix_s <= now)
        return ERR_INVALID;
    /* uploads: the PUT-only credential when there is one (copy-ins) */
    return s3_presign(st->s3_sign && !strcmp(method, "PUT") ? st->s3_sign : st->s3, method, key, now, expires_unix_s - now, length, url);
}

int store_blob_presign_put_once(struct store *st, const char *key, int64_t expires_unix_s, int64_t length,
                                char **url)
{
    if (!st->s3 || !st->blob_put_once)
        return ERR_UNSUPPORTED;
    int64_t now = time_now_ms() / 1000;
    if (expires_unix_s <= now)
        return ERR_INVALID;
    return s3_presign_put_once(st->s3_sign ? st->s3_sign : st->s3, key, now, expires_unix_s - now, length, url);
}

int store_blob_copy(struct store *st, const char *src, const char *dst)
{
    return store_blob_copy_if(st, src, NULL, dst);
}

int store_blob_copy_if(struct store *st, const char *src, const char *etag, const char *dst)
{
    struct err e = ERR_INIT;
    if (!st->s3)
        return ERR_UNSUPPORTED;
    if (!store_blob_key_valid(src) || !store_blob_key_valid(dst))
        return ERR_INVALID;
    int rc = s3_copy_if(st->s3, src, etag, dst, &e);
    return rc == ERR_EXISTS ? rc : s3_fail("copy", dst, rc, &e);
}

int store_blob_list_etags(struct store *st, const char *prefix, const char *start_after, int max,
                          store_blob_list_etag_fn fn, void *ud, bool *more)
{
    struct err e = ERR_INIT;
    *more = false;
    if (!st->s3)
        return ERR_UNSUPPORTED;
    if (!store_blob_key_valid(prefix) || (start_after && *start_after && !store_blob_key_valid(start_after)))
        return ERR_INVALID;
    char *p = xasprintf("%s/", prefix);
    struct s3_obj *objs;
    int n;
    int rc = s3_fail("list", prefix, s3_list_after(st->s3, p, start_after, max, &objs, &n, more, &e), &e);
    for (int i = 0; i < n && rc == 0; i++)
        if (store_blob_key_valid(objs[i].key))
            rc = fn(ud, objs[i].key, objs[i].size, objs[i].etag);
    s3_objs_free(objs, n);
    free(p);
    return rc;
}
