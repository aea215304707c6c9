/*
 * test_workflow_aggregator.c — data_aggregator v1 over sequences of runs
 * sharing one wf_state.  Expected values follow Roboflow's
 * DataAggregatorBlockV1 state classes (Python semantics: sum of ints is an
 * int, avg a float, count adds len() of lists, values_counts a dict),
 * computed by hand in the comments.
 */
#include "t.h"
#include "test_workflow_fake.h"

static const char *const *g_classes;
static int g_ncls;

static int cls_infer(void *ud, const struct wf_model_request *req,
                     const struct vis_image *const *images, size_t n, json_t **out, char *err,
                     size_t errlen)
{
    (void)ud, (void)req, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        for (int k = 0; k < g_ncls; k++)
            json_array_append_new(preds, fake_box(10 * k, 0, 10 * k + 8, 8, 0.9, g_classes[k], k,
                                                  "object-detection"));
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height",
                           images[i]->h, "predictions", preds);
    }
    return 0;
}

#define DEF(extra)                                                                             \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"      \
    "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\"," \
    "\"images\":\"$inputs.image\",\"model_id\":\"m\"},"                                        \
    "{\"type\":\"roboflow_core/data_aggregator@v1\",\"name\":\"agg\","                         \
    "\"data\":{\"count\":\"$steps.det.predictions\",\"cls\":\"$steps.det.predictions\"},"     \
    "\"data_operations\":{\"count\":[{\"type\":\"SequenceLength\"}],"                          \
    "\"cls\":[{\"type\":\"DetectionsPropertyExtract\",\"property_name\":\"class_name\"}]},"   \
    "\"aggregation_mode\":{\"cls\":[\"distinct\",\"count_distinct\",\"values_counts\",\"count\"]," \
    "\"count\":[\"sum\",\"avg\",\"max\",\"min\",\"values_difference\"]}" extra "}],"            \
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.agg.*\"}]}"

static json_t *run(const struct wf_workflow *wf, struct wf_state *st, const char *const *cls, int n)
{
    struct vis_image *im = img_new(100, 20, 0);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {cls_infer, NULL, 90, st, NULL};
    json_t *res = NULL;
    char err[512];
    g_classes = cls, g_ncls = n;
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    vis_image_free(im);
    return r;
}

static void expect(json_t *got, const char *want)
{
    json_error_t je;
    json_t *w = json_loads(want, 0, &je);
    if (!w || !json_equal(got, w)) {
        char *g = json_dumps(got, JSON_PRESERVE_ORDER);
        T_FAIL("got %s\nwant %s", g ? g : "?", want);
    }
    json_decref(w);
    json_decref(got);
}

TEST(data_aggregator_runs_interval)
{
    struct wf_workflow *wf = compile_or_die(DEF(",\"interval_unit\":\"runs\",\"interval\":3"));
    struct wf_state *st = wf_state_new();
    static const char *const f1[] = {"a", "b"}, *const f2[] = {"a"}, *const f4[] = {"c"};
    /* outputs "<field>_<mode>" in the order of 'data', None until the 3rd run */
    expect(run(wf, st, f1, 2),
           "{\"count_sum\":null,\"count_avg\":null,\"count_max\":null,\"count_min\":null,"
           "\"count_values_difference\":null,\"cls_distinct\":null,\"cls_count_distinct\":null,"
           "\"cls_values_counts\":null,\"cls_count\":null}");
    json_decref(run(wf, st, f2, 1));
    /* counts 2, 1, 0: sum 3 (int), avg 1.0, max 2, min 0, difference 2;
     * classes [a, b], [a], []: distinct a, b; 2 distinct; {a: 2, b: 1};
     * count adds the list lengths: 3 */
    expect(run(wf, st, NULL, 0),
           "{\"count_sum\":3,\"count_avg\":1.0,\"count_max\":2,\"count_min\":0,"
           "\"count_values_difference\":2,\"cls_distinct\":[\"a\",\"b\"],\"cls_count_distinct\":2,"
           "\"cls_values_counts\":{\"a\":2,\"b\":1},\"cls_count\":3}");
    /* a new window after the flush */
    json_t *r = run(wf, st, f4, 1);
    ASSERT(json_is_null(json_object_get(r, "count_sum")));
    json_decref(r);
    json_decref(run(wf, st, f4, 1));
    expect(run(wf, st, f4, 1),
           "{\"count_sum\":3,\"count_avg\":1.0,\"count_max\":1,\"count_min\":1,"
           "\"count_values_difference\":0,\"cls_distinct\":[\"c\"],\"cls_count_distinct\":1,"
           "\"cls_values_counts\":{\"c\":3},\"cls_count\":3}");
    wf_state_free(st);
    wf_free(wf);
}

TEST(data_aggregator_seconds_and_errors)
{
    /* interval 1 hour: nothing is flushed within the test */
    struct wf_workflow *wf = compile_or_die(DEF(",\"interval_unit\":\"hours\",\"interval\":1"));
    struct wf_state *st = wf_state_new();
    static const char *const f1[] = {"a"};
    for (int k = 0; k < 3; k++) {
        json_t *r = run(wf, st, f1, 1);
        ASSERT(json_is_null(json_object_get(r, "count_sum")));
        json_decref(r);
    }
    wf_state_free(st);
    wf_free(wf);
    /* interval 1 run: every run flushes; the default unit is seconds */
    wf = compile_or_die(DEF(",\"interval_unit\":\"runs\",\"interval\":1"));
    expect(run(wf, NULL, f1, 1),
           "{\"count_sum\":1,\"count_avg\":1.0,\"count_max\":1,\"count_min\":1,"
           "\"count_values_difference\":0,\"cls_distinct\":[\"a\"],\"cls_count_distinct\":1,"
           "\"cls_values_counts\":{\"a\":1},\"cls_count\":1}");
    wf_free(wf);
    expect_compile_error(DEF(",\"interval\":0"), "interval");
    expect_compile_error(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/data_aggregator@v1\",\"name\":\"agg\","
        "\"data\":{\"x\":\"$inputs.image\"},\"aggregation_mode\":{\"x\":[\"median\"]},\"interval\":1}],"
        "\"outputs\":[]}",
        "'x': unknown mode");
    /* summing a list is a step error, not a crash */
    wf = compile_or_die(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"det\","
        "\"images\":\"$inputs.image\",\"model_id\":\"m\"},"
        "{\"type\":\"roboflow_core/data_aggregator@v1\",\"name\":\"agg\","
        "\"data\":{\"c\":\"$steps.det.predictions\"},\"data_operations\":{\"c\":[{\"type\":"
        "\"DetectionsPropertyExtract\",\"property_name\":\"class_name\"}]},"
        "\"aggregation_mode\":{\"c\":[\"sum\"]},\"interval_unit\":\"runs\",\"interval\":1}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.agg.*\"}]}");
    {
        struct vis_image *im = img_new(100, 20, 0);
        const struct vis_image *imgs[1] = {im};
        struct wf_image_input ii = {"image", imgs, 1, false, NULL};
        struct wf_run_inputs in = {&ii, 1, NULL};
        struct wf_env env = {cls_infer, NULL, 90, NULL, NULL};
        json_t *res = NULL;
        char err[512] = "";
        g_classes = f1, g_ncls = 1;
        ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
        ASSERT(strstr(err, "cannot sum a non-number value of 'c'"));
        vis_image_free(im);
    }
    wf_free(wf);
}

TEST_MAIN()
