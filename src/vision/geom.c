/*
 * geom.c — views, crops, colour conversion, resizing, letterboxing and the
 * HWC u8 -> CHW float tensor conversion used before every model call.
 *
 * Resizing follows OpenCV's cv2.resize conventions so that our pixels agree
 * with Roboflow's Python within +-1:
 *   - INTER_LINEAR maps destination pixel centres to the source,
 *     fx = (x + 0.5) * src/dst - 0.5, clamps at the borders, and blends the
 *     two neighbours with 11-bit fixed-point weights in each direction
 *     (horizontal pass into int rows, vertical pass with rounding >> 22).
 *     Each horizontal row is computed once and reused by the next
 *     destination row when the source rows coincide.
 *   - INTER_NEAREST takes floor(x * src/dst).
 *   - INTER_AREA averages the covered source area (fractional weights at
 *     the edges) when shrinking; when growing it falls back to LINEAR
 *     (cv2 uses a slightly different weight formula there: +-1 at most in
 *     our tests, not bit-exact).
 */
#include "vision/vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision_int.h"

/* ---- views, crops, fill, paste ------------------------------------------- */

int vis_rect_clip(const struct vis_image *img, int *x, int *y, int *w, int *h)
{
    long long x0 = *x, y0 = *y, x1 = (long long)*x + *w, y1 = (long long)*y + *h;

    if (x0 < 0)
        x0 = 0;
    if (y0 < 0)
        y0 = 0;
    if (x1 > img->w)
        x1 = img->w;
    if (y1 > img->h)
        y1 = img->h;
    if (x1 <= x0 || y1 <= y0) {
        *w = *h = 0;
        return 0;
    }
    *x = (int)x0;
    *y = (int)y0;
    *w = (int)(x1 - x0);
    *h = (int)(y1 - y0);
    return 1;
}

int vis_image_view(const struct vis_image *img, int x, int y, int w, int h,
                   struct vis_image *out)
{
    if (!vis_rect_clip(img, &x, &y, &w, &h))
        return ERR_INVALID;
    out->w = w;
    out->h = h;
    out->stride = img->stride;
    out->fmt = img->fmt;
    out->px = vis_px(img, x, y);
    out->_view = 1;
    out->aux = NULL;
    out->aux_free = NULL;
    return 0;
}

int vis_crop(const struct vis_image *img, int x, int y, int w, int h, struct vis_image **out)
{
    struct vis_image v, *c;

    if (vis_image_view(img, x, y, w, h, &v) < 0)
        return ERR_INVALID;
    c = vis_image_clone(&v);
    if (!c)
        return ERR_NOMEM;
    *out = c;
    return 0;
}

static uint8_t gray_of(int b, int g, int r)
{
    /* cv2 fixed point: 0.299 R + 0.587 G + 0.114 B with 14 bits */
    return (uint8_t)((r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14);
}

void vis_image_fill(struct vis_image *img, struct vis_color c)
{
    int ch = (int)img->fmt;
    uint8_t v[4] = {c.b, c.g, c.r, 255};
    size_t row = (size_t)img->w * ch;
    uint8_t *first = vis_px(img, 0, 0);

    if (img->fmt == VIS_GRAY)
        v[0] = gray_of(c.b, c.g, c.r);
    /* one row pixel by pixel, the others copied from it */
    if (ch == 1) {
        memset(first, v[0], row);
    } else {
        for (int x = 0; x < img->w; x++)
            memcpy(first + (size_t)x * ch, v, (size_t)ch);
    }
    for (int y = 1; y < img->h; y++)
        memcpy(vis_px(img, 0, y), first, row);
}

int vis_image_paste(struct vis_image *dst, const struct vis_image *src, int x, int y)
{
    int cx = x, cy = y, cw = src->w, ch = src->h;

    if (dst->fmt != src->fmt)
        return ERR_INVALID;
    if (!vis_rect_clip(dst, &cx, &cy, &cw, &ch))
        return 0;
    for (int r = 0; r < ch; r++)
        memmove(vis_px(dst, cx, cy + r), vis_px(src, cx - x, cy - y + r),
                (size_t)cw * (size_t)dst->fmt);
    return 0;
}

/* ---- colour conversion ------------------------------------------------------ */

int vis_convert(const struct vis_image *img, enum vis_fmt fmt, struct vis_image **out)
{
    struct vis_image *d = vis__image_alloc(img->w, img->h, fmt, 0);
    int sc = (int)img->fmt, dc = (int)fmt;

    if (!d)
        return (fmt == VIS_GRAY || fmt == VIS_BGR || fmt == VIS_BGRA) ? ERR_NOMEM : ERR_INVALID;
    for (int y = 0; y < img->h; y++) {
        const uint8_t *s = vis_px(img, 0, y);
        uint8_t *p = vis_px(d, 0, y);
        if (sc == dc) {
            memcpy(p, s, (size_t)img->w * (size_t)sc);
            continue;
        }
        for (int x = 0; x < img->w; x++, s += sc, p += dc) {
            if (dc == 1) {
                p[0] = gray_of(s[0], s[1], s[2]);
            } else {
                if (sc == 1)
                    p[0] = p[1] = p[2] = s[0];
                else
                    memcpy(p, s, 3);
                if (dc == 4)
                    p[3] = 255;
            }
        }
    }
    *out = d;
    return 0;
}

void vis_swap_rb(struct vis_image *img)
{
    int ch = (int)img->fmt;

    if (ch < 3)
        return;
    for (int y = 0; y < img->h; y++) {
        uint8_t *p = vis_px(img, 0, y);
        for (int x = 0; x < img->w; x++, p += ch) {
            uint8_t t = p[0];
            p[0] = p[2];
            p[2] = t;
        }
    }
}

int vis_orient(const struct vis_image *img, int o, struct vis_image **out)
{
    struct vis_image *c = vis_image_clone(img);
    int rc;

    if (!c)
        return ERR_NOMEM;
    if (o < 1 || o > 8) {
        vis_image_free(c);
        return ERR_INVALID;
    }
    rc = vis__orient(&c, o);
    if (rc < 0) {
        vis_image_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- resize ------------------------------------------------------------------ */

#define COEF_BITS 11
#define COEF_ONE (1 << COEF_BITS)

/* Source index and 11-bit weight of the left neighbour for each dst. */
static void linear_tab(int ssize, int dsize, int *ofs, short *alpha)
{
    double scale = (double)ssize / dsize;

    for (int x = 0; x < dsize; x++) {
        double f = (x + 0.5) * scale - 0.5;
        int s = (int)floor(f);
        f -= s;
        if (s < 0) {
            s = 0;
            f = 0;
        }
        if (s >= ssize - 1) {
            s = ssize - 1;
            f = 0;
        }
        ofs[x] = s;
        /* as cv2: saturate_cast<short>((1 - f) * 2048), other = 2048 - it */
        alpha[x] = (short)lrint((1.0 - f) * COEF_ONE);
    }
}

static void hline(const uint8_t *s, int ssize, int ch, int dw, const int *xofs, const short *xa,
                  int *row)
{
    if (ch == 3) {
        /* the common case, unrolled; the last column may lack a right
         * neighbour, handled by the generic loop below */
        int x = 0;
        for (; x < dw && xofs[x] + 1 < ssize; x++) {
            const uint8_t *p0 = s + (size_t)xofs[x] * 3;
            int a0 = xa[x], a1 = COEF_ONE - a0;
            row[3 * x] = p0[0] * a0 + p0[3] * a1;
            row[3 * x + 1] = p0[1] * a0 + p0[4] * a1;
            row[3 * x + 2] = p0[2] * a0 + p0[5] * a1;
        }
        for (; x < dw; x++) {
            const uint8_t *p0 = s + (size_t)xofs[x] * 3;
            row[3 * x] = p0[0] * COEF_ONE;
            row[3 * x + 1] = p0[1] * COEF_ONE;
            row[3 * x + 2] = p0[2] * COEF_ONE;
        }
        return;
    }
    for (int x = 0; x < dw; x++) {
        int sx = xofs[x], a0 = xa[x], a1 = COEF_ONE - a0;
        const uint8_t *p0 = s + (size_t)sx * ch;
        const uint8_t *p1 = sx + 1 < ssize ? p0 + ch : p0;
        for (int c = 0; c < ch; c++)
            row[x * ch + c] = p0[c] * a0 + p1[c] * a1;
    }
}

/* Vertical blend of two horizontally resampled rows, in blocks of 8 for
 * GCC's -O2 vectoriser. */
static void vline(uint8_t *restrict d, const int *restrict r0, const int *restrict r1, int b0,
                  int b1, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++)
            d[i + q] = (uint8_t)((b0 * r0[i + q] + b1 * r1[i + q] + (1 << (2 * COEF_BITS - 1))) >>
                                 (2 * COEF_BITS));
    for (; i < n; i++)
        d[i] = (uint8_t)((b0 * r0[i] + b1 * r1[i] + (1 << (2 * COEF_BITS - 1))) >> (2 * COEF_BITS));
}

static int resize_linear(const struct vis_image *src, struct vis_image *dst)
{
    int ch = (int)src->fmt, dw = dst->w, dh = dst->h, rc = ERR_NOMEM;
    size_t rowlen = (size_t)dw * ch;
    int *xofs = try_alloc((size_t)dw, sizeof *xofs), *yofs = try_alloc((size_t)dh, sizeof *yofs);
    short *xa = try_alloc((size_t)dw, sizeof *xa), *ya = try_alloc((size_t)dh, sizeof *ya);
    int *rows = try_alloc(2 * rowlen, sizeof *rows);
    int have0 = -1, have1 = -1;

    if (!xofs || !yofs || !xa || !ya || !rows)
        goto out;
    linear_tab(src->w, dw, xofs, xa);
    linear_tab(src->h, dh, yofs, ya);
    for (int y = 0; y < dh; y++) {
        int sy0 = yofs[y], sy1 = sy0 + 1 < src->h ? sy0 + 1 : sy0;
        int b0 = ya[y], b1 = COEF_ONE - b0;
        int *r0 = rows, *r1 = rows + rowlen;
        uint8_t *d = vis_px(dst, 0, y);

        /* keep the two horizontally resampled source rows in rows[0..1] */
        if (have0 != sy0) {
            if (have1 == sy0) {
                memcpy(r0, r1, rowlen * sizeof *r0);
            } else {
                hline(vis_px(src, 0, sy0), src->w, ch, dw, xofs, xa, r0);
            }
            have0 = sy0;
            have1 = -1;
        }
        if (have1 != sy1) {
            hline(vis_px(src, 0, sy1), src->w, ch, dw, xofs, xa, r1);
            have1 = sy1;
        }
        vline(d, r0, r1, b0, b1, rowlen);
    }
    rc = 0;
out:
    free(xofs);
    free(yofs);
    free(xa);
    free(ya);
    free(rows);
    return rc;
}

static int resize_nearest(const struct vis_image *src, struct vis_image *dst)
{
    int ch = (int)src->fmt;
    int *xofs = try_alloc((size_t)dst->w, sizeof *xofs);
    double sx = (double)src->w / dst->w, sy = (double)src->h / dst->h;

    if (!xofs)
        return ERR_NOMEM;
    for (int x = 0; x < dst->w; x++) {
        int s = (int)floor(x * sx);
        xofs[x] = (s < src->w ? s : src->w - 1) * ch;
    }
    for (int y = 0; y < dst->h; y++) {
        int ys = (int)floor(y * sy);
        const uint8_t *s = vis_px(src, 0, ys < src->h ? ys : src->h - 1);
        uint8_t *d = vis_px(dst, 0, y);
        for (int x = 0; x < dst->w; x++, d += ch)
            memcpy(d, s + xofs[x], (size_t)ch);
    }
    free(xofs);
    return 0;
}

/*
 * Area weights along one axis: destination i covers source interval
 * [i*scale, (i+1)*scale).  Stored as a list of (dst, src, weight) triples,
 * sorted by dst; at most ssize + dsize entries.
 */
struct area_w { int d, s; float w; };

static int area_tab(int ssize, int dsize, struct area_w *t)
{
    double scale = (double)ssize / dsize;
    int n = 0;

    for (int d = 0; d < dsize; d++) {
        double f0 = d * scale, f1 = (d + 1) * scale;
        int s0 = (int)floor(f0), s1 = (int)ceil(f1);
        if (s1 > ssize)
            s1 = ssize;
        for (int s = s0; s < s1; s++) {
            double a = s > f0 ? s : f0, b = s + 1 < f1 ? s + 1 : f1;
            if (b - a > 1e-9)
                t[n++] = (struct area_w){d, s, (float)((b - a) / scale)};
        }
    }
    return n;
}

static void acc_add_u8(unsigned *restrict a, const uint8_t *restrict s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++)
            a[i + q] += s[i + q];
    for (; i < n; i++)
        a[i] += s[i];
}

/* Integer shrink factors: plain block means with rounding.  Rows are
 * summed first over the full source width (a contiguous loop the compiler
 * vectorises), then columns in blocks of fx. */
static int resize_area_int(const struct vis_image *src, struct vis_image *dst, int fx, int fy)
{
    int ch = (int)src->fmt;
    unsigned n = (unsigned)fx * (unsigned)fy;
    uint64_t mul = ((1ull << 32) + n / 2) / n; /* sum / n by multiply-shift */
    size_t srow = (size_t)src->w * ch;
    unsigned *acc = try_alloc(srow, sizeof *acc);

    if (!acc)
        return ERR_NOMEM;
    for (int y = 0; y < dst->h; y++) {
        uint8_t *d = vis_px(dst, 0, y);
        const uint8_t *s0 = vis_px(src, 0, y * fy);
        for (size_t i = 0; i < srow; i++)
            acc[i] = s0[i];
        for (int k = 1; k < fy; k++)
            acc_add_u8(acc, vis_px(src, 0, y * fy + k), srow);
        for (int x = 0; x < dst->w; x++)
            for (int c = 0; c < ch; c++) {
                unsigned sum = 0;
                const unsigned *a = acc + (size_t)x * fx * ch + c;
                for (int j = 0; j < fx; j++)
                    sum += a[j * ch];
                d[x * ch + c] = (uint8_t)(((uint64_t)sum * mul + (1ull << 31)) >> 32);
            }
    }
    free(acc);
    return 0;
}

static int resize_area(const struct vis_image *src, struct vis_image *dst)
{
    int ch = (int)src->fmt, dw = dst->w, rc = ERR_NOMEM, nx, ny;
    size_t rowlen = (size_t)dw * ch;
    struct area_w *xt = try_alloc((size_t)src->w + dw + 1, sizeof *xt);
    struct area_w *yt = try_alloc((size_t)src->h + dst->h + 1, sizeof *yt);
    float *hrow = try_alloc(rowlen, sizeof *hrow), *acc = try_alloc(rowlen, sizeof *acc);

    if (!xt || !yt || !hrow || !acc)
        goto out;
    nx = area_tab(src->w, dw, xt);
    ny = area_tab(src->h, dst->h, yt);
    memset(acc, 0, rowlen * sizeof *acc);
    for (int k = 0; k < ny; k++) {
        const uint8_t *s = vis_px(src, 0, yt[k].s);
        float wy = yt[k].w;
        memset(hrow, 0, rowlen * sizeof *hrow);
        for (int j = 0; j < nx; j++) {
            const uint8_t *p = s + (size_t)xt[j].s * ch;
            float *h = hrow + (size_t)xt[j].d * ch;
            for (int c = 0; c < ch; c++)
                h[c] += p[c] * xt[j].w;
        }
        for (size_t i = 0; i < rowlen; i++)
            acc[i] += hrow[i] * wy;
        if (k + 1 == ny || yt[k + 1].d != yt[k].d) {
            uint8_t *d = vis_px(dst, 0, yt[k].d);
            for (size_t i = 0; i < rowlen; i++)
                d[i] = vis__clamp_u8((int)(acc[i] + 0.5f));
            memset(acc, 0, rowlen * sizeof *acc);
        }
    }
    rc = 0;
out:
    free(xt);
    free(yt);
    free(hrow);
    free(acc);
    return rc;
}

int vis_resize_into(const struct vis_image *src, struct vis_image *dst, enum vis_interp interp)
{
    if (src->fmt != dst->fmt || src->w <= 0 || src->h <= 0 || dst->w <= 0 || dst->h <= 0)
        return ERR_INVALID;
    if (src->w == dst->w && src->h == dst->h)
        return vis_image_paste(dst, src, 0, 0);
    switch (interp) {
    case VIS_INTER_NEAREST: return resize_nearest(src, dst);
    case VIS_INTER_LINEAR: return resize_linear(src, dst);
    case VIS_INTER_AREA:
        if (src->w % dst->w == 0 && src->h % dst->h == 0)
            return resize_area_int(src, dst, src->w / dst->w, src->h / dst->h);
        if (dst->w <= src->w && dst->h <= src->h)
            return resize_area(src, dst);
        return resize_linear(src, dst);
    default: return ERR_INVALID;
    }
}

int vis_resize(const struct vis_image *img, int w, int h, enum vis_interp interp,
               struct vis_image **out)
{
    struct vis_image *d;
    int rc;

    if (!vis__size_ok(w, h))
        return w <= 0 || h <= 0 ? ERR_INVALID : ERR_LIMIT;
    d = vis__image_alloc(w, h, img->fmt, 0);
    if (!d)
        return ERR_NOMEM;
    rc = vis_resize_into(img, d, interp);
    if (rc < 0) {
        vis_image_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* ---- affine warp and rotation ----------------------------------------------- */

int vis_warp_affine(const struct vis_image *img, const double m[6], int w, int h,
                    struct vis_color fill, struct vis_image **out)
{
    double det = m[0] * m[4] - m[1] * m[3], ia, ib, ic, id, ie, iff;
    struct vis_image *d;
    int ch = (int)img->fmt;
    uint8_t fv[4] = {fill.b, fill.g, fill.r, 255};

    if (!vis__size_ok(w, h))
        return w <= 0 || h <= 0 ? ERR_INVALID : ERR_LIMIT;
    if (!(det > 1e-12 || det < -1e-12))
        return ERR_INVALID;
    if (img->fmt == VIS_GRAY)
        fv[0] = (uint8_t)((fill.r * 4899 + fill.g * 9617 + fill.b * 1868 + (1 << 13)) >> 14);
    /* inverse of [a b c; d e f] */
    ia = m[4] / det;
    ib = -m[1] / det;
    id = -m[3] / det;
    ie = m[0] / det;
    ic = -(ia * m[2] + ib * m[5]);
    iff = -(id * m[2] + ie * m[5]);
    d = vis__image_alloc(w, h, img->fmt, 0);
    if (!d)
        return ERR_NOMEM;
    for (int y = 0; y < h; y++) {
        uint8_t *p = vis_px(d, 0, y);
        for (int x = 0; x < w; x++, p += ch) {
            double sx = ia * x + ib * y + ic, sy = id * x + ie * y + iff;
            /* cv2 quantises the sub-pixel position to 1/32 */
            double fx0 = floor(sx), fy0 = floor(sy);
            int x0, y0, ax, ay;
            if (!(sx > -1 && sy > -1 && sx < img->w && sy < img->h)) {
                memcpy(p, fv, (size_t)ch);
                continue;
            }
            x0 = (int)fx0;
            y0 = (int)fy0;
            ax = (int)((sx - fx0) * 32 + 0.5);
            ay = (int)((sy - fy0) * 32 + 0.5);
            if (ax == 32) { x0++; ax = 0; }
            if (ay == 32) { y0++; ay = 0; }
            for (int c = 0; c < ch; c++) {
                int v[4];
                for (int k = 0; k < 4; k++) {
                    int xx = x0 + (k & 1), yy = y0 + (k >> 1);
                    v[k] = xx >= 0 && yy >= 0 && xx < img->w && yy < img->h
                               ? vis_px(img, xx, yy)[c]
                               : fv[c];
                }
                int top = v[0] * (32 - ax) + v[1] * ax, bot = v[2] * (32 - ax) + v[3] * ax;
                p[c] = (uint8_t)((top * (32 - ay) + bot * ay + 512) >> 10);
            }
        }
    }
    *out = d;
    return 0;
}

int vis_rotate(const struct vis_image *img, double degrees, struct vis_image **out)
{
    double r, a, b, cx = img->w / 2, cy = img->h / 2, m[6], nw, nh;
    int k;

    if (!(fabs(degrees) <= 1e9))
        return ERR_INVALID; /* NaN, inf or absurd */
    r = degrees * M_PI / 180.0;
    a = cos(r);
    b = sin(r);
    nw = img->h * fabs(b) + img->w * fabs(a);
    nh = img->h * fabs(a) + img->w * fabs(b);
    k = (int)fmod(fmod(degrees, 360.0) + 360.0, 360.0);
    /* exact multiples of 90 degrees: a pure pixel permutation */
    if (fmod(degrees, 90.0) == 0) {
        static const int orient[4] = {1, 8, 3, 6}; /* ccw 0, 90, 180, 270 */
        return vis_orient(img, orient[(k / 90) % 4], out);
    }
    if (nw > VIS_MAX_SIDE || nh > VIS_MAX_SIDE)
        return ERR_LIMIT;
    /* cv2.getRotationMatrix2D: [a b (1-a)cx - b cy; -b a b cx + (1-a) cy] */
    m[0] = a;
    m[1] = b;
    m[2] = (1 - a) * cx - b * cy + (int)nw / 2.0 - cx;
    m[3] = -b;
    m[4] = a;
    m[5] = b * cx + (1 - a) * cy + (int)nh / 2.0 - cy;
    return vis_warp_affine(img, m, (int)nw, (int)nh, VIS_RGB(0, 0, 0), out);
}

/* ---- letterbox --------------------------------------------------------------- */

static void fill_rect(struct vis_image *img, int x, int y, int w, int h, struct vis_color c)
{
    struct vis_image v;

    if (vis_image_view(img, x, y, w, h, &v) == 0)
        vis_image_fill(&v, c);
}

int vis_letterbox(const struct vis_image *img, int w, int h, struct vis_color fill,
                  struct vis_image **out, struct vis_letterbox *lb)
{
    struct vis_image *canvas, view;
    struct vis_letterbox l;
    double img_ratio = (double)img->w / img->h, want_ratio = (double)w / h;
    int rc;

    if (!vis__size_ok(w, h))
        return w <= 0 || h <= 0 ? ERR_INVALID : ERR_LIMIT;
    if (img_ratio >= want_ratio) {
        l.new_w = w;
        l.new_h = (int)(w / img_ratio);
    } else {
        l.new_h = h;
        l.new_w = (int)(h * img_ratio);
    }
    if (l.new_w < 1)
        l.new_w = 1;
    if (l.new_h < 1)
        l.new_h = 1;
    l.pad_top = (h - l.new_h) / 2;
    l.pad_bottom = h - l.new_h - l.pad_top;
    l.pad_left = (w - l.new_w) / 2;
    l.pad_right = w - l.new_w - l.pad_left;
    l.scale_x = (double)l.new_w / img->w;
    l.scale_y = (double)l.new_h / img->h;
    canvas = vis__image_alloc(w, h, img->fmt, 0);
    if (!canvas)
        return ERR_NOMEM;
    /* fill only the padding: the four bands around the image */
    fill_rect(canvas, 0, 0, w, l.pad_top, fill);
    fill_rect(canvas, 0, l.pad_top + l.new_h, w, l.pad_bottom, fill);
    fill_rect(canvas, 0, l.pad_top, l.pad_left, l.new_h, fill);
    fill_rect(canvas, l.pad_left + l.new_w, l.pad_top, l.pad_right, l.new_h, fill);
    rc = vis_image_view(canvas, l.pad_left, l.pad_top, l.new_w, l.new_h, &view);
    if (rc == 0)
        rc = vis_resize_into(img, &view, VIS_INTER_LINEAR);
    if (rc < 0) {
        vis_image_free(canvas);
        return rc;
    }
    *out = canvas;
    if (lb)
        *lb = l;
    return 0;
}

/* ---- tensor ------------------------------------------------------------------- */

int vis_to_tensor_f32(const struct vis_image *img, const struct vis_tensor_opts *opts, float *out,
                      size_t cap)
{
    size_t plane = (size_t)img->w * (size_t)img->h;
    int ch = (int)img->fmt;
    float lut[3][256];
    int src_c[3];

    if (cap / 3 < plane)
        return ERR_LIMIT;
    /* output channel k reads source channel src_c[k] */
    for (int k = 0; k < 3; k++) {
        int sc = opts->rgb ? 2 - k : k;
        float scale = opts->scale != 0 ? opts->scale : 1.0f / 255.0f;
        float sd = opts->std[k] != 0 ? opts->std[k] : 1.0f;
        src_c[k] = ch == 1 ? 0 : sc;
        for (int v = 0; v < 256; v++)
            lut[k][v] = ((float)v * scale - opts->mean[k]) / sd;
    }
    for (int y = 0; y < img->h; y++) {
        const uint8_t *s = vis_px(img, 0, y);
        float *o0 = out + (size_t)y * img->w, *o1 = o0 + plane, *o2 = o1 + plane;
        if (ch == 3) {
            for (int x = 0; x < img->w; x++, s += 3) {
                o0[x] = lut[0][s[src_c[0]]];
                o1[x] = lut[1][s[src_c[1]]];
                o2[x] = lut[2][s[src_c[2]]];
            }
        } else {
            for (int x = 0; x < img->w; x++, s += ch) {
                o0[x] = lut[0][s[src_c[0]]];
                o1[x] = lut[1][s[src_c[1]]];
                o2[x] = lut[2][s[src_c[2]]];
            }
        }
    }
    return 0;
}
