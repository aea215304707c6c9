#!/usr/bin/python3
"""Train vbatch's small test models on synthetic images and export them.

Run with the system interpreter (it has torch 1.13, onnx and numpy):

    /usr/bin/python3 scripts/train-models.py [--only det,seg,cls,mlc,kpt] [--steps N]

Every image is drawn here from a seeded random generator, so the ground truth
is known exactly: flat-coloured circles, squares and (rotated) triangles on a
flat background.  Five tiny models are trained on 2 CPU threads (a few
minutes in all) and exported with opset 17 into tests/data/models/<name>/ in
the Roboflow artefact layout:

  weights.onnx       the network (float32 NCHW input, values already /255)
  class_names.txt    one class per line
  environment.json   PREPROCESSING (a JSON string, as Roboflow ships it),
                     CLASS_MAP, MULTICLASS, plus vbatch's TASK key
  test/              held-out images (PNG) never seen in training,
                     gt.json (ground truth in original-image pixels) and
                     torch.json (the PyTorch model's raw outputs on the
                     native-size images, for the 1e-4 comparison)

Models
  synth-det  detector, YOLOv8-style head output (N, 4+nc, A): rows are
             cx, cy, w, h in input pixels then per-class sigmoid scores,
             A = 16*16 anchors at stride 8 on a 128x128 input; dynamic batch.
  synth-seg  the same plus 32 mask coefficients per anchor and a second
             output protos (1, 32, 32, 32) (YOLOv8-seg layout).
  synth-cls  single-label classifier 64x64 -> logits (1, 3): the colour
             family (red / green / blue) of the one shape in the picture;
             inputs are normalised (x/255 - 0.5)/0.5 as Roboflow does for
             classifiers.
  synth-mlc  multi-label classifier 64x64 -> sigmoid scores (1, 3): which
             colour families are present.
  synth-kpt  keypoint detector (YOLOv8-pose layout) (1, 4+1+3*3, A): boxes
             of triangles with their 3 vertices (x, y, sigmoid visibility).

Recipe: Adam, cosine learning rate, BCE on class scores, L1 + GIoU on boxes
of positive anchors (anchors within 1.5 cells of an object's centre), BCE on
masks cropped to the box, L1 on keypoints.  Deterministic given the seed.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "tests", "data", "models")
CLASSES = ["circle", "square", "triangle"]
DET = 128          # detector / segmenter / keypoint input size
CLS = 64           # classifier input size
STRIDE = 8
NM = 32            # mask coefficients

torch.set_num_threads(2)


# ---------------------------------------------------------------- drawing --
def rand_colour(rng, bg):
    while True:
        c = rng.integers(0, 256, 3)
        if np.abs(c.astype(int) - bg.astype(int)).sum() > 180:
            return c.astype(np.uint8)


def shape_mask(kind, cx, cy, s, ang, h, w, scale=1.0):
    """Boolean mask of one shape on an h x w canvas.  cx, cy, s in canvas
    pixels already multiplied by scale; returns (mask, vertices or None)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    if kind == 0:
        m = (xx - cx) ** 2 + (yy - cy) ** 2 <= (s / 2) ** 2
        return m, None
    if kind == 1:
        m = (np.abs(xx - cx) <= s / 2) & (np.abs(yy - cy) <= s / 2)
        return m, None
    # triangle: equilateral-ish, circumradius s/2*1.15, rotated by ang
    r = s / 2 * 1.15
    vs = [(cx + r * math.sin(ang + k * 2 * math.pi / 3),
           cy - r * math.cos(ang + k * 2 * math.pi / 3)) for k in range(3)]
    m = np.ones((h, w), bool)
    for k in range(3):
        (x1, y1), (x2, y2) = vs[k], vs[(k + 1) % 3]
        # inside = same side as the centroid
        side = (x2 - x1) * (yy - y1) - (y2 - y1) * (xx - x1)
        cs = (x2 - x1) * (cy - y1) - (y2 - y1) * (cx - x1)
        m &= side * np.sign(cs) >= 0
    return m, vs


def kpt_order(vs):
    """Canonical keypoint order: topmost vertex first, then left, right."""
    vs = sorted(vs, key=lambda p: (p[1], p[0]))
    top, rest = vs[0], sorted(vs[1:], key=lambda p: p[0])
    return [top] + rest


def make_scene(rng, size, out_scale, kinds=(0, 1, 2), nobj=(1, 4), smin=14, smax=40):
    """Draw one scene at size*out_scale pixels.  Objects are described at
    'size' resolution and scaled, so out_scale=2 renders a sharper picture of
    the same scene (used to test resizing).  Returns image HWC BGR uint8 and
    a list of objects with boxes in output pixels."""
    H = W = int(size * out_scale)
    bg = rng.integers(0, 256, 3).astype(np.uint8)
    img = np.empty((H, W, 3), np.uint8)
    img[:] = bg
    objs, placed = [], []
    n = int(rng.integers(nobj[0], nobj[1] + 1))
    tries = 0
    while len(objs) < n and tries < 100:
        tries += 1
        kind = int(rng.choice(kinds))
        s = float(rng.uniform(smin, smax))
        cx = float(rng.uniform(s * 0.6 + 1, size - s * 0.6 - 1))
        cy = float(rng.uniform(s * 0.6 + 1, size - s * 0.6 - 1))
        if any(math.hypot(cx - px, cy - py) < (s + ps) * 0.62 + 2 for px, py, ps in placed):
            continue
        ang = float(rng.uniform(0, 2 * math.pi))
        m, vs = shape_mask(kind, cx * out_scale, cy * out_scale, s * out_scale, ang, H, W)
        if m.sum() < 20:
            continue
        img[m] = rand_colour(rng, bg)
        ys, xs = np.nonzero(m)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        o = {"class_id": kind, "class": CLASSES[kind], "box": box, "mask": m}
        if vs is not None:
            o["keypoints"] = [[float(x), float(y)] for x, y in kpt_order(vs)]
        objs.append(o)
        placed.append((cx, cy, s))
    return img, objs


def pool2(img):
    """2x2 average of an image (what a bilinear 2x downscale computes)."""
    x = img.astype(np.float32)
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4


def to_tensor(imgs):
    """List of HWC BGR uint8/float images -> NCHW RGB float /255."""
    a = np.stack([np.asarray(i, np.float32)[:, :, ::-1] for i in imgs]) / 255.0
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


# ---------------------------------------------------------------- models --
def conv(ci, co, k=3, s=1):
    return nn.Sequential(nn.Conv2d(ci, co, k, s, k // 2, bias=False), nn.BatchNorm2d(co), nn.SiLU())


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.s2 = conv(3, 16, 3, 2)
        self.s4 = nn.Sequential(conv(16, 32, 3, 2), conv(32, 32))
        self.s8 = nn.Sequential(conv(32, 64, 3, 2), conv(64, 64), conv(64, 64))

    def forward(self, x):
        p4 = self.s4(self.s2(x))
        return p4, self.s8(p4)


def anchors(size):
    g = size // STRIDE
    ys, xs = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], 1).float() * STRIDE + STRIDE / 2  # (A, 2)


class Detector(nn.Module):
    """YOLOv8-style head: per anchor ltrb distances and class scores,
    decoded in the graph to (N, 4+nc[+extra], A)."""

    def __init__(self, nc, nm=0, nk=0):
        super().__init__()
        self.nc, self.nm, self.nk = nc, nm, nk
        self.bb = Backbone()
        self.head = conv(64, 64)
        self.box = nn.Conv2d(64, 4, 1)
        self.cls = nn.Conv2d(64, nc, 1)
        if nm:
            self.coef = nn.Conv2d(64, nm, 1)
            self.proto = nn.Sequential(conv(32, 32), nn.Conv2d(32, nm, 1))
        if nk:
            self.kpt = nn.Conv2d(64, nk * 3, 1)
        self.register_buffer("anc", anchors(DET).t().unsqueeze(0))  # (1, 2, A)
        with torch.no_grad():
            self.cls.bias.fill_(-4.0)

    def raw(self, x):
        p4, p8 = self.bb(x)
        p8 = self.head(p8)
        n = x.shape[0]
        ltrb = F.softplus(self.box(p8).flatten(2)) * STRIDE       # (N, 4, A)
        cls = self.cls(p8).flatten(2)                               # logits
        out = {"ltrb": ltrb, "cls": cls}
        if self.nm:
            out["coef"] = self.coef(p8).flatten(2)
            out["proto"] = self.proto(p4)
        if self.nk:
            out["kpt"] = self.kpt(p8).flatten(2).view(n, self.nk, 3, -1)
        return out

    def forward(self, x):
        r = self.raw(x)
        a = self.anc
        l, t, rr, b = r["ltrb"][:, 0:1], r["ltrb"][:, 1:2], r["ltrb"][:, 2:3], r["ltrb"][:, 3:4]
        x1, y1, x2, y2 = a[:, 0:1] - l, a[:, 1:2] - t, a[:, 0:1] + rr, a[:, 1:2] + b
        parts = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, torch.sigmoid(r["cls"])]
        if self.nm:
            parts.append(r["coef"])
        if self.nk:
            k = r["kpt"]
            kx = a[:, 0:1].unsqueeze(1) + k[:, :, 0:1] * 2 * STRIDE
            ky = a[:, 1:2].unsqueeze(1) + k[:, :, 1:2] * 2 * STRIDE
            kc = torch.sigmoid(k[:, :, 2:3])
            parts.append(torch.cat([kx, ky, kc], 2).flatten(1, 2))
        y = torch.cat(parts, 1)
        if self.nm:
            return y, r["proto"]
        return y


class Classifier(nn.Module):
    def __init__(self, nc, sigmoid):
        super().__init__()
        self.sigmoid = sigmoid
        self.f = nn.Sequential(conv(3, 16, 3, 2), conv(16, 32, 3, 2), conv(32, 64, 3, 2), conv(64, 64))
        self.fc = nn.Linear(64, nc)

    def forward(self, x):
        y = self.fc(self.f(x).mean((2, 3)))
        return torch.sigmoid(y) if self.sigmoid else y


# -------------------------------------------------------------- training --
def giou(a, b):
    ix1, iy1 = torch.max(a[:, 0], b[:, 0]), torch.max(a[:, 1], b[:, 1])
    ix2, iy2 = torch.min(a[:, 2], b[:, 2]), torch.min(a[:, 3], b[:, 3])
    inter = (ix2 - ix1).clamp(0) * (iy2 - iy1).clamp(0)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = aa + ab - inter + 1e-6
    cx1, cy1 = torch.min(a[:, 0], b[:, 0]), torch.min(a[:, 1], b[:, 1])
    cx2, cy2 = torch.max(a[:, 2], b[:, 2]), torch.max(a[:, 3], b[:, 3])
    c = (cx2 - cx1) * (cy2 - cy1) + 1e-6
    iou = inter / union
    return iou - (c - union) / c


def assign(objs_batch, A_xy):
    """Positive anchors: within 1.5 strides of an object's centre and inside
    its box.  Smaller objects win ties.  Returns per image a LongTensor of
    object index per anchor (-1 = background)."""
    out = []
    for objs in objs_batch:
        idx = torch.full((A_xy.shape[0],), -1, dtype=torch.long)
        order = sorted(range(len(objs)), key=lambda i: -(objs[i]["box"][2] - objs[i]["box"][0]) * (objs[i]["box"][3] - objs[i]["box"][1]))
        for i in order:
            x1, y1, x2, y2 = objs[i]["box"]
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            d = torch.max((A_xy[:, 0] - cx).abs(), (A_xy[:, 1] - cy).abs())
            inside = (A_xy[:, 0] > x1) & (A_xy[:, 0] < x2) & (A_xy[:, 1] > y1) & (A_xy[:, 1] < y2)
            pos = (d <= 1.5 * STRIDE) & inside
            if not pos.any():
                pos = d == d.min()
            idx[pos] = i
        out.append(idx)
    return torch.stack(out)


def det_batch(rng, bs, kinds=(0, 1, 2), nobj=(1, 4)):
    imgs, objs = [], []
    for _ in range(bs):
        if rng.random() < 0.5:
            im, ob = make_scene(rng, DET, 2, kinds, nobj)
            im = pool2(im)
            for o in ob:
                o["box"] = [v / 2 for v in o["box"]]
                m = o["mask"].astype(np.float32)
                o["mask"] = (m[0::2, 0::2] + m[1::2, 0::2] + m[0::2, 1::2] + m[1::2, 1::2]) >= 2
                if "keypoints" in o:
                    o["keypoints"] = [[x / 2, y / 2] for x, y in o["keypoints"]]
        else:
            im, ob = make_scene(rng, DET, 1, kinds, nobj)
        if rng.random() < 0.5:  # horizontal flip
            im = im[:, ::-1]
            for o in ob:
                x1, y1, x2, y2 = o["box"]
                o["box"] = [DET - x2, y1, DET - x1, y2]
                o["mask"] = o["mask"][:, ::-1]
                if "keypoints" in o:
                    o["keypoints"] = kpt_order([(DET - x, y) for x, y in o["keypoints"]])
        imgs.append(im)
        objs.append(ob)
    return to_tensor(imgs), objs


def train_det(name, nc, kinds, nm=0, nk=0, steps=1200, seed=1):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = Detector(nc, nm, nk)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    A_xy = anchors(DET)
    t0 = time.time()
    for step in range(steps):
        x, objs = det_batch(rng, 24, kinds)
        if nk:  # keypoint model: only triangles are objects, others distract
            objs = [[o for o in ob if o["class_id"] == 2] for ob in objs]
        r = model.raw(x)
        idx = assign(objs, A_xy)                       # (N, A)
        pos = idx >= 0
        tcls = torch.zeros_like(r["cls"])
        boxes_p, boxes_t, loss_m, loss_k = [], [], 0.0, 0.0
        npos = max(int(pos.sum()), 1)
        for b, ob in enumerate(objs):
            pa = torch.nonzero(pos[b]).flatten()
            if len(pa) == 0:
                continue
            oi = idx[b, pa]
            cid = torch.tensor([0 if nk else ob[i]["class_id"] for i in oi.tolist()])
            tcls[b, cid, pa] = 1.0
            ltrb = r["ltrb"][b][:, pa].t()
            axy = A_xy[pa]
            pb = torch.stack([axy[:, 0] - ltrb[:, 0], axy[:, 1] - ltrb[:, 1], axy[:, 0] + ltrb[:, 2], axy[:, 1] + ltrb[:, 3]], 1)
            tb = torch.tensor([ob[i]["box"] for i in oi.tolist()])
            boxes_p.append(pb)
            boxes_t.append(tb)
            if nm:
                g = DET // 4
                proto = r["proto"][b]                                  # (nm, g, g)
                ml = torch.einsum("ka,khw->ahw", r["coef"][b][:, pa], proto)
                tm = torch.stack([torch.from_numpy(ob[i]["mask"].reshape(g, 4, g, 4).mean((1, 3)).astype(np.float32)) for i in oi.tolist()])
                yy, xx = torch.meshgrid(torch.arange(g) * 4 + 2.0, torch.arange(g) * 4 + 2.0, indexing="ij")
                crop = ((xx[None] >= tb[:, 0, None, None]) & (xx[None] < tb[:, 2, None, None]) &
                        (yy[None] >= tb[:, 1, None, None]) & (yy[None] < tb[:, 3, None, None])).float()
                bce = F.binary_cross_entropy_with_logits(ml, tm, reduction="none")
                loss_m = loss_m + ((bce * crop).sum((1, 2)) / crop.sum((1, 2)).clamp(1)).sum()
            if nk:
                k = r["kpt"][b][:, :, pa]                            # (nk, 3, P)
                kx = axy[:, 0][None] + k[:, 0] * 2 * STRIDE
                ky = axy[:, 1][None] + k[:, 1] * 2 * STRIDE
                tk = torch.tensor([ob[i]["keypoints"] for i in oi.tolist()]).permute(1, 2, 0)  # (nk, 2, P)
                sz = (tb[:, 2] - tb[:, 0]).clamp(4)[None]
                loss_k = loss_k + (((kx - tk[:, 0]).abs() + (ky - tk[:, 1]).abs()) / sz).sum() * 2
                loss_k = loss_k + F.binary_cross_entropy_with_logits(k[:, 2], torch.ones_like(k[:, 2]), reduction="sum") * 0.1
        loss_c = F.binary_cross_entropy_with_logits(r["cls"], tcls, reduction="sum") / npos
        loss_b = torch.tensor(0.0)
        if boxes_p:
            pb, tb = torch.cat(boxes_p), torch.cat(boxes_t)
            loss_b = ((1 - giou(pb, tb)).sum() * 2 + (pb - tb).abs().sum() / STRIDE * 0.5) / npos
        loss = loss_c + loss_b + loss_m / npos + loss_k / npos
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"{name} step {step} loss {loss.item():.4f} cls {loss_c.item():.4f} box {loss_b.item():.4f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    return model


def train_cls(name, multi, steps=600, seed=2):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = Classifier(3, multi)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    for step in range(steps):
        x, y = cls_batch(rng, 32, multi)
        out = model((x - 0.5) / 0.5)
        if multi:
            loss = F.binary_cross_entropy(out.clamp(1e-6, 1 - 1e-6), y)
        else:
            loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"{name} step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    return model


COLOURS = ["red", "green", "blue"]


def cls_scene(rng, multi):
    """Classifier scenes: shapes of any kind on a grey background; the
    label is the colour family of the object(s) (red / green / blue), so a
    swapped channel order shows up as a wrong answer.  Single-label: one
    object; multi-label: any subset of the three colours, one object each."""
    labels = [k for k in range(3) if rng.random() < 0.5] if multi else [int(rng.integers(0, 3))]
    g = int(rng.integers(0, 256))
    img = np.full((CLS, CLS, 3), g, np.uint8)
    placed = []
    for lab in labels:
        for _ in range(50):
            s = float(rng.uniform(12, 24) if multi else rng.uniform(16, 40))
            cx, cy = rng.uniform(s * 0.6 + 1, CLS - s * 0.6 - 1, 2)
            if all(math.hypot(cx - px, cy - py) > (s + ps) * 0.62 + 2 for px, py, ps in placed):
                break
        placed.append((cx, cy, s))
        m, _ = shape_mask(int(rng.integers(0, 3)), cx, cy, s, float(rng.uniform(0, 6.3)), CLS, CLS)
        rgb = rng.integers(0, 80, 3)
        rgb[lab] = rng.integers(170, 256)
        img[m] = rgb[::-1].astype(np.uint8)  # stored BGR
    return img, labels


def cls_batch(rng, bs, multi):
    imgs, ys = [], []
    for _ in range(bs):
        im, labels = cls_scene(rng, multi)
        imgs.append(im)
        if multi:
            v = np.zeros(3, np.float32)
            v[labels] = 1
            ys.append(v)
        else:
            ys.append(labels[0])
    y = torch.tensor(np.stack(ys)) if multi else torch.tensor(ys)
    return to_tensor(imgs), y


# ---------------------------------------------------------------- export --
def write_png(path, img_bgr):
    import imageio as iio
    iio.imwrite(path, np.ascontiguousarray(img_bgr[:, :, ::-1]))


def flat(t, step=1):
    return [float(f"{v:.7g}") for v in t.detach().numpy().astype(np.float64).flatten()[::step]]


def export(name, model, size, outputs, dynamic_batch, env, task, names=CLASSES):
    d = os.path.join(OUT, name)
    os.makedirs(os.path.join(d, "test"), exist_ok=True)
    x = torch.zeros(1, 3, size, size)
    dyn = {"images": {0: "batch"}} if dynamic_batch else None
    if dyn:
        for o in outputs:
            dyn[o] = {0: "batch"}
    torch.onnx.export(model, x, os.path.join(d, "weights.onnx"), opset_version=17,
                      input_names=["images"], output_names=outputs, dynamic_axes=dyn,
                      do_constant_folding=True)
    with open(os.path.join(d, "class_names.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    pre = {"auto-orient": {"enabled": False},
           "resize": {"enabled": True, "format": "Stretch to", "width": size, "height": size}}
    e = {"PREPROCESSING": json.dumps(pre), "CLASS_MAP": {str(i): n for i, n in enumerate(names)},
         "MULTICLASS": task == "multi-label-classification", "TASK": task}
    e.update(env)
    with open(os.path.join(d, "environment.json"), "w") as f:
        json.dump(e, f, indent=1)
    return d


def det_testset(d, model, name, seed, kinds, nk=0, nm=0):
    """Held-out images: 24 at 256x256 (downscaled 2x by vbatch) for
    accuracy, 2 at 128x128 with PyTorch's raw outputs for the exact check."""
    rng = np.random.default_rng(seed)
    gt = {"images": []}
    torch_out = {}
    for i in range(26):
        native = i >= 24
        im, ob = make_scene(rng, DET, 1 if native else 2, kinds, (1, 4))
        if nk:
            ob = [o for o in ob if o["class_id"] == 2]
        fn = f"img_{i:02d}.png"
        write_png(os.path.join(d, "test", fn), im)
        objs = []
        for o in ob:
            oo = {"class": "triangle" if nk else o["class"], "class_id": 0 if nk else o["class_id"], "box": o["box"]}
            if "keypoints" in o and nk:
                oo["keypoints"] = o["keypoints"]
            if nm:
                oo["area"] = int(o["mask"].sum())
            objs.append(oo)
        gt["images"].append({"file": fn, "width": im.shape[1], "height": im.shape[0], "objects": objs})
        if native:
            with torch.no_grad():
                y = model(to_tensor([im]))
            if nm:
                torch_out[fn] = {"output0": {"shape": list(y[0].shape), "data": flat(y[0])},
                                 "protos": {"shape": list(y[1].shape), "step": 7, "data": flat(y[1], 7)}}
            else:
                torch_out[fn] = {"output0": {"shape": list(y.shape), "data": flat(y)}}
    with open(os.path.join(d, "test", "gt.json"), "w") as f:
        json.dump(gt, f)
    with open(os.path.join(d, "test", "torch.json"), "w") as f:
        json.dump(torch_out, f)


def cls_testset(d, model, multi, seed):
    rng = np.random.default_rng(seed)
    gt = {"images": []}
    torch_out = {}
    for i in range(30):
        im, labels = cls_scene(rng, multi)
        fn = f"img_{i:02d}.png"
        write_png(os.path.join(d, "test", fn), im)
        gt["images"].append({"file": fn, "width": CLS, "height": CLS, "labels": [COLOURS[k] for k in labels]})
        if i < 4:
            with torch.no_grad():
                y = model((to_tensor([im]) - 0.5) / 0.5)
            torch_out[fn] = {"output0": {"shape": list(y.shape), "data": flat(y)}}
    with open(os.path.join(d, "test", "gt.json"), "w") as f:
        json.dump(gt, f)
    with open(os.path.join(d, "test", "torch.json"), "w") as f:
        json.dump(torch_out, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="det,seg,cls,mlc,kpt")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply training steps")
    args = ap.parse_args()
    only = set(args.only.split(","))
    s = args.scale
    if "det" in only:
        m = train_det("synth-det", 3, (0, 1, 2), steps=int(1500 * s), seed=11)
        d = export("synth-det", m, DET, ["output0"], True, {}, "object-detection")
        det_testset(d, m, "synth-det", 1011, (0, 1, 2))
    if "seg" in only:
        m = train_det("synth-seg", 3, (0, 1, 2), nm=NM, steps=int(1500 * s), seed=12)
        d = export("synth-seg", m, DET, ["output0", "output1"], False, {}, "instance-segmentation")
        det_testset(d, m, "synth-seg", 1012, (0, 1, 2), nm=NM)
    if "kpt" in only:
        m = train_det("synth-kpt", 1, (0, 1, 2), nk=3, steps=int(1500 * s), seed=13)
        d = export("synth-kpt", m, DET, ["output0"], False, {"KEYPOINT_NAMES": ["top", "left", "right"]},
                   "keypoint-detection", names=["triangle"])
        det_testset(d, m, "synth-kpt", 1013, (0, 1, 2), nk=3)
    if "cls" in only:
        m = train_cls("synth-cls", False, steps=int(600 * s), seed=14)
        d = export("synth-cls", m, CLS, ["output0"], False, {}, "classification", names=COLOURS)
        cls_testset(d, m, False, 1014)
    if "mlc" in only:
        m = train_cls("synth-mlc", True, steps=int(600 * s), seed=15)
        d = export("synth-mlc", m, CLS, ["output0"], False, {}, "multi-label-classification", names=COLOURS)
        cls_testset(d, m, True, 1015)


if __name__ == "__main__":
    main()
