/*
 * test_workflow_warp.c — perspective_correction and camera-calibration
 * (blocks/warp.c).  Expected values come from test_workflow_warp_ref.h,
 * which test_workflow_warp_ref.py computed with python3-opencv 4.6 the way
 * roboflow/inference's blocks do: the transformation matrices, the moved
 * boxes / mask polygon / keypoint, the extension by detection anchors, and
 * the warped and undistorted pixels of a synthetic image.
 *
 * Pixel tolerance: both outputs are identical to OpenCV's on the reference
 * (measured: 100 %, max difference 0).  OpenCV rounds each source position
 * to 1/32 pixel; where a position lies within ~1e-12 of a rounding step, a
 * last-bit difference in the double arithmetic (OpenCV's SIMD loops sum in
 * another order) could pick the neighbouring step and move that pixel by a
 * few levels, so the tests allow 0.5 % of the bytes to differ by <= 8.
 */
#include "t.h"

#include <math.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/workflow.h"

#include "test_workflow_warp_ref.h"

static struct vis_image *source(void)
{
    struct vis_image *im = vis_image_new(WARP_SW, WARP_SH, VIS_BGR);
    for (int y = 0; y < WARP_SH; y++)
        for (int x = 0; x < WARP_SW; x++)
            for (int c = 0; c < 3; c++)
                vis_px(im, x, y)[c] = (uint8_t)(((x * 7 + y * 3 + c * 40) ^ ((x * y) / 5)) & 255);
    return im;
}

static int hexval(char ch) { return ch <= '9' ? ch - '0' : ch - 'a' + 10; }

/* Compare img with the hex bytes ref: fraction identical, max difference. */
static void compare(const struct vis_image *img, const char *ref, double *same, int *maxd)
{
    size_t n = (size_t)img->w * (size_t)img->h * 3, eq = 0;
    ASSERT_EQ(strlen(ref), 2 * n);
    *maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int r = hexval(ref[2 * i]) * 16 + hexval(ref[2 * i + 1]);
        int v = img->px[(i / 3 / (size_t)img->w) * (size_t)img->stride +
                        (i % (3 * (size_t)img->w))];
        eq += v == r;
        *maxd = MAX(*maxd, abs(v - r));
    }
    *same = (double)eq / (double)n;
}

TEST(perspective_matrix_and_warp_match_opencv)
{
    /* the polygon of the reference after Roboflow's ordering: bl, tl, tr, br */
    const float src[8] = {20, 100, 30, 15, 140, 10, 150, 110};
    const float dst[8] = {0, 47, 0, 0, 63, 0, 63, 47};
    double m[9];
    ASSERT_OK(cv__perspective_matrix(src, dst, m));
    for (int k = 0; k < 9; k++)
        ASSERT_NEAR(m[k], WARP_M1[k], 1e-12 * MAX(1, fabs(WARP_M1[k])));
    struct vis_image *im = source(), *out = NULL;
    ASSERT_OK(cv__warp_perspective(im, WARP_M1, 64, 48, &out));
    double same;
    int maxd;
    compare(out, WARP_IMG1, &same, &maxd);
    fprintf(stderr, "warpPerspective: %.4f %% identical, max diff %d\n", same * 100, maxd);
    ASSERT(same >= 0.995);
    ASSERT_LE(maxd, 8);
    vis_image_free(out);
    vis_image_free(im);
    /* a degenerate quadrilateral (three collinear points) has no transform */
    const float flat[8] = {0, 0, 10, 0, 20, 0, 5, 5};
    ASSERT(cv__perspective_matrix(flat, dst, m) < 0);
}

TEST(undistort_matches_opencv)
{
    struct vis_image *full = source(), *im = NULL, *out = NULL;
    ASSERT_OK(vis_crop(full, 0, 0, 80, 60, &im));
    vis_image_free(full);
    const double K[9] = {90.0, 0, 41.5, 0, 85.0, 29.0, 0, 0, 1};
    const double dc[5] = {-0.32, 0.11, 0.0015, -0.002, 0.01};
    double nk[9];
    cv__optimal_camera_matrix(K, dc, 80, 60, nk);
    for (int k = 0; k < 9; k++)
        ASSERT_NEAR(nk[k], CAL_NEWK[k], 1e-9 * MAX(1, fabs(CAL_NEWK[k])));
    ASSERT_OK(cv__undistort(im, K, dc, CAL_NEWK, &out));
    double same;
    int maxd;
    compare(out, CAL_IMG, &same, &maxd);
    fprintf(stderr, "undistort: %.4f %% identical, max diff %d\n", same * 100, maxd);
    ASSERT(same >= 0.995);
    ASSERT_LE(maxd, 8);
    vis_image_free(out);
    vis_image_free(im);
}

/* ---- through the engine ------------------------------------------------------------------- */

static const char *g_preds;

static int preds_infer(void *ud, const struct wf_model_request *req,
                       const struct vis_image *const *images, size_t n, json_t **out, char *err,
                       size_t errlen)
{
    (void)ud, (void)req;
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *p = json_loads(g_preds, 0, &je);
        if (!p) {
            snprintf(err, errlen, "bad predictions: %s", je.text);
            return ERR_INVALID;
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height",
                           images[i]->h, "predictions", p);
    }
    return 0;
}

/* Run a workflow with an instance segmentation model step "m" and the
 * given step(s); returns results[0]. */
static int run_wf(const char *steps, const char *outputs, const char *params_json, json_t **row,
                  char *err, size_t errlen)
{
    char *def = xasprintf(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
        "{\"type\":\"WorkflowParameter\",\"name\":\"polys\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v1\","
        "\"name\":\"m\",\"images\":\"$inputs.image\",\"model_id\":\"seg/1\"},%s],"
        "\"outputs\":[%s]}",
        steps, outputs);
    struct wf_workflow *wf = NULL;
    int rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    free(def);
    if (rc < 0)
        return rc;
    struct vis_image *im = source();
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    json_t *params = params_json ? json_loads(params_json, 0, NULL) : NULL;
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {preds_infer, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    rc = wf_run(wf, &env, &in, &res, err, errlen);
    if (rc == 0)
        *row = json_incref(json_array_get(res, 0));
    json_decref(res);
    json_decref(params);
    vis_image_free(im);
    wf_free(wf);
    return rc;
}

static void assert_box(const json_t *p, const int *b)
{
    double w = json_number_value(json_object_get(p, "width"));
    double h = json_number_value(json_object_get(p, "height"));
    double x = json_number_value(json_object_get(p, "x"));
    double y = json_number_value(json_object_get(p, "y"));
    ASSERT_NEAR(x - w / 2, b[0], 1e-6);
    ASSERT_NEAR(y - h / 2, b[1], 1e-6);
    ASSERT_NEAR(x + w / 2, b[2], 1e-6);
    ASSERT_NEAR(y + h / 2, b[3], 1e-6);
}

/* {"x","y","width","height"} of xyxy */
static char *pred(double x1, double y1, double x2, double y2, const char *extra)
{
    return xasprintf("{\"x\":%.17g,\"y\":%.17g,\"width\":%.17g,\"height\":%.17g,"
                     "\"confidence\":0.9,\"class\":\"a\",\"class_id\":0%s}",
                     (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, extra);
}

#define PC_OUTS                                                                              \
    "{\"type\":\"JsonField\",\"name\":\"det\",\"selector\":\"$steps.pc.corrected_coordinates\"}," \
    "{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.pc.warped_image\"},"        \
    "{\"type\":\"JsonField\",\"name\":\"w\","                                                  \
    "\"selector\":\"$steps.pc.extended_transformed_rect_width\"},"                             \
    "{\"type\":\"JsonField\",\"name\":\"h\","                                                  \
    "\"selector\":\"$steps.pc.extended_transformed_rect_height\"}"

TEST(perspective_correction_moves_detections_as_roboflow)
{
    char *p0 = pred(40, 30, 60, 50,
                    ",\"points\":[{\"x\":40,\"y\":30},{\"x\":60,\"y\":30},{\"x\":60,\"y\":50},"
                    "{\"x\":45,\"y\":50}]");
    char *p1 = pred(100.4, 60.5, 130.6, 90.5, "");
    char *preds = xasprintf("[%s,%s]", p0, p1);
    g_preds = preds;
    char err[512];
    json_t *row = NULL;
    /* the polygon as a workflow parameter, in shuffled order; warp on */
    if (run_wf("{\"type\":\"roboflow_core/perspective_correction@v1\",\"name\":\"pc\","
               "\"images\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\","
               "\"perspective_polygons\":\"$inputs.polys\",\"transformed_rect_width\":64,"
               "\"transformed_rect_height\":48,\"warp_image\":true}",
               PC_OUTS, "{\"polys\":[[140,10],[20,100],[150,110],[30,15]]}", &row, err,
               sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT_EQ(json_integer_value(json_object_get(row, "w")), 64);
    ASSERT_EQ(json_integer_value(json_object_get(row, "h")), 48);
    const json_t *ps = json_object_get(json_object_get(row, "det"), "predictions");
    ASSERT_EQ(json_array_size(ps), 2);
    /* the mask detection: box from the moved polygon, polygon rounded */
    assert_box(json_array_get(ps, 0), WARP_POLYBOX1);
    const json_t *pts = json_object_get(json_array_get(ps, 0), "points");
    ASSERT_EQ(json_array_size(pts), 4);
    for (size_t k = 0; k < 4; k++) {
        ASSERT_NEAR(json_number_value(json_object_get(json_array_get(pts, k), "x")),
                    WARP_POLY1[k][0], 1e-9);
        ASSERT_NEAR(json_number_value(json_object_get(json_array_get(pts, k), "y")),
                    WARP_POLY1[k][1], 1e-9);
    }
    /* the box detection (box rounded half to even first) */
    assert_box(json_array_get(ps, 1), WARP_BOX1[1]);
    /* the warped image: 64 x 48 JPEG */
    const char *b64 = json_string_value(json_object_get(json_object_get(row, "img"), "value"));
    ASSERT(b64);
    size_t len;
    uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
    struct vis_image *dec = NULL;
    ASSERT_OK(vis_decode(jpg, len, &dec));
    ASSERT_EQ(dec->w, 64);
    ASSERT_EQ(dec->h, 48);
    vis_image_free(dec);
    free(jpg);
    json_decref(row);
    /* the same polygon as a literal, one of two 4-vertex polygons plus a
     * triangle: the largest 4-vertex one is used */
    row = NULL;
    if (run_wf("{\"type\":\"PerspectiveCorrection\",\"name\":\"pc\",\"image\":\"$inputs.image\","
               "\"predictions\":\"$steps.m.predictions\",\"perspective_polygons\":[["
               "[[1,1],[5,1],[5,5],[1,5]],[[140,10],[20,100],[150,110],[30,15]],"
               "[[0,0],[100,0],[50,50]]]],\"transformed_rect_width\":64,"
               "\"transformed_rect_height\":48}",
               PC_OUTS, NULL, &row, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ps = json_object_get(json_object_get(row, "det"), "predictions");
    assert_box(json_array_get(ps, 1), WARP_BOX1[1]);
    json_decref(row);
    free(preds), free(p0), free(p1);
}

TEST(perspective_correction_extends_polygon_by_anchors)
{
    char *p0 = pred(5, 50, 25, 115, ""), *p1 = pred(120, 2, 158, 30, "");
    char *preds = xasprintf("[%s,%s]", p0, p1);
    g_preds = preds;
    static const char *const anchors[] = {"ALL", "BOTTOM_CENTER"};
    const int ew[2] = {WARP_EXT0_W, WARP_EXT1_W}, eh[2] = {WARP_EXT0_H, WARP_EXT1_H};
    const int(*boxes[2])[4] = {WARP_EXT0_BOX, WARP_EXT1_BOX};
    for (int k = 0; k < 2; k++) {
        char steps[1024], err[512];
        json_t *row = NULL;
        snprintf(steps, sizeof steps,
                 "{\"type\":\"roboflow_core/perspective_correction@v1\",\"name\":\"pc\","
                 "\"images\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\","
                 "\"perspective_polygons\":[[30,20],[130,25],[140,100],[25,95]],"
                 "\"transformed_rect_width\":100,\"transformed_rect_height\":80,"
                 "\"extend_perspective_polygon_by_detections_anchor\":\"%s\"}",
                 anchors[k]);
        if (run_wf(steps, PC_OUTS, NULL, &row, err, sizeof err) < 0)
            T_FAIL("%s: %s", anchors[k], err);
        ASSERT_EQ(json_integer_value(json_object_get(row, "w")), ew[k]);
        ASSERT_EQ(json_integer_value(json_object_get(row, "h")), eh[k]);
        const json_t *ps = json_object_get(json_object_get(row, "det"), "predictions");
        assert_box(json_array_get(ps, 0), boxes[k][0]);
        assert_box(json_array_get(ps, 1), boxes[k][1]);
        json_decref(row);
    }
    free(preds), free(p0), free(p1);
}

TEST(perspective_correction_bad_inputs_are_step_errors)
{
    g_preds = "[]";
    static const char *const bad[][2] = {
        {"\"perspective_polygons\":[[0,0],[10,0],[20,0],[5,5]]", "degenerate"},
        {"\"perspective_polygons\":[[[0,0],[10,0],[5,5]]]", "4 vertices"},
        {"\"perspective_polygons\":[[]]", "non-empty"},
        {"\"perspective_polygons\":[[0,0],[10,0],[10,10],[0,10]],\"transformed_rect_width\":0",
         "transformed_rect_width"},
        {"\"perspective_polygons\":[[0,0],[10,0],[10,10],[0,10]],"
         "\"transformed_rect_width\":100000000",
         "transformed_rect_width"},
        {"\"perspective_polygons\":[[0,0],[10,0],[10,10],[0,10]],\"warp_image\":true,"
         "\"transformed_rect_width\":16000,\"transformed_rect_height\":16000",
         "exceeds"},
        {"\"perspective_polygons\":[[0,0],[1e300,0],[10,10],[0,10]]", "out of range"},
        {"\"perspective_polygons\":[[0,0],[10,0],[10,10],[0,10]],"
         "\"extend_perspective_polygon_by_detections_anchor\":\"NOWHERE\"",
         "NOWHERE"},
        {"\"perspective_polygons\":[[[[0,0],[10,0],[10,10],[0,10]]],[[[0,0],[10,0],[10,10],"
         "[0,10]]],[[[0,0],[10,0],[10,10],[0,10]]]]",
         "batch size"},
    };
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        char steps[1024], err[512] = "";
        json_t *row = NULL;
        snprintf(steps, sizeof steps,
                 "{\"type\":\"roboflow_core/perspective_correction@v1\",\"name\":\"pc\","
                 "\"images\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\",%s}",
                 bad[k][0]);
        int rc = run_wf(steps, PC_OUTS, NULL, &row, err, sizeof err);
        if (rc == 0)
            T_FAIL("case %zu ran", k);
        if (!strstr(err, bad[k][1]))
            T_FAIL("case %zu: '%s' lacks '%s'", k, err, bad[k][1]);
    }
    /* empty detections run: empty corrected detections */
    char err[512];
    json_t *row = NULL;
    ASSERT_OK(run_wf("{\"type\":\"roboflow_core/perspective_correction@v1\",\"name\":\"pc\","
                     "\"images\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\","
                     "\"perspective_polygons\":[[0,0],[10,0],[10,10],[0,10]],"
                     "\"extend_perspective_polygon_by_detections_anchor\":\"ALL\"}",
                     PC_OUTS, NULL, &row, err, sizeof err));
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(row, "det"), "predictions")), 0);
    ASSERT_EQ(json_integer_value(json_object_get(row, "w")), 1000);
    json_decref(row);
}

#define CAL_OUTS "{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.cal.calibrated_image\"}"

TEST(camera_calibration_runs_and_rejects_bad_parameters)
{
    char err[512];
    json_t *row = NULL;
    g_preds = "[]";
    ASSERT_OK(run_wf("{\"type\":\"roboflow_core/camera-calibration@v1\",\"name\":\"cal\","
                     "\"image\":\"$inputs.image\",\"fx\":150,\"fy\":150,\"cx\":80,\"cy\":60,"
                     "\"k1\":-0.3,\"k2\":0.1,\"k3\":0,\"p1\":0.001,\"p2\":0}",
                     CAL_OUTS, NULL, &row, err, sizeof err));
    const char *b64 = json_string_value(json_object_get(json_object_get(row, "img"), "value"));
    ASSERT(b64);
    size_t len;
    uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
    struct vis_image *dec = NULL;
    ASSERT_OK(vis_decode(jpg, len, &dec));
    ASSERT_EQ(dec->w, WARP_SW);
    ASSERT_EQ(dec->h, WARP_SH);
    vis_image_free(dec);
    free(jpg);
    json_decref(row);
    static const char *const bad[][2] = {
        {"\"fx\":0,\"fy\":150,\"cx\":80,\"cy\":60,\"k1\":0,\"k2\":0,\"k3\":0,\"p1\":0,\"p2\":0",
         "fx and fy"},
        {"\"fx\":1e300,\"fy\":150,\"cx\":80,\"cy\":60,\"k1\":0,\"k2\":0,\"k3\":0,\"p1\":0,\"p2\":0",
         "fx must be"},
        {"\"fx\":null,\"fy\":150,\"cx\":80,\"cy\":60,\"k1\":0,\"k2\":0,\"k3\":0,\"p1\":0,\"p2\":0",
         "fx is required"},
        {"\"fx\":150,\"fy\":150,\"cx\":80,\"cy\":60,\"k1\":0,\"k2\":0,\"k3\":0,\"p1\":0,\"p2\":0,"
         "\"use_fisheye_model\":true",
         "fisheye"},
    };
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        char steps[1024];
        err[0] = 0;
        snprintf(steps, sizeof steps,
                 "{\"type\":\"roboflow_core/camera-calibration@v1\",\"name\":\"cal\","
                 "\"image\":\"$inputs.image\",%s}",
                 bad[k][0]);
        if (run_wf(steps, CAL_OUTS, NULL, &row, err, sizeof err) == 0)
            T_FAIL("case %zu ran", k);
        if (!strstr(err, bad[k][1]))
            T_FAIL("case %zu: '%s' lacks '%s'", k, err, bad[k][1]);
    }
    /* a required field left out is a compile error */
    ASSERT(run_wf("{\"type\":\"roboflow_core/camera-calibration@v1\",\"name\":\"cal\","
                  "\"image\":\"$inputs.image\"}",
                  CAL_OUTS, NULL, &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "fx"));
}

TEST_MAIN()
