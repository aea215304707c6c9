/* The per-workspace request limit's cache (api_wsrate, src/api/ratelimit.c):
 * many active workspaces must not make a busy one lose the requests it
 * reserved in the database. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "store/store_staging.h"
#include "t.h"
#include "t_pg.h"

static struct store *open_tmp(void)
{
    struct store *st = NULL;
    struct err e = ERR_INIT;
    char *d = strdup("/tmp/vbatch-wsrate-XXXXXX");
    if (!mkdtemp(d))
        abort();
    if (t_open(d, &st) < 0)
        T_FAIL("store_open failed");
    free(d);
    if (store_staging_migrate(st, &e) < 0 || store_jobs_migrate(st, &e) < 0)
        T_FAIL("migrate: %s", e.msg);
    return st;
}

/* A workspace with a burst of 1000 gets exactly 1000 requests at one
 * instant, even while 2,000 other workspaces pass through the cache (more
 * than its 768 places): the busy workspace is not the one evicted, so the
 * requests it reserved ahead in the database are not thrown away.  (The
 * old cache emptied itself when 3/4 full and lost them: fewer than 1000.) */
BOTH(busy_workspace_keeps_its_reservations_among_many)
{
    struct store *st = open_tmp();
    struct err e = ERR_INIT;
    const int64_t t0 = 1700000000000;
    ASSERT_OK(store_quota_set(st, "hot", &(struct store_quota){-1, -1, -1, 1000, 1000}, &e));
    struct api_wsrate *w = api_wsrate_new(st);
    int ok = 0, refused = 0;
    char ws[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(ws, sizeof ws, "other%d", i);
        ASSERT_EQ(api_wsrate_take(w, ws, t0), 0); /* no limit of their own */
        if (i % 4 == 0) {
            if (api_wsrate_take(w, "hot", t0) == 0)
                ok++;
            else
                refused++;
        }
    }
    ASSERT_EQ(refused, 0);
    ASSERT_EQ(ok, 500);
    /* the rest of the burst, then refused */
    int64_t wait = 0;
    while ((wait = api_wsrate_take(w, "hot", t0)) == 0 && ok < 2000)
        ok++;
    ASSERT_EQ(ok, 1000);
    ASSERT(wait > 0);
    /* and it stays refused */
    ASSERT(api_wsrate_take(w, "hot", t0) > 0);
    api_wsrate_free(w);
    store_close(st);
}

TEST_MAIN()
