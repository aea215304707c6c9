/*
 * blocks/cv_extra.c — classical-vision blocks added with issue 14
 * (roboflow/inference classical_cv/camera_focus/v2.py, read, not copied):
 *
 * - camera_focus@v2: the Tenengrad measure — cv2.Sobel(gray, CV_32F, 1, 0,
 *   ksize=3)^2 + Sobel(0, 1)^2 with BORDER_REFLECT_101, on OpenCV 4's gray —
 *   its mean over the image (focus_measure) and over each detection box
 *   clipped to the image (bbox_focus_measures, None for an empty box; box
 *   corners truncated as int()), plus Roboflow's overlays in its order:
 *   zebra stripes ((x + y) // 8 even) at 50 % blue below / red above the
 *   exposure thresholds, focus peaking (60 % green where
 *   uint8(fm / max * 255) > 76), the centre crosshair and the composition
 *   grid (cv2.line), the HUD (70 % black panel, "TFM Focus" and its value,
 *   "Exposure", the B, G, R and gray histograms as polylines).  With every
 *   overlay off the input image is returned.  The image output is named
 *   "image" (Roboflow's OUTPUT_IMAGE_KEY, imported from its visualization
 *   base); spec/blocks.json lists it as "warped_image".
 *
 * Means are float32 sums as numpy's (pairwise, 8 accumulators, blocks of
 * 128) divided in double and rounded to float32, as np.float32.mean();
 * the box means add the rows' pairwise sums in float32.
 * Departure: the HUD's texts are drawn with the engine's font (cv2's
 * Hershey text sizes, other glyph shapes); every other pixel follows
 * Roboflow's arithmetic.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/blocks/viz_int.h"
#include "workflow/wf_int.h"

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, fn)                                                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,        \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL}

/* ---- numpy float32 sums ----------------------------------------------------------------- */

/* numpy's pairwise_sum for float32 (PW_BLOCKSIZE 128, 8 accumulators). */
float cv__np_pairwise_sum_f32(const float *a, size_t n, size_t stride)
{
    if (n < 8) {
        float res = 0.f; /* numpy starts from -0.0; the same for these sums */
        for (size_t i = 0; i < n; i++)
            res += a[i * stride];
        return res;
    }
    if (n <= 128) {
        float r[8], res;
        for (int k = 0; k < 8; k++)
            r[k] = a[(size_t)k * stride];
        size_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int k = 0; k < 8; k++)
                r[k] += a[(i + (size_t)k) * stride];
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i * stride];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return cv__np_pairwise_sum_f32(a, n2, stride) +
           cv__np_pairwise_sum_f32(a + n2 * stride, n - n2, stride);
}

/* ---- camera_focus v2 -------------------------------------------------------------------- */

/* BORDER_REFLECT_101 index (repeated for kernels wider than the image). */
static inline int reflect101(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* Tenengrad map (float32, exact integers) of a GRAY image. */
static float *tenengrad(const struct vis_image *g)
{
    int w = g->w, h = g->h;
    float *fm = malloc((size_t)w * (size_t)h * sizeof *fm);
    if (!fm)
        return NULL;
    for (int y = 0; y < h; y++) {
        const uint8_t *r0 = vis_px(g, 0, reflect101(y - 1, h)), *r1 = vis_px(g, 0, y),
                      *r2 = vis_px(g, 0, reflect101(y + 1, h));
        for (int x = 0; x < w; x++) {
            int xl = reflect101(x - 1, w), xr = reflect101(x + 1, w);
            int gx = (r0[xr] - r0[xl]) + 2 * (r1[xr] - r1[xl]) + (r2[xr] - r2[xl]);
            int gy = (r2[xl] + 2 * r2[x] + r2[xr]) - (r0[xl] + 2 * r0[x] + r0[xr]);
            fm[(size_t)y * w + x] = (float)(gx * gx + gy * gy);
        }
    }
    return fm;
}

static void blend_px(uint8_t *p, const uint8_t bgr[3], double opacity)
{
    for (int k = 0; k < 3; k++)
        p[k] = (uint8_t)(p[k] * (1 - opacity) + bgr[k] * opacity);
}

static const char *const GRIDS[] = {"None", "2x2", "3x3", "4x4", "5x5", NULL};

static double hud_scale(int w, int h)
{
    double s = MIN(h, w) / 720.0;
    return MAX(0.4, MIN(s, 2.5));
}

static void text_outlined(struct vis_image *img, const char *s, int x, int y, double scale,
                          struct vis_color c, int thickness)
{
    int px = vis_text_px_for_scale(scale);
    viz__text_draw(img, vis_font_default(), s, px, x, y, thickness + 2, VIS_RGB(0, 0, 0));
    viz__text_draw(img, vis_font_default(), s, px, x, y, thickness, c);
}

static void draw_hud(struct vis_image *out, double focus, const struct vis_image *gray,
                     const struct vis_image *orig)
{
    int W = out->w, H = out->h;
    double scale = hud_scale(W, H);
    int padding = (int)(14 * scale), hist_w = (int)(180 * scale), hist_h = (int)(50 * scale);
    double fs = 0.5 * scale, fs_small = 0.4 * scale;
    int th = MAX(1, (int)(1.6 * scale)), line_sp = (int)(6 * scale), margin = (int)(12 * scale);
    char val[64];
    snprintf(val, sizeof val, "%.1f", focus);
    int lw, lh, vw, vh, ew, eh;
    viz__text_size(vis_font_default(), "TFM Focus", fs, th, &lw, &lh);
    viz__text_size(vis_font_default(), val, fs, th, &vw, &vh);
    viz__text_size(vis_font_default(), "Exposure", fs_small, th, &ew, &eh);
    int section = (int)(12 * scale);
    int cw = MAX(MAX(lw + vw + (int)(20 * scale), ew), hist_w);
    int ch = lh + section + eh + line_sp + hist_h;
    int hw = cw + 2 * padding, hh = ch + 2 * padding, hx = margin, hy = margin;
    /* cv2.addWeighted(black rectangle, 0.7, output, 0.3): inside the panel
     * round(0.3 v) in float; outside v */
    for (int y = MAX(hy, 0); y <= MIN(hy + hh, H - 1); y++) {
        uint8_t *p = vis_px(out, MAX(hx, 0), y);
        for (int x = MAX(hx, 0); x <= MIN(hx + hw, W - 1); x++, p += 3)
            for (int k = 0; k < 3; k++)
                p[k] = (uint8_t)lrintf((float)p[k] * 0.3f);
    }
    vis_draw_rect(out, hx, hy, hx + hw, hy + hh, VIS_RGB(80, 80, 80), 1);
    int tx = hx + padding, cy = hy + padding + lh;
    text_outlined(out, "TFM Focus", tx, cy, fs, VIS_RGB(255, 255, 255), th);
    text_outlined(out, val, hx + hw - padding - vw, cy, fs, VIS_RGB(255, 255, 255), th);
    int div = cy + (int)(section * 0.5);
    vis_draw_line(out, hx + padding, div, hx + hw - padding, div, VIS_RGB(60, 60, 60), 1);
    cy += section + eh;
    text_outlined(out, "Exposure", tx, cy, fs_small, VIS_RGB(180, 180, 180), th);
    int hxs = tx, hys = cy + line_sp, hb = hys + hist_h - 1;
    vis_draw_rect(out, hxs, hys, hxs + hist_w, hb, VIS_RGB(0, 0, 0), VIS_FILLED);
    int xs[256];
    double step = (double)(hist_w - 1) / 255.0;
    for (int i = 0; i < 256; i++) /* np.linspace(...).astype(int32) */
        xs[i] = i == 255 ? hxs + hist_w - 1 : (int)(i * step + hxs);
    int lt = MAX(1, th);
    int nch = vis_channels(orig) >= 3 ? 3 : 0;
    for (int chn = 0; chn <= nch; chn++) {
        const struct vis_image *src = chn < nch ? orig : gray;
        int k = chn < nch ? chn : 0;
        unsigned long hist[256] = {0}, hmax = 0;
        for (int y = 0; y < src->h; y++) {
            const uint8_t *p = vis_px(src, 0, y);
            for (int x = 0; x < src->w; x++)
                hist[p[x * vis_channels(src) + k]]++;
        }
        for (int i = 0; i < 256; i++)
            hmax = MAX(hmax, hist[i]);
        if (!hmax)
            continue;
        struct vis_color col = chn == nch   ? VIS_RGB(255, 255, 255)
                               : chn == 0   ? VIS_RGB(0, 0, 255)
                               : chn == 1   ? VIS_RGB(0, 255, 0)
                                            : VIS_RGB(255, 0, 0);
        int px0 = 0, py0 = 0;
        for (int i = 0; i < 256; i++) {
            int hn = (int)((float)hist[i] / (float)hmax * (float)hist_h);
            int px = xs[i], py = hb - hn;
            if (i)
                vis_draw_line(out, px0, py0, px, py, col, lt);
            px0 = px, py0 = py;
        }
    }
}

int cv__focus2_overlays(const struct vis_image *src, const struct vis_image *gray, const float *fm,
                        double focus, int under_t, int over_t, unsigned flags, int grid,
                        struct vis_image **outp)
{
    int W = gray->w, H = gray->h;
    size_t n = (size_t)W * (size_t)H;
    struct vis_image *out = NULL;
    *outp = NULL;
    if (vis_channels(src) == 3)
        out = vis_image_clone(src);
    else
        vis_convert(src, VIS_BGR, &out);
    if (!out)
        return ERR_NOMEM;
    if (flags & CV_FOCUS_ZEBRA) {
        static const uint8_t blue[3] = {255, 0, 0}, red[3] = {0, 0, 255};
        for (int y = 0; y < H; y++) {
            const uint8_t *g = vis_px(gray, 0, y);
            uint8_t *p = vis_px(out, 0, y);
            for (int x = 0; x < W; x++)
                if (((x + y) / 8) % 2 == 0 && g[x] < under_t)
                    blend_px(p + 3 * x, blue, 0.5);
            for (int x = 0; x < W; x++)
                if (((x + y) / 8) % 2 == 0 && g[x] > over_t)
                    blend_px(p + 3 * x, red, 0.5);
        }
    }
    if (flags & CV_FOCUS_PEAKING) {
        float mx = 0;
        for (size_t q = 0; q < n; q++)
            mx = MAX(mx, fm[q]);
        static const uint8_t green[3] = {0, 255, 0};
        if (mx > 0)
            for (int y = 0; y < H; y++) {
                uint8_t *p = vis_px(out, 0, y);
                for (int x = 0; x < W; x++) {
                    uint8_t v = (uint8_t)(fm[(size_t)y * W + x] / mx * 255.f);
                    if (v > 76) /* int(30 * 255 / 100) */
                        blend_px(p + 3 * x, green, 0.6);
                }
            }
    }
    if (flags & CV_FOCUS_CENTER) {
        double sc = hud_scale(W, H);
        int size = (int)(20 * sc), th = MAX(1, (int)(1.6 * sc)), cx = W / 2, cy = H / 2;
        vis_draw_line(out, cx - size, cy, cx + size, cy, VIS_RGB(255, 255, 255), th);
        vis_draw_line(out, cx, cy - size, cx, cy + size, VIS_RGB(255, 255, 255), th);
    }
    for (int d = 1; d < grid; d++) {
        int x = W * d / grid, y = H * d / grid;
        vis_draw_line(out, x, 0, x, H, VIS_RGB(128, 128, 128), 1);
        vis_draw_line(out, 0, y, W, y, VIS_RGB(128, 128, 128), 1);
    }
    if (flags & CV_FOCUS_HUD)
        draw_hud(out, focus, gray, src);
    *outp = out;
    return 0;
}

float *cv__tenengrad(const struct vis_image *gray, double *focus)
{
    float *fm = tenengrad(gray);
    if (fm) {
        size_t n = (size_t)gray->w * (size_t)gray->h;
        *focus = (float)((double)cv__np_pairwise_sum_f32(fm, n, 1) / (double)n);
    }
    return fm;
}

static int focus2_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        double under_p = wf_arg_double(c, i, "underexposed_threshold_percent", 3.0);
        double over_p = wf_arg_double(c, i, "overexposed_threshold_percent", 97.0);
        unsigned flags = (wf_arg_bool(c, i, "show_zebra_warnings", true) ? CV_FOCUS_ZEBRA : 0) |
                         (wf_arg_bool(c, i, "show_hud", true) ? CV_FOCUS_HUD : 0) |
                         (wf_arg_bool(c, i, "show_focus_peaking", true) ? CV_FOCUS_PEAKING : 0) |
                         (wf_arg_bool(c, i, "show_center_marker", true) ? CV_FOCUS_CENTER : 0);
        const char *grid_s = wf_arg_str(c, i, "grid_overlay");
        int grid = 0;
        for (int k = 0; GRIDS[k]; k++)
            if (grid_s && !strcmp(grid_s, GRIDS[k]))
                grid = k ? k + 1 : 0;
        if (!(under_p >= 0 && under_p <= 100) || !(over_p >= 0 && over_p <= 100))
            return wf_call_fail(c, "underexposed_threshold_percent and "
                                   "overexposed_threshold_percent must be in 0..100");
        if (im->img->w < 1 || im->img->h < 1)
            return wf_call_fail(c, "empty image");
        int under_t = (int)(under_p * 255 / 100), over_t = (int)(over_p * 255 / 100);
        double focus = 0;
        struct vis_image *gray = cv__gray(im->img);
        float *fm = gray ? cv__tenengrad(gray, &focus) : NULL;
        if (!fm) {
            vis_image_free(gray);
            return wf_call_fail(c, "out of memory");
        }
        int W = gray->w, H = gray->h;
        json_t *boxes = json_array();
        for (size_t k = 0; ds && k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            int x1 = MAX(0, viz__trunc(d->x1)), y1 = MAX(0, viz__trunc(d->y1));
            int x2 = MIN(W, viz__trunc(d->x2)), y2 = MIN(H, viz__trunc(d->y2));
            if (x2 > x1 && y2 > y1) {
                float s = 0;
                for (int y = y1; y < y2; y++)
                    s += cv__np_pairwise_sum_f32(fm + (size_t)y * W + x1, (size_t)(x2 - x1), 1);
                double cnt = (double)(x2 - x1) * (double)(y2 - y1);
                json_array_append_new(boxes, json_real((float)((double)s / cnt)));
            } else {
                json_array_append_new(boxes, json_null());
            }
        }
        int rc = 0;
        if (!flags && !grid) {
            wf_out_set(c, i, "image", wf_value_ref((struct wf_value *)wf_arg(c, i, "image")));
        } else {
            struct vis_image *out = NULL;
            rc = cv__focus2_overlays(im->img, gray, fm, focus, under_t, over_t, flags, grid, &out);
            if (rc == 0)
                wf_out_image(c, i, "image", im, out);
        }
        free(fm);
        vis_image_free(gray);
        if (rc < 0) {
            json_decref(boxes);
            return wf_call_fail(c, "out of memory");
        }
        wf_out_json(c, i, "focus_measure", json_real(focus));
        wf_out_json(c, i, "bbox_focus_measures", boxes);
    }
    return 0;
}


/* ---- auto_rotate_on_edges ------------------------------------------------------------- */

/* The k-th smallest of a[0..n) (a is reordered), as np.partition. */
static float select_kth(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j], a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return a[k];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* cv2.GaussianBlur(gray, (5, 5), 0) of OpenCV 4's bit-exact 8-bit path:
 * kernel [1 4 6 4 1] / 16 both ways, BORDER_REFLECT_101, rounded half up. */
static float *gauss5_f32(const struct vis_image *g)
{
    static const int k[5] = {1, 4, 6, 4, 1};
    int w = g->w, h = g->h;
    int32_t *tmp = malloc((size_t)w * (size_t)h * sizeof *tmp);
    float *out = malloc((size_t)w * (size_t)h * sizeof *out);
    if (!tmp || !out) {
        free(tmp), free(out);
        return NULL;
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *r = vis_px(g, 0, y);
        for (int x = 0; x < w; x++) {
            int32_t s = 0;
            for (int j = 0; j < 5; j++)
                s += k[j] * r[reflect101(x + j - 2, w)];
            tmp[(size_t)y * w + x] = s;
        }
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int32_t s = 0;
            for (int j = 0; j < 5; j++)
                s += k[j] * tmp[(size_t)reflect101(y + j - 2, h) * w + x];
            out[(size_t)y * w + x] = (float)((s + 128) >> 8);
        }
    free(tmp);
    return out;
}

/* numpy's np.mod for float32 */
static float np_modf(float a, float b)
{
    float m = fmodf(a, b);
    if (m != 0) {
        if ((b < 0) != (m < 0))
            m += b;
    } else {
        m = copysignf(0.f, b);
    }
    return m;
}

/* Roboflow's _gradient_histogram_angle on the prepared image p (w x h);
 * false when the histogram has no distinct peak. */
static bool gradient_angle(const float *p, int w, int h, bool horizontal, double *angle)
{
    size_t n = (size_t)w * (size_t)h;
    float *gx = malloc(n * sizeof *gx), *gy = malloc(n * sizeof *gy), *mag = malloc(n * sizeof *mag);
    float *sorted = malloc(n * sizeof *sorted);
    bool ok = false;
    if (!gx || !gy || !mag || !sorted)
        goto out;
    for (int y = 0; y < h; y++) {
        const float *r0 = p + (size_t)reflect101(y - 1, h) * w, *r1 = p + (size_t)y * w,
                    *r2 = p + (size_t)reflect101(y + 1, h) * w;
        for (int x = 0; x < w; x++) {
            int xl = reflect101(x - 1, w), xr = reflect101(x + 1, w);
            size_t q = (size_t)y * w + x;
            gx[q] = (r0[xr] - r0[xl]) + 2 * (r1[xr] - r1[xl]) + (r2[xr] - r2[xl]);
            gy[q] = (r2[xl] + 2 * r2[x] + r2[xr]) - (r0[xl] + 2 * r0[x] + r0[xr]);
            mag[q] = hypotf(gx[q], gy[q]);
        }
    }
    memcpy(sorted, mag, n * sizeof *sorted);
    /* np.percentile(mag, 80), linear: numpy's _lerp in float32 */
    double idx = 0.8 * (double)(n - 1);
    size_t lo = (size_t)idx;
    float a = select_kth(sorted, n, lo), b = a;
    for (size_t q = lo + 1; q < n; q++) /* the next order statistic: min of the upper part */
        b = q == lo + 1 ? sorted[q] : MIN(b, sorted[q]);
    float t = (float)(idx - (double)lo), d = b - a;
    float pct = t >= 0.5f ? b - d * (1 - t) : a + d * t;
    double thr = MAX((double)pct, 1e-6);
    double hist[180] = {0}, block[180];
    size_t kept = 0;
    /* np.histogram adds the weights of each 65536-element block of kept values */
    memset(block, 0, sizeof block);
    for (size_t q = 0; q < n; q++) {
        if (!(mag[q] >= thr))
            continue;
        float th = np_modf(atan2f(gy[q], gx[q]) * (float)(180.0 / M_PI), 180.f);
        int bin = MIN((int)th, 179);
        block[MAX(bin, 0)] += (double)mag[q];
        if (++kept % 65536 == 0) {
            for (int i = 0; i < 180; i++)
                hist[i] += block[i], block[i] = 0;
        }
    }
    for (int i = 0; i < 180; i++)
        hist[i] += block[i];
    if (!kept)
        goto out;
    double sm[180], srt[180], mean = 0, var = 0, mx = -1;
    int arg = 0;
    for (int i = 0; i < 180; i++) {
        double s = 0;
        for (int j = -2; j <= 2; j++)
            s += hist[(i + j + 180) % 180] * 0.2;
        sm[i] = s;
        if (s > mx)
            mx = s, arg = i;
        mean += s;
    }
    mean /= 180;
    for (int i = 0; i < 180; i++)
        var += (sm[i] - mean) * (sm[i] - mean);
    memcpy(srt, sm, sizeof srt);
    qsort(srt, 180, sizeof *srt, cmp_double);
    double median = (srt[89] + srt[90]) / 2;
    if ((mx - median) / (sqrt(var / 180) + 1e-9) < 1.5)
        goto out;
    double peak = arg + 0.5, S = 0, C = 0;
    bool any = false;
    for (size_t q = 0; q < n; q++) {
        if (!(mag[q] >= thr))
            continue;
        float th = np_modf(atan2f(gy[q], gx[q]) * (float)(180.0 / M_PI), 180.f);
        float dist = fabsf(th - (float)peak);
        dist = MIN(dist, 180.f - dist);
        if (dist <= 3.0f) {
            float dbl = (2.0f * th) * (float)(M_PI / 180.0);
            S += (double)mag[q] * sinf(dbl);
            C += (double)mag[q] * cosf(dbl);
            any = true;
        }
    }
    double ga = any ? 0.5 * (atan2(S, C) * (180.0 / M_PI)) : peak;
    *angle = horizontal ? ga - 90.0 : ga;
    ok = true;
out:
    free(gx), free(gy), free(mag), free(sorted);
    return ok;
}

static const char *const ORIENTATIONS[] = {"vertical", "horizontal", "either", NULL};

int cv__auto_rotate_angle(const struct vis_image *img, const char *target, int64_t resolution,
                          bool *found, double *angle)
{
    *found = false;
    *angle = 0;
    struct vis_image *gray = cv__gray(img), *small = NULL;
    if (!gray)
        return ERR_NOMEM;
    int w = gray->w, h = gray->h, largest = MAX(w, h);
    if (largest > resolution) {
        double scale = (double)resolution / (double)largest;
        int nw = MAX(1, (int)wf__round_half_even(w * scale));
        int nh = MAX(1, (int)wf__round_half_even(h * scale));
        int rc = vis_resize(gray, nw, nh, VIS_INTER_AREA, &small);
        vis_image_free(gray);
        if (rc < 0)
            return rc;
        gray = small;
        w = nw, h = nh;
    }
    double mean = 0, var = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *r = vis_px(gray, 0, y);
        for (int x = 0; x < w; x++)
            mean += r[x];
    }
    mean /= (double)w * h;
    for (int y = 0; y < h; y++) {
        const uint8_t *r = vis_px(gray, 0, y);
        for (int x = 0; x < w; x++)
            var += (r[x] - mean) * (r[x] - mean);
    }
    if (sqrt(var / ((double)w * h)) < 3.0) {
        vis_image_free(gray);
        return 0;
    }
    int rc = vis_clahe(gray, 3.0, 8);
    float *p = rc == 0 ? gauss5_f32(gray) : NULL;
    vis_image_free(gray);
    if (!p)
        return rc < 0 ? rc : ERR_NOMEM;
    double a;
    bool either = !strcmp(target, "either");
    if (gradient_angle(p, w, h, !strcmp(target, "horizontal"), &a)) {
        double period = either ? 90.0 : 180.0, m = fmod(a, period);
        if (m != 0 && m < 0)
            m += period; /* Python's % */
        if (m > period / 2)
            m -= period;
        *angle = m;
        *found = true;
    }
    free(p);
    return 0;
}

static int rotate_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const char *target = wf_arg_str(c, i, "target_orientation");
        double skip = wf_arg_double(c, i, "skip_below_degrees", 0.4);
        double maxc = wf_arg_double(c, i, "max_correction_degrees", 90.0);
        int64_t res = wf_arg_int(c, i, "internal_resolution", 1000);
        bool known = false;
        for (int k = 0; target && ORIENTATIONS[k]; k++)
            known |= !strcmp(target, ORIENTATIONS[k]);
        if (!known)
            return wf_call_fail(c, "target_orientation must be one of 'vertical', 'horizontal', "
                                   "'either', got: '%.64s'",
                                target ? target : "None");
        if (res < 1 || res > 8192)
            return wf_call_fail(c, "internal_resolution must be in 1..8192, got %lld",
                                (long long)res);
        if (im->img->w < 1 || im->img->h < 1)
            return wf_call_fail(c, "empty image");
        bool found;
        double angle;
        int rc = cv__auto_rotate_angle(im->img, target, res, &found, &angle);
        if (rc < 0)
            return wf_call_fail(c, "out of memory");
        struct vis_image *px = NULL;
        if (!found || fabs(angle) < skip || fabs(angle) > maxc ||
            (rc = cv__rotate(im->img, angle, &px)) < 0) {
            if (rc < 0)
                return wf_call_fail(c, "rotated image too large");
            wf_out_set(c, i, "image", wf_value_ref((struct wf_value *)wf_arg(c, i, "image")));
            wf_out_json(c, i, "angle", json_real(0.0));
            continue;
        }
        wf_out_image(c, i, "image", im, px);
        wf_out_json(c, i, "angle", json_real(angle));
    }
    return 0;
}

/* ---- manifests --------------------------------------------------------------------------- */

static const struct wf_field focus2_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"underexposed_threshold_percent", NULL, WF_FT_FLOAT, "3.0", 0, WF_F_NO_SELECTOR, NULL},
    {"overexposed_threshold_percent", NULL, WF_FT_FLOAT, "97.0", 0, WF_F_NO_SELECTOR, NULL},
    {"show_zebra_warnings", NULL, WF_FT_BOOL, "true", 0, WF_F_NO_SELECTOR, NULL},
    {"grid_overlay", NULL, WF_FT_ENUM, "\"3x3\"", 0, WF_F_NO_SELECTOR, GRIDS},
    {"show_hud", NULL, WF_FT_BOOL, "true", 0, WF_F_NO_SELECTOR, NULL},
    {"show_focus_peaking", NULL, WF_FT_BOOL, "true", 0, WF_F_NO_SELECTOR, NULL},
    {"show_center_marker", NULL, WF_FT_BOOL, "true", 0, WF_F_NO_SELECTOR, NULL},
    {"detections", NULL, WF_FT_DETS, "null", WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY | WF_F_NULLABLE,
     NULL},
};
static const struct wf_output focus2_outs[] = {{"image", WF_K_IMAGE},
                                               {"focus_measure", WF_K_FLOAT},
                                               {"bbox_focus_measures", WF_K_LIST}};
TYPES(focus2, "roboflow_core/camera_focus@v2");
BLOCK(focus2, focus2_fields, focus2_outs, focus2_run);

static const struct wf_field rotate_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"target_orientation", NULL, WF_FT_STRING, "\"vertical\"", WF_K_STRING, 0, NULL},
    {"skip_below_degrees", NULL, WF_FT_FLOAT, "0.4", WF_K_FLOAT, 0, NULL},
    {"max_correction_degrees", NULL, WF_FT_FLOAT, "90.0", WF_K_FLOAT, 0, NULL},
    {"internal_resolution", NULL, WF_FT_INT_POS, "1000", WF_K_INT, 0, NULL},
};
static const struct wf_output rotate_outs[] = {{"image", WF_K_IMAGE}, {"angle", WF_K_FLOAT}};
TYPES(rotate, "roboflow_core/auto_rotate_on_edges@v1");
BLOCK(rotate, rotate_fields, rotate_outs, rotate_run);

const struct wf_block *const wf_blocks_cv_extra[] = {&rotate, &focus2, NULL};
