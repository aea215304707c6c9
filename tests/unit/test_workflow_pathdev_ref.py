#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_pathdev.c: roboflow/inference
path_deviation_analytics' discrete Fréchet distance (the recursive
_compute_distance over the whole path, as the block runs it every frame),
re-implemented here with numpy.  Run: /usr/bin/python3 tests/unit/test_workflow_pathdev_ref.py"""
import numpy as np


def frechet(p, q):
    p, q = np.array(p, float), np.array(q, float)
    d = np.full((len(p), len(q)), -1.0)

    def c(i, j):
        if d[i, j] > -1:
            return d[i, j]
        e = np.sqrt(np.sum((p[i] - q[j]) ** 2))
        if i == 0 and j == 0:
            d[i, j] = e
        elif i > 0 and j == 0:
            d[i, j] = max(c(i - 1, 0), e)
        elif i == 0 and j > 0:
            d[i, j] = max(c(0, j - 1), e)
        else:
            d[i, j] = max(min(c(i - 1, j), c(i - 1, j - 1), c(i, j - 1)), e)
        return d[i, j]

    return c(len(p) - 1, len(q) - 1)


if __name__ == "__main__":
    ref1 = [[50, 70], [100, 70], [150, 70]]
    ref2 = [[40, 60], [200, 100]]
    # the object's centre (bottom-centre with +15) at frame f: (50 + 4 f, 60)
    path = []
    out1, out2 = [], []
    for f in range(1, 21):
        path.append((50 + 4 * f, 60))
        out1.append(frechet(path, ref1))
        out2.append(frechet(path, ref2))
    print("CENTER vs ref1, frames 1..20:", ", ".join("%.12f" % v for v in out1))
    print("CENTER vs ref2, frames 1..20:", ", ".join("%.12f" % v for v in out2))
    bpath = [(50 + 4 * f, 75) for f in range(1, 6)]
    print("BOTTOM_CENTER vs ref1, frame 5:", "%.12f" % frechet(bpath, ref1))
