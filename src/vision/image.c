/*
 * image.c — the life cycle of struct vis_image: allocation with the pixel
 * bound, cloning, and the EXIF orientation transform used by the decoder.
 *
 * Invariants: an owned image has px != NULL, w, h in 1..VIS_MAX_SIDE,
 * w*h <= VIS_MAX_PIXELS and stride >= w*channels.  A view (_view == 1)
 * borrows px from its parent and never frees it.
 */
#include "vision/vision.h"

#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision_int.h"

int vis__size_ok(long long w, long long h)
{
    return w > 0 && h > 0 && w <= VIS_MAX_SIDE && h <= VIS_MAX_SIDE &&
           (unsigned long long)w * (unsigned long long)h <= VIS_MAX_PIXELS;
}

struct vis_image *vis_image_new(int w, int h, enum vis_fmt fmt)
{
    return vis__image_alloc(w, h, fmt, 1);
}

struct vis_image *vis__image_alloc(int w, int h, enum vis_fmt fmt, int zero)
{
    struct vis_image *img;

    if (!vis__size_ok(w, h) || (fmt != VIS_GRAY && fmt != VIS_BGR && fmt != VIS_BGRA))
        return NULL;
    img = try_calloc(1, sizeof *img);
    if (!img)
        return NULL;
    img->px = zero ? try_calloc((size_t)w * (size_t)h, (size_t)fmt)
                   : try_alloc((size_t)w * (size_t)h, (size_t)fmt);
    if (!img->px) {
        free(img);
        return NULL;
    }
    img->w = w;
    img->h = h;
    img->fmt = fmt;
    img->stride = w * (int)fmt;
    return img;
}

void vis_image_free(struct vis_image *img)
{
    if (!img)
        return;
    if (!img->_view) {
        free(img->px);
        if (img->aux && img->aux_free)
            img->aux_free(img->aux);
    }
    free(img);
}

struct vis_image *vis_image_clone(const struct vis_image *img)
{
    struct vis_image *c = vis__image_alloc(img->w, img->h, img->fmt, 0);
    size_t row = (size_t)img->w * (size_t)img->fmt;

    if (!c)
        return NULL;
    for (int y = 0; y < img->h; y++)
        memcpy(vis_px(c, 0, y), vis_px(img, 0, y), row);
    return c;
}

/*
 * EXIF orientation o says how the stored pixels must be transformed for
 * display: 2 mirror, 3 rotate 180, 4 flip vertical, 5 transpose, 6 rotate
 * 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.  For each
 * destination pixel (x, y) we compute the source pixel.
 */
int vis__orient(struct vis_image **imgp, int o)
{
    struct vis_image *src = *imgp, *dst;
    int swap = o >= 5 && o <= 8, ch = (int)src->fmt;
    int dw, dh;

    if (o < 2 || o > 8)
        return 0;
    dw = swap ? src->h : src->w;
    dh = swap ? src->w : src->h;
    dst = vis__image_alloc(dw, dh, src->fmt, 0);
    if (!dst)
        return ERR_NOMEM;
    for (int y = 0; y < dh; y++) {
        uint8_t *d = vis_px(dst, 0, y);
        for (int x = 0; x < dw; x++, d += ch) {
            int sx, sy;
            switch (o) {
            case 2: sx = src->w - 1 - x; sy = y; break;
            case 3: sx = src->w - 1 - x; sy = src->h - 1 - y; break;
            case 4: sx = x; sy = src->h - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = src->h - 1 - x; break;
            case 7: sx = src->w - 1 - y; sy = src->h - 1 - x; break;
            default: sx = src->w - 1 - y; sy = x; break; /* 8 */
            }
            memcpy(d, vis_px(src, sx, sy), (size_t)ch);
        }
    }
    vis_image_free(src);
    *imgp = dst;
    return 0;
}
