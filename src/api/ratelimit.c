/*
 * ratelimit.c — the per-key request rate limit of api_auth (api.h): a
 * token bucket per API key, in this process only.
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
