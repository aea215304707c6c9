/*
 * ql.c — Roboflow's workflow query language: operation chains
 * (operations.py: ExtractDetectionProperty, DetectionsFilter, SortDetections,
 * Multiply, ...) and statements (StatementGroup, BinaryStatement,
 * UnaryStatement) used by detections_filter, detections_transformation,
 * property_definition, expression, continue_if and the formatters.
 *
 * Operations take one struct wf_value and return a new one; they never
 * modify their input (detections are cloned).  Operands are StaticOperand
 * {value} or DynamicOperand {operand_name, operations}: a dynamic operand
 * names a value in the evaluation parameters (ctx->params), and inside a
 * DetectionsFilter the name "_" is the detection under test, seen as a set
 * of one detection.
 *
 * Depth is bounded (WF_MAX_QL_DEPTH) since definitions come from outside.
 */
#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "workflow/wf_int.h"

#define QERR(...) (wf__errf(cx->err, cx->errlen, __VA_ARGS__), ERR_INVALID)

static int apply_depth(struct wf_ql_ctx *cx, const json_t *ops, struct wf_value *v,
                       struct wf_value **out, int depth);
static int eval_depth(struct wf_ql_ctx *cx, const json_t *stmt, bool *res, int depth);

static const char *vname(const struct wf_value *v)
{
    if (wf_value_is_null(v))
        return "None";
    switch (v->type) {
    case WF_V_IMAGE: return "an image";
    case WF_V_DETS: return "detections";
    case WF_V_LIST: return "a list";
    case WF_V_DICT: return "a dict";
    default: break;
    }
    switch (json_typeof(v->json)) {
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_ARRAY: return "a list";
    case JSON_OBJECT: return "a dict";
    default: return "None";
    }
}

static const json_t *vjson(const struct wf_value *v)
{
    return v && v->type == WF_V_JSON ? v->json : NULL;
}

static bool vnum(const struct wf_value *v, double *d)
{
    const json_t *j = vjson(v);
    if (json_is_number(j)) {
        *d = json_number_value(j);
        return true;
    }
    if (json_is_boolean(j)) {
        *d = json_is_true(j);
        return true;
    }
    return false;
}

static struct wf_value *num_value(double d, bool as_int)
{
    if (as_int || (d == floor(d) && fabs(d) < 9e15 && false))
        return wf_value_json(json_integer((json_int_t)d));
    return wf_value_json(json_real(d));
}

/* ---- detection properties ---------------------------------------------------------- */
static json_t *det_property(const struct wf_det *d, const char *p)
{
    if (!strcmp(p, "confidence"))
        return json_real(d->confidence);
    if (!strcmp(p, "class_name"))
        return json_string(d->class_name);
    if (!strcmp(p, "class_id"))
        return json_integer(d->class_id);
    if (!strcmp(p, "x_min"))
        return json_real(d->x1);
    if (!strcmp(p, "y_min"))
        return json_real(d->y1);
    if (!strcmp(p, "x_max"))
        return json_real(d->x2);
    if (!strcmp(p, "y_max"))
        return json_real(d->y2);
    if (!strcmp(p, "size"))
        return json_real(((double)d->x2 - d->x1) * ((double)d->y2 - d->y1));
    if (!strcmp(p, "center"))
        return json_pack("[i,i]", (int)nearbyint((d->x1 + d->x2) / 2.0),
                         (int)nearbyint((d->y1 + d->y2) / 2.0));
    if (!strcmp(p, "top_left"))
        return json_pack("[i,i]", (int)nearbyint(d->x1), (int)nearbyint(d->y1));
    if (!strcmp(p, "top_right"))
        return json_pack("[i,i]", (int)nearbyint(d->x2), (int)nearbyint(d->y1));
    if (!strcmp(p, "bottom_left"))
        return json_pack("[i,i]", (int)nearbyint(d->x1), (int)nearbyint(d->y2));
    if (!strcmp(p, "bottom_right"))
        return json_pack("[i,i]", (int)nearbyint(d->x2), (int)nearbyint(d->y2));
    if (!strcmp(p, "tracker_id"))
        return d->tracker_id == WF_NO_TRACKER ? json_null() : json_integer(d->tracker_id);
    if (!strcmp(p, "image_dimensions"))
        return json_pack("[i,i]", d->img_h, d->img_w);
    if (!strcmp(p, "prediction_type"))
        return d->prediction_type ? json_string(d->prediction_type) : json_null();
    if (d->extra && json_object_get(d->extra, p))
        return json_deep_copy(json_object_get(d->extra, p));
    return NULL;
}

static double sort_key(const struct wf_det *d, const char *mode)
{
    if (!strcmp(mode, "confidence"))
        return d->confidence;
    if (!strcmp(mode, "x_min"))
        return d->x1;
    if (!strcmp(mode, "x_max"))
        return d->x2;
    if (!strcmp(mode, "y_min"))
        return d->y1;
    if (!strcmp(mode, "y_max"))
        return d->y2;
    if (!strcmp(mode, "size"))
        return ((double)d->x2 - d->x1) * ((double)d->y2 - d->y1);
    if (!strcmp(mode, "center_x"))
        return (d->x1 + d->x2) * 0.5;
    if (!strcmp(mode, "center_y"))
        return (d->y1 + d->y2) * 0.5;
    return 0;
}

struct sort_item {
    double k;
    size_t i;
};

static int cmp_sort(const void *a, const void *b)
{
    const struct sort_item *x = a, *y = b;
    if (x->k != y->k)
        return x->k < y->k ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *str_param(const json_t *op, const char *k, const char *def)
{
    const char *s = json_string_value(json_object_get(op, k));
    return s ? s : def;
}

static double num_param(const json_t *op, const char *k, double def)
{
    const json_t *v = json_object_get(op, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* ---- DetectionsFilter fast path ------------------------------------------------------ */
/* A filter statement is evaluated once per detection, so it is compiled
 * once per call into this small tree.  Comparisons whose operands are a
 * scalar property of the detection under test ("_" with one
 * ExtractDetectionProperty) or a static number/string are evaluated without
 * building values; anything else falls back to the generic evaluator on the
 * statement's JSON. */
enum fprop { FP_NONE, FP_CONF, FP_CLASS, FP_CLASS_ID, FP_XMIN, FP_YMIN, FP_XMAX, FP_YMAX, FP_SIZE };
enum fcmp { FC_EQ, FC_NE, FC_GT, FC_GE, FC_LT, FC_LE };

struct fopnd {
    enum fprop prop;   /* FP_NONE: static value */
    bool is_num;       /* static number (or numeric property) */
    double num;
    const char *str;   /* static string, borrowed from the statement */
};

struct fstmt {
    const json_t *json; /* the statement (generic fallback when !fast) */
    bool fast, negate, and_;
    int kind;           /* 0 group, 1 fast binary, 2 generic */
    enum fcmp cmp;
    struct fopnd l, r;
    struct fstmt *kids;
    size_t nkids;
};

static enum fprop fprop_of(const char *p)
{
    static const struct {
        const char *n;
        enum fprop p;
    } t[] = {{"confidence", FP_CONF}, {"class_name", FP_CLASS}, {"class_id", FP_CLASS_ID},
             {"x_min", FP_XMIN},      {"y_min", FP_YMIN},       {"x_max", FP_XMAX},
             {"y_max", FP_YMAX},      {"size", FP_SIZE}};
    for (size_t i = 0; p && i < ARRAY_LEN(t); i++)
        if (!strcmp(t[i].n, p))
            return t[i].p;
    return FP_NONE;
}

static bool fopnd_compile(const json_t *o, struct fopnd *out)
{
    const char *type = json_string_value(json_object_get(o, "type"));
    const json_t *ops = json_object_get(o, "operations");
    memset(out, 0, sizeof *out);
    if (!ops)
        ops = json_object_get(o, "ops");
    if (type && !strcmp(type, "StaticOperand") && json_array_size(ops) == 0) {
        const json_t *v = json_object_get(o, "value");
        if (json_is_number(v)) {
            out->is_num = true;
            out->num = json_number_value(v);
            return true;
        }
        if (json_is_string(v)) {
            out->str = json_string_value(v);
            return true;
        }
        return false;
    }
    if (type && !strcmp(type, "DynamicOperand") && json_array_size(ops) == 1) {
        const char *name = json_string_value(json_object_get(o, "operand_name"));
        const json_t *op0 = json_array_get(ops, 0);
        const char *t0 = json_string_value(json_object_get(op0, "type"));
        if ((name && strcmp(name, "_")) || !t0 || strcmp(t0, "ExtractDetectionProperty"))
            return false;
        out->prop = fprop_of(json_string_value(json_object_get(op0, "property_name")));
        out->is_num = out->prop != FP_CLASS;
        return out->prop != FP_NONE;
    }
    return false;
}

static void fstmt_release(struct fstmt *f)
{
    for (size_t i = 0; i < f->nkids; i++)
        fstmt_release(&f->kids[i]);
    free(f->kids);
}

static void fstmt_compile(const json_t *stmt, struct fstmt *f, int depth)
{
    const char *type = json_string_value(json_object_get(stmt, "type"));
    memset(f, 0, sizeof *f);
    f->json = stmt;
    f->kind = 2;
    f->negate = json_is_true(json_object_get(stmt, "negate"));
    if (!type || depth > WF_MAX_QL_DEPTH)
        return;
    if (!strcmp(type, "StatementGroup")) {
        const json_t *sts = json_object_get(stmt, "statements");
        const char *op = json_string_value(json_object_get(stmt, "operator"));
        size_t n = json_array_size(sts);
        if (!n)
            return;
        f->kind = 0;
        f->and_ = op && !strcmp(op, "and");
        f->kids = xcalloc(n, sizeof *f->kids);
        f->nkids = n;
        for (size_t i = 0; i < n; i++)
            fstmt_compile(json_array_get(sts, i), &f->kids[i], depth + 1);
        return;
    }
    if (!strcmp(type, "BinaryStatement")) {
        static const struct {
            const char *n;
            enum fcmp c;
            bool numeric;
        } cmps[] = {{"==", FC_EQ, false},         {"!=", FC_NE, false},
                    {"(Number) ==", FC_EQ, false}, {"(Number) !=", FC_NE, false},
                    {"(Number) >", FC_GT, true},   {"(Number) >=", FC_GE, true},
                    {"(Number) <", FC_LT, true},   {"(Number) <=", FC_LE, true}};
        const char *cmp = json_string_value(json_object_get(json_object_get(stmt, "comparator"), "type"));
        size_t i;
        for (i = 0; cmp && i < ARRAY_LEN(cmps); i++)
            if (!strcmp(cmps[i].n, cmp))
                break;
        if (!cmp || i == ARRAY_LEN(cmps))
            return;
        if (!fopnd_compile(json_object_get(stmt, "left_operand"), &f->l) ||
            !fopnd_compile(json_object_get(stmt, "right_operand"), &f->r))
            return;
        /* numeric comparators on non-numbers raise errors: leave them to the
         * generic path, which reports them */
        if (cmps[i].numeric && (!f->l.is_num || !f->r.is_num))
            return;
        f->cmp = cmps[i].c;
        f->kind = 1;
    }
}

static void fopnd_value(const struct fopnd *o, const struct wf_det *d, double *num, const char **str)
{
    switch (o->prop) {
    case FP_NONE: *num = o->num, *str = o->str; return;
    case FP_CONF: *num = d->confidence; return;
    case FP_CLASS: *str = d->class_name; return;
    case FP_CLASS_ID: *num = d->class_id; return;
    case FP_XMIN: *num = d->x1; return;
    case FP_YMIN: *num = d->y1; return;
    case FP_XMAX: *num = d->x2; return;
    case FP_YMAX: *num = d->y2; return;
    case FP_SIZE: *num = ((double)d->x2 - d->x1) * ((double)d->y2 - d->y1); return;
    }
}

static int fstmt_eval(struct wf_ql_ctx *cx, const struct fstmt *f, bool *res, int depth)
{
    int rc;
    if (f->kind == 2)
        return eval_depth(cx, f->json, res, depth);
    if (f->kind == 0) {
        *res = f->and_;
        for (size_t i = 0; i < f->nkids; i++) {
            bool r;
            if ((rc = fstmt_eval(cx, &f->kids[i], &r, depth + 1)) < 0)
                return rc;
            if (f->and_ && !r) {
                *res = false;
                break;
            }
            if (!f->and_ && r) {
                *res = true;
                break;
            }
        }
    } else {
        double a = 0, b = 0;
        const char *sa = NULL, *sb = NULL;
        bool eq;
        fopnd_value(&f->l, cx->cur, &a, &sa);
        fopnd_value(&f->r, cx->cur, &b, &sb);
        switch (f->cmp) {
        case FC_EQ:
        case FC_NE:
            if (f->l.is_num && f->r.is_num)
                eq = a == b;
            else if (sa && sb)
                eq = !strcmp(sa, sb);
            else
                eq = false; /* a number never equals a string */
            *res = f->cmp == FC_EQ ? eq : !eq;
            break;
        case FC_GT: *res = a > b; break;
        case FC_GE: *res = a >= b; break;
        case FC_LT: *res = a < b; break;
        case FC_LE: *res = a <= b; break;
        }
    }
    if (f->negate)
        *res = !*res;
    return 0;
}

/* ---- one operation --------------------------------------------------------------------- */
static int op_dets(struct wf_ql_ctx *cx, const char *type, const json_t *op,
                   const struct wf_value *v, struct wf_value **out, int depth)
{
    const struct wf_dets *ds = v->dets;

    if (!strcmp(type, "DetectionsPropertyExtract") || !strcmp(type, "ExtractDetectionProperty")) {
        const char *p = str_param(op, "property_name", "");
        bool single = !strcmp(type, "ExtractDetectionProperty");
        json_t *arr = json_array();
        for (size_t i = 0; i < ds->n; i++) {
            json_t *x = det_property(&ds->d[i], p);
            if (!x) {
                json_decref(arr);
                return QERR("%s: unknown detection property '%s'", type, p);
            }
            json_array_append_new(arr, x);
        }
        if (single) {
            json_t *first = json_incref(json_array_get(arr, 0));
            json_decref(arr);
            *out = wf_value_json(first);
        } else {
            *out = wf_value_json(arr);
        }
        return 0;
    }
    if (!strcmp(type, "DetectionsFilter")) {
        const json_t *stmt = json_object_get(op, "filter_operation");
        struct wf_dets *c = wf_dets_new();
        const struct wf_det *saved = cx->cur;
        struct fstmt f;
        int rc = 0;
        fstmt_compile(stmt, &f, depth + 1);
        for (size_t i = 0; i < ds->n && rc == 0; i++) {
            bool keep = false;
            cx->cur = &ds->d[i];
            rc = fstmt_eval(cx, &f, &keep, depth + 1);
            if (rc == 0 && keep)
                wf_dets_push_copy(c, &ds->d[i]);
        }
        cx->cur = saved;
        fstmt_release(&f);
        if (rc < 0) {
            wf_dets_free(c);
            return rc;
        }
        *out = wf_value_dets(c);
        return 0;
    }
    if (!strcmp(type, "DetectionsOffset") || !strcmp(type, "DetectionsShift")) {
        bool shift = !strcmp(type, "DetectionsShift");
        double ox = num_param(op, shift ? "shift_x" : "offset_x", 0);
        double oy = num_param(op, shift ? "shift_y" : "offset_y", 0);
        struct wf_dets *c = wf_dets_clone(ds);
        for (size_t i = 0; i < c->n; i++) {
            struct wf_det *d = &c->d[i];
            if (shift) {
                d->x1 += (float)ox, d->x2 += (float)ox, d->y1 += (float)oy, d->y2 += (float)oy;
            } else {
                d->x1 -= (float)(ox / 2), d->y1 -= (float)(oy / 2);
                d->x2 += (float)(ox / 2), d->y2 += (float)(oy / 2);
            }
        }
        *out = wf_value_dets(c);
        return 0;
    }
    if (!strcmp(type, "SortDetections")) {
        const char *mode = str_param(op, "mode", "confidence");
        const json_t *asc = json_object_get(op, "ascending");
        bool ascending = asc ? json_is_true(asc) : true;
        struct sort_item *it = xcalloc(ds->n + 1, sizeof *it);
        struct wf_dets *c = wf_dets_new();
        for (size_t i = 0; i < ds->n; i++)
            it[i] = (struct sort_item){sort_key(&ds->d[i], mode), i};
        qsort(it, ds->n, sizeof *it, cmp_sort);
        for (size_t i = 0; i < ds->n; i++)
            wf_dets_push_copy(c, &ds->d[it[ascending ? i : ds->n - 1 - i].i]);
        free(it);
        *out = wf_value_dets(c);
        return 0;
    }
    if (!strcmp(type, "DetectionsSelection")) {
        const char *mode = str_param(op, "mode", "all");
        struct wf_dets *c = wf_dets_new();
        long pick = -1;
        if (ds->n && !strcmp(mode, "first"))
            pick = 0;
        else if (ds->n && !strcmp(mode, "last"))
            pick = (long)ds->n - 1;
        else if (ds->n && (!strcmp(mode, "left_most") || !strcmp(mode, "right_most") ||
                           !strcmp(mode, "top_confidence"))) {
            pick = 0;
            for (size_t i = 1; i < ds->n; i++) {
                const struct wf_det *a = &ds->d[i], *b = &ds->d[pick];
                if ((!strcmp(mode, "left_most") && a->x1 + a->x2 < b->x1 + b->x2) ||
                    (!strcmp(mode, "right_most") && a->x1 + a->x2 > b->x1 + b->x2) ||
                    (!strcmp(mode, "top_confidence") && a->confidence > b->confidence))
                    pick = (long)i;
            }
        } else if (!strcmp(mode, "all")) {
            wf_dets_free(c);
            c = wf_dets_clone(ds);
        }
        if (pick >= 0)
            wf_dets_push_copy(c, &ds->d[pick]);
        *out = wf_value_dets(c);
        return 0;
    }
    if (!strcmp(type, "DetectionsRename")) {
        const json_t *map = json_object_get(op, "class_map");
        const json_t *strict = json_object_get(op, "strict");
        int offset = (int)num_param(op, "new_classes_id_offset", 1024);
        if (json_is_string(strict)) /* the name of a parameter holding the flag */
            strict = vjson(wf_value_dict_get(cx->params, json_string_value(strict)));
        if (!strict)
            strict = json_true(); /* Roboflow's default */
        if (!json_is_boolean(strict))
            return QERR("DetectionsRename: strict must be a boolean");
        struct wf_dets *c;
        json_t *ids;
        if (json_is_string(map)) {
            const struct wf_value *m = wf_value_dict_get(cx->params, json_string_value(map));
            map = vjson(m);
        }
        if (!json_is_object(map))
            return QERR("DetectionsRename: class_map must be a dict");
        ids = json_object();
        if (json_is_true(strict)) {
            /* new ids: position of each target name in the sorted set of targets */
            const char *k;
            json_t *t;
            for (size_t i = 0; i < ds->n; i++)
                if (!json_object_get(map, ds->d[i].class_name)) {
                    json_decref(ids);
                    return QERR("DetectionsRename: class '%s' not found in class_map",
                                ds->d[i].class_name);
                }
            json_object_foreach((json_t *)map, k, t) {
                if (json_is_string(t))
                    json_object_set_new(ids, json_string_value(t), json_integer(0));
            }
            {
                size_t n = json_object_size(ids), idx = 0;
                const char **names = xcalloc(n + 1, sizeof *names);
                json_object_foreach(ids, k, t) names[idx++] = k;
                qsort(names, n, sizeof *names, cmp_strp);
                for (size_t i = 0; i < n; i++)
                    json_object_set_new(ids, names[i], json_integer((json_int_t)i));
                free(names);
            }
        } else {
            const char *k;
            json_t *t;
            json_t *fresh = json_array();
            for (size_t i = 0; i < ds->n; i++)
                json_object_set_new(ids, ds->d[i].class_name, json_integer(ds->d[i].class_id));
            json_object_foreach((json_t *)map, k, t) {
                if (json_is_string(t) && !json_object_get(ids, json_string_value(t)))
                    json_array_append(fresh, t);
            }
            /* sorted(new targets) get offset, offset+1, ... */
            size_t n = json_array_size(fresh);
            const char **names = xcalloc(n + 1, sizeof *names);
            for (size_t i = 0; i < n; i++)
                names[i] = json_string_value(json_array_get(fresh, i));
            qsort(names, n, sizeof *names, cmp_strp);
            for (size_t i = 0; i < n; i++)
                if (!json_object_get(ids, names[i]))
                    json_object_set_new(ids, names[i], json_integer(offset++));
            free(names);
            json_decref(fresh);
        }
        c = wf_dets_clone(ds);
        for (size_t i = 0; i < c->n; i++) {
            const json_t *nn = json_object_get(map, c->d[i].class_name);
            if (json_is_string(nn))
                wf_det_set_str(&c->d[i].class_name, json_string_value(nn));
            c->d[i].class_id = (int)json_integer_value(json_object_get(ids, c->d[i].class_name));
        }
        json_decref(ids);
        *out = wf_value_dets(c);
        return 0;
    }
    if (!strcmp(type, "PickDetectionsByParentClass")) {
        /* the parents first, then the others whose centre lies in a parent box */
        const char *pc = str_param(op, "parent_class", "");
        struct wf_dets *c = wf_dets_new();
        for (size_t i = 0; i < ds->n; i++)
            if (!strcmp(ds->d[i].class_name, pc))
                wf_dets_push_copy(c, &ds->d[i]);
        if (c->n == 0) {
            *out = wf_value_dets(c);
            return 0;
        }
        size_t nparents = c->n;
        for (size_t i = 0; i < ds->n; i++) {
            const struct wf_det *d = &ds->d[i];
            double cx_ = (d->x1 + d->x2) * 0.5, cy_ = (d->y1 + d->y2) * 0.5;
            if (!strcmp(d->class_name, pc))
                continue;
            for (size_t k = 0; k < nparents; k++) {
                const struct wf_det *p = &c->d[k];
                if (p->x1 <= cx_ && cx_ <= p->x2 && p->y1 <= cy_ && cy_ <= p->y2) {
                    wf_dets_push_copy(c, d);
                    break;
                }
            }
        }
        *out = wf_value_dets(c);
        return 0;
    }
    if (!strcmp(type, "SequenceLength")) {
        *out = wf_value_json(json_integer((json_int_t)ds->n));
        return 0;
    }
    if (!strcmp(type, "DetectionsToDictionary")) {
        *out = wf_value_json(wf_dets_serialize(ds));
        return 0;
    }
    return QERR("operation '%s' cannot be applied to detections", type);
}

static int op_image(struct wf_ql_ctx *cx, const char *type, const json_t *op,
                    const struct wf_value *v, struct wf_value **out)
{
    const struct vis_image *im = v->image->img;
    if (!strcmp(type, "ExtractImageProperty")) {
        const char *p = str_param(op, "property_name", "");
        if (!strcmp(p, "size"))
            *out = wf_value_json(json_integer((json_int_t)im->w * im->h));
        else if (!strcmp(p, "height"))
            *out = wf_value_json(json_integer(im->h));
        else if (!strcmp(p, "width"))
            *out = wf_value_json(json_integer(im->w));
        else if (!strcmp(p, "aspect_ratio"))
            *out = wf_value_json(json_real(im->h ? (double)im->w / im->h : 0));
        else
            return QERR("ExtractImageProperty: unknown property '%s'", p);
        return 0;
    }
    if (!strcmp(type, "ConvertImageToJPEG") || !strcmp(type, "ConvertImageToBase64")) {
        uint8_t *jpg = NULL;
        size_t len = 0;
        int q = (int)num_param(op, "compression_level", 95);
        char *b64;
        if (q < 1 || q > 100)
            q = 95;
        if (vis_encode_jpeg(im, q, &jpg, &len) < 0)
            return QERR("%s: cannot encode the image", type);
        b64 = base64_encode(jpg, len);
        free(jpg);
        /* bytes serialize as base64: the value is kept in its serialized form */
        *out = wf_value_json(json_string(b64));
        free(b64);
        return 0;
    }
    return QERR("operation '%s' cannot be applied to an image", type);
}

static json_t *to_str(const json_t *j)
{
    char *s = wf__py_str(j);
    json_t *r = json_string(s);
    free(s);
    return r;
}

static int op_json(struct wf_ql_ctx *cx, const char *type, const json_t *op,
                   const struct wf_value *v, struct wf_value **out, int depth)
{
    const json_t *j = vjson(v);
    double d;

    if (!strcmp(type, "SequenceLength")) {
        if (v->type == WF_V_LIST || v->type == WF_V_DICT)
            *out = wf_value_json(json_integer((json_int_t)v->n));
        else if (json_is_array(j))
            *out = wf_value_json(json_integer((json_int_t)json_array_size(j)));
        else if (json_is_object(j))
            *out = wf_value_json(json_integer((json_int_t)json_object_size(j)));
        else if (json_is_string(j))
            *out = wf_value_json(json_integer((json_int_t)json_string_length(j)));
        else
            return QERR("SequenceLength: expected a sequence, got %s", vname(v));
        return 0;
    }
    if (!strcmp(type, "Multiply") || !strcmp(type, "Divide")) {
        const json_t *o = json_object_get(op, "other");
        double x;
        if (json_is_string(o))
            o = vjson(wf_value_dict_get(cx->params, json_string_value(o)));
        if (!vnum(v, &d) || !json_is_number(o))
            return QERR("%s: expected numbers, got %s", type, vname(v));
        x = json_number_value(o);
        if (!strcmp(type, "Divide")) {
            if (x == 0)
                return QERR("Divide: division by zero");
            *out = num_value(d / x, false);
        } else {
            *out = num_value(d * x, json_is_integer(j) && json_is_integer(o));
        }
        return 0;
    }
    if (!strcmp(type, "StringToLowerCase") || !strcmp(type, "StringToUpperCase")) {
        char *s;
        if (!json_is_string(j))
            return QERR("%s: expected a string, got %s", type, vname(v));
        s = xstrdup(json_string_value(j));
        for (char *p = s; *p; p++)
            *p = (char)(type[8] == 'L' ? tolower((unsigned char)*p) : toupper((unsigned char)*p));
        *out = wf_value_json(json_string(s));
        free(s);
        return 0;
    }
    if (!strcmp(type, "ToString")) {
        json_t *in = wf_value_to_json(v, false);
        *out = wf_value_json(to_str(in));
        json_decref(in);
        return 0;
    }
    if (!strcmp(type, "ToNumber")) {
        const char *mode = str_param(op, "cast_to", "float");
        if (json_is_string(j)) {
            char *end;
            d = strtod(json_string_value(j), &end);
            if (end == json_string_value(j) || *end)
                return QERR("ToNumber: '%s' is not a number", json_string_value(j));
        } else if (!vnum(v, &d)) {
            return QERR("ToNumber: expected a string or number, got %s", vname(v));
        }
        *out = !strcmp(mode, "int") ? num_value(trunc(d), true) : num_value(d, false);
        return 0;
    }
    if (!strcmp(type, "ToBoolean")) {
        bool b;
        if (json_is_boolean(j))
            b = json_is_true(j);
        else if (json_is_number(j))
            b = json_number_value(j) != 0;
        else if (json_is_string(j))
            b = !strcasecmp(json_string_value(j), "true");
        else
            return QERR("ToBoolean: cannot convert %s", vname(v));
        *out = wf_value_json(json_boolean(b));
        return 0;
    }
    if (!strcmp(type, "NumberRound")) {
        int dd = (int)num_param(op, "decimal_digits", 0);
        double m;
        if (!vnum(v, &d) || dd < 0 || dd > 15)
            return QERR("NumberRound: expected a number, got %s", vname(v));
        m = pow(10, dd);
        *out = num_value(nearbyint(d * m) / m, dd == 0 && false);
        return 0;
    }
    if (!strcmp(type, "LookupTable")) {
        const json_t *t = json_object_get(op, "lookup_table");
        json_t *k = to_str(j ? j : json_null());
        const json_t *hit = json_object_get(t, json_string_value(k));
        json_decref(k);
        *out = hit ? wf_value_json(json_deep_copy(hit)) : wf_value_ref((struct wf_value *)v);
        return 0;
    }
    if (!strcmp(type, "StringSubSequence")) {
        long start = (long)num_param(op, "start", 0), end = (long)num_param(op, "end", -1);
        long n;
        if (!json_is_string(j))
            return QERR("StringSubSequence: expected a string, got %s", vname(v));
        n = (long)json_string_length(j);
        if (start < 0)
            start += n;
        if (end < 0)
            end += n;
        start = MAX(0, MIN(start, n));
        end = MAX(start, MIN(end, n));
        *out = wf_value_json(json_stringn(json_string_value(j) + start, (size_t)(end - start)));
        return 0;
    }
    if (!strcmp(type, "ClassificationPropertyExtract")) {
        const char *p = str_param(op, "property_name", "");
        const json_t *preds = json_object_get(j, "predictions");
        if (!json_is_object(j))
            return QERR("ClassificationPropertyExtract: expected a classification result, got %s",
                        vname(v));
        if (json_is_array(preds)) { /* single-label */
            const json_t *top = json_array_get(preds, 0);
            if (!strcmp(p, "top_class"))
                *out = wf_value_json(json_deep_copy(json_object_get(j, "top")));
            else if (!strcmp(p, "top_class_confidence") ||
                     !strcmp(p, "top_class_confidence_single"))
                *out = wf_value_json(json_deep_copy(json_object_get(j, "confidence")));
            else if (!strcmp(p, "all_classes") || !strcmp(p, "all_confidences")) {
                json_t *a = json_array();
                size_t i;
                const json_t *e;
                json_array_foreach(preds, i, e) json_array_append(
                    a, json_object_get(e, p[4] == 'c' && p[5] == 'l' ? "class" : "confidence"));
                *out = wf_value_json(a);
            } else
                return QERR("ClassificationPropertyExtract: unknown property '%s'", p);
            (void)top;
        } else { /* multi-label: predictions {cls: {confidence, class_id}} */
            const json_t *pc = json_object_get(j, "predicted_classes");
            if (!strcmp(p, "top_class"))
                *out = wf_value_json(json_deep_copy(pc ? pc : json_array()));
            else if (!strcmp(p, "top_class_confidence") ||
                     !strcmp(p, "top_class_confidence_single") || !strcmp(p, "all_confidences") ||
                     !strcmp(p, "all_classes")) {
                json_t *a = json_array();
                const char *k;
                json_t *e;
                bool classes = !strcmp(p, "all_classes");
                json_object_foreach((json_t *)preds, k, e) {
                    if (classes)
                        json_array_append_new(a, json_string(k));
                    else
                        json_array_append(a, json_object_get(e, "confidence"));
                }
                *out = wf_value_json(a);
            } else
                return QERR("ClassificationPropertyExtract: unknown property '%s'", p);
        }
        return 0;
    }
    if (!strcmp(type, "SequenceApply") || !strcmp(type, "SequenceMap")) {
        struct wf_value *res;
        size_t n;
        if (v->type == WF_V_LIST)
            n = v->n;
        else if (json_is_array(j))
            n = json_array_size(j);
        else
            return QERR("%s: expected a list, got %s", type, vname(v));
        res = wf_value_list(n);
        for (size_t i = 0; i < n; i++) {
            struct wf_value *e = v->type == WF_V_LIST
                                     ? wf_value_ref(v->items[i])
                                     : wf_value_json(json_deep_copy(json_array_get(j, i)));
            struct wf_value *r = NULL;
            int rc;
            if (!strcmp(type, "SequenceMap")) {
                json_t *lt = json_pack("[{s:s,s:O}]", "type", "LookupTable", "lookup_table",
                                       json_object_get(op, "lookup_table"));
                rc = apply_depth(cx, lt, e, &r, depth + 1);
                json_decref(lt);
            } else {
                rc = apply_depth(cx, json_object_get(op, "operations"), e, &r, depth + 1);
            }
            wf_value_unref(e);
            if (rc < 0) {
                wf_value_unref(res);
                return rc;
            }
            wf_value_list_set(res, i, r);
        }
        *out = res;
        return 0;
    }
    if (!strcmp(type, "NumericSequenceAggregate")) {
        const char *fn = str_param(op, "function", "sum");
        size_t i;
        const json_t *e;
        double acc = 0;
        bool first = true, all_int = true;
        if (!json_is_array(j))
            return QERR("NumericSequenceAggregate: expected a list, got %s", vname(v));
        json_array_foreach(j, i, e) {
            double x;
            if (!json_is_number(e))
                return QERR("NumericSequenceAggregate: non-numeric element");
            x = json_number_value(e);
            all_int &= json_is_integer(e);
            if (first)
                acc = x, first = false;
            else if (!strcmp(fn, "sum"))
                acc += x;
            else if (!strcmp(fn, "min"))
                acc = MIN(acc, x);
            else if (!strcmp(fn, "max"))
                acc = MAX(acc, x);
        }
        if (first && json_object_get(op, "neutral_value") &&
            !json_is_null(json_object_get(op, "neutral_value"))) {
            *out = wf_value_json(json_deep_copy(json_object_get(op, "neutral_value")));
            return 0;
        }
        if (first && strcmp(fn, "sum") != 0)
            return QERR("NumericSequenceAggregate: empty sequence");
        *out = num_value(acc, all_int);
        return 0;
    }
    if (!strcmp(type, "SequenceAggregate")) {
        const char *mode = str_param(op, "mode", "first");
        size_t n = json_array_size(j);
        if (!json_is_array(j) || n == 0)
            return QERR("SequenceAggregate: expected a non-empty list");
        if (!strcmp(mode, "first") || !strcmp(mode, "last")) {
            *out = wf_value_json(json_deep_copy(json_array_get(j, mode[0] == 'f' ? 0 : n - 1)));
            return 0;
        }
        size_t best = 0, bestc = 0;
        for (size_t a = 0; a < n; a++) {
            size_t cnt = 0;
            for (size_t b = 0; b < n; b++)
                cnt += json_equal(json_array_get(j, a), json_array_get(j, b));
            bool better = !strcmp(mode, "most_common") ? cnt > bestc : (a == 0 || cnt < bestc);
            if (better)
                best = a, bestc = cnt;
        }
        *out = wf_value_json(json_deep_copy(json_array_get(j, best)));
        return 0;
    }
    if (!strcmp(type, "SequenceElementsCount")) {
        json_t *counts = json_object();
        size_t i;
        const json_t *e;
        if (!json_is_array(j))
            return QERR("SequenceElementsCount: expected a list, got %s", vname(v));
        json_array_foreach(j, i, e) {
            json_t *k = to_str(e);
            const json_t *c = json_object_get(counts, json_string_value(k));
            json_object_set_new(counts, json_string_value(k),
                                json_integer(c ? json_integer_value(c) + 1 : 1));
            json_decref(k);
        }
        *out = wf_value_json(counts);
        return 0;
    }
    if (!strcmp(type, "StringMatches")) {
        const char *re = str_param(op, "regex", NULL);
        regex_t rx;
        int m;
        if (!json_is_string(j) || !re)
            return QERR("StringMatches: expected a string and a 'regex'");
        if (strlen(re) > 1024 || regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
            return QERR("StringMatches: invalid regex");
        m = regexec(&rx, json_string_value(j), 0, NULL, 0);
        regfree(&rx);
        *out = wf_value_json(json_boolean(m == 0));
        return 0;
    }
    if (!strcmp(type, "ConvertDictionaryToJSON")) {
        json_t *in = wf_value_to_json(v, true);
        char *s = json_dumps(in, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        json_decref(in);
        *out = wf_value_json(json_string(s ? s : "null"));
        free(s);
        return 0;
    }
    return QERR("operation '%s' cannot be applied to %s", type, vname(v));
}

static int apply_depth(struct wf_ql_ctx *cx, const json_t *ops, struct wf_value *v,
                       struct wf_value **out, int depth)
{
    size_t i;
    const json_t *op;
    struct wf_value *cur = wf_value_ref(v);

    if (depth > WF_MAX_QL_DEPTH) {
        wf_value_unref(cur);
        return QERR("query language nested deeper than %d levels", WF_MAX_QL_DEPTH);
    }
    if (ops && !json_is_array(ops)) {
        wf_value_unref(cur);
        return QERR("operations must be a list");
    }
    json_array_foreach(ops, i, op) {
        const char *type = json_string_value(json_object_get(op, "type"));
        struct wf_value *next = NULL;
        int rc;
        if (!type) {
            wf_value_unref(cur);
            return QERR("operation #%zu: missing 'type'", i);
        }
        if (!strcmp(type, "RandomNumber")) { /* ignores its input */
            double lo = num_param(op, "min_value", 0.0), hi = num_param(op, "max_value", 1.0);
            uint64_t r;
            rand_bytes(&r, sizeof r);
            wf_value_unref(cur);
            cur = wf_value_json(json_real(lo + (hi - lo) * ((double)(r >> 11) / 9007199254740992.0)));
            continue;
        }
        if (wf_value_is_null(cur) && strcmp(type, "ToString") != 0) {
            wf_value_unref(cur);
            return QERR("operation '%s' applied to None", type);
        }
        if (cur->type == WF_V_DETS)
            rc = op_dets(cx, type, op, cur, &next, depth);
        else if (cur->type == WF_V_IMAGE)
            rc = op_image(cx, type, op, cur, &next);
        else
            rc = op_json(cx, type, op, cur, &next, depth);
        wf_value_unref(cur);
        if (rc < 0)
            return rc;
        cur = next;
    }
    *out = cur;
    return 0;
}

int wf__ql_apply(struct wf_ql_ctx *cx, const json_t *ops, struct wf_value *v,
                 struct wf_value **out)
{
    return apply_depth(cx, ops, v, out, 0);
}

/* ---- statements ------------------------------------------------------------------------- */
static int operand(struct wf_ql_ctx *cx, const json_t *o, struct wf_value **out, int depth)
{
    const char *type = json_string_value(json_object_get(o, "type"));
    const json_t *ops = json_object_get(o, "operations");
    struct wf_value *base;
    int rc;

    if (!ops)
        ops = json_object_get(o, "ops");
    if (!type)
        return QERR("operand without 'type'");
    if (!strcmp(type, "StaticOperand")) {
        /* the statement belongs to this run (literals are copied per run), so
         * its value can be shared instead of copied */
        json_t *val = json_object_get(o, "value");
        base = wf_value_json(val ? json_incref(val) : NULL);
    } else if (!strcmp(type, "DynamicOperand")) {
        const char *name = json_string_value(json_object_get(o, "operand_name"));
        if (!name)
            name = "_";
        const json_t *op0 = json_array_get(ops, 0);
        const char *t0 = json_string_value(json_object_get(op0, "type"));
        if (!strcmp(name, "_") && cx->cur && t0 && !strcmp(t0, "ExtractDetectionProperty")) {
            /* fast path: read the property of the detection under test
             * without materialising a one-detection set */
            const char *p = json_string_value(json_object_get(op0, "property_name"));
            json_t *x = det_property(cx->cur, p ? p : "");
            json_t *rest;
            if (!x)
                return QERR("ExtractDetectionProperty: unknown detection property '%s'",
                            p ? p : "");
            base = wf_value_json(x);
            if (json_array_size(ops) == 1) {
                *out = base;
                return 0;
            }
            rest = json_array();
            for (size_t k = 1; k < json_array_size(ops); k++)
                json_array_append(rest, json_array_get(ops, k));
            rc = apply_depth(cx, rest, base, out, depth + 1);
            json_decref(rest);
            wf_value_unref(base);
            return rc;
        } else if (!strcmp(name, "_") && cx->cur) {
            struct wf_dets *one = wf_dets_new();
            wf_dets_push_copy(one, cx->cur);
            base = wf_value_dets(one);
        } else {
            struct wf_value *p = wf_value_dict_get(cx->params, name);
            if (!p)
                return QERR("operand '%s' is not defined in the evaluation parameters", name);
            base = wf_value_ref(p);
        }
    } else {
        return QERR("unknown operand type '%s'", type);
    }
    rc = apply_depth(cx, ops, base, out, depth + 1);
    wf_value_unref(base);
    return rc;
}

static bool json_eq_num(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq_num(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    return json_equal(a, b);
}

static bool json_in(const json_t *x, const json_t *seq)
{
    size_t i;
    const json_t *e;
    if (json_is_string(seq) && json_is_string(x))
        return strstr(json_string_value(seq), json_string_value(x)) != NULL;
    if (json_is_object(seq) && json_is_string(x))
        return json_object_get(seq, json_string_value(x)) != NULL;
    json_array_foreach(seq, i, e) {
        if (json_eq_num(x, e))
            return true;
    }
    return false;
}

static bool point_in_poly(double px, double py, const json_t *poly)
{
    size_t n = json_array_size(poly);
    bool in = false;
    for (size_t i = 0, j = n - 1; i < n; j = i++) {
        const json_t *a = json_array_get(poly, i), *b = json_array_get(poly, j);
        double xi = json_number_value(json_array_get(a, 0)), yi = json_number_value(json_array_get(a, 1));
        double xj = json_number_value(json_array_get(b, 0)), yj = json_number_value(json_array_get(b, 1));
        if ((yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi)
            in = !in;
    }
    return in;
}

/* JSON view of a value: borrowed (new reference) when it is plain JSON. */
static json_t *json_view(const struct wf_value *v)
{
    if (v && v->type == WF_V_JSON)
        return json_incref(v->json);
    return wf_value_to_json(v, false);
}

static int binary(struct wf_ql_ctx *cx, const char *cmp, const struct wf_value *l,
                  const struct wf_value *r, bool *res)
{
    json_t *lj = json_view(l), *rj = json_view(r);
    double a, b;
    int rc = 0;

    if (!strcmp(cmp, "(Number) ==") || !strcmp(cmp, "(Number) !="))
        cmp += 9;
    if (!strcmp(cmp, "==") || !strcmp(cmp, "!=")) {
        bool eq = json_eq_num(lj, rj);
        *res = cmp[0] == '=' ? eq : !eq;
    } else if (str_has_prefix(cmp, "(Number)") && strcmp(cmp, "(Number) in range") != 0) {
        if (!json_is_number(lj) || !json_is_number(rj)) {
            rc = QERR("comparator '%s' expects numbers, got %s and %s", cmp, vname(l), vname(r));
            goto out;
        }
        a = json_number_value(lj), b = json_number_value(rj);
        if (!strcmp(cmp, "(Number) >"))
            *res = a > b;
        else if (!strcmp(cmp, "(Number) >="))
            *res = a >= b;
        else if (!strcmp(cmp, "(Number) <"))
            *res = a < b;
        else if (!strcmp(cmp, "(Number) <="))
            *res = a <= b;
        else
            rc = QERR("unknown comparator '%s'", cmp);
    } else if (!strcmp(cmp, "(Number) in range") || !strcmp(cmp, "in range")) {
        if (!json_is_number(lj) || json_array_size(rj) != 2 ||
            !json_is_number(json_array_get(rj, 0)) || !json_is_number(json_array_get(rj, 1))) {
            rc = QERR("comparator '%s' expects a number and [min, max]", cmp);
            goto out;
        }
        a = json_number_value(lj);
        *res = a >= json_number_value(json_array_get(rj, 0)) &&
               a <= json_number_value(json_array_get(rj, 1));
    } else if (str_has_prefix(cmp, "(String)")) {
        const char *s, *t;
        size_t ls, lt;
        if (!json_is_string(lj) || !json_is_string(rj)) {
            rc = QERR("comparator '%s' expects strings, got %s and %s", cmp, vname(l), vname(r));
            goto out;
        }
        s = json_string_value(lj), t = json_string_value(rj);
        ls = strlen(s), lt = strlen(t);
        if (!strcmp(cmp, "(String) startsWith"))
            *res = !strncmp(s, t, lt);
        else if (!strcmp(cmp, "(String) endsWith"))
            *res = ls >= lt && !strcmp(s + ls - lt, t);
        else if (!strcmp(cmp, "(String) contains"))
            *res = strstr(s, t) != NULL;
        else
            rc = QERR("unknown comparator '%s'", cmp);
    } else if (!strcmp(cmp, "in") || !strcmp(cmp, "in (Sequence)")) {
        *res = json_in(lj, rj);
    } else if (!strcmp(cmp, "any in (Sequence)") || !strcmp(cmp, "all in (Sequence)") ||
               !strcmp(cmp, "any in") || !strcmp(cmp, "all in")) {
        bool all = cmp[0] == 'a' && cmp[1] == 'l';
        size_t i;
        const json_t *e;
        if (!json_is_array(lj)) {
            rc = QERR("comparator '%s' expects a list on the left, got %s", cmp, vname(l));
            goto out;
        }
        *res = all;
        json_array_foreach(lj, i, e) {
            bool in = json_in(e, rj);
            if (all && !in)
                *res = false;
            if (!all && in)
                *res = true;
        }
    } else if (!strcmp(cmp, "(Detection) in zone")) {
        const struct wf_dets *ds = l && l->type == WF_V_DETS ? l->dets : NULL;
        if (!ds || ds->n == 0 || !json_is_array(rj) || json_array_size(rj) < 3) {
            rc = QERR("comparator '%s' expects a detection and a polygon", cmp);
            goto out;
        }
        *res = point_in_poly((ds->d[0].x1 + ds->d[0].x2) / 2.0, (ds->d[0].y1 + ds->d[0].y2) / 2.0,
                             rj);
    } else {
        rc = QERR("unknown comparator '%s'", cmp);
    }
out:
    json_decref(lj);
    json_decref(rj);
    return rc;
}

static int seq_len(const struct wf_value *v, size_t *n)
{
    const json_t *j = vjson(v);
    if (v && v->type == WF_V_DETS)
        *n = v->dets->n;
    else if (v && (v->type == WF_V_LIST || v->type == WF_V_DICT))
        *n = v->n;
    else if (json_is_array(j))
        *n = json_array_size(j);
    else if (json_is_object(j))
        *n = json_object_size(j);
    else if (json_is_string(j))
        *n = json_string_length(j);
    else
        return -1;
    return 0;
}

static int eval_depth(struct wf_ql_ctx *cx, const json_t *stmt, bool *res, int depth)
{
    const char *type = json_string_value(json_object_get(stmt, "type"));
    bool negate = json_is_true(json_object_get(stmt, "negate"));
    int rc = 0;

    if (depth > WF_MAX_QL_DEPTH)
        return QERR("statements nested deeper than %d levels", WF_MAX_QL_DEPTH);
    if (!type)
        return QERR("statement without 'type'");
    if (!strcmp(type, "StatementGroup")) {
        const json_t *sts = json_object_get(stmt, "statements");
        const char *op = json_string_value(json_object_get(stmt, "operator"));
        bool and_ = op && !strcmp(op, "and");
        size_t i;
        const json_t *s;
        if (!json_is_array(sts) || json_array_size(sts) == 0)
            return QERR("StatementGroup needs at least one statement");
        *res = and_;
        json_array_foreach(sts, i, s) {
            bool r;
            if ((rc = eval_depth(cx, s, &r, depth + 1)) < 0)
                return rc;
            if (and_ && !r) {
                *res = false;
                break;
            }
            if (!and_ && r) {
                *res = true;
                break;
            }
        }
    } else if (!strcmp(type, "BinaryStatement")) {
        struct wf_value *l = NULL, *r = NULL;
        const char *cmp = json_string_value(json_object_get(json_object_get(stmt, "comparator"),
                                                            "type"));
        if (!cmp)
            return QERR("BinaryStatement without comparator type");
        if ((rc = operand(cx, json_object_get(stmt, "left_operand"), &l, depth)) < 0)
            return rc;
        if ((rc = operand(cx, json_object_get(stmt, "right_operand"), &r, depth)) < 0) {
            wf_value_unref(l);
            return rc;
        }
        rc = binary(cx, cmp, l, r, res);
        wf_value_unref(l);
        wf_value_unref(r);
    } else if (!strcmp(type, "UnaryStatement")) {
        struct wf_value *v = NULL;
        const char *op = json_string_value(json_object_get(json_object_get(stmt, "operator"),
                                                           "type"));
        if (!op)
            return QERR("UnaryStatement without operator type");
        if ((rc = operand(cx, json_object_get(stmt, "operand"), &v, depth)) < 0)
            return rc;
        if (!strcmp(op, "Exists"))
            *res = !wf_value_is_null(v);
        else if (!strcmp(op, "DoesNotExist"))
            *res = wf_value_is_null(v);
        else if (!strcmp(op, "(Boolean) is True") || !strcmp(op, "(Boolean) is False")) {
            const json_t *j = vjson(v);
            if (!json_is_boolean(j))
                rc = QERR("operator '%s' expects a boolean, got %s", op, vname(v));
            else
                *res = json_is_true(j) == (op[13] == 'T');
        } else if (!strcmp(op, "(Sequence) is empty") || !strcmp(op, "(Sequence) is not empty")) {
            size_t n;
            if (seq_len(v, &n) < 0)
                rc = QERR("operator '%s' expects a sequence, got %s", op, vname(v));
            else
                *res = strstr(op, "not") ? n > 0 : n == 0;
        } else {
            rc = QERR("unknown operator '%s'", op);
        }
        wf_value_unref(v);
    } else {
        return QERR("unknown statement type '%s'", type);
    }
    if (rc == 0 && negate)
        *res = !*res;
    return rc;
}

int wf__ql_eval(struct wf_ql_ctx *cx, const json_t *stmt, bool *result)
{
    return eval_depth(cx, stmt, result, 0);
}

/* ---- compile-time checks ----------------------------------------------------------- */
/* Every operation with the parameters it requires (pydantic would refuse a
 * definition without them). */
static const struct {
    const char *type;
    const char *required[3];
} known_ops[] = {
    {"StringToLowerCase", {NULL}},
    {"StringToUpperCase", {NULL}},
    {"LookupTable", {"lookup_table", NULL}},
    {"ToNumber", {"cast_to", NULL}},
    {"NumberRound", {"decimal_digits", NULL}},
    {"SequenceMap", {"lookup_table", NULL}},
    {"SequenceApply", {"operations", NULL}},
    {"NumericSequenceAggregate", {"function", NULL}},
    {"SequenceAggregate", {"mode", NULL}},
    {"ToString", {NULL}},
    {"ToBoolean", {NULL}},
    {"StringSubSequence", {NULL}},
    {"DetectionsPropertyExtract", {"property_name", NULL}},
    {"ExtractDetectionProperty", {"property_name", NULL}},
    {"DetectionsFilter", {"filter_operation", NULL}},
    {"DetectionsOffset", {"offset_x", "offset_y", NULL}},
    {"DetectionsShift", {"shift_x", "shift_y", NULL}},
    {"DetectionsRename", {"class_map", NULL}},
    {"RandomNumber", {NULL}},
    {"StringMatches", {"regex", NULL}},
    {"ExtractImageProperty", {"property_name", NULL}},
    {"SequenceLength", {NULL}},
    {"SequenceElementsCount", {NULL}},
    {"Multiply", {"other", NULL}},
    {"Divide", {"other", NULL}},
    {"DetectionsSelection", {"mode", NULL}},
    {"SortDetections", {"mode", NULL}},
    {"ClassificationPropertyExtract", {"property_name", NULL}},
    {"ConvertImageToJPEG", {NULL}},
    {"ConvertImageToBase64", {NULL}},
    {"DetectionsToDictionary", {NULL}},
    {"ConvertDictionaryToJSON", {NULL}},
    {"PickDetectionsByParentClass", {"parent_class", NULL}},
};

/* Enumerations of operation parameters (Roboflow's enums.py). */
static const char *const det_props[] = {
    "confidence", "class_name", "x_min", "x_max", "y_min", "y_max", "size", "class_id", "center",
    "top_left", "top_right", "bottom_left", "bottom_right", "in_out", "path_deviation", "polygon",
    "time_in_zone", "tracker_id", "velocity", "speed", "smoothed_velocity", "smoothed_speed",
    "image_dimensions", "prediction_type", "keypoints_xy", "rect", "width", "height", "angle", NULL,
};
static const char *const image_props[] = {"size", "height", "width", "aspect_ratio", NULL};
static const char *const sort_modes[] = {"confidence", "x_min", "x_max", "y_min", "y_max",
                                         "size", "center_x", "center_y", NULL};
static const char *const select_modes[] = {"left_most", "right_most", "top_confidence", "first",
                                           "last", NULL};
static const char *const cls_props[] = {"top_class", "top_class_confidence",
                                        "top_class_confidence_single", "all_classes",
                                        "all_confidences", NULL};
static const char *const cast_modes[] = {"int", "float", NULL};
static const char *const agg_fns[] = {"min", "max", "sum", NULL};
static const char *const agg_modes[] = {"first", "last", "most_common", "least_common", NULL};
static const struct {
    const char *op, *field;
    const char *const *values;
} op_enums[] = {
    {"DetectionsPropertyExtract", "property_name", det_props},
    {"ExtractDetectionProperty", "property_name", det_props},
    {"ExtractImageProperty", "property_name", image_props},
    {"SortDetections", "mode", sort_modes},
    {"DetectionsSelection", "mode", select_modes},
    {"ClassificationPropertyExtract", "property_name", cls_props},
    {"ToNumber", "cast_to", cast_modes},
    {"NumericSequenceAggregate", "function", agg_fns},
    {"SequenceAggregate", "mode", agg_modes},
};

static const char *const binary_ops[] = {
    "==", "!=", "(Number) ==", "(Number) !=", "(Number) >", "(Number) >=", "(Number) <",
    "(Number) <=", "(Number) in range", "in range", "(String) startsWith", "(String) endsWith",
    "(String) contains", "in", "in (Sequence)", "any in (Sequence)", "all in (Sequence)",
    "any in", "all in", "(Detection) in zone", NULL,
};
static const char *const unary_ops[] = {
    "Exists", "DoesNotExist", "(Boolean) is True", "(Boolean) is False",
    "(Sequence) is empty", "(Sequence) is not empty", NULL,
};

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (!strcmp(*l, s))
            return true;
    return false;
}

static int check_ops_depth(const json_t *ops, int depth, char *err, size_t errlen);

static int check_operand(const json_t *o, const char *which, int depth, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(o, "type"));
    const json_t *ops = json_object_get(o, "operations");
    if (!ops)
        ops = json_object_get(o, "ops");
    if (!type || (strcmp(type, "StaticOperand") && strcmp(type, "DynamicOperand"))) {
        wf__errf(err, errlen, "%s: expected a StaticOperand or DynamicOperand", which);
        return ERR_INVALID;
    }
    if (!strcmp(type, "DynamicOperand") && json_object_get(o, "operand_name") &&
        !json_is_string(json_object_get(o, "operand_name"))) {
        wf__errf(err, errlen, "%s: operand_name must be a string", which);
        return ERR_INVALID;
    }
    if (!strcmp(type, "StaticOperand") && !json_object_get(o, "value")) {
        wf__errf(err, errlen, "%s: StaticOperand needs a 'value'", which);
        return ERR_INVALID;
    }
    return ops ? check_ops_depth(ops, depth + 1, err, errlen) : 0;
}

static int check_stmt_depth(const json_t *stmt, int depth, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(stmt, "type"));
    int rc;
    if (depth > WF_MAX_QL_DEPTH) {
        wf__errf(err, errlen, "statements nested deeper than %d levels", WF_MAX_QL_DEPTH);
        return ERR_LIMIT;
    }
    if (!type) {
        wf__errf(err, errlen, "statement without 'type'");
        return ERR_INVALID;
    }
    if (json_object_get(stmt, "negate") && !json_is_boolean(json_object_get(stmt, "negate"))) {
        wf__errf(err, errlen, "%s: 'negate' must be a boolean", type);
        return ERR_INVALID;
    }
    if (!strcmp(type, "StatementGroup")) {
        const json_t *sts = json_object_get(stmt, "statements");
        size_t i;
        const json_t *s;
        const json_t *op = json_object_get(stmt, "operator");
        if (op && (!json_is_string(op) || (strcmp(json_string_value(op), "and") &&
                                          strcmp(json_string_value(op), "or")))) {
            wf__errf(err, errlen, "StatementGroup operator must be 'and' or 'or'");
            return ERR_INVALID;
        }
        if (!json_is_array(sts) || json_array_size(sts) == 0) {
            wf__errf(err, errlen, "StatementGroup needs at least one statement");
            return ERR_INVALID;
        }
        json_array_foreach(sts, i, s) {
            if ((rc = check_stmt_depth(s, depth + 1, err, errlen)) < 0)
                return rc;
        }
        return 0;
    }
    if (!strcmp(type, "BinaryStatement")) {
        const char *cmp = json_string_value(json_object_get(json_object_get(stmt, "comparator"), "type"));
        if (!cmp || !in_list(binary_ops, cmp)) {
            wf__errf(err, errlen, "BinaryStatement: unknown comparator '%s'", cmp ? cmp : "");
            return ERR_INVALID;
        }
        if ((rc = check_operand(json_object_get(stmt, "left_operand"), "left_operand", depth, err,
                                errlen)) < 0)
            return rc;
        return check_operand(json_object_get(stmt, "right_operand"), "right_operand", depth, err,
                             errlen);
    }
    if (!strcmp(type, "UnaryStatement")) {
        const char *op = json_string_value(json_object_get(json_object_get(stmt, "operator"), "type"));
        if (!op || !in_list(unary_ops, op)) {
            wf__errf(err, errlen, "UnaryStatement: unknown operator '%s'", op ? op : "");
            return ERR_INVALID;
        }
        return check_operand(json_object_get(stmt, "operand"), "operand", depth, err, errlen);
    }
    wf__errf(err, errlen, "unknown statement type '%s'", type);
    return ERR_INVALID;
}

static int check_ops_depth(const json_t *ops, int depth, char *err, size_t errlen)
{
    size_t i, k;
    const json_t *op;
    if (depth > WF_MAX_QL_DEPTH) {
        wf__errf(err, errlen, "operations nested deeper than %d levels", WF_MAX_QL_DEPTH);
        return ERR_LIMIT;
    }
    if (!json_is_array(ops)) {
        wf__errf(err, errlen, "operations must be a list");
        return ERR_INVALID;
    }
    json_array_foreach(ops, i, op) {
        const char *type = json_string_value(json_object_get(op, "type"));
        int rc = 0;
        if (!type) {
            wf__errf(err, errlen, "operation #%zu: missing 'type'", i);
            return ERR_INVALID;
        }
        for (k = 0; k < ARRAY_LEN(known_ops); k++)
            if (!strcmp(known_ops[k].type, type))
                break;
        if (k == ARRAY_LEN(known_ops)) {
            wf__errf(err, errlen, "operation #%zu: unknown or unsupported operation '%s'", i, type);
            return ERR_INVALID;
        }
        for (const char *const *r = known_ops[k].required; *r; r++)
            if (!json_object_get(op, *r)) {
                wf__errf(err, errlen, "operation '%s': missing '%s'", type, *r);
                return ERR_INVALID;
            }
        for (size_t e = 0; e < ARRAY_LEN(op_enums); e++) {
            const char *v;
            if (strcmp(op_enums[e].op, type))
                continue;
            v = json_string_value(json_object_get(op, op_enums[e].field));
            if (!v || !in_list(op_enums[e].values, v)) {
                wf__errf(err, errlen, "operation '%s': '%s' must be one of the allowed values, got %s%s%s",
                         type, op_enums[e].field, v ? "'" : "", v ? v : "a non-string", v ? "'" : "");
                return ERR_INVALID;
            }
        }
        if (!strcmp(type, "DetectionsFilter"))
            rc = check_stmt_depth(json_object_get(op, "filter_operation"), depth + 1, err, errlen);
        else if (!strcmp(type, "SequenceApply"))
            rc = check_ops_depth(json_object_get(op, "operations"), depth + 1, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int wf__ql_check_ops(const json_t *ops, char *err, size_t errlen)
{
    return check_ops_depth(ops, 0, err, errlen);
}

int wf__ql_check_stmt(const json_t *stmt, int depth, char *err, size_t errlen)
{
    return check_stmt_depth(stmt, depth, err, errlen);
}
