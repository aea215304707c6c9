/*
 * commands.c — cli_main() and the commands that are one or a few API calls:
 * batch list|show, job start|watch|list|logs|abort|restart, workflow
 * put|get|list.  (batch upload: upload.c; batch export: export.c.)
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_int.h"

#define MAX_WORKFLOW_BYTES (4u << 20)
#define MAX_PARAMS_BYTES (4u << 20)

/* GET every page of path (key: the array to gather), or CLI_EXIT_FAIL
 * (printed).  limit 0: all.  *out: a new array. */
static int get_all(struct cli *c, const char *path, const char *key, const char *const *extra, long limit,
                   json_t **out)
{
    json_t *all = json_array();
    char *token = NULL;
    long pages = 0;
    struct err e = ERR_INIT;
    int rc = 0;

    do {
        json_t *j = NULL;
        const char *q[12];
        size_t n = 0;
        for (size_t i = 0; extra && extra[i] && n < 8; i += 2) {
            q[n++] = extra[i];
            q[n++] = extra[i + 1];
        }
        q[n++] = "pageSize";
        q[n++] = "100";
        q[n++] = "nextPageToken";
        q[n++] = token;
        q[n] = NULL;
        rc = cli__call(c, "GET", path, q, NULL, 0, &j, NULL, &e);
        free(token);
        token = NULL;
        if (rc) {
            cli__fail("%s", e.msg);
            break;
        }
        json_array_extend(all, json_object_get(j, key));
        const char *t = cli__str(j, "nextPageToken", NULL);
        token = t ? xstrdup(t) : NULL;
        json_decref(j);
    } while (token && (!limit || json_array_size(all) < (size_t)limit) && ++pages < CLI_MAX_PAGES);
    if (token && pages >= CLI_MAX_PAGES) {
        cli__too_many_pages(path, &e);
        cli__fail("%s", e.msg);
        rc = CLI_EXIT_FAIL;
    }
    free(token);
    if (rc) {
        json_decref(all);
        return rc;
    }
    *out = all;
    return 0;
}

static int simple_get(struct cli *c, const char *path, const char *const *q, json_t **out)
{
    struct err e = ERR_INIT;
    int rc = cli__call(c, "GET", path, q, NULL, 0, out, NULL, &e);
    if (rc)
        cli__fail("%s", e.msg);
    return rc;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s)
        printf("%s\n", s);
    free(s);
}

static int usage_fail(const char *u)
{
    fprintf(stderr, "usage: %s\n", u);
    return CLI_EXIT_USAGE;
}

static bool check_id(const char *what, const char *id, size_t max)
{
    if (id_valid(id, max))
        return true;
    cli__fail("bad %s '%s' (1 to %zu lower-case letters, digits, '-' and '_')", what, id, max);
    return false;
}

/* ---- batch list | show -------------------------------------------------------------- */

static int batch_list(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc;
    json_t *all = NULL;

    if ((rc = cli__parse(c, argc, argv, NULL, 0, pos, 0, &npos)) || (rc = cli__connect(c)))
        return rc;
    char *path = cli__ds_path(c, NULL, NULL);
    rc = get_all(c, path, "batches", NULL, 0, &all);
    free(path);
    if (rc)
        return rc;
    size_t i;
    json_t *b;
    printf("%-40s %-16s %-8s %-24s %s\n", "BATCH", "TYPE", "CONTENT", "EXPIRES", "NAME");
    json_array_foreach(all, i, b)
    {
        printf("%-40s %-16s %-8s %-24s %s\n", cli__str(b, "batchId", "?"), cli__str(b, "batchType", "?"),
               cli__str(b, "batchContentType", "?"), cli__str(b, "expiryDate", "?"), cli__str(b, "displayName", ""));
    }
    json_decref(all);
    return 0;
}

static int batch_show(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc;
    json_t *meta = NULL, *count = NULL, *parts = NULL, *shards = NULL;

    if ((rc = cli__parse(c, argc, argv, NULL, 0, pos, 1, &npos)))
        return rc;
    if (npos != 1)
        return usage_fail("vbatch batch show BATCH_ID");
    if (!check_id("batch id", pos[0], 64))
        return CLI_EXIT_USAGE;
    if ((rc = cli__connect(c)))
        return rc;
    char *p_meta = cli__ds_path(c, pos[0], NULL), *p_count = cli__ds_path(c, pos[0], "/count");
    char *p_parts = cli__ds_path(c, pos[0], "/parts"), *p_shards = cli__ds_path(c, pos[0], "/shards");
    if ((rc = simple_get(c, p_meta, NULL, &meta)) || (rc = simple_get(c, p_count, NULL, &count)) ||
        (rc = simple_get(c, p_parts, NULL, &parts)) || (rc = get_all(c, p_shards, "shards", NULL, 0, &shards)))
        goto out;
    json_t *m = json_object_get(meta, "batch");
    printf("batch:    %s\nname:     %s\ntype:     %s\ncontent:  %s\ncreated:  %s\nexpires:  %s\nfiles:    %lld\n",
           cli__str(m, "batchId", "?"), cli__str(m, "displayName", ""), cli__str(m, "batchType", "?"),
           cli__str(m, "batchContentType", "?"), cli__str(m, "createdDate", "?"), cli__str(m, "expiryDate", "?"),
           (long long)json_integer_value(json_object_get(count, "count")));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(parts, "batchParts"), i, v)
    {
        printf("part:     %s (%s%s%s)\n", cli__str(v, "partName", "?"), cli__str(v, "contentType", "?"),
               json_object_get(v, "nestedContentType") ? " of " : "", cli__str(v, "nestedContentType", ""));
    }
    json_array_foreach(shards, i, v)
    {
        json_t *md = json_object_get(v, "statusMetadata");
        printf("shard:    %s %s (%s) %lld file(s)", cli__str(v, "shardId", "?"), cli__str(v, "statusName", "?"),
               cli__str(v, "statusType", "?"), (long long)json_integer_value(json_object_get(v, "shardObjectsCount")));
        if (json_is_object(md) && json_object_size(md)) {
            char *s = json_dumps(md, JSON_COMPACT);
            printf(" %s", s ? s : "");
            free(s);
        }
        printf("\n");
    }
out:
    json_decref(meta);
    json_decref(count);
    json_decref(parts);
    json_decref(shards);
    free(p_meta);
    free(p_count);
    free(p_parts);
    free(p_shards);
    return rc;
}

/* ---- jobs ---------------------------------------------------------------------------- */

static int job_start(struct cli *c, int argc, char **argv)
{
    const char *batch = NULL, *workflow = NULL, *name = NULL, *format = "jsonl", *machine = NULL, *params = NULL;
    const char *notify = NULL, *image_input = NULL, *part = NULL, *md_inputs = NULL;
    long workers = 0, max_parallel = 0, timeout = 0;
    double fps = 0, max_fail = -1;
    bool video = false, persist = false, watch = false;
    const struct cli_opt opts[] = {
        {"batch", CLI_OPT_STR, &batch},
        {"workflow", CLI_OPT_STR, &workflow},
        {"name", CLI_OPT_STR, &name},
        {"format", CLI_OPT_STR, &format},
        {"machine", CLI_OPT_STR, &machine},
        {"workers", CLI_OPT_INT, &workers},
        {"max-parallel-tasks", CLI_OPT_INT, &max_parallel},
        {"timeout", CLI_OPT_INT, &timeout},
        {"params", CLI_OPT_STR, &params},
        {"image-input", CLI_OPT_STR, &image_input},
        {"part", CLI_OPT_STR, &part},
        {"metadata-inputs", CLI_OPT_STR, &md_inputs},
        {"notify", CLI_OPT_STR, &notify},
        {"video", CLI_OPT_FLAG, &video},
        {"max-fps", CLI_OPT_NUM, &fps},
        {"max-failure-rate", CLI_OPT_NUM, &max_fail},
        {"persist-images", CLI_OPT_FLAG, &persist},
        {"watch", CLI_OPT_FLAG, &watch},
    };
    const char *pos[1] = {NULL};
    char job_id[32];
    json_t *body = NULL, *pj = NULL, *resp = NULL, *mj = NULL;
    struct err e = ERR_INIT;
    int npos, rc;

    if ((rc = cli__parse(c, argc, argv, opts, ARRAY_LEN(opts), pos, 1, &npos)))
        return rc;
    if (!batch || !workflow)
        return usage_fail("vbatch job start [JOB_ID] --batch BATCH --workflow WORKFLOW [--name NAME]"
                          " [--format jsonl|csv] [--machine cpu|gpu] [--workers N] [--max-parallel-tasks N]"
                          " [--timeout S] [--params FILE.json] [--metadata-inputs JSON] [--image-input NAME] [--part NAME]"
                          " [--notify URL]"
                          " [--video [--max-fps F]] [--max-failure-rate X] [--persist-images] [--watch]");
    if (pos[0]) {
        if (!check_id("job id", pos[0], 20))
            return CLI_EXIT_USAGE;
        snprintf(job_id, sizeof job_id, "%s", pos[0]);
    } else {
        memcpy(job_id, "job-", 4);
        rand_alnum(job_id + 4, 12);
    }
    if (!check_id("batch id", batch, 64) || !check_id("workflow id", workflow, 64))
        return CLI_EXIT_USAGE;
    if (strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0) {
        cli__fail("--format is jsonl or csv, not '%s'", format);
        return CLI_EXIT_USAGE;
    }
    if (machine && strcmp(machine, "cpu") != 0 && strcmp(machine, "gpu") != 0) {
        cli__fail("--machine is cpu or gpu, not '%s'", machine);
        return CLI_EXIT_USAGE;
    }
    if (params) {
        char *text = NULL, perr[256];
        size_t len = 0;
        int r = file_read_all(params, MAX_PARAMS_BYTES, &text, &len);
        if (r < 0) {
            cli__fail("cannot read '%s': %s", params, err_str(r));
            return CLI_EXIT_USAGE;
        }
        r = json_parse_outside(text, len, 0, &pj, perr, sizeof perr);
        free(text);
        if (r < 0 || !json_is_object(pj)) {
            cli__fail("'%s' is not a JSON object: %s", params, r < 0 ? perr : "another JSON value");
            json_decref(pj);
            return CLI_EXIT_USAGE;
        }
    }
    if (md_inputs) {
        char perr[256];
        int r = json_parse_outside(md_inputs, strlen(md_inputs), 0, &mj, perr, sizeof perr);
        if (r < 0 || !json_is_object(mj)) {
            cli__fail("--metadata-inputs needs a JSON object {\"input\": \"sidecar key\"}: %s",
                      r < 0 ? perr : "another JSON value");
            json_decref(mj);
            json_decref(pj);
            return CLI_EXIT_USAGE;
        }
    }
    if ((rc = cli__connect(c))) {
        json_decref(pj);
        json_decref(mj);
        return rc;
    }
    json_t *spec = json_pack("{s:s,s:s,s:s,s:b,s:s}", "type", "workflows-processing-specification-v1", "workspace",
                             c->workspace, "workflowId", workflow, "persistImagesOutputs", persist,
                             "aggregationFormat", format);
    if (pj)
        json_object_set_new(spec, "workflowParameters", pj);
    if (image_input)
        json_object_set_new(spec, "imageInputName", json_string(image_input));
    if (mj)
        json_object_set_new(spec, "imagesMetadataInputsMapping", mj);
    if (video && fps > 0)
        json_object_set_new(spec, "maxVideoFPS", json_real(fps));
    json_t *compute = json_pack("{s:s}", "type", "compute-configuration-v2");
    if (machine)
        json_object_set_new(compute, "machineType", json_string(machine));
    if (workers)
        json_object_set_new(compute, "workersPerMachine", json_integer(workers));
    json_t *input = json_pack("{s:s,s:s}", "type", "staging-batch-input-v1", "batchId", batch);
    if (part)
        json_object_set_new(input, "partName", json_string(part));
    body = json_pack("{s:s,s:o,s:o,s:o}", "type", video ? "simple-video-processing-v1" : "simple-image-processing-v1",
                     "jobInput", input, "computeConfiguration", compute, "processingSpecification", spec);
    if (max_parallel)
        json_object_set_new(body, "maxParallelTasks", json_integer(max_parallel));
    if (timeout)
        json_object_set_new(body, "processingTimeoutSeconds", json_integer(timeout));
    if (max_fail >= 0 && !video)
        json_object_set_new(body, "maxImageFailureRate", json_real(max_fail));
    if (notify)
        json_object_set_new(body, "notificationsURL", json_string(notify));
    char *text = json_dumps(body, JSON_COMPACT);
    char *path = cli__bp_path(c, job_id, NULL);
    const char *q[] = {"name", name, NULL};
    rc = cli__call(c, "POST", path, q, text, strlen(text), &resp, NULL, &e);
    free(path);
    free(text);
    json_decref(body);
    json_decref(resp);
    if (rc) {
        cli__fail("%s", e.msg);
        return rc;
    }
    printf("job: %s\n", job_id);
    fflush(stdout);
    if (watch) {
        char *wargv[] = {job_id, NULL};
        return cli__job_watch(c, 1, wargv);
    }
    return 0;
}

int cli__job_watch(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    double interval = 1.0;
    long timeout = 0;
    const struct cli_opt opts[] = {
        {"interval", CLI_OPT_NUM, &interval},
        {"timeout", CLI_OPT_INT, &timeout},
    };
    int npos, rc;
    struct err e = ERR_INIT;
    char last_line[512] = "";
    int64_t t0 = time_mono_ms(), last_print = 0;

    if ((rc = cli__parse(c, argc, argv, opts, ARRAY_LEN(opts), pos, 1, &npos)))
        return rc;
    if (npos != 1)
        return usage_fail("vbatch job watch JOB_ID [--interval S] [--timeout S]");
    if (!check_id("job id", pos[0], 20))
        return CLI_EXIT_USAGE;
    if (interval < 0.1)
        interval = 0.1;
    if (!c->workspace && (rc = cli__connect(c)))
        return rc;
    char *path = cli__bp_path(c, pos[0], NULL);
    for (;;) {
        json_t *j = NULL;
        if ((rc = cli__call(c, "GET", path, NULL, NULL, 0, &j, NULL, &e))) {
            if (c->tty)
                fputc('\n', stderr);
            cli__fail("%s", e.msg);
            break;
        }
        json_t *m = json_object_get(j, "job"), *ln = json_object_get(m, "lastNotification");
        const char *status = cli__str(j, "jobStatus", "?"), *stage = cli__str(m, "currentStage", "-");
        double prog = json_number_value(json_object_get(j, "progress"));
        long long total = json_integer_value(json_object_get(ln, "imagesTotal"));
        long long done = json_integer_value(json_object_get(ln, "imagesProcessed"));
        long long failed = json_integer_value(json_object_get(ln, "imagesFailed"));
        bool terminal = json_is_true(json_object_get(m, "isTerminal"));
        bool error = json_is_true(json_object_get(m, "error"));
        char line[512], tail[256];
        snprintf(tail, sizeof tail, "%s  %s  %lld/%lld image(s), %lld failed", status, stage, done, total, failed);
        if (c->tty) {
            cli__bar(c, pos[0], prog, 1.0, tail);
        } else {
            snprintf(line, sizeof line, "job %s: %s, stage %s, %lld/%lld image(s) processed, %lld failed (%.0f%%)",
                     pos[0], status, stage, done, total, failed, prog * 100);
            int64_t now = time_mono_ms();
            if (strcmp(line, last_line) != 0 && (terminal || now - last_print >= 2000)) {
                printf("%s\n", line);
                fflush(stdout);
                snprintf(last_line, sizeof last_line, "%s", line);
                last_print = now;
            }
        }
        if (terminal) {
            cli__bar_end(c);
            const char *msg = cli__str(ln, "message", "");
            if (error) {
                cli__fail("job %s %s%s%s", pos[0], status, *msg ? ": " : "", msg);
                rc = CLI_EXIT_FAIL;
            } else {
                printf("job %s %s: %lld image(s) processed, %lld failed; results: vbatch batch export --job %s\n",
                       pos[0], status, done, failed, pos[0]);
            }
            json_decref(j);
            break;
        }
        if (timeout && time_mono_ms() - t0 > timeout * 1000) {
            cli__bar_end(c);
            cli__fail("job %s still %s after %ld s", pos[0], status, timeout);
            json_decref(j);
            rc = CLI_EXIT_FAIL;
            break;
        }
        json_decref(j);
        usleep((useconds_t)(interval * 1e6));
    }
    free(path);
    return rc;
}

static const char *job_status(json_t *m)
{
    const char *state = cli__str(json_object_get(m, "lastNotification"), "state", NULL);
    if (state)
        return state;
    if (json_is_true(json_object_get(m, "isTerminal")))
        return json_is_true(json_object_get(m, "error")) ? "failed" : "succeeded";
    return "running";
}

static int job_list(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    long limit = 100;
    const struct cli_opt opts[] = {{"limit", CLI_OPT_INT, &limit}};
    json_t *all = NULL;
    int npos, rc;

    if ((rc = cli__parse(c, argc, argv, opts, ARRAY_LEN(opts), pos, 0, &npos)) || (rc = cli__connect(c)))
        return rc;
    char *path = cli__bp_path(c, NULL, NULL);
    rc = get_all(c, path, "jobs", NULL, limit, &all);
    free(path);
    if (rc)
        return rc;
    printf("%-22s %-10s %-10s %-26s %s\n", "JOB", "STATE", "STAGE", "CREATED", "NAME");
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m)
    {
        if (limit && i >= (size_t)limit)
            break;
        printf("%-22s %-10s %-10s %-26s %s\n", cli__str(m, "jobId", "?"), job_status(m),
               cli__str(m, "currentStage", "-"), cli__str(m, "createdAt", "?"), cli__str(m, "name", ""));
    }
    json_decref(all);
    return 0;
}

static int job_logs(struct cli *c, int argc, char **argv)
{
    const char *pos[1], *severity = NULL;
    const struct cli_opt opts[] = {{"severity", CLI_OPT_STR, &severity}};
    json_t *all = NULL;
    int npos, rc;

    if ((rc = cli__parse(c, argc, argv, opts, ARRAY_LEN(opts), pos, 1, &npos)))
        return rc;
    if (npos != 1)
        return usage_fail("vbatch job logs JOB_ID [--severity info|warning|error]");
    if (!check_id("job id", pos[0], 20))
        return CLI_EXIT_USAGE;
    if (severity && strcmp(severity, "info") && strcmp(severity, "warning") && strcmp(severity, "error")) {
        cli__fail("--severity is info, warning or error, not '%s'", severity);
        return CLI_EXIT_USAGE;
    }
    if ((rc = cli__connect(c)))
        return rc;
    char *path = cli__bp_path(c, pos[0], "/logs");
    const char *extra[] = {"severity", severity, NULL};
    rc = get_all(c, path, "logs", extra, 0, &all);
    free(path);
    if (rc)
        return rc;
    size_t i;
    json_t *l;
    json_array_foreach(all, i, l)
    {
        char *payload = json_dumps(json_object_get(l, "payload"), JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%s %-7s %s %s\n", cli__str(l, "createdAt", "?"), cli__str(l, "severity", "?"),
               cli__str(l, "logType", "?"), payload ? payload : "{}");
        free(payload);
    }
    json_decref(all);
    return 0;
}

static int job_post(struct cli *c, int argc, char **argv, const char *verb)
{
    const char *pos[1];
    long workers = 0, max_parallel = 0, timeout = 0;
    double max_fail = -1;
    const struct cli_opt opts[] = {
        {"workers", CLI_OPT_INT, &workers},
        {"max-parallel-tasks", CLI_OPT_INT, &max_parallel},
        {"timeout", CLI_OPT_INT, &timeout},
        {"max-failure-rate", CLI_OPT_NUM, &max_fail},
    };
    bool restart = !strcmp(verb, "restart");
    struct err e = ERR_INIT;
    json_t *resp = NULL, *body = NULL;
    int npos, rc;

    if ((rc = cli__parse(c, argc, argv, opts, restart ? ARRAY_LEN(opts) : 0, pos, 1, &npos)))
        return rc;
    if (npos != 1)
        return usage_fail(restart ? "vbatch job restart JOB_ID [--workers N] [--max-parallel-tasks N] [--timeout S]"
                                    " [--max-failure-rate X]"
                                  : "vbatch job abort JOB_ID");
    if (!check_id("job id", pos[0], 20))
        return CLI_EXIT_USAGE;
    if ((rc = cli__connect(c)))
        return rc;
    if (restart && (workers || max_parallel || timeout || max_fail >= 0)) {
        body = json_pack("{s:s}", "type", "parameters-override-v1");
        if (workers)
            json_object_set_new(body, "computeConfiguration",
                                json_pack("{s:s,s:I}", "type", "compute-configuration-v2", "workersPerMachine",
                                          (json_int_t)workers));
        if (max_parallel)
            json_object_set_new(body, "maxParallelTasks", json_integer(max_parallel));
        if (timeout)
            json_object_set_new(body, "processingTimeoutSeconds", json_integer(timeout));
        if (max_fail >= 0)
            json_object_set_new(body, "maxImageFailureRate", json_real(max_fail));
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char *rest = xasprintf("/%s", verb);
    char *path = cli__bp_path(c, pos[0], rest);
    rc = cli__call(c, "POST", path, NULL, text, text ? strlen(text) : 0, &resp, NULL, &e);
    if (rc)
        cli__fail("%s", e.msg);
    else
        printf("job %s %s\n", pos[0], restart ? "restarted" : "aborted");
    json_decref(resp);
    json_decref(body);
    free(text);
    free(rest);
    free(path);
    return rc;
}

/* ---- workflows ----------------------------------------------------------------------- */

static int workflow_put(struct cli *c, int argc, char **argv)
{
    const char *pos[2];
    char *text = NULL, perr[256];
    size_t len = 0;
    json_t *j = NULL, *resp = NULL;
    struct err e = ERR_INIT;
    int npos, rc;

    if ((rc = cli__parse(c, argc, argv, NULL, 0, pos, 2, &npos)))
        return rc;
    if (npos != 2)
        return usage_fail("vbatch workflow put WORKFLOW_ID FILE.json");
    if (!check_id("workflow id", pos[0], 64))
        return CLI_EXIT_USAGE;
    int r = file_read_all(pos[1], MAX_WORKFLOW_BYTES, &text, &len);
    if (r < 0) {
        cli__fail("cannot read '%s': %s", pos[1], r == ERR_LIMIT ? "larger than 4 MiB" : err_str(r));
        return CLI_EXIT_USAGE;
    }
    if (json_parse_outside(text, len, 0, &j, perr, sizeof perr) < 0) {
        cli__fail("'%s' is not JSON: %s", pos[1], perr);
        free(text);
        return CLI_EXIT_USAGE;
    }
    json_decref(j);
    if ((rc = cli__connect(c)) == 0) {
        char *path = cli__wf_path(c, pos[0]);
        rc = cli__call(c, "PUT", path, NULL, text, len, &resp, NULL, &e);
        free(path);
        if (rc)
            cli__fail("%s", e.msg);
        else
            printf("workflow %s stored%s\n", pos[0],
                   json_is_true(json_object_get(resp, "validated")) ? " (validated)" : "");
    }
    json_decref(resp);
    free(text);
    return rc;
}

static int workflow_get(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    json_t *j = NULL;
    int npos, rc;

    if ((rc = cli__parse(c, argc, argv, NULL, 0, pos, 1, &npos)))
        return rc;
    if (npos != 1)
        return usage_fail("vbatch workflow get WORKFLOW_ID");
    if (!check_id("workflow id", pos[0], 64))
        return CLI_EXIT_USAGE;
    if ((rc = cli__connect(c)))
        return rc;
    char *path = cli__wf_path(c, pos[0]);
    if ((rc = simple_get(c, path, NULL, &j)) == 0)
        print_json(json_object_get(j, "definition"));
    free(path);
    json_decref(j);
    return rc;
}

static int workflow_list(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    json_t *j = NULL;
    int npos, rc;

    if ((rc = cli__parse(c, argc, argv, NULL, 0, pos, 0, &npos)) || (rc = cli__connect(c)))
        return rc;
    char *path = cli__wf_path(c, NULL);
    if ((rc = simple_get(c, path, NULL, &j)) == 0) {
        size_t i;
        json_t *w;
        printf("%-40s %-26s %s\n", "WORKFLOW", "CREATED", "UPDATED");
        json_array_foreach(json_object_get(j, "workflows"), i, w)
        {
            printf("%-40s %-26s %s\n", cli__str(w, "workflowId", "?"), cli__str(w, "createdAt", "?"),
                   cli__str(w, "updatedAt", "?"));
        }
    }
    free(path);
    json_decref(j);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------ */

struct sub {
    const char *group, *name;
    int (*fn)(struct cli *c, int argc, char **argv);
    const char *help;
};

static int job_abort(struct cli *c, int argc, char **argv)
{
    return job_post(c, argc, argv, "abort");
}

static int job_restart(struct cli *c, int argc, char **argv)
{
    return job_post(c, argc, argv, "restart");
}

static const struct sub subs[] = {
    {"batch", "upload", cli__batch_upload, "DIR|FILE... --batch ID [--parallel N]: stage images, sidecars, videos"},
    {"batch", "list", batch_list, "the workspace's batches"},
    {"batch", "show", batch_show, "ID: metadata, file count, parts, shards"},
    {"batch", "export", cli__batch_export, "ID [--out DIR] | --job JOB: download and unpack a batch's files"},
    {"job", "start", job_start, "[JOB_ID] --batch B --workflow W [--watch]: start a job"},
    {"job", "watch", cli__job_watch, "JOB_ID: follow a job to its end (exit 1 when it fails)"},
    {"job", "list", job_list, "the workspace's jobs"},
    {"job", "logs", job_logs, "JOB_ID [--severity S]: a job's logs"},
    {"job", "abort", job_abort, "JOB_ID: abort a running job"},
    {"job", "restart", job_restart, "JOB_ID: restart a failed or aborted job"},
    {"workflow", "put", workflow_put, "ID FILE.json: store a workflow definition"},
    {"workflow", "get", workflow_get, "ID: print a workflow definition"},
    {"workflow", "list", workflow_list, "the workspace's workflows"},
};

static void group_usage(FILE *f, const char *group)
{
    fprintf(f, "usage: vbatch %s <command> [options]\n\ncommands:\n", group);
    for (size_t i = 0; i < ARRAY_LEN(subs); i++)
        if (!strcmp(subs[i].group, group))
            fprintf(f, "  %-8s %s\n", subs[i].name, subs[i].help);
    fprintf(f, "\ncommon options: --server URL (VBATCH_SERVER, default " CLI_DEFAULT_SERVER "),\n"
               "  --api-key KEY (VBATCH_API_KEY), --workspace WS (default: the key's)\n"
               "exit status: 0 done, 1 failed (the server's error on one line), 2 bad usage\n");
}

int cli_main(const char *group, int argc, char **argv)
{
    struct cli c = {0};
    int rc = CLI_EXIT_USAGE;

    if (argc < 1) {
        group_usage(stderr, group);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        group_usage(stdout, group);
        return 0;
    }
    const struct sub *s = NULL;
    for (size_t i = 0; i < ARRAY_LEN(subs) && !s; i++)
        if (!strcmp(subs[i].group, group) && !strcmp(subs[i].name, argv[0]))
            s = &subs[i];
    if (!s) {
        cli__fail("unknown command '%s %s'", group, argv[0]);
        group_usage(stderr, group);
        return CLI_EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("vbatch %s %s %s\n(docs/CLI.md has every option)\n", group, s->name, s->help);
            return 0;
        }
    c.server_opt = getenv("VBATCH_SERVER");
    if (!c.server_opt || !*c.server_opt)
        c.server_opt = CLI_DEFAULT_SERVER;
    c.key = getenv("VBATCH_API_KEY");
    c.tty = isatty(STDERR_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
    c.timeout_s = 120;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        cli__fail("cannot initialise libcurl");
        return CLI_EXIT_FAIL;
    }
    rc = s->fn(&c, argc - 1, argv + 1);
    if (c.curl)
        curl_easy_cleanup(c.curl);
    free(c.server);
    free(c.workspace);
    curl_global_cleanup();
    return rc;
}
