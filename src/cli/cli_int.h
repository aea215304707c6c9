/*
 * cli_int.h — shared between the files of src/cli/ (not a public header).
 */
#ifndef VBATCH_CLI_INT_H
#define VBATCH_CLI_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/base.h"

#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"
/* Largest JSON answer read into memory (a page of 1,000 list entries is
 * well under 1 MiB). */
#define CLI_MAX_JSON_BYTES (64u << 20)
/* The most pages one listing may take (a server that keeps answering with
 * a nextPageToken is not followed forever). */
#define CLI_MAX_PAGES 1000000
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* One invocation's settings and its main-thread curl handle.  Owned by
 * cli_main(); only the main thread touches it, except the read-only
 * strings, which worker threads of upload.c read. */
struct cli {
    char *server;     /* owned; no trailing '/' (set by cli__connect) */
    const char *server_opt; /* borrowed: --server or VBATCH_SERVER */
    const char *key;  /* borrowed from argv/environment */
    char *workspace;  /* owned; from --workspace or GET /?api_key= */
    const char *ws_opt;
    bool tty;         /* stderr is a terminal: progress bars */
    long timeout_s;   /* per request (not per upload/download) */
    CURL *curl;       /* main thread's handle, reused between calls */
};

/* ---- options ------------------------------------------------------------ */
enum cli_opt_kind { CLI_OPT_STR, CLI_OPT_INT, CLI_OPT_FLAG, CLI_OPT_NUM };
struct cli_opt {
    const char *name; /* without "--" */
    enum cli_opt_kind kind;
    void *dst;        /* const char ** | long * | bool * | double * */
};
/* Parse argv (after the subcommand) into the common options of c, opts,
 * and up to maxpos positional arguments (pos[], *npos).  "--name value"
 * and "--name=value".  Prints the problem and returns CLI_EXIT_USAGE on an
 * unknown option, a missing or bad value or too many positionals; 0 else. */
int cli__parse(struct cli *c, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
               const char **pos, int maxpos, int *npos);
/* Fill in the server, key and workspace (one GET /?api_key= when no
 * --workspace was given).  CLI_EXIT_USAGE without a key, CLI_EXIT_FAIL
 * when the server refuses (message printed), 0 else. */
int cli__connect(struct cli *c);

/* ---- HTTP ------------------------------------------------------------- */
/* Query parameters: pairs of key, value (value NULL: pair skipped), ended
 * by a NULL key.  Values are percent-encoded here.  The api_key is added by
 * cli__call. */
/* Build "<server><path>?<query>&api_key=<key>" (with_key) — malloc'd. */
char *cli__url(const struct cli *c, const char *path, const char *const *query, bool with_key);
/* One API call on the main handle.  path starts with '/'.  body may be NULL
 * (no body; Content-Length 0 for POST).  Retries 408/429/502/503/504 and
 * connection failures 3 times, 1 s apart (as Roboflow's CLI does).  On a
 * 2xx answer returns 0 and *out = the parsed JSON (new reference; a JSON
 * null for an empty body).  Otherwise returns CLI_EXIT_FAIL with a one-line
 * message in e: "<METHOD> <path>: <status> <error of the JSON body>" (the
 * key never appears in it).  *status (may be NULL) gets the HTTP status
 * (0: no answer). */
int cli__call(struct cli *c, const char *method, const char *path, const char *const *query,
              const char *body, size_t len, json_t **out, long *status, struct err *e);
/* Same with a given curl handle (worker threads each own one). */
int cli__call_on(CURL *h, const struct cli *c, const char *method, const char *path, const char *const *query,
                 const char *body, size_t len, json_t **out, long *status, struct err *e);
/* The error text of an answer body: its "error" string when it is JSON
 * with one, else its first line, cut to fit one line.  Writes into out. */
void cli__error_text(const char *body, size_t len, char *out, size_t outlen);
/* "/data-staging/v1/external/<ws>/batches/<id>" + rest, with <id>
 * percent-encoded — malloc'd.  Same for jobs and workflows. */
char *cli__ds_path(const struct cli *c, const char *batch, const char *rest);
char *cli__bp_path(const struct cli *c, const char *job, const char *rest);
char *cli__wf_path(const struct cli *c, const char *wf);
/* CLI_EXIT_FAIL with "GET <path>: more than CLI_MAX_PAGES pages" in e. */
int cli__too_many_pages(const char *path, struct err *e);
/* A curl handle with the common settings (user agent, no signals,
 * connection timeout).  Caller frees with curl_easy_cleanup. */
CURL *cli__handle(const struct cli *c);

/* ---- output ------------------------------------------------------------- */
/* "vbatch: <message>\n" on stderr. */
void cli__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Human sizes: "12.3 MB"; out holds 32 bytes. */
void cli__human_bytes(double n, char out[32]);
/* A progress bar line on stderr ("\r" + bar), or nothing when not a TTY:
 * label, done/total (total 0: unknown), and a free-form tail. */
void cli__bar(const struct cli *c, const char *label, double done, double total, const char *tail);
/* End a bar line (newline on a TTY). */
void cli__bar_end(const struct cli *c);
/* The string value of key in o, or def. */
const char *cli__str(json_t *o, const char *key, const char *def);

/* ---- commands ----------------------------------------------------------- */
int cli__batch_upload(struct cli *c, int argc, char **argv);
int cli__batch_export(struct cli *c, int argc, char **argv);
int cli__job_watch(struct cli *c, int argc, char **argv);
/* What an upload PUT (owned strings): the shard ids and the video file
 * names.  With blobs on S3 the signed URLs are the object store's and the
 * server notices each upload a moment later (its arrival poller), so a
 * shard just PUT may still read "awaiting-upload". */
struct cli_sent {
    char **shards, **videos;
    size_t nshards, nvideos;
};
void cli__sent_release(struct cli_sent *s);

/* Wait until no shard of batch is being indexed (uploaded, queued,
 * waiting for storage, or awaiting-upload while its id is in sent);
 * timeout_s 0: forever.  sent NULL (nothing PUT by this run, e.g. before
 * a resumed upload lists the batch): a batch with awaiting-upload shards
 * gets one grace of CLI_ARRIVAL_GRACE_MS first, for the arrival poller to
 * notice an upload that an interrupted run finished.  0, or CLI_EXIT_FAIL
 * with the message in e.  *failed (may be NULL) gets the number of shards
 * whose status type contains "error". */
#define CLI_ARRIVAL_GRACE_MS 3000
int cli__wait_indexed(struct cli *c, const char *batch, long timeout_s, const struct cli_sent *sent, long *failed,
                      struct err *e);

#endif
