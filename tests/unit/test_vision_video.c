/*
 * test_vision_video.c — container probing and frame iteration on the
 * videos Debian's python3-imageio ships (a dependency in
 * scripts/install-deps.sh): realshort.mp4 (320x240 H.264, 36 frames) and
 * cockatoo.mp4 (1280x720 H.264, 280 frames at 20 fps).
 */
#include "vision/vision.h"
#include "base/base.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

#define VID_DIR "/usr/lib/python3/dist-packages/imageio/resources/images/"

static char *load(const char *path, size_t *len)
{
    char *d = NULL;
    if (file_read_all(path, 8 << 20, &d, len) < 0)
        T_FAIL("cannot read '%s' (install python3-imageio)", path);
    return d;
}

TEST(probe_file)
{
    struct vis_video_info in;
    ASSERT_OK(vis_video_probe_file(VID_DIR "realshort.mp4", &in));
    ASSERT_EQ(in.width, 320);
    ASSERT_EQ(in.height, 240);
    ASSERT_EQ(in.frame_count, 36);
    ASSERT_NEAR(in.fps, 30.02, 0.01);
    ASSERT_NEAR(in.duration_s, 1.2, 0.01);
    ASSERT_STR_EQ(in.codec, "h264");
    ASSERT(strstr(in.container, "mp4") != NULL);
    ASSERT_EQ(vis_video_probe_file("/nonexistent.mp4", &in), ERR_PARSE);
    /* still images are not videos */
    ASSERT(vis_video_probe_file("tests/data/images/rgb16x8.jpg", &in) < 0);
    ASSERT(vis_video_probe_file("tests/data/images/rgb16x8.png", &in) < 0);
}

TEST(probe_mem_and_garbage)
{
    size_t len;
    char *d = load(VID_DIR "realshort.mp4", &len);
    struct vis_video_info in;
    ASSERT_OK(vis_video_probe_mem(d, len, &in));
    ASSERT_EQ(in.width, 320);
    ASSERT_EQ(in.frame_count, 36);
    /* truncated: header (moov) is at the end or start; either a clean
     * error or a probe of the same size */
    for (size_t n = 1; n < len; n += len / 7) {
        int rc = vis_video_probe_mem(d, n, &in);
        ASSERT(rc == 0 || rc == ERR_PARSE || rc == ERR_UNSUPPORTED);
        if (rc == 0)
            ASSERT_EQ(in.width, 320);
    }
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7919 >> 3);
    ASSERT(vis_video_probe_mem(junk, sizeof junk, &in) < 0);
    ASSERT_EQ(vis_video_probe_mem(NULL, 0, &in), ERR_PARSE);
    free(d);
}

TEST(no_playlists_or_protocols)
{
    struct vis_video_info in;
    /* an HLS playlist pointing at a real local video must not be followed */
    const char *m3u8 = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                       "file://" VID_DIR "realshort.mp4\n#EXT-X-ENDLIST\n";
    ASSERT(vis_video_probe_mem(m3u8, strlen(m3u8), &in) < 0);
    const char *ffconcat = "ffconcat version 1.0\nfile '" VID_DIR "realshort.mp4'\n";
    ASSERT(vis_video_probe_mem(ffconcat, strlen(ffconcat), &in) < 0);
    ASSERT(vis_video_probe_file("concat:" VID_DIR "realshort.mp4|" VID_DIR "realshort.mp4", &in) < 0);
    ASSERT(vis_video_probe_file("file:" VID_DIR "realshort.mp4", &in) < 0); /* a name, not a URL */
    ASSERT(vis_video_probe_file("http://127.0.0.1:9/x.mp4", &in) < 0);
}

TEST(path_with_colon)
{
    size_t len;
    char *d = load(VID_DIR "realshort.mp4", &len);
    char dir[] = "/tmp/vis_test_XXXXXX", path[64];
    struct vis_video_info in;
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/concat:a|b.mp4", dir);
    ASSERT_OK(file_write_atomic(path, d, len));
    int rc = vis_video_probe_file(path, &in);
    unlink(path);
    rmdir(dir);
    ASSERT_OK(rc);
    ASSERT_EQ(in.width, 320);
    free(d);
}

TEST(iterate_all_frames_drains)
{
    struct vis_video *v = NULL;
    struct vis_image *img;
    struct vis_frame_meta m;
    long long n = 0, last = -1;
    int rc;
    ASSERT_OK(vis_video_open_file(VID_DIR "realshort.mp4", 0, &v));
    while ((rc = vis_video_next(v, &img, &m)) == 1) {
        ASSERT_EQ(img->w, 320);
        ASSERT_EQ(img->h, 240);
        ASSERT_EQ(img->fmt, VIS_BGR);
        ASSERT_EQ(m.index, last + 1);
        last = m.index;
        n++;
        vis_image_free(img);
    }
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(n, 36); /* every frame, including those held by the decoder */
    ASSERT_EQ(vis_video_next(v, &img, &m), 0); /* stays at the end */
    vis_video_free(v);
}

TEST(iterate_max_fps_mem)
{
    size_t len;
    char *d = load(VID_DIR "cockatoo.mp4", &len);
    struct vis_video *v = NULL;
    struct vis_image *img;
    struct vis_frame_meta m;
    long long n = 0;
    double prev = -1;
    int rc;
    ASSERT_OK(vis_video_open_mem(d, len, 2.0, &v)); /* 20 fps -> 2 fps: every 10th */
    ASSERT_EQ(vis_video_info(v)->width, 1280);
    ASSERT_EQ(vis_video_info(v)->frame_count, 280);
    while ((rc = vis_video_next(v, &img, &m)) == 1) {
        ASSERT_EQ(m.index % 10, 0);
        if (prev >= 0)
            ASSERT_NEAR(m.pts_s - prev, 0.5, 1e-6);
        prev = m.pts_s;
        n++;
        /* frames are real pictures, not blank */
        int lo = 255, hi = 0;
        for (int x = 0; x < img->w; x += 7) {
            int g = vis_px(img, x, img->h / 2)[1];
            lo = MIN(lo, g);
            hi = MAX(hi, g);
        }
        ASSERT(hi - lo > 20);
        vis_image_free(img);
        if (n >= 8)
            break; /* enough: keep the test short under sanitizers */
    }
    ASSERT_EQ(n, 8);
    vis_video_free(v);
    free(d);
}

TEST(iterate_truncated)
{
    size_t len;
    char *d = load(VID_DIR "realshort.mp4", &len);
    struct vis_video *v = NULL;
    struct vis_image *img;
    int rc = vis_video_open_mem(d, len * 2 / 3, 0, &v);
    if (rc == 0) {
        long n = 0;
        while ((rc = vis_video_next(v, &img, NULL)) == 1) {
            vis_image_free(img);
            n++;
        }
        ASSERT(rc == 0 || rc == ERR_PARSE);
        ASSERT(n <= 36);
        vis_video_free(v);
    } else {
        ASSERT(rc == ERR_PARSE || rc == ERR_UNSUPPORTED);
    }
    free(d);
}

TEST_MAIN()
