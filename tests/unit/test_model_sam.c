/*
 * test_model_sam.c — SAM2 (encoder + decoder, the multi-file "sam"
 * family) with the tiny random-weight replica that
 * scripts/models/make-sam-models.py exports to tests/data/models/sam2-tiny
 * (the real exports' input/output names, shapes and conventions): the
 * decoded masks and confidences against tests/unit/sam_ref.py (Roboflow's
 * post-processing in plain Python) on the same raw decoder outputs, for
 * box, point and box + point prompts, with and without multimask; the
 * registry paths (folder, bundle, model_registry_infer with JSON prompts,
 * polygons and RLE); refusals of broken models.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T_TIMEOUT_S 300
#include "t.h"

#include "base/base.h"
#include "model/model.h"

static const char *src_dir(void)
{
    const char *s = getenv("VBATCH_SRCDIR");
    return s ? s : ".";
}

static struct model_registry *reg_new(void)
{
    struct model_registry_opts o = {0};
    struct model_registry *r = NULL;
    char err[512];
    o.intra_op_threads = 2;
    if (model_registry_new(&o, &r, err, sizeof err) < 0)
        T_FAIL("registry: %s", err);
    return r;
}

static struct model *sam_model(struct model_registry *reg)
{
    char err[1024], *dir = xasprintf("%s/tests/data/models/sam2-tiny", src_dir());
    struct model *m = NULL;
    if (model_registry_register_dir(reg, "sam2/hiera_tiny", dir, err, sizeof err) < 0)
        T_FAIL("register: %s", err);
    ASSERT_OK(model_registry_get(reg, NULL, "sam2/hiera_tiny", &m, err, sizeof err));
    ASSERT_EQ(model_task(m), MODEL_TASK_SAM);
    ASSERT_STR_EQ(model_task_name(model_task(m)), "segment-anything");
    free(dir);
    return m;
}

static struct vis_image *picture(void)
{
    struct vis_image *img = vis_image_new(240, 180, VIS_BGR);
    vis_image_fill(img, VIS_RGB(30, 90, 200));
    for (int y = 40; y < 120; y++)
        for (int x = 60; x < 170; x++) {
            uint8_t *p = img->px + (size_t)y * (size_t)img->stride + (size_t)x * 3;
            p[0] = (uint8_t)(x * 2), p[1] = (uint8_t)(y * 3), p[2] = 240;
        }
    return img;
}

/* sam_ref.py on the raw outputs: [[index, confidence, rle], ...]. */
static json_t *reference(const struct model_tensor raw[2], bool multimask, int W, int H)
{
    json_t *q = json_pack("{s:b,s:[i,i]}", "multimask", multimask, "image", W, H);
    const char *keys[2] = {"masks", "iou"};
    for (int k = 0; k < 2; k++) {
        json_t *sh = json_array(), *da = json_array();
        for (int i = 0; i < raw[k].rank; i++)
            json_array_append_new(sh, json_integer(raw[k].shape[i]));
        for (size_t i = 0; i < raw[k].count; i++)
            json_array_append_new(da, json_real(raw[k].data[i]));
        json_object_set_new(q, keys[k], json_pack("{s:o,s:o}", "shape", sh, "data", da));
    }
    char tmpl[] = "/tmp/vbatch-samref-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT(fd >= 0);
    close(fd);
    ASSERT_OK(json_dump_file(q, tmpl, JSON_REAL_PRECISION(9) | JSON_COMPACT));
    json_decref(q);
    char *cmd = xasprintf("cd %s/tests/unit && /usr/bin/python3 sam_ref.py %s", src_dir(), tmpl);
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

static void compare(const char *what, const struct model_sam_result *r, const json_t *ref, int *n_masks, int *n_px)
{
    ASSERT_EQ(json_array_size(ref), r->n);
    for (size_t i = 0; i < r->n; i++) {
        const json_t *e = json_array_get(ref, i);
        double want = json_number_value(json_array_get(e, 1));
        if (fabs((double)r->masks[i].confidence - want) > 1e-6)
            T_FAIL("%s: prompt %zu confidence vbatch %.7g, reference %.7g", what, i, (double)r->masks[i].confidence, want);
        char *rle = vis_coco_rle(r->masks[i].mask, r->image_w, r->image_h, 0, 0, r->image_w, r->image_h, -1);
        if (strcmp(rle, json_string_value(json_array_get(e, 2))) != 0)
            T_FAIL("%s: prompt %zu mask differs: vbatch %.80s, reference %.80s", what, i, rle,
                   json_string_value(json_array_get(e, 2)));
        free(rle);
        size_t on = 0;
        for (size_t k = 0; k < (size_t)r->image_w * (size_t)r->image_h; k++)
            on += r->masks[i].mask[k];
        ASSERT(on > 0 && on < (size_t)r->image_w * (size_t)r->image_h); /* masks of both signs */
        *n_px += (int)on;
        (*n_masks)++;
    }
}

TEST(sam_masks_match_roboflow_reference)
{
    struct model_registry *reg = reg_new();
    struct model *m = sam_model(reg);
    struct vis_image *img = picture();
    struct model_sam_prompt ps[3];
    memset(ps, 0, sizeof ps);
    ps[0].has_box = true; /* a box */
    ps[0].box[0] = 60, ps[0].box[1] = 40, ps[0].box[2] = 170, ps[0].box[3] = 120;
    ps[1].n_points = 2; /* a positive and a negative point */
    ps[1].points[0].x = 100, ps[1].points[0].y = 80, ps[1].points[0].label = 1;
    ps[1].points[1].x = 140, ps[1].points[1].y = 90, ps[1].points[1].label = 0;
    ps[2].has_box = true; /* a box and a point */
    ps[2].box[0] = 10, ps[2].box[1] = 10, ps[2].box[2] = 90, ps[2].box[3] = 70;
    ps[2].n_points = 1;
    ps[2].points[0].x = 200, ps[2].points[0].y = 150, ps[2].points[0].label = 1;
    char err[1024];
    int n_masks = 0, n_px = 0;
    for (int mm = 0; mm < 2; mm++) {
        struct model_sam_result r;
        struct model_tensor raw[2];
        memset(raw, 0, sizeof raw);
        if (model_sam_run(m, img, ps, 3, mm == 1, &r, raw, err, sizeof err) < 0)
            T_FAIL("run: %s", err);
        ASSERT_EQ(raw[0].rank, 4);
        ASSERT_EQ(raw[0].shape[0], 3);
        ASSERT_EQ(raw[0].shape[1], 4);
        ASSERT_EQ(raw[0].shape[2], 256);
        json_t *ref = reference(raw, mm == 1, img->w, img->h);
        compare(mm ? "multimask" : "single mask", &r, ref, &n_masks, &n_px);
        json_decref(ref);
        model_sam_result_release(&r);
        free(raw[0].data);
        free(raw[1].data);
    }
    fprintf(stderr, "sam: %d masks (%d foreground pixels) equal to the reference\n", n_masks, n_px);
    /* unprompted: one prompt of a padding point, as Roboflow */
    struct model_sam_result r;
    ASSERT_OK(model_sam_run(m, img, NULL, 0, true, &r, NULL, err, sizeof err));
    ASSERT_EQ(r.n, 1);
    model_sam_result_release(&r);
    vis_image_free(img);
    model_unref(m);
    model_registry_free(reg);
}

TEST(sam_registry_infer_polygons_and_rle)
{
    struct model_registry *reg = reg_new();
    char err[1024], *dir = xasprintf("%s/tests/data/models/sam2-tiny", src_dir()), *bytes = NULL;
    size_t len = 0;
    json_t *meta = NULL;
    struct model *b = NULL;
    /* the folder as a bundle (the CLI's and HTTP's path) gives the same model */
    ASSERT_OK(model_artefacts_read_dir(dir, 0, &bytes, &len, &meta, err, sizeof err));
    ASSERT(model_bundle_is(bytes, len));
    ASSERT_STR_EQ(json_string_value(json_object_get(meta, "family")), "sam");
    if (model_registry_prepare_bytes(reg, "sam2/hiera_tiny", bytes, len, meta, &b, err, sizeof err) < 0)
        T_FAIL("bundle: %s", err);
    model_registry_add(reg, b, NULL, NULL);
    model_unref(b);
    struct vis_image *img = picture();
    const struct vis_image *imgs[1] = {img};
    json_t *params = json_pack("{s:[{s:[f,f,f,f]},{s:[{s:f,s:f,s:b}]}]}", "prompts", "box", 60.0, 40.0, 170.0,
                               120.0, "points", "x", 100.0, "y", 80.0, "positive", 1);
    json_t *out[1] = {NULL};
    if (model_registry_infer(reg, NULL, "sam2/hiera_tiny", "segment-anything", params, imgs, 1, out, err, sizeof err) < 0)
        T_FAIL("infer: %s", err);
    json_t *preds = json_object_get(out[0], "predictions");
    ASSERT_EQ(json_array_size(preds), 2);
    size_t i;
    json_t *p;
    json_array_foreach(preds, i, p)
    {
        ASSERT_EQ(json_integer_value(json_object_get(p, "prompt_index")), (json_int_t)i);
        ASSERT(json_array_size(json_object_get(p, "points")) >= 3);
        double w = json_number_value(json_object_get(p, "width")), h = json_number_value(json_object_get(p, "height"));
        ASSERT(w > 0 && h > 0 && w <= img->w && h <= img->h);
        double c = json_number_value(json_object_get(p, "confidence"));
        ASSERT(c > 0 && c < 1);
    }
    json_decref(out[0]);
    json_object_set_new(params, "response_mask_format", json_string("rle"));
    json_object_set_new(params, "multimask_output", json_false());
    ASSERT_OK(model_registry_infer(reg, NULL, "sam2/hiera_tiny", NULL, params, imgs, 1, out, err, sizeof err));
    preds = json_object_get(out[0], "predictions");
    ASSERT_EQ(json_array_size(preds), 2);
    json_t *rle = json_object_get(json_array_get(preds, 0), "rle_mask");
    ASSERT(json_is_string(json_object_get(rle, "counts")));
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(rle, "size"), 0)), img->h);
    ASSERT(!json_object_get(json_array_get(preds, 0), "points"));
    json_decref(out[0]);
    /* bad prompts: a clear error */
    json_t *bad = json_pack("{s:[{s:[i,i]}]}", "prompts", "box", 1, 2);
    ASSERT(model_registry_infer(reg, NULL, "sam2/hiera_tiny", NULL, bad, imgs, 1, out, err, sizeof err) < 0);
    ASSERT(strstr(err, "prompt 0: expected"));
    json_decref(bad);
    bad = json_pack("{s:s}", "response_mask_format", "png");
    ASSERT(model_registry_infer(reg, NULL, "sam2/hiera_tiny", NULL, bad, imgs, 1, out, err, sizeof err) < 0);
    json_decref(bad);
    /* model_run refuses it */
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, "sam2/hiera_tiny", &m, err, sizeof err));
    struct model_params mp;
    model_params_init(&mp);
    struct model_result res;
    ASSERT(model_run(m, imgs, 1, &mp, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "SAM2 model"));
    model_params_release(&mp);
    model_unref(m);
    json_decref(params);
    json_decref(meta);
    free(bytes);
    free(dir);
    vis_image_free(img);
    model_registry_free(reg);
}

/* Masks are one byte a picture pixel per prompt: 256 prompts on a 2200 x
 * 2200 picture would be 1.24 GB of masks (256 on a 10000 x 10000 one,
 * 25.6 GB): refused before the encoder runs; within the budget it runs. */
TEST(sam_mask_budget)
{
    struct model_registry *reg = reg_new();
    struct model *m = sam_model(reg);
    struct vis_image *big = vis_image_new(2200, 2200, VIS_BGR);
    vis_image_fill(big, VIS_RGB(30, 90, 200));
    struct model_sam_prompt *ps = xcalloc(MODEL_SAM_MAX_PROMPTS, sizeof *ps);
    for (int i = 0; i < MODEL_SAM_MAX_PROMPTS; i++) {
        ps[i].has_box = true;
        ps[i].box[0] = (float)i, ps[i].box[1] = 10, ps[i].box[2] = (float)i + 100, ps[i].box[3] = 300;
    }
    struct model_sam_result r;
    char err[1024] = "";
    int rc = model_sam_run(m, big, ps, MODEL_SAM_MAX_PROMPTS, true, &r, NULL, err, sizeof err);
    if (rc == 0)
        model_sam_result_release(&r);
    ASSERT_EQ(rc, ERR_LIMIT);
    fprintf(stderr, "refused: %s\n", err);
    ASSERT(strstr(err, "mask pixels") != NULL);
    ASSERT_OK(model_sam_run(m, big, ps, 2, true, &r, NULL, err, sizeof err));
    ASSERT_EQ(r.n, 2);
    model_sam_result_release(&r);
    free(ps);
    vis_image_free(big);
    model_unref(m);
    model_registry_free(reg);
}

/* A SAM2 folder of encoder.onnx and the given decoder file. */
static void expect_refused(const char *decoder, const char *encoder, const char *needle)
{
    char tmpl[] = "/tmp/vbatch-sam-XXXXXX";
    ASSERT(mkdtemp(tmpl));
    const char *src[2] = {encoder, decoder}, *dst[2] = {"encoder.onnx", "decoder.onnx"};
    for (int i = 0; i < 2; i++) {
        if (!src[i])
            continue;
        char *a = xasprintf("%s/tests/data/models/%s", src_dir(), src[i]), *d = xasprintf("%s/%s", tmpl, dst[i]), *buf = NULL;
        size_t len = 0;
        ASSERT_OK(file_read_all(a, 16u << 20, &buf, &len));
        ASSERT_OK(file_write_atomic(d, buf, len));
        free(buf);
        free(a);
        free(d);
    }
    char *mj = xasprintf("%s/model.json", tmpl);
    ASSERT_OK(file_write_atomic(mj, "{\"family\": \"sam\"}", 17));
    struct model_registry *reg = reg_new();
    char err[1024] = "";
    int rc = model_registry_register_dir(reg, "sam-bad", tmpl, err, sizeof err);
    fprintf(stderr, "refused: %s\n", err);
    ASSERT(rc < 0);
    if (!strstr(err, needle))
        T_FAIL("message '%s' lacks '%s'", err, needle);
    model_registry_free(reg);
    for (int i = 0; i < 2; i++) {
        char *d = xasprintf("%s/%s", tmpl, dst[i]);
        unlink(d);
        free(d);
    }
    unlink(mj);
    free(mj);
    rmdir(tmpl);
}

TEST(sam_malformed_models_refused)
{
    expect_refused("sam2-bad/decoder_nan.onnx", "sam2-tiny/encoder.onnx", "decoder.onnx: output is not finite");
    expect_refused("sam2-bad/decoder_k2.onnx", "sam2-tiny/encoder.onnx", "expected masks (N, K, H, W)");
    expect_refused(NULL, "sam2-tiny/encoder.onnx", "cannot read");
    expect_refused("sam2-tiny/encoder.onnx", "sam2-tiny/decoder.onnx", "encoder.onnx must have one input");
    expect_refused("synth-det/weights.onnx", "sam2-tiny/encoder.onnx", "decoder.onnx inputs are images");
    /* more than 16 outputs (io_names' limit): refused, not a NULL dereference listing them
     * (encoder_17_outputs.onnx: one input x, 17 Identity outputs) */
    expect_refused("sam2-tiny/decoder.onnx", "sam2-bad/encoder_17_outputs.onnx", "encoder.onnx outputs are");
}

TEST_MAIN()
