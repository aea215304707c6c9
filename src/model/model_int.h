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
    struct model__ort *ort;
    OrtSession *sess;
    char *in_name;
    char *out_names[MODEL_MAX_OUTPUTS];
    size_t n_out;
    json_t *info;               /* model_describe() source */
};

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

/* preproc.c */
void model__letterbox_plan(const struct model *m, int img_w, int img_h, struct model_letterbox *lb,
                           int *rw, int *rh, int *px, int *py);

/* postproc.c */
int model__decode(const struct model *m, const float *out0, const int64_t *shape0, int rank0,
                  const float *protos, const int64_t *pshape, int b,
                  const struct model_letterbox *lb, const struct model_params *p,
                  struct model_result *r);

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
