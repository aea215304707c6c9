#!/usr/bin/python3
"""Reference ids of tests/unit/test_workflow_ocsort.c: OC-SORT written here
in numpy from the `trackers` package's algorithm (OCSORTTracker,
OCSORTTracklet, kalman_filter.py, converters.py of roboflow/trackers) as
Roboflow's trackers_ocsort block runs it (fps 30, default parameters,
tracker_id -1 left out).  The optimal assignment is brute force over
permutations (the scenes have no ties).  Prints, per frame, the
"index:id" pairs in output order."""
import itertools
import math

import numpy as np


def to_z(b):
    w, h = b[2] - b[0], b[3] - b[1]
    return np.array([b[0] + w / 2.0, b[1] + h / 2.0, w * h, w / float(h + 1e-6)])


def to_box(x):
    w = math.sqrt(x[2] * x[3])
    h = x[2] / w
    return np.array([x[0] - w / 2.0, x[1] - h / 2.0, x[0] + w / 2.0, x[1] + h / 2.0])


F = np.eye(7)
F[0, 4] = F[1, 5] = F[2, 6] = 1
H = np.eye(4, 7)
Q = np.diag([1, 1, 1, 1, 0.01, 0.01, 0.0001])
R = np.diag([1.0, 1, 10, 10])


class KF:
    def __init__(self, z):
        self.x = np.zeros((7, 1))
        self.x[:4, 0] = z
        self.P = np.diag([10.0, 10, 10, 10, 10000, 10000, 10000])

    def predict(self):
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q

    def update(self, z):
        y = np.asarray(z, dtype=float).reshape(4, 1) - H @ self.x
        S = H @ self.P @ H.T + R
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        IKH = np.eye(7) - K @ H
        self.P = IKH @ self.P @ IKH.T + K @ R @ K.T


def direction(a, b):
    cx1, cy1 = (a[0] + a[2]) / 2.0, (a[1] + a[3]) / 2.0
    cx2, cy2 = (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0
    n = math.sqrt((cy2 - cy1) ** 2 + (cx2 - cx1) ** 2) + 1e-6
    return np.array([(cy2 - cy1) / n, (cx2 - cx1) / n])


class Track:
    def __init__(self, b, delta_t):
        self.kf = KF(to_z(b))
        self.age = 0
        self.delta_t = delta_t
        self.last = np.array(b, dtype=float)
        self.obs = {}
        self.vel = None
        self.id = -1
        self.nsucc = 0
        self.tsu = 0
        self.frozen = None
        self.observed = True

    def k_prev(self):
        if not self.obs:
            return None
        for i in range(self.delta_t):
            dt = self.delta_t - i
            if self.age - dt in self.obs:
                return self.obs[self.age - dt]
        return self.obs[max(self.obs)]

    def predict(self):
        if self.kf.x[6, 0] + self.kf.x[2, 0] <= 0:
            self.kf.x[6, 0] = 0.0
        self.kf.predict()
        self.age += 1
        if self.tsu > 0:
            self.nsucc = 0
        self.tsu += 1

    def update(self, b):
        if b is None:
            if self.observed:
                self.frozen = (self.kf.x.copy(), self.kf.P.copy())
            self.observed = False
            return
        prev = self.k_prev()
        if prev is not None:
            self.vel = direction(prev, b)
        if not self.observed and self.frozen is not None:
            self.kf.x, self.kf.P = self.frozen[0].copy(), self.frozen[1].copy()
            gap = self.tsu
            x1, y1, s1, r1 = to_z(self.last)
            x2, y2, s2, r2 = to_z(b)
            w1, h1, w2, h2 = math.sqrt(s1 * r1), math.sqrt(s1 / r1), math.sqrt(s2 * r2), math.sqrt(s2 / r2)
            dx, dy, dw, dh = (x2 - x1) / gap, (y2 - y1) / gap, (w2 - w1) / gap, (h2 - h1) / gap
            for i in range(gap):
                w, h = w1 + (i + 1) * dw, h1 + (i + 1) * dh
                self.kf.update([x1 + (i + 1) * dx, y1 + (i + 1) * dy, w * h, w / h])
                if i < gap - 1:
                    self.kf.predict()
            self.frozen = None
        self.kf.update(to_z(b))
        self.observed = True
        self.tsu = 0
        self.nsucc += 1
        self.last = np.array(b, dtype=float)
        self.obs[self.age] = np.array(b, dtype=float)


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assign(score, ious, thr):
    nr, nc = score.shape
    if nr == 0 or nc == 0:
        return []
    best, best_pairs = -1e30, []
    if nr <= nc:
        for perm in itertools.permutations(range(nc), nr):
            s = sum(score[r, perm[r]] for r in range(nr))
            if s > best:
                best, best_pairs = s, [(r, perm[r]) for r in range(nr)]
    else:
        for perm in itertools.permutations(range(nr), nc):
            s = sum(score[perm[c], c] for c in range(nc))
            if s > best:
                best, best_pairs = s, sorted((perm[c], c) for c in range(nc))
    return [(r, c) for r, c in best_pairs if ious[r, c] >= thr]


class OCSORT:
    def __init__(self, fps=30, lost=30, min_frames=3, iou_thr=0.3, w=0.2, high=0.6, delta_t=3):
        self.max_lost = int(fps / 30.0 * lost)
        self.min_frames, self.iou_thr, self.w, self.high, self.delta_t = min_frames, iou_thr, w, high, delta_t
        self.tracks = []
        self.frame_count = 0
        self.next_id = 0

    def new_id(self):
        self.next_id += 1
        return self.next_id - 1

    def report(self, t):
        if self.frame_count <= self.min_frames:
            if t.tsu == 0 and t.id == -1:
                t.id = self.new_id()
            return t.id
        if t.nsucc >= self.min_frames:
            if t.id == -1:
                t.id = self.new_id()
            return t.id
        return -1

    def update(self, dets):
        """dets: list of (box, confidence); returns [(index, id)] of ids >= 0."""
        if not self.tracks and not dets:
            return []
        keep = [j for j, d in enumerate(dets) if d[1] >= self.high]
        boxes = [np.array(dets[j][0], dtype=float) for j in keep]
        for t in self.tracks:
            t.predict()
        nt, nd = len(self.tracks), len(boxes)
        ious = np.zeros((nt, nd))
        dc = np.zeros((nt, nd))
        for i, t in enumerate(self.tracks):
            pb = to_box(t.kf.x[:4, 0])
            ko = t.k_prev()
            if ko is None:
                ko = t.last
            for j in range(nd):
                ious[i, j] = iou(pb, boxes[j])
                if t.vel is not None:
                    v = direction(ko, boxes[j])
                    c = min(1.0, max(-1.0, t.vel[1] * v[1] + t.vel[0] * v[0]))
                    dc[i, j] = (math.pi / 2.0 - abs(math.acos(c))) / math.pi * dets[keep[j]][1]
        out = []
        matched = assign(ious + self.w * dc, ious, self.iou_thr)
        for r, c in matched:
            self.tracks[r].update(boxes[c])
            out.append((keep[c], self.report(self.tracks[r])))
        ut = [i for i in range(nt) if i not in {r for r, _ in matched}]
        ud = [j for j in range(nd) if j not in {c for _, c in matched}]
        if ud and ut:
            oi = np.array([[iou(self.tracks[t].last, boxes[d]) for d in ud] for t in ut])
            om = assign(oi, oi, self.iou_thr)
            for a, b in om:
                self.tracks[ut[a]].update(boxes[ud[b]])
                out.append((keep[ud[b]], self.report(self.tracks[ut[a]])))
            for a in range(len(ut)):
                if a not in {x for x, _ in om}:
                    self.tracks[ut[a]].update(None)
            left = [ud[b] for b in range(len(ud)) if b not in {y for _, y in om}]
        else:
            for a in ut:
                self.tracks[a].update(None)
            left = ud
        alive = []
        for t in self.tracks:
            if t.nsucc >= self.min_frames and t.id == -1:
                t.id = self.new_id()
            if t.tsu <= self.max_lost:
                alive.append(t)
        self.tracks = alive
        for j in left:
            self.tracks.append(Track(boxes[j], self.delta_t))
        self.frame_count += 1
        return [(i, tid) for i, tid in out if tid >= 0]


def scene():
    """The frames of the C test: A moves right 8 px a frame, B left 12 px,
    both 40 x 40; B is hidden on frames 6..8 and stood still meanwhile: it
    comes back where it was last seen, 48 px behind its prediction (no IoU:
    only the OCR round on its last observation finds it), then moves on;
    C (confidence 0.5, under the 0.6 threshold)
    is always dropped, D appears on frame 10.  Detections are listed B, C,
    A, D so that output order differs from input order."""
    frames = []
    for f in range(16):
        dets = []
        if not 6 <= f <= 8:
            bx = 400 - 12 * f if f < 6 else 340 - 12 * (f - 9)
            dets.append(((bx, 200, bx + 40, 240), 0.8))
        dets.append(((300, 300, 340, 340), 0.5))
        ax = 50 + 8 * f
        dets.append(((ax, 100, ax + 40, 140), 0.9))
        if f >= 10:
            dets.append(((600, 20 + 3 * f, 650, 80 + 3 * f), 0.7))
        frames.append(dets)
    return frames


tr = OCSORT()
for f, dets in enumerate(scene()):
    print(f, " ".join("%d:%d" % p for p in tr.update(dets)))
