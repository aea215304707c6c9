/*
 * blocks/track_util.h — what the multi-object trackers share (trackers_sort
 * and trackers_bytetrack in video_analytics.c, trackers_ocsort in ocsort.c,
 * trackers_botsort in botsort.c): the constant-velocity Kalman filter with a
 * box measurement, box IoU, the maximising optimal assignment, the FIFO
 * instance cache of new / already seen ids, the video a frame belongs to and
 * the lost-track budget.  Internal to the workflow module.
 */
#ifndef VBATCH_TRACK_UTIL_H
#define VBATCH_TRACK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct wf_call;

/* 4x4 inverse by Gauss-Jordan with partial pivoting; false when a pivot is
 * zero, below 1e-300 in magnitude or not finite. */
bool tk_inv4(const double *a, double *out);

/* Kalman filter of n state values (n <= 8) whose first 4 are measured
 * (H = [I4 0]) and whose first nv (<= n - 4) move by x[4 + i] each step
 * (constant velocity).  P is n x n row-major.  q: the diagonal of Q (n). */
void tk_kf_predict(double *x, double *P, int n, int nv, const double *q);
/* Update with measurement z (4) and diagonal R (4): P = P - K H P, or in
 * Joseph form (I - KH) P (I - KH)^T + K R K^T when joseph.  false (nothing
 * changed) when the innovation covariance is singular. */
bool tk_kf_update(double *x, double *P, int n, const double *z, const double *r, bool joseph);

/* IoU of two xyxy boxes; 0 when the union is not positive or the ratio not
 * finite. */
double tk_iou(const double *a, const double *b);

/* scipy linear_sum_assignment(score, maximize=True) of an nr x nc
 * row-major matrix: match[r] = the column given to row r, or -1 (rows
 * beyond the smaller dimension).  Ties broken as assign.c does.  A NaN
 * score counts as 0, scores beyond +-1e12 (infinities) as +-1e12. */
void tk_assign_max(const double *score, int nr, int nc, int *match);

/* InstanceCache of the tracker blocks: ids seen so far, FIFO of `size`. */
struct tk_cache {
    int64_t *ids;
    size_t n, cap, head;
};
/* true when id was recorded before; else records it (evicting the oldest
 * beyond size, size 0 counting as 1). */
bool tk_cache_seen(struct tk_cache *c, int64_t id, size_t size);
void tk_cache_free(struct tk_cache *c);

/* The three outputs of a tracker block for element i: of the nout
 * detections ds->d[order[q]] with an id ids[q] >= 0, `tracked_detections`
 * (each with its tracker_id) and their split by the cache into
 * `new_instances` and `already_seen_instances`. */
struct wf_dets;
void tk_out(struct wf_call *c, size_t i, const struct wf_dets *ds, const int *order, const int64_t *ids, int nout,
            struct tk_cache *cache, size_t cache_size);

/* video_identifier of the image argument "image" of element i (its
 * video_metadata), else the image's parent_id, else "image"; *meta = the
 * video metadata object or NULL. */
const char *tk_video(struct wf_call *c, size_t i, const json_t **meta);
/* int(fps / 30 * lost_track_buffer) with fps from the video metadata (30
 * when absent or 0), capped at 1e9. */
int tk_max_lost(const json_t *meta, int64_t buffer);

#endif
