/*
 * test_vision_draw.c — drawing, filters, classical CV and text: pixel
 * checks against hand-computed values.
 */
#include "vision/vision.h"
#include "base/base.h"
#include "t.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const struct vis_color RED = {0, 0, 255};

static int count_color(const struct vis_image *img, struct vis_color c)
{
    int n = 0;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            const uint8_t *p = vis_px(img, x, y);
            n += p[0] == c.b && p[1] == c.g && p[2] == c.r;
        }
    return n;
}

static int is_red(const struct vis_image *img, int x, int y)
{
    const uint8_t *p = vis_px(img, x, y);
    return p[0] == 0 && p[1] == 0 && p[2] == 255;
}

TEST(rect_filled_and_outline)
{
    struct vis_image *img = vis_image_new(20, 20, VIS_BGR);
    vis_draw_rect(img, 2, 3, 5, 7, RED, VIS_FILLED);
    ASSERT_EQ(count_color(img, RED), 4 * 5);
    ASSERT(is_red(img, 2, 3) && is_red(img, 5, 7) && !is_red(img, 6, 7));
    memset(img->px, 0, 20 * 20 * 3);
    vis_draw_rect(img, 5, 5, 14, 14, RED, 1);
    ASSERT_EQ(count_color(img, RED), 36); /* 10x10 ring of width 1 */
    ASSERT(!is_red(img, 6, 6));
    memset(img->px, 0, 20 * 20 * 3);
    vis_draw_rect(img, 5, 5, 14, 14, RED, 2); /* extends 1 out, 0 in */
    ASSERT_EQ(count_color(img, RED), 12 * 12 - 8 * 8);
    ASSERT(is_red(img, 4, 4) && !is_red(img, 6, 6) && !is_red(img, 3, 3));
    /* way off the image and huge: clipped, no crash */
    vis_draw_rect(img, -2000000000, -5, 2000000000, 3, RED, 7);
    vis_draw_rect(img, 100, 100, 200, 200, RED, VIS_FILLED);
    vis_image_free(img);
}

TEST(lines_and_circles)
{
    struct vis_image *img = vis_image_new(20, 20, VIS_BGR);
    vis_draw_line(img, 0, 0, 19, 19, RED, 1);
    ASSERT_EQ(count_color(img, RED), 20);
    for (int i = 0; i < 20; i++)
        ASSERT(is_red(img, i, i));
    memset(img->px, 0, 1200);
    vis_draw_line(img, 2, 10, 17, 10, RED, 3); /* band of radius 1.5, round caps */
    ASSERT(is_red(img, 2, 9) && is_red(img, 17, 11) && is_red(img, 10, 11));
    ASSERT(!is_red(img, 10, 12) && !is_red(img, 10, 8));
    ASSERT(is_red(img, 1, 10) && !is_red(img, 0, 10));
    memset(img->px, 0, 1200);
    vis_draw_line(img, -1000000, 5, 1000000, 5, RED, 1); /* clipped */
    ASSERT_EQ(count_color(img, RED), 20);
    memset(img->px, 0, 1200);
    vis_draw_circle(img, 10, 10, 3, RED, VIS_FILLED);
    ASSERT(is_red(img, 10, 10) && is_red(img, 13, 10) && is_red(img, 10, 7));
    ASSERT(!is_red(img, 13, 13) && !is_red(img, 14, 10));
    int filled = count_color(img, RED);
    ASSERT(filled >= 25 && filled <= 37); /* pi * 3.5^2 = 38.5, pi*3^2 = 28 */
    memset(img->px, 0, 1200);
    vis_draw_circle(img, 10, 10, 5, RED, 1);
    ASSERT(is_red(img, 15, 10) && is_red(img, 10, 5) && !is_red(img, 10, 10));
    memset(img->px, 0, 1200);
    vis_draw_circle(img, 10, 10, 6, RED, 2);
    ASSERT(is_red(img, 16, 10) && is_red(img, 10, 4) && !is_red(img, 10, 10) && !is_red(img, 13, 10));
    vis_draw_circle(img, 0, 0, 1 << 30, RED, 3); /* huge: bounded */
    vis_image_free(img);
}

TEST(ellipse_arcs)
{
    struct vis_image *img = vis_image_new(40, 40, VIS_BGR);
    vis_draw_ellipse(img, 20, 20, 10, 10, 0, 0, 360, RED, 1);
    ASSERT(is_red(img, 30, 20) && is_red(img, 20, 30) && is_red(img, 10, 20) && is_red(img, 20, 10));
    ASSERT(!is_red(img, 20, 20));
    memset(img->px, 0, 40 * 40 * 3);
    vis_draw_ellipse(img, 20, 20, 10, 10, 0, 0, 90, RED, VIS_FILLED); /* +x towards +y */
    ASSERT(is_red(img, 25, 25) && is_red(img, 20, 20));
    ASSERT(!is_red(img, 15, 15) && !is_red(img, 25, 15));
    memset(img->px, 0, 40 * 40 * 3);
    vis_draw_ellipse(img, 20, 20, 15, 5, 90, -45, 235, RED, 2); /* rotated: tall */
    ASSERT(is_red(img, 20, 35) || is_red(img, 20, 34));
    ASSERT(!is_red(img, 35, 20));
    vis_draw_ellipse(img, 0, 0, 1 << 30, 5, 0, 0, 360, RED, 3); /* bounded */
    vis_image_free(img);
}

TEST(polygon_fill_rules)
{
    struct vis_image *img = vis_image_new(20, 20, VIS_BGR);
    int sq[] = {2, 2, 6, 2, 6, 6, 2, 6};
    ASSERT_OK(vis_fill_polygon(img, sq, 4, RED, VIS_FILL_EVEN_ODD));
    ASSERT_EQ(count_color(img, RED), 25); /* edges included, as cv2.fillPoly */
    memset(img->px, 0, 1200);
    /* triangle */
    int tri[] = {0, 0, 10, 0, 0, 10};
    ASSERT_OK(vis_fill_polygon(img, tri, 3, RED, VIS_FILL_NONZERO));
    ASSERT(is_red(img, 0, 0) && is_red(img, 4, 4) && is_red(img, 5, 5) && !is_red(img, 6, 6));
    memset(img->px, 0, 1200);
    /* Self-overlapping path: outer square 0..16 then inner square 4..12,
     * both clockwise.  Non-zero fills the centre, even-odd leaves a hole. */
    int two[] = {0, 0, 16, 0, 16, 16, 0, 16, 0, 0, 4, 4, 4, 12, 12, 12, 12, 4, 4, 4, 0, 0};
    int two_cw[] = {0, 0, 16, 0, 16, 16, 0, 16, 0, 0, 4, 4, 12, 4, 12, 12, 4, 12, 4, 4, 0, 0};
    ASSERT_OK(vis_fill_polygon(img, two, 11, RED, VIS_FILL_EVEN_ODD));
    ASSERT(!is_red(img, 8, 8) && is_red(img, 2, 8));
    memset(img->px, 0, 1200);
    ASSERT_OK(vis_fill_polygon(img, two, 11, RED, VIS_FILL_NONZERO)); /* opposite winding: hole */
    ASSERT(!is_red(img, 8, 8));
    memset(img->px, 0, 1200);
    ASSERT_OK(vis_fill_polygon(img, two_cw, 11, RED, VIS_FILL_NONZERO)); /* same winding: filled */
    ASSERT(is_red(img, 8, 8) && is_red(img, 2, 8));
    memset(img->px, 0, 1200);
    ASSERT_OK(vis_draw_polygon(img, sq, 4, RED, 1));
    ASSERT_EQ(count_color(img, RED), 16);
    int far[] = {-100000, -100000, 100000, -100000, 0, 100000};
    ASSERT_OK(vis_fill_polygon(img, far, 3, RED, VIS_FILL_EVEN_ODD));
    ASSERT(is_red(img, 10, 10));
    ASSERT_EQ(vis_fill_polygon(img, far, VIS_MAX_POLY_POINTS + 1, RED, 0), ERR_LIMIT);
    vis_image_free(img);
}

TEST(blend_and_mask)
{
    struct vis_image *img = vis_image_new(4, 4, VIS_BGR), v, *mask, *src;
    vis_image_fill(img, VIS_RGB(100, 100, 100));
    ASSERT_OK(vis_image_view(img, 0, 0, 2, 2, &v));
    vis_blend_color(&v, VIS_RGB(200, 0, 50), 0.5);
    ASSERT_EQ(vis_px(img, 1, 1)[2], 150);
    ASSERT_EQ(vis_px(img, 1, 1)[1], 50);
    ASSERT_EQ(vis_px(img, 1, 1)[0], 75);
    ASSERT_EQ(vis_px(img, 2, 2)[2], 100);
    mask = vis_image_new(4, 4, VIS_GRAY);
    vis_px(mask, 3, 3)[0] = 1;
    ASSERT_OK(vis_mask_overlay(img, mask, VIS_RGB(0, 0, 0), 1.0));
    ASSERT_EQ(vis_px(img, 3, 3)[0], 0);
    ASSERT_EQ(vis_px(img, 3, 2)[0], 100);
    struct vis_image *small = vis_image_new(2, 2, VIS_GRAY);
    ASSERT_EQ(vis_mask_overlay(img, small, RED, 0.5), ERR_INVALID);
    src = vis_image_new(3, 3, VIS_BGR);
    vis_image_fill(src, VIS_RGB(0, 0, 0));
    ASSERT_OK(vis_blend_image(img, src, 2, 2, 0.25)); /* clipped to 2x2 */
    ASSERT_EQ(vis_px(img, 2, 2)[1], 75);
    ASSERT_EQ(vis_px(img, 3, 3)[1], 0);
    ASSERT_EQ(vis_blend_image(img, small, 0, 0, 0.5), ERR_INVALID);
    vis_image_free(img);
    vis_image_free(mask);
    vis_image_free(small);
    vis_image_free(src);
}

TEST(blur_filters)
{
    struct vis_image *img = vis_image_new(9, 9, VIS_GRAY);
    vis_px(img, 4, 4)[0] = 90;
    struct vis_image *c = vis_image_clone(img);
    ASSERT_OK(vis_blur_box(c, 3, 3));
    ASSERT_EQ(vis_px(c, 4, 4)[0], 10);
    ASSERT_EQ(vis_px(c, 3, 5)[0], 10);
    ASSERT_EQ(vis_px(c, 2, 4)[0], 0);
    vis_image_free(c);
    c = vis_image_clone(img);
    vis_px(c, 4, 4)[0] = 160;
    ASSERT_OK(vis_blur_gaussian(c, 3, 0)); /* [1 2 1]/4 both ways */
    ASSERT_EQ(vis_px(c, 4, 4)[0], 40);
    ASSERT_EQ(vis_px(c, 5, 4)[0], 20);
    ASSERT_EQ(vis_px(c, 5, 5)[0], 10);
    vis_image_free(c);
    /* reflect-101 at the border: a corner pixel of value 80 in a 3x3 box
     * sees itself once and its mirror copies */
    c = vis_image_new(4, 4, VIS_GRAY);
    vis_px(c, 0, 0)[0] = 90;
    ASSERT_OK(vis_blur_box(c, 3, 3));
    ASSERT_EQ(vis_px(c, 0, 0)[0], 10);
    ASSERT_EQ(vis_px(c, 1, 1)[0], 10);
    vis_image_free(c);
    /* median removes salt noise */
    c = vis_image_new(7, 7, VIS_BGR);
    vis_image_fill(c, VIS_RGB(50, 60, 70));
    memset(vis_px(c, 3, 3), 255, 3);
    memset(vis_px(c, 0, 0), 0, 3);
    ASSERT_OK(vis_blur_median(c, 3));
    ASSERT_EQ(vis_px(c, 3, 3)[0], 70);
    ASSERT_EQ(vis_px(c, 0, 0)[2], 50);
    ASSERT_EQ(vis_blur_median(c, 4), ERR_INVALID);
    vis_image_free(c);
    /* median picks the middle value of a ramp */
    c = vis_image_new(5, 1, VIS_GRAY);
    uint8_t ramp[5] = {10, 200, 30, 40, 50};
    memcpy(c->px, ramp, 5);
    ASSERT_OK(vis_blur_median(c, 3)); /* replicate: rows identical, window 3x3 */
    ASSERT_EQ(c->px[0], 10);          /* 10 10 200 x3 -> sorted 10x6,200x3 */
    ASSERT_EQ(c->px[1], 30);
    ASSERT_EQ(c->px[2], 40);
    vis_image_free(c);
    ASSERT_EQ(vis_blur_box(img, 0, 3), ERR_INVALID);
    ASSERT_EQ(vis_blur_gaussian(img, 4, 0), ERR_INVALID);
    vis_image_free(img);
}

static int refl(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* Box blur against a direct 2-D implementation, many shapes: image
 * heights below, at and above the kernel size, odd and even kernels. */
TEST(box_blur_matches_direct)
{
    unsigned seed = 12345;
    for (int iter = 0; iter < 60; iter++) {
        int w = 1 + iter % 7, h = 1 + (iter * 5) % 11, kw = 1 + iter % 6, kh = 1 + (iter / 3) % 8;
        struct vis_image *img = vis_image_new(w, h, VIS_GRAY), *orig;
        for (int i = 0; i < w * h; i++) {
            seed = seed * 1103515245u + 12345u;
            img->px[i] = (uint8_t)(seed >> 16);
        }
        orig = vis_image_clone(img);
        ASSERT_OK(vis_blur_box(img, kw, kh));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double sum = 0;
                for (int j = 0; j < kh; j++)
                    for (int i = 0; i < kw; i++)
                        sum += vis_px(orig, refl(x + i - kw / 2, w), refl(y + j - kh / 2, h))[0];
                ASSERT_NEAR(vis_px(img, x, y)[0], sum / (kw * kh), 0.51);
            }
        vis_image_free(img);
        vis_image_free(orig);
    }
}

static int cmp_u8(const void *a, const void *b)
{
    return *(const uint8_t *)a - *(const uint8_t *)b;
}

static int clampn(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* Median and erode/dilate against direct implementations. */
TEST(median_morph_match_direct)
{
    unsigned seed = 777;
    for (int iter = 0; iter < 40; iter++) {
        int w = 1 + iter % 9, h = 1 + (iter * 7) % 10, k = 3 + 2 * (iter % 3);
        int kw = 1 + iter % 5, kh = 1 + (iter / 2) % 6;
        struct vis_image *img = vis_image_new(w, h, VIS_BGR), *orig, *m;
        for (int i = 0; i < w * h * 3; i++) {
            seed = seed * 1103515245u + 12345u;
            img->px[i] = (uint8_t)(seed >> 16);
        }
        orig = vis_image_clone(img);
        m = vis_image_clone(img);
        ASSERT_OK(vis_blur_median(img, k));
        ASSERT_OK(vis_morph(m, iter & 1 ? VIS_MORPH_DILATE : VIS_MORPH_ERODE, kw, kh));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    uint8_t win[49];
                    int n = 0, best = iter & 1 ? 0 : 255;
                    for (int j = -k / 2; j <= k / 2; j++)
                        for (int i = -k / 2; i <= k / 2; i++)
                            win[n++] = vis_px(orig, clampn(x + i, w), clampn(y + j, h))[c];
                    qsort(win, (size_t)n, 1, cmp_u8);
                    ASSERT_EQ(vis_px(img, x, y)[c], win[n / 2]);
                    for (int j = 0; j < kh; j++)
                        for (int i = 0; i < kw; i++) {
                            int xx = x + i - kw / 2, yy = y + j - kh / 2;
                            if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                                continue;
                            int v = vis_px(orig, xx, yy)[c];
                            best = iter & 1 ? MAX(best, v) : MIN(best, v);
                        }
                    ASSERT_EQ(vis_px(m, x, y)[c], best);
                }
        vis_image_free(img);
        vis_image_free(orig);
        vis_image_free(m);
    }
}

TEST(pixelate_blocks)
{
    struct vis_image *img = vis_image_new(8, 8, VIS_GRAY);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            vis_px(img, x, y)[0] = (uint8_t)(x * 30);
    ASSERT_OK(vis_pixelate(img, 4));
    /* 2x2 blocks of 4x4: every block is uniform */
    for (int by = 0; by < 2; by++)
        for (int bx = 0; bx < 2; bx++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++)
                    ASSERT_EQ(vis_px(img, bx * 4 + x, by * 4 + y)[0], vis_px(img, bx * 4, by * 4)[0]);
    ASSERT(vis_px(img, 0, 0)[0] < vis_px(img, 4, 0)[0]);
    vis_image_free(img);
}

TEST(threshold_types)
{
    struct vis_image *img = vis_image_new(4, 1, VIS_GRAY);
    uint8_t v[4] = {10, 100, 101, 250};
    int used = -5;
    struct { int type; uint8_t want[4]; } cases[] = {
        {VIS_THRESH_BINARY, {0, 0, 200, 200}},     {VIS_THRESH_BINARY_INV, {200, 200, 0, 0}},
        {VIS_THRESH_TRUNC, {10, 100, 100, 100}},   {VIS_THRESH_TOZERO, {0, 0, 101, 250}},
        {VIS_THRESH_TOZERO_INV, {10, 100, 0, 0}},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        memcpy(img->px, v, 4);
        ASSERT_OK(vis_threshold(img, 100.7, 200, cases[i].type, &used));
        ASSERT_EQ(used, 100);
        ASSERT_EQ(memcmp(img->px, cases[i].want, 4), 0);
    }
    vis_image_free(img);
    /* Otsu on a bimodal image: threshold between the modes */
    img = vis_image_new(10, 10, VIS_GRAY);
    for (int i = 0; i < 100; i++)
        img->px[i] = (uint8_t)(i < 60 ? 40 + i % 5 : 180 + i % 7);
    ASSERT_OK(vis_threshold(img, 0, 255, VIS_THRESH_BINARY | VIS_THRESH_OTSU, &used));
    ASSERT(used >= 44 && used < 180);
    ASSERT_EQ(img->px[0], 0);
    ASSERT_EQ(img->px[99], 255);
    vis_image_free(img);
    img = vis_image_new(2, 2, VIS_BGR);
    ASSERT_EQ(vis_threshold(img, 0, 255, VIS_THRESH_OTSU, NULL), ERR_INVALID);
    vis_image_free(img);
}

TEST(equalize_and_stretch)
{
    struct vis_image *img = vis_image_new(4, 1, VIS_GRAY);
    uint8_t v[4] = {50, 50, 60, 70};
    memcpy(img->px, v, 4);
    ASSERT_OK(vis_equalize_hist(img));
    /* cv2: first bin 50 (count 2) -> 0; scale 255/(4-2); 60 -> 127.5 -> 128; 70 -> 255 */
    ASSERT_EQ(img->px[0], 0);
    ASSERT_EQ(img->px[2], 128);
    ASSERT_EQ(img->px[3], 255);
    memcpy(img->px, v, 4);
    ASSERT_OK(vis_contrast_stretch(img, 0, 100));
    ASSERT_EQ(img->px[0], 0);
    ASSERT_EQ(img->px[2], 128); /* (60-50)*255/20 = 127.5 */
    ASSERT_EQ(img->px[3], 255);
    vis_image_free(img);
    /* CLAHE keeps a flat image flat and spreads a ramp */
    img = vis_image_new(64, 64, VIS_BGR);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            memset(vis_px(img, x, y), 100 + x / 8, 3);
    ASSERT_OK(vis_clahe(img, 40.0, 4));
    ASSERT(vis_px(img, 63, 10)[0] > vis_px(img, 0, 10)[0] + 20);
    vis_image_free(img);
}

TEST(count_in_range)
{
    struct vis_image *img = vis_image_new(4, 4, VIS_BGR);
    vis_image_fill(img, VIS_RGB(100, 150, 200));
    memcpy(vis_px(img, 0, 0), "\x00\x00\x00", 3);
    vis_px(img, 1, 0)[0] = 211; /* B just outside */
    int lo[3] = {190, 140, 90}, hi[3] = {210, 160, 110};
    ASSERT_EQ(vis_count_in_range(img, lo, hi), 14);
    vis_image_free(img);
}

TEST(morphology)
{
    struct vis_image *img = vis_image_new(9, 9, VIS_GRAY), *c;
    vis_px(img, 4, 4)[0] = 255;
    c = vis_image_clone(img);
    ASSERT_OK(vis_morph(c, VIS_MORPH_DILATE, 3, 3));
    int n = 0;
    for (int i = 0; i < 81; i++)
        n += c->px[i] == 255;
    ASSERT_EQ(n, 9);
    ASSERT_OK(vis_morph(c, VIS_MORPH_ERODE, 3, 3));
    n = 0;
    for (int i = 0; i < 81; i++)
        n += c->px[i] == 255;
    ASSERT_EQ(n, 1); /* close of a point is the point */
    vis_image_free(c);
    c = vis_image_clone(img);
    ASSERT_OK(vis_morph(c, VIS_MORPH_OPEN, 3, 3)); /* opening removes it */
    ASSERT_EQ(c->px[4 * 9 + 4], 0);
    vis_image_free(c);
    c = vis_image_clone(img);
    ASSERT_OK(vis_morph(c, VIS_MORPH_TOPHAT, 3, 3)); /* src - open = the point */
    ASSERT_EQ(c->px[4 * 9 + 4], 255);
    vis_image_free(c);
    c = vis_image_clone(img);
    ASSERT_OK(vis_morph(c, VIS_MORPH_GRADIENT, 3, 3));
    ASSERT_EQ(c->px[3 * 9 + 3], 255);
    ASSERT_EQ(c->px[4 * 9 + 4], 255);
    vis_image_free(c);
    /* border pixels are ignored, not zero: erosion keeps a full white image */
    memset(img->px, 255, 81);
    ASSERT_OK(vis_morph(img, VIS_MORPH_ERODE, 5, 5));
    ASSERT_EQ(img->px[0], 255);
    ASSERT_EQ(vis_morph(img, VIS_MORPH_ERODE, 0, 5), ERR_INVALID);
    vis_image_free(img);
}

static struct vis_font *font(void)
{
    struct vis_font *f = vis_font_default();
    if (!f)
        T_FAIL("no default font at %s", VIS_FONT_DEFAULT_PATH);
    return f;
}

TEST(text_measure_and_draw)
{
    struct vis_font *f = font();
    struct vis_text_metrics m, m2;
    int px = vis_text_px_for_scale(1.0);
    ASSERT(px >= 28 && px <= 32);
    ASSERT_OK(vis_text_measure(f, "Class", px, &m));
    ASSERT(m.width > 40 && m.width < 120);
    ASSERT(m.height > 20 && m.height < 40);
    ASSERT(m.baseline > 3 && m.baseline < 15);
    ASSERT_OK(vis_text_measure(f, "Class Class", px, &m2));
    ASSERT(m2.width > 2 * m.width);
    ASSERT_OK(vis_text_measure(f, "", px, &m2));
    ASSERT_EQ(m2.width, 0);
    struct vis_image *img = vis_image_new(200, 60, VIS_BGR);
    int x = 10, y = 40;
    ASSERT_OK(vis_text_draw(img, f, "Class", px, x, y, VIS_RGB(255, 255, 255)));
    int lit = 0, outside = 0, partial = 0;
    for (int yy = 0; yy < 60; yy++)
        for (int xx = 0; xx < 200; xx++) {
            int val = vis_px(img, xx, yy)[1];
            if (val) {
                lit++;
                if (xx < x || xx >= x + m.width || yy < y - m.height || yy >= y + m.baseline)
                    outside++;
                partial += val < 255; /* anti-aliasing */
            }
        }
    ASSERT(lit > 100);
    ASSERT_EQ(outside, 0);
    ASSERT(partial > 10);
    /* clipped drawing near and beyond the edges */
    ASSERT_OK(vis_text_draw(img, f, "edge", px, 190, 5, RED));
    ASSERT_OK(vis_text_draw(img, f, "gone", px, -100000, 100000, RED));
    /* invalid UTF-8 and control bytes are harmless */
    ASSERT_OK(vis_text_draw(img, f, "\xff\xfe\xc3(\x01\t\xe2\x82\xac", px, 0, 30, RED));
    ASSERT_EQ(vis_text_measure(f, "x", 0, &m), ERR_INVALID);
    char *big = malloc(VIS_TEXT_MAX + 2);
    memset(big, 'a', VIS_TEXT_MAX + 1);
    big[VIS_TEXT_MAX + 1] = 0;
    ASSERT_EQ(vis_text_measure(f, big, 12, &m), ERR_LIMIT);
    free(big);
    vis_image_free(img);
    struct vis_font *bad = NULL;
    ASSERT_EQ(vis_font_open("/nonexistent.ttf", &bad), ERR_NOTFOUND);
}

static int text_lit(int thickness, struct vis_text_metrics *m, int *outside)
{
    struct vis_font *f = vis_font_default();
    struct vis_image *img = vis_image_new(300, 80, VIS_GRAY);
    int lit = 0, x = 5, y = 55;
    if (vis_text_measure_ex(f, "Bold 42", 40, thickness, m) < 0 ||
        vis_text_draw_ex(img, f, "Bold 42", 40, thickness, x, y, VIS_RGB(255, 255, 255)) < 0)
        T_FAIL("text thickness %d failed", thickness);
    *outside = 0;
    for (int yy = 0; yy < img->h; yy++)
        for (int xx = 0; xx < img->w; xx++)
            if (vis_px(img, xx, yy)[0] > 0) {
                lit++;
                if (xx >= x + m->width || yy < y - m->height || yy >= y + m->baseline)
                    (*outside)++;
            }
    vis_image_free(img);
    return lit;
}

TEST(text_thickness)
{
    struct vis_text_metrics m1, m3;
    int out1, out3;
    int l1 = text_lit(1, &m1, &out1), l3 = text_lit(3, &m3, &out3);
    ASSERT(l3 > l1 * 5 / 4);
    ASSERT(m3.width > m1.width);
    ASSERT_EQ(out1, 0);
    ASSERT_EQ(out3, 0);
    struct vis_text_metrics m;
    ASSERT_EQ(vis_text_measure_ex(vis_font_default(), "x", 10, 0, &m), ERR_INVALID);
    ASSERT_EQ(vis_text_measure_ex(vis_font_default(), "x", 10, 11, &m), ERR_INVALID);
}

static void *text_thread(void *arg)
{
    struct vis_image *img = vis_image_new(300, 40, VIS_BGR);
    char s[32];
    for (int i = 0; i < 200; i++) {
        snprintf(s, sizeof s, "label %d %.2f", i, i / 7.0);
        if (vis_text_draw_ex(img, arg, s, 12 + i % 20, 1 + i % 3, 2, 30, RED) < 0)
            break;
    }
    vis_image_free(img);
    return NULL;
}

TEST(text_threads)
{
    struct vis_font *f = font();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, text_thread, f);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    struct vis_text_metrics m;
    ASSERT_OK(vis_text_measure(f, "ok", 20, &m));
}

TEST_MAIN()
