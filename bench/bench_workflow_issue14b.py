#!/usr/bin/python3
"""OpenCV counterpart of image_stack in bench_workflow_issue14b.c: Roboflow's
_compress_frame on the same synthetic 1920x1080 BGR image — cv2.resize
INTER_AREA to 640x360, then cv2.imencode JPEG (Roboflow's quality 95 is an
assumption here: what the block keeps). Best of 20, milliseconds."""
import time

import cv2
import numpy as np

y, x = np.mgrid[0:1080, 0:1920 * 3]
img = ((x * 7 + y * 3) & 0xFF).astype(np.uint8).reshape(1080, 1920, 3)


def best(fn):
    t = []
    for _ in range(20):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1000)
    return min(t)


print("bench=cv2_resize_area_640x360 ms=%.3f" % best(lambda: cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA)))
print("bench=cv2_resize_area_640x360_plus_imencode ms=%.3f" % best(
    lambda: cv2.imencode(".jpg", cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA),
                         [cv2.IMWRITE_JPEG_QUALITY, 95])))
print("bench=cv2_imencode_1080p ms=%.3f" % best(lambda: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])))
