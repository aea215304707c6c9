/*
 * test_workflow_rollup.c — detections_list_rollup@v1 through the engine
 * (model -> dynamic_crop -> model on the crops -> dimension_collapse ->
 * rollup) against test_workflow_rollup_ref.py (Roboflow's merging written
 * from the block's source with skimage / shapely / OpenCV): boxes at three
 * overlap thresholds and strategies, keypoints at two merge distances,
 * masks (polygon union and the IoU gate), crop_zones; malformed inputs
 * (no parent detections, child lists of another length, bad parameters)
 * give step or compile errors.
 */
#include <unistd.h>

#include "t.h"

#include "base/base.h"
#include "test_workflow_fake.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/wf_int.h"

static bool g_no_parents;

/* p/1: the three crops; q/1: two crops; c/1 on the crops (told apart by
 * their widths 100, 101, 40): test_workflow_rollup_ref.py CHILDREN */
static int scene_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images, size_t n,
                       json_t **out, char *err, size_t errlen)
{
    (void)ud, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        int w = images[i]->w;
        if (!strcmp(req->model_id, "p/1") && !g_no_parents) {
            json_array_append_new(preds, fake_box(10, 20, 110, 120, 0.9, "crop", 0, req->task));
            json_array_append_new(preds, fake_box(80, 20, 181, 120, 0.9, "crop", 0, req->task));
            json_array_append_new(preds, fake_box(20, 130, 60, 158, 0.9, "crop", 0, req->task));
        } else if (!strcmp(req->model_id, "q/1")) {
            json_array_append_new(preds, fake_box(10, 20, 110, 120, 0.9, "crop", 0, req->task));
            json_array_append_new(preds, fake_box(80, 20, 181, 120, 0.9, "crop", 0, req->task));
        } else if (!strcmp(req->model_id, "c/1") && w == 100) {
            json_array_append_new(preds, fake_box(50, 10, 95, 60, 0.9, "a", 0, req->task));
            json_array_append_new(preds, fake_box(5, 70, 20, 85, 0.5, "b", 1, req->task));
        } else if (!strcmp(req->model_id, "c/1") && w == 101) {
            json_array_append_new(preds, fake_box(0, 20, 40, 70, 0.7, "a", 0, req->task));
            json_array_append_new(preds, fake_box(60, 60, 80, 80, 0.6, "a", 0, req->task));
            json_array_append_new(preds, fake_box(30, 75, 50, 95, 0.8, "b", 1, req->task));
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height", images[i]->h,
                           "predictions", preds);
    }
    return 0;
}

static const char *DEF =
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
    "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"p\","
    "\"images\":\"$inputs.image\",\"model_id\":\"p/1\"},"
    "{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"q\","
    "\"images\":\"$inputs.image\",\"model_id\":\"q/1\"},"
    "{\"type\":\"roboflow_core/dynamic_crop@v1\",\"name\":\"crop\",\"images\":\"$inputs.image\","
    "\"predictions\":\"$steps.%s.predictions\"},"
    "{\"type\":\"roboflow_core/%s\",\"name\":\"c\",\"images\":\"$steps.crop.crops\",\"model_id\":\"c/1\"},"
    "{\"type\":\"roboflow_core/dimension_collapse@v1\",\"name\":\"col\",\"data\":\"$steps.c.predictions\"},"
    "{\"type\":\"roboflow_core/detections_list_rollup@v1\",\"name\":\"r\","
    "\"parent_detection\":\"$steps.p.predictions\",\"child_detections\":\"$steps.col.output\"%s}],"
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.r.*\"}]}";

#define OD "roboflow_object_detection_model@v2"
#define IS "roboflow_instance_segmentation_model@v2"
#define KP "roboflow_keypoint_detection_model@v2"

/* Runs the workflow on a 200 x 160 image; the "o" output or NULL (err). */
static json_t *run_def(const char *crops_of, const char *model, const char *extra, char *err, size_t errlen)
{
    char def[4096];
    snprintf(def, sizeof def, DEF, crops_of, model, extra);
    struct wf_workflow *wf = NULL;
    if (wf_compile_text(def, strlen(def), &wf, err, errlen) < 0)
        return NULL;
    struct vis_image *im = vis_image_new(200, 160, VIS_BGR);
    memset(im->px, 40, (size_t)im->stride * 160);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {scene_infer, NULL, 90, NULL, NULL};
    json_t *res = NULL, *o = NULL;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        o = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    vis_image_free(im);
    wf_free(wf);
    return o;
}

/* "class_id conf x1 y1 x2 y2 area" lines of the rolled-up detections, the
 * area counted by filling the output polygon (0 without one) */
static void describe(const json_t *o, char *buf, size_t len)
{
    const json_t *preds = json_object_get(json_object_get(o, "rolled_up_detections"), "predictions");
    size_t k;
    json_t *p;
    buf[0] = 0;
    json_array_foreach(preds, k, p) {
        double x = json_number_value(json_object_get(p, "x")), y = json_number_value(json_object_get(p, "y"));
        double w = json_number_value(json_object_get(p, "width")), h = json_number_value(json_object_get(p, "height"));
        json_t *pts = json_object_get(p, "points");
        long area = 0;
        if (json_array_size(pts) >= 3) {
            size_t np = json_array_size(pts);
            int *xy = xmalloc(np * 2 * sizeof *xy);
            for (size_t q = 0; q < np; q++) {
                xy[2 * q] = (int)json_number_value(json_object_get(json_array_get(pts, q), "x"));
                xy[2 * q + 1] = (int)json_number_value(json_object_get(json_array_get(pts, q), "y"));
            }
            struct vis_image *m = NULL;
            if (cv__fill_poly(xy, np, 200, 160, &m) == 0) {
                for (int yy = 0; yy < 160; yy++)
                    for (int xx = 0; xx < 200; xx++)
                        area += vis_px(m, xx, yy)[0] != 0;
            }
            vis_image_free(m);
            free(xy);
        }
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "%s%d %.6f %g %g %g %g %ld", k ? "|" : "",
                 (int)json_integer_value(json_object_get(p, "class_id")),
                 json_number_value(json_object_get(p, "confidence")), x - w / 2, y - h / 2, x + w / 2, y + h / 2,
                 area);
    }
}

static void check(const char *model, const char *extra, const char *want)
{
    char err[512] = "", got[2048];
    json_t *o = run_def("p", model, extra, err, sizeof err);
    if (!o)
        T_FAIL("%s %s: %s", model, extra, err);
    describe(o, got, sizeof got);
    if (strcmp(got, want))
        T_FAIL("%s %s:\n got  %s\n want %s", model, extra, got, want);
    json_decref(o);
}

TEST(rollup_boxes_as_the_reference)
{
    /* test_workflow_rollup_ref.py "boxes thr=0 max", "boxes thr=0.5 min", "boxes thr=0.3 mean" */
    check(OD, "", "0 0.900000 60 30 120 90 0|0 0.600000 140 80 160 100 0|1 0.500000 15 90 30 105 0|"
                  "1 0.800000 110 95 130 115 0");
    check(OD, ",\"overlap_threshold\":0.5,\"confidence_strategy\":\"min\"",
          "0 0.900000 60 30 105 80 0|0 0.700000 80 40 120 90 0|0 0.600000 140 80 160 100 0|"
          "1 0.500000 15 90 30 105 0|1 0.800000 110 95 130 115 0");
    check(OD, ",\"overlap_threshold\":0.3,\"confidence_strategy\":\"mean\"",
          "0 0.800000 60 30 120 90 0|0 0.600000 140 80 160 100 0|1 0.500000 15 90 30 105 0|"
          "1 0.800000 110 95 130 115 0");
}

TEST(rollup_keypoints_as_the_reference)
{
    /* "keypoints thr=10 max", "keypoints thr=25 mean" */
    check(KP, "", "0 0.900000 60 30 105 80 0|0 0.700000 80 40 120 90 0|0 0.600000 140 80 160 100 0|"
                  "1 0.500000 15 90 30 105 0|1 0.800000 110 95 130 115 0");
    check(KP, ",\"keypoint_merge_threshold\":25,\"confidence_strategy\":\"mean\"",
          "0 0.800000 70 35 112.5 85 0|0 0.600000 140 80 160 100 0|1 0.500000 15 90 30 105 0|"
          "1 0.800000 110 95 130 115 0");
    /* the merged keypoint is the mean of the two centres (82.5, 55) and (100, 65) */
    char err[512];
    json_t *o = run_def("p", KP, ",\"keypoint_merge_threshold\":25", err, sizeof err);
    ASSERT(o);
    json_t *p = json_array_get(json_object_get(json_object_get(o, "rolled_up_detections"), "predictions"), 0);
    json_t *kp = json_array_get(json_object_get(p, "keypoints"), 0);
    ASSERT_NEAR(json_number_value(json_object_get(kp, "x")), 91.25, 1e-4);
    ASSERT_NEAR(json_number_value(json_object_get(kp, "y")), 60, 1e-4);
    ASSERT_STR_EQ(json_string_value(json_object_get(kp, "class")), "nose");
    json_decref(o);
}

TEST(rollup_masks_as_the_reference)
{
    /* "masks thr=0 max": the two overlapping "a" masks become one L-shaped
     * union of 3371 pixels; "masks thr=0.35 max": their IoU (0.32) is under
     * the gate, they stay apart */
    check(IS, "", "0 0.900000 60 30 121 91 3371|0 0.600000 140 80 161 101 441|1 0.500000 15 90 31 106 256|"
                  "1 0.800000 110 95 131 116 441");
    check(IS, ",\"overlap_threshold\":0.35",
          "0 0.900000 60 30 106 81 2346|0 0.700000 80 40 121 91 2091|0 0.600000 140 80 161 101 441|"
          "1 0.500000 15 90 31 106 256|1 0.800000 110 95 131 116 441");
}

TEST(rollup_crop_zones_and_data)
{
    char err[512];
    json_t *o = run_def("p", OD, "", err, sizeof err);
    ASSERT(o);
    json_t *z = json_object_get(o, "crop_zones");
    ASSERT_EQ(json_array_size(z), 3);
    /* the second parent box's corners, clockwise from the top-left */
    json_t *z1 = json_array_get(z, 1);
    ASSERT_NEAR(json_number_value(json_array_get(json_array_get(z1, 1), 0)), 181, 1e-9);
    ASSERT_NEAR(json_number_value(json_array_get(json_array_get(z1, 1), 1)), 20, 1e-9);
    ASSERT_NEAR(json_number_value(json_array_get(json_array_get(z1, 3), 0)), 80, 1e-9);
    ASSERT_NEAR(json_number_value(json_array_get(json_array_get(z1, 3), 1)), 120, 1e-9);
    json_t *preds = json_object_get(json_object_get(o, "rolled_up_detections"), "predictions");
    json_t *p0 = json_array_get(preds, 0), *p1 = json_array_get(preds, 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(p0, "class")), "a");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(preds, 2), "class")), "b");
    /* fresh detection ids; the parent id of the first child (as Roboflow) */
    ASSERT(strcmp(json_string_value(json_object_get(p0, "detection_id")),
                  json_string_value(json_object_get(p1, "detection_id"))));
    ASSERT_STR_EQ(json_string_value(json_object_get(p0, "parent_id")),
                  json_string_value(json_object_get(p1, "parent_id")));
    json_decref(o);
}

TEST(rollup_malformed_inputs)
{
    char err[512] = "";
    /* no parent detections: Roboflow's ValueError (no root_parent_dimensions) as a step error */
    g_no_parents = true;
    json_t *o = run_def("p", OD, "", err, sizeof err);
    g_no_parents = false;
    ASSERT(!o);
    ASSERT(strstr(err, "root_parent_dimensions"));
    /* children of another detection list (2 crops for 3 parents) */
    o = run_def("q", OD, "", err, sizeof err);
    ASSERT(!o);
    ASSERT(strstr(err, "must match"));
    /* parameters */
    o = run_def("p", OD, ",\"keypoint_merge_threshold\":-1", err, sizeof err);
    ASSERT(!o);
    ASSERT(strstr(err, "keypoint_merge_threshold"));
    ASSERT(!run_def("p", OD, ",\"overlap_threshold\":2", err, sizeof err));
    ASSERT(!run_def("p", OD, ",\"confidence_strategy\":\"median\"", err, sizeof err));
    ASSERT(!run_def("p", OD, ",\"keypoint_merge_threshold\":1e400", err, sizeof err));
}

/* p/1: 30 crops of 110 x 110 down the diagonal of a 3010 x 3010 image,
 * each overlapping the next; c/1: in every crop one full-crop mask of each
 * of 32 classes, so each class chains into one group whose box is the
 * whole image (32 x 9.06 M pixels of merged boxes from 11.6 M mask pixels) */
static int chain_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                       size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        if (!strcmp(req->model_id, "p/1")) {
            for (int k = 0; k < 30; k++)
                json_array_append_new(preds, fake_box(k * 100, k * 100, k * 100 + 110, k * 100 + 110, 0.9, "crop", 0,
                                                      req->task));
        } else if (!strcmp(req->model_id, "c/1")) {
            for (int q = 0; q < 32; q++) {
                char cls[16];
                snprintf(cls, sizeof cls, "k%d", q);
                json_array_append_new(preds, fake_box(0, 0, 110, 110, 0.9, cls, q, req->task));
            }
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height", images[i]->h,
                           "predictions", preds);
    }
    return 0;
}

TEST(rollup_chained_masks_are_bounded)
{
    /* the merged groups' boxes are bounded in all (a step error), not only
     * the pasted child masks */
    char def[4096], err[512] = "";
    snprintf(def, sizeof def, DEF, "p", IS, "");
    struct wf_workflow *wf = NULL;
    ASSERT_OK(wf_compile_text(def, strlen(def), &wf, err, sizeof err));
    struct vis_image *im = vis_image_new(3010, 3010, VIS_BGR);
    memset(im->px, 40, (size_t)im->stride * 3010);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {chain_infer, NULL, 90, NULL, NULL};
    json_t *res = NULL;
    int rc = wf_run(wf, &env, &in, &res, err, sizeof err);
    json_decref(res);
    vis_image_free(im);
    wf_free(wf);
    ASSERT(rc < 0);
    if (!strstr(err, "merged boxes"))
        T_FAIL("%s", err);
}

/* p/1: one crop; c/1: a response claiming a 60000 x 1700 crop with 1000
 * triangles far right of it, outside the parent image */
static int far_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images, size_t n,
                     json_t **out, char *err, size_t errlen)
{
    (void)ud, (void)err, (void)errlen, (void)images;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        int w = images[i]->w, h = images[i]->h;
        if (!strcmp(req->model_id, "p/1")) {
            json_array_append_new(preds, fake_box(10, 20, 110, 120, 0.9, "crop", 0, req->task));
        } else if (!strcmp(req->model_id, "c/1")) {
            w = 60000, h = 1700;
            for (int k = 0; k < 1000; k++)
                json_array_append_new(preds, json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i,s:[{s:f,s:f},{s:f,s:f},{s:f,s:f}]}",
                                                       "x", 45000.0, "y", 850.0, "width", 30000.0, "height", 1700.0,
                                                       "confidence", 0.9, "class", "a", "class_id", 0, "points", "x",
                                                       30000.0, "y", 0.0, "x", 59999.0, "y", 0.0, "x", 30000.0, "y",
                                                       1699.0));
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", w, "height", h, "predictions", preds);
    }
    return 0;
}

TEST(rollup_masks_outside_the_parent_are_not_drawn)
{
    /* 1000 child masks of 51 M pixels each, all beyond the parent's right
     * edge: only what lands in the parent is rasterized (nothing) */
    char def[4096], err[512] = "";
    snprintf(def, sizeof def, DEF, "p", IS, "");
    struct wf_workflow *wf = NULL;
    ASSERT_OK(wf_compile_text(def, strlen(def), &wf, err, sizeof err));
    struct vis_image *im = vis_image_new(200, 160, VIS_BGR);
    memset(im->px, 40, (size_t)im->stride * 160);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {far_infer, NULL, 90, NULL, NULL};
    json_t *res = NULL;
    alarm(20); /* 51 G pixels of rasterizing (over a minute) fail the test instead of stalling it */
    int rc = wf_run(wf, &env, &in, &res, err, sizeof err);
    alarm(0);
    if (rc < 0)
        T_FAIL("%s", err);
    json_t *o = json_object_get(json_array_get(res, 0), "o");
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(o, "rolled_up_detections"), "predictions")), 0);
    json_decref(res);
    vis_image_free(im);
    wf_free(wf);
}

/* p/1: one crop; c/1 on it: 3000 keypoint detections of 100 keypoints,
 * 20 pixels apart (none merges) */
static int kp_many_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                         size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        if (!strcmp(req->model_id, "p/1")) {
            json_array_append_new(preds, fake_box(10, 20, 110, 120, 0.9, "crop", 0, req->task));
        } else {
            for (int k = 0; k < 3000; k++) {
                json_t *p = fake_box(10, 10, 30, 30, 0.9, "a", 0, "object-detection");
                json_t *kps = json_array();
                for (int q = 0; q < 100; q++)
                    json_array_append_new(kps, json_pack("{s:f,s:f,s:f,s:i,s:s}", "x", 20.0 * k, "y", (double)q,
                                                         "confidence", 0.9, "class_id", q, "class", "k"));
                json_object_set_new(p, "keypoints", kps);
                json_array_append_new(preds, p);
            }
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height", images[i]->h,
                           "predictions", preds);
    }
    return 0;
}

TEST(rollup_keypoint_merge_is_bounded)
{
    /* 3000 keypoint detections of 100 keypoints in one class: 4.5 M pairs,
     * 450 M keypoint distances; beyond RU_MAX_KP_WORK the step is an error
     * (it computed them all, unbounded in the detections' count) */
    char def[4096], err[512] = "";
    snprintf(def, sizeof def, DEF, "p", KP, "");
    struct wf_workflow *wf = NULL;
    ASSERT_OK(wf_compile_text(def, strlen(def), &wf, err, sizeof err));
    struct vis_image *im = vis_image_new(200, 160, VIS_BGR);
    memset(im->px, 40, (size_t)im->stride * 160);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {kp_many_infer, NULL, 90, NULL, NULL};
    json_t *res = NULL;
    int rc = wf_run(wf, &env, &in, &res, err, sizeof err);
    ASSERT(rc < 0);
    ASSERT(strstr(err, "keypoint detections are too many to merge") != NULL);
    json_decref(res);
    vis_image_free(im);
    wf_free(wf);
}

TEST_MAIN()
