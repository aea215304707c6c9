#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_vlm.c (overlap_analysis and
the vlm_as_detector arithmetic), computed as roboflow/inference's blocks do:
shapely's Polygon.intersection().area / area (Debian python3-shapely) for
overlap_analysis, numpy's round for VLM boxes, hashlib's md5 for Florence-2
class ids.  Run with /usr/bin/python3; the test does not run it."""
import hashlib

import numpy as np
from shapely.geometry import Polygon, box

L = Polygon([(0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)])
MIRROR = Polygon([(3, 3), (13, 3), (13, 13), (9, 13), (9, 7), (3, 7)])
TRI = Polygon([(0, 0), (10, 0), (0, 10)])
print("box/box", box(0, 0, 10, 10).intersection(box(5, 5, 15, 15)).area / 100)
print("tri/box", TRI.intersection(box(0, 0, 5, 5)).area / TRI.area)
print("L/box", L.intersection(box(2, 2, 8, 8)).area / L.area)
print("L/mirror", L.intersection(MIRROR).area / L.area)
print("box/L", box(2, 2, 8, 8).intersection(L).area / 36)
for s in ["car", "dog"]:
    print("md5", s, int(hashlib.md5(s.encode()).hexdigest()[:9], 16) % 10000)
# gemini box_2d [y_min, x_min, y_max, x_max] / 1000 on 640 x 480
print("gemini", np.array([[200 / 1000 * 640, 100 / 1000 * 480, 600 / 1000 * 640, 500 / 1000 * 480]]).round(0))
# normalised 0.1 / 0.3 on a 25 x 15 image: 2.5 -> 2, 7.5 -> 8, 4.5 -> 4
print("half-even", np.array([[0.1 * 25, 0.3 * 25, 0.3 * 15, 0.5 * 15]]).round(0))
