/*
 * test_workflow_video.c — the video analytics blocks (path_deviation,
 * overlap, data_aggregator, detection_event_log, identify_outliers,
 * identify_changes) and the visualizations of blocks/video_viz.c (trace,
 * heatmap, grid, icon) plus polygon / halo v2, over sequences of frames
 * with a provider that returns the boxes (with tracker ids) each test
 * scripts.
 *
 * Sources of the expected values:
 * - path_deviation: Roboflow's PathDeviationAnalyticsBlockV1/V2
 *   _compute_distance (recursive discrete Fréchet), run in Python with the
 *   math module on the same points (/tmp script in the commit message of
 *   this test: the recursion transcribed, numbers printed with repr()).
 * - identify_outliers / identify_changes: the blocks' run() transcribed
 *   the same way (numpy ops replaced by loops), repr() of the outputs.
 * - overlap, data_aggregator, detection_event_log: hand-traced through the
 *   blocks' code (commented at each assertion).
 * - trace / heatmap: sv.TraceAnnotator (Trace buffer of trace_length
 *   frames) and sv.HeatMapAnnotator (hue = low - heat/max*(low-top),
 *   OpenCV HSV2BGR, addWeighted rounding) computed by hand.
 * - grid / icon: GridVisualizationBlockV1.createGrid and
 *   sv.IconAnnotator + letterbox_image geometry, by hand.
 */
#include "t.h"
#include "test_workflow_fake.h"

#include <math.h>
#include <unistd.h>

struct sbox {
    double x1, y1, x2, y2, conf;
    int cls;
    int64_t tid; /* <0: untracked */
};
static struct sbox boxes[64];
static int nboxes;
static const char *const CLS_NAMES[] = {"car", "zone", "person"};

static int script_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                        size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud;
    (void)err;
    (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        for (int k = 0; k < nboxes; k++) {
            const struct sbox *b = &boxes[k];
            json_t *p = fake_box(b->x1, b->y1, b->x2, b->y2, b->conf, CLS_NAMES[b->cls], b->cls, req->task);
            if (b->tid >= 0)
                json_object_set_new(p, "tracker_id", json_integer(b->tid));
            json_array_append_new(preds, p);
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height", images[i]->h,
                           "predictions", preds);
    }
    return 0;
}

static void box(int k, double cx, double cy, double w, double h, int cls, int64_t tid)
{
    boxes[k] = (struct sbox){cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 0.9, cls, tid};
}

#define HEAD_MODEL(task)                                                                             \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"               \
    "{\"type\":\"WorkflowVideoMetadata\",\"name\":\"vm\"}],\"steps\":["                               \
    "{\"type\":\"roboflow_core/roboflow_" task "_model@v2\",\"name\":\"det\","                        \
    "\"images\":\"$inputs.image\",\"model_id\":\"m\",\"confidence\":0.05},"
#define HEAD HEAD_MODEL("object_detection")

static int compile_err(const char *text, char *err, size_t errlen)
{
    struct wf_workflow *wf = NULL;
    int rc = wf_compile_text(text, strlen(text), &wf, err, errlen);
    wf_free(wf);
    return rc;
}

static uint8_t img_value = 100;

/* One frame (number no, timestamp 100 ms apart); returns results[0] or
 * NULL on a run error (message in err_out when given). */
static json_t *frame_ex(const struct wf_workflow *wf, struct wf_state *st, int no, int w, int h,
                        char *err_out, size_t errlen)
{
    struct vis_image *im = img_new(w, h, img_value);
    const struct vis_image *imgs[1] = {im};
    char ts[TIME_ISO_LEN];
    time_iso8601(1796000000000LL + 100LL * no, ts);
    json_t *vm = json_pack("{s:s,s:i,s:s,s:f,s:f,s:b}", "video_identifier", "clip", "frame_number", no,
                           "frame_timestamp", ts, "fps", 10.0, "measured_fps", 10.0, "comes_from_video_file", 1);
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {script_infer, NULL, 90, st, NULL};
    json_t *res = NULL, *r = NULL;
    char err[512];
    if (wf_run(wf, &env, &in, &res, err, sizeof err) == 0) {
        r = json_incref(json_array_get(res, 0));
        json_decref(res);
    } else if (err_out) {
        snprintf(err_out, errlen, "%s", err);
    }
    json_decref(vm);
    vis_image_free(im);
    return r;
}

static json_t *frame(const struct wf_workflow *wf, struct wf_state *st, int no)
{
    char err[512] = "";
    json_t *r = frame_ex(wf, st, no, 400, 200, err, sizeof err);
    if (!r)
        T_FAIL("run: %s", err);
    return r;
}

static const json_t *preds_of(const json_t *r, const char *out)
{
    return json_object_get(json_object_get(r, out), "predictions");
}

/* ---- path_deviation ------------------------------------------------------------------------ */

TEST(path_deviation_v2_frechet_grows_with_the_track)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/path_deviation_analytics@v2\",\"name\":\"pd\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\",\"reference_path\":[[50,90],[100,90],[150,120]]}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.pd.path_deviation_detections\"}]}");
    struct wf_state *st = wf_state_new();
    /* python: frechet(points so far, ref) with points (40 + 20 f, 100) */
    const double want[] = {92.19544457292888, 72.80109889280519, 53.85164807134504,
                           36.05551275463989, 22.360679774997898, 22.360679774997898};
    for (int f = 1; f <= 6; f++) {
        nboxes = 2;
        box(0, 40 + 20 * f, 100, 40, 40, 0, 7);
        box(1, 300, 150, 20, 20, 0, 9); /* stationary at (300, 150): its own path */
        json_t *r = frame(wf, st, f);
        const json_t *p = preds_of(r, "o");
        ASSERT_EQ(json_array_size(p), 2);
        ASSERT(fabs(json_number_value(json_object_get(json_array_get(p, 0), "path_deviation")) - want[f - 1]) < 1e-9);
        /* the stationary one: max distance to the ref end points = |(300,150)-(50,90)| */
        ASSERT(fabs(json_number_value(json_object_get(json_array_get(p, 1), "path_deviation")) -
                    hypot(250, 60)) < 1e-9);
        json_decref(r);
    }
    /* another video has its own paths: the first frame's value again */
    wf_state_free(st);
    st = wf_state_new();
    nboxes = 1;
    box(0, 60, 100, 40, 40, 0, 7);
    json_t *r = frame(wf, st, 1);
    ASSERT(fabs(json_number_value(json_object_get(json_array_get(preds_of(r, "o"), 0), "path_deviation")) -
                want[0]) < 1e-9);
    json_decref(r);
    /* empty detections: empty output */
    nboxes = 0;
    r = frame(wf, st, 2);
    ASSERT_EQ(json_array_size(preds_of(r, "o")), 0);
    json_decref(r);
    /* untracked detections: a step error */
    nboxes = 1;
    box(0, 60, 100, 40, 40, 0, -1);
    char err[512] = "";
    ASSERT(frame_ex(wf, st, 3, 400, 200, err, sizeof err) == NULL);
    ASSERT(strstr(err, "tracker_id") != NULL);
    wf_state_free(st);
    wf_free(wf);
}

TEST(path_deviation_v1_metadata_anchor_and_bad_paths)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/path_deviation_analytics@v1\",\"name\":\"pd\",\"metadata\":\"$inputs.vm\","
             "\"detections\":\"$steps.det.predictions\",\"triggering_anchor\":\"BOTTOM_CENTER\","
             "\"reference_path\":[[100,120]]}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.pd.path_deviation_detections\"}]}");
    struct wf_state *st = wf_state_new();
    nboxes = 1;
    box(0, 100, 100, 40, 40, 0, 1); /* bottom centre (100, 120): distance 0 */
    json_t *r = frame(wf, st, 1);
    ASSERT(fabs(json_number_value(json_object_get(json_array_get(preds_of(r, "o"), 0), "path_deviation"))) < 1e-12);
    json_decref(r);
    box(0, 103, 104, 40, 40, 0, 1); /* (103, 124): max(0, 5) */
    r = frame(wf, st, 2);
    ASSERT(fabs(json_number_value(json_object_get(json_array_get(preds_of(r, "o"), 0), "path_deviation")) - 5) < 1e-12);
    json_decref(r);
    wf_state_free(st);
    wf_free(wf);
    /* malformed reference paths: compile (not a list) or step errors */
    char err[512];
    ASSERT(compile_err(HEAD "{\"type\":\"roboflow_core/path_deviation_analytics@v2\",\"name\":\"pd\","
                                "\"image\":\"$inputs.image\",\"detections\":\"$steps.det.predictions\","
                                "\"reference_path\":5}],\"outputs\":[]}",
                           err, sizeof err) < 0);
    const char *paths[] = {"[]", "[[1,2,3]]", "[[1,\"a\"]]"};
    for (size_t k = 0; k < 3; k++) {
        char def[2048];
        snprintf(def, sizeof def,
                 HEAD "{\"type\":\"roboflow_core/path_deviation_analytics@v2\",\"name\":\"pd\","
                      "\"image\":\"$inputs.image\",\"detections\":\"$steps.det.predictions\","
                      "\"reference_path\":%s}],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\","
                      "\"selector\":\"$steps.pd.*\"}]}",
                 paths[k]);
        wf = compile_or_die(def);
        st = wf_state_new();
        ASSERT(frame_ex(wf, st, 1, 400, 200, err, sizeof err) == NULL);
        ASSERT(strstr(err, "reference_path") != NULL);
        wf_state_free(st);
        wf_free(wf);
    }
}

/* ---- overlap ------------------------------------------------------------------------------- */

TEST(overlap_center_and_any)
{
    const char *types[] = {"Center Overlap", "Any Overlap"};
    for (int t = 0; t < 2; t++) {
        char def[2048];
        snprintf(def, sizeof def,
                 HEAD "{\"type\":\"roboflow_core/overlap@v1\",\"name\":\"ov\",\"predictions\":\"$steps.det.predictions\","
                      "\"overlap_class_name\":\"zone\",\"overlap_type\":\"%s\"}],"
                      "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.ov.overlaps\"}]}",
                 types[t]);
        struct wf_workflow *wf = compile_or_die(def);
        nboxes = 4;
        box(0, 100, 100, 100, 100, 1, -1); /* zone 50..150 */
        box(1, 120, 120, 20, 20, 0, -1);   /* centre inside */
        box(2, 160, 100, 40, 40, 2, -1);   /* 140..180: touches, centre outside */
        box(3, 300, 100, 20, 20, 0, -1);   /* far */
        json_t *r = frame(wf, NULL, 1);
        const json_t *p = preds_of(r, "o");
        /* Center: {1}; Any: {1, 2} (boxes of the overlap class never listed) */
        ASSERT_EQ(json_array_size(p), t == 0 ? 1 : 2);
        ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "car");
        if (t == 1)
            ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 1), "class")), "person");
        json_decref(r);
        nboxes = 0;
        r = frame(wf, NULL, 2);
        ASSERT_EQ(json_array_size(preds_of(r, "o")), 0);
        json_decref(r);
        wf_free(wf);
    }
}

/* ---- data_aggregator ------------------------------------------------------------------------- */

#define AGG_STEP(modes, unit, interval)                                                                  \
    "{\"type\":\"roboflow_core/data_aggregator@v1\",\"name\":\"agg\","                                   \
    "\"data\":{\"n\":\"$steps.det.predictions\",\"cls\":\"$steps.det.predictions\"},"                    \
    "\"data_operations\":{\"n\":[{\"type\":\"SequenceLength\"}],"                                         \
    "\"cls\":[{\"type\":\"DetectionsPropertyExtract\",\"property_name\":\"class_name\"}]},"               \
    "\"aggregation_mode\":" modes ",\"interval_unit\":\"" unit "\",\"interval\":" interval "}"

TEST(data_aggregator_runs_interval)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD AGG_STEP("{\"n\":[\"sum\",\"avg\",\"max\",\"min\",\"count\",\"values_difference\",\"distinct\","
                      "\"values_counts\",\"count_distinct\"],\"cls\":[\"count\",\"distinct\",\"values_counts\"]}",
                      "runs", "3") "],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"all\",\"selector\":\"$steps.agg.*\"},"
        "{\"type\":\"JsonField\",\"name\":\"sum\",\"selector\":\"$steps.agg.n_sum\"}]}");
    struct wf_state *st = wf_state_new();
    const int counts[] = {1, 2, 4, 2};
    for (int f = 1; f <= 4; f++) {
        nboxes = counts[f - 1];
        for (int k = 0; k < nboxes; k++)
            box(k, 30 + 40 * k, 50, 20, 20, k % 2 ? 2 : 0, -1);
        json_t *r = frame(wf, st, f);
        const json_t *all = json_object_get(r, "all");
        if (f != 3) {
            /* not flushed: every output None */
            ASSERT(json_is_null(json_object_get(r, "sum")));
            ASSERT(json_is_null(json_object_get(all, "n_avg")));
            ASSERT(json_is_null(json_object_get(all, "cls_count")));
        } else {
            /* SequenceLength values 1, 2, 4 */
            ASSERT_EQ(json_integer_value(json_object_get(all, "n_sum")), 7);
            ASSERT(fabs(json_real_value(json_object_get(all, "n_avg")) - 7.0 / 3) < 1e-12);
            ASSERT_EQ(json_integer_value(json_object_get(all, "n_max")), 4);
            ASSERT_EQ(json_integer_value(json_object_get(all, "n_min")), 1);
            ASSERT_EQ(json_integer_value(json_object_get(all, "n_count")), 3); /* ints: no len() */
            ASSERT_EQ(json_integer_value(json_object_get(all, "n_values_difference")), 3);
            ASSERT_EQ(json_array_size(json_object_get(all, "n_distinct")), 3);
            ASSERT_EQ(json_integer_value(json_object_get(all, "n_count_distinct")), 3);
            ASSERT_EQ(json_integer_value(json_object_get(json_object_get(all, "n_values_counts"), "4")), 1);
            /* class lists: len() of each list summed (1 + 2 + 4), distinct names, counts */
            ASSERT_EQ(json_integer_value(json_object_get(all, "cls_count")), 7);
            ASSERT_EQ(json_array_size(json_object_get(all, "cls_distinct")), 2);
            ASSERT_EQ(json_integer_value(json_object_get(json_object_get(all, "cls_values_counts"), "car")), 4);
            ASSERT_EQ(json_integer_value(json_object_get(json_object_get(all, "cls_values_counts"), "person")), 3);
        }
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);

    /* compile-time checks: unknown mode, a key not in data, bad interval */
    char err[512];
    ASSERT(compile_err(HEAD AGG_STEP("{\"n\":[\"median\"]}", "runs", "3") "],\"outputs\":[]}", err,
                           sizeof err) < 0);
    ASSERT(strstr(err, "unknown mode") != NULL);
    ASSERT(compile_err(HEAD AGG_STEP("{\"x\":[\"sum\"]}", "runs", "3") "],\"outputs\":[]}", err,
                           sizeof err) < 0);
    ASSERT(strstr(err, "not a key of 'data'") != NULL);
    ASSERT(compile_err(HEAD AGG_STEP("{\"n\":[\"sum\"]}", "runs", "0") "],\"outputs\":[]}", err,
                           sizeof err) < 0);
    ASSERT(compile_err(HEAD AGG_STEP("{\"n\":[\"sum\"]}", "days", "3") "],\"outputs\":[]}", err,
                           sizeof err) < 0);
    /* an output that the aggregation does not produce is a dangling selector */
    ASSERT(compile_err(HEAD AGG_STEP("{\"n\":[\"sum\"]}", "runs", "3") "],\"outputs\":[{\"type\":\"JsonField\","
                           "\"name\":\"o\",\"selector\":\"$steps.agg.n_avg\"}]}",
                           err, sizeof err) < 0);
    /* summing a list (the class names) is a step error, as Python's TypeError */
    wf = compile_or_die(HEAD AGG_STEP("{\"cls\":[\"sum\"]}", "runs", "1") "],\"outputs\":[{\"type\":\"JsonField\","
                        "\"name\":\"o\",\"selector\":\"$steps.agg.*\"}]}");
    nboxes = 1;
    box(0, 50, 50, 20, 20, 0, -1);
    ASSERT(frame_ex(wf, NULL, 1, 400, 200, err, sizeof err) == NULL);
    ASSERT(strstr(err, "non-number") != NULL);
    wf_free(wf);
}

TEST(data_aggregator_seconds_interval)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD AGG_STEP("{\"n\":[\"sum\"]}", "seconds", "1") "],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"s\",\"selector\":\"$steps.agg.n_sum\"}]}");
    struct wf_state *st = wf_state_new();
    nboxes = 2;
    box(0, 30, 50, 20, 20, 0, -1);
    box(1, 90, 50, 20, 20, 0, -1);
    json_t *r = frame(wf, st, 1);
    ASSERT(json_is_null(json_object_get(r, "s"))); /* wall clock: under a second since the start */
    json_decref(r);
    usleep(1100 * 1000);
    r = frame(wf, st, 2);
    ASSERT_EQ(json_integer_value(json_object_get(r, "s")), 4);
    json_decref(r);
    wf_state_free(st);
    wf_free(wf);
}

/* ---- detection_event_log ------------------------------------------------------------------- */

TEST(detection_event_log_logged_pending_and_complete)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/detection_event_log@v1\",\"name\":\"ev\",\"image\":\"$inputs.image\","
             "\"detections\":\"$steps.det.predictions\",\"frame_threshold\":2,\"flush_interval\":2,\"stale_frames\":1}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"ev\",\"selector\":\"$steps.ev.*\"}]}");
    struct wf_state *st = wf_state_new();
    for (int f = 1; f <= 5; f++) {
        nboxes = f <= 3 ? 1 : 0;
        box(0, 50, 50, 20, 20, 0, 11);
        json_t *r = frame(wf, st, f);
        const json_t *ev = json_object_get(r, "ev");
        const json_t *log = json_object_get(ev, "event_log");
        /* f1: pending (1 frame < 2); f2, f3: logged; f4: still logged (last seen 3, flush at 5);
         * f5: flush (5 - 3 >= 2), stale (5 - 3 > 1) and complete (3 frames >= 2) */
        ASSERT_EQ(json_integer_value(json_object_get(ev, "total_pending")), f == 1 ? 1 : 0);
        ASSERT_EQ(json_integer_value(json_object_get(ev, "total_logged")), f >= 2 && f <= 4 ? 1 : 0);
        ASSERT_EQ(json_object_size(json_object_get(ev, "complete_events")), f == 5 ? 1 : 0);
        if (f == 3) {
            const json_t *e = json_object_get(json_object_get(log, "logged"), "11");
            ASSERT(e != NULL);
            ASSERT_STR_EQ(json_string_value(json_object_get(e, "class_name")), "car");
            ASSERT_EQ(json_integer_value(json_object_get(e, "first_seen_frame")), 1);
            ASSERT_EQ(json_integer_value(json_object_get(e, "last_seen_frame")), 3);
            ASSERT_EQ(json_integer_value(json_object_get(e, "frame_count")), 3);
            /* frame_timestamp 100 ms apart: relative to the first frame */
            /* double subtraction of epoch seconds, as Python's: 0.20000004768371582 */
            ASSERT(fabs(json_real_value(json_object_get(e, "last_seen_relative")) - 0.2) < 1e-6);
            ASSERT(fabs(json_real_value(json_object_get(e, "first_seen_relative"))) < 1e-12);
            ASSERT_EQ(json_array_size(preds_of(ev, "detections")), 1);
        }
        if (f == 5) {
            const json_t *e = json_object_get(json_object_get(ev, "complete_events"), "11");
            ASSERT_EQ(json_integer_value(json_object_get(e, "frame_count")), 3);
            ASSERT(json_object_get(e, "logged") == NULL);
        }
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
    char err[512];
    ASSERT(compile_err(HEAD "{\"type\":\"roboflow_core/detection_event_log@v1\",\"name\":\"ev\","
                                "\"image\":\"$inputs.image\",\"detections\":\"$steps.det.predictions\","
                                "\"frame_threshold\":0}],\"outputs\":[]}",
                           err, sizeof err) < 0);
}

/* ---- identify_outliers / identify_changes ---------------------------------------------------- */

static const double EMB[6][3] = {{1, 0, 0}, {0.9, 0.1, 0}, {0.8, 0.2, 0.1}, {0.95, 0.05, 0}, {0, 0, 1}, {0.9, 0.1, 0.05}};

static json_t *emb_run(struct wf_workflow *wf, struct wf_state *st, int k)
{
    struct vis_image *im = img_new(8, 8, 0);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    json_t *params = json_pack("{s:[f,f,f]}", "emb", EMB[k][0], EMB[k][1], EMB[k][2]);
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {script_infer, NULL, 90, st, NULL};
    json_t *res = NULL;
    char err[512];
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r = json_incref(json_array_get(res, 0));
    json_decref(res);
    json_decref(params);
    vis_image_free(im);
    return r;
}

#define EMB_HEAD                                                                                    \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"              \
    "{\"type\":\"WorkflowParameter\",\"name\":\"emb\"}],\"steps\":["

TEST(identify_outliers_vmf_percentile)
{
    struct wf_workflow *wf = compile_or_die(
        EMB_HEAD "{\"type\":\"roboflow_core/identify_outliers@v1\",\"name\":\"o\",\"embedding\":\"$inputs.emb\","
                 "\"window_size\":4}],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.o.*\"}]}");
    struct wf_state *st = wf_state_new();
    /* python transcription: (is_outlier, percentile, warming_up) per sample */
    const int out[6] = {0, 0, 1, 0, 1, 0};
    const double pct[6] = {0.5, 0.5, 0.0, 0.5, 0.0, 0.5};
    const int warm[6] = {1, 1, 0, 0, 0, 0};
    for (int k = 0; k < 6; k++) {
        json_t *r = emb_run(wf, st, k);
        const json_t *o = json_object_get(r, "o");
        ASSERT_EQ(json_is_true(json_object_get(o, "is_outlier")), out[k]);
        ASSERT(fabs(json_number_value(json_object_get(o, "percentile")) - pct[k]) < 1e-12);
        ASSERT_EQ(json_is_true(json_object_get(o, "warming_up")), warm[k]);
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
}

TEST(identify_changes_three_strategies)
{
    /* python transcription of IdentifyChangesBlockV1.run, window_size 3:
     * (is_outlier, percentile, z_score, average[0], std[1]) per sample */
    static const struct {
        const char *strategy;
        double v[6][5];
    } cases[] = {
        {"Exponential Moving Average (EMA)",
         {{0, 0.5, 0, 1.0, 0},
          {0, 0.5, 0, 0.9993883734673619, 0.03142936330963102},
          {0, 0.9992172988709987, -3.162277660168379, 0.9957582185892411, 0.07185969847123712},
          {0, 0.164190550189108, 0.9773799197033728, 0.996044179663568, 0.06837605855483397},
          {1, 0.9992141509765612, -3.1611087538903027, 0.8964397616972112, 0.06566565115806032},
          {0, 0.3662916513494515, 0.34169119021369154, 0.9060329978830849, 0.06613119664153544}}},
        {"Simple Moving Average (SMA)",
         {{0, 0.5, 0, 1.0, 0},
          {0, 0.5, 0, 0.9969418673368095, 0.07808688094430304},
          {0, 0.8758934605050378, -1.1547005383792497, 0.9856568531199241, 0.12052295700516368},
          {0, 0.24128868060523634, 0.7021632499949351, 0.9888970971730705, 0.10355773916904117},
          {1, 0.963150868035514, -1.7884820820931728, 0.7911176777384564, 0.10040394202540993},
          {0, 0.35214408051223844, 0.379538310335829, 0.824660085374705, 0.09060856830088951}}},
        {"Sliding Window",
         {{0, 0.5, 0, 1.0, 0},
          {0, 0.5, 0, 0.9938837346736189, 0.0},
          {0, 0.5, 0, 0.9784852796798862, 0.06517009004834592},
          {0, 0.15865525393145707, 1.0, 0.985196129564094, 0.07871319014020906},
          {1, 0.9213466140282418, -1.4141877903027, 0.6539015513395544, 0.1033642593577868},
          {0, 0.2763793976580263, 0.5936312196207665, 0.663663317629486, 0.04503125115579914}}},
    };
    for (size_t cs = 0; cs < 3; cs++) {
        char def[2048];
        snprintf(def, sizeof def,
                 EMB_HEAD "{\"type\":\"roboflow_core/identify_changes@v1\",\"name\":\"o\",\"embedding\":\"$inputs.emb\","
                          "\"strategy\":\"%s\",\"window_size\":3}],"
                          "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.o.*\"}]}",
                 cases[cs].strategy);
        struct wf_workflow *wf = compile_or_die(def);
        struct wf_state *st = wf_state_new();
        for (int k = 0; k < 6; k++) {
            json_t *r = emb_run(wf, st, k);
            const json_t *o = json_object_get(r, "o");
            const double *v = cases[cs].v[k];
            ASSERT_EQ(json_is_true(json_object_get(o, "is_outlier")), (int)v[0]);
            ASSERT(fabs(json_number_value(json_object_get(o, "percentile")) - v[1]) < 1e-9);
            ASSERT(fabs(json_number_value(json_object_get(o, "z_score")) - v[2]) < 1e-9);
            ASSERT(fabs(json_number_value(json_array_get(json_object_get(o, "average"), 0)) - v[3]) < 1e-12);
            ASSERT(fabs(json_number_value(json_array_get(json_object_get(o, "std"), 1)) - v[4]) < 1e-12);
            ASSERT_EQ(json_is_true(json_object_get(o, "warming_up")), k < 3);
            json_decref(r);
        }
        wf_state_free(st);
        wf_free(wf);
    }
}

/* ---- trace / heatmap ----------------------------------------------------------------------- */

static json_t *last_image_json;

/* The output image "img" of r decoded (PNG-exact pixels are not needed:
 * results carry JPEG, so the tests use wide tolerances or big areas). */
static struct vis_image *out_image(const json_t *r, const char *name)
{
    const json_t *o = json_object_get(r, name);
    const char *b64 = json_string_value(json_object_get(o, "value"));
    if (!b64)
        return NULL;
    size_t n = 0;
    uint8_t *raw = base64_decode(b64, strlen(b64), &n);
    struct vis_image *im = NULL;
    if (raw && vis_decode(raw, n, &im) < 0)
        im = NULL;
    free(raw);
    return im;
}

static bool near_px(const struct vis_image *im, int x, int y, int b, int g, int r, int tol)
{
    const uint8_t *p = vis_px(im, x, y);
    return abs(p[0] - b) <= tol && abs(p[1] - g) <= tol && abs(p[2] - r) <= tol;
}

TEST(trace_keeps_trace_length_frames)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/trace_visualization@v1\",\"name\":\"tr\",\"image\":\"$inputs.image\","
             "\"predictions\":\"$steps.det.predictions\",\"trace_length\":2,\"thickness\":5}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.tr.image\"}]}");
    struct wf_state *st = wf_state_new();
    img_value = 0;
    /* centres (60,100) -> (160,100) -> (260,100); DEFAULT palette, class 0: #A351FB */
    for (int f = 1; f <= 3; f++) {
        nboxes = 1;
        box(0, 60 + 100 * (f - 1), 100, 20, 20, 0, 5);
        json_t *r = frame(wf, st, f);
        struct vis_image *im = out_image(r, "img");
        ASSERT(im != NULL);
        bool first_seg = near_px(im, 110, 100, 0xFB, 0x51, 0xA3, 40);
        bool second_seg = near_px(im, 210, 100, 0xFB, 0x51, 0xA3, 40);
        /* f1: one point, no line; f2: 60..160; f3: only 160..260 (trace_length 2) */
        ASSERT_EQ(first_seg, f == 2);
        ASSERT_EQ(second_seg, f == 3);
        vis_image_free(im);
        json_decref(r);
    }
    /* untracked predictions: a step error */
    nboxes = 1;
    box(0, 60, 100, 20, 20, 0, -1);
    char err[512] = "";
    ASSERT(frame_ex(wf, st, 4, 400, 200, err, sizeof err) == NULL);
    ASSERT(strstr(err, "tracked") != NULL);
    img_value = 100;
    wf_state_free(st);
    wf_free(wf);
    /* trace_length 0: compile error */
    ASSERT(compile_err(HEAD "{\"type\":\"roboflow_core/trace_visualization@v1\",\"name\":\"tr\","
                                "\"image\":\"$inputs.image\",\"predictions\":\"$steps.det.predictions\","
                                "\"trace_length\":0}],\"outputs\":[]}",
                           err, sizeof err) < 0);
}

TEST(heatmap_accumulates_heat)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/heatmap_visualization@v1\",\"name\":\"hm\",\"image\":\"$inputs.image\","
             "\"predictions\":\"$steps.det.predictions\",\"radius\":20,\"kernel_size\":1,\"opacity\":0.5,"
             "\"position\":\"CENTER\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.hm.image\"}]}");
    struct wf_state *st = wf_state_new();
    /* untracked boxes: every detection adds heat (ignore_stationary needs tracker ids) */
    nboxes = 1;
    box(0, 100, 100, 10, 10, 0, -1);
    json_t *r = frame(wf, st, 1);
    struct vis_image *im = out_image(r, "img");
    /* heat 1 = max: hue 125 - 125 = 0 -> BGR (0, 0, 255); 0.5 * 255 + 0.5 * 100 = 177.5 -> 178 */
    ASSERT(near_px(im, 100, 100, 50, 50, 178, 6));
    ASSERT(near_px(im, 300, 100, 100, 100, 100, 6)); /* outside: untouched */
    vis_image_free(im);
    json_decref(r);
    box(0, 130, 100, 10, 10, 0, -1);
    r = frame(wf, st, 2);
    im = out_image(r, "img");
    /* (95, 100): heat 1 of max 2 -> hue int(62.5) = 62 -> BGR (17, 255, 0) -> (58.5, 177.5, 50) */
    ASSERT(near_px(im, 92, 100, 58, 178, 50, 8));
    /* (115, 100): heat 2 -> hue 0 -> red */
    ASSERT(near_px(im, 115, 100, 50, 50, 178, 8));
    vis_image_free(im);
    json_decref(r);
    wf_state_free(st);
    wf_free(wf);

    /* ignore_stationary with tracked boxes: the first sighting adds nothing,
     * a move under motion_threshold neither */
    wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/heatmap_visualization@v1\",\"name\":\"hm\",\"image\":\"$inputs.image\","
             "\"predictions\":\"$steps.det.predictions\",\"radius\":20,\"kernel_size\":1,\"opacity\":0.5,"
             "\"position\":\"CENTER\",\"motion_threshold\":25}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.hm.image\"}]}");
    st = wf_state_new();
    const double xs[] = {100, 110, 140};
    for (int f = 1; f <= 3; f++) {
        box(0, xs[f - 1], 100, 10, 10, 0, 3);
        r = frame(wf, st, f);
        im = out_image(r, "img");
        ASSERT_EQ(near_px(im, (int)xs[f - 1], 100, 100, 100, 100, 6), f < 3);
        vis_image_free(im);
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
    /* a huge radius is a step error, not a crash */
    wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/heatmap_visualization@v1\",\"name\":\"hm\",\"image\":\"$inputs.image\","
             "\"predictions\":\"$steps.det.predictions\",\"radius\":100000000}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.hm.image\"}]}");
    char err[512] = "";
    ASSERT(frame_ex(wf, NULL, 1, 400, 200, err, sizeof err) == NULL);
    ASSERT(strstr(err, "radius") != NULL);
    wf_free(wf);
}

/* ---- polygon v2 / halo v2 --------------------------------------------------------------------- */

TEST(polygon_and_halo_v2)
{
    /* {block, kernel_size, expect a change 8 px outside the box edge, expect a change on the edge} */
    static const struct {
        const char *block;
        int kernel;
        bool outside, edge;
    } cases[] = {
        {"polygon_visualization@v2", 5, false, true}, /* the mask outline, 2 px */
        {"halo_visualization@v1", 5, true, false},    /* v1: kernel_size ignored, 40 used */
        {"halo_visualization@v2", 5, false, false},   /* 5x5 blur: the halo stays within 2 px */
        {"halo_visualization@v2", 40, true, false},
    };
    for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
        char def[2048];
        snprintf(def, sizeof def,
                 HEAD_MODEL("instance_segmentation") "{\"type\":\"roboflow_core/%s\",\"name\":\"v\","
                 "\"image\":\"$inputs.image\",\"predictions\":\"$steps.det.predictions\",\"kernel_size\":%d}],"
                 "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.v.image\"}]}",
                 cases[k].block, cases[k].kernel);
        struct wf_workflow *wf = compile_or_die(def);
        nboxes = 1;
        box(0, 100, 100, 60, 60, 0, -1); /* box and mask polygon 70..130 */
        json_t *r = frame(wf, NULL, 1);
        struct vis_image *im = out_image(r, "img");
        ASSERT_EQ(!near_px(im, 62, 100, 100, 100, 100, 6), cases[k].outside);
        ASSERT_EQ(!near_px(im, 70, 100, 100, 100, 100, 10), cases[k].edge);
        vis_image_free(im);
        json_decref(r);
        wf_free(wf);
    }
    /* an object-detection predictions selector is refused at compile time (sv needs masks) */
    char err[512];
    ASSERT(compile_err(HEAD "{\"type\":\"roboflow_core/halo_visualization@v2\",\"name\":\"v\","
                            "\"image\":\"$inputs.image\",\"predictions\":\"$steps.det.predictions\"}],"
                            "\"outputs\":[]}", err, sizeof err) < 0);
    /* a kernel_size beyond the bound: a step error */
    struct wf_workflow *wf = compile_or_die(
        HEAD_MODEL("instance_segmentation") "{\"type\":\"roboflow_core/halo_visualization@v2\",\"name\":\"v\","
        "\"image\":\"$inputs.image\",\"predictions\":\"$steps.det.predictions\",\"kernel_size\":100000}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.v.image\"}]}");
    ASSERT(frame_ex(wf, NULL, 1, 400, 200, err, sizeof err) == NULL);
    ASSERT(strstr(err, "kernel_size") != NULL);
    wf_free(wf);
}

/* ---- grid / icon ----------------------------------------------------------------------------- */

static json_t *two_image_run(struct wf_workflow *wf, struct vis_image *a, struct vis_image *b)
{
    const struct vis_image *ia[1] = {a}, *ib[1] = {b};
    struct wf_image_input ii[2] = {{"image", ia, 1, false, NULL}, {"other", ib, 1, false, NULL}};
    struct wf_run_inputs in = {ii, 2, NULL};
    struct wf_env env = {script_infer, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    char err[512];
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r = json_incref(json_array_get(res, 0));
    json_decref(res);
    return r;
}

#define TWO_IMAGES                                                                                 \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"             \
    "{\"type\":\"WorkflowImage\",\"name\":\"other\"}],\"steps\":["

TEST(grid_lays_images_on_a_square)
{
    struct wf_workflow *wf = compile_or_die(
        TWO_IMAGES "{\"type\":\"roboflow_core/grid_visualization@v1\",\"name\":\"g\","
                   "\"images\":[\"$inputs.image\",\"$inputs.other\"],\"width\":200,\"height\":100}],"
                   "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.g.image\"}]}");
    struct vis_image *a = img_new(400, 200, 250), *b = img_new(100, 100, 120);
    json_t *r = two_image_run(wf, a, b);
    struct vis_image *im = out_image(r, "img");
    ASSERT(im && im->w == 200 && im->h == 100);
    /* 2 images: 2x2 grid of 100x50 cells; a scaled by 0.25 -> 100x50 at (0,0);
     * b by 0.5 -> 50x50 at (100 + 25, 0); the second row is black */
    ASSERT(near_px(im, 50, 25, 250, 250, 250, 8));
    ASSERT(near_px(im, 150, 25, 120, 120, 120, 8));
    ASSERT(near_px(im, 110, 25, 0, 0, 0, 8));
    ASSERT(near_px(im, 50, 75, 0, 0, 0, 8));
    vis_image_free(im);
    json_decref(r);
    vis_image_free(a);
    vis_image_free(b);
    wf_free(wf);
    /* a single selector is taken as a list of one (the manifest's coerce_single_selector_to_list):
     * one image fills the whole 200x100 grid cell, 400x200 scaled by 0.5 */
    wf = compile_or_die(TWO_IMAGES "{\"type\":\"roboflow_core/grid_visualization@v1\",\"name\":\"g\","
                                   "\"images\":\"$inputs.other\",\"width\":200,\"height\":100}],"
                                   "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.g.image\"}]}");
    a = img_new(10, 10, 0);
    b = img_new(400, 200, 230);
    r = two_image_run(wf, a, b);
    im = out_image(r, "img");
    ASSERT(near_px(im, 190, 90, 230, 230, 230, 8));
    vis_image_free(im);
    json_decref(r);
    vis_image_free(a);
    vis_image_free(b);
    wf_free(wf);
    char err[512];
    /* a width of 0 or beyond the bound is a step error */
    wf = compile_or_die(TWO_IMAGES "{\"type\":\"roboflow_core/grid_visualization@v1\",\"name\":\"g\","
                                   "\"images\":[\"$inputs.image\"],\"width\":0}],"
                                   "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.g.image\"}]}");
    a = img_new(10, 10, 0);
    const struct vis_image *ia[1] = {a};
    struct wf_image_input ii[2] = {{"image", ia, 1, false, NULL}, {"other", ia, 1, false, NULL}};
    struct wf_run_inputs in = {ii, 2, NULL};
    struct wf_env env = {script_infer, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "width") != NULL);
    vis_image_free(a);
    wf_free(wf);
}

TEST(icon_static_and_dynamic)
{
    const char *defs[] = {
        TWO_IMAGES "{\"type\":\"roboflow_core/icon_visualization@v1\",\"name\":\"ic\",\"image\":\"$inputs.image\","
                   "\"icon\":\"$inputs.other\",\"mode\":\"static\",\"icon_width\":20,\"icon_height\":20,"
                   "\"x_position\":10,\"y_position\":-10}],"
                   "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.ic.image\"}]}",
        TWO_IMAGES "{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","
                   "\"images\":\"$inputs.image\",\"model_id\":\"m\"},"
                   "{\"type\":\"roboflow_core/icon_visualization@v1\",\"name\":\"ic\",\"image\":\"$inputs.image\","
                   "\"icon\":\"$inputs.other\",\"predictions\":\"$steps.det.predictions\",\"icon_width\":20,"
                   "\"icon_height\":10,\"position\":\"CENTER\"}],"
                   "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.ic.image\"}]}",
    };
    for (int d = 0; d < 2; d++) {
        struct wf_workflow *wf = compile_or_die(defs[d]);
        struct vis_image *a = img_new(100, 100, 0), *b = img_new(10, 10, 250);
        nboxes = 1;
        box(0, 50, 50, 30, 30, 0, -1);
        json_t *r = two_image_run(wf, a, b);
        struct vis_image *im = out_image(r, "img");
        if (d == 0) {
            /* x 10, y -10: top-left (10, 100 - 10 - 20 = 70), 20x20 */
            ASSERT(near_px(im, 20, 80, 250, 250, 250, 10));
            ASSERT(near_px(im, 5, 80, 0, 0, 0, 10));
            ASSERT(near_px(im, 20, 60, 0, 0, 0, 10));
        } else {
            /* square icon letterboxed into 20x10: 10x10 at (5, 0) of the box, the box centred
             * on (50, 50): x 45..55, y 45..55 */
            ASSERT(near_px(im, 50, 50, 250, 250, 250, 10));
            ASSERT(near_px(im, 41, 50, 0, 0, 0, 10));
            ASSERT(near_px(im, 50, 42, 0, 0, 0, 10));
        }
        vis_image_free(im);
        json_decref(r);
        vis_image_free(a);
        vis_image_free(b);
        wf_free(wf);
    }
    (void)last_image_json;
}

/* ---- text_display / rich_label ---------------------------------------------------------------- */

#define TD(extra)                                                                                    \
    HEAD "{\"type\":\"roboflow_core/text_display@v1\",\"name\":\"td\",\"image\":\"$inputs.image\"," extra "}]," \
         "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.td.image\"}]}"

static struct vis_image *td_frame(const char *def)
{
    struct wf_workflow *wf = compile_or_die(def);
    json_t *r = frame(wf, NULL, 1);
    struct vis_image *im = out_image(r, "img");
    json_decref(r);
    wf_free(wf);
    return im;
}

TEST(text_display_layout)
{
    img_value = 200;
    nboxes = 3;
    for (int k = 0; k < 3; k++)
        box(k, 50 + 60 * k, 150, 20, 20, 0, -1);
    /* one line, scale 1, thickness 2: cv2 text height round(21 + 3/2) = 22, baseline
     * round(9) = 9, line advance 31; box 31 + 2 * 10 high at (10, 10) (top_left + offsets) */
    struct vis_image *im = td_frame(TD("\"text\":\"Hi\""));
    ASSERT(near_px(im, 12, 12, 0, 0, 0, 12));      /* padding: black background */
    ASSERT(near_px(im, 12, 59, 0, 0, 0, 12));      /* last row of the box: 10 + 51 - 1 */
    ASSERT(near_px(im, 12, 63, 200, 200, 200, 12)); /* below it */
    ASSERT(near_px(im, 8, 20, 200, 200, 200, 12));
    vis_image_free(im);
    /* two lines: 2 * 31 + spacing round(0.25 * 31) = 8 -> 70 + 20 = 90 high: rows 10..99 */
    im = td_frame(TD("\"text\":\"Hi\\nthere\""));
    ASSERT(near_px(im, 12, 97, 0, 0, 0, 12));
    ASSERT(near_px(im, 12, 103, 200, 200, 200, 12));
    vis_image_free(im);
    /* bottom_right with negative offsets, half-transparent: 200 * 0.5 -> 100 */
    im = td_frame(TD("\"text\":\"Hi\",\"anchor\":\"bottom_right\",\"offset_x\":-10,\"offset_y\":-10,"
                     "\"background_opacity\":0.5"));
    ASSERT(near_px(im, 400 - 12, 200 - 12, 100, 100, 100, 12));
    ASSERT(near_px(im, 400 - 8, 200 - 12, 200, 200, 200, 12));
    vis_image_free(im);
    /* absolute position beyond the image: clamped inside */
    im = td_frame(TD("\"text\":\"Hi\",\"position_mode\":\"absolute\",\"position_x\":5000,\"position_y\":-50"));
    ASSERT(near_px(im, 398, 2, 0, 0, 0, 12));
    vis_image_free(im);
    /* parameters with operations: "{{ $parameters.n }}" -> "3" (3 detections): a short
     * box; an unknown parameter stays as written: a long one */
    im = td_frame(TD("\"text\":\"{{ $parameters.n }}\",\"text_parameters\":{\"n\":\"$steps.det.predictions\"},"
                     "\"text_parameters_operations\":{\"n\":[{\"type\":\"SequenceLength\"}]}"));
    ASSERT(near_px(im, 10 + 60, 12, 200, 200, 200, 12));
    vis_image_free(im);
    im = td_frame(TD("\"text\":\"{{ $parameters.zz }}\",\"text_parameters\":{\"n\":\"$steps.det.predictions\"}"));
    ASSERT(near_px(im, 10 + 60, 12, 0, 0, 0, 12));
    vis_image_free(im);
    img_value = 100;
    /* bad values: compile errors or step errors */
    char err[512];
    ASSERT(compile_err(TD("\"text\":\"x\",\"anchor\":\"middle\""), err, sizeof err) < 0);
    ASSERT(compile_err(TD("\"text\":\"x\",\"text_parameters_operations\":{\"n\":[{\"type\":\"Nope\"}]}"), err,
                       sizeof err) < 0);
    struct wf_workflow *wf = compile_or_die(TD("\"text\":\"x\",\"font_scale\":1e9"));
    ASSERT(frame_ex(wf, NULL, 1, 400, 200, err, sizeof err) == NULL);
    ASSERT(strstr(err, "font_scale") != NULL);
    wf_free(wf);
    wf = compile_or_die(TD("\"text\":\"x\",\"padding\":-3"));
    ASSERT(frame_ex(wf, NULL, 1, 400, 200, err, sizeof err) == NULL);
    wf_free(wf);
}

TEST(rich_label_box_above_the_detection)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/rich_label_visualization@v1\",\"name\":\"rl\",\"image\":\"$inputs.image\","
             "\"predictions\":\"$steps.det.predictions\",\"text\":\"Class and Confidence\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.rl.image\"}]}");
    nboxes = 1;
    box(0, 100, 120, 40, 40, 0, -1); /* top-left corner (80, 100) */
    json_t *r = frame(wf, NULL, 1);
    struct vis_image *im = out_image(r, "img");
    /* TOP_LEFT: the label's box ends at the anchor; DEFAULT palette, class 0: #A351FB;
     * the padding (10) is background colour */
    ASSERT(near_px(im, 82, 98, 0xFB, 0x51, 0xA3, 30));
    ASSERT(near_px(im, 78, 98, 100, 100, 100, 10));
    ASSERT(near_px(im, 82, 103, 100, 100, 100, 10));
    vis_image_free(im);
    json_decref(r);
    nboxes = 0;
    r = frame(wf, NULL, 2);
    im = out_image(r, "img");
    ASSERT(near_px(im, 82, 98, 100, 100, 100, 10));
    vis_image_free(im);
    json_decref(r);
    wf_free(wf);
    char err[512];
    ASSERT(compile_err(HEAD "{\"type\":\"roboflow_core/rich_label_visualization@v1\",\"name\":\"rl\","
                            "\"image\":\"$inputs.image\",\"predictions\":\"$steps.det.predictions\","
                            "\"font_size\":0}],\"outputs\":[]}",
                       err, sizeof err) < 0);
}

/* ---- trackers_sort / trackers_bytetrack ------------------------------------------------------- */

#define TK(type, extra)                                                                              \
    HEAD "{\"type\":\"roboflow_core/" type "\",\"name\":\"tk\",\"image\":\"$inputs.image\","           \
         "\"detections\":\"$steps.det.predictions\"" extra "}],"                                       \
         "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.tk.tracked_detections\"},"  \
         "{\"type\":\"JsonField\",\"name\":\"new\",\"selector\":\"$steps.tk.new_instances\"},"           \
         "{\"type\":\"JsonField\",\"name\":\"seen\",\"selector\":\"$steps.tk.already_seen_instances\"}]}"

static int64_t tid_at(const json_t *r, size_t k)
{
    return json_integer_value(json_object_get(json_array_get(preds_of(r, "t"), k), "tracker_id"));
}

TEST(trackers_sort_ids_after_three_updates)
{
    /* trackers' SORTTracker, defaults (3 consecutive frames, IoU 0.3): a track spawned
     * on frame 1 is updated on frames 2 and 3 and gets id 0 (the package's first id) on
     * frame 3; a second object from frame 4 gets id 1 on frame 6; a 3-frame gap of the
     * first keeps its id (lost after int(10 / 30 * 30) = 10 frames at 10 fps) */
    struct wf_workflow *wf = compile_or_die(TK("trackers_sort@v1", ""));
    struct wf_state *st = wf_state_new();
    for (int f = 1; f <= 12; f++) {
        bool gap = f >= 8 && f <= 10;
        nboxes = 0;
        if (!gap)
            box(nboxes++, 60 + 5 * f, 60, 40, 40, 0, -1);
        if (f >= 4)
            box(nboxes++, 300, 140 - 2 * f, 40, 40, 2, -1);
        json_t *r = frame(wf, st, f);
        const json_t *t = preds_of(r, "t");
        size_t want = (f >= 3 && !gap ? 1 : 0) + (f >= 6 ? 1 : 0);
        ASSERT_EQ(json_array_size(t), want);
        if (f >= 3 && !gap)
            ASSERT_EQ(tid_at(r, 0), 0);
        if (f >= 6)
            ASSERT_EQ(tid_at(r, want - 1), 1);
        ASSERT_EQ(json_array_size(preds_of(r, "new")), f == 3 || f == 6 ? 1 : 0);
        ASSERT_EQ(json_array_size(preds_of(r, "seen")), want - (f == 3 || f == 6 ? 1 : 0));
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
}

TEST(trackers_bytetrack_two_rounds)
{
    /* trackers' ByteTrackTracker, defaults (activation 0.7, high 0.6, 2 frames, IoU 0.1):
     * frame 1 spawns (no id), frame 2 gives id 0; a low-confidence (0.5) detection of the
     * track on frame 3 is matched in the second round and keeps id 0; a lone 0.65 or 0.5
     * detection never starts a track */
    struct wf_workflow *wf = compile_or_die(TK("trackers_bytetrack@v1", ""));
    struct wf_state *st = wf_state_new();
    for (int f = 1; f <= 5; f++) {
        nboxes = 0;
        box(nboxes++, 60 + 5 * f, 60, 40, 40, 0, -1);
        boxes[0].conf = f == 3 ? 0.5 : 0.9;
        box(nboxes++, 300, 60, 40, 40, 2, -1);
        boxes[1].conf = 0.65;
        box(nboxes++, 300, 160, 40, 40, 2, -1);
        boxes[2].conf = 0.5;
        json_t *r = frame(wf, st, f);
        ASSERT_EQ(json_array_size(preds_of(r, "t")), f == 1 ? 0 : 1);
        if (f > 1) {
            ASSERT_EQ(tid_at(r, 0), 0);
            ASSERT(fabs(json_number_value(json_object_get(json_array_get(preds_of(r, "t"), 0), "confidence")) -
                        (f == 3 ? 0.5 : 0.9)) < 1e-6);
        }
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
    /* parameters out of range: compile or step errors, never a crash */
    char err[512];
    ASSERT(compile_err(TK("trackers_bytetrack@v1", ",\"minimum_iou_threshold\":2"), err, sizeof err) < 0);
    wf = compile_or_die(TK("trackers_sort@v1", ",\"lost_track_buffer\":-5"));
    ASSERT(frame_ex(wf, NULL, 1, 400, 200, err, sizeof err) == NULL);
    wf_free(wf);
}

TEST_MAIN()
