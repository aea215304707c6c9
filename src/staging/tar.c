/*
 * tar.c — scanning a tar shard (libarchive): which entries become images
 * or sidecars, which are rejected and why, and the shard-level failures
 * (too many images or entries, a corrupt archive).  Kept apart from
 * storage so that the fuzz target runs it on bytes alone.
 *
 * The scan reads the archive in memory (the indexer maps the shard's
 * blob) and copies no entry: each accepted entry is reported with its
 * bytes in place and their offset in the archive, which is how its item
 * addresses it (shard blob, offset, length).
 */
#include "staging/staging.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>

#include "staging/staging_int.h"

#define NOTIF_CONFIG "notification_config.json"

/* ---- tar scanning ---------------------------------------------------------------- */

static const char *type_word(unsigned t)
{
    switch (t) {
    case AE_IFLNK:
        return "a symbolic link";
    case AE_IFDIR:
        return "a directory";
    case AE_IFCHR:
    case AE_IFBLK:
        return "a device";
    case AE_IFIFO:
        return "a fifo";
    case AE_IFSOCK:
        return "a socket";
    default:
        return "not a regular file";
    }
}

/* The data of the entry just read, in place: libarchive reading an
 * uncompressed tar from memory hands out pointers into that memory, so an
 * entry's bytes are found without a copy.  0 with *data and *off; ERR_PARSE
 * when the bytes are not all there (a truncated archive); ERR_UNSUPPORTED
 * when they do not lie in one piece in the archive (a sparse entry). */
static int entry_span(struct archive *a, const uint8_t *base, size_t len, int64_t size, const uint8_t **data,
                      int64_t *off)
{
    const void *blk = NULL;
    size_t n = 0;
    la_int64_t at = 0;
    if (size == 0) {
        *data = base, *off = 0;
        return 0;
    }
    int r = archive_read_data_block(a, &blk, &n, &at);
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return ERR_PARSE;
    const uint8_t *p = blk;
    if (at != 0 || p < base || p > base + len || (size_t)(base + len - p) < n)
        return ERR_UNSUPPORTED;
    if ((int64_t)n != size)
        return (int64_t)n < size && (size_t)(p - base) + (size_t)size > len ? ERR_PARSE : ERR_UNSUPPORTED;
    *data = p;
    *off = (int64_t)(p - base);
    return 0;
}

int staging__tar_scan(const void *mem, size_t memlen, const struct staging__tar_limits *lim,
                      const struct staging__tar_cb *cb, int *nimages, char **notif_ingest, char **notif_url,
                      const char **why)
{
    const uint8_t *base = mem, *data = NULL;
    int64_t off = 0;
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int rc = 0, images = 0, index = 0;
    char msg[320];
    *why = NULL;
    archive_read_support_format_tar(a);
    if (archive_read_open_memory(a, mem, memlen) != ARCHIVE_OK) {
        *why = "corrupt-archive";
        rc = ERR_PARSE;
        goto out;
    }
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) { /* RETRY = damaged header */
            *why = "corrupt-archive";
            rc = ERR_PARSE;
            goto out;
        }
        if (++index > 10 * lim->max_images + 16) {
            /* Bounded work and memory for archives of many tiny entries. */
            *why = "too-many-entries";
            rc = ERR_LIMIT;
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        unsigned type = archive_entry_filetype(e);
        const char *shown = name ? name : "(no name)";
        if (type != AE_IFREG || archive_entry_hardlink(e) || archive_entry_symlink(e)) {
            snprintf(msg, sizeof msg, "entry is %s", archive_entry_hardlink(e) ? "a hard link" : type_word(type));
            cb->reject(cb->ud, shown, "not-a-regular-file", msg);
            continue;
        }
        if (archive_entry_sparse_count(e) > 0) { /* its bytes are not one piece of the archive */
            cb->reject(cb->ud, shown, "not-a-regular-file", "entry is a sparse file");
            continue;
        }
        if (!name || !staging__name_valid(name)) {
            cb->reject(cb->ud, shown, "unsafe-file-name", "entry names must be plain file names without '/' or '..'");
            continue;
        }
        int64_t size = archive_entry_size(e);
        if (!strcmp(name, NOTIF_CONFIG)) {
            if (size < 0 || size > 65536) {
                cb->reject(cb->ud, name, "invalid-notification-config", "notification config larger than 64 KiB");
                continue;
            }
            if ((rc = entry_span(a, base, memlen, size, &data, &off)) < 0) {
                if (rc == ERR_UNSUPPORTED) {
                    rc = 0;
                    cb->reject(cb->ud, name, "invalid-notification-config", "entry is a sparse file");
                    continue;
                }
                *why = "corrupt-archive";
                goto out;
            }
            json_t *j = NULL;
            (void)json_parse_outside((const char *)data, (size_t)size, 0, &j, NULL, 0); /* else ignored */
            const char *iid = json_string_value(json_object_get(j, "ingestId"));
            const char *url = json_string_value(json_object_get(j, "notificationsURL"));
            if (iid && strlen(iid) <= 256 && notif_ingest && !*notif_ingest)
                *notif_ingest = xstrdup(iid);
            if (url && strlen(url) <= 4096 && (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) &&
                notif_url && !*notif_url)
                *notif_url = xstrdup(url);
            json_decref(j);
            continue;
        }
        if (staging__sidecar_name(name)) {
            /* Per-image metadata "<image>.json": a JSON object, staged in
             * the metadata part; it does not count as an image. */
            const char *bad = NULL;
            if (size < 0 || size > STAGING_SIDECAR_MAX) {
                cb->reject(cb->ud, name, "invalid-metadata-file",
                           "a metadata file (.json) must be at most 65536 bytes");
                continue;
            }
            if ((rc = entry_span(a, base, memlen, size, &data, &off)) < 0) {
                if (rc == ERR_UNSUPPORTED) {
                    rc = 0;
                    cb->reject(cb->ud, name, "not-a-regular-file", "entry is a sparse file");
                    continue;
                }
                *why = "corrupt-archive";
                goto out;
            }
            if (staging__sidecar_check(data, (size_t)size, &bad) < 0) {
                cb->reject(cb->ud, name, "invalid-metadata-file", bad);
                continue;
            }
            rc = cb->image(cb->ud, index, name, data, (size_t)size, off, "application/json");
            if (rc < 0) {
                *why = "storage-error";
                goto out;
            }
            continue;
        }
        if (size < 0 || size > lim->max_image_bytes) {
            snprintf(msg, sizeof msg, "Max size of single image is %lldB.", (long long)lim->max_image_bytes);
            cb->reject(cb->ud, name, "file-size-limit-exceeded", msg);
            continue;
        }
        if ((rc = entry_span(a, base, memlen, size, &data, &off)) < 0) {
            if (rc == ERR_UNSUPPORTED) {
                rc = 0;
                cb->reject(cb->ud, name, "not-a-regular-file", "entry is a sparse file");
                continue;
            }
            *why = "corrupt-archive";
            goto out;
        }
        const char *ftype = NULL, *bad = NULL;
        const char *mime = staging__image_mime(data, (size_t)size, &ftype, &bad);
        if (!mime) {
            cb->reject(cb->ud, name, ftype, bad);
            continue;
        }
        if (++images > lim->max_images) {
            *why = "too-many-images";
            rc = ERR_LIMIT;
            goto out;
        }
        rc = cb->image(cb->ud, index, name, data, (size_t)size, off, mime);
        if (rc < 0) {
            *why = "storage-error";
            goto out;
        }
    }
    *nimages = images;
out:
    archive_read_free(a);
    return rc;
}

