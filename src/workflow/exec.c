/*
 * exec.c — run a compiled workflow: runtime input assembly, the step loop,
 * flow-control masks, empty-value propagation and output construction.
 *
 * Runtime state (struct run) lives on the caller's thread only, so one
 * compiled workflow serves any number of concurrent runs.
 *
 * Index spaces (see compile.c) become concrete here: space 0 has one
 * element, space 1 has one element per input image, and a space created by
 * a crop/slice step has one element per crop; every element of a space
 * k > 1 knows its parent element, and every parent element knows the
 * contiguous range [first, first+count) of its children.  A step's outputs
 * are a flat array aligned with its out_space.  Reading a field for element
 * e walks e up to the space of the data (broadcast of parents and scalars);
 * a WF_F_DIM_UP field gathers the children of e into a list.
 *
 * An element is skipped (its outputs stay None) when a flow-control step
 * gating this step did not select it, or when a batch input is None and the
 * block does not accept empty values.  That is how masks propagate: every
 * step downstream of a masked element sees None there.
 */
#include "workflow/wf_int.h"

#include <string.h>

struct rt_space {
    size_t n;        /* elements */
    size_t *parent;  /* element -> parent element (space > 1) */
    size_t *first;   /* parent element -> first child (space > 1) */
    size_t *count;   /* parent element -> children */
};

struct rt_step {
    bool ran;
    struct wf_value **vals; /* n(out_space) * nouts, NULL = None */
    uint8_t *sel;           /* flow control: n(space) * nnext decisions */
    bool *active;           /* n(space): the step ran on that element */
};

struct run {
    const struct wf_workflow *wf;
    const struct wf_env *env;
    struct wf_state *state; /* env->state, or one for this run only (owned) */
    bool own_state;
    struct rt_space *spaces;
    struct rt_step *steps;
    struct wf_value ***inputs; /* per input: n(space) values */
    size_t batch;
    char *err;
    size_t errlen;
};

struct wf_call {
    const struct wf_workflow *wf;
    const struct wf_cstep *st;
    const struct wf_env *env;
    struct run *run;
    size_t n;
    const struct wf_value **args; /* n * nfields, borrowed */
    struct wf_value **outs;       /* n * nouts, owned */
    uint8_t *sel;                 /* n * nnext */
    char *err;
    size_t errlen;
};

/* ---- state of stateful blocks ---------------------------------------------------------- */

struct state_entry {
    char *key; /* "<step>\x1f<key>" */
    void *p;
    void (*free_fn)(void *);
};

struct wf_state {
    struct state_entry *e;
    size_t n, cap;
};

struct wf_state *wf_state_new(void)
{
    return xcalloc(1, sizeof(struct wf_state));
}

void wf_state_free(struct wf_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++) {
        if (st->e[i].p && st->e[i].free_fn)
            st->e[i].free_fn(st->e[i].p);
        free(st->e[i].key);
    }
    free(st->e);
    free(st);
}

static void **state_slot(struct wf_call *c, char *k /* owned */, void (*free_fn)(void *))
{
    struct run *r = c->run;
    if (!r->state) {
        r->state = wf_state_new();
        r->own_state = true;
    }
    struct wf_state *st = r->state;
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->e[i].key, k)) {
            free(k);
            return &st->e[i].p;
        }
    if (st->n >= WF_STATE_MAX) {
        free(k);
        return NULL;
    }
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 8;
        st->e = xrealloc(st->e, st->cap * sizeof *st->e);
    }
    st->e[st->n] = (struct state_entry){k, NULL, free_fn};
    return &st->e[st->n++].p;
}

void **wf_call_state(struct wf_call *c, const char *key, void (*free_fn)(void *))
{
    return state_slot(c, xasprintf("%s\x1f%s", c->st->name, key ? key : ""), free_fn);
}

void **wf__call_shared_state(struct wf_call *c, const char *key, void (*free_fn)(void *))
{
    /* step names are never empty, so "\x1f\x1f..." is no step's key */
    return state_slot(c, xasprintf("\x1f\x1f%s", key ? key : ""), free_fn);
}

/* ---- the block-facing call API -------------------------------------------------------- */

size_t wf_call_n(const struct wf_call *c)
{
    return c->n;
}

const char *wf_call_step_name(const struct wf_call *c)
{
    return c->st->name;
}

const struct wf_env *wf_call_env(const struct wf_call *c)
{
    return c->env;
}

int wf_call_fail(struct wf_call *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    wf__errf(c->err, c->errlen, "step '%s': %s", c->st->name, msg);
    return ERR_INVALID;
}

const struct wf_value *wf_arg(const struct wf_call *c, size_t i, const char *name)
{
    int f = wf__field_index(c->st->blk, name);
    if (f < 0 || i >= c->n) {
        log_error("workflow", "block '%s' reads undeclared field '%s'", c->st->blk->types[0],
                  name);
        abort();
    }
    return c->args[i * c->st->blk->nfields + (size_t)f];
}

const struct wf_image *wf_arg_image(const struct wf_call *c, size_t i, const char *name)
{
    const struct wf_value *v = wf_arg(c, i, name);
    return v->type == WF_V_IMAGE ? v->image : NULL;
}

const struct wf_dets *wf_arg_dets(const struct wf_call *c, size_t i, const char *name)
{
    const struct wf_value *v = wf_arg(c, i, name);
    return v->type == WF_V_DETS ? v->dets : NULL;
}

const json_t *wf_arg_json(const struct wf_call *c, size_t i, const char *name)
{
    const struct wf_value *v = wf_arg(c, i, name);
    return v->type == WF_V_JSON ? v->json : NULL;
}

double wf_arg_double(const struct wf_call *c, size_t i, const char *name, double fallback)
{
    const json_t *j = wf_arg_json(c, i, name);
    return json_is_number(j) ? json_number_value(j) : fallback;
}

int64_t wf_arg_int(const struct wf_call *c, size_t i, const char *name, int64_t fallback)
{
    const json_t *j = wf_arg_json(c, i, name);
    return json_is_number(j) ? (int64_t)json_number_value(j) : fallback;
}

bool wf_arg_bool(const struct wf_call *c, size_t i, const char *name, bool fallback)
{
    const json_t *j = wf_arg_json(c, i, name);
    return json_is_boolean(j) ? json_is_true(j) : fallback;
}

const char *wf_arg_str(const struct wf_call *c, size_t i, const char *name)
{
    return json_string_value(wf_arg_json(c, i, name));
}

static int out_index(const struct wf_call *c, const char *name)
{
    for (size_t o = 0; o < c->st->nouts; o++)
        if (!strcmp(c->st->outs[o], name))
            return (int)o;
    return -1;
}

void wf_out_set(struct wf_call *c, size_t i, const char *name, struct wf_value *v)
{
    int o = out_index(c, name);
    if (o < 0 || i >= c->n) {
        log_error("workflow", "block '%s' writes undeclared output '%s'", c->st->blk->types[0],
                  name);
        abort();
    }
    struct wf_value **slot = &c->outs[i * c->st->nouts + (size_t)o];
    wf_value_unref(*slot);
    *slot = v;
}

void wf_out_image(struct wf_call *c, size_t i, const char *name, const struct wf_image *like,
                  struct vis_image *px)
{
    wf_out_set(c, i, name, wf_value_image(wf_image_derive(like, px)));
}

void wf_out_dets(struct wf_call *c, size_t i, const char *name, struct wf_dets *ds)
{
    wf_out_set(c, i, name, wf_value_dets(ds));
}

void wf_out_json(struct wf_call *c, size_t i, const char *name, json_t *j)
{
    wf_out_set(c, i, name, wf_value_json(j));
}

void wf_out_next_steps(struct wf_call *c, size_t i, const char *const *steps, size_t n)
{
    if (i >= c->n)
        return;
    for (size_t k = 0; k < n; k++) {
        const char *s = steps[k];
        if (str_has_prefix(s, "$steps."))
            s += 7;
        for (size_t t = 0; t < c->st->nnext; t++)
            if (!strcmp(c->wf->steps[c->st->next[t]].name, s))
                c->sel[i * c->st->nnext + t] = 1;
    }
}

/* ---- runtime helpers ------------------------------------------------------------------ */

/* Map element e of space 'from' to its ancestor element in space 'to'. */
static size_t elem_up(const struct run *r, int from, size_t e, int to)
{
    while (from != to && from > 1) {
        e = r->spaces[from].parent[e];
        from = r->wf->spaces[from].parent;
    }
    if (to == 0)
        return 0;
    return e;
}

static struct wf_value *sel_value(const struct run *r, const struct wf_sel *s, int space,
                                  size_t e)
{
    const struct wf_workflow *wf = r->wf;
    int ds = wf__sel_space(wf, s);
    size_t de = elem_up(r, space, e, ds);
    if (s->type == WF_SEL_INPUT)
        return wf_value_ref(r->inputs[s->idx][de]);
    const struct rt_step *rs = &r->steps[s->idx];
    const struct wf_cstep *st = &wf->steps[s->idx];
    if (!rs->ran || !rs->vals)
        return wf_value_null();
    if (s->type == WF_SEL_ALL) {
        struct wf_value *d = wf_value_dict_new();
        for (size_t o = 0; o < st->nouts; o++) {
            struct wf_value *v = rs->vals[de * st->nouts + o];
            wf_value_dict_add(d, st->outs[o], v ? wf_value_ref(v) : wf_value_null());
        }
        return d;
    }
    struct wf_value *v = rs->vals[de * st->nouts + (size_t)s->out];
    return v ? wf_value_ref(v) : wf_value_null();
}

/* Children of element e (of space 'space') in data space ds (a child space). */
static struct wf_value *children_value(const struct run *r, const struct wf_sel *s, int space,
                                       size_t e)
{
    int ds = wf__sel_space(r->wf, s);
    const struct rt_space *sp = &r->spaces[ds];
    size_t first, cnt;
    struct wf_value *list;
    (void)space;
    if (ds <= 1) {
        /* children of the scalar element: the whole input batch */
        first = 0;
        cnt = r->spaces[ds].n;
    } else {
        first = sp->first[e];
        cnt = sp->count[e];
    }
    list = wf_value_list(cnt);
    for (size_t k = 0; k < cnt; k++) {
        struct wf_sel one = *s;
        wf_value_list_set(list, k, sel_value(r, &one, ds, first + k));
    }
    return list;
}

static bool has_batch_null(const struct run *r, const struct wf_bind *b, const struct wf_value *v)
{
    if (b->type == WF_B_SEL)
        return wf__sel_space(r->wf, &b->sel) != 0 && wf_value_is_null(v);
    if ((b->type == WF_B_LIST || b->type == WF_B_DICT) && v &&
        (v->type == WF_V_LIST || v->type == WF_V_DICT))
        for (size_t i = 0; i < b->n && i < v->n; i++)
            if (has_batch_null(r, &b->items[i], v->items[i]))
                return true;
    return false;
}

static struct wf_value *bind_value(const struct run *r, const struct wf_bind *b, bool dim_up,
                                   int space, size_t e)
{
    struct wf_value *v;
    switch (b->type) {
    case WF_B_LITERAL:
        return wf_value_json(json_deep_copy(b->lit));
    case WF_B_SEL:
        return dim_up ? children_value(r, &b->sel, space, e) : sel_value(r, &b->sel, space, e);
    case WF_B_LIST:
        v = wf_value_list(b->n);
        for (size_t i = 0; i < b->n; i++)
            wf_value_list_set(v, i, bind_value(r, &b->items[i], false, space, e));
        return v;
    case WF_B_DICT:
        v = wf_value_dict_new();
        for (size_t i = 0; i < b->n; i++)
            wf_value_dict_add(v, b->keys[i], bind_value(r, &b->items[i], false, space, e));
        return v;
    }
    return wf_value_null();
}

/* A list value whose items are all plain JSON becomes one JSON value, so
 * that blocks see e.g. a literal list as JSON. */
static struct wf_value *flatten_json(struct wf_value *v)
{
    json_t *j;
    if (!v || (v->type != WF_V_LIST && v->type != WF_V_DICT))
        return v;
    for (size_t i = 0; i < v->n; i++)
        if (v->items[i]->type != WF_V_JSON && v->items[i]->type != WF_V_NULL)
            return v;
    j = wf_value_to_json(v, false);
    wf_value_unref(v);
    return wf_value_json(j);
}

static int run_step(struct run *r, int si)
{
    const struct wf_workflow *wf = r->wf;
    const struct wf_cstep *st = &wf->steps[si];
    const struct wf_block *blk = st->blk;
    struct rt_step *rs = &r->steps[si];
    size_t n = r->spaces[st->space].n, nf = blk->nfields, nact = 0;
    struct wf_value **args = NULL;
    size_t *elems = NULL;
    struct wf_call c = {0};
    int rc = 0;
    char msg[512];

    rs->active = xcalloc(n + 1, sizeof *rs->active);
    args = xcalloc(n * nf + 1, sizeof *args);
    elems = xcalloc(n + 1, sizeof *elems);
    for (size_t e = 0; e < n; e++) {
        bool ok = true;
        for (size_t k = 0; k < st->nctl && ok; k++) {
            int ci = st->ctl[k];
            const struct wf_cstep *cst = &wf->steps[ci];
            const struct rt_step *crs = &r->steps[ci];
            size_t ce = elem_up(r, st->space, e, cst->space);
            size_t t;
            for (t = 0; t < cst->nnext; t++)
                if (cst->next[t] == si)
                    break;
            ok = crs->ran && crs->active[ce] && crs->sel && crs->sel[ce * cst->nnext + t];
        }
        if (!ok)
            continue;
        struct wf_value **row = &args[nact * nf];
        for (size_t f = 0; f < nf; f++) {
            row[f] = bind_value(r, &st->binds[f], (blk->fields[f].flags & WF_F_DIM_UP) != 0,
                                st->space, e);
            if (!(blk->flags & WF_BLOCK_ACCEPTS_EMPTY) &&
                !(blk->fields[f].flags & WF_F_DIM_UP) && has_batch_null(r, &st->binds[f], row[f]))
                ok = false;
            if (st->binds[f].type == WF_B_LIST || st->binds[f].type == WF_B_DICT)
                row[f] = flatten_json(row[f]);
        }
        if (!ok) {
            for (size_t f = 0; f < nf; f++) {
                wf_value_unref(row[f]);
                row[f] = NULL;
            }
            continue;
        }
        for (size_t f = 0; f < nf; f++) {
            if (wf__field_check(&blk->fields[f], row[f], msg, sizeof msg) < 0) {
                wf__errf(r->err, r->errlen, "step '%s': field '%s': %s", st->name,
                         blk->fields[f].name, msg);
                rc = ERR_INVALID;
                nact++;
                goto out;
            }
        }
        elems[nact++] = e;
    }
    c.wf = wf;
    c.st = st;
    c.env = r->env;
    c.run = r;
    c.n = nact;
    c.args = (const struct wf_value **)args;
    c.outs = xcalloc(nact * st->nouts + 1, sizeof *c.outs);
    c.sel = xcalloc(nact * st->nnext + 1, 1);
    c.err = r->err;
    c.errlen = r->errlen;
    if (nact) {
        rc = blk->run(&c);
        if (rc < 0) {
            if (!r->err[0])
                wf__errf(r->err, r->errlen, "step '%s': failed (%s)", st->name, err_str(rc));
            goto out;
        }
    }
    rs->ran = true;
    for (size_t k = 0; k < nact; k++)
        rs->active[elems[k]] = true;
    if (st->nnext) {
        rs->sel = xcalloc(n * st->nnext + 1, 1);
        for (size_t k = 0; k < nact; k++)
            memcpy(&rs->sel[elems[k] * st->nnext], &c.sel[k * st->nnext], st->nnext);
    }
    if (st->out_space == st->space) {
        rs->vals = xcalloc(n * st->nouts + 1, sizeof *rs->vals);
        for (size_t k = 0; k < nact; k++)
            for (size_t o = 0; o < st->nouts; o++) {
                rs->vals[elems[k] * st->nouts + o] = c.outs[k * st->nouts + o];
                c.outs[k * st->nouts + o] = NULL;
            }
    } else {
        /* dimensionality +1: every element's outputs are lists that become
         * the children of that element in the new space */
        struct rt_space *sp = &r->spaces[st->out_space];
        size_t total = 0, pos = 0;
        sp->first = xcalloc(n + 1, sizeof *sp->first);
        sp->count = xcalloc(n + 1, sizeof *sp->count);
        for (size_t k = 0; k < nact; k++) {
            size_t cnt = 0;
            for (size_t o = 0; o < st->nouts; o++) {
                const struct wf_value *v = c.outs[k * st->nouts + o];
                if (v && v->type == WF_V_LIST && v->n > cnt)
                    cnt = v->n;
            }
            sp->count[elems[k]] = cnt;
            total += cnt;
        }
        if (total > WF_MAX_ELEMENTS) {
            wf__errf(r->err, r->errlen, "step '%s': produced more than %d elements", st->name,
                     WF_MAX_ELEMENTS);
            rc = ERR_LIMIT;
            goto out;
        }
        sp->n = total;
        sp->parent = xcalloc(total + 1, sizeof *sp->parent);
        rs->vals = xcalloc(total * st->nouts + 1, sizeof *rs->vals);
        for (size_t e = 0, k = 0; e < n; e++) {
            sp->first[e] = pos;
            if (k < nact && elems[k] == e) {
                for (size_t j = 0; j < sp->count[e]; j++) {
                    sp->parent[pos + j] = e;
                    for (size_t o = 0; o < st->nouts; o++) {
                        struct wf_value *v = c.outs[k * st->nouts + o];
                        if (v && v->type == WF_V_LIST && j < v->n && !wf_value_is_null(v->items[j]))
                            rs->vals[(pos + j) * st->nouts + o] = wf_value_ref(v->items[j]);
                    }
                }
                pos += sp->count[e];
                k++;
            }
        }
    }
out:
    for (size_t k = 0; k < nact * nf; k++)
        wf_value_unref(args[k]);
    for (size_t k = 0; c.outs && k < nact * st->nouts; k++)
        wf_value_unref(c.outs[k]);
    free(c.outs);
    free(c.sel);
    free(args);
    free(elems);
    return rc;
}

/* ---- inputs ------------------------------------------------------------------------------ */

static int assemble_inputs(struct run *r, const struct wf_run_inputs *in)
{
    const struct wf_workflow *wf = r->wf;
    size_t batch = 1;

    /* batch size: the first batch input with more than one element */
    for (size_t i = 0; i < wf->ninputs; i++) {
        const struct wf_cinput *ci = &wf->inputs[i];
        size_t n = 0;
        if (ci->type == WF_IN_IMAGE) {
            for (size_t k = 0; k < in->nimages; k++)
                if (in->images[k].name && !strcmp(in->images[k].name, ci->name))
                    n = in->images[k].n;
        } else if (ci->type != WF_IN_PARAM) {
            const json_t *v = json_object_get(in->params, ci->name);
            n = json_is_array(v) ? json_array_size(v) : 1;
        }
        if (n > 1 && batch == 1)
            batch = n;
    }
    if (batch > WF_MAX_BATCH) {
        wf__errf(r->err, r->errlen, "input batch larger than %d", WF_MAX_BATCH);
        return ERR_LIMIT;
    }
    r->batch = batch;
    r->inputs = xcalloc(wf->ninputs + 1, sizeof *r->inputs);
    for (size_t i = 0; i < wf->ninputs; i++) {
        const struct wf_cinput *ci = &wf->inputs[i];
        if (ci->type == WF_IN_PARAM) {
            const json_t *v = in->params ? json_object_get(in->params, ci->name) : NULL;
            r->inputs[i] = xcalloc(1, sizeof **r->inputs);
            if (!v)
                v = ci->def;
            r->inputs[i][0] = wf_value_json(v ? json_deep_copy(v) : NULL);
            continue;
        }
        r->inputs[i] = xcalloc(batch, sizeof **r->inputs);
        if (ci->type == WF_IN_IMAGE) {
            const struct wf_image_input *ii = NULL;
            for (size_t k = 0; k < in->nimages; k++)
                if (in->images[k].name && !strcmp(in->images[k].name, ci->name))
                    ii = &in->images[k];
            if (!ii || ii->n == 0) {
                wf__errf(r->err, r->errlen, "input '%s': missing image input", ci->name);
                return ERR_INVALID;
            }
            if (ii->n != 1 && ii->n != batch) {
                wf__errf(r->err, r->errlen,
                         "input '%s': batch of %zu images, expected 1 or %zu", ci->name, ii->n,
                         batch);
                return ERR_INVALID;
            }
            for (size_t k = 0; k < batch; k++) {
                const struct vis_image *src = ii->images[ii->n == 1 ? 0 : k];
                struct vis_image *view;
                char pid[160];
                if (!src || src->w <= 0 || src->h <= 0 || !src->px) {
                    wf__errf(r->err, r->errlen, "input '%s': invalid image #%zu", ci->name, k);
                    return ERR_INVALID;
                }
                view = xmalloc(sizeof *view);
                *view = *src;
                view->_view = 1; /* the caller's pixels, borrowed for the run */
                if (ii->passed_as_list || ii->n > 1)
                    snprintf(pid, sizeof pid, "%s.[%zu]", ci->name, ii->n == 1 ? 0 : k);
                else
                    snprintf(pid, sizeof pid, "%s", ci->name);
                struct wf_image *root = wf_image_new_root(view, pid);
                if (json_is_object(ii->video_metadata))
                    root->video_metadata = json_deep_copy(ii->video_metadata);
                r->inputs[i][k] = wf_value_image(root);
            }
            continue;
        }
        {
            const json_t *v = in->params ? json_object_get(in->params, ci->name) : NULL;
            size_t n;
            if (!v && ci->type == WF_IN_VIDEO_META) {
                /* as InferencePipeline does: the frames' own metadata */
                for (size_t k = 0; k < in->nimages && !v; k++)
                    if (json_is_object(in->images[k].video_metadata))
                        v = in->images[k].video_metadata;
            }
            if (!v) {
                wf__errf(r->err, r->errlen, "input '%s': missing batch input", ci->name);
                return ERR_INVALID;
            }
            n = json_is_array(v) ? json_array_size(v) : 1;
            if (n != 1 && n != batch) {
                wf__errf(r->err, r->errlen, "input '%s': batch of %zu values, expected 1 or %zu",
                         ci->name, n, batch);
                return ERR_INVALID;
            }
            for (size_t k = 0; k < batch; k++) {
                const json_t *e = json_is_array(v) ? json_array_get(v, n == 1 ? 0 : k) : v;
                r->inputs[i][k] = wf_value_json(json_deep_copy(e));
            }
        }
    }
    return 0;
}

/* ---- outputs ------------------------------------------------------------------------------ */

static struct wf_value *to_root(struct wf_value *v)
{
    struct wf_value *c;
    if (!v)
        return NULL;
    switch (v->type) {
    case WF_V_DETS: {
        struct wf_dets *ds = wf_dets_clone(v->dets);
        wf_dets_to_root(ds);
        wf_value_unref(v);
        return wf_value_dets(ds);
    }
    case WF_V_LIST:
    case WF_V_DICT:
        c = v->type == WF_V_LIST ? wf_value_list(v->n) : wf_value_dict_new();
        for (size_t i = 0; i < v->n; i++) {
            struct wf_value *it = to_root(wf_value_ref(v->items[i]));
            if (v->type == WF_V_LIST)
                wf_value_list_set(c, i, it);
            else
                wf_value_dict_add(c, v->keys[i], it);
        }
        wf_value_unref(v);
        return c;
    default:
        return v;
    }
}

/* Output value of element e of space 'space' descending to data space ds. */
static json_t *output_at(const struct run *r, const struct wf_coutput *co, int ds, int space,
                         size_t e, int quality)
{
    const struct wf_workflow *wf = r->wf;
    if (space != ds && wf->spaces[ds].depth > wf->spaces[space].depth) {
        /* find the child space on the way to ds */
        int child = ds;
        while (wf->spaces[child].parent != space)
            child = wf->spaces[child].parent;
        const struct rt_space *sp = &r->spaces[child];
        json_t *arr = json_array();
        size_t first = sp->first ? sp->first[e] : 0, cnt = sp->count ? sp->count[e] : 0;
        for (size_t k = 0; k < cnt; k++)
            json_array_append_new(arr, output_at(r, co, ds, child, first + k, quality));
        return arr;
    }
    struct wf_value *v = sel_value(r, &co->sel, space, e);
    if (co->parent_coords)
        v = to_root(v);
    json_t *j = wf_value_serialize(v, quality);
    wf_value_unref(v);
    return j;
}

static json_t *build_outputs(const struct run *r)
{
    const struct wf_workflow *wf = r->wf;
    json_t *res = json_array();
    int quality = r->env && r->env->jpeg_quality > 0 ? r->env->jpeg_quality : 95;
    for (size_t i = 0; i < r->batch; i++) {
        json_t *row = json_object();
        for (size_t o = 0; o < wf->noutputs; o++) {
            const struct wf_coutput *co = &wf->outputs[o];
            int ds = wf__sel_space(wf, &co->sel);
            json_t *j = ds == 0 ? output_at(r, co, 0, 0, 0, quality)
                                : output_at(r, co, ds, 1, i, quality);
            json_object_set_new(row, co->name, j);
        }
        json_array_append_new(res, row);
    }
    return res;
}

static _Thread_local void (*step_timing)(void *ud, const char *step, int64_t ns);
static _Thread_local void *step_timing_ud;

void wf__set_step_timing(void (*fn)(void *ud, const char *step, int64_t ns), void *ud)
{
    step_timing = fn;
    step_timing_ud = ud;
}

int wf_run(const struct wf_workflow *wf, const struct wf_env *env,
           const struct wf_run_inputs *in, json_t **results, char *err, size_t errlen)
{
    struct run r = {0};
    char dummy[8];
    int rc;

    if (!err || !errlen)
        err = dummy, errlen = sizeof dummy;
    err[0] = 0;
    r.wf = wf;
    r.env = env;
    r.state = env ? env->state : NULL;
    r.err = err;
    r.errlen = errlen;
    r.spaces = xcalloc(wf->nspaces, sizeof *r.spaces);
    r.steps = xcalloc(wf->nsteps + 1, sizeof *r.steps);
    if ((rc = assemble_inputs(&r, in)) < 0)
        goto out;
    r.spaces[0].n = 1;
    r.spaces[1].n = r.batch;
    for (size_t k = 0; k < wf->nsteps; k++) {
        int64_t t0 = step_timing ? time_mono_ns() : 0;
        if ((rc = run_step(&r, wf->order[k])) < 0)
            goto out;
        if (step_timing)
            step_timing(step_timing_ud, wf->steps[wf->order[k]].name, time_mono_ns() - t0);
    }
    *results = build_outputs(&r);
out:
    for (size_t i = 0; r.inputs && i < wf->ninputs; i++) {
        size_t n = wf->inputs[i].type == WF_IN_PARAM ? 1 : r.batch;
        for (size_t k = 0; r.inputs[i] && k < n; k++)
            wf_value_unref(r.inputs[i][k]);
        free(r.inputs[i]);
    }
    free(r.inputs);
    for (size_t s = 0; s < wf->nsteps; s++) {
        const struct wf_cstep *st = &wf->steps[s];
        struct rt_step *rs = &r.steps[s];
        if (rs->vals) {
            size_t n = r.spaces[st->out_space].n;
            for (size_t k = 0; k < n * st->nouts; k++)
                wf_value_unref(rs->vals[k]);
        }
        free(rs->vals);
        free(rs->sel);
        free(rs->active);
    }
    free(r.steps);
    for (size_t s = 0; s < wf->nspaces; s++) {
        free(r.spaces[s].parent);
        free(r.spaces[s].first);
        free(r.spaces[s].count);
    }
    free(r.spaces);
    if (r.own_state)
        wf_state_free(r.state);
    return rc;
}
