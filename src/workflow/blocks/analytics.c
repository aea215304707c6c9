/*
 * blocks/analytics.c — the blocks that keep state from one frame of a video
 * to the next: byte_tracker v1/v2/v3, line_counter v1/v2, time_in_zone
 * v1/v2/v3 and velocity v1 (centre displacement per second between a
 * tracker's frames, its exponential moving average, both divided by
 * pixels_per_meter).
 *
 * State lives in the run's struct wf_state (wf_call_state), one object per
 * step and video_identifier, exactly as Roboflow's blocks keep one
 * sv.ByteTrack / sv.LineZone per video; the jobs worker gives every video
 * its own state, and a run without one (an image job) starts fresh.
 *
 * The tracker follows supervision's ByteTrack (0.27) step by step: the
 * xyah Kalman filter with constant velocity (position weight 1/20,
 * velocity 1/160), a first association of high-score detections
 * (> track_activation_threshold) with tracked and lost tracks on IoU fused
 * with the score, a second one of the low-score detections (0.1 < s <
 * threshold) at 0.5, unconfirmed tracks at 0.7, new tracks above
 * threshold + 0.1, lost tracks dropped after int(fps / 30 * buffer)
 * frames, duplicates between tracked and lost removed at IoU > 0.85, and
 * the output matched back to the input boxes at IoU >= 0.5.  Assignments
 * are optimal (Hungarian algorithm) as scipy's linear_sum_assignment;
 * when two assignments cost the same the chosen one may differ.
 *
 * The line counter follows sv.LineZone: an anchor set (one named anchor,
 * or the four corners), a detection counts only when every anchor lies
 * between the perpendiculars through the segment's ends and all anchors
 * are on one side; a tracker whose side changed from the previous frame it
 * was seen in is counted in (to the side where the cross product is
 * negative) or out.
 *
 * Time in zone follows Roboflow's block over sv.PolygonZone: a detection is
 * in a zone when its anchor (the box clipped to the polygon's extent,
 * rounded up to a pixel) is inside or on the polygon; the time is
 * frame_number / fps of the first frame it was seen in, up to this one;
 * leaving resets it (reset_out_of_zone_detections) and out-of-zone boxes
 * are dropped (remove_out_of_zone_detections).  v3 takes several zones.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "workflow/wf_int.h"

/* Bounds on what one tracker handles (a frame with more detections is an
 * error; the oldest lost tracks go first beyond the track bound). */
#define TRACK_MAX_DETS 2000
#define TRACK_MAX_LOST 2000

/* ---- linear assignment (the solver is wf__assign_min, assign.c) -------------------- */

static void assign_dense(double *cost, int n, int m, double thresh, int *a_of, int *b_of);

/* matching.linear_assignment: costs above thresh are clamped to thresh +
 * 1e-4, the optimal assignment is taken, and pairs costing more than
 * thresh are dropped.  a_of[i] = matched column or -1; b_of[j] likewise.
 * Rows and columns without any entry <= thresh can never be matched and
 * do not change how the others are (they cost the clamp whatever they get),
 * so the assignment is solved on the rest only: boxes far from every
 * track cost nothing, and a frame of many boxes stays fast. */
static void assign(double *cost, int n, int m, double thresh, int *a_of, int *b_of)
{
    for (int i = 0; i < n; i++)
        a_of[i] = -1;
    for (int j = 0; j < m; j++)
        b_of[j] = -1;
    if (n == 0 || m == 0)
        return;
    int *ri = xmalloc((size_t)n * sizeof *ri), *cj = xmalloc((size_t)m * sizeof *cj), nr = 0, nc = 0;
    char *col_ok = xcalloc((size_t)m, 1);
    for (int i = 0; i < n; i++) {
        bool any = false;
        for (int j = 0; j < m; j++)
            if (cost[(size_t)i * m + j] <= thresh) {
                any = true;
                col_ok[j] = 1;
            }
        if (any)
            ri[nr++] = i;
    }
    for (int j = 0; j < m; j++)
        if (col_ok[j])
            cj[nc++] = j;
    if (nr > 0) {
        double *sub = xmalloc((size_t)nr * nc * sizeof *sub);
        int *sa = xmalloc((size_t)nr * sizeof *sa), *sb = xmalloc((size_t)nc * sizeof *sb);
        for (int a = 0; a < nr; a++)
            for (int b = 0; b < nc; b++)
                sub[(size_t)a * nc + b] = cost[(size_t)ri[a] * m + cj[b]];
        assign_dense(sub, nr, nc, thresh, sa, sb);
        for (int a = 0; a < nr; a++)
            if (sa[a] >= 0) {
                a_of[ri[a]] = cj[sa[a]];
                b_of[cj[sa[a]]] = ri[a];
            }
        free(sub);
        free(sa);
        free(sb);
    }
    free(ri);
    free(cj);
    free(col_ok);
}

static void assign_dense(double *cost, int n, int m, double thresh, int *a_of, int *b_of)
{
    for (int i = 0; i < n; i++)
        a_of[i] = -1;
    for (int j = 0; j < m; j++)
        b_of[j] = -1;
    for (int k = 0; k < n * m; k++)
        if (!(cost[k] <= thresh)) /* NaN too (a degenerate box): never matched */
            cost[k] = thresh + 1e-4;
    if (n <= m) {
        int *col = xmalloc((size_t)n * sizeof *col);
        wf__assign_min(cost, n, m, col);
        for (int i = 0; i < n; i++)
            if (cost[(size_t)i * m + col[i]] <= thresh) {
                a_of[i] = col[i];
                b_of[col[i]] = i;
            }
        free(col);
    } else {
        double *t = xmalloc((size_t)n * m * sizeof *t);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
                t[(size_t)j * n + i] = cost[(size_t)i * m + j];
        int *row = xmalloc((size_t)m * sizeof *row);
        wf__assign_min(t, m, n, row);
        for (int j = 0; j < m; j++)
            if (cost[(size_t)row[j] * m + j] <= thresh) {
                b_of[j] = row[j];
                a_of[row[j]] = j;
            }
        free(row);
        free(t);
    }
}

static double iou_tlbr(const double *a, const double *b)
{
    double iw = fmin(a[2], b[2]) - fmax(a[0], b[0]), ih = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    if (iw <= 0 || ih <= 0)
        return 0;
    double in = iw * ih, ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - in;
    return ua > 0 ? in / ua : 0;
}

/* ---- Kalman filter (x, y, aspect, height and their velocities) --------------------- */

#define W_POS (1.0 / 20)
#define W_VEL (1.0 / 160)

static void kf_initiate(const double z[4], double mean[8], double cov[64])
{
    double h = z[3], std[8] = {2 * W_POS * h, 2 * W_POS * h, 1e-2, 2 * W_POS * h,
                               10 * W_VEL * h, 10 * W_VEL * h, 1e-5, 10 * W_VEL * h};
    memset(cov, 0, 64 * sizeof *cov);
    for (int i = 0; i < 4; i++) {
        mean[i] = z[i];
        mean[4 + i] = 0;
    }
    for (int i = 0; i < 8; i++)
        cov[i * 8 + i] = std[i] * std[i];
}

static void kf_predict(double mean[8], double cov[64])
{
    double h = mean[3], q[8] = {W_POS * h, W_POS * h, 1e-2, W_POS * h, W_VEL * h, W_VEL * h, 1e-5, W_VEL * h};
    double fc[64], out[64];
    for (int i = 0; i < 4; i++)
        mean[i] += mean[4 + i];
    /* F cov F^T with F = [I I; 0 I] */
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            fc[i * 8 + j] = cov[i * 8 + j] + (i < 4 ? cov[(i + 4) * 8 + j] : 0);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            out[i * 8 + j] = fc[i * 8 + j] + (j < 4 ? fc[i * 8 + j + 4] : 0);
    for (int i = 0; i < 8; i++)
        out[i * 8 + i] += q[i] * q[i];
    memcpy(cov, out, sizeof out);
}

/* Solve S x = b for symmetric positive definite 4x4 S (Cholesky). */
static void chol4_solve(const double S[16], const double b[4], double x[4])
{
    double L[16] = {0}, y[4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j <= i; j++) {
            double s = S[i * 4 + j];
            for (int k = 0; k < j; k++)
                s -= L[i * 4 + k] * L[j * 4 + k];
            L[i * 4 + j] = i == j ? sqrt(fmax(s, 1e-12)) : s / L[j * 4 + j];
        }
    for (int i = 0; i < 4; i++) {
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= L[i * 4 + k] * y[k];
        y[i] = s / L[i * 4 + i];
    }
    for (int i = 3; i >= 0; i--) {
        double s = y[i];
        for (int k = i + 1; k < 4; k++)
            s -= L[k * 4 + i] * x[k];
        x[i] = s / L[i * 4 + i];
    }
}

static void kf_update(double mean[8], double cov[64], const double z[4])
{
    double h = mean[3], r[4] = {W_POS * h, W_POS * h, 1e-1, W_POS * h};
    double S[16], K[32]; /* K: 8 x 4 */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            S[i * 4 + j] = cov[i * 8 + j] + (i == j ? r[i] * r[i] : 0);
    /* K = cov H^T S^-1: row i of K solves S k = (cov H^T)[i] (S symmetric) */
    for (int i = 0; i < 8; i++) {
        double b[4] = {cov[i * 8 + 0], cov[i * 8 + 1], cov[i * 8 + 2], cov[i * 8 + 3]};
        chol4_solve(S, b, &K[i * 4]);
    }
    double innov[4];
    for (int i = 0; i < 4; i++)
        innov[i] = z[i] - mean[i];
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++)
            mean[i] += K[i * 4 + k] * innov[k];
    /* cov -= K S K^T */
    double KS[32];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++)
                s += K[i * 4 + k] * S[k * 4 + j];
            KS[i * 4 + j] = s;
        }
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++)
                s += KS[i * 4 + k] * K[j * 4 + k];
            cov[i * 8 + j] -= s;
        }
}

/* ---- ByteTrack ---------------------------------------------------------------------- */

enum { TS_NEW, TS_TRACKED, TS_LOST, TS_REMOVED };

struct strack {
    double tlwh0[4]; /* the detection's box, until the filter runs */
    double mean[8], cov[64];
    bool has_kf;
    double score;
    int state;
    bool activated;
    int start_frame, frame_id, tracklet_len;
    int64_t internal_id, external_id; /* -1: none yet */
};

struct tlist {
    struct strack **t;
    int n, cap;
};

static void tl_push(struct tlist *l, struct strack *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->t = xrealloc(l->t, (size_t)l->cap * sizeof *l->t);
    }
    l->t[l->n++] = s;
}

static bool tl_has(const struct tlist *l, const struct strack *s)
{
    for (int i = 0; i < l->n; i++)
        if (l->t[i] == s || (l->t[i]->internal_id >= 0 && l->t[i]->internal_id == s->internal_id))
            return true;
    return false;
}

struct tracker {
    double act_thr, match_thr, det_thr;
    int max_time_lost, min_frames, frame_id;
    int64_t next_internal, next_external;
    struct tlist tracked, lost, removed;
    struct tlist all; /* every track this tracker owns */
    /* v3: tracker ids already reported (the most recent cache_size) */
    int64_t *seen;
    size_t nseen, seen_cap, cache_size;
};

static void tracker_free(void *p)
{
    struct tracker *tk = p;
    for (int i = 0; i < tk->all.n; i++)
        free(tk->all.t[i]);
    free(tk->all.t);
    free(tk->tracked.t);
    free(tk->lost.t);
    free(tk->removed.t);
    free(tk->seen);
    free(tk);
}

static void st_tlwh(const struct strack *s, double out[4])
{
    if (!s->has_kf) {
        memcpy(out, s->tlwh0, sizeof s->tlwh0);
        return;
    }
    out[2] = s->mean[2] * s->mean[3];
    out[3] = s->mean[3];
    out[0] = s->mean[0] - out[2] / 2;
    out[1] = s->mean[1] - out[3] / 2;
}

static void st_tlbr(const struct strack *s, double out[4])
{
    st_tlwh(s, out);
    out[2] += out[0];
    out[3] += out[1];
}

static void st_xyah(const struct strack *s, double z[4])
{
    double t[4];
    st_tlwh(s, t);
    z[0] = t[0] + t[2] / 2;
    z[1] = t[1] + t[3] / 2;
    z[3] = fmax(t[3], 1e-6); /* a zero-height box must not poison the filter */
    z[2] = t[2] / z[3];
}

static void st_activate(struct tracker *tk, struct strack *s)
{
    double z[4];
    st_xyah(s, z);
    s->internal_id = tk->next_internal++;
    kf_initiate(z, s->mean, s->cov);
    s->has_kf = true;
    s->tracklet_len = 0;
    s->state = TS_TRACKED;
    if (tk->frame_id == 1)
        s->activated = true;
    if (tk->min_frames == 1)
        s->external_id = tk->next_external++;
    s->frame_id = s->start_frame = tk->frame_id;
}

static void st_update(struct tracker *tk, struct strack *s, const struct strack *det, bool reactivate)
{
    double z[4];
    st_xyah(det, z);
    kf_update(s->mean, s->cov, z);
    s->state = TS_TRACKED;
    s->frame_id = tk->frame_id;
    s->score = det->score;
    if (reactivate) {
        s->tracklet_len = 0;
        return;
    }
    s->tracklet_len++;
    if (s->tracklet_len == tk->min_frames) {
        s->activated = true;
        if (s->external_id < 0)
            s->external_id = tk->next_external++;
    }
}

/* cost[i][j] = 1 - IoU(a_i, b_j), optionally fused with b's scores. */
static double *iou_cost(struct strack *const *a, int n, struct strack *const *b, int m, bool fuse)
{
    double *c = xmalloc(((size_t)n * m + 1) * sizeof *c);
    for (int i = 0; i < n; i++) {
        double ta[4];
        st_tlbr(a[i], ta);
        for (int j = 0; j < m; j++) {
            double tb[4];
            st_tlbr(b[j], tb);
            double iou = iou_tlbr(ta, tb);
            c[(size_t)i * m + j] = 1 - (fuse ? iou * b[j]->score : iou);
        }
    }
    return c;
}

/* One association round: IoU cost of a against b (fused with b's scores
 * or not) assigned at thresh; *a_of / *b_of malloc'd (see assign). */
static void associate(const struct tlist *a, const struct tlist *b, bool fuse, double thresh, int **a_of, int **b_of)
{
    double *cost = iou_cost(a->t, a->n, b->t, b->n, fuse);
    *a_of = xmalloc(((size_t)a->n + 1) * sizeof **a_of);
    *b_of = xmalloc(((size_t)b->n + 1) * sizeof **b_of);
    assign(cost, a->n, b->n, thresh, *a_of, *b_of);
    free(cost);
}

/* joint_tracks: a then the tracks of b not in a (by internal id). */
static void tl_joint(struct tlist *dst, const struct tlist *b)
{
    for (int i = 0; i < b->n; i++)
        if (!tl_has(dst, b->t[i]))
            tl_push(dst, b->t[i]);
}

static void tl_sub(struct tlist *a, const struct tlist *b)
{
    int k = 0;
    for (int i = 0; i < a->n; i++)
        if (!tl_has(b, a->t[i]))
            a->t[k++] = a->t[i];
    a->n = k;
}

/* One frame: boxes (xyxy) and scores of n detections; returns the list of
 * output tracks (activated tracked ones) in *out (borrowed pointers). */
static void tracker_update(struct tracker *tk, const double (*boxes)[4], const double *scores, int n,
                           struct tlist *out)
{
    struct tlist dets = {0}, dets2 = {0}, unconfirmed = {0}, pool = {0}, activated = {0}, refind = {0},
                 lost_new = {0}, removed_new = {0}, rtracked = {0}, left = {0};
    int *a_of, *b_of;
    double *cost;

    tk->frame_id++;
    for (int i = 0; i < n; i++) {
        bool high = scores[i] > tk->act_thr, second = scores[i] > 0.1 && scores[i] < tk->act_thr;
        if (!high && !second)
            continue;
        struct strack *s = xcalloc(1, sizeof *s);
        s->tlwh0[0] = boxes[i][0];
        s->tlwh0[1] = boxes[i][1];
        s->tlwh0[2] = boxes[i][2] - boxes[i][0];
        s->tlwh0[3] = boxes[i][3] - boxes[i][1];
        s->score = scores[i];
        s->internal_id = s->external_id = -1;
        tl_push(&tk->all, s);
        tl_push(high ? &dets : &dets2, s);
    }
    for (int i = 0; i < tk->tracked.n; i++)
        tl_push(tk->tracked.t[i]->activated ? &pool : &unconfirmed, tk->tracked.t[i]);
    tl_joint(&pool, &tk->lost);
    for (int i = 0; i < pool.n; i++) {
        struct strack *s = pool.t[i];
        if (s->state != TS_TRACKED)
            s->mean[7] = 0;
        kf_predict(s->mean, s->cov);
    }

    /* first association: high-score detections */
    associate(&pool, &dets, true, tk->match_thr, &a_of, &b_of);
    for (int i = 0; i < pool.n; i++) {
        struct strack *s = pool.t[i];
        if (a_of[i] < 0) {
            if (s->state == TS_TRACKED)
                tl_push(&rtracked, s);
            continue;
        }
        bool was_tracked = s->state == TS_TRACKED;
        st_update(tk, s, dets.t[a_of[i]], !was_tracked);
        tl_push(was_tracked ? &activated : &refind, s);
    }
    for (int j = 0; j < dets.n; j++)
        if (b_of[j] < 0)
            tl_push(&left, dets.t[j]);
    free(a_of);
    free(b_of);

    /* second association: low-score detections, tracked tracks only */
    associate(&rtracked, &dets2, false, 0.5, &a_of, &b_of);
    for (int i = 0; i < rtracked.n; i++) {
        struct strack *s = rtracked.t[i];
        if (a_of[i] >= 0) {
            st_update(tk, s, dets2.t[a_of[i]], false);
            tl_push(&activated, s);
        } else if (s->state != TS_LOST) {
            s->state = TS_LOST;
            tl_push(&lost_new, s);
        }
    }
    free(a_of);
    free(b_of);

    /* unconfirmed tracks (one frame old) against what is left */
    associate(&unconfirmed, &left, true, 0.7, &a_of, &b_of);
    for (int i = 0; i < unconfirmed.n; i++) {
        struct strack *s = unconfirmed.t[i];
        if (a_of[i] >= 0) {
            st_update(tk, s, left.t[a_of[i]], false);
            tl_push(&activated, s);
        } else {
            s->state = TS_REMOVED;
            tl_push(&removed_new, s);
        }
    }
    /* new tracks */
    for (int j = 0; j < left.n; j++) {
        if (b_of[j] >= 0 || left.t[j]->score < tk->det_thr)
            continue;
        st_activate(tk, left.t[j]);
        tl_push(&activated, left.t[j]);
    }
    free(a_of);
    free(b_of);

    for (int i = 0; i < tk->lost.n; i++)
        if (tk->frame_id - tk->lost.t[i]->frame_id > tk->max_time_lost) {
            tk->lost.t[i]->state = TS_REMOVED;
            tl_push(&removed_new, tk->lost.t[i]);
        }
    int k = 0;
    for (int i = 0; i < tk->tracked.n; i++)
        if (tk->tracked.t[i]->state == TS_TRACKED)
            tk->tracked.t[k++] = tk->tracked.t[i];
    tk->tracked.n = k;
    tl_joint(&tk->tracked, &activated);
    tl_joint(&tk->tracked, &refind);
    tl_sub(&tk->lost, &tk->tracked);
    for (int i = 0; i < lost_new.n; i++)
        tl_push(&tk->lost, lost_new.t[i]);
    tl_sub(&tk->lost, &tk->removed); /* the previous frame's removed, as supervision does */
    if (tk->lost.n > TRACK_MAX_LOST) { /* oldest first: they were appended in time order */
        int drop = tk->lost.n - TRACK_MAX_LOST;
        memmove(tk->lost.t, tk->lost.t + drop, (size_t)TRACK_MAX_LOST * sizeof *tk->lost.t);
        tk->lost.n = TRACK_MAX_LOST;
    }
    free(tk->removed.t);
    tk->removed = removed_new;
    removed_new = (struct tlist){0};

    /* remove duplicates between tracked and lost (IoU > 0.85) */
    if (tk->tracked.n && tk->lost.n) {
        bool *dup_a = xcalloc((size_t)tk->tracked.n, 1), *dup_b = xcalloc((size_t)tk->lost.n, 1);
        cost = iou_cost(tk->tracked.t, tk->tracked.n, tk->lost.t, tk->lost.n, false);
        for (int i = 0; i < tk->tracked.n; i++)
            for (int j = 0; j < tk->lost.n; j++) {
                if (cost[(size_t)i * tk->lost.n + j] >= 0.15)
                    continue;
                struct strack *a = tk->tracked.t[i], *b = tk->lost.t[j];
                if (a->frame_id - a->start_frame > b->frame_id - b->start_frame)
                    dup_b[j] = true;
                else
                    dup_a[i] = true;
            }
        free(cost);
        k = 0;
        for (int i = 0; i < tk->tracked.n; i++)
            if (!dup_a[i])
                tk->tracked.t[k++] = tk->tracked.t[i];
        tk->tracked.n = k;
        k = 0;
        for (int j = 0; j < tk->lost.n; j++)
            if (!dup_b[j])
                tk->lost.t[k++] = tk->lost.t[j];
        tk->lost.n = k;
        free(dup_a);
        free(dup_b);
    }
    out->n = 0;
    for (int i = 0; i < tk->tracked.n; i++)
        if (tk->tracked.t[i]->activated)
            tl_push(out, tk->tracked.t[i]);

    /* free what no list holds any more (the pointers are unique) */
    k = 0;
    for (int i = 0; i < tk->all.n; i++) {
        struct strack *s = tk->all.t[i];
        bool keep = false;
        for (int j = 0; j < tk->tracked.n && !keep; j++)
            keep = tk->tracked.t[j] == s;
        for (int j = 0; j < tk->lost.n && !keep; j++)
            keep = tk->lost.t[j] == s;
        for (int j = 0; j < tk->removed.n && !keep; j++)
            keep = tk->removed.t[j] == s;
        if (keep)
            tk->all.t[k++] = s;
        else
            free(s);
    }
    tk->all.n = k;
    free(dets.t);
    free(dets2.t);
    free(unconfirmed.t);
    free(pool.t);
    free(activated.t);
    free(refind.t);
    free(lost_new.t);
    free(rtracked.t);
    free(left.t);
}

/* update_with_detections: the input detections matched to the output
 * tracks at IoU >= 0.5, with their tracker ids; the others dropped. */
static struct wf_dets *tracker_run(struct tracker *tk, const struct wf_dets *in)
{
    int n = (int)in->n;
    double(*boxes)[4] = xmalloc(((size_t)n + 1) * sizeof *boxes);
    double *scores = xmalloc(((size_t)n + 1) * sizeof *scores);
    struct tlist tracks = {0};
    struct wf_dets *out = wf_dets_new();

    for (int i = 0; i < n; i++) {
        boxes[i][0] = in->d[i].x1;
        boxes[i][1] = in->d[i].y1;
        boxes[i][2] = in->d[i].x2;
        boxes[i][3] = in->d[i].y2;
        scores[i] = in->d[i].confidence;
    }
    tracker_update(tk, (const double(*)[4])boxes, scores, n, &tracks);
    if (tracks.n > 0 && n > 0) {
        double *cost = xmalloc((size_t)n * tracks.n * sizeof *cost);
        int *a_of = xmalloc((size_t)n * sizeof *a_of), *b_of = xmalloc((size_t)tracks.n * sizeof *b_of);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < tracks.n; j++) {
                double tb[4];
                st_tlbr(tracks.t[j], tb);
                cost[(size_t)i * tracks.n + j] = 1 - iou_tlbr(boxes[i], tb);
            }
        assign(cost, n, tracks.n, 0.5, a_of, b_of);
        for (int i = 0; i < n; i++) {
            /* a track not yet confirmed by minimum_consecutive_frames has
             * no id: supervision drops its box (tracker_id -1) */
            if (a_of[i] < 0 || tracks.t[a_of[i]]->external_id < 0)
                continue;
            struct wf_det *d = wf_dets_push_copy(out, &in->d[i]);
            d->tracker_id = tracks.t[a_of[i]]->external_id;
        }
        free(cost);
        free(a_of);
        free(b_of);
    }
    free(boxes);
    free(scores);
    free(tracks.t);
    return out;
}

/* v3's instance cache: true when id was reported before (then it is
 * moved to the most recent end); ids beyond cache_size are forgotten. */
static bool seen_record(struct tracker *tk, int64_t id)
{
    for (size_t i = 0; i < tk->nseen; i++)
        if (tk->seen[i] == id) {
            memmove(&tk->seen[i], &tk->seen[i + 1], (tk->nseen - i - 1) * sizeof *tk->seen);
            tk->seen[tk->nseen - 1] = id;
            return true;
        }
    if (tk->nseen == tk->cache_size && tk->nseen > 0) {
        memmove(&tk->seen[0], &tk->seen[1], (tk->nseen - 1) * sizeof *tk->seen);
        tk->nseen--;
    }
    if (tk->nseen == tk->seen_cap) {
        tk->seen_cap = tk->seen_cap ? tk->seen_cap * 2 : 64;
        tk->seen = xrealloc(tk->seen, tk->seen_cap * sizeof *tk->seen);
    }
    if (tk->cache_size > 0)
        tk->seen[tk->nseen++] = id;
    return false;
}

/* video_identifier and fps of element i: the metadata field (v1) or the
 * image's video_metadata (v2+), synthesised as WORKFLOWS.md 1 says. */
static const char *video_of(struct wf_call *c, size_t i, bool from_image, double *fps, const json_t **meta)
{
    const json_t *vm = NULL;
    const char *id = NULL;
    if (from_image) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        vm = im ? im->video_metadata : NULL;
        id = im ? im->parent_id : NULL;
    } else {
        vm = wf_arg_json(c, i, "metadata");
    }
    *fps = 30;
    if (json_is_object(vm)) {
        if (json_string_value(json_object_get(vm, "video_identifier")))
            id = json_string_value(json_object_get(vm, "video_identifier"));
        const json_t *f = json_object_get(vm, "fps");
        *fps = json_is_number(f) ? json_number_value(f) : 0;
    }
    if (meta)
        *meta = vm;
    return id ? id : "image";
}

/* The frame's time in seconds: frame_number / fps for a video file, else
 * now (Roboflow's analytics blocks). */
static double frame_time(const json_t *vm, double fps)
{
    if (json_is_true(json_object_get(vm, "comes_from_video_file")) && fps != 0)
        return json_number_value(json_object_get(vm, "frame_number")) / fps;
    return (double)time_now_ms() / 1000.0;
}

/* The blocks that follow tracks refuse untracked detections. */
static int need_tracked(struct wf_call *c, const struct wf_dets *ds, const char *block)
{
    for (size_t k = 0; ds && k < ds->n; k++)
        if (ds->d[k].tracker_id == WF_NO_TRACKER)
            return wf_call_fail(c, "tracker_id not initialized: %s requires tracked detections "
                                   "(put a byte_tracker step before it)", block);
    return 0;
}

static int tracker_block(struct wf_call *c, int version)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        double fps;
        const char *vid = video_of(c, i, version >= 2, &fps, NULL);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        if (ds && ds->n > TRACK_MAX_DETS)
            return wf_call_fail(c, "%zu detections in one frame: byte_tracker takes at most %d", ds->n,
                                TRACK_MAX_DETS);
        void **slot = wf_call_state(c, vid, tracker_free);
        if (!slot)
            return wf_call_fail(c, "too many videos tracked at once (at most %d)", WF_STATE_MAX);
        struct tracker *tk = *slot;
        if (!tk) {
            tk = xcalloc(1, sizeof *tk);
            tk->act_thr = wf_arg_double(c, i, "track_activation_threshold", 0.25);
            tk->match_thr = wf_arg_double(c, i, "minimum_matching_threshold", 0.8);
            tk->det_thr = tk->act_thr + 0.1;
            double buf = (double)wf_arg_int(c, i, "lost_track_buffer", 30);
            tk->max_time_lost = (int)(fps / 30.0 * buf);
            tk->min_frames = (int)MAX(1, wf_arg_int(c, i, "minimum_consecutive_frames", 1));
            tk->next_external = 1;
            /* bounded: each new id is looked up in the cache (linear) */
            tk->cache_size = version >= 3 ? (size_t)MIN(100000, MAX(0, wf_arg_int(c, i, "instances_cache_size", 16384))) : 0;
            *slot = tk;
        }
        struct wf_dets empty = {0};
        struct wf_dets *out = tracker_run(tk, ds ? ds : &empty);
        if (version >= 3) {
            struct wf_dets *fresh = wf_dets_new(), *seen = wf_dets_new();
            for (size_t k = 0; k < out->n; k++)
                wf_dets_push_copy(seen_record(tk, out->d[k].tracker_id) ? seen : fresh, &out->d[k]);
            wf_out_dets(c, i, "new_instances", fresh);
            wf_out_dets(c, i, "already_seen_instances", seen);
        }
        wf_out_dets(c, i, "tracked_detections", out);
    }
    return 0;
}

static int bt1_run(struct wf_call *c) { return tracker_block(c, 1); }
static int bt2_run(struct wf_call *c) { return tracker_block(c, 2); }
static int bt3_run(struct wf_call *c) { return tracker_block(c, 3); }

/* ---- line counter --------------------------------------------------------------------- */

struct line_zone {
    double x1, y1, x2, y2;
    int anchors[4];
    int nanchors;
    int64_t count_in, count_out;
    /* last side seen per tracker id (true: the "in" side) */
    int64_t *ids;
    bool *side;
    size_t n, cap;
};

static void line_zone_free(void *p)
{
    struct line_zone *z = p;
    free(z->ids);
    free(z->side);
    free(z);
}

static const char *const anchor_names[] = {"CENTER",      "CENTER_LEFT",   "CENTER_RIGHT", "TOP_CENTER",
                                           "TOP_LEFT",    "TOP_RIGHT",     "BOTTOM_LEFT",  "BOTTOM_CENTER",
                                           "BOTTOM_RIGHT", "CENTER_OF_MASS", NULL};
enum { A_C, A_CL, A_CR, A_TC, A_TL, A_TR, A_BL, A_BC, A_BR, A_COM };

/* Index of an sv.Position name, or -1 (a failure written to c). */
static int anchor_index(struct wf_call *c, const char *name)
{
    for (int k = 0; name && anchor_names[k]; k++)
        if (!strcmp(anchor_names[k], name))
            return k;
    wf_call_fail(c, "triggering_anchor '%.40s' is not a position (CENTER, BOTTOM_CENTER, TOP_LEFT, ...)",
                 name ? name : "");
    return -1;
}

static void anchor_xy(const struct wf_det *d, int a, double *x, double *y)
{
    double cx = (d->x1 + d->x2) / 2, cy = (d->y1 + d->y2) / 2;
    switch (a) {
    case A_CL: *x = d->x1; *y = cy; break;
    case A_CR: *x = d->x2; *y = cy; break;
    case A_TC: *x = cx; *y = d->y1; break;
    case A_TL: *x = d->x1; *y = d->y1; break;
    case A_TR: *x = d->x2; *y = d->y1; break;
    case A_BL: *x = d->x1; *y = d->y2; break;
    case A_BC: *x = cx; *y = d->y2; break;
    case A_BR: *x = d->x2; *y = d->y2; break;
    default: *x = cx; *y = cy; break; /* CENTER; CENTER_OF_MASS of a box */
    }
}

static double cross(double ax, double ay, double bx, double by, double px, double py)
{
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

/* 1 crossed in, -1 crossed out, 0 neither (sv.LineZone.trigger, minimum
 * crossing threshold 1). */
static int line_zone_trigger(struct line_zone *z, const struct wf_det *d)
{
    double len = hypot(z->x2 - z->x1, z->y2 - z->y1);
    double ux = (z->x2 - z->x1) / len, uy = (z->y2 - z->y1) / len, px = -uy, py = ux;
    bool left = false, right = false;
    for (int k = 0; k < z->nanchors; k++) {
        double x, y;
        anchor_xy(d, z->anchors[k], &x, &y);
        /* between the perpendiculars through both ends */
        double c1 = cross(z->x1, z->y1, z->x1 + px, z->y1 + py, x, y);
        double c2 = cross(z->x2, z->y2, z->x2 - px, z->y2 - py, x, y);
        if ((c1 > 0) != (c2 > 0))
            return 0;
        if (cross(z->x1, z->y1, z->x2, z->y2, x, y) < 0)
            left = true;
        else
            right = true;
    }
    if (left && right)
        return 0;
    for (size_t i = 0; i < z->n; i++) {
        if (z->ids[i] != d->tracker_id)
            continue;
        if (z->side[i] == left)
            return 0;
        z->side[i] = left;
        if (left)
            z->count_in++;
        else
            z->count_out++;
        return left ? 1 : -1;
    }
    if (z->n == z->cap) {
        z->cap = z->cap ? z->cap * 2 : 16;
        z->ids = xrealloc(z->ids, z->cap * sizeof *z->ids);
        z->side = xrealloc(z->side, z->cap * sizeof *z->side);
    }
    z->ids[z->n] = d->tracker_id;
    z->side[z->n++] = left;
    return 0;
}

static bool num2(const json_t *p, double *x, double *y)
{
    if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_number(json_array_get(p, 0)) ||
        !json_is_number(json_array_get(p, 1)))
        return false;
    *x = json_number_value(json_array_get(p, 0));
    *y = json_number_value(json_array_get(p, 1));
    return true;
}

static int counter_block(struct wf_call *c, int version)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        double fps;
        const char *vid = video_of(c, i, version >= 2, &fps, NULL);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        if (need_tracked(c, ds, "line_counter") < 0)
            return ERR_INVALID;
        void **slot = wf_call_state(c, vid, line_zone_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct line_zone *z = *slot;
        if (!z) {
            const json_t *seg = wf_arg_json(c, i, "line_segment");
            const char *anchor = wf_arg_str(c, i, "triggering_anchor");
            double x1, y1, x2, y2;
            if (!json_is_array(seg) || json_array_size(seg) != 2 || !num2(json_array_get(seg, 0), &x1, &y1) ||
                !num2(json_array_get(seg, 1), &x2, &y2))
                return wf_call_fail(c, "line_segment must be a list of two [x, y] points");
            if (x1 == x2 && y1 == y2)
                return wf_call_fail(c, "line_segment must have two different points");
            z = xcalloc(1, sizeof *z);
            z->x1 = x1;
            z->y1 = y1;
            z->x2 = x2;
            z->y2 = y2;
            if (anchor) {
                int a = anchor_index(c, anchor);
                if (a < 0) {
                    line_zone_free(z);
                    return ERR_INVALID;
                }
                z->anchors[0] = a;
                z->nanchors = 1;
            } else { /* sv.LineZone's default: the four corners */
                z->anchors[0] = A_TL;
                z->anchors[1] = A_TR;
                z->anchors[2] = A_BL;
                z->anchors[3] = A_BR;
                z->nanchors = 4;
            }
            *slot = z;
        }
        struct wf_dets *din = version >= 2 ? wf_dets_new() : NULL, *dout = version >= 2 ? wf_dets_new() : NULL;
        for (size_t k = 0; ds && k < ds->n; k++) {
            int r = line_zone_trigger(z, &ds->d[k]);
            if (r > 0 && din)
                wf_dets_push_copy(din, &ds->d[k]);
            else if (r < 0 && dout)
                wf_dets_push_copy(dout, &ds->d[k]);
        }
        wf_out_json(c, i, "count_in", json_integer((json_int_t)z->count_in));
        wf_out_json(c, i, "count_out", json_integer((json_int_t)z->count_out));
        if (version >= 2) {
            wf_out_dets(c, i, "detections_in", din);
            wf_out_dets(c, i, "detections_out", dout);
        }
    }
    return 0;
}

static int lc1_run(struct wf_call *c) { return counter_block(c, 1); }
static int lc2_run(struct wf_call *c) { return counter_block(c, 2); }

/* ---- time in zone ---------------------------------------------------------------------- */

struct tiz {
    int64_t *ids;
    double *start;
    size_t n, cap;
};

static void tiz_free(void *p)
{
    struct tiz *t = p;
    free(t->ids);
    free(t->start);
    free(t);
}

static ssize_t tiz_find(const struct tiz *t, int64_t id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->ids[i] == id)
            return (ssize_t)i;
    return -1;
}

static void tiz_del(struct tiz *t, size_t i)
{
    t->ids[i] = t->ids[t->n - 1];
    t->start[i] = t->start[t->n - 1];
    t->n--;
}

#define TIZ_MAX_POINTS 10000 /* points over all zones of one step */

struct poly {
    const json_t *pts; /* borrowed array of [x, y] */
    double xmax, ymax;
};

/* cv2.fillPoly's pixels: inside, or on an edge. */
static bool poly_contains(const json_t *pts, double px, double py)
{
    size_t n = json_array_size(pts);
    bool in = false;
    for (size_t i = 0, j = n - 1; i < n; j = i++) {
        double xi, yi, xj, yj;
        num2(json_array_get(pts, i), &xi, &yi);
        num2(json_array_get(pts, j), &xj, &yj);
        /* on the edge (integer pixel within half a pixel of it) */
        double dx = xj - xi, dy = yj - yi, len2 = dx * dx + dy * dy;
        double t = len2 > 0 ? ((px - xi) * dx + (py - yi) * dy) / len2 : 0;
        t = fmax(0, fmin(1, t));
        if (hypot(xi + t * dx - px, yi + t * dy - py) <= 0.5)
            return true;
        if ((yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi)
            in = !in;
    }
    return in;
}

/* zone: one polygon ([[x, y], ...], at least 3 points) or, for v3, a list
 * of them.  Returns the number of polygons put in out (<= max), or -1 with
 * a message. */
static int zones_parse(struct wf_call *c, const json_t *zone, bool many, struct poly *out, int max)
{
    const json_t *first = json_array_get(zone, 0);
    bool nested = json_is_array(first) && json_is_array(json_array_get(first, 0));
    size_t npoly = nested ? json_array_size(zone) : 1, total = 0;
    if (!json_is_array(zone) || (nested && !many) || npoly > (size_t)max)
        return wf_call_fail(c, "zone must be a list of [x, y] points%s", many ? " or a list of such lists" : ""),
               -1;
    for (size_t k = 0; k < npoly; k++) {
        const json_t *pts = nested ? json_array_get(zone, k) : zone;
        if (!json_is_array(pts) || json_array_size(pts) < 3)
            return wf_call_fail(c, "zone must be a list containing more than 2 points"), -1;
        total += json_array_size(pts);
        if (total > TIZ_MAX_POINTS)
            return wf_call_fail(c, "zone has more than %d points", TIZ_MAX_POINTS), -1;
        out[k].pts = pts;
        out[k].xmax = out[k].ymax = 0;
        for (size_t i = 0; i < json_array_size(pts); i++) {
            double x, y;
            if (!num2(json_array_get(pts, i), &x, &y))
                return wf_call_fail(c, "each point of zone must be a list of two numbers"), -1;
            out[k].xmax = fmax(out[k].xmax, floor(x));
            out[k].ymax = fmax(out[k].ymax, floor(y));
        }
    }
    return (int)npoly;
}

/* sv.PolygonZone.trigger for one detection and one anchor: the box clipped
 * to the polygon's extent, the anchor rounded up to a pixel. */
static bool in_zone(const struct poly *z, const struct wf_det *d, int anchor)
{
    struct wf_det cl = *d;
    double w = z->xmax + 1, h = z->ymax + 1, x, y;
    cl.x1 = (float)fmin(fmax(d->x1, 0), w);
    cl.x2 = (float)fmin(fmax(d->x2, 0), w);
    cl.y1 = (float)fmin(fmax(d->y1, 0), h);
    cl.y2 = (float)fmin(fmax(d->y2, 0), h);
    anchor_xy(&cl, anchor, &x, &y);
    return poly_contains(z->pts, ceil(x), ceil(y));
}

#define TIZ_MAX_ZONES 64

static int tiz_block(struct wf_call *c, int version)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        double fps;
        const json_t *vm;
        const char *vid = video_of(c, i, version >= 2, &fps, &vm);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        if (need_tracked(c, ds, "time_in_zone") < 0)
            return ERR_INVALID;
        struct poly zones[TIZ_MAX_ZONES];
        int nz = zones_parse(c, wf_arg_json(c, i, "zone"), version >= 3, zones, TIZ_MAX_ZONES);
        if (nz < 0)
            return ERR_INVALID;
        int anchor = anchor_index(c, wf_arg_str(c, i, "triggering_anchor"));
        if (anchor < 0)
            return ERR_INVALID;
        bool remove_out = wf_arg_bool(c, i, "remove_out_of_zone_detections", true);
        bool reset_out = wf_arg_bool(c, i, "reset_out_of_zone_detections", true);
        void **slot = wf_call_state(c, vid, tiz_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct tiz *t = *slot;
        if (!t)
            *slot = t = xcalloc(1, sizeof *t);
        double ts = frame_time(vm, fps);
        struct wf_dets *out = wf_dets_new();
        for (size_t k = 0; ds && k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            bool inz = false;
            for (int z = 0; z < nz && !inz; z++)
                inz = in_zone(&zones[z], d, anchor);
            ssize_t at = tiz_find(t, d->tracker_id);
            if (!inz && at >= 0 && reset_out) {
                tiz_del(t, (size_t)at);
                at = -1;
            }
            if (!inz && remove_out)
                continue;
            double secs = 0;
            if (inz) {
                if (at < 0) {
                    if (t->n == t->cap) {
                        t->cap = t->cap ? t->cap * 2 : 16;
                        t->ids = xrealloc(t->ids, t->cap * sizeof *t->ids);
                        t->start = xrealloc(t->start, t->cap * sizeof *t->start);
                    }
                    t->ids[t->n] = d->tracker_id;
                    t->start[t->n] = ts;
                    at = (ssize_t)t->n++;
                }
                secs = ts - t->start[at];
            } else if (at >= 0) {
                tiz_del(t, (size_t)at);
            }
            struct wf_det *o = wf_dets_push_copy(out, d);
            if (!o->extra)
                o->extra = json_object();
            json_object_set_new(o->extra, "time_in_zone", json_real(secs));
        }
        wf_out_dets(c, i, "timed_detections", out);
    }
    return 0;
}

static int tiz1_run(struct wf_call *c) { return tiz_block(c, 1); }
static int tiz2_run(struct wf_call *c) { return tiz_block(c, 2); }
static int tiz3_run(struct wf_call *c) { return tiz_block(c, 3); }

/* ---- velocity --------------------------------------------------------------------------- */

/* Per video: each tracker's last centre and time, and its smoothed
 * velocity (Roboflow's VelocityBlockV1). */
struct vel_entry {
    int64_t id;
    double x, y, t;
    double svx, svy;
};

struct vel {
    struct vel_entry *e;
    size_t n, cap;
};

static void vel_free(void *p)
{
    struct vel *v = p;
    free(v->e);
    free(v);
}

#define VEL_MAX_TRACKS 100000 /* per video; the oldest ids go first beyond */

static int vel_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        double fps;
        const json_t *vm;
        const char *vid = video_of(c, i, true, &fps, &vm);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        double alpha = wf_arg_double(c, i, "smoothing_alpha", 0.5), ppm = wf_arg_double(c, i, "pixels_per_meter", 1.0);
        if (need_tracked(c, ds, "velocity") < 0)
            return ERR_INVALID;
        if (!(alpha > 0 && alpha <= 1))
            return wf_call_fail(c, "smoothing_alpha must be between 0 (exclusive) and 1 (inclusive)");
        if (!(ppm > 0))
            return wf_call_fail(c, "pixels_per_meter must be greater than 0");
        void **slot = wf_call_state(c, vid, vel_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct vel *v = *slot;
        if (!v)
            *slot = v = xcalloc(1, sizeof *v);
        double ts = frame_time(vm, fps);
        struct wf_dets *out = wf_dets_new();
        for (size_t k = 0; ds && k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            double cx = (d->x1 + d->x2) / 2.0, cy = (d->y1 + d->y2) / 2.0, vx = 0, vy = 0;
            struct vel_entry *e = NULL;
            for (size_t q = 0; q < v->n && !e; q++)
                if (v->e[q].id == d->tracker_id)
                    e = &v->e[q];
            if (e && ts - e->t > 0) {
                vx = (cx - e->x) / (ts - e->t);
                vy = (cy - e->y) / (ts - e->t);
            }
            double svx = vx, svy = vy;
            if (e) {
                svx = alpha * vx + (1 - alpha) * e->svx;
                svy = alpha * vy + (1 - alpha) * e->svy;
            } else {
                if (v->n == VEL_MAX_TRACKS) {
                    memmove(&v->e[0], &v->e[1], (v->n - 1) * sizeof *v->e);
                    v->n--;
                }
                if (v->n == v->cap) {
                    v->cap = v->cap ? v->cap * 2 : 16;
                    v->e = xrealloc(v->e, v->cap * sizeof *v->e);
                }
                e = &v->e[v->n++];
                e->id = d->tracker_id;
            }
            e->x = cx;
            e->y = cy;
            e->t = ts;
            e->svx = svx;
            e->svy = svy;
            struct wf_det *o = wf_dets_push_copy(out, d);
            if (!o->extra)
                o->extra = json_object();
            json_object_set_new(o->extra, "velocity", json_pack("[f,f]", vx / ppm, vy / ppm));
            json_object_set_new(o->extra, "speed", json_real(hypot(vx, vy) / ppm));
            json_object_set_new(o->extra, "smoothed_velocity", json_pack("[f,f]", svx / ppm, svy / ppm));
            json_object_set_new(o->extra, "smoothed_speed", json_real(hypot(svx, svy) / ppm));
        }
        wf_out_dets(c, i, "velocity_detections", out);
    }
    return 0;
}

/* ---- track_class_lock -------------------------------------------------------------------- */

/* Per video: each tracker's class votes (Roboflow's TrackClassLockBlockV1):
 * before the lock, qualifying detections (confidence >= vote_confidence)
 * vote for their class; the leader locks once it has min_votes and leads
 * the runner-up by lead_margin.  After the lock a different class must be
 * seen switch_after frames in a row to take over.  Locked detections get
 * the locked class (and its class id) and the mean confidence of its
 * votes; a new tracker id can inherit a recently lost locked track whose
 * last box overlaps it (reattach_window, reattach_iou).  Tracks unseen for
 * state_ttl frames are forgotten. */
struct tcl_class {
    char *name;
    int votes;       /* in the vote table when in_votes */
    double conf;
    bool in_votes;
    bool has_id;
    int id;
};

struct tcl_track {
    int64_t id;
    struct tcl_class *c; /* insertion order of the vote table */
    size_t nc, cap;
    int locked;          /* index into c, -1 none */
    int64_t last_seen;
    int challenger;      /* index into c, -1 none */
    int streak;
    double streak_conf;
    bool has_box;
    float box[4];
};

struct tcl {
    struct tcl_track *t; /* insertion order (a Python dict) */
    size_t n, cap;
    int64_t frame;
};

#define TCL_MAX_TRACKS 100000 /* per video; the oldest go first beyond */
#define TCL_MAX_CLASSES 1024  /* class names remembered per track */

static void tcl_track_release(struct tcl_track *t)
{
    for (size_t k = 0; k < t->nc; k++)
        free(t->c[k].name);
    free(t->c);
}

static void tcl_free(void *p)
{
    struct tcl *v = p;
    for (size_t k = 0; v && k < v->n; k++)
        tcl_track_release(&v->t[k]);
    if (v)
        free(v->t);
    free(v);
}

static int tcl_class(struct tcl_track *t, const char *name)
{
    for (size_t k = 0; k < t->nc; k++)
        if (!strcmp(t->c[k].name, name))
            return (int)k;
    if (t->nc == TCL_MAX_CLASSES)
        return -1;
    if (t->nc == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->c = xrealloc(t->c, t->cap * sizeof *t->c);
    }
    t->c[t->nc] = (struct tcl_class){xstrdup(name), 0, 0, false, false, 0};
    return (int)t->nc++;
}

static double tcl_iou(const float *a, const float *b)
{
    double iw = MIN(a[2], b[2]) - MAX(a[0], b[0]), ih = MIN(a[3], b[3]) - MAX(a[1], b[1]);
    if (iw <= 0 || ih <= 0)
        return 0;
    double inter = iw * ih, uni = ((double)a[2] - a[0]) * ((double)a[3] - a[1]) +
                                  ((double)b[2] - b[0]) * ((double)b[3] - b[1]) - inter;
    return uni > 0 ? inter / uni : 0;
}

static int tcl_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        double fps;
        const char *vid = video_of(c, i, true, &fps, NULL);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        int64_t min_votes = wf_arg_int(c, i, "min_votes", 10);
        double vote_conf = wf_arg_double(c, i, "vote_confidence", 0.8);
        int64_t lead = wf_arg_int(c, i, "lead_margin", 3);
        int64_t switch_after = wf_arg_int(c, i, "switch_after", 15);
        int64_t ttl = wf_arg_int(c, i, "state_ttl", 300);
        int64_t window = wf_arg_int(c, i, "reattach_window", 30);
        double reiou = wf_arg_double(c, i, "reattach_iou", 0.3);
        if (min_votes < 1)
            return wf_call_fail(c, "`min_votes` must be >= 1, got %lld", (long long)min_votes);
        if (!(vote_conf >= 0 && vote_conf <= 1))
            return wf_call_fail(c, "`vote_confidence` must be within [0.0, 1.0], got %g", vote_conf);
        if (lead < 0)
            return wf_call_fail(c, "`lead_margin` must be >= 0, got %lld", (long long)lead);
        if (switch_after < 1)
            return wf_call_fail(c, "`switch_after` must be >= 1, got %lld", (long long)switch_after);
        if (ttl < 1)
            return wf_call_fail(c, "`state_ttl` must be >= 1, got %lld", (long long)ttl);
        if (window < 0)
            return wf_call_fail(c, "`reattach_window` must be >= 0, got %lld", (long long)window);
        if (!(reiou >= 0 && reiou <= 1))
            return wf_call_fail(c, "`reattach_iou` must be within [0.0, 1.0], got %g", reiou);
        if (window > ttl)
            return wf_call_fail(c, "`reattach_window` (%lld) must not exceed `state_ttl` (%lld)",
                                (long long)window, (long long)ttl);
        if (!ds)
            continue;
        if (need_tracked(c, ds, "track_class_lock") < 0)
            return ERR_INVALID;
        void **slot = wf_call_state(c, vid, tcl_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct tcl *v = *slot;
        if (!v)
            *slot = v = xcalloc(1, sizeof *v);
        int64_t frame = ++v->frame;
        struct wf_dets *out = wf_dets_clone(ds);
        for (size_t k = 0; k < out->n; k++) {
            struct wf_det *d = &out->d[k];
            bool locked_flag = false;
            int64_t tid = d->tracker_id;
            struct tcl_track *t = NULL;
            size_t ti = 0;
            for (; ti < v->n && !t; ti++)
                if (v->t[ti].id == tid)
                    t = &v->t[ti];
            if (!t && tid >= 0) {
                /* _find_lock_to_inherit: a lost locked track, best IoU first */
                float box[4] = {d->x1, d->y1, d->x2, d->y2};
                size_t best = SIZE_MAX;
                double best_iou = 0;
                for (size_t q = 0; q < v->n; q++) {
                    struct tcl_track *o = &v->t[q];
                    bool active = false;
                    for (size_t a = 0; a < out->n && !active; a++)
                        active = out->d[a].tracker_id == o->id && out->d[a].tracker_id >= 0;
                    int64_t gap = frame - o->last_seen;
                    if (active || o->locked < 0 || !o->has_box || gap < 1 || gap > window)
                        continue;
                    double iou = tcl_iou(box, o->box);
                    if (iou >= reiou && iou > best_iou)
                        best = q, best_iou = iou;
                }
                if (best != SIZE_MAX) { /* tracks[tid] = tracks.pop(inherited) */
                    struct tcl_track moved = v->t[best];
                    memmove(&v->t[best], &v->t[best + 1], (v->n - best - 1) * sizeof *v->t);
                    moved.id = tid;
                    v->t[v->n - 1] = moved;
                    t = &v->t[v->n - 1];
                } else {
                    if (v->n == TCL_MAX_TRACKS) {
                        tcl_track_release(&v->t[0]);
                        memmove(&v->t[0], &v->t[1], (v->n - 1) * sizeof *v->t);
                        v->n--;
                    }
                    if (v->n == v->cap) {
                        v->cap = v->cap ? v->cap * 2 : 16;
                        v->t = xrealloc(v->t, v->cap * sizeof *v->t);
                    }
                    t = &v->t[v->n++];
                    memset(t, 0, sizeof *t);
                    t->id = tid, t->locked = -1, t->challenger = -1;
                }
            }
            if (!t) { /* a negative tracker id: left as is */
                if (!d->extra)
                    d->extra = json_object();
                json_object_set_new(d->extra, "class_locked", json_false());
                continue;
            }
            t->last_seen = frame;
            t->has_box = true;
            t->box[0] = d->x1, t->box[1] = d->y1, t->box[2] = d->x2, t->box[3] = d->y2;
            const char *cname = d->class_name ? d->class_name : "";
            double conf = d->confidence;
            bool qualifying = conf >= vote_conf;
            int ci = tcl_class(t, cname);
            if (ci >= 0 && t->locked < 0) {
                if (qualifying) {
                    if (!t->c[ci].in_votes)
                        t->c[ci].in_votes = true, t->c[ci].votes = 0, t->c[ci].conf = 0;
                    t->c[ci].votes++;
                    t->c[ci].conf += conf;
                    t->c[ci].has_id = true, t->c[ci].id = d->class_id;
                }
                /* sorted(votes, reverse=True) is stable: the first class with
                 * the most votes leads; the runner-up has the most of the rest */
                int top = -1, top_v = 0, runner_v = 0;
                for (size_t q = 0; q < t->nc; q++)
                    if (t->c[q].in_votes && (top < 0 || t->c[q].votes > top_v))
                        top = (int)q, top_v = t->c[q].votes;
                for (size_t q = 0; q < t->nc; q++)
                    if (t->c[q].in_votes && (int)q != top)
                        runner_v = MAX(runner_v, t->c[q].votes);
                if (top >= 0 && top_v >= min_votes && top_v - runner_v >= lead)
                    t->locked = top;
            } else if (ci >= 0) {
                if (qualifying && ci != t->locked) {
                    if (ci == t->challenger)
                        t->streak++, t->streak_conf += conf;
                    else {
                        t->challenger = ci, t->streak = 1, t->streak_conf = conf;
                        t->c[ci].has_id = true, t->c[ci].id = d->class_id;
                    }
                    if (t->streak >= switch_after) {
                        for (size_t q = 0; q < t->nc; q++)
                            t->c[q].in_votes = false;
                        t->locked = t->challenger;
                        t->c[ci].in_votes = true;
                        t->c[ci].votes = t->streak;
                        t->c[ci].conf = t->streak_conf;
                        t->challenger = -1, t->streak = 0, t->streak_conf = 0;
                    }
                } else
                    t->challenger = -1, t->streak = 0, t->streak_conf = 0;
            }
            if (t->locked >= 0) {
                struct tcl_class *lc = &t->c[t->locked];
                wf_det_set_str(&d->class_name, lc->name);
                if (lc->has_id)
                    d->class_id = lc->id;
                double denom = MAX(lc->in_votes ? lc->votes : 0, 1);
                d->confidence = (float)MIN(1.0, (lc->in_votes ? lc->conf : 0) / denom);
                locked_flag = true;
            }
            if (!d->extra)
                d->extra = json_object();
            json_object_set_new(d->extra, "class_locked", json_boolean(locked_flag));
        }
        /* forget stale tracks, keeping the order */
        size_t w = 0;
        for (size_t q = 0; q < v->n; q++) {
            if (frame - v->t[q].last_seen > ttl)
                tcl_track_release(&v->t[q]);
            else
                v->t[w++] = v->t[q];
        }
        v->n = w;
        wf_out_dets(c, i, "tracked_detections", out);
    }
    return 0;
}

/* ---- stabilize_detections ----------------------------------------------------------------- */

/* Roboflow's StabilizeTrackedDetectionsBlockV1, per video: the last raw
 * detection of each tracker; a velocity Kalman filter per tracker fed with
 * the displacement of the box's bottom-right corner (Roboflow's "centre"
 * x1 + |x2 - x1|, y1 + |y2 - y1|) averaged over smoothing_window_size
 * measurements; boxes blended with the previous raw box
 * (bbox_smoothing_coefficient); a tracker missing from the frame is output
 * at its last box moved by the predicted velocity (blended the same way)
 * until its measurement history runs out.  The filter's covariance stays
 * a multiple of the identity, so it is kept as one number. */
struct stab_cached {
    int64_t id;
    struct wf_det d; /* owned copy */
};

struct stab_kf {
    int64_t id;
    double v[2], p;
    double (*hist)[2]; /* newest first, at most win */
    size_t nh;
};

struct stab {
    struct stab_cached *c;
    size_t nc, capc;
    struct stab_kf *k;
    size_t nk, capk;
    size_t win; /* history length, fixed by the first call */
};

#define STAB_MAX_TRACKS 100000
#define STAB_MAX_WINDOW 1000

static void stab_free(void *p)
{
    struct stab *s = p;
    for (size_t q = 0; s && q < s->nc; q++)
        wf_det_release(&s->c[q].d);
    for (size_t q = 0; s && q < s->nk; q++)
        free(s->k[q].hist);
    if (s)
        free(s->c), free(s->k);
    free(s);
}

static struct stab_cached *stab_cached(struct stab *s, int64_t id)
{
    for (size_t q = 0; q < s->nc; q++)
        if (s->c[q].id == id)
            return &s->c[q];
    return NULL;
}

static struct stab_kf *stab_kf(struct stab *s, int64_t id)
{
    for (size_t q = 0; q < s->nk; q++)
        if (s->k[q].id == id)
            return &s->k[q];
    return NULL;
}

static void stab_corner(const struct wf_det *d, double *x, double *y)
{
    *x = (double)d->x1 + fabs((double)d->x2 - d->x1);
    *y = (double)d->y1 + fabs((double)d->y2 - d->y1);
}

static int stab_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        double fps;
        const char *vid = video_of(c, i, true, &fps, NULL);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        int64_t win = wf_arg_int(c, i, "smoothing_window_size", 3);
        double alpha = wf_arg_double(c, i, "bbox_smoothing_coefficient", 0.2);
        if (!ds)
            continue;
        if (win < 1 || win > STAB_MAX_WINDOW)
            return wf_call_fail(c, "smoothing_window_size must be in 1..%d", STAB_MAX_WINDOW);
        if (need_tracked(c, ds, "stabilize_detections") < 0)
            return ERR_INVALID;
        if (ds->n > STAB_MAX_TRACKS)
            return wf_call_fail(c, "more than %d detections", STAB_MAX_TRACKS);
        void **slot = wf_call_state(c, vid, stab_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct stab *s = *slot;
        if (!s) {
            *slot = s = xcalloc(1, sizeof *s);
            s->win = (size_t)win;
        }
        /* 1. measured velocities (a later duplicate id overwrites) */
        size_t n = ds->n;
        int64_t *mid = xcalloc(n + 1, sizeof *mid);
        double (*mv)[2] = xcalloc(n + 1, sizeof *mv);
        size_t nm = 0;
        for (size_t q = 0; q < n; q++) {
            const struct wf_det *d = &ds->d[q];
            struct stab_cached *pc = stab_cached(s, d->tracker_id);
            if (!pc)
                continue;
            double tx, ty, px, py;
            stab_corner(d, &tx, &ty);
            stab_corner(&pc->d, &px, &py);
            size_t z = 0;
            while (z < nm && mid[z] != d->tracker_id)
                z++;
            if (z == nm)
                mid[nm++] = d->tracker_id;
            mv[z][0] = tx - px, mv[z][1] = ty - py;
        }
        /* 2. the Kalman update, then predict every tracked vector */
        bool *updated = NULL;
        for (size_t z = 0; z < nm; z++) {
            struct stab_kf *k = stab_kf(s, mid[z]);
            if (k) {
                memmove(k->hist + 1, k->hist, MIN(k->nh, s->win - 1) * sizeof *k->hist);
                k->hist[0][0] = mv[z][0], k->hist[0][1] = mv[z][1];
                k->nh = MIN(k->nh + 1, s->win);
                double sx = 0, sy = 0;
                for (size_t h = 0; h < k->nh; h++)
                    sx += k->hist[h][0], sy += k->hist[h][1];
                sx /= (double)k->nh, sy /= (double)k->nh;
                double gain = k->p / (k->p + 0.01);
                k->v[0] += gain * (sx - k->v[0]);
                k->v[1] += gain * (sy - k->v[1]);
                k->p -= gain * k->p;
            } else {
                if (s->nk == s->capk) {
                    s->capk = s->capk ? s->capk * 2 : 16;
                    s->k = xrealloc(s->k, s->capk * sizeof *s->k);
                }
                k = &s->k[s->nk++];
                k->id = mid[z];
                k->v[0] = mv[z][0], k->v[1] = mv[z][1];
                k->p = 1.0;
                k->hist = xcalloc(s->win, sizeof *k->hist);
                k->hist[0][0] = mv[z][0], k->hist[0][1] = mv[z][1];
                k->nh = 1;
            }
        }
        size_t npred = s->nk;
        int64_t *pid = xcalloc(npred + 1, sizeof *pid);
        double (*pv)[2] = xcalloc(npred + 1, sizeof *pv);
        for (size_t q = 0; q < s->nk; q++) { /* predict: F = I, P += Q */
            s->k[q].p += 0.001;
            pid[q] = s->k[q].id, pv[q][0] = s->k[q].v[0], pv[q][1] = s->k[q].v[1];
        }
        updated = xcalloc(s->nk + 1, sizeof *updated);
        for (size_t q = 0; q < s->nk; q++)
            for (size_t z = 0; z < nm && !updated[q]; z++)
                updated[q] = mid[z] == s->k[q].id;
        size_t w = 0;
        for (size_t q = 0; q < s->nk; q++) {
            struct stab_kf *k = &s->k[q];
            if (!updated[q] && k->nh) { /* history.popleft(): drop the newest */
                memmove(k->hist, k->hist + 1, (k->nh - 1) * sizeof *k->hist);
                k->nh--;
            }
            if (!updated[q] && !k->nh)
                free(k->hist);
            else
                s->k[w++] = *k;
        }
        s->nk = w;
        free(updated);
        /* 3. this frame's detections, blended with the previous raw box */
        struct wf_dets *out = wf_dets_new();
        int64_t *oid = xcalloc(n + npred + 1, sizeof *oid);
        size_t no = 0;
        for (size_t q = 0; q < n; q++) {
            const struct wf_det *d = &ds->d[q];
            struct stab_cached *pc = stab_cached(s, d->tracker_id);
            struct wf_det cur;
            wf_det_copy(&cur, d);
            if (pc) {
                cur.x1 = (float)(alpha * d->x1 + (1 - alpha) * pc->d.x1);
                cur.y1 = (float)(alpha * d->y1 + (1 - alpha) * pc->d.y1);
                cur.x2 = (float)(alpha * d->x2 + (1 - alpha) * pc->d.x2);
                cur.y2 = (float)(alpha * d->y2 + (1 - alpha) * pc->d.y2);
            }
            size_t z = 0; /* an ordered dict: a repeated id keeps its place */
            while (z < no && oid[z] != d->tracker_id)
                z++;
            if (z == no) {
                oid[no++] = d->tracker_id;
                wf_dets_push_copy(out, &cur);
            } else {
                wf_det_release(&out->d[z]);
                wf_det_copy(&out->d[z], &cur);
            }
            wf_det_release(&cur);
            if (pc) {
                wf_det_release(&pc->d);
                wf_det_copy(&pc->d, d);
            } else {
                if (s->nc == s->capc) {
                    s->capc = s->capc ? s->capc * 2 : 16;
                    s->c = xrealloc(s->c, s->capc * sizeof *s->c);
                }
                s->c[s->nc].id = d->tracker_id;
                wf_det_copy(&s->c[s->nc++].d, d);
            }
        }
        /* 4. trackers not in this frame: their last box moved by the
         * predicted velocity, blended; the cached box becomes that */
        for (size_t q = 0; q < npred; q++) {
            bool present = false;
            for (size_t z = 0; z < no && !present; z++)
                present = oid[z] == pid[q];
            struct stab_cached *pc = present ? NULL : stab_cached(s, pid[q]);
            if (!pc)
                continue;
            double vx = pv[q][0], vy = pv[q][1];
            struct wf_det *d = &pc->d;
            d->x1 = (float)(alpha * (d->x1 + vx) + (1 - alpha) * d->x1);
            d->y1 = (float)(alpha * (d->y1 + vy) + (1 - alpha) * d->y1);
            d->x2 = (float)(alpha * (d->x2 + vx) + (1 - alpha) * d->x2);
            d->y2 = (float)(alpha * (d->y2 + vy) + (1 - alpha) * d->y2);
            oid[no++] = pid[q];
            wf_dets_push_copy(out, d);
        }
        /* 5. forget cached detections that are neither filtered nor output */
        w = 0;
        for (size_t q = 0; q < s->nc; q++) {
            bool keep = stab_kf(s, s->c[q].id) != NULL;
            for (size_t z = 0; z < no && !keep; z++)
                keep = oid[z] == s->c[q].id;
            if (keep)
                s->c[w++] = s->c[q];
            else
                wf_det_release(&s->c[q].d);
        }
        s->nc = w;
        free(mid), free(mv), free(pid), free(pv), free(oid);
        wf_out_dets(c, i, "tracked_detections", out);
    }
    return 0;
}

/* ---- manifests (spec/blocks.json) ---------------------------------------------------------- */

#define F_TRACK_COMMON                                                                          \
    {"track_activation_threshold", NULL, WF_FT_FLOAT01, "0.25", WF_K_NUMBER, 0, NULL},          \
    {"lost_track_buffer", NULL, WF_FT_INT_NONNEG, "30", WF_K_INT, 0, NULL},                      \
    {"minimum_matching_threshold", NULL, WF_FT_FLOAT01, "0.8", WF_K_NUMBER, 0, NULL},            \
    {"minimum_consecutive_frames", NULL, WF_FT_INT_POS, "1", WF_K_INT, 0, NULL}

static const struct wf_field bt1_fields[] = {
    {"metadata", NULL, WF_FT_DICT, NULL, WF_K_VIDEO_META, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    F_TRACK_COMMON,
};
static const struct wf_field bt2_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    F_TRACK_COMMON,
};
static const struct wf_field bt3_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    F_TRACK_COMMON,
    {"instances_cache_size", NULL, WF_FT_INT_NONNEG, "16384", 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output bt12_outs[] = {{"tracked_detections", WF_K_OD}};
static const struct wf_output bt3_outs[] = {
    {"tracked_detections", WF_K_OD}, {"new_instances", WF_K_OD}, {"already_seen_instances", WF_K_OD}};

static const struct wf_field lc1_fields[] = {
    {"metadata", NULL, WF_FT_DICT, NULL, WF_K_VIDEO_META, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"line_segment", NULL, WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},
    {"triggering_anchor", NULL, WF_FT_STRING, "\"CENTER\"", WF_K_STRING, 0, NULL},
};
static const struct wf_field lc2_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"line_segment", NULL, WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},
    {"triggering_anchor", NULL, WF_FT_STRING, "null", WF_K_STRING, WF_F_NULLABLE, NULL},
};
static const struct wf_output lc1_outs[] = {{"count_in", WF_K_INT}, {"count_out", WF_K_INT}};
static const struct wf_output lc2_outs[] = {{"count_in", WF_K_INT},
                                            {"count_out", WF_K_INT},
                                            {"detections_in", WF_K_OD | WF_K_IS},
                                            {"detections_out", WF_K_OD | WF_K_IS}};

#define F_TIZ_COMMON                                                                              \
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},            \
    {"zone", NULL, WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},                                           \
    {"triggering_anchor", NULL, WF_FT_STRING, "\"CENTER\"", WF_K_STRING, 0, NULL},                \
    {"remove_out_of_zone_detections", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},                \
    {"reset_out_of_zone_detections", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL}

static const struct wf_field tiz1_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"metadata", NULL, WF_FT_DICT, NULL, WF_K_VIDEO_META, WF_F_SELECTOR_ONLY, NULL},
    F_TIZ_COMMON,
};
static const struct wf_field tiz2_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    F_TIZ_COMMON,
};
static const struct wf_output tiz_outs[] = {{"timed_detections", WF_K_OD | WF_K_IS}};

static const struct wf_field vel_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"smoothing_alpha", NULL, WF_FT_FLOAT, "0.5", WF_K_NUMBER, 0, NULL},
    {"pixels_per_meter", NULL, WF_FT_FLOAT, "1.0", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output vel_outs[] = {{"velocity_detections", WF_K_DETS}};

#define BLOCK(var, fields, outs, fn, ...)                                                     \
    static const char *const var##_types[] = {__VA_ARGS__, NULL};                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,       \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL};

BLOCK(bt1, bt1_fields, bt12_outs, bt1_run, "roboflow_core/byte_tracker@v1", "ByteTracker")
BLOCK(bt2, bt2_fields, bt12_outs, bt2_run, "roboflow_core/byte_tracker@v2")
BLOCK(bt3, bt3_fields, bt3_outs, bt3_run, "roboflow_core/byte_tracker@v3")
BLOCK(lc1, lc1_fields, lc1_outs, lc1_run, "roboflow_core/line_counter@v1", "LineCounter")
BLOCK(lc2, lc2_fields, lc2_outs, lc2_run, "roboflow_core/line_counter@v2")
BLOCK(tiz1, tiz1_fields, tiz_outs, tiz1_run, "roboflow_core/time_in_zone@v1", "TimeInZone")
BLOCK(tiz2, tiz2_fields, tiz_outs, tiz2_run, "roboflow_core/time_in_zone@v2")
BLOCK(tiz3, tiz2_fields, tiz_outs, tiz3_run, "roboflow_core/time_in_zone@v3")

BLOCK(vel1, vel_fields, vel_outs, vel_run, "roboflow_core/velocity@v1")

static const struct wf_field tcl_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"min_votes", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"vote_confidence", NULL, WF_FT_FLOAT, "0.8", WF_K_NUMBER, 0, NULL},
    {"lead_margin", NULL, WF_FT_INT, "3", WF_K_INT, 0, NULL},
    {"switch_after", NULL, WF_FT_INT, "15", WF_K_INT, 0, NULL},
    {"state_ttl", NULL, WF_FT_INT, "300", WF_K_INT, 0, NULL},
    {"reattach_window", NULL, WF_FT_INT, "30", WF_K_INT, 0, NULL},
    {"reattach_iou", NULL, WF_FT_FLOAT, "0.3", WF_K_NUMBER, 0, NULL},
};
static const struct wf_output tcl_outs[] = {{"tracked_detections", WF_K_DETS}};
BLOCK(tcl1, tcl_fields, tcl_outs, tcl_run, "roboflow_core/track_class_lock@v1")

static const struct wf_field stab_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"smoothing_window_size", NULL, WF_FT_INT, "3", WF_K_INT, WF_F_NULLABLE, NULL},
    {"bbox_smoothing_coefficient", NULL, WF_FT_FLOAT01, "0.2", WF_K_NUMBER, WF_F_NULLABLE, NULL},
};
static const struct wf_output stab_outs[] = {{"tracked_detections", WF_K_OD | WF_K_IS}};
BLOCK(stab1, stab_fields, stab_outs, stab_run, "roboflow_core/stabilize_detections@v1")


const struct wf_block *const wf_blocks_analytics[] = {&bt1, &bt2, &bt3, &lc1, &lc2, &tiz1, &tiz2, &tiz3, &vel1, &tcl1, &stab1, NULL};
