/*
 * base — the bottom module: errors, allocation, growable buffers, logging,
 * time, ids, crypto helpers.  Everything else in vbatch may include this;
 * it includes nothing of ours.
 *
 * Thread safety: every function here is safe to call from any thread.
 */
#ifndef VBATCH_BASE_H
#define VBATCH_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ---- errors ---------------------------------------------------------- */
/* Functions that can fail return 0 on success and a negative value on
 * failure: -errno for OS failures, or one of these. */
enum {
    ERR_PARSE = -10001,    /* malformed input */
    ERR_LIMIT = -10002,    /* a size or count limit was exceeded */
    ERR_AGAIN = -10003,    /* incremental parser: need more bytes */
    ERR_NOTFOUND = -10004, /* no such object */
    ERR_EXISTS = -10005,   /* object already exists / conflict */
    ERR_INVALID = -10006,  /* semantically invalid input */
    ERR_NOMEM = -10007,    /* a try_alloc() of an outside size failed */
    ERR_INTERNAL = -10008, /* a bug or a library failure */
    ERR_UNSUPPORTED = -10009,
    ERR_AUTH = -10010,     /* authentication / authorisation failure */
    ERR_NOSPACE = -10011,  /* storage full: ENOSPC, EDQUOT, SQLITE_FULL */
    ERR_UNAVAILABLE = -10012, /* a service we need cannot be reached (database server) */
    ERR_QUOTA = -10013,    /* a workspace quota or rate limit: retry later */
};
/* Short lowercase description of an error code; static storage. */
const char *err_str(int err);
/* -errnum as a code, with the storage-full errnos (ENOSPC, EDQUOT) as
 * ERR_NOSPACE: err_errno(errno) after a failed write. */
int err_errno(int errnum);
/* A code that says the storage is full (ERR_NOSPACE, -ENOSPC, -EDQUOT). */
bool err_is_nospace(int err);

/* The message of a failure travels with the call (git's `struct strbuf
 * *err` in refs.h): a function that can fail for a reason a user should
 * read takes `struct err *e` as its last parameter and, when it fails,
 * returns the code and writes the reason into *e.  The caller owns the
 * object (on its stack, ERR_INIT); e may be NULL when only the code is
 * wanted.  There is no per-thread error state anywhere in vbatch, so the
 * text of an answer can only come from the request that made it.  Only
 * src/api/ turns a code into an HTTP status (api_http_status). */
#define ERR_MSG_MAX 480
struct err {
    int code;              /* the code of the last err_set (0: none) */
    char msg[ERR_MSG_MAX]; /* "" or a message for the user, no trailing '.' needed */
};
#define ERR_INIT {0, ""}
/* Record code and message; returns code (`return err_set(e, ERR_X, ...)`). */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Record a message only, the code being returned separately. */
void err_printf(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Put "<prefix>: " before the message already there (or before
 * err_str(code) when there is none); returns code. */
int err_prefix(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The message for a failure with code rc: e's message when it has one,
 * else err_str(rc).  Never NULL. */
const char *err_text(const struct err *e, int rc);
void err_clear(struct err *e);

/* ---- allocation ------------------------------------------------------ */
/* Small bookkeeping allocations: abort on failure (never return NULL). */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string; abort on OOM.  Caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation whose size comes from outside (image dimensions, upload
 * lengths): overflow-checked nmemb*size, returns NULL on overflow, on
 * failure or when the fault hook says so.  Free with free(). */
void *try_alloc(size_t nmemb, size_t size);
void *try_calloc(size_t nmemb, size_t size);
/* Test hook: make the Nth (1-based) following try_alloc fail; 0 disables.
 * Returns how many try_alloc calls were made since the last set. */
unsigned long try_alloc_fail_at(unsigned long nth);

/* ---- growable buffer --------------------------------------------------- */
/* Embedded struct; .data is always NUL-terminated when .cap > 0.
 * .limit (0 = none) caps .len: appends beyond it fail with ERR_LIMIT. */
struct buf {
    char *data;   /* owned; free with buf_release() */
    size_t len;   /* bytes used, excluding the terminating NUL */
    size_t cap;   /* bytes allocated */
    size_t limit; /* max len, 0 = unlimited */
};
#define BUF_INIT {NULL, 0, 0, 0}
void buf_init(struct buf *b, size_t limit);
void buf_release(struct buf *b);
void buf_reset(struct buf *b); /* len = 0, keeps memory */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Detach the data: returns the owned, NUL-terminated string (never NULL)
 * and leaves the buffer empty. */
char *buf_detach(struct buf *b, size_t *len);

/* ---- logging ----------------------------------------------------------- */
/* One line per event on stderr: `ts level module: message key=value...`.
 * VBATCH_LOG=debug|info|warn|error sets the threshold (default info).
 * VBATCH_LOG_JSON=1 switches to one JSON object per line. */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
void log_set_level(enum log_level lvl);
bool log_enabled(enum log_level lvl);
void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define log_debug(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)

/* ---- time -------------------------------------------------------------- */
int64_t time_now_ms(void);      /* wall clock, ms since the Unix epoch */
int64_t time_mono_ms(void);     /* monotonic clock, ms */
int64_t time_mono_ns(void);     /* monotonic clock, ns */
/* *ts = CLOCK_MONOTONIC now + ms: a deadline for pthread_cond_timedwait
 * on a condition variable made with that clock. */
struct timespec;
void time_mono_deadline(struct timespec *ts, int64_t ms);
/* Format ms-since-epoch as RFC 3339 UTC with milliseconds and a 'Z':
 * "2026-11-29T03:55:10.123Z".  out must hold TIME_ISO_LEN bytes. */
#define TIME_ISO_LEN 80
void time_iso8601(int64_t ms, char out[TIME_ISO_LEN]);
/* Parse an RFC 3339 timestamp (Z or +hh:mm offset) to ms; <0 on error. */
int time_parse_iso8601(const char *s, int64_t *out_ms);

/* ---- crypto and ids ---------------------------------------------------- */
/* Fill buf with cryptographically random bytes; aborts if the OS fails. */
void rand_bytes(void *buf, size_t n);
/* Random lowercase-alphanumeric string of len chars (out holds len+1). */
void rand_alnum(char *out, size_t len);
/* Random RFC 4122 version-4 UUID, lowercase, out holds 37 bytes. */
void uuid4(char out[37]);
void sha256(const void *data, size_t len, uint8_t out[32]);
void hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[32]);
/* Lowercase hex of n bytes; out holds 2n+1. */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Value of one hex digit (either case), or -1. */
int hex_digit(int c);
/* Decode exactly 2n hex chars into n bytes; ERR_PARSE on bad input. */
int hex_decode(const char *in, size_t hexlen, uint8_t *out);
/* Standard base64 (with padding).  encode: returns malloc'd string.
 * decode: returns malloc'd bytes and *outlen, NULL on malformed input. */
char *base64_encode(const void *data, size_t len);
uint8_t *base64_decode(const char *s, size_t len, size_t *outlen);
/* URL-safe base64 without padding (tokens, signatures). */
char *base64url_encode(const void *data, size_t len);
uint8_t *base64url_decode(const char *s, size_t len, size_t *outlen);
/* Constant-time comparison; true when equal. */
bool ct_equal(const void *a, const void *b, size_t n);

/* ---- page tokens ------------------------------------------------------- */
/* Keyset page tokens: opaque base64url of "p1:<last key>:<tag>", tag = the
 * first 8 hex digits of sha256(scope), where scope names the listing
 * ("items|<ws>|<batch>|<part>", ...).  A token is only accepted by the
 * listing that made it: another batch's, job's or workspace's token is an
 * error, not a silently shifted page.  Not a secret: anyone may craft one,
 * and the keys behind it are checked by the listing's own WHERE clause. */
char *page_token_make(const char *scope, int64_t last); /* malloc'd */
/* 0 and *last (0 for a NULL or empty token), or ERR_INVALID. */
int page_token_parse(const char *scope, const char *tok, int64_t *last);

/* ---- strings ----------------------------------------------------------- */
bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);
/* Identifier check: ^[a-z0-9_-]{1,maxlen}$ */
bool id_valid(const char *s, size_t maxlen);
/* true when s (NUL-terminated) is well-formed UTF-8 (no surrogates, no
 * overlong forms, nothing above U+10FFFF) */
bool utf8_valid(const char *s);
/* Make s well-formed UTF-8 in place: each byte that does not begin a
 * well-formed sequence (a stray or Latin-1 byte, a sequence cut short by a
 * truncating snprintf) becomes '?'.  The length does not change. */
void utf8_scrub(char *s);
/* Percent-decode in place ('+' -> ' ' when form is true); returns the new
 * length or ERR_PARSE on a bad escape. */
int url_decode(char *s, bool form);
/* Percent-encode everything outside RFC 3986 unreserved; caller frees. */
char *url_encode(const char *s);

/* ---- JSON from outside ------------------------------------------------- */
/* Every JSON text that comes from outside (request bodies, upload metadata,
 * workflow definitions, staged sidecars and notification configs, model
 * folders) is parsed with json_parse_outside, which caps how deep arrays
 * and objects nest.  jansson alone accepts 2048 levels; a job or workflow
 * stored that deep could not be read back by common clients (Python's
 * parser stops near 1000) and costs stack in every later walk. */
#define JSON_MAX_DEPTH 64
struct json_t; /* jansson's json_t */
/* Parse len bytes of JSON text with jansson (flags: json_loadb's, e.g.
 * JSON_REJECT_DUPLICATES or JSON_DECODE_ANY) after checking that arrays
 * and objects nest at most JSON_MAX_DEPTH levels ("[]" is one level).
 * Returns 0 and *out (a new reference), or, with a message in err (may be
 * NULL):
 *   ERR_LIMIT  nested deeper than JSON_MAX_DEPTH: "JSON nested deeper than
 *              the limit of 64 levels of arrays and objects";
 *   ERR_PARSE  malformed: jansson's message, with line and column.
 * Both are the client's fault: answer 400, not 413. */
int json_parse_outside(const char *text, size_t len, size_t flags, struct json_t **out, char *err,
                       size_t errlen);

/* ---- files ------------------------------------------------------------- */
/* mkdir -p; 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);
/* write(2) all of data, retrying on EINTR and short writes; 0 or -errno. */
int fd_write_all(int fd, const void *data, size_t len);
/* Write data to path atomically: tmp file in the same directory, fsync,
 * rename, fsync of the directory. */
int file_write_atomic(const char *path, const void *data, size_t len);
/* Read a whole file of at most max bytes; *out is malloc'd, NUL-terminated. */
int file_read_all(const char *path, size_t max, char **out, size_t *len);
int fsync_dir(const char *dir);

/* ---- run-ahead ----------------------------------------------------------- */
/* One background thread that produces items 0..n-1 in order, at most
 * `depth` ahead of the consumer, so that loading item i+1 (reading and
 * decoding an image, say) overlaps the caller's work on item i.  The thread
 * runs `nice` steps below the caller's priority (0: the same), so that it
 * fills the cores the consumer leaves idle rather than taking them from
 * it.  fn runs on that thread and returns an owned result (may be NULL); lookahead_take(i)
 * blocks until item i is produced and hands its result over.  Items are
 * taken in order, each once.  lookahead_stop() may be called at any point
 * (an early exit): it waits for the item in progress, frees every produced
 * but untaken result with free_fn (may be NULL when results need no
 * freeing) and frees la (NULL is fine). */
struct lookahead;
typedef void *(*lookahead_fn)(void *ud, size_t i);
/* 0, or ERR_NOMEM / -errno when the thread cannot be started. */
int lookahead_start(size_t n, int depth, int nice, lookahead_fn fn, void *ud, struct lookahead **out);
void *lookahead_take(struct lookahead *la, size_t i);
/* lookahead_take waiting at most timeout_ms (< 0: as long as it takes):
 * 0 with the result in *out, or ERR_AGAIN with *out NULL when item i is
 * not ready by then (take it again later: a caller that must keep a lease
 * alive while a slow producer works). */
int lookahead_take_wait(struct lookahead *la, size_t i, int64_t timeout_ms, void **out);
void lookahead_stop(struct lookahead *la, void (*free_fn)(void *));

/* ---- metrics ------------------------------------------------------------- */
/* The process-wide registry behind GET /metrics (metrics.c).  The catalogue
 * of families is fixed here; any module bumps a family by id with its label
 * values in the order the catalogue names them (NULL for the unused ones),
 * without knowing HTTP or the text format.  Label values must be bounded
 * sets (route templates, job types, model ids, reasons) and never carry an
 * id of a batch, job or request, a workspace name or a key: a family keeps
 * at most 400 label sets (more fall into one series labelled "other"), and
 * values are cut to METRIC_LABEL_MAX bytes.  Cost: a lookup is a hash and
 * a lock-free probe, a bump one relaxed atomic add (a histogram: three
 * and a compare-and-swap).  Thread safe. */
enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };
enum metric_id {
    METRIC_HTTP_REQUESTS,      /* counter {method, route, status} */
    METRIC_HTTP_DURATION,      /* histogram {method, route}, seconds */
    METRIC_INGEST_BYTES,       /* counter {kind} */
    METRIC_INGEST_ITEMS,       /* counter {kind} */
    METRIC_IMAGES_PROCESSED,   /* counter {job_type} */
    METRIC_IMAGES_FAILED,      /* counter {job_type} */
    METRIC_TASK_ERRORS,        /* counter */
    METRIC_MODEL_INFER,        /* histogram {model}, seconds */
    METRIC_WEBHOOK_DELIVERIES, /* counter */
    METRIC_WEBHOOK_FAILURES,   /* counter */
    METRIC_WORKER_HEARTBEATS,  /* counter */
    METRIC_WORKER_HEARTBEAT_TIME, /* gauge, Unix seconds */
    METRIC_DB_ERRORS,          /* counter {reason} */
    METRIC_BLOB_ERRORS,        /* counter {op} */
    METRIC_UPLOAD_POLLS,       /* counter {what} */
    METRIC__COUNT
};
#define METRIC_LABEL_MAX 160
struct metric_series; /* one label set of a family; lives as long as the process */
/* The series of family id with these label values (created on first use;
 * NULL only for a bad id).  Callers on a hot path may keep the pointer. */
struct metric_series *metric_series_get(enum metric_id id, const char *l0, const char *l1, const char *l2);
void metric_series_add(struct metric_series *s, uint64_t n);               /* counters */
void metric_series_observe(enum metric_id id, struct metric_series *s, double v); /* histograms */
void metric_series_set(struct metric_series *s, double v);                 /* gauges */
/* Lookup and bump in one call. */
void metric_count(enum metric_id id, uint64_t n, const char *l0, const char *l1, const char *l2);
void metric_observe(enum metric_id id, double v, const char *l0, const char *l1, const char *l2);
void metric_set(enum metric_id id, double v); /* unlabelled gauges */
/* Append every family of the catalogue to b in the Prometheus text format
 * (version 0.0.4), then, with metrics_render_process, the process_* metrics
 * (CPU seconds, resident and virtual memory, open and max fds, start time)
 * read from /proc.  metrics_process_init records the start time. */
void metrics_render(struct buf *b);
void metrics_process_init(void);
void metrics_render_process(struct buf *b);
/* Helpers for families rendered elsewhere (gauges read at scrape time):
 * "# HELP"/"# TYPE" lines, a label value escaped, a sample value. */
void metrics_put_help(struct buf *b, const char *name, const char *type, const char *help);
void metrics_escape_label(struct buf *b, const char *v);
void metrics_put_double(struct buf *b, double v);

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
