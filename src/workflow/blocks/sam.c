/*
 * blocks/sam.c — roboflow_core/segment_anything@v1: SAM2 masks for an
 * image, prompted by the boxes of upstream detections (Roboflow's
 * workflows/core_steps/models/foundation/segment_anything2/v1.py).
 *
 * The step asks the model provider for task "segment-anything" of model id
 * "sam2/<version>" (version hiera_tiny by default: the operator or the
 * workspace registers a SAM2 encoder + decoder under that id,
 * docs/MODELS.md "SAM2"), one image per call, with one box prompt per
 * detection of that image (its xyxy; object detection, instance
 * segmentation and keypoint predictions alike), or no prompt when "boxes"
 * is not given.  Each returned mask becomes an instance segmentation
 * detection with the class name and id of its prompt's detection
 * ("foreground" / 0 unprompted), its confidence the predicted IoU; masks
 * below "threshold" and empty masks are dropped; prediction_type
 * "instance-segmentation", parents attached, as Roboflow's block does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_block.h"
#include "workflow/wf_int.h"

static const char *const sam_versions[] = {"hiera_large", "hiera_small", "hiera_tiny", "hiera_b_plus", NULL};

static int sam_run(struct wf_call *c)
{
    const struct wf_env *env = wf_call_env(c);
    size_t n = wf_call_n(c);
    char perr[512] = "";
    int rc = 0;

    if (!env || !env->model_infer)
        return wf_call_fail(c, "no model provider is configured (model steps cannot run)");
    for (size_t i = 0; i < n; i++) {
        const struct wf_image *im = wf_arg_image(c, i, "images");
        const struct wf_dets *boxes = wf_arg_dets(c, i, "boxes");
        const char *version = wf_arg_str(c, i, "version");
        double threshold = wf_arg_double(c, i, "threshold", 0.0);
        bool multimask = wf_arg_bool(c, i, "multimask_output", true);
        char model_id[64];
        snprintf(model_id, sizeof model_id, "sam2/%s", version ? version : "hiera_tiny");
        json_t *prompts = json_array();
        for (size_t k = 0; boxes && k < boxes->n; k++) {
            const struct wf_det *d = &boxes->d[k];
            json_array_append_new(prompts, json_pack("{s:[f,f,f,f]}", "box", (double)d->x1, (double)d->y1,
                                                     (double)d->x2, (double)d->y2));
        }
        json_t *params = json_pack("{s:o,s:b}", "prompts", prompts, "multimask_output", multimask);
        struct wf_model_request req = {model_id, "segment-anything", params};
        json_t *resp = NULL;
        const struct vis_image *img = im->img;
        rc = env->model_infer(env->model_ud, &req, &img, 1, &resp, perr, sizeof perr);
        json_decref(params);
        if (rc < 0)
            return wf_call_fail(c, "model '%s': %s", model_id, perr[0] ? perr : err_str(rc));
        /* each mask takes its prompt's class; below threshold: dropped */
        json_t *preds = json_object_get(resp, "predictions"), *kept = json_array();
        size_t k;
        json_t *p;
        json_array_foreach(preds, k, p)
        {
            json_int_t pi = json_integer_value(json_object_get(p, "prompt_index"));
            if (json_number_value(json_object_get(p, "confidence")) < threshold)
                continue;
            const struct wf_det *d = boxes && pi >= 0 && (size_t)pi < boxes->n ? &boxes->d[pi] : NULL;
            json_t *q = json_deep_copy(p);
            json_object_del(q, "prompt_index");
            json_object_set_new(q, "class", json_string(d && d->class_name ? d->class_name : "foreground"));
            json_object_set_new(q, "class_id", json_integer(d ? d->class_id : 0));
            json_array_append_new(kept, q);
        }
        json_object_set_new(resp, "predictions", kept);
        struct wf_dets *ds = NULL;
        char uid[37];
        uuid4(uid);
        if (!json_is_object(resp) || wf_dets_from_inference(resp, im, "instance-segmentation", uid, NULL, &ds) < 0) {
            json_decref(resp);
            return wf_call_fail(c, "model '%s': malformed response (no 'predictions' list)", model_id);
        }
        json_decref(resp);
        wf_out_dets(c, i, "predictions", ds);
    }
    return rc;
}

static const struct wf_field sam_fields[] = {
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"boxes", NULL, WF_FT_DETS, "null", WF_K_DETS, WF_F_SELECTOR_ONLY | WF_F_NULLABLE, NULL},
    {"version", NULL, WF_FT_ENUM, "\"hiera_tiny\"", WF_K_STRING, 0, sam_versions},
    {"threshold", NULL, WF_FT_FLOAT, "0.0", WF_K_NUMBER, 0, NULL},
    {"multimask_output", NULL, WF_FT_BOOL, "true", WF_K_BOOL, WF_F_NULLABLE, NULL},
};
static const struct wf_output sam_outs[] = {{"predictions", WF_K_IS}};
static const char *const sam_types[] = {"roboflow_core/segment_anything@v1", NULL};
static const struct wf_block sam1 = {sam_types, sam_fields, ARRAY_LEN(sam_fields), sam_outs, ARRAY_LEN(sam_outs), 0, 0, NULL,
                                     sam_run, NULL};

const struct wf_block *const wf_blocks_sam[] = {&sam1, NULL};
