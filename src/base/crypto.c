/*
 * crypto.c — randomness, SHA-256, HMAC, hex and base64.  Hashing goes
 * through OpenSSL's libcrypto; randomness through getrandom(2).
 */
#include "base/base.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void rand_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "vbatch: getrandom failed\n");
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

void rand_alnum(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t r[64];
    size_t i = 0;
    while (i < len) {
        rand_bytes(r, sizeof r);
        for (size_t k = 0; k < sizeof r && i < len; k++)
            if (r[k] < 252) /* 252 = 7*36: unbiased */
                out[i++] = alphabet[r[k] % 36];
    }
    out[len] = 0;
}

void uuid4(char out[37])
{
    uint8_t u[16];
    rand_bytes(u, sizeof u);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
             u[13], u[14], u[15]);
}

void sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n);
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

int hex_decode(const char *in, size_t hexlen, uint8_t *out)
{
    if (hexlen % 2)
        return ERR_PARSE;
    for (size_t i = 0; i < hexlen / 2; i++) {
        int h = hex_digit((unsigned char)in[2 * i]), l = hex_digit((unsigned char)in[2 * i + 1]);
        if (h < 0 || l < 0)
            return ERR_PARSE;
        out[i] = (uint8_t)(h << 4 | l);
    }
    return 0;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64_enc(const void *data, size_t len, const char *alpha, bool pad)
{
    const uint8_t *p = data;
    char *out = xmalloc((len + 2) / 3 * 4 + 1), *w = out;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *w++ = alpha[v >> 18 & 63];
        *w++ = alpha[v >> 12 & 63];
        *w++ = alpha[v >> 6 & 63];
        *w++ = alpha[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        *w++ = alpha[v >> 18 & 63];
        *w++ = alpha[v >> 12 & 63];
        if (i + 1 < len)
            *w++ = alpha[v >> 6 & 63];
        else if (pad)
            *w++ = '=';
        if (pad)
            *w++ = '=';
    }
    *w = 0;
    return out;
}

static uint8_t *b64_dec(const char *s, size_t len, size_t *outlen, bool url)
{
    while (len > 0 && s[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return NULL;
    uint8_t *out = try_alloc(len / 4 * 3 + 3, 1);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == (url ? '-' : '+'))
            v = 62;
        else if (c == (url ? '_' : '/'))
            v = 63;
        else {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    *outlen = o;
    return out;
}

char *base64_encode(const void *data, size_t len) { return b64_enc(data, len, b64std, true); }
uint8_t *base64_decode(const char *s, size_t len, size_t *outlen) { return b64_dec(s, len, outlen, false); }
char *base64url_encode(const void *data, size_t len) { return b64_enc(data, len, b64url, false); }
uint8_t *base64url_decode(const char *s, size_t len, size_t *outlen) { return b64_dec(s, len, outlen, true); }

bool ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

/* ---- page tokens ----------------------------------------------------------------------- */

#define PAGE_TOKEN_MAX 64 /* decoded bytes: "p1:" + 19 digits + ":" + 8 hex */

static void page_tag(const char *scope, char tag[9])
{
    uint8_t h[32];
    sha256(scope, strlen(scope), h);
    hex_encode(h, 4, tag);
}

char *page_token_make(const char *scope, int64_t last)
{
    char tag[9], raw[PAGE_TOKEN_MAX];
    page_tag(scope, tag);
    int n = snprintf(raw, sizeof raw, "p1:%lld:%s", (long long)last, tag);
    return base64url_encode(raw, (size_t)n);
}

int page_token_parse(const char *scope, const char *tok, int64_t *last)
{
    char tag[9];
    size_t n = 0, i = 3, len;
    int64_t v = 0;
    uint8_t *raw;
    int rc = ERR_INVALID;

    *last = 0;
    if (!tok || !*tok)
        return 0;
    len = strlen(tok);
    if (len > (PAGE_TOKEN_MAX * 4 + 2) / 3)
        return ERR_INVALID;
    raw = base64url_decode(tok, len, &n);
    if (!raw || n < 3 + 1 + 1 + 8 || memcmp(raw, "p1:", 3) != 0)
        goto out;
    /* at most 18 digits: v * 10 cannot overflow */
    for (; i < n && i < 3 + 18 && raw[i] >= '0' && raw[i] <= '9'; i++)
        v = v * 10 + (raw[i] - '0');
    if (i == 3 || i + 1 + 8 != n || raw[i] != ':')
        goto out;
    page_tag(scope, tag);
    if (memcmp(raw + i + 1, tag, 8) != 0)
        goto out;
    *last = v;
    rc = 0;
out:
    free(raw);
    return rc;
}
