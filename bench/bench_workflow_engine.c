/*
 * bench_workflow_engine.c — what the workflow engine costs on top of the
 * work its blocks do.  One line per figure:
 *   bench=<name> ms=<engine> baseline=<what> baseline_ms=<direct> ratio=<engine/baseline>
 *
 *  - executor_6step_1080p: a six-step non-model workflow (two static
 *    crops, image property, expression, template, first-non-empty) per
 *    1080p image, against doing the two crops directly with memcpy;
 *  - detections_filter_1000: a detections_filter step (confidence and class
 *    statement) over 1,000 detections, timed by the executor's step hook
 *    (best run), against a direct loop over the same struct array;
 *  - detections_stitch_1000: the detections_stitch (nms) step over 1,000
 *    detections from 4 slices, against moving the same boxes and
 *    wf__dets_nms on the merged set directly;
 *  - label_visualization_100: 100 boxes labelled on 1080p when the
 *    visualization blocks are registered (else a "skipped" line).
 * The model is a provider defined here that returns precomputed boxes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define W 1920
#define H 1080

static int ndets_per_image = 1000;

/* Responses are built once per (size, count) and handed out as new
 * references, so that the "model" costs little next to the blocks. */
static json_t *cache_resp;
static int cache_w, cache_h, cache_n;

static json_t *make_resp(int w, int h);

static int bench_infer(void *ud, const struct wf_model_request *req,
                       const struct vis_image *const *images, size_t n, json_t **out, char *err,
                       size_t errlen)
{
    (void)ud, (void)req, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        int w = images[i]->w, h = images[i]->h;
        if (!cache_resp || cache_w != w || cache_h != h || cache_n != ndets_per_image) {
            json_decref(cache_resp);
            cache_resp = make_resp(w, h);
            cache_w = w, cache_h = h, cache_n = ndets_per_image;
        }
        out[i] = json_incref(cache_resp);
    }
    return 0;
}

static json_t *make_resp(int w, int h)
{
    json_t *out[1];
    for (size_t i = 0; i < 1; i++) {
        json_t *preds = json_array();
        for (int k = 0; k < ndets_per_image; k++) {
            double x = (k * 37) % (w - 40) + 20, y = (k * 53) % (h - 40) + 20;
            json_array_append_new(
                preds, json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x", x, "y", y, "width", 30.0,
                                 "height", 24.0, "confidence", (k % 100) / 100.0, "class",
                                 k % 3 ? "car" : "person", "class_id", k % 3 ? 1 : 0));
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", w, "height", h, "predictions",
                           preds);
    }
    return out[0];
}

static const struct wf_env env = {bench_infer, NULL, 90, NULL, NULL};

static double run_ms(const char *text, struct vis_image *im, int iters)
{
    struct wf_workflow *wf = NULL;
    char err[512];
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    int64_t t0;
    if (wf_compile_text(text, strlen(text), &wf, err, sizeof err) < 0) {
        fprintf(stderr, "compile: %s\n", err);
        return -1;
    }
    /* the machine is shared: the fastest run is the figure least disturbed
     * by other processes (the baselines are measured the same way) */
    int64_t best = INT64_MAX;
    for (int i = 0; i < 5 * iters; i++) {
        json_t *res = NULL;
        t0 = time_mono_ns();
        if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0) {
            fprintf(stderr, "run: %s\n", err);
            wf_free(wf);
            return -1;
        }
        int64_t d = time_mono_ns() - t0;
        if (d < best)
            best = d;
        json_decref(res);
    }
    wf_free(wf);
    return (double)best / 1e6;
}

/* Best time of step 'name' over rounds of iters runs (ms), measured by the
 * executor's step_timing hook: independent of the model step's cost. */
struct step_clock {
    const char *name;
    int64_t best_ns;
};

static void on_step(void *ud, const char *step, int64_t ns)
{
    struct step_clock *sc = ud;
    if (!strcmp(step, sc->name) && ns < sc->best_ns)
        sc->best_ns = ns;
}

static double step_ms(const char *text, const char *step, struct vis_image *im, int iters)
{
    struct wf_workflow *wf = NULL;
    char err[512];
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct step_clock sc = {step, INT64_MAX};
    wf__set_step_timing(on_step, &sc);
    if (wf_compile_text(text, strlen(text), &wf, err, sizeof err) < 0) {
        fprintf(stderr, "compile: %s\n", err);
        exit(1);
    }
    for (int i = 0; i < iters; i++) {
        json_t *res = NULL;
        if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0) {
            fprintf(stderr, "run: %s\n", err);
            exit(1);
        }
        json_decref(res);
    }
    wf__set_step_timing(NULL, NULL);
    wf_free(wf);
    return (double)sc.best_ns / 1e6;
}

/* Fastest single call of fn(arg) over 5 * iters calls, in ms: like the
 * step hook's best run, so both sides meet the least disturbed machine. */
static double best_ms(void (*fn)(void *), void *arg, int iters)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < 5 * iters; i++) {
        int64_t t0 = time_mono_ns();
        fn(arg);
        int64_t d = time_mono_ns() - t0;
        if (d < best)
            best = d;
    }
    return (double)best / 1e6;
}

static void report(const char *name, double ms, const char *base, double base_ms)
{
    printf("bench=%s ms=%.4f baseline=%s baseline_ms=%.4f ratio=%.2f\n", name, ms, base, base_ms,
           base_ms > 0 ? ms / base_ms : 0.0);
}

static struct vis_image *copy_rect(const struct vis_image *src, int x1, int y1, int x2, int y2)
{
    struct vis_image *c = vis_image_new(x2 - x1, y2 - y1, src->fmt);
    for (int y = y1; y < y2; y++)
        memcpy(vis_px(c, 0, y - y1), vis_px(src, x1, y), (size_t)(x2 - x1) * 3);
    return c;
}

static void direct_crops(void *arg)
{
    struct vis_image *im = arg;
    struct vis_image *a = copy_rect(im, 480, 270, 1440, 810);
    struct vis_image *b = copy_rect(a, 40, 40, 360, 360);
    vis_image_free(a);
    vis_image_free(b);
}

static void direct_filter(void *arg)
{
    const struct wf_dets *ds = arg;
    struct wf_dets *c = wf_dets_new();
    for (size_t k = 0; k < ds->n; k++)
        if (ds->d[k].confidence >= 0.5f && !strcmp(ds->d[k].class_name, "car"))
            wf_dets_push_copy(c, &ds->d[k]);
    wf_dets_free(c);
}

static void direct_nms(void *arg)
{
    struct wf_dets *c = wf_dets_clone(arg);
    wf__dets_nms(c, 0.3, false);
    wf_dets_free(c);
}

static void direct_clone(void *arg)
{
    vis_image_free(vis_image_clone(arg));
}

#define HEAD "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],\"steps\":["
#define MODEL "{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\",\"model_id\":\"b/1\",\"confidence\":0.0}"

int main(void)
{
    struct vis_image *im = vis_image_new(W, H, VIS_BGR);
    int iters = 200;
    double ms, base;

    for (size_t i = 0; i < (size_t)im->stride * H; i++)
        im->px[i] = (uint8_t)(i * 7);

    /* 1. executor overhead, six non-model steps */
    const char *six =
        HEAD "{\"type\":\"roboflow_core/relative_statoic_crop@v1\",\"name\":\"a\",\"images\":"
             "\"$inputs.image\",\"x_center\":0.5,\"y_center\":0.5,\"width\":0.5,\"height\":0.5},"
             "{\"type\":\"AbsoluteStaticCrop\",\"name\":\"b\",\"images\":\"$steps.a.crops\","
             "\"x_center\":200,\"y_center\":200,\"width\":320,\"height\":320},"
             "{\"type\":\"PropertyDefinition\",\"name\":\"c\",\"data\":\"$steps.b.crops\","
             "\"operations\":[{\"type\":\"ExtractImageProperty\",\"property_name\":\"size\"}]},"
             "{\"type\":\"Expression\",\"name\":\"d\",\"data\":{\"s\":\"$steps.c.output\"},"
             "\"switch\":{\"type\":\"CasesDefinition\",\"cases\":[{\"type\":\"CaseDefinition\","
             "\"condition\":{\"type\":\"StatementGroup\",\"statements\":[{\"type\":"
             "\"BinaryStatement\",\"left_operand\":{\"type\":\"DynamicOperand\",\"operand_name\":"
             "\"s\"},\"comparator\":{\"type\":\"(Number) >\"},\"right_operand\":{\"type\":"
             "\"StaticOperand\",\"value\":1000}}]},\"result\":{\"type\":\"StaticCaseResult\","
             "\"value\":\"big\"}}],\"default\":{\"type\":\"StaticCaseResult\",\"value\":"
             "\"small\"}}},"
             "{\"type\":\"roboflow_core/string_template@v1\",\"name\":\"e\",\"template\":"
             "\"crop is {{ $parameters.x }}\",\"data\":{\"x\":\"$steps.d.output\"}},"
             "{\"type\":\"FirstNonEmptyOrDefault\",\"name\":\"f\",\"data\":[\"$steps.e.output\"]}"
             "],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.f.output\"}]}";
    ms = run_ms(six, im, iters);
    base = best_ms(direct_crops, im, iters);
    report("executor_6step_1080p", ms, "direct_crops", base);
    printf("bench=executor_6step_overhead_us_per_image value=%.1f\n", (ms - base) * 1000);

    /* 2. detections_filter over 1000 detections */
    iters = 50;
    const char *filter =
        HEAD MODEL ",{\"type\":\"DetectionsFilter\",\"name\":\"f\",\"predictions\":"
                   "\"$steps.m.predictions\",\"operations\":[{\"type\":\"DetectionsFilter\","
                   "\"filter_operation\":{\"type\":\"StatementGroup\",\"operator\":\"and\","
                   "\"statements\":[{\"type\":\"BinaryStatement\",\"left_operand\":{\"type\":"
                   "\"DynamicOperand\",\"operations\":[{\"type\":\"ExtractDetectionProperty\","
                   "\"property_name\":\"confidence\"}]},\"comparator\":{\"type\":\"(Number) >=\"},"
                   "\"right_operand\":{\"type\":\"StaticOperand\",\"value\":0.5}},{\"type\":"
                   "\"BinaryStatement\",\"left_operand\":{\"type\":\"DynamicOperand\","
                   "\"operations\":[{\"type\":\"ExtractDetectionProperty\",\"property_name\":"
                   "\"class_name\"}]},\"comparator\":{\"type\":\"==\"},\"right_operand\":{\"type\":"
                   "\"StaticOperand\",\"value\":\"car\"}}]}}]}],\"outputs\":[]}";
    double m1 = step_ms(filter, "f", im, iters * 4);
    {
        /* baseline: the same predicate over the same detections, directly */
        const struct vis_image *imgs[1] = {im};
        json_t *resp[1];
        struct wf_dets *ds = NULL;
        struct wf_image *root = wf_image_new_root(vis_image_clone(im), "image");
        bench_infer(NULL, NULL, imgs, 1, resp, NULL, 0);
        wf_dets_from_inference(resp[0], root, "object-detection", "x", NULL, &ds);
        json_decref(resp[0]);
        base = best_ms(direct_filter, ds, iters);
        report("detections_filter_1000", m1, "direct_predicate_loop", base);

        wf_dets_free(ds);
        wf_image_free(root);
    }
    /* 3. stitch of 4 slices x 250 boxes; baseline: the same 1000 boxes moved
     * into the image and NMS'd directly */
    ndets_per_image = 250;
    {
        struct vis_image *sl = vis_image_new(960, 540, VIS_BGR);
        const struct vis_image *imgs[1] = {sl};
        json_t *resp[1];
        struct wf_dets *one = NULL, *all = wf_dets_new();
        struct wf_image *root = wf_image_new_root(vis_image_clone(sl), "image");
        bench_infer(NULL, NULL, imgs, 1, resp, NULL, 0);
        wf_dets_from_inference(resp[0], root, "object-detection", "x", NULL, &one);
        json_decref(resp[0]);
        for (int s = 0; s < 4; s++)
            for (size_t k = 0; k < one->n; k++) {
                struct wf_det *d = wf_dets_push_copy(all, &one->d[k]);
                float dx = (float)(s % 2 * 960), dy = (float)(s / 2 * 540);
                d->x1 += dx, d->x2 += dx, d->y1 += dy, d->y2 += dy;
            }
        base = best_ms(direct_nms, all, iters);
        wf_dets_free(one);
        wf_dets_free(all);
        wf_image_free(root);
        vis_image_free(sl);
    }
    const char *sliced =
        HEAD "{\"type\":\"roboflow_core/image_slicer@v2\",\"name\":\"s\",\"image\":"
             "\"$inputs.image\",\"slice_width\":960,\"slice_height\":540,"
             "\"overlap_ratio_width\":0.0,\"overlap_ratio_height\":0.0},"
             "{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$steps.s.slices\","
             "\"model_id\":\"b/1\",\"confidence\":0.0}";
    char b[4096];
    snprintf(b, sizeof b,
             "%s,{\"type\":\"roboflow_core/detections_stitch@v1\",\"name\":\"st\","
             "\"reference_image\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\"}],"
             "\"outputs\":[]}",
             sliced);
    m1 = step_ms(b, "st", im, iters * 4);
    report("detections_stitch_1000", m1, "direct_move_nms_1000", base);

    /* 4. label_visualization of 100 boxes */
    ndets_per_image = 100;
    if (wf__block_find("roboflow_core/label_visualization@v1")) {
        const char *viz = HEAD MODEL ",{\"type\":\"roboflow_core/label_visualization@v1\","
                                     "\"name\":\"v\",\"image\":\"$inputs.image\",\"predictions\":"
                                     "\"$steps.m.predictions\"}],\"outputs\":[]}";
        m1 = step_ms(viz, "v", im, 40);
        base = best_ms(direct_clone, im, 20);
        report("label_visualization_100_1080p", m1, "image_clone_1080p", base);
    } else {
        printf("bench=label_visualization_100_1080p skipped=visualization_blocks_not_registered\n");
    }
    vis_image_free(im);
    json_decref(cache_resp);
    return 0;
}
