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

# geotag_detection: _pixel_to_gps of v1.py for two boxes on a 640 x 480
# image, camera at 52.5, 13.4, 100 m, fov 73.7, heading 30
import math

METERS_PER_DEG_LAT = 111320.0


def pixel_to_gps(px, py, w, h, lat, lon, alt, fov, heading):
    gw = 2 * alt * math.tan(math.radians(fov) / 2)
    gh = gw * (h / w)
    right = (px - w / 2) / w * gw
    up = -(py - h / 2) / h * gh
    psi = math.radians(heading)
    east = right * math.cos(psi) + up * math.sin(psi)
    north = -right * math.sin(psi) + up * math.cos(psi)
    return lat + north / METERS_PER_DEG_LAT, lon + east / (METERS_PER_DEG_LAT * math.cos(math.radians(lat)))


for box_ in [(0, 0, 100, 50), (500, 400, 640, 480)]:
    cx = np.float32((box_[0] + box_[2]) / 2)
    cy = np.float32((box_[1] + box_[3]) / 2)
    la, lo = pixel_to_gps(float(cx), float(cy), 640, 480, 52.5, 13.4, 100.0, 73.7, 30.0)
    print("geotag", box_, round(la, 7), round(lo, 7))

# vlm_as_detector v2 qwen / muse (0..1000, clamped, scale = w / 1000 then
# value * scale, qwen_/muse_detection_parsing.py) and spacexai (0..100,
# value / 100 * w, spacexai_detection_parsing.py) on a 25 x 15 image
W, H = 25, 15


def k1000(b):
    b = [min(max(v, 0.0), 1000.0) for v in b]
    return [b[0] * (W / 1000.0), b[1] * (H / 1000.0), b[2] * (W / 1000.0), b[3] * (H / 1000.0)]


def k100(b):
    b = [min(max(float(v), 0.0), 100.0) for v in b]
    return [b[0] / 100.0 * W, b[1] / 100.0 * H, b[2] / 100.0 * W, b[3] / 100.0 * H]


print("qwen", np.array([k1000([100, 100, 300, 1200]), k1000([-5, 0, 900, 300])]).round(0))
print("muse", np.array([k1000([100, 300, 500, 700])]).round(0))
print("spacexai", np.array([k100([10, 10, 30, 50]), k100(["50", -3, 150, 100.0])]).round(0))
