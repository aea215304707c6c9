/*
 * preproc.c — image -> network input tensor, as Roboflow's classic
 * pre-processing does it (WORKFLOWS.md 4.2, 4.5), fused into one pass.
 *
 * Order: static crop (percent of the original) -> contrast -> grayscale ->
 * resize (stretch / letterbox / centre crop) -> channel order -> scaling and
 * normalisation -> NCHW planes.  Crop is a view (no copy); contrast and
 * grayscale, which are rare, work on a copy of the cropped pixels.  The
 * resize is cv2's INTER_LINEAR on float (half-pixel centres, edge clamp)
 * and is computed directly from the 8-bit source into the float planes, so
 * a 1080p frame is read once and nothing of input size is allocated.
 *
 * The geometry is returned as struct model_letterbox so the decoders can map
 * boxes back: x_orig = (x_in - ox) / sx + crop_x, where ox and sx follow
 * Roboflow's post_process_bboxes (padding (in - round(orig*scale)) / 2).
 */
#include "model/model_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

void model__letterbox_plan(const struct model *m, int w, int h, struct model_letterbox *lb,
                           int *rw, int *rh, int *px, int *py)
{
    int W = m->in_w, H = m->in_h;
    double s;

    switch (m->prep.resize) {
    case RESIZE_LETTERBOX:
        s = MIN((double)W / w, (double)H / h);
        *rw = MAX(1, (int)(w * s));
        *rh = MAX(1, (int)(h * s));
        *px = (W - *rw) / 2;
        *py = (H - *rh) / 2;
        lb->sx = lb->sy = (float)s;
        lb->ox = (float)((W - nearbyint(w * s)) / 2.0);
        lb->oy = (float)((H - nearbyint(h * s)) / 2.0);
        break;
    case RESIZE_CENTER_CROP:
        s = MAX((double)W / w, (double)H / h);
        *rw = MAX(1, (int)nearbyint(w * s));
        *rh = MAX(1, (int)nearbyint(h * s));
        *px = (W - *rw) / 2;
        *py = (H - *rh) / 2;
        lb->sx = lb->sy = (float)s;
        lb->ox = (float)*px;
        lb->oy = (float)*py;
        break;
    default:
        *rw = W;
        *rh = H;
        *px = *py = 0;
        lb->sx = (float)W / (float)w;
        lb->sy = (float)H / (float)h;
        lb->ox = lb->oy = 0;
        break;
    }
}

/* cv2-style (2..98 percentile) contrast stretch or global histogram
 * equalisation, in place on a BGR/gray/BGRA copy (alpha untouched). */
static void contrast_apply(struct vis_image *im, enum model__contrast mode)
{
    uint64_t hist[256] = {0}, n = 0;
    int ch = (int)im->fmt, use = ch == 4 ? 3 : ch;
    for (int y = 0; y < im->h; y++) {
        const uint8_t *r = vis_px(im, 0, y);
        for (int x = 0; x < im->w; x++)
            for (int c = 0; c < use; c++)
                hist[r[x * ch + c]]++;
    }
    n = (uint64_t)im->w * (uint64_t)im->h * (uint64_t)use;
    uint8_t lut[256];
    if (mode == CONTRAST_STRETCH) {
        /* numpy.percentile (linear): value at rank q*(n-1). */
        double lo = 0, hi = 0;
        for (int k = 0; k < 2; k++) {
            double rank = (k ? 0.98 : 0.02) * (double)(n - 1);
            uint64_t r0 = (uint64_t)floor(rank), cum = 0;
            int v0 = -1, v1 = -1;
            for (int v = 0; v < 256; v++) {
                cum += hist[v];
                if (v0 < 0 && cum > r0)
                    v0 = v;
                if (v1 < 0 && cum > r0 + 1)
                    v1 = v;
            }
            if (v1 < 0)
                v1 = v0;
            double val = v0 + (rank - (double)r0) * (v1 - v0);
            if (k)
                hi = val;
            else
                lo = val;
        }
        for (int v = 0; v < 256; v++) {
            double t = hi > lo ? (v - lo) / (hi - lo) : (v >= hi ? 1.0 : 0.0);
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            lut[v] = (uint8_t)(t * 255.0);
        }
    } else {
        uint64_t cum = 0;
        for (int v = 0; v < 256; v++) {
            cum += hist[v];
            lut[v] = (uint8_t)((double)cum / (double)n * 255.0);
        }
    }
    for (int y = 0; y < im->h; y++) {
        uint8_t *r = vis_px(im, 0, y);
        for (int x = 0; x < im->w; x++)
            for (int c = 0; c < use; c++)
                r[x * ch + c] = lut[r[x * ch + c]];
    }
}

static void grayscale_apply(struct vis_image *im)
{
    int ch = (int)im->fmt;
    if (ch == 1)
        return;
    for (int y = 0; y < im->h; y++) {
        uint8_t *r = vis_px(im, 0, y);
        for (int x = 0; x < im->w; x++) {
            uint8_t *p = r + x * ch;
            /* cv2 BGR2GRAY fixed point */
            uint8_t g = (uint8_t)((p[0] * 1868 + p[1] * 9617 + p[2] * 4899 + 8192) >> 14);
            p[0] = p[1] = p[2] = g;
        }
    }
}

/* Copy of a region of img into c (same format); c->px is malloc'd.
 * Returns 0 or ERR_NOMEM. */
static int region_copy(const struct vis_image *img, int x0, int y0, int w, int h,
                       struct vis_image *c)
{
    memset(c, 0, sizeof(*c));
    c->px = try_alloc((size_t)w * (size_t)img->fmt, (size_t)h);
    if (!c->px)
        return ERR_NOMEM;
    c->w = w;
    c->h = h;
    c->fmt = img->fmt;
    c->stride = w * (int)img->fmt;
    for (int y = 0; y < h; y++)
        memcpy(vis_px(c, 0, y), vis_px(img, x0, y0 + y), (size_t)w * (size_t)img->fmt);
    return 0;
}

struct xtab {
    int o0, o1; /* byte offsets of the two source columns */
    float wx;
    int32_t bx; /* wx in PP_BITS fixed point (the 8-bit path) */
};

/* cv2's INTER_LINEAR on 8-bit images: 11-bit weights, the result rounded
 * back to 8 bits (INTER_RESIZE_COEF_BITS). */
#define PP_BITS 11
#define PP_ONE (1 << PP_BITS)

int model_preprocess(const struct model *m, const struct vis_image *img, float *dst,
                     struct model_letterbox *lb)
{
    const struct model__prep *pp = &m->prep;
    struct vis_image tmpi = {0}, *tmp = NULL;
    struct xtab *xt = NULL;
    int rc = 0, cx = 0, cy = 0, cw = img->w, ch = img->h;

    if (img->w <= 0 || img->h <= 0 || !img->px)
        return ERR_INVALID;
    if (pp->static_crop) {
        cx = (int)(pp->crop_x0 / 100.0 * img->w);
        cy = (int)(pp->crop_y0 / 100.0 * img->h);
        int x1 = (int)(pp->crop_x1 / 100.0 * img->w), y1 = (int)(pp->crop_y1 / 100.0 * img->h);
        x1 = MIN(x1, img->w);
        y1 = MIN(y1, img->h);
        cx = MAX(0, MIN(cx, img->w - 1));
        cy = MAX(0, MIN(cy, img->h - 1));
        cw = MAX(1, x1 - cx);
        ch = MAX(1, y1 - cy);
    }
    const uint8_t *src = vis_px(img, cx, cy);
    int stride = img->stride, nch = (int)img->fmt;
    if (pp->contrast != CONTRAST_NONE || pp->grayscale) {
        if ((rc = region_copy(img, cx, cy, cw, ch, &tmpi)) < 0)
            goto out;
        tmp = &tmpi;
        if (pp->contrast != CONTRAST_NONE)
            contrast_apply(tmp, pp->contrast);
        if (pp->grayscale)
            grayscale_apply(tmp);
        src = tmp->px;
        stride = tmp->stride;
    }

    int rw, rh, px, py;
    lb->crop_x = cx;
    lb->crop_y = cy;
    lb->crop_w = cw;
    lb->crop_h = ch;
    model__letterbox_plan(m, cw, ch, lb, &rw, &rh, &px, &py);

    int W = m->in_w, H = m->in_h;
    size_t plane = (size_t)W * (size_t)H;
    /* v_out = v * a + b per tensor channel; plane k takes source channel sc[k]. */
    float a[3], b[3];
    int sc[3];
    for (int k = 0; k < 3; k++) {
        a[k] = 1.0f / (pp->scale * pp->std[k]);
        b[k] = -pp->mean[k] / pp->std[k];
        sc[k] = nch == 1 ? 0 : (pp->bgr ? k : 2 - k);
    }
    xt = try_alloc((size_t)W, sizeof(*xt));
    if (!xt) {
        rc = ERR_NOMEM;
        goto out;
    }
    double fxs = (double)cw / rw, fys = (double)ch / rh;
    for (int x = 0; x < W; x++) {
        int rx = x - px;
        double fx = (rx + 0.5) * fxs - 0.5;
        int x0 = (int)floor(fx);
        float w = (float)(fx - x0);
        if (x0 < 0) {
            x0 = 0;
            w = 0;
        }
        if (x0 >= cw - 1) {
            x0 = cw - 1;
            w = 0;
        }
        int x1 = MIN(x0 + 1, cw - 1);
        xt[x].o0 = x0 * nch;
        xt[x].o1 = x1 * nch;
        xt[x].wx = w;
        xt[x].bx = (int32_t)lrintf(w * PP_ONE);
    }
    /* The common case — an 8-bit colour source into a 3-plane tensor — is
     * resized as cv2.resize does on uint8 (fixed point, rounded to 8 bits,
     * which is what Roboflow's pre-processing feeds the model) and mapped
     * through a per-plane table: about twice as fast as the float path,
     * which stays for gray sources and 1-plane models. */
    float lutbuf[3][256];
    const float(*lut)[256] = NULL;
    if (nch >= 3 && m->in_c == 3) {
        for (int k = 0; k < 3; k++)
            for (int v = 0; v < 256; v++)
                lutbuf[k][v] = (float)v * a[k] + b[k];
        lut = (const float(*)[256])lutbuf;
    }
    float padv[3];
    for (int k = 0; k < 3; k++)
        padv[k] = pp->pad * a[k] + b[k];
    int x_lo = MAX(0, px), x_hi = MIN(W, px + rw);
    for (int y = 0; y < H; y++) {
        float *d[3];
        for (int k = 0; k < 3; k++)
            d[k] = dst + (size_t)k * plane + (size_t)y * W;
        int ry = y - py;
        if (ry < 0 || ry >= rh) {
            for (int k = 0; k < m->in_c; k++)
                for (int x = 0; x < W; x++)
                    d[k][x] = padv[k];
            continue;
        }
        double fy = (ry + 0.5) * fys - 0.5;
        int y0 = (int)floor(fy);
        float wy = (float)(fy - y0);
        if (y0 < 0) {
            y0 = 0;
            wy = 0;
        }
        if (y0 >= ch - 1) {
            y0 = ch - 1;
            wy = 0;
        }
        int y1 = MIN(y0 + 1, ch - 1);
        const uint8_t *r0 = src + (size_t)y0 * stride, *r1 = src + (size_t)y1 * stride;
        for (int k = 0; k < m->in_c; k++) {
            for (int x = 0; x < x_lo; x++)
                d[k][x] = padv[k];
            for (int x = x_hi; x < W; x++)
                d[k][x] = padv[k];
        }
        if (m->in_c == 1) {
            for (int x = x_lo; x < x_hi; x++) {
                const struct xtab *t = &xt[x];
                float v[3];
                for (int c = 0; c < 3; c++) {
                    int cc = nch == 1 ? 0 : c;
                    float top = r0[t->o0 + cc] + (r0[t->o1 + cc] - r0[t->o0 + cc]) * t->wx;
                    float bot = r1[t->o0 + cc] + (r1[t->o1 + cc] - r1[t->o0 + cc]) * t->wx;
                    v[c] = top + (bot - top) * wy;
                }
                float g = 0.114f * v[0] + 0.587f * v[1] + 0.299f * v[2];
                d[0][x] = g * a[0] + b[0];
            }
            continue;
        }
        if (nch == 1) {
            for (int x = x_lo; x < x_hi; x++) {
                const struct xtab *t = &xt[x];
                float top = r0[t->o0] + (r0[t->o1] - r0[t->o0]) * t->wx;
                float bot = r1[t->o0] + (r1[t->o1] - r1[t->o0]) * t->wx;
                float v = top + (bot - top) * wy;
                for (int k = 0; k < 3; k++)
                    d[k][x] = v * a[k] + b[k];
            }
            continue;
        }
        float *restrict d0 = d[0], *restrict d1 = d[1], *restrict d2 = d[2];
        const int c0 = sc[0], c1 = sc[1], c2 = sc[2];
        if (lut) {
            const int32_t by = (int32_t)lrintf(wy * PP_ONE), ay = PP_ONE - by;
            for (int x = x_lo; x < x_hi; x++) {
                const struct xtab *t = &xt[x];
                const uint8_t *p00 = r0 + t->o0, *p01 = r0 + t->o1, *p10 = r1 + t->o0,
                              *p11 = r1 + t->o1;
                const int32_t bx = t->bx, ax = PP_ONE - bx;
#define PP_CH(dst, c, k)                                                       \
    do {                                                                       \
        int32_t top = p00[c] * ax + p01[c] * bx;                               \
        int32_t bot = p10[c] * ax + p11[c] * bx;                               \
        dst[x] = lut[k][(top * ay + bot * by + (1 << (2 * PP_BITS - 1))) >> (2 * PP_BITS)]; \
    } while (0)
                PP_CH(d0, c0, 0);
                PP_CH(d1, c1, 1);
                PP_CH(d2, c2, 2);
#undef PP_CH
            }
            continue;
        }
        const float a0 = a[0], a1 = a[1], a2 = a[2], b0 = b[0], b1 = b[1], b2 = b[2];
        for (int x = x_lo; x < x_hi; x++) {
            const struct xtab *t = &xt[x];
            const uint8_t *p00 = r0 + t->o0, *p01 = r0 + t->o1, *p10 = r1 + t->o0,
                          *p11 = r1 + t->o1;
            const float wx = t->wx;
#define PP_CH(dst, c, aa, bb)                                                  \
    do {                                                                       \
        float top = p00[c] + (p01[c] - p00[c]) * wx;                           \
        float bot = p10[c] + (p11[c] - p10[c]) * wx;                           \
        dst[x] = (top + (bot - top) * wy) * aa + bb;                           \
    } while (0)
            PP_CH(d0, c0, a0, b0);
            PP_CH(d1, c1, a1, b1);
            PP_CH(d2, c2, a2, b2);
#undef PP_CH
        }
    }
out:
    free(xt);
    free(tmpi.px);
    return rc;
}
