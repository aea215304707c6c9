#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_cmc.c: the `trackers`
package's sparseOptFlow camera-motion compensation (CMC.estimate) as
python3-opencv computes it on the test's two analytic frames (frame(0),
then frame(1): the texture moved by (tx, ty) and turned by ang about the
centre).  Prints the corner count and first corners of
cv2.goodFeaturesToTrack, then per --lk the tracked points of
cv2.calcOpticalFlowPyrLK, and H of estimate() with downscale 1 and 2."""
import math
import sys

import cv2
import numpy as np

W, H = 320, 240


def frame(k, tx=3.4, ty=-2.2, ang=0.01):
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    if k:
        c, s = math.cos(ang), math.sin(ang)
        x, y = x - W / 2 - tx, y - H / 2 - ty
        x, y = c * x + s * y + W / 2, -s * x + c * y + H / 2
    v = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 5.0) + 40 * np.sin((x + 2 * y) / 11.0)
    return np.floor(v + 0.5).clip(0, 255).astype(np.uint8)


def estimate(prev, cur, downscale):
    def prep(g):
        return cv2.resize(g, (W // downscale, H // downscale)) if downscale > 1 else g
    p, c = prep(prev), prep(cur)
    prev_pts = cv2.goodFeaturesToTrack(p, mask=None, maxCorners=1000, qualityLevel=0.01, minDistance=1,
                                       blockSize=3, useHarrisDetector=False, k=0.04)
    matched, status, _ = cv2.calcOpticalFlowPyrLK(p, c, prev_pts, None)
    ok = status.reshape(-1) == 1
    Hm, _ = cv2.estimateAffinePartial2D(prev_pts[ok], matched[ok], method=cv2.RANSAC)
    Hm = Hm.astype(np.float32)
    Hm[0, 2] *= downscale
    Hm[1, 2] *= downscale
    return Hm


f0, f1 = frame(0), frame(1)
pts = cv2.goodFeaturesToTrack(f0, 1000, 0.01, 1, blockSize=3)
print("corners", len(pts), " ".join("%g,%g" % tuple(p[0]) for p in pts[:6]))
nxt, st, _ = cv2.calcOpticalFlowPyrLK(f0, f1, pts, None)
print("tracked", int(st.sum()), " ".join("%.4f,%.4f" % tuple(p[0]) for p in nxt[:4]))
for d in (1, 2):
    print("H downscale", d, " ".join("%.6f" % v for v in estimate(f0, f1, d).reshape(-1)))
