/*
 * blocks/viz_int.h — helpers shared inside the visualization block family
 * (visualization.c) and visible to its unit tests: supervision-compatible
 * colours and palettes, anchors, mask rasterization and label drawing.
 * Not part of the workflow module's public interface.
 */
#ifndef VBATCH_VIZ_INT_H
#define VBATCH_VIZ_INT_H

#include "workflow/wf_block.h"

/* sv.ColorLookup */
enum { VIZ_AXIS_INDEX = 0, VIZ_AXIS_CLASS = 1, VIZ_AXIS_TRACK = 2 };

/* sv.Position, in the order of the manifests' Literal */
enum {
    VIZ_POS_CENTER = 0, VIZ_POS_CENTER_LEFT, VIZ_POS_CENTER_RIGHT, VIZ_POS_TOP_CENTER,
    VIZ_POS_TOP_LEFT, VIZ_POS_TOP_RIGHT, VIZ_POS_BOTTOM_LEFT, VIZ_POS_BOTTOM_CENTER,
    VIZ_POS_BOTTOM_RIGHT, VIZ_POS_CENTER_OF_MASS,
};

struct viz_palette {
    size_t n;
    struct vis_color *c; /* owned */
};

/* inference's str_to_color: "#RGB", "#RRGGBB", "rgb(r, g, b)", "bgr(b, g, r)" or
 * an sv.Color name (WHITE, BLACK, GREY, RED, GREEN, BLUE, YELLOW, ROBOFLOW). */
int viz__color_parse(const char *s, struct vis_color *out);
/* getPalette: DEFAULT, ROBOFLOW, LEGACY or CUSTOM (custom: JSON list of
 * colour strings).  ERR_UNSUPPORTED for matplotlib palettes.  Release with
 * viz__palette_release. */
int viz__palette_init(struct viz_palette *p, const char *name, const json_t *custom, char *err,
                      size_t errlen);
void viz__palette_release(struct viz_palette *p);
int viz__axis_parse(const char *s);
int viz__pos_parse(const char *s);
/* Colour of the detection at index idx with class_id / tracker_id. */
int viz__color_for(const struct viz_palette *p, int axis, size_t idx, int class_id,
                   int64_t tracker_id, struct vis_color *out, char *err, size_t errlen);
/* numpy astype(int) of a coordinate (clamped to +-1e7, NaN -> 0). */
int viz__trunc(double v);
/* Anchor point of a detection (sv get_anchors_coordinates + astype(int)). */
int viz__anchor(const struct wf_det *d, int pos, int img_w, int img_h, int *ax, int *ay);
/* The mask of d rasterized (GRAY, 255 inside) over its clipped bounding
 * box at (*ox, *oy); *out NULL when empty or d has no mask. */
int viz__det_mask(const struct wf_det *d, int img_w, int img_h, struct vis_image **out, int *ox,
                  int *oy);
/* label_text.build_detection_labels for one detection. */
int viz__det_label(const struct wf_dets *ds, size_t k, const char *text, int img_w, int img_h,
                   bool masks, char *out, size_t cap, char *err, size_t errlen);

struct viz_label_style {
    struct vis_font *font; /* borrowed */
    int px;                /* text pixel size (vis_text_px_for_scale(scale)) */
    double scale;          /* cv2 fontScale */
    int thickness, padding, radius, pos;
    struct vis_color text_color;
};
/* sv.LabelAnnotator for one label anchored at (ax, ay); out_xyxy (may be
 * NULL) receives the background rectangle. */
int viz__label_draw(struct vis_image *img, const struct viz_label_style *st, const char *text,
                    int ax, int ay, struct vis_color bg, int out_xyxy[4]);
int viz__text_size(struct vis_font *f, const char *s, double scale, int thickness, int *w,
                   int *h);
int viz__text_draw(struct vis_image *img, struct vis_font *f, const char *s, int px, int x, int y,
                   int thickness, struct vis_color c);
void viz__rounded_rect(struct vis_image *img, int x1, int y1, int x2, int y2, struct vis_color c,
                       int radius);

#endif
