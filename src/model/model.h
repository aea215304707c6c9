/*
 * model — ONNX models behind a model_id: the registry, ONNX Runtime sessions,
 * pre-processing and the decoders (YOLOv8/v11 detection, instance
 * segmentation with mask prototypes, YOLOv8-pose keypoints, single- and
 * multi-label classification; detection also for YOLOv5/v7, YOLOv10 and
 * YOLO26 end-to-end, YOLO-NAS and RF-DETR, instance segmentation also for
 * YOLOv5/v7-seg and RF-DETR, masks as polygons or COCO RLE; semantic
 * segmentation from per-pixel logits) with NMS where the architecture has it,
 * producing Roboflow inference responses; multi-file families: PP-OCR and
 * CLIP embeddings (image + text encoders, CLIP's BPE tokenizer).  docs/MODELS.md describes the artefact layouts and the choices
 * made where Roboflow has two behaviours.
 *
 * ONNX Runtime is loaded at run time with dlopen() from a configurable path,
 * so the vbatch binary starts (and stages data) without it; the first
 * registry that needs it reports a clear error when it is missing.
 *
 * Thread safety: a registry may be used from any number of threads at once.
 * Registration and lookup take a registry lock; inference runs without it
 * on a reference to the model (one ONNX Runtime session per model per
 * process, shared by all threads: OrtApi::Run is thread-safe).
 */
#ifndef VBATCH_MODEL_H
#define VBATCH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vision/vision.h"

struct model_registry;
struct model;

/* ---- registry ---------------------------------------------------------- */

/* Scopes.  A model belongs to the operator (workspace NULL: models folders,
 * register_dir / register_bytes, model_registry_add without a workspace)
 * or to one workspace (model_registry_add with its name).  Two workspaces
 * may each have a model of the same id; a workspace's model may have the
 * id of an operator model.  A lookup in workspace W resolves a name as
 * W's own model, else W's alias, else the operator's model, else the
 * operator's or a built-in alias, and follows an alias's target the same
 * way (4 hops at most); a lookup without a workspace sees only the
 * operator's models and aliases.  Aliases given in a model's metadata
 * belong to the model's scope. */

struct model_registry_opts {
    const char *ort_lib;      /* path of libonnxruntime.so; NULL: $VBATCH_ORT_LIB,
                                 else VBATCH_ORT_DIR "/lib/libonnxruntime.so" */
    const char *models_dir;   /* where register_* copy artefacts (created on
                                 demand); NULL: registrations stay in memory */
    int intra_op_threads;     /* ONNX Runtime intra-op threads per session;
                                 0: ORT's default (one per core) */
    const char *machine_type; /* "cpu" (NULL) or "gpu": CUDA, else TensorRT
                                 execution provider; error when ORT has none */
    uint64_t max_model_bytes; /* largest weights.onnx accepted; 0: 1 GiB */
    bool intra_op_spinning;   /* let ORT's intra-op threads spin-wait between
                                 runs: lower latency on idle cores, but the
                                 spinning takes CPU from decoding and other
                                 workers; default false (no spinning) */
};

/* Create a registry; ONNX Runtime is loaded lazily, on the first
 * registration.  Returns 0 and *out (free with model_registry_free) or <0
 * with a message in err. */
int model_registry_new(const struct model_registry_opts *opts, struct model_registry **out,
                       char *err, size_t errlen);
/* Frees the registry; models still referenced by callers stay alive until
 * their last model_unref().  Accepts NULL. */
void model_registry_free(struct model_registry *reg);

/* Check that ONNX Runtime can be loaded (and the GPU provider exists when
 * machine_type is "gpu") without registering anything. */
int model_registry_runtime_check(struct model_registry *reg, char *err, size_t errlen);

/* Register every model found in dir: each subfolder holding weights.onnx
 * (models/<id with '/' written as "--">/weights.onnx; a model.json there may
 * hold {"model_id": "...", "aliases": [...]}), and aliases.json
 * {"alias": "target", ...} at the top.  Bad models are skipped with a
 * warning in the log and counted in *n_bad (may be NULL).  Returns the
 * number registered (>= 0) or <0 when dir cannot be read. */
int model_registry_load_dir(struct model_registry *reg, const char *dir, int *n_bad, char *err,
                            size_t errlen);

/* Register model_id from a folder holding the artefacts (Roboflow layout:
 * weights.onnx, class_names.txt, environment.json and/or
 * inference_config.json; or an Ultralytics export: weights.onnx whose ONNX
 * custom metadata carries names/imgsz/task).  The model is loaded and
 * checked: a missing file, an input that is not float32 NCHW, or outputs that
 * no decoder understands are refused here with a clear message.  When the
 * registry has a models_dir (and src_dir is not already that model's folder)
 * the artefacts are copied into it.  Re-registering an id replaces the
 * model; callers holding the old one keep it until they unref it. */
int model_registry_register_dir(struct model_registry *reg, const char *model_id,
                                const char *src_dir, char *err, size_t errlen);

/* Register model_id from uploaded bytes: the ONNX file and a metadata JSON
 * object (may be NULL) with any of
 *   "task": "object-detection" | "instance-segmentation" | "classification"
 *           | "multi-label-classification" | "keypoint-detection"
 *           | "semantic-segmentation",
 *   "class_names": ["a", ...]   or the text of class_names.txt,
 *   "environment": {...}        (Roboflow environment.json content),
 *   "inference_config": {...}   (Roboflow inference_config.json content),
 *   "model_config": {...}       (model_config.json: model_architecture,
 *                                task_type),
 *   "model_type": {...}         (model_type.json: {"model_type": "rfdetr-base"};
 *                                a bare name is accepted too),
 *   "keypoint_names": [...], "aliases": ["name", ...].
 * The four JSON files may also be given as their text (a JSON string).
 * The artefacts are written to models_dir when set (else kept in memory
 * only).  Same checks as register_dir. */
int model_registry_register_bytes(struct model_registry *reg, const char *model_id,
                                  const void *onnx, size_t onnx_len, const json_t *metadata,
                                  char *err, size_t errlen);

/* Two-step registration, for callers that store the artefacts themselves
 * (the jobs module keeps them in the blob store and the database): build
 * and check a model from bytes exactly as register_bytes does, without
 * registering it or writing anything.  *out holds one reference (the
 * caller's: model_unref it after model_registry_add, or to drop it). */
int model_registry_prepare_bytes(struct model_registry *reg, const char *model_id,
                                 const void *onnx, size_t onnx_len, const json_t *metadata,
                                 struct model **out, char *err, size_t errlen);
/* Register a prepared model (the registry takes its own reference),
 * replacing one of the same id, and set the aliases of its metadata.  tag
 * (copied; NULL: none) is an opaque string that tells generations of a
 * model apart, e.g. the blob key its bytes came from; see model_tag and
 * model_registry_tags.  workspace (copied): the model's scope, NULL for
 * the operator's.  m must not have been added to a registry yet. */
void model_registry_add(struct model_registry *reg, struct model *m, const char *workspace, const char *tag);
/* Remove the model registered under model_id in exactly the scope
 * workspace (NULL: the operator's; its own id: aliases are not followed,
 * and an alias to it stays and then resolves to "not registered").  tag
 * non-NULL: only when the model's tag equals it.
 * Callers holding a reference keep the model until they unref it.
 * ERR_NOTFOUND when there is no such model (or the tag differs). */
int model_registry_remove(struct model_registry *reg, const char *workspace, const char *model_id,
                          const char *tag);
/* Folder / blob-key name of a model id: '/' written as "--" (ids never
 * contain "--"); malloc'd. */
char *model_id_dirname(const char *model_id);
/* {tag: {"modelId", "workspace" (null: the operator's)}} of the
 * registered models that have a tag, new object. */
json_t *model_registry_tags(struct model_registry *reg);
/* Read a model folder (weights.onnx; class_names.txt, environment.json,
 * inference_config.json, model_config.json, model_type.json, model.json
 * when present; a multi-file folder such as OCR's: a bundle of its files
 * and model.json as the metadata) into the ONNX bytes
 * (*onnx malloc'd, at most max_bytes; 0: 1 GiB) and the metadata object
 * register_bytes / prepare_bytes take (*meta, new reference), so that the
 * folder registers from bytes with the same result as register_dir. */
int model_artefacts_read_dir(const char *dir, uint64_t max_bytes, char **onnx, size_t *len,
                             json_t **meta, char *err, size_t errlen);

/* Multi-file models (docs/MODELS.md "Multi-file models"): a model made of
 * several files (OCR: det.onnx, rec.onnx, dict.txt) is handed to
 * prepare_bytes as a bundle, a ustar archive of at most
 * MODEL_BUNDLE_MAX_FILES plain files at the top level named as
 * model_bundle_name_ok accepts, ended by two zero blocks.
 * model_artefacts_read_dir returns one for a multi-file folder (its
 * metadata from model.json); the HTTP upload writes one from a multipart
 * form of several files. */
#define MODEL_BUNDLE_MAX_FILES 16
#define MODEL_BUNDLE_NAME_MAX 64
/* Do the bytes start like a bundle (a ustar header)? */
bool model_bundle_is(const void *bytes, size_t len);
/* Letters, digits, '.', '-', '_'; 1..MODEL_BUNDLE_NAME_MAX; no leading '.'. */
bool model_bundle_name_ok(const char *name);
/* The 512-byte header of a bundle entry name (model_bundle_name_ok) of
 * size bytes; its data follows, zero-padded to a multiple of 512. */
void model_bundle_header(char hdr[512], const char *name, uint64_t size);

/* alias -> target id, an operator alias (the target need not be registered
 * yet).  The public Roboflow aliases (yolov8n-640 -> coco/3, ...) are built
 * in; a registered model with the alias's own name wins over an alias. */
int model_registry_alias_set(struct model_registry *reg, const char *alias, const char *target);

/* Look a model up as workspace sees it (NULL: the operator's models only;
 * see "Scopes" above; aliases resolved).  Returns 0 and a new reference in
 * *out (release with model_unref) or ERR_NOTFOUND with a message. */
int model_registry_get(struct model_registry *reg, const char *workspace, const char *model_id,
                       struct model **out, char *err, size_t errlen);
/* Every registered model (not aliases) of every scope, a new JSON array of
 * {"modelId", "workspace" (null: the operator's)}. */
json_t *model_registry_list(struct model_registry *reg);

void model_ref(struct model *m);
void model_unref(struct model *m); /* accepts NULL */

/* ---- model information (valid while a reference is held) ----------------- */

enum model_task {
    MODEL_TASK_DETECTION = 1,
    MODEL_TASK_SEGMENTATION,
    MODEL_TASK_CLASSIFICATION,
    MODEL_TASK_MULTI_LABEL,
    MODEL_TASK_KEYPOINTS,
    MODEL_TASK_SEMANTIC, /* "semantic-segmentation": per-pixel class logits */
    MODEL_TASK_OCR,      /* "ocr": PP-OCR text detector + recogniser + dictionary
                            (a multi-file folder: docs/MODELS.md "OCR") */
    MODEL_TASK_SAM,      /* "segment-anything": SAM2 encoder + decoder (a
                            multi-file model: docs/MODELS.md "SAM2") */
    MODEL_TASK_EMBEDDING, /* "embedding": CLIP image encoder + text encoder + BPE
                             merges (a multi-file folder: docs/MODELS.md "CLIP") */
};
/* "object-detection", ... ; and back (0 for an unknown name). */
const char *model_task_name(enum model_task t);
enum model_task model_task_parse(const char *s);

const char *model_id(const struct model *m);
const char *model_workspace(const struct model *m); /* its scope; NULL: the operator's */
const char *model_tag(const struct model *m); /* model_registry_add's tag, or NULL */
enum model_task model_task(const struct model *m);
size_t model_class_count(const struct model *m);
const char *model_class_name(const struct model *m, size_t i); /* NULL when out of range */
void model_input_size(const struct model *m, int *w, int *h);
/* A JSON object describing the model (id, task, classes, input size,
 * preprocessing, outputs), a new reference. */
json_t *model_describe(const struct model *m);

/* ---- inference: lower-level C API ------------------------------------------ */

enum model_nms_mode {
    MODEL_NMS_IOU = 0,  /* default: torchvision batched_nms (true IoU, conf > thr) */
    MODEL_NMS_CLASSIC,  /* Roboflow classic fast-NMS (overlap / other's area, +1 px) */
};
enum model_mask_mode { MODEL_MASK_ACCURATE = 0, MODEL_MASK_FAST, MODEL_MASK_TRADEOFF };

struct model_params {
    float confidence;          /* 0.4 */
    float iou_threshold;       /* 0.3 */
    bool class_agnostic_nms;   /* false */
    int max_detections;        /* 300 */
    int max_candidates;        /* 3000: pre-NMS cap, best scores kept */
    const char **class_filter; /* NULL: all classes; else n_class_filter names (borrowed) */
    size_t n_class_filter;
    enum model_mask_mode mask_mode; /* accurate */
    float tradeoff_factor;     /* 0.0 (tradeoff mode: 0 = fast .. 1 = accurate) */
    float keypoint_confidence; /* 0.0: keypoints below are dropped */
    enum model_nms_mode nms;   /* MODEL_NMS_IOU */
    bool rle_masks;            /* "response_mask_format": "rle": instance masks kept
                                  (model_detection.mask) and answered as COCO RLE */
};
void model_params_init(struct model_params *p);
/* Fill p (after model_params_init) from snake_case block parameters;
 * unknown keys are ignored, null values keep the default.  class_filter
 * entries borrow strings from params (keep it alive); release with
 * model_params_release.  ERR_INVALID with a message on a bad value. */
int model_params_from_json(struct model_params *p, const json_t *params, char *err, size_t errlen);
void model_params_release(struct model_params *p);

struct model_point {
    float x, y;
};
struct model_keypoint {
    float x, y, confidence; /* original-image pixels */
    int class_id;           /* keypoint index */
};
struct model_detection {
    float x1, y1, x2, y2;             /* original-image pixels (integers, as Roboflow) */
    float confidence;
    int class_id;
    struct model_point *points;       /* segmentation polygon, owned by the result */
    size_t n_points;
    struct model_keypoint *keypoints; /* owned by the result */
    size_t n_keypoints;
    uint8_t *mask;                    /* rle_masks: 0/1 mask of the region mask_x, mask_y,
                                         mask_w x mask_h in original-image pixels (all of
                                         the instance's pixels); owned; NULL: empty */
    int mask_x, mask_y, mask_w, mask_h;
};
struct model_result {
    enum model_task task;
    int image_w, image_h;            /* the original image */
    struct model_detection *dets;    /* detection tasks, sorted by confidence desc */
    size_t n_dets;
    float *scores;                   /* classification: per-class probabilities */
    size_t n_scores;
    uint8_t *class_mask;             /* semantic segmentation: image_w * image_h class ids */
    uint8_t *conf_mask;              /* ... and confidences round(p * 255), row-major */
};
void model_result_release(struct model_result *r); /* frees members, not r */

/* Run the model on n images (any vis_fmt): pre-process, inference (batched
 * when the model accepts a batch), decode.  out[0..n) are filled (release
 * each with model_result_release).  Safe from any thread. */
int model_run(struct model *m, const struct vis_image *const *images, size_t n,
              const struct model_params *p, struct model_result *out, char *err, size_t errlen);

/* Pre-process img for m now and attach the tensor to img (vis_image aux),
 * so that a later model_run of m over img — or over a full-size view of it
 * sharing its pixels — skips its own pre-processing.  For a decode-ahead
 * thread: the pre-processing then overlaps the inference of the previous
 * image.  img's pixels must not change afterwards.  Several models may be
 * prepared on one image.  Returns 0, ERR_NOMEM, or ERR_EXISTS when img
 * carries another kind of aux data (nothing attached). */
int model_prepare(struct model *m, struct vis_image *img);

/* Roboflow response for one result (see model_registry_infer), new ref. */
json_t *model_result_to_json(const struct model *m, const struct model_result *r,
                             const struct model_params *p);

/* OCR models (task MODEL_TASK_OCR): model_run refuses them; they run
 * through model_ocr_run, one image at a time. */
struct model_ocr_word {
    float x1, y1, x2, y2; /* original-image pixels, integers */
    float confidence;     /* mean of the recogniser's kept CTC step maxima */
    char *text;           /* UTF-8, owned by the result */
};
struct model_ocr_result {
    int image_w, image_h;
    struct model_ocr_word *words; /* reading order (top to bottom, left to right) */
    size_t n_words;
};
/* Detect and read the text of img (any vis_fmt).  Safe from any thread. */
int model_ocr_run(struct model *m, const struct vis_image *img, struct model_ocr_result *out,
                  char *err, size_t errlen);
void model_ocr_result_release(struct model_ocr_result *r); /* frees members, not r */
/* Roboflow's OCR response {"result", "predictions", "image"}, new ref. */
json_t *model_ocr_result_to_json(const struct model_ocr_result *r);

/* SAM2 models (task MODEL_TASK_SAM): model_run refuses them; they run
 * through model_sam_run, one image at a time, with prompts in the picture's
 * pixels (docs/MODELS.md "SAM2"). */
#define MODEL_SAM_MAX_POINTS 16   /* points of one prompt (a box adds two) */
#define MODEL_SAM_MAX_PROMPTS 256 /* prompts of one image */
/* masks of one call: prompts x picture pixels (each mask is one byte a
 * pixel, and the response copies it): 1 Gi, 256 prompts of a 4-megapixel
 * picture or 10 of the largest (VIS_MAX_PIXELS) */
#define MODEL_SAM_MAX_MASK_PIXELS (1ull << 30)
struct model_sam_prompt {
    bool has_box;
    float box[4]; /* x1, y1, x2, y2 */
    size_t n_points;
    struct {
        float x, y;
        int label; /* 1 positive, 0 negative */
    } points[MODEL_SAM_MAX_POINTS];
};
struct model_sam_mask {
    float confidence; /* the decoder's predicted IoU of the chosen mask */
    int prompt;       /* index of its prompt */
    uint8_t *mask;    /* image_w * image_h, 0/1, owned */
};
struct model_sam_result {
    int image_w, image_h;
    struct model_sam_mask *masks; /* one per prompt, in prompt order */
    size_t n;
};
struct model_tensor;
/* Segment img for n prompts (n 0: Roboflow's unprompted call, one padding
 * point).  multimask: choose among the multimask outputs (Roboflow's
 * default).  raw (may be NULL): receives copies of the decoder's masks
 * (N, K, h, w) and iou_predictions (N, K) (free each .data).  Safe from
 * any thread. */
int model_sam_run(struct model *m, const struct vis_image *img, const struct model_sam_prompt *prompts, size_t n,
                  bool multimask, struct model_sam_result *r, struct model_tensor *raw, char *err, size_t errlen);
/* The post-processing alone: decoder outputs masks (n, k, mh, mw) and
 * iou (n, k) to W x H masks (mask choice, bilinear resize, logit > 0). */
int model_sam_decode(const float *masks, const float *iou, int n, int k, int mh, int mw, bool multimask, int W, int H,
                     struct model_sam_result *r);
void model_sam_result_release(struct model_sam_result *r); /* frees members, not r */
/* {"predictions": [{x, y, width, height, confidence, prompt_index, points
 * | rle_mask}], "image"}; empty masks left out.  New reference. */
json_t *model_sam_result_to_json(const struct model_sam_result *r, bool rle);
/* CLIP models (task MODEL_TASK_EMBEDDING): model_run refuses them.
 * Embeddings are the encoders' raw outputs (not normalised), as Roboflow
 * returns them. */
size_t model_clip_dim(const struct model *m); /* embedding length */
/* CLIP's pre-processing of img into dst (3 * R * R floats, RGB planes; R
 * the image encoder's input side, model_input_size). */
int model_clip_preprocess(const struct model *m, const struct vis_image *img, float *dst);
/* Embed one image (any vis_fmt): CLIP pre-processing, image encoder.
 * *emb: malloc'd model_clip_dim floats.  Safe from any thread. */
int model_clip_embed_image(struct model *m, const struct vis_image *img, float **emb, char *err,
                           size_t errlen);
/* Embed n texts (tokenised with the model's BPE, at most 75 tokens each:
 * longer is refused as clip.tokenize does).  *emb: malloc'd n *
 * model_clip_dim floats, row-major. */
int model_clip_embed_texts(struct model *m, const char *const *texts, size_t n, float **emb,
                           char *err, size_t errlen);

/* Task "embedding" (CLIP) in model_registry_infer: out[i] =
 * {"embeddings": [[D floats]]} for image i; with params {"texts": [...]}
 * (at most MODEL_CLIP_MAX_TEXTS) the images are ignored (n may be 0) and
 * out[0] = {"embeddings": [[D floats] per text]}. */
#define MODEL_CLIP_MAX_TEXTS 1000

/* CLIP's byte-level BPE tokenizer (clip_bpe.c; simple_tokenizer.py). */
#define MODEL_CLIP_CONTEXT 77
struct model_clip_bpe;
/* From the text of a merges file ("#version" line, then "a b" per line;
 * OpenAI's bpe_simple_vocab_16e6.txt or Hugging Face's merges.txt) and
 * optionally a vocab.json object {token: id} (NULL: the vocabulary
 * simple_tokenizer derives from the merges). */
int model_clip_bpe_load(const char *merges, size_t len, const json_t *vocab,
                        struct model_clip_bpe **out, char *err, size_t errlen);
void model_clip_bpe_free(struct model_clip_bpe *t); /* accepts NULL */
size_t model_clip_bpe_vocab_size(const struct model_clip_bpe *t); /* largest id + 1 */
/* The token ids of text without the specials (*ids malloc'd, *n set). */
int model_clip_bpe_encode(const struct model_clip_bpe *t, const char *text, int **ids, size_t *n,
                          char *err, size_t errlen);
/* clip.tokenize: <|startoftext|> ids <|endoftext|>, zero-padded to 77;
 * longer: ERR_INVALID, or with truncate cut with <|endoftext|> last. */
int model_clip_bpe_tokenize(const struct model_clip_bpe *t, const char *text, bool truncate,
                            int32_t out[MODEL_CLIP_CONTEXT], char *err, size_t errlen);

/* ---- inference: the provider the workflow engine calls ---------------------- */

/* Run model_id on n images and build one Roboflow inference response per
 * image in out[i] (n new references).  task: NULL for any, else the task the
 * caller expects ("object-detection", "instance-segmentation",
 * "classification", "multi-label-classification", "keypoint-detection"); a
 * mismatch is an error.  params: snake_case block parameters (may be NULL),
 * defaults as in WORKFLOWS.md 4.3.  model_id is looked up as workspace
 * sees it (model_registry_get).  Returns 0, or <0 with a message in err
 * (unknown model id: ERR_NOTFOUND). */
int model_registry_infer(struct model_registry *reg, const char *workspace, const char *model_id,
                         const char *task,
                         const json_t *params, const struct vis_image *const *images, size_t n,
                         json_t **out, char *err, size_t errlen);

/* model_prepare for model_id as workspace sees it (model_registry_get);
 * ERR_NOTFOUND with a message for an unknown id. */
int model_registry_prepare(struct model_registry *reg, const char *workspace, const char *model_id,
                           struct vis_image *img, char *err, size_t errlen);

/* ---- pieces exposed for tests and benchmarks --------------------------------- */

/* Geometry of one pre-processed image: x_in = x_orig_cropped * sx + ox. */
struct model_letterbox {
    float sx, sy, ox, oy;
    int crop_x, crop_y, crop_w, crop_h; /* static crop in the original image */
};
/* Pre-process one image into dst (3*H*W floats, NCHW planes). */
int model_preprocess(const struct model *m, const struct vis_image *img, float *dst,
                     struct model_letterbox *lb);

struct model_tensor {
    float *data;        /* malloc'd, caller frees */
    int64_t shape[8];
    int rank;
    size_t count;
};
/* Run the model on one image and return copies of its raw outputs in
 * model output order (at most max_out); *n_out set.  Free each .data. */
int model_run_raw(struct model *m, const struct vis_image *img, struct model_tensor *outs,
                  size_t max_out, size_t *n_out, char *err, size_t errlen);

/* Decode raw outputs (model output order, batch element 0, as
 * model_run_raw returns them) for an image of geometry lb into r, as
 * model_run does after inference: for tests (crafted outputs) and the
 * benchmark (decode cost alone).  ERR_INVALID with a message when the
 * tensors do not fit the model. */
int model_decode_raw(const struct model *m, const struct model_tensor *outs, size_t n_out,
                     const struct model_letterbox *lb, int image_w, int image_h,
                     const struct model_params *p, struct model_result *r, char *err,
                     size_t errlen);

/* NMS over candidate boxes (xyxy + score + class), exposed for tests:
 * keep[] receives indices of kept boxes in output order; returns the count. */
struct model_box {
    float x1, y1, x2, y2, score;
    int class_id;
};
size_t model_nms(const struct model_box *boxes, size_t n, enum model_nms_mode mode, float iou,
                 bool agnostic, size_t max_keep, size_t *keep);

/* The OrtApi of the registry's runtime (loading it if needed), for the
 * benchmark's bare-ORT baseline; NULL with a message when unavailable.
 * The returned pointer is really a const OrtApi *. */
const void *model_registry_ort_api(struct model_registry *reg, void **ort_env, char *err,
                                   size_t errlen);

#endif
