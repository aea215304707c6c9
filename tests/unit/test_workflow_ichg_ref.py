#!/usr/bin/python3
"""Reference values of the identify_changes tests in tests/unit/test_workflow_stateful.c:
roboflow/inference IdentifyChangesBlockV1.run step by step (numpy).
Run: /usr/bin/python3 tests/unit/test_workflow_ichg_ref.py"""
import json
import math

import numpy as np


class Ref:
    def __init__(self):
        self.average = self.std = self.var = self.M2 = None
        self.sliding_window, self.samples = [], 0
        self.cs_avg = self.cs_std = self.cs_var = self.cs_m2 = None
        self.cs_window = []

    def run(self, strategy, embedding, thr=0.2, a=0.1, window=10, warmup=3):
        is_outlier, percentile, z, warming = False, 0.5, 0, False
        e = np.array(embedding, dtype=float)
        n = np.linalg.norm(e)
        if n != 0:
            e = e / n
        if self.average is not None:
            cs = np.dot(e, self.average) / np.sqrt(np.vdot(e, e) * np.vdot(self.average, self.average))
            if self.cs_avg is None:
                self.cs_avg, self.cs_std, self.cs_var, self.cs_m2 = cs, 0, 0, 0
            elif strategy == "ema":
                self.cs_avg = (1 - a) * self.cs_avg + a * cs
                d = cs - self.cs_avg
                self.cs_var = (1 - a) * self.cs_var + a * d ** 2
                self.cs_std = np.sqrt(self.cs_var)
            elif strategy == "sma":
                count = self.samples + 1
                d = cs - self.cs_avg
                self.cs_avg = cs / count + self.cs_avg * self.samples / count
                self.cs_m2 = self.cs_m2 + d * (cs - self.cs_avg)
                self.cs_std = np.sqrt(self.cs_m2 / (count - 1))
            else:
                self.cs_window.append(cs)
                if len(self.cs_window) > window:
                    self.cs_window.pop(0)
                self.cs_avg, self.cs_std = np.mean(self.cs_window), np.std(self.cs_window)
            if self.cs_std == 0:
                z, percentile = 0, 0.5
            else:
                z = (cs - self.cs_avg) / self.cs_std
                percentile = 1 - 0.5 * (1 + math.erf(z / np.sqrt(2)))
        if self.samples < warmup:
            warming = True
        else:
            is_outlier = percentile <= thr / 2 or percentile >= 1 - thr / 2
        if self.average is None:
            self.average, self.std = e, np.zeros_like(e)
            self.var, self.M2 = np.zeros_like(e), np.zeros_like(e)
        elif strategy == "ema":
            self.average = (1 - a) * self.average + a * e
            d = e - self.average
            self.var = (1 - a) * self.var + a * d ** 2
            self.std = np.sqrt(self.var)
        elif strategy == "sma":
            count = self.samples + 1
            d = e - self.average
            self.average = self.average + d / count
            self.M2 = self.M2 + d * (e - self.average)
            self.std = np.sqrt(self.M2 / (count - 1))
        else:
            self.sliding_window.append(e)
            if len(self.sliding_window) > window:
                self.sliding_window.pop(0)
            self.average = np.mean(self.sliding_window, axis=0)
            self.std = np.std(self.sliding_window, axis=0)
        self.samples += 1
        return [bool(is_outlier), float(percentile), float(z), [float(x) for x in self.average],
                [float(x) for x in self.std], warming]


EMBEDDINGS = [[1, 0, 0], [0.9, 0.1, 0], [1, 0.05, 0], [0.95, 0, 0.05], [0, 1, 0], [1, 0, 0.02]]

if __name__ == "__main__":
    for strategy in ("ema", "sma", "window"):
        r = Ref()
        out = [r.run(strategy, e, window=3) for e in EMBEDDINGS]
        print(strategy, json.dumps(out))
