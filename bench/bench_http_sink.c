/*
 * bench_http_sink.c — the floor of tar-shard ingest over HTTP on this
 * machine (bench/ingest_tar.py --sink): a bare libmicrohttpd daemon with
 * the options vbatch's http_server_start uses (internal thread pool of 8,
 * 256 KiB connection buffers) that answers the three calls of the ingest
 * client and does nothing else — no database, no signed URLs, no index:
 *
 *   POST …/batches/B/…  {"signedURLDetails":{"uploadURL":"http://HOST:PORT/put/B"}}
 *   PUT /put/B        the body to a new file in DIR, then synced and renamed
 *                     as vbatch publishes a blob (file sync, rename, folder
 *                     fsync), then {"status":"ok"}
 *   GET …/batches/B/count  {"count": IMAGES × PUTs to B finished}
 *
 *   bench_http_sink PORT DIR MODE [IMAGES]
 *     MODE buffered  write() each piece, sync_file_range every 2 MiB, fsync
 *                    (vbatch's writer before kept mode)
 *          direct    copy into a 1 MiB aligned buffer, O_DIRECT pwrite of
 *                    each full one, the tail buffered, fdatasync (vbatch's
 *                    kept mode without the index)
 *          none      the bytes are dropped: the network and HTTP alone
 *        Other ways to make a body durable before its 200, each written as
 *        direct (what each would cost vbatch beside the speed: in
 *        docs/STORAGE.md, "Ingest throughput", session 8):
 *          direct-nodirsync     no folder fsync after the rename (a crash
 *                               can lose an acknowledged body's name)
 *          direct-renamefirst   the rename before the fdatasync, then the
 *                               folder fsync (a crash before the 200 can
 *                               leave a partial body under its name)
 *          direct-precreated    into files made (and their folder synced)
 *                               at start: fdatasync only, no rename (as
 *                               renamefirst, a partial body under its name)
 *          direct-precreated-log  as precreated, then a 512-byte record
 *                               written and fdatasync'd in a log file
 *                               written at start (the body's "complete"
 *                               mark: a second sync, but no journal commit)
 *     IMAGES         images per shard for the count (default 500)
 *
 * Prints "listening: PORT" and serves until SIGINT/SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEP (1 << 20)
#define KICK (2 << 20)

enum mode { M_BUFFERED, M_DIRECT, M_NONE, M_NODIRSYNC, M_RENAMEFIRST, M_PRECREATED, M_PRECREATED_LOG };
static const char *const mode_names[] = {"buffered", "direct", "none", "direct-nodirsync", "direct-renamefirst",
                                         "direct-precreated", "direct-precreated-log"};

/* direct-precreated: files made at start; direct-precreated-log: its log */
#define PRECREATED 4096
#define LOG_SLOTS 256
static int g_logfd = -1;
static atomic_int g_slot;

static const char *g_dir;
static unsigned g_port;
static enum mode g_mode;
static int g_images = 500;
static atomic_int g_seq;

/* PUTs finished per batch name (at most MAX_BATCHES names) */
#define MAX_BATCHES 256
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[64];
    int done;
} g_batches[MAX_BATCHES];

/* The batch named in url after `after` (up to the next '/'), counted up by
 * add; its count. */
static int batch_count(const char *url, const char *after, int add)
{
    const char *b = strstr(url, after);
    char name[64];
    int n = -1;
    if (!b)
        return 0;
    b += strlen(after);
    snprintf(name, sizeof name, "%.*s", (int)strcspn(b, "/?"), b);
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_BATCHES && n < 0; i++) {
        if (!g_batches[i].name[0])
            snprintf(g_batches[i].name, sizeof g_batches[i].name, "%s", name);
        if (!strcmp(g_batches[i].name, name)) {
            g_batches[i].done += add;
            n = g_batches[i].done;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return n < 0 ? 0 : n;
}

struct put {
    int fd, dfd;
    char tmp[512], dst[512];
    long long size, kicked, flushed;
    unsigned char *buf; /* direct: STEP bytes, aligned */
    size_t fill;
    int failed;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static struct put *put_open(void)
{
    struct put *p = calloc(1, sizeof *p);
    int n = atomic_fetch_add(&g_seq, 1);
    bool pre = g_mode == M_PRECREATED || g_mode == M_PRECREATED_LOG;
    snprintf(p->tmp, sizeof p->tmp, pre ? "%s/s/pre-%d" : "%s/tmp-%d", g_dir, n);
    snprintf(p->dst, sizeof p->dst, "%s/s/%d.tar", g_dir, n);
    p->fd = p->dfd = -1;
    if (g_mode == M_NONE)
        return p;
    if (pre && n >= PRECREATED) { /* more bodies than files made at start */
        p->failed = 1;
        return p;
    }
    p->fd = open(p->tmp, pre ? O_WRONLY | O_CLOEXEC : O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (p->fd < 0)
        p->failed = 1;
    if (g_mode != M_BUFFERED) {
        p->dfd = open(p->tmp, O_WRONLY | O_DIRECT | O_CLOEXEC);
        if (p->dfd < 0 || posix_memalign((void **)&p->buf, 4096, STEP) != 0)
            p->failed = 1;
    }
    return p;
}

static void put_data(struct put *p, const char *data, size_t n)
{
    p->size += (long long)n;
    if (g_mode == M_NONE || p->failed)
        return;
    if (g_mode == M_BUFFERED) {
        if (write(p->fd, data, n) != (ssize_t)n)
            p->failed = 1;
        if (p->size - p->kicked >= KICK) {
            (void)sync_file_range(p->fd, p->kicked, p->size - p->kicked, SYNC_FILE_RANGE_WRITE);
            p->kicked = p->size;
        }
        return;
    }
    while (n > 0) {
        size_t k = STEP - p->fill < n ? STEP - p->fill : n;
        memcpy(p->buf + p->fill, data, k);
        p->fill += k, data += k, n -= k;
        if (p->fill == STEP) {
            if (pwrite(p->dfd, p->buf, STEP, p->flushed) != STEP)
                p->failed = 1;
            p->flushed += STEP;
            p->fill = 0;
        }
    }
}

static int folder_fsync(void)
{
    char sub[600];
    snprintf(sub, sizeof sub, "%s/s", g_dir);
    int d = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = d < 0 || fsync(d) < 0 ? -1 : 0;
    if (d >= 0)
        close(d);
    return rc;
}

/* direct and buffered: sync, rename, folder fsync, as vbatch's
 * local_publish; the other modes as the comment at the top says. */
static int put_finish(struct put *p)
{
    int rc = p->failed ? -1 : 0;
    if (g_mode != M_NONE && rc == 0) {
        if (g_mode != M_BUFFERED && p->fill && pwrite(p->fd, p->buf, p->fill, p->flushed) != (ssize_t)p->fill)
            rc = -1;
        if (rc == 0 && g_mode == M_RENAMEFIRST && rename(p->tmp, p->dst) < 0)
            rc = -1;
        if (rc == 0 && (g_mode == M_BUFFERED ? fsync(p->fd) : fdatasync(p->fd)) < 0)
            rc = -1;
        if (rc == 0 && g_mode == M_PRECREATED_LOG) {
            static _Alignas(4096) char rec[4096]; /* the record's bytes do not matter here */
            int k = atomic_fetch_add(&g_slot, 1) % LOG_SLOTS;
            if (pwrite(g_logfd, rec, 512, (off_t)k * 512) != 512 || fdatasync(g_logfd) < 0)
                rc = -1;
        }
        if (rc == 0 && (g_mode == M_BUFFERED || g_mode == M_DIRECT || g_mode == M_NODIRSYNC) &&
            rename(p->tmp, p->dst) < 0)
            rc = -1;
        if (rc == 0 && (g_mode == M_BUFFERED || g_mode == M_DIRECT || g_mode == M_RENAMEFIRST) &&
            folder_fsync() < 0)
            rc = -1;
    }
    if (p->fd >= 0)
        close(p->fd);
    if (p->dfd >= 0)
        close(p->dfd);
    if (rc < 0 && g_mode != M_PRECREATED && g_mode != M_PRECREATED_LOG)
        unlink(p->tmp);
    free(p->buf);
    free(p);
    return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *data, size_t *size, void **con_cls)
{
    static int plain;
    char body[256];
    (void)cls, (void)version;
    if (!*con_cls) { /* answer on a later call, as vbatch does */
        *con_cls = !strcmp(method, "PUT") ? (void *)put_open() : (void *)&plain;
        return MHD_YES;
    }
    if (!strcmp(method, "PUT")) {
        struct put *p = *con_cls;
        if (*size) {
            put_data(p, data, *size);
            *size = 0;
            return MHD_YES;
        }
        *con_cls = &plain;
        if (put_finish(p) < 0)
            return reply(c, 500, "{\"status\":\"error\"}");
        batch_count(url, "/put/", 1);
        return reply(c, 200, "{\"status\":\"ok\"}");
    }
    if (*size) { /* a body we do not read */
        *size = 0;
        return MHD_YES;
    }
    if (strstr(url, "/count")) {
        snprintf(body, sizeof body, "{\"status\":\"ok\",\"count\":%d}", batch_count(url, "/batches/", 0) * g_images);
        return reply(c, 200, body);
    }
    const char *b = strstr(url, "/batches/");
    b = b ? b + strlen("/batches/") : "none";
    snprintf(body, sizeof body,
             "{\"status\":\"ok\",\"signedURLDetails\":{\"uploadURL\":\"http://127.0.0.1:%u/put/%.*s\"}}", g_port,
             (int)strcspn(b, "/?"), b);
    return reply(c, 200, body);
}

/* The files of direct-precreated (their names synced) and the log of
 * direct-precreated-log (written once: its records overwrite, never
 * extend it). */
static int precreate(const char *sub)
{
    char f[700];
    for (int i = 0; i < PRECREATED; i++) {
        snprintf(f, sizeof f, "%s/pre-%d", sub, i);
        int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return -1;
        close(fd);
    }
    if (g_mode == M_PRECREATED_LOG) {
        static char zero[LOG_SLOTS * 512];
        snprintf(f, sizeof f, "%s/log", sub);
        int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, zero, sizeof zero) != (ssize_t)sizeof zero || fsync(fd) < 0)
            return -1;
        close(fd);
        if ((g_logfd = open(f, O_WRONLY | O_DIRECT | O_CLOEXEC)) < 0)
            return -1;
    }
    return folder_fsync();
}

static void on_signal(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_http_sink PORT DIR MODE [IMAGES] (MODE: see the top of bench_http_sink.c)\n");
        return 2;
    }
    g_port = (unsigned)atoi(argv[1]);
    g_dir = argv[2];
    int m = -1;
    for (int i = 0; i < (int)(sizeof mode_names / sizeof *mode_names); i++)
        if (!strcmp(argv[3], mode_names[i]))
            m = i;
    if (m < 0) {
        fprintf(stderr, "bench_http_sink: unknown mode '%s'\n", argv[3]);
        return 2;
    }
    g_mode = (enum mode)m;
    if (argc > 4)
        g_images = atoi(argv[4]);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/s", g_dir);
    if (mkdir(sub, 0755) < 0 && errno != EEXIST) {
        perror(sub);
        return 1;
    }
    if ((g_mode == M_PRECREATED || g_mode == M_PRECREATED_LOG) && precreate(sub) < 0) {
        perror(sub);
        return 1;
    }
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, (uint16_t)g_port, NULL, NULL, on_access,
                                            NULL, MHD_OPTION_THREAD_POOL_SIZE, 8u,
                                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 512u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "cannot listen on %u\n", g_port);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening: %u\n", g_port);
    fflush(stdout);
    pause();
    MHD_stop_daemon(d);
    return 0;
}
