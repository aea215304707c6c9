#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_rollup.c: Roboflow's
detections_list_rollup@v1 merging (merge_crop_predictions,
_merge_overlapping_bboxes, _merge_keypoint_detections and the mask path:
_mask_to_polygons with skimage.measure.find_contours, _find_overlapping_
groups and unary_union with shapely, _polygon_to_mask with
skimage.draw.polygon) written here from the block's source on the scene of
the C test (Debian python3-skimage, python3-shapely, python3-opencv).
Child masks are the scene's rectangles drawn with cv2.fillPoly, as vbatch
rasterizes a polygon.  Prints, per case, one line per rolled-up
detection: class id, confidence, xyxy, mask pixel count."""
import numpy as np
import cv2
from shapely.geometry import Polygon
from shapely.ops import unary_union
from skimage import draw, measure

W, H = 200, 160
PARENTS = [(10, 20, 110, 120), (80, 20, 181, 120), (20, 130, 60, 158)]
# per crop: (x1, y1, x2, y2, confidence, class_id), crop pixels
CHILDREN = [
    [(50, 10, 95, 60, 0.9, 0), (5, 70, 20, 85, 0.5, 1)],
    [(0, 20, 40, 70, 0.7, 0), (60, 60, 80, 80, 0.6, 0), (30, 75, 50, 95, 0.8, 1)],
    [],
]


def combine(c, s):
    return max(c) if s == "max" else float(np.mean(np.array(c, dtype=np.float32))) if s == "mean" else min(c)


def children_in_parent():
    out = []
    for (px1, py1, _, _), kids in zip(PARENTS, CHILDREN):
        for x1, y1, x2, y2, c, k in kids:
            out.append(((x1 + int(px1), y1 + int(py1), x2 + int(px1), y2 + int(py1)), c, k, (int(px1), int(py1)),
                        (x1, y1, x2, y2)))
    return out


def by_class(preds):
    d = {}
    for p in preds:
        d.setdefault(p[2], []).append(p)
    return d


def find(par, x):
    while par[x] != x:
        x = par[x]
    return x


def groups(n, pair):
    par = list(range(n))
    for i in range(n):
        for j in range(i + 1, n):
            if pair(i, j):
                a, b = find(par, i), find(par, j)
                if a != b:
                    par[a] = b
    g = {}
    for i in range(n):
        g.setdefault(find(par, i), []).append(i)
    return list(g.values())


def bbox_iou(a, b):
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if x2 <= x1 or y2 <= y1:
        return 0.0
    i = (x2 - x1) * (y2 - y1)
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i
    return i / u if u > 0 else 0.0


def boxes(thr, strategy):
    res = []
    for k, ps in by_class(children_in_parent()).items():
        for g in groups(len(ps), lambda i, j: (bbox_iou(ps[i][0], ps[j][0]) > 0) if thr <= 0
                        else bbox_iou(ps[i][0], ps[j][0]) >= thr):
            b = [ps[i][0] for i in g]
            res.append((k, combine([ps[i][1] for i in g], strategy),
                        (min(x[0] for x in b), min(x[1] for x in b), max(x[2] for x in b), max(x[3] for x in b)), 0))
    return res


def keypoints(thr, strategy):
    res = []
    for k, ps in by_class(children_in_parent()).items():
        used = set()
        for i, p in enumerate(ps):
            if i in used:
                continue
            grp = [p]
            used.add(i)
            kp1 = np.array([[(p[0][0] + p[0][2]) / 2, (p[0][1] + p[0][3]) / 2]])
            for j in range(i + 1, len(ps)):
                if j in used:
                    continue
                q = ps[j]
                kp2 = np.array([[(q[0][0] + q[0][2]) / 2, (q[0][1] + q[0][3]) / 2]])
                if np.mean(np.linalg.norm(kp1 - kp2, axis=1)) < thr:
                    grp.append(q)
                    used.add(j)
            if len(grp) == 1:
                res.append((k, p[1], p[0], 0))
            else:
                bb = np.mean(np.array([g[0] for g in grp], dtype=float), axis=0)
                res.append((k, combine([g[1] for g in grp], strategy), tuple(bb), 0))
    return res


def child_mask(p):
    (ox, oy), (x1, y1, x2, y2) = p[3], p[4]
    crop = np.zeros((100, 101), np.uint8)
    cv2.fillPoly(crop, [np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.int32)], 1)
    m = np.zeros((H, W), bool)
    ch, cw = crop.shape
    ys, ye, xs, xe = max(0, oy), min(H, oy + ch), max(0, ox), min(W, ox + cw)
    m[ys:ye, xs:xe] = crop[ys - oy:ye - oy, xs - ox:xe - ox].astype(bool)
    return m


def to_mask(poly):
    m = np.zeros((H, W), bool)
    c = np.array(poly.exterior.coords)
    rr, cc = draw.polygon(c[:, 1], c[:, 0], (H, W))
    m[rr, cc] = True
    return m


def masks(thr, strategy):
    res = []
    for k, ps in by_class(children_in_parent()).items():
        polys = []
        for p in ps:
            for c in measure.find_contours(child_mask(p).astype(np.uint8), 0.5):
                c = np.flip(c, axis=1)
                if len(c) >= 3:
                    poly = Polygon(c)
                    if poly.is_valid and not poly.is_empty:
                        polys.append((poly, p[1]))

        def pair(i, j):
            a, b = polys[i][0], polys[j][0]
            if thr <= 0:
                return a.intersects(b) or a.touches(b)
            u = a.union(b).area
            return (a.intersection(b).area / u if u > 0 else 0) >= thr

        for g in groups(len(polys), pair):
            u = unary_union([polys[i][0] for i in g])
            conf = combine([polys[i][1] for i in g], strategy)
            for part in (u.geoms if u.geom_type == "MultiPolygon" else [u]):
                m = to_mask(part)
                if m.any():
                    r, c = np.where(m)
                    res.append((k, conf, (c.min(), r.min(), c.max() + 1, r.max() + 1), int(m.sum())))
    return res


for name, rows in [("boxes thr=0 max", boxes(0.0, "max")), ("boxes thr=0.5 min", boxes(0.5, "min")),
                   ("boxes thr=0.3 mean", boxes(0.3, "mean")), ("keypoints thr=10 max", keypoints(10.0, "max")),
                   ("keypoints thr=25 mean", keypoints(25.0, "mean")), ("masks thr=0 max", masks(0.0, "max")),
                   ("masks thr=0.35 max", masks(0.35, "max"))]:
    print(name)
    for k, c, b, a in rows:
        print("  %d %.6f %s %d" % (k, c, " ".join("%g" % v for v in b), a))
