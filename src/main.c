/*
 * main.c — vbatch's entry point: subcommand dispatch, configuration from
 * options and VBATCH_* environment variables (an option wins over its
 * variable), signals.
 *
 *   vbatch serve [options]              HTTP API + background ingest
 *   vbatch workspace create NAME        new workspace, prints its API key
 *   vbatch workspace keys list|add|revoke WS …   a workspace's API keys
 *   vbatch model register ID DIR        model into the blob store + models table
 *   vbatch model list                   stored models and those of DATA/models
 *   vbatch model delete ID              stored model out of the table and blob store
 *   vbatch batch|job|workflow …         client commands over HTTP (src/cli/)
 *   vbatch --help
 *
 * serve start-up order: store (data folder, database, secret) → default
 * workspace on an empty installation (its key printed once on stdout as
 * "api_key: <key>") → staging (migrations, requeue of unfinished ingest,
 * background threads) → workflows folder → HTTP server.  SIGINT/SIGTERM
 * are blocked in every thread and taken by sigwait() in the main thread,
 * which then stops the server (in-flight requests finish), the staging
 * threads and the store, in reverse order.
 *
 * New subcommands (worker, client commands) are added to the 'commands'
 * table; new serve options to 'serve_opts' (and struct serve_cfg).
 */
#include "api/api.h"
#include "base/base.h"
#include "cli/cli.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "model/model.h"
#include "staging/staging.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "store/store_staging.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1:8080"
#define DEFAULT_DATA "./var"

struct serve_cfg {
    const char *listen;
    const char *data;
    const char *db; /* database: NULL = SQLite in data; postgres://... */
    const char *secret_file; /* installation secret given explicitly (NULL: the database's) */
    const char *blobs;      /* blob store: NULL = DATA/blobs; s3://... */
    const char *blobs_creds; /* credentials file of an s3:// blob store */
    const char *blobs_presign_creds; /* credentials that presign client URLs (PutObject only) */
    unsigned threads;
    const char *public_url;
    const char *workflows_dir;
    const char *default_ws;
    const char *url_allowlist;
    bool allow_private_urls;
    int64_t max_image_bytes;
    int64_t max_video_bytes;
    int64_t max_shard_bytes;
    int64_t expiry_s;
    int64_t upload_url_ttl_s;
    int64_t upload_poll_ms;
    int64_t download_url_ttl_s;
    int64_t sweep_interval_s;
    int64_t orphan_sweep_ms;
    int64_t orphan_grace_ms;
    int64_t orphan_keys_per_s;
    int64_t max_page_size;
    bool quiet;
    int64_t workers;       /* jobs worker threads */
    const char *models_dir;
    int64_t task_lease_ms;
    int64_t max_model_bytes; /* model upload limit (POST/PUT /models/…) */
    int64_t model_threads;   /* ONNX Runtime intra-op threads per session; 0: CPUs / workers */
    int64_t storage_reserve; /* bytes kept free on the data folder; -1: STORE_RESERVE_DEFAULT */
    const char *metrics_token; /* GET /metrics needs "Authorization: Bearer <it>" when set */
    const char *sink_folder;   /* the only folder local_file_sink writes */
    const char *secrets_env;   /* comma-separated variables environment_secrets_store reads */
    const char *sink_s3;       /* s3://... bucket of s3_sink steps */
    const char *slack_api_url; /* Slack Web API base URL of slack_notification steps */
    const char *sink_s3_creds; /* its credentials file */
    int64_t quota_staged_bytes;    /* workspace quota defaults; 0: unlimited */
    int64_t quota_jobs;
    int64_t quota_pending_uploads;
    int64_t rate_limit;            /* requests/s per API key in this process; 0: none */
    int64_t rate_burst;            /* bucket size; 0: the rate */
    int64_t ws_rate_limit;         /* default requests/s per workspace, all processes; 0: none */
    int64_t ws_rate_burst;         /* its burst; 0: the rate */
};

enum opt_kind { OPT_STR, OPT_INT, OPT_FLAG };
struct opt {
    const char *name;  /* --name */
    const char *env;   /* VBATCH_… */
    enum opt_kind kind;
    size_t off;        /* offset in struct serve_cfg */
    const char *help;
};

#define O(f) offsetof(struct serve_cfg, f)
static const struct opt serve_opts[] = {
    {"listen", "VBATCH_LISTEN", OPT_STR, O(listen), "ADDR:PORT to listen on (default " DEFAULT_LISTEN ")"},
    {"data", "VBATCH_DATA", OPT_STR, O(data), "data folder: database, blobs, secret (default " DEFAULT_DATA ")"},
    {"db", "VBATCH_DB", OPT_STR, O(db),
     "database: postgres://user:pass@host:port/dbname (default: SQLite in the data folder)"},
    {"secret-file", "VBATCH_SECRET_FILE", OPT_STR, O(secret_file),
     "installation secret (32 bytes or 64 hex digits) instead of the database's; give every process the same"},
    {"blobs", "VBATCH_BLOBS", OPT_STR, O(blobs),
     "blob store: s3://bucket/prefix?endpoint=http(s)://host:port&region=R&path_style=1 (default: the data folder)"},
    {"blobs-credentials", "VBATCH_BLOBS_CREDENTIALS", OPT_STR, O(blobs_creds),
     "file of AWS_ACCESS_KEY_ID=/AWS_SECRET_ACCESS_KEY=/AWS_SESSION_TOKEN= lines for --blobs (default: those variables)"},
    {"blobs-presign-credentials", "VBATCH_BLOBS_PRESIGN_CREDENTIALS", OPT_STR, O(blobs_presign_creds),
     "file of the same lines: the credential that presigns clients' upload URLs (PutObject only; docs/DEPLOY.md)"},
    {"threads", "VBATCH_THREADS", OPT_INT, O(threads), "HTTP thread pool size (default: 4 x CPUs, 8 to 64)"},
    {"public-url", "VBATCH_PUBLIC_URL", OPT_STR, O(public_url),
     "base URL clients reach this server at, used in signed URLs (default http://<listen>)"},
    {"workflows-dir", "VBATCH_WORKFLOWS_DIR", OPT_STR, O(workflows_dir),
     "folder of workflow definitions loaded at start (<id>.json, <workspace>/<id>.json)"},
    {"default-workspace", "VBATCH_DEFAULT_WORKSPACE", OPT_STR, O(default_ws),
     "workspace created on an empty data folder (default \"default\")"},
    {"url-allowlist", "VBATCH_URL_ALLOWLIST", OPT_STR, O(url_allowlist),
     "IPs/CIDRs that reference and webhook URLs may reach although private/loopback"},
    {"allow-private-urls", "VBATCH_ALLOW_PRIVATE_URLS", OPT_FLAG, O(allow_private_urls),
     "let reference and webhook URLs reach any address (testing only)"},
    {"max-image-bytes", "VBATCH_MAX_IMAGE_BYTES", OPT_INT, O(max_image_bytes), "single image limit (default 20971520)"},
    {"max-video-bytes", "VBATCH_MAX_VIDEO_BYTES", OPT_INT, O(max_video_bytes), "video upload limit (default 4 GiB)"},
    {"max-shard-bytes", "VBATCH_MAX_SHARD_BYTES", OPT_INT, O(max_shard_bytes), "tar shard upload limit (default 1 GiB)"},
    {"batch-expiry", "VBATCH_BATCH_EXPIRY_S", OPT_INT, O(expiry_s), "batch lifetime in seconds (default 604800 = 7 days)"},
    {"upload-url-ttl", "VBATCH_UPLOAD_URL_TTL_S", OPT_INT, O(upload_url_ttl_s), "signed upload URL lifetime, s (default 86400)"},
    {"upload-poll-ms", "VBATCH_UPLOAD_POLL_MS", OPT_INT, O(upload_poll_ms), "S3 blobs: period of the poller that notices uploads PUT straight to the store, ms (default 1000)"},
    {"download-url-ttl", "VBATCH_DOWNLOAD_URL_TTL_S", OPT_INT, O(download_url_ttl_s), "signed download URL lifetime, s (default 86400)"},
    {"sweep-interval", "VBATCH_SWEEP_INTERVAL_S", OPT_INT, O(sweep_interval_s), "expiry sweeper period, s (default 60)"},
    {"orphan-sweep-ms", "VBATCH_ORPHAN_SWEEP_MS", OPT_INT, O(orphan_sweep_ms), "period of the orphan blob sweeper, ms (default 3600000)"},
    {"orphan-grace-ms", "VBATCH_ORPHAN_GRACE_MS", OPT_INT, O(orphan_grace_ms), "blobs no row names are deleted once older than this, ms (default 3600000)"},
    {"orphan-keys-per-s", "VBATCH_ORPHAN_KEYS_PER_S", OPT_INT, O(orphan_keys_per_s), "pace of the orphan sweeper's walk, blobs a second (default 2000)"},
    {"max-page-size", "VBATCH_MAX_PAGE_SIZE", OPT_INT, O(max_page_size), "largest pageSize accepted (default 1000)"},
    {"quiet", "VBATCH_QUIET", OPT_FLAG, O(quiet), "no per-request log line"},
    {"workers", "VBATCH_WORKERS", OPT_INT, O(workers), "batch job worker threads (default 2; 0: none)"},
    {"models-dir", "VBATCH_MODELS_DIR", OPT_STR, O(models_dir),
     "extra folder of models for workflows (besides DATA/models)"},
    {"task-lease-ms", "VBATCH_TASK_LEASE_MS", OPT_INT, O(task_lease_ms),
     "job task lease, renewed while working; expired tasks are claimed again (default 15000)"},
    {"max-model-bytes", "VBATCH_MAX_MODEL_BYTES", OPT_INT, O(max_model_bytes),
     "model weights upload limit (default 1073741824)"},
    {"model-threads", "VBATCH_MODEL_THREADS", OPT_INT, O(model_threads),
     "ONNX Runtime intra-op threads per model session (default: CPUs / workers, at least 1)"},
    {"storage-reserve", "VBATCH_STORAGE_RESERVE", OPT_INT, O(storage_reserve),
     "bytes kept free on the data folder: uploads that would leave less are refused with 507 (default 16777216)"},
    {"metrics-token", "VBATCH_METRICS_TOKEN", OPT_STR, O(metrics_token),
     "GET /metrics then needs 'Authorization: Bearer <token>' (default: no credential)"},
    {"sink-folder", "VBATCH_SINK_FOLDER", OPT_STR, O(sink_folder),
     "the only folder workflow local_file_sink steps write in (default: none, the block is refused)"},
    {"secrets-env", "VBATCH_SECRETS_ENV", OPT_STR, O(secrets_env),
     "comma-separated environment variables that environment_secrets_store steps may read (default: none)"},
    {"sink-s3", "VBATCH_SINK_S3", OPT_STR, O(sink_s3),
     "s3://bucket[/prefix]?endpoint=URL&region=R&path_style=1: the only bucket workflow s3_sink steps write to (default: none, the block is refused)"},
    {"slack-api-url", "VBATCH_SLACK_API_URL", OPT_STR, O(slack_api_url),
     "base URL of Slack's Web API for workflow slack_notification steps, POSTed through the outbox (default: none, the block is refused)"},
    {"sink-s3-credentials", "VBATCH_SINK_S3_CREDENTIALS", OPT_STR, O(sink_s3_creds),
     "file of AWS_ACCESS_KEY_ID=/AWS_SECRET_ACCESS_KEY=/AWS_SESSION_TOKEN= lines for --sink-s3 (default: those variables)"},
    {"quota-staged-bytes", "VBATCH_QUOTA_STAGED_BYTES", OPT_INT, O(quota_staged_bytes),
     "default per-workspace quota of staged bytes, all batches (0: unlimited, the default); over it: 413"},
    {"quota-jobs", "VBATCH_QUOTA_JOBS", OPT_INT, O(quota_jobs),
     "default per-workspace quota of running jobs (0: unlimited, the default); at it: 429"},
    {"quota-pending-uploads", "VBATCH_QUOTA_PENDING_UPLOADS", OPT_INT, O(quota_pending_uploads),
     "default per-workspace quota of unused signed upload URLs (0: unlimited, the default); at it: 429"},
    {"rate-limit", "VBATCH_RATE_LIMIT", OPT_INT, O(rate_limit),
     "requests per second per API key, in each process (0: no limit, the default); over it: 429"},
    {"rate-burst", "VBATCH_RATE_BURST", OPT_INT, O(rate_burst),
     "requests an API key may send at once before --rate-limit applies (default: the rate)"},
    {"workspace-rate-limit", "VBATCH_WORKSPACE_RATE_LIMIT", OPT_INT, O(ws_rate_limit),
     "default requests per second per workspace, all keys and processes together (0: no limit, the default);"
     " over it: 429"},
    {"workspace-rate-burst", "VBATCH_WORKSPACE_RATE_BURST", OPT_INT, O(ws_rate_burst),
     "requests a workspace may send at once before its rate limit applies (default: the rate)"},
};
#undef O

static int opt_set(struct serve_cfg *c, const struct opt *o, const char *v)
{
    char *p = (char *)c + o->off;
    char *end;

    switch (o->kind) {
    case OPT_STR:
        *(const char **)p = v;
        return 0;
    case OPT_FLAG:
        *(bool *)p = !v || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes");
        return 0;
    case OPT_INT: {
        errno = 0;
        long long n = strtoll(v ? v : "", &end, 10);
        if (!v || errno || end == v || *end || n < 0) {
            fprintf(stderr, "vbatch: --%s needs a non-negative integer, not '%s'\n", o->name, v ? v : "");
            return -1;
        }
        if (!strcmp(o->name, "threads"))
            *(unsigned *)p = (unsigned)(n > 1024 ? 1024 : n);
        else
            *(int64_t *)p = n;
        return 0;
    }
    }
    return -1;
}

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: vbatch serve [options]\n\noptions (each also read from its environment variable):\n");
    for (size_t i = 0; i < ARRAY_LEN(serve_opts); i++)
        fprintf(f, "  --%-20s %s\n  %-22s [%s]\n", serve_opts[i].name, serve_opts[i].help, "",
                serve_opts[i].env);
}

/* Environment first, then options.  Returns 0, 1 for --help, -1 on error. */
static int serve_parse(struct serve_cfg *c, int argc, char **argv)
{
    for (size_t i = 0; i < ARRAY_LEN(serve_opts); i++) {
        const char *v = getenv(serve_opts[i].env);
        if (v && *v && opt_set(c, &serve_opts[i], v) < 0)
            return -1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "vbatch serve: unexpected argument '%s'\n", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = NULL;
        for (size_t k = 0; k < ARRAY_LEN(serve_opts); k++)
            if (strlen(serve_opts[k].name) == nlen && !strncmp(serve_opts[k].name, name, nlen))
                o = &serve_opts[k];
        if (!o) {
            fprintf(stderr, "vbatch serve: unknown option '%s' (see vbatch serve --help)\n", a);
            return -1;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && o->kind != OPT_FLAG) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vbatch serve: --%s needs a value\n", o->name);
                return -1;
            }
            v = argv[++i];
        }
        if (opt_set(c, o, v) < 0)
            return -1;
    }
    return 0;
}

static char *serve_default_public_url(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return xasprintf("http://127.0.0.1:%s", listen);
    size_t hlen = (size_t)(colon - listen);
    if (hlen == 0 || (hlen == 7 && !strncmp(listen, "0.0.0.0", 7)))
        return xasprintf("http://127.0.0.1%s", colon);
    if (hlen == 4 && !strncmp(listen, "[::]", 4))
        return xasprintf("http://[::1]%s", colon);
    return xasprintf("http://%s", listen);
}

/* The bucket of --sink-s3, opened once per process (the outbox sender of
 * serve gets it before it starts, the jobs service later): NULL with a
 * line on stderr when it cannot be used. */
static struct store_s3sink *sink_s3_open(const struct serve_cfg *c)
{
    static struct store_s3sink *k;
    struct err e = ERR_INIT;
    if (!k && store_s3sink_open(c->sink_s3, c->sink_s3_creds, &k, &e) < 0) {
        fprintf(stderr, "vbatch: --sink-s3: %s\n", err_text(&e, e.code));
        k = NULL;
    }
    return k;
}

/* --sink-folder (made absolute; it must be a folder) and --secrets-env (a
 * comma-separated list of variable names), kept for the process's life. */
static int sinks_setup(const struct serve_cfg *c, struct jobs_opts *jo)
{
    static char *folder;
    static char **names;
    if (c->sink_folder && *c->sink_folder) {
        struct stat sb;
        free(folder);
        folder = realpath(c->sink_folder, NULL);
        if (!folder || stat(folder, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "vbatch: --sink-folder '%s' is not a folder\n", c->sink_folder);
            return -1;
        }
        jo->sink_folder = folder;
    }
    if (c->secrets_env && *c->secrets_env) {
        size_t n = 0, cap = 8;
        names = xcalloc(cap, sizeof *names);
        char *copy = xstrdup(c->secrets_env), *save = NULL;
        for (char *p = strtok_r(copy, ", ", &save); p; p = strtok_r(NULL, ", ", &save)) {
            if (n + 2 > cap) {
                cap *= 2;
                names = xrealloc(names, cap * sizeof *names);
            }
            names[n++] = xstrdup(p);
            names[n] = NULL;
        }
        free(copy);
        jo->secrets_env = (const char *const *)names;
    }
    if (c->slack_api_url && *c->slack_api_url) {
        if (strncmp(c->slack_api_url, "http://", 7) && strncmp(c->slack_api_url, "https://", 8)) {
            fprintf(stderr, "vbatch: --slack-api-url '%s' is not an http(s) URL\n", c->slack_api_url);
            return -1;
        }
        jo->slack_api_url = c->slack_api_url;
    }
    if (c->sink_s3 && *c->sink_s3 && !(jo->sink_s3 = sink_s3_open(c)))
        return -1;
    return 0;
}

/* The jobs service and its model registry (shared by serve and worker). */
static int jobs_setup(const struct serve_cfg *c, struct store *st, struct staging *sg,
                      struct model_registry **models, struct jobs_models **machines, struct jobs **jobs)
{
    struct jobs_opts jo;
    char err[512];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = (int)MIN(c->workers, 256);
    int threads = c->model_threads > 0 ? (int)MIN(c->model_threads, 1024)
                                       : (int)MAX(1, ncpu / MAX(workers, 1));
    int rc = jobs_models_open(c->data, c->models_dir, threads, models, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "vbatch: cannot load models: %s\n", err);
        return rc;
    }
    int loaded = 0, bad = 0;
    rc = jobs_models_store_sync(st, *models, &loaded, &bad);
    if (rc < 0) {
        fprintf(stderr, "vbatch: cannot read the models table: %s\n", err_str(rc));
        return rc;
    }
    log_info("main", "stored models loaded=%d bad=%d", loaded, bad);
    /* blobs of registrations that crashed before their commit (an hour
     * old at least, so none that another process is about to commit) */
    if (jobs_models_store_sweep(st, 3600 * 1000) < 0)
        log_warn("main", "cannot sweep orphan model blobs");
    jobs_models_new(*models, c->data, c->models_dir, threads, machines);
    jobs_models_set_store(*machines, st);
    jobs_opts_default(&jo);
    jo.workers = workers;
    if (c->task_lease_ms)
        jo.lease_ms = c->task_lease_ms;
    jo.model_infer = jobs_model_infer;
    jo.model_ud = *models;
    jo.model_prepare = jobs_model_prepare;
    jo.model_select = jobs_models_select;
    jo.model_select_ud = *machines;
    if (sinks_setup(c, &jo) < 0)
        return -1;
    struct err e = ERR_INIT;
    rc = jobs_new(st, sg, &jo, jobs, &e);
    if (rc == 0)
        rc = jobs_start(*jobs);
    if (rc < 0)
        fprintf(stderr, "vbatch: cannot start the jobs service: %s\n", err_text(&e, rc));
    return rc;
}

/* Open the store of a command: the data folder, the database 'db'
 * (NULL or "": SQLite in the folder) and the blob store 'blobs' (NULL or
 * "": the folder; s3://...: object storage, credentials from the
 * environment or the file 'creds').  A database that cannot be used —
 * bad URL, unreachable server, wrong password, migrated by a newer vbatch
 * — is one line on stderr and exit status 2, as are a secret file and a
 * blob store that cannot be used.  Returns 0, or the exit status. */
static int open_store(const char *data, const char *db, const char *secret_file, const char *blobs,
                      const char *creds, const char *presign_creds, struct store **st)
{
    struct err e = ERR_INIT;
    if (db && !*db)
        db = NULL;
    int rc = store_open_ex(data, db, st, &e);
    if (rc < 0) {
        fprintf(stderr, "vbatch: %s\n", err_text(&e, rc));
        return rc == ERR_INVALID || rc == ERR_UNAVAILABLE || rc == ERR_AUTH || rc == ERR_UNSUPPORTED ? 2 : 1;
    }
    if (secret_file && *secret_file && (rc = store_secret_set_file(*st, secret_file, &e)) < 0) {
        fprintf(stderr, "vbatch: %s\n", err_text(&e, rc));
        store_close(*st);
        *st = NULL;
        return 2;
    }
    /* A blob store that cannot be used (bad URL, no or wrong credentials,
     * no such bucket, endpoint unreachable): one line, exit status 2. */
    if ((rc = store_blobs_configure(*st, blobs, creds, presign_creds, &e)) < 0) {
        fprintf(stderr, "vbatch: blob store: %s\n", err_text(&e, rc));
        store_close(*st);
        *st = NULL;
        return 2;
    }
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    struct serve_cfg c = {.listen = DEFAULT_LISTEN, .data = DEFAULT_DATA, .default_ws = "default", .workers = 2,
                          .storage_reserve = -1};
    struct store *st = NULL;
    struct staging *sg = NULL;
    struct model_registry *models = NULL;
    struct jobs_models *machines = NULL;
    struct jobs *jobs = NULL;
    struct http_router *router = NULL;
    struct http_server *srv = NULL;
    struct staging_opts so;
    struct api_ctx ctx = {.st = NULL};
    char *public_url = NULL;
    char key[STORE_KEY_LEN + 1];
    bool created = false;
    sigset_t sigs;
    int rc, sig = 0, ret = 1;

    rc = serve_parse(&c, argc, argv);
    if (rc != 0) {
        serve_usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    metrics_process_init();
    /* Block the stop signals before any thread exists: every thread
     * inherits the mask and only sigwait() below receives them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = open_store(c.data, c.db, c.secret_file, c.blobs, c.blobs_creds, c.blobs_presign_creds, &st)) != 0) {
        ret = rc;
        goto out;
    }
    if (c.storage_reserve >= 0)
        store_reserve_set(st, c.storage_reserve);
    rc = store_workspace_ensure_default(st, c.default_ws, &created, key);
    if (rc < 0) {
        fprintf(stderr, "vbatch: cannot create workspace '%s': %s\n", c.default_ws, err_str(rc));
        goto out;
    }
    if (created) {
        printf("workspace: %s\napi_key: %s\n", c.default_ws, key);
        printf("(the key is shown once; `vbatch workspace create NAME` makes more)\n");
        fflush(stdout);
    }
    public_url = c.public_url ? xstrdup(c.public_url) : serve_default_public_url(c.listen);
    while (public_url[0] && public_url[strlen(public_url) - 1] == '/')
        public_url[strlen(public_url) - 1] = '\0';

    staging_opts_default(&so);
    so.public_base_url = public_url;
    if (c.max_image_bytes)
        so.max_image_bytes = c.max_image_bytes;
    if (c.max_video_bytes)
        so.max_video_bytes = c.max_video_bytes;
    if (c.max_shard_bytes)
        so.max_shard_bytes = c.max_shard_bytes;
    if (c.expiry_s)
        so.expiry_ms = c.expiry_s * 1000;
    if (c.upload_url_ttl_s)
        so.upload_url_ttl_ms = c.upload_url_ttl_s * 1000;
    if (c.upload_poll_ms)
        so.upload_poll_ms = c.upload_poll_ms;
    if (c.download_url_ttl_s)
        so.download_url_ttl_ms = c.download_url_ttl_s * 1000;
    if (c.sweep_interval_s)
        so.sweep_interval_ms = c.sweep_interval_s * 1000;
    if (c.orphan_sweep_ms > 0)
        so.orphan_sweep_ms = c.orphan_sweep_ms;
    if (c.orphan_grace_ms > 0)
        so.orphan_grace_ms = c.orphan_grace_ms;
    if (c.orphan_keys_per_s > 0)
        so.orphan_keys_per_s = c.orphan_keys_per_s;
    if (c.max_page_size)
        so.max_page_size = (int)MIN(c.max_page_size, 100000);
    so.net_allow = c.allow_private_urls ? "0.0.0.0/0,::/0" : c.url_allowlist;
    struct err se = ERR_INIT;
    if (c.sink_s3 && *c.sink_s3) {
        /* the bucket first: the outbox sender staging_start starts claims
         * the s3_sink objects queued before a restart only with it */
        struct store_s3sink *k = sink_s3_open(&c);
        if (!k)
            goto out;
        store_outbox_set_s3sink(st, k);
    }
    rc = staging_new(st, &so, &sg, &se);
    if (rc == 0)
        rc = staging_start(sg, &se);
    if (rc < 0) {
        fprintf(stderr, "vbatch: cannot start staging: %s\n", err_text(&se, rc));
        goto out;
    }
    if (c.workflows_dir) {
        int n = 0;
        rc = api_workflows_load_dir(st, c.workflows_dir, c.default_ws, &n);
        if (rc < 0) {
            fprintf(stderr, "vbatch: cannot read workflows folder '%s': %s\n", c.workflows_dir,
                    err_str(rc));
            goto out;
        }
        log_info("main", "workflows loaded count=%d dir=%s", n, c.workflows_dir);
    }

    if (c.quota_staged_bytes < 0 || c.quota_jobs < 0 || c.quota_pending_uploads < 0 || c.rate_limit < 0 ||
        c.rate_burst < 0 || c.ws_rate_limit < 0 || c.ws_rate_burst < 0) {
        fprintf(stderr, "vbatch: quotas and rate limits are numbers >= 0 (0: unlimited)\n");
        goto out;
    }
    struct store_quota qd = {c.quota_staged_bytes, c.quota_jobs, c.quota_pending_uploads, c.ws_rate_limit,
                             c.ws_rate_burst};
    store_quota_defaults_set(st, &qd, so.upload_url_ttl_ms);

    if (jobs_setup(&c, st, sg, &models, &machines, &jobs) < 0)
        goto out;

    memset(&ctx, 0, sizeof(ctx));
    ctx.st = st;
    ctx.sg = sg;
    ctx.jobs = jobs;
    ctx.max_image_bytes = (uint64_t)so.max_image_bytes;
    ctx.max_put_bytes = (uint64_t)MAX(so.max_video_bytes, so.max_shard_bytes);
    ctx.max_json_bytes = 64u << 20;
    ctx.max_page_size = so.max_page_size;
    ctx.models = models;
    ctx.max_model_bytes = (uint64_t)c.max_model_bytes;
    ctx.metrics_token = c.metrics_token;
    ctx.rl = c.rate_limit > 0 ? api_ratelimit_new((double)c.rate_limit, (double)c.rate_burst) : NULL;
    ctx.wsrl = api_wsrate_new(st);
    router = http_router_new();
    rc = api_routes_register(router, &ctx);
    if (rc < 0) {
        fprintf(stderr, "vbatch: route table: %s\n", err_str(rc));
        goto out;
    }
    struct http_server_opts ho = {.listen = c.listen, .threads = c.threads, .quiet = c.quiet,
                                  .err_status = api_http_status};
    rc = http_server_start(&ho, router, &srv);
    if (rc < 0) {
        fprintf(stderr, "vbatch: cannot listen on '%s': %s\n", c.listen, err_str(rc));
        goto out;
    }
    log_info("main", "serving listen=%s port=%u data=%s public_url=%s", c.listen,
             http_server_port(srv), c.data, public_url);
    printf("listening: %s\n", public_url);
    fflush(stdout);

    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("main", "stopping signal=%d", sig);
    ret = 0;
out:
    http_server_stop(srv);
    jobs_free(jobs);
    jobs_models_free(machines);
    model_registry_free(models);
    staging_free(sg);
    http_router_free(router);
    api_ratelimit_free(ctx.rl);
    api_wsrate_free(ctx.wsrl);
    store_close(st);
    free(public_url);
    return ret;
}

#define WORKSPACE_USAGE                                                                                     \
    "usage: vbatch workspace create NAME [--data DIR] [--db URL]\n"                                            \
    "       vbatch workspace keys list WS [--json] [--data DIR] [--db URL]\n"                                  \
    "       vbatch workspace keys add WS [--name NAME] [--data DIR] [--db URL]\n"                              \
    "       vbatch workspace keys revoke WS KEY_ID [--data DIR] [--db URL]\n"                                 \
    "       vbatch workspace set NAME [--max-staged-bytes N] [--max-jobs N] [--max-pending-uploads N]\n"    \
    "                                 [--rate-limit N] [--rate-burst N]\n"

/* vbatch workspace keys list|add|revoke: the operator's key management,
 * straight on the database (every serve process refuses a revoked key
 * within a second: store_key_verify). */
static int workspace_keys(struct store *st, const char *op, const char *ws, const char *arg, const char *name,
                          bool as_json)
{
    int rc = store_workspace_exists(st, ws);
    if (rc == ERR_NOTFOUND) {
        fprintf(stderr, "vbatch: no workspace '%s'\n", ws);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "vbatch: cannot read workspace '%s': %s\n", ws, err_str(rc));
        return 1;
    }
    if (!strcmp(op, "list")) {
        json_t *arr = NULL;
        if ((rc = store_key_list(st, ws, &arr)) < 0) {
            fprintf(stderr, "vbatch: cannot list the keys of '%s': %s\n", ws, err_str(rc));
            return 1;
        }
        if (as_json) {
            char *txt = json_dumps(arr, JSON_INDENT(2));
            printf("%s\n", txt ? txt : "[]");
            free(txt);
        } else {
            size_t i;
            json_t *k;
            printf("%-8s  %-7s  %-24s  %-24s  %-24s  %s\n", "KEY_ID", "STATUS", "CREATED", "LAST_USED", "REVOKED",
                   "NAME");
            json_array_foreach(arr, i, k)
            {
                const char *lu = json_string_value(json_object_get(k, "lastUsedAt"));
                const char *rv = json_string_value(json_object_get(k, "revokedAt"));
                printf("%-8s  %-7s  %-24s  %-24s  %-24s  %s\n", json_string_value(json_object_get(k, "keyId")),
                       rv ? "revoked" : "active", json_string_value(json_object_get(k, "createdAt")),
                       lu ? lu : "never", rv ? rv : "-", json_string_value(json_object_get(k, "name")));
            }
        }
        json_decref(arr);
        return 0;
    }
    if (!strcmp(op, "add")) {
        char key[STORE_KEY_LEN + 1];
        rc = store_key_add(st, ws, name, key);
        if (rc < 0) {
            fprintf(stderr, "vbatch: cannot add a key to '%s': %s\n", ws,
                    rc == ERR_INVALID ? "key names are at most 64 printable ASCII characters" : err_str(rc));
            return 1;
        }
        printf("workspace: %s\nkey_id: %.*s\napi_key: %s\n", ws, STORE_KEY_ID_LEN, key + 3, key);
        return 0;
    }
    bool revoked = false;
    rc = store_key_revoke(st, ws, arg, &revoked);
    if (rc == ERR_INVALID)
        fprintf(stderr, "vbatch: '%s' is not a key id (%d characters of a-z, 0-9: `vbatch workspace keys list %s`)\n",
                arg, STORE_KEY_ID_LEN, ws);
    else if (rc == ERR_NOTFOUND)
        fprintf(stderr, "vbatch: workspace '%s' has no key '%s'\n", ws, arg);
    else if (rc < 0)
        fprintf(stderr, "vbatch: cannot revoke key '%s': %s\n", arg, err_str(rc));
    else
        printf("%s %s of workspace %s\n", revoked ? "revoked" : "already revoked:", arg, ws);
    return rc < 0 ? 1 : 0;
}

/* vbatch workspace set NAME --max-staged-bytes N --max-jobs N
 * --max-pending-uploads N --rate-limit N --rate-burst N: the workspace's
 * own quotas and request rate limit (0: unlimited,
 * "default": the serve flags' default again); without a limit, prints
 * the effective quotas and the current use. */
static int cmd_workspace_set(int argc, char **argv)
{
    static const char usage[] = "usage: vbatch workspace set NAME [--max-staged-bytes N] [--max-jobs N]"
                                " [--max-pending-uploads N] [--rate-limit N] [--rate-burst N] [--data DIR]"
                                " [--db URL]\n"
                                "  N: a number >= 0 (0: unlimited) or 'default' (the serve flag's value)\n";
    const char *data = getenv("VBATCH_DATA"), *db = getenv("VBATCH_DB"), *name = NULL;
    struct store_quota q = {-1, -1, -1, -1, -1};
    int64_t *fields[5] = {&q.max_staged_bytes, &q.max_jobs, &q.max_pending_uploads, &q.rate_limit, &q.rate_burst};
    static const char *const flags[5] = {"--max-staged-bytes", "--max-jobs", "--max-pending-uploads",
                                         "--rate-limit", "--rate-burst"};
    bool any = false;
    struct store *st = NULL;
    struct err e = ERR_INIT;
    int rc;

    if (!data || !*data)
        data = DEFAULT_DATA;
    for (int i = 1; i < argc; i++) {
        int f = -1;
        for (int k = 0; k < 5; k++)
            if (!strcmp(argv[i], flags[k]))
                f = k;
        if (f >= 0 && i + 1 < argc) {
            const char *v = argv[++i];
            char *end;
            if (!strcmp(v, "default")) {
                *fields[f] = STORE_QUOTA_DEFAULT;
            } else {
                long long n = strtoll(v, &end, 10);
                if (end == v || *end || n < 0) {
                    fprintf(stderr, "vbatch: %s: expected a number >= 0 or 'default', got '%s'\n", flags[f], v);
                    return 2;
                }
                *fields[f] = n;
            }
            any = true;
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            data = argv[++i];
        } else if (!strcmp(argv[i], "--db") && i + 1 < argc) {
            db = argv[++i];
        } else if (argv[i][0] != '-' && !name) {
            name = argv[i];
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!name || !id_valid(name, STORE_WS_MAX)) {
        fputs(usage, stderr);
        return 2;
    }
    if ((rc = open_store(data, db, NULL, NULL, NULL, NULL, &st)) != 0)
        return rc;
    rc = store_workspace_exists(st, name);
    if (rc < 0) {
        fprintf(stderr, "vbatch: no workspace '%s'\n", name);
        store_close(st);
        return 1;
    }
    rc = store_staging_migrate(st, &e);
    if (rc == 0) /* the use it prints counts jobs: a data folder no serve has opened yet has no jobs table */
        rc = store_jobs_migrate(st, &e);
    if (rc == 0 && any)
        rc = store_quota_set(st, name, &q, &e);
    struct store_quota eff, use;
    if (rc == 0)
        rc = store_quota_get(st, name, &eff, &use, &e);
    if (rc < 0) {
        fprintf(stderr, "vbatch: cannot set the quotas of '%s': %s\n", name, err_text(&e, rc));
    } else {
        printf("workspace: %s (0 = unlimited)\n", name);
        printf("max-staged-bytes: %lld (used %lld)\n", (long long)eff.max_staged_bytes,
               (long long)use.max_staged_bytes);
        printf("max-jobs: %lld (running %lld)\n", (long long)eff.max_jobs, (long long)use.max_jobs);
        printf("max-pending-uploads: %lld (pending %lld)\n", (long long)eff.max_pending_uploads,
               (long long)use.max_pending_uploads);
        printf("rate-limit: %lld requests/s\n", (long long)eff.rate_limit);
        printf("rate-burst: %lld (0 = the rate)\n", (long long)eff.rate_burst);
        printf("(the serve flags' defaults apply where this workspace has none: this command does not know them)\n");
    }
    store_close(st);
    return rc < 0 ? 1 : 0;
}

static int cmd_workspace(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "set"))
        return cmd_workspace_set(argc, argv);
    const char *data = getenv("VBATCH_DATA");
    const char *db = getenv("VBATCH_DB");
    const char *pos[3] = {NULL, NULL, NULL};
    const char *key_name = NULL;
    bool keys = argc > 0 && !strcmp(argv[0], "keys"), as_json = false;
    int npos = 0, first = keys ? 2 : 1, want = 1;
    struct store *st = NULL;
    char key[STORE_KEY_LEN + 1];
    int rc;

    if (!data || !*data)
        data = DEFAULT_DATA;
    if (keys && argc > 1 && (!strcmp(argv[1], "list") || !strcmp(argv[1], "add")))
        want = 1;
    else if (keys && argc > 1 && !strcmp(argv[1], "revoke"))
        want = 2;
    else if (keys || argc < 1 || strcmp(argv[0], "create") != 0) {
        fprintf(stderr, WORKSPACE_USAGE);
        return 2;
    }
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strncmp(argv[i], "--data=", 7))
            data = argv[i] + 7;
        else if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else if (!strncmp(argv[i], "--db=", 5))
            db = argv[i] + 5;
        else if (keys && !strcmp(argv[1], "add") && !strcmp(argv[i], "--name") && i + 1 < argc)
            key_name = argv[++i];
        else if (keys && !strcmp(argv[1], "list") && !strcmp(argv[i], "--json"))
            as_json = true;
        else if (argv[i][0] != '-' && npos < want)
            pos[npos++] = argv[i];
        else {
            fprintf(stderr, WORKSPACE_USAGE);
            return 2;
        }
    }
    if (npos != want) {
        fprintf(stderr, WORKSPACE_USAGE);
        return 2;
    }
    if (!id_valid(pos[0], STORE_WS_MAX)) {
        fprintf(stderr, "vbatch: workspace names are 1 to 64 characters of a-z, 0-9, '-', '_'\n");
        return 2;
    }
    if (key_name && !store_key_name_valid(key_name)) {
        fprintf(stderr, "vbatch: key names are at most 64 printable ASCII characters\n");
        return 2;
    }
    if ((rc = open_store(data, db, NULL, NULL, NULL, NULL, &st)) != 0)
        return rc;
    if (keys) {
        rc = workspace_keys(st, argv[1], pos[0], pos[1], key_name, as_json);
        store_close(st);
        return rc;
    }
    const char *name = pos[0];
    rc = store_workspace_create(st, name, key);
    if (rc == ERR_EXISTS)
        fprintf(stderr, "vbatch: workspace '%s' already exists\n", name);
    else if (rc < 0)
        fprintf(stderr, "vbatch: cannot create workspace '%s': %s\n", name, err_str(rc));
    else
        printf("workspace: %s\napi_key: %s\n", name, key);
    store_close(st);
    return rc < 0 ? 1 : 0;
}

/* vbatch worker: the job worker loop of `serve` without the HTTP API, for
 * more processes on the same data folder (or, later, other machines). */
static int cmd_worker(int argc, char **argv)
{
    struct serve_cfg c = {.data = DEFAULT_DATA, .workers = 2};
    struct store *st = NULL;
    struct staging *sg = NULL;
    struct model_registry *models = NULL;
    struct jobs_models *machines = NULL;
    struct jobs *jobs = NULL;
    struct staging_opts so;
    sigset_t sigs;
    int sig = 0, ret = 1;

    const char *mt = getenv("VBATCH_MODEL_THREADS");
    c.db = getenv("VBATCH_DB");
    c.secret_file = getenv("VBATCH_SECRET_FILE");
    c.blobs = getenv("VBATCH_BLOBS");
    c.blobs_creds = getenv("VBATCH_BLOBS_CREDENTIALS");
    c.blobs_presign_creds = getenv("VBATCH_BLOBS_PRESIGN_CREDENTIALS");
    c.sink_folder = getenv("VBATCH_SINK_FOLDER");
    c.secrets_env = getenv("VBATCH_SECRETS_ENV");
    c.sink_s3 = getenv("VBATCH_SINK_S3");
    c.sink_s3_creds = getenv("VBATCH_SINK_S3_CREDENTIALS");
    c.slack_api_url = getenv("VBATCH_SLACK_API_URL");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data") && v)
            c.data = argv[++i];
        else if (!strcmp(a, "--db") && v)
            c.db = argv[++i];
        else if (!strcmp(a, "--secret-file") && v)
            c.secret_file = argv[++i];
        else if (!strcmp(a, "--blobs") && v)
            c.blobs = argv[++i];
        else if (!strcmp(a, "--blobs-credentials") && v)
            c.blobs_creds = argv[++i];
        else if (!strcmp(a, "--blobs-presign-credentials") && v)
            c.blobs_presign_creds = argv[++i];
        else if (!strcmp(a, "--models-dir") && v)
            c.models_dir = argv[++i];
        else if (!strcmp(a, "--workers") && v)
            c.workers = atoi(argv[++i]);
        else if (!strcmp(a, "--task-lease-ms") && v)
            c.task_lease_ms = atoll(argv[++i]);
        else if (!strcmp(a, "--model-threads") && v)
            mt = argv[++i];
        else if (!strcmp(a, "--sink-folder") && v)
            c.sink_folder = argv[++i];
        else if (!strcmp(a, "--secrets-env") && v)
            c.secrets_env = argv[++i];
        else if (!strcmp(a, "--sink-s3") && v)
            c.sink_s3 = argv[++i];
        else if (!strcmp(a, "--sink-s3-credentials") && v)
            c.sink_s3_creds = argv[++i];
        else if (!strcmp(a, "--slack-api-url") && v)
            c.slack_api_url = argv[++i];
        else {
            fprintf(stderr, "usage: vbatch worker [--data DIR] [--db URL] [--blobs URL] [--blobs-credentials FILE]"
                            " [--workers N] [--models-dir DIR]"
                            " [--task-lease-ms MS] [--model-threads N] [--secret-file FILE]"
                            " [--sink-folder DIR] [--secrets-env A,B] [--sink-s3 URL]"
                            " [--sink-s3-credentials FILE] [--slack-api-url URL]\n");
            return 2;
        }
    }
    if (mt) {
        char *end = NULL;
        errno = 0;
        long long n = strtoll(mt, &end, 10);
        if (errno || end == mt || *end || n < 0) {
            fprintf(stderr, "vbatch: --model-threads needs a non-negative integer, not '%s'\n", mt);
            return 2;
        }
        c.model_threads = n;
    }
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int orc = open_store(c.data, c.db, c.secret_file, c.blobs, c.blobs_creds, c.blobs_presign_creds, &st);
    if (orc != 0) {
        ret = orc;
        goto out;
    }
    staging_opts_default(&so);
    so.public_base_url = "http://127.0.0.1";
    struct err se = ERR_INIT;
    int src = staging_new(st, &so, &sg, &se);
    if (src < 0) {
        fprintf(stderr, "vbatch: cannot open staging: %s\n", err_text(&se, src));
        goto out;
    }
    if (jobs_setup(&c, st, sg, &models, &machines, &jobs) < 0)
        goto out;
    if (c.sink_s3 && *c.sink_s3) {
        /* the s3_sink objects this worker's steps queue are PUT by its own
         * sender (no other process may have the bucket); it sends nothing
         * else: webhooks need serve's network settings */
        struct store_outbox_opts oo;
        store_outbox_opts_default(&oo);
        oo.s3_only = true;
        if (store_outbox_start(st, &oo) < 0) {
            fprintf(stderr, "vbatch: cannot start the outbox sender\n");
            goto out;
        }
    }
    printf("worker: %d threads on %s\n", (int)c.workers, c.data);
    fflush(stdout);
    while (sigwait(&sigs, &sig) != 0)
        ;
    ret = 0;
out:
    jobs_free(jobs);
    jobs_models_free(machines);
    model_registry_free(models);
    staging_free(sg);
    store_close(st);
    return ret;
}

/* vbatch model register ID DIR | model list | model delete ID: the models
 * stored in the data folder (blob store + models table, as the /models
 * API stores them).  Without --workspace a model is the operator's (read
 * and used by every workspace, written by none over HTTP); with
 * --workspace W it is W's, as if W had registered it over HTTP.  A running
 * server or worker on the same data finds a model registered here when a
 * task or a GET asks for it, and drops a deleted one at its next re-read
 * of the table. */
static int cmd_model(int argc, char **argv)
{
    const char *data = getenv("VBATCH_DATA");
    const char *db = getenv("VBATCH_DB");
    const char *blobs = getenv("VBATCH_BLOBS");
    const char *blobs_creds = getenv("VBATCH_BLOBS_CREDENTIALS");
    const char *pos[3] = {NULL, NULL, NULL};
    const char *ws = NULL;
    struct model_registry_opts o = {0};
    struct model_registry *reg = NULL;
    struct store *st = NULL;
    char err[1024];
    int npos = 0, rc, ret = 1;

    if (!data || !*data)
        data = DEFAULT_DATA;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strncmp(argv[i], "--data=", 7))
            data = argv[i] + 7;
        else if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else if (!strncmp(argv[i], "--db=", 5))
            db = argv[i] + 5;
        else if (!strcmp(argv[i], "--blobs") && i + 1 < argc)
            blobs = argv[++i];
        else if (!strncmp(argv[i], "--blobs=", 8))
            blobs = argv[i] + 8;
        else if (!strcmp(argv[i], "--blobs-credentials") && i + 1 < argc)
            blobs_creds = argv[++i];
        else if (!strncmp(argv[i], "--blobs-credentials=", 20))
            blobs_creds = argv[i] + 20;
        else if (!strcmp(argv[i], "--workspace") && i + 1 < argc)
            ws = argv[++i];
        else if (!strncmp(argv[i], "--workspace=", 12))
            ws = argv[i] + 12;
        else if (argv[i][0] != '-' && npos < 3)
            pos[npos++] = argv[i];
        else
            npos = 99;
    }
    bool reg_cmd = npos == 3 && !strcmp(pos[0], "register");
    bool list_cmd = npos == 1 && !strcmp(pos[0], "list");
    bool del_cmd = npos == 2 && !strcmp(pos[0], "delete");
    if (!reg_cmd && !list_cmd && !del_cmd) {
        fprintf(stderr, "usage: vbatch model register ID DIR [--workspace WS] [--data DIR] [--db URL] [--blobs URL]\n"
                        "       vbatch model list [--workspace WS] [--data DIR] [--db URL] [--blobs URL]\n"
                        "       vbatch model delete ID [--workspace WS] [--data DIR] [--db URL] [--blobs URL]\n"
                        "       (--blobs-credentials FILE with an s3:// --blobs)\n"
                        "without --workspace: the operator's models (used by every workspace)\n");
        return 2;
    }
    char *dir = xasprintf("%s/models", data);
    if ((rc = open_store(data, db, NULL, blobs, blobs_creds, NULL, &st)) != 0) {
        ret = rc;
        goto out;
    }
    if (ws && store_workspace_exists(st, ws) < 0) {
        fprintf(stderr, "vbatch: no workspace '%s' in '%s'\n", ws, data);
        goto out;
    }
    o.intra_op_threads = 1;
    rc = model_registry_new(&o, &reg, err, sizeof err);
    struct err se = ERR_INIT;
    if (rc == 0 && reg_cmd && (rc = jobs_models_store_put_dir(st, reg, ws, pos[1], pos[2], &se)) < 0)
        snprintf(err, sizeof err, "%s", err_text(&se, rc));
    if (rc == 0 && del_cmd) {
        rc = jobs_models_store_delete(st, reg, ws, pos[1], &se);
        if (rc == 0)
            printf("deleted: %s\n", pos[1]);
        else
            snprintf(err, sizeof err, "%s", err_text(&se, rc));
    }
    if (rc == 0 && list_cmd) {
        /* the legacy folder first: a stored model of the same id wins, as at start */
        if (access(dir, F_OK) == 0) {
            int bad = 0;
            rc = model_registry_load_dir(reg, dir, &bad, err, sizeof err);
            if (rc >= 0 && bad > 0)
                fprintf(stderr, "vbatch: %d model folder(s) in '%s' could not be loaded (see the log)\n",
                        bad, dir);
        }
        int bad = 0;
        if (rc >= 0 && jobs_models_store_sync(st, reg, NULL, &bad) < 0) {
            snprintf(err, sizeof err, "cannot read the models table");
            rc = ERR_INTERNAL;
        }
        if (rc >= 0 && bad > 0)
            fprintf(stderr, "vbatch: %d stored model(s) could not be loaded (see the log)\n", bad);
    }
    if (rc < 0) {
        fprintf(stderr, "vbatch: %s\n", err);
        goto out;
    }
    /* one line per model: id, task, input size, classes, and the scope
     * ("operator", "workspace W"), "(folder)" for a models folder's */
    json_t *ids = del_cmd ? json_array() : model_registry_list(reg);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        struct model *m = NULL;
        const char *id = json_string_value(json_object_get(v, "modelId"));
        const char *mws = json_string_value(json_object_get(v, "workspace"));
        bool same_scope = mws ? ws && !strcmp(mws, ws) : !ws;
        if (reg_cmd && (strcmp(id, pos[1]) != 0 || !same_scope))
            continue;
        if (ws && mws && !same_scope)
            continue; /* --workspace W lists W's and the operator's */
        if (model_registry_get(reg, mws, id, &m, err, sizeof err) < 0)
            continue;
        int w = 0, h = 0;
        model_input_size(m, &w, &h);
        printf("%s%s\t%s\t%dx%d\t%zu classes\t%s%s%s\n", reg_cmd ? "registered: " : "", id,
               model_task_name(model_task(m)), w, h, model_class_count(m), mws ? "workspace " : "operator",
               mws ? mws : "", model_tag(m) ? "" : "\t(folder)");
        model_unref(m);
    }
    json_decref(ids);
    ret = 0;
out:
    model_registry_free(reg);
    store_close(st);
    free(dir);
    return ret;
}

struct command {
    const char *name;
    int (*fn)(int argc, char **argv); /* argv after the command name */
    const char *help;
};

static int cmd_batch(int argc, char **argv)
{
    return cli_main("batch", argc, argv);
}

static int cmd_job(int argc, char **argv)
{
    return cli_main("job", argc, argv);
}

static int cmd_workflow(int argc, char **argv)
{
    return cli_main("workflow", argc, argv);
}

static const struct command commands[] = {
    {"serve", cmd_serve, "run the HTTP API and background ingest (vbatch serve --help)"},
    {"worker", cmd_worker, "run batch job workers only: worker [--data DIR] [--db URL] [--blobs URL] [--workers N] [--models-dir DIR]"
               " [--model-threads N]"},
    {"workspace", cmd_workspace, "workspace create NAME | workspace keys list|add|revoke WS [KEY_ID] | workspace set NAME [--max-staged-bytes N] [--max-jobs N] [--max-pending-uploads N] [--rate-limit N] [--rate-burst N] [--data DIR]"
                                 " [--db URL]: new workspace (prints its API key); its keys; its quotas"},
    {"model", cmd_model, "model register ID DIR | model list | model delete ID [--workspace WS] [--data DIR]:"
                         " stored models (the operator's without --workspace)"},
    {"batch", cmd_batch, "batch upload|list|show|export: client of a server's Data Staging API (docs/CLI.md)"},
    {"job", cmd_job, "job start|watch|list|logs|abort|restart: client of the Batch Processing API"},
    {"workflow", cmd_workflow, "workflow put|get|list: client of the workflows registry"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vbatch <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "vbatch: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
