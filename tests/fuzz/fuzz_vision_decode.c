/* fuzz_vision_decode.c — vis_probe and vis_decode over arbitrary bytes:
 * any input must give a clean error or an image consistent with probe. */
#include "vision/vision.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vis_image *img = NULL;
    int w = 0, h = 0;
    int prc = vis_probe(data, size, NULL, &w, &h);

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
