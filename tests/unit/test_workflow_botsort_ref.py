#!/usr/bin/python3
"""Reference ids of tests/unit/test_workflow_botsort.c: BoT-SORT written
here in numpy from the `trackers` package's algorithm (BoTSORTTracker,
BoTSORTTracklet, botsort/utils.py, the XCYCWH state estimator and the
Joseph-form KalmanFilter of roboflow/trackers) as Roboflow's
trackers_botsort block runs it (fps 30, the block's defaults: CMC off,
instant_first_frame_activation false; tracker_id -1 left out).  The
optimal assignment is brute force over permutations (the scenes have no
ties).  Prints, per frame, the "index:id" pairs in output order; with
--instant the same scene with instant_first_frame_activation, with
--short at fps 15, lost_track_buffer 4, minimum_consecutive_frames 3;
with --cmc a panning camera with sparseOptFlow camera-motion compensation
(python3-opencv as the package's CMC), --pan-no-cmc the same without."""
import itertools
import sys

import numpy as np

SP, SV, SM = 0.05, 0.00625, 0.05
F = np.eye(8)
for i in range(4):
    F[i, i + 4] = 1
H = np.eye(4, 8)


def xywh(b):
    w, h = b[2] - b[0], b[3] - b[1]
    return np.array([b[0] + w / 2.0, b[1] + h / 2.0, w, h])


def box(x):
    return np.array([x[0] - x[2] / 2.0, x[1] - x[3] / 2.0, x[0] + x[2] / 2.0, x[1] + x[3] / 2.0])


def noise(w, h):
    Q = np.diag([(SP * w) ** 2, (SP * h) ** 2, (SP * w) ** 2, (SP * h) ** 2,
                 (SV * w) ** 2, (SV * h) ** 2, (SV * w) ** 2, (SV * h) ** 2])
    R = np.diag([(SM * w) ** 2, (SM * h) ** 2, (SM * w) ** 2, (SM * h) ** 2])
    return Q, R


class Track:
    def __init__(self, b):
        m = xywh(b)
        self.x = np.zeros(8)
        self.x[:4] = m
        w, h = m[2], m[3]
        self.P = np.diag([(2 * SP * w) ** 2, (2 * SP * h) ** 2, (2 * SP * w) ** 2, (2 * SP * h) ** 2,
                          (10 * SV * w) ** 2, (10 * SV * h) ** 2, (10 * SV * w) ** 2, (10 * SV * h) ** 2])
        self.id = -1
        self.nsucc = 1
        self.tsu = 0

    def clamp(self):
        self.x[2] = max(self.x[2], 1e-3)
        self.x[3] = max(self.x[3], 1e-3)

    def predict(self):
        Q, _ = noise(max(self.x[2], 1e-3), max(self.x[3], 1e-3))
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q
        self.clamp()
        self.tsu += 1

    def update(self, b):
        _, R = noise(max(self.x[2], 1e-3), max(self.x[3], 1e-3))
        y = xywh(b) - H @ self.x
        S = H @ self.P @ H.T + R
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        IKH = np.eye(8) - K @ H
        self.P = IKH @ self.P @ IKH.T + K @ R @ K.T
        self.clamp()
        self.tsu = 0
        self.nsucc += 1


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def assign(sim, thr):
    """linear_sum_assignment(sim, maximize=True) by brute force, gated."""
    nr, nc = sim.shape
    if nr == 0 or nc == 0:
        return [], list(range(nr)), list(range(nc))
    best, pairs = -1e30, []
    if nr <= nc:
        for perm in itertools.permutations(range(nc), nr):
            s = sum(sim[r, perm[r]] for r in range(nr))
            if s > best:
                best, pairs = s, [(r, perm[r]) for r in range(nr)]
    else:
        for perm in itertools.permutations(range(nr), nc):
            s = sum(sim[perm[c], c] for c in range(nc))
            if s > best:
                best, pairs = s, sorted((perm[c], c) for c in range(nc))
    m = [(r, c) for r, c in pairs if sim[r, c] >= thr]
    return m, sorted(set(range(nr)) - {r for r, _ in m}), sorted(set(range(nc)) - {c for _, c in m})


class BoTSORT:
    def __init__(self, fps=30, lost=30, min_frames=2, thr1=0.2, thr2=0.5, thr_uc=0.3, act=0.7, high=0.6,
                 instant=False):
        self.max_lost = max(1, int(fps / 30.0 * lost)) if lost > 0 else 0
        self.min_frames, self.thr1, self.thr2, self.thr_uc = min_frames, thr1, thr2, thr_uc
        self.act, self.high, self.instant = act, high, instant
        self.tracks = []
        self.frame_id = 0
        self.next_id = 0

    def mature_id(self, t):
        if t.nsucc >= self.min_frames and t.id == -1:
            t.id = self.next_id
            self.next_id += 1
        return t.id

    def update(self, dets):
        """dets: list of (box, confidence); returns [(index, id)] of ids >= 0."""
        self.frame_id += 1
        if not self.tracks and not dets:
            return []
        for t in self.tracks:
            t.predict()
        boxes = [np.array(d[0], dtype=float) for d in dets]
        conf = np.array([d[1] for d in dets], dtype=float)
        hi = [j for j in range(len(dets)) if conf[j] >= self.high]
        lo = [j for j in range(len(dets)) if 0.1 < conf[j] < self.high]
        confirmed, unconfirmed, lost = [], [], []
        for t in self.tracks:
            if t.tsu > 1:
                lost.append(t)
            elif t.id != -1 or t.nsucc >= self.min_frames:
                confirmed.append(t)
            else:
                unconfirmed.append(t)
        if getattr(self, "cmc_H", None) is not None:
            H = self.cmc_H.estimate(self.frame_gray)
            for t in self.tracks:
                apply_cmc(t, H)
        pb = {id(t): box(t.x) for t in self.tracks}
        out = []
        pool = confirmed + lost
        sim = np.array([[iou(pb[id(t)], boxes[j]) * conf[j] for j in hi] for t in pool]).reshape(len(pool), len(hi))
        m, upool, uhigh = assign(sim, self.thr1)
        for r, c in m:
            pool[r].update(boxes[hi[c]])
            out.append((hi[c], self.mature_id(pool[r])))
        rest = [pool[i] for i in upool if pool[i].tsu == 1]
        sim = np.array([[iou(pb[id(t)], boxes[j]) for j in lo] for t in rest]).reshape(len(rest), len(lo))
        m, _, ulow = assign(sim, self.thr2)
        for r, c in m:
            rest[r].update(boxes[lo[c]])
            out.append((lo[c], self.mature_id(rest[r])))
        for c in ulow:
            out.append((lo[c], -1))
        uh = [hi[c] for c in uhigh]
        gone = list(unconfirmed)
        if unconfirmed and uh:
            sim = np.array([[iou(pb[id(t)], boxes[j]) * conf[j] for j in uh] for t in unconfirmed])
            m, uunc, rem = assign(sim, self.thr_uc)
            for r, c in m:
                unconfirmed[r].update(boxes[uh[c]])
                out.append((uh[c], self.mature_id(unconfirmed[r])))
            gone = [unconfirmed[r] for r in uunc]
            uh = [uh[c] for c in rem]
        self.tracks = [t for t in self.tracks if all(t is not g for g in gone)]
        for j in uh:
            tid = -1
            if conf[j] >= self.act:
                t = Track(boxes[j])
                if self.frame_id == 1 and self.instant:
                    t.id = self.next_id
                    self.next_id += 1
                self.tracks.append(t)
                tid = t.id
            out.append((j, tid))
        self.tracks = [t for t in self.tracks
                       if t.tsu < self.max_lost and (t.nsucc >= self.min_frames or t.id != -1 or t.tsu == 0)]
        return [(i, tid) for i, tid in out if tid >= 0]


def scene():
    """The frames of the C test, detections listed B, C, A, E, D, G:
    A moves right 8 px a frame (0.9); B left 12 px (0.8), on frames 5..7 at
    confidence 0.4 (kept by the low round), hidden on frames 9..10, back on
    11.. where its prediction is (the lost track is found in round 1); C
    (0.65) is high but under the activation threshold: never a track; E
    (0.05) is dropped; D (0.75) shows on frame 3, vanishes on 4 (its
    unconfirmed track is removed) and is back from 5 (a new track, an id on
    6); G (0.72) appears on frame 12 and drifts down 4 px a frame."""
    frames = []
    for f in range(16):
        dets = []
        if not 9 <= f <= 10:
            bx = 400 - 12 * f
            dets.append(((bx, 200, bx + 40, 240), 0.4 if 5 <= f <= 7 else 0.8))
        dets.append(((300, 300, 340, 340), 0.65))
        ax = 50 + 8 * f
        dets.append(((ax, 100, ax + 40, 140), 0.9))
        dets.append(((500, 300, 530, 330), 0.05))
        if f == 3 or f >= 5:
            dets.append(((600, 50 + 2 * f, 640, 100 + 2 * f), 0.75))
        if f >= 12:
            dets.append(((100, 320 + 4 * f, 160, 360 + 4 * f), 0.72))
        frames.append(dets)
    return frames


def texture(ox, w=700, h=400):
    """The C test's textured frame (smooth, not periodic at the jump's
    scale) seen by a camera moved ox pixels to the right."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x = x + ox
    v = (128 + 50 * np.sin(x / 23.0) * np.cos(y / 17.0) + 35 * np.sin((x + 0.7 * y) / 37.0 + 1.3)
         + 25 * np.cos((0.6 * x - y) / 29.0))
    return np.floor(v + 0.5).clip(0, 255).astype(np.uint8)


class SparseOptFlowCMC:
    """CMC._estimate_sparse_optflow of the trackers package (downscale 2)."""

    def __init__(self, downscale=2):
        self.d, self.prev, self.pts = downscale, None, None

    def estimate(self, gray):
        import cv2
        h, w = gray.shape
        f = cv2.resize(gray, (w // self.d, h // self.d)) if self.d > 1 else gray
        H = np.eye(2, 3, dtype=np.float32)
        kp = cv2.goodFeaturesToTrack(f, mask=None, maxCorners=1000, qualityLevel=0.01, minDistance=1, blockSize=3,
                                     useHarrisDetector=False, k=0.04)
        if self.prev is not None and self.pts is not None and kp is not None:
            m, st, _ = cv2.calcOpticalFlowPyrLK(self.prev, f, self.pts, None)
            ok = st.reshape(-1) == 1
            if ok.sum() > 4:
                E, _ = cv2.estimateAffinePartial2D(self.pts[ok], m[ok], method=cv2.RANSAC)
                if E is not None:
                    H = E.astype(np.float32)
                    H[0, 2] *= self.d
                    H[1, 2] *= self.d
        self.prev, self.pts = f.copy(), None if kp is None else kp.copy()
        return H


def apply_cmc(t, H):
    R, tr = H[:2, :2].astype(np.float64), H[:2, 2].astype(np.float64)
    t.x[0:2] = R @ t.x[0:2] + tr
    t.x[4:6] = R @ t.x[4:6]
    A = np.eye(8)
    A[0:2, 0:2] = R
    A[4:6, 4:6] = R
    t.P = A @ t.P @ A.T


def pan_ox(f):
    return 0 if f < 5 else 30


def pan_scene():
    """--cmc: A moves right 8 px a frame in the world (0.9), B stands still
    (0.8); the camera jumps 30 px right on frame 5, so both boxes jump 30 px
    left in the picture (IoU x confidence with their predictions under 0.2
    without compensation)."""
    frames = []
    for f in range(10):
        ox = pan_ox(f)
        frames.append([((400 - ox, 200, 440 - ox, 240), 0.8), ((100 + 8 * f - ox, 100, 140 + 8 * f - ox, 140), 0.9)])
    return frames


if "--cmc" in sys.argv or "--pan-no-cmc" in sys.argv:
    use_cmc = "--cmc" in sys.argv
    tr = BoTSORT()
    cmc = SparseOptFlowCMC()
    orig_update = tr.update

    for f, dets in enumerate(pan_scene()):
        tr.cmc_H = cmc if use_cmc else None
        tr.frame_gray = texture(pan_ox(f))
        print(f, " ".join("%d:%d" % p for p in tr.update(dets)))
    sys.exit(0)

if "--short" in sys.argv:  # fps 15, lost_track_buffer 4 (2 frames), minimum_consecutive_frames 3
    tr = BoTSORT(fps=15, lost=4, min_frames=3)
else:
    tr = BoTSORT(instant="--instant" in sys.argv)
for f, dets in enumerate(scene()):
    print(f, " ".join("%d:%d" % p for p in tr.update(dets)))
