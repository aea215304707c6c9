/*
 * test_vision_geom.c — views, crops, conversions, resize against values
 * computed by hand with cv2.resize's conventions, letterbox, tensors.
 */
#include "vision/vision.h"
#include "base/base.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

static struct vis_image *gray_row(const uint8_t *v, int n)
{
    struct vis_image *img = vis_image_new(n, 1, VIS_GRAY);
    memcpy(img->px, v, (size_t)n);
    return img;
}

TEST(view_and_crop)
{
    struct vis_image *img = vis_image_new(10, 6, VIS_BGR), v, *c = NULL;
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 10; x++)
            vis_px(img, x, y)[0] = (uint8_t)(y * 10 + x);
    ASSERT_OK(vis_image_view(img, 2, 1, 3, 2, &v));
    ASSERT_EQ(v.w, 3);
    ASSERT_EQ(vis_px(&v, 0, 0)[0], 12);
    ASSERT_EQ(vis_px(&v, 2, 1)[0], 24);
    vis_px(&v, 0, 0)[1] = 9; /* writes through */
    ASSERT_EQ(vis_px(img, 2, 1)[1], 9);
    /* clipped crop */
    ASSERT_OK(vis_crop(img, 8, 4, 5, 5, &c));
    ASSERT_EQ(c->w, 2);
    ASSERT_EQ(c->h, 2);
    ASSERT_EQ(vis_px(c, 1, 1)[0], 59);
    vis_image_free(c);
    ASSERT_EQ(vis_crop(img, 10, 0, 3, 3, &c), ERR_INVALID);
    ASSERT_EQ(vis_crop(img, -5, 0, 5, 3, &c), ERR_INVALID);
    ASSERT_EQ(vis_image_view(img, 0, 0, 0, 3, &v), ERR_INVALID);
    ASSERT_EQ(vis_crop(img, 0x7fffffff, 0x7fffffff, 0x7fffffff, 1, &c), ERR_INVALID);
    /* crop of a view is a tight copy */
    ASSERT_OK(vis_image_view(img, 1, 1, 8, 4, &v));
    ASSERT_OK(vis_crop(&v, 1, 0, 2, 2, &c));
    ASSERT_EQ(c->stride, 6);
    ASSERT_EQ(vis_px(c, 0, 0)[0], 12);
    vis_image_free(c);
    vis_image_free(img);
}

TEST(convert_colours)
{
    struct vis_image *img = vis_image_new(2, 1, VIS_BGR), *g = NULL, *b = NULL, *a = NULL;
    uint8_t px[6] = {255, 0, 0, 10, 200, 30}; /* pure blue; B10 G200 R30 */
    memcpy(img->px, px, 6);
    ASSERT_OK(vis_convert(img, VIS_GRAY, &g));
    ASSERT_EQ(g->px[0], 29);  /* 0.114 * 255 = 29.07 */
    ASSERT_EQ(g->px[1], 128); /* 0.299*30 + 0.587*200 + 0.114*10 = 127.51 */
    ASSERT_OK(vis_convert(g, VIS_BGR, &b));
    ASSERT_EQ(vis_px(b, 1, 0)[0], 128);
    ASSERT_EQ(vis_px(b, 1, 0)[2], 128);
    ASSERT_OK(vis_convert(img, VIS_BGRA, &a));
    ASSERT_EQ(vis_px(a, 1, 0)[3], 255);
    ASSERT_EQ(vis_px(a, 1, 0)[1], 200);
    vis_swap_rb(img);
    ASSERT_EQ(img->px[2], 255);
    ASSERT_EQ(img->px[0], 0);
    ASSERT_EQ(img->px[3], 30);
    vis_image_free(img);
    vis_image_free(g);
    vis_image_free(b);
    vis_image_free(a);
}

TEST(resize_linear_hand_values)
{
    const uint8_t v4[4] = {0, 100, 200, 255}, v2[2] = {0, 100};
    struct vis_image *s = gray_row(v4, 4), *d = NULL;
    ASSERT_OK(vis_resize(s, 2, 1, VIS_INTER_LINEAR, &d));
    ASSERT_EQ(d->px[0], 50);  /* centre 0.5 between 0 and 100 */
    ASSERT_EQ(d->px[1], 228); /* 227.5 rounds up, as cv2 */
    vis_image_free(d);
    vis_image_free(s);
    s = gray_row(v2, 2);
    ASSERT_OK(vis_resize(s, 4, 1, VIS_INTER_LINEAR, &d));
    ASSERT_EQ(d->px[0], 0); /* clamped at the border */
    ASSERT_EQ(d->px[1], 25);
    ASSERT_EQ(d->px[2], 75);
    ASSERT_EQ(d->px[3], 100);
    vis_image_free(d);
    vis_image_free(s);
    /* 2x2 -> 3x3 in both directions: centre = mean of all four */
    struct vis_image *q = vis_image_new(2, 2, VIS_BGR);
    uint8_t vals[4] = {0, 60, 120, 240};
    for (int i = 0; i < 4; i++)
        memset(vis_px(q, i % 2, i / 2), vals[i], 3);
    ASSERT_OK(vis_resize(q, 3, 3, VIS_INTER_LINEAR, &d));
    ASSERT_EQ(vis_px(d, 1, 1)[0], 105); /* (0+60+120+240)/4 */
    ASSERT_EQ(vis_px(d, 0, 0)[2], 0);
    ASSERT_EQ(vis_px(d, 2, 2)[1], 240);
    /* x = 1, y = 0: fx = 1.5*2/3-0.5 = 0.5 -> 30 */
    ASSERT_EQ(vis_px(d, 1, 0)[1], 30);
    vis_image_free(d);
    vis_image_free(q);
}

TEST(resize_nearest_and_area)
{
    const uint8_t v4[4] = {10, 20, 30, 40}, v3[3] = {0, 90, 180};
    struct vis_image *s = gray_row(v4, 4), *d = NULL;
    ASSERT_OK(vis_resize(s, 3, 1, VIS_INTER_NEAREST, &d));
    ASSERT_EQ(d->px[0], 10);
    ASSERT_EQ(d->px[1], 20); /* floor(1 * 4/3) = 1 */
    ASSERT_EQ(d->px[2], 30); /* floor(2 * 4/3) = 2 */
    vis_image_free(d);
    ASSERT_OK(vis_resize(s, 2, 1, VIS_INTER_AREA, &d));
    ASSERT_EQ(d->px[0], 15);
    ASSERT_EQ(d->px[1], 35);
    vis_image_free(d);
    vis_image_free(s);
    s = gray_row(v3, 3);
    ASSERT_OK(vis_resize(s, 2, 1, VIS_INTER_AREA, &d));
    ASSERT_EQ(d->px[0], 30);  /* (0*1 + 90*0.5) / 1.5 */
    ASSERT_EQ(d->px[1], 150); /* (90*0.5 + 180*1) / 1.5 */
    vis_image_free(d);
    vis_image_free(s);
    /* 4x4 -> 2x2 area: block means */
    struct vis_image *b = vis_image_new(4, 4, VIS_BGR);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            memset(vis_px(b, x, y), (x + 4 * y) * 10, 3);
    ASSERT_OK(vis_resize(b, 2, 2, VIS_INTER_AREA, &d));
    ASSERT_EQ(vis_px(d, 0, 0)[0], 25);  /* 0,10,40,50 */
    ASSERT_EQ(vis_px(d, 1, 1)[2], 125); /* 100,110,140,150 */
    vis_image_free(d);
    vis_image_free(b);
}

TEST(resize_large_smooth)
{
    /* A horizontal ramp stays a ramp: every output within 1 of the value
     * the continuous formula gives. */
    struct vis_image *s = vis_image_new(1920, 1080, VIS_BGR), *d = NULL;
    for (int y = 0; y < 1080; y++)
        for (int x = 0; x < 1920; x++)
            memset(vis_px(s, x, y), x * 255 / 1919, 3);
    for (int m = 0; m < 3; m++) {
        ASSERT_OK(vis_resize(s, 640, 360, (enum vis_interp)m, &d));
        for (int x = 0; x < 640; x++) {
            double want;
            if (m == 0)
                want = (x * 3) * 255 / 1919;
            else if (m == 1)
                want = ((x * 3 + 1) * 255 / 1919 + (x * 3 + 2) * 255 / 1919) / 2.0;
            else
                want = ((x * 3) * 255 / 1919 + (x * 3 + 1) * 255 / 1919 + (x * 3 + 2) * 255 / 1919) / 3.0;
            ASSERT_NEAR(vis_px(d, x, 200)[1], want, 1.0);
        }
        vis_image_free(d);
    }
    vis_image_free(s);
}

TEST(letterbox_placement)
{
    struct vis_image *img = vis_image_new(200, 100, VIS_BGR), *out = NULL;
    struct vis_letterbox lb;
    vis_image_fill(img, VIS_RGB(10, 20, 30));
    ASSERT_OK(vis_letterbox(img, 64, 64, VIS_RGB(114, 114, 114), &out, &lb));
    ASSERT_EQ(out->w, 64);
    ASSERT_EQ(out->h, 64);
    ASSERT_EQ(lb.new_w, 64);
    ASSERT_EQ(lb.new_h, 32);
    ASSERT_EQ(lb.pad_top, 16);
    ASSERT_EQ(lb.pad_bottom, 16);
    ASSERT_EQ(lb.pad_left, 0);
    ASSERT_NEAR(lb.scale_x, 0.32, 1e-9);
    ASSERT_EQ(vis_px(out, 5, 15)[0], 114);
    ASSERT_EQ(vis_px(out, 5, 16)[0], 30); /* B of the image */
    ASSERT_EQ(vis_px(out, 63, 47)[2], 10);
    ASSERT_EQ(vis_px(out, 63, 48)[2], 114);
    vis_image_free(out);
    vis_image_free(img);
    /* tall odd image: 75 x 301 into 640 x 640 -> new_w = int(640*75/301) = 159 */
    img = vis_image_new(75, 301, VIS_BGR);
    ASSERT_OK(vis_letterbox(img, 640, 640, VIS_RGB(0, 0, 0), &out, &lb));
    ASSERT_EQ(lb.new_w, 159);
    ASSERT_EQ(lb.new_h, 640);
    ASSERT_EQ(lb.pad_left, 240);
    ASSERT_EQ(lb.pad_right, 241);
    vis_image_free(out);
    vis_image_free(img);
}

TEST(tensor_layout_and_norm)
{
    struct vis_image *img = vis_image_new(2, 1, VIS_BGR);
    uint8_t px[6] = {10, 20, 30, 255, 0, 51};
    memcpy(img->px, px, 6);
    float t[6];
    struct vis_tensor_opts o = {.rgb = 1};
    ASSERT_OK(vis_to_tensor_f32(img, &o, t, 6));
    ASSERT_NEAR(t[0], 30 / 255.0, 1e-6); /* R plane */
    ASSERT_NEAR(t[1], 51 / 255.0, 1e-6);
    ASSERT_NEAR(t[2], 20 / 255.0, 1e-6); /* G plane */
    ASSERT_NEAR(t[4], 10 / 255.0, 1e-6); /* B plane */
    ASSERT_NEAR(t[5], 1.0, 1e-6);
    struct vis_tensor_opts n = {.rgb = 0, .scale = 1.0f, .mean = {1, 2, 3}, .std = {2, 4, 0}};
    ASSERT_OK(vis_to_tensor_f32(img, &n, t, 6));
    ASSERT_NEAR(t[0], (10 - 1) / 2.0, 1e-6);
    ASSERT_NEAR(t[3], (0 - 2) / 4.0, 1e-6);
    ASSERT_NEAR(t[5], 51 - 3, 1e-6);
    ASSERT_EQ(vis_to_tensor_f32(img, &o, t, 5), ERR_LIMIT);
    vis_image_free(img);
    struct vis_image *g = vis_image_new(1, 1, VIS_GRAY);
    g->px[0] = 255;
    ASSERT_OK(vis_to_tensor_f32(g, &o, t, 3));
    ASSERT_NEAR(t[2], 1.0, 1e-6);
    vis_image_free(g);
}

TEST(orient_and_paste)
{
    struct vis_image *img = vis_image_new(3, 2, VIS_GRAY), *o = NULL;
    for (int i = 0; i < 6; i++)
        img->px[i] = (uint8_t)i; /* 0 1 2 / 3 4 5 */
    ASSERT_OK(vis_orient(img, 6, &o)); /* 90 cw: 3 0 / 4 1 / 5 2 */
    ASSERT_EQ(o->w, 2);
    ASSERT_EQ(o->px[0], 3);
    ASSERT_EQ(o->px[1], 0);
    ASSERT_EQ(o->px[5], 2);
    vis_image_free(o);
    ASSERT_OK(vis_orient(img, 3, &o));
    ASSERT_EQ(o->px[0], 5);
    vis_image_free(o);
    struct vis_image *dst = vis_image_new(4, 4, VIS_GRAY);
    ASSERT_OK(vis_image_paste(dst, img, 2, 3)); /* clipped */
    ASSERT_EQ(vis_px(dst, 2, 3)[0], 0);
    ASSERT_EQ(vis_px(dst, 3, 3)[0], 1);
    ASSERT_OK(vis_image_paste(dst, img, -2, -1));
    ASSERT_EQ(vis_px(dst, 0, 0)[0], 5);
    vis_image_free(dst);
    vis_image_free(img);
}

TEST(warp_and_rotate)
{
    struct vis_image *img = vis_image_new(4, 2, VIS_GRAY), *o = NULL;
    for (int i = 0; i < 8; i++)
        img->px[i] = (uint8_t)(10 * (i + 1)); /* 10 20 30 40 / 50 60 70 80 */
    ASSERT_OK(vis_rotate(img, 90, &o)); /* counter-clockwise: top row = right column */
    ASSERT_EQ(o->w, 2);
    ASSERT_EQ(o->h, 4);
    ASSERT_EQ(vis_px(o, 0, 0)[0], 40);
    ASSERT_EQ(vis_px(o, 1, 0)[0], 80);
    ASSERT_EQ(vis_px(o, 0, 3)[0], 10);
    vis_image_free(o);
    ASSERT_OK(vis_rotate(img, -90, &o));
    ASSERT_EQ(vis_px(o, 0, 0)[0], 50);
    vis_image_free(o);
    ASSERT_OK(vis_rotate(img, 360, &o));
    ASSERT_EQ(memcmp(o->px, img->px, 8), 0);
    vis_image_free(o);
    double id[6] = {1, 0, 0, 0, 1, 0}, shift[6] = {1, 0, 1, 0, 1, 0}, sing[6] = {1, 2, 0, 2, 4, 0};
    ASSERT_OK(vis_warp_affine(img, id, 4, 2, VIS_RGB(0, 0, 0), &o));
    ASSERT_EQ(memcmp(o->px, img->px, 8), 0);
    vis_image_free(o);
    ASSERT_OK(vis_warp_affine(img, shift, 4, 2, VIS_RGB(9, 9, 9), &o));
    ASSERT_EQ(o->px[0], 9); /* border fill */
    ASSERT_EQ(o->px[1], 10);
    ASSERT_EQ(o->px[7], 70);
    vis_image_free(o);
    ASSERT_EQ(vis_warp_affine(img, sing, 4, 2, VIS_RGB(0, 0, 0), &o), ERR_INVALID);
    vis_image_free(img);
    /* 45 degrees on a uniform 10x10: canvas int(14.14) = 14, centre kept,
     * corners black */
    img = vis_image_new(10, 10, VIS_BGR);
    vis_image_fill(img, VIS_RGB(200, 100, 50));
    ASSERT_OK(vis_rotate(img, 45, &o));
    ASSERT_EQ(o->w, 14);
    ASSERT_EQ(o->h, 14);
    ASSERT_EQ(vis_px(o, 7, 7)[2], 200);
    ASSERT_EQ(vis_px(o, 0, 0)[2], 0);
    ASSERT_EQ(vis_px(o, 13, 13)[1], 0);
    vis_image_free(o);
    ASSERT_EQ(vis_rotate(img, 0.0 / 0.0, &o), ERR_INVALID);
    vis_image_free(img);
}

TEST(coco_rle_strings)
{
    /* one column of 110: off 3, on 2, off 5, on 100 -> counts 3 2 5 100;
     * the fourth is written as 100 - 2 = 98 = 2 + 3 * 32: groups 2|0x20, 3 */
    uint8_t col[110] = {0};
    for (int y = 3; y < 5; y++)
        col[y] = 1;
    for (int y = 10; y < 110; y++)
        col[y] = 7;
    char *s = vis_coco_rle(col, 1, 110, 0, 0, 1, 110, -1);
    ASSERT_STR_EQ(s, "325R3");
    free(s);
    /* value mode: only pixels equal to 7 are on: off 10, on 100 */
    s = vis_coco_rle(col, 1, 110, 0, 0, 1, 110, 7);
    ASSERT_STR_EQ(s, ":T3");
    free(s);
    /* on first (an empty first run), then a negative difference: counts
     * 0 10 20 3, the fourth written as 3 - 10 = -7 */
    uint8_t c2[33] = {0};
    for (int y = 0; y < 10; y++)
        c2[y] = 1;
    for (int y = 30; y < 33; y++)
        c2[y] = 1;
    s = vis_coco_rle(c2, 1, 33, 0, 0, 1, 33, -1);
    ASSERT_STR_EQ(s, "0:d0I");
    free(s);
    /* a 1x1 region at (1, 1) of a 3x2 image: off 3, on 1, off 2 */
    uint8_t one = 1, sq[4] = {1, 1, 1, 1};
    s = vis_coco_rle(&one, 1, 1, 1, 1, 3, 2, -1);
    ASSERT_STR_EQ(s, "312");
    free(s);
    /* a region reaching outside the image is clipped: off 5, on 1 */
    s = vis_coco_rle(sq, 2, 2, 2, 1, 3, 2, -1);
    ASSERT_STR_EQ(s, "51");
    free(s);
    s = vis_coco_rle(NULL, 0, 0, 0, 0, 3, 2, -1);
    ASSERT_STR_EQ(s, "6");
    free(s);
}

TEST_MAIN()
