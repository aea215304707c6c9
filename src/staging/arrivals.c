/*
 * arrivals.c — the arrival poller of the S3 backend: clients PUT tar
 * shards and videos straight to the object store with a presigned URL and
 * never tell vbatch, so vbatch notices each object's arrival here and
 * records it as a PUT to its own signed URL does (staging__upload_arrived:
 * a tar shard becomes "uploaded" and the indexer takes it).
 *
 * One process polls at a time across the processes on the database: the
 * holder of the "upload-poller" lease (as the expiry sweeper).  A round,
 * every poll interval (--upload-poll-ms, default 1 s):
 *
 *   pending targets (uploads.state = pending, younger than the URL
 *   lifetime + 1 h, at most POLL_ROWS_MAX) grouped by batch; per group:
 *     └─ tar shards on a store that writes once ("If-None-Match: *",
 *        probed at start; ingest.c upload_url): the client PUT the shard
 *        to its own key b/<bid>/s/<shard>.tar, so it is indexed where it
 *        landed, without a copy.  Found with a HEAD per pending shard (up
 *        to POLL_HEADS_MAX of the batch), else pages of the batch's shard
 *        folder "b/<bid>/s" around the pending shards only (start-after;
 *        poll_group).  A process that found the store without put-once
 *        looks there too every POLL_LEGACY_EVERY rounds (another process
 *        may have handed out put-once URLs);
 *     └─ videos, and shards on a store that would overwrite: one listing
 *        of the batch's upload folder "b/<bid>/u" (staging__upload_key),
 *        not a HEAD per target: 1,000 pending objects of one batch cost
 *        one list request a round.  An arrived object is copied (server
 *        side) to the target's key (the copy's ETag must be the listed
 *        one), recorded, and the upload object deleted (kept unless
 *        recorded or refused for size/content): a second PUT to the same
 *        presigned URL (S3 accepts it
 *        until the URL expires) only writes an upload object that nobody
 *        reads.  With put-once this folder is still listed every
 *        POLL_LEGACY_EVERY rounds for shard URLs handed out before;
 *     └─ at most POLL_REQS_MAX requests a round, checked before each
 *        request (groups past it wait for
 *        the next round, in turn); a group whose youngest target is older
 *        than 10 poll intervals is looked at every age/10 intervals, at
 *        most every 60 intervals (old URLs are rarely used).
 *
 * Hot rounds: for POLL_HOT_HOLD poll intervals after a round recorded an
 * arrival (a client streaming its shards has more on the way), extra
 * rounds run between the normal ones, every poll interval / POLL_HOT_DIV
 * (at least POLL_HOT_MIN_MS: 200 ms by default): they look at the young
 * groups only (every == 1 above) and never at the legacy folders, under
 * the same POLL_REQS_MAX each, and only when a round as long as the last
 * one would end before the next normal one is due (which keeps the normal
 * rounds' cadence on a slow store).  So the wait from a PUT to its
 * indexing while uploads stream in is about a fifth of the interval, and
 * an idle store costs what it did: at most POLL_REQS_MAX requests a poll
 * interval, 5 x that only within 5 intervals of an arrival (with a
 * database read of the young pending targets and a lease renewal each).
 *
 * Over the size limit, the target fails without a copy (and an object at
 * the target's key is deleted).  A put-once shard cannot be replaced after
 * it was indexed: the store refuses a second PUT with 412 (a store that
 * takes unsigned copy-ins, which ignore If-None-Match, gets no put-once
 * URLs from store_blobs_configure).
 *
 * An upload recorded twice (two pollers after a lease handover, or a
 * racing vbatch PUT) is harmless: the pending -> done move is conditional
 * and the second gets ERR_EXISTS.  S3 PUTs are atomic, so a listed object
 * is always whole.
 */
#include "staging/staging_int.h"

#include <stdlib.h>
#include <string.h>

#define POLL_LEASE "upload-poller"
#define POLL_ROWS_MAX 20000
#define POLL_REQS_MAX 64     /* list pages and HEADs a round (then the next round goes on) */
#define POLL_HEADS_MAX 16    /* pending shards of a batch looked at with a HEAD each; more: a listing */
#define POLL_LEGACY_EVERY 10 /* the upload folder of a shards-only batch, with put-once */
#define POLL_SLOW_MAX 60
#define POLL_HOT_DIV 5       /* hot rounds: this many a poll interval ... */
#define POLL_HOT_MIN_MS 100  /* ... at most every this many ms */
#define POLL_HOT_HOLD 5      /* hot for this many intervals after the last arrival */
#define POLL_HOT_YOUNG 20    /* a group is young (every == 1) while its youngest target is younger than this many intervals */

struct listed {
    char *key;
    int64_t size;
    char *etag; /* as listed, or NULL */
};
struct listing {
    struct listed *v;
    int n, cap;
};

static int list_cb(void *ud, const char *key, int64_t size, const char *etag)
{
    struct listing *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n].key = xstrdup(key);
    l->v[l->n].size = size;
    l->v[l->n].etag = etag ? xstrdup(etag) : NULL;
    l->n++;
    return 0;
}

static int listed_cmp(const void *a, const void *b)
{
    return strcmp(((const struct listed *)a)->key, ((const struct listed *)b)->key);
}

static void listing_free(struct listing *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].etag);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* One arrival at the upload key: the object at ukey (size bytes, ETag
 * etag as listed) of pending target r.  Copied to the target's key only
 * while it is still the object listed (x-amz-copy-source-if-match: a
 * second PUT between the listing and the copy is seen next round), and
 * recorded; the upload object is then deleted when recorded (or recorded
 * before) or refused for its size or content, and kept on any other
 * failure (database unreachable, busy or full: the next round tries
 * again, an acknowledged upload is never lost). */
static void arrived(struct staging *s, const struct store_upload_pending *r, const char *ukey, int64_t size,
                    const char *etag)
{
    struct err ae = ERR_INIT;
    int rc = 0;
    metric_count(METRIC_UPLOAD_POLLS, 1, "arrival", NULL, NULL);
    if (size <= r->u.size_limit && (rc = store_blob_copy_if(s->st, ukey, etag, r->key)) < 0) {
        if (rc == ERR_EXISTS)
            log_info("staging", "upload poller: '%s' was replaced since it was listed: next round", ukey);
        else
            log_warn("staging", "upload poller: cannot copy '%s' to '%s': %s", ukey, r->key, err_str(rc));
        return;
    }
    rc = staging__upload_arrived(s, r->key, &r->u, size, false, &ae);
    if (rc == 0) {
        s->poll_arrivals++;
        log_info("staging", "upload poller: '%s' arrived (%lld bytes)", r->key, (long long)size);
    } else if (rc != ERR_EXISTS) {
        log_info("staging", "upload poller: '%s' (%lld bytes) refused: %s", r->key, (long long)size,
                 err_text(&ae, rc));
    }
    if (rc == 0 || rc == ERR_EXISTS || rc == ERR_LIMIT || rc == ERR_INVALID)
        store_blob_delete(s->st, ukey);
}

/* One arrival at the target's own key (a tar shard PUT once, ingest.c
 * upload_url): recorded where it landed, no copy.  Over the size limit
 * staging__upload_arrived fails the shard and deletes the object; not
 * recorded (a database error) it stays, and the next round tries again. */
static void arrived_in_place(struct staging *s, const struct store_upload_pending *r, int64_t size)
{
    struct err ae = ERR_INIT;
    metric_count(METRIC_UPLOAD_POLLS, 1, "arrival", NULL, NULL);
    int rc = staging__upload_arrived(s, r->key, &r->u, size, true, &ae);
    if (rc == 0) {
        s->poll_arrivals++;
        log_info("staging", "upload poller: '%s' arrived in place (%lld bytes)", r->key, (long long)size);
    } else if (rc != ERR_EXISTS) {
        log_info("staging", "upload poller: '%s' (%lld bytes) refused: %s", r->key, (long long)size,
                 err_text(&ae, rc));
    }
}

/* Lists folder dir (sorted), a page at a time while the round has
 * requests left (*reqs counts them); *whole: it got to the end. */
static int list_sorted(struct staging *s, const char *dir, const char *start_after, int max_pages,
                       struct listing *l, int *reqs, bool *whole)
{
    char *after = start_after ? xstrdup(start_after) : NULL;
    bool more = true;
    int rc = 0;
    for (int page = 0; more && page < max_pages && *reqs < POLL_REQS_MAX; page++) {
        int had = l->n;
        metric_count(METRIC_UPLOAD_POLLS, 1, "list", NULL, NULL);
        (*reqs)++;
        rc = store_blob_list_etags(s->st, dir, after, 1000, list_cb, l, &more);
        if (rc < 0) {
            log_warn("staging", "upload poller: cannot list '%s': %s", dir, err_str(rc));
            break;
        }
        if (l->n == had)
            break; /* nothing listed: the end (whatever *more says) */
        free(after);
        after = xstrdup(l->v[l->n - 1].key); /* a page is in key order */
    }
    free(after);
    if (whole)
        *whole = rc == 0 && !more;
    if (l->n > 1)
        qsort(l->v, (size_t)l->n, sizeof *l->v, listed_cmp);
    return rc;
}

static struct listed *find(struct listing *l, const char *key)
{
    struct listed want = {(char *)key, 0, NULL};
    return l->n ? bsearch(&want, l->v, (size_t)l->n, sizeof *l->v, listed_cmp) : NULL;
}

struct pend {
    const char *key;
    const struct store_upload_pending *row;
};

static int pend_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pend *)a)->key, ((const struct pend *)b)->key);
}

/* Where the walk of a batch's shard folder that the round's request cap
 * cut short goes on next time (a pending key), for a few batches; a batch
 * not here starts at its first pending key, so an uncut walk costs one
 * page per 1000 keys and no more. */
#define POLL_RESUME_MAX 64
struct resume {
    int64_t bid[POLL_RESUME_MAX];
    char *key[POLL_RESUME_MAX];
    int next; /* the slot a new entry takes (round robin) */
};

static int resume_find(struct resume *rs, int64_t bid)
{
    for (int i = 0; i < POLL_RESUME_MAX; i++)
        if (rs->key[i] && rs->bid[i] == bid)
            return i;
    return -1;
}

static void resume_set(struct resume *rs, int64_t bid, const char *key)
{
    int i = resume_find(rs, bid);
    if (i < 0 && !key)
        return;
    if (i < 0) {
        i = rs->next;
        rs->next = (rs->next + 1) % POLL_RESUME_MAX;
    }
    free(rs->key[i]);
    rs->key[i] = key ? xstrdup(key) : NULL;
    rs->bid[i] = bid;
}

static void resume_free(struct resume *rs)
{
    for (int i = 0; i < POLL_RESUME_MAX; i++)
        free(rs->key[i]);
}

/* The pending targets rows[i..j) of one batch. */
static void poll_group(struct staging *s, bool once, bool hot, uint64_t tick, struct resume *rs,
                       struct store_upload_pending *rows, int i, int j, int *reqs)
{
    int64_t bid = rows[i].u.bid;
    /* the folders looked at every POLL_LEGACY_EVERY rounds: normal rounds only */
    bool legacy_turn = !hot && (tick + (uint64_t)bid) % POLL_LEGACY_EVERY == 0;
    int ntar = 0;
    for (int k = i; k < j; k++)
        ntar += !strcmp(rows[k].u.kind, "tar");
    char dir[64];
    /* The upload folder: videos, and every shard on a store without
     * put-once; with it, only shard URLs handed out by an earlier version
     * or by a process that found the store without it land there: looked
     * at every POLL_LEGACY_EVERY rounds. */
    if (ntar < j - i || !once || legacy_turn) {
        struct listing l = {0};
        snprintf(dir, sizeof dir, "b/%lld/u", (long long)bid);
        list_sorted(s, dir, NULL, POLL_REQS_MAX, &l, reqs, NULL);
        if (l.n) /* what was listed, even when the cap cut the listing short */
            for (int k = i; k < j; k++) {
                char ukey[128];
                staging__upload_key(rows[k].key, ukey);
                struct listed *got = find(&l, ukey);
                if (got)
                    arrived(s, &rows[k], ukey, got->size, got->etag);
            }
        listing_free(&l);
    }
    /* Shards PUT once to their own key.  Also looked at every
     * POLL_LEGACY_EVERY rounds by a process that found the store without
     * put-once: another process on the database may have handed out
     * put-once URLs of this batch. */
    if (ntar == 0 || (!once && !legacy_turn))
        return;
    /* A HEAD each when few are pending ... */
    if (ntar <= POLL_HEADS_MAX) {
        for (int k = i; k < j && *reqs < POLL_REQS_MAX; k++) {
            int64_t size = 0;
            if (strcmp(rows[k].u.kind, "tar") != 0)
                continue;
            (*reqs)++;
            metric_count(METRIC_UPLOAD_POLLS, 1, "head", NULL, NULL);
            int rc = store_blob_size(s->st, rows[k].key, &size);
            if (rc == 0)
                arrived_in_place(s, &rows[k], size);
            else if (rc != ERR_NOTFOUND)
                log_warn("staging", "upload poller: cannot look at '%s': %s", rows[k].key, err_str(rc));
        }
        return;
    }
    /* ... else pages of the batch's shard folder (which also holds its
     * indexed shards): only the pages around pending shards, from the
     * first (or where a walk cut short by the cap stopped: struct resume),
     * while the round has requests left.  A page starts just before pending key K (start-after
     * K less ".tar") and settles every pending key up to its last key; the
     * next page starts before the first pending key past it.  So a round
     * costs at most min(pending, pages of the folder, requests left). */
    int np = 0;
    struct pend *pv = xmalloc((size_t)ntar * sizeof *pv);
    for (int k = i; k < j; k++)
        if (!strcmp(rows[k].u.kind, "tar"))
            pv[np].key = rows[k].key, pv[np++].row = &rows[k];
    qsort(pv, (size_t)np, sizeof *pv, pend_cmp);
    snprintf(dir, sizeof dir, "b/%lld/s", (long long)bid);
    int start = 0, done = 0, at, ri = resume_find(rs, bid);
    if (ri >= 0) /* the first pending key from where the last walk was cut */
        while (start < np && strcmp(pv[start].key, rs->key[ri]) < 0)
            start++;
    if (start == np)
        start = 0;
    at = start;
    while (done < np && *reqs < POLL_REQS_MAX) {
        struct listing l = {0};
        char after[STORE_BLOB_KEY_MAX + 1];
        snprintf(after, sizeof after, "%s", pv[at].key);
        size_t al = strlen(after);
        if (al > 4 && !strcmp(after + al - 4, ".tar"))
            after[al - 4] = '\0';
        bool whole = false;
        /* the walk's first page from the folder's start: an uncut walk
         * then never needs a second page for the keys before 'at' */
        if (list_sorted(s, dir, at == 0 && done == 0 ? NULL : after, 1, &l, reqs, &whole) < 0) {
            listing_free(&l);
            break;
        }
        const char *last = l.n ? l.v[l.n - 1].key : NULL;
        /* settle pending keys from 'at' (without wrapping) up to 'last' */
        int k = at;
        for (; k < np && done < np && (whole || (last && strcmp(pv[k].key, last) <= 0)); k++, done++) {
            struct listed *got = find(&l, pv[k].key);
            if (got)
                arrived_in_place(s, pv[k].row, got->size);
        }
        listing_free(&l);
        if (k == at) { /* nothing settled (an empty page): the rest of this run is absent */
            done += np - at;
            k = np;
        }
        at = k == np ? 0 : k;
    }
    resume_set(rs, bid, done < np ? pv[at].key : NULL);
    free(pv);
}

static void poll_round(struct staging *s, bool once, bool hot, int64_t poll_ms, uint64_t tick, uint64_t *turn,
                       struct resume *rs)
{
    struct err e = ERR_INIT;
    struct store_upload_pending *rows = NULL;
    int n = 0, reqs = 0;
    int64_t now = time_now_ms();
    metric_count(METRIC_UPLOAD_POLLS, 1, "round", NULL, NULL);
    /* a hot round reads the young targets only (the ones it looks at:
     * every == 1 below), a normal one every target a URL can still bring */
    int64_t after = hot ? now - (POLL_HOT_YOUNG - 1) * poll_ms : now - s->o.upload_url_ttl_ms - 3600 * 1000LL;
    int rc = store_uploads_pending(s->st, after, POLL_ROWS_MAX, &rows, &n, &e);
    if (rc < 0) {
        log_warn("staging", "upload poller: cannot read the pending uploads: %s", err_text(&e, rc));
        return;
    }
    /* groups: runs of rows of one batch (rows are ordered by batch) */
    int ngroups = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || rows[i].u.bid != rows[i - 1].u.bid)
            ngroups++;
    int first = ngroups ? (int)(*turn % (uint64_t)ngroups) : 0, last = -1;
    for (int pass = 0; pass < 2 && reqs < POLL_REQS_MAX; pass++) {
        int g = -1;
        for (int i = 0; i < n && reqs < POLL_REQS_MAX;) {
            int64_t bid = rows[i].u.bid, youngest = rows[i].created_ms;
            int j = i + 1;
            for (; j < n && rows[j].u.bid == bid; j++)
                youngest = MAX(youngest, rows[j].created_ms);
            g++;
            /* pass 0: the groups from this round's turn on; pass 1: the ones before */
            bool mine = pass == 0 ? g >= first : g < first;
            int64_t every = (now - youngest) / 10 / MAX(poll_ms, 1);
            every = MIN(MAX(every, 1), POLL_SLOW_MAX);
            /* a hot round (below) looks at the young groups only */
            if (mine && (hot ? every == 1 : (tick + (uint64_t)bid) % (uint64_t)every == 0)) {
                poll_group(s, once, hot, tick, rs, rows, i, j, &reqs);
                last = g;
            }
            i = j;
        }
    }
    /* the next round starts where this one ran out of requests: a step of
     * one group a round would look at the same POLL_REQS_MAX groups for
     * many rounds while the others wait (ngroups - their number) rounds */
    if (reqs >= POLL_REQS_MAX && last >= 0)
        *turn = (uint64_t)last + 1;
    else
        (*turn)++;
    store_uploads_pending_free(rows, n);
}

void *staging__poll_main(void *arg)
{
    struct staging *s = arg;
    int64_t poll_ms = s->o.upload_poll_ms > 0 ? s->o.upload_poll_ms : 1000;
    int64_t lease_ms = MAX(3 * poll_ms, s->o.lease_floor_ms > 0 ? s->o.lease_floor_ms : 5000);
    const char *me = store_owner(s->st);
    uint64_t tick = 0, turn = 0;
    struct resume rs = {0};
    int held = -1;
    /* hot: objects arrived within the last POLL_HOT_HOLD intervals, so
     * more are likely on their way (a client streams its shards): extra
     * rounds every poll_ms / POLL_HOT_DIV (at least POLL_HOT_MIN_MS)
     * between the normal ones */
    int64_t hot_ms = MAX(POLL_HOT_MIN_MS, poll_ms / POLL_HOT_DIV), hot_until = 0, next_normal = 0;
    uint64_t seen = s->poll_arrivals;
    bool hot = false; /* this round is a hot one, between two normal ones */
    char *probe = NULL; /* does this process hand out put-once shard URLs? */
    bool once = store_blob_presign_put_once(s->st, "probe", time_now_ms() / 1000 + 60, -1, &probe) == 0;
    free(probe);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        struct err e = ERR_INIT;
        int64_t t0 = time_mono_ms();
        int got = store_lease_take(s->st, POLL_LEASE, me, lease_ms, &e);
        if (got >= 0 && got != held)
            log_info("staging", got ? "upload poller lease taken owner=%s"
                                    : "upload poller lease held by another process (this one is owner=%s)", me);
        if (got >= 0)
            held = got;
        if (got == 1)
            poll_round(s, once, hot, poll_ms, tick, &turn, &rs);
        int64_t now = time_mono_ms();
        if (!hot) { /* the slow groups' and legacy folders' schedule counts normal rounds */
            tick++;
            next_normal = now + poll_ms;
        }
        if (s->poll_arrivals != seen) {
            seen = s->poll_arrivals;
            hot_until = now + POLL_HOT_HOLD * poll_ms;
        }
        /* normal rounds every poll_ms as ever; while hot, hot rounds in
         * between (young groups only, the same request cap each), each
         * only when one as long as this one ends before the normal one
         * is due (a slow store: long rounds would push the normal ones
         * back, and with them the old batches' and legacy folders' turns) */
        int64_t wait = next_normal - now;
        hot = got == 1 && now < hot_until && hot_ms + (now - t0) <= wait;
        staging__sleep_ms_unless_stopped(s, hot ? hot_ms : MAX(wait, 0));
    }
    if (held == 1) {
        struct err e = ERR_INIT;
        store_lease_release(s->st, POLL_LEASE, me, &e);
    }
    resume_free(&rs);
    return NULL;
}
