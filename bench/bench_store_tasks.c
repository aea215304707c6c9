/*
 * bench_store_tasks — the coordination cost of batch jobs: task claims and
 * completions through the store's own calls (store_task_claim,
 * store_task_complete: the lease state machine's SQL, nothing else) by 1,
 * 2, 4 and 8 worker PROCESSES sharing one database, the work between claim
 * and completion being nothing at all.
 *
 *     build/bench/bench_store_tasks [TASKS]        (default 2000; BENCH_N)
 *     BENCH_PROCS=1,2,4,8  BENCH_BURST=300  BENCH_DB=postgres://...  BENCH_DIR=/tmp
 *
 * For each process count P:
 *  1. cycle tasks/s: a fresh job of TASKS one-item tasks; P processes loop
 *     claim → complete until nothing is claimable (what workers do with
 *     tasks that take no time; each holds one task at a time).  The claim
 *     and completion latencies (median, p95 over every call) come with it.
 *  2. burst claims/s: a fresh job of BENCH_BURST tasks; P processes claim
 *     until none is left, holding all they claimed (a pool much larger than
 *     the job: the claim's per-job counts then cover every held task);
 *  3. burst completions/s: the same processes complete what they hold.
 * Each process opens its own store (its own connections) after fork; all
 * start together on a process-shared barrier; the phase time is the
 * parent's, from the barrier to the last process's end.  Per-call latency
 * (median, p95 over every call of the phase) and the retries (ERR_AGAIN:
 * a serialization failure or a busy SQLite writer) are printed
 * with it.
 *
 * The database is SQLite in one shared data folder (WAL; separate
 * processes take turns on its writer lock), and, with BENCH_DB set,
 * PostgreSQL (a fresh schema per figure, dropped at exit) in the same run.
 * Baselines in the same run: P=1 for P>1 (ratio = scaling), and SQLite for
 * PostgreSQL (ratio pg/sqlite).
 *
 * One line per figure:
 *   bench=store_claims db=<sqlite|pg> procs=P <what>=<value>/s ... ratio_vs_1proc=<x> [ratio_pg_vs_sqlite=<x>]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_jobs.h"

#define MAXP 64

static double now_s(void)
{
    return (double)time_mono_ns() / 1e9;
}

/* ---- fresh databases ------------------------------------------------------------------ */

static char *schemas[64];
static int nschemas;

static void drop_schemas(void)
{
    struct db *d = NULL;
    if (db_open(getenv("BENCH_DB"), 1, &d, NULL) < 0)
        return;
    struct db_conn *c = db_acquire(d, NULL);
    for (int i = 0; c && i < nschemas; i++) {
        char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE", schemas[i]);
        (void)db_exec(c, sql, NULL);
        free(sql);
        free(schemas[i]);
    }
    if (c)
        db_release(d, c);
    db_close(d);
}

static char *fresh_pg_target(const char *uri)
{
    struct db *d = NULL;
    struct err e = ERR_INIT;
    char *name = xasprintf("bench_tasks_%d_%d", (int)getpid(), nschemas);
    char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", name, name);
    struct db_conn *c = NULL;
    if (nschemas >= 64 || db_open(uri, 1, &d, &e) < 0 || !(c = db_acquire(d, &e)) || db_exec(c, sql, &e) < 0) {
        fprintf(stderr, "BENCH_DB: %s\n", e.msg);
        exit(1);
    }
    db_release(d, c);
    db_close(d);
    free(sql);
    if (nschemas == 0)
        atexit(drop_schemas);
    schemas[nschemas++] = name;
    return xasprintf("%s%coptions=-csearch_path%%3D%s", uri, strchr(uri, '?') ? '&' : '?', name);
}

struct target {
    char *dir;    /* data folder (shared by all processes) */
    char *db;     /* NULL: SQLite in dir */
};

static struct target fresh_target(bool pg)
{
    const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
    struct target t = {.dir = xasprintf("%s/vbatch-bench-tasks-XXXXXX", base)};
    if (!mkdtemp(t.dir))
        abort();
    if (pg)
        t.db = fresh_pg_target(getenv("BENCH_DB"));
    return t;
}

static struct store *open_target(const struct target *t)
{
    struct store *st = NULL;
    struct err e = ERR_INIT;
    if (store_open_ex(t->dir, t->db, &st, &e) < 0 || store_jobs_migrate(st, &e) < 0) {
        fprintf(stderr, "store: %s\n", e.msg);
        exit(1);
    }
    return st;
}

/* A running job of n processing tasks of one item each; workersPerMachine
 * high enough that no process is held back by it. */
static void make_job(const struct target *t, const char *job_id, int n)
{
    struct store *st = open_target(t);
    struct store_task_range *r = xcalloc((size_t)n, sizeof *r);
    for (int i = 0; i < n; i++)
        r[i] = (struct store_task_range){i, i + 1, 1};
    struct store_job_new jn = {
        .ws = "ws", .job_id = job_id, .name = job_id, .definition = "{\"type\":\"simple-image-processing-v1\"}",
        .wf_def = "{}", .image_input = "image", .outputs = "[]", .batch = "b1", .agg_format = "jsonl",
        .params = "{}", .timeout_s = 86400, .max_fail_rate = -1, .workers = 1 << 20, .machine_type = "cpu",
        .items_total = n,
    };
    int64_t pk = 0;
    struct err e = ERR_INIT;
    if (store_job_create(st, &jn, r, n, json_pack("{s:i}", "tasks", n), &pk, &e) < 0) {
        fprintf(stderr, "store_job_create: %s\n", e.msg);
        exit(1);
    }
    free(r);
    store_close(st);
}

/* ---- the processes --------------------------------------------------------------------- */

/* Shared between the parent and the children (MAP_SHARED). */
struct shared {
    pthread_barrier_t bar;
    int ntasks;
    int claims[MAXP], completes[MAXP], retries[MAXP], errors[MAXP];
    int nburst;
    int64_t *claim_ns;    /* nburst slots: latency of each successful claim (index: atomic counter) */
    int64_t *complete_ns; /* nburst slots */
    int64_t *cyc_claim_ns, *cyc_complete_ns; /* ntasks + 1 slots each: the same in the cycle */
    int nclaim_ns, ncomplete_ns, ncyc_claim_ns, ncyc_complete_ns;
};

static void note(int64_t *arr, int *n, int cap, int64_t v)
{
    int i = __atomic_fetch_add(n, 1, __ATOMIC_SEQ_CST);
    if (i < cap)
        arr[i] = v;
}

/* Claim one task, retrying a serialization failure or a busy writer. */
static int claim1(struct store *st, const char *owner, struct shared *sh, int p, int64_t *pk)
{
    struct store_claim c = {.owner = owner, .process = owner, .now_ms = time_now_ms(), .lease_ms = 600000,
                            .max_attempts = 3};
    for (;;) {
        struct err e = ERR_INIT;
        int rc = store_task_claim(st, &c, pk, &e);
        if (rc == ERR_AGAIN) {
            sh->retries[p]++;
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "claim: %s\n", err_text(&e, rc));
            sh->errors[p]++;
        }
        return rc;
    }
}

static int complete1(struct store *st, const char *owner, struct shared *sh, int p, int64_t pk)
{
    struct store_task t;
    struct err e = ERR_INIT;
    int rc;
    while ((rc = store_task_get(st, pk, &t, &e)) == ERR_AGAIN) {
        sh->retries[p]++;
        err_clear(&e);
    }
    while (rc == 0 && (rc = store_task_complete(st, &t, owner, 1, 0, NULL, 0, 0, &e)) == ERR_AGAIN) {
        sh->retries[p]++;
        err_clear(&e);
        rc = 0;
    }
    if (rc < 0) {
        fprintf(stderr, "complete: %s\n", err_text(&e, rc));
        sh->errors[p]++;
    }
    return rc;
}

/* Child p: phase 1 claim all, phase 2 complete them, phase 3 loop. */
static void child(struct shared *sh, int p, const struct target *t1, const struct target *t2)
{
    char owner[32];
    snprintf(owner, sizeof owner, "bench%d", p);
    struct store *st = open_target(t1);
    int64_t *held = xcalloc((size_t)sh->nburst + 1, sizeof *held);
    int nheld = 0;
    pthread_barrier_wait(&sh->bar); /* phase 1 */
    for (;;) {
        int64_t pk = 0, t0 = time_mono_ns();
        if (claim1(st, owner, sh, p, &pk) < 0 || pk == 0)
            break;
        note(sh->claim_ns, &sh->nclaim_ns, sh->nburst, time_mono_ns() - t0);
        held[nheld++] = pk;
        sh->claims[p]++;
    }
    pthread_barrier_wait(&sh->bar); /* end of phase 1 */
    pthread_barrier_wait(&sh->bar); /* phase 2 */
    for (int i = 0; i < nheld; i++) {
        int64_t t0 = time_mono_ns();
        if (complete1(st, owner, sh, p, held[i]) == 0) {
            note(sh->complete_ns, &sh->ncomplete_ns, sh->nburst, time_mono_ns() - t0);
            sh->completes[p]++;
        }
    }
    pthread_barrier_wait(&sh->bar); /* end of phase 2 */
    store_close(st);
    st = open_target(t2);
    pthread_barrier_wait(&sh->bar); /* phase 3 */
    for (;;) {
        int64_t pk = 0, t0 = time_mono_ns();
        if (claim1(st, owner, sh, p, &pk) < 0 || pk == 0)
            break;
        int64_t tc = time_mono_ns();
        note(sh->cyc_claim_ns, &sh->ncyc_claim_ns, sh->ntasks + 1, tc - t0);
        if (complete1(st, owner, sh, p, pk) == 0) {
            note(sh->cyc_complete_ns, &sh->ncyc_complete_ns, sh->ntasks + 1, time_mono_ns() - tc);
            sh->completes[p]++;
        }
    }
    pthread_barrier_wait(&sh->bar); /* end of phase 3 */
    store_close(st);
    free(held);
    _exit(0);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void pct(int64_t *v, int n, double *p50, double *p95)
{
    if (n <= 0) {
        *p50 = *p95 = 0;
        return;
    }
    qsort(v, (size_t)n, sizeof *v, cmp64);
    *p50 = (double)v[n / 2] / 1e6;
    *p95 = (double)v[MIN(n - 1, (int)(0.95 * n))] / 1e6;
}

struct fig {
    double cycle_s, claims_s, completes_s;
};

static int sum(const int *a, int n)
{
    int s = 0;
    for (int i = 0; i < n; i++)
        s += a[i];
    return s;
}

static void ratios(char *out, size_t cap, double mine, const double *base1, const double *sqlite)
{
    int n = 0;
    out[0] = 0;
    if (base1)
        n = snprintf(out, cap, " ratio_vs_1proc=%.2f", mine / *base1);
    if (sqlite && n >= 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, " ratio_pg_vs_sqlite=%.2f", mine / *sqlite);
}

/* Set when a run did not claim and complete every task exactly once. */
static bool inconsistent;

static struct fig run(bool pg, int procs, int ntasks, int nburst, const struct fig *base1, const struct fig *sqlite)
{
    struct target t1 = fresh_target(pg), t2 = fresh_target(pg);
    make_job(&t1, "burst", nburst);
    make_job(&t2, "cycle", ntasks);

    size_t sz = sizeof(struct shared) + (2 * (size_t)nburst + 2 * ((size_t)ntasks + 1)) * sizeof(int64_t);
    struct shared *sh = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        abort();
    memset(sh, 0, sizeof *sh);
    sh->ntasks = ntasks;
    sh->nburst = nburst;
    sh->claim_ns = (int64_t *)(sh + 1);
    sh->complete_ns = sh->claim_ns + nburst;
    sh->cyc_claim_ns = sh->complete_ns + nburst;
    sh->cyc_complete_ns = sh->cyc_claim_ns + ntasks + 1;
    pthread_barrierattr_t ba;
    pthread_barrierattr_init(&ba);
    pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&sh->bar, &ba, (unsigned)procs + 1);

    fflush(NULL);
    pid_t pids[MAXP];
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            abort();
        if (pids[p] == 0)
            child(sh, p, &t1, &t2);
    }
    double ts[6];
    for (int k = 0; k < 6; k++) {
        pthread_barrier_wait(&sh->bar);
        ts[k] = now_s();
    }
    for (int p = 0; p < procs; p++)
        waitpid(pids[p], NULL, 0);

    int claims = sum(sh->claims, procs), retries = sum(sh->retries, procs), errors = sum(sh->errors, procs);
    int completes_all = sum(sh->completes, procs);
    int ncl = MIN(sh->nclaim_ns, nburst), nco = MIN(sh->ncomplete_ns, nburst);
    int ncc = MIN(sh->ncyc_claim_ns, ntasks + 1), ncd = MIN(sh->ncyc_complete_ns, ntasks + 1);
    int cycled = completes_all - nco;
    double c50, c95, d50, d95, cc50, cc95, cd50, cd95;
    pct(sh->claim_ns, ncl, &c50, &c95);
    pct(sh->complete_ns, nco, &d50, &d95);
    pct(sh->cyc_claim_ns, ncc, &cc50, &cc95);
    pct(sh->cyc_complete_ns, ncd, &cd50, &cd95);
    struct fig f = {
        .claims_s = claims / (ts[1] - ts[0]),
        .completes_s = nco / (ts[3] - ts[2]),
        .cycle_s = cycled / (ts[5] - ts[4]),
    };
    const char *db = pg ? "pg" : "sqlite";
    char r[3][96];
    ratios(r[0], sizeof r[0], f.cycle_s, base1 ? &base1->cycle_s : NULL, sqlite ? &sqlite->cycle_s : NULL);
    ratios(r[1], sizeof r[1], f.claims_s, base1 ? &base1->claims_s : NULL, sqlite ? &sqlite->claims_s : NULL);
    ratios(r[2], sizeof r[2], f.completes_s, base1 ? &base1->completes_s : NULL,
           sqlite ? &sqlite->completes_s : NULL);
    printf("bench=store_cycle db=%s procs=%d tasks_per_s=%.0f tasks=%d claim_ms_p50=%.2f claim_ms_p95=%.2f"
           " complete_ms_p50=%.2f complete_ms_p95=%.2f retries=%d errors=%d%s\n",
           db, procs, f.cycle_s, cycled, cc50, cc95, cd50, cd95, retries, errors, r[0]);
    printf("bench=store_burst_claims db=%s procs=%d claims_per_s=%.0f tasks=%d claim_ms_p50=%.2f"
           " claim_ms_p95=%.2f%s\n",
           db, procs, f.claims_s, claims, c50, c95, r[1]);
    printf("bench=store_burst_completes db=%s procs=%d completes_per_s=%.0f tasks=%d complete_ms_p50=%.2f"
           " complete_ms_p95=%.2f%s\n",
           db, procs, f.completes_s, nco, d50, d95, r[2]);
    fflush(stdout);
    /* The cycle also runs the job's export task once the last processing
     * task is done, which ends the job: it must be "succeeded" now. */
    struct store *st = open_target(&t2);
    struct store_job_row jr = {0};
    struct err je = ERR_INIT;
    int jrc = store_job_get(st, "ws", "cycle", &jr, &je);
    printf("bench=store_cycle_end db=%s procs=%d job_state=%s stage=%s\n", db, procs,
           jrc == 0 && jr.state ? jr.state : err_text(&je, jrc), jrc == 0 && jr.current_stage ? jr.current_stage : "-");
    bool ended = jrc == 0 && jr.state && !strcmp(jr.state, "succeeded");
    if (jrc == 0)
        store_job_row_release(&jr);
    store_close(st);
    if (claims != nburst || nco != nburst || cycled != ntasks + 1 || errors || !ended) {
        inconsistent = true;
        fprintf(stderr, "bench_store_tasks: WARNING: burst %d claims and %d completions of %d tasks, cycle %d"
                        " of %d + 1 (the export task), %d errors, the cycle's job %s\n",
                claims, nco, nburst, cycled, ntasks, errors, ended ? "ended" : "DID NOT END");
    }
    pthread_barrier_destroy(&sh->bar);
    munmap(sh, sz);
    char *cmd = xasprintf("rm -rf '%s' '%s'", t1.dir, t2.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", t1.dir);
    free(cmd);
    free(t1.dir);
    free(t1.db);
    free(t2.dir);
    free(t2.db);
    return f;
}

int main(int argc, char **argv)
{
    int ntasks = argc > 1 ? atoi(argv[1]) : getenv("BENCH_N") ? atoi(getenv("BENCH_N")) : 2000;
    if (ntasks <= 0 || ntasks > 1000000)
        ntasks = 2000;
    int nburst = getenv("BENCH_BURST") ? atoi(getenv("BENCH_BURST")) : 300;
    if (nburst <= 0 || nburst > 100000)
        nburst = 300;
    int procs[16], np = 0;
    const char *pl = getenv("BENCH_PROCS") ? getenv("BENCH_PROCS") : "1,2,4,8";
    for (const char *s = pl; *s && np < 16;) {
        int v = atoi(s);
        if (v >= 1 && v <= MAXP)
            procs[np++] = v;
        const char *c = strchr(s, ',');
        if (!c)
            break;
        s = c + 1;
    }
    log_set_level(LOG_WARN);
    const char *pg = getenv("BENCH_DB");
    bool with_pg = pg && *pg;
    printf("bench=store_tasks_setup tasks=%d burst_tasks=%d cpus=%ld backends=sqlite%s (the work between claim"
           " and completion is none)\n",
           ntasks, nburst, sysconf(_SC_NPROCESSORS_ONLN), with_pg ? ",pg" : "");
    struct fig sq1 = {0}, pg1 = {0};
    for (int i = 0; i < np; i++) {
        struct fig s = run(false, procs[i], ntasks, nburst, i ? &sq1 : NULL, NULL);
        if (i == 0)
            sq1 = s;
        if (with_pg) {
            struct fig p = run(true, procs[i], ntasks, nburst, i ? &pg1 : NULL, &s);
            if (i == 0)
                pg1 = p;
        }
    }
    return inconsistent ? 1 : 0;
}
