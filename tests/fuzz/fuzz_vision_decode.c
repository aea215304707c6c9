/* fuzz_vision_decode.c — vis_probe, vis_check and vis_decode over
 * arbitrary bytes: any input must give a clean error or an image
 * consistent with probe; what staging's check accepts has a valid header,
 * and a check error always comes with a reason. */
#include "vision/vision.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vis_image *img = NULL;
    int w = 0, h = 0;
    int prc = vis_probe(data, size, NULL, &w, &h);
    const char *why = NULL;
    int crc = vis_check(data, size, NULL, &why);

    if ((crc == 0 && prc != 0) || (crc < 0 && (!why || !why[0])))
        abort();

    if (vis_decode_ex(data, size, VIS_DECODE_IGNORE_ORIENTATION, &img) == 0) {
        if (prc != 0 || img->w != w || img->h != h)
            abort();
        vis_image_free(img);
    }
    img = NULL;
    if (vis_decode_ex(data, size, VIS_DECODE_LENIENT, &img) == 0) {
        if (prc != 0)
            abort();
        vis_image_free(img);
    }
    img = NULL;
    if (size > 0 && vis_decode_jpeg_scaled(data, size, 1 << (data[size - 1] & 3), &img) == 0)
        vis_image_free(img);
    return 0;
}
