/*
 * test_workflow_analytics.c — byte_tracker and line_counter over sequences
 * of frames, with a provider that returns the boxes the test scripts for
 * each frame.
 */
#include "t.h"
#include "test_workflow_fake.h"

#include <math.h>

/* boxes of the current frame: {x1, y1, x2, y2, confidence} */
static double cur_boxes[2100][5];
static int cur_n;

static int script_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                        size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud;
    (void)req;
    (void)err;
    (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        for (int k = 0; k < cur_n; k++)
            json_array_append_new(preds, fake_box(cur_boxes[k][0], cur_boxes[k][1], cur_boxes[k][2], cur_boxes[k][3],
                                                  cur_boxes[k][4], "obj", 0, "object-detection"));
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height", images[i]->h,
                           "predictions", preds);
    }
    return 0;
}

#define HEAD                                                                                         \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],\"steps\":[" \
    "{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","             \
    "\"images\":\"$inputs.image\",\"model_id\":\"m\",\"confidence\":0.05},"

/* One frame: returns results[0] (new ref). */
static json_t *frame(const struct wf_workflow *wf, struct wf_state *st, int no)
{
    struct vis_image *im = img_new(400, 200, 0);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:s,s:f,s:f,s:b}", "video_identifier", "clip", "frame_number", no,
                           "frame_timestamp", "2026-11-29T00:00:00.000Z", "fps", 30.0, "measured_fps", 30.0,
                           "comes_from_video_file", 1);
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {script_infer, NULL, 90, st, NULL};
    json_t *res = NULL;
    char err[512];
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r = json_incref(json_array_get(res, 0));
    json_decref(res);
    json_decref(vm);
    vis_image_free(im);
    return r;
}

static int64_t id_at(const json_t *r, const char *out, double cx)
{
    const json_t *p = json_object_get(json_object_get(r, out), "predictions");
    size_t i;
    json_t *d;
    json_array_foreach(p, i, d) if (fabs(json_number_value(json_object_get(d, "x")) - cx) < 1.0) return json_integer_value(
        json_object_get(d, "tracker_id"));
    return -1;
}

static void set_box(int k, double x, double y, double conf)
{
    cur_boxes[k][0] = x - 15;
    cur_boxes[k][1] = y - 15;
    cur_boxes[k][2] = x + 15;
    cur_boxes[k][3] = y + 15;
    cur_boxes[k][4] = conf;
}

TEST(two_objects_keep_their_ids_through_a_gap)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/byte_tracker@v3\",\"name\":\"bt\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\",\"lost_track_buffer\":5}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.bt.tracked_detections\"},"
             "{\"type\":\"JsonField\",\"name\":\"new\",\"selector\":\"$steps.bt.new_instances\"},"
             "{\"type\":\"JsonField\",\"name\":\"seen\",\"selector\":\"$steps.bt.already_seen_instances\"}]}");
    struct wf_state *st = wf_state_new();
    int64_t a = -1, b = -1;
    for (int f = 1; f <= 30; f++) {
        double xa = 50 + 4 * f, xb = 350 - 4 * f;
        cur_n = 0;
        set_box(cur_n++, xa, 60, 0.9);
        bool gap = f >= 12 && f <= 14; /* b is missed for three frames */
        if (!gap)
            set_box(cur_n++, xb, 140, 0.8);
        json_t *r = frame(wf, st, f);
        int64_t ia = id_at(r, "t", xa), ib = gap ? -2 : id_at(r, "t", xb);
        if (f == 1) {
            a = ia;
            b = ib;
            ASSERT(a >= 1 && b >= 1 && a != b);
            ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "new"), "predictions")), 2);
        } else {
            ASSERT_EQ(ia, a);
            if (!gap)
                ASSERT_EQ(ib, b); /* re-found from the lost tracks, same id */
            ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "new"), "predictions")), 0);
            ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "seen"), "predictions")), gap ? 1 : 2);
        }
        json_decref(r);
    }
    /* b gone longer than the buffer (5 frames at 30 fps): a new id */
    for (int f = 31; f <= 40; f++) {
        cur_n = 1;
        set_box(0, 50 + 4 * f, 60, 0.9);
        json_decref(frame(wf, st, f));
    }
    cur_n = 2;
    set_box(0, 50 + 4 * 41, 60, 0.9);
    set_box(1, 200, 140, 0.8);
    json_decref(frame(wf, st, 41)); /* new track: unconfirmed on this frame */
    json_t *r = frame(wf, st, 42);
    int64_t nb = id_at(r, "t", 200);
    ASSERT(nb > MAX(a, b));
    json_decref(r);
    wf_state_free(st);
    wf_free(wf);
}

TEST(minimum_consecutive_frames_and_low_scores)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\",\"minimum_consecutive_frames\":3}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.bt.tracked_detections\"}]}");
    struct wf_state *st = wf_state_new();
    for (int f = 1; f <= 6; f++) {
        cur_n = 1;
        set_box(0, 100 + 2 * f, 100, 0.9);
        json_t *r = frame(wf, st, f);
        size_t n = json_array_size(json_object_get(json_object_get(r, "t"), "predictions"));
        ASSERT_EQ(n, f >= 4 ? 1 : 0); /* confirmed after 3 matched frames */
        json_decref(r);
    }
    /* a low-score box (0.1 < s < 0.25) keeps an existing track alive but
     * never starts one */
    cur_n = 2;
    set_box(0, 114, 100, 0.2);
    set_box(1, 300, 50, 0.2);
    json_t *r = frame(wf, st, 7);
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "t"), "predictions")), 1);
    ASSERT(id_at(r, "t", 114) >= 1);
    json_decref(r);
    wf_state_free(st);
    /* no state given: every run starts afresh (an image job), so the
     * track is never confirmed however many frames come */
    cur_n = 1;
    for (int f = 1; f <= 5; f++) {
        set_box(0, 100 + 2 * f, 100, 0.9);
        r = frame(wf, NULL, f);
        ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "t"), "predictions")), 0);
        json_decref(r);
    }
    wf_free(wf);
}

TEST(line_counter_v2_anchors_limits_and_errors)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\"},"
             "{\"type\":\"roboflow_core/line_counter@v2\",\"name\":\"lc\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.bt.tracked_detections\",\"line_segment\":[[200,0],[200,120]]}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"in\",\"selector\":\"$steps.lc.count_in\"},"
             "{\"type\":\"JsonField\",\"name\":\"out\",\"selector\":\"$steps.lc.count_out\"},"
             "{\"type\":\"JsonField\",\"name\":\"din\",\"selector\":\"$steps.lc.detections_in\"}]}");
    struct wf_state *st = wf_state_new();
    int ins = 0;
    /* object 0 crosses inside the segment's extent (y 60); object 1 crosses
     * below its end (y 160): only the first counts */
    for (int f = 1; f <= 40; f++) {
        cur_n = 2;
        set_box(0, 120 + 4 * f, 60, 0.9);
        set_box(1, 120 + 4 * f, 165, 0.9);
        json_t *r = frame(wf, st, f);
        ins += (int)json_array_size(json_object_get(json_object_get(r, "din"), "predictions"));
        ASSERT_EQ(json_integer_value(json_object_get(r, "out")), 0);
        if (f == 40)
            ASSERT_EQ(json_integer_value(json_object_get(r, "in")), 1);
        json_decref(r);
    }
    ASSERT_EQ(ins, 1); /* detections_in: on the crossing frame only */
    wf_state_free(st);
    wf_free(wf);

    /* untracked detections: a clear error */
    wf = compile_or_die(HEAD "{\"type\":\"roboflow_core/line_counter@v2\",\"name\":\"lc\",\"image\":\"$inputs.image\","
                             "\"detections\":\"$steps.det.predictions\",\"line_segment\":[[0,0],[10,10]]}],"
                             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"in\",\"selector\":\"$steps.lc.count_in\"}]}");
    const struct vis_image *imgs[1];
    struct vis_image *im = img_new(50, 50, 0);
    imgs[0] = im;
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {script_infer, NULL, 90, NULL, NULL};
    json_t *res = NULL;
    char err[512];
    cur_n = 1;
    set_box(0, 20, 20, 0.9);
    ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "tracker_id"));
    wf_free(wf);
    /* a bad segment */
    wf = compile_or_die(HEAD "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\","
                             "\"detections\":\"$steps.det.predictions\"},"
                             "{\"type\":\"roboflow_core/line_counter@v2\",\"name\":\"lc\",\"image\":\"$inputs.image\","
                             "\"detections\":\"$steps.bt.tracked_detections\",\"line_segment\":[[0,0]]}],"
                             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"in\",\"selector\":\"$steps.lc.count_in\"}]}");
    ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "line_segment"));
    wf_free(wf);
    vis_image_free(im);
}

/* Many boxes: the assignment is solved only where boxes overlap tracks,
 * so a crowded frame stays fast; beyond the bound, a clear error. */
TEST(crowded_frames_and_the_bound)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.bt.tracked_detections\"}]}");
    struct wf_state *st = wf_state_new();
    int64_t t0 = time_mono_ms();
    for (int f = 1; f <= 4; f++) {
        cur_n = 1500; /* a 50 x 30 grid of small boxes drifting right */
        for (int k = 0; k < cur_n; k++) {
            double x = 10 + (k % 50) * 7.5 + f, y = 10 + (k / 50) * 6.0;
            cur_boxes[k][0] = x - 3;
            cur_boxes[k][1] = y - 2.5;
            cur_boxes[k][2] = x + 3;
            cur_boxes[k][3] = y + 2.5;
            cur_boxes[k][4] = 0.9;
        }
        json_t *r = frame(wf, st, f);
        ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "t"), "predictions")), 1500);
        json_decref(r);
    }
    /* under the sanitizers on a loaded 2-core box this takes about a second;
     * an O(n^3) assignment over all 1500 x 1500 pairs would take minutes */
    ASSERT_LT(time_mono_ms() - t0, 30000);
    cur_n = 2001;
    struct vis_image *im = img_new(400, 200, 0);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {script_infer, NULL, 90, st, NULL};
    json_t *res = NULL;
    char err[512];
    ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "at most 2000"));
    vis_image_free(im);
    wf_state_free(st);
    wf_free(wf);
    cur_n = 0;
}

/* time_in_zone v2/v3: seconds since entering (frame_number / fps), reset
 * on leaving, out-of-zone boxes dropped; v3 takes several zones. */
TEST(time_in_zone_counts_seconds_per_track)
{
    static const char *const wfs[2] = {
        HEAD "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\"},"
             "{\"type\":\"roboflow_core/time_in_zone@v2\",\"name\":\"tz\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.bt.tracked_detections\",\"zone\":[[100,0],[200,0],[200,200],[100,200]]}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.tz.timed_detections\"}]}",
        HEAD "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\"},"
             "{\"type\":\"roboflow_core/time_in_zone@v3\",\"name\":\"tz\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.bt.tracked_detections\",\"zone\":[[[300,0],[399,0],[399,199],[300,199]],"
             "[[100,0],[200,0],[200,200],[100,200]]]}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.tz.timed_detections\"}]}",
    };
    for (int v = 0; v < 2; v++) {
        struct wf_workflow *wf = compile_or_die(wfs[v]);
        struct wf_state *st = wf_state_new();
        int entered = 0;
        for (int f = 1; f <= 50; f++) {
            double x = 40 + 4 * f; /* centre enters x 100 at f 15, leaves x 200 at f 40 */
            cur_n = 1;
            set_box(0, x, 100, 0.9);
            json_t *r = frame(wf, st, f);
            json_t *p = json_object_get(json_object_get(r, "t"), "predictions");
            /* as sv.PolygonZone: the box is clipped to the polygon's extent
             * (x <= 201) before its centre is taken, so a box leaving to
             * the right stays "in" while its clipped centre is */
            double cx = ceil((fmax(x - 15, 0) + fmin(x + 15, 201)) / 2);
            bool inside = cx >= 100 && cx <= 200;
            ASSERT_EQ(json_array_size(p), inside ? 1 : 0); /* out-of-zone boxes removed */
            if (inside) {
                if (!entered)
                    entered = f;
                double secs = json_number_value(json_object_get(json_array_get(p, 0), "time_in_zone"));
                ASSERT_NEAR(secs, (f - entered) / 30.0, 1e-9);
            }
            json_decref(r);
        }
        ASSERT_EQ(entered, 15);
        wf_state_free(st);
        wf_free(wf);
    }
    /* a zone of two points: a clear error */
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\"},"
             "{\"type\":\"roboflow_core/time_in_zone@v2\",\"name\":\"tz\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.bt.tracked_detections\",\"zone\":[[0,0],[10,10]]}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.tz.timed_detections\"}]}");
    struct vis_image *im = img_new(50, 50, 0);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {script_infer, NULL, 90, NULL, NULL};
    json_t *res = NULL;
    char err[512];
    cur_n = 1;
    set_box(0, 20, 20, 0.9);
    ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "more than 2 points"));
    wf_free(wf);
    vis_image_free(im);
}

/* velocity: pixels per second between a tracker's frames (frame_number /
 * fps), smoothed by an exponential moving average, over pixels_per_meter. */
TEST(velocity_of_a_track)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/byte_tracker@v2\",\"name\":\"bt\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\"},"
             "{\"type\":\"roboflow_core/velocity@v1\",\"name\":\"v\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.bt.tracked_detections\",\"pixels_per_meter\":2}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"v\",\"selector\":\"$steps.v.velocity_detections\"}]}");
    struct wf_state *st = wf_state_new();
    double smoothed = 0;
    for (int f = 1; f <= 6; f++) {
        cur_n = 1;
        set_box(0, 50 + 4 * f, 100, 0.9); /* 4 px per frame at 30 fps: 120 px/s = 60 m/s here */
        json_t *r = frame(wf, st, f);
        json_t *d = json_array_get(json_object_get(json_object_get(r, "v"), "predictions"), 0);
        ASSERT(d);
        double want = f == 1 ? 0 : 60;
        smoothed = f == 1 ? 0 : 0.5 * 60 + 0.5 * smoothed;
        ASSERT_NEAR(json_number_value(json_object_get(d, "speed")), want, 1e-6);
        ASSERT_NEAR(json_number_value(json_array_get(json_object_get(d, "velocity"), 0)), want, 1e-6);
        ASSERT_NEAR(json_number_value(json_array_get(json_object_get(d, "velocity"), 1)), 0, 1e-6);
        ASSERT_NEAR(json_number_value(json_object_get(d, "smoothed_speed")), smoothed, 1e-6);
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
}

TEST_MAIN()
