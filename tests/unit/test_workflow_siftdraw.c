/*
 * test_workflow_siftdraw.c — sift_comparison@v2's visualization_matches
 * (cv__draw_matches, blocks/sift.c) against python3-opencv 4.6's
 * cv2.drawMatchesKnn called as Roboflow's block calls it
 * (test_workflow_siftdraw_ref.h from test_workflow_siftdraw_ref.py), on two
 * small synthetic images of different sizes with fixed keypoints and
 * matches.
 *
 * Exact: the canvas size, every pixel away from the marks (both images side
 * by side on black), the colours (FlannBasedMatcher: green matches, red
 * single points; BFMatcher: OpenCV's RNG sequence of a fresh thread, which
 * the reference checked against OpenCV's own drawing).  Within a pixel: the
 * marks — OpenCV draws them anti-aliased at 1/16 pixel, vbatch at whole
 * pixels — so every pixel we draw lies within 1 px of one OpenCV drew and
 * every pixel OpenCV drew lies within 2 px of one of ours.
 */
#include "t.h"

#include <stdlib.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"

#include "test_workflow_siftdraw_ref.h"

#define W1 30
#define H1 22
#define W2 26
#define H2 28

static struct vis_image *img(int w, int h, int k)
{
    struct vis_image *im = vis_image_new(w, h, VIS_BGR);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = (x * (3 + k) + y * (5 + 2 * k)) % 61 + 40;
            uint8_t *p = vis_px(im, x, y);
            p[0] = (uint8_t)v, p[1] = (uint8_t)(v / 2 + 20 * k), p[2] = (uint8_t)(255 - v);
        }
    return im;
}

static bool differs(const unsigned char *a, const unsigned char *b, int x, int y)
{
    size_t o = ((size_t)y * SD_OW + (size_t)x) * 3;
    return memcmp(a + o, b + o, 3) != 0;
}

/* whether mask-of(a vs base) has a pixel within r of (x, y) */
static bool near(const unsigned char *a, int x, int y, int r)
{
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            int u = x + dx, v = y + dy;
            if (u >= 0 && v >= 0 && u < SD_OW && v < SD_OH && differs(a, sd_base, u, v))
                return true;
        }
    return false;
}

static void compare(const struct vis_image *m, const unsigned char *ref, const unsigned char (*cols)[3], int ncols)
{
    ASSERT_EQ(m->w, SD_OW);
    ASSERT_EQ(m->h, SD_OH);
    ASSERT_EQ(m->fmt, VIS_BGR);
    unsigned char *mine = xmalloc((size_t)SD_OW * SD_OH * 3);
    for (int y = 0; y < SD_OH; y++)
        memcpy(mine + (size_t)y * SD_OW * 3, vis_px(m, 0, y), (size_t)SD_OW * 3);
    int drawn = 0, seen[8] = {0};
    for (int y = 0; y < SD_OH; y++)
        for (int x = 0; x < SD_OW; x++) {
            if (differs(mine, sd_base, x, y)) {
                drawn++;
                if (!near(ref, x, y, 1))
                    T_FAIL("pixel %d,%d drawn here, OpenCV drew nothing within 1 px", x, y);
                const unsigned char *p = mine + ((size_t)y * SD_OW + (size_t)x) * 3;
                int k = 0;
                while (k < ncols && memcmp(p, cols[k], 3) != 0)
                    k++;
                if (k == ncols)
                    T_FAIL("pixel %d,%d has colour %d %d %d, not one of OpenCV's", x, y, p[0], p[1], p[2]);
                seen[k]++;
            }
            if (differs(ref, sd_base, x, y) && !near(mine, x, y, 2))
                T_FAIL("OpenCV drew pixel %d,%d, nothing here within 2 px", x, y);
        }
    ASSERT(drawn > 50);
    for (int k = 0; k < ncols; k++)
        if (!seen[k])
            T_FAIL("colour %d never drawn", k);
    free(mine);
}

TEST(draw_matches_as_opencv)
{
    struct vis_image *a = img(W1, H1, 0), *b = img(W2, H2, 1);
    static const float kp1[][2] = {{5.2f, 6.7f}, {20.0f, 15.4f}, {12.6f, 3.1f}, {25.5f, 19.0f}};
    static const float kp2[][2] = {{4.0f, 20.3f}, {18.7f, 9.2f}, {10.4f, 25.6f}};
    struct cv_keypoint k1[4] = {0}, k2[3] = {0};
    for (int i = 0; i < 4; i++)
        k1[i].x = kp1[i][0], k1[i].y = kp1[i][1], k1[i].size = 2;
    for (int i = 0; i < 3; i++)
        k2[i].x = kp2[i][0], k2[i].y = kp2[i][1], k2[i].size = 2;
    static const size_t pairs[] = {0, 1, 1, 0, 3, 2};
    /* FlannBasedMatcher: green matches, every keypoint in red (BGR 0 0 255) */
    static const unsigned char flann_cols[2][3] = {{0, 255, 0}, {0, 0, 255}};
    struct vis_image *m = cv__draw_matches(a, k1, 4, b, k2, 3, pairs, 3, true);
    ASSERT(m != NULL);
    compare(m, sd_flann, flann_cols, 2);
    vis_image_free(m);
    /* BFMatcher: no single points, OpenCV's RNG colours */
    m = cv__draw_matches(a, k1, 4, b, k2, 3, pairs, 3, false);
    ASSERT(m != NULL);
    compare(m, sd_bf, sd_bgr_cols, 3);
    vis_image_free(m);
    /* a gray input is drawn as BGR; no matches: the two images side by side */
    struct vis_image *g = NULL;
    ASSERT_OK(vis_convert(a, VIS_GRAY, &g));
    m = cv__draw_matches(g, k1, 0, b, k2, 0, pairs, 0, false);
    ASSERT(m != NULL && m->fmt == VIS_BGR && m->w == W1 + W2 && m->h == H2);
    uint8_t *p = vis_px(m, 3, 4), *q = vis_px(g, 3, 4);
    ASSERT(p[0] == q[0] && p[1] == q[0] && p[2] == q[0]);
    p = vis_px(m, 2, H1 + 2); /* below the shorter left image: black */
    ASSERT(p[0] == 0 && p[1] == 0 && p[2] == 0);
    vis_image_free(m);
    vis_image_free(g);
    vis_image_free(a), vis_image_free(b);
}

TEST_MAIN()
