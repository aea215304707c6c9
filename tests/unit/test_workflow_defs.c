/*
 * test_workflow_defs.c — every definition in ../shared/workflows compiles
 * and runs with the fake model and serializes to the documented shape.
 *
 * Definitions that use visualization blocks are run in full when those
 * blocks are registered; until then the test checks that compilation fails
 * with a clear "unsupported block" error and runs the definition with the
 * visualization steps (and the outputs that read them) removed.
 */
#include "t.h"
#include "test_workflow_fake.h"

#include <math.h>

/* Compile def; if a visualization block is missing, strip those steps. */
static struct wf_workflow *compile_def(json_t *def, bool *stripped)
{
    struct wf_workflow *wf = NULL;
    char err[512];
    *stripped = false;
    if (wf_compile(def, &wf, err, sizeof err) == 0)
        return wf;
    if (!strstr(err, "unsupported block") || !strstr(err, "visualization")) {
        fprintf(stderr, "compile failed: %s\n", err);
        exit(1);
    }
    json_t *steps = json_object_get(def, "steps"), *outs = json_object_get(def, "outputs");
    for (size_t i = json_array_size(steps); i-- > 0;) {
        const char *t = json_string_value(json_object_get(json_array_get(steps, i), "type"));
        if (strstr(t, "visualization") || strstr(t, "Visualization")) {
            const char *name = json_string_value(json_object_get(json_array_get(steps, i), "name"));
            char pfx[256];
            snprintf(pfx, sizeof pfx, "$steps.%s.", name);
            for (size_t k = json_array_size(outs); k-- > 0;) {
                const char *sel = json_string_value(json_object_get(json_array_get(outs, k), "selector"));
                if (str_has_prefix(sel, pfx))
                    json_array_remove(outs, k);
            }
            json_array_remove(steps, i);
        }
    }
    *stripped = true;
    if (wf_compile(def, &wf, err, sizeof err) < 0) {
        fprintf(stderr, "compile (stripped) failed: %s\n", err);
        exit(1);
    }
    return wf;
}

static void check_image(const json_t *img)
{
    ASSERT(json_is_object(img));
    ASSERT_STR_EQ(json_string_value(json_object_get(img, "type")), "base64");
    const char *b64 = json_string_value(json_object_get(img, "value"));
    ASSERT(b64 && strlen(b64) > 100);
    ASSERT(json_is_object(json_object_get(img, "video_metadata")));
    size_t len = 0;
    uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
    ASSERT(jpg && len > 4 && jpg[0] == 0xff && jpg[1] == 0xd8);
    free(jpg);
}

TEST(def_02_two_stage_classes_replacement)
{
    json_t *def = load_json_file("02_two_stage_classes_replacement_viz.json");
    bool stripped;
    ASSERT(def);
    struct wf_workflow *wf = compile_def(def, &stripped);
    struct vis_image *im = img_new(200, 160, 20);
    img_rect(im, 10, 10, 40, 50, 250); /* bright box: its crop classifies "bright" */
    json_t *r = run1(wf, im, NULL);
    json_t *dets = json_object_get(r, "detections");
    json_t *preds = json_object_get(dets, "predictions");
    ASSERT_EQ(json_array_size(preds), 2);
    /* box 0 (bright crop) -> "bright" 0.8; box 1 (centre quarter, dark) -> "dark" 0.7 */
    json_t *p0 = json_array_get(preds, 0), *p1 = json_array_get(preds, 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(p0, "class")), "bright");
    ASSERT_NEAR(json_number_value(json_object_get(p0, "confidence")), 0.8, 1e-9);
    ASSERT_EQ(json_integer_value(json_object_get(p0, "class_id")), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(p1, "class")), "dark");
    ASSERT_EQ(json_integer_value(json_object_get(p1, "class_id")), 1);
    ASSERT_NEAR(json_number_value(json_object_get(p1, "x")), 100, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(p1, "width")), 100, 1e-6);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(dets, "image"), "width")), 200);
    if (!stripped)
        check_image(json_object_get(r, "visualisation"));
    else
        ASSERT(!json_object_get(r, "visualisation"));
    json_decref(r);
    vis_image_free(im);
    wf_free(wf);
    json_decref(def);
}

TEST(def_03_detection_filter)
{
    json_t *def = load_json_file("03_detection_filter.json");
    struct wf_workflow *wf = NULL;
    char err[512];
    ASSERT(def);
    ASSERT_OK(wf_compile(def, &wf, err, sizeof err));
    /* 100x80: threshold 8000 * 0.025 = 200 px^2; bright 10x10 = 100 goes,
     * thing 50x40 = 2000 stays */
    struct vis_image *im = img_new(100, 80, 0);
    img_rect(im, 5, 5, 15, 15, 255);
    json_t *r = run1(wf, im, NULL);
    json_t *all = json_object_get(json_object_get(r, "model_predictions"), "predictions");
    json_t *kept = json_object_get(json_object_get(r, "detections_filter"), "predictions");
    ASSERT_EQ(json_array_size(all), 2);
    ASSERT_EQ(json_array_size(kept), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(kept, 0), "class")), "thing");
    /* the filter keeps the detection's identity */
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(kept, 0), "detection_id")),
                  json_string_value(json_object_get(json_array_get(all, 1), "detection_id")));
    json_decref(r);
    vis_image_free(im);
    wf_free(wf);
    json_decref(def);
}

TEST(def_06_sahi)
{
    json_t *def = load_json_file("06_sahi.json");
    bool stripped;
    ASSERT(def);
    struct wf_workflow *wf = compile_def(def, &stripped);
    /* 1000x700 -> slices at x 0,512 and y 0,512 (stride 640-128): 4 slices,
     * each yields its centre-quarter "thing" box; the bright box at
     * (100..140, 100..140) lies in slice (0,0) only. */
    struct vis_image *im = img_new(1000, 700, 0);
    img_rect(im, 100, 100, 140, 140, 255);
    fake_calls = 0;
    json_t *r = run1(wf, im, NULL);
    ASSERT_EQ(fake_calls, 1); /* the 4 slices go to the provider as one batch */
    json_t *preds = json_object_get(json_object_get(r, "predictions"), "predictions");
    ASSERT_EQ(json_array_size(preds), 5);
    int bright = 0, found_last = 0;
    for (size_t i = 0; i < json_array_size(preds); i++) {
        json_t *p = json_array_get(preds, i);
        const char *cls = json_string_value(json_object_get(p, "class"));
        if (!strcmp(cls, "bright")) {
            bright++;
            ASSERT_NEAR(json_number_value(json_object_get(p, "x")), 120, 1e-6);
            ASSERT_NEAR(json_number_value(json_object_get(p, "y")), 120, 1e-6);
        }
        /* slice (512,512) is 488x188: its centre box is 244x94 at 512+122, 512+47 */
        if (fabs(json_number_value(json_object_get(p, "x")) - (512 + 244)) < 1e-6 &&
            fabs(json_number_value(json_object_get(p, "y")) - (512 + 94)) < 1e-6) {
            ASSERT_NEAR(json_number_value(json_object_get(p, "width")), 244, 1e-6);
            found_last = 1;
        }
        ASSERT_STR_EQ(json_string_value(json_object_get(p, "parent_id")), "image");
    }
    ASSERT_EQ(bright, 1);
    ASSERT_EQ(found_last, 1);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_object_get(r, "predictions"), "image"), "width")), 1000);
    if (!stripped)
        check_image(json_object_get(r, "visualisation"));
    json_decref(r);
    /* nmm and none strategies through the parameter */
    json_t *params = json_pack("{s:s}", "overlap_filtering_strategy", "none");
    r = run1(wf, im, params);
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(r, "predictions"), "predictions")), 5);
    json_decref(r);
    json_decref(params);
    vis_image_free(im);
    wf_free(wf);
    json_decref(def);
}

TEST(def_07_static_crop_coordinates)
{
    json_t *def = load_json_file("07_static_crop_coords.json");
    struct wf_workflow *wf = NULL;
    char err[512];
    ASSERT(def);
    ASSERT_OK(wf_compile(def, &wf, err, sizeof err));
    struct vis_image *im = img_new(300, 200, 0);
    img_rect(im, 110, 60, 130, 90, 255); /* inside the crop */
    json_t *params = json_pack("{s:i,s:i,s:i,s:i,s:f}", "x_center", 150, "y_center", 100, "width",
                               100, "height", 80, "confidence", 0.7);
    json_t *r = run1(wf, im, params);
    /* crop: x 100..200, y 60..140 */
    json_t *crop = json_object_get(r, "crop");
    check_image(crop);
    json_t *po = json_object_get(crop, "parent_origin");
    ASSERT_EQ(json_integer_value(json_object_get(po, "offset_x")), 100);
    ASSERT_EQ(json_integer_value(json_object_get(po, "offset_y")), 60);
    ASSERT_EQ(json_integer_value(json_object_get(po, "width")), 300);
    ASSERT_STR_EQ(json_string_value(json_object_get(crop, "root_parent_id")), "image");
    /* parent coordinates: the bright box back in the image */
    json_t *res = json_object_get(r, "result");
    json_t *p = json_array_get(json_object_get(json_object_get(res, "predictions"), "predictions"), 0);
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(res, "predictions"), "predictions")), 1);
    ASSERT_NEAR(json_number_value(json_object_get(p, "x")), 120, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(p, "y")), 75, 1e-6);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "parent_id")), "image");
    ASSERT(!json_object_get(p, "parent_origin"));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_object_get(res, "predictions"), "image"), "width")), 300);
    /* own coordinates: relative to the crop, with origins */
    json_t *own = json_object_get(r, "result_in_own_coordinates");
    p = json_array_get(json_object_get(json_object_get(own, "predictions"), "predictions"), 0);
    ASSERT_NEAR(json_number_value(json_object_get(p, "x")), 20, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(p, "y")), 15, 1e-6);
    ASSERT(str_has_prefix(json_string_value(json_object_get(p, "parent_id")), "absolute_static_crop."));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(p, "parent_origin"), "offset_x")), 100);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(p, "root_parent_origin"), "offset_y")), 60);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "root_parent_id")), "image");
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_object_get(own, "predictions"), "image"), "width")), 100);
    json_decref(r);
    /* missing crop parameters: clean runtime error */
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *out = NULL;
    ASSERT(wf_run(wf, &fake_env, &in, &out, err, sizeof err) < 0);
    ASSERT(strstr(err, "step 'crop': field 'x_center'"));
    json_decref(params);
    vis_image_free(im);
    wf_free(wf);
    json_decref(def);
}

/* 09: detector -> byte_tracker -> line_counter over the frames of a
 * "video": a bright square moving right across a vertical line, then back.
 * The tracker keeps one id, the counter counts one in, then one out; a new
 * state (another video) starts from zero. */
static json_t *run_frame(const struct wf_workflow *wf, struct wf_state *st, int x, int frame, const json_t *params)
{
    struct vis_image *im = img_new(200, 100, 10);
    img_rect(im, x, 35, x + 30, 65, 250);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:s,s:f,s:f,s:b}", "video_identifier", "v.mp4", "frame_number", frame,
                           "frame_timestamp", "2026-11-29T00:00:00.000Z", "fps", 30.0, "measured_fps", 30.0,
                           "comes_from_video_file", 1);
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = fake_env;
    env.state = st;
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

TEST(def_09_video_line_counter)
{
    json_t *def = load_json_file("09_video_line_counter_v1.json");
    char err[512];
    ASSERT(def);
    json_t *outs = json_object_get(def, "outputs");
    json_array_append_new(outs, json_pack("{s:s,s:s,s:s}", "type", "JsonField", "name", "in", "selector",
                                          "$steps.line_counter.count_in"));
    json_array_append_new(outs, json_pack("{s:s,s:s,s:s}", "type", "JsonField", "name", "out", "selector",
                                          "$steps.line_counter.count_out"));
    json_array_append_new(outs, json_pack("{s:s,s:s,s:s}", "type", "JsonField", "name", "tracked", "selector",
                                          "$steps.byte_tracker.tracked_detections"));
    struct wf_workflow *wf = NULL;
    if (wf_compile(def, &wf, err, sizeof err) < 0)
        T_FAIL("%s", err);
    json_t *params = json_pack("{s:[[i,i],[i,i]]}", "line", 100, 0, 100, 100);
    struct wf_state *st = wf_state_new();
    int frame = 1;
    int64_t id = -1;
    for (int x = 10; x <= 160; x += 6) {
        json_t *r = run_frame(wf, st, x, frame++, params);
        json_t *p = json_object_get(json_object_get(r, "tracked"), "predictions");
        ASSERT_EQ(json_array_size(p), 1);
        int64_t tid = json_integer_value(json_object_get(json_array_get(p, 0), "tracker_id"));
        if (id < 0)
            id = tid;
        ASSERT_EQ(tid, id); /* one object, one id */
        ASSERT_EQ(json_integer_value(json_object_get(r, "in")), x + 15 > 100 ? 1 : 0);
        ASSERT_EQ(json_integer_value(json_object_get(r, "out")), 0);
        ASSERT(json_is_string(json_object_get(json_object_get(r, "label_visualization"), "value")));
        json_decref(r);
    }
    ASSERT_EQ(id, 1);
    for (int x = 154; x >= 10; x -= 6) {
        json_t *r = run_frame(wf, st, x, frame++, params), *p;
        ASSERT_EQ(json_integer_value(json_object_get(r, "in")), 1);
        ASSERT_EQ(json_integer_value(json_object_get(r, "out")), x + 15 < 100 ? 1 : 0);
        p = json_object_get(json_object_get(r, "tracked"), "predictions");
        ASSERT_EQ(json_array_size(p), 1); /* the turn does not lose it */
        ASSERT_EQ(json_integer_value(json_object_get(json_array_get(p, 0), "tracker_id")), id);
        json_decref(r);
    }
    /* another video: its own tracker and counts */
    struct wf_state *st2 = wf_state_new();
    json_t *r = run_frame(wf, st2, 150, 1, params);
    ASSERT_EQ(json_integer_value(json_object_get(r, "in")), 0);
    json_t *p2 = json_array_get(json_object_get(json_object_get(r, "tracked"), "predictions"), 0);
    ASSERT_EQ(json_integer_value(json_object_get(p2, "tracker_id")), 1);
    json_decref(r);
    wf_state_free(st2);
    wf_state_free(st);
    json_decref(params);
    wf_free(wf);
    json_decref(def);
}

TEST(result_row_deducts_images)
{
    json_t *def = load_json_file("07_static_crop_coords.json");
    struct wf_workflow *wf = NULL;
    char err[512];
    ASSERT_OK(wf_compile(def, &wf, err, sizeof err));
    struct vis_image *im = img_new(300, 200, 0);
    json_t *params = json_pack("{s:i,s:i,s:i,s:i}", "x_center", 150, "y_center", 100, "width", 100,
                               "height", 80);
    json_t *r = run1(wf, im, params), *row = NULL;
    struct wf_image_output *imgs = NULL;
    size_t n = 0;
    ASSERT_OK(wf_result_row(r, &row, &imgs, &n));
    ASSERT_STR_EQ(json_string_value(json_object_get(row, "crop")), "<deducted_image>");
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(imgs[0].path, "crop");
    ASSERT(imgs[0].len > 4 && imgs[0].jpeg[0] == 0xff && imgs[0].jpeg[1] == 0xd8);
    struct vis_image *dec = NULL;
    ASSERT_OK(vis_decode(imgs[0].jpeg, imgs[0].len, &dec));
    ASSERT_EQ(dec->w, 100);
    ASSERT_EQ(dec->h, 80);
    vis_image_free(dec);
    /* key order of the row follows the outputs */
    ASSERT_STR_EQ(json_object_iter_key(json_object_iter(row)), "crop");
    json_decref(row);
    wf_image_outputs_free(imgs, n);
    /* nested image lists get index paths */
    json_t *fake = json_pack("{s:[n,{s:s,s:s},{s:s,s:s}]}", "crops", "type", "base64", "value",
                             "/9j/", "type", "base64", "value", "%%%");
    ASSERT_OK(wf_result_row(fake, &row, &imgs, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(imgs[0].path, "crops/1");
    ASSERT(json_is_null(json_array_get(json_object_get(row, "crops"), 0)));
    /* undecodable base64: deducted, nothing to persist */
    ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(row, "crops"), 2)),
                  "<deducted_image>");
    json_decref(row);
    wf_image_outputs_free(imgs, n);
    json_decref(fake);
    json_decref(r);
    json_decref(params);
    vis_image_free(im);
    wf_free(wf);
    json_decref(def);
}

TEST_MAIN()
