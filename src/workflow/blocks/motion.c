/*
 * blocks/motion.c — the video blocks built on a background model:
 * background_subtraction and motion_detection (roboflow/inference
 * classical_cv/background_subtraction/v1.py and motion_detection/v1.py,
 * read, not copied).
 *
 * Both keep OpenCV's MOG2 background model (Zivkovic's adaptive Gaussian
 * mixture, cv2.createBackgroundSubtractorMOG2(history, varThreshold,
 * detectShadows=True)) in the step's state slot, one per video
 * (video_identifier of the image's metadata, else its parent_id), so the
 * jobs worker gives each video its own and an image run starts afresh, as
 * a separate Roboflow request does.  The model is the one OpenCV's CPU
 * path computes, in the same single-precision operations and order, so
 * the masks are the same pixel for pixel (checked against python3-opencv
 * 4.6 in tests/unit/test_workflow_motion.c): 5 Gaussians per pixel,
 * background ratio 0.9, Tg 9, initial variance 15 (bounds 4..75),
 * complexity prior 0.05, shadows (value 127) where the pixel is a darker
 * copy of a background mode (tau 0.5), learning rate 1 / min(2 * frame,
 * history).  A history <= 0 means 500 and a threshold <= 0 means 16, as in
 * OpenCV; the image is taken as BGR (a GRAY or BGRA input is converted
 * first, as Roboflow's numpy images are always 3-channel).  A change of
 * size starts the model afresh (OpenCV re-initializes).
 *
 * - background_subtraction: outputs the mask (0 background, 127 shadow,
 *   255 foreground) as a 3-channel image named "image" — the name of
 *   Roboflow's OUTPUT_IMAGE_KEY (visualizations/common/base.py) that the
 *   block returns; spec/blocks.json lists it as "warped_image", a
 *   different block's constant of the same name.  A change of threshold or
 *   history starts a new model, as Roboflow recreates its subtractor.
 * - motion_detection: the first `history` frames of a video are skipped
 *   (outputs false / empty, the model not fed) when
 *   suppress_first_detections; then the MOG2 mask, a morphological opening
 *   with an elliptic kernel (cv2.getStructuringElement(MORPH_ELLIPSE)),
 *   the external contours (cv2.findContours RETR_EXTERNAL,
 *   CHAIN_APPROX_SIMPLE; shadows count as motion, as in Roboflow) with
 *   cv2.contourArea > minimum_contour_area, each simplified by
 *   cv2.approxPolyDP(epsilon = 1 % of its cv2.arcLength) — the OpenCV 4.6
 *   variant that measures the distance to the chord's line (newer OpenCV
 *   measures to the segment; the two differ only where a point projects
 *   beyond the chord's ends) — and kept with >= 3 vertices: motion_zones
 *   are their vertices, detections their cv2.boundingRect boxes (class
 *   "motion", class_id 0, confidence 1).  motion is whether any contour
 *   passed the area filter; alarm whether motion is true now and was false
 *   on the previous processed frame.  The model is created with the first
 *   frame's threshold and history and kept, as Roboflow keeps it.
 *   detection_zone (a list of [x, y] points or its JSON text) clips the
 *   contours as Roboflow's shapely intersection does, for a convex zone
 *   (Sutherland-Hodgman; the clipped vertices truncated to integers).
 *   Departures: a non-convex zone is refused with a step error (Roboflow
 *   clips with a general polygon intersection); the vertices of a clipped
 *   polygon start where Sutherland-Hodgman starts them, not where GEOS
 *   does, so approxPolyDP may keep other vertices of the same region; a
 *   concave contour cut in two by the zone stays one polygon with a
 *   zero-width bridge instead of two; and a self-touching contour, which
 *   shapely may reject (Roboflow then drops it), is clipped like any other.
 *
 * Limits: images up to MOG2_MAX_PIXELS (the model holds 100 bytes per
 * pixel, as OpenCV's does), kernel sizes up to MD_MAX_KERNEL, zones up to
 * MD_MAX_ZONE points.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/wf_int.h"

#define MOG2_NMIX 5
#define MOG2_MAX_PIXELS (3840u * 2160u)
#define MD_MAX_KERNEL 255
#define MD_MAX_ZONE 10000
#define MD_MAX_VERTICES (1u << 20)

/* ---- MOG2 -------------------------------------------------------------------- */

struct mog2_mode {
    float weight, variance;
};

struct mog2 {
    int w, h;
    int history;
    float var_threshold;
    long nframes;
    struct mog2_mode *modes; /* w * h * MOG2_NMIX */
    float *mean;             /* w * h * MOG2_NMIX * 3 */
    uint8_t *used;           /* modes in use per pixel */
};

static void mog2_free(struct mog2 *m)
{
    if (!m)
        return;
    free(m->modes);
    free(m->mean);
    free(m->used);
    free(m);
}

static struct mog2 *mog2_new(int history, double threshold)
{
    struct mog2 *m = xcalloc(1, sizeof *m);
    m->history = history > 0 ? history : 500;
    m->var_threshold = threshold > 0 ? (float)threshold : 16.0f;
    return m;
}

/* (Re)allocate the model for a w x h image; 0 or ERR_NOMEM / ERR_LIMIT. */
static int mog2_init(struct mog2 *m, int w, int h)
{
    size_t n = (size_t)w * (size_t)h;
    if (n > MOG2_MAX_PIXELS)
        return ERR_LIMIT;
    free(m->modes), free(m->mean), free(m->used);
    m->modes = calloc(n * MOG2_NMIX, sizeof *m->modes);
    m->mean = calloc(n * MOG2_NMIX * 3, sizeof *m->mean);
    m->used = calloc(n, 1);
    m->w = m->h = 0;
    m->nframes = 0;
    if (!m->modes || !m->mean || !m->used) {
        free(m->modes), free(m->mean), free(m->used);
        m->modes = NULL, m->mean = NULL, m->used = NULL;
        return ERR_NOMEM;
    }
    m->w = w, m->h = h;
    return 0;
}

static void mode_swap(struct mog2_mode *g, float *mean, int a, int b)
{
    struct mog2_mode t = g[a];
    g[a] = g[b], g[b] = t;
    for (int c = 0; c < 3; c++) {
        float v = mean[a * 3 + c];
        mean[a * 3 + c] = mean[b * 3 + c], mean[b * 3 + c] = v;
    }
}

/* The pixel is a darker copy (by a factor in [tau, 1]) of one of the modes
 * that make up the background. */
static bool mog2_shadow(const float *data, int nmodes, const struct mog2_mode *g,
                        const float *mean, float Tb, float TB, float tau)
{
    float tweight = 0;
    for (int k = 0; k < nmodes; k++, mean += 3) {
        float num = 0.0f, den = 0.0f;
        for (int c = 0; c < 3; c++) {
            num += data[c] * mean[c];
            den += mean[c] * mean[c];
        }
        if (den == 0)
            return false;
        if (num <= den && num >= tau * den) {
            float a = num / den, d2 = 0.0f;
            for (int c = 0; c < 3; c++) {
                float d = a * mean[c] - data[c];
                d2 += d * d;
            }
            if (d2 < Tb * g[k].variance * a * a)
                return true;
        }
        tweight += g[k].weight;
        if (tweight > TB)
            return false;
    }
    return false;
}

/* BackgroundSubtractorMOG2::apply(bgr, mask) with the automatic learning
 * rate; mask is GRAY of the same size. */
static int mog2_apply(struct mog2 *m, const struct vis_image *bgr, struct vis_image *mask)
{
    if (m->nframes == 0 || bgr->w != m->w || bgr->h != m->h) {
        int rc = mog2_init(m, bgr->w, bgr->h);
        if (rc < 0)
            return rc;
    }
    m->nframes++;
    double lr = 1.0 / (double)MIN(2 * m->nframes, (long)m->history);
    const float alphaT = (float)lr, alpha1 = 1.f - alphaT;
    const float prune = (float)(-lr * (double)0.05f);
    const float Tb = m->var_threshold, TB = 0.9f, Tg = 9.0f;
    const float var_init = 15.0f, var_min = 4.0f, var_max = 75.0f, tau = 0.5f;
    for (int y = 0; y < bgr->h; y++) {
        const uint8_t *row = vis_px(bgr, 0, y);
        uint8_t *out = vis_px(mask, 0, y);
        for (int x = 0; x < bgr->w; x++) {
            size_t p = (size_t)y * (size_t)m->w + (size_t)x;
            struct mog2_mode *g = m->modes + p * MOG2_NMIX;
            float *mean = m->mean + p * MOG2_NMIX * 3;
            float data[3] = {row[3 * x], row[3 * x + 1], row[3 * x + 2]};
            bool background = false, fits = false;
            int nmodes = m->used[p];
            float total = 0.f;
            float *mean_m = mean;
            for (int k = 0; k < nmodes; k++, mean_m += 3) {
                float weight = alpha1 * g[k].weight + prune;
                int swaps = 0;
                if (!fits) {
                    float var = g[k].variance, d[3];
                    d[0] = mean_m[0] - data[0];
                    d[1] = mean_m[1] - data[1];
                    d[2] = mean_m[2] - data[2];
                    float dist2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                    if (total < TB && dist2 < Tb * var)
                        background = true;
                    if (dist2 < Tg * var) {
                        fits = true;
                        weight += alphaT;
                        float kk = alphaT / weight;
                        for (int c = 0; c < 3; c++)
                            mean_m[c] -= kk * d[c];
                        float varnew = var + kk * (dist2 - var);
                        varnew = MAX(varnew, var_min);
                        varnew = MIN(varnew, var_max);
                        g[k].variance = varnew;
                        /* move the mode up past lighter ones */
                        for (int i = k; i > 0; i--) {
                            if (weight < g[i - 1].weight)
                                break;
                            swaps++;
                            mode_swap(g, mean, i, i - 1);
                        }
                    }
                }
                if (weight < -prune) {
                    weight = 0.0f;
                    nmodes--;
                }
                g[k - swaps].weight = weight;
                total += weight;
            }
            float inv = 0.f;
            if (fabsf(total) > FLT_EPSILON)
                inv = 1.f / total;
            for (int k = 0; k < nmodes; k++)
                g[k].weight *= inv;
            if (!fits && alphaT > 0.f) {
                int k = nmodes == MOG2_NMIX ? MOG2_NMIX - 1 : nmodes++;
                if (nmodes == 1) {
                    g[k].weight = 1.f;
                } else {
                    g[k].weight = alphaT;
                    for (int i = 0; i < nmodes - 1; i++)
                        g[i].weight *= alpha1;
                }
                for (int c = 0; c < 3; c++)
                    mean[k * 3 + c] = data[c];
                g[k].variance = var_init;
                for (int i = nmodes - 1; i > 0; i--) {
                    if (alphaT < g[i - 1].weight)
                        break;
                    mode_swap(g, mean, i, i - 1);
                }
            }
            m->used[p] = (uint8_t)nmodes;
            out[x] = background ? 0
                     : mog2_shadow(data, nmodes, g, mean, Tb, TB, tau) ? 127
                                                                       : 255;
        }
    }
    return 0;
}

/* The image as 3-channel BGR: *tmp is a converted copy to free, or NULL. */
static const struct vis_image *as_bgr(const struct vis_image *img, struct vis_image **tmp)
{
    *tmp = NULL;
    if (img->fmt == VIS_BGR)
        return img;
    if (vis_convert(img, VIS_BGR, tmp) < 0)
        return NULL;
    return *tmp;
}

static const char *video_key(const struct wf_image *im)
{
    const char *id = json_string_value(json_object_get(im->video_metadata, "video_identifier"));
    if (id)
        return id;
    return im->parent_id ? im->parent_id : "image";
}

static int mog2_fail(struct wf_call *c, int rc)
{
    if (rc == ERR_LIMIT)
        return wf_call_fail(c, "image too large for a background model (at most %u pixels)",
                            MOG2_MAX_PIXELS);
    return wf_call_fail(c, "out of memory for the background model");
}

/* ---- background_subtraction ------------------------------------------------- */

static void mog2_free_v(void *p)
{
    mog2_free(p);
}

static int bgsub_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        int64_t threshold = wf_arg_int(c, i, "threshold", 16);
        int64_t history = wf_arg_int(c, i, "history", 30);
        if (!im)
            continue;
        if (history > INT32_MAX || history < INT32_MIN)
            return wf_call_fail(c, "history out of range: %lld", (long long)history);
        if (threshold > 1000000000 || threshold < -1000000000)
            return wf_call_fail(c, "threshold out of range: %lld", (long long)threshold);
        void **slot = wf_call_state(c, video_key(im), mog2_free_v);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct mog2 *m = *slot;
        int eff_h = history > 0 ? (int)history : 500;
        float eff_t = threshold > 0 ? (float)threshold : 16.0f;
        if (m && (m->history != eff_h || m->var_threshold != eff_t)) {
            mog2_free(m);
            *slot = m = NULL;
        }
        if (!m)
            *slot = m = mog2_new((int)history, (double)threshold);
        struct vis_image *tmp, *mask = NULL, *out = NULL;
        const struct vis_image *bgr = as_bgr(im->img, &tmp);
        int rc = bgr ? 0 : ERR_NOMEM;
        if (rc == 0)
            rc = (mask = vis_image_new(bgr->w, bgr->h, VIS_GRAY)) ? 0 : ERR_NOMEM;
        if (rc == 0)
            rc = mog2_apply(m, bgr, mask);
        if (rc == 0)
            rc = vis_convert(mask, VIS_BGR, &out);
        vis_image_free(tmp);
        vis_image_free(mask);
        if (rc < 0)
            return mog2_fail(c, rc);
        wf_out_image(c, i, "image", im, out);
    }
    return 0;
}

/* ---- morphology with an elliptic kernel ----------------------------------------- */

/* cv2.getStructuringElement(MORPH_ELLIPSE, (k, k)): row i holds ones in
 * columns [j1[i], j2[i]). */
static void ellipse_rows(int k, int *j1, int *j2)
{
    int r = k / 2, c = k / 2;
    double inv_r2 = r ? 1.0 / ((double)r * r) : 0;
    for (int i = 0; i < k; i++) {
        int dy = i - r;
        j1[i] = j2[i] = 0;
        if (abs(dy) <= r) {
            int dx = (int)lrint(c * sqrt((double)(r * r - dy * dy) * inv_r2));
            j1[i] = MAX(c - dx, 0);
            j2[i] = MIN(c + dx + 1, k);
        }
    }
}

#define EXT(max, a, b) ((max) ? MAX((a), (b)) : MIN((a), (b)))

/* Sliding minimum (dilate: maximum) over src[x + a .. x + b] clipped to the
 * row (van Herk / Gil-Werman); len w; scratch pad, g, hh of w + b - a
 * bytes each.  Inlined with a constant max so the loops vectorize. */
static inline __attribute__((always_inline)) void
run_extreme(const uint8_t *src, int w, int a, int b, bool max, uint8_t *dst, uint8_t *pad,
            uint8_t *g, uint8_t *hh)
{
    int L = b - a + 1, n = w + L - 1; /* pad[q] = src[q + a] */
    uint8_t fill = max ? 0 : 255;
    for (int q = 0; q < n; q++) {
        int x = q + a;
        pad[q] = x >= 0 && x < w ? src[x] : fill;
    }
    for (int q0 = 0; q0 < n; q0 += L) { /* blocks of L: prefix and suffix extremes */
        int q1 = MIN(q0 + L, n);
        g[q0] = pad[q0];
        for (int q = q0 + 1; q < q1; q++)
            g[q] = EXT(max, g[q - 1], pad[q]);
        hh[q1 - 1] = pad[q1 - 1];
        for (int q = q1 - 2; q >= q0; q--)
            hh[q] = EXT(max, hh[q + 1], pad[q]);
    }
    for (int x = 0; x < w; x++)
        dst[x] = EXT(max, hh[x], g[x + L - 1]);
}

static inline __attribute__((always_inline)) void
combine_rows(uint8_t *out, const uint8_t *s, int w, bool max)
{
    for (int x = 0; x < w; x++)
        out[x] = EXT(max, out[x], s[x]);
}

/* cv2.erode / cv2.dilate of a GRAY image with the k x k ellipse anchored at
 * (k / 2, k / 2), pixels outside the image ignored. */
static int morph_ellipse(struct vis_image *img, int k, bool dilate)
{
    int w = img->w, h = img->h, j1[MD_MAX_KERNEL], j2[MD_MAX_KERNEL], an = k / 2;
    ellipse_rows(k, j1, j2);
    /* one horizontal pass per distinct run of the kernel's rows */
    int runs[MD_MAX_KERNEL], nruns = 0, run_of[MD_MAX_KERNEL];
    for (int i = 0; i < k; i++) {
        run_of[i] = -1;
        if (j2[i] <= j1[i])
            continue;
        for (int r = 0; r < nruns && run_of[i] < 0; r++)
            if (j1[runs[r]] == j1[i] && j2[runs[r]] == j2[i])
                run_of[i] = r;
        if (run_of[i] < 0)
            runs[nruns] = i, run_of[i] = nruns++;
    }
    size_t plane = (size_t)w * (size_t)h, sw = (size_t)w + (size_t)k + 1;
    uint8_t *hor = malloc(plane * (size_t)MAX(nruns, 1));
    uint8_t *scratch = malloc(3 * sw);
    uint8_t *src = malloc(plane);
    if (!hor || !scratch || !src) {
        free(hor), free(scratch), free(src);
        return ERR_NOMEM;
    }
    for (int y = 0; y < h; y++)
        memcpy(src + (size_t)y * w, vis_px(img, 0, y), (size_t)w);
    for (int r = 0; r < nruns; r++) {
        int i = runs[r];
        for (int y = 0; y < h; y++) {
            const uint8_t *in = src + (size_t)y * w;
            uint8_t *o = hor + (size_t)r * plane + (size_t)y * w;
            if (dilate)
                run_extreme(in, w, j1[i] - an, j2[i] - 1 - an, true, o, scratch, scratch + sw,
                            scratch + 2 * sw);
            else
                run_extreme(in, w, j1[i] - an, j2[i] - 1 - an, false, o, scratch, scratch + sw,
                            scratch + 2 * sw);
        }
    }
    for (int y = 0; y < h; y++) {
        uint8_t *out = vis_px(img, 0, y);
        memset(out, dilate ? 0 : 255, (size_t)w);
        for (int i = 0; i < k; i++) {
            int yy = y + i - an;
            if (run_of[i] < 0 || yy < 0 || yy >= h)
                continue;
            const uint8_t *s = hor + (size_t)run_of[i] * plane + (size_t)yy * w;
            if (dilate)
                combine_rows(out, s, w, true);
            else
                combine_rows(out, s, w, false);
        }
    }
    free(hor), free(scratch), free(src);
    return 0;
}

/* ---- contour geometry (cv2.contourArea, arcLength, approxPolyDP, boundingRect) ---- */

static double contour_area(const int *p, size_t n)
{
    double a = 0;
    if (n == 0)
        return 0;
    double px = p[2 * (n - 1)], py = p[2 * (n - 1) + 1];
    for (size_t i = 0; i < n; i++) {
        a += px * p[2 * i + 1] - py * p[2 * i];
        px = p[2 * i], py = p[2 * i + 1];
    }
    return fabs(a * 0.5);
}

/* cv2.arcLength(closed=True): float segment lengths summed in double (cv_int.h). */
double cv__arc_length(const int *p, size_t n)
{
    double per = 0;
    if (n <= 1)
        return 0;
    float px = (float)p[2 * (n - 1)], py = (float)p[2 * (n - 1) + 1];
    for (size_t i = 0; i < n; i++) {
        float x = (float)p[2 * i], y = (float)p[2 * i + 1];
        float dx = x - px, dy = y - py;
        per += sqrtf(dx * dx + dy * dy);
        px = x, py = y;
    }
    return per;
}

/* cv2.approxPolyDP(src, eps, closed=True) for integer points (OpenCV 4.6:
 * distances to the chord's line); dst holds n points; returns the count. */
size_t cv__approx_poly_closed(const int *src, size_t count, double eps, int *dst,
                              size_t *stack /* 2 * count */)
{
    size_t top = 0, new_count = 0, pos = 0, sl_start = 0, sl_end = 0, rs_start = 0, rs_end;
    int sx = -1000000, sy = -1000000, ex, ey, px, py;
    bool le_eps = false;
    if (count == 0)
        return 0;
    eps *= eps;
#define RD(ax, ay, q)                                                                          \
    do {                                                                                       \
        ax = src[2 * (q)], ay = src[2 * (q) + 1];                                              \
        if (++(q) >= count)                                                                    \
            (q) = 0;                                                                           \
    } while (0)
    /* 1. two approximately farthest points */
    for (int it = 0; it < 3; it++) {
        double max_dist = 0;
        pos = (pos + rs_start) % count;
        RD(sx, sy, pos);
        for (size_t j = 1; j < count; j++) {
            RD(px, py, pos);
            double dx = px - sx, dy = py - sy, dist = dx * dx + dy * dy;
            if (dist > max_dist) {
                max_dist = dist;
                rs_start = j;
            }
        }
        le_eps = max_dist <= eps;
    }
    if (!le_eps) {
        rs_end = sl_start = pos % count;
        sl_end = rs_start = (rs_start + sl_start) % count;
        stack[2 * top] = rs_start, stack[2 * top + 1] = rs_end, top++;
        stack[2 * top] = sl_start, stack[2 * top + 1] = sl_end, top++;
    } else {
        dst[2 * new_count] = sx, dst[2 * new_count + 1] = sy, new_count++;
    }
    /* 2. split recursively */
    while (top > 0) {
        top--;
        sl_start = stack[2 * top], sl_end = stack[2 * top + 1];
        ex = src[2 * sl_end], ey = src[2 * sl_end + 1];
        pos = sl_start;
        RD(sx, sy, pos);
        if (pos != sl_end) {
            double dx = ex - sx, dy = ey - sy, max_dist = 0;
            while (pos != sl_end) {
                RD(px, py, pos);
                double dist = fabs((py - sy) * dx - (px - sx) * dy);
                if (dist > max_dist) {
                    max_dist = dist;
                    rs_start = (pos + count - 1) % count;
                }
            }
            le_eps = max_dist * max_dist <= eps * (dx * dx + dy * dy);
        } else {
            le_eps = true;
            sx = src[2 * sl_start], sy = src[2 * sl_start + 1];
        }
        if (le_eps) {
            dst[2 * new_count] = sx, dst[2 * new_count + 1] = sy, new_count++;
        } else {
            rs_end = sl_end;
            sl_end = rs_start;
            stack[2 * top] = rs_start, stack[2 * top + 1] = rs_end, top++;
            stack[2 * top] = sl_start, stack[2 * top + 1] = sl_end, top++;
        }
    }
#undef RD
    /* 3. drop points on [almost] straight runs */
    size_t n = new_count, wpos;
#define RDD(ax, ay, q)                                                                         \
    do {                                                                                       \
        ax = dst[2 * (q)], ay = dst[2 * (q) + 1];                                              \
        if (++(q) >= n)                                                                        \
            (q) = 0;                                                                           \
    } while (0)
    pos = n - 1;
    RDD(sx, sy, pos);
    wpos = pos;
    RDD(px, py, pos);
    for (size_t i = 0; i < n && new_count > 2; i++) {
        RDD(ex, ey, pos);
        double dx = ex - sx, dy = ey - sy;
        double dist = fabs((double)(px - sx) * dy - (double)(py - sy) * dx);
        double inner = (double)(px - sx) * (ex - px) + (double)(py - sy) * (ey - py);
        if (dist * dist <= 0.5 * eps * (dx * dx + dy * dy) && dx != 0 && dy != 0 && inner >= 0) {
            new_count--;
            dst[2 * wpos] = sx = ex, dst[2 * wpos + 1] = sy = ey;
            if (++wpos >= n)
                wpos = 0;
            RDD(px, py, pos);
            i++;
            continue;
        }
        dst[2 * wpos] = sx = px, dst[2 * wpos + 1] = sy = py;
        if (++wpos >= n)
            wpos = 0;
        px = ex, py = ey;
    }
#undef RDD
    return new_count;
}

/* ---- detection zone ------------------------------------------------------------------ */

struct zone {
    double *p; /* x, y pairs, counter-clockwise on screen after normalization */
    size_t n;
};

/* Parse and check detection_zone: NULL/empty -> n = 0; otherwise at least 3
 * points, convex.  Message into err on failure. */
static int zone_parse(const json_t *z, struct zone *out, char *err, size_t errlen)
{
    json_t *parsed = NULL;
    out->p = NULL, out->n = 0;
    if (json_is_string(z)) {
        parsed = json_loads(json_string_value(z), JSON_DECODE_ANY, NULL);
        if (!parsed) {
            snprintf(err, errlen, "Could not parse detection zone as a valid json");
            return ERR_INVALID;
        }
        z = parsed;
    }
    if (!z || json_is_null(z) || (json_is_array(z) && json_array_size(z) == 0)) {
        json_decref(parsed);
        return 0;
    }
    if (!json_is_array(z) || json_array_size(z) < 3 || json_array_size(z) > MD_MAX_ZONE) {
        snprintf(err, errlen, "detection_zone must be a list of 3 to %d [x, y] points",
                 MD_MAX_ZONE);
        json_decref(parsed);
        return ERR_INVALID;
    }
    size_t n = json_array_size(z);
    double *p = xcalloc(2 * n, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        const json_t *pt = json_array_get(z, i);
        const json_t *x = json_array_get(pt, 0), *y = json_array_get(pt, 1);
        if (!json_is_array(pt) || json_array_size(pt) != 2 || !json_is_number(x) ||
            !json_is_number(y) || !isfinite(json_number_value(x)) ||
            !isfinite(json_number_value(y))) {
            snprintf(err, errlen, "detection_zone point %zu is not an [x, y] pair of numbers", i);
            free(p), json_decref(parsed);
            return ERR_INVALID;
        }
        p[2 * i] = json_number_value(x), p[2 * i + 1] = json_number_value(y);
    }
    json_decref(parsed);
    /* convexity: every turn the same way (collinear turns allowed) */
    int sign = 0;
    double area2 = 0;
    for (size_t i = 0; i < n; i++) {
        const double *a = p + 2 * i, *b = p + 2 * ((i + 1) % n), *c = p + 2 * ((i + 2) % n);
        double cr = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]);
        area2 += a[0] * b[1] - b[0] * a[1];
        int s = cr > 0 ? 1 : cr < 0 ? -1 : 0;
        if (s && sign && s != sign) {
            snprintf(err, errlen, "detection_zone must be a convex polygon here (a non-convex "
                                  "zone is not supported)");
            free(p);
            return ERR_INVALID;
        }
        if (s)
            sign = s;
    }
    if (area2 == 0) {
        snprintf(err, errlen, "detection_zone has no area");
        free(p);
        return ERR_INVALID;
    }
    if (area2 < 0) /* make the turns positive */
        for (size_t i = 0; i < n / 2; i++) {
            double t0 = p[2 * i], t1 = p[2 * i + 1];
            p[2 * i] = p[2 * (n - 1 - i)], p[2 * i + 1] = p[2 * (n - 1 - i) + 1];
            p[2 * (n - 1 - i)] = t0, p[2 * (n - 1 - i) + 1] = t1;
        }
    out->p = p, out->n = n;
    return 0;
}

/* Sutherland-Hodgman: the part of polygon in (n points) inside the convex
 * zone; *out malloc'd, returns its point count. */
static size_t zone_clip(const struct zone *z, const int *in, size_t n, double **out)
{
    size_t m = n, ccap = n + 1, ncap = 2 * n + 2;
    double *cur = xcalloc(2 * ccap, sizeof *cur), *nxt = xcalloc(2 * ncap, sizeof *nxt);
    for (size_t i = 0; i < n; i++)
        cur[2 * i] = in[2 * i], cur[2 * i + 1] = in[2 * i + 1];
    for (size_t e = 0; e < z->n && m > 0; e++) {
        const double *a = z->p + 2 * e, *b = z->p + 2 * ((e + 1) % z->n);
        size_t k = 0;
        if (ncap < 2 * m + 2) {
            ncap = 2 * m + 2;
            nxt = xrealloc(nxt, 2 * ncap * sizeof *nxt);
        }
        for (size_t i = 0; i < m; i++) {
            const double *p = cur + 2 * i, *q = cur + 2 * ((i + 1) % m);
            double sp = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);
            double sq = (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0]);
            if (sp >= 0)
                nxt[2 * k] = p[0], nxt[2 * k + 1] = p[1], k++;
            if ((sp > 0 && sq < 0) || (sp < 0 && sq > 0)) {
                /* exact when the crossing has representable coordinates */
                nxt[2 * k] = (sp * q[0] - sq * p[0]) / (sp - sq);
                nxt[2 * k + 1] = (sp * q[1] - sq * p[1]) / (sp - sq);
                k++;
            }
        }
        double *t = cur;
        size_t tc = ccap;
        cur = nxt, ccap = ncap;
        nxt = t, ncap = tc;
        m = k;
    }
    free(nxt);
    *out = cur;
    return m;
}

static double area_d(const double *p, size_t n)
{
    double a = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = (i + 1) % n;
        a += p[2 * i] * p[2 * j + 1] - p[2 * j] * p[2 * i + 1];
    }
    return fabs(a) / 2;
}

/* ---- motion_detection -------------------------------------------------------------- */

struct motion {
    struct mog2 *m;
    int64_t frame_count;
    bool last_motion;
};

static void motion_free(void *p)
{
    struct motion *s = p;
    if (s)
        mog2_free(s->m);
    free(s);
}

/* The contours (after the area filter and the zone), each x, y pairs:
 * polys[k] of npoly[k] points. */
struct polys {
    int **p;
    size_t *n;
    size_t count, cap;
};

static void polys_add(struct polys *ps, int *p, size_t n)
{
    if (ps->count == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 8;
        ps->p = xrealloc(ps->p, ps->cap * sizeof *ps->p);
        ps->n = xrealloc(ps->n, ps->cap * sizeof *ps->n);
    }
    ps->p[ps->count] = p, ps->n[ps->count] = n, ps->count++;
}

static void polys_free(struct polys *ps)
{
    for (size_t k = 0; k < ps->count; k++)
        free(ps->p[k]);
    free(ps->p), free(ps->n);
}

/* Mask -> filtered, clipped contours. */
static int motion_contours(const struct vis_image *mask, int64_t min_area, const struct zone *z,
                           struct polys *ps)
{
    struct cv_contours o = {0};
    int rc = cv__find_contours(mask, &o);
    if (rc < 0) {
        free(o.pts), free(o.start);
        return rc;
    }
    for (size_t kk = o.n; kk-- > 0;) { /* OpenCV's order: last found first */
        const int *pts = o.pts + 2 * o.start[kk];
        size_t n = o.start[kk + 1] - o.start[kk];
        if (n == 0 || !(contour_area(pts, n) > (double)min_area))
            continue;
        if (z->n == 0) {
            int *cp = xcalloc(2 * n, sizeof *cp);
            memcpy(cp, pts, 2 * n * sizeof *cp);
            polys_add(ps, cp, n);
            continue;
        }
        if (n < 3)
            continue;
        double *cl = NULL;
        size_t m = zone_clip(z, pts, n, &cl);
        /* shapely: an intersection without area is empty (or not a polygon) */
        if (m >= 3 && area_d(cl, m) > 0) {
            int *cp = xcalloc(2 * m, sizeof *cp);
            for (size_t q = 0; q < 2 * m; q++)
                cp[q] = (int)cl[q]; /* Python int(): toward zero */
            polys_add(ps, cp, m);
        }
        free(cl);
    }
    free(o.pts), free(o.start);
    return 0;
}

static int motion_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        int64_t min_area = wf_arg_int(c, i, "minimum_contour_area", 200);
        int64_t ksize = wf_arg_int(c, i, "morphological_kernel_size", 3);
        int64_t threshold = wf_arg_int(c, i, "threshold", 16);
        int64_t history = wf_arg_int(c, i, "history", 30);
        bool suppress = wf_arg_bool(c, i, "suppress_first_detections", true);
        char err[256];
        struct zone z;
        if (!im)
            continue;
        if (ksize < 1 || ksize > MD_MAX_KERNEL)
            return wf_call_fail(c, "morphological_kernel_size must be in 1..%d, got %lld",
                                MD_MAX_KERNEL, (long long)ksize);
        if (history < 1 || history > INT32_MAX)
            return wf_call_fail(c, "history must be a positive integer, got %lld",
                                (long long)history);
        if (threshold < 1 || threshold > 1000000000)
            return wf_call_fail(c, "threshold must be a positive integer, got %lld",
                                (long long)threshold);
        if (min_area < 1)
            return wf_call_fail(c, "minimum_contour_area must be a positive integer, got %lld",
                                (long long)min_area);
        if (zone_parse(wf_arg_json(c, i, "detection_zone"), &z, err, sizeof err) < 0)
            return wf_call_fail(c, "%s", err);
        void **slot = wf_call_state(c, video_key(im), motion_free);
        if (!slot) {
            free(z.p);
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        }
        struct motion *s = *slot;
        if (!s) {
            *slot = s = xcalloc(1, sizeof *s);
            s->m = mog2_new((int)history, (double)threshold);
        }
        if (suppress && s->frame_count < history) {
            s->frame_count++;
            free(z.p);
            wf_out_json(c, i, "motion", json_false());
            wf_out_json(c, i, "alarm", json_false());
            wf_out_dets(c, i, "detections", wf_dets_new());
            wf_out_json(c, i, "motion_zones", json_array());
            continue;
        }
        struct vis_image *tmp, *mask = NULL;
        const struct vis_image *bgr = as_bgr(im->img, &tmp);
        int rc = bgr ? 0 : ERR_NOMEM;
        if (rc == 0)
            rc = (mask = vis_image_new(bgr->w, bgr->h, VIS_GRAY)) ? 0 : ERR_NOMEM;
        if (rc == 0)
            rc = mog2_apply(s->m, bgr, mask);
        vis_image_free(tmp);
        if (rc < 0) {
            vis_image_free(mask), free(z.p);
            return mog2_fail(c, rc);
        }
        if (ksize > 1) { /* a 1 x 1 opening changes nothing */
            rc = morph_ellipse(mask, (int)ksize, false);
            if (rc == 0)
                rc = morph_ellipse(mask, (int)ksize, true);
        }
        struct polys ps = {0};
        if (rc == 0)
            rc = motion_contours(mask, min_area, &z, &ps);
        vis_image_free(mask);
        free(z.p);
        if (rc < 0) {
            polys_free(&ps);
            return wf_call_fail(c, rc == ERR_LIMIT ? "too many contour points"
                                                   : "out of memory");
        }
        struct wf_dets *ds = wf_dets_new();
        json_t *zones = json_array();
        for (size_t k = 0; k < ps.count; k++) {
            size_t n = ps.n[k];
            int *ap = xcalloc(2 * n, sizeof *ap);
            size_t *stack = xcalloc(2 * n + 2, sizeof *stack);
            size_t an = cv__approx_poly_closed(ps.p[k], n, 0.01 * cv__arc_length(ps.p[k], n), ap, stack);
            free(stack);
            if (an >= 3) {
                int x0 = ap[0], y0 = ap[1], x1 = ap[0], y1 = ap[1];
                json_t *poly = json_array();
                for (size_t q = 0; q < an; q++) {
                    x0 = MIN(x0, ap[2 * q]), x1 = MAX(x1, ap[2 * q]);
                    y0 = MIN(y0, ap[2 * q + 1]), y1 = MAX(y1, ap[2 * q + 1]);
                    json_array_append_new(poly, json_pack("[i,i]", ap[2 * q], ap[2 * q + 1]));
                }
                json_array_append_new(zones, poly);
                struct wf_det *d = wf_dets_push_new(ds);
                /* boundingRect: x, y, w = max - min + 1 -> [x, y, x + w, y + h] */
                d->x1 = (float)x0, d->y1 = (float)y0;
                d->x2 = (float)x1 + 1, d->y2 = (float)y1 + 1;
                d->confidence = 1.0f;
                d->class_id = 0;
                wf_det_set_str(&d->class_name, "motion");
                wf_det_set_str(&d->prediction_type, "object-detection");
                wf_det_attach_image(d, im);
            }
            free(ap);
        }
        bool motion = ps.count > 0;
        bool alarm = !s->last_motion && motion;
        s->last_motion = motion;
        polys_free(&ps);
        wf_out_json(c, i, "motion", json_boolean(motion));
        wf_out_json(c, i, "alarm", json_boolean(alarm));
        wf_out_dets(c, i, "detections", ds);
        wf_out_json(c, i, "motion_zones", zones);
    }
    return 0;
}

/* ---- manifests (spec/blocks.json) ------------------------------------------- */

static const struct wf_field bgsub_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"threshold", NULL, WF_FT_INT, "16", WF_K_INT, 0, NULL},
    {"history", NULL, WF_FT_INT, "30", WF_K_INT, 0, NULL},
};
static const struct wf_output bgsub_outs[] = {{"image", WF_K_IMAGE}};
static const struct wf_block bgsub = {
    (const char *const[]){"roboflow_core/background_subtraction@v1", NULL},
    bgsub_fields, ARRAY_LEN(bgsub_fields), bgsub_outs, ARRAY_LEN(bgsub_outs), 0, 0, NULL,
    bgsub_run, NULL};

static const struct wf_field motion_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"minimum_contour_area", NULL, WF_FT_INT_POS, "200", WF_K_INT, 0, NULL},
    {"morphological_kernel_size", NULL, WF_FT_INT_POS, "3", WF_K_INT, 0, NULL},
    {"threshold", NULL, WF_FT_INT_POS, "16", WF_K_INT, 0, NULL},
    {"history", NULL, WF_FT_INT_POS, "30", WF_K_INT, 0, NULL},
    {"detection_zone", NULL, WF_FT_ANY, "null", WF_K_LIST | WF_K_ZONE, WF_F_NULLABLE, NULL},
    {"suppress_first_detections", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},
};
static const struct wf_output motion_outs[] = {{"motion", WF_K_BOOL},
                                               {"alarm", WF_K_BOOL},
                                               {"detections", WF_K_OD},
                                               {"motion_zones", WF_K_LIST}};
static const struct wf_block motion = {
    (const char *const[]){"roboflow_core/motion_detection@v1", NULL},
    motion_fields, ARRAY_LEN(motion_fields), motion_outs, ARRAY_LEN(motion_outs), 0, 0, NULL,
    motion_run, NULL};

const struct wf_block *const wf_blocks_motion[] = {&bgsub, &motion, NULL};

/* ---- for the unit tests (cv_int.h) ---------------------------------------------- */

int cv__ellipse_kernel(int k, uint8_t *out)
{
    int j1[MD_MAX_KERNEL], j2[MD_MAX_KERNEL];
    if (k < 1 || k > MD_MAX_KERNEL)
        return ERR_INVALID;
    ellipse_rows(k, j1, j2);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            out[i * k + j] = j >= j1[i] && j < j2[i];
    return 0;
}
