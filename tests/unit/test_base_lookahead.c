/* lookahead: order, bounded run-ahead, early stop frees what was produced. */
#include "t.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/base.h"

struct prod {
    pthread_mutex_t mu;
    int prio; /* nice value seen by the producer thread */
    size_t calls;     /* items produced so far */
    size_t max_ahead; /* largest calls - consumed seen by the producer */
    size_t consumed;
};

static void *make_item(void *ud, size_t i)
{
    struct prod *p = ud;
    pthread_mutex_lock(&p->mu);
    p->prio = getpriority(PRIO_PROCESS, (id_t)gettid());
    p->calls++;
    if (p->calls - p->consumed > p->max_ahead)
        p->max_ahead = p->calls - p->consumed;
    pthread_mutex_unlock(&p->mu);
    if (i % 7 == 3)
        return NULL; /* a NULL result is passed through */
    size_t *r = xmalloc(sizeof(*r));
    *r = i * 10 + 1;
    return r;
}

TEST(lookahead_order_and_depth)
{
    struct prod p = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    struct lookahead *la = NULL;
    ASSERT_OK(lookahead_start(100, 2, 0, make_item, &p, &la));
    for (size_t i = 0; i < 100; i++) {
        if (i % 10 == 0)
            usleep(2000); /* a slow consumer: the producer must wait, not run on */
        size_t *r = lookahead_take(la, i);
        pthread_mutex_lock(&p.mu);
        p.consumed = i + 1;
        pthread_mutex_unlock(&p.mu);
        if (i % 7 == 3) {
            ASSERT(r == NULL);
        } else {
            ASSERT(r != NULL);
            ASSERT_EQ(*r, i * 10 + 1);
        }
        free(r);
    }
    lookahead_stop(la, free);
    ASSERT_EQ(p.calls, 100);
    /* taken + depth, counted at the producer before the consumer records
     * its take: never more than depth + 1 */
    ASSERT_LE(p.max_ahead, 3);
}

TEST(lookahead_early_stop_frees)
{
    /* stop after two items: the produced but untaken results are freed
     * (LeakSanitizer checks), and the producer does not run to the end */
    struct prod p = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    struct lookahead *la = NULL;
    ASSERT_OK(lookahead_start(1000, 3, 5, make_item, &p, &la));
    free(lookahead_take(la, 0));
    free(lookahead_take(la, 1));
    /* the producer runs 5 nice steps below the caller (per-thread on Linux) */
    pthread_mutex_lock(&p.mu);
    ASSERT_EQ(p.prio, MIN(getpriority(PRIO_PROCESS, (id_t)gettid()) + 5, 19));
    pthread_mutex_unlock(&p.mu);
    usleep(20000);
    lookahead_stop(la, free);
    ASSERT_LE(p.calls, 6);
    lookahead_stop(NULL, free);
}

TEST(lookahead_empty)
{
    struct prod p = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    struct lookahead *la = NULL;
    ASSERT_OK(lookahead_start(0, 1, 0, make_item, &p, &la));
    lookahead_stop(la, free);
    ASSERT_EQ(p.calls, 0);
}

static void *slow_item(void *ud, size_t i)
{
    (void)ud;
    usleep(i == 1 ? 300000 : 0); /* item 1 takes 300 ms */
    size_t *r = xmalloc(sizeof(*r));
    *r = i + 100;
    return r;
}

/* A timed take hands back ERR_AGAIN while the item is still being made
 * (the caller renews its lease meanwhile), then the item itself. */
TEST(lookahead_take_wait_times_out_then_takes)
{
    struct lookahead *la = NULL;
    void *r = NULL;
    ASSERT_OK(lookahead_start(3, 1, 0, slow_item, NULL, &la));
    ASSERT_OK(lookahead_take_wait(la, 0, 5000, &r));
    ASSERT_EQ(*(size_t *)r, 100);
    free(r);
    int64_t t0 = time_mono_ms();
    int waits = 0, rc;
    while ((rc = lookahead_take_wait(la, 1, 50, &r)) == ERR_AGAIN) {
        ASSERT(r == NULL);
        waits++;
    }
    ASSERT_OK(rc);
    ASSERT_EQ(*(size_t *)r, 101);
    free(r);
    ASSERT(waits >= 1 && waits <= 12); /* 300 ms in 50 ms waits (fewer on a loaded machine) */
    ASSERT(time_mono_ms() - t0 >= 250);
    ASSERT_OK(lookahead_take_wait(la, 2, -1, &r)); /* no limit */
    ASSERT_EQ(*(size_t *)r, 102);
    free(r);
    lookahead_stop(la, free);
}

TEST_MAIN()
