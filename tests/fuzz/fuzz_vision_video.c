/* fuzz_vision_video.c — FFmpeg probing and a few decoded frames from
 * memory through our AVIOContext callbacks: any input gives a clean error
 * or consistent info, never a crash or leak. */
#include "vision/vision.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vis_video_info in;
    struct vis_video *v = NULL;
    struct vis_image *img = NULL;

    if (vis_video_probe_mem(data, size, &in) == 0 && (in.width <= 0 || in.height <= 0))
        abort();
    if (vis_video_open_mem(data, size, 5.0, &v) == 0) {
        for (int i = 0; i < 3 && vis_video_next(v, &img, NULL) == 1; i++) {
            if (img->w <= 0 || img->h <= 0)
                abort();
            vis_image_free(img);
        }
        vis_video_free(v);
    }
    return 0;
}
