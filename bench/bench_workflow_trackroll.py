#!/usr/bin/python3
"""The OpenCV side of bench_workflow_trackroll.c: the trackers package's
sparseOptFlow CMC.estimate (cv2.cvtColor, cv2.resize to 1/2,
goodFeaturesToTrack, calcOpticalFlowPyrLK, estimateAffinePartial2D) on the
same textured 1080p frames panning 6 px a frame, best of frames 11..30:
    bench=cmc_opencv ms=<best>"""
import time

import cv2
import numpy as np

W, H = 1920, 1080
y, x0 = np.mgrid[0:H, 0:W].astype(np.float64)


def frame(ox):
    x = x0 + ox
    v = (128 + 50 * np.sin(x / 23.0) * np.cos(y / 17.0) + 35 * np.sin((x + 0.7 * y) / 37.0 + 1.3)
         + 25 * np.cos((0.6 * x - y) / 29.0))
    g = np.floor(v + 0.5).clip(0, 255).astype(np.uint8)
    return cv2.merge([g, g, g])


prev = pts = None
best = 1e9
for f in range(30):
    img = frame(6 * f)
    t0 = time.perf_counter()
    g = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (W // 2, H // 2))
    kp = cv2.goodFeaturesToTrack(g, mask=None, maxCorners=1000, qualityLevel=0.01, minDistance=1, blockSize=3)
    if prev is not None:
        m, st, _ = cv2.calcOpticalFlowPyrLK(prev, g, pts, None)
        ok = st.reshape(-1) == 1
        Hm, _ = cv2.estimateAffinePartial2D(pts[ok], m[ok], method=cv2.RANSAC)
    prev, pts = g, kp
    ms = (time.perf_counter() - t0) * 1000
    if f >= 10:
        best = min(best, ms)
print("bench=cmc_opencv ms=%.3f" % best)
