/*
 * bench_vision.c — hot paths of the vision module on a 1080p photo-like
 * JPEG (imageio's astronaut.png upscaled to 1920x1080, quality 90):
 * decode, DCT-scaled decode, resize, letterbox + tensor, the whole model
 * pre-processing chain, encode, and label drawing.  Each figure is the
 * median of several runs and is printed with a baseline measured in the
 * same run (memcpy of the same bytes: the decoded image size for pixel
 * work) and the ratio figure/baseline, one line each:
 *
 *   bench=<name> ms=<median> baseline=<what> baseline_ms=<..> ratio=<..>
 */
#include "vision/vision.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COCKATOO "/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4"
#define ASTRONAUT "/usr/lib/python3/dist-packages/imageio/resources/images/astronaut.png"

static int cmp_d(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return d < 0 ? -1 : d > 0;
}

typedef void (*bench_fn)(void *);

static double median_ms(bench_fn fn, void *arg, int runs)
{
    double t[64];
    if (runs > 64)
        runs = 64;
    fn(arg); /* warm-up */
    for (int i = 0; i < runs; i++) {
        int64_t a = time_mono_ns();
        fn(arg);
        t[i] = (double)(time_mono_ns() - a) / 1e6;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_d);
    return t[runs / 2];
}

struct ctx {
    uint8_t *jpeg;
    size_t jpeg_len;
    uint8_t *png;          /* the same 1080p image as PNG */
    size_t png_len;
    struct vis_image *img; /* decoded 1080p */
    uint8_t *copy_src, *copy_dst;
    size_t copy_len;
    float *tensor;
    struct vis_image *lb; /* 640x640 letterboxed */
    struct vis_font *font;
};

static void f_memcpy(void *a)
{
    struct ctx *c = a;
    memcpy(c->copy_dst, c->copy_src, c->copy_len);
    __asm__ volatile("" ::: "memory");
}

static void f_decode(void *a)
{
    struct ctx *c = a;
    struct vis_image *img = NULL;
    if (vis_decode(c->jpeg, c->jpeg_len, &img) < 0)
        abort();
    vis_image_free(img);
}

static void f_decode_half(void *a)
{
    struct ctx *c = a;
    struct vis_image *img = NULL;
    if (vis_decode_jpeg_scaled(c->jpeg, c->jpeg_len, 2, &img) < 0)
        abort();
    vis_image_free(img);
}

static void f_resize_linear(void *a)
{
    struct ctx *c = a;
    struct vis_image *o = NULL;
    if (vis_resize(c->img, 640, 360, VIS_INTER_LINEAR, &o) < 0)
        abort();
    vis_image_free(o);
}

static void f_resize_area(void *a)
{
    struct ctx *c = a;
    struct vis_image *o = NULL;
    if (vis_resize(c->img, 640, 360, VIS_INTER_AREA, &o) < 0)
        abort();
    vis_image_free(o);
}

static void letterbox_tensor(struct ctx *c, const struct vis_image *img)
{
    struct vis_image *o = NULL;
    struct vis_tensor_opts opts = {.rgb = 1};
    if (vis_letterbox(img, 640, 640, VIS_RGB(114, 114, 114), &o, NULL) < 0 ||
        vis_to_tensor_f32(o, &opts, c->tensor, 3 * 640 * 640) < 0)
        abort();
    vis_image_free(o);
}

static void f_letterbox_tensor(void *a)
{
    struct ctx *c = a;
    letterbox_tensor(c, c->img);
}

static void f_full_chain(void *a)
{
    struct ctx *c = a;
    struct vis_image *img = NULL;
    if (vis_decode(c->jpeg, c->jpeg_len, &img) < 0)
        abort();
    letterbox_tensor(c, img);
    vis_image_free(img);
}

static void f_fast_chain(void *a)
{
    struct ctx *c = a;
    struct vis_image *img = NULL;
    if (vis_decode_fit(c->jpeg, c->jpeg_len, 640, 360, &img) < 0)
        abort();
    letterbox_tensor(c, img);
    vis_image_free(img);
}

static void f_tensor(void *a)
{
    struct ctx *c = a;
    struct vis_tensor_opts opts = {.rgb = 1};
    if (vis_to_tensor_f32(c->lb, &opts, c->tensor, 3 * 640 * 640) < 0)
        abort();
}

/* 60 frames of imageio's cockatoo.mp4 (1280x720 H.264) to BGR. */
static void f_video60(void *a)
{
    struct vis_video *v = NULL;
    struct vis_image *img;
    (void)a;
    if (vis_video_open_file(COCKATOO, 0, &v) < 0)
        abort();
    for (int i = 0; i < 60 && vis_video_next(v, &img, NULL) == 1; i++)
        vis_image_free(img);
    vis_video_free(v);
}

static void f_blur_box(void *a)
{
    struct ctx *c = a;
    struct vis_image *img = vis_image_clone(c->img);
    if (!img || vis_blur_box(img, 15, 15) < 0)
        abort();
    vis_image_free(img);
}

static void f_blur_gauss(void *a)
{
    struct ctx *c = a;
    struct vis_image *img = vis_image_clone(c->img);
    if (!img || vis_blur_gaussian(img, 5, 0) < 0)
        abort();
    vis_image_free(img);
}

static void f_clone(void *a)
{
    struct ctx *c = a;
    vis_image_free(vis_image_clone(c->img));
}

static void f_encode_jpeg(void *a)
{
    struct ctx *c = a;
    uint8_t *b = NULL;
    size_t n;
    if (vis_encode_jpeg(c->img, 95, &b, &n) < 0)
        abort();
    free(b);
}

static void f_encode_png(void *a)
{
    struct ctx *c = a;
    uint8_t *b = NULL;
    size_t n;
    if (vis_encode_png(c->img, &b, &n) < 0)
        abort();
    free(b);
}

static void f_labels(void *a)
{
    struct ctx *c = a;
    struct vis_image *img = vis_image_clone(c->img);
    char s[32];
    int px = vis_text_px_for_scale(0.5);
    for (int i = 0; i < 100; i++) {
        int x = (i % 10) * 190 + 5, y = (i / 10) * 105 + 30;
        struct vis_text_metrics m;
        snprintf(s, sizeof s, "class%d 0.%02d", i % 7, i);
        vis_draw_rect(img, x, y, x + 150, y + 70, VIS_RGB(255, 64, 0), 2);
        if (vis_text_measure(c->font, s, px, &m) < 0)
            abort();
        vis_draw_rect(img, x, y - m.height - m.baseline - 4, x + m.width + 4, y, VIS_RGB(255, 64, 0),
                      VIS_FILLED);
        vis_text_draw(img, c->font, s, px, x + 2, y - m.baseline - 2, VIS_RGB(255, 255, 255));
    }
    vis_image_free(img);
}

/* staging's content check (vis_check) against decoding the same bytes */
static void f_check_jpeg(void *a)
{
    struct ctx *c = a;
    if (vis_check(c->jpeg, c->jpeg_len, NULL, NULL) < 0)
        abort();
}

static void f_check_png(void *a)
{
    struct ctx *c = a;
    if (vis_check(c->png, c->png_len, NULL, NULL) < 0)
        abort();
}

static void f_decode_png(void *a)
{
    struct ctx *c = a;
    struct vis_image *img = NULL;
    if (vis_decode(c->png, c->png_len, &img) < 0)
        abort();
    vis_image_free(img);
}

static void report(const char *name, double ms, const char *base, double base_ms)
{
    printf("bench=%s ms=%.3f baseline=%s baseline_ms=%.3f ratio=%.2f\n", name, ms, base, base_ms,
           base_ms > 0 ? ms / base_ms : 0);
}

int main(void)
{
    struct ctx c = {0};
    char *png = NULL;
    size_t png_len;
    struct vis_image *src = NULL;

    if (file_read_all(ASTRONAUT, 16 << 20, &png, &png_len) < 0 || vis_decode(png, png_len, &src) < 0) {
        fprintf(stderr, "bench_vision: cannot read '%s' (python3-imageio)\n", ASTRONAUT);
        return 1;
    }
    if (vis_resize(src, 1920, 1080, VIS_INTER_LINEAR, &c.img) < 0 ||
        vis_encode_jpeg(c.img, 90, &c.jpeg, &c.jpeg_len) < 0)
        return 1;
    vis_image_free(c.img);
    if (vis_decode(c.jpeg, c.jpeg_len, &c.img) < 0) /* what a decoder really yields */
        return 1;
    c.copy_len = (size_t)c.img->stride * (size_t)c.img->h;
    c.copy_src = xmalloc(c.copy_len);
    c.copy_dst = xmalloc(c.copy_len);
    memcpy(c.copy_src, c.img->px, c.copy_len);
    c.tensor = xmalloc(3 * 640 * 640 * sizeof(float));
    c.font = vis_font_default();

    double base = median_ms(f_memcpy, &c, 31);
    printf("# 1080p BGR = %zu bytes, JPEG q90 = %zu bytes\n", c.copy_len, c.jpeg_len);
    report("vision_jpeg_decode_1080p", median_ms(f_decode, &c, 21), "memcpy_1080p_bgr", base);
    report("vision_jpeg_decode_half_1080p", median_ms(f_decode_half, &c, 21), "memcpy_1080p_bgr", base);
    report("vision_resize_linear_1080p_to_640x360", median_ms(f_resize_linear, &c, 21),
           "memcpy_1080p_bgr", base);
    report("vision_resize_area_1080p_to_640x360", median_ms(f_resize_area, &c, 11),
           "memcpy_1080p_bgr", base);
    report("vision_letterbox_tensor_1080p_to_640", median_ms(f_letterbox_tensor, &c, 21),
           "memcpy_1080p_bgr", base);
    double dec = median_ms(f_decode, &c, 21);
    report("vision_decode_letterbox_tensor_1080p_to_640", median_ms(f_full_chain, &c, 21),
           "jpeg_decode_1080p", dec);
    report("vision_decode_fit_letterbox_tensor_1080p_to_640", median_ms(f_fast_chain, &c, 21),
           "jpeg_decode_1080p", dec);
    if (vis_letterbox(c.img, 640, 640, VIS_RGB(114, 114, 114), &c.lb, NULL) < 0)
        return 1;
    report("vision_tensor_f32_640", median_ms(f_tensor, &c, 21), "memcpy_1080p_bgr", base);
    if (vis_encode_png(c.img, &c.png, &c.png_len) < 0)
        return 1;
    report("vision_check_jpeg_1080p", median_ms(f_check_jpeg, &c, 21), "jpeg_decode_1080p", dec);
    report("vision_check_png_1080p", median_ms(f_check_png, &c, 11), "png_decode_1080p",
           median_ms(f_decode_png, &c, 5));
    {
        struct vis_video_info vi;
        if (vis_video_probe_file(COCKATOO, &vi) == 0) {
            double ms = median_ms(f_video60, &c, 5);
            report("vision_video_decode_720p_per_frame", ms / 60, "memcpy_1080p_bgr", base);
        }
    }
    double cl = median_ms(f_clone, &c, 11);
    report("vision_blur_box_k15_1080p", median_ms(f_blur_box, &c, 5), "clone_1080p", cl);
    report("vision_blur_gaussian_k5_1080p", median_ms(f_blur_gauss, &c, 5), "clone_1080p", cl);
    report("vision_encode_jpeg_q95_1080p", median_ms(f_encode_jpeg, &c, 11), "memcpy_1080p_bgr", base);
    report("vision_encode_png_1080p", median_ms(f_encode_png, &c, 5), "memcpy_1080p_bgr", base);
    if (c.font)
        report("vision_draw_100_labels_1080p", median_ms(f_labels, &c, 11), "memcpy_1080p_bgr", base);
    vis_image_free(src);
    vis_image_free(c.lb);
    vis_image_free(c.img);
    free(png);
    free(c.jpeg);
    free(c.png);
    free(c.copy_src);
    free(c.copy_dst);
    free(c.tensor);
    return 0;
}
