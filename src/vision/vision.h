/*
 * vision — images in memory and the primitives the workflow engine and the
 * models need: decode/encode, content sniffing, crop, resize, letterbox,
 * colour conversion, drawing, text (FreeType) and video probing/decoding.
 *
 * Pixels always travel as struct vis_image, never as a bare pointer.
 * Images are 8-bit interleaved; the engine's working format is BGR, as in
 * Roboflow's Python (cv2) code, so that colours and serialized JPEGs match.
 *
 * Ownership: every function that returns a `struct vis_image *` through an
 * out-parameter or return value hands the caller a heap image that the
 * caller frees with vis_image_free().  Views (vis_image_view) are embedded
 * structs that borrow the parent's pixels: valid while the parent lives
 * and is not freed; they need no free (vis_image_free on a heap copy of a
 * view struct frees only the struct).  Byte buffers returned by encoders
 * are malloc'd; the caller frees them with free().
 *
 * Errors: functions returning int give 0 or a negative base.h code:
 * ERR_PARSE (corrupt input), ERR_LIMIT (beyond VIS_MAX_PIXELS or another
 * bound), ERR_UNSUPPORTED (a format or variant not handled), ERR_INVALID
 * (bad arguments, e.g. a crop outside the image), ERR_NOMEM.
 * Out-parameters are written only on success.
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
/* Maximum side of any image (decoded or created). */
#define VIS_MAX_SIDE 65535

/* ---- images ------------------------------------------------------------ */

/* New image, pixels zeroed, stride = w * channels.  NULL when w or h is
 * <= 0, w*h exceeds VIS_MAX_PIXELS, a side exceeds VIS_MAX_SIDE, or OOM.
 * Caller frees with vis_image_free(). */
struct vis_image *vis_image_new(int w, int h, enum vis_fmt fmt);
/* Frees the pixels (unless a view) and the struct; accepts NULL. */
void vis_image_free(struct vis_image *img);
/* Deep copy (tight stride); NULL on OOM.  Works on views too. */
struct vis_image *vis_image_clone(const struct vis_image *img);
static inline uint8_t *vis_px(const struct vis_image *img, int x, int y)
{
    return img->px + (size_t)y * (size_t)img->stride + (size_t)x * (size_t)img->fmt;
}
static inline int vis_channels(const struct vis_image *img) { return (int)img->fmt; }

/* ---- sniffing, probing, decoding, encoding ----------------------------- */

/* Content sniffing: which image container the bytes hold (magic bytes). */
enum vis_type { VIS_TYPE_UNKNOWN = 0, VIS_TYPE_JPEG, VIS_TYPE_PNG, VIS_TYPE_WEBP, VIS_TYPE_BMP };
enum vis_type vis_sniff(const void *data, size_t len);
const char *vis_type_mime(enum vis_type t); /* "image/jpeg", ...; NULL for unknown */
const char *vis_type_ext(enum vis_type t);  /* "jpg", "png", "webp", "bmp"; NULL */

/* Decode JPEG/PNG/WebP/BMP bytes to BGR.  Returns 0 and *out (caller
 * frees with vis_image_free) or <0 (ERR_PARSE for corrupt or truncated
 * data — JPEG decoder warnings count as errors —, ERR_LIMIT beyond
 * VIS_MAX_PIXELS, ERR_UNSUPPORTED for an unknown type or variant, e.g.
 * CMYK JPEG, compressed BMP).  Alpha is dropped (as cv2.IMREAD_COLOR),
 * 16-bit PNG is reduced to 8 bits, gray and paletted inputs are expanded.
 * The EXIF orientation of JPEGs (tag 0x0112) is applied, as cv2.imdecode
 * does; vis_decode_ex with VIS_DECODE_IGNORE_ORIENTATION skips it. */
int vis_decode(const void *data, size_t len, struct vis_image **out);
enum { VIS_DECODE_IGNORE_ORIENTATION = 1 };
int vis_decode_ex(const void *data, size_t len, int flags, struct vis_image **out);
/* JPEG only: DCT-scaled decode at 1/denom size (denom 1, 2, 4 or 8), far
 * cheaper than a full decode + resize for big inputs.  Result size is
 * ceil(w/denom) x ceil(h/denom) (before EXIF orientation).  Non-JPEG
 * input: ERR_UNSUPPORTED.  ERR_INVALID for another denom. */
int vis_decode_jpeg_scaled(const void *data, size_t len, int denom, struct vis_image **out);
/* Decode, using the largest JPEG DCT reduction that still leaves both
 * sides >= min_w x min_h (of the unrotated image); other formats decode at
 * full size.  Use it when the image will be shrunk to about that size. */
int vis_decode_fit(const void *data, size_t len, int min_w, int min_h, struct vis_image **out);
/* Read only the dimensions from the header (bounded: never reads past
 * len, never decodes pixels).  The dimensions are those stored in the file
 * (EXIF orientation not applied).  They are not checked against
 * VIS_MAX_PIXELS: compare them yourself.  ERR_PARSE when the header is
 * missing or malformed, ERR_UNSUPPORTED for an unknown type.  type/w/h may
 * be NULL. */
int vis_probe(const void *data, size_t len, enum vis_type *type, int *w, int *h);
/* EXIF orientation (1..8) of a JPEG, 1 when absent or unreadable. */
int vis_jpeg_orientation(const void *data, size_t len);
/* Encode to JPEG (quality 1..100, 4:2:0 like cv2.imencode) or PNG (zlib
 * level 1 like cv2's default).  GRAY, BGR and BGRA input (BGRA: alpha is
 * dropped for JPEG and kept for PNG).  *out is malloc'd, caller frees. */
int vis_encode_jpeg(const struct vis_image *img, int quality, uint8_t **out, size_t *len);
int vis_encode_png(const struct vis_image *img, uint8_t **out, size_t *len);

#endif
