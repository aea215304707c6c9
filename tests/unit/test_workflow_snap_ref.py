#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_snap.c (mask_edge_snap@v1,
blocks/snap.c), computed with Debian's python3-opencv and numpy following the
steps roboflow/inference's classical_cv/mask_edge_snap/v1.py describes
(re-implemented here from its description: Sobel magnitude, adaptive
mean + sigma * std threshold over a box window, 3x3 closing and one Zhang-Suen
iteration, ellipse boundary band, 8-connected components kept by the area of
their external contour, contour points moved along the normal to the best
magnitude * proximity edge pixel within tolerance, cv2.fillPoly).
Writes tests/unit/test_workflow_snap_ref.h.
Run: /usr/bin/python3 tests/unit/test_workflow_snap_ref.py"""
import os

import cv2
import numpy as np

W, H = 120, 96


def source():
    img = np.full((H, W), 60, np.uint8)
    cv2.fillPoly(img, [np.array([[20, 15], [70, 20], [64, 70], [16, 60]], np.int32)], 190)
    cv2.circle(img, (92, 62), 18, 130, -1)
    y, x = np.mgrid[0:H, 0:W]
    img = (img.astype(np.int32) + ((x * 7 + y * 13) % 9) - 4).clip(0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 1.0)


def input_masks():
    a = np.zeros((H, W), np.uint8)
    cv2.fillPoly(a, [np.array([[25, 19], [66, 25], [60, 64], [22, 56]], np.int32)], 1)
    b = np.zeros((H, W), np.uint8)
    cv2.circle(b, (94, 60), 13, 1, -1)
    return [a, b]


def thin_once(e):
    img = (e > 0).astype(np.uint8)
    for sub in range(2):
        P1 = img[1:-1, 1:-1]
        P2, P3, P4 = img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:]
        P5, P6, P7 = img[2:, 2:], img[2:, 1:-1], img[2:, :-2]
        P8, P9 = img[1:-1, :-2], img[:-2, :-2]
        seq = [P2, P3, P4, P5, P6, P7, P8, P9, P2]
        B = sum(q.astype(np.int16) for q in seq[:8])
        A = sum(((seq[k] == 0) & (seq[k + 1] == 1)).astype(np.int16) for k in range(8))
        base = (P1 == 1) & (B >= 2) & (B <= 6) & (A == 1)
        if sub == 0:
            c = base & (P2 * P4 * P6 == 0) & (P4 * P6 * P8 == 0)
        else:
            c = base & (P2 * P4 * P8 == 0) & (P2 * P6 * P8 == 0)
        img[1:-1, 1:-1] = np.where(c, 0, P1)
    return img * 255


def snap(gray, masks, tol, sigma, min_area, iters, band_w, win):
    h, w = gray.shape
    r = max(1, band_w)
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    band = np.zeros((h, w), np.uint8)
    for m in masks:
        band = np.maximum(band, ((cv2.dilate(m, ker) > 0) & (cv2.erode(m, ker) == 0)).astype(np.uint8))
    mag = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
    win = max(3, win) | 1
    mean = cv2.boxFilter(mag, cv2.CV_32F, (win, win))
    sq = cv2.boxFilter(mag * mag, cv2.CV_32F, (win, win))
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    e = (mag > mean + float(sigma) * std).astype(np.uint8) * 255
    if iters > 0:
        e = cv2.morphologyEx(e, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)),
                             iterations=iters)
        e = thin_once(e)
    e = (e * band).astype(np.uint8) if masks else e
    n, lab, _, _ = cv2.connectedComponentsWithStats(e, connectivity=8)
    keep = np.zeros((h, w), np.uint8)
    for k in range(1, n):
        cs, _ = cv2.findContours((lab == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        if cs and max(cv2.contourArea(c) for c in cs) >= min_area:
            keep[lab == k] = 1
    region = keep > 0
    out = []
    for m in masks:
        dist = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        dil = cv2.dilate(m, np.ones((3, 3), np.uint8))
        valid = region & ((dist <= tol) | (dil == 0))
        cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        new = np.zeros((h, w), np.uint8)
        for c in cs:
            pts = c.reshape(-1, 2).astype(np.float32)
            ref = pts.copy()
            n_pts = len(pts)
            for i in range(n_pts):
                px, py = pts[i]
                t = pts[(i + 5) % n_pts] - pts[(i - 5) % n_pts]
                tl = np.linalg.norm(t)
                if tl < 1e-6:
                    continue
                t /= tl
                nx, ny = -t[1], t[0]
                best, bp = 0.0, None
                for s in (1.0, -1.0):
                    for d in range(1, tol + 1):
                        sx, sy = int(round(px + s * nx * d)), int(round(py + s * ny * d))
                        if 0 <= sx < w and 0 <= sy < h and valid[sy, sx]:
                            sc = float(mag[sy, sx]) * (1.0 - d / (tol + 1))
                            if sc > best:
                                best, bp = sc, (sx, sy)
                if bp is not None:
                    ref[i] = bp
            cv2.fillPoly(new, [ref.reshape(-1, 1, 2).astype(np.int32)], color=1)
        out.append(new)
    return region.astype(np.uint8), out


def bits(a):
    return '"' + "".join("1" if v else "0" for v in a.reshape(-1)) + '"'


def main():
    gray = source()
    cases = [(15, 1.0, 50.0, 2, 15, 41), (8, 0.5, 10.0, 0, 10, 15), (20, 1.5, 0.0, 3, 25, 61)]
    lines = ["/* generated by test_workflow_snap_ref.py; do not edit */",
             "#define SNAP_W %d" % W, "#define SNAP_H %d" % H, "#define SNAP_NCASES %d" % len(cases),
             "static const unsigned char SNAP_GRAY[] = {" + ",".join(str(v) for v in gray.reshape(-1)) + "};"]
    m0 = input_masks()
    lines.append("static const char *const SNAP_MASKS[] = {%s};" % ", ".join(bits(m) for m in m0))
    lines.append("static const struct { int tol; double sigma, min_area; int iters, band, win; "
                 "const char *edges, *masks[2]; } SNAP_CASES[] = {")
    for (tol, sigma, ma, it, bw, win) in cases:
        edges, out = snap(gray, [m.copy() for m in m0], tol, sigma, ma, it, bw, win)
        lines.append("    {%d, %r, %r, %d, %d, %d, %s, {%s}}," % (
            tol, sigma, ma, it, bw, win, bits(edges), ", ".join(bits(m) for m in out)))
    lines.append("};")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_workflow_snap_ref.h")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
