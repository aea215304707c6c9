/*
 * vision — images in memory and the primitives the workflow engine and the
 * models need: decode/encode, content sniffing, crop, resize, letterbox,
 * colour conversion, drawing, text (FreeType) and video probing/decoding.
 *
 * Pixels always travel as struct vis_image, never as a bare pointer.
 * Images are 8-bit interleaved; the engine's working format is BGR, as in
 * Roboflow's Python (cv2) code, so that colours and serialized JPEGs match.
 *
 * Thread safety: functions are reentrant; an image may be read by many
 * threads at once but written by one.
 */
#ifndef VBATCH_VISION_H
#define VBATCH_VISION_H

#include <stddef.h>
#include <stdint.h>

enum vis_fmt {
    VIS_GRAY = 1, /* 1 channel */
    VIS_BGR = 3,  /* 3 channels, B G R */
    VIS_BGRA = 4, /* 4 channels */
};

struct vis_image {
    int w, h;          /* pixels, > 0 */
    int stride;        /* bytes per row, >= w * channels */
    enum vis_fmt fmt;  /* channel count == (int)fmt */
    uint8_t *px;       /* owned by the image unless it is a view */
    int _view;         /* private: 1 when px is borrowed from a parent */
};

/* Maximum pixels accepted from a decoder (w*h), guarding memory. */
#define VIS_MAX_PIXELS (100u * 1000u * 1000u)

/* New image, pixels zeroed.  NULL when w*h is too large or OOM. */
struct vis_image *vis_image_new(int w, int h, enum vis_fmt fmt);
void vis_image_free(struct vis_image *img); /* accepts NULL */
struct vis_image *vis_image_clone(const struct vis_image *img);
static inline uint8_t *vis_px(const struct vis_image *img, int x, int y)
{
    return img->px + (size_t)y * (size_t)img->stride + (size_t)x * (size_t)img->fmt;
}

/* Content sniffing: which image container the bytes hold. */
enum vis_type { VIS_TYPE_UNKNOWN = 0, VIS_TYPE_JPEG, VIS_TYPE_PNG, VIS_TYPE_WEBP, VIS_TYPE_BMP };
enum vis_type vis_sniff(const void *data, size_t len);
const char *vis_type_mime(enum vis_type t); /* "image/jpeg", ...; NULL for unknown */

/* Decode JPEG/PNG/WebP/BMP bytes to BGR.  Returns 0 and *out (caller
 * frees with vis_image_free) or <0 (ERR_PARSE for corrupt data, ERR_LIMIT
 * beyond VIS_MAX_PIXELS, ERR_UNSUPPORTED for an unknown type). */
int vis_decode(const void *data, size_t len, struct vis_image **out);
/* Read only the dimensions from the header. */
int vis_probe(const void *data, size_t len, enum vis_type *type, int *w, int *h);
/* Encode to JPEG (quality 1..100) or PNG; *out is malloc'd. */
int vis_encode_jpeg(const struct vis_image *img, int quality, uint8_t **out, size_t *len);
int vis_encode_png(const struct vis_image *img, uint8_t **out, size_t *len);

#endif
