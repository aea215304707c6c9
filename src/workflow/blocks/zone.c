/*
 * blocks/zone.c — dynamic_zone (roboflow/inference
 * transformations/dynamic_zones/v1.py, read, not copied): each instance
 * segmentation mask becomes a convex polygon with a requested number of
 * vertices.
 *
 * For every detection: its mask (the polygon rasterized as cv2.fillPoly,
 * sv.polygon_to_mask); the longest of its external contours with >= 3
 * points (sv.mask_to_polygons: cv2.findContours RETR_EXTERNAL,
 * CHAIN_APPROX_SIMPLE; the first of equal length in OpenCV's order);
 * cv2.convexHull(clockwise=True) — Andrew's monotone chain without collinear
 * points, started where OpenCV starts it (the lowest x, then y), then
 * rotated as OpenCV does when the hull's indices into the contour run
 * monotonically; cv2.approxPolyDP with Roboflow's bisection on epsilon
 * (from 1e-7 .. perimeter, 1000 steps) until the vertex count matches;
 * padding with copies of the last vertex or truncation when it does not
 * (simplification_converged false); scaling about the cv2.moments centroid
 * by scale_ratio (numpy half-to-even rounding).  Outputs: zones (the
 * polygons, integer [x, y] lists), predictions (the detections with the
 * polygon as their mask; the boxes unchanged), simplification_converged
 * (all converged).  Detections without masks give zones [] and predictions
 * None; an empty detections value gives [] / empty / true.
 *
 * The mask rasterization equals cv2.fillPoly's pixel for pixel, also for
 * polygons leaving the image (checked on random polygons against
 * python3-opencv in tests/unit/test_workflow_zone.c).
 *
 * Departures: apply_least_squares = true is refused with a step error (not
 * implemented yet); when the largest contour passes a pixel twice (a
 * one-pixel-wide part) the hull may start at another vertex than OpenCV's,
 * whose choice depends on its sort of equal points; the output mask is the
 * polygon itself, where Roboflow serializes the contour of its rasterized
 * mask.  A mask with no contour of >= 3 points is a step error (Roboflow
 * fails on max() of nothing).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/blocks/viz_int.h"
#include "workflow/wf_int.h"

#define DZ_MAX_VERTICES 10000
#define DZ_STEPS 1000
#define DZ_MAX_MASK_POINTS 100000

static long long dz_cross(const int *o, const int *a, const int *b)
{
    return (long long)(a[0] - o[0]) * (b[1] - o[1]) - (long long)(a[1] - o[1]) * (b[0] - o[0]);
}

static int dz_cmp(const void *a, const void *b)
{
    const int *p = a, *q = b;
    return p[0] != q[0] ? (p[0] > q[0]) - (p[0] < q[0]) : (p[1] > q[1]) - (p[1] < q[1]);
}

/* Index of point p in the contour (its first occurrence). */
static int dz_index(const int *pts, size_t n, const int *p)
{
    for (size_t i = 0; i < n; i++)
        if (pts[2 * i] == p[0] && pts[2 * i + 1] == p[1])
            return (int)i;
    return 0;
}

/* cv2.convexHull(pts, clockwise=True, returnPoints=True) of n points into
 * hull (room for n + 1 points); returns the vertex count. */
size_t cv__convex_hull(const int *pts, size_t n, int *hull)
{
    if (n == 0)
        return 0;
    int *s = xcalloc(2 * n, sizeof *s), *ch = xcalloc(2 * (2 * n + 1), sizeof *ch);
    memcpy(s, pts, 2 * n * sizeof *s);
    qsort(s, n, 2 * sizeof *s, dz_cmp);
    size_t m = 0; /* unique */
    for (size_t i = 0; i < n; i++)
        if (!m || s[2 * i] != s[2 * (m - 1)] || s[2 * i + 1] != s[2 * (m - 1) + 1])
            s[2 * m] = s[2 * i], s[2 * m + 1] = s[2 * i + 1], m++;
    size_t k = 0;
    if (m <= 2) {
        memcpy(ch, s, 2 * m * sizeof *s);
        k = m;
    } else {
        for (size_t i = 0; i < m; i++) { /* lower chain (y up), collinear dropped */
            while (k >= 2 && dz_cross(ch + 2 * (k - 2), ch + 2 * (k - 1), s + 2 * i) <= 0)
                k--;
            ch[2 * k] = s[2 * i], ch[2 * k + 1] = s[2 * i + 1], k++;
        }
        for (size_t i = m - 1, t = k + 1; i-- > 0;) {
            while (k >= t && dz_cross(ch + 2 * (k - 2), ch + 2 * (k - 1), s + 2 * i) <= 0)
                k--;
            ch[2 * k] = s[2 * i], ch[2 * k + 1] = s[2 * i + 1], k++;
        }
        k--; /* the first point closes the chain */
    }
    /* OpenCV's direction: from the first point the other way round */
    hull[0] = ch[0], hull[1] = ch[1];
    for (size_t i = 1; i < k; i++)
        hull[2 * i] = ch[2 * (k - i)], hull[2 * i + 1] = ch[2 * (k - i) + 1];
    /* OpenCV's cyclic shift: start at the lowest (ascending) or highest
     * (descending) contour index when the indices run monotonically */
    if (k >= 3) {
        int *idx = xcalloc(k, sizeof *idx);
        for (size_t i = 0; i < k; i++)
            idx[i] = dz_index(pts, n, hull + 2 * i);
        size_t mn = 0, mx = 0, lt = 0, nout = k;
        for (size_t i = 1; i < nout; i++) {
            lt += idx[i - 1] < idx[i];
            if (lt > 1 && lt + 1 < i)
                break;
            if (idx[i] < idx[mn])
                mn = i;
            if (idx[i] > idx[mx])
                mx = i;
        }
        size_t mm = mn > mx ? mn - mx : mx - mn;
        if ((mm == 1 || mm == nout - 1) && (lt <= 1 || lt + 2 >= nout)) {
            bool asc = (mx + 1) % nout == mn;
            size_t i0 = asc ? mn : mx, j = i0, i;
            if (i0 > 0) {
                size_t *order = xcalloc(nout, sizeof *order);
                for (i = 0; i < nout; i++) {
                    size_t nj = j + 1 < nout ? j + 1 : 0;
                    order[i] = j;
                    if (i < nout - 1 && asc != (idx[j] < idx[nj]))
                        break;
                    j = nj;
                }
                if (i == nout) {
                    int *tmp = xcalloc(2 * nout, sizeof *tmp);
                    for (size_t q = 0; q < nout; q++)
                        tmp[2 * q] = hull[2 * order[q]], tmp[2 * q + 1] = hull[2 * order[q] + 1];
                    memcpy(hull, tmp, 2 * nout * sizeof *tmp);
                    free(tmp);
                }
                free(order);
            }
        }
        free(idx);
    }
    free(s);
    free(ch);
    return k;
}

/* cv2.moments centroid of an integer polygon; false when m00 == 0. */
static bool dz_centroid(const int *p, size_t n, double *cx, double *cy)
{
    double a00 = 0, a10 = 0, a01 = 0;
    if (n == 0)
        return false;
    double x1 = p[2 * (n - 1)], y1 = p[2 * (n - 1) + 1];
    for (size_t i = 0; i < n; i++) {
        double x = p[2 * i], y = p[2 * i + 1];
        double dxy = x1 * y - x * y1;
        a00 += dxy;
        a10 += dxy * (x1 + x);
        a01 += dxy * (y1 + y);
        x1 = x, y1 = y;
    }
    if (!(fabs(a00) > FLT_EPSILON))
        return false;
    double d2 = a00 > 0 ? 0.5 : -0.5, d6 = a00 > 0 ? 1. / 6 : -1. / 6;
    double m00 = a00 * d2, m10 = a10 * d6, m01 = a01 * d6;
    if (m00 == 0)
        return false;
    *cx = m10 / m00, *cy = m01 / m00;
    return true;
}

/* ---- cv2.fillPoly(mask, [pts], 1) (sv.polygon_to_mask) ---------------------- */

struct dz_edge {
    int y0, y1;
    int64_t x, dx; /* 16.16 fixed point: x at y0, step per row */
};

static void dz_set(uint8_t *m, int w, int h, long long x, long long y)
{
    if (x >= 0 && y >= 0 && x < w && y < h)
        m[(size_t)y * w + x] = 255;
}

/* cv::clipLine: the part of the segment inside the w x h image, end points
 * moved along the segment with OpenCV's truncations; false when none. */
static bool dz_clip(int w, int h, long long *x1, long long *y1, long long *x2, long long *y2)
{
    long long right = w - 1, bottom = h - 1, a;
    int c1 = (*x1 < 0) + (*x1 > right) * 2 + (*y1 < 0) * 4 + (*y1 > bottom) * 8;
    int c2 = (*x2 < 0) + (*x2 > right) * 2 + (*y2 < 0) * 4 + (*y2 > bottom) * 8;
    if ((c1 & c2) == 0 && (c1 | c2) != 0) {
        if (c1 & 12) {
            a = c1 < 8 ? 0 : bottom;
            *x1 += (long long)((double)(a - *y1) * (double)(*x2 - *x1) / (double)(*y2 - *y1));
            *y1 = a;
            c1 = (*x1 < 0) + (*x1 > right) * 2;
        }
        if (c2 & 12) {
            a = c2 < 8 ? 0 : bottom;
            *x2 += (long long)((double)(a - *y2) * (double)(*x2 - *x1) / (double)(*y2 - *y1));
            *y2 = a;
            c2 = (*x2 < 0) + (*x2 > right) * 2;
        }
        if ((c1 & c2) == 0 && (c1 | c2) != 0) {
            if (c1) {
                a = c1 == 1 ? 0 : right;
                *y1 += (long long)((double)(a - *x1) * (double)(*y2 - *y1) / (double)(*x2 - *x1));
                *x1 = a;
                c1 = 0;
            }
            if (c2) {
                a = c2 == 1 ? 0 : right;
                *y2 += (long long)((double)(a - *x2) * (double)(*y2 - *y1) / (double)(*x2 - *x1));
                *x2 = a;
                c2 = 0;
            }
        }
    }
    return (c1 | c2) == 0;
}

/* cv2.line(LINE_8) as OpenCV's LineIterator walks it: clipped to the
 * image first, then left to right. */
static void dz_line(uint8_t *m, int w, int h, int ix0, int iy0, int ix1, int iy1)
{
    long long cx0 = ix0, cy0 = iy0, cx1 = ix1, cy1 = iy1;
    if (!(ix0 >= 0 && ix0 < w && iy0 >= 0 && iy0 < h && ix1 >= 0 && ix1 < w && iy1 >= 0 &&
          iy1 < h) &&
        !dz_clip(w, h, &cx0, &cy0, &cx1, &cy1))
        return;
    int x0 = (int)cx0, y0 = (int)cy0, x1 = (int)cx1, y1 = (int)cy1;
    if (x1 < x0) {
        int t = x0;
        x0 = x1, x1 = t, t = y0, y0 = y1, y1 = t;
    }
    long long dx = (long long)x1 - x0, dy = (long long)y1 - y0;
    int sy = dy < 0 ? -1 : 1;
    dy = dy < 0 ? -dy : dy;
    bool steep = dy > dx;
    long long a = steep ? dy : dx, b = steep ? dx : dy, err = a - 2 * b;
    long long x = x0, y = y0;
    for (long long i = 0; i <= a; i++) {
        if (x >= w)
            break; /* x only grows */
        dz_set(m, w, h, x, y);
        bool minor = err < 0;
        err += -2 * b + (minor ? 2 * a : 0);
        if (steep)
            y += sy, x += minor;
        else
            x += 1, y += minor ? sy : 0;
    }
}

static int dz_edge_cmp(const void *pa, const void *pb)
{
    const struct dz_edge *a = pa, *b = pb;
    return a->y0 != b->y0 ? (a->y0 > b->y0) - (a->y0 < b->y0)
           : a->x != b->x ? (a->x > b->x) - (a->x < b->x)
                          : (a->dx > b->dx) - (a->dx < b->dx);
}

static int dz_i64_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* The w x h mask of the polygon as cv2.fillPoly draws it: the outline with
 * cv2.line (clipped as cv::clipLine does), then every row between the
 * edges (16.16 fixed point, even-odd pairs, [ceil(left), floor(right)]).
 * Declared in cv_int.h. */
int cv__fill_poly(const int *pts, size_t n, int w, int h, struct vis_image **out)
{
    struct vis_image *img = vis_image_new(w, h, VIS_GRAY);
    if (!img)
        return ERR_NOMEM;
    uint8_t *m = xcalloc((size_t)w * h, 1);
    struct dz_edge *e = xcalloc(n, sizeof *e);
    size_t ne = 0;
    int ymin = INT32_MAX, ymax = INT32_MIN;
    for (size_t i = 0; i < n; i++) {
        const int *p0 = pts + 2 * ((i + n - 1) % n), *p1 = pts + 2 * i;
        dz_line(m, w, h, p0[0], p0[1], p1[0], p1[1]);
        if (p0[1] == p1[1])
            continue;
        const int *a = p0[1] < p1[1] ? p0 : p1, *b = p0[1] < p1[1] ? p1 : p0;
        e[ne].y0 = a[1], e[ne].y1 = b[1];
        e[ne].x = (int64_t)a[0] * 65536;
        e[ne].dx = ((int64_t)p1[0] * 65536 - (int64_t)p0[0] * 65536) / (p1[1] - p0[1]);
        ymin = MIN(ymin, a[1]), ymax = MAX(ymax, b[1]);
        ne++;
    }
    qsort(e, ne, sizeof *e, dz_edge_cmp);
    int64_t *xs = xcalloc(ne + 1, sizeof *xs);
    for (int y = MAX(ymin, 0); ne >= 2 && y < MIN(ymax, h); y++) {
        size_t k = 0;
        for (size_t i = 0; i < ne && e[i].y0 <= y; i++)
            if (y < e[i].y1)
                xs[k++] = e[i].x + (int64_t)(y - e[i].y0) * e[i].dx;
        qsort(xs, k, sizeof *xs, dz_i64_cmp);
        for (size_t i = 0; i + 1 < k; i += 2) {
            int64_t x1 = (xs[i] + 65535) >> 16, x2 = xs[i + 1] >> 16;
            if (x1 >= w || x2 < 0)
                continue;
            x1 = MAX(x1, 0), x2 = MIN(x2, (int64_t)w - 1);
            if (x1 <= x2)
                memset(m + (size_t)y * w + x1, 255, (size_t)(x2 - x1 + 1));
        }
    }
    for (int y = 0; y < h; y++)
        memcpy(vis_px(img, 0, y), m + (size_t)y * w, (size_t)w);
    free(xs), free(e), free(m);
    *out = img;
    return 0;
}

/* The simplified polygon of one mask into *out (malloc'd, n points);
 * returns the number of points before padding / truncation, or <0. */
static int dz_simplify(const struct vis_image *mask, int ox, int oy, int nreq, int **out,
                       size_t *nout)
{
    struct cv_contours o = {0};
    int rc = cv__find_contours(mask, &o);
    if (rc < 0) {
        free(o.pts), free(o.start);
        return rc;
    }
    /* the longest contour with >= 3 points, the first in OpenCV's order */
    size_t best = SIZE_MAX, blen = 0;
    for (size_t k = o.n; k-- > 0;) {
        size_t len = o.start[k + 1] - o.start[k];
        if (len >= 3 && (best == SIZE_MAX || len > blen))
            best = k, blen = len;
    }
    if (best == SIZE_MAX) {
        free(o.pts), free(o.start);
        return ERR_NOTFOUND;
    }
    const int *c = o.pts + 2 * o.start[best];
    int *hull = xcalloc(2 * (blen + 1), sizeof *hull);
    size_t nh = cv__convex_hull(c, blen, hull);
    free(o.pts), free(o.start);
    int *ap = xcalloc(2 * (nh + 1), sizeof *ap);
    size_t *stack = xcalloc(2 * nh + 2, sizeof *stack);
    double hi = cv__arc_length(hull, nh), lo = 0.0000001, eps = lo + hi / 2;
    size_t na = cv__approx_poly_closed(hull, nh, eps, ap, stack);
    for (int step = 0; step < DZ_STEPS && na != (size_t)nreq; step++) {
        if (na > (size_t)nreq)
            lo = eps;
        else
            hi = eps;
        eps = lo + (hi - lo) / 2;
        na = cv__approx_poly_closed(hull, nh, eps, ap, stack);
    }
    free(stack);
    free(hull);
    int *res = xcalloc(2 * (size_t)nreq, sizeof *res);
    for (size_t q = 0; q < (size_t)nreq; q++) {
        size_t from = q < na ? q : na - 1; /* pad with the last vertex */
        res[2 * q] = ap[2 * from] + ox, res[2 * q + 1] = ap[2 * from + 1] + oy;
    }
    free(ap);
    *out = res, *nout = (size_t)nreq;
    return (int)na;
}

static int dz_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *in = wf_arg_dets(c, i, "predictions");
        int64_t nreq = wf_arg_int(c, i, "required_number_of_vertices", 0);
        double scale = wf_arg_double(c, i, "scale_ratio", 1.0);
        if (!in)
            continue;
        if (wf_arg_bool(c, i, "apply_least_squares", false))
            return wf_call_fail(c, "apply_least_squares is not supported yet");
        if (nreq < 1 || nreq > DZ_MAX_VERTICES)
            return wf_call_fail(c, "required_number_of_vertices must be in 1..%d, got %lld",
                                DZ_MAX_VERTICES, (long long)nreq);
        if (!isfinite(scale) || fabs(scale) > 1e6)
            return wf_call_fail(c, "scale_ratio must be a finite number up to 1e6, got %g", scale);
        bool any_mask = false;
        for (size_t k = 0; k < in->n; k++)
            any_mask |= in->d[k].has_mask;
        if (in->n && !any_mask) { /* sv: mask None */
            wf_out_json(c, i, "zones", json_array());
            wf_out_json(c, i, "simplification_converged", json_false());
            continue;
        }
        struct wf_dets *ds = wf_dets_clone(in);
        json_t *zones = json_array();
        bool converged = true;
        for (size_t k = 0; k < ds->n; k++) {
            struct wf_det *d = &ds->d[k];
            struct vis_image *m = NULL;
            int ox = 0, oy = 0, rc = ERR_NOTFOUND;
            int *poly = NULL;
            size_t np = 0;
            if (d->has_mask && d->npoly >= 3 && d->img_w > 0 && d->img_h > 0) {
                if (d->npoly > DZ_MAX_MASK_POINTS)
                    rc = ERR_LIMIT;
                else {
                    int *pp = xcalloc(2 * d->npoly, sizeof *pp);
                    long long lim = 4LL * (d->img_w + d->img_h);
                    for (size_t q = 0; q < d->npoly; q++) { /* polygon.astype(np.int32) */
                        pp[2 * q] = viz__trunc(d->poly[q].x), pp[2 * q + 1] = viz__trunc(d->poly[q].y);
                        if (llabs(pp[2 * q]) > lim || llabs(pp[2 * q + 1]) > lim)
                            rc = ERR_INVALID;
                    }
                    if (rc != ERR_INVALID)
                        rc = cv__fill_poly(pp, d->npoly, d->img_w, d->img_h, &m);
                    free(pp);
                }
                if (rc == 0)
                    rc = dz_simplify(m, ox, oy, (int)nreq, &poly, &np);
            }
            vis_image_free(m);
            if (rc < 0) {
                wf_dets_free(ds);
                json_decref(zones);
                return wf_call_fail(c, rc == ERR_NOTFOUND
                                           ? "detection #%zu: no mask contour of 3 or more "
                                             "points"
                                       : rc == ERR_INVALID
                                           ? "detection #%zu: mask polygon far outside the "
                                             "image (%d)"
                                           : "detection #%zu: mask too large (%d)",
                                    k, rc);
            }
            if (rc != nreq)
                converged = false;
            double cx, cy;
            if (scale != 1 && dz_centroid(poly, np, &cx, &cy))
                for (size_t q = 0; q < np; q++) {
                    double x = ((double)poly[2 * q] - cx) * scale + cx;
                    double y = ((double)poly[2 * q + 1] - cy) * scale + cy;
                    poly[2 * q] = (int)MAX(MIN(nearbyint(x), 2e9), -2e9);
                    poly[2 * q + 1] = (int)MAX(MIN(nearbyint(y), 2e9), -2e9);
                }
            json_t *z = json_array();
            free(d->poly);
            d->poly = xcalloc(np, sizeof *d->poly);
            d->npoly = np;
            for (size_t q = 0; q < np; q++) {
                json_array_append_new(z, json_pack("[i,i]", poly[2 * q], poly[2 * q + 1]));
                d->poly[q].x = (float)poly[2 * q], d->poly[q].y = (float)poly[2 * q + 1];
            }
            json_array_append_new(zones, z);
            free(poly);
        }
        wf_out_json(c, i, "zones", zones);
        wf_out_dets(c, i, "predictions", ds);
        wf_out_json(c, i, "simplification_converged", json_boolean(converged));
    }
    return 0;
}

static const struct wf_field dz_fields[] = {
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"required_number_of_vertices", NULL, WF_FT_INT, NULL, WF_K_INT, 0, NULL},
    {"scale_ratio", NULL, WF_FT_FLOAT, "1", WF_K_FLOAT, 0, NULL},
    {"apply_least_squares", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"midpoint_fraction", NULL, WF_FT_FLOAT01, "1", WF_K_FLOAT, 0, NULL},
};
static const struct wf_output dz_outs[] = {{"zones", WF_K_LIST},
                                           {"predictions", WF_K_IS},
                                           {"simplification_converged", WF_K_BOOL}};
static const struct wf_block dynamic_zone = {
    (const char *const[]){"roboflow_core/dynamic_zone@v1", "DynamicZone", NULL},
    dz_fields, ARRAY_LEN(dz_fields), dz_outs, ARRAY_LEN(dz_outs), 0, 0, NULL, dz_run, NULL};

const struct wf_block *const wf_blocks_zone[] = {&dynamic_zone, NULL};
