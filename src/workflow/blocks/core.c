/*
 * blocks/core.c — flow control (continue_if, switch_case) and formatters
 * (property_definition, expression, first_non_empty_or_default,
 * string_template, csv_formatter, json_parser).
 *
 * csv_formatter follows Roboflow's batch behaviour: one CSV for the whole
 * batch of a run, emitted on the last element, None elsewhere; cells are
 * written the way pandas' to_csv writes them (quoted only when needed) and
 * strings that could start a spreadsheet formula get a "'" prefix.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, flags, fn, check)                                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,      \
                                        ARRAY_LEN(outs), 0, flags, NULL, fn, check}

/* A field that is a dict of values (selector dict) or a JSON object, as a
 * WF_V_DICT value (new ref). */
static struct wf_value *as_dict(const struct wf_value *v)
{
    struct wf_value *d;
    const char *k;
    json_t *e;
    if (v->type == WF_V_DICT)
        return wf_value_ref((struct wf_value *)v);
    d = wf_value_dict_new();
    if (v->type == WF_V_JSON && json_is_object(v->json))
        json_object_foreach(v->json, k, e) wf_value_dict_add(d, k, wf_value_json(json_deep_copy(e)));
    return d;
}

/* Apply per-key operations (a dict name -> operations list) to a dict. */
static int apply_data_ops(struct wf_call *c, const struct wf_value *data, const json_t *ops_by_key,
                          struct wf_value **out, const char *field)
{
    char err[512];
    struct wf_value *d = as_dict(data), *res = wf_value_dict_new();
    for (size_t k = 0; k < d->n; k++) {
        const json_t *ops = json_object_get(ops_by_key, d->keys[k]);
        struct wf_value *v = NULL;
        struct wf_ql_ctx cx = {.params = d, .err = err, .errlen = sizeof err};
        if (!ops) {
            wf_value_dict_add(res, d->keys[k], wf_value_ref(d->items[k]));
            continue;
        }
        if (wf__ql_apply(&cx, ops, d->items[k], &v) < 0) {
            int rc = wf_call_fail(c, "field '%s': key '%s': %s", field, d->keys[k], err);
            wf_value_unref(d);
            wf_value_unref(res);
            return rc;
        }
        wf_value_dict_add(res, d->keys[k], v);
    }
    wf_value_unref(d);
    *out = res;
    return 0;
}

/* ---- continue_if -------------------------------------------------------------------------- */
static int continue_if_run(struct wf_call *c)
{
    char err[512];
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct wf_value *params = as_dict(wf_arg(c, i, "evaluation_parameters"));
        struct wf_ql_ctx cx = {.params = params, .err = err, .errlen = sizeof err};
        bool ok = false;
        int rc = wf__ql_eval(&cx, wf_arg_json(c, i, "condition_statement"), &ok);
        wf_value_unref(params);
        if (rc < 0)
            return wf_call_fail(c, "field 'condition_statement': %s", err);
        if (ok) {
            const json_t *next = wf_arg_json(c, i, "next_steps");
            size_t k;
            const json_t *s;
            json_array_foreach(next, k, s) {
                const char *name = json_string_value(s);
                wf_out_next_steps(c, i, &name, 1);
            }
        }
    }
    return 0;
}

static int continue_if_check(const json_t *step, char *err, size_t errlen)
{
    char sub[256];
    if (wf__ql_check_stmt(json_object_get(step, "condition_statement"), 0, sub, sizeof sub) < 0) {
        wf__errf(err, errlen, "field 'condition_statement': %s", sub);
        return ERR_INVALID;
    }
    if (!json_is_array(json_object_get(step, "next_steps"))) {
        wf__errf(err, errlen, "field 'next_steps': expected a list of step selectors");
        return ERR_INVALID;
    }
    return 0;
}

static const struct wf_field continue_if_fields[] = {
    {"condition_statement", NULL, WF_FT_DICT, NULL, 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"evaluation_parameters", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"next_steps", NULL, WF_FT_LIST, NULL, 0, WF_F_STEP_SELECTORS, NULL},
    {"stop_delay", NULL, WF_FT_FLOAT, "0", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output no_outs[1] = {{NULL, 0}};
static const struct wf_block continue_if = {
    (const char *const[]){"roboflow_core/continue_if@v1", "ContinueIf", NULL},
    continue_if_fields, ARRAY_LEN(continue_if_fields), no_outs, 0, 0, WF_BLOCK_FLOW_CONTROL, NULL,
    continue_if_run, continue_if_check};

/* ---- switch_case --------------------------------------------------------------------------- */
static int switch_case_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_value *v = wf_arg(c, i, "value");
        const json_t *cases = wf_arg_json(c, i, "cases");
        bool ci = wf_arg_bool(c, i, "case_insensitive", false);
        json_t *vj = wf_value_to_json(v, false);
        char *sv = wf__py_str(vj); /* cases are matched against str(value) */
        const json_t *targets = NULL;
        const char *k;
        json_t *t;
        json_decref(vj);
        json_object_foreach((json_t *)cases, k, t) {
            if (sv && (ci ? !strcasecmp(k, sv) : !strcmp(k, sv))) {
                targets = t;
                break;
            }
        }
        free(sv);
        if (!targets)
            targets = wf_arg_json(c, i, "default_next_steps");
        if (json_is_string(targets)) {
            const char *name = json_string_value(targets);
            wf_out_next_steps(c, i, &name, 1);
        } else {
            size_t n;
            const json_t *s;
            json_array_foreach(targets, n, s) {
                const char *name = json_string_value(s);
                if (name)
                    wf_out_next_steps(c, i, &name, 1);
            }
        }
    }
    return 0;
}

static const struct wf_field switch_case_fields[] = {
    {"value", NULL, WF_FT_ANY, NULL, 0, 0, NULL},
    {"cases", NULL, WF_FT_DICT, "{}", 0, WF_F_STEP_SELECTORS, NULL},
    {"case_insensitive", NULL, WF_FT_BOOL, "false", 0, WF_F_NO_SELECTOR, NULL},
    {"default_next_steps", NULL, WF_FT_LIST, "[]", 0, WF_F_STEP_SELECTORS, NULL},
};
static const struct wf_block switch_case = {
    (const char *const[]){"roboflow_core/switch_case@v1", "SwitchCase", NULL},
    switch_case_fields, ARRAY_LEN(switch_case_fields), no_outs, 0, 0, WF_BLOCK_FLOW_CONTROL, NULL,
    switch_case_run, NULL};

/* ---- property_definition ------------------------------------------------------------------------ */
static int property_run(struct wf_call *c)
{
    char err[512];
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct wf_value *out = NULL;
        struct wf_ql_ctx cx = {.err = err, .errlen = sizeof err};
        if (wf__ql_apply(&cx, wf_arg_json(c, i, "operations"),
                         (struct wf_value *)wf_arg(c, i, "data"), &out) < 0)
            return wf_call_fail(c, "field 'operations': %s", err);
        wf_out_set(c, i, "output", out);
    }
    return 0;
}

static int property_check(const json_t *step, char *err, size_t errlen)
{
    char sub[256];
    if (wf__ql_check_ops(json_object_get(step, "operations"), sub, sizeof sub) < 0) {
        wf__errf(err, errlen, "field 'operations': %s", sub);
        return ERR_INVALID;
    }
    return 0;
}

static const struct wf_field property_fields[] = {
    {"data", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"operations", NULL, WF_FT_LIST, NULL, 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output output_any[] = {{"output", 0}};
TYPES(property, "roboflow_core/property_definition@v1", "PropertyDefinition",
      "PropertyExtraction");
BLOCK(property, property_fields, output_any, 0, property_run, property_check);

/* ---- first_non_empty_or_default -------------------------------------------------------------------- */
static int first_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_value *d = wf_arg(c, i, "data");
        struct wf_value *out = NULL;
        if (d->type == WF_V_LIST) {
            for (size_t k = 0; k < d->n && !out; k++)
                if (!wf_value_is_null(d->items[k]))
                    out = wf_value_ref(d->items[k]);
        } else if (d->type == WF_V_JSON && json_is_array(d->json)) {
            size_t k;
            json_t *e;
            json_array_foreach(d->json, k, e) {
                if (!json_is_null(e)) {
                    out = wf_value_json(json_deep_copy(e));
                    break;
                }
            }
        }
        if (!out)
            out = wf_value_ref((struct wf_value *)wf_arg(c, i, "default"));
        wf_out_set(c, i, "output", out);
    }
    return 0;
}

static const struct wf_field first_fields[] = {
    {"data", NULL, WF_FT_LIST, NULL, 0, WF_F_SELECTOR_LIST, NULL},
    {"default", NULL, WF_FT_ANY, "null", 0, WF_F_NULLABLE, NULL},
};
TYPES(first, "roboflow_core/first_non_empty_or_default@v1", "FirstNonEmptyOrDefault");
BLOCK(first, first_fields, output_any, WF_BLOCK_ACCEPTS_EMPTY, first_run, NULL);


/* data_operations / columns_operations: a dict of operation chains */
static int check_ops_dict(const json_t *step, const char *field, char *err, size_t errlen)
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

static int check_case_result(const json_t *r, const char *what, char *err, size_t errlen)
{
    const char *t = json_string_value(json_object_get(r, "type"));
    char sub[256];
    if (t && !strcmp(t, "StaticCaseResult") && json_object_get(r, "value"))
        return 0;
    if (t && !strcmp(t, "DynamicCaseResult") &&
        json_is_string(json_object_get(r, "parameter_name"))) {
        const json_t *ops = json_object_get(r, "operations");
        if (ops && wf__ql_check_ops(ops, sub, sizeof sub) < 0) {
            wf__errf(err, errlen, "field 'switch': %s: %s", what, sub);
            return ERR_INVALID;
        }
        return 0;
    }
    wf__errf(err, errlen, "field 'switch': %s: expected a StaticCaseResult with 'value' or a "
                          "DynamicCaseResult with 'parameter_name'", what);
    return ERR_INVALID;
}

static int expression_check(const json_t *step, char *err, size_t errlen)
{
    const json_t *sw = json_object_get(step, "switch");
    const json_t *cases = json_object_get(sw, "cases");
    size_t i;
    const json_t *c;
    char sub[256], what[64];
    int rc;
    if ((rc = check_ops_dict(step, "data_operations", err, errlen)) < 0)
        return rc;
    if (!json_is_array(cases)) {
        wf__errf(err, errlen, "field 'switch': expected a CasesDefinition with a 'cases' list");
        return ERR_INVALID;
    }
    json_array_foreach(cases, i, c) {
        if (wf__ql_check_stmt(json_object_get(c, "condition"), 0, sub, sizeof sub) < 0) {
            wf__errf(err, errlen, "field 'switch': case #%zu: condition: %s", i, sub);
            return ERR_INVALID;
        }
        snprintf(what, sizeof what, "case #%zu result", i);
        if ((rc = check_case_result(json_object_get(c, "result"), what, err, errlen)) < 0)
            return rc;
    }
    return check_case_result(json_object_get(sw, "default"), "default", err, errlen);
}

static int template_check(const json_t *step, char *err, size_t errlen)
{
    return check_ops_dict(step, "data_operations", err, errlen);
}

/* ---- expression ------------------------------------------------------------------------------------- */
static int case_result(struct wf_call *c, const json_t *res, const struct wf_value *params,
                       struct wf_value **out)
{
    const char *type = json_string_value(json_object_get(res, "type"));
    char err[512];
    if (type && !strcmp(type, "DynamicCaseResult")) {
        const char *pn = json_string_value(json_object_get(res, "parameter_name"));
        struct wf_value *p = wf_value_dict_get(params, pn ? pn : "");
        struct wf_ql_ctx cx = {.params = params, .err = err, .errlen = sizeof err};
        if (!p)
            return wf_call_fail(c, "field 'switch': parameter '%s' is not in 'data'", pn ? pn : "");
        if (wf__ql_apply(&cx, json_object_get(res, "operations"), p, out) < 0)
            return wf_call_fail(c, "field 'switch': %s", err);
        return 0;
    }
    *out = wf_value_json(json_deep_copy(json_object_get(res, "value")));
    return 0;
}

static int expression_run(struct wf_call *c)
{
    char err[512];
    for (size_t i = 0; i < wf_call_n(c); i++) {
        struct wf_value *params = NULL, *out = NULL;
        const json_t *sw = wf_arg_json(c, i, "switch");
        const json_t *cases = json_object_get(sw, "cases");
        size_t k;
        const json_t *cs;
        int rc = 0;
        if (apply_data_ops(c, wf_arg(c, i, "data"), wf_arg_json(c, i, "data_operations"), &params,
                           "data_operations") < 0)
            return ERR_INVALID;
        json_array_foreach(cases, k, cs) {
            struct wf_ql_ctx cx = {.params = params, .err = err, .errlen = sizeof err};
            bool hit = false;
            if (wf__ql_eval(&cx, json_object_get(cs, "condition"), &hit) < 0) {
                wf_value_unref(params);
                return wf_call_fail(c, "field 'switch': case #%zu: %s", k, err);
            }
            if (hit) {
                rc = case_result(c, json_object_get(cs, "result"), params, &out);
                break;
            }
        }
        if (rc == 0 && !out)
            rc = case_result(c, json_object_get(sw, "default"), params, &out);
        wf_value_unref(params);
        if (rc < 0)
            return rc;
        wf_out_set(c, i, "output", out);
    }
    return 0;
}

static const struct wf_field expression_fields[] = {
    {"data", NULL, WF_FT_DICT, NULL, 0, WF_F_SELECTOR_DICT, NULL},
    {"data_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"switch", NULL, WF_FT_DICT, NULL, 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
};
TYPES(expression, "roboflow_core/expression@v1", "Expression");
BLOCK(expression, expression_fields, output_any, 0, expression_run, expression_check);

/* ---- string_template ---------------------------------------------------------------------------------- */
static char *value_str(const struct wf_value *v)
{
    json_t *j = wf_value_to_json(v, false);
    char *s = wf__py_str(j);
    json_decref(j);
    return s;
}

static int template_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *t = wf_arg_str(c, i, "template");
        struct wf_value *params = NULL;
        struct buf b = BUF_INIT;
        if (!t)
            return wf_call_fail(c, "field 'template': expected a string");
        if (apply_data_ops(c, wf_arg(c, i, "data"), wf_arg_json(c, i, "data_operations"), &params,
                           "data_operations") < 0)
            return ERR_INVALID;
        buf_init(&b, 1u << 20);
        while (*t) {
            const char *open = strstr(t, "{{");
            const char *p, *close;
            char name[128];
            size_t nl = 0;
            struct wf_value *v;
            if (!open) {
                buf_puts(&b, t);
                break;
            }
            buf_append(&b, t, (size_t)(open - t));
            p = open + 2;
            while (isspace((unsigned char)*p))
                p++;
            close = strstr(p, "}}");
            if (str_has_prefix(p, "$parameters.") && close) {
                p += 12;
                while ((isalnum((unsigned char)p[nl]) || p[nl] == '_') && nl < sizeof name - 1)
                    nl++;
                memcpy(name, p, nl);
                name[nl] = 0;
                const char *q = p + nl;
                while (isspace((unsigned char)*q))
                    q++;
                v = q == close ? wf_value_dict_get(params, name) : NULL;
                if (v) {
                    char *s = value_str(v);
                    buf_puts(&b, s);
                    free(s);
                    t = close + 2;
                    continue;
                }
            }
            buf_append(&b, open, 2);
            t = open + 2;
        }
        wf_value_unref(params);
        wf_out_json(c, i, "output", json_string(b.data ? b.data : ""));
        buf_release(&b);
    }
    return 0;
}

static const struct wf_field template_fields[] = {
    {"template", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"data", NULL, WF_FT_DICT, "{}", 0, WF_F_SELECTOR_DICT, NULL},
    {"data_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output string_out[] = {{"output", WF_K_STRING}};
TYPES(template, "roboflow_core/string_template@v1");
BLOCK(template, template_fields, string_out, 0, template_run, template_check);

/* ---- csv_formatter ------------------------------------------------------------------------------------ */
static void csv_cell(struct buf *b, const struct wf_value *v)
{
    json_t *j = wf_value_to_json(v, false);
    char *s = NULL;
    bool quote = false;
    if (json_is_null(j)) {
        json_decref(j);
        return;
    }
    if (json_is_string(j) && json_string_value(j)[0] &&
        strchr("=+-@\t\r", json_string_value(j)[0]))
        s = xasprintf("'%s", json_string_value(j)); /* CSV injection guard */
    else
        s = wf__py_str(j); /* pandas writes str(value) */
    json_decref(j);
    for (const char *p = s; *p; p++)
        if (*p == ',' || *p == '"' || *p == '\n' || *p == '\r')
            quote = true;
    if (quote) {
        buf_puts(b, "\"");
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                buf_puts(b, "\"");
            buf_append(b, p, 1);
        }
        buf_puts(b, "\"");
    } else {
        buf_puts(b, s);
    }
    free(s);
}

static int csv_run(struct wf_call *c)
{
    size_t n = wf_call_n(c);
    struct buf b = BUF_INIT;
    struct wf_value **rows = xcalloc(n + 1, sizeof *rows);
    char ts[64];
    int rc = 0;
    struct timespec now;
    struct tm tm;

    buf_init(&b, 64u << 20);
    /* datetime.now(tz=timezone.utc).isoformat() */
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000);
    for (size_t i = 0; i < n; i++)
        if (apply_data_ops(c, wf_arg(c, i, "columns_data"), wf_arg_json(c, i, "columns_operations"),
                           &rows[i], "columns_operations") < 0) {
            rc = ERR_INVALID;
            goto out;
        }
    if (n) {
        for (size_t k = 0; k < rows[0]->n; k++) {
            buf_puts(&b, rows[0]->keys[k]);
            buf_puts(&b, ",");
        }
        buf_puts(&b, "timestamp\n");
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < rows[i]->n; k++) {
                csv_cell(&b, rows[i]->items[k]);
                buf_puts(&b, ",");
            }
            buf_puts(&b, ts);
            buf_puts(&b, "\n");
        }
        if (b.len >= b.limit && b.limit) {
            rc = wf_call_fail(c, "CSV content larger than the limit");
            goto out;
        }
        wf_out_json(c, n - 1, "csv_content", json_string(b.data ? b.data : ""));
    }
out:
    for (size_t i = 0; i < n; i++)
        wf_value_unref(rows[i]);
    free(rows);
    buf_release(&b);
    return rc;
}

static int csv_check(const json_t *step, char *err, size_t errlen)
{
    int rc = check_ops_dict(step, "columns_operations", err, errlen);
    if (rc < 0)
        return rc;
    if (json_object_get(json_object_get(step, "columns_data"), "timestamp") ||
        json_object_get(json_object_get(step, "columns_operations"), "timestamp")) {
        wf__errf(err, errlen, "field 'columns_data': the column name 'timestamp' is reserved");
        return ERR_INVALID;
    }
    return 0;
}

static const struct wf_field csv_fields[] = {
    {"columns_data", NULL, WF_FT_DICT, NULL, 0, WF_F_SELECTOR_DICT, NULL},
    {"columns_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output csv_outs[] = {{"csv_content", WF_K_STRING}};
TYPES(csv, "roboflow_core/csv_formatter@v1");
BLOCK(csv, csv_fields, csv_outs, 0, csv_run, csv_check);

/* ---- json_parser ----------------------------------------------------------------------------------------- */
static int json_parser_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *raw = wf_arg_str(c, i, "raw_json");
        const json_t *fields = wf_arg_json(c, i, "expected_fields");
        const char *start = raw, *end = raw ? raw + strlen(raw) : NULL;
        json_t *parsed = NULL;
        size_t k;
        const json_t *f;
        if (raw) {
            const char *fence = strstr(raw, "```json");
            if (fence) {
                const char *close = strstr(fence + 7, "```");
                if (close) {
                    start = fence + 7;
                    end = close;
                }
            }
            /* a model's text: nested too deep counts as not parsed */
            (void)json_parse_outside(start, (size_t)(end - start), JSON_DECODE_ANY, &parsed, NULL, 0);
        }
        /* error when the text is not a JSON object or lacks an expected field */
        bool error = !json_is_object(parsed);
        json_array_foreach(fields, k, f) {
            const json_t *v = json_is_object(parsed) ? json_object_get(parsed, json_string_value(f))
                                                     : NULL;
            error |= !v;
            wf_out_json(c, i, json_string_value(f), v ? json_deep_copy(v) : NULL);
        }
        wf_out_json(c, i, "error_status", json_boolean(error));
        json_decref(parsed);
    }
    return 0;
}

static const struct wf_field json_parser_fields[] = {
    {"raw_json", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"expected_fields", NULL, WF_FT_LIST, NULL, 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output json_parser_outs[] = {{"error_status", WF_K_BOOL}};
static const struct wf_block json_parser = {
    (const char *const[]){"roboflow_core/json_parser@v1", NULL},
    json_parser_fields, ARRAY_LEN(json_parser_fields), json_parser_outs,
    ARRAY_LEN(json_parser_outs), 0, WF_BLOCK_DYN_OUTPUTS, "expected_fields", json_parser_run, NULL};

const struct wf_block *const wf_blocks_core[] = {
    &continue_if, &switch_case, &property, &first, &expression, &template, &csv, &json_parser,
    NULL,
};
