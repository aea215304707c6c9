/*
 * blocks/rollup.c — detections_list_rollup v1 (Roboflow's
 * core_steps/fusion/detections_list_rollup/v1.py, read, not copied): the
 * detections found in crops (child_detections, one list per detection of
 * parent_detection, as dimension_collapse gives them) brought back into the
 * parent image and merged per class.
 *
 * - Each child detection moves by (int(x_min), int(y_min)) of its crop's
 *   parent box; crop_zones lists the four corners of every parent box.
 * - Boxes (no child has a mask, no keypoints): union-find over the pairs of
 *   one class whose IoU is > 0 (overlap_threshold 0) or >= overlap_threshold;
 *   a group becomes its union box.
 * - Keypoints (a child list of "keypoint-detection"): greedy groups of the
 *   detections of one class whose mean distance between corresponding
 *   keypoints (same count) is under keypoint_merge_threshold; a group gets
 *   the mean keypoints, mean keypoint confidences and mean box; detections
 *   without keypoints follow unmerged.
 * - Masks (some child has a mask): Roboflow turns each mask into polygons
 *   (skimage find_contours at 0.5, one polygon per contour), groups the
 *   polygons of one class that touch or overlap (overlap_threshold 0) or
 *   whose polygon IoU reaches overlap_threshold, takes each group's
 *   shapely union and draws every part's exterior back as a mask.  The same
 *   is done here on pixels: a contour polygon is the 4-connected component
 *   of mask pixels with its holes filled (a pixel centre is inside the
 *   contour exactly when it is a pixel of the component or of a hole);
 *   two such polygons touch exactly when pixels of the two coincide or are
 *   4-neighbours; a group's mask is the union of its pieces, split into its
 *   4-connected parts with their holes filled (exteriors only, as
 *   Roboflow).  The box of a mask is (min x, min y, max x + 1, max y + 1).
 * - Confidence of a group: max, mean or min (confidence_strategy); class
 *   and data of the class's first child detection; a fresh detection_id;
 *   parent_id of the first child detection; image / parent / root
 *   dimensions the parent's root image.
 *
 * Departures (docs/WORKFLOWS-ENGINE.md): with overlap_threshold > 0 the IoU
 * of two mask pieces is on pixel counts, not on polygon areas (a contour
 * cuts a corner pixel's outer quarter); two pieces that meet only at one
 * contour vertex stay one mask here (shapely splits them); a mask touching
 * two image borders keeps its corner (Roboflow's open contour is closed by
 * a chord across it); with overlap_threshold > 0 a mask's hole is not
 * emitted as a detection of its own; detections are output per class in
 * first-seen order, parts of one group in scan order.  Masks come in as
 * polygons (vbatch's representation) and are rasterized at the crop's
 * size; the merged masks go out as their largest external contour.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/blocks/viz_int.h"
#include "workflow/wf_int.h"

#define RU_MAX_DETS 10000            /* child detections in one call */
#define RU_MAX_SIDE 65536            /* the parent image's width / height */
#define RU_MAX_PIXELS (64u << 20)    /* mask pixels in one call */
#define RU_MAX_RASTER (256u << 20)   /* child mask pixels rasterized in one call */
#define RU_MAX_PIECES 5000           /* mask components of one class */
#define RU_MAX_WORK 2000000000ull    /* pixels compared between mask pieces, all classes */
#define RU_MAX_UNION (256u << 20)    /* pixels of the merged groups' boxes, all classes */
#define RU_MAX_KP_WORK 200000000ull  /* keypoint distances (and pairs) compared, all classes */

struct ru_pred {
    double b[4];
    double conf;
    int class_id;
    const struct wf_det *src;
    struct wf_keypoint *kp; /* owned copies moved into the parent (names borrowed) */
    size_t nkp;
    bool has_kp;
    int mx, my, mw, mh; /* mask bitmap (0/1) in parent pixels */
    uint8_t *m;
    size_t area;
};

struct ru_out {
    struct ru_pred p; /* merged result; m owned */
    const struct wf_det *sample;
};

static struct wf_keypoint *kp_dup(const struct wf_keypoint *kp, size_t n)
{
    struct wf_keypoint *r = xmalloc(n * sizeof *r);
    memcpy(r, kp, n * sizeof *r);
    return r;
}

static void pred_free(struct ru_pred *p)
{
    free(p->kp);
    free(p->m);
}

static double combine(const double *v, size_t n, int strategy)
{
    double r = v[0];
    if (strategy == 1) {
        r = 0;
        for (size_t i = 0; i < n; i++)
            r += v[i];
        return r / (double)n;
    }
    for (size_t i = 1; i < n; i++)
        r = strategy == 2 ? fmin(r, v[i]) : fmax(r, v[i]);
    return r;
}

/* union-find with path compression; union(x, y): parent[find(x)] = find(y) */
static int uf_find(int *par, int x)
{
    int r = x;
    while (par[r] != r)
        r = par[r];
    while (par[x] != r) {
        int nx = par[x];
        par[x] = r;
        x = nx;
    }
    return r;
}

static void uf_union(int *par, int x, int y)
{
    int a = uf_find(par, x), b = uf_find(par, y);
    if (a != b)
        par[a] = b;
}

static double box_iou(const double *a, const double *b)
{
    double x1 = fmax(a[0], b[0]), y1 = fmax(a[1], b[1]), x2 = fmin(a[2], b[2]), y2 = fmin(a[3], b[3]);
    if (x2 <= x1 || y2 <= y1)
        return 0;
    double inter = (x2 - x1) * (y2 - y1);
    double u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return u > 0 ? inter / u : 0;
}

/* groups[k] = the group (0..) of item k, groups numbered by their first member */
static int number_groups(int *par, int n, int *group)
{
    int ng = 0;
    int *root_group = xmalloc(((size_t)n + 1) * sizeof *root_group);
    for (int k = 0; k < n; k++)
        root_group[k] = -1;
    for (int k = 0; k < n; k++) {
        int r = uf_find(par, k);
        if (root_group[r] < 0)
            root_group[r] = ng++;
        group[k] = root_group[r];
    }
    free(root_group);
    return ng;
}

/* ---- pixels ---------------------------------------------------------------------------------- */

/* Fill the holes of a 0/1 bitmap: background not 8-connected to the
 * outside becomes 1. */
static void fill_holes(uint8_t *m, int w, int h)
{
    size_t np = (size_t)w * h;
    uint8_t *out = xcalloc(np + 1, 1); /* 1 = background reached from outside */
    int *stack = xmalloc((np + 1) * sizeof *stack);
    size_t sp = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if ((x == 0 || y == 0 || x == w - 1 || y == h - 1) && !m[(size_t)y * w + x] && !out[(size_t)y * w + x])
                out[(size_t)y * w + x] = 1, stack[sp++] = y * w + x;
    while (sp) {
        int p = stack[--sp], x = p % w, y = p / w;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int nx = x + dx, ny = y + dy;
                if (nx < 0 || ny < 0 || nx >= w || ny >= h)
                    continue;
                size_t q = (size_t)ny * w + nx;
                if (!m[q] && !out[q])
                    out[q] = 1, stack[sp++] = (int)q;
            }
    }
    for (size_t i = 0; i < np; i++)
        if (!out[i])
            m[i] = 1;
    free(out);
    free(stack);
}

/* The 4-connected components of bitmap m (w x h at ox, oy) as pieces
 * appended to *ps (each hole-filled, template t); scan order. */
static void components(const uint8_t *m, int w, int h, int ox, int oy, const struct ru_pred *t, struct ru_pred **ps,
                       size_t *n, size_t *cap, size_t limit)
{
    size_t np = (size_t)w * h;
    int *lab = xcalloc(np + 1, sizeof *lab), *stack = xmalloc((np + 1) * sizeof *stack);
    int nl = 0;
    for (size_t s = 0; s < np && *n <= limit; s++) { /* beyond limit pieces: the caller fails */
        if (!m[s] || lab[s])
            continue;
        nl++;
        int x0 = w, y0 = h, x1 = -1, y1 = -1;
        size_t sp = 0;
        lab[s] = nl, stack[sp++] = (int)s;
        while (sp) {
            int p = stack[--sp], x = p % w, y = p / w;
            x0 = MIN(x0, x), y0 = MIN(y0, y), x1 = MAX(x1, x), y1 = MAX(y1, y);
            static const int D[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
            for (int k = 0; k < 4; k++) {
                int nx = x + D[k][0], ny = y + D[k][1];
                if (nx < 0 || ny < 0 || nx >= w || ny >= h)
                    continue;
                size_t q = (size_t)ny * w + nx;
                if (m[q] && !lab[q])
                    lab[q] = nl, stack[sp++] = (int)q;
            }
        }
        struct ru_pred p = *t;
        p.kp = NULL, p.nkp = 0;
        p.mx = ox + x0, p.my = oy + y0, p.mw = x1 - x0 + 1, p.mh = y1 - y0 + 1;
        p.m = xcalloc((size_t)p.mw * p.mh, 1);
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
                p.m[(size_t)(y - y0) * p.mw + (x - x0)] = lab[(size_t)y * w + x] == nl;
        fill_holes(p.m, p.mw, p.mh);
        p.area = 0;
        for (size_t i = 0; i < (size_t)p.mw * p.mh; i++)
            p.area += p.m[i];
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            *ps = xrealloc(*ps, *cap * sizeof **ps);
        }
        (*ps)[(*n)++] = p;
    }
    free(lab);
    free(stack);
}

static bool at(const struct ru_pred *p, int x, int y)
{
    return x >= p->mx && y >= p->my && x < p->mx + p->mw && y < p->my + p->mh &&
           p->m[(size_t)(y - p->my) * p->mw + (x - p->mx)];
}

/* threshold <= 0: whether the pieces' contours touch or overlap; else
 * whether their pixel IoU reaches thr.  Looks only where a meets b's box
 * grown by one; *work counts the pixels looked at. */
static bool pieces_merge(const struct ru_pred *a, const struct ru_pred *b, double thr, uint64_t *work)
{
    int x0 = MAX(a->mx, b->mx - 1), y0 = MAX(a->my, b->my - 1);
    int x1 = MIN(a->mx + a->mw, b->mx + b->mw + 1), y1 = MIN(a->my + a->mh, b->my + b->mh + 1);
    if (x0 >= x1 || y0 >= y1)
        return false;
    *work += (uint64_t)(x1 - x0) * (uint64_t)(y1 - y0);
    size_t inter = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            if (!at(a, x, y))
                continue;
            if (thr <= 0) {
                if (at(b, x, y) || at(b, x + 1, y) || at(b, x - 1, y) || at(b, x, y + 1) || at(b, x, y - 1))
                    return true;
            } else if (at(b, x, y)) {
                inter++;
            }
        }
    if (thr <= 0 || inter == 0)
        return false;
    return (double)inter / (double)(a->area + b->area - inter) >= thr;
}

/* ---- merging one class ------------------------------------------------------------------------ */

static void push_out(struct ru_out **o, size_t *n, size_t *cap, const struct ru_out *v)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *o = xrealloc(*o, *cap * sizeof **o);
    }
    (*o)[(*n)++] = *v;
}

static void merge_boxes(struct ru_pred *ps, int n, double thr, int strategy, struct ru_out **o, size_t *no,
                        size_t *cap)
{
    int *par = xmalloc(((size_t)n + 1) * sizeof *par), *grp = xmalloc(((size_t)n + 1) * sizeof *grp);
    for (int k = 0; k < n; k++)
        par[k] = k;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            double v = box_iou(ps[a].b, ps[b].b);
            if (thr <= 0 ? v > 0 : v >= thr)
                uf_union(par, a, b);
        }
    int ng = number_groups(par, n, grp);
    double *cv = xmalloc(((size_t)n + 1) * sizeof *cv);
    for (int g = 0; g < ng; g++) {
        struct ru_out r = {0};
        size_t nc = 0;
        for (int k = 0; k < n; k++) {
            if (grp[k] != g)
                continue;
            if (!nc) {
                r.p = ps[k];
                r.p.kp = NULL, r.p.nkp = 0, r.p.m = NULL;
            }
            cv[nc++] = ps[k].conf;
            r.p.b[0] = fmin(r.p.b[0], ps[k].b[0]), r.p.b[1] = fmin(r.p.b[1], ps[k].b[1]);
            r.p.b[2] = fmax(r.p.b[2], ps[k].b[2]), r.p.b[3] = fmax(r.p.b[3], ps[k].b[3]);
        }
        r.p.conf = combine(cv, nc, strategy);
        push_out(o, no, cap, &r);
    }
    free(par), free(grp), free(cv);
}

/* *work: keypoint distances computed so far in this call; ERR_LIMIT (the
 * outputs pushed so far are the caller's to free) beyond RU_MAX_KP_WORK. */
static int merge_keypoints(struct ru_pred *ps, int n, double thr, int strategy, struct ru_out **o, size_t *no,
                           size_t *cap, uint64_t *work)
{
    int rc = 0;
    bool *used = xcalloc((size_t)n + 1, 1);
    int *grp = xmalloc(((size_t)n + 1) * sizeof *grp);
    double *cv = xmalloc(((size_t)n + 1) * sizeof *cv);
    for (int a = 0; a < n; a++) {
        if (!ps[a].has_kp || used[a])
            continue;
        int ng = 0;
        grp[ng++] = a;
        used[a] = true;
        for (int b = a + 1; b < n; b++) {
            if ((*work += 1) > RU_MAX_KP_WORK) {
                rc = ERR_LIMIT;
                break;
            }
            if (!ps[b].has_kp || used[b] || ps[b].nkp != ps[a].nkp)
                continue;
            if ((*work += ps[a].nkp) > RU_MAX_KP_WORK) {
                rc = ERR_LIMIT;
                break;
            }
            double s = 0;
            for (size_t q = 0; q < ps[a].nkp; q++)
                s += hypot((double)ps[a].kp[q].x - ps[b].kp[q].x, (double)ps[a].kp[q].y - ps[b].kp[q].y);
            double mean = ps[a].nkp ? s / (double)ps[a].nkp : NAN; /* np.mean([]) is nan: never merges */
            if (mean < thr)
                grp[ng++] = b, used[b] = true;
        }
        struct ru_out r = {0};
        r.p = ps[a];
        r.p.m = NULL;
        r.p.kp = ps[a].nkp ? kp_dup(ps[a].kp, ps[a].nkp) : NULL;
        if (ng > 1) {
            for (int g = 0; g < ng; g++)
                cv[g] = ps[grp[g]].conf;
            r.p.conf = combine(cv, (size_t)ng, strategy);
            for (size_t q = 0; q < ps[a].nkp; q++) {
                double x = 0, y = 0, c = 0;
                for (int g = 0; g < ng; g++)
                    x += ps[grp[g]].kp[q].x, y += ps[grp[g]].kp[q].y, c += ps[grp[g]].kp[q].confidence;
                r.p.kp[q].x = (float)(x / ng), r.p.kp[q].y = (float)(y / ng), r.p.kp[q].confidence = (float)(c / ng);
            }
            for (int e = 0; e < 4; e++) {
                double s = 0;
                for (int g = 0; g < ng; g++)
                    s += ps[grp[g]].b[e];
                r.p.b[e] = s / ng;
            }
        }
        push_out(o, no, cap, &r);
        if (rc < 0)
            break;
    }
    for (int a = 0; a < n && rc == 0; a++)
        if (!ps[a].has_kp) {
            struct ru_out r = {0};
            r.p = ps[a];
            r.p.m = NULL, r.p.kp = NULL, r.p.nkp = 0;
            push_out(o, no, cap, &r);
        }
    free(used), free(grp), free(cv);
    return rc;
}

/* The groups of one class's mask pieces (mask_groups), materialised by
 * mask_emit once every class is grouped: the budgets below are checked
 * before any group's pixels are made (pieces within RU_MAX_PIXELS can
 * chain into groups whose boxes span the image, class after class). */
struct ru_groups {
    struct ru_pred *pc; /* the pieces; m owned */
    size_t npc;
    int *grp, ng;
    int *box; /* 4 per group: x0, y0, x1, y1 (inclusive) */
};

static void groups_free(struct ru_groups *g)
{
    for (size_t k = 0; k < g->npc; k++)
        free(g->pc[k].m);
    free(g->pc), free(g->grp), free(g->box);
    memset(g, 0, sizeof *g);
}

/* *work: pixels compared so far in this call (RU_MAX_WORK); *upix: the
 * groups' box pixels so far (RU_MAX_UNION).  ERR_LIMIT beyond either or
 * beyond RU_MAX_PIECES pieces; g is filled (free it either way). */
static int mask_groups(struct ru_pred *ps, int n, double thr, uint64_t *work, uint64_t *upix, struct ru_groups *g)
{
    int rc = 0;
    size_t pcap = 0;
    memset(g, 0, sizeof *g);
    for (int k = 0; k < n && g->npc <= RU_MAX_PIECES; k++)
        if (ps[k].m)
            components(ps[k].m, ps[k].mw, ps[k].mh, ps[k].mx, ps[k].my, &ps[k], &g->pc, &g->npc, &pcap,
                       RU_MAX_PIECES);
    if (g->npc > RU_MAX_PIECES)
        return ERR_LIMIT;
    int m = (int)g->npc;
    int *par = xmalloc(((size_t)m + 1) * sizeof *par);
    g->grp = xmalloc(((size_t)m + 1) * sizeof *g->grp);
    for (int k = 0; k < m; k++)
        par[k] = k;
    for (int a = 0; a < m && rc == 0; a++)
        for (int b = a + 1; b < m && rc == 0; b++) {
            if (pieces_merge(&g->pc[a], &g->pc[b], thr, work))
                uf_union(par, a, b);
            if (*work > RU_MAX_WORK)
                rc = ERR_LIMIT;
        }
    g->ng = rc == 0 ? number_groups(par, m, g->grp) : 0;
    free(par);
    g->box = xmalloc(((size_t)g->ng + 1) * 4 * sizeof *g->box);
    for (int q = 0; q < g->ng; q++)
        g->box[4 * q] = INT32_MAX, g->box[4 * q + 1] = INT32_MAX, g->box[4 * q + 2] = INT32_MIN,
        g->box[4 * q + 3] = INT32_MIN;
    for (int k = 0; k < m && g->ng; k++) {
        int *b = &g->box[4 * g->grp[k]];
        const struct ru_pred *p = &g->pc[k];
        b[0] = MIN(b[0], p->mx), b[1] = MIN(b[1], p->my);
        b[2] = MAX(b[2], p->mx + p->mw - 1), b[3] = MAX(b[3], p->my + p->mh - 1);
    }
    for (int q = 0; q < g->ng && rc == 0; q++) {
        const int *b = &g->box[4 * q];
        *upix += (uint64_t)(b[2] - b[0] + 1) * (uint64_t)(b[3] - b[1] + 1);
        if (*upix > RU_MAX_UNION)
            rc = ERR_LIMIT;
    }
    return rc;
}

/* Each group of g as its union's 4-connected parts, holes filled. */
static void mask_emit(const struct ru_groups *g, int strategy, struct ru_out **o, size_t *no, size_t *cap)
{
    int m = (int)g->npc;
    double *cv = xmalloc(((size_t)m + 1) * sizeof *cv);
    for (int q = 0; q < g->ng; q++) {
        int x0 = g->box[4 * q], y0 = g->box[4 * q + 1], first = -1;
        int w = g->box[4 * q + 2] - x0 + 1, h = g->box[4 * q + 3] - y0 + 1;
        size_t nc = 0;
        uint8_t *u = xcalloc((size_t)w * h, 1);
        for (int k = 0; k < m; k++) {
            if (g->grp[k] != q)
                continue;
            const struct ru_pred *p = &g->pc[k];
            if (first < 0)
                first = k;
            cv[nc++] = p->conf;
            for (int y = 0; y < p->mh; y++)
                for (int x = 0; x < p->mw; x++)
                    if (p->m[(size_t)y * p->mw + x])
                        u[(size_t)(p->my - y0 + y) * w + (p->mx - x0 + x)] = 1;
        }
        struct ru_pred t = g->pc[first];
        t.conf = combine(cv, nc, strategy);
        struct ru_pred *parts = NULL;
        size_t nparts = 0, partcap = 0;
        components(u, w, h, x0, y0, &t, &parts, &nparts, &partcap, SIZE_MAX);
        free(u);
        for (size_t r = 0; r < nparts; r++) {
            struct ru_out ro = {0};
            ro.p = parts[r];
            ro.p.b[0] = ro.p.mx, ro.p.b[1] = ro.p.my, ro.p.b[2] = ro.p.mx + ro.p.mw, ro.p.b[3] = ro.p.my + ro.p.mh;
            push_out(o, no, cap, &ro);
        }
        free(parts);
    }
    free(cv);
}

/* ---- the block -------------------------------------------------------------------------------- */

static const char *const STRATEGIES[] = {"max", "mean", "min", NULL};

static int rollup_one(struct wf_call *c, size_t i)
{
    const struct wf_dets *parent = wf_arg_dets(c, i, "parent_detection");
    const struct wf_value *kids = wf_arg(c, i, "child_detections");
    const char *strat = wf_arg_str(c, i, "confidence_strategy");
    double thr = wf_arg_double(c, i, "overlap_threshold", 0.0);
    double kthr = wf_arg_double(c, i, "keypoint_merge_threshold", 10.0);
    int strategy = -1;
    for (int s = 0; strat && STRATEGIES[s]; s++)
        if (!strcmp(strat, STRATEGIES[s]))
            strategy = s;
    if (strategy < 0)
        return wf_call_fail(c, "confidence_strategy must be one of max, mean, min");
    if (!(thr >= 0 && thr <= 1))
        return wf_call_fail(c, "overlap_threshold must be within 0..1");
    if (!(kthr >= 0) || !isfinite(kthr))
        return wf_call_fail(c, "keypoint_merge_threshold must be a number >= 0");
    if (!kids || kids->type != WF_V_LIST)
        return wf_call_fail(c, "child_detections must be a list of detections (dimension_collapse of the "
                               "predictions made on the crops)");
    size_t np = parent ? parent->n : 0;
    if (np != kids->n)
        return wf_call_fail(c, "Number of detections in parent_prediction (%zu) must match number of child "
                               "predictions (%zu)", np, kids->n);
    if (np == 0)
        return wf_call_fail(c, "parent_prediction must have 'root_parent_dimensions' in its data attribute "
                               "(it has no detections)");
    const struct wf_det *p0 = &parent->d[0];
    int pw = p0->root.width > 0 ? p0->root.width : p0->img_w, ph = p0->root.height > 0 ? p0->root.height : p0->img_h;
    if (pw <= 0 || ph <= 0 || pw > RU_MAX_SIDE || ph > RU_MAX_SIDE)
        return wf_call_fail(c, "the parent image's dimensions (%d x %d) are not usable", pw, ph);
    size_t total = 0;
    bool has_masks = false, is_kp = false;
    for (size_t k = 0; k < np; k++) {
        const struct wf_value *v = kids->items[k];
        if (wf_value_is_null(v))
            continue;
        if (v->type != WF_V_DETS)
            return wf_call_fail(c, "child_detections[%zu] is not a detections value", k);
        total += v->dets->n;
        for (size_t j = 0; j < v->dets->n; j++)
            has_masks |= v->dets->d[j].has_mask;
        if (v->dets->n && ((v->dets->d[0].prediction_type && !strcmp(v->dets->d[0].prediction_type,
                                                                     "keypoint-detection")) ||
                           v->dets->d[0].has_kp))
            is_kp = true;
    }
    if (total > RU_MAX_DETS)
        return wf_call_fail(c, "%zu child detections: at most %d", total, RU_MAX_DETS);
    /* crop zones */
    json_t *zones = json_array();
    for (size_t k = 0; k < np; k++) {
        const struct wf_det *d = &parent->d[k];
        if (!isfinite(d->x1) || !isfinite(d->y1) || !isfinite(d->x2) || !isfinite(d->y2)) {
            json_decref(zones); /* json_pack refuses them: the zone would be dropped unsaid */
            return wf_call_fail(c, "parent_prediction[%zu] has a box that is not finite", k);
        }
        json_array_append_new(zones, json_pack("[[f,f],[f,f],[f,f],[f,f]]", (double)d->x1, (double)d->y1,
                                               (double)d->x2, (double)d->y1, (double)d->x2, (double)d->y2,
                                               (double)d->x1, (double)d->y2));
    }
    /* child detections in parent pixels, per class in first-seen order */
    struct ru_pred *ps = xcalloc(total + 1, sizeof *ps);
    int *cls = xmalloc((total + 1) * sizeof *cls), ncls = 0;
    const struct wf_det **sample = xmalloc((total + 1) * sizeof *sample);
    size_t n = 0, pixels = 0, raster = 0;
    int rc = 0;
    for (size_t k = 0; k < np && rc == 0; k++) {
        const struct wf_value *v = kids->items[k];
        if (wf_value_is_null(v))
            continue;
        int xo = viz__trunc(parent->d[k].x1), yo = viz__trunc(parent->d[k].y1);
        for (size_t j = 0; j < v->dets->n && rc == 0; j++) {
            const struct wf_det *d = &v->dets->d[j];
            struct ru_pred *p = &ps[n++];
            p->src = d;
            p->conf = d->confidence;
            p->class_id = d->class_id;
            p->b[0] = (double)(d->x1 + (float)xo), p->b[1] = (double)(d->y1 + (float)yo);
            p->b[2] = (double)(d->x2 + (float)xo), p->b[3] = (double)(d->y2 + (float)yo);
            if (is_kp && d->has_kp) {
                p->has_kp = true;
                p->nkp = d->nkp;
                p->kp = d->nkp ? kp_dup(d->kp, d->nkp) : NULL;
                for (size_t q = 0; q < d->nkp; q++)
                    p->kp[q].x += (float)xo, p->kp[q].y += (float)yo;
            }
            if (has_masks && !is_kp && d->has_mask) {
                struct vis_image *mk = NULL;
                int ox = 0, oy = 0;
                int cw = d->img_w > 0 ? d->img_w : pw, ch = d->img_h > 0 ? d->img_h : ph;
                /* rasterized only where it can land in the parent (the crop's
                 * size is the model's word), and counted */
                cw = (int)MIN((int64_t)cw, (int64_t)pw - xo), ch = (int)MIN((int64_t)ch, (int64_t)ph - yo);
                rc = cw > 0 && ch > 0 ? viz__det_mask(d, cw, ch, &mk, &ox, &oy) : 0;
                if (rc == 0 && mk && (raster += (size_t)mk->w * (size_t)mk->h) > RU_MAX_RASTER)
                    rc = ERR_LIMIT;
                if (rc == 0 && mk) {
                    /* paste at the crop's offset, clipped to the parent image */
                    int x0 = MAX(0, xo + ox), y0 = MAX(0, yo + oy);
                    int x1 = MIN(pw, xo + ox + mk->w), y1 = MIN(ph, yo + oy + mk->h);
                    if (x1 > x0 && y1 > y0) {
                        pixels += (size_t)(x1 - x0) * (size_t)(y1 - y0);
                        if (pixels > RU_MAX_PIXELS) {
                            rc = ERR_LIMIT;
                        } else {
                            p->mx = x0, p->my = y0, p->mw = x1 - x0, p->mh = y1 - y0;
                            p->m = xcalloc((size_t)p->mw * p->mh, 1);
                            for (int y = y0; y < y1; y++)
                                for (int x = x0; x < x1; x++)
                                    p->m[(size_t)(y - y0) * p->mw + (x - x0)] =
                                        vis_px(mk, x - xo - ox, y - yo - oy)[0] != 0;
                        }
                    }
                }
                vis_image_free(mk);
            }
            int q = 0;
            while (q < ncls && cls[q] != d->class_id)
                q++;
            if (q == ncls)
                sample[ncls] = d, cls[ncls++] = d->class_id;
        }
    }
    if (rc < 0) {
        for (size_t k = 0; k < n; k++)
            pred_free(&ps[k]);
        free(ps), free(cls), free(sample);
        json_decref(zones);
        return rc == ERR_LIMIT ? wf_call_fail(c, "masks larger than %u pixels in all", RU_MAX_PIXELS)
                               : wf_call_fail(c, "rasterizing a child mask failed");
    }
    struct ru_out *outs = NULL;
    size_t no = 0, ocap = 0;
    struct ru_pred *tmp = xcalloc(total + 1, sizeof *tmp);
    /* masks: every class grouped (and the budgets checked) before any group is drawn */
    struct ru_groups *mg = !is_kp && has_masks ? xcalloc((size_t)ncls + 1, sizeof *mg) : NULL;
    uint64_t work = 0, upix = 0, kwork = 0;
    bool kp_limit = false;
    for (int q = 0; q < ncls && rc == 0 && mg; q++) {
        int m = 0;
        for (size_t k = 0; k < n; k++)
            if (ps[k].class_id == cls[q])
                tmp[m++] = ps[k];
        rc = mask_groups(tmp, m, thr, &work, &upix, &mg[q]);
    }
    for (int q = 0; q < ncls && rc == 0; q++) {
        int m = 0;
        for (size_t k = 0; k < n; k++)
            if (ps[k].class_id == cls[q])
                tmp[m++] = ps[k];
        size_t before = no;
        if (is_kp) {
            if ((rc = merge_keypoints(tmp, m, kthr, strategy, &outs, &no, &ocap, &kwork)) < 0)
                kp_limit = true;
        } else if (mg)
            mask_emit(&mg[q], strategy, &outs, &no, &ocap);
        else
            merge_boxes(tmp, m, thr, strategy, &outs, &no, &ocap);
        for (size_t r = before; r < no; r++)
            outs[r].sample = sample[q];
    }
    for (int q = 0; q < ncls && mg; q++)
        groups_free(&mg[q]);
    free(mg);
    free(tmp);
    if (rc < 0) {
        for (size_t r = 0; r < no; r++)
            pred_free(&outs[r].p);
        free(outs);
        for (size_t k = 0; k < n; k++)
            pred_free(&ps[k]);
        free(ps), free(cls), free(sample);
        json_decref(zones);
        if (kp_limit)
            return wf_call_fail(c, "the child keypoint detections are too many to merge (at most %llu keypoint "
                                   "distances in one call)", (unsigned long long)RU_MAX_KP_WORK);
        return wf_call_fail(c, "the child masks are too many, overlap too much or chain too far to merge (at "
                               "most %d pieces of one class, %u pixels of merged boxes)", RU_MAX_PIECES, RU_MAX_UNION);
    }
    const char *pid = n > 0 && !wf_value_is_null(kids->items[0]) && kids->items[0]->dets->n
                          ? kids->items[0]->dets->d[0].parent_id : NULL;
    struct wf_dets *res = wf_dets_new();
    for (size_t r = 0; r < no && rc == 0; r++) {
        struct ru_pred *p = &outs[r].p;
        struct wf_det *o = wf_dets_push_copy(res, outs[r].sample);
        uuid4(o->detection_id);
        free(o->parent_id);
        if (pid && *pid) {
            o->parent_id = xstrdup(pid);
        } else {
            char u[37];
            uuid4(u);
            o->parent_id = xstrdup(u);
        }
        o->x1 = (float)p->b[0], o->y1 = (float)p->b[1], o->x2 = (float)p->b[2], o->y2 = (float)p->b[3];
        o->confidence = (float)p->conf;
        o->class_id = p->class_id;
        /* the boxes are in the parent detections' image now: its offsets
         * (0 for a root image), Roboflow's root dimensions */
        o->img_w = pw, o->img_h = ph;
        o->parent = parent->d[0].parent, o->root = parent->d[0].root;
        o->parent.width = o->root.width = pw, o->parent.height = o->root.height = ph;
        o->no_parent = false;
        free(o->poly);
        o->poly = NULL, o->npoly = 0, o->has_mask = false;
        if (p->m) {
            bool found = false;
            rc = cv__mask_polygon(p->m, p->mw, p->mh, o, &found);
            for (size_t q = 0; q < o->npoly; q++)
                o->poly[q].x += (float)p->mx, o->poly[q].y += (float)p->my;
        }
        if (is_kp) {
            for (size_t q = 0; q < o->nkp; q++)
                free(o->kp[q].class_name);
            free(o->kp);
            o->kp = NULL, o->nkp = 0, o->has_kp = p->has_kp;
            if (p->has_kp && p->nkp) {
                o->kp = xcalloc(p->nkp, sizeof *o->kp);
                for (size_t q = 0; q < p->nkp; q++) {
                    o->kp[q] = p->kp[q];
                    o->kp[q].class_name = xstrdup(p->kp[q].class_name ? p->kp[q].class_name : "");
                }
                o->nkp = p->nkp;
            }
        }
    }
    for (size_t r = 0; r < no; r++)
        pred_free(&outs[r].p);
    free(outs);
    for (size_t k = 0; k < n; k++)
        pred_free(&ps[k]);
    free(ps), free(cls), free(sample);
    if (rc < 0) {
        wf_dets_free(res);
        json_decref(zones);
        return wf_call_fail(c, "a merged mask's outline is too long");
    }
    wf_out_dets(c, i, "rolled_up_detections", res);
    wf_out_json(c, i, "crop_zones", zones);
    return 0;
}

static int rollup_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        int rc = rollup_one(c, i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const struct wf_field rollup_fields[] = {
    {"parent_detection", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"child_detections", NULL, WF_FT_ANY, NULL, WF_K_LIST, WF_F_SELECTOR_ONLY, NULL},
    {"confidence_strategy", NULL, WF_FT_ENUM, "\"max\"", WF_K_LIST | WF_K_STRING, 0, STRATEGIES},
    {"overlap_threshold", NULL, WF_FT_FLOAT01, "0.0", WF_K_FLOAT, 0, NULL},
    {"keypoint_merge_threshold", NULL, WF_FT_FLOAT, "10.0", WF_K_FLOAT, 0, NULL},
};
static const struct wf_output rollup_outs[] = {{"rolled_up_detections", WF_K_DETS}, {"crop_zones", WF_K_LIST}};
static const struct wf_block rollup_v1 = {
    (const char *const[]){"roboflow_core/detections_list_rollup@v1", "DetectionsListRollUp", NULL},
    rollup_fields, ARRAY_LEN(rollup_fields), rollup_outs, ARRAY_LEN(rollup_outs), 0, 0, NULL, rollup_run, NULL};

const struct wf_block *const wf_blocks_rollup[] = {&rollup_v1, NULL};
