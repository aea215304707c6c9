/*
 * test_workflow_vlm.c — the blocks of issue 14 written in blocks/vlm.c,
 * blocks/memory.c, blocks/overlap.c and the QR generator of blocks/codes.c:
 * vlm_as_classifier v1/v2, vlm_as_detector v1/v2, cache_set / cache_get,
 * image_stack, overlap_analysis and qr_code_generator.
 *
 * Sources of the expected values: the VLM parsers' outputs follow
 * roboflow/inference formatters/vlm_as_classifier/v2.py and
 * vlm_as_detector/v2.py + gemini/openai_detection_parsing.py step by step
 * (worked out by hand in the comments); the box roundings, Florence-2's MD5
 * class ids and the overlap ratios come from test_workflow_vlm_ref.py
 * (numpy, hashlib, Debian python3-shapely); the generated QR code is read
 * back with ZBar (qr_code_detector).
 */
#include "t.h"

#include <math.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#include "test_workflow_fake.h"

/* A provider returning the JSON response stored under the model id in ud. */
static int table_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                       size_t n, json_t **out, char *err, size_t errlen)
{
    (void)images;
    const json_t *r = json_object_get(ud, req->model_id);
    if (!r) {
        snprintf(err, errlen, "no such model");
        return ERR_NOTFOUND;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = json_deep_copy(r);
    return 0;
}

/* Run text on a w x h image with parameters; results[0] or NULL + err. */
static json_t *run_def(const char *def, int w, int h, const json_t *params, void *models,
                       struct wf_state *st, char *err, size_t errlen)
{
    struct wf_workflow *wf = NULL;
    if (wf_compile_text(def, strlen(def), &wf, err, errlen) < 0)
        return NULL;
    struct vis_image *im = img_new(w, h, 100);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = st ? json_pack("{s:s,s:i,s:f}", "video_identifier", "cam1", "frame_number", 1, "fps", 30.0) : NULL;
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {table_infer, models, 90, st, NULL};
    json_t *res = NULL, *r = NULL;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        r = json_incref(json_array_get(res, 0));
    json_decref(res);
    json_decref(vm);
    vis_image_free(im);
    wf_free(wf);
    return r;
}

static const char *VLM_DEF =
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
    "{\"type\":\"WorkflowParameter\",\"name\":\"text\"}],"
    "\"steps\":[{\"type\":\"%s\",\"name\":\"p\",\"image\":\"$inputs.image\","
    "\"vlm_output\":\"$inputs.text\",\"classes\":%s%s}],"
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.p.*\"}]}";

static json_t *vlm(const char *type, const char *classes, const char *extra, const char *text, int w, int h)
{
    char def[2048], err[512] = "";
    snprintf(def, sizeof def, VLM_DEF, type, classes, extra);
    json_t *params = json_pack("{s:s}", "text", text);
    json_t *r = run_def(def, w, h, params, NULL, NULL, err, sizeof err);
    json_decref(params);
    if (!r)
        T_FAIL("%s: %s", type, err);
    json_t *o = json_incref(json_object_get(r, "o"));
    json_decref(r);
    return o;
}

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

TEST(vlm_as_classifier_multi_class)
{
    /* v2.py parse_multi_class_classification_results: the top class is
     * not in classes -> first with class_id -1, then every class with 0.0 */
    json_t *o = vlm("roboflow_core/vlm_as_classifier@v2", "[\"cat\",\"dog\"]", "",
                    "Sure!\n```JSON\n{\"class_name\": \"fox\", \"confidence\": 1.7}\n```\n```json\n[]\n```", 64, 48);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    const json_t *p = json_object_get(o, "predictions");
    ASSERT_STR_EQ(str(p, "top"), "fox");
    ASSERT_NEAR(num(p, "confidence"), 1.0, 1e-12); /* clamped */
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(p, "image"), "width")), 64);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(p, "image"), "height")), 48);
    const json_t *l = json_object_get(p, "predictions");
    ASSERT_EQ(json_array_size(l), 3);
    ASSERT_STR_EQ(str(json_array_get(l, 0), "class"), "fox");
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(l, 0), "class_id")), -1);
    ASSERT_STR_EQ(str(json_array_get(l, 1), "class"), "cat");
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(l, 2), "class_id")), 1);
    ASSERT_NEAR(num(json_array_get(l, 2), "confidence"), 0.0, 1e-12);
    ASSERT_STR_EQ(str(p, "inference_id"), str(o, "inference_id"));
    ASSERT_STR_EQ(str(p, "parent_id"), "image");
    json_decref(o);
    /* a known class: its confidence, the others 0; a numeric string is float() */
    o = vlm("roboflow_core/vlm_as_classifier@v1", "[\"cat\",\"dog\"]", "",
            "{\"class_name\": \"dog\", \"confidence\": \"0.25\"}", 8, 8);
    p = json_object_get(o, "predictions");
    l = json_object_get(p, "predictions");
    ASSERT_EQ(json_array_size(l), 2);
    ASSERT_NEAR(num(json_array_get(l, 1), "confidence"), 0.25, 1e-12);
    ASSERT_NEAR(num(json_array_get(l, 0), "confidence"), 0.0, 1e-12);
    json_decref(o);
}

TEST(vlm_as_classifier_multi_label_and_errors)
{
    json_t *o = vlm("roboflow_core/vlm_as_classifier@v2", "[\"cat\",\"dog\"]", "",
                    "{\"predicted_classes\": [{\"class\": \"dog\", \"confidence\": 0.4},"
                    "{\"class\": \"owl\", \"confidence\": -3}, {\"class\": \"dog\", \"confidence\": 0.9}]}",
                    8, 8);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    const json_t *p = json_object_get(o, "predictions");
    const json_t *d = json_object_get(p, "predictions");
    /* classes first, unknown "owl" appended with -1, the max of repeated dog */
    ASSERT_EQ(json_object_size(d), 3);
    ASSERT_NEAR(num(json_object_get(d, "dog"), "confidence"), 0.9, 1e-12);
    ASSERT_NEAR(num(json_object_get(d, "cat"), "confidence"), 0.0, 1e-12);
    ASSERT_NEAR(num(json_object_get(d, "owl"), "confidence"), 0.0, 1e-12);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(d, "owl"), "class_id")), -1);
    const json_t *pc = json_object_get(p, "predicted_classes");
    ASSERT_EQ(json_array_size(pc), 2);
    ASSERT_STR_EQ(json_string_value(json_array_get(pc, 0)), "dog");
    ASSERT_STR_EQ(json_string_value(json_array_get(pc, 1)), "owl");
    json_decref(o);
    /* not JSON, a JSON of neither shape, a non-numeric confidence: error_status */
    static const char *const bad[] = {"no json here", "{\"answer\": 1}", "[1, 2]",
                                      "{\"class_name\": \"cat\", \"confidence\": \"high\"}",
                                      "```json\n{\"class_name\": \"cat\"", ""};
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        o = vlm("roboflow_core/vlm_as_classifier@v1", "[\"cat\"]", "", bad[k], 8, 8);
        if (!json_is_true(json_object_get(o, "error_status")))
            T_FAIL("'%s' parsed", bad[k]);
        ASSERT(json_is_null(json_object_get(o, "predictions")));
        ASSERT_EQ(strlen(str(o, "inference_id")), 36);
        json_decref(o);
    }
}

static const json_t *pred(const json_t *o, size_t k)
{
    return json_array_get(json_object_get(json_object_get(o, "predictions"), "predictions"), k);
}

static void box_of(const json_t *p, double b[4])
{
    b[0] = num(p, "x") - num(p, "width") / 2, b[1] = num(p, "y") - num(p, "height") / 2;
    b[2] = num(p, "x") + num(p, "width") / 2, b[3] = num(p, "y") + num(p, "height") / 2;
}

#define ASSERT_BOX(p, a, b_, c, d)                                                                 \
    do {                                                                                           \
        double bb[4];                                                                              \
        box_of(p, bb);                                                                             \
        if (fabs(bb[0] - (a)) > 1e-4 || fabs(bb[1] - (b_)) > 1e-4 || fabs(bb[2] - (c)) > 1e-4 ||   \
            fabs(bb[3] - (d)) > 1e-4)                                                              \
            T_FAIL("box %g %g %g %g, expected %g %g %g %g", bb[0], bb[1], bb[2], bb[3],            \
                   (double)(a), (double)(b_), (double)(c), (double)(d));                           \
    } while (0)

TEST(vlm_as_detector_gemini_claude_openai)
{
    /* gemini box_2d [y_min, x_min, y_max, x_max] / 1000 on 640 x 480:
     * 128 48 384 240 (ref.py); label from "label"; no confidence -> 1.0 */
    json_t *o = vlm("roboflow_core/vlm_as_detector@v2", "[\"cat\",\"dog\"]",
                    ",\"model_type\":\"google-gemini\",\"task_type\":\"object-detection\"",
                    "```json\n[{\"box_2d\": [100, 200, 500, 600], \"label\": \"dog\"}]\n```", 640, 480);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_BOX(pred(o, 0), 128, 48, 384, 240);
    ASSERT_STR_EQ(str(pred(o, 0), "class"), "dog");
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), 1);
    ASSERT_NEAR(num(pred(o, 0), "confidence"), 1.0, 1e-9);
    json_decref(o);
    /* claude (v2: the normalised parser): 0.1*25 = 2.5 -> 2, 0.3*25 = 7.5 -> 8,
     * 0.3*15 = 4.5 -> 4, 0.5*15 = 7.5 -> 8 (numpy half-to-even, ref.py) */
    o = vlm("roboflow_core/vlm_as_detector@v2", "[\"cat\"]",
            ",\"model_type\":\"anthropic-claude\",\"task_type\":\"object-detection\"",
            "{\"detections\": [{\"x_min\": 0.1, \"y_min\": 0.3, \"x_max\": 0.3, \"y_max\": 0.5,"
            " \"class_name\": \"owl\", \"confidence\": 0.75}]}", 25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_BOX(pred(o, 0), 2, 4, 8, 8);
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), -1);
    ASSERT_NEAR(num(pred(o, 0), "confidence"), 0.75, 1e-6);
    json_decref(o);
    /* claude v2 needs class_name: "label" alone is a parse error there... */
    o = vlm("roboflow_core/vlm_as_detector@v2", "[\"cat\"]",
            ",\"model_type\":\"anthropic-claude\",\"task_type\":\"object-detection\"",
            "{\"detections\": [{\"x_min\": 0.1, \"y_min\": 0.3, \"x_max\": 0.3, \"y_max\": 0.5, \"label\": \"cat\"}]}",
            25, 15);
    ASSERT(json_is_true(json_object_get(o, "error_status")));
    json_decref(o);
    /* ...but claude v1 uses the gemini parser, which accepts it */
    o = vlm("roboflow_core/vlm_as_detector@v1", "[\"cat\"]",
            ",\"model_type\":\"anthropic-claude\",\"task_type\":\"object-detection\"",
            "{\"detections\": [{\"x_min\": 0.1, \"y_min\": 0.3, \"x_max\": 0.3, \"y_max\": 0.5, \"label\": \"cat\"}]}",
            25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), 0);
    json_decref(o);
    /* openai absolute: a 4096 x 2048 image is uploaded as 2048 x 1024, so
     * [100, 50, 300, 2000] -> y_max clamped to 1024 -> x2 -> 200 100 600 2048 */
    o = vlm("roboflow_core/vlm_as_detector@v2", "[\"cat\"]",
            ",\"model_type\":\"openai\",\"task_type\":\"object-detection\"",
            "[{\"box_2d\": [100, 50, 300, 2000], \"class_name\": \"cat\", \"confidence\": 0.5}]", 4096, 2048);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_BOX(pred(o, 0), 200, 100, 600, 2048);
    json_decref(o);
    /* an empty list: no detections, no error */
    o = vlm("roboflow_core/vlm_as_detector@v2", "[\"cat\"]",
            ",\"model_type\":\"google-gemini\",\"task_type\":\"object-detection\"", "[]", 25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(o, "predictions"), "predictions")), 0);
    json_decref(o);
    /* malformed entries: error_status, never a crash */
    static const char *const bad[] = {"[{\"box_2d\": [1, 2, 3]}]", "[{\"box_2d\": \"x\"}]", "[5]",
                                      "{\"detections\": 3}", "\"text\"", "[{\"x_min\": 0.1}]"};
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        o = vlm("roboflow_core/vlm_as_detector@v2", "[\"cat\"]",
                ",\"model_type\":\"google-gemini\",\"task_type\":\"object-detection\"", bad[k], 25, 15);
        if (!json_is_true(json_object_get(o, "error_status")))
            T_FAIL("'%s' parsed", bad[k]);
        json_decref(o);
    }
}

TEST(vlm_as_detector_florence2)
{
    /* <OD>: pixels as given, class id = int(md5(label)[:9], 16) % 10000:
     * car 9605, dog 5324 (ref.py); confidence 1.0 */
    json_t *o = vlm("roboflow_core/vlm_as_detector@v1", "null",
                    ",\"model_type\":\"florence-2\",\"task_type\":\"object-detection\"",
                    "{\"bboxes\": [[1.5, 2, 30, 40], [5, 6, 7, 8]], \"labels\": [\"car\", \"dog\"]}", 64, 64);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_BOX(pred(o, 0), 1.5, 2, 30, 40);
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), 9605);
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 1), "class_id")), 5324);
    json_decref(o);
    /* region proposal: class "roi", id 0 */
    o = vlm("roboflow_core/vlm_as_detector@v2", "null",
            ",\"model_type\":\"florence-2\",\"task_type\":\"region-proposal\"",
            "{\"bboxes\": [[1, 2, 3, 4]], \"labels\": [\"\"]}", 64, 64);
    ASSERT_STR_EQ(str(pred(o, 0), "class"), "roi");
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), 0);
    json_decref(o);
    /* OCR: quad boxes -> their bounding box, class id 0 */
    o = vlm("roboflow_core/vlm_as_detector@v2", "null",
            ",\"model_type\":\"florence-2\",\"task_type\":\"ocr-with-text-detection\"",
            "{\"quad_boxes\": [[10, 5, 20, 6, 19, 15, 9, 14]], \"labels\": [\"hi\"]}", 64, 64);
    ASSERT_BOX(pred(o, 0), 9, 5, 20, 15);
    ASSERT_STR_EQ(str(pred(o, 0), "class"), "hi");
    json_decref(o);
    /* open vocabulary: index in classes */
    o = vlm("roboflow_core/vlm_as_detector@v2", "[\"a\",\"b\"]",
            ",\"model_type\":\"florence-2\",\"task_type\":\"open-vocabulary-object-detection\"",
            "{\"bboxes\": [[1, 2, 3, 4]], \"bboxes_labels\": [\"b\"]}", 64, 64);
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), 1);
    json_decref(o);
    /* labels and boxes of different lengths: error_status */
    o = vlm("roboflow_core/vlm_as_detector@v2", "null",
            ",\"model_type\":\"florence-2\",\"task_type\":\"object-detection\"",
            "{\"bboxes\": [[1, 2, 3, 4]], \"labels\": []}", 64, 64);
    ASSERT(json_is_true(json_object_get(o, "error_status")));
    json_decref(o);
}

#define QWEN ",\"model_type\":\"qwen\",\"task_type\":\"object-detection\""
#define MUSE ",\"model_type\":\"muse\",\"task_type\":\"object-detection\""
#define SPACEXAI ",\"model_type\":\"spacexai\",\"task_type\":\"object-detection\""
#define V2 "roboflow_core/vlm_as_detector@v2"

static size_t npred(const json_t *o)
{
    return json_array_size(json_object_get(json_object_get(o, "predictions"), "predictions"));
}

TEST(vlm_as_detector_qwen)
{
    /* qwen_detection_parsing.py: box_2d, else bbox_2d, [x_min, y_min,
     * x_max, y_max] on 0..1000 clamped, on 25 x 15: 2 2 8 15 and
     * 0 0 22 4 (ref.py, half to even); entries without four plain numbers
     * or not objects skipped; the label from label / description /
     * class_name / class with str(); confidence 1.0 */
    json_t *o = vlm(V2, "[\"cat\",\"dog\"]", QWEN,
                    "Here:\n```json\n[{\"bbox_2d\": [100, 100, 300, 1200], \"label\": \"dog\", \"confidence\": 0.2},"
                    " {\"box_2d\": [1, 2, 3], \"label\": \"x\"}, \"junk\", {\"box_2d\": [1, 2, 3, true]},"
                    " {\"box_2d\": [-5, 0, 900, 300], \"description\": 7}]\n```", 25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_EQ(npred(o), 2);
    ASSERT_BOX(pred(o, 0), 2, 2, 8, 15);
    ASSERT_STR_EQ(str(pred(o, 0), "class"), "dog");
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), 1);
    ASSERT_NEAR(num(pred(o, 0), "confidence"), 1.0, 1e-9);
    ASSERT_BOX(pred(o, 1), 0, 0, 22, 4);
    ASSERT_STR_EQ(str(pred(o, 1), "class"), "7");
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 1), "class_id")), -1);
    json_decref(o);
    /* {"detections": [...]} is accepted; no label -> "unknown"; nothing valid -> empty */
    o = vlm(V2, "[\"cat\"]", QWEN, "{\"detections\": [{\"box_2d\": [0, 0, 1000, 1000]}]}", 25, 15);
    ASSERT_EQ(npred(o), 1);
    ASSERT_STR_EQ(str(pred(o, 0), "class"), "unknown");
    ASSERT_BOX(pred(o, 0), 0, 0, 25, 15);
    json_decref(o);
    o = vlm(V2, "[\"cat\"]", QWEN, "[{\"box_2d\": \"0 0 5 5\"}]", 25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_EQ(npred(o), 0);
    json_decref(o);
    /* another shape: ValueError -> error_status */
    static const char *const bad[] = {"{\"boxes\": []}", "{\"detections\": {}}", "not json", "3"};
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        o = vlm(V2, "[\"cat\"]", QWEN, bad[k], 25, 15);
        if (!json_is_true(json_object_get(o, "error_status")))
            T_FAIL("'%s' parsed", bad[k]);
        json_decref(o);
    }
}

TEST(vlm_as_detector_muse)
{
    /* muse_detection_parsing.py: named x_min..y_max on 0..1000, 25 x 15 ->
     * 2 4 12 10 (ref.py); `label or "unknown"`; entries with a bool, a
     * string or a missing field skipped */
    json_t *o = vlm(V2, "[\"cat\",\"dog\"]", MUSE,
                    "[{\"x_min\": 100, \"y_min\": 300, \"x_max\": 500, \"y_max\": 700, \"label\": \"cat\"},"
                    " {\"x_min\": true, \"y_min\": 0, \"x_max\": 5, \"y_max\": 5},"
                    " {\"x_min\": \"1\", \"y_min\": 0, \"x_max\": 5, \"y_max\": 5}, {\"x_min\": 1},"
                    " {\"x_min\": 0, \"y_min\": 0, \"x_max\": 1000, \"y_max\": 1000, \"label\": \"\"}]", 25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_EQ(npred(o), 2);
    ASSERT_BOX(pred(o, 0), 2, 4, 12, 10);
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), 0);
    ASSERT_STR_EQ(str(pred(o, 1), "class"), "unknown");
    json_decref(o);
    /* one bare entry */
    o = vlm(V2, "[\"cat\"]", MUSE, "{\"x_min\": 100, \"y_min\": 300, \"x_max\": 500, \"y_max\": 700, \"label\": \"cat\"}",
            25, 15);
    ASSERT_EQ(npred(o), 1);
    ASSERT_BOX(pred(o, 0), 2, 4, 12, 10);
    json_decref(o);
    /* not JSON: the loose objects carrying the four fields (extract_flat_object_entries);
     * the {"note"} fragment and the broken "{" are passed over */
    o = vlm(V2, "[\"cat\",\"dog\"]", MUSE,
            "Found: {\"x_min\": 100, \"y_min\": 300, \"x_max\": 500, \"y_max\": 700, \"label\": \"dog\"}, {\"note\": 1},"
            " { broken, {\"x_min\": 0, \"y_min\": 0, \"x_max\": 1000, \"y_max\": 1000, \"label\": \"cat\"} done", 25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_EQ(npred(o), 2);
    ASSERT_STR_EQ(str(pred(o, 0), "class"), "dog");
    ASSERT_BOX(pred(o, 1), 0, 0, 25, 15);
    json_decref(o);
    /* neither JSON nor loose entries; a dict of another shape: error_status */
    static const char *const bad[] = {"nothing {\"a\": 1} here", "{\"x_min\": 1}", "no braces"};
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        o = vlm(V2, "[\"cat\"]", MUSE, bad[k], 25, 15);
        if (!json_is_true(json_object_get(o, "error_status")))
            T_FAIL("'%s' parsed", bad[k]);
        json_decref(o);
    }
}

TEST(vlm_as_detector_spacexai)
{
    /* spacexai_detection_parsing.py: box_2d [x_min, y_min, x_max, y_max] in
     * percent, float() of each and clamped to 0..100: 2 2 8 8 and
     * 12 0 25 15 on 25 x 15 (ref.py); gemini label keys; confidence clamped */
    json_t *o = vlm(V2, "[\"cat\",\"dog\"]", SPACEXAI,
                    "{\"detections\": [{\"box_2d\": [10, 10, 30, 50], \"class_name\": \"dog\", \"confidence\": 0.4},"
                    " {\"box_2d\": [\"50\", -3, 150, 100.0], \"label\": \"owl\", \"confidence\": 7}]}", 25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_EQ(npred(o), 2);
    ASSERT_BOX(pred(o, 0), 2, 2, 8, 8);
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 0), "class_id")), 1);
    ASSERT_NEAR(num(pred(o, 0), "confidence"), 0.4, 1e-6);
    ASSERT_BOX(pred(o, 1), 12, 0, 25, 15);
    ASSERT_STR_EQ(str(pred(o, 1), "class"), "owl");
    ASSERT_EQ(json_integer_value(json_object_get(pred(o, 1), "class_id")), -1);
    ASSERT_NEAR(num(pred(o, 1), "confidence"), 1.0, 1e-9);
    json_decref(o);
    o = vlm(V2, "[\"cat\"]", SPACEXAI, "[]", 25, 15);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_EQ(npred(o), 0);
    json_decref(o);
    /* unlike qwen, one malformed entry fails the answer */
    static const char *const bad[] = {"[{\"box_2d\": [1, 2, 3]}]", "[{\"box_2d\": [1, 2, 3, \"x\"]}]",
                                      "[{\"label\": \"a\"}]", "[7]", "{\"boxes\": []}",
                                      "[{\"box_2d\": [1, 2, 3, 4], \"confidence\": null}]"};
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        o = vlm(V2, "[\"cat\"]", SPACEXAI, bad[k], 25, 15);
        if (!json_is_true(json_object_get(o, "error_status")))
            T_FAIL("'%s' parsed", bad[k]);
        json_decref(o);
    }
}

TEST(vlm_as_detector_compile_checks)
{
    char def[2048];
    snprintf(def, sizeof def, VLM_DEF, "roboflow_core/vlm_as_detector@v2", "null",
             ",\"model_type\":\"qwen\",\"task_type\":\"object-detection\"");
    expect_compile_error(def, "Must pass list of classes");
    snprintf(def, sizeof def, VLM_DEF, "roboflow_core/vlm_as_detector@v2", "[\"a\"]",
             ",\"model_type\":\"muse\",\"task_type\":\"region-proposal\"");
    expect_compile_error(def, "Could not parse result of task region-proposal for model muse");
    snprintf(def, sizeof def, VLM_DEF, "roboflow_core/vlm_as_detector@v1", "[\"a\"]",
             ",\"model_type\":\"google-gemini\",\"task_type\":\"region-proposal\"");
    expect_compile_error(def, "Could not parse result of task region-proposal for model google-gemini");
    snprintf(def, sizeof def, VLM_DEF, "roboflow_core/vlm_as_detector@v1", "null",
             ",\"model_type\":\"google-gemini\",\"task_type\":\"object-detection\"");
    expect_compile_error(def, "Must pass list of classes");
    snprintf(def, sizeof def, VLM_DEF, "roboflow_core/vlm_as_detector@v1", "[\"a\"]",
             ",\"model_type\":\"openai\",\"task_type\":\"object-detection\"");
    expect_compile_error(def, "model_type");
}

/* ---- cache --------------------------------------------------------------------------- */

static const char *CACHE_DEF =
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
    "{\"type\":\"WorkflowParameter\",\"name\":\"v\"},{\"type\":\"WorkflowParameter\",\"name\":\"k\"}],"
    "\"steps\":[{\"type\":\"roboflow_core/cache_get@v1\",\"name\":\"before\",\"image\":\"$inputs.image\",\"key\":\"$inputs.k\"},"
    "{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"dep\",\"data\":\"$steps.before.output\","
    "\"operations\":[]},"
    "{\"type\":\"roboflow_core/cache_set@v1\",\"name\":\"set\",\"image\":\"$inputs.image\",\"key\":\"$inputs.k\","
    "\"value\":\"$inputs.v\"},"
    "{\"type\":\"roboflow_core/cache_get@v1\",\"name\":\"after\",\"image\":\"$inputs.image\",\"key\":\"$inputs.k\"}],"
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"before\",\"selector\":\"$steps.before.output\"},"
    "{\"type\":\"JsonField\",\"name\":\"set\",\"selector\":\"$steps.set.output\"},"
    "{\"type\":\"JsonField\",\"name\":\"after\",\"selector\":\"$steps.after.output\"}]}";

TEST(cache_set_and_get_share_a_namespace_per_video)
{
    char err[512] = "";
    struct wf_state *st = wf_state_new();
    json_t *p = json_pack("{s:[i,s],s:s}", "v", 1, "x", "k", "key1");
    json_t *r = run_def(CACHE_DEF, 8, 8, p, NULL, st, err, sizeof err);
    if (!r)
        T_FAIL("%s", err);
    /* the first frame: nothing cached yet -> False (cache.get(key, False)) */
    ASSERT(json_is_false(json_object_get(r, "before")));
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(r, "set"), 0)), 1);
    ASSERT(json_equal(json_object_get(r, "after"), json_object_get(r, "set")));
    json_decref(r);
    json_decref(p);
    /* the next frame of the same video sees the value of the previous one */
    p = json_pack("{s:s,s:s}", "v", "second", "k", "key1");
    r = run_def(CACHE_DEF, 8, 8, p, NULL, st, err, sizeof err);
    ASSERT(r);
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(r, "before"), 0)), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "after")), "second");
    json_decref(r);
    json_decref(p);
    wf_state_free(st);
    /* without a state (an image job) every run starts with an empty cache */
    p = json_pack("{s:s,s:s}", "v", "x", "k", "key1");
    r = run_def(CACHE_DEF, 8, 8, p, NULL, NULL, err, sizeof err);
    ASSERT(r);
    ASSERT(json_is_false(json_object_get(r, "before")));
    json_decref(r);
    json_decref(p);
    /* a key that is not a string is a step error */
    p = json_pack("{s:s,s:i}", "v", "x", "k", 5);
    r = run_def(CACHE_DEF, 8, 8, p, NULL, NULL, err, sizeof err);
    ASSERT(!r);
    ASSERT(strstr(err, "key"));
    json_decref(p);
}

TEST(cache_holds_at_most_512_mib_per_video)
{
    /* a video that caches every frame under a new key: 4096 x 4096 BGR
     * frames are 48 MiB each, so 10 fit and the 11th is a step error */
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
        "{\"type\":\"WorkflowParameter\",\"name\":\"k\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/cache_set@v1\",\"name\":\"set\",\"image\":\"$inputs.image\","
        "\"key\":\"$inputs.k\",\"value\":\"$inputs.image\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"n\",\"selector\":\"$steps.set.output\"}]}";
    char err[512] = "";
    struct wf_state *st = wf_state_new();
    int ok = 0;
    for (int f = 0; f < 12; f++) {
        char key[16];
        snprintf(key, sizeof key, "frame%d", f);
        json_t *p = json_pack("{s:s}", "k", key);
        json_t *r = run_def(def, 4096, 4096, p, NULL, st, err, sizeof err);
        json_decref(p);
        if (!r)
            break;
        json_decref(r);
        ok++;
    }
    ASSERT_EQ(ok, 10);
    ASSERT(strstr(err, "more than 512 MiB"));
    /* setting a key again replaces its value's share: still room */
    json_t *p = json_pack("{s:s}", "k", "frame3");
    json_t *r = run_def(def, 4096, 4096, p, NULL, st, err, sizeof err);
    if (!r)
        T_FAIL("%s", err);
    json_decref(r);
    json_decref(p);
    wf_state_free(st);
}

/* ---- image_stack ----------------------------------------------------------------------- */

TEST(image_stack_keeps_the_newest_frames)
{
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
        "{\"type\":\"WorkflowParameter\",\"name\":\"clear\",\"default_value\":false}],"
        "\"steps\":[{\"type\":\"roboflow_core/image_stack@v1\",\"name\":\"s\",\"image\":\"$inputs.image\","
        "\"stack_size\":2,\"resolution_width\":100,\"resolution_height\":64,\"clear\":\"$inputs.clear\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"n\",\"selector\":\"$steps.s.frames_count\"},"
        "{\"type\":\"JsonField\",\"name\":\"f\",\"selector\":\"$steps.s.frames\"}]}";
    char err[512] = "";
    struct wf_state *st = wf_state_new();
    int64_t expect[] = {1, 2, 2};
    for (int k = 0; k < 3; k++) {
        json_t *r = run_def(def, 300, 100, NULL, NULL, st, err, sizeof err);
        if (!r)
            T_FAIL("%s", err);
        ASSERT_EQ(json_integer_value(json_object_get(r, "n")), expect[k]);
        ASSERT_EQ(json_array_size(json_object_get(r, "f")), (size_t)expect[k]);
        /* 300 x 100 into 100 x 64: scale min(1/3, 0.64) -> int(300/3) x int(100/3) = 100 x 33 */
        const json_t *img = json_array_get(json_object_get(r, "f"), 0);
        size_t len = 0;
        const char *b64 = json_string_value(json_object_get(img, "value"));
        ASSERT(b64);
        uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
        struct vis_image *dec = NULL;
        ASSERT(vis_decode(jpg, len, &dec) == 0);
        ASSERT_EQ(dec->w, 100);
        ASSERT_EQ(dec->h, 33);
        vis_image_free(dec);
        free(jpg);
        json_decref(r);
    }
    json_t *p = json_pack("{s:b}", "clear", 1);
    json_t *r = run_def(def, 300, 100, p, NULL, st, err, sizeof err);
    ASSERT(r);
    ASSERT_EQ(json_integer_value(json_object_get(r, "n")), 1); /* cleared, then the frame */
    json_decref(r);
    json_decref(p);
    wf_state_free(st);
    /* a literal out of Roboflow's bounds is refused at compile time */
    expect_compile_error(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/image_stack@v1\",\"name\":\"s\",\"image\":\"$inputs.image\","
        "\"stack_size\":65}],\"outputs\":[]}",
        "between 1 and 64");
}

/* ---- overlap_analysis --------------------------------------------------------------------- */

static json_t *overlap(const char *ref_preds, const char *cand_preds, double min_overlap, char *err, size_t errlen)
{
    char def[2048];
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v1\",\"name\":\"r\","
             "\"images\":\"$inputs.image\",\"model_id\":\"ref/1\"},"
             "{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v1\",\"name\":\"c\","
             "\"images\":\"$inputs.image\",\"model_id\":\"cand/1\"},"
             "{\"type\":\"OverlapAnalysis\",\"name\":\"o\",\"reference_predictions\":\"$steps.r.predictions\","
             "\"candidate_predictions\":\"$steps.c.predictions\",\"min_overlap\":%g}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.o.overlaps\"}]}",
             min_overlap);
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"ref/1\":{\"image\":{\"width\":40,\"height\":40},\"predictions\":%s},"
             "\"cand/1\":{\"image\":{\"width\":40,\"height\":40},\"predictions\":%s}}",
             ref_preds, cand_preds);
    json_t *models = json_loads(buf, 0, NULL);
    if (!models)
        T_FAIL("bad test json %s", buf);
    json_t *r = run_def(def, 40, 40, NULL, models, NULL, err, errlen);
    json_decref(models);
    json_t *o = r ? json_incref(json_object_get(r, "o")) : NULL;
    json_decref(r);
    return o;
}

/* a prediction with a box and optional polygon points "[[x,y],...]" */
static char *det(double x1, double y1, double x2, double y2, const char *cls, const char *pts)
{
    char p[1024] = "";
    if (pts) {
        json_t *a = json_loads(pts, 0, NULL), *o = json_array();
        size_t k;
        json_t *e;
        json_array_foreach(a, k, e)
            json_array_append_new(o, json_pack("{s:O,s:O}", "x", json_array_get(e, 0), "y", json_array_get(e, 1)));
        char *s = json_dumps(o, JSON_COMPACT);
        snprintf(p, sizeof p, ",\"points\":%s", s);
        free(s);
        json_decref(a);
        json_decref(o);
    }
    return xasprintf("{\"x\":%g,\"y\":%g,\"width\":%g,\"height\":%g,\"confidence\":0.9,\"class\":\"%s\","
                     "\"class_id\":0%s}",
                     (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, cls, p);
}

static double ratio_of(const char *ref, const char *cand)
{
    char err[512] = "";
    char *r = xasprintf("[%s]", ref), *c = xasprintf("[%s]", cand);
    json_t *o = overlap(r, c, 0.0, err, sizeof err);
    free(r);
    free(c);
    if (!o)
        T_FAIL("%s", err);
    if (json_array_size(o) != 1)
        T_FAIL("%zu records", json_array_size(o));
    double v = num(json_array_get(o, 0), "overlap_ratio");
    json_decref(o);
    return v;
}

TEST(overlap_analysis_ratios_as_shapely)
{
    /* boxes: 25 / 100 (ref.py "box/box") */
    char *a = det(0, 0, 10, 10, "a", NULL), *b = det(5, 5, 15, 15, "b", NULL);
    ASSERT_NEAR(ratio_of(a, b), 0.25, 1e-9);
    free(a);
    free(b);
    /* a triangle mask against a box: 0.5 (ref.py "tri/box") */
    a = det(0, 0, 10, 10, "a", "[[0,0],[10,0],[0,10]]");
    b = det(0, 0, 5, 5, "b", NULL);
    ASSERT_NEAR(ratio_of(a, b), 0.5, 1e-9);
    free(a);
    free(b);
    /* a non-convex L against a box: 0.3125; against a mirrored L: 0.15625;
     * the box against the L: 0.5556 (ref.py) */
    a = det(0, 0, 10, 10, "a", "[[0,0],[10,0],[10,4],[4,4],[4,10],[0,10]]");
    b = det(2, 2, 8, 8, "b", NULL);
    ASSERT_NEAR(ratio_of(a, b), 0.3125, 1e-9);
    ASSERT_NEAR(ratio_of(b, a), 0.5555555555555556, 1e-9);
    free(b);
    b = det(3, 3, 13, 13, "b", "[[3,3],[13,3],[13,13],[9,13],[9,7],[3,7]]");
    ASSERT_NEAR(ratio_of(a, b), 0.15625, 1e-9);
    free(a);
    free(b);
}

TEST(overlap_analysis_records_and_edges)
{
    char err[512] = "";
    char *a = det(0, 0, 10, 10, "person", NULL), *b = det(5, 5, 15, 15, "bag", NULL);
    char *far = det(30, 30, 35, 35, "bag", NULL), *touch = det(10, 0, 20, 10, "bag", NULL);
    char *r = xasprintf("[%s]", a), *c = xasprintf("[%s,%s,%s]", b, far, touch);
    json_t *o = overlap(r, c, 0.2, err, sizeof err);
    if (!o)
        T_FAIL("%s", err);
    /* only the overlapping one: the far box has IoU 0, the touching one too */
    ASSERT_EQ(json_array_size(o), 1);
    const json_t *rec = json_array_get(o, 0);
    ASSERT_STR_EQ(str(rec, "reference_class"), "person");
    ASSERT_STR_EQ(str(rec, "candidate_class"), "bag");
    ASSERT_NEAR(num(rec, "reference_confidence"), 0.9, 1e-9);
    ASSERT_EQ(strlen(str(rec, "reference_detection_id")), 36);
    ASSERT_EQ(strlen(str(rec, "candidate_detection_id")), 36);
    const char *keys[] = {"reference_class", "reference_confidence", "candidate_class", "candidate_confidence",
                          "overlap_ratio", "reference_detection_id", "candidate_detection_id"};
    void *it = json_object_iter((json_t *)rec);
    for (size_t k = 0; k < ARRAY_LEN(keys); k++, it = json_object_iter_next((json_t *)rec, it))
        ASSERT_STR_EQ(json_object_iter_key(it), keys[k]);
    json_decref(o);
    /* min_overlap above the ratio drops it; empty inputs give [] */
    o = overlap(r, c, 0.3, err, sizeof err);
    ASSERT_EQ(json_array_size(o), 0);
    json_decref(o);
    o = overlap("[]", c, 0.0, err, sizeof err);
    ASSERT(o && json_array_size(o) == 0);
    json_decref(o);
    free(a), free(b), free(far), free(touch), free(r), free(c);
}

/* ---- geotag_detection --------------------------------------------------------------------- */

static json_t *geotag(const char *preds, const char *params, int w, int h, char *err, size_t errlen)
{
    char def[2048], buf[2048];
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"m\","
             "\"images\":\"$inputs.image\",\"model_id\":\"ref/1\"},"
             "{\"type\":\"roboflow_core/geotag_detection@v1\",\"name\":\"g\",\"image\":\"$inputs.image\","
             "\"predictions\":\"$steps.m.predictions\",%s}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"g\",\"selector\":\"$steps.g.*\"}]}",
             params);
    snprintf(buf, sizeof buf, "{\"ref/1\":{\"image\":{\"width\":%d,\"height\":%d},\"predictions\":%s}}", w, h, preds);
    json_t *models = json_loads(buf, 0, NULL);
    json_t *r = run_def(def, w, h, NULL, models, NULL, err, errlen);
    json_decref(models);
    json_t *o = r ? json_incref(json_object_get(r, "g")) : NULL;
    json_decref(r);
    return o;
}

TEST(geotag_detection_projects_as_roboflow)
{
    char err[512] = "";
    char *a = det(0, 0, 100, 50, "car", NULL), *b = det(500, 400, 640, 480, "van", NULL);
    char *preds = xasprintf("[%s,%s]", a, b);
    json_t *o = geotag(preds, "\"latitude\":52.5,\"longitude\":13.4,\"altitude\":100,\"heading\":30", 640, 480,
                       err, sizeof err);
    if (!o)
        T_FAIL("%s", err);
    /* test_workflow_vlm_ref.py "geotag" lines */
    const json_t *g = json_object_get(o, "geo_detections");
    ASSERT_EQ(json_array_size(g), 2);
    ASSERT_NEAR(num(json_array_get(g, 0), "lat"), 52.5006758, 1e-12);
    ASSERT_NEAR(num(json_array_get(g, 0), "lon"), 13.3995634, 1e-12);
    ASSERT_NEAR(num(json_array_get(g, 1), "lat"), 52.4993726, 1e-12);
    ASSERT_NEAR(num(json_array_get(g, 1), "lon"), 13.4004026, 1e-12);
    ASSERT_NEAR(num(json_array_get(g, 0), "pixel_x"), 50.0, 1e-12);
    ASSERT_NEAR(num(json_array_get(g, 1), "width"), 140.0, 1e-12);
    ASSERT_NEAR(num(json_array_get(g, 0), "confidence"), 0.9, 1e-12);
    ASSERT_STR_EQ(str(json_array_get(g, 1), "class"), "van");
    const json_t *gj = json_object_get(o, "geojson");
    ASSERT_STR_EQ(str(gj, "type"), "FeatureCollection");
    const json_t *f = json_array_get(json_object_get(gj, "features"), 1);
    ASSERT_STR_EQ(str(json_object_get(f, "geometry"), "type"), "Point");
    ASSERT_NEAR(json_number_value(json_array_get(json_object_get(json_object_get(f, "geometry"), "coordinates"), 0)),
                13.4004026, 1e-12);
    ASSERT_STR_EQ(str(json_object_get(f, "properties"), "class"), "van");
    json_decref(o);
    /* altitude 0: the camera's own position */
    o = geotag(preds, "\"latitude\":1.5,\"longitude\":2.5,\"altitude\":0", 640, 480, err, sizeof err);
    ASSERT(o);
    ASSERT_NEAR(num(json_array_get(json_object_get(o, "geo_detections"), 0), "lat"), 1.5, 1e-12);
    json_decref(o);
    /* a field of view of 180 degrees: a step error, not inf in the JSON */
    o = geotag(preds, "\"latitude\":1.5,\"longitude\":2.5,\"altitude\":10,\"horizontal_fov\":180", 640, 480, err,
               sizeof err);
    if (o) {
        char *s = json_dumps(o, 0);
        ASSERT(s != NULL); /* serializable whatever tan(pi/2) gives */
        free(s);
        json_decref(o);
    }
    /* no detections: empty outputs */
    o = geotag("[]", "\"latitude\":1.5,\"longitude\":2.5,\"altitude\":10", 640, 480, err, sizeof err);
    ASSERT(o);
    ASSERT_EQ(json_array_size(json_object_get(o, "geo_detections")), 0);
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(o, "geojson"), "features")), 0);
    json_decref(o);
    free(a), free(b), free(preds);
}

/* ---- qr_code_generator ------------------------------------------------------------------- */

TEST(qr_code_generator_round_trips_through_zbar)
{
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
        "{\"type\":\"WorkflowParameter\",\"name\":\"t\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/qr_code_generator@v1\",\"name\":\"g\",\"text\":\"$inputs.t\","
        "\"border\":%d,\"fill_color\":\"#000080\",\"back_color\":\"WHITE\","
        "\"error_correct\":\"High (~30%% word recovery / lowest data capacity)\"},"
        "{\"type\":\"roboflow_core/qr_code_detector@v1\",\"name\":\"d\",\"image\":\"$steps.g.qr_code\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.g.qr_code\"},"
        "{\"type\":\"JsonField\",\"name\":\"d\",\"selector\":\"$steps.d.predictions\"}]}";
    char d2[2048], err[512] = "";
    snprintf(d2, sizeof d2, def, 2);
    json_t *p = json_pack("{s:s}", "t", "https://example.com/vbatch?x=1");
    json_t *r = run_def(d2, 8, 8, p, NULL, NULL, err, sizeof err);
    if (!r)
        T_FAIL("%s", err);
    const json_t *preds = json_object_get(json_object_get(r, "d"), "predictions");
    ASSERT_EQ(json_array_size(preds), 1);
    ASSERT_STR_EQ(str(json_array_get(preds, 0), "data"), "https://example.com/vbatch?x=1");
    /* 30 bytes at level H: version 4 (33 modules) in both qrcode and
     * libqrencode; (33 + 2 * 2) * 10 = 370 pixels a side */
    const json_t *img = json_object_get(r, "img");
    const char *b64 = str(img, "value");
    size_t len = 0;
    uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
    struct vis_image *dec = NULL;
    ASSERT(vis_decode(jpg, len, &dec) == 0);
    ASSERT_EQ(dec->w, 370);
    ASSERT_EQ(dec->h, 370);
    /* the corner is the back colour, the finder pattern's corner the fill (navy, BGR 128,0,0) */
    ASSERT(vis_px(dec, 1, 1)[0] > 240 && vis_px(dec, 1, 1)[2] > 240);
    ASSERT(vis_px(dec, 25, 25)[0] > 100 && vis_px(dec, 25, 25)[2] < 30);
    ASSERT(strncmp(str(img, "parent_id") ? str(img, "parent_id") : "qr_code.", "qr_code.", 8) == 0);
    vis_image_free(dec);
    free(jpg);
    json_decref(r);
    json_decref(p);
    /* too much text for a QR code, a bad colour, a negative border: step errors */
    char *big = xcalloc(3000, 1);
    memset(big, 'z', 2999);
    p = json_pack("{s:s}", "t", big);
    ASSERT(!run_def(d2, 8, 8, p, NULL, NULL, err, sizeof err));
    ASSERT(strstr(err, "QR code"));
    json_decref(p);
    free(big);
    char bad[2048];
    snprintf(bad, sizeof bad, "%s", d2);
    char *pos = strstr(bad, "#000080");
    memcpy(pos, "nocolor", 7);
    p = json_pack("{s:s}", "t", "x");
    ASSERT(!run_def(bad, 8, 8, p, NULL, NULL, err, sizeof err));
    ASSERT(strstr(err, "fill_color"));
    snprintf(bad, sizeof bad, def, -1);
    ASSERT(!run_def(bad, 8, 8, p, NULL, NULL, err, sizeof err));
    ASSERT(strstr(err, "border"));
    json_decref(p);
}

TEST_MAIN()
