/*
 * test_workflow_rotate.c — auto_rotate_on_edges@v1 (blocks/cv_extra.c).
 * Expected angles come from test_workflow_rotate_ref.h, which
 * test_workflow_rotate_ref.py computed with python3-opencv 4.6 / numpy the
 * way roboflow/inference's auto_rotate_on_edges/v1.py does, on smooth
 * stripe images this test computes with the same formula.
 *
 * Tolerance 0.1 degree: the engine's CLAHE (vision's vis_clahe) is close
 * to cv2's but not bit-exact, which moves a few gradient weights; every
 * other step (gray, INTER_AREA, Gaussian 5x5, Sobel, histogram, circular
 * mean) follows numpy / OpenCV.  The flat image must be left alone.
 */
#include "t.h"

#include <math.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/workflow.h"

#include "test_workflow_rotate_ref.h"

static struct vis_image *stripes(int w, int h, double deg, int period)
{
    struct vis_image *im = vis_image_new(w, h, VIS_BGR);
    double a = deg * M_PI / 180.0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = rint(128 + 90 * cos(2 * M_PI * (x * cos(a) - y * sin(a)) / period));
            uint8_t *p = vis_px(im, x, y);
            p[0] = p[1] = p[2] = (uint8_t)v;
        }
    return im;
}

TEST(auto_rotate_angle_matches_opencv)
{
    for (size_t k = 0; k < ARRAY_LEN(ROT_CASES); k++) {
        const struct rot_case *rc = &ROT_CASES[k];
        struct vis_image *im = stripes(rc->w, rc->h, rc->line_deg, rc->period);
        bool found;
        double angle;
        ASSERT_OK(cv__auto_rotate_angle(im, rc->target, rc->res, &found, &angle));
        fprintf(stderr, "case %zu: %s %.6f, OpenCV %.6f\n", k, found ? "found" : "none", angle,
                rc->angle);
        ASSERT_EQ(found, rc->found);
        if (found)
            ASSERT_NEAR(angle, rc->angle, 0.1);
        vis_image_free(im);
    }
}

static int run_rotate(const struct vis_image *im, const char *extra, json_t **row, char *err,
                      size_t errlen)
{
    char *def = xasprintf(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/auto_rotate_on_edges@v1\",\"name\":\"r\","
        "\"image\":\"$inputs.image\"%s}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"a\",\"selector\":\"$steps.r.angle\"},"
        "{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.r.image\"}]}",
        extra);
    struct wf_workflow *wf = NULL;
    int rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    free(def);
    if (rc < 0)
        return rc;
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {NULL, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    rc = wf_run(wf, &env, &in, &res, err, errlen);
    if (rc == 0)
        *row = json_incref(json_array_get(res, 0));
    json_decref(res);
    wf_free(wf);
    return rc;
}

static void image_size(const json_t *row, int *w, int *h)
{
    const char *b64 = json_string_value(json_object_get(json_object_get(row, "img"), "value"));
    ASSERT(b64);
    size_t len;
    uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
    struct vis_image *dec = NULL;
    ASSERT_OK(vis_decode(jpg, len, &dec));
    *w = dec->w, *h = dec->h;
    vis_image_free(dec);
    free(jpg);
}

TEST(auto_rotate_block_rotates_skips_and_refuses)
{
    const struct rot_case *rc = &ROT_CASES[0];
    struct vis_image *im = stripes(rc->w, rc->h, rc->line_deg, rc->period);
    char err[512];
    json_t *row = NULL;
    int w, h;
    if (run_rotate(im, "", &row, err, sizeof err) < 0)
        T_FAIL("%s", err);
    double a = json_number_value(json_object_get(row, "a"));
    ASSERT_NEAR(a, rc->angle, 0.1);
    /* the canvas grows as image_preprocessing's rotation: int(h sin + w cos) */
    image_size(row, &w, &h);
    double rad = fabs(a) * M_PI / 180;
    ASSERT_EQ(w, (int)(rc->h * sin(rad) + rc->w * cos(rad)));
    ASSERT_EQ(h, (int)(rc->h * cos(rad) + rc->w * sin(rad)));
    json_decref(row);
    /* beyond max_correction_degrees / below skip_below_degrees: unchanged, 0.0 */
    static const char *const keep[] = {",\"max_correction_degrees\":5",
                                       ",\"skip_below_degrees\":10"};
    for (size_t k = 0; k < ARRAY_LEN(keep); k++) {
        row = NULL;
        ASSERT_OK(run_rotate(im, keep[k], &row, err, sizeof err));
        ASSERT_NEAR(json_number_value(json_object_get(row, "a")), 0.0, 0);
        image_size(row, &w, &h);
        ASSERT_EQ(w, rc->w);
        ASSERT_EQ(h, rc->h);
        json_decref(row);
    }
    /* bad parameters */
    ASSERT(run_rotate(im, ",\"target_orientation\":\"diagonal\"", &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "step 'r'") && strstr(err, "target_orientation"));
    ASSERT(run_rotate(im, ",\"internal_resolution\":0", &row, err, sizeof err) < 0);
    ASSERT(run_rotate(im, ",\"internal_resolution\":100000", &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "internal_resolution"));
    vis_image_free(im);
    /* a one-pixel image: flat, unchanged */
    struct vis_image *one = vis_image_new(1, 1, VIS_BGR);
    row = NULL;
    ASSERT_OK(run_rotate(one, "", &row, err, sizeof err));
    ASSERT_NEAR(json_number_value(json_object_get(row, "a")), 0.0, 0);
    json_decref(row);
    vis_image_free(one);
}

/* Images narrower than the 5x5 Gaussian (1 or 2 pixels wide, textured):
 * reflect-101 must repeat (this read outside the row before). */
TEST(auto_rotate_on_images_thinner_than_the_kernels)
{
    static const int sizes[][2] = {{1, 150}, {2, 150}, {150, 2}, {2, 2}, {3, 40}};
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        struct vis_image *im = vis_image_new(sizes[k][0], sizes[k][1], VIS_BGR);
        for (int y = 0; y < im->h; y++)
            for (int x = 0; x < im->w * 3; x++)
                vis_px(im, 0, y)[x] = (uint8_t)((x * 97 + y * 61) % 256);
        bool found;
        double angle;
        ASSERT_OK(cv__auto_rotate_angle(im, "either", 1000, &found, &angle));
        ASSERT(!found || (angle > -45.0001 && angle <= 45.0001));
        vis_image_free(im);
    }
}

TEST_MAIN()
