/*
 * bench_workflow_trackroll.c — step time (the executor's step_timing hook,
 * best over the frames) of trackers_botsort next to trackers_bytetrack and
 * trackers_ocsort on 1080p frames with 20 moving boxes (frames 11..60 of a
 * sequence), and of detections_list_rollup merging the boxes / masks found
 * in 10 crops of a 1080p image (5 per crop, overlapping across crops):
 * and of trackers_botsort with sparseOptFlow camera-motion compensation on
 * a textured 1080p frame panning 6 px a frame (bench_workflow_trackroll.py
 * times the package's CMC.estimate with python3-opencv on the same frames):
 *   bench=<name> ms=<best step time>
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define W 1920
#define H 1080

static int g_frame;

static int bench_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                       size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *preds = json_array();
        bool crop = images[i]->w < W;
        int count = crop ? 5 : !strcmp(req->model_id, "parents/1") ? 10 : 20;
        for (int k = 0; k < count; k++) {
            double x, y, w = 60, h = 80;
            if (crop)
                x = 10 + 40 * k, y = 20 + 10 * k;
            else if (count == 10)
                x = 100 + 170 * k, y = 200, w = 260, h = 300;
            else
                x = 40 + 90 * (k % 20) + 3 * g_frame, y = 100 + 40 * (k % 5) + 2 * g_frame;
            json_t *p = json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x", x + w / 2, "y", y + h / 2, "width", w,
                                  "height", h, "confidence", k % 3 ? 0.9 : 0.5, "class", "a", "class_id", 0);
            if (!strcmp(req->task, "instance-segmentation"))
                json_object_set_new(p, "points", json_pack("[{s:f,s:f},{s:f,s:f},{s:f,s:f},{s:f,s:f}]", "x", x,
                                                           "y", y, "x", x + w, "y", y, "x", x + w, "y", y + h,
                                                           "x", x, "y", y + h));
            json_array_append_new(preds, p);
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height", images[i]->h,
                           "predictions", preds);
    }
    return 0;
}

struct step_clock {
    const char *name;
    int64_t best_ns;
    bool on;
};

static void on_step(void *ud, const char *step, int64_t ns)
{
    struct step_clock *sc = ud;
    if (sc->on && !strcmp(step, sc->name) && ns < sc->best_ns)
        sc->best_ns = ns;
}

static bool g_texture;

/* bench_workflow_trackroll.py texture(): smooth, seen from a camera at ox */
static void paint(struct vis_image *im, int ox)
{
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            double X = x + ox, Y = y;
            double v = floor(128 + 50 * sin(X / 23.0) * cos(Y / 17.0) + 35 * sin((X + 0.7 * Y) / 37.0 + 1.3) +
                             25 * cos((0.6 * X - Y) / 29.0) + 0.5);
            memset(vis_px(im, x, y), (int)(v < 0 ? 0 : v > 255 ? 255 : v), 3);
        }
}

static void bench(const char *name, const char *def, int frames, int from)
{
    struct wf_workflow *wf = NULL;
    char err[512];
    if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        exit(1);
    }
    struct vis_image *im = vis_image_new(W, H, VIS_BGR);
    memset(im->px, 60, (size_t)im->stride * H);
    const struct vis_image *imgs[1] = {im};
    struct wf_state *st = wf_state_new();
    struct step_clock sc = {"s", INT64_MAX, false};
    wf__set_step_timing(on_step, &sc);
    for (int f = 0; f < frames; f++) {
        json_t *vm = json_pack("{s:s,s:i,s:f}", "video_identifier", "v", "frame_number", f + 1, "fps", 30.0);
        struct wf_image_input ii = {"image", imgs, 1, false, vm};
        struct wf_run_inputs in = {&ii, 1, NULL};
        struct wf_env env = {bench_infer, NULL, 90, st, NULL};
        json_t *res = NULL;
        g_frame = f;
        if (g_texture)
            paint(im, 6 * f);
        sc.on = f >= from;
        if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0) {
            fprintf(stderr, "%s: %s\n", name, err);
            exit(1);
        }
        json_decref(res);
        json_decref(vm);
    }
    wf__set_step_timing(NULL, NULL);
    wf_state_free(st);
    wf_free(wf);
    vis_image_free(im);
    printf("bench=%s ms=%.3f\n", name, (double)sc.best_ns / 1e6);
}

#define TRACKER(type) TRACKER_X(type, "")
#define TRACKER_X(type, extra)                                                                                     \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],\"steps\":["              \
    "{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"m\",\"images\":\"$inputs.image\"," \
    "\"model_id\":\"x/1\"},{\"type\":\"roboflow_core/" type "\",\"name\":\"s\",\"image\":\"$inputs.image\","      \
    "\"detections\":\"$steps.m.predictions\"" extra "}],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\","             \
    "\"selector\":\"$steps.s.tracked_detections\"}]}"

#define ROLLUP(model)                                                                                              \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],\"steps\":["              \
    "{\"type\":\"roboflow_core/roboflow_object_detection_model@v2\",\"name\":\"p\",\"images\":\"$inputs.image\"," \
    "\"model_id\":\"parents/1\"},{\"type\":\"roboflow_core/dynamic_crop@v1\",\"name\":\"crop\","                  \
    "\"images\":\"$inputs.image\",\"predictions\":\"$steps.p.predictions\"},"                                   \
    "{\"type\":\"roboflow_core/" model "\",\"name\":\"c\",\"images\":\"$steps.crop.crops\",\"model_id\":\"c/1\"}," \
    "{\"type\":\"roboflow_core/dimension_collapse@v1\",\"name\":\"col\",\"data\":\"$steps.c.predictions\"},"      \
    "{\"type\":\"roboflow_core/detections_list_rollup@v1\",\"name\":\"s\",\"parent_detection\":"                 \
    "\"$steps.p.predictions\",\"child_detections\":\"$steps.col.output\"}],\"outputs\":[{\"type\":\"JsonField\"," \
    "\"name\":\"o\",\"selector\":\"$steps.s.*\"}]}"

int main(void)
{
    bench("trackers_bytetrack", TRACKER("trackers_bytetrack@v1"), 60, 10);
    bench("trackers_ocsort", TRACKER("trackers_ocsort@v1"), 60, 10);
    bench("trackers_botsort", TRACKER("trackers_botsort@v1"), 60, 10);
    g_texture = true;
    bench("trackers_botsort_cmc", TRACKER_X("trackers_botsort@v1", ",\"enable_cmc\":true"), 30, 10);
    g_texture = false;
    bench("detections_list_rollup_boxes", ROLLUP("roboflow_object_detection_model@v2"), 20, 0);
    bench("detections_list_rollup_masks", ROLLUP("roboflow_instance_segmentation_model@v2"), 20, 0);
    return 0;
}
