/*
 * workflow — a Roboflow Workflows (execution engine v1) compatible engine.
 *
 * Given a workflow definition (JSON, spec/WORKFLOWS.md section 1), decoded
 * images and parameters, the engine returns the outputs serialized exactly
 * as Roboflow serializes them (WORKFLOWS.md section 3).  It knows nothing of
 * HTTP, jobs, storage or ONNX: model steps call a model provider that the
 * embedding program plugs in (struct wf_env).
 *
 *   compile once:  wf_compile(def, &wf, err, sizeof err)        -> struct wf_workflow
 *   run many:      wf_run(wf, &env, &inputs, &results, err, sizeof err)
 *                  results: JSON array, one serialized dict per input image
 *   batch rows:    wf_result_row(results[i], &row, &imgs, &nimgs)
 *                  row: images replaced by "<deducted_image>", imgs: JPEG
 *                  bytes with their key paths ("visualisation", "crops/0")
 *
 * Thread safety: a compiled struct wf_workflow is immutable; any number of
 * threads may call wf_run() on it at once.  Values (struct wf_value and the
 * images/detections inside) belong to one run and are not shared between
 * threads.
 *
 * The second half of this header is the internal value model (images with
 * parent metadata, detections) shared by the engine and the block files; see
 * wf_block.h for how blocks are written.
 */
#ifndef VBATCH_WORKFLOW_H
#define VBATCH_WORKFLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vision/vision.h"

/* ---- limits on definitions (every size from outside is bounded) ------- */
#define WF_MAX_STEPS 256        /* steps in one definition */
#define WF_MAX_INPUTS 64        /* inputs in one definition */
#define WF_MAX_OUTPUTS 128      /* outputs in one definition */
#define WF_MAX_DIM 4            /* deepest nesting of batches (crops of crops...) */
#define WF_MAX_QL_DEPTH 16      /* nesting of query-language statement groups */
#define WF_MAX_BATCH 4096       /* input images in one run */
#define WF_MAX_ELEMENTS 100000  /* elements produced by one step in one run */

/* ---- model provider ------------------------------------------------------ */
/* What a model step asks for.  All pointers are borrowed for the call. */
struct wf_model_request {
    const char *model_id; /* e.g. "yolov8n-640", "dog-breed-xpaq6/1" */
    /* "object-detection" | "instance-segmentation" | "classification" |
     * "multi-label-classification" | "keypoint-detection" */
    const char *task;
    /* The block's resolved parameters, snake_case names as in blocks.json:
     * confidence (already resolved from confidence_mode/custom_confidence
     * for v3 blocks; absent means "model default"), iou_threshold,
     * class_agnostic_nms, max_detections, max_candidates, class_filter,
     * mask_decode_mode, tradeoff_factor, keypoint_confidence, ... */
    const json_t *params;
};

/* Run a model over n images.  On success returns 0 and fills out[0..n-1]
 * with n new references, each a Roboflow inference response:
 *   detection / segmentation / keypoints:
 *     {"image":{"width":W,"height":H},
 *      "predictions":[{"x","y","width","height" (centre/size, pixels of the
 *        given image),"confidence","class","class_id",
 *        "points":[{"x","y"}] (segmentation),
 *        "keypoints":[{"x","y","confidence","class_id","class"}] (keypoints)}]}
 *   classification: {"image":{...},"predictions":[{"class","class_id",
 *        "confidence"}] sorted desc, "top", "confidence"}
 *   multi-label:    {"image":{...},"predictions":{cls:{"confidence",
 *        "class_id"}}, "predicted_classes":[...]}
 * On failure returns <0, writes a message to err and leaves out untouched.
 * Called from the thread that called wf_run(); it must be thread-safe when
 * several runs share it. */
typedef int (*wf_model_infer_fn)(void *ud, const struct wf_model_request *req,
                                 const struct vis_image *const *images, size_t n,
                                 json_t **out /* OUT: n new references */,
                                 char *err, size_t errlen);

/* Optional companion of wf_model_infer_fn: do the per-model work on img
 * that does not depend on the step's parameters (pre-processing) ahead of
 * the run, attaching the result to img (see model_prepare).  May be called
 * from another thread than the run's, before the run. */
typedef int (*wf_model_prepare_fn)(void *ud, const struct wf_model_request *req, struct vis_image *img,
                                   char *err, size_t errlen);

/* State that stateful blocks (byte_tracker, line_counter) keep across
 * runs, per step and per video_identifier: a video's frames are run one
 * after the other with the same state.  Belongs to one run at a time. */
struct wf_state;
struct wf_state *wf_state_new(void);
void wf_state_free(struct wf_state *st); /* accepts NULL */

/* What the operator lets sink and secrets blocks touch (blocks/sinks.c).
 * Everything is borrowed for the run.  A NULL struct wf_sinks, or a NULL
 * member, refuses the blocks that need it with a step error naming the
 * missing setting. */
struct wf_email;
struct wf_sinks {
    /* local_file_sink: the only folder written (an absolute path).  A
     * step's target_directory is a relative path inside it; absolute names,
     * ".." and symbolic links on the way are refused. */
    const char *file_root;
    /* environment_secrets_store: NULL-terminated names of the environment
     * variables a workflow may read. */
    const char *const *env_allow;
    /* webhook_sink: deliver payload (JSON object text) to url with an HTTP
     * POST later (the embedding program's durable outbox).  step: the
     * step's name (for an idempotency key).  0, or <0 with a message. */
    int (*webhook)(void *ud, const char *step, const char *url, const char *payload, char *err,
                   size_t errlen);
    void *webhook_ud;
    /* email_notification: send message (RFC 5322 headers without Date and
     * Message-ID, CRLF lines, then the body) from 'from' to the rcpt
     * addresses over SMTP at server:port (465: implicit TLS, else STARTTLS
     * when offered), logging in with user/password when password is set.
     * Synchronous.  0, or <0 with a message.  ud: webhook_ud. */
    int (*email)(void *ud, const char *step, const struct wf_email *m, char *err, size_t errlen);
    /* s3_sink: PUT data (len bytes) into the operator's bucket under a key
     * made of dir ("" or "a/b"), name and ext plus the embedding program's
     * run identity, so the same image and step always get the same key (a
     * retried task overwrites its own objects).  bucket: the step's
     * bucket_name, refused unless it is the operator's.  key gets the key
     * written.  0, or <0 with a message.  ud: webhook_ud. */
    int (*s3)(void *ud, const char *step, const char *bucket, const char *dir, const char *name, const char *ext,
              const char *data, size_t len, char *key, size_t keylen, char *err, size_t errlen);
    /* webhook_sink with a method other than POST, headers, form data or
     * multipart files: webhook's delivery with req, a JSON object text {"method",
     * "headers", "form", "files": {name: base64 bytes}} (ud: webhook_ud; see
     * store_outbox_enqueue_once).  NULL: such steps report an error. */
    int (*webhook_req)(void *ud, const char *step, const char *url, const char *payload, const char *req,
                       char *err, size_t errlen);
    /* slack_notification: the base URL of Slack's Web API chosen by the
     * operator ("<base>/chat.postMessage" gets the POST, through
     * webhook_req).  NULL: the block is a step error naming --slack-api-url. */
    const char *slack_api_url;
    /* onvif_sink: POST envelope (a SOAP 1.2 text) to url (http://camera
     * ip:port/path) with the SOAP action, within bounded timeouts and
     * through the operator's outbound-address guard; *status gets the HTTP
     * status and *resp (malloc'd, may be NULL) the body, at most 1 MiB.
     * 0, or <0 with a message when no HTTP answer came.  ud: webhook_ud.
     * NULL: the block is a step error. */
    int (*soap)(void *ud, const char *url, const char *action, const char *envelope, int *status, char **resp,
                char *err, size_t errlen);
    /* The run's identity, the same each time this image (and frame) of
     * this job runs (a task retried after a crash), "<job>_<item>_<frame>";
     * NULL outside a job.  local_file_sink's separate_files then writes
     * "<prefix>_<run_key>_<step>.<ext>", replaced whole by a repeated run,
     * instead of a new timestamped file each run. */
    const char *run_key;
};

struct wf_email {
    const char *server;
    int port;
    const char *user, *password; /* password NULL: no login */
    const char *from;
    const char *const *rcpt; /* To, Cc and Bcc addresses */
    size_t nrcpt;
    const char *message;     /* headers + blank line + body, CRLF */
};

/* Environment of one run: what the embedding program provides. */
struct wf_env {
    wf_model_infer_fn model_infer; /* NULL: model steps fail with a clear error */
    void *model_ud;                /* passed to model_infer */
    int jpeg_quality;              /* image serialization; 0 = 95 (Roboflow's) */
    struct wf_state *state;        /* NULL: every run starts with fresh state */
    const struct wf_sinks *sinks;  /* NULL: sink and secrets blocks refused */
};

/* ---- compile ------------------------------------------------------------- */
struct wf_workflow; /* compiled definition; immutable, shareable between threads */

/* Parse and compile a definition.  On success returns 0 and *out (free with
 * wf_free()).  On failure returns ERR_PARSE/ERR_INVALID/ERR_UNSUPPORTED/
 * ERR_LIMIT and writes a one-line message into err naming the step (or
 * input/output) and field and saying why, e.g.
 *   "step 'crop': field 'images': selector '$steps.x.crops' refers to unknown step 'x'".
 * The definition is only read; it may be freed after the call. */
int wf_compile(const json_t *definition, struct wf_workflow **out, char *err, size_t errlen);
/* Same from JSON text (at most 4 MiB). */
int wf_compile_text(const char *text, size_t len, struct wf_workflow **out, char *err,
                    size_t errlen);
/* Compile and throw away: 0 when the definition is valid, else <0 and the
 * compiler's message in err.  Used by the workflows registry at upload. */
int wf_validate(const json_t *definition, char *err, size_t errlen);
void wf_free(struct wf_workflow *wf); /* accepts NULL */

/* What the engine does with a block type identifier (canonical
 * "roboflow_core/x@vN" or a legacy alias).  A step of a refused type fails
 * to compile with ERR_UNSUPPORTED and a message that says why:
 *   "... block 'roboflow_core/open_ai@v4' needs a cloud service (the OpenAI API) ..."
 * A type the engine does not know at all gets "unsupported block '...'
 * (unknown to this engine)". */
enum wf_block_status {
    WF_BLOCK_UNKNOWN = 0, /* not known to this engine */
    WF_BLOCK_RUNS,        /* registered: compiles and runs */
    WF_BLOCK_CLOUD_ONLY,  /* refused: needs a cloud service (LLM/VLM API, Roboflow-hosted) */
    WF_BLOCK_NEEDS_MODEL, /* refused: needs a model this engine does not support yet */
};
/* Status of type; *what (may be NULL) gets the service or model a refused
 * block needs ("the OpenAI API", "CLIP"), NULL otherwise.  Static strings. */
enum wf_block_status wf_block_status(const char *type, const char **what);
/* The i-th type identifier the engine knows (every registered type and
 * alias, then every refused one), NULL past the end; *st gets its status,
 * *canonical whether it is a block's canonical "roboflow_core/x@vN" name
 * rather than an alias (both may be NULL).  For documentation tools and
 * tests. */
const char *wf_block_type_at(size_t i, enum wf_block_status *st, bool *canonical);

/* Introspection of a compiled workflow (pointers live as long as wf). */
size_t wf_image_input_count(const struct wf_workflow *wf);
/* Whether any step is a model block (one that calls wf_env.model_infer). */
bool wf_uses_models(const struct wf_workflow *wf);
/* Call prepare(ud, req, img, ...) once per distinct model id of the model
 * steps whose images field is the image input `input` itself (not a crop
 * or another step's image) and whose model_id is a literal (req.params is
 * NULL).  For a decode-ahead thread: img is the decoded input of the next
 * run.  Failures are ignored — the step then does the work itself and
 * reports any error.  Returns the number of calls that succeeded. */
size_t wf_prepare_input(const struct wf_workflow *wf, const char *input, struct vis_image *img,
                        wf_model_prepare_fn prepare, void *ud);
const char *wf_image_input_name(const struct wf_workflow *wf, size_t i);
size_t wf_output_count(const struct wf_workflow *wf);
const char *wf_output_name(const struct wf_workflow *wf, size_t i);

/* ---- run ----------------------------------------------------------------- */
/* One image batch input (WorkflowImage / InferenceImage).  images[k] is
 * borrowed for the run.  When passed_as_list is false and n == 1 the root
 * image's parent_id is the input name ("image"); otherwise "image.[k]". */
struct wf_image_input {
    const char *name;
    const struct vis_image *const *images;
    size_t n;
    bool passed_as_list;
    /* Optional: the images' video_metadata (a frame of a video: an object
     * with video_identifier, frame_number, frame_timestamp, fps,
     * measured_fps, comes_from_video_file); NULL: synthesised as
     * WORKFLOWS.md 1 says.  Borrowed. */
    const json_t *video_metadata;
};

struct wf_run_inputs {
    const struct wf_image_input *images; /* image batch inputs */
    size_t nimages;
    /* Every other input by name: WorkflowParameter values, and
     * WorkflowBatchInput / WorkflowVideoMetadata values as JSON arrays
     * (length 1 or the batch size).  NULL = all parameters take their
     * default_value.  Borrowed. */
    const json_t *params;
};

/* Run a compiled workflow.  On success returns 0 and *results, a new JSON
 * array with one object per input batch index, keys in the order of the
 * definition's outputs, every value serialized as Roboflow does.  On failure
 * returns <0 and a message naming the step in err. */
int wf_run(const struct wf_workflow *wf, const struct wf_env *env,
           const struct wf_run_inputs *in, json_t **results /* OUT: new ref */, char *err,
           size_t errlen);

/* ---- per-image result rows (WORKFLOWS.md 3.4) ------------------------------ */
struct wf_image_output {
    char *path;     /* key path joined with '/', e.g. "visualisation", "crops/0" */
    uint8_t *jpeg;  /* encoded JPEG bytes (the serialized base64 decoded) */
    size_t len;
};

/* From one serialized result dict (an element of wf_run's *results):
 * *row = deep copy with every serialized image ({"type":"base64",...}
 * object) replaced by the string "<deducted_image>"; *imgs = array of
 * *nimgs image outputs in document order.  Free with
 * wf_image_outputs_free(); json_decref(*row). */
int wf_result_row(const json_t *result, json_t **row /* OUT */,
                  struct wf_image_output **imgs /* OUT */, size_t *nimgs /* OUT */);
void wf_image_outputs_free(struct wf_image_output *imgs, size_t n);

/* =========================================================================
 * Internal value model (used by the engine and by blocks, see wf_block.h)
 * ========================================================================= */

/* Position of an image inside another one (Roboflow ParentOrigin): the
 * offset of the child's top-left corner in the parent, and the parent's
 * size. */
struct wf_origin {
    int offset_x, offset_y; /* pixels */
    int width, height;      /* the parent image's size */
};

/* An image flowing through a workflow (Roboflow WorkflowImageData). */
struct wf_image {
    struct vis_image *img;       /* owned pixels, BGR or GRAY */
    char *parent_id;             /* owned; "image" for a root input, a detection id for a crop */
    struct wf_origin parent;     /* this image inside its direct parent */
    char *root_parent_id;        /* owned; the workflow input it descends from */
    struct wf_origin root;       /* this image inside the root image */
    json_t *video_metadata;      /* owned reference or NULL (synthesised when serialized) */
};

/* New image taking ownership of px.  A root image: parent == root == itself
 * (offset 0, parent size = own size).  parent_id copied. */
struct wf_image *wf_image_new_root(struct vis_image *px, const char *parent_id);
/* A crop/slice of 'parent' at (x, y) taking ownership of px; parent_id
 * is the new image's parent id (a detection id, or a fresh uuid). */
struct wf_image *wf_image_new_child(const struct wf_image *parent, struct vis_image *px, int x,
                                    int y, const char *parent_id);
/* Same metadata as 'like' with new pixels px (ownership taken): what an
 * image-to-image block (blur, visualization) returns. */
struct wf_image *wf_image_derive(const struct wf_image *like, struct vis_image *px);
void wf_image_free(struct wf_image *im); /* accepts NULL */

/* ---- detections (Roboflow sv.Detections + data dict, WORKFLOWS.md 3.1) ---- */
struct wf_point {
    float x, y;
};

struct wf_keypoint {
    float x, y;       /* pixels, same system as the box */
    float confidence;
    int class_id;
    char *class_name; /* owned; "" marks a padded slot (skipped when serialized) */
};

#define WF_NO_TRACKER INT64_MIN

/* One detection.  Strings are owned by the detection and never NULL unless
 * said otherwise. */
struct wf_det {
    float x1, y1, x2, y2;     /* xyxy, pixels of the image named by parent_id */
    float confidence;
    int class_id;
    int64_t tracker_id;       /* WF_NO_TRACKER when untracked */
    char *class_name;         /* data["class_name"] */
    char detection_id[37];    /* data["detection_id"], uuid4 */
    char *parent_id;          /* data["parent_id"]: the image the box lives in */
    int img_w, img_h;         /* data["image_dimensions"] = [h, w] of that image */
    struct wf_origin parent;  /* parent_coordinates / parent_dimensions */
    char *root_parent_id;     /* data["root_parent_id"] */
    struct wf_origin root;    /* root_parent_coordinates / root_parent_dimensions */
    char *inference_id;       /* may be NULL; not serialized */
    char *prediction_type;    /* "object-detection", ...; may be NULL; not serialized */
    bool has_mask;            /* instance segmentation: the mask is 'poly' */
    struct wf_point *poly;    /* owned, npoly points; polygon of the mask */
    size_t npoly;
    struct wf_keypoint *kp;   /* owned, nkp keypoints; NULL when not a keypoint model */
    size_t nkp;
    bool has_kp;              /* keypoint data present (even if nkp == 0) */
    json_t *extra;            /* owned object of other data keys (time_in_zone, ...) or NULL;
                                 serialized after the known keys */
    bool no_parent;           /* the data has no parent/root keys nor image_dimensions
                                 (detections_merge): parent_id is "" and not serialized */
};

struct wf_dets {
    size_t n, cap;
    struct wf_det *d; /* owned array */
};

struct wf_dets *wf_dets_new(void);
void wf_dets_free(struct wf_dets *ds); /* accepts NULL */
struct wf_dets *wf_dets_clone(const struct wf_dets *ds);
/* Append a deep copy of *det; returns the copy inside ds. */
struct wf_det *wf_dets_push_copy(struct wf_dets *ds, const struct wf_det *det);
/* Append a zeroed detection (class_name "", fresh detection_id, parent ids
 * "" , tracker none) for the caller to fill. */
struct wf_det *wf_dets_push_new(struct wf_dets *ds);
/* Keep only the detections whose keep[i] is true, in order. */
void wf_dets_keep(struct wf_dets *ds, const bool *keep);
void wf_det_copy(struct wf_det *dst, const struct wf_det *src); /* deep; dst uninitialised */
void wf_det_release(struct wf_det *d);
/* Replace an owned string field: wf_det_set_str(&d->class_name, "dog"). */
void wf_det_set_str(char **field, const char *s);
/* Set data keys of a root (or of image 'im') on every detection:
 * parent_id, image_dimensions, parent/root coordinates. */
void wf_det_attach_image(struct wf_det *d, const struct wf_image *im);

/* Convert a Roboflow inference response (model provider shape above) into
 * detections attached to image 'im'.  prediction_type like
 * "object-detection".  class_filter: JSON array of names or NULL. */
int wf_dets_from_inference(const json_t *resp, const struct wf_image *im,
                           const char *prediction_type, const char *inference_id,
                           const json_t *class_filter, struct wf_dets **out /* OUT */);
/* Serialize as serialise_sv_detections (WORKFLOWS.md 3.2).  New ref. */
json_t *wf_dets_serialize(const struct wf_dets *ds);
/* Move detections into root-image coordinates (coordinates_system parent). */
void wf_dets_to_root(struct wf_dets *ds);

/* ---- values flowing between steps ---------------------------------------- */
enum wf_vtype {
    WF_V_NULL = 0, /* None: empty / masked */
    WF_V_JSON,     /* any plain JSON value (numbers, strings, lists, dicts,
                      classification results) */
    WF_V_IMAGE,
    WF_V_DETS,
    WF_V_LIST,     /* list of values (dimension_collapse, crops of one image) */
    WF_V_DICT,     /* dict of values (selector dicts holding images/detections) */
};

/* Refcounted, immutable once published by a step.  Blocks never modify
 * a value they received: they clone (wf_dets_clone, vis_image_clone). */
struct wf_value {
    enum wf_vtype type; /* read-only */
    int _refs;          /* private */
    json_t *json;             /* WF_V_JSON: owned reference */
    struct wf_image *image;   /* WF_V_IMAGE: owned */
    struct wf_dets *dets;     /* WF_V_DETS: owned */
    size_t n;                 /* WF_V_LIST / WF_V_DICT: element count */
    struct wf_value **items;  /* WF_V_LIST / WF_V_DICT: owned references (may be NULL-typed) */
    char **keys;              /* WF_V_DICT: owned key strings */
};

/* Constructors take ownership of their argument and return a value with one
 * reference.  wf_value_json(NULL) is the null value. */
struct wf_value *wf_value_null(void);
struct wf_value *wf_value_json(json_t *j /* stolen */);
struct wf_value *wf_value_image(struct wf_image *im /* stolen */);
struct wf_value *wf_value_dets(struct wf_dets *ds /* stolen */);
struct wf_value *wf_value_list(size_t n); /* n null items to fill with wf_value_list_set */
void wf_value_list_set(struct wf_value *list, size_t i, struct wf_value *v /* stolen */);
struct wf_value *wf_value_dict_new(void);
void wf_value_dict_add(struct wf_value *dict, const char *key, struct wf_value *v /* stolen */);
/* Entry of a dict value by key, borrowed; NULL when absent. */
struct wf_value *wf_value_dict_get(const struct wf_value *dict, const char *key);
struct wf_value *wf_value_ref(struct wf_value *v);
void wf_value_unref(struct wf_value *v); /* accepts NULL */
static inline bool wf_value_is_null(const struct wf_value *v)
{
    return !v || v->type == WF_V_NULL || (v->type == WF_V_JSON && json_is_null(v->json));
}
/* Serialize any value as Roboflow's serialize_wildcard_kind; new ref.
 * quality: JPEG quality for images (0 = 95). */
json_t *wf_value_serialize(const struct wf_value *v, int quality);
/* Plain JSON view of a value without encoding images (images become their
 * serialized dict only when encode_images is true, else "<image>").
 * Used by query-language operations and string formatting.  New ref. */
json_t *wf_value_to_json(const struct wf_value *v, bool encode_images);

#endif
