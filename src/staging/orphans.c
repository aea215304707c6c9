/*
 * orphans.c — the orphan blob sweeper (docs/STORAGE.md "Orphan objects"):
 * every orphan_sweep_ms the process holding the "orphan-sweep" lease runs
 * store_orphans_sweep, which deletes the blobs older than
 * orphan_grace_ms that no row references (a process died between writing
 * them and committing their row).  One process at a time across the
 * processes on the database, as the expiry sweeper: the lease is taken for
 * three periods (at least a minute, or staging_opts.lease_floor_ms in
 * tests) and renewed every second of a walk
 * (the walk is paced to orphan_keys_per_s keys a second, so one walk of a
 * large store can outlast a period); a walk whose renewal fails stops.
 *
 * An orphan lingers at most grace + period + the walk's length (keys /
 * keys_per_s) after its last write.
 */
#include "staging/staging_int.h"

#define ORPHAN_LEASE "orphan-sweep"

struct orphan_tick {
    struct staging *s;
    int64_t ttl_ms;
};

static int orphan_tick(void *ud)
{
    struct orphan_tick *t = ud;
    struct err e = ERR_INIT;
    pthread_mutex_lock(&t->s->mu);
    bool stop = t->s->stop;
    pthread_mutex_unlock(&t->s->mu);
    if (stop)
        return 1;
    return store_lease_take(t->s->st, ORPHAN_LEASE, store_owner(t->s->st), t->ttl_ms, &e) == 1 ? 0 : 1;
}

void *staging__orphans_main(void *arg)
{
    struct staging *s = arg;
    int64_t period = s->o.orphan_sweep_ms > 0 ? s->o.orphan_sweep_ms : 3600 * 1000LL;
    struct orphan_tick t = {s, MAX(3 * period, s->o.lease_floor_ms > 0 ? s->o.lease_floor_ms : 60000)};
    const char *me = store_owner(s->st);
    struct store_orphan_opts o = {s->o.orphan_grace_ms, s->o.orphan_keys_per_s, 0, orphan_tick, &t};
    int held = -1;
    while (staging__wait_stop(s, period)) {
        struct err e = ERR_INIT;
        struct store_orphan_stats n = {0};
        int got = store_lease_take(s->st, ORPHAN_LEASE, me, t.ttl_ms, &e);
        if (got < 0) {
            log_warn("staging", "orphan sweeper: cannot take its lease: %s", err_text(&e, got));
            continue;
        }
        if (got != held)
            log_info("staging", got ? "orphan sweeper lease taken owner=%s"
                                    : "orphan sweeper lease held by another process (this one is owner=%s)", me);
        held = got;
        if (!got)
            continue;
        int64_t t0 = time_now_ms();
        int rc = store_orphans_sweep(s->st, &o, &n, &e);
        if (rc < 0)
            log_warn("staging", "orphan sweep: %s", err_text(&e, rc));
        if (n.deleted || n.errors || rc < 0)
            log_info("staging", "orphan sweep: %lld blobs listed, %lld looked up, %lld orphans deleted, %lld errors"
                                " in %lld ms", (long long)n.listed, (long long)n.checked, (long long)n.deleted,
                     (long long)n.errors, (long long)(time_now_ms() - t0));
    }
    if (held == 1) {
        struct err e = ERR_INIT;
        store_lease_release(s->st, ORPHAN_LEASE, me, &e);
    }
    return NULL;
}
