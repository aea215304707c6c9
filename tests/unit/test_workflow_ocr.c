/*
 * test_workflow_ocr.c — the OCR blocks without weights: a fake OCR provider
 * (model "pp_ocr", task "ocr") answers boxes and texts chosen per test;
 * roboflow_core/pp_ocr@v1 / ocr_model@v1 turn them into detections and
 * outputs, and stitch_ocr_detections@v1/@v2 order them as Roboflow's
 * transformations/stitch_ocr_detections v1.py / v2.py do (expected strings
 * worked out by hand from that code: line grouping by gap (v1) or by
 * round-half-even(y1 / tolerance) (v2), line separator "\n" or " ",
 * delimiter between every element, directions, "auto").
 */
#include <stdio.h>
#include <string.h>

#include "t.h"

#include "base/base.h"
#include "workflow/workflow.h"

struct word {
    const char *text;
    double x1, y1, x2, y2;
};
static const struct word *g_words;
static size_t g_nwords;
static int g_calls;

static int ocr_fake(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                    size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud;
    g_calls++;
    if (strcmp(req->model_id, "pp_ocr") != 0 || strcmp(req->task, "ocr") != 0) {
        snprintf(err, errlen, "fake: unexpected model %s task %s", req->model_id, req->task);
        return ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        struct buf all = BUF_INIT;
        for (size_t k = 0; k < g_nwords; k++) {
            const struct word *w = &g_words[k];
            json_array_append_new(preds, json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x",
                                                   (w->x1 + w->x2) / 2, "y", (w->y1 + w->y2) / 2,
                                                   "width", w->x2 - w->x1, "height", w->y2 - w->y1,
                                                   "confidence", 0.9, "class", w->text,
                                                   "class_id", 0));
            if (k)
                ASSERT_OK(buf_puts(&all, " "));
            ASSERT_OK(buf_puts(&all, w->text));
        }
        out[i] = json_pack("{s:s,s:o,s:{s:i,s:i}}", "result", all.data ? all.data : "",
                           "predictions", preds, "image", "width", images[i]->w, "height",
                           images[i]->h);
        buf_release(&all);
    }
    return 0;
}

static const struct wf_env ocr_env = {ocr_fake, NULL, 90, NULL, NULL};

/* Run a workflow of pp_ocr (or ocr_model) + one stitch step over a blank
 * 200x200 image; returns results[0] (new ref). */
static json_t *run_stitch(const char *ocr_type, const char *stitch_json)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"%s\",\"name\":\"o\",\"images\":\"$inputs.image\"},"
             "{\"name\":\"s\",\"predictions\":\"$steps.o.predictions\",%s}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.s.ocr_text\"},"
             "{\"type\":\"JsonField\",\"name\":\"r\",\"selector\":\"$steps.o.result\"},"
             "{\"type\":\"JsonField\",\"name\":\"p\",\"selector\":\"$steps.o.predictions\"},"
             "{\"type\":\"JsonField\",\"name\":\"pt\",\"selector\":\"$steps.o.prediction_type\"},"
             "{\"type\":\"JsonField\",\"name\":\"pid\",\"selector\":\"$steps.o.parent_id\"}]}",
             ocr_type, stitch_json);
    struct wf_workflow *wf = NULL;
    char err[512];
    if (wf_compile_text(text, strlen(text), &wf, err, sizeof err) < 0)
        T_FAIL("compile: %s", err);
    struct vis_image *im = vis_image_new(200, 200, VIS_BGR);
    memset(im->px, 255, (size_t)im->stride * 200);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *res = NULL;
    if (wf_run(wf, &ocr_env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r0 = json_incref(json_array_get(res, 0));
    json_decref(res);
    wf_free(wf);
    vis_image_free(im);
    return r0;
}

/* The run of the stitch step fails, with a message holding want_err. */
static void expect_error(const char *ocr_type, const char *stitch_json, const char *want_err)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"%s\",\"name\":\"o\",\"images\":\"$inputs.image\"},"
             "{\"name\":\"s\",\"predictions\":\"$steps.o.predictions\",%s}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.s.ocr_text\"}]}",
             ocr_type, stitch_json);
    struct wf_workflow *wf = NULL;
    char err[512] = "";
    if (wf_compile_text(text, strlen(text), &wf, err, sizeof err) < 0)
        T_FAIL("compile: %s", err);
    struct vis_image *im = vis_image_new(200, 200, VIS_BGR);
    memset(im->px, 255, (size_t)im->stride * 200);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *res = NULL;
    if (wf_run(wf, &ocr_env, &in, &res, err, sizeof err) >= 0)
        T_FAIL("%s: ran, wanted an error holding '%s'", stitch_json, want_err);
    else if (!strstr(err, want_err))
        T_FAIL("%s: error '%s', wanted one holding '%s'", stitch_json, err, want_err);
    json_decref(res);
    wf_free(wf);
    vis_image_free(im);
}

static void expect_text(const char *ocr_type, const char *stitch, const char *want)
{
    json_t *r = run_stitch(ocr_type, stitch);
    const char *got = json_string_value(json_object_get(r, "t"));
    if (!got || strcmp(got, want) != 0)
        T_FAIL("%s: got '%s', want '%s'", stitch, got ? got : "(null)", want);
    json_decref(r);
}

static const struct word two_lines[] = {
    {"Hello", 10, 10, 60, 30}, {"world", 70, 12, 130, 32},
    {"second", 10, 50, 80, 70}, {"line", 90, 48, 130, 68},
};

#define V1 "\"type\":\"roboflow_core/stitch_ocr_detections@v1\","
#define V2 "\"type\":\"roboflow_core/stitch_ocr_detections@v2\",\"stitching_algorithm\":\"tolerance\","

TEST(ocr_block_outputs)
{
    g_words = two_lines, g_nwords = 4;
    json_t *r = run_stitch("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"left_to_right\"");
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "r")), "Hello world second line");
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "pt")), "ocr");
    ASSERT(json_is_string(json_object_get(r, "pid")));
    json_t *p = json_object_get(json_object_get(r, "p"), "predictions");
    ASSERT_EQ(json_array_size(p), 4);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 2), "class")), "second");
    ASSERT_NEAR(json_number_value(json_object_get(json_array_get(p, 2), "width")), 70, 1e-9);
    json_decref(r);
    /* ocr_model@v1 and its legacy name run the same model */
    r = run_stitch("OCRModel", V1 "\"reading_direction\":\"left_to_right\"");
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "r")), "Hello world second line");
    json_decref(r);
}

TEST(stitch_v1_directions_and_delimiter)
{
    g_words = two_lines, g_nwords = 4;
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"left_to_right\"",
                "Helloworld\nsecondline");
    /* the delimiter joins every element, the line separator included */
    expect_text("roboflow_core/pp_ocr@v1",
                V1 "\"reading_direction\":\"left_to_right\",\"delimiter\":\" \"",
                "Hello world \n second line");
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"right_to_left\"",
                "worldHello\nlinesecond");
    /* a tolerance smaller than the 2 px offsets splits every box */
    expect_text("roboflow_core/pp_ocr@v1",
                V1 "\"reading_direction\":\"left_to_right\",\"tolerance\":1",
                "Hello\nworld\nline\nsecond");
    /* auto: boxes wider than tall read left to right */
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"auto\"",
                "Helloworld\nsecondline");
}

TEST(stitch_vertical)
{
    static const struct word cols[] = {
        {"x", 10, 10, 20, 60}, {"y", 12, 70, 22, 120}, {"z", 50, 10, 60, 60}};
    g_words = cols, g_nwords = 3;
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"vertical_top_to_bottom\"",
                "xy z");
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"auto\"", "xy z");
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"vertical_bottom_to_top\"",
                "z yx");
    expect_text("roboflow_core/pp_ocr@v1", V2 "\"reading_direction\":\"vertical_top_to_bottom\"",
                "xy z");
}

TEST(stitch_v1_gap_versus_v2_rounding)
{
    /* y1 14 and 16: 2 px apart (one line for v1), but round(1.4) = 1 and
     * round(1.6) = 2 put them on lines 10 and 20 for v2 */
    static const struct word near[] = {{"a", 10, 14, 30, 30}, {"b", 40, 16, 60, 32}};
    g_words = near, g_nwords = 2;
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"left_to_right\"", "ab");
    expect_text("roboflow_core/pp_ocr@v1", V2 "\"reading_direction\":\"left_to_right\"", "a\nb");
    /* numpy rounds half to even: 1.5 -> 2 and 2.5 -> 2, one line */
    static const struct word half[] = {{"g", 10, 15, 30, 30}, {"h", 40, 25, 60, 40}};
    g_words = half, g_nwords = 2;
    expect_text("roboflow_core/pp_ocr@v1", V2 "\"reading_direction\":\"left_to_right\"", "gh");
    /* v1: a 10 px gap stays on the line, 11 starts a new one */
    static const struct word gap[] = {{"p", 10, 10, 30, 30}, {"q", 40, 20, 60, 40},
                                      {"r", 70, 31, 90, 50}};
    g_words = gap, g_nwords = 3;
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"left_to_right\"", "pq\nr");
}

TEST(stitch_empty_and_unsupported)
{
    g_words = NULL, g_nwords = 0;
    expect_text("roboflow_core/pp_ocr@v1", V1 "\"reading_direction\":\"left_to_right\"", "");
    g_words = two_lines, g_nwords = 4;
    char text[2048], err[512] = "";
    snprintf(text, sizeof text,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/pp_ocr@v1\",\"name\":\"o\",\"images\":\"$inputs.image\"},"
             "{\"type\":\"roboflow_core/stitch_ocr_detections@v2\",\"name\":\"s\",\"predictions\":"
             "\"$steps.o.predictions\",\"stitching_algorithm\":\"otsu\",\"reading_direction\":"
             "\"left_to_right\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.s.ocr_text\"}]}");
    struct wf_workflow *wf = NULL;
    ASSERT_OK(wf_compile_text(text, strlen(text), &wf, err, sizeof err));
    struct vis_image *im = vis_image_new(50, 50, VIS_BGR);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *res = NULL;
    /* otsu runs: every gap is 10 / 55 (equal gaps: not bimodal), so each
     * line is one word (adaptive_word_grouping of v2.py) */
    ASSERT_OK(wf_run(wf, &ocr_env, &in, &res, err, sizeof err));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "t")), "Helloworld\nsecondline");
    json_decref(res);
    wf_free(wf);
    /* tolerance must be > 0: refused when the workflow compiles */
    snprintf(text, sizeof text,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/pp_ocr@v1\",\"name\":\"o\",\"images\":\"$inputs.image\"},"
             "{\"type\":\"roboflow_core/stitch_ocr_detections@v1\",\"name\":\"s\",\"predictions\":"
             "\"$steps.o.predictions\",\"tolerance\":0,\"reading_direction\":\"left_to_right\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.s.ocr_text\"}]}");
    ASSERT(wf_compile_text(text, strlen(text), &wf, err, sizeof err) < 0);
    ASSERT(strstr(err, "tolerance"));
    /* pp_ocr with text_detection none is refused at run time, with the reason */
    snprintf(text, sizeof text,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/pp_ocr@v1\",\"name\":\"o\",\"images\":\"$inputs.image\","
             "\"text_detection\":\"none\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"t\",\"selector\":\"$steps.o.result\"}]}");
    ASSERT_OK(wf_compile_text(text, strlen(text), &wf, err, sizeof err));
    int calls = g_calls;
    ASSERT(wf_run(wf, &ocr_env, &in, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "'none' is not supported"));
    ASSERT_EQ(g_calls, calls);
    wf_free(wf);
    vis_image_free(im);
}

#define V2OTSU "\"type\":\"roboflow_core/stitch_ocr_detections@v2\",\"stitching_algorithm\":\"otsu\","
#define V2COLL "\"type\":\"roboflow_core/stitch_ocr_detections@v2\",\"stitching_algorithm\":\"collimate\","

TEST(stitch_v2_otsu_words)
{
    /* v2.py adaptive_word_grouping by hand: widths 10, normalised gaps
     * 0.1, 1.9, 0.1, 0.1 on line 1 (line 2: 0.1).  find_otsu_threshold:
     * 5 gaps, 5 bins over 0.1..1.9 (step 0.36), the first centre 0.28
     * splits {0.1 x4} / {1.9}: variance 4 * 1 * 1.8^2, no later centre
     * beats it; above-mean 1.9 > 0.3 and separation 1.8 > 0.3: bimodal.
     * 1.9 > 0.28 breaks "HI" / "YOU"; the 0.1 gaps do not. */
    static const struct word w[] = {
        {"Y", 40, 0, 50, 20}, {"H", 0, 0, 10, 20},   {"I", 11, 1, 21, 21}, {"O", 51, 0, 61, 20},
        {"U", 62, 0, 72, 20}, {"B", 11, 40, 21, 60}, {"A", 0, 40, 10, 60},
    };
    g_words = w, g_nwords = 7;
    expect_text("roboflow_core/pp_ocr@v1", V2OTSU "\"reading_direction\":\"left_to_right\"", "HI YOU\nAB");
    /* a delimiter joins characters and separates words */
    expect_text("roboflow_core/pp_ocr@v1", V2OTSU "\"reading_direction\":\"left_to_right\",\"delimiter\":\"_\"",
                "H_I_Y_O_U\nA_B");
    /* a multiplier of 20 puts the threshold (5.6) above every gap */
    expect_text("roboflow_core/pp_ocr@v1",
                V2OTSU "\"reading_direction\":\"left_to_right\",\"otsu_threshold_multiplier\":20", "HIYOU\nAB");
    /* right to left: each line reversed, the gaps measured backwards */
    expect_text("roboflow_core/pp_ocr@v1", V2OTSU "\"reading_direction\":\"right_to_left\"", "UOY IH\nBA");
    /* one box: its text; no boxes: "" */
    g_words = w, g_nwords = 1;
    expect_text("roboflow_core/pp_ocr@v1", V2OTSU "\"reading_direction\":\"left_to_right\"", "Y");
    g_words = NULL, g_nwords = 0;
    expect_text("roboflow_core/pp_ocr@v1", V2OTSU "\"reading_direction\":\"left_to_right\"", "");
}

TEST(stitch_v2_collimate_follows_skewed_lines)
{
    /* v2.py collimate_word_grouping by hand: sorted by centre x
     * (A, D, B, E, C: ties keep input order); line [A] takes B (|8 - 5| <
     * 5 + 10) then C from parent B; D starts a line that takes E; lines by
     * mean centre y (8, 46.5).  The tolerance algorithm splits A B from C
     * instead (round(6 / 10) = 1). */
    static const struct word w[] = {
        {"A", 0, 0, 10, 10}, {"B", 12, 3, 22, 13}, {"C", 24, 6, 34, 16}, {"D", 0, 40, 10, 50}, {"E", 12, 43, 22, 53},
    };
    g_words = w, g_nwords = 5;
    expect_text("roboflow_core/pp_ocr@v1", V2COLL "\"reading_direction\":\"left_to_right\"", "ABC\nDE");
    expect_text("roboflow_core/pp_ocr@v1", V2COLL "\"reading_direction\":\"left_to_right\",\"delimiter\":\"-\"",
                "A-B-C\nD-E");
    expect_text("roboflow_core/pp_ocr@v1", V2 "\"reading_direction\":\"left_to_right\"", "AB\nC\nDE");
    /* a tolerance of 0 and boxes 3 px apart in y with half-height 5: still aligned */
    expect_text("roboflow_core/pp_ocr@v1",
                V2COLL "\"reading_direction\":\"left_to_right\",\"collimate_tolerance\":0", "ABC\nDE");
    /* vertical: x and y swap roles, columns joined by a space */
    static const struct word v[] = {
        {"a", 0, 0, 10, 10}, {"b", 1, 12, 11, 22}, {"c", 40, 0, 50, 10}, {"d", 41, 12, 51, 22},
    };
    g_words = v, g_nwords = 4;
    expect_text("roboflow_core/pp_ocr@v1", V2COLL "\"reading_direction\":\"vertical_top_to_bottom\"", "ab cd");
    expect_text("roboflow_core/pp_ocr@v1", V2COLL "\"reading_direction\":\"vertical_bottom_to_top\"", "dc ba");
    /* a negative tolerance would make every box its own line, at cubic cost */
    expect_error("roboflow_core/pp_ocr@v1",
                 V2COLL "\"reading_direction\":\"left_to_right\",\"collimate_tolerance\":-1", "must not be negative");
}

TEST_MAIN()
