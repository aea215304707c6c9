/*
 * test_workflow_fake.h — test-only helpers for the workflow tests: synthetic
 * images and a FAKE model provider whose predictions are derived
 * deterministically from image content (never used outside tests).
 *
 * Fake detection model: for an image it finds the bounding box of the
 * pixels whose first channel is >= 200 ("bright", class_id 0, confidence
 * 0.9) and always adds a box at the centre quarter of the image ("thing",
 * class_id 1, confidence 0.5).  Boxes below the requested confidence are
 * dropped.  Segmentation adds the 4 corners of each box as polygon points;
 * keypoints add one keypoint at the box centre.  Classification: "bright"
 * (0.8) when the mean of the first channel is >= 128, else "dark" (0.7);
 * below the requested confidence the result has no class (top "").
 */
#ifndef TEST_WORKFLOW_FAKE_H
#define TEST_WORKFLOW_FAKE_H

#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "workflow/workflow.h"

static int fake_calls; /* how many provider calls were made */

static __attribute__((unused)) struct vis_image *img_new(int w, int h, uint8_t v)
{
    struct vis_image *im = vis_image_new(w, h, VIS_BGR);
    memset(im->px, v, (size_t)im->stride * (size_t)h);
    return im;
}

static __attribute__((unused)) void img_rect(struct vis_image *im, int x1, int y1, int x2, int y2, uint8_t v)
{
    for (int y = y1; y < y2; y++)
        for (int x = x1; x < x2; x++)
            memset(vis_px(im, x, y), v, (size_t)im->fmt);
}

static __attribute__((unused)) json_t *fake_box(double x1, double y1, double x2, double y2, double conf, const char *cls,
                        int cid, const char *task)
{
    json_t *p = json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x", (x1 + x2) / 2, "y",
                          (y1 + y2) / 2, "width", x2 - x1, "height", y2 - y1, "confidence", conf,
                          "class", cls, "class_id", cid);
    if (!strcmp(task, "instance-segmentation"))
        json_object_set_new(p, "points",
                            json_pack("[{s:f,s:f},{s:f,s:f},{s:f,s:f},{s:f,s:f}]", "x", x1, "y",
                                      y1, "x", x2, "y", y1, "x", x2, "y", y2, "x", x1, "y", y2));
    if (!strcmp(task, "keypoint-detection"))
        json_object_set_new(p, "keypoints",
                            json_pack("[{s:f,s:f,s:f,s:i,s:s}]", "x", (x1 + x2) / 2, "y",
                                      (y1 + y2) / 2, "confidence", 0.95, "class_id", 0, "class",
                                      "nose"));
    return p;
}

static __attribute__((unused)) int fake_infer(void *ud, const struct wf_model_request *req,
                      const struct vis_image *const *images, size_t n, json_t **out, char *err,
                      size_t errlen)
{
    double thr = 0.0;
    const json_t *c = json_object_get(req->params, "confidence");
    (void)ud;
    __atomic_fetch_add(&fake_calls, 1, __ATOMIC_RELAXED);
    if (!strcmp(req->model_id, "broken/1")) {
        snprintf(err, errlen, "model not found");
        return ERR_NOTFOUND;
    }
    if (json_is_number(c))
        thr = json_number_value(c);
    for (size_t i = 0; i < n; i++) {
        const struct vis_image *im = images[i];
        json_t *r = json_object();
        json_object_set_new(r, "image", json_pack("{s:i,s:i}", "width", im->w, "height", im->h));
        if (!strcmp(req->task, "classification") ||
            !strcmp(req->task, "multi-label-classification")) {
            double sum = 0;
            for (int y = 0; y < im->h; y++)
                for (int x = 0; x < im->w; x++)
                    sum += vis_px(im, x, y)[0];
            bool bright = sum / ((double)im->w * im->h) >= 128;
            if (!strcmp(req->task, "classification")) {
                double cf = bright ? 0.8 : 0.7;
                bool kept = cf >= thr; /* below the threshold: no class, top "" */
                json_object_set_new(r, "predictions",
                                    kept ? json_pack("[{s:s,s:i,s:f}]", "class",
                                                     bright ? "bright" : "dark", "class_id",
                                                     bright ? 0 : 1, "confidence", cf)
                                         : json_array());
                json_object_set_new(r, "top", json_string(kept ? (bright ? "bright" : "dark") : ""));
                json_object_set_new(r, "confidence", json_real(kept ? cf : 0.0));
            } else {
                json_object_set_new(r, "predictions",
                                    json_pack("{s:{s:f,s:i}}", bright ? "bright" : "dark",
                                              "confidence", 0.9, "class_id", bright ? 0 : 1));
                json_object_set_new(r, "predicted_classes",
                                    json_pack("[s]", bright ? "bright" : "dark"));
            }
            out[i] = r;
            continue;
        }
        json_t *preds = json_array();
        int bx1 = im->w, by1 = im->h, bx2 = -1, by2 = -1;
        for (int y = 0; y < im->h; y++)
            for (int x = 0; x < im->w; x++)
                if (vis_px(im, x, y)[0] >= 200) {
                    bx1 = MIN(bx1, x), by1 = MIN(by1, y);
                    bx2 = MAX(bx2, x + 1), by2 = MAX(by2, y + 1);
                }
        if (bx2 >= 0 && 0.9 >= thr)
            json_array_append_new(preds, fake_box(bx1, by1, bx2, by2, 0.9, "bright", 0, req->task));
        if (0.5 >= thr)
            json_array_append_new(preds, fake_box(im->w / 4.0, im->h / 4.0, im->w * 0.75,
                                                  im->h * 0.75, 0.5, "thing", 1, req->task));
        json_object_set_new(r, "predictions", preds);
        out[i] = r;
    }
    return 0;
}

static const struct wf_env fake_env = {fake_infer, NULL, 90, NULL, NULL};

static __attribute__((unused)) json_t *load_json_file(const char *name)
{
    static const char *const dirs[] = {"../shared/workflows", "/work/shared/workflows"};
    char path[512];
    for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
        json_error_t je;
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        json_t *j = json_load_file(path, 0, &je);
        if (j)
            return j;
    }
    return NULL;
}

/* Compile text or abort the test with the compiler's message. */
static __attribute__((unused)) struct wf_workflow *compile_or_die(const char *text)
{
    struct wf_workflow *wf = NULL;
    char err[512];
    if (wf_compile_text(text, strlen(text), &wf, err, sizeof err) < 0) {
        fprintf(stderr, "compile failed: %s\n", err);
        exit(1);
    }
    return wf;
}

/* Run wf on one image, return results[0] (new ref) or abort with message. */
static __attribute__((unused)) json_t *run1(const struct wf_workflow *wf, struct vis_image *im, const json_t *params)
{
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, params};
    json_t *res = NULL, *r0;
    char err[512];
    if (wf_run(wf, &fake_env, &in, &res, err, sizeof err) < 0) {
        fprintf(stderr, "run failed: %s\n", err);
        exit(1);
    }
    r0 = json_incref(json_array_get(res, 0));
    json_decref(res);
    return r0;
}

/* Expect compilation to fail with a message containing 'needle'. */
static __attribute__((unused)) void expect_compile_error(const char *text, const char *needle)
{
    struct wf_workflow *wf = NULL;
    char err[512] = "";
    int rc = wf_compile_text(text, strlen(text), &wf, err, sizeof err);
    if (rc >= 0) {
        wf_free(wf);
        fprintf(stderr, "expected compile error containing '%s', compiled fine\n", needle);
        exit(1);
    }
    if (!strstr(err, needle)) {
        fprintf(stderr, "compile error '%s' does not contain '%s'\n", err, needle);
        exit(1);
    }
}

#endif
