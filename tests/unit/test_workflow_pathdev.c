/*
 * test_workflow_pathdev.c — path_deviation_analytics v1/v2 over sequences
 * of frames: a scripted detection model, byte_tracker, then the block.
 * Expected values: tests/unit/test_workflow_pathdev_ref.py (Roboflow's
 * recursive discrete Fréchet distance over the whole path, each frame).
 */
#include "t.h"
#include "test_workflow_fake.h"

#include <math.h>

static double g_x; /* centre x of the one box this frame; < 0: no box */

static int one_box(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                   size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud, (void)req, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        if (g_x >= 0)
            json_array_append_new(preds, fake_box(g_x - 15, 45, g_x + 15, 75, 0.9, "obj", 0,
                                                  "object-detection"));
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height",
                           images[i]->h, "predictions", preds);
    }
    return 0;
}

/* One frame; returns results[0]. */
static json_t *pd_frame(const struct wf_workflow *wf, struct wf_state *st, int no, const char *vid,
                        const char *ref)
{
    struct vis_image *im = img_new(400, 200, 0);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:s,s:f,s:b}", "video_identifier", vid, "frame_number", no,
                           "frame_timestamp", "2026-12-06T00:00:00.000Z", "fps", 30.0,
                           "comes_from_video_file", 1);
    json_error_t je;
    json_t *params = json_pack("{s:o}", "ref", json_loads(ref, 0, &je));
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {one_box, NULL, 90, st, NULL};
    json_t *res = NULL;
    char err[512];
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r = json_incref(json_array_get(res, 0));
    json_decref(res);
    json_decref(params);
    json_decref(vm);
    vis_image_free(im);
    return r;
}

#define PD_DEF(version, meta, anchor)                                                          \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"       \
    "{\"type\":\"WorkflowVideoMetadata\",\"name\":\"vm\"},"                                    \
    "{\"type\":\"WorkflowParameter\",\"name\":\"ref\"}],\"steps\":["                          \
    "{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","         \
    "\"images\":\"$inputs.image\",\"model_id\":\"m\"},"                                        \
    "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\"," \
    "\"detections\":\"$steps.det.predictions\"},"                                              \
    "{\"type\":\"roboflow_core/path_deviation_analytics@" version "\",\"name\":\"pd\"," meta   \
    "\"detections\":\"$steps.bt.tracked_detections\"" anchor ",\"reference_path\":\"$inputs.ref\"}]," \
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\","                                     \
    "\"selector\":\"$steps.pd.path_deviation_detections\"}]}"

static const double REF1[20] = {
    96.519428096109, 92.541882410074, 88.566359301938, 84.593143930226, 80.622577482985,
    76.655071586947, 72.691127381545, 68.731361109758, 64.776538962807, 60.827625302982,
    56.885850613312, 52.952809179495, 49.030602688525, 45.122056690714, 41.231056256177,
    37.363083384539, 33.526109228480, 29.732137494637, 26.000000000000, 26.000000000000};
static const double REF2[20] = {
    151.380315761330, 147.526268847280, 143.680200445294, 139.842768851307, 136.014705087354,
    132.196822957286, 128.390030765632, 124.595345017380, 120.813906484312, 117.046999107196,
    113.296072306148, 109.562767398419, 105.848948979194, 102.156742312977, 98.488578017961,
    94.847245611035, 91.235957823656, 87.658428003245, 84.118963379252, 84.118963379252};
#define R1 "[[50,70],[100,70],[150,70]]"
#define R2 "[[40,60],[200,100]]"

static double deviation(json_t *r)
{
    json_t *p = json_object_get(json_object_get(r, "o"), "predictions");
    if (json_array_size(p) != 1)
        T_FAIL("expected one detection, got %zu", json_array_size(p));
    return json_number_value(json_object_get(json_array_get(p, 0), "path_deviation"));
}

static void run_sequence(const char *def)
{
    struct wf_workflow *wf = compile_or_die(def);
    struct wf_state *st = wf_state_new();
    for (int f = 1; f <= 20; f++) {
        g_x = 50 + 4 * f;
        /* the reference switches to R2 at frame 12: the whole path is
         * measured against the new one, as Roboflow recomputes it */
        json_t *r = pd_frame(wf, st, f, "v", f < 12 ? R1 : R2);
        ASSERT_NEAR(deviation(r), f < 12 ? REF1[f - 1] : REF2[f - 1], 1e-9);
        json_decref(r);
    }
    /* another video starts its own paths */
    g_x = 54;
    json_t *r = pd_frame(wf, st, 1, "w", R1);
    ASSERT_NEAR(deviation(r), REF1[0], 1e-9);
    json_decref(r);
    /* no detection: empty output */
    g_x = -1;
    r = pd_frame(wf, st, 2, "w", R1);
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "o"), "predictions")), 0);
    json_decref(r);
    wf_state_free(st);
    wf_free(wf);
}

TEST(path_deviation_v2_frechet_per_track)
{
    run_sequence(PD_DEF("v2", "\"image\":\"$inputs.image\",", ""));
}

TEST(path_deviation_v1_metadata)
{
    run_sequence(PD_DEF("v1", "\"metadata\":\"$inputs.vm\",", ""));
}

TEST(path_deviation_anchor_and_errors)
{
    struct wf_workflow *wf =
        compile_or_die(PD_DEF("v2", "\"image\":\"$inputs.image\",", ",\"triggering_anchor\":\"BOTTOM_CENTER\""));
    struct wf_state *st = wf_state_new();
    json_t *r = NULL;
    for (int f = 1; f <= 5; f++) {
        g_x = 50 + 4 * f;
        json_decref(r);
        r = pd_frame(wf, st, f, "v", R1);
    }
    ASSERT_NEAR(deviation(r), 80.156097709407, 1e-9);
    json_decref(r);
    wf_state_free(st);
    wf_free(wf);

    /* a bad reference path or anchor is a step error */
    static const char *const bad[] = {"[]", "[[1,2],[3]]", "[[1,\"a\"]]"};
    wf = compile_or_die(PD_DEF("v2", "\"image\":\"$inputs.image\",", ""));
    for (size_t k = 0; k < 3; k++) {
        struct vis_image *im = img_new(400, 200, 0);
        const struct vis_image *imgs[1] = {im};
        json_error_t je;
        json_t *params = json_pack("{s:o}", "ref", json_loads(bad[k], 0, &je));
        json_t *vm = json_pack("{s:s,s:i,s:f}", "video_identifier", "v", "frame_number", 1, "fps", 30.0);
        struct wf_image_input ii = {"image", imgs, 1, false, vm};
        struct wf_run_inputs in = {&ii, 1, params};
        struct wf_env env = {one_box, NULL, 90, NULL, NULL};
        json_t *res = NULL;
        char err[512] = "";
        g_x = 100;
        ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
        if (!strstr(err, "reference_path"))
            T_FAIL("%s: %s", bad[k], err);
        json_decref(params);
        json_decref(vm);
        vis_image_free(im);
    }
    wf_free(wf);
    /* untracked detections are refused */
    expect_compile_error("{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
                         "\"steps\":[{\"type\":\"roboflow_core/path_deviation_analytics@v2\",\"name\":\"pd\","
                         "\"image\":\"$inputs.image\",\"detections\":\"$inputs.image\","
                         "\"reference_path\":[[1,2]]}],\"outputs\":[]}",
                         "detections");
}

TEST_MAIN()
