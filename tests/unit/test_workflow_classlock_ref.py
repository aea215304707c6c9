#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_classlock.c: roboflow/inference TrackClassLockBlockV1.run's per-frame rules
(cumulative voting, stable ranking, consecutive challenge, re-attachment,
TTL), re-implemented step by step.
Run: /usr/bin/python3 tests/unit/test_workflow_classlock_ref.py"""
from collections import defaultdict

P = dict(min_votes=3, vote_confidence=0.5, lead_margin=1, switch_after=2, state_ttl=5,
         reattach_window=3, reattach_iou=0.3)

# frames: list of (tracker_id, class, confidence, (x1, y1, x2, y2))
A = (10, 10, 50, 50)
A2 = (12, 10, 52, 50)
B = (100, 100, 140, 140)
FRAMES = [
    [(1, "cat", 0.9, A)],
    [(1, "dog", 0.9, A)],
    [(1, "cat", 0.4, A)],
    [(1, "cat", 0.8, A)],
    [(1, "cat", 0.7, A)],
    [(1, "dog", 0.9, A)],
    [(1, "cat", 0.9, A)],
    [(1, "dog", 0.9, A)],
    [(1, "dog", 0.6, A)],
    [(2, "cat", 0.3, A2), (3, "bird", 0.9, B)],
    [(3, "bird", 0.9, B)],
]


def iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def run():
    tracks, frame, out = {}, 0, []
    for dets in FRAMES:
        frame += 1
        active = {d[0] for d in dets}
        row = []
        for tid, cname, conf, box in dets:
            if tid not in tracks:
                best, best_iou = None, 0.0
                for t, st in tracks.items():
                    if t in active or st["locked"] is None or st["last_xyxy"] is None:
                        continue
                    gap = frame - st["last_seen"]
                    if gap < 1 or gap > P["reattach_window"]:
                        continue
                    v = iou(box, st["last_xyxy"])
                    if v >= P["reattach_iou"] and v > best_iou:
                        best, best_iou = t, v
                if best is not None:
                    tracks[tid] = tracks.pop(best)
            st = tracks.setdefault(tid, {"votes": defaultdict(int), "conf_sum": defaultdict(float),
                                         "locked": None, "last_seen": frame, "challenger": None,
                                         "streak": 0, "streak_conf": 0.0, "last_xyxy": None})
            st["last_seen"] = frame
            st["last_xyxy"] = box
            q = conf >= P["vote_confidence"]
            if st["locked"] is None:
                if q:
                    st["votes"][cname] += 1
                    st["conf_sum"][cname] += conf
                if st["votes"]:
                    ranked = sorted(st["votes"].items(), key=lambda kv: kv[1], reverse=True)
                    top_c, top_v = ranked[0]
                    runner = ranked[1][1] if len(ranked) > 1 else 0
                    if top_v >= P["min_votes"] and top_v - runner >= P["lead_margin"]:
                        st["locked"] = top_c
            else:
                if q and cname != st["locked"]:
                    if cname == st["challenger"]:
                        st["streak"] += 1
                        st["streak_conf"] += conf
                    else:
                        st["challenger"], st["streak"], st["streak_conf"] = cname, 1, conf
                    if st["streak"] >= P["switch_after"]:
                        new = st["challenger"]
                        st["locked"] = new
                        st["votes"] = defaultdict(int, {new: st["streak"]})
                        st["conf_sum"] = defaultdict(float, {new: st["streak_conf"]})
                        st["challenger"], st["streak"], st["streak_conf"] = None, 0, 0.0
                else:
                    st["challenger"], st["streak"], st["streak_conf"] = None, 0, 0.0
            if st["locked"] is not None:
                lc = st["locked"]
                row.append((tid, lc, min(1.0, st["conf_sum"][lc] / max(st["votes"][lc], 1)), True))
            else:
                row.append((tid, cname, conf, False))
        for t in [t for t, st in tracks.items() if frame - st["last_seen"] > P["state_ttl"]]:
            del tracks[t]
        out.append(row)
    return out


if __name__ == "__main__":
    for f, row in enumerate(run(), 1):
        print(f, row)
