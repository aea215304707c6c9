/*
 * blocks/sift.c — SIFT keypoints and descriptors written after Lowe's paper
 * and OpenCV 4.6's defaults (cv2.SIFT_create(): 3 layers per octave,
 * contrast threshold 0.04, edge threshold 10, sigma 1.6, the image doubled
 * first), and the blocks that use them (roboflow/inference
 * classical_cv/sift/v1.py and sift_comparison/v1.py, v2.py, read, not
 * copied):
 *
 * - float32 gray (OpenCV 4's BGR2GRAY), doubled with bilinear weights
 *   (INTER_LINEAR_EXACT), blurred to sigma 1.6 assuming 0.5 of camera blur;
 *   octaves while the shorter side stays >= 8 (OpenCV's count), 6 Gaussian
 *   images each (incremental sigmas, kernels of 8 sigma + 1 taps,
 *   BORDER_REFLECT_101), the next octave taken every second pixel of layer 3;
 * - DoG extrema over the 26 neighbours beyond 5 pixels of the border with
 *   |value| > 1 (of 255); up to 5 steps of 3-D quadratic refinement;
 *   contrast |D| * 3 >= 0.04 and the principal-curvature ratio test;
 * - orientations: a 36-bin gradient histogram (radius 4.5 sigma, Gaussian
 *   weight 1.5 sigma, OpenCV's fastAtan2), smoothed [1 4 6 4 1] / 16, every
 *   peak >= 80 % of the highest with parabolic interpolation;
 * - descriptors: 4 x 4 x 8 trilinear histogram over a window of 3 sigma per
 *   cell, rotated to the keypoint, normalized, clipped at 0.2, renormalized
 *   and scaled by 512 into 0..255 (integers stored as floats, as OpenCV's);
 * - keypoints sorted and deduplicated as KeyPointsFilter::removeDuplicated
 *   Sorted, then moved back to the original scale.
 * Matching: exact k = 2 nearest neighbours in L2 (BFMatcher's answer;
 * FlannBasedMatcher's KD-trees approximate it) and Lowe's ratio test,
 * good when d1 < ratio * d2, as Roboflow's blocks.
 *
 * Departures: OpenCV's separable float filters sum in another order (SIMD),
 * so values differ in the last bits and a few extrema near a threshold
 * appear or vanish: keypoint counts agree within a few percent and the
 * keypoints found by both agree in position, size and angle (tests/unit/
 * test_workflow_sift.c measures it).  The keypoint circles of the
 * visualizations use one colour (OpenCV draws random colours).  The matcher
 * is always exact.  sift_comparison@v2's visualization_matches is
 * cv2.drawMatchesKnn's layout (both images side by side on black, the
 * taller's height; FlannBasedMatcher: every keypoint in red and the good
 * matches in green; BFMatcher: only the matches, each in the next colour of
 * OpenCV's RNG from a fresh thread's state — Roboflow's depend on the
 * process's earlier draws) drawn without anti-aliasing at whole pixels
 * (OpenCV: LINE_AA at 1/16 pixel).
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/wf_int.h"

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, fn)                                                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,        \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL}

#define S_LAYERS 3
#define S_SIGMA 1.6
#define S_CONTRAST 0.04f
#define S_EDGE 10.f
#define S_BORDER 5
#define S_MAX_STEPS 5
#define S_ORI_BINS 36
#define S_D 4
#define S_N 8
#define S_MAX_KEYPOINTS 200000
#define S_MAX_PIXELS (16 * 1000 * 1000)

struct fimg {
    int w, h;
    float *p;
};

static int fimg_new(struct fimg *f, int w, int h)
{
    f->w = w, f->h = h;
    f->p = calloc((size_t)w * (size_t)h, sizeof *f->p);
    return f->p ? 0 : ERR_NOMEM;
}

static inline int refl(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* cv2.GaussianBlur(src, (0, 0), sigma) of a float image into dst. */
static int gblur(const struct fimg *src, struct fimg *dst, double sigma)
{
    int ks = ((int)lrint(sigma * 4 * 2 + 1)) | 1, r = ks / 2;
    float *k = malloc((size_t)ks * sizeof *k), *tmp = malloc((size_t)src->w * src->h * sizeof *tmp);
    double sum = 0;
    if (!k || !tmp || fimg_new(dst, src->w, src->h) < 0) {
        free(k), free(tmp);
        return ERR_NOMEM;
    }
    for (int i = 0; i < ks; i++) { /* getGaussianKernel(CV_32F) */
        double x = i - (ks - 1) * 0.5;
        k[i] = (float)exp(-0.5 / (sigma * sigma) * x * x);
        sum += k[i];
    }
    float scale = (float)(1. / sum);
    for (int i = 0; i < ks; i++)
        k[i] *= scale;
    int w = src->w, h = src->h;
    int *xi = malloc((size_t)(w + 2 * r) * sizeof *xi);
    if (!xi) {
        free(k), free(tmp), free(dst->p);
        return ERR_NOMEM;
    }
    for (int x = -r; x < w + r; x++)
        xi[x + r] = refl(x, w);
    for (int y = 0; y < h; y++) {
        const float *s = src->p + (size_t)y * w;
        float *t = tmp + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            float a = 0;
            for (int j = 0; j < ks; j++)
                a += k[j] * s[xi[x + j]];
            t[x] = a;
        }
    }
    for (int y = 0; y < h; y++) {
        float *d = dst->p + (size_t)y * w;
        for (int x = 0; x < w; x++)
            d[x] = 0;
        for (int j = 0; j < ks; j++) {
            const float *t = tmp + (size_t)refl(y + j - r, h) * w;
            float kj = k[j];
            for (int x = 0; x < w; x++)
                d[x] += kj * t[x];
        }
    }
    free(xi), free(k), free(tmp);
    return 0;
}

/* OpenCV's fastAtan2 in degrees, 0..360. */
static float fast_atan2(float y, float x)
{
    static const float p1 = 0.9997878412794807f * 57.29577951308232f,
                       p3 = -0.3258083974640975f * 57.29577951308232f,
                       p5 = 0.1555786518463281f * 57.29577951308232f,
                       p7 = -0.04432655554792128f * 57.29577951308232f;
    float ax = fabsf(x), ay = fabsf(y), a, c, c2;
    if (ax >= ay) {
        c = ay / (ax + (float)DBL_EPSILON);
        c2 = c * c;
        a = (((p7 * c2 + p5) * c2 + p3) * c2 + p1) * c;
    } else {
        c = ax / (ay + (float)DBL_EPSILON);
        c2 = c * c;
        a = 90.f - (((p7 * c2 + p5) * c2 + p3) * c2 + p1) * c;
    }
    if (x < 0)
        a = 180.f - a;
    if (y < 0)
        a = 360.f - a;
    return a;
}

struct pyr {
    int noct;
    struct fimg *g; /* noct * (S_LAYERS + 3) */
    struct fimg *d; /* noct * (S_LAYERS + 2) */
};

static void pyr_free(struct pyr *p)
{
    for (int i = 0; p->g && i < p->noct * (S_LAYERS + 3); i++)
        free(p->g[i].p);
    for (int i = 0; p->d && i < p->noct * (S_LAYERS + 2); i++)
        free(p->d[i].p);
    free(p->g), free(p->d);
}

static int pyr_build(const struct vis_image *img, struct pyr *P)
{
    memset(P, 0, sizeof *P);
    struct vis_image *gray = cv__gray(img);
    if (!gray)
        return ERR_NOMEM;
    int w = gray->w, h = gray->h, W = 2 * w, H = 2 * h;
    struct fimg base, up;
    if (fimg_new(&up, W, H) < 0) {
        vis_image_free(gray);
        return ERR_NOMEM;
    }
    /* INTER_LINEAR_EXACT x2: source (x + 0.5) / 2 - 0.5, clamped */
    for (int y = 0; y < H; y++) {
        double sy = (y + 0.5) / 2 - 0.5;
        int y0 = (int)floor(sy);
        float fy = (float)(sy - y0);
        int ya = MIN(MAX(y0, 0), h - 1), yb = MIN(MAX(y0 + 1, 0), h - 1);
        for (int x = 0; x < W; x++) {
            double sx = (x + 0.5) / 2 - 0.5;
            int x0 = (int)floor(sx);
            float fx = (float)(sx - x0);
            int xa = MIN(MAX(x0, 0), w - 1), xb = MIN(MAX(x0 + 1, 0), w - 1);
            float a = vis_px(gray, xa, ya)[0], b = vis_px(gray, xb, ya)[0];
            float c = vis_px(gray, xa, yb)[0], d = vis_px(gray, xb, yb)[0];
            up.p[(size_t)y * W + x] = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy;
        }
    }
    vis_image_free(gray);
    double sig_diff = sqrtf(MAX(1.6f * 1.6f - 0.5f * 0.5f * 4, 0.01f));
    int rc = gblur(&up, &base, sig_diff);
    free(up.p);
    if (rc < 0)
        return rc;
    int noct = (int)lrint(log((double)MIN(W, H)) / log(2.) - 2) + 1;
    if (noct < 1) {
        free(base.p);
        return ERR_INVALID;
    }
    P->noct = noct;
    P->g = calloc((size_t)noct * (S_LAYERS + 3), sizeof *P->g);
    P->d = calloc((size_t)noct * (S_LAYERS + 2), sizeof *P->d);
    if (!P->g || !P->d) {
        free(base.p);
        return ERR_NOMEM;
    }
    double sig[S_LAYERS + 3], k = pow(2., 1. / S_LAYERS);
    sig[0] = S_SIGMA;
    for (int i = 1; i < S_LAYERS + 3; i++) {
        double prev = pow(k, (double)(i - 1)) * S_SIGMA, total = prev * k;
        sig[i] = sqrt(total * total - prev * prev);
    }
    for (int o = 0; o < noct; o++)
        for (int i = 0; i < S_LAYERS + 3; i++) {
            struct fimg *dst = &P->g[o * (S_LAYERS + 3) + i];
            if (o == 0 && i == 0) {
                *dst = base;
            } else if (i == 0) {
                const struct fimg *src = &P->g[(o - 1) * (S_LAYERS + 3) + S_LAYERS];
                if (fimg_new(dst, src->w / 2, src->h / 2) < 0)
                    return ERR_NOMEM;
                for (int y = 0; y < dst->h; y++)
                    for (int x = 0; x < dst->w; x++)
                        dst->p[(size_t)y * dst->w + x] = src->p[(size_t)(2 * y) * src->w + 2 * x];
            } else if ((rc = gblur(&P->g[o * (S_LAYERS + 3) + i - 1], dst, sig[i])) < 0) {
                return rc;
            }
        }
    for (int o = 0; o < noct; o++)
        for (int i = 0; i < S_LAYERS + 2; i++) {
            const struct fimg *a = &P->g[o * (S_LAYERS + 3) + i], *b = a + 1;
            struct fimg *d = &P->d[o * (S_LAYERS + 2) + i];
            if (fimg_new(d, a->w, a->h) < 0)
                return ERR_NOMEM;
            for (size_t q = 0; q < (size_t)a->w * a->h; q++)
                d->p[q] = b->p[q] - a->p[q];
        }
    return 0;
}

static inline float at(const struct fimg *f, int r, int c) { return f->p[(size_t)r * f->w + c]; }

/* 3x3 solve by Gaussian elimination with partial pivoting; false if singular. */
static bool solve3(double A[3][3], double b[3], double x[3])
{
    for (int i = 0; i < 3; i++) {
        int k = i;
        for (int j = i + 1; j < 3; j++)
            if (fabs(A[j][i]) > fabs(A[k][i]))
                k = j;
        if (fabs(A[k][i]) < DBL_EPSILON * 100)
            return false;
        if (k != i) {
            for (int j = 0; j < 3; j++) {
                double t = A[i][j];
                A[i][j] = A[k][j], A[k][j] = t;
            }
            double t = b[i];
            b[i] = b[k], b[k] = t;
        }
        for (int j = i + 1; j < 3; j++) {
            double f = A[j][i] / A[i][i];
            for (int q = i; q < 3; q++)
                A[j][q] -= f * A[i][q];
            b[j] -= f * b[i];
        }
    }
    for (int i = 2; i >= 0; i--) {
        double s = b[i];
        for (int q = i + 1; q < 3; q++)
            s -= A[i][q] * x[q];
        x[i] = s / A[i][i];
    }
    return true;
}

struct kpbuf {
    struct cv_keypoint *k;
    size_t n, cap;
};

static int kp_push(struct kpbuf *b, const struct cv_keypoint *k)
{
    if (b->n >= S_MAX_KEYPOINTS)
        return ERR_LIMIT;
    if (b->n == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 256;
        struct cv_keypoint *nk = realloc(b->k, nc * sizeof *nk);
        if (!nk)
            return ERR_NOMEM;
        b->k = nk, b->cap = nc;
    }
    b->k[b->n++] = *k;
    return 0;
}

static float ori_hist(const struct fimg *img, int px, int py, int radius, float sigma, float *hist)
{
    float temp[S_ORI_BINS + 4] = {0}, *th = temp + 2, expf_scale = -1.f / (2.f * sigma * sigma);
    for (int i = -radius; i <= radius; i++) {
        int y = py + i;
        if (y <= 0 || y >= img->h - 1)
            continue;
        for (int j = -radius; j <= radius; j++) {
            int x = px + j;
            if (x <= 0 || x >= img->w - 1)
                continue;
            float dx = at(img, y, x + 1) - at(img, y, x - 1);
            float dy = at(img, y - 1, x) - at(img, y + 1, x);
            float wgt = expf((float)(i * i + j * j) * expf_scale);
            float ori = fast_atan2(dy, dx), mag = sqrtf(dx * dx + dy * dy);
            int bin = (int)lrintf((S_ORI_BINS / 360.f) * ori);
            if (bin >= S_ORI_BINS)
                bin -= S_ORI_BINS;
            if (bin < 0)
                bin += S_ORI_BINS;
            th[bin] += wgt * mag;
        }
    }
    th[-1] = th[S_ORI_BINS - 1], th[-2] = th[S_ORI_BINS - 2];
    th[S_ORI_BINS] = th[0], th[S_ORI_BINS + 1] = th[1];
    float mx = 0;
    for (int i = 0; i < S_ORI_BINS; i++) {
        hist[i] = (th[i - 2] + th[i + 2]) * (1.f / 16.f) + (th[i - 1] + th[i + 1]) * (4.f / 16.f) +
                  th[i] * (6.f / 16.f);
        mx = MAX(mx, hist[i]);
    }
    return mx;
}

static int find_extrema(const struct pyr *P, struct kpbuf *out)
{
    const float thr = floorf(0.5f * S_CONTRAST / S_LAYERS * 255.f);
    const float img_scale = 1.f / 255.f, deriv = img_scale * 0.5f, second = img_scale,
                cross = img_scale * 0.25f;
    for (int o = 0; o < P->noct; o++)
        for (int i = 1; i <= S_LAYERS; i++) {
            const struct fimg *cur = &P->d[o * (S_LAYERS + 2) + i];
            int w = cur->w, h = cur->h;
            for (int r = S_BORDER; r < h - S_BORDER; r++)
                for (int c = S_BORDER; c < w - S_BORDER; c++) {
                    float val = at(cur, r, c);
                    if (!(fabsf(val) > thr))
                        continue;
                    bool ismax = val > 0, ismin = val < 0;
                    for (int l = -1; l <= 1 && (ismax || ismin); l++) {
                        const struct fimg *d = cur + l;
                        for (int dy = -1; dy <= 1; dy++)
                            for (int dx = -1; dx <= 1; dx++) {
                                float v = at(d, r + dy, c + dx);
                                if (v > val)
                                    ismax = false;
                                if (v < val)
                                    ismin = false;
                            }
                    }
                    if (!ismax && !ismin)
                        continue;
                    /* adjustLocalExtrema */
                    int layer = i, rr = r, cc = c, step;
                    float xi = 0, xr = 0, xc = 0, contr = 0;
                    double X[3] = {0};
                    float dD[3] = {0};
                    for (step = 0; step < S_MAX_STEPS; step++) {
                        const struct fimg *img = &P->d[o * (S_LAYERS + 2) + layer], *prv = img - 1,
                                          *nxt = img + 1;
                        dD[0] = (at(img, rr, cc + 1) - at(img, rr, cc - 1)) * deriv;
                        dD[1] = (at(img, rr + 1, cc) - at(img, rr - 1, cc)) * deriv;
                        dD[2] = (at(nxt, rr, cc) - at(prv, rr, cc)) * deriv;
                        float v2 = at(img, rr, cc) * 2;
                        float dxx = (at(img, rr, cc + 1) + at(img, rr, cc - 1) - v2) * second;
                        float dyy = (at(img, rr + 1, cc) + at(img, rr - 1, cc) - v2) * second;
                        float dss = (at(nxt, rr, cc) + at(prv, rr, cc) - v2) * second;
                        float dxy = (at(img, rr + 1, cc + 1) - at(img, rr + 1, cc - 1) -
                                     at(img, rr - 1, cc + 1) + at(img, rr - 1, cc - 1)) *
                                    cross;
                        float dxs = (at(nxt, rr, cc + 1) - at(nxt, rr, cc - 1) -
                                     at(prv, rr, cc + 1) + at(prv, rr, cc - 1)) *
                                    cross;
                        float dys = (at(nxt, rr + 1, cc) - at(nxt, rr - 1, cc) -
                                     at(prv, rr + 1, cc) + at(prv, rr - 1, cc)) *
                                    cross;
                        double Hm[3][3] = {{dxx, dxy, dxs}, {dxy, dyy, dys}, {dxs, dys, dss}};
                        double bb[3] = {dD[0], dD[1], dD[2]};
                        if (!solve3(Hm, bb, X))
                            X[0] = X[1] = X[2] = 0;
                        xi = (float)-X[2], xr = (float)-X[1], xc = (float)-X[0];
                        if (fabsf(xi) < 0.5f && fabsf(xr) < 0.5f && fabsf(xc) < 0.5f)
                            break;
                        if (fabsf(xi) > (float)(INT_MAX / 3) || fabsf(xr) > (float)(INT_MAX / 3) ||
                            fabsf(xc) > (float)(INT_MAX / 3)) {
                            step = S_MAX_STEPS;
                            break;
                        }
                        cc += (int)lrintf(xc);
                        rr += (int)lrintf(xr);
                        layer += (int)lrintf(xi);
                        if (layer < 1 || layer > S_LAYERS || cc < S_BORDER || cc >= w - S_BORDER ||
                            rr < S_BORDER || rr >= h - S_BORDER) {
                            step = S_MAX_STEPS;
                            break;
                        }
                    }
                    if (step >= S_MAX_STEPS)
                        continue;
                    {
                        const struct fimg *img = &P->d[o * (S_LAYERS + 2) + layer];
                        float t = dD[0] * xc + dD[1] * xr + dD[2] * xi;
                        contr = at(img, rr, cc) * img_scale + t * 0.5f;
                        if (fabsf(contr) * S_LAYERS < S_CONTRAST)
                            continue;
                        float v2 = at(img, rr, cc) * 2.f;
                        float dxx = (at(img, rr, cc + 1) + at(img, rr, cc - 1) - v2) * second;
                        float dyy = (at(img, rr + 1, cc) + at(img, rr - 1, cc) - v2) * second;
                        float dxy = (at(img, rr + 1, cc + 1) - at(img, rr + 1, cc - 1) -
                                     at(img, rr - 1, cc + 1) + at(img, rr - 1, cc - 1)) *
                                    cross;
                        float tr = dxx + dyy, det = dxx * dyy - dxy * dxy;
                        if (det <= 0 || tr * tr * S_EDGE >= (S_EDGE + 1) * (S_EDGE + 1) * det)
                            continue;
                    }
                    struct cv_keypoint kp;
                    kp.x = (cc + xc) * (float)(1 << o);
                    kp.y = (rr + xr) * (float)(1 << o);
                    kp.octave = o + (layer << 8) + ((int)lrintf((xi + 0.5f) * 255.f) << 16);
                    kp.size = (float)S_SIGMA * powf(2.f, (layer + xi) / S_LAYERS) * (float)(1 << o) * 2;
                    kp.response = fabsf(contr);
                    /* orientations */
                    float scl = kp.size * 0.5f / (float)(1 << o), hist[S_ORI_BINS];
                    float omax = ori_hist(&P->g[o * (S_LAYERS + 3) + layer], cc, rr,
                                          (int)lrintf(3 * 1.5f * scl), 1.5f * scl, hist);
                    float mthr = omax * 0.8f;
                    for (int j = 0; j < S_ORI_BINS; j++) {
                        int l = j > 0 ? j - 1 : S_ORI_BINS - 1, rgt = j < S_ORI_BINS - 1 ? j + 1 : 0;
                        if (hist[j] > hist[l] && hist[j] > hist[rgt] && hist[j] >= mthr) {
                            float bin = j + 0.5f * (hist[l] - hist[rgt]) /
                                                (hist[l] - 2 * hist[j] + hist[rgt]);
                            bin = bin < 0 ? S_ORI_BINS + bin : bin >= S_ORI_BINS ? bin - S_ORI_BINS : bin;
                            kp.angle = 360.f - (360.f / S_ORI_BINS) * bin;
                            if (fabsf(kp.angle - 360.f) < FLT_EPSILON)
                                kp.angle = 0.f;
                            int rc = kp_push(out, &kp);
                            if (rc < 0)
                                return rc;
                        }
                    }
                }
        }
    return 0;
}

static int kp_cmp(const void *a, const void *b)
{
    const struct cv_keypoint *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    if (p->y != q->y)
        return p->y < q->y ? -1 : 1;
    if (p->size != q->size)
        return p->size > q->size ? -1 : 1;
    if (p->angle != q->angle)
        return p->angle < q->angle ? -1 : 1;
    if (p->response != q->response)
        return p->response > q->response ? -1 : 1;
    if (p->octave != q->octave)
        return p->octave > q->octave ? -1 : 1;
    return 0;
}

static void descriptor(const struct fimg *img, float ptx, float pty, float ori, float scl, float *dst)
{
    enum { HN = (S_D + 2) * (S_D + 2) * (S_N + 2) };
    float hist[HN] = {0};
    int px = (int)lrintf(ptx), py = (int)lrintf(pty);
    float cos_t = cosf(ori * (float)(M_PI / 180)), sin_t = sinf(ori * (float)(M_PI / 180));
    float bins_per_rad = S_N / 360.f, exp_scale = -1.f / (S_D * S_D * 0.5f);
    float hist_width = 3.f * scl;
    int radius = (int)lrintf(hist_width * 1.4142135623730951f * (S_D + 1) * 0.5f);
    radius = MIN(radius, (int)sqrt((double)img->w * img->w + (double)img->h * img->h));
    cos_t /= hist_width, sin_t /= hist_width;
    for (int i = -radius; i <= radius; i++)
        for (int j = -radius; j <= radius; j++) {
            float c_rot = j * cos_t - i * sin_t, r_rot = j * sin_t + i * cos_t;
            float rbin = r_rot + S_D / 2 - 0.5f, cbin = c_rot + S_D / 2 - 0.5f;
            int r = py + i, c = px + j;
            if (!(rbin > -1 && rbin < S_D && cbin > -1 && cbin < S_D && r > 0 && r < img->h - 1 &&
                  c > 0 && c < img->w - 1))
                continue;
            float dx = at(img, r, c + 1) - at(img, r, c - 1), dy = at(img, r - 1, c) - at(img, r + 1, c);
            float W = expf((c_rot * c_rot + r_rot * r_rot) * exp_scale);
            float obin = (fast_atan2(dy, dx) - ori) * bins_per_rad;
            float mag = sqrtf(dx * dx + dy * dy) * W;
            int r0 = (int)floorf(rbin), c0 = (int)floorf(cbin), o0 = (int)floorf(obin);
            rbin -= r0, cbin -= c0, obin -= o0;
            if (o0 < 0)
                o0 += S_N;
            if (o0 >= S_N)
                o0 -= S_N;
            float v_r1 = mag * rbin, v_r0 = mag - v_r1;
            float v_rc11 = v_r1 * cbin, v_rc10 = v_r1 - v_rc11;
            float v_rc01 = v_r0 * cbin, v_rc00 = v_r0 - v_rc01;
            float v111 = v_rc11 * obin, v110 = v_rc11 - v111;
            float v101 = v_rc10 * obin, v100 = v_rc10 - v101;
            float v011 = v_rc01 * obin, v010 = v_rc01 - v011;
            float v001 = v_rc00 * obin, v000 = v_rc00 - v001;
            int idx = ((r0 + 1) * (S_D + 2) + c0 + 1) * (S_N + 2) + o0;
            hist[idx] += v000;
            hist[idx + 1] += v001;
            hist[idx + (S_N + 2)] += v010;
            hist[idx + (S_N + 3)] += v011;
            hist[idx + (S_D + 2) * (S_N + 2)] += v100;
            hist[idx + (S_D + 2) * (S_N + 2) + 1] += v101;
            hist[idx + (S_D + 3) * (S_N + 2)] += v110;
            hist[idx + (S_D + 3) * (S_N + 2) + 1] += v111;
        }
    for (int i = 0; i < S_D; i++)
        for (int j = 0; j < S_D; j++) {
            int idx = ((i + 1) * (S_D + 2) + (j + 1)) * (S_N + 2);
            hist[idx] += hist[idx + S_N];
            hist[idx + 1] += hist[idx + S_N + 1];
            for (int k = 0; k < S_N; k++)
                dst[(i * S_D + j) * S_N + k] = hist[idx + k];
        }
    int len = S_D * S_D * S_N;
    float nrm2 = 0;
    for (int k = 0; k < len; k++)
        nrm2 += dst[k] * dst[k];
    float thr = sqrtf(nrm2) * 0.2f;
    nrm2 = 0;
    for (int k = 0; k < len; k++) {
        dst[k] = MIN(dst[k], thr);
        nrm2 += dst[k] * dst[k];
    }
    nrm2 = 512.f / MAX(sqrtf(nrm2), FLT_EPSILON);
    for (int k = 0; k < len; k++) {
        long v = lrintf(dst[k] * nrm2);
        dst[k] = (float)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

int cv__sift(const struct vis_image *img, struct cv_keypoint **kps, float **desc, size_t *n)
{
    *kps = NULL, *desc = NULL, *n = 0;
    if ((int64_t)img->w * img->h > S_MAX_PIXELS / 4) /* the doubled image <= 16 Mpixel */
        return ERR_LIMIT;
    struct pyr P;
    int rc = pyr_build(img, &P);
    struct kpbuf kb = {0};
    if (rc == 0)
        rc = find_extrema(&P, &kb);
    if (rc < 0) {
        pyr_free(&P);
        free(kb.k);
        return rc;
    }
    if (kb.n)
        qsort(kb.k, kb.n, sizeof *kb.k, kp_cmp);
    size_t m = 0; /* removeDuplicatedSorted: same point, size and angle */
    for (size_t i = 0; i < kb.n; i++)
        if (!m || kb.k[i].x != kb.k[m - 1].x || kb.k[i].y != kb.k[m - 1].y ||
            kb.k[i].size != kb.k[m - 1].size || kb.k[i].angle != kb.k[m - 1].angle)
            kb.k[m++] = kb.k[i];
    float *d = m ? malloc(m * 128 * sizeof *d) : NULL;
    if (m && !d) {
        pyr_free(&P);
        free(kb.k);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < m; i++) {
        struct cv_keypoint *k = &kb.k[i];
        int octave = k->octave & 255, layer = (k->octave >> 8) & 255;
        float scale = 1.f / (float)(1 << octave);
        float ang = 360.f - k->angle;
        if (fabsf(ang - 360.f) < FLT_EPSILON)
            ang = 0.f;
        descriptor(&P.g[octave * (S_LAYERS + 3) + layer], k->x * scale, k->y * scale, ang,
                   k->size * scale * 0.5f, d + i * 128);
        /* back to the input's scale (first octave -1) */
        k->octave = (k->octave & ~255) | ((k->octave - 1) & 255);
        k->x *= 0.5f, k->y *= 0.5f, k->size *= 0.5f;
    }
    pyr_free(&P);
    *kps = kb.k, *desc = d, *n = m;
    return 0;
}

size_t cv__ratio_match_pairs(const float *d1, size_t n1, const float *d2, size_t n2, double ratio, size_t *pairs)
{
    size_t good = 0;
    if (n2 < 2)
        return 0;
    for (size_t i = 0; i < n1; i++) {
        double b1 = INFINITY, b2 = INFINITY;
        size_t j1 = 0;
        for (size_t j = 0; j < n2; j++) {
            double s = 0;
            const float *a = d1 + i * 128, *b = d2 + j * 128;
            for (int k = 0; k < 128; k++) {
                double t = (double)a[k] - b[k];
                s += t * t;
            }
            if (s < b1)
                b2 = b1, b1 = s, j1 = j;
            else if (s < b2)
                b2 = s;
        }
        if (sqrt(b1) < ratio * sqrt(b2)) {
            if (pairs)
                pairs[2 * good] = i, pairs[2 * good + 1] = j1;
            good++;
        }
    }
    return good;
}

size_t cv__ratio_matches(const float *d1, size_t n1, const float *d2, size_t n2, double ratio)
{
    return cv__ratio_match_pairs(d1, n1, d2, n2, ratio, NULL);
}

/* OpenCV's RNG (cv::RNG, multiply-with-carry): a fresh thread's state. */
static unsigned cv_rng_next(uint64_t *st)
{
    *st = (uint64_t)(unsigned)*st * 4164903690u + (unsigned)(*st >> 32);
    return (unsigned)*st;
}

struct vis_image *cv__draw_matches(const struct vis_image *a, const struct cv_keypoint *k1, size_t n1,
                                   const struct vis_image *b, const struct cv_keypoint *k2, size_t n2,
                                   const size_t *pairs, size_t np, bool flann)
{
    struct vis_image *ca = NULL, *cb = NULL, *out = NULL;
    if ((long long)a->w + b->w > 1000000 || (a->fmt == VIS_BGR ? !(ca = vis_image_clone(a)) : vis_convert(a, VIS_BGR, &ca) < 0) ||
        (b->fmt == VIS_BGR ? !(cb = vis_image_clone(b)) : vis_convert(b, VIS_BGR, &cb) < 0) ||
        !(out = vis_image_new(a->w + b->w, a->h > b->h ? a->h : b->h, VIS_BGR))) {
        vis_image_free(ca), vis_image_free(cb);
        return NULL;
    }
    vis_image_fill(out, VIS_RGB(0, 0, 0));
    vis_image_paste(out, ca, 0, 0);
    vis_image_paste(out, cb, a->w, 0);
    vis_image_free(ca), vis_image_free(cb);
    struct vis_image left, right;
    vis_image_view(out, 0, 0, a->w, a->h, &left);
    vis_image_view(out, a->w, 0, b->w, b->h, &right);
    if (flann) { /* DrawMatchesFlags_DEFAULT: every keypoint in singlePointColor */
        for (size_t i = 0; i < n1; i++)
            vis_draw_circle(&left, (int)lrintf(k1[i].x), (int)lrintf(k1[i].y), 3, VIS_RGB(255, 0, 0), 1);
        for (size_t i = 0; i < n2; i++)
            vis_draw_circle(&right, (int)lrintf(k2[i].x), (int)lrintf(k2[i].y), 3, VIS_RGB(255, 0, 0), 1);
    }
    uint64_t rng = 0xffffffffu;
    for (size_t m = 0; m < np; m++) {
        const struct cv_keypoint *p = &k1[pairs[2 * m]], *q = &k2[pairs[2 * m + 1]];
        struct vis_color col = VIS_RGB(0, 255, 0);
        if (!flann) { /* matchColor Scalar::all(-1): Scalar(rng(256), rng(256), rng(256)),
                         * the arguments evaluated right to left (GCC, as the build of
                         * python3-opencv draws them) */
            col.r = (uint8_t)(cv_rng_next(&rng) % 256u);
            col.g = (uint8_t)(cv_rng_next(&rng) % 256u);
            col.b = (uint8_t)(cv_rng_next(&rng) % 256u);
        }
        vis_draw_circle(&left, (int)lrintf(p->x), (int)lrintf(p->y), 3, col, 1);
        vis_draw_circle(&right, (int)lrintf(q->x), (int)lrintf(q->y), 3, col, 1);
        float x2 = fminf(q->x + (float)a->w, (float)(out->w - 1));
        vis_draw_line(out, (int)lrintf(p->x), (int)lrintf(p->y), (int)lrintf(x2), (int)lrintf(q->y), col, 1);
    }
    return out;
}

/* ---- blocks ------------------------------------------------------------------------------- */

static json_t *kps_json(const struct cv_keypoint *k, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:[o,o],s:o,s:o,s:o,s:i,s:i}", "pt", wf__real(k[i].x),
                         wf__real(k[i].y), "size", wf__real(k[i].size), "angle",
                         wf__real(k[i].angle), "response", wf__real(k[i].response), "octave",
                         k[i].octave, "class_id", -1));
    return a;
}

static json_t *desc_json(const float *d, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array();
        for (int k = 0; k < 128; k++)
            json_array_append_new(r, json_real(d[i * 128 + k]));
        json_array_append_new(a, r);
    }
    return a;
}

/* Descriptors from a JSON list of 128-number lists; ERR_INVALID otherwise. */
static int desc_from_json(const json_t *j, float **d, size_t *n)
{
    *d = NULL, *n = 0;
    if (!json_is_array(j))
        return ERR_INVALID;
    size_t m = json_array_size(j);
    if (m > S_MAX_KEYPOINTS)
        return ERR_LIMIT;
    float *o = malloc((m ? m : 1) * 128 * sizeof *o);
    if (!o)
        return ERR_NOMEM;
    for (size_t i = 0; i < m; i++) {
        const json_t *r = json_array_get(j, i);
        if (!json_is_array(r) || json_array_size(r) != 128) {
            free(o);
            return ERR_INVALID;
        }
        for (size_t k = 0; k < 128; k++) {
            const json_t *v = json_array_get(r, k);
            if (!json_is_number(v)) {
                free(o);
                return ERR_INVALID;
            }
            o[i * 128 + k] = (float)json_number_value(v);
        }
    }
    *d = o, *n = m;
    return 0;
}

/* cv2.drawKeypoints(gray, kp): the gray image as BGR with a radius-3 circle
 * per keypoint (one colour here). */
static struct vis_image *draw_kps(const struct vis_image *img, const struct cv_keypoint *k,
                                  size_t n)
{
    struct vis_image *g = cv__gray(img), *out = NULL;
    if (!g)
        return NULL;
    vis_convert(g, VIS_BGR, &out);
    vis_image_free(g);
    for (size_t i = 0; out && i < n; i++)
        vis_draw_circle(out, (int)lrintf(k[i].x), (int)lrintf(k[i].y), 3, VIS_RGB(0, 255, 0), 1);
    return out;
}

static int sift_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        struct cv_keypoint *k;
        float *d;
        size_t n;
        int rc = cv__sift(im->img, &k, &d, &n);
        if (rc < 0)
            return wf_call_fail(c, rc == ERR_LIMIT ? "image too large for SIFT (16 Mpixel) or too "
                                                     "many keypoints"
                                : rc == ERR_INVALID ? "image too small for SIFT"
                                                    : "out of memory");
        struct vis_image *px = draw_kps(im->img, k, n);
        if (px)
            wf_out_image(c, i, "image", im, px);
        wf_out_json(c, i, "keypoints", kps_json(k, n));
        /* OpenCV returns None for the descriptors of no keypoints */
        wf_out_json(c, i, "descriptors", n ? desc_json(d, n) : json_null());
        free(k), free(d);
    }
    return 0;
}

static int cmp1_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        float *d1, *d2;
        size_t n1, n2;
        int64_t thr = wf_arg_int(c, i, "good_matches_threshold", 50);
        double ratio = wf_arg_double(c, i, "ratio_threshold", 0.7);
        if (desc_from_json(wf_arg_json(c, i, "descriptor_1"), &d1, &n1) < 0)
            return wf_call_fail(c, "descriptor_1: expected a list of 128-number descriptors "
                                   "(at most %d)",
                                S_MAX_KEYPOINTS);
        if (desc_from_json(wf_arg_json(c, i, "descriptor_2"), &d2, &n2) < 0) {
            free(d1);
            return wf_call_fail(c, "descriptor_2: expected a list of 128-number descriptors "
                                   "(at most %d)",
                                S_MAX_KEYPOINTS);
        }
        if ((double)n1 * (double)n2 > 1e9) {
            free(d1), free(d2);
            return wf_call_fail(c, "too many descriptor pairs (%zu x %zu)", n1, n2);
        }
        size_t good = n1 >= 2 && n2 >= 2 ? cv__ratio_matches(d1, n1, d2, n2, ratio) : 0;
        free(d1), free(d2);
        wf_out_json(c, i, "good_matches_count", json_integer((json_int_t)good));
        wf_out_json(c, i, "images_match", json_boolean((int64_t)good >= thr));
    }
    return 0;
}

static int cmp2_side(struct wf_call *c, size_t i, const char *field, int side, bool vis,
                     float **d, size_t *n, struct cv_keypoint **kout)
{
    const struct wf_image *im = wf_arg_image(c, i, field);
    char kn[32], dn[32], vn[32];
    snprintf(kn, sizeof kn, "keypoints_%d", side);
    snprintf(dn, sizeof dn, "descriptors_%d", side);
    snprintf(vn, sizeof vn, "visualization_%d", side);
    if (!im) {
        if (desc_from_json(wf_arg_json(c, i, field), d, n) < 0)
            return wf_call_fail(c, "%s: expected an image or a list of 128-number descriptors",
                                field);
        wf_out_json(c, i, dn, json_incref((json_t *)wf_arg_json(c, i, field)));
        return 0;
    }
    struct cv_keypoint *k;
    int rc = cv__sift(im->img, &k, d, n);
    if (rc < 0)
        return wf_call_fail(c, "%s: %s", field,
                            rc == ERR_LIMIT ? "image too large for SIFT or too many keypoints"
                            : rc == ERR_INVALID ? "image too small for SIFT"
                                                : "out of memory");
    wf_out_json(c, i, kn, kps_json(k, *n));
    wf_out_json(c, i, dn, desc_json(*d, *n));
    if (vis) {
        struct vis_image *px = draw_kps(im->img, k, *n);
        if (px)
            wf_out_image(c, i, vn, im, px);
    }
    *kout = k;
    return 0;
}

static int cmp2_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        float *d1 = NULL, *d2 = NULL;
        size_t n1 = 0, n2 = 0;
        int64_t thr = wf_arg_int(c, i, "good_matches_threshold", 50);
        double ratio = wf_arg_double(c, i, "ratio_threshold", 0.7);
        const char *matcher = wf_arg_str(c, i, "matcher");
        bool vis = wf_arg_bool(c, i, "visualize", false);
        if (!matcher || (strcmp(matcher, "FlannBasedMatcher") && strcmp(matcher, "BFMatcher")))
            return wf_call_fail(c, "matcher must be FlannBasedMatcher or BFMatcher");
        struct cv_keypoint *k1 = NULL, *k2 = NULL;
        if (cmp2_side(c, i, "input_1", 1, vis, &d1, &n1, &k1) < 0)
            return ERR_INVALID;
        if (cmp2_side(c, i, "input_2", 2, vis, &d2, &n2, &k2) < 0) {
            free(d1), free(k1);
            return ERR_INVALID;
        }
        if ((double)n1 * (double)n2 > 1e9) {
            free(d1), free(d2), free(k1), free(k2);
            return wf_call_fail(c, "too many descriptor pairs (%zu x %zu)", n1, n2);
        }
        size_t *pairs = n1 >= 2 && n2 >= 2 ? xmalloc(2 * n1 * sizeof *pairs) : NULL;
        size_t good = pairs ? cv__ratio_match_pairs(d1, n1, d2, n2, ratio, pairs) : 0;
        free(d1), free(d2);
        wf_out_json(c, i, "good_matches_count", json_integer((json_int_t)good));
        wf_out_json(c, i, "images_match", json_boolean(n1 >= 2 && n2 >= 2 && (int64_t)good >= thr));
        /* cv2.drawMatchesKnn of both images with the good matches (only when
         * both inputs are images and there were descriptors to match) */
        const struct wf_image *im1 = wf_arg_image(c, i, "input_1"), *im2 = wf_arg_image(c, i, "input_2");
        if (vis && pairs && im1 && im2) {
            struct vis_image *px = cv__draw_matches(im1->img, k1, n1, im2->img, k2, n2, pairs, good,
                                                    strcmp(matcher, "BFMatcher") != 0);
            if (px)
                wf_out_image(c, i, "visualization_matches", im1, px);
        }
        free(pairs), free(k1), free(k2);
    }
    return 0;
}

static const struct wf_field sift_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
};
static const struct wf_output sift_outs[] = {
    {"image", WF_K_IMAGE}, {"keypoints", 0}, {"descriptors", 0}};
TYPES(sift, "roboflow_core/sift@v1");
BLOCK(sift, sift_fields, sift_outs, sift_run);

static const struct wf_field cmp1_fields[] = {
    {"descriptor_1", NULL, WF_FT_LIST, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"descriptor_2", NULL, WF_FT_LIST, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"good_matches_threshold", NULL, WF_FT_INT_POS, "50", WF_K_INT, 0, NULL},
    {"ratio_threshold", NULL, WF_FT_FLOAT, "0.7", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output cmp1_outs[] = {{"good_matches_count", WF_K_INT},
                                             {"images_match", WF_K_BOOL}};
TYPES(cmp1, "roboflow_core/sift_comparison@v1");
BLOCK(cmp1, cmp1_fields, cmp1_outs, cmp1_run);

static const char *const MATCHERS[] = {"FlannBasedMatcher", "BFMatcher", NULL};
static const struct wf_field cmp2_fields[] = {
    {"input_1", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"input_2", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"good_matches_threshold", NULL, WF_FT_INT_POS, "50", WF_K_INT, 0, NULL},
    {"ratio_threshold", NULL, WF_FT_FLOAT01, "0.7", WF_K_NUMBER, 0, NULL},
    {"matcher", NULL, WF_FT_ENUM, "\"FlannBasedMatcher\"", WF_K_STRING, 0, MATCHERS},
    {"visualize", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
};
static const struct wf_output cmp2_outs[] = {
    {"images_match", WF_K_BOOL}, {"good_matches_count", WF_K_INT}, {"keypoints_1", 0},
    {"descriptors_1", 0},        {"keypoints_2", 0},               {"descriptors_2", 0},
    {"visualization_1", WF_K_IMAGE}, {"visualization_2", WF_K_IMAGE},
    {"visualization_matches", WF_K_IMAGE}};
TYPES(cmp2, "roboflow_core/sift_comparison@v2");
BLOCK(cmp2, cmp2_fields, cmp2_outs, cmp2_run);

const struct wf_block *const wf_blocks_sift[] = {&sift, &cmp1, &cmp2, NULL};
