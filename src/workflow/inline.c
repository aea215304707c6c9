/*
 * inline.c — roboflow_core/inner_workflow@v1: a nested definition expanded
 * into ordinary steps before compiling, as Roboflow's compiler does
 * (roboflow/inference execution_engine/v1/inner_workflow/inline.py and
 * compiler_bridge.py, read, not copied).
 *
 * Innermost first, each inner_workflow step is replaced by the steps of
 * its `workflow_definition`:
 *  - child steps are renamed "<inner>__<child>" (then "__2", "__3", ... when
 *    the name is taken at the parent's level);
 *  - in every string of the child steps, "$steps.<child>." becomes
 *    "$steps.<new>." and a bare "$steps.<child>" (not followed by "." or
 *    "__") becomes "$steps.<new>", longer child names first; then a string
 *    that is exactly "$inputs.<name>" becomes the parent's binding (or the
 *    child's default_value for an unbound parameter), and "$inputs.<name>"
 *    inside a longer string is replaced by the binding's text;
 *  - in the whole parent, "$steps.<inner>.<output>" (each JsonField output
 *    of the child) becomes the child output's rewritten selector, and a
 *    bare "$steps.<inner>" the first inlined step.
 * parameter_bindings must name child inputs only and bind every input
 * except parameters with a non-null default_value (Roboflow's messages).
 * Difference: Roboflow turns every binding into str(value), which pydantic
 * then coerces back for typed fields; here a binding that is not a string
 * is substituted as the JSON value itself (and as its compact JSON text
 * inside a longer string).  Saved workflows referenced by
 * workflow_workspace_id / workflow_id need the Roboflow platform and are
 * refused.  Bounds as Roboflow's defaults: nesting depth 4, 32
 * inner_workflow steps in all.
 */
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define INNER_TYPE "roboflow_core/inner_workflow@v1"
#define INNER_MAX_DEPTH 4
#define INNER_MAX_COUNT 32
/* Bytes of strings one expansion may produce (the child's rewritten steps
 * and the patched parent together): substituting a long binding or
 * selector into many references multiplies the definition's size, and
 * nesting multiplies it again per level. */
#define INNER_MAX_BYTES (16u << 20)

/* What is left of INNER_MAX_BYTES in this expansion; over once exceeded. */
struct budget {
    size_t left;
    bool over;
};

/* Charge n bytes of output; false (and over) when they do not fit. */
static bool charge(struct budget *bg, size_t n)
{
    if (bg->over || n > bg->left) {
        bg->over = true;
        return false;
    }
    bg->left -= n;
    return true;
}

static bool is_inner(const json_t *step)
{
    const char *t = json_string_value(json_object_get(step, "type"));
    return t && !strcmp(t, INNER_TYPE);
}

static bool has_inner(const json_t *steps)
{
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s)
        if (is_inner(s))
            return true;
    return false;
}

/* Depth and count of inner_workflow steps below def; <0 on a malformed one. */
static int scan(const json_t *def, int level, int *max_depth, int *count, char *err, size_t errlen)
{
    const json_t *steps = json_object_get(def, "steps");
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s) {
        if (!is_inner(s))
            continue;
        const char *name = json_string_value(json_object_get(s, "name"));
        const json_t *inner = json_object_get(s, "workflow_definition");
        if (++*count > INNER_MAX_COUNT) {
            wf__errf(err, errlen, "definition: more than %d inner_workflow steps", INNER_MAX_COUNT);
            return ERR_LIMIT;
        }
        if (level + 1 > *max_depth)
            *max_depth = level + 1;
        if (*max_depth > INNER_MAX_DEPTH) {
            wf__errf(err, errlen, "step '%s': inner workflow nesting deeper than %d levels",
                     name ? name : "?", INNER_MAX_DEPTH);
            return ERR_LIMIT;
        }
        bool has_def = json_is_object(inner) && json_object_size(inner) > 0;
        const char *ws = json_string_value(json_object_get(s, "workflow_workspace_id"));
        const char *wid = json_string_value(json_object_get(s, "workflow_id"));
        if (!has_def) {
            if (ws && *ws && wid && *wid)
                wf__errf(err, errlen, "step '%s': field 'workflow_id': loading the saved workflow '%s/%s' "
                         "needs the Roboflow platform and is refused: give the definition in "
                         "'workflow_definition'", name ? name : "?", ws, wid);
            else
                wf__errf(err, errlen, "step '%s': inner_workflow requires a non-empty `workflow_definition` "
                         "object or both `workflow_workspace_id` and `workflow_id`.", name ? name : "?");
            return ws && *ws && wid && *wid ? ERR_UNSUPPORTED : ERR_INVALID;
        }
        if (ws && *ws && wid && *wid) {
            wf__errf(err, errlen, "step '%s': Provide either `workflow_definition` or workflow reference "
                     "fields (`workflow_workspace_id` and `workflow_id`), not both.", name ? name : "?");
            return ERR_INVALID;
        }
        if (!json_is_array(json_object_get(inner, "steps")) || !json_is_array(json_object_get(inner, "inputs"))) {
            wf__errf(err, errlen, "step '%s': field 'workflow_definition': needs 'inputs' and 'steps' lists",
                     name ? name : "?");
            return ERR_INVALID;
        }
        int rc = scan(inner, level + 1, max_depth, count, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- string rewriting ----------------------------------------------------------------- */

/* Replace every occurrence of tok by rep (str.replace); "" with bg->over
 * set when the result would be longer than bg->left. */
static char *replace_all(const char *s, const char *tok, const char *rep, struct budget *bg)
{
    struct buf b;
    buf_init(&b, bg->left ? bg->left : 1);
    size_t tl = strlen(tok);
    const char *p;
    int rc = 0;
    while (rc == 0 && (p = strstr(s, tok)) != NULL) {
        rc = buf_append(&b, s, (size_t)(p - s));
        if (rc == 0)
            rc = buf_puts(&b, rep);
        s = p + tl;
    }
    if (rc == 0)
        rc = buf_puts(&b, s);
    if (rc < 0 || bg->over) {
        bg->over = true;
        buf_release(&b);
        return xstrdup("");
    }
    char *out = buf_detach(&b, NULL);
    return out ? out : xstrdup("");
}

/* re.sub(r"\$steps\.<old>(?!\.)(?!__)", "$steps.<new>", s) */
static char *replace_bare(const char *s, const char *old, const char *new_name, struct budget *bg)
{
    char *tok = xasprintf("$steps.%s", old);
    struct buf b;
    buf_init(&b, bg->left ? bg->left : 1);
    size_t tl = strlen(tok);
    const char *p;
    int rc = 0;
    while (rc == 0 && (p = strstr(s, tok)) != NULL) {
        const char *after = p + tl;
        rc = buf_append(&b, s, (size_t)(after - s) - tl);
        if (rc == 0 && *after != '.' && strncmp(after, "__", 2) != 0) {
            rc = buf_puts(&b, "$steps.");
            if (rc == 0)
                rc = buf_puts(&b, new_name);
        } else if (rc == 0) {
            rc = buf_puts(&b, tok);
        }
        s = after;
    }
    if (rc == 0)
        rc = buf_puts(&b, s);
    free(tok);
    if (rc < 0 || bg->over) {
        bg->over = true;
        buf_release(&b);
        return xstrdup("");
    }
    char *out = buf_detach(&b, NULL);
    return out ? out : xstrdup("");
}

struct pair {
    const char *old, *new_name; /* new_name owned by the caller's table */
};

static int cmp_pair_len(const void *a, const void *b)
{
    size_t la = strlen(((const struct pair *)a)->old), lb = strlen(((const struct pair *)b)->old);
    return la < lb ? 1 : la > lb ? -1 : 0; /* longest first; qsort is not stable, ties keep no order */
}

struct rewrite {
    struct pair *steps; /* sorted longest old name first */
    size_t nsteps;
    const json_t *bindings; /* object */
    const json_t *defaults; /* object */
    const char **keys;      /* binding keys, longest first */
    size_t nkeys;
    struct budget *bg;
};

static bool input_ref(const char *s, const char **name)
{
    if (strncmp(s, "$inputs.", 8) != 0 || !s[8])
        return false;
    for (const char *p = s + 8; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    *name = s + 8;
    return true;
}

static char *text_of(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : xstrdup("");
}

/* _rewrite_inner_scalar: a new value for the string leaf s. */
static json_t *rewrite_leaf(const char *s, const struct rewrite *rw)
{
    if (rw->bg->over)
        return json_string("");
    char *cur = xstrdup(s);
    for (size_t k = 0; k < rw->nsteps; k++) {
        char *tok = xasprintf("$steps.%s.", rw->steps[k].old), *rep = xasprintf("$steps.%s.", rw->steps[k].new_name);
        char *n = replace_all(cur, tok, rep, rw->bg);
        free(tok), free(rep), free(cur);
        cur = n;
    }
    for (size_t k = 0; k < rw->nsteps; k++) {
        char *n = replace_bare(cur, rw->steps[k].old, rw->steps[k].new_name, rw->bg);
        free(cur);
        cur = n;
    }
    const char *name;
    if (input_ref(cur, &name)) {
        const json_t *v = json_object_get(rw->bindings, name);
        if (!v)
            v = json_object_get(rw->defaults, name);
        if (v) {
            free(cur);
            char *t = text_of(v); /* its size, charged as text */
            bool ok = charge(rw->bg, strlen(t));
            free(t);
            return ok ? json_deep_copy(v) : json_string("");
        }
    }
    for (size_t k = 0; k < rw->nkeys; k++) {
        char *tok = xasprintf("$inputs.%s", rw->keys[k]);
        if (!strstr(cur, tok)) { /* the binding's text only when used */
            free(tok);
            continue;
        }
        char *rep = text_of(json_object_get(rw->bindings, rw->keys[k]));
        char *n = replace_all(cur, tok, rep, rw->bg);
        free(tok), free(rep), free(cur);
        cur = n;
    }
    charge(rw->bg, strlen(cur));
    json_t *out = json_string(rw->bg->over ? "" : cur);
    free(cur);
    return out ? out : json_string("");
}

/* A deep copy of v with fn applied to every string leaf (dict keys untouched). */
static json_t *map_strings(const json_t *v, json_t *(*fn)(const char *, const void *), const void *ud)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
            json_object_set_new(o, k, map_strings(e, fn, ud));
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            json_array_append_new(a, map_strings(e, fn, ud));
        return a;
    }
    if (json_is_string(v))
        return fn(json_string_value(v), ud);
    return json_deep_copy(v);
}

static json_t *rewrite_fn(const char *s, const void *ud)
{
    return rewrite_leaf(s, ud);
}

struct patch {
    const char *inner;
    const json_t *outs; /* output name -> selector string */
    const char **names; /* output names, longest first */
    size_t nnames;
    const char *first;
    struct budget *bg;
};

static json_t *patch_fn(const char *s, const void *ud)
{
    const struct patch *p = ud;
    if (p->bg->over)
        return json_string("");
    char *cur = xstrdup(s);
    for (size_t k = 0; k < p->nnames; k++) {
        char *tok = xasprintf("$steps.%s.%s", p->inner, p->names[k]);
        char *n = replace_all(cur, tok, json_string_value(json_object_get(p->outs, p->names[k])), p->bg);
        free(tok), free(cur);
        cur = n;
    }
    char *n = replace_bare(cur, p->inner, p->first, p->bg);
    free(cur);
    charge(p->bg, strlen(n));
    json_t *out = json_string(p->bg->over ? "" : n);
    free(n);
    return out ? out : json_string("");
}

static int cmp_len_desc(const void *a, const void *b)
{
    size_t la = strlen(*(const char *const *)a), lb = strlen(*(const char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

static bool name_used(const json_t *steps, size_t skip, const char *name, char **extra, size_t nextra)
{
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s) {
        const char *n = json_string_value(json_object_get(s, "name"));
        if (i != skip && n && !strcmp(n, name))
            return true;
    }
    for (size_t k = 0; k < nextra; k++)
        if (!strcmp(extra[k], name))
            return true;
    return false;
}

/* Inline the leaf inner_workflow step at index idx of wf (a definition). */
static int expand_leaf(json_t *wf, size_t idx, char *err, size_t errlen)
{
    json_t *steps = json_object_get(wf, "steps");
    json_t *step = json_array_get(steps, idx);
    const char *inner_name = json_string_value(json_object_get(step, "name"));
    const json_t *inner = json_object_get(step, "workflow_definition");
    const json_t *bindings = json_object_get(step, "parameter_bindings");
    const json_t *inputs = json_object_get(inner, "inputs"), *csteps = json_object_get(inner, "steps");
    int rc = ERR_INVALID;
    if (!inner_name || !*inner_name) {
        wf__errf(err, errlen, "inner_workflow step requires a non-empty string `name`.");
        return ERR_INVALID;
    }
    if (bindings && !json_is_object(bindings)) {
        wf__errf(err, errlen, "step '%s': inner_workflow step requires `parameter_bindings` object.", inner_name);
        return ERR_INVALID;
    }
    /* compiler_bridge: names known to the child, required ones bound */
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)bindings, k, v) {
        bool known = false;
        size_t i;
        json_t *in;
        json_array_foreach(inputs, i, in) {
            const char *n = json_string_value(json_object_get(in, "name"));
            if (n && !strcmp(n, k))
                known = true;
        }
        if (!known) {
            wf__errf(err, errlen, "step '%s': parameter_bindings references unknown child workflow input '%s'",
                     inner_name, k);
            return ERR_INVALID;
        }
    }
    json_t *defaults = json_object();
    size_t i;
    json_t *in;
    json_array_foreach(inputs, i, in) {
        const char *n = json_string_value(json_object_get(in, "name"));
        const char *t = json_string_value(json_object_get(in, "type"));
        if (!n || !t) {
            wf__errf(err, errlen, "step '%s': child workflow input #%zu needs a 'type' and a 'name'", inner_name, i);
            json_decref(defaults);
            return ERR_INVALID;
        }
        if (json_object_get(bindings, n))
            continue;
        const json_t *dv = json_object_get(in, "default_value");
        bool param = !strcmp(t, "WorkflowParameter") || !strcmp(t, "InferenceParameter");
        if (param && dv && !json_is_null(dv)) {
            json_object_set(defaults, n, (json_t *)dv);
            continue;
        }
        wf__errf(err, errlen, "step '%s': is missing parameter_bindings for required child workflow input "
                 "'%s' (omitting a binding is allowed only for WorkflowParameter / InferenceParameter "
                 "inputs with a non-null default_value)", inner_name, n);
        json_decref(defaults);
        return ERR_INVALID;
    }
    size_t nc = json_array_size(csteps);
    if (nc == 0) {
        wf__errf(err, errlen, "step '%s': inner_workflow step `%s` has no steps to inline.", inner_name, inner_name);
        json_decref(defaults);
        return ERR_INVALID;
    }
    char **newn = xcalloc(nc, sizeof *newn);
    struct pair *pairs = xcalloc(nc, sizeof *pairs);
    const char **keys = xcalloc(json_object_size(bindings) + 1, sizeof *keys);
    json_t *inlined = json_array(), *outs = json_object(), *patched = NULL;
    const char **onames = NULL;
    size_t nk = 0, no = 0;
    for (size_t c = 0; c < nc; c++) {
        const json_t *cs = json_array_get(csteps, c);
        const char *old = json_string_value(json_object_get(cs, "name"));
        if (!json_is_object(cs) || !old || !*old) {
            wf__errf(err, errlen, "step '%s': child step #%zu must be an object with a non-empty string `name`",
                     inner_name, c);
            goto out;
        }
        char *cand = xasprintf("%s__%s", inner_name, old);
        for (int suffix = 2; name_used(steps, idx, cand, newn, c); suffix++) {
            free(cand);
            cand = xasprintf("%s__%s__%d", inner_name, old, suffix);
        }
        newn[c] = cand;
        pairs[c] = (struct pair){old, cand};
    }
    struct pair *sorted = xcalloc(nc, sizeof *sorted);
    memcpy(sorted, pairs, nc * sizeof *sorted);
    qsort(sorted, nc, sizeof *sorted, cmp_pair_len);
    json_object_foreach((json_t *)bindings, k, v)
        keys[nk++] = k;
    qsort(keys, nk, sizeof *keys, cmp_len_desc);
    struct budget bg = {INNER_MAX_BYTES, false};
    struct rewrite rw = {sorted, nc, bindings, defaults, keys, nk, &bg};
    for (size_t c = 0; c < nc; c++) {
        json_t *cl = map_strings(json_array_get(csteps, c), rewrite_fn, &rw);
        json_object_set_new(cl, "name", json_string(newn[c]));
        json_array_append_new(inlined, cl);
    }
    const json_t *couts = json_object_get(inner, "outputs");
    json_t *o;
    onames = xcalloc(json_array_size(couts) + 1, sizeof *onames);
    json_array_foreach(couts, i, o) {
        const char *t = json_string_value(json_object_get(o, "type"));
        if (!json_is_object(o) || (t && strcmp(t, "JsonField") != 0))
            continue;
        const char *on = json_string_value(json_object_get(o, "name"));
        const char *sel = json_string_value(json_object_get(o, "selector"));
        if (!on || !sel) {
            wf__errf(err, errlen, "step '%s': child output #%zu: 'name' and 'selector' must be strings", inner_name, i);
            free(sorted);
            goto out;
        }
        json_t *rs = rewrite_leaf(sel, &rw);
        if (!json_is_string(rs)) {
            wf__errf(err, errlen, "step '%s': child output '%s' selector must rewrite to a string selector",
                     inner_name, on);
            json_decref(rs);
            free(sorted);
            goto out;
        }
        if (!json_object_get(outs, on))
            onames[no++] = json_string_value(json_object_get(o, "name"));
        json_object_set_new(outs, on, rs);
    }
    free(sorted);
    qsort(onames, no, sizeof *onames, cmp_len_desc);
    /* patch the parent, then splice the inlined steps in place of the inner step */
    struct patch pt = {inner_name, outs, onames, no, newn[0], &bg};
    char *inner_copy = xstrdup(inner_name);
    pt.inner = inner_copy;
    patched = map_strings(wf, patch_fn, &pt);
    free(inner_copy);
    if (bg.over) {
        wf__errf(err, errlen, "step '%s': inlining the inner workflow makes the definition's text larger "
                 "than %u MiB (bindings or outputs substituted into many references)", inner_name,
                 INNER_MAX_BYTES >> 20);
        rc = ERR_LIMIT;
        goto out;
    }
    json_t *psteps = json_object_get(patched, "steps"), *nsteps = json_array();
    json_t *e;
    json_array_foreach(psteps, i, e) {
        if (i == idx) {
            size_t j;
            json_t *x;
            json_array_foreach(inlined, j, x)
                json_array_append(nsteps, x);
        } else {
            json_array_append(nsteps, e);
        }
    }
    json_object_set_new(patched, "steps", nsteps);
    json_object_update(wf, patched); /* same keys: replaces them */
    rc = 0;
out:
    json_decref(patched);
    json_decref(inlined);
    json_decref(outs);
    json_decref(defaults);
    free(onames);
    free(keys);
    free(pairs);
    for (size_t c = 0; c < nc; c++)
        free(newn[c]);
    free(newn);
    return rc;
}

/* _inline_one_inner_workflow_leaf: 1 when one leaf was expanded somewhere
 * under wf, 0 when wf has no inner_workflow step, <0 on error. */
static int inline_one(json_t *wf, char *err, size_t errlen)
{
    json_t *steps = json_object_get(wf, "steps");
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s) {
        if (!is_inner(s))
            continue;
        json_t *inner = json_object_get(s, "workflow_definition");
        if (has_inner(json_object_get(inner, "steps"))) {
            int rc = inline_one(inner, err, errlen);
            if (rc != 0)
                return rc;
            continue;
        }
        int rc = expand_leaf(wf, i, err, errlen);
        return rc < 0 ? rc : 1;
    }
    return 0;
}

int wf__inline_inner(const json_t *def, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!has_inner(json_object_get(def, "steps")))
        return 0;
    int depth = 0, count = 0, rc;
    if ((rc = scan(def, 0, &depth, &count, err, errlen)) < 0)
        return rc;
    json_t *root = json_deep_copy(def);
    /* each expansion removes one inner_workflow step: at most count rounds */
    for (int round = 0; has_inner(json_object_get(root, "steps")); round++) {
        rc = round < count ? inline_one(root, err, errlen) : 0;
        if (rc <= 0) {
            if (rc == 0)
                wf__errf(err, errlen, "definition: Could not inline inner_workflow steps (unexpected nested "
                         "structure)");
            json_decref(root);
            return rc < 0 ? rc : ERR_INVALID;
        }
    }
    *out = root;
    return 1;
}

/* The block itself: registered so that the type is known (and listed as
 * running); its steps never reach the executor, they are inlined first. */
static int inner_run(struct wf_call *c)
{
    return wf_call_fail(c, "inner_workflow steps are inlined when compiling and never run");
}

static const struct wf_field inner_fields[] = {
    {"workflow_definition", NULL, WF_FT_DICT, "null", 0, WF_F_NO_SELECTOR | WF_F_RAW, NULL},
    {"workflow_workspace_id", NULL, WF_FT_STRING, "null", 0, WF_F_NO_SELECTOR, NULL},
    {"workflow_id", NULL, WF_FT_STRING, "null", 0, WF_F_NO_SELECTOR, NULL},
    {"workflow_version_id", NULL, WF_FT_STRING, "null", 0, WF_F_NO_SELECTOR, NULL},
    {"parameter_bindings", NULL, WF_FT_DICT, NULL, 0, WF_F_RAW, NULL},
};
static const struct wf_block inner_workflow_v1 = {
    (const char *const[]){INNER_TYPE, NULL},
    inner_fields, ARRAY_LEN(inner_fields), NULL, 0, 0, 0, NULL, inner_run, NULL};

const struct wf_block *const wf_blocks_inline[] = {&inner_workflow_v1, NULL};
