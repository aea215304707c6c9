/*
 * test_workflow_snap.c — mask_edge_snap@v1 (blocks/snap.c).  Expected
 * values come from test_workflow_snap_ref.h, which test_workflow_snap_ref.py
 * computed with python3-opencv 4.6 and numpy the way roboflow/inference's
 * block does: the kept edge pixels and the refined masks of two masks on a
 * synthetic image, for three parameter sets (defaults; no closing, permissive;
 * strict with wide band and window).
 *
 * Tolerance: the float box means are summed in another order than
 * OpenCV's running sums, so a pixel whose magnitude equals its threshold to
 * the last bit could flip; the tests allow 0.2 % of the pixels of each map
 * to differ (measured: 0).
 */
#include "t.h"

#include <math.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/workflow.h"

#include "test_workflow_snap_ref.h"

#define NP ((size_t)SNAP_W * SNAP_H)

static struct vis_image *gray_img(void)
{
    struct vis_image *im = vis_image_new(SNAP_W, SNAP_H, VIS_GRAY);
    for (int y = 0; y < SNAP_H; y++)
        for (int x = 0; x < SNAP_W; x++)
            vis_px(im, x, y)[0] = SNAP_GRAY[(size_t)y * SNAP_W + x];
    return im;
}

static size_t differing(const uint8_t *got, const char *bits)
{
    size_t d = 0;
    for (size_t i = 0; i < NP; i++)
        d += got[i] != (bits[i] == '1');
    return d;
}

TEST(edges_and_refined_masks_match_reference)
{
    struct vis_image *g = gray_img();
    for (int c = 0; c < SNAP_NCASES; c++) {
        uint8_t *masks = xcalloc(2 * NP, 1), *edges = xcalloc(NP, 1);
        for (size_t m = 0; m < 2; m++)
            for (size_t i = 0; i < NP; i++)
                masks[m * NP + i] = SNAP_MASKS[m][i] == '1';
        struct cv_snap_params p = {SNAP_CASES[c].tol,   SNAP_CASES[c].sigma,
                                   SNAP_CASES[c].min_area, SNAP_CASES[c].iters,
                                   SNAP_CASES[c].band,  SNAP_CASES[c].win};
        ASSERT_OK(cv__mask_edge_snap(g, masks, 2, &p, edges));
        size_t de = differing(edges, SNAP_CASES[c].edges);
        size_t d0 = differing(masks, SNAP_CASES[c].masks[0]);
        size_t d1 = differing(masks + NP, SNAP_CASES[c].masks[1]);
        printf("# case %d: differing pixels edges %zu, mask0 %zu, mask1 %zu\n", c, de, d0, d1);
        ASSERT(de <= NP / 500 && d0 <= NP / 500 && d1 <= NP / 500);
        /* the masks moved: the reference differs from the input */
        ASSERT(differing(masks, SNAP_MASKS[0]) > 20);
        free(masks), free(edges);
    }
    vis_image_free(g);
}

TEST(no_masks_keeps_every_edge_component)
{
    struct vis_image *g = gray_img();
    uint8_t *edges = xcalloc(NP, 1);
    struct cv_snap_params p = {15, 1.0, 50.0, 2, 15, 41};
    ASSERT_OK(cv__mask_edge_snap(g, NULL, 0, &p, edges));
    size_t n = 0, inband = 0;
    for (size_t i = 0; i < NP; i++)
        n += edges[i], inband += edges[i] && SNAP_CASES[0].edges[i] == '1';
    /* without the band filter there are at least the banded edges */
    ASSERT(n >= inband && inband > 100);
    struct cv_snap_params bad = {15, 1.0, 50.0, 2, 0, 41};
    ASSERT_EQ(cv__mask_edge_snap(g, NULL, 0, &bad, edges), ERR_INVALID);
    free(edges);
    vis_image_free(g);
}

TEST(tiny_and_degenerate_inputs_run)
{
    static const int sizes[][2] = {{1, 1}, {2, 1}, {1, 3}, {3, 3}, {7, 5}};
    struct cv_snap_params p = {15, 1.0, 0.0, 2, 15, 41};
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        int w = sizes[k][0], h = sizes[k][1];
        struct vis_image *g = vis_image_new(w, h, VIS_GRAY);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                vis_px(g, x, y)[0] = (uint8_t)((x * 97 + y * 31) & 255);
        size_t np = (size_t)w * h;
        uint8_t *masks = xcalloc(2 * np, 1), *edges = xcalloc(np, 1);
        memset(masks, 1, np); /* a mask covering the whole image; the other empty */
        ASSERT_OK(cv__mask_edge_snap(g, masks, 2, &p, edges));
        for (size_t i = 0; i < np; i++)
            ASSERT(masks[np + i] == 0); /* empty stays empty */
        free(masks), free(edges);
        vis_image_free(g);
    }
    /* a flat image: no edges, the mask refilled unchanged */
    struct vis_image *g = vis_image_new(40, 30, VIS_GRAY);
    for (int y = 0; y < 30; y++)
        memset(vis_px(g, 0, y), 77, 40);
    uint8_t *m = xcalloc(40 * 30, 1), *e = xcalloc(40 * 30, 1);
    for (int y = 5; y < 20; y++)
        memset(m + y * 40 + 8, 1, 20);
    ASSERT_OK(cv__mask_edge_snap(g, m, 1, &p, e));
    size_t on = 0, ne = 0;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++) {
            on += m[y * 40 + x];
            ne += e[y * 40 + x];
            ASSERT_EQ(m[y * 40 + x], y >= 5 && y < 20 && x >= 8 && x < 28);
        }
    ASSERT_EQ(on, 15 * 20);
    ASSERT_EQ(ne, 0);
    free(m), free(e);
    vis_image_free(g);
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

#define SNAP_OUTS                                                                             \
    "{\"type\":\"JsonField\",\"name\":\"ref\",\"selector\":\"$steps.s.refined_segmentation\"}," \
    "{\"type\":\"JsonField\",\"name\":\"edges\",\"selector\":\"$steps.s.edges\"}"

static int run_wf(const char *params, json_t **row, char *err, size_t errlen)
{
    char *def = xasprintf(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v1\","
        "\"name\":\"m\",\"images\":\"$inputs.image\",\"model_id\":\"seg/1\"},"
        "{\"type\":\"roboflow_core/mask_edge_snap@v1\",\"name\":\"s\",\"image\":\"$inputs.image\","
        "\"segmentation\":\"$steps.m.predictions\"%s}],\"outputs\":[" SNAP_OUTS "]}",
        params);
    struct wf_workflow *wf = NULL;
    int rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    free(def);
    if (rc < 0)
        return rc;
    struct vis_image *g = gray_img(), *im = NULL;
    ASSERT_OK(vis_convert(g, VIS_BGR, &im));
    vis_image_free(g);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {preds_infer, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    rc = wf_run(wf, &env, &in, &res, err, errlen);
    if (rc == 0)
        *row = json_incref(json_array_get(res, 0));
    json_decref(res);
    vis_image_free(im);
    wf_free(wf);
    return rc;
}

/* The mask polygon of the reference's input mask 0 (its 4 vertices). */
#define SEG_PRED                                                                              \
    "[{\"x\":44,\"y\":41.5,\"width\":44,\"height\":45,\"confidence\":0.9,\"class\":\"a\","     \
    "\"class_id\":0,\"points\":[{\"x\":25,\"y\":19},{\"x\":66,\"y\":25},{\"x\":60,\"y\":64},"  \
    "{\"x\":22,\"y\":56}]}]"

TEST(block_refines_the_polygon_as_the_reference)
{
    g_preds = SEG_PRED;
    char err[512];
    json_t *row = NULL;
    ASSERT_OK(run_wf("", &row, err, sizeof err));
    const json_t *ps = json_object_get(json_object_get(row, "ref"), "predictions");
    ASSERT_EQ(json_array_size(ps), 1);
    const json_t *pts = json_object_get(json_array_get(ps, 0), "points");
    size_t n = json_array_size(pts);
    ASSERT(n >= 3);
    int *pp = xcalloc(2 * n, sizeof *pp);
    for (size_t k = 0; k < n; k++) {
        pp[2 * k] = (int)json_number_value(json_object_get(json_array_get(pts, k), "x"));
        pp[2 * k + 1] = (int)json_number_value(json_object_get(json_array_get(pts, k), "y"));
    }
    struct vis_image *f = NULL;
    ASSERT_OK(cv__fill_poly(pp, n, SNAP_W, SNAP_H, &f));
    /* only mask 0 is given: its band alone filters the edges, so compare
     * against the reference's mask 0 where mask 1's band plays no part */
    size_t diff = 0, area = 0;
    for (int y = 0; y < SNAP_H; y++)
        for (int x = 0; x < SNAP_W; x++) {
            bool want = SNAP_CASES[0].masks[0][(size_t)y * SNAP_W + x] == '1';
            area += want;
            diff += want != (vis_px(f, x, y)[0] != 0);
        }
    printf("# polygon of %zu points, %zu of %zu mask pixels differ\n", n, diff, area);
    ASSERT(diff * 50 <= area);
    vis_image_free(f);
    free(pp);
    const json_t *eds = json_object_get(json_object_get(row, "edges"), "predictions");
    ASSERT_EQ(json_array_size(eds), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(eds, 0), "class")), "edges");
    json_decref(row);

    /* no detections: passed through, edges of the whole image */
    g_preds = "[]";
    ASSERT_OK(run_wf("", &row, err, sizeof err));
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(row, "ref"), "predictions")), 0);
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(row, "edges"), "predictions")), 1);
    json_decref(row);
}

TEST(bad_parameters_are_step_errors)
{
    g_preds = SEG_PRED;
    static const char *const bad[][2] = {
        {",\"pixel_tolerance\":0", "pixel_tolerance"},
        {",\"pixel_tolerance\":101", "pixel_tolerance"},
        {",\"sigma\":0.001", "sigma"},
        {",\"min_contour_area\":-1", "min_contour_area"},
        {",\"dilation_iterations\":21", "dilation_iterations"},
        {",\"boundary_band_width\":0", "boundary_band_width"},
        {",\"adaptive_window_size\":2", "adaptive_window_size"},
        {",\"adaptive_window_size\":500", "adaptive_window_size"},
    };
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        char err[512] = "";
        json_t *row = NULL;
        int rc = run_wf(bad[k][0], &row, err, sizeof err);
        if (rc == 0)
            { json_decref(row); T_FAIL("case %zu ran", k); }
        else if (!strstr(err, bad[k][1]))
            T_FAIL("case %zu: '%s' lacks '%s'", k, err, bad[k][1]);
    }
    /* a box-only detection among masks: step error; out-of-range polygon too */
    g_preds = "[{\"x\":44,\"y\":41.5,\"width\":44,\"height\":45,\"confidence\":0.9,"
              "\"class\":\"a\",\"class_id\":0,\"points\":[{\"x\":25,\"y\":19},{\"x\":66,"
              "\"y\":25},{\"x\":60,\"y\":64}]},{\"x\":10,\"y\":10,\"width\":4,\"height\":4,"
              "\"confidence\":0.9,\"class\":\"a\",\"class_id\":0}]";
    char err[512] = "";
    json_t *row = NULL;
    if (run_wf("", &row, err, sizeof err) == 0)
        { json_decref(row); T_FAIL("mixed masks ran"); }
    g_preds = "[{\"x\":44,\"y\":41.5,\"width\":44,\"height\":45,\"confidence\":0.9,"
              "\"class\":\"a\",\"class_id\":0,\"points\":[{\"x\":25,\"y\":19},{\"x\":1e9,"
              "\"y\":25},{\"x\":60,\"y\":64}]}]";
    if (run_wf("", &row, err, sizeof err) == 0)
        { json_decref(row); T_FAIL("huge polygon ran"); }
    else
        ASSERT(strstr(err, "out of range") != NULL);
}

TEST_MAIN()
