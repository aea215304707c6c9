/*
 * upload.c — vbatch batch upload DIR|FILE… --batch ID
 *
 * 1. Walk the arguments: images (.jpg .jpeg .png .webp .bmp), sidecars
 *    (.json: per-image metadata, staged next to their image) and videos
 *    (.mp4 .mov .avi .mkv .webm .m4v); folders recursively, dot files
 *    skipped.  A batch holds one file of a name, so two files of the same
 *    base name are refused before anything is sent.
 * 2. Resume: wait until the batch's shards are indexed (a shard whose PUT
 *    was answered before an interruption is still being indexed), list the
 *    batch's files and drop every name the server already holds.
 * 3. Plan: images and sidecars in name order, cut into shards of at most
 *    --shard-size images (500, the API's limit) and --shard-mb megabytes;
 *    each video is a work item of its own.
 * 4. --parallel N threads (default 4), each with its own curl handle, take
 *    work items in order: for a shard a signed URL is asked for (POST
 *    bulk-upload/image-files) and an uncompressed tar PUT to it, made by
 *    libarchive while it is sent (tarstream_*: file chunks in, tar bytes out
 *    to curl's read callback; the Content-Length computed beforehand), or,
 *    when a name is too long for a ustar header, built whole in memory first
 *    (build_tar; the thread's buffer is reused); a video asks POST
 *    upload/video and streams the file from disk.  A failed item is tried
 *    again with a fresh URL (3 tries).  The main thread draws the progress
 *    (bar on a terminal, a line per finished item otherwise).
 * 5. Wait until the server has indexed the new shards (unless --no-wait)
 *    and report what the batch holds and which shards failed.
 *
 * Memory: one 1 MiB read buffer and about as much tar output per thread;
 * a shard with a name of 100 bytes or more is held whole (at most
 * --shard-mb plus headers).
 */
#include "cli/cli.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_int.h"

#define SHARD_MAX_IMAGES 500
#define DEFAULT_SHARD_MB 100
#define MAX_PARALLEL 32
#define MAX_DEPTH 32
#define WORK_TRIES 3
#define READ_CHUNK (1u << 20)

enum kind { K_IMAGE, K_SIDECAR, K_VIDEO };

struct item {
    char *path;       /* owned */
    const char *name; /* the base name, inside path */
    int64_t size;
    enum kind kind;
};

struct work {
    size_t first, n;  /* items[first..first+n) */
    int64_t bytes;    /* file bytes (progress counts these) */
    int images;
    bool video;
};

struct up {
    struct cli *c;
    const char *batch, *display;
    struct item *items;
    size_t nitems;
    struct work *work;
    size_t nwork;
    int64_t total_bytes;
    int64_t max_rate;            /* bytes/s per PUT, 0: unlimited (--max-rate) */
    pthread_mutex_t mu;          /* guards the fields below and stderr lines */
    size_t next;                 /* next work index to take */
    size_t done_works, done_files, failed_works;
    char first_err[ERR_MSG_MAX];
    _Atomic int64_t done_bytes;  /* file bytes of finished work items */
    _Atomic int64_t inflight[MAX_PARALLEL]; /* file bytes sent of the item each thread holds */
    /* what was PUT (owned): with blobs on S3 the signed URLs are the object
     * store's and the server notices each upload later (its arrival
     * poller), so the final wait looks for these by id and by name */
    struct cli_sent sent;
};

struct thread_arg {
    struct up *u;
    int idx;
    pthread_t tid;
};

/* ---- walking ---------------------------------------------------------------------- */

static int kind_of(const char *name, enum kind *k)
{
    static const char *const img[] = {".jpg", ".jpeg", ".png", ".webp", ".bmp"};
    static const char *const vid[] = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"};
    const char *dot = strrchr(name, '.');

    if (!dot)
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(img); i++)
        if (!strcasecmp(dot, img[i]))
            return *k = K_IMAGE, 0;
    for (size_t i = 0; i < ARRAY_LEN(vid); i++)
        if (!strcasecmp(dot, vid[i]))
            return *k = K_VIDEO, 0;
    if (!strcasecmp(dot, ".json") && strcmp(name, "notification_config.json") != 0)
        return *k = K_SIDECAR, 0;
    return -1;
}

struct walk {
    struct item *items;
    size_t n, cap;
    size_t skipped;
};

static void add_item(struct walk *w, const char *path, int64_t size, enum kind k)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->items = xrealloc(w->items, w->cap * sizeof *w->items);
    }
    struct item *it = &w->items[w->n++];
    it->path = xstrdup(path);
    const char *slash = strrchr(it->path, '/');
    it->name = slash ? slash + 1 : it->path;
    it->size = size;
    it->kind = k;
}

static int walk_dir(struct walk *w, const char *dir, int depth)
{
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (depth > MAX_DEPTH) {
        cli__fail("'%s': folders nested deeper than %d levels", dir, MAX_DEPTH);
        return CLI_EXIT_USAGE;
    }
    if (!(d = opendir(dir))) {
        cli__fail("cannot read the folder '%s': %s", dir, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    while (rc == 0 && (de = readdir(d))) {
        struct stat sb;
        enum kind k;
        if (de->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        if (stat(p, &sb) != 0) {
            w->skipped++;
        } else if (S_ISDIR(sb.st_mode)) {
            rc = walk_dir(w, p, depth + 1);
        } else if (S_ISREG(sb.st_mode) && kind_of(de->d_name, &k) == 0) {
            add_item(w, p, sb.st_size, k);
        } else {
            w->skipped++;
        }
        free(p);
    }
    closedir(d);
    return rc;
}

static int walk_args(struct walk *w, const char **paths, int n)
{
    for (int i = 0; i < n; i++) {
        struct stat sb;
        enum kind k;
        if (stat(paths[i], &sb) != 0) {
            cli__fail("cannot read '%s': %s", paths[i], strerror(errno));
            return CLI_EXIT_USAGE;
        }
        if (S_ISDIR(sb.st_mode)) {
            char *d = xstrdup(paths[i]);
            for (size_t l = strlen(d); l > 1 && d[l - 1] == '/'; l--)
                d[l - 1] = 0;
            int rc = walk_dir(w, d, 0);
            free(d);
            if (rc)
                return rc;
            continue;
        }
        const char *base = strrchr(paths[i], '/');
        base = base ? base + 1 : paths[i];
        if (!S_ISREG(sb.st_mode) || kind_of(base, &k) != 0) {
            cli__fail("'%s' is not an image (.jpg .jpeg .png .webp .bmp), a .json sidecar or a video"
                      " (.mp4 .mov .avi .mkv .webm .m4v)",
                      paths[i]);
            return CLI_EXIT_USAGE;
        }
        add_item(w, paths[i], sb.st_size, k);
    }
    return 0;
}

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r ? r : strcmp(x->path, y->path);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- what the server holds ----------------------------------------------------------- */

static bool sent_has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

int cli__wait_indexed(struct cli *c, const char *batch, long timeout_s, const struct cli_sent *sent, long *failed,
                      struct err *e)
{
    char *path = cli__ds_path(c, batch, "/shards");
    int64_t t0 = time_mono_ms();
    int rc = 0;
    bool said = false, graced = false;

    for (;;) {
        long pending = 0, bad = 0, status = 0, awaiting = 0;
        char *token = NULL;
        long pages = 0;
        do {
            json_t *j = NULL;
            const char *q[] = {"pageSize", "1000", "nextPageToken", token, NULL};
            rc = cli__call(c, "GET", path, q, NULL, 0, &j, &status, e);
            free(token);
            token = NULL;
            if (rc) {
                if (status == 404) { /* no such batch yet: nothing to wait for */
                    err_clear(e);
                    rc = 0;
                }
                break;
            }
            size_t i;
            json_t *s;
            json_array_foreach(json_object_get(j, "shards"), i, s)
            {
                const char *name = cli__str(s, "statusName", ""), *type = cli__str(s, "statusType", "");
                if (!strcmp(name, "uploaded") || !strcmp(name, "queued") || !strcmp(name, "waiting-for-storage"))
                    pending++;
                else if (!strcmp(name, "awaiting-upload")) {
                    awaiting++;
                    if (sent && sent_has(sent->shards, sent->nshards, cli__str(s, "shardId", "")))
                        pending++;
                }
                if (strstr(type, "error"))
                    bad++;
            }
            const char *t = cli__str(j, "nextPageToken", NULL);
            token = t ? xstrdup(t) : NULL;
            json_decref(j);
        } while (token && ++pages < CLI_MAX_PAGES);
        if (token) {
            free(token);
            rc = cli__too_many_pages(path, e);
        }
        if (!rc && pending == 0 && !sent && awaiting && !graced) {
            graced = true;
            usleep(CLI_ARRIVAL_GRACE_MS * 1000);
            continue;
        }
        if (rc || pending == 0) {
            if (failed)
                *failed = bad;
            break;
        }
        if (timeout_s && time_mono_ms() - t0 > timeout_s * 1000) {
            rc = err_set(e, CLI_EXIT_FAIL, "%ld shard(s) of batch '%s' still being indexed after %ld s", pending,
                         batch, timeout_s);
            rc = CLI_EXIT_FAIL;
            break;
        }
        if (!said && !c->tty)
            fprintf(stderr, "waiting for the server to index %ld shard(s) of batch '%s'\n", pending, batch);
        said = true;
        char tail[64];
        snprintf(tail, sizeof tail, "%ld shard(s) being indexed", pending);
        cli__bar(c, "index ", 0, 0, tail);
        usleep(300 * 1000);
    }
    if (said)
        cli__bar_end(c);
    free(path);
    return rc;
}

/* Every file name the batch holds (sorted, owned), or CLI_EXIT_FAIL. */
static int list_names(struct cli *c, const char *batch, char ***out, size_t *nout, struct err *e)
{
    char *path = cli__ds_path(c, batch, "/list");
    char **names = NULL, *token = NULL;
    size_t n = 0, cap = 0;
    long pages = 0;
    int rc = 0;

    do {
        json_t *j = NULL;
        long status = 0;
        const char *q[] = {"pageSize", "1000", "nextPageToken", token, NULL};
        rc = cli__call(c, "GET", path, q, NULL, 0, &j, &status, e);
        free(token);
        token = NULL;
        if (rc) {
            if (status == 404) {
                err_clear(e);
                rc = 0;
            }
            break;
        }
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(j, "filesMetadata"), i, f)
        {
            const char *name = cli__str(f, "fileName", NULL);
            if (!name)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                names = xrealloc(names, cap * sizeof *names);
            }
            names[n++] = xstrdup(name);
        }
        const char *t = cli__str(j, "nextPageToken", NULL);
        token = t ? xstrdup(t) : NULL;
        json_decref(j);
    } while (token && ++pages < CLI_MAX_PAGES);
    if (token) {
        free(token);
        rc = cli__too_many_pages(path, e);
    }
    free(path);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return rc;
    }
    if (n)
        qsort(names, n, sizeof *names, str_cmp);
    *out = names;
    *nout = n;
    return 0;
}

/* Wait until every video of sent is an item of batch (timeout_s 0:
 * forever).  A video PUT to vbatch is its item when the PUT is answered;
 * one PUT to the object store (blobs on S3) becomes one when the arrival
 * poller has copied and probed it.  A video the server refuses there (not
 * a readable container) never appears: the wait ends at the timeout and
 * the final count says it was not staged. */
static int wait_videos(struct cli *c, const char *batch, long timeout_s, const struct cli_sent *sent, struct err *e)
{
    int64_t t0 = time_mono_ms();
    bool said = false;

    while (sent->nvideos) {
        char **have = NULL;
        size_t nhave = 0, missing = 0;
        int rc = list_names(c, batch, &have, &nhave, e);
        if (rc)
            return rc;
        for (size_t i = 0; i < sent->nvideos; i++) {
            const char *nm = sent->videos[i];
            if (!nhave || !bsearch(&nm, have, nhave, sizeof *have, str_cmp))
                missing++;
        }
        for (size_t i = 0; i < nhave; i++)
            free(have[i]);
        free(have);
        if (!missing || (timeout_s && time_mono_ms() - t0 > timeout_s * 1000))
            break;
        if (!said && !c->tty)
            fprintf(stderr, "waiting for the server to take %zu video(s) of batch '%s'\n", missing, batch);
        said = true;
        usleep(300 * 1000);
    }
    return 0;
}

/* ---- one work item --------------------------------------------------------------------- */

static la_ssize_t tar_write_cb(struct archive *a, void *ud, const void *p, size_t n)
{
    struct buf *b = ud;

    (void)a;
    return buf_append(b, p, n) == 0 ? (la_ssize_t)n : -1;
}

/* Build the tar of w's items into b (reset first). */
static int build_tar(struct up *u, const struct work *w, struct buf *b, char *chunk, struct err *e)
{
    struct archive *a = archive_write_new();
    struct archive_entry *ent = archive_entry_new();
    int rc = 0;

    buf_reset(b);
    if (!a || !ent || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open(a, b, NULL, tar_write_cb, NULL) != ARCHIVE_OK) {
        rc = err_set(e, CLI_EXIT_FAIL, "cannot start a tar archive: %s", a ? archive_error_string(a) : "no memory");
        goto out;
    }
    for (size_t i = w->first; i < w->first + w->n && rc == 0; i++) {
        const struct item *it = &u->items[i];
        struct stat sb;
        int fd = open(it->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &sb) != 0) {
            rc = err_set(e, CLI_EXIT_FAIL, "cannot read '%s': %s", it->path, strerror(errno));
            if (fd >= 0)
                close(fd);
            break;
        }
        archive_entry_clear(ent);
        archive_entry_set_pathname(ent, it->name);
        archive_entry_set_filetype(ent, AE_IFREG);
        archive_entry_set_perm(ent, 0644);
        archive_entry_set_size(ent, sb.st_size);
        archive_entry_set_mtime(ent, sb.st_mtime, 0);
        if (archive_write_header(a, ent) != ARCHIVE_OK) {
            rc = err_set(e, CLI_EXIT_FAIL, "cannot add '%s' to a tar: %s", it->path, archive_error_string(a));
            close(fd);
            break;
        }
        int64_t left = sb.st_size;
        while (left > 0) {
            ssize_t r = read(fd, chunk, (size_t)MIN(left, (int64_t)READ_CHUNK));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                rc = err_set(e, CLI_EXIT_FAIL, "cannot read '%s': %s", it->path,
                             r < 0 ? strerror(errno) : "the file got shorter while it was read");
                break;
            }
            if (archive_write_data(a, chunk, (size_t)r) != r) {
                rc = err_set(e, CLI_EXIT_FAIL, "cannot add '%s' to a tar: %s", it->path, archive_error_string(a));
                break;
            }
            left -= r;
        }
        close(fd);
    }
    if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
        rc = err_set(e, CLI_EXIT_FAIL, "cannot finish a tar: %s", archive_error_string(a));
out:
    archive_entry_free(ent);
    if (a)
        archive_write_free(a);
    return rc;
}

static size_t resp_cb(char *p, size_t sz, size_t n, void *ud)
{
    struct buf *b = ud;

    buf_append(b, p, sz * n); /* past the cap the rest is dropped: only the error text matters */
    return sz * n;
}

struct xfer {
    _Atomic int64_t *sent;
    int64_t scale_num, scale_den; /* tar bytes → file bytes */
};

static int xfer_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = ud;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    if (x->scale_den > 0)
        atomic_store(x->sent, (int64_t)((double)ulnow * (double)x->scale_num / (double)x->scale_den));
    return 0;
}

/* What a PUT sends: bytes in memory, a file, or a read callback; size is
 * the Content-Length (for the last two). */
struct body {
    const char *data;
    size_t len;
    FILE *f;
    curl_read_callback read;
    void *read_ud;
    int64_t size;
};

/* PUT to a signed URL. */
static int put_signed(CURL *h, json_t *details, const struct body *bd, int64_t max_rate, struct xfer *x,
                      long *status, struct err *e)
{
    const char *url = cli__str(details, "uploadURL", NULL);
    struct curl_slist *hdrs = NULL;
    const char *k;
    json_t *v;
    struct buf resp;
    long code = 0;
    int rc = 0;

    if (!url)
        return err_set(e, CLI_EXIT_FAIL, "the server's answer has no signedURLDetails.uploadURL");
    json_object_foreach(json_object_get(details, "extensionHeaders"), k, v)
    {
        if (json_is_string(v)) {
            char *hl = xasprintf("%s: %s", k, json_string_value(v));
            hdrs = curl_slist_append(hdrs, hl);
            free(hl);
        }
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    buf_init(&resp, 1 << 20);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vbatch-cli/1");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    /* a stalled transfer (under 1 kB/s for 60 s) is given up, not waited for */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    if (max_rate > 0)
        curl_easy_setopt(h, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)max_rate);
    if (bd->f || bd->read) {
        if (bd->read)
            curl_easy_setopt(h, CURLOPT_READFUNCTION, bd->read);
        curl_easy_setopt(h, CURLOPT_READDATA, bd->read ? bd->read_ud : (void *)bd->f);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)bd->size);
    } else {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 0L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, bd->data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bd->len);
    }
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, resp_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        rc = err_set(e, CLI_EXIT_FAIL, "PUT to the signed URL: %s", curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    *status = code;
    if (code < 200 || code >= 300) {
        char msg[300];
        cli__error_text(resp.data ? resp.data : "", resp.len, msg, sizeof msg);
        rc = err_set(e, CLI_EXIT_FAIL, "PUT to the signed URL: %ld %s", code, msg);
    }
out:
    buf_release(&resp);
    curl_slist_free_all(hdrs);
    return rc;
}

/* ---- streamed shards ----------------------------------------------------------------------
 * libarchive writes the ustar archive unbuffered (bytes_per_block 0) into a
 * small pending buffer from curl's read callback, one file chunk at a time,
 * so reading the files overlaps sending them and a shard costs one 1 MiB
 * chunk of memory whatever its size.  The Content-Length is known before:
 * a ustar member is a 512-byte header and its data padded to 512 bytes, the
 * archive ends with two zero blocks.  Names of 100 bytes and more need a
 * pax header (their shards are built in memory by build_tar instead). */
#define USTAR_NAME_MAX 99

static int64_t stream_size(const struct up *u, const struct work *w)
{
    int64_t n = 1024;

    for (size_t i = w->first; i < w->first + w->n; i++) {
        const struct item *it = &u->items[i];
        if (strlen(it->name) > USTAR_NAME_MAX)
            return -1;
        n += 512 + (it->size + 511) / 512 * 512;
    }
    return n;
}

struct tarstream {
    struct up *u;
    const struct work *w;
    struct archive *a;
    struct archive_entry *ent;
    size_t next;     /* next item to add */
    int fd;          /* the file being added, -1 between files */
    int64_t left;    /* its bytes still to add */
    struct buf out;  /* produced, not yet handed to curl */
    size_t off;      /* handed-over bytes of out */
    int64_t total, sent;
    bool closed, failed;
    char *chunk;     /* borrowed READ_CHUNK bytes */
    char msg[ERR_MSG_MAX];
};

static la_ssize_t stream_write_cb(struct archive *a, void *ud, const void *p, size_t n)
{
    struct tarstream *ts = ud;

    (void)a;
    return buf_append(&ts->out, p, n) == 0 ? (la_ssize_t)n : -1;
}

static void tarstream_fail(struct tarstream *ts, const char *fmt, const char *what, const char *why)
{
    if (!ts->failed)
        snprintf(ts->msg, sizeof ts->msg, fmt, what, why);
    ts->failed = true;
}

static void tarstream_init(struct tarstream *ts, struct up *u, const struct work *w, int64_t total, char *chunk)
{
    memset(ts, 0, sizeof *ts);
    ts->u = u;
    ts->w = w;
    ts->next = w->first;
    ts->fd = -1;
    ts->total = total;
    ts->chunk = chunk;
    buf_init(&ts->out, 0);
    ts->a = archive_write_new();
    ts->ent = archive_entry_new();
    if (!ts->a || !ts->ent || archive_write_set_format_ustar(ts->a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(ts->a, 0) != ARCHIVE_OK ||
        archive_write_open(ts->a, ts, NULL, stream_write_cb, NULL) != ARCHIVE_OK)
        tarstream_fail(ts, "cannot start a tar archive%s%s", "", "");
}

static void tarstream_release(struct tarstream *ts)
{
    if (ts->fd >= 0)
        close(ts->fd);
    archive_entry_free(ts->ent);
    if (ts->a)
        archive_write_free(ts->a);
    buf_release(&ts->out);
}

/* Add the next piece (a header, a chunk of a file, or the end) to out. */
static void tarstream_produce(struct tarstream *ts)
{
    if (ts->fd < 0) {
        if (ts->next == ts->w->first + ts->w->n) {
            if (archive_write_close(ts->a) != ARCHIVE_OK)
                tarstream_fail(ts, "cannot finish a tar%s: %s", "", archive_error_string(ts->a));
            ts->closed = true;
            return;
        }
        const struct item *it = &ts->u->items[ts->next++];
        struct stat sb;
        ts->fd = open(it->path, O_RDONLY | O_CLOEXEC);
        if (ts->fd < 0 || fstat(ts->fd, &sb) != 0) {
            tarstream_fail(ts, "cannot read '%s': %s", it->path, strerror(errno));
            return;
        }
        if (sb.st_size != it->size) {
            tarstream_fail(ts, "'%s' %s", it->path, "changed size during the upload");
            return;
        }
        archive_entry_clear(ts->ent);
        archive_entry_set_pathname(ts->ent, it->name);
        archive_entry_set_filetype(ts->ent, AE_IFREG);
        archive_entry_set_perm(ts->ent, 0644);
        archive_entry_set_size(ts->ent, sb.st_size);
        archive_entry_set_mtime(ts->ent, sb.st_mtime, 0);
        if (archive_write_header(ts->a, ts->ent) != ARCHIVE_OK) {
            tarstream_fail(ts, "cannot add '%s' to a tar: %s", it->path, archive_error_string(ts->a));
            return;
        }
        ts->left = sb.st_size;
    }
    if (ts->left > 0) {
        ssize_t r = read(ts->fd, ts->chunk, (size_t)MIN(ts->left, (int64_t)READ_CHUNK));
        if (r < 0 && errno == EINTR)
            return;
        if (r <= 0) {
            tarstream_fail(ts, "cannot read '%s': %s", ts->u->items[ts->next - 1].path,
                           r < 0 ? strerror(errno) : "the file got shorter while it was read");
            return;
        }
        if (archive_write_data(ts->a, ts->chunk, (size_t)r) != r) {
            tarstream_fail(ts, "cannot add '%s' to a tar: %s", ts->u->items[ts->next - 1].path,
                           archive_error_string(ts->a));
            return;
        }
        ts->left -= r;
    }
    if (ts->left == 0) {
        close(ts->fd);
        ts->fd = -1;
    }
}

static size_t tarstream_read(char *dst, size_t size, size_t nitems, void *ud)
{
    struct tarstream *ts = ud;
    size_t want = size * nitems;

    while (ts->off == ts->out.len && !ts->closed && !ts->failed) {
        buf_reset(&ts->out);
        ts->off = 0;
        tarstream_produce(ts);
    }
    if (ts->failed)
        return CURL_READFUNC_ABORT;
    size_t n = MIN(want, ts->out.len - ts->off);
    if (ts->sent + (int64_t)n > ts->total || (n == 0 && ts->sent != ts->total)) {
        tarstream_fail(ts, "the tar of a shard came out at another size than announced%s%s", "", "");
        return CURL_READFUNC_ABORT;
    }
    memcpy(dst, ts->out.data + ts->off, n);
    ts->off += n;
    ts->sent += (int64_t)n;
    return n;
}

static void sent_add(struct up *u, char ***v, size_t *n, const char *s)
{
    pthread_mutex_lock(&u->mu);
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
    pthread_mutex_unlock(&u->mu);
}

void cli__sent_release(struct cli_sent *s)
{
    for (size_t i = 0; i < s->nshards; i++)
        free(s->shards[i]);
    for (size_t i = 0; i < s->nvideos; i++)
        free(s->videos[i]);
    free(s->shards);
    free(s->videos);
    memset(s, 0, sizeof *s);
}

/* One try of work item w on handle h. */
static int do_work(struct up *u, CURL *h, const struct work *w, struct buf *tar, char *chunk, struct xfer *x,
                   bool *permanent, struct err *e)
{
    json_t *j = NULL;
    FILE *f = NULL;
    long status = 0;
    int rc;

    atomic_store(x->sent, 0);
    if (w->video) {
        const struct item *it = &u->items[w->first];
        char *path = cli__ds_path(u->c, u->batch, "/upload/video");
        const char *q[] = {"fileName", it->name, "displayName", u->display, NULL};
        rc = cli__call_on(h, u->c, "POST", path, q, NULL, 0, &j, NULL, e);
        free(path);
        if (rc)
            goto out;
        if (!(f = fopen(it->path, "rb"))) {
            rc = err_set(e, CLI_EXIT_FAIL, "cannot read '%s': %s", it->path, strerror(errno));
            goto out;
        }
        x->scale_num = x->scale_den = 1;
        struct body bd = {.f = f, .size = it->size};
        json_int_t max = json_integer_value(json_object_get(json_object_get(j, "signedURLDetails"), "maxFileSize"));
        if (max > 0 && it->size > max) {
            *permanent = true;
            rc = err_set(e, CLI_EXIT_FAIL, "%lld bytes, over the server's video limit of %lld bytes",
                         (long long)it->size, (long long)max);
        } else {
            rc = put_signed(h, json_object_get(j, "signedURLDetails"), &bd, u->max_rate, x, &status, e);
        }
        if (rc)
            err_prefix(e, rc, "'%s'", it->name);
        else
            sent_add(u, &u->sent.videos, &u->sent.nvideos, it->name);
        goto out;
    }
    /* a shard whose names all fit a ustar header is streamed: its tar is
     * made while it is sent, never held whole */
    int64_t ssize = stream_size(u, w);
    if (ssize < 0 && (rc = build_tar(u, w, tar, chunk, e)) != 0)
        goto out;
    char *path = cli__ds_path(u->c, u->batch, "/bulk-upload/image-files");
    int64_t tsize = ssize >= 0 ? ssize : (int64_t)tar->len;
    /* the size is declared: on S3 it is signed into the URL, and the store
     * refuses any other (a server over its limit answers 413 here) */
    char slen[24];
    snprintf(slen, sizeof slen, "%lld", (long long)tsize);
    const char *q[] = {"displayName", u->display, "contentLength", slen, NULL};
    long ustatus = 0;
    rc = cli__call_on(h, u->c, "POST", path, q, NULL, 0, &j, &ustatus, e);
    free(path);
    if (rc && ustatus == 413) { /* the same tar would be refused again */
        *permanent = true;
        err_prefix(e, rc, "its tar of %lld bytes is over the server's shard limit (use a smaller --shard-mb or"
                          " --shard-size)", (long long)tsize);
    }
    if (rc)
        goto out;
    x->scale_num = w->bytes;
    json_int_t max = json_integer_value(json_object_get(json_object_get(j, "signedURLDetails"), "maxShardSize"));
    if (max > 0 && tsize > max) {
        *permanent = true;
        rc = err_set(e, CLI_EXIT_FAIL, "its tar of %lld bytes is over the server's shard limit of %lld bytes"
                     " (use a smaller --shard-mb or --shard-size)", (long long)tsize, (long long)max);
    } else if (ssize >= 0) {
        struct tarstream ts;
        tarstream_init(&ts, u, w, ssize, chunk);
        struct body bd = {.read = tarstream_read, .read_ud = &ts, .size = ssize};
        x->scale_den = ssize;
        rc = put_signed(h, json_object_get(j, "signedURLDetails"), &bd, u->max_rate, x, &status, e);
        if (ts.failed)
            rc = err_set(e, CLI_EXIT_FAIL, "%s", ts.msg);
        tarstream_release(&ts);
    } else {
        struct body bd = {.data = tar->data, .len = tar->len};
        x->scale_den = (int64_t)tar->len;
        rc = put_signed(h, json_object_get(j, "signedURLDetails"), &bd, u->max_rate, x, &status, e);
    }
    if (rc == 0) {
        const char *sid = cli__str(json_object_get(j, "signedURLDetails"), "shardId", NULL);
        if (sid)
            sent_add(u, &u->sent.shards, &u->sent.nshards, sid);
    }
out:
    /* the same bytes would be refused again: 400 (bad content), 413 (too
     * large); other failures get a fresh URL and another try */
    if (status == 400 || status == 413)
        *permanent = true;
    if (f)
        fclose(f);
    json_decref(j);
    return rc;
}

static void *worker(void *arg)
{
    struct thread_arg *ta = arg;
    struct up *u = ta->u;
    CURL *h = cli__handle(u->c);
    struct buf tar = BUF_INIT;
    char *chunk = xmalloc(READ_CHUNK);
    struct xfer x = {&u->inflight[ta->idx], 1, 1};

    for (;;) {
        pthread_mutex_lock(&u->mu);
        size_t wi = u->next < u->nwork ? u->next++ : SIZE_MAX;
        pthread_mutex_unlock(&u->mu);
        if (wi == SIZE_MAX)
            break;
        const struct work *w = &u->work[wi];
        struct err e = ERR_INIT;
        int rc = 0;
        bool permanent = false;
        for (int t = 0; t < WORK_TRIES && !permanent; t++) {
            if (t)
                sleep(1);
            err_clear(&e);
            if ((rc = do_work(u, h, w, &tar, chunk, &x, &permanent, &e)) == 0)
                break;
        }
        atomic_store(x.sent, 0);
        pthread_mutex_lock(&u->mu);
        if (rc == 0) {
            atomic_fetch_add(&u->done_bytes, w->bytes);
            u->done_works++;
            u->done_files += w->n;
            if (!u->c->tty) {
                char hb[32];
                cli__human_bytes((double)w->bytes, hb);
                if (w->video)
                    fprintf(stderr, "uploaded video %s (%s) [%zu/%zu]\n", u->items[w->first].name, hb,
                            u->done_works + u->failed_works, u->nwork);
                else
                    fprintf(stderr, "uploaded shard of %zu file(s) (%s) [%zu/%zu]\n", w->n, hb,
                            u->done_works + u->failed_works, u->nwork);
            }
        } else {
            u->failed_works++;
            if (!u->first_err[0])
                snprintf(u->first_err, sizeof u->first_err, "%s", e.msg);
            if (u->c->tty)
                fputc('\n', stderr);
            fprintf(stderr, "vbatch: %s %s failed: %s\n", w->video ? "video" : "shard starting at",
                    u->items[w->first].name, e.msg);
        }
        pthread_mutex_unlock(&u->mu);
    }
    free(chunk);
    buf_release(&tar);
    curl_easy_cleanup(h);
    return NULL;
}

static void free_items(struct item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i].path);
    free(items);
}

int cli__batch_upload(struct cli *c, int argc, char **argv)
{
    const char *batch = NULL, *display = NULL;
    long parallel = 4, shard_size = SHARD_MAX_IMAGES, shard_mb = DEFAULT_SHARD_MB, wait_s = 600, max_rate = 0;
    bool no_wait = false;
    const struct cli_opt opts[] = {
        {"batch", CLI_OPT_STR, &batch},          {"name", CLI_OPT_STR, &display},
        {"parallel", CLI_OPT_INT, &parallel},    {"shard-size", CLI_OPT_INT, &shard_size},
        {"shard-mb", CLI_OPT_INT, &shard_mb},    {"no-wait", CLI_OPT_FLAG, &no_wait},
        {"wait-timeout", CLI_OPT_INT, &wait_s},  {"max-rate", CLI_OPT_INT, &max_rate},
    };
    const char **pos = xcalloc((size_t)argc + 1, sizeof *pos);
    struct walk wk = {0};
    struct up u = {0};
    char **have = NULL;
    size_t nhave = 0;
    struct err e = ERR_INIT;
    struct thread_arg *ta = NULL;
    int npos = 0, rc;

    rc = cli__parse(c, argc, argv, opts, ARRAY_LEN(opts), pos, argc, &npos);
    if (rc)
        goto out;
    rc = CLI_EXIT_USAGE;
    if (!batch || !npos) {
        cli__fail("usage: vbatch batch upload DIR|FILE... --batch ID [--name NAME] [--parallel N]"
                  " [--shard-size N] [--shard-mb MB] [--max-rate BYTES_PER_S] [--no-wait] [--wait-timeout S]");
        goto out;
    }
    if (!id_valid(batch, 64)) {
        cli__fail("bad batch id '%s' (1 to 64 lower-case letters, digits, '-' and '_')", batch);
        goto out;
    }
    if (parallel < 1 || parallel > MAX_PARALLEL || shard_size < 1 || shard_size > SHARD_MAX_IMAGES || shard_mb < 1 ||
        shard_mb > 4096) {
        cli__fail("--parallel is 1 to %d, --shard-size 1 to %d, --shard-mb 1 to 4096", MAX_PARALLEL,
                  SHARD_MAX_IMAGES);
        goto out;
    }
    if ((rc = walk_args(&wk, pos, npos)) != 0)
        goto out;
    if (wk.n == 0) {
        cli__fail("no image, sidecar or video found in the given paths");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    qsort(wk.items, wk.n, sizeof *wk.items, item_cmp);
    for (size_t i = 1; i < wk.n; i++) {
        if (!strcmp(wk.items[i - 1].name, wk.items[i].name)) {
            cli__fail("two files named '%s' ('%s' and '%s'): a batch holds one file of a name", wk.items[i].name,
                      wk.items[i - 1].path, wk.items[i].path);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if ((rc = cli__connect(c)) != 0)
        goto out;

    /* resume: what the batch already holds */
    if ((rc = cli__wait_indexed(c, batch, wait_s, NULL, NULL, &e)) != 0 ||
        (rc = list_names(c, batch, &have, &nhave, &e)) != 0) {
        cli__fail("%s", e.msg);
        goto out;
    }
    size_t keep = 0, skipped_have = 0;
    for (size_t i = 0; i < wk.n; i++) {
        const char *nm = wk.items[i].name;
        if (nhave && bsearch(&nm, have, nhave, sizeof *have, str_cmp)) {
            free(wk.items[i].path);
            skipped_have++;
            continue;
        }
        wk.items[keep++] = wk.items[i];
    }
    wk.n = keep;

    /* plan: images and sidecars first (a shard never starts with a sidecar
     * whose image is in the previous one, unless that shard was full),
     * then videos */
    u.c = c;
    u.batch = batch;
    u.display = display ? display : batch;
    u.max_rate = max_rate;
    u.items = xcalloc(wk.n ? wk.n : 1, sizeof *u.items);
    u.work = xcalloc(wk.n ? wk.n : 1, sizeof *u.work);
    size_t ni = 0, nvid = 0, nimg = 0, nside = 0;
    for (size_t i = 0; i < wk.n; i++)
        if (wk.items[i].kind != K_VIDEO)
            u.items[ni++] = wk.items[i];
    size_t nstill = ni;
    for (size_t i = 0; i < wk.n; i++)
        if (wk.items[i].kind == K_VIDEO)
            u.items[ni++] = wk.items[i];
    u.nitems = ni;
    int64_t cap_bytes = (int64_t)shard_mb << 20;
    struct work *cur = NULL;
    for (size_t i = 0; i < nstill; i++) {
        const struct item *it = &u.items[i];
        bool img = it->kind == K_IMAGE;
        if (!cur || (img && cur->images >= shard_size) || (cur->n && cur->bytes + it->size > cap_bytes)) {
            cur = &u.work[u.nwork++];
            cur->first = i;
        }
        cur->n++;
        cur->bytes += it->size;
        cur->images += img;
        nimg += img;
        nside += !img;
    }
    for (size_t i = nstill; i < u.nitems; i++) {
        struct work *w = &u.work[u.nwork++];
        w->first = i;
        w->n = 1;
        w->bytes = u.items[i].size;
        w->video = true;
        nvid++;
    }
    for (size_t i = 0; i < u.nwork; i++)
        u.total_bytes += u.work[i].bytes;
    free(wk.items);
    wk.items = NULL;
    wk.n = 0;

    char hb[32];
    cli__human_bytes((double)u.total_bytes, hb);
    fprintf(stderr, "batch '%s': %zu image(s), %zu sidecar(s), %zu video(s) to upload (%s)", batch, nimg, nside,
            nvid, hb);
    if (skipped_have)
        fprintf(stderr, "; %zu already on the server, skipped", skipped_have);
    if (wk.skipped)
        fprintf(stderr, "; %zu other file(s) ignored", wk.skipped);
    fprintf(stderr, "\n");

    if (u.nwork) {
        int nthreads = (int)MIN((size_t)parallel, u.nwork);
        int started = 0;
        int64_t t0 = time_mono_ms();
        pthread_mutex_init(&u.mu, NULL);
        ta = xcalloc((size_t)nthreads, sizeof *ta);
        for (int i = 0; i < nthreads; i++) {
            ta[i].u = &u;
            ta[i].idx = i;
            if (pthread_create(&ta[i].tid, NULL, worker, &ta[i]) != 0)
                break;
            started++;
        }
        for (;;) {
            pthread_mutex_lock(&u.mu);
            bool finished = u.done_works + u.failed_works == u.nwork || started == 0;
            size_t files = u.done_files;
            if (c->tty && !finished) {
                int64_t sent = atomic_load(&u.done_bytes);
                for (int i = 0; i < nthreads; i++)
                    sent += atomic_load(&u.inflight[i]);
                double secs = (double)(time_mono_ms() - t0) / 1000.0;
                char a[32], b[32], tail[128];
                cli__human_bytes((double)sent, a);
                cli__human_bytes(secs > 0 ? (double)sent / secs : 0, b);
                snprintf(tail, sizeof tail, "%zu/%zu files  %s  %s/s", files, u.nitems, a, b);
                cli__bar(c, "upload", (double)sent, (double)u.total_bytes, tail);
            }
            pthread_mutex_unlock(&u.mu);
            if (finished)
                break;
            usleep(200 * 1000);
        }
        for (int i = 0; i < started; i++)
            pthread_join(ta[i].tid, NULL);
        pthread_mutex_destroy(&u.mu);
        double secs = (double)(time_mono_ms() - t0) / 1000.0;
        char a[32], b[32], tail[128];
        cli__human_bytes((double)atomic_load(&u.done_bytes), a);
        cli__human_bytes(secs > 0 ? (double)atomic_load(&u.done_bytes) / secs : 0, b);
        snprintf(tail, sizeof tail, "%zu/%zu files  %s  %s/s", u.done_files, u.nitems, a, b);
        cli__bar(c, "upload", (double)atomic_load(&u.done_bytes), (double)(u.total_bytes ? u.total_bytes : 1), tail);
        cli__bar_end(c);
        fprintf(stderr, "uploaded %zu file(s), %s in %.1f s (%s/s)\n", u.done_files, a, secs, b);
        if (started == 0 || u.failed_works) {
            cli__fail("%zu of %zu upload(s) failed (the first: %s); once fixed, the same command uploads only what is missing",
                      started ? u.failed_works : u.nwork, u.nwork, started ? u.first_err : "cannot start a thread");
            rc = CLI_EXIT_FAIL;
            goto out;
        }
    }
    if (!no_wait) {
        long failed = 0;
        if ((rc = cli__wait_indexed(c, batch, wait_s, &u.sent, &failed, &e)) != 0 ||
            (rc = wait_videos(c, batch, wait_s, &u.sent, &e)) != 0) {
            cli__fail("%s", e.msg);
            goto out;
        }
        char *path = cli__ds_path(c, batch, "/count");
        json_t *j = NULL;
        rc = cli__call(c, "GET", path, NULL, NULL, 0, &j, NULL, &e);
        free(path);
        if (rc) {
            cli__fail("%s", e.msg);
            goto out;
        }
        long long staged = json_integer_value(json_object_get(j, "count"));
        long long want = (long long)(skipped_have + u.done_files);
        printf("batch %s: %lld file(s) staged\n", batch, staged);
        json_decref(j);
        if (staged < want)
            fprintf(stderr, "vbatch: %lld of the files sent were not staged (rejected by the server:"
                            " 'vbatch batch show %s' says why)\n", want - staged, batch);
        if (failed)
            fprintf(stderr, "vbatch: %ld shard(s) of batch '%s' failed: 'vbatch batch show %s' says why\n", failed,
                    batch, batch);
    }
    rc = 0;
out:
    free(ta);
    for (size_t i = 0; i < nhave; i++)
        free(have[i]);
    free(have);
    free_items(wk.items, wk.n);
    free_items(u.items, u.nitems);
    cli__sent_release(&u.sent);
    free(u.work);
    free(pos);
    return rc;
}
