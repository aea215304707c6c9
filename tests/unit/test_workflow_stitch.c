/*
 * test_workflow_stitch.c — stitch_images@v1 and cv__find_homography
 * (blocks/stitch.c) against python3-opencv 4.6 running Roboflow's
 * stitch_images (test_workflow_stitch_ref.h, from
 * test_workflow_stitch_ref.py) on two overlapping views of a synthetic
 * scene computed by the same integer formula.
 *
 * Tolerances (RANSAC draws and SIFT's last bits differ from OpenCV's):
 * - the corners of the warped image through our homography lie within
 *   0.05 px of their positions through OpenCV's (measured: 0.0006 px);
 * - the stitched image has OpenCV's size exactly;
 * - >= 99 % of its pixels equal OpenCV's and >= 99.5 % are within 8 grey
 *   levels (measured: 99.95 % and 100 %; the rest are bilinear samples
 *   that move with sub-pixel differences of H).
 * cv__find_homography on exact correspondences with 30 % gross outliers
 * recovers the generating matrix to 1e-6; malformed inputs fail.
 */
#include "t.h"

#include <math.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/workflow.h"

#include "test_workflow_stitch_ref.h"

static struct vis_image *scene(void)
{
    static const int discs[8][4] = {{60, 50, 18, 240}, {150, 110, 25, 20}, {100, 140, 12, 200},
                                    {180, 40, 15, 10}, {40, 130, 20, 170}, {20, 40, 12, 230},
                                    {30, 90, 9, 30},   {80, 95, 10, 250}};
    struct vis_image *im = vis_image_new(ST_W, ST_H, VIS_BGR);
    for (int y = 0; y < ST_H; y++)
        for (int x = 0; x < ST_W; x++) {
            int v = 90 + ((x / 17 + y / 13) % 2) * 60 + ((x * y) / 97) % 23;
            for (int k = 0; k < 8; k++)
                if ((x - discs[k][0]) * (x - discs[k][0]) + (y - discs[k][1]) * (y - discs[k][1]) <
                    discs[k][2] * discs[k][2])
                    v = discs[k][3] + (x % 5) * 3;
            uint8_t *p = vis_px(im, x, y);
            p[0] = p[1] = p[2] = (uint8_t)v;
        }
    return im;
}

/* A = the scene's right ST_CW columns, B = warpPerspective(scene, ST_M) */
static void views(struct vis_image **a, struct vis_image **b)
{
    struct vis_image *s = scene();
    *a = vis_image_new(ST_CW, ST_H, VIS_BGR);
    for (int y = 0; y < ST_H; y++)
        memcpy(vis_px(*a, 0, y), vis_px(s, ST_W - ST_CW, y), (size_t)ST_CW * 3);
    if (cv__warp_perspective(s, ST_M, ST_CW, ST_H, b) < 0)
        *b = NULL;
    vis_image_free(s);
}

TEST(stitch_close_to_opencv)
{
    struct vis_image *a, *b, *out;
    views(&a, &b);
    ASSERT(b != NULL);
    double H[9];
    const char *why;
    if (cv__stitch(a, b, 3.0, H, &out, &why) < 0)
        T_FAIL("%s", why);
    /* ST_IMAGE1_FIRST is 0: image2 (b) is the warped one */
    double dmax = 0;
    const float cx[4] = {0, 0, ST_CW, ST_CW}, cy[4] = {0, ST_H, ST_H, 0};
    for (int c = 0; c < 4; c++) {
        float x1, y1, x2, y2;
        cv__perspective_point(H, cx[c], cy[c], &x1, &y1);
        cv__perspective_point(ST_HOMOGRAPHY, cx[c], cy[c], &x2, &y2);
        dmax = MAX(dmax, hypot(x1 - x2, y1 - y2));
    }
    ASSERT_EQ(out->w, ST_OUT_W);
    ASSERT_EQ(out->h, ST_OUT_H);
    size_t close = 0, equal = 0, n = (size_t)ST_OUT_W * ST_OUT_H;
    for (int y = 0; y < ST_OUT_H; y++)
        for (int x = 0; x < ST_OUT_W; x++) {
            int d = abs(vis_px(out, x, y)[0] - ST_OUT[(size_t)y * ST_OUT_W + x]);
            close += d <= 8, equal += d == 0;
        }
    fprintf(stderr,
            "stitch: corner distance to OpenCV's homography %.4f px, %zu x %d x %d, "
            "%.2f %% pixels equal, %.2f %% within 8\n",
            dmax, (size_t)out->w, out->h, out->fmt, 100.0 * equal / n, 100.0 * close / n);
    ASSERT(dmax <= 0.05);
    ASSERT(equal >= 0.99 * n);
    ASSERT(close >= 0.995 * n);
    ASSERT_EQ(out->fmt, VIS_BGR);
    vis_image_free(out);
    /* a GRAY image2 is stitched in BGR with the same geometry */
    struct vis_image *g = NULL;
    ASSERT_OK(vis_convert(b, VIS_GRAY, &g));
    if (cv__stitch(a, g, 3.0, H, &out, &why) < 0)
        T_FAIL("%s", why);
    ASSERT_EQ(out->w, ST_OUT_W);
    ASSERT_EQ(out->h, ST_OUT_H);
    ASSERT_EQ(out->fmt, VIS_BGR);
    vis_image_free(out), vis_image_free(g);
    vis_image_free(a), vis_image_free(b);
}

TEST(find_homography_ransac_with_outliers)
{
    const double G[9] = {1.1, 0.05, 12.5, -0.03, 0.95, -7.25, 2e-4, -1e-4, 1};
    float src[2 * 100], dst[2 * 100];
    uint32_t r = 12345;
    for (int i = 0; i < 100; i++) {
        r = r * 1103515245u + 12345u;
        float x = (float)(r >> 8 & 511), y;
        r = r * 1103515245u + 12345u;
        y = (float)(r >> 8 & 383);
        src[2 * i] = x, src[2 * i + 1] = y;
        double w = G[6] * x + G[7] * y + G[8];
        dst[2 * i] = (float)((G[0] * x + G[1] * y + G[2]) / w);
        dst[2 * i + 1] = (float)((G[3] * x + G[4] * y + G[5]) / w);
        if (i % 10 < 3) /* 30 % gross outliers */
            dst[2 * i] += 40 + (float)(i % 7) * 9, dst[2 * i + 1] -= 25 + (float)(i % 5) * 11;
    }
    double H[9];
    size_t ninl;
    ASSERT_OK(cv__find_homography(src, dst, 100, 3.0, H, &ninl));
    ASSERT_EQ(ninl, 70);
    for (int k = 0; k < 9; k++)
        ASSERT(fabs(H[k] - G[k]) <= 1e-6 * MAX(1, fabs(G[k]) * 100));
    /* fewer than 4 pairs; all points on one line */
    ASSERT_EQ(cv__find_homography(src, dst, 3, 3.0, H, &ninl), ERR_INVALID);
    float line[2 * 10], line2[2 * 10];
    for (int i = 0; i < 10; i++)
        line[2 * i] = (float)i, line[2 * i + 1] = 2.f * (float)i, line2[2 * i] = (float)i * 3,
                 line2[2 * i + 1] = 1;
    ASSERT_EQ(cv__find_homography(line, line2, 10, 3.0, H, &ninl), ERR_INVALID);
}

TEST(stitch_malformed_inputs)
{
    double H[9];
    struct vis_image *out = NULL;
    const char *why;
    /* a flat image has no keypoints; a 1 x 1 image is too small for SIFT */
    struct vis_image *a, *b, *flat = vis_image_new(120, 90, VIS_BGR),
                             *one = vis_image_new(1, 1, VIS_BGR);
    memset(flat->px, 128, (size_t)flat->stride * flat->h);
    views(&a, &b);
    ASSERT_EQ(cv__stitch(a, flat, 3.0, H, &out, &why), ERR_INVALID);
    ASSERT(strstr(why, "keypoints") != NULL && out == NULL);
    ASSERT_EQ(cv__stitch(flat, b, 3.0, H, &out, &why), ERR_INVALID);
    ASSERT_EQ(cv__stitch(one, b, 3.0, H, &out, &why), ERR_INVALID);
    ASSERT(strstr(why, "too small") != NULL);
    vis_image_free(flat), vis_image_free(one), vis_image_free(a), vis_image_free(b);
}

static int run_def(const char *step, const struct vis_image *im1, const struct vis_image *im2,
                   json_t **row, char *err, size_t errlen)
{
    char *def = xasprintf("{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":"
                          "\"a\"},{\"type\":\"WorkflowImage\",\"name\":\"b\"}],\"steps\":[%s],"
                          "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"s\",\"selector\":"
                          "\"$steps.s.stitched_image\"}]}",
                          step);
    struct wf_workflow *wf = NULL;
    int rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    free(def);
    if (rc < 0)
        return rc;
    const struct vis_image *i1[1] = {im1}, *i2[1] = {im2};
    struct wf_image_input ii[2] = {{"a", i1, 1, false, NULL}, {"b", i2, 1, false, NULL}};
    struct wf_run_inputs in = {ii, 2, NULL};
    struct wf_env env = {NULL, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    rc = wf_run(wf, &env, &in, &res, err, errlen);
    if (rc == 0)
        *row = json_incref(json_array_get(res, 0));
    json_decref(res);
    wf_free(wf);
    return rc;
}

TEST(stitch_block_through_the_engine)
{
    struct vis_image *a, *b, *flat = vis_image_new(120, 90, VIS_BGR);
    memset(flat->px, 128, (size_t)flat->stride * flat->h);
    views(&a, &b);
    char err[512];
    json_t *row = NULL;
    if (run_def("{\"type\":\"roboflow_core/stitch_images@v1\",\"name\":\"s\",\"image1\":"
                "\"$inputs.a\",\"image2\":\"$inputs.b\"}",
                a, b, &row, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT(json_is_object(json_object_get(row, "s")));
    json_decref(row);
    ASSERT(run_def("{\"type\":\"roboflow_core/stitch_images@v1\",\"name\":\"s\",\"image1\":"
                   "\"$inputs.a\",\"image2\":\"$inputs.b\",\"count_of_best_matches_per_query_"
                   "descriptor\":0}",
                   a, b, &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "greater than 0") != NULL);
    ASSERT(run_def("{\"type\":\"roboflow_core/stitch_images@v1\",\"name\":\"s\",\"image1\":"
                   "\"$inputs.a\",\"image2\":\"$inputs.b\",\"count_of_best_matches_per_query_"
                   "descriptor\":1}",
                   a, b, &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "at least 2") != NULL);
    ASSERT(run_def("{\"type\":\"roboflow_core/stitch_images@v1\",\"name\":\"s\",\"image1\":"
                   "\"$inputs.a\",\"image2\":\"$inputs.b\"}",
                   a, flat, &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "step 's'") && strstr(err, "stitching failed"));
    vis_image_free(flat), vis_image_free(a), vis_image_free(b);
}

TEST_MAIN()
