/* Unit tests of src/store/s3.c, the S3 client: configuration parsing,
 * SigV4 query presigning against AWS's documented example, and (with
 * VBATCH_TEST_S3 and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY set, as
 * scripts/test.sh does with a throwaway radosgw) every request against a
 * real store: put/get/range/head/list with continuation/delete/multipart,
 * presigned PUT and GET with plain curl, tampered, expired and wrong-length
 * presigned URLs refused by the store, wrong credentials, missing bucket,
 * unreachable endpoint; retries on 503 against a tiny local fake, and
 * credentials never in the log. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "base/base.h"
#include "store/s3.h"
#include "store/store.h"
#include "t.h"

/* ---- offline ------------------------------------------------------------------------- */

TEST(presign_aws_example)
{
    /* "Authenticating Requests: Using Query Parameters (AWS Signature
     * Version 4)", the example GET of examplebucket/test.txt. */
    char *url = s3__presign_raw("https", "examplebucket.s3.amazonaws.com", "/test.txt", "GET",
                                "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL,
                                "us-east-1", "20130524T000000Z", 86400, -1, false);
    ASSERT_STR_EQ(url, "https://examplebucket.s3.amazonaws.com/test.txt"
                       "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                       "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                       "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                       "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    free(url);
}

TEST(cfg_parse)
{
    struct s3_cfg c;
    struct err e = ERR_INIT;
    ASSERT_OK(s3_cfg_parse("s3://my-bucket/a/b/?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=1",
                           &c, &e));
    ASSERT_STR_EQ(c.bucket, "my-bucket");
    ASSERT_STR_EQ(c.prefix, "a/b");
    ASSERT_STR_EQ(c.endpoint, "http://127.0.0.1:9000");
    ASSERT_STR_EQ(c.region, "eu-west-1");
    ASSERT(c.path_style);
    s3_cfg_free(&c);
    ASSERT_OK(s3_cfg_parse("s3://bucket1", &c, &e));
    ASSERT_STR_EQ(c.prefix, "");
    ASSERT_STR_EQ(c.region, "us-east-1");
    ASSERT_STR_EQ(c.endpoint, "https://s3.us-east-1.amazonaws.com");
    ASSERT(!c.path_style);
    s3_cfg_free(&c);
    const char *bad[] = {"http://bucket", "s3://", "s3://Bad_Bucket", "s3://ab", "s3://bucket/../x",
                         "s3://bucket?endpoint=ftp://h", "s3://bucket?nope=1", "s3://bucket?path_style=2",
                         "s3://bucket?endpoint", "s3://bucket?endpoint=http://h/path", "s3://b.c.d",
                         "s3://bucket?region=EU%20x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear(&e);
        int rc = s3_cfg_parse(bad[i], &c, &e);
        if (rc != ERR_INVALID)
            T_FAIL("'%s' accepted (%d)", bad[i], rc);
        ASSERT(strstr(e.msg, "bad blob store URL") != NULL);
    }
}

TEST(credentials_file_and_env)
{
    char path[] = "/tmp/vbatch-s3cred-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    const char *text = "# test\nexport AWS_ACCESS_KEY_ID=AKID1\nAWS_SECRET_ACCESS_KEY=\"sec ret\"\n"
                       "AWS_SESSION_TOKEN=tok\n";
    ASSERT_OK(fd_write_all(fd, text, strlen(text)));
    close(fd);
    struct s3_cfg c = {0};
    struct err e = ERR_INIT;
    ASSERT_OK(s3_cfg_credentials(&c, path, &e));
    ASSERT_STR_EQ(c.access_key, "AKID1");
    ASSERT_STR_EQ(c.secret_key, "sec ret");
    ASSERT_STR_EQ(c.session_token, "tok");
    s3_cfg_free(&c);
    fd = open(path, O_WRONLY | O_TRUNC);
    ASSERT_OK(fd_write_all(fd, "AWS_ACCESS_KEY_ID=x\n", 20));
    close(fd);
    ASSERT_EQ(s3_cfg_credentials(&c, path, &e), ERR_INVALID);
    s3_cfg_free(&c);
    unlink(path);
    ASSERT_EQ(s3_cfg_credentials(&c, "/nonexistent/creds", &e), ERR_INVALID);
    s3_cfg_free(&c);
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
    unsetenv("AWS_SESSION_TOKEN");
    ASSERT_OK(s3_cfg_credentials(&c, NULL, &e));
    ASSERT_STR_EQ(c.access_key, "AKENV");
    ASSERT(c.session_token == NULL);
    s3_cfg_free(&c);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    ASSERT_EQ(s3_cfg_credentials(&c, NULL, &e), ERR_INVALID);
    s3_cfg_free(&c);
}

/* ---- a fake store that answers 503 a few times ------------------------------------------- */

struct fake {
    int lfd;
    int port;
    int fail_first; /* answer 503 SlowDown to this many requests */
    bool no_length; /* answer 200 without a Content-Length */
    int requests;
    pthread_t th;
};

static void *fake_main(void *ud)
{
    struct fake *f = ud;
    for (;;) {
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[65536];
        size_t got = 0;
        char *end = NULL;
        while (!(end = memmem(buf, got, "\r\n\r\n", 4)) && got < sizeof buf) {
            ssize_t n = read(c, buf + got, sizeof buf - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (!end) {
            close(c);
            continue;
        }
        long clen = 0;
        char *cl = strcasestr(buf, "content-length:");
        if (cl && cl < end)
            clen = atol(cl + 15);
        size_t have = got - (size_t)(end + 4 - buf);
        char *ex = strcasestr(buf, "expect: 100-continue");
        if (ex && ex < end && have == 0 && write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0) {
        }
        while ((long)have < clen) {
            ssize_t n = read(c, buf, sizeof buf);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        f->requests++;
        const char *ans = f->requests <= f->fail_first
                              ? "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 55\r\n"
                                "Connection: close\r\n\r\n<Error><Code>SlowDown</Code><Message></Message></Error>"
                          : f->no_length ? "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nConnection: close\r\n\r\n"
                              : "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        if (write(c, ans, strlen(ans)) < 0) {
        }
        close(c);
    }
}

static void fake_start(struct fake *f, int fail_first)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    memset(f, 0, sizeof *f);
    f->fail_first = fail_first;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(f->lfd >= 0);
    ASSERT_OK(bind(f->lfd, (struct sockaddr *)&a, sizeof a));
    ASSERT_OK(listen(f->lfd, 16));
    ASSERT_OK(getsockname(f->lfd, (struct sockaddr *)&a, &al));
    f->port = ntohs(a.sin_port);
    ASSERT_EQ(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static struct s3 *client_at(const char *endpoint, const char *bucket, const char *ak, const char *sk, int retries)
{
    struct s3_cfg c = {0};
    struct s3 *s = NULL;
    c.endpoint = xstrdup(endpoint);
    c.bucket = xstrdup(bucket);
    c.prefix = xstrdup("");
    c.region = xstrdup("us-east-1");
    c.path_style = true;
    c.access_key = xstrdup(ak);
    c.secret_key = xstrdup(sk);
    c.max_retries = retries;
    c.connect_timeout_ms = 2000;
    c.timeout_ms = 10000;
    ASSERT_OK(s3_new(&c, &s));
    s3_cfg_free(&c);
    return s;
}

/* Run fn with stderr (the log) going to a temp file; returns its text. */
static char *capture_stderr_begin(int *saved, char *path)
{
    strcpy(path, "/tmp/vbatch-s3log-XXXXXX");
    int fd = mkstemp(path);
    fflush(stderr);
    *saved = dup(2);
    dup2(fd, 2);
    close(fd);
    return path;
}

static char *capture_stderr_end(int saved, const char *path)
{
    char *text = NULL;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    if (file_read_all(path, 1 << 20, &text, NULL) < 0)
        text = xstrdup("");
    unlink(path);
    return text;
}

TEST(retries_on_503_without_logging_credentials)
{
    struct fake f;
    fake_start(&f, 2);
    char *ep = xasprintf("http://127.0.0.1:%d", f.port);
    struct s3 *s = client_at(ep, "bucket", "AKIDFAKE123", "SECRETFAKE456", 4);
    struct err e = ERR_INIT;
    char path[64];
    int saved;
    log_set_level(LOG_DEBUG);
    capture_stderr_begin(&saved, path);
    int rc = s3_put(s, "k/x", "hello", 5, &e);
    char *logtext = capture_stderr_end(saved, path);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(f.requests, 3); /* two 503s, then 200 */
    ASSERT(strstr(logtext, "retry 1 of 4") != NULL);
    ASSERT(strstr(logtext, "SlowDown") != NULL);
    ASSERT(strstr(logtext, "SECRETFAKE456") == NULL);
    free(logtext);
    /* more 503s than retries: ERR_UNAVAILABLE after 1 + 4 attempts */
    f.fail_first = 100;
    f.requests = 0;
    capture_stderr_begin(&saved, path);
    rc = s3_put(s, "k/x", "hello", 5, &e);
    logtext = capture_stderr_end(saved, path);
    ASSERT_EQ(rc, ERR_UNAVAILABLE);
    ASSERT_EQ(f.requests, 5);
    ASSERT(strstr(e.msg, "unavailable") != NULL);
    ASSERT(strstr(logtext, "SECRETFAKE456") == NULL && strstr(e.msg, "SECRETFAKE456") == NULL);
    free(logtext);
    s3_free(s);
    free(ep);
    shutdown(f.lfd, SHUT_RDWR);
    close(f.lfd);
    pthread_join(f.th, NULL);
}

/* s3_put_by ends by its deadline, retries included: a store that takes
 * the connection and never answers (each try would wait the client's
 * 10 s timeout, 5 tries: about 50 s) fails within the 800 ms given.  The
 * outbox PUTs s3_sink objects so, within a row's lease. */
TEST(put_by_ends_by_its_deadline)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(lfd >= 0);
    ASSERT_OK(bind(lfd, (struct sockaddr *)&a, sizeof a));
    ASSERT_OK(listen(lfd, 16)); /* connections wait in the backlog, unanswered */
    ASSERT_OK(getsockname(lfd, (struct sockaddr *)&a, &al));
    char *ep = xasprintf("http://127.0.0.1:%d", ntohs(a.sin_port));
    struct s3 *s = client_at(ep, "bucket", "AK", "SK", 4);
    struct err e = ERR_INIT;
    int64_t t0 = time_now_ms();
    int rc = s3_put_by(s, "k/slow", "hello", 5, t0 + 800, &e);
    int64_t took = time_now_ms() - t0;
    ASSERT(rc < 0);
    ASSERT_LT(took, 3000);
    ASSERT(took >= 700);
    /* a deadline already past: no request at all */
    t0 = time_now_ms();
    ASSERT_EQ(s3_put_by(s, "k/slow", "hello", 5, t0 - 1, &e), ERR_UNAVAILABLE);
    ASSERT(strstr(e.msg, "out of time") != NULL);
    ASSERT_LT(time_now_ms() - t0, 500);
    s3_free(s);
    free(ep);
    close(lfd);
}

/* A HEAD answered without a Content-Length: the size is unknown, an error
 * (the arrival poller must not take it for -1 bytes, under every limit). */
TEST(head_without_content_length)
{
    struct fake f;
    fake_start(&f, 0);
    f.no_length = true;
    char *ep = xasprintf("http://127.0.0.1:%d", f.port);
    struct s3 *s = client_at(ep, "bucket", "AKIDFAKE123", "SECRETFAKE456", 0);
    struct err e = ERR_INIT;
    int64_t size = 7;
    ASSERT_EQ(s3_head(s, "k/x", &size, &e), ERR_INTERNAL);
    ASSERT(strstr(e.msg, "no size") != NULL);
    ASSERT_EQ(size, 7);
    ASSERT_OK(s3_head(s, "k/x", NULL, &e)); /* only "is it there" */
    s3_free(s);
    free(ep);
    shutdown(f.lfd, SHUT_RDWR);
    close(f.lfd);
    pthread_join(f.th, NULL);
}

TEST(unreachable_endpoint)
{
    struct s3 *s = client_at("http://127.0.0.1:1", "bucket", "AK", "SK", 1);
    struct err e = ERR_INIT;
    int64_t t0 = time_mono_ms();
    ASSERT_EQ(s3_check_bucket(s, &e), ERR_UNAVAILABLE);
    ASSERT(strstr(e.msg, "cannot reach the object store at http://127.0.0.1:1") != NULL);
    ASSERT_LT(time_mono_ms() - t0, 5000);
    s3_free(s);
}

/* ---- against the store of VBATCH_TEST_S3 ------------------------------------------------ */

static struct s3_cfg live_cfg;

/* The client of VBATCH_TEST_S3 with a fresh random prefix; NULL (test
 * skipped) when unset. */
static struct s3 *live(int64_t part_size, int64_t multipart_min)
{
    const char *u = getenv("VBATCH_TEST_S3");
    struct err e = ERR_INIT;
    struct s3 *s = NULL;
    if (!u || !*u) {
        fprintf(stderr, "  skipped: VBATCH_TEST_S3 is not set\n");
        return NULL;
    }
    if (s3_cfg_parse(u, &live_cfg, &e) < 0 || s3_cfg_credentials(&live_cfg, NULL, &e) < 0)
        T_FAIL("VBATCH_TEST_S3: %s", e.msg);
    char rnd[13];
    rand_alnum(rnd, 12);
    char *pre = *live_cfg.prefix ? xasprintf("%s/t-%s", live_cfg.prefix, rnd) : xasprintf("t-%s", rnd);
    free(live_cfg.prefix);
    live_cfg.prefix = pre;
    live_cfg.part_size = part_size;
    live_cfg.multipart_min = multipart_min;
    ASSERT_OK(s3_new(&live_cfg, &s));
    return s;
}

static void live_done(struct s3 *s)
{
    s3_delete_prefix(s, "", NULL);
    s3_free(s);
    s3_cfg_free(&live_cfg);
}

TEST(live_put_get_range_head_delete)
{
    struct s3 *s = live(0, 0);
    if (!s)
        return;
    struct err e = ERR_INIT;
    ASSERT_OK(s3_check_bucket(s, &e));
    const char *text = "0123456789abcdefghij";
    ASSERT_OK(s3_put(s, "a/b/c.txt", text, 20, &e));
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(s3_get(s, "a/b/c.txt", 100, &data, &len, &e));
    ASSERT_EQ(len, 20);
    ASSERT(!memcmp(data, text, 20) && data[20] == 0);
    free(data);
    ASSERT_EQ(s3_get(s, "a/b/c.txt", 10, &data, &len, &e), ERR_LIMIT);
    char buf[16];
    size_t got = 0;
    ASSERT_OK(s3_get_range(s, "a/b/c.txt", 5, 7, buf, &got, &e));
    ASSERT_EQ(got, 7);
    ASSERT(!memcmp(buf, "56789ab", 7));
    ASSERT_OK(s3_get_range(s, "a/b/c.txt", 15, 10, buf, &got, &e));
    ASSERT_EQ(got, 5);
    ASSERT(!memcmp(buf, "fghij", 5));
    ASSERT_OK(s3_get_range(s, "a/b/c.txt", 20, 4, buf, &got, &e));
    ASSERT_EQ(got, 0);
    int64_t size = -1;
    ASSERT_OK(s3_head(s, "a/b/c.txt", &size, &e));
    ASSERT_EQ(size, 20);
    ASSERT_EQ(s3_head(s, "a/b/none", &size, &e), ERR_NOTFOUND);
    ASSERT_EQ(s3_get(s, "a/b/none", 100, &data, &len, &e), ERR_NOTFOUND);
    /* empty object, get into a file */
    ASSERT_OK(s3_put(s, "empty", NULL, 0, &e));
    char path[] = "/tmp/vbatch-s3get-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_OK(s3_get_fd(s, "a/b/c.txt", fd, &size, &e));
    ASSERT_EQ(size, 20);
    ASSERT_EQ(lseek(fd, 0, SEEK_END), 20);
    close(fd);
    unlink(path);
    ASSERT_OK(s3_head(s, "empty", &size, &e));
    ASSERT_EQ(size, 0);
    ASSERT_OK(s3_delete(s, "a/b/c.txt", &e));
    ASSERT_OK(s3_delete(s, "a/b/c.txt", &e)); /* absent: fine */
    ASSERT_EQ(s3_head(s, "a/b/c.txt", &size, &e), ERR_NOTFOUND);
    ASSERT_EQ(s3_put(s, "../x", "x", 1, &e), ERR_INVALID);
    live_done(s);
}

TEST(live_list_with_continuation_and_delete_prefix)
{
    struct s3 *s = live(0, 0);
    if (!s)
        return;
    struct err e = ERR_INIT;
    char key[64];
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "dir/k%02d", i);
        ASSERT_OK(s3_put(s, key, key, strlen(key), &e));
    }
    ASSERT_OK(s3_put(s, "other/x", "x", 1, &e));
    char *token = NULL;
    int total = 0, pages = 0;
    do {
        struct s3_obj *objs;
        int n;
        char *next = NULL;
        ASSERT_OK(s3_list(s, "dir/", token, 3, &objs, &n, &next, &e));
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof key, "dir/k%02d", total + i);
            ASSERT_STR_EQ(objs[i].key, key);
            ASSERT_EQ(objs[i].size, (int64_t)strlen(key));
        }
        total += n;
        pages++;
        s3_objs_free(objs, n);
        free(token);
        token = next;
    } while (token);
    ASSERT_EQ(total, 7);
    ASSERT_EQ(pages, 3);
    ASSERT_OK(s3_delete_prefix(s, "dir/", &e));
    struct s3_obj *objs;
    int n;
    char *next;
    ASSERT_OK(s3_list(s, "", NULL, 1000, &objs, &n, &next, &e));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(objs[0].key, "other/x");
    ASSERT(next == NULL);
    s3_objs_free(objs, n);
    live_done(s);
}

TEST(live_multipart)
{
    struct s3 *s = live(5 << 20, 5 << 20);
    if (!s)
        return;
    struct err e = ERR_INIT;
    size_t size = (11 << 20) + 12345; /* parts of 5, 5 and 1 MiB + */
    uint8_t *data = xmalloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 16));
    char path[] = "/tmp/vbatch-s3mp-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_OK(fd_write_all(fd, data, size));
    ASSERT_OK(s3_put_fd(s, "big/obj", fd, (int64_t)size, &e));
    close(fd);
    unlink(path);
    int64_t hs = 0;
    ASSERT_OK(s3_head(s, "big/obj", &hs, &e));
    ASSERT_EQ(hs, (int64_t)size);
    char *back = NULL;
    size_t len = 0;
    ASSERT_OK(s3_get(s, "big/obj", size, &back, &len, &e));
    ASSERT_EQ(len, size);
    ASSERT(!memcmp(back, data, size));
    free(back);
    /* a range across the part boundary */
    char buf[100];
    size_t got;
    ASSERT_OK(s3_get_range(s, "big/obj", (5 << 20) - 50, 100, buf, &got, &e));
    ASSERT_EQ(got, 100);
    ASSERT(!memcmp(buf, data + (5 << 20) - 50, 100));
    /* an aborted upload leaves no object */
    char *id = NULL, *etag = NULL;
    ASSERT_OK(s3_mpu_create(s, "big/aborted", &id, &e));
    ASSERT_OK(s3_mpu_part(s, "big/aborted", id, 1, data, 5 << 20, &etag, &e));
    ASSERT_OK(s3_mpu_abort(s, "big/aborted", id, &e));
    ASSERT_EQ(s3_head(s, "big/aborted", &hs, &e), ERR_NOTFOUND);
    free(id);
    free(etag);
    free(data);
    live_done(s);
}

struct body {
    const char *p;
    size_t left;
    struct buf got;
};
static size_t b_read(char *ptr, size_t size, size_t n, void *ud)
{
    struct body *b = ud;
    size_t k = size * n < b->left ? size * n : b->left;
    memcpy(ptr, b->p, k);
    b->p += k;
    b->left -= k;
    return k;
}
static size_t b_write(char *ptr, size_t size, size_t n, void *ud)
{
    buf_append(&((struct body *)ud)->got, ptr, size * n);
    return size * n;
}

/* A plain (unsigned) curl request as a client would make it: HTTP status. */
/* plain() with one more request header (NULL: none). */
static long plain_h(const char *method, const char *url, const char *data, size_t len, struct buf *out,
                    const char *header)
{
    CURL *h = curl_easy_init();
    struct body b = {data, len, BUF_INIT};
    struct curl_slist *hdrs = header ? curl_slist_append(NULL, header) : NULL;
    long code = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (hdrs)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, b_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, b_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &b);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    }
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (out) {
        buf_reset(out);
        buf_append(out, b.got.data ? b.got.data : "", b.got.len);
    }
    buf_release(&b.got);
    return code;
}

static long plain(const char *method, const char *url, const char *data, size_t len, struct buf *out)
{
    return plain_h(method, url, data, len, out, NULL);
}

TEST(live_put_once)
{
    struct s3 *s = live(0, 0);
    if (!s)
        return;
    struct err e = ERR_INIT;
    int64_t now = time_now_ms() / 1000, size = 0;
    char *put = NULL;
    struct buf out = BUF_INIT;
    /* the client's PUT with the signed If-None-Match header writes once */
    ASSERT_OK(s3_presign_put_once(s, "once/shard.tar", now, 600, -1, &put));
    ASSERT(strstr(put, "X-Amz-SignedHeaders=host%3Bif-none-match") != NULL);
    ASSERT_EQ(plain("PUT", put, "first", 5, NULL), 403); /* the header is signed: required */
    ASSERT_EQ(s3_head(s, "once/shard.tar", NULL, &e), ERR_NOTFOUND);
    ASSERT_EQ(plain_h("PUT", put, "first", 5, NULL, "If-None-Match: *"), 200);
    ASSERT_EQ(plain_h("PUT", put, "second!", 7, NULL, "If-None-Match: *"), 412);
    ASSERT_EQ(plain_h("PUT", put, "second!", 7, NULL, "If-None-Match: \"x\""), 403);
    ASSERT_OK(s3_head(s, "once/shard.tar", &size, &e));
    ASSERT_EQ(size, 5);
    /* vbatch's own PUT if absent */
    ASSERT_EQ(s3_put_new(s, "once/shard.tar", "third", 5, &e), ERR_EXISTS);
    ASSERT_OK(s3_put_new(s, "once/other", "x", 1, &e));
    ASSERT_OK(s3_get(s, "once/shard.tar", 100, &out.data, &out.len, &e));
    ASSERT(out.len == 5 && !memcmp(out.data, "first", 5));
    s3_delete(s, "once/shard.tar", &e);
    s3_delete(s, "once/other", &e);
    free(put);
    buf_release(&out);
    live_done(s);
}

TEST(live_presigned_put_and_get)
{
    struct s3 *s = live(0, 0);
    if (!s)
        return;
    struct err e = ERR_INIT;
    int64_t now = time_now_ms() / 1000;
    char *put = NULL, *get = NULL;
    struct buf out = BUF_INIT;
    ASSERT_OK(s3_presign(s, "PUT", "up/shard-1.tar", now, 600, -1, &put));
    ASSERT(strstr(put, "X-Amz-Signature=") != NULL && strstr(put, live_cfg.secret_key) == NULL);
    ASSERT_EQ(plain("PUT", put, "shard bytes", 11, NULL), 200);
    ASSERT_OK(s3_presign(s, "GET", "up/shard-1.tar", now, 600, -1, &get));
    ASSERT_EQ(plain("GET", get, NULL, 0, &out), 200);
    ASSERT_EQ(out.len, 11);
    ASSERT(!memcmp(out.data, "shard bytes", 11));
    /* tampered: another key with the same signature, or a changed expiry */
    char *t1 = xstrdup(put), *p = strstr(t1, "shard-1");
    p[6] = '2';
    ASSERT_EQ(plain("PUT", t1, "evil", 4, NULL), 403);
    char *t2 = xstrdup(get), *x = strstr(t2, "X-Amz-Expires=600");
    x[14] = '9';
    ASSERT_EQ(plain("GET", t2, NULL, 0, NULL), 403);
    /* a GET URL does not allow a PUT */
    ASSERT_EQ(plain("PUT", get, "evil", 4, NULL), 403);
    ASSERT_EQ(s3_head(s, "up/shard-2.tar", NULL, &e), ERR_NOTFOUND);
    /* expired: signed an hour ago for 60 s */
    char *old = NULL;
    ASSERT_OK(s3_presign(s, "GET", "up/shard-1.tar", now - 3600, 60, -1, &old));
    ASSERT_EQ(plain("GET", old, NULL, 0, NULL), 403);
    /* a signed content-length: any other length is refused */
    char *cl = NULL;
    ASSERT_OK(s3_presign(s, "PUT", "up/exact", now, 600, 5, &cl));
    ASSERT_EQ(plain("PUT", cl, "123456", 6, NULL), 403);
    ASSERT_EQ(s3_head(s, "up/exact", NULL, &e), ERR_NOTFOUND);
    ASSERT_EQ(plain("PUT", cl, "12345", 5, NULL), 200);
    int64_t size = 0;
    ASSERT_OK(s3_head(s, "up/exact", &size, &e));
    ASSERT_EQ(size, 5);
    ASSERT_EQ(s3_presign(s, "DELETE", "up/exact", now, 600, -1, &cl), ERR_INVALID);
    ASSERT_EQ(s3_presign(s, "GET", "up/exact", now, 604801, -1, &cl), ERR_INVALID);
    free(cl);
    free(old);
    free(t1);
    free(t2);
    free(put);
    free(get);
    buf_release(&out);
    live_done(s);
}

TEST(live_copy)
{
    struct s3 *s = live(0, 0);
    if (!s)
        return;
    struct err e = ERR_INIT;
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(s3_put(s, "b/1/u/x.tar", "shard-bytes", 11, &e));
    ASSERT_OK(s3_copy(s, "b/1/u/x.tar", "b/1/s/x.tar", &e));
    ASSERT_OK(s3_get(s, "b/1/s/x.tar", 100, &data, &len, &e));
    ASSERT(len == 11 && !memcmp(data, "shard-bytes", 11));
    free(data);
    /* the copy is its own object: a later write of the source leaves it */
    ASSERT_OK(s3_put(s, "b/1/u/x.tar", "other", 5, &e));
    ASSERT_OK(s3_get(s, "b/1/s/x.tar", 100, &data, &len, &e));
    ASSERT(len == 11 && !memcmp(data, "shard-bytes", 11));
    free(data);
    ASSERT_EQ(s3_copy(s, "b/1/u/none", "b/1/s/none", &e), ERR_NOTFOUND);
    /* a copy of the object listed only: its ETag from a listing page */
    struct s3_obj *objs = NULL;
    int n = 0;
    bool more = true;
    ASSERT_OK(s3_list_after(s, "b/1/u/", NULL, 10, &objs, &n, &more, &e));
    ASSERT(n == 1 && !more && objs[0].etag && objs[0].size == 5);
    char *etag = xstrdup(objs[0].etag);
    s3_objs_free(objs, n);
    ASSERT_OK(s3_copy_if(s, "b/1/u/x.tar", etag, "b/1/s/y.tar", &e));
    ASSERT_OK(s3_get(s, "b/1/s/y.tar", 100, &data, &len, &e));
    ASSERT(len == 5 && !memcmp(data, "other", 5));
    free(data);
    /* replaced between the listing and the copy: the copy is deleted again */
    ASSERT_OK(s3_put(s, "b/1/u/x.tar", "third!", 6, &e));
    ASSERT_EQ(s3_copy_if(s, "b/1/u/x.tar", etag, "b/1/s/z.tar", &e), ERR_EXISTS);
    ASSERT_EQ(s3_head(s, "b/1/s/z.tar", NULL, &e), ERR_NOTFOUND);
    free(etag);
    /* start-after: the keys after it only */
    ASSERT_OK(s3_list_after(s, "b/1/s/", "b/1/s/x", 10, &objs, &n, &more, &e));
    ASSERT(n == 2 && !strcmp(objs[0].key, "b/1/s/x.tar") && !strcmp(objs[1].key, "b/1/s/y.tar"));
    s3_objs_free(objs, n);
    ASSERT_OK(s3_list_after(s, "b/1/s/", "b/1/s/x", 1, &objs, &n, &more, &e));
    ASSERT(n == 1 && more);
    s3_objs_free(objs, n);
    s3_delete(s, "b/1/u/x.tar", &e);
    s3_delete(s, "b/1/s/x.tar", &e);
    s3_delete(s, "b/1/s/y.tar", &e);
    live_done(s);
}

/* radosgw 16 takes an unsigned x-amz-copy-source on a presigned PUT: the
 * probe sees the copy (docs/STORAGE.md "Copy-ins"). */
TEST(live_copy_in_probe)
{
    struct s3 *s = live(0, 0);
    if (!s)
        return;
    struct err e = ERR_INIT;
    int64_t now = time_now_ms() / 1000, size = 0;
    char *put = NULL;
    ASSERT_OK(s3_put(s, "probe/src", "0123456789", 10, &e));
    ASSERT_OK(s3_presign(s, "PUT", "probe/dst", now, 600, -1, &put));
    int rc = s3_presigned_copy_probe(s, put, "probe/src", &e);
    if (rc == 0 && s3_head(s, "probe/dst", &size, &e) == 0 && size == 10)
        printf("  (this store takes copy-ins on presigned URLs)\n");
    else
        printf("  (this store refuses copy-ins: rc %d)\n", rc);
    s3_delete(s, "probe/src", &e);
    s3_delete(s, "probe/dst", &e);
    free(put);
    live_done(s);
}

TEST(live_wrong_credentials_and_missing_bucket)
{
    struct s3 *s = live(0, 0);
    if (!s)
        return;
    struct err e = ERR_INIT;
    struct s3 *bad = client_at(live_cfg.endpoint, live_cfg.bucket, live_cfg.access_key, "wrong-secret-zz", 0);
    ASSERT_EQ(s3_check_bucket(bad, &e), ERR_AUTH);
    ASSERT(strstr(e.msg, "refused the credentials") != NULL && strstr(e.msg, "wrong-secret-zz") == NULL);
    ASSERT_EQ(s3_put(bad, "x", "x", 1, &e), ERR_AUTH);
    s3_free(bad);
    bad = client_at(live_cfg.endpoint, live_cfg.bucket, "NOSUCHKEYID", "x", 0);
    ASSERT_EQ(s3_check_bucket(bad, &e), ERR_AUTH);
    s3_free(bad);
    bad = client_at(live_cfg.endpoint, "no-such-bucket-vbatch", live_cfg.access_key, live_cfg.secret_key, 0);
    ASSERT_EQ(s3_check_bucket(bad, &e), ERR_NOTFOUND);
    ASSERT(strstr(e.msg, "no such bucket 'no-such-bucket-vbatch'") != NULL);
    ASSERT_EQ(s3_put(bad, "x", "x", 1, &e), ERR_NOTFOUND);
    s3_free(bad);
    live_done(s);
}

TEST(live_many_requests)
{
    struct s3 *s = live(0, 0);
    if (!s)
        return;
    struct err e = ERR_INIT;
    /* 200 requests in a row on the pooled connection */
    int64_t t0 = time_mono_ms();
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "r/%d", i);
        ASSERT_OK(s3_put(s, key, key, strlen(key), &e));
        ASSERT_OK(s3_head(s, key, NULL, &e));
    }
    fprintf(stderr, "  200 requests in %lld ms\n", (long long)(time_mono_ms() - t0));
    live_done(s);
}

/* ---- the blob interface on both backends ------------------------------------------------ */

struct seen {
    int n, stop_after;
    char *keys; /* "key:size " sorted */
    int64_t min_mtime, max_mtime;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int seen_one(void *ud, const char *key, int64_t size, int64_t mtime_ms)
{
    struct seen *s = ud;
    char *item = xasprintf("%s:%lld ", key, (long long)size);
    /* keep the list sorted: split, add, sort, join */
    char *parts[64];
    int n = 0;
    char *all = s->keys ? s->keys : xstrdup(""), *save = NULL;
    for (char *t = strtok_r(all, " ", &save); t && n < 63; t = strtok_r(NULL, " ", &save))
        parts[n++] = xasprintf("%s ", t);
    parts[n++] = item;
    qsort(parts, (size_t)n, sizeof parts[0], cmp_str);
    struct buf b = BUF_INIT;
    for (int i = 0; i < n; i++) {
        buf_puts(&b, parts[i]);
        free(parts[i]);
    }
    free(all);
    s->keys = buf_detach(&b, NULL);
    if (!s->n || mtime_ms < s->min_mtime)
        s->min_mtime = mtime_ms;
    if (!s->n || mtime_ms > s->max_mtime)
        s->max_mtime = mtime_ms;
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

/* Every key-based call of the blob interface on st. */
static void blob_calls(struct store *st)
{
    char *data = NULL;
    size_t len = 0, got = 0;
    int64_t size = -1;
    char buf[64];
    ASSERT_OK(store_blob_put(st, "b/ws/x/one", "hello world", 11));
    ASSERT_OK(store_blob_put_nosync(st, "b/ws/x/two", "0123456789", 10));
    ASSERT_OK(store_blob_sync(st));
    ASSERT_OK(store_blob_read(st, "b/ws/x/one", 100, &data, &len));
    ASSERT_EQ(len, 11);
    ASSERT_STR_EQ(data, "hello world");
    free(data);
    ASSERT_EQ(store_blob_read(st, "b/ws/x/one", 5, &data, &len), ERR_LIMIT);
    ASSERT_EQ(store_blob_read(st, "b/ws/x/none", 100, &data, &len), ERR_NOTFOUND);
    ASSERT_OK(store_blob_read_range(st, "b/ws/x/two", 3, 4, buf, &got));
    ASSERT_EQ(got, 4);
    ASSERT(!memcmp(buf, "3456", 4));
    ASSERT_OK(store_blob_read_range(st, "b/ws/x/two", 8, 10, buf, &got));
    ASSERT_EQ(got, 2);
    ASSERT(!memcmp(buf, "89", 2));
    ASSERT_EQ(store_blob_read_range(st, "b/ws/x/none", 0, 4, buf, &got), ERR_NOTFOUND);
    ASSERT_OK(store_blob_size(st, "b/ws/x/two", &size));
    ASSERT_EQ(size, 10);
    ASSERT_EQ(store_blob_size(st, "b/ws/x/none", &size), ERR_NOTFOUND);
    int fd = -1;
    ASSERT_OK(store_blob_open(st, "b/ws/x/one", &fd, &size));
    ASSERT_EQ(size, 11);
    ASSERT_EQ(read(fd, buf, sizeof buf), 11);
    ASSERT(!memcmp(buf, "hello world", 11));
    close(fd);
    ASSERT_EQ(store_blob_open(st, "b/ws/x/none", &fd, &size), ERR_NOTFOUND);
    /* a temp file moved in */
    char *tmp = NULL;
    ASSERT_OK(store_tmp_create(st, &tmp, &fd));
    ASSERT_OK(fd_write_all(fd, "from a file", 11));
    close(fd);
    ASSERT_OK(store_blob_put_file(st, "b/ws/y/file", tmp));
    ASSERT(access(tmp, F_OK) != 0);
    free(tmp);
    ASSERT_OK(store_blob_read(st, "b/ws/y/file", 100, &data, &len));
    ASSERT_STR_EQ(data, "from a file");
    free(data);
    /* the writer: a limit, an abort leaves nothing, a finish publishes */
    struct store_blob_writer *w = NULL;
    ASSERT_OK(store_blob_writer_open(st, "b/ws/y/w1", 8, &w));
    ASSERT_OK(store_blob_writer_write(w, "12345", 5));
    ASSERT_EQ(store_blob_writer_write(w, "6789", 4), ERR_LIMIT);
    store_blob_writer_abort(w);
    ASSERT_EQ(store_blob_size(st, "b/ws/y/w1", &size), ERR_NOTFOUND);
    ASSERT_OK(store_blob_writer_open(st, "b/ws/y/w2", 0, &w));
    ASSERT_OK(store_blob_writer_write(w, "abc", 3));
    ASSERT_OK(store_blob_writer_write(w, "def", 3));
    ASSERT_EQ(store_blob_writer_size(w), 6);
    ASSERT_OK(store_blob_writer_finish(w));
    ASSERT_OK(store_blob_read(st, "b/ws/y/w2", 100, &data, &len));
    ASSERT_STR_EQ(data, "abcdef");
    free(data);
    /* a local copy for a library that wants a file name */
    char *path = NULL;
    ASSERT_OK(store_blob_local_copy(st, "b/ws/y/w2", &path));
    ASSERT_OK(file_read_all(path, 100, &data, &len));
    ASSERT_STR_EQ(data, "abcdef");
    free(data);
    store_blob_local_release(st, path);
    /* listing: keys, sizes, times; a callback may stop it */
    struct seen sn = {0};
    ASSERT_OK(store_blob_list(st, "b/ws", seen_one, &sn));
    ASSERT_EQ(sn.n, 4);
    ASSERT_STR_EQ(sn.keys, "b/ws/x/one:11 b/ws/x/two:10 b/ws/y/file:11 b/ws/y/w2:6 ");
    ASSERT(sn.min_mtime > time_now_ms() - 600000 && sn.max_mtime < time_now_ms() + 600000);
    free(sn.keys);
    memset(&sn, 0, sizeof sn);
    sn.stop_after = 1;
    ASSERT_EQ(store_blob_list(st, "b/ws", seen_one, &sn), 7);
    ASSERT_EQ(sn.n, 1);
    free(sn.keys);
    memset(&sn, 0, sizeof sn);
    ASSERT_OK(store_blob_list(st, "b/none", seen_one, &sn));
    ASSERT_EQ(sn.n, 0);
    ASSERT_EQ(store_blob_list(st, "b/../x", seen_one, &sn), ERR_INVALID);
    /* deletes */
    ASSERT_OK(store_blob_delete(st, "b/ws/x/one"));
    ASSERT_OK(store_blob_delete(st, "b/ws/x/one"));
    ASSERT_EQ(store_blob_size(st, "b/ws/x/one", &size), ERR_NOTFOUND);
    ASSERT_OK(store_blob_delete_prefix(st, "b/ws/y"));
    ASSERT_EQ(store_blob_size(st, "b/ws/y/w2", &size), ERR_NOTFOUND);
    ASSERT_EQ(store_blob_size(st, "b/ws/y/file", &size), ERR_NOTFOUND);
    ASSERT_OK(store_blob_size(st, "b/ws/x/two", &size));
    ASSERT_EQ(store_blob_put(st, "../x", "x", 1), ERR_INVALID);
    /* temp files are all gone */
    ASSERT_EQ(store_tmp_sweep(st, 0), 0);
}

static struct store *open_store_tmp(void)
{
    char d[] = "/tmp/vbatch-s3store-XXXXXX";
    struct store *st = NULL;
    ASSERT(mkdtemp(d) != NULL);
    ASSERT_OK(store_open(d, &st));
    return st;
}

TEST(blob_interface_local)
{
    struct store *st = open_store_tmp();
    ASSERT(store_blobs_local(st));
    blob_calls(st);
    char *url = NULL;
    ASSERT_EQ(store_blob_presign(st, "GET", "b/ws/x/two", time_now_ms() / 1000 + 60, -1, &url), ERR_UNSUPPORTED);
    store_close(st);
}

TEST(blob_interface_s3)
{
    const char *u = getenv("VBATCH_TEST_S3");
    if (!u || !*u) {
        fprintf(stderr, "  skipped: VBATCH_TEST_S3 is not set\n");
        return;
    }
    struct store *st = open_store_tmp();
    struct err e = ERR_INIT;
    char rnd[13];
    rand_alnum(rnd, 12);
    /* the same bucket under a fresh prefix */
    const char *q = strchr(u, '?');
    size_t bl = q ? (size_t)(q - u) : strlen(u);
    char *url = xasprintf("%.*s/unit-%s%s", (int)bl, u, rnd, q ? q : "");
    ASSERT_OK(store_blobs_configure(st, url, NULL, NULL, &e));
    ASSERT(!store_blobs_local(st));
    ASSERT(strstr(store_blobs_name(st), rnd) != NULL);
    blob_calls(st);
    /* nothing of it in the data folder */
    char *bd = xasprintf("%s/blobs/b", store_data_dir(st));
    ASSERT(access(bd, F_OK) != 0);
    free(bd);
    /* a presigned GET of a blob works with a plain client */
    char *get = NULL;
    struct buf out = BUF_INIT;
    ASSERT_OK(store_blob_presign(st, "GET", "b/ws/x/two", time_now_ms() / 1000 + 60, -1, &get));
    ASSERT_EQ(plain("GET", get, NULL, 0, &out), 200);
    ASSERT_EQ(out.len, 10);
    ASSERT_OK(store_blob_delete_prefix(st, "b"));
    ASSERT_EQ(store_blob_size(st, "b/ws/x/two", NULL), ERR_NOTFOUND);
    buf_release(&out);
    free(get);
    free(url);
    store_close(st);
}

TEST_MAIN()
