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


def patch(w, h):
    """The template the C test pastes (patch_image())."""
    y, x = np.mgrid[0:h, 0:w]
    v = ((x * 37 + y * 91) * 13 + (x * y) % 7 * 40) & 255
    return np.dstack([v, (v * 3) & 255, 255 - v]).astype(np.uint8)


def cone(w, h, cx, cy, img=None):
    """max(0, 200 - 12 * L1 distance to (cx, cy)) added to img (cone_add())."""
    y, x = np.mgrid[0:h, 0:w]
    v = np.maximum(0, 200 - 12 * (np.abs(x - cx) + np.abs(y - cy)))
    base = np.zeros((h, w, 3), dtype=np.int64) if img is None else img.astype(np.int64)
    return np.clip(base + v[:, :, None], 0, 255).astype(np.uint8)


def sv_nms(xyxy, conf, thr):
    """supervision box_non_max_suppression (one class)."""
    order = np.flip(conf.argsort())
    boxes = xyxy[order].astype(float)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    tl = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    br = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    ious = inter / (area[:, None] + area[None, :] - inter) - np.eye(len(boxes))
    keep = np.ones(len(boxes), dtype=bool)
    for i, iou in enumerate(ious):
        if keep[i]:
            keep &= ~(iou > thr)
    return keep[order.argsort()]


def template_matching(img, tpl, thr, nms_thr):
    res = cv2.matchTemplate(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY),
                            cv2.cvtColor(tpl, cv2.COLOR_BGR2GRAY), cv2.TM_CCOEFF_NORMED)
    loc = np.where(res >= thr)
    h, w = tpl.shape[:2]
    xyxy = np.array([(x, y, x + w, y + h) for x, y in zip(*loc[::-1])])
    if len(xyxy) == 0:
        return xyxy, xyxy
    return xyxy, xyxy[sv_nms(xyxy, np.ones(len(xyxy)), nms_thr)]


def three_colors(w, h):
    """dominant_color's test image (three_colors() in the C test): the left
    60 % columns alternate (10,20,200)/(12,22,202), the next 30 % are
    (200,40,30), the rest (30,180,60) (BGR)."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    for x in range(w):
        if x < w * 6 // 10:
            img[:, x] = (10, 20, 200) if x % 2 == 0 else (12, 22, 202)
        elif x < w * 9 // 10:
            img[:, x] = (200, 40, 30)
        else:
            img[:, x] = (30, 180, 60)
    return img


def dominant_color(img, k, iters, target, seed):
    """roboflow/inference find_dominant_color after its downsampling, with
    np.random seeded (Roboflow leaves it unseeded)."""
    np.random.seed(seed)
    h, w = img.shape[:2]
    s = max(1, min(w, h) // target)
    pixels = img[::s, ::s].reshape(-1, 3).astype(np.float32)
    centroids = pixels[np.random.choice(pixels.shape[0], k, replace=False)]
    for _ in range(iters):
        labels = np.argmin(np.sqrt(((pixels[:, np.newaxis] - centroids) ** 2).sum(axis=2)), axis=1)
        new = np.zeros_like(centroids)
        for i in range(k):
            pts = pixels[labels == i]
            new[i] = pts.mean(axis=0) if len(pts) else pixels[np.random.choice(pixels.shape[0])]
        if np.allclose(centroids, new):
            break
        centroids = new
    uniq, counts = np.unique(labels, return_counts=True)
    c = centroids[uniq[np.argmax(counts)]]
    return tuple(int(np.clip(round(x), 0, 255)) for x in reversed(c))


def blobs():
    """contours_detection's small test image (blobs_image() in the C test)."""
    img = np.zeros((12, 16), np.uint8)
    img[2:5, 2:6] = 255
    img[7:11, 3:5] = 9
    img[6:10, 9:14] = 255
    img[7:9, 10:13] = 0
    img[8, 11] = 200
    img[0:3, 13:16] = 1
    return img


def speckle(w, h):
    """A dense binary texture (speckle_image() in the C test)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.where(((x * 7 + y * 13 + (x * y) % 5) % 11) < 4, 255, 0).astype(np.uint8)


def contour_digest(contours):
    """(count, points, hash) of a contour list; hash = sum over contour k and
    point j of (k + 1)(j + 1)(1000 x + y) mod 1000000007."""
    tot, hsh = 0, 0
    for k, c in enumerate(contours):
        for j, (x, y) in enumerate(c.reshape(-1, 2).tolist()):
            hsh = (hsh + (k + 1) * (j + 1) * (1000 * x + y)) % 1000000007
            tot += 1
    return len(contours), tot, hsh


def aligned_dims(contour):
    """roboflow/inference compute_aligned_dimensions."""
    box = np.array(cv2.boxPoints(cv2.minAreaRect(contour)), dtype=np.float32)
    e1, e2 = box[1] - box[0], box[2] - box[1]
    def hscore(a):
        m = abs(a % 180)
        return min(m, 180 - m)
    a1 = np.degrees(np.arctan2(e1[1], e1[0]))
    a2 = np.degrees(np.arctan2(e2[1], e2[0]))
    l1, l2 = float(np.linalg.norm(e1)), float(np.linalg.norm(e2))
    return (l1, l2) if hscore(a1) < hscore(a2) else (l2, l1)


def mask_dims(poly, w, h):
    """get_detection_dimensions of a mask rasterized from poly."""
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.array(poly, dtype=np.int32)], 1)
    cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not cs:
        return None
    c = max(cs, key=cv2.contourArea)
    return aligned_dims(c) if cv2.contourArea(c) > 0 else None


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
    img = pattern(96, 64)
    tpl = patch(12, 10)
    img[15:25, 20:32] = tpl
    img[40:50, 60:72] = tpl
    for thr in (0.8, 0.5):
        allm, kept = template_matching(img, tpl, thr, 0.5)
        print("template_matching thr %.1f: %d positions, after NMS:" % (thr, len(allm)), kept.tolist())
    img = cone(96, 64, 30, 20, pattern(96, 64) // 4)
    img = cone(96, 64, 70, 45, img)
    tpl = cone(15, 15, 7, 7)
    for thr in (0.9, 0.7):
        allm, kept = template_matching(img, tpl, thr, 0.5)
        print("cone template_matching thr %.1f: %d positions %s, after NMS:" % (thr, len(allm), allm.tolist()[:3]), kept.tolist())
    allm, kept = template_matching(img, tpl, 0.7, 0.1)
    print("cone thr 0.7 nms 0.1 after NMS:", kept.tolist())
    img = three_colors(300, 200)
    from collections import Counter
    for target in (100, 250):
        res = Counter(dominant_color(img, 3, 100, target, seed) for seed in range(50))
        print("dominant_color k=3 target %d over 50 seeds:" % target, dict(res))
        print("dominant_color k=1 target %d:" % target, dominant_color(img, 1, 100, target, 0))
    c, hier = cv2.findContours(blobs(), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    print("contours of blobs():", [x.reshape(-1, 2).tolist() for x in c], hier.tolist())
    for w, h in ((64, 48), (97, 61)):
        c, hier = cv2.findContours(speckle(w, h), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        print("contours of speckle(%d, %d): (count, points, hash)" % (w, h), contour_digest(c))
    d = mask_dims([[50, 30], [80, 60], [70, 70], [40, 40]], 128, 96)
    print("size_measurement 45-degree rect mask dims (px):", d, "scaled by 0.5:", [x * 0.5 for x in d])
    # a slope of 1/2: cv2.fillPoly draws the outline with 8-connected lines
    # and covers 689 pixels; vision's vis_fill_polygon covers 665, so this
    # shape is not used as a reference (see WORKFLOWS-ENGINE.md)
    d = mask_dims([[50, 40], [82, 56], [74, 72], [42, 56]], 128, 96)
    print("size_measurement 26.6-degree rect mask dims (px):", d, mask_area([[50, 40], [82, 56], [74, 72], [42, 56]], 128, 96))
    d = mask_dims([[10, 60], [40, 60], [40, 62], [10, 62]], 128, 96)
    print("size_measurement flat rect mask dims (px):", d)
    poly = np.array([[0, 0], [8, 4], [6, 8], [-2, 4]])
    print("size_measurement reference polygon dims:", aligned_dims(poly))
    q = np.array([[15.0, 15.0], [100.0, 100.0], [40.0, 10.0]])
    t = np.array([[18.0, 19.0], [12.0, 11.0], [44.5, 10.0], [45.0, 10.0]])
    d = np.sqrt(((q[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    print("nn distance matrix:\n", d)
