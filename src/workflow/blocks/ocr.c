/*
 * blocks/ocr.c — OCR blocks: roboflow_core/pp_ocr@v1 and
 * roboflow_core/ocr_model@v1 (the PP-OCR path), and
 * roboflow_core/stitch_ocr_detections@v1/@v2.
 *
 * The two model blocks ask the model provider for task "ocr" of model id
 * "pp_ocr" (the operator registers the PP-OCR folder under that id:
 * docs/MODELS.md "OCR"); the response is {"result", "predictions",
 * "image"} with one object-detection prediction per text, its class the
 * text.  Outputs as Roboflow's blocks: result (the texts joined by spaces),
 * predictions (detections: class_name = the text, class_id 0, parent
 * metadata of the image), parent_id, root_parent_id, prediction_type
 * ("ocr").  pp_ocr's text_detection / text_recognition sizes all use the
 * one registered model; "none" is refused (vbatch has no recognition-only
 * path yet).
 *
 * stitch_ocr_detections follows Roboflow's
 * transformations/stitch_ocr_detections/v1.py and v2.py ("tolerance"):
 * boxes rounded half to even; for vertical reading x and y swapped; lines
 * by the (swapped) y1 — v1: sorted by y1, a new line when the gap to the
 * previous box exceeds tolerance, keyed by its first y1; v2: keyed by
 * round(y1 / tolerance) * tolerance —, lines in key order (reversed for
 * vertical_bottom_to_top), boxes in a line by x1 (descending for
 * right_to_left and vertical_bottom_to_top), a "\n" (horizontal) or " "
 * (vertical) element between lines, every element joined by delimiter.
 * "auto" picks left_to_right when the first batch element's mean box
 * width exceeds its mean height, else vertical_top_to_bottom.
 *
 * v2 "otsu" (adaptive_word_grouping): box centres and sizes (x/y swapped
 * for vertical reading), lines by centre y within half the median height
 * of a running line average, lines by mean y (reversed bottom-to-top),
 * boxes by centre x (reversed right-to-left / bottom-to-top); gaps between
 * neighbours normalised by their mean width; one global Otsu threshold over
 * every gap (numpy histogram of min(50, n) bins, the bin centre maximising
 * n_below · n_above · (mean_below − mean_above)², first best kept) times
 * otsu_threshold_multiplier, and Roboflow's bimodality test (above-class
 * mean > 0.3 and a mean separation > 0.3 or > 1.5 standard deviations):
 * without it every line is one word; with it gaps above the threshold start
 * a new word, words joined by " " (or the delimiter), characters by the
 * delimiter.  v2 "collimate": boxes sorted by centre x (y for vertical;
 * reversed right-to-left / bottom-to-top; stable), greedy chains — each
 * line's last box takes, in order, every remaining box that follows it
 * (aligned within half the larger height + collimate_tolerance, and not
 * behind it) — a new line from the first remaining box when no line
 * grew, lines by mean centre y (x for vertical, reversed bottom-to-top).
 * Both join lines with "\n" (horizontal) or " " (vertical).  Centres and
 * sizes are float32 as supervision's xyxy, the rest double: a value lying
 * exactly on a threshold may fall on the other side than numpy's mixed
 * float32 arithmetic puts it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define OCR_MODEL_ID "pp_ocr"

static const char *const det_sizes[] = {"none", "tiny", "small", "medium", NULL};
static const char *const directions[] = {"left_to_right", "right_to_left",
                                         "vertical_top_to_bottom", "vertical_bottom_to_top",
                                         "auto", NULL};
static const char *const algorithms[] = {"tolerance", "otsu", "collimate", NULL};

static int ocr_run(struct wf_call *c, bool pp)
{
    const struct wf_env *env = wf_call_env(c);
    size_t n = wf_call_n(c);
    const struct vis_image **imgs = xcalloc(n + 1, sizeof *imgs);
    json_t **resps = xcalloc(n + 1, sizeof *resps);
    char perr[512] = "";
    int rc = 0;

    if (!env || !env->model_infer) {
        rc = wf_call_fail(c, "no model provider is configured (model steps cannot run)");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (pp) {
            const char *td = wf_arg_str(c, i, "text_detection");
            const char *tr = wf_arg_str(c, i, "text_recognition");
            if ((td && !strcmp(td, "none")) || (tr && !strcmp(tr, "none"))) {
                rc = wf_call_fail(c, "text_detection / text_recognition 'none' is not supported: "
                                  "vbatch runs the full PP-OCR model '%s' (detection and "
                                  "recognition)", OCR_MODEL_ID);
                goto out;
            }
        }
        imgs[i] = wf_arg_image(c, i, "images")->img;
    }
    struct wf_model_request req = {OCR_MODEL_ID, "ocr", NULL};
    json_t *params = json_object();
    req.params = params;
    rc = env->model_infer(env->model_ud, &req, (const struct vis_image *const *)imgs, n, resps,
                          perr, sizeof perr);
    json_decref(params);
    if (rc < 0) {
        rc = wf_call_fail(c, "model '%s': %s", OCR_MODEL_ID, perr[0] ? perr : err_str(rc));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct wf_image *im = wf_arg_image(c, i, "images");
        const json_t *res = json_object_get(resps[i], "result");
        struct wf_dets *ds = NULL;
        char uid[37];
        uuid4(uid);
        if (!json_is_object(resps[i]) ||
            wf_dets_from_inference(resps[i], im, "object-detection", uid, NULL, &ds) < 0) {
            rc = wf_call_fail(c, "model '%s': malformed response (no 'predictions' list)",
                              OCR_MODEL_ID);
            goto out;
        }
        wf_out_json(c, i, "result", json_string(json_is_string(res) ? json_string_value(res) : ""));
        wf_out_dets(c, i, "predictions", ds);
        wf_out_json(c, i, "parent_id", json_string(im->parent_id));
        wf_out_json(c, i, "root_parent_id", json_string(im->root_parent_id));
        wf_out_json(c, i, "prediction_type", json_string("ocr"));
    }
out:
    for (size_t i = 0; i < n; i++)
        json_decref(resps[i]);
    free(resps);
    free(imgs);
    return rc;
}

static int pp_ocr_run(struct wf_call *c) { return ocr_run(c, true); }
static int ocr_model_run(struct wf_call *c) { return ocr_run(c, false); }

/* ---- stitch_ocr_detections ------------------------------------------------------ */

struct sbox {
    long x1, y1, x2, y2; /* rounded, swapped for vertical reading */
    size_t idx;
    long key;            /* line key */
};

static int cmp_y(const void *a, const void *b)
{
    const struct sbox *p = a, *q = b;
    if (p->y1 != q->y1)
        return p->y1 < q->y1 ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static int cmp_key_x(const void *a, const void *b)
{
    const struct sbox *p = a, *q = b;
    if (p->key != q->key)
        return p->key < q->key ? -1 : 1;
    if (p->x1 != q->x1)
        return p->x1 < q->x1 ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static int cmp_key_xdesc(const void *a, const void *b)
{
    const struct sbox *p = a, *q = b;
    if (p->key != q->key)
        return p->key < q->key ? -1 : 1;
    if (p->x1 != q->x1)
        return p->x1 > q->x1 ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static const char *auto_direction(const struct wf_dets *ds)
{
    double w = 0, h = 0;
    if (!ds || !ds->n)
        return "left_to_right";
    for (size_t i = 0; i < ds->n; i++) {
        w += ds->d[i].x2 - ds->d[i].x1;
        h += ds->d[i].y2 - ds->d[i].y1;
    }
    return w / (double)ds->n > h / (double)ds->n ? "left_to_right" : "vertical_top_to_bottom";
}

static char *stitch(const struct wf_dets *ds, const char *dir, long tol, const char *delim,
                    int version)
{
    struct buf out = BUF_INIT;
    bool vertical = !strncmp(dir, "vertical", 8);
    bool reverse_lines = !strcmp(dir, "vertical_bottom_to_top");
    bool desc = !strcmp(dir, "right_to_left") || reverse_lines;
    size_t n = ds ? ds->n : 0;
    struct sbox *b;

    if (!n)
        return xstrdup("");
    b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < n; i++) {
        const struct wf_det *d = &ds->d[i];
        long x1 = lrint(d->x1), y1 = lrint(d->y1), x2 = lrint(d->x2), y2 = lrint(d->y2);
        b[i] = vertical ? (struct sbox){y1, x1, y2, x2, i, 0} : (struct sbox){x1, y1, x2, y2, i, 0};
    }
    if (version == 1) {
        qsort(b, n, sizeof *b, cmp_y);
        long key = b[0].y1, prev = b[0].y1;
        for (size_t i = 0; i < n; i++) {
            if (i && b[i].y1 - prev > tol)
                key = b[i].y1;
            b[i].key = key;
            prev = b[i].y1;
        }
    } else {
        for (size_t i = 0; i < n; i++) /* numpy round: half to even */
            b[i].key = (long)nearbyint((double)b[i].y1 / (double)tol) * tol;
    }
    qsort(b, n, sizeof *b, desc ? cmp_key_xdesc : cmp_key_x);
    /* lines in key order, reversed for vertical_bottom_to_top */
    size_t nl = 0;
    size_t *starts = xcalloc(n + 1, sizeof *starts);
    for (size_t i = 0; i < n; i++)
        if (!i || b[i].key != b[i - 1].key)
            starts[nl++] = i;
    starts[nl] = n;
    bool first = true;
    for (size_t l = 0; l < nl; l++) {
        size_t li = reverse_lines ? nl - 1 - l : l;
        for (size_t k = starts[li]; k < starts[li + 1]; k++) {
            const char *t = ds->d[b[k].idx].class_name;
            if (!first)
                buf_puts(&out, delim);
            buf_puts(&out, t ? t : "");
            first = false;
        }
        if (l + 1 < nl) {
            buf_puts(&out, delim);
            buf_puts(&out, vertical ? " " : "\n");
        }
    }
    free(starts);
    free(b);
    return buf_detach(&out, NULL);
}

/* ---- v2 otsu / collimate ---- */

struct cbox {
    double x, y, w, h; /* centre and size, swapped for vertical reading */
    size_t idx;
    double key;
};

static int cmp_cbox_key(const void *a, const void *b)
{
    const struct cbox *p = a, *q = b;
    if (p->key != q->key)
        return p->key < q->key ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static struct cbox *cboxes(const struct wf_dets *ds, bool vertical)
{
    struct cbox *b = xcalloc(ds->n, sizeof *b);
    for (size_t i = 0; i < ds->n; i++) {
        const struct wf_det *d = &ds->d[i];
        float cx = (d->x1 + d->x2) / 2.0f, cy = (d->y1 + d->y2) / 2.0f;
        float w = d->x2 - d->x1, h = d->y2 - d->y1;
        b[i] = vertical ? (struct cbox){cy, cx, h, w, i, 0} : (struct cbox){cx, cy, w, h, i, 0};
    }
    return b;
}

static const char *cname(const struct wf_dets *ds, size_t i)
{
    return ds->d[i].class_name ? ds->d[i].class_name : "";
}

static double dmean(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return n ? s / (double)n : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double p = *(const double *)a, q = *(const double *)b;
    return p < q ? -1 : p > q;
}

/* Roboflow's find_otsu_threshold. */
static double otsu_threshold(const double *g, size_t n, bool *bimodal)
{
    *bimodal = false;
    if (n < 2)
        return 0.0;
    double lo = g[0], hi = g[0];
    for (size_t i = 1; i < n; i++)
        lo = fmin(lo, g[i]), hi = fmax(hi, g[i]);
    if (lo == hi) /* numpy.histogram widens an empty range by 0.5 each side */
        lo -= 0.5, hi += 0.5;
    size_t bins = n < 50 ? n : 50;
    double step = (hi - lo) / (double)bins;
    double best_t = 0, best_var = 0, best_below = 0, best_above = 0;
    for (size_t k = 0; k < bins; k++) {
        double e0 = (double)k * step + lo, e1 = k + 1 == bins ? hi : (double)(k + 1) * step + lo;
        double t = (e0 + e1) / 2;
        double sb = 0, sa = 0;
        size_t nb = 0, na = 0;
        for (size_t i = 0; i < n; i++) {
            if (g[i] <= t)
                sb += g[i], nb++;
            else
                sa += g[i], na++;
        }
        if (!nb || !na)
            continue;
        double mb = sb / (double)nb, ma = sa / (double)na;
        double var = (double)nb * (double)na * (mb - ma) * (mb - ma);
        if (var > best_var)
            best_var = var, best_t = t, best_below = mb, best_above = ma;
    }
    double mean = dmean(g, n), ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (g[i] - mean) * (g[i] - mean);
    double sd = sqrt(ss / (double)n);
    double sep = fabs(best_above - best_below);
    double ratio = sd > 0 ? sep / sd : 0;
    bool good_rel = ratio > 1.5 && sep > 0.3;
    *bimodal = best_above > 0.3 && (sep > 0.3 || good_rel);
    return best_t;
}

static char *stitch_otsu(const struct wf_dets *ds, const char *dir, const char *delim, double mult)
{
    size_t n = ds ? ds->n : 0;
    if (!n)
        return xstrdup("");
    bool vertical = !strncmp(dir, "vertical", 8);
    bool rev = !strcmp(dir, "right_to_left") || !strcmp(dir, "vertical_bottom_to_top");
    struct cbox *b = cboxes(ds, vertical);
    double *hs = xcalloc(n, sizeof *hs);
    for (size_t i = 0; i < n; i++)
        hs[i] = b[i].h;
    qsort(hs, n, sizeof *hs, cmp_double);
    double median = n % 2 ? hs[n / 2] : (hs[n / 2 - 1] + hs[n / 2]) / 2;
    double line_tol = median * 0.5;
    /* lines: boxes by centre y, a running mean per line */
    for (size_t i = 0; i < n; i++)
        b[i].key = b[i].y;
    qsort(b, n, sizeof *b, cmp_cbox_key);
    size_t *line_of = xcalloc(n, sizeof *line_of), nl = 0;
    double *line_y = xcalloc(n, sizeof *line_y), cur_sum = 0;
    size_t cur_n = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && fabs(b[i].y - cur_sum / (double)cur_n) <= line_tol) {
            cur_sum += b[i].y, cur_n++;
        } else {
            if (i)
                line_y[nl++] = cur_sum / (double)cur_n;
            cur_sum = b[i].y, cur_n = 1;
        }
        line_of[i] = nl;
    }
    line_y[nl++] = cur_sum / (double)cur_n;
    /* order: line by mean y (reversed bottom-to-top), then centre x (reversed) */
    struct cbox *lines = xcalloc(nl, sizeof *lines);
    for (size_t l = 0; l < nl; l++)
        lines[l] = (struct cbox){0, 0, 0, 0, l, line_y[l]};
    qsort(lines, nl, sizeof *lines, cmp_cbox_key);
    size_t *order = xcalloc(n, sizeof *order), *starts = xcalloc(nl + 1, sizeof *starts), m = 0;
    double *gaps = xcalloc(n, sizeof *gaps);
    size_t ng = 0;
    struct cbox *tmp = xcalloc(n, sizeof *tmp);
    for (size_t li = 0; li < nl; li++) {
        size_t l = lines[!strcmp(dir, "vertical_bottom_to_top") ? nl - 1 - li : li].idx, k = 0;
        for (size_t i = 0; i < n; i++)
            if (line_of[i] == l) {
                tmp[k] = b[i];
                tmp[k].key = b[i].x;
                tmp[k].idx = i; /* position in b */
                k++;
            }
        qsort(tmp, k, sizeof *tmp, cmp_cbox_key);
        starts[li] = m;
        for (size_t j = 0; j < k; j++)
            order[m + j] = tmp[rev ? k - 1 - j : j].idx;
        for (size_t j = 1; k > 1 && j < k; j++) {
            const struct cbox *p = &b[order[m + j - 1]], *q = &b[order[m + j]];
            double raw = rev ? p->x - q->x - (p->w + q->w) / 2 : q->x - p->x - (p->w + q->w) / 2;
            double scale = (p->w + q->w) / 2;
            gaps[ng++] = scale > 0 ? raw / scale : 0.0;
        }
        m += k;
    }
    starts[nl] = n;
    bool bimodal;
    double thr = otsu_threshold(gaps, ng, &bimodal) * mult;
    struct buf out = BUF_INIT;
    const char *wsep = *delim ? delim : " ";
    const char *lsep = vertical ? " " : "\n";
    size_t gi = 0;
    for (size_t li = 0; li < nl; li++) {
        if (li)
            buf_puts(&out, lsep);
        for (size_t j = starts[li]; j < starts[li + 1]; j++) {
            if (j > starts[li]) {
                bool brk = bimodal && gaps[gi] > thr;
                gi++;
                buf_puts(&out, brk ? wsep : delim);
            }
            buf_puts(&out, cname(ds, b[order[j]].idx));
        }
    }
    free(tmp), free(gaps), free(order), free(starts), free(lines), free(line_y), free(line_of), free(hs), free(b);
    return buf_detach(&out, NULL);
}

static bool coll_follows(const struct cbox *p, const struct cbox *c, bool rev, double tol)
{
    double ht = fmax(p->h, c->h) / 2;
    bool aligned = fabs(p->y - c->y) < ht + tol;
    return aligned && (rev ? p->x >= c->x : p->x <= c->x);
}

static char *stitch_collimate(const struct wf_dets *ds, const char *dir, const char *delim, double tol)
{
    size_t n = ds ? ds->n : 0;
    if (!n)
        return xstrdup("");
    bool vertical = !strncmp(dir, "vertical", 8);
    bool rev = !strcmp(dir, "right_to_left") || !strcmp(dir, "vertical_bottom_to_top");
    struct cbox *b = cboxes(ds, vertical);
    for (size_t i = 0; i < n; i++)
        b[i].key = rev ? -b[i].x : b[i].x; /* sorted(reverse=True) keeps ties in order */
    qsort(b, n, sizeof *b, cmp_cbox_key);
    /* remaining: indices into b in order; lines: chains of indices */
    size_t *rem = xcalloc(n, sizeof *rem), nrem = 0;
    size_t *line_id = xcalloc(n, sizeof *line_id), *pos = xcalloc(n, sizeof *pos);
    size_t *last = xcalloc(n, sizeof *last), *len = xcalloc(n, sizeof *len), nl = 0;
    for (size_t i = 1; i < n; i++)
        rem[nrem++] = i;
    line_id[0] = 0, pos[0] = 0, last[0] = 0, len[0] = 1, nl = 1;
    while (nrem) {
        bool found = false;
        for (size_t l = 0; l < nl; l++) {
            /* iterate a snapshot of remaining; the parent moves along */
            size_t snap_n = nrem;
            size_t *snap = xcalloc(snap_n, sizeof *snap);
            memcpy(snap, rem, snap_n * sizeof *snap);
            for (size_t k = 0; k < snap_n; k++) {
                size_t d = snap[k];
                if (coll_follows(&b[last[l]], &b[d], rev, tol)) {
                    found = true;
                    line_id[d] = l, pos[d] = len[l]++, last[l] = d;
                    size_t r = 0;
                    while (rem[r] != d)
                        r++;
                    memmove(rem + r, rem + r + 1, (nrem - r - 1) * sizeof *rem);
                    nrem--;
                }
            }
            free(snap);
        }
        if (!found && nrem) {
            size_t d = rem[0];
            memmove(rem, rem + 1, (nrem - 1) * sizeof *rem);
            nrem--;
            line_id[d] = nl, pos[d] = 0, last[nl] = d, len[nl] = 1, nl++;
        }
    }
    /* lines by the mean secondary coordinate (stable; reversed for bottom-to-top) */
    double *sum = xcalloc(nl, sizeof *sum);
    for (size_t i = 0; i < n; i++)
        sum[line_id[i]] += b[i].y;
    struct cbox *lines = xcalloc(nl, sizeof *lines);
    bool rev_lines = !strcmp(dir, "vertical_bottom_to_top");
    for (size_t l = 0; l < nl; l++)
        lines[l] = (struct cbox){0, 0, 0, 0, l, (rev_lines ? -1 : 1) * sum[l] / (double)len[l]};
    qsort(lines, nl, sizeof *lines, cmp_cbox_key);
    size_t **members = xcalloc(nl, sizeof *members);
    for (size_t l = 0; l < nl; l++)
        members[l] = xcalloc(len[l], sizeof **members);
    for (size_t i = 0; i < n; i++)
        members[line_id[i]][pos[i]] = i;
    struct buf out = BUF_INIT;
    for (size_t li = 0; li < nl; li++) {
        size_t l = lines[li].idx;
        if (li)
            buf_puts(&out, vertical ? " " : "\n");
        for (size_t k = 0; k < len[l]; k++) {
            if (k)
                buf_puts(&out, delim);
            buf_puts(&out, cname(ds, b[members[l][k]].idx));
        }
        free(members[l]);
    }
    free(members), free(lines), free(sum), free(rem), free(line_id), free(pos), free(last), free(len), free(b);
    return buf_detach(&out, NULL);
}

#define STITCH_MAX_DETS 20000
#define STITCH_MAX_COLLIMATE 2000

static int stitch_run(struct wf_call *c, int version)
{
    size_t n = wf_call_n(c);
    const char *autodir = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *dir = wf_arg_str(c, i, "reading_direction");
        const char *delim = wf_arg_str(c, i, "delimiter");
        long tol = (long)wf_arg_int(c, i, "tolerance", 10);
        const char *alg = version == 2 ? wf_arg_str(c, i, "stitching_algorithm") : NULL;
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        if (!alg)
            alg = "tolerance";
        if (!strcmp(alg, "tolerance") && tol <= 0)
            return wf_call_fail(c, "field 'tolerance': must be greater than zero");
        if (ds && ds->n > STITCH_MAX_DETS)
            return wf_call_fail(c, "%zu detections, at most %d", ds->n, STITCH_MAX_DETS);
        if (!strcmp(alg, "collimate")) {
            /* collimate's greedy chains cost up to n^3/6 steps when no box
             * follows another: a tighter cap, and no negative tolerance
             * (which makes every box its own line) */
            if (wf_arg_int(c, i, "collimate_tolerance", 10) < 0)
                return wf_call_fail(c, "field 'collimate_tolerance': must not be negative");
            if (ds && ds->n > STITCH_MAX_COLLIMATE)
                return wf_call_fail(c, "%zu detections, at most %d with 'collimate'", ds->n,
                                    STITCH_MAX_COLLIMATE);
        }
        if (!dir)
            dir = "left_to_right";
        if (!strcmp(dir, "auto")) { /* Roboflow decides once, from the first element */
            if (!autodir)
                autodir = auto_direction(wf_arg_dets(c, 0, "predictions"));
            dir = autodir;
        }
        char *s;
        if (!strcmp(alg, "otsu"))
            s = stitch_otsu(ds, dir, delim ? delim : "", wf_arg_double(c, i, "otsu_threshold_multiplier", 1.0));
        else if (!strcmp(alg, "collimate"))
            s = stitch_collimate(ds, dir, delim ? delim : "", (double)wf_arg_int(c, i, "collimate_tolerance", 10));
        else
            s = stitch(ds, dir, tol, delim ? delim : "", version);
        wf_out_json(c, i, "ocr_text", json_string(s));
        free(s);
    }
    return 0;
}

static int stitch1_run(struct wf_call *c) { return stitch_run(c, 1); }
static int stitch2_run(struct wf_call *c) { return stitch_run(c, 2); }

static const struct wf_field pp_fields[] = {
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"text_detection", NULL, WF_FT_ENUM, "\"small\"", WF_K_STRING, 0, det_sizes},
    {"text_recognition", NULL, WF_FT_ENUM, "\"small\"", WF_K_STRING, 0, det_sizes},
};
static const struct wf_field ocr_fields[] = {
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
};
static const struct wf_output ocr_outs[] = {
    {"result", WF_K_STRING},    {"predictions", WF_K_OD},       {"parent_id", WF_K_STRING},
    {"root_parent_id", WF_K_STRING}, {"prediction_type", WF_K_STRING},
};
#define F_STITCH_COMMON                                                                         \
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_OD, WF_F_SELECTOR_ONLY, NULL},                 \
    {"reading_direction", NULL, WF_FT_ENUM, NULL, WF_K_STRING, 0, directions},                \
    {"tolerance", NULL, WF_FT_INT_POS, "10", WF_K_INT, 0, NULL},                                \
    {"delimiter", NULL, WF_FT_STRING, "\"\"", WF_K_STRING, 0, NULL}
static const struct wf_field stitch1_fields[] = {F_STITCH_COMMON};
static const struct wf_field stitch2_fields[] = {
    {"stitching_algorithm", NULL, WF_FT_ENUM, NULL, WF_K_STRING, 0, algorithms},
    F_STITCH_COMMON,
    {"otsu_threshold_multiplier", NULL, WF_FT_FLOAT, "1.0", WF_K_NUMBER, 0, NULL},
    {"collimate_tolerance", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
};
static const struct wf_output stitch_outs[] = {{"ocr_text", WF_K_STRING}};

#define BLOCK(var, fields, outs, fn, ...)                                                     \
    static const char *const var##_types[] = {__VA_ARGS__, NULL};                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,       \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL};

BLOCK(pp_ocr1, pp_fields, ocr_outs, pp_ocr_run, "roboflow_core/pp_ocr@v1")
BLOCK(ocr_model1, ocr_fields, ocr_outs, ocr_model_run, "roboflow_core/ocr_model@v1", "OCRModel")
BLOCK(stitch1, stitch1_fields, stitch_outs, stitch1_run, "roboflow_core/stitch_ocr_detections@v1")
BLOCK(stitch2, stitch2_fields, stitch_outs, stitch2_run, "roboflow_core/stitch_ocr_detections@v2")

const struct wf_block *const wf_blocks_ocr[] = {&pp_ocr1, &ocr_model1, &stitch1, &stitch2, NULL};
