/*
 * bench_workflow_motion.c — background_subtraction and motion_detection on
 * a 1080p video (synthetic frames: a textured background with per-frame
 * noise and a square moving 12 px a frame), run through the engine with one
 * video state; a stub model step receives the mask so no JPEG encode is
 * timed.  bench/motion_bench.py runs this and the same work with
 * python3-opencv in one go.  One line per figure (median ms per frame over
 * the frames after the first `history`):
 *
 *   bench=<name> ms=<median>
 */
#include "workflow/workflow.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 1920
#define H 1080

static int stub_infer(void *ud, const struct wf_model_request *req,
                      const struct vis_image *const *images, size_t n, json_t **out, char *err,
                      size_t errlen)
{
    (void)ud, (void)req, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++)
        out[i] = json_pack("{s:{s:i,s:i},s:[]}", "image", "width", images[i]->w, "height",
                           images[i]->h, "predictions");
    return 0;
}

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

/* The frame motion_bench.py builds (frame() there). */
static void make_frame(struct vis_image *im, int t)
{
    int sx = 100 + 12 * t;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = vis_px(im, x, y);
            int noise = ((x * 31 + y * 17 + t * 13) % 7) - 3;
            if (x >= sx && x < sx + 300 && y >= 300 && y < 600) {
                p[0] = 250, p[1] = 40, p[2] = 200;
                continue;
            }
            p[0] = (uint8_t)((x * 5 + y * 3) % 200 + 20 + noise);
            p[1] = (uint8_t)((x * 2 + y * 7) % 180 + 30 + noise);
            p[2] = (uint8_t)((x * 3 + y * 2) % 160 + 40 + noise);
        }
}

static double bench(const char *step, const char *cap, int frames, int skip)
{
    char def[2048], err[512];
    struct wf_workflow *wf = NULL;
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[%s,{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\","
             "\"name\":\"cap\",\"images\":\"%s\",\"model_id\":\"capture/1\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\","
             "\"selector\":\"$steps.cap.predictions\"}]}",
             step, cap);
    if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0) {
        fprintf(stderr, "bench_workflow_motion: compile: %s\n", err);
        exit(1);
    }
    struct wf_state *st = wf_state_new();
    struct wf_env env = {stub_infer, NULL, 95, st, NULL};
    struct vis_image *im = vis_image_new(W, H, VIS_BGR);
    double *t = xcalloc((size_t)frames, sizeof *t), med;
    int n = 0;
    for (int f = 0; f < frames; f++) {
        make_frame(im, f);
        const struct vis_image *imgs[1] = {im};
        json_t *vm = json_pack("{s:s,s:i,s:s,s:f}", "video_identifier", "v", "frame_number", f,
                               "frame_timestamp", "2026-12-06T00:00:00.000Z", "fps", 30.0);
        struct wf_image_input ii = {"image", imgs, 1, false, vm};
        struct wf_run_inputs in = {&ii, 1, NULL};
        json_t *res = NULL;
        double t0 = now_ms();
        if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0) {
            fprintf(stderr, "bench_workflow_motion: run: %s\n", err);
            exit(1);
        }
        if (f >= skip)
            t[n++] = now_ms() - t0;
        json_decref(res);
        json_decref(vm);
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    med = t[n / 2];
    free(t);
    vis_image_free(im);
    wf_state_free(st);
    wf_free(wf);
    return med;
}

int main(int argc, char **argv)
{
    int frames = argc > 1 ? atoi(argv[1]) : 15;
    if (frames < 6)
        frames = 6;
    printf("# %dx%d BGR, %d frames of one video, median ms per frame\n", W, H, frames);
    printf("bench=background_subtraction_1080p ms=%.3f\n",
           bench("{\"type\":\"roboflow_core/background_subtraction@v1\",\"name\":\"bg\","
                 "\"image\":\"$inputs.image\",\"history\":30}",
                 "$steps.bg.image", frames, 1));
    /* suppression off: every frame runs the whole chain */
    printf("bench=motion_detection_1080p ms=%.3f\n",
           bench("{\"type\":\"roboflow_core/motion_detection@v1\",\"name\":\"md\","
                 "\"image\":\"$inputs.image\",\"history\":30,\"suppress_first_detections\":false}",
                 "$inputs.image", frames, 1));
    printf("bench=empty_workflow_1080p ms=%.3f\n",
           bench("{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"p\","
                 "\"data\":\"$inputs.image\",\"operations\":[]}",
                 "$inputs.image", frames, 1));
    return 0;
}
