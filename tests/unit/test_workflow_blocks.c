/*
 * test_workflow_blocks.c — each non-visual block against hand-computed
 * expectations (boxes, crops, pixel values, CSV text), and the query
 * language.  Detections come from the fake model of test_workflow_fake.h:
 * a "bright" box around the pixels >= 200 (confidence 0.9) and a "thing"
 * box on the centre quarter (confidence 0.5).
 */
#include "t.h"

#include <ctype.h>
#include "test_workflow_fake.h"
#include "workflow/wf_int.h"

#define HEAD                                                                                   \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"      \
    "{\"type\":\"WorkflowParameter\",\"name\":\"p\",\"default_value\":null}],"                 \
    "\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\"," \
    "\"model_id\":\"fake/1\",\"confidence\":0.1}"
#define OUT(name, sel) "{\"type\":\"JsonField\",\"name\":\"" name "\",\"selector\":\"" sel "\"}"
#define OUTOWN(name, sel)                                                                      \
    "{\"type\":\"JsonField\",\"name\":\"" name "\",\"selector\":\"" sel                         \
    "\",\"coordinates_system\":\"own\"}"

static json_t *run_text(const char *text, struct vis_image *im, const json_t *params)
{
    struct wf_workflow *wf = compile_or_die(text);
    json_t *r = run1(wf, im, params);
    wf_free(wf);
    return r;
}

static json_t *preds_of(json_t *r, const char *name)
{
    return json_object_get(json_object_get(r, name), "predictions");
}

static double num(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

/* 200x100 black image with a bright box (20..60, 10..30): bright box centre
 * (40,20) 40x20; thing box (50..150, 25..75). */
static struct vis_image *scene(void)
{
    struct vis_image *im = img_new(200, 100, 0);
    img_rect(im, 20, 10, 60, 30, 255);
    return im;
}

TEST(dynamic_crop_pixels_and_lineage)
{
    struct vis_image *im = scene();
    json_t *r = run_text(HEAD ",{\"type\":\"Crop\",\"name\":\"c\",\"image\":\"$inputs.image\","
                              "\"predictions\":\"$steps.m.predictions\"}],"
                              "\"outputs\":[" OUT("crops", "$steps.c.crops") "," OUTOWN(
                                  "p", "$steps.c.predictions") "," OUT("pp",
                                                                       "$steps.c.predictions") "]}",
                         im, NULL);
    json_t *crops = json_object_get(r, "crops");
    ASSERT_EQ(json_array_size(crops), 2);
    json_t *c0 = json_array_get(crops, 0);
    const char *b64 = json_string_value(json_object_get(c0, "value"));
    size_t len;
    uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
    struct vis_image *dec = NULL;
    ASSERT_OK(vis_decode(jpg, len, &dec));
    ASSERT_EQ(dec->w, 40);
    ASSERT_EQ(dec->h, 20);
    ASSERT(vis_px(dec, 20, 10)[0] > 240); /* the crop is the bright patch */
    vis_image_free(dec);
    free(jpg);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(c0, "parent_origin"), "offset_x")), 20);
    /* crop predictions: the box moved into crop coordinates while its data
     * (parent_id, image dimensions) stays the detection's, as in Roboflow */
    json_t *own = json_array_get(json_object_get(r, "p"), 0);
    json_t *op = json_array_get(json_object_get(own, "predictions"), 0);
    ASSERT_NEAR(num(op, "x"), 20, 1e-6);
    ASSERT_NEAR(num(op, "y"), 10, 1e-6);
    ASSERT_NEAR(num(op, "width"), 40, 1e-6);
    ASSERT_STR_EQ(json_string_value(json_object_get(op, "parent_id")), "image");
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(own, "image"), "width")), 200);
    json_t *par = json_array_get(json_object_get(json_array_get(json_object_get(r, "pp"), 0), "predictions"), 0);
    ASSERT_NEAR(num(par, "x"), 20, 1e-6);
    json_decref(r);
    vis_image_free(im);
}

TEST(static_crops_round_half_even)
{
    struct vis_image *im = img_new(100, 100, 0);
    /* x_center 11, width 5 -> x_min = round(8.5) = 8 (half-even), x_max = 13;
     * y_center 13, height 5 -> round(10.5) = 10 .. 15 */
    json_t *r = run_text(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"AbsoluteStaticCrop\",\"name\":\"a\",\"images\":\"$inputs.image\","
        "\"x_center\":11,\"y_center\":13,\"width\":5,\"height\":5},"
        "{\"type\":\"roboflow_core/relative_statoic_crop@v1\",\"name\":\"r\",\"images\":"
        "\"$inputs.image\",\"x_center\":0.5,\"y_center\":0.25,\"width\":0.2,\"height\":0.1},"
        "{\"type\":\"AbsoluteStaticCrop\",\"name\":\"z\",\"images\":\"$inputs.image\","
        "\"x_center\":500,\"y_center\":500,\"width\":5,\"height\":5}],"
        "\"outputs\":[" OUT("a", "$steps.a.crops") "," OUT("r", "$steps.r.crops") "," OUT(
            "z", "$steps.z.crops") "]}",
        im, NULL);
    json_t *po = json_object_get(json_object_get(r, "a"), "parent_origin");
    ASSERT_EQ(json_integer_value(json_object_get(po, "offset_x")), 8);
    ASSERT_EQ(json_integer_value(json_object_get(po, "offset_y")), 10);
    po = json_object_get(json_object_get(r, "r"), "parent_origin");
    ASSERT_EQ(json_integer_value(json_object_get(po, "offset_x")), 40);
    ASSERT_EQ(json_integer_value(json_object_get(po, "offset_y")), 20);
    ASSERT(json_is_null(json_object_get(r, "z"))); /* outside the image: None */
    json_decref(r);
    vis_image_free(im);
}

static void slice_origins(const char *ver, int *xs, int *ys, size_t *n)
{
    char text[1024];
    struct vis_image *im = img_new(300, 150, 0);
    snprintf(text, sizeof text,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/image_slicer@%s\",\"name\":\"s\",\"image\":"
             "\"$inputs.image\",\"slice_width\":128,\"slice_height\":100,"
             "\"overlap_ratio_width\":0.25,\"overlap_ratio_height\":0.5}],"
             "\"outputs\":[" OUT("s", "$steps.s.slices") "]}",
             ver);
    json_t *r = run_text(text, im, NULL);
    json_t *sl = json_object_get(r, "s");
    *n = json_array_size(sl);
    for (size_t i = 0; i < *n && i < 16; i++) {
        json_t *po = json_object_get(json_array_get(sl, i), "parent_origin");
        xs[i] = (int)json_integer_value(json_object_get(po, "offset_x"));
        ys[i] = (int)json_integer_value(json_object_get(po, "offset_y"));
    }
    json_decref(r);
    vis_image_free(im);
}

TEST(image_slicer_v1_v2_offsets)
{
    int xs[16], ys[16];
    size_t n;
    /* stride x = 128 - 32 = 96 -> 0,96,192,288; stride y = 100 - 50 = 50 -> 0,50,100 */
    slice_origins("v1", xs, ys, &n);
    ASSERT_EQ(n, 12);
    ASSERT_EQ(xs[3], 288);
    ASSERT_EQ(ys[3], 0);
    ASSERT_EQ(ys[4], 50);
    ASSERT_EQ(ys[11], 100);
    /* v2: pushed inward: x 0,96,172 (192 and 288 -> 172, deduplicated); y 0,50 */
    slice_origins("v2", xs, ys, &n);
    ASSERT_EQ(n, 6);
    ASSERT_EQ(xs[0], 0);
    ASSERT_EQ(xs[1], 96);
    ASSERT_EQ(xs[2], 172);
    ASSERT_EQ(ys[3], 50);
}

static const char *filter_def(const char *stmt, char *buf, size_t n)
{
    snprintf(buf, n,
             HEAD ",{\"type\":\"DetectionsFilter\",\"name\":\"f\",\"predictions\":"
                  "\"$steps.m.predictions\",\"operations_parameters\":{\"p\":\"$inputs.p\"},"
                  "\"operations\":[{\"type\":\"DetectionsFilter\",\"filter_operation\":%s}]}],"
                  "\"outputs\":[" OUT("f", "$steps.f.predictions") "]}",
             stmt);
    return buf;
}

#define DYN(prop) \
    "{\"type\":\"DynamicOperand\",\"operand_name\":\"_\",\"operations\":[{\"type\":" \
    "\"ExtractDetectionProperty\",\"property_name\":\"" prop "\"}]}"
#define STATIC(v) "{\"type\":\"StaticOperand\",\"value\":" v "}"
#define BIN(l, cmp, r)                                                                         \
    "{\"type\":\"StatementGroup\",\"statements\":[{\"type\":\"BinaryStatement\",\"left_operand\":" l \
    ",\"comparator\":{\"type\":\"" cmp "\"},\"right_operand\":" r "}]}"

static size_t filtered(const char *stmt, const json_t *params, const char **first_class)
{
    static char buf[4096];
    struct vis_image *im = scene();
    json_t *r = run_text(filter_def(stmt, buf, sizeof buf), im, params);
    json_t *p = preds_of(r, "f");
    size_t n = json_array_size(p);
    static char cls[64];
    snprintf(cls, sizeof cls, "%s",
             n ? json_string_value(json_object_get(json_array_get(p, 0), "class")) : "");
    *first_class = cls;
    json_decref(r);
    vis_image_free(im);
    return n;
}

TEST(detections_filter_comparators)
{
    const char *cls;
    ASSERT_EQ(filtered(BIN(DYN("confidence"), "(Number) >", STATIC("0.6")), NULL, &cls), 1);
    ASSERT_STR_EQ(cls, "bright");
    ASSERT_EQ(filtered(BIN(DYN("confidence"), "(Number) <=", STATIC("0.5")), NULL, &cls), 1);
    ASSERT_STR_EQ(cls, "thing");
    ASSERT_EQ(filtered(BIN(DYN("class_name"), "==", STATIC("\"thing\"")), NULL, &cls), 1);
    ASSERT_EQ(filtered(BIN(DYN("class_name"), "!=", STATIC("\"thing\"")), NULL, &cls), 1);
    ASSERT_STR_EQ(cls, "bright");
    ASSERT_EQ(filtered(BIN(DYN("class_name"), "in (Sequence)", STATIC("[\"a\",\"thing\"]")), NULL,
                       &cls), 1);
    ASSERT_EQ(filtered(BIN(DYN("class_name"), "(String) startsWith", STATIC("\"br\"")), NULL, &cls), 1);
    ASSERT_STR_EQ(cls, "bright");
    ASSERT_EQ(filtered(BIN(DYN("class_name"), "(String) endsWith", STATIC("\"ing\"")), NULL, &cls), 1);
    ASSERT_EQ(filtered(BIN(DYN("class_name"), "(String) contains", STATIC("\"i\"")), NULL, &cls), 2);
    /* size: bright 40*20 = 800, thing 100*50 = 5000 */
    ASSERT_EQ(filtered(BIN(DYN("size"), "(Number) >=", STATIC("800")), NULL, &cls), 2);
    ASSERT_EQ(filtered(BIN(DYN("size"), "(Number) <", STATIC("800")), NULL, &cls), 0);
    ASSERT_EQ(filtered(BIN(DYN("x_min"), "(Number) in range", STATIC("[10, 30]")), NULL, &cls), 1);
    ASSERT_STR_EQ(cls, "bright");
    /* dynamic operand from operations_parameters */
    json_t *params = json_pack("{s:f}", "p", 0.7);
    ASSERT_EQ(filtered(BIN(DYN("confidence"), "(Number) >",
                           "{\"type\":\"DynamicOperand\",\"operand_name\":\"p\"}"),
                       params, &cls), 1);
    json_decref(params);
    /* unary, negate, and/or groups */
    ASSERT_EQ(filtered("{\"type\":\"StatementGroup\",\"operator\":\"and\",\"statements\":["
                       "{\"type\":\"UnaryStatement\",\"operand\":" DYN("class_name") ","
                       "\"operator\":{\"type\":\"Exists\"}},"
                       "{\"type\":\"BinaryStatement\",\"negate\":true,\"left_operand\":" DYN("class_id")
                       ",\"comparator\":{\"type\":\"==\"},\"right_operand\":" STATIC("1") "}]}",
                       NULL, &cls), 1);
    ASSERT_STR_EQ(cls, "bright");
    ASSERT_EQ(filtered("{\"type\":\"StatementGroup\",\"statements\":["
                       "{\"type\":\"BinaryStatement\",\"left_operand\":" DYN("class_id") ","
                       "\"comparator\":{\"type\":\"==\"},\"right_operand\":" STATIC("0") "},"
                       "{\"type\":\"BinaryStatement\",\"left_operand\":" DYN("class_id") ","
                       "\"comparator\":{\"type\":\"==\"},\"right_operand\":" STATIC("1") "}]}",
                       NULL, &cls), 2);
    /* a numeric comparator on a string property is a clean step error */
    {
        static char buf[4096];
        struct wf_workflow *wf = compile_or_die(
            filter_def(BIN(DYN("class_name"), "(Number) >", STATIC("1")), buf, sizeof buf));
        struct vis_image *im = scene();
        const struct vis_image *imgs[1] = {im};
        struct wf_image_input ii = {"image", imgs, 1, false, NULL};
        struct wf_run_inputs in = {&ii, 1, NULL};
        json_t *out = NULL;
        char err[512];
        ASSERT(wf_run(wf, &fake_env, &in, &out, err, sizeof err) < 0);
        ASSERT(strstr(err, "step 'f': field 'operations': comparator '(Number) >' expects numbers"));
        vis_image_free(im);
        wf_free(wf);
    }
    /* a number never equals a string; negation */
    ASSERT_EQ(filtered(BIN(DYN("class_id"), "==", STATIC("\"0\"")), NULL, &cls), 0);
    ASSERT_EQ(filtered("{\"type\":\"StatementGroup\",\"statements\":[{\"type\":\"BinaryStatement\","
                       "\"negate\":true,\"left_operand\":" DYN("class_id") ",\"comparator\":{\"type\":"
                       "\"(Number) ==\"},\"right_operand\":" STATIC("0.0") "}]}", NULL, &cls), 1);
    ASSERT_STR_EQ(cls, "thing");
    /* (Detection) in zone: centre (40,20) inside the polygon, (100,50) not */
    ASSERT_EQ(filtered(BIN("{\"type\":\"DynamicOperand\",\"operand_name\":\"_\"}", "(Detection) in zone",
                           STATIC("[[0,0],[60,0],[60,40],[0,40]]")),
                       NULL, &cls), 1);
    ASSERT_STR_EQ(cls, "bright");
}

static json_t *transform(const char *ops)
{
    char buf[4096];
    struct vis_image *im = scene();
    snprintf(buf, sizeof buf,
             HEAD ",{\"type\":\"DetectionsTransformation\",\"name\":\"t\",\"predictions\":"
                  "\"$steps.m.predictions\",\"operations\":%s}],"
                  "\"outputs\":[" OUT("t", "$steps.t.predictions") "]}",
             ops);
    json_t *r = run_text(buf, im, NULL);
    vis_image_free(im);
    json_t *p = json_incref(preds_of(r, "t"));
    json_decref(r);
    return p;
}

TEST(detections_transformation_operations)
{
    json_t *p = transform("[{\"type\":\"SortDetections\",\"mode\":\"size\",\"ascending\":false}]");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "thing");
    json_decref(p);
    p = transform("[{\"type\":\"DetectionsShift\",\"shift_x\":5,\"shift_y\":-5}]");
    ASSERT_NEAR(num(json_array_get(p, 0), "x"), 45, 1e-6);
    ASSERT_NEAR(num(json_array_get(p, 0), "y"), 15, 1e-6);
    json_decref(p);
    p = transform("[{\"type\":\"DetectionsOffset\",\"offset_x\":10,\"offset_y\":4}]");
    ASSERT_NEAR(num(json_array_get(p, 0), "width"), 50, 1e-6);
    ASSERT_NEAR(num(json_array_get(p, 0), "height"), 24, 1e-6);
    json_decref(p);
    /* the bright box (centre 40,20) is outside the thing box (50..150 x 25..75) */
    p = transform("[{\"type\":\"PickDetectionsByParentClass\",\"parent_class\":\"thing\"}]");
    ASSERT_EQ(json_array_size(p), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "thing");
    json_decref(p);
    p = transform("[{\"type\":\"DetectionsShift\",\"shift_x\":60,\"shift_y\":30},"
                  "{\"type\":\"PickDetectionsByParentClass\",\"parent_class\":\"nothing\"}]");
    ASSERT_EQ(json_array_size(p), 0);
    json_decref(p);
    p = transform("[{\"type\":\"DetectionsRename\",\"class_map\":{\"bright\":\"child\","
                  "\"thing\":\"parent\"}},{\"type\":\"DetectionsOffset\",\"offset_x\":100,"
                  "\"offset_y\":40},{\"type\":\"PickDetectionsByParentClass\",\"parent_class\":"
                  "\"parent\"}]");
    /* grown by 50/20 px per side the parent (0..200 x 5..95) holds the child's centre */
    ASSERT_EQ(json_array_size(p), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "parent");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 1), "class")), "child");
    json_decref(p);
    p = transform("[{\"type\":\"DetectionsSelection\",\"mode\":\"right_most\"}]");
    ASSERT_EQ(json_array_size(p), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "thing");
    json_decref(p);
    p = transform("[{\"type\":\"DetectionsSelection\",\"mode\":\"top_confidence\"}]");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "bright");
    json_decref(p);
    /* non-strict rename: new names get ids from the offset in sorted order */
    p = transform("[{\"type\":\"DetectionsRename\",\"class_map\":{\"thing\":\"zebra\",\"bright\":"
                  "\"apple\"},\"strict\":false,\"new_classes_id_offset\":100}]");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "apple");
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(p, 0), "class_id")), 100);
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(p, 1), "class_id")), 101);
    json_decref(p);
    p = transform("[{\"type\":\"DetectionsRename\",\"class_map\":{\"thing\":\"zebra\",\"bright\":"
                  "\"apple\"},\"strict\":true}]");
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(p, 1), "class_id")), 1);
    json_decref(p);
}

TEST(detection_offset_pixels_percent)
{
    struct vis_image *im = scene();
    json_t *r = run_text(
        HEAD ",{\"type\":\"DetectionOffset\",\"name\":\"o\",\"predictions\":\"$steps.m.predictions\","
             "\"offset_width\":10,\"offset_height\":45},"
             "{\"type\":\"roboflow_core/detection_offset@v1\",\"name\":\"q\",\"predictions\":"
             "\"$steps.m.predictions\",\"offset_width\":50,\"offset_height\":100,\"units\":"
             "\"Percent (%)\"}],\"outputs\":[" OUTOWN("o", "$steps.o.predictions") "," OUT(
                 "q", "$steps.q.predictions") "," OUT("m", "$steps.m.predictions") "]}",
        im, NULL);
    /* bright 20..60 x 10..30, +-5 x, +-22 y clipped at 0 -> 15..65 x 0..52 */
    json_t *o0 = json_array_get(preds_of(r, "o"), 0);
    ASSERT_NEAR(num(o0, "width"), 50, 1e-6);
    ASSERT_NEAR(num(o0, "height"), 52, 1e-6);
    ASSERT_NEAR(num(o0, "y"), 26, 1e-6);
    /* parent_id = the original detection id, new id */
    json_t *m0 = json_array_get(preds_of(r, "m"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(o0, "parent_id")),
                  json_string_value(json_object_get(m0, "detection_id")));
    ASSERT(strcmp(json_string_value(json_object_get(o0, "detection_id")),
                  json_string_value(json_object_get(m0, "detection_id"))) != 0);
    /* percent: thing 100x50 grows by 25 px each side in x and 25 in y -> clipped 25..175, 0..100 */
    json_t *q1 = json_array_get(preds_of(r, "q"), 1);
    ASSERT_NEAR(num(q1, "width"), 150, 1e-6);
    ASSERT_NEAR(num(q1, "height"), 100, 1e-6);
    json_decref(r);
    vis_image_free(im);
}

TEST(per_class_confidence_filter_and_merge)
{
    struct vis_image *im = scene();
    json_t *r = run_text(
        HEAD ",{\"type\":\"roboflow_core/per_class_confidence_filter@v1\",\"name\":\"f\","
             "\"predictions\":\"$steps.m.predictions\",\"class_thresholds\":{\"bright\":0.95}},"
             "{\"type\":\"roboflow_core/detections_merge@v1\",\"name\":\"g\",\"predictions\":"
             "\"$steps.m.predictions\"}],"
             "\"outputs\":[" OUT("f", "$steps.f.predictions") "," OUT("g", "$steps.g.predictions") "]}",
        im, NULL);
    json_t *f = preds_of(r, "f");
    ASSERT_EQ(json_array_size(f), 1); /* bright 0.9 < 0.95 goes; thing 0.5 >= 0.3 stays */
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(f, 0), "class")), "thing");
    json_t *g = json_array_get(preds_of(r, "g"), 0);
    ASSERT_EQ(json_array_size(preds_of(r, "g")), 1);
    /* union of 20..150 x 10..75 */
    ASSERT_NEAR(num(g, "width"), 130, 1e-6);
    ASSERT_NEAR(num(g, "height"), 65, 1e-6);
    ASSERT_NEAR(num(g, "confidence"), 0.5, 1e-9);
    ASSERT_STR_EQ(json_string_value(json_object_get(g, "class")), "merged_detection");
    ASSERT_EQ(json_integer_value(json_object_get(g, "class_id")), 0);
    ASSERT(!json_object_get(g, "parent_id")); /* Roboflow's merged data has no parent */
    ASSERT(json_is_null(json_object_get(json_object_get(json_object_get(r, "g"), "image"), "width")));
    json_decref(r);
    vis_image_free(im);
}

static struct wf_det *add_box(struct wf_dets *ds, float x1, float y1, float x2, float y2,
                              float conf, int cls)
{
    struct wf_det *d = wf_dets_push_new(ds);
    d->x1 = x1, d->y1 = y1, d->x2 = x2, d->y2 = y2, d->confidence = conf, d->class_id = cls;
    return d;
}

TEST(nms_and_nmm)
{
    struct wf_dets *ds = wf_dets_new();
    add_box(ds, 0, 0, 10, 10, 0.9f, 0);
    add_box(ds, 1, 0, 11, 10, 0.8f, 0);   /* IoU 90/110 = 0.818 with the first */
    add_box(ds, 1, 0, 11, 10, 0.7f, 1);   /* other class: kept */
    add_box(ds, 20, 20, 30, 30, 0.6f, 0); /* far away: kept */
    struct wf_dets *m = wf_dets_clone(ds);
    wf__dets_nms(ds, 0.3, false);
    ASSERT_EQ(ds->n, 3);
    ASSERT_NEAR(ds->d[0].confidence, 0.9, 1e-6);
    ASSERT_EQ(ds->d[1].class_id, 1);
    wf__dets_nms(m, 0.3, true);
    ASSERT_EQ(m->n, 3);
    ASSERT_NEAR(m->d[0].x2, 11, 1e-6);                  /* union box */
    ASSERT_NEAR(m->d[0].confidence, (0.9 + 0.8) / 2, 1e-6); /* equal areas */
    wf_dets_free(ds);
    wf_dets_free(m);
}

static json_t *replacement(const char *extra, double cls_conf)
{
    char buf[4096];
    struct vis_image *im = scene();
    snprintf(buf, sizeof buf,
             HEAD ",{\"type\":\"Crop\",\"name\":\"c\",\"image\":\"$inputs.image\",\"predictions\":"
                  "\"$steps.m.predictions\"},"
                  "{\"type\":\"ClassificationModel\",\"name\":\"k\",\"image\":\"$steps.c.crops\","
                  "\"model_id\":\"cls/1\",\"confidence\":%g},"
                  "{\"type\":\"DetectionsClassesReplacement\",\"name\":\"r\","
                  "\"object_detection_predictions\":\"$steps.m.predictions\","
                  "\"classification_predictions\":\"$steps.k.predictions\"%s},"
                  "{\"type\":\"DimensionCollapse\",\"name\":\"d\",\"data\":\"$steps.k.predictions\"},"
                  "{\"type\":\"PropertyDefinition\",\"name\":\"n\",\"data\":\"$steps.d.output\","
                  "\"operations\":[{\"type\":\"SequenceLength\"}]},"
                  "{\"type\":\"PropertyDefinition\",\"name\":\"top\",\"data\":\"$steps.k.predictions\","
                  "\"operations\":[{\"type\":\"ClassificationPropertyExtract\",\"property_name\":"
                  "\"top_class\"}]}],"
                  "\"outputs\":[" OUT("r", "$steps.r.predictions") "," OUT("n", "$steps.n.output") "," OUT(
                      "top", "$steps.top.output") "]}",
             cls_conf, extra);
    json_t *r = run_text(buf, im, NULL);
    vis_image_free(im);
    return r;
}

TEST(classes_replacement_fallback_and_collapse)
{
    /* both crops classified: classes, ids and confidences replaced */
    json_t *r = replacement("", 0.5);
    json_t *p = preds_of(r, "r");
    ASSERT_EQ(json_array_size(p), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "bright");
    ASSERT_NEAR(num(json_array_get(p, 0), "confidence"), 0.8, 1e-6);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 1), "class")), "dark");
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(p, 1), "class_id")), 1);
    ASSERT_EQ(json_integer_value(json_object_get(r, "n")), 2);
    json_decref(r);
    /* the dark crop (0.7) falls below 0.75: its box is dropped... */
    r = replacement("", 0.75);
    p = preds_of(r, "r");
    ASSERT_EQ(json_array_size(p), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 0), "class")), "bright");
    json_t *top = json_object_get(r, "top");
    ASSERT_STR_EQ(json_string_value(json_array_get(top, 0)), "bright");
    ASSERT_STR_EQ(json_string_value(json_array_get(top, 1)), "");
    json_decref(r);
    /* ...or gets the fallback class (id sys.maxsize when none is given) */
    r = replacement(",\"fallback_class_name\":\"unknown\"", 0.75);
    p = preds_of(r, "r");
    ASSERT_EQ(json_array_size(p), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(p, 1), "class")), "unknown");
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(p, 1), "class_id")), INT64_MAX);
    ASSERT_NEAR(num(json_array_get(p, 1), "confidence"), 0, 1e-9);
    json_decref(r);
    r = replacement(",\"fallback_class_name\":\"unknown\",\"fallback_class_id\":7", 0.75);
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(preds_of(r, "r"), 1), "class_id")), 7);
    json_decref(r);
    /* no crop classified at all: empty detections, fallback or not */
    r = replacement(",\"fallback_class_name\":\"unknown\"", 0.95);
    ASSERT_EQ(json_array_size(preds_of(r, "r")), 0);
    ASSERT(json_is_null(json_object_get(json_object_get(json_object_get(r, "r"), "image"), "width")));
    json_decref(r);
}

TEST(continue_if_masks_and_first_non_empty)
{
    /* two images: only the one with a bright box continues to the crop */
    const char *text =
        HEAD ",{\"type\":\"DetectionsFilter\",\"name\":\"b\",\"predictions\":\"$steps.m.predictions\","
             "\"operations\":[{\"type\":\"DetectionsFilter\",\"filter_operation\":" BIN(
                 DYN("class_name"), "==", STATIC("\"bright\"")) "}]},"
             "{\"type\":\"ContinueIf\",\"name\":\"ci\",\"condition_statement\":{\"type\":"
             "\"StatementGroup\",\"statements\":[{\"type\":\"UnaryStatement\",\"operand\":{\"type\":"
             "\"DynamicOperand\",\"operand_name\":\"d\"},\"operator\":{\"type\":\"(Sequence) is not "
             "empty\"}}]},\"evaluation_parameters\":{\"d\":\"$steps.b.predictions\"},\"next_steps\":"
             "[\"$steps.n\"]},"
             "{\"type\":\"PropertyDefinition\",\"name\":\"n\",\"data\":\"$steps.b.predictions\","
             "\"operations\":[{\"type\":\"SequenceLength\"}]},"
             "{\"type\":\"FirstNonEmptyOrDefault\",\"name\":\"f\",\"data\":[\"$steps.n.output\"],"
             "\"default\":-1}],"
             "\"outputs\":[" OUT("n", "$steps.n.output") "," OUT("f", "$steps.f.output") "]}";
    struct wf_workflow *wf = compile_or_die(text);
    struct vis_image *a = scene(), *b = img_new(200, 100, 0);
    const struct vis_image *imgs[2] = {a, b};
    struct wf_image_input ii = {"image", imgs, 2, true, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    json_t *out = NULL;
    char err[512];
    ASSERT_OK(wf_run(wf, &fake_env, &in, &out, err, sizeof err));
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(out, 0), "n")), 1);
    ASSERT(json_is_null(json_object_get(json_array_get(out, 1), "n")));
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(out, 0), "f")), 1);
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(out, 1), "f")), -1);
    json_decref(out);
    vis_image_free(a);
    vis_image_free(b);
    wf_free(wf);
}

TEST(switch_case_expression_template)
{
    struct vis_image *im = scene();
    json_t *params = json_pack("{s:s}", "p", "Go");
    json_t *r = run_text(
        HEAD ",{\"type\":\"SwitchCase\",\"name\":\"sw\",\"value\":\"$inputs.p\",\"case_insensitive\":"
             "true,\"cases\":{\"go\":[\"$steps.t\"]},\"default_next_steps\":[\"$steps.u\"]},"
             "{\"type\":\"roboflow_core/string_template@v1\",\"name\":\"t\",\"template\":"
             "\"found {{ $parameters.n }} boxes, top {{$parameters.c}}\",\"data\":{\"n\":"
             "\"$steps.m.predictions\",\"c\":\"$steps.m.predictions\"},\"data_operations\":{\"n\":"
             "[{\"type\":\"SequenceLength\"}],\"c\":[{\"type\":\"DetectionsPropertyExtract\","
             "\"property_name\":\"class_name\"}]}},"
             "{\"type\":\"roboflow_core/string_template@v1\",\"name\":\"u\",\"template\":\"x\","
             "\"data\":{\"n\":\"$steps.m.predictions\"}},"
             "{\"type\":\"Expression\",\"name\":\"e\",\"data\":{\"d\":\"$steps.m.predictions\"},"
             "\"data_operations\":{\"d\":[{\"type\":\"SequenceLength\"}]},\"switch\":{\"type\":"
             "\"CasesDefinition\",\"cases\":[{\"type\":\"CaseDefinition\",\"condition\":{\"type\":"
             "\"StatementGroup\",\"statements\":[{\"type\":\"BinaryStatement\",\"left_operand\":{"
             "\"type\":\"DynamicOperand\",\"operand_name\":\"d\"},\"comparator\":{\"type\":"
             "\"(Number) >=\"},\"right_operand\":" STATIC("2") "}]},\"result\":{\"type\":"
             "\"StaticCaseResult\",\"value\":\"many\"}}],\"default\":{\"type\":\"DynamicCaseResult\","
             "\"parameter_name\":\"d\",\"operations\":[{\"type\":\"Multiply\",\"other\":10}]}}}],"
             "\"outputs\":[" OUT("t", "$steps.t.output") "," OUT("u", "$steps.u.output") "," OUT(
                 "e", "$steps.e.output") "]}",
        im, params);
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "t")),
                  "found 2 boxes, top ['bright', 'thing']"); /* Python str() */
    ASSERT(json_is_null(json_object_get(r, "u")));
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "e")), "many");
    json_decref(r);
    json_decref(params);
    vis_image_free(im);
}

TEST(csv_formatter_batch_and_json_parser)
{
    const char *text =
        HEAD ",{\"type\":\"roboflow_core/csv_formatter@v1\",\"name\":\"csv\",\"columns_data\":{"
             "\"count\":\"$steps.m.predictions\",\"label\":\"$inputs.p\",\"const\":\"a,b\"},"
             "\"columns_operations\":{\"count\":[{\"type\":\"SequenceLength\"}]}},"
             "{\"type\":\"roboflow_core/json_parser@v1\",\"name\":\"j\",\"raw_json\":\"$inputs.p\","
             "\"expected_fields\":[\"k\",\"missing\"]}],"
             "\"outputs\":[" OUT("csv", "$steps.csv.csv_content") "," OUT("j", "$steps.j.*") "]}";
    struct wf_workflow *wf = compile_or_die(text);
    struct vis_image *a = scene(), *b = img_new(200, 100, 0);
    const struct vis_image *imgs[2] = {a, b};
    struct wf_image_input ii = {"image", imgs, 2, true, NULL};
    json_t *params = json_pack("{s:s}", "p", "=cmd ```json\n{\"k\": [1, 2]}\n```");
    struct wf_run_inputs in = {&ii, 1, params};
    json_t *out = NULL;
    char err[512];
    ASSERT_OK(wf_run(wf, &fake_env, &in, &out, err, sizeof err));
    ASSERT(json_is_null(json_object_get(json_array_get(out, 0), "csv")));
    const char *csv = json_string_value(json_object_get(json_array_get(out, 1), "csv"));
    ASSERT(csv);
    /* header, then one row per image; formula-like text is prefixed, commas quoted */
    ASSERT(str_has_prefix(csv, "count,label,const,timestamp\n2,\"'=cmd ```json\n{\"\"k\"\": [1, 2]}\n```\",\"a,b\","));
    ASSERT(strstr(csv, "\n1,\"'=cmd"));
    ASSERT(strstr(csv, "+00:00\n"));
    json_t *j = json_object_get(json_array_get(out, 0), "j");
    ASSERT(json_is_true(json_object_get(j, "error_status"))); /* "missing" is missing */
    ASSERT_STR_EQ(json_object_iter_key(json_object_iter(j)), "k"); /* fields, then error_status */
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(j, "k"), 1)), 2);
    ASSERT(json_is_null(json_object_get(j, "missing")));
    json_decref(out);
    json_decref(params);
    vis_image_free(a);
    vis_image_free(b);
    wf_free(wf);
    expect_compile_error(HEAD ",{\"type\":\"roboflow_core/csv_formatter@v1\",\"name\":\"csv\","
                              "\"columns_data\":{\"timestamp\":1}}],\"outputs\":[]}",
                         "step 'csv': field 'columns_data': the column name 'timestamp' is reserved");
}

TEST(query_language_direct)
{
    char err[256];
    struct wf_value *params = wf_value_dict_new();
    wf_value_dict_add(params, "x", wf_value_json(json_integer(5)));
    wf_value_dict_add(params, "s", wf_value_json(json_string("Hello")));
    wf_value_dict_add(params, "l", wf_value_json(json_pack("[s,s]", "a", "b")));
    struct wf_ql_ctx cx = {.params = params, .err = err, .errlen = sizeof err};
    struct {
        const char *stmt;
        bool want;
    } cases[] = {
        {"{\"type\":\"UnaryStatement\",\"operand\":{\"type\":\"DynamicOperand\",\"operand_name\":"
         "\"l\"},\"operator\":{\"type\":\"(Sequence) is empty\"}}", false},
        {"{\"type\":\"BinaryStatement\",\"left_operand\":" STATIC("[\"a\",\"z\"]") ",\"comparator\":"
         "{\"type\":\"any in (Sequence)\"},\"right_operand\":{\"type\":\"DynamicOperand\","
         "\"operand_name\":\"l\"}}", true},
        {"{\"type\":\"BinaryStatement\",\"left_operand\":" STATIC("[\"a\",\"z\"]") ",\"comparator\":"
         "{\"type\":\"all in (Sequence)\"},\"right_operand\":{\"type\":\"DynamicOperand\","
         "\"operand_name\":\"l\"}}", false},
        {"{\"type\":\"BinaryStatement\",\"left_operand\":{\"type\":\"DynamicOperand\",\"operand_name\":"
         "\"s\",\"operations\":[{\"type\":\"StringToLowerCase\"}]},\"comparator\":{\"type\":\"==\"},"
         "\"right_operand\":" STATIC("\"hello\"") "}", true},
        {"{\"type\":\"BinaryStatement\",\"left_operand\":{\"type\":\"DynamicOperand\",\"operand_name\":"
         "\"x\",\"operations\":[{\"type\":\"Multiply\",\"other\":2}]},\"comparator\":{\"type\":\"==\"},"
         "\"right_operand\":" STATIC("10.0") "}", true},
        {"{\"type\":\"UnaryStatement\",\"operand\":" STATIC("true") ",\"operator\":{\"type\":"
         "\"(Boolean) is False\"}}", false},
        {"{\"type\":\"UnaryStatement\",\"operand\":{\"type\":\"DynamicOperand\",\"operand_name\":\"x\"},"
         "\"operator\":{\"type\":\"DoesNotExist\"}}", false},
        {"{\"type\":\"UnaryStatement\",\"operand\":{\"type\":\"DynamicOperand\",\"operand_name\":\"s\","
         "\"operations\":[{\"type\":\"StringMatches\",\"regex\":\"^H[a-z]+o$\"}]},\"operator\":{\"type\":"
         "\"(Boolean) is True\"}}", true},
        {"{\"type\":\"BinaryStatement\",\"left_operand\":{\"type\":\"StaticOperand\",\"value\":5,"
         "\"operations\":[{\"type\":\"RandomNumber\",\"min_value\":2,\"max_value\":3}]},\"comparator\":"
         "{\"type\":\"(Number) in range\"},\"right_operand\":" STATIC("[2, 3]") "}", true},
        {"{\"type\":\"BinaryStatement\",\"left_operand\":{\"type\":\"StaticOperand\",\"value\":[],"
         "\"operations\":[{\"type\":\"NumericSequenceAggregate\",\"function\":\"max\",\"neutral_value\":-1}]},"
         "\"comparator\":{\"type\":\"(Number) ==\"},\"right_operand\":" STATIC("-1") "}", true},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        json_t *s = json_loads(cases[i].stmt, 0, NULL);
        bool got = !cases[i].want;
        ASSERT(s);
        if (wf__ql_eval(&cx, s, &got) < 0)
            T_FAIL("case %zu: %s", i, err);
        if (got != cases[i].want)
            T_FAIL("case %zu: got %d", i, got);
        json_decref(s);
    }
    /* errors are clean */
    json_t *bad = json_loads("{\"type\":\"BinaryStatement\",\"left_operand\":" STATIC("\"a\"")
                             ",\"comparator\":{\"type\":\"(Number) >\"},\"right_operand\":"
                             STATIC("1") "}", 0, NULL);
    bool res;
    ASSERT(wf__ql_eval(&cx, bad, &res) < 0);
    ASSERT(strstr(err, "expects numbers"));
    json_decref(bad);
    wf_value_unref(params);
}

TEST(detections_consensus_votes)
{
    struct vis_image *im = scene();
    json_t *r = run_text(
        HEAD ",{\"type\":\"ObjectDetectionModel\",\"name\":\"m2\",\"image\":\"$inputs.image\","
             "\"model_id\":\"fake/2\",\"confidence\":0.6},"
             "{\"type\":\"DetectionsTransformation\",\"name\":\"s\",\"predictions\":"
             "\"$steps.m2.predictions\",\"operations\":[{\"type\":\"DetectionsShift\",\"shift_x\":4,"
             "\"shift_y\":0}]},"
             "{\"type\":\"DetectionsConsensus\",\"name\":\"c\",\"predictions_batches\":["
             "\"$steps.m.predictions\",\"$steps.s.predictions\"],\"required_votes\":2},"
             "{\"type\":\"DetectionsConsensus\",\"name\":\"c1\",\"predictions_batches\":["
             "\"$steps.m.predictions\",\"$steps.s.predictions\"],\"required_votes\":1,"
             "\"class_aware\":false,\"required_objects\":5}],"
             "\"outputs\":[" OUT("c", "$steps.c.*") "," OUT("c1", "$steps.c1.*") "]}",
        im, NULL);
    json_t *c = json_object_get(r, "c");
    json_t *p = json_object_get(json_object_get(c, "predictions"), "predictions");
    /* m has bright+thing, m2 (conf 0.6) only bright shifted by 4 px: IoU 36/44 */
    ASSERT_EQ(json_array_size(p), 1);
    ASSERT_NEAR(num(json_array_get(p, 0), "x"), 42, 1e-5); /* average of 40 and 44 */
    ASSERT_NEAR(num(json_array_get(p, 0), "confidence"), 0.9, 1e-6);
    ASSERT(json_is_true(json_object_get(c, "object_present")));
    ASSERT_NEAR(json_number_value(json_object_get(json_object_get(c, "presence_confidence"), "bright")),
                0.9, 1e-6);
    /* one vote: bright (merged) + thing; 2 < required_objects 5 -> not present */
    json_t *c1 = json_object_get(r, "c1");
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(c1, "predictions"), "predictions")), 2);
    ASSERT(json_is_false(json_object_get(c1, "object_present")));
    ASSERT_EQ(json_object_size(json_object_get(c1, "presence_confidence")), 0);
    json_decref(r);
    vis_image_free(im);
}

TEST(bounding_rect_of_polygons)
{
    struct vis_image *im = scene();
    json_t *r = run_text(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"InstanceSegmentationModel\",\"name\":\"s\",\"image\":"
        "\"$inputs.image\",\"model_id\":\"s/1\"},{\"type\":\"roboflow_core/bounding_rect@v1\","
        "\"name\":\"b\",\"predictions\":\"$steps.s.predictions\"},"
        "{\"type\":\"roboflow_core/bounding_rect@v1\",\"name\":\"bad\",\"predictions\":"
        "\"$steps.s.predictions\"}],"
        "\"outputs\":[" OUT("b", "$steps.b.detections_with_rect") "]}",
        im, NULL);
    json_t *p = json_array_get(preds_of(r, "b"), 1); /* thing: 50..150 x 25..75 */
    ASSERT_NEAR(num(p, "x"), 100, 1e-6);
    ASSERT_NEAR(num(p, "angle"), 90, 1e-6);
    ASSERT_NEAR(num(p, "width"), 50, 1e-4); /* OpenCV convention: sides swapped at 90 deg */
    ASSERT_NEAR(num(p, "height"), 100, 1e-4);
    ASSERT_EQ(json_array_size(json_object_get(p, "rect")), 4);
    ASSERT_EQ(json_array_size(json_object_get(p, "points")), 4);
    json_decref(r);
    /* detections without masks are refused */
    struct wf_workflow *wf = compile_or_die(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"InstanceSegmentationModel\",\"name\":\"s\",\"image\":"
        "\"$inputs.image\",\"model_id\":\"s/1\"},{\"type\":\"ObjectDetectionModel\",\"name\":\"m\","
        "\"image\":\"$inputs.image\",\"model_id\":\"m/1\"}],\"outputs\":[]}");
    wf_free(wf);
    const char *bad = "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\","
        "\"model_id\":\"m/1\"},{\"type\":\"roboflow_core/bounding_rect@v1\",\"name\":\"b\","
        "\"predictions\":\"$steps.m.predictions\"}],\"outputs\":[]}";
    expect_compile_error(bad, "kind mismatch");
    vis_image_free(im);
}

TEST(dynamic_crop_mask_opacity)
{
    /* the polygon stays on the box while DetectionsOffset grows the box by 5 px
     * per side: the crop's 5 px border lies outside the mask and turns red */
    struct vis_image *im = img_new(200, 100, 40);
    json_t *r = run_text(
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"InstanceSegmentationModel\",\"name\":\"s\",\"image\":"
        "\"$inputs.image\",\"model_id\":\"s/1\"},{\"type\":\"DetectionsTransformation\",\"name\":"
        "\"t\",\"predictions\":\"$steps.s.predictions\",\"operations\":[{\"type\":"
        "\"DetectionsOffset\",\"offset_x\":10,\"offset_y\":10}]},{\"type\":\"Crop\",\"name\":\"c\","
        "\"image\":\"$inputs.image\",\"predictions\":\"$steps.t.predictions\",\"mask_opacity\":1.0,"
        "\"background_color\":\"#FF0000\"}],\"outputs\":[" OUT("c", "$steps.c.crops") "]}",
        im, NULL);
    json_t *c0 = json_array_get(json_object_get(r, "c"), 0);
    const char *b64 = json_string_value(json_object_get(c0, "value"));
    size_t len;
    uint8_t *jpg = base64_decode(b64, strlen(b64), &len);
    struct vis_image *dec = NULL;
    ASSERT_OK(vis_decode(jpg, len, &dec));
    ASSERT_EQ(dec->w, 110); /* 50..150 grown to 45..155 */
    ASSERT_EQ(dec->h, 60);
    ASSERT(vis_px(dec, 1, 30)[2] > 200 && vis_px(dec, 1, 30)[0] < 60); /* red border */
    ASSERT(vis_px(dec, 55, 30)[2] < 70);                               /* grey inside */
    vis_image_free(dec);
    free(jpg);
    json_decref(r);
    vis_image_free(im);
}

TEST(python_str_of_values)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"0.1", "0.1"},           {"100.0", "100.0"},        {"1e16", "1e+16"},
        {"1e-5", "1e-05"},        {"2.5e-7", "2.5e-07"},     {"123456.789", "123456.789"},
        {"-0.5", "-0.5"},         {"3", "3"},                {"true", "True"},
        {"null", "None"},         {"\"it's\"", "it's"},      {"[\"it's\", 1.5, null]", "[\"it's\", 1.5, None]"},
        {"{\"a\": [1, 2.0]}", "{'a': [1, 2.0]}"}, {"[\"a\\nb\"]", "['a\\nb']"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        char *s = wf__py_str(j);
        if (strcmp(s, cases[i].want))
            T_FAIL("%s -> %s, want %s", cases[i].json, s, cases[i].want);
        free(s);
        json_decref(j);
    }
}

/* ---- manifests against spec/blocks.json ---------------------------------------------------- */
/* A blocks.json default (Python repr) as JSON; NULL when not comparable. */
static json_t *py_default_json(const char *d)
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
    if (!strncmp(d, "AggregationMode.", 16) || !strncmp(d, "MaskAggregationMode.", 20)) {
        char low[32];
        snprintf(low, sizeof low, "%s", strchr(d, '.') + 1);
        for (char *q = low; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        return json_string(low);
    }
    if (!strcmp(d, "factory:dict") || !strcmp(d, "factory:lambda: {}"))
        return json_object();
    if (!strcmp(d, "factory:list"))
        return json_array();
    if (d[0] == '(') { /* tuple */
        char *t = xstrdup(d);
        t[0] = '[', t[n - 1] = ']';
        json_t *j = json_loads(t, JSON_DECODE_ANY, NULL);
        free(t);
        return j;
    }
    return json_loads(d, JSON_DECODE_ANY, NULL);
}

static int check_manifests(const json_t *spec, const struct wf_block *const *tab)
{
    int n = 0;
    for (size_t b = 0; tab[b]; b++) {
        const struct wf_block *blk = tab[b];
        const json_t *entry = NULL, *it, *fl;
        size_t k, f;
        json_array_foreach(spec, k, it) {
            const json_t *ty = json_object_get(it, "type");
            const char *t0 = json_string_value(json_array_get(ty, 0));
            if (t0 && !strcmp(t0, blk->types[0]))
                entry = it;
        }
        if (!entry)
            T_FAIL("block '%s' is not in blocks.json", blk->types[0]);
        n++;
        json_array_foreach(json_object_get(entry, "type"), k, it) {
            bool found = false;
            for (size_t t = 0; blk->types[t]; t++)
                found |= !strcmp(blk->types[t], json_string_value(it));
            if (!found)
                T_FAIL("block '%s' misses alias '%s'", blk->types[0], json_string_value(it));
        }
        json_array_foreach(json_object_get(entry, "fields"), f, fl) {
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
                continue;
            }
            json_t *want = py_default_json(def), *got;
            if (!want)
                T_FAIL("block '%s' field '%s': cannot read default %s", blk->types[0], name, def);
            got = mine->def ? json_loads(mine->def, JSON_DECODE_ANY, NULL) : NULL;
            if (!got || !(json_equal(want, got) ||
                          (json_is_number(want) && json_is_number(got) &&
                           json_number_value(want) == json_number_value(got))))
                T_FAIL("block '%s' field '%s': default %s, blocks.json says %s", blk->types[0],
                       name, mine->def ? mine->def : "(required)", def);
            json_decref(want);
            json_decref(got);
        }
        json_array_foreach(json_object_get(entry, "outputs"), k, it) {
            char name[64];
            bool found = false;
            snprintf(name, sizeof name, "%s", json_string_value(it));
            *strchrnul(name, '[') = '\0';
            if (!strcmp(name, "INFERENCE_ID_KEY"))
                snprintf(name, sizeof name, "inference_id");
            if (!strcmp(name, "*"))
                continue; /* dynamic outputs */
            for (size_t o = 0; o < blk->noutputs; o++)
                found |= !strcmp(blk->outputs[o].name, name);
            if (!found)
                T_FAIL("block '%s' misses output '%s'", blk->types[0], name);
        }
    }
    return n;
}

TEST(manifests_match_blocks_json)
{
    static const char *const paths[] = {"../shared/spec/blocks.json", "/work/shared/spec/blocks.json"};
    json_t *spec = NULL;
    for (size_t i = 0; i < ARRAY_LEN(paths) && !spec; i++)
        spec = json_load_file(paths[i], 0, NULL);
    ASSERT(spec != NULL);
    int n = check_manifests(spec, wf_blocks_core) + check_manifests(spec, wf_blocks_transform) +
            check_manifests(spec, wf_blocks_fusion) + check_manifests(spec, wf_blocks_models);
    ASSERT_EQ(n, 8 + 11 + 4 + 18); /* models: 15 + semantic v1, v2 + instance seg v4 */
    json_decref(spec);
}

TEST_MAIN()
