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
    struct wf_env env = {no_infer, NULL, 90, st};
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
    struct wf_env env = {no_infer, NULL, 90, st};
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
        struct wf_env env = {no_infer, NULL, 90, NULL};
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
    struct wf_env env = {no_infer, NULL, 90, st};
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

TEST_MAIN()
