/*
 * test_workflow_zone.c — dynamic_zone (blocks/zone.c) through the engine:
 * a test provider returns instance segmentation predictions whose
 * polygons are ZONE_POLYS; the zones, the convergence flag and the
 * updated masks are compared with test_workflow_zone_ref.h, which
 * test_workflow_zone_ref.py computed with python3-opencv the way
 * roboflow/inference's block does.  cv2.convexHull's vertex order is also
 * checked directly against hand-worked cases.
 */
#include "t.h"

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/workflow.h"

#include "test_workflow_zone_ref.h"

static const char *g_preds; /* JSON array the provider returns */

static int seg_infer(void *ud, const struct wf_model_request *req,
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

/* One prediction per polygon of ZONE_POLYS (box = the polygon's bounds). */
static char *all_preds(void)
{
    char *s = xstrdup("[");
    for (size_t k = 0; k < sizeof ZONE_POLYS / sizeof *ZONE_POLYS; k++) {
        char pts[1024];
        snprintf(pts, sizeof pts, "[%s]", ZONE_POLYS[k]);
        json_t *a = json_loads(pts, 0, NULL);
        double x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
        size_t q;
        json_t *p;
        json_array_foreach(a, q, p) {
            double x = json_number_value(json_object_get(p, "x"));
            double y = json_number_value(json_object_get(p, "y"));
            x0 = MIN(x0, x), y0 = MIN(y0, y), x1 = MAX(x1, x), y1 = MAX(y1, y);
        }
        json_decref(a);
        char *n = xasprintf("%s%s{\"x\":%g,\"y\":%g,\"width\":%g,\"height\":%g,\"confidence\":0.9,"
                            "\"class\":\"field\",\"class_id\":0,\"points\":%s}",
                            s, k ? "," : "", (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, pts);
        free(s), s = n;
    }
    char *n = xasprintf("%s]", s);
    free(s);
    return n;
}

static int run_zone(const char *extra, json_t **row, char *err, size_t errlen)
{
    char def[2048];
    struct wf_workflow *wf = NULL;
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v1\","
             "\"name\":\"seg\",\"images\":\"$inputs.image\",\"model_id\":\"seg/1\"},"
             "{\"type\":\"roboflow_core/dynamic_zone@v1\",\"name\":\"dz\","
             "\"predictions\":\"$steps.seg.predictions\"%s}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"zones\",\"selector\":\"$steps.dz.zones\"},"
             "{\"type\":\"JsonField\",\"name\":\"preds\",\"selector\":\"$steps.dz.predictions\"},"
             "{\"type\":\"JsonField\",\"name\":\"conv\","
             "\"selector\":\"$steps.dz.simplification_converged\"}]}",
             extra);
    int rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    if (rc < 0)
        return rc;
    struct vis_image *im = vis_image_new(ZONE_W, ZONE_H, VIS_BGR);
    memset(im->px, 0, (size_t)im->stride * ZONE_H);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {seg_infer, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    rc = wf_run(wf, &env, &in, &res, err, errlen);
    if (rc == 0)
        *row = json_incref(json_array_get(res, 0));
    json_decref(res);
    vis_image_free(im);
    wf_free(wf);
    return rc;
}

static char *zones_text(const json_t *zones)
{
    char *s = xstrdup("");
    size_t k, q;
    const json_t *z, *p;
    json_array_foreach(zones, k, z) {
        json_array_foreach(z, q, p) {
            char *n = xasprintf("%s%s%lld,%lld", s, q ? " " : "",
                                (long long)json_integer_value(json_array_get(p, 0)),
                                (long long)json_integer_value(json_array_get(p, 1)));
            free(s), s = n;
        }
        char *n = xasprintf("%s;", s);
        free(s), s = n;
    }
    return s;
}

TEST(dynamic_zone_matches_opencv)
{
    char *preds = all_preds();
    g_preds = preds;
    for (size_t r = 0; r < sizeof ZONE_REF / sizeof *ZONE_REF; r++) {
        char extra[128], err[512];
        json_t *row = NULL;
        snprintf(extra, sizeof extra, ",\"required_number_of_vertices\":%d,\"scale_ratio\":%.17g",
                 ZONE_REF[r].n, ZONE_REF[r].scale);
        if (run_zone(extra, &row, err, sizeof err) < 0)
            T_FAIL("case %zu: %s", r, err);
        char *z = zones_text(json_object_get(row, "zones"));
        if (strcmp(z, ZONE_REF[r].zones))
            T_FAIL("case %zu (n=%d, scale %g):\n  %s\nOpenCV\n  %s", r, ZONE_REF[r].n,
                   ZONE_REF[r].scale, z, ZONE_REF[r].zones);
        ASSERT_EQ(json_is_true(json_object_get(row, "conv")), ZONE_REF[r].converged);
        /* the predictions carry the zones as their masks, boxes unchanged */
        const json_t *ps = json_object_get(json_object_get(row, "preds"), "predictions");
        const json_t *zs = json_object_get(row, "zones");
        ASSERT_EQ(json_array_size(ps), json_array_size(zs));
        for (size_t k = 0; k < json_array_size(ps); k++) {
            const json_t *pts = json_object_get(json_array_get(ps, k), "points");
            const json_t *zz = json_array_get(zs, k);
            ASSERT_EQ(json_array_size(pts), json_array_size(zz));
            for (size_t q = 0; q < json_array_size(pts); q++) {
                const json_t *pt = json_array_get(pts, q), *zp = json_array_get(zz, q);
                ASSERT_NEAR(json_number_value(json_object_get(pt, "x")),
                            (double)json_integer_value(json_array_get(zp, 0)), 1e-9);
                ASSERT_NEAR(json_number_value(json_object_get(pt, "y")),
                            (double)json_integer_value(json_array_get(zp, 1)), 1e-9);
            }
        }
        free(z);
        json_decref(row);
    }
    free(preds);
}

TEST(dynamic_zone_without_masks_and_empty)
{
    char err[512];
    json_t *row = NULL;
    g_preds = "[]";
    ASSERT_OK(run_zone(",\"required_number_of_vertices\":4", &row, err, sizeof err));
    ASSERT_EQ(json_array_size(json_object_get(row, "zones")), 0);
    ASSERT(json_is_array(json_object_get(json_object_get(row, "preds"), "predictions")));
    ASSERT(json_is_true(json_object_get(row, "conv")));
    json_decref(row);
}

TEST(dynamic_zone_bad_inputs_are_step_errors)
{
    char err[512] = "";
    json_t *row = NULL;
    char *preds = all_preds();
    g_preds = preds;
    ASSERT(run_zone(",\"required_number_of_vertices\":0", &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "step 'dz'") && strstr(err, "required_number_of_vertices"));
    ASSERT(run_zone(",\"required_number_of_vertices\":100000000", &row, err, sizeof err) < 0);
    ASSERT(run_zone(",\"required_number_of_vertices\":4,\"scale_ratio\":1e300", &row, err,
                    sizeof err) < 0);
    ASSERT(strstr(err, "scale_ratio"));
    ASSERT(run_zone(",\"required_number_of_vertices\":4,\"apply_least_squares\":true", &row, err,
                    sizeof err) < 0);
    ASSERT(strstr(err, "apply_least_squares"));
    /* a polygon entirely outside the image: an empty mask */
    g_preds = "[{\"x\":-50,\"y\":-50,\"width\":10,\"height\":10,\"confidence\":0.9,"
              "\"class\":\"a\",\"class_id\":0,\"points\":[{\"x\":-55,\"y\":-55},"
              "{\"x\":-45,\"y\":-55},{\"x\":-45,\"y\":-45}]}]";
    ASSERT(run_zone(",\"required_number_of_vertices\":4", &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "no mask contour"));
    /* a vertex a million pixels away */
    g_preds = "[{\"x\":50,\"y\":50,\"width\":10,\"height\":10,\"confidence\":0.9,"
              "\"class\":\"a\",\"class_id\":0,\"points\":[{\"x\":10,\"y\":10},"
              "{\"x\":1000000,\"y\":10},{\"x\":50,\"y\":60}]}]";
    ASSERT(run_zone(",\"required_number_of_vertices\":4", &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "far outside"));
    /* partly outside the image: runs (the mask is clipped to the image) */
    g_preds = "[{\"x\":20,\"y\":20,\"width\":10,\"height\":10,\"confidence\":0.9,"
              "\"class\":\"a\",\"class_id\":0,\"points\":[{\"x\":-30,\"y\":-20},"
              "{\"x\":80,\"y\":-5},{\"x\":40,\"y\":70}]}]";
    ASSERT_OK(run_zone(",\"required_number_of_vertices\":4", &row, err, sizeof err));
    ASSERT_EQ(json_array_size(json_array_get(json_object_get(row, "zones"), 0)), 4);
    json_decref(row);
    free(preds);
}

/* cv2.convexHull(clockwise=True) order, worked by hand with OpenCV's rules:
 * from the lowest (x, y) on, then rotated to the contour's lowest index
 * when the hull's indices ascend. */
TEST(convex_hull_order)
{
    int hull[16];
    /* scattered points: the lowest (x, y) first; indices 3 2 1 0 descend from there */
    static const int pts[] = {4, 0, 9, 4, 5, 9, 0, 5, 4, 4, 5, 5};
    ASSERT_EQ(cv__convex_hull(pts, 6, hull), 4);
    static const int want[] = {0, 5, 5, 9, 9, 4, 4, 0};
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(hull[i], want[i]);
    /* collinear points are dropped; all equal points give one vertex */
    static const int line[] = {0, 0, 1, 1, 2, 2, 3, 3};
    ASSERT_EQ(cv__convex_hull(line, 4, hull), 2);
    static const int same[] = {7, 7, 7, 7, 7, 7};
    ASSERT_EQ(cv__convex_hull(same, 3, hull), 1);
    ASSERT_EQ(hull[0], 7);
}

/* cv2.fillPoly on random polygons, some leaving the image (clipped
 * outlines), some self-intersecting (even-odd rows). */
TEST(fill_poly_matches_opencv)
{
    for (size_t r = 0; r < sizeof FILL_REF / sizeof *FILL_REF; r++) {
        struct vis_image *m = NULL;
        ASSERT_OK(cv__fill_poly(FILL_REF[r].pts, (size_t)FILL_REF[r].n, 60, 40, &m));
        unsigned h = 2166136261u;
        int count = 0;
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 60; x++) {
                int b = vis_px(m, x, y)[0] != 0;
                count += b;
                h = (h ^ (unsigned)b) * 16777619u;
            }
        if (h != FILL_REF[r].hash)
            T_FAIL("polygon %zu: %d pixels, OpenCV %d (hash differs)", r, count, FILL_REF[r].count);
        vis_image_free(m);
    }
}

TEST_MAIN()
