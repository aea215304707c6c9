/*
 * blocks/snap.c — roboflow_core/mask_edge_snap@v1 (roboflow/inference
 * classical_cv/mask_edge_snap/v1.py, read, not copied): instance masks whose
 * contour points move onto nearby image edges.
 *
 * Pipeline (cv__mask_edge_snap), OpenCV 4.6 arithmetic: gray (OpenCV's
 * BGR2GRAY), Sobel 3x3 gx / gy in float32 (BORDER_REFLECT_101), magnitude
 * sqrt(gx^2 + gy^2) in float32; adaptive threshold magnitude > mean +
 * sigma * std over a win x win box (cv2.boxFilter: double sums, float32
 * result, reflect-101; win made odd, >= 3); when dilation_iterations > 0,
 * closing with a 3x3 rectangle (iterations dilations then as many
 * erosions) and one Zhang-Suen thinning iteration; the union over masks of
 * the band dilate(mask) & !erode(mask) with the (2b+1) ellipse; edges
 * outside the band dropped (no masks: none dropped); 8-connected edge
 * components kept when the area of their external contour is >=
 * min_contour_area.  The kept pixels are the "edges" output (one detection,
 * class "edges", box of the pixels, confidence 1).  Then, for each mask:
 * its external contours (CHAIN_APPROX_NONE), for each point the unit
 * normal of the chord between the points 5 before and 5 after, the points
 * at distances 1..tol along +normal then -normal (rounded half to even)
 * scored magnitude * (1 - d / (tol + 1)) among kept edge pixels outside the
 * mask or within tol (Euclidean distance transform) of its outside; the
 * best (first on ties) replaces the point; the refined contours are filled
 * (cv2.fillPoly) into the new mask.
 *
 * vbatch keeps a mask as a polygon: the input polygon is rasterized as
 * sv.polygon_to_mask does (vertices truncated, cv2.fillPoly), and the
 * refined mask goes back to the largest-area external contour
 * (CHAIN_APPROX_SIMPLE) as Roboflow's serializer does; a detection whose
 * refined mask is empty is dropped (Roboflow's serializer drops it too).
 * Departures: Roboflow's serializer prefers a "polygon" data key carried
 * over from the input when present; here the refined polygon is always
 * used.  Parameter ranges are Roboflow's manifest validators, as step
 * errors.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/blocks/viz_int.h"
#include "workflow/wf_int.h"

#define SNAP_MAX_PIXELS (16 * 1000 * 1000)
#define SNAP_MAX_WORK 2e8  /* masks x pixels per image (a byte each in memory) */
#define SNAP_MAX_POLY (1u << 20)
#define SNAP_TANGENT 5

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, fn)                                                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,        \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL}

static inline int refl101(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* cv2.boxFilter(src, CV_32F, (k, k)) normalized, reflect-101: running
 * double sums along rows, then down columns, as OpenCV's RowSum/ColumnSum. */
static void box_mean(const float *src, int w, int h, int k, float *dst, double *tmp, double *col)
{
    int r = k / 2;
    for (int y = 0; y < h; y++) {
        const float *row = src + (size_t)y * w;
        double s = 0;
        for (int j = -r; j <= r; j++)
            s += row[refl101(j, w)];
        double *t = tmp + (size_t)y * w;
        t[0] = s;
        for (int x = 1; x < w; x++) {
            s += (double)row[refl101(x + r, w)] - (double)row[refl101(x - 1 - r, w)];
            t[x] = s;
        }
    }
    double scale = 1.0 / ((double)k * k);
    for (int x = 0; x < w; x++)
        col[x] = 0;
    for (int j = -r; j <= r; j++) {
        const double *t = tmp + (size_t)refl101(j, h) * w;
        for (int x = 0; x < w; x++)
            col[x] += t[x];
    }
    for (int y = 0; y < h; y++) {
        if (y > 0) {
            const double *a = tmp + (size_t)refl101(y + r, h) * w,
                         *b = tmp + (size_t)refl101(y - 1 - r, h) * w;
            for (int x = 0; x < w; x++)
                col[x] += a[x] - b[x];
        }
        for (int x = 0; x < w; x++)
            dst[(size_t)y * w + x] = (float)(col[x] * scale);
    }
}

/* One Zhang-Suen iteration (both sub-iterations) on a 0/1 image, in place;
 * the 1-pixel frame is left as it is. */
static void zhang_suen_once(uint8_t *m, int w, int h)
{
    if (w < 3 || h < 3)
        return;
    uint8_t *del = xcalloc((size_t)w * h, 1);
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 1; y < h - 1; y++)
            for (int x = 1; x < w - 1; x++) {
                const uint8_t *u = m + (size_t)(y - 1) * w + x, *c = u + w, *d = c + w;
                del[(size_t)y * w + x] = 0;
                if (!c[0])
                    continue;
                int p2 = u[0], p3 = u[1], p4 = c[1], p5 = d[1], p6 = d[0], p7 = d[-1], p8 = c[-1],
                    p9 = u[-1];
                int b = p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9;
                int a = (!p2 && p3) + (!p3 && p4) + (!p4 && p5) + (!p5 && p6) + (!p6 && p7) +
                        (!p7 && p8) + (!p8 && p9) + (!p9 && p2);
                if (b < 2 || b > 6 || a != 1)
                    continue;
                if (pass == 0 ? (p2 * p4 * p6 == 0 && p4 * p6 * p8 == 0)
                              : (p2 * p4 * p8 == 0 && p2 * p6 * p8 == 0))
                    del[(size_t)y * w + x] = 1;
            }
        for (int y = 1; y < h - 1; y++)
            for (int x = 1; x < w - 1; x++)
                if (del[(size_t)y * w + x])
                    m[(size_t)y * w + x] = 0;
    }
    free(del);
}

/* band |= dilate(mask) & !erode(mask) with the k x k ellipse (cv2 borders:
 * pixels outside the image ignored).  pre: (w + 1) ints per row; sat:
 * (w + 1) * (h + 1) summed-area table.  The ellipse's rows are checked only
 * where the k x k square around the pixel holds both values. */
static void add_band(const uint8_t *mask, int w, int h, int k, const uint8_t *ker, int *pre,
                     int64_t *sat, uint8_t *band)
{
    int r = k / 2, j1[256], j2[256];
    for (int i = 0; i < k; i++) {
        j1[i] = k, j2[i] = -1;
        for (int j = 0; j < k; j++)
            if (ker[i * k + j]) {
                j1[i] = MIN(j1[i], j);
                j2[i] = j;
            }
    }
    size_t sw = (size_t)w + 1;
    memset(sat, 0, sw * sizeof *sat);
    for (int y = 0; y < h; y++) {
        int *p = pre + (size_t)y * (w + 1);
        p[0] = 0;
        sat[(size_t)(y + 1) * sw] = 0;
        for (int x = 0; x < w; x++) {
            p[x + 1] = p[x] + (mask[(size_t)y * w + x] != 0);
            sat[(size_t)(y + 1) * sw + x + 1] = sat[(size_t)y * sw + x + 1] + p[x + 1];
        }
    }
    for (int y = 0; y < h; y++) {
        int ya = MAX(y - r, 0), yb = MIN(y + r, h - 1);
        for (int x = 0; x < w; x++) {
            int xa = MAX(x - r, 0), xb = MIN(x + r, w - 1);
            int64_t cnt = sat[(size_t)(yb + 1) * sw + xb + 1] - sat[(size_t)ya * sw + xb + 1] -
                          sat[(size_t)(yb + 1) * sw + xa] + sat[(size_t)ya * sw + xa];
            if (cnt == 0 || cnt == (int64_t)(yb - ya + 1) * (xb - xa + 1))
                continue; /* the square is uniform: so is the ellipse inside it */
            bool any = false, all = true;
            for (int i = 0; i < k && (all || !any); i++) {
                int yy = y + i - r;
                if (yy < 0 || yy >= h || j2[i] < 0)
                    continue;
                int a = MAX(x + j1[i] - r, 0), b = MIN(x + j2[i] - r, w - 1);
                if (a > b)
                    continue;
                const int *p = pre + (size_t)yy * (w + 1);
                int c = p[b + 1] - p[a];
                any |= c > 0;
                all &= c == b - a + 1;
            }
            if (any && !all)
                band[(size_t)y * w + x] = 1;
        }
    }
}

/* |cv2.contourArea| of n integer points (shoelace). */
static double poly_area(const int *p, size_t n)
{
    double a = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = (i + 1) % n;
        a += (double)p[2 * i] * p[2 * j + 1] - (double)p[2 * j] * p[2 * i + 1];
    }
    return fabs(a) / 2;
}

/* Keep (0/1 into keep) the 8-connected components of e whose external
 * contour has area >= min_area. */
static int filter_components(const uint8_t *e, int w, int h, double min_area, uint8_t *keep)
{
    size_t np = (size_t)w * h;
    int32_t *lab = xcalloc(np, sizeof *lab);
    size_t *stack = xmalloc(np * sizeof *stack), *comp = xmalloc(np * sizeof *comp);
    int rc = 0;
    int32_t next = 0;
    for (size_t s = 0; s < np && rc == 0; s++) {
        if (!e[s] || lab[s])
            continue;
        lab[s] = ++next;
        size_t top = 0, nc = 0;
        stack[top++] = s;
        int x0 = w, y0 = h, x1 = -1, y1 = -1;
        while (top) {
            size_t q = stack[--top];
            comp[nc++] = q;
            int qx = (int)(q % (size_t)w), qy = (int)(q / (size_t)w);
            x0 = MIN(x0, qx), x1 = MAX(x1, qx), y0 = MIN(y0, qy), y1 = MAX(y1, qy);
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int nx = qx + dx, ny = qy + dy;
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h)
                        continue;
                    size_t t = (size_t)ny * w + nx;
                    if (e[t] && !lab[t]) {
                        lab[t] = next;
                        stack[top++] = t;
                    }
                }
        }
        struct vis_image *crop = vis_image_new(x1 - x0 + 1, y1 - y0 + 1, VIS_GRAY);
        if (!crop) {
            rc = ERR_NOMEM;
            break;
        }
        for (int y = 0; y < crop->h; y++)
            memset(vis_px(crop, 0, y), 0, (size_t)crop->w);
        for (size_t k = 0; k < nc; k++)
            vis_px(crop, (int)(comp[k] % (size_t)w) - x0, (int)(comp[k] / (size_t)w) - y0)[0] = 255;
        struct cv_contours o = {0};
        rc = cv__find_contours(crop, &o);
        vis_image_free(crop);
        double best = -1;
        for (size_t k = 0; rc == 0 && k < o.n; k++)
            best = MAX(best, poly_area(o.pts + 2 * o.start[k], o.start[k + 1] - o.start[k]));
        free(o.pts), free(o.start);
        if (rc == 0 && o.n && best >= min_area)
            for (size_t k = 0; k < nc; k++)
                keep[comp[k]] = 1;
    }
    free(lab), free(stack), free(comp);
    return rc;
}

/* valid[i] = snap[i] && (mask[i] == 0 || EDT(mask)[i] <= tol). */
static void snap_valid(const uint8_t *mask, const uint8_t *snap, int w, int h, int tol,
                       uint8_t *valid, int *g)
{
    /* vertical distance to the nearest 0 of the column (INT_MAX / 4: none) */
    const int INF = INT_MAX / 4;
    for (int x = 0; x < w; x++) {
        int d = INF;
        for (int y = 0; y < h; y++) {
            d = mask[(size_t)y * w + x] ? (d >= INF ? INF : d + 1) : 0;
            g[(size_t)y * w + x] = d;
        }
        d = INF;
        for (int y = h - 1; y >= 0; y--) {
            d = mask[(size_t)y * w + x] ? (d >= INF ? INF : d + 1) : 0;
            g[(size_t)y * w + x] = MIN(g[(size_t)y * w + x], d);
        }
    }
    long long t2 = (long long)tol * tol;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            valid[i] = 0;
            if (!snap[i])
                continue;
            if (!mask[i]) {
                valid[i] = 1;
                continue;
            }
            for (int xx = MAX(x - tol, 0); xx <= MIN(x + tol, w - 1) && !valid[i]; xx++) {
                long long gy = g[(size_t)y * w + xx];
                if (gy < INF && (long long)(xx - x) * (xx - x) + gy * gy <= t2)
                    valid[i] = 1;
            }
        }
}

/* Refine one mask (0/1, w x h) in place. */
static int snap_mask(uint8_t *mask, int w, int h, const float *mag, const uint8_t *snap, int tol,
                     uint8_t *valid, int *g)
{
    snap_valid(mask, snap, w, h, tol, valid, g);
    struct vis_image *mi = vis_image_new(w, h, VIS_GRAY);
    if (!mi)
        return ERR_NOMEM;
    for (int y = 0; y < h; y++)
        memcpy(vis_px(mi, 0, y), mask + (size_t)y * w, (size_t)w);
    struct cv_contours o = {0};
    int rc = cv__find_contours(mi, &o);
    vis_image_free(mi);
    if (rc < 0 || o.n == 0) {
        free(o.pts), free(o.start);
        return rc;
    }
    memset(mask, 0, (size_t)w * h);
    for (size_t k = 0; k < o.n && rc == 0; k++) {
        /* CHAIN_APPROX_SIMPLE -> NONE: the runs between vertices restored */
        const int *s = o.pts + 2 * o.start[k];
        size_t ns = o.start[k + 1] - o.start[k], n = 0, cap = 16;
        int *pt = xmalloc(cap * 2 * sizeof *pt);
        for (size_t q = 0; q < ns; q++) {
            const int *a = s + 2 * q, *b = s + 2 * ((q + 1) % ns);
            int sx = (b[0] > a[0]) - (b[0] < a[0]), sy = (b[1] > a[1]) - (b[1] < a[1]);
            int steps = MAX(abs(b[0] - a[0]), abs(b[1] - a[1]));
            if (ns == 1)
                steps = 1;
            for (int t = 0; t < steps; t++) {
                if (n == cap) {
                    cap *= 2;
                    pt = xrealloc(pt, cap * 2 * sizeof *pt);
                }
                pt[2 * n] = a[0] + t * sx, pt[2 * n + 1] = a[1] + t * sy;
                n++;
            }
        }
        int *ref = xmalloc(n * 2 * sizeof *ref);
        memcpy(ref, pt, n * 2 * sizeof *ref);
        for (size_t i = 0; i < n; i++) {
            const int *pv = pt + 2 * ((i + n - SNAP_TANGENT % n) % n),
                      *nx = pt + 2 * ((i + SNAP_TANGENT) % n);
            float tx = (float)(nx[0] - pv[0]), ty = (float)(nx[1] - pv[1]);
            float len = sqrtf(tx * tx + ty * ty);
            if (len < 1e-6f)
                continue;
            tx /= len, ty /= len;
            double ux = -(double)ty, uy = (double)tx;
            double best = 0;
            int bx = -1, by = -1;
            for (int sg = 1; sg >= -1; sg -= 2)
                for (int d = 1; d <= tol; d++) {
                    double fx = wf__round_half_even((double)pt[2 * i] + sg * ux * d);
                    double fy = wf__round_half_even((double)pt[2 * i + 1] + sg * uy * d);
                    if (fx < 0 || fy < 0 || fx >= w || fy >= h)
                        continue;
                    size_t j = (size_t)fy * w + (size_t)fx;
                    if (!valid[j])
                        continue;
                    double score = (double)mag[j] * (1.0 - (double)d / (tol + 1));
                    if (score > best)
                        best = score, bx = (int)fx, by = (int)fy;
                }
            if (bx >= 0)
                ref[2 * i] = bx, ref[2 * i + 1] = by;
        }
        /* filled within the points' box (they lie inside the image, so
         * the integer shift changes nothing) */
        int x0 = w, y0 = h, x1 = 0, y1 = 0;
        for (size_t i = 0; i < n; i++) {
            x0 = MIN(x0, ref[2 * i]), x1 = MAX(x1, ref[2 * i]);
            y0 = MIN(y0, ref[2 * i + 1]), y1 = MAX(y1, ref[2 * i + 1]);
        }
        for (size_t i = 0; i < n; i++)
            ref[2 * i] -= x0, ref[2 * i + 1] -= y0;
        struct vis_image *f = NULL;
        rc = cv__fill_poly(ref, n, x1 - x0 + 1, y1 - y0 + 1, &f);
        if (rc == 0) {
            for (int y = 0; y < f->h; y++) {
                const uint8_t *r = vis_px(f, 0, y);
                for (int x = 0; x < f->w; x++)
                    mask[(size_t)(y + y0) * w + x + x0] |= r[x] != 0;
            }
            vis_image_free(f);
        }
        free(pt), free(ref);
    }
    free(o.pts), free(o.start);
    return rc;
}

/* Declared in cv_int.h. */
int cv__mask_edge_snap(const struct vis_image *gray, uint8_t *masks, size_t nm,
                       const struct cv_snap_params *p, uint8_t *edges)
{
    int w = gray->w, h = gray->h, rc = 0;
    size_t np = (size_t)w * h;
    if (p->band < 1 || p->band > 127 || p->tol < 1)
        return ERR_INVALID;
    float *mag = xmalloc(np * sizeof *mag), *sq = xmalloc(np * sizeof *sq);
    float *mean = xmalloc(np * sizeof *mean), *sqm = xmalloc(np * sizeof *sqm);
    double *tmp = xmalloc(np * sizeof *tmp);
    for (int y = 0; y < h; y++) {
        const uint8_t *r0 = vis_px(gray, 0, refl101(y - 1, h)), *r1 = vis_px(gray, 0, y),
                      *r2 = vis_px(gray, 0, refl101(y + 1, h));
        for (int x = 0; x < w; x++) {
            int xl = refl101(x - 1, w), xr = refl101(x + 1, w);
            float gx = (float)((r0[xr] - r0[xl]) + 2 * (r1[xr] - r1[xl]) + (r2[xr] - r2[xl]));
            float gy = (float)((r2[xl] + 2 * r2[x] + r2[xr]) - (r0[xl] + 2 * r0[x] + r0[xr]));
            float m = sqrtf(gx * gx + gy * gy);
            mag[(size_t)y * w + x] = m;
            sq[(size_t)y * w + x] = m * m;
        }
    }
    int win = MAX(3, p->win);
    if (win % 2 == 0)
        win++;
    double *col = xmalloc((size_t)w * sizeof *col);
    box_mean(mag, w, h, win, mean, tmp, col);
    box_mean(sq, w, h, win, sqm, tmp, col);
    free(tmp), free(col);
    float sig = (float)p->sigma;
    struct vis_image *e = vis_image_new(w, h, VIS_GRAY);
    if (!e) {
        free(mag), free(sq), free(mean), free(sqm);
        return ERR_NOMEM;
    }
    for (int y = 0; y < h; y++) {
        uint8_t *r = vis_px(e, 0, y);
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            float var = sqm[i] - mean[i] * mean[i];
            var = var > 0 ? var : 0;
            float sd = sqrtf(var);
            float t = sig * sd;
            float thr = mean[i] + t;
            r[x] = mag[i] > thr ? 255 : 0;
        }
    }
    free(sq), free(mean), free(sqm);
    uint8_t *eb = xcalloc(np, 1), *band = xcalloc(np, 1);
    if (p->iters > 0) {
        for (int k = 0; k < p->iters && rc == 0; k++)
            rc = vis_morph(e, VIS_MORPH_DILATE, 3, 3);
        for (int k = 0; k < p->iters && rc == 0; k++)
            rc = vis_morph(e, VIS_MORPH_ERODE, 3, 3);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            eb[(size_t)y * w + x] = vis_px(e, x, y)[0] != 0;
    vis_image_free(e);
    if (p->iters > 0)
        zhang_suen_once(eb, w, h);
    if (nm > 0 && rc == 0) {
        int k = 2 * p->band + 1;
        uint8_t *ker = xmalloc((size_t)k * k);
        int *pre = xmalloc((size_t)h * (w + 1) * sizeof *pre);
        int64_t *sat = xmalloc(((size_t)h + 1) * ((size_t)w + 1) * sizeof *sat);
        rc = cv__ellipse_kernel(k, ker);
        for (size_t m = 0; m < nm && rc == 0; m++)
            add_band(masks + m * np, w, h, k, ker, pre, sat, band);
        free(ker), free(pre), free(sat);
        for (size_t i = 0; i < np; i++)
            eb[i] &= band[i];
    }
    memset(edges, 0, np);
    if (rc == 0)
        rc = filter_components(eb, w, h, MAX(0.0, p->min_area), edges);
    free(eb), free(band);
    uint8_t *valid = xmalloc(np);
    int *g = xmalloc(np * sizeof *g);
    for (size_t m = 0; m < nm && rc == 0; m++)
        rc = snap_mask(masks + m * np, w, h, mag, edges, p->tol, valid, g);
    free(valid), free(g), free(mag);
    return rc;
}

/* ---- the block ---------------------------------------------------------------------------- */

/* cv_int.h (also detections_list_rollup) */
int cv__mask_polygon(const uint8_t *mask, int w, int h, struct wf_det *d, bool *found)
{
    *found = false;
    struct vis_image *mi = vis_image_new(w, h, VIS_GRAY);
    if (!mi)
        return ERR_NOMEM;
    for (int y = 0; y < h; y++) {
        uint8_t *r = vis_px(mi, 0, y);
        for (int x = 0; x < w; x++)
            r[x] = mask[(size_t)y * w + x] ? 255 : 0;
    }
    struct cv_contours o = {0};
    int rc = cv__find_contours(mi, &o);
    vis_image_free(mi);
    size_t bestk = 0;
    double besta = -1;
    /* OpenCV lists contours last found first; the first largest wins */
    for (size_t k = o.n; rc == 0 && k-- > 0;) {
        size_t n = o.start[k + 1] - o.start[k];
        if (n < 3)
            continue;
        double a = poly_area(o.pts + 2 * o.start[k], n);
        if (a > besta)
            besta = a, bestk = k;
    }
    if (rc == 0 && besta >= 0) {
        size_t n = o.start[bestk + 1] - o.start[bestk];
        if (n > SNAP_MAX_POLY)
            rc = ERR_LIMIT;
        else {
            free(d->poly);
            d->poly = xcalloc(n, sizeof *d->poly);
            for (size_t q = 0; q < n; q++)
                d->poly[q].x = (float)o.pts[2 * (o.start[bestk] + q)],
                d->poly[q].y = (float)o.pts[2 * (o.start[bestk] + q) + 1];
            d->npoly = n;
            d->has_mask = true;
            *found = true;
        }
    }
    free(o.pts), free(o.start);
    return rc;
}

static int snap_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const struct wf_dets *ds = wf_arg_dets(c, i, "segmentation");
        struct cv_snap_params p;
        int64_t tol = wf_arg_int(c, i, "pixel_tolerance", 15);
        int64_t iters = wf_arg_int(c, i, "dilation_iterations", 2);
        int64_t band = wf_arg_int(c, i, "boundary_band_width", 15);
        int64_t win = wf_arg_int(c, i, "adaptive_window_size", 41);
        p.sigma = wf_arg_double(c, i, "sigma", 1.0);
        p.min_area = wf_arg_double(c, i, "min_contour_area", 50.0);
        if (tol < 1 || tol > 100)
            return wf_call_fail(c, "pixel_tolerance must be between 1 and 100, got: %lld", (long long)tol);
        if (!(p.sigma >= 0.01 && p.sigma <= 10.0))
            return wf_call_fail(c, "sigma must be between 0.01 and 10.0, got: %g", p.sigma);
        if (!(p.min_area >= 0.0 && p.min_area <= 10000.0))
            return wf_call_fail(c, "min_contour_area must be between 0.0 and 10000.0, got: %g",
                                p.min_area);
        if (iters < 0 || iters > 20)
            return wf_call_fail(c, "dilation_iterations must be between 0 and 20, got: %lld",
                                (long long)iters);
        if (band < 1 || band > 100)
            return wf_call_fail(c, "boundary_band_width must be between 1 and 100, got: %lld",
                                (long long)band);
        if (win < 3 || win > 201)
            return wf_call_fail(c, "adaptive_window_size must be between 3 and 201, got: %lld",
                                (long long)win);
        p.tol = (int)tol, p.iters = (int)iters, p.band = (int)band, p.win = (int)win;
        int w = im->img->w, h = im->img->h;
        size_t np = (size_t)w * h;
        if (np > SNAP_MAX_PIXELS)
            return wf_call_fail(c, "image %d x %d exceeds %d pixels", w, h, SNAP_MAX_PIXELS);
        /* masked detections: Roboflow's path needs sv masks on all of them */
        size_t nm = 0;
        for (size_t k = 0; ds && k < ds->n; k++)
            nm += ds->d[k].has_mask;
        if (nm && nm != ds->n)
            return wf_call_fail(c, "segmentation: %zu of %zu detections have no mask",
                                ds->n - nm, ds->n);
        if ((double)nm * (double)np > SNAP_MAX_WORK)
            return wf_call_fail(c, "%zu masks on a %d x %d image exceed the work limit", nm, w, h);
        uint8_t *masks = nm ? xcalloc(nm * np, 1) : NULL;
        int rc = 0;
        for (size_t k = 0; k < nm && rc == 0; k++) {
            const struct wf_det *d = &ds->d[k];
            if (d->npoly > SNAP_MAX_POLY) {
                rc = ERR_LIMIT;
                break;
            }
            if (d->npoly == 0)
                continue;
            int *pp = xcalloc(2 * d->npoly, sizeof *pp);
            long long lim = 4LL * (w + h);
            for (size_t q = 0; q < d->npoly; q++) { /* polygon.astype(np.int32) */
                pp[2 * q] = viz__trunc(d->poly[q].x), pp[2 * q + 1] = viz__trunc(d->poly[q].y);
                if (llabs(pp[2 * q]) > lim || llabs(pp[2 * q + 1]) > lim)
                    rc = ERR_INVALID;
            }
            struct vis_image *f = NULL;
            if (rc == 0)
                rc = cv__fill_poly(pp, d->npoly, w, h, &f);
            free(pp);
            for (int y = 0; rc == 0 && y < h; y++) {
                const uint8_t *r = vis_px(f, 0, y);
                for (int x = 0; x < w; x++)
                    masks[k * np + (size_t)y * w + x] = r[x] != 0;
            }
            vis_image_free(f);
        }
        struct vis_image *gray = rc == 0 ? cv__gray(im->img) : NULL;
        uint8_t *edges = xcalloc(np, 1);
        if (rc == 0)
            rc = gray ? cv__mask_edge_snap(gray, masks, nm, &p, edges) : ERR_NOMEM;
        vis_image_free(gray);
        struct wf_dets *out = NULL, *eo = wf_dets_new();
        if (rc == 0 && ds) {
            out = wf_dets_clone(ds);
            bool *keep = xcalloc(out->n + 1, sizeof *keep);
            for (size_t k = 0; k < out->n && rc == 0; k++) {
                keep[k] = true;
                if (nm)
                    rc = cv__mask_polygon(masks + k * np, w, h, &out->d[k], &keep[k]);
            }
            if (rc == 0)
                wf_dets_keep(out, keep);
            free(keep);
        }
        int x0 = w, y0 = h, x1 = -1, y1 = -1;
        for (int y = 0; rc == 0 && y < h; y++)
            for (int x = 0; x < w; x++)
                if (edges[(size_t)y * w + x])
                    x0 = MIN(x0, x), x1 = MAX(x1, x), y0 = MIN(y0, y), y1 = MAX(y1, y);
        if (rc == 0 && x1 >= 0) {
            struct wf_det *d = wf_dets_push_new(eo);
            d->x1 = (float)x0, d->y1 = (float)y0, d->x2 = (float)(x1 + 1), d->y2 = (float)(y1 + 1);
            d->confidence = 1.0f;
            d->class_id = 0;
            wf_det_set_str(&d->class_name, "edges");
            wf_det_set_str(&d->prediction_type, "instance-segmentation");
            wf_det_attach_image(d, im);
            bool found[1];
            rc = cv__mask_polygon(edges, w, h, d, &found[0]);
            if (rc == 0)
                wf_dets_keep(eo, found);
        }
        free(masks), free(edges);
        if (rc < 0) {
            wf_dets_free(out), wf_dets_free(eo);
            return wf_call_fail(c, rc == ERR_LIMIT     ? "segmentation: mask polygon too large"
                                   : rc == ERR_INVALID ? "segmentation: mask coordinates out of range"
                                                       : "out of memory");
        }
        if (out)
            wf_out_dets(c, i, "refined_segmentation", out);
        else
            wf_out_set(c, i, "refined_segmentation", wf_value_ref((struct wf_value *)wf_arg(c, i, "segmentation")));
        wf_out_dets(c, i, "edges", eo);
    }
    return 0;
}

static const struct wf_field snap_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"segmentation", NULL, WF_FT_DETS, NULL, WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"pixel_tolerance", NULL, WF_FT_INT, "15", WF_K_INT, 0, NULL},
    {"sigma", NULL, WF_FT_FLOAT, "1.0", WF_K_FLOAT, 0, NULL},
    {"min_contour_area", NULL, WF_FT_FLOAT, "50.0", WF_K_FLOAT, 0, NULL},
    {"dilation_iterations", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
    {"boundary_band_width", NULL, WF_FT_INT, "15", WF_K_INT, 0, NULL},
    {"adaptive_window_size", NULL, WF_FT_INT, "41", WF_K_INT, 0, NULL},
};
static const struct wf_output snap_outs[] = {{"refined_segmentation", WF_K_IS},
                                             {"edges", WF_K_IS}};
TYPES(snap, "roboflow_core/mask_edge_snap@v1");
BLOCK(snap, snap_fields, snap_outs, snap_run);

const struct wf_block *const wf_blocks_snap[] = {&snap, NULL};
