/*
 * blocks/sinks.c — output and secrets blocks that act outside the run:
 * webhook_sink v1, local_file_sink v1, s3_sink v1, email_notification v1/v2,
 * slack_notification v1 and environment_secrets_store v1
 * (roboflow/inference core_steps/sinks and secrets_providers, read, not
 * copied).  What they may touch is the operator's choice, handed in by the
 * embedding program in struct wf_sinks (workflow.h):
 *
 * - webhook_sink gives its JSON payload to env->sinks->webhook (a JSON
 *   POST), or with another method, headers, form data or multipart files
 *   also a request description to env->sinks->webhook_req; the jobs worker
 *   queues either in the durable outbox (SSRF-guarded, retried).  Failures
 *   are reported in error_status (as Roboflow does, not as step errors).  The
 *   cooldown is kept per step and video in the run's state (wf_env.state);
 *   without state (an image job) every run starts without a cooldown.
 * - local_file_sink writes only under env->sinks->file_root: target_directory
 *   is a relative path whose components are opened one by one with
 *   O_NOFOLLOW from the root, so "..", absolute names and symbolic links
 *   cannot lead out of it.  append_log keeps its file per step and video in
 *   the run's state and rotates after max_entries_per_file entries.
 * - environment_secrets_store reads only the variables named in
 *   env->sinks->env_allow; its outputs are the names lowercased.
 * - s3_sink hands its object to env->sinks->s3, which writes only to the
 *   operator's bucket under a key that is the same for a retried image.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define SINK_PATH_MAX 1024      /* target_directory + prefix */
#define SINK_DEPTH_MAX 32       /* components of target_directory */
#define SINK_CONTENT_MAX (16u << 20)
#define SINK_URL_MAX 8192

static const char *const SOURCE = "see --sink-folder / --secrets-env in vbatch serve --help";

static void set3(struct wf_call *c, size_t i, bool err, int throttle, const char *msg)
{
    wf_out_json(c, i, "error_status", json_boolean(err));
    if (throttle >= 0)
        wf_out_json(c, i, "throttling_status", json_boolean(throttle));
    wf_out_json(c, i, "message", json_string(msg));
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- webhook_sink ------------------------------------------------------------------------- */
struct cooldown {
    double last; /* monotonic seconds of the last notification */
};

/* The outputs of a notification handed to the outbox (webhook_sink,
 * slack_notification): the failure with its cause ("<failed>. Internal
 * error details: ..."), else the cooldown restarted and Roboflow's message
 * for fire_and_forget. */
static void queued_outcome(struct wf_call *c, size_t i, int rc, const char *why, const char *failed,
                           struct cooldown *cd, double now)
{
    if (rc < 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s. Internal error details: %s", failed, *why ? why : err_str(rc));
        set3(c, i, true, false, msg);
        return;
    }
    if (cd)
        cd->last = now;
    set3(c, i, false, false,
         wf_arg_bool(c, i, "fire_and_forget", true) ? "Notification sent in the background task"
                                                     : "Notification queued in the durable outbox");
}

static void url_escape(char **buf, size_t *len, size_t *cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (*len + 4 > *cap) {
            *cap = *cap * 2 + 16;
            *buf = xrealloc(*buf, *cap);
        }
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            (*buf)[(*len)++] = (char)ch;
        } else {
            (*buf)[(*len)++] = '%';
            (*buf)[(*len)++] = hex[ch >> 4];
            (*buf)[(*len)++] = hex[ch & 15];
        }
    }
    (*buf)[*len] = 0;
}

static void append_str(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        *cap = *len + n + 64;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

/* A query parameter value as Python's str() / requests would send it. */
static char *param_text(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    return wf__py_str(v);
}

/* url + "?k=v&..." (requests appends with '&' when the URL has a query). */
static char *with_query(const char *url, const json_t *q)
{
    size_t cap = strlen(url) + 64, len = 0;
    char *buf = xmalloc(cap);
    const char *k;
    const json_t *v;
    buf[0] = 0;
    append_str(&buf, &len, &cap, url);
    bool first = !strchr(url, '?');
    json_object_foreach((json_t *)q, k, v) {
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t a = 0; a < n; a++) {
            const json_t *item = json_is_array(v) ? json_array_get(v, a) : v;
            if (json_is_null(item))
                continue;
            append_str(&buf, &len, &cap, first ? "?" : "&");
            first = false;
            url_escape(&buf, &len, &cap, k);
            append_str(&buf, &len, &cap, "=");
            char *t = param_text(item);
            url_escape(&buf, &len, &cap, t);
            free(t);
        }
    }
    return buf;
}

static bool dict_nonempty(const struct wf_call *c, size_t i, const char *name)
{
    const struct wf_value *v = wf_arg(c, i, name);
    if (wf_value_is_null(v))
        return false;
    json_t *j = wf_value_to_json(v, false);
    bool r = json_is_object(j) && json_object_size(j) > 0;
    json_decref(j);
    return r;
}

/* json_payload with json_payload_operations applied per key, serialized
 * (the field arrives as a dict of values, or a plain JSON object when it
 * holds no selector). */
static int build_dict(struct wf_call *c, size_t i, const char *field, const char *ops_field, json_t **out)
{
    const struct wf_value *pv = wf_arg(c, i, field);
    const json_t *ops = ops_field ? wf_arg_json(c, i, ops_field) : NULL;
    struct wf_value *d;
    json_t *res = json_object();
    char qerr[256] = "";
    *out = NULL;
    if (pv->type == WF_V_DICT) {
        d = wf_value_ref((struct wf_value *)pv);
    } else {
        const char *k;
        json_t *e;
        d = wf_value_dict_new();
        if (pv->type == WF_V_JSON && json_is_object(pv->json))
            json_object_foreach(pv->json, k, e) wf_value_dict_add(d, k, wf_value_json(json_deep_copy(e)));
    }
    for (size_t k = 0; k < d->n; k++) {
        const char *key = d->keys[k];
        struct wf_value *v = wf_value_ref(d->items[k]);
        const json_t *chain = json_is_object(ops) ? json_object_get(ops, key) : NULL;
        if (chain && json_array_size(chain) > 0) {
            struct wf_ql_ctx cx = {d, NULL, NULL, qerr, sizeof qerr};
            struct wf_value *r = NULL;
            int rc = wf__ql_apply(&cx, chain, v, &r);
            wf_value_unref(v);
            if (rc < 0) {
                json_decref(res);
                wf_value_unref(d);
                return wf_call_fail(c, "%s '%s': %s", ops_field, key, qerr);
            }
            v = r;
        }
        json_object_set_new(res, key, wf_value_serialize(v, wf_call_env(c)->jpeg_quality));
        wf_value_unref(v);
    }
    wf_value_unref(d);
    *out = res;
    return 0;
}

static int build_payload(struct wf_call *c, size_t i, json_t **out)
{
    return build_dict(c, i, "json_payload", "json_payload_operations", out);
}

/* An image serialized by wf_value_serialize: {"type": "base64", "value"}. */
static const char *image_b64(const json_t *v)
{
    const json_t *t = json_object_get(v, "type"), *b = json_object_get(v, "value");
    return json_is_string(t) && !strcmp(json_string_value(t), "base64") && json_is_string(b)
               ? json_string_value(b)
               : NULL;
}

/* webhook_sink's request description for the outbox (store.h,
 * store_outbox_enqueue_once): method, headers and form values as Python's
 * str() gives them, files as base64 bytes (an image: its JPEG; a string:
 * its UTF-8 bytes; anything else: its JSON text).  NULL with *why set on
 * a header requests would refuse (CR/LF, ':' in a name). */
static json_t *build_req(struct wf_call *c, size_t i, const char *method, char *why, size_t whylen, int *fail)
{
    json_t *r = json_pack("{s:s}", "method", method);
    const char *const fields[][3] = {{"headers", NULL, "headers"},
                                     {"form_data", "form_data_operations", "form"},
                                     {"multi_part_encoded_files", "multi_part_encoded_files_operations", "files"}};
    *fail = 0;
    for (size_t f = 0; f < 3; f++) {
        json_t *d = NULL, *out = json_object();
        if (!dict_nonempty(c, i, fields[f][0])) {
            json_decref(out);
            continue;
        }
        if (build_dict(c, i, fields[f][0], fields[f][1], &d) < 0) {
            json_decref(out);
            json_decref(r);
            *fail = 1;
            return NULL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(d, k, v) {
            if (f == 2) {
                const char *img = image_b64(v);
                char *text = img ? NULL : json_is_string(v) ? xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                char *b64 = img ? xstrdup(img) : base64_encode(text ? text : "", text ? strlen(text) : 0);
                json_object_set_new(out, k, json_string(b64));
                free(b64);
                free(text);
                continue;
            }
            char *t = param_text(v);
            if (f == 0 && (!*k || strpbrk(k, ":\r\n") || strpbrk(t, "\r\n"))) {
                snprintf(why, whylen, "header '%.100s' is not valid (empty name, ':' or a line break)", k);
                free(t);
                json_decref(d);
                json_decref(out);
                json_decref(r);
                return NULL;
            }
            json_object_set_new(out, k, json_string(t));
            free(t);
        }
        json_decref(d);
        json_object_set_new(r, fields[f][2], out);
    }
    return r;
}

/* Python's json.dumps writes \u escapes with lowercase hex; jansson with
 * uppercase. */
static void lower_u_escapes(char *s)
{
    for (; *s; s++) {
        if (*s != '\\')
            continue;
        if (s[1] == 'u') {
            int k = 2;
            for (; k < 6 && s[k]; k++)
                if (s[k] >= 'A' && s[k] <= 'F')
                    s[k] = (char)(s[k] - 'A' + 'a');
            s += k - 1;
        } else if (s[1]) {
            s++;
        }
    }
}

static void cooldown_free(void *p)
{
    free(p);
}

/* The start shared by the notifying sinks, for item i: false (the item's
 * outputs are set) when disable_sink is on or the step sent less than
 * cooldown_seconds ago; else true with *cd the step's cooldown state (NULL
 * without per-video state) and *now the time to record when it sends. */
/* The name a sink's delivery is keyed and named by (once keys, object
 * keys, file names): the step's name, and when the step runs over several
 * elements in one run (an image's crops or slices) the element's index
 * after a '.' (which no step name contains), so that each element keeps
 * its own notification, object or file instead of the first or last one
 * standing for all.  Caller frees. */
static char *sink_step(const struct wf_call *c, size_t i)
{
    return wf_call_n(c) > 1 ? xasprintf("%s.%zu", wf_call_step_name(c), i) : xstrdup(wf_call_step_name(c));
}

static bool sink_gate(struct wf_call *c, size_t i, const char *state_key, struct cooldown **cd, double *now)
{
    if (wf_arg_bool(c, i, "disable_sink", false)) {
        set3(c, i, false, false, "Sink was disabled by parameter `disable_sink`");
        return false;
    }
    int64_t cooldown = wf_arg_int(c, i, "cooldown_seconds", 5);
    *cd = NULL;
    if (wf_call_env(c)->state) {
        void **slot = wf_call_state(c, state_key, cooldown_free);
        if (slot) {
            if (!*slot) {
                struct cooldown *n = xcalloc(1, sizeof *n);
                n->last = -1e300;
                *slot = n;
            }
            *cd = *slot;
        }
    }
    *now = mono_s();
    if (*cd && *now - (*cd)->last < (double)cooldown) {
        set3(c, i, false, true, "Sink cooldown applies");
        return false;
    }
    return true;
}

static int webhook_run(struct wf_call *c)
{
    const struct wf_env *env = wf_call_env(c);
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct cooldown *cd = NULL;
        double now = 0;
        if (!sink_gate(c, i, "webhook_sink", &cd, &now))
            continue;
        const char *method = wf_arg_str(c, i, "method");
        if (!method)
            method = "POST";
        bool plain = !strcmp(method, "POST") && !dict_nonempty(c, i, "headers") &&
                     !dict_nonempty(c, i, "multi_part_encoded_files") && !dict_nonempty(c, i, "form_data");
        if (!env->sinks || !env->sinks->webhook)
            return wf_call_fail(c, "`roboflow_core/webhook_sink@v1` cannot run here: no webhook outbox "
                                   "(it runs in batch jobs)");
        const char *url = wf_arg_str(c, i, "url");
        if (!url || !*url || strlen(url) > SINK_URL_MAX) {
            set3(c, i, true, false, "Failed to send notification. Internal error details: missing or too "
                                    "long url");
            continue;
        }
        const json_t *q = wf_arg_json(c, i, "query_parameters");
        char *full = json_is_object(q) && json_object_size(q) ? with_query(url, q) : xstrdup(url);
        json_t *payload = NULL;
        if (build_payload(c, i, &payload) < 0) {
            free(full);
            return ERR_INVALID;
        }
        char *text = json_dumps(payload, JSON_COMPACT | JSON_REAL_PRECISION(15));
        json_decref(payload);
        char why[256] = "";
        int rc;
        if (plain) {
            char *sk = sink_step(c, i);
            rc = text ? env->sinks->webhook(env->sinks->webhook_ud, sk, full, text, why, sizeof why) : ERR_NOMEM;
            free(sk);
        } else if (!env->sinks->webhook_req) {
            rc = ERR_UNSUPPORTED;
            snprintf(why, sizeof why, "method %s, headers, form data and files are not served here", method);
        } else {
            int fail = 0;
            json_t *req = build_req(c, i, method, why, sizeof why, &fail);
            if (fail) {
                free(text);
                free(full);
                return ERR_INVALID;
            }
            char *rtext = req ? json_dumps(req, JSON_COMPACT) : NULL;
            json_decref(req);
            char *sk = sink_step(c, i);
            rc = !req ? ERR_INVALID
                 : text && rtext ? env->sinks->webhook_req(env->sinks->webhook_ud, sk, full, text, rtext, why,
                                                          sizeof why)
                                 : ERR_NOMEM;
            free(sk);
            free(rtext);
        }
        free(text);
        free(full);
        queued_outcome(c, i, rc, why, "Failed to send notification", cd, now);
    }
    return 0;
}

static const char *const webhook_methods[] = {"GET", "POST", "PUT", NULL};
static const struct wf_field webhook_fields[] = {
    {"url", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"method", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, webhook_methods},
    {"query_parameters", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"headers", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"json_payload", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"json_payload_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"multi_part_encoded_files", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"multi_part_encoded_files_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"form_data", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"form_data_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"request_timeout", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
    {"fire_and_forget", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},
    {"disable_sink", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"cooldown_seconds", NULL, WF_FT_INT, "5", WF_K_INT, 0, NULL},
};
static const struct wf_output webhook_outs[] = {
    {"error_status", WF_K_BOOL}, {"throttling_status", WF_K_BOOL}, {"message", WF_K_STRING}};

static int ops_dict_check(const json_t *step, const char *field, char *err, size_t errlen)
{
    const json_t *d = json_object_get(step, field);
    const char *k;
    json_t *ops;
    char sub[256];
    if (!d)
        return 0;
    if (!json_is_object(d)) {
        wf__errf(err, errlen, "field '%s': expected a dict of operation lists", field);
        return ERR_INVALID;
    }
    json_object_foreach((json_t *)d, k, ops) {
        if (wf__ql_check_ops(ops, sub, sizeof sub) < 0) {
            wf__errf(err, errlen, "field '%s': key '%s': %s", field, k, sub);
            return ERR_INVALID;
        }
    }
    return 0;
}

static int webhook_check(const json_t *step, char *err, size_t errlen)
{
    int rc;
    if ((rc = ops_dict_check(step, "json_payload_operations", err, errlen)) < 0 ||
        (rc = ops_dict_check(step, "multi_part_encoded_files_operations", err, errlen)) < 0 ||
        (rc = ops_dict_check(step, "form_data_operations", err, errlen)) < 0)
        return rc;
    return 0;
}

static const struct wf_block webhook_sink = {
    (const char *const[]){"roboflow_core/webhook_sink@v1", NULL},
    webhook_fields, ARRAY_LEN(webhook_fields), webhook_outs, ARRAY_LEN(webhook_outs),
    0, 0, NULL, webhook_run, webhook_check};

/* ---- email_notification v1 / v2 ------------------------------------------------------------- */
#define EMAIL_RCPT_MAX 100
#define EMAIL_TEXT_MAX (1u << 20)

/* message with each "{{ $parameters.<name> }}" whose name is in params
 * replaced by str() of the value after its operations (Roboflow's
 * format_email_message); other placeholders are left as they are. */
static int format_message(struct wf_call *c, size_t i, const char *msg, char **out)
{
    const struct wf_value *pv = wf_arg(c, i, "message_parameters");
    const json_t *ops = wf_arg_json(c, i, "message_parameters_operations");
    struct wf_value *d;
    if (pv->type == WF_V_DICT) {
        d = wf_value_ref((struct wf_value *)pv);
    } else {
        const char *k;
        json_t *e;
        d = wf_value_dict_new();
        if (pv->type == WF_V_JSON && json_is_object(pv->json))
            json_object_foreach(pv->json, k, e) wf_value_dict_add(d, k, wf_value_json(json_deep_copy(e)));
    }
    size_t cap = strlen(msg) + 64, len = 0;
    char *buf = xmalloc(cap);
    buf[0] = 0;
    const char *p = msg;
    while (*p) {
        const char *open = strstr(p, "{{");
        if (!open) {
            append_str(&buf, &len, &cap, p);
            break;
        }
        /* {{\s*\$parameters\.(\w+)\s*}} */
        const char *q = open + 2, *name, *name_end;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        bool ok = !strncmp(q, "$parameters.", 12);
        name = q + 12;
        name_end = name;
        if (ok) {
            while ((*name_end >= 'a' && *name_end <= 'z') || (*name_end >= 'A' && *name_end <= 'Z') ||
                   (*name_end >= '0' && *name_end <= '9') || *name_end == '_')
                name_end++;
            ok = name_end > name;
        }
        q = name_end;
        while (ok && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
            q++;
        ok = ok && q[0] == '}' && q[1] == '}';
        char *key = ok ? xstrndup(name, (size_t)(name_end - name)) : NULL;
        struct wf_value *v = key ? wf_value_dict_get(d, key) : NULL;
        /* the text before the placeholder */
        char *pre = xstrndup(p, (size_t)(open - p));
        append_str(&buf, &len, &cap, pre);
        free(pre);
        if (!v) {
            /* not a placeholder of a given parameter: kept */
            append_str(&buf, &len, &cap, "{{");
            p = open + 2;
            free(key);
            continue;
        }
        struct wf_value *val = wf_value_ref(v);
        const json_t *chain = json_is_object(ops) ? json_object_get(ops, key) : NULL;
        if (chain && json_array_size(chain) > 0) {
            char qerr[256] = "";
            struct wf_ql_ctx cx = {d, NULL, NULL, qerr, sizeof qerr};
            struct wf_value *r = NULL;
            int rc = wf__ql_apply(&cx, chain, val, &r);
            wf_value_unref(val);
            if (rc < 0) {
                wf_call_fail(c, "message_parameters_operations '%s': %s", key, qerr);
                free(key);
                free(buf);
                wf_value_unref(d);
                return ERR_INVALID;
            }
            val = r;
        }
        json_t *j = wf_value_to_json(val, false);
        char *txt = json_is_string(j) ? xstrdup(json_string_value(j)) : wf__py_str(j);
        append_str(&buf, &len, &cap, txt);
        free(txt);
        json_decref(j);
        wf_value_unref(val);
        free(key);
        p = q + 2;
        if (len > EMAIL_TEXT_MAX) {
            free(buf);
            wf_value_unref(d);
            return wf_call_fail(c, "the message is over %u bytes", EMAIL_TEXT_MAX);
        }
    }
    wf_value_unref(d);
    *out = buf;
    return 0;
}

static bool header_safe(const char *s)
{
    for (; s && *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

/* addresses of a str / list field into rcpt (borrowed strings of j); the
 * header text "a, b" into *hdr.  -1 on a bad address. */
static int addresses(const json_t *j, const char **rcpt, size_t *n, char **hdr)
{
    size_t cap = 64, len = 0;
    *hdr = xmalloc(cap);
    (*hdr)[0] = 0;
    size_t cnt = json_is_array(j) ? json_array_size(j) : (json_is_string(j) ? 1 : 0);
    for (size_t k = 0; k < cnt; k++) {
        const json_t *a = json_is_array(j) ? json_array_get(j, k) : j;
        const char *s = json_string_value(a);
        if (!s || !*s || strlen(s) > 320 || !header_safe(s) || strchr(s, ',') || *n >= EMAIL_RCPT_MAX)
            return -1;
        rcpt[(*n)++] = s;
        if (len)
            append_str(hdr, &len, &cap, ", ");
        append_str(hdr, &len, &cap, s);
    }
    return 0;
}

/* RFC 2047 encoded-word when the subject is not plain ASCII. */
static char *subject_header(const char *s)
{
    bool ascii = true;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p >= 0x80)
            ascii = false;
    if (ascii)
        return xstrdup(s);
    char *b = base64_encode(s, strlen(s));
    char *r = xasprintf("=?utf-8?b?%s?=", b);
    free(b);
    return r;
}

static char *crlf_body(const char *s)
{
    size_t cap = strlen(s) * 2 + 3, len = 0;
    char *o = xmalloc(cap);
    for (; *s; s++) {
        if (*s == '\n' && (len == 0 || o[len - 1] != '\r'))
            o[len++] = '\r';
        o[len++] = *s;
    }
    o[len] = 0;
    return o;
}

/* Attachments as Roboflow's SMTP senders build them (email_notification
 * v1/v2 _send_email_using_smtp_server: MIMEMultipart with the text part, then
 * per key an application/octet-stream part, base64, Content-Disposition
 * attachment with the key as its file name).  The bytes as v2's
 * process_attachments makes them: an image is its JPEG, a string its UTF-8
 * bytes, anything else the UTF-8 of Python's str() of it. */
#define EMAIL_ATTACH_MAX 32                /* attachments per message */
#define EMAIL_ATTACH_NAME_MAX 255          /* bytes of a file name */
#define EMAIL_ATTACH_BYTES_MAX (16u << 20) /* all attachments' bytes together */

static bool attach_name_ok(const char *s)
{
    if (!*s || strlen(s) > EMAIL_ATTACH_NAME_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* The Content-Disposition file name parameter: a quoted string when ASCII,
 * else RFC 2231's filename*=utf-8''percent-encoded. */
static void attach_filename(char **buf, size_t *len, size_t *cap, const char *name)
{
    bool ascii = true;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p >= 0x80)
            ascii = false;
    if (!ascii) {
        append_str(buf, len, cap, "filename*=utf-8''");
        url_escape(buf, len, cap, name);
        return;
    }
    append_str(buf, len, cap, "filename=\"");
    for (const char *p = name; *p; p++) {
        char e[3] = {'\\', *p, 0};
        append_str(buf, len, cap, *p == '"' || *p == '\\' ? e : e + 1);
    }
    append_str(buf, len, cap, "\"");
}

/* base64 text of one attachment's bytes (malloc'd), *n the byte count. */
static char *attach_b64(const json_t *v, size_t *n)
{
    const char *img = image_b64(v);
    if (img) {
        size_t l = strlen(img);
        *n = l / 4 * 3 - (l >= 1 && img[l - 1] == '=') - (l >= 2 && img[l - 2] == '=');
        return xstrdup(img);
    }
    char *text = json_is_string(v) ? xstrdup(json_string_value(v)) : wf__py_str(v);
    *n = strlen(text);
    char *b = base64_encode(text, *n);
    free(text);
    return b;
}

/* The whole message (head: the header lines up to MIME-Version; body: the
 * CRLF text).  Without attachments a single text/plain part; with them
 * multipart/mixed under a boundary the body does not contain ("=_" cannot
 * occur in base64).  NULL with why on a bad name or a size limit. */
static char *mime_message(const char *head, const char *body, const json_t *atts, char *why, size_t whylen)
{
    static const char text_part[] = "Content-Type: text/plain; charset=\"utf-8\"\r\n"
                                    "Content-Transfer-Encoding: 8bit\r\n\r\n";
    if (!json_is_object(atts) || json_object_size(atts) == 0)
        return xasprintf("%s%s%s\r\n", head, text_part, body);
    if (json_object_size(atts) > EMAIL_ATTACH_MAX) {
        snprintf(why, whylen, "more than %d attachments", EMAIL_ATTACH_MAX);
        return NULL;
    }
    char boundary[40];
    for (unsigned k = 0;; k++) {
        snprintf(boundary, sizeof boundary, "=_vbatch_%u", k);
        if (!strstr(body, boundary))
            break;
    }
    size_t cap = strlen(head) + strlen(body) + 256, len = 0, total = 0;
    char *buf = xmalloc(cap);
    buf[0] = 0;
    append_str(&buf, &len, &cap, head);
    append_str(&buf, &len, &cap, "Content-Type: multipart/mixed; boundary=\"");
    append_str(&buf, &len, &cap, boundary);
    append_str(&buf, &len, &cap, "\"\r\n\r\n--");
    append_str(&buf, &len, &cap, boundary);
    append_str(&buf, &len, &cap, "\r\n");
    append_str(&buf, &len, &cap, text_part);
    append_str(&buf, &len, &cap, body);
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)atts, name, v) {
        if (!attach_name_ok(name)) {
            snprintf(why, whylen, "attachment name '%.64s' is empty, longer than %d bytes or has control "
                     "characters", name, EMAIL_ATTACH_NAME_MAX);
            free(buf);
            return NULL;
        }
        size_t n = 0;
        char *b = attach_b64(v, &n);
        total += n;
        if (total > EMAIL_ATTACH_BYTES_MAX) {
            snprintf(why, whylen, "the attachments are over %u bytes together", EMAIL_ATTACH_BYTES_MAX);
            free(b);
            free(buf);
            return NULL;
        }
        append_str(&buf, &len, &cap, "\r\n--");
        append_str(&buf, &len, &cap, boundary);
        append_str(&buf, &len, &cap, "\r\nContent-Type: application/octet-stream\r\nMIME-Version: 1.0\r\n"
                                     "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; ");
        attach_filename(&buf, &len, &cap, name);
        append_str(&buf, &len, &cap, "\r\n\r\n");
        /* base64 lines of 76 characters, CRLF between them */
        size_t bl = strlen(b);
        if (len + bl + bl / 76 * 2 + 1 > cap) {
            cap = len + bl + bl / 76 * 2 + 256;
            buf = xrealloc(buf, cap);
        }
        for (size_t o = 0; o < bl; o += 76) {
            size_t k = bl - o < 76 ? bl - o : 76;
            if (o) {
                memcpy(buf + len, "\r\n", 2);
                len += 2;
            }
            memcpy(buf + len, b + o, k);
            len += k;
        }
        buf[len] = 0;
        free(b);
    }
    append_str(&buf, &len, &cap, "\r\n--");
    append_str(&buf, &len, &cap, boundary);
    append_str(&buf, &len, &cap, "--\r\n");
    return buf;
}

static int email_run(struct wf_call *c)
{
    const struct wf_env *env = wf_call_env(c);
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct cooldown *cd = NULL;
        double now = 0;
        if (!sink_gate(c, i, "email_notification", &cd, &now))
            continue;
        if (!env->sinks || !env->sinks->email)
            return wf_call_fail(c, "e-mail notifications cannot be sent here: no SMTP sender (they are sent "
                                   "from batch jobs)");
        const char *server = wf_arg_str(c, i, "smtp_server");
        const char *from = wf_arg_str(c, i, "sender_email");
        const char *password = wf_arg_str(c, i, "sender_email_password");
        const char *subject = wf_arg_str(c, i, "subject");
        int64_t port = wf_arg_int(c, i, "smtp_port", 465);
        if (!server || !*server || !from || !*from || !subject) {
            set3(c, i, true, false, "Failed to send notification. Internal error details: smtp_server, "
                                    "sender_email and subject are required");
            continue;
        }
        if (port < 1 || port > 65535 || !header_safe(server) || strlen(server) > 253 || !header_safe(from) ||
            !header_safe(subject) || strlen(subject) > 998) {
            set3(c, i, true, false, "Failed to send notification. Internal error details: bad smtp_port, "
                                    "smtp_server, sender_email or subject");
            continue;
        }
        json_t *atts = NULL;
        if (dict_nonempty(c, i, "attachments") && build_dict(c, i, "attachments", NULL, &atts) < 0)
            return ERR_INVALID;
        const char *rcpt[3 * EMAIL_RCPT_MAX];
        size_t nrcpt = 0;
        char *to_h = NULL, *cc_h = NULL, *bcc_h = NULL;
        json_t *to_j = wf_value_to_json(wf_arg(c, i, "receiver_email"), false);
        json_t *cc_j = wf_value_to_json(wf_arg(c, i, "cc_receiver_email"), false);
        json_t *bcc_j = wf_value_to_json(wf_arg(c, i, "bcc_receiver_email"), false);
        int bad = addresses(to_j, rcpt, &nrcpt, &to_h) < 0 || nrcpt == 0;
        bad = bad || addresses(cc_j, rcpt, &nrcpt, &cc_h) < 0;
        bad = bad || addresses(bcc_j, rcpt, &nrcpt, &bcc_h) < 0;
        char *body = NULL;
        int rc = 0;
        if (bad) {
            set3(c, i, true, false, "Failed to send notification. Internal error details: bad receiver, cc or "
                                    "bcc address");
        } else if ((rc = format_message(c, i, wf_arg_str(c, i, "message") ? wf_arg_str(c, i, "message") : "",
                                        &body)) == 0) {
            char *subj = subject_header(subject), *crlf = crlf_body(body);
            char *head = xasprintf("From: %s\r\nTo: %s\r\n%s%s%sSubject: %s\r\nMIME-Version: 1.0\r\n", from,
                                   to_h, cc_h && *cc_h ? "Cc: " : "", cc_h && *cc_h ? cc_h : "",
                                   cc_h && *cc_h ? "\r\n" : "", subj);
            char awhy[256] = "";
            char *msg = mime_message(head, crlf, atts, awhy, sizeof awhy);
            free(head);
            if (!msg) {
                char out[400];
                snprintf(out, sizeof out, "Failed to send notification. Internal error details: %s", awhy);
                set3(c, i, true, false, out);
                free(subj);
                free(crlf);
                goto next;
            }
            struct wf_email m = {server, (int)port, from, password && *password ? password : NULL, from,
                                 rcpt, nrcpt, msg};
            char why[256] = "";
            char *sk = sink_step(c, i); /* each element its own Message-ID */
            int src = env->sinks->email(env->sinks->webhook_ud, sk, &m, why, sizeof why);
            free(sk);
            if (src < 0) {
                char out[400];
                snprintf(out, sizeof out, "Failed to send notification. Internal error details: %s",
                         *why ? why : err_str(src));
                set3(c, i, true, false, out);
            } else {
                if (cd)
                    cd->last = now;
                set3(c, i, false, false,
                     wf_arg_bool(c, i, "fire_and_forget", true) ? "Notification sent in the background task"
                                                                 : "Notification sent successfully");
            }
            free(msg);
            free(subj);
            free(crlf);
        }
    next:
        json_decref(atts);
        free(body);
        free(to_h);
        free(cc_h);
        free(bcc_h);
        json_decref(to_j);
        json_decref(cc_j);
        json_decref(bcc_j);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int email_check_v1(const json_t *step, char *err, size_t errlen)
{
    return ops_dict_check(step, "message_parameters_operations", err, errlen);
}

static int email_check_v2(const json_t *step, char *err, size_t errlen)
{
    const char *prov = json_string_value(json_object_get(step, "email_provider"));
    if (!prov || !strcmp(prov, "Roboflow Managed API Key")) {
        wf__errf(err, errlen, "field 'email_provider': 'Roboflow Managed API Key' needs a cloud service "
                              "(Roboflow's managed e-mail) and is refused: this engine runs workflows offline; "
                              "use 'Custom SMTP' with smtp_server, sender_email and sender_email_password");
        return ERR_UNSUPPORTED;
    }
    return ops_dict_check(step, "message_parameters_operations", err, errlen);
}

#define EMAIL_COMMON_FIELDS                                                                                    \
    {"subject", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},                                             \
        {"receiver_email", NULL, WF_FT_ANY, NULL, WF_K_STRING | WF_K_LIST, 0, NULL},                         \
        {"message", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},                                         \
        {"message_parameters", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},                          \
        {"message_parameters_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},      \
        {"cc_receiver_email", NULL, WF_FT_ANY, "null", WF_K_STRING | WF_K_LIST, WF_F_NULLABLE, NULL},        \
        {"bcc_receiver_email", NULL, WF_FT_ANY, "null", WF_K_STRING | WF_K_LIST, WF_F_NULLABLE, NULL},       \
        {"attachments", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},                                 \
        {"smtp_port", NULL, WF_FT_INT, "465", WF_K_INT, 0, NULL},                                            \
        {"fire_and_forget", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},                                   \
        {"disable_sink", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},                                     \
        {"cooldown_seconds", NULL, WF_FT_INT, "5", WF_K_INT, 0, NULL}

static const struct wf_field email_v1_fields[] = {
    EMAIL_COMMON_FIELDS,
    {"sender_email", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"smtp_server", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"sender_email_password", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
};
static const char *const email_providers[] = {"Roboflow Managed API Key", "Custom SMTP", NULL};
static const struct wf_field email_v2_fields[] = {
    EMAIL_COMMON_FIELDS,
    {"email_provider", NULL, WF_FT_ENUM, "\"Roboflow Managed API Key\"", 0, WF_F_NO_SELECTOR, email_providers},
    {"sender_email", NULL, WF_FT_STRING, "null", WF_K_STRING, WF_F_NULLABLE, NULL},
    {"smtp_server", NULL, WF_FT_STRING, "null", WF_K_STRING, WF_F_NULLABLE, NULL},
    {"sender_email_password", NULL, WF_FT_STRING, "null", WF_K_STRING, WF_F_NULLABLE, NULL},
};
static const struct wf_block email_v1 = {
    (const char *const[]){"roboflow_core/email_notification@v1", NULL},
    email_v1_fields, ARRAY_LEN(email_v1_fields), webhook_outs, ARRAY_LEN(webhook_outs),
    0, 0, NULL, email_run, email_check_v1};
static const struct wf_block email_v2 = {
    (const char *const[]){"roboflow_core/email_notification@v2", NULL},
    email_v2_fields, ARRAY_LEN(email_v2_fields), webhook_outs, ARRAY_LEN(webhook_outs),
    0, 0, NULL, email_run, email_check_v2};

/* ---- slack_notification ---------------------------------------------------------------------- */
/* Roboflow's block calls Slack's Web API with the workflow's token
 * (chat.postMessage; files_upload_v2 with attachments).  Here the calls go
 * to the operator's --slack-api-url (env->sinks->slack_api_url) through the
 * durable outbox, as webhook_sink's requests do: without attachments a
 * POST of {"channel", "text"} to chat.postMessage with "Authorization:
 * Bearer <slack_token>"; with attachments one outbox row of kind
 * slack_upload (store_outbox_enqueue_once): Slack's files_upload_v2, each
 * attachment (an image as its JPEG, a string as UTF-8, else str(), named
 * by its key) uploaded, then completed into the channel with the message
 * as initial_comment. */
#define SLACK_TOKEN_MAX 1024
#define SLACK_CHANNEL_MAX 256

/* The slack_upload description of item i's attachments (NULL with why set
 * when they are too many or too big; *fail for an engine error). */
static json_t *slack_upload_req(struct wf_call *c, size_t i, const char *api, const char *token,
                                const char *channel, const char *comment, char *why, size_t whylen, int *fail)
{
    json_t *atts = NULL;
    *fail = 0;
    if (build_dict(c, i, "attachments", NULL, &atts) < 0) {
        *fail = 1;
        return NULL;
    }
    if (json_object_size(atts) > EMAIL_ATTACH_MAX) {
        snprintf(why, whylen, "more than %d attachments", EMAIL_ATTACH_MAX);
        json_decref(atts);
        return NULL;
    }
    json_t *files = json_array();
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(atts, k, v) {
        if (!attach_name_ok(k)) {
            snprintf(why, whylen, "bad attachment name");
            goto bad;
        }
        size_t n = 0;
        char *b64 = attach_b64(v, &n);
        total += n;
        if (total > EMAIL_ATTACH_BYTES_MAX) {
            free(b64);
            snprintf(why, whylen, "the attachments are over %u bytes together", EMAIL_ATTACH_BYTES_MAX);
            goto bad;
        }
        json_array_append_new(files, json_pack("{s:s, s:s}", "name", k, "data", b64));
        free(b64);
    }
    json_decref(atts);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "kind", "slack_upload", "api", api, "token", token,
                     "channel", channel, "comment", comment, "files", files);
bad:
    json_decref(files);
    json_decref(atts);
    return NULL;
}

static int slack_run(struct wf_call *c)
{
    const struct wf_env *env = wf_call_env(c);
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct cooldown *cd = NULL;
        double now = 0;
        if (!sink_gate(c, i, "slack_notification", &cd, &now))
            continue;
        if (!env->sinks || !env->sinks->slack_api_url || !*env->sinks->slack_api_url || !env->sinks->webhook_req)
            return wf_call_fail(c, "`roboflow_core/slack_notification@v1` cannot run here: the operator has not "
                                   "configured Slack's Web API base URL (--slack-api-url in vbatch serve --help)");
        const char *token = wf_arg_str(c, i, "slack_token");
        const char *channel = wf_arg_str(c, i, "channel");
        if (!token || !*token || strlen(token) > SLACK_TOKEN_MAX || !header_safe(token) || !channel || !*channel ||
            strlen(channel) > SLACK_CHANNEL_MAX) {
            set3(c, i, true, false, "Failed to send Slack notification. Internal error details: slack_token "
                                    "(at most 1024 bytes, no line breaks) and channel (at most 256 bytes) are "
                                    "required");
            continue;
        }
        char *body = NULL;
        int rc = format_message(c, i, wf_arg_str(c, i, "message") ? wf_arg_str(c, i, "message") : "", &body);
        if (rc < 0)
            return rc;
        const char *base = env->sinks->slack_api_url;
        size_t bl = strlen(base);
        while (bl > 0 && base[bl - 1] == '/')
            bl--;
        char *api = xstrndup(base, bl);
        bool upload = dict_nonempty(c, i, "attachments");
        char *url = xasprintf("%s/%s", api, upload ? "files.completeUploadExternal" : "chat.postMessage");
        char *bearer = xasprintf("Bearer %s", token);
        char why[256] = "";
        json_t *payload = json_pack("{s:s, s:s}", "channel", channel, "text", body);
        json_t *req = NULL;
        if (upload) {
            int fail = 0;
            req = slack_upload_req(c, i, api, token, channel, body, why, sizeof why, &fail);
            if (fail) {
                json_decref(payload);
                free(api);
                free(url);
                free(bearer);
                free(body);
                return ERR_INVALID;
            }
        } else {
            /* slack_ok: Slack answers its errors with 200 and "ok": false */
            req = json_pack("{s:s, s:{s:s}, s:b}", "method", "POST", "headers", "Authorization", bearer,
                            "slack_ok", 1);
        }
        free(api);
        char *ptext = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
        char *rtext = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (*why) /* attachments refused */
            rc = ERR_LIMIT;
        else {
            char *sk = sink_step(c, i);
            rc = ptext && rtext ? env->sinks->webhook_req(env->sinks->webhook_ud, sk, url, ptext, rtext, why,
                                                          sizeof why)
                                : ERR_INVALID; /* text not UTF-8 */
            free(sk);
        }
        json_decref(payload);
        json_decref(req);
        free(ptext);
        free(rtext);
        free(bearer);
        free(url);
        free(body);
        queued_outcome(c, i, rc, why, "Failed to send Slack notification", cd, now);
    }
    return 0;
}

static int slack_check(const json_t *step, char *err, size_t errlen)
{
    return ops_dict_check(step, "message_parameters_operations", err, errlen);
}

static const struct wf_field slack_fields[] = {
    {"slack_token", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"channel", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"message", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"message_parameters", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"message_parameters_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"attachments", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"fire_and_forget", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},
    {"disable_sink", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"cooldown_seconds", NULL, WF_FT_INT, "5", WF_K_INT, 0, NULL},
    {"cooldown_session_key", NULL, WF_FT_STRING, NULL, 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_block slack_notification = {
    (const char *const[]){"roboflow_core/slack_notification@v1", NULL},
    slack_fields, ARRAY_LEN(slack_fields), webhook_outs, ARRAY_LEN(webhook_outs),
    0, 0, NULL, slack_run, slack_check};

/* ---- local_file_sink ------------------------------------------------------------------------ */
struct append_log {
    char *dir;   /* target_directory of the open file */
    char *name;  /* file name under dir */
    int64_t entries;
};

static void append_log_free(void *p)
{
    struct append_log *a = p;
    if (a) {
        free(a->dir);
        free(a->name);
        free(a);
    }
}

/* Open (creating) target_directory under root, component by component,
 * never following a symbolic link.  Returns a directory fd or -1 with msg. */
static int open_target(const char *root, const char *target, char *msg, size_t msglen)
{
    if (!target || strlen(target) > SINK_PATH_MAX) {
        snprintf(msg, msglen, "target_directory is missing or longer than %d bytes", SINK_PATH_MAX);
        return -1;
    }
    if (target[0] == '/') {
        snprintf(msg, msglen, "Requested file sink to save data in `%.200s` which is an absolute path: "
                              "target_directory must be relative to the sink folder", target);
        return -1;
    }
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, msglen, "the sink folder cannot be opened: %s", strerror(errno));
        return -1;
    }
    char *copy = xstrdup(target), *save = NULL;
    int depth = 0;
    for (char *p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (!strcmp(p, "."))
            continue;
        if (!strcmp(p, "..") || ++depth > SINK_DEPTH_MAX) {
            snprintf(msg, msglen, "Requested file sink to save data in `%.200s` which is not a "
                                  "sub-directory of the sink folder", target);
            close(fd);
            free(copy);
            return -1;
        }
        if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
            snprintf(msg, msglen, "cannot create directory '%.100s': %s", p, strerror(errno));
            close(fd);
            free(copy);
            return -1;
        }
        int nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        if (nfd < 0) {
            snprintf(msg, msglen, e == ELOOP || e == ENOTDIR
                                      ? "'%.100s' is a symbolic link or not a directory: refused"
                                      : "cannot open directory '%.100s': %s",
                     p, strerror(e));
            free(copy);
            return -1;
        }
        fd = nfd;
    }
    free(copy);
    return fd;
}

static bool prefix_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 200 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (; *s; s++)
        if (*s == '/' || (unsigned char)*s < 32)
            return false;
    return true;
}

/* Create "<prefix>_<YYYY_MM_DD_HH_MM_SS_ffffff>.<ext>" (Python's
 * datetime.now() format, local time) exclusively in dirfd. */
static int create_new(int dirfd, const char *prefix, const char *ext, char **name)
{
    for (int tries = 0; tries < 1000; tries++) {
        struct timeval tv;
        struct tm tm;
        char ts[64];
        gettimeofday(&tv, NULL);
        time_t t = tv.tv_sec;
        localtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y_%m_%d_%H_%M_%S", &tm);
        char *n = xasprintf("%s_%s_%06ld.%s", prefix, ts, (long)tv.tv_usec, ext);
        int fd = openat(dirfd, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *name = n;
            return fd;
        }
        free(n);
        if (errno != EEXIST)
            return -1;
        struct timespec nap = {0, 1000};
        nanosleep(&nap, NULL);
    }
    errno = EEXIST;
    return -1;
}

/* A run with an identity (a job's image): the file is
 * "<prefix>_<run_key>_<step>.<ext>", written to a temporary name
 * (*tmp, ".<name>.<random>.tmp") that the caller renames over it, so a
 * repeated run replaces the file whole and a reader never sees half of it. */
#define SINK_STEP_PART_MAX 64 /* bytes of a file name that name the step */
#define SINK_NAME_MAX 200      /* a file name's bytes (the temporary adds 22, NAME_MAX is 255) */

/* The first 16 hex digits of sha256(s) into hex[17]. */
static void short_hash(const char *s, char hex[17])
{
    uint8_t h[32];
    sha256(s, strlen(s), h);
    for (int k = 0; k < 8; k++)
        snprintf(hex + 2 * k, 3, "%02x", h[k]);
}

/* The step part of a file name: the name sink_step gives with each byte
 * not of A-Z a-z 0-9 _ - (the '.' of an element index kept) mapped to
 * '_' (a step name may hold '/' and any printable character); when
 * anything was mapped or it is longer than SINK_STEP_PART_MAX, its first
 * bytes, '-' and a hash of the whole name, so that two steps keep two
 * files.  Caller frees. */
static char *step_file_part(const char *step)
{
    size_t n = strlen(step);
    bool mapped = false;
    char *p = xstrdup(step);
    for (char *q = p; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-' && *q != '.') {
            *q = '_';
            mapped = true;
        }
    if (!mapped && n <= SINK_STEP_PART_MAX)
        return p;
    char hex[17];
    short_hash(step, hex);
    if (n > SINK_STEP_PART_MAX - 17)
        p[SINK_STEP_PART_MAX - 17] = 0;
    char *out = xasprintf("%s-%s", p, hex);
    free(p);
    return out;
}

static int create_temp(int dirfd, const char *prefix, const char *run_key, const char *step, const char *ext,
                       char **name, char **tmp)
{
    char *part = step_file_part(step);
    char *base = xasprintf("%s_%s_%s", prefix, run_key, part);
    free(part);
    size_t room = SINK_NAME_MAX - 1 - strlen(ext);
    if (strlen(base) > room) { /* a long prefix: its tail becomes a hash of the whole */
        char hex[17];
        short_hash(base, hex);
        base[room - 17] = 0;
        char *b2 = xasprintf("%s-%s", base, hex);
        free(base);
        base = b2;
    }
    *name = xasprintf("%s.%s", base, ext);
    free(base);
    for (int tries = 0; tries < 100; tries++) {
        uint64_t r = 0;
        rand_bytes(&r, sizeof r);
        char *t = xasprintf(".%s.%016llx.tmp", *name, (unsigned long long)r);
        int fd = openat(dirfd, t, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *tmp = t;
            return fd;
        }
        free(t);
        if (errno != EEXIST)
            break;
    }
    free(*name);
    *name = NULL;
    return -1;
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* content + "\n" unless it ends with one */
static int write_content(int fd, const char *s)
{
    size_t n = strlen(s);
    if (write_all(fd, s, n) < 0)
        return -1;
    if (n == 0 || s[n - 1] != '\n')
        return write_all(fd, "\n", 1);
    return 0;
}

static void file_sink_one(struct wf_call *c, size_t i, const char *root)
{
    const char *content = wf_arg_str(c, i, "content");
    const char *type = wf_arg_str(c, i, "file_type");
    const char *mode = wf_arg_str(c, i, "output_mode");
    const char *target = wf_arg_str(c, i, "target_directory");
    const char *prefix = wf_arg_str(c, i, "file_name_prefix");
    char msg[512];
    if (!content || strlen(content) > SINK_CONTENT_MAX) {
        set3(c, i, true, -1, "content must be a string of at most 16 MiB");
        return;
    }
    if (!prefix_ok(prefix)) {
        set3(c, i, true, -1, "file_name_prefix must be a plain file name (no '/')");
        return;
    }
    int64_t max_entries = 1024;
    const struct wf_value *me = wf_arg(c, i, "max_entries_per_file");
    json_t *mej = wf_value_to_json(me, false);
    if (json_is_integer(mej))
        max_entries = json_integer_value(mej);
    else if (json_is_string(mej))
        max_entries = strtoll(json_string_value(mej), NULL, 10);
    json_decref(mej);
    if (max_entries < 1) {
        set3(c, i, true, -1, "`max_entries_per_file` cannot be lower than 1.");
        return;
    }
    int dfd = open_target(root, target, msg, sizeof msg);
    if (dfd < 0) {
        set3(c, i, true, -1, msg);
        return;
    }
    if (!strcmp(mode, "separate_files")) {
        const struct wf_sinks *sk = wf_call_env(c)->sinks;
        char *name = NULL, *tmp = NULL;
        int fd;
        if (sk->run_key) { /* one name per run and step: a repeated run replaces its file */
            char *step = sink_step(c, i);
            fd = create_temp(dfd, prefix, sk->run_key, step, type, &name, &tmp);
            free(step);
        } else
            fd = create_new(dfd, prefix, type, &name);
        int rc = fd >= 0 ? write_content(fd, content) : -1;
        int e = errno;
        if (fd >= 0 && close(fd) < 0 && rc == 0)
            rc = -1, e = errno;
        if (tmp && rc == 0 && renameat(dfd, tmp, dfd, name) < 0)
            rc = -1, e = errno;
        if (tmp && rc < 0)
            unlinkat(dfd, tmp, 0);
        close(dfd);
        free(name);
        free(tmp);
        if (rc < 0) {
            snprintf(msg, sizeof msg, "%s", strerror(e));
            set3(c, i, true, -1, msg);
        } else {
            set3(c, i, false, -1, "Data saved successfully");
        }
        return;
    }
    /* append_log */
    char *line = NULL;
    if (!strcmp(type, "json")) {
        json_error_t je;
        json_t *j = json_loads(content, JSON_DECODE_ANY, &je);
        line = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17)) : NULL;
        json_decref(j);
        if (line)
            lower_u_escapes(line);
        if (!line) {
            close(dfd);
            set3(c, i, true, -1, "Invalid JSON content");
            return;
        }
    }
    struct append_log tmp = {0}, *al = &tmp;
    const struct wf_env *env = wf_call_env(c);
    if (env->state) {
        void **slot = wf_call_state(c, "local_file_sink", append_log_free);
        if (slot) {
            if (!*slot)
                *slot = xcalloc(1, sizeof(struct append_log));
            al = *slot;
        }
    }
    const char *ext = !strcmp(type, "json") ? "jsonl" : type;
    int fd = -1;
    bool fresh = false;
    if (al->name && al->entries < max_entries && al->dir && !strcmp(al->dir, target))
        fd = openat(dfd, al->name, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        char *name = NULL;
        fd = create_new(dfd, prefix, ext, &name);
        if (fd < 0) {
            close(dfd);
            free(line);
            if (al == &tmp)
                free(tmp.name);
            set3(c, i, true, -1, "Could not create new sink file");
            return;
        }
        free(al->name);
        free(al->dir);
        al->name = name;
        al->dir = xstrdup(target);
        al->entries = 0;
        fresh = true;
    }
    const char *text = line ? line : content;
    if (!fresh && !strcmp(type, "csv")) {
        /* CSV headers only in a new file: Roboflow drops the first line */
        const char *nl = strchr(text, '\n');
        text = nl ? nl + 1 : "";
    }
    int rc = write_content(fd, text);
    if (close(fd) < 0)
        rc = -1;
    close(dfd);
    free(line);
    if (al == &tmp) {
        free(tmp.name);
        free(tmp.dir);
    }
    if (rc < 0) {
        set3(c, i, true, -1, "Could not append content to append log");
        return;
    }
    al->entries++;
    set3(c, i, false, -1, "Data saved successfully");
}

static int file_sink_run(struct wf_call *c)
{
    const struct wf_env *env = wf_call_env(c);
    if (!env->sinks || !env->sinks->file_root)
        return wf_call_fail(c, "`roboflow_core/local_file_sink@v1` block cannot run in this environment - "
                               "local file system usage is forbidden: the operator sets the only folder "
                               "it may write (%s)", SOURCE);
    for (size_t i = 0; i < wf_call_n(c); i++)
        file_sink_one(c, i, env->sinks->file_root);
    return 0;
}

static const char *const file_types[] = {"csv", "json", "txt", NULL};
static const char *const output_modes[] = {"append_log", "separate_files", NULL};
static const struct wf_field file_sink_fields[] = {
    {"content", NULL, WF_FT_STRING, NULL, WF_K_STRING, WF_F_SELECTOR_ONLY, NULL},
    {"file_type", NULL, WF_FT_ENUM, "\"csv\"", 0, WF_F_NO_SELECTOR, file_types},
    {"output_mode", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, output_modes},
    {"target_directory", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"file_name_prefix", NULL, WF_FT_STRING, "\"workflow_output\"", WF_K_STRING, 0, NULL},
    {"max_entries_per_file", NULL, WF_FT_ANY, "1024", WF_K_STRING | WF_K_INT, 0, NULL},
};
static const struct wf_output file_sink_outs[] = {{"error_status", WF_K_BOOL}, {"message", WF_K_STRING}};

static int file_sink_check(const json_t *step, char *err, size_t errlen)
{
    const json_t *m = json_object_get(step, "max_entries_per_file");
    if (json_is_integer(m) && json_integer_value(m) < 1) {
        wf__errf(err, errlen, "field 'max_entries_per_file': `max_entries_per_file` cannot be lower than 1.");
        return ERR_INVALID;
    }
    if (m && !json_is_integer(m) && !json_is_string(m)) {
        wf__errf(err, errlen, "field 'max_entries_per_file': expected an integer or a selector");
        return ERR_INVALID;
    }
    return 0;
}

static const struct wf_block local_file_sink = {
    (const char *const[]){"roboflow_core/local_file_sink@v1", NULL},
    file_sink_fields, ARRAY_LEN(file_sink_fields), file_sink_outs, ARRAY_LEN(file_sink_outs),
    0, 0, NULL, file_sink_run, file_sink_check};

/* ---- s3_sink ------------------------------------------------------------------------------- */
/* Roboflow's block takes AWS credentials from the workflow and writes to
 * any bucket; here the bucket, endpoint and credentials are the
 * operator's (env->sinks->s3): bucket_name must name that bucket, and the
 * workflow's aws_* fields are accepted but not used.  The key is
 * "<s3_prefix>/<file_name_prefix>_<run identity>.<ext>" (the embedding
 * program's identity: the same for a retried image), not a timestamp.
 * append_log is served as one object per run (no buffer across frames). */
static void s3_sink_one(struct wf_call *c, size_t i, const struct wf_sinks *sk)
{
    const char *content = wf_arg_str(c, i, "content");
    const char *type = wf_arg_str(c, i, "file_type");
    const char *mode = wf_arg_str(c, i, "output_mode");
    const char *bucket = wf_arg_str(c, i, "bucket_name");
    const char *dir = wf_arg_str(c, i, "s3_prefix");
    const char *prefix = wf_arg_str(c, i, "file_name_prefix");
    char msg[1600], key[1100] = "", why[400] = "";
    if (!content || strlen(content) > SINK_CONTENT_MAX) {
        set3(c, i, true, -1, "content must be a string of at most 16 MiB");
        return;
    }
    if (!bucket || !*bucket || strlen(bucket) > 255) {
        set3(c, i, true, -1, "bucket_name must be a non-empty string");
        return;
    }
    if (!prefix_ok(prefix)) {
        set3(c, i, true, -1, "file_name_prefix must be a plain file name (no '/')");
        return;
    }
    if (!dir)
        dir = "";
    size_t dl = strlen(dir);
    while (dl > 0 && dir[dl - 1] == '/') /* Roboflow: s3_prefix.rstrip("/") */
        dl--;
    if (dl > SINK_PATH_MAX || dir[0] == '/' || strstr(dir, "..") || strstr(dir, "//")) {
        set3(c, i, true, -1, "s3_prefix must be a relative key prefix (no leading '/', '..' or '//')");
        return;
    }
    char *d = xstrndup(dir, dl);
    const char *ext = type;
    char *body = NULL;
    if (!strcmp(mode, "append_log") && !strcmp(type, "json")) {
        /* Roboflow's append mode stores JSON as one line of .jsonl */
        json_t *j = json_loads(content, JSON_DECODE_ANY, NULL);
        char *line = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17)) : NULL;
        json_decref(j);
        if (!line) {
            free(d);
            set3(c, i, true, -1, "Invalid JSON content");
            return;
        }
        lower_u_escapes(line);
        body = xasprintf("%s\n", line);
        free(line);
        ext = "jsonl";
    } else if (!strcmp(mode, "append_log")) {
        size_t n = strlen(content);
        body = xasprintf("%s%s", content, n && content[n - 1] == '\n' ? "" : "\n");
    } else {
        body = xstrdup(content);
    }
    char *step = sink_step(c, i);
    int rc = sk->s3(sk->webhook_ud, step, bucket, d, prefix, ext, body, strlen(body), key, sizeof key, why,
                    sizeof why);
    free(step);
    free(body);
    free(d);
    if (rc < 0) {
        snprintf(msg, sizeof msg, "%s", *why ? why : err_str(rc));
        set3(c, i, true, -1, msg);
        return;
    }
    /* the PUT itself is the outbox's, after the step (see sk->s3) */
    snprintf(msg, sizeof msg, "Data queued for upload to s3://%s/%s", bucket, key);
    set3(c, i, false, -1, msg);
}

static int s3_sink_run(struct wf_call *c)
{
    const struct wf_env *env = wf_call_env(c);
    if (!env->sinks || !env->sinks->s3)
        return wf_call_fail(c, "`roboflow_core/s3_sink@v1` cannot run here: the operator has not configured "
                               "its bucket (see --sink-s3 in vbatch serve --help)");
    for (size_t i = 0; i < wf_call_n(c); i++)
        s3_sink_one(c, i, env->sinks);
    return 0;
}

static const struct wf_field s3_sink_fields[] = {
    {"content", NULL, WF_FT_STRING, NULL, WF_K_STRING, WF_F_SELECTOR_ONLY, NULL},
    {"file_type", NULL, WF_FT_ENUM, "\"csv\"", 0, WF_F_NO_SELECTOR, file_types},
    {"output_mode", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, output_modes},
    {"bucket_name", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"s3_prefix", NULL, WF_FT_STRING, "\"\"", WF_K_STRING, 0, NULL},
    {"file_name_prefix", NULL, WF_FT_STRING, "\"workflow_output\"", WF_K_STRING, 0, NULL},
    {"max_entries_per_file", NULL, WF_FT_ANY, "1024", WF_K_STRING | WF_K_INT, 0, NULL},
    {"aws_access_key_id", NULL, WF_FT_ANY, "null", 0, 0, NULL},
    {"aws_secret_access_key", NULL, WF_FT_ANY, "null", 0, 0, NULL},
    {"aws_region", NULL, WF_FT_ANY, "null", WF_K_STRING, 0, NULL},
};

static const struct wf_block s3_sink = {
    (const char *const[]){"roboflow_core/s3_sink@v1", NULL},
    s3_sink_fields, ARRAY_LEN(s3_sink_fields), file_sink_outs, ARRAY_LEN(file_sink_outs),
    0, 0, NULL, s3_sink_run, file_sink_check};

/* ---- environment_secrets_store ------------------------------------------------------------------ */
static bool env_allowed(const struct wf_sinks *s, const char *name)
{
    if (!s || !s->env_allow)
        return false;
    for (size_t k = 0; s->env_allow[k]; k++)
        if (!strcmp(s->env_allow[k], name))
            return true;
    return false;
}

static int secrets_run(struct wf_call *c)
{
    const struct wf_env *env = wf_call_env(c);
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const json_t *names = wf_arg_json(c, i, "variables_storing_secrets");
        size_t k;
        const json_t *nm;
        json_array_foreach(names, k, nm) {
            const char *n = json_string_value(nm);
            if (!env_allowed(env->sinks, n))
                return wf_call_fail(c, "`roboflow_core/environment_secrets_store@v1` cannot read '%.100s': "
                                       "access to environment variables is forbidden except for the "
                                       "ones the operator allow-lists (%s)", n ? n : "", SOURCE);
            char *low = xstrdup(n);
            for (char *p = low; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            const char *v = getenv(n);
            wf_out_json(c, i, low, v ? json_string(v) : json_null());
            free(low);
        }
    }
    return 0;
}

static int secrets_check(const json_t *step, char *err, size_t errlen)
{
    const json_t *v = json_object_get(step, "variables_storing_secrets");
    if (!json_is_array(v) || json_array_size(v) < 1) {
        wf__errf(err, errlen, "field 'variables_storing_secrets': expected a list of at least one name");
        return ERR_INVALID;
    }
    return 0;
}

static const struct wf_field secrets_fields[] = {
    {"variables_storing_secrets", NULL, WF_FT_LIST, NULL, 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_block environment_secrets_store = {
    (const char *const[]){"roboflow_core/environment_secrets_store@v1", NULL},
    secrets_fields, ARRAY_LEN(secrets_fields), NULL, 0,
    0, WF_BLOCK_DYN_OUTPUTS | WF_BLOCK_DYN_LOWER, "variables_storing_secrets", secrets_run, secrets_check};

const struct wf_block *const wf_blocks_sinks[] = {&webhook_sink, &local_file_sink, &environment_secrets_store,
                                                  &email_v1, &email_v2, &s3_sink, &slack_notification,
                                                  NULL};
