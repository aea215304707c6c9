#!/usr/bin/python3
"""background_subtraction / motion_detection on 1080p: vbatch's blocks
(build/bench/bench_workflow_motion) against the same work in python3-opencv,
measured in one run on the same frames.  OpenCV's side is what Roboflow's
blocks call per frame: MOG2 apply (+ the 3-channel stack for
background_subtraction; + morphologyEx, findContours, contourArea,
approxPolyDP, boundingRect for motion_detection).

Usage: /usr/bin/python3 bench/motion_bench.py [frames] [bench binary]
"""
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np

W, H = 1920, 1080


def frame(t):
    y, x = np.mgrid[0:H, 0:W]
    noise = ((x * 31 + y * 17 + t * 13) % 7) - 3
    img = np.dstack([(x * 5 + y * 3) % 200 + 20 + noise, (x * 2 + y * 7) % 180 + 30 + noise,
                     (x * 3 + y * 2) % 160 + 40 + noise]).astype(np.uint8)
    sx = 100 + 12 * t
    img[300:600, sx:sx + 300] = [250, 40, 200]
    return img


def cv_bgsub(frames):
    sub = cv2.createBackgroundSubtractorMOG2(history=30, varThreshold=16, detectShadows=True)
    times = []
    for k, f in enumerate(frames):
        t0 = time.perf_counter()
        m = sub.apply(f)
        np.stack((m,) * 3, axis=-1)
        if k >= 1:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cv_motion(frames):
    sub = cv2.createBackgroundSubtractorMOG2(history=30, varThreshold=16, detectShadows=True)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    times = []
    for k, f in enumerate(frames):
        t0 = time.perf_counter()
        m = sub.apply(f)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
        cts, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in cts:
            if cv2.contourArea(c) > 200:
                a = cv2.approxPolyDP(c, 0.01 * cv2.arcLength(c, True), True)
                cv2.boundingRect(a)
        if k >= 1:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    binary = sys.argv[2] if len(sys.argv) > 2 else "build/bench/bench_workflow_motion"
    print(subprocess.run([binary, str(n)], check=True, capture_output=True, text=True).stdout,
          end="")
    frames = [frame(t) for t in range(n)]
    print("bench=opencv_mog2_1080p ms=%.3f threads=%d" % (cv_bgsub(frames), cv2.getNumThreads()))
    print("bench=opencv_motion_chain_1080p ms=%.3f" % cv_motion(frames))
    cv2.setNumThreads(1)
    print("bench=opencv_mog2_1080p_1thread ms=%.3f" % cv_bgsub(frames))


if __name__ == "__main__":
    main()
