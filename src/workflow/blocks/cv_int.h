/*
 * blocks/cv_int.h — local image primitives of the classical CV block family
 * (classical_cv.c) that vision does not provide, visible to its unit tests.
 * Not part of the workflow module's public interface.  Images returned
 * through *out are new (vis_image_free).
 */
#ifndef VBATCH_CV_INT_H
#define VBATCH_CV_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "vision/vision.h"

/* cv2.flip: code 0 vertical, > 0 horizontal, < 0 both. */
int cv__flip(const struct vis_image *src, int code, struct vis_image **out);
/* image_preprocessing's rotation: deg counter-clockwise about (w//2, h//2),
 * canvas expanded, cv2.warpAffine bilinear with a black border. */
int cv__rotate(const struct vis_image *src, double deg, struct vis_image **out);
/* cv2.blur(img, (kw, kh)) in place, O(1) per pixel. */
int cv__box_blur(struct vis_image *img, int kw, int kh);
/* cv2.bilateralFilter(src, d, sigma_color, sigma_space). */
int cv__bilateral(const struct vis_image *src, int d, double sigma_color, double sigma_space,
                  struct vis_image **out);
/* cv2.adaptiveThreshold(..., THRESH_BINARY, block, C) on GRAY, in place. */
int cv__adaptive_threshold(struct vis_image *img, int maxval, bool gaussian, int block, double C);
/* numpy.percentile (linear) of the data whose histogram is hist. */
double cv__percentile(const unsigned long hist[256], unsigned long total, double q);
/* skimage equalize_hist on img/255 then *255 -> uint8, in place. */
int cv__equalize_hist_sk(struct vis_image *img);
/* skimage rescale_intensity(img, in_range=(p2, p98)), in place. */
int cv__contrast_stretch(struct vis_image *img);
/* Morphology by Roboflow's operation name ("Closing", "Opening then Closing", ...). */
int cv__morph_named(struct vis_image *img, const char *op, int k);

/* External contours of a GRAY image (blocks/measure.c). */
struct cv_contours {
    int *pts;       /* x, y pairs of every external contour, in discovery order */
    size_t npts, cap;
    size_t *start;  /* contour k: pts[start[k] .. start[k + 1]), n + 1 entries */
    size_t n, scap;
};
/* cv2.findContours(gray != 0, RETR_EXTERNAL, CHAIN_APPROX_SIMPLE) points,
 * contours in discovery order (OpenCV lists them last found first).  The
 * caller frees o->pts and o->start (also on error).  ERR_LIMIT beyond 2^20
 * points, ERR_NOMEM. */
int cv__find_contours(const struct vis_image *gray, struct cv_contours *o);
/* cv2.getStructuringElement(MORPH_ELLIPSE, (k, k)) as k * k bytes 0/1,
 * row-major (blocks/motion.c); ERR_INVALID outside 1..255. */
int cv__ellipse_kernel(int k, uint8_t *out);
/* cv2.arcLength(pts, closed=True) of n integer points (x, y pairs). */
double cv__arc_length(const int *p, size_t n);
/* cv2.approxPolyDP(src, eps, closed=True) of count integer points (OpenCV
 * 4.6: distances to the chord's line); dst has room for count points,
 * stack for 2 * count + 2 entries; returns the number of points written. */
size_t cv__approx_poly_closed(const int *src, size_t count, double eps, int *dst, size_t *stack);
/* cv2.convexHull(pts, clockwise=True) of n integer points into hull (room
 * for n + 1 points), OpenCV's first vertex and direction (blocks/zone.c). */
size_t cv__convex_hull(const int *pts, size_t n, int *hull);
/* cv2.fillPoly(mask, [pts], 255) of n integer points on a new w x h GRAY
 * image (blocks/zone.c); ERR_NOMEM. */
int cv__fill_poly(const int *pts, size_t n, int w, int h, struct vis_image **out);

/* ---- geometric transformations (blocks/warp.c), OpenCV 4.6 arithmetic ---- */
/* cv2.getPerspectiveTransform of 4 src -> 4 dst points (x, y pairs) into a
 * row-major 3x3 m; ERR_INVALID when the system is singular. */
int cv__perspective_matrix(const float src[8], const float dst[8], double m[9]);
/* cv::invert(DECOMP_LU) of a 3x3 matrix; ERR_INVALID when singular. */
int cv__invert3(const double s[9], double t[9]);
/* cv2.perspectiveTransform of one float32 point. */
void cv__perspective_point(const double m[9], float x, float y, float *ox, float *oy);
/* cv2.warpPerspective(src, m, (w, h)), INTER_LINEAR, black border. */
int cv__warp_perspective(const struct vis_image *src, const double m[9], int w, int h,
                         struct vis_image **out);
/* cv2.getOptimalNewCameraMatrix(K, (k1, k2, p1, p2, k3), (w, h), alpha=1). */
void cv__optimal_camera_matrix(const double K[9], const double dc[5], int w, int h, double nk[9]);
/* cv2.undistort(src, K, (k1, k2, p1, p2, k3), newCameraMatrix=newk). */
int cv__undistort(const struct vis_image *src, const double K[9], const double dc[5],
                  const double newk[9], struct vis_image **out);

/* cv2.cvtColor(BGR2GRAY) of OpenCV 4's 8-bit path; GRAY copied; NULL on
 * OOM (blocks/measure.c). */
struct vis_image *cv__gray(const struct vis_image *src);
/* numpy's pairwise float32 sum of n values stride apart (blocks/cv_extra.c). */
float cv__np_pairwise_sum_f32(const float *a, size_t n, size_t stride);
/* camera_focus v2 (blocks/cv_extra.c): the Tenengrad map of a GRAY image
 * (malloc'd, w * h float32) and its numpy float32 mean in *focus; NULL on OOM. */
float *cv__tenengrad(const struct vis_image *gray, double *focus);
enum { CV_FOCUS_ZEBRA = 1, CV_FOCUS_PEAKING = 2, CV_FOCUS_CENTER = 4, CV_FOCUS_HUD = 8 };
/* Roboflow's overlays on a BGR copy of src (gray and fm of src); grid = the
 * divisions (0 = none). */
int cv__focus2_overlays(const struct vis_image *src, const struct vis_image *gray, const float *fm,
                        double focus, int under_t, int over_t, unsigned flags, int grid,
                        struct vis_image **out);
/* auto_rotate_on_edges (blocks/cv_extra.c): Roboflow's dominant-edge angle
 * of img (gray, shrunk to `resolution`, CLAHE, Gaussian 5x5, Sobel
 * orientation histogram); *found false for a flat image or no distinct
 * peak.  target: "vertical", "horizontal" or "either". */
int cv__auto_rotate_angle(const struct vis_image *img, const char *target, int64_t resolution,
                          bool *found, double *angle);
/* SIFT (blocks/sift.c), cv2.SIFT_create() defaults. */
struct cv_keypoint {
    float x, y, size, angle, response;
    int octave; /* OpenCV's packing: octave | layer << 8 | round((xi + 0.5) * 255) << 16 */
};
/* Keypoints (OpenCV's order) and n x 128 descriptors of img; both malloc'd.
 * ERR_LIMIT beyond 4 Mpixel or 200,000 keypoints, ERR_INVALID when the
 * image is too small, ERR_NOMEM. */
int cv__sift(const struct vis_image *img, struct cv_keypoint **kps, float **desc, size_t *n);
/* Lowe's ratio test over exact 2-nearest neighbours (L2) of every d1 in d2. */
size_t cv__ratio_matches(const float *d1, size_t n1, const float *d2, size_t n2, double ratio);
/* The same, writing the good matches (query i, nearest j) into pairs[2k],
 * pairs[2k + 1] (room for 2 * n1; NULL: count only), in query order. */
size_t cv__ratio_match_pairs(const float *d1, size_t n1, const float *d2, size_t n2, double ratio, size_t *pairs);
/* cv2.drawMatchesKnn(a, k1, b, k2, [[m] for the np pairs], None, ...) as
 * sift_comparison@v2 calls it: flann = its FlannBasedMatcher parameters
 * (green matches, red single points), else BFMatcher's (random match
 * colours, no single points).  A new BGR image, NULL when out of memory. */
struct vis_image *cv__draw_matches(const struct vis_image *a, const struct cv_keypoint *k1, size_t n1,
                                   const struct vis_image *b, const struct cv_keypoint *k2, size_t n2,
                                   const size_t *pairs, size_t np, bool flann);
/* cv2.findHomography(src, dst, cv2.RANSAC, thr) of n point pairs (x, y
 * float32 each) into a row-major H (H[8] = 1); *ninl = RANSAC's inlier
 * count.  ERR_INVALID below 4 pairs or when no model is found, ERR_NOMEM
 * (blocks/stitch.c). */
int cv__find_homography(const float *src, const float *dst, size_t n, double thr, double H[9],
                        size_t *ninl);
/* Roboflow's stitch_images: *out (new image, owned by the caller) and the
 * homography H it used (the warped image's pixels -> the pasted image's);
 * <0 with *why (a static string) on failure: ERR_INVALID (too few
 * keypoints or matches, no homography, degenerate), ERR_LIMIT (SIFT or
 * canvas limits), ERR_NOMEM. */
int cv__stitch(const struct vis_image *im1, const struct vis_image *im2, double thr, double H[9],
               struct vis_image **out, const char **why);

/* mask_edge_snap (blocks/snap.c), Roboflow's parameters. */
struct cv_snap_params {
    int tol;         /* pixel_tolerance, >= 1 */
    double sigma;    /* adaptive threshold strictness */
    double min_area; /* min_contour_area */
    int iters;       /* dilation_iterations (closing; > 0 also thins once) */
    int band;        /* boundary_band_width, 1..127 */
    int win;         /* adaptive_window_size (made odd, >= 3) */
};
/* Roboflow's refine_masks on a GRAY image: masks holds nm masks of w * h
 * bytes 0/1 (row-major), replaced by the refined masks; edges (w * h)
 * receives the kept edge pixels 0/1.  ERR_INVALID on bad parameters,
 * ERR_NOMEM. */
int cv__mask_edge_snap(const struct vis_image *gray, uint8_t *masks, size_t nm,
                       const struct cv_snap_params *p, uint8_t *edges);
struct wf_det;
/* The largest-area external contour (cv2.findContours, CHAIN_APPROX_SIMPLE)
 * of a 0/1 mask (w x h, row-major) as d's polygon (has_mask set); *found
 * false when no contour has 3 points or more.  ERR_LIMIT beyond 2^20
 * points, ERR_NOMEM (blocks/snap.c). */
int cv__mask_polygon(const uint8_t *mask, int w, int h, struct wf_det *d, bool *found);

/* ---- BoT-SORT camera-motion compensation (blocks/cmc.c) ---- */
/* cv2.goodFeaturesToTrack(g, max_pts, 0.01, 1, blockSize=3) of a w x h
 * gray buffer: up to max_pts (x, y) pairs into pts, strongest first;
 * returns the count. */
int cv__good_features(const uint8_t *g, int w, int h, float *pts, int max_pts);
/* cv2.calcOpticalFlowPyrLK(prev, next, pts) with its defaults (21 x 21, 3
 * levels): out (2n floats) and status (n) of the n points. */
int cv__lk_track(const uint8_t *prev, const uint8_t *next, int w, int h, const float *pts, int n, float *out,
                 uint8_t *status);
/* cv2.estimateAffinePartial2D(p, q, RANSAC, 3 px) of n pairs into the
 * row-major 2 x 3 H; false when no model is found. */
bool cv__affine_partial_ransac(const float *p, const float *q, int n, double H[6]);
/* The trackers package's CMC state (sparseOptFlow). */
struct cv_cmc {
    bool init;
    uint8_t *prev; /* the previous downscaled gray frame */
    int w, h;
    float *pts;    /* its corners */
    int npts;
};
/* CMC.estimate(frame) with method sparseOptFlow: H (2 x 3, row-major)
 * from the previous frame to this one, identity on the first frame or
 * without enough tracked points; the state moves to this frame. */
int cv__cmc_sparse(struct cv_cmc *s, const struct vis_image *bgr, int downscale, double H[6]);
void cv__cmc_free(struct cv_cmc *s);

#endif
