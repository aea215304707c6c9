/*
 * blocks/ocsort.c — trackers_ocsort v1: the `trackers` package's OC-SORT
 * (OCSORTTracker, OCSORTTracklet and trackers.utils.kalman_filter /
 * converters of roboflow/trackers, read, not copied) as Roboflow's block
 * core_steps/trackers/ocsort/v1.py runs it, one tracker per
 * video_identifier in the run's state.
 *
 * Per tracklet a Kalman filter on (x centre, y centre, scale = w·h, aspect
 * = w / (h + 1e-6)) with velocities for x, y and scale: P0 = diag(10 ×4,
 * 10^4 ×3), Q = diag(1 ×4, 0.01, 0.01, 10^-4), R = diag(1, 1, 10, 10);
 * the update in Joseph form.  Each frame: detections under
 * high_conf_det_threshold dropped; every tracklet predicted (a negative
 * scale velocity zeroed first); association maximising IoU(predicted box,
 * detection) + direction_consistency_weight · confidence · (π/2 − angle
 * between the tracklet's direction and the direction from its observation
 * delta_t frames back to the detection) / π, pairs under
 * minimum_iou_threshold left unmatched; a second round (OCR) between the
 * last observations of unmatched tracklets and unmatched detections on
 * IoU alone; unmatched tracklets freeze their filter (ORU: on the next
 * match the filter is restored and re-updated along a linear virtual
 * trajectory in centre / width / height); tracklets unseen for more than
 * int(fps / 30 · lost_track_buffer) frames dropped; an id once a tracklet
 * has minimum_consecutive_frames consecutive updates (during the first
 * minimum_consecutive_frames frames, at once); new tracklets from the
 * detections left.  Output order as the package's: first-round matches,
 * second-round matches (the -1 ones are left out by the block), then the
 * FIFO instance cache of new / already seen ids as the other trackers.
 *
 * Differences: ids count from 0 per video (the package's counter is a
 * class attribute shared by the process); the optimal assignment breaks
 * exact ties of the cost matrix as assign.c does, not as scipy's
 * linear_sum_assignment; the direction term is computed in double where
 * the package casts it to float32.  The source followed is the package's
 * OC-SORT (the branch that became its release); parameters are read when
 * the video's tracker is created, as Roboflow's block does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/track_util.h"
#include "workflow/wf_int.h"

#define OC_MAX_DETS 2000
#define OC_MAX_TRACKS 4000
#define OC_MAX_DELTA_T 1000

struct obs {
    int64_t age;
    double b[4];
};

struct oct {
    double x[7], P[49];
    double fx[7], fP[49]; /* frozen filter (ORU) */
    bool frozen, observed, has_vel;
    double vel[2]; /* dy, dx */
    double last[4];
    struct obs *hist; /* the last delta_t + 1 observations, oldest first */
    size_t nhist;
    int64_t age, id, nsucc, tsu;
};

struct ocsort {
    struct oct *t;
    size_t n, cap;
    int64_t next_id, frame_count;
    int max_lost, delta_t;
    int64_t min_frames;
    double iou_thr, dc_weight, high_thr;
    struct tk_cache cache;
};

static void oc_free(void *p)
{
    struct ocsort *k = p;
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++)
        free(k->t[i].hist);
    free(k->t);
    tk_cache_free(&k->cache);
    free(k);
}

static const double Qd[7] = {1, 1, 1, 1, 0.01, 0.01, 0.0001};
static const double Rd[4] = {1, 1, 10, 10};

static void to_z(const double b[4], double z[4])
{
    double w = b[2] - b[0], h = b[3] - b[1];
    z[0] = b[0] + w / 2.0, z[1] = b[1] + h / 2.0, z[2] = w * h, z[3] = w / (h + 1e-6);
}

static void state_box(const double x[7], double b[4])
{
    double w = sqrt(x[2] * x[3]), h = x[2] / w;
    b[0] = x[0] - w / 2.0, b[1] = x[1] - h / 2.0, b[2] = x[0] + w / 2.0, b[3] = x[1] + h / 2.0;
}

static void kf_predict(double x[7], double P[49]) { tk_kf_predict(x, P, 7, 3, Qd); }

/* Joseph-form update with measurement z (H = [I4 0]); a singular
 * innovation keeps the prediction (numpy would raise). */
static void kf_update(double x[7], double P[49], const double z[4]) { tk_kf_update(x, P, 7, z, Rd, true); }

static void oct_init(struct oct *t, const double b[4], int delta_t)
{
    memset(t, 0, sizeof *t);
    to_z(b, t->x);
    for (int i = 0; i < 7; i++)
        t->P[i * 7 + i] = i < 4 ? 10.0 : 10000.0;
    memcpy(t->last, b, sizeof t->last);
    t->hist = xcalloc((size_t)delta_t + 1, sizeof *t->hist);
    t->id = -1;
    t->observed = true;
}

/* get_k_previous_obs: the observation delta_t (then fewer) frames back,
 * else the newest; NULL without observations. */
static const double *k_prev(const struct oct *t, int delta_t)
{
    if (!t->nhist)
        return NULL;
    for (int dt = delta_t; dt >= 1; dt--)
        for (size_t h = 0; h < t->nhist; h++)
            if (t->hist[h].age == t->age - dt)
                return t->hist[h].b;
    return t->hist[t->nhist - 1].b;
}

static void direction(const double *a, const double *b, double *dy, double *dx)
{
    double cx1 = (a[0] + a[2]) / 2.0, cy1 = (a[1] + a[3]) / 2.0;
    double cx2 = (b[0] + b[2]) / 2.0, cy2 = (b[1] + b[3]) / 2.0;
    double norm = sqrt((cy2 - cy1) * (cy2 - cy1) + (cx2 - cx1) * (cx2 - cx1)) + 1e-6;
    *dy = (cy2 - cy1) / norm, *dx = (cx2 - cx1) / norm;
}

static void oct_predict(struct oct *t)
{
    if (t->x[6] + t->x[2] <= 0)
        t->x[6] = 0;
    kf_predict(t->x, t->P);
    t->age++;
    if (t->tsu > 0)
        t->nsucc = 0;
    t->tsu++;
}

static void oct_update(struct oct *t, const double *b, int delta_t)
{
    if (!b) {
        if (t->observed) {
            memcpy(t->fx, t->x, sizeof t->x);
            memcpy(t->fP, t->P, sizeof t->P);
            t->frozen = true;
        }
        t->observed = false;
        return;
    }
    const double *prev = k_prev(t, delta_t);
    if (prev) {
        direction(prev, b, &t->vel[0], &t->vel[1]);
        t->has_vel = true;
    }
    if (!t->observed && t->frozen) { /* ORU: re-update along a virtual trajectory */
        memcpy(t->x, t->fx, sizeof t->x);
        memcpy(t->P, t->fP, sizeof t->P);
        int64_t gap = t->tsu;
        double z1[4], z2[4];
        to_z(t->last, z1);
        to_z(b, z2);
        double w1 = sqrt(z1[2] * z1[3]), h1 = sqrt(z1[2] / z1[3]);
        double w2 = sqrt(z2[2] * z2[3]), h2 = sqrt(z2[2] / z2[3]);
        double dx = (z2[0] - z1[0]) / (double)gap, dy = (z2[1] - z1[1]) / (double)gap;
        double dw = (w2 - w1) / (double)gap, dh = (h2 - h1) / (double)gap;
        for (int64_t i = 0; i < gap; i++) {
            double w = w1 + (double)(i + 1) * dw, h = h1 + (double)(i + 1) * dh;
            double v[4] = {z1[0] + (double)(i + 1) * dx, z1[1] + (double)(i + 1) * dy, w * h, w / h};
            kf_update(t->x, t->P, v);
            if (i < gap - 1)
                kf_predict(t->x, t->P);
        }
        t->frozen = false;
    }
    double z[4];
    to_z(b, z);
    kf_update(t->x, t->P, z);
    t->observed = true;
    t->tsu = 0;
    t->nsucc++;
    memcpy(t->last, b, sizeof t->last);
    /* observations[age] = b, keeping the last delta_t + 1 */
    if (t->nhist && t->hist[t->nhist - 1].age == t->age) {
        memcpy(t->hist[t->nhist - 1].b, b, sizeof t->hist[0].b);
    } else {
        if (t->nhist == (size_t)delta_t + 1) {
            memmove(t->hist, t->hist + 1, (t->nhist - 1) * sizeof *t->hist);
            t->nhist--;
        }
        t->hist[t->nhist].age = t->age;
        memcpy(t->hist[t->nhist].b, b, sizeof t->hist[0].b);
        t->nhist++;
    }
}

/* linear_sum_assignment(score, maximize=True) then the IoU gate: match[r]
 * = column or -1. */
static void oc_associate(const double *score, const double *ious, int nr, int nc, double thr, int *match)
{
    tk_assign_max(score, nr, nc, match);
    for (int r = 0; r < nr; r++)
        if (match[r] >= 0 && !(ious[r * nc + match[r]] >= thr))
            match[r] = -1;
}

/* add_track_id_detections: the id this match reports (-1 while immature). */
static int64_t report_id(struct ocsort *k, struct oct *t)
{
    if (k->frame_count <= k->min_frames) {
        if (t->tsu == 0 && t->id == -1)
            t->id = k->next_id++;
        return t->id;
    }
    if (t->nsucc >= k->min_frames) {
        if (t->id == -1)
            t->id = k->next_id++;
        return t->id;
    }
    return -1;
}

static int oc_spawn(struct ocsort *k, const struct wf_det *d)
{
    if (k->n >= OC_MAX_TRACKS)
        return ERR_LIMIT;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 32;
        k->t = xrealloc(k->t, k->cap * sizeof *k->t);
    }
    double b[4] = {d->x1, d->y1, d->x2, d->y2};
    oct_init(&k->t[k->n++], b, k->delta_t);
    return 0;
}

static void oc_activate_or_kill(struct ocsort *k)
{
    size_t w = 0;
    for (size_t i = 0; i < k->n; i++) {
        struct oct *t = &k->t[i];
        bool mature = t->nsucc >= k->min_frames;
        if (mature && t->id == -1)
            t->id = k->next_id++;
        if (t->tsu <= k->max_lost)
            k->t[w++] = *t;
        else
            free(t->hist);
    }
    k->n = w;
}

/* OCSORTTracker.update: order[q] / ids[q] the reported detections (indices into ds). */
static int oc_update(struct ocsort *k, const struct wf_dets *ds, int *order, int64_t *ids, int *nout)
{
    *nout = 0;
    if (k->n == 0 && ds->n == 0)
        return 0;
    int nd = 0, nt = (int)k->n;
    int *di = xmalloc((ds->n + 1) * sizeof *di); /* kept detections -> index in ds */
    for (size_t j = 0; j < ds->n; j++)
        if (ds->d[j].confidence >= k->high_thr)
            di[nd++] = (int)j;
    double (*box)[4] = xmalloc(((size_t)nd + 1) * sizeof *box);
    for (int j = 0; j < nd; j++) {
        const struct wf_det *d = &ds->d[di[j]];
        box[j][0] = d->x1, box[j][1] = d->y1, box[j][2] = d->x2, box[j][3] = d->y2;
    }
    for (int i = 0; i < nt; i++)
        oct_predict(&k->t[i]);
    size_t cells = (size_t)nt * (size_t)nd + 1;
    double *ious = xmalloc(cells * sizeof *ious), *score = xmalloc(cells * sizeof *score);
    for (int i = 0; i < nt; i++) {
        struct oct *t = &k->t[i];
        double pb[4];
        state_box(t->x, pb);
        const double *ko = k_prev(t, k->delta_t);
        if (!ko)
            ko = t->last;
        for (int j = 0; j < nd; j++) {
            ious[i * nd + j] = tk_iou(pb, box[j]);
            double dc = 0;
            if (t->has_vel) {
                double dy, dx;
                direction(ko, box[j], &dy, &dx);
                double cs = t->vel[1] * dx + t->vel[0] * dy;
                cs = cs < -1 ? -1 : cs > 1 ? 1 : cs;
                dc = (M_PI / 2.0 - fabs(acos(cs))) / M_PI;
            }
            score[i * nd + j] = ious[i * nd + j] + k->dc_weight * dc * (double)ds->d[di[j]].confidence;
        }
    }
    int *match = xmalloc(((size_t)nt + 1) * sizeof *match);
    bool *det_used = xcalloc((size_t)nd + 1, sizeof *det_used);
    oc_associate(score, ious, nt, nd, k->iou_thr, match);
    for (int i = 0; i < nt; i++)
        if (match[i] >= 0) {
            det_used[match[i]] = true;
            oct_update(&k->t[i], box[match[i]], k->delta_t);
            order[*nout] = di[match[i]];
            ids[(*nout)++] = report_id(k, &k->t[i]);
        }
    int *ut = xmalloc(((size_t)nt + 1) * sizeof *ut), *ud = xmalloc(((size_t)nd + 1) * sizeof *ud), nut = 0, nud = 0;
    for (int i = 0; i < nt; i++)
        if (match[i] < 0)
            ut[nut++] = i;
    for (int j = 0; j < nd; j++)
        if (!det_used[j])
            ud[nud++] = j;
    bool *left = xcalloc((size_t)nd + 1, sizeof *left);
    for (int q = 0; q < nud; q++)
        left[ud[q]] = true;
    if (nud > 0 && nut > 0) { /* OCR: last observations against what is left, IoU only */
        double *oi = xmalloc((size_t)nut * (size_t)nud * sizeof *oi);
        int *om = xmalloc((size_t)nut * sizeof *om);
        for (int a = 0; a < nut; a++)
            for (int b = 0; b < nud; b++)
                oi[a * nud + b] = tk_iou(k->t[ut[a]].last, box[ud[b]]);
        oc_associate(oi, oi, nut, nud, k->iou_thr, om);
        for (int a = 0; a < nut; a++) {
            struct oct *t = &k->t[ut[a]];
            if (om[a] >= 0) {
                int j = ud[om[a]];
                left[j] = false;
                oct_update(t, box[j], k->delta_t);
                order[*nout] = di[j];
                ids[(*nout)++] = report_id(k, t);
            }
        }
        for (int a = 0; a < nut; a++)
            if (om[a] < 0)
                oct_update(&k->t[ut[a]], NULL, k->delta_t);
        free(oi);
        free(om);
    } else {
        for (int a = 0; a < nut; a++)
            oct_update(&k->t[ut[a]], NULL, k->delta_t);
    }
    oc_activate_or_kill(k);
    int rc = 0;
    for (int q = 0; q < nud && rc == 0; q++)
        if (left[ud[q]]) {
            rc = oc_spawn(k, &ds->d[di[ud[q]]]);
            order[*nout] = di[ud[q]];
            ids[(*nout)++] = -1;
        }
    k->frame_count++;
    free(di), free(box), free(ious), free(score), free(match), free(det_used), free(ut), free(ud), free(left);
    return rc;
}

static int ocsort_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const json_t *vm;
        const char *vid = tk_video(c, i, &vm);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        struct wf_dets empty = {0};
        if (!ds)
            ds = &empty;
        if (ds->n > OC_MAX_DETS)
            return wf_call_fail(c, "%zu detections in one frame: the tracker takes at most %d", ds->n, OC_MAX_DETS);
        int64_t min_frames = wf_arg_int(c, i, "minimum_consecutive_frames", 3);
        int64_t buffer = wf_arg_int(c, i, "lost_track_buffer", 30);
        int64_t delta_t = wf_arg_int(c, i, "delta_t", 3);
        int64_t cache_size = wf_arg_int(c, i, "instances_cache_size", 16384);
        if (min_frames < 0 || min_frames > 1000000 || buffer < 0 || buffer > 1000000)
            return wf_call_fail(c, "minimum_consecutive_frames and lost_track_buffer must be within 0..1000000");
        if (delta_t < 1 || delta_t > OC_MAX_DELTA_T)
            return wf_call_fail(c, "delta_t must be within 1..%d, got %lld", OC_MAX_DELTA_T, (long long)delta_t);
        if (cache_size < 0 || cache_size > 100000)
            return wf_call_fail(c, "instances_cache_size must be within 0..100000");
        void **slot = wf_call_state(c, vid, oc_free);
        if (!slot)
            return wf_call_fail(c, "too many videos tracked at once (at most %d)", WF_STATE_MAX);
        struct ocsort *k = *slot;
        if (!k) { /* parameters are read once, when the video's tracker is created */
            k = xcalloc(1, sizeof *k);
            k->max_lost = tk_max_lost(vm, buffer);
            k->min_frames = min_frames;
            k->delta_t = (int)delta_t;
            k->iou_thr = wf_arg_double(c, i, "minimum_iou_threshold", 0.3);
            k->dc_weight = wf_arg_double(c, i, "direction_consistency_weight", 0.2);
            k->high_thr = wf_arg_double(c, i, "high_conf_det_threshold", 0.6);
            *slot = k;
        }
        int64_t *ids = xmalloc((ds->n + 1) * sizeof *ids);
        int *order = xmalloc((ds->n + 1) * sizeof *order), nout = 0;
        if (oc_update(k, ds, order, ids, &nout) < 0) {
            free(ids);
            free(order);
            return wf_call_fail(c, "more than %d tracks in one video", OC_MAX_TRACKS);
        }
        tk_out(c, i, ds, order, ids, nout, &k->cache, (size_t)cache_size);
        free(ids);
        free(order);
    }
    return 0;
}

static const struct wf_field oc_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"minimum_iou_threshold", NULL, WF_FT_FLOAT01, "0.3", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"minimum_consecutive_frames", NULL, WF_FT_INT, "3", WF_K_INT, WF_F_NULLABLE, NULL},
    {"lost_track_buffer", NULL, WF_FT_INT, "30", WF_K_INT, WF_F_NULLABLE, NULL},
    {"high_conf_det_threshold", NULL, WF_FT_FLOAT01, "0.6", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"direction_consistency_weight", NULL, WF_FT_FLOAT01, "0.2", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"delta_t", NULL, WF_FT_INT, "3", WF_K_INT, WF_F_NULLABLE, NULL},
    {"instances_cache_size", NULL, WF_FT_INT, "16384", 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output oc_outs[] = {
    {"tracked_detections", WF_K_DETS}, {"new_instances", WF_K_DETS}, {"already_seen_instances", WF_K_DETS}};
static const struct wf_block trackers_ocsort_v1 = {
    (const char *const[]){"roboflow_core/trackers_ocsort@v1", NULL},
    oc_fields, ARRAY_LEN(oc_fields), oc_outs, ARRAY_LEN(oc_outs), 0, 0, NULL, ocsort_run, NULL};

const struct wf_block *const wf_blocks_ocsort[] = {&trackers_ocsort_v1, NULL};
