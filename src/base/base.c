/*
 * base.c — errors, allocation, buffers, strings and files.
 *
 * xmalloc-family calls abort on failure: they are for bookkeeping sizes
 * we control.  Sizes from outside go through try_alloc(), which checks for
 * overflow and can be made to fail on purpose by tests (try_alloc_fail_at),
 * the way SQLite's fault-injection tests do.
 */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *err_str(int err)
{
    switch (err) {
    case 0: return "success";
    case ERR_PARSE: return "malformed input";
    case ERR_LIMIT: return "limit exceeded";
    case ERR_AGAIN: return "need more data";
    case ERR_NOTFOUND: return "not found";
    case ERR_EXISTS: return "already exists";
    case ERR_INVALID: return "invalid input";
    case ERR_NOMEM: return "out of memory";
    case ERR_INTERNAL: return "internal error";
    case ERR_UNSUPPORTED: return "unsupported";
    case ERR_AUTH: return "unauthorized";
    case ERR_NOSPACE: return "storage full";
    case ERR_UNAVAILABLE: return "service unavailable";
    case ERR_QUOTA: return "quota reached";
    }
    if (err_is_nospace(err))
        return "storage full";
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

int err_errno(int errnum)
{
    if (errnum == ENOSPC || errnum == EDQUOT)
        return ERR_NOSPACE;
    return errnum > 0 ? -errnum : ERR_INTERNAL;
}

bool err_is_nospace(int err)
{
    return err == ERR_NOSPACE || err == -ENOSPC || err == -EDQUOT;
}

/* A message cut at the end of e->msg may end inside a UTF-8 character:
 * drop that character's bytes so that the text stays valid UTF-8 (the
 * messages go into JSON answers and logs). */
static void err_cut_utf8(struct err *e)
{
    size_t len = strlen(e->msg), start = len;
    /* back over at most 3 continuation bytes to the last lead byte */
    while (start > 0 && len - start < 3 && ((unsigned char)e->msg[start - 1] & 0xC0) == 0x80)
        start--;
    if (start == 0)
        return;
    unsigned char lead = (unsigned char)e->msg[start - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > 1 && len - (start - 1) < need)
        e->msg[start - 1] = '\0';
}

static void err_vset(struct err *e, const char *fmt, va_list ap)
{
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    if (n >= (int)sizeof e->msg)
        err_cut_utf8(e);
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

void err_printf(struct err *e, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, fmt, ap);
    va_end(ap);
}

int err_prefix(struct err *e, int code, const char *fmt, ...)
{
    char old[ERR_MSG_MAX];
    if (!e)
        return code;
    snprintf(old, sizeof old, "%s", e->msg[0] ? e->msg : err_str(code));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : MIN((size_t)n, sizeof e->msg - 1);
    size_t room = sizeof e->msg - 1 - used;
    size_t olen = strlen(old);
    if (room > 2) {
        memcpy(e->msg + used, ": ", 2);
        used += 2;
        room -= 2;
        memcpy(e->msg + used, old, MIN(olen, room));
        used += MIN(olen, room);
    }
    e->msg[used] = '\0';
    if ((n >= 0 && (size_t)n > sizeof e->msg - 1) || room <= 2 || olen > room)
        err_cut_utf8(e);
    e->code = code;
    return code;
}

const char *err_text(const struct err *e, int rc)
{
    return e && e->msg[0] ? e->msg : err_str(rc);
}

void err_clear(struct err *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

static void oom(size_t n)
{
    fprintf(stderr, "vbatch: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    return buf_detach(&b, NULL);
}

static atomic_ulong fault_nth, fault_count;

unsigned long try_alloc_fail_at(unsigned long nth)
{
    unsigned long n = atomic_exchange(&fault_count, 0);
    atomic_store(&fault_nth, nth);
    return n;
}

static bool fault_hit(void)
{
    unsigned long nth = atomic_load(&fault_nth);
    unsigned long c = atomic_fetch_add(&fault_count, 1) + 1;
    return nth && c == nth;
}

void *try_alloc(size_t nmemb, size_t size)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    if (fault_hit())
        return NULL;
    size_t total = nmemb * size;
    return malloc(total ? total : 1);
}

void *try_calloc(size_t nmemb, size_t size)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    if (fault_hit())
        return NULL;
    return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

/* ---- buffers ---- */

void buf_init(struct buf *b, size_t limit)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->limit = limit;
}

void buf_release(struct buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

static int buf_grow(struct buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return ERR_LIMIT;
    size_t need = b->len + extra + 1;
    if (b->limit && b->len + extra > b->limit)
        return ERR_LIMIT;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = buf_grow(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return ERR_INTERNAL;
    int rc = buf_grow(b, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p = b->data;
    if (!p) {
        p = xmalloc(1);
        p[0] = 0;
    }
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- strings ---- */

bool str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

bool utf8_valid(const char *str)
{
    const unsigned char *p = (const unsigned char *)str;
    while (*p) {
        unsigned c = *p++;
        int more;
        unsigned cp, min;
        if (c < 0x80)
            continue;
        if ((c & 0xe0) == 0xc0) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (; more > 0; more--, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*p & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

void utf8_scrub(char *str)
{
    unsigned char *p = (unsigned char *)str;
    while (*p) {
        unsigned c = *p, cp, min;
        int more, k;
        if (c < 0x80) {
            p++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            more = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            more = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            more = 3, cp = c & 0x07, min = 0x10000;
        else
            more = -1, cp = 0, min = 0;
        /* the terminating NUL is no continuation byte: the scan stops there */
        for (k = 1; k <= more && (p[k] & 0xc0) == 0x80; k++)
            cp = (cp << 6) | (p[k] & 0x3f);
        if (more < 0 || k <= more || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            *p++ = '?';
        else
            p += more + 1;
    }
}

bool id_valid(const char *s, size_t maxlen)
{
    size_t n = 0;
    if (!s)
        return false;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= maxlen)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int url_decode(char *s, bool form)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '%') {
            int h = hex_digit((unsigned char)r[1]), l = h < 0 ? -1 : hex_digit((unsigned char)r[2]);
            if (h < 0 || l < 0)
                return ERR_PARSE;
            *w++ = (char)(h * 16 + l);
            r += 2;
        } else if (*r == '+' && form) {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    return (int)(w - s);
}

char *url_encode(const char *s)
{
    struct buf b = BUF_INIT;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            buf_append(&b, s, 1);
        else
            buf_printf(&b, "%%%02X", c);
    }
    return buf_detach(&b, NULL);
}

/* ---- files ---- */

int mkdir_p(const char *path, unsigned mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int fd_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len)
{
    char *tmp = xasprintf("%s.tmp.%d.%lx", path, (int)getpid(), (unsigned long)random());
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = fd_write_all(fd, data, len)) < 0)
        goto out;
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto out;
    }
    if (slash) {
        *slash = 0;
        rc = fsync_dir(*dir ? dir : "/");
    }
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}

int file_read_all(const char *path, size_t max, char **out, size_t *outlen)
{
    struct buf b;
    char chunk[65536];
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    buf_init(&b, max);
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        if ((rc = buf_append(&b, chunk, (size_t)r)) < 0)
            break;
    }
    close(fd);
    if (rc < 0) {
        buf_release(&b);
        return rc;
    }
    *out = buf_detach(&b, outlen);
    return 0;
}
