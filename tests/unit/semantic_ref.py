#!/usr/bin/python3
"""Reference of Roboflow's semantic segmentation path, written from its
source (roboflow/inference: inference/core/models/semantic_segmentation_base.py
make_response, and the workflow blocks
models/roboflow/semantic_segmentation/v1.py and v2.py
_convert_to_sv_detections, with pycocotools' RLE encoding and
serialise_rle_sv_detections) in plain Python (no numpy, no torch), run by
tests/unit/test_jobs_semantic.c on the raw logits ONNX Runtime gave vbatch.

    python3 semantic_ref.py IN.json  ->  stdout: {"class_mask": [...], "conf_mask": [...],
                                                  "predictions": [...]}

IN.json: {"image": [w, h], "classes": [...], "output": {"shape": [1, C, H, W], "data": [...]}}
class_mask / conf_mask: the model response's masks (row-major, w x h);
predictions: the block's serialised detections without detection_id.
"""
import json
import math
import struct
import sys


def f32(v):
    return struct.unpack("f", struct.pack("f", v))[0]


def model_masks(out, w, h):
    """softmax over classes, torch.max, round(p * 255), then nearest
    interpolation (torch: source = floor(dst * (in / out)) in float32)."""
    _, c, oh, ow = out["shape"]
    d = out["data"]
    plane = oh * ow
    cls, conf = [0] * plane, [0] * plane
    for i in range(plane):
        lg = [d[k * plane + i] for k in range(c)]
        mx = max(lg)
        arg = lg.index(mx)  # first of equal maxima
        s = sum(math.exp(v - mx) for v in lg)
        cls[i] = arg
        conf[i] = int(round(f32(f32(1.0 / s) * 255.0)))  # round half to even, as torch.round
    fx, fy = f32(ow / w), f32(oh / h)
    xs = [min(int(math.floor(f32(f32(x) * fx))), ow - 1) for x in range(w)]
    ocls, oconf = [], []
    for y in range(h):
        sy = min(int(math.floor(f32(f32(y) * fy))), oh - 1)
        for x in range(w):
            ocls.append(cls[sy * ow + xs[x]])
            oconf.append(conf[sy * ow + xs[x]])
    return ocls, oconf


def rle_string(mask, w, h):
    """pycocotools: column-major runs starting with zeros, then
    rleToString's 5-bit groups (each count less the one two before it)."""
    counts, cur, run = [], 0, 0
    for x in range(w):
        for y in range(h):
            v = mask[y * w + x]
            if v != cur:
                counts.append(run)
                run, cur = 0, v
            run += 1
    counts.append(run)
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def block_predictions(cls, conf, w, h, classes):
    preds = []
    for cid in sorted(set(cls)):
        if cid == 0:
            continue
        mask = [1 if v == cid else 0 for v in cls]
        rows = [y for y in range(h) if any(mask[y * w:(y + 1) * w])]
        cols = [x for x in range(w) if any(mask[y * w + x] for y in range(h))]
        x1, y1, x2, y2 = float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])
        vals = [conf[i] for i in range(w * h) if mask[i]]
        confidence = f32(float(sum(vals)) / len(vals) / 255.0)
        bw, bh = abs(x2 - x1), abs(y2 - y1)
        preds.append({"width": bw, "height": bh, "x": x1 + bw / 2, "y": y1 + bh / 2,
                      "confidence": confidence, "class_id": cid,
                      "class": classes[cid] if cid < len(classes) else str(cid),
                      "rle_mask": {"size": [h, w], "counts": rle_string(mask, w, h)}})
    return preds


def main():
    with open(sys.argv[1]) as f:
        q = json.load(f)
    w, h = q["image"]
    cls, conf = model_masks(q["output"], w, h)
    json.dump({"class_mask": cls, "conf_mask": conf,
               "predictions": block_predictions(cls, conf, w, h, q["classes"])}, sys.stdout)


if __name__ == "__main__":
    main()
