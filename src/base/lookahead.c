/*
 * lookahead.c — a producer thread running at most `depth` items ahead of
 * its consumer (base.h, "run-ahead").
 *
 * The ring holds depth slots; item i lives in slot i % depth.  The producer
 * waits while produced - taken == depth; the consumer waits while item i is
 * not produced yet.  One mutex and two condition variables: the amounts of
 * work per item (milliseconds of JPEG decoding) make anything cleverer
 * pointless.
 *
 * Priority: with ONNX Runtime's intra-op threads on every core, a producer
 * at the same priority takes time slices from them and stalls their
 * parallel sections; at nice +10 it runs in the gaps they leave
 * (bench/bench_model, "vbatch_pipelined": 0.81-0.88 of bare ORT at nice 0,
 * 0.94-0.97 at +10 on 2 cores).  On Linux the nice value is per thread.
 */
#include "base/base.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define LOOKAHEAD_MAX_DEPTH 16

struct lookahead {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t can_produce, can_take;
    lookahead_fn fn;
    void *ud;
    size_t n;
    size_t produced; /* items 0..produced-1 are done (or taken) */
    size_t taken;    /* items 0..taken-1 were handed over */
    bool stop;
    int depth;
    int nice;
    void *slot[LOOKAHEAD_MAX_DEPTH];
};

static void *lookahead_main(void *p)
{
    struct lookahead *la = p;

    if (la->nice > 0) /* best effort: a failure only costs speed */
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), getpriority(PRIO_PROCESS, (id_t)gettid()) + la->nice);
    pthread_mutex_lock(&la->mu);
    for (;;) {
        while (!la->stop && la->produced < la->n && la->produced - la->taken >= (size_t)la->depth)
            pthread_cond_wait(&la->can_produce, &la->mu);
        if (la->stop || la->produced >= la->n)
            break;
        size_t i = la->produced;
        pthread_mutex_unlock(&la->mu);
        void *r = la->fn(la->ud, i);
        pthread_mutex_lock(&la->mu);
        la->slot[i % (size_t)la->depth] = r;
        la->produced = i + 1;
        pthread_cond_signal(&la->can_take);
    }
    pthread_mutex_unlock(&la->mu);
    return NULL;
}

int lookahead_start(size_t n, int depth, int nice, lookahead_fn fn, void *ud, struct lookahead **out)
{
    struct lookahead *la = calloc(1, sizeof(*la));
    int rc;

    *out = NULL;
    if (!la)
        return ERR_NOMEM;
    la->fn = fn;
    la->ud = ud;
    la->n = n;
    la->depth = MAX(1, MIN(depth, LOOKAHEAD_MAX_DEPTH));
    la->nice = MAX(0, MIN(nice, 19));
    pthread_mutex_init(&la->mu, NULL);
    pthread_cond_init(&la->can_produce, NULL);
    pthread_cond_init(&la->can_take, NULL);
    rc = pthread_create(&la->th, NULL, lookahead_main, la);
    if (rc != 0) {
        pthread_cond_destroy(&la->can_take);
        pthread_cond_destroy(&la->can_produce);
        pthread_mutex_destroy(&la->mu);
        free(la);
        return rc == EAGAIN ? ERR_NOMEM : -rc;
    }
    *out = la;
    return 0;
}

void *lookahead_take(struct lookahead *la, size_t i)
{
    void *r = NULL;
    (void)lookahead_take_wait(la, i, -1, &r);
    return r;
}

int lookahead_take_wait(struct lookahead *la, size_t i, int64_t timeout_ms, void **out)
{
    void *r;
    struct timespec until;

    *out = NULL;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(timeout_ms / 1000);
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&la->mu);
    if (i != la->taken || i >= la->n) { /* out of order: a caller bug */
        pthread_mutex_unlock(&la->mu);
        abort();
    }
    while (la->produced <= i) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&la->can_take, &la->mu);
        } else if (pthread_cond_timedwait(&la->can_take, &la->mu, &until) == ETIMEDOUT && la->produced <= i) {
            pthread_mutex_unlock(&la->mu);
            return ERR_AGAIN;
        }
    }
    r = la->slot[i % (size_t)la->depth];
    la->slot[i % (size_t)la->depth] = NULL;
    la->taken = i + 1;
    pthread_cond_signal(&la->can_produce);
    pthread_mutex_unlock(&la->mu);
    *out = r;
    return 0;
}

void lookahead_stop(struct lookahead *la, void (*free_fn)(void *))
{
    if (!la)
        return;
    pthread_mutex_lock(&la->mu);
    la->stop = true;
    pthread_cond_signal(&la->can_produce);
    pthread_mutex_unlock(&la->mu);
    pthread_join(la->th, NULL);
    for (size_t i = la->taken; i < la->produced; i++) {
        void *r = la->slot[i % (size_t)la->depth];
        if (r && free_fn)
            free_fn(r);
    }
    pthread_cond_destroy(&la->can_take);
    pthread_cond_destroy(&la->can_produce);
    pthread_mutex_destroy(&la->mu);
    free(la);
}
