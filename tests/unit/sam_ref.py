#!/usr/bin/python3
"""Reference post-processing of Roboflow's SAM2 path, written from its
source (roboflow/inference: inference_models/models/sam2/sam2_torch.py
predict_for_single_image with the SAM2 library's
SAM2Transforms.postprocess_masks, and inference/models/sam2/
segment_anything2_inference_models.py choose_most_confident_sam_prediction
and turn_segmentation_results_into_rle_response) in plain Python (no numpy,
no torch), so that tests/unit/test_model_sam.c can run it on the raw
decoder outputs ONNX Runtime gave vbatch and compare the masks.

    python3 sam_ref.py IN.json  ->  stdout: [[chosen_index, confidence, rle_counts], ...] per prompt

IN.json: {"masks": {"shape": [N, K, h, w], "data": [...]},
          "iou": {"shape": [N, K], "data": [...]},
          "multimask": bool, "image": [W, H]}

- the mask decoder's outputs: with multimask_output the three multimask
  tokens (1..3 of the four), else the single-mask token 0 (a decoder that
  only has three or one: those);
- F.interpolate(low_res, (H, W), mode="bilinear", align_corners=False),
  in float32 step by step as torch's CPU kernel computes it;
- masks > 0.0 (mask_threshold 0);
- np.argsort(scores)[-1]: the highest predicted IoU (the last of equal
  maxima), its IoU the confidence;
- pycocotools encode of the binary mask (column-major) + rleToString.
"""
import json
import sys

from roboflow_ref import coco_rle, f32


def main():
    with open(sys.argv[1]) as f:
        q = json.load(f)
    n, k, mh, mw = q['masks']['shape']
    md, iou = [f32(v) for v in q["masks"]["data"]], q["iou"]["data"]
    W, H = q['image']
    multi = q['multimask']
    if k == 4:
        cand = [1, 2, 3] if multi else [0]
    else:
        cand = list(range(k))
    scx, scy = f32(mw / W), f32(mh / H)

    def src(scale, d, size):
        s = f32(f32(scale * f32(d + 0.5)) - 0.5)
        if s < 0:
            s = 0.0
        i = int(s)
        lam = f32(s - i)
        i1 = i + 1 if i < size - 1 else i
        return i, i1, lam, f32(1.0 - lam)

    xs = [src(scx, x, mw) for x in range(W)]
    ys = [src(scy, y, mh) for y in range(H)]
    out = []
    for p in range(n):
        sc = [f32(iou[p * k + j]) for j in cand]
        order = sorted(range(len(cand)), key=lambda j: (sc[j], j))  # argsort; ties keep index order
        best = cand[order[-1]]
        base = (p * k + best) * mh * mw
        fg = set()
        for y in range(H):
            y0, y1, ly, hy = ys[y]
            r0, r1 = base + y0 * mw, base + y1 * mw
            for x in range(W):
                x0, x1, lx, hx = xs[x]
                a = f32(f32(hx * md[r0 + x0]) + f32(lx * md[r0 + x1]))
                b = f32(f32(hx * md[r1 + x0]) + f32(lx * md[r1 + x1]))
                v = f32(f32(hy * a) + f32(ly * b))
                if v > 0.0:
                    fg.add((x, y))
        out.append([best, f32(iou[p * k + best]), coco_rle(fg, W, H)])
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
