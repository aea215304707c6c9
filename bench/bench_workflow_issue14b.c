/*
 * bench_workflow_issue14b.c — time per 1080p image of the blocks added for
 * issue 14 in blocks/vlm.c, memory.c, overlap.c, codes.c (QR generator)
 * and ocr.c (otsu / collimate): best of 20 wf_run calls of a workflow
 * holding the step, one line per figure:
 *   bench=<name> ms=<best wf_run>
 * The OpenCV counterpart of image_stack (cv2.resize INTER_AREA, plus the
 * cv2.imencode Roboflow does) is timed by bench_workflow_issue14b.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define W 1920
#define H 1080

static json_t *g_resp; /* the "model" response: precomputed detections */

static int bench_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                       size_t n, json_t **out, char *err, size_t errlen)
{
    (void)ud, (void)req, (void)images, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++)
        out[i] = json_incref(g_resp);
    return 0;
}

static void make_resp(int count, int cols, int bw, int bh)
{
    json_t *preds = json_array();
    for (int k = 0; k < count; k++) {
        double x = 20 + (k % cols) * (bw + 4), y = 20 + (k / cols) * (bh + 10);
        json_array_append_new(preds, json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x", x + bw / 2.0, "y",
                                               y + bh / 2.0, "width", (double)bw, "height", (double)bh,
                                               "confidence", 0.9, "class", k % 7 ? "a" : "b", "class_id", 0));
    }
    json_decref(g_resp);
    g_resp = json_pack("{s:{s:i,s:i},s:o}", "image", "width", W, "height", H, "predictions", preds);
}

static double bench(const char *name, const char *def, const json_t *params, struct vis_image *im)
{
    struct wf_workflow *wf = NULL;
    char err[512];
    if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        exit(1);
    }
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_state *st = wf_state_new();
    struct wf_env env = {bench_infer, NULL, 90, st, NULL};
    double best = 1e30;
    for (int r = 0; r < 20; r++) {
        json_t *res = NULL;
        int64_t t0 = time_mono_ns();
        if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0) {
            fprintf(stderr, "%s: %s\n", name, err);
            exit(1);
        }
        double ms = (double)(time_mono_ns() - t0) / 1e6;
        best = ms < best ? ms : best;
        json_decref(res);
    }
    wf_state_free(st);
    wf_free(wf);
    printf("bench=%s ms=%.3f\n", name, best);
    return best;
}

#define HEAD "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"            \
             "{\"type\":\"WorkflowParameter\",\"name\":\"t\",\"default_value\":\"\"}],\"steps\":["
#define MODEL "{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"m\","               \
              "\"images\":\"$inputs.image\",\"model_id\":\"x/1\"},"
#define TAIL(sel) "],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"" sel "\"}]}"

int main(void)
{
    struct vis_image *im = vis_image_new(W, H, VIS_BGR);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W * 3; x++)
            im->px[(size_t)y * (size_t)im->stride + (size_t)x] = (uint8_t)((x * 7 + y * 3) & 0xff);
    make_resp(0, 1, 10, 10);
    /* the executor alone on this image: a model step returning nothing */
    bench("model_step_only_baseline", HEAD MODEL "{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"p\","
          "\"data\":\"$steps.m.predictions\",\"operations\":[]}" TAIL("$steps.p.output"), NULL, im);
    bench("image_stack_1080p_to_640x360",
          HEAD "{\"type\":\"roboflow_core/image_stack@v1\",\"name\":\"s\",\"image\":\"$inputs.image\","
          "\"stack_size\":10,\"resolution_width\":640,\"resolution_height\":360}" TAIL("$steps.s.frames_count"),
          NULL, im);
    bench("image_stack_1080p_kept", HEAD "{\"type\":\"roboflow_core/image_stack@v1\",\"name\":\"s\",\"image\":"
          "\"$inputs.image\"}" TAIL("$steps.s.frames_count"), NULL, im);
    bench("qr_code_generator_30_bytes_H",
          HEAD "{\"type\":\"roboflow_core/qr_code_generator@v1\",\"name\":\"g\",\"text\":\"https://example.com/vbatch?x=1\","
          "\"error_correct\":\"High (~30% word recovery / lowest data capacity)\"}" TAIL("$steps.g.qr_code"),
          NULL, im);
    make_resp(100, 20, 60, 40);
    bench("overlap_analysis_100x100_boxes",
          HEAD MODEL "{\"type\":\"OverlapAnalysis\",\"name\":\"o\",\"reference_predictions\":\"$steps.m.predictions\","
          "\"candidate_predictions\":\"$steps.m.predictions\",\"min_overlap\":0.0}" TAIL("$steps.o.overlaps"),
          NULL, im);
    bench("geotag_detection_100",
          HEAD MODEL "{\"type\":\"roboflow_core/geotag_detection@v1\",\"name\":\"g\",\"image\":\"$inputs.image\","
          "\"predictions\":\"$steps.m.predictions\",\"latitude\":52.5,\"longitude\":13.4,\"altitude\":80}"
          TAIL("$steps.g.geojson"), NULL, im);
    make_resp(200, 40, 20, 30);
    bench("stitch_ocr_otsu_200", HEAD MODEL "{\"type\":\"roboflow_core/stitch_ocr_detections@v2\",\"name\":\"s\","
          "\"predictions\":\"$steps.m.predictions\",\"stitching_algorithm\":\"otsu\",\"reading_direction\":"
          "\"left_to_right\"}" TAIL("$steps.s.ocr_text"), NULL, im);
    bench("stitch_ocr_collimate_200", HEAD MODEL "{\"type\":\"roboflow_core/stitch_ocr_detections@v2\",\"name\":\"s\","
          "\"predictions\":\"$steps.m.predictions\",\"stitching_algorithm\":\"collimate\",\"reading_direction\":"
          "\"left_to_right\"}" TAIL("$steps.s.ocr_text"), NULL, im);
    /* VLM text of 100 gemini boxes */
    struct buf b = BUF_INIT;
    buf_puts(&b, "```json\n[");
    for (int k = 0; k < 100; k++) {
        char e[160];
        snprintf(e, sizeof e, "%s{\"box_2d\": [%d, %d, %d, %d], \"label\": \"c%d\", \"confidence\": 0.8}",
                 k ? ", " : "", k * 9, k * 5, k * 9 + 50, k * 5 + 80, k % 5);
        buf_puts(&b, e);
    }
    buf_puts(&b, "]\n```");
    json_t *params = json_pack("{s:s}", "t", b.data);
    buf_release(&b);
    bench("vlm_as_detector_gemini_100", HEAD "{\"type\":\"roboflow_core/vlm_as_detector@v2\",\"name\":\"v\","
          "\"image\":\"$inputs.image\",\"vlm_output\":\"$inputs.t\",\"classes\":[\"c0\",\"c1\",\"c2\"],"
          "\"model_type\":\"google-gemini\",\"task_type\":\"object-detection\"}" TAIL("$steps.v.predictions"),
          params, im);
    json_decref(params);
    json_decref(g_resp);
    vis_image_free(im);
    return 0;
}
