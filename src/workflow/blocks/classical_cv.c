/*
 * blocks/classical_cv.c — the classical CV block family: Roboflow's
 * core_steps/classical_cv image-to-image blocks (image_preprocessing,
 * convert_grayscale, image_blur, threshold, contrast_equalization,
 * contrast_enhancement, morphological_transformation v1/v2) and the
 * pixel_color_count measurement.
 *
 * Each block works on a copy of its input image and outputs it with the
 * input's metadata (WorkflowImageData.copy_and_replace).  Most output
 * "warped_image", image_preprocessing and contrast_enhancement "image",
 * as their manifests say.  The cv2 / skimage / numpy calls that Roboflow
 * makes are reproduced with vision's primitives where they exist
 * (resize INTER_AREA, box/Gaussian/median blur, threshold with Otsu,
 * morphology, CLAHE) and with local code where they do not:
 *   - warp_rotate:       cv2.getRotationMatrix2D + cv2.warpAffine (bilinear,
 *                        1/32-pixel fixed point, constant 0 border)
 *   - flip:              cv2.flip
 *   - box blur:          cv2.blur with running sums (vision's is O(k) per pixel)
 *   - bilateral:         cv2.bilateralFilter(d, 75, 75)
 *   - adaptive_thresh:   cv2.adaptiveThreshold(MEAN_C / GAUSSIAN_C, BINARY, 11, 2)
 *   - equalize_hist_sk:  skimage.exposure.equalize_hist on img/255 (float32),
 *                        as contrast_equalization does (all channels together)
 *   - percentile_u8:     numpy percentile/quantile ("linear") over u8 data
 * "Adaptive Equalization" (skimage equalize_adapthist, clip 0.03) is
 * approximated by vision's CLAHE on the HSV value channel (8x8 tiles,
 * cv2-equivalent clip 0.03 * 256): values may differ by a few levels.
 */
#include "workflow/wf_block.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"

#define F_IMAGE {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL}

#define CV_MAX_BILATERAL 31 /* image_blur bilateral kernel_size limit */

static const struct wf_output OUT_IMAGE[] = {{"image", WF_K_IMAGE}};
static const struct wf_output OUT_WARPED[] = {{"warped_image", WF_K_IMAGE}};

static struct vis_image *image_clone_or_fail(struct wf_call *c, const struct wf_image *im)
{
    struct vis_image *px = vis_image_clone(im->img);
    if (!px)
        wf_call_fail(c, "out of memory");
    return px;
}

/* ---- local primitives (exported for the unit tests through cv_int.h) ------------ */

int cv__flip(const struct vis_image *src, int code, struct vis_image **out)
{
    struct vis_image *d = vis_image_new(src->w, src->h, src->fmt);
    int ch = (int)src->fmt;
    if (!d)
        return ERR_NOMEM;
    for (int y = 0; y < src->h; y++) {
        int sy = code == 0 || code < 0 ? src->h - 1 - y : y;
        for (int x = 0; x < src->w; x++) {
            int sx = code > 0 || code < 0 ? src->w - 1 - x : x;
            memcpy(vis_px(d, x, y), vis_px(src, sx, sy), (size_t)ch);
        }
    }
    *out = d;
    return 0;
}

/* cv2.warpAffine(src, M, (w, h)) with INTER_LINEAR and BORDER_CONSTANT 0:
 * M maps source to destination; it is inverted, and every destination
 * pixel samples the source at 1/32-pixel precision as cv2 does. */
static int warp_affine(const struct vis_image *src, const double M[6], int w, int h,
                       struct vis_image **out)
{
    enum { AB_BITS = 10, AB_SCALE = 1 << AB_BITS, INTER_BITS = 5, TAB = 1 << INTER_BITS };
    double D = M[0] * M[4] - M[1] * M[3], A[6];
    int ch = (int)src->fmt;
    int wtab[TAB * TAB][4];
    struct vis_image *d;

    D = D != 0 ? 1.0 / D : 0;
    A[0] = M[4] * D, A[1] = -M[1] * D, A[3] = -M[3] * D, A[4] = M[0] * D;
    A[2] = -A[0] * M[2] - A[1] * M[5];
    A[5] = -A[3] * M[2] - A[4] * M[5];
    d = vis_image_new(w, h, src->fmt);
    if (!d)
        return ERR_NOMEM;
    /* bilinear weights in 15-bit fixed point, summing to 1 << 15 */
    for (int fy = 0; fy < TAB; fy++)
        for (int fx = 0; fx < TAB; fx++) {
            double a = fx / (double)TAB, b = fy / (double)TAB;
            double f[4] = {(1 - a) * (1 - b), a * (1 - b), (1 - a) * b, a * b};
            int *t = wtab[fy * TAB + fx], sum = 0, mx = 0;
            for (int k = 0; k < 4; k++) {
                t[k] = (int)lrint(f[k] * 32768);
                sum += t[k];
                if (t[k] > t[mx])
                    mx = k;
            }
            t[mx] += 32768 - sum;
        }
    for (int y = 0; y < h; y++) {
        double X0d = (A[1] * y + A[2]) * AB_SCALE, Y0d = (A[4] * y + A[5]) * AB_SCALE;
        long X0 = lrint(X0d) + AB_SCALE / TAB / 2, Y0 = lrint(Y0d) + AB_SCALE / TAB / 2;
        uint8_t *dp = vis_px(d, 0, y);
        for (int x = 0; x < w; x++, dp += ch) {
            long X = (X0 + lrint(A[0] * x * AB_SCALE)) >> (AB_BITS - INTER_BITS);
            long Y = (Y0 + lrint(A[3] * x * AB_SCALE)) >> (AB_BITS - INTER_BITS);
            long ix = X >> INTER_BITS, iy = Y >> INTER_BITS;
            const int *wt = wtab[(Y & (TAB - 1)) * TAB + (X & (TAB - 1))];
            if (ix < -1 || iy < -1 || ix >= src->w || iy >= src->h)
                continue; /* all four neighbours outside: border value 0 */
            for (int c = 0; c < ch; c++) {
                long s = 0;
                for (int k = 0; k < 4; k++) {
                    long sx = ix + (k & 1), sy = iy + (k >> 1);
                    if (sx >= 0 && sy >= 0 && sx < src->w && sy < src->h)
                        s += (long)wt[k] * vis_px(src, (int)sx, (int)sy)[c];
                }
                s = (s + (1 << 14)) >> 15;
                dp[c] = (uint8_t)(s > 255 ? 255 : s < 0 ? 0 : s);
            }
        }
    }
    *out = d;
    return 0;
}

/* image_preprocessing apply_rotate_image: rotate by deg (counter-clockwise,
 * cv2's convention) about (w // 2, h // 2), expanding the canvas. */
int cv__rotate(const struct vis_image *src, double deg, struct vis_image **out)
{
    double a = deg * M_PI / 180.0, al = cos(a), be = sin(a), M[6];
    double cx = src->w / 2, cy = src->h / 2, nw, nh;
    M[0] = al, M[1] = be, M[2] = (1 - al) * cx - be * cy;
    M[3] = -be, M[4] = al, M[5] = be * cx + (1 - al) * cy;
    nw = src->h * fabs(M[1]) + src->w * fabs(M[0]);
    nh = src->h * fabs(M[0]) + src->w * fabs(M[1]);
    if (nw < 1 || nh < 1 || nw > VIS_MAX_SIDE || nh > VIS_MAX_SIDE ||
        (double)(int)nw * (int)nh > VIS_MAX_PIXELS)
        return ERR_LIMIT;
    M[2] += (int)nw / 2.0 - cx;
    M[5] += (int)nh / 2.0 - cy;
    return warp_affine(src, M, (int)nw, (int)nh, out);
}

static int reflect101(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* cv2.blur(img, (kw, kh)) in place: a normalized box filter anchored at
 * (kw/2, kh/2) with BORDER_REFLECT_101, integer running sums (O(1) per
 * pixel whatever the kernel) and round(sum * (1 / (kw * kh))). */
int cv__box_blur(struct vis_image *img, int kw, int kh)
{
    int w = img->w, h = img->h, ch = (int)img->fmt, rc = ERR_NOMEM;
    size_t rowlen = (size_t)w * ch;
    int32_t *hs = NULL, *col = NULL;
    int *xi = NULL, *yi = NULL;
    uint8_t *lut = NULL;
    double scale;
    int area;
    uint64_t mul;

    if (kw < 1 || kh < 1 || kw > VIS_MAX_KERNEL || kh > VIS_MAX_KERNEL)
        return ERR_INVALID;
    scale = 1.0 / ((double)kw * kh);
    area = kw * kh;
    /* ceil(2^52 / (2 area)): num < 2^30 and 2 area < 2^21, so (num * mul) >> 52
     * is floor(num / (2 area)) and num * mul < 2^62 */
    mul = ((1ull << 52) + 2 * (uint64_t)area - 1) / (2 * (uint64_t)area);
    hs = try_alloc(rowlen * (size_t)h, sizeof *hs);
    col = try_alloc(rowlen, sizeof *col);
    xi = try_alloc((size_t)w + kw, sizeof *xi);
    yi = try_alloc((size_t)h + kh, sizeof *yi);
    if (!hs || !col || !xi || !yi)
        goto out;
    /* small kernels on big images: every possible sum mapped once (same rounding) */
    if ((size_t)kw * kh * 255 < (1u << 20) && (size_t)kw * kh * 255 * 4 < rowlen * (size_t)h &&
        (lut = try_alloc((size_t)kw * kh * 255 + 1, 1)))
        for (size_t v = 0; v <= (size_t)kw * kh * 255; v++) {
            long q = lrint((double)v * scale);
            lut[v] = (uint8_t)(q > 255 ? 255 : q);
        }
    for (int i = 0; i < w + kw - 1; i++)
        xi[i] = reflect101(i - kw / 2, w);
    for (int i = 0; i < h + kh - 1; i++)
        yi[i] = reflect101(i - kh / 2, h);
    /* horizontal sums */
    for (int y = 0; y < h; y++) {
        const uint8_t *sp = vis_px(img, 0, y);
        int32_t *t = hs + (size_t)y * rowlen;
        for (int c = 0; c < ch; c++) {
            int32_t sum = 0;
            for (int k = 0; k < kw; k++)
                sum += sp[xi[k] * ch + c];
            t[c] = sum;
            for (int x = 1; x < w; x++) {
                sum += sp[xi[x + kw - 1] * ch + c] - sp[xi[x - 1] * ch + c];
                t[x * ch + c] = sum;
            }
        }
    }
    /* vertical sums, written back row by row */
    memset(col, 0, rowlen * sizeof *col);
    for (int k = 0; k < kh; k++) {
        const int32_t *t = hs + (size_t)yi[k] * rowlen;
        for (size_t i = 0; i < rowlen; i++)
            col[i] += t[i];
    }
    for (int y = 0; y < h; y++) {
        uint8_t *dp = vis_px(img, 0, y);
        if (y > 0) {
            const int32_t *add = hs + (size_t)yi[y + kh - 1] * rowlen;
            const int32_t *sub = hs + (size_t)yi[y - 1] * rowlen;
            for (size_t i = 0; i < rowlen; i++)
                col[i] += add[i] - sub[i];
        }
        if (lut) {
            for (size_t i = 0; i < rowlen; i++)
                dp[i] = lut[col[i]];
        } else {
            /* round(sum / area) by a multiply-shift division of 2 sum + area by
             * 2 area (exact for these sizes); exact ties go through lrint so
             * that they round as cv2's cvRound(sum * scale) does */
            for (size_t i = 0; i < rowlen; i++) {
                uint64_t num = 2 * (uint64_t)col[i] + (uint64_t)area;
                uint64_t q = (num * mul) >> 52;
                long v = num - q * 2 * (uint64_t)area == 0 ? lrint(col[i] * scale) : (long)q;
                dp[i] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
    rc = 0;
out:
    free(hs);
    free(col);
    free(xi);
    free(yi);
    free(lut);
    return rc;
}

/* cv2.bilateralFilter(src, d, sigma_color, sigma_space), BORDER_REFLECT_101. */
int cv__bilateral(const struct vis_image *src, int d, double sc, double ss,
                  struct vis_image **out)
{
    int ch = (int)src->fmt, cn = ch == 1 ? 1 : 3, r, nk = 0, rc = ERR_NOMEM;
    float *cw = NULL, *sw = NULL;
    int *ox = NULL, *oy = NULL;
    struct vis_image *dst = NULL;
    double gc = -0.5 / (sc * sc), gs = -0.5 / (ss * ss);

    if (sc <= 0)
        sc = 1;
    if (ss <= 0)
        ss = 1;
    r = d <= 0 ? (int)lrint(ss * 1.5) : d / 2;
    if (r < 1)
        r = 1;
    if (r > 64)
        return ERR_INVALID;
    cw = try_alloc((size_t)cn * 256, sizeof *cw);
    sw = try_alloc((size_t)(2 * r + 1) * (2 * r + 1), sizeof *sw);
    ox = try_alloc((size_t)(2 * r + 1) * (2 * r + 1), sizeof *ox);
    oy = try_alloc((size_t)(2 * r + 1) * (2 * r + 1), sizeof *oy);
    dst = vis_image_clone(src);
    if (!cw || !sw || !ox || !oy || !dst)
        goto out;
    for (int i = 0; i < cn * 256; i++)
        cw[i] = (float)exp(i * i * gc);
    for (int i = -r; i <= r; i++)
        for (int j = -r; j <= r; j++) {
            double rr = sqrt((double)i * i + (double)j * j);
            if (rr > r)
                continue;
            sw[nk] = (float)exp(rr * rr * gs);
            oy[nk] = i, ox[nk] = j, nk++;
        }
    for (int y = 0; y < src->h; y++)
        for (int x = 0; x < src->w; x++) {
            const uint8_t *p0 = vis_px(src, x, y);
            float sum[3] = {0, 0, 0}, wsum = 0;
            uint8_t *dp = vis_px(dst, x, y);
            for (int k = 0; k < nk; k++) {
                int sx = x + ox[k], sy = y + oy[k];
                const uint8_t *p;
                int diff = 0;
                float wgt;
                while (sx < 0 || sx >= src->w)
                    sx = src->w == 1 ? 0 : sx < 0 ? -sx : 2 * src->w - 2 - sx;
                while (sy < 0 || sy >= src->h)
                    sy = src->h == 1 ? 0 : sy < 0 ? -sy : 2 * src->h - 2 - sy;
                p = vis_px(src, sx, sy);
                for (int c = 0; c < cn; c++)
                    diff += abs((int)p[c] - (int)p0[c]);
                wgt = sw[k] * cw[diff];
                for (int c = 0; c < cn; c++)
                    sum[c] += p[c] * wgt;
                wsum += wgt;
            }
            for (int c = 0; c < cn; c++) {
                long v = lrintf(sum[c] / wsum);
                dp[c] = (uint8_t)(v > 255 ? 255 : v < 0 ? 0 : v);
            }
        }
    *out = dst;
    dst = NULL;
    rc = 0;
out:
    free(cw);
    free(sw);
    free(ox);
    free(oy);
    vis_image_free(dst);
    return rc;
}

/* Separable blur of a GRAY image with BORDER_REPLICATE (adaptiveThreshold). */
static int blur_replicate(const struct vis_image *src, const float *k, int n,
                          struct vis_image **out)
{
    int w = src->w, h = src->h, a = n / 2;
    float *tmp = try_alloc((size_t)w * h, sizeof *tmp);
    struct vis_image *d = vis_image_new(w, h, VIS_GRAY);
    if (!tmp || !d) {
        free(tmp);
        vis_image_free(d);
        return ERR_NOMEM;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float s = 0;
            for (int q = 0; q < n; q++) {
                int sx = x + q - a;
                sx = sx < 0 ? 0 : sx >= w ? w - 1 : sx;
                s += k[q] * *vis_px(src, sx, y);
            }
            tmp[(size_t)y * w + x] = s;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float s = 0;
            for (int q = 0; q < n; q++) {
                int sy = y + q - a;
                sy = sy < 0 ? 0 : sy >= h ? h - 1 : sy;
                s += k[q] * tmp[(size_t)sy * w + x];
            }
            long v = lrintf(s);
            *vis_px(d, x, y) = (uint8_t)(v > 255 ? 255 : v < 0 ? 0 : v);
        }
    free(tmp);
    *out = d;
    return 0;
}

/* cv2.adaptiveThreshold(img, maxval, MEAN_C or GAUSSIAN_C, THRESH_BINARY,
 * block, C) on a GRAY image, in place: v > mean - C ? maxval : 0. */
int cv__adaptive_threshold(struct vis_image *img, int maxval, bool gaussian, int block, double C)
{
    float k[64];
    struct vis_image *mean = NULL;
    int rc, idelta = (int)ceil(C);
    uint8_t mv = (uint8_t)(maxval < 0 ? 0 : maxval > 255 ? 255 : maxval);

    if (img->fmt != VIS_GRAY || block < 3 || block % 2 == 0 || block > 63)
        return ERR_INVALID;
    if (gaussian) {
        /* cv2.getGaussianKernel(block, 0): sigma from the size */
        double sigma = 0.3 * ((block - 1) * 0.5 - 1) + 0.8, s = 0;
        for (int q = 0; q < block; q++) {
            double x = q - (block - 1) / 2.0;
            k[q] = (float)exp(-x * x / (2 * sigma * sigma));
            s += k[q];
        }
        for (int q = 0; q < block; q++)
            k[q] = (float)(k[q] / s);
    } else {
        for (int q = 0; q < block; q++)
            k[q] = 1.0f / (float)block;
    }
    if ((rc = blur_replicate(img, k, block, &mean)) < 0)
        return rc;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            uint8_t *p = vis_px(img, x, y);
            *p = (int)*p - (int)*vis_px(mean, x, y) > -idelta ? mv : 0;
        }
    vis_image_free(mean);
    return 0;
}

static void hist_all(const struct vis_image *img, int c0, int nc, unsigned long hist[256],
                     unsigned long *total)
{
    int ch = (int)img->fmt;
    memset(hist, 0, 256 * sizeof *hist);
    for (int y = 0; y < img->h; y++) {
        const uint8_t *p = vis_px(img, 0, y);
        for (int x = 0; x < img->w; x++, p += ch)
            for (int c = c0; c < c0 + nc; c++)
                hist[p[c]]++;
    }
    *total = (unsigned long)img->w * (unsigned long)img->h * (unsigned long)nc;
}

/* The k-th smallest value (0-based) of the data behind hist. */
static int hist_kth(const unsigned long hist[256], unsigned long k)
{
    unsigned long acc = 0;
    for (int v = 0; v < 256; v++) {
        acc += hist[v];
        if (acc > k)
            return v;
    }
    return 255;
}

/* numpy.percentile(data, q) with the default "linear" method. */
double cv__percentile(const unsigned long hist[256], unsigned long total, double q)
{
    double idx = q / 100.0 * (double)(total - 1), t;
    unsigned long lo = (unsigned long)floor(idx);
    double a, b;
    if (total == 0)
        return 0;
    if (lo >= total - 1)
        return hist_kth(hist, total - 1);
    t = idx - (double)lo;
    a = hist_kth(hist, lo), b = hist_kth(hist, lo + 1);
    /* numpy _lerp: a + (b - a) * t, evaluated from the upper end when t >= 0.5 */
    return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

/* skimage.exposure.equalize_hist(img.astype(float32) / 255) * 255 ->
 * astype(uint8), over all channels together, in place. */
int cv__equalize_hist_sk(struct vis_image *img)
{
    unsigned long hist[256], total, bins[256] = {0};
    float xv[256], cdf[256];
    double lo = INFINITY, hi = -INFINITY, edges[257], centers[256];
    uint8_t lut[256];
    int ch = (int)img->fmt;

    hist_all(img, 0, ch, hist, &total);
    for (int v = 0; v < 256; v++) {
        xv[v] = (float)v / 255.0f;
        if (hist[v]) {
            lo = xv[v] < lo ? xv[v] : lo;
            hi = xv[v] > hi ? xv[v] : hi;
        }
    }
    if (lo == hi)
        lo -= 0.5, hi += 0.5;
    /* np.histogram: linspace edges, index from the normalized offset, fixed up */
    for (int e = 0; e <= 256; e++)
        edges[e] = lo + (hi - lo) * e / 256.0;
    edges[256] = hi;
    for (int v = 0; v < 256; v++) {
        double a = xv[v];
        long i;
        if (!hist[v] || a < lo || a > hi)
            continue;
        i = (long)((a - lo) * (256.0 / (hi - lo)));
        if (i == 256)
            i--;
        if (a < edges[i])
            i--;
        else if (a >= edges[i + 1] && i != 255)
            i++;
        bins[i] += hist[v];
    }
    {
        unsigned long acc = 0;
        for (int b = 0; b < 256; b++) {
            acc += bins[b];
            cdf[b] = (float)((double)acc / (double)total);
            centers[b] = (edges[b] + edges[b + 1]) / 2.0;
        }
    }
    for (int v = 0; v < 256; v++) {
        double x = xv[v], r;
        float o;
        if (x <= centers[0]) {
            r = cdf[0];
        } else if (x >= centers[255]) {
            r = cdf[255];
        } else {
            int j = 0;
            while (j < 254 && x >= centers[j + 1])
                j++;
            r = ((double)cdf[j + 1] - cdf[j]) / (centers[j + 1] - centers[j]) * (x - centers[j]) +
                cdf[j];
        }
        o = (float)r * 255.0f;
        lut[v] = (uint8_t)(o >= 255.0f ? 255 : o <= 0 ? 0 : (int)o);
    }
    for (int y = 0; y < img->h; y++) {
        uint8_t *p = vis_px(img, 0, y);
        for (int x = 0; x < img->w * ch; x++)
            p[x] = lut[p[x]];
    }
    return 0;
}

/* skimage rescale_intensity(img, in_range=(p2, p98)) for u8 data. */
int cv__contrast_stretch(struct vis_image *img)
{
    unsigned long hist[256], total;
    double p2, p98;
    uint8_t lut[256];
    int ch = (int)img->fmt;
    hist_all(img, 0, ch, hist, &total);
    p2 = cv__percentile(hist, total, 2), p98 = cv__percentile(hist, total, 98);
    for (int v = 0; v < 256; v++) {
        double x = v < p2 ? p2 : v > p98 ? p98 : v;
        if (p2 != p98)
            x = (x - p2) / (p98 - p2) * 255.0;
        lut[v] = (uint8_t)(x >= 255 ? 255 : x <= 0 ? 0 : (int)x);
    }
    for (int y = 0; y < img->h; y++) {
        uint8_t *p = vis_px(img, 0, y);
        for (int x = 0; x < img->w * ch; x++)
            p[x] = lut[p[x]];
    }
    return 0;
}

/* Approximation of skimage equalize_adapthist(clip_limit=0.03): CLAHE of
 * the HSV value channel (the max of the colour channels), colours scaled
 * by V'/V so that hue and saturation stay. */
static int adaptive_equalize(struct vis_image *img)
{
    int ch = (int)img->fmt, rc;
    struct vis_image *v;
    const double clip = 0.03 * 256;
    if (ch == 1)
        return vis_clahe(img, clip, 8);
    v = vis_image_new(img->w, img->h, VIS_GRAY);
    if (!v)
        return ERR_NOMEM;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            const uint8_t *p = vis_px(img, x, y);
            uint8_t m = p[0] > p[1] ? p[0] : p[1];
            *vis_px(v, x, y) = m > p[2] ? m : p[2];
        }
    if ((rc = vis_clahe(v, clip, 8)) == 0)
        for (int y = 0; y < img->h; y++)
            for (int x = 0; x < img->w; x++) {
                uint8_t *p = vis_px(img, x, y);
                int m0 = p[0] > p[1] ? p[0] : p[1], nv = *vis_px(v, x, y);
                m0 = m0 > p[2] ? m0 : p[2];
                for (int c = 0; c < 3; c++) {
                    double o = m0 ? (double)p[c] * nv / m0 : 0;
                    p[c] = (uint8_t)(o >= 255 ? 255 : (int)o);
                }
            }
    vis_image_free(v);
    return rc;
}

/* contrast_enhancement's per-channel stretch (float32 math), in place.
 * gray_passthrough: a GRAY image whose range is empty stays unchanged. */
static void enhance_channel(struct vis_image *img, int c, double clip_pct, float mult, float gamma)
{
    unsigned long hist[256], total;
    double vmin, vmax;
    uint8_t lut[256];
    int ch = (int)img->fmt;
    hist_all(img, c, 1, hist, &total);
    if (clip_pct > 0) {
        vmin = cv__percentile(hist, total, clip_pct * 100);
        vmax = cv__percentile(hist, total, 100 - clip_pct * 100);
    } else {
        vmin = hist_kth(hist, 0), vmax = hist_kth(hist, total - 1);
    }
    if (!(vmax > vmin))
        return; /* the channel is kept as it is */
    for (int v = 0; v < 256; v++) {
        float n = ((float)v - (float)vmin) / ((float)vmax - (float)vmin) * 255.0f;
        if (mult != 1.0f)
            n = 128.0f + (n - 128.0f) * mult;
        if (gamma != 1.0f) {
            n = n < 0 ? 0 : n > 255 ? 255 : n;
            n = powf(n / 255.0f, gamma) * 255.0f;
        }
        n = n < 0 ? 0 : n > 255 ? 255 : n;
        lut[v] = (uint8_t)(int)n;
    }
    for (int y = 0; y < img->h; y++) {
        uint8_t *p = vis_px(img, 0, y) + c;
        for (int x = 0; x < img->w; x++, p += ch)
            *p = lut[*p];
    }
}

/* ---- image_preprocessing ------------------------------------------------------ */

static const char *const TASKS[] = {"resize", "rotate", "flip", NULL};
static const char *const FLIPS[] = {"vertical", "horizontal", "both", NULL};

static int preprocess_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *task = wf_arg_str(c, i, "task_type");
        struct vis_image *out = NULL;
        int rc = 0;
        if (!im || !task)
            return wf_call_fail(c, "missing image or task_type");
        if (!strcmp(task, "resize")) {
            const json_t *jw = wf_arg_json(c, i, "width"), *jh = wf_arg_json(c, i, "height");
            double w = json_is_number(jw) ? json_number_value(jw) : -1;
            double h = json_is_number(jh) ? json_number_value(jh) : -1;
            if ((json_is_number(jw) && w <= 0) || (json_is_number(jh) && h <= 0))
                return wf_call_fail(c, "%s must be greater than 0",
                                    json_is_number(jw) && w <= 0 ? "Width" : "Height");
            if (w < 0 && h < 0) {
                out = vis_image_clone(im->img);
            } else {
                /* int(current * ratio), kept in double until bounded */
                if (w < 0)
                    w = trunc(im->img->w * (h / im->img->h));
                else if (h < 0)
                    h = trunc(im->img->h * (w / im->img->w));
                if (w < 1 || h < 1 || w > VIS_MAX_SIDE || h > VIS_MAX_SIDE ||
                    w * h > VIS_MAX_PIXELS)
                    return wf_call_fail(c, "resize to %gx%g is out of bounds", w, h);
                rc = vis_resize(im->img, (int)w, (int)h, VIS_INTER_AREA, &out);
            }
        } else if (!strcmp(task, "rotate")) {
            int64_t deg = wf_arg_int(c, i, "rotation_degrees", 90);
            if (deg < -360 || deg > 360)
                return wf_call_fail(c, "Rotation degrees must be between -360 and 360");
            if (deg == 0)
                out = vis_image_clone(im->img);
            else
                rc = cv__rotate(im->img, (double)deg, &out);
        } else if (!strcmp(task, "flip")) {
            const char *ft = wf_arg_str(c, i, "flip_type");
            if (!ft)
                out = vis_image_clone(im->img);
            else if (!strcmp(ft, "vertical"))
                rc = cv__flip(im->img, 0, &out);
            else if (!strcmp(ft, "horizontal"))
                rc = cv__flip(im->img, 1, &out);
            else if (!strcmp(ft, "both"))
                rc = cv__flip(im->img, -1, &out);
            else
                return wf_call_fail(c, "Flip type must be 'vertical', 'horizontal', or 'both'");
        } else {
            return wf_call_fail(c, "Invalid task type: %s", task);
        }
        if (rc < 0 || !out)
            return wf_call_fail(c, "%s failed (%s)", task, err_str(rc < 0 ? rc : ERR_NOMEM));
        wf_out_image(c, i, "image", im, out);
    }
    return 0;
}

static const struct wf_field preprocess_fields[] = {
    F_IMAGE,
    {"task_type", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, TASKS},
    {"width", NULL, WF_FT_INT_POS, "640", WF_K_INT, WF_F_NULLABLE, NULL},
    {"height", NULL, WF_FT_INT_POS, "640", WF_K_INT, WF_F_NULLABLE, NULL},
    {"rotation_degrees", NULL, WF_FT_INT, "90", WF_K_INT, WF_F_NULLABLE, NULL},
    {"flip_type", NULL, WF_FT_ENUM, "\"vertical\"", WF_K_STRING, WF_F_NULLABLE, FLIPS},
};
static const char *const preprocess_types[] = {"roboflow_core/image_preprocessing@v1", NULL};
static const struct wf_block preprocess_v1 = {
    .types = preprocess_types, .fields = preprocess_fields,
    .nfields = ARRAY_LEN(preprocess_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = preprocess_run,
};

/* ---- convert_grayscale ---------------------------------------------------------- */

static int gray_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        struct vis_image *out = NULL;
        int rc;
        if (!im)
            return wf_call_fail(c, "field 'image': not an image");
        if (im->img->fmt == VIS_GRAY)
            out = vis_image_clone(im->img), rc = out ? 0 : ERR_NOMEM;
        else
            rc = vis_convert(im->img, VIS_GRAY, &out);
        if (rc < 0)
            return wf_call_fail(c, "grayscale conversion failed (%s)", err_str(rc));
        wf_out_image(c, i, "warped_image", im, out);
    }
    return 0;
}

static const struct wf_field gray_fields[] = {F_IMAGE};
static const char *const gray_types[] = {"roboflow_core/convert_grayscale@v1", NULL};
static const struct wf_block gray_v1 = {
    .types = gray_types, .fields = gray_fields, .nfields = ARRAY_LEN(gray_fields),
    .outputs = OUT_WARPED, .noutputs = 1, .run = gray_run,
};

/* ---- image_blur ----------------------------------------------------------------- */

static const char *const BLURS[] = {"average", "gaussian", "median", "bilateral", NULL};

static int blur_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *bt = wf_arg_str(c, i, "blur_type");
        int64_t k = wf_arg_int(c, i, "kernel_size", 5);
        struct vis_image *px;
        int rc = 0;
        if (!im || !bt)
            return wf_call_fail(c, "missing image or blur_type");
        if (k > VIS_MAX_KERNEL || k < -VIS_MAX_KERNEL)
            return wf_call_fail(c, "field 'kernel_size': %lld is out of range", (long long)k);
        if (strcmp(bt, "average") && strcmp(bt, "bilateral")) {
            /* _to_positive_odd */
            k = k < 1 ? 1 : k;
            k += k % 2 == 0;
        }
        if (!strcmp(bt, "bilateral")) {
            /* bounded: the filter costs about k * k operations per pixel */
            if (k > CV_MAX_BILATERAL)
                return wf_call_fail(c, "field 'kernel_size': %lld is too large for bilateral "
                                       "(at most %d)", (long long)k, CV_MAX_BILATERAL);
            rc = cv__bilateral(im->img, (int)k, 75, 75, &px);
            if (rc < 0)
                return wf_call_fail(c, "bilateral filter failed (%s)", err_str(rc));
            wf_out_image(c, i, "warped_image", im, px);
            continue;
        }
        if (!strcmp(bt, "average") && k < 1)
            return wf_call_fail(c, "field 'kernel_size': must be >= 1 for average blur");
        if (!(px = image_clone_or_fail(c, im)))
            return ERR_NOMEM;
        if (!strcmp(bt, "average"))
            rc = cv__box_blur(px, (int)k, (int)k);
        else if (!strcmp(bt, "gaussian"))
            rc = vis_blur_gaussian(px, (int)k, 0);
        else if (!strcmp(bt, "median"))
            rc = k == 1 ? 0 : vis_blur_median(px, (int)k);
        else
            rc = ERR_INVALID;
        if (rc < 0) {
            vis_image_free(px);
            return wf_call_fail(c, "%s blur failed (%s)", bt, err_str(rc));
        }
        wf_out_image(c, i, "warped_image", im, px);
    }
    return 0;
}

static const struct wf_field blur_fields[] = {
    F_IMAGE,
    {"blur_type", NULL, WF_FT_ENUM, "\"gaussian\"", WF_K_STRING, 0, BLURS},
    {"kernel_size", NULL, WF_FT_INT, "5", WF_K_INT, 0, NULL},
};
static const char *const blur_types[] = {"roboflow_core/image_blur@v1", NULL};
static const struct wf_block blur_v1 = {
    .types = blur_types, .fields = blur_fields, .nfields = ARRAY_LEN(blur_fields),
    .outputs = OUT_WARPED, .noutputs = 1, .run = blur_run,
};

/* ---- threshold -------------------------------------------------------------------- */

static const char *const THRESHOLDS[] = {"binary",     "binary_inv",    "trunc",
                                         "tozero",     "tozero_inv",    "adaptive_mean",
                                         "adaptive_gaussian", "otsu",   NULL};

static int threshold_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *tt = wf_arg_str(c, i, "threshold_type");
        double tv = wf_arg_double(c, i, "thresh_value", 0);
        int64_t mv = wf_arg_int(c, i, "max_value", 255);
        struct vis_image *px;
        int rc, type = -1;
        if (!im || !tt)
            return wf_call_fail(c, "missing image or threshold_type");
        if (mv < -1000000 || mv > 1000000 || !(fabs(tv) < 1e9))
            return wf_call_fail(c, "thresh_value/max_value out of range");
        if (!strcmp(tt, "binary"))
            type = VIS_THRESH_BINARY;
        else if (!strcmp(tt, "binary_inv"))
            type = VIS_THRESH_BINARY_INV;
        else if (!strcmp(tt, "trunc"))
            type = VIS_THRESH_TRUNC;
        else if (!strcmp(tt, "tozero"))
            type = VIS_THRESH_TOZERO;
        else if (!strcmp(tt, "tozero_inv"))
            type = VIS_THRESH_TOZERO_INV;
        else if (!strcmp(tt, "otsu"))
            type = VIS_THRESH_BINARY | VIS_THRESH_OTSU, tv = 0;
        else if (strcmp(tt, "adaptive_mean") && strcmp(tt, "adaptive_gaussian"))
            return wf_call_fail(c, "Unknown threshold type: %s", tt);
        if ((type < 0 || (type & VIS_THRESH_OTSU)) && im->img->fmt != VIS_GRAY)
            return wf_call_fail(c, "threshold type '%s' needs a single-channel image "
                                   "(use convert_grayscale first)", tt);
        if (!(px = image_clone_or_fail(c, im)))
            return ERR_NOMEM;
        if (type >= 0)
            rc = vis_threshold(px, tv, (int)(mv < 0 ? 0 : mv > 255 ? 255 : mv), type, NULL);
        else
            rc = cv__adaptive_threshold(px, (int)mv, !strcmp(tt, "adaptive_gaussian"), 11, 2);
        if (rc < 0) {
            vis_image_free(px);
            return wf_call_fail(c, "threshold failed (%s)", err_str(rc));
        }
        wf_out_image(c, i, "warped_image", im, px);
    }
    return 0;
}

static const struct wf_field threshold_fields[] = {
    F_IMAGE,
    {"threshold_type", NULL, WF_FT_ENUM, "\"binary\"", WF_K_STRING, 0, THRESHOLDS},
    {"thresh_value", NULL, WF_FT_INT, NULL, WF_K_INT, 0, NULL},
    {"max_value", NULL, WF_FT_INT, "255", WF_K_INT, 0, NULL},
};
static const char *const threshold_types[] = {"roboflow_core/threshold@v1", NULL};
static const struct wf_block threshold_v1 = {
    .types = threshold_types, .fields = threshold_fields, .nfields = ARRAY_LEN(threshold_fields),
    .outputs = OUT_WARPED, .noutputs = 1, .run = threshold_run,
};

/* ---- contrast_equalization -------------------------------------------------------- */

static const char *const EQUALIZATIONS[] = {"Contrast Stretching", "Histogram Equalization",
                                            "Adaptive Equalization", NULL};

static int equalization_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *how = wf_arg_str(c, i, "equalization_type");
        struct vis_image *px;
        int rc;
        if (!im || !how)
            return wf_call_fail(c, "missing image or equalization_type");
        if (strcmp(how, "Contrast Stretching") && strcmp(how, "Histogram Equalization") &&
            strcmp(how, "Adaptive Equalization"))
            return wf_call_fail(c, "contrast equalization type `%s` not implemented!", how);
        if (!(px = image_clone_or_fail(c, im)))
            return ERR_NOMEM;
        if (!strcmp(how, "Contrast Stretching"))
            rc = cv__contrast_stretch(px);
        else if (!strcmp(how, "Histogram Equalization"))
            rc = cv__equalize_hist_sk(px);
        else
            rc = adaptive_equalize(px);
        if (rc < 0) {
            vis_image_free(px);
            return wf_call_fail(c, "equalization failed (%s)", err_str(rc));
        }
        wf_out_image(c, i, "warped_image", im, px);
    }
    return 0;
}

static const struct wf_field equalization_fields[] = {
    F_IMAGE,
    {"equalization_type", NULL, WF_FT_ENUM, "\"Histogram Equalization\"", WF_K_STRING, 0,
     EQUALIZATIONS},
};
static const char *const equalization_types[] = {"roboflow_core/contrast_equalization@v1", NULL};
static const struct wf_block equalization_v1 = {
    .types = equalization_types, .fields = equalization_fields,
    .nfields = ARRAY_LEN(equalization_fields), .outputs = OUT_WARPED, .noutputs = 1,
    .run = equalization_run,
};

/* ---- contrast_enhancement ---------------------------------------------------------- */

static int enhancement_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        int64_t clip = wf_arg_int(c, i, "clip_limit", 0);
        double mult = wf_arg_double(c, i, "contrast_multiplier", 1.0);
        bool norm = wf_arg_bool(c, i, "normalize_brightness", false);
        struct vis_image *px;
        int nc;
        if (!im)
            return wf_call_fail(c, "field 'image': not an image");
        if (clip < 0 || clip > 100)
            return wf_call_fail(c, "field 'clip_limit': %lld is out of range [0, 100]",
                                (long long)clip);
        if (!(fabs(mult) < 1e6))
            return wf_call_fail(c, "field 'contrast_multiplier': out of range");
        if (!(px = image_clone_or_fail(c, im)))
            return ERR_NOMEM;
        nc = px->fmt == VIS_BGRA ? 3 : (int)px->fmt;
        for (int ch = 0; ch < nc; ch++)
            enhance_channel(px, ch, (double)clip / 100.0, (float)mult,
                            norm ? (float)(1.0 / 1.3) : 1.0f);
        wf_out_image(c, i, "image", im, px);
    }
    return 0;
}

static const struct wf_field enhancement_fields[] = {
    F_IMAGE,
    {"clip_limit", NULL, WF_FT_INT, "0", 0, WF_F_NO_SELECTOR, NULL},
    {"contrast_multiplier", NULL, WF_FT_FLOAT, "1.0", 0, WF_F_NO_SELECTOR, NULL},
    {"normalize_brightness", NULL, WF_FT_BOOL, "false", 0, WF_F_NO_SELECTOR, NULL},
};
static const char *const enhancement_types[] = {"roboflow_core/contrast_enhancement@v1", NULL};
static const struct wf_block enhancement_v1 = {
    .types = enhancement_types, .fields = enhancement_fields,
    .nfields = ARRAY_LEN(enhancement_fields), .outputs = OUT_IMAGE, .noutputs = 1,
    .run = enhancement_run,
};

/* ---- morphological_transformation v1 / v2 ------------------------------------------ */

static const char *const MORPH_V1[] = {"Erosion", "Dilation", "Opening", "Closing", "Gradient",
                                       "Top Hat", "Black Hat", NULL};
static const char *const MORPH_V2[] = {"Erosion",  "Dilation", "Opening", "Closing",
                                       "Opening then Closing", "Gradient", "Top Hat",
                                       "Black Hat", NULL};

/* Apply the named operation in place; ERR_INVALID for an unknown name. */
int cv__morph_named(struct vis_image *img, const char *op, int k)
{
    static const struct {
        const char *name;
        enum vis_morph op;
    } ops[] = {
        {"Erosion", VIS_MORPH_ERODE},     {"Dilation", VIS_MORPH_DILATE},
        {"Opening", VIS_MORPH_OPEN},      {"Closing", VIS_MORPH_CLOSE},
        {"Gradient", VIS_MORPH_GRADIENT}, {"Top Hat", VIS_MORPH_TOPHAT},
        {"Black Hat", VIS_MORPH_BLACKHAT},
    };
    int rc;
    if (!strcmp(op, "Opening then Closing")) {
        if ((rc = vis_morph(img, VIS_MORPH_OPEN, k, k)) < 0)
            return rc;
        return vis_morph(img, VIS_MORPH_CLOSE, k, k);
    }
    for (size_t i = 0; i < ARRAY_LEN(ops); i++)
        if (!strcmp(op, ops[i].name))
            return vis_morph(img, ops[i].op, k, k);
    return ERR_INVALID;
}

static int morph_run_common(struct wf_call *c, bool v2)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *op = wf_arg_str(c, i, "operation");
        int64_t k = wf_arg_int(c, i, "kernel_size", 5);
        struct vis_image *px = NULL;
        int rc;
        if (!im || !op)
            return wf_call_fail(c, "missing image or operation");
        if (k < 1 || k > VIS_MAX_KERNEL)
            return wf_call_fail(c, "field 'kernel_size': %lld is out of range [1, %d]",
                                (long long)k, VIS_MAX_KERNEL);
        if (!v2) /* v1 works on the grayscale image and outputs it */
            rc = im->img->fmt == VIS_GRAY ? ((px = vis_image_clone(im->img)) ? 0 : ERR_NOMEM)
                                           : vis_convert(im->img, VIS_GRAY, &px);
        else /* v2 works on BGR (gray expanded), BGRA keeps its alpha */
            rc = im->img->fmt == VIS_GRAY ? vis_convert(im->img, VIS_BGR, &px)
                                           : ((px = vis_image_clone(im->img)) ? 0 : ERR_NOMEM);
        if (rc < 0)
            return wf_call_fail(c, "out of memory");
        if (px->fmt == VIS_BGRA) {
            /* morphology on B, G, R only: work on a BGR copy, put alpha back */
            struct vis_image *bgr = NULL;
            if ((rc = vis_convert(px, VIS_BGR, &bgr)) == 0 &&
                (rc = cv__morph_named(bgr, op, (int)k)) == 0)
                for (int y = 0; y < px->h; y++)
                    for (int x = 0; x < px->w; x++)
                        memcpy(vis_px(px, x, y), vis_px(bgr, x, y), 3);
            vis_image_free(bgr);
        } else {
            rc = cv__morph_named(px, op, (int)k);
        }
        if (rc < 0) {
            vis_image_free(px);
            if (rc == ERR_INVALID)
                return wf_call_fail(c, "Invalid operation: %s", op);
            return wf_call_fail(c, "morphology failed (%s)", err_str(rc));
        }
        wf_out_image(c, i, "warped_image", im, px);
    }
    return 0;
}

static int morph_v1_run(struct wf_call *c) { return morph_run_common(c, false); }
static int morph_v2_run(struct wf_call *c) { return morph_run_common(c, true); }

static const struct wf_field morph_v1_fields[] = {
    F_IMAGE,
    {"kernel_size", NULL, WF_FT_INT, "5", WF_K_INT, 0, NULL},
    {"operation", NULL, WF_FT_ENUM, "\"Closing\"", WF_K_STRING, 0, MORPH_V1},
};
static const struct wf_field morph_v2_fields[] = {
    F_IMAGE,
    {"kernel_size", NULL, WF_FT_INT, "5", WF_K_INT, 0, NULL},
    {"operation", NULL, WF_FT_ENUM, "\"Opening then Closing\"", WF_K_STRING, 0, MORPH_V2},
};
static const char *const morph_v1_types[] = {"roboflow_core/morphological_transformation@v1",
                                             NULL};
static const char *const morph_v2_types[] = {"roboflow_core/morphological_transformation@v2",
                                             NULL};
static const struct wf_block morph_v1 = {
    .types = morph_v1_types, .fields = morph_v1_fields, .nfields = ARRAY_LEN(morph_v1_fields),
    .outputs = OUT_WARPED, .noutputs = 1, .run = morph_v1_run,
};
static const struct wf_block morph_v2 = {
    .types = morph_v2_types, .fields = morph_v2_fields, .nfields = ARRAY_LEN(morph_v2_fields),
    .outputs = OUT_WARPED, .noutputs = 1, .run = morph_v2_run,
};

/* ---- pixel_color_count ------------------------------------------------------------------ */

/* convert_color_to_bgr_tuple: "#RRGGBB", "#RGB", "(r, g, b)" or a list of
 * three integers (R, G, B), all turned into B, G, R. */
static int target_bgr(const json_t *j, int bgr[3])
{
    int v[3];
    if (json_is_array(j) && json_array_size(j) == 3) {
        for (int k = 0; k < 3; k++) {
            const json_t *x = json_array_get(j, (size_t)k);
            if (!json_is_integer(x) || llabs(json_integer_value(x)) > 100000)
                return ERR_INVALID;
            v[k] = (int)json_integer_value(x);
        }
    } else if (json_is_string(j)) {
        const char *s = json_string_value(j);
        size_t n = strlen(s);
        char tail;
        if (s[0] == '#' && (n == 7 || n == 4)) {
            for (size_t k = 1; k < n; k++)
                if (!isxdigit((unsigned char)s[k]))
                    return ERR_INVALID;
            for (int k = 0; k < 3; k++) {
                char hx[3] = {n == 7 ? s[1 + 2 * k] : s[1 + k], n == 7 ? s[2 + 2 * k] : s[1 + k], 0};
                v[k] = (int)strtol(hx, NULL, 16);
            }
        } else if (s[0] == '(' && sscanf(s + 1, "%d ,%d ,%d %c", &v[0], &v[1], &v[2], &tail) == 4 &&
                   tail == ')') {
            for (int k = 0; k < 3; k++)
                if (abs(v[k]) > 100000)
                    return ERR_INVALID;
        } else {
            return ERR_INVALID;
        }
    } else {
        return ERR_INVALID;
    }
    bgr[0] = v[2], bgr[1] = v[1], bgr[2] = v[0];
    return 0;
}

/* cv2.countNonZero(cv2.inRange(image, bgr - tolerance, bgr + tolerance)). */
static int pixel_count_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const json_t *tc = wf_arg_json(c, i, "target_color");
        int64_t tol = wf_arg_int(c, i, "tolerance", 10);
        int bgr[3];
        long long n = 0;
        if (!im)
            return wf_call_fail(c, "field 'image': not an image");
        if (target_bgr(tc, bgr) < 0)
            return wf_call_fail(c, "Invalid color format for 'target_color'");
        if (tol < -1000 || tol > 1000)
            return wf_call_fail(c, "field 'tolerance': %lld is out of range", (long long)tol);
        if (im->img->fmt != VIS_BGR)
            return wf_call_fail(c, "pixel_color_count needs a 3-channel image");
        for (int y = 0; y < im->img->h; y++) {
            const uint8_t *p = vis_px(im->img, 0, y);
            for (int x = 0; x < im->img->w; x++, p += 3) {
                bool in = true;
                for (int k = 0; k < 3; k++)
                    in = in && p[k] >= bgr[k] - tol && p[k] <= bgr[k] + tol;
                n += in;
            }
        }
        wf_out_json(c, i, "matching_pixels_count", json_integer(n));
    }
    return 0;
}

static const struct wf_field pixel_count_fields[] = {
    F_IMAGE,
    {"target_color", NULL, WF_FT_ANY, NULL, WF_K_COLOR | WF_K_STRING, 0, NULL},
    {"tolerance", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
};
static const struct wf_output OUT_PIXEL_COUNT[] = {{"matching_pixels_count", WF_K_INT}};
static const char *const pixel_count_types[] = {"roboflow_core/pixel_color_count@v1", NULL};
static const struct wf_block pixel_count_v1 = {
    .types = pixel_count_types, .fields = pixel_count_fields,
    .nfields = ARRAY_LEN(pixel_count_fields), .outputs = OUT_PIXEL_COUNT, .noutputs = 1,
    .run = pixel_count_run,
};

const struct wf_block *const wf_blocks_classical_cv[] = {
    &preprocess_v1,   &gray_v1,        &blur_v1,  &threshold_v1, &equalization_v1,
    &enhancement_v1,  &morph_v1,       &morph_v2, &pixel_count_v1, NULL,
};
