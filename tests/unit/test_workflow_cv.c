/*
 * test_workflow_cv.c — the classical CV blocks, run through the engine.
 *
 * Each test runs "<cv step> -> capture" where the capture step is a model
 * step whose test provider keeps a copy of the image it receives, so the
 * exact output pixels of the block are checked (no JPEG in between)
 * against hand-computed values.  The local primitives (cv_int.h) are also
 * tested directly.
 */
#include "t.h"
#include "test_workflow_fake.h"

#include <math.h>

#include "workflow/blocks/cv_int.h"

static struct vis_image *g_cap;

static int cap_infer(void *ud, const struct wf_model_request *req,
                     const struct vis_image *const *images, size_t n, json_t **out, char *err,
                     size_t errlen)
{
    (void)ud, (void)req, (void)err, (void)errlen;
    for (size_t i = 0; i < n; i++) {
        vis_image_free(g_cap);
        g_cap = vis_image_clone(images[i]);
        out[i] = json_pack("{s:{s:i,s:i},s:[]}", "image", "width", images[i]->w, "height",
                           images[i]->h, "predictions");
    }
    return 0;
}

static const struct wf_env cap_env = {cap_infer, NULL, 95, NULL, NULL};

/* Run "<step> -> capture"; out is the step's image output name. */
static int run_cv(const char *step, const char *out, const struct vis_image *im, char *err,
                  size_t errlen)
{
    char def[4096];
    struct wf_workflow *wf = NULL;
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *res = NULL;
    int rc;
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"name\":\"cv\",\"image\":\"$inputs.image\",%s},"
             "{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"cap\","
             "\"images\":\"$steps.cv.%s\",\"model_id\":\"capture/1\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.cv.%s\"}]}",
             step, out, out);
    if ((rc = wf_compile_text(def, strlen(def), &wf, err, errlen)) < 0)
        return rc;
    vis_image_free(g_cap);
    g_cap = NULL;
    rc = wf_run(wf, &cap_env, &in, &res, err, errlen);
    if (rc == 0 && !json_is_object(json_object_get(json_array_get(res, 0), "o")))
        rc = ERR_INTERNAL, snprintf(err, errlen, "no serialized image output");
    json_decref(res);
    wf_free(wf);
    return rc;
}

static void cv_ok(const char *step, const char *out, const struct vis_image *im)
{
    char err[512] = "";
    if (run_cv(step, out, im, err, sizeof err) < 0)
        T_FAIL("run failed: %s", err);
    ASSERT(g_cap != NULL);
}

static void cv_err(const char *step, const char *out, const struct vis_image *im,
                   const char *needle)
{
    char err[512] = "";
    if (run_cv(step, out, im, err, sizeof err) == 0)
        T_FAIL("expected an error containing '%s'", needle);
    if (!strstr(err, needle))
        T_FAIL("error '%s' does not contain '%s'", err, needle);
}

static struct vis_image *gray_new(int w, int h, uint8_t v)
{
    struct vis_image *im = vis_image_new(w, h, VIS_GRAY);
    memset(im->px, v, (size_t)im->stride * h);
    return im;
}

/* Left half a, right half b. */
static struct vis_image *two_tone(int w, int h, enum vis_fmt fmt, uint8_t a, uint8_t b)
{
    struct vis_image *im = vis_image_new(w, h, fmt);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memset(vis_px(im, x, y), x < w / 2 ? a : b, (size_t)fmt);
    return im;
}

#define G(im, x, y) ((int)vis_px((im), (x), (y))[0])

/* ---- convert_grayscale ---------------------------------------------------------------- */

TEST(grayscale)
{
    struct vis_image *im = vis_image_new(4, 3, VIS_BGR);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++) {
            uint8_t *p = vis_px(im, x, y);
            p[0] = 10, p[1] = 20, p[2] = 30;
        }
    vis_px(im, 1, 1)[0] = 255, vis_px(im, 1, 1)[1] = 255, vis_px(im, 1, 1)[2] = 255;
    cv_ok("\"type\":\"roboflow_core/convert_grayscale@v1\"", "warped_image", im);
    ASSERT_EQ(g_cap->fmt, VIS_GRAY);
    ASSERT_EQ(g_cap->w, 4);
    /* 0.114 * 10 + 0.587 * 20 + 0.299 * 30 = 21.85 */
    ASSERT_EQ(G(g_cap, 0, 0), 22);
    ASSERT_EQ(G(g_cap, 1, 1), 255);
    vis_image_free(im);
}

/* ---- threshold -------------------------------------------------------------------------- */

TEST(threshold_types)
{
    struct vis_image *im = gray_new(4, 1, 0);
    im->px[0] = 100, im->px[1] = 127, im->px[2] = 128, im->px[3] = 200;
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":127", "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 0), 0);
    ASSERT_EQ(G(g_cap, 1, 0), 0); /* v > t, not >= */
    ASSERT_EQ(G(g_cap, 2, 0), 255);
    ASSERT_EQ(G(g_cap, 3, 0), 255);
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":127,"
          "\"threshold_type\":\"binary_inv\",\"max_value\":9",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 0), 9);
    ASSERT_EQ(G(g_cap, 3, 0), 0);
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":150,"
          "\"threshold_type\":\"trunc\"",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 0), 100);
    ASSERT_EQ(G(g_cap, 3, 0), 150);
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":127,"
          "\"threshold_type\":\"tozero\"",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 0), 0);
    ASSERT_EQ(G(g_cap, 2, 0), 128);
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":127,"
          "\"threshold_type\":\"tozero_inv\"",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 0), 100);
    ASSERT_EQ(G(g_cap, 3, 0), 0);
    vis_image_free(im);
}

TEST(threshold_otsu_and_adaptive)
{
    struct vis_image *im = two_tone(20, 10, VIS_GRAY, 40, 180), *bgr;
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":0,\"threshold_type\":\"otsu\"",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 0), 0);
    ASSERT_EQ(G(g_cap, 19, 9), 255);
    /* adaptive mean, 11x11, C = 2: uniform areas are >= mean - 2 -> max;
     * right next to the dark side the mean rises above the dark pixels */
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":0,"
          "\"threshold_type\":\"adaptive_mean\"",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 5), 255);  /* far from the edge: v - mean = 0 > -2 */
    ASSERT_EQ(G(g_cap, 9, 5), 0);    /* dark pixel next to the bright half */
    ASSERT_EQ(G(g_cap, 10, 5), 255); /* bright pixel next to the dark half */
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":0,"
          "\"threshold_type\":\"adaptive_gaussian\"",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 9, 5), 0);
    ASSERT_EQ(G(g_cap, 10, 5), 255);
    /* Otsu / adaptive on colour images fail as cv2 does */
    bgr = two_tone(20, 10, VIS_BGR, 40, 180);
    cv_err("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":0,\"threshold_type\":\"otsu\"",
           "warped_image", bgr, "single-channel");
    /* binary on BGR thresholds every channel */
    cv_ok("\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":100", "warped_image", bgr);
    ASSERT_EQ(g_cap->fmt, VIS_BGR);
    ASSERT_EQ(vis_px(g_cap, 15, 0)[2], 255);
    ASSERT_EQ(vis_px(g_cap, 1, 0)[1], 0);
    vis_image_free(bgr);
    vis_image_free(im);
}

/* ---- contrast_equalization --------------------------------------------------------------- */

TEST(equalization_two_values)
{
    struct vis_image *im = two_tone(10, 10, VIS_GRAY, 50, 100);
    /* skimage: 50 falls in the first bin (cdf 0.5 -> 127), 100 in the last (cdf 1 -> 255) */
    cv_ok("\"type\":\"roboflow_core/contrast_equalization@v1\"", "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 0), 127);
    ASSERT_EQ(G(g_cap, 9, 9), 255);
    /* stretching: p2 = 50, p98 = 100 -> 0 and 255 */
    cv_ok("\"type\":\"roboflow_core/contrast_equalization@v1\","
          "\"equalization_type\":\"Contrast Stretching\"",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 0, 0), 0);
    ASSERT_EQ(G(g_cap, 9, 9), 255);
    vis_image_free(im);
    /* adaptive (CLAHE approximation): the order of tones is kept, colour ratios too */
    im = two_tone(64, 64, VIS_BGR, 50, 100);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            vis_px(im, x, y)[0] /= 2; /* blue at half of red/green */
    cv_ok("\"type\":\"roboflow_core/contrast_equalization@v1\","
          "\"equalization_type\":\"Adaptive Equalization\"",
          "warped_image", im);
    ASSERT_EQ(g_cap->w, 64);
    ASSERT(vis_px(g_cap, 60, 32)[2] > vis_px(g_cap, 3, 32)[2]);
    ASSERT_NEAR(vis_px(g_cap, 60, 32)[0] * 2, vis_px(g_cap, 60, 32)[2], 2);
    vis_image_free(im);
}

TEST(equalization_flattens_histogram)
{
    /* a ramp squeezed into 100..139: equalization spreads it over ~0..255,
     * monotonically, and the output histogram's cumulative share is close
     * to linear */
    struct vis_image *im = vis_image_new(64, 64, VIS_BGR), *eq = NULL;
    unsigned long hist[256] = {0}, acc = 0;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            memset(vis_px(im, x, y), 100 + (x * 64 + y) * 40 / 4096, 3);
    eq = vis_image_clone(im);
    ASSERT_OK(cv__equalize_hist_sk(eq));
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            hist[vis_px(eq, x, y)[0]]++;
    ASSERT_GE(vis_px(eq, 63, 63)[0], 250);
    ASSERT_LE(vis_px(eq, 0, 0)[0], 10);
    for (int v = 0; v < 256; v++) {
        acc += hist[v];
        /* cdf(v) ~ (v + 1) / 256 within 4% */
        ASSERT_NEAR((double)acc / 4096.0, (v + 1) / 256.0, 0.04);
    }
    for (int x = 1; x < 64; x++)
        ASSERT_GE(vis_px(eq, x, 0)[0], vis_px(eq, x - 1, 0)[0]);
    vis_image_free(eq);
    vis_image_free(im);
}

TEST(percentile_matches_numpy)
{
    unsigned long hist[256] = {0};
    /* data 1, 2, 3, 4: numpy.percentile 25 -> 1.75, 50 -> 2.5, 98 -> 3.94 */
    hist[1] = hist[2] = hist[3] = hist[4] = 1;
    ASSERT_NEAR(cv__percentile(hist, 4, 25), 1.75, 1e-9);
    ASSERT_NEAR(cv__percentile(hist, 4, 50), 2.5, 1e-9);
    ASSERT_NEAR(cv__percentile(hist, 4, 98), 3.94, 1e-9);
    ASSERT_NEAR(cv__percentile(hist, 4, 0), 1, 1e-9);
    ASSERT_NEAR(cv__percentile(hist, 4, 100), 4, 1e-9);
}

/* ---- contrast_enhancement ------------------------------------------------------------------ */

TEST(contrast_enhancement)
{
    struct vis_image *im = two_tone(10, 4, VIS_BGR, 50, 100), *flat = gray_new(5, 5, 77);
    cv_ok("\"type\":\"roboflow_core/contrast_enhancement@v1\"", "image", im);
    ASSERT_EQ(vis_px(g_cap, 0, 0)[0], 0);
    ASSERT_EQ(vis_px(g_cap, 9, 0)[2], 255);
    /* contrast 0.5 around 128: 0 -> 64, 255 -> 191.5 -> 191 */
    cv_ok("\"type\":\"roboflow_core/contrast_enhancement@v1\",\"contrast_multiplier\":0.5",
          "image", im);
    ASSERT_EQ(vis_px(g_cap, 0, 0)[1], 64);
    ASSERT_EQ(vis_px(g_cap, 9, 0)[1], 191);
    /* gamma 1/1.3: 64/255 -> (0.251)^0.769 * 255 = 88.x */
    cv_ok("\"type\":\"roboflow_core/contrast_enhancement@v1\",\"contrast_multiplier\":0.5,"
          "\"normalize_brightness\":true",
          "image", im);
    ASSERT_NEAR(vis_px(g_cap, 0, 0)[1], 88.5, 1);
    /* a flat gray image is returned unchanged */
    cv_ok("\"type\":\"roboflow_core/contrast_enhancement@v1\"", "image", flat);
    ASSERT_EQ(g_cap->fmt, VIS_GRAY);
    ASSERT_EQ(G(g_cap, 2, 2), 77);
    cv_err("\"type\":\"roboflow_core/contrast_enhancement@v1\",\"clip_limit\":101", "image", im,
           "clip_limit");
    vis_image_free(flat);
    vis_image_free(im);
}

/* ---- morphology ------------------------------------------------------------------------------ */

static struct vis_image *dot_image(enum vis_fmt fmt)
{
    struct vis_image *im = vis_image_new(7, 7, fmt);
    memset(vis_px(im, 3, 3), 255, (size_t)fmt);
    return im;
}

static int count_white(const struct vis_image *im)
{
    int n = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            n += vis_px(im, x, y)[0] == 255;
    return n;
}

TEST(morphology_tiny_image)
{
    struct vis_image *im = dot_image(VIS_BGR), *ring;
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v1\",\"kernel_size\":3,"
          "\"operation\":\"Dilation\"",
          "warped_image", im);
    ASSERT_EQ(g_cap->fmt, VIS_GRAY); /* v1 converts to grayscale */
    ASSERT_EQ(count_white(g_cap), 9);
    ASSERT_EQ(G(g_cap, 2, 2), 255);
    ASSERT_EQ(G(g_cap, 4, 4), 255);
    ASSERT_EQ(G(g_cap, 1, 3), 0);
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v1\",\"kernel_size\":3,"
          "\"operation\":\"Erosion\"",
          "warped_image", im);
    ASSERT_EQ(count_white(g_cap), 0);
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v1\",\"kernel_size\":3,"
          "\"operation\":\"Opening\"",
          "warped_image", im);
    ASSERT_EQ(count_white(g_cap), 0);
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v1\",\"kernel_size\":3,"
          "\"operation\":\"Top Hat\"",
          "warped_image", im);
    ASSERT_EQ(count_white(g_cap), 1); /* image - opening = the dot */
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v1\",\"kernel_size\":3,"
          "\"operation\":\"Gradient\"",
          "warped_image", im);
    ASSERT_EQ(count_white(g_cap), 9); /* dilation - erosion */
    /* closing fills a one-pixel hole in a white square */
    ring = vis_image_new(9, 9, VIS_BGR);
    for (int y = 2; y < 7; y++)
        for (int x = 2; x < 7; x++)
            memset(vis_px(ring, x, y), 255, 3);
    memset(vis_px(ring, 4, 4), 0, 3);
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v1\",\"kernel_size\":3", /* Closing */
          "warped_image", ring);
    ASSERT_EQ(G(g_cap, 4, 4), 255);
    ASSERT_EQ(count_white(g_cap), 25);
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v1\",\"kernel_size\":3,"
          "\"operation\":\"Black Hat\"",
          "warped_image", ring);
    ASSERT_EQ(count_white(g_cap), 1); /* closing - image = the hole */
    /* v2 keeps colour, and its default opening-then-closing removes the dot */
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v2\",\"kernel_size\":3",
          "warped_image", im);
    ASSERT_EQ(g_cap->fmt, VIS_BGR);
    ASSERT_EQ(count_white(g_cap), 0);
    cv_ok("\"type\":\"roboflow_core/morphological_transformation@v2\",\"kernel_size\":3,"
          "\"operation\":\"Dilation\"",
          "warped_image", im);
    ASSERT_EQ(count_white(g_cap), 9);
    cv_err("\"type\":\"roboflow_core/morphological_transformation@v2\",\"kernel_size\":0",
           "warped_image", im, "kernel_size");
    vis_image_free(ring);
    vis_image_free(im);
}

/* ---- image_blur -------------------------------------------------------------------------- */

TEST(image_blur_kinds)
{
    struct vis_image *im = vis_image_new(9, 9, VIS_GRAY), *flat = vis_image_new(9, 9, VIS_BGR);
    int sum = 0;
    *vis_px(im, 4, 4) = 255;
    cv_ok("\"type\":\"roboflow_core/image_blur@v1\",\"blur_type\":\"average\",\"kernel_size\":3",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 4, 4), 28); /* 255 / 9 = 28.3 */
    ASSERT_EQ(G(g_cap, 3, 3), 28);
    ASSERT_EQ(G(g_cap, 2, 2), 0);
    cv_ok("\"type\":\"roboflow_core/image_blur@v1\",\"kernel_size\":4", "warped_image", im);
    /* gaussian, 4 -> 5, sigma 1.1: symmetric, peak at the centre, mass kept */
    ASSERT_EQ(G(g_cap, 3, 4), G(g_cap, 5, 4));
    ASSERT_EQ(G(g_cap, 4, 3), G(g_cap, 4, 5));
    ASSERT(G(g_cap, 4, 4) > G(g_cap, 3, 4));
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++)
            sum += G(g_cap, x, y);
    ASSERT_NEAR(sum, 255, 12);
    cv_ok("\"type\":\"roboflow_core/image_blur@v1\",\"blur_type\":\"median\",\"kernel_size\":3",
          "warped_image", im);
    ASSERT_EQ(G(g_cap, 4, 4), 0);
    /* bilateral keeps flat areas and strong edges */
    vis_image_fill(flat, VIS_RGB(30, 60, 90));
    cv_ok("\"type\":\"roboflow_core/image_blur@v1\",\"blur_type\":\"bilateral\"", "warped_image",
          flat);
    ASSERT_EQ(vis_px(g_cap, 4, 4)[0], 90);
    ASSERT_EQ(vis_px(g_cap, 0, 8)[2], 30);
    {
        /* strong edges survive (colour weight exp(-(3*140)^2 / (2*75^2)) ~ 1e-7),
         * small differences are averaged: 100 next to 106 moves towards 103 */
        struct vis_image *edge = two_tone(12, 6, VIS_BGR, 40, 180), *out = NULL;
        ASSERT_OK(cv__bilateral(edge, 5, 75, 75, &out));
        ASSERT_EQ(memcmp(out->px, edge->px, (size_t)edge->stride * edge->h), 0);
        vis_image_free(out);
        vis_image_free(edge);
        edge = two_tone(12, 6, VIS_GRAY, 100, 106);
        ASSERT_OK(cv__bilateral(edge, 5, 75, 75, &out));
        ASSERT(*vis_px(out, 5, 3) > 100 && *vis_px(out, 5, 3) < 104);
        ASSERT(*vis_px(out, 6, 3) > 102 && *vis_px(out, 6, 3) < 106);
        ASSERT_EQ(*vis_px(out, 0, 3), 100);
        vis_image_free(out);
        vis_image_free(edge);
    }
    cv_err("\"type\":\"roboflow_core/image_blur@v1\",\"blur_type\":\"bilateral\",\"kernel_size\":33",
           "warped_image", flat, "too large");
    vis_image_free(flat);
    vis_image_free(im);
}

/* ---- image_preprocessing ----------------------------------------------------------------- */

TEST(preprocessing_resize_flip_rotate)
{
    struct vis_image *im = vis_image_new(100, 80, VIS_BGR);
    vis_image_fill(im, VIS_RGB(10, 10, 10));
    memset(vis_px(im, 30, 10), 200, 3);
    memset(vis_px(im, 0, 0), 100, 3);
    cv_ok("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"resize\","
          "\"width\":50,\"height\":null",
          "image", im);
    ASSERT_EQ(g_cap->w, 50);
    ASSERT_EQ(g_cap->h, 40);
    cv_ok("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"resize\"", "image",
          im);
    ASSERT_EQ(g_cap->w, 640);
    ASSERT_EQ(g_cap->h, 640);
    cv_ok("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"flip\","
          "\"flip_type\":\"horizontal\"",
          "image", im);
    ASSERT_EQ(vis_px(g_cap, 99, 0)[0], 100);
    ASSERT_EQ(vis_px(g_cap, 69, 10)[0], 200);
    cv_ok("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"flip\"", "image",
          im);
    ASSERT_EQ(vis_px(g_cap, 0, 79)[0], 100); /* vertical by default */
    cv_ok("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"flip\","
          "\"flip_type\":\"both\"",
          "image", im);
    ASSERT_EQ(vis_px(g_cap, 99, 79)[0], 100);
    /* rotate 90 (counter-clockwise) about (50, 40): 100x80 -> 80x100,
     * dst(x, y) = src(100 - y, x); row 0 samples column 100 = outside -> black */
    cv_ok("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"rotate\"", "image",
          im);
    ASSERT_EQ(g_cap->w, 80);
    ASSERT_EQ(g_cap->h, 100);
    ASSERT_EQ(vis_px(g_cap, 10, 70)[0], 200);
    ASSERT_EQ(vis_px(g_cap, 5, 50)[0], 10);
    ASSERT_EQ(vis_px(g_cap, 5, 0)[0], 0);
    /* rotate 45: the canvas grows to int(80 sin + 100 cos) = 127 both ways */
    cv_ok("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"rotate\","
          "\"rotation_degrees\":45",
          "image", im);
    ASSERT_EQ(g_cap->w, 127);
    ASSERT_EQ(g_cap->h, 127);
    ASSERT_EQ(vis_px(g_cap, 63, 63)[0], 10);
    ASSERT_EQ(vis_px(g_cap, 0, 0)[0], 0);
    cv_err("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"rotate\","
           "\"rotation_degrees\":400",
           "image", im, "between -360 and 360");
    cv_err("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"resize\","
           "\"width\":100000,\"height\":100000",
           "image", im, "out of bounds");
    /* found by fuzzing: a huge width with height null overflowed an int cast */
    cv_err("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"resize\","
           "\"width\":88888888888844,\"height\":null",
           "image", im, "out of bounds");
    cv_err("\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"zoom\"", "image", im,
           "task_type");
    vis_image_free(im);
}

TEST(rotate_full_turns_are_identity)
{
    struct vis_image *im = vis_image_new(6, 4, VIS_GRAY), *r = NULL;
    for (int i = 0; i < 24; i++)
        im->px[i] = (uint8_t)(i * 10);
    /* 360 degrees: cos = 1, sin ~ -2.4e-16 -> same size, same pixels */
    ASSERT_OK(cv__rotate(im, 360, &r));
    ASSERT_EQ(r->w, 6);
    ASSERT_EQ(r->h, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 6; x++)
            ASSERT_EQ(*vis_px(r, x, y), *vis_px(im, x, y));
    vis_image_free(r);
    vis_image_free(im);
}

TEST(box_blur_matches_reference)
{
    /* running-sum box blur vs vision's direct separable filter: same
     * cv2.blur semantics (anchor k/2, REFLECT_101), at most 1 apart */
    static const int ks[][2] = {{3, 3}, {4, 2}, {15, 15}, {1, 7}, {25, 3}};
    struct vis_image *im = vis_image_new(37, 23, VIS_BGR);
    unsigned seed = 12345;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w * 3; x++) {
            seed = seed * 1103515245u + 12345u;
            vis_px(im, 0, y)[x] = (uint8_t)(seed >> 16);
        }
    for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
        struct vis_image *a = vis_image_clone(im), *b = vis_image_clone(im);
        int kw = ks[k][0], kh = ks[k][1];
        ASSERT_OK(cv__box_blur(a, kw, kh));
        ASSERT_OK(vis_blur_box(b, kw, kh));
        for (int y = 0; y < im->h; y++)
            for (int x = 0; x < im->w; x++)
                for (int c = 0; c < 3; c++) {
                    /* brute force: cvRound(sum * (1 / area)), REFLECT_101 */
                    long sum = 0;
                    for (int dy = 0; dy < kh; dy++)
                        for (int dx = 0; dx < kw; dx++) {
                            int sx = x + dx - kw / 2, sy = y + dy - kh / 2;
                            while (sx < 0 || sx >= im->w)
                                sx = sx < 0 ? -sx : 2 * im->w - 2 - sx;
                            while (sy < 0 || sy >= im->h)
                                sy = sy < 0 ? -sy : 2 * im->h - 2 - sy;
                            sum += vis_px(im, sx, sy)[c];
                        }
                    ASSERT_EQ(vis_px(a, x, y)[c], lrint(sum * (1.0 / (kw * kh))));
                    ASSERT_NEAR(vis_px(a, x, y)[c], vis_px(b, x, y)[c], 1);
                }
        vis_image_free(a);
        vis_image_free(b);
    }
    ASSERT(cv__box_blur(im, 0, 3) < 0);
    {
        /* a large image takes the lookup-table path: same values as the small path */
        struct vis_image *big = vis_image_new(300, 200, VIS_GRAY);
        for (int i = 0; i < 300 * 200; i++)
            big->px[i] = (uint8_t)((i * 7919) >> 3);
        ASSERT_OK(cv__box_blur(big, 4, 4));
        /* interior pixels: the window is inside the image, window (-2..1) */
        {
            struct vis_image *ref = vis_image_new(300, 200, VIS_GRAY);
            for (int i = 0; i < 300 * 200; i++)
                ref->px[i] = (uint8_t)((i * 7919) >> 3);
            for (int y = 2; y < 198; y++)
                for (int x = 2; x < 298; x++) {
                    long sum = 0;
                    for (int dy = -2; dy < 2; dy++)
                        for (int dx = -2; dx < 2; dx++)
                            sum += *vis_px(ref, x + dx, y + dy);
                    ASSERT_EQ(*vis_px(big, x, y), lrint(sum * (1.0 / 16)));
                }
            vis_image_free(ref);
        }
        vis_image_free(big);
    }
    vis_image_free(im);
}

TEST(every_block_on_tiny_and_gray_images)
{
    static const struct {
        const char *step, *out;
    } cases[] = {
        {"\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"rotate\","
         "\"rotation_degrees\":-30", "image"},
        {"\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"resize\","
         "\"width\":3,\"height\":7", "image"},
        {"\"type\":\"roboflow_core/image_preprocessing@v1\",\"task_type\":\"flip\","
         "\"flip_type\":\"both\"", "image"},
        {"\"type\":\"roboflow_core/convert_grayscale@v1\"", "warped_image"},
        {"\"type\":\"roboflow_core/image_blur@v1\",\"blur_type\":\"average\",\"kernel_size\":50",
         "warped_image"},
        {"\"type\":\"roboflow_core/image_blur@v1\",\"kernel_size\":31", "warped_image"},
        {"\"type\":\"roboflow_core/image_blur@v1\",\"blur_type\":\"median\",\"kernel_size\":9",
         "warped_image"},
        {"\"type\":\"roboflow_core/image_blur@v1\",\"blur_type\":\"bilateral\",\"kernel_size\":9",
         "warped_image"},
        {"\"type\":\"roboflow_core/threshold@v1\",\"thresh_value\":5", "warped_image"},
        {"\"type\":\"roboflow_core/contrast_equalization@v1\"", "warped_image"},
        {"\"type\":\"roboflow_core/contrast_equalization@v1\","
         "\"equalization_type\":\"Contrast Stretching\"", "warped_image"},
        {"\"type\":\"roboflow_core/contrast_equalization@v1\","
         "\"equalization_type\":\"Adaptive Equalization\"", "warped_image"},
        {"\"type\":\"roboflow_core/contrast_enhancement@v1\",\"clip_limit\":10", "image"},
        {"\"type\":\"roboflow_core/morphological_transformation@v1\",\"kernel_size\":20",
         "warped_image"},
        {"\"type\":\"roboflow_core/morphological_transformation@v2\",\"kernel_size\":20",
         "warped_image"},
    };
    static const int sizes[][2] = {{1, 1}, {2, 1}, {5, 3}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (size_t z = 0; z < 3; z++)
            for (int g = 0; g < 2; g++) {
                struct vis_image *im =
                    vis_image_new(sizes[z][0], sizes[z][1], g ? VIS_GRAY : VIS_BGR);
                char err[512] = "";
                for (int i = 0; i < im->h * im->stride; i++)
                    im->px[i] = (uint8_t)(i * 37);
                if (run_cv(cases[k].step, cases[k].out, im, err, sizeof err) < 0)
                    T_FAIL("%s on %dx%d %s: %s", cases[k].step, im->w, im->h,
                           g ? "gray" : "bgr", err);
                ASSERT(g_cap != NULL && g_cap->w > 0 && g_cap->h > 0);
                vis_image_free(im);
            }
}

TEST(pixel_color_count)
{
    struct vis_image *im = vis_image_new(10, 10, VIS_BGR);
    static const char *const targets[] = {"\"#431112\"", "\"(67, 17, 18)\"", "[67, 17, 18]",
                                          "\"red\""};
    vis_image_fill(im, VIS_RGB(0x43, 0x11, 0x12)); /* R 67, G 17, B 18 */
    for (int x = 0; x < 10; x++) {
        vis_px(im, x, 0)[2] = 67 + 10; /* R at the tolerance edge: counted */
        vis_px(im, x, 1)[2] = 67 + 11; /* beyond: not counted */
        vis_px(im, x, 2)[0] = 18 - 10;
    }
    for (size_t k = 0; k < 4; k++) {
        char def[1024], err[512];
        struct wf_workflow *wf = NULL;
        const struct vis_image *imgs[1] = {im};
        struct wf_image_input ii = {"image", imgs, 1, false, NULL};
        struct wf_run_inputs in = {&ii, 1, NULL};
        json_t *res = NULL;
        snprintf(def, sizeof def,
                 "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
                 "\"steps\":[{\"type\":\"roboflow_core/pixel_color_count@v1\",\"name\":\"p\","
                 "\"image\":\"$inputs.image\",\"target_color\":%s}],"
                 "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"n\","
                 "\"selector\":\"$steps.p.matching_pixels_count\"}]}",
                 targets[k]);
        if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0)
            T_FAIL("compile: %s", err);
        if (k == 3) { /* not a supported colour form: a clean run error */
            ASSERT(wf_run(wf, &cap_env, &in, &res, err, sizeof err) < 0);
            ASSERT(strstr(err, "Invalid color") != NULL);
            wf_free(wf);
            continue;
        }
        if (wf_run(wf, &cap_env, &in, &res, err, sizeof err) < 0)
            T_FAIL("run %s: %s", targets[k], err);
        ASSERT_EQ(json_integer_value(json_object_get(json_array_get(res, 0), "n")), 90);
        json_decref(res);
        wf_free(wf);
    }
    vis_image_free(im);
}

TEST_MAIN()
