/*
 * test_workflow.c — the workflow engine: compiler errors, executor
 * semantics, serialization, the shared example definitions and rows.
 */
#include "t.h"
#include "test_workflow_fake.h"

#include <pthread.h>

#define WF_HEAD "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}"

TEST(single_detection_definition)
{
    json_t *def = load_json_file("01_single_detection.json");
    struct wf_workflow *wf = NULL;
    char err[512];
    ASSERT(def);
    ASSERT_OK(wf_compile(def, &wf, err, sizeof err));
    struct vis_image *im = img_new(100, 80, 10);
    img_rect(im, 10, 20, 30, 60, 250);
    json_t *r = run1(wf, im, NULL);
    json_t *res = json_object_get(r, "result");
    ASSERT(json_is_object(res));
    /* wildcard: inference_id, predictions, model_id in block output order */
    const char *keys[3];
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(res, key, v) {
        if (k < 3)
            keys[k] = key;
        k++;
    }
    ASSERT_EQ(k, 3);
    ASSERT_STR_EQ(keys[0], "inference_id");
    ASSERT_STR_EQ(keys[1], "predictions");
    ASSERT_STR_EQ(keys[2], "model_id");
    ASSERT_STR_EQ(json_string_value(json_object_get(res, "model_id")), "yolov8n-640");
    json_t *preds = json_object_get(json_object_get(res, "predictions"), "predictions");
    ASSERT_EQ(json_array_size(preds), 2); /* confidence 0.3 keeps both */
    json_t *p0 = json_array_get(preds, 0);
    ASSERT_NEAR(json_number_value(json_object_get(p0, "x")), 20, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(p0, "y")), 40, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(p0, "width")), 20, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(p0, "height")), 40, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(p0, "confidence")), 0.9, 1e-9);
    ASSERT_STR_EQ(json_string_value(json_object_get(p0, "class")), "bright");
    ASSERT_STR_EQ(json_string_value(json_object_get(p0, "parent_id")), "image");
    ASSERT_EQ(strlen(json_string_value(json_object_get(p0, "detection_id"))), 36);
    ASSERT(!json_object_get(p0, "parent_origin"));
    json_t *imgd = json_object_get(json_object_get(res, "predictions"), "image");
    ASSERT_EQ(json_integer_value(json_object_get(imgd, "width")), 100);
    ASSERT_EQ(json_integer_value(json_object_get(imgd, "height")), 80);
    /* key order of one prediction */
    static const char *const order[] = {"width", "height", "x", "y", "confidence", "class_id",
                                        "class", "detection_id", "parent_id"};
    k = 0;
    json_object_foreach(p0, key, v) {
        ASSERT(k < ARRAY_LEN(order));
        ASSERT_STR_EQ(key, order[k]);
        k++;
    }
    /* a higher confidence parameter drops the 0.5 box */
    json_t *params = json_pack("{s:f}", "confidence", 0.6);
    json_decref(r);
    r = run1(wf, im, params);
    preds = json_object_get(json_object_get(json_object_get(r, "result"), "predictions"),
                            "predictions");
    ASSERT_EQ(json_array_size(preds), 1);
    json_decref(params);
    json_decref(r);
    /* out of range parameter: clean runtime error naming step and field */
    params = json_pack("{s:f}", "confidence", 1.5);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, params};
    json_t *out = NULL;
    ASSERT(wf_run(wf, &fake_env, &in, &out, err, sizeof err) < 0);
    ASSERT(strstr(err, "step 'detection'"));
    ASSERT(strstr(err, "custom_confidence"));
    json_decref(params);
    vis_image_free(im);
    wf_free(wf);
    json_decref(def);
}

TEST(compile_errors)
{
    expect_compile_error("{", "invalid JSON");
    expect_compile_error("[]", "must be a JSON object");
    expect_compile_error(WF_HEAD "],\"steps\":[{\"type\":\"nope@v1\",\"name\":\"a\"}],\"outputs\":[]}",
                         "step 'a': field 'type': unsupported block 'nope@v1'");
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":"
                "\"$inputs.imag\",\"model_id\":\"m/1\"}],\"outputs\":[]}",
        "step 'a': field 'images': selector '$inputs.imag' refers to unknown input 'imag'");
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\",\"confidence\":2}],\"outputs\":[]}",
        "step 'a': field 'confidence': must be in range [0.0, 1.0]");
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":"
                "\"$inputs.image\"}],\"outputs\":[]}",
        "step 'a': field 'model_id': required field is missing");
    /* kind mismatch: detections where an image is expected */
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\"},{\"type\":\"ObjectDetectionModel\","
                "\"name\":\"b\",\"image\":\"$steps.a.predictions\",\"model_id\":\"m/1\"}],"
                "\"outputs\":[]}",
        "step 'b': field 'images': kind mismatch");
    /* unknown output of a step */
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\"}],\"outputs\":[{\"type\":\"JsonField\","
                "\"name\":\"o\",\"selector\":\"$steps.a.nothing\"}]}",
        "has no output 'nothing'");
    /* duplicated names */
    expect_compile_error(
        WF_HEAD ",{\"type\":\"WorkflowImage\",\"name\":\"image\"}],\"steps\":[],\"outputs\":[]}",
        "input 'image': duplicated");
    /* cycle through two detection transformations */
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"DetectionsFilter\",\"name\":\"a\",\"predictions\":"
                "\"$steps.b.predictions\",\"operations\":[]},{\"type\":\"DetectionsFilter\","
                "\"name\":\"b\",\"predictions\":\"$steps.a.predictions\",\"operations\":[]}],"
                "\"outputs\":[]}",
        "cycle detected");
    /* incompatible lineage: crops of two different crop steps */
    expect_compile_error(
        WF_HEAD "],\"steps\":["
                "{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\","
                "\"model_id\":\"m/1\"},"
                "{\"type\":\"Crop\",\"name\":\"c1\",\"image\":\"$inputs.image\",\"predictions\":"
                "\"$steps.m.predictions\"},"
                "{\"type\":\"Crop\",\"name\":\"c2\",\"image\":\"$inputs.image\",\"predictions\":"
                "\"$steps.m.predictions\"},"
                "{\"type\":\"ObjectDetectionModel\",\"name\":\"m2\",\"image\":\"$steps.c1.crops\","
                "\"model_id\":\"m/1\"},"
                "{\"type\":\"roboflow_core/dynamic_crop@v1\",\"name\":\"c3\",\"images\":"
                "\"$steps.c2.crops\",\"predictions\":\"$steps.m2.predictions\"}],\"outputs\":[]}",
        "incompatible lineage");
    expect_compile_error(
        WF_HEAD "],\"steps\":[],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\","
                "\"selector\":\"$inputs.image\",\"coordinates_system\":\"weird\"}]}",
        "output 'o': field 'coordinates_system'");
    expect_compile_error("{\"version\":\"2.0\",\"inputs\":[],\"steps\":[],\"outputs\":[]}",
                         "not supported");
    /* query language is checked at compile time */
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\"},{\"type\":\"DetectionsFilter\",\"name\":"
                "\"f\",\"predictions\":\"$steps.m.predictions\",\"operations\":[{\"type\":"
                "\"Frobnicate\"}]}],\"outputs\":[]}",
        "step 'f': field 'operations': operation #0: unknown or unsupported operation 'Frobnicate'");
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\"},{\"type\":\"DetectionsFilter\",\"name\":"
                "\"f\",\"predictions\":\"$steps.m.predictions\",\"operations\":[{\"type\":"
                "\"DetectionsFilter\",\"filter_operation\":{\"type\":\"StatementGroup\","
                "\"statements\":[{\"type\":\"BinaryStatement\",\"left_operand\":{\"type\":"
                "\"DynamicOperand\"},\"comparator\":{\"type\":\"~=\"},\"right_operand\":{"
                "\"type\":\"StaticOperand\",\"value\":1}}]}}]}],\"outputs\":[]}",
        "unknown comparator '~='");
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\"},{\"type\":\"DetectionsFilter\",\"name\":"
                "\"f\",\"predictions\":\"$steps.m.predictions\",\"operations\":[{\"type\":"
                "\"DetectionsShift\",\"shift_x\":1}]}],\"outputs\":[]}",
        "operation 'DetectionsShift': missing 'shift_y'");
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\"},{\"type\":\"PropertyDefinition\",\"name\":"
                "\"p\",\"data\":\"$steps.m.predictions\",\"operations\":[{\"type\":"
                "\"DetectionsPropertyExtract\",\"property_name\":\"colour\"}]}],\"outputs\":[]}",
        "step 'p': field 'operations': operation 'DetectionsPropertyExtract': 'property_name' must be "
        "one of the allowed values, got 'colour'");
    expect_compile_error(
        WF_HEAD "],\"steps\":[{\"type\":\"Expression\",\"name\":\"e\",\"data\":{},\"switch\":"
                "{\"type\":\"CasesDefinition\",\"cases\":[],\"default\":{\"type\":\"Nope\"}}}],"
                "\"outputs\":[]}",
        "step 'e': field 'switch': default");
}

TEST(validate_returns_message)
{
    char err[256];
    json_t *def = json_loads("{\"version\":\"1.0\",\"inputs\":[],\"steps\":[{\"type\":\"x\"}],"
                             "\"outputs\":[]}",
                             0, NULL);
    ASSERT(wf_validate(def, err, sizeof err) < 0);
    ASSERT(strstr(err, "step #0"));
    json_decref(def);
}

TEST(unknown_keys_ignored_and_inputs_passthrough)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD ",{\"type\":\"WorkflowParameter\",\"name\":\"p\",\"default_value\":7}],"
                "\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\",\"unknown_key\":123}],"
                "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"p\",\"selector\":\"$inputs.p\"},"
                "{\"type\":\"JsonField\",\"name\":\"n\",\"selector\":\"$steps.a.inference_id\"}]}");
    struct vis_image *im = img_new(8, 8, 0);
    json_t *r = run1(wf, im, NULL);
    ASSERT_EQ(json_integer_value(json_object_get(r, "p")), 7);
    ASSERT(json_is_string(json_object_get(r, "n")));
    json_decref(r);
    json_t *params = json_pack("{s:s}", "p", "x");
    r = run1(wf, im, params);
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "p")), "x");
    json_decref(r);
    json_decref(params);
    vis_image_free(im);
    wf_free(wf);
}

TEST(model_provider_error_and_missing_provider)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"broken/1\"}],\"outputs\":[]}");
    struct vis_image *im = img_new(8, 8, 0);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *out = NULL;
    char err[512];
    ASSERT(wf_run(wf, &fake_env, &in, &out, err, sizeof err) < 0);
    ASSERT(strstr(err, "step 'a': model 'broken/1': model not found"));
    struct wf_env none = {0};
    ASSERT(wf_run(wf, &none, &in, &out, err, sizeof err) < 0);
    ASSERT(strstr(err, "no model provider"));
    /* missing image input */
    struct wf_run_inputs in2 = {NULL, 0, NULL};
    ASSERT(wf_run(wf, &fake_env, &in2, &out, err, sizeof err) < 0);
    ASSERT(strstr(err, "input 'image': missing"));
    vis_image_free(im);
    wf_free(wf);
}

TEST(batch_of_images_one_dict_each)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD "],\"steps\":[{\"type\":\"ClassificationModel\",\"name\":\"c\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"cls/1\"}],\"outputs\":[{\"type\":\"JsonField\","
                "\"name\":\"top\",\"selector\":\"$steps.c.predictions\"}]}");
    struct vis_image *a = img_new(4, 4, 255), *b = img_new(4, 4, 0);
    const struct vis_image *imgs[2] = {a, b};
    struct wf_image_input ii = {"image", imgs, 2, true, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *out = NULL;
    char err[512];
    fake_calls = 0;
    ASSERT_OK(wf_run(wf, &fake_env, &in, &out, err, sizeof err));
    ASSERT_EQ(fake_calls, 1); /* one batched provider call */
    ASSERT_EQ(json_array_size(out), 2);
    json_t *c0 = json_object_get(json_array_get(out, 0), "top");
    json_t *c1 = json_object_get(json_array_get(out, 1), "top");
    ASSERT_STR_EQ(json_string_value(json_object_get(c0, "top")), "bright");
    ASSERT_STR_EQ(json_string_value(json_object_get(c1, "top")), "dark");
    ASSERT_STR_EQ(json_string_value(json_object_get(c0, "prediction_type")), "classification");
    ASSERT_STR_EQ(json_string_value(json_object_get(c0, "parent_id")), "image.[0]");
    ASSERT_STR_EQ(json_string_value(json_object_get(c1, "root_parent_id")), "image.[1]");
    /* inference_id comes first */
    ASSERT_STR_EQ(json_object_iter_key(json_object_iter(c0)), "inference_id");
    json_decref(out);
    vis_image_free(a);
    vis_image_free(b);
    wf_free(wf);
}

struct thr_arg {
    const struct wf_workflow *wf;
    int ok;
};

static void *thr_main(void *p)
{
    struct thr_arg *a = p;
    struct vis_image *im = img_new(64, 48, 0);
    img_rect(im, 5, 5, 15, 25, 255);
    a->ok = 1;
    for (int k = 0; k < 20; k++) {
        const struct vis_image *imgs[1] = {im};
        struct wf_image_input ii = {"image", imgs, 1, false, NULL};
        struct wf_run_inputs in = {&ii, 1, NULL};
        json_t *out = NULL;
        char err[256];
        if (wf_run(a->wf, &fake_env, &in, &out, err, sizeof err) < 0) {
            a->ok = 0;
            break;
        }
        json_t *p0 = json_array_get(
            json_object_get(json_object_get(json_array_get(out, 0), "d"), "predictions"), 0);
        if (json_number_value(json_object_get(p0, "width")) != 10)
            a->ok = 0;
        json_decref(out);
    }
    vis_image_free(im);
    return NULL;
}

TEST(concurrent_runs_share_compiled_workflow)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD "],\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":"
                "\"$inputs.image\",\"model_id\":\"m/1\"}],\"outputs\":[{\"type\":\"JsonField\","
                "\"name\":\"d\",\"selector\":\"$steps.a.predictions\"}]}");
    pthread_t th[4];
    struct thr_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thr_arg){wf, 0};
        pthread_create(&th[i], NULL, thr_main, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ(args[i].ok, 1);
    }
    wf_free(wf);
}

TEST(nested_outputs_masks_and_batch_inputs)
{
    /* crops (level 2) classified; a SIMD continue_if on each crop lets only
     * "bright" crops through; outputs at level 2 are nested lists with None
     * for masked crops; a WorkflowBatchInput and a scalar parameter ride along */
    struct wf_workflow *wf = compile_or_die(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
        "{\"type\":\"WorkflowBatchInput\",\"name\":\"tag\",\"kind\":[\"string\"]},"
        "{\"type\":\"WorkflowParameter\",\"name\":\"p\",\"default_value\":3}],"
        "\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\","
        "\"model_id\":\"m/1\"},"
        "{\"type\":\"Crop\",\"name\":\"c\",\"image\":\"$inputs.image\",\"predictions\":"
        "\"$steps.m.predictions\"},"
        "{\"type\":\"ClassificationModel\",\"name\":\"k\",\"image\":\"$steps.c.crops\","
        "\"model_id\":\"k/1\"},"
        "{\"type\":\"ContinueIf\",\"name\":\"ci\",\"condition_statement\":{\"type\":\"StatementGroup\","
        "\"statements\":[{\"type\":\"BinaryStatement\",\"left_operand\":{\"type\":\"DynamicOperand\","
        "\"operand_name\":\"k\",\"operations\":[{\"type\":\"ClassificationPropertyExtract\","
        "\"property_name\":\"top_class\"}]},\"comparator\":{\"type\":\"==\"},\"right_operand\":{"
        "\"type\":\"StaticOperand\",\"value\":\"bright\"}}]},\"evaluation_parameters\":{\"k\":"
        "\"$steps.k.predictions\"},\"next_steps\":[\"$steps.n\"]},"
        "{\"type\":\"PropertyDefinition\",\"name\":\"n\",\"data\":\"$steps.c.crops\",\"operations\":"
        "[{\"type\":\"ExtractImageProperty\",\"property_name\":\"width\"}]},"
        "{\"type\":\"DimensionCollapse\",\"name\":\"dc\",\"data\":\"$steps.n.output\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"w\",\"selector\":\"$steps.n.output\"},"
        "{\"type\":\"JsonField\",\"name\":\"all\",\"selector\":\"$steps.k.*\"},"
        "{\"type\":\"JsonField\",\"name\":\"dc\",\"selector\":\"$steps.dc.output\"},"
        "{\"type\":\"JsonField\",\"name\":\"tag\",\"selector\":\"$inputs.tag\"},"
        "{\"type\":\"JsonField\",\"name\":\"p\",\"selector\":\"$inputs.p\"}]}");
    struct vis_image *a = img_new(80, 40, 0), *b = img_new(80, 40, 0);
    img_rect(a, 0, 0, 10, 10, 255); /* a: bright crop 10x10 + dark centre crop 40x20 */
    const struct vis_image *imgs[2] = {a, b};
    struct wf_image_input ii = {"image", imgs, 2, true, NULL};
    json_t *params = json_pack("{s:[s,s]}", "tag", "first", "second");
    struct wf_run_inputs in = {&ii, 1, params};
    json_t *out = NULL;
    char err[512];
    ASSERT_OK(wf_run(wf, &fake_env, &in, &out, err, sizeof err));
    json_t *r0 = json_array_get(out, 0), *r1 = json_array_get(out, 1);
    json_t *w0 = json_object_get(r0, "w");
    ASSERT_EQ(json_array_size(w0), 2);
    ASSERT_EQ(json_integer_value(json_array_get(w0, 0)), 10);
    ASSERT(json_is_null(json_array_get(w0, 1))); /* masked: the dark crop */
    ASSERT_EQ(json_array_size(json_object_get(r1, "w")), 1);
    ASSERT(json_is_null(json_array_get(json_object_get(r1, "w"), 0)));
    /* wildcard at level 2: a list of dicts */
    json_t *all0 = json_object_get(r0, "all");
    ASSERT_EQ(json_array_size(all0), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(json_array_get(all0, 1),
                                                                    "predictions"), "top")), "dark");
    /* collapse: the list of widths (None kept) */
    json_t *dc0 = json_object_get(r0, "dc");
    ASSERT_EQ(json_array_size(dc0), 2);
    ASSERT_EQ(json_integer_value(json_array_get(dc0, 0)), 10);
    ASSERT_STR_EQ(json_string_value(json_object_get(r0, "tag")), "first");
    ASSERT_STR_EQ(json_string_value(json_object_get(r1, "tag")), "second");
    ASSERT_EQ(json_integer_value(json_object_get(r1, "p")), 3);
    json_decref(out);
    /* a batch input of the wrong length is refused */
    json_decref(params);
    params = json_pack("{s:[s,s,s]}", "tag", "a", "b", "c");
    in.params = params;
    ASSERT(wf_run(wf, &fake_env, &in, &out, err, sizeof err) < 0);
    ASSERT(strstr(err, "input 'tag'"));
    json_decref(params);
    vis_image_free(a);
    vis_image_free(b);
    wf_free(wf);
}

TEST(scalar_flow_control_gates_whole_batch)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD ",{\"type\":\"WorkflowParameter\",\"name\":\"go\",\"default_value\":false}],"
                "\"steps\":[{\"type\":\"ContinueIf\",\"name\":\"ci\",\"condition_statement\":{"
                "\"type\":\"StatementGroup\",\"statements\":[{\"type\":\"UnaryStatement\","
                "\"operand\":{\"type\":\"DynamicOperand\",\"operand_name\":\"g\"},\"operator\":{"
                "\"type\":\"(Boolean) is True\"}}]},\"evaluation_parameters\":{\"g\":\"$inputs.go\"},"
                "\"next_steps\":[\"$steps.m\"]},"
                "{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\","
                "\"model_id\":\"m/1\"}],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"d\","
                "\"selector\":\"$steps.m.predictions\"}]}");
    struct vis_image *im = img_new(8, 8, 0);
    fake_calls = 0;
    json_t *r = run1(wf, im, NULL);
    ASSERT(json_is_null(json_object_get(r, "d")));
    ASSERT_EQ(fake_calls, 0);
    json_decref(r);
    json_t *params = json_pack("{s:b}", "go", 1);
    r = run1(wf, im, params);
    ASSERT(json_is_object(json_object_get(r, "d")));
    ASSERT_EQ(fake_calls, 1);
    json_decref(r);
    json_decref(params);
    vis_image_free(im);
    wf_free(wf);
}

TEST(segmentation_keypoints_serialization_and_parent_conversion)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD "],\"steps\":[{\"type\":\"AbsoluteStaticCrop\",\"name\":\"c\",\"images\":"
                "\"$inputs.image\",\"x_center\":30,\"y_center\":20,\"width\":20,\"height\":20},"
                "{\"type\":\"InstanceSegmentationModel\",\"name\":\"s\",\"images\":\"$steps.c.crops\","
                "\"model_id\":\"s/1\"},"
                "{\"type\":\"KeypointsDetectionModel\",\"name\":\"k\",\"images\":\"$inputs.image\","
                "\"model_id\":\"k/1\"}],"
                "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"s\",\"selector\":\"$steps.s.predictions\"},"
                "{\"type\":\"JsonField\",\"name\":\"k\",\"selector\":\"$steps.k.predictions\"}]}");
    struct vis_image *im = img_new(60, 40, 0);
    json_t *r = run1(wf, im, NULL);
    /* crop 20..40 x 10..30; centre box of the crop 5..15 -> root 25..35 x 15..25 */
    json_t *p = json_array_get(json_object_get(json_object_get(r, "s"), "predictions"), 0);
    ASSERT_NEAR(json_number_value(json_object_get(p, "x")), 30, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(p, "y")), 20, 1e-6);
    json_t *pts = json_object_get(p, "points");
    ASSERT_EQ(json_array_size(pts), 4);
    ASSERT_NEAR(json_number_value(json_object_get(json_array_get(pts, 0), "x")), 25, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(json_array_get(pts, 2), "y")), 25, 1e-6);
    /* "points" comes right after class_id */
    const char *prev = NULL, *key;
    json_t *v;
    json_object_foreach(p, key, v) {
        if (!strcmp(key, "points"))
            ASSERT_STR_EQ(prev, "class_id");
        prev = key;
    }
    json_t *k = json_array_get(json_object_get(json_object_get(r, "k"), "predictions"), 0);
    json_t *kp = json_array_get(json_object_get(k, "keypoints"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(kp, "class")), "nose");
    ASSERT_NEAR(json_number_value(json_object_get(kp, "x")), 30, 1e-6);
    ASSERT_NEAR(json_number_value(json_object_get(kp, "confidence")), 0.95, 1e-9);
    ASSERT_STR_EQ(json_object_iter_key(json_object_iter(kp)), "class_id");
    json_decref(r);
    vis_image_free(im);
    wf_free(wf);
}

/* The keys of an object, comma-separated, in order. */
static void keys_of(const json_t *o, char *out, size_t n)
{
    const char *k;
    json_t *v;
    size_t len = 0;
    out[0] = 0;
    json_object_foreach((json_t *)o, k, v) len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s",
                                                                  len ? "," : "", k);
}

/* A provider that times itself: its "time" is kept. */
static int timed_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                       size_t n, json_t **out, char *err, size_t errlen)
{
    int rc = fake_infer(ud, req, images, n, out, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++)
        json_object_set_new(out[i], "time", json_real(0.25));
    return rc;
}

/* Model outputs keyed as Roboflow serialises them (WORKFLOWS.md 3.2):
 * classification and multi-label pass the model dict through with
 * inference_id then time first; detections have no time. */
TEST(model_output_shapes_as_roboflow)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD "],\"steps\":[{\"type\":\"roboflow_core/roboflow_classification_model@v2\",\"name\":\"c\","
                "\"images\":\"$inputs.image\",\"model_id\":\"cls/1\"},"
                "{\"type\":\"roboflow_core/roboflow_multi_label_classification_model@v2\",\"name\":\"m\","
                "\"images\":\"$inputs.image\",\"model_id\":\"mlc/1\"},"
                "{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"d\","
                "\"images\":\"$inputs.image\",\"model_id\":\"det/1\"},"
                "{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v2\",\"name\":\"s\","
                "\"images\":\"$inputs.image\",\"model_id\":\"seg/1\"},"
                "{\"type\":\"roboflow_core/roboflow_keypoint_detection_model@v2\",\"name\":\"k\","
                "\"images\":\"$inputs.image\",\"model_id\":\"kp/1\"}],"
                "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"c\",\"selector\":\"$steps.c.predictions\"},"
                "{\"type\":\"JsonField\",\"name\":\"m\",\"selector\":\"$steps.m.predictions\"},"
                "{\"type\":\"JsonField\",\"name\":\"d\",\"selector\":\"$steps.d.predictions\"},"
                "{\"type\":\"JsonField\",\"name\":\"s\",\"selector\":\"$steps.s.predictions\"},"
                "{\"type\":\"JsonField\",\"name\":\"k\",\"selector\":\"$steps.k.predictions\"}]}");
    struct vis_image *im = img_new(40, 40, 0);
    img_rect(im, 5, 5, 15, 15, 255);
    json_t *r = run1(wf, im, NULL);
    char keys[512];
    json_t *c = json_object_get(r, "c"), *m = json_object_get(r, "m");
    keys_of(c, keys, sizeof keys);
    ASSERT_STR_EQ(keys, "inference_id,time,image,predictions,top,confidence,prediction_type,parent_id,"
                        "root_parent_id");
    ASSERT(json_is_real(json_object_get(c, "time")) && json_real_value(json_object_get(c, "time")) >= 0);
    keys_of(m, keys, sizeof keys);
    ASSERT_STR_EQ(keys, "inference_id,time,image,predictions,predicted_classes,prediction_type,parent_id,"
                        "root_parent_id");
    ASSERT(json_is_real(json_object_get(m, "time")) && json_real_value(json_object_get(m, "time")) >= 0);
    keys_of(json_object_get(r, "d"), keys, sizeof keys);
    ASSERT_STR_EQ(keys, "image,predictions");
    keys_of(json_array_get(json_object_get(json_object_get(r, "d"), "predictions"), 0), keys, sizeof keys);
    ASSERT_STR_EQ(keys, "width,height,x,y,confidence,class_id,class,detection_id,parent_id");
    keys_of(json_array_get(json_object_get(json_object_get(r, "s"), "predictions"), 0), keys, sizeof keys);
    ASSERT_STR_EQ(keys, "width,height,x,y,confidence,class_id,points,class,detection_id,parent_id");
    json_t *kp = json_array_get(json_object_get(json_object_get(r, "k"), "predictions"), 0);
    keys_of(kp, keys, sizeof keys);
    ASSERT_STR_EQ(keys, "width,height,x,y,confidence,class_id,class,detection_id,parent_id,keypoints");
    keys_of(json_array_get(json_object_get(kp, "keypoints"), 0), keys, sizeof keys);
    ASSERT_STR_EQ(keys, "class_id,class,confidence,x,y");
    json_decref(r);

    /* a provider's own time is kept, in its place */
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {timed_infer, NULL, 0, NULL, NULL};
    json_t *out = NULL;
    char err[512];
    ASSERT_OK(wf_run(wf, &env, &in, &out, err, sizeof err));
    c = json_object_get(json_array_get(out, 0), "c");
    ASSERT_NEAR(json_number_value(json_object_get(c, "time")), 0.25, 1e-12);
    keys_of(c, keys, sizeof keys);
    ASSERT(!strncmp(keys, "inference_id,time,image,", 24));
    json_decref(out);
    vis_image_free(im);
    wf_free(wf);
}

/* wf_prepare_input: the model steps fed by the input itself, once per model id */
struct prep_log {
    int n;
    char ids[8][64];
    char tasks[8][64];
};

static int prep_record(void *ud, const struct wf_model_request *req, struct vis_image *img, char *err,
                       size_t errlen)
{
    struct prep_log *l = ud;
    (void)img;
    (void)err;
    (void)errlen;
    if (req->params || l->n >= 8)
        return ERR_INVALID;
    snprintf(l->ids[l->n], sizeof l->ids[0], "%s", req->model_id);
    snprintf(l->tasks[l->n], sizeof l->tasks[0], "%s", req->task);
    l->n++;
    return strcmp(req->model_id, "fails/1") ? 0 : ERR_NOTFOUND;
}

TEST(prepare_input_model_steps)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD ",{\"type\":\"WorkflowImage\",\"name\":\"other\"},"
        "{\"type\":\"WorkflowParameter\",\"name\":\"mid\"}],\"steps\":["
        "{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"a\","
        "\"images\":\"$inputs.image\",\"model_id\":\"det/1\"},"
        "{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"a2\","
        "\"image\":\"$inputs.image\",\"model_id\":\"det/1\"},"
        "{\"type\":\"roboflow_core/roboflow_classification_model@v2\",\"name\":\"b\","
        "\"images\":\"$inputs.image\",\"model_id\":\"fails/1\"},"
        "{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v2\",\"name\":\"c\","
        "\"images\":\"$inputs.image\",\"model_id\":\"$inputs.mid\"},"
        "{\"type\":\"roboflow_core/roboflow_keypoint_detection_model@v2\",\"name\":\"d\","
        "\"images\":\"$inputs.other\",\"model_id\":\"kp/1\"},"
        "{\"type\":\"roboflow_core/dynamic_crop@v1\",\"name\":\"crop\","
        "\"images\":\"$inputs.image\",\"predictions\":\"$steps.a.predictions\"},"
        "{\"type\":\"roboflow_core/roboflow_classification_model@v2\",\"name\":\"e\","
        "\"images\":\"$steps.crop.crops\",\"model_id\":\"crops/1\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"p\",\"selector\":\"$steps.a.predictions\"}]}");
    struct vis_image *im = img_new(40, 30, 10);
    struct prep_log l = {0};
    /* det/1 once (two steps), fails/1 called but not counted; not the
     * selector-given model id, not the other input's step, not the crop's */
    ASSERT_EQ(wf_prepare_input(wf, "image", im, prep_record, &l), 1);
    ASSERT_EQ(l.n, 2);
    ASSERT_STR_EQ(l.ids[0], "det/1");
    ASSERT_STR_EQ(l.tasks[0], "object-detection");
    ASSERT_STR_EQ(l.ids[1], "fails/1");
    ASSERT_STR_EQ(l.tasks[1], "classification");
    memset(&l, 0, sizeof l);
    ASSERT_EQ(wf_prepare_input(wf, "other", im, prep_record, &l), 1);
    ASSERT_STR_EQ(l.ids[0], "kp/1");
    ASSERT_STR_EQ(l.tasks[0], "keypoint-detection");
    memset(&l, 0, sizeof l);
    ASSERT_EQ(wf_prepare_input(wf, "mid", im, prep_record, &l), 0); /* not an image input */
    ASSERT_EQ(wf_prepare_input(wf, "nope", im, prep_record, &l), 0);
    ASSERT_EQ(l.n, 0);
    vis_image_free(im);
    wf_free(wf);
}

/* A video frame's metadata given with the image input reaches the
 * serialized image (and so every block that reads video_metadata). */
TEST(video_metadata_of_the_input)
{
    struct wf_workflow *wf = compile_or_die(
        WF_HEAD "],\"steps\":[],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"img\","
        "\"selector\":\"$inputs.image\"}]}");
    struct vis_image *im = img_new(16, 12, 10);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:s,s:f,s:f,s:b}", "video_identifier", "clip.mp4", "frame_number", 7,
                           "frame_timestamp", "2026-11-29T00:00:00.000Z", "fps", 30.0, "measured_fps", 30.0,
                           "comes_from_video_file", 1);
    struct wf_image_input ii = {"image", imgs, 1, false, vm};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *res = NULL;
    char err[512];
    ASSERT_OK(wf_run(wf, &fake_env, &in, &res, err, sizeof err));
    json_t *got = json_object_get(json_object_get(json_array_get(res, 0), "img"), "video_metadata");
    ASSERT(json_equal(got, vm));
    json_decref(res);
    /* without it, the synthesised one (frame 0, the input's name) */
    ii.video_metadata = NULL;
    ASSERT_OK(wf_run(wf, &fake_env, &in, &res, err, sizeof err));
    got = json_object_get(json_object_get(json_array_get(res, 0), "img"), "video_metadata");
    ASSERT_EQ(json_integer_value(json_object_get(got, "frame_number")), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(got, "video_identifier")), "image");
    json_decref(res);
    json_decref(vm);
    vis_image_free(im);
    wf_free(wf);
}

TEST_MAIN()
