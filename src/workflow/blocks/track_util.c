/*
 * blocks/track_util.c — the pieces the tracker blocks share (track_util.h):
 * one Kalman filter for SORT / ByteTrack (xyxy, 8 values), OC-SORT (centre,
 * scale, aspect: 7 values, Joseph form) and BoT-SORT (centre, width,
 * height: 8 values, Joseph form), box IoU, the maximising assignment over
 * assign.c, the FIFO instance cache and the per-video keys.  The arithmetic
 * is the order each tracker had before it moved here.
 */
#include "workflow/blocks/track_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

bool tk_inv4(const double *a, double *out)
{
    double m[4][8];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            m[i][j] = j < 4 ? a[i * 4 + j] : (j - 4 == i);
    for (int c = 0; c < 4; c++) {
        int p = c;
        for (int r = c + 1; r < 4; r++)
            if (fabs(m[r][c]) > fabs(m[p][c]))
                p = r;
        if (!(fabs(m[p][c]) >= 1e-300) || !isfinite(m[p][c]))
            return false;
        if (p != c)
            for (int j = 0; j < 8; j++) {
                double t = m[c][j];
                m[c][j] = m[p][j], m[p][j] = t;
            }
        double d = m[c][c];
        for (int j = 0; j < 8; j++)
            m[c][j] /= d;
        for (int r = 0; r < 4; r++)
            if (r != c) {
                double f = m[r][c];
                for (int j = 0; j < 8; j++)
                    m[r][j] -= f * m[c][j];
            }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[i * 4 + j] = m[i][j + 4];
    return true;
}

void tk_kf_predict(double *x, double *P, int n, int nv, const double *q)
{
    double FP[64], P2[64];
    for (int i = 0; i < nv; i++)
        x[i] += x[i + 4];
    /* FP = F P (rows i < nv add row i + 4); P2 = FP F^T + Q */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            FP[i * n + j] = P[i * n + j] + (i < nv ? P[(i + 4) * n + j] : 0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            P2[i * n + j] = FP[i * n + j] + (j < nv ? FP[i * n + j + 4] : 0) + (i == j ? q[i] : 0);
    memcpy(P, P2, (size_t)n * n * sizeof *P);
}

bool tk_kf_update(double *x, double *P, int n, const double *z, const double *r, bool joseph)
{
    double S[16], Si[16], K[32], y[4], P2[64];
    for (int i = 0; i < 4; i++) {
        y[i] = z[i] - x[i];
        for (int j = 0; j < 4; j++)
            S[i * 4 + j] = P[i * n + j] + (i == j ? r[i] : 0);
    }
    if (!tk_inv4(S, Si))
        return false;
    for (int i = 0; i < n; i++) /* K = P H^T S^-1: P's first 4 columns times Si */
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int l = 0; l < 4; l++)
                s += P[i * n + l] * Si[l * 4 + j];
            K[i * 4 + j] = s;
        }
    for (int i = 0; i < n; i++)
        for (int l = 0; l < 4; l++)
            x[i] += K[i * 4 + l] * y[l];
    if (!joseph) { /* P = (I - K H) P = P - K P[0:4, :] */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int l = 0; l < 4; l++)
                    s += K[i * 4 + l] * P[l * n + j];
                P2[i * n + j] = P[i * n + j] - s;
            }
        memcpy(P, P2, (size_t)n * n * sizeof *P);
        return true;
    }
    double IKH[64], T[64];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            IKH[i * n + j] = (i == j) - (j < 4 ? K[i * 4 + j] : 0);
    for (int i = 0; i < n; i++) /* T = IKH P */
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int l = 0; l < n; l++)
                s += IKH[i * n + l] * P[l * n + j];
            T[i * n + j] = s;
        }
    for (int i = 0; i < n; i++) /* P2 = T IKH^T + K R K^T */
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int l = 0; l < n; l++)
                s += T[i * n + l] * IKH[j * n + l];
            for (int l = 0; l < 4; l++)
                s += K[i * 4 + l] * r[l] * K[j * 4 + l];
            P2[i * n + j] = s;
        }
    memcpy(P, P2, (size_t)n * n * sizeof *P);
    return true;
}

double tk_iou(const double *a, const double *b)
{
    double iw = fmin(a[2], b[2]) - fmax(a[0], b[0]), ih = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    double inter = iw > 0 && ih > 0 ? iw * ih : 0;
    double u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    double v = u > 0 ? inter / u : 0;
    return isfinite(v) ? v : 0.0;
}

void tk_assign_max(const double *score, int nr, int nc, int *match)
{
    for (int r = 0; r < nr; r++)
        match[r] = -1;
    if (nr <= 0 || nc <= 0)
        return;
    bool tr = nr > nc; /* assign.c wants rows <= columns */
    int n = tr ? nc : nr, m = tr ? nr : nc;
    double *cost = xmalloc((size_t)n * (size_t)m * sizeof *cost);
    int *col = xmalloc((size_t)n * sizeof *col);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            /* assign.c never leaves its loop on a NaN or infinite cost (a
             * score of 0 * inf from a detection's infinite confidence, a NaN
             * box): NaN counts as 0, infinities as +-1e12 */
            double s = tr ? score[(size_t)j * nc + i] : score[(size_t)i * nc + j];
            s = s != s ? 0 : s > 1e12 ? 1e12 : s < -1e12 ? -1e12 : s;
            cost[(size_t)i * m + j] = -s;
        }
    wf__assign_min(cost, n, m, col);
    for (int i = 0; i < n; i++) {
        int r = tr ? col[i] : i, c = tr ? i : col[i];
        match[r] = c;
    }
    free(cost);
    free(col);
}

bool tk_cache_seen(struct tk_cache *c, int64_t id, size_t size)
{
    size = size ? size : 1;
    for (size_t i = 0; i < c->n; i++)
        if (c->ids[(c->head + i) % c->cap] == id)
            return true;
    if (!c->ids) {
        c->cap = size;
        c->ids = xmalloc(size * sizeof *c->ids);
    }
    if (c->n >= c->cap) {
        c->head = (c->head + 1) % c->cap;
        c->n--;
    }
    c->ids[(c->head + c->n) % c->cap] = id;
    c->n++;
    return false;
}

void tk_cache_free(struct tk_cache *c)
{
    free(c->ids);
    memset(c, 0, sizeof *c);
}

const char *tk_video(struct wf_call *c, size_t i, const json_t **meta)
{
    const struct wf_image *im = wf_arg_image(c, i, "image");
    const json_t *vm = im ? im->video_metadata : NULL;
    const char *vid = json_string_value(json_object_get(vm, "video_identifier"));
    if (meta)
        *meta = json_is_object(vm) ? vm : NULL;
    if (!vid)
        vid = im && im->parent_id ? im->parent_id : "image";
    return vid;
}

int tk_max_lost(const json_t *meta, int64_t buffer)
{
    const json_t *f = json_object_get(meta, "fps");
    double fps = json_is_number(f) && json_number_value(f) != 0 ? json_number_value(f) : 30;
    double v = fps / 30.0 * (double)buffer; /* fps comes from the request: any double */
    if (!(v > -1e9)) /* NaN too */
        v = -1e9;
    return (int)MIN(1e9, v);
}

void tk_out(struct wf_call *c, size_t i, const struct wf_dets *ds, const int *order, const int64_t *ids, int nout,
            struct tk_cache *cache, size_t cache_size)
{
    struct wf_dets *out = wf_dets_new(), *fresh = wf_dets_new(), *seen = wf_dets_new();
    for (int q = 0; q < nout; q++) {
        if (ids[q] < 0)
            continue;
        struct wf_det *o = wf_dets_push_copy(out, &ds->d[order[q]]);
        o->tracker_id = ids[q];
        wf_dets_push_copy(tk_cache_seen(cache, ids[q], cache_size) ? seen : fresh, o);
    }
    wf_out_dets(c, i, "tracked_detections", out);
    wf_out_dets(c, i, "new_instances", fresh);
    wf_out_dets(c, i, "already_seen_instances", seen);
}
