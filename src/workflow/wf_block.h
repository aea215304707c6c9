/*
 * wf_block.h — how a block family file declares and implements blocks.
 *
 * A block family lives in src/workflow/blocks/<family>.c and exports one
 * NULL-terminated table that the registry (registry.c) links in:
 *
 *     const struct wf_block *const wf_blocks_visualization[] = {
 *         &bounding_box_v1, &label_v1, &label_v2, NULL,
 *     };
 *
 * A block is a static const struct wf_block: its type identifiers (the
 * canonical "roboflow_core/<family>@vN" first, then legacy aliases such as
 * "BoundingBoxVisualization"), its manifest (fields with kinds, value types
 * and defaults, from spec/blocks.json), its outputs, and a run function.
 *
 * HOW A BLOCK RUNS
 * The executor resolves every field for every batch element the step runs on
 * (selectors replaced by values, literals and defaults validated) and calls
 * run() once per step with a struct wf_call holding n elements: element i is
 * one image (or one crop, when the step works on crops).  Elements that are
 * masked by flow control, or that have an empty (None) input, are not passed
 * (unless the block sets WF_BLOCK_ACCEPTS_EMPTY): their outputs are None.
 * run() loops over i, reads fields with the wf_arg_* helpers and sets each
 * output with wf_out_set().  An output left unset is None.
 *
 *     static int bbox_run(struct wf_call *c)
 *     {
 *         for (size_t i = 0; i < wf_call_n(c); i++) {
 *             const struct wf_image *im = wf_arg_image(c, i, "image");
 *             const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
 *             int thickness = (int)wf_arg_int(c, i, "thickness");
 *             struct vis_image *px = vis_image_clone(im->img);
 *             if (!px)
 *                 return wf_call_fail(c, "out of memory");
 *             ... draw ds on px ...
 *             wf_out_image(c, i, "image", im, px);   // px ownership taken
 *         }
 *         return 0;
 *     }
 *
 * Values received are borrowed for the call and must not be modified; a
 * block that changes detections clones them first (wf_dets_clone) and a
 * visualization draws on vis_image_clone(im->img) (copy_image=true; with
 * copy_image=false it may still clone: values are shared between steps).
 *
 * Threads: run() is called on the thread of wf_run(); different runs of
 * one compiled workflow run concurrently, so blocks keep no global mutable
 * state.
 */
#ifndef VBATCH_WF_BLOCK_H
#define VBATCH_WF_BLOCK_H

#include "workflow/workflow.h"

/* ---- kinds (Roboflow kinds, for compile-time selector checks) ------------ */
/* Bit set; 0 in a field means "any kind" (Selector()). */
enum {
    WF_K_IMAGE = 1u << 0,          /* image */
    WF_K_OD = 1u << 1,             /* object_detection_prediction */
    WF_K_IS = 1u << 2,             /* instance_segmentation_prediction */
    WF_K_KP = 1u << 3,             /* keypoint_detection_prediction */
    WF_K_CLS = 1u << 4,            /* classification_prediction */
    WF_K_STRING = 1u << 5,         /* string (also inference_id, model ids) */
    WF_K_INT = 1u << 6,            /* integer */
    WF_K_FLOAT = 1u << 7,          /* float, float_zero_to_one */
    WF_K_BOOL = 1u << 8,           /* boolean */
    WF_K_LIST = 1u << 9,           /* list_of_values */
    WF_K_DICT = 1u << 10,          /* dictionary */
    WF_K_VIDEO_META = 1u << 11,    /* video_metadata */
    WF_K_ZONE = 1u << 12,          /* zone / point lists */
    WF_K_COLOR = 1u << 13,         /* rgb_color */
    WF_K_BYTES = 1u << 14,         /* bytes */
    WF_K_EMBEDDING = 1u << 15,     /* embedding (a list of floats: CLIP) */
};
#define WF_K_DETS (WF_K_OD | WF_K_IS | WF_K_KP) /* any detections */
#define WF_K_NUMBER (WF_K_INT | WF_K_FLOAT)

/* ---- field value types (validation of literals and resolved values) ------ */
enum wf_ftype {
    WF_FT_ANY = 0,   /* anything */
    WF_FT_STRING,    /* JSON string */
    WF_FT_INT,       /* integer (a float with integral value is accepted) */
    WF_FT_INT_POS,   /* integer > 0 */
    WF_FT_INT_NONNEG,/* integer >= 0 */
    WF_FT_FLOAT,     /* number */
    WF_FT_FLOAT01,   /* number in [0, 1] */
    WF_FT_BOOL,      /* true/false */
    WF_FT_LIST,      /* JSON array */
    WF_FT_DICT,      /* JSON object */
    WF_FT_ENUM,      /* string, one of wf_field.choices */
    WF_FT_IMAGE,     /* an image value (selector only) */
    WF_FT_DETS,      /* a detections value (selector only) */
    WF_FT_COLOR,     /* "#RRGGBB", "rgb(r, g, b)", "(b, g, r)" tuple, list of 3 ints or a name */
};

/* Field flags. */
enum {
    WF_F_NULLABLE = 1u << 0,  /* null is a valid value (implied by a "null" default) */
    WF_F_NO_SELECTOR = 1u << 1, /* literal only (e.g. case_insensitive) */
    WF_F_SELECTOR_ONLY = 1u << 2, /* must be a selector (images, predictions) */
    WF_F_SELECTOR_LIST = 1u << 3, /* a list whose items may be selectors
                                     (predictions_batches, data of first_non_empty):
                                     resolved to a WF_V_LIST */
    WF_F_SELECTOR_DICT = 1u << 4, /* a dict whose values may be selectors
                                     (operations_parameters, columns_data):
                                     resolved to a WF_V_DICT */
    WF_F_STEP_SELECTORS = 1u << 5, /* flow-control targets: "$steps.x" list
                                      (next_steps) or dict of lists/strings (cases) */
    WF_F_RAW = 1u << 6,       /* kept as literal JSON, not validated further
                                 (query-language operations, statements) */
    WF_F_DIM_UP = 1u << 7,    /* input dimensionality offset +1: the step runs
                                 one level above this field's data and the field
                                 arrives as a WF_V_LIST of the children
                                 (detections_stitch predictions, dimension_collapse data) */
    WF_F_REFERENCE = 1u << 8, /* with WF_F_DIM_UP blocks: this field names the level */
};

struct wf_field {
    const char *name;            /* key in the step definition */
    const char *alias;           /* second accepted key ("image" for "images"), or NULL */
    enum wf_ftype type;
    const char *def;             /* JSON text of the default, NULL = required */
    unsigned kinds;              /* accepted kinds for selectors, 0 = any */
    unsigned flags;              /* WF_F_* */
    const char *const *choices;  /* WF_FT_ENUM: NULL-terminated allowed values */
};

struct wf_output {
    const char *name;
    unsigned kind; /* WF_K_* of the value, 0 = any */
};

/* Block flags. */
enum {
    WF_BLOCK_ACCEPTS_EMPTY = 1u << 0, /* receives elements with None inputs */
    WF_BLOCK_FLOW_CONTROL = 1u << 1,  /* run() decides with wf_out_next_steps() */
    WF_BLOCK_WHOLE_BATCH = 1u << 2,   /* run() must see every element of the batch,
                                         even masked ones (csv_formatter) */
    WF_BLOCK_DYN_OUTPUTS = 1u << 3,   /* extra outputs named by the list literal in
                                         field dyn_outputs_field (json_parser), or, when
                                         that field is a dict of lists, "<key>_<item>"
                                         for the keys of the step's 'data' dict
                                         (data_aggregator) */
    WF_BLOCK_DYN_LOWER = 1u << 4,     /* with WF_BLOCK_DYN_OUTPUTS: the outputs are the
                                         names lowercased (environment_secrets_store) */
};

struct wf_call; /* one invocation of a step over n batch elements; opaque */

struct wf_block {
    const char *const *types;       /* NULL-terminated: canonical id, then aliases */
    const struct wf_field *fields;
    size_t nfields;
    const struct wf_output *outputs;
    size_t noutputs;
    int out_dim_offset;             /* +1: each element yields a WF_V_LIST that becomes
                                       a new batch level (dynamic_crop, image_slicer) */
    unsigned flags;                 /* WF_BLOCK_* */
    const char *dyn_outputs_field;  /* WF_BLOCK_DYN_OUTPUTS only */
    int (*run)(struct wf_call *c);  /* 0 or <0 after wf_call_fail() */
    /* Optional compile-time check of the step definition (e.g. a value that
     * blocks.json constrains beyond its type).  Write a message and return <0. */
    int (*check)(const json_t *step, char *err, size_t errlen);
};

/* Block tables of each family (NULL-terminated), linked by registry.c. */
extern const struct wf_block *const wf_blocks_core[];
extern const struct wf_block *const wf_blocks_models[];
extern const struct wf_block *const wf_blocks_visualization[];
extern const struct wf_block *const wf_blocks_classical_cv[];

/* ---- inside run(): reading inputs ------------------------------------------ */
size_t wf_call_n(const struct wf_call *c);
const char *wf_call_step_name(const struct wf_call *c);
const struct wf_env *wf_call_env(const struct wf_call *c);
/* The state slot of this step for key (a video_identifier): *slot is NULL
 * the first time; the block stores its object there, and free_fn frees it
 * with the state.  NULL when the state is full (WF_STATE_MAX entries). */
#define WF_STATE_MAX 4096
void **wf_call_state(struct wf_call *c, const char *key, void (*free_fn)(void *));
/* Record "step '<name>': <message>" as the run's error; returns ERR_INVALID
 * so that a block can write `return wf_call_fail(c, "...")`. */
int wf_call_fail(struct wf_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resolved value of field 'name' for element i (borrowed, never NULL: a
 * None value is a WF_V_NULL value).  Aborts on a name the block does not
 * declare (a bug in the block). */
const struct wf_value *wf_arg(const struct wf_call *c, size_t i, const char *name);
/* Typed views; NULL / fallback when the value is None or of another type
 * (the manifest's type validation already ran, so a block can rely on the
 * declared WF_FT_* type for non-null values). */
const struct wf_image *wf_arg_image(const struct wf_call *c, size_t i, const char *name);
const struct wf_dets *wf_arg_dets(const struct wf_call *c, size_t i, const char *name);
const json_t *wf_arg_json(const struct wf_call *c, size_t i, const char *name); /* borrowed */
double wf_arg_double(const struct wf_call *c, size_t i, const char *name, double fallback);
int64_t wf_arg_int(const struct wf_call *c, size_t i, const char *name, int64_t fallback);
bool wf_arg_bool(const struct wf_call *c, size_t i, const char *name, bool fallback);
/* String value; NULL for None or non-strings.  Borrowed for the call. */
const char *wf_arg_str(const struct wf_call *c, size_t i, const char *name);

/* ---- inside run(): writing outputs ----------------------------------------- */
/* Set output 'name' of element i, taking ownership of v (NULL = None). */
void wf_out_set(struct wf_call *c, size_t i, const char *name, struct wf_value *v);
/* Convenience: new image with the metadata of 'like' and pixels px (owned). */
void wf_out_image(struct wf_call *c, size_t i, const char *name, const struct wf_image *like,
                  struct vis_image *px);
void wf_out_dets(struct wf_call *c, size_t i, const char *name, struct wf_dets *ds);
void wf_out_json(struct wf_call *c, size_t i, const char *name, json_t *j /* stolen */);
/* Flow control blocks: select the steps to run for element i (names
 * without "$steps.", borrowed).  Not calling it terminates the branch. */
void wf_out_next_steps(struct wf_call *c, size_t i, const char *const *steps, size_t n);

/* ---- colours and palettes (shared by visualizations) ----------------------- */
/* Parse a colour given as "#RRGGBB", "rgb(r, g, b)", "(r, g, b)" or a
 * supervision colour name ("WHITE", "BLACK", "RED", ...).  Writes B, G, R. */
int wf_color_parse(const json_t *v, uint8_t bgr[3]);

#endif
