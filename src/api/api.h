/*
 * api — the HTTP handlers of vbatch.  One file per resource group:
 *
 *   api.c        registration of every group, authentication, shared helpers
 *   root.c       GET /healthz, GET /?api_key=… (workspace lookup)
 *   staging.c    Data Staging API (/data-staging/v1/external/…) and the
 *                signed blob URLs (/blobs/<key>?…) served by vbatch itself
 *   workflows.c  workflows registry (/workflows/v1/external/…) and the
 *                --workflows-dir loader
 *   models.c     model registry (/models/v1/external/…): upload, list, describe
 *   metrics.c    GET /metrics (Prometheus text format; --metrics-token)
 *   openapi.c    GET /openapi.json (the embedded src/api/openapi.json)
 *   ui.c         the web dashboard at /ui/ (files embedded at build time
 *                from src/ui/, docs/UI.md)
 *   jobs*.c      Batch Processing API (written by the jobs work)
 *
 * A group registers its routes from its own file with
 * api_<group>_register(router, ctx); api_routes_register() calls them all
 * in a fixed order.  Handlers are thin: authenticate (api_auth), validate
 * path/query values, call one store/staging/jobs function, send its JSON
 * or its error as {"error": "<message>"}.
 *
 * Thread safety: handlers run on libmicrohttpd's pool threads; struct
 * api_ctx is written before the server starts and read-only afterwards.
 */
#ifndef VBATCH_API_H
#define VBATCH_API_H

#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "staging/staging.h"
#include "store/store.h"

struct model_registry;

struct api_ctx {
    struct store *st;            /* borrowed */
    struct staging *sg;          /* borrowed */
    void *jobs;                  /* borrowed; the jobs service, for api/jobs*.c */
    uint64_t max_image_bytes;    /* single-image upload cap (multipart body cap
                                  * is this plus 64 KiB of framing) */
    uint64_t max_put_bytes;      /* cap of a PUT to a signed URL (the signed
                                  * limit inside the URL is checked too) */
    uint64_t max_json_bytes;     /* JSON request bodies (references: 64 MiB) */
    int max_page_size;           /* largest pageSize of the staging lists */
    struct model_registry *models; /* borrowed; process-wide model registry
                                    * (NULL: the models routes answer 503) */
    uint64_t max_model_bytes;    /* model weights upload cap; 0: 1 GiB */
    const char *metrics_token;   /* borrowed; NULL or "": GET /metrics needs no
                                  * credential, else "Authorization: Bearer <it>" */
    struct api_ratelimit *rl;    /* owned by the caller (api_ratelimit_new);
                                  * NULL: no per-key request rate limit */
    struct api_wsrate *wsrl;     /* owned by the caller (api_wsrate_new);
                                  * NULL: no per-workspace request rate limit */
};

/* ---- per-key request rate limit (ratelimit.c) --------------------------------
 * A token bucket per API key in this process: `rate` requests per second
 * on average, bursts of `burst`.  api_auth takes one token after the key
 * is verified; an empty bucket is answered 429 with Retry-After (whole
 * seconds until the next token).  Several processes behind one address
 * each keep their own buckets: the limit a client sees is rate x the
 * number of processes it reaches. */
#define API_QUOTA_RETRY_AFTER_S "10" /* Retry-After of a 429 for a workspace quota */
struct api_ratelimit;
/* rate > 0 requests/s; burst >= 1 (0: max(1, rate)). */
struct api_ratelimit *api_ratelimit_new(double rate, double burst);
void api_ratelimit_free(struct api_ratelimit *rl); /* NULL ok */
/* Take a token for key at now_ms: 0, or the ms until one is there. */
int64_t api_ratelimit_take(struct api_ratelimit *rl, const char *key, int64_t now_ms);

/* ---- per-workspace request rate limit (ratelimit.c) --------------------------
 * The workspace's rate limit (ws_quotas.rate_limit/rate_burst, else the
 * serve defaults) counted in the database for every process together
 * (store_rate_take).  This cache keeps each workspace's limits for at most
 * API_WSRATE_REFRESH_MS (so `vbatch workspace set` applies within that on
 * every process) and, after a refusal, the time until which the database
 * will refuse again, answered without asking it.  A workspace without a
 * limit costs a lookup here and one database read per refresh period. */
#define API_WSRATE_REFRESH_MS 1000
/* A busy workspace's process reserves several requests per database
 * statement (up to 1/20 s of the rate, 1/4 of the burst), usable for this
 * long; the limit then holds up to that shift in time. */
#define API_WSRATE_RESERVE_MS 500
struct api_wsrate;
struct api_wsrate *api_wsrate_new(struct store *st); /* st borrowed */
void api_wsrate_free(struct api_wsrate *w);          /* NULL ok */
/* 0: the request may go; > 0: ms until ws may send the next one.  A
 * database error lets the request through (logged): an unreachable
 * database fails the request's own work anyway. */
int64_t api_wsrate_take(struct api_wsrate *w, const char *ws, int64_t now_ms);

/* Register every resource group's routes on r (ctx borrowed, must outlive
 * the router).  0 or <0 (a route conflict: a bug). */
int api_routes_register(struct http_router *r, struct api_ctx *ctx);

/* Groups (each in its own file). */
int api_root_register(struct http_router *r, struct api_ctx *ctx);
int api_staging_register(struct http_router *r, struct api_ctx *ctx);
int api_workflows_register(struct http_router *r, struct api_ctx *ctx);
int api_models_register(struct http_router *r, struct api_ctx *ctx);
int api_metrics_register(struct http_router *r, struct api_ctx *ctx); /* metrics.c: GET /metrics */
int api_openapi_register(struct http_router *r, struct api_ctx *ctx); /* openapi.c: GET /openapi.json */
/* The embedded OpenAPI document (src/api/openapi.json): static bytes, NUL
 * terminated; *len (may be NULL) gets the length without the NUL. */
const char *api_openapi_document(size_t *len);

int api_ui_register(struct http_router *r, struct api_ctx *ctx);      /* ui.c: GET /ui/… */

/* ---- helpers for handlers --------------------------------------------------- */

/* Check the request's key — the api_key query parameter, else the header
 * "Authorization: Bearer <key>" — against the path parameter "workspace"
 * (when the route has one).  On success returns 0 and, when ws_out is not
 * NULL, the key's workspace name.  On failure it has already replied (400
 * api_key given twice, or query and header naming different keys; 401
 * missing/unknown key, 403 key of another workspace, 429 with Retry-After
 * when ctx->rl is set and the key's bucket is empty, or when ctx->wsrl
 * is set and the workspace is over its rate limit) and returns ERR_AUTH:
 * the handler just returns 0. */
int api_auth(struct http_req *req, struct api_ctx *ctx, char ws_out[STORE_WS_MAX + 1]);
/* The key of an "Authorization: Bearer <key>" header (borrowed from the
 * request), or NULL when there is no such header. */
const char *api_bearer_key(struct http_req *req);

/* Validate an id path parameter (^[a-z0-9_-]{1,maxlen}$).  Returns the
 * value, or NULL after replying 400 "invalid <what> '<value>'". */
const char *api_id_param(struct http_req *req, const char *name, const char *what, size_t maxlen);

/* Parse the optional integer query parameter 'name' (1..max).  Returns 0
 * with *out (0 when absent), or replies 400 and returns ERR_INVALID. */
int api_int_query(struct http_req *req, const char *name, int max, int *out);

/* ---- errors: the one code -> HTTP status mapping ----------------------------
 * Nothing below api/ knows HTTP statuses: staging/, jobs/ and store/
 * return a code (base.h) and write the reason into the caller's struct
 * err.  The statuses:
 *   ERR_PARSE, ERR_INVALID   400      ERR_LIMIT        413
 *   ERR_AUTH                 403 (1)  ERR_UNSUPPORTED  415
 *   ERR_NOTFOUND             404      ERR_AGAIN        503 (database busy)
 *                                     ERR_UNAVAILABLE  503 (database unreachable)
 *   ERR_EXISTS               409      ERR_NOSPACE      507 (storage full) (2)
 *   ERR_QUOTA                429 + Retry-After (a workspace quota)
 *   anything else            500
 * (1) a credential that was presented and refused (a signed URL's
 *     signature, as object stores answer); a missing or unknown api_key
 *     is answered 401 by api_auth itself.
 * (2) also -ENOSPC and -EDQUOT; the message starts "storage full". */
unsigned api_http_status(int rc);
/* Reply {"error": …} for a failure rc with the message of e (may be NULL;
 * err_str(rc) when it holds none).  Returns 0. */
int api_reply_err(struct http_req *req, int rc, const struct err *e);
/* The same with a message made here ("cannot write the upload: %s"). */
int api_reply_errf(struct http_req *req, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reply with the result of a service call: 200 and the JSON (stolen) when
 * rc >= 0, else api_reply_err(req, rc, e). */
int api_reply(struct http_req *req, int rc, json_t *out, const struct err *e);

/* Load every definition of dir into the registry: dir/<id>.json goes into
 * workspace 'default_ws', dir/<ws>/<id>.json into workspace <ws> (which
 * must exist).  Invalid files are logged and skipped.  *loaded (may be
 * NULL) counts the ones stored.  ERR_NOTFOUND when dir is missing. */
int api_workflows_load_dir(struct store *st, const char *dir, const char *default_ws, int *loaded);

#endif
