/*
 * filter.c — in-place filters and classical CV on images or views: box,
 * Gaussian and median blur, pixelation, thresholds (with Otsu), histogram
 * equalization, CLAHE, contrast stretch and rectangular morphology.
 *
 * Separable filters run a horizontal pass into a float/int scratch image
 * and a vertical pass back into the target; borders follow the cv2
 * defaults named in vision.h.  Scratch memory is proportional to the
 * image and comes from try_alloc, so a failure is ERR_NOMEM, not abort.
 */
#include "vision/vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision_int.h"

/* BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 ... */
static int reflect101(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n) {
        if (i < 0)
            i = -i;
        if (i >= n)
            i = 2 * n - 2 - i;
    }
    return i;
}

static int clampi(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/*
 * In-place filters need, for output row y, source rows from a window
 * around y.  With rows processed top to bottom that window only moves
 * down and never spans more than `n` rows (reflection at the borders
 * stays inside it), so a ring of n row buffers indexed by row % n holds
 * every row still needed, and each row is read from the image before its
 * own output row overwrites it.  Memory is n rows instead of the image.
 */
struct ring {
    int n;          /* slots */
    size_t rowsz;   /* bytes per slot */
    int *tag;       /* source row held by each slot, -1 = none */
    uint8_t *mem;
};

static int ring_init(struct ring *r, int n, size_t rowsz)
{
    r->n = n;
    r->rowsz = rowsz;
    r->tag = try_alloc((size_t)n, sizeof *r->tag);
    r->mem = try_alloc((size_t)n, rowsz);
    if (!r->tag || !r->mem) {
        free(r->tag);
        free(r->mem);
        return ERR_NOMEM;
    }
    for (int i = 0; i < n; i++)
        r->tag[i] = -1;
    return 0;
}

static void ring_release(struct ring *r)
{
    free(r->tag);
    free(r->mem);
}

/* Slot for source row `row`; *fresh = 1 when the caller must fill it. */
static void *ring_get(struct ring *r, int row, int *fresh)
{
    int i = row % r->n;

    *fresh = r->tag[i] != row;
    r->tag[i] = row;
    return r->mem + (size_t)i * r->rowsz;
}

/*
 * Row kernels written for the compiler's -O2 vectoriser (GCC's "very
 * cheap" cost model only vectorises loops whose trip count is a known
 * multiple of the vector width, and never adds runtime alias checks):
 * blocks of 8 with restrict pointers, then a scalar tail.
 */
static void row_axpy_u8(float *restrict t, const uint8_t *restrict s, float k, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++)
            t[i + q] += k * (float)s[i + q];
    for (; i < n; i++)
        t[i] += k * (float)s[i];
}

static void row_axpy_f(float *restrict a, const float *restrict t, float k, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++)
            a[i + q] += k * t[i + q];
    for (; i < n; i++)
        a[i] += k * t[i];
}

/* d = clamp(round(a)) for a >= 0 */
static void row_store_u8(uint8_t *restrict d, const float *restrict a, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++) {
            float v = a[i + q] + 0.5f;
            v = v > 255.0f ? 255.0f : v;
            d[i + q] = (uint8_t)(int)v;
        }
    for (; i < n; i++) {
        float v = a[i] + 0.5f;
        v = v > 255.0f ? 255.0f : v;
        d[i] = (uint8_t)(int)v;
    }
}

static void row_add_u32(unsigned *restrict a, const unsigned *restrict t, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++)
            a[i + q] += t[i + q];
    for (; i < n; i++)
        a[i] += t[i];
}

static void row_sub_u32(unsigned *restrict a, const unsigned *restrict t, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++)
            a[i + q] -= t[i + q];
    for (; i < n; i++)
        a[i] -= t[i];
}

/* d = round(a * inv); exact in float while a < 2^24 */
static void row_scale_u8(uint8_t *restrict d, const unsigned *restrict a, float inv, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++)
            d[i + q] = (uint8_t)(int)((float)(int)a[i + q] * inv + 0.5f);
    for (; i < n; i++)
        d[i] = (uint8_t)(int)((float)(int)a[i] * inv + 0.5f);
}

/*
 * Generic separable correlation with float kernels kx (length nx, anchor
 * nx/2) and ky; REFLECT_101 borders; rows of horizontal results kept in a
 * ring (see above).
 */
static int sep_filter(struct vis_image *img, const float *kx, int nx, const float *ky, int ny)
{
    int w = img->w, h = img->h, ch = (int)img->fmt, ax = nx / 2, ay = ny / 2, rc = ERR_NOMEM;
    size_t rowlen = (size_t)w * ch;
    int *xi = try_alloc((size_t)w + nx, sizeof *xi);
    float *acc = try_alloc(rowlen, sizeof *acc);
    const float **rows = try_alloc((size_t)ny, sizeof *rows);
    struct ring ring = {0};

    if (!xi || !acc || !rows || ring_init(&ring, MIN(ny, h), rowlen * sizeof(float)) < 0)
        goto out;
    for (int i = 0; i < w + nx - 1; i++)
        xi[i] = reflect101(i - ax, w) * ch;
    for (int y = 0; y < h; y++) {
        uint8_t *d = vis_px(img, 0, y);
        /* first make sure every needed row is in the ring */
        for (int k = 0; k < ny; k++) {
            int sy = reflect101(y + k - ay, h), fresh;
            float *t = ring_get(&ring, sy, &fresh);
            if (fresh) {
                const uint8_t *s = vis_px(img, 0, sy);
                /* interior columns [x0, x1) read no border: one pass per
                 * kernel tap over a contiguous range (vectorisable) */
                int x0 = MIN(ax, w), x1 = MAX(x0, w - (nx - 1 - ax));
                size_t i0 = (size_t)x0 * ch, i1 = (size_t)x1 * ch;
                for (size_t i = i0; i < i1; i++)
                    t[i] = 0;
                for (int j = 0; j < nx && i1 > i0; j++)
                    row_axpy_u8(t + i0, s + i0 + (ptrdiff_t)(j - ax) * ch, kx[j], i1 - i0);
                for (int x = 0; x < w; x++) {
                    if (x == x0 && x1 > x0)
                        x = x1;
                    if (x >= w)
                        break;
                    for (int c = 0; c < ch; c++) {
                        float sum = 0;
                        for (int j = 0; j < nx; j++)
                            sum += kx[j] * s[xi[x + j] + c];
                        t[x * ch + c] = sum;
                    }
                }
            }
            rows[k] = t;
        }
        memset(acc, 0, rowlen * sizeof *acc);
        for (int k = 0; k < ny; k++)
            row_axpy_f(acc, rows[k], ky[k], rowlen);
        row_store_u8(d, acc, rowlen); /* acc >= 0: kernels are positive */
    }
    rc = 0;
out:
    ring_release(&ring);
    free(xi);
    free(acc);
    free(rows);
    return rc;
}

/*
 * Box blur with running sums: O(1) per pixel whatever the kernel size.
 * Horizontal window sums of each source row (REFLECT_101 through the xi
 * table) go to a ring of kh + 1 rows; the vertical sum is slid by adding
 * the entering row and subtracting the leaving one (reflection makes the
 * row sequence a multiset, which sliding handles as well).  Division by
 * the area is a multiply-shift with rounding.
 */
int vis_blur_box(struct vis_image *img, int kw, int kh)
{
    int w = img->w, h = img->h, ch = (int)img->fmt, ax = kw / 2, ay = kh / 2, rc = ERR_NOMEM;
    size_t rowlen = (size_t)w * ch;
    int *xi = NULL;
    unsigned *vsum = NULL;
    uint64_t mul;
    struct ring ring = {0};

    if (kw < 1 || kh < 1 || kw > VIS_MAX_KERNEL || kh > VIS_MAX_KERNEL)
        return ERR_INVALID;
    if (kw == 1 && kh == 1)
        return 0;
    mul = ((1ull << 40) + (uint64_t)(kw * kh) / 2) / (uint64_t)(kw * kh);
    xi = try_alloc((size_t)w + kw, sizeof *xi);
    vsum = try_alloc(rowlen, sizeof *vsum);
    if (!xi || !vsum || ring_init(&ring, MIN(kh + 1, h + 1), rowlen * sizeof(unsigned)) < 0)
        goto out;
    for (int i = 0; i < w + kw - 1; i++)
        xi[i] = reflect101(i - ax, w) * ch;
    memset(vsum, 0, rowlen * sizeof *vsum);
    for (int y = -1; y < h; y++) {
        /* y = -1 primes vsum with the window of row 0 minus its last row */
        int enter = reflect101(y - ay + kh - 1, h), fresh;
        unsigned *t;
        if (y >= 0) {
            t = ring_get(&ring, enter, &fresh);
            if (fresh) {
                const uint8_t *sr = vis_px(img, 0, enter);
                for (int c = 0; c < ch; c++) {
                    unsigned acc = 0;
                    for (int j = 0; j < kw; j++)
                        acc += sr[xi[j] + c];
                    t[c] = acc;
                    for (int x = 1; x < w; x++) {
                        acc += sr[xi[x + kw - 1] + c];
                        acc -= sr[xi[x - 1] + c];
                        t[x * ch + c] = acc;
                    }
                }
            }
            row_add_u32(vsum, t, rowlen);
            uint8_t *d = vis_px(img, 0, y);
            if (kw * kh <= 65793) /* 255 * area < 2^24: float is exact */
                row_scale_u8(d, vsum, 1.0f / (float)(kw * kh), rowlen);
            else
                for (size_t i = 0; i < rowlen; i++)
                    d[i] = (uint8_t)(((uint64_t)vsum[i] * mul + (1ull << 39)) >> 40);
            /* the row leaving before the next output row */
            int leave = reflect101(y - ay, h);
            t = ring_get(&ring, leave, &fresh);
            if (fresh) { /* cannot happen: it entered earlier and is still held */
                rc = ERR_INTERNAL;
                goto out;
            }
            row_sub_u32(vsum, t, rowlen);
        } else {
            for (int k = 0; k < kh - 1; k++) {
                int sy = reflect101(k - ay, h);
                t = ring_get(&ring, sy, &fresh);
                if (fresh) {
                    const uint8_t *sr = vis_px(img, 0, sy);
                    for (int c = 0; c < ch; c++) {
                        unsigned acc = 0;
                        for (int j = 0; j < kw; j++)
                            acc += sr[xi[j] + c];
                        t[c] = acc;
                        for (int x = 1; x < w; x++) {
                            acc += sr[xi[x + kw - 1] + c];
                            acc -= sr[xi[x - 1] + c];
                            t[x * ch + c] = acc;
                        }
                    }
                }
                for (size_t i = 0; i < rowlen; i++)
                    vsum[i] += t[i];
            }
        }
    }
    rc = 0;
out:
    ring_release(&ring);
    free(xi);
    free(vsum);
    return rc;
}

int vis_blur_gaussian(struct vis_image *img, int ksize, double sigma)
{
    static const float small[4][7] = {
        {1.0f},
        {0.25f, 0.5f, 0.25f},
        {0.0625f, 0.25f, 0.375f, 0.25f, 0.0625f},
        {0.03125f, 0.109375f, 0.21875f, 0.28125f, 0.21875f, 0.109375f, 0.03125f},
    };
    float *k;
    int rc;

    if (ksize < 1 || ksize > VIS_MAX_KERNEL || !(ksize & 1))
        return ERR_INVALID;
    k = try_alloc((size_t)ksize, sizeof *k);
    if (!k)
        return ERR_NOMEM;
    if (sigma <= 0 && ksize <= 7) {
        memcpy(k, small[ksize / 2], (size_t)ksize * sizeof *k); /* cv2's fixed tables */
    } else {
        double s = sigma > 0 ? sigma : 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8, sum = 0;
        for (int i = 0; i < ksize; i++) {
            double x = i - (ksize - 1) * 0.5;
            k[i] = (float)exp(-x * x / (2 * s * s));
            sum += k[i];
        }
        for (int i = 0; i < ksize; i++)
            k[i] = (float)(k[i] / sum);
    }
    rc = sep_filter(img, k, ksize, k, ksize);
    free(k);
    return rc;
}

/*
 * Median with Huang's sliding histogram, per channel: moving right by one
 * pixel removes a column and adds one, and the median is tracked with the
 * count of values below it, so each step costs O(ksize) plus the distance
 * the median moves.  Borders replicate.
 */
int vis_blur_median(struct vis_image *img, int ksize)
{
    int w = img->w, h = img->h, ch = (int)img->fmt, r = ksize / 2, half, rc;
    size_t rowlen = (size_t)w * ch;
    const uint8_t **rows;
    struct ring ring = {0};

    if (ksize < 3 || ksize > 255 || !(ksize & 1))
        return ERR_INVALID;
    rows = try_alloc((size_t)ksize, sizeof *rows);
    if (!rows)
        return ERR_NOMEM;
    rc = ring_init(&ring, MIN(ksize, h), rowlen);
    if (rc < 0) {
        free(rows);
        return rc;
    }
    half = ksize * ksize / 2; /* median = element with 'half' smaller ones */
    for (int y = 0; y < h; y++) {
        uint8_t *d = vis_px(img, 0, y);
        /* copies of the source rows y-r..y+r (replicated at the borders),
         * taken before this output row overwrites anything */
        for (int dy = -r; dy <= r; dy++) {
            int sy = clampi(y + dy, h), fresh;
            uint8_t *t = ring_get(&ring, sy, &fresh);
            if (fresh)
                memcpy(t, vis_px(img, 0, sy), rowlen);
            rows[dy + r] = t;
        }
        for (int c = 0; c < ch; c++) {
            int hist[256] = {0}, med = 0, below = 0;
            for (int k = 0; k < ksize; k++)
                for (int dx = -r; dx <= r; dx++)
                    hist[rows[k][clampi(dx, w) * ch + c]]++;
            for (int x = 0; x < w; x++) {
                if (x > 0) {
                    int xo = clampi(x - r - 1, w) * ch + c, xn = clampi(x + r, w) * ch + c;
                    for (int k = 0; k < ksize; k++) {
                        int vo = rows[k][xo], vn = rows[k][xn];
                        hist[vo]--;
                        if (vo < med)
                            below--;
                        hist[vn]++;
                        if (vn < med)
                            below++;
                    }
                }
                /* move med so that below <= half < below + hist[med] */
                while (below > half) {
                    med--;
                    below -= hist[med];
                }
                while (below + hist[med] <= half) {
                    below += hist[med];
                    med++;
                }
                d[x * ch + c] = (uint8_t)med;
            }
        }
    }
    ring_release(&ring);
    free(rows);
    return 0;
}

int vis_pixelate(struct vis_image *img, int block)
{
    struct vis_image *small = NULL;
    int sw, sh, rc;

    if (block < 1 || block > VIS_MAX_SIDE)
        return ERR_INVALID;
    if (block == 1)
        return 0;
    sw = (int)lrint((double)img->w / block);
    sh = (int)lrint((double)img->h / block);
    rc = vis_resize(img, sw > 0 ? sw : 1, sh > 0 ? sh : 1, VIS_INTER_LINEAR, &small);
    if (rc < 0)
        return rc;
    rc = vis_resize_into(small, img, VIS_INTER_NEAREST);
    vis_image_free(small);
    return rc;
}

/* ---- thresholds and histograms ----------------------------------------------- */

static void histogram(const struct vis_image *img, int c, unsigned long hist[256])
{
    int ch = (int)img->fmt;

    memset(hist, 0, 256 * sizeof *hist);
    for (int y = 0; y < img->h; y++) {
        const uint8_t *p = vis_px(img, 0, y);
        for (int x = 0; x < img->w; x++) {
            if (c < 0) {
                for (int k = 0; k < ch; k++)
                    hist[p[x * ch + k]]++;
            } else {
                hist[p[x * ch + c]]++;
            }
        }
    }
}

/* Otsu as cv2: maximise between-class variance; ties keep the first. */
static int otsu(const unsigned long hist[256], unsigned long total)
{
    double mu = 0, scale = 1.0 / (double)total, mu1 = 0, q1 = 0, best = 0;
    int t = 0;

    for (int i = 0; i < 256; i++)
        mu += i * (double)hist[i];
    mu *= scale;
    for (int i = 0; i < 256; i++) {
        double p = hist[i] * scale, q2, mu2, sigma;
        mu1 *= q1;
        q1 += p;
        q2 = 1 - q1;
        if (fmin(q1, q2) < 1e-7 || fmax(q1, q2) > 1 - 1e-7) {
            mu1 = q1 > 0 ? (mu1 + i * p) / q1 : 0;
            continue;
        }
        mu1 = (mu1 + i * p) / q1;
        mu2 = (mu - q1 * mu1) / q2;
        sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
        if (sigma > best) {
            best = sigma;
            t = i;
        }
    }
    return t;
}

int vis_threshold(struct vis_image *img, double thresh, int maxval, int type, int *used)
{
    int base = type & 7, t, ch = (int)img->fmt;
    uint8_t lut[256], mx = vis__clamp_u8(maxval);

    if (base > VIS_THRESH_TOZERO_INV || (type & ~(7 | VIS_THRESH_OTSU)))
        return ERR_INVALID;
    if (type & VIS_THRESH_OTSU) {
        unsigned long hist[256];
        if (img->fmt != VIS_GRAY)
            return ERR_INVALID;
        histogram(img, 0, hist);
        t = otsu(hist, (unsigned long)img->w * (unsigned long)img->h);
    } else {
        double f = floor(thresh);
        t = f < -1 ? -1 : f > 255 ? 255 : (int)f;
    }
    for (int v = 0; v < 256; v++) {
        int above = v > t;
        switch (base) {
        case VIS_THRESH_BINARY: lut[v] = above ? mx : 0; break;
        case VIS_THRESH_BINARY_INV: lut[v] = above ? 0 : mx; break;
        case VIS_THRESH_TRUNC: lut[v] = above ? (uint8_t)t : (uint8_t)v; break;
        case VIS_THRESH_TOZERO: lut[v] = above ? (uint8_t)v : 0; break;
        default: lut[v] = above ? 0 : (uint8_t)v; break;
        }
    }
    for (int y = 0; y < img->h; y++) {
        uint8_t *p = vis_px(img, 0, y);
        for (int i = 0; i < img->w * ch; i++)
            p[i] = lut[p[i]];
    }
    if (used)
        *used = t;
    return 0;
}

static void apply_lut_channel(struct vis_image *img, int c, const uint8_t lut[256])
{
    int ch = (int)img->fmt;

    for (int y = 0; y < img->h; y++) {
        uint8_t *p = vis_px(img, 0, y) + c;
        for (int x = 0; x < img->w; x++, p += ch)
            *p = lut[*p];
    }
}

/* cv2.equalizeHist's table for one histogram. */
static void equalize_lut(const unsigned long hist[256], unsigned long total, uint8_t lut[256])
{
    int i = 0;
    unsigned long sum = 0;
    double scale;

    while (i < 255 && hist[i] == 0)
        i++;
    if (hist[i] == total) {
        for (int k = 0; k < 256; k++)
            lut[k] = (uint8_t)i;
        return;
    }
    scale = 255.0 / (double)(total - hist[i]);
    for (int k = 0; k <= i; k++)
        lut[k] = 0;
    for (i++; i < 256; i++) {
        sum += hist[i];
        lut[i] = vis__clamp_u8((int)lrint(sum * scale));
    }
}

int vis_equalize_hist(struct vis_image *img)
{
    int nc = img->fmt == VIS_BGRA ? 3 : (int)img->fmt;
    unsigned long total = (unsigned long)img->w * (unsigned long)img->h;

    for (int c = 0; c < nc; c++) {
        unsigned long hist[256];
        uint8_t lut[256];
        histogram(img, c, hist);
        equalize_lut(hist, total, lut);
        apply_lut_channel(img, c, lut);
    }
    return 0;
}

/*
 * CLAHE (as cv2.createCLAHE): the image is split into tiles x tiles
 * regions; each gets a histogram clipped at clip * area / 256 with the
 * excess spread evenly, turned into an equalization table; each pixel
 * interpolates bilinearly between the tables of the four nearest tile
 * centres.  Images not divisible by the tile count use tiles of
 * ceil(size / tiles) and the last ones are partial (cv2 pads instead:
 * results differ slightly near the right/bottom border).
 */
int vis_clahe(struct vis_image *img, double clip, int tiles)
{
    int nc = img->fmt == VIS_BGRA ? 3 : (int)img->fmt, ch = (int)img->fmt;
    int tw, th;
    uint8_t *luts;

    if (tiles < 1 || tiles > 64)
        return ERR_INVALID;
    if (clip <= 0)
        clip = 40;
    tw = (img->w + tiles - 1) / tiles;
    th = (img->h + tiles - 1) / tiles;
    luts = try_alloc((size_t)tiles * tiles * 256, 1);
    if (!luts)
        return ERR_NOMEM;
    for (int c = 0; c < nc; c++) {
        for (int ty = 0; ty < tiles; ty++)
            for (int tx = 0; tx < tiles; tx++) {
                unsigned long hist[256] = {0}, area = 0, limit, excess = 0, sum = 0;
                uint8_t *lut = luts + ((size_t)ty * tiles + tx) * 256;
                int x0 = tx * tw, y0 = ty * th, x1 = MIN(x0 + tw, img->w), y1 = MIN(y0 + th, img->h);
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++, area++)
                        hist[vis_px(img, x, y)[c]]++;
                if (area == 0) {
                    for (int k = 0; k < 256; k++)
                        lut[k] = (uint8_t)k;
                    continue;
                }
                limit = (unsigned long)fmax(1.0, clip * (double)area / 256.0);
                for (int k = 0; k < 256; k++)
                    if (hist[k] > limit) {
                        excess += hist[k] - limit;
                        hist[k] = limit;
                    }
                unsigned long add = excess / 256, rest = excess % 256;
                for (int k = 0; k < 256; k++)
                    hist[k] += add + ((unsigned long)k < rest);
                for (int k = 0; k < 256; k++) {
                    sum += hist[k];
                    lut[k] = vis__clamp_u8((int)lrint(sum * 255.0 / (double)area));
                }
            }
        for (int y = 0; y < img->h; y++) {
            double fy = (y + 0.5) / th - 0.5;
            int ty0 = (int)floor(fy), ty1 = ty0 + 1;
            double wy = fy - ty0;
            ty0 = clampi(ty0, tiles), ty1 = clampi(ty1, tiles);
            uint8_t *p = vis_px(img, 0, y) + c;
            for (int x = 0; x < img->w; x++, p += ch) {
                double fx = (x + 0.5) / tw - 0.5;
                int tx0 = (int)floor(fx), tx1 = tx0 + 1;
                double wx = fx - tx0;
                tx0 = clampi(tx0, tiles), tx1 = clampi(tx1, tiles);
                int v = *p;
                double a = luts[((size_t)ty0 * tiles + tx0) * 256 + v];
                double b = luts[((size_t)ty0 * tiles + tx1) * 256 + v];
                double cc = luts[((size_t)ty1 * tiles + tx0) * 256 + v];
                double d = luts[((size_t)ty1 * tiles + tx1) * 256 + v];
                *p = vis__clamp_u8((int)((a * (1 - wx) + b * wx) * (1 - wy) +
                                         (cc * (1 - wx) + d * wx) * wy + 0.5));
            }
        }
    }
    free(luts);
    return 0;
}

int vis_contrast_stretch(struct vis_image *img, double low_pct, double high_pct)
{
    unsigned long hist[256], total, acc = 0;
    int ch = (int)img->fmt, lo = 0, hi = 255;
    uint8_t lut[256];

    if (!(low_pct >= 0 && high_pct <= 100 && low_pct < high_pct))
        return ERR_INVALID;
    histogram(img, -1, hist);
    total = (unsigned long)img->w * (unsigned long)img->h * (unsigned long)ch;
    /* percentile = smallest value v with cumulative count >= pct * total */
    for (lo = 0; lo < 255; lo++) {
        acc += hist[lo];
        if ((double)acc >= low_pct / 100.0 * (double)total && acc > 0)
            break;
    }
    acc = 0;
    for (hi = 0; hi < 255; hi++) {
        acc += hist[hi];
        if ((double)acc >= high_pct / 100.0 * (double)total)
            break;
    }
    for (int v = 0; v < 256; v++) {
        if (hi <= lo)
            lut[v] = (uint8_t)v;
        else
            lut[v] = vis__clamp_u8((int)lrint((v - lo) * 255.0 / (hi - lo)));
    }
    for (int c = 0; c < ch; c++)
        apply_lut_channel(img, c, lut);
    return 0;
}

long long vis_count_in_range(const struct vis_image *img, const int lo[3], const int hi[3])
{
    int ch = (int)img->fmt, nc = ch == 4 ? 3 : ch;
    long long n = 0;

    for (int y = 0; y < img->h; y++) {
        const uint8_t *p = vis_px(img, 0, y);
        for (int x = 0; x < img->w; x++, p += ch) {
            int in = 1;
            for (int c = 0; c < nc; c++)
                in &= p[c] >= lo[c] && p[c] <= hi[c];
            n += in;
        }
    }
    return n;
}

/* ---- morphology ------------------------------------------------------------------ */

/* One erode (want_max = 0) or dilate pass, separable, border ignored;
 * horizontal results kept in a ring of kh rows. */
static int morph_pass(struct vis_image *img, int kw, int kh, int want_max)
{
    int w = img->w, h = img->h, ch = (int)img->fmt, ax = kw / 2, ay = kh / 2;
    size_t rowlen = (size_t)w * ch;
    struct ring ring = {0};
    int rc = ring_init(&ring, MIN(kh, h), rowlen);

    if (rc < 0)
        return rc;
    for (int y = 0; y < h; y++) {
        int a = MAX(y - ay, 0), b = MIN(y - ay + kh - 1, h - 1);
        uint8_t *d = vis_px(img, 0, y);
        const uint8_t *t0 = NULL;
        for (int k = a; k <= b; k++) {
            int fresh;
            uint8_t *t = ring_get(&ring, k, &fresh);
            if (fresh) {
                const uint8_t *s = vis_px(img, 0, k);
                for (int x = 0; x < w; x++) {
                    int xa = MAX(x - ax, 0), xb = MIN(x - ax + kw - 1, w - 1);
                    for (int c = 0; c < ch; c++) {
                        int m = s[xa * ch + c];
                        for (int j = xa + 1; j <= xb; j++) {
                            int v = s[j * ch + c];
                            m = want_max ? MAX(m, v) : MIN(m, v);
                        }
                        t[x * ch + c] = (uint8_t)m;
                    }
                }
            }
            if (k == a)
                t0 = t;
        }
        /* all rows a..b are now in the ring: combine them */
        memcpy(d, t0, rowlen);
        for (int k = a + 1; k <= b; k++) {
            int fresh;
            const uint8_t *t = ring_get(&ring, k, &fresh);
            for (size_t i = 0; i < rowlen; i++)
                d[i] = want_max ? MAX(d[i], t[i]) : MIN(d[i], t[i]);
        }
    }
    ring_release(&ring);
    return 0;
}

static void diff_into(struct vis_image *img, const struct vis_image *a, const struct vis_image *b)
{
    size_t rowlen = (size_t)img->w * (size_t)img->fmt;
    for (int y = 0; y < img->h; y++) {
        uint8_t *d = vis_px(img, 0, y);
        const uint8_t *pa = vis_px(a, 0, y), *pb = vis_px(b, 0, y);
        for (size_t i = 0; i < rowlen; i++)
            d[i] = (uint8_t)(pa[i] > pb[i] ? pa[i] - pb[i] : 0);
    }
}

int vis_morph(struct vis_image *img, enum vis_morph op, int kw, int kh)
{
    struct vis_image *orig = NULL, *other = NULL;
    int rc = 0;

    if (kw < 1 || kh < 1 || kw > VIS_MAX_KERNEL || kh > VIS_MAX_KERNEL)
        return ERR_INVALID;
    switch (op) {
    case VIS_MORPH_ERODE: return morph_pass(img, kw, kh, 0);
    case VIS_MORPH_DILATE: return morph_pass(img, kw, kh, 1);
    case VIS_MORPH_OPEN:
        rc = morph_pass(img, kw, kh, 0);
        return rc < 0 ? rc : morph_pass(img, kw, kh, 1);
    case VIS_MORPH_CLOSE:
        rc = morph_pass(img, kw, kh, 1);
        return rc < 0 ? rc : morph_pass(img, kw, kh, 0);
    case VIS_MORPH_GRADIENT:
    case VIS_MORPH_TOPHAT:
    case VIS_MORPH_BLACKHAT:
        break;
    default:
        return ERR_INVALID;
    }
    orig = vis_image_clone(img);
    other = vis_image_clone(img);
    if (!orig || !other) {
        rc = ERR_NOMEM;
        goto out;
    }
    if (op == VIS_MORPH_GRADIENT) { /* dilate - erode */
        if ((rc = morph_pass(img, kw, kh, 1)) < 0 || (rc = morph_pass(other, kw, kh, 0)) < 0)
            goto out;
        diff_into(img, img, other);
    } else if (op == VIS_MORPH_TOPHAT) { /* src - open(src) */
        if ((rc = vis_morph(other, VIS_MORPH_OPEN, kw, kh)) < 0)
            goto out;
        diff_into(img, orig, other);
    } else { /* close(src) - src */
        if ((rc = vis_morph(other, VIS_MORPH_CLOSE, kw, kh)) < 0)
            goto out;
        diff_into(img, other, orig);
    }
out:
    vis_image_free(orig);
    vis_image_free(other);
    return rc;
}
