/*
 * bench_workflow_viz.c — visualization blocks on a 1080p image with 100
 * detections, run through the engine: a stub model step returns the 100
 * boxes, the visualization step draws, and a second stub model step
 * receives the drawn image (so no JPEG encode is timed).  The baseline,
 * measured in the same run, is a plain copy of a 1920x1080 BGR image
 * (vis_image_clone); the same workflow without the visualization step is
 * printed too, so the cost of the block itself is the difference.  One line
 * per figure (median of the runs):
 *
 *   bench=<name> ms=<median> baseline=<what> baseline_ms=<..> ratio=<..>
 */
#include "workflow/workflow.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 1920
#define H 1080
#define NBOX 100

static json_t *g_preds;

static int stub_infer(void *ud, const struct wf_model_request *req,
                      const struct vis_image *const *images, size_t n, json_t **out, char *err,
                      size_t errlen)
{
    (void)ud, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++)
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height",
                           images[i]->h, "predictions",
                           strcmp(req->model_id, "boxes/1") ? json_array() : json_incref(g_preds));
    return 0;
}

static const struct wf_env env = {stub_infer, NULL, 95, NULL, NULL};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return d < 0 ? -1 : d > 0;
}

static struct wf_workflow *compile_viz(const char *viz_step)
{
    char def[2048], err[512];
    struct wf_workflow *wf = NULL;
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\","
             "\"name\":\"m\",\"images\":\"$inputs.image\",\"model_id\":\"boxes/1\"}%s%s,"
             "{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"cap\","
             "\"images\":\"%s\",\"model_id\":\"capture/1\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\","
             "\"selector\":\"$steps.cap.predictions\"}]}",
             viz_step ? "," : "", viz_step ? viz_step : "",
             viz_step ? "$steps.viz.image" : "$inputs.image");
    if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0) {
        fprintf(stderr, "bench_workflow_viz: compile: %s\n", err);
        exit(1);
    }
    return wf;
}

static double run_median(const struct wf_workflow *wf, const struct vis_image *im, int runs)
{
    double *t = xcalloc((size_t)runs, sizeof *t), med;
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    for (int r = 0; r < runs; r++) {
        json_t *res = NULL;
        char err[512];
        double t0 = now_ms();
        if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0) {
            fprintf(stderr, "bench_workflow_viz: run: %s\n", err);
            exit(1);
        }
        t[r] = now_ms() - t0;
        json_decref(res);
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_d);
    med = t[runs / 2];
    free(t);
    return med;
}

static double copy_median(const struct vis_image *im, int runs)
{
    double *t = xcalloc((size_t)runs, sizeof *t), med;
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        struct vis_image *c = vis_image_clone(im);
        t[r] = now_ms() - t0;
        vis_image_free(c);
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_d);
    med = t[runs / 2];
    free(t);
    return med;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name, *step;
    } cases[] = {
        {"no_viz_100_1080p", NULL},
        {"label_viz_100_1080p",
         "{\"type\":\"roboflow_core/label_visualization@v1\",\"name\":\"viz\","
         "\"image\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\","
         "\"text\":\"Class and Confidence\"}"},
        {"bbox_viz_100_1080p",
         "{\"type\":\"roboflow_core/bounding_box_visualization@v1\",\"name\":\"viz\","
         "\"image\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\"}"},
        {"blur_viz_100_1080p",
         "{\"type\":\"roboflow_core/blur_visualization@v1\",\"name\":\"viz\","
         "\"image\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\"}"},
    };
    int runs = argc > 1 ? atoi(argv[1]) : 15;
    struct vis_image *im = vis_image_new(W, H, VIS_BGR);
    double base;

    if (runs < 1)
        runs = 1;
    if (!vis_font_default()) {
        fprintf(stderr, "bench_workflow_viz: no font at %s\n", VIS_FONT_DEFAULT_PATH);
        return 1;
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = vis_px(im, x, y);
            p[0] = (uint8_t)x, p[1] = (uint8_t)y, p[2] = (uint8_t)(x + y);
        }
    /* 100 boxes on a 10 x 10 grid, 10 classes */
    g_preds = json_array();
    for (int i = 0; i < NBOX; i++) {
        char cls[16];
        double x1 = 40 + (i % 10) * 185.0, y1 = 60 + (i / 10) * 100.0;
        snprintf(cls, sizeof cls, "class%d", i % 10);
        json_array_append_new(g_preds,
                              json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x", x1 + 70, "y",
                                        y1 + 35, "width", 140.0, "height", 70.0, "confidence",
                                        0.5 + i / 250.0, "class", cls, "class_id", i % 10));
    }
    base = copy_median(im, runs * 4);
    printf("# %dx%d BGR, %d detections, median of %d runs\n", W, H, NBOX, runs);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct wf_workflow *wf = compile_viz(cases[k].step);
        double ms;
        run_median(wf, im, 2); /* warm the glyph cache */
        ms = run_median(wf, im, runs);
        printf("bench=%s ms=%.3f baseline=image_copy_1080p baseline_ms=%.3f ratio=%.2f\n",
               cases[k].name, ms, base, base > 0 ? ms / base : 0);
        wf_free(wf);
    }
    json_decref(g_preds);
    vis_image_free(im);
    return 0;
}
