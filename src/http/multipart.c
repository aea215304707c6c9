/*
 * multipart.c — incremental multipart/form-data parser (RFC 2046 / 7578).
 *
 * The body is a sequence of parts separated by the delimiter
 * DELIM = CRLF "--" boundary.  The parser treats the stream as if it began
 * with a CRLF, so the first delimiter (which may sit at offset 0) needs no
 * special case: it starts in state PREAMBLE with two bytes of DELIM already
 * matched.
 *
 *   PREAMBLE ──DELIM──► AFTER_DELIM ──"--"──► EPILOGUE (done, ignore rest)
 *                           │ [LWSP] CRLF
 *                           ▼
 *                        HEADERS ──CRLFCRLF──► BODY ──DELIM──► AFTER_DELIM
 *
 * Delimiter search keeps no copy of the input: 'match' counts how many
 * bytes of DELIM the input has matched so far, and those withheld bytes are
 * by construction equal to DELIM[0..match).  A boundary cannot contain CR
 * (RFC 2046 bchars), so CR occurs in DELIM only at index 0: on a mismatch
 * no proper suffix of the withheld bytes can start a new match, and they
 * are released as data from DELIM itself before the mismatching byte is
 * looked at again.  Every input byte is read at most twice and no byte past
 * 'len' is ever read.
 *
 * Limits: boundary ≤ 70 chars, one part's header block ≤ HTTP_MP_MAX_HEADER,
 * at most HTTP_MP_MAX_PARTS parts, ≤ 64 bytes of padding after a delimiter.
 *
 * Thread safety: a parser belongs to one request (one thread).
 */
#include "http/http.h"

#include "base/base.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum mp_state {
    MP_PREAMBLE,
    MP_AFTER_DELIM, /* saw DELIM; expecting "--" or [LWSP] CRLF */
    MP_DASH2,       /* saw "-", expecting the second "-" */
    MP_AFTER_CR,    /* saw CR after the delimiter, expecting LF */
    MP_HEADERS,
    MP_BODY,
    MP_EPILOGUE,
    MP_ERROR,
};

struct http_multipart {
    enum mp_state state;
    int err;             /* the error, in MP_ERROR */
    char delim[80];      /* CRLF "--" boundary */
    size_t dlen;
    size_t match;        /* bytes of delim matched (withheld) */
    unsigned pad;        /* padding bytes seen after a delimiter */
    unsigned parts;      /* parts started */
    struct buf hdr;      /* current header block, capped */
    struct http_mp_cb cb;
};

/* Find parameter 'key' in a header value like `form-data; name="a"; x=y`.
 * Writes the unquoted value to out (cap bytes) and returns 0, ERR_NOTFOUND
 * when absent, ERR_PARSE/ERR_LIMIT on bad syntax or length. */
static int mp_param(const char *v, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = strchr(v, ';');

    while (p) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        size_t nlen = (size_t)(p - name);
        while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
            nlen--;
        bool want = nlen == klen && strncasecmp(name, key, klen) == 0;
        if (*p != '=') {
            p = *p == ';' ? p : NULL;
            continue;
        }
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (want) {
                    if (n + 1 >= cap)
                        return ERR_LIMIT;
                    out[n++] = *p;
                }
                p++;
            }
            if (*p != '"')
                return ERR_PARSE;
            p++;
        } else {
            while (*p && *p != ';' && *p != ' ' && *p != '\t') {
                if (want) {
                    if (n + 1 >= cap)
                        return ERR_LIMIT;
                    out[n++] = *p;
                }
                p++;
            }
        }
        if (want) {
            out[n] = '\0';
            return 0;
        }
        p = strchr(p, ';');
    }
    return ERR_NOTFOUND;
}

int http_multipart_new(const char *content_type, const struct http_mp_cb *cb,
                       struct http_multipart **out)
{
    char boundary[128];
    struct http_multipart *mp;
    int rc;

    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0 ||
        (content_type[19] != ';' && content_type[19] != ' ' && content_type[19] != '\0'))
        return ERR_PARSE;
    rc = mp_param(content_type, "boundary", boundary, sizeof(boundary));
    if (rc < 0)
        return ERR_PARSE;
    size_t blen = strlen(boundary);
    if (blen == 0 || blen > 70)
        return ERR_PARSE;
    for (size_t i = 0; i < blen; i++)
        if (boundary[i] == '\r' || boundary[i] == '\n' || (unsigned char)boundary[i] < 0x20)
            return ERR_PARSE;
    mp = xcalloc(1, sizeof(*mp));
    mp->dlen = (size_t)snprintf(mp->delim, sizeof(mp->delim), "\r\n--%s", boundary);
    mp->state = MP_PREAMBLE;
    mp->match = 2; /* the virtual CRLF before the first delimiter */
    buf_init(&mp->hdr, HTTP_MP_MAX_HEADER);
    mp->cb = *cb;
    *out = mp;
    return 0;
}

void http_multipart_free(struct http_multipart *mp)
{
    if (!mp)
        return;
    buf_release(&mp->hdr);
    free(mp);
}

/* Parse the collected header block (without its final CRLFCRLF) and start
 * the part. */
static int mp_headers_done(struct http_multipart *mp)
{
    char name[256], filename[1024], ctype[256];
    struct http_mp_part part = {NULL, NULL, NULL};
    char *line = mp->hdr.data ? mp->hdr.data : (char *)"";
    int rc;

    if (++mp->parts > HTTP_MP_MAX_PARTS)
        return ERR_LIMIT;
    /* read as C strings below: a NUL would hide the rest of a header (a
     * filename "a.png\0.exe" read as "a.png"), as %00 did in the path */
    if (mp->hdr.len && memchr(mp->hdr.data, '\0', mp->hdr.len))
        return ERR_PARSE;
    while (*line) {
        char *eol = strstr(line, "\r\n");
        if (eol)
            *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            if (!strcasecmp(line, "Content-Disposition")) {
                if (strncasecmp(v, "form-data", 9) != 0)
                    return ERR_PARSE;
                rc = mp_param(v, "name", name, sizeof(name));
                if (rc == 0)
                    part.name = name;
                else if (rc != ERR_NOTFOUND)
                    return rc;
                rc = mp_param(v, "filename", filename, sizeof(filename));
                if (rc == 0)
                    part.filename = filename;
                else if (rc != ERR_NOTFOUND)
                    return rc;
            } else if (!strcasecmp(line, "Content-Type")) {
                size_t n = strlen(v);
                if (n >= sizeof(ctype))
                    return ERR_LIMIT;
                memcpy(ctype, v, n + 1);
                part.content_type = ctype;
            }
        } else if (*line != ' ' && *line != '\t') {
            return ERR_PARSE; /* not a header line (and not a continuation) */
        }
        if (!eol)
            break;
        line = eol + 2;
    }
    buf_reset(&mp->hdr);
    return mp->cb.part_begin ? mp->cb.part_begin(mp->cb.arg, &part) : 0;
}

static int mp_emit(struct http_multipart *mp, const char *p, size_t n)
{
    if (n == 0 || mp->state != MP_BODY || !mp->cb.part_data)
        return 0;
    return mp->cb.part_data(mp->cb.arg, p, n);
}

/* Delimiter found: end the current part if any. */
static int mp_delim_found(struct http_multipart *mp)
{
    int rc = 0;
    if (mp->state == MP_BODY && mp->cb.part_end)
        rc = mp->cb.part_end(mp->cb.arg);
    mp->state = MP_AFTER_DELIM;
    mp->match = 0;
    mp->pad = 0;
    return rc;
}

/* Scan data in PREAMBLE or BODY; returns bytes consumed (stops right after
 * a delimiter) or <0. */
static long mp_scan(struct http_multipart *mp, const char *data, size_t len)
{
    size_t pos = 0;
    int rc;

    while (pos < len) {
        if (mp->match > 0) {
            while (mp->match < mp->dlen && pos < len && data[pos] == mp->delim[mp->match]) {
                mp->match++;
                pos++;
            }
            if (mp->match == mp->dlen) {
                rc = mp_delim_found(mp);
                return rc < 0 ? rc : (long)pos;
            }
            if (pos == len)
                break; /* partial match continues in the next chunk */
            /* Mismatch: the withheld bytes were data after all. */
            rc = mp_emit(mp, mp->delim, mp->match);
            mp->match = 0;
            if (rc < 0)
                return rc;
            continue; /* look at data[pos] again */
        }
        const char *cr = memchr(data + pos, '\r', len - pos);
        size_t end = cr ? (size_t)(cr - data) : len;
        rc = mp_emit(mp, data + pos, end - pos);
        if (rc < 0)
            return rc;
        pos = end;
        if (cr) {
            mp->match = 1;
            pos++;
        }
    }
    return (long)pos;
}

static int mp_fail(struct http_multipart *mp, int err)
{
    mp->state = MP_ERROR;
    mp->err = err;
    return err;
}

int http_multipart_feed(struct http_multipart *mp, const char *data, size_t len)
{
    size_t pos = 0;
    int rc;

    while (pos < len || mp->state == MP_EPILOGUE || mp->state == MP_ERROR) {
        switch (mp->state) {
        case MP_ERROR:
            return mp->err;
        case MP_EPILOGUE:
            return 0;
        case MP_PREAMBLE:
        case MP_BODY: {
            long n = mp_scan(mp, data + pos, len - pos);
            if (n < 0)
                return mp_fail(mp, (int)n);
            pos += (size_t)n;
            break;
        }
        case MP_AFTER_DELIM: {
            char c = data[pos++];
            if (c == '-')
                mp->state = MP_DASH2;
            else if (c == '\r')
                mp->state = MP_AFTER_CR;
            else if ((c == ' ' || c == '\t') && ++mp->pad <= 64)
                ;
            else
                return mp_fail(mp, ERR_PARSE);
            break;
        }
        case MP_DASH2:
            if (data[pos++] != '-')
                return mp_fail(mp, ERR_PARSE);
            mp->state = MP_EPILOGUE;
            break;
        case MP_AFTER_CR:
            if (data[pos++] != '\n')
                return mp_fail(mp, ERR_PARSE);
            mp->state = MP_HEADERS;
            buf_reset(&mp->hdr);
            break;
        case MP_HEADERS: {
            /* Copy up to the end of the header block. */
            bool done = false;
            while (pos < len && !done) {
                if (buf_append(&mp->hdr, data + pos, 1) < 0)
                    return mp_fail(mp, ERR_LIMIT);
                pos++;
                size_t n = mp->hdr.len;
                if (n == 2 && !memcmp(mp->hdr.data, "\r\n", 2)) {
                    buf_reset(&mp->hdr); /* a part without headers */
                    done = true;
                } else if (n >= 4 && !memcmp(mp->hdr.data + n - 4, "\r\n\r\n", 4)) {
                    mp->hdr.len = n - 2; /* keep the last header's CRLF */
                    mp->hdr.data[n - 2] = '\0';
                    done = true;
                }
            }
            if (done) {
                rc = mp_headers_done(mp);
                if (rc < 0)
                    return mp_fail(mp, rc);
                mp->state = MP_BODY;
                mp->match = 0;
            }
            break;
        }
        }
    }
    return mp->state == MP_EPILOGUE ? 0 : ERR_AGAIN;
}

int http_multipart_finish(const struct http_multipart *mp)
{
    if (mp->state == MP_ERROR)
        return mp->err;
    return mp->state == MP_EPILOGUE ? 0 : ERR_PARSE;
}
