/*
 * blocks/stitch.c — stitch_images@v1 (roboflow/inference
 * transformations/stitch_images/v1.py, read, not copied) and the RANSAC
 * homography it needs (cv2.findHomography(src, dst, cv2.RANSAC, thr)).
 *
 * The block: SIFT keypoints and descriptors of both images (blocks/sift.c),
 * BFMatcher knnMatch (L2) of image1's descriptors in image2's with Lowe's
 * ratio test at 0.75, then the image whose keypoints lie further left on
 * average (mean x) is the one pasted unchanged and the other is warped
 * onto it: H = findHomography(warped image's points -> pasted image's
 * points), the warped image's corners through H truncated to int32 give
 * the canvas (xmin, ymin, max(xmax, w), max(ymax, h)), the warped image is
 * drawn with cv2.warpPerspective(T * H) (T the translation by the negative
 * minimum, clamped at 0) and the pasted image is copied at the translation
 * when it fits, as Roboflow's code does (including its canvas size
 * xmax - xmin even when xmin > 0).
 *
 * findHomography follows OpenCV 4.6's RANSAC path: at least 4 pairs, exactly
 * 4 solved directly; minimal samples of 4 distinct pairs rejected when 3
 * points are collinear or the triangle orientations disagree between the
 * two sides; the normalised 4-point DLT (smallest eigenvector of LtL);
 * inliers where the float reprojection error squared is <= thr^2; the
 * iteration count adapted with confidence 0.995 (at most 2000); then the
 * DLT refit on all inliers and 10 Levenberg-Marquardt iterations on the
 * reprojection error.  Departures: the random samples come from a
 * multiply-with-carry generator seeded like OpenCV's RNG(-1) but the draws
 * are not guaranteed to be OpenCV's, the eigen solver is Jacobi, and the
 * LM damping schedule is a plain one; homographies agree with OpenCV's to
 * within a small fraction of a pixel on well-matched images
 * (tests/unit/test_workflow_stitch.c measures it).
 *
 * Where Roboflow logs a failure and outputs None (fewer than 4 good
 * matches, no homography, k of 1), this block fails the step with the
 * reason; a canvas beyond 16384 px a side or 40 Mpixel is a step error.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/wf_int.h"

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, fn)                                                               \
    static const struct wf_block var = {                                                           \
        var##_types, fields, ARRAY_LEN(fields), outs, ARRAY_LEN(outs), 0, 0, NULL, fn, NULL}

#define H_CONFIDENCE 0.995
#define H_MAX_ITERS 2000
#define ST_MAX_SIDE 16384
#define ST_MAX_PIXELS (40.0 * 1000 * 1000)

/* ---- small linear algebra ------------------------------------------------------------------ */

/* Jacobi eigen decomposition of a symmetric 9x9 A; v[k] = eigenvector of
 * the k-th smallest eigenvalue is returned for k = 0 only. */
static void smallest_eigvec9(double A[9][9], double out[9])
{
    double V[9][9];
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 9; j++)
            V[i][j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < 9; p++)
            for (int q = p + 1; q < 9; q++)
                off += A[p][q] * A[p][q];
        if (off < 1e-300)
            break;
        for (int p = 0; p < 9; p++)
            for (int q = p + 1; q < 9; q++) {
                if (fabs(A[p][q]) < 1e-300)
                    continue;
                double th = (A[q][q] - A[p][p]) / (2 * A[p][q]);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                double cs = 1 / sqrt(t * t + 1), sn = t * cs;
                for (int k = 0; k < 9; k++) {
                    double akp = A[k][p], akq = A[k][q];
                    A[k][p] = cs * akp - sn * akq, A[k][q] = sn * akp + cs * akq;
                }
                for (int k = 0; k < 9; k++) {
                    double apk = A[p][k], aqk = A[q][k];
                    A[p][k] = cs * apk - sn * aqk, A[q][k] = sn * apk + cs * aqk;
                }
                for (int k = 0; k < 9; k++) {
                    double vkp = V[k][p], vkq = V[k][q];
                    V[k][p] = cs * vkp - sn * vkq, V[k][q] = sn * vkp + cs * vkq;
                }
            }
    }
    int m = 0;
    for (int k = 1; k < 9; k++)
        if (A[k][k] < A[m][m])
            m = k;
    for (int k = 0; k < 9; k++)
        out[k] = V[k][m];
}

/* Gaussian elimination with partial pivoting of an n x n system (n <= 8). */
static bool solve_n(int n, double A[8][8], double b[8], double x[8])
{
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r][c]) > fabs(A[p][c]))
                p = r;
        if (fabs(A[p][c]) < 1e-300)
            return false;
        for (int k = 0; k < n; k++) {
            double t = A[c][k];
            A[c][k] = A[p][k], A[p][k] = t;
        }
        double t = b[c];
        b[c] = b[p], b[p] = t;
        for (int r = c + 1; r < n; r++) {
            double f = A[r][c] / A[c][c];
            for (int k = c; k < n; k++)
                A[r][k] -= f * A[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double s = b[r];
        for (int k = r + 1; k < n; k++)
            s -= A[r][k] * x[k];
        x[r] = s / A[r][r];
    }
    return true;
}

static void mul3(const double a[9], const double b[9], double o[9])
{
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            o[r * 3 + c] = a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
}

/* ---- findHomography ------------------------------------------------------------------------ */

/* OpenCV's HomographyEstimatorCallback::runKernel: normalised DLT of the
 * idx-selected pairs (all n when idx is NULL); false when degenerate. */
static bool dlt(const float *M, const float *m, const size_t *idx, size_t n, double H[9])
{
    double cMx = 0, cMy = 0, cmx = 0, cmy = 0, sMx = 0, sMy = 0, smx = 0, smy = 0;
    for (size_t t = 0; t < n; t++) {
        size_t i = idx ? idx[t] : t;
        cmx += m[2 * i], cmy += m[2 * i + 1], cMx += M[2 * i], cMy += M[2 * i + 1];
    }
    cmx /= (double)n, cmy /= (double)n, cMx /= (double)n, cMy /= (double)n;
    for (size_t t = 0; t < n; t++) {
        size_t i = idx ? idx[t] : t;
        smx += fabs(m[2 * i] - cmx), smy += fabs(m[2 * i + 1] - cmy);
        sMx += fabs(M[2 * i] - cMx), sMy += fabs(M[2 * i + 1] - cMy);
    }
    if (fabs(smx) < DBL_EPSILON || fabs(smy) < DBL_EPSILON || fabs(sMx) < DBL_EPSILON ||
        fabs(sMy) < DBL_EPSILON)
        return false;
    smx = (double)n / smx, smy = (double)n / smy, sMx = (double)n / sMx, sMy = (double)n / sMy;
    double L[9][9] = {{0}};
    for (size_t t = 0; t < n; t++) {
        size_t i = idx ? idx[t] : t;
        double x = (m[2 * i] - cmx) * smx, y = (m[2 * i + 1] - cmy) * smy;
        double X = (M[2 * i] - cMx) * sMx, Y = (M[2 * i + 1] - cMy) * sMy;
        double Lx[9] = {X, Y, 1, 0, 0, 0, -x * X, -x * Y, -x};
        double Ly[9] = {0, 0, 0, X, Y, 1, -y * X, -y * Y, -y};
        for (int j = 0; j < 9; j++)
            for (int k = j; k < 9; k++)
                L[j][k] += Lx[j] * Lx[k] + Ly[j] * Ly[k];
    }
    for (int j = 0; j < 9; j++)
        for (int k = 0; k < j; k++)
            L[j][k] = L[k][j];
    double H0[9], T[9];
    smallest_eigvec9(L, H0);
    double inv[9] = {1 / smx, 0, cmx, 0, 1 / smy, cmy, 0, 0, 1};
    double nrm[9] = {sMx, 0, -cMx * sMx, 0, sMy, -cMy * sMy, 0, 0, 1};
    mul3(inv, H0, T);
    mul3(T, nrm, H);
    if (fabs(H[8]) < DBL_MIN || !isfinite(H[8]))
        return false;
    double s = 1 / H[8];
    for (int k = 0; k < 9; k++)
        H[k] *= s;
    return true;
}

/* OpenCV's computeError (float) and findInliers. */
static size_t inliers(const float *M, const float *m, size_t n, const double H[9], float t2,
                      uint8_t *mask)
{
    float h[9];
    for (int k = 0; k < 9; k++)
        h[k] = (float)H[k];
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        float X = M[2 * i], Y = M[2 * i + 1];
        float ww = 1.f / (h[6] * X + h[7] * Y + 1.f);
        float dx = (h[0] * X + h[1] * Y + h[2]) * ww - m[2 * i];
        float dy = (h[3] * X + h[4] * Y + h[5]) * ww - m[2 * i + 1];
        bool in = dx * dx + dy * dy <= t2;
        mask[i] = in;
        good += in;
    }
    return good;
}

/* OpenCV's haveCollinearPoints: the last point against every pair before it. */
static bool collinear(const float *p, const size_t *idx, int count)
{
    int i = count - 1;
    for (int j = 0; j < i; j++) {
        float dx1 = p[2 * idx[j]] - p[2 * idx[i]], dy1 = p[2 * idx[j] + 1] - p[2 * idx[i] + 1];
        for (int k = 0; k < j; k++) {
            float dx2 = p[2 * idx[k]] - p[2 * idx[i]], dy2 = p[2 * idx[k] + 1] - p[2 * idx[i] + 1];
            if (fabsf(dx2 * dy1 - dy2 * dx1) <=
                FLT_EPSILON * (fabsf(dx1) + fabsf(dy1) + fabsf(dx2) + fabsf(dy2)))
                return true;
        }
    }
    return false;
}

static double det3(const float *p, size_t a, size_t b, size_t c)
{
    double ax = p[2 * a], ay = p[2 * a + 1], bx = p[2 * b], by = p[2 * b + 1], cx = p[2 * c],
           cy = p[2 * c + 1];
    return ax * (by - cy) - ay * (bx - cx) + (bx * cy - by * cx);
}

static bool subset_ok(const float *M, const float *m, const size_t idx[4])
{
    static const int tt[4][3] = {{0, 1, 2}, {1, 2, 3}, {0, 2, 3}, {1, 3, 0}};
    if (collinear(M, idx, 4) || collinear(m, idx, 4)) /* OpenCV tests the last point's triples */
        return false;
    int neg = 0;
    for (int i = 0; i < 4; i++)
        neg += det3(M, idx[tt[i][0]], idx[tt[i][1]], idx[tt[i][2]]) *
                   det3(m, idx[tt[i][0]], idx[tt[i][1]], idx[tt[i][2]]) <
               0;
    return neg == 0 || neg == 4;
}

static unsigned rng_next(uint64_t *s)
{
    *s = (uint64_t)(unsigned)*s * 4164903690U + (unsigned)(*s >> 32);
    return (unsigned)*s;
}

static int update_iters(double ep, int niters)
{
    double num = MAX(1 - H_CONFIDENCE, DBL_MIN), denom = 1 - pow(1 - ep, 4);
    if (denom < DBL_MIN)
        return 0;
    num = log(num), denom = log(denom);
    return denom >= 0 || -num >= niters * -denom ? niters : (int)lround(num / denom);
}

/* OpenCV's HomographyRefineCallback under a plain Levenberg-Marquardt. */
static double reproj(const float *M, const float *m, const size_t *idx, size_t n, const double h[8],
                     double JtJ[8][8], double Jte[8])
{
    double e2 = 0;
    if (JtJ)
        memset(JtJ, 0, sizeof(double) * 64), memset(Jte, 0, sizeof(double) * 8);
    for (size_t t = 0; t < n; t++) {
        size_t i = idx[t];
        double X = M[2 * i], Y = M[2 * i + 1];
        double ww = h[6] * X + h[7] * Y + 1;
        ww = fabs(ww) > DBL_EPSILON ? 1 / ww : 0;
        double xi = (h[0] * X + h[1] * Y + h[2]) * ww, yi = (h[3] * X + h[4] * Y + h[5]) * ww;
        double ex = xi - m[2 * i], ey = yi - m[2 * i + 1];
        e2 += ex * ex + ey * ey;
        if (!JtJ)
            continue;
        double jx[8] = {X * ww, Y * ww, ww, 0, 0, 0, -X * ww * xi, -Y * ww * xi};
        double jy[8] = {0, 0, 0, X * ww, Y * ww, ww, -X * ww * yi, -Y * ww * yi};
        for (int a = 0; a < 8; a++) {
            Jte[a] += jx[a] * ex + jy[a] * ey;
            for (int b = 0; b < 8; b++)
                JtJ[a][b] += jx[a] * jx[b] + jy[a] * jy[b];
        }
    }
    return e2;
}

static void refine(const float *M, const float *m, const size_t *idx, size_t n, double H[9])
{
    double h[8], lambda = 1e-3;
    memcpy(h, H, sizeof h);
    double JtJ[8][8], Jte[8];
    double e = reproj(M, m, idx, n, h, JtJ, Jte);
    for (int it = 0; it < 10; it++) {
        double A[8][8], b[8], d[8], hn[8];
        for (int a = 0; a < 8; a++) {
            for (int c = 0; c < 8; c++)
                A[a][c] = JtJ[a][c];
            A[a][a] *= 1 + lambda;
            b[a] = -Jte[a];
        }
        if (!solve_n(8, A, b, d))
            break;
        for (int a = 0; a < 8; a++)
            hn[a] = h[a] + d[a];
        double en = reproj(M, m, idx, n, hn, NULL, NULL);
        if (isfinite(en) && en < e) {
            memcpy(h, hn, sizeof h);
            e = reproj(M, m, idx, n, h, JtJ, Jte);
            lambda = MAX(lambda / 10, 1e-12);
        } else {
            lambda *= 10;
        }
    }
    memcpy(H, h, sizeof h);
    H[8] = 1;
}

int cv__find_homography(const float *src, const float *dst, size_t n, double thr, double H[9],
                        size_t *ninl)
{
    *ninl = 0;
    if (n < 4)
        return ERR_INVALID;
    size_t *all = malloc(n * sizeof *all);
    uint8_t *mask = malloc(n), *best = malloc(n);
    if (!all || !mask || !best) {
        free(all), free(mask), free(best);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        all[i] = i;
    bool found = false;
    size_t maxgood = 0;
    if (n == 4) {
        found = dlt(src, dst, NULL, 4, H);
        memset(best, 1, n), maxgood = 4;
    } else {
        uint64_t rng = (uint64_t)-1;
        float t2 = (float)(thr * thr);
        int niters = H_MAX_ITERS;
        for (int iter = 0; iter < niters; iter++) {
            size_t idx[4];
            bool got = false;
            for (int att = 0; att < 10000 && !got; att++) {
                for (int i = 0; i < 4;) {
                    idx[i] = rng_next(&rng) % (unsigned)n;
                    int j = 0;
                    while (j < i && idx[j] != idx[i])
                        j++;
                    if (j == i)
                        i++;
                }
                got = subset_ok(src, dst, idx);
            }
            if (!got)
                break;
            double Hm[9];
            if (!dlt(src, dst, idx, 4, Hm))
                continue;
            size_t good = inliers(src, dst, n, Hm, t2, mask);
            if (good > MAX(maxgood, 3)) {
                uint8_t *t = mask;
                mask = best, best = t;
                memcpy(H, Hm, sizeof Hm);
                maxgood = good, found = true;
                niters = update_iters((double)(n - good) / (double)n, niters);
            }
        }
    }
    if (found) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (best[i])
                all[k++] = i;
        if (n > 4 && k > 0) {
            double Hr[9];
            if (dlt(src, dst, all, k, Hr))
                memcpy(H, Hr, sizeof Hr);
            refine(src, dst, all, k, H);
        }
        *ninl = maxgood;
        for (int q = 0; q < 9; q++)
            found = found && isfinite(H[q]);
    }
    free(all), free(mask), free(best);
    return found ? 0 : ERR_INVALID;
}

/* ---- stitching ----------------------------------------------------------------------------- */

/* BFMatcher(NORM_L2).knnMatch(d1, d2, k=2) with the ratio test at `ratio`:
 * the query/train index pairs of the good matches (malloc'd). */
static int good_pairs(const float *d1, size_t n1, const float *d2, size_t n2, double ratio,
                      size_t **q, size_t **t, size_t *n)
{
    *n = 0;
    *q = malloc((n1 ? n1 : 1) * sizeof **q), *t = malloc((n1 ? n1 : 1) * sizeof **t);
    if (!*q || !*t) {
        free(*q), free(*t);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < n1; i++) {
        double b1 = INFINITY, b2 = INFINITY;
        size_t j1 = 0;
        for (size_t j = 0; j < n2; j++) {
            double s = 0;
            const float *a = d1 + i * 128, *b = d2 + j * 128;
            for (int k = 0; k < 128; k++) {
                double u = (double)a[k] - b[k];
                s += u * u;
            }
            if (s < b1)
                b2 = b1, b1 = s, j1 = j;
            else if (s < b2)
                b2 = s;
        }
        if ((double)(float)sqrt(b1) < ratio * (double)(float)sqrt(b2))
            (*q)[*n] = i, (*t)[*n] = j1, (*n)++;
    }
    return 0;
}

int cv__stitch(const struct vis_image *im1, const struct vis_image *im2, double thr, double H[9],
               struct vis_image **out, const char **why)
{
    *out = NULL;
    *why = "out of memory";
    struct cv_keypoint *k1 = NULL, *k2 = NULL;
    float *d1 = NULL, *d2 = NULL, *p1 = NULL, *p2 = NULL;
    size_t n1 = 0, n2 = 0, ng = 0, *qi = NULL, *ti = NULL;
    struct vis_image *a = NULL, *b = NULL, *warped = NULL;
    int rc = cv__sift(im1, &k1, &d1, &n1);
    if (rc == 0)
        rc = cv__sift(im2, &k2, &d2, &n2);
    if (rc < 0) {
        *why = rc == ERR_LIMIT     ? "image too large for SIFT or too many keypoints"
               : rc == ERR_INVALID ? "image too small for SIFT"
                                   : "out of memory";
        goto done;
    }
    rc = ERR_INVALID;
    if (n1 == 0 || n2 < 2) {
        *why = "not enough SIFT keypoints to match the images";
        goto done;
    }
    if ((double)n1 * (double)n2 > 1e9) {
        rc = ERR_LIMIT, *why = "too many keypoint pairs to match";
        goto done;
    }
    if ((rc = good_pairs(d1, n1, d2, n2, 0.75, &qi, &ti, &ng)) < 0)
        goto done;
    rc = ERR_INVALID;
    if (ng < 4) {
        *why = "fewer than 4 good keypoint matches between the images";
        goto done;
    }
    p1 = malloc(ng * 2 * sizeof *p1), p2 = malloc(ng * 2 * sizeof *p2);
    if (!p1 || !p2) {
        rc = ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < ng; i++) {
        p1[2 * i] = k1[qi[i]].x, p1[2 * i + 1] = k1[qi[i]].y;
        p2[2 * i] = k2[ti[i]].x, p2[2 * i + 1] = k2[ti[i]].y;
    }
    double m1 = 0, m2 = 0;
    for (size_t i = 0; i < n1; i++)
        m1 += k1[i].x;
    for (size_t i = 0; i < n2; i++)
        m2 += k2[i].x;
    bool first1 = m1 / (double)n1 < m2 / (double)n2;
    /* `first` is pasted, `second` warped by H (second's points -> first's) */
    const struct vis_image *first = first1 ? im2 : im1, *second = first1 ? im1 : im2;
    size_t ninl;
    if ((rc = cv__find_homography(first1 ? p1 : p2, first1 ? p2 : p1, ng, thr, H, &ninl)) < 0) {
        *why = rc == ERR_NOMEM ? "out of memory" : "no homography between the images";
        goto done;
    }
    rc = ERR_INVALID;
    int w1 = first->w, h1 = first->h, w2 = second->w, h2 = second->h;
    const float cx[4] = {0, 0, (float)w2, (float)w2}, cy[4] = {0, (float)h2, (float)h2, 0};
    float xmn = INFINITY, ymn = INFINITY, xmx = -INFINITY, ymx = -INFINITY;
    for (int c = 0; c < 4; c++) {
        float ox, oy;
        cv__perspective_point(H, cx[c], cy[c], &ox, &oy);
        if (!isfinite(ox) || !isfinite(oy) || fabsf(ox) > 1e6f || fabsf(oy) > 1e6f) {
            rc = ERR_LIMIT, *why = "the homography throws the image too far (canvas too large)";
            goto done;
        }
        xmn = fminf(xmn, ox), ymn = fminf(ymn, oy), xmx = fmaxf(xmx, ox), ymx = fmaxf(ymx, oy);
    }
    int xmin = (int)xmn, ymin = (int)ymn, xmax = MAX((int)xmx, w1), ymax = MAX((int)ymx, h1);
    int W = xmax - xmin, Hh = ymax - ymin;
    if (W <= 0 || Hh <= 0) {
        *why = "the homography collapses the image";
        goto done;
    }
    if (W > ST_MAX_SIDE || Hh > ST_MAX_SIDE || (double)W * Hh > ST_MAX_PIXELS) {
        rc = ERR_LIMIT, *why = "stitched canvas too large (16384 px a side, 40 Mpixel)";
        goto done;
    }
    int tx = MAX(0, -xmin), ty = MAX(0, -ymin);
    double T[9] = {1, 0, tx, 0, 1, ty, 0, 0, 1}, TH[9];
    mul3(T, H, TH);
    if (first->fmt != second->fmt) {
        if (vis_convert(first, VIS_BGR, &a) < 0 || vis_convert(second, VIS_BGR, &b) < 0) {
            rc = ERR_NOMEM;
            goto done;
        }
        first = a, second = b;
    }
    if ((rc = cv__warp_perspective(second, TH, W, Hh, &warped)) < 0)
        goto done;
    if (tx + w1 <= W && ty + h1 <= Hh) {
        size_t row = (size_t)w1 * vis_channels(first);
        for (int y = 0; y < h1; y++)
            memcpy(vis_px(warped, tx, ty + y), vis_px((struct vis_image *)first, 0, y), row);
    }
    *out = warped, warped = NULL, rc = 0, *why = NULL;
done:
    free(k1), free(k2), free(d1), free(d2), free(p1), free(p2), free(qi), free(ti);
    vis_image_free(a), vis_image_free(b), vis_image_free(warped);
    return rc;
}

/* ---- block --------------------------------------------------------------------------------- */

static int stitch_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *a = wf_arg_image(c, i, "image1"), *b = wf_arg_image(c, i, "image2");
        int64_t k = wf_arg_int(c, i, "count_of_best_matches_per_query_descriptor", 2);
        double thr = fabs(wf_arg_double(c, i, "max_allowed_reprojection_error", 3));
        if (k == 0)
            return wf_call_fail(c, "count_of_best_matches_per_query_descriptor must be greater "
                                   "than 0");
        if (k == 1 || k == -1)
            return wf_call_fail(c, "count_of_best_matches_per_query_descriptor must be at least 2 "
                                   "for the ratio test");
        if (!isfinite(thr))
            return wf_call_fail(c, "max_allowed_reprojection_error must be a finite number");
        double H[9];
        struct vis_image *out;
        const char *why;
        if (cv__stitch(a->img, b->img, thr, H, &out, &why) < 0)
            return wf_call_fail(c, "stitching failed: %s", why);
        wf_out_image(c, i, "stitched_image", a, out);
    }
    return 0;
}

static const struct wf_field stitch_fields[] = {
    {"image1", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"image2", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"max_allowed_reprojection_error", NULL, WF_FT_FLOAT, "3", WF_K_NUMBER, 0, NULL},
    {"count_of_best_matches_per_query_descriptor", NULL, WF_FT_INT, "2", WF_K_INT, 0, NULL},
};
static const struct wf_output stitch_outs[] = {{"stitched_image", WF_K_IMAGE}};
TYPES(stitch, "roboflow_core/stitch_images@v1");
BLOCK(stitch, stitch_fields, stitch_outs, stitch_run);

const struct wf_block *const wf_blocks_stitch[] = {&stitch, NULL};
