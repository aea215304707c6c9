/*
 * test_vision.c — image life cycle, sniffing, probing, decoding and
 * encoding, against the tiny images of tests/data/images (see
 * make_images.py there for the exact pixel pattern).
 */
#include "vision/vision.h"
#include "base/base.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

#define IMG_DIR "tests/data/images/"

static char *load(const char *name, size_t *len)
{
    char path[256], *data = NULL;
    snprintf(path, sizeof path, IMG_DIR "%s", name);
    if (file_read_all(path, 1 << 20, &data, len) < 0)
        T_FAIL("cannot read '%s'", path);
    return data;
}

/* Pattern pixel (x, y) in BGR order. */
static void pattern(int x, int y, uint8_t bgr[3])
{
    bgr[0] = 200;
    bgr[1] = (uint8_t)(y * 32);
    bgr[2] = (uint8_t)(x * 16);
}

static void check_pattern(const struct vis_image *img, int tol)
{
    ASSERT_EQ(img->w, 16);
    ASSERT_EQ(img->h, 8);
    ASSERT_EQ(img->fmt, VIS_BGR);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++) {
            uint8_t want[3];
            const uint8_t *p = vis_px(img, x, y);
            pattern(x, y, want);
            for (int c = 0; c < 3; c++)
                if (abs((int)p[c] - want[c]) > tol)
                    T_FAIL("pixel %d,%d ch %d: %d vs %d", x, y, c, p[c], want[c]);
        }
}

static struct vis_image *decode_file(const char *name)
{
    size_t len;
    char *d = load(name, &len);
    struct vis_image *img = NULL;
    int rc = vis_decode(d, len, &img);
    if (rc < 0)
        T_FAIL("decode '%s': %d", name, rc);
    free(d);
    return img;
}

TEST(image_new_limits)
{
    struct vis_image *img = vis_image_new(3, 2, VIS_BGR);
    ASSERT(img);
    ASSERT_EQ(img->stride, 9);
    ASSERT_EQ(img->px[17], 0);
    vis_px(img, 2, 1)[2] = 77;
    struct vis_image *c = vis_image_clone(img);
    ASSERT(c);
    ASSERT_EQ(vis_px(c, 2, 1)[2], 77);
    vis_image_free(img);
    vis_image_free(c);
    vis_image_free(NULL);
    ASSERT(vis_image_new(0, 5, VIS_BGR) == NULL);
    ASSERT(vis_image_new(5, -1, VIS_BGR) == NULL);
    ASSERT(vis_image_new(20000, 20000, VIS_BGR) == NULL); /* > VIS_MAX_PIXELS */
    ASSERT(vis_image_new(70000, 1, VIS_GRAY) == NULL);
    ASSERT(vis_image_new(4, 4, (enum vis_fmt)2) == NULL);
}

TEST(sniff_magic)
{
    ASSERT_EQ(vis_sniff("\xff\xd8\xff\xe0", 4), VIS_TYPE_JPEG);
    ASSERT_EQ(vis_sniff("\x89PNG\r\n\x1a\n", 8), VIS_TYPE_PNG);
    ASSERT_EQ(vis_sniff("RIFF\0\0\0\0WEBPVP8 ", 16), VIS_TYPE_WEBP);
    ASSERT_EQ(vis_sniff("RIFF\0\0\0\0WAVEfmt ", 16), VIS_TYPE_UNKNOWN);
    ASSERT_EQ(vis_sniff("BM\0\0\0\0\0\0\0\0\0\0\0\0", 14), VIS_TYPE_BMP);
    ASSERT_EQ(vis_sniff("BM", 2), VIS_TYPE_UNKNOWN);
    ASSERT_EQ(vis_sniff("\xff\xd8", 2), VIS_TYPE_UNKNOWN);
    ASSERT_EQ(vis_sniff("GIF89a", 6), VIS_TYPE_UNKNOWN);
    ASSERT_EQ(vis_sniff(NULL, 0), VIS_TYPE_UNKNOWN);
    ASSERT_STR_EQ(vis_type_mime(VIS_TYPE_WEBP), "image/webp");
    ASSERT(vis_type_mime(VIS_TYPE_UNKNOWN) == NULL);
    ASSERT_STR_EQ(vis_type_ext(VIS_TYPE_JPEG), "jpg");
}

TEST(probe_all_formats)
{
    static const struct { const char *name; enum vis_type t; } cases[] = {
        {"rgb16x8.jpg", VIS_TYPE_JPEG},      {"rgb16x8_prog.jpg", VIS_TYPE_JPEG},
        {"rgb16x8_exif6.jpg", VIS_TYPE_JPEG}, {"rgb16x8.png", VIS_TYPE_PNG},
        {"rgb16x8.webp", VIS_TYPE_WEBP},     {"rgb16x8_24.bmp", VIS_TYPE_BMP},
        {"rgb16x8_32td.bmp", VIS_TYPE_BMP},  {"pal16x8_8.bmp", VIS_TYPE_BMP},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t len;
        char *d = load(cases[i].name, &len);
        enum vis_type t;
        int w, h;
        ASSERT_OK(vis_probe(d, len, &t, &w, &h));
        ASSERT_EQ(t, cases[i].t);
        ASSERT_EQ(w, 16);
        ASSERT_EQ(h, 8);
        /* every truncation either probes the same or fails cleanly */
        for (size_t n = 0; n < len; n++) {
            int rc = vis_probe(d, n, &t, &w, &h);
            ASSERT(rc == 0 || rc == ERR_PARSE || rc == ERR_UNSUPPORTED);
            if (rc == 0) {
                ASSERT_EQ(w, 16);
                ASSERT_EQ(h, 8);
            }
        }
        free(d);
    }
    ASSERT_EQ(vis_probe("hello", 5, NULL, NULL, NULL), ERR_UNSUPPORTED);
}

TEST(decode_lossless_exact)
{
    const char *names[] = {"rgb16x8.png", "rgba16x8.png", "rgb16x8.webp", "rgb16x8_24.bmp",
                           "rgb16x8_32td.bmp"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        struct vis_image *img = decode_file(names[i]);
        check_pattern(img, 0);
        vis_image_free(img);
    }
}

TEST(decode_jpeg_close)
{
    const char *names[] = {"rgb16x8.jpg", "rgb16x8_prog.jpg"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        struct vis_image *img = decode_file(names[i]);
        check_pattern(img, 40); /* 4:2:0 chroma on a 16x8 ramp */
        vis_image_free(img);
    }
    struct vis_image *g = decode_file("gray16x8.jpg");
    ASSERT_EQ(g->fmt, VIS_BGR);
    const uint8_t *p = vis_px(g, 5, 3);
    ASSERT_EQ(p[0], p[1]);
    ASSERT_EQ(p[1], p[2]);
    vis_image_free(g);
}

TEST(decode_exif_orientation)
{
    size_t len;
    char *d = load("rgb16x8_exif6.jpg", &len);
    struct vis_image *img = NULL, *raw = NULL;
    ASSERT_EQ(vis_jpeg_orientation(d, len), 6);
    ASSERT_OK(vis_decode(d, len, &img));
    ASSERT_EQ(img->w, 8);
    ASSERT_EQ(img->h, 16);
    ASSERT_OK(vis_decode_ex(d, len, VIS_DECODE_IGNORE_ORIENTATION, &raw));
    ASSERT_EQ(raw->w, 16);
    /* rotated 90 clockwise: display (x, y) = stored (y, h-1-x) */
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 8; x++)
            ASSERT_EQ(memcmp(vis_px(img, x, y), vis_px(raw, y, 7 - x), 3), 0);
    vis_image_free(img);
    vis_image_free(raw);
    free(d);
    size_t l2;
    char *d2 = load("rgb16x8.jpg", &l2);
    ASSERT_EQ(vis_jpeg_orientation(d2, l2), 1);
    free(d2);
}

TEST(decode_png_variants)
{
    struct vis_image *img = decode_file("gray16bit.png");
    /* value i*500 (16-bit) -> high byte */
    ASSERT_EQ(vis_px(img, 1, 0)[0], 500 >> 8);
    ASSERT_EQ(vis_px(img, 0, 1)[2], 8000 >> 8);
    ASSERT_EQ(vis_px(img, 15, 7)[1], (127 * 500) >> 8);
    vis_image_free(img);
    img = decode_file("pal16x8.png");
    ASSERT_EQ(img->w, 16);
    ASSERT_EQ(vis_px(img, 0, 0)[0], 200); /* PIL's quantized (48, 0, 200) RGB */
    ASSERT_EQ(vis_px(img, 0, 0)[1], 0);
    ASSERT_EQ(vis_px(img, 0, 0)[2], 48);
    vis_image_free(img);
}

TEST(load_file)
{
    struct vis_image *img = NULL;
    ASSERT_OK(vis_load_file(IMG_DIR "rgb16x8.png", 1 << 20, &img));
    check_pattern(img, 0);
    vis_image_free(img);
    ASSERT_EQ(vis_load_file(IMG_DIR "rgb16x8.png", 10, &img), ERR_LIMIT);
    ASSERT(vis_load_file(IMG_DIR "missing.png", 1 << 20, &img) < 0);
    ASSERT_EQ(vis_load_file(IMG_DIR "make_images.py", 1 << 20, &img), ERR_UNSUPPORTED);
}

TEST(decode_animated_webp_refused)
{
    size_t len;
    char *d = load("anim.webp", &len);
    struct vis_image *img = NULL;
    int w, h;
    ASSERT_EQ(vis_decode(d, len, &img), ERR_UNSUPPORTED);
    ASSERT_OK(vis_probe(d, len, NULL, &w, &h));
    ASSERT_EQ(w, 16);
    free(d);
}

/* vis_check (staging's content check) takes what vis_decode takes, and
 * refuses every truncation and garbage behind a valid magic. */
TEST(check_agrees_with_decode)
{
    const char *names[] = {"rgb16x8.jpg",      "rgb16x8_prog.jpg", "rgb16x8_exif6.jpg", "gray16x8.jpg",
                           "rgb16x8.png",      "rgba16x8.png",     "pal16x8.png",       "gray16bit.png",
                           "rgb16x8.webp",     "rgb16x8_24.bmp",   "rgb16x8_32td.bmp",  "pal16x8_8.bmp"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        size_t len;
        char *d = load(names[i], &len);
        enum vis_type t = VIS_TYPE_UNKNOWN;
        const char *why = NULL;
        ASSERT_OK(vis_check(d, len, &t, &why));
        ASSERT_EQ(t, vis_sniff(d, len));
        /* every cut: refused with a reason exactly when decoding fails */
        for (size_t n = 0; n < len; n++) {
            struct vis_image *img = NULL;
            int drc = vis_decode(d, n, &img);
            vis_image_free(img);
            why = NULL;
            int crc = vis_check(d, n, NULL, &why);
            if ((crc == 0) != (drc == 0))
                T_FAIL("%s cut at %zu: check %d, decode %d", names[i], n, crc, drc);
            if (crc < 0)
                ASSERT(why && why[0]);
        }
        /* a cut of the end (EOI, IEND, the last BMP row...) is refused */
        ASSERT(vis_check(d, len - 1, NULL, NULL) < 0);
        free(d);
    }
    size_t len;
    char *d = load("anim.webp", &len);
    const char *why = NULL;
    ASSERT_EQ(vis_check(d, len, NULL, &why), ERR_UNSUPPORTED);
    ASSERT(strstr(why, "animated"));
    free(d);
    /* garbage after a valid magic */
    static const char *const magic[] = {"\xff\xd8\xff\xe0", "\x89PNG\r\n\x1a\n", "RIFF\x40\0\0\0WEBPVP8 ", "BM"};
    static const size_t mlen[] = {4, 8, 16, 2};
    uint8_t buf[80];
    for (size_t i = 0; i < ARRAY_LEN(magic); i++) {
        memset(buf, 0x5a, sizeof buf);
        memcpy(buf, magic[i], mlen[i]);
        why = NULL;
        ASSERT(vis_check(buf, sizeof buf, NULL, &why) < 0);
        ASSERT(why && why[0]);
    }
    ASSERT_EQ(vis_check("hello", 5, NULL, &why), ERR_UNSUPPORTED);
}

TEST(decode_bmp_palette)
{
    struct vis_image *img = decode_file("pal16x8_8.bmp");
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++) {
            int i = x + y * 16;
            const uint8_t *p = vis_px(img, x, y);
            ASSERT_EQ(p[0], 7);
            ASSERT_EQ(p[1], 255 - i);
            ASSERT_EQ(p[2], i);
        }
    vis_image_free(img);
}

TEST(decode_truncated_and_corrupt)
{
    const char *names[] = {"rgb16x8.jpg", "rgb16x8_prog.jpg", "rgb16x8.png", "rgb16x8.webp",
                           "rgb16x8_24.bmp", "pal16x8_8.bmp", "gray16bit.png"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        size_t len;
        char *d = load(names[i], &len);
        for (size_t n = 0; n < len; n++) {
            struct vis_image *img = NULL;
            int rc = vis_decode(d, n, &img);
            if (rc == 0) {
                /* only a JPEG that lost its EOI may still decode */
                ASSERT(n >= len - 2);
                vis_image_free(img);
            } else {
                if (rc != ERR_PARSE && rc != ERR_UNSUPPORTED)
                    T_FAIL("%s cut at %zu: rc %d", names[i], n, rc);
                ASSERT(img == NULL);
            }
        }
        /* flipped bytes in the middle: clean result either way */
        for (size_t k = 0; k < 64; k++) {
            char *c = malloc(len);
            memcpy(c, d, len);
            c[(k * 7919) % len] ^= (char)(0x5a + k);
            c[(k * 104729 + 3) % len] ^= (char)0xff;
            struct vis_image *img = NULL;
            int rc = vis_decode(c, len, &img);
            ASSERT(rc == 0 || rc == ERR_PARSE || rc == ERR_UNSUPPORTED || rc == ERR_LIMIT);
            vis_image_free(img);
            free(c);
        }
        free(d);
    }
}

TEST(decode_lenient_truncated_jpeg)
{
    size_t len;
    char *d = load("rgb16x8.jpg", &len);
    struct vis_image *img = NULL;
    size_t cut = len - 40; /* inside the entropy-coded data */
    ASSERT_EQ(vis_decode(d, cut, &img), ERR_PARSE);
    ASSERT_OK(vis_decode_ex(d, cut, VIS_DECODE_LENIENT, &img));
    ASSERT_EQ(img->w, 16);
    vis_image_free(img);
    ASSERT_EQ(vis_decode_ex(d, 100, VIS_DECODE_LENIENT, &img), ERR_PARSE); /* no header */
    free(d);
}

TEST(decode_tables_only_jpeg)
{
    /* tjDecompressHeader3 "succeeds" on these without setting the size */
    struct vis_image *img = NULL;
    for (int i = 0; i < 50; i++) {
        ASSERT_EQ(vis_decode("\xff\xd8\xff", 3, &img), ERR_PARSE);
        ASSERT_EQ(vis_decode("\xff\xd8\xff\xd9", 4, &img), ERR_PARSE);
    }
    ASSERT(img == NULL);
}

TEST(decode_oversize_refused)
{
    /* PNG header claiming 60000x60000: ERR_LIMIT before any allocation */
    size_t len;
    char *d = load("rgb16x8.png", &len);
    struct vis_image *img = NULL;
    d[16] = 0; d[17] = 0; d[18] = (char)0xEA; d[19] = 0x60;
    d[20] = 0; d[21] = 0; d[22] = (char)0xEA; d[23] = 0x60;
    int rc = vis_decode(d, len, &img);
    ASSERT(rc == ERR_LIMIT || rc == ERR_PARSE); /* IHDR CRC now wrong */
    free(d);
    /* BMP 30000x30000, 24 bit, no data */
    uint8_t bmp[54] = {'B', 'M'};
    bmp[10] = 54; bmp[14] = 40;
    bmp[18] = 0x30; bmp[19] = 0x75; bmp[22] = 0x30; bmp[23] = 0x75;
    bmp[26] = 1; bmp[28] = 24;
    ASSERT_EQ(vis_decode(bmp, sizeof bmp, &img), ERR_LIMIT);
    int w, h;
    ASSERT_OK(vis_probe(bmp, sizeof bmp, NULL, &w, &h));
    ASSERT_EQ(w, 30000);
    /* JPEG SOF with 65000x65000 */
    size_t jl;
    char *j = load("rgb16x8.jpg", &jl);
    for (size_t i = 2; i + 9 < jl; i++)
        if ((uint8_t)j[i] == 0xFF && (uint8_t)j[i + 1] == 0xC0) {
            j[i + 5] = (char)0xFD; j[i + 6] = (char)0xE8;
            j[i + 7] = (char)0xFD; j[i + 8] = (char)0xE8;
            break;
        }
    ASSERT_OK(vis_probe(j, jl, NULL, &w, &h));
    ASSERT_EQ(w, 65000);
    ASSERT_EQ(vis_decode(j, jl, &img), ERR_LIMIT);
    free(j);
}

TEST(encode_roundtrip)
{
    struct vis_image *img = vis_image_new(16, 8, VIS_BGR), *back = NULL;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++)
            pattern(x, y, vis_px(img, x, y));
    uint8_t *buf = NULL;
    size_t len = 0;
    ASSERT_OK(vis_encode_png(img, &buf, &len));
    ASSERT_EQ(vis_sniff(buf, len), VIS_TYPE_PNG);
    ASSERT_OK(vis_decode(buf, len, &back));
    check_pattern(back, 0);
    vis_image_free(back);
    free(buf);
    ASSERT_OK(vis_encode_jpeg(img, 95, &buf, &len));
    ASSERT_EQ(vis_sniff(buf, len), VIS_TYPE_JPEG);
    ASSERT_OK(vis_decode(buf, len, &back));
    check_pattern(back, 40);
    vis_image_free(back);
    free(buf);
    ASSERT_EQ(vis_encode_jpeg(img, 0, &buf, &len), ERR_INVALID);
    vis_image_free(img);
    /* gray and BGRA inputs */
    struct vis_image *g = vis_image_new(5, 3, VIS_GRAY);
    memset(g->px, 99, 15);
    ASSERT_OK(vis_encode_png(g, &buf, &len));
    ASSERT_OK(vis_decode(buf, len, &back));
    ASSERT_EQ(vis_px(back, 4, 2)[1], 99);
    vis_image_free(back);
    free(buf);
    ASSERT_OK(vis_encode_jpeg(g, 90, &buf, &len));
    free(buf);
    vis_image_free(g);
    struct vis_image *a = vis_image_new(4, 4, VIS_BGRA);
    memset(a->px, 50, 64);
    ASSERT_OK(vis_encode_png(a, &buf, &len));
    ASSERT_OK(vis_decode(buf, len, &back));
    ASSERT_EQ(vis_px(back, 3, 3)[0], 50);
    vis_image_free(back);
    vis_image_free(a);
    free(buf);
}

TEST(decode_jpeg_scaled)
{
    struct vis_image *img = vis_image_new(100, 60, VIS_BGR), *s = NULL;
    memset(img->px, 120, (size_t)img->stride * 60);
    uint8_t *buf;
    size_t len;
    ASSERT_OK(vis_encode_jpeg(img, 90, &buf, &len));
    ASSERT_OK(vis_decode_jpeg_scaled(buf, len, 4, &s));
    ASSERT_EQ(s->w, 25);
    ASSERT_EQ(s->h, 15);
    ASSERT_NEAR(vis_px(s, 10, 10)[1], 120, 3);
    vis_image_free(s);
    ASSERT_OK(vis_decode_fit(buf, len, 30, 20, &s));
    ASSERT_EQ(s->w, 50); /* 1/4 would give 25 < 30 */
    vis_image_free(s);
    ASSERT_EQ(vis_decode_jpeg_scaled(buf, len, 3, &s), ERR_INVALID);
    free(buf);
    ASSERT_OK(vis_encode_png(img, &buf, &len));
    ASSERT_EQ(vis_decode_jpeg_scaled(buf, len, 2, &s), ERR_UNSUPPORTED);
    ASSERT_OK(vis_decode_fit(buf, len, 10, 10, &s));
    ASSERT_EQ(s->w, 100);
    vis_image_free(s);
    free(buf);
    vis_image_free(img);
}

TEST(decode_alloc_failure)
{
    size_t len;
    char *d = load("rgb16x8.png", &len);
    for (unsigned long n = 1; n < 6; n++) {
        struct vis_image *img = NULL;
        try_alloc_fail_at(n);
        int rc = vis_decode(d, len, &img);
        try_alloc_fail_at(0);
        ASSERT(rc == 0 || rc == ERR_NOMEM);
        vis_image_free(img);
    }
    free(d);
}

TEST_MAIN()
