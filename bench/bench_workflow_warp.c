/*
 * bench_workflow_warp.c — the pixel work of the geometric and focus blocks
 * on a 1080p BGR image (the synthetic frame bench/warp_bench.py builds):
 * perspective_correction's warp (getPerspectiveTransform + warpPerspective
 * to 1920 x 1080), camera-calibration (getOptimalNewCameraMatrix +
 * undistort), camera_focus v2 (gray, Tenengrad map and mean, zebra +
 * peaking + centre + grid + HUD overlays) and auto_rotate_on_edges (angle
 * search at internal_resolution 1000 + the expanding rotation) and SIFT
 * (detectAndCompute with OpenCV's defaults, 3 runs).
 * bench/warp_bench.py runs this and the same calls in python3-opencv in one
 * go.  One line per figure (median ms over the runs):
 *
 *   bench=<name> ms=<median>
 */
#include "workflow/blocks/cv_int.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 1920
#define H 1080

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return d < 0 ? -1 : d > 0;
}

/* frame() of warp_bench.py: a texture with a tilted stripe pattern */
static void make_frame(struct vis_image *im)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = vis_px(im, x, y);
            p[0] = (uint8_t)((x * 5 + y * 3) % 200 + 20);
            p[1] = (uint8_t)(((x * 7 + y) / 16) % 2 ? 200 : 40);
            p[2] = (uint8_t)((x * 3 + y * 2) % 160 + 40);
        }
}

static void report(const char *name, double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    printf("bench=%s ms=%.2f\n", name, t[n / 2]);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 9;
    if (runs < 1 || runs > 1000)
        runs = 9;
    struct vis_image *im = vis_image_new(W, H, VIS_BGR);
    make_frame(im);
    double *t = calloc((size_t)runs, sizeof *t);
    const float src[8] = {200, 1000, 400, 100, 1600, 150, 1800, 1050};
    const float dst[8] = {0, 1079, 0, 0, 1919, 0, 1919, 1079};
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms(), m[9];
        struct vis_image *out = NULL;
        if (cv__perspective_matrix(src, dst, m) < 0 || cv__warp_perspective(im, m, W, H, &out) < 0)
            return 1;
        t[r] = now_ms() - t0;
        vis_image_free(out);
    }
    report("perspective_warp", t, runs);
    const double K[9] = {1400, 0, 960, 0, 1400, 540, 0, 0, 1};
    const double dc[5] = {-0.3, 0.1, 0.001, -0.001, 0.0};
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms(), nk[9];
        struct vis_image *out = NULL;
        cv__optimal_camera_matrix(K, dc, W, H, nk);
        if (cv__undistort(im, K, dc, nk, &out) < 0)
            return 1;
        t[r] = now_ms() - t0;
        vis_image_free(out);
    }
    report("undistort", t, runs);
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms(), focus;
        struct vis_image *gray = cv__gray(im), *out = NULL;
        float *fm = cv__tenengrad(gray, &focus);
        if (!fm || cv__focus2_overlays(im, gray, fm, focus, 7, 247,
                                       CV_FOCUS_ZEBRA | CV_FOCUS_PEAKING | CV_FOCUS_CENTER |
                                           CV_FOCUS_HUD,
                                       3, &out) < 0)
            return 1;
        t[r] = now_ms() - t0;
        free(fm);
        vis_image_free(gray);
        vis_image_free(out);
    }
    report("camera_focus_v2", t, runs);
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms(), angle;
        bool found;
        struct vis_image *out = NULL;
        if (cv__auto_rotate_angle(im, "vertical", 1000, &found, &angle) < 0)
            return 1;
        if (found && cv__rotate(im, angle, &out) < 0)
            return 1;
        t[r] = now_ms() - t0;
        if (r == 0)
            fprintf(stderr, "auto_rotate angle %.4f (%s)\n", angle, found ? "found" : "none");
        vis_image_free(out);
    }
    report("auto_rotate", t, runs);
    int sruns = runs < 3 ? runs : 3;
    for (int r = 0; r < sruns; r++) {
        double t0 = now_ms();
        struct cv_keypoint *k;
        float *d;
        size_t n;
        if (cv__sift(im, &k, &d, &n) < 0)
            return 1;
        t[r] = now_ms() - t0;
        if (r == 0)
            fprintf(stderr, "sift: %zu keypoints\n", n);
        free(k), free(d);
    }
    report("sift", t, sruns);
    free(t);
    vis_image_free(im);
    return 0;
}
