#!/usr/bin/python3
"""perspective_correction / camera-calibration / camera_focus v2 /
auto_rotate_on_edges on a 1080p image: vbatch's C code
(build/bench/bench_workflow_warp) against the same calls in python3-opencv,
measured in one run on the same frame.  OpenCV's side is what Roboflow's
blocks call: getPerspectiveTransform + warpPerspective; getOptimalNewCameraMatrix
+ undistort; cvtColor + 2 Sobel + numpy squares/mean + the overlay code of
camera_focus/v2.py (zebra, peaking, crosshair, 3x3 grid, HUD); cvtColor +
INTER_AREA + CLAHE + GaussianBlur + Sobel/hypot/percentile/histogram + the
expanding warpAffine of auto_rotate_on_edges/v1.py; SIFT_create().detectAndCompute
on the gray (sift/v1.py).

Usage: /usr/bin/python3 bench/warp_bench.py [runs] [bench binary]
"""
import math
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np

W, H = 1920, 1080


def frame():
    y, x = np.mgrid[0:H, 0:W]
    return np.dstack([(x * 5 + y * 3) % 200 + 20, np.where(((x * 7 + y) // 16) % 2 == 1, 200, 40),
                      (x * 3 + y * 2) % 160 + 40]).astype(np.uint8)


def timed(fn, runs):
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def perspective(img):
    src = np.array([[200, 1000], [400, 100], [1600, 150], [1800, 1050]], np.float32)
    dst = np.array([[0, 1079], [0, 0], [1919, 0], [1919, 1079]], np.float32)
    cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (W, H))


def undistort(img):
    K = np.array([[1400, 0, 960], [0, 1400, 540], [0, 0, 1]], np.float64)
    D = np.array([-0.3, 0.1, 0.001, -0.001, 0.0])
    nk, _ = cv2.getOptimalNewCameraMatrix(K, D, (W, H), 1, (W, H))
    cv2.undistort(img, K, D, None, nk)


def focus_v2(img):
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    fm = gx * gx + gy * gy
    focus = float(fm.mean())
    out = img.copy()
    yy, xx = np.ogrid[:H, :W]
    z = ((xx + yy) // 8) % 2 == 0
    u, o = (gray < 7) & z, (gray > 247) & z
    out[u] = (out[u] * 0.5 + np.array([255, 0, 0], np.uint8) * 0.5).astype(np.uint8)
    out[o] = (out[o] * 0.5 + np.array([0, 0, 255], np.uint8) * 0.5).astype(np.uint8)
    m = (fm / fm.max() * 255).astype(np.uint8) > 76
    out[m] = (out[m] * 0.4 + np.array([0, 255, 0], np.uint8) * 0.6).astype(np.uint8)
    s = max(0.4, min(min(H, W) / 720, 2.5))
    sz, th = int(20 * s), max(1, int(1.6 * s))
    cv2.line(out, (W // 2 - sz, H // 2), (W // 2 + sz, H // 2), (255, 255, 255), th)
    cv2.line(out, (W // 2, H // 2 - sz), (W // 2, H // 2 + sz), (255, 255, 255), th)
    for i in range(1, 3):
        cv2.line(out, (W * i // 3, 0), (W * i // 3, H), (128, 128, 128), 1)
        cv2.line(out, (0, H * i // 3), (W, H * i // 3), (128, 128, 128), 1)
    # HUD: panel blend, texts, histograms
    ov = out.copy()
    cv2.rectangle(ov, (18, 18), (330, 160), (0, 0, 0), -1)
    cv2.addWeighted(ov, 0.7, out, 0.3, 0, out)
    cv2.putText(out, "TFM Focus", (40, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.75, (255, 255, 255), 2)
    cv2.putText(out, f"{focus:.1f}", (200, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.75, (255, 255, 255), 2)
    xs = np.linspace(40, 309, 256).astype(np.int32)
    for ch in range(3):
        h = cv2.calcHist([img], [ch], None, [256], [0, 256])
        pts = np.column_stack([xs, 150 - (h / h.max() * 75).astype(np.int32).flatten()])
        cv2.polylines(out, [pts.astype(np.int32)], False, (255, 255, 255), 2)
    h = cv2.calcHist([gray], [0], None, [256], [0, 256])
    pts = np.column_stack([xs, 150 - (h / h.max() * 75).astype(np.int32).flatten()])
    cv2.polylines(out, [pts.astype(np.int32)], False, (255, 255, 255), 2)


def auto_rotate(img):
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(gray, (1000, 562), interpolation=cv2.INTER_AREA)
    gray.std()
    p = cv2.GaussianBlur(cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray),
                         (5, 5), 0).astype(np.float32)
    gx = cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    keep = mag >= max(float(np.percentile(mag, 80.0)), 1e-6)
    theta = np.mod(np.degrees(np.arctan2(gy[keep], gx[keep])), 180.0)
    wts = mag[keep].astype(np.float64)
    hist, _ = np.histogram(theta, bins=180, range=(0.0, 180.0), weights=wts)
    ext = np.concatenate([hist[-2:], hist, hist[:2]])
    sm = np.convolve(ext, np.ones(5) / 5.0, mode="same")[2:-2]
    peak = float(np.argmax(sm)) + 0.5
    d = np.abs(theta - peak)
    d = np.minimum(d, 180.0 - d)
    sel = d <= 3.0
    dbl = np.radians(2.0 * theta[sel])
    ga = 0.5 * np.degrees(np.arctan2(float((wts[sel] * np.sin(dbl)).sum()),
                                     float((wts[sel] * np.cos(dbl)).sum())))
    ga = ga % 180.0
    if ga > 90:
        ga -= 180
    M = cv2.getRotationMatrix2D((W // 2, H // 2), ga, 1.0)
    c, s = abs(M[0, 0]), abs(M[0, 1])
    nw, nh = int(H * s + W * c), int(H * c + W * s)
    M[0, 2] += nw / 2 - W // 2
    M[1, 2] += nh / 2 - H // 2
    cv2.warpAffine(img, M, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def sift(img):
    cv2.SIFT_create().detectAndCompute(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), None)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    binary = sys.argv[2] if len(sys.argv) > 2 else "build/bench/bench_workflow_warp"
    out = subprocess.run([binary, str(runs)], check=True, capture_output=True, text=True).stdout
    ours = {}
    for line in out.splitlines():
        k, v = line.split()
        ours[k.split("=")[1]] = float(v.split("=")[1])
    img = frame()
    fns = [("perspective_warp", perspective), ("undistort", undistort),
           ("camera_focus_v2", focus_v2), ("auto_rotate", auto_rotate), ("sift", sift)]
    default_threads = cv2.getNumThreads()
    cv_ms = {}
    for threads in (default_threads, 1):
        cv2.setNumThreads(threads)
        for name, fn in fns:
            cv_ms[(name, threads)] = timed(lambda: fn(img), min(runs, 3) if name == "sift" else runs)
    print(f"{'block work':18s} {'vbatch':>9s} {'cv2 ' + str(default_threads) + ' thr':>11s} "
          f"{'cv2 1 thr':>10s}  (median ms per 1080p image, {runs} runs)")
    for name, _ in fns:
        print(f"{name:18s} {ours[name]:9.2f} {cv_ms[(name, default_threads)]:11.2f} "
              f"{cv_ms[(name, 1)]:10.2f}")


if __name__ == "__main__":
    main()
