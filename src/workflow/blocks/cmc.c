/*
 * blocks/cmc.c — BoT-SORT's camera-motion compensation, `sparseOptFlow`
 * method of the `trackers` package (CMC._estimate_sparse_optflow, read, not
 * copied) in OpenCV 4.6 arithmetic: the gray frame (cv2.cvtColor) resized
 * to 1/downscale (cv2.resize, bilinear), cv2.goodFeaturesToTrack(maxCorners
 * 1000, qualityLevel 0.01, minDistance 1, blockSize 3), the previous
 * frame's corners followed by cv2.calcOpticalFlowPyrLK (21 x 21 window, 3
 * pyramid levels, 30 iterations / 0.01 px, min eigenvalue 1e-4) and
 * cv2.estimateAffinePartial2D(RANSAC, 3 px) on the tracked pairs, its
 * translation scaled back by downscale (cv_int.h).
 *
 * Written after OpenCV's featureselect.cpp (cornerMinEigenVal, the sort
 * with ties to the later pixel), lkpyramid.cpp (Scharr derivatives, 14-bit
 * bilinear weights, the iteration and its stops) and ptsetreg.cpp (RANSAC
 * over 2-point similarities, then the least-squares refit on the
 * inliers).  Departures: RANSAC's samples come from this file's own
 * generator, not OpenCV's RNG, and the refit is the closed-form
 * least-squares similarity (OpenCV runs 10 Levenberg-Marquardt steps
 * towards the same minimum); float sums may differ in the last bits.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"

#define WIN 21
#define HALF 10
#define LEVELS 3
#define MAX_CORNERS 1000

static inline int reflect101(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* ---- goodFeaturesToTrack ------------------------------------------------------------------------ */

struct cand {
    float v;
    int idx;
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->idx > y->idx ? -1 : x->idx < y->idx; /* equal values: the later pixel first */
}

int cv__good_features(const uint8_t *g, int w, int h, float *pts, int max_pts)
{
    size_t np = (size_t)w * h;
    float *dx = xmalloc(np * sizeof *dx), *dy = xmalloc(np * sizeof *dy), *eig = xmalloc(np * sizeof *eig);
    float *cov = xmalloc(3 * np * sizeof *cov), *tmp = xmalloc(3 * np * sizeof *tmp);
    const float scale = (float)(1.0 / (4.0 * 3.0 * 255.0));
    int *xl = xmalloc((size_t)w * sizeof *xl), *xr = xmalloc((size_t)w * sizeof *xr);
    for (int x = 0; x < w; x++)
        xl[x] = reflect101(x - 1, w), xr[x] = reflect101(x + 1, w);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int ym = reflect101(y - 1, h), yp = reflect101(y + 1, h), xm = xl[x], xp = xr[x];
#define P(yy, xx) ((float)g[(size_t)(yy) * w + (xx)])
            float sx = (P(ym, xp) - P(ym, xm)) + 2 * (P(y, xp) - P(y, xm)) + (P(yp, xp) - P(yp, xm));
            float sy = (P(yp, xm) - P(ym, xm)) + 2 * (P(yp, x) - P(ym, x)) + (P(yp, xp) - P(ym, xp));
#undef P
            size_t i = (size_t)y * w + x;
            dx[i] = sx * scale, dy[i] = sy * scale;
            cov[3 * i] = dx[i] * dx[i], cov[3 * i + 1] = dx[i] * dy[i], cov[3 * i + 2] = dy[i] * dy[i];
        }
    /* 3 x 3 box sum (not normalised), reflect101 border: rows then columns */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                float s = 0;
                s += cov[3 * ((size_t)y * w + xl[x]) + k];
                s += cov[3 * ((size_t)y * w + x) + k];
                s += cov[3 * ((size_t)y * w + xr[x]) + k];
                tmp[3 * ((size_t)y * w + x) + k] = s;
            }
    float maxv = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float c3[3];
            int yu = reflect101(y - 1, h), yd = reflect101(y + 1, h);
            for (int k = 0; k < 3; k++) {
                float s = 0;
                s += tmp[3 * ((size_t)yu * w + x) + k];
                s += tmp[3 * ((size_t)y * w + x) + k];
                s += tmp[3 * ((size_t)yd * w + x) + k];
                c3[k] = s;
            }
            float a = c3[0] * 0.5f, b = c3[1], c = c3[2] * 0.5f;
            float v = (float)((a + c) - sqrtf((a - c) * (a - c) + b * b));
            eig[(size_t)y * w + x] = v;
            if (v > maxv)
                maxv = v;
        }
    float thr = (float)(maxv * 0.01);
    for (size_t i = 0; i < np; i++)
        if (!(eig[i] > thr))
            eig[i] = 0;
    struct cand *cs = xmalloc((np + 1) * sizeof *cs);
    size_t nc = 0;
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            float v = eig[(size_t)y * w + x];
            if (v == 0)
                continue;
            bool peak = true;
            for (int yy = y - 1; yy <= y + 1 && peak; yy++)
                for (int xx = x - 1; xx <= x + 1; xx++)
                    if (eig[(size_t)yy * w + xx] > v) {
                        peak = false;
                        break;
                    }
            if (peak)
                cs[nc++] = (struct cand){v, y * w + x};
        }
    qsort(cs, nc, sizeof *cs, cand_cmp);
    int n = (int)MIN(nc, (size_t)max_pts); /* minDistance 1: only the same pixel would be too close */
    for (int k = 0; k < n; k++)
        pts[2 * k] = (float)(cs[k].idx % w), pts[2 * k + 1] = (float)(cs[k].idx / w);
    free(dx), free(dy), free(eig), free(cov), free(tmp), free(cs), free(xl), free(xr);
    return n;
}

/* ---- pyramids and Lucas-Kanade ----------------------------------------------------------------- */

struct level {
    int w, h;
    uint8_t *img;
    int16_t *d; /* Scharr dx, dy pairs */
};

/* cv2.pyrDown: 5x5 [1 4 6 4 1]^2 / 256, reflect101, ((w + 1) / 2, (h + 1) / 2) */
static uint8_t *pyr_down(const uint8_t *s, int w, int h, int *ow, int *oh)
{
    int W2 = (w + 1) / 2, H2 = (h + 1) / 2;
    static const int K[5] = {1, 4, 6, 4, 1};
    int *row = xmalloc((size_t)W2 * h * sizeof *row);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < W2; x++) {
            int acc = 0;
            for (int k = -2; k <= 2; k++)
                acc += K[k + 2] * s[(size_t)y * w + reflect101(2 * x + k, w)];
            row[(size_t)y * W2 + x] = acc;
        }
    uint8_t *o = xmalloc((size_t)W2 * H2);
    for (int y = 0; y < H2; y++)
        for (int x = 0; x < W2; x++) {
            int acc = 0;
            for (int k = -2; k <= 2; k++)
                acc += K[k + 2] * row[(size_t)reflect101(2 * y + k, h) * W2 + x];
            o[(size_t)y * W2 + x] = (uint8_t)((acc + 128) >> 8);
        }
    free(row);
    *ow = W2, *oh = H2;
    return o;
}

/* calcSharrDeriv */
static int16_t *sharr(const uint8_t *s, int w, int h)
{
    int16_t *d = xmalloc((size_t)w * h * 2 * sizeof *d);
    int *t0 = xmalloc((size_t)w * sizeof *t0), *t1 = xmalloc((size_t)w * sizeof *t1);
    for (int y = 0; y < h; y++) {
        const uint8_t *r0 = s + (size_t)reflect101(y - 1, h) * w, *r1 = s + (size_t)y * w,
                      *r2 = s + (size_t)reflect101(y + 1, h) * w;
        for (int x = 0; x < w; x++)
            t0[x] = (r0[x] + r2[x]) * 3 + r1[x] * 10, t1[x] = r2[x] - r0[x];
        for (int x = 0; x < w; x++) {
            int xm = reflect101(x - 1, w), xp = reflect101(x + 1, w);
            d[2 * ((size_t)y * w + x)] = (int16_t)(t0[xp] - t0[xm]);
            d[2 * ((size_t)y * w + x) + 1] = (int16_t)((t1[xp] + t1[xm]) * 3 + t1[x] * 10);
        }
    }
    free(t0), free(t1);
    return d;
}

static int build_pyr(const uint8_t *g, int w, int h, struct level *lv, bool deriv)
{
    int n = 0;
    lv[0].w = w, lv[0].h = h, lv[0].img = xmalloc((size_t)w * h);
    memcpy(lv[0].img, g, (size_t)w * h);
    for (;;) {
        if (deriv)
            lv[n].d = sharr(lv[n].img, lv[n].w, lv[n].h);
        int nw = (lv[n].w + 1) / 2, nh = (lv[n].h + 1) / 2;
        if (n == LEVELS || nw <= WIN || nh <= WIN)
            break;
        lv[n + 1].img = pyr_down(lv[n].img, lv[n].w, lv[n].h, &lv[n + 1].w, &lv[n + 1].h);
        lv[n + 1].d = NULL;
        n++;
    }
    return n; /* the top level */
}

static void free_pyr(struct level *lv, int top)
{
    for (int l = 0; l <= top; l++)
        free(lv[l].img), free(lv[l].d);
}

/* image pixel with OpenCV's reflect101 border; derivative 0 outside */
static inline int pix(const struct level *L, int x, int y)
{
    return L->img[(size_t)reflect101(y, L->h) * L->w + reflect101(x, L->w)];
}

static inline int der(const struct level *L, int x, int y, int c)
{
    if (x < 0 || y < 0 || x >= L->w || y >= L->h)
        return 0;
    return L->d[2 * ((size_t)y * L->w + x) + c];
}

#define DESCALE(x, n) (((x) + (1 << ((n)-1))) >> (n))

static void weights(float a, float b, int *w00, int *w01, int *w10, int *w11)
{
    *w00 = (int)lrintf((1.f - a) * (1.f - b) * (1 << 14));
    *w01 = (int)lrintf(a * (1.f - b) * (1 << 14));
    *w10 = (int)lrintf((1.f - a) * b * (1 << 14));
    *w11 = (1 << 14) - *w00 - *w01 - *w10;
}

/* LKTrackerInvoker for one point at one level; false: lost (status 0 at level 0) */
static bool lk_point(const struct level *I, const struct level *J, float px, float py, float *nx, float *ny,
                     bool level0, int16_t *ib, int16_t *db)
{
    const float FLT_SCALE = 1.f / (1 << 20);
    float ppx = px - HALF, ppy = py - HALF;
    int ix = (int)floorf(ppx), iy = (int)floorf(ppy);
    if (ix < -WIN || ix >= I->w || iy < -WIN || iy >= I->h)
        return !level0;
    int w00, w01, w10, w11;
    weights(ppx - ix, ppy - iy, &w00, &w01, &w10, &w11);
    int64_t iA11 = 0, iA12 = 0, iA22 = 0;
    if (ix >= 0 && iy >= 0 && ix + WIN < I->w && iy + WIN < I->h) { /* inside: no border */
        for (int y = 0; y < WIN; y++) {
            const uint8_t *s0 = I->img + (size_t)(iy + y) * I->w + ix, *s1 = s0 + I->w;
            const int16_t *d0 = I->d + 2 * ((size_t)(iy + y) * I->w + ix), *d1 = d0 + 2 * (size_t)I->w;
            for (int x = 0; x < WIN; x++) {
                int ival = DESCALE(s0[x] * w00 + s0[x + 1] * w01 + s1[x] * w10 + s1[x + 1] * w11, 14 - 5);
                int ixv = DESCALE(d0[2 * x] * w00 + d0[2 * x + 2] * w01 + d1[2 * x] * w10 + d1[2 * x + 2] * w11, 14);
                int iyv = DESCALE(d0[2 * x + 1] * w00 + d0[2 * x + 3] * w01 + d1[2 * x + 1] * w10 +
                                      d1[2 * x + 3] * w11, 14);
                ib[y * WIN + x] = (int16_t)ival;
                db[2 * (y * WIN + x)] = (int16_t)ixv, db[2 * (y * WIN + x) + 1] = (int16_t)iyv;
                iA11 += ixv * ixv, iA12 += ixv * iyv, iA22 += iyv * iyv;
            }
        }
    } else
    for (int y = 0; y < WIN; y++)
        for (int x = 0; x < WIN; x++) {
            int X = ix + x, Y = iy + y;
            int ival = DESCALE(pix(I, X, Y) * w00 + pix(I, X + 1, Y) * w01 + pix(I, X, Y + 1) * w10 +
                                   pix(I, X + 1, Y + 1) * w11, 14 - 5);
            int ixv = DESCALE(der(I, X, Y, 0) * w00 + der(I, X + 1, Y, 0) * w01 + der(I, X, Y + 1, 0) * w10 +
                                  der(I, X + 1, Y + 1, 0) * w11, 14);
            int iyv = DESCALE(der(I, X, Y, 1) * w00 + der(I, X + 1, Y, 1) * w01 + der(I, X, Y + 1, 1) * w10 +
                                  der(I, X + 1, Y + 1, 1) * w11, 14);
            ib[y * WIN + x] = (int16_t)ival;
            db[2 * (y * WIN + x)] = (int16_t)ixv, db[2 * (y * WIN + x) + 1] = (int16_t)iyv;
            iA11 += ixv * ixv, iA12 += ixv * iyv, iA22 += iyv * iyv;
        }
    float A11 = (float)iA11 * FLT_SCALE, A12 = (float)iA12 * FLT_SCALE, A22 = (float)iA22 * FLT_SCALE;
    float D = A11 * A22 - A12 * A12;
    float minEig = (A22 + A11 - sqrtf((A11 - A22) * (A11 - A22) + 4.f * A12 * A12)) / (2 * WIN * WIN);
    if (minEig < 1e-4f || D < FLT_EPSILON)
        return !level0;
    D = 1.f / D;
    float qx = *nx - HALF, qy = *ny - HALF, pdx = 0, pdy = 0;
    for (int j = 0; j < 30; j++) {
        int jx = (int)floorf(qx), jy = (int)floorf(qy);
        if (jx < -WIN || jx >= J->w || jy < -WIN || jy >= J->h)
            return !level0;
        weights(qx - jx, qy - jy, &w00, &w01, &w10, &w11);
        int64_t ib1 = 0, ib2 = 0;
        if (jx >= 0 && jy >= 0 && jx + WIN < J->w && jy + WIN < J->h) { /* inside: no border */
            for (int y = 0; y < WIN; y++) {
                const uint8_t *s0 = J->img + (size_t)(jy + y) * J->w + jx, *s1 = s0 + J->w;
                const int16_t *ir = ib + y * WIN, *dr = db + 2 * y * WIN;
                for (int x = 0; x < WIN; x++) {
                    int diff = DESCALE(s0[x] * w00 + s0[x + 1] * w01 + s1[x] * w10 + s1[x + 1] * w11, 14 - 5) - ir[x];
                    ib1 += diff * dr[2 * x], ib2 += diff * dr[2 * x + 1];
                }
            }
        } else
        for (int y = 0; y < WIN; y++)
            for (int x = 0; x < WIN; x++) {
                int X = jx + x, Y = jy + y;
                int diff = DESCALE(pix(J, X, Y) * w00 + pix(J, X + 1, Y) * w01 + pix(J, X, Y + 1) * w10 +
                                       pix(J, X + 1, Y + 1) * w11, 14 - 5) - ib[y * WIN + x];
                ib1 += diff * db[2 * (y * WIN + x)], ib2 += diff * db[2 * (y * WIN + x) + 1];
            }
        float b1 = (float)ib1 * FLT_SCALE, b2 = (float)ib2 * FLT_SCALE;
        float ddx = (float)((A12 * b2 - A22 * b1) * D), ddy = (float)((A12 * b1 - A11 * b2) * D);
        qx += ddx, qy += ddy;
        *nx = qx + HALF, *ny = qy + HALF;
        if ((double)ddx * ddx + (double)ddy * ddy <= 1e-4)
            break;
        if (j > 0 && fabsf(ddx + pdx) < 0.01f && fabsf(ddy + pdy) < 0.01f) {
            *nx -= ddx * 0.5f, *ny -= ddy * 0.5f;
            break;
        }
        pdx = ddx, pdy = ddy;
    }
    return true;
}

int cv__lk_track(const uint8_t *prev, const uint8_t *next, int w, int h, const float *pts, int n, float *out,
                 uint8_t *status)
{
    struct level I[LEVELS + 1] = {0}, J[LEVELS + 1] = {0};
    int top = build_pyr(prev, w, h, I, true), topj = build_pyr(next, w, h, J, false);
    int16_t *ib = xmalloc(WIN * WIN * sizeof *ib), *db = xmalloc(2 * WIN * WIN * sizeof *db);
    for (int k = 0; k < n; k++)
        status[k] = 1;
    for (int l = MIN(top, topj); l >= 0; l--) {
        float s = 1.f / (float)(1 << l);
        for (int k = 0; k < n; k++) {
            float px = pts[2 * k] * s, py = pts[2 * k + 1] * s;
            float nx, ny;
            if (l == MIN(top, topj))
                nx = px, ny = py;
            else
                nx = out[2 * k] * 2.f, ny = out[2 * k + 1] * 2.f;
            out[2 * k] = nx, out[2 * k + 1] = ny;
            if (!status[k] && l > 0)
                continue;
            if (!lk_point(&I[l], &J[l], px, py, &out[2 * k], &out[2 * k + 1], l == 0, ib, db))
                status[k] = 0;
        }
    }
    free(ib), free(db);
    free_pyr(I, top), free_pyr(J, topj);
    return 0;
}

/* ---- estimateAffinePartial2D (RANSAC) ------------------------------------------------------------ */

/* least-squares similarity q = [a -b; b a] p + t over the points in idx */
static bool fit_similarity(const float *p, const float *q, const int *idx, int n, double H[6])
{
    double mpx = 0, mpy = 0, mqx = 0, mqy = 0;
    for (int k = 0; k < n; k++)
        mpx += p[2 * idx[k]], mpy += p[2 * idx[k] + 1], mqx += q[2 * idx[k]], mqy += q[2 * idx[k] + 1];
    mpx /= n, mpy /= n, mqx /= n, mqy /= n;
    double sxx = 0, sab = 0, sba = 0;
    for (int k = 0; k < n; k++) {
        double x = p[2 * idx[k]] - mpx, y = p[2 * idx[k] + 1] - mpy;
        double u = q[2 * idx[k]] - mqx, v = q[2 * idx[k] + 1] - mqy;
        sxx += x * x + y * y, sab += x * u + y * v, sba += x * v - y * u;
    }
    if (!(sxx > 0))
        return false;
    double a = sab / sxx, b = sba / sxx;
    H[0] = a, H[1] = -b, H[2] = mqx - a * mpx + b * mpy;
    H[3] = b, H[4] = a, H[5] = mqy - b * mpx - a * mpy;
    return isfinite(a) && isfinite(b);
}

static int inliers(const float *p, const float *q, int n, const double H[6], double thr2, int *idx)
{
    int m = 0;
    for (int k = 0; k < n; k++) {
        double x = p[2 * k], y = p[2 * k + 1];
        double ex = H[0] * x + H[1] * y + H[2] - q[2 * k], ey = H[3] * x + H[4] * y + H[5] - q[2 * k + 1];
        if (ex * ex + ey * ey <= thr2)
            idx[m++] = k;
    }
    return m;
}

bool cv__affine_partial_ransac(const float *p, const float *q, int n, double H[6])
{
    if (n < 2)
        return false;
    const double thr2 = 9.0, conf = 0.99;
    int *idx = xmalloc((size_t)n * sizeof *idx), *best = xmalloc((size_t)n * sizeof *best), nbest = 0;
    double Hb[6] = {0};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int max_iters = 2000;
    for (int it = 0; it < max_iters; it++) {
        int s[2];
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        s[0] = (int)((rng >> 33) % (uint64_t)n);
        do {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            s[1] = (int)((rng >> 33) % (uint64_t)n);
        } while (s[1] == s[0] && n > 1);
        double Hm[6];
        if (!fit_similarity(p, q, s, 2, Hm))
            continue;
        int m = inliers(p, q, n, Hm, thr2, idx);
        if (m > nbest) {
            nbest = m;
            memcpy(Hb, Hm, sizeof Hb);
            memcpy(best, idx, (size_t)m * sizeof *best);
            /* RANSACUpdateNumIters */
            double ep = 1.0 - (double)m / n;
            double num = log(1.0 - conf), den = log(1.0 - pow(1.0 - ep, 2));
            if (den < 0 && num / den < max_iters)
                max_iters = (int)MAX(it + 1, lrint(num / den));
            if (m == n)
                break;
        }
    }
    bool ok = nbest >= 2 && fit_similarity(p, q, best, nbest, H);
    if (!ok && nbest >= 2)
        memcpy(H, Hb, sizeof Hb), ok = true;
    free(idx), free(best);
    return ok;
}

/* ---- the package's estimate() ------------------------------------------------------------------ */

void cv__cmc_free(struct cv_cmc *s)
{
    free(s->prev), free(s->pts);
    memset(s, 0, sizeof *s);
}

int cv__cmc_sparse(struct cv_cmc *s, const struct vis_image *bgr, int downscale, double H[6])
{
    H[0] = 1, H[1] = 0, H[2] = 0, H[3] = 0, H[4] = 1, H[5] = 0;
    struct vis_image *g = cv__gray(bgr), *small = NULL;
    if (!g)
        return ERR_NOMEM;
    int w = bgr->w / downscale, h = bgr->h / downscale;
    if (w < 1 || h < 1) {
        vis_image_free(g);
        return ERR_INVALID;
    }
    if (downscale > 1) {
        int rc = vis_resize(g, w, h, VIS_INTER_LINEAR, &small);
        vis_image_free(g);
        if (rc < 0)
            return rc;
        g = small;
    }
    uint8_t *cur = xmalloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        memcpy(cur + (size_t)y * w, vis_px(g, 0, y), (size_t)w);
    vis_image_free(g);
    float *pts = xmalloc(2 * MAX_CORNERS * sizeof *pts);
    int n = cv__good_features(cur, w, h, pts, MAX_CORNERS);
    if (s->init && s->prev && s->npts > 0 && n > 0 && s->w == w && s->h == h) {
        float *mt = xmalloc(2 * (size_t)s->npts * sizeof *mt), *pp = xmalloc(2 * (size_t)s->npts * sizeof *pp),
              *cp = xmalloc(2 * (size_t)s->npts * sizeof *cp);
        uint8_t *st = xmalloc((size_t)s->npts);
        cv__lk_track(s->prev, cur, w, h, s->pts, s->npts, mt, st);
        int m = 0;
        for (int k = 0; k < s->npts; k++)
            if (st[k]) {
                pp[2 * m] = s->pts[2 * k], pp[2 * m + 1] = s->pts[2 * k + 1];
                cp[2 * m] = mt[2 * k], cp[2 * m + 1] = mt[2 * k + 1];
                m++;
            }
        double E[6];
        if (m > 4 && cv__affine_partial_ransac(pp, cp, m, E)) {
            for (int k = 0; k < 6; k++)
                H[k] = (double)(float)E[k]; /* astype(float32) */
            H[2] = (double)((float)H[2] * (float)downscale), H[5] = (double)((float)H[5] * (float)downscale);
        }
        free(mt), free(pp), free(cp), free(st);
    }
    s->init = true;
    free(s->prev), free(s->pts);
    s->prev = cur, s->w = w, s->h = h;
    s->pts = pts, s->npts = n;
    return 0;
}
