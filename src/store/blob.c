/*
 * blob.c — the blob store: the public store_blob_* calls, which go through
 * the backend of the store (st->blob: the local folder here, S3-compatible
 * object storage in blob_s3.c), the local folder backend, the streaming
 * writer and the signed URLs.
 *
 * Local backend: a blob is one file DATA/blobs/<key>.  Keys are validated strictly (see
 * store_blob_key_valid) so a key can never leave the blobs folder.  Every
 * write goes to a temp file in DATA/tmp (same file system), is fsynced,
 * renamed over DATA/blobs/<key> and the folder is fsynced: a reader sees
 * either the old blob, the new one, or none — never a half file, even
 * after a crash.  Temp files orphaned by a crash are removed by
 * store_tmp_sweep().
 *
 * Signed URLs: HMAC-SHA256 with the installation secret over
 *   "v1\n" METHOD "\n" key "\n" expires "\n" limit
 * encoded base64url; see store.h for the URL layout.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store/store_int.h"

bool store_blob_key_valid(const char *key)
{
    size_t n, seg = 0;
    if (!key || !key[0])
        return false;
    n = strlen(key);
    if (n > STORE_BLOB_KEY_MAX || key[0] == '/' || key[n - 1] == '/')
        return false;
    for (size_t i = 0; i <= n; i++) {
        char c = key[i];
        if (c == '/' || c == 0) {
            if (seg == 0)
                return false;
            if ((seg == 1 && key[i - 1] == '.') || (seg == 2 && key[i - 1] == '.' && key[i - 2] == '.'))
                return false;
            seg = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
        seg++;
    }
    return true;
}

char *store_blob_path(struct store *st, const char *key)
{
    return xasprintf("%s/%s", st->blob_dir, key);
}

int store_tmp_create(struct store *st, char **path, int *fd)
{
    char *p = xasprintf("%s/up-XXXXXX", st->tmp_dir);
    int f = mkostemp(p, O_CLOEXEC);
    if (f < 0) {
        int rc = -errno;
        free(p);
        return rc;
    }
    *path = p;
    *fd = f;
    return 0;
}

/* Make the parent folders of a blob path. */
static int blob_mkparent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash) {
        *slash = 0;
        rc = mkdir_p(dir, 0755);
    }
    free(dir);
    return rc;
}

static int fsync_parent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash) {
        *slash = 0;
        rc = fsync_dir(dir);
    }
    free(dir);
    return rc;
}

/* Count an OS failure of a blob operation (vbatch_blob_errors_total);
 * refusals of a caller's input (bad key, not found, over a limit) are not
 * store errors.  Returns rc. */
static int blob_err(const char *op, int rc)
{
    if (rc < 0 && (rc > ERR_PARSE || rc == ERR_NOSPACE))
        metric_count(METRIC_BLOB_ERRORS, 1, op, NULL, NULL);
    return rc;
}

/* Sync src (an existing file: fdatasync, its bytes and size) and rename it
 * to the blob path of key; the folder is synced after the rename. */
static int local_publish(struct store *st, const char *key, const char *src, int fd)
{
    char *dst = NULL;
    int rc = 0, own_fd = -1;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    if (fd < 0) {
        own_fd = fd = open(src, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
    }
    if (fdatasync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    dst = store_blob_path(st, key);
    if (rename(src, dst) < 0) {
        if (errno != ENOENT || (rc = blob_mkparent(dst)) < 0 || rename(src, dst) < 0) {
            rc = rc < 0 ? rc : -errno;
            goto out;
        }
    }
    rc = fsync_parent(dst);
out:
    if (own_fd >= 0)
        close(own_fd);
    free(dst);
    return blob_err("write", rc);
}


static int local_put_nosync(struct store *st, const char *key, const void *data, size_t len)
{
    /* No temp file: the callers (indexer, fetcher) write under keys that no
     * row references until after store_blob_sync() and their commit, and a
     * rerun after a crash rewrites the same keys, so a torn file is never
     * visible.  The parent folder is made only when the open says so. */
    char *dst;
    int fd, rc;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    dst = store_blob_path(st, key);
    fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno == ENOENT && blob_mkparent(dst) == 0)
        fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = fd_write_all(fd, data, len);
    close(fd);
    if (rc < 0)
        unlink(dst);
out:
    free(dst);
    return blob_err("write", rc);
}

static int local_sync(struct store *st)
{
    int fd = open(st->blob_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0)
        return -errno;
    if (syncfs(fd) < 0)
        rc = -errno;
    close(fd);
    return blob_err("write", rc);
}

static int local_put_sync(struct store *st, const char *key, const void *data, size_t len)
{
    char *tmp = NULL;
    int fd = -1, rc;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    if ((rc = store_tmp_create(st, &tmp, &fd)) < 0)
        return rc;
    rc = fd_write_all(fd, data, len);
    if (rc == 0)
        rc = local_publish(st, key, tmp, fd);
    close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

static int local_open(struct store *st, const char *key, int *fd, int64_t *size)
{
    struct stat sb;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    char *path = store_blob_path(st, key);
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = f < 0 ? (errno == ENOENT ? ERR_NOTFOUND : -errno) : 0;
    free(path);
    if (rc < 0)
        return blob_err("read", rc);
    if (fstat(f, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(f);
        return ERR_NOTFOUND;
    }
    *fd = f;
    *size = sb.st_size;
    return 0;
}

static int local_read(struct store *st, const char *key, size_t max, char **data, size_t *len)
{
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    char *path = store_blob_path(st, key);
    int rc = file_read_all(path, max, data, len);
    free(path);
    if (rc == -ENOENT)
        rc = ERR_NOTFOUND;
    return blob_err("read", rc);
}

static int local_delete(struct store *st, const char *key)
{
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    char *path = store_blob_path(st, key);
    int rc = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
    free(path);
    return blob_err("delete", rc);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) < 0 && errno != ENOENT)
        log_warn("store", "cannot remove '%s': %s", path, strerror(errno));
    return 0;
}

static int local_delete_prefix(struct store *st, const char *prefix)
{
    if (!store_blob_key_valid(prefix))
        return ERR_INVALID;
    char *path = store_blob_path(st, prefix);
    int rc = 0;
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        rc = -errno;
    free(path);
    return blob_err("delete", rc);
}

static int local_put(struct store *st, const char *key, const void *data, size_t len, bool sync)
{
    return sync ? local_put_sync(st, key, data, len) : local_put_nosync(st, key, data, len);
}

static int local_read_range(struct store *st, const char *key, int64_t off, size_t len, void *buf, size_t *got)
{
    int fd, rc;
    int64_t size;
    *got = 0;
    if (off < 0)
        return ERR_INVALID;
    if ((rc = local_open(st, key, &fd, &size)) < 0)
        return rc;
    while (*got < len && off + (int64_t)*got < size) {
        ssize_t n = pread(fd, (char *)buf + *got, len - *got, (off_t)(off + (int64_t)*got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    close(fd);
    return blob_err("read", rc);
}

static int local_size(struct store *st, const char *key, int64_t *size)
{
    struct stat sb;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    char *path = store_blob_path(st, key);
    int rc = stat(path, &sb) < 0 ? (errno == ENOENT ? ERR_NOTFOUND : -errno) : 0;
    free(path);
    if (rc == 0 && !S_ISREG(sb.st_mode))
        rc = ERR_NOTFOUND;
    if (rc == 0 && size)
        *size = sb.st_size;
    return blob_err("read", rc);
}

struct walk {
    struct store *st;
    size_t skip;   /* strlen(blob_dir) + 1 */
    store_blob_list_fn fn;
    void *ud;
};
static __thread struct walk *walk_cur; /* nftw has no user pointer */

static int walk_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(sb->st_mode))
        return 0;
    const char *key = path + walk_cur->skip;
    if (!store_blob_key_valid(key))
        return 0;
    return walk_cur->fn(walk_cur->ud, key, (int64_t)sb->st_size,
                        (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000);
}

static int local_list(struct store *st, const char *prefix, store_blob_list_fn fn, void *ud)
{
    if (!store_blob_key_valid(prefix))
        return ERR_INVALID;
    struct walk w = {st, strlen(st->blob_dir) + 1, fn, ud};
    char *path = store_blob_path(st, prefix);
    struct walk *saved = walk_cur;
    walk_cur = &w;
    int rc = nftw(path, walk_one, 16, FTW_PHYS);
    walk_cur = saved;
    if (rc < 0)
        rc = errno == ENOENT ? 0 : -errno;
    free(path);
    return rc;
}

int store_blob_list(struct store *st, const char *prefix, store_blob_list_fn fn, void *ud)
{
    return st->blob->list(st, prefix, fn, ud);
}

const struct store_blob_ops store__blob_local = {
    .name = "local",
    .put = local_put,
    .publish = local_publish,
    .open = local_open,
    .read = local_read,
    .read_range = local_read_range,
    .size = local_size,
    .del = local_delete,
    .del_prefix = local_delete_prefix,
    .sync = local_sync,
    .list = local_list,
};

/* ---- the public calls: through the backend ------------------------------------------ */

int store_blob_put(struct store *st, const char *key, const void *data, size_t len)
{
    return st->blob->put(st, key, data, len, true);
}

int store_blob_put_nosync(struct store *st, const char *key, const void *data, size_t len)
{
    return st->blob->put(st, key, data, len, false);
}

int store_blob_sync(struct store *st)
{
    return st->blob->sync(st);
}

int store_blob_put_file(struct store *st, const char *key, const char *src_path)
{
    return st->blob->publish(st, key, src_path, -1);
}

int store_blob_open(struct store *st, const char *key, int *fd, int64_t *size)
{
    return st->blob->open(st, key, fd, size);
}

int store_blob_read(struct store *st, const char *key, size_t max, char **data, size_t *len)
{
    return st->blob->read(st, key, max, data, len);
}

int store_blob_read_range(struct store *st, const char *key, int64_t off, size_t len, void *buf, size_t *got)
{
    return st->blob->read_range(st, key, off, len, buf, got);
}

int store_blob_size(struct store *st, const char *key, int64_t *size)
{
    return st->blob->size(st, key, size);
}

/* Item bytes by (key, offset, length), on either backend: a whole blob
 * (offset < 0), or a range of it (local pread, S3 range GET). */
int store_blob_read_at(struct store *st, const char *key, int64_t offset, int64_t length, size_t max, char **data,
                       size_t *len)
{
    if (offset < 0)
        return store_blob_read(st, key, max, data, len);
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    if (length < 0 || (uint64_t)length > max)
        return ERR_LIMIT;
    char *p = try_alloc((size_t)length + 1, 1);
    size_t got = 0;
    if (!p)
        return ERR_NOMEM;
    int rc = length > 0 ? store_blob_read_range(st, key, offset, (size_t)length, p, &got) : 0;
    if (rc == 0 && got != (size_t)length) {
        log_warn("store", "blob '%s' ends before the item's %lld bytes at %lld", key, (long long)length,
                 (long long)offset);
        rc = blob_err("read", ERR_PARSE);
    }
    if (rc < 0) {
        free(p);
        return rc;
    }
    p[got] = 0;
    *data = p;
    if (len)
        *len = got;
    return 0;
}

int store_blob_open_at(struct store *st, const char *key, int64_t offset, int64_t length, int *fd, int64_t *start,
                       int64_t *size)
{
    int f = -1;
    int64_t whole = 0;
    int rc;
    if (offset >= 0 && st->blob == &store__blob_s3) {
        /* one range GET of the item's bytes, not the whole shard */
        if (length < 0)
            return blob_err("read", ERR_PARSE);
        rc = store__blob_s3_open_range(st, key, offset, length, &f);
        if (rc == ERR_PARSE)
            log_warn("store", "blob '%s' is shorter than an item that wants %lld bytes at %lld", key,
                     (long long)length, (long long)offset);
        if (rc < 0)
            return rc == ERR_PARSE ? blob_err("read", rc) : rc;
        *fd = f, *start = 0, *size = length;
        return 0;
    }
    rc = store_blob_open(st, key, &f, &whole);
    if (rc < 0)
        return rc;
    if (offset < 0) {
        *fd = f, *start = 0, *size = whole;
        return 0;
    }
    if (length < 0 || offset > whole || length > whole - offset) {
        close(f);
        log_warn("store", "blob '%s' holds %lld bytes, an item wants %lld at %lld", key, (long long)whole,
                 (long long)length, (long long)offset);
        return blob_err("read", ERR_PARSE);
    }
    *fd = f, *start = offset, *size = length;
    return 0;
}

int store_blob_delete(struct store *st, const char *key)
{
    return st->blob->del(st, key);
}

int store_blob_delete_prefix(struct store *st, const char *prefix)
{
    return st->blob->del_prefix(st, prefix);
}

bool store_blobs_local(const struct store *st)
{
    return st->blob == &store__blob_local;
}

const char *store_blobs_name(const struct store *st)
{
    return st->blob_name ? st->blob_name : st->blob_dir;
}

int store_blob_local_copy(struct store *st, const char *key, char **path)
{
    int fd = -1, rc;
    int64_t size;
    *path = NULL;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    if (store_blobs_local(st)) {
        *path = store_blob_path(st, key);
        return 0;
    }
    char *tmp = NULL;
    if ((rc = store_tmp_create(st, &tmp, &fd)) < 0)
        return rc;
    rc = store__blob_s3_get_fd(st, key, fd, &size);
    close(fd);
    if (rc < 0) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    *path = tmp;
    return 0;
}

void store_blob_local_release(struct store *st, char *path)
{
    if (!path)
        return;
    if (!store_blobs_local(st))
        unlink(path);
    free(path);
}

int store_tmp_sweep(struct store *st, int64_t older_than_ms)
{
    DIR *d = opendir(st->tmp_dir);
    struct dirent *e;
    int n = 0;
    if (!d)
        return -errno;
    int64_t now = time_now_ms();
    while ((e = readdir(d)) != NULL) {
        struct stat sb;
        if (e->d_name[0] == '.')
            continue;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (now - (int64_t)sb.st_mtime * 1000 >= older_than_ms && unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- streaming writer --------------------------------------------------------- */

struct store_blob_writer {
    struct store *st;
    char *key;     /* owned */
    char *tmp;     /* owned temp path */
    int fd;
    int64_t limit; /* 0 = none */
    int64_t size;  /* bytes written so far */
    int64_t kicked; /* bytes handed to writeback so far (below) */
    /* Kept mode (store_blob_writer_open_kept) while the blob fits: */
    uint8_t *kept;   /* page-aligned anonymous mapping of keep_cap bytes, or NULL */
    size_t keep_cap; /* its size, reserved from kept_total */
    int dfd;         /* the temp file opened with O_DIRECT, or -1 (buffered writes) */
    int64_t flushed; /* bytes of kept already written to the file (a multiple of DIRECT_STEP);
                        while the feeder runs, guarded by feed_mu */
    /* The feeder (kept mode with O_DIRECT): a thread that writes the kept
     * bytes [flushed, feed_to) to the file while the body is still being
     * received, so that the receiving thread never waits for the disk. */
    bool feeding;    /* the feeder thread runs */
    bool feed_stop;  /* asked to end once it has written up to feed_to */
    bool feed_failed; /* it stopped on a refused or failed write */
    int64_t feed_to; /* kept bytes ready for it (a multiple of DIRECT_STEP) */
    pthread_t feeder;
    pthread_mutex_t feed_mu;
    pthread_cond_t feed_cv;
};

/* A streamed blob (a tar shard, an export) is handed to the disk as it
 * arrives, every WRITEBACK_STEP bytes (sync_file_range: start the writes,
 * do not wait), so the fsync before the answer finds most of it written
 * already instead of flushing the whole file at once: the disk works while
 * the body is still being received. */
#define WRITEBACK_STEP (2 << 20)
/* Kept mode writes the bytes from its aligned copy in steps of this size
 * with O_DIRECT: the disk is fed from memory the caller reads again
 * anyway, with no copy into the page cache and no writeback work later. */
#define DIRECT_STEP (1 << 20)
/* The feeder writes at most this much per call (a few steps at once when
 * the disk is behind the network). */
#define FEED_MAX (4 << 20)
/* All kept writers of the process together hold at most this much memory
 * (their reserved capacity); a writer that cannot reserve writes as usual. */
#define KEPT_TOTAL_MAX ((size_t)512 << 20)
static _Atomic size_t kept_total;

int store_blob_writer_open(struct store *st, const char *key, int64_t limit, struct store_blob_writer **out)
{
    struct store_blob_writer *w;
    int rc;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    w = xcalloc(1, sizeof *w);
    w->st = st;
    w->dfd = -1;
    w->limit = limit > 0 ? limit : 0;
    if ((rc = store_tmp_create(st, &w->tmp, &w->fd)) < 0) {
        free(w);
        return rc;
    }
    w->key = xstrdup(key);
    *out = w;
    return 0;
}

/* Kept regions are reused: a fresh mapping costs a page fault and a
 * cleared page per 4 KiB (more CPU than the copy into it).  At most
 * KEPT_POOL regions wait here, each with at most KEPT_POOL_RESIDENT bytes
 * of touched pages (the rest is handed back to the kernel). */
#define KEPT_POOL 4
#define KEPT_POOL_RESIDENT ((size_t)16 << 20)
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void *m;
    size_t cap;
} kept_pool[KEPT_POOL];

static void *kept_map(size_t cap)
{
    void *m = NULL;
    pthread_mutex_lock(&kept_mu);
    for (int i = 0; i < KEPT_POOL && !m; i++)
        if (kept_pool[i].m && kept_pool[i].cap == cap) {
            m = kept_pool[i].m;
            kept_pool[i].m = NULL;
        }
    pthread_mutex_unlock(&kept_mu);
    if (m)
        return m;
    /* pages are touched only as the blob grows; huge pages where the
     * kernel gives them (fewer faults) */
    m = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    (void)madvise(m, cap, MADV_HUGEPAGE);
    return m;
}

static void kept_unmap(void *m, size_t cap, size_t used)
{
    if (used > KEPT_POOL_RESIDENT)
        (void)madvise((uint8_t *)m + KEPT_POOL_RESIDENT, cap - KEPT_POOL_RESIDENT, MADV_DONTNEED);
    pthread_mutex_lock(&kept_mu);
    for (int i = 0; i < KEPT_POOL && m; i++)
        if (!kept_pool[i].m) {
            kept_pool[i].m = m;
            kept_pool[i].cap = cap;
            m = NULL;
        }
    pthread_mutex_unlock(&kept_mu);
    if (m)
        munmap(m, cap);
}

static void *feeder_main(void *arg)
{
    struct store_blob_writer *w = arg;
    pthread_mutex_lock(&w->feed_mu);
    for (;;) {
        while (!w->feed_stop && w->flushed >= w->feed_to)
            pthread_cond_wait(&w->feed_cv, &w->feed_mu);
        if (w->flushed >= w->feed_to)
            break; /* stopped, all fed */
        int64_t off = w->flushed, n = MIN(w->feed_to - off, FEED_MAX);
        pthread_mutex_unlock(&w->feed_mu);
        ssize_t k = pwrite(w->dfd, w->kept + off, (size_t)n, off);
        pthread_mutex_lock(&w->feed_mu);
        if (k < 0 && errno == EINTR)
            continue;
        if (k != (ssize_t)n) {
            /* refused (EINVAL: no O_DIRECT here), short or failed: the
             * receiving thread takes over (kept_flush knows what to do) */
            w->feed_failed = true;
            break;
        }
        w->flushed = off + n;
    }
    pthread_mutex_unlock(&w->feed_mu);
    return NULL;
}

/* Stop the feeder once it has written what it was given (or failed):
 * from then on w->flushed is the caller's alone. */
static void feeder_join(struct store_blob_writer *w)
{
    if (!w->feeding)
        return;
    pthread_mutex_lock(&w->feed_mu);
    w->feed_stop = true;
    pthread_cond_signal(&w->feed_cv);
    pthread_mutex_unlock(&w->feed_mu);
    pthread_join(w->feeder, NULL);
    pthread_mutex_destroy(&w->feed_mu);
    pthread_cond_destroy(&w->feed_cv);
    w->feeding = false;
}

static void kept_drop(struct store_blob_writer *w)
{
    if (!w->kept)
        return;
    feeder_join(w);
    kept_unmap(w->kept, w->keep_cap, (size_t)w->size);
    kept_total -= w->keep_cap;
    w->kept = NULL;
    w->keep_cap = 0;
    if (w->dfd >= 0)
        close(w->dfd);
    w->dfd = -1;
}

int store_blob_writer_open_kept(struct store *st, const char *key, int64_t limit, size_t keep_max,
                                struct store_blob_writer **out)
{
    int rc = store_blob_writer_open(st, key, limit, out);
    if (rc < 0)
        return rc;
    struct store_blob_writer *w = *out;
    size_t cap = (keep_max + DIRECT_STEP - 1) / DIRECT_STEP * DIRECT_STEP;
    if (w->limit && (int64_t)cap > w->limit)
        cap = ((size_t)w->limit + DIRECT_STEP - 1) / DIRECT_STEP * DIRECT_STEP;
    if (cap == 0 || atomic_fetch_add(&kept_total, cap) + cap > KEPT_TOTAL_MAX) {
        if (cap)
            kept_total -= cap;
        return 0; /* an ordinary writer */
    }
    void *m = kept_map(cap);
    if (!m) {
        kept_total -= cap;
        return 0;
    }
    w->kept = m;
    w->keep_cap = cap;
    /* a file system without O_DIRECT (tmpfs) gets buffered writes */
    w->dfd = open(w->tmp, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (w->dfd >= 0) {
        pthread_mutex_init(&w->feed_mu, NULL);
        pthread_cond_init(&w->feed_cv, NULL);
        w->feeding = pthread_create(&w->feeder, NULL, feeder_main, w) == 0;
        if (!w->feeding) { /* written by the receiving thread instead */
            pthread_mutex_destroy(&w->feed_mu);
            pthread_cond_destroy(&w->feed_cv);
        }
    }
    return 0;
}

/* Write kept bytes [w->flushed, end) to the file: with O_DIRECT while the
 * range is whole steps, else (or once the file system refused) buffered. */
static int kept_flush(struct store_blob_writer *w, int64_t end)
{
    while (w->flushed < end) {
        size_t n = (size_t)MIN(end - w->flushed, DIRECT_STEP);
        const uint8_t *p = w->kept + w->flushed;
        if (w->dfd >= 0 && n == DIRECT_STEP) {
            ssize_t k = pwrite(w->dfd, p, n, w->flushed);
            if (k < 0 && errno == EINTR)
                continue;
            if (k == (ssize_t)n) {
                w->flushed += k;
                continue;
            }
            if (k < 0 && errno != EINVAL)
                return -errno;
            close(w->dfd); /* EINVAL (alignment refused) or short: buffered from here */
            w->dfd = -1;
            if (k > 0) {
                w->flushed += k;
                continue;
            }
        }
        for (size_t done = 0; done < n;) {
            ssize_t k = pwrite(w->fd, p + done, n - done, w->flushed + (int64_t)done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return -errno;
            done += (size_t)k;
        }
        w->flushed += (int64_t)n;
    }
    return 0;
}

/* Leave kept mode: what is in memory goes to the file, the rest is
 * written as by an ordinary writer. */
static int kept_spill(struct store_blob_writer *w)
{
    feeder_join(w);
    int rc = kept_flush(w, w->size);
    if (rc == 0 && lseek(w->fd, w->size, SEEK_SET) < 0)
        rc = -errno;
    w->kicked = w->size;
    kept_drop(w);
    return rc;
}

int store_blob_writer_write(struct store_blob_writer *w, const void *data, size_t len)
{
    if (w->limit && (int64_t)len > w->limit - w->size)
        return ERR_LIMIT;
    int rc = 0;
    if (w->kept && (size_t)w->size + len > w->keep_cap && (rc = kept_spill(w)) < 0)
        return blob_err("write", rc);
    if (w->kept) {
        memcpy(w->kept + w->size, data, len);
        w->size += (int64_t)len;
        int64_t whole = w->size / DIRECT_STEP * DIRECT_STEP;
        if (w->feeding) {
            pthread_mutex_lock(&w->feed_mu);
            bool failed = w->feed_failed;
            if (!failed && whole > w->feed_to) {
                w->feed_to = whole;
                pthread_cond_signal(&w->feed_cv);
            }
            pthread_mutex_unlock(&w->feed_mu);
            if (!failed)
                return 0;
            feeder_join(w); /* a full disk fails this PUT now, not at its end */
        }
        rc = kept_flush(w, whole);
        return blob_err("write", rc);
    }
    rc = fd_write_all(w->fd, data, len);
    if (rc == 0)
        w->size += (int64_t)len;
    if (rc == 0 && w->size - w->kicked >= WRITEBACK_STEP) {
        (void)sync_file_range(w->fd, w->kicked, w->size - w->kicked, SYNC_FILE_RANGE_WRITE); /* a hint */
        w->kicked = w->size;
    }
    return blob_err("write", rc);
}

int64_t store_blob_writer_size(const struct store_blob_writer *w)
{
    return w->size;
}

int64_t store_blob_writer_unwritten(struct store_blob_writer *w)
{
    if (!w->kept)
        return 0;
    if (!w->feeding)
        return w->size - w->flushed;
    pthread_mutex_lock(&w->feed_mu);
    int64_t n = w->size - w->flushed;
    pthread_mutex_unlock(&w->feed_mu);
    return n;
}

void store_blob_writer_settle(struct store_blob_writer *w)
{
    feeder_join(w);
}

const void *store_blob_writer_kept(const struct store_blob_writer *w)
{
    return w->kept ? (const void *)w->kept : NULL;
}

/* The mark is an extended attribute of the file: it goes with the rename
 * and needs no write of its own. */
#define ANSWERED_XATTR "user.vbatch.answered"

int store_blob_writer_mark(struct store_blob_writer *w)
{
    if (w->st->blob != &store__blob_local)
        return ERR_UNSUPPORTED;
    if (fsetxattr(w->fd, ANSWERED_XATTR, "1", 1, 0) == 0)
        return 0;
    return errno == ENOTSUP || errno == EOPNOTSUPP ? ERR_UNSUPPORTED : -errno;
}

int store_blob_marked(struct store *st, const char *key, int64_t *size)
{
    if (st->blob != &store__blob_local)
        return ERR_UNSUPPORTED;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    char *path = store_blob_path(st, key), v[4];
    struct stat sb;
    int rc = lstat(path, &sb) < 0 ? (errno == ENOENT ? 0 : -errno) : S_ISREG(sb.st_mode) ? 1 : 0;
    if (rc == 1) {
        ssize_t n = getxattr(path, ANSWERED_XATTR, v, sizeof v);
        rc = n == 1 && v[0] == '1';
        *size = sb.st_size;
    }
    free(path);
    return rc;
}

int store_blob_writer_finish(struct store_blob_writer *w)
{
    feeder_join(w);
    int rc = w->kept ? kept_flush(w, w->size) : 0;
    kept_drop(w);
    if (rc == 0)
        rc = w->st->blob->publish(w->st, w->key, w->tmp, w->fd);
    if (rc < 0)
        unlink(w->tmp);
    close(w->fd);
    free(w->tmp);
    free(w->key);
    free(w);
    return rc;
}

void store_blob_writer_abort(struct store_blob_writer *w)
{
    if (!w)
        return;
    kept_drop(w);
    close(w->fd);
    unlink(w->tmp);
    free(w->tmp);
    free(w->key);
    free(w);
}

/* ---- signed URLs ---------------------------------------------------------------- */

/* range_off < 0: no range (the message every URL had before ranges). */
static char *sign_b64(struct store *st, const char *method, const char *key, long long expires, long long limit,
                      long long range_off, long long range_len)
{
    uint8_t mac[32];
    char *msg = range_off < 0 ? xasprintf("v1\n%s\n%s\n%lld\n%lld", method, key, expires, limit)
                              : xasprintf("v1\n%s\n%s\n%lld\n%lld\n%lld\n%lld", method, key, expires, limit,
                                          range_off, range_len);
    hmac_sha256(st->secret, sizeof st->secret, msg, strlen(msg), mac);
    free(msg);
    return base64url_encode(mac, sizeof mac);
}

void store_secret_hmac_hex(struct store *st, const void *data, size_t len, char out[65])
{
    uint8_t mac[32];
    hmac_sha256(st->secret, sizeof st->secret, data, len, mac);
    hex_encode(mac, sizeof mac, out);
}

int store_sign_path(struct store *st, const char *method, const char *key, int64_t expires_unix_s, int64_t limit,
                    char **out)
{
    struct buf b = BUF_INIT;
    if (!store_blob_key_valid(key) || (strcmp(method, "GET") && strcmp(method, "PUT")))
        return ERR_INVALID;
    if (!strcmp(method, "GET"))
        limit = 0;
    char *sig = sign_b64(st, method, key, (long long)expires_unix_s, (long long)limit, -1, -1);
    /* Key characters are all unreserved in RFC 3986: no encoding needed. */
    buf_printf(&b, "%s%s?method=%s&expires=%lld&limit=%lld&signature=%s", STORE_SIGNED_PREFIX, key, method,
               (long long)expires_unix_s, (long long)limit, sig);
    free(sig);
    *out = buf_detach(&b, NULL);
    return 0;
}

int store_sign_get_range(struct store *st, const char *key, int64_t expires_unix_s, int64_t offset, int64_t length,
                         char **out)
{
    struct buf b = BUF_INIT;
    if (!store_blob_key_valid(key) || offset < 0 || length < 0)
        return ERR_INVALID;
    char *sig = sign_b64(st, "GET", key, (long long)expires_unix_s, 0, (long long)offset, (long long)length);
    buf_printf(&b, "%s%s?method=GET&expires=%lld&limit=0&offset=%lld&length=%lld&signature=%s", STORE_SIGNED_PREFIX,
               key, (long long)expires_unix_s, (long long)offset, (long long)length, sig);
    free(sig);
    *out = buf_detach(&b, NULL);
    return 0;
}

/* Strict decimal parse of a non-negative int64. */
static bool parse_i64(const char *s, int64_t *out)
{
    int64_t v = 0;
    if (!s || !*s || strlen(s) > 18)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return true;
}

static int signed_check(struct store *st, const char *method, const char *key, const char *q_method,
                        const char *q_expires, const char *q_limit, const char *q_offset, const char *q_length,
                        const char *q_signature, int64_t *limit_out, int64_t *offset_out, int64_t *length_out)
{
    int64_t expires, limit, off = -1, len = -1;
    const char *m;
    if (!store_blob_key_valid(key))
        return ERR_INVALID;
    if (!method || !q_method || !q_signature || !parse_i64(q_expires, &expires) || !parse_i64(q_limit, &limit))
        return ERR_AUTH;
    if ((q_offset || q_length) && (!parse_i64(q_offset, &off) || !parse_i64(q_length, &len) || limit != 0))
        return ERR_AUTH;
    m = (!strcmp(method, "GET") || !strcmp(method, "HEAD")) ? "GET" : method;
    if (strcmp(m, q_method) != 0 || (off >= 0 && strcmp(q_method, "GET") != 0))
        return ERR_AUTH;
    char *want = sign_b64(st, q_method, key, (long long)expires, (long long)limit, (long long)off, (long long)len);
    size_t n = strlen(want);
    bool ok = strlen(q_signature) == n && ct_equal(want, q_signature, n);
    free(want);
    if (!ok)
        return ERR_AUTH;
    if (expires * 1000 < time_now_ms())
        return ERR_AUTH;
    if (limit_out)
        *limit_out = limit;
    if (offset_out)
        *offset_out = off;
    if (length_out)
        *length_out = len;
    return 0;
}

int store_signed_verify(struct store *st, const char *method, const char *key, const char *q_method,
                        const char *q_expires, const char *q_limit, const char *q_signature, int64_t *limit_out)
{
    return signed_check(st, method, key, q_method, q_expires, q_limit, NULL, NULL, q_signature, limit_out, NULL,
                        NULL);
}

int store_signed_verify_range(struct store *st, const char *method, const char *key, const char *q_method,
                              const char *q_expires, const char *q_limit, const char *q_offset,
                              const char *q_length, const char *q_signature, int64_t *offset_out,
                              int64_t *length_out)
{
    return signed_check(st, method, key, q_method, q_expires, q_limit, q_offset, q_length, q_signature, NULL,
                        offset_out, length_out);
}
