/*
 * blocks/measure.c — measurement and detection-set blocks of Roboflow's
 * classical_cv / transformations families that need no model and no new
 * library: mask_area_measurement, distance_measurement,
 * detections_nearest_neighbor, detections_combine, camera_focus v1,
 * template_matching, dominant_color, contours_detection, size_measurement,
 * detections_difference, cosine_similarity.
 *
 * Behaviour follows roboflow/inference's blocks (read, not copied):
 * - mask_area_measurement: area_px = non-zero pixels of the mask (the
 *   polygon rasterized as cv2.fillPoly does), or the box area when there is
 *   no mask or it is empty; area_converted = area_px / pixels_per_unit²
 *   (pixels_per_unit <= 0 counts as 1);
 * - distance_measurement: boxes rounded half-to-even (numpy round), the
 *   first box of each class (scanning stops once both are found), 0 when the
 *   boxes overlap or have no gap on the reference axis, otherwise the gap in
 *   pixels and that gap over the pixel ratio (given, or the reference
 *   object's mean of width/reference_width and height/reference_height);
 * - detections_nearest_neighbor: brute-force distances between float anchor
 *   points (sv get_anchors_coordinates, or a named keypoint), a target with
 *   the query's detection_id excluded, max_distance applied before ranking,
 *   every target within 1 px of the row minimum matched (ties duplicate the
 *   query row), nearest_target_distance set on every query (null when none);
 * - detections_combine: sv.Detections.merge of the two sets (empty sets
 *   dropped; masks must be on both or neither);
 * - camera_focus v1: Brenner's measure on the grayscale image: per pixel
 *   max(clip(I[x+2]-I[x], 0), clip(I[y+2]-I[y], 0))² (I: cv2.cvtColor's
 *   gray, OpenCV 4's rounding), its mean as
 *   focus_measure, the map scaled to 0..255 (truncated) as a GRAY image with
 *   "Focus value: <mean, 2 decimals>" at (10, 30);
 * - template_matching: cv2.matchTemplate(TM_CCOEFF_NORMED) of the grays
 *   (exact integer correlation, direct — no DFT — so the work is bounded by
 *   TM_MAX_WORK), every position >= matching_threshold a box of the
 *   template's size (confidence 1, class "template_match"), then sv's NMS;
 * - dominant_color: every (min(w, h) // target_size)-th pixel, k-means as
 *   find_dominant_color (see dc_kmeans), the centroid as [r, g, b]; the
 *   initial centroids come from a fixed-seed generator, so the result is
 *   reproducible where Roboflow's depends on numpy's global random state;
 * - contours_detection: cv2.findContours(RETR_EXTERNAL,
 *   CHAIN_APPROX_SIMPLE) of the gray image (non-zero = foreground) by
 *   Suzuki & Abe's border following as OpenCV runs it; contours as numpy's
 *   tolist() of (N, 1, 2) arrays, hierarchy (1, N, 4) or None; the gray
 *   image back in BGR with the contours drawn in (255, 0, 255);
 * - size_measurement: each object's minimum-area rectangle (of the largest
 *   external contour of its mask, or its box) scaled by the reference's
 *   (the most confident reference detection, or a polygon given as a
 *   list): width = the side closer to horizontal, height, longer, shorter;
 * - detections_difference: Roboflow's pairwise cost (spatial_weight x
 *   (1 - IoU), or 1 + centre distance / enclosing diagonal when disjoint,
 *   plus the class-mismatch penalty or infinity when class_strict) and its
 *   greedy lowest-cost matching (ties: the first pair in row-major order)
 *   up to reject_cost; removed / persisted / new detections and counts.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/blocks/viz_int.h"
#include "workflow/wf_int.h"

#define TYPES(var, ...) static const char *const var##_types[] = {__VA_ARGS__, NULL}
#define BLOCK(var, fields, outs, fn)                                                        \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,      \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL}

static void det_set_extra(struct wf_det *d, const char *key, json_t *v)
{
    if (!d->extra)
        d->extra = json_object();
    json_object_set_new(d->extra, key, v);
}

/* ---- mask_area_measurement ----------------------------------------------- */

/* Area in square pixels: mask pixel count, or the box area. */
static int det_area_px(const struct wf_det *d, double *area)
{
    struct vis_image *m = NULL;
    int ox, oy, rc;
    long long n = 0;
    if (d->has_mask && d->img_w > 0 && d->img_h > 0) {
        if ((rc = viz__det_mask(d, d->img_w, d->img_h, &m, &ox, &oy)) < 0)
            return rc;
        if (m) {
            for (int y = 0; y < m->h; y++) {
                const uint8_t *row = vis_px(m, 0, y);
                for (int x = 0; x < m->w; x++)
                    n += row[x] != 0;
            }
            vis_image_free(m);
        }
        if (n > 0) {
            *area = (double)n;
            return 0;
        }
    }
    *area = ((double)d->x2 - d->x1) * ((double)d->y2 - d->y1);
    return 0;
}

static int mask_area_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *in = wf_arg_dets(c, i, "predictions");
        double ppu = wf_arg_double(c, i, "pixels_per_unit", 1.0);
        double scale = ppu > 0 ? ppu * ppu : 1.0;
        struct wf_dets *ds;
        if (!in)
            continue;
        if (!isfinite(scale) || scale == 0)
            return wf_call_fail(c, "pixels_per_unit must be a finite number, got %g", ppu);
        ds = wf_dets_clone(in);
        for (size_t k = 0; k < ds->n; k++) {
            double a;
            int rc = det_area_px(&ds->d[k], &a);
            if (rc < 0) {
                wf_dets_free(ds);
                return wf_call_fail(c, "detection #%zu: mask too large (%d)", k, rc);
            }
            det_set_extra(&ds->d[k], "area_px", json_real(a));
            det_set_extra(&ds->d[k], "area_converted", json_real(a / scale));
        }
        wf_out_dets(c, i, "predictions", ds);
    }
    return 0;
}

/* ---- distance_measurement ------------------------------------------------ */

struct ibox {
    long long x1, y1, x2, y2;
};

/* numpy .round().astype(int) of a coordinate: half to even, clamped. */
static long long round_even(float v)
{
    double r = nearbyint((double)v);
    if (!(r > -1e12))
        return r != r ? 0 : -1000000000000LL;
    return r > 1e12 ? 1000000000000LL : (long long)r;
}

static struct ibox ibox_of(const struct wf_det *d)
{
    struct ibox b = {round_even(d->x1), round_even(d->y1), round_even(d->x2), round_even(d->y2)};
    return b;
}

static bool boxes_overlap(const struct ibox *a, const struct ibox *b)
{
    if (a->x2 < b->x1 || b->x2 < a->x1)
        return false;
    if (a->y2 < b->y1 || b->y2 < a->y1)
        return false;
    return true;
}

static bool axis_gap(const struct ibox *a, const struct ibox *b, bool horizontal)
{
    if (horizontal)
        return !(a->x1 < b->x2 && a->x2 > b->x1);
    return !(a->y1 < b->y2 && a->y2 > b->y1);
}

static long long gap_pixels(const struct ibox *a, const struct ibox *b, bool horizontal)
{
    if (!horizontal)
        return b->y1 > a->y2 ? llabs(b->y1 - a->y2) : llabs(a->y1 - b->y2);
    return b->x1 > a->x2 ? llabs(b->x1 - a->x2) : llabs(a->x1 - b->x2);
}

static int distance_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        const char *n1 = wf_arg_str(c, i, "object_1_class_name");
        const char *n2 = wf_arg_str(c, i, "object_2_class_name");
        const char *axis = wf_arg_str(c, i, "reference_axis");
        const char *method = wf_arg_str(c, i, "calibration_method");
        bool horizontal = axis && !strcmp(axis, "horizontal");
        const struct wf_det *d1 = NULL, *d2 = NULL;
        double ratio;
        if (!ds)
            continue;
        for (size_t k = 0; k < ds->n && !(d1 && d2); k++) {
            const char *cn = ds->d[k].class_name ? ds->d[k].class_name : "";
            if (!strcmp(cn, n1))
                d1 = &ds->d[k];
            else if (!strcmp(cn, n2))
                d2 = &ds->d[k];
        }
        if (!d1 || !d2)
            return wf_call_fail(c, "reference class '%.100s' or '%.100s' not found in predictions",
                                n1, n2);
        struct ibox b1 = ibox_of(d1), b2 = ibox_of(d2);
        if (boxes_overlap(&b1, &b2) || !axis_gap(&b1, &b2, horizontal)) {
            wf_out_json(c, i, "distance_cm", json_integer(0));
            wf_out_json(c, i, "distance_pixel", json_integer(0));
            continue;
        }
        if (!strcmp(method, "reference object")) {
            const char *ref = wf_arg_str(c, i, "reference_object_class_name");
            double rw = wf_arg_double(c, i, "reference_width", 2.5);
            double rh = wf_arg_double(c, i, "reference_height", 2.5);
            const struct wf_det *r = NULL;
            for (size_t k = 0; k < ds->n && !r; k++)
                if (ref && ds->d[k].class_name && !strcmp(ds->d[k].class_name, ref))
                    r = &ds->d[k];
            if (!r)
                return wf_call_fail(c, "reference class '%.100s' not found in predictions",
                                    ref ? ref : "");
            if (!(rw > 0) || !(rh > 0))
                return wf_call_fail(c, "reference object dimensions must be greater than zero");
            struct ibox rb = ibox_of(r);
            ratio = ((double)llabs(rb.x2 - rb.x1) / rw + (double)llabs(rb.y2 - rb.y1) / rh) / 2;
        } else {
            ratio = wf_arg_double(c, i, "pixel_ratio", 100);
            if (!(ratio > 0))
                return wf_call_fail(c, "pixel-to-centimeter ratio must be greater than zero");
        }
        long long px = gap_pixels(&b1, &b2, horizontal);
        /* a zero-size reference object gives numpy's inf (or nan for 0/0) */
        double cm = ratio > 0 ? (double)px / ratio : (px ? INFINITY : NAN);
        wf_out_json(c, i, "distance_cm", isfinite(cm) ? json_real(cm) : json_null());
        wf_out_json(c, i, "distance_pixel", json_integer(px));
    }
    return 0;
}

/* ---- detections_nearest_neighbor ----------------------------------------- */

static const char *const ANCHORS[] = {"CENTER",      "CENTER_LEFT",   "CENTER_RIGHT",
                                      "TOP_CENTER",  "TOP_LEFT",      "TOP_RIGHT",
                                      "BOTTOM_LEFT", "BOTTOM_CENTER", "BOTTOM_RIGHT",
                                      "KEYPOINT",    NULL};
#define NN_TIE_EPS 1.0
#define NN_MAX_PAIRS 1000000 /* matched pairs in one image (ties duplicate rows) */
#define NN_MAX_WORK 1e8      /* query x target distances per image */

/* Anchor points of ds (NaN when a keypoint is missing). */
static int nn_points(struct wf_call *c, const struct wf_dets *ds, const char *point,
                     const char *kp_name, double *xy)
{
    bool kp = !strcmp(point, "KEYPOINT");
    for (size_t k = 0; k < ds->n; k++) {
        const struct wf_det *d = &ds->d[k];
        double x1 = d->x1, y1 = d->y1, x2 = d->x2, y2 = d->y2;
        double cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, x = cx, y = cy;
        if (kp) {
            if (!d->has_kp)
                return wf_call_fail(c, "query_point/target_point set to 'KEYPOINT' but the "
                                       "predictions do not contain keypoint data");
            x = y = NAN;
            for (size_t j = 0; j < d->nkp; j++)
                if (d->kp[j].class_name && !strcmp(d->kp[j].class_name, kp_name)) {
                    x = d->kp[j].x, y = d->kp[j].y;
                    break;
                }
        } else if (!strcmp(point, "CENTER_LEFT"))
            x = x1;
        else if (!strcmp(point, "CENTER_RIGHT"))
            x = x2;
        else if (!strcmp(point, "TOP_CENTER"))
            y = y1;
        else if (!strcmp(point, "TOP_LEFT"))
            x = x1, y = y1;
        else if (!strcmp(point, "TOP_RIGHT"))
            x = x2, y = y1;
        else if (!strcmp(point, "BOTTOM_LEFT"))
            x = x1, y = y2;
        else if (!strcmp(point, "BOTTOM_CENTER"))
            y = y2;
        else if (!strcmp(point, "BOTTOM_RIGHT"))
            x = x2, y = y2;
        xy[2 * k] = x, xy[2 * k + 1] = y;
    }
    return 0;
}

/* Distance of query q to target t, NaN when excluded. */
static double nn_dist(const struct wf_dets *qs, const struct wf_dets *ts, const double *qp,
                      const double *tp, size_t q, size_t t, double maxd)
{
    double d = hypot(qp[2 * q] - tp[2 * t], qp[2 * q + 1] - tp[2 * t + 1]);
    if (!strcmp(qs->d[q].detection_id, ts->d[t].detection_id))
        return NAN;
    if (d > maxd)
        return NAN;
    return d;
}

static int nn_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *qs = wf_arg_dets(c, i, "query_predictions");
        const struct wf_dets *ts = wf_arg_dets(c, i, "target_predictions");
        const char *qpt = wf_arg_str(c, i, "query_point");
        const char *tpt = wf_arg_str(c, i, "target_point");
        const char *qkn = wf_arg_str(c, i, "query_keypoint_name");
        const char *tkn = wf_arg_str(c, i, "target_keypoint_name");
        const struct wf_value *md = wf_arg(c, i, "max_distance");
        double maxd = wf_value_is_null(md) ? INFINITY : wf_arg_double(c, i, "max_distance", 0);
        if (!qs || !ts)
            continue;
        if ((double)qs->n * (double)ts->n > NN_MAX_WORK)
            return wf_call_fail(c, "%zu x %zu detections to compare (at most %.0e pairs)", qs->n,
                                ts->n, NN_MAX_WORK);
        if (!strcmp(qpt, "KEYPOINT") && !(qkn && *qkn))
            return wf_call_fail(c, "`query_keypoint_name` must be provided when `query_point` "
                                   "is set to 'KEYPOINT'");
        if (!strcmp(tpt, "KEYPOINT") && !(tkn && *tkn))
            return wf_call_fail(c, "`target_keypoint_name` must be provided when "
                                   "`target_point` is set to 'KEYPOINT'");
        double *qp = xcalloc(qs->n * 2 + 1, sizeof *qp), *tp = xcalloc(ts->n * 2 + 1, sizeof *tp);
        struct wf_dets *qout = wf_dets_clone(qs), *mq = wf_dets_new(), *mt = wf_dets_new();
        int rc = 0;
        if (nn_points(c, qs, qpt, qkn, qp) < 0 || nn_points(c, ts, tpt, tkn, tp) < 0) {
            rc = ERR_INVALID;
            goto done;
        }
        size_t pairs = 0;
        for (size_t q = 0; q < qs->n; q++) {
            double best = NAN;
            for (size_t t = 0; t < ts->n; t++) {
                double d = nn_dist(qs, ts, qp, tp, q, t, maxd);
                if (!isnan(d) && (isnan(best) || d < best))
                    best = d;
            }
            det_set_extra(&qout->d[q], "nearest_target_distance",
                          isnan(best) ? json_null() : json_real(best));
            if (isnan(best))
                continue;
            for (size_t t = 0; t < ts->n; t++) {
                double d = nn_dist(qs, ts, qp, tp, q, t, maxd);
                if (isnan(d) || !(d <= best + NN_TIE_EPS))
                    continue;
                if (++pairs > NN_MAX_PAIRS) {
                    rc = wf_call_fail(c, "more than %d matched pairs", NN_MAX_PAIRS);
                    goto done;
                }
                wf_dets_push_copy(mq, &qout->d[q]);
                wf_dets_push_copy(mt, &ts->d[t]);
            }
        }
    done:
        free(qp);
        free(tp);
        if (rc < 0) {
            wf_dets_free(qout);
            wf_dets_free(mq);
            wf_dets_free(mt);
            return rc;
        }
        wf_out_dets(c, i, "query_predictions", qout);
        wf_out_dets(c, i, "matched_query_detections", mq);
        wf_out_dets(c, i, "matched_target_detections", mt);
    }
    return 0;
}

/* ---- detections_combine -------------------------------------------------- */

static int combine_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *a = wf_arg_dets(c, i, "prediction_one");
        const struct wf_dets *b = wf_arg_dets(c, i, "prediction_two");
        if (!a || !b)
            continue;
        if (a->n && b->n && a->d[0].has_mask != b->d[0].has_mask)
            return wf_call_fail(c, "all or none of the detections must have masks "
                                   "(sv.Detections.merge)");
        if (a->n + b->n > WF_MAX_ELEMENTS)
            return wf_call_fail(c, "more than %d detections", WF_MAX_ELEMENTS);
        struct wf_dets *ds = wf_dets_clone(a);
        for (size_t k = 0; k < b->n; k++)
            wf_dets_push_copy(ds, &b->d[k]);
        wf_out_dets(c, i, "predictions", ds);
    }
    return 0;
}

/* ---- camera_focus v1 ----------------------------------------------------- */

/* Brenner map of gray (as double, squared differences) and its mean. */
static int brenner(const struct vis_image *gray, struct vis_image **map, double *mean)
{
    int w = gray->w, h = gray->h;
    size_t n = (size_t)w * (size_t)h;
    uint32_t *fm = malloc(n * sizeof *fm), fmax = 0;
    double sum = 0;
    if (!fm)
        return ERR_NOMEM;
    for (int y = 0; y < h; y++) {
        const uint8_t *r = vis_px(gray, 0, y), *r2 = y + 2 < h ? vis_px(gray, 0, y + 2) : NULL;
        for (int x = 0; x < w; x++) {
            int dh = x + 2 < w ? (int)r[x + 2] - (int)r[x] : 0;
            int dv = r2 ? (int)r2[x] - (int)r[x] : 0;
            int m = MAX(MAX(dh, dv), 0);
            uint32_t v = (uint32_t)(m * m);
            fm[(size_t)y * w + x] = v;
            fmax = MAX(fmax, v);
            sum += v;
        }
    }
    *mean = n ? sum / (double)n : 0;
    *map = vis_image_new(w, h, VIS_GRAY);
    if (!*map) {
        free(fm);
        return ERR_NOMEM;
    }
    for (int y = 0; y < h; y++) {
        uint8_t *o = vis_px(*map, 0, y);
        for (int x = 0; x < w; x++)
            /* (fm / max) * 255 then astype(uint8): truncation */
            o[x] = fmax ? (uint8_t)((double)fm[(size_t)y * w + x] / fmax * 255.0) : 0;
    }
    free(fm);
    return 0;
}

/* cv2.cvtColor(BGR2GRAY / BGRA2GRAY) of OpenCV 4.x's vectorized 8-bit path
 * (what Roboflow's Python gets): 16-bit fixed point 7470 B + 38470 G +
 * 19596 R, rounded — it differs from the 14-bit scalar formula of
 * vis_convert in about 1 of 400 colours (checked against Debian's
 * python3-opencv 4.6 over all 2^24 colours).  GRAY is copied. */
static struct vis_image *gray_cv2(const struct vis_image *src)
{
    struct vis_image *g = vis_image_new(src->w, src->h, VIS_GRAY);
    int ch = vis_channels(src);
    if (!g)
        return NULL;
    for (int y = 0; y < src->h; y++) {
        const uint8_t *s = vis_px(src, 0, y);
        uint8_t *o = vis_px(g, 0, y);
        for (int x = 0; x < src->w; x++, s += ch)
            o[x] = ch == 1 ? s[0]
                           : (uint8_t)((s[0] * 7470u + s[1] * 38470u + s[2] * 19596u + 32768u) >> 16);
    }
    return g;
}

struct vis_image *cv__gray(const struct vis_image *src) { return gray_cv2(src); }

static int focus1_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        struct vis_image *gray = NULL, *map = NULL;
        double mean = 0;
        char text[64];
        int rc;
        if (!im)
            continue;
        if (im->img->w < 1 || im->img->h < 1)
            return wf_call_fail(c, "empty image");
        gray = gray_cv2(im->img);
        rc = gray ? 0 : ERR_NOMEM;
        if (rc == 0)
            rc = brenner(gray, &map, &mean);
        vis_image_free(gray);
        if (rc < 0)
            return wf_call_fail(c, "out of memory");
        snprintf(text, sizeof text, "Focus value: %.2f", mean);
        /* cv2.putText(FONT_HERSHEY_SIMPLEX, scale 1, white, thickness 2) at
         * baseline-left (10, 30) */
        viz__text_draw(map, vis_font_default(), text, vis_text_px_for_scale(1.0), 10, 30, 2,
                       VIS_RGB(255, 255, 255));
        wf_out_image(c, i, "warped_image", im, map);
        wf_out_json(c, i, "focus_measure", json_real(mean));
    }
    return 0;
}

/* ---- template_matching ------------------------------------------------------ */

#define TM_MAX_WORK 2e10      /* (W-w+1)(H-h+1)·w·h multiply-adds per image */
#define TM_MAX_MATCHES 20000  /* positions above the threshold (NMS is quadratic) */
#define TM_MAX_PIXELS (40u << 20) /* image pixels (20 bytes of work memory each) */

/* acc[x] += Σ_tx t[tx]·img[x + tx] for x < rw: one template row against
 * one image row, in float — exact while the sum stays below 2^24 (integer
 * products of 8-bit values, w <= TM_FLOAT_MAX_W).  Vectorized for AVX2+FMA
 * where the CPU has it (function multi-versioning), SSE2 otherwise. */
#define TM_FLOAT_MAX_W 258
#if defined(__clang__)
#define TM_KERNEL __attribute__((target_clones("arch=haswell", "default")))
#else
#define TM_KERNEL __attribute__((target_clones("arch=haswell", "default"), optimize("O3")))
#endif
TM_KERNEL static void tm_corr_row(float *restrict acc, const float *restrict img, const float *restrict t,
                        int w, int rw)
{
    int tx = 0;
    for (; tx + 8 <= w; tx += 8) {
        float t0 = t[tx], t1 = t[tx + 1], t2 = t[tx + 2], t3 = t[tx + 3];
        float t4 = t[tx + 4], t5 = t[tx + 5], t6 = t[tx + 6], t7 = t[tx + 7];
        const float *p = img + tx;
        for (int x = 0; x < rw; x++)
            acc[x] += (t0 * p[x] + t1 * p[x + 1] + t2 * p[x + 2] + t3 * p[x + 3]) +
                      (t4 * p[x + 4] + t5 * p[x + 5] + t6 * p[x + 6] + t7 * p[x + 7]);
    }
    for (; tx + 4 <= w; tx += 4) {
        float t0 = t[tx], t1 = t[tx + 1], t2 = t[tx + 2], t3 = t[tx + 3];
        const float *p = img + tx;
        for (int x = 0; x < rw; x++)
            acc[x] += t0 * p[x] + t1 * p[x + 1] + t2 * p[x + 2] + t3 * p[x + 3];
    }
    for (; tx < w; tx++) {
        float tv = t[tx];
        const float *p = img + tx;
        for (int x = 0; x < rw; x++)
            acc[x] += tv * p[x];
    }
}

/* cv2.matchTemplate(gray, tmpl, TM_CCOEFF_NORMED) as float32: correlation
 * sums computed exactly in integers, window sums from integral images,
 * normalized like OpenCV (flat windows 0, a flat template 1 everywhere,
 * |num| within 12.5 % above the norm clamped to ±1).  res is rw x rh. */
static int ccoeff_normed(const struct vis_image *img, const struct vis_image *tpl, float *res)
{
    int W = img->w, H = img->h, w = tpl->w, h = tpl->h, rw = W - w + 1, rh = H - h + 1;
    size_t n = (size_t)w * (size_t)h;
    int64_t tsum = 0, tsum2 = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = vis_px(tpl, x, y)[0];
            tsum += v, tsum2 += (int64_t)v * v;
        }
    double tnorm2 = (double)tsum2 - (double)tsum * (double)tsum / (double)n;
    if (!(tnorm2 > 0) || sqrt(tnorm2) < 2.2204460492503131e-16) {
        for (size_t k = 0; k < (size_t)rw * rh; k++)
            res[k] = 1.0f;
        return 0;
    }
    double tnorm = sqrt(tnorm2);
    /* integral images of I and I² (W+1) x (H+1) */
    size_t iw = (size_t)W + 1;
    int64_t *s1 = calloc(iw * ((size_t)H + 1), sizeof *s1);
    int64_t *s2 = calloc(iw * ((size_t)H + 1), sizeof *s2);
    int64_t *acc = malloc((size_t)rw * sizeof *acc);
    int32_t *racc = malloc((size_t)rw * sizeof *racc);
    if (!s1 || !s2 || !acc || !racc) {
        free(s1), free(s2), free(acc), free(racc);
        return ERR_NOMEM;
    }
    for (int y = 0; y < H; y++) {
        const uint8_t *r = vis_px(img, 0, y);
        int64_t a = 0, b = 0;
        for (int x = 0; x < W; x++) {
            a += r[x], b += (int64_t)r[x] * r[x];
            s1[(y + 1) * iw + x + 1] = s1[y * iw + x + 1] + a;
            s2[(y + 1) * iw + x + 1] = s2[y * iw + x + 1] + b;
        }
    }
    /* float copies of the pixels for the vectorized row kernel */
    float *fimg = NULL, *ftpl = NULL, *facc = NULL;
    bool use_float = w <= TM_FLOAT_MAX_W;
    if (use_float) {
        fimg = malloc((size_t)W * H * sizeof *fimg);
        ftpl = malloc(n * sizeof *ftpl);
        facc = malloc((size_t)rw * sizeof *facc);
        if (!fimg || !ftpl || !facc) {
            free(s1), free(s2), free(acc), free(racc), free(fimg), free(ftpl), free(facc);
            return ERR_NOMEM;
        }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                fimg[(size_t)y * W + x] = vis_px(img, x, y)[0];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                ftpl[(size_t)y * w + x] = vis_px(tpl, x, y)[0];
    }
    for (int y = 0; y < rh; y++) {
        memset(acc, 0, (size_t)rw * sizeof *acc);
        for (int ty = 0; ty < h; ty++) {
            if (use_float) {
                memset(facc, 0, (size_t)rw * sizeof *facc);
                tm_corr_row(facc, fimg + (size_t)(y + ty) * W, ftpl + (size_t)ty * w, w, rw);
                for (int x = 0; x < rw; x++)
                    acc[x] += (int64_t)facc[x];
                continue;
            }
            const uint8_t *ir = vis_px(img, 0, y + ty), *tr = vis_px(tpl, 0, ty);
            memset(racc, 0, (size_t)rw * sizeof *racc);
            /* a row of the template: at most w·255² < 2^31 for w < 33025 */
            for (int tx = 0; tx < w; tx++) {
                int32_t t = tr[tx];
                const uint8_t *ip = ir + tx;
                for (int x = 0; x < rw; x++)
                    racc[x] += t * (int32_t)ip[x];
            }
            for (int x = 0; x < rw; x++)
                acc[x] += racc[x];
        }
        for (int x = 0; x < rw; x++) {
            size_t a = (size_t)y * iw + x, b = a + w, c2 = a + (size_t)h * iw, d = c2 + w;
            double ws = (double)(s1[d] - s1[b] - s1[c2] + s1[a]);
            double ws2 = (double)(s2[d] - s2[b] - s2[c2] + s2[a]);
            double num = (double)acc[x] - ws * (double)tsum / (double)n;
            double var = ws2 - ws * ws / (double)n;
            double t = sqrt(var > 0 ? var : 0) * tnorm;
            if (fabs(num) < t)
                num /= t;
            else if (fabs(num) < t * 1.125)
                num = num > 0 ? 1 : -1;
            else
                num = 0;
            res[(size_t)y * rw + x] = (float)num;
        }
    }
    free(s1), free(s2), free(acc), free(racc), free(fimg), free(ftpl), free(facc);
    return 0;
}

/* sv box_iou of two integer boxes (no +1). */
static double ibox_iou(const int *a, const int *b)
{
    double ix = MIN(a[2], b[2]) - MAX(a[0], b[0]), iy = MIN(a[3], b[3]) - MAX(a[1], b[1]);
    double aa = (double)(a[2] - a[0]) * (a[3] - a[1]), ab = (double)(b[2] - b[0]) * (b[3] - b[1]);
    if (ix <= 0 || iy <= 0)
        return 0;
    return ix * iy / (aa + ab - ix * iy);
}

static int tm_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const struct wf_image *tp = wf_arg_image(c, i, "template");
        double thr = wf_arg_double(c, i, "matching_threshold", 0.8);
        bool nms = wf_arg_bool(c, i, "apply_nms", true);
        double nms_thr = wf_arg_double(c, i, "nms_threshold", 0.5);
        if (!im || !tp)
            continue;
        int W = im->img->w, H = im->img->h, w = tp->img->w, h = tp->img->h;
        if (w < 1 || h < 1 || W < 1 || H < 1)
            return wf_call_fail(c, "empty image or template");
        if (w > W || h > H)
            return wf_call_fail(c, "template (%dx%d) larger than the image (%dx%d)", w, h, W, H);
        int rw = W - w + 1, rh = H - h + 1;
        if ((double)W * H > TM_MAX_PIXELS)
            return wf_call_fail(c, "image of %dx%d pixels is too large for template matching "
                                   "(at most %u pixels)", W, H, TM_MAX_PIXELS);
        if ((double)rw * rh * w * h > TM_MAX_WORK)
            return wf_call_fail(c, "template %dx%d on a %dx%d image is too much work (over %.0e "
                                   "multiply-adds); use a smaller template or image",
                                w, h, W, H, TM_MAX_WORK);
        struct vis_image *g = gray_cv2(im->img), *t = gray_cv2(tp->img);
        float *res = malloc((size_t)rw * rh * sizeof *res);
        int rc = g && t && res ? ccoeff_normed(g, t, res) : ERR_NOMEM;
        vis_image_free(g);
        vis_image_free(t);
        if (rc < 0) {
            free(res);
            return wf_call_fail(c, "out of memory");
        }
        /* np.where(res >= threshold): row-major (y, x) */
        size_t nm = 0, cap = 0;
        int *boxes = NULL;
        float fthr = (float)thr;
        for (int y = 0; y < rh && rc == 0; y++)
            for (int x = 0; x < rw; x++)
                if (res[(size_t)y * rw + x] >= fthr) {
                    if (nm == TM_MAX_MATCHES) {
                        rc = ERR_LIMIT;
                        break;
                    }
                    if (nm == cap) {
                        cap = cap ? cap * 2 : 64;
                        boxes = xrealloc(boxes, cap * 4 * sizeof *boxes);
                    }
                    int *b = boxes + 4 * nm++;
                    b[0] = x, b[1] = y, b[2] = x + w, b[3] = y + h;
                }
        free(res);
        if (rc < 0) {
            free(boxes);
            return wf_call_fail(c, "more than %d positions match; raise matching_threshold",
                                TM_MAX_MATCHES);
        }
        bool *keep = xcalloc(nm + 1, sizeof *keep);
        for (size_t k = 0; k < nm; k++)
            keep[k] = true;
        if (nms) {
            /* sv with_nms: equal confidences, visited in the reverse of the
             * row-major order (numpy's flipped argsort of equal keys) */
            for (size_t a = nm; a-- > 0;) {
                if (!keep[a])
                    continue;
                for (size_t b = 0; b < nm; b++)
                    if (b != a && keep[b] && ibox_iou(boxes + 4 * a, boxes + 4 * b) > nms_thr)
                        keep[b] = false;
            }
        }
        struct wf_dets *ds = wf_dets_new();
        for (size_t k = 0; k < nm; k++) {
            if (!keep[k])
                continue;
            struct wf_det *d = wf_dets_push_new(ds);
            int *b = boxes + 4 * k;
            d->x1 = (float)b[0], d->y1 = (float)b[1], d->x2 = (float)b[2], d->y2 = (float)b[3];
            d->confidence = 1.0f;
            d->class_id = 0;
            wf_det_set_str(&d->class_name, "template_match");
            wf_det_set_str(&d->prediction_type, "object-detection");
            wf_det_attach_image(d, im);
        }
        free(keep);
        free(boxes);
        wf_out_json(c, i, "number_of_matches", json_integer((json_int_t)ds->n));
        wf_out_dets(c, i, "predictions", ds);
    }
    return 0;
}

/* ---- dominant_color ------------------------------------------------------------ */

#define DC_MAX_PIXELS (4u << 20) /* pixels clustered after the downsampling */

static uint64_t dc_rand(uint64_t *s)
{
    /* xorshift64*: a fixed seed, so a run is reproducible (Roboflow draws
     * from numpy's unseeded global generator) */
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* k-means as Roboflow's find_dominant_color: float32 pixels, k distinct
 * random pixels as centroids, nearest centroid by float32 Euclidean
 * distance (first on ties), means (an empty cluster takes a random pixel),
 * stop when np.allclose(old, new); the centroid of the most common label
 * (lowest label on ties).  px: n x 3 BGR floats.  Writes B, G, R. */
static void dc_kmeans(const float *px, size_t n, int k, int iters, float out[3])
{
    float cen[10][3], nc[10][3];
    double sum[10][3];
    size_t cnt[10];
    uint32_t *lab = xcalloc(n, sizeof *lab);
    size_t *pick = xcalloc(n, sizeof *pick);
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < n; i++)
        pick[i] = i;
    for (int c = 0; c < k; c++) { /* choice(n, k, replace=False) */
        size_t j = c + dc_rand(&seed) % (n - c), t = pick[c];
        pick[c] = pick[j], pick[j] = t;
        memcpy(cen[c], px + 3 * pick[c], sizeof cen[c]);
    }
    free(pick);
    for (int it = 0; it < iters; it++) {
        memset(sum, 0, sizeof sum);
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++) {
            const float *p = px + 3 * i;
            float best = INFINITY;
            uint32_t bl = 0;
            for (int c = 0; c < k; c++) {
                float d0 = p[0] - cen[c][0], d1 = p[1] - cen[c][1], d2 = p[2] - cen[c][2];
                float d = sqrtf(d0 * d0 + d1 * d1 + d2 * d2);
                if (d < best)
                    best = d, bl = (uint32_t)c;
            }
            lab[i] = bl;
            cnt[bl]++;
            sum[bl][0] += p[0], sum[bl][1] += p[1], sum[bl][2] += p[2];
        }
        for (int c = 0; c < k; c++) {
            if (cnt[c])
                for (int ch = 0; ch < 3; ch++)
                    nc[c][ch] = (float)(sum[c][ch] / (double)cnt[c]);
            else
                memcpy(nc[c], px + 3 * (dc_rand(&seed) % n), sizeof nc[c]);
        }
        bool close = true;
        for (int c = 0; c < k && close; c++)
            for (int ch = 0; ch < 3; ch++)
                if (!(fabsf(cen[c][ch] - nc[c][ch]) <= 1e-8 + 1e-5 * fabsf(nc[c][ch])))
                    close = false;
        if (close)
            break;
        memcpy(cen, nc, sizeof cen);
    }
    size_t counts[10] = {0};
    for (size_t i = 0; i < n; i++)
        counts[lab[i]]++;
    int top = 0;
    for (int c = 1; c < k; c++)
        if (counts[c] > counts[top])
            top = c;
    memcpy(out, cen[top], sizeof cen[top]);
    free(lab);
}

static int dc_check(const json_t *step, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int max;
    } lim[] = {{"color_clusters", 10}, {"max_iterations", 500}, {"target_size", 250}};
    for (size_t i = 0; i < ARRAY_LEN(lim); i++) {
        const json_t *v = json_object_get(step, lim[i].name);
        if (json_is_number(v) && !(json_number_value(v) > 0 && json_number_value(v) <= lim[i].max)) {
            wf__errf(err, errlen, "field '%s': must be in (0, %d], got %g", lim[i].name,
                     lim[i].max, json_number_value(v));
            return ERR_INVALID;
        }
    }
    return 0;
}

static int dc_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        int64_t k = wf_arg_int(c, i, "color_clusters", 4);
        int64_t iters = wf_arg_int(c, i, "max_iterations", 100);
        int64_t target = wf_arg_int(c, i, "target_size", 100);
        if (!im)
            continue;
        if (k < 1 || k > 10 || iters < 1 || iters > 500 || target < 1 || target > 250)
            return wf_call_fail(c, "color_clusters must be in 1..10, max_iterations in 1..500, "
                                   "target_size in 1..250");
        const struct vis_image *src = im->img;
        int w = src->w, h = src->h, ch = vis_channels(src);
        int scale = (int)MAX(1, MIN(w, h) / target);
        size_t sw = (size_t)(w + scale - 1) / scale, sh = (size_t)(h + scale - 1) / scale;
        size_t n = sw * sh;
        if (n < (size_t)k)
            return wf_call_fail(c, "color_clusters (%lld) larger than the %zu pixels sampled",
                                (long long)k, n);
        if (n > DC_MAX_PIXELS)
            return wf_call_fail(c, "%zu pixels to cluster after downsampling (at most %u)", n,
                                DC_MAX_PIXELS);
        float *px = malloc(n * 3 * sizeof *px), bgr[3];
        if (!px)
            return wf_call_fail(c, "out of memory");
        size_t m = 0;
        for (int y = 0; y < h; y += scale)
            for (int x = 0; x < w; x += scale, m++) {
                const uint8_t *p = vis_px(src, x, y);
                for (int q = 0; q < 3; q++)
                    px[3 * m + q] = p[ch == 1 ? 0 : q];
            }
        dc_kmeans(px, n, (int)k, (int)iters, bgr);
        free(px);
        /* tuple(int(clip(round(x), 0, 255)) for x in reversed(bgr)): half to even */
        json_t *rgb = json_array();
        for (int q = 2; q >= 0; q--)
            json_array_append_new(rgb, json_integer((json_int_t)MIN(255.0, MAX(0.0, nearbyint(bgr[q])))));
        wf_out_json(c, i, "rgb_color", rgb);
    }
    return 0;
}

/* ---- contours_detection ---------------------------------------------------------- */

#define CT_MAX_POINTS (1u << 20) /* contour points output per image (JSON) */

/* Chain directions as OpenCV numbers them: 0 E, 1 NE, 2 N, ... 7 SE
 * (counter-clockwise on screen, y down). */
static const int CT_DX[8] = {1, 1, 0, -1, -1, -1, 0, 1};
static const int CT_DY[8] = {0, -1, -1, -1, 0, 1, 1, 1};

struct ct_border {
    bool hole;
    int parent;
};

static void ct_push(struct cv_contours *o, int x, int y)
{
    if (o->npts == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 256;
        o->pts = xrealloc(o->pts, o->cap * 2 * sizeof *o->pts);
    }
    o->pts[2 * o->npts] = x, o->pts[2 * o->npts + 1] = y;
    o->npts++;
}

/* Follow the border starting at (x0, y0) of the padded label map f
 * (stride fw), Suzuki & Abe's step 3 as OpenCV's icvFetchContour does it:
 * marks the border's pixels nbd (or -nbd where the right neighbour is 0)
 * and, when keep, stores the CHAIN_APPROX_SIMPLE points (image
 * coordinates: padded minus 1). */
static void ct_trace(int32_t *f, int fw, int x0, int y0, bool hole, int32_t nbd, bool keep,
                     struct cv_contours *o)
{
    int32_t *i0 = f + (size_t)y0 * fw + x0;
    ptrdiff_t delta[8];
    for (int k = 0; k < 8; k++)
        delta[k] = (ptrdiff_t)CT_DY[k] * fw + CT_DX[k];
    int s_end = hole ? 0 : 4, s = s_end;
    int px = x0 - 1, py = y0 - 1;
    do {
        s = (s - 1) & 7;
    } while (i0[delta[s]] == 0 && s != s_end);
    if (s == s_end) { /* a single pixel */
        *i0 = -nbd;
        if (keep)
            ct_push(o, px, py);
        return;
    }
    int32_t *i1 = i0 + delta[s], *i3 = i0;
    int prev_s = s ^ 4;
    for (;;) {
        int32_t *i4;
        s_end = s;
        for (;;) {
            s = (s + 1) & 7;
            i4 = i3 + delta[s];
            if (*i4 != 0)
                break;
        }
        /* the right neighbour was examined and is 0: -nbd */
        if ((unsigned)(s - 1) < (unsigned)s_end)
            *i3 = -nbd;
        else if (*i3 == 1)
            *i3 = nbd;
        if (keep && s != prev_s) {
            ct_push(o, px, py);
            prev_s = s;
        }
        px += CT_DX[s], py += CT_DY[s];
        if (i4 == i0 && i3 == i1)
            break;
        i3 = i4;
        s = (s + 4) & 7;
    }
}

/* cv2.findContours(gray != 0, RETR_EXTERNAL, CHAIN_APPROX_SIMPLE): the
 * outer borders whose parent is the frame, in OpenCV's order (the reverse
 * of their discovery in the raster scan).  Declared in cv_int.h. */
int cv__find_contours(const struct vis_image *gray, struct cv_contours *o)
{
    int w = gray->w, h = gray->h, fw = w + 2;
    int32_t *f = calloc((size_t)fw * (size_t)(h + 2), sizeof *f);
    struct ct_border *b = NULL;
    size_t nb = 2, bcap = 64;
    if (!f)
        return ERR_NOMEM;
    for (int y = 0; y < h; y++) {
        const uint8_t *r = vis_px(gray, 0, y);
        for (int x = 0; x < w; x++)
            f[(size_t)(y + 1) * fw + x + 1] = r[x] != 0;
    }
    b = xcalloc(bcap, sizeof *b);
    b[1].hole = true, b[1].parent = 0; /* the frame */
    for (int y = 1; y <= h; y++) {
        int32_t lnbd = 1;
        for (int x = 1; x <= w; x++) {
            int32_t *p = f + (size_t)y * fw + x;
            bool outer = p[0] == 1 && p[-1] == 0, hole = !outer && p[0] >= 1 && p[1] == 0;
            if (outer || hole) {
                if (nb >= INT32_MAX - 1) {
                    free(f), free(b);
                    return ERR_LIMIT;
                }
                int32_t nbd = (int32_t)nb++;
                if (nb > bcap) {
                    bcap *= 2;
                    b = xrealloc(b, bcap * sizeof *b);
                }
                if (hole && p[0] > 1)
                    lnbd = p[0];
                const struct ct_border *lb = &b[lnbd];
                b[nbd].hole = hole;
                b[nbd].parent = outer ? (lb->hole ? lnbd : lb->parent) : (lb->hole ? lb->parent : lnbd);
                bool keep = outer && b[nbd].parent == 1;
                if (keep) {
                    if (o->n + 1 >= o->scap) {
                        o->scap = o->scap ? o->scap * 2 : 16;
                        o->start = xrealloc(o->start, o->scap * sizeof *o->start);
                    }
                    o->start[o->n++] = o->npts;
                }
                ct_trace(f, fw, x, y, hole, nbd, keep, o);
                if (o->npts > CT_MAX_POINTS) {
                    free(f), free(b);
                    return ERR_LIMIT;
                }
            }
            if (p[0] != 1 && p[0] != 0)
                lnbd = p[0] < 0 ? -p[0] : p[0];
        }
    }
    if (o->start) {
        if (o->n + 1 > o->scap)
            o->start = xrealloc(o->start, (o->n + 1) * sizeof *o->start);
        o->start[o->n] = o->npts;
    }
    free(f);
    free(b);
    return 0;
}

static int contours_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        int64_t thick = wf_arg_int(c, i, "line_thickness", 3);
        struct cv_contours o = {0};
        if (!im)
            continue;
        if (thick < -1 || thick > 1000)
            return wf_call_fail(c, "line_thickness must be in -1..1000, got %lld", (long long)thick);
        struct vis_image *gray = gray_cv2(im->img), *out = NULL;
        int rc = gray ? cv__find_contours(gray, &o) : ERR_NOMEM;
        if (rc == 0)
            rc = vis_convert(gray, VIS_BGR, &out);
        vis_image_free(gray);
        if (rc < 0) {
            free(o.pts), free(o.start);
            return wf_call_fail(c, rc == ERR_LIMIT ? "too many contour points (more than %u)"
                                                   : "out of memory (%u)",
                                CT_MAX_POINTS);
        }
        json_t *contours = json_array(), *hier = json_array();
        struct vis_color col = VIS_RGB(255, 0, 255);
        for (size_t k = o.n; k-- > 0;) {
            size_t a = o.start[k], e = o.start[k + 1], out_k = o.n - 1 - k;
            json_t *ct = json_array();
            for (size_t q = a; q < e; q++)
                json_array_append_new(ct, json_pack("[[i,i]]", o.pts[2 * q], o.pts[2 * q + 1]));
            json_array_append_new(contours, ct);
            json_array_append_new(hier, json_pack("[i,i,i,i]", out_k + 1 < o.n ? (int)out_k + 1 : -1,
                                                  (int)out_k - 1, -1, -1));
            /* cv2.drawContours: the closed polyline (thickness >= 1) */
            if (thick >= 1)
                for (size_t q = a; q < e; q++) {
                    size_t r = q + 1 < e ? q + 1 : a;
                    vis_draw_line(out, o.pts[2 * q], o.pts[2 * q + 1], o.pts[2 * r],
                                  o.pts[2 * r + 1], col, (int)thick);
                }
        }
        wf_out_image(c, i, "warped_image", im, out);
        wf_out_json(c, i, "contours", contours);
        wf_out_json(c, i, "hierarchy", o.n ? json_pack("[o]", hier) : (json_decref(hier), json_null()));
        wf_out_json(c, i, "number_contours", json_integer((json_int_t)o.n));
        free(o.pts), free(o.start);
    }
    return 0;
}

/* ---- size_measurement ------------------------------------------------------------ */

#define SM_MAX_HULL 100000

static double sm_cross(const double *o, const double *a, const double *b)
{
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
}

static int sm_cmp(const void *a, const void *b)
{
    const double *p = a, *q = b;
    return p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : p[1] < q[1] ? -1 : p[1] > q[1];
}

/* |cv2.contourArea| of a closed polygon (shoelace). */
static double sm_area(const double *pts, size_t n)
{
    double a = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = (i + 1) % n;
        a += pts[2 * i] * pts[2 * j + 1] - pts[2 * j] * pts[2 * i + 1];
    }
    return fabs(a) / 2;
}

/* Roboflow's compute_aligned_dimensions: the sides of the minimum-area
 * rectangle (cv2.minAreaRect: rotating calipers over the convex hull), the
 * side closer to horizontal as the width.  pts is modified (sorted). */
static int sm_aligned_dims(double *pts, size_t n, double *w, double *h)
{
    if (n > SM_MAX_HULL)
        return ERR_LIMIT;
    qsort(pts, n, 2 * sizeof *pts, sm_cmp);
    double *hull = xcalloc(2 * (2 * n + 1), sizeof *hull);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) { /* Andrew's monotone chain */
        while (k >= 2 && sm_cross(hull + 2 * (k - 2), hull + 2 * (k - 1), pts + 2 * i) <= 0)
            k--;
        memcpy(hull + 2 * k++, pts + 2 * i, 2 * sizeof *pts);
    }
    for (size_t i = n - 1, t = k + 1; i-- > 0;) {
        while (k >= t && sm_cross(hull + 2 * (k - 2), hull + 2 * (k - 1), pts + 2 * i) <= 0)
            k--;
        memcpy(hull + 2 * k++, pts + 2 * i, 2 * sizeof *pts);
    }
    size_t m = k > 1 ? k - 1 : k;
    double best = INFINITY, bw = 0, bh = 0, bang = 0;
    for (size_t e = 0; e < m; e++) {
        const double *a = hull + 2 * e, *b = hull + 2 * ((e + 1) % m);
        double ux = b[0] - a[0], uy = b[1] - a[1], len = hypot(ux, uy);
        if (len == 0)
            continue;
        ux /= len, uy /= len;
        double lo = INFINITY, hi = -INFINITY, plo = INFINITY, phi = -INFINITY;
        for (size_t q = 0; q < m; q++) {
            double px = hull[2 * q] - a[0], py = hull[2 * q + 1] - a[1];
            double pu = px * ux + py * uy, pv = -px * uy + py * ux;
            lo = MIN(lo, pu), hi = MAX(hi, pu), plo = MIN(plo, pv), phi = MAX(phi, pv);
        }
        double area = (hi - lo) * (phi - plo);
        if (area < best - 1e-9)
            best = area, bw = hi - lo, bh = phi - plo, bang = atan2(uy, ux) * 180 / M_PI;
    }
    free(hull);
    /* horizontal_score: min(|a mod 180|, 180 - |a mod 180|) */
    double a1 = fabs(fmod(bang, 180)), a2 = fabs(fmod(bang + 90, 180));
    double s1 = MIN(a1, 180 - a1), s2 = MIN(a2, 180 - a2);
    if (s1 < s2)
        *w = bw, *h = bh;
    else
        *w = bh, *h = bw;
    return 0;
}

/* get_detection_dimensions: the largest external contour of the mask, or
 * the box; 0, 0 when the mask has no area. */
static int sm_det_dims(const struct wf_det *d, double *w, double *h)
{
    *w = *h = 0;
    if (!d->has_mask) {
        *w = (double)d->x2 - d->x1, *h = (double)d->y2 - d->y1;
        return 0;
    }
    struct vis_image *m = NULL;
    int ox, oy, rc = d->img_w > 0 && d->img_h > 0 ? viz__det_mask(d, d->img_w, d->img_h, &m, &ox, &oy) : 0;
    if (rc < 0 || !m)
        return rc;
    struct cv_contours o = {0};
    rc = cv__find_contours(m, &o);
    vis_image_free(m);
    if (rc == 0 && o.n) {
        /* max(contours, key=contourArea): the first largest in OpenCV's order */
        size_t bestk = 0;
        double besta = -1;
        double *pts = xcalloc(2 * o.npts + 2, sizeof *pts);
        for (size_t k = o.n; k-- > 0;) {
            size_t a = o.start[k], e = o.start[k + 1];
            for (size_t q = a; q < e; q++)
                pts[2 * (q - a)] = o.pts[2 * q], pts[2 * (q - a) + 1] = o.pts[2 * q + 1];
            double ar = sm_area(pts, e - a);
            if (ar > besta)
                besta = ar, bestk = k;
        }
        if (besta > 0) {
            size_t a = o.start[bestk], e = o.start[bestk + 1];
            for (size_t q = a; q < e; q++)
                pts[2 * (q - a)] = o.pts[2 * q], pts[2 * (q - a) + 1] = o.pts[2 * q + 1];
            rc = sm_aligned_dims(pts, e - a, w, h);
        }
        free(pts);
    }
    free(o.pts), free(o.start);
    return rc;
}

static int sm_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *objs = wf_arg_dets(c, i, "object_predictions");
        const struct wf_dets *refd = wf_arg_dets(c, i, "reference_predictions");
        const json_t *refl = refd ? NULL : wf_arg_json(c, i, "reference_predictions");
        const json_t *dims = wf_arg_json(c, i, "reference_dimensions");
        double rw_act, rh_act, rw = 0, rh = 0;
        int rc = 0;
        if (!objs)
            continue;
        /* parse_reference_dimensions: "w,h" or [w, h] */
        if (json_is_string(dims)) {
            char extra;
            if (sscanf(json_string_value(dims), "%lf , %lf %c", &rw_act, &rh_act, &extra) != 2 ||
                !strchr(json_string_value(dims), ','))
                return wf_call_fail(c, "reference_dimensions must be a string in the format "
                                       "'width,height'");
        } else if (json_is_array(dims) && json_array_size(dims) == 2 &&
                   json_is_number(json_array_get(dims, 0)) && json_is_number(json_array_get(dims, 1))) {
            rw_act = json_number_value(json_array_get(dims, 0));
            rh_act = json_number_value(json_array_get(dims, 1));
        } else
            return wf_call_fail(c, "reference_dimensions must have two values (width, height)");
        if (refd) {
            if (refd->n == 0) {
                wf_out_json(c, i, "dimensions", json_null());
                continue;
            }
            size_t best = 0;
            for (size_t k = 1; k < refd->n; k++)
                if (refd->d[k].confidence > refd->d[best].confidence)
                    best = k;
            rc = sm_det_dims(&refd->d[best], &rw, &rh);
        } else if (json_is_array(refl)) {
            size_t n = json_array_size(refl);
            if (n < 2) {
                wf_out_json(c, i, "dimensions", json_null());
                continue;
            }
            if (n > SM_MAX_HULL)
                return wf_call_fail(c, "reference polygon has more than %d points", SM_MAX_HULL);
            double *pts = xcalloc(2 * n, sizeof *pts);
            for (size_t k = 0; k < n; k++) {
                const json_t *p = json_array_get(refl, k);
                if (!json_is_array(p) || json_array_size(p) != 2 ||
                    !json_is_number(json_array_get(p, 0)) || !json_is_number(json_array_get(p, 1))) {
                    free(pts);
                    return wf_call_fail(c, "reference_predictions: point #%zu is not [x, y]", k);
                }
                pts[2 * k] = json_number_value(json_array_get(p, 0));
                pts[2 * k + 1] = json_number_value(json_array_get(p, 1));
            }
            if (n >= 3 && sm_area(pts, n) > 0)
                rc = sm_aligned_dims(pts, n, &rw, &rh);
            free(pts);
        } else
            return wf_call_fail(c, "reference_predictions must be detections or a list of points");
        if (rc < 0)
            return wf_call_fail(c, "reference too large (%d)", rc);
        if (!(rw != 0) || !(rh != 0)) {
            wf_out_json(c, i, "dimensions", json_null());
            continue;
        }
        double ws = rw_act / rw, hs = rh_act / rh;
        json_t *out = json_array();
        for (size_t k = 0; k < objs->n; k++) {
            double ow, oh;
            if ((rc = sm_det_dims(&objs->d[k], &ow, &oh)) < 0) {
                json_decref(out);
                return wf_call_fail(c, "detection #%zu: mask too large", k);
            }
            if (ow > 0 && oh > 0) {
                double aw = ow * ws, ah = oh * hs;
                json_array_append_new(out, json_pack("{s:f,s:f,s:f,s:f}", "width", aw, "height", ah,
                                                     "longer", MAX(aw, ah), "shorter", MIN(aw, ah)));
            } else
                json_array_append_new(out, json_null());
        }
        wf_out_json(c, i, "dimensions", out);
    }
    return 0;
}

/* ---- detections_difference --------------------------------------------------------- */

#define DD_MAX_PAIRS (1u << 20) /* reference x candidate pairs per image */

struct dd_pair {
    double cost;
    size_t flat; /* i * n_cand + j: numpy's argmin picks the first of equal costs */
};

static int dd_cmp(const void *a, const void *b)
{
    const struct dd_pair *p = a, *q = b;
    if (p->cost != q->cost)
        return p->cost < q->cost ? -1 : 1;
    return p->flat < q->flat ? -1 : p->flat > q->flat;
}

/* Roboflow's compute_pairwise_costs for one pair. */
static double dd_cost(const struct wf_det *r, const struct wf_det *c, double sw, double pen,
                      bool strict)
{
    double ix = MIN(r->x2, c->x2) - MAX(r->x1, c->x1), iy = MIN(r->y2, c->y2) - MAX(r->y1, c->y1);
    double inter = MAX(0.0, ix) * MAX(0.0, iy);
    double ar = ((double)r->x2 - r->x1) * ((double)r->y2 - r->y1);
    double ac = ((double)c->x2 - c->x1) * ((double)c->y2 - c->y1);
    double uni = ar + ac - inter, iou = uni > 0 ? inter / uni : 0, spatial;
    if (iou <= 0) {
        double dx = ((double)r->x1 + r->x2) / 2 - ((double)c->x1 + c->x2) / 2;
        double dy = ((double)r->y1 + r->y2) / 2 - ((double)c->y1 + c->y2) / 2;
        double diag = hypot(MAX(r->x2, c->x2) - MIN(r->x1, c->x1), MAX(r->y2, c->y2) - MIN(r->y1, c->y1));
        spatial = 1.0 + (diag > 0 ? hypot(dx, dy) / diag : 0);
    } else
        spatial = 1.0 - iou;
    double cost = sw * spatial;
    bool mismatch = strcmp(r->class_name ? r->class_name : "", c->class_name ? c->class_name : "");
    if (mismatch)
        cost = strict ? INFINITY : cost + pen;
    return cost;
}

static struct wf_dets *dd_subset(const struct wf_dets *ds, const bool *take, bool want)
{
    struct wf_dets *o = wf_dets_new();
    for (size_t k = 0; k < ds->n; k++)
        if (take[k] == want)
            wf_dets_push_copy(o, &ds->d[k]);
    return o;
}

static int dd_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *ref = wf_arg_dets(c, i, "reference_predictions");
        const struct wf_dets *cand = wf_arg_dets(c, i, "candidate_predictions");
        double sw = wf_arg_double(c, i, "spatial_weight", 0.4);
        double pen = wf_arg_double(c, i, "class_mismatch_penalty", 0.15);
        double reject = wf_arg_double(c, i, "reject_cost", 0.75);
        bool strict = wf_arg_bool(c, i, "class_strict", false);
        int64_t min_removed = wf_arg_int(c, i, "min_removed_to_verify", 1);
        if (!ref || !cand)
            continue;
        size_t nr = ref->n, nc = cand->n;
        if (nr && nc && nr > DD_MAX_PAIRS / nc)
            return wf_call_fail(c, "%zu x %zu detections to compare (at most %u pairs)", nr, nc,
                                DD_MAX_PAIRS);
        bool *rm = xcalloc(nr + 1, sizeof *rm), *cm = xcalloc(nc + 1, sizeof *cm);
        if (nr && nc) {
            struct dd_pair *pairs = xcalloc(nr * nc, sizeof *pairs);
            for (size_t a = 0; a < nr; a++)
                for (size_t b = 0; b < nc; b++)
                    pairs[a * nc + b] = (struct dd_pair){
                        dd_cost(&ref->d[a], &cand->d[b], sw, pen, strict), a * nc + b};
            qsort(pairs, nr * nc, sizeof *pairs, dd_cmp);
            /* greedy_match: the cheapest remaining pair until it exceeds reject_cost */
            size_t left = MIN(nr, nc);
            for (size_t k = 0; k < nr * nc && left; k++) {
                size_t a = pairs[k].flat / nc, b = pairs[k].flat % nc;
                if (rm[a] || cm[b])
                    continue;
                if (!isfinite(pairs[k].cost) || pairs[k].cost > reject)
                    break;
                rm[a] = cm[b] = true;
                left--;
            }
            free(pairs);
        }
        size_t removed = 0, fresh = 0;
        for (size_t a = 0; a < nr; a++)
            removed += !rm[a];
        for (size_t b = 0; b < nc; b++)
            fresh += !cm[b];
        wf_out_dets(c, i, "removed_detections", dd_subset(ref, rm, false));
        wf_out_dets(c, i, "persisted_detections", dd_subset(cand, cm, true));
        wf_out_dets(c, i, "new_detections", dd_subset(cand, cm, false));
        wf_out_json(c, i, "removed_count", json_integer((json_int_t)removed));
        wf_out_json(c, i, "new_count", json_integer((json_int_t)fresh));
        wf_out_json(c, i, "verified", json_boolean(nr > 0 && (int64_t)removed >= min_removed));
        free(rm);
        free(cm);
    }
    return 0;
}

/* ---- cosine_similarity ---------------------------------------------------------- */

static int cos_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const json_t *a = wf_arg_json(c, i, "embedding_1"), *b = wf_arg_json(c, i, "embedding_2");
        if (!a || !b)
            continue;
        if (!json_is_array(a) || !json_is_array(b))
            return wf_call_fail(c, "embeddings must be lists of numbers");
        if (json_array_size(a) != json_array_size(b))
            return wf_call_fail(c, "roboflow_core/cosine_similarity@v1 block feed with different "
                                   "shape of embeddings. `embedding_1`: (N, %zu), `embedding_2`: (N, %zu)",
                                json_array_size(a), json_array_size(b));
        double dot = 0, na = 0, nb = 0;
        for (size_t k = 0; k < json_array_size(a); k++) {
            const json_t *x = json_array_get(a, k), *y = json_array_get(b, k);
            if (!json_is_number(x) || !json_is_number(y))
                return wf_call_fail(c, "embedding item #%zu is not a number", k);
            double u = json_number_value(x), v = json_number_value(y);
            dot += u * v, na += u * u, nb += v * v;
        }
        /* np.dot(a, b) / sqrt(vdot(a, a) * vdot(b, b)): a zero vector gives
         * NaN there, None here */
        double sim = dot / sqrt(na * nb);
        wf_out_json(c, i, "similarity", isfinite(sim) ? json_real(sim) : json_null());
    }
    return 0;
}

/* ---- manifests (spec/blocks.json) ---------------------------------------- */

static const struct wf_field mask_area_fields[] = {
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"pixels_per_unit", NULL, WF_FT_FLOAT, "1.0", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output mask_area_outs[] = {{"predictions", WF_K_OD | WF_K_IS}};
TYPES(mask_area, "roboflow_core/mask_area_measurement@v1");
BLOCK(mask_area, mask_area_fields, mask_area_outs, mask_area_run);

static const char *const AXES[] = {"horizontal", "vertical", NULL};
static const char *const CALIBRATIONS[] = {"reference object", "pixel to centimeter", NULL};
static const struct wf_field distance_fields[] = {
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"object_1_class_name", NULL, WF_FT_STRING, NULL, 0, WF_F_NO_SELECTOR, NULL},
    {"object_2_class_name", NULL, WF_FT_STRING, NULL, 0, WF_F_NO_SELECTOR, NULL},
    {"reference_axis", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, AXES},
    {"calibration_method", NULL, WF_FT_ENUM, NULL, 0, WF_F_NO_SELECTOR, CALIBRATIONS},
    {"reference_object_class_name", NULL, WF_FT_STRING, "\"reference-object\"", WF_K_STRING, 0,
     NULL},
    {"reference_width", NULL, WF_FT_FLOAT, "2.5", WF_K_NUMBER, 0, NULL},
    {"reference_height", NULL, WF_FT_FLOAT, "2.5", WF_K_NUMBER, 0, NULL},
    {"pixel_ratio", NULL, WF_FT_FLOAT, "100", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output distance_outs[] = {{"distance_cm", WF_K_NUMBER},
                                                 {"distance_pixel", WF_K_NUMBER}};
TYPES(distance, "roboflow_core/distance_measurement@v1");
BLOCK(distance, distance_fields, distance_outs, distance_run);

static const struct wf_field nn_fields[] = {
    {"query_predictions", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"target_predictions", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"query_point", NULL, WF_FT_ENUM, "\"CENTER\"", WF_K_STRING, 0, ANCHORS},
    {"target_point", NULL, WF_FT_ENUM, "\"CENTER\"", WF_K_STRING, 0, ANCHORS},
    {"query_keypoint_name", NULL, WF_FT_STRING, "null", WF_K_STRING, WF_F_NULLABLE, NULL},
    {"target_keypoint_name", NULL, WF_FT_STRING, "null", WF_K_STRING, WF_F_NULLABLE, NULL},
    {"max_distance", NULL, WF_FT_INT, "null", WF_K_INT, WF_F_NULLABLE, NULL},
};
static const struct wf_output nn_outs[] = {{"query_predictions", WF_K_DETS},
                                           {"matched_query_detections", WF_K_DETS},
                                           {"matched_target_detections", WF_K_DETS}};
TYPES(nn, "roboflow_core/detections_nearest_neighbor@v1");
BLOCK(nn, nn_fields, nn_outs, nn_run);

static const struct wf_field combine_fields[] = {
    {"prediction_one", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"prediction_two", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
};
static const struct wf_output combine_outs[] = {{"predictions", WF_K_OD | WF_K_IS}};
TYPES(combine, "roboflow_core/detections_combine@v1");
BLOCK(combine, combine_fields, combine_outs, combine_run);

static const struct wf_field focus1_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
};
static const struct wf_output focus1_outs[] = {{"warped_image", WF_K_IMAGE},
                                               {"focus_measure", WF_K_FLOAT}};
TYPES(focus1, "roboflow_core/camera_focus@v1");
BLOCK(focus1, focus1_fields, focus1_outs, focus1_run);

static const struct wf_field tm_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"template", "templates", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"matching_threshold", NULL, WF_FT_FLOAT, "0.8", WF_K_NUMBER, 0, NULL},
    {"apply_nms", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},
    {"nms_threshold", NULL, WF_FT_FLOAT01, "0.5", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output tm_outs[] = {{"predictions", WF_K_OD}, {"number_of_matches", WF_K_INT}};
TYPES(tm, "roboflow_core/template_matching@v1");
BLOCK(tm, tm_fields, tm_outs, tm_run);

static const struct wf_field dc_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"color_clusters", NULL, WF_FT_INT, "4", WF_K_INT, 0, NULL},
    {"max_iterations", NULL, WF_FT_INT, "100", WF_K_INT, 0, NULL},
    {"target_size", NULL, WF_FT_INT, "100", WF_K_INT, 0, NULL},
};
static const struct wf_output dc_outs[] = {{"rgb_color", WF_K_COLOR}};
static const char *const dc_types[] = {"roboflow_core/dominant_color@v1", NULL};
static const struct wf_block dc = {dc_types, dc_fields, ARRAY_LEN(dc_fields), dc_outs,
                                   ARRAY_LEN(dc_outs), 0, 0, NULL, dc_run, dc_check};

static const struct wf_field contours_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"line_thickness", NULL, WF_FT_INT, "3", WF_K_INT, 0, NULL},
};
static const struct wf_output contours_outs[] = {{"warped_image", WF_K_IMAGE},
                                                 {"contours", 0},
                                                 {"hierarchy", 0},
                                                 {"number_contours", WF_K_INT}};
TYPES(contours, "roboflow_core/contours_detection@v1");
BLOCK(contours, contours_fields, contours_outs, contours_run);

static const struct wf_field sm_fields[] = {
    {"object_predictions", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"reference_predictions", NULL, WF_FT_ANY, NULL, WF_K_OD | WF_K_IS | WF_K_LIST, 0, NULL},
    {"reference_dimensions", NULL, WF_FT_ANY, NULL, WF_K_LIST | WF_K_STRING, 0, NULL},
};
static const struct wf_output sm_outs[] = {{"dimensions", WF_K_LIST}};
TYPES(sm, "roboflow_core/size_measurement@v1");
BLOCK(sm, sm_fields, sm_outs, sm_run);

static const struct wf_field dd_fields[] = {
    {"reference_predictions", NULL, WF_FT_DETS, NULL, WF_K_OD, WF_F_SELECTOR_ONLY, NULL},
    {"candidate_predictions", NULL, WF_FT_DETS, NULL, WF_K_OD, WF_F_SELECTOR_ONLY, NULL},
    {"spatial_weight", NULL, WF_FT_FLOAT01, "0.4", WF_K_NUMBER, 0, NULL},
    {"class_mismatch_penalty", NULL, WF_FT_FLOAT, "0.15", WF_K_NUMBER, 0, NULL},
    {"reject_cost", NULL, WF_FT_FLOAT, "0.75", WF_K_NUMBER, 0, NULL},
    {"class_strict", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"min_removed_to_verify", NULL, WF_FT_INT, "1", WF_K_INT, 0, NULL},
};
static const struct wf_output dd_outs[] = {
    {"removed_detections", WF_K_OD}, {"persisted_detections", WF_K_OD}, {"new_detections", WF_K_OD},
    {"removed_count", WF_K_INT},     {"new_count", WF_K_INT},           {"verified", WF_K_BOOL}};
TYPES(dd, "roboflow_core/detections_difference@v1", "DetectionsDifference");
BLOCK(dd, dd_fields, dd_outs, dd_run);

static const struct wf_field cos_fields[] = {
    {"embedding_1", NULL, WF_FT_LIST, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"embedding_2", NULL, WF_FT_LIST, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
};
static const struct wf_output cos_outs[] = {{"similarity", WF_K_FLOAT}};
TYPES(cosine, "roboflow_core/cosine_similarity@v1");
BLOCK(cosine, cos_fields, cos_outs, cos_run);


const struct wf_block *const wf_blocks_measure[] = {&mask_area, &distance, &nn, &combine,
                                                    &focus1,    &tm,       &dc,
                                                    &contours,  &sm,       &dd,
                                                    &cosine,    NULL};
