/*
 * registry.c — the table of every block the engine knows, looked up by type
 * identifier (canonical "roboflow_core/x@vN" or a legacy alias), plus the
 * validation of field values against a block's manifest.
 *
 * Each block family file exports a NULL-terminated table (wf_block.h); the
 * registry concatenates them.  Field defaults are JSON text in the manifest,
 * parsed once (pthread_once) into a process-lifetime cache so that compiling
 * from several threads is safe.
 */
#include "workflow/wf_int.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

static const struct wf_block *const *const families[] = {
    wf_blocks_core,          wf_blocks_transform,    wf_blocks_fusion,
    wf_blocks_models,        wf_blocks_visualization, wf_blocks_classical_cv,
    wf_blocks_analytics,     wf_blocks_measure,       wf_blocks_stateful,
    wf_blocks_time,          wf_blocks_video_analytics, wf_blocks_video_viz,
    wf_blocks_motion,        wf_blocks_zone,          wf_blocks_ocr,
    wf_blocks_sinks,         wf_blocks_codes,         wf_blocks_sam,
    wf_blocks_memory,        wf_blocks_vlm,          wf_blocks_overlap,
    wf_blocks_inline,        wf_blocks_ocsort,        wf_blocks_botsort,
    wf_blocks_rollup,
    wf_blocks_clip,
    wf_blocks_warp,          wf_blocks_cv_extra,      wf_blocks_sift,
    wf_blocks_stitch,
    wf_blocks_snap,          wf_blocks_onvif,
};

struct defaults {
    const struct wf_block *blk;
    json_t **defs; /* nfields, NULL = required */
};
static struct defaults *g_defs;
static size_t g_ndefs;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void defaults_init(void)
{
    size_t n = 0;
    for (size_t f = 0; f < ARRAY_LEN(families); f++)
        for (size_t i = 0; families[f][i]; i++)
            n++;
    g_defs = xcalloc(n ? n : 1, sizeof *g_defs);
    for (size_t f = 0; f < ARRAY_LEN(families); f++)
        for (size_t i = 0; families[f][i]; i++) {
            const struct wf_block *b = families[f][i];
            struct defaults *d = &g_defs[g_ndefs++];
            d->blk = b;
            d->defs = xcalloc(b->nfields ? b->nfields : 1, sizeof *d->defs);
            for (size_t k = 0; k < b->nfields; k++) {
                json_error_t je;
                if (!b->fields[k].def)
                    continue;
                d->defs[k] = json_loads(b->fields[k].def, JSON_DECODE_ANY, &je);
                if (!d->defs[k]) {
                    log_error("workflow", "block '%s' field '%s': bad default '%s'",
                              b->types[0], b->fields[k].name, b->fields[k].def);
                    abort();
                }
            }
        }
}

const struct wf_block *wf__block_find(const char *type)
{
    pthread_once(&g_once, defaults_init);
    for (size_t f = 0; f < ARRAY_LEN(families); f++)
        for (size_t i = 0; families[f][i]; i++)
            for (size_t t = 0; families[f][i]->types[t]; t++)
                if (!strcmp(families[f][i]->types[t], type))
                    return families[f][i];
    return NULL;
}

int wf__field_index(const struct wf_block *blk, const char *name)
{
    for (size_t i = 0; i < blk->nfields; i++)
        if (!strcmp(blk->fields[i].name, name))
            return (int)i;
    return -1;
}

const json_t *wf__field_default(const struct wf_block *blk, size_t f)
{
    pthread_once(&g_once, defaults_init);
    for (size_t i = 0; i < g_ndefs; i++)
        if (g_defs[i].blk == blk)
            return f < blk->nfields ? g_defs[i].defs[f] : NULL;
    return NULL;
}

static const char *jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "dict";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "float";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static bool is_integral(const json_t *j)
{
    if (json_is_integer(j))
        return true;
    if (json_is_real(j)) {
        double d = json_real_value(j);
        return isfinite(d) && d == floor(d) && fabs(d) < 9e15;
    }
    return false;
}

int wf__json_check(const struct wf_field *f, const json_t *j, char *err, size_t errlen)
{
    double d;
    if (json_is_null(j)) {
        if ((f->flags & WF_F_NULLABLE) || (f->def && !strcmp(f->def, "null")))
            return 0;
        wf__errf(err, errlen, "a value is required, got null");
        return ERR_INVALID;
    }
    switch (f->type) {
    case WF_FT_ANY:
    case WF_FT_COLOR:
        return 0;
    case WF_FT_STRING:
        if (json_is_string(j))
            return 0;
        break;
    case WF_FT_INT:
    case WF_FT_INT_POS:
    case WF_FT_INT_NONNEG:
        if (!is_integral(j))
            break;
        d = json_number_value(j);
        if (f->type == WF_FT_INT_POS && d <= 0) {
            wf__errf(err, errlen, "must be a positive integer, got %g", d);
            return ERR_INVALID;
        }
        if (f->type == WF_FT_INT_NONNEG && d < 0) {
            wf__errf(err, errlen, "must be >= 0, got %g", d);
            return ERR_INVALID;
        }
        return 0;
    case WF_FT_FLOAT:
        if (json_is_number(j))
            return 0;
        break;
    case WF_FT_FLOAT01:
        if (!json_is_number(j))
            break;
        d = json_number_value(j);
        if (!(d >= 0.0 && d <= 1.0)) {
            wf__errf(err, errlen, "must be in range [0.0, 1.0], got %g", d);
            return ERR_INVALID;
        }
        return 0;
    case WF_FT_BOOL:
        if (json_is_boolean(j))
            return 0;
        break;
    case WF_FT_LIST:
        if (json_is_array(j))
            return 0;
        break;
    case WF_FT_DICT:
        if (json_is_object(j))
            return 0;
        break;
    case WF_FT_ENUM:
        if (!json_is_string(j))
            break;
        for (size_t i = 0; f->choices && f->choices[i]; i++)
            if (!strcmp(f->choices[i], json_string_value(j)))
                return 0;
        wf__errf(err, errlen, "'%s' is not one of the allowed values", json_string_value(j));
        return ERR_INVALID;
    case WF_FT_IMAGE:
    case WF_FT_DETS:
        wf__errf(err, errlen, "expected a selector, got a literal %s", jtype(j));
        return ERR_INVALID;
    }
    {
        static const char *const names[] = {
            [WF_FT_STRING] = "a string", [WF_FT_INT] = "an integer",
            [WF_FT_INT_POS] = "a positive integer", [WF_FT_INT_NONNEG] = "an integer >= 0",
            [WF_FT_FLOAT] = "a number", [WF_FT_FLOAT01] = "a number in [0.0, 1.0]",
            [WF_FT_BOOL] = "a boolean", [WF_FT_LIST] = "a list", [WF_FT_DICT] = "a dict",
            [WF_FT_ENUM] = "a string",
        };
        wf__errf(err, errlen, "expected %s, got %s", names[f->type] ? names[f->type] : "?",
                 jtype(j));
    }
    return ERR_INVALID;
}

int wf__field_check(const struct wf_field *f, const struct wf_value *v, char *err, size_t errlen)
{
    if (f->flags & (WF_F_SELECTOR_LIST | WF_F_SELECTOR_DICT | WF_F_DIM_UP | WF_F_RAW))
        return 0;
    if (wf_value_is_null(v)) {
        json_t *n = json_null();
        return wf__json_check(f, n, err, errlen);
    }
    switch (v->type) {
    case WF_V_JSON:
        if (f->type == WF_FT_IMAGE || f->type == WF_FT_DETS) {
            wf__errf(err, errlen, "expected %s, got %s",
                     f->type == WF_FT_IMAGE ? "an image" : "detections", jtype(v->json));
            return ERR_INVALID;
        }
        return wf__json_check(f, v->json, err, errlen);
    case WF_V_IMAGE:
        if (f->type == WF_FT_IMAGE || f->type == WF_FT_ANY)
            return 0;
        wf__errf(err, errlen, "got an image where a different kind is expected");
        return ERR_INVALID;
    case WF_V_DETS:
        if (f->type == WF_FT_DETS || f->type == WF_FT_ANY)
            return 0;
        wf__errf(err, errlen, "got detections where a different kind is expected");
        return ERR_INVALID;
    default:
        if (f->type == WF_FT_ANY || f->type == WF_FT_LIST || f->type == WF_FT_DICT)
            return 0;
        wf__errf(err, errlen, "got a list/dict value where a different kind is expected");
        return ERR_INVALID;
    }
}

/* ---- refused blocks ----------------------------------------------------------
 * Roboflow block types that this engine refuses at compile time, with the
 * cloud service or the model each one needs (spec/blocks.json; legacy
 * aliases included).  Blocks that call an LLM/VLM API or a Roboflow-hosted
 * service cannot run offline; blocks that run a foundation model wait for
 * that model's support in the model module.  A type must not be both
 * registered and refused (test_workflow_registry checks it). */
struct refusal {
    const char *type;
    enum wf_block_status status;
    const char *what;
};

static const struct refusal refused[] = {
    {"roboflow_core/anthropic_claude@v1", WF_BLOCK_CLOUD_ONLY, "the Anthropic API"},
    {"roboflow_core/anthropic_claude@v2", WF_BLOCK_CLOUD_ONLY, "the Anthropic API"},
    {"roboflow_core/anthropic_claude@v3", WF_BLOCK_CLOUD_ONLY, "the Anthropic API"},
    {"roboflow_core/asset_library_attributes@v1", WF_BLOCK_CLOUD_ONLY,
     "the Roboflow asset library"},
    {"roboflow_core/cog_vlm@v1", WF_BLOCK_NEEDS_MODEL, "CogVLM"},
    {"CogVLM", WF_BLOCK_NEEDS_MODEL, "CogVLM"},
    {"roboflow_core/cosmos3_edge@v1", WF_BLOCK_NEEDS_MODEL, "Cosmos"},
    {"roboflow_core/depth_estimation@v1", WF_BLOCK_NEEDS_MODEL, "a depth-estimation model"},
    {"roboflow_core/easy_ocr@v1", WF_BLOCK_NEEDS_MODEL, "EasyOCR"},
    {"EasyOCR", WF_BLOCK_NEEDS_MODEL, "EasyOCR"},
    {"roboflow_core/florence_2@v1", WF_BLOCK_NEEDS_MODEL, "Florence-2"},
    {"roboflow_core/florence_2@v2", WF_BLOCK_NEEDS_MODEL, "Florence-2"},
    {"roboflow_core/gaze@v1", WF_BLOCK_NEEDS_MODEL, "L2CS gaze"},
    {"roboflow_core/glm_ocr@v1", WF_BLOCK_NEEDS_MODEL, "GLM-OCR"},
    {"roboflow_core/google_gemini@v1", WF_BLOCK_CLOUD_ONLY, "the Google Gemini API"},
    {"roboflow_core/google_gemini@v2", WF_BLOCK_CLOUD_ONLY, "the Google Gemini API"},
    {"roboflow_core/google_gemini@v3", WF_BLOCK_CLOUD_ONLY, "the Google Gemini API"},
    {"roboflow_core/google_gemini@v4", WF_BLOCK_CLOUD_ONLY, "the Google Gemini API"},
    {"roboflow_core/google_gemma@v1", WF_BLOCK_CLOUD_ONLY, "the Google Gemini API"},
    {"roboflow_core/google_gemma@v2", WF_BLOCK_NEEDS_MODEL, "Gemma"},
    {"roboflow_core/google_vision_ocr@v1", WF_BLOCK_CLOUD_ONLY, "Google Cloud Vision"},
    {"roboflow_core/kimi_openrouter@v1", WF_BLOCK_CLOUD_ONLY, "OpenRouter"},
    {"roboflow_core/kimi_openrouter@v2", WF_BLOCK_CLOUD_ONLY, "OpenRouter"},
    {"roboflow_core/llama_3_2_vision@v1", WF_BLOCK_CLOUD_ONLY, "OpenRouter"},
    {"roboflow_core/llama_vision@v2", WF_BLOCK_NEEDS_MODEL, "Llama 3.2 Vision"},
    {"roboflow_core/lmm@v1", WF_BLOCK_CLOUD_ONLY, "a hosted LMM API (OpenAI GPT-4V)"},
    {"LMM", WF_BLOCK_CLOUD_ONLY, "a hosted LMM API (OpenAI GPT-4V)"},
    {"roboflow_core/lmm_for_classification@v1", WF_BLOCK_CLOUD_ONLY,
     "a hosted LMM API (OpenAI GPT-4V)"},
    {"LMMForClassification", WF_BLOCK_CLOUD_ONLY, "a hosted LMM API (OpenAI GPT-4V)"},
    {"roboflow_core/meta_vlm@v1", WF_BLOCK_CLOUD_ONLY, "the Meta Llama API"},
    {"roboflow_core/model_monitoring_inference_aggregator@v1", WF_BLOCK_CLOUD_ONLY,
     "Roboflow Model Monitoring"},
    {"roboflow_core/moondream2@v1", WF_BLOCK_NEEDS_MODEL, "Moondream 2"},
    {"roboflow_core/open_ai@v1", WF_BLOCK_CLOUD_ONLY, "the OpenAI API"},
    {"OpenAI", WF_BLOCK_CLOUD_ONLY, "the OpenAI API"},
    {"roboflow_core/open_ai@v2", WF_BLOCK_CLOUD_ONLY, "the OpenAI API"},
    {"roboflow_core/open_ai@v3", WF_BLOCK_CLOUD_ONLY, "the OpenAI API"},
    {"roboflow_core/open_ai@v4", WF_BLOCK_CLOUD_ONLY, "the OpenAI API"},
    {"roboflow_core/open_ai@v5", WF_BLOCK_CLOUD_ONLY, "the OpenAI API"},
    {"roboflow_core/openai_compatible@v1", WF_BLOCK_CLOUD_ONLY,
     "an external OpenAI-compatible LLM server"},
    {"roboflow_core/openrouter@v1", WF_BLOCK_CLOUD_ONLY, "OpenRouter"},
    {"roboflow_core/perception_encoder@v1", WF_BLOCK_NEEDS_MODEL, "Perception Encoder"},
    {"roboflow_core/qwen25vl@v1", WF_BLOCK_NEEDS_MODEL, "Qwen2.5-VL"},
    {"roboflow_core/qwen3_5_openrouter@v1", WF_BLOCK_CLOUD_ONLY, "OpenRouter"},
    {"roboflow_core/qwen3_5vl@v1", WF_BLOCK_NEEDS_MODEL, "Qwen3.5-VL"},
    {"roboflow_core/qwen3_5vl@v2", WF_BLOCK_NEEDS_MODEL, "Qwen3.5-VL"},
    {"roboflow_core/qwen3_6_openrouter@v1", WF_BLOCK_CLOUD_ONLY, "OpenRouter"},
    {"roboflow_core/qwen3vl@v1", WF_BLOCK_NEEDS_MODEL, "Qwen3-VL"},
    {"roboflow_core/qwen_vlm@v1", WF_BLOCK_NEEDS_MODEL, "Qwen VLM"},
    {"roboflow_core/qwen_vlm@v2", WF_BLOCK_NEEDS_MODEL, "Qwen VLM"},
    {"roboflow_core/roboflow_custom_metadata@v1", WF_BLOCK_CLOUD_ONLY, "the Roboflow platform API"},
    {"RoboflowCustomMetadata", WF_BLOCK_CLOUD_ONLY, "the Roboflow platform API"},
    {"roboflow_core/roboflow_dataset_upload@v1", WF_BLOCK_CLOUD_ONLY, "Roboflow dataset upload"},
    {"RoboflowDatasetUpload", WF_BLOCK_CLOUD_ONLY, "Roboflow dataset upload"},
    {"roboflow_core/roboflow_dataset_upload@v2", WF_BLOCK_CLOUD_ONLY, "Roboflow dataset upload"},
    {"roboflow_core/roboflow_vision_events@v1", WF_BLOCK_CLOUD_ONLY, "Roboflow Vision Events"},
    {"roboflow_core/sam3@v1", WF_BLOCK_NEEDS_MODEL, "SAM 3"},
    {"roboflow_core/sam3@v2", WF_BLOCK_NEEDS_MODEL, "SAM 3"},
    {"roboflow_core/sam3@v3", WF_BLOCK_NEEDS_MODEL, "SAM 3"},
    {"roboflow_core/sam3_interactive@v1", WF_BLOCK_NEEDS_MODEL, "SAM 3"},
    {"roboflow_core/sam3_video@v1", WF_BLOCK_NEEDS_MODEL, "SAM 3"},
    {"roboflow_core/seg-preview@v1", WF_BLOCK_CLOUD_ONLY,
     "the Roboflow-hosted segmentation preview"},
    {"roboflow_core/segment_anything3_3d_objects@v1", WF_BLOCK_NEEDS_MODEL, "SAM 3D"},
    {"roboflow_core/segment_anything_2_video@v1", WF_BLOCK_NEEDS_MODEL, "SAM 2"},
    {"roboflow_core/smolvlm2@v1", WF_BLOCK_NEEDS_MODEL, "SmolVLM2"},
    {"roboflow_core/spacexai@v1", WF_BLOCK_CLOUD_ONLY, "the xAI API"},
    {"roboflow_core/stability_ai_image_gen@v1", WF_BLOCK_CLOUD_ONLY, "the Stability AI API"},
    {"roboflow_core/stability_ai_inpainting@v1", WF_BLOCK_CLOUD_ONLY, "the Stability AI API"},
    {"roboflow_core/stability_ai_outpainting@v1", WF_BLOCK_CLOUD_ONLY, "the Stability AI API"},
    {"roboflow_core/twilio_sms_notification@v1", WF_BLOCK_CLOUD_ONLY, "the Twilio SMS API"},
    {"roboflow_core/twilio_sms_notification@v2", WF_BLOCK_CLOUD_ONLY, "the Twilio SMS API"},
    {"roboflow_core/vision_event_bundle@v1", WF_BLOCK_CLOUD_ONLY, "Roboflow Vision Events"},
    {"roboflow_core/visual_search@v1", WF_BLOCK_CLOUD_ONLY, "Roboflow visual search"},
    {"roboflow_core/visual_search_classifier@v1", WF_BLOCK_CLOUD_ONLY, "Roboflow visual search"},
    {"roboflow_core/yolo_world_model@v1", WF_BLOCK_NEEDS_MODEL, "YOLO-World"},
    {"YoloWorldModel", WF_BLOCK_NEEDS_MODEL, "YOLO-World"},
    {"YoloWorld", WF_BLOCK_NEEDS_MODEL, "YOLO-World"},
};

enum wf_block_status wf_block_status(const char *type, const char **what)
{
    if (what)
        *what = NULL;
    if (!type)
        return WF_BLOCK_UNKNOWN;
    if (wf__block_find(type))
        return WF_BLOCK_RUNS;
    for (size_t i = 0; i < ARRAY_LEN(refused); i++)
        if (!strcmp(refused[i].type, type)) {
            if (what)
                *what = refused[i].what;
            return refused[i].status;
        }
    return WF_BLOCK_UNKNOWN;
}

const char *wf_block_type_at(size_t i, enum wf_block_status *st, bool *canonical)
{
    for (size_t f = 0; f < ARRAY_LEN(families); f++)
        for (size_t b = 0; families[f][b]; b++)
            for (size_t t = 0; families[f][b]->types[t]; t++)
                if (i-- == 0) {
                    if (st)
                        *st = WF_BLOCK_RUNS;
                    if (canonical)
                        *canonical = t == 0;
                    return families[f][b]->types[t];
                }
    if (i < ARRAY_LEN(refused)) {
        if (st)
            *st = refused[i].status;
        /* the refusal table lists each canonical name before its aliases,
         * which never start with "roboflow_core/" */
        if (canonical)
            *canonical = str_has_prefix(refused[i].type, "roboflow_core/");
        return refused[i].type;
    }
    return NULL;
}
