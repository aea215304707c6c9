/*
 * db_sqlite.c — the SQLite backend of the SQL layer (db.h).
 *
 * Each connection runs in WAL mode (readers never block the writer) with a
 * 5 s busy timeout, synchronous=NORMAL (durable across process crashes;
 * checkpoints are fsynced) and foreign keys on.  Write transactions start
 * with BEGIN IMMEDIATE so that lock upgrades never deadlock.  The common
 * dialect's ?N parameters are SQLite's own, so the text runs as written;
 * the parameters kept by db.c are bound at the first db_step.
 *
 * Statement cache: each connection keeps up to SQ_CACHE prepared
 * statements (sqlite3_prepare_v3 with SQLITE_PREPARE_PERSISTENT), keyed by
 * the SQL text, as db_pg.c keeps its server-side ones.  db_prepare of a
 * text the connection has cached and not in use takes that statement;
 * db_finalize resets it, clears its bindings and gives it back (a reset
 * statement holds no read transaction, so a pooled connection holds none
 * either).  A text prepared again while its cached statement is in use
 * (nested loops) gets a fresh statement, never the same handle twice.
 * When the cache is full the least recently used statement not in use is
 * finalized; a connection whose every cached statement is in use prepares
 * one-shot statements.  Schema changes need nothing: SQLite prepares a
 * statement again by itself when the schema it was prepared on changed
 * (tested with ALTER TABLE, CREATE INDEX and a table made anew by another
 * connection).  Preparing was ~18% of the CPU of a 500-row staging shard
 * transaction; bench_store_shardtx: the shard transaction 2,640 -> 2,460
 * µs, the signed-URL row's transaction p99 470 -> 300 µs.
 *
 * WAL checkpoints: by default SQLite checkpoints in the commit that makes
 * the WAL reach 1000 pages (after the write lock is let go, but before
 * sqlite3_step returns), fsync included, so the request that happens to
 * cross it pays 10-30 ms on a slow disk.  Here a WAL hook on each pool
 * connection counts the WAL's frames and wakes one checkpointer thread per
 * database (db__sqlite_open / db__sqlite_close), which runs PASSIVE
 * checkpoints on a connection of its own when the WAL grew by CKPT_PAGES
 * frames since the last one, and at least every CKPT_PERIOD_MS while
 * there were commits.  PASSIVE never waits for anybody, but under a steady
 * stream of commits the WAL is never all copied back at the moment a
 * writer starts, and only then does SQLite start the WAL file from its
 * beginning: so once the WAL reached CKPT_RESTART_FRAMES (8 MiB) the
 * PASSIVE pass is followed by a RESTART one, which copies the few frames
 * written meanwhile holding the write lock and waits at most
 * CKPT_RESTART_WAIT_MS for readers.  When even that cannot keep up (long
 * readers) and the WAL reaches CKPT_HARD_FRAMES (~64 MiB of 4 KiB pages),
 * the committing connection checkpoints itself as SQLite would.  Another
 * process on the same file (vbatch worker) runs its own checkpointer;
 * checkpoints serialise in SQLite (one that finds another running returns
 * SQLITE_BUSY and is tried again later).  bench_store_shardtx with both:
 * the shard transaction 2,640 -> 2,170 µs (the checkpoints on the other
 * core).  It is OFF unless VBATCH_DB_SQLITE_CHECKPOINTER=1 (read at
 * db_open): with it, a data folder that had filled up could no longer
 * record "waiting for storage" for its shards and job tasks
 * (tests/e2e/test_storage_full.py), since SQLite's own checkpoint in the
 * commit keeps the WAL file short and reused, while the background one
 * lets it grow past the room left; and end to end (bench/ingest_tar.sh) it
 * showed no gain over the statement cache alone.  VBATCH_DB_SQLITE_STMT_CACHE=0
 * turns the cache off (benchmarks; read at db_open).
 */
#include "store/db_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#define BUSY_TIMEOUT_MS 5000
#define SQ_CACHE 64              /* prepared statements kept per connection */
#define CKPT_PAGES 1000          /* WAL growth (frames) that wakes the checkpointer: SQLite's default */
#define CKPT_PERIOD_MS 1000      /* at least this often while there were commits */
#define CKPT_RESTART_FRAMES 2000 /* a WAL this long is started afresh (RESTART) */
#define CKPT_RESTART_WAIT_MS 20  /* how long RESTART waits for the writer and readers */
#define CKPT_HARD_FRAMES 16000   /* ~64 MiB of 4 KiB frames: the committer checkpoints itself */

/* ---- the checkpointer (one per database) ---------------------------- */

struct sq_ckpt {
    char *target;
    bool enabled;      /* VBATCH_DB_SQLITE_CHECKPOINTER */
    bool cache;        /* VBATCH_DB_SQLITE_STMT_CACHE */
    bool running;      /* the thread was started */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool wake;         /* the WAL grew by CKPT_PAGES */
    uint64_t commits;  /* commits seen by the WAL hook since the last checkpoint */
    int base;          /* WAL frames at the last checkpoint (0: the WAL started afresh since) */
    int last;          /* WAL frames at the last commit */
    int last_err;      /* the last checkpoint's failure (SQLite code; the thread's own) */
};

static bool env_off(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "0");
}

static void *ckpt_main(void *arg)
{
    struct sq_ckpt *k = arg;
    sqlite3 *h = NULL;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        struct timespec ts;
        time_mono_deadline(&ts, CKPT_PERIOD_MS);
        while (!k->stop && !k->wake)
            if (pthread_cond_timedwait(&k->cv, &k->mu, &ts) != 0)
                break; /* the period passed */
        if (k->stop)
            break;
        if (!k->commits) {
            k->wake = false;
            continue;
        }
        k->commits = 0;
        k->wake = false;
        pthread_mutex_unlock(&k->mu);
        if (!h) {
            if (sqlite3_open_v2(k->target, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK) {
                sqlite3_exec(h, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
            } else {
                sqlite3_close(h); /* tried again at the next round */
                h = NULL;
            }
        }
        int nlog = -1, nckpt = -1;
        int src = h ? sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt) : SQLITE_CANTOPEN;
        if (src == SQLITE_OK && nlog >= CKPT_RESTART_FRAMES) {
            /* Under a steady stream of commits the WAL is never all copied
             * back at the moment a writer starts, so it is never started
             * afresh and keeps growing.  Now that PASSIVE copied all but
             * the last few frames, RESTART copies those holding the write
             * lock (briefly) and waits for readers, so that the next
             * writer starts the WAL from its beginning. */
            sqlite3_busy_timeout(h, CKPT_RESTART_WAIT_MS);
            src = sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_RESTART, &nlog, &nckpt);
            sqlite3_busy_timeout(h, 0);
        }
        if (src != SQLITE_OK && src != SQLITE_BUSY && src != k->last_err) /* once per kind of failure */
            log_warn("db", "WAL checkpoint: %s", h ? sqlite3_errmsg(h) : "cannot open the database");
        k->last_err = src == SQLITE_BUSY ? k->last_err : src;
        pthread_mutex_lock(&k->mu);
        if (nlog >= 0 && k->last >= nlog) /* (else the WAL started afresh meanwhile) */
            k->base = nlog;
        log_debug("db", "WAL checkpoint: %d of %d frames copied back (%d)", nckpt, nlog, src);
    }
    pthread_mutex_unlock(&k->mu);
    sqlite3_close(h);
    return NULL;
}

void db__sqlite_open(struct db *d)
{
    struct sq_ckpt *k = xcalloc(1, sizeof *k);
    k->target = xstrdup(d->target);
    /* opt-in: see "WAL checkpoints" above for why it is off by default */
    const char *ck = getenv("VBATCH_DB_SQLITE_CHECKPOINTER");
    k->enabled = ck && !strcmp(ck, "1");
    k->cache = !env_off("VBATCH_DB_SQLITE_STMT_CACHE");
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &a);
    pthread_condattr_destroy(&a);
    if (k->enabled) {
        int en = pthread_create(&k->th, NULL, ckpt_main, k);
        if (en == 0)
            k->running = true;
        else
            log_warn("db", "no WAL checkpointer thread (%s): commits checkpoint", strerror(en));
    }
    d->bk = k;
}

void db__sqlite_close(struct db *d)
{
    struct sq_ckpt *k = d->bk;
    if (!k)
        return;
    if (k->running) {
        pthread_mutex_lock(&k->mu);
        k->stop = true;
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->th, NULL);
    }
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k->target);
    free(k);
    d->bk = NULL;
}

/* After each commit on a pool connection: frames is the WAL's size in
 * frames.  Runs on the committing thread, after the write lock is let go. */
static int wal_hook(void *ud, sqlite3 *h, const char *dbname, int frames)
{
    struct sq_ckpt *k = ud;
    if (frames >= CKPT_HARD_FRAMES) {
        /* the checkpointer does not keep up: as SQLite's auto-checkpoint */
        sqlite3_wal_checkpoint_v2(h, dbname, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
    }
    pthread_mutex_lock(&k->mu);
    k->commits++;
    if (frames < k->last) /* a checkpointed WAL was started afresh */
        k->base = 0;
    k->last = frames;
    if (frames - k->base >= CKPT_PAGES && !k->wake) {
        k->wake = true;
        pthread_cond_signal(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
    return SQLITE_OK;
}

/* ---- the statement cache (one per connection) ----------------------- */

struct sq_cached {
    char *sql;
    sqlite3_stmt *q;
    bool in_use;
    uint64_t used; /* LRU clock */
};

struct sq_conn {
    struct sq_cached c[SQ_CACHE];
    int n;
    uint64_t clock;
};

/* The code of a failed SQLite call (the extended code's primary part). */
static int code_of(sqlite3 *h, int src)
{
    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ERR_AGAIN;
    case SQLITE_FULL:
        return ERR_NOSPACE;
    case SQLITE_CONSTRAINT: {
        /* Primary codes are kept on the connection (code not yet on this
         * layer compares them); the extended one tells unique keys apart. */
        int x = h ? sqlite3_extended_errcode(h) : src;
        return x == SQLITE_CONSTRAINT_UNIQUE || x == SQLITE_CONSTRAINT_PRIMARYKEY ? ERR_EXISTS : ERR_INTERNAL;
    }
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: {
        int en = h ? sqlite3_system_errno(h) : 0;
        return en == ENOSPC || en == EDQUOT ? ERR_NOSPACE : ERR_INTERNAL;
    }
    default:
        return ERR_INTERNAL;
    }
}

static int fail(struct db_conn *c, int src, const char *what, struct err *e)
{
    sqlite3 *h = c->h;
    int rc = code_of(h, src);
    const char *msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(src);
    if (rc == ERR_INTERNAL)
        log_error("db", "%s: %s", what, msg);
    if (rc == ERR_NOSPACE)
        return err_set(e, rc, "storage full: the database cannot grow (%s)", msg);
    if (rc == ERR_AGAIN)
        return err_set(e, rc, "database busy");
    return err_set(e, rc, "database: %s", msg);
}

int db__sqlite_connect(struct db *d, struct db_conn *c, struct err *e)
{
    sqlite3 *h = NULL;
    int src = sqlite3_open_v2(d->target, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                              NULL);
    if (src != SQLITE_OK) {
        int rc = err_set(e, code_of(h, src), "cannot open the database '%s': %s", d->display,
                         h ? sqlite3_errmsg(h) : sqlite3_errstr(src));
        sqlite3_close(h);
        return rc < 0 ? rc : ERR_INTERNAL;
    }
    sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS);
    c->h = h;
    /* Switching a new database file to WAL takes an exclusive lock that
     * SQLite does not wait for with the busy handler: processes opening a
     * new data folder at the same moment get SQLITE_BUSY here.  Wait for it
     * as the busy timeout would. */
    int rc = 0;
    for (int waited = 0;; waited += 10) {
        rc = db__sqlite_exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", e);
        if (rc != ERR_AGAIN || waited >= BUSY_TIMEOUT_MS)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
    }
    if (rc < 0) {
        sqlite3_close(h);
        c->h = NULL;
        return rc;
    }
    struct sq_ckpt *k = d->bk;
    if (k && k->running)
        sqlite3_wal_hook(h, wal_hook, k); /* replaces SQLite's auto-checkpoint */
    if (!k || k->cache)
        c->aux = xcalloc(1, sizeof(struct sq_conn));
    return 0;
}

void db__sqlite_disconnect(struct db_conn *c)
{
    struct sq_conn *sc = c->aux;
    if (sc) {
        for (int i = 0; i < sc->n; i++) {
            if (sc->c[i].in_use) /* a statement not finalized: a caller's bug */
                log_warn("db", "closing a connection with a statement in use: %.200s", sc->c[i].sql);
            sqlite3_finalize(sc->c[i].q);
            free(sc->c[i].sql);
        }
        free(sc);
        c->aux = NULL;
    }
    sqlite3_close(c->h);
    c->h = NULL;
}

int db__sqlite_exec(struct db_conn *c, const char *sql, struct err *e)
{
    int src = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return fail(c, src, "exec", e);
    c->changes = sqlite3_changes64(c->h);
    return 0;
}

int db__sqlite_begin(struct db_conn *c, struct err *e)
{
    int src = sqlite3_exec(c->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src == SQLITE_OK)
        return 0;
    if (code_of(c->h, src) == ERR_AGAIN)
        log_warn("db", "database busy: write transaction not started");
    return fail(c, src, "BEGIN", e);
}

void db__sqlite_idle(struct db_conn *c)
{
    for (sqlite3_stmt *q = sqlite3_next_stmt(c->h, NULL); q; q = sqlite3_next_stmt(c->h, q))
        if (sqlite3_stmt_busy(q)) {
            log_warn("db", "a connection went back to the pool with a statement running (a caller's bug: it"
                           " holds a read transaction, which stops checkpoints): %.200s", sqlite3_sql(q));
            break;
        }
}

bool db__sqlite_in_tx(const struct db_conn *c)
{
    return c->h && !sqlite3_get_autocommit(c->h);
}

/* The slot a new statement of sc goes to: a free one (one emptied by an
 * eviction whose prepare then failed, or a new one), else the least
 * recently used one not in use (finalized), else -1 (all in use). */
static int cache_slot(struct sq_conn *sc)
{
    int lru = -1;
    for (int i = 0; i < sc->n; i++) {
        if (!sc->c[i].q)
            return i;
        if (!sc->c[i].in_use && (lru < 0 || sc->c[i].used < sc->c[lru].used))
            lru = i;
    }
    if (sc->n < SQ_CACHE)
        return sc->n;
    if (lru >= 0) {
        sqlite3_finalize(sc->c[lru].q);
        free(sc->c[lru].sql);
        sc->c[lru] = (struct sq_cached){0};
    }
    return lru;
}

int db__sqlite_prepare(struct db_stmt *s, struct err *e)
{
    struct sq_conn *sc = s->c->aux;
    int slot = -1;
    if (sc) {
        for (int i = 0; i < sc->n; i++)
            if (sc->c[i].q && !sc->c[i].in_use && !strcmp(sc->c[i].sql, s->sql)) {
                sc->c[i].in_use = true;
                sc->c[i].used = ++sc->clock;
                s->h = sc->c[i].q;
                s->aux = &sc->c[i];
                return 0;
            }
        slot = cache_slot(sc);
    }
    sqlite3_stmt *q = NULL;
    int src = sqlite3_prepare_v3(s->c->h, s->sql, -1, slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0, &q, NULL);
    if (src != SQLITE_OK) {
        log_error("db", "cannot prepare: %s: %.200s", sqlite3_errmsg(s->c->h), s->sql);
        return fail(s->c, src, "prepare", e);
    }
    s->h = q;
    if (slot >= 0 && q) { /* q is NULL for a text of only comments or spaces */
        struct sq_cached *x = &sc->c[slot];
        x->sql = xstrdup(s->sql);
        x->q = q;
        x->in_use = true;
        x->used = ++sc->clock;
        if (slot == sc->n)
            sc->n++;
        s->aux = x;
    }
    return 0;
}

static void bind_all(struct db_stmt *s)
{
    sqlite3_stmt *q = s->h;
    sqlite3_clear_bindings(q);
    for (int i = 0; i < s->np; i++) {
        const struct db_param *p = &s->p[i];
        switch (p->type) {
        case DBP_INT:
            sqlite3_bind_int64(q, i + 1, p->i);
            break;
        case DBP_DOUBLE:
            sqlite3_bind_double(q, i + 1, p->d);
            break;
        case DBP_TEXT:
            sqlite3_bind_text(q, i + 1, p->s, (int)p->len, SQLITE_STATIC);
            break;
        case DBP_BLOB:
            sqlite3_bind_blob(q, i + 1, p->s, (int)p->len, SQLITE_STATIC);
            break;
        case DBP_NULL:
            sqlite3_bind_null(q, i + 1);
            break;
        }
    }
}

int db__sqlite_step(struct db_stmt *s, struct err *e)
{
    if (!s->started)
        bind_all(s);
    int src = sqlite3_step(s->h);
    if (src == SQLITE_ROW)
        return DB_ROW;
    if (src == SQLITE_DONE) {
        s->c->changes = sqlite3_changes64(s->c->h);
        return DB_DONE;
    }
    return fail(s->c, src, "step", e);
}

void db__sqlite_reset(struct db_stmt *s)
{
    sqlite3_reset(s->h);
}

void db__sqlite_finalize(struct db_stmt *s)
{
    struct sq_cached *x = s->aux;
    if (x) { /* back to the cache: reset (no read transaction held), unbound */
        sqlite3_reset(s->h);
        sqlite3_clear_bindings(s->h);
        x->in_use = false;
        s->aux = NULL;
    } else {
        sqlite3_finalize(s->h);
    }
    s->h = NULL;
}

bool db__sqlite_col_null(struct db_stmt *s, int col)
{
    return sqlite3_column_type(s->h, col) == SQLITE_NULL;
}

int64_t db__sqlite_col_int64(struct db_stmt *s, int col)
{
    return sqlite3_column_int64(s->h, col);
}

double db__sqlite_col_double(struct db_stmt *s, int col)
{
    return sqlite3_column_double(s->h, col);
}

const char *db__sqlite_col_text(struct db_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(s->h, col);
}

const void *db__sqlite_col_blob(struct db_stmt *s, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(s->h, col);
    *len = (size_t)sqlite3_column_bytes(s->h, col);
    return p;
}

int db__sqlite_col_count(struct db_stmt *s)
{
    return sqlite3_column_count(s->h);
}
