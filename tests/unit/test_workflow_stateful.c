/*
 * test_workflow_stateful.c — rate_limiter and delta_filter
 * (blocks/stateful.c) over sequences of video frames sharing one
 * wf_state, as the jobs worker runs a video.
 *
 * Expected behaviour: roboflow/inference flow_control/rate_limiter/v1.py
 * (time = frame_number / fps of video_reference_image; throttled while
 * now - last_passed < cooldown_seconds) and flow_control/delta_filter/v1.py
 * (continue when the value differs from the video's previous one).
 */
#include "t.h"

#include "base/base.h"
#include "workflow/workflow.h"

static int no_infer(void *ud, const struct wf_model_request *req,
                    const struct vis_image *const *images, size_t n, json_t **out, char *err,
                    size_t errlen)
{
    (void)ud, (void)req, (void)images, (void)n, (void)out;
    snprintf(err, errlen, "no model in this test");
    return ERR_INVALID;
}

/* The step after the flow-control block: the image width (null when the
 * branch terminated). */
#define AFTER                                                                                  \
    "{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"after\","                  \
    "\"data\":\"$inputs.image\",\"operations\":[{\"type\":\"ExtractImageProperty\","           \
    "\"property_name\":\"width\"}]}"
#define HEAD                                                                                   \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"       \
    "{\"type\":\"WorkflowParameter\",\"name\":\"v\"}],\"steps\":["
#define TAIL                                                                                   \
    "," AFTER "],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"w\","                        \
    "\"selector\":\"$steps.after.output\"}]}"

/* Run one frame (frame_number no at fps, video vid, parameter v); returns
 * whether the branch went on. */
static bool frame(const struct wf_workflow *wf, struct wf_state *st, const char *vid, int no,
                  double fps, json_t *v)
{
    struct vis_image *im = vis_image_new(8, 6, VIS_BGR);
    memset(im->px, 0, (size_t)im->stride * 6);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = vid ? json_pack("{s:s,s:i,s:s,s:f,s:b}", "video_identifier", vid, "frame_number",
                                 no, "frame_timestamp", "2026-12-06T00:00:00.000Z", "fps", fps,
                                 "comes_from_video_file", 1)
                     : NULL;
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    json_t *params = json_pack("{s:O}", "v", v ? v : json_null());
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {no_infer, NULL, 90, st, NULL};
    json_t *res = NULL;
    char err[512];
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    const json_t *w = json_object_get(json_array_get(res, 0), "w");
    bool went_on = json_is_integer(w) && json_integer_value(w) == 8;
    if (!went_on && !json_is_null(w))
        T_FAIL("unexpected output");
    json_decref(res);
    json_decref(params);
    json_decref(vm);
    json_decref(v);
    vis_image_free(im);
    return went_on;
}

static struct wf_workflow *compile_or_die(const char *text)
{
    struct wf_workflow *wf = NULL;
    char err[512];
    if (wf_compile_text(text, strlen(text), &wf, err, sizeof err) < 0)
        T_FAIL("compile: %s", err);
    return wf;
}

TEST(rate_limiter_uses_frame_time)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/rate_limiter@v1\",\"name\":\"rl\","
             "\"cooldown_seconds\":1.0,\"depends_on\":\"$inputs.image\","
             "\"next_steps\":[\"$steps.after\"],\"video_reference_image\":\"$inputs.image\"}" TAIL);
    struct wf_state *st = wf_state_new();
    /* 10 fps: frames 0, 10, 20 are 1 s apart (not < 1 s: they pass);
     * 5 and 19 are within the cooldown of the last passed frame */
    static const int frames[] = {0, 5, 9, 10, 19, 20, 35};
    static const bool want[] = {true, false, false, true, false, true, true};
    for (size_t k = 0; k < sizeof frames / sizeof *frames; k++)
        if (frame(wf, st, "clip", frames[k], 10.0, NULL) != want[k])
            T_FAIL("frame %d: expected %s", frames[k], want[k] ? "to pass" : "throttled");
    wf_state_free(st);
    /* without a state every run starts afresh and passes */
    ASSERT(frame(wf, NULL, "clip", 1, 10.0, NULL));
    ASSERT(frame(wf, NULL, "clip", 2, 10.0, NULL));
    wf_free(wf);
}

TEST(rate_limiter_wall_clock_and_bad_metadata)
{
    /* no reference image: wall clock; a 1 h cooldown throttles the 2nd run */
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/rate_limiter@v1\",\"name\":\"rl\","
             "\"cooldown_seconds\":3600,\"depends_on\":\"$inputs.image\","
             "\"next_steps\":[\"$steps.after\"]}" TAIL);
    struct wf_state *st = wf_state_new();
    ASSERT(frame(wf, st, "clip", 0, 10.0, NULL));
    ASSERT(!frame(wf, st, "clip", 100000, 10.0, NULL));
    wf_state_free(st);
    wf_free(wf);
    /* fps 0 falls back to the wall clock; a zero cooldown never throttles */
    wf = compile_or_die(HEAD "{\"type\":\"roboflow_core/rate_limiter@v1\",\"name\":\"rl\","
                             "\"cooldown_seconds\":0,\"depends_on\":\"$inputs.image\","
                             "\"next_steps\":[\"$steps.after\"],"
                             "\"video_reference_image\":\"$inputs.image\"}" TAIL);
    st = wf_state_new();
    ASSERT(frame(wf, st, "clip", 0, 0.0, NULL));
    ASSERT(frame(wf, st, "clip", 0, 0.0, NULL));
    /* an image without metadata is frame 0 at 30 fps: time 0, before the
     * wall-clock time of the last pass, so the difference is negative and
     * (as in Roboflow's timedelta check) below the cooldown: throttled */
    ASSERT(!frame(wf, st, NULL, 0, 0.0, NULL));
    wf_state_free(st);
    wf_free(wf);
    /* cooldown_seconds is a literal; next_steps must be a list */
    struct wf_workflow *bad = NULL;
    char err[512];
    const char *t1 = HEAD "{\"type\":\"roboflow_core/rate_limiter@v1\",\"name\":\"rl\","
                          "\"cooldown_seconds\":\"$inputs.v\",\"depends_on\":\"$inputs.image\","
                          "\"next_steps\":[\"$steps.after\"]}" TAIL;
    ASSERT(wf_compile_text(t1, strlen(t1), &bad, err, sizeof err) < 0);
    const char *t2 = HEAD "{\"type\":\"roboflow_core/rate_limiter@v1\",\"name\":\"rl\","
                          "\"depends_on\":\"$inputs.image\",\"next_steps\":\"$steps.after\"}" TAIL;
    ASSERT(wf_compile_text(t2, strlen(t2), &bad, err, sizeof err) < 0);
    ASSERT(strstr(err, "next_steps"));
}

TEST(delta_filter_per_video)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/delta_filter@v1\",\"name\":\"df\","
             "\"image\":\"$inputs.image\",\"value\":\"$inputs.v\","
             "\"next_steps\":[\"$steps.after\"]}" TAIL);
    struct wf_state *st = wf_state_new();
    ASSERT(frame(wf, st, "a", 0, 30, json_integer(3)));
    ASSERT(!frame(wf, st, "a", 1, 30, json_integer(3)));
    /* another video has its own memory */
    ASSERT(frame(wf, st, "b", 0, 30, json_integer(3)));
    ASSERT(frame(wf, st, "a", 2, 30, json_integer(4)));
    ASSERT(frame(wf, st, "a", 3, 30, json_integer(3)));
    ASSERT(!frame(wf, st, "a", 4, 30, json_integer(3)));
    /* JSON values compare by content */
    ASSERT(frame(wf, st, "a", 5, 30, json_pack("{s:[i,s]}", "k", 1, "x")));
    ASSERT(!frame(wf, st, "a", 6, 30, json_pack("{s:[i,s]}", "k", 1, "x")));
    ASSERT(frame(wf, st, "a", 7, 30, json_string("x")));
    wf_state_free(st);
    wf_free(wf);
}

TEST(delta_filter_detections_always_change)
{
    /* images and detections never compare equal (fresh ids every frame) */
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/delta_filter@v1\",\"name\":\"df\","
             "\"image\":\"$inputs.image\",\"value\":\"$inputs.image\","
             "\"next_steps\":[\"$steps.after\"]}" TAIL);
    struct wf_state *st = wf_state_new();
    ASSERT(frame(wf, st, "a", 0, 30, NULL));
    ASSERT(frame(wf, st, "a", 1, 30, NULL));
    wf_state_free(st);
    wf_free(wf);
}

/* ---- buffer ---------------------------------------------------------------- */

static json_t *run_frame(const struct wf_workflow *wf, struct wf_state *st, json_t *v)
{
    struct vis_image *im = vis_image_new(8, 6, VIS_BGR);
    memset(im->px, 0, (size_t)im->stride * 6);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    json_t *params = json_pack("{s:o}", "v", v);
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {no_infer, NULL, 90, st, NULL};
    json_t *res = NULL;
    char err[512];
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    json_decref(params);
    vis_image_free(im);
    return r;
}

#define BUF_DEF(data, extra)                                                                   \
    HEAD "{\"type\":\"roboflow_core/buffer@v1\",\"name\":\"b\",\"data\":\"" data "\"" extra "}],"  \
         "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.b.output\"}]}"

static void expect_json(json_t *got, const char *want)
{
    json_error_t je;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &je);
    if (!w || !json_equal(got, w)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY);
        T_FAIL("got %s, want %s", g ? g : "?", want);
    }
    json_decref(w);
    json_decref(got);
}

TEST(buffer_keeps_last_values_newest_first)
{
    struct wf_workflow *wf = compile_or_die(BUF_DEF("$inputs.v", ",\"length\":3"));
    struct wf_state *st = wf_state_new();
    expect_json(run_frame(wf, st, json_integer(1)), "[1]");
    expect_json(run_frame(wf, st, json_integer(2)), "[2, 1]");
    expect_json(run_frame(wf, st, json_string("x")), "[\"x\", 2, 1]");
    expect_json(run_frame(wf, st, json_integer(4)), "[4, \"x\", 2]");
    wf_state_free(st);
    wf_free(wf);
    /* pad: always `length` items, None at the end */
    wf = compile_or_die(BUF_DEF("$inputs.v", ",\"length\":3,\"pad\":true"));
    st = wf_state_new();
    expect_json(run_frame(wf, st, json_integer(1)), "[1, null, null]");
    expect_json(run_frame(wf, st, json_integer(2)), "[2, 1, null]");
    wf_state_free(st);
    wf_free(wf);
    /* length 0: always empty (Python's buffer[:0]) */
    wf = compile_or_die(BUF_DEF("$inputs.v", ",\"length\":0"));
    st = wf_state_new();
    expect_json(run_frame(wf, st, json_integer(1)), "[]");
    wf_state_free(st);
    wf_free(wf);
}

TEST(buffer_of_images_and_limits)
{
    struct wf_workflow *wf = compile_or_die(BUF_DEF("$inputs.image", ",\"length\":2"));
    struct wf_state *st = wf_state_new();
    for (int k = 0; k < 5; k++) {
        json_t *o = run_frame(wf, st, json_null());
        ASSERT_EQ(json_array_size(o), k == 0 ? 1 : 2);
        /* serialized images: {"type": "base64", "value": ...} */
        ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(o, 0), "type")), "base64");
        json_decref(o);
    }
    wf_state_free(st);
    wf_free(wf);
    /* a huge length is a step error; a negative one or a selector fails to compile */
    wf = compile_or_die(BUF_DEF("$inputs.v", ",\"length\":100000"));
    {
        struct vis_image *im = vis_image_new(8, 6, VIS_BGR);
        const struct vis_image *imgs[1] = {im};
        struct wf_image_input ii = {"image", imgs, 1, false, NULL};
        json_t *params = json_pack("{s:i}", "v", 1);
        struct wf_run_inputs in = {&ii, 1, params};
        struct wf_env env = {no_infer, NULL, 90, NULL, NULL};
        json_t *res = NULL;
        char err[512] = "";
        ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
        ASSERT(strstr(err, "length must be between 0 and 64"));
        json_decref(params);
        vis_image_free(im);
    }
    wf_free(wf);
    struct wf_workflow *bad = NULL;
    char err[512];
    const char *t1 = BUF_DEF("$inputs.v", ",\"length\":-1");
    ASSERT(wf_compile_text(t1, strlen(t1), &bad, err, sizeof err) < 0);
    const char *t2 = BUF_DEF("$inputs.v", "");
    ASSERT(wf_compile_text(t2, strlen(t2), &bad, err, sizeof err) < 0);
    ASSERT(strstr(err, "length"));
}

/* ---- frame_delay --------------------------------------------------------------- */

static json_t *run_meta(const struct wf_workflow *wf, struct wf_state *st, const char *vid, int no,
                        json_t *v, char *err, size_t errlen)
{
    struct vis_image *im = vis_image_new(8, 6, VIS_BGR);
    memset(im->px, 0, (size_t)im->stride * 6);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:f}", "video_identifier", vid, "frame_number", no, "fps", 30.0);
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    json_t *params = json_pack("{s:o}", "v", v);
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {no_infer, NULL, 90, st, NULL};
    json_t *res = NULL, *r = NULL;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        r = json_incref(json_array_get(res, 0));
    json_decref(res);
    json_decref(params);
    json_decref(vm);
    vis_image_free(im);
    return r;
}

#define FD_DEF(extra)                                                                          \
    HEAD "{\"type\":\"roboflow_core/frame_delay@v1\",\"name\":\"fd\",\"image\":\"$inputs.image\"," \
         "\"data\":\"$inputs.v\"" extra "}],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\","  \
         "\"selector\":\"$steps.fd.*\"}]}"

static void fd_expect(json_t *r, const char *output, bool avail, int ref)
{
    if (!r)
        T_FAIL("run failed");
    json_t *o = json_object_get(r, "o");
    json_error_t je;
    json_t *w = json_loads(output, JSON_DECODE_ANY, &je);
    if (!json_equal(json_object_get(o, "output"), w)) {
        char *g = json_dumps(json_object_get(o, "output"), JSON_ENCODE_ANY);
        T_FAIL("output %s, want %s", g ? g : "?", output);
    }
    ASSERT_EQ(json_is_true(json_object_get(o, "is_available")), avail);
    ASSERT_EQ(json_integer_value(json_object_get(o, "reference_frame_number")), ref);
    json_decref(w);
    json_decref(r);
}

TEST(frame_delay_past_frames_per_video)
{
    struct wf_workflow *wf = compile_or_die(FD_DEF(",\"offset\":-2,\"default_value\":\"none yet\""));
    struct wf_state *st = wf_state_new();
    char err[512] = "";
    fd_expect(run_meta(wf, st, "a", 1, json_integer(10), err, sizeof err), "\"none yet\"", false, 1);
    fd_expect(run_meta(wf, st, "a", 2, json_integer(20), err, sizeof err), "\"none yet\"", false, 2);
    fd_expect(run_meta(wf, st, "a", 3, json_integer(30), err, sizeof err), "10", true, 3);
    /* another video: its own frames */
    fd_expect(run_meta(wf, st, "b", 3, json_integer(99), err, sizeof err), "\"none yet\"", false, 3);
    /* a skipped frame number: frame 5 - 2 = 3 is there */
    fd_expect(run_meta(wf, st, "a", 5, json_integer(50), err, sizeof err), "30", true, 5);
    /* frame 6 - 2 = 4 never came */
    fd_expect(run_meta(wf, st, "a", 6, json_string("x"), err, sizeof err), "\"none yet\"", false, 6);
    /* the numbering goes back: a new stream, nothing buffered */
    fd_expect(run_meta(wf, st, "a", 3, json_integer(7), err, sizeof err), "\"none yet\"", false, 3);
    fd_expect(run_meta(wf, st, "a", 5, json_integer(8), err, sizeof err), "7", true, 5);
    wf_state_free(st);
    wf_free(wf);
    /* offset 0: this frame's own value; no default: None */
    wf = compile_or_die(FD_DEF(",\"offset\":0"));
    st = wf_state_new();
    fd_expect(run_meta(wf, st, "a", 1, json_pack("[i,s]", 1, "z"), err, sizeof err), "[1, \"z\"]",
              true, 1);
    wf_state_free(st);
    wf_free(wf);
    wf = compile_or_die(FD_DEF(",\"offset\":-1"));
    st = wf_state_new();
    fd_expect(run_meta(wf, st, "a", 1, json_integer(1), err, sizeof err), "null", false, 1);
    wf_state_free(st);
    wf_free(wf);
}

TEST(frame_delay_offset_bounds)
{
    char err[512] = "";
    struct wf_workflow *wf = compile_or_die(FD_DEF(",\"offset\":1"));
    ASSERT(run_meta(wf, NULL, "a", 1, json_integer(1), err, sizeof err) == NULL);
    ASSERT(strstr(err, "`offset` must be <= 0 (got 1)"));
    wf_free(wf);
    wf = compile_or_die(FD_DEF(",\"offset\":-257"));
    ASSERT(run_meta(wf, NULL, "a", 1, json_integer(1), err, sizeof err) == NULL);
    ASSERT(strstr(err, "no smaller than -256"));
    wf_free(wf);
    /* the deepest offset: 300 frames through a -256 window stay bounded */
    wf = compile_or_die(FD_DEF(",\"offset\":-256"));
    struct wf_state *st = wf_state_new();
    for (int f = 0; f < 300; f++) {
        json_t *r = run_meta(wf, st, "a", f, json_integer(f), err, sizeof err);
        json_t *o = json_object_get(json_object_get(r, "o"), "output");
        ASSERT(f < 256 ? json_is_null(o) : json_integer_value(o) == f - 256);
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
    /* TimeTravel is an alias */
    wf = compile_or_die(HEAD "{\"type\":\"TimeTravel\",\"name\":\"fd\",\"image\":\"$inputs.image\","
                             "\"data\":\"$inputs.image\",\"offset\":-1}],\"outputs\":[]}");
    wf_free(wf);
}

/* ---- identify_changes ----------------------------------------------------------- */

/* Expected per run [is_outlier, percentile, z_score, average, std, warming_up]
 * for the embeddings of test_workflow_ichg_ref.py (window_size 3), printed
 * by that script (Roboflow's IdentifyChangesBlockV1 step by step). */
static const char *const ICHG_EMA =
    "[[false, 0.5, 0.0, [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], true], [false, 0.5, 0.0, [0.999388373"
    "4673619, 0.011043152607484655, 0.0], [0.00174071962847496, 0.03142936330963102, 0.0], true"
    "], [false, 0.0007827011290012509, 3.1622776601683795, [0.9993247700084102, 0.0149325990411"
    "25413, 0.0], [0.0016612832637410944, 0.031805023472420285, 0.0], true], [true, 0.023788713"
    "60867274, 1.9811234846990817, [0.9992540759408203, 0.013439339137012873, 0.005255883312276"
    "367], [0.0015888224724009605, 0.030470726114043445, 0.014958506144577008], false], [true, "
    "0.9992171298561532, -3.1622147900866975, [0.8993286683467383, 0.11209540522331159, 0.00473"
    "02949810487304], [0.2843966900162442, 0.2822641946430345, 0.014269505405948266], false], ["
    "false, 0.37344148031332625, 0.32275214109130146, [0.9093758075100652, 0.10088586470098043,"
    " 0.006256865602903871], [0.27131344254653306, 0.26967306834272353, 0.014217358783254672], "
    "false]]";
static const char *const ICHG_SMA =
    "[[false, 0.5, 0.0, [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], true], [false, 0.5, 0.0, [0.996941867"
    "3368095, 0.055215763037423274, 0.0], [0.0043248526878202275, 0.07808688094430304, 0.0], tr"
    "ue], [false, 0.12410653949496286, 1.1547005383792464, [0.9975453578504878, 0.0534563810062"
    "4626, 0.0], [0.0032318381435295315, 0.05529978990194957, 0.0], true], [false, 0.3732709720"
    "3624215, 0.3232024255642028, [0.9978134757209933, 0.040092285754684695, 0.0131397082806909"
    "18], [0.002692718693177185, 0.05247006139731257, 0.026279416561381837], false], [true, 0.9"
    "6317830061235, -1.788822545726246, [0.7982507805767947, 0.23207382860374776, 0.01051176662"
    "4552735], [0.44624184532218886, 0.431682052534978, 0.023505024736113427], false], [false, "
    "0.36932252285937417, 0.3336481951261074, [0.8318423271439968, 0.1933948571697898, 0.012092"
    "472387060635], [0.4075239620168376, 0.3975624385826493, 0.0213771077211581], false]]";
static const char *const ICHG_WINDOW =
    "[[false, 0.5, 0.0, [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], true], [false, 0.5, 0.0, [0.993883734"
    "6736189, 0.11043152607484655, 0.0], [0.0, 0.0, 0.0], true], [false, 0.5, 0.0, [0.996318036"
    "7757318, 0.08018457150936939, 0.0], [0.002434302102112873, 0.030246954565477158, 0.0], tru"
    "e], [false, 0.8413447460685429, -1.0, [0.9970846342946578, 0.05345638100624626, 0.01751961"
    "1040921226], [0.0022640438736063425, 0.04515208938096341, 0.024776471541572212], false], ["
    "true, 0.9213497305510029, -1.4142090249675754, [0.6657900560701181, 0.3499792056479641, 0."
    "017519611040921226], [0.47078466669635194, 0.46008601819953016, 0.024776471541572212], fal"
    "se], [false, 0.28365985319084364, 0.5720033481312524, [0.6661392964375056, 0.3333333333333"
    "333, 0.02418494477412127], [0.47103186099669675, 0.4714045207910317, 0.021660535096645565]"
    ", false]]";

static void ichg_case(const char *strategy, const char *expected)
{
    char def[2048];
    snprintf(def, sizeof def,
             HEAD "{\"type\":\"roboflow_core/identify_changes@v1\",\"name\":\"ic\","
                  "\"strategy\":\"%s\",\"embedding\":\"$inputs.v\",\"window_size\":3}],"
                  "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.ic.*\"}]}",
             strategy);
    struct wf_workflow *wf = compile_or_die(def);
    struct wf_state *st = wf_state_new();
    static const double emb[6][3] = {{1, 0, 0},    {0.9, 0.1, 0}, {1, 0.05, 0},
                                     {0.95, 0, 0.05}, {0, 1, 0},   {1, 0, 0.02}};
    json_error_t je;
    json_t *want = json_loads(expected, 0, &je);
    ASSERT(want);
    for (size_t k = 0; k < 6; k++) {
        json_t *o = run_frame(wf, st, json_pack("[f,f,f]", emb[k][0], emb[k][1], emb[k][2]));
        json_t *w = json_array_get(want, k);
        if (json_is_true(json_object_get(o, "is_outlier")) != json_is_true(json_array_get(w, 0)) ||
            json_is_true(json_object_get(o, "warming_up")) != json_is_true(json_array_get(w, 5)))
            T_FAIL("%s run %zu: flags differ", strategy, k);
        ASSERT_NEAR(json_number_value(json_object_get(o, "percentile")),
                    json_number_value(json_array_get(w, 1)), 1e-9);
        ASSERT_NEAR(json_number_value(json_object_get(o, "z_score")),
                    json_number_value(json_array_get(w, 2)), 1e-9);
        for (size_t q = 0; q < 3; q++) {
            ASSERT_NEAR(json_number_value(json_array_get(json_object_get(o, "average"), q)),
                        json_number_value(json_array_get(json_array_get(w, 3), q)), 1e-12);
            ASSERT_NEAR(json_number_value(json_array_get(json_object_get(o, "std"), q)),
                        json_number_value(json_array_get(json_array_get(w, 4), q)), 1e-12);
        }
        json_decref(o);
    }
    json_decref(want);
    wf_state_free(st);
    wf_free(wf);
}

TEST(identify_changes_strategies)
{
    ichg_case("Exponential Moving Average (EMA)", ICHG_EMA);
    ichg_case("Simple Moving Average (SMA)", ICHG_SMA);
    ichg_case("Sliding Window", ICHG_WINDOW);
}

TEST(identify_changes_bad_embeddings)
{
    struct wf_workflow *wf = compile_or_die(
        HEAD "{\"type\":\"roboflow_core/identify_changes@v1\",\"name\":\"ic\",\"embedding\":\"$inputs.v\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.ic.*\"}]}");
    struct wf_state *st = wf_state_new();
    json_decref(run_frame(wf, st, json_pack("[f,f]", 1.0, 2.0)));
    char err[512] = "";
    struct vis_image *im = vis_image_new(8, 6, VIS_BGR);
    memset(im->px, 0, (size_t)im->stride * 6);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    static const char *const bad[][2] = {{"[1, 2, 3]", "embedding has 3 dimensions, earlier ones had 2"},
                                         {"[1, \"x\"]", "embedding item 1 is not a finite number"},
                                         {"[]", "non-empty list"}};
    for (size_t k = 0; k < 3; k++) {
        json_t *params = json_pack("{s:o}", "v", json_loads(bad[k][0], 0, NULL));
        struct wf_run_inputs in = {&ii, 1, params};
        struct wf_env env = {no_infer, NULL, 90, st, NULL};
        json_t *res = NULL;
        ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
        if (!strstr(err, bad[k][1]))
            T_FAIL("%s: %s", bad[k][0], err);
        json_decref(params);
    }
    vis_image_free(im);
    wf_state_free(st);
    wf_free(wf);
}

TEST_MAIN()
