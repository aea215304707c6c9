/*
 * ratelimit.c — the request rate limits of api_auth (api.h): per API key
 * (a token bucket per key, in this process only) and per workspace (the
 * database's GCRA, store_rate_take, behind a small cache of limits and
 * refusals).
 *
 * Buckets live in an open-addressed table keyed by a 64-bit hash of the
 * key (FNV-1a; the key itself is not kept).  The table holds at most
 * RL_SLOTS buckets: when it is full, buckets that are full again (idle
 * keys, which lose nothing by being forgotten) are dropped.  One mutex:
 * a take is a hash and a few arithmetic operations.
 */
#include "api/api.h"

#include "base/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RL_SLOTS 4096 /* power of two */

struct rl_bucket {
    uint64_t h;       /* 0: free */
    double tokens;
    int64_t last_ms;
};

struct api_ratelimit {
    pthread_mutex_t mu;
    double rate, burst; /* tokens per ms x 1000, capacity */
    int used;
    struct rl_bucket b[RL_SLOTS];
};

struct api_ratelimit *api_ratelimit_new(double rate, double burst)
{
    if (!(rate > 0))
        return NULL;
    struct api_ratelimit *rl = xcalloc(1, sizeof *rl);
    pthread_mutex_init(&rl->mu, NULL);
    rl->rate = rate;
    rl->burst = burst >= 1 ? burst : (rate > 1 ? rate : 1);
    return rl;
}

void api_ratelimit_free(struct api_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

static void refill(struct api_ratelimit *rl, struct rl_bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rl->rate / 1000.0;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ms = now_ms;
    }
}

/* Drop the buckets that are full again (rebuilding the probe chains). */
static void sweep(struct api_ratelimit *rl, int64_t now_ms)
{
    struct rl_bucket *old = xmalloc(sizeof rl->b);
    memcpy(old, rl->b, sizeof rl->b);
    memset(rl->b, 0, sizeof rl->b);
    rl->used = 0;
    for (int i = 0; i < RL_SLOTS; i++) {
        if (!old[i].h)
            continue;
        refill(rl, &old[i], now_ms);
        if (old[i].tokens >= rl->burst)
            continue;
        size_t j = old[i].h & (RL_SLOTS - 1);
        while (rl->b[j].h)
            j = (j + 1) & (RL_SLOTS - 1);
        rl->b[j] = old[i];
        rl->used++;
    }
    free(old);
}

int64_t api_ratelimit_take(struct api_ratelimit *rl, const char *key, int64_t now_ms)
{
    uint64_t h = fnv1a(key);
    int64_t wait = 0;
    pthread_mutex_lock(&rl->mu);
    if (rl->used >= RL_SLOTS * 3 / 4)
        sweep(rl, now_ms);
    size_t j = h & (RL_SLOTS - 1);
    while (rl->b[j].h && rl->b[j].h != h)
        j = (j + 1) & (RL_SLOTS - 1);
    struct rl_bucket *b = &rl->b[j];
    if (!b->h) {
        if (rl->used >= RL_SLOTS - 1) { /* every bucket busy: let it through */
            pthread_mutex_unlock(&rl->mu);
            return 0;
        }
        b->h = h;
        b->tokens = rl->burst;
        b->last_ms = now_ms;
        rl->used++;
    }
    refill(rl, b, now_ms);
    if (b->tokens >= 1) {
        b->tokens -= 1;
    } else {
        wait = (int64_t)((1 - b->tokens) * 1000.0 / rl->rate) + 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait;
}

/* ---- per workspace ---------------------------------------------------------- */

#define WSR_SLOTS 1024 /* power of two */

struct wsr_entry {
    uint64_t h;               /* 0: free */
    char ws[STORE_WS_MAX + 1];
    int64_t rate, burst;
    int64_t fetched_ms;       /* when rate/burst were read; 0: not yet */
    int64_t blocked_until_ms; /* the database refuses until then */
    int64_t local;            /* requests reserved in the database, not used yet */
    int64_t local_until_ms;   /* … usable until then */
    int64_t chunk;            /* how many to reserve next time (>= 1) */
    uint64_t used_tick;       /* api_wsrate.tick when last used (LRU) */
};

struct api_wsrate {
    struct store *st;
    pthread_mutex_t mu;
    int used;
    uint64_t tick;            /* counts wsr_slot calls */
    int64_t last_err_log_ms;
    struct wsr_entry e[WSR_SLOTS];
};

struct api_wsrate *api_wsrate_new(struct store *st)
{
    struct api_wsrate *w = xcalloc(1, sizeof *w);
    w->st = st;
    pthread_mutex_init(&w->mu, NULL);
    return w;
}

void api_wsrate_free(struct api_wsrate *w)
{
    if (!w)
        return;
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Free slot i, moving later entries of its probe chain back so that every
 * entry stays reachable from its home slot (linear probing).  mu held. */
static void wsr_remove(struct api_wsrate *w, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & (WSR_SLOTS - 1);
        if (!w->e[j].h)
            break;
        size_t k = w->e[j].h & (WSR_SLOTS - 1); /* home of entry j */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        w->e[i] = w->e[j];
        i = j;
    }
    memset(&w->e[i], 0, sizeof w->e[i]);
    w->used--;
}

/* ws's entry (made, empty, when missing), marked as used now; the table is
 * a cache: a new workspace arriving when it is 3/4 full takes the place of
 * the least recently used one (whose reservations and refusal are simply
 * asked of the database again when it comes back).  Called with mu held. */
static struct wsr_entry *wsr_slot(struct api_wsrate *w, const char *ws)
{
    uint64_t h = fnv1a(ws);
    size_t j = h & (WSR_SLOTS - 1);
    while (w->e[j].h && (w->e[j].h != h || strcmp(w->e[j].ws, ws)))
        j = (j + 1) & (WSR_SLOTS - 1);
    if (!w->e[j].h && w->used >= WSR_SLOTS * 3 / 4) {
        size_t lru = 0;
        uint64_t oldest = UINT64_MAX;
        for (size_t i = 0; i < WSR_SLOTS; i++)
            if (w->e[i].h && w->e[i].used_tick < oldest) {
                oldest = w->e[i].used_tick;
                lru = i;
            }
        wsr_remove(w, lru);
        j = h & (WSR_SLOTS - 1); /* the removal may have moved entries */
        while (w->e[j].h)
            j = (j + 1) & (WSR_SLOTS - 1);
    }
    struct wsr_entry *x = &w->e[j];
    if (!x->h) {
        x->h = h;
        snprintf(x->ws, sizeof x->ws, "%s", ws);
        w->used++;
    }
    x->used_tick = ++w->tick;
    return x;
}

static void wsr_log(struct api_wsrate *w, int64_t now_ms, const char *what, const char *ws, int rc,
                    const struct err *e)
{
    bool log;
    pthread_mutex_lock(&w->mu);
    log = now_ms - w->last_err_log_ms >= 10000;
    if (log)
        w->last_err_log_ms = now_ms;
    pthread_mutex_unlock(&w->mu);
    if (log)
        log_warn("api", "workspace rate limit not applied: %s ws=%s error=%s", what, ws, err_text(e, rc));
}

int64_t api_wsrate_take(struct api_wsrate *w, const char *ws, int64_t now_ms)
{
    int64_t rate, burst, blocked, wait = 0;
    bool stale;
    struct err e = ERR_INIT;

    pthread_mutex_lock(&w->mu);
    struct wsr_entry *x = wsr_slot(w, ws);
    stale = x->fetched_ms == 0 || now_ms < x->fetched_ms || now_ms - x->fetched_ms >= API_WSRATE_REFRESH_MS;
    rate = x->rate;
    burst = x->burst;
    blocked = x->blocked_until_ms;
    pthread_mutex_unlock(&w->mu);

    if (stale) {
        /* On a database error the values known keep applying (none at
         * first) and the next try is a refresh period later: an
         * unreachable database costs no extra call per request. */
        int64_t r, bu;
        int rc = store_rate_limits(w->st, ws, &r, &bu, &e);
        if (rc < 0)
            wsr_log(w, now_ms, "cannot read the limits", ws, rc, &e);
        pthread_mutex_lock(&w->mu);
        x = wsr_slot(w, ws); /* the entry may have been evicted meanwhile */
        if (rc == 0) {
            x->rate = r;
            x->burst = bu;
        }
        x->fetched_ms = now_ms;
        rate = x->rate;
        burst = x->burst;
        blocked = x->blocked_until_ms;
        pthread_mutex_unlock(&w->mu);
    }
    if (rate <= 0)
        return 0;
    if (now_ms < blocked)
        return blocked - now_ms;

    /* Requests reserved earlier first; else reserve `chunk` at once: it
     * doubles while reservations run out within their lifetime (busy
     * workspace) and halves when they expire unused, between 1 and
     * kmax (1/20 s of the rate, 1/4 of the burst). */
    int64_t kmax = MIN(rate / 20, (burst >= 1 ? burst : rate) / 4), n, got = 0;
    kmax = MAX(kmax, 1);
    pthread_mutex_lock(&w->mu);
    x = wsr_slot(w, ws);
    bool live = now_ms < x->local_until_ms;
    if (live && x->local > 0) {
        x->local--;
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    if (x->chunk < 1)
        x->chunk = 1;
    else if (live) /* all used before they expired */
        x->chunk = MIN(x->chunk * 2, kmax);
    else
        x->chunk = MAX(x->chunk / 2, 1);
    n = MIN(x->chunk, kmax);
    pthread_mutex_unlock(&w->mu);

    int rc = store_rate_take_n(w->st, ws, rate, burst, now_ms, n, &got, &wait, &e);
    if (rc < 0) {
        wsr_log(w, now_ms, "cannot count the request", ws, rc, &e);
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    x = wsr_slot(w, ws);
    if (wait > 0) {
        if (x->blocked_until_ms < now_ms + wait)
            x->blocked_until_ms = now_ms + wait;
    } else if (got >= 1) {
        x->local = (now_ms < x->local_until_ms ? x->local : 0) + got - 1;
        x->local_until_ms = now_ms + API_WSRATE_RESERVE_MS;
    }
    pthread_mutex_unlock(&w->mu);
    return wait;
}
