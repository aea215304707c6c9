/*
 * blocks/botsort.c — trackers_botsort v1: the `trackers` package's BoT-SORT
 * (BoTSORTTracker, BoTSORTTracklet, botsort/utils.py and the XCYCWH state
 * estimator of roboflow/trackers, read, not copied) as Roboflow's block
 * core_steps/trackers/botsort/v1.py runs it, one tracker per
 * video_identifier in the run's state (as trackers_sort / _bytetrack /
 * _ocsort).
 *
 * Per tracklet a Kalman filter on (x centre, y centre, width, height) with
 * a velocity for each, Joseph-form update, and BoT-SORT's scale-aware
 * noise: Q = diag((0.05 w)², (0.05 h)², (0.05 w)², (0.05 h)², (0.00625
 * w)², (0.00625 h)², ...), R = diag((0.05 w)², (0.05 h)², (0.05 w)², (0.05
 * h)²) recomputed from the state's width / height (at least 1e-3) before
 * every predict and update, P0 = diag((0.1 w)², (0.1 h)², (0.1 w)², (0.1
 * h)², (0.0625 w)², ...) of the first box; width and height clamped to
 * 1e-3 after each step.  Each frame (ByteTrack's three rounds):
 * - detections with confidence >= high_conf_det_threshold are "high",
 *   those in (0.1, high) "low", the rest dropped;
 * - tracks matched last frame and mature (an id, or
 *   minimum_consecutive_frames updates) are "confirmed", matched last frame
 *   and immature "unconfirmed", unmatched for longer "lost";
 * - round 1: confirmed + lost tracks against high detections on IoU ×
 *   detection confidence (optimal assignment, maximised), pairs under
 *   minimum_iou_threshold_first_assoc left;
 * - round 2: the tracks of round 1 left that were matched last frame
 *   against low detections on IoU alone, gate
 *   minimum_iou_threshold_second_assoc;
 * - round 3: unconfirmed tracks against the high detections left (fused,
 *   gate minimum_iou_threshold_unconfirmed_assoc); unconfirmed tracks left
 *   unmatched are removed;
 * - new tracks from the high detections left with confidence >=
 *   track_activation_threshold (an id at once on the video's first frame
 *   with instant_first_frame_activation);
 * - an id once a track has minimum_consecutive_frames updates (the first
 *   box counts); tracks unmatched for int(fps / 30 · lost_track_buffer)
 *   frames (at least 1 for a positive buffer), and immature tracks not
 *   matched this frame, dropped.
 * Output order as the package's: round-1 matches, round-2 matches,
 * unmatched low detections, round-3 matches, new detections; the block
 * leaves out the -1 ids and splits new / already seen ids with the FIFO
 * instance cache.
 *
 * Camera-motion compensation (enable_cmc, cmc_method sparseOptFlow, the
 * block's default method): after the split of tracks, the affine H of
 * blocks/cmc.c from the previous frame to this one moves every track's
 * centre, centre velocity and covariance (BoTSORTTracklet.apply_cmc); the
 * CMC state is the video's, and frames the tracker skips (no tracks, no
 * detections) do not reach it, as in the package.
 *
 * Departures: cmc_method orb, sift and ecc are refused with a step error
 * naming them; the package's timestamp mode (frame gaps from wall-clock
 * timestamps) is not used by the block and not implemented (every call is
 * one frame); ids count from 0 per video; a track holding an id counts as
 * mature when dropping tracks (the package's "sticky maturity"); exact
 * ties of the assignment are broken as assign.c does, not as scipy.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/blocks/track_util.h"
#include "workflow/wf_int.h"

#define BT_MAX_DETS 2000
#define BT_MAX_TRACKS 4000
#define BT_MAX_CMC_PIXELS (4 << 20) /* the downscaled frame CMC works on */

#define SIG_P 0.05
#define SIG_V 0.00625
#define SIG_M 0.05

struct bt {
    double x[8], P[64];
    int64_t id, nsucc, tsu;
};

struct botsort {
    struct bt *t;
    size_t n, cap;
    int64_t next_id, frame_id, min_frames;
    int max_lost;
    double thr1, thr2, thr_uc, act_thr, high_thr;
    bool instant;
    int cmc_downscale; /* 0: camera-motion compensation off */
    struct cv_cmc cmc;
    struct tk_cache cache;
};

static void bs_free(void *p)
{
    struct botsort *k = p;
    if (!k)
        return;
    free(k->t);
    tk_cache_free(&k->cache);
    cv__cmc_free(&k->cmc);
    free(k);
}

static void to_xywh(const double b[4], double m[4])
{
    double w = b[2] - b[0], h = b[3] - b[1];
    m[0] = b[0] + w / 2.0, m[1] = b[1] + h / 2.0, m[2] = w, m[3] = h;
}

static void state_box(const double x[8], double b[4])
{
    b[0] = x[0] - x[2] / 2.0, b[1] = x[1] - x[3] / 2.0, b[2] = x[0] + x[2] / 2.0, b[3] = x[1] + x[3] / 2.0;
}

static void noise(double w, double h, double q[8], double r[4])
{
    double pw = SIG_P * w, ph = SIG_P * h, vw = SIG_V * w, vh = SIG_V * h, mw = SIG_M * w, mh = SIG_M * h;
    q[0] = q[2] = pw * pw, q[1] = q[3] = ph * ph, q[4] = q[6] = vw * vw, q[5] = q[7] = vh * vh;
    r[0] = r[2] = mw * mw, r[1] = r[3] = mh * mh;
}

static void state_noise(const struct bt *t, double q[8], double r[4])
{
    noise(fmax(t->x[2], 1e-3), fmax(t->x[3], 1e-3), q, r);
}

static void clamp_wh(struct bt *t)
{
    t->x[2] = fmax(t->x[2], 1e-3);
    t->x[3] = fmax(t->x[3], 1e-3);
}

static void bt_init(struct bt *t, const double b[4])
{
    memset(t, 0, sizeof *t);
    to_xywh(b, t->x);
    double w = t->x[2], h = t->x[3];
    double d[8] = {2 * SIG_P * w, 2 * SIG_P * h, 2 * SIG_P * w, 2 * SIG_P * h,
                   10 * SIG_V * w, 10 * SIG_V * h, 10 * SIG_V * w, 10 * SIG_V * h};
    for (int i = 0; i < 8; i++)
        t->P[i * 8 + i] = d[i] * d[i];
    t->id = -1;
    t->nsucc = 1;
}

static void bt_predict(struct bt *t)
{
    double q[8], r[4];
    state_noise(t, q, r);
    tk_kf_predict(t->x, t->P, 8, 4, q);
    clamp_wh(t);
    t->tsu++;
}

static void bt_update(struct bt *t, const double b[4])
{
    double q[8], r[4], z[4];
    state_noise(t, q, r);
    to_xywh(b, z);
    tk_kf_update(t->x, t->P, 8, z, r, true); /* singular: the prediction stays (numpy would raise) */
    clamp_wh(t);
    t->tsu = 0;
    t->nsucc++;
}

/* sim[a][b] = IoU(track rows[a]'s predicted box, det cols[b]) (× its confidence when fused);
 * then the assignment gated at thr: match[a] = b or -1. */
static void bs_associate(const double (*tbox)[4], const int *rows, int nr, const double (*dbox)[4],
                         const double *conf, const int *cols, int nc, bool fuse, double thr, int *match)
{
    for (int a = 0; a < nr; a++)
        match[a] = -1;
    if (nr == 0 || nc == 0)
        return;
    double *sim = xmalloc((size_t)nr * (size_t)nc * sizeof *sim);
    for (int a = 0; a < nr; a++)
        for (int b = 0; b < nc; b++) {
            double v = tk_iou(tbox[rows[a]], dbox[cols[b]]);
            sim[(size_t)a * nc + b] = fuse ? v * conf[cols[b]] : v;
        }
    tk_assign_max(sim, nr, nc, match);
    for (int a = 0; a < nr; a++)
        if (match[a] >= 0 && !(sim[(size_t)a * nc + match[a]] >= thr))
            match[a] = -1;
    free(sim);
}

/* BoTSORTTracklet.apply_cmc: centre and centre velocity through H (2 x 3),
 * P = A P A^T with R in the position and velocity blocks. */
static void bt_apply_cmc(struct bt *t, const double Hm[6])
{
    double R[4] = {Hm[0], Hm[1], Hm[3], Hm[4]};
    double x0 = t->x[0], x1 = t->x[1], v0 = t->x[4], v1 = t->x[5];
    t->x[0] = R[0] * x0 + R[1] * x1 + Hm[2], t->x[1] = R[2] * x0 + R[3] * x1 + Hm[5];
    t->x[4] = R[0] * v0 + R[1] * v1, t->x[5] = R[2] * v0 + R[3] * v1;
    double A[64] = {0}, T[64];
    for (int i = 0; i < 8; i++)
        A[i * 8 + i] = 1;
    for (int b = 0; b < 2; b++) {
        int o = b * 4;
        A[o * 8 + o] = R[0], A[o * 8 + o + 1] = R[1], A[(o + 1) * 8 + o] = R[2], A[(o + 1) * 8 + o + 1] = R[3];
    }
    for (int i = 0; i < 8; i++) /* T = A P */
        for (int j = 0; j < 8; j++) {
            double v = 0;
            for (int l = 0; l < 8; l++)
                v += A[i * 8 + l] * t->P[l * 8 + j];
            T[i * 8 + j] = v;
        }
    for (int i = 0; i < 8; i++) /* P = T A^T */
        for (int j = 0; j < 8; j++) {
            double v = 0;
            for (int l = 0; l < 8; l++)
                v += T[i * 8 + l] * A[j * 8 + l];
            t->P[i * 8 + j] = v;
        }
}

static int64_t matured_id(struct botsort *k, struct bt *t)
{
    if (t->nsucc >= k->min_frames && t->id == -1)
        t->id = k->next_id++;
    return t->id;
}

/* BoTSORTTracker.update: order[q] / ids[q] the reported detections (indices into ds). */
static int bs_update(struct botsort *k, const struct wf_dets *ds, const struct vis_image *frame, int *order,
                     int64_t *ids, int *nout)
{
    *nout = 0;
    k->frame_id++;
    if (k->n == 0 && ds->n == 0)
        return 0;
    int nd = (int)ds->n, nt = (int)k->n, rc = 0;
    for (int i = 0; i < nt; i++)
        bt_predict(&k->t[i]);
    double (*dbox)[4] = xmalloc(((size_t)nd + 1) * sizeof *dbox), *conf = xmalloc(((size_t)nd + 1) * sizeof *conf);
    int *hi = xmalloc(((size_t)nd + 1) * sizeof *hi), *lo = xmalloc(((size_t)nd + 1) * sizeof *lo), nh = 0, nl = 0;
    for (int j = 0; j < nd; j++) {
        const struct wf_det *d = &ds->d[j];
        dbox[j][0] = d->x1, dbox[j][1] = d->y1, dbox[j][2] = d->x2, dbox[j][3] = d->y2;
        conf[j] = d->confidence;
        if (conf[j] >= k->high_thr)
            hi[nh++] = j;
        else if (conf[j] > 0.1)
            lo[nl++] = j;
    }
    /* camera-motion compensation of every predicted track */
    if (k->cmc_downscale > 0 && frame) {
        double Hm[6];
        rc = cv__cmc_sparse(&k->cmc, frame, k->cmc_downscale, Hm);
        if (rc < 0) {
            free(dbox), free(conf), free(hi), free(lo);
            return rc;
        }
        for (int i = 0; i < nt; i++)
            bt_apply_cmc(&k->t[i], Hm);
    }
    /* confirmed + lost (the pool of round 1, in that order) and unconfirmed tracks */
    double (*tbox)[4] = xmalloc(((size_t)nt + 1) * sizeof *tbox);
    int *pool = xmalloc(((size_t)nt + 1) * sizeof *pool), *unc = xmalloc(((size_t)nt + 1) * sizeof *unc);
    int npool = 0, nunc = 0, nlost = 0;
    int *lost = xmalloc(((size_t)nt + 1) * sizeof *lost);
    for (int i = 0; i < nt; i++) {
        struct bt *t = &k->t[i];
        state_box(t->x, tbox[i]);
        if (t->tsu > 1)
            lost[nlost++] = i;
        else if (t->id != -1 || t->nsucc >= k->min_frames)
            pool[npool++] = i;
        else
            unc[nunc++] = i;
    }
    memcpy(pool + npool, lost, (size_t)nlost * sizeof *lost);
    npool += nlost;
    int *match = xmalloc(((size_t)nt + 1) * sizeof *match);
    bool *hi_used = xcalloc((size_t)nd + 1, 1), *lo_used = xcalloc((size_t)nd + 1, 1), *gone = xcalloc((size_t)nt + 1, 1);
    /* round 1 */
    bs_associate(tbox, pool, npool, dbox, conf, hi, nh, true, k->thr1, match);
    int *rest = xmalloc(((size_t)nt + 1) * sizeof *rest), nrest = 0;
    for (int a = 0; a < npool; a++) {
        struct bt *t = &k->t[pool[a]];
        if (match[a] < 0) {
            if (t->tsu == 1)
                rest[nrest++] = pool[a];
            continue;
        }
        bt_update(t, dbox[hi[match[a]]]);
        hi_used[match[a]] = true;
        order[*nout] = hi[match[a]], ids[(*nout)++] = matured_id(k, t);
    }
    /* round 2: low detections, tracks matched last frame, IoU alone */
    bs_associate(tbox, rest, nrest, dbox, conf, lo, nl, false, k->thr2, match);
    for (int a = 0; a < nrest; a++)
        if (match[a] >= 0) {
            struct bt *t = &k->t[rest[a]];
            bt_update(t, dbox[lo[match[a]]]);
            lo_used[match[a]] = true;
            order[*nout] = lo[match[a]], ids[(*nout)++] = matured_id(k, t);
        }
    for (int b = 0; b < nl; b++)
        if (!lo_used[b])
            order[*nout] = lo[b], ids[(*nout)++] = -1;
    /* round 3: unconfirmed tracks with the high detections left */
    int *hleft = xmalloc(((size_t)nd + 1) * sizeof *hleft), nhl = 0;
    for (int b = 0; b < nh; b++)
        if (!hi_used[b])
            hleft[nhl++] = hi[b];
    if (nunc > 0 && nhl > 0) {
        bs_associate(tbox, unc, nunc, dbox, conf, hleft, nhl, true, k->thr_uc, match);
        bool *taken = xcalloc((size_t)nhl + 1, 1);
        for (int a = 0; a < nunc; a++) {
            struct bt *t = &k->t[unc[a]];
            if (match[a] < 0) {
                gone[unc[a]] = true;
                continue;
            }
            bt_update(t, dbox[hleft[match[a]]]);
            taken[match[a]] = true;
            order[*nout] = hleft[match[a]], ids[(*nout)++] = matured_id(k, t);
        }
        int w = 0;
        for (int b = 0; b < nhl; b++)
            if (!taken[b])
                hleft[w++] = hleft[b];
        nhl = w;
        free(taken);
    } else {
        for (int a = 0; a < nunc; a++)
            gone[unc[a]] = true;
    }
    /* drop the unmatched unconfirmed tracks, then spawn */
    size_t w = 0;
    for (size_t i = 0; i < k->n; i++)
        if (!gone[i])
            k->t[w++] = k->t[i];
    k->n = w;
    for (int b = 0; b < nhl && rc == 0; b++) {
        int j = hleft[b];
        order[*nout] = j;
        ids[*nout] = -1;
        if (conf[j] >= k->act_thr) {
            if (k->n >= BT_MAX_TRACKS) { /* the tracks this update drops anyway go first */
                size_t w2 = 0;
                for (size_t i = 0; i < k->n; i++)
                    if (k->t[i].tsu < k->max_lost)
                        k->t[w2++] = k->t[i];
                k->n = w2;
            }
            if (k->n >= BT_MAX_TRACKS) {
                rc = ERR_LIMIT;
                break;
            }
            if (k->n == k->cap) {
                k->cap = k->cap ? 2 * k->cap : 32;
                k->t = xrealloc(k->t, k->cap * sizeof *k->t);
            }
            struct bt *t = &k->t[k->n++];
            bt_init(t, dbox[j]);
            if (k->frame_id == 1 && k->instant)
                t->id = k->next_id++;
            ids[*nout] = t->id;
        }
        (*nout)++;
    }
    /* get_alive_tracklets */
    w = 0;
    for (size_t i = 0; i < k->n; i++) {
        struct bt *t = &k->t[i];
        bool mature = t->nsucc >= k->min_frames || t->id != -1;
        if (t->tsu < k->max_lost && (mature || t->tsu == 0))
            k->t[w++] = *t;
    }
    k->n = w;
    free(dbox), free(conf), free(hi), free(lo), free(tbox), free(pool), free(unc), free(lost), free(match);
    free(hi_used), free(lo_used), free(gone), free(rest), free(hleft);
    return rc;
}

static const char *const CMC_METHODS[] = {"orb", "sift", "sparseOptFlow", "ecc", NULL};

static int botsort_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const json_t *vm;
        const char *vid = tk_video(c, i, &vm);
        const struct wf_dets *ds = wf_arg_dets(c, i, "detections");
        struct wf_dets empty = {0};
        if (!ds)
            ds = &empty;
        if (ds->n > BT_MAX_DETS)
            return wf_call_fail(c, "%zu detections in one frame: the tracker takes at most %d", ds->n, BT_MAX_DETS);
        bool cmc = wf_arg_bool(c, i, "enable_cmc", false);
        const char *method = wf_arg_str(c, i, "cmc_method");
        method = method ? method : "sparseOptFlow";
        if (cmc && strcmp(method, "sparseOptFlow"))
            return wf_call_fail(c, "cmc_method '%s': only sparseOptFlow camera-motion compensation is "
                                   "implemented here (orb, sift and ecc are not)",
                                method);
        int64_t min_frames = wf_arg_int(c, i, "minimum_consecutive_frames", 2);
        int64_t buffer = wf_arg_int(c, i, "lost_track_buffer", 30);
        int64_t cache_size = wf_arg_int(c, i, "instances_cache_size", 16384);
        int64_t downscale = wf_arg_int(c, i, "cmc_downscale", 2);
        if (min_frames < 0 || min_frames > 1000000 || buffer < 0 || buffer > 1000000)
            return wf_call_fail(c, "minimum_consecutive_frames and lost_track_buffer must be within 0..1000000");
        if (downscale > 64)
            return wf_call_fail(c, "cmc_downscale must be at most 64, got %lld", (long long)downscale);
        downscale = MAX(downscale, 1); /* CMC: max(1, int(downscale)) */
        if (cache_size < 0 || cache_size > 100000)
            return wf_call_fail(c, "instances_cache_size must be within 0..100000");
        void **slot = wf_call_state(c, vid, bs_free);
        if (!slot)
            return wf_call_fail(c, "too many videos tracked at once (at most %d)", WF_STATE_MAX);
        struct botsort *k = *slot;
        if (!k) { /* parameters are read once, when the video's tracker is created (as Roboflow) */
            k = xcalloc(1, sizeof *k);
            k->max_lost = tk_max_lost(vm, buffer);
            if (buffer > 0 && k->max_lost < 1)
                k->max_lost = 1;
            k->min_frames = min_frames;
            k->thr1 = wf_arg_double(c, i, "minimum_iou_threshold_first_assoc", 0.2);
            k->thr2 = wf_arg_double(c, i, "minimum_iou_threshold_second_assoc", 0.5);
            k->thr_uc = wf_arg_double(c, i, "minimum_iou_threshold_unconfirmed_assoc", 0.3);
            k->act_thr = wf_arg_double(c, i, "track_activation_threshold", 0.7);
            k->high_thr = wf_arg_double(c, i, "high_conf_det_threshold", 0.6);
            k->instant = wf_arg_bool(c, i, "instant_first_frame_activation", false);
            k->cmc_downscale = cmc ? (int)downscale : 0;
            *slot = k;
        }
        int64_t *ids = xmalloc((ds->n + 1) * sizeof *ids);
        int *order = xmalloc((ds->n + 1) * sizeof *order), nout = 0;
        const struct wf_image *im = wf_arg_image(c, i, "image");
        if (k->cmc_downscale > 0 && im && im->img &&
            (int64_t)(im->img->w / k->cmc_downscale) * (im->img->h / k->cmc_downscale) > BT_MAX_CMC_PIXELS) {
            free(ids);
            free(order);
            return wf_call_fail(c, "camera-motion compensation takes at most %d pixels after cmc_downscale "
                                   "(the frame is %d x %d)", BT_MAX_CMC_PIXELS, im->img->w, im->img->h);
        }
        int rc = bs_update(k, ds, im ? im->img : NULL, order, ids, &nout);
        if (rc < 0) {
            free(ids);
            free(order);
            if (rc == ERR_LIMIT)
                return wf_call_fail(c, "more than %d tracks in one video", BT_MAX_TRACKS);
            return wf_call_fail(c, "camera-motion compensation failed on this frame (%s)",
                                rc == ERR_INVALID ? "smaller than cmc_downscale" : "out of memory");
        }
        tk_out(c, i, ds, order, ids, nout, &k->cache, (size_t)cache_size);
        free(ids);
        free(order);
    }
    return 0;
}

static const struct wf_field bs_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"detections", NULL, WF_FT_DETS, NULL, WF_K_DETS, WF_F_SELECTOR_ONLY, NULL},
    {"minimum_iou_threshold_first_assoc", NULL, WF_FT_FLOAT01, "0.2", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"minimum_iou_threshold_second_assoc", NULL, WF_FT_FLOAT01, "0.5", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"minimum_iou_threshold_unconfirmed_assoc", NULL, WF_FT_FLOAT01, "0.3", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"minimum_consecutive_frames", NULL, WF_FT_INT, "2", WF_K_INT, WF_F_NULLABLE, NULL},
    {"lost_track_buffer", NULL, WF_FT_INT, "30", WF_K_INT, WF_F_NULLABLE, NULL},
    {"track_activation_threshold", NULL, WF_FT_FLOAT01, "0.7", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"high_conf_det_threshold", NULL, WF_FT_FLOAT01, "0.6", WF_K_FLOAT, WF_F_NULLABLE, NULL},
    {"enable_cmc", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"cmc_method", NULL, WF_FT_ENUM, "\"sparseOptFlow\"", 0, WF_F_NO_SELECTOR, CMC_METHODS},
    {"cmc_downscale", NULL, WF_FT_INT, "2", WF_K_INT, WF_F_NULLABLE, NULL},
    {"instant_first_frame_activation", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"instances_cache_size", NULL, WF_FT_INT, "16384", 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output bs_outs[] = {
    {"tracked_detections", WF_K_DETS}, {"new_instances", WF_K_DETS}, {"already_seen_instances", WF_K_DETS}};
static const struct wf_block trackers_botsort_v1 = {
    (const char *const[]){"roboflow_core/trackers_botsort@v1", NULL},
    bs_fields, ARRAY_LEN(bs_fields), bs_outs, ARRAY_LEN(bs_outs), 0, 0, NULL, botsort_run, NULL};

const struct wf_block *const wf_blocks_botsort[] = {&trackers_botsort_v1, NULL};
