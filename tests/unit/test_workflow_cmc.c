/*
 * test_workflow_cmc.c — BoT-SORT's sparseOptFlow camera-motion
 * compensation (blocks/cmc.c) against test_workflow_cmc_ref.py
 * (python3-opencv 4.6 as the trackers package calls it) on two analytic
 * frames: goodFeaturesToTrack's corners, calcOpticalFlowPyrLK's tracked
 * points, estimateAffinePartial2D's H with downscale 1 and 2; and the
 * tracker block with enable_cmc on a panning camera.
 */
#include <math.h>

#include "t.h"

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/wf_int.h"

#define W 320
#define H 240

/* test_workflow_cmc_ref.py frame(k) */
static uint8_t *frame(int k, double tx, double ty, double ang)
{
    uint8_t *g = xmalloc((size_t)W * H);
    for (int yy = 0; yy < H; yy++)
        for (int xx = 0; xx < W; xx++) {
            double x = xx, y = yy;
            if (k) {
                double c = cos(ang), s = sin(ang);
                double x0 = x - W / 2.0 - tx, y0 = y - H / 2.0 - ty;
                x = c * x0 + s * y0 + W / 2.0, y = -s * x0 + c * y0 + H / 2.0;
            }
            double v = 128 + 60 * sin(x / 7.0) * cos(y / 5.0) + 40 * sin((x + 2 * y) / 11.0);
            v = floor(v + 0.5);
            g[(size_t)yy * W + xx] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    return g;
}

static struct vis_image *bgr_of(const uint8_t *g)
{
    struct vis_image *im = vis_image_new(W, H, VIS_BGR);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            memset(vis_px(im, x, y), g[(size_t)y * W + x], 3);
    return im;
}

TEST(cmc_corners_flow_and_affine_as_opencv)
{
    uint8_t *f0 = frame(0, 0, 0, 0), *f1 = frame(1, 3.4, -2.2, 0.01);
    float *pts = xmalloc(2000 * sizeof *pts), *nx = xmalloc(2000 * sizeof *nx);
    uint8_t *st = xmalloc(1000);
    /* "corners 1000 105,1 238,1 1,17 1,34 1,50 129,1" */
    int n = cv__good_features(f0, W, H, pts, 1000);
    ASSERT_EQ(n, 1000);
    static const float want_c[12] = {105, 1, 238, 1, 1, 17, 1, 34, 1, 50, 129, 1};
    for (int k = 0; k < 12; k++)
        ASSERT_NEAR(pts[k], want_c[k], 1e-6);
    /* "tracked 1000 107.9607,-1.7007 241.9963,-0.3219 5.4445,13.2891 5.2689,30.2896" */
    cv__lk_track(f0, f1, W, H, pts, n, nx, st);
    int tracked = 0;
    for (int k = 0; k < n; k++)
        tracked += st[k];
    ASSERT_EQ(tracked, 1000);
    static const float want_t[8] = {107.9607f, -1.7007f, 241.9963f, -0.3219f, 5.4445f, 13.2891f, 5.2689f, 30.2896f};
    for (int k = 0; k < 8; k++)
        if (fabsf(nx[k] - want_t[k]) > 0.01f)
            T_FAIL("tracked coordinate %d: %.4f, OpenCV %.4f", k, nx[k], want_t[k]);
    /* "H downscale 1 ..." and "H downscale 2 ..." */
    static const double want_h[2][6] = {{0.999970, -0.010066, 4.597190, 0.010066, 0.999970, -3.793988},
                                        {0.999986, -0.009824, 4.551967, 0.009824, 0.999986, -3.748135}};
    for (int d = 1; d <= 2; d++) {
        struct cv_cmc s = {0};
        struct vis_image *a = bgr_of(f0), *b = bgr_of(f1);
        double Hm[6];
        ASSERT_OK(cv__cmc_sparse(&s, a, d, Hm));
        ASSERT(Hm[0] == 1 && Hm[2] == 0 && Hm[4] == 1); /* first frame: identity */
        ASSERT_OK(cv__cmc_sparse(&s, b, d, Hm));
        for (int k = 0; k < 6; k++) {
            double tol = k == 2 || k == 5 ? 0.02 : 2e-4;
            if (fabs(Hm[k] - want_h[d - 1][k]) > tol)
                T_FAIL("downscale %d: H[%d] = %.6f, OpenCV %.6f", d, k, Hm[k], want_h[d - 1][k]);
        }
        cv__cmc_free(&s);
        vis_image_free(a), vis_image_free(b);
    }
    free(f0), free(f1), free(pts), free(nx), free(st);
}

TEST_MAIN()
