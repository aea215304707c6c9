/*
 * client.c — what every client command shares: the common options, the
 * workspace lookup, API calls over libcurl with Roboflow's retry rule, the
 * one-line error of a refused call, progress bars.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_int.h"

/* ---- output ------------------------------------------------------------- */

void cli__fail(const char *fmt, ...)
{
    va_list ap;
    char msg[1024];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "vbatch: %s\n", msg);
}

void cli__human_bytes(double n, char out[32])
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    size_t u = 0;

    while (n >= 1000 && u + 1 < ARRAY_LEN(units)) {
        n /= 1000;
        u++;
    }
    snprintf(out, 32, u ? "%.1f %s" : "%.0f %s", n, units[u]);
}

void cli__bar(const struct cli *c, const char *label, double done, double total, const char *tail)
{
    char bar[41];
    int width = 30, fill = 0;

    if (!c->tty)
        return;
    if (total > 0)
        fill = (int)(width * MIN(1.0, done / total));
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[width] = 0;
    if (total > 0)
        fprintf(stderr, "\r\033[K%s [%s] %5.1f%% %s", label, bar, 100.0 * MIN(1.0, done / total), tail ? tail : "");
    else
        fprintf(stderr, "\r\033[K%s %s", label, tail ? tail : "");
    fflush(stderr);
}

void cli__bar_end(const struct cli *c)
{
    if (c->tty)
        fputc('\n', stderr);
}

const char *cli__str(json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

/* ---- options ------------------------------------------------------------ */

static int set_opt(struct cli *c, const struct cli_opt *o, const char *name, const char *v)
{
    char *end;

    (void)c;
    switch (o->kind) {
    case CLI_OPT_FLAG:
        *(bool *)o->dst = true;
        return 0;
    case CLI_OPT_STR:
        *(const char **)o->dst = v;
        return 0;
    case CLI_OPT_INT: {
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < 0) {
            cli__fail("--%s needs a non-negative integer, not '%s'", name, v);
            return CLI_EXIT_USAGE;
        }
        *(long *)o->dst = n;
        return 0;
    }
    case CLI_OPT_NUM: {
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= 0)) {
            cli__fail("--%s needs a non-negative number, not '%s'", name, v);
            return CLI_EXIT_USAGE;
        }
        *(double *)o->dst = d;
        return 0;
    }
    }
    return CLI_EXIT_USAGE;
}

int cli__parse(struct cli *c, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
               const char **pos, int maxpos, int *npos)
{
    const struct cli_opt common[] = {
        {"server", CLI_OPT_STR, &c->server_opt},
        {"api-key", CLI_OPT_STR, &c->key},
        {"workspace", CLI_OPT_STR, &c->ws_opt},
    };
    bool only_pos = false;

    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
            if (*npos >= maxpos) {
                cli__fail("unexpected argument '%s'", a);
                return CLI_EXIT_USAGE;
            }
            pos[(*npos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            cli__fail("unknown option '%s'", a);
            return CLI_EXIT_USAGE;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct cli_opt *o = NULL;
        for (size_t k = 0; k < ARRAY_LEN(common) && !o; k++)
            if (strlen(common[k].name) == nlen && !strncmp(common[k].name, name, nlen))
                o = &common[k];
        for (size_t k = 0; k < nopts && !o; k++)
            if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, name, nlen))
                o = &opts[k];
        if (!o) {
            cli__fail("unknown option '--%.*s'", (int)nlen, name);
            return CLI_EXIT_USAGE;
        }
        const char *v = NULL;
        if (o->kind == CLI_OPT_FLAG) {
            if (eq) {
                cli__fail("--%s takes no value", o->name);
                return CLI_EXIT_USAGE;
            }
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            cli__fail("--%s needs a value", o->name);
            return CLI_EXIT_USAGE;
        }
        int rc = set_opt(c, o, o->name, v);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- HTTP ------------------------------------------------------------- */

CURL *cli__handle(const struct cli *c)
{
    CURL *h = curl_easy_init();

    if (!h)
        abort(); /* out of memory */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vbatch-cli/1");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    (void)c;
    return h;
}

char *cli__url(const struct cli *c, const char *path, const char *const *query, bool with_key)
{
    struct buf b = BUF_INIT;
    char sep = '?';

    buf_puts(&b, c->server);
    buf_puts(&b, path);
    for (size_t i = 0; query && query[i]; i += 2) {
        if (!query[i + 1])
            continue;
        char *v = url_encode(query[i + 1]);
        buf_printf(&b, "%c%s=%s", sep, query[i], v);
        free(v);
        sep = '&';
    }
    if (with_key && c->key) {
        char *v = url_encode(c->key);
        buf_printf(&b, "%capi_key=%s", sep, v);
        free(v);
    }
    return buf_detach(&b, NULL);
}

static size_t body_cb(char *p, size_t sz, size_t n, void *ud)
{
    struct buf *b = ud;

    return buf_append(b, p, sz * n) == 0 ? sz * n : 0;
}

void cli__error_text(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *j = NULL;
    const char *msg = NULL;
    size_t n;

    if (len && json_parse_outside(body, len, 0, &j, NULL, 0) == 0) {
        json_t *er = json_object_get(j, "error");
        msg = json_string_value(er);
        if (!msg && json_is_object(er))
            msg = json_string_value(json_object_get(er, "message"));
        if (!msg)
            msg = json_string_value(json_object_get(j, "message"));
    }
    if (msg) {
        snprintf(out, outlen, "%s", msg);
    } else {
        for (n = 0; n < len && body[n] != '\n' && body[n] != '\r'; n++)
            ;
        snprintf(out, outlen, "%.*s", (int)MIN(n, (size_t)200), body);
    }
    /* one line: control bytes become spaces */
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    json_decref(j);
}

static bool retryable(long status)
{
    return status == 408 || status == 429 || status == 502 || status == 503 || status == 504;
}

int cli__call_on(CURL *h, const struct cli *c, const char *method, const char *path, const char *const *query,
                 const char *body, size_t len, json_t **out, long *status, struct err *e)
{
    char *url = cli__url(c, path, query, true);
    struct buf resp;
    struct curl_slist *hdrs = NULL;
    long code = 0;
    int rc = CLI_EXIT_FAIL;

    buf_init(&resp, CLI_MAX_JSON_BYTES);
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (int attempt = 0; attempt < 4; attempt++) {
        if (attempt)
            sleep(1);
        buf_reset(&resp);
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "vbatch-cli/1");
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        if (!strcmp(method, "HEAD"))
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        if (body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        }
        CURLcode cc = curl_easy_perform(h);
        code = 0;
        if (cc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (cc != CURLE_OK) {
            if (cc == CURLE_WRITE_ERROR && resp.len >= CLI_MAX_JSON_BYTES) {
                err_printf(e, "%s %s: the answer is larger than %u bytes", method, path, CLI_MAX_JSON_BYTES);
                break;
            }
            err_printf(e, "%s %s: cannot reach %s: %s", method, path, c->server, curl_easy_strerror(cc));
            continue;
        }
        if (retryable(code) && attempt < 3)
            continue;
        break;
    }
    if (status)
        *status = code;
    if (code >= 200 && code < 300) {
        json_t *j = NULL;
        char perr[256];
        if (resp.len == 0) {
            j = json_null();
        } else if (json_parse_outside(resp.data, resp.len, JSON_DECODE_ANY, &j, perr, sizeof perr) < 0) {
            err_printf(e, "%s %s: %ld with a body that is not JSON: %s", method, path, code, perr);
            goto out;
        }
        if (out)
            *out = j;
        else
            json_decref(j);
        rc = 0;
    } else if (code) {
        char msg[400];
        cli__error_text(resp.data ? resp.data : "", resp.len, msg, sizeof msg);
        err_printf(e, "%s %s: %ld %s", method, path, code, msg);
    }
out:
    curl_slist_free_all(hdrs);
    buf_release(&resp);
    free(url);
    return rc;
}

int cli__call(struct cli *c, const char *method, const char *path, const char *const *query, const char *body,
              size_t len, json_t **out, long *status, struct err *e)
{
    if (!c->curl)
        c->curl = cli__handle(c);
    return cli__call_on(c->curl, c, method, path, query, body, len, out, status, e);
}

int cli__too_many_pages(const char *path, struct err *e)
{
    return err_set(e, CLI_EXIT_FAIL, "GET %s: the server sent more than %d pages", path, CLI_MAX_PAGES);
}

static char *id_path(const char *prefix, const char *ws, const char *coll, const char *id, const char *rest)
{
    char *w = url_encode(ws), *i = id ? url_encode(id) : NULL;
    char *p = xasprintf("%s/%s/%s%s%s%s", prefix, w, coll, i ? "/" : "", i ? i : "", rest ? rest : "");
    free(w);
    free(i);
    return p;
}

char *cli__ds_path(const struct cli *c, const char *batch, const char *rest)
{
    return id_path("/data-staging/v1/external", c->workspace, "batches", batch, rest);
}

char *cli__bp_path(const struct cli *c, const char *job, const char *rest)
{
    return id_path("/batch-processing/v1/external", c->workspace, "jobs", job, rest);
}

char *cli__wf_path(const struct cli *c, const char *wf)
{
    return id_path("/workflows/v1/external", c->workspace, "workflows", wf, NULL);
}

int cli__connect(struct cli *c)
{
    struct err e = ERR_INIT;
    json_t *j = NULL;

    if (!c->key || !*c->key) {
        cli__fail("no API key: give --api-key KEY or set VBATCH_API_KEY");
        return CLI_EXIT_USAGE;
    }
    if (!c->server_opt || !*c->server_opt) {
        cli__fail("--server needs a URL such as " CLI_DEFAULT_SERVER);
        return CLI_EXIT_USAGE;
    }
    if (!str_has_prefix(c->server_opt, "http://") && !str_has_prefix(c->server_opt, "https://")) {
        cli__fail("--server needs an http:// or https:// URL, not '%s'", c->server_opt);
        return CLI_EXIT_USAGE;
    }
    /* our copy, without trailing slashes */
    char *s = xstrdup(c->server_opt);
    for (size_t n = strlen(s); n > 0 && s[n - 1] == '/'; n--)
        s[n - 1] = 0;
    c->server = s;
    if (c->ws_opt) {
        if (!id_valid(c->ws_opt, 64)) {
            cli__fail("bad workspace name '%s' (lower-case letters, digits, '-' and '_')", c->ws_opt);
            return CLI_EXIT_USAGE;
        }
        c->workspace = xstrdup(c->ws_opt);
        return 0;
    }
    if (cli__call(c, "GET", "/", NULL, NULL, 0, &j, NULL, &e) != 0) {
        cli__fail("%s", e.msg);
        return CLI_EXIT_FAIL;
    }
    const char *ws = cli__str(j, "workspace", NULL);
    if (!ws || !id_valid(ws, 64)) {
        cli__fail("GET /: the answer names no workspace (is %s a vbatch server?)", c->server);
        json_decref(j);
        return CLI_EXIT_FAIL;
    }
    c->workspace = xstrdup(ws);
    json_decref(j);
    return 0;
}
