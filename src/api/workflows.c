/*
 * workflows.c — the workflows registry over HTTP and the --workflows-dir
 * loader.
 *
 *   PUT    /workflows/v1/external/{workspace}/workflows/{workflow_id}  create/replace
 *   GET    /workflows/v1/external/{workspace}/workflows/{workflow_id}  {"workflowId","definition"}
 *   GET    /workflows/v1/external/{workspace}/workflows                {"workflows":[…]}
 *   DELETE /workflows/v1/external/{workspace}/workflows/{workflow_id}  {"status":"ok"}
 *
 * A definition is checked at upload by the workflow compiler
 * (wf_validate); its one-line message is the 400 body.
 */
#include "api/api.h"

#include "base/base.h"
#include "workflow/workflow.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WF "/workflows/v1/external/{workspace}/workflows"
#define WF_ID_MAX 64
#define WF_MAX_BYTES (4u << 20)

/* 0 when def may be stored; else <0 with a message in err.  *validated
 * is true when the compiler accepted it. */
static int wf_check(const json_t *def, char *err, size_t errlen, bool *validated)
{
    *validated = false;
    if (!json_is_object(def)) {
        snprintf(err, errlen, "a workflow definition must be a JSON object");
        return ERR_INVALID;
    }
    err[0] = '\0';
    int rc = wf_validate(def, err, errlen);
    if (rc < 0) {
        if (!err[0])
            snprintf(err, errlen, "invalid workflow definition: %s", err_str(rc));
        return rc;
    }
    *validated = true;
    return 0;
}

/* A body may be the definition itself or {"specification": {...}}. */
static json_t *wf_unwrap(json_t *body)
{
    json_t *spec = json_object_get(body, "specification");
    return json_is_object(spec) ? spec : body;
}

static int wf_put(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1], err[512];
    bool validated;
    const char *id;
    json_t *body;
    int rc;

    if (api_auth(req, ctx, ws) < 0 || !(id = api_id_param(req, "workflow_id", "workflow id", WF_ID_MAX)))
        return 0;
    body = http_req_body_json(req);
    if (!body)
        return 0;
    json_t *def = wf_unwrap(body);
    rc = wf_check(def, err, sizeof err, &validated);
    if (rc < 0) {
        json_decref(body);
        return http_reply_error(req, 400, "%s", err);
    }
    char *text = json_dumps(def, JSON_COMPACT | JSON_REAL_PRECISION(17));
    struct err e = ERR_INIT;
    json_decref(body);
    rc = text ? store_space_check(ctx->st, (int64_t)strlen(text), "this workflow", &e) : ERR_NOMEM;
    if (rc == 0 && (rc = store_workflow_put(ctx->st, ws, id, text)) < 0)
        err_set(&e, rc, "cannot store workflow '%s': %s", id, err_str(rc));
    free(text);
    if (rc < 0)
        return api_reply_err(req, rc, &e);
    return http_reply_json(req, 200, json_pack("{s:s,s:s,s:b}", "status", "ok", "workflowId", id,
                                               "validated", validated));
}

static int wf_get(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    char *text = NULL;
    const char *id;
    json_error_t e;

    if (api_auth(req, ctx, ws) < 0 || !(id = api_id_param(req, "workflow_id", "workflow id", WF_ID_MAX)))
        return 0;
    int rc = store_workflow_get(ctx->st, ws, id, &text);
    if (rc == ERR_NOTFOUND)
        return http_reply_error(req, 404, "no workflow '%s' in workspace '%s'", id, ws);
    if (rc < 0)
        return http_reply_error(req, 500, "cannot read workflow '%s': %s", id, err_str(rc));
    json_t *def = json_loads(text, 0, &e);
    free(text);
    if (!def)
        return http_reply_error(req, 500, "stored workflow '%s' is not JSON", id);
    return http_reply_json(req, 200, json_pack("{s:s,s:o}", "workflowId", id, "definition", def));
}

static int wf_list(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    json_t *list = NULL;

    if (api_auth(req, ctx, ws) < 0)
        return 0;
    int rc = store_workflow_list(ctx->st, ws, &list);
    if (rc < 0)
        return http_reply_error(req, 500, "cannot list workflows: %s", err_str(rc));
    return http_reply_json(req, 200, json_pack("{s:o}", "workflows", list));
}

static int wf_delete(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    char ws[STORE_WS_MAX + 1];
    const char *id;

    if (api_auth(req, ctx, ws) < 0 || !(id = api_id_param(req, "workflow_id", "workflow id", WF_ID_MAX)))
        return 0;
    int rc = store_workflow_delete(ctx->st, ws, id);
    if (rc == ERR_NOTFOUND)
        return http_reply_error(req, 404, "no workflow '%s' in workspace '%s'", id, ws);
    if (rc < 0)
        return http_reply_error(req, 500, "cannot delete workflow '%s': %s", id, err_str(rc));
    return http_reply_json(req, 200, json_pack("{s:s,s:s}", "status", "ok", "workflowId", id));
}

int api_workflows_register(struct http_router *r, struct api_ctx *ctx)
{
    struct http_route_ops put = {.end = wf_put, .max_body = WF_MAX_BYTES};
    struct http_route_ops del = {.end = wf_delete};
    int rc = http_router_get(r, WF, wf_list, ctx);
    if (rc == 0)
        rc = http_router_get(r, WF "/{workflow_id}", wf_get, ctx);
    if (rc == 0)
        rc = http_router_add(r, "PUT", WF "/{workflow_id}", &put, ctx);
    if (rc == 0)
        rc = http_router_add(r, "DELETE", WF "/{workflow_id}", &del, ctx);
    return rc;
}

/* ---- folder loader -------------------------------------------------------------------- */

static int wf_load_file(struct store *st, const char *ws, const char *dir, const char *fname)
{
    char id[WF_ID_MAX + 1], err[512];
    size_t n = strlen(fname);
    char *path = NULL, *text = NULL;
    json_t *body = NULL;
    bool validated;
    int rc;

    if (n <= 5 || n - 5 > WF_ID_MAX || !str_has_suffix(fname, ".json"))
        return ERR_INVALID;
    memcpy(id, fname, n - 5);
    id[n - 5] = '\0';
    if (!id_valid(id, WF_ID_MAX)) {
        log_warn("api", "workflows-dir: skipping '%s': the file name is not a valid workflow id", fname);
        return ERR_INVALID;
    }
    path = xasprintf("%s/%s", dir, fname);
    rc = file_read_all(path, WF_MAX_BYTES, &text, NULL);
    if (rc < 0) {
        log_warn("api", "workflows-dir: cannot read '%s': %s", path, err_str(rc));
        goto out;
    }
    rc = json_parse_outside(text, strlen(text), JSON_REJECT_DUPLICATES, &body, err, sizeof err);
    if (rc < 0) {
        log_warn("api", "workflows-dir: '%s' is not usable JSON: %s", path, err);
        rc = ERR_PARSE;
        goto out;
    }
    json_t *def = wf_unwrap(body);
    rc = wf_check(def, err, sizeof err, &validated);
    if (rc < 0) {
        log_warn("api", "workflows-dir: '%s' is invalid: %s", path, err);
        goto out;
    }
    free(text);
    text = json_dumps(def, JSON_COMPACT | JSON_REAL_PRECISION(17));
    rc = text ? store_workflow_put(st, ws, id, text) : ERR_NOMEM;
    if (rc < 0)
        log_warn("api", "workflows-dir: cannot store '%s': %s", path, err_str(rc));
    else
        log_info("api", "workflow loaded workspace=%s id=%s validated=%d", ws, id, validated);
out:
    json_decref(body);
    free(text);
    free(path);
    return rc;
}

static int wf_load_flat(struct store *st, const char *dir, const char *ws, int *loaded)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d)
        return ERR_NOTFOUND;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !str_has_suffix(de->d_name, ".json"))
            continue;
        if (wf_load_file(st, ws, dir, de->d_name) == 0)
            (*loaded)++;
    }
    closedir(d);
    return 0;
}

int api_workflows_load_dir(struct store *st, const char *dir, const char *default_ws, int *loaded)
{
    int count = 0, rc;
    DIR *d;
    struct dirent *de;

    rc = wf_load_flat(st, dir, default_ws, &count);
    if (rc < 0)
        return rc;
    d = opendir(dir);
    while (d && (de = readdir(d))) {
        struct stat sb;
        if (de->d_name[0] == '.')
            continue;
        char *sub = xasprintf("%s/%s", dir, de->d_name);
        if (stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            if (store_workspace_exists(st, de->d_name) == 0)
                wf_load_flat(st, sub, de->d_name, &count);
            else
                log_warn("api", "workflows-dir: skipping '%s': no workspace of that name", sub);
        }
        free(sub);
    }
    if (d)
        closedir(d);
    if (loaded)
        *loaded = count;
    return 0;
}
