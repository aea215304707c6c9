/*
 * test_workflow_classlock.c — track_class_lock v1 and stabilize_detections
 * v1 over scripted sequences of tracked detections (the model's
 * predictions carry tracker_id).  Expected values:
 * tests/unit/test_workflow_classlock_ref.py (Roboflow's
 * TrackClassLockBlockV1 rules step by step) and
 * tests/unit/test_workflow_stab_ref.py (StabilizeTrackedDetectionsBlockV1
 * with its Kalman filter in numpy matrices).
 */
#include "t.h"
#include "test_workflow_fake.h"

#include <math.h>

struct sdet {
    int tid;
    const char *cls;
    double conf;
    double box[4];
};

static const struct sdet *g_dets;
static int g_n;

static int tracked_infer(void *ud, const struct wf_model_request *req,
                         const struct vis_image *const *images, size_t n, json_t **out, char *err,
                         size_t errlen)
{
    (void)ud, (void)req, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        for (int k = 0; k < g_n; k++) {
            const struct sdet *d = &g_dets[k];
            json_t *p = fake_box(d->box[0], d->box[1], d->box[2], d->box[3], d->conf, d->cls, 0,
                                 "object-detection");
            json_object_set_new(p, "tracker_id", json_integer(d->tid));
            json_object_set_new(p, "class_id", json_integer(d->cls[0]));
            json_array_append_new(preds, p);
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height",
                           images[i]->h, "predictions", preds);
    }
    return 0;
}

#define DEF(params)                                                                            \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"      \
    "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\"," \
    "\"images\":\"$inputs.image\",\"model_id\":\"m\",\"confidence\":0.01},"                   \
    "{\"type\":\"roboflow_core/track_class_lock@v1\",\"name\":\"lock\",\"image\":\"$inputs.image\"," \
    "\"detections\":\"$steps.det.predictions\"" params "}],"                                   \
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\","                                     \
    "\"selector\":\"$steps.lock.tracked_detections\"}]}"

static json_t *frame(const struct wf_workflow *wf, struct wf_state *st, int no, char *err,
                     size_t errlen)
{
    struct vis_image *im = img_new(200, 200, 0);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:f}", "video_identifier", "v", "frame_number", no, "fps", 30.0);
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {tracked_infer, NULL, 90, st, NULL};
    json_t *res = NULL, *r = NULL;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        r = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    json_decref(vm);
    vis_image_free(im);
    return r;
}

#define A {10, 10, 50, 50}
#define A2 {12, 10, 52, 50}
#define B {100, 100, 140, 140}

TEST(track_class_lock_votes_challenges_reattaches)
{
    static const struct sdet frames[][2] = {
        {{1, "cat", 0.9, A}}, {{1, "dog", 0.9, A}}, {{1, "cat", 0.4, A}}, {{1, "cat", 0.8, A}},
        {{1, "cat", 0.7, A}}, {{1, "dog", 0.9, A}}, {{1, "cat", 0.9, A}}, {{1, "dog", 0.9, A}},
        {{1, "dog", 0.6, A}}, {{2, "cat", 0.3, A2}, {3, "bird", 0.9, B}}, {{3, "bird", 0.9, B}},
    };
    static const int nper[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1};
    /* (tracker id, class, confidence, locked) per output detection */
    static const struct {
        int tid;
        const char *cls;
        double conf;
        bool locked;
    } want[][2] = {
        {{1, "cat", 0.9, false}}, {{1, "dog", 0.9, false}}, {{1, "cat", 0.4, false}},
        {{1, "cat", 0.8, false}}, {{1, "cat", 0.8, true}},  {{1, "cat", 0.8, true}},
        {{1, "cat", 0.8, true}},  {{1, "cat", 0.8, true}},  {{1, "dog", 0.75, true}},
        {{2, "dog", 0.75, true}, {3, "bird", 0.9, false}}, {{3, "bird", 0.9, false}},
    };
    struct wf_workflow *wf = compile_or_die(
        DEF(",\"min_votes\":3,\"vote_confidence\":0.5,\"lead_margin\":1,\"switch_after\":2,"
            "\"state_ttl\":5,\"reattach_window\":3,\"reattach_iou\":0.3"));
    struct wf_state *st = wf_state_new();
    char err[512] = "";
    for (int f = 0; f < 11; f++) {
        g_dets = frames[f], g_n = nper[f];
        json_t *r = frame(wf, st, f + 1, err, sizeof err);
        if (!r)
            T_FAIL("frame %d: %s", f + 1, err);
        json_t *p = json_object_get(r, "predictions");
        ASSERT_EQ(json_array_size(p), nper[f]);
        for (int k = 0; k < nper[f]; k++) {
            json_t *d = json_array_get(p, k);
            if (json_integer_value(json_object_get(d, "tracker_id")) != want[f][k].tid ||
                strcmp(json_string_value(json_object_get(d, "class")), want[f][k].cls) ||
                fabs(json_number_value(json_object_get(d, "confidence")) - want[f][k].conf) > 1e-6 ||
                json_is_true(json_object_get(d, "class_locked")) != want[f][k].locked)
                T_FAIL("frame %d det %d: got %s %.6f locked %d", f + 1, k,
                       json_string_value(json_object_get(d, "class")),
                       json_number_value(json_object_get(d, "confidence")),
                       json_is_true(json_object_get(d, "class_locked")));
        }
        /* the locked class's id follows the class ('d' for dog) */
        if (f == 8)
            ASSERT_EQ(json_integer_value(json_object_get(json_array_get(p, 0), "class_id")), 'd');
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
}

TEST(track_class_lock_parameters)
{
    char err[512] = "";
    static const struct sdet one[] = {{1, "cat", 0.9, A}};
    g_dets = one, g_n = 1;
    static const char *const bad[][2] = {
        {",\"min_votes\":0", "`min_votes` must be >= 1"},
        {",\"vote_confidence\":1.5", "`vote_confidence` must be within"},
        {",\"lead_margin\":-1", "`lead_margin` must be >= 0"},
        {",\"switch_after\":0", "`switch_after` must be >= 1"},
        {",\"state_ttl\":0", "`state_ttl` must be >= 1"},
        {",\"reattach_window\":400", "must not exceed `state_ttl`"},
    };
    for (size_t k = 0; k < 6; k++) {
        char def[2048];
        snprintf(def, sizeof def,
                 "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
                 "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","
                 "\"images\":\"$inputs.image\",\"model_id\":\"m\"},"
                 "{\"type\":\"roboflow_core/track_class_lock@v1\",\"name\":\"lock\",\"image\":\"$inputs.image\","
                 "\"detections\":\"$steps.det.predictions\"%s}],\"outputs\":[]}",
                 bad[k][0]);
        struct wf_workflow *wf = compile_or_die(def);
        ASSERT(frame(wf, NULL, 1, err, sizeof err) == NULL);
        if (!strstr(err, bad[k][1]))
            T_FAIL("%s: %s", bad[k][0], err);
        wf_free(wf);
    }
    /* untracked detections are refused */
    struct wf_workflow *wf = compile_or_die(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","
        "\"images\":\"$inputs.image\",\"model_id\":\"m\"},"
        "{\"type\":\"roboflow_core/track_class_lock@v1\",\"name\":\"lock\",\"image\":\"$inputs.image\","
        "\"detections\":\"$steps.det.predictions\"}],\"outputs\":[]}");
    struct vis_image *im = img_new(50, 50, 0);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *res = NULL;
    ASSERT(wf_run(wf, &fake_env, &in, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "tracker_id not initialized"));
    vis_image_free(im);
    wf_free(wf);
}

/* ---- stabilize_detections --------------------------------------------------------- */

TEST(stabilize_detections_smooths_and_predicts)
{
    static const struct sdet frames[][2] = {
        {{1, "o", 0.9, {10, 10, 30, 30}}},
        {{1, "o", 0.9, {14, 10, 34, 30}}, {2, "o", 0.9, {100, 50, 120, 70}}},
        {{1, "o", 0.9, {18, 11, 38, 31}}, {2, "o", 0.9, {100, 52, 120, 72}}},
        {{1, "o", 0.9, {22, 12, 42, 32}}},
        {{0}}, {{0}}, {{0}},
        {{1, "o", 0.9, {40, 14, 60, 34}}},
    };
    static const int nper[] = {1, 2, 2, 1, 0, 0, 0, 1};
    /* (tracker id, x1, y1, x2, y2) per output, from the ref script */
    static const struct {
        int n;
        double d[2][5];
    } want[] = {
        {1, {{1, 10.0, 10.0, 30.0, 30.0}}},
        {2, {{1, 10.8, 10.0, 30.8, 30.0}, {2, 100.0, 50.0, 120.0, 70.0}}},
        {2, {{1, 14.8, 10.2, 34.8, 30.2}, {2, 100.0, 50.4, 120.0, 70.4}}},
        {2, {{1, 18.8, 11.2, 38.8, 31.2}, {2, 100.0, 52.4, 120.0, 72.4}}},
        {1, {{1, 22.8, 12.116911962, 42.8, 32.116911962}}},
        {1, {{1, 23.6, 12.233823924, 43.6, 32.233823924}}},
        {1, {{1, 24.4, 12.350735886, 44.4, 32.350735886}}},
        {1, {{1, 27.52, 12.680588709, 47.52, 32.680588709}}},
    };
    struct wf_workflow *wf = compile_or_die(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","
        "\"images\":\"$inputs.image\",\"model_id\":\"m\",\"confidence\":0.01},"
        "{\"type\":\"roboflow_core/stabilize_detections@v1\",\"name\":\"lock\",\"image\":\"$inputs.image\","
        "\"detections\":\"$steps.det.predictions\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.lock.tracked_detections\"}]}");
    struct wf_state *st = wf_state_new();
    char err[512] = "";
    for (int f = 0; f < 8; f++) {
        g_dets = frames[f], g_n = nper[f];
        json_t *r = frame(wf, st, f + 1, err, sizeof err);
        if (!r)
            T_FAIL("frame %d: %s", f + 1, err);
        json_t *p = json_object_get(r, "predictions");
        if ((int)json_array_size(p) != want[f].n)
            T_FAIL("frame %d: %zu detections, want %d", f + 1, json_array_size(p), want[f].n);
        for (int k = 0; k < want[f].n; k++) {
            json_t *d = json_array_get(p, k);
            double x = json_number_value(json_object_get(d, "x")), y = json_number_value(json_object_get(d, "y"));
            double w = json_number_value(json_object_get(d, "width")), h = json_number_value(json_object_get(d, "height"));
            ASSERT_EQ(json_integer_value(json_object_get(d, "tracker_id")), (int64_t)want[f].d[k][0]);
            ASSERT_NEAR(x - w / 2, want[f].d[k][1], 1e-4);
            ASSERT_NEAR(y - h / 2, want[f].d[k][2], 1e-4);
            ASSERT_NEAR(x + w / 2, want[f].d[k][3], 1e-4);
            ASSERT_NEAR(y + h / 2, want[f].d[k][4], 1e-4);
        }
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
}

/* ---- detection_event_log ------------------------------------------------------------ */

static json_t *frame_ts(const struct wf_workflow *wf, struct wf_state *st, int no, const char *ts)
{
    struct vis_image *im = img_new(200, 200, 0);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:s,s:f}", "video_identifier", "v", "frame_number", no,
                           "frame_timestamp", ts, "fps", 30.0);
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {tracked_infer, NULL, 90, st, NULL};
    json_t *res = NULL;
    char err[512];
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    json_decref(vm);
    vis_image_free(im);
    return r;
}

TEST(detection_event_log_events_and_flush)
{
    /* Roboflow's DetectionEventLogBlockV1 with frame_threshold 2,
     * flush_interval 3, stale_frames 1, frames 0.5 s apart:
     * f1 car#5; f2 car#5 + bus#6; f3 bus#6; f4 nothing -> at f4 (4 - 1 >= 3)
     * #5 (last seen f2, 4 - 2 > 1) is dropped and, seen twice, complete */
    static const struct sdet f1[] = {{5, "car", 0.9, A}}, f2[] = {{5, "car", 0.9, A}, {6, "bus", 0.9, B}},
                             f3[] = {{6, "bus", 0.9, B}};
    struct wf_workflow *wf = compile_or_die(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","
        "\"images\":\"$inputs.image\",\"model_id\":\"m\",\"confidence\":0.01},"
        "{\"type\":\"roboflow_core/detection_event_log@v1\",\"name\":\"log\",\"image\":\"$inputs.image\","
        "\"detections\":\"$steps.det.predictions\",\"frame_threshold\":2,\"flush_interval\":3,"
        "\"stale_frames\":1}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.log.*\"}]}");
    struct wf_state *st = wf_state_new();
    g_dets = f1, g_n = 1;
    json_t *r = frame_ts(wf, st, 1, "2026-12-06T10:00:00.000Z");
    ASSERT_EQ(json_integer_value(json_object_get(r, "total_pending")), 1);
    ASSERT_EQ(json_integer_value(json_object_get(r, "total_logged")), 0);
    json_decref(r);
    g_dets = f2, g_n = 2;
    r = frame_ts(wf, st, 2, "2026-12-06T10:00:00.500Z");
    ASSERT_EQ(json_integer_value(json_object_get(r, "total_logged")), 1);
    ASSERT_EQ(json_integer_value(json_object_get(r, "total_pending")), 1);
    json_t *e5 = json_object_get(json_object_get(json_object_get(r, "event_log"), "logged"), "5");
    ASSERT_STR_EQ(json_string_value(json_object_get(e5, "class_name")), "car");
    ASSERT_EQ(json_integer_value(json_object_get(e5, "frame_count")), 2);
    ASSERT_NEAR(json_number_value(json_object_get(e5, "last_seen_relative")), 0.5, 1e-9);
    ASSERT_NEAR(json_number_value(json_object_get(e5, "first_seen_timestamp")), 1796551200.0, 1e-3);
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "detections"), "predictions")), 2);
    json_decref(r);
    g_dets = f3, g_n = 1;
    json_decref(frame_ts(wf, st, 3, "2026-12-06T10:00:01.000Z"));
    g_n = 0;
    r = frame_ts(wf, st, 4, "2026-12-06T10:00:01.500+00:00");
    json_t *done = json_object_get(json_object_get(r, "complete_events"), "5");
    ASSERT(json_is_object(done));
    ASSERT_EQ(json_integer_value(json_object_get(done, "first_seen_frame")), 1);
    ASSERT_EQ(json_integer_value(json_object_get(done, "last_seen_frame")), 2);
    ASSERT(!json_object_get(done, "logged"));
    ASSERT_EQ(json_integer_value(json_object_get(r, "total_logged")), 1); /* #6 */
    ASSERT_EQ(json_integer_value(json_object_get(r, "total_pending")), 0);
    json_t *e6 = json_object_get(json_object_get(json_object_get(r, "event_log"), "logged"), "6");
    ASSERT_NEAR(json_number_value(json_object_get(e6, "last_seen_relative")), 1.0, 1e-9);
    json_decref(r);
    wf_state_free(st);
    wf_free(wf);
}

TEST_MAIN()
