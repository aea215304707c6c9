/*
 * blocks/video_analytics.c — analytics and sampling blocks that keep state
 * across the frames of a video, besides the trackers of analytics.c:
 * path_deviation_analytics v1/v2, overlap v1 (stateless), data_aggregator
 * v1, detection_event_log v1, identify_outliers v1, identify_changes v1 and
 * the trackers_sort / trackers_bytetrack v1 blocks (roboflow/trackers).
 *
 * State lives in the run's struct wf_state (wf_call_state), one object per
 * step and video_identifier where Roboflow's block keys its state by video
 * (path_deviation, detection_event_log), and one object per step where
 * Roboflow's block keeps a single state per block instance
 * (data_aggregator, identify_*): the jobs worker gives every video its own
 * wf_state, so those are per video too, and an image job starts fresh on
 * every run.
 *
 * Behaviour follows Roboflow's inference blocks of the same names:
 * - path_deviation: the discrete Fréchet distance between the track's
 *   anchor points so far and reference_path, as the recursive dynamic
 *   program of the block; here one DP row per track is kept and extended
 *   with each new point (the same values in O(len(reference_path)) per
 *   detection and frame), recomputed when reference_path changes.
 * - overlap: the detections (not of overlap_class_name) whose centre lies
 *   strictly inside, or whose box touches, a box of overlap_class_name.
 * - data_aggregator: sum, avg, max, min, count, distinct, count_distinct,
 *   values_counts, values_difference over runs, flushed every `interval`
 *   runs or seconds (wall clock, as Roboflow's datetime.now()).
 * - detection_event_log: per tracker first/last seen frame and time, frame
 *   count, logged once seen frame_threshold frames, stale events removed
 *   every flush_interval frames.
 * - identify_outliers: von Mises–Fisher fit of the window of normalised
 *   embeddings, percentile of the new one's projection.
 * - identify_changes: EMA / SMA / sliding-window average and deviation of
 *   the embeddings and of their cosine similarity to the average.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/track_util.h"
#include "workflow/wf_int.h"

/* ---- shared helpers ----------------------------------------------------------------------- */

/* video_identifier of element i: the image's video_metadata (from_image) or
 * the metadata field; "image" when there is none. */
static const char *va_video(struct wf_call *c, size_t i, bool from_image, const json_t **meta)
{
    const json_t *vm;
    const char *id = NULL;
    if (from_image) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        vm = im ? im->video_metadata : NULL;
        id = im ? im->parent_id : NULL;
    } else {
        vm = wf_arg_json(c, i, "metadata");
    }
    if (json_is_object(vm) && json_string_value(json_object_get(vm, "video_identifier")))
        id = json_string_value(json_object_get(vm, "video_identifier"));
    if (meta)
        *meta = json_is_object(vm) ? vm : NULL;
    return id ? id : "image";
}

static const char *const POSITIONS[] = {"CENTER",      "CENTER_LEFT",   "CENTER_RIGHT", "TOP_CENTER",
                                        "TOP_LEFT",    "TOP_RIGHT",     "BOTTOM_LEFT",  "BOTTOM_CENTER",
                                        "BOTTOM_RIGHT", "CENTER_OF_MASS", NULL};

static int va_position(const char *s)
{
    for (int k = 0; s && POSITIONS[k]; k++)
        if (!strcmp(POSITIONS[k], s))
            return k;
    return -1;
}

/* sv.Detections.get_anchors_coordinates for one detection (float).  The
 * centre of mass of a mask is the centroid of its polygon (the box centre
 * when the polygon is degenerate or missing). */
static void va_anchor(const struct wf_det *d, int pos, double *x, double *y)
{
    double x1 = d->x1, y1 = d->y1, x2 = d->x2, y2 = d->y2, cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
    switch (pos) {
    case 1: *x = x1, *y = cy; return;
    case 2: *x = x2, *y = cy; return;
    case 3: *x = cx, *y = y1; return;
    case 4: *x = x1, *y = y1; return;
    case 5: *x = x2, *y = y1; return;
    case 6: *x = x1, *y = y2; return;
    case 7: *x = cx, *y = y2; return;
    case 8: *x = x2, *y = y2; return;
    case 9:
        if (d->has_mask && d->npoly >= 3) {
            double a = 0, sx = 0, sy = 0;
            for (size_t k = 0; k < d->npoly; k++) {
                const struct wf_point *p = &d->poly[k], *q = &d->poly[(k + 1) % d->npoly];
                double cr = (double)p->x * q->y - (double)q->x * p->y;
                a += cr;
                sx += (p->x + q->x) * cr;
                sy += (p->y + q->y) * cr;
            }
            if (fabs(a) > 1e-12) {
                *x = sx / (3 * a);
                *y = sy / (3 * a);
                return;
            }
        }
        *x = cx, *y = cy;
        return;
    default: *x = cx, *y = cy; return;
    }
}

static int need_tracked(struct wf_call *c, const struct wf_dets *ds, const char *block)
{
    for (size_t k = 0; ds && k < ds->n; k++)
        if (ds->d[k].tracker_id == WF_NO_TRACKER)
            return wf_call_fail(c, "tracker_id not initialized: %s requires tracked detections "
                                   "(put a byte_tracker step before it)", block);
    return 0;
}

static void set_extra(struct wf_det *d, const char *key, json_t *v)
{
    if (!d->extra)
        d->extra = json_object();
    json_object_set_new(d->extra, key, v);
}

/* ---- path_deviation_analytics v1/v2 ---------------------------------------------------------- */

#define PD_MAX_REF 10000        /* points of reference_path */
#define PD_MAX_POINTS 1000000   /* points of one track */
#define PD_MAX_TRACKS 10000     /* tracks per video; the oldest go first beyond */

struct pd_track {
    int64_t id;
    double *pts; /* 2 * n */
    size_t n, cap;
    double *row; /* DP row of the last point, nref entries */
};

struct pd_state {
    double *ref; /* 2 * nref: the reference path the rows were computed for */
    size_t nref;
    struct pd_track *t;
    size_t n, cap;
};

static void pd_free(void *p)
{
    struct pd_state *s = p;
    for (size_t k = 0; k < s->n; k++) {
        free(s->t[k].pts);
        free(s->t[k].row);
    }
    free(s->t);
    free(s->ref);
    free(s);
}

/* Extend the DP of discrete Fréchet distance by point (x, y): row holds
 * D[i-1][*] on entry (first: false) and D[i][*] on return. */
static void frechet_row(double *row, const double *ref, size_t m, double x, double y, bool first)
{
    double left = 0;
    for (size_t j = 0; j < m; j++) {
        double d = hypot(x - ref[2 * j], y - ref[2 * j + 1]), v;
        if (first)
            v = j == 0 ? d : fmax(left, d);
        else if (j == 0)
            v = fmax(row[0], d);
        else
            v = fmax(fmin(fmin(row[j], row[j - 1]), left), d);
        /* row[j-1] must still be D[i-1][j-1] when computing j: keep the
         * previous value aside */
        if (j > 0)
            row[j - 1] = left;
        left = v;
    }
    if (m > 0)
        row[m - 1] = left;
}

static int pd_ref_parse(struct wf_call *c, const json_t *ref, double **out, size_t *n)
{
    size_t k;
    const json_t *p;
    if (!json_is_array(ref) || json_array_size(ref) == 0)
        return wf_call_fail(c, "reference_path must be a non-empty list of [x, y] points");
    if (json_array_size(ref) > PD_MAX_REF)
        return wf_call_fail(c, "reference_path has %zu points (at most %d)", json_array_size(ref), PD_MAX_REF);
    double *r = xmalloc(2 * json_array_size(ref) * sizeof *r);
    json_array_foreach(ref, k, p) {
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_number(json_array_get(p, 0)) ||
            !json_is_number(json_array_get(p, 1))) {
            free(r);
            return wf_call_fail(c, "reference_path point %zu must be [x, y] numbers", k);
        }
        r[2 * k] = json_number_value(json_array_get(p, 0));
        r[2 * k + 1] = json_number_value(json_array_get(p, 1));
    }
    *out = r;
    *n = json_array_size(ref);
    return 0;
}

static int pd_block(struct wf_call *c, int version)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *vid = va_video(c, i, version >= 2, NULL);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        int pos = va_position(wf_arg_str(c, i, "triggering_anchor"));
        double *ref = NULL;
        size_t nref = 0;
        if (need_tracked(c, ds, "path_deviation_analytics") < 0)
            return ERR_INVALID;
        if (pos < 0)
            return wf_call_fail(c, "triggering_anchor must be one of sv.Position (CENTER, BOTTOM_CENTER, ...)");
        if (pd_ref_parse(c, wf_arg_json(c, i, "reference_path"), &ref, &nref) < 0)
            return ERR_INVALID;
        void **slot = wf_call_state(c, vid, pd_free);
        if (!slot) {
            free(ref);
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        }
        struct pd_state *s = *slot;
        if (!s)
            *slot = s = xcalloc(1, sizeof *s);
        if (s->nref != nref || memcmp(s->ref, ref, 2 * nref * sizeof *ref) != 0) {
            /* a new reference path: every row is recomputed from the points */
            free(s->ref);
            s->ref = ref;
            s->nref = nref;
            for (size_t k = 0; k < s->n; k++) {
                struct pd_track *t = &s->t[k];
                t->row = xrealloc(t->row, nref * sizeof *t->row);
                for (size_t q = 0; q < t->n; q++)
                    frechet_row(t->row, s->ref, nref, t->pts[2 * q], t->pts[2 * q + 1], q == 0);
            }
        } else {
            free(ref);
        }
        struct wf_dets *out = wf_dets_new();
        for (size_t k = 0; ds && k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            struct pd_track *t = NULL;
            double x, y;
            for (size_t q = 0; q < s->n && !t; q++)
                if (s->t[q].id == d->tracker_id)
                    t = &s->t[q];
            if (!t) {
                if (s->n == PD_MAX_TRACKS) {
                    free(s->t[0].pts);
                    free(s->t[0].row);
                    memmove(&s->t[0], &s->t[1], (s->n - 1) * sizeof *s->t);
                    s->n--;
                }
                if (s->n == s->cap) {
                    s->cap = s->cap ? 2 * s->cap : 16;
                    s->t = xrealloc(s->t, s->cap * sizeof *s->t);
                }
                t = &s->t[s->n++];
                memset(t, 0, sizeof *t);
                t->id = d->tracker_id;
                t->row = xcalloc(s->nref, sizeof *t->row);
            }
            if (t->n == PD_MAX_POINTS) {
                wf_dets_free(out);
                return wf_call_fail(c, "the path of tracker %lld is longer than %d points", (long long)t->id,
                                    PD_MAX_POINTS);
            }
            if (t->n == t->cap) {
                t->cap = t->cap ? 2 * t->cap : 32;
                t->pts = xrealloc(t->pts, 2 * t->cap * sizeof *t->pts);
            }
            va_anchor(d, pos, &x, &y);
            t->pts[2 * t->n] = x;
            t->pts[2 * t->n + 1] = y;
            frechet_row(t->row, s->ref, s->nref, x, y, t->n == 0);
            t->n++;
            struct wf_det *o = wf_dets_push_copy(out, d);
            set_extra(o, "path_deviation", json_real(t->row[s->nref - 1]));
        }
        wf_out_dets(c, i, "path_deviation_detections", out);
    }
    return 0;
}

static int pd1_run(struct wf_call *c) { return pd_block(c, 1); }
static int pd2_run(struct wf_call *c) { return pd_block(c, 2); }

/* ---- overlap v1 ------------------------------------------------------------------------------- */

static bool coords_overlap(const struct wf_det *ov, const struct wf_det *o, bool center)
{
    if (center) {
        double x = o->x1 + (o->x2 - o->x1) / 2.0, y = o->y1 + (o->y2 - o->y1) / 2.0;
        return x > ov->x1 && x < ov->x2 && y > ov->y1 && y < ov->y2;
    }
    return !(o->x2 < ov->x1 || o->x1 > ov->x2 || o->y2 < ov->y1 || o->y1 > ov->y2);
}

static int overlap_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        const char *cls = wf_arg_str(c, i, "overlap_class_name");
        const char *type = wf_arg_str(c, i, "overlap_type");
        bool center = !type || !strcmp(type, "Center Overlap");
        size_t n = ds ? ds->n : 0;
        bool *keep = xcalloc(n + 1, sizeof *keep);
        for (size_t a = 0; a < n; a++) {
            if (!ds->d[a].class_name || !cls || strcmp(ds->d[a].class_name, cls))
                continue;
            for (size_t b = 0; b < n; b++)
                if (!keep[b] && (!ds->d[b].class_name || strcmp(ds->d[b].class_name, cls)) &&
                    coords_overlap(&ds->d[a], &ds->d[b], center))
                    keep[b] = true;
        }
        struct wf_dets *out = wf_dets_new();
        for (size_t b = 0; b < n; b++)
            if (keep[b])
                wf_dets_push_copy(out, &ds->d[b]);
        free(keep);
        wf_out_dets(c, i, "overlaps", out);
    }
    return 0;
}

/* ---- data_aggregator v1 ------------------------------------------------------------------------ */

static const char *const AGG_MODES[] = {"sum",      "avg",           "max",           "min",
                                        "count",    "distinct",      "count_distinct", "values_counts",
                                        "values_difference", NULL};
enum { AG_SUM, AG_AVG, AG_MAX, AG_MIN, AG_COUNT, AG_DISTINCT, AG_COUNT_DISTINCT, AG_VALUES_COUNTS, AG_DIFF };

#define AGG_MAX_DISTINCT 100000 /* distinct values kept by one aggregation */
static const char *const AGG_UNITS[] = {"seconds", "minutes", "hours", "runs", NULL};

struct agg_one {
    char *out;  /* output name "<field>_<mode>" */
    char *field;
    int mode;
    bool init;  /* a value was seen (max/min/difference) */
    bool is_int;
    int64_t isum;
    double sum;
    size_t n;
    json_t *lo, *hi;  /* max/min/difference: the extreme values */
    json_t *set;      /* distinct: array of distinct values (insertion order) */
    json_t *counts;   /* values_counts: object */
};

struct agg_state {
    struct agg_one *a;
    size_t n;
    int64_t runs;
    int64_t start_ms;
};

static void agg_reset(struct agg_state *s)
{
    for (size_t k = 0; k < s->n; k++) {
        struct agg_one *a = &s->a[k];
        json_decref(a->lo);
        json_decref(a->hi);
        json_decref(a->set);
        json_decref(a->counts);
        char *out = a->out, *field = a->field;
        int mode = a->mode;
        memset(a, 0, sizeof *a);
        a->out = out, a->field = field, a->mode = mode, a->is_int = true;
    }
    s->runs = 0;
    s->start_ms = time_now_ms();
}

static void agg_free(void *p)
{
    struct agg_state *s = p;
    agg_reset(s);
    for (size_t k = 0; k < s->n; k++) {
        free(s->a[k].out);
        free(s->a[k].field);
    }
    free(s->a);
    free(s);
}

/* Python's len() where it exists, else 1 (CountState). */
static size_t py_len(const struct wf_value *v)
{
    if (v->type == WF_V_DETS)
        return v->dets->n;
    if (v->type == WF_V_LIST || v->type == WF_V_DICT)
        return v->n;
    if (v->type == WF_V_JSON) {
        if (json_is_array(v->json))
            return json_array_size(v->json);
        if (json_is_object(v->json))
            return json_object_size(v->json);
        if (json_is_string(v->json)) {
            size_t n = 0;
            for (const unsigned char *s = (const unsigned char *)json_string_value(v->json); *s; s++)
                n += (*s & 0xC0) != 0x80; /* code points */
            return n;
        }
    }
    return 1;
}

static bool num_of(const json_t *j, double *d, bool *is_int)
{
    if (json_is_integer(j) || json_is_boolean(j)) {
        *d = json_is_integer(j) ? (double)json_integer_value(j) : json_is_true(j);
        *is_int = true;
        return true;
    }
    if (json_is_real(j)) {
        *d = json_real_value(j);
        *is_int = false;
        return true;
    }
    return false;
}

/* Python comparison a < b for numbers or strings; <0 when not comparable. */
static int py_less(const json_t *a, const json_t *b)
{
    double x, y;
    bool ix, iy;
    if (num_of(a, &x, &ix) && num_of(b, &y, &iy))
        return x < y;
    if (json_is_string(a) && json_is_string(b))
        return strcmp(json_string_value(a), json_string_value(b)) < 0;
    return -1;
}

/* A hashable scalar as the key Python's json.dumps gives a dict key. */
static char *py_key(const json_t *j)
{
    if (json_is_string(j))
        return xstrdup(json_string_value(j));
    if (json_is_true(j))
        return xstrdup("true");
    if (json_is_false(j))
        return xstrdup("false");
    if (json_is_null(j))
        return xstrdup("null");
    return wf__py_str(j);
}

static bool hashable(const json_t *j) { return !json_is_array(j) && !json_is_object(j); }

static bool set_has(const json_t *set, const json_t *v)
{
    size_t k;
    const json_t *e;
    json_array_foreach(set, k, e) {
        double x, y;
        bool ix, iy;
        if (num_of(e, &x, &ix) && num_of(v, &y, &iy) ? x == y : json_equal((json_t *)e, (json_t *)v))
            return true;
    }
    return false;
}

static int agg_add_distinct(struct wf_call *c, struct agg_one *a, const json_t *v)
{
    if (!hashable(v))
        return wf_call_fail(c, "data_aggregator: unhashable value for '%s' (%s)", a->field,
                            json_is_array(v) ? "list" : "dict");
    if (set_has(a->set, v))
        return 0;
    if (json_array_size(a->set) >= AGG_MAX_DISTINCT)
        return wf_call_fail(c, "data_aggregator: more than %d distinct values for '%s'", AGG_MAX_DISTINCT,
                            a->field);
    json_array_append_new(a->set, json_deep_copy(v));
    return 0;
}

static int agg_on_data(struct wf_call *c, struct agg_one *a, const struct wf_value *v)
{
    json_t *j = NULL;
    int rc = 0;
    double d;
    bool isint;
    if (a->mode == AG_COUNT) {
        a->n += py_len(v);
        return 0;
    }
    if (v->type == WF_V_JSON)
        j = json_incref(v->json);
    else if (v->type == WF_V_NULL)
        j = json_null();
    else
        j = wf_value_to_json(v, false);
    switch (a->mode) {
    case AG_SUM:
    case AG_AVG:
        if (!num_of(j, &d, &isint)) {
            rc = wf_call_fail(c, "data_aggregator: cannot %s a non-number value of '%s'",
                              a->mode == AG_SUM ? "sum" : "average", a->field);
            break;
        }
        if (isint && a->is_int && !__builtin_add_overflow(a->isum, (int64_t)d, &a->isum)) {
            /* exact integer sum */
        } else {
            a->is_int = false;
        }
        a->sum += d;
        a->n++;
        break;
    case AG_MAX:
    case AG_MIN:
    case AG_DIFF:
        if (a->mode == AG_DIFF && !num_of(j, &d, &isint)) {
            rc = wf_call_fail(c, "data_aggregator: values_difference of a non-number value of '%s'", a->field);
            break;
        }
        if (!a->init) {
            a->lo = json_incref(j);
            a->hi = json_incref(j);
            a->init = true;
            break;
        }
        {
            int lt = py_less(j, a->lo), gt = py_less(a->hi, j);
            if (lt < 0 || gt < 0) {
                rc = wf_call_fail(c, "data_aggregator: values of '%s' cannot be compared", a->field);
                break;
            }
            if (lt) {
                json_decref(a->lo);
                a->lo = json_incref(j);
            }
            if (gt) {
                json_decref(a->hi);
                a->hi = json_incref(j);
            }
        }
        break;
    case AG_DISTINCT:
    case AG_COUNT_DISTINCT:
        if (!a->set)
            a->set = json_array();
        if (json_is_array(j)) {
            size_t k;
            json_t *e;
            json_array_foreach(j, k, e) if ((rc = agg_add_distinct(c, a, e)) < 0) break;
        } else {
            rc = agg_add_distinct(c, a, j);
        }
        break;
    case AG_VALUES_COUNTS: {
        if (!a->counts)
            a->counts = json_object();
        size_t k, n = json_is_array(j) ? json_array_size(j) : 1;
        for (k = 0; k < n && rc == 0; k++) {
            const json_t *e = json_is_array(j) ? json_array_get(j, k) : j;
            if (!hashable(e)) {
                rc = wf_call_fail(c, "data_aggregator: unhashable value for '%s'", a->field);
                break;
            }
            char *key = py_key(e);
            json_t *cur = json_object_get(a->counts, key);
            if (!cur && json_object_size(a->counts) >= AGG_MAX_DISTINCT)
                rc = wf_call_fail(c, "data_aggregator: more than %d distinct values for '%s'", AGG_MAX_DISTINCT,
                                  a->field);
            else
                json_object_set_new(a->counts, key, json_integer(cur ? json_integer_value(cur) + 1 : 1));
            free(key);
        }
        break;
    }
    }
    json_decref(j);
    return rc;
}

static json_t *agg_result(const struct agg_one *a)
{
    switch (a->mode) {
    case AG_SUM:
        return a->is_int ? json_integer(a->isum) : json_real(a->sum);
    case AG_AVG:
        return a->n ? json_real(a->sum / (double)a->n) : json_null();
    case AG_MAX:
        return a->hi ? json_deep_copy(a->hi) : json_null();
    case AG_MIN:
        return a->lo ? json_deep_copy(a->lo) : json_null();
    case AG_COUNT:
        return json_integer((json_int_t)a->n);
    case AG_DISTINCT:
        return a->set ? json_deep_copy(a->set) : json_array();
    case AG_COUNT_DISTINCT:
        return json_integer(a->set ? (json_int_t)json_array_size(a->set) : 0);
    case AG_VALUES_COUNTS:
        return a->counts ? json_deep_copy(a->counts) : json_object();
    case AG_DIFF: {
        if (!a->init)
            return json_null();
        double lo, hi;
        bool il, ih;
        num_of(a->lo, &lo, &il);
        num_of(a->hi, &hi, &ih);
        if (il && ih)
            return json_integer((json_int_t)(hi - lo));
        return json_real(hi - lo);
    }
    }
    return json_null();
}

static int agg_mode_index(const char *s)
{
    for (int k = 0; AGG_MODES[k]; k++)
        if (!strcmp(AGG_MODES[k], s))
            return k;
    return -1;
}

static int agg_check(const json_t *step, char *err, size_t errlen)
{
    const json_t *data = json_object_get(step, "data"), *modes = json_object_get(step, "aggregation_mode");
    const json_t *ops = json_object_get(step, "data_operations");
    const char *key;
    const json_t *v;
    if (!json_is_object(modes)) {
        wf__errf(err, errlen, "field 'aggregation_mode': expected a dict of lists of aggregation modes");
        return ERR_INVALID;
    }
    json_object_foreach((json_t *)modes, key, v) {
        size_t k;
        const json_t *m;
        if (!json_is_object(data) || !json_object_get(data, key)) {
            wf__errf(err, errlen, "field 'aggregation_mode': '%s' is not a key of 'data'", key);
            return ERR_INVALID;
        }
        if (!json_is_array(v)) {
            wf__errf(err, errlen, "field 'aggregation_mode': '%s' must be a list of modes", key);
            return ERR_INVALID;
        }
        json_array_foreach(v, k, m) if (!json_is_string(m) || agg_mode_index(json_string_value(m)) < 0)
        {
            wf__errf(err, errlen,
                     "field 'aggregation_mode': '%s': unknown mode (sum, avg, max, min, count, distinct, "
                     "count_distinct, values_counts, values_difference)", key);
            return ERR_INVALID;
        }
    }
    if (json_is_object(ops)) {
        json_object_foreach((json_t *)ops, key, v) {
            char sub[256];
            if (!json_is_object(data) || !json_object_get(data, key)) {
                wf__errf(err, errlen, "field 'data_operations': '%s' is not a key of 'data'", key);
                return ERR_INVALID;
            }
            if (wf__ql_check_ops(v, sub, sizeof sub) < 0) {
                wf__errf(err, errlen, "field 'data_operations': '%s': %s", key, sub);
                return ERR_INVALID;
            }
        }
    }
    return 0;
}

static int agg_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_value *data = wf_arg(c, i, "data");
        const json_t *modes = wf_arg_json(c, i, "aggregation_mode"), *ops = wf_arg_json(c, i, "data_operations");
        const char *unit = wf_arg_str(c, i, "interval_unit");
        int64_t interval = wf_arg_int(c, i, "interval", 1);
        void **slot = wf_call_state(c, "aggregator", agg_free);
        if (!slot)
            return wf_call_fail(c, "too many states at once (at most %d)", WF_STATE_MAX);
        struct agg_state *s = *slot;
        if (!s) {
            const char *key;
            const json_t *v;
            s = xcalloc(1, sizeof *s);
            json_object_foreach((json_t *)modes, key, v) {
                size_t k;
                const json_t *m;
                json_array_foreach(v, k, m) {
                    s->a = xrealloc(s->a, (s->n + 1) * sizeof *s->a);
                    memset(&s->a[s->n], 0, sizeof *s->a);
                    s->a[s->n].out = xasprintf("%s_%s", key, json_string_value(m));
                    s->a[s->n].field = xstrdup(key);
                    s->a[s->n].mode = agg_mode_index(json_string_value(m));
                    s->n++;
                }
            }
            agg_reset(s);
            *slot = s;
        }
        s->runs++;
        for (size_t k = 0; k < s->n; k++) {
            struct agg_one *a = &s->a[k];
            struct wf_value *v = data ? wf_value_dict_get(data, a->field) : NULL, *tv = NULL;
            const json_t *chain = json_is_object(ops) ? json_object_get(ops, a->field) : NULL;
            int rc;
            if (!v)
                continue;
            if (chain && json_array_size(chain) > 0) {
                char err[256];
                struct wf_ql_ctx cx = {NULL, NULL, NULL, err, sizeof err};
                if (wf__ql_apply(&cx, chain, v, &tv) < 0)
                    return wf_call_fail(c, "field 'data_operations': '%s': %s", a->field, err);
                v = tv;
            }
            rc = agg_on_data(c, a, v);
            wf_value_unref(tv);
            if (rc < 0)
                return rc;
        }
        bool flush;
        if (unit && !strcmp(unit, "runs")) {
            flush = s->runs >= interval;
        } else {
            int64_t mult = !unit || !strcmp(unit, "seconds") ? 1 : !strcmp(unit, "minutes") ? 60 : 3600;
            flush = (double)(time_now_ms() - s->start_ms) >= (double)interval * (double)mult * 1000.0;
        }
        for (size_t k = 0; k < s->n; k++)
            wf_out_json(c, i, s->a[k].out, flush ? agg_result(&s->a[k]) : NULL);
        if (flush)
            agg_reset(s);
    }
    return 0;
}

/* ---- detection_event_log v1 ---------------------------------------------------------------- */

#define EL_MAX_EVENTS 100000 /* events kept per video */

struct el_event {
    int64_t id;
    char *cls;
    int64_t first_frame, last_frame, count;
    double first_ts, last_ts, first_rel, last_rel;
};

struct el_state {
    struct el_event *e;
    size_t n, cap;
    int64_t frames, last_flush;
    bool flushed, have_first;
    double first_ts;
};

static void el_free(void *p)
{
    struct el_state *s = p;
    for (size_t k = 0; k < s->n; k++)
        free(s->e[k].cls);
    free(s->e);
    free(s);
}

static json_t *el_event_json(const struct el_event *e)
{
    return json_pack("{s:I,s:s,s:I,s:f,s:I,s:f,s:f,s:f,s:I}", "tracker_id", (json_int_t)e->id, "class_name",
                     e->cls, "first_seen_frame", (json_int_t)e->first_frame, "first_seen_timestamp", e->first_ts,
                     "last_seen_frame", (json_int_t)e->last_frame, "last_seen_timestamp", e->last_ts,
                     "first_seen_relative", e->first_rel, "last_seen_relative", e->last_rel, "frame_count",
                     (json_int_t)e->count);
}

static int el_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const json_t *vm;
        const char *vid = va_video(c, i, true, &vm);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        int64_t thr = wf_arg_int(c, i, "frame_threshold", 30), flush_every = wf_arg_int(c, i, "flush_interval", 30);
        int64_t stale = wf_arg_int(c, i, "stale_frames", 300);
        double fallback_fps = wf_arg_double(c, i, "fallback_fps", 1.0);
        if (!(fallback_fps > 0))
            return wf_call_fail(c, "fallback_fps must be greater than 0");
        void **slot = wf_call_state(c, vid, el_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct el_state *s = *slot;
        if (!s)
            *slot = s = xcalloc(1, sizeof *s);
        int64_t cur = ++s->frames;
        /* time: the frame timestamp relative to the video's first one; without
         * a timestamp (frame_number - 1) / fps */
        int64_t ts_ms;
        const char *tss = json_string_value(json_object_get(vm, "frame_timestamp"));
        double rel, abs_t;
        if (tss && time_parse_iso8601(tss, &ts_ms) >= 0) {
            abs_t = (double)ts_ms / 1000.0;
            if (!s->have_first) {
                s->first_ts = abs_t;
                s->have_first = true;
            }
            rel = abs_t - s->first_ts;
        } else {
            const json_t *f = json_object_get(vm, "fps");
            double fps = json_is_number(f) && json_number_value(f) != 0 ? json_number_value(f) : fallback_fps;
            double fn = json_is_number(json_object_get(vm, "frame_number"))
                            ? json_number_value(json_object_get(vm, "frame_number"))
                            : 0;
            rel = fmax(fn - 1, 0) / fps;
            abs_t = (double)time_now_ms() / 1000.0;
        }
        if (!s->flushed) {
            s->last_flush = cur;
            s->flushed = true;
        }
        json_t *complete = json_object();
        if (cur - s->last_flush >= flush_every) {
            size_t w = 0;
            for (size_t k = 0; k < s->n; k++) {
                struct el_event *e = &s->e[k];
                if (cur - e->last_frame > stale) {
                    if (e->count >= thr) {
                        char key[32];
                        snprintf(key, sizeof key, "%lld", (long long)e->id);
                        json_object_set_new(complete, key, el_event_json(e));
                    }
                    free(e->cls);
                } else {
                    s->e[w++] = *e;
                }
            }
            s->n = w;
            s->last_flush = cur;
        }
        bool tracked = ds && ds->n > 0;
        for (size_t k = 0; tracked && k < ds->n; k++)
            tracked = ds->d[k].tracker_id != WF_NO_TRACKER;
        for (size_t k = 0; tracked && k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            struct el_event *e = NULL;
            for (size_t q = 0; q < s->n && !e; q++)
                if (s->e[q].id == d->tracker_id)
                    e = &s->e[q];
            if (e) {
                e->last_frame = cur;
                e->last_ts = abs_t;
                e->last_rel = rel;
                e->count++;
                continue;
            }
            if (s->n >= EL_MAX_EVENTS) {
                json_decref(complete);
                return wf_call_fail(c, "more than %d tracked objects in the event log of one video", EL_MAX_EVENTS);
            }
            if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 32;
                s->e = xrealloc(s->e, s->cap * sizeof *s->e);
            }
            e = &s->e[s->n++];
            e->id = d->tracker_id;
            e->cls = d->class_name ? xstrdup(d->class_name) : xasprintf("class_%d", d->class_id);
            e->first_frame = e->last_frame = cur;
            e->first_ts = e->last_ts = abs_t;
            e->first_rel = e->last_rel = rel;
            e->count = 1;
        }
        json_t *logged = json_object(), *pending = json_object();
        for (size_t k = 0; k < s->n; k++) {
            char key[32];
            snprintf(key, sizeof key, "%lld", (long long)s->e[k].id);
            json_object_set_new(s->e[k].count >= thr ? logged : pending, key, el_event_json(&s->e[k]));
        }
        size_t nl = json_object_size(logged), np = json_object_size(pending);
        wf_out_json(c, i, "event_log", json_pack("{s:o,s:o}", "logged", logged, "pending", pending));
        wf_out_dets(c, i, "detections", ds ? wf_dets_clone(ds) : wf_dets_new());
        wf_out_json(c, i, "total_logged", json_integer((json_int_t)nl));
        wf_out_json(c, i, "total_pending", json_integer((json_int_t)np));
        wf_out_json(c, i, "complete_events", complete);
    }
    return 0;
}

/* ---- identify_outliers / identify_changes -------------------------------------------------- */

#define EMB_MAX_DIM 65536
#define EMB_MAX_WINDOW 100000

/* The embedding of element i, normalised (unchanged when its norm is 0). */
static int emb_read(struct wf_call *c, size_t i, double **out, size_t *dim)
{
    const json_t *e = wf_arg_json(c, i, "embedding");
    size_t k;
    const json_t *x;
    double norm = 0;
    if (!json_is_array(e) || json_array_size(e) == 0)
        return wf_call_fail(c, "embedding must be a non-empty list of numbers");
    if (json_array_size(e) > EMB_MAX_DIM)
        return wf_call_fail(c, "embedding has %zu dimensions (at most %d)", json_array_size(e), EMB_MAX_DIM);
    double *v = xmalloc(json_array_size(e) * sizeof *v);
    json_array_foreach(e, k, x) {
        if (!json_is_number(x) || !isfinite(json_number_value(x))) {
            free(v);
            return wf_call_fail(c, "embedding item %zu is not a finite number", k);
        }
        v[k] = json_number_value(x);
        norm += v[k] * v[k];
    }
    norm = sqrt(norm);
    if (norm != 0)
        for (k = 0; k < json_array_size(e); k++)
            v[k] /= norm;
    *out = v;
    *dim = json_array_size(e);
    return 0;
}

struct outl_state {
    size_t dim;
    int64_t samples;
    double *win; /* n x dim, oldest first */
    size_t n;
};

static void outl_free(void *p)
{
    struct outl_state *s = p;
    free(s->win);
    free(s);
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int outliers_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        double *e, thr = wf_arg_double(c, i, "threshold_percentile", 0.05);
        size_t dim;
        int64_t warmup = wf_arg_int(c, i, "warmup", 3);
        const struct wf_value *wsv = wf_arg(c, i, "window_size");
        int64_t window = wf_value_is_null(wsv) ? EMB_MAX_WINDOW : wf_arg_int(c, i, "window_size", 32);
        if (window < 1 || window > EMB_MAX_WINDOW)
            return wf_call_fail(c, "window_size must be between 1 and %d", EMB_MAX_WINDOW);
        if (emb_read(c, i, &e, &dim) < 0)
            return ERR_INVALID;
        void **slot = wf_call_state(c, "outliers", outl_free);
        if (!slot) {
            free(e);
            return wf_call_fail(c, "too many states at once (at most %d)", WF_STATE_MAX);
        }
        struct outl_state *s = *slot;
        if (!s)
            *slot = s = xcalloc(1, sizeof *s);
        if (s->n > 0 && s->dim != dim) {
            free(e);
            return wf_call_fail(c, "embedding has %zu dimensions, earlier ones had %zu", dim, s->dim);
        }
        s->dim = dim;
        s->samples++;
        bool warming = s->samples < warmup;
        s->win = xrealloc(s->win, (s->n + 1) * dim * sizeof *s->win);
        memcpy(&s->win[s->n * dim], e, dim * sizeof *e);
        s->n++;
        if ((int64_t)s->n > window) {
            size_t drop = s->n - (size_t)window;
            memmove(s->win, &s->win[drop * dim], (size_t)window * dim * sizeof *s->win);
            s->n = (size_t)window;
        }
        if (warming) {
            free(e);
            wf_out_json(c, i, "is_outlier", json_false());
            wf_out_json(c, i, "percentile", json_real(0.5));
            wf_out_json(c, i, "warming_up", json_true());
            continue;
        }
        /* vMF mean direction: the normalised sum (the embedding itself when
         * there are fewer than 2 or the sum is 0) */
        double *mu = xcalloc(dim, sizeof *mu), r = 0;
        for (size_t k = 0; k < s->n; k++)
            for (size_t q = 0; q < dim; q++)
                mu[q] += s->win[k * dim + q];
        for (size_t q = 0; q < dim; q++)
            r += mu[q] * mu[q];
        r = sqrt(r);
        if (s->n < 2 || r == 0)
            memcpy(mu, e, dim * sizeof *e);
        else
            for (size_t q = 0; q < dim; q++)
                mu[q] /= r;
        double tnew = 0, *t = xmalloc(s->n * sizeof *t);
        for (size_t q = 0; q < dim; q++)
            tnew += mu[q] * e[q];
        for (size_t k = 0; k < s->n; k++) {
            t[k] = 0;
            for (size_t q = 0; q < dim; q++)
                t[k] += s->win[k * dim + q] * mu[q];
        }
        qsort(t, s->n, sizeof *t, dcmp);
        size_t rank = 0; /* searchsorted side='left' */
        while (rank < s->n && t[rank] < tnew)
            rank++;
        double pct = (double)rank / (double)s->n;
        wf_out_json(c, i, "is_outlier", json_boolean(pct < thr || pct > 1 - thr));
        wf_out_json(c, i, "percentile", json_real(pct));
        wf_out_json(c, i, "warming_up", json_false());
        free(t);
        free(mu);
        free(e);
    }
    return 0;
}

static const char *const CHANGE_STRATEGIES[] = {"Exponential Moving Average (EMA)", "Simple Moving Average (SMA)",
                                                "Sliding Window", NULL};

struct chg_state {
    size_t dim;
    int64_t samples;
    double *avg, *var, *m2, *std; /* dim each; avg NULL before the first sample */
    double *win;                  /* sliding window: nwin x dim */
    size_t nwin;
    bool cs_init;
    double cs_avg, cs_std, cs_var, cs_m2;
    double *cs_win;
    size_t ncs;
};

static void chg_free(void *p)
{
    struct chg_state *s = p;
    free(s->avg);
    free(s->var);
    free(s->m2);
    free(s->std);
    free(s->win);
    free(s->cs_win);
    free(s);
}

static json_t *dvec(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t k = 0; k < n; k++)
        json_array_append_new(a, json_real(v[k]));
    return a;
}

/* np.mean / np.std (population) over a window. */
static void win_stats(const double *w, size_t n, size_t dim, size_t q, double *mean, double *sd)
{
    double m = 0, v = 0;
    for (size_t k = 0; k < n; k++)
        m += w[k * dim + q];
    m /= (double)n;
    for (size_t k = 0; k < n; k++)
        v += (w[k * dim + q] - m) * (w[k * dim + q] - m);
    *mean = m;
    *sd = sqrt(v / (double)n);
}

static int changes_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *strategy = wf_arg_str(c, i, "strategy");
        int st = 0;
        double *e, thr = wf_arg_double(c, i, "threshold_percentile", 0.2);
        double alpha = wf_arg_double(c, i, "smoothing_factor", 0.1);
        size_t dim;
        int64_t warmup = wf_arg_int(c, i, "warmup", 3), window = wf_arg_int(c, i, "window_size", 10);
        for (st = 0; CHANGE_STRATEGIES[st] && strategy && strcmp(CHANGE_STRATEGIES[st], strategy); st++)
            ;
        if (!strategy || !CHANGE_STRATEGIES[st])
            return wf_call_fail(c, "unknown strategy");
        if (st == 2 && (window < 1 || window > EMB_MAX_WINDOW))
            return wf_call_fail(c, "window_size must be between 1 and %d", EMB_MAX_WINDOW);
        if (emb_read(c, i, &e, &dim) < 0)
            return ERR_INVALID;
        void **slot = wf_call_state(c, "changes", chg_free);
        if (!slot) {
            free(e);
            return wf_call_fail(c, "too many states at once (at most %d)", WF_STATE_MAX);
        }
        struct chg_state *s = *slot;
        if (!s)
            *slot = s = xcalloc(1, sizeof *s);
        if (s->avg && s->dim != dim) {
            free(e);
            return wf_call_fail(c, "embedding has %zu dimensions, earlier ones had %zu", dim, s->dim);
        }
        double pct = 0.5, z = 0;
        bool zint = true, outlier = false, warming = false;
        if (s->avg) {
            double dot = 0, na = 0, nb = 0;
            for (size_t q = 0; q < dim; q++) {
                dot += e[q] * s->avg[q];
                na += e[q] * e[q];
                nb += s->avg[q] * s->avg[q];
            }
            double cs = dot / (sqrt(na) * sqrt(nb));
            if (!s->cs_init) {
                s->cs_init = true;
                s->cs_avg = cs;
                s->cs_std = s->cs_var = s->cs_m2 = 0;
            } else if (st == 0) {
                s->cs_avg = (1 - alpha) * s->cs_avg + alpha * cs;
                double diff = cs - s->cs_avg;
                s->cs_var = (1 - alpha) * s->cs_var + alpha * diff * diff;
                s->cs_std = sqrt(s->cs_var);
            } else if (st == 1) {
                double count = (double)s->samples + 1, delta = cs - s->cs_avg;
                s->cs_avg = cs / count + s->cs_avg * (double)s->samples / count;
                s->cs_m2 += delta * (cs - s->cs_avg);
                s->cs_std = sqrt(s->cs_m2 / (count - 1));
            } else {
                s->cs_win = xrealloc(s->cs_win, (s->ncs + 1) * sizeof *s->cs_win);
                s->cs_win[s->ncs++] = cs;
                if ((int64_t)s->ncs > window) {
                    memmove(s->cs_win, s->cs_win + 1, (s->ncs - 1) * sizeof *s->cs_win);
                    s->ncs--;
                }
                win_stats(s->cs_win, s->ncs, 1, 0, &s->cs_avg, &s->cs_std);
            }
            if (s->cs_std != 0) {
                z = (cs - s->cs_avg) / s->cs_std;
                zint = false;
                pct = 1 - 0.5 * (1 + erf(z / sqrt(2.0)));
            }
        }
        if (s->samples < warmup)
            warming = true;
        else
            outlier = pct <= thr / 2 || pct >= 1 - thr / 2;
        if (!s->avg) {
            s->dim = dim;
            s->avg = xmalloc(dim * sizeof *s->avg);
            memcpy(s->avg, e, dim * sizeof *e);
            s->std = xcalloc(dim, sizeof *s->std);
            s->var = xcalloc(dim, sizeof *s->var);
            s->m2 = xcalloc(dim, sizeof *s->m2);
        } else if (st == 0) {
            for (size_t q = 0; q < dim; q++) {
                s->avg[q] = (1 - alpha) * s->avg[q] + alpha * e[q];
                double diff = e[q] - s->avg[q];
                s->var[q] = (1 - alpha) * s->var[q] + alpha * diff * diff;
                s->std[q] = sqrt(s->var[q]);
            }
        } else if (st == 1) {
            double count = (double)s->samples + 1;
            for (size_t q = 0; q < dim; q++) {
                double delta = e[q] - s->avg[q];
                s->avg[q] += delta / count;
                s->m2[q] += delta * (e[q] - s->avg[q]);
                s->std[q] = sqrt(s->m2[q] / (count - 1));
            }
        }
        if (st == 2 && s->avg) {
            /* Roboflow seeds the average with the first embedding without
             * putting it in the window */
            if (s->samples > 0) {
                s->win = xrealloc(s->win, (s->nwin + 1) * dim * sizeof *s->win);
                memcpy(&s->win[s->nwin * dim], e, dim * sizeof *e);
                s->nwin++;
                if ((int64_t)s->nwin > window) {
                    memmove(s->win, &s->win[dim], (s->nwin - 1) * dim * sizeof *s->win);
                    s->nwin--;
                }
                for (size_t q = 0; q < dim; q++)
                    win_stats(s->win, s->nwin, dim, q, &s->avg[q], &s->std[q]);
            }
        }
        s->samples++;
        wf_out_json(c, i, "is_outlier", json_boolean(outlier));
        wf_out_json(c, i, "percentile", json_real(pct));
        wf_out_json(c, i, "z_score", zint ? json_integer(0) : json_real(z));
        wf_out_json(c, i, "average", dvec(s->avg, dim));
        wf_out_json(c, i, "std", dvec(s->std, dim));
        wf_out_json(c, i, "warming_up", json_boolean(warming));
        free(e);
    }
    return 0;
}


/* ---- trackers_sort v1 / trackers_bytetrack v1 (roboflow/trackers) ---------------------------- */

/* The `trackers` package's SORT and ByteTrack as Roboflow's tracker blocks
 * run them: a Kalman filter on xyxy with constant velocity (F = [I I; 0 I],
 * H = [I 0], Q = 0.01 I, R = 0.1 I, P0 = I), IoU association by an optimal
 * assignment (scipy linear_sum_assignment, maximised), tracks dropped after
 * int(fps / 30 * lost_track_buffer) frames without update unless young and
 * just updated, ids given once a track has minimum_consecutive_frames
 * updates, detections without an id (-1) left out, and the FIFO instance
 * cache of new / already seen ids.  The filter runs in double precision
 * (the package uses float32).  Ids count from 0 per video; the package's
 * counter is process-wide (a class attribute). */

#define TK_MAX_DETS 2000
#define TK_MAX_TRACKS 4000

struct ktrack {
    double x[8];
    double P[64];
    int64_t id; /* -1 until mature */
    int64_t updates, since_update;
};

struct ktracker {
    struct ktrack *t;
    size_t n, cap;
    int64_t next_id;
    int max_lost;
    struct tk_cache cache;
};

static void ktracker_free(void *p)
{
    struct ktracker *k = p;
    free(k->t);
    tk_cache_free(&k->cache);
    free(k);
}

static void kt_init(struct ktrack *t, const struct wf_det *d)
{
    memset(t, 0, sizeof *t);
    t->x[0] = d->x1, t->x[1] = d->y1, t->x[2] = d->x2, t->x[3] = d->y2;
    for (int i = 0; i < 8; i++)
        t->P[i * 8 + i] = 1;
    t->id = -1;
    t->updates = 1;
}

static const double KT_Q[8] = {0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01};
static const double KT_R[4] = {0.1, 0.1, 0.1, 0.1};

static void kt_predict(struct ktrack *t)
{
    tk_kf_predict(t->x, t->P, 8, 4, KT_Q);
    t->since_update++;
}

static void kt_update(struct ktrack *t, const struct wf_det *d)
{
    double z[4] = {d->x1, d->y1, d->x2, d->y2};
    t->since_update = 0;
    t->updates++;
    tk_kf_update(t->x, t->P, 8, z, KT_R, false);
}

/* sv.box_iou_batch of a track's state box and a detection. */
static double kt_iou(const struct ktrack *t, const struct wf_det *d)
{
    double b[4] = {d->x1, d->y1, d->x2, d->y2};
    return tk_iou(t->x, b);
}


/* linear_sum_assignment(sim, maximize=True), then pairs with sim >= thr:
 * det_of[track] (or -1) and track_of[det] (or -1). */
static void kt_associate(struct ktrack *const *tr, int nt, const struct wf_det *const *ds, int nd, double thr,
                         int *det_of, int *track_of)
{
    for (int i = 0; i < nt; i++)
        det_of[i] = -1;
    for (int j = 0; j < nd; j++)
        track_of[j] = -1;
    if (nt == 0 || nd == 0)
        return;
    double *sim = xmalloc((size_t)nt * nd * sizeof *sim);
    int *match = xmalloc((size_t)nt * sizeof *match);
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < nd; j++)
            sim[(size_t)i * nd + j] = kt_iou(tr[i], ds[j]);
    tk_assign_max(sim, nt, nd, match);
    for (int i = 0; i < nt; i++) {
        int j = match[i];
        if (j >= 0 && sim[(size_t)i * nd + j] >= thr)
            det_of[i] = j, track_of[j] = i;
    }
    free(sim);
    free(match);
}

/* get_alive_trackers */
static void kt_prune(struct ktracker *k, int64_t min_frames)
{
    size_t w = 0;
    for (size_t i = 0; i < k->n; i++) {
        struct ktrack *t = &k->t[i];
        if (t->since_update < k->max_lost && (t->updates >= min_frames || t->since_update == 0))
            k->t[w++] = *t;
    }
    k->n = w;
}

static int kt_spawn(struct wf_call *c, struct ktracker *k, const struct wf_det *d)
{
    if (k->n >= TK_MAX_TRACKS) { /* the tracks kt_prune drops anyway go first */
        size_t w = 0;
        for (size_t i = 0; i < k->n; i++)
            if (k->t[i].since_update < k->max_lost)
                k->t[w++] = k->t[i];
        k->n = w;
    }
    if (k->n >= TK_MAX_TRACKS)
        return wf_call_fail(c, "more than %d tracks in one video", TK_MAX_TRACKS);
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 32;
        k->t = xrealloc(k->t, k->cap * sizeof *k->t);
    }
    kt_init(&k->t[k->n++], d);
    return 0;
}

/* SORTTracker.update: the ids of ds's detections (-1 when none). */
static int sort_update(struct wf_call *c, struct ktracker *k, const struct wf_dets *ds, double iou_thr,
                       double act_thr, int64_t min_frames, int64_t *ids)
{
    int nd = (int)ds->n, nt = (int)k->n;
    for (int j = 0; j < nd; j++)
        ids[j] = -1;
    if (nt == 0 && nd == 0)
        return 0;
    for (size_t i = 0; i < k->n; i++)
        kt_predict(&k->t[i]);
    struct ktrack **tr = xmalloc(((size_t)nt + 1) * sizeof *tr);
    const struct wf_det **dv = xmalloc(((size_t)nd + 1) * sizeof *dv);
    int *det_of = xmalloc(((size_t)nt + 1) * sizeof *det_of), *track_of = xmalloc(((size_t)nd + 1) * sizeof *track_of);
    for (int i = 0; i < nt; i++)
        tr[i] = &k->t[i];
    for (int j = 0; j < nd; j++)
        dv[j] = &ds->d[j];
    kt_associate(tr, nt, dv, nd, iou_thr, det_of, track_of);
    for (int i = 0; i < nt; i++)
        if (det_of[i] >= 0)
            kt_update(&k->t[i], dv[det_of[i]]);
    int rc = 0;
    for (int j = 0; j < nd && rc == 0; j++)
        if (track_of[j] < 0 && ds->d[j].confidence >= act_thr)
            rc = kt_spawn(c, k, &ds->d[j]);
    free(tr);
    free(det_of);
    free(track_of);
    if (rc < 0) {
        free(dv);
        return rc;
    }
    kt_prune(k, min_frames);
    /* update_detections_with_track_ids: pairs with IoU > thr, best first */
    nt = (int)k->n;
    struct pair {
        double iou;
        int r, c;
    } *pairs = NULL;
    size_t np = 0, pcap = 0;
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < nd; j++) {
            double v = kt_iou(&k->t[i], dv[j]);
            if (v > iou_thr) {
                if (np == pcap) {
                    pcap = pcap ? 2 * pcap : 64;
                    pairs = xrealloc(pairs, pcap * sizeof *pairs);
                }
                pairs[np++] = (struct pair){v, i, j};
            }
        }
    /* stable sort by IoU descending (insertion sort keeps equal pairs in order) */
    for (size_t a = 1; a < np; a++) {
        struct pair p = pairs[a];
        size_t b = a;
        while (b > 0 && pairs[b - 1].iou < p.iou) {
            pairs[b] = pairs[b - 1];
            b--;
        }
        pairs[b] = p;
    }
    bool *used_r = xcalloc((size_t)nt + 1, 1), *used_c = xcalloc((size_t)nd + 1, 1);
    for (size_t q = 0; q < np; q++) {
        struct ktrack *t = &k->t[pairs[q].r];
        if (used_r[pairs[q].r] || used_c[pairs[q].c])
            continue;
        if (t->updates >= min_frames) {
            if (t->id == -1)
                t->id = k->next_id++;
            ids[pairs[q].c] = t->id;
        }
        used_r[pairs[q].r] = used_c[pairs[q].c] = true;
    }
    free(pairs);
    free(used_r);
    free(used_c);
    free(dv);
    return 0;
}

/* ByteTrackTracker.update: the output order (matched high-confidence
 * detections by track, then matched low ones) as indices into ds with
 * their ids; unmatched and new detections (-1) are not listed. */
static int bytetrack_update(struct wf_call *c, struct ktracker *k, const struct wf_dets *ds, double iou_thr,
                            double act_thr, double high_thr, int64_t min_frames, int *order, int64_t *ids, int *nout)
{
    int nd = (int)ds->n, nt = (int)k->n, nh = 0, nl = 0, rc = 0;
    *nout = 0;
    if (nt == 0 && nd == 0)
        return 0;
    for (size_t i = 0; i < k->n; i++)
        kt_predict(&k->t[i]);
    const struct wf_det **hi = xmalloc(((size_t)nd + 1) * sizeof *hi), **lo = xmalloc(((size_t)nd + 1) * sizeof *lo);
    int *hi_idx = xmalloc(((size_t)nd + 1) * sizeof *hi_idx), *lo_idx = xmalloc(((size_t)nd + 1) * sizeof *lo_idx);
    for (int j = 0; j < nd; j++) {
        if (ds->d[j].confidence >= high_thr)
            hi_idx[nh] = j, hi[nh++] = &ds->d[j];
        else
            lo_idx[nl] = j, lo[nl++] = &ds->d[j];
    }
    struct ktrack **tr = xmalloc(((size_t)nt + 1) * sizeof *tr), **rest = xmalloc(((size_t)nt + 1) * sizeof *rest);
    int *det_of = xmalloc(((size_t)nt + 1) * sizeof *det_of), *track_of = xmalloc(((size_t)nd + 1) * sizeof *track_of);
    for (int i = 0; i < nt; i++)
        tr[i] = &k->t[i];
    /* first round: high-confidence detections with every track */
    kt_associate(tr, nt, hi, nh, iou_thr, det_of, track_of);
    int nrest = 0;
    bool *hi_matched = xcalloc((size_t)nd + 1, 1);
    for (int i = 0; i < nt; i++) {
        if (det_of[i] < 0) {
            rest[nrest++] = tr[i];
            continue;
        }
        kt_update(tr[i], hi[det_of[i]]);
        hi_matched[det_of[i]] = true;
        if (tr[i]->updates >= min_frames && tr[i]->id == -1)
            tr[i]->id = k->next_id++;
        order[*nout] = hi_idx[det_of[i]], ids[(*nout)++] = tr[i]->id;
    }
    /* second round: low-confidence detections with the remaining tracks */
    kt_associate(rest, nrest, lo, nl, iou_thr, det_of, track_of);
    for (int i = 0; i < nrest; i++) {
        if (det_of[i] < 0)
            continue;
        kt_update(rest[i], lo[det_of[i]]);
        if (rest[i]->updates >= min_frames && rest[i]->id == -1)
            rest[i]->id = k->next_id++;
        order[*nout] = lo_idx[det_of[i]], ids[(*nout)++] = rest[i]->id;
    }
    /* new tracks from unmatched high-confidence detections */
    for (int j = 0; j < nh && rc == 0; j++)
        if (!hi_matched[j] && hi[j]->confidence >= act_thr)
            rc = kt_spawn(c, k, hi[j]);
    free(hi);
    free(lo);
    free(hi_idx);
    free(lo_idx);
    free(tr);
    free(rest);
    free(det_of);
    free(track_of);
    free(hi_matched);
    if (rc < 0)
        return rc;
    kt_prune(k, min_frames);
    return 0;
}

static int trackers_block(struct wf_call *c, bool bytetrack)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const json_t *vm;
        const char *vid = va_video(c, i, true, &vm);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        struct wf_dets empty = {0};
        if (!ds)
            ds = &empty;
        if (ds->n > TK_MAX_DETS)
            return wf_call_fail(c, "%zu detections in one frame: the tracker takes at most %d", ds->n, TK_MAX_DETS);
        double iou_thr = wf_arg_double(c, i, "minimum_iou_threshold", bytetrack ? 0.1 : 0.3);
        double act_thr = wf_arg_double(c, i, "track_activation_threshold", bytetrack ? 0.7 : 0.25);
        double high_thr = bytetrack ? wf_arg_double(c, i, "high_conf_det_threshold", 0.6) : 0;
        int64_t min_frames = wf_arg_int(c, i, "minimum_consecutive_frames", bytetrack ? 2 : 3);
        int64_t buffer = wf_arg_int(c, i, "lost_track_buffer", 30);
        int64_t cache_size = wf_arg_int(c, i, "instances_cache_size", 16384);
        if (min_frames < 0 || min_frames > 1000000 || buffer < 0 || buffer > 1000000)
            return wf_call_fail(c, "minimum_consecutive_frames and lost_track_buffer must be within 0..1000000");
        if (cache_size < 0 || cache_size > 100000)
            return wf_call_fail(c, "instances_cache_size must be within 0..100000");
        void **slot = wf_call_state(c, vid, ktracker_free);
        if (!slot)
            return wf_call_fail(c, "too many videos tracked at once (at most %d)", WF_STATE_MAX);
        struct ktracker *k = *slot;
        if (!k) {
            /* parameters are read once, when the video's tracker is created (as Roboflow) */
            k = xcalloc(1, sizeof *k);
            k->max_lost = tk_max_lost(vm, buffer);
            *slot = k;
        }
        int64_t *ids = xmalloc((ds->n + 1) * sizeof *ids);
        int *order = xmalloc((ds->n + 1) * sizeof *order), nout = 0, rc;
        if (bytetrack) {
            rc = bytetrack_update(c, k, ds, iou_thr, act_thr, high_thr, min_frames, order, ids, &nout);
        } else {
            rc = sort_update(c, k, ds, iou_thr, act_thr, min_frames, ids);
            for (size_t j = 0; j < ds->n; j++)
                order[j] = (int)j;
            nout = (int)ds->n;
        }
        if (rc < 0) {
            free(ids);
            free(order);
            return rc;
        }
        tk_out(c, i, ds, order, ids, nout, &k->cache, (size_t)cache_size);
        free(ids);
        free(order);
    }
    return 0;
}

static int tk_sort_run(struct wf_call *c) { return trackers_block(c, false); }
static int tk_bytetrack_run(struct wf_call *c) { return trackers_block(c, true); }

/* ---- manifests (spec/blocks.json) ---------------------------------------------------------- */

#define F_DETS(name) {name, NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL}
#define F_IMG {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL}

static const struct wf_field pd1_fields[] = {
    {"metadata", NULL, WF_FT_DICT, NULL, WF_K_VIDEO_META, WF_F_SELECTOR_ONLY, NULL},
    F_DETS("detections"),
    {"triggering_anchor", NULL, WF_FT_STRING, "\"CENTER\"", WF_K_STRING, 0, NULL},
    {"reference_path", NULL, WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},
};
static const struct wf_field pd2_fields[] = {
    F_IMG,
    F_DETS("detections"),
    {"triggering_anchor", NULL, WF_FT_STRING, "\"CENTER\"", WF_K_STRING, 0, NULL},
    {"reference_path", NULL, WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},
};
static const struct wf_output pd_outs[] = {{"path_deviation_detections", WF_K_OD | WF_K_IS}};

static const char *const OVERLAP_TYPES[] = {"Center Overlap", "Any Overlap", NULL};
static const struct wf_field overlap_fields[] = {
    F_DETS("predictions"),
    {"overlap_type", NULL, WF_FT_ENUM, "\"Center Overlap\"", 0, WF_F_NO_SELECTOR, OVERLAP_TYPES},
    {"overlap_class_name", NULL, WF_FT_STRING, NULL, 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output overlap_outs[] = {{"overlaps", WF_K_OD}};

static const struct wf_field agg_fields[] = {
    {"data", NULL, WF_FT_DICT, NULL, 0, WF_F_SELECTOR_DICT, NULL},
    {"data_operations", NULL, WF_FT_DICT, "{}", 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"aggregation_mode", NULL, WF_FT_DICT, NULL, 0, WF_F_RAW | WF_F_NO_SELECTOR, NULL},
    {"interval_unit", NULL, WF_FT_ENUM, "\"seconds\"", 0, WF_F_NO_SELECTOR, AGG_UNITS},
    {"interval", NULL, WF_FT_INT_POS, NULL, 0, WF_F_NO_SELECTOR, NULL},
};

static const struct wf_field el_fields[] = {
    F_IMG,
    F_DETS("detections"),
    {"frame_threshold", NULL, WF_FT_INT_POS, "30", WF_K_INT, 0, NULL},
    {"flush_interval", NULL, WF_FT_INT_POS, "30", WF_K_INT, 0, NULL},
    {"stale_frames", NULL, WF_FT_INT_POS, "300", WF_K_INT, 0, NULL},
    {"reference_timestamp", NULL, WF_FT_FLOAT, "null", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"fallback_fps", NULL, WF_FT_FLOAT, "1.0", WF_K_FLOAT, 0, NULL},
};
static const struct wf_output el_outs[] = {{"event_log", WF_K_DICT},
                                           {"detections", WF_K_OD | WF_K_IS},
                                           {"total_logged", WF_K_INT},
                                           {"total_pending", WF_K_INT},
                                           {"complete_events", WF_K_DICT}};

/* embeddings have no kind of their own here: any selector (a list of numbers) */
static const struct wf_field outl_fields[] = {
    {"embedding", NULL, WF_FT_LIST, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"threshold_percentile", NULL, WF_FT_FLOAT01, "0.05", WF_K_FLOAT, 0, NULL},
    {"warmup", NULL, WF_FT_INT, "3", WF_K_INT, 0, NULL},
    {"window_size", NULL, WF_FT_INT, "32", WF_K_INT, WF_F_NULLABLE, NULL},
};
static const struct wf_output outl_outs[] = {
    {"is_outlier", WF_K_BOOL}, {"percentile", WF_K_FLOAT}, {"warming_up", WF_K_BOOL}};

static const struct wf_field chg_fields[] = {
    {"strategy", NULL, WF_FT_ENUM, "\"Exponential Moving Average (EMA)\"", 0, WF_F_NO_SELECTOR, CHANGE_STRATEGIES},
    {"embedding", NULL, WF_FT_LIST, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"threshold_percentile", NULL, WF_FT_FLOAT01, "0.2", WF_K_FLOAT, 0, NULL},
    {"warmup", NULL, WF_FT_INT, "3", WF_K_INT, 0, NULL},
    {"smoothing_factor", NULL, WF_FT_FLOAT01, "0.1", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"window_size", NULL, WF_FT_INT, "10", WF_K_INT, WF_F_NULLABLE, NULL},
};
static const struct wf_output chg_outs[] = {{"is_outlier", WF_K_BOOL}, {"percentile", WF_K_FLOAT},
                                            {"z_score", WF_K_FLOAT},   {"average", WF_K_LIST},
                                            {"std", WF_K_LIST},        {"warming_up", WF_K_BOOL}};

static const struct wf_field tk_sort_fields[] = {
    F_IMG,
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"minimum_iou_threshold", NULL, WF_FT_FLOAT01, "0.3", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"minimum_consecutive_frames", NULL, WF_FT_INT, "3", WF_K_INT, WF_F_NULLABLE, NULL},
    {"lost_track_buffer", NULL, WF_FT_INT, "30", WF_K_INT, WF_F_NULLABLE, NULL},
    {"track_activation_threshold", NULL, WF_FT_FLOAT01, "0.25", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"instances_cache_size", NULL, WF_FT_INT, "16384", 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_field tk_bytetrack_fields[] = {
    F_IMG,
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"minimum_iou_threshold", NULL, WF_FT_FLOAT01, "0.1", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"minimum_consecutive_frames", NULL, WF_FT_INT, "2", WF_K_INT, WF_F_NULLABLE, NULL},
    {"lost_track_buffer", NULL, WF_FT_INT, "30", WF_K_INT, WF_F_NULLABLE, NULL},
    {"track_activation_threshold", NULL, WF_FT_FLOAT01, "0.7", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"high_conf_det_threshold", NULL, WF_FT_FLOAT01, "0.6", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"instances_cache_size", NULL, WF_FT_INT, "16384", 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output tk_outs[] = {
    {"tracked_detections", WF_K_DETS}, {"new_instances", WF_K_DETS}, {"already_seen_instances", WF_K_DETS}};

static const struct wf_block pd1 = {
    .types = (const char *const[]){"roboflow_core/path_deviation_analytics@v1", NULL},
    .fields = pd1_fields, .nfields = ARRAY_LEN(pd1_fields), .outputs = pd_outs, .noutputs = 1, .run = pd1_run,
};
static const struct wf_block pd2 = {
    .types = (const char *const[]){"roboflow_core/path_deviation_analytics@v2", NULL},
    .fields = pd2_fields, .nfields = ARRAY_LEN(pd2_fields), .outputs = pd_outs, .noutputs = 1, .run = pd2_run,
};
static const struct wf_block overlap1 = {
    .types = (const char *const[]){"roboflow_core/overlap@v1", NULL},
    .fields = overlap_fields, .nfields = ARRAY_LEN(overlap_fields), .outputs = overlap_outs, .noutputs = 1,
    .run = overlap_run,
};
/* outputs: "<data key>_<mode>" for every mode of aggregation_mode (compile.c, WF_BLOCK_DYN_OUTPUTS
 * with a dict field) */
static const struct wf_block agg1 = {
    .types = (const char *const[]){"roboflow_core/data_aggregator@v1", NULL},
    .fields = agg_fields, .nfields = ARRAY_LEN(agg_fields), .outputs = NULL, .noutputs = 0,
    .flags = WF_BLOCK_DYN_OUTPUTS, .dyn_outputs_field = "aggregation_mode", .run = agg_run, .check = agg_check,
};
static const struct wf_block el1 = {
    .types = (const char *const[]){"roboflow_core/detection_event_log@v1", NULL},
    .fields = el_fields, .nfields = ARRAY_LEN(el_fields), .outputs = el_outs, .noutputs = ARRAY_LEN(el_outs),
    .run = el_run,
};
static const struct wf_block outl1 = {
    .types = (const char *const[]){"roboflow_core/identify_outliers@v1", NULL},
    .fields = outl_fields, .nfields = ARRAY_LEN(outl_fields), .outputs = outl_outs,
    .noutputs = ARRAY_LEN(outl_outs), .run = outliers_run,
};
static const struct wf_block chg1 = {
    .types = (const char *const[]){"roboflow_core/identify_changes@v1", NULL},
    .fields = chg_fields, .nfields = ARRAY_LEN(chg_fields), .outputs = chg_outs,
    .noutputs = ARRAY_LEN(chg_outs), .run = changes_run,
};

static const struct wf_block tk_sort = {
    .types = (const char *const[]){"roboflow_core/trackers_sort@v1", NULL},
    .fields = tk_sort_fields, .nfields = ARRAY_LEN(tk_sort_fields), .outputs = tk_outs,
    .noutputs = ARRAY_LEN(tk_outs), .run = tk_sort_run,
};
static const struct wf_block tk_bytetrack = {
    .types = (const char *const[]){"roboflow_core/trackers_bytetrack@v1", NULL},
    .fields = tk_bytetrack_fields, .nfields = ARRAY_LEN(tk_bytetrack_fields), .outputs = tk_outs,
    .noutputs = ARRAY_LEN(tk_outs), .run = tk_bytetrack_run,
};

const struct wf_block *const wf_blocks_video_analytics[] = {&pd1, &pd2, &overlap1, &agg1, &el1, &outl1, &chg1,
                                                           &tk_sort, &tk_bytetrack, NULL};
