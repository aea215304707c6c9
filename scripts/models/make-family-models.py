#!/usr/bin/python3
"""Build tiny random-weight replicas of the detection architectures Roboflow
trains and exports, with the input/output names, shapes and value
conventions of the real ONNX exports, into tests/data/models/<name>/.

    VBATCH_WITH_TORCH=1 scripts/install-deps.sh   # Debian python3-torch, python3-onnx
    /usr/bin/python3 scripts/models/make-family-models.py

Nothing is trained: the weights are random (fixed seeds) with a few biases
set so that the test pictures give a few dozen candidates, some of them
overlapping (so that NMS has work to do).  Each folder is a Roboflow model
package (weights.onnx, class_names.txt, inference_config.json and
model_config.json / model_type.json as Roboflow's packages carry them) plus
test/native.png (a picture of exactly the input size, so that
pre-processing is the identity) and test/torch.json (PyTorch's raw outputs
on it), against which tests/unit/test_model.c checks ONNX Runtime's.

| folder       | convention copied (source)                                          |
|--------------|---------------------------------------------------------------------|
| yolov5-tiny  | YOLOv5 Detect head as exported (ultralytics/yolov5 models/yolo.py,  |
|              | export.py): input "images" (1,3,H,W), output "output0" (1, A, 5+nc),|
|              | 3 anchors per cell at strides 8/16/32, xy = (2s-0.5+grid)*stride,   |
|              | wh = (2s)^2*anchor, objectness and class scores after sigmoid,      |
|              | not multiplied together                                             |
| yolov5-seg-tiny | YOLOv5 Segment head (models/yolo.py Segment, export.py):    |
|              | "output0" (1, A, 5+nc+32), mask coefficients raw, "output1"        |
|              | prototypes (1, 32, 32, 32); task instance-segmentation             |
| yolov7-tiny  | same layout (YOLOv7 IDetect export, output "output", v7 anchors)    |
| yolov10-tiny | YOLOv10 end-to-end export (ultralytics v10postprocess): output0     |
|              | (1, 300, 6) = x1 y1 x2 y2 in input pixels, score, class as float;   |
|              | top-300 anchors by best score, then top-300 (anchor, class) pairs   |
| yolo26-tiny  | YOLO26 end-to-end export: same (1, 300, 6) layout                   |
| yolonas-tiny | YOLO-NAS export without NMS (super-gradients): "output0" boxes      |
|              | (1, A, 4) x1 y1 x2 y2 in input pixels, "output1" scores (1, A, nc)  |
|              | after sigmoid (the decoder goes by position, as Roboflow's does)    |
| yolo26-ultra | yolo26-tiny's network as Ultralytics exports it: weights.onnx  |
|              | alone, metadata names/imgsz/task/end2end "True"/description     |
|              | (ultralytics engine/exporter.py)                                    |
| rfdetr-seg-tiny | RF-DETR segmentation export: as rfdetr-tiny (Q=100) plus     |
|              | "masks" (1, Q, H/4, W/4) mask logits (a query embedding dotted     |
|              | with a per-pixel embedding), task instance-segmentation           |
| deeplab-tiny | DeepLabV3+ semantic segmentation as Roboflow exports it (the     |
|              | segmentation_models_pytorch DeepLabV3Plus that Roboflow's            |
|              | DeepLabV3PlusSemanticSegmentation runs): input "input" (1,3,H,W)    |
|              | ImageNet-normalised, stretch resize, output "output" (1, C, H, W)   |
|              | raw per-pixel class logits at the input resolution (encoder at      |
|              | stride 4, decoder upsampled 4x bilinear); class 0 "background";    |
|              | task semantic-segmentation.  `make-family-models.py deeplab-tiny`  |
|              | builds this one alone                                               |
| rfdetr-tiny  | RF-DETR export (roboflow/rf-detr deploy): input "input" (1,3,H,W)   |
|              | ImageNet-normalised, outputs "dets" (1, Q=300, 4) cx cy w h         |
|              | relative to the input (sigmoid of reference points + deltas) and    |
|              | "labels" (1, Q, nc+1) raw logits; class_names.txt carries the       |
|              | dataset's super-class first, removed by class_names_operations      |

All files together are a few hundred kilobytes; the script is
deterministic for a given torch version.
"""
import json
import os
import shutil

import imageio as iio
import numpy as np
import torch
from torch import nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "models")
SRC_IMG = os.path.join(OUT, "synth-det", "test", "img_00.png")
CLASSES = ["circle", "square", "triangle"]
NC = len(CLASSES)

torch.set_num_threads(2)


def backbone(seed):
    """Three feature maps at strides 8, 16, 32 (16, 32, 64 channels)."""
    torch.manual_seed(seed)

    class B(nn.Module):
        def __init__(self):
            super().__init__()
            self.s8 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.SiLU(), nn.Conv2d(16, 16, 3, 2, 1),
                                    nn.SiLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU())
            self.s16 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.SiLU())
            self.s32 = nn.Sequential(nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU())

        def forward(self, x):
            a = self.s8(x)
            b = self.s16(a)
            return [a, b, self.s32(b)]

    b = B()
    with torch.no_grad():  # PyTorch's default init shrinks activations layer by layer
        for mod in b.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.mul_(3.0)
    return b


CH = [16, 32, 64]
STRIDES = [8, 16, 32]


class YoloV5Head(nn.Module):
    """YOLOv5/v7 Detect in export mode: one (1, A, 5+nc) tensor."""

    def __init__(self, anchors, seed, obj_bias):
        super().__init__()
        self.b = backbone(seed)
        self.no = 5 + NC
        self.m = nn.ModuleList(nn.Conv2d(c, 3 * self.no, 1) for c in CH)
        with torch.no_grad():
            for conv in self.m:
                conv.weight.mul_(2.0)
                bias = conv.bias.view(3, self.no)
                bias[:, 4] = obj_bias
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(3, 3, 2))

    def forward(self, x):
        feats = self.b(x)
        z = []
        for i, f in enumerate(feats):
            p = self.m[i](f)
            n, _, h, w = p.shape
            p = p.view(n, 3, self.no, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                                    torch.arange(w, dtype=torch.float32), indexing="ij")
            grid = torch.stack((gx, gy), 2).view(1, 1, h, w, 2)
            ag = self.anchors[i].view(1, 3, 1, 1, 2)
            xy = (p[..., 0:2] * 2 - 0.5 + grid) * STRIDES[i]
            wh = (p[..., 2:4] * 2) ** 2 * ag
            z.append(torch.cat((xy, wh, p[..., 4:]), -1).view(n, -1, self.no))
        return torch.cat(z, 1)


class YoloV5Seg(YoloV5Head):
    """YOLOv5 Segment head as exported (ultralytics/yolov5 models/yolo.py
    Segment): (1, A, 5+nc+32) with xy/wh/objectness/classes decoded as in
    Detect and the 32 mask coefficients raw, plus "output1" prototypes
    (1, 32, H/4, W/4) from the stride-8 features upsampled 2x."""

    def __init__(self, anchors, seed, obj_bias, nm=32):
        nn.Module.__init__(self)
        self.b = backbone(seed)
        self.no = 5 + NC + nm
        self.nm = nm
        self.m = nn.ModuleList(nn.Conv2d(c, 3 * self.no, 1) for c in CH)
        self.proto = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                   nn.Conv2d(16, nm, 3, 1, 1), nn.SiLU())
        with torch.no_grad():
            for conv in self.m:
                conv.weight.mul_(2.0)
                bias = conv.bias.view(3, self.no)
                bias[:, 4] = obj_bias
            self.proto[1].weight.mul_(3.0)
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(3, 3, 2))

    def forward(self, x):
        feats = self.b(x)
        z = []
        for i, f in enumerate(feats):
            p = self.m[i](f)
            n, _, h, w = p.shape
            p = p.view(n, 3, self.no, h, w).permute(0, 1, 3, 4, 2)
            gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                                    torch.arange(w, dtype=torch.float32), indexing="ij")
            grid = torch.stack((gx, gy), 2).view(1, 1, h, w, 2)
            ag = self.anchors[i].view(1, 3, 1, 1, 2)
            xy = (p[..., 0:2].sigmoid() * 2 - 0.5 + grid) * STRIDES[i]
            wh = (p[..., 2:4].sigmoid() * 2) ** 2 * ag
            conf = p[..., 4:5 + NC].sigmoid()
            z.append(torch.cat((xy, wh, conf, p[..., 5 + NC:]), -1).view(n, -1, self.no))
        return torch.cat(z, 1), self.proto(feats[0])


class AnchorFreeHead(nn.Module):
    """YOLOv8-style decoupled head with DFL (reg_max 16): boxes x1 y1 x2 y2
    in input pixels per anchor point, class scores after sigmoid."""

    def __init__(self, seed, cls_bias):
        super().__init__()
        self.b = backbone(seed)
        self.reg = nn.ModuleList(nn.Conv2d(c, 64, 1) for c in CH)
        self.cls = nn.ModuleList(nn.Conv2d(c, NC, 1) for c in CH)
        with torch.no_grad():
            for conv in self.cls:
                conv.weight.mul_(3.0)
                conv.bias.fill_(cls_bias)
            for conv in self.reg:
                conv.weight.mul_(3.0)

    def boxes_scores(self, x):
        feats = self.b(x)
        boxes, scores = [], []
        for i, f in enumerate(feats):
            n, _, h, w = f.shape
            d = self.reg[i](f).view(n, 4, 16, h * w).softmax(2)
            dist = (d * torch.arange(16, dtype=torch.float32).view(1, 1, 16, 1)).sum(2)  # (n,4,hw)
            gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                                    torch.arange(w, dtype=torch.float32), indexing="ij")
            ax = (gx.reshape(-1) + 0.5) * STRIDES[i]
            ay = (gy.reshape(-1) + 0.5) * STRIDES[i]
            s = STRIDES[i] * 0.5
            x1 = ax - dist[:, 0] * s
            y1 = ay - dist[:, 1] * s
            x2 = ax + dist[:, 2] * s
            y2 = ay + dist[:, 3] * s
            boxes.append(torch.stack((x1, y1, x2, y2), 2))
            scores.append(self.cls[i](f).view(n, NC, h * w).permute(0, 2, 1))
        logits = torch.cat(scores, 1)
        # flat backgrounds give many anchors the same score; a small ramp over
        # the anchors keeps top-k free of ties (PyTorch and ONNX Runtime order
        # ties differently)
        a = logits.shape[1]
        ramp = torch.arange(a, dtype=torch.float32).view(1, a, 1) * (0.01 / a)
        return torch.cat(boxes, 1), (logits + ramp).sigmoid()


class YoloNas(AnchorFreeHead):
    def forward(self, x):
        return self.boxes_scores(x)


class EndToEnd(AnchorFreeHead):
    """Ultralytics end-to-end output: top-k anchors by best score, then the
    top-k (anchor, class) pairs; rows x1 y1 x2 y2 score class."""
    K = 300

    def forward(self, x):
        boxes, scores = self.boxes_scores(x)
        k = min(self.K, boxes.shape[1])
        best = scores.amax(-1)
        idx = torch.topk(best, k, dim=-1).indices  # (n, k)
        boxes = torch.gather(boxes, 1, idx.unsqueeze(-1).repeat(1, 1, 4))
        scores = torch.gather(scores, 1, idx.unsqueeze(-1).repeat(1, 1, NC))
        top = torch.topk(scores.flatten(1), k, dim=-1)
        labels = top.indices % NC
        qi = torch.div(top.indices, NC, rounding_mode="floor")
        boxes = torch.gather(boxes, 1, qi.unsqueeze(-1).repeat(1, 1, 4))
        return torch.cat((boxes, top.values.unsqueeze(-1), labels.unsqueeze(-1).float()), -1)


class RFDetr(nn.Module):
    """Queries attend to a stride-8 feature map; boxes = sigmoid(reference
    point logits + deltas) as cx cy w h in 0..1, labels = raw logits."""

    def __init__(self, seed, q=300, n_logits=NC + 2):
        super().__init__()
        self.b = backbone(seed)
        torch.manual_seed(seed + 1)
        self.q = nn.Parameter(torch.randn(q, 16))
        self.key = nn.Conv2d(16, 16, 1)
        self.ref = nn.Parameter(torch.cat((torch.logit(torch.rand(q, 2) * 0.9 + 0.05),
                                           torch.full((q, 2), -2.0) + torch.randn(q, 2) * 0.4), 1))
        self.box = nn.Linear(16, 4)
        self.cls = nn.Linear(16, n_logits)
        with torch.no_grad():
            self.box.weight.mul_(0.5)
            self.cls.weight.mul_(4.0)
            self.cls.bias.fill_(-2.4)

    def forward(self, x):
        f = self.b(x)[0]  # (n, 16, h, w)
        n, c, h, w = f.shape
        k = self.key(f).view(n, c, h * w)
        att = torch.einsum("qc,ncp->nqp", self.q, k).softmax(-1)
        v = torch.einsum("nqp,ncp->nqc", att, f.view(n, c, h * w))
        dets = (self.ref.unsqueeze(0) + self.box(v)).sigmoid()
        return dets, self.cls(v)


class NaNGate(nn.Module):
    """A YOLOv5 replica whose objectness is multiplied by sqrt(limit - mean
    brightness): NaN on every picture brighter than the limit (limit > 0),
    or already on a blank one (limit < 0)."""

    def __init__(self, inner, limit):
        super().__init__()
        self.inner = inner
        self.limit = limit

    def forward(self, x):
        out = self.inner(x)
        g = torch.sqrt(self.limit - x.mean())
        return torch.cat((out[..., :4], out[..., 4:5] * g, out[..., 5:]), -1)


class RFDetrSeg(RFDetr):
    """RF-DETR segmentation: as RFDetr, plus masks (1, Q, H/4, W/4) logits =
    query embedding . per-pixel embedding of the stride-8 features
    upsampled 2x (bilinear), as the real head dots query features with a
    pixel decoder's map."""

    def __init__(self, seed, q=100):
        super().__init__(seed, q=q)
        torch.manual_seed(seed + 2)
        self.qm = nn.Linear(16, 16)
        self.pix = nn.Conv2d(16, 16, 1)
        with torch.no_grad():
            self.qm.weight.mul_(2.0)
            self.qm.bias.fill_(0.0)

    def forward(self, x):
        f = self.b(x)[0]
        n, c, h, w = f.shape
        k = self.key(f).view(n, c, h * w)
        att = torch.einsum("qc,ncp->nqp", self.q, k).softmax(-1)
        v = torch.einsum("nqp,ncp->nqc", att, f.view(n, c, h * w))
        dets = (self.ref.unsqueeze(0) + self.box(v)).sigmoid()
        pix = nn.functional.interpolate(self.pix(f), scale_factor=2, mode="bilinear",
                                        align_corners=False)
        masks = torch.einsum("nqc,nchw->nqhw", self.qm(v), pix) - 0.5
        return dets, self.cls(v), masks


class DeepLabTiny(nn.Module):
    """DeepLabV3+-shaped: a stride-4 encoder, an ASPP-like pair of dilated
    3x3 convolutions, a 1x1 classifier and a 4x bilinear upsampling back to
    the input size (smp's DeepLabV3Plus segmentation head ends the same
    way)."""

    def __init__(self, seed, nc):
        super().__init__()
        torch.manual_seed(seed)
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.a1 = nn.Conv2d(16, 16, 3, 1, 2, dilation=2)
        self.a2 = nn.Conv2d(16, 16, 3, 1, 4, dilation=4)
        self.head = nn.Conv2d(32, nc, 1)
        with torch.no_grad():
            self.head.weight.mul_(90.0)  # confident pixels, uncertain borders
            self.head.bias.fill_(0.0)

    def forward(self, x):
        f = self.enc(x)
        y = self.head(torch.cat([self.a1(f).relu(), self.a2(f).relu()], 1))
        return nn.functional.interpolate(y, scale_factor=4, mode="bilinear", align_corners=False)


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def make_deeplab():
    mean, std = IMAGENET
    export("deeplab-tiny", DeepLabTiny(4, NC + 1), 128, "input", ["output"],
           {"inference_config.json": cfg(128, "stretch", mean=mean, std=std),
            "model_config.json": {"model_architecture": "deeplab-v3-plus",
                                  "task_type": "semantic-segmentation", "backend_type": "onnx"}},
           mean=mean, std=std, names=["background"] + CLASSES)


def native_image(size):
    """The first synth-det test picture (256x256) averaged down 2x2 to 128,
    centre-cropped to size: pre-processing to the input size is then the
    identity."""
    im = iio.imread(SRC_IMG).astype(np.float32)[:, :, :3]
    im = (im[0::2, 0::2] + im[1::2, 0::2] + im[0::2, 1::2] + im[1::2, 1::2]) / 4
    im = np.floor(im + 0.5).clip(0, 255).astype(np.uint8)
    o = (im.shape[0] - size) // 2
    return im[o:o + size, o:o + size]


def flat(t):
    return [float(f"{v:.8g}") for v in t.detach().numpy().astype(np.float64).flatten()]


def export(name, model, size, in_name, out_names, files, mean=None, std=None, names=CLASSES):
    d = os.path.join(OUT, name)
    os.makedirs(os.path.join(d, "test"), exist_ok=True)
    model.eval()
    x = torch.zeros(1, 3, size, size)
    path = os.path.join(d, "weights.onnx")
    torch.onnx.export(model, x, path, opset_version=17, input_names=[in_name],
                      output_names=out_names, do_constant_folding=True)
    with open(os.path.join(d, "class_names.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    for fn, obj in files.items():
        with open(os.path.join(d, fn), "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
    img = native_image(size)
    iio.imwrite(os.path.join(d, "test", "native.png"), img)
    t = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    if mean is not None:
        t = (t - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        outs = model(t)
    if isinstance(outs, torch.Tensor):
        outs = (outs,)
    ref = {}
    for n, o in zip(out_names, outs):
        step = 7 if o.numel() > 20000 else 1  # masks: every 7th value
        ref[n] = {"shape": list(o.shape), "data": flat(o)[::step]}
        if step > 1:
            ref[n]["step"] = step
    with open(os.path.join(d, "test", "torch.json"), "w") as f:
        json.dump({"native.png": ref}, f)
    print(f"{name}: {os.path.getsize(path)} bytes; outputs "
          + ", ".join(f"{n} {tuple(o.shape)}" for n, o in zip(out_names, outs)))
    return outs


def cfg(size, resize="letterbox", mean=None, std=None, post=None, extra=None):
    ni = {"training_input_size": {"height": size, "width": size},
          "dynamic_spatial_size_supported": False, "color_mode": "rgb",
          "resize_mode": resize, "input_channels": 3, "scaling_factor": 255}
    if resize.startswith("letterbox"):
        ni["padding_value"] = 114
    if mean is not None:
        ni["normalization"] = [mean, std]
    c = {"network_input": ni}
    if post:
        c["post_processing"] = post
    if extra:
        c.update(extra)
    return c


def main():
    V5_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    V7_ANCHORS = [[12, 16, 19, 36, 40, 28], [36, 75, 76, 55, 72, 146], [142, 110, 192, 243, 459, 401]]
    nms = {"type": "nms", "fused": False}
    fused = {"type": "nms", "fused": True}

    export("yolov5-tiny", YoloV5Head(V5_ANCHORS, 51, -0.9), 128, "images", ["output0"],
           {"inference_config.json": cfg(128, "letterbox", post=nms),
            "model_config.json": {"model_architecture": "yolov5", "task_type": "object-detection",
                                  "backend_type": "onnx"}})
    export("yolov5-seg-tiny", YoloV5Seg(V5_ANCHORS, 53, -0.9), 128, "images", ["output0", "output1"],
           {"inference_config.json": cfg(128, "letterbox", post=nms),
            "model_config.json": {"model_architecture": "yolov5", "task_type": "instance-segmentation",
                                  "backend_type": "onnx"}})
    export("yolov7-tiny", YoloV5Head(V7_ANCHORS, 71, -0.9), 128, "images", ["output"],
           {"inference_config.json": cfg(128, "stretch", post=nms),
            "model_type.json": {"model_type": "yolov7"}})
    export("yolov10-tiny", EndToEnd(101, -1.25), 128, "images", ["output0"],
           {"inference_config.json": cfg(128, "letterbox", post=fused),
            "model_config.json": {"model_architecture": "yolov10", "task_type": "object-detection",
                                  "backend_type": "onnx"}})
    export("yolo26-tiny", EndToEnd(261, -1.25), 128, "images", ["output0"],
           {"inference_config.json": cfg(128, "stretch", post=fused),
            "model_config.json": {"model_architecture": "yolo26", "task_type": "object-detection",
                                  "backend_type": "onnx"}})
    export("yolonas-tiny", YoloNas(91, -1.25), 128, "input", ["output0", "output1"],
           {"inference_config.json": cfg(128, "letterbox", post=nms),
            "model_config.json": {"model_architecture": "yolonas", "task_type": "object-detection",
                                  "backend_type": "onnx"}})
    # an Ultralytics end-to-end export: no package files, ONNX metadata only
    import onnx
    d = os.path.join(OUT, "yolo26-ultra")
    os.makedirs(d, exist_ok=True)
    om = onnx.load(os.path.join(OUT, "yolo26-tiny", "weights.onnx"))
    meta = {"description": "Ultralytics YOLO26n model trained on synth.yaml", "author": "Ultralytics",
            "task": "detect", "batch": "1", "imgsz": "[128, 128]", "stride": "32", "end2end": "True",
            "names": "{0: 'circle', 1: 'square', 2: 'triangle'}"}
    for k, v in meta.items():
        e = om.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(om, os.path.join(d, "weights.onnx"))
    shutil.rmtree(os.path.join(d, "test"), ignore_errors=True)
    shutil.copytree(os.path.join(OUT, "yolo26-tiny", "test"), os.path.join(d, "test"))
    print("yolo26-ultra: yolo26-tiny with Ultralytics metadata (end2end True), no package files")

    for name, limit in (("nan-blank", -0.1), ("nan-bright", 0.05)):
        # bad/ holds models refused at registration; nan-bright registers
        d = os.path.join(OUT, "bad" if limit < 0 else "", name)
        os.makedirs(d, exist_ok=True)
        m = NaNGate(YoloV5Head(V5_ANCHORS, 51, -0.9), limit).eval()
        torch.onnx.export(m, torch.zeros(1, 3, 128, 128), os.path.join(d, "weights.onnx"),
                          opset_version=17, input_names=["images"], output_names=["output0"])
        with open(os.path.join(d, "class_names.txt"), "w") as f:
            f.write("\n".join(CLASSES) + "\n")
        with open(os.path.join(d, "model_type.json"), "w") as f:
            f.write('{"model_type": "yolov5v6n"}\n')
        print(f"{name}: NaN objectness {'on a blank input' if limit < 0 else 'on bright pictures'}")
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    export("rfdetr-tiny", RFDetr(31), 112, "input", ["dets", "labels"],
           {"inference_config.json": cfg(112, "stretch", mean=mean, std=std, extra={
               "class_names_operations": [{"type": "class_name_removal",
                                           "class_name": "shapes-3fQz"}]}),
            "model_type.json": {"model_type": "rfdetr-nano"}},
           mean=mean, std=std, names=["shapes-3fQz"] + CLASSES)
    export("rfdetr-seg-tiny", RFDetrSeg(41), 112, "input", ["dets", "labels", "masks"],
           {"inference_config.json": cfg(112, "stretch", mean=mean, std=std, extra={
               "class_names_operations": [{"type": "class_name_removal",
                                           "class_name": "shapes-3fQz"}]}),
            "model_config.json": {"model_architecture": "rfdetr",
                                  "task_type": "instance-segmentation", "backend_type": "onnx"},
            "model_type.json": {"model_type": "rfdetr-seg-nano"}},
           mean=mean, std=std, names=["shapes-3fQz"] + CLASSES)
    make_deeplab()


if __name__ == "__main__":
    import sys
    ONLY = {"deeplab-tiny": make_deeplab}
    if len(sys.argv) > 1:
        for a in sys.argv[1:]:
            ONLY[a]()
    else:
        main()
