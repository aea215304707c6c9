#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_measure.c, computed with
Debian's python3-opencv / numpy the way roboflow/inference's blocks compute
them (mask_area_measurement: cv2.fillPoly + cv2.countNonZero as
sv.polygon_to_mask; camera_focus v1: calculate_brenner_measure on
cv2.cvtColor(BGR2GRAY); detections_nearest_neighbor: the brute-force distance
matrix).  Run: /usr/bin/python3 tests/unit/test_workflow_measure_ref.py"""
import cv2
import numpy as np


def pattern(w, h):
    """The synthetic BGR image the C test builds (pattern_image())."""
    y, x = np.mgrid[0:h, 0:w]
    b = (x * 7 + y * 3) & 255
    g = (x * x + y) & 255
    r = (x + y * y * 5) & 255
    return np.dstack([b, g, r]).astype(np.uint8)


def mask_area(poly, w, h):
    m = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(m, [np.array(poly, dtype=np.int32)], color=1)
    return cv2.countNonZero(m)


def brenner(img):
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.int16)
    h, w = g.shape
    hd = np.zeros((h, w))
    vd = np.zeros((h, w))
    hd[:, : w - 2] = np.clip(g[:, 2:] - g[:, :-2], 0, None)
    vd[: h - 2, :] = np.clip(g[2:, :] - g[:-2, :], 0, None)
    fm = np.max((hd, vd), axis=0) ** 2
    im = ((fm / fm.max()) * 255).astype(np.uint8)
    return fm.mean(), im


if __name__ == "__main__":
    print("mask_area square (10,10)-(20,20):", mask_area([[10, 10], [20, 10], [20, 20], [10, 20]], 64, 48))
    print("mask_area triangle (5,5),(30,5),(5,25):", mask_area([[5, 5], [30, 5], [5, 25]], 64, 48))
    print("mask_area square clipped (50,40)-(70,60) on 64x48:", mask_area([[50, 40], [70, 40], [70, 60], [50, 60]], 64, 48))
    mean, im = brenner(pattern(64, 48))
    print("brenner mean 64x48 pattern: %.10f" % mean)
    print("brenner map sum of rows 40..47:", int(im[40:48].astype(np.int64).sum()))
    print("brenner map (3,45), (60,44):", int(im[45, 3]), int(im[44, 60]))
    q = np.array([[15.0, 15.0], [100.0, 100.0], [40.0, 10.0]])
    t = np.array([[18.0, 19.0], [12.0, 11.0], [44.5, 10.0], [45.0, 10.0]])
    d = np.sqrt(((q[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    print("nn distance matrix:\n", d)
