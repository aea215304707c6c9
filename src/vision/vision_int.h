/*
 * vision_int.h — helpers shared between the files of the vision module.
 * Not part of the public API.
 */
#ifndef VBATCH_VISION_INT_H
#define VBATCH_VISION_INT_H

#include "vision/vision.h"

/* True when w x h is a size vis_image_new() accepts. */
int vis__size_ok(long long w, long long h);
/* vis_image_new, with the pixels left uninitialised unless zero is set:
 * for producers that overwrite every pixel (decoders, resizers). */
struct vis_image *vis__image_alloc(int w, int h, enum vis_fmt fmt, int zero);
/* Apply EXIF orientation o (1..8) to *img, replacing it (the old image
 * is freed).  0 or ERR_NOMEM (then *img is unchanged). */
int vis__orient(struct vis_image **img, int o);

static inline uint8_t vis__clamp_u8(int v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

#endif
