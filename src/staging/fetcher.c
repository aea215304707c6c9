/*
 * fetcher.c — the fetcher thread's work: the references of a queued
 * reference shard are downloaded (libcurl, through the store's network
 * guard, up to FETCH_THREADS at once), checked and staged, then recorded
 * by shardjob.c.
 *
 *   refs: queued ─fetch─► done (ingested/success | all-files-failed/error)
 *               └───────► failed (unsafe-url-detected, references-fetch-failed)
 */
#include "staging/staging.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "staging/staging_int.h"

struct sink {
    struct buf mem;   /* used when fd < 0 */
    int fd;
    int64_t limit, got;
    bool over;
    int werr;         /* a failed write to fd (-errno) */
};

static size_t sink_cb(char *p, size_t sz, size_t n, void *ud)
{
    struct sink *k = ud;
    size_t len = sz * n;
    if (k->got + (int64_t)len > k->limit) {
        k->over = true;
        return 0;
    }
    k->got += (int64_t)len;
    if (k->fd >= 0) {
        int rc = fd_write_all(k->fd, p, len);
        if (rc < 0)
            k->werr = rc;
        return rc == 0 ? len : 0;
    }
    return buf_append(&k->mem, p, len) == 0 ? len : 0;
}

/* GET url into the sink.  Returns 0, or ERR_LIMIT / ERR_INVALID (unsafe)
 * / ERR_NOTFOUND (HTTP error or network failure) with reason filled. */
static int fetch(struct staging *s, const char *url, struct sink *k, char reason[256])
{
    const char *why = NULL;
    if (store_net_check_url(s->st, url, &why) < 0) {
        CURLU *u = curl_url();
        char *host = NULL;
        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK)
            curl_url_get(u, CURLUPART_HOST, &host, 0);
        snprintf(reason, 256, "Untrusted domain found: %s", host ? host : "(unparsable url)");
        curl_free(host);
        curl_url_cleanup(u);
        return ERR_INVALID;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(reason, 256, "out of memory");
        return ERR_NOTFOUND;
    }
    store_net_guard_curl(s->st, c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)k->limit);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vbatch-fetch/1");
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    if (k->over || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(reason, 256, "Max size of single file is %lldB.", (long long)k->limit);
        rc = ERR_LIMIT;
    } else if (cc != CURLE_OK) {
        snprintf(reason, 256, "download failed: %s", curl_easy_strerror(cc));
        rc = ERR_NOTFOUND;
    }
    curl_easy_cleanup(c);
    return rc;
}

/* One reference's outcome, filled by a fetch worker, merged in order. */
struct ref_result {
    const char *name, *url; /* borrowed from the refs JSON */
    bool ok;
    bool nospace;           /* storing it failed for want of space: retry the shard */
    bool unavailable;       /* the blob store could not be reached: retry the shard */
    char key[160];
    const char *mime;       /* static */
    int64_t size;
    const char *ftype;      /* failure type (static) */
    char reason[256];
};

static void fetch_ref(struct staging__job *j, int index, struct ref_result *res)
{
    struct staging *s = j->s;
    bool video = !strcmp(j->kind, "video-refs");
    struct sink k = {BUF_INIT, -1, video ? s->o.max_video_bytes : s->o.max_image_bytes, 0, false, 0};
    char *tmp = NULL;
    int rc;
    snprintf(res->key, sizeof res->key, "b/%lld/r/%s/%d", (long long)j->bid, j->shard_id, index);
    res->ftype = "internal-error";
    snprintf(res->reason, sizeof res->reason, "cannot store the file");
    if (video && (rc = store_tmp_create(s->st, &tmp, &k.fd)) < 0) {
        res->nospace = err_is_nospace(rc);
        goto out;
    }
    rc = fetch(s, res->url, &k, res->reason);
    if (rc < 0 && err_is_nospace(k.werr)) {
        res->nospace = true;
        goto out;
    }
    if (rc < 0) {
        res->ftype = rc == ERR_LIMIT ? "file-size-limit-exceeded" : rc == ERR_INVALID ? "unsafe-url-detected"
                                                                                       : "download-failed";
        goto out;
    }
    if (video) {
        close(k.fd);
        k.fd = -1;
        if (staging__video_probe(tmp, &res->mime) < 0) {
            res->ftype = "unsupported-file-type";
            snprintf(res->reason, sizeof res->reason, "not a video container that can be read");
            goto out;
        }
        if ((rc = store_blob_put_file(s->st, res->key, tmp)) < 0) {
            res->nospace = err_is_nospace(rc);
            res->unavailable = rc == ERR_UNAVAILABLE;
            goto out;
        }
        free(tmp);
        tmp = NULL;
    } else {
        const char *bad = NULL;
        res->mime = staging__image_mime(k.mem.data, k.mem.len, &res->ftype, &bad);
        if (!res->mime) {
            snprintf(res->reason, sizeof res->reason, "%s", bad);
            goto out;
        }
        if ((rc = store_blob_put_nosync(s->st, res->key, k.mem.data, k.mem.len)) < 0) {
            res->nospace = err_is_nospace(rc);
            res->unavailable = rc == ERR_UNAVAILABLE;
            goto out;
        }
    }
    res->ok = true;
    res->size = k.got;
out:
    if (k.fd >= 0)
        close(k.fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    buf_release(&k.mem);
}

#define FETCH_THREADS 8

struct fetch_pool {
    struct staging__job *j;
    struct ref_result *res;
    int n;
    int next;          /* next index to take; guarded by mu */
    bool aborted;      /* the context is stopping; guarded by mu */
    bool lost;         /* the shard's claim was taken over; guarded by mu */
    pthread_mutex_t mu;
};

static void *fetch_worker(void *arg)
{
    struct fetch_pool *p = arg;
    struct staging *s = p->j->s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop && s->running;
        pthread_mutex_unlock(&s->mu);
        bool lost = staging__job_lost(p->j);
        pthread_mutex_lock(&p->mu);
        if (stop)
            p->aborted = true;
        if (lost)
            p->lost = true;
        int i = p->aborted || p->lost || p->next >= p->n ? -1 : p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i < 0)
            break;
        fetch_ref(p->j, i, &p->res[i]);
    }
    return NULL;
}

/* Fetch every valid reference of refs with up to FETCH_THREADS at once,
 * then record the outcomes in reference order.  ERR_AGAIN when stopped. */
static int fetch_all(struct staging__job *j, json_t *refs)
{
    struct fetch_pool p = {.j = j, .n = (int)json_array_size(refs)};
    pthread_t th[FETCH_THREADS];
    int nth = 0, rc = 0;
    p.res = xcalloc((size_t)MAX(p.n, 1), sizeof *p.res);
    for (int i = 0; i < p.n; i++) {
        json_t *e = json_array_get(refs, (size_t)i);
        if (staging__ref_entry(e, &p.res[i].name, &p.res[i].url) < 0)
            p.res[i].url = NULL; /* cannot happen for parsed refs; skipped */
    }
    pthread_mutex_init(&p.mu, NULL);
    for (int t = 0; t < FETCH_THREADS && t < p.n; t++)
        if (pthread_create(&th[nth], NULL, fetch_worker, &p) == 0)
            nth++;
    if (nth == 0)
        fetch_worker(&p);
    for (int t = 0; t < nth; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&p.mu);
    if (p.aborted) {
        rc = ERR_AGAIN; /* stays queued; redone after restart */
        goto out;
    }
    if (p.lost) {
        rc = ERR_EXISTS; /* another process fetches it now */
        goto out;
    }
    for (int i = 0; i < p.n; i++)
        if (p.res[i].nospace || p.res[i].unavailable) {
            /* stays queued; fetched again once there is space, or once the
             * blob store answers again */
            rc = p.res[i].nospace ? ERR_NOSPACE : ERR_UNAVAILABLE;
            goto out;
        }
    for (int i = 0; i < p.n; i++) {
        struct ref_result *r = &p.res[i];
        if (!r->url)
            continue;
        if (r->ok)
            staging__job_add(j, r->name, r->key, r->mime, r->size, -1);
        else
            staging__job_reject(j, r->name, r->ftype, r->reason);
    }
out:
    free(p.res);
    return rc;
}

#define REFS_FILE_MAX (64u << 20)

static int fetch_one(struct staging__job *j)
{
    struct staging *s = j->s;
    json_t *refs = NULL;
    char reason[256];
    bool video = !strcmp(j->kind, "video-refs");
    int max = video ? MAX(1, s->o.max_references / 4) : s->o.max_references;
    if (j->refs_url) {
        struct sink k = {BUF_INIT, -1, REFS_FILE_MAX, 0, false, 0};
        int rc = fetch(s, j->refs_url, &k, reason);
        if (rc < 0) {
            buf_release(&k.mem);
            return staging__job_fail(j, "queued", rc == ERR_INVALID ? "unsafe-url-detected" : "references-fetch-failed",
                            reason);
        }
        refs = json_array();
        char *line = k.mem.data, *save = NULL;
        int lineno = 0;
        for (char *l = line ? strtok_r(line, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
            lineno++;
            size_t ll = strlen(l);
            while (ll && (l[ll - 1] == '\r' || l[ll - 1] == ' '))
                l[--ll] = 0;
            if (!ll)
                continue;
            json_t *e = NULL;
            (void)json_parse_outside(l, ll, 0, &e, NULL, 0); /* too deep or malformed: rejected below */
            const char *n, *u;
            if (staging__ref_entry(e, &n, &u) < 0) {
                char nm[32];
                snprintf(nm, sizeof nm, "line %d", lineno);
                staging__job_reject(j, nm, "invalid-reference", "each line must be {\"name\": …, \"url\": \"http(s)://…\"}");
                json_decref(e);
                continue;
            }
            if ((int)json_array_size(refs) >= max) {
                json_decref(e);
                json_decref(refs);
                buf_release(&k.mem);
                snprintf(reason, sizeof reason, "more than %d references", max);
                return staging__job_fail(j, "queued", "too-many-references", reason);
            }
            json_array_append_new(refs, e);
        }
        buf_release(&k.mem);
    } else {
        refs = json_loads(j->refs ? j->refs : "[]", 0, NULL);
    }
    int rc = fetch_all(j, refs);
    json_decref(refs);
    return rc < 0 ? rc : staging__job_commit(j, "queued");
}

int staging_fetch_pending(struct staging *s, int *fetched)
{
    int n = 0, rc = 0;
    if (staging__backoff_waiting(s, &s->fetch_retry_at))
        goto done;
    for (;;) {
        struct staging__job j;
        rc = staging__job_load(s, true, "queued", &j);
        if (rc == ERR_NOTFOUND) {
            rc = 0;
            staging__job_release(&j);
            break;
        }
        if (rc == 0)
            rc = fetch_one(&j);
        if (err_is_nospace(rc) || rc == ERR_UNAVAILABLE) {
            staging__job_wait_storage(&j, "queued", rc == ERR_UNAVAILABLE
                                                        ? "the blob store cannot be reached: retried later"
                                                        : "storage full: the fetched files cannot be stored");
            staging__job_release(&j);
            staging__backoff_set(s, &s->fetch_retry_at, &s->fetch_backoff, true);
            break;
        }
        if (rc == 0)
            staging__backoff_set(s, &s->fetch_retry_at, &s->fetch_backoff, false);
        if (rc < 0 && rc != ERR_EXISTS && rc != ERR_AGAIN) {
            char reason[160];
            snprintf(reason, sizeof reason, "internal error while fetching: %s", err_str(rc));
            if (j.shard_id && staging__job_fail(&j, "queued", "internal-error", reason) == 0)
                rc = 0;
        }
        staging__job_release(&j);
        if (rc < 0 && rc != ERR_EXISTS)
            break;
        n++;
    }
done:
    if (fetched)
        *fetched = n;
    return rc;
}

