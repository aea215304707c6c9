#include "base/base.h"

#include <jansson.h>
#include "t.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

TEST(buf_limits)
{
    struct buf b;
    buf_init(&b, 8);
    ASSERT_OK(buf_puts(&b, "12345678"));
    ASSERT_EQ(buf_puts(&b, "9"), ERR_LIMIT);
    ASSERT_STR_EQ(b.data, "12345678");
    buf_release(&b);
    buf_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        ASSERT_OK(buf_printf(&b, "%d,", i));
    ASSERT(str_has_prefix(b.data, "0,1,2,"));
    ASSERT(str_has_suffix(b.data, "999,"));
    buf_release(&b);
}

TEST(hmac_known_vector)
{
    /* RFC 4231 test case 2 */
    uint8_t mac[32];
    char hex[65];
    const char *data = "what do ya want for nothing?";
    hmac_sha256("Jefe", 4, data, strlen(data), mac);
    hex_encode(mac, 32, hex);
    ASSERT_STR_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    sha256("abc", 3, mac);
    hex_encode(mac, 32, hex);
    ASSERT_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(base64_roundtrip)
{
    const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *e = base64_encode(cases[i], strlen(cases[i]));
        ASSERT_STR_EQ(e, want[i]);
        size_t n;
        uint8_t *d = base64_decode(e, strlen(e), &n);
        ASSERT(d);
        ASSERT_EQ(n, strlen(cases[i]));
        ASSERT(memcmp(d, cases[i], n) == 0);
        free(d);
        free(e);
    }
    size_t n;
    ASSERT(base64_decode("Zm9v!", 5, &n) == NULL);
    char *u = base64url_encode("\xfb\xff", 2);
    ASSERT_STR_EQ(u, "-_8");
    free(u);
}

TEST(ids_and_urls)
{
    ASSERT(id_valid("batch-1_x", 64));
    ASSERT(!id_valid("Batch", 64));
    ASSERT(!id_valid("", 64));
    ASSERT(!id_valid("a/b", 64));
    ASSERT(!id_valid("abcdef", 5));
    char s[] = "a%20b+c%2F";
    ASSERT_EQ(url_decode(s, true), 6);
    ASSERT_STR_EQ(s, "a b c/");
    char bad[] = "%zz";
    ASSERT_EQ(url_decode(bad, false), ERR_PARSE);
    char *e = url_encode("a b/c");
    ASSERT_STR_EQ(e, "a%20b%2Fc");
    free(e);
    char id[37];
    uuid4(id);
    ASSERT_EQ(strlen(id), 36);
    ASSERT_EQ(id[14], '4');
}

TEST(utf8_scrub_replaces_what_is_not_utf8)
{
    char ok[] = "plain \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    utf8_scrub(ok);
    ASSERT_STR_EQ(ok, "plain \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    char latin1[] = "Ger\xe4t bereit";          /* Latin-1, not UTF-8 */
    utf8_scrub(latin1);
    ASSERT_STR_EQ(latin1, "Ger?t bereit");
    char cut[] = "ab\xe8\xae";                    /* a 3-byte character cut after 2 */
    utf8_scrub(cut);
    ASSERT_STR_EQ(cut, "ab??");
    char bad[] = "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\x80|\xff"; /* overlong, surrogate, > U+10FFFF, stray */
    utf8_scrub(bad);
    ASSERT(utf8_valid(bad));
    ASSERT_STR_EQ(bad, "??|???|????|?|?");
}

TEST(time_roundtrip)
{
    char s[TIME_ISO_LEN];
    time_iso8601(1764388510123LL, s);
    ASSERT_STR_EQ(s, "2025-11-29T03:55:10.123Z");
    int64_t ms;
    ASSERT_OK(time_parse_iso8601(s, &ms));
    ASSERT_EQ(ms, 1764388510123LL);
    ASSERT_OK(time_parse_iso8601("2025-11-29T05:55:10+02:00", &ms));
    ASSERT_EQ(ms, 1764388510000LL);
    ASSERT_EQ(time_parse_iso8601("2025-11-29 05:55", &ms), ERR_PARSE);
}

TEST(try_alloc_fault)
{
    try_alloc_fail_at(2);
    void *a = try_alloc(10, 1);
    void *b = try_alloc(10, 1);
    ASSERT(a && !b);
    free(a);
    try_alloc_fail_at(0);
    ASSERT(try_alloc(SIZE_MAX / 2, 4) == NULL);
}

TEST(atomic_write)
{
    char dir[] = "/tmp/vbt-XXXXXX";
    ASSERT(mkdtemp(dir));
    char *p = xasprintf("%s/a/b/f.txt", dir);
    char *d = xasprintf("%s/a/b", dir);
    ASSERT_OK(mkdir_p(d, 0755));
    ASSERT_OK(file_write_atomic(p, "hello", 5));
    char *got;
    size_t n;
    ASSERT_OK(file_read_all(p, 100, &got, &n));
    ASSERT_STR_EQ(got, "hello");
    free(got);
    ASSERT_EQ(file_read_all(p, 3, &got, &n) , ERR_LIMIT);
    free(p);
    free(d);
}

TEST(page_tokens_bound_to_scope)
{
    int64_t v = -1;
    char *t = page_token_make("items|ws|b1|", 123456789012345LL);
    ASSERT_OK(page_token_parse("items|ws|b1|", t, &v));
    ASSERT_EQ(v, 123456789012345LL);
    /* another listing's token, a tampered one, garbage: refused */
    ASSERT_EQ(page_token_parse("items|ws|b2|", t, &v), ERR_INVALID);
    ASSERT_EQ(page_token_parse("items|other|b1|", t, &v), ERR_INVALID);
    t[3] = t[3] == 'A' ? 'B' : 'A';
    ASSERT_EQ(page_token_parse("items|ws|b1|", t, &v), ERR_INVALID);
    free(t);
    static const char *const bad[] = {"garbage", "%%%", "p1", "-1", "0", "AAAA"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        ASSERT_EQ(page_token_parse("s", bad[i], &v), ERR_INVALID);
    char *big = xmalloc(10001);
    memset(big, 'A', 10000);
    big[10000] = 0;
    ASSERT_EQ(page_token_parse("s", big, &v), ERR_INVALID);
    free(big);
    /* forged raw contents: too many digits, no digits, missing tag */
    static const char *const raw[] = {"p1:9999999999999999999:00000000", "p1::00000000", "p1:5", "p1:5:",
                                      "k1:5"};
    for (size_t i = 0; i < ARRAY_LEN(raw); i++) {
        char *e = base64url_encode(raw[i], strlen(raw[i]));
        ASSERT_EQ(page_token_parse("s", e, &v), ERR_INVALID);
        free(e);
    }
    /* none: the first page */
    ASSERT_OK(page_token_parse("s", NULL, &v));
    ASSERT_EQ(v, 0);
    ASSERT_OK(page_token_parse("s", "", &v));
}

/* n arrays nested, innermost holding v: "[[[1]]]" */
static char *nested(int n, const char *open, const char *close, const char *v)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < n; i++)
        buf_puts(&b, open);
    buf_puts(&b, v);
    for (int i = 0; i < n; i++)
        buf_puts(&b, close);
    return buf_detach(&b, NULL);
}

TEST(json_parse_outside_depth)
{
    char err[300];
    json_t *j = NULL;
    char *t;

    /* exactly the limit: parsed */
    t = nested(JSON_MAX_DEPTH, "[", "]", "1");
    ASSERT_OK(json_parse_outside(t, strlen(t), 0, &j, err, sizeof err));
    ASSERT(json_is_array(j));
    json_decref(j);
    free(t);
    /* one more, arrays or objects or a mix: refused, naming the limit */
    static const char *const opens[][2] = {{"[", "]"}, {"{\"k\":", "}"}, {"[{\"a\":[", "]}]"}};
    for (size_t i = 0; i < ARRAY_LEN(opens); i++) {
        int per = i == 2 ? 3 : 1;
        t = nested(JSON_MAX_DEPTH / per + 1, opens[i][0], opens[i][1], "1");
        j = NULL;
        ASSERT_EQ(json_parse_outside(t, strlen(t), 0, &j, err, sizeof err), ERR_LIMIT);
        ASSERT(j == NULL);
        ASSERT(strstr(err, "limit of 64 levels"));
        free(t);
    }
    /* 2000 levels (what jansson alone accepts) */
    t = nested(2000, "[", "]", "");
    ASSERT_EQ(json_parse_outside(t, strlen(t), JSON_DECODE_ANY, &j, NULL, 0), ERR_LIMIT);
    free(t);
    /* brackets inside strings (escaped quotes too) do not count */
    t = nested(200, "[", "]", "");
    char *s = xasprintf("{\"a\":\"%s\\\"[[[\",\"b\":[1]}", t);
    ASSERT_OK(json_parse_outside(s, strlen(s), JSON_REJECT_DUPLICATES, &j, err, sizeof err));
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(j, "b"), 0)), 1);
    json_decref(j);
    free(s);
    free(t);
    /* malformed but shallow: the parser's message with line and column */
    ASSERT_EQ(json_parse_outside("{\"a\":", 5, 0, &j, err, sizeof err), ERR_PARSE);
    ASSERT(strstr(err, "line 1"));
    ASSERT_EQ(json_parse_outside("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &j, err, sizeof err), ERR_PARSE);
    ASSERT_EQ(json_parse_outside(NULL, 0, 0, &j, err, sizeof err), ERR_PARSE);
}

TEST(err_objects)
{
    struct err e = ERR_INIT;
    /* a failure's message and code travel in the caller's object */
    ASSERT_EQ(err_set(&e, ERR_NOTFOUND, "batch '%s' not found", "b1"), ERR_NOTFOUND);
    ASSERT_EQ(e.code, ERR_NOTFOUND);
    ASSERT_STR_EQ(err_text(&e, ERR_NOTFOUND), "batch 'b1' not found");
    ASSERT_EQ(err_prefix(&e, ERR_NOTFOUND, "cannot read '%s'", "x"), ERR_NOTFOUND);
    ASSERT_STR_EQ(e.msg, "cannot read 'x': batch 'b1' not found");
    /* nothing written: the code's text, never another call's */
    struct err f = ERR_INIT;
    ASSERT_STR_EQ(err_text(&f, ERR_INTERNAL), "internal error");
    ASSERT_STR_EQ(err_text(NULL, ERR_NOSPACE), "storage full");
    err_prefix(&f, -ENOSPC, "cannot store the image");
    ASSERT_STR_EQ(f.msg, "cannot store the image: storage full");
    /* NULL: the code only */
    ASSERT_EQ(err_set(NULL, ERR_INVALID, "x"), ERR_INVALID);
    err_printf(NULL, "y");
    /* a long prefix and message are cut, still terminated */
    char big[2 * ERR_MSG_MAX];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    err_set(&e, ERR_INVALID, "%s", big);
    ASSERT_EQ(strlen(e.msg), (size_t)ERR_MSG_MAX - 1);
    err_prefix(&e, ERR_INVALID, "%s", big);
    ASSERT_EQ(strlen(e.msg), (size_t)ERR_MSG_MAX - 1);
    err_clear(&e);
    ASSERT_STR_EQ(e.msg, "");
    ASSERT_EQ(e.code, 0);
    /* storage full, one code */
    ASSERT_EQ(err_errno(ENOSPC), ERR_NOSPACE);
    ASSERT_EQ(err_errno(EDQUOT), ERR_NOSPACE);
    ASSERT_EQ(err_errno(EIO), -EIO);
    ASSERT(err_is_nospace(ERR_NOSPACE) && err_is_nospace(-ENOSPC) && err_is_nospace(-EDQUOT));
    ASSERT(!err_is_nospace(ERR_INTERNAL) && !err_is_nospace(-EIO));
    ASSERT_STR_EQ(err_str(-ENOSPC), "storage full");
}

/* Is s well-formed UTF-8 (no sequence cut short)? */
static bool utf8_whole(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 0;
        if (!n)
            return false;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* A message cut at ERR_MSG_MAX ends at a character boundary: every shift
 * of 2-, 3- and 4-byte characters against the cut, through err_set,
 * err_printf and both parts of err_prefix. */
TEST(err_cut_at_utf8_boundary)
{
    static const char *const chars[3] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (int c = 0; c < 3; c++) {
        for (int shift = 0; shift < 4; shift++) {
            char big[2 * ERR_MSG_MAX], pre[8] = "";
            size_t at = 0, cl = strlen(chars[c]);
            memset(pre, 'a', (size_t)shift);
            while (at + cl < sizeof big) {
                memcpy(big + at, chars[c], cl);
                at += cl;
            }
            big[at] = 0;
            struct err e = ERR_INIT;
            err_set(&e, ERR_INVALID, "%s%s", pre, big);
            ASSERT(utf8_whole(e.msg));
            ASSERT(strlen(e.msg) >= (size_t)ERR_MSG_MAX - 4);
            err_printf(&e, "%s%s", pre, big);
            ASSERT(utf8_whole(e.msg));
            /* the old message cut after a prefix */
            err_set(&e, ERR_INVALID, "%s", big);
            err_prefix(&e, ERR_INVALID, "step%s", pre);
            ASSERT(utf8_whole(e.msg));
            ASSERT(strlen(e.msg) >= (size_t)ERR_MSG_MAX - 4);
            /* the prefix itself cut */
            err_prefix(&e, ERR_INVALID, "%s%s", pre, big);
            ASSERT(utf8_whole(e.msg));
            ASSERT(strlen(e.msg) >= (size_t)ERR_MSG_MAX - 4);
        }
    }
    /* a message that fits keeps every byte, even one not valid UTF-8 */
    struct err f = ERR_INIT;
    err_set(&f, ERR_INVALID, "name \xc3");
    ASSERT_STR_EQ(f.msg, "name \xc3");
}

/* ---- metrics registry (metrics.c) ------------------------------------------ */

static char *render(void)
{
    struct buf b = BUF_INIT;
    metrics_render(&b);
    return buf_detach(&b, NULL);
}

TEST(metrics_counters_labels_and_text)
{
    metric_count(METRIC_INGEST_ITEMS, 3, "image", NULL, NULL);
    metric_count(METRIC_INGEST_ITEMS, 2, "image", NULL, NULL);
    struct metric_series *s = metric_series_get(METRIC_INGEST_ITEMS, "image", NULL, NULL);
    ASSERT(s == metric_series_get(METRIC_INGEST_ITEMS, "image", NULL, NULL)); /* one series per label set */
    metric_series_add(s, 1);
    metric_count(METRIC_HTTP_REQUESTS, 1, "GET", "/a/{id}", "404");
    metric_count(METRIC_HTTP_REQUESTS, 1, "GET", "/a/{id}", "200");
    metric_count(METRIC_BLOB_ERRORS, 1, "wr\"i\\te\nx", NULL, NULL); /* escaped, not trusted */
    metric_observe(METRIC_HTTP_DURATION, 0.003, "GET", "/a/{id}", NULL);
    metric_observe(METRIC_HTTP_DURATION, 20, "GET", "/a/{id}", NULL);
    metric_set(METRIC_WORKER_HEARTBEAT_TIME, 1234.5);
    char *t = render();
    ASSERT(strstr(t, "# TYPE vbatch_ingest_items_total counter\n"));
    ASSERT(strstr(t, "\nvbatch_ingest_items_total{kind=\"image\"} 6\n"));
    ASSERT(strstr(t, "\nvbatch_http_requests_total{method=\"GET\",route=\"/a/{id}\",status=\"404\"} 1\n"));
    ASSERT(strstr(t, "\nvbatch_http_requests_total{method=\"GET\",route=\"/a/{id}\",status=\"200\"} 1\n"));
    ASSERT(strstr(t, "\nvbatch_blob_errors_total{op=\"wr\\\"i\\\\te\\nx\"} 1\n"));
    /* histogram: cumulative buckets, +Inf = _count */
    ASSERT(strstr(t, "\nvbatch_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a/{id}\",le=\"0.0025\"} 0\n"));
    ASSERT(strstr(t, "\nvbatch_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a/{id}\",le=\"0.005\"} 1\n"));
    ASSERT(strstr(t, "\nvbatch_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a/{id}\",le=\"10\"} 1\n"));
    ASSERT(strstr(t, "\nvbatch_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a/{id}\",le=\"+Inf\"} 2\n"));
    ASSERT(strstr(t, "\nvbatch_http_request_duration_seconds_sum{method=\"GET\",route=\"/a/{id}\"} 20.003\n"));
    ASSERT(strstr(t, "\nvbatch_http_request_duration_seconds_count{method=\"GET\",route=\"/a/{id}\"} 2\n"));
    /* unlabelled families are there before their first bump */
    ASSERT(strstr(t, "\nvbatch_webhook_failures_total 0\n"));
    ASSERT(strstr(t, "\nvbatch_worker_last_heartbeat_timestamp_seconds 1234.5\n"));
    free(t);
}

TEST(metrics_cardinality_cap)
{
    char v[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(v, sizeof v, "m%d", i);
        metric_observe(METRIC_MODEL_INFER, 0.01, v, NULL, NULL);
    }
    char *t = render();
    int n = 0;
    for (const char *p = t; (p = strstr(p, "vbatch_model_inference_seconds_count{")); p++)
        n++;
    ASSERT_EQ(n, 400); /* 399 models and "other" */
    ASSERT(strstr(t, "vbatch_model_inference_seconds_count{model=\"other\"} 601\n"));
    free(t);
    /* a long value is cut, so it cannot grow the page without bound */
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT(metric_series_get(METRIC_INGEST_BYTES, big, NULL, NULL) ==
           metric_series_get(METRIC_INGEST_BYTES, big + 600 - 1 - METRIC_LABEL_MAX, NULL, NULL));
}

static void *mt_bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        metric_count(METRIC_HTTP_REQUESTS, 1, "PUT", i % 2 ? "/x" : "/y", "200");
        metric_observe(METRIC_HTTP_DURATION, 0.5, "PUT", "/x", NULL);
    }
    return NULL;
}

TEST(metrics_threads)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, mt_bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *t = render();
    ASSERT(strstr(t, "vbatch_http_requests_total{method=\"PUT\",route=\"/x\",status=\"200\"} 40000\n"));
    ASSERT(strstr(t, "vbatch_http_requests_total{method=\"PUT\",route=\"/y\",status=\"200\"} 40000\n"));
    ASSERT(strstr(t, "vbatch_http_request_duration_seconds_count{method=\"PUT\",route=\"/x\"} 80000\n"));
    ASSERT(strstr(t, "vbatch_http_request_duration_seconds_sum{method=\"PUT\",route=\"/x\"} 40000\n"));
    free(t);
}

TEST(metrics_process)
{
    struct buf b = BUF_INIT;
    metrics_process_init();
    metrics_render_process(&b);
    ASSERT(strstr(b.data, "\nprocess_resident_memory_bytes "));
    ASSERT(strstr(b.data, "\nprocess_open_fds "));
    ASSERT(strstr(b.data, "# TYPE process_cpu_seconds_total counter\n"));
    ASSERT(strstr(b.data, "\nprocess_start_time_seconds "));
    buf_release(&b);
}

TEST_MAIN()
