#!/usr/bin/python3
"""Build a YOLOv8n-sized detector with random weights for the benchmarks.

    /usr/bin/python3 scripts/make-bench-model.py [OUT_DIR] [FAMILY]

OUT_DIR defaults to ~/.cache/vbatch/bench/yolov8n-random (generated, never
committed).  FAMILY (default yolov8) rewrites the same network's output in
the layout of another architecture's export, so that every family is
measured on the same 8.7 GFLOP of inference: yolov5 (1, 8400, 85) with an
objectness column (the best class score), yolov10 / yolo26 end-to-end
(1, 300, 6), yolonas boxes (1, 8400, 4) x1y1x2y2 + scores (1, 8400, 80),
rfdetr dets (1, 300, 4) cx cy w h in 0..1 + labels (1, 300, 81) logits
(input "input", ImageNet normalisation).  The family's inference_config.json
and model_config.json are written beside.  The network follows the published YOLOv8n layout (width 0.25,
depth 0.33: C2f blocks, SPPF, PAN neck, decoupled head with DFL, 80
classes; BatchNorm folded into the convolutions as in an export), so its
cost is the real one: about 8.7 GFLOP at 640x640 (the script counts and
prints it).  Output (1, 84, 8400) like an Ultralytics export.  The class
biases are set so that a typical image gives a few dozen candidates above
0.4, so the benchmark's NMS does realistic work.  Written in the Roboflow
layout: weights.onnx, class_names.txt, environment.json (Stretch to 640).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(2)
torch.manual_seed(0)


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=True)
        nn.init.normal_(self.conv.weight, 0, (2.0 / (c1 * k * k)) ** 0.5 * 0.6)
        nn.init.normal_(self.conv.bias, 0, 0.05)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.conv(x))


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut):
        super().__init__()
        self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1, c2, n, shortcut):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c = c1 // 2
        self.cv1, self.cv2 = Conv(c1, c, 1), Conv(c * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat([x, y1, y2, self.m(y2)], 1))


class YOLOv8n(nn.Module):
    def __init__(self, nc=80, size=640):
        super().__init__()
        self.nc, self.reg = nc, 16
        self.b0, self.b1 = Conv(3, 16, 3, 2), Conv(16, 32, 3, 2)
        self.b2, self.b3 = C2f(32, 32, 1, True), Conv(32, 64, 3, 2)
        self.b4, self.b5 = C2f(64, 64, 2, True), Conv(64, 128, 3, 2)
        self.b6, self.b7 = C2f(128, 128, 2, True), Conv(128, 256, 3, 2)
        self.b8, self.b9 = C2f(256, 256, 1, True), SPPF(256, 256)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h12 = C2f(384, 128, 1, False)
        self.h15 = C2f(192, 64, 1, False)
        self.h16, self.h18 = Conv(64, 64, 3, 2), C2f(192, 128, 1, False)
        self.h19, self.h21 = Conv(128, 128, 3, 2), C2f(384, 256, 1, False)
        ch, c2, c3 = (64, 128, 256), 64, max(64, min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg, 1)) for x in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        anchors, strides = [], []
        for s in (8, 16, 32):
            g = size // s
            ys, xs = torch.meshgrid(torch.arange(g) + 0.5, torch.arange(g) + 0.5, indexing="ij")
            anchors.append(torch.stack([xs.flatten(), ys.flatten()], 0))
            strides.append(torch.full((1, g * g), float(s)))
        self.register_buffer("anchors", torch.cat(anchors, 1).unsqueeze(0))
        self.register_buffer("strides", torch.cat(strides, 1).unsqueeze(0))
        self.register_buffer("proj", torch.arange(self.reg, dtype=torch.float32).view(1, self.reg, 1, 1))

    def feats(self, x):
        x = self.b1(self.b0(x))
        p3 = self.b4(self.b3(self.b2(x)))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h12 = self.h12(torch.cat([self.up(p5), p4], 1))
        o3 = self.h15(torch.cat([self.up(h12), p3], 1))
        o4 = self.h18(torch.cat([self.h16(o3), h12], 1))
        o5 = self.h21(torch.cat([self.h19(o4), p5], 1))
        return [o3, o4, o5]

    def forward(self, x):
        fs = self.feats(x)
        n = x.shape[0]
        box = torch.cat([self.cv2[i](f).view(n, 4 * self.reg, -1) for i, f in enumerate(fs)], 2)
        cls = torch.cat([self.cv3[i](f).view(n, self.nc, -1) for i, f in enumerate(fs)], 2)
        # DFL: softmax over 16 bins per side, expectation by a 1x1 conv
        b = box.view(n, 4, self.reg, -1).transpose(2, 1).softmax(1)
        d = nn.functional.conv2d(b, self.proj).view(n, 4, -1)
        lt, rb = d[:, :2], d[:, 2:]
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        xywh = torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], 1) * self.strides
        return torch.cat([xywh, cls.sigmoid()], 1)


class FamilyHead(nn.Module):
    """The YOLOv8n output (1, 4+80, 8400), xywh + sigmoid scores, in another
    family's export layout."""

    def __init__(self, inner, family):
        super().__init__()
        self.inner = inner
        self.family = family

    def forward(self, x):
        y = self.inner(x)
        xywh, sc = y[:, :4], y[:, 4:]
        xyxy = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        if self.family == "yolov5":
            obj = sc.amax(1, keepdim=True)
            return torch.cat([xywh, obj, sc], 1).permute(0, 2, 1)
        if self.family == "yolonas":
            return xyxy.permute(0, 2, 1), sc.permute(0, 2, 1)
        scores = sc.permute(0, 2, 1)
        idx = torch.topk(scores.amax(-1), 300, dim=-1).indices
        if self.family == "rfdetr":
            dets = torch.gather(xywh.permute(0, 2, 1), 1, idx.unsqueeze(-1).repeat(1, 1, 4)) / 640.0
            s = torch.gather(scores, 1, idx.unsqueeze(-1).repeat(1, 1, 80)).clamp(1e-6, 1 - 1e-6)
            logits = torch.log(s / (1 - s))
            return dets, torch.cat([logits, torch.full_like(logits[..., :1], -5.0)], -1)
        boxes = torch.gather(xyxy.permute(0, 2, 1), 1, idx.unsqueeze(-1).repeat(1, 1, 4))
        s = torch.gather(scores, 1, idx.unsqueeze(-1).repeat(1, 1, 80))
        top = torch.topk(s.flatten(1), 300, dim=-1)
        qi = torch.div(top.indices, 80, rounding_mode="floor")
        boxes = torch.gather(boxes, 1, qi.unsqueeze(-1).repeat(1, 1, 4))
        return torch.cat([boxes, top.values.unsqueeze(-1), (top.indices % 80).unsqueeze(-1).float()], -1)


def count_gflop(model, x):
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            total[0] += 2 * k * out.numel()
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return total[0] / 1e9


def sample_image():
    """A 640x640 picture-like input: smooth gradients and blocks."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:640, 0:640] / 640.0
    img = np.stack([0.5 + 0.4 * np.sin(6 * xx + 2 * k) * np.cos(4 * yy) for k in range(3)], 0)
    for _ in range(12):
        x0, y0 = rng.integers(0, 560, 2)
        w, h = rng.integers(30, 200, 2)
        img[:, y0:y0 + h, x0:x0 + w] = rng.random((3, 1, 1))
    return torch.from_numpy(img.astype(np.float32)).unsqueeze(0)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/vbatch/bench/yolov8n-random")
    family = sys.argv[2] if len(sys.argv) > 2 else "yolov8"
    os.makedirs(out, exist_ok=True)
    model = YOLOv8n().eval()
    x = sample_image()
    gf = count_gflop(model, x)
    # class bias: about 40 anchors above 0.4 on the sample image
    with torch.no_grad():
        fs = model.feats(x)
        logits = torch.cat([model.cv3[i](f).view(1, 80, -1) for i, f in enumerate(fs)], 2)
        best = logits.max(1).values.flatten().sort(descending=True).values
        shift = float(np.log(0.4 / 0.6)) - float(best[40])
        for seq in model.cv3:
            seq[-1].bias += shift
        y = model(x)
    ncand = int((y[0, 4:].max(0).values > 0.4).sum())
    io = {"yolov8": (["images"], ["output0"]), "yolov5": (["images"], ["output0"]),
          "yolov10": (["images"], ["output0"]), "yolo26": (["images"], ["output0"]),
          "yolonas": (["input"], ["output0", "output1"]), "rfdetr": (["input"], ["dets", "labels"])}
    ins, outs = io[family]
    net = model if family == "yolov8" else FamilyHead(model, family).eval()
    torch.onnx.export(net, x, os.path.join(out, "weights.onnx"), opset_version=17,
                      input_names=ins, output_names=outs, do_constant_folding=True)
    if family != "yolov8":
        ni = {"training_input_size": {"height": 640, "width": 640}, "dynamic_spatial_size_supported": False,
              "color_mode": "rgb", "resize_mode": "stretch", "input_channels": 3, "scaling_factor": 255}
        if family == "rfdetr":
            ni["normalization"] = [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]
        with open(os.path.join(out, "inference_config.json"), "w") as f:
            json.dump({"network_input": ni}, f)
        with open(os.path.join(out, "model_config.json"), "w") as f:
            json.dump({"model_architecture": family, "task_type": "object-detection",
                       "backend_type": "onnx"}, f)
    names = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
             "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
             "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
             "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
             "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
             "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
             "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
             "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
             "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
             "teddy bear", "hair drier", "toothbrush"]
    with open(os.path.join(out, "class_names.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    pre = {"auto-orient": {"enabled": True},
           "resize": {"enabled": True, "format": "Stretch to", "width": 640, "height": 640}}
    with open(os.path.join(out, "environment.json"), "w") as f:
        json.dump({"PREPROCESSING": json.dumps(pre), "CLASS_MAP": {str(i): n for i, n in enumerate(names)},
                   "MULTICLASS": False, "TASK": "object-detection"}, f)
    params = sum(p.numel() for p in model.parameters())
    print(f"{out}: {params / 1e6:.2f} M parameters, {gf:.2f} GFLOP at 640x640, "
          f"{ncand} candidates > 0.4 on the sample image")


if __name__ == "__main__":
    main()
