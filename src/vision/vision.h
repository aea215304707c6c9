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
 * threads at once but written by one.  A struct vis_font may be used from
 * any number of threads at once (it locks itself); a struct vis_video
 * belongs to one thread at a time.  Filters and drawing work in place and
 * allocate their scratch memory per call (try_alloc), so they fail with
 * ERR_NOMEM instead of aborting on huge images.
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
    /* Data a later stage attached to these pixels ahead of time (model
     * pre-processing done on a decode-ahead thread: model_prepare).  Owned
     * like px: vis_image_free calls aux_free(aux) unless the image is a
     * view, which borrows it.  vis_image_view() and the constructors set
     * both to NULL; whoever reads aux checks aux_free to know its type. */
    void *aux;
    void (*aux_free)(void *aux);
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
 * does; vis_decode_ex with VIS_DECODE_IGNORE_ORIENTATION skips it.  (EXIF
 * in PNG/WebP is ignored.)  GIF, TIFF and animated WebP: ERR_UNSUPPORTED. */
int vis_decode(const void *data, size_t len, struct vis_image **out);
enum {
    VIS_DECODE_IGNORE_ORIENTATION = 1,
    /* JPEG: accept data libjpeg only warns about (truncated scans, junk
     * before a marker), as cv2.imdecode does; missing pixels come out gray.
     * Without it such files are ERR_PARSE (what staging's content check
     * wants). */
    VIS_DECODE_LENIENT = 2,
};
int vis_decode_ex(const void *data, size_t len, int flags, struct vis_image **out);
/* JPEG only: DCT-scaled decode at 1/denom size (denom 1, 2, 4 or 8), far
 * cheaper than a full decode + resize for big inputs.  Result size is
 * ceil(w/denom) x ceil(h/denom) (before EXIF orientation).  Non-JPEG
 * input: ERR_UNSUPPORTED.  ERR_INVALID for another denom. */
int vis_decode_jpeg_scaled(const void *data, size_t len, int denom, struct vis_image **out);
/* Decode, using the largest JPEG DCT reduction that still leaves both
 * sides >= min_w x min_h (of the unrotated image); other formats decode at
 * full size.  Use it when the image will be shrunk to about that size and
 * speed matters more than agreeing with Python: the pixels then differ
 * from decode + cv2.resize by more than +-1 (DCT scaling is its own
 * filter).  EXIF orientation is applied. */
int vis_decode_fit(const void *data, size_t len, int min_w, int min_h, struct vis_image **out);
/* Read the file at path (at most max_bytes, else ERR_LIMIT) and decode
 * it as vis_decode does; -errno when it cannot be read. */
int vis_load_file(const char *path, size_t max_bytes, struct vis_image **out);
/* Read only the dimensions from the header (bounded: never reads past
 * len, never decodes pixels).  The dimensions are those stored in the file
 * (EXIF orientation not applied).  They are not checked against
 * VIS_MAX_PIXELS: compare them yourself.  ERR_PARSE when the header is
 * missing or malformed, ERR_UNSUPPORTED for an unknown type.  type/w/h may
 * be NULL. */
int vis_probe(const void *data, size_t len, enum vis_type *type, int *w, int *h);
/* Check, at memory speed, that the bytes are a whole image vis_decode
 * can take — what staging runs on every image it accepts: a known
 * container, header dimensions within VIS_MAX_SIDE / VIS_MAX_PIXELS, a
 * variant the decoders handle, and the whole stream present and well
 * framed (JPEG segments and scans up to EOI, PNG chunks with their CRCs up
 * to IEND, WebP RIFF and chunk sizes, BMP rows and palette indices; see
 * codec.c for the exact rules).  No pixel is decoded: entropy data that is
 * damaged yet well framed passes.  Animated WebP is refused
 * (ERR_UNSUPPORTED): vis_decode takes still images only.  Returns 0 and
 * sets *type (may be NULL), or <0 (ERR_UNSUPPORTED, ERR_PARSE, ERR_LIMIT)
 * and sets *why (may be NULL) to a static lowercase phrase naming the
 * problem, e.g. "truncated or corrupt JPEG data". */
int vis_check(const void *data, size_t len, enum vis_type *type, const char **why);
/* EXIF orientation (1..8) of a JPEG, 1 when absent or unreadable. */
int vis_jpeg_orientation(const void *data, size_t len);
/* Encode to JPEG (quality 1..100, 4:2:0 like cv2.imencode) or PNG (zlib
 * level 1 like cv2's default).  GRAY, BGR and BGRA input (BGRA: alpha is
 * dropped for JPEG and kept for PNG).  *out is malloc'd, caller frees. */
int vis_encode_jpeg(const struct vis_image *img, int quality, uint8_t **out, size_t *len);
int vis_encode_png(const struct vis_image *img, uint8_t **out, size_t *len);



/* ---- colours, views, crops, conversions --------------------------------- */

/* A colour in the working (BGR) order; for GRAY images the gray value is
 * computed from it with the cv2 weights, for BGRA alpha is set to 255. */
struct vis_color {
    uint8_t b, g, r;
};
#define VIS_RGB(R, G, B) ((struct vis_color){(uint8_t)(B), (uint8_t)(G), (uint8_t)(R)})

/* Intersect the rectangle x,y,w,h with the image bounds, in place.
 * Returns 1 when something remains, 0 when the result is empty. */
int vis_rect_clip(const struct vis_image *img, int *x, int *y, int *w, int *h);
/* A borrowed view of a rectangle of img (clipped to img): fills *out,
 * which shares img's pixels (writes through it modify img) and stays
 * valid while img lives.  No free needed.  ERR_INVALID when the clipped
 * rectangle is empty. */
int vis_image_view(const struct vis_image *img, int x, int y, int w, int h,
                   struct vis_image *out);
/* Copying crop of the rectangle clipped to img; *out is new (caller frees).
 * ERR_INVALID when the clipped rectangle is empty. */
int vis_crop(const struct vis_image *img, int x, int y, int w, int h, struct vis_image **out);
/* Fill the whole image (or view) with a colour. */
void vis_image_fill(struct vis_image *img, struct vis_color c);
/* Copy src into dst at (x, y), clipped; the formats must match
 * (ERR_INVALID otherwise).  src and dst must not be overlapping views of
 * one image. */
int vis_image_paste(struct vis_image *dst, const struct vis_image *src, int x, int y);
/* Convert between GRAY, BGR and BGRA (gray = cv2 BT.601 weights, rounded
 * like cv2.cvtColor; alpha added as 255 or dropped).  *out is new. */
int vis_convert(const struct vis_image *img, enum vis_fmt fmt, struct vis_image **out);
/* Swap the first and third channel in place (BGR <-> RGB, BGRA <-> RGBA);
 * no-op on GRAY. */
void vis_swap_rb(struct vis_image *img);
/* Apply EXIF-style orientation o (1..8) producing a new image. */
int vis_orient(const struct vis_image *img, int o, struct vis_image **out);

/* Affine warp like cv2.warpAffine(src, M, (w, h)) with INTER_LINEAR and a
 * constant border of colour `fill`: dst(x, y) = src(M^-1 (x, y)), where M
 * is the 2x3 forward matrix {a, b, c, d, e, f}: x' = a x + b y + c,
 * y' = d x + e y + f.  ERR_INVALID for a singular M. */
int vis_warp_affine(const struct vis_image *img, const double m[6], int w, int h,
                    struct vis_color fill, struct vis_image **out);
/* Rotate by `degrees` counter-clockwise about the centre, expanding the
 * canvas to hold the whole image (black corners), exactly as the
 * image_preprocessing block: cv2.getRotationMatrix2D((w//2, h//2), deg, 1)
 * with new size int(h*|sin| + w*|cos|) x int(h*|cos| + w*|sin|) and the
 * translation shifted by new/2 - centre.  Multiples of 90 are exact. */
int vis_rotate(const struct vis_image *img, double degrees, struct vis_image **out);

/* ---- resize, letterbox, tensors ------------------------------------------ */

enum vis_interp {
    VIS_INTER_NEAREST = 0, /* cv2.INTER_NEAREST: src = floor(dst * src_size / dst_size) */
    VIS_INTER_LINEAR = 1,  /* cv2.INTER_LINEAR: pixel centres, 11-bit fixed point */
    VIS_INTER_AREA = 2,    /* cv2.INTER_AREA: box average when shrinking, linear when growing */
};
/* Resize to w x h; *out is new (caller frees).  Matches cv2.resize within
 * +-1 per channel for the three modes. */
int vis_resize(const struct vis_image *img, int w, int h, enum vis_interp interp,
               struct vis_image **out);
/* Resize src into an existing image or view dst (same format; dst's size
 * is the target size).  src and dst must not overlap. */
int vis_resize_into(const struct vis_image *src, struct vis_image *dst, enum vis_interp interp);

/* How a letterbox placed the image: dst = src * scale + pad. */
struct vis_letterbox {
    int new_w, new_h;        /* size of the resized image inside the canvas */
    int pad_left, pad_top;   /* offset of the resized image, pixels */
    int pad_right, pad_bottom;
    double scale_x, scale_y; /* new_w / src_w and new_h / src_h */
};
/* Resize keeping the aspect ratio into a w x h canvas filled with `fill`,
 * centred, exactly as Roboflow inference's letterbox_image(): the long
 * side becomes the canvas side, the other is truncated (int()), padding is
 * (canvas - new) // 2 on the top/left and the rest on the bottom/right;
 * the resize is INTER_LINEAR.  *out is new; *lb (may be NULL) describes
 * the placement. */
int vis_letterbox(const struct vis_image *img, int w, int h, struct vis_color fill,
                  struct vis_image **out, struct vis_letterbox *lb);

/* HWC u8 -> CHW float for model input:
 *   out[c][y][x] = (px * scale - mean[c]) / std[c]
 * where channel c of the output is R,G,B (rgb = 1) or B,G,R (rgb = 0).
 * GRAY input is replicated to 3 channels; BGRA drops alpha. */
struct vis_tensor_opts {
    int rgb;        /* 1: output R,G,B planes (most ONNX models); 0: B,G,R */
    float scale;    /* e.g. 1/255.0f; 0 means 1/255 */
    float mean[3];  /* in output channel order, after scaling */
    float std[3];   /* in output channel order; 0 means 1 */
};
/* Writes 3*w*h floats at out (cap = floats available, ERR_LIMIT when too
 * small).  For a batch, call per image with out + i*3*w*h. */
int vis_to_tensor_f32(const struct vis_image *img, const struct vis_tensor_opts *opts, float *out,
                      size_t cap);

/* ---- drawing ----------------------------------------------------------------
 * All drawing clips to the image (or view) and is in place.  Coordinates
 * are pixels, x right, y down; shapes off the image draw nothing.
 * Thickness < 0 (VIS_FILLED) fills, as cv2's FILLED. */
#define VIS_FILLED (-1)
/* Rectangle with corners (x0, y0) and (x1, y1) inclusive, as
 * cv2.rectangle; an outline of thickness t is centred on the edges. */
void vis_draw_rect(struct vis_image *img, int x0, int y0, int x1, int y1, struct vis_color c,
                   int thickness);
/* Line from (x0, y0) to (x1, y1) inclusive; thickness > 1 draws a band
 * with round caps (as cv2.line). */
void vis_draw_line(struct vis_image *img, int x0, int y0, int x1, int y1, struct vis_color c,
                   int thickness);
/* Circle of radius r around (cx, cy); thickness VIS_FILLED fills. */
void vis_draw_circle(struct vis_image *img, int cx, int cy, int r, struct vis_color c,
                     int thickness);
/* Elliptic arc as cv2.ellipse(img, (cx, cy), (ax, ay), angle, start, end,
 * colour, thickness): the curve is approximated by a polyline with a
 * point every 5..90 degrees (cv2's ellipse2Poly step); VIS_FILLED fills the
 * pie slice (centre included).  Angles in degrees, clockwise on screen. */
void vis_draw_ellipse(struct vis_image *img, int cx, int cy, int ax, int ay, double angle,
                      double start, double end, struct vis_color c, int thickness);
/* Polygon of n points pts[2*i], pts[2*i+1].  Outline: closed polyline.
 * Fill: scanline at pixel rows with the even-odd or non-zero rule, edges
 * included (as cv2.fillPoly).  n is bounded by VIS_MAX_POLY_POINTS
 * (ERR_LIMIT), n < 3 fills nothing. */
#define VIS_MAX_POLY_POINTS 100000
enum vis_fill_rule { VIS_FILL_EVEN_ODD = 0, VIS_FILL_NONZERO = 1 };
int vis_draw_polygon(struct vis_image *img, const int *pts, int n, struct vis_color c,
                     int thickness);
int vis_fill_polygon(struct vis_image *img, const int *pts, int n, struct vis_color c,
                     enum vis_fill_rule rule);
/* Blend a colour over the whole img (use a view for a region):
 * p = c * opacity + p * (1 - opacity), rounded, opacity clamped to 0..1
 * (cv2.addWeighted). */
void vis_blend_color(struct vis_image *img, struct vis_color c, double opacity);
/* Blend src over dst at (x, y), clipped; same format (ERR_INVALID). */
int vis_blend_image(struct vis_image *dst, const struct vis_image *src, int x, int y,
                    double opacity);
/* Blend colour c where mask (GRAY, same size as img, ERR_INVALID
 * otherwise) is non-zero. */
int vis_mask_overlay(struct vis_image *img, const struct vis_image *mask, struct vis_color c,
                     double opacity);

/* COCO RLE "counts" string (pycocotools encode + rleToString) of a W x H
 * image that is "off" everywhere except a mw x mh mask (row-major) placed
 * at (x0, y0), clipped to the image.  A mask pixel is "on" when it is
 * non-zero (value < 0) or equal to value (0..255).  mask NULL: all off.
 * Caller frees; never NULL. */
char *vis_coco_rle(const uint8_t *mask, int mw, int mh, int x0, int y0, int W, int H, int value);

/* ---- filters (in place on an image or view) ---------------------------------
 * Borders: BORDER_REFLECT_101 for box/Gaussian (as cv2.blur and
 * cv2.GaussianBlur), replicate for median (as cv2.medianBlur).  Kernel
 * sizes are bounded 1..VIS_MAX_KERNEL (ERR_INVALID); they return ERR_NOMEM
 * when scratch memory is missing. */
#define VIS_MAX_KERNEL 1023
int vis_blur_box(struct vis_image *img, int kw, int kh);
/* ksize odd; sigma <= 0 derives it from ksize as cv2.getGaussianKernel. */
int vis_blur_gaussian(struct vis_image *img, int ksize, double sigma);
/* ksize odd >= 3 */
int vis_blur_median(struct vis_image *img, int ksize);
/* Pixelate with blocks of about `block` pixels (downscale linear, upscale
 * nearest, as supervision's PixelateAnnotator). */
int vis_pixelate(struct vis_image *img, int block);

/* ---- classical CV ---------------------------------------------------------- */
enum vis_thresh {
    VIS_THRESH_BINARY = 0,     /* v > t ? max : 0 */
    VIS_THRESH_BINARY_INV = 1, /* v > t ? 0 : max */
    VIS_THRESH_TRUNC = 2,      /* v > t ? t : v */
    VIS_THRESH_TOZERO = 3,     /* v > t ? v : 0 */
    VIS_THRESH_TOZERO_INV = 4, /* v > t ? 0 : v */
    VIS_THRESH_OTSU = 8,       /* flag: choose t by Otsu's method (GRAY only) */
};
/* cv2.threshold on every channel, in place.  `thresh` is floored as cv2
 * does for 8-bit images.  *used (may be NULL) gets the threshold applied
 * (Otsu's when that flag is set). */
int vis_threshold(struct vis_image *img, double thresh, int maxval, int type, int *used);
/* cv2.equalizeHist; BGR/BGRA images are equalized per colour channel. */
int vis_equalize_hist(struct vis_image *img);
/* CLAHE per colour channel: tiles x tiles grid, clip limit as
 * cv2.createCLAHE (clip <= 0: 40); tiles 1..64.  Close to cv2 but not
 * bit-exact (see filter.c). */
int vis_clahe(struct vis_image *img, double clip, int tiles);
/* Linear stretch so that the low_pct and high_pct percentiles (0..100, over
 * all channels) map to 0 and 255 (skimage rescale_intensity). */
int vis_contrast_stretch(struct vis_image *img, double low_pct, double high_pct);
/* Number of pixels whose every channel c lies in [lo[c], hi[c]]
 * (cv2.countNonZero(cv2.inRange(img, lo, hi))); channels in image order
 * (B, G, R for BGR; lo[0]/hi[0] only for GRAY; alpha ignored). */
long long vis_count_in_range(const struct vis_image *img, const int lo[3], const int hi[3]);
enum vis_morph { VIS_MORPH_ERODE, VIS_MORPH_DILATE, VIS_MORPH_OPEN, VIS_MORPH_CLOSE,
                 VIS_MORPH_GRADIENT, VIS_MORPH_TOPHAT, VIS_MORPH_BLACKHAT };
/* Morphology with a kw x kh rectangle anchored at its centre; pixels
 * outside the image are ignored (cv2's default border). */
int vis_morph(struct vis_image *img, enum vis_morph op, int kw, int kh);

/* ---- text (FreeType) --------------------------------------------------------
 * A struct vis_font wraps one FreeType face plus a cache of rendered
 * glyphs.  It is safe to use from several threads at once (one mutex per
 * font; drawing copies cached glyph bitmaps).  Text is UTF-8 (invalid
 * bytes render as U+FFFD), at most VIS_TEXT_MAX bytes, single line
 * (control characters are skipped); pixel sizes are 1..VIS_TEXT_MAX_PX. */
#define VIS_TEXT_MAX 4096
#define VIS_TEXT_MAX_PX 512
#define VIS_FONT_DEFAULT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
struct vis_font;
/* Open a TrueType/OpenType font file; *out is freed with vis_font_free(). */
int vis_font_open(const char *path, struct vis_font **out);
void vis_font_free(struct vis_font *f); /* accepts NULL */
/* The process-wide default font: $VBATCH_FONT if set, else
 * VIS_FONT_DEFAULT_PATH, opened once on first use.  Borrowed: never free
 * it; NULL when the file cannot be opened.  Thread-safe. */
struct vis_font *vis_font_default(void);
/* Pixel size matching cv2's FONT_HERSHEY_SIMPLEX `fontScale` (so that a
 * label drawn with text_scale s is about as tall as supervision's):
 * round(s * 22 / 0.73), the 0.73 being DejaVu's cap-height ratio.  Clamped
 * to 1..VIS_TEXT_MAX_PX. */
int vis_text_px_for_scale(double scale);
/* Like cv2.getTextSize: width of the advance box, height above the
 * baseline (the font ascent at that size), baseline = depth below (the
 * descent).  Every drawn pixel lies within [x, x + width) x
 * [y - height, y + baseline) for text drawn at baseline origin (x, y). */
struct vis_text_metrics {
    int width, height, baseline;
};
int vis_text_measure(struct vis_font *f, const char *utf8, int px, struct vis_text_metrics *m);
/* Draw anti-aliased text with its baseline origin at (x, y) (cv2.putText's
 * org), clipped to img. */
int vis_text_draw(struct vis_image *img, struct vis_font *f, const char *utf8, int px, int x,
                  int y, struct vis_color c);
/* The same with a stroke thickness like cv2.putText's (1 = the font's own
 * weight; each step widens strokes by one pixel with FT_Outline_Embolden,
 * and the metrics grow to match).  thickness 1..px, else ERR_INVALID. */
int vis_text_measure_ex(struct vis_font *f, const char *utf8, int px, int thickness,
                        struct vis_text_metrics *m);
int vis_text_draw_ex(struct vis_image *img, struct vis_font *f, const char *utf8, int px,
                     int thickness, int x, int y, struct vis_color c);

/* ---- video (FFmpeg) ----------------------------------------------------------
 * Probing reads the container header and stream parameters only (bounded
 * by FFmpeg's default probesize/analyzeduration); the iterator decodes the
 * first video stream frame by frame, converts to BGR and drains the
 * decoder at end of input so the last frames are not lost.  Memory inputs
 * are borrowed: the bytes must stay valid until the probe returns or the
 * iterator is freed.  A struct vis_video belongs to one thread at a time. */
/* Opening (and so probing) gives up with ERR_PARSE after this long. */
#define VIS_VIDEO_OPEN_TIMEOUT_MS 15000
struct vis_video_info {
    double duration_s;      /* seconds; < 0 when unknown */
    double fps;             /* average frame rate; 0 when unknown */
    long long frame_count;  /* from the container, else duration * fps rounded; -1 unknown */
    int width, height;      /* of the first video stream */
    char codec[32];         /* decoder name, e.g. "h264" */
    char container[64];     /* demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" */
};
/* 0 and *info when the data is a container with a decodable video
 * stream.  Only plain containers are opened (mp4/mov, matroska/webm, avi,
 * flv, mpegts, mpeg-ps, ogg, asf, gif, mxf, nut, ivf and raw h264/hevc/
 * m4v) and only local files (no URLs, no playlist or concat inputs that
 * would read other files).  ERR_PARSE when FFmpeg cannot read it or it is
 * not such a container, ERR_UNSUPPORTED when it has no video stream or no
 * decoder for it or is a still image, ERR_LIMIT when the frame size
 * exceeds VIS_MAX_PIXELS. */
/* path is a local file name, taken literally (never a URL). */
int vis_video_probe_file(const char *path, struct vis_video_info *info);
int vis_video_probe_mem(const void *data, size_t len, struct vis_video_info *info);

struct vis_video;
struct vis_frame_meta {
    long long index;  /* 0-based number of the decoded frame in the stream */
    double pts_s;     /* presentation time in seconds (index / fps if unknown) */
};
/* Open an iterator yielding at most max_fps frames per second of video
 * time (max_fps <= 0: every frame).  *out freed with vis_video_free(). */
int vis_video_open_file(const char *path, double max_fps, struct vis_video **out);
int vis_video_open_mem(const void *data, size_t len, double max_fps, struct vis_video **out);
/* Stream info of an open iterator (borrowed, valid while v lives). */
const struct vis_video_info *vis_video_info(const struct vis_video *v);
/* Next frame: returns 1 with *frame (BGR, caller frees) and *meta (may be
 * NULL), 0 at the end, <0 on a decode error (ERR_PARSE) or ERR_NOMEM. */
int vis_video_next(struct vis_video *v, struct vis_image **frame, struct vis_frame_meta *meta);
void vis_video_free(struct vis_video *v); /* accepts NULL */
#endif
