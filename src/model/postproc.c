/*
 * postproc.c — raw network outputs -> detections / masks / keypoints /
 * class scores, following WORKFLOWS.md 4.3-4.5.
 *
 * Detection-style outputs are (N, C, A), channel-major: for anchor a the
 * values are out[c*A + a] with c = 0..3 the box (cx, cy, w, h in input
 * pixels), then nc class scores, then nm mask coefficients (segmentation)
 * or nk*(x, y, conf) keypoints (pose).  The best class score is the
 * confidence; candidates above the threshold are sorted by confidence
 * (ties: lower anchor first, so results are deterministic), capped at
 * max_candidates (IoU mode only, as in Roboflow), and go through NMS:
 *
 *   MODEL_NMS_IOU (default, the current Roboflow backend): conf > thr,
 *     greedy suppression by true IoU > iou_threshold, per class unless
 *     class-agnostic (torchvision batched_nms);
 *   MODEL_NMS_CLASSIC: conf >= thr, overlap = intersection / area of the
 *     lower-scored box with +1 px sides, suppressed when > threshold.
 *
 * Kept boxes map back to the original image (x - ox) / sx, are clipped,
 * rounded half-to-even (numpy/torch round) and shifted by the static crop.
 *
 * Masks: sigmoid(coefs . protos) is evaluated on the proto pixels under the
 * box, resampled bilinearly onto a grid between proto resolution (fast) and
 * input resolution (accurate; tradeoff interpolates), kept inside the box
 * and outside the letterbox padding, thresholded at 0.5; the polygon is the
 * outer boundary of the largest 8-connected component (Moore tracing,
 * collinear points dropped as cv2's CHAIN_APPROX_SIMPLE does).
 */
#include "model/model_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

/* ---- NMS ------------------------------------------------------------------ */

static __thread const struct model_box *tl_sort_boxes;

static int cmp_score_desc(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    float si = tl_sort_boxes[i].score, sj = tl_sort_boxes[j].score;
    if (si != sj)
        return si > sj ? -1 : 1;
    return i < j ? -1 : i > j;
}

static float iou_true(const struct model_box *a, const struct model_box *b)
{
    float iw = MIN(a->x2, b->x2) - MAX(a->x1, b->x1);
    float ih = MIN(a->y2, b->y2) - MAX(a->y1, b->y1);
    if (iw <= 0 || ih <= 0)
        return 0;
    float inter = iw * ih;
    float ua = (a->x2 - a->x1) * (a->y2 - a->y1) + (b->x2 - b->x1) * (b->y2 - b->y1) - inter;
    return ua > 0 ? inter / ua : 0;
}

/* Classic: intersection over the area of 'other', +1 pixel on sides. */
static float overlap_classic(const struct model_box *keep, const struct model_box *other)
{
    float iw = MIN(keep->x2, other->x2) - MAX(keep->x1, other->x1) + 1;
    float ih = MIN(keep->y2, other->y2) - MAX(keep->y1, other->y1) + 1;
    if (iw <= 0 || ih <= 0)
        return 0;
    float area = (other->x2 - other->x1 + 1) * (other->y2 - other->y1 + 1);
    return area > 0 ? iw * ih / area : 0;
}

size_t model_nms(const struct model_box *boxes, size_t n, enum model_nms_mode mode, float iou,
                 bool agnostic, size_t max_keep, size_t *keep)
{
    size_t *order = NULL, nk = 0;
    uint8_t *dead = NULL;
    if (n == 0 || max_keep == 0)
        return 0;
    order = xmalloc(n * sizeof(*order));
    dead = xcalloc(n, 1);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    tl_sort_boxes = boxes;
    qsort(order, n, sizeof(*order), cmp_score_desc);
    for (size_t oi = 0; oi < n && nk < max_keep; oi++) {
        if (dead[oi])
            continue;
        const struct model_box *a = &boxes[order[oi]];
        keep[nk++] = order[oi];
        for (size_t oj = oi + 1; oj < n; oj++) {
            if (dead[oj])
                continue;
            const struct model_box *b = &boxes[order[oj]];
            if (!agnostic && a->class_id != b->class_id)
                continue;
            float o = mode == MODEL_NMS_CLASSIC ? overlap_classic(a, b) : iou_true(a, b);
            if (o > iou)
                dead[oj] = 1;
        }
    }
    free(order);
    free(dead);
    return nk;
}

/* ---- helpers ---------------------------------------------------------------- */

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static float map_x(const struct model_letterbox *lb, float x)
{
    return clampf((x - lb->ox) / lb->sx, 0, (float)lb->crop_w);
}
static float map_y(const struct model_letterbox *lb, float y)
{
    return clampf((y - lb->oy) / lb->sy, 0, (float)lb->crop_h);
}

static bool class_allowed(const struct model *m, const struct model_params *p, int cls)
{
    if (!p->class_filter)
        return true;
    for (size_t i = 0; i < p->n_class_filter; i++)
        if (p->class_filter[i] && (size_t)cls < m->n_classes &&
            !strcmp(p->class_filter[i], m->classes[cls]))
            return true;
    return false;
}

/* ---- polygon of a binary mask -------------------------------------------------- */

static const int DX[8] = {1, 1, 0, -1, -1, -1, 0, 1};
static const int DY[8] = {0, 1, 1, 1, 0, -1, -1, -1};

/* Label the largest 8-connected component of mask (w x h, 0/1) with 2;
 * returns its first pixel in raster order in *sx, *sy, or -1 if empty. */
static int largest_component(uint8_t *mask, int w, int h, int *sx, int *sy)
{
    size_t n = (size_t)w * (size_t)h, best = 0;
    int *stack = NULL, *lab = NULL, nl = 0, best_l = -1, rc = -1;
    stack = try_alloc(n, sizeof(int));
    lab = try_calloc(n, sizeof(int));
    if (!stack || !lab)
        goto out;
    for (size_t s = 0; s < n; s++) {
        if (!mask[s] || lab[s])
            continue;
        nl++;
        size_t top = 0, cnt = 0;
        stack[top++] = (int)s;
        lab[s] = nl;
        while (top) {
            int q = stack[--top], qx = q % w, qy = q / w;
            cnt++;
            for (int d = 0; d < 8; d++) {
                int nx = qx + DX[d], ny = qy + DY[d];
                if (nx < 0 || ny < 0 || nx >= w || ny >= h)
                    continue;
                int r = ny * w + nx;
                if (mask[r] && !lab[r]) {
                    lab[r] = nl;
                    stack[top++] = r;
                }
            }
        }
        if (cnt > best) {
            best = cnt;
            best_l = nl;
            *sx = (int)(s % (size_t)w);
            *sy = (int)(s / (size_t)w);
        }
    }
    if (best_l < 0)
        goto out;
    for (size_t s = 0; s < n; s++)
        mask[s] = lab[s] == best_l ? 2 : 0;
    rc = 0;
out:
    free(stack);
    free(lab);
    return rc;
}

static bool fg2(const uint8_t *mask, int w, int h, int x, int y)
{
    return x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] == 2;
}

/* Trace the outer boundary of the component labelled 2 from its first
 * raster pixel; *pts gets the corner points (malloc'd), *np their count. */
static int trace_boundary(const uint8_t *mask, int w, int h, int sx, int sy, int **pts, size_t *np)
{
    /* each boundary pixel is entered at most 4 times: that bounds the walk */
    size_t steps_max = 4 * (size_t)w * (size_t)h + 8, n = 0, cap = 256;
    int *p = try_alloc(cap, 3 * sizeof(int)); /* x, y, arriving direction */
    if (!p)
        return ERR_NOMEM;
    int x = sx, y = sy, d = 0, first = -1;
    p[0] = x;
    p[1] = y;
    p[2] = -1;
    n = 1;
    for (size_t steps = 0; steps < steps_max; steps++) {
        int s = (d % 2 == 0) ? (d + 7) % 8 : (d + 6) % 8, found = -1;
        for (int i = 0; i < 8; i++) {
            int nd = (s + i) % 8;
            if (fg2(mask, w, h, x + DX[nd], y + DY[nd])) {
                found = nd;
                break;
            }
        }
        if (found < 0)
            break; /* single pixel */
        if (first < 0)
            first = found;
        else if (x == sx && y == sy && found == first)
            break;
        x += DX[found];
        y += DY[found];
        d = found;
        if (n == cap) {
            int *np2 = try_alloc(cap * 2, 3 * sizeof(int));
            if (!np2) {
                free(p);
                return ERR_NOMEM;
            }
            memcpy(np2, p, cap * 3 * sizeof(int));
            free(p);
            p = np2;
            cap *= 2;
        }
        p[3 * n] = x;
        p[3 * n + 1] = y;
        p[3 * n + 2] = d;
        n++;
    }
    if (n > 1 && p[3 * (n - 1)] == sx && p[3 * (n - 1) + 1] == sy) {
        p[2] = p[3 * (n - 1) + 2]; /* start's arriving direction */
        n--;
    }
    /* keep points where the direction changes */
    int *out = try_alloc(n, 2 * sizeof(int));
    if (!out) {
        free(p);
        return ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int din = p[3 * i + 2], dout = n > 1 ? p[3 * ((i + 1) % n) + 2] : -2;
        if (n <= 2 || din != dout) {
            out[2 * k] = p[3 * i];
            out[2 * k + 1] = p[3 * i + 1];
            k++;
        }
    }
    free(p);
    *pts = out;
    *np = k;
    return 0;
}

int model__mask_to_polygon(uint8_t *mask, int w, int h, float ox, float oy,
                           struct model_detection *d)
{
    int sx = 0, sy = 0, *pts = NULL, rc;
    size_t npts = 0;
    if (largest_component(mask, w, h, &sx, &sy) < 0)
        return 0; /* empty */
    if ((rc = trace_boundary(mask, w, h, sx, sy, &pts, &npts)) < 0)
        return rc;
    d->points = try_alloc(npts ? npts : 1, sizeof(struct model_point));
    if (!d->points) {
        free(pts);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < npts; i++) {
        d->points[i].x = (float)pts[2 * i] + ox;
        d->points[i].y = (float)pts[2 * i + 1] + oy;
    }
    d->n_points = npts;
    free(pts);
    return 0;
}

/* ---- segmentation masks --------------------------------------------------------- */

static inline float sigmoidf(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

/* Polygon of detection 'det' (box in input pixels bx*) from coefs and
 * protos (nm, ph, pw).  Points are written in original-image pixels. */
int model__mask_polygon(const struct model *m, const float *coef, size_t coef_stride,
                        const float *protos, int ph, int pw, float bx1, float by1, float bx2,
                        float by2, const struct model_letterbox *lb, const struct model_params *p,
                        struct model_detection *det)
{
    int W = m->in_w, H = m->in_h, nm = m->nm, rc = 0;
    float f = p->mask_mode == MODEL_MASK_FAST       ? 0.0f
              : p->mask_mode == MODEL_MASK_ACCURATE ? 1.0f
                                                    : clampf(p->tradeoff_factor, 0, 1);
    int gw = (int)nearbyintf((float)pw + (float)(W - pw) * f);
    int gh = (int)nearbyintf((float)ph + (float)(H - ph) * f);
    gw = MAX(gw, 1);
    gh = MAX(gh, 1);
    float rx = (float)gw / W, ry = (float)gh / H;
    /* content area (not padding), input pixels */
    float cx0 = MAX(0.0f, lb->ox), cy0 = MAX(0.0f, lb->oy);
    float cx1 = MIN((float)W, lb->ox + lb->crop_w * lb->sx);
    float cy1 = MIN((float)H, lb->oy + lb->crop_h * lb->sy);
    int gx0 = (int)ceilf(MAX(bx1, cx0) * rx), gx1 = (int)ceilf(MIN(bx2, cx1) * rx);
    int gy0 = (int)ceilf(MAX(by1, cy0) * ry), gy1 = (int)ceilf(MIN(by2, cy1) * ry);
    gx0 = MAX(gx0, 0);
    gy0 = MAX(gy0, 0);
    gx1 = MIN(gx1, gw);
    gy1 = MIN(gy1, gh);
    int bw = gx1 - gx0, bh = gy1 - gy0;
    float *sig = NULL;
    uint8_t *mask = NULL;
    int *pts = NULL;
    size_t npts = 0;
    if (bw <= 0 || bh <= 0)
        return 0;
    /* proto sub-rectangle needed by the bilinear samples */
    float sxp = (float)pw / gw, syp = (float)ph / gh;
    int px0 = MAX(0, (int)floorf((gx0 + 0.5f) * sxp - 0.5f));
    int px1 = MIN(pw - 1, (int)floorf((gx1 - 0.5f) * sxp - 0.5f) + 1);
    int py0 = MAX(0, (int)floorf((gy0 + 0.5f) * syp - 0.5f));
    int py1 = MIN(ph - 1, (int)floorf((gy1 - 0.5f) * syp - 0.5f) + 1);
    int sw = px1 - px0 + 1, shh = py1 - py0 + 1;
    if (sw <= 0 || shh <= 0)
        return 0;
    sig = try_alloc((size_t)sw * (size_t)shh, sizeof(float));
    mask = try_calloc((size_t)bw * (size_t)bh, 1);
    if (!sig || !mask) {
        rc = ERR_NOMEM;
        goto out;
    }
    size_t pplane = (size_t)ph * (size_t)pw;
    for (int y = 0; y < shh; y++)
        for (int x = 0; x < sw; x++) {
            size_t off = (size_t)(py0 + y) * pw + (size_t)(px0 + x);
            float v = 0;
            for (int k = 0; k < nm; k++)
                v += coef[(size_t)k * coef_stride] * protos[(size_t)k * pplane + off];
            sig[y * sw + x] = sigmoidf(v);
        }
    for (int y = 0; y < bh; y++) {
        float fy = (gy0 + y + 0.5f) * syp - 0.5f;
        int y0 = (int)floorf(fy);
        float wy = fy - y0;
        if (y0 < 0) {
            y0 = 0;
            wy = 0;
        }
        if (y0 >= ph - 1) {
            y0 = ph - 1;
            wy = 0;
        }
        int y1 = MIN(y0 + 1, ph - 1);
        y0 = MAX(0, MIN(y0 - py0, shh - 1));
        y1 = MAX(0, MIN(y1 - py0, shh - 1));
        for (int x = 0; x < bw; x++) {
            float fx = (gx0 + x + 0.5f) * sxp - 0.5f;
            int x0 = (int)floorf(fx);
            float wx = fx - x0;
            if (x0 < 0) {
                x0 = 0;
                wx = 0;
            }
            if (x0 >= pw - 1) {
                x0 = pw - 1;
                wx = 0;
            }
            int x1 = MIN(x0 + 1, pw - 1);
            x0 = MAX(0, MIN(x0 - px0, sw - 1));
            x1 = MAX(0, MIN(x1 - px0, sw - 1));
            float t = sig[y0 * sw + x0] + (sig[y0 * sw + x1] - sig[y0 * sw + x0]) * wx;
            float b = sig[y1 * sw + x0] + (sig[y1 * sw + x1] - sig[y1 * sw + x0]) * wx;
            mask[y * bw + x] = (t + (b - t) * wy) > 0.5f;
        }
    }
    if (p->rle_masks) {
        /* the whole mask (every component) at the original resolution: each
         * pixel of the (cropped) picture takes the grid cell under its centre */
        int X0 = (int)floorf(map_x(lb, (float)gx0 / rx)), X1 = (int)ceilf(map_x(lb, (float)gx1 / rx));
        int Y0 = (int)floorf(map_y(lb, (float)gy0 / ry)), Y1 = (int)ceilf(map_y(lb, (float)gy1 / ry));
        X1 = MIN(X1, lb->crop_w), Y1 = MIN(Y1, lb->crop_h);
        int ow = X1 - X0, oh = Y1 - Y0;
        if (ow > 0 && oh > 0) {
            uint8_t *om = try_calloc((size_t)ow * (size_t)oh, 1);
            if (!om) {
                rc = ERR_NOMEM;
                goto out;
            }
            for (int y = 0; y < oh; y++) {
                int g_y = (int)floorf((((float)(Y0 + y) + 0.5f) * lb->sy + lb->oy) * ry) - gy0;
                if (g_y < 0 || g_y >= bh)
                    continue;
                for (int x = 0; x < ow; x++) {
                    int g_x = (int)floorf((((float)(X0 + x) + 0.5f) * lb->sx + lb->ox) * rx) - gx0;
                    if (g_x >= 0 && g_x < bw)
                        om[(size_t)y * (size_t)ow + (size_t)x] = mask[g_y * bw + g_x];
                }
            }
            model__keep_mask(det, om, X0 + lb->crop_x, Y0 + lb->crop_y, ow, oh);
            free(om);
        }
    }
    int sx = 0, sy = 0;
    if (largest_component(mask, bw, bh, &sx, &sy) < 0)
        goto out;
    if ((rc = trace_boundary(mask, bw, bh, sx, sy, &pts, &npts)) < 0)
        goto out;
    det->points = try_alloc(npts ? npts : 1, sizeof(struct model_point));
    if (!det->points) {
        rc = ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < npts; i++) {
        /* grid cell centre -> input pixel; the identity at input resolution */
        float xi = ((float)(pts[2 * i] + gx0) + 0.5f) / rx - 0.5f;
        float yi = ((float)(pts[2 * i + 1] + gy0) + 0.5f) / ry - 0.5f;
        det->points[i].x = map_x(lb, xi) + (float)lb->crop_x;
        det->points[i].y = map_y(lb, yi) + (float)lb->crop_y;
    }
    det->n_points = npts;
out:
    free(sig);
    free(mask);
    free(pts);
    return rc;
}

/* ---- decoders -------------------------------------------------------------------- */

static int decode_classification(const struct model *m, const float *out, size_t nc,
                                 struct model_result *r)
{
    r->scores = try_alloc(nc ? nc : 1, sizeof(float));
    if (!r->scores)
        return ERR_NOMEM;
    r->n_scores = nc;
    if (m->task == MODEL_TASK_MULTI_LABEL || m->fused_softmax) {
        memcpy(r->scores, out, nc * sizeof(float));
        return 0;
    }
    float mx = -INFINITY;
    double sum = 0;
    for (size_t i = 0; i < nc; i++)
        mx = MAX(mx, out[i]);
    for (size_t i = 0; i < nc; i++) {
        r->scores[i] = expf(out[i] - mx);
        sum += r->scores[i];
    }
    for (size_t i = 0; i < nc; i++)
        r->scores[i] = (float)(r->scores[i] / sum);
    return 0;
}

bool model__box_to_image(const struct model_letterbox *lb, float x1, float y1, float x2, float y2,
                         struct model_detection *d)
{
    if (!isfinite(x1) || !isfinite(y1) || !isfinite(x2) || !isfinite(y2))
        return false;
    d->x1 = nearbyintf(map_x(lb, x1)) + (float)lb->crop_x;
    d->y1 = nearbyintf(map_y(lb, y1)) + (float)lb->crop_y;
    d->x2 = nearbyintf(map_x(lb, x2)) + (float)lb->crop_x;
    d->y2 = nearbyintf(map_y(lb, y2)) + (float)lb->crop_y;
    return true;
}

int model__decode(const struct model *m, const struct model__out *outs, int b,
                  const struct model_letterbox *lb, const struct model_params *p,
                  struct model_result *r, char *err, size_t errlen)
{
    size_t nc = m->n_classes;
    int rc = 0;

    if ((m->task == MODEL_TASK_DETECTION || m->task == MODEL_TASK_SEGMENTATION) &&
        m->family != MODEL_FAMILY_YOLOV8)
        return model__decode_family(m, outs, b, lb, p, r, err, errlen);
    if (m->task == MODEL_TASK_SEMANTIC)
        return model__decode_semantic(m, &outs[m->det_out], b, r, err, errlen);
    const float *out0 = outs[m->det_out].data;
    const int64_t *shape0 = outs[m->det_out].shape;
    int rank0 = outs[m->det_out].rank;
    const float *protos = m->task == MODEL_TASK_SEGMENTATION ? outs[m->proto_out].data : NULL;
    const int64_t *pshape = outs[m->proto_out].shape;
    r->task = m->task;
    if (m->task == MODEL_TASK_CLASSIFICATION || m->task == MODEL_TASK_MULTI_LABEL) {
        size_t per = 1;
        for (int i = 1; i < rank0; i++)
            per *= (size_t)shape0[i];
        if (per != nc)
            return ERR_INVALID;
        return decode_classification(m, out0 + (size_t)b * per, nc, r);
    }
    if (rank0 != 3)
        return ERR_INVALID;
    size_t C = (size_t)shape0[1], A = (size_t)shape0[2];
    size_t nk = m->task == MODEL_TASK_KEYPOINTS ? m->n_kpt : 0;
    size_t nm = m->task == MODEL_TASK_SEGMENTATION ? (size_t)m->nm : 0;
    if (C != 4 + nc + nm + 3 * nk || nc == 0)
        return ERR_INVALID;
    const float *o = out0 + (size_t)b * C * A;

    float *best = NULL;
    int *bcls = NULL;
    struct model_box *cand = NULL;
    size_t *cand_a = NULL, *keep = NULL, ncand = 0;
    best = try_alloc(A, sizeof(float));
    bcls = try_alloc(A, sizeof(int));
    if (!best || !bcls) {
        rc = ERR_NOMEM;
        goto out;
    }
    memcpy(best, o + 4 * A, A * sizeof(float));
    memset(bcls, 0, A * sizeof(int));
    for (size_t c = 1; c < nc; c++) {
        const float *row = o + (4 + c) * A;
        for (size_t a = 0; a < A; a++)
            if (row[a] > best[a]) {
                best[a] = row[a];
                bcls[a] = (int)c;
            }
    }
    bool strict = p->nms == MODEL_NMS_IOU;
    for (size_t a = 0; a < A; a++)
        if (strict ? best[a] > p->confidence : best[a] >= p->confidence)
            ncand++;
    cand = try_alloc(ncand ? ncand : 1, sizeof(*cand));
    cand_a = try_alloc(ncand ? ncand : 1, sizeof(size_t));
    keep = try_alloc(ncand ? ncand : 1, sizeof(size_t));
    if (!cand || !cand_a || !keep) {
        rc = ERR_NOMEM;
        goto out;
    }
    size_t k = 0;
    for (size_t a = 0; a < A; a++) {
        if (!(strict ? best[a] > p->confidence : best[a] >= p->confidence))
            continue;
        float cx = o[a], cy = o[A + a], w = o[2 * A + a], h = o[3 * A + a];
        cand[k] = (struct model_box){cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, best[a],
                                     bcls[a]};
        cand_a[k] = a;
        k++;
    }
    /* max_candidates: keep the best-scored ones (the new path only: the
     * classic w_np_non_max_suppression accepts it and does not use it) */
    if (p->nms == MODEL_NMS_IOU && p->max_candidates > 0 && ncand > (size_t)p->max_candidates) {
        size_t *ord = xmalloc(ncand * sizeof(size_t));
        struct model_box *c2 = xmalloc((size_t)p->max_candidates * sizeof(*c2));
        size_t *a2 = xmalloc((size_t)p->max_candidates * sizeof(size_t));
        for (size_t i = 0; i < ncand; i++)
            ord[i] = i;
        tl_sort_boxes = cand;
        qsort(ord, ncand, sizeof(size_t), cmp_score_desc);
        for (size_t i = 0; i < (size_t)p->max_candidates; i++) {
            c2[i] = cand[ord[i]];
            a2[i] = cand_a[ord[i]];
        }
        free(ord);
        free(cand);
        free(cand_a);
        cand = c2;
        cand_a = a2;
        ncand = (size_t)p->max_candidates;
    }
    size_t maxk = p->max_detections > 0 ? (size_t)p->max_detections : ncand;
    size_t nkeep = model_nms(cand, ncand, p->nms, p->iou_threshold, p->class_agnostic_nms, maxk,
                             keep);
    r->dets = try_calloc(nkeep ? nkeep : 1, sizeof(*r->dets));
    if (!r->dets) {
        rc = ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < nkeep; i++) {
        const struct model_box *bx = &cand[keep[i]];
        size_t a = cand_a[keep[i]];
        if (!class_allowed(m, p, bx->class_id))
            continue;
        struct model_detection *d = &r->dets[r->n_dets];
        if (!model__box_to_image(lb, bx->x1, bx->y1, bx->x2, bx->y2, d)) {
            snprintf(err, errlen, "the network produced a box that is not finite (NaN or "
                     "infinity)");
            rc = ERR_INVALID;
            goto out;
        }
        d->confidence = bx->score;
        d->class_id = bx->class_id;
        r->n_dets++;
        if (nm && protos) {
            rc = model__mask_polygon(m, o + (4 + nc) * A + a, A, protos + (size_t)b * nm * pshape[2] * pshape[3],
                              (int)pshape[2], (int)pshape[3], bx->x1, bx->y1, bx->x2, bx->y2, lb,
                              p, d);
            if (rc < 0)
                goto out;
        }
        if (nk) {
            d->keypoints = try_alloc(nk, sizeof(*d->keypoints));
            if (!d->keypoints) {
                rc = ERR_NOMEM;
                goto out;
            }
            for (size_t j = 0; j < nk; j++) {
                const float *kr = o + (4 + nc + 3 * j) * A + a;
                float kc = kr[2 * A];
                if (kc < p->keypoint_confidence)
                    continue;
                struct model_keypoint *kp = &d->keypoints[d->n_keypoints++];
                kp->x = map_x(lb, kr[0]) + (float)lb->crop_x;
                kp->y = map_y(lb, kr[A]) + (float)lb->crop_y;
                kp->confidence = kc;
                kp->class_id = (int)j;
            }
        }
    }
out:
    free(best);
    free(bcls);
    free(cand);
    free(cand_a);
    free(keep);
    return rc;
}

void model_result_release(struct model_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_dets; i++) {
        free(r->dets[i].points);
        free(r->dets[i].keypoints);
        free(r->dets[i].mask);
    }
    free(r->dets);
    free(r->scores);
    free(r->class_mask);
    free(r->conf_mask);
    memset(r, 0, sizeof(*r));
}
