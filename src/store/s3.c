/*
 * s3.c — the S3 client of the "s3" blob backend (see s3.h).
 *
 * One request = one CURL easy handle borrowed from a small pool, signed by
 * libcurl's SigV4 (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3").  libcurl 7.88
 * neither adds the payload hash header nor sorts or encodes the query, so
 * every request carries "x-amz-content-sha256: UNSIGNED-PAYLOAD" and the
 * query strings built here are already in canonical form (names sorted,
 * values encoded per RFC 3986, "uploads=" rather than "uploads").
 *
 * The credentials are given to libcurl and to the presigner only; no log
 * line or error message here ever holds them (the tests check).
 */
#include "store/s3.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "store/store.h"

#define S3_ERRBODY_MAX 4096
#define S3_LIST_MAX (8 << 20) /* one listing page, bytes */
#define S3_SMALL_MAX (1 << 20) /* bodies of create/complete answers */

struct s3 {
    struct s3_cfg c;     /* owned copy */
    char *scheme;        /* "http" / "https" */
    char *hostport;      /* endpoint host[:port] */
    char *sigv4;         /* "aws:amz:<region>:s3" */
    char *name;          /* for messages */
    pthread_mutex_t mu;  /* guards pool */
    CURL **pool;
    int npool;
};

/* ---- configuration -------------------------------------------------------------- */

void s3_cfg_free(struct s3_cfg *c)
{
    if (!c)
        return;
    free(c->endpoint);
    free(c->bucket);
    free(c->prefix);
    free(c->region);
    free(c->access_key);
    if (c->secret_key)
        memset(c->secret_key, 0, strlen(c->secret_key));
    free(c->secret_key);
    free(c->session_token);
    memset(c, 0, sizeof *c);
}

static bool bucket_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = b[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
            return false;
    }
    return b[0] != '-' && b[0] != '.' && b[n - 1] != '-' && b[n - 1] != '.';
}

/* Split "http(s)://host[:port]" (no path, no user info). */
static bool endpoint_split(const char *ep, char **scheme, char **hostport)
{
    const char *rest;
    if (!strncmp(ep, "http://", 7))
        rest = ep + 7, *scheme = xstrdup("http");
    else if (!strncmp(ep, "https://", 8))
        rest = ep + 8, *scheme = xstrdup("https");
    else
        return false;
    size_t n = strlen(rest);
    while (n > 0 && rest[n - 1] == '/')
        n--;
    if (n == 0 || n > 255) {
        free(*scheme);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = rest[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '.' || ch == ':' || ch == '[' || ch == ']')) {
            free(*scheme);
            return false;
        }
    }
    *hostport = xstrndup(rest, n);
    return true;
}

/* The name=value parameters of an s3:// URL into c. */
static int cfg_query(struct s3_cfg *c, const char *query, struct err *e)
{
    char *qs = xstrdup(query), *save = NULL;
    int rc = 0;
    for (char *kv = strtok_r(qs, "&", &save); kv && rc == 0; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            rc = err_set(e, ERR_INVALID, "bad blob store URL: '%.40s' is not name=value", kv);
            break;
        }
        *eq = 0;
        char *v = eq + 1;
        if (url_decode(v, false) < 0)
            rc = err_set(e, ERR_INVALID, "bad blob store URL: bad %%-encoding in '%.40s'", kv);
        else if (!strcmp(kv, "endpoint"))
            free(c->endpoint), c->endpoint = xstrdup(v);
        else if (!strcmp(kv, "region"))
            free(c->region), c->region = xstrdup(v);
        else if (!strcmp(kv, "path_style") && (!strcmp(v, "0") || !strcmp(v, "1")))
            c->path_style = v[0] == '1';
        else if (!strcmp(kv, "path_style"))
            rc = err_set(e, ERR_INVALID, "bad blob store URL: path_style must be 0 or 1");
        else
            rc = err_set(e, ERR_INVALID,
                         "bad blob store URL: unknown parameter '%.40s' (endpoint, region, path_style)", kv);
    }
    free(qs);
    return rc;
}

int s3_cfg_parse(const char *url, struct s3_cfg *c, struct err *e)
{
    int rc;
    memset(c, 0, sizeof *c);
    c->path_style = false;
    if (!url || strncmp(url, "s3://", 5) != 0)
        return err_set(e, ERR_INVALID, "bad blob store URL: it must start with s3:// (s3://bucket/prefix?...)");
    const char *p = url + 5, *q = strchr(p, '?');
    size_t blen = q ? (size_t)(q - p) : strlen(p);
    char *bp = xstrndup(p, blen);
    char *slash = strchr(bp, '/');
    if (slash) {
        *slash = 0;
        char *pre = slash + 1;
        size_t n = strlen(pre);
        while (n > 0 && pre[n - 1] == '/')
            pre[--n] = 0;
        if (n > 0 && !store_blob_key_valid(pre)) {
            free(bp);
            return err_set(e, ERR_INVALID, "bad blob store URL: the prefix must be segments of A-Z a-z 0-9 . _ -");
        }
        c->prefix = xstrdup(pre);
    } else {
        c->prefix = xstrdup("");
    }
    if (!bucket_valid(bp)) {
        free(bp);
        s3_cfg_free(c);
        return err_set(e, ERR_INVALID, "bad blob store URL: the bucket name must be 3 to 63 characters of a-z 0-9 . -");
    }
    c->bucket = bp;
    if (q && (rc = cfg_query(c, q + 1, e)) < 0) {
        s3_cfg_free(c);
        return rc;
    }
    if (!c->region || !*c->region) {
        free(c->region);
        c->region = xstrdup("us-east-1");
    }
    for (const char *r = c->region; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-')) {
            s3_cfg_free(c);
            return err_set(e, ERR_INVALID, "bad blob store URL: bad region");
        }
    if (!c->endpoint || !*c->endpoint) {
        free(c->endpoint);
        c->endpoint = xasprintf("https://s3.%s.amazonaws.com", c->region);
    }
    char *sch = NULL, *hp = NULL;
    if (!endpoint_split(c->endpoint, &sch, &hp)) {
        s3_cfg_free(c);
        return err_set(e, ERR_INVALID, "bad blob store URL: endpoint must be http(s)://host[:port]");
    }
    free(sch);
    free(hp);
    if (!c->path_style && strchr(c->bucket, '.')) {
        s3_cfg_free(c);
        return err_set(e, ERR_INVALID, "bad blob store URL: a bucket name with '.' needs path_style=1");
    }
    return 0;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v && *v ? xstrdup(v) : NULL;
}

int s3_cfg_credentials(struct s3_cfg *c, const char *path, struct err *e)
{
    if (path && *path) {
        char *text = NULL;
        int rc = file_read_all(path, 65536, &text, NULL);
        if (rc < 0)
            return err_set(e, ERR_INVALID, "cannot read the credentials file '%s': %s", path, err_str(rc));
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            size_t n = strlen(line);
            while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
                line[--n] = 0;
            while (*line == ' ')
                line++;
            if (!*line || *line == '#')
                continue;
            if (!strncmp(line, "export ", 7))
                line += 7;
            char *eq = strchr(line, '=');
            if (!eq)
                continue;
            *eq = 0;
            char *v = eq + 1;
            size_t vn = strlen(v);
            if (vn >= 2 && (v[0] == '"' || v[0] == '\'') && v[vn - 1] == v[0]) {
                v[vn - 1] = 0;
                v++;
            }
            if (!strcmp(line, "AWS_ACCESS_KEY_ID"))
                set_str(&c->access_key, v);
            else if (!strcmp(line, "AWS_SECRET_ACCESS_KEY"))
                set_str(&c->secret_key, v);
            else if (!strcmp(line, "AWS_SESSION_TOKEN"))
                set_str(&c->session_token, v);
        }
        memset(text, 0, strlen(text));
        free(text);
        if (!c->access_key || !c->secret_key)
            return err_set(e, ERR_INVALID,
                           "the credentials file '%s' lacks AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY", path);
        return 0;
    }
    set_str(&c->access_key, getenv("AWS_ACCESS_KEY_ID"));
    set_str(&c->secret_key, getenv("AWS_SECRET_ACCESS_KEY"));
    set_str(&c->session_token, getenv("AWS_SESSION_TOKEN"));
    if (!c->access_key || !c->secret_key)
        return err_set(e, ERR_INVALID,
                       "no object store credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or name a"
                       " credentials file");
    return 0;
}

/* ---- client ------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

int s3_new(const struct s3_cfg *c, struct s3 **out)
{
    struct s3 *s;
    char *sch = NULL, *hp = NULL;
    if (!c->bucket || !c->endpoint || !c->region || !c->access_key || !c->secret_key ||
        !endpoint_split(c->endpoint, &sch, &hp))
        return ERR_INVALID;
    pthread_once(&curl_once, curl_init_once);
    s = xcalloc(1, sizeof *s);
    s->c.endpoint = xstrdup(c->endpoint);
    s->c.bucket = xstrdup(c->bucket);
    s->c.prefix = xstrdup(c->prefix ? c->prefix : "");
    s->c.region = xstrdup(c->region);
    s->c.path_style = c->path_style;
    s->c.access_key = xstrdup(c->access_key);
    s->c.secret_key = xstrdup(c->secret_key);
    s->c.session_token = dup_or_null(c->session_token);
    s->c.timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 60000;
    s->c.connect_timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 5000;
    s->c.max_retries = c->max_retries > 0 ? c->max_retries : (c->max_retries < 0 ? 0 : 4);
    s->c.pool_size = c->pool_size > 0 ? c->pool_size : 8;
    s->c.part_size = c->part_size >= (5 << 20) ? c->part_size : (16 << 20);
    s->c.multipart_min = c->multipart_min > 0 ? c->multipart_min : (64LL << 20);
    if (s->c.multipart_min < s->c.part_size)
        s->c.multipart_min = s->c.part_size;
    s->scheme = sch;
    s->hostport = hp;
    s->sigv4 = xasprintf("aws:amz:%s:s3", s->c.region);
    s->name = xasprintf("s3://%s%s%s at %s", s->c.bucket, *s->c.prefix ? "/" : "", s->c.prefix, s->c.endpoint);
    pthread_mutex_init(&s->mu, NULL);
    s->pool = xcalloc((size_t)s->c.pool_size, sizeof *s->pool);
    *out = s;
    return 0;
}

void s3_free(struct s3 *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->npool; i++)
        curl_easy_cleanup(s->pool[i]);
    free(s->pool);
    pthread_mutex_destroy(&s->mu);
    s3_cfg_free(&s->c);
    free(s->scheme);
    free(s->hostport);
    free(s->sigv4);
    free(s->name);
    free(s);
}

const char *s3_name(const struct s3 *s)
{
    return s->name;
}

static CURL *pool_get(struct s3 *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->npool > 0)
        h = s->pool[--s->npool];
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_reset(h); /* keeps the connection */
    else
        h = curl_easy_init();
    return h;
}

static void pool_put(struct s3 *s, CURL *h, bool keep)
{
    if (!h)
        return;
    pthread_mutex_lock(&s->mu);
    if (keep && s->npool < s->c.pool_size) {
        s->pool[s->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_cleanup(h);
}

/* "/bucket/prefix/key" (path style) or "/prefix/key", each segment
 * encoded; key NULL = the bucket itself. */
static char *object_path_b(struct s3 *s, const char *key, bool with_bucket)
{
    struct buf b = BUF_INIT;
    if (with_bucket)
        buf_printf(&b, "/%s", s->c.bucket);
    const char *parts[2] = {key && *s->c.prefix ? s->c.prefix : NULL, key};
    for (int i = 0; i < 2; i++) {
        if (!parts[i])
            continue;
        char *seg = xstrdup(parts[i]), *save = NULL;
        for (char *t = strtok_r(seg, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
            char *enc = url_encode(t);
            buf_printf(&b, "/%s", enc);
            free(enc);
        }
        free(seg);
    }
    if (b.len == 0) /* the bucket itself, virtual-hosted */
        buf_puts(&b, "/");
    return buf_detach(&b, NULL);
}

static char *object_path(struct s3 *s, const char *key)
{
    return object_path_b(s, key, s->c.path_style);
}

static char *host_of(struct s3 *s)
{
    return s->c.path_style ? xstrdup(s->hostport) : xasprintf("%s.%s", s->c.bucket, s->hostport);
}

/* ---- one request ----------------------------------------------------------------- */

struct req {
    const char *method;  /* GET PUT POST DELETE HEAD */
    const char *key;     /* NULL: the bucket */
    const char *query;   /* canonical query or NULL */
    const char *copy_source; /* x-amz-copy-source header value (a copy PUT) or NULL */
    const char *raw_url; /* a presigned URL: sent as it is, not signed (the probe) */
    bool if_none_match;  /* a PUT sent with "If-None-Match: *": 412 -> ERR_EXISTS */
    /* body: memory or file */
    const void *data;
    size_t len;
    int in_fd;           /* >= 0: body from this fd */
    int64_t in_off, in_len;
    bool has_body;
    int64_t deadline_ms; /* > 0: wall ms (time_now_ms) by which the request, retries included, ends */
    /* range */
    int64_t range_off;
    size_t range_len;    /* > 0: send Range */
    /* answer sinks: one of buf / dst / out_fd, or none */
    struct buf *out;
    size_t out_max;
    void *dst;
    size_t dst_cap;
    int out_fd;          /* >= 0 */
    /* results */
    long status;
    int64_t resp_len;    /* Content-Length of the answer (HEAD) */
    char *etag;          /* malloc'd */
    /* internal */
    size_t cursor;       /* bytes of the body sent */
    size_t dst_got;
    int64_t fd_written;
    bool over_limit;
    int write_errno;
    struct buf errbody;
    CURL *h;
};

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct req *r = ud;
    size_t want = size * nmemb;
    if (r->in_fd >= 0) {
        int64_t left = r->in_len - (int64_t)r->cursor;
        if (left <= 0)
            return 0;
        if ((int64_t)want > left)
            want = (size_t)left;
        ssize_t n;
        do
            n = pread(r->in_fd, ptr, want, r->in_off + (off_t)r->cursor);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return CURL_READFUNC_ABORT;
        r->cursor += (size_t)n;
        return (size_t)n;
    }
    size_t left = r->len - r->cursor;
    if (want > left)
        want = left;
    memcpy(ptr, (const char *)r->data + r->cursor, want);
    r->cursor += want;
    return want;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct req *r = ud;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code >= 300) {
        if (r->errbody.len + n <= S3_ERRBODY_MAX)
            buf_append(&r->errbody, ptr, n);
        return n;
    }
    if (r->out) {
        if (r->out->len + n > r->out_max) {
            r->over_limit = true;
            return 0;
        }
        buf_append(r->out, ptr, n);
    } else if (r->dst) {
        size_t room = r->dst_cap - r->dst_got;
        if (n > room) {
            r->over_limit = true;
            return 0;
        }
        memcpy((char *)r->dst + r->dst_got, ptr, n);
        r->dst_got += n;
    } else if (r->out_fd >= 0) {
        int rc = fd_write_all(r->out_fd, ptr, n);
        if (rc < 0) {
            r->write_errno = rc;
            return 0;
        }
        r->fd_written += (int64_t)n;
    }
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct req *r = ud;
    size_t n = size * nitems;
    if (n > 5 && !strncasecmp(buf, "etag:", 5)) {
        const char *v = buf + 5;
        size_t vn = n - 5;
        while (vn > 0 && (*v == ' ' || *v == '\t'))
            v++, vn--;
        while (vn > 0 && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
            vn--;
        free(r->etag);
        r->etag = xstrndup(v, vn);
    }
    return n;
}

/* The text between <tag> and </tag> in xml starting at *from (advanced
 * past it), XML entities decoded; NULL when absent.  malloc'd. */
static char *xml_take(const char *xml, const char *tag, const char **from)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(from ? *from : xml, open);
    if (!a)
        return NULL;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b)
        return NULL;
    if (from)
        *from = b + strlen(close);
    struct buf o = BUF_INIT;
    for (const char *p = a; p < b; p++) {
        static const struct { const char *ent; char ch; } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;
        if (*p == '&')
            for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
                size_t el = strlen(ents[i].ent);
                if ((size_t)(b - p) >= el && !strncmp(p, ents[i].ent, el)) {
                    buf_append(&o, &ents[i].ch, 1);
                    p += el - 1;
                    done = true;
                    break;
                }
            }
        if (!done)
            buf_append(&o, p, 1);
    }
    char *res = buf_detach(&o, NULL);
    return res ? res : xstrdup("");
}

static bool curl_transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* The longest backoff_sleep(attempt) (jitter included). */
static int64_t backoff_ms(int attempt)
{
    int64_t ms = 100LL << (attempt < 5 ? attempt : 5);
    return ms + ms / 4;
}

static void backoff_sleep(int attempt)
{
    int64_t ms = 100LL << (attempt < 5 ? attempt : 5);
    uint8_t rb[2];
    rand_bytes(rb, sizeof rb);
    int64_t jitter = ms / 4;
    ms += ((int64_t)(rb[0] | rb[1] << 8) % (2 * jitter + 1)) - jitter;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Run r with retries.  0 for a 2xx answer; else the error (message in e). */
static int perform(struct s3 *s, struct req *r, struct err *e)
{
    char *path = object_path(s, r->key), *host = host_of(s);
    char *url = r->raw_url ? xstrdup(r->raw_url)
                           : xasprintf("%s://%s%s%s%s", s->scheme, host, path, r->query ? "?" : "",
                                       r->query ? r->query : "");
    const char *what = r->key ? r->key : "(bucket)";
    int rc = ERR_INTERNAL;
    buf_init(&r->errbody, S3_ERRBODY_MAX + 1);
    for (int attempt = 0;; attempt++) {
        CURL *h = pool_get(s);
        struct curl_slist *hdrs = NULL;
        char rangeh[96];
        char *tok = NULL, *copyh = NULL;
        bool keep = true, retry = false;
        if (!h) {
            rc = err_set(e, ERR_INTERNAL, "curl_easy_init failed");
            break;
        }
        r->h = h;
        r->cursor = 0;
        r->dst_got = 0;
        r->over_limit = false;
        r->write_errno = 0;
        r->status = 0;
        buf_reset(&r->errbody);
        if (r->out)
            buf_reset(r->out);
        if (r->out_fd >= 0 && r->fd_written > 0) {
            if (lseek(r->out_fd, -r->fd_written, SEEK_CUR) < 0 ||
                ftruncate(r->out_fd, lseek(r->out_fd, 0, SEEK_CUR)) < 0) {
                pool_put(s, h, true);
                rc = err_set(e, err_errno(errno), "cannot rewind a download file: %s", strerror(errno));
                break;
            }
            r->fd_written = 0;
        }
        curl_easy_setopt(h, CURLOPT_URL, url);
        if (!r->raw_url) {
            curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
            curl_easy_setopt(h, CURLOPT_USERNAME, s->c.access_key);
            curl_easy_setopt(h, CURLOPT_PASSWORD, s->c.secret_key);
        }
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        long tmo = s->c.timeout_ms, ctmo = s->c.connect_timeout_ms;
        if (r->deadline_ms > 0) {
            int64_t left = r->deadline_ms - time_now_ms();
            if (left <= 0) {
                pool_put(s, h, true);
                r->h = NULL;
                if (attempt == 0)
                    rc = err_set(e, ERR_UNAVAILABLE, "%s %s: out of time", r->method, what);
                break;
            }
            tmo = (long)MIN((int64_t)tmo, left);
            ctmo = MIN(ctmo, tmo);
        }
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ctmo);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
        if (!r->raw_url)
            hdrs = curl_slist_append(hdrs, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
        if (s->c.session_token && !r->raw_url) {
            tok = xasprintf("x-amz-security-token: %s", s->c.session_token);
            hdrs = curl_slist_append(hdrs, tok);
        }
        if (r->copy_source) {
            copyh = xasprintf("x-amz-copy-source: %s", r->copy_source);
            hdrs = curl_slist_append(hdrs, copyh);
        }
        if (r->if_none_match)
            hdrs = curl_slist_append(hdrs, "If-None-Match: *");
        if (r->range_len > 0) {
            snprintf(rangeh, sizeof rangeh, "Range: bytes=%lld-%lld", (long long)r->range_off,
                     (long long)(r->range_off + (int64_t)r->range_len - 1));
            hdrs = curl_slist_append(hdrs, rangeh);
        }
        if (!strcmp(r->method, "HEAD")) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (!strcmp(r->method, "PUT")) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(h, CURLOPT_READDATA, r);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                             (curl_off_t)(r->in_fd >= 0 ? r->in_len : (int64_t)r->len));
            /* libcurl 7.88 sends "Expect: 100-continue" with every PUT and
             * an "Expect:" header to drop it would be signed: send the body
             * at once instead of waiting for the 100. */
            curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
        } else if (!strcmp(r->method, "POST")) {
            hdrs = curl_slist_append(hdrs, "Content-Type: application/xml");
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->len ? (const char *)r->data : "");
        } else if (strcmp(r->method, "GET") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        CURLcode cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        curl_off_t cl = -1;
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        r->resp_len = cl;
        curl_slist_free_all(hdrs);
        free(copyh);
        if (tok) {
            memset(tok, 0, strlen(tok));
            free(tok);
        }
        if (cc != CURLE_OK) {
            keep = false;
            if (r->over_limit) {
                rc = err_set(e, ERR_LIMIT, "object '%s' is larger than the limit", what);
            } else if (r->write_errno) {
                rc = err_set(e, r->write_errno, "cannot write a download of '%s': %s", what,
                             err_str(r->write_errno));
            } else if (curl_transient(cc)) {
                rc = err_set(e, ERR_UNAVAILABLE, "cannot reach the object store at %s: %s", s->c.endpoint,
                             curl_easy_strerror(cc));
                retry = true;
            } else {
                rc = err_set(e, ERR_INTERNAL, "object store request for '%s' failed: %s", what,
                             curl_easy_strerror(cc));
            }
        } else if (r->status >= 200 && r->status < 300) {
            rc = 0;
        } else {
            char *body = buf_detach(&r->errbody, NULL);
            char *code = body ? xml_take(body, "Code", NULL) : NULL;
            buf_init(&r->errbody, S3_ERRBODY_MAX + 1);
            const char *cs = code ? code : "";
            if (r->status == 404 && !strcmp(cs, "NoSuchBucket"))
                rc = err_set(e, ERR_NOTFOUND, "no such bucket '%s' at %s", s->c.bucket, s->c.endpoint);
            else if (r->status == 404)
                rc = err_set(e, ERR_NOTFOUND, "no object '%s'%s%s", what, *cs ? ": " : "", cs);
            else if (r->status == 403 || r->status == 401)
                rc = err_set(e, ERR_AUTH, "the object store at %s refused the request for '%s' (HTTP %ld%s%s)",
                             s->c.endpoint, what, r->status, *cs ? " " : "", cs);
            else if (r->status == 500 || r->status == 502 || r->status == 503 || r->status == 504) {
                rc = err_set(e, ERR_UNAVAILABLE, "the object store at %s is unavailable (HTTP %ld%s%s)",
                             s->c.endpoint, r->status, *cs ? " " : "", cs);
                retry = true;
            } else if (r->status == 416) {
                rc = 0; /* a range past the end: nothing to read */
            } else if (r->status == 412 && r->if_none_match) {
                rc = err_set(e, ERR_EXISTS, "object '%s' exists already", what);

            } else
                rc = err_set(e, ERR_INTERNAL, "the object store answered HTTP %ld%s%s for '%s'", r->status,
                             *cs ? " " : "", cs, what);
            free(code);
            free(body);
        }
        pool_put(s, h, keep);
        r->h = NULL;
        if (!retry || attempt >= s->c.max_retries)
            break;
        if (r->deadline_ms > 0 && time_now_ms() + backoff_ms(attempt) >= r->deadline_ms)
            break; /* no time left for another try: the last error stands */
        /* every body is replayable: memory, or pread from the file */
        log_warn("s3", "%s %s: %s; retry %d of %d", r->method, what, e ? e->msg : err_str(rc), attempt + 1,
                 s->c.max_retries);
        metric_count(METRIC_BLOB_ERRORS, 1, "retry", NULL, NULL);
        backoff_sleep(attempt);
    }
    buf_release(&r->errbody);
    free(url);
    free(path);
    free(host);
    return rc;
}

static void req_init(struct req *r, const char *method, const char *key)
{
    memset(r, 0, sizeof *r);
    r->method = method;
    r->key = key;
    r->in_fd = -1;
    r->out_fd = -1;
}

static int key_check(const char *key, struct err *e)
{
    if (!store_blob_key_valid(key))
        return err_set(e, ERR_INVALID, "bad object key");
    return 0;
}

int s3_check_bucket(struct s3 *s, struct err *e)
{
    struct req r;
    req_init(&r, "HEAD", NULL);
    int rc = perform(s, &r, e);
    if (rc == ERR_NOTFOUND)
        rc = err_set(e, ERR_NOTFOUND, "no such bucket '%s' at %s", s->c.bucket, s->c.endpoint);
    else if (rc == ERR_AUTH)
        rc = err_set(e, ERR_AUTH, "the object store at %s refused the credentials for bucket '%s'", s->c.endpoint,
                     s->c.bucket);
    free(r.etag);
    return rc;
}

/* One PUT of data under key: within deadline_ms when > 0, with
 * If-None-Match: * when if_none_match. */
static int put_req(struct s3 *s, const char *key, const void *data, size_t len, int64_t deadline_ms,
                   bool if_none_match, struct err *e)
{
    struct req r;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    req_init(&r, "PUT", key);
    r.data = data ? data : "";
    r.len = len;
    r.has_body = true;
    r.deadline_ms = deadline_ms;
    r.if_none_match = if_none_match;
    rc = perform(s, &r, e);
    free(r.etag);
    return rc;
}

int s3_put(struct s3 *s, const char *key, const void *data, size_t len, struct err *e)
{
    return put_req(s, key, data, len, 0, false, e);
}

int s3_put_by(struct s3 *s, const char *key, const void *data, size_t len, int64_t deadline_ms, struct err *e)
{
    return put_req(s, key, data, len, deadline_ms, false, e);
}

int s3_put_new(struct s3 *s, const char *key, const void *data, size_t len, struct err *e)
{
    return put_req(s, key, data, len, 0, true, e);
}

/* Two ETags equal, with or without their quotes. */
static bool etag_eq(const char *a, const char *b)
{
    size_t an = strlen(a), bn = strlen(b);
    if (an >= 2 && a[0] == '"' && a[an - 1] == '"')
        a++, an -= 2;
    if (bn >= 2 && b[0] == '"' && b[bn - 1] == '"')
        b++, bn -= 2;
    return an == bn && !memcmp(a, b, an);
}

int s3_copy(struct s3 *s, const char *src_key, const char *dst_key, struct err *e)
{
    return s3_copy_if(s, src_key, NULL, dst_key, e);
}

int s3_copy_if(struct s3 *s, const char *src_key, const char *etag, const char *dst_key, struct err *e)
{
    struct req r;
    struct buf b = BUF_INIT;
    int rc;
    if ((rc = key_check(src_key, e)) < 0 || (rc = key_check(dst_key, e)) < 0)
        return rc;
    char *src = object_path_b(s, src_key, true);
    req_init(&r, "PUT", dst_key);
    r.data = "";
    r.len = 0;
    r.has_body = true;
    r.copy_source = src;
    r.out = &b;
    r.out_max = 64 * 1024;
    rc = perform(s, &r, e);
    /* a copy can fail after its 200 (AWS): the body is then an <Error> */
    if (rc == 0 && b.len && memmem(b.data, b.len, "<Error>", 7))
        rc = err_set(e, ERR_UNAVAILABLE, "the object store failed to copy '%s'", src_key);
    /* Not x-amz-copy-source-if-match: libcurl 7.88 sorts it before
     * x-amz-copy-source when signing (radosgw: SignatureDoesNotMatch).
     * The copy's own ETag (CopyObjectResult) is compared instead: another
     * object copied is deleted again. */
    if (rc == 0 && etag && *etag) {
        char *xml = buf_detach(&b, NULL);
        char *got = xml ? xml_take(xml, "ETag", NULL) : NULL;
        if (!got || !etag_eq(got, etag)) {
            struct err de = ERR_INIT;
            s3_delete(s, dst_key, &de);
            rc = err_set(e, ERR_EXISTS, "the source of the copy to '%s' changed", dst_key);
        }
        free(got);
        free(xml);
    }
    free(r.etag);
    free(src);
    buf_release(&b);
    return rc;
}

int s3_presigned_copy_probe(struct s3 *s, const char *url, const char *src_key, struct err *e)
{
    struct req r;
    struct buf b = BUF_INIT;
    int rc;
    if ((rc = key_check(src_key, e)) < 0)
        return rc;
    char *src = object_path_b(s, src_key, true);
    req_init(&r, "PUT", NULL);
    r.raw_url = url;
    r.data = "";
    r.len = 0;
    r.has_body = true;
    r.copy_source = src;
    r.out = &b;
    r.out_max = 64 * 1024;
    rc = perform(s, &r, e);
    if (rc == 0 && b.len && memmem(b.data, b.len, "<Error>", 7))
        rc = err_set(e, ERR_INTERNAL, "the copy failed");
    free(r.etag);
    free(src);
    buf_release(&b);
    return rc;
}

int s3_get(struct s3 *s, const char *key, size_t max, char **data, size_t *len, struct err *e)
{
    struct req r;
    struct buf b;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    req_init(&r, "GET", key);
    buf_init(&b, 0);
    r.out = &b;
    r.out_max = max;
    rc = perform(s, &r, e);
    free(r.etag);
    if (rc < 0) {
        buf_release(&b);
        return rc;
    }
    size_t n = 0;
    char *p = buf_detach(&b, &n);
    if (!p)
        p = xstrdup("");
    *data = p;
    if (len)
        *len = n;
    return 0;
}

int s3_get_range(struct s3 *s, const char *key, int64_t off, size_t len, void *buf, size_t *got, struct err *e)
{
    struct req r;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    if (off < 0)
        return err_set(e, ERR_INVALID, "negative offset");
    *got = 0;
    if (len == 0)
        return 0;
    req_init(&r, "GET", key);
    r.range_off = off;
    r.range_len = len;
    r.dst = buf;
    r.dst_cap = len;
    rc = perform(s, &r, e);
    free(r.etag);
    if (rc == 0 && r.status != 416) {
        if (r.status == 200 && off > 0)
            return err_set(e, ERR_INTERNAL, "the object store ignored the range of '%s'", key);
        *got = r.dst_got;
    }
    return rc;
}

int s3_get_fd(struct s3 *s, const char *key, int fd, int64_t *size, struct err *e)
{
    struct req r;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    req_init(&r, "GET", key);
    r.out_fd = fd;
    rc = perform(s, &r, e);
    free(r.etag);
    if (rc == 0 && size)
        *size = r.fd_written;
    return rc;
}

int s3_get_range_fd(struct s3 *s, const char *key, int64_t off, int64_t len, int fd, int64_t *got, struct err *e)
{
    struct req r;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    if (off < 0 || len <= 0)
        return err_set(e, ERR_INVALID, "bad range");
    *got = 0;
    req_init(&r, "GET", key);
    r.range_off = off;
    r.range_len = (size_t)len;
    r.out_fd = fd;
    rc = perform(s, &r, e);
    free(r.etag);
    if (rc == 0 && r.status != 416) {
        if (r.status == 200 && (off > 0 || r.fd_written > len))
            return err_set(e, ERR_INTERNAL, "the object store ignored the range of '%s'", key);
        *got = r.fd_written;
    }
    return rc;
}

int s3_head(struct s3 *s, const char *key, int64_t *size, struct err *e)
{
    struct req r;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    req_init(&r, "HEAD", key);
    rc = perform(s, &r, e);
    free(r.etag);
    if (rc == 0 && size && r.resp_len < 0) /* no Content-Length: the size is unknown */
        rc = err_set(e, ERR_INTERNAL, "the object store gave no size of '%s'", key);
    if (rc == 0 && size)
        *size = r.resp_len;
    return rc;
}

int s3_delete(struct s3 *s, const char *key, struct err *e)
{
    struct req r;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    req_init(&r, "DELETE", key);
    rc = perform(s, &r, e);
    free(r.etag);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

/* ---- listing ----------------------------------------------------------------------- */

void s3_objs_free(struct s3_obj *objs, int n)
{
    for (int i = 0; i < n; i++) {
        free(objs[i].key);
        free(objs[i].etag);
    }
    free(objs);
}

static int list_q(struct s3 *s, const char *prefix, const char *token, const char *start_after, int max_keys,
                  struct s3_obj **objs, int *n, char **next, bool *more, struct err *e);

int s3_list(struct s3 *s, const char *prefix, const char *token, int max_keys, struct s3_obj **objs, int *n,
            char **next, struct err *e)
{
    return list_q(s, prefix, token, NULL, max_keys, objs, n, next, NULL, e);
}

int s3_list_after(struct s3 *s, const char *prefix, const char *start_after, int max_keys, struct s3_obj **objs,
                  int *n, bool *more, struct err *e)
{
    return list_q(s, prefix, NULL, start_after, max_keys, objs, n, NULL, more, e);
}

static int list_q(struct s3 *s, const char *prefix, const char *token, const char *start_after, int max_keys,
                  struct s3_obj **objs, int *n, char **next, bool *more, struct err *e)
{
    struct req r;
    struct buf b, q = BUF_INIT;
    int rc;
    *objs = NULL;
    *n = 0;
    if (next)
        *next = NULL;
    if (more)
        *more = false;
    if (max_keys <= 0 || max_keys > 1000)
        max_keys = 1000;
    char *full = *s->c.prefix ? xasprintf("%s/%s", s->c.prefix, prefix ? prefix : "") : xstrdup(prefix ? prefix : "");
    char *pe = url_encode(full);
    /* canonical order: continuation-token, list-type, max-keys, prefix, start-after */
    if (token) {
        char *te = url_encode(token);
        buf_printf(&q, "continuation-token=%s&", te);
        free(te);
    }
    buf_printf(&q, "list-type=2&max-keys=%d&prefix=%s", max_keys, pe);
    free(pe);
    if (start_after && *start_after) {
        char *sa = *s->c.prefix ? xasprintf("%s/%s", s->c.prefix, start_after) : xstrdup(start_after);
        char *se = url_encode(sa);
        buf_printf(&q, "&start-after=%s", se);
        free(se);
        free(sa);
    }
    char *qs = buf_detach(&q, NULL);
    req_init(&r, "GET", NULL);
    r.query = qs;
    buf_init(&b, 0);
    r.out = &b;
    r.out_max = S3_LIST_MAX;
    rc = perform(s, &r, e);
    free(r.etag);
    free(qs);
    if (rc < 0) {
        buf_release(&b);
        free(full);
        return rc;
    }
    char *xml = buf_detach(&b, NULL);
    if (!xml)
        xml = xstrdup("");
    size_t strip = *s->c.prefix ? strlen(s->c.prefix) + 1 : 0;
    const char *at = xml;
    int cap = 0;
    char *item;
    while ((item = xml_take(xml, "Contents", &at)) != NULL) {
        char *k = xml_take(item, "Key", NULL), *sz = xml_take(item, "Size", NULL);
        char *lm = xml_take(item, "LastModified", NULL), *et = xml_take(item, "ETag", NULL);
        int64_t mt = 0;
        if (!lm || time_parse_iso8601(lm, &mt) < 0)
            mt = 0;
        free(lm);
        if (k && strlen(k) >= strip) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                *objs = xrealloc(*objs, (size_t)cap * sizeof **objs);
            }
            (*objs)[*n].key = xstrdup(k + strip);
            (*objs)[*n].size = sz ? atoll(sz) : 0;
            (*objs)[*n].mtime_ms = mt;
            (*objs)[*n].etag = et;
            et = NULL;
            (*n)++;
        }
        free(k);
        free(sz);
        free(et);
        free(item);
    }
    char *trunc = xml_take(xml, "IsTruncated", NULL);
    if (trunc && !strcmp(trunc, "true") && next)
        *next = xml_take(xml, "NextContinuationToken", NULL);
    if (more)
        *more = trunc && !strcmp(trunc, "true");
    free(trunc);
    free(xml);
    free(full);
    return 0;
}

int s3_delete_prefix(struct s3 *s, const char *prefix, struct err *e)
{
    char *token = NULL;
    int rc = 0;
    do {
        struct s3_obj *objs;
        int n;
        char *next = NULL;
        rc = s3_list(s, prefix, token, 1000, &objs, &n, &next, e);
        free(token);
        token = next;
        if (rc < 0)
            break;
        for (int i = 0; i < n && rc == 0; i++)
            rc = s3_delete(s, objs[i].key, e);
        s3_objs_free(objs, n);
    } while (rc == 0 && token);
    free(token);
    return rc;
}

/* ---- multipart ----------------------------------------------------------------------- */

int s3_mpu_create(struct s3 *s, const char *key, char **upload_id, struct err *e)
{
    struct req r;
    struct buf b;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    req_init(&r, "POST", key);
    r.query = "uploads=";
    r.data = "";
    r.has_body = true;
    buf_init(&b, 0);
    r.out = &b;
    r.out_max = S3_SMALL_MAX;
    rc = perform(s, &r, e);
    free(r.etag);
    char *xml = buf_detach(&b, NULL);
    if (rc == 0) {
        char *id = xml ? xml_take(xml, "UploadId", NULL) : NULL;
        if (!id || !*id) {
            free(id);
            rc = err_set(e, ERR_INTERNAL, "no UploadId in the answer to a multipart upload of '%s'", key);
        } else
            *upload_id = id;
    }
    free(xml);
    return rc;
}

int s3_mpu_part(struct s3 *s, const char *key, const char *upload_id, int part_no, const void *data, size_t len,
                char **etag, struct err *e)
{
    struct req r;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    char *ide = url_encode(upload_id);
    char *q = xasprintf("partNumber=%d&uploadId=%s", part_no, ide);
    free(ide);
    req_init(&r, "PUT", key);
    r.query = q;
    r.data = data;
    r.len = len;
    r.has_body = true;
    rc = perform(s, &r, e);
    free(q);
    if (rc == 0 && !r.etag)
        rc = err_set(e, ERR_INTERNAL, "no ETag for part %d of '%s'", part_no, key);
    if (rc == 0)
        *etag = r.etag;
    else
        free(r.etag);
    return rc;
}

int s3_mpu_complete(struct s3 *s, const char *key, const char *upload_id, char *const *etags, int n,
                    struct err *e)
{
    struct req r;
    struct buf body = BUF_INIT, b;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    buf_puts(&body, "<CompleteMultipartUpload>");
    for (int i = 0; i < n; i++)
        buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1, etags[i]);
    buf_puts(&body, "</CompleteMultipartUpload>");
    size_t blen = 0;
    char *btext = buf_detach(&body, &blen);
    char *ide = url_encode(upload_id);
    char *q = xasprintf("uploadId=%s", ide);
    free(ide);
    req_init(&r, "POST", key);
    r.query = q;
    r.data = btext;
    r.len = blen;
    r.has_body = true;
    buf_init(&b, 0);
    r.out = &b;
    r.out_max = S3_SMALL_MAX;
    rc = perform(s, &r, e);
    free(r.etag);
    char *xml = buf_detach(&b, NULL);
    /* S3 may answer 200 and put the error in the body */
    if (rc == 0 && xml && strstr(xml, "<Error>")) {
        char *code = xml_take(xml, "Code", NULL);
        rc = err_set(e, ERR_INTERNAL, "completing the multipart upload of '%s' failed: %s", key,
                     code ? code : "error");
        free(code);
    }
    free(xml);
    free(q);
    free(btext);
    return rc;
}

int s3_mpu_abort(struct s3 *s, const char *key, const char *upload_id, struct err *e)
{
    struct req r;
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    char *ide = url_encode(upload_id);
    char *q = xasprintf("uploadId=%s", ide);
    free(ide);
    req_init(&r, "DELETE", key);
    r.query = q;
    rc = perform(s, &r, e);
    free(r.etag);
    free(q);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

int s3_put_fd(struct s3 *s, const char *key, int fd, int64_t size, struct err *e)
{
    int rc;
    if ((rc = key_check(key, e)) < 0)
        return rc;
    if (size < s->c.multipart_min) {
        struct req r;
        req_init(&r, "PUT", key);
        r.in_fd = fd;
        r.in_off = 0;
        r.in_len = size;
        r.has_body = true;
        rc = perform(s, &r, e);
        free(r.etag);
        return rc;
    }
    char *id = NULL;
    if ((rc = s3_mpu_create(s, key, &id, e)) < 0)
        return rc;
    int nparts = (int)((size + s->c.part_size - 1) / s->c.part_size);
    char **etags = xcalloc((size_t)nparts, sizeof *etags);
    char *part = try_alloc(1, (size_t)s->c.part_size);
    if (!part)
        rc = err_set(e, ERR_NOMEM, "out of memory for an upload part");
    for (int i = 0; i < nparts && rc == 0; i++) {
        int64_t off = (int64_t)i * s->c.part_size;
        size_t n = (size_t)(size - off < s->c.part_size ? size - off : s->c.part_size), got = 0;
        while (got < n) {
            ssize_t k = pread(fd, part + got, n - got, off + (off_t)got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                rc = err_set(e, k < 0 ? err_errno(errno) : ERR_INTERNAL, "cannot read the file to upload");
                break;
            }
            got += (size_t)k;
        }
        if (rc == 0)
            rc = s3_mpu_part(s, key, id, i + 1, part, n, &etags[i], e);
    }
    free(part);
    if (rc == 0)
        rc = s3_mpu_complete(s, key, id, etags, nparts, e);
    if (rc < 0)
        s3_mpu_abort(s, key, id, NULL);
    for (int i = 0; i < nparts; i++)
        free(etags[i]);
    free(etags);
    free(id);
    return rc;
}

/* ---- presigned URLs (SigV4 query signing) ----------------------------------------------- */

char *s3__presign_raw(const char *scheme, const char *host, const char *path, const char *method,
                      const char *access_key, const char *secret_key, const char *session_token,
                      const char *region, const char *amz_date, int64_t expires_s, int64_t content_length,
                      bool put_once)
{
    char date8[9], hex[65];
    uint8_t k1[32], k2[32], k3[32], k4[32], sig[32], h[32];
    memcpy(date8, amz_date, 8);
    date8[8] = 0;
    char *scope = xasprintf("%s/%s/s3/aws4_request", date8, region);
    char *cred = xasprintf("%s/%s", access_key, scope);
    char *cred_e = url_encode(cred);
    /* the signed headers, sorted: content-length, host, if-none-match */
    const char *signed_headers = content_length >= 0 ? (put_once ? "content-length%3Bhost%3Bif-none-match"
                                                                  : "content-length%3Bhost")
                                                     : (put_once ? "host%3Bif-none-match" : "host");
    struct buf q = BUF_INIT;
    buf_printf(&q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s&X-Amz-Expires=%lld", cred_e,
               amz_date, (long long)expires_s);
    if (session_token && *session_token) {
        char *te = url_encode(session_token);
        buf_printf(&q, "&X-Amz-Security-Token=%s", te);
        free(te);
    }
    buf_printf(&q, "&X-Amz-SignedHeaders=%s", signed_headers);
    char *query = buf_detach(&q, NULL);
    struct buf cr = BUF_INIT;
    buf_printf(&cr, "%s\n%s\n%s\n", method, path, query);
    if (content_length >= 0)
        buf_printf(&cr, "content-length:%lld\n", (long long)content_length);
    buf_printf(&cr, "host:%s\n", host);
    if (put_once)
        buf_printf(&cr, "if-none-match:*\n");
    buf_printf(&cr, "\n%s%s%s\nUNSIGNED-PAYLOAD", content_length >= 0 ? "content-length;" : "", "host",
               put_once ? ";if-none-match" : "");
    size_t crlen = 0;
    char *creq = buf_detach(&cr, &crlen);
    sha256(creq, crlen, h);
    hex_encode(h, sizeof h, hex);
    char *sts = xasprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, hex);
    char *kk = xasprintf("AWS4%s", secret_key);
    hmac_sha256(kk, strlen(kk), date8, strlen(date8), k1);
    hmac_sha256(k1, 32, region, strlen(region), k2);
    hmac_sha256(k2, 32, "s3", 2, k3);
    hmac_sha256(k3, 32, "aws4_request", 12, k4);
    hmac_sha256(k4, 32, sts, strlen(sts), sig);
    hex_encode(sig, sizeof sig, hex);
    char *url = xasprintf("%s://%s%s?%s&X-Amz-Signature=%s", scheme, host, path, query, hex);
    memset(kk, 0, strlen(kk));
    memset(k1, 0, sizeof k1);
    memset(k4, 0, sizeof k4);
    free(kk);
    free(sts);
    free(creq);
    free(query);
    free(cred_e);
    free(cred);
    free(scope);
    return url;
}

static int presign(struct s3 *s, const char *method, const char *key, int64_t now_unix_s, int64_t expires_s,
                   int64_t content_length, bool put_once, char **out)
{
    char amz_date[32];
    struct tm tm;
    time_t t = (time_t)now_unix_s;
    if (!store_blob_key_valid(key) || expires_s < 1 || expires_s > 604800 ||
        (strcmp(method, "GET") && strcmp(method, "PUT") && strcmp(method, "HEAD")))
        return ERR_INVALID;
    if (!gmtime_r(&t, &tm))
        return ERR_INVALID;
    strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
    char *path = object_path(s, key), *host = host_of(s);
    *out = s3__presign_raw(s->scheme, host, path, method, s->c.access_key, s->c.secret_key, s->c.session_token,
                           s->c.region, amz_date, expires_s, strcmp(method, "PUT") ? -1 : content_length,
                           put_once && !strcmp(method, "PUT"));
    free(path);
    free(host);
    return 0;
}

int s3_presign(struct s3 *s, const char *method, const char *key, int64_t now_unix_s, int64_t expires_s,
               int64_t content_length, char **out)
{
    return presign(s, method, key, now_unix_s, expires_s, content_length, false, out);
}

int s3_presign_put_once(struct s3 *s, const char *key, int64_t now_unix_s, int64_t expires_s, int64_t content_length,
                        char **out)
{
    return presign(s, "PUT", key, now_unix_s, expires_s, content_length, true, out);
}
