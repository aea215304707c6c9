/*
 * test_jobs_semantic.c — semantic segmentation end to end inside the
 * process: the DeepLabV3+ replica (tests/data/models/deeplab-tiny, made by
 * scripts/models/make-family-models.py) registers as a semantic
 * segmentation model, its decoded masks equal those of
 * tests/unit/semantic_ref.py (Roboflow's make_response written in plain
 * Python) on the same raw logits, the Roboflow response carries them as
 * PNGs, and the roboflow_semantic_segmentation_model@v1/@v2 blocks turn
 * them into the detections (COCO RLE masks) Roboflow's blocks produce.
 * Malformed models and NaN logits are refused with a message.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"

#include "base/base.h"
#include "model/model.h"
#include "vision/vision.h"
#include "workflow/workflow.h"

static const char *src_dir(void)
{
    const char *s = getenv("VBATCH_SRCDIR");
    return s ? s : ".";
}

static struct vis_image *load(const char *rel)
{
    char *p = xasprintf("%s/tests/data/models/%s", src_dir(), rel), *buf = NULL;
    size_t len = 0;
    struct vis_image *im = NULL;
    if (file_read_all(p, 1 << 24, &buf, &len) < 0 || vis_decode(buf, len, &im) < 0)
        T_FAIL("cannot read %s", p);
    free(p);
    free(buf);
    return im;
}

/* A w x h window of img at (x0, y0): a picture whose size is not the
 * model's, so that both resizes do work. */
static struct vis_image *window(const struct vis_image *img, int x0, int y0, int w, int h)
{
    struct vis_image *o = vis_image_new(w, h, VIS_BGR);
    for (int y = 0; y < h; y++)
        memcpy(o->px + (size_t)y * (size_t)o->stride,
               img->px + (size_t)(y0 + y) * (size_t)img->stride + (size_t)x0 * 3, (size_t)w * 3);
    return o;
}

static struct model_registry *reg_with_deeplab(void)
{
    struct model_registry *reg = NULL;
    struct model_registry_opts o = {.intra_op_threads = 1};
    char err[1024] = "", *dir = xasprintf("%s/tests/data/models/deeplab-tiny", src_dir());
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof err));
    if (model_registry_register_dir(reg, "sem/1", dir, err, sizeof err) < 0)
        T_FAIL("register deeplab-tiny: %s", err);
    free(dir);
    return reg;
}

static json_t *reference(const struct model *m, const struct model_tensor *out, int w, int h)
{
    json_t *q = json_object(), *cls = json_array(), *sh = json_array(), *da = json_array();
    for (size_t i = 0; i < model_class_count(m); i++)
        json_array_append_new(cls, json_string(model_class_name(m, i)));
    for (int i = 0; i < out->rank; i++)
        json_array_append_new(sh, json_integer(out->shape[i]));
    for (size_t i = 0; i < out->count; i++)
        json_array_append_new(da, json_real(out->data[i]));
    json_object_set_new(q, "image", json_pack("[i,i]", w, h));
    json_object_set_new(q, "classes", cls);
    json_object_set_new(q, "output", json_pack("{s:o,s:o}", "shape", sh, "data", da));
    char tmpl[] = "/tmp/vbatch-semref-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT(fd >= 0);
    close(fd);
    ASSERT_OK(json_dump_file(q, tmpl, JSON_REAL_PRECISION(9) | JSON_COMPACT));
    json_decref(q);
    char *cmd = xasprintf("/usr/bin/python3 %s/tests/unit/semantic_ref.py %s", src_dir(), tmpl);
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

/* gray pixels of a base64 PNG */
static uint8_t *png_gray(const json_t *s, int w, int h)
{
    size_t n = 0;
    uint8_t *b = base64_decode(json_string_value(s), strlen(json_string_value(s)), &n), *px;
    struct vis_image *im = NULL;
    ASSERT(b);
    ASSERT_OK(vis_decode(b, n, &im));
    ASSERT_EQ(im->w, w);
    ASSERT_EQ(im->h, h);
    px = xmalloc((size_t)w * (size_t)h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            px[(size_t)y * (size_t)w + (size_t)x] = vis_px(im, x, y)[0];
    vis_image_free(im);
    free(b);
    return px;
}

static int provider(void *ud, const struct wf_model_request *req,
                    const struct vis_image *const *images, size_t n, json_t **out, char *err,
                    size_t errlen)
{
    return model_registry_infer(ud, NULL, req->model_id, req->task, req->params, images, n, out,
                                err, errlen);
}

/* vbatch's decoded masks and the reference's on the same raw logits; the
 * blocks' detections and the reference's conversion of those masks */
TEST(semantic_matches_roboflow_reference)
{
    struct model_registry *reg = reg_with_deeplab();
    struct model *m = NULL;
    char err[1024];
    ASSERT_OK(model_registry_get(reg, NULL, "sem/1", &m, err, sizeof err));
    json_t *d = model_describe(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "task")), "semantic-segmentation");
    json_decref(d);
    ASSERT_EQ(model_class_count(m), 4);

    struct vis_image *native = load("deeplab-tiny/test/native.png");
    struct vis_image *big = load("synth-det/test/img_03.png");
    struct vis_image *win = window(big, 13, 40, 203, 151);
    const struct vis_image *pics[] = {native, win};
    int n_px = 0, n_conf_off = 0, n_dets = 0;
    for (size_t pi = 0; pi < ARRAY_LEN(pics); pi++) {
        const struct vis_image *im = pics[pi];
        struct model_tensor out[2];
        size_t nout = 0;
        ASSERT_OK(model_run_raw(m, im, out, 2, &nout, err, sizeof err));
        ASSERT_EQ(nout, 1);
        ASSERT_EQ(out[0].shape[1], 4);
        json_t *ref = reference(m, &out[0], im->w, im->h);

        /* the model's masks */
        struct model_params p;
        struct model_result r;
        struct model_letterbox lb = {1, 1, 0, 0, 0, 0, im->w, im->h};
        model_params_init(&p);
        ASSERT_OK(model_decode_raw(m, out, 1, &lb, im->w, im->h, &p, &r, err, sizeof err));
        ASSERT_EQ(r.task, MODEL_TASK_SEMANTIC);
        const json_t *rc = json_object_get(ref, "class_mask"), *rf = json_object_get(ref, "conf_mask");
        ASSERT_EQ(json_array_size(rc), (size_t)im->w * (size_t)im->h);
        int hist[4] = {0};
        for (size_t i = 0; i < json_array_size(rc); i++) {
            int wc = (int)json_integer_value(json_array_get(rc, i));
            int wf = (int)json_integer_value(json_array_get(rf, i));
            if (r.class_mask[i] != wc)
                T_FAIL("picture %zu pixel %zu: class %d, reference %d", pi, i, r.class_mask[i], wc);
            if (abs(r.conf_mask[i] - wf) > 1) /* float vs double softmax at a .5 */
                T_FAIL("picture %zu pixel %zu: confidence %d, reference %d", pi, i,
                       r.conf_mask[i], wf);
            n_conf_off += r.conf_mask[i] != wf;
            hist[wc]++;
        }
        n_px += (int)json_array_size(rc);
        ASSERT(hist[0] > 0 && hist[1] + hist[2] + hist[3] > 0); /* the picture is not one class */

        /* the Roboflow response carries them as PNGs */
        json_t *resp = model_result_to_json(m, &r, &p);
        const json_t *pr = json_object_get(resp, "predictions");
        uint8_t *sm = png_gray(json_object_get(pr, "segmentation_mask"), im->w, im->h);
        uint8_t *cm = png_gray(json_object_get(pr, "confidence_mask"), im->w, im->h);
        ASSERT(!memcmp(sm, r.class_mask, (size_t)im->w * (size_t)im->h));
        ASSERT(!memcmp(cm, r.conf_mask, (size_t)im->w * (size_t)im->h));
        ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(pr, "class_map"), "0")),
                      "background");
        ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(pr, "class_map"), "3")),
                      "triangle");
        ASSERT_EQ(json_integer_value(json_object_get(json_object_get(resp, "image"), "width")), im->w);
        free(sm);
        free(cm);
        json_decref(resp);
        model_result_release(&r);

        /* the blocks, through a workflow with the registry as provider */
        const char *def =
            "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
            "\"steps\":[{\"type\":\"roboflow_core/roboflow_semantic_segmentation_model@v1\","
            "\"name\":\"s1\",\"images\":\"$inputs.image\",\"model_id\":\"sem/1\"},"
            "{\"type\":\"roboflow_core/roboflow_semantic_segmentation_model@v2\",\"name\":\"s2\","
            "\"images\":\"$inputs.image\",\"model_id\":\"sem/1\"}],"
            "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"v1\",\"selector\":\"$steps.s1.predictions\"},"
            "{\"type\":\"JsonField\",\"name\":\"v2\",\"selector\":\"$steps.s2.predictions\"},"
            "{\"type\":\"JsonField\",\"name\":\"mid\",\"selector\":\"$steps.s2.model_id\"}]}";
        struct wf_workflow *wf = NULL;
        if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0)
            T_FAIL("compile: %s", err);
        struct wf_env env = {.model_infer = provider, .model_ud = reg};
        const struct vis_image *imgs[1] = {im};
        struct wf_image_input ii = {"image", imgs, 1, false, NULL};
        struct wf_run_inputs in = {&ii, 1, NULL};
        json_t *res = NULL;
        if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
            T_FAIL("run: %s", err);
        const json_t *row = json_array_get(res, 0);
        ASSERT_STR_EQ(json_string_value(json_object_get(row, "mid")), "sem/1");
        const json_t *want = json_object_get(ref, "predictions");
        ASSERT(json_array_size(want) > 0);
        for (int v = 1; v <= 2; v++) {
            const json_t *got = json_object_get(row, v == 1 ? "v1" : "v2");
            const json_t *gi = json_object_get(got, "image"), *gp = json_object_get(got, "predictions");
            if (v == 1) /* no image_dimensions in v1's detections: Roboflow serialises nulls */
                ASSERT(json_is_null(json_object_get(gi, "width")));
            else
                ASSERT_EQ(json_integer_value(json_object_get(gi, "height")), im->h);
            ASSERT_EQ(json_array_size(gp), json_array_size(want));
            for (size_t k = 0; k < json_array_size(want); k++) {
                const json_t *g = json_array_get(gp, k), *e = json_array_get(want, k);
                static const char *const num[] = {"x", "y", "width", "height", "confidence"};
                for (size_t f = 0; f < ARRAY_LEN(num); f++)
                    ASSERT_NEAR(json_number_value(json_object_get(g, num[f])),
                                json_number_value(json_object_get(e, num[f])), 1e-4);
                ASSERT_EQ(json_integer_value(json_object_get(g, "class_id")),
                          json_integer_value(json_object_get(e, "class_id")));
                ASSERT_STR_EQ(json_string_value(json_object_get(g, "class")),
                              json_string_value(json_object_get(e, "class")));
                ASSERT(json_equal(json_object_get(g, "rle_mask"), json_object_get(e, "rle_mask")));
                ASSERT_EQ(strlen(json_string_value(json_object_get(g, "detection_id"))), 36);
                ASSERT(!json_object_get(g, "parent_id")); /* Roboflow attaches no parents */
                ASSERT(!json_object_get(g, "points"));
                if (v == 1)
                    n_dets++;
            }
        }
        json_decref(res);
        wf_free(wf);
        json_decref(ref);
        free(out[0].data);
    }
    printf("  %d pixels equal to the reference's classes (%d confidences off by one), "
           "%d detections equal\n", n_px, n_conf_off, n_dets);
    vis_image_free(native);
    vis_image_free(big);
    vis_image_free(win);
    model_unref(m);
    model_registry_free(reg);
}

/* NaN logits fail the image with the cause; a model whose outputs do not
 * fit is refused at registration; the wrong task is refused at inference */
TEST(semantic_malformed)
{
    struct model_registry *reg = reg_with_deeplab();
    struct model *m = NULL;
    char err[1024] = "";
    ASSERT_OK(model_registry_get(reg, NULL, "sem/1", &m, err, sizeof err));
    struct model_tensor t = {0};
    t.rank = 4;
    t.shape[0] = 1, t.shape[1] = 4, t.shape[2] = 8, t.shape[3] = 8;
    t.count = 256;
    t.data = xcalloc(256, sizeof(float));
    t.data[77] = NAN;
    struct model_params p;
    struct model_result r;
    struct model_letterbox lb = {1, 1, 0, 0, 0, 0, 16, 16};
    model_params_init(&p);
    ASSERT(model_decode_raw(m, &t, 1, &lb, 16, 16, &p, &r, err, sizeof err) < 0);
    ASSERT(strstr(err, "NaN"));
    t.shape[1] = 3, t.count = 192; /* wrong class count */
    ASSERT(model_decode_raw(m, &t, 1, &lb, 16, 16, &p, &r, err, sizeof err) < 0);
    ASSERT(strstr(err, "(N, 4, H, W)"));
    free(t.data);

    /* the same network with 5 class names: the logits do not fit */
    char *dir = xasprintf("%s/tests/data/models/deeplab-tiny", src_dir()), *onnx = NULL;
    size_t len = 0;
    json_t *meta = NULL;
    ASSERT_OK(model_artefacts_read_dir(dir, 0, &onnx, &len, &meta, err, sizeof err));
    json_object_set_new(meta, "class_names", json_pack("[s,s,s,s,s]", "a", "b", "c", "d", "e"));
    ASSERT(model_registry_register_bytes(reg, "sem/bad", onnx, len, meta, err, sizeof err) < 0);
    printf("  refused: %s\n", err);
    ASSERT(strstr(err, "semantic segmentation with 5 classes"));
    json_decref(meta);
    free(onnx);
    free(dir);

    /* a detection block on the semantic model: the task mismatch is named */
    struct vis_image *im = vis_image_new(32, 32, VIS_BGR);
    const struct vis_image *imgs[1] = {im};
    json_t *out[1] = {NULL};
    ASSERT(model_registry_infer(reg, NULL, "sem/1", "object-detection", NULL, imgs, 1, out, err,
                                sizeof err) < 0);
    ASSERT(strstr(err, "semantic-segmentation model"));
    vis_image_free(im);
    model_unref(m);
    model_registry_free(reg);
}

/* pycocotools rleFrString + decode: row-major 0/1 mask of w x h */
static uint8_t *rle_decode(const char *s, int w, int h)
{
    long cnt[1 << 16];
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len && n < ARRAY_LEN(cnt);) {
        long x = 0;
        int k = 0, more = 1;
        while (more && i < len) {
            long c = s[i] - 48;
            x |= (c & 0x1f) << (5 * k);
            more = (int)(c & 0x20);
            i++, k++;
            if (!more && (c & 0x10))
                x -= 1L << (5 * k); /* sign extension */
        }
        if (n > 2)
            x += cnt[n - 2];
        cnt[n++] = x;
    }
    uint8_t *m = xcalloc((size_t)w * (size_t)h, 1);
    long pos = 0, tot = 0;
    for (size_t i = 0; i < n; i++) {
        for (long j = 0; j < cnt[i] && pos + j < (long)w * h; j++)
            if (i % 2)
                m[((pos + j) % h) * w + (pos + j) / h] = 1;
        pos += cnt[i];
        tot += cnt[i];
    }
    ASSERT_EQ(tot, (long)w * h);
    return m;
}

/* roboflow_instance_segmentation_model@v4: the provider's RLE masks
 * ("response_mask_format": "rle") become the detections' rle_mask, after
 * the class filter, without polygons; the masks hold the polygons v2
 * draws (RF-DETR and the YOLOv8-seg path) */
TEST(instance_segmentation_v4_rle)
{
    struct model_registry *reg = NULL;
    struct model_registry_opts o = {.intra_op_threads = 1};
    char err[1024] = "";
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof err));
    const char *ids[] = {"rfseg/1", "yseg/1"}, *dirs[] = {"rfdetr-seg-tiny", "synth-seg"};
    for (int k = 0; k < 2; k++) {
        char *dir = xasprintf("%s/tests/data/models/%s", src_dir(), dirs[k]);
        if (model_registry_register_dir(reg, ids[k], dir, err, sizeof err) < 0)
            T_FAIL("register %s: %s", dirs[k], err);
        free(dir);
    }
    struct vis_image *im = load("synth-det/test/img_05.png");
    const struct vis_image *imgs[1] = {im};
    int n_masks = 0, n_vert = 0;
    for (int k = 0; k < 2; k++) {
        for (int filt = 0; filt < 2; filt++) {
            /* the model's own RLE answer, for comparison; the filter keeps
             * the class of its last prediction */
            json_t *resp[1] = {NULL};
            json_t *prm = json_pack("{s:f,s:s}", "confidence", 0.3, "response_mask_format", "rle");
            ASSERT_OK(model_registry_infer(reg, NULL, ids[k], "instance-segmentation", prm, imgs,
                                           1, resp, err, sizeof err));
            const json_t *mp = json_object_get(resp[0], "predictions");
            ASSERT(json_array_size(mp) >= 1);
            const char *keep = json_string_value(
                json_object_get(json_array_get(mp, json_array_size(mp) - 1), "class"));
            char *def = xasprintf(
                "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
                "\"steps\":[{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v4\","
                "\"name\":\"a\",\"images\":\"$inputs.image\",\"model_id\":\"%s\","
                "\"confidence_mode\":\"custom\",\"custom_confidence\":0.3%s%s%s},"
                "{\"type\":\"roboflow_core/roboflow_instance_segmentation_model@v2\",\"name\":\"b\","
                "\"images\":\"$inputs.image\",\"model_id\":\"%s\",\"confidence\":0.3%s%s%s}],"
                "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"v4\",\"selector\":\"$steps.a.predictions\"},"
                "{\"type\":\"JsonField\",\"name\":\"v2\",\"selector\":\"$steps.b.predictions\"}]}",
                ids[k], filt ? ",\"class_filter\":[\"" : "", filt ? keep : "",
                filt ? "\"]" : "", ids[k], filt ? ",\"class_filter\":[\"" : "", filt ? keep : "",
                filt ? "\"]" : "");
            struct wf_workflow *wf = NULL;
            if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0)
                T_FAIL("compile: %s", err);
            free(def);
            struct wf_env env = {.model_infer = provider, .model_ud = reg};
            struct wf_image_input ii = {"image", imgs, 1, false, NULL};
            struct wf_run_inputs in = {&ii, 1, NULL};
            json_t *res = NULL;
            if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
                T_FAIL("run: %s", err);
            const json_t *v4 = json_object_get(json_object_get(json_array_get(res, 0), "v4"),
                                               "predictions");
            const json_t *v2 = json_object_get(json_object_get(json_array_get(res, 0), "v2"),
                                               "predictions");
            size_t j = 0, i;
            const json_t *e;
            ASSERT(json_array_size(v4) > 0);
            json_array_foreach(mp, i, e) {
                const char *cls = json_string_value(json_object_get(e, "class"));
                if (filt && strcmp(cls, keep) != 0)
                    continue;
                const json_t *g = json_array_get(v4, j++);
                ASSERT(g);
                ASSERT_STR_EQ(json_string_value(json_object_get(g, "class")), cls);
                ASSERT(!json_object_get(g, "points"));
                ASSERT(json_equal(json_object_get(g, "rle_mask"), json_object_get(e, "rle_mask")));
                ASSERT_STR_EQ(json_string_value(json_object_get(g, "parent_id")), "image");
                n_masks++;
            }
            ASSERT_EQ(j, json_array_size(v4));
            /* v2's polygons lie on v4's masks (same detections, same order,
             * v2 dropping the instances without a polygon) */
            size_t q = 0;
            json_array_foreach(v4, i, e) {
                const json_t *pv2 = json_array_get(v2, q);
                if (!pv2 || json_number_value(json_object_get(pv2, "x")) !=
                                json_number_value(json_object_get(e, "x")))
                    continue;
                q++;
                uint8_t *mk = rle_decode(json_string_value(json_object_get(
                                             json_object_get(e, "rle_mask"), "counts")),
                                         im->w, im->h);
                size_t t;
                const json_t *pt;
                json_array_foreach(json_object_get(pv2, "points"), t, pt) {
                    int x = (int)lrint(json_number_value(json_object_get(pt, "x")));
                    int y = (int)lrint(json_number_value(json_object_get(pt, "y")));
                    x = MIN(MAX(x, 0), im->w - 1), y = MIN(MAX(y, 0), im->h - 1);
                    if (!mk[(size_t)y * (size_t)im->w + (size_t)x])
                        T_FAIL("%s: polygon vertex (%d, %d) of detection %zu is off its RLE mask",
                               ids[k], x, y, i);
                    n_vert++;
                }
                free(mk);
            }
            ASSERT_EQ(q, json_array_size(v2));
            json_decref(prm);
            json_decref(resp[0]);
            json_decref(res);
            wf_free(wf);
        }
    }
    printf("  %d RLE masks equal to the model's, %d polygon vertices on them\n", n_masks, n_vert);
    ASSERT(n_vert > 0);
    vis_image_free(im);
    model_registry_free(reg);
}

TEST_MAIN()
