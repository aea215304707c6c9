/*
 * export.c — vbatch batch export ID [--out DIR] [--part P] | --job JOB
 *
 * Lists the batch's files page by page (GET …/list), downloads each one
 * into a temp file inside DIR, then unpacks .tar and .tar.gz archives with
 * libarchive into DIR/<partName>/ (other files are saved under their
 * fileName there).  What comes from the server is not trusted: a part name
 * must be an id, a file name a single path component, and an archive
 * member a relative path of regular files and folders without "..", an
 * absolute path, a link or a device; a refused member is reported and
 * skipped, and the command then ends with status 1.  Files are created
 * with O_NOFOLLOW, so a link already in DIR is not followed either.
 */
#include "cli/cli.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_int.h"

#define MAX_MEMBER_PATH 1024
#define MAX_MEMBERS 10000000

struct dl {
    const struct cli *c;
    int fd;
    int64_t got, total_before, grand_total;
    int64_t t0, last_draw;
    const char *name;
    int wrc;
};

static size_t dl_write(char *p, size_t sz, size_t n, void *ud)
{
    struct dl *d = ud;

    if (fd_write_all(d->fd, p, sz * n) != 0) {
        d->wrc = -errno;
        return 0;
    }
    d->got += (int64_t)(sz * n);
    int64_t now = time_mono_ms();
    if (d->c->tty && now - d->last_draw > 150) {
        char a[32], b[32], tail[160];
        double secs = (double)(now - d->t0) / 1000.0;
        cli__human_bytes((double)(d->total_before + d->got), a);
        cli__human_bytes(secs > 0 ? (double)(d->total_before + d->got) / secs : 0, b);
        snprintf(tail, sizeof tail, "%s  %s  %s/s", d->name, a, b);
        cli__bar(d->c, "export", 0, 0, tail);
        d->last_draw = now;
    }
    return sz * n;
}

/* GET url into fd; 0 or CLI_EXIT_FAIL with e. */
static int download(struct dl *d, const char *url, struct err *e)
{
    CURL *h = cli__handle(d->c);
    long code = 0;
    int rc = 0;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (cc != CURLE_OK)
        rc = err_set(e, CLI_EXIT_FAIL, "download of '%s': %s%s%s", d->name,
                     d->wrc ? "cannot write: " : curl_easy_strerror(cc), d->wrc ? strerror(-d->wrc) : "",
                     code >= 400 ? " (the signed URL may have expired)" : "");
    curl_easy_cleanup(h);
    return rc;
}

/* A member path an export may hold: relative, components neither empty
 * nor "." nor "..", printable, bounded. */
static bool member_ok(const char *p)
{
    size_t n = strlen(p);

    if (n == 0 || n > MAX_MEMBER_PATH || p[0] == '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == '\\' || p[i] == 0x7f)
            return false;
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if ((l == 0 && e && e[1]) || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += l;
        if (*s == '/')
            s++;
    }
    return true;
}

/* Unpack the archive at path into dir.  Returns 0, or CLI_EXIT_FAIL when
 * the archive is unreadable or a member was refused (each one reported). */
static int unpack(const char *path, const char *dir, const char *shown, size_t *nfiles, struct err *e)
{
    struct archive *a = archive_read_new();
    struct archive_entry *ent;
    char *chunk = xmalloc(1 << 20);
    int rc = 0, refused = 0, r;
    size_t members = 0;

    archive_read_support_filter_gzip(a);
    archive_read_support_filter_none(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        rc = err_set(e, CLI_EXIT_FAIL, "'%s' is not a readable archive: %s", shown, archive_error_string(a));
        goto out;
    }
    while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(ent);
        unsigned type = archive_entry_filetype(ent);
        if (++members > MAX_MEMBERS) {
            rc = err_set(e, CLI_EXIT_FAIL, "'%s' holds more than %d members", shown, MAX_MEMBERS);
            goto out;
        }
        bool link = archive_entry_hardlink(ent) != NULL || archive_entry_symlink(ent) != NULL;
        if (!name || !member_ok(name) || link || (type != AE_IFREG && type != AE_IFDIR)) {
            fprintf(stderr, "vbatch: refused member '%s' of '%s': %s\n", name ? name : "(no name)", shown,
                    !name || !member_ok(name) ? "not a plain relative path" : "not a regular file or folder");
            refused++;
            continue;
        }
        char *dest = xasprintf("%s/%s", dir, name);
        size_t dl = strlen(dest);
        while (dl > 0 && dest[dl - 1] == '/')
            dest[--dl] = 0;
        if (type == AE_IFDIR) {
            if (mkdir_p(dest, 0755) != 0) {
                rc = err_set(e, CLI_EXIT_FAIL, "cannot create '%s': %s", dest, strerror(errno));
                free(dest);
                goto out;
            }
            free(dest);
            continue;
        }
        char *slash = strrchr(dest, '/');
        *slash = 0;
        int mrc = mkdir_p(dest, 0755);
        *slash = '/';
        int fd = mrc == 0 ? open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644) : -1;
        if (fd < 0) {
            rc = err_set(e, CLI_EXIT_FAIL, "cannot create '%s': %s", dest, strerror(mrc ? -mrc : errno));
            free(dest);
            goto out;
        }
        la_ssize_t got;
        while ((got = archive_read_data(a, chunk, 1 << 20)) > 0) {
            if (fd_write_all(fd, chunk, (size_t)got) != 0) {
                rc = err_set(e, CLI_EXIT_FAIL, "cannot write '%s': %s", dest, strerror(errno));
                break;
            }
        }
        if (got < 0 && rc == 0)
            rc = err_set(e, CLI_EXIT_FAIL, "'%s' is damaged: %s", shown, archive_error_string(a));
        close(fd);
        free(dest);
        if (rc)
            goto out;
        (*nfiles)++;
    }
    if (r != ARCHIVE_EOF)
        rc = err_set(e, CLI_EXIT_FAIL, "'%s' is damaged: %s", shown, archive_error_string(a));
    else if (refused)
        rc = err_set(e, CLI_EXIT_FAIL, "%d member(s) of '%s' refused", refused, shown);
out:
    archive_read_free(a);
    free(chunk);
    return rc;
}

int cli__batch_export(struct cli *c, int argc, char **argv)
{
    const char *out = NULL, *part = NULL, *job = NULL;
    const struct cli_opt opts[] = {
        {"out", CLI_OPT_STR, &out},
        {"part", CLI_OPT_STR, &part},
        {"job", CLI_OPT_STR, &job},
    };
    const char *pos[1] = {NULL};
    char *batch = NULL, *path = NULL, *token = NULL, *tmp = NULL;
    struct err e = ERR_INIT;
    int npos = 0, rc, failures = 0;
    long pages = 0;
    size_t nfiles = 0, ndl = 0;
    int64_t total = 0, t0;

    if ((rc = cli__parse(c, argc, argv, opts, ARRAY_LEN(opts), pos, 1, &npos)) != 0)
        goto done;
    rc = CLI_EXIT_USAGE;
    if ((npos == 1) == (job != NULL)) {
        cli__fail("usage: vbatch batch export BATCH_ID [--out DIR] [--part NAME]  |  vbatch batch export --job JOB_ID");
        goto done;
    }
    batch = job ? xasprintf("%s-export", job) : xstrdup(pos[0]);
    if (!id_valid(batch, 64) || (part && !id_valid(part, 64))) {
        cli__fail("bad %s '%s'", part && id_valid(batch, 64) ? "part name" : "batch id", part && id_valid(batch, 64) ? part : batch);
        goto done;
    }
    if (!out)
        out = batch;
    if ((rc = cli__connect(c)) != 0)
        goto done;
    if (mkdir_p(out, 0755) != 0) {
        cli__fail("cannot create the folder '%s': %s", out, strerror(errno));
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    path = cli__ds_path(c, batch, "/list");
    t0 = time_mono_ms();
    do {
        json_t *j = NULL;
        const char *q[] = {"pageSize", "100", "partName", part, "nextPageToken", token, NULL};
        rc = cli__call(c, "GET", path, q, NULL, 0, &j, NULL, &e);
        free(token);
        token = NULL;
        if (rc) {
            cli__fail("%s", e.msg);
            goto done;
        }
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(j, "filesMetadata"), i, f)
        {
            const char *url = cli__str(f, "downloadURL", NULL), *name = cli__str(f, "fileName", NULL);
            const char *pn = cli__str(f, "partName", NULL);
            if (!url || !name || !*name || strchr(name, '/') || name[0] == '.' || strchr(name, '\\') ||
                (pn && !id_valid(pn, 64))) {
                cli__fail("refused file '%s' (part '%s') of the listing: not a plain file name", name ? name : "",
                          pn ? pn : "");
                failures++;
                continue;
            }
            char *dir = pn ? xasprintf("%s/%s", out, pn) : xstrdup(out);
            if (mkdir_p(dir, 0755) != 0) {
                cli__fail("cannot create the folder '%s': %s", dir, strerror(errno));
                free(dir);
                json_decref(j);
                rc = CLI_EXIT_FAIL;
                goto done;
            }
            free(tmp);
            tmp = xasprintf("%s/.vbatch-download-XXXXXX", dir);
            struct dl d = {c, mkstemp(tmp), 0, total, 0, t0, 0, name, 0};
            if (d.fd < 0) {
                cli__fail("cannot create a file in '%s': %s", dir, strerror(errno));
                free(dir);
                json_decref(j);
                rc = CLI_EXIT_FAIL;
                goto done;
            }
            rc = download(&d, url, &e);
            close(d.fd);
            total += d.got;
            ndl++;
            bool tgz = str_has_suffix(name, ".tar.gz") || str_has_suffix(name, ".tgz");
            if (rc == 0 && (tgz || str_has_suffix(name, ".tar"))) {
                size_t before = nfiles;
                rc = unpack(tmp, dir, name, &nfiles, &e);
                unlink(tmp);
                if (!c->tty)
                    fprintf(stderr, "export: %s unpacked (%zu file(s)) into %s\n", name, nfiles - before, dir);
            } else if (rc == 0) {
                char *dest = xasprintf("%s/%s", dir, name);
                if (rename(tmp, dest) != 0)
                    rc = err_set(&e, CLI_EXIT_FAIL, "cannot write '%s': %s", dest, strerror(errno));
                else
                    nfiles++;
                if (rc == 0 && !c->tty)
                    fprintf(stderr, "export: %s saved into %s\n", name, dir);
                free(dest);
            }
            if (rc) {
                unlink(tmp);
                if (c->tty)
                    fputc('\n', stderr);
                cli__fail("%s", e.msg);
                failures++;
                rc = 0;
            }
            free(dir);
        }
        const char *t = cli__str(j, "nextPageToken", NULL);
        token = t ? xstrdup(t) : NULL;
        json_decref(j);
    } while (token && ++pages < CLI_MAX_PAGES);
    if (token) {
        cli__too_many_pages(path, &e);
        cli__fail("%s", e.msg);
        failures++;
    }
    {
        char a[32];
        double secs = (double)(time_mono_ms() - t0) / 1000.0;
        cli__human_bytes((double)total, a);
        cli__bar(c, "export", 1, 1, "");
        cli__bar_end(c);
        fprintf(stderr, "export: %zu download(s), %s in %.1f s\n", ndl, a, secs);
    }
    printf("%s: %zu file(s) in %s\n", batch, nfiles, out);
    if (failures) {
        cli__fail("%d file(s) of batch '%s' could not be exported whole", failures, batch);
        rc = CLI_EXIT_FAIL;
    }
done:
    free(tmp);
    free(token);
    free(path);
    free(batch);
    return rc;
}
