/*
 * test_jobs_clip.c — the CLIP blocks (jobs: links the workflow and model modules) over the real model registry with
 * the replica tests/data/models/clip-tiny (registered as clip/ViT-B-16,
 * alias clip/ViT-B-32 from its model.json): roboflow_core/clip@v1 on an
 * image and on a text, cosine_similarity@v1 of the two,
 * clip_comparison@v1 and @v2; the embeddings and similarities are checked
 * against PyTorch's embeddings of the same picture and texts
 * (test/torch.json, scripts/models/make-clip-models.py) within 1e-4, and
 * the outputs' shapes against Roboflow's blocks (clip/v1.py,
 * clip_comparison/v1.py, v2.py).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_TIMEOUT_S 300
#include "t.h"

#include "base/base.h"
#include "model/model.h"
#include "workflow/workflow.h"

static const char *src_dir(void)
{
    const char *s = getenv("VBATCH_SRCDIR");
    return s ? s : ".";
}

static int provider(void *ud, const struct wf_model_request *req,
                    const struct vis_image *const *images, size_t n, json_t **out, char *err,
                    size_t errlen)
{
    return model_registry_infer(ud, NULL, req->model_id, req->task, req->params, images, n, out,
                                err, errlen);
}

static double cosine(const json_t *a, const json_t *b)
{
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        double u = json_number_value(json_array_get(a, i)), v = json_number_value(json_array_get(b, i));
        d += u * v, na += u * u, nb += v * v;
    }
    return d / sqrt(na * nb);
}

static double maxdiff(const json_t *a, const json_t *b)
{
    double d = 0;
    ASSERT_EQ(json_array_size(a), json_array_size(b));
    for (size_t i = 0; i < json_array_size(a); i++)
        d = fmax(d, fabs(json_number_value(json_array_get(a, i)) -
                         json_number_value(json_array_get(b, i))));
    return d;
}

#define WF                                                                                      \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"      \
    "{\"type\":\"WorkflowParameter\",\"name\":\"classes\"}],"                                 \
    "\"steps\":["                                                                             \
    "{\"type\":\"roboflow_core/clip@v1\",\"name\":\"ei\",\"data\":\"$inputs.image\"},"        \
    "{\"type\":\"roboflow_core/clip@v1\",\"name\":\"et\",\"data\":\"a photo of a cat\","     \
    "\"version\":\"ViT-B-16\"},"                                                              \
    "{\"type\":\"roboflow_core/cosine_similarity@v1\",\"name\":\"cs\","                       \
    "\"embedding_1\":\"$steps.ei.embedding\",\"embedding_2\":\"$steps.et.embedding\"},"       \
    "{\"type\":\"roboflow_core/clip_comparison@v1\",\"name\":\"c1\",\"images\":\"$inputs.image\"," \
    "\"texts\":\"$inputs.classes\"},"                                                         \
    "{\"type\":\"roboflow_core/clip_comparison@v2\",\"name\":\"c2\",\"images\":\"$inputs.image\"," \
    "\"classes\":\"$inputs.classes\"}],"                                                      \
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"ei\",\"selector\":\"$steps.ei.embedding\"}," \
    "{\"type\":\"JsonField\",\"name\":\"et\",\"selector\":\"$steps.et.embedding\"},"          \
    "{\"type\":\"JsonField\",\"name\":\"cs\",\"selector\":\"$steps.cs.similarity\"},"         \
    "{\"type\":\"JsonField\",\"name\":\"c1\",\"selector\":\"$steps.c1.*\"},"                 \
    "{\"type\":\"JsonField\",\"name\":\"c2\",\"selector\":\"$steps.c2.*\"}]}"

TEST(clip_blocks_match_torch)
{
    struct model_registry_opts o = {0};
    struct model_registry *reg = NULL;
    char err[1024];
    o.intra_op_threads = 2;
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof err));
    char *d = xasprintf("%s/tests/data/models/clip-tiny", src_dir());
    ASSERT_OK(model_registry_register_dir(reg, "clip/ViT-B-16", d, err, sizeof err));
    char *tj = xasprintf("%s/test/torch.json", d), *pic = xasprintf("%s/test/picture.png", d);
    json_error_t je;
    json_t *ref = json_load_file(tj, 0, &je);
    ASSERT(ref != NULL);
    const json_t *rimg = json_object_get(ref, "image_embedding");
    const json_t *rtxt = json_object_get(ref, "text_embeddings");
    const json_t *texts = json_object_get(ref, "texts");

    struct wf_workflow *wf = NULL;
    if (wf_compile_text(WF, strlen(WF), &wf, err, sizeof err) < 0)
        T_FAIL("compile: %s", err);
    char *buf = NULL;
    size_t len = 0;
    struct vis_image *img = NULL;
    ASSERT_OK(file_read_all(pic, 16u << 20, &buf, &len));
    ASSERT_OK(vis_decode(buf, len, &img));
    free(buf);
    const struct vis_image *imgs[1] = {img};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    json_t *params = json_pack("{s:O}", "classes", texts);
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {provider, reg, 90, NULL, NULL};
    json_t *res = NULL;
    if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
        T_FAIL("run: %s", err);
    json_t *r = json_array_get(res, 0);

    /* clip@v1: the image's embedding (version ViT-B-32: the alias) and the text's */
    double di = maxdiff(json_object_get(r, "ei"), rimg);
    double dt = maxdiff(json_object_get(r, "et"), json_array_get(rtxt, 0));
    fprintf(stderr, "clip@v1: image %.3g, text %.3g from torch\n", di, dt);
    ASSERT(di <= 1e-4 && dt <= 1e-4);
    /* cosine_similarity@v1 of the two */
    double want0 = cosine(rimg, json_array_get(rtxt, 0));
    ASSERT_NEAR(json_number_value(json_object_get(r, "cs")), want0, 1e-4);

    /* clip_comparison@v1 */
    json_t *c1 = json_object_get(r, "c1");
    const json_t *sim = json_object_get(c1, "similarity");
    ASSERT_EQ(json_array_size(sim), json_array_size(texts));
    size_t imax = 0, imin = 0;
    double best = -2, worst = 2;
    for (size_t k = 0; k < json_array_size(texts); k++) {
        double w = cosine(rimg, json_array_get(rtxt, k));
        fprintf(stderr, "similarity to '%s': %.6f (torch %.6f)\n",
                json_string_value(json_array_get(texts, k)),
                json_number_value(json_array_get(sim, k)), w);
        ASSERT_NEAR(json_number_value(json_array_get(sim, k)), w, 1e-4);
        if (w > best)
            best = w, imax = k;
        if (w < worst)
            worst = w, imin = k;
    }
    ASSERT_STR_EQ(json_string_value(json_object_get(c1, "prediction_type")),
                  "embeddings-comparison");
    ASSERT_STR_EQ(json_string_value(json_object_get(c1, "parent_id")), "image");
    ASSERT_STR_EQ(json_string_value(json_object_get(c1, "root_parent_id")), "image");

    /* clip_comparison@v2 */
    json_t *c2 = json_object_get(r, "c2");
    ASSERT(json_equal(json_object_get(c2, "similarities"), (json_t *)sim));
    ASSERT_NEAR(json_number_value(json_object_get(c2, "max_similarity")), best, 1e-4);
    ASSERT_NEAR(json_number_value(json_object_get(c2, "min_similarity")), worst, 1e-4);
    ASSERT_STR_EQ(json_string_value(json_object_get(c2, "most_similar_class")),
                  json_string_value(json_array_get(texts, imax)));
    ASSERT_STR_EQ(json_string_value(json_object_get(c2, "least_similar_class")),
                  json_string_value(json_array_get(texts, imin)));
    json_t *cp = json_object_get(c2, "classification_predictions");
    ASSERT_STR_EQ(json_string_value(json_object_get(cp, "top")),
                  json_string_value(json_array_get(texts, imax)));
    ASSERT_NEAR(json_number_value(json_object_get(cp, "confidence")), best, 1e-4);
    ASSERT_STR_EQ(json_string_value(json_object_get(cp, "parent_id")), "image");
    json_t *preds = json_object_get(cp, "predictions");
    ASSERT_EQ(json_array_size(preds), json_array_size(texts));
    for (size_t k = 0; k < json_array_size(preds); k++) {
        json_t *p = json_array_get(preds, k);
        ASSERT_EQ(json_integer_value(json_object_get(p, "class_id")), (int64_t)k);
        ASSERT_STR_EQ(json_string_value(json_object_get(p, "class")),
                      json_string_value(json_array_get(texts, k)));
        ASSERT_NEAR(json_number_value(json_object_get(p, "confidence")),
                    json_number_value(json_array_get(sim, k)), 1e-12);
    }
    json_decref(res);

    /* an unregistered version, an empty class list, a text too long: the
     * step fails with the cause */
    json_decref(params);
    params = json_pack("{s:[]}", "classes");
    in.params = params;
    res = NULL;
    ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
    fprintf(stderr, "refused: %s\n", err);
    ASSERT(strstr(err, "non-empty") != NULL);
    json_decref(params);
    struct buf lt = BUF_INIT;
    for (int i = 0; i < 80; i++)
        ASSERT_OK(buf_puts(&lt, "cat "));
    params = json_pack("{s:[s]}", "classes", lt.data);
    buf_release(&lt);
    in.params = params;
    ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
    fprintf(stderr, "refused: %s\n", err);
    ASSERT(strstr(err, "too long") != NULL);
    json_decref(params);
    wf_free(wf);
    const char *v2 =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"roboflow_core/clip_comparison@v2\",\"name\":\"c\","
        "\"images\":\"$inputs.image\",\"classes\":[\"a\"],\"version\":\"RN50\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"s\",\"selector\":\"$steps.c.similarities\"}]}";
    ASSERT_OK(wf_compile_text(v2, strlen(v2), &wf, err, sizeof err));
    in.params = NULL;
    ASSERT(wf_run(wf, &env, &in, &res, err, sizeof err) < 0);
    fprintf(stderr, "refused: %s\n", err);
    ASSERT(strstr(err, "clip/RN50") != NULL);
    wf_free(wf);

    vis_image_free(img);
    json_decref(ref);
    model_registry_free(reg);
    free(tj);
    free(pic);
    free(d);
}

TEST_MAIN()
