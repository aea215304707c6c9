/*
 * test_workflow_ocsort.c — trackers_ocsort@v1 frame by frame against
 * test_workflow_ocsort_ref.py (OC-SORT written in numpy from the trackers
 * package's algorithm): two boxes, one hidden for three frames that comes
 * back where it was last seen, far from its prediction (the observation-
 * centric recovery round finds it and it keeps its id), a box under
 * high_conf_det_threshold, a late box; plus the per-video state and the
 * malformed parameters.
 */
#include "t.h"

#include "base/base.h"
#include "workflow/wf_int.h"

static int g_frame;

/* the scene of test_workflow_ocsort_ref.py scene(), frame g_frame */
static int scene_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images, size_t n,
                       json_t **out, char *err, size_t errlen)
{
    (void)ud, (void)req, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        int f = g_frame;
#define BOX(x1, y1, x2, y2, conf, cls)                                                                        \
    json_array_append_new(preds, json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x", ((x1) + (x2)) / 2.0, "y",   \
                                           ((y1) + (y2)) / 2.0, "width", (double)((x2) - (x1)), "height",    \
                                           (double)((y2) - (y1)), "confidence", conf, "class", cls, "class_id", 0))
        if (!(f >= 6 && f <= 8)) {
            double bx = f < 6 ? 400 - 12 * f : 340 - 12 * (f - 9);
            BOX(bx, 200.0, bx + 40, 240.0, 0.8, "B");
        }
        BOX(300.0, 300.0, 340.0, 340.0, 0.5, "C");
        double ax = 50 + 8 * f;
        BOX(ax, 100.0, ax + 40, 140.0, 0.9, "A");
        if (f >= 10)
            BOX(600.0, 20.0 + 3 * f, 650.0, 80.0 + 3 * f, 0.7, "D");
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height", images[i]->h,
                           "predictions", preds);
    }
    return 0;
}

static const char *DEF =
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
    "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"m\","
    "\"images\":\"$inputs.image\",\"model_id\":\"x/1\"},"
    "{\"type\":\"roboflow_core/trackers_ocsort@v1\",\"name\":\"t\",\"image\":\"$inputs.image\","
    "\"detections\":\"$steps.m.predictions\"%s}],"
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.t.*\"}]}";

static json_t *frame(struct wf_workflow *wf, struct wf_state *st, const char *video, int f, char *err, size_t errlen)
{
    struct vis_image *im = vis_image_new(700, 400, VIS_BGR);
    memset(im->px, 0, (size_t)im->stride * 400);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:f}", "video_identifier", video, "frame_number", f + 1, "fps", 30.0);
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {scene_infer, NULL, 90, st, NULL};
    json_t *res = NULL, *o = NULL;
    g_frame = f;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        o = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    json_decref(vm);
    vis_image_free(im);
    return o;
}

/* "class:id ..." of tracked_detections, in output order */
static void describe(const json_t *o, const char *key, char *buf, size_t len)
{
    const json_t *preds = json_object_get(json_object_get(o, key), "predictions");
    size_t k;
    json_t *p;
    buf[0] = 0;
    json_array_foreach(preds, k, p) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "%s%s:%lld", k ? " " : "", json_string_value(json_object_get(p, "class")),
                 (long long)json_integer_value(json_object_get(p, "tracker_id")));
    }
}

TEST(ocsort_ids_as_the_reference)
{
    /* test_workflow_ocsort_ref.py output with the detection indices named
     * (index 0 = B, then C, A, D; while B is hidden A is index 1) */
    static const char *const want[16] = {
        "",         "B:0 A:1", "B:0 A:1", "B:0 A:1", "B:0 A:1", "B:0 A:1", "A:1",           "A:1",
        "A:1",      "A:1",     "A:1",     "B:0 A:1", "B:0 A:1", "B:0 A:1 D:2", "B:0 A:1 D:2", "B:0 A:1 D:2",
    };
    char def[2048], err[512] = "", got[512];
    snprintf(def, sizeof def, DEF, "");
    struct wf_workflow *wf = NULL;
    ASSERT_OK(wf_compile_text(def, strlen(def), &wf, err, sizeof err));
    struct wf_state *st = wf_state_new();
    for (int f = 0; f < 16; f++) {
        json_t *o = frame(wf, st, "v1", f, err, sizeof err);
        if (!o)
            T_FAIL("frame %d: %s", f, err);
        describe(o, "tracked_detections", got, sizeof got);
        if (strcmp(got, want[f]))
            T_FAIL("frame %d: got '%s', want '%s'", f, got, want[f]);
        /* ids first seen: frame 1 (0, 1), 13 (2); B's return keeps id 0 */
        describe(o, "new_instances", got, sizeof got);
        const char *fresh = f == 1 ? "B:0 A:1" : f == 13 ? "D:2" : "";
        if (strcmp(got, fresh))
            T_FAIL("frame %d: new_instances '%s', want '%s'", f, got, fresh);
        json_decref(o);
    }
    /* another video in the same state starts its own tracker (ids from 0) */
    json_t *o = frame(wf, st, "v2", 0, err, sizeof err);
    ASSERT(o);
    json_decref(o);
    o = frame(wf, st, "v2", 1, err, sizeof err);
    describe(o, "tracked_detections", got, sizeof got);
    ASSERT_STR_EQ(got, "B:0 A:1");
    json_decref(o);
    wf_state_free(st);
    wf_free(wf);
}

TEST(ocsort_bad_parameters)
{
    char def[2048], err[512] = "";
    snprintf(def, sizeof def, DEF, ",\"delta_t\":0");
    struct wf_workflow *wf = NULL;
    ASSERT_OK(wf_compile_text(def, strlen(def), &wf, err, sizeof err));
    json_t *o = frame(wf, NULL, "v", 0, err, sizeof err);
    ASSERT(!o);
    ASSERT(strstr(err, "delta_t"));
    wf_free(wf);
    snprintf(def, sizeof def, DEF, ",\"minimum_iou_threshold\":1.5");
    ASSERT(wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0);
    snprintf(def, sizeof def, DEF, ",\"lost_track_buffer\":-1");
    ASSERT_OK(wf_compile_text(def, strlen(def), &wf, err, sizeof err));
    o = frame(wf, NULL, "v", 0, err, sizeof err);
    ASSERT(!o);
    ASSERT(strstr(err, "lost_track_buffer"));
    wf_free(wf);
}

TEST_MAIN()
