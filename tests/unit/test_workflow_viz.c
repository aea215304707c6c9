/*
 * test_workflow_viz.c — the visualization blocks, run through the engine.
 *
 * A test model provider returns the predictions the test sets (g_preds /
 * g_cls) for model "boxes/1" or "cls/1", and for model "capture/1" keeps a
 * copy of the image it receives.  A workflow "detect -> visualize ->
 * capture" therefore hands the test the exact pixels a visualization
 * produced (no JPEG in between), which are checked against hand-computed
 * expectations: palette colours, thickness, label rectangles, blends.
 */
#include "t.h"
#include "test_workflow_fake.h"

#include <math.h>

#include "workflow/blocks/viz_int.h"
#include "workflow/wf_int.h"

static json_t *g_preds;           /* predictions for "boxes/1" (borrowed by the provider) */
static json_t *g_cls;             /* response for "cls/1" */
static struct vis_image *g_cap;   /* last image given to "capture/1" */

static int test_infer(void *ud, const struct wf_model_request *req,
                      const struct vis_image *const *images, size_t n, json_t **out, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        json_t *r = NULL;
        if (!strcmp(req->model_id, "capture/1")) {
            vis_image_free(g_cap);
            g_cap = vis_image_clone(images[i]);
            r = json_pack("{s:{s:i,s:i},s:[]}", "image", "width", images[i]->w, "height",
                          images[i]->h, "predictions");
        } else if (!strcmp(req->model_id, "boxes/1")) {
            r = json_pack("{s:{s:i,s:i},s:o}", "image", "width", images[i]->w, "height",
                          images[i]->h, "predictions",
                          g_preds ? json_incref(g_preds) : json_array());
        } else if (!strcmp(req->model_id, "cls/1")) {
            r = json_deep_copy(g_cls);
        } else {
            return fake_infer(ud, req, images, n, out, err, errlen);
        }
        out[i] = r;
    }
    return 0;
}

static const struct wf_env test_env = {test_infer, NULL, 95, NULL, NULL};

/* A prediction in Roboflow's centre/size form from corner coordinates. */
static json_t *pred(double x1, double y1, double x2, double y2, const char *cls, int cid,
                    double conf)
{
    return json_pack("{s:f,s:f,s:f,s:f,s:f,s:s,s:i}", "x", (x1 + x2) / 2, "y", (y1 + y2) / 2,
                     "width", x2 - x1, "height", y2 - y1, "confidence", conf, "class", cls,
                     "class_id", cid);
}

static json_t *pred_poly(double x1, double y1, double x2, double y2, const char *cls, int cid)
{
    json_t *p = pred(x1, y1, x2, y2, cls, cid, 0.9);
    json_object_set_new(p, "points",
                        json_pack("[{s:f,s:f},{s:f,s:f},{s:f,s:f},{s:f,s:f}]", "x", x1, "y", y1,
                                  "x", x2, "y", y1, "x", x2, "y", y2, "x", x1, "y", y2));
    return p;
}

/*
 * Run "model (boxes/1 or cls/1) -> <step> -> capture" on im.  step is the
 * JSON of the visualization step without name/image/predictions.  Returns
 * 0 and the captured image in g_cap, or <0 with the run's message in err.
 */
static int run_step(const char *model_type, const char *model_id, const char *step,
                    struct vis_image *im, char *err, size_t errlen)
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
             "\"steps\":["
             "{\"type\":\"%s\",\"name\":\"m\",\"images\":\"$inputs.image\",\"model_id\":\"%s\"},"
             "{\"name\":\"viz\",\"image\":\"$inputs.image\",\"predictions\":\"$steps.m.predictions\","
             "%s},"
             "{\"type\":\"roboflow_core/roboflow_object_detection_model@v1\",\"name\":\"cap\","
             "\"images\":\"$steps.viz.image\",\"model_id\":\"capture/1\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.viz.image\"}]}",
             model_type, model_id, step);
    rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    if (rc < 0)
        return rc;
    vis_image_free(g_cap);
    g_cap = NULL;
    rc = wf_run(wf, &test_env, &in, &res, err, errlen);
    if (rc == 0) {
        /* the serialized output is a base64 JPEG of the same size */
        const json_t *o = json_object_get(json_array_get(res, 0), "o");
        if (!json_is_object(o) || strcmp(json_string_value(json_object_get(o, "type")), "base64"))
            rc = ERR_INTERNAL, snprintf(err, errlen, "output is not a serialized image");
    }
    json_decref(res);
    wf_free(wf);
    return rc;
}

#define OD "roboflow_core/roboflow_object_detection_model@v1"
#define IS "roboflow_core/roboflow_instance_segmentation_model@v1"

static void run_ok(const char *model_type, const char *step, struct vis_image *im)
{
    char err[512] = "";
    if (run_step(model_type, "boxes/1", step, im, err, sizeof err) < 0)
        T_FAIL("run failed: %s", err);
    ASSERT(g_cap != NULL);
    ASSERT_EQ(g_cap->w, im->w);
    ASSERT_EQ(g_cap->h, im->h);
}

static void run_err(const char *model_type, const char *step, struct vis_image *im,
                    const char *needle)
{
    char err[512] = "";
    if (run_step(model_type, "boxes/1", step, im, err, sizeof err) == 0)
        T_FAIL("expected an error containing '%s'", needle);
    if (!strstr(err, needle))
        T_FAIL("error '%s' does not contain '%s'", err, needle);
}

static bool px_is(const struct vis_image *im, int x, int y, int b, int g, int r)
{
    const uint8_t *p = vis_px(im, x, y);
    return p[0] == b && p[1] == g && p[2] == r;
}

#define ASSERT_PX(...) ASSERT_PX_(__VA_ARGS__)
#define ASSERT_PX_(im, x, y, b, g, r)                                                        \
    do {                                                                                      \
        const uint8_t *p_ = vis_px((im), (x), (y));                                           \
        if (!px_is((im), (x), (y), (b), (g), (r)))                                            \
            T_FAIL("pixel (%d,%d) = (%d,%d,%d), expected (%d,%d,%d)", (x), (y), p_[0], p_[1], \
                   p_[2], (b), (g), (r));                                                     \
    } while (0)

/* DEFAULT palette: class 0 #A351FB, class 1 #FF4040, class 2 #FFA1A0 (as B, G, R below) */
#define C0 0xFB, 0x51, 0xA3
#define C1 0x40, 0x40, 0xFF
#define BG 50, 50, 50

static void set_preds(json_t *a)
{
    json_decref(g_preds);
    g_preds = a;
}

/* ---- bounding boxes ---------------------------------------------------------------- */

TEST(bbox_palette_colours_and_thickness)
{
    struct vis_image *im = img_new(100, 80, 50);
    set_preds(json_pack("[o,o]", pred(10, 20, 60, 70, "a", 0, 0.9),
                        pred(70.9, 5.6, 95.2, 30.99, "b", 1, 0.8)));
    run_ok(OD, "\"type\":\"roboflow_core/bounding_box_visualization@v1\"", im);
    /* class 0 box: the edges at x=10, x=60, y=20, y=70 in #A351FB */
    ASSERT_PX(g_cap, 10, 45, C0);
    ASSERT_PX(g_cap, 60, 45, C0);
    ASSERT_PX(g_cap, 35, 20, C0);
    ASSERT_PX(g_cap, 35, 70, C0);
    ASSERT_PX(g_cap, 35, 45, BG); /* inside untouched */
    ASSERT_PX(g_cap, 5, 45, BG);  /* outside untouched */
    /* thickness 2: the band is at most 3 pixels wide, centred on the edge */
    {
        int n = 0;
        for (int x = 0; x < 30; x++)
            n += px_is(g_cap, x, 45, C0);
        ASSERT_GE(n, 2);
        ASSERT_LE(n, 3);
        ASSERT_PX(g_cap, 13, 45, BG);
        ASSERT_PX(g_cap, 7, 45, BG);
    }
    /* class 1 box: coordinates truncated to (70, 5)-(95, 30), #FF4040 */
    ASSERT_PX(g_cap, 70, 15, C1);
    ASSERT_PX(g_cap, 95, 15, C1);
    ASSERT_PX(g_cap, 80, 5, C1);
    ASSERT_PX(g_cap, 80, 30, C1);
    /* the input image was not modified */
    ASSERT_PX(im, 10, 45, BG);
    vis_image_free(im);
}

TEST(bbox_thickness_grows_band)
{
    struct vis_image *im = img_new(100, 80, 50);
    int n2 = 0, n8 = 0;
    set_preds(json_pack("[o]", pred(30, 20, 60, 70, "a", 0, 0.9)));
    run_ok(OD, "\"type\":\"BoundingBoxVisualization\",\"thickness\":8", im);
    for (int x = 0; x < 45; x++)
        n8 += px_is(g_cap, x, 45, C0);
    run_ok(OD, "\"type\":\"BoundingBoxVisualization\",\"thickness\":1", im);
    for (int x = 0; x < 45; x++)
        n2 += px_is(g_cap, x, 45, C0);
    ASSERT_EQ(n2, 1);
    ASSERT_GE(n8, 8);
    ASSERT_LE(n8, 9);
    ASSERT_PX(g_cap, 30, 45, C0);
    vis_image_free(im);
}

TEST(bbox_color_axis_and_palettes)
{
    struct vis_image *im = img_new(100, 80, 50);
    set_preds(json_pack("[o,o]", pred(10, 10, 40, 40, "a", 5, 0.9),
                        pred(50, 10, 90, 40, "a", 5, 0.9)));
    /* INDEX: detection 0 -> colour 0, detection 1 -> colour 1 */
    run_ok(OD, "\"type\":\"BoundingBoxVisualization\",\"color_axis\":\"INDEX\"", im);
    ASSERT_PX(g_cap, 10, 25, C0);
    ASSERT_PX(g_cap, 50, 25, C1);
    /* CLASS with class_id 5: DEFAULT[5] = #D1D435 */
    run_ok(OD, "\"type\":\"BoundingBoxVisualization\"", im);
    ASSERT_PX(g_cap, 10, 25, 0x35, 0xD4, 0xD1);
    /* ROBOFLOW palette has 6 colours: 5 -> #4D049A */
    run_ok(OD, "\"type\":\"BoundingBoxVisualization\",\"color_palette\":\"ROBOFLOW\"", im);
    ASSERT_PX(g_cap, 10, 25, 0x9A, 0x04, 0x4D);
    /* CUSTOM: 5 % 2 = 1 -> the second colour */
    run_ok(OD,
           "\"type\":\"BoundingBoxVisualization\",\"color_palette\":\"CUSTOM\","
           "\"custom_colors\":[\"#102030\",\"rgb(1, 2, 3)\"]",
           im);
    ASSERT_PX(g_cap, 10, 25, 3, 2, 1);
    vis_image_free(im);
}

TEST(bbox_errors)
{
    struct vis_image *im = img_new(60, 60, 50);
    set_preds(json_pack("[o]", pred(10, 10, 40, 40, "a", 0, 0.9)));
    run_err(OD, "\"type\":\"BoundingBoxVisualization\",\"color_axis\":\"TRACK\"", im,
            "tracker_id");
    run_err(OD, "\"type\":\"BoundingBoxVisualization\",\"color_palette\":\"Matplotlib Viridis\"",
            im, "not supported");
    run_err(OD, "\"type\":\"BoundingBoxVisualization\",\"color_palette\":\"CUSTOM\"", im,
            "custom_colors");
    run_err(OD, "\"type\":\"BoundingBoxVisualization\",\"thickness\":100000", im, "thickness");
    run_err(OD, "\"type\":\"BoundingBoxVisualization\",\"color_palette\":\"NOPE\"", im,
            "color_palette");
    vis_image_free(im);
}

TEST(bbox_empty_predictions_copy_image)
{
    struct vis_image *im = img_new(40, 30, 77);
    set_preds(json_array());
    run_ok(OD, "\"type\":\"BoundingBoxVisualization\",\"copy_image\":false", im);
    ASSERT_EQ(memcmp(g_cap->px, im->px, (size_t)im->stride * im->h), 0);
    vis_image_free(im);
}

TEST(bbox_roundness)
{
    struct vis_image *im = img_new(100, 100, 50);
    set_preds(json_pack("[o]", pred(10, 10, 90, 90, "a", 0, 0.9)));
    run_ok(OD, "\"type\":\"BoundingBoxVisualization\",\"roundness\":1.0", im);
    /* radius 40: the straight parts vanish, the corners are arcs */
    ASSERT_PX(g_cap, 10, 10, BG);
    ASSERT_PX(g_cap, 50, 10, C0);
    ASSERT_PX(g_cap, 10, 50, C0);
    vis_image_free(im);
}

/* ---- labels -------------------------------------------------------------------------- */

static struct vis_font *font_or_skip(void)
{
    struct vis_font *f = vis_font_default();
    if (!f)
        T_FAIL("no default font (%s)", VIS_FONT_DEFAULT_PATH);
    return f;
}

TEST(label_background_rectangle_and_text)
{
    struct vis_image *im = img_new(300, 200, 50);
    struct vis_font *f = font_or_skip();
    int tw, th, white = 0;
    set_preds(json_pack("[o]", pred(40, 100, 200, 180, "dog", 0, 0.9)));
    run_ok(OD, "\"type\":\"roboflow_core/label_visualization@v1\"", im);
    ASSERT_OK(viz__text_size(f, "dog", 1.0, 1, &tw, &th));
    ASSERT_EQ(th, 22); /* cv2.getTextSize(..., FONT_HERSHEY_SIMPLEX, 1.0, 1) height */
    /* TOP_LEFT: background (40, 100 - (th + 20)) .. (40 + tw + 20, 100) */
    ASSERT_PX(g_cap, 41, 99, C0);
    ASSERT_PX(g_cap, 41, 100 - th - 20, C0);
    ASSERT_PX(g_cap, 40 + tw + 20, 99, C0);
    ASSERT_PX(g_cap, 40 + tw + 22, 99, BG);
    ASSERT_PX(g_cap, 41, 100 - th - 22, BG);
    ASSERT_PX(g_cap, 39, 99, BG);
    ASSERT_PX(g_cap, 41, 101, BG); /* no box drawn by the label block */
    /* white text pixels inside the padded area */
    for (int y = 100 - th - 10; y < 90; y++)
        for (int x = 50; x < 50 + tw; x++)
            white += px_is(g_cap, x, y, 255, 255, 255);
    ASSERT_GT(white, 10);
    vis_image_free(im);
}

TEST(label_positions_and_text_options)
{
    struct vis_image *im = img_new(300, 200, 50);
    struct vis_font *f = font_or_skip();
    int tw, th;
    set_preds(json_pack("[o]", pred(40, 20, 200, 100, "dog", 0, 0.87)));
    run_ok(OD,
           "\"type\":\"roboflow_core/label_visualization@v2\",\"text_position\":\"BOTTOM_RIGHT\","
           "\"text\":\"Class and Confidence\",\"text_padding\":4,\"text_color\":\"#000000\"",
           im);
    ASSERT_OK(viz__text_size(f, "dog 0.87", 1.0, 1, &tw, &th));
    /* BOTTOM_RIGHT: (200 - w, 100) .. (200, 100 + h) */
    ASSERT_PX(g_cap, 199, 101, C0);
    ASSERT_PX(g_cap, 200 - (tw + 8), 100 + th + 8, C0);
    ASSERT_PX(g_cap, 201 + 1, 101, BG);
    ASSERT_PX(g_cap, 199, 100 + th + 10, BG);
    vis_image_free(im);
}

TEST(label_texts)
{
    struct wf_dets *ds = wf_dets_new();
    struct wf_det *d = wf_dets_push_new(ds);
    char out[128], err[128];
    d->x1 = 10.5f, d->y1 = 20, d->x2 = 50.9f, d->y2 = 41;
    d->confidence = 0.875f;
    wf_det_set_str(&d->class_name, "cat");
    ASSERT_OK(viz__det_label(ds, 0, "Class", 100, 100, false, out, sizeof out, err, sizeof err));
    ASSERT_STR_EQ(out, "cat");
    ASSERT_OK(viz__det_label(ds, 0, "Confidence", 100, 100, false, out, sizeof out, err,
                             sizeof err));
    ASSERT_STR_EQ(out, "0.88");
    ASSERT_OK(viz__det_label(ds, 0, "Class and Confidence", 100, 100, false, out, sizeof out,
                             err, sizeof err));
    ASSERT_STR_EQ(out, "cat 0.88");
    ASSERT_OK(viz__det_label(ds, 0, "Index", 100, 100, false, out, sizeof out, err, sizeof err));
    ASSERT_STR_EQ(out, "0");
    ASSERT_OK(viz__det_label(ds, 0, "Dimensions", 100, 100, false, out, sizeof out, err,
                             sizeof err));
    ASSERT_STR_EQ(out, "30, 30 40x21");
    ASSERT_OK(viz__det_label(ds, 0, "Area", 100, 100, false, out, sizeof out, err, sizeof err));
    ASSERT_STR_EQ(out, "848"); /* 40.4 * 21 = 848.4 */
    ASSERT_OK(viz__det_label(ds, 0, "Tracker Id", 100, 100, false, out, sizeof out, err,
                             sizeof err));
    ASSERT_STR_EQ(out, "No Tracker ID");
    d->tracker_id = 7;
    ASSERT_OK(viz__det_label(ds, 0, "Tracker Id", 100, 100, false, out, sizeof out, err,
                             sizeof err));
    ASSERT_STR_EQ(out, "7");
    ASSERT_OK(viz__det_label(ds, 0, "Time In Zone", 100, 100, false, out, sizeof out, err,
                             sizeof err));
    ASSERT_STR_EQ(out, "In zone: N/A");
    d->extra = json_pack("{s:f,s:s}", "time_in_zone", 2.5, "plate", "AB-12");
    ASSERT_OK(viz__det_label(ds, 0, "Time In Zone", 100, 100, false, out, sizeof out, err,
                             sizeof err));
    ASSERT_STR_EQ(out, "In zone: 2.5s");
    ASSERT_OK(viz__det_label(ds, 0, "plate", 100, 100, false, out, sizeof out, err, sizeof err));
    ASSERT_STR_EQ(out, "AB-12");
    ASSERT(viz__det_label(ds, 0, "nope", 100, 100, false, out, sizeof out, err, sizeof err) < 0);
    ASSERT(strstr(err, "invalid text type") != NULL);
    wf_dets_free(ds);
}

TEST(label_errors)
{
    struct vis_image *im = img_new(100, 100, 50);
    set_preds(json_pack("[o]", pred(10, 50, 60, 90, "a", 0, 0.9)));
    run_err(OD, "\"type\":\"LabelVisualization\",\"text_color\":\"not-a-colour\"", im,
            "invalid text color");
    run_err(OD, "\"type\":\"LabelVisualization\",\"text\":\"Unknown Field\"", im,
            "invalid text type");
    run_err(OD, "\"type\":\"LabelVisualization\",\"text_position\":\"CENTER_OF_MASS\"", im,
            "CENTER_OF_MASS");
    vis_image_free(im);
}

/* ---- blur / pixelate ------------------------------------------------------------------ */

static struct vis_image *checkerboard(int w, int h)
{
    struct vis_image *im = vis_image_new(w, h, VIS_BGR);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memset(vis_px(im, x, y), ((x / 2 + y / 2) % 2) ? 220 : 30, 3);
    return im;
}

static void check_only_inside_changed(const struct vis_image *a, const struct vis_image *b,
                                      int x1, int y1, int x2, int y2)
{
    int changed_in = 0;
    for (int y = 0; y < a->h; y++)
        for (int x = 0; x < a->w; x++) {
            bool same = !memcmp(vis_px(a, x, y), vis_px(b, x, y), 3);
            bool inside = x >= x1 && x < x2 && y >= y1 && y < y2;
            if (!inside && !same)
                T_FAIL("pixel (%d,%d) outside the box changed", x, y);
            changed_in += inside && !same;
        }
    ASSERT_GT(changed_in, (x2 - x1) * (y2 - y1) / 2);
}

TEST(blur_changes_only_boxes)
{
    struct vis_image *im = checkerboard(80, 60);
    set_preds(json_pack("[o]", pred(10.7, 12.2, 40.5, 50, "a", 0, 0.9)));
    run_ok(OD, "\"type\":\"roboflow_core/blur_visualization@v1\",\"kernel_size\":5", im);
    check_only_inside_changed(im, g_cap, 10, 12, 40, 50);
    /* a 5x5 box blur of a 2x2 checkerboard is close to the mean */
    ASSERT_NEAR(vis_px(g_cap, 25, 30)[0], 125, 45);
    vis_image_free(im);
}

TEST(pixelate_changes_only_boxes)
{
    struct vis_image *im = checkerboard(80, 60);
    set_preds(json_pack("[o]", pred(-5, 20, 33, 70, "a", 0, 0.9)));
    run_ok(OD, "\"type\":\"PixelateVisualization\",\"pixel_size\":8", im);
    /* the box is clipped to (0, 20)-(33, 60) */
    check_only_inside_changed(im, g_cap, 0, 20, 33, 60);
    vis_image_free(im);
}

/* ---- polygons, masks, zones -------------------------------------------------------------- */

TEST(polygon_and_mask)
{
    struct vis_image *im = img_new(100, 80, 50);
    set_preds(json_pack("[o]", pred_poly(20, 10, 70, 60, "a", 1)));
    run_ok(IS, "\"type\":\"roboflow_core/polygon_visualization@v1\"", im);
    ASSERT_PX(g_cap, 20, 35, C1);
    ASSERT_PX(g_cap, 45, 10, C1);
    ASSERT_PX(g_cap, 45, 35, BG);
    ASSERT_PX(g_cap, 45, 75, BG);

    run_ok(IS, "\"type\":\"MaskVisualization\",\"opacity\":0.5", im);
    /* inside: 50 * 0.5 + colour * 0.5 = (64 + 25, 64 + 25, 255 * .5 + 25) -> (57, 57, 152/153) */
    {
        const uint8_t *p = vis_px(g_cap, 45, 35);
        ASSERT_NEAR(p[0], 57, 1);
        ASSERT_NEAR(p[1], 57, 1);
        ASSERT_NEAR(p[2], 152.5, 1);
    }
    ASSERT_PX(g_cap, 20, 10, 57, 57, 152);
    ASSERT_PX(g_cap, 10, 35, BG);
    ASSERT_PX(g_cap, 75, 35, BG);
    vis_image_free(im);
}

TEST(polygon_zone_adds_colour)
{
    struct vis_image *im = img_new(100, 80, 50);
    char err[256];
    set_preds(json_array());
    /* #5bb573 * 0.3 added inside: B 0x73*.3=34.5->34/35, G 0xb5*.3=54.3, R 0x5b*.3=27.3 */
    if (run_step(OD, "boxes/1",
                 "\"type\":\"roboflow_core/polygon_zone_visualization@v1\","
                 "\"zone\":[[10,10],[60,10],[60,50],[10,50]]",
                 im, err, sizeof err) < 0)
        T_FAIL("%s", err);
    {
        const uint8_t *p = vis_px(g_cap, 30, 30);
        ASSERT_NEAR(p[0], 84.5, 1);
        ASSERT_EQ(p[1], 104);
        ASSERT_EQ(p[2], 77);
    }
    ASSERT_PX(g_cap, 5, 5, BG);
    ASSERT_PX(g_cap, 70, 30, BG);
    /* a list of zones */
    if (run_step(OD, "boxes/1",
                 "\"type\":\"roboflow_core/polygon_zone_visualization@v1\",\"color\":\"RED\","
                 "\"opacity\":1.0,\"zone\":[[[0,0],[9,0],[9,9],[0,9]],[[50,50],[59,50],[59,59]]]",
                 im, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT_PX(g_cap, 5, 5, 50, 50, 255);
    ASSERT_PX(g_cap, 58, 51, 50, 50, 255);
    ASSERT_PX(g_cap, 30, 30, BG);
    vis_image_free(im);
    /* a gray image gets the colour's first (blue) value, as cv2 does: 50 + 0x73 */
    im = vis_image_new(100, 80, VIS_GRAY);
    memset(im->px, 50, (size_t)im->stride * im->h);
    if (run_step(OD, "boxes/1",
                 "\"type\":\"roboflow_core/polygon_zone_visualization@v1\",\"opacity\":1,"
                 "\"zone\":[[10,10],[60,10],[60,50],[10,50]]",
                 im, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT_EQ(*vis_px(g_cap, 30, 30), 50 + 0x73);
    ASSERT_EQ(*vis_px(g_cap, 70, 30), 50);
    vis_image_free(im);
}

/* ---- dot / circle / corner / crop --------------------------------------------------------- */

TEST(dot_circle_corner)
{
    struct vis_image *im = img_new(120, 100, 50);
    set_preds(json_pack("[o]", pred(20, 20, 81, 71, "a", 0, 0.9)));
    run_ok(OD, "\"type\":\"roboflow_core/dot_visualization@v1\",\"radius\":5", im);
    /* CENTER = (50.5, 45.5) -> (50, 45) */
    ASSERT_PX(g_cap, 50, 45, C0);
    ASSERT_PX(g_cap, 54, 45, C0);
    ASSERT_PX(g_cap, 57, 45, BG);
    run_ok(OD,
           "\"type\":\"DotVisualization\",\"radius\":5,\"position\":\"TOP_LEFT\","
           "\"outline_thickness\":1",
           im);
    ASSERT_PX(g_cap, 20, 20, C0);
    ASSERT_PX(g_cap, 25, 20, 0, 0, 0); /* black outline on the rim */

    run_ok(OD, "\"type\":\"roboflow_core/circle_visualization@v1\",\"thickness\":1", im);
    /* centre (50, 45), radius int(sqrt(30^2 + 25^2)) = 39 */
    ASSERT_PX(g_cap, 50 + 39, 45, C0);
    ASSERT_PX(g_cap, 50, 45 - 39, C0);
    ASSERT_PX(g_cap, 50, 45, BG);

    run_ok(OD,
           "\"type\":\"roboflow_core/corner_visualization@v1\",\"thickness\":1,"
           "\"corner_length\":10",
           im);
    ASSERT_PX(g_cap, 20, 20, C0);
    ASSERT_PX(g_cap, 30, 20, C0);
    ASSERT_PX(g_cap, 20, 30, C0);
    ASSERT_PX(g_cap, 81, 71, C0);
    ASSERT_PX(g_cap, 71, 71, C0);
    ASSERT_PX(g_cap, 50, 20, BG); /* the middle of an edge stays free */
    ASSERT_PX(g_cap, 32, 20, BG);
    vis_image_free(im);
}

TEST(crop_shows_scaled_crop_above_box)
{
    struct vis_image *im = img_new(200, 200, 50);
    img_rect(im, 90, 150, 110, 170, 200); /* the object: bright square */
    set_preds(json_pack("[o]", pred(90, 150, 110, 170, "a", 0, 0.9)));
    run_ok(OD, "\"type\":\"roboflow_core/crop_visualization@v1\"", im);
    /* TOP_CENTER anchor (100, 150); crop 20x20 scaled x2 = 40x40 at (80, 110)-(120, 150) */
    ASSERT_PX(g_cap, 100, 130, 200, 200, 200);
    ASSERT_PX(g_cap, 85, 115, 200, 200, 200);
    ASSERT_PX(g_cap, 80, 130, C0);  /* border */
    ASSERT_PX(g_cap, 120, 130, C0);
    ASSERT_PX(g_cap, 100, 105, BG);
    ASSERT_PX(g_cap, 100, 160, 200, 200, 200); /* the object itself stays */
    vis_image_free(im);
}

/* ---- classification label ---------------------------------------------------------------- */

TEST(classification_label)
{
    struct vis_image *im = img_new(200, 150, 50);
    struct vis_font *f = font_or_skip();
    int tw, th;
    char err[256];
    g_cls = json_pack("{s:{s:i,s:i},s:[{s:s,s:i,s:f},{s:s,s:i,s:f}],s:s,s:f}", "image", "width",
                      200, "height", 150, "predictions", "class", "cat", "class_id", 1, "confidence", 0.3,
                      "class", "dog", "class_id", 0, "confidence", 0.6, "top", "dog",
                      "confidence", 0.6);
    if (run_step("roboflow_core/roboflow_classification_model@v1", "cls/1",
                 "\"type\":\"roboflow_core/classification_label_visualization@v1\","
                 "\"text\":\"Class and Confidence\"",
                 im, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT_OK(viz__text_size(f, "dog 0.60", 1.0, 1, &tw, &th));
    /* top-1 only; pseudo box [0, 47, 200, 150] (47 = 20 + 2*10 + 2*1 + 5), TOP_LEFT:
     * background (0, 47 - (th + 20)) .. (tw + 20, 47), colour of class 0 */
    ASSERT_PX(g_cap, 1, 46, C0);
    ASSERT_PX(g_cap, tw + 20, 47 - th - 20 < 0 ? 0 : 47 - th - 20, C0);
    ASSERT_PX(g_cap, 1, 48, BG);
    ASSERT_PX(g_cap, tw + 23, 46, BG);
    vis_image_free(im);
}

/* ---- helpers ------------------------------------------------------------------------------- */

TEST(color_parse_forms)
{
    struct vis_color c;
    ASSERT_OK(viz__color_parse("#FF8000", &c));
    ASSERT(c.r == 255 && c.g == 128 && c.b == 0);
    ASSERT_OK(viz__color_parse("#f80", &c));
    ASSERT(c.r == 255 && c.g == 136 && c.b == 0);
    ASSERT_OK(viz__color_parse("rgb(1, 2, 3)", &c));
    ASSERT(c.r == 1 && c.g == 2 && c.b == 3);
    ASSERT_OK(viz__color_parse("bgr(1, 2, 3)", &c));
    ASSERT(c.r == 3 && c.g == 2 && c.b == 1);
    ASSERT_OK(viz__color_parse("white", &c));
    ASSERT(c.r == 255 && c.g == 255 && c.b == 255);
    ASSERT_OK(viz__color_parse("ROBOFLOW", &c));
    ASSERT(c.r == 0xA3 && c.g == 0x51 && c.b == 0xFB);
    ASSERT(viz__color_parse("#12345", &c) < 0);
    ASSERT(viz__color_parse("#GG0000", &c) < 0);
    ASSERT(viz__color_parse("rgb(300, 0, 0)", &c) < 0);
    ASSERT(viz__color_parse("purple-ish", &c) < 0);
    ASSERT(viz__color_parse(NULL, &c) < 0);
}

TEST(workflow_two_stage_classes_replacement_viz)
{
    json_t *def = load_json_file("02_two_stage_classes_replacement_viz.json"), *res = NULL, *row;
    struct wf_workflow *wf = NULL;
    struct vis_image *im = img_new(160, 120, 40), *dec = NULL;
    const struct vis_image *imgs[1];
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_image_output *outs = NULL;
    size_t nouts = 0;
    char err[512];
    ASSERT(def != NULL);
    img_rect(im, 10, 10, 50, 40, 230); /* the fake model sees a "bright" object here */
    imgs[0] = im;
    if (wf_compile(def, &wf, err, sizeof err) < 0)
        T_FAIL("compile: %s", err);
    if (wf_run(wf, &fake_env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    ASSERT_EQ(json_array_size(res), 1);
    row = json_array_get(res, 0);
    ASSERT(json_is_object(json_object_get(row, "visualisation")));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(row, "visualisation"), "type")),
                  "base64");
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(row, "detections"), "predictions")),
              2);
    {
        json_t *r2 = NULL;
        ASSERT_OK(wf_result_row(row, &r2, &outs, &nouts));
        ASSERT_EQ(nouts, 1);
        ASSERT_STR_EQ(outs[0].path, "visualisation");
        ASSERT_OK(vis_decode(outs[0].jpeg, outs[0].len, &dec));
        ASSERT_EQ(dec->w, 160);
        ASSERT_EQ(dec->h, 120);
        /* the bright object's box edge (10, 25) is drawn in a palette colour, not gray */
        {
            const uint8_t *p = vis_px(dec, 10, 25);
            ASSERT(abs((int)p[0] - (int)p[1]) > 40 || abs((int)p[2] - (int)p[1]) > 40);
        }
        json_decref(r2);
    }
    wf_image_outputs_free(outs, nouts);
    vis_image_free(dec);
    json_decref(res);
    json_decref(def);
    wf_free(wf);
    vis_image_free(im);
}

TEST(line_counter_visualization)
{
    struct vis_image *im = img_new(200, 100, 50);
    struct vis_font *f = font_or_skip();
    char err[256];
    int tw, th, white = 0, dark = 0;
    set_preds(json_array());
    if (run_step(OD, "boxes/1",
                 "\"type\":\"roboflow_core/line_counter_visualization@v1\","
                 "\"zone\":[[100,20],[100,90]],\"color\":\"RED\",\"opacity\":1.0,"
                 "\"count_in\":3,\"count_out\":12,\"text_scale\":0.5",
                 im, err, sizeof err) < 0)
        T_FAIL("%s", err);
    /* the line: red added at opacity 1 */
    ASSERT_PX(g_cap, 100, 80, 50, 50, 255);
    ASSERT_PX(g_cap, 110, 80, BG);
    /* white text box centred on the first point, black text inside */
    ASSERT_OK(viz__text_size(f, "in: 3, out: 12", 0.5, 1, &tw, &th));
    ASSERT_EQ(th, 12); /* cvRound(21 * 0.5 + 1) = cvRound(11.5) = 12 */
    for (int y = 20 - th / 2; y <= 20 + th / 2; y++)
        for (int x = 100 - tw / 2; x < 100 + tw / 2; x++) {
            white += px_is(g_cap, x, y, 255, 255, 255);
            dark += vis_px(g_cap, x, y)[0] < 60;
        }
    ASSERT_GT(white, tw * th / 3);
    ASSERT_GT(dark, 10);
    ASSERT_PX(g_cap, 100 - tw / 2 - 3, 20, BG);
    run_err(OD, "\"type\":\"roboflow_core/line_counter_visualization@v1\",\"zone\":[[1,2]]", im,
            "two points");
    vis_image_free(im);
}

TEST(robust_to_extreme_inputs)
{
    /* boxes far outside, inverted, huge; gray images; big paddings: no
     * crash, clean results or clean errors */
    struct vis_image *im = img_new(64, 48, 50), *gray = vis_image_new(64, 48, VIS_GRAY);
    static const char *const steps[] = {
        "\"type\":\"BoundingBoxVisualization\",\"thickness\":-1",
        "\"type\":\"BoundingBoxVisualization\",\"roundness\":0.7",
        "\"type\":\"LabelVisualization\",\"text_padding\":5000,\"border_radius\":3000",
        "\"type\":\"LabelVisualization\",\"text_position\":\"CENTER\",\"text\":\"Dimensions\"",
        "\"type\":\"roboflow_core/label_visualization@v2\",\"text_size_mode\":\"Automatic\"",
        "\"type\":\"BlurVisualization\",\"kernel_size\":1023",
        "\"type\":\"PixelateVisualization\",\"pixel_size\":1000",
        "\"type\":\"DotVisualization\",\"radius\":10000,\"outline_thickness\":3",
        "\"type\":\"CircleVisualization\"",
        "\"type\":\"CornerVisualization\",\"corner_length\":60000",
        "\"type\":\"CropVisualization\",\"scale_factor\":0.01",
        "\"type\":\"CropVisualization\",\"position\":\"BOTTOM_RIGHT\"",
    };
    set_preds(json_pack("[o,o,o,o]", pred(-1e9, -1e9, 1e9, 1e9, "huge", 3, 0.9),
                        pred(50, 40, 10, 5, "inverted", 1, 0.9),
                        pred(1e6, 1e6, 1e6 + 5, 1e6 + 5, "far", 2, 0.9),
                        pred(30.5, 20.5, 30.5, 20.5, "point", 0, 0.9)));
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        char err[512] = "";
        for (int g = 0; g < 2; g++) {
            int rc = run_step(OD, "boxes/1", steps[k], g ? gray : im, err, sizeof err);
            if (rc < 0)
                T_FAIL("step %s on %s: %s", steps[k], g ? "gray" : "bgr", err);
            ASSERT_EQ(g_cap->fmt, g ? VIS_GRAY : VIS_BGR);
        }
    }
    {
        struct vis_image *mid = img_new(300, 300, 50); /* 300 * 100 > VIS_MAX_SIDE */
        run_err(OD, "\"type\":\"CropVisualization\",\"scale_factor\":100", mid, "exceed");
        vis_image_free(mid);
    }
    vis_image_free(gray);
    vis_image_free(im);
}

TEST(label_automatic_size_and_multilabel_classification)
{
    struct vis_image *big = img_new(400, 2160, 50), *im = img_new(200, 150, 50);
    char err[256];
    int n_small = 0, n_big = 0;
    /* Automatic: scale = 1.0 * min(w, h) / 1080 -> 400 px wide: 0.37; the label is smaller */
    set_preds(json_pack("[o]", pred(100, 200, 300, 400, "dog", 0, 0.9)));
    run_ok(OD, "\"type\":\"roboflow_core/label_visualization@v2\",\"text_size_mode\":\"Automatic\"",
           big);
    for (int y = 100; y < 200; y++)
        n_small += px_is(g_cap, 101, y, C0);
    run_ok(OD, "\"type\":\"roboflow_core/label_visualization@v2\"", big);
    for (int y = 100; y < 200; y++)
        n_big += px_is(g_cap, 101, y, C0);
    ASSERT_EQ(n_big, 22 + 20);
    ASSERT_EQ(n_small, (int)lrint(21.0 * (400 / 1080.0) + 1) + 20);
    /* multi-label: every predicted class, sorted by confidence, stacked */
    g_cls = json_pack("{s:{s:i,s:i},s:{s:{s:f,s:i},s:{s:f,s:i},s:{s:f,s:i}},s:[s,s]}", "image",
                      "width", 200, "height", 150, "predictions", "a", "confidence", 0.2,
                      "class_id", 0, "b", "confidence", 0.9, "class_id", 1, "c", "confidence",
                      0.1, "class_id", 2, "predicted_classes", "a", "b");
    if (run_step("roboflow_core/roboflow_multi_label_classification_model@v1", "cls/1",
                 "\"type\":\"roboflow_core/classification_label_visualization@v1\"", im, err,
                 sizeof err) < 0)
        T_FAIL("%s", err);
    /* b (class 1) first at y 47, a (class 0) second at y 94 */
    ASSERT_PX(g_cap, 1, 46, C1);
    ASSERT_PX(g_cap, 1, 93, C0);
    ASSERT_PX(g_cap, 1, 96, BG);
    vis_image_free(im);
    vis_image_free(big);
}

TEST(ellipse_triangle_color_background)
{
    struct vis_image *im = img_new(120, 100, 50);
    set_preds(json_pack("[o]", pred(20, 20, 81, 71, "a", 0, 0.9)));
    /* ellipse: centre (50, 71), axes (61, 21), from -45 to 235 degrees:
     * the bottom point (50, 92) is on it, the top point (50, 50) is not */
    run_ok(OD, "\"type\":\"roboflow_core/ellipse_visualization@v1\",\"thickness\":1", im);
    ASSERT_PX(g_cap, 50, 92, C0);
    ASSERT_PX(g_cap, 50, 50, BG);
    ASSERT_PX(g_cap, 50, 71, BG);
    /* triangle: tip at TOP_CENTER (50, 20), base 10 at y = 10 */
    run_ok(OD, "\"type\":\"TriangleVisualization\"", im);
    ASSERT_PX(g_cap, 50, 19, C0);
    ASSERT_PX(g_cap, 46, 11, C0);
    ASSERT_PX(g_cap, 56, 11, BG);
    ASSERT_PX(g_cap, 50, 21, BG);
    /* color: box filled at opacity 0.5 (50 * .5 + colour * .5) */
    run_ok(OD, "\"type\":\"ColorVisualization\"", im);
    ASSERT_PX(g_cap, 50, 45, 150, 66, 106); /* (251+50)/2=150.5->150, (81+50)/2=65.5->66, 106.5->106 */
    ASSERT_PX(g_cap, 90, 45, BG);
    /* background: outside the box blended to black at 0.5, inside original */
    run_ok(OD, "\"type\":\"roboflow_core/background_color_visualization@v1\"", im);
    ASSERT_PX(g_cap, 50, 45, BG);
    ASSERT_PX(g_cap, 5, 5, 25, 25, 25);
    ASSERT_PX(g_cap, 81, 45, 25, 25, 25); /* x2 is exclusive (numpy slice) */
    ASSERT_PX(g_cap, 80, 45, BG);
    vis_image_free(im);
}

TEST(keypoint_visualization)
{
    struct vis_image *im = img_new(100, 80, 50);
    json_t *p = pred(10, 10, 70, 70, "person", 0, 0.9);
    json_object_set_new(p, "keypoints",
                        json_pack("[{s:f,s:f,s:f,s:i,s:s},{s:f,s:f,s:f,s:i,s:s},"
                                  "{s:f,s:f,s:f,s:i,s:s}]",
                                  "x", 20.0, "y", 20.0, "confidence", 0.9, "class_id", 0, "class",
                                  "a", "x", 60.0, "y", 20.0, "confidence", 0.9, "class_id", 1,
                                  "class", "b", "x", 40.0, "y", 60.0, "confidence", 0.9,
                                  "class_id", 2, "class", "c"));
    set_preds(json_pack("[o]", p));
#define KP "roboflow_core/roboflow_keypoint_detection_model@v1"
    run_ok(KP, "\"type\":\"roboflow_core/keypoint_visualization@v1\",\"edges\":[[1,2],[2,3]]", im);
    ASSERT_PX(g_cap, 40, 20, C0);
    ASSERT_PX(g_cap, 50, 40, C0);
    ASSERT_PX(g_cap, 30, 40, BG); /* no edge 1-3 */
    /* no edges given and 3 keypoints: no skeleton, nothing drawn */
    run_ok(KP, "\"type\":\"KeypointVisualization\"", im);
    ASSERT_EQ(memcmp(g_cap->px, im->px, (size_t)im->stride * im->h), 0);
    run_ok(KP,
           "\"type\":\"KeypointVisualization\",\"annotator_type\":\"vertex\",\"radius\":3,"
           "\"color\":\"#00FF00\"",
           im);
    ASSERT_PX(g_cap, 20, 20, 0, 255, 0);
    ASSERT_PX(g_cap, 23, 20, 0, 255, 0);
    ASSERT_PX(g_cap, 25, 20, BG);
    ASSERT_PX(g_cap, 40, 60, 0, 255, 0);
    run_ok(KP,
           "\"type\":\"KeypointVisualization\",\"annotator_type\":\"vertex_label\","
           "\"radius\":0,\"text_padding\":4",
           im);
    /* label box around each keypoint, in the colour, padded by 4 */
    {
        /* "0" at scale 0.5: h = 12, box (20 - w/2, 14)-(20 + w/2, 26) padded by 4 */
        int tw, th;
        ASSERT_OK(viz__text_size(vis_font_default(), "0", 0.5, 1, &tw, &th));
        ASSERT_EQ(th, 12);
        ASSERT_PX(g_cap, 20 - tw / 2 - 3, 20, C0);
        ASSERT_PX(g_cap, 20, 14 - 3, C0);
        ASSERT_PX(g_cap, 20, 14 - 5, BG);
        ASSERT_PX(g_cap, 40, 60 + 6 + 3, C0);
    }
    ASSERT_PX(g_cap, 20, 20 + 12, BG);
    run_err(KP, "\"type\":\"KeypointVisualization\",\"edges\":[[1,9]]", im, "out of range");
#undef KP
    vis_image_free(im);
}

TEST(halo_and_reference_path)
{
    struct vis_image *im = img_new(160, 120, 50);
    char err[256];
    set_preds(json_pack("[o]", pred_poly(60, 40, 100, 80, "a", 1)));
    run_ok(IS, "\"type\":\"roboflow_core/halo_visualization@v1\"", im);
    /* inside the object: unchanged; right outside: tinted towards #FF4040 (red up) */
    ASSERT_PX(g_cap, 80, 60, BG);
    ASSERT(vis_px(g_cap, 103, 60)[2] > 60);
    ASSERT(vis_px(g_cap, 103, 60)[2] > vis_px(g_cap, 103, 60)[0]);
    /* far away: the blur does not reach, alpha 0 */
    ASSERT_PX(g_cap, 5, 5, BG);
    set_preds(json_array());
    run_ok(IS, "\"type\":\"HaloVisualization\"", im);
    ASSERT_EQ(memcmp(g_cap->px, im->px, (size_t)im->stride * im->h), 0);

    if (run_step(OD, "boxes/1",
                 "\"type\":\"roboflow_core/reference_path_visualization@v1\","
                 "\"reference_path\":[[10,10],[100,10],[100,90]],\"thickness\":1,\"color\":\"RED\"",
                 im, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT_PX(g_cap, 50, 10, 0, 0, 255);
    ASSERT_PX(g_cap, 100, 50, 0, 0, 255);
    ASSERT_PX(g_cap, 50, 50, BG); /* open: no segment back to the start */
    vis_image_free(im);
}

TEST(model_comparison)
{
    struct vis_image *im = img_new(100, 80, 100);
    char err[512];
    char def[2048];
    struct wf_workflow *wf = NULL;
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *res = NULL;
    /* both models get the same boxes from boxes/1, but B keeps only
     * confidence >= 0.6: A has (10,10)-(40,40) and (50,10)-(90,40), B the first */
    set_preds(json_pack("[o,o]", pred(10, 10, 40, 40, "a", 0, 0.9),
                        pred(50, 10, 90, 40, "b", 0, 0.5)));
    snprintf(def, sizeof def, "%s",
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"" OD "\",\"name\":\"a\",\"images\":\"$inputs.image\","
             "\"model_id\":\"boxes/1\"},"
             "{\"type\":\"roboflow_core/detections_filter@v1\",\"name\":\"b\","
             "\"predictions\":\"$steps.a.predictions\",\"operations\":[{\"type\":\"DetectionsFilter\","
             "\"filter_operation\":{\"type\":\"StatementGroup\",\"statements\":[{\"type\":"
             "\"BinaryStatement\",\"left_operand\":{\"type\":\"DynamicOperand\",\"operations\":"
             "[{\"type\":\"ExtractDetectionProperty\",\"property_name\":\"confidence\"}]},"
             "\"comparator\":{\"type\":\"(Number) >=\"},\"right_operand\":{\"type\":"
             "\"StaticOperand\",\"value\":0.6}}]}}]},"
             "{\"type\":\"roboflow_core/model_comparison_visualization@v1\",\"name\":\"viz\","
             "\"image\":\"$inputs.image\",\"predictions_a\":\"$steps.a.predictions\","
             "\"predictions_b\":\"$steps.b.predictions\",\"opacity\":0.5},"
             "{\"type\":\"" OD "\",\"name\":\"cap\",\"images\":\"$steps.viz.image\","
             "\"model_id\":\"capture/1\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.cap.predictions\"}]}");
    if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0)
        T_FAIL("compile: %s", err);
    if (wf_run(wf, &test_env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    ASSERT_PX(g_cap, 20, 20, 100, 100, 100); /* both: unchanged */
    ASSERT_PX(g_cap, 60, 20, 50, 178, 50);   /* only A: towards GREEN, 100*.5+255*.5=177.5->178 */
    ASSERT_PX(g_cap, 60, 60, 50, 50, 50);    /* neither: towards BLACK */
    json_decref(res);
    wf_free(wf);
    vis_image_free(im);
}

/* ---- manifests against spec/blocks.json ------------------------------------------------ */

/* blocks.json default (Python repr) -> JSON, or NULL when not comparable. */
static json_t *py_default(const char *d)
{
    size_t n = strlen(d);
    if (!strcmp(d, "True"))
        return json_true();
    if (!strcmp(d, "False"))
        return json_false();
    if (!strcmp(d, "None"))
        return json_null();
    if (n >= 2 && d[0] == '\'' && d[n - 1] == '\'')
        return json_stringn(d + 1, n - 2);
    if (!strcmp(d, "TEXT_SIZE_MODE_MANUAL"))
        return json_string("Manual");
    return json_loads(d, JSON_DECODE_ANY, NULL);
}

static json_t *load_blocks_json(void)
{
    static const char *const paths[] = {"../shared/spec/blocks.json",
                                        "/work/shared/spec/blocks.json"};
    for (size_t i = 0; i < 2; i++) {
        json_t *j = json_load_file(paths[i], 0, NULL);
        if (j)
            return j;
    }
    return NULL;
}

static void check_family(const json_t *spec, const struct wf_block *const *tab, int *nblocks)
{
    for (size_t b = 0; tab[b]; b++) {
        const struct wf_block *blk = tab[b];
        const json_t *entry = NULL, *it, *fl;
        size_t k, f;
        json_array_foreach(spec, k, it)
        {
            const char *t0 = json_string_value(json_array_get(json_object_get(it, "type"), 0));
            if (t0 && !strcmp(t0, blk->types[0]))
                entry = it;
        }
        if (!entry) {
            /* v2 visualizations whose manifest names its type through a
             * constant (TYPE) have an empty type list in blocks.json: match
             * "roboflow_core/<name>_visualization@vN" with the file
             * "visualizations/<name>/vN.py" */
            char file[160];
            const char *id = blk->types[0], *at = strrchr(id, '@'), *suf = strstr(id, "_visualization@");
            if (at && suf && !strncmp(id, "roboflow_core/", 14)) {
                snprintf(file, sizeof file, "visualizations/%.*s/%s.py", (int)(suf - id - 14), id + 14, at + 1);
                json_array_foreach(spec, k, it)
                {
                    if (json_array_size(json_object_get(it, "type")) == 0 &&
                        !strcmp(json_string_value(json_object_get(it, "file")), file))
                        entry = it;
                }
            }
        }
        if (!entry)
            T_FAIL("block '%s' is not in blocks.json", blk->types[0]);
        (*nblocks)++;
        /* every alias blocks.json lists is accepted */
        json_array_foreach(json_object_get(entry, "type"), k, it)
        {
            bool found = false;
            for (size_t t = 0; blk->types[t]; t++)
                found |= !strcmp(blk->types[t], json_string_value(it));
            if (!found)
                T_FAIL("block '%s' misses alias '%s'", blk->types[0], json_string_value(it));
        }
        /* every field of the manifest is declared with the same default */
        json_array_foreach(json_object_get(entry, "fields"), f, fl)
        {
            const char *name = json_string_value(json_array_get(fl, 0));
            const char *def = json_string_value(json_array_get(fl, 1));
            const struct wf_field *mine = NULL;
            for (size_t q = 0; q < blk->nfields; q++)
                if (!strcmp(blk->fields[q].name, name))
                    mine = &blk->fields[q];
            if (!mine)
                T_FAIL("block '%s' misses field '%s'", blk->types[0], name);
            if (!strcmp(def, "REQUIRED")) {
                if (mine->def)
                    T_FAIL("block '%s' field '%s' should be required", blk->types[0], name);
            } else {
                json_t *want = py_default(def), *got;
                if (!want)
                    continue;
                got = mine->def ? json_loads(mine->def, JSON_DECODE_ANY, NULL) : NULL;
                if (!got || !(json_equal(want, got) ||
                              (json_is_number(want) && json_is_number(got) &&
                               json_number_value(want) == json_number_value(got))))
                    T_FAIL("block '%s' field '%s': default %s, blocks.json says %s",
                           blk->types[0], name, mine->def ? mine->def : "(required)", def);
                json_decref(want);
                json_decref(got);
            }
        }
        /* the outputs blocks.json lists (visualizations list none: "image") */
        json_array_foreach(json_object_get(entry, "outputs"), k, it)
        {
            char name[64];
            bool found = false;
            snprintf(name, sizeof name, "%s", json_string_value(it));
            *strchrnul(name, '[') = '\0';
            for (size_t o = 0; o < blk->noutputs; o++)
                found |= !strcmp(blk->outputs[o].name, name);
            /* grid_visualization / text_display: blocks.json resolved
             * OUTPUT_IMAGE_KEY to another module's "warped_image"; their
             * source imports visualizations/common/base.py's "image" */
            if (!found && !strcmp(name, "warped_image") && blk->noutputs == 1 &&
                !strcmp(blk->outputs[0].name, "image"))
                found = true;
            if (!strcmp(name, "*") && (blk->flags & WF_BLOCK_DYN_OUTPUTS)) /* data_aggregator */
                found = true;
            if (!found)
                T_FAIL("block '%s' misses output '%s'", blk->types[0], name);
        }
    }
}

TEST(manifests_match_blocks_json)
{
    json_t *spec = load_blocks_json();
    int n = 0;
    ASSERT(spec != NULL);
    check_family(spec, wf_blocks_visualization, &n);
    check_family(spec, wf_blocks_classical_cv, &n);
    check_family(spec, wf_blocks_video_viz, &n);
    check_family(spec, wf_blocks_video_analytics, &n);
    ASSERT_EQ(n, 24 + 9 + 6 + 9);
    json_decref(spec);
}

TEST_MAIN()
