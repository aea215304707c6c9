/*
 * compile.c — parse a workflow definition and compile it into an immutable
 * struct wf_workflow that many threads may run at once.
 *
 * Passes, each failing with a message that names the step/input/output and
 * field and says why:
 *   1. inputs: types, unique names, defaults;
 *   2. steps, first pass: type -> block (registry), unique names, output
 *      names (static + dynamic outputs such as json_parser's fields);
 *   3. steps, second pass: every manifest field is bound to a literal
 *      (validated now), a selector (resolved to an input or a step output,
 *      kinds checked), or a list/dict of those; unknown keys are ignored;
 *      flow-control targets ("$steps.x") are collected;
 *   4. the DAG (data edges and control edges) is sorted topologically
 *      (Kahn); a leftover node means a cycle;
 *   5. in that order, every step gets its index space ("lineage" +
 *      dimensionality): the deepest space among its inputs, where all
 *      inputs must lie on one ancestor chain; dimensionality-raising steps
 *      (dynamic_crop, image_slicer) open a new space, WF_F_DIM_UP fields
 *      (stitch, dimension_collapse) lower it by one;
 *   6. outputs: selectors resolved, coordinates_system checked.
 *
 * Index spaces: 0 is "scalar" (parameters, steps fed only by parameters),
 * 1 is the input batch, every further space belongs to the step that
 * created it and has a parent space.  Two inputs of one step are compatible
 * when one's space is an ancestor of (or equal to) the other's; crops of two
 * different crop steps are not.
 */
#include "workflow/wf_int.h"

#include <ctype.h>
#include <string.h>

#define ERRF(...) wf__errf(err, errlen, __VA_ARGS__)

static bool name_ok(const char *s, bool allow_star)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-' || (allow_star && *s == '*')))
            return false;
    return true;
}

/* Names of inputs and steps: Roboflow does not restrict them, but only
 * names matching the selector alphabet can be referenced; anything printable
 * without '.' is accepted. */
static bool decl_name_ok(const char *s)
{
    if (!*s || strlen(s) > 128)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '.' || *s == 0x7f)
            return false;
    return true;
}

static int find_input(const struct wf_workflow *wf, const char *name)
{
    for (size_t i = 0; i < wf->ninputs; i++)
        if (!strcmp(wf->inputs[i].name, name))
            return (int)i;
    return -1;
}

static int find_step(const struct wf_workflow *wf, const char *name)
{
    for (size_t i = 0; i < wf->nsteps; i++)
        if (!strcmp(wf->steps[i].name, name))
            return (int)i;
    return -1;
}

static int find_out(const struct wf_cstep *st, const char *name)
{
    for (size_t i = 0; i < st->nouts; i++)
        if (!strcmp(st->outs[i], name))
            return (int)i;
    return -1;
}

/* Parse "$inputs.x", "$steps.s.o", "$steps.s.*" into *sel.  ctx names the
 * place for messages ("step 'a': field 'b'"). */
static int parse_selector(const struct wf_workflow *wf, const char *s, bool allow_all,
                          struct wf_sel *sel, const char *ctx, char *err, size_t errlen)
{
    char buf[256];
    char *dot;
    int idx, o;

    if (strlen(s) >= sizeof buf) {
        ERRF("%s: selector too long", ctx);
        return ERR_LIMIT;
    }
    if (str_has_prefix(s, "$inputs.")) {
        const char *n = s + 8;
        if (!name_ok(n, false)) {
            ERRF("%s: malformed selector '%s'", ctx, s);
            return ERR_INVALID;
        }
        idx = find_input(wf, n);
        if (idx < 0) {
            ERRF("%s: selector '%s' refers to unknown input '%s'", ctx, s, n);
            return ERR_INVALID;
        }
        *sel = (struct wf_sel){WF_SEL_INPUT, idx, -1};
        return 0;
    }
    if (!str_has_prefix(s, "$steps.")) {
        ERRF("%s: malformed selector '%s' (expected $inputs.<name> or $steps.<step>.<output>)",
             ctx, s);
        return ERR_INVALID;
    }
    snprintf(buf, sizeof buf, "%s", s + 7);
    dot = strchr(buf, '.');
    if (!dot || !name_ok(dot + 1, true) || (strchr(dot + 1, '*') && strcmp(dot + 1, "*"))) {
        ERRF("%s: malformed selector '%s' (expected $steps.<step>.<output>)", ctx, s);
        return ERR_INVALID;
    }
    *dot = 0;
    if (!name_ok(buf, false)) {
        ERRF("%s: malformed selector '%s'", ctx, s);
        return ERR_INVALID;
    }
    idx = find_step(wf, buf);
    if (idx < 0) {
        ERRF("%s: selector '%s' refers to unknown step '%s'", ctx, s, buf);
        return ERR_INVALID;
    }
    if (!strcmp(dot + 1, "*")) {
        if (!allow_all) {
            ERRF("%s: wildcard selector '%s' is only allowed in outputs", ctx, s);
            return ERR_INVALID;
        }
        *sel = (struct wf_sel){WF_SEL_ALL, idx, -1};
        return 0;
    }
    o = find_out(&wf->steps[idx], dot + 1);
    if (o < 0) {
        ERRF("%s: selector '%s': step '%s' (%s) has no output '%s'", ctx, s, buf,
             wf->steps[idx].blk->types[0], dot + 1);
        return ERR_INVALID;
    }
    *sel = (struct wf_sel){WF_SEL_OUT, idx, o};
    return 0;
}

static bool is_selector(const json_t *j)
{
    return json_is_string(j) && json_string_value(j)[0] == '$';
}

static unsigned sel_kinds(const struct wf_workflow *wf, const struct wf_sel *s)
{
    if (s->type == WF_SEL_INPUT)
        return wf->inputs[s->idx].kinds;
    if (s->type == WF_SEL_OUT)
        return wf->steps[s->idx].out_kinds[s->out];
    return 0;
}

/* Kinds are compatible when either side accepts anything or they share a
 * bit; all string-like kinds share WF_K_STRING and numbers WF_K_NUMBER. */
static bool kinds_ok(unsigned have, unsigned want)
{
    if (!have || !want)
        return true;
    if (have & want)
        return true;
    if ((have & WF_K_NUMBER) && (want & WF_K_NUMBER))
        return true;
    return false;
}

static const char *kind_name(unsigned k)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {WF_K_IMAGE, "image"}, {WF_K_OD, "object_detection_prediction"},
        {WF_K_IS, "instance_segmentation_prediction"}, {WF_K_KP, "keypoint_detection_prediction"},
        {WF_K_CLS, "classification_prediction"}, {WF_K_STRING, "string"},
        {WF_K_INT, "integer"}, {WF_K_FLOAT, "float"}, {WF_K_BOOL, "boolean"},
        {WF_K_LIST, "list_of_values"}, {WF_K_DICT, "dictionary"},
        {WF_K_VIDEO_META, "video_metadata"}, {WF_K_ZONE, "zone"}, {WF_K_COLOR, "rgb_color"},
        {WF_K_BYTES, "bytes"}, {WF_K_EMBEDDING, "embedding"},
    };
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (k & names[i].bit)
            return names[i].name;
    return "*";
}

static unsigned kind_from_name(const char *s)
{
    static const struct {
        const char *name;
        unsigned bits;
    } map[] = {
        {"image", WF_K_IMAGE}, {"object_detection_prediction", WF_K_OD},
        {"instance_segmentation_prediction", WF_K_IS},
        {"keypoint_detection_prediction", WF_K_KP},
        {"classification_prediction", WF_K_CLS}, {"string", WF_K_STRING},
        {"roboflow_model_id", WF_K_STRING}, {"roboflow_project", WF_K_STRING},
        {"integer", WF_K_INT}, {"float", WF_K_FLOAT}, {"float_zero_to_one", WF_K_FLOAT},
        {"boolean", WF_K_BOOL}, {"list_of_values", WF_K_LIST}, {"dictionary", WF_K_DICT},
        {"video_metadata", WF_K_VIDEO_META}, {"zone", WF_K_ZONE}, {"rgb_color", WF_K_COLOR},
        {"bytes", WF_K_BYTES}, {"embedding", WF_K_EMBEDDING},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (!strcmp(map[i].name, s))
            return map[i].bits;
    return 0; /* unknown or "*": any */
}

/* kind field of an input: a list of names or of {"name": ...} objects */
static unsigned parse_kinds(const json_t *k)
{
    unsigned bits = 0;
    size_t i;
    const json_t *e;
    if (!json_is_array(k))
        return 0;
    json_array_foreach(k, i, e) {
        const char *n = json_is_string(e) ? json_string_value(e)
                        : json_is_string(json_object_get(e, "name"))
                            ? json_string_value(json_object_get(e, "name"))
                            : "*";
        unsigned b = kind_from_name(n);
        if (!b)
            return 0;
        bits |= b;
    }
    return bits;
}

static void bind_release(struct wf_bind *b)
{
    json_decref(b->lit);
    for (size_t i = 0; i < b->n; i++) {
        bind_release(&b->items[i]);
        if (b->keys)
            free(b->keys[i]);
    }
    free(b->items);
    free(b->keys);
}

void wf_free(struct wf_workflow *wf)
{
    if (!wf)
        return;
    for (size_t i = 0; i < wf->ninputs; i++) {
        free(wf->inputs[i].name);
        json_decref(wf->inputs[i].def);
    }
    free(wf->inputs);
    for (size_t i = 0; i < wf->nsteps; i++) {
        struct wf_cstep *st = &wf->steps[i];
        if (st->binds)
            for (size_t f = 0; f < st->blk->nfields; f++)
                bind_release(&st->binds[f]);
        free(st->binds);
        for (size_t o = 0; o < st->nouts; o++)
            free(st->outs[o]);
        free(st->outs);
        free(st->out_kinds);
        free(st->ctl);
        free(st->next);
        free(st->name);
        json_decref(st->def);
    }
    free(wf->steps);
    free(wf->order);
    for (size_t i = 0; i < wf->noutputs; i++)
        free(wf->outputs[i].name);
    free(wf->outputs);
    free(wf->spaces);
    free(wf->image_inputs);
    free(wf);
}

/* ---- pass 1: inputs ----------------------------------------------------------- */
static int parse_inputs(struct wf_workflow *wf, const json_t *inputs, char *err, size_t errlen)
{
    size_t i;
    const json_t *in;

    if (!json_is_array(inputs)) {
        ERRF("definition: 'inputs' must be a list");
        return ERR_INVALID;
    }
    if (json_array_size(inputs) > WF_MAX_INPUTS) {
        ERRF("definition: more than %d inputs", WF_MAX_INPUTS);
        return ERR_LIMIT;
    }
    wf->inputs = xcalloc(json_array_size(inputs) + 1, sizeof *wf->inputs);
    wf->image_inputs = xcalloc(json_array_size(inputs) + 1, sizeof *wf->image_inputs);
    json_array_foreach(inputs, i, in) {
        const char *type = json_string_value(json_object_get(in, "type"));
        const char *name = json_string_value(json_object_get(in, "name"));
        struct wf_cinput *ci;

        if (!json_is_object(in) || !type || !name) {
            ERRF("input #%zu: 'type' and 'name' must be strings", i);
            return ERR_INVALID;
        }
        if (!decl_name_ok(name)) {
            ERRF("input '%s': invalid name (1 to 128 printable characters, no '.')", name);
            return ERR_INVALID;
        }
        if (find_input(wf, name) >= 0) {
            ERRF("input '%s': duplicated input name", name);
            return ERR_INVALID;
        }
        ci = &wf->inputs[wf->ninputs];
        if (!strcmp(type, "WorkflowImage") || !strcmp(type, "InferenceImage")) {
            ci->type = WF_IN_IMAGE;
            ci->kinds = WF_K_IMAGE;
        } else if (!strcmp(type, "WorkflowVideoMetadata")) {
            ci->type = WF_IN_VIDEO_META;
            ci->kinds = WF_K_VIDEO_META;
        } else if (!strcmp(type, "WorkflowBatchInput")) {
            const json_t *d = json_object_get(in, "dimensionality");
            if (d && !(json_is_integer(d) && json_integer_value(d) == 1)) {
                ERRF("input '%s': field 'dimensionality': only dimensionality 1 is supported",
                     name);
                return ERR_UNSUPPORTED;
            }
            ci->type = WF_IN_BATCH;
            ci->kinds = parse_kinds(json_object_get(in, "kind"));
        } else if (!strcmp(type, "WorkflowParameter") || !strcmp(type, "InferenceParameter")) {
            const json_t *d = json_object_get(in, "default_value");
            ci->type = WF_IN_PARAM;
            ci->kinds = parse_kinds(json_object_get(in, "kind"));
            ci->def = d ? json_deep_copy(d) : NULL;
        } else {
            ERRF("input '%s': unknown input type '%s'", name, type);
            return ERR_INVALID;
        }
        ci->name = xstrdup(name);
        if (ci->type == WF_IN_IMAGE)
            wf->image_inputs[wf->nimage_inputs++] = ci->name;
        wf->ninputs++;
    }
    return 0;
}

/* ---- pass 2: steps (type, name, outputs) --------------------------------------- */
static int parse_step_heads(struct wf_workflow *wf, const json_t *steps, char *err, size_t errlen)
{
    size_t i;
    const json_t *s;

    if (!json_is_array(steps)) {
        ERRF("definition: 'steps' must be a list");
        return ERR_INVALID;
    }
    if (json_array_size(steps) > WF_MAX_STEPS) {
        ERRF("definition: more than %d steps", WF_MAX_STEPS);
        return ERR_LIMIT;
    }
    wf->steps = xcalloc(json_array_size(steps) + 1, sizeof *wf->steps);
    json_array_foreach(steps, i, s) {
        const char *type = json_string_value(json_object_get(s, "type"));
        const char *name = json_string_value(json_object_get(s, "name"));
        struct wf_cstep *st;
        const struct wf_block *blk;

        if (!json_is_object(s) || !type || !name) {
            ERRF("step #%zu: 'type' and 'name' must be strings", i);
            return ERR_INVALID;
        }
        if (!decl_name_ok(name)) {
            ERRF("step '%s': invalid name (1 to 128 printable characters, no '.')", name);
            return ERR_INVALID;
        }
        if (find_step(wf, name) >= 0) {
            ERRF("step '%s': duplicated step name", name);
            return ERR_INVALID;
        }
        blk = wf__block_find(type);
        if (!blk) {
            const char *what = NULL;
            switch (wf_block_status(type, &what)) {
            case WF_BLOCK_CLOUD_ONLY:
                ERRF("step '%s': field 'type': block '%s' needs a cloud service (%s) and is "
                     "refused: this engine runs workflows offline",
                     name, type, what);
                break;
            case WF_BLOCK_NEEDS_MODEL:
                ERRF("step '%s': field 'type': block '%s' needs a model not yet supported by "
                     "this engine (%s) and is refused",
                     name, type, what);
                break;
            default:
                ERRF("step '%s': field 'type': unsupported block '%s' (unknown to this engine)",
                     name, type);
                break;
            }
            return ERR_UNSUPPORTED;
        }
        st = &wf->steps[wf->nsteps++];
        st->name = xstrdup(name);
        st->blk = blk;
        st->def = json_incref((json_t *)s);
        st->outs = xcalloc(blk->noutputs + 1, sizeof *st->outs);
        st->out_kinds = xcalloc(blk->noutputs + 1, sizeof *st->out_kinds);
        /* dynamic outputs (json_parser's fields) come first, like the keys of
         * the dict Roboflow's block returns; the static ones follow */
        if ((blk->flags & WF_BLOCK_DYN_OUTPUTS) && blk->dyn_outputs_field) {
            json_t *names = json_object_get(s, blk->dyn_outputs_field), *built = NULL;
            size_t k;
            const json_t *nm;
            if (json_is_object(names)) {
                /* a dict of lists (data_aggregator's aggregation_mode): one
                 * output "<key>_<item>" per item, the keys of the step's 'data'
                 * dict first in data's order (Roboflow's get_actual_outputs),
                 * then any other key */
                const json_t *data = json_object_get(s, "data");
                const char *key;
                const json_t *items;
                built = json_array();
                for (int pass = 0; pass < 2; pass++) {
                    const json_t *order = pass == 0 ? data : names;
                    if (!json_is_object(order))
                        continue;
                    json_object_foreach((json_t *)order, key, items) {
                        size_t q;
                        const json_t *it;
                        bool in_data = json_is_object(data) && json_object_get(data, key);
                        if (pass == 1 && in_data)
                            continue;
                        items = json_object_get(names, key);
                        if (!json_is_array(items))
                            continue;
                        json_array_foreach(items, q, it) {
                            if (json_is_string(it))
                                json_array_append_new(built, json_sprintf("%s_%s", key, json_string_value(it)));
                            else
                                json_array_append_new(built, json_integer(0)); /* rejected below */
                        }
                    }
                }
                names = built;
            }
            if (!json_is_array(names) || json_array_size(names) > 64) {
                ERRF("step '%s': field '%s': expected a list of at most 64 names", name,
                     blk->dyn_outputs_field);
                json_decref(built);
                return ERR_INVALID;
            }
            if (blk->flags & WF_BLOCK_DYN_LOWER) {
                json_t *low = json_array();
                json_array_foreach(names, k, nm) {
                    if (!json_is_string(nm)) {
                        json_array_append_new(low, json_integer(0)); /* rejected below */
                        continue;
                    }
                    char *l = xstrdup(json_string_value(nm));
                    for (char *p = l; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
                    json_array_append_new(low, json_string(l));
                    free(l);
                }
                json_decref(built);
                names = built = low;
            }
            json_array_foreach(names, k, nm) {
                if (!json_is_string(nm) || !name_ok(json_string_value(nm), false)) {
                    ERRF("step '%s': field '%s': invalid output name", name,
                         blk->dyn_outputs_field);
                    json_decref(built);
                    return ERR_INVALID;
                }
                if (find_out(st, json_string_value(nm)) >= 0) {
                    ERRF("step '%s': field '%s': '%s' is a reserved or duplicated name", name,
                         blk->dyn_outputs_field, json_string_value(nm));
                    json_decref(built);
                    return ERR_INVALID;
                }
                for (size_t o = 0; o < blk->noutputs; o++)
                    if (!strcmp(blk->outputs[o].name, json_string_value(nm))) {
                        ERRF("step '%s': field '%s': '%s' is a reserved name", name,
                             blk->dyn_outputs_field, json_string_value(nm));
                        json_decref(built);
                        return ERR_INVALID;
                    }
                st->outs = xrealloc(st->outs, (st->nouts + blk->noutputs + 1) * sizeof *st->outs);
                st->out_kinds = xrealloc(st->out_kinds,
                                         (st->nouts + blk->noutputs + 1) * sizeof *st->out_kinds);
                st->outs[st->nouts] = xstrdup(json_string_value(nm));
                st->out_kinds[st->nouts++] = 0;
            }
            json_decref(built);
        }
        for (size_t o = 0; o < blk->noutputs; o++) {
            st->outs[st->nouts] = xstrdup(blk->outputs[o].name);
            st->out_kinds[st->nouts++] = blk->outputs[o].kind;
        }
    }
    return 0;
}

/* ---- pass 3: fields -------------------------------------------------------------- */
static int bind_value(struct wf_workflow *wf, const struct wf_field *f, const json_t *v,
                      struct wf_bind *b, const char *ctx, char *err, size_t errlen)
{
    int rc;
    char sub[512];
    if (is_selector(v)) {
        if (f->flags & WF_F_NO_SELECTOR) {
            ERRF("%s: selectors are not allowed here", ctx);
            return ERR_INVALID;
        }
        b->type = WF_B_SEL;
        rc = parse_selector(wf, json_string_value(v), false, &b->sel, ctx, err, errlen);
        if (rc < 0)
            return rc;
        if (!kinds_ok(sel_kinds(wf, &b->sel), f->kinds)) {
            ERRF("%s: kind mismatch: '%s' gives %s, the field accepts %s", ctx,
                 json_string_value(v), kind_name(sel_kinds(wf, &b->sel)), kind_name(f->kinds));
            return ERR_INVALID;
        }
        return 0;
    }
    b->type = WF_B_LITERAL;
    b->lit = json_deep_copy(v);
    if (f->flags & WF_F_SELECTOR_ONLY) {
        ERRF("%s: expected a selector ($inputs... or $steps...)", ctx);
        return ERR_INVALID;
    }
    if (f->flags & (WF_F_RAW | WF_F_SELECTOR_LIST | WF_F_SELECTOR_DICT))
        return 0;
    rc = wf__json_check(f, v, sub, sizeof sub);
    if (rc < 0)
        ERRF("%s: %s", ctx, sub);
    return rc;
}

static void add_int(int **arr, size_t *n, int v)
{
    for (size_t i = 0; i < *n; i++)
        if ((*arr)[i] == v)
            return;
    *arr = xrealloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[(*n)++] = v;
}

static int add_target(struct wf_workflow *wf, int self, const json_t *v, const char *ctx,
                      char *err, size_t errlen)
{
    const char *s = json_string_value(v);
    int t;
    if (!s || !str_has_prefix(s, "$steps.") || !name_ok(s + 7, false)) {
        ERRF("%s: expected step selectors like \"$steps.<name>\"", ctx);
        return ERR_INVALID;
    }
    t = find_step(wf, s + 7);
    if (t < 0) {
        ERRF("%s: selector '%s' refers to unknown step '%s'", ctx, s, s + 7);
        return ERR_INVALID;
    }
    if (t == self) {
        ERRF("%s: a step cannot control itself", ctx);
        return ERR_INVALID;
    }
    add_int(&wf->steps[self].next, &wf->steps[self].nnext, t);
    add_int(&wf->steps[t].ctl, &wf->steps[t].nctl, self);
    return 0;
}

static int bind_targets(struct wf_workflow *wf, int self, const json_t *v, const char *ctx,
                        char *err, size_t errlen)
{
    size_t i;
    const json_t *e;
    const char *k;
    int rc;
    if (json_is_string(v))
        return add_target(wf, self, v, ctx, err, errlen);
    if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            if ((rc = add_target(wf, self, e, ctx, err, errlen)) < 0)
                return rc;
        }
        return 0;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, e) {
            if ((rc = bind_targets(wf, self, e, ctx, err, errlen)) < 0)
                return rc;
        }
        return 0;
    }
    ERRF("%s: expected step selectors", ctx);
    return ERR_INVALID;
}

static int bind_fields(struct wf_workflow *wf, int si, char *err, size_t errlen)
{
    struct wf_cstep *st = &wf->steps[si];
    const struct wf_block *blk = st->blk;
    char ctx[512];
    int rc;

    st->binds = xcalloc(blk->nfields + 1, sizeof *st->binds);
    for (size_t f = 0; f < blk->nfields; f++) {
        const struct wf_field *fd = &blk->fields[f];
        const json_t *v = json_object_get(st->def, fd->name);
        struct wf_bind *b = &st->binds[f];

        if (!v && fd->alias)
            v = json_object_get(st->def, fd->alias);
        snprintf(ctx, sizeof ctx, "step '%s': field '%s'", st->name, fd->name);
        if (!v) {
            const json_t *d = wf__field_default(blk, f);
            if (!d) {
                ERRF("%s: required field is missing", ctx);
                return ERR_INVALID;
            }
            b->type = WF_B_LITERAL;
            b->lit = json_deep_copy(d);
            continue;
        }
        if (fd->flags & WF_F_STEP_SELECTORS) {
            b->type = WF_B_LITERAL;
            b->lit = json_deep_copy(v);
            if ((rc = bind_targets(wf, si, v, ctx, err, errlen)) < 0)
                return rc;
            continue;
        }
        if ((fd->flags & WF_F_SELECTOR_LIST) && json_is_array(v)) {
            size_t i;
            const json_t *e;
            if (json_array_size(v) > 256) {
                ERRF("%s: too many elements", ctx);
                return ERR_LIMIT;
            }
            b->type = WF_B_LIST;
            b->n = json_array_size(v);
            b->items = xcalloc(b->n + 1, sizeof *b->items);
            json_array_foreach(v, i, e) {
                struct wf_field item = *fd;
                item.flags &= ~(unsigned)(WF_F_SELECTOR_LIST | WF_F_SELECTOR_ONLY);
                item.flags |= WF_F_RAW;
                if ((rc = bind_value(wf, &item, e, &b->items[i], ctx, err, errlen)) < 0)
                    return rc;
            }
            continue;
        }
        if ((fd->flags & WF_F_SELECTOR_DICT) && json_is_object(v)) {
            const char *k;
            const json_t *e;
            size_t i = 0;
            if (json_object_size(v) > 256) {
                ERRF("%s: too many elements", ctx);
                return ERR_LIMIT;
            }
            b->type = WF_B_DICT;
            b->n = json_object_size(v);
            b->items = xcalloc(b->n + 1, sizeof *b->items);
            b->keys = xcalloc(b->n + 1, sizeof *b->keys);
            json_object_foreach((json_t *)v, k, e) {
                struct wf_field item = *fd;
                item.flags &= ~(unsigned)(WF_F_SELECTOR_DICT | WF_F_SELECTOR_ONLY);
                item.flags |= WF_F_RAW;
                item.kinds = 0;
                b->keys[i] = xstrdup(k);
                if ((rc = bind_value(wf, &item, e, &b->items[i], ctx, err, errlen)) < 0)
                    return rc;
                i++;
            }
            continue;
        }
        if (fd->flags & (WF_F_SELECTOR_LIST | WF_F_SELECTOR_DICT)) {
            if (!is_selector(v) && !json_is_null(v)) {
                ERRF("%s: expected a %s", ctx,
                     (fd->flags & WF_F_SELECTOR_LIST) ? "list" : "dict");
                return ERR_INVALID;
            }
        }
        if ((rc = bind_value(wf, fd, v, b, ctx, err, errlen)) < 0)
            return rc;
    }
    if (blk->check && (rc = blk->check(st->def, ctx, sizeof ctx)) < 0) {
        ERRF("step '%s': %s", st->name, ctx);
        return rc;
    }
    return 0;
}

/* ---- pass 4: topological order ----------------------------------------------------- */
static void bind_deps(const struct wf_bind *b, int *deps, size_t *n)
{
    if (b->type == WF_B_SEL && b->sel.type != WF_SEL_INPUT)
        deps[(*n)++] = b->sel.idx;
    for (size_t i = 0; i < b->n; i++)
        bind_deps(&b->items[i], deps, n);
}

static size_t bind_count(const struct wf_bind *b)
{
    size_t n = 1;
    for (size_t i = 0; i < b->n; i++)
        n += bind_count(&b->items[i]);
    return n;
}

static int sort_steps(struct wf_workflow *wf, char *err, size_t errlen)
{
    size_t n = wf->nsteps, head = 0, tail = 0;
    int *indeg = xcalloc(n + 1, sizeof *indeg);
    bool *adj = xcalloc(n * n + 1, sizeof *adj); /* adj[a*n+b]: a must run before b */
    int rc = 0;

    for (size_t s = 0; s < n; s++) {
        const struct wf_cstep *st = &wf->steps[s];
        size_t cnt = 0, nd = 0;
        int *deps;
        for (size_t f = 0; f < st->blk->nfields; f++)
            cnt += bind_count(&st->binds[f]);
        deps = xcalloc(cnt + 1, sizeof *deps);
        for (size_t f = 0; f < st->blk->nfields; f++)
            bind_deps(&st->binds[f], deps, &nd);
        for (size_t k = 0; k < nd; k++) {
            if ((size_t)deps[k] == s) {
                ERRF("step '%s': cycle detected: the step consumes its own output", st->name);
                free(deps);
                rc = ERR_INVALID;
                goto out;
            }
            adj[(size_t)deps[k] * n + s] = true;
        }
        free(deps);
        for (size_t k = 0; k < st->nnext; k++)
            adj[s * n + (size_t)st->next[k]] = true;
    }
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++)
            indeg[b] += adj[a * n + b];
    wf->order = xcalloc(n + 1, sizeof *wf->order);
    for (size_t s = 0; s < n; s++)
        if (!indeg[s])
            wf->order[tail++] = (int)s;
    while (head < tail) {
        size_t a = (size_t)wf->order[head++];
        for (size_t b = 0; b < n; b++)
            if (adj[a * n + b] && --indeg[b] == 0)
                wf->order[tail++] = (int)b;
    }
    if (tail < n) {
        for (size_t s = 0; s < n; s++)
            if (indeg[s]) {
                ERRF("step '%s': cycle detected in the workflow graph", wf->steps[s].name);
                break;
            }
        rc = ERR_INVALID;
    }
out:
    free(indeg);
    free(adj);
    return rc;
}

/* ---- pass 5: spaces ------------------------------------------------------------------ */
int wf__sel_space(const struct wf_workflow *wf, const struct wf_sel *s)
{
    if (s->type == WF_SEL_INPUT)
        return wf->inputs[s->idx].type == WF_IN_PARAM ? 0 : 1;
    return wf->steps[s->idx].out_space;
}

static bool is_ancestor(const struct wf_workflow *wf, int a, int b) /* a ancestor-or-equal of b */
{
    while (b > a && b >= 0)
        b = wf->spaces[b].parent;
    return a == b || a == 0;
}

static int bind_space(const struct wf_workflow *wf, const struct wf_bind *b, int *space,
                      const char *ctx, char *err, size_t errlen)
{
    if (b->type == WF_B_SEL) {
        int s = wf__sel_space(wf, &b->sel);
        if (is_ancestor(wf, s, *space))
            return 0;
        if (is_ancestor(wf, *space, s)) {
            *space = s;
            return 0;
        }
        ERRF("%s: incompatible lineage: inputs come from different batches (e.g. crops of "
             "two different steps)",
             ctx);
        return ERR_INVALID;
    }
    for (size_t i = 0; i < b->n; i++) {
        int rc = bind_space(wf, &b->items[i], space, ctx, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int assign_spaces(struct wf_workflow *wf, char *err, size_t errlen)
{
    char ctx[512];
    int rc;
    wf->spaces = xcalloc(2 + wf->nsteps, sizeof *wf->spaces);
    wf->spaces[0] = (struct wf_cspace){-1, 0, -1};
    wf->spaces[1] = (struct wf_cspace){0, 1, -1};
    wf->nspaces = 2;
    for (size_t k = 0; k < wf->nsteps; k++) {
        struct wf_cstep *st = &wf->steps[wf->order[k]];
        int space = 0, up_space = -1;

        for (size_t f = 0; f < st->blk->nfields; f++) {
            const struct wf_field *fd = &st->blk->fields[f];
            int fs = 0;
            snprintf(ctx, sizeof ctx, "step '%s': field '%s'", st->name, fd->name);
            if ((rc = bind_space(wf, &st->binds[f], &fs, ctx, err, errlen)) < 0)
                return rc;
            if (fd->flags & WF_F_DIM_UP) {
                if (st->binds[f].type != WF_B_SEL || fs == 0) {
                    ERRF("%s: expected batch data (a selector of a step output or batch input)",
                         ctx);
                    return ERR_INVALID;
                }
                fs = wf->spaces[fs].parent;
                up_space = fs;
            }
            if (is_ancestor(wf, fs, space))
                continue;
            if (is_ancestor(wf, space, fs)) {
                space = fs;
                continue;
            }
            ERRF("%s: incompatible lineage with the step's other inputs (data from different "
                 "batches, e.g. crops of two different steps)",
                 ctx);
            return ERR_INVALID;
        }
        if (up_space >= 0 && up_space != space) {
            ERRF("step '%s': incompatible dimensionality: the nested input must be exactly one "
                 "level deeper than the reference input",
                 st->name);
            return ERR_INVALID;
        }
        for (size_t c = 0; c < st->nctl; c++) {
            const struct wf_cstep *ctl = &wf->steps[st->ctl[c]];
            if (!is_ancestor(wf, ctl->space, space)) {
                ERRF("step '%s': flow control from step '%s' works on a batch this step is not "
                     "part of",
                     st->name, ctl->name);
                return ERR_INVALID;
            }
        }
        st->space = space;
        st->out_space = space;
        if (st->blk->out_dim_offset > 0) {
            if (space == 0) {
                ERRF("step '%s': needs batch input (an image) to create crops", st->name);
                return ERR_INVALID;
            }
            if (wf->spaces[space].depth >= WF_MAX_DIM) {
                ERRF("step '%s': nesting deeper than %d levels", st->name, WF_MAX_DIM);
                return ERR_LIMIT;
            }
            wf->spaces[wf->nspaces] =
                (struct wf_cspace){space, wf->spaces[space].depth + 1, wf->order[k]};
            st->out_space = (int)wf->nspaces++;
        }
    }
    return 0;
}

/* ---- pass 6: outputs ------------------------------------------------------------------ */
static int parse_outputs(struct wf_workflow *wf, const json_t *outputs, char *err, size_t errlen)
{
    size_t i;
    const json_t *o;
    char ctx[512];
    int rc;

    if (!json_is_array(outputs)) {
        ERRF("definition: 'outputs' must be a list");
        return ERR_INVALID;
    }
    if (json_array_size(outputs) > WF_MAX_OUTPUTS) {
        ERRF("definition: more than %d outputs", WF_MAX_OUTPUTS);
        return ERR_LIMIT;
    }
    wf->outputs = xcalloc(json_array_size(outputs) + 1, sizeof *wf->outputs);
    json_array_foreach(outputs, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *sel = json_string_value(json_object_get(o, "selector"));
        const json_t *cs = json_object_get(o, "coordinates_system");
        const char *type = json_string_value(json_object_get(o, "type"));
        struct wf_coutput *co;

        if (!json_is_object(o) || !name || !sel) {
            ERRF("output #%zu: 'name' and 'selector' must be strings", i);
            return ERR_INVALID;
        }
        if (type && strcmp(type, "JsonField") != 0) {
            ERRF("output '%s': field 'type': unknown output type '%s'", name, type);
            return ERR_INVALID;
        }
        for (size_t k = 0; k < wf->noutputs; k++)
            if (!strcmp(wf->outputs[k].name, name)) {
                ERRF("output '%s': duplicated output name", name);
                return ERR_INVALID;
            }
        co = &wf->outputs[wf->noutputs];
        snprintf(ctx, sizeof ctx, "output '%s': field 'selector'", name);
        if ((rc = parse_selector(wf, sel, true, &co->sel, ctx, err, errlen)) < 0)
            return rc;
        co->parent_coords = true;
        if (cs) {
            const char *c = json_string_value(cs);
            if (!c || (strcmp(c, "own") && strcmp(c, "parent"))) {
                ERRF("output '%s': field 'coordinates_system': must be 'own' or 'parent'", name);
                return ERR_INVALID;
            }
            co->parent_coords = !strcmp(c, "parent");
        }
        co->name = xstrdup(name);
        wf->noutputs++;
    }
    return 0;
}

int wf_compile(const json_t *def, struct wf_workflow **out, char *err, size_t errlen)
{
    struct wf_workflow *wf = xcalloc(1, sizeof *wf);
    const json_t *ver;
    int rc;

    if (!json_is_object(def)) {
        ERRF("definition: must be a JSON object");
        rc = ERR_PARSE;
        goto out;
    }
    ver = json_object_get(def, "version");
    if (ver && !json_is_string(ver)) {
        ERRF("definition: field 'version': must be a string such as \"1.0\"");
        rc = ERR_INVALID;
        goto out;
    }
    if (ver) {
        const char *v = json_string_value(ver);
        if (!(v[0] == '1' && (v[1] == 0 || v[1] == '.'))) {
            ERRF("definition: field 'version': '%s' is not supported (engine 1.x)", v);
            rc = ERR_UNSUPPORTED;
            goto out;
        }
    }
    {
        json_t *inlined = NULL;
        if ((rc = wf__inline_inner(def, &inlined, err, errlen)) < 0)
            goto out;
        if (inlined) { /* inner_workflow steps expanded: compile that instead */
            rc = wf_compile(inlined, out, err, errlen);
            json_decref(inlined);
            goto out;
        }
    }
    if ((rc = parse_inputs(wf, json_object_get(def, "inputs"), err, errlen)) < 0)
        goto out;
    if ((rc = parse_step_heads(wf, json_object_get(def, "steps"), err, errlen)) < 0)
        goto out;
    for (size_t s = 0; s < wf->nsteps; s++)
        if ((rc = bind_fields(wf, (int)s, err, errlen)) < 0)
            goto out;
    if ((rc = sort_steps(wf, err, errlen)) < 0)
        goto out;
    if ((rc = assign_spaces(wf, err, errlen)) < 0)
        goto out;
    if ((rc = parse_outputs(wf, json_object_get(def, "outputs"), err, errlen)) < 0)
        goto out;
    *out = wf;
    wf = NULL;
out:
    wf_free(wf);
    return rc;
}

int wf_compile_text(const char *text, size_t len, struct wf_workflow **out, char *err,
                    size_t errlen)
{
    json_t *def = NULL;
    char e2[300];
    int rc;
    if (len > 4u << 20) {
        ERRF("definition: larger than 4 MiB");
        return ERR_LIMIT;
    }
    /* duplicate keys: the last wins, as in Python */
    if ((rc = json_parse_outside(text, len, 0, &def, e2, sizeof e2)) < 0) {
        ERRF("definition: %s%s", rc == ERR_LIMIT ? "" : "invalid JSON: ", e2);
        return ERR_PARSE;
    }
    rc = wf_compile(def, out, err, errlen);
    json_decref(def);
    return rc;
}

int wf_validate(const json_t *def, char *err, size_t errlen)
{
    struct wf_workflow *wf = NULL;
    int rc = wf_compile(def, &wf, err, errlen);
    wf_free(wf);
    return rc;
}

bool wf_uses_models(const struct wf_workflow *wf)
{
    for (size_t i = 0; i < wf->nsteps; i++)
        for (size_t k = 0; wf_blocks_models[k]; k++)
            if (wf->steps[i].blk == wf_blocks_models[k])
                return true;
    return false;
}

size_t wf_prepare_input(const struct wf_workflow *wf, const char *input, struct vis_image *img,
                        wf_model_prepare_fn prepare, void *ud)
{
    const char *done[16];
    size_t ndone = 0, ok = 0;
    int in_idx = -1;

    for (size_t i = 0; i < wf->ninputs; i++)
        if (wf->inputs[i].type == WF_IN_IMAGE && !strcmp(wf->inputs[i].name, input))
            in_idx = (int)i;
    if (in_idx < 0 || !prepare)
        return 0;
    for (size_t s = 0; s < wf->nsteps && ndone < ARRAY_LEN(done); s++) {
        const struct wf_cstep *st = &wf->steps[s];
        const char *task = wf__model_block_task(st->blk);
        if (!task)
            continue;
        int fi = wf__field_index(st->blk, "images"), fm = wf__field_index(st->blk, "model_id");
        if (fi < 0 || fm < 0)
            continue;
        const struct wf_bind *bi = &st->binds[fi], *bm = &st->binds[fm];
        if (bi->type != WF_B_SEL || bi->sel.type != WF_SEL_INPUT || bi->sel.idx != in_idx ||
            bm->type != WF_B_LITERAL || !json_is_string(bm->lit))
            continue;
        const char *mid = json_string_value(bm->lit);
        bool seen = false;
        for (size_t k = 0; k < ndone && !seen; k++)
            seen = !strcmp(done[k], mid);
        if (seen)
            continue;
        done[ndone++] = mid;
        struct wf_model_request req = {mid, task, NULL};
        char err[256];
        if (prepare(ud, &req, img, err, sizeof err) == 0)
            ok++;
    }
    return ok;
}

size_t wf_image_input_count(const struct wf_workflow *wf)
{
    return wf->nimage_inputs;
}

const char *wf_image_input_name(const struct wf_workflow *wf, size_t i)
{
    return i < wf->nimage_inputs ? wf->image_inputs[i] : NULL;
}

size_t wf_output_count(const struct wf_workflow *wf)
{
    return wf->noutputs;
}

const char *wf_output_name(const struct wf_workflow *wf, size_t i)
{
    return i < wf->noutputs ? wf->outputs[i].name : NULL;
}
