/*
 * model_int.h — private to src/model/: the model struct and the helpers the
 * files of the module share (runtime loading, pre- and post-processing).
 */
#ifndef VBATCH_MODEL_INT_H
#define VBATCH_MODEL_INT_H

#include <onnxruntime_c_api.h>
#include <pthread.h>

#include "model/model.h"

#define MODEL_MAX_CLASSES 100000
#define MODEL_MAX_OUTPUTS 8
#define MODEL_MAX_BATCH 16
#define MODEL_MAX_INPUT 8192      /* largest accepted input side, pixels */
#define MODEL_MAX_CONFIG (4u << 20) /* class_names.txt / json files */

/* The process-wide ONNX Runtime: one library, one OrtEnv. */
struct model__ort {
    void *dl;
    const OrtApi *api;
    OrtEnv *env;
    OrtMemoryInfo *cpu_mem;
    char path[1024];
    int refs; /* registries using it; guarded by the global lock */
};
int model__ort_acquire(const char *path, struct model__ort **out, char *err, size_t errlen);
void model__ort_release(struct model__ort *ort);
/* Format an OrtStatus into err and release it; returns ERR_INTERNAL (or
 * ERR_INVALID for model load errors when invalid is true). */
int model__ort_status(const OrtApi *api, OrtStatus *st, const char *what, char *err, size_t errlen);

enum model__resize { RESIZE_STRETCH = 0, RESIZE_LETTERBOX, RESIZE_CENTER_CROP };
enum model__contrast { CONTRAST_NONE = 0, CONTRAST_STRETCH, CONTRAST_EQUALIZE };

struct model__prep {
    enum model__resize resize;
    uint8_t pad;             /* letterbox colour (0, 114, 255) */
    bool static_crop;        /* percent box below */
    float crop_x0, crop_x1, crop_y0, crop_y1; /* 0..100 */
    enum model__contrast contrast;
    bool grayscale;
    bool bgr;                /* channel order of the tensor (false: RGB) */
    float scale;             /* divisor, 255 */
    float mean[3], std[3];   /* applied after scaling */
};

/* How a detection model's outputs are laid out (family.c decodes them). */
enum model__family {
    MODEL_FAMILY_YOLOV8 = 0, /* (N, 4+nc[+nm | +3k], A) channel-major: YOLOv8/v11,
                                non-end-to-end YOLO26 (and every non-detection task) */
    MODEL_FAMILY_YOLOV5,     /* (N, A, 5+nc): cx cy w h objectness class scores
                                (YOLOv5, YOLOv7) */
    MODEL_FAMILY_E2E,        /* (N, K, 6): x1 y1 x2 y2 score class, NMS-free
                                (YOLOv10, YOLO26 end-to-end, fused NMS) */
    MODEL_FAMILY_YOLONAS,    /* boxes (N, A, 4) xyxy + scores (N, A, nc) */
    MODEL_FAMILY_RFDETR,     /* dets (N, Q, 4) cxcywh in 0..1 + labels (N, Q, C)
                                logits: top-k, no NMS */
};

/* One output of a run, borrowed from ONNX Runtime. */
struct model__out {
    const float *data;
    int64_t shape[8];
    int rank;
};

struct model {
    int refs;                   /* atomic */
    char *id;
    char *ws;                   /* owning workspace, NULL: the operator's */
    char *dir;                  /* artefact folder, or NULL (in-memory) */
    char *tag;                  /* model_registry_add's tag, or NULL */
    enum model_task task;
    char **classes;             /* n_classes names */
    size_t n_classes;
    char **kpt_names;           /* n_kpt names (keypoint models) */
    size_t n_kpt;
    struct model__prep prep;
    bool fused_softmax;         /* classification output already probabilities */
    int in_w, in_h, in_c;       /* network input, NCHW */
    bool dyn_batch;             /* the batch dimension is symbolic */
    int fixed_batch;            /* when not dynamic */
    int nm;                     /* mask coefficients (segmentation) */
    int det_out, proto_out;     /* output indices */
    enum model__family family;  /* detection output layout */
    char *arch;                 /* architecture reported (yolov8, yolov5, rfdetr, ...) */
    int scores_out;             /* YOLO-NAS scores / RF-DETR logits output index */
    bool e2e_inclusive;         /* E2E: score >= threshold (YOLO26, fused NMS);
                                   false: > (YOLOv10) */
    int *class_map;             /* RF-DETR: logit class -> class id, -1 dropped
                                   (class_names_operations); NULL: identity */
    size_t n_class_map;
    struct model__ort *ort;
    OrtSession *sess;
    char *in_name;
    char *out_names[MODEL_MAX_OUTPUTS];
    size_t n_out;
    json_t *info;               /* model_describe() source */
    struct model__ocr *ocr;     /* OCR models: the two sessions and the dictionary */
    struct model__sam *sam;     /* SAM2 models: encoder and decoder sessions */
    struct model__clip *clip;   /* CLIP models: the two encoders and the tokenizer */
};

struct buf;
/* bundle.c: the files of a multi-file model, in place in the bundle's bytes. */
struct model__files {
    size_t n;
    struct model__file {
        char name[MODEL_BUNDLE_NAME_MAX + 1];
        const char *data;
        size_t len;
    } f[MODEL_BUNDLE_MAX_FILES];
};
/* Split a bundle (model_bundle_is) into its files (pointers into mem). */
int model__bundle_parse(const void *mem, size_t len, struct model__files *fs, char *err, size_t errlen);
/* The file of that name, or NULL. */
const struct model__file *model__files_get(const struct model__files *fs, const char *name);
/* Append one entry / the end blocks to a bundle being built. */
void model__bundle_add(struct buf *out, const char *name, const void *data, size_t len);
void model__bundle_finish(struct buf *out);

/* ocr.c: open the OCR parts of m (its ort acquired) from the folder dir
 * (or, when fs is not NULL, from those files of a bundle):
 * det.onnx, rec.onnx and dict.txt, or the names model.json gives under
 * "detector", "recognizer", "dictionary"; trial runs check shapes, the
 * class count against the dictionary and finite outputs.  Sets m->task.
 * ERR_INVALID etc. with a message naming the part at fault. */
int model__ocr_open(struct model *m, const char *dir, const struct model__files *fs,
                    const json_t *meta, uint64_t max_bytes,
                    int threads, bool spinning, const char *machine_type, char *err,
                    size_t errlen);
void model__ocr_free(struct model *m);
size_t model__ocr_dict_size(const struct model *m);

/* sam.c: open the SAM2 parts of m (its ort acquired) from a bundle's
 * encoder.onnx and decoder.onnx; checks names, shapes and trial runs.  Sets
 * m->task.  model__sam_infer: model_registry_infer of one image with its
 * params ("prompts", "multimask_output", "response_mask_format"). */
int model__sam_open(struct model *m, const struct model__files *fs, uint64_t max_bytes, int threads, bool spinning,
                    const char *machine_type, char *err, size_t errlen);
void model__sam_free(struct model *m);
int model__sam_infer(struct model *m, const json_t *params, const struct vis_image *img, json_t **out, char *err,
                     size_t errlen);
/* clip.c: open the CLIP parts of m (its ort acquired) from the folder dir:
 * visual.onnx, textual.onnx, merges.txt and optionally vocab.json, or the
 * names model.json gives under "visual", "textual", "merges", "vocab" (or,
 * when fs is not NULL, from those files of a bundle under their usual names);
 * trial runs check the shapes (one (N, D) output each, the same D) and
 * finite outputs.  Sets m->task.  ERR_INVALID etc. with a message naming
 * the part at fault. */
int model__clip_open(struct model *m, const char *dir, const struct model__files *fs,
                     const json_t *meta, uint64_t max_bytes, int threads, bool spinning,
                     const char *machine_type, char *err, size_t errlen);
void model__clip_free(struct model *m);

/* ort.c */
int model__session_open(struct model__ort *ort, const void *data, size_t len, int threads,
                        bool spinning, const char *machine_type, OrtSession **out, char *err,
                        size_t errlen);
int model__provider_check(struct model__ort *ort, const char *machine_type, char *err,
                          size_t errlen);
/* ONNX custom metadata value for key, malloc'd, or NULL. */
char *model__meta_lookup(struct model__ort *ort, OrtSession *sess, const char *key);
/* Run on a batch tensor; outs[] receive OrtValues the caller releases. */
int model__session_run(struct model *m, float *tensor, int batch, OrtValue **outs, char *err,
                       size_t errlen);

/* ort.c: what the families of several sessions (ocr.c, clip.c, sam.c)
 * share.  Input idx of s: element type, rank and dims (dims zeroed, and
 * not read, past rank 8); ERR_INVALID when it is not a tensor. */
int model__input_info(const OrtApi *api, OrtSession *s, size_t idx, ONNXTensorElementDataType *ty,
                      int64_t dims[8], size_t *rank);
/* A session of one input and one output: their names (malloc'd, the
 * caller's) and the input's model__input_info.  Messages name the session
 * as `what`; `expect` ends the one about the counts ("<what> has N inputs
 * and M outputs; <expect>"). */
int model__io1(const OrtApi *api, OrtSession *s, const char *what, const char *expect, char **in_name,
               char **out_name, ONNXTensorElementDataType *ty, int64_t dims[8], size_t *rank, char *err,
               size_t errlen);
/* An output value's element type, shape (rank <= 8), data (borrowed from
 * the value) and element count (negative dims count 0). */
struct model__view {
    ONNXTensorElementDataType ty;
    int64_t dims[8];
    size_t rank;
    void *data;
    size_t count;
};
int model__value_view(const OrtApi *api, const OrtValue *v, struct model__view *w);
/* Run s on one input tensor (data of bytes, shape/rank, type ty) for its
 * output out_name: *out, the caller releases it.  A failed run: the ORT
 * message after fail_what. */
int model__run1(struct model *m, OrtSession *s, const char *in_name, const char *out_name, void *data,
                size_t bytes, const int64_t *shape, size_t rank, ONNXTensorElementDataType ty,
                const char *fail_what, OrtValue **out, char *err, size_t errlen);
bool model__all_finite(const float *d, size_t n);
/* The file name model.json gives role key (no '/', not "." or ".."), else def. */
const char *model__part_name(const json_t *meta, const char *key, const char *def);
/* The file name of the folder dir, or of the bundle's files fs when not
 * NULL, read whole (at most max bytes) into *buf (malloc'd, NUL-ended). */
int model__read_part(const char *dir, const struct model__files *fs, const char *name, size_t max, char **buf,
                     size_t *len, char *err, size_t errlen);
/* model__read_part of an ONNX file, then model__session_open of it into
 * *out; a session error is prefixed with label ("text detector
 * (det.onnx)"). */
int model__part_session(struct model *m, const char *dir, const struct model__files *fs, const char *name,
                        const char *label, uint64_t max_bytes, int threads, bool spinning,
                        const char *machine_type, OrtSession **out, char *err, size_t errlen);

/* preproc.c */
void model__letterbox_plan(const struct model *m, int img_w, int img_h, struct model_letterbox *lb,
                           int *rw, int *rh, int *px, int *py);

/* postproc.c: decode image b of a batch run (outs: every output of the
 * model, in model order). */
int model__decode(const struct model *m, const struct model__out *outs, int b,
                  const struct model_letterbox *lb, const struct model_params *p,
                  struct model_result *r, char *err, size_t errlen);
/* Box in input pixels -> original-image pixels, rounded (Roboflow's
 * rescale + round); false when a coordinate is not finite. */
bool model__box_to_image(const struct model_letterbox *lb, float x1, float y1, float x2, float y2,
                         struct model_detection *d);

/* Prototype-mask polygon of one detection (YOLOv8-seg and YOLOv5/v7-seg):
 * m->nm coefficients at coef[k * coef_stride], prototypes (nm, ph, pw) of
 * the image, box in input pixels; mask_decode_mode as in the docs. */
int model__mask_polygon(const struct model *m, const float *coef, size_t coef_stride,
                        const float *protos, int ph, int pw, float bx1, float by1, float bx2,
                        float by2, const struct model_letterbox *lb, const struct model_params *p,
                        struct model_detection *det);
/* Polygon of the largest 8-connected component of a 0/1 mask (w x h;
 * overwritten), its outer boundary through pixel centres, shifted by
 * (ox, oy) into d->points.  0 with no points when the mask is empty. */
int model__mask_to_polygon(uint8_t *mask, int w, int h, float ox, float oy,
                           struct model_detection *d);

/* family.c */
/* Hints about the architecture from the package: model_config.json
 * "model_architecture", model_type.json "model_type", Ultralytics metadata
 * ("end2end", "description"), inference_config.json post_processing.  All
 * borrowed; NULL when absent. */
struct model__hints {
    const char *arch;        /* model_config model_architecture */
    const char *model_type;  /* model_type.json model_type */
    const char *ul_desc;     /* Ultralytics "description" */
    bool ul_end2end;         /* Ultralytics "end2end" is True */
    bool fused_nms;          /* inference_config post_processing: nms, fused */
    const json_t *class_ops; /* inference_config class_names_operations */
};
/* Choose the detection decoder from the hints and the trial-run output
 * shapes (od/orank, nout outputs).  Sets m->family, m->arch, m->det_out,
 * m->scores_out, m->class_map; ERR_INVALID with a message naming what was
 * found when nothing fits. */
int model__family_detect(struct model *m, const struct model__hints *h, int64_t od[][8],
                         const size_t *orank, size_t nout, const char *shapes, char *err,
                         size_t errlen);
/* Whether the architecture named (NULL: none) is decoded for task t:
 * unnamed, YOLOv8-like and unknown names for every task (the YOLOv8 heads
 * decide), RF-DETR for detection and instance segmentation, the other
 * families for detection only. */
bool model__arch_decodes(const char *name, enum model_task t);
/* Instance segmentation: RF-DETR's dets + labels + masks when the package
 * names RF-DETR or the outputs are that triple.  1: chosen (m->family,
 * det_out, scores_out, proto_out set); 0: not RF-DETR (try YOLOv8's);
 * <0: refused, message in err. */
int model__family_detect_seg(struct model *m, const struct model__hints *h, int64_t od[][8],
                             const size_t *orank, size_t nout, const char *shapes, char *err,
                             size_t errlen);
/* "YOLOv5/v7", "RF-DETR", ... for messages and model_describe. */
const char *model__family_label(enum model__family f);
/* Decoders of the non-YOLOv8 families (task detection). */
int model__decode_family(const struct model *m, const struct model__out *outs, int b,
                         const struct model_letterbox *lb, const struct model_params *p,
                         struct model_result *r, char *err, size_t errlen);

/* Semantic segmentation (semantic.c): decode logits (N, C, H, W) of batch
 * element b into r->class_mask / conf_mask at r->image_w x image_h (set by
 * the caller); and the Roboflow response of such a result (new ref). */
int model__decode_semantic(const struct model *m, const struct model__out *o, int b,
                           struct model_result *r, char *err, size_t errlen);
json_t *model__semantic_json(const struct model *m, const struct model_result *r);

/* Keep, for rle_masks, a copy of the region mask (values != 0) in d. */
void model__keep_mask(struct model_detection *d, const uint8_t *mask, int x0, int y0, int w,
                      int h);

void model__free(struct model *m);

/* true when an ORT call succeeded; a failure status is released. */
static inline bool model__ok(const OrtApi *api, OrtStatus *st)
{
    if (!st)
        return true;
    api->ReleaseStatus(st);
    return false;
}

#endif
