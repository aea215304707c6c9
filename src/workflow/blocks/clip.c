/*
 * blocks/clip.c — CLIP blocks: roboflow_core/clip@v1 (an image's or a
 * text's embedding) and roboflow_core/clip_comparison@v1/@v2 (an image's
 * cosine similarities to texts), after Roboflow's
 * models/foundation/clip/v1.py and clip_comparison/v1.py, v2.py.
 * (roboflow_core/cosine_similarity@v1 is in blocks/measure.c.)
 *
 * The model: task "embedding" of model id "clip/<version>" (the operator
 * registers a CLIP folder under that id, e.g. clip/ViT-B-16:
 * docs/MODELS.md "CLIP"); clip@v1's version defaults to ViT-B-32,
 * clip_comparison@v2's to ViT-B-16, clip_comparison@v1 (no version field)
 * uses ViT-B-16 as Roboflow's CLIP_VERSION_ID default.  The provider
 * answers {"embeddings": [[...]]} per image, and for params {"texts": [...]}
 * one response with an embedding per text.
 *
 * Outputs as Roboflow's blocks: clip@v1 embedding (the list of floats);
 * clip_comparison@v1 similarity (one cosine similarity per text, in
 * order), parent_id, root_parent_id, prediction_type
 * "embeddings-comparison"; @v2 similarities, max_similarity,
 * most_similar_class, min_similarity, least_similar_class (first of equal
 * values, as numpy's argmax/argmin), classification_predictions
 * {"predictions": [{"class", "class_id", "confidence"} per class], "top",
 * "confidence", "parent_id"}, parent_id, root_parent_id.  Cosine
 * similarity: dot(a, b) / (|a| |b|), in double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

static const char *const versions[] = {"RN101",    "RN50",     "RN50x16",        "RN50x4",
                                       "RN50x64",  "ViT-B-16", "ViT-B-32",       "ViT-L-14-336px",
                                       "ViT-L-14", NULL};

static int clip_call(struct wf_call *c, const char *version, const json_t *texts,
                     const struct vis_image *const *imgs, size_t n, json_t **out)
{
    const struct wf_env *env = wf_call_env(c);
    char perr[512] = "", id[64];
    if (!env || !env->model_infer)
        return wf_call_fail(c, "no model provider is configured (model steps cannot run)");
    snprintf(id, sizeof id, "clip/%s", version ? version : "ViT-B-16");
    json_t *params = json_object();
    if (texts)
        json_object_set(params, "texts", (json_t *)texts);
    struct wf_model_request req = {id, "embedding", params};
    int rc = env->model_infer(env->model_ud, &req, imgs, n, out, perr, sizeof perr);
    json_decref(params);
    if (rc < 0)
        return wf_call_fail(c, "model '%s': %s", id, perr[0] ? perr : err_str(rc));
    return 0;
}

/* The embeddings list of a provider response, or NULL. */
static const json_t *embs_of(const json_t *resp)
{
    const json_t *e = json_object_get(resp, "embeddings");
    return json_is_array(e) ? e : NULL;
}

static double cosine(const json_t *a, const json_t *b)
{
    double dot = 0, na = 0, nb = 0;
    size_t n = json_array_size(a);
    for (size_t k = 0; k < n && k < json_array_size(b); k++) {
        double u = json_number_value(json_array_get(a, k));
        double v = json_number_value(json_array_get(b, k));
        dot += u * v, na += u * u, nb += v * v;
    }
    return dot / (sqrt(na) * sqrt(nb));
}

/* ---- clip@v1 ------------------------------------------------------------------------- */

static int clip1_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "data");
        const char *text = wf_arg_str(c, i, "data");
        const char *version = wf_arg_str(c, i, "version");
        json_t *resp = NULL;
        int rc;
        if (!im && !text)
            return wf_call_fail(c, "data must be an image or a string");
        if (im) {
            const struct vis_image *img = im->img;
            rc = clip_call(c, version, NULL, &img, 1, &resp);
        } else {
            json_t *t = json_pack("[s]", text);
            rc = clip_call(c, version, t, NULL, 0, &resp);
            json_decref(t);
        }
        if (rc < 0)
            return rc;
        const json_t *e = json_array_get(embs_of(resp), 0);
        if (!json_is_array(e)) {
            json_decref(resp);
            return wf_call_fail(c, "CLIP model: malformed response (no embedding)");
        }
        wf_out_json(c, i, "embedding", json_incref((json_t *)e));
        json_decref(resp);
    }
    return 0;
}

/* ---- clip_comparison@v1/@v2 --------------------------------------------------------------- */

static int compare_run(struct wf_call *c, int v)
{
    size_t n = wf_call_n(c);
    const char *field = v == 1 ? "texts" : "classes";
    json_t *last_texts = NULL, *temb = NULL; /* text embeddings of the last list */
    const char *last_version = NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct wf_image *im = wf_arg_image(c, i, "images");
        const json_t *texts = wf_arg_json(c, i, field);
        const char *version = v == 1 ? "ViT-B-16" : wf_arg_str(c, i, "version");
        if (!im)
            continue;
        if (!json_is_array(texts) || json_array_size(texts) == 0) {
            rc = wf_call_fail(c, "%s must be a non-empty list of strings", field);
            break;
        }
        for (size_t k = 0; k < json_array_size(texts); k++)
            if (!json_is_string(json_array_get(texts, k))) {
                rc = wf_call_fail(c, "%s item %zu is not a string", field, k);
                goto out;
            }
        if (!last_texts || !json_equal(last_texts, (json_t *)texts) ||
            strcmp(last_version ? last_version : "", version ? version : "")) {
            json_decref(temb);
            temb = NULL;
            json_decref(last_texts);
            last_texts = json_incref((json_t *)texts);
            last_version = version;
            if ((rc = clip_call(c, version, texts, NULL, 0, &temb)) < 0)
                goto out;
        }
        const json_t *tl = embs_of(temb);
        json_t *iresp = NULL;
        const struct vis_image *img = im->img;
        if ((rc = clip_call(c, version, NULL, &img, 1, &iresp)) < 0)
            goto out;
        const json_t *ie = json_array_get(embs_of(iresp), 0);
        if (!json_is_array(ie) || json_array_size(tl) != json_array_size(texts)) {
            json_decref(iresp);
            rc = wf_call_fail(c, "CLIP model: malformed response (embeddings missing)");
            goto out;
        }
        size_t nt = json_array_size(texts), imax = 0, imin = 0;
        double *sim = xcalloc(nt, sizeof *sim);
        json_t *sims = json_array();
        for (size_t k = 0; k < nt; k++) {
            sim[k] = cosine(ie, json_array_get(tl, k));
            json_array_append_new(sims, isfinite(sim[k]) ? json_real(sim[k]) : json_null());
            if (sim[k] > sim[imax])
                imax = k;
            if (sim[k] < sim[imin])
                imin = k;
        }
        json_decref(iresp);
        if (v == 1) {
            wf_out_json(c, i, "similarity", sims);
            wf_out_json(c, i, "prediction_type", json_string("embeddings-comparison"));
        } else {
            json_t *preds = json_array();
            for (size_t k = 0; k < nt; k++)
                json_array_append_new(
                    preds, json_pack("{s:O,s:I,s:o}", "class", json_array_get(texts, k),
                                     "class_id", (json_int_t)k, "confidence",
                                     isfinite(sim[k]) ? json_real(sim[k]) : json_null()));
            json_t *cls = json_pack("{s:o,s:O,s:o,s:s}", "predictions", preds, "top",
                                    json_array_get(texts, imax), "confidence",
                                    json_real(sim[imax]), "parent_id", im->parent_id);
            wf_out_json(c, i, "similarities", sims);
            wf_out_json(c, i, "max_similarity", json_real(sim[imax]));
            wf_out_json(c, i, "most_similar_class", json_incref(json_array_get(texts, imax)));
            wf_out_json(c, i, "min_similarity", json_real(sim[imin]));
            wf_out_json(c, i, "least_similar_class", json_incref(json_array_get(texts, imin)));
            wf_out_json(c, i, "classification_predictions", cls);
        }
        free(sim);
        wf_out_json(c, i, "parent_id", json_string(im->parent_id));
        wf_out_json(c, i, "root_parent_id", json_string(im->root_parent_id));
    }
out:
    json_decref(temb);
    json_decref(last_texts);
    return rc;
}

static int compare1_run(struct wf_call *c) { return compare_run(c, 1); }
static int compare2_run(struct wf_call *c) { return compare_run(c, 2); }

/* ---- manifests (spec/blocks.json) ------------------------------------------------------ */

static const struct wf_field clip1_fields[] = {
    {"data", NULL, WF_FT_ANY, NULL, WF_K_IMAGE | WF_K_STRING, 0, NULL},
    {"version", NULL, WF_FT_ENUM, "\"ViT-B-32\"", WF_K_STRING, 0, versions},
};
static const struct wf_output clip1_outs[] = {{"embedding", WF_K_EMBEDDING}};
static const struct wf_field cmp1_fields[] = {
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"texts", "text", WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},
};
static const struct wf_output cmp1_outs[] = {
    {"similarity", WF_K_LIST},
    {"parent_id", WF_K_STRING},
    {"root_parent_id", WF_K_STRING},
    {"prediction_type", WF_K_STRING},
};
static const struct wf_field cmp2_fields[] = {
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"classes", NULL, WF_FT_LIST, NULL, WF_K_LIST, 0, NULL},
    {"version", NULL, WF_FT_ENUM, "\"ViT-B-16\"", WF_K_STRING, 0, versions},
};
static const struct wf_output cmp2_outs[] = {
    {"similarities", WF_K_LIST},        {"max_similarity", WF_K_FLOAT},
    {"most_similar_class", WF_K_STRING}, {"min_similarity", WF_K_FLOAT},
    {"least_similar_class", WF_K_STRING}, {"classification_predictions", WF_K_CLS},
    {"parent_id", WF_K_STRING},         {"root_parent_id", WF_K_STRING},
};

#define BLOCK(var, fields, outs, fn, ...)                                                     \
    static const char *const var##_types[] = {__VA_ARGS__, NULL};                          \
    static const struct wf_block var = {var##_types, fields, ARRAY_LEN(fields), outs,       \
                                        ARRAY_LEN(outs), 0, 0, NULL, fn, NULL};

BLOCK(clip1, clip1_fields, clip1_outs, clip1_run, "roboflow_core/clip@v1")
BLOCK(cmp1, cmp1_fields, cmp1_outs, compare1_run, "roboflow_core/clip_comparison@v1",
      "ClipComparison")
BLOCK(cmp2, cmp2_fields, cmp2_outs, compare2_run, "roboflow_core/clip_comparison@v2")

const struct wf_block *const wf_blocks_clip[] = {&clip1, &cmp1, &cmp2, NULL};
