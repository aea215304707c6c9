/*
 * test_staging_hard.c — the input checks added while attacking the server
 * (tests/e2e/test_bad_input.py): UTF-8 validity of names, the header size
 * check of staged images.
 */
#include <string.h>

#include "base/base.h"
#include "staging/staging_int.h"
#include "t.h"
#include "vision/vision.h"

TEST(utf8_valid_accepts_and_refuses)
{
    ASSERT(staging__utf8_valid(""));
    ASSERT(staging__utf8_valid("plain.png"));
    ASSERT(staging__utf8_valid("\xc3\xa9t\xc3\xa9.png"));          /* été */
    ASSERT(staging__utf8_valid("\xe2\x82\xac"));                   /* € */
    ASSERT(staging__utf8_valid("\xf0\x9f\x98\x80.jpg"));           /* emoji */
    ASSERT(!staging__utf8_valid("\xff\xfe.png"));
    ASSERT(!staging__utf8_valid("a\xc3"));                         /* truncated */
    ASSERT(!staging__utf8_valid("\xc0\xaf"));                      /* overlong '/' */
    ASSERT(!staging__utf8_valid("\xe0\x80\xaf"));                  /* overlong */
    ASSERT(!staging__utf8_valid("\xed\xa0\x80"));                  /* surrogate */
    ASSERT(!staging__utf8_valid("\xf4\x90\x80\x80"));              /* > U+10FFFF */
    ASSERT(!staging__utf8_valid("\x80"));                          /* lone continuation */
}

TEST(name_valid_refuses_non_utf8)
{
    ASSERT(staging__name_valid("\xc3\xa9t\xc3\xa9.png"));
    ASSERT(!staging__name_valid("a\xff.png"));
    ASSERT(!staging__name_valid("../x.png"));
    ASSERT(!staging__name_valid("a\x01.png"));
}

static size_t png_with_size(uint8_t *out, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[25] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (int i = 0; i < 4; i++) {
        ihdr[8 + i] = (uint8_t)(w >> (24 - 8 * i));
        ihdr[12 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    ihdr[16] = 8; /* depth */
    ihdr[17] = 2; /* RGB */
    memcpy(out, sig, 8);
    memcpy(out + 8, ihdr, sizeof ihdr); /* CRC left 0: the probe reads the header only */
    return 8 + sizeof ihdr;
}

TEST(image_mime_refuses_oversize_headers)
{
    uint8_t buf[64];
    size_t n = png_with_size(buf, 16, 8);
    /* a header alone is not an image a job can decode */
    const char *type = NULL, *why = NULL;
    ASSERT(staging__image_mime(buf, n, &type, &why) == NULL);
    ASSERT_STR_EQ(type, "corrupt-image-file");
    ASSERT_STR_EQ(why, "truncated or corrupt PNG data");
    struct vis_image *img = vis_image_new(16, 8, VIS_BGR);
    uint8_t *png = NULL;
    size_t plen = 0;
    ASSERT_OK(vis_encode_png(img, &png, &plen));
    ASSERT_STR_EQ(staging__image_mime(png, plen, NULL, NULL), "image/png");
    ASSERT(staging__image_mime(png, plen - 13, &type, &why) == NULL); /* IEND cut off */
    ASSERT_STR_EQ(type, "corrupt-image-file");
    free(png);
    vis_image_free(img);
    n = png_with_size(buf, 100000, 100000);
    ASSERT(staging__image_mime(buf, n, NULL, NULL) == NULL);
    n = png_with_size(buf, VIS_MAX_SIDE + 1, 1);
    ASSERT(staging__image_mime(buf, n, NULL, NULL) == NULL);
    n = png_with_size(buf, 20000, 20000); /* sides fine, 400 Mpx over VIS_MAX_PIXELS */
    ASSERT(staging__image_mime(buf, n, NULL, NULL) == NULL);
}

TEST_MAIN()
