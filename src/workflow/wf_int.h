/*
 * wf_int.h — private to the workflow module: the compiled representation,
 * the registry and the query language.
 */
#ifndef VBATCH_WF_INT_H
#define VBATCH_WF_INT_H

#include <stdarg.h>

#include "base/base.h"
#include "workflow/wf_block.h"

/* block families of this module besides the public ones of wf_block.h */
extern const struct wf_block *const wf_blocks_transform[];
extern const struct wf_block *const wf_blocks_fusion[];
extern const struct wf_block *const wf_blocks_analytics[];
extern const struct wf_block *const wf_blocks_measure[];
extern const struct wf_block *const wf_blocks_stateful[];
extern const struct wf_block *const wf_blocks_time[];
/* UTC offset in seconds of IANA zone name at Unix time t (TZif files of the
 * system tz database); ERR_NOTFOUND when the zone is not installed. */
int wf__tz_offset(const char *name, int64_t t, int *offset);
extern const struct wf_block *const wf_blocks_video_analytics[]; /* blocks/video_analytics.c */

/* assign.c: optimal (minimum-cost) assignment of an n x m cost matrix
 * (row-major), n <= m: col_of[i] for every row.  O(n^2 m). */
void wf__assign_min(const double *cost, int n, int m, int *col_of);
extern const struct wf_block *const wf_blocks_video_viz[];       /* blocks/video_viz.c */
extern const struct wf_block *const wf_blocks_motion[];          /* blocks/motion.c */
extern const struct wf_block *const wf_blocks_zone[];            /* blocks/zone.c */
extern const struct wf_block *const wf_blocks_ocr[];             /* blocks/ocr.c */
extern const struct wf_block *const wf_blocks_sam[];             /* blocks/sam.c */
extern const struct wf_block *const wf_blocks_clip[];            /* blocks/clip.c */
extern const struct wf_block *const wf_blocks_sinks[];           /* blocks/sinks.c */
extern const struct wf_block *const wf_blocks_codes[];           /* blocks/codes.c */
extern const struct wf_block *const wf_blocks_vlm[];             /* blocks/vlm.c */
extern const struct wf_block *const wf_blocks_memory[];          /* blocks/memory.c */
extern const struct wf_block *const wf_blocks_overlap[];         /* blocks/overlap.c */
extern const struct wf_block *const wf_blocks_inline[];          /* inline.c (inner_workflow) */
extern const struct wf_block *const wf_blocks_ocsort[];          /* blocks/ocsort.c */
extern const struct wf_block *const wf_blocks_botsort[];         /* blocks/botsort.c */
extern const struct wf_block *const wf_blocks_rollup[];          /* blocks/rollup.c */
/* inline.c: when def has inner_workflow steps, *out = a new definition with
 * every one expanded into ordinary steps and 1 is returned; 0 (and *out
 * NULL) when there is none; <0 with a message on a malformed or too deep
 * nesting. */
int wf__inline_inner(const json_t *def, json_t **out, char *err, size_t errlen);
/* A state slot shared by every step of the run's state (wf_call_state is
 * per step): cache_get / cache_set keep their namespaces there. */
void **wf__call_shared_state(struct wf_call *c, const char *key, void (*free_fn)(void *));
extern const struct wf_block *const wf_blocks_warp[];            /* blocks/warp.c */
extern const struct wf_block *const wf_blocks_cv_extra[];        /* blocks/cv_extra.c */
extern const struct wf_block *const wf_blocks_sift[];            /* blocks/sift.c */
extern const struct wf_block *const wf_blocks_stitch[];          /* blocks/stitch.c */
extern const struct wf_block *const wf_blocks_snap[];            /* blocks/snap.c */
extern const struct wf_block *const wf_blocks_onvif[];           /* blocks/onvif.c */
/* blocks/onvif.c, for tests: the clock of the block (ms, monotonic), the
 * WS-Security password digest base64(SHA-1(nonce + created + password))
 * and a whole SOAP 1.2 envelope (new string) around body. */
extern int64_t (*wf__onvif_clock_ms)(void);
void wf__onvif_digest(const unsigned char *nonce, size_t nlen, const char *created, const char *password,
                      char out[29]);
char *wf__onvif_envelope(const char *user, const char *password, const unsigned char nonce[16], const char *created,
                         const char *body);
void wf__dets_nms(struct wf_dets *ds, double thr, bool merge);
/* The task name ("object-detection", ...) of a model block, NULL for other blocks. */
const char *wf__model_block_task(const struct wf_block *blk);

/* ---- registry -------------------------------------------------------------- */
/* Block by type identifier (canonical or alias); NULL when unknown. */
const struct wf_block *wf__block_find(const char *type);
/* Index of field 'name' in blk, or -1. */
int wf__field_index(const struct wf_block *blk, const char *name);
/* Parsed default of field f (borrowed, lives for the process). */
const json_t *wf__field_default(const struct wf_block *blk, size_t f);
/* Validate value v for field f; message into err. */
int wf__field_check(const struct wf_field *f, const struct wf_value *v, char *err, size_t errlen);
int wf__json_check(const struct wf_field *f, const json_t *j, char *err, size_t errlen);

/* ---- compiled workflow ------------------------------------------------------ */
enum wf_in_type { WF_IN_IMAGE, WF_IN_VIDEO_META, WF_IN_BATCH, WF_IN_PARAM };

struct wf_cinput {
    char *name;
    enum wf_in_type type;
    json_t *def;   /* default_value (params), owned, may be NULL */
    unsigned kinds;
};

/* A resolved reference: an input, one output of a step, or all outputs. */
enum wf_sel_type { WF_SEL_INPUT, WF_SEL_OUT, WF_SEL_ALL };
struct wf_sel {
    enum wf_sel_type type;
    int idx; /* input index or step index (in definition order) */
    int out; /* output index for WF_SEL_OUT */
};

/* How one field is provided. */
enum wf_bind_type { WF_B_LITERAL, WF_B_SEL, WF_B_LIST, WF_B_DICT };
struct wf_bind {
    enum wf_bind_type type;
    json_t *lit;            /* WF_B_LITERAL: owned */
    struct wf_sel sel;      /* WF_B_SEL */
    size_t n;               /* WF_B_LIST / WF_B_DICT */
    struct wf_bind *items;  /* owned */
    char **keys;            /* WF_B_DICT: owned */
};

struct wf_cstep {
    char *name;
    const struct wf_block *blk;
    json_t *def;               /* the step object (owned ref) */
    struct wf_bind *binds;     /* blk->nfields */
    char **outs;               /* output names (static + dynamic) */
    unsigned *out_kinds;
    size_t nouts;
    int space;                 /* index space run() iterates over */
    int out_space;             /* index space of the outputs */
    int *ctl;                  /* flow-control steps gating this step */
    size_t nctl;
    int *next;                 /* flow control: targets (step indices) */
    size_t nnext;
};

/* Index spaces: 0 = scalar (one element), 1 = the input batch, then one per
 * dimensionality-raising step.  An element of space s > 1 has a parent in
 * space parent[s]. */
struct wf_cspace {
    int parent; /* -1 for space 0; 0 for space 1 */
    int depth;  /* 0 scalar, 1 inputs, 2 crops, ... */
    int creator; /* step index or -1 */
};

struct wf_coutput {
    char *name;
    struct wf_sel sel;
    bool parent_coords;
};

struct wf_workflow {
    struct wf_cinput *inputs;
    size_t ninputs;
    struct wf_cstep *steps;
    size_t nsteps;
    int *order; /* topological order of step indices */
    struct wf_coutput *outputs;
    size_t noutputs;
    struct wf_cspace *spaces;
    size_t nspaces;
    char **image_inputs; /* names of WF_IN_IMAGE inputs, borrowed from inputs */
    size_t nimage_inputs;
};

/* Space of the data a selector refers to. */
int wf__sel_space(const struct wf_workflow *wf, const struct wf_sel *s);

/* ---- query language ------------------------------------------------------- */
struct wf_ql_ctx {
    const struct wf_value *params; /* WF_V_DICT of named operands, or NULL */
    const struct wf_det *cur;      /* current detection for "_" in DetectionsFilter */
    const struct wf_dets *cur_set; /* the set cur belongs to */
    char *err;
    size_t errlen;
};
/* Apply an operations chain (JSON array) to v; *out new ref. */
int wf__ql_apply(struct wf_ql_ctx *cx, const json_t *ops, struct wf_value *v,
                 struct wf_value **out);
/* Evaluate a StatementGroup / BinaryStatement / UnaryStatement. */
int wf__ql_eval(struct wf_ql_ctx *cx, const json_t *stmt, bool *result);
/* Syntax check at compile time. */
int wf__ql_check_ops(const json_t *ops, char *err, size_t errlen);
int wf__ql_check_stmt(const json_t *stmt, int depth, char *err, size_t errlen);

/* ---- profiling ---------------------------------------------------------------- */
/* Per-thread hook called by wf_run() after each step with the wall time the
 * step took (inputs resolved, block run, outputs stored).  For benchmarks;
 * NULL disables it. */
void wf__set_step_timing(void (*fn)(void *ud, const char *step, int64_t ns), void *ud);

/* ---- misc helpers ------------------------------------------------------------ */
void wf__errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
json_t *wf__image_serialize(const struct wf_image *im, int quality);
double wf__round_half_even(double x);
json_t *wf__real(double x);
/* Python str() of a JSON value (strings as is; containers with repr() of
 * their items: single quotes, True/False/None, float repr).  Caller frees. */
char *wf__py_str(const json_t *j); /* json_real, or integer-valued reals kept real */
struct wf_image *wf__image_from_input(const struct vis_image *px, const char *parent_id);

#endif
