/*
 * blocks/warp.c — geometric transformations of images and detections
 * (roboflow/inference transformations/perspective_correction/v1.py and
 * transformations/camera_calibration/v1.py, read, not copied):
 *
 * - perspective_correction@v1 / PerspectiveCorrection: the largest
 *   4-vertex polygon of perspective_polygons (Roboflow's
 *   pick_largest_perspective_polygons), its vertices sorted clockwise by
 *   atan2 about the bounding-box centre and rolled to start nearest the
 *   box's bottom-left corner, optionally extended so that the detections'
 *   anchors (or whole boxes, "ALL") lie inside, then
 *   cv2.getPerspectiveTransform to the rectangle (0, h-1), (0, 0), (w-1, 0),
 *   (w-1, h-1).  Detections: boxes (rounded half to even), mask polygons
 *   and keypoints moved by cv2.perspectiveTransform and rounded; the image
 *   (warp_image) by cv2.warpPerspective, INTER_LINEAR, black border.
 * - camera-calibration@v1: cv2.getOptimalNewCameraMatrix(alpha=1) then
 *   cv2.undistort with the given intrinsics and distortion (k1 k2 p1 p2 k3).
 *
 * Arithmetic follows OpenCV 4.6: getPerspectiveTransform builds its 8x8
 * system with float products and solves it by Gaussian elimination with
 * partial pivoting (hal::LU); warpPerspective inverts the matrix with the
 * 3x3 adjugate formula, computes source positions per 32 x 16 block in
 * double, rounds them to 1/32 pixel, and interpolates with 15-bit
 * fixed-point bilinear weights (remap's BilinearTab_i); initUndistortRectify
 * Map feeds the same remap.  Outputs equal python3-opencv's pixel for pixel
 * except where a source position lies within rounding noise of a 1/32 step
 * (tests/unit/test_workflow_warp.c measures it).
 *
 * Departures: Roboflow keeps the first run's transformation for later runs
 * of the workflow (an instance attribute) unless the polygon is extended
 * by detections; here each run computes its own.  A mask's new polygon is
 * its own vertices moved and rounded, where Roboflow moves the contour of
 * the rasterized mask.  CENTER_OF_MASS as the extension anchor and the
 * fisheye model of camera-calibration are step errors (not yet).  A
 * degenerate polygon (no perspective transform) is a step error where
 * OpenCV returns a zero matrix.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/wf_int.h"

#define WARP_MAX_SIDE 16384
#define WARP_MAX_PIXELS (40 * 1000 * 1000)

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, fn)                                                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,        \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL}

/* ---- OpenCV primitives ------------------------------------------------------------------ */

int cv__perspective_matrix(const float src[8], const float dst[8], double m[9])
{
    double a[8][8], b[8];
    for (int i = 0; i < 4; i++) {
        float sx = src[2 * i], sy = src[2 * i + 1], dx = dst[2 * i], dy = dst[2 * i + 1];
        memset(a[i], 0, sizeof a[i]);
        memset(a[i + 4], 0, sizeof a[i + 4]);
        a[i][0] = a[i + 4][3] = sx;
        a[i][1] = a[i + 4][4] = sy;
        a[i][2] = a[i + 4][5] = 1;
        a[i][6] = (float)(-sx * dx); /* OpenCV multiplies Point2f members */
        a[i][7] = (float)(-sy * dx);
        a[i + 4][6] = (float)(-sx * dy);
        a[i + 4][7] = (float)(-sy * dy);
        b[i] = dx;
        b[i + 4] = dy;
    }
    for (int i = 0; i < 8; i++) { /* hal::LU: partial pivoting */
        int k = i;
        for (int j = i + 1; j < 8; j++)
            if (fabs(a[j][i]) > fabs(a[k][i]))
                k = j;
        if (fabs(a[k][i]) < DBL_EPSILON * 100)
            return ERR_INVALID;
        if (k != i) {
            for (int j = 0; j < 8; j++) {
                double t = a[i][j];
                a[i][j] = a[k][j], a[k][j] = t;
            }
            double t = b[i];
            b[i] = b[k], b[k] = t;
        }
        double d = -1 / a[i][i];
        for (int j = i + 1; j < 8; j++) {
            double alpha = a[j][i] * d;
            for (int q = i + 1; q < 8; q++)
                a[j][q] += alpha * a[i][q];
            b[j] += alpha * b[i];
        }
    }
    for (int i = 7; i >= 0; i--) {
        double s = b[i];
        for (int q = i + 1; q < 8; q++)
            s -= a[i][q] * b[q];
        b[i] = s / a[i][i];
    }
    for (int i = 0; i < 8; i++)
        m[i] = b[i];
    m[8] = 1;
    return 0;
}

int cv__invert3(const double s[9], double t[9])
{
#define S(r, c) s[(r) * 3 + (c)]
    double d = S(0, 0) * (S(1, 1) * S(2, 2) - S(1, 2) * S(2, 1)) -
               S(0, 1) * (S(1, 0) * S(2, 2) - S(1, 2) * S(2, 0)) +
               S(0, 2) * (S(1, 0) * S(2, 1) - S(1, 1) * S(2, 0));
    if (d == 0)
        return ERR_INVALID;
    d = 1. / d;
    t[0] = (S(1, 1) * S(2, 2) - S(1, 2) * S(2, 1)) * d;
    t[1] = (S(0, 2) * S(2, 1) - S(0, 1) * S(2, 2)) * d;
    t[2] = (S(0, 1) * S(1, 2) - S(0, 2) * S(1, 1)) * d;
    t[3] = (S(1, 2) * S(2, 0) - S(1, 0) * S(2, 2)) * d;
    t[4] = (S(0, 0) * S(2, 2) - S(0, 2) * S(2, 0)) * d;
    t[5] = (S(0, 2) * S(1, 0) - S(0, 0) * S(1, 2)) * d;
    t[6] = (S(1, 0) * S(2, 1) - S(1, 1) * S(2, 0)) * d;
    t[7] = (S(0, 1) * S(2, 0) - S(0, 0) * S(2, 1)) * d;
    t[8] = (S(0, 0) * S(1, 1) - S(0, 1) * S(1, 0)) * d;
#undef S
    return 0;
}

void cv__perspective_point(const double m[9], float x, float y, float *ox, float *oy)
{
    double w = x * m[6] + y * m[7] + m[8];
    if (fabs(w) > FLT_EPSILON) {
        w = 1. / w;
        *ox = (float)((x * m[0] + y * m[1] + m[2]) * w);
        *oy = (float)((x * m[3] + y * m[4] + m[5]) * w);
    } else {
        *ox = *oy = 0;
    }
}

/* saturate_cast<int>(double): cvRound (round half to even) with clamping. */
static inline int sat_int(double v)
{
    if (!(v > INT_MIN)) /* also NaN */
        return v != v ? 0 : INT_MIN;
    if (v >= INT_MAX)
        return INT_MAX;
#if defined(__SSE2__)
    return _mm_cvtsd_si32(_mm_set_sd(v)); /* what OpenCV's cvRound compiles to */
#else
    return (int)lrint(v);
#endif
}

static inline int sat_short(int v) { return v < -32768 ? -32768 : v > 32767 ? 32767 : v; }

/* remap INTER_LINEAR + BORDER_CONSTANT (0) of one destination pixel whose
 * source position is (sx + fx/32, sy + fy/32); OpenCV's remapBilinear with
 * BilinearTab_i weights and FixedPtCast<int, uchar, 15>. */
static inline __attribute__((always_inline)) void remap_px(const struct vis_image *src, int sx,
                                                          int sy, int fxy, uint8_t *d)
{
    int cn = vis_channels(src), fx = fxy & 31, fy = fxy >> 5;
    int w0 = (32 - fx) * (32 - fy) * 32, w1 = fx * (32 - fy) * 32, w2 = (32 - fx) * fy * 32,
        w3 = fx * fy * 32;
    if ((unsigned)sx < (unsigned)(src->w - 1) && (unsigned)sy < (unsigned)(src->h - 1)) {
        const uint8_t *s = vis_px(src, sx, sy);
        if (cn == 3) { /* the common case, unrolled */
            const uint8_t *t = s + src->stride;
            d[0] = (uint8_t)((s[0] * w0 + s[3] * w1 + t[0] * w2 + t[3] * w3 + (1 << 14)) >> 15);
            d[1] = (uint8_t)((s[1] * w0 + s[4] * w1 + t[1] * w2 + t[4] * w3 + (1 << 14)) >> 15);
            d[2] = (uint8_t)((s[2] * w0 + s[5] * w1 + t[2] * w2 + t[5] * w3 + (1 << 14)) >> 15);
            return;
        }
        for (int k = 0; k < cn; k++) {
            int v = s[k] * w0 + s[k + cn] * w1 + s[k + src->stride] * w2 +
                    s[k + src->stride + cn] * w3;
            d[k] = (uint8_t)((v + (1 << 14)) >> 15);
        }
        return;
    }
    if (sx >= src->w || sx + 1 < 0 || sy >= src->h || sy + 1 < 0) {
        memset(d, 0, (size_t)cn);
        return;
    }
    static const uint8_t zero[4];
    bool x0 = sx >= 0, x1 = sx + 1 < src->w, y0 = sy >= 0, y1 = sy + 1 < src->h;
    const uint8_t *v0 = x0 && y0 ? vis_px(src, sx, sy) : zero;
    const uint8_t *v1 = x1 && y0 ? vis_px(src, sx + 1, sy) : zero;
    const uint8_t *v2 = x0 && y1 ? vis_px(src, sx, sy + 1) : zero;
    const uint8_t *v3 = x1 && y1 ? vis_px(src, sx + 1, sy + 1) : zero;
    for (int k = 0; k < cn; k++) {
        int v = v0[k] * w0 + v1[k] * w1 + v2[k] * w2 + v3[k] * w3;
        d[k] = (uint8_t)((v + (1 << 14)) >> 15);
    }
}

int cv__warp_perspective(const struct vis_image *src, const double m[9], int w, int h,
                         struct vis_image **out)
{
    *out = NULL;
    double M[9];
    if (cv__invert3(m, M) < 0)
        memset(M, 0, sizeof M); /* cv::invert leaves zeros */
    struct vis_image *dst = vis_image_new(w, h, src->fmt);
    if (!dst)
        return ERR_NOMEM;
    int cn = vis_channels(src);
    /* OpenCV's tiling: BLOCK_SZ 32 */
    int bh0 = MIN(32 / 2, h), bw0 = MIN(32 * 32 / bh0, w);
    bh0 = MIN(32 * 32 / bw0, h);
    for (int y = 0; y < h; y += bh0)
        for (int x = 0; x < w; x += bw0) {
            int bw = MIN(bw0, w - x), bh = MIN(bh0, h - y);
            for (int y1 = 0; y1 < bh; y1++) {
                double X0 = M[0] * x + M[1] * (y + y1) + M[2];
                double Y0 = M[3] * x + M[4] * (y + y1) + M[5];
                double W0 = M[6] * x + M[7] * (y + y1) + M[8];
                uint8_t *d = vis_px(dst, x, y + y1);
                for (int x1 = 0; x1 < bw; x1++, d += cn) {
                    double W = W0 + M[6] * x1;
                    W = W != 0 ? 32 / W : 0;
                    double fX = MAX((double)INT_MIN, MIN((double)INT_MAX, (X0 + M[0] * x1) * W));
                    double fY = MAX((double)INT_MIN, MIN((double)INT_MAX, (Y0 + M[3] * x1) * W));
                    int X = sat_int(fX), Y = sat_int(fY);
                    remap_px(src, sat_short(X >> 5), sat_short(Y >> 5), (Y & 31) * 32 + (X & 31),
                             d);
                }
            }
        }
    *out = dst;
    return 0;
}

/* cvUndistortPoints without R / P (normalized coordinates), OpenCV 4.6's
 * default criteria: 5 iterations. */
static void undistort_point(const double K[9], const double dc[5], double u, double v, double *ox,
                            double *oy)
{
    double k1 = dc[0], k2 = dc[1], p1 = dc[2], p2 = dc[3], k3 = dc[4];
    double ifx = 1. / K[0], ify = 1. / K[4], cx = K[2], cy = K[5];
    double x = (u - cx) * ifx, y = (v - cy) * ify, x0 = x, y0 = y;
    for (int it = 0; it < 5; it++) {
        double r2 = x * x + y * y;
        double icdist = 1 / (1 + ((k3 * r2 + k2) * r2 + k1) * r2);
        if (icdist < 0) {
            x = (u - cx) * ifx, y = (v - cy) * ify;
            break;
        }
        double dX = 2 * p1 * x * y + p2 * (r2 + 2 * x * x);
        double dY = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y;
        x = (x0 - dX) * icdist;
        y = (y0 - dY) * icdist;
    }
    *ox = x, *oy = y;
}

void cv__optimal_camera_matrix(const double K[9], const double dc[5], int w, int h, double nk[9])
{
    const int N = 9;
    float oX0 = FLT_MAX, oX1 = -FLT_MAX, oY0 = FLT_MAX, oY1 = -FLT_MAX;
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            /* OpenCV 4.6: Point2f grid over (0..w, 0..h), results stored as float */
            double px, py;
            undistort_point(K, dc, (float)x * w / (N - 1), (float)y * h / (N - 1), &px, &py);
            px = (float)px, py = (float)py;
            oX0 = (float)MIN(oX0, px), oX1 = (float)MAX(oX1, px);
            oY0 = (float)MIN(oY0, py), oY1 = (float)MAX(oY1, py);
        }
    /* cv::Rect_<float> outer; int / float divisions in float */
    float ow = oX1 - oX0, oh = oY1 - oY0;
    double ox = oX0, oy = oY0;
    double fx1 = (float)(w - 1) / ow, fy1 = (float)(h - 1) / oh;
    memset(nk, 0, 9 * sizeof *nk);
    nk[0] = fx1;
    nk[4] = fy1;
    nk[2] = -fx1 * ox;
    nk[5] = -fy1 * oy;
    nk[8] = 1;
}

int cv__undistort(const struct vis_image *src, const double K[9], const double dc[5],
                  const double newk[9], struct vis_image **out)
{
    *out = NULL;
    struct vis_image *dst = vis_image_new(src->w, src->h, src->fmt);
    if (!dst)
        return ERR_NOMEM;
    int cn = vis_channels(src);
    double k1 = dc[0], k2 = dc[1], p1 = dc[2], p2 = dc[3], k3 = dc[4];
    double fx = K[0], fy = K[4], u0 = K[2], v0 = K[5];
    int stripe0 = MIN(MAX(1, (1 << 12) / MAX(src->w, 1)), src->h);
    for (int ys = 0; ys < src->h; ys += stripe0) {
        int stripe = MIN(stripe0, src->h - ys);
        double Ar[9], ir[9];
        memcpy(Ar, newk, sizeof Ar);
        Ar[5] = newk[5] - ys;
        if (cv__invert3(Ar, ir) < 0) {
            vis_image_free(dst);
            return ERR_INVALID;
        }
        for (int i = 0; i < stripe; i++) {
            double _x = i * ir[1] + ir[2], _y = i * ir[4] + ir[5], _w = i * ir[7] + ir[8];
            uint8_t *d = vis_px(dst, 0, ys + i);
            for (int j = 0; j < src->w; j++, d += cn, _x += ir[0], _y += ir[3], _w += ir[6]) {
                double ww = 1. / _w, x = _x * ww, y = _y * ww;
                double x2 = x * x, y2 = y * y, r2 = x2 + y2, _2xy = 2 * x * y;
                double kr = 1 + ((k3 * r2 + k2) * r2 + k1) * r2;
                double xd = x * kr + p1 * _2xy + p2 * (r2 + 2 * x2);
                double yd = y * kr + p1 * (r2 + 2 * y2) + p2 * _2xy;
                double u = fx * xd + u0, v = fy * yd + v0;
                int iu = sat_int(u * 32), iv = sat_int(v * 32);
                remap_px(src, (int16_t)(iu >> 5), (int16_t)(iv >> 5), (iv & 31) * 32 + (iu & 31),
                         d);
            }
        }
    }
    *out = dst;
    return 0;
}

/* ---- perspective_correction --------------------------------------------------------------- */

struct quad {
    double p[4][2]; /* bottom_left, top_left, top_right, bottom_right after ordering */
};

static bool is_point(const json_t *p)
{
    return json_is_array(p) && json_array_size(p) == 2 && json_is_number(json_array_get(p, 0)) &&
           json_is_number(json_array_get(p, 1));
}

static bool is_quad(const json_t *poly)
{
    if (!json_is_array(poly) || json_array_size(poly) != 4)
        return false;
    for (size_t k = 0; k < 4; k++)
        if (!is_point(json_array_get(poly, k)))
            return false;
    return true;
}

static void quad_read(const json_t *poly, bool round_int, struct quad *q)
{
    for (size_t k = 0; k < 4; k++)
        for (int c = 0; c < 2; c++) {
            double v = json_number_value(json_array_get(json_array_get(poly, k), (size_t)c));
            q->p[k][c] = round_int ? wf__round_half_even(v) : v;
        }
}

static double quad_area(const struct quad *q) /* cv2.contourArea */
{
    double a = 0;
    for (int k = 0; k < 4; k++) {
        const double *p = q->p[k], *n = q->p[(k + 1) % 4];
        a += p[0] * n[1] - n[0] * p[1];
    }
    return fabs(a / 2);
}

/* Roboflow's "polygons" of one batch element: a 4-point polygon, or a list
 * of polygons of which the largest 4-vertex one (rounded) is taken. */
static int pick_polygon(struct wf_call *c, const json_t *polys, struct quad *q)
{
    if (!json_is_array(polys) || json_array_size(polys) == 0)
        return wf_call_fail(c, "perspective_polygons: expected a non-empty list of polygons");
    if (is_quad(polys)) {
        quad_read(polys, false, q);
        return 0;
    }
    bool found = false;
    double best = -1;
    size_t k;
    json_t *p;
    json_array_foreach(polys, k, p) {
        if (!is_quad(p))
            continue;
        struct quad t;
        quad_read(p, true, &t);
        double a = quad_area(&t);
        if (a > best) /* max(): the first of equal areas */
            best = a, *q = t, found = true;
    }
    if (!found)
        return wf_call_fail(c, "perspective_polygons: no polygon consists of 4 vertices");
    return 0;
}

static void sort_clockwise_and_roll(struct quad *q)
{
    double xmin = q->p[0][0], xmax = xmin, ymin = q->p[0][1], ymax = ymin;
    for (int k = 1; k < 4; k++) {
        xmin = MIN(xmin, q->p[k][0]), xmax = MAX(xmax, q->p[k][0]);
        ymin = MIN(ymin, q->p[k][1]), ymax = MAX(ymax, q->p[k][1]);
    }
    double xc = xmin / 2 + xmax / 2, yc = ymin / 2 + ymax / 2, ang[4];
    for (int k = 0; k < 4; k++)
        ang[k] = atan2(xc - q->p[k][0], yc - q->p[k][1]);
    /* sorted(key=angle, reverse=True): descending, stable */
    for (int i = 1; i < 4; i++)
        for (int j = i; j > 0 && ang[j - 1] < ang[j]; j--) {
            double t = ang[j];
            ang[j] = ang[j - 1], ang[j - 1] = t;
            for (int c = 0; c < 2; c++) {
                t = q->p[j][c];
                q->p[j][c] = q->p[j - 1][c], q->p[j - 1][c] = t;
            }
        }
    xmin = q->p[0][0], xmax = xmin, ymin = q->p[0][1], ymax = ymin;
    for (int k = 1; k < 4; k++) {
        xmin = MIN(xmin, q->p[k][0]), xmax = MAX(xmax, q->p[k][0]);
        ymin = MIN(ymin, q->p[k][1]), ymax = MAX(ymax, q->p[k][1]);
    }
    const double rect[4][2] = {{xmin, ymax}, {xmin, ymin}, {xmax, ymin}, {xmax, ymax}};
    struct quad best = *q;
    double min_dist = 0;
    for (int k = 0; k < 4; k++)
        min_dist += sqrt(pow(rect[k][0] - q->p[k][0], 2) + pow(rect[k][1] - q->p[k][1], 2));
    for (int s = 0; s < 4; s++) {
        struct quad r;
        for (int k = 0; k < 4; k++)
            r.p[k][0] = q->p[(k - s + 4) % 4][0], r.p[k][1] = q->p[(k - s + 4) % 4][1];
        double dist = 0;
        for (int k = 0; k < 4; k++)
            dist += sqrt(pow(rect[k][0] - r.p[k][0], 2) + pow(rect[k][1] - r.p[k][1], 2));
        if (dist < min_dist || (dist == min_dist && r.p[0][0] < best.p[0][0]))
            min_dist = dist, best = r;
    }
    *q = best;
}

/* cv2.pointPolygonTest(contour, pt, measureDist=False) >= 0 */
static bool point_in_quad(const struct quad *q, double px, double py)
{
    int counter = 0;
    const double *v = q->p[3];
    for (int i = 0; i < 4; i++) {
        const double *v0 = v;
        v = q->p[i];
        if ((v0[1] <= py && v[1] <= py) || (v0[1] > py && v[1] > py) ||
            (v0[0] < px && v[0] < px)) {
            if (py == v[1] &&
                (px == v[0] || (py == v0[1] && ((v0[0] <= px && px <= v[0]) ||
                                                (v[0] <= px && px <= v0[0])))))
                return true;
            continue;
        }
        double dist = (py - v0[1]) * (v[0] - v0[0]) - (px - v0[0]) * (v[1] - v0[1]);
        if (dist == 0)
            return true;
        if (v[1] < v0[1])
            dist = -dist;
        counter += dist > 0;
    }
    return counter % 2 != 0;
}

static bool ccw(const double *a, const double *b, double x, double y)
{
    return (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) > 0;
}

/* a x + b = y; vertical: *vert, b = x */
static void line_coeffs(const double *p1, const double *p2, bool *vert, double *a, double *b)
{
    if (p1[0] == p2[0]) {
        *vert = true, *a = 0, *b = p1[0];
        return;
    }
    *vert = false;
    *a = (p2[1] - p1[1]) / (p2[0] - p1[0]);
    *b = (p1[1] * p2[0] - p2[1] * p1[0]) / (p2[0] - p1[0]);
}

static int intersect(bool v1, double a1, double b1, bool v2, double a2, double b2, double *out)
{
    double x, y;
    if (v1 && v2)
        return ERR_INVALID;
    if (v1)
        x = b1, y = a2 * x + b2;
    else if (v2)
        x = b2, y = a1 * x + b1;
    else {
        if (a1 == a2)
            return ERR_INVALID;
        x = (b2 - b1) / (a1 - a2), y = a1 * x + b1;
    }
    if (!isfinite(x) || !isfinite(y) || fabs(x) > 1e9 || fabs(y) > 1e9)
        return ERR_INVALID;
    out[0] = wf__round_half_even(x), out[1] = wf__round_half_even(y);
    return 0;
}

/* Roboflow's calculate_vertices_to_contain_point: moves v1 along v1->v3 and
 * v2 along v2->v4 to the line parallel to v1v2 through (x, y). */
static int contain_point(double *v1, double *v2, const double *v3, const double *v4, double x,
                         double y)
{
    bool vert, v13, v24;
    double a, b, a13, b13, a24, b24, n1[2], n2[2];
    line_coeffs(v1, v2, &vert, &a, &b);
    b = vert ? x : y - a * x;
    line_coeffs(v1, v3, &v13, &a13, &b13);
    if (intersect(v13, a13, b13, vert, a, b, n1) < 0)
        return ERR_INVALID;
    line_coeffs(v2, v4, &v24, &a24, &b24);
    if (intersect(v24, a24, b24, vert, a, b, n2) < 0)
        return ERR_INVALID;
    memcpy(v1, n1, sizeof n1);
    memcpy(v2, n2, sizeof n2);
    return 0;
}

enum anchor { A_CENTER, A_CENTER_LEFT, A_CENTER_RIGHT, A_TOP_CENTER, A_TOP_LEFT, A_TOP_RIGHT,
              A_BOTTOM_LEFT, A_BOTTOM_CENTER, A_BOTTOM_RIGHT, A_ALL };
static const char *const ANCHOR_NAMES[] = {"CENTER",      "CENTER_LEFT", "CENTER_RIGHT",
                                           "TOP_CENTER",  "TOP_LEFT",    "TOP_RIGHT",
                                           "BOTTOM_LEFT", "BOTTOM_CENTER", "BOTTOM_RIGHT",
                                           "ALL",         NULL};

static void anchor_xy(const struct wf_det *d, int a, double *x, double *y)
{
    double cx = ((double)d->x1 + d->x2) / 2, cy = ((double)d->y1 + d->y2) / 2;
    switch (a) {
    case A_CENTER: *x = cx, *y = cy; break;
    case A_CENTER_LEFT: *x = d->x1, *y = cy; break;
    case A_CENTER_RIGHT: *x = d->x2, *y = cy; break;
    case A_TOP_CENTER: *x = cx, *y = d->y1; break;
    case A_TOP_LEFT: *x = d->x1, *y = d->y1; break;
    case A_TOP_RIGHT: *x = d->x2, *y = d->y1; break;
    case A_BOTTOM_LEFT: *x = d->x1, *y = d->y2; break;
    case A_BOTTOM_CENTER: *x = cx, *y = d->y2; break;
    default: *x = d->x2, *y = d->y2; break;
    }
}

static double dist2(const double *a, const double *b)
{
    return sqrt(pow(a[0] - b[0], 2) + pow(a[1] - b[1], 2));
}

/* Roboflow's extend_perspective_polygon; q holds bl, tl, tr, br. */
static int extend_quad(struct quad *q, const struct wf_dets *ds, int anchor, double *orig_w,
                       double *orig_h, double *ext_w, double *ext_h)
{
    double *bl = q->p[0], *tl = q->p[1], *tr = q->p[2], *br = q->p[3];
    *ext_w = *ext_h = 0;
    *orig_w = MAX(dist2(bl, br), dist2(tl, tr));
    *orig_h = MAX(dist2(bl, tl), dist2(br, tr));
    for (size_t i = 0; i < ds->n; i++) {
        const struct wf_det *d = &ds->d[i];
        /* side: left, right, bottom, top with their two ALL anchors */
        static const int side_anchors[4][2] = {{A_BOTTOM_LEFT, A_TOP_LEFT},
                                               {A_BOTTOM_RIGHT, A_TOP_RIGHT},
                                               {A_BOTTOM_RIGHT, A_BOTTOM_LEFT},
                                               {A_TOP_RIGHT, A_TOP_LEFT}};
        for (int side = 0; side < 4; side++) {
            int np = anchor == A_ALL ? 2 : 1;
            double pts[2][2];
            for (int k = 0; k < np; k++)
                anchor_xy(d, anchor == A_ALL ? side_anchors[side][k] : anchor, &pts[k][0],
                          &pts[k][1]);
            for (int k = 0; k < np; k++) {
                /* Roboflow passes float32 anchors */
                double x = (float)pts[k][0], y = (float)pts[k][1];
                if (point_in_quad(q, x, y))
                    continue;
                double o1[2], o2[2];
                int rc = 0;
                if (side == 0 && !ccw(bl, tl, x, y)) {
                    memcpy(o1, bl, sizeof o1);
                    rc = contain_point(bl, tl, br, tr, x, y);
                    *ext_w += dist2(bl, o1);
                } else if (side == 1 && !ccw(tr, br, x, y)) {
                    memcpy(o2, br, sizeof o2);
                    rc = contain_point(tr, br, tl, bl, x, y);
                    *ext_w += dist2(br, o2);
                } else if (side == 2 && !ccw(br, bl, x, y)) {
                    memcpy(o1, bl, sizeof o1);
                    rc = contain_point(br, bl, tr, tl, x, y);
                    *ext_h += dist2(bl, o1);
                } else if (side == 3 && !ccw(tl, tr, x, y)) {
                    memcpy(o1, tl, sizeof o1);
                    rc = contain_point(tl, tr, bl, br, x, y);
                    *ext_h += dist2(tl, o1);
                }
                if (rc < 0)
                    return rc;
            }
        }
    }
    return 0;
}

static int pc_move_det(struct wf_det *d, const double m[9])
{
    float xmin = FLT_MAX, ymin = FLT_MAX, xmax = -FLT_MAX, ymax = -FLT_MAX;
    if (d->has_mask && d->npoly > 0) {
        for (size_t k = 0; k < d->npoly; k++) {
            float x, y;
            cv__perspective_point(m, d->poly[k].x, d->poly[k].y, &x, &y);
            xmin = MIN(xmin, x), xmax = MAX(xmax, x), ymin = MIN(ymin, y), ymax = MAX(ymax, y);
            d->poly[k].x = (float)wf__round_half_even(x);
            d->poly[k].y = (float)wf__round_half_even(y);
        }
    } else {
        float bx0 = (float)wf__round_half_even(d->x1), by0 = (float)wf__round_half_even(d->y1);
        float bx1 = (float)wf__round_half_even(d->x2), by1 = (float)wf__round_half_even(d->y2);
        const float c[4][2] = {{bx0, by0}, {bx1, by0}, {bx1, by1}, {bx0, by1}};
        for (int k = 0; k < 4; k++) {
            float x, y;
            cv__perspective_point(m, c[k][0], c[k][1], &x, &y);
            xmin = MIN(xmin, x), xmax = MAX(xmax, x), ymin = MIN(ymin, y), ymax = MAX(ymax, y);
        }
    }
    d->x1 = (float)wf__round_half_even(xmin), d->y1 = (float)wf__round_half_even(ymin);
    d->x2 = (float)wf__round_half_even(xmax), d->y2 = (float)wf__round_half_even(ymax);
    for (size_t k = 0; k < d->nkp; k++) {
        float x, y;
        cv__perspective_point(m, d->kp[k].x, d->kp[k].y, &x, &y);
        d->kp[k].x = (float)wf__round_half_even(x), d->kp[k].y = (float)wf__round_half_even(y);
        if (!(fabsf(d->kp[k].x) <= 1e9f && fabsf(d->kp[k].y) <= 1e9f))
            return ERR_INVALID;
    }
    /* a point on the horizon line of the transform goes to infinity */
    if (!(fabsf(d->x1) <= 1e9f && fabsf(d->y1) <= 1e9f && fabsf(d->x2) <= 1e9f &&
          fabsf(d->y2) <= 1e9f))
        return ERR_INVALID;
    return 0;
}

static int pc_run(struct wf_call *c)
{
    size_t n = wf_call_n(c);
    for (size_t i = 0; i < n; i++) {
        const struct wf_image *im = wf_arg_image(c, i, "images");
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        const json_t *polys = wf_arg_json(c, i, "perspective_polygons");
        int64_t W = wf_arg_int(c, i, "transformed_rect_width", 1000);
        int64_t H = wf_arg_int(c, i, "transformed_rect_height", 1000);
        const char *anchor_s = wf_arg_str(c, i, "extend_perspective_polygon_by_detections_anchor");
        bool warp = wf_arg_bool(c, i, "warp_image", false);
        if (W < 1 || H < 1 || W > WARP_MAX_SIDE || H > WARP_MAX_SIDE)
            return wf_call_fail(c, "transformed_rect_width and transformed_rect_height must be "
                                   "in 1..%d, got %lld x %lld",
                                WARP_MAX_SIDE, (long long)W, (long long)H);
        int anchor = -1;
        if (anchor_s && *anchor_s) {
            for (int a = 0; ANCHOR_NAMES[a]; a++)
                if (!strcmp(ANCHOR_NAMES[a], anchor_s))
                    anchor = a;
            if (anchor < 0)
                return wf_call_fail(c,
                                    "extend_perspective_polygon_by_detections_anchor: '%.64s' is "
                                    "not one of CENTER, CENTER_LEFT, CENTER_RIGHT, TOP_CENTER, "
                                    "TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_CENTER, "
                                    "BOTTOM_RIGHT, ALL (CENTER_OF_MASS is not supported yet)",
                                    anchor_s);
        }
        /* A literal (or workflow parameter) is the whole batch's value as in
         * Roboflow: one polygon / list for every image, or one entry per image. */
        const json_t *elem = polys;
        if (!wf_arg_batched(c, "perspective_polygons") && json_is_array(polys) &&
            !is_quad(polys)) {
            size_t np = json_array_size(polys);
            if (np == 1)
                elem = json_array_get(polys, 0);
            else if (np == n)
                elem = json_array_get(polys, i);
            else
                return wf_call_fail(c,
                                    "batch size (%zu) does not match the number of perspective "
                                    "polygons (%zu)",
                                    n, np);
            if (json_is_array(elem) && json_array_size(elem) == 4 && !is_quad(elem) &&
                is_point(json_array_get(elem, 0)))
                return wf_call_fail(c, "perspective_polygons: malformed polygon");
        }
        struct quad q;
        if (pick_polygon(c, elem, &q) < 0)
            return ERR_INVALID;
        for (int k = 0; k < 4; k++)
            if (!isfinite(q.p[k][0]) || !isfinite(q.p[k][1]) || fabs(q.p[k][0]) > 1e7 ||
                fabs(q.p[k][1]) > 1e7)
                return wf_call_fail(c, "perspective_polygons: coordinates out of range");
        sort_clockwise_and_roll(&q);
        double ext_w = 0, ext_h = 0, orig_w = (double)W, orig_h = (double)H;
        if (ds && ds->n > 0 && anchor >= 0 &&
            extend_quad(&q, ds, anchor, &orig_w, &orig_h, &ext_w, &ext_h) < 0)
            return wf_call_fail(c, "cannot extend the perspective polygon to contain the "
                                   "detections (parallel or vertical sides)");
        ext_w = ext_w * (double)W / MAX(orig_w, 1);
        ext_h = ext_h * (double)H / MAX(orig_h, 1);
        double ew = wf__round_half_even(ext_w), eh = wf__round_half_even(ext_h);
        if (W + ew > WARP_MAX_SIDE || H + eh > WARP_MAX_SIDE)
            return wf_call_fail(c, "the extended rectangle (%.0f x %.0f) exceeds %d pixels a side",
                                (double)W + ew, (double)H + eh, WARP_MAX_SIDE);
        int ow = (int)(W + (int64_t)ew), oh = (int)(H + (int64_t)eh);
        float src[8], dst[8] = {0, (float)(oh - 1), 0, 0, (float)(ow - 1), 0, (float)(ow - 1),
                                (float)(oh - 1)};
        for (int k = 0; k < 4; k++)
            src[2 * k] = (float)q.p[k][0], src[2 * k + 1] = (float)q.p[k][1];
        double m[9];
        if (cv__perspective_matrix(src, dst, m) < 0)
            return wf_call_fail(c, "perspective polygon is degenerate (no perspective transform)");
        if (warp) {
            if ((int64_t)ow * oh > WARP_MAX_PIXELS)
                return wf_call_fail(c, "warped image %d x %d exceeds %d pixels", ow, oh,
                                    WARP_MAX_PIXELS);
            struct vis_image *px;
            int rc = cv__warp_perspective(im->img, m, ow, oh, &px);
            if (rc < 0)
                return wf_call_fail(c, "out of memory");
            wf_out_image(c, i, "warped_image", im, px);
        } else {
            wf_out_set(c, i, "warped_image", wf_value_ref((struct wf_value *)wf_arg(c, i, "images")));
        }
        if (ds) {
            struct wf_dets *cd = wf_dets_clone(ds);
            for (size_t k = 0; k < cd->n; k++)
                if (pc_move_det(&cd->d[k], m) < 0) {
                    wf_dets_free(cd);
                    return wf_call_fail(c, "detection %zu maps beyond the transformed plane "
                                           "(it crosses the polygon's horizon line)",
                                        k);
                }
            wf_out_dets(c, i, "corrected_coordinates", cd);
        }
        wf_out_json(c, i, "extended_transformed_rect_width", json_integer(ow));
        wf_out_json(c, i, "extended_transformed_rect_height", json_integer(oh));
    }
    return 0;
}

/* ---- camera-calibration ------------------------------------------------------------------- */

static int calib_run(struct wf_call *c)
{
    static const char *const names[] = {"fx", "fy", "cx", "cy", "k1", "k2", "k3", "p1", "p2"};
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        double v[9];
        for (int k = 0; k < 9; k++) {
            const struct wf_value *a = wf_arg(c, i, names[k]);
            if (wf_value_is_null(a))
                return wf_call_fail(c, "%s is required", names[k]);
            v[k] = wf_arg_double(c, i, names[k], NAN);
            if (!isfinite(v[k]) || fabs(v[k]) > 1e6)
                return wf_call_fail(c, "%s must be a finite number of magnitude at most 1e6",
                                    names[k]);
        }
        if (wf_arg_bool(c, i, "use_fisheye_model", false))
            return wf_call_fail(c, "use_fisheye_model is not supported yet");
        if (v[0] == 0 || v[1] == 0)
            return wf_call_fail(c, "fx and fy must not be 0");
        const double K[9] = {v[0], 0, v[2], 0, v[1], v[3], 0, 0, 1};
        const double dc[5] = {v[4], v[5], v[7], v[8], v[6]}; /* k1 k2 p1 p2 k3 */
        double nk[9];
        cv__optimal_camera_matrix(K, dc, im->img->w, im->img->h, nk);
        if (!isfinite(nk[0]) || !isfinite(nk[4]) || nk[0] == 0 || nk[4] == 0)
            return wf_call_fail(c, "the distortion maps the image to a degenerate rectangle");
        struct vis_image *px;
        int rc = cv__undistort(im->img, K, dc, nk, &px);
        if (rc < 0)
            return wf_call_fail(c, rc == ERR_NOMEM ? "out of memory" : "degenerate camera matrix");
        wf_out_image(c, i, "calibrated_image", im, px);
    }
    return 0;
}

/* ---- manifests --------------------------------------------------------------------------- */

static const struct wf_field pc_fields[] = {
    {"predictions", NULL, WF_FT_DETS, "null", WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY | WF_F_NULLABLE,
     NULL},
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"perspective_polygons", NULL, WF_FT_LIST, NULL, WF_K_LIST | WF_K_ZONE, 0, NULL},
    {"transformed_rect_width", NULL, WF_FT_INT, "1000", WF_K_INT, 0, NULL},
    {"transformed_rect_height", NULL, WF_FT_INT, "1000", WF_K_INT, 0, NULL},
    {"extend_perspective_polygon_by_detections_anchor", NULL, WF_FT_STRING, "\"\"", WF_K_STRING, 0,
     NULL},
    {"warp_image", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
};
static const struct wf_output pc_outs[] = {{"corrected_coordinates", WF_K_OD | WF_K_IS},
                                           {"warped_image", WF_K_IMAGE},
                                           {"extended_transformed_rect_width", WF_K_INT},
                                           {"extended_transformed_rect_height", WF_K_INT}};
TYPES(pc, "roboflow_core/perspective_correction@v1", "PerspectiveCorrection");
BLOCK(pc, pc_fields, pc_outs, pc_run);

#define CAL_F(name) {name, NULL, WF_FT_FLOAT, NULL, WF_K_FLOAT, WF_F_NULLABLE, NULL}
static const struct wf_field calib_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    CAL_F("fx"), CAL_F("fy"), CAL_F("cx"), CAL_F("cy"), CAL_F("k1"),
    CAL_F("k2"), CAL_F("k3"), CAL_F("p1"), CAL_F("p2"),
    {"use_fisheye_model", NULL, WF_FT_BOOL, "false", WF_K_BOOL, WF_F_NULLABLE, NULL},
};
static const struct wf_output calib_outs[] = {{"calibrated_image", WF_K_IMAGE}};
TYPES(calib, "roboflow_core/camera-calibration@v1");
BLOCK(calib, calib_fields, calib_outs, calib_run);

const struct wf_block *const wf_blocks_warp[] = {&calib, &pc, NULL};
