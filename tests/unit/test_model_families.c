/*
 * test_model_families.c — the detection architectures besides YOLOv8
 * (YOLOv5, YOLOv7, YOLOv10, YOLO26, YOLO-NAS, RF-DETR) on the tiny
 * random-weight replicas of tests/data/models/<family>-tiny (made by
 * scripts/models/make-family-models.py; run from the repository root).
 *
 * Recognition: from the package files and from the shapes alone.
 * Exactness: ONNX Runtime's raw outputs against PyTorch's; vbatch's decoded
 * detections against tests/unit/roboflow_ref.py (Roboflow's inference_models
 * post-processing rewritten in plain Python) on the same raw outputs, for
 * several pictures (square, non-square with letterbox padding) and
 * parameter sets.  Refusals: outputs that fit no architecture, or not the
 * one the package names; NaN outputs at registration and at run time.
 */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_TIMEOUT_S 180 /* the reference runs in Python, per picture */
#include "t.h"

#include "base/base.h"
#include "model/model.h"

static const char *src_dir(void)
{
    const char *s = getenv("VBATCH_SRCDIR");
    return s ? s : ".";
}

static char *mpath(const char *rel)
{
    return xasprintf("%s/tests/data/models/%s", src_dir(), rel);
}

static struct vis_image *png_load(const char *path)
{
    png_image pi;
    memset(&pi, 0, sizeof(pi));
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path))
        T_FAIL("cannot read %s", path);
    pi.format = PNG_FORMAT_BGR;
    struct vis_image *im = xcalloc(1, sizeof(*im));
    im->w = (int)pi.width;
    im->h = (int)pi.height;
    im->fmt = VIS_BGR;
    im->stride = im->w * 3;
    im->px = xmalloc((size_t)im->stride * (size_t)im->h);
    if (!png_image_finish_read(&pi, NULL, im->px, im->stride, NULL))
        T_FAIL("cannot decode %s", path);
    return im;
}

static void img_free(struct vis_image *im)
{
    if (im) {
        free(im->px);
        free(im);
    }
}

static struct model_registry *reg_new(const char *models_dir)
{
    struct model_registry *reg = NULL;
    char err[512];
    struct model_registry_opts o = {.intra_op_threads = 1, .models_dir = models_dir};
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof(err)));
    return reg;
}

static struct model *reg_add(struct model_registry *reg, const char *id, const char *rel)
{
    char err[1024] = "";
    char *p = mpath(rel);
    if (model_registry_register_dir(reg, id, p, err, sizeof(err)) < 0)
        T_FAIL("register %s: %s", rel, err);
    free(p);
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, id, &m, err, sizeof(err)));
    return m;
}

static char *read_file(const char *path, size_t *len)
{
    char *d = NULL;
    ASSERT_OK(file_read_all(path, 1 << 26, &d, len));
    return d;
}

static const struct family {
    const char *dir, *arch;
    int n_out;
} families[] = {
    {"yolov5-tiny", "yolov5", 1},   {"yolov7-tiny", "yolov7", 1}, {"yolov10-tiny", "yolov10", 1},
    {"yolo26-tiny", "yolo26", 1},   {"yolonas-tiny", "yolonas", 2}, {"rfdetr-tiny", "rfdetr", 2},
    {"yolo26-ultra", "yolo26", 1}, /* Ultralytics metadata only: end2end "True" */
};

/* ---- recognition ------------------------------------------------------------- */

TEST(families_recognised_from_package)
{
    struct model_registry *reg = reg_new(NULL);
    for (size_t i = 0; i < ARRAY_LEN(families); i++) {
        struct model *m = reg_add(reg, families[i].dir, families[i].dir);
        json_t *d = model_describe(m);
        printf("  %s: architecture %s, layout %s\n", families[i].dir,
               json_string_value(json_object_get(d, "architecture")),
               json_string_value(json_object_get(d, "output_layout")));
        ASSERT_STR_EQ(json_string_value(json_object_get(d, "task")), "object-detection");
        ASSERT_STR_EQ(json_string_value(json_object_get(d, "architecture")), families[i].arch);
        ASSERT_EQ((int)json_array_size(json_object_get(d, "outputs")), families[i].n_out);
        json_decref(d);
        model_unref(m);
    }
    /* RF-DETR: the super-class removed by class_names_operations */
    struct model *m = NULL;
    char err[256];
    ASSERT_OK(model_registry_get(reg, NULL, "rfdetr-tiny", &m, err, sizeof(err)));
    ASSERT_EQ((int)model_class_count(m), 3);
    ASSERT_STR_EQ(model_class_name(m, 0), "circle");
    ASSERT_STR_EQ(model_class_name(m, 2), "triangle");
    model_unref(m);
    model_registry_free(reg);
}

/* The ONNX bytes alone (class names given, nothing else): the shapes
 * decide.  One-class YOLOv5 output (N, A, 6) is told from an end-to-end
 * (N, 300, 6) by its anchor count. */
TEST(families_recognised_from_shapes)
{
    struct model_registry *reg = reg_new(NULL);
    /* yolo26-ultra keeps its ONNX metadata (end2end) in the bytes */
    const char *want[] = {"yolov5", "yolov5", "yolov10", "yolov10", "yolonas", "rfdetr", "yolo26"};
    for (size_t i = 0; i < ARRAY_LEN(families); i++) {
        char rel[256], err[1024] = "";
        snprintf(rel, sizeof(rel), "%s/weights.onnx", families[i].dir);
        char *wp = mpath(rel);
        size_t len;
        char *onnx = read_file(wp, &len);
        json_t *meta = json_pack("{s:[s,s,s]}", "class_names", "circle", "square", "triangle");
        if (!strcmp(families[i].arch, "rfdetr")) /* 5 logits for 4 names: the no-object one */
            json_array_insert_new(json_object_get(meta, "class_names"), 0, json_string("shapes"));
        int rc = model_registry_register_bytes(reg, "bare/1", onnx, len, meta, err, sizeof(err));
        if (rc < 0)
            T_FAIL("%s from bytes: %s", families[i].dir, err);
        struct model *m = NULL;
        ASSERT_OK(model_registry_get(reg, NULL, "bare/1", &m, err, sizeof(err)));
        json_t *d = model_describe(m);
        printf("  %s (no package files): %s\n", families[i].dir,
               json_string_value(json_object_get(d, "architecture")));
        ASSERT_STR_EQ(json_string_value(json_object_get(d, "architecture")), want[i]);
        json_decref(d);
        model_unref(m);
        json_decref(meta);
        free(onnx);
        free(wp);
    }
    model_registry_free(reg);
}

/* Fused NMS (inference_config post_processing {"type": "nms", "fused":
 * true}) on a YOLOv8 package: the (N, K, 6) output is decoded like
 * YOLO26's (>= confidence, every row: no max_detections), while YOLOv10
 * keeps the first max_detections rows. */
TEST(fused_nms_package_decoded_end_to_end)
{
    struct model_registry *reg = reg_new(NULL);
    char *wp = mpath("yolov10-tiny/weights.onnx"), err[1024] = "";
    size_t len;
    char *onnx = read_file(wp, &len);
    free(wp);
    const char *metas[] = {
        "{\"class_names\": [\"a\", \"b\", \"c\"], \"inference_config\": {\"post_processing\": "
        "{\"type\": \"nms\", \"fused\": true}}}",
        "{\"class_names\": [\"a\", \"b\", \"c\"], \"model_config\": {\"model_architecture\": "
        "\"yolov8\"}, \"inference_config\": {\"post_processing\": {\"type\": \"nms\", \"fused\": true}}}",
        "{\"class_names\": [\"a\", \"b\", \"c\"], \"model_config\": {\"model_architecture\": "
        "\"yolov10\"}}",
    };
    char *ip = mpath("synth-det/test/img_03.png");
    struct vis_image *im = png_load(ip);
    free(ip);
    size_t counts[3];
    for (int k = 0; k < 3; k++) {
        json_t *meta = json_loads(metas[k], 0, NULL);
        ASSERT(meta);
        if (model_registry_register_bytes(reg, "fused/1", onnx, len, meta, err, sizeof(err)) < 0)
            T_FAIL("case %d: %s", k, err);
        struct model *m = NULL;
        ASSERT_OK(model_registry_get(reg, NULL, "fused/1", &m, err, sizeof(err)));
        json_t *d = model_describe(m);
        ASSERT_STR_EQ(json_string_value(json_object_get(d, "output_layout")),
                      "end-to-end YOLOv10/YOLO26");
        ASSERT_STR_EQ(json_string_value(json_object_get(d, "architecture")),
                      k < 2 ? "yolov8" : "yolov10");
        json_decref(d);
        struct model_params p;
        model_params_init(&p);
        p.confidence = 0.25f;
        p.max_detections = 2;
        struct model_result r;
        const struct vis_image *ims[1] = {im};
        ASSERT_OK(model_run(m, ims, 1, &p, &r, err, sizeof(err)));
        counts[k] = r.n_dets;
        model_result_release(&r);
        model_unref(m);
        json_decref(meta);
    }
    printf("  fused NMS: %zu and %zu detections (no cap), YOLOv10: %zu (max_detections 2)\n",
           counts[0], counts[1], counts[2]);
    ASSERT_EQ((int64_t)counts[2], 2);
    ASSERT_GT((int64_t)counts[0], 2);
    ASSERT_EQ((int64_t)counts[0], (int64_t)counts[1]);
    img_free(im);
    free(onnx);
    model_registry_free(reg);
}

/* ---- exactness ----------------------------------------------------------------- */

static const struct family seg_families[] = {{"rfdetr-seg-tiny", "rfdetr", 3},
                                             {"yolov5-seg-tiny", "yolov5", 2}};

TEST(families_raw_outputs_match_torch)
{
    struct model_registry *reg = reg_new(NULL);
    for (size_t fi = 0; fi < ARRAY_LEN(families) + ARRAY_LEN(seg_families); fi++) {
        const struct family *fam = fi < ARRAY_LEN(families) ? &families[fi]
                                                            : &seg_families[fi - ARRAY_LEN(families)];
        struct model *m = reg_add(reg, fam->dir, fam->dir);
        char rel[256], err[512];
        snprintf(rel, sizeof(rel), "%s/test/torch.json", fam->dir);
        char *tp = mpath(rel);
        json_error_t je;
        json_t *tj = json_load_file(tp, 0, &je);
        if (!tj)
            T_FAIL("%s: %s", tp, je.text);
        snprintf(rel, sizeof(rel), "%s/test/native.png", fam->dir);
        char *ip = mpath(rel);
        struct vis_image *im = png_load(ip);
        struct model_tensor outs[4];
        size_t nout = 0;
        if (model_run_raw(m, im, outs, 4, &nout, err, sizeof(err)) < 0)
            T_FAIL("run_raw: %s", err);
        ASSERT_EQ((int)nout, fam->n_out);
        json_t *d = model_describe(m), *ref = json_object_get(tj, "native.png");
        double worst = 0;
        for (size_t k = 0; k < nout; k++) {
            const char *name = json_string_value(
                json_object_get(json_array_get(json_object_get(d, "outputs"), k), "name"));
            json_t *r = json_object_get(ref, name);
            if (!r)
                T_FAIL("%s: torch.json has no output '%s'", fam->dir, name);
            json_t *data = json_object_get(r, "data");
            size_t step = json_object_get(r, "step") ? (size_t)json_integer_value(json_object_get(r, "step")) : 1;
            ASSERT_EQ((int64_t)json_array_size(data), (int64_t)((outs[k].count + step - 1) / step));
            if (outs[k].rank == 3 && outs[k].shape[2] == 6) {
                /* end-to-end rows come out of a top-k: two scores within
                 * rounding of each other may swap places between PyTorch
                 * and ONNX Runtime, so match rows, not positions */
                size_t nr = (size_t)outs[k].shape[1];
                bool *used = xcalloc(nr, sizeof(bool));
                for (size_t i = 0; i < nr; i++) {
                    const float *g = outs[k].data + i * 6;
                    size_t j;
                    for (j = 0; j < nr; j++) {
                        if (used[j])
                            continue;
                        bool same = true;
                        for (int c = 0; c < 6 && same; c++) {
                            double want = json_number_value(json_array_get(data, j * 6 + (size_t)c));
                            same = fabs(want - g[c]) / fmax(1.0, fabs(want)) <= 1e-4;
                        }
                        if (same)
                            break;
                    }
                    if (j == nr)
                        T_FAIL("%s row %zu (score %.7g) has no equal in torch's output",
                               fam->dir, i, (double)g[4]);
                    used[j] = true;
                    for (int c = 0; c < 6; c++) {
                        double want = json_number_value(json_array_get(data, j * 6 + (size_t)c));
                        worst = fmax(worst, fabs(want - g[c]) / fmax(1.0, fabs(want)));
                    }
                    if (j != i && fabs(g[4] - json_number_value(json_array_get(data, i * 6 + 4))) > 1e-5)
                        T_FAIL("%s row %zu: out of order beyond rounding", fam->dir, i);
                }
                free(used);
                free(outs[k].data);
                continue;
            }
            for (size_t i = 0; i < json_array_size(data); i++) {
                double want = json_number_value(json_array_get(data, i));
                double got = outs[k].data[i * step];
                double diff = fabs(want - got) / fmax(1.0, fabs(want));
                worst = fmax(worst, diff);
                if (diff > 1e-4)
                    T_FAIL("%s %s[%zu]: onnx runtime %.7g vs torch %.7g", fam->dir, name,
                           i * step, got, want);
            }
            free(outs[k].data);
        }
        printf("  %s: worst relative difference to torch %.2e\n", fam->dir, worst);
        json_decref(d);
        json_decref(tj);
        img_free(im);
        free(ip);
        free(tp);
        model_unref(m);
    }
    model_registry_free(reg);
}

/* Dump what roboflow_ref.py needs, run it, parse its detections. */
static json_t *reference(const char *arch, const json_t *params, const struct model *m,
                         const struct vis_image *im, const struct model_letterbox *lb,
                         const struct model_tensor *outs, size_t nout, const json_t *class_map)
{
    json_t *q = json_deep_copy(params);
    int w, h;
    model_input_size(m, &w, &h);
    json_object_set_new(q, "family", json_string(arch));
    json_object_set_new(q, "n_classes", json_integer((json_int_t)model_class_count(m)));
    json_object_set_new(q, "class_map", class_map ? json_deep_copy(class_map) : json_null());
    json_object_set_new(q, "input", json_pack("[i,i]", w, h));
    json_object_set_new(q, "image", json_pack("[i,i]", im->w, im->h));
    json_object_set_new(q, "lb", json_pack("{s:f,s:f,s:f,s:f,s:i,s:i}", "sx", (double)lb->sx, "sy",
                                           (double)lb->sy, "ox", (double)lb->ox, "oy",
                                           (double)lb->oy, "crop_x", lb->crop_x, "crop_y",
                                           lb->crop_y));
    json_t *jo = json_array();
    for (size_t k = 0; k < nout; k++) {
        json_t *sh = json_array(), *da = json_array();
        for (int i = 0; i < outs[k].rank; i++)
            json_array_append_new(sh, json_integer(outs[k].shape[i]));
        for (size_t i = 0; i < outs[k].count; i++)
            json_array_append_new(da, json_real(outs[k].data[i]));
        json_array_append_new(jo, json_pack("{s:o,s:o}", "shape", sh, "data", da));
    }
    json_object_set_new(q, "outputs", jo);
    char tmpl[] = "/tmp/vbatch-ref-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT(fd >= 0);
    close(fd);
    ASSERT_OK(json_dump_file(q, tmpl, JSON_REAL_PRECISION(9) | JSON_COMPACT));
    json_decref(q);
    char *cmd = xasprintf("/usr/bin/python3 %s/tests/unit/roboflow_ref.py %s", src_dir(), tmpl);
    FILE *p = popen(cmd, "r");
    ASSERT(p);
    json_error_t je;
    json_t *res = json_loadf(p, 0, &je);
    int st = pclose(p);
    unlink(tmpl);
    if (!res || st != 0)
        T_FAIL("%s failed (status %d): %s", cmd, st, res ? "" : je.text);
    free(cmd);
    return res;
}

/* Compare vbatch's detections with the reference's: same count and order,
 * boxes equal, scores within 1e-4, same classes. */
static void compare_dets(const char *what, const struct model_result *r, const json_t *ref,
                         int *n_total)
{
    if ((size_t)json_array_size(ref) != r->n_dets)
        T_FAIL("%s: vbatch %zu detections, reference %zu", what, r->n_dets,
               json_array_size(ref));
    for (size_t i = 0; i < r->n_dets; i++) {
        const struct model_detection *d = &r->dets[i];
        json_t *e = json_array_get(ref, i);
        double want[6];
        for (int k = 0; k < 6; k++)
            want[k] = json_number_value(json_array_get(e, (size_t)k));
        double got[6] = {d->x1, d->y1, d->x2, d->y2, d->confidence, d->class_id};
        for (int k = 0; k < 6; k++)
            if (fabs(got[k] - want[k]) > 1e-4) {
                for (size_t j = 0; j < r->n_dets && j < 6; j++)
                    fprintf(stderr, "  vbatch %zu: %g %g %g %g %.7g %d\n", j, (double)r->dets[j].x1,
                            (double)r->dets[j].y1, (double)r->dets[j].x2, (double)r->dets[j].y2,
                            (double)r->dets[j].confidence, r->dets[j].class_id);
                char *rs = json_dumps(ref, JSON_COMPACT | JSON_REAL_PRECISION(7));
                fprintf(stderr, "  reference: %.600s\n", rs);
                free(rs);
                T_FAIL("%s: detection %zu field %d: vbatch %.7g, reference %.7g", what, i, k,
                       got[k], want[k]);
            }
    }
    *n_total += (int)r->n_dets;
}

TEST(families_match_roboflow_reference)
{
    struct model_registry *reg = reg_new(NULL);
    const char *pics[] = {"native", "synth-det/test/img_00.png", "synth-det/test/img_03.png",
                          "synth-det/test/img_05.png"};
    /* (confidence, iou, agnostic, max_detections) */
    const char *param_sets[] = {
        "{\"confidence\": 0.4, \"iou_threshold\": 0.3, \"class_agnostic_nms\": false, "
        "\"max_detections\": 300}",
        "{\"confidence\": 0.25, \"iou_threshold\": 0.6, \"class_agnostic_nms\": true, "
        "\"max_detections\": 300}",
        "{\"confidence\": 0.3, \"iou_threshold\": 0.45, \"class_agnostic_nms\": false, "
        "\"max_detections\": 4}",
    };
    json_t *detr_map = json_pack("[i,i,i,i]", -1, 0, 1, 2);
    for (size_t f = 0; f < ARRAY_LEN(families); f++) {
        struct model *m = reg_add(reg, families[f].dir, families[f].dir);
        int total = 0, max_in_one = 0;
        for (size_t pi = 0; pi < ARRAY_LEN(pics); pi++) {
            char rel[256];
            if (!strcmp(pics[pi], "native"))
                snprintf(rel, sizeof(rel), "%s/test/native.png", families[f].dir);
            else
                snprintf(rel, sizeof(rel), "%s", pics[pi]);
            char *ip = mpath(rel);
            struct vis_image *full = png_load(ip);
            free(ip);
            /* the picture, and a wide strip of it (letterbox padding) */
            struct vis_image strip = *full;
            strip.h = full->h * 5 / 8;
            strip.px = full->px + (size_t)(full->h / 8) * (size_t)full->stride;
            const struct vis_image *views[2] = {full, &strip};
            for (int v = 0; v < 2; v++) {
                struct model_tensor outs[4];
                size_t nout = 0;
                char err[512];
                struct model_letterbox lb;
                int w, h;
                model_input_size(m, &w, &h);
                float *tensor = xmalloc((size_t)w * (size_t)h * 3 * sizeof(float));
                ASSERT_OK(model_preprocess(m, views[v], tensor, &lb));
                free(tensor);
                if (model_run_raw(m, views[v], outs, 4, &nout, err, sizeof(err)) < 0)
                    T_FAIL("run_raw: %s", err);
                for (size_t ps = 0; ps < ARRAY_LEN(param_sets); ps++) {
                    json_t *pj = json_loads(param_sets[ps], 0, NULL);
                    struct model_params p;
                    model_params_init(&p);
                    ASSERT_OK(model_params_from_json(&p, pj, err, sizeof(err)));
                    struct model_result r;
                    if (model_run((struct model *)m, &views[v], 1, &p, &r, err, sizeof(err)) < 0)
                        T_FAIL("%s: %s", families[f].dir, err);
                    json_t *ref = reference(families[f].arch, pj, m, views[v], &lb, outs, nout,
                                            !strcmp(families[f].arch, "rfdetr") ? detr_map
                                                                                 : NULL);
                    char what[256];
                    snprintf(what, sizeof(what), "%s on %s%s, params %zu", families[f].dir,
                             pics[pi], v ? " (strip)" : "", ps);
                    compare_dets(what, &r, ref, &total);
                    max_in_one = MAX(max_in_one, (int)r.n_dets);
                    json_decref(ref);
                    model_result_release(&r);
                    model_params_release(&p);
                    json_decref(pj);
                }
                for (size_t k = 0; k < nout; k++)
                    free(outs[k].data);
            }
            img_free(full);
        }
        printf("  %s: %d detections equal to the reference's (at most %d in one picture)\n",
               families[f].dir, total, max_in_one);
        /* not vacuous: the replicas are tuned to detect something */
        ASSERT_GE(total, 20);
        ASSERT_GE(max_in_one, 3);
        model_unref(m);
    }
    json_decref(detr_map);
    model_registry_free(reg);
}

/* Through model_registry_infer: the Roboflow response of a new family. */
TEST(families_response_json)
{
    struct model_registry *reg = reg_new(NULL);
    struct model *m = reg_add(reg, "rf/1", "rfdetr-tiny");
    model_unref(m);
    char *ip = mpath("synth-det/test/img_00.png");
    struct vis_image *im = png_load(ip);
    json_t *out = NULL, *params = json_pack("{s:f}", "confidence", 0.3);
    char err[512];
    const struct vis_image *ims[1] = {im};
    if (model_registry_infer(reg, NULL, "rf/1", "object-detection", params, ims, 1, &out, err,
                             sizeof(err)) < 0)
        T_FAIL("infer: %s", err);
    json_t *preds = json_object_get(out, "predictions");
    ASSERT_GE((int)json_array_size(preds), 1);
    json_t *p0 = json_array_get(preds, 0);
    const char *cls = json_string_value(json_object_get(p0, "class"));
    ASSERT(cls && (!strcmp(cls, "circle") || !strcmp(cls, "square") || !strcmp(cls, "triangle")));
    ASSERT(json_number_value(json_object_get(p0, "confidence")) > 0.3);
    ASSERT(json_object_get(p0, "width") && json_object_get(p0, "x"));
    json_decref(out);
    json_decref(params);
    img_free(im);
    free(ip);
    model_registry_free(reg);
}

/* RF-DETR instance segmentation: boxes, scores and classes as the
 * reference's, and each polygon outlines the largest component of the
 * reference's mask (Roboflow's mask pipeline: padding cut, bilinear resize
 * to the image, logit > 0): same bounding box, every vertex on a pixel of
 * that component. */
TEST(rfdetr_segmentation_matches_reference)
{
    struct model_registry *reg = reg_new(NULL);
    struct model *m = reg_add(reg, "rfseg/1", "rfdetr-seg-tiny");
    json_t *d = model_describe(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "task")), "instance-segmentation");
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "architecture")), "rfdetr");
    json_decref(d);
    ASSERT_EQ((int)model_class_count(m), 3);
    const char *pics[] = {"rfdetr-seg-tiny/test/native.png", "synth-det/test/img_00.png",
                          "synth-det/test/img_05.png"};
    json_t *pj = json_pack("{s:f, s:f, s:b, s:i}", "confidence", 0.3, "iou_threshold", 0.5,
                           "class_agnostic_nms", 0, "max_detections", 6);
    json_t *detr_map = json_pack("[i,i,i,i]", -1, 0, 1, 2);
    int total = 0, vertices = 0, rles = 0;
    for (size_t pi = 0; pi < ARRAY_LEN(pics); pi++) {
        char *ip = mpath(pics[pi]);
        struct vis_image *full = png_load(ip);
        free(ip);
        struct vis_image strip = *full;
        strip.h = full->h * 5 / 8;
        strip.px = full->px + (size_t)(full->h / 8) * (size_t)full->stride;
        const struct vis_image *views[2] = {full, &strip};
        for (int v = 0; v < 2; v++) {
            struct model_tensor outs[4];
            size_t nout = 0;
            char err[512];
            struct model_letterbox lb;
            float *t = xmalloc((size_t)112 * 112 * 3 * sizeof(float));
            ASSERT_OK(model_preprocess(m, views[v], t, &lb));
            free(t);
            ASSERT_OK(model_run_raw(m, views[v], outs, 4, &nout, err, sizeof(err)));
            ASSERT_EQ((int)nout, 3);
            struct model_params p;
            model_params_init(&p);
            ASSERT_OK(model_params_from_json(&p, pj, err, sizeof(err)));
            struct model_result r;
            if (model_run(m, &views[v], 1, &p, &r, err, sizeof(err)) < 0)
                T_FAIL("run: %s", err);
            json_t *ref = reference("rfdetr-seg", pj, m, views[v], &lb, outs, nout, detr_map);
            char what[256];
            snprintf(what, sizeof(what), "rfdetr-seg-tiny on %s%s", pics[pi], v ? " (strip)" : "");
            compare_dets(what, &r, ref, &total);
            {
                /* response_mask_format "rle" (instance segmentation v4):
                 * the whole mask as COCO RLE, equal to the reference's */
                json_t *pr = json_deep_copy(pj);
                json_object_set_new(pr, "response_mask_format", json_string("rle"));
                struct model_params p2;
                struct model_result r2;
                model_params_init(&p2);
                ASSERT_OK(model_params_from_json(&p2, pr, err, sizeof(err)));
                ASSERT(p2.rle_masks);
                if (model_run(m, &views[v], 1, &p2, &r2, err, sizeof(err)) < 0)
                    T_FAIL("run: %s", err);
                json_t *resp = model_result_to_json(m, &r2, &p2);
                json_t *preds = json_object_get(resp, "predictions");
                ASSERT_EQ(json_array_size(preds), r.n_dets);
                for (size_t i = 0; i < r.n_dets; i++) {
                    json_t *pi_ = json_array_get(preds, i);
                    json_t *rle = json_object_get(pi_, "rle_mask");
                    ASSERT(!json_object_get(pi_, "points"));
                    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(rle, "size"), 0)),
                              views[v]->h);
                    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(rle, "size"), 1)),
                              views[v]->w);
                    const char *want = json_string_value(json_array_get(json_array_get(ref, i), 7));
                    const char *got = json_string_value(json_object_get(rle, "counts"));
                    if (!want || !got || strcmp(want, got) != 0)
                        T_FAIL("%s: detection %zu RLE %.80s, reference %.80s", what, i,
                               got ? got : "(none)", want ? want : "(none)");
                    rles++;
                }
                json_decref(resp);
                json_decref(pr);
                model_result_release(&r2);
                model_params_release(&p2);
            }
            for (size_t i = 0; i < r.n_dets; i++) {
                json_t *runs = json_array_get(json_array_get(ref, i), 6);
                const struct model_detection *dt = &r.dets[i];
                if (json_array_size(runs) == 0) {
                    ASSERT_EQ((int)dt->n_points, 0);
                    continue;
                }
                ASSERT_GT((int)dt->n_points, 0);
                int bx0 = 1 << 30, by0 = 1 << 30, bx1 = -1, by1 = -1;
                size_t k;
                json_t *run;
                json_array_foreach(runs, k, run)
                {
                    int y = (int)json_integer_value(json_array_get(run, 0));
                    int a = (int)json_integer_value(json_array_get(run, 1));
                    int b = (int)json_integer_value(json_array_get(run, 2));
                    bx0 = MIN(bx0, a);
                    bx1 = MAX(bx1, b - 1);
                    by0 = MIN(by0, y);
                    by1 = MAX(by1, y);
                }
                float px0 = 1e9f, py0 = 1e9f, px1 = -1, py1 = -1;
                for (size_t j = 0; j < dt->n_points; j++) {
                    float x = dt->points[j].x, y = dt->points[j].y;
                    px0 = fminf(px0, x);
                    px1 = fmaxf(px1, x);
                    py0 = fminf(py0, y);
                    py1 = fmaxf(py1, y);
                    bool inside = false;
                    json_array_foreach(runs, k, run)
                    {
                        if (json_integer_value(json_array_get(run, 0)) == (json_int_t)y &&
                            x >= json_integer_value(json_array_get(run, 1)) &&
                            x < json_integer_value(json_array_get(run, 2)))
                            inside = true;
                    }
                    if (!inside)
                        T_FAIL("%s: detection %zu vertex (%g, %g) is not on the reference's mask",
                               what, i, (double)x, (double)y);
                    vertices++;
                }
                if (px0 != bx0 || px1 != bx1 || py0 != by0 || py1 != by1)
                    T_FAIL("%s: detection %zu polygon spans (%g,%g)-(%g,%g), the reference's "
                           "mask (%d,%d)-(%d,%d)", what, i, (double)px0, (double)py0, (double)px1,
                           (double)py1, bx0, by0, bx1, by1);
            }
            json_decref(ref);
            model_result_release(&r);
            model_params_release(&p);
            for (size_t k = 0; k < nout; k++)
                free(outs[k].data);
        }
        img_free(full);
    }
    printf("  rfdetr-seg-tiny: %d detections, %d polygon vertices and %d RLE masks agree with the "
           "reference\n", total, vertices, rles);
    ASSERT_EQ(rles, total);
    ASSERT_GE(total, 10);
    /* the bytes alone: dets + labels + masks make an RF-DETR segmenter */
    {
        char *wp = mpath("rfdetr-seg-tiny/weights.onnx"), err[1024] = "";
        size_t len;
        char *onnx = read_file(wp, &len);
        json_t *meta = json_pack("{s:[s,s,s,s]}", "class_names", "x", "circle", "square", "triangle");
        if (model_registry_register_bytes(reg, "rfseg/bare", onnx, len, meta, err, sizeof(err)) < 0)
            T_FAIL("bare: %s", err);
        struct model *mb = NULL;
        ASSERT_OK(model_registry_get(reg, NULL, "rfseg/bare", &mb, err, sizeof(err)));
        json_t *db = model_describe(mb);
        ASSERT_STR_EQ(json_string_value(json_object_get(db, "task")), "instance-segmentation");
        ASSERT_STR_EQ(json_string_value(json_object_get(db, "architecture")), "rfdetr");
        json_decref(db);
        model_unref(mb);
        json_decref(meta);
        free(onnx);
        free(wp);
    }
    json_decref(detr_map);
    json_decref(pj);
    model_unref(m);
    model_registry_free(reg);
}

/* YOLOv5-seg: boxes, scores and classes as the reference's (Roboflow's
 * YOLOv5 selection and NMS); the polygons come from vbatch's prototype-mask
 * pipeline (the YOLOv8-seg one, docs/MODELS.md), so here they are only
 * checked to exist and to stay inside their boxes. */
TEST(yolov5_segmentation)
{
    struct model_registry *reg = reg_new(NULL);
    struct model *m = reg_add(reg, "v5seg/1", "yolov5-seg-tiny");
    json_t *d = model_describe(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "task")), "instance-segmentation");
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "architecture")), "yolov5");
    ASSERT_EQ(json_integer_value(json_object_get(d, "mask_coefficients")), 32);
    json_decref(d);
    const char *pics[] = {"yolov5-seg-tiny/test/native.png", "synth-det/test/img_00.png",
                          "synth-det/test/img_03.png"};
    json_t *pj = json_pack("{s:f, s:f, s:b, s:i}", "confidence", 0.4, "iou_threshold", 0.45,
                           "class_agnostic_nms", 0, "max_detections", 20);
    int total = 0, with_poly = 0;
    for (size_t pi = 0; pi < ARRAY_LEN(pics); pi++) {
        char *ip = mpath(pics[pi]);
        struct vis_image *full = png_load(ip);
        free(ip);
        struct vis_image strip = *full;
        strip.h = full->h * 5 / 8;
        strip.px = full->px + (size_t)(full->h / 8) * (size_t)full->stride;
        const struct vis_image *views[2] = {full, &strip};
        for (int v = 0; v < 2; v++) {
            struct model_tensor outs[4];
            size_t nout = 0;
            char err[512];
            struct model_letterbox lb;
            float *t = xmalloc((size_t)128 * 128 * 3 * sizeof(float));
            ASSERT_OK(model_preprocess(m, views[v], t, &lb));
            free(t);
            ASSERT_OK(model_run_raw(m, views[v], outs, 4, &nout, err, sizeof(err)));
            struct model_params p;
            model_params_init(&p);
            ASSERT_OK(model_params_from_json(&p, pj, err, sizeof(err)));
            struct model_result r;
            if (model_run(m, &views[v], 1, &p, &r, err, sizeof(err)) < 0)
                T_FAIL("run: %s", err);
            json_t *ref = reference("yolov5", pj, m, views[v], &lb, outs, nout, NULL);
            char what[256];
            snprintf(what, sizeof(what), "yolov5-seg-tiny on %s%s", pics[pi], v ? " (strip)" : "");
            compare_dets(what, &r, ref, &total);
            for (size_t i = 0; i < r.n_dets; i++) {
                const struct model_detection *dt = &r.dets[i];
                with_poly += dt->n_points >= 3;
                for (size_t j = 0; j < dt->n_points; j++)
                    if (dt->points[j].x < dt->x1 - 1 || dt->points[j].x > dt->x2 + 1 ||
                        dt->points[j].y < dt->y1 - 1 || dt->points[j].y > dt->y2 + 1)
                        T_FAIL("%s: detection %zu vertex (%g, %g) outside its box", what, i,
                               (double)dt->points[j].x, (double)dt->points[j].y);
            }
            json_decref(ref);
            model_result_release(&r);
            model_params_release(&p);
            for (size_t k = 0; k < nout; k++)
                free(outs[k].data);
        }
        img_free(full);
    }
    printf("  yolov5-seg-tiny: %d detections equal to the reference's, %d with a polygon\n", total,
           with_poly);
    ASSERT_GE(total, 10);
    ASSERT_GE(with_poly, total / 2);
    /* the bytes alone: (N, A, 5+nc+nm) + (N, nm, h, w) is YOLOv5-seg */
    char *wp = mpath("yolov5-seg-tiny/weights.onnx"), err[1024] = "";
    size_t len;
    char *onnx = read_file(wp, &len);
    json_t *meta = json_pack("{s:[s,s,s]}", "class_names", "circle", "square", "triangle");
    if (model_registry_register_bytes(reg, "v5seg/bare", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("bare: %s", err);
    struct model *mb = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, "v5seg/bare", &mb, err, sizeof(err)));
    json_t *db = model_describe(mb);
    ASSERT_STR_EQ(json_string_value(json_object_get(db, "task")), "instance-segmentation");
    ASSERT_STR_EQ(json_string_value(json_object_get(db, "architecture")), "yolov5");
    json_decref(db);
    model_unref(mb);
    json_decref(meta);
    free(onnx);
    free(wp);
    json_decref(pj);
    model_unref(m);
    model_registry_free(reg);
}

/* ---- refusals ------------------------------------------------------------------- */

static void expect_bytes_refused(struct model_registry *reg, const char *weights_rel,
                                 const char *meta_json, const char *needle)
{
    char *wp = mpath(weights_rel), err[1024] = "";
    size_t len;
    char *onnx = read_file(wp, &len);
    json_error_t je;
    json_t *meta = json_loads(meta_json, 0, &je);
    if (!meta)
        T_FAIL("bad test JSON: %s", je.text);
    int rc = model_registry_register_bytes(reg, "refused/1", onnx, len, meta, err, sizeof(err));
    fprintf(stderr, "  %s + %s: %s\n", weights_rel, meta_json, err);
    ASSERT(rc < 0);
    if (!strstr(err, needle))
        T_FAIL("'%s' lacks '%s'", err, needle);
    json_decref(meta);
    free(onnx);
    free(wp);
}

TEST(families_refused_with_what_was_found)
{
    struct model_registry *reg = reg_new(NULL);
    const char *names = "\"class_names\": [\"circle\", \"square\", \"triangle\"]";
    char meta[512];
    /* the package names an architecture the outputs do not fit */
    snprintf(meta, sizeof(meta), "{%s, \"model_type\": {\"model_type\": \"rfdetr-base\"}}", names);
    expect_bytes_refused(reg, "yolov5-tiny/weights.onnx", meta,
                         "do not fit the architecture named by the package (model_type.json "
                         "model_type 'rfdetr-base')");
    snprintf(meta, sizeof(meta), "{%s, \"model_config\": {\"model_architecture\": \"yolov10\"}}",
             names);
    expect_bytes_refused(reg, "yolonas-tiny/weights.onnx", meta, "(N, detections, 6)");
    snprintf(meta, sizeof(meta), "{%s, \"model_config\": {\"model_architecture\": \"yolonas\"}}",
             names);
    expect_bytes_refused(reg, "rfdetr-tiny/weights.onnx", meta,
                         "'yolonas'): expected boxes (N, anchors, 4) + scores (N, anchors, "
                         "classes) with 3 classes");
    snprintf(meta, sizeof(meta), "{%s, \"model_config\": {\"model_architecture\": \"yolov5\"}}",
             names);
    expect_bytes_refused(reg, "synth-det/weights.onnx", meta, "(N, anchors, 5+classes)");
    /* an architecture vbatch does not know: the shapes decide; named in
     * the refusal when they fit nothing */
    expect_bytes_refused(reg, "yolov5-tiny/weights.onnx",
                         "{\"class_names\": [\"a\", \"b\"], \"model_type\": \"yolov99x\"}",
                         "model_type.json model_type names architecture 'yolov99x', which vbatch "
                         "does not know");
    {
        char *wp = mpath("yolov5-tiny/weights.onnx"), err[1024] = "";
        size_t len;
        char *onnx = read_file(wp, &len);
        snprintf(meta, sizeof(meta), "{%s, \"model_type\": \"yolov99x\"}", names);
        json_t *mj = json_loads(meta, 0, NULL);
        if (model_registry_register_bytes(reg, "other/1", onnx, len, mj, err, sizeof(err)) < 0)
            T_FAIL("unknown name, YOLOv5 shapes: %s", err);
        json_decref(mj);
        free(onnx);
        free(wp);
    }
    /* segmentation of a family decoded for detection only */
    snprintf(meta, sizeof(meta), "{%s, \"task\": \"instance-segmentation\", \"model_config\": "
             "{\"model_architecture\": \"yolov5\"}}", names);
    expect_bytes_refused(reg, "yolov5-tiny/weights.onnx", meta,
                         "expected (N, anchors, 5+3+masks) and prototypes (N, masks, h, w) for "
                         "instance segmentation");
    snprintf(meta, sizeof(meta), "{%s, \"task\": \"keypoint-detection\", \"model_config\": "
             "{\"model_architecture\": \"yolonas\"}}", names);
    expect_bytes_refused(reg, "yolonas-tiny/weights.onnx", meta,
                         "names architecture 'yolonas'; vbatch does not decode it for "
                         "keypoint-detection");
    /* RF-DETR asked to segment without a masks output */
    snprintf(meta, sizeof(meta), "{\"class_names\": [\"s\", \"a\", \"b\", \"c\"], \"task\": "
             "\"instance-segmentation\", \"model_type\": \"rfdetr-seg-nano\"}");
    expect_bytes_refused(reg, "rfdetr-tiny/weights.onnx", meta,
                         "+ masks (N, queries, h, w) for instance segmentation");
    /* class count does not fit any layout: every candidate is named */
    expect_bytes_refused(reg, "yolov5-tiny/weights.onnx", "{\"class_names\": [\"a\", \"b\"]}",
                         "expected one of YOLOv8/v11 (N, 6, anchors), YOLOv5/v7 (N, anchors, 7)");
    expect_bytes_refused(reg, "yolonas-tiny/weights.onnx",
                         "{\"class_names\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"]}",
                         "no decoder understands outputs output0 (1, 336, 4), output1 (1, 336, 3)");
    /* RF-DETR with more names than logits */
    expect_bytes_refused(reg, "rfdetr-tiny/weights.onnx",
                         "{\"class_names\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"], "
                         "\"model_type\": \"rfdetr-nano\"}",
                         "5 logits per query for 6 class names");
    /* NaN on a blank input: refused at registration */
    expect_bytes_refused(reg, "bad/nan-blank/weights.onnx", "{\"class_names\": [\"a\", \"b\", \"c\"]}",
                         "holds NaN values on a blank 128x128 input");
    model_registry_free(reg);
}

/* NaN only on real pictures: the image fails with the cause, nothing
 * crashes, and the model still serves other pictures. */
TEST(families_nan_at_run_time_fails_the_image)
{
    struct model_registry *reg = reg_new(NULL);
    struct model *m = reg_add(reg, "nan/1", "nan-bright");
    model_unref(m);
    char *ip = mpath("synth-det/test/img_00.png");
    struct vis_image *im = png_load(ip);
    json_t *out = NULL;
    char err[512] = "";
    const struct vis_image *ims[1] = {im};
    int rc = model_registry_infer(reg, NULL, "nan/1", NULL, NULL, ims, 1, &out, err, sizeof(err));
    printf("  %s\n", err);
    ASSERT_EQ(rc, ERR_INVALID);
    ASSERT(strstr(err, "model 'nan/1': cannot decode its output for image 0: the network "
                      "produced a NaN objectness"));
    /* a black picture stays below the gate: decoded */
    struct vis_image black = *im;
    uint8_t *px = xcalloc((size_t)im->stride * (size_t)im->h, 1);
    black.px = px;
    ims[0] = &black;
    ASSERT_OK(model_registry_infer(reg, NULL, "nan/1", NULL, NULL, ims, 1, &out, err, sizeof(err)));
    ASSERT(json_is_array(json_object_get(out, "predictions")));
    json_decref(out);
    free(px);
    img_free(im);
    free(ip);
    model_registry_free(reg);
}

/* fit-longer-edge cannot be applied to a fixed-size export: Roboflow
 * substitutes letterbox with padding 127 (YOLO) or stretch (RF-DETR). */
TEST(families_fit_longer_edge_substitution)
{
    struct model_registry *reg = reg_new(NULL);
    const char *dirs[] = {"yolov5-tiny", "rfdetr-tiny"};
    const char *want[] = {"letterbox", "stretch"};
    for (int i = 0; i < 2; i++) {
        char *d = mpath(dirs[i]), *ob = NULL, err[1024] = "";
        json_t *meta = NULL;
        size_t ol;
        ASSERT_OK(model_artefacts_read_dir(d, 0, &ob, &ol, &meta, err, sizeof(err)));
        json_t *ni = json_object_get(json_object_get(meta, "inference_config"), "network_input");
        json_object_set_new(ni, "resize_mode", json_string("fit-longer-edge"));
        json_object_set_new(ni, "padding_value", json_integer(0));
        if (model_registry_register_bytes(reg, "fle/1", ob, ol, meta, err, sizeof(err)) < 0)
            T_FAIL("%s: %s", dirs[i], err);
        struct model *m = NULL;
        ASSERT_OK(model_registry_get(reg, NULL, "fle/1", &m, err, sizeof(err)));
        json_t *desc = model_describe(m), *pp = json_object_get(desc, "preprocessing");
        ASSERT_STR_EQ(json_string_value(json_object_get(pp, "resize")), want[i]);
        if (i == 0)
            ASSERT_EQ(json_integer_value(json_object_get(pp, "padding_value")), 127);
        json_decref(desc);
        model_unref(m);
        json_decref(meta);
        free(ob);
        free(d);
    }
    model_registry_free(reg);
}

/* Crafted outputs through model_decode_raw: what a broken network could
 * answer fails the image with the cause, per family. */
TEST(families_malformed_outputs_fail_with_cause)
{
    struct model_registry *reg = reg_new(NULL);
    const struct {
        const char *dir;
        int out;     /* which output to spoil */
        size_t at;   /* float index */
        float value; /* written there */
        size_t at2;  /* and a second one (SIZE_MAX: none) */
        float value2;
        const char *needle;
    } cases[] = {
        {"yolov5-tiny", 0, 4, NAN, SIZE_MAX, 0, "NaN objectness (anchor 0)"},
        {"yolov5-tiny", 0, 8 * 3 + 6, NAN, 8 * 3 + 4, 0.99f, "NaN class score (anchor 3)"},
        {"yolov5-tiny", 0, 8 * 2 + 0, INFINITY, 8 * 2 + 4, 0.99f, "not finite"},
        {"yolov10-tiny", 0, 6 * 0 + 5, 7.0f, 6 * 0 + 4, 0.99f, "produced class 7 for detection 0; "
                                                             "the model has 3 classes"},
        {"yolov10-tiny", 0, 6 * 1 + 4, NAN, SIZE_MAX, 0, "NaN score (detection 1)"},
        {"yolo26-tiny", 0, 6 * 2 + 5, 0.5f, 6 * 2 + 4, 0.99f, "produced class 0.5"},
        {"yolo26-tiny", 0, 6 * 0 + 1, NAN, 6 * 0 + 4, 0.99f, "not finite"},
        {"yolonas-tiny", 1, 3 * 5 + 2, NAN, SIZE_MAX, 0, "NaN score (anchor 5)"},
        {"yolonas-tiny", 0, 4 * 5 + 3, -INFINITY, 3 * 5 + 2, 0.99f, "not finite"},
        {"rfdetr-tiny", 1, 5 * 7 + 1, NAN, SIZE_MAX, 0, "NaN class logit (query 7)"},
        {"rfdetr-tiny", 0, 4 * 9 + 2, NAN, 5 * 9 + 1, 30.0f, "not finite"},
    };
    char *ip = mpath("synth-det/test/img_00.png");
    struct vis_image *im = png_load(ip);
    free(ip);
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        struct model *m = reg_add(reg, cases[c].dir, cases[c].dir);
        struct model_tensor outs[4];
        size_t nout = 0;
        char err[512] = "";
        int w, h;
        model_input_size(m, &w, &h);
        float *t = xmalloc((size_t)w * (size_t)h * 3 * sizeof(float));
        struct model_letterbox lb;
        ASSERT_OK(model_preprocess(m, im, t, &lb));
        free(t);
        ASSERT_OK(model_run_raw(m, im, outs, 4, &nout, err, sizeof(err)));
        struct model_params p;
        model_params_init(&p);
        struct model_result r;
        /* intact: decodes */
        ASSERT_OK(model_decode_raw(m, outs, nout, &lb, im->w, im->h, &p, &r, err, sizeof(err)));
        model_result_release(&r);
        /* the second write may be the output the first one does not spoil */
        int o2 = cases[c].out;
        if (!strcmp(cases[c].dir, "yolonas-tiny") || !strcmp(cases[c].dir, "rfdetr-tiny"))
            o2 = 1 - cases[c].out;
        outs[cases[c].out].data[cases[c].at] = cases[c].value;
        if (cases[c].at2 != SIZE_MAX)
            outs[o2].data[cases[c].at2] = cases[c].value2;
        int rc = model_decode_raw(m, outs, nout, &lb, im->w, im->h, &p, &r, err, sizeof(err));
        printf("  %s: %s\n", cases[c].dir, err);
        ASSERT_EQ(rc, ERR_INVALID);
        if (!strstr(err, cases[c].needle))
            T_FAIL("case %zu: '%s' lacks '%s'", c, err, cases[c].needle);
        /* the wrong number of outputs */
        ASSERT_EQ(model_decode_raw(m, outs, nout + 1 > 4 ? 4 : nout + 1, &lb, im->w, im->h, &p, &r,
                                   err, sizeof(err)), ERR_INVALID);
        for (size_t k = 0; k < nout; k++)
            free(outs[k].data);
        model_unref(m);
    }
    img_free(im);
    model_registry_free(reg);
}

/* ---- Roboflow package files through the upload metadata (issue item 5) --------- */

TEST(families_upload_metadata_file_contents)
{
    char tmpl[] = "/tmp/vbatch-fam-XXXXXX";
    ASSERT(mkdtemp(tmpl));
    char *mdir = xasprintf("%s/models", tmpl);
    struct model_registry *reg = reg_new(mdir);
    char *d = mpath("rfdetr-tiny"), *p;
    size_t len, clen, ilen, tlen;
    p = xasprintf("%s/weights.onnx", d);
    char *onnx = read_file(p, &len);
    free(p);
    p = xasprintf("%s/class_names.txt", d);
    char *cn = read_file(p, &clen);
    free(p);
    p = xasprintf("%s/inference_config.json", d);
    char *ic = read_file(p, &ilen);
    free(p);
    p = xasprintf("%s/model_type.json", d);
    char *mt = read_file(p, &tlen);
    free(p);
    /* each file's text under its name without extension, as the HTTP
     * metadata object carries them */
    json_t *meta = json_pack("{s:s%, s:s%, s:s%, s:{s:s, s:s}}", "class_names", cn, clen,
                             "inference_config", ic, ilen, "model_type", mt, tlen, "model_config",
                             "task_type", "object-detection", "backend_type", "onnx");
    char err[1024] = "";
    if (model_registry_register_bytes(reg, "up/rf", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("register: %s", err);
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, "up/rf", &m, err, sizeof(err)));
    json_t *desc = model_describe(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(desc, "architecture")), "rfdetr");
    ASSERT_EQ((int)model_class_count(m), 3);
    json_decref(desc);
    model_unref(m);
    model_registry_free(reg);
    /* written as the package files: a restart finds the same model */
    struct stat st;
    char *f1 = xasprintf("%s/up--rf/model_type.json", mdir);
    char *f2 = xasprintf("%s/up--rf/model_config.json", mdir);
    ASSERT(stat(f1, &st) == 0 && stat(f2, &st) == 0);
    reg = reg_new(NULL);
    int bad = -1;
    ASSERT_EQ(model_registry_load_dir(reg, mdir, &bad, err, sizeof(err)), 1);
    ASSERT_EQ(bad, 0);
    ASSERT_OK(model_registry_get(reg, NULL, "up/rf", &m, err, sizeof(err)));
    desc = model_describe(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(desc, "architecture")), "rfdetr");
    ASSERT_EQ((int)model_class_count(m), 3);
    json_decref(desc);
    model_unref(m);
    model_registry_free(reg);
    /* model_artefacts_read_dir hands the same keys back */
    char *dir = xasprintf("%s/up--rf", mdir), *ob = NULL;
    json_t *rm = NULL;
    size_t ol;
    ASSERT_OK(model_artefacts_read_dir(dir, 0, &ob, &ol, &rm, err, sizeof(err)));
    ASSERT(json_is_object(json_object_get(rm, "model_type")));
    ASSERT(json_is_object(json_object_get(rm, "model_config")));
    json_decref(rm);
    free(ob);
    /* a file's text that is not JSON is refused with the key's name */
    reg = reg_new(NULL);
    json_object_set_new(meta, "inference_config", json_string("{not json"));
    ASSERT(model_registry_register_bytes(reg, "up/x", onnx, len, meta, err, sizeof(err)) < 0);
    ASSERT(strstr(err, "metadata 'inference_config' must be a JSON object"));
    model_registry_free(reg);
    json_decref(meta);
    char *cmd = xasprintf("rm -rf %s", tmpl);
    ASSERT_EQ(system(cmd), 0);
    free(cmd);
    free(dir);
    free(f1);
    free(f2);
    free(onnx);
    free(cn);
    free(ic);
    free(mt);
    free(d);
    free(mdir);
}

TEST_MAIN()
