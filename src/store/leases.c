/*
 * leases.c — owner of the table `leases` (store.h, "singleton leases"): a
 * named lease that one owner (store_owner(): one per process) holds at a
 * time, for background work that must run in one process at a time across
 * every process on the database (the expiry sweeper).
 *
 *   free ─take─► held by A until T ─take by A (renew)─► held by A until T'
 *                     │  └─release by A─► free
 *                     └─T passes (A died or stalled)─► take by B ─► held by B
 *
 * A take is one statement, an upsert whose update applies only when the
 * row is the taker's own or has expired: SQLite's writer lock serialises
 * two takers; on PostgreSQL the unique key makes the second wait for the
 * first's commit and then re-check the condition against the new row, so
 * two takers never both see 1.
 */
#include "store/store.h"

#include "store/store_int.h"

int store_lease_take(struct store *st, const char *name, const char *owner, int64_t ttl_ms, struct err *e)
{
    int64_t now = time_now_ms();
    struct db_conn *c = store__acquire(st, e);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_run(c, e, "INSERT INTO leases(name, owner, until_ms) VALUES(?1, ?2, ?3)"
                          " ON CONFLICT(name) DO UPDATE SET owner=excluded.owner, until_ms=excluded.until_ms"
                          " WHERE leases.owner=excluded.owner OR leases.until_ms<=?4",
                    "ttii", name, owner, now + MAX(ttl_ms, 1), now);
    if (rc == 0)
        rc = db_changes(c) == 1 ? 1 : 0;
    store__release(st, c);
    return rc;
}

int store_lease_release(struct store *st, const char *name, const char *owner, struct err *e)
{
    struct db_conn *c = store__acquire(st, e);
    if (!c)
        return ERR_UNAVAILABLE;
    int rc = db_run(c, e, "DELETE FROM leases WHERE name=?1 AND owner=?2", "tt", name, owner);
    store__release(st, c);
    return rc;
}
