/*
 * export.c — the export stage and the aggregation writers.
 *
 * The export task reads the per-task results files of the processing
 * stage in task order and streams them into one aggregated file of the
 * <job>-export batch, part "results":
 *   aggregated_results.jsonl   the rows as they are, one JSON per line
 *   aggregated_results.csv     columns = the workflow's output names
 *                              (then "frame_number" for a video job), then
 *                              "image"; list and dict cells JSON-dumped the
 *                              way Python's json.dumps writes them (", ",
 *                              ": "), booleans True/False, null empty —
 *                              pandas' DataFrame.to_csv(index=False) layout
 *                              (WORKFLOWS.md 3.4)
 * then, when images failed, the tasks' errors files (task-NNNNN.errors.jsonl,
 * one {"image","stage","cause"} line per failed image) into
 *   errors.jsonl               (part "errors")
 * and, when image outputs were persisted, packs them into
 *   images-NNNNN.tar.gz        (part "images"), each at most about
 *                              archive_max_bytes compressed (a new archive
 *                              starts before an entry that would cross it)
 * with the member names "<image file name>/<output key path>.jpg".  gzip
 * runs at level 0 (stored blocks): the members are JPEGs, which level 1
 * shrinks by about 0.4 % for 12 times the CPU (measured: 470 vs 38 MB/s
 * on this kind of machine); the archives stay ordinary .tar.gz files.
 *
 * Memory stays bounded: one results row, one copy buffer and libarchive's
 * own buffers are all that is held, however large the batch.  Every output
 * key depends only on the job, so an export run again after a crash
 * rewrites the same blobs, and each file is registered in the export batch
 * once (looked up by name first).
 */
#include "jobs/jobs_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- aggregation writers --------------------------------------------------------------- */

static int csv_cell(struct buf *b, const char *s)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    int rc = 0;
    if (!quote)
        return buf_puts(b, s);
    rc = buf_puts(b, "\"");
    for (const char *p = s; rc == 0 && *p; p++)
        rc = *p == '"' ? buf_puts(b, "\"\"") : buf_append(b, p, 1);
    if (rc == 0)
        rc = buf_puts(b, "\"");
    return rc;
}

int jobs_csv_header(struct buf *b, const char *const *columns, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = csv_cell(b, columns[i]);
        if (rc == 0)
            rc = buf_puts(b, ",");
    }
    if (rc == 0)
        rc = buf_puts(b, "image\n");
    return rc;
}

static int csv_value(struct buf *b, const json_t *v)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return csv_cell(b, json_string_value(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        return buf_puts(b, num);
    case JSON_REAL:
        snprintf(num, sizeof num, "%.15g", json_real_value(v));
        if (!strpbrk(num, ".eEn")) /* Python writes 1.0, not 1 */
            strcat(num, ".0");
        return buf_puts(b, num);
    case JSON_TRUE:
        return buf_puts(b, "True");
    case JSON_FALSE:
        return buf_puts(b, "False");
    case JSON_NULL:
        return 0;
    default: {
        /* json.dumps default separators: ", " and ": " (jansson without
         * JSON_COMPACT and without indentation writes the same). */
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        int rc = s ? csv_cell(b, s) : ERR_NOMEM;
        free(s);
        return rc;
    }
    }
}

int jobs_csv_row(struct buf *b, const json_t *row, const char *const *columns, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const json_t *v = json_object_get(row, columns[i]);
        if (v)
            rc = csv_value(b, v);
        if (rc == 0)
            rc = buf_puts(b, ",");
    }
    const json_t *img = json_object_get(row, "image");
    if (rc == 0 && img)
        rc = csv_value(b, img);
    if (rc == 0)
        rc = buf_puts(b, "\n");
    return rc;
}

int jobs_jsonl_row(struct buf *b, const json_t *row)
{
    char *s = json_dumps(row, JSON_COMPACT | JSON_REAL_PRECISION(15));
    int rc = s ? buf_puts(b, s) : ERR_NOMEM;
    if (rc == 0)
        rc = buf_puts(b, "\n");
    free(s);
    return rc;
}

/* ---- export task ---------------------------------------------------------------------------- */

/* Task numbers of the job's processing tasks, in order (malloc'd). */
static int proc_tasks(struct jobs *j, int64_t job_pk, int **nos, int *n)
{
    struct err e = ERR_INIT;
    int rc = store_tasks_done_numbers(j->st, job_pk, nos, n, &e);
    if (rc < 0)
        log_error("jobs", "database error: %s", err_text(&e, rc));
    return rc;
}

/* Open a blob as a FILE* for line reading.  *fp NULL when the blob is
 * absent (a task without persisted images). */
static int blob_fopen(struct jobs *j, const char *key, FILE **fp)
{
    int fd = -1;
    int64_t size;
    int rc = store_blob_open(j->st, key, &fd, &size);
    *fp = NULL;
    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    *fp = fdopen(fd, "r");
    if (!*fp) {
        rc = -errno;
        close(fd);
    }
    return rc;
}

struct tgz {
    struct archive *a;
    struct store_blob_writer *w; /* owned while open */
    int wrc;                     /* first writer error */
    int entries;
};

static la_ssize_t tgz_write_cb(struct archive *a, void *ud, const void *buf, size_t n)
{
    struct tgz *z = ud;
    (void)a;
    if (z->wrc == 0)
        z->wrc = store_blob_writer_write(z->w, buf, n);
    return z->wrc == 0 ? (la_ssize_t)n : -1;
}

static int tgz_open(struct jobs *j, const char *key, struct tgz *z, struct err *err)
{
    memset(z, 0, sizeof *z);
    int rc = store_blob_writer_open(j->st, key, 0, &z->w);
    if (rc < 0)
        return rc;
    z->a = archive_write_new();
    if (!z->a || archive_write_add_filter_gzip(z->a) != ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(z->a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(z->a, 1) != ARCHIVE_OK ||
        archive_write_set_options(z->a, "gzip:!timestamp,gzip:compression-level=0") != ARCHIVE_OK ||
        archive_write_open(z->a, z, NULL, tgz_write_cb, NULL) != ARCHIVE_OK) {
        err_printf(err, "libarchive: %s", z->a ? archive_error_string(z->a) : "out of memory");
        if (z->a)
            archive_write_free(z->a);
        z->a = NULL;
        store_blob_writer_abort(z->w);
        z->w = NULL;
        return ERR_INTERNAL;
    }
    return 0;
}

static void tgz_abort(struct tgz *z)
{
    if (z->a)
        archive_write_free(z->a);
    z->a = NULL;
    store_blob_writer_abort(z->w);
    z->w = NULL;
}

/* Close the archive and publish the blob; *size = its bytes. */
static int tgz_finish(struct tgz *z, int64_t *size, struct err *err)
{
    int rc = archive_write_close(z->a) == ARCHIVE_OK && z->wrc == 0 ? 0 : ERR_INTERNAL;
    if (rc < 0)
        err_printf(err, "cannot finish an archive: %s", archive_error_string(z->a));
    archive_write_free(z->a);
    z->a = NULL;
    if (rc < 0) {
        store_blob_writer_abort(z->w);
        z->w = NULL;
        return rc;
    }
    *size = store_blob_writer_size(z->w);
    rc = store_blob_writer_finish(z->w);
    z->w = NULL;
    return rc;
}

/* Add one blob to the archive under arc, streamed. */
static int tgz_add(struct jobs *j, struct tgz *z, const char *key, const char *arc, char *copybuf, size_t cap, struct err *err)
{
    int fd = -1;
    int64_t size = 0;
    int rc = store_blob_open(j->st, key, &fd, &size);
    if (rc < 0) {
        err_printf(err, "persisted image '%s' is missing: %s", key, err_str(rc));
        return rc;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, arc);
    archive_entry_set_size(e, size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    /* A fixed mtime keeps the archives byte-identical when an export is run
     * again after a crash, so archive boundaries (and names) do not move. */
    archive_entry_set_mtime(e, (time_t)1700000000, 0);
    if (archive_write_header(z->a, e) != ARCHIVE_OK) {
        err_printf(err, "libarchive: %s", archive_error_string(z->a));
        rc = ERR_INTERNAL;
    }
    int64_t left = size;
    while (rc == 0 && left > 0) {
        ssize_t r = read(fd, copybuf, (size_t)MIN((int64_t)cap, left));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : ERR_INTERNAL;
            err_printf(err, "cannot read '%s'", key);
            break;
        }
        if (archive_write_data(z->a, copybuf, (size_t)r) != r) {
            err_printf(err, "libarchive: %s", archive_error_string(z->a));
            rc = ERR_INTERNAL;
        }
        left -= r;
    }
    archive_entry_free(e);
    close(fd);
    if (rc == 0)
        z->entries++;
    return rc;
}

/* errors.jsonl: the lines of the processing tasks' errors files, in task
 * order ({"image","stage","cause"}, one per failed image: each task's file
 * is rewritten whole by a retried task, so every failure is there once).
 * Written always (a re-run export leaves no stale lines), registered in
 * the part "errors" when it is not empty. */
static int export_errors(struct jobs *j, const struct jobs__job *jb, const int *nos, int ntasks, const char *eb,
                         char **line, size_t *lcap, struct err *err)
{
    char *key = xasprintf("jobs/%s/%s/export/errors.jsonl", jb->ws, jb->job_id);
    struct store_blob_writer *out = NULL;
    FILE *fp = NULL;
    int rc = store_blob_writer_open(j->st, key, 0, &out);

    for (int k = 0; rc == 0 && k < ntasks; k++) {
        char *ek = jobs__errors_key(jb, nos[k]);
        rc = blob_fopen(j, ek, &fp); /* absent: a task done before errors files existed */
        free(ek);
        ssize_t n;
        while (rc == 0 && fp && (n = getline(line, lcap, fp)) > 0) {
            rc = store_blob_writer_write(out, *line, (size_t)n);
            if (rc == 0 && (*line)[n - 1] != '\n')
                rc = store_blob_writer_write(out, "\n", 1);
        }
        if (fp)
            fclose(fp);
        fp = NULL;
    }
    if (rc == 0) {
        int64_t size = store_blob_writer_size(out);
        rc = store_blob_writer_finish(out);
        out = NULL;
        if (rc == 0 && size > 0)
            rc = jobs__output_ensure(j, jb->ws, eb, "errors", "metadata",
                                     "failed images (JSONL: image, stage, cause)", "errors.jsonl", "metadata",
                                     "application/x-ndjson", key, size, err);
    }
    if (rc < 0 && !(err && err->msg[0]))
        err_printf(err, "cannot write the errors file: %s", err_str(rc));
    store_blob_writer_abort(out);
    free(key);
    return rc;
}

int jobs__run_export(struct jobs *j, struct jobs__worker *w, const struct store_task *t, struct err *err)
{
    struct jobs__job jb;
    struct jobs__hb hb = {time_mono_ms(), time_mono_ms(), 0};
    struct store_blob_writer *out = NULL;
    struct buf b = BUF_INIT;
    struct tgz z = {0};
    json_t *outputs = NULL;
    const char **cols = NULL;
    size_t ncols = 0;
    int *nos = NULL, ntasks = 0, narch = 0;
    char *key = NULL, *eb = NULL, *line = NULL, *copybuf = NULL;
    size_t lcap = 0;
    FILE *fp = NULL;
    int rc = jobs__job_load(j, t->job_pk, &jb);

    (void)w;
    if (rc < 0)
        return ERR_NOTFOUND;
    bool csv = !strcmp(jb.agg_format, "csv");
    eb = xasprintf("%s-export", jb.job_id);
    rc = store_space_check(j->st, 0, "the job's export", err);
    if (rc == 0)
        rc = proc_tasks(j, jb.pk, &nos, &ntasks);
    if (rc < 0) {
        if (!err_is_nospace(rc))
            err_printf(err, "cannot list the tasks");
        goto out;
    }
    outputs = json_loads(jb.outputs, 0, NULL);
    ncols = json_array_size(outputs);
    cols = xcalloc(ncols + 1, sizeof *cols);
    for (size_t i = 0; i < ncols; i++)
        cols[i] = json_string_value(json_array_get(outputs, i));
    if (jb.video) /* a row per frame: which one, before the video's name */
        cols[ncols++] = "frame_number";

    /* 1. the aggregated results */
    key = xasprintf("jobs/%s/%s/export/aggregated_results.%s", jb.ws, jb.job_id, csv ? "csv" : "jsonl");
    rc = store_blob_writer_open(j->st, key, 0, &out);
    if (rc < 0) {
        err_printf(err, "cannot open the export blob: %s", err_str(rc));
        goto out;
    }
    if (csv) {
        rc = jobs_csv_header(&b, cols, ncols);
        if (rc == 0)
            rc = store_blob_writer_write(out, b.data, b.len);
        buf_reset(&b);
    }
    for (int k = 0; rc == 0 && k < ntasks; k++) {
        rc = jobs__hb_tick(j, &hb, t, w->owner, 0.5 * k / MAX(ntasks, 1), false);
        if (rc < 0)
            goto out;
        char *rk = jobs__results_key(&jb, nos[k]);
        rc = blob_fopen(j, rk, &fp);
        if (rc == 0 && !fp) {
            err_printf(err, "results of task %d are missing", nos[k]);
            rc = ERR_INTERNAL;
        }
        free(rk);
        ssize_t n;
        while (rc == 0 && (n = getline(&line, &lcap, fp)) > 0) {
            if (!csv) {
                rc = store_blob_writer_write(out, line, (size_t)n);
                if (rc == 0 && line[n - 1] != '\n')
                    rc = store_blob_writer_write(out, "\n", 1);
                continue;
            }
            json_t *row = json_loadb(line, (size_t)n, 0, NULL);
            if (!row) {
                err_printf(err, "a results row of task %d is not JSON", nos[k]);
                rc = ERR_PARSE;
                break;
            }
            rc = jobs_csv_row(&b, row, cols, ncols);
            json_decref(row);
            if (rc == 0)
                rc = store_blob_writer_write(out, b.data, b.len);
            buf_reset(&b);
        }
        if (fp)
            fclose(fp);
        fp = NULL;
    }
    if (rc < 0) {
        if (!err->msg[0])
            err_printf(err, "cannot write the aggregated results: %s", err_str(rc));
        goto out;
    }
    rc = jobs__hb_tick(j, &hb, t, w->owner, 0.5, true);
    if (rc < 0)
        goto out;
    {
        int64_t size = store_blob_writer_size(out);
        rc = store_blob_writer_finish(out);
        out = NULL;
        if (rc == 0)
            rc = jobs__output_ensure(j, jb.ws, eb, "results", "metadata", "aggregated workflow results",
                                     csv ? "aggregated_results.csv" : "aggregated_results.jsonl", "metadata",
                                     csv ? "text/csv" : "application/x-ndjson", key, size, err);
        if (rc < 0)
            goto out;
    }

    /* 2. the failed images: the tasks' errors files, part "errors" */
    rc = export_errors(j, &jb, nos, ntasks, eb, &line, &lcap, err);
    if (rc < 0)
        goto out;

    /* 3. persisted image outputs, packed into bounded .tar.gz archives */
    if (jb.persist) {
        copybuf = xmalloc(64 * 1024);
        for (int k = 0; rc == 0 && k < ntasks; k++) {
            char *mk = jobs__manifest_key(&jb, nos[k]);
            rc = blob_fopen(j, mk, &fp);
            free(mk);
            ssize_t n;
            while (rc == 0 && fp && (n = getline(&line, &lcap, fp)) > 0) {
                rc = jobs__hb_tick(j, &hb, t, w->owner, 0.5 + 0.5 * k / MAX(ntasks, 1), false);
                if (rc < 0)
                    goto out;
                json_t *m = json_loadb(line, (size_t)n, 0, NULL);
                const char *ik = json_string_value(json_object_get(m, "key"));
                const char *arc = json_string_value(json_object_get(m, "arc"));
                json_int_t sz = json_integer_value(json_object_get(m, "size"));
                if (!ik || !arc) {
                    json_decref(m);
                    err_printf(err, "bad image manifest line of task %d", nos[k]);
                    rc = ERR_PARSE;
                    break;
                }
                if (z.a && z.entries > 0 &&
                    store_blob_writer_size(z.w) + (int64_t)sz + 4096 > j->o.archive_max_bytes) {
                    int64_t asz = 0;
                    char *an = xasprintf("images-%05d.tar.gz", narch);
                    char *ak = xasprintf("jobs/%s/%s/export/%s", jb.ws, jb.job_id, an);
                    rc = tgz_finish(&z, &asz, err);
                    if (rc == 0)
                        rc = jobs__output_ensure(j, jb.ws, eb, "images", "archives", "persisted image outputs",
                                                 an, "archives", "application/gzip", ak, asz, err);
                    free(an);
                    free(ak);
                }
                if (rc == 0 && !z.a) {
                    char *ak = xasprintf("jobs/%s/%s/export/images-%05d.tar.gz", jb.ws, jb.job_id, ++narch);
                    rc = tgz_open(j, ak, &z, err);
                    free(ak);
                }
                jobs__throttle(j);
                if (rc == 0)
                    rc = tgz_add(j, &z, ik, arc, copybuf, 64 * 1024, err);
                json_decref(m);
            }
            if (fp)
                fclose(fp);
            fp = NULL;
        }
        if (rc == 0 && z.a) {
            int64_t asz = 0;
            char *an = xasprintf("images-%05d.tar.gz", narch);
            char *ak = xasprintf("jobs/%s/%s/export/%s", jb.ws, jb.job_id, an);
            rc = tgz_finish(&z, &asz, err);
            if (rc == 0)
                rc = jobs__output_ensure(j, jb.ws, eb, "images", "archives", "persisted image outputs", an,
                                         "archives", "application/gzip", ak, asz, err);
            free(an);
            free(ak);
        }
        if (rc < 0)
            goto out;
    }
    rc = jobs__hb_tick(j, &hb, t, w->owner, 1.0, true);
    if (rc < 0)
        goto out;
    rc = jobs__task_complete(j, t, w->owner, 0, 0, NULL, 0, time_mono_ms() - hb.start_ms - hb.counted_ms);
    if (rc == 0)
        log_info("jobs", "export done job=%s archives=%d", jb.job_id, narch);
out:
    if (fp)
        fclose(fp);
    tgz_abort(&z);
    store_blob_writer_abort(out);
    buf_release(&b);
    free(line);
    free(copybuf);
    free(cols);
    json_decref(outputs);
    free(nos);
    free(key);
    free(eb);
    jobs__job_release(&jb);
    return rc;
}
