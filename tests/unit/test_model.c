/*
 * test_model.c — the model module against the committed test models in
 * tests/data/models (made by scripts/train-models.py and
 * scripts/models/make-test-onnx.py; run from the repository root).
 *
 * Accuracy: detector mAP@0.5 on held-out synthetic images through
 * model_registry_infer (decode-free: PNGs read with libpng here), classifier
 * accuracy, segmentation polygons and keypoints against ground truth.
 * Exactness: vbatch's raw outputs against PyTorch's on the same images.
 * Behaviour: NMS modes, parameters, registry (aliases, folders, uploads,
 * Ultralytics metadata), bad-model refusal, missing runtime, GPU request.
 */
#include <math.h>
#include <png.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"

#include "base/base.h"
#include "model/model.h"

#define T_TIMEOUT_S_MODEL 120

static const char *data_dir(void)
{
    const char *s = getenv("VBATCH_SRCDIR");
    static char buf[1024];
    snprintf(buf, sizeof(buf), "%s/tests/data/models", s ? s : ".");
    return buf;
}

static char *mpath(const char *rel)
{
    return xasprintf("%s/%s", data_dir(), rel);
}

/* Read a PNG into a BGR image of our own (free with img_free). */
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

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        T_FAIL("cannot load %s: %s", path, je.text);
    return j;
}

static struct model_registry *reg_new(const char *models_dir)
{
    struct model_registry *reg = NULL;
    char err[512];
    struct model_registry_opts o = {.intra_op_threads = 1, .models_dir = models_dir};
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof(err)));
    return reg;
}

static void reg_add(struct model_registry *reg, const char *id, const char *rel)
{
    char err[512] = "";
    char *p = mpath(rel);
    int rc = model_registry_register_dir(reg, id, p, err, sizeof(err));
    if (rc < 0)
        T_FAIL("register %s: %s", rel, err);
    free(p);
}

/* ---- detection accuracy ------------------------------------------------------ */

static double box_iou(const double *a, const double *b)
{
    double iw = fmin(a[2], b[2]) - fmax(a[0], b[0]), ih = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    if (iw <= 0 || ih <= 0)
        return 0;
    double in = iw * ih;
    return in / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - in);
}

struct scored {
    double conf;
    int tp;
};

static int cmp_scored(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    return x->conf > y->conf ? -1 : x->conf < y->conf;
}

/* VOC all-point AP for one class over the image set. */
static double class_ap(json_t *gt, json_t **preds, size_t n_img, int cls)
{
    struct scored *s = xmalloc(4096 * sizeof(*s));
    size_t ns = 0, npos = 0;
    for (size_t i = 0; i < n_img; i++) {
        json_t *objs = json_object_get(json_array_get(json_object_get(gt, "images"), i), "objects");
        size_t ng = json_array_size(objs);
        int used[64] = {0};
        double gb[64][4];
        int gc[64];
        for (size_t g = 0; g < ng && g < 64; g++) {
            json_t *o = json_array_get(objs, g);
            for (int k = 0; k < 4; k++)
                gb[g][k] = json_number_value(json_array_get(json_object_get(o, "box"), (size_t)k));
            gc[g] = (int)json_integer_value(json_object_get(o, "class_id"));
            npos += gc[g] == cls;
        }
        json_t *pa = json_object_get(preds[i], "predictions");
        size_t k;
        json_t *p;
        json_array_foreach(pa, k, p)
        {
            if (json_integer_value(json_object_get(p, "class_id")) != cls || ns >= 4096)
                continue;
            double x = json_number_value(json_object_get(p, "x")),
                   y = json_number_value(json_object_get(p, "y")),
                   w = json_number_value(json_object_get(p, "width")),
                   h = json_number_value(json_object_get(p, "height"));
            double pb[4] = {x - w / 2, y - h / 2, x + w / 2, y + h / 2};
            double best = 0;
            int bi = -1;
            for (size_t g = 0; g < ng && g < 64; g++) {
                if (gc[g] != cls)
                    continue;
                double iou = box_iou(pb, gb[g]);
                if (iou > best) {
                    best = iou;
                    bi = (int)g;
                }
            }
            int tp = bi >= 0 && best >= 0.5 && !used[bi];
            if (tp)
                used[bi] = 1;
            s[ns++] = (struct scored){json_number_value(json_object_get(p, "confidence")), tp};
        }
    }
    qsort(s, ns, sizeof(*s), cmp_scored);
    double prec[4096], rec[4096];
    size_t tp = 0;
    for (size_t i = 0; i < ns; i++) {
        tp += (size_t)s[i].tp;
        prec[i] = (double)tp / (double)(i + 1);
        rec[i] = npos ? (double)tp / (double)npos : 0;
    }
    for (size_t i = ns; i-- > 1;)
        prec[i - 1] = fmax(prec[i - 1], prec[i]);
    double ap = 0, prev_r = 0;
    for (size_t i = 0; i < ns; i++) {
        ap += (rec[i] - prev_r) * prec[i];
        prev_r = rec[i];
    }
    free(s);
    return npos ? ap : 1.0;
}

/* Run the model on the first n test images; out[i] are responses. */
static void run_testset(struct model_registry *reg, const char *id, const char *name,
                        const char *params_json, size_t n, json_t **out, json_t **gt_out)
{
    char rel[256], err[512] = "";
    snprintf(rel, sizeof(rel), "%s/test/gt.json", name);
    char *gp = mpath(rel);
    json_t *gt = load_json(gp);
    free(gp);
    struct vis_image *imgs[64];
    json_t *params = params_json ? json_loads(params_json, 0, NULL) : NULL;
    ASSERT(n <= 64 && n <= json_array_size(json_object_get(gt, "images")));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(json_object_get(gt, "images"), i);
        snprintf(rel, sizeof(rel), "%s/test/%s", name, json_string_value(json_object_get(e, "file")));
        char *p = mpath(rel);
        imgs[i] = png_load(p);
        free(p);
    }
    int rc = model_registry_infer(reg, NULL, id, NULL, params, (const struct vis_image *const *)imgs, n,
                                  out, err, sizeof(err));
    if (rc < 0)
        T_FAIL("infer: %s", err);
    for (size_t i = 0; i < n; i++)
        img_free(imgs[i]);
    json_decref(params);
    *gt_out = gt;
}

TEST(detector_map50)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-det/1", "synth-det");
    json_t *out[24], *gt;
    run_testset(reg, "synth-det/1", "synth-det", "{\"confidence\": 0.05}", 24, out, &gt);
    double map = 0;
    for (int c = 0; c < 3; c++) {
        double ap = class_ap(gt, out, 24, c);
        printf("  AP50 class %d = %.4f\n", c, ap);
        map += ap / 3;
    }
    printf("  mAP@0.5 = %.4f\n", map);
    ASSERT(map >= 0.9);
    /* responses carry the original image size and Roboflow fields */
    json_t *im = json_object_get(out[0], "image");
    ASSERT_EQ(json_integer_value(json_object_get(im, "width")), 256);
    json_t *p0 = json_array_get(json_object_get(out[0], "predictions"), 0);
    ASSERT(p0 && json_is_string(json_object_get(p0, "class")));
    ASSERT(json_is_number(json_object_get(p0, "confidence")));
    for (int i = 0; i < 24; i++)
        json_decref(out[i]);
    json_decref(gt);
    model_registry_free(reg);
}

/* Default parameters (confidence 0.4): every ground-truth object found,
 * few false positives, boxes within 3 px. */
TEST(detector_defaults_boxes)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-det/1", "synth-det");
    json_t *out[24], *gt;
    run_testset(reg, "synth-det/1", "synth-det", NULL, 24, out, &gt);
    size_t ngt = 0, found = 0, npred = 0;
    double err_sum = 0;
    for (size_t i = 0; i < 24; i++) {
        json_t *objs = json_object_get(json_array_get(json_object_get(gt, "images"), i), "objects");
        json_t *pa = json_object_get(out[i], "predictions");
        npred += json_array_size(pa);
        size_t g;
        json_t *o;
        json_array_foreach(objs, g, o)
        {
            double gb[4];
            for (int k = 0; k < 4; k++)
                gb[k] = json_number_value(json_array_get(json_object_get(o, "box"), (size_t)k));
            ngt++;
            size_t k;
            json_t *p;
            json_array_foreach(pa, k, p)
            {
                double x = json_number_value(json_object_get(p, "x")),
                       y = json_number_value(json_object_get(p, "y")),
                       w = json_number_value(json_object_get(p, "width")),
                       h = json_number_value(json_object_get(p, "height"));
                double pb[4] = {x - w / 2, y - h / 2, x + w / 2, y + h / 2};
                if (box_iou(pb, gb) >= 0.5 &&
                    json_integer_value(json_object_get(p, "class_id")) ==
                        json_integer_value(json_object_get(o, "class_id"))) {
                    found++;
                    for (int q = 0; q < 4; q++)
                        err_sum += fabs(pb[q] - gb[q]);
                    /* integers, as Roboflow rounds boxes */
                    ASSERT_NEAR(pb[0], nearbyint(pb[0]), 1e-6);
                    break;
                }
            }
        }
    }
    printf("  found %zu/%zu, %zu predictions, mean |box err| %.2f px\n", found, ngt, npred,
           err_sum / (4.0 * (double)(found ? found : 1)));
    ASSERT(found >= ngt * 95 / 100);
    ASSERT(npred <= ngt + ngt / 10 + 1);
    ASSERT(err_sum / (4.0 * (double)found) < 3.0);
    for (int i = 0; i < 24; i++)
        json_decref(out[i]);
    json_decref(gt);
    model_registry_free(reg);
}

/* ---- exactness against PyTorch ------------------------------------------------ */

static void compare_raw(const char *name, const char *id, int n_out_expect)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, id, name);
    struct model *m = NULL;
    char err[512], rel[256];
    ASSERT_OK(model_registry_get(reg, NULL, id, &m, err, sizeof(err)));
    snprintf(rel, sizeof(rel), "%s/test/torch.json", name);
    char *tp = mpath(rel);
    json_t *tj = load_json(tp);
    free(tp);
    const char *fn;
    json_t *ref;
    int checked = 0;
    double worst = 0;
    json_object_foreach(tj, fn, ref)
    {
        snprintf(rel, sizeof(rel), "%s/test/%s", name, fn);
        char *ip = mpath(rel);
        struct vis_image *im = png_load(ip);
        free(ip);
        struct model_tensor outs[4];
        size_t nout = 0;
        int rc = model_run_raw(m, im, outs, 4, &nout, err, sizeof(err));
        if (rc < 0)
            T_FAIL("run_raw: %s", err);
        ASSERT_EQ((int)nout, n_out_expect);
        const char *keys[2] = {"output0", "protos"};
        for (size_t k = 0; k < nout; k++) {
            json_t *r = json_object_get(ref, keys[k]);
            ASSERT(r);
            json_t *shape = json_object_get(r, "shape"), *data = json_object_get(r, "data");
            ASSERT_EQ((int64_t)json_array_size(shape), outs[k].rank);
            for (int d = 0; d < outs[k].rank; d++)
                ASSERT_EQ(json_integer_value(json_array_get(shape, (size_t)d)), outs[k].shape[d]);
            size_t step = json_object_get(r, "step") ? (size_t)json_integer_value(json_object_get(r, "step")) : 1;
            ASSERT_EQ(json_array_size(data), (outs[k].count + step - 1) / step);
            for (size_t i = 0; i < json_array_size(data); i++) {
                double want = json_number_value(json_array_get(data, i));
                double got = outs[k].data[i * step];
                double diff = fabs(want - got) / fmax(1.0, fabs(want));
                worst = fmax(worst, diff);
                if (diff > 1e-4)
                    T_FAIL("%s %s[%zu]: vbatch %.7g vs torch %.7g", fn, keys[k], i * step, got, want);
            }
            free(outs[k].data);
        }
        img_free(im);
        checked++;
    }
    printf("  %s: %d images, worst relative difference %.2e\n", name, checked, worst);
    ASSERT(checked >= 1);
    json_decref(tj);
    model_unref(m);
    model_registry_free(reg);
}

TEST(raw_matches_torch_det)
{
    compare_raw("synth-det", "synth-det/1", 1);
}
TEST(raw_matches_torch_seg)
{
    compare_raw("synth-seg", "synth-seg/1", 2);
}
TEST(raw_matches_torch_kpt)
{
    compare_raw("synth-kpt", "synth-kpt/1", 1);
}
TEST(raw_matches_torch_cls)
{
    compare_raw("synth-cls", "synth-cls/1", 1);
}
TEST(raw_matches_torch_mlc)
{
    compare_raw("synth-mlc", "synth-mlc/1", 1);
}

/* ---- segmentation, keypoints, classification ------------------------------------- */

static double poly_area(json_t *pts)
{
    double a = 0;
    size_t n = json_array_size(pts);
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(pts, i), *q = json_array_get(pts, (i + 1) % n);
        a += json_number_value(json_object_get(p, "x")) * json_number_value(json_object_get(q, "y")) -
             json_number_value(json_object_get(q, "x")) * json_number_value(json_object_get(p, "y"));
    }
    return fabs(a) / 2;
}

static void seg_check(const char *mode, double lo, double hi)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-seg/1", "synth-seg");
    json_t *out[12], *gt;
    char params[128];
    snprintf(params, sizeof(params), "{\"mask_decode_mode\": \"%s\", \"tradeoff_factor\": 0.5}", mode);
    run_testset(reg, "synth-seg/1", "synth-seg", params, 12, out, &gt);
    size_t matched = 0, ngt = 0;
    double ratio_sum = 0;
    for (size_t i = 0; i < 12; i++) {
        json_t *objs = json_object_get(json_array_get(json_object_get(gt, "images"), i), "objects");
        json_t *pa = json_object_get(out[i], "predictions");
        size_t g, k;
        json_t *o, *p;
        json_array_foreach(objs, g, o)
        {
            ngt++;
            double gb[4];
            for (int q = 0; q < 4; q++)
                gb[q] = json_number_value(json_array_get(json_object_get(o, "box"), (size_t)q));
            json_array_foreach(pa, k, p)
            {
                double x = json_number_value(json_object_get(p, "x")),
                       y = json_number_value(json_object_get(p, "y")),
                       w = json_number_value(json_object_get(p, "width")),
                       h = json_number_value(json_object_get(p, "height"));
                double pb[4] = {x - w / 2, y - h / 2, x + w / 2, y + h / 2};
                if (box_iou(pb, gb) < 0.5)
                    continue;
                json_t *pts = json_object_get(p, "points");
                ASSERT(json_array_size(pts) >= 3);
                size_t j;
                json_t *pt;
                json_array_foreach(pts, j, pt)
                {
                    double px = json_number_value(json_object_get(pt, "x"));
                    double py = json_number_value(json_object_get(pt, "y"));
                    ASSERT(px >= pb[0] - 3 && px <= pb[2] + 3 && py >= pb[1] - 3 && py <= pb[3] + 3);
                }
                double ratio = poly_area(pts) / (double)json_integer_value(json_object_get(o, "area"));
                ratio_sum += ratio;
                matched++;
                break;
            }
        }
    }
    double mr = ratio_sum / (double)(matched ? matched : 1);
    printf("  %s: matched %zu/%zu, mean polygon area / true area %.3f\n", mode, matched, ngt, mr);
    ASSERT(matched >= ngt * 9 / 10);
    ASSERT(mr >= lo && mr <= hi);
    for (int i = 0; i < 12; i++)
        json_decref(out[i]);
    json_decref(gt);
    model_registry_free(reg);
}

TEST(segmentation_accurate)
{
    seg_check("accurate", 0.75, 1.15);
}
TEST(segmentation_fast)
{
    seg_check("fast", 0.45, 1.3); /* polygon through boundary-cell centres of a 32x32 grid */
}
TEST(segmentation_tradeoff)
{
    seg_check("tradeoff", 0.65, 1.2);
}

TEST(keypoints_accuracy)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-kpt/1", "synth-kpt");
    json_t *out[24], *gt;
    run_testset(reg, "synth-kpt/1", "synth-kpt", NULL, 24, out, &gt);
    size_t n = 0, ngt = 0;
    double err = 0;
    for (size_t i = 0; i < 24; i++) {
        json_t *objs = json_object_get(json_array_get(json_object_get(gt, "images"), i), "objects");
        json_t *pa = json_object_get(out[i], "predictions");
        size_t g, k;
        json_t *o, *p;
        json_array_foreach(objs, g, o)
        {
            ngt++;
            double gb[4];
            for (int q = 0; q < 4; q++)
                gb[q] = json_number_value(json_array_get(json_object_get(o, "box"), (size_t)q));
            json_array_foreach(pa, k, p)
            {
                double x = json_number_value(json_object_get(p, "x")),
                       y = json_number_value(json_object_get(p, "y")),
                       w = json_number_value(json_object_get(p, "width")),
                       h = json_number_value(json_object_get(p, "height"));
                double pb[4] = {x - w / 2, y - h / 2, x + w / 2, y + h / 2};
                if (box_iou(pb, gb) < 0.5)
                    continue;
                json_t *kps = json_object_get(p, "keypoints");
                ASSERT_EQ((int)json_array_size(kps), 3);
                ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(kps, 0), "class")), "top");
                for (size_t j = 0; j < 3; j++) {
                    json_t *kp = json_array_get(kps, j), *tk = json_array_get(json_object_get(o, "keypoints"), j);
                    err += hypot(json_number_value(json_object_get(kp, "x")) - json_number_value(json_array_get(tk, 0)),
                                 json_number_value(json_object_get(kp, "y")) - json_number_value(json_array_get(tk, 1)));
                    n++;
                }
                break;
            }
        }
    }
    printf("  keypoints: %zu matched of %zu triangles, mean error %.2f px (256 px images)\n", n / 3, ngt,
           err / (double)(n ? n : 1));
    ASSERT(n / 3 >= ngt * 9 / 10);
    ASSERT(err / (double)n < 5.0);
    for (int i = 0; i < 24; i++)
        json_decref(out[i]);
    json_decref(gt);
    model_registry_free(reg);
}

TEST(classification_accuracy_and_response)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-cls/1", "synth-cls");
    json_t *out[30], *gt;
    run_testset(reg, "synth-cls/1", "synth-cls", "{\"confidence\": 0.0}", 30, out, &gt);
    int ok = 0;
    for (size_t i = 0; i < 30; i++) {
        json_t *want = json_array_get(json_object_get(json_array_get(json_object_get(gt, "images"), i), "labels"), 0);
        ok += !strcmp(json_string_value(json_object_get(out[i], "top")), json_string_value(want));
        ASSERT_STR_EQ(json_string_value(json_object_get(out[i], "prediction_type")), "classification");
        json_t *pa = json_object_get(out[i], "predictions");
        ASSERT_EQ((int)json_array_size(pa), 3);
        double sum = 0, prev = 2;
        for (size_t k = 0; k < 3; k++) {
            double c = json_number_value(json_object_get(json_array_get(pa, k), "confidence"));
            ASSERT(c <= prev);
            prev = c;
            sum += c;
        }
        ASSERT_NEAR(sum, 1.0, 2e-4);
    }
    printf("  classification accuracy %d/30\n", ok);
    ASSERT(ok >= 27);
    for (int i = 0; i < 30; i++)
        json_decref(out[i]);
    json_decref(gt);
    model_registry_free(reg);
}

TEST(multilabel_accuracy_and_response)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-mlc/1", "synth-mlc");
    json_t *out[30], *gt;
    run_testset(reg, "synth-mlc/1", "synth-mlc", "{\"confidence\": 0.5}", 30, out, &gt);
    int exact = 0, labels_ok = 0;
    const char *cls[3] = {"red", "green", "blue"};
    for (size_t i = 0; i < 30; i++) {
        json_t *want = json_object_get(json_array_get(json_object_get(gt, "images"), i), "labels");
        json_t *pc = json_object_get(out[i], "predicted_classes");
        json_t *pr = json_object_get(out[i], "predictions");
        ASSERT(json_is_object(pr) && json_object_size(pr) == 3);
        int all = 1;
        for (int c = 0; c < 3; c++) {
            int in_want = 0, in_got = 0;
            size_t k;
            json_t *v;
            json_array_foreach(want, k, v) in_want |= !strcmp(json_string_value(v), cls[c]);
            json_array_foreach(pc, k, v) in_got |= !strcmp(json_string_value(v), cls[c]);
            ASSERT_EQ(json_integer_value(json_object_get(json_object_get(pr, cls[c]), "class_id")), c);
            labels_ok += in_want == in_got;
            all &= in_want == in_got;
        }
        exact += all;
    }
    printf("  multi-label: exact %d/30, labels %d/90\n", exact, labels_ok);
    ASSERT(labels_ok >= 81);
    ASSERT(exact >= 24);
    for (int i = 0; i < 30; i++)
        json_decref(out[i]);
    json_decref(gt);
    model_registry_free(reg);
}

/* ---- NMS --------------------------------------------------------------------------- */

TEST(nms_iou_vs_classic)
{
    /* B covers the top half of A: IoU 0.5, classic overlap (B inside A) 1.0 */
    struct model_box b[] = {
        {0, 0, 10, 10, 0.9f, 0},
        {0, 0, 10, 5, 0.8f, 0},
        {100, 100, 110, 110, 0.7f, 0},
    };
    size_t keep[3];
    size_t n = model_nms(b, 3, MODEL_NMS_IOU, 0.6f, false, 300, keep);
    ASSERT_EQ((int)n, 3);
    ASSERT_EQ((int)keep[0], 0);
    ASSERT_EQ((int)keep[1], 1);
    n = model_nms(b, 3, MODEL_NMS_CLASSIC, 0.6f, false, 300, keep);
    ASSERT_EQ((int)n, 2);
    ASSERT_EQ((int)keep[1], 2);
    /* at IoU threshold 0.5 exactly: IoU must be strictly greater to suppress */
    n = model_nms(b, 3, MODEL_NMS_IOU, 0.5f, false, 300, keep);
    ASSERT_EQ((int)n, 3);
    n = model_nms(b, 3, MODEL_NMS_IOU, 0.49f, false, 300, keep);
    ASSERT_EQ((int)n, 2);
}

TEST(nms_class_aware_agnostic_and_max)
{
    struct model_box b[] = {
        {0, 0, 10, 10, 0.5f, 1},
        {1, 1, 11, 11, 0.9f, 0},
        {0, 0, 10, 10, 0.6f, 1},
        {50, 50, 60, 60, 0.8f, 2},
    };
    size_t keep[4];
    /* class-aware: 0.9 (c0), 0.8 (c2), 0.6 (c1) kept, 0.5 suppressed by 0.6 */
    size_t n = model_nms(b, 4, MODEL_NMS_IOU, 0.3f, false, 300, keep);
    ASSERT_EQ((int)n, 3);
    ASSERT_EQ((int)keep[0], 1);
    ASSERT_EQ((int)keep[1], 3);
    ASSERT_EQ((int)keep[2], 2);
    /* agnostic: the c1 boxes go under the 0.9 c0 box */
    n = model_nms(b, 4, MODEL_NMS_IOU, 0.3f, true, 300, keep);
    ASSERT_EQ((int)n, 2);
    ASSERT_EQ((int)keep[0], 1);
    ASSERT_EQ((int)keep[1], 3);
    /* max detections */
    n = model_nms(b, 4, MODEL_NMS_IOU, 0.3f, false, 1, keep);
    ASSERT_EQ((int)n, 1);
    ASSERT_EQ((int)keep[0], 1);
}

/* max_candidates caps the candidates of the new (IoU) path only: the
 * classic NMS accepts it and does not use it (WORKFLOWS.md 4.3). */
TEST(max_candidates_new_path_only)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-det/1", "synth-det");
    json_t *iou[6], *classic[6], *classic_all[6], *gt;
    run_testset(reg, "synth-det/1", "synth-det", "{\"max_candidates\": 1}", 6, iou, &gt);
    json_decref(gt);
    run_testset(reg, "synth-det/1", "synth-det", "{\"max_candidates\": 1, \"nms_mode\": \"classic\"}", 6,
                classic, &gt);
    json_decref(gt);
    run_testset(reg, "synth-det/1", "synth-det", "{\"nms_mode\": \"classic\"}", 6, classic_all, &gt);
    json_decref(gt);
    size_t more = 0;
    for (int i = 0; i < 6; i++) {
        size_t ni = json_array_size(json_object_get(iou[i], "predictions"));
        size_t nc = json_array_size(json_object_get(classic[i], "predictions"));
        ASSERT(ni <= 1);
        ASSERT_EQ((int)nc, (int)json_array_size(json_object_get(classic_all[i], "predictions")));
        more += nc > 1;
        json_decref(iou[i]);
        json_decref(classic[i]);
        json_decref(classic_all[i]);
    }
    ASSERT(more > 0);
    model_registry_free(reg);
}

/* Through the model: agnostic NMS never returns more boxes, class_filter
 * and max_detections apply, confidence raises the bar. */
TEST(detector_params)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-det/1", "synth-det");
    json_t *a[6], *b[6], *c[6], *d[6], *gt;
    run_testset(reg, "synth-det/1", "synth-det", "{\"confidence\": 0.05, \"iou_threshold\": 0.9}", 6, a, &gt);
    json_decref(gt);
    run_testset(reg, "synth-det/1", "synth-det",
                "{\"confidence\": 0.05, \"iou_threshold\": 0.9, \"class_agnostic_nms\": true}", 6, b, &gt);
    json_decref(gt);
    run_testset(reg, "synth-det/1", "synth-det", "{\"class_filter\": [\"circle\"], \"max_detections\": 1}", 6, c, &gt);
    json_decref(gt);
    run_testset(reg, "synth-det/1", "synth-det", "{\"nms_mode\": \"classic\"}", 6, d, &gt);
    json_decref(gt);
    size_t na = 0, nb = 0;
    for (int i = 0; i < 6; i++) {
        na += json_array_size(json_object_get(a[i], "predictions"));
        nb += json_array_size(json_object_get(b[i], "predictions"));
        json_t *pc = json_object_get(c[i], "predictions");
        ASSERT(json_array_size(pc) <= 1);
        if (json_array_size(pc))
            ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(pc, 0), "class")), "circle");
        size_t k;
        json_t *p;
        json_array_foreach(json_object_get(d[i], "predictions"), k, p)
            ASSERT(json_number_value(json_object_get(p, "confidence")) >= 0.4);
        json_decref(a[i]);
        json_decref(b[i]);
        json_decref(c[i]);
        json_decref(d[i]);
    }
    printf("  class-aware %zu boxes, agnostic %zu boxes\n", na, nb);
    ASSERT(nb <= na);
    ASSERT(na > 6);
    /* bad parameter values are refused */
    char err[256] = "";
    json_t *bad = json_pack("{s:f}", "confidence", 1.5);
    struct vis_image dummy = {.w = 8, .h = 8, .stride = 24, .fmt = VIS_BGR, .px = xcalloc(1, 192)};
    const struct vis_image *di[1] = {&dummy};
    json_t *o1[1];
    ASSERT_EQ(model_registry_infer(reg, NULL, "synth-det/1", NULL, bad, di, 1, o1, err, sizeof(err)), ERR_INVALID);
    ASSERT(strstr(err, "confidence"));
    json_decref(bad);
    free(dummy.px);
    model_registry_free(reg);
}

/* ---- registry ------------------------------------------------------------------------ */

TEST(unknown_model_and_aliases)
{
    struct model_registry *reg = reg_new(NULL);
    char err[512] = "";
    struct model *m = NULL;
    ASSERT_EQ(model_registry_get(reg, NULL, "nope/1", &m, err, sizeof(err)), ERR_NOTFOUND);
    ASSERT(strstr(err, "unknown model 'nope/1'"));
    ASSERT_EQ(model_registry_get(reg, NULL, "yolov8n-640", &m, err, sizeof(err)), ERR_NOTFOUND);
    ASSERT(strstr(err, "coco/3"));
    reg_add(reg, "coco/3", "synth-det");
    ASSERT_OK(model_registry_get(reg, NULL, "yolov8n-640", &m, err, sizeof(err)));
    ASSERT_STR_EQ(model_id(m), "coco/3");
    ASSERT_EQ(model_task(m), MODEL_TASK_DETECTION);
    model_unref(m);
    ASSERT_OK(model_registry_alias_set(reg, "my-shapes", "coco/3"));
    ASSERT_OK(model_registry_get(reg, NULL, "my-shapes", &m, err, sizeof(err)));
    model_unref(m);
    /* task mismatch */
    struct vis_image dummy = {.w = 8, .h = 8, .stride = 24, .fmt = VIS_BGR, .px = xcalloc(1, 192)};
    const struct vis_image *di[1] = {&dummy};
    json_t *o1[1];
    ASSERT_EQ(model_registry_infer(reg, NULL, "coco/3", "classification", NULL, di, 1, o1, err, sizeof(err)),
              ERR_INVALID);
    ASSERT(strstr(err, "object-detection"));
    ASSERT_EQ(model_registry_infer(reg, NULL, "missing/2", NULL, NULL, di, 1, o1, err, sizeof(err)), ERR_NOTFOUND);
    ASSERT_OK(model_registry_infer(reg, NULL, "coco/3", "object-detection", NULL, di, 1, o1, err, sizeof(err)));
    json_decref(o1[0]);
    free(dummy.px);
    /* invalid ids */
    char *p = mpath("synth-det");
    ASSERT_EQ(model_registry_register_dir(reg, "../x", p, err, sizeof(err)), ERR_INVALID);
    ASSERT_EQ(model_registry_register_dir(reg, "a/b/c", p, err, sizeof(err)), ERR_INVALID);
    free(p);
    model_registry_free(reg);
}

static void expect_refused(const char *rel, const char *needle)
{
    struct model_registry *reg = reg_new(NULL);
    char err[512] = "";
    char *p = mpath(rel);
    int rc = model_registry_register_dir(reg, "bad/1", p, err, sizeof(err));
    printf("  %s: %s\n", rel, err);
    ASSERT(rc < 0);
    if (!strstr(err, needle))
        T_FAIL("error for %s lacks '%s': %s", rel, needle, err);
    struct model *m = NULL;
    ASSERT_EQ(model_registry_get(reg, NULL, "bad/1", &m, err, sizeof(err)), ERR_NOTFOUND);
    free(p);
    model_registry_free(reg);
}

TEST(bad_models_refused)
{
    expect_refused("bad/missing", "weights.onnx");
    expect_refused("bad/garbage", "cannot load the onnx model");
    expect_refused("bad/rank3", "rank 3");
    expect_refused("bad/uint8", "float32");
    expect_refused("bad/layout", "no decoder understands");
    expect_refused("does-not-exist", "weights.onnx");
}

TEST(ultralytics_metadata)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "ultra/1", "ultra-tiny");
    struct model *m = NULL;
    char err[256];
    ASSERT_OK(model_registry_get(reg, NULL, "ultra/1", &m, err, sizeof(err)));
    ASSERT_EQ((int)model_class_count(m), 2);
    ASSERT_STR_EQ(model_class_name(m, 1), "dog");
    ASSERT_EQ(model_task(m), MODEL_TASK_DETECTION);
    json_t *d = model_describe(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(d, "preprocessing"), "resize")),
                  "letterbox");
    json_decref(d);
    model_unref(m);
    model_registry_free(reg);
}

static char *read_file(const char *path, size_t *len)
{
    char *d = NULL;
    ASSERT_OK(file_read_all(path, 1 << 26, &d, len));
    return d;
}

TEST(register_bytes_persist_and_reload)
{
    char tmpl[] = "/tmp/vbatch-model-XXXXXX";
    ASSERT(mkdtemp(tmpl));
    char *mdir = xasprintf("%s/models", tmpl);
    struct model_registry *reg = reg_new(mdir);
    char *wp = mpath("synth-det/weights.onnx");
    size_t len;
    char *onnx = read_file(wp, &len);
    json_t *meta = json_pack("{s:s, s:[sss], s:[s], s:{s:s}}", "task", "object-detection",
                             "class_names", "circle", "square", "triangle", "aliases", "shapes-640",
                             "environment", "PREPROCESSING",
                             "{\"resize\": {\"enabled\": true, \"format\": \"Stretch to\", \"width\": 128, \"height\": 128}}");
    char err[512] = "";
    if (model_registry_register_bytes(reg, "shapes/7", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("register_bytes: %s", err);
    /* copy of a folder registration too */
    reg_add(reg, "det-copy/2", "synth-det");
    model_registry_free(reg);
    struct stat st;
    char *f = xasprintf("%s/shapes--7/weights.onnx", mdir);
    ASSERT_EQ(stat(f, &st), 0);
    free(f);
    f = xasprintf("%s/det-copy--2/environment.json", mdir);
    ASSERT_EQ(stat(f, &st), 0);
    free(f);
    /* a fresh registry finds both, with the alias */
    reg = reg_new(NULL);
    int bad = -1;
    int n = model_registry_load_dir(reg, mdir, &bad, err, sizeof(err));
    ASSERT_EQ(n, 2);
    ASSERT_EQ(bad, 0);
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, "shapes-640", &m, err, sizeof(err)));
    ASSERT_STR_EQ(model_id(m), "shapes/7");
    ASSERT_STR_EQ(model_class_name(m, 2), "triangle");
    model_unref(m);
    ASSERT_OK(model_registry_get(reg, NULL, "det-copy/2", &m, err, sizeof(err)));
    model_unref(m);
    json_t *list = model_registry_list(reg);
    ASSERT_EQ((int)json_array_size(list), 2);
    json_decref(list);
    /* bad uploads */
    ASSERT(model_registry_register_bytes(reg, "junk/1", "nope", 4, meta, err, sizeof(err)) < 0);
    ASSERT(strstr(err, "cannot load the onnx model"));
    model_registry_free(reg);
    json_decref(meta);
    free(onnx);
    free(wp);
    char *cmd = xasprintf("rm -rf '%s'", tmpl);
    ASSERT_EQ(system(cmd), 0);
    free(cmd);
    free(mdir);
}

/* ---- inputs prepared ahead (model_prepare) -------------------------------------------- */

static json_t *infer_one(struct model_registry *reg, const char *id, const struct vis_image *im)
{
    char err[512] = "";
    json_t *out = NULL;
    const struct vis_image *arr[1] = {im};
    if (model_registry_infer(reg, NULL, id, NULL, NULL, arr, 1, &out, err, sizeof(err)) < 0)
        T_FAIL("infer: %s", err);
    return out;
}

TEST(prepare_ahead_is_used_and_freed)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-det/1", "synth-det");
    reg_add(reg, "synth-det/2", "synth-det"); /* the same weights, another model object */
    char err[512] = "";
    char *p = mpath("synth-det/test/img_00.png");
    struct vis_image *im = png_load(p), *blank = png_load(p);
    free(p);
    memset(blank->px, 0, (size_t)blank->stride * (size_t)blank->h);

    json_t *want = infer_one(reg, "synth-det/1", im);
    json_t *none = infer_one(reg, "synth-det/1", blank);
    ASSERT(json_array_size(json_object_get(want, "predictions")) >= 1);
    ASSERT_EQ(json_array_size(json_object_get(none, "predictions")), 0);

    /* prepare, then blank the pixels: a run that uses the prepared tensor
     * still sees the shapes (the contract forbids changing the pixels; the
     * test does it to prove the tensor is what runs) */
    ASSERT_OK(model_registry_prepare(reg, NULL, "synth-det/1", im, err, sizeof(err)));
    ASSERT_OK(model_registry_prepare(reg, NULL, "synth-det/1", im, err, sizeof(err))); /* once is kept */
    ASSERT(im->aux != NULL);
    memset(im->px, 0, (size_t)im->stride * (size_t)im->h);
    json_t *got = infer_one(reg, "synth-det/1", im);
    ASSERT(json_equal(json_object_get(got, "predictions"), json_object_get(want, "predictions")));

    /* a full-size view sharing the pixels (what the workflow engine hands
     * the model) uses it too */
    struct vis_image view = *im;
    view._view = 1;
    json_t *gotv = infer_one(reg, "synth-det/1", &view);
    ASSERT(json_equal(json_object_get(gotv, "predictions"), json_object_get(want, "predictions")));

    /* another model and a region view do not: they pre-process the (blank) pixels */
    json_t *other = infer_one(reg, "synth-det/2", im);
    ASSERT_EQ(json_array_size(json_object_get(other, "predictions")), 0);
    struct vis_image region;
    ASSERT_OK(vis_image_view(im, 0, 0, im->w - 8, im->h - 8, &region));
    ASSERT(region.aux == NULL);
    json_t *reg_out = infer_one(reg, "synth-det/1", &region);
    ASSERT_EQ(json_array_size(json_object_get(reg_out, "predictions")), 0);

    /* unknown model: a clear error, nothing attached */
    ASSERT_EQ(model_registry_prepare(reg, NULL, "nope/1", blank, err, sizeof(err)), ERR_NOTFOUND);
    ASSERT(blank->aux == NULL);
    /* aux of another kind is left alone */
    int token = 0;
    blank->aux = &token;
    blank->aux_free = NULL;
    ASSERT(model_registry_prepare(reg, NULL, "synth-det/1", blank, err, sizeof(err)) < 0);
    ASSERT(blank->aux == &token);
    blank->aux = NULL;

    json_decref(want);
    json_decref(none);
    json_decref(got);
    json_decref(gotv);
    json_decref(other);
    json_decref(reg_out);
    vis_image_free(im); /* frees the prepared tensor: LeakSanitizer checks */
    vis_image_free(blank);
    model_registry_free(reg);
}

/* ---- pre-processing ------------------------------------------------------------------- */

TEST(preprocess_letterbox_bgr_normalise)
{
    struct model_registry *reg = reg_new(NULL);
    char *wp = mpath("ultra-tiny/weights.onnx");
    size_t len;
    char *onnx = read_file(wp, &len);
    json_t *meta = json_loads(
        "{\"inference_config\": {\"network_input\": {\"resize_mode\": \"letterbox\", "
        "\"padding_value\": 0, \"color_mode\": \"bgr\", \"scaling_factor\": 255, "
        "\"normalization\": [[0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]}}}",
        0, NULL);
    char err[512] = "";
    if (model_registry_register_bytes(reg, "lb/1", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("%s", err);
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, "lb/1", &m, err, sizeof(err)));
    /* 64x32 image: left half B=255, right half R=255 -> letterbox 32x16 at y 8..24 */
    struct vis_image im = {.w = 64, .h = 32, .stride = 192, .fmt = VIS_BGR, .px = xcalloc(64 * 32, 3)};
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 64; x++)
            im.px[y * 192 + x * 3 + (x < 32 ? 0 : 2)] = 255;
    float t[3 * 32 * 32];
    struct model_letterbox lb;
    ASSERT_OK(model_preprocess(m, &im, t, &lb));
    ASSERT_NEAR(lb.sx, 0.5, 1e-6);
    ASSERT_NEAR(lb.oy, 8, 1e-6);
    /* padding: value 0 -> (0 - 0.5) / 0.25 = -2 */
    ASSERT_NEAR(t[0 * 1024 + 2 * 32 + 5], -2.0, 1e-5);
    /* plane 0 is B (bgr): left half 255 -> (1 - .5)/.25 = 2; right half -2 */
    ASSERT_NEAR(t[0 * 1024 + 16 * 32 + 4], 2.0, 1e-5);
    ASSERT_NEAR(t[0 * 1024 + 16 * 32 + 28], -2.0, 1e-5);
    ASSERT_NEAR(t[2 * 1024 + 16 * 32 + 28], 2.0, 1e-5);
    model_unref(m);
    json_decref(meta);

    /* stretch + static crop + grayscale from a Roboflow environment.json */
    meta = json_loads(
        "{\"class_names\": [\"cat\", \"dog\"], \"environment\": {\"PREPROCESSING\": "
        "\"{\\\"static-crop\\\": {\\\"enabled\\\": true, \\\"x_min\\\": 50, \\\"x_max\\\": 100, "
        "\\\"y_min\\\": 0, \\\"y_max\\\": 100}, \\\"grayscale\\\": {\\\"enabled\\\": true}}\"}}",
        0, NULL);
    ASSERT(meta);
    if (model_registry_register_bytes(reg, "crop/1", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("%s", err);
    ASSERT_OK(model_registry_get(reg, NULL, "crop/1", &m, err, sizeof(err)));
    ASSERT_OK(model_preprocess(m, &im, t, &lb));
    ASSERT_EQ(lb.crop_x, 32);
    ASSERT_EQ(lb.crop_w, 32);
    /* right half is pure red: gray = 76 (cv2 weights), in all three planes */
    for (int k = 0; k < 3; k++)
        ASSERT_NEAR(t[k * 1024 + 10 * 32 + 10] * 255.0, 76.0, 1e-3);
    model_unref(m);
    json_decref(meta);
    free(im.px);
    free(onnx);
    free(wp);
    model_registry_free(reg);
}

/* Letterbox models: boxes map back through the padding.  The detector sees
 * each test picture pasted into a wider canvas (bars left and right). */
/* The 8-bit fast path (cv2-style fixed point, rounded to 8 bits) against
 * exact bilinear interpolation of a linear ramp, which it must reproduce
 * within one grey level everywhere inside the resized area. */
TEST(preprocess_fixed_point_ramp)
{
    struct model_registry *reg = reg_new(NULL);
    char *wp = mpath("ultra-tiny/weights.onnx");
    size_t len;
    char *onnx = read_file(wp, &len);
    json_t *meta = json_loads("{\"inference_config\": {\"network_input\": {\"resize_mode\": \"letterbox\", "
                              "\"padding_value\": 0, \"color_mode\": \"bgr\", \"scaling_factor\": 1}}}",
                              0, NULL);
    char err[512] = "";
    if (model_registry_register_bytes(reg, "ramp/1", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("%s", err);
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, "ramp/1", &m, err, sizeof(err)));
    int W = 0, H = 0;
    model_input_size(m, &W, &H);
    /* B = x, G = 2y, R = 255 - x over 211 x 97: letterboxed by 32/211 */
    struct vis_image *im = vis_image_new(211, 97, VIS_BGR);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            uint8_t *q = vis_px(im, x, y);
            q[0] = (uint8_t)x;
            q[1] = (uint8_t)(2 * y);
            q[2] = (uint8_t)(255 - x);
        }
    float *t = xcalloc((size_t)3 * W * H, sizeof(float));
    struct model_letterbox lb;
    ASSERT_OK(model_preprocess(m, im, t, &lb));
    double s = (double)W / im->w;
    int rw = (int)(im->w * s), rh = (int)(im->h * s), px = (W - rw) / 2, py = (H - rh) / 2;
    size_t plane = (size_t)W * H;
    int checked = 0;
    for (int y = py; y < py + rh; y++)
        for (int x = px; x < px + rw; x++) {
            double fx = (x - px + 0.5) * ((double)im->w / rw) - 0.5;
            double fy = (y - py + 0.5) * ((double)im->h / rh) - 0.5;
            fx = fmin(fmax(fx, 0), im->w - 1);
            fy = fmin(fmax(fy, 0), im->h - 1);
            ASSERT_NEAR(t[(size_t)y * W + x], fx, 1.0);
            ASSERT_NEAR(t[plane + (size_t)y * W + x], 2 * fy, 1.0);
            ASSERT_NEAR(t[2 * plane + (size_t)y * W + x], 255 - fx, 1.0);
            /* 8-bit results, as cv2.resize of a uint8 image gives */
            ASSERT_NEAR(t[(size_t)y * W + x], nearbyint(t[(size_t)y * W + x]), 1e-4);
            checked++;
        }
    ASSERT(checked > 100);
    free(t);
    vis_image_free(im);
    model_unref(m);
    json_decref(meta);
    free(onnx);
    free(wp);
    model_registry_free(reg);
}

TEST(letterbox_mapping_back)
{
    struct model_registry *reg = reg_new(NULL);
    char *wp = mpath("synth-det/weights.onnx");
    size_t len;
    char *onnx = read_file(wp, &len);
    json_t *meta = json_loads(
        "{\"class_names\": [\"circle\", \"square\", \"triangle\"], \"environment\": "
        "{\"PREPROCESSING\": {\"resize\": {\"enabled\": true, \"format\": \"Fit (grey edges) in\", "
        "\"width\": 128, \"height\": 128}}}}", 0, NULL);
    char err[512] = "";
    ASSERT(meta);
    if (model_registry_register_bytes(reg, "lbdet/1", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("%s", err);
    char *gp = mpath("synth-det/test/gt.json");
    json_t *gt = load_json(gp);
    free(gp);
    size_t found = 0, ngt = 0;
    double err_sum = 0;
    for (size_t i = 0; i < 8; i++) {
        json_t *e = json_array_get(json_object_get(gt, "images"), i);
        char rel[128];
        snprintf(rel, sizeof(rel), "synth-det/test/%s", json_string_value(json_object_get(e, "file")));
        char *ip = mpath(rel);
        struct vis_image *im = png_load(ip);
        free(ip);
        /* 288x256 canvas, picture at x = 16 */
        struct vis_image big = {.w = 288, .h = 256, .stride = 288 * 3, .fmt = VIS_BGR};
        big.px = xmalloc((size_t)big.stride * 256);
        memset(big.px, 114, (size_t)big.stride * 256);
        for (int y = 0; y < 256; y++)
            memcpy(big.px + (size_t)y * big.stride + 16 * 3, im->px + (size_t)y * im->stride, 256 * 3);
        const struct vis_image *ims[1] = {&big};
        json_t *out[1];
        if (model_registry_infer(reg, NULL, "lbdet/1", "object-detection", NULL, ims, 1, out, err, sizeof(err)) < 0)
            T_FAIL("%s", err);
        size_t g, k;
        json_t *o, *p;
        json_array_foreach(json_object_get(e, "objects"), g, o)
        {
            double gb[4];
            for (int q = 0; q < 4; q++)
                gb[q] = json_number_value(json_array_get(json_object_get(o, "box"), (size_t)q)) + (q % 2 ? 0 : 16);
            ngt++;
            json_array_foreach(json_object_get(out[0], "predictions"), k, p)
            {
                double x = json_number_value(json_object_get(p, "x")), y = json_number_value(json_object_get(p, "y")),
                       w = json_number_value(json_object_get(p, "width")), h = json_number_value(json_object_get(p, "height"));
                double pb[4] = {x - w / 2, y - h / 2, x + w / 2, y + h / 2};
                if (box_iou(pb, gb) >= 0.5) {
                    found++;
                    for (int q = 0; q < 4; q++)
                        err_sum += fabs(pb[q] - gb[q]);
                    break;
                }
            }
        }
        ASSERT_EQ(json_integer_value(json_object_get(json_object_get(out[0], "image"), "width")), 288);
        json_decref(out[0]);
        free(big.px);
        img_free(im);
    }
    printf("  letterbox: found %zu/%zu, mean |box err| %.2f px\n", found, ngt, err_sum / (4.0 * (double)(found ? found : 1)));
    ASSERT(found >= ngt * 9 / 10);
    ASSERT(err_sum / (4.0 * (double)found) < 3.5);
    json_decref(gt);
    json_decref(meta);
    free(onnx);
    free(wp);
    model_registry_free(reg);
}

/* Upload metadata is checked: wrong types and unsupported settings are
 * clean errors naming the problem. */
TEST(upload_metadata_checked)
{
    struct model_registry *reg = reg_new(NULL);
    char *wp = mpath("ultra-tiny/weights.onnx");
    size_t len;
    char *onnx = read_file(wp, &len);
    struct {
        const char *meta, *needle;
    } cases[] = {
        {"{\"class_names\": [1, 2]}", "class_names"},
        {"{\"environment\": \"x\"}", "must be a JSON object"},
        {"{\"task\": \"nonsense\"}", "unknown task 'nonsense'"},
        {"{\"task\": \"classification\"}", "no decoder understands"},
        {"{\"environment\": {\"PREPROCESSING\": \"{\\\"contrast\\\": {\\\"enabled\\\": true, "
         "\\\"type\\\": \\\"Adaptive Equalization\\\"}}\"}}", "Adaptive Equalization"},
        {"{\"inference_config\": {\"network_input\": {\"resize_mode\": \"fisheye\"}}}", "fisheye"},
        {"{\"inference_config\": {\"network_input\": {\"normalization\": [[0], [1]]}}}", "normalization"},
        {"{\"class_names\": [\"a\", \"b\", \"c\"]}", "no decoder understands"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        json_error_t je;
        json_t *meta = json_loads(cases[i].meta, 0, &je);
        if (!meta)
            T_FAIL("case %zu: bad JSON in the test: %s", i, je.text);
        char err[512] = "";
        int rc = model_registry_register_bytes(reg, "up/1", onnx, len, meta, err, sizeof(err));
        printf("  case %zu: %s\n", i, err);
        ASSERT(rc < 0);
        if (!strstr(err, cases[i].needle))
            T_FAIL("case %zu: '%s' lacks '%s'", i, err, cases[i].needle);
        json_decref(meta);
    }
    /* a too-large model is refused before it is parsed */
    struct model_registry *small = NULL;
    char err[256] = "";
    struct model_registry_opts o = {.max_model_bytes = 1000};
    ASSERT_OK(model_registry_new(&o, &small, err, sizeof(err)));
    ASSERT_EQ(model_registry_register_bytes(small, "big/1", onnx, len, NULL, err, sizeof(err)), ERR_LIMIT);
    model_registry_free(small);
    free(onnx);
    free(wp);
    model_registry_free(reg);
}

/* Contrast stretching maps the 2nd..98th percentiles to 0..255; centre
 * crop fills the input and maps back with a negative offset. */
TEST(preprocess_contrast_and_center_crop)
{
    struct model_registry *reg = reg_new(NULL);
    char *wp = mpath("ultra-tiny/weights.onnx");
    size_t len;
    char *onnx = read_file(wp, &len);
    json_t *meta = json_loads(
        "{\"environment\": {\"PREPROCESSING\": {\"contrast\": {\"enabled\": true, \"type\": "
        "\"Contrast Stretching\"}}}}", 0, NULL);
    char err[512] = "";
    ASSERT(meta);
    if (model_registry_register_bytes(reg, "ct/1", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("%s", err);
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, "ct/1", &m, err, sizeof(err)));
    /* 32x32 gray ramp 100..131 in all channels */
    struct vis_image im = {.w = 32, .h = 32, .stride = 96, .fmt = VIS_BGR, .px = xmalloc(32 * 96)};
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            for (int c = 0; c < 3; c++)
                im.px[y * 96 + x * 3 + c] = (uint8_t)(100 + x);
    float t[3 * 32 * 32];
    struct model_letterbox lb;
    ASSERT_OK(model_preprocess(m, &im, t, &lb));
    ASSERT_NEAR(t[5 * 32 + 0], 0.0, 1e-6);   /* below the 2nd percentile */
    ASSERT_NEAR(t[5 * 32 + 31], 1.0, 1e-6);  /* above the 98th */
    ASSERT(t[5 * 32 + 10] > (110 - 100) / 31.0 - 0.05 && t[5 * 32 + 10] < (110 - 100) / 31.0 + 0.05);
    model_unref(m);
    json_decref(meta);
    /* centre crop: a 64x32 picture scaled by 1 (32/32), cropped to x 16..48 */
    meta = json_loads("{\"inference_config\": {\"network_input\": {\"resize_mode\": \"center-crop\"}}}", 0, NULL);
    if (model_registry_register_bytes(reg, "cc/1", onnx, len, meta, err, sizeof(err)) < 0)
        T_FAIL("%s", err);
    ASSERT_OK(model_registry_get(reg, NULL, "cc/1", &m, err, sizeof(err)));
    struct vis_image wide = {.w = 64, .h = 32, .stride = 192, .fmt = VIS_BGR, .px = xmalloc(32 * 192)};
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 64; x++)
            for (int c = 0; c < 3; c++)
                wide.px[y * 192 + x * 3 + c] = (uint8_t)(x * 2);
    ASSERT_OK(model_preprocess(m, &wide, t, &lb));
    ASSERT_NEAR(lb.ox, -16, 1e-6);
    ASSERT_NEAR(t[3 * 32 + 0] * 255.0, 32.0, 1e-3); /* input x 0 = picture x 16 */
    model_unref(m);
    json_decref(meta);
    free(wide.px);
    free(im.px);
    free(onnx);
    free(wp);
    model_registry_free(reg);
}

/* ---- runtime --------------------------------------------------------------------------- */

TEST(missing_runtime_is_a_clear_error)
{
    struct model_registry *reg = NULL;
    char err[512] = "";
    struct model_registry_opts o = {.ort_lib = "/nonexistent/libonnxruntime.so"};
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof(err)));
    ASSERT_EQ(model_registry_runtime_check(reg, err, sizeof(err)), ERR_UNSUPPORTED);
    ASSERT(strstr(err, "cannot load onnx runtime from '/nonexistent/libonnxruntime.so'"));
    char *p = mpath("synth-det");
    ASSERT(model_registry_register_dir(reg, "x/1", p, err, sizeof(err)) < 0);
    ASSERT(strstr(err, "VBATCH_ORT_LIB"));
    free(p);
    model_registry_free(reg);
}

TEST(gpu_without_provider)
{
    struct model_registry *reg = NULL;
    char err[512] = "";
    struct model_registry_opts o = {.machine_type = "gpu"};
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof(err)));
    int rc = model_registry_runtime_check(reg, err, sizeof(err));
    printf("  gpu: rc %d %s\n", rc, rc ? err : "(a GPU provider is present)");
    if (rc < 0)
        ASSERT(strstr(err, "CUDA or TensorRT"));
    model_registry_free(reg);
}

struct thr_arg {
    struct model_registry *reg;
    struct vis_image *img;
    char *dump;
};

static void *thr_run(void *p)
{
    struct thr_arg *a = p;
    char err[256];
    for (int i = 0; i < 5; i++) {
        json_t *o[1];
        const struct vis_image *im[1] = {a->img};
        if (model_registry_infer(a->reg, NULL, "synth-det/1", NULL, NULL, im, 1, o, err, sizeof(err)) < 0)
            return NULL;
        free(a->dump);
        a->dump = json_dumps(o[0], JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
        json_decref(o[0]);
    }
    return NULL;
}

TEST(shared_session_threads)
{
    struct model_registry *reg = reg_new(NULL);
    reg_add(reg, "synth-det/1", "synth-det");
    char *p = mpath("synth-det/test/img_00.png");
    struct vis_image *im = png_load(p);
    free(p);
    struct thr_arg a[3] = {{reg, im, NULL}, {reg, im, NULL}, {reg, im, NULL}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, thr_run, &a[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        ASSERT(a[i].dump);
        ASSERT_STR_EQ(a[i].dump, a[0].dump);
    }
    for (int i = 0; i < 3; i++)
        free(a[i].dump);
    img_free(im);
    model_registry_free(reg);
}

TEST_MAIN()
