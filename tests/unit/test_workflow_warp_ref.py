#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_warp.c (perspective_correction
and camera-calibration, blocks/warp.c), computed with Debian's python3-opencv
and numpy the way roboflow/inference's transformations/perspective_correction/
v1.py and transformations/camera_calibration/v1.py do (the steps are
re-implemented here from their description: largest 4-vertex polygon, vertices
sorted clockwise by atan2 about the box centre, rolled to start nearest the
bottom-left corner, extension by detection anchors, cv2.getPerspectiveTransform,
cv2.perspectiveTransform + np.around for boxes / polygons / keypoints,
cv2.warpPerspective; cv2.getOptimalNewCameraMatrix(alpha=1) + cv2.undistort).
Writes tests/unit/test_workflow_warp_ref.h.
Run: /usr/bin/python3 tests/unit/test_workflow_warp_ref.py"""
import math
import os

import cv2
import numpy as np

SW, SH = 160, 120  # synthetic source image


def source():
    y, x = np.mgrid[0:SH, 0:SW]
    img = np.zeros((SH, SW, 3), np.uint8)
    for c in range(3):
        img[:, :, c] = (((x * 7 + y * 3 + c * 40) ^ ((x * y) // 5)) & 255).astype(np.uint8)
    return img


def sort_clockwise(poly):
    xc = min(poly[:, 0]) / 2 + max(poly[:, 0]) / 2
    yc = min(poly[:, 1]) / 2 + max(poly[:, 1]) / 2
    return np.array(sorted(poly.tolist(), key=lambda p: math.atan2(xc - p[0], yc - p[1]),
                           reverse=True))


def roll_bottom_left(poly):
    x0, x1, y0, y1 = min(poly[:, 0]), max(poly[:, 0]), min(poly[:, 1]), max(poly[:, 1])
    rect = [[x0, y1], [x0, y0], [x1, y0], [x1, y1]]

    def dist(p):
        return sum(((a - c) ** 2 + (b - d) ** 2) ** 0.5 for (a, b), (c, d) in zip(rect, p))

    best, bd = poly, dist(poly)
    for s in range(4):
        r = np.roll(poly, s, axis=0)
        d = dist(r)
        if d < bd or (d == bd and r[0][0] < best[0][0]):
            best, bd = r, d
    return best


def line(p1, p2):
    if p1[0] == p2[0]:
        return None, p1[0]
    return (p2[1] - p1[1]) / (p2[0] - p1[0]), (p1[1] * p2[0] - p2[1] * p1[0]) / (p2[0] - p1[0])


def meet(a1, b1, a2, b2):
    if a1 is None:
        x = b1
        y = a2 * x + b2
    elif a2 is None:
        x = b2
        y = a1 * x + b1
    else:
        x = (b2 - b1) / (a1 - a2)
        y = a1 * x + b1
    return np.array((x, y)).round().astype(int)


def contain(v1, v2, v3, v4, x, y):
    a, _ = line(v1, v2)
    b = x if a is None else y - a * x
    a13, b13 = line(v1, v3)
    a24, b24 = line(v2, v4)
    return meet(a13, b13, a, b), meet(a24, b24, a, b)


def ccw(p, q, x, y):
    return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0]) > 0


def anchors(box, name):
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return {"CENTER": (cx, cy), "BOTTOM_CENTER": (cx, y2), "BOTTOM_LEFT": (x1, y2),
            "BOTTOM_RIGHT": (x2, y2), "TOP_LEFT": (x1, y1), "TOP_RIGHT": (x2, y1)}[name]


def extend(poly, boxes, anchor):
    bl, tl, tr, br = [np.array(p) for p in poly]
    ew = eh = 0
    ow = max(np.hypot(*(bl - br)), np.hypot(*(tl - tr)))
    oh = max(np.hypot(*(bl - tl)), np.hypot(*(br - tr)))
    sides = [("BOTTOM_LEFT", "TOP_LEFT"), ("BOTTOM_RIGHT", "TOP_RIGHT"),
             ("BOTTOM_RIGHT", "BOTTOM_LEFT"), ("TOP_RIGHT", "TOP_LEFT")]
    for box in boxes:
        box = np.array(box, np.float32)
        for side in range(4):
            names = sides[side] if anchor == "ALL" else (anchor,)
            for nm in names:
                x, y = anchors(box, nm)
                inside = cv2.pointPolygonTest(np.array([bl, tl, tr, br], np.float32),
                                              (float(x), float(y)), False)
                if inside >= 0:
                    continue
                if side == 0 and not ccw(bl, tl, x, y):
                    o = bl
                    bl, tl = contain(bl, tl, br, tr, x, y)
                    ew += np.hypot(*(bl - o))
                elif side == 1 and not ccw(tr, br, x, y):
                    o = br
                    tr, br = contain(tr, br, tl, bl, x, y)
                    ew += np.hypot(*(br - o))
                elif side == 2 and not ccw(br, bl, x, y):
                    o = bl
                    br, bl = contain(br, bl, tr, tl, x, y)
                    eh += np.hypot(*(bl - o))
                elif side == 3 and not ccw(tl, tr, x, y):
                    o = tl
                    tl, tr = contain(tl, tr, bl, br, x, y)
                    eh += np.hypot(*(tl - o))
    return np.array([bl, tl, tr, br]), ow, oh, ew, eh


def matrix(poly, w, h, boxes=None, anchor=None):
    src = roll_bottom_left(sort_clockwise(np.array(poly)))
    ow, oh, ew, eh = w, h, 0, 0
    if boxes and anchor:
        src, ow, oh, ew, eh = extend(src, boxes, anchor)
    ew = ew * w / max(ow, 1)
    eh = eh * h / max(oh, 1)
    W, H = w + int(round(ew)), h + int(round(eh))
    dst = np.array([[0, H - 1], [0, 0], [W - 1, 0], [W - 1, H - 1]], np.float32)
    return cv2.getPerspectiveTransform(src.astype(np.float32), dst), W, H


def move_box(m, box):
    x0, y0, x1, y1 = np.around(np.array(box, np.float32)).tolist()
    p = np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], np.float32)
    q = cv2.perspectiveTransform(p, m).reshape(-1, 2)
    return np.around([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()]).astype(int)


def move_points(m, pts):
    q = cv2.perspectiveTransform(np.array([pts], np.float32), m).reshape(-1, 2)
    return q


def c_bytes(name, a):
    b = a.tobytes()
    out = [f"static const char {name}[] ="]
    for i in range(0, len(b), 48):
        out.append('    "' + b[i:i + 48].hex() + '"')
    out[-1] += ";"
    return "\n".join(out)


def main():
    img = source()
    L = ["/* Generated by test_workflow_warp_ref.py with OpenCV %s: do not edit. */" % cv2.__version__,
         "", f"#define WARP_SW {SW}", f"#define WARP_SH {SH}"]
    # 1. plain correction: a shuffled quadrilateral, warp to 64 x 48
    poly = [[140, 10], [20, 100], [150, 110], [30, 15]]
    m, W, H = matrix(poly, 64, 48)
    warped = cv2.warpPerspective(img, m, (W, H))
    L.append("static const double WARP_M1[9] = {%s};" % ", ".join(repr(v) for v in m.flatten()))
    L.append(c_bytes("WARP_IMG1", warped))
    boxes = [[40, 30, 60, 50], [100.4, 60.5, 130.6, 90.5]]
    moved = [move_box(m, b) for b in boxes]
    L.append("static const int WARP_BOX1[2][4] = {%s};" % ", ".join(
        "{%s}" % ", ".join(str(int(v)) for v in b) for b in moved))
    # mask polygon and keypoints of the first detection
    mpoly = [[40, 30], [60, 30], [60, 50], [45, 50]]
    q = move_points(m, mpoly)
    L.append("static const int WARP_POLY1[4][2] = {%s};" % ", ".join(
        "{%d, %d}" % tuple(np.around(p).astype(int)) for p in q))
    L.append("static const int WARP_POLYBOX1[4] = {%s};" % ", ".join(
        str(int(v)) for v in np.around([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(),
                                        q[:, 1].max()]).astype(int)))
    kp = move_points(m, [[50, 40]])
    L.append("static const int WARP_KP1[2] = {%d, %d};" % tuple(np.around(kp[0]).astype(int)))
    # 2. extension by anchors: boxes partly outside the polygon
    ebox = [[5, 50, 25, 115], [120, 2, 158, 30]]
    for k, anchor in enumerate(["ALL", "BOTTOM_CENTER"]):
        m2, W2, H2 = matrix([[30, 20], [130, 25], [140, 100], [25, 95]], 100, 80, ebox, anchor)
        L.append("static const double WARP_M_EXT%d[9] = {%s};" % (
            k, ", ".join(repr(v) for v in m2.flatten())))
        L.append(f"#define WARP_EXT{k}_W {W2}")
        L.append(f"#define WARP_EXT{k}_H {H2}")
        L.append("static const int WARP_EXT%d_BOX[2][4] = {%s};" % (k, ", ".join(
            "{%s}" % ", ".join(str(int(v)) for v in move_box(m2, b)) for b in ebox)))
    # 3. camera calibration on the 80 x 60 top-left part of the source
    small = np.ascontiguousarray(img[:60, :80])
    K = np.array([[90.0, 0, 41.5], [0, 85.0, 29.0], [0, 0, 1]])
    D = np.array([-0.32, 0.11, 0.0015, -0.002, 0.01])  # k1 k2 p1 p2 k3
    nk, _ = cv2.getOptimalNewCameraMatrix(K, D, (80, 60), 1, (80, 60))
    und = cv2.undistort(small, K, D, None, nk)
    L.append("static const double CAL_NEWK[9] = {%s};" % ", ".join(repr(v) for v in nk.flatten()))
    L.append(c_bytes("CAL_IMG", und))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_workflow_warp_ref.h")
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
