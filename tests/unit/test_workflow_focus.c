/*
 * test_workflow_focus.c — camera_focus@v2 (blocks/cv_extra.c).  Expected
 * values come from test_workflow_focus_ref.h, which
 * test_workflow_focus_ref.py computed with python3-opencv 4.6 / numpy the
 * way roboflow/inference's camera_focus/v2.py does: the Tenengrad mean of
 * the image and of four boxes (inside, partly outside, outside except a
 * corner, empty), and the zebra + focus-peaking and centre + grid overlays
 * pixel for pixel.  The means are float32 values as numpy's; they must
 * agree to 1e-6 relative (numpy's exact float32 summation order over 2-D
 * slices is emulated, not guaranteed).
 */
#include "t.h"

#include <math.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/workflow.h"

#include "test_workflow_focus_ref.h"

static struct vis_image *source(void)
{
    struct vis_image *im = vis_image_new(FOCUS_W, FOCUS_H, VIS_BGR);
    for (int y = 0; y < FOCUS_H; y++)
        for (int x = 0; x < FOCUS_W; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t *p = vis_px(im, x, y) + c;
                *p = (uint8_t)(((x * 7 + y * 3 + c * 40) ^ ((x * y) / 5)) & 255);
                if (y >= 5 && y < 25 && x >= 5 && x < 30)
                    *p = 3;
                if (y >= 40 && y < 60 && x >= 60 && x < 90)
                    *p = 252;
                if (y >= 30 && y < 40 && x >= 10 && x < 40)
                    *p = (uint8_t)(*p / 4 + 100);
            }
    return im;
}

static int hexval(char ch) { return ch <= '9' ? ch - '0' : ch - 'a' + 10; }

static size_t count_diff(const struct vis_image *img, const char *ref)
{
    size_t n = (size_t)img->w * (size_t)img->h * 3, d = 0;
    ASSERT_EQ(strlen(ref), 2 * n);
    for (size_t i = 0; i < n; i++) {
        int r = hexval(ref[2 * i]) * 16 + hexval(ref[2 * i + 1]);
        d += img->px[(i / 3 / (size_t)img->w) * (size_t)img->stride + (i % (3 * (size_t)img->w))] != r;
    }
    return d;
}

TEST(tenengrad_and_overlays_match_opencv)
{
    struct vis_image *im = source(), *gray = cv__gray(im), *out = NULL;
    double focus = 0;
    float *fm = cv__tenengrad(gray, &focus);
    ASSERT(fm);
    ASSERT_NEAR(focus, FOCUS_VALUE, 1e-6 * FOCUS_VALUE);
    ASSERT_OK(cv__focus2_overlays(im, gray, fm, focus, 7, 247, CV_FOCUS_ZEBRA | CV_FOCUS_PEAKING,
                                  0, &out));
    ASSERT_EQ(count_diff(out, FOCUS_ZEBRA_PEAKING), 0);
    vis_image_free(out);
    ASSERT_OK(cv__focus2_overlays(im, gray, fm, focus, 7, 247, CV_FOCUS_CENTER, 3, &out));
    ASSERT_EQ(count_diff(out, FOCUS_LINES), 0);
    vis_image_free(out);
    free(fm);
    vis_image_free(gray);
    vis_image_free(im);
}

static int boxes_infer(void *ud, const struct wf_model_request *req,
                       const struct vis_image *const *images, size_t n, json_t **out, char *err,
                       size_t errlen)
{
    (void)ud, (void)req, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        json_t *ps = json_array();
        for (size_t k = 0; k < ARRAY_LEN(FOCUS_BOXES); k++) {
            const double *b = FOCUS_BOXES[k];
            json_array_append_new(ps, json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x",
                                                (b[0] + b[2]) / 2, "y", (b[1] + b[3]) / 2, "width",
                                                b[2] - b[0], "height", b[3] - b[1], "confidence",
                                                0.9, "class", "a", "class_id", 0));
        }
        out[i] = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height",
                           images[i]->h, "predictions", ps);
    }
    return 0;
}

static int run_focus(const char *extra, json_t **row, char *err, size_t errlen)
{
    char *def = xasprintf(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\","
        "\"name\":\"m\",\"images\":\"$inputs.image\",\"model_id\":\"od/1\"},"
        "{\"type\":\"roboflow_core/camera_focus@v2\",\"name\":\"f\",\"image\":\"$inputs.image\","
        "\"detections\":\"$steps.m.predictions\"%s}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"v\",\"selector\":\"$steps.f.focus_measure\"},"
        "{\"type\":\"JsonField\",\"name\":\"b\",\"selector\":\"$steps.f.bbox_focus_measures\"},"
        "{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.f.image\"}]}",
        extra);
    struct wf_workflow *wf = NULL;
    int rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    free(def);
    if (rc < 0)
        return rc;
    struct vis_image *im = source();
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {boxes_infer, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    rc = wf_run(wf, &env, &in, &res, err, errlen);
    if (rc == 0)
        *row = json_incref(json_array_get(res, 0));
    json_decref(res);
    vis_image_free(im);
    wf_free(wf);
    return rc;
}

TEST(camera_focus_v2_outputs_as_roboflow)
{
    char err[512];
    json_t *row = NULL;
    if (run_focus("", &row, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT_NEAR(json_number_value(json_object_get(row, "v")), FOCUS_VALUE, 1e-6 * FOCUS_VALUE);
    const json_t *b = json_object_get(row, "b");
    ASSERT_EQ(json_array_size(b), ARRAY_LEN(FOCUS_BOXES));
    for (size_t k = 0; k < ARRAY_LEN(FOCUS_BOXES); k++) {
        double want = FOCUS_BOXES[k][4];
        const json_t *v = json_array_get(b, k);
        if (want < 0)
            ASSERT(json_is_null(v));
        else
            ASSERT_NEAR(json_number_value(v), want, 1e-6 * want);
    }
    /* every overlay (HUD included) on: an image of the input's size */
    const char *b64 = json_string_value(json_object_get(json_object_get(row, "img"), "value"));
    ASSERT(b64);
    size_t len;
    uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
    struct vis_image *dec = NULL;
    ASSERT_OK(vis_decode(jpg, len, &dec));
    ASSERT_EQ(dec->w, FOCUS_W);
    ASSERT_EQ(dec->h, FOCUS_H);
    vis_image_free(dec);
    free(jpg);
    json_decref(row);
    /* every overlay off: the input image itself (no re-encoding of pixels) */
    row = NULL;
    ASSERT_OK(run_focus(",\"show_zebra_warnings\":false,\"show_hud\":false,"
                        "\"show_focus_peaking\":false,\"show_center_marker\":false,"
                        "\"grid_overlay\":\"None\"",
                        &row, err, sizeof err));
    ASSERT(json_is_object(json_object_get(row, "img")));
    json_decref(row);
    /* bad settings */
    ASSERT(run_focus(",\"underexposed_threshold_percent\":150", &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "step 'f'") && strstr(err, "0..100"));
    ASSERT(run_focus(",\"grid_overlay\":\"7x7\"", &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "grid_overlay"));
    ASSERT(run_focus(",\"show_hud\":\"$inputs.image\"", &row, err, sizeof err) < 0);
}

TEST_MAIN()
