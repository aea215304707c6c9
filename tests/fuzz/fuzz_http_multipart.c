/*
 * fuzz_http_multipart.c — libFuzzer target for the multipart/form-data
 * parser.  Input: first line = Content-Type header value, next byte = chunk
 * size seed, the rest = the body, fed in chunks of that size so that every
 * split point of the state machine is exercised.
 */
#include "http/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fz {
    size_t bytes;
    int open;
};

static int fz_begin(void *arg, const struct http_mp_part *p)
{
    struct fz *f = arg;
    if (f->open)
        abort(); /* part_begin twice without part_end */
    f->open = 1;
    if (p->name)
        f->bytes += strlen(p->name);
    if (p->filename)
        f->bytes += strlen(p->filename);
    return 0;
}
static int fz_data(void *arg, const char *d, size_t n)
{
    struct fz *f = arg;
    if (!f->open || n == 0)
        abort();
    volatile char c = d[0];
    c = d[n - 1];
    (void)c;
    f->bytes += n;
    return 0;
}
static int fz_end(void *arg)
{
    struct fz *f = arg;
    if (!f->open)
        abort();
    f->open = 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || (size_t)(nl - data) > 200 || nl + 1 >= data + size)
        return 0;
    char ct[256];
    memcpy(ct, data, (size_t)(nl - data));
    ct[nl - data] = '\0';
    size_t step = (size_t)nl[1] % 17 + 1;
    const uint8_t *body = nl + 2;
    size_t len = size - (size_t)(body - data);
    struct fz f = {0, 0};
    struct http_mp_cb cb = {fz_begin, fz_data, fz_end, &f};
    struct http_multipart *mp = NULL;
    if (http_multipart_new(ct, &cb, &mp) < 0)
        return 0;
    /* copy each chunk to its own heap block so ASan sees any over-read */
    int rc = -1;
    for (size_t pos = 0; pos < len;) {
        size_t n = step < len - pos ? step : len - pos;
        char *chunk = malloc(n);
        memcpy(chunk, body + pos, n);
        rc = http_multipart_feed(mp, chunk, n);
        free(chunk);
        pos += n;
        if (rc != -10003 /* ERR_AGAIN */)
            break;
    }
    (void)http_multipart_finish(mp);
    http_multipart_free(mp);
    return 0;
}
