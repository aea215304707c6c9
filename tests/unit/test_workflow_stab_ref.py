#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_classlock.c's
stabilize_detections test: roboflow/inference
StabilizeTrackedDetectionsBlockV1 and its VelocityKalmanFilter step by
step with numpy matrices (one video; detections as (tracker_id, xyxy)).
Run: /usr/bin/python3 tests/unit/test_workflow_stab_ref.py"""
from collections import deque

import numpy as np

W, ALPHA = 3, 0.2


class KF:
    def __init__(self):
        self.Q, self.R, self.t = np.eye(2) * 0.001, np.eye(2) * 0.01, {}

    def update(self, meas):
        upd = set()
        for tid, v in meas.items():
            upd.add(tid)
            if tid in self.t:
                m = np.array(v).reshape(2, 1)
                tv = self.t[tid]
                tv["h"].appendleft(m)
                sm = np.mean(tv["h"], axis=0)
                K = tv["P"] @ np.linalg.inv(tv["P"] + self.R)
                tv["v"] = tv["v"] + K @ (sm - tv["v"])
                tv["P"] = tv["P"] - K @ tv["P"]
            else:
                self.t[tid] = {"v": np.array([[v[0]], [v[1]]]), "P": np.eye(2),
                               "h": deque([np.array([[v[0]], [v[1]]])], maxlen=W)}
        pred = {}
        for tid, tv in self.t.items():
            tv["P"] = tv["P"] + self.Q
            pred[tid] = tv["v"]
        for tid in set(self.t) - upd:
            if self.t[tid]["h"]:
                self.t[tid]["h"].popleft()
            if not self.t[tid]["h"]:
                del self.t[tid]
        return pred


def corner(b):
    return [b[0] + abs(b[2] - b[0]), b[1] + abs(b[3] - b[1])]


def run(frames):
    cache, kf, out = {}, KF(), []
    for dets in frames:
        meas = {}
        for tid, b in dets:
            if tid in cache:
                t, p = corner(b), corner(cache[tid])
                meas[tid] = (t[0] - p[0], t[1] - p[1])
        pv = kf.update(meas)
        pred = {}
        for tid, b in dets:
            b = np.array(b, float)
            pred[tid] = ALPHA * b + (1 - ALPHA) * cache[tid] if tid in cache else b
            cache[tid] = b
        for tid, v in pv.items():
            if tid in pred:
                continue
            prev = cache[tid]
            cur = prev + np.array([v, v]).flatten()
            cache[tid] = ALPHA * cur + (1 - ALPHA) * prev
            pred[tid] = cache[tid]
        for tid in list(cache):
            if tid not in kf.t and tid not in pred:
                del cache[tid]
        out.append([(tid, [round(float(x), 9) for x in b]) for tid, b in pred.items()])
    return out


FRAMES = [
    [(1, (10, 10, 30, 30))],
    [(1, (14, 10, 34, 30)), (2, (100, 50, 120, 70))],
    [(1, (18, 11, 38, 31)), (2, (100, 52, 120, 72))],
    [(1, (22, 12, 42, 32))],
    [],
    [],
    [],
    [(1, (40, 14, 60, 34))],
]

if __name__ == "__main__":
    for f, row in enumerate(run(FRAMES), 1):
        print(f, row)
