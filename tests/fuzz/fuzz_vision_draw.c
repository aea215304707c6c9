/* fuzz_vision_draw.c — drawing, filters and resize with hostile
 * parameters: the bytes are read as a program of operations with 32-bit
 * arguments on a small image (or a view of it); nothing may write outside
 * the pixels, overflow or hang. */
#include "vision/vision.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int32_t arg(const uint8_t **p, const uint8_t *end)
{
    int32_t v = 0;
    if (end - *p >= 4) {
        memcpy(&v, *p, 4);
        *p += 4;
    } else {
        *p = end;
    }
    return v;
}

/* |v| mod k without the overflow of abs(INT32_MIN) */
static int um(int32_t v, int k) { return (int)((uint32_t)v % (uint32_t)k); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    struct vis_image *img, view, *t = NULL;
    enum vis_fmt fmts[3] = {VIS_GRAY, VIS_BGR, VIS_BGRA};

    if (size < 2)
        return 0;
    img = vis_image_new(1 + p[0] % 40, 1 + p[1] % 30, fmts[(p[0] >> 6) % 3]);
    p += 2;
    if (!img)
        return 0;
    view = *img;
    for (int ops = 0; p < end && ops < 16; ops++) {
        int op = *p++ % 20;
        struct vis_color c = {(uint8_t)op, (uint8_t)(op * 40), 200};
        int32_t a = arg(&p, end), b = arg(&p, end), d = arg(&p, end), e = arg(&p, end);
        int small = um(a, 9);
        switch (op) {
        case 0: vis_draw_rect(&view, a, b, d, e, c, small - 1); break;
        case 1: vis_draw_line(&view, a, b, d, e, c, small); break;
        case 2:
            vis_draw_circle(&view, a % 100000, b % 100000, d % 100000, c, e % 7);
            vis_draw_ellipse(&view, a % 1000, b % 1000, d % 100000, e % 100000, a % 720,
                             b % 720, d % 720, c, e % 7);
            break;
        case 3: {
            int pts[12] = {a, b, d, e, a ^ e, b ^ d, (int)(a * 3u), e % 77, 5, 9, (int)(0u - (uint32_t)a), b};
            vis_fill_polygon(&view, pts, 3 + small % 4, c, (enum vis_fill_rule)(e & 1));
            vis_draw_polygon(&view, pts, small % 7, c, 1 + small % 3);
            break;
        }
        case 4: vis_blend_color(&view, c, (a % 1000) / 999.0); break;
        case 5: vis_blur_box(&view, 1 + small, 1 + um(b, 5)); break;
        case 6: vis_blur_gaussian(&view, 1 + 2 * small, (b % 100) / 10.0); break;
        case 7: vis_blur_median(&view, 3 + 2 * (small % 3)); break;
        case 8: vis_pixelate(&view, 1 + um(a, 50)); break;
        case 9: vis_threshold(&view, b % 300, d, (a & 7) | (e & 8), NULL); break;
        case 10: vis_equalize_hist(&view); break;
        case 11: vis_clahe(&view, (a % 50) / 3.0, 1 + small); break;
        case 12: vis_contrast_stretch(&view, um(a, 50), 50 + um(b, 51)); break;
        case 13: vis_morph(&view, (enum vis_morph)um(a, 7), 1 + um(b, 9), 1 + um(d, 9)); break;
        case 14:
            if (vis_image_view(img, a % 50, b % 50, d % 60, e % 60, &view) < 0)
                view = *img;
            break;
        case 15:
            if (vis_resize(&view, 1 + um(a, 90), 1 + um(b, 90), (enum vis_interp)um(d, 3), &t) == 0) {
                vis_image_paste(img, t, e % 40, a % 40);
                vis_blend_image(img, t, d % 40, e % 40, 0.5);
                vis_image_free(t);
            }
            break;
        case 16:
            if (vis_letterbox(&view, 1 + um(a, 64), 1 + um(b, 64), c, &t, NULL) == 0)
                vis_image_free(t);
            break;
        case 17: {
            struct vis_image *m = vis_image_new(view.w, view.h, VIS_GRAY);
            if (m) {
                vis_draw_circle(m, a % 40, b % 40, 5, VIS_RGB(255, 255, 255), -1);
                vis_mask_overlay(&view, m, c, 0.4);
                vis_image_free(m);
            }
            break;
        }
        case 18:
            if (vis_crop(&view, a % 50, b % 50, d % 60, e % 60, &t) == 0) {
                struct vis_image *o = NULL;
                if (vis_orient(t, 1 + um(a, 8), &o) == 0)
                    vis_image_free(o);
                o = NULL;
                if (vis_rotate(t, (b % 7200) / 10.0, &o) == 0)
                    vis_image_free(o);
                vis_image_free(t);
            }
            break;
        default: {
            float buf[3 * 40 * 30];
            struct vis_tensor_opts o = {.rgb = a & 1, .scale = 0, .mean = {0.5f, 0.5f, 0.5f}};
            vis_to_tensor_f32(&view, &o, buf, sizeof buf / sizeof *buf);
            break;
        }
        }
    }
    vis_image_free(img);
    return 0;
}
