/*
 * bundle.c — multi-file models as one byte string (docs/MODELS.md,
 * "Multi-file models").
 *
 * A model that is a folder of several files (OCR: det.onnx, rec.onnx,
 * dict.txt) travels and is stored as a bundle: a POSIX ustar archive of
 * regular files at the top level (no folders, no links), each named by a
 * plain file name, ended by two zero blocks.  The HTTP upload writes it
 * while the multipart parts stream in (model_bundle_header), the CLI
 * builds it from the folder (model_artefacts_read_dir), the blob store
 * keeps it as one blob, and model_registry_prepare_bytes recognises it
 * (model_bundle_is) and opens the model from the files in place.
 */
#include "model/model.h"

#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "model/model_int.h"

#define BLK 512

bool model_bundle_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MODEL_BUNDLE_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static unsigned hdr_sum(const unsigned char *h)
{
    unsigned s = 0;
    for (size_t i = 0; i < BLK; i++)
        s += (i >= 148 && i < 156) ? ' ' : h[i];
    return s;
}

void model_bundle_header(char hdr[512], const char *name, uint64_t size)
{
    memset(hdr, 0, BLK);
    snprintf(hdr, 100, "%s", name);
    memcpy(hdr + 100, "0000644", 8);
    memcpy(hdr + 108, "0000000", 8);
    memcpy(hdr + 116, "0000000", 8);
    snprintf(hdr + 124, 12, "%011llo", (unsigned long long)size);
    memcpy(hdr + 136, "00000000000", 12);
    hdr[156] = '0';
    memcpy(hdr + 257, "ustar", 6);
    memcpy(hdr + 263, "00", 2);
    snprintf(hdr + 148, 8, "%06o", hdr_sum((const unsigned char *)hdr));
    hdr[155] = ' ';
}

bool model_bundle_is(const void *b, size_t len)
{
    return len >= 2 * BLK && !memcmp((const char *)b + 257, "ustar", 5);
}

static bool zero_block(const unsigned char *p)
{
    for (size_t i = 0; i < BLK; i++)
        if (p[i])
            return false;
    return true;
}

/* An octal field of n bytes (NUL or space ended); -1 when malformed. */
static int64_t octal(const unsigned char *p, size_t n)
{
    int64_t v = 0;
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    if (i == n || p[i] < '0' || p[i] > '7')
        return -1;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
        if (v > (INT64_MAX >> 3))
            return -1;
        v = v * 8 + (p[i] - '0');
    }
    for (; i < n; i++)
        if (p[i] != ' ' && p[i] != 0)
            return -1;
    return v;
}

int model__bundle_parse(const void *mem, size_t len, struct model__files *fs, char *err, size_t errlen)
{
    const unsigned char *b = mem;
    size_t off = 0;

    memset(fs, 0, sizeof *fs);
    while (off + BLK <= len && !zero_block(b + off)) {
        const unsigned char *h = b + off;
        char name[101];
        if (memcmp(h + 257, "ustar", 5) != 0) {
            snprintf(err, errlen, "model bundle: entry %zu is not a ustar header", fs->n + 1);
            return ERR_INVALID;
        }
        int64_t sum = octal(h + 148, 8);
        if (sum < 0 || (unsigned)sum != hdr_sum(h)) {
            snprintf(err, errlen, "model bundle: entry %zu has a bad header checksum", fs->n + 1);
            return ERR_INVALID;
        }
        memcpy(name, h, 100);
        name[100] = 0;
        if (h[345] != 0 || (h[156] != '0' && h[156] != 0)) {
            snprintf(err, errlen, "model bundle: entry '%s' is not a plain file at the top level", name);
            return ERR_INVALID;
        }
        if (!model_bundle_name_ok(name)) {
            snprintf(err, errlen, "model bundle: file name '%s' is not accepted (letters, digits, '.', '-', "
                     "'_', at most %d characters, not starting with '.')", name, MODEL_BUNDLE_NAME_MAX);
            return ERR_INVALID;
        }
        int64_t size = octal(h + 124, 12);
        if (size < 0 || (uint64_t)size > len - off - BLK) {
            snprintf(err, errlen, "model bundle: entry '%s' is truncated", name);
            return ERR_INVALID;
        }
        if (model__files_get(fs, name)) {
            snprintf(err, errlen, "model bundle: file '%s' appears twice", name);
            return ERR_INVALID;
        }
        if (fs->n == MODEL_BUNDLE_MAX_FILES) {
            snprintf(err, errlen, "model bundle: more than %d files", MODEL_BUNDLE_MAX_FILES);
            return ERR_LIMIT;
        }
        struct model__file *f = &fs->f[fs->n++];
        memcpy(f->name, name, strlen(name) + 1); /* name_ok: at most MODEL_BUNDLE_NAME_MAX */
        f->data = (const char *)b + off + BLK;
        f->len = (size_t)size;
        off += BLK + (((size_t)size + BLK - 1) / BLK) * BLK;
    }
    if (off + BLK > len) {
        snprintf(err, errlen, "model bundle: the archive ends without its end blocks");
        return ERR_INVALID;
    }
    if (fs->n == 0) {
        snprintf(err, errlen, "model bundle: no files");
        return ERR_INVALID;
    }
    return 0;
}

const struct model__file *model__files_get(const struct model__files *fs, const char *name)
{
    for (size_t i = 0; fs && name && i < fs->n; i++)
        if (!strcmp(fs->f[i].name, name))
            return &fs->f[i];
    return NULL;
}

void model__bundle_add(struct buf *out, const char *name, const void *data, size_t len)
{
    char hdr[BLK];
    static const char zeros[BLK];
    model_bundle_header(hdr, name, len);
    buf_append(out, hdr, BLK);
    buf_append(out, data, len);
    if (len % BLK)
        buf_append(out, zeros, BLK - len % BLK);
}

void model__bundle_finish(struct buf *out)
{
    static const char zeros[2 * BLK];
    buf_append(out, zeros, sizeof zeros);
}
