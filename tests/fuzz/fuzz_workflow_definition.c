/*
 * fuzz_workflow_definition.c — libFuzzer target over workflow definitions:
 * every input is compiled; a definition that compiles is also run once on
 * a small synthetic image with a test-only fake model provider (boxes
 * derived from the image size), and its first result is turned into a row.
 * Nothing may crash, hang or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "workflow/workflow.h"

static int fuzz_infer(void *ud, const struct wf_model_request *req,
                      const struct vis_image *const *images, size_t n, json_t **out, char *err,
                      size_t errlen)
{
    (void)ud;
    (void)err;
    (void)errlen;
    for (size_t i = 0; i < n; i++) {
        int w = images[i]->w, h = images[i]->h;
        if (strstr(req->task, "classification"))
            out[i] = json_pack("{s:{s:i,s:i},s:[{s:s,s:i,s:f}],s:s,s:f}", "image", "width", w,
                               "height", h, "predictions", "class", "a", "class_id", 0,
                               "confidence", 0.9, "top", "a", "confidence", 0.9);
        else {
            json_t *p = json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x", w / 2.0, "y", h / 2.0,
                                  "width", w / 2.0, "height", h / 2.0, "confidence", 0.8, "class",
                                  "a", "class_id", 0);
            if (!strcmp(req->task, "instance-segmentation"))
                json_object_set_new(p, "points",
                                    json_pack("[{s:f,s:f},{s:f,s:f},{s:f,s:f}]", "x", 1.0, "y", 1.0,
                                              "x", w - 1.0, "y", 1.0, "x", w / 2.0, "y", h - 1.0));
            if (!strcmp(req->task, "keypoint-detection"))
                json_object_set_new(p, "keypoints",
                                    json_pack("[{s:f,s:f,s:f,s:i,s:s}]", "x", 2.0, "y", 2.0,
                                              "confidence", 0.5, "class_id", 0, "class", "k"));
            out[i] = json_pack("{s:{s:i,s:i},s:[o]}", "image", "width", w, "height", h,
                               "predictions", p);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wf_workflow *wf = NULL;
    char err[512];
    if (size > 1 << 16)
        return 0;
    if (wf_compile_text((const char *)data, size, &wf, err, sizeof err) < 0)
        return 0;
    struct vis_image *im = vis_image_new(48, 32, VIS_BGR);
    if (im) {
        memset(im->px, 90, (size_t)im->stride * 32);
        const struct vis_image *imgs[1] = {im};
        struct wf_image_input ii = {wf_image_input_count(wf) ? wf_image_input_name(wf, 0) : "image",
                                    imgs, 1, false, NULL};
        struct wf_run_inputs in = {&ii, 1, NULL};
        struct wf_env env = {fuzz_infer, NULL, 50, NULL, NULL};
        json_t *res = NULL;
        if (wf_run(wf, &env, &in, &res, err, sizeof err) == 0) {
            json_t *row = NULL;
            struct wf_image_output *imgs_out = NULL;
            size_t nimg = 0;
            if (json_array_size(res) &&
                wf_result_row(json_array_get(res, 0), &row, &imgs_out, &nimg) == 0) {
                json_decref(row);
                wf_image_outputs_free(imgs_out, nimg);
            }
            json_decref(res);
        }
        vis_image_free(im);
    }
    wf_free(wf);
    return 0;
}
