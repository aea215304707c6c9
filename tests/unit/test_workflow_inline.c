/*
 * test_workflow_inline.c — inner_workflow@v1: nested definitions inlined
 * before compiling as Roboflow's inline.py does (step names
 * "<inner>__<child>", bindings and defaults substituted, the parent's
 * "$steps.<inner>.<output>" pointed at the child's output), the rewritten
 * definition checked field by field, runs over the fake model of
 * test_workflow_fake.h (a "bright" box and a "thing" box at 0.5), and the
 * binding / nesting errors with
 * Roboflow's rules (compiler_bridge.py, env defaults: depth 4, 32 inner
 * workflows).
 */
#include "t.h"

#include "base/base.h"
#include "workflow/wf_int.h"

#include "test_workflow_fake.h"

/* child: detect on its image input, keep classes named by a parameter */
#define CHILD                                                                                          \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"img\"},"                 \
    "{\"type\":\"WorkflowParameter\",\"name\":\"cls\",\"default_value\":\"bright\"},"                  \
    "{\"type\":\"WorkflowParameter\",\"name\":\"conf\"}],"                                              \
    "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"det\","      \
    "\"images\":\"$inputs.img\",\"model_id\":\"m/1\",\"confidence\":\"$inputs.conf\"},"                \
    "{\"type\":\"roboflow_core/detections_filter@v1\",\"name\":\"keep\",\"predictions\":"              \
    "\"$steps.det.predictions\",\"operations\":[{\"type\":\"DetectionsFilter\",\"filter_operation\":"  \
    "{\"type\":\"StatementGroup\",\"statements\":[{\"type\":\"BinaryStatement\",\"left_operand\":"     \
    "{\"type\":\"DynamicOperand\",\"operations\":[{\"type\":\"ExtractDetectionProperty\","             \
    "\"property_name\":\"class_name\"}]},\"comparator\":{\"type\":\"==\"},\"right_operand\":"          \
    "{\"type\":\"DynamicOperand\",\"operand_name\":\"c\"}}]}}],\"operations_parameters\":"             \
    "{\"c\":\"$inputs.cls\"}}],"                                                                        \
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"kept\",\"selector\":\"$steps.keep.predictions\"}," \
    "{\"type\":\"JsonField\",\"name\":\"all\",\"selector\":\"$steps.det.predictions\"}]}"

static json_t *run_text(const char *def, struct vis_image *im)
{
    struct wf_workflow *wf = compile_or_die(def);
    json_t *r = run1(wf, im, NULL);
    wf_free(wf);
    return r;
}

static size_t npreds(const json_t *r, const char *out)
{
    return json_array_size(json_object_get(json_object_get(r, out), "predictions"));
}

TEST(inner_workflow_runs_as_the_flat_workflow)
{
    struct vis_image *im = img_new(64, 64, 0);
    img_rect(im, 5, 5, 20, 20, 255); /* one "bright" box, plus the fake's "thing" */
    const char *nested =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"inner\",\"workflow_definition\":" CHILD
        ",\"parameter_bindings\":{\"img\":\"$inputs.image\",\"conf\":0.3}},"
        "{\"type\":\"roboflow_core/bounding_box_visualization@v1\",\"name\":\"viz\",\"image\":\"$inputs.image\","
        "\"predictions\":\"$steps.inner.kept\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"kept\",\"selector\":\"$steps.inner.kept\"},"
        "{\"type\":\"JsonField\",\"name\":\"all\",\"selector\":\"$steps.inner.all\"},"
        "{\"type\":\"JsonField\",\"name\":\"viz\",\"selector\":\"$steps.viz.image\"}]}";
    json_t *r = run_text(nested, im);
    /* the filter kept "bright" only (the child's default for cls) */
    ASSERT_EQ(npreds(r, "all"), 2);
    ASSERT_EQ(npreds(r, "kept"), 1);
    const json_t *p = json_array_get(json_object_get(json_object_get(r, "kept"), "predictions"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "class")), "bright");
    ASSERT(json_object_get(json_object_get(r, "viz"), "value"));
    json_decref(r);
    /* a binding for the defaulted parameter wins over the default */
    char def[8192];
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
             "{\"type\":\"WorkflowParameter\",\"name\":\"want\",\"default_value\":\"thing\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"inner\",\"workflow_definition\":" CHILD
             ",\"parameter_bindings\":{\"img\":\"$inputs.image\",\"conf\":0.3,\"cls\":\"$inputs.want\"}}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"kept\",\"selector\":\"$steps.inner.kept\"}]}");
    r = run_text(def, im);
    ASSERT_EQ(npreds(r, "kept"), 1);
    p = json_array_get(json_object_get(json_object_get(r, "kept"), "predictions"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "class")), "thing");
    json_decref(r);
    /* the binding's confidence reaches the model step: 0.6 drops "thing" (0.5) */
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"inner\",\"workflow_definition\":" CHILD
             ",\"parameter_bindings\":{\"img\":\"$inputs.image\",\"conf\":0.6}}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"all\",\"selector\":\"$steps.inner.all\"}]}");
    r = run_text(def, im);
    ASSERT_EQ(npreds(r, "all"), 1);
    json_decref(r);
    vis_image_free(im);
}

TEST(inner_workflow_nested_and_renamed)
{
    struct vis_image *im = img_new(64, 64, 0);
    img_rect(im, 5, 5, 20, 20, 255);
    /* a middle workflow holding the child; the parent already has a step
     * named "mid__inner__det", so the inlined one becomes "...__2" */
    char def[16384];
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"mid\",\"parameter_bindings\":"
             "{\"i\":\"$inputs.image\"},\"workflow_definition\":"
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"i\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"inner\",\"workflow_definition\":" CHILD
             ",\"parameter_bindings\":{\"img\":\"$inputs.i\",\"conf\":0.3}}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"k\",\"selector\":\"$steps.inner.kept\"}]}},"
             "{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"mid__inner__det\",\"data\":"
             "\"$steps.mid.k\",\"operations\":[{\"type\":\"SequenceLength\"}]}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"n\",\"selector\":\"$steps.mid__inner__det.output\"},"
             "{\"type\":\"JsonField\",\"name\":\"k\",\"selector\":\"$steps.mid.k\"}]}");
    json_t *inl = NULL;
    char err[512] = "";
    json_error_t je;
    json_t *j = json_loads(def, 0, &je);
    ASSERT(j);
    ASSERT_EQ(wf__inline_inner(j, &inl, err, sizeof err), 1);
    const json_t *steps = json_object_get(inl, "steps");
    ASSERT_EQ(json_array_size(steps), 3);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(steps, 0), "name")), "mid__inner__det__2");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(steps, 1), "name")), "mid__inner__keep");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(steps, 1), "predictions")),
                  "$steps.mid__inner__det__2.predictions");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(steps, 0), "images")), "$inputs.image");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(steps, 2), "data")),
                  "$steps.mid__inner__keep.predictions");
    json_decref(inl);
    json_decref(j);
    json_t *r = run_text(def, im);
    ASSERT_EQ(json_integer_value(json_object_get(r, "n")), 1);
    ASSERT_EQ(npreds(r, "k"), 1);
    json_decref(r);
    vis_image_free(im);
}

TEST(inner_workflow_errors)
{
    /* an unknown binding, a missing required one, a reference to a saved
     * workflow, an empty child, and nesting over 4 levels */
    expect_compile_error(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"x\",\"workflow_definition\":" CHILD
        ",\"parameter_bindings\":{\"img\":\"$inputs.image\",\"conf\":0.3,\"nope\":1}}],\"outputs\":[]}",
        "unknown child workflow input 'nope'");
    expect_compile_error(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"x\",\"workflow_definition\":" CHILD
        ",\"parameter_bindings\":{\"img\":\"$inputs.image\"}}],\"outputs\":[]}",
        "missing parameter_bindings for required child workflow input 'conf'");
    expect_compile_error(
        "{\"version\":\"1.0\",\"inputs\":[],\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"x\","
        "\"workflow_workspace_id\":\"ws\",\"workflow_id\":\"w\",\"parameter_bindings\":{}}],\"outputs\":[]}",
        "needs the Roboflow platform");
    expect_compile_error(
        "{\"version\":\"1.0\",\"inputs\":[],\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"x\","
        "\"workflow_definition\":{\"inputs\":[],\"steps\":[],\"outputs\":[]},\"parameter_bindings\":{}}],\"outputs\":[]}",
        "no steps to inline");
    /* depth 5: each level wraps the previous one */
    char *d = xstrdup("{\"version\":\"1.0\",\"inputs\":[],\"steps\":[{\"type\":\"roboflow_core/current_time@v1\","
                      "\"name\":\"t\"}],\"outputs\":[]}");
    for (int level = 0; level < 5; level++) {
        char *n = xasprintf("{\"version\":\"1.0\",\"inputs\":[],\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\","
                            "\"name\":\"l%d\",\"workflow_definition\":%s,\"parameter_bindings\":{}}],\"outputs\":[]}",
                            level, d);
        free(d);
        d = n;
        if (level == 3) { /* depth 4 compiles */
            struct wf_workflow *wf = compile_or_die(d);
            wf_free(wf);
        }
    }
    expect_compile_error(d, "nesting deeper than 4 levels");
    free(d);
}

TEST(inner_workflow_expansion_is_bounded)
{
    /* a 200 kB binding substituted into 100k references in one string would
     * be a 20 GB definition (a 1.1 MB job body): refused, not allocated */
    size_t nref = 100000, blen = 200000;
    struct buf refs = BUF_INIT;
    for (size_t k = 0; k < nref; k++)
        buf_puts(&refs, "$inputs.a");
    char *big = xmalloc(blen + 1);
    memset(big, 'x', blen);
    big[blen] = 0;
    char *d = xasprintf(
        "{\"version\":\"1.0\",\"inputs\":[],\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\","
        "\"name\":\"x\",\"workflow_definition\":{\"inputs\":[{\"type\":\"WorkflowParameter\",\"name\":\"a\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/current_time@v1\",\"name\":\"t\",\"note\":\"%s\"}],"
        "\"outputs\":[]},\"parameter_bindings\":{\"a\":\"%s\"}}],\"outputs\":[]}",
        refs.data, big);
    expect_compile_error(d, "larger than 16 MiB");
    free(d);
    /* the same through nesting: 64 references per level, four levels */
    char *inner = xstrdup("{\"inputs\":[{\"type\":\"WorkflowParameter\",\"name\":\"a\"}],\"steps\":["
                          "{\"type\":\"roboflow_core/current_time@v1\",\"name\":\"t\",\"note\":\"$inputs.a\"}],"
                          "\"outputs\":[]}");
    struct buf r64 = BUF_INIT;
    for (int k = 0; k < 64; k++)
        buf_puts(&r64, "$inputs.a");
    for (int level = 0; level < 3; level++) {
        char *n = xasprintf("{\"inputs\":[{\"type\":\"WorkflowParameter\",\"name\":\"a\"}],\"steps\":["
                            "{\"type\":\"roboflow_core/inner_workflow@v1\",\"name\":\"l%d\","
                            "\"workflow_definition\":%s,\"parameter_bindings\":{\"a\":\"%s\"}}],\"outputs\":[]}",
                            level, inner, r64.data);
        free(inner);
        inner = n;
    }
    d = xasprintf("{\"version\":\"1.0\",\"inputs\":[],\"steps\":[{\"type\":\"roboflow_core/inner_workflow@v1\","
                  "\"name\":\"top\",\"workflow_definition\":%s,\"parameter_bindings\":{\"a\":\"%s\"}}],"
                  "\"outputs\":[]}", inner, big);
    expect_compile_error(d, "larger than 16 MiB");
    free(d);
    free(inner);
    buf_release(&r64);
    buf_release(&refs);
    free(big);
}

TEST_MAIN()
