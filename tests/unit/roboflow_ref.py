#!/usr/bin/python3
"""Reference post-processing of Roboflow's inference_models ONNX models,
written from its source (roboflow/inference, inference_models/
inference_models/models/: yolov5/nms.py, yolonas/nms.py,
yolov10/yolov10_object_detection_onnx.py, common/roboflow/post_processing.py
post_process_nms_fused_model_output and rescale_image_detections,
rfdetr/common.py post_process_object_detection_results) in plain Python
(no numpy, no torch), so that the unit tests can run it on the raw outputs
ONNX Runtime gave vbatch and compare the detections.

    python3 roboflow_ref.py IN.json  ->  stdout: [[x1, y1, x2, y2, confidence, class_id], ...]
    (rfdetr-seg: each detection also carries the row runs of its mask's
    largest component, [[y, x_start, x_end), ...], then the COCO RLE counts
    string of its whole mask in the whole image, as pycocotools' encode +
    rleToString give it for response_mask_format "rle")

IN.json: {"family": "yolov5" | "yolonas" | "yolov10" | "yolo26" | "rfdetr" | "rfdetr-seg",
          "confidence": c, "iou_threshold": t, "class_agnostic_nms": bool,
          "max_detections": n, "n_classes": nc, "class_map": [..] | null,
          "input": [W, H], "image": [w, h],
          "lb": {"sx", "sy", "ox", "oy", "crop_x", "crop_y"},
          "outputs": [{"shape": [...], "data": [...]}, ...]}
Boxes are in original-image pixels, rounded half-to-even (torch.round).
"""
import json
import math
import struct
import sys


def rows(out, b=0):
    """Batch element b of a rank-3 output as a list of rows."""
    _, n, c = out["shape"]
    d = out["data"]
    base = b * n * c
    return [d[base + i * c: base + (i + 1) * c] for i in range(n)]


def iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def batched_nms(boxes, scores, classes, thr):
    """torchvision.ops.batched_nms: indices kept, by descending score."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    dead = set()
    keep = []
    for oi, i in enumerate(order):
        if i in dead:
            continue
        keep.append(i)
        for j in order[oi + 1:]:
            if j not in dead and classes[j] == classes[i] and iou(boxes[i], boxes[j]) > thr:
                dead.add(j)
    return keep


def rescale(box, q):
    """rescale_image_detections: minus padding, divided by the scale, plus
    the static-crop offset, clamped to the image."""
    lb = q["lb"]
    w, h = q["image"]
    x1 = (box[0] - lb["ox"]) / lb["sx"] + lb["crop_x"]
    y1 = (box[1] - lb["oy"]) / lb["sy"] + lb["crop_y"]
    x2 = (box[2] - lb["ox"]) / lb["sx"] + lb["crop_x"]
    y2 = (box[3] - lb["oy"]) / lb["sy"] + lb["crop_y"]
    c = [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]
    return [float(round(v)) for v in c]


def argmax(v):
    best, k = v[0], 0
    for i in range(1, len(v)):
        if v[i] > best:
            best, k = v[i], i
    return best, k


def nms_family(q, cands):
    boxes = [c[0] for c in cands]
    scores = [c[1] for c in cands]
    classes = [0 if q["class_agnostic_nms"] else c[2] for c in cands]
    keep = batched_nms(boxes, scores, classes, q["iou_threshold"])[: q["max_detections"]]
    return [rescale(boxes[i], q) + [scores[i], cands[i][2]] for i in keep]


def yolov5(q):
    """run_nms_yolov5: objectness > confidence; score = best class score."""
    cands = []
    nc = q["n_classes"]
    for r in rows(q["outputs"][0]):
        if not r[4] > q["confidence"]:
            continue
        s, k = argmax(r[5:5 + nc])  # -seg: mask coefficients follow
        cands.append(([r[0] - r[2] / 2, r[1] - r[3] / 2, r[0] + r[2] / 2, r[1] + r[3] / 2], s, k))
    return nms_family(q, cands)


def yolonas(q):
    """run_yolonas_nms_for_object_detection: best class score > confidence."""
    cands = []
    for bx, sc in zip(rows(q["outputs"][0]), rows(q["outputs"][1])):
        s, k = argmax(sc)
        if s > q["confidence"]:
            cands.append((list(bx), s, k))
    return nms_family(q, cands)


def e2e(q, inclusive):
    """YOLOv10: score > confidence, the first max_detections rows;
    YOLO26 / fused NMS (post_process_nms_fused_model_output): score >=
    confidence, every row."""
    out = []
    for r in rows(q["outputs"][0]):
        ok = r[4] >= q["confidence"] if inclusive else r[4] > q["confidence"]
        if ok:
            out.append(rescale(r[:4], q) + [r[4], int(r[5])])
    return out if inclusive else out[: q["max_detections"]]


def f32(v):
    """v rounded to float32, as torch holds it."""
    return struct.unpack("f", struct.pack("f", v))[0]


def sigmoid(v):
    """torch.sigmoid on float32, step by step in float32 (1 / (1 + exp(-v))):
    logits above ~16.6 give exactly 1.0, and then several pairs tie (ties
    keep the flat index order here, as in vbatch)."""
    e = f32(math.exp(-v)) if v > -88 else math.inf
    return f32(1.0 / f32(1.0 + e))


def rfdetr(q):
    """post_process_object_detection_results: sigmoid, top-Q over the flat
    (query, class) scores, unnamed classes dropped (or remapped), score >
    confidence, sorted; cx cy w h in 0..1 times the input size."""
    dets, logits = q["outputs"][0], q["outputs"][1]
    _, nq, nl = logits["shape"]
    flat = [sigmoid(v) for v in logits["data"][: nq * nl]]
    top = sorted(range(len(flat)), key=lambda i: (-flat[i], i))[:nq]
    cmap = q.get("class_map")
    W, H = q["input"]
    out = []
    for i in top:
        qi, c = divmod(i, nl)
        if cmap is not None:
            c = cmap[c] if c < len(cmap) else -1
        elif c >= q["n_classes"]:
            c = -1
        if c < 0 or not flat[i] > q["confidence"]:
            continue
        cx, cy, w, h = dets["data"][qi * 4: qi * 4 + 4]
        box = [(cx - 0.5 * w) * W, (cy - 0.5 * h) * H, (cx + 0.5 * w) * W, (cy + 0.5 * h) * H]
        out.append(rescale(box, q) + [flat[i], c, qi])
    out.sort(key=lambda d: -d[4])
    return out


def rfdetr_seg(q):
    """post_process_instance_segmentation_results: the selection of rfdetr()
    capped at max_detections, then each query's mask logits through
    align_instance_segmentation_results (padding cut in mask cells,
    rounded; bilinear resize with half-pixel centres to the image; > 0).
    Each detection gets the largest 8-connected component of its mask (what
    the polygon outlines) as its bbox and row runs [[y, x0, x1), ...]."""
    dets = rfdetr(q)[: q["max_detections"]]
    masks = q["outputs"][2]
    _, nq, mh, mw = masks["shape"]
    W, H = q["input"]
    lb = q["lb"]
    iw, ih = q["image"]
    ow, oh = iw - lb["crop_x"], ih - lb["crop_y"]
    pl, pt = lb["ox"], lb["oy"]
    pr, pb = W - pl - ow * lb["sx"], H - pt - oh * lb["sy"]
    mpl, mpr = round(mw / W * pl), round(mw / W * pr)
    mpt, mpb = round(mh / H * pt), round(mh / H * pb)
    sw, sh = mw - mpl - mpr, mh - mpt - mpb
    fx, fy = f32(sw / ow), f32(sh / oh)
    out = []
    for d in dets:
        qi = d[6]
        plane = masks["data"][qi * mh * mw: (qi + 1) * mh * mw]

        def at(x, y):
            x += mpl
            y += mpt
            return 0.0 if x < 0 or y < 0 or x >= mw or y >= mh else plane[y * mw + x]
        fg = set()
        # float32 step by step, as torch's upsample_bilinear2d computes
        for y in range(oh):
            sy = max(f32(f32(f32(y + 0.5) * fy) - 0.5), 0.0)
            ya = int(sy)
            yb = ya + (1 if ya < sh - 1 else 0)
            ly = f32(sy - ya)
            for x in range(ow):
                sx = max(f32(f32(f32(x + 0.5) * fx) - 0.5), 0.0)
                xa = int(sx)
                xb = xa + (1 if xa < sw - 1 else 0)
                lx = f32(sx - xa)
                top = f32(f32(f32(1 - lx) * at(xa, ya)) + f32(lx * at(xb, ya)))
                bot = f32(f32(f32(1 - lx) * at(xa, yb)) + f32(lx * at(xb, yb)))
                v = f32(f32(f32(1 - ly) * top) + f32(ly * bot))
                if v > 0:
                    fg.add((x, y))
        best = []
        seen = set()
        for p0 in sorted(fg, key=lambda p: (p[1], p[0])):
            if p0 in seen:
                continue
            comp, stack = [], [p0]
            seen.add(p0)
            while stack:
                x, y = stack.pop()
                comp.append((x, y))
                for dx in (-1, 0, 1):
                    for dy in (-1, 0, 1):
                        nb = (x + dx, y + dy)
                        if nb in fg and nb not in seen:
                            seen.add(nb)
                            stack.append(nb)
            if len(comp) > len(best):
                best = comp
        runs = []
        for y in sorted({p[1] for p in best}):
            xs = sorted(p[0] for p in best if p[1] == y)
            start = prev = xs[0]
            for x in xs[1:]:
                if x != prev + 1:
                    runs.append([y + lb["crop_y"], start + lb["crop_x"], prev + 1 + lb["crop_x"]])
                    start = x
                prev = x
            runs.append([y + lb["crop_y"], start + lb["crop_x"], prev + 1 + lb["crop_x"]])
        full = {(x + lb["crop_x"], y + lb["crop_y"]) for x, y in fg}
        out.append(d[:6] + [runs, coco_rle(full, iw, ih)])
    return out


def coco_rle(fg, w, h):
    """pycocotools: column-major runs, the first of 0s (maybe empty); then
    rleToString: each count less the one two before it (from the fourth
    on), 5-bit groups with a continuation bit, + 48."""
    counts, cur, run = [], 0, 0
    for x in range(w):
        for y in range(h):
            v = 1 if (x, y) in fg else 0
            if v != cur:
                counts.append(run)
                run, cur = 0, v
            run += 1
    counts.append(run)
    s = []
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
            s.append(chr(c + 48))
    return "".join(s)


def main():
    with open(sys.argv[1]) as f:
        q = json.load(f)
    fam = q["family"]
    if fam in ("yolov5", "yolov7"):
        res = yolov5(q)
    elif fam == "yolonas":
        res = yolonas(q)
    elif fam == "yolov10":
        res = e2e(q, False)
    elif fam == "yolo26":
        res = e2e(q, True)
    elif fam == "rfdetr":
        res = [d[:6] for d in rfdetr(q)]
    elif fam == "rfdetr-seg":
        res = rfdetr_seg(q)
    else:
        raise SystemExit(f"unknown family {fam}")
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
