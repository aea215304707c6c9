#!/usr/bin/python3
"""Build a tiny random-weight replica of a SAM2 ONNX export (encoder +
decoder, the multi-file "sam" family of docs/MODELS.md) into
tests/data/models/sam2-tiny/, plus broken decoders in
tests/data/models/sam2-bad/.

    /usr/bin/python3 scripts/models/make-sam-models.py

Conventions copied (nothing is trained; the numbers are meaningless but
the names, shapes and value conventions are those of the real exports):

| file         | convention (source)                                                 |
|--------------|---------------------------------------------------------------------|
| encoder.onnx | SAM2 image encoder as the public SAM2 ONNX exporters write it       |
|              | (SAM2ImageEncoder of samexporter / ONNX-SAM2-Segment-Anything):     |
|              | input "image" (1, 3, 1024, 1024) float, RGB, /255 then ImageNet     |
|              | mean/std (SAM2Transforms); outputs "high_res_feats_0"               |
|              | (1, 32, 256, 256), "high_res_feats_1" (1, 64, 128, 128),            |
|              | "image_embed" (1, 256, 64, 64)                                      |
| decoder.onnx | SAM2ImageDecoder: inputs "image_embed", "high_res_feats_0",         |
|              | "high_res_feats_1", "point_coords" (N, P, 2) in encoder-input       |
|              | pixels, "point_labels" (N, P) float (1 positive, 0 negative, 2 / 3  |
|              | box corners, -1 padding), "mask_input" (N, 1, 256, 256),            |
|              | "has_mask_input" (N,); outputs "masks" (N, 4, 256, 256) low-res     |
|              | mask logits (token 0 the single-mask output, 1..3 the multimask     |
|              | ones, as sam_mask_decoder's four mask tokens) and                   |
|              | "iou_predictions" (N, 4)                                            |

The replica's decoder makes a logit bump around the prompt's points (a box
prompt: its two corners) plus a little of the image features, so that
masks have both signs and follow the prompts.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'data', 'models')
S = 1024  # encoder input side


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 32, 4, stride=4)
        self.c1 = nn.Conv2d(32, 64, 2, stride=2)
        self.c2 = nn.Conv2d(64, 256, 2, stride=2)

    def forward(self, image):
        h0 = torch.tanh(self.c0(image))
        h1 = torch.tanh(self.c1(h0))
        return h0, h1, torch.tanh(self.c2(h1))


class Decoder(nn.Module):
    def __init__(self, nan=False, k=4):
        super().__init__()
        self.e = nn.Conv2d(256, k, 1)
        self.h0 = nn.Conv2d(32, k, 1)
        self.h1 = nn.Conv2d(64, k, 1)
        self.iou = nn.Linear(2 * k, k)
        self.nan = nan
        self.k = k
        g = (torch.arange(256, dtype=torch.float32) + 0.5) * (S / 256)
        self.register_buffer('g', g)
        self.register_buffer('gain', torch.tensor([1.0, 0.9, 1.1, 1.25][:k]))

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels, mask_input,
                has_mask_input):
        f = (F.interpolate(self.e(image_embed), size=(256, 256), mode='bilinear', align_corners=False)
             + self.h0(high_res_feats_0)
             + F.interpolate(self.h1(high_res_feats_1), size=(256, 256), mode='bilinear', align_corners=False))
        pos = (point_labels > 0.5).float()
        neg = (point_labels.abs() < 0.5).float()
        w = pos.sum(1).clamp(min=1.0)
        c = (point_coords * pos[..., None]).sum(1) / w[:, None]
        d2 = (((point_coords - c[:, None, :]) ** 2).sum(-1) * pos).sum(1) / w
        r = torch.sqrt(d2 + 1.0) + 40.0
        dx = self.g[None, None, :] - c[:, 0, None, None]
        dy = self.g[None, :, None] - c[:, 1, None, None]
        base = (r[:, None, None] - torch.sqrt(dx * dx + dy * dy)) / 12.0
        # negative points push the logits down around them
        for_neg = ((self.g[None, None, None, :] - point_coords[:, :, 0, None, None]) ** 2
                   + (self.g[None, None, :, None] - point_coords[:, :, 1, None, None]) ** 2)
        base = base - (neg[:, :, None, None] * torch.exp(-for_neg / (2 * 30.0 ** 2))).sum(1) * 4.0
        masks = base[:, None] * self.gain[None, :, None, None] + 0.5 * f + \
            0.1 * mask_input * has_mask_input[:, None, None, None]
        if self.nan:
            masks = masks * torch.sqrt(has_mask_input[:, None, None, None] - 1.0)
        stats = torch.cat([masks.mean((2, 3)), masks.std((2, 3))], 1)
        return masks, torch.sigmoid(self.iou(stats))


def export(model, path, args, names_in, names_out, dyn):
    torch.onnx.export(model, args, path, input_names=names_in, output_names=names_out, dynamic_axes=dyn,
                      opset_version=17, do_constant_folding=True)
    print('wrote', path, os.path.getsize(path), 'bytes')


def main():
    torch.manual_seed(13)
    enc, dec = Encoder().eval(), Decoder().eval()
    img = torch.zeros(1, 3, S, S)
    h0, h1, emb = enc(img)
    dec_in = ['image_embed', 'high_res_feats_0', 'high_res_feats_1', 'point_coords', 'point_labels', 'mask_input',
              'has_mask_input']
    dyn = {'point_coords': {0: 'num_labels', 1: 'num_points'}, 'point_labels': {0: 'num_labels', 1: 'num_points'},
           'mask_input': {0: 'num_labels'}, 'has_mask_input': {0: 'num_labels'}, 'masks': {0: 'num_labels'},
           'iou_predictions': {0: 'num_labels'}}
    pts = torch.tensor([[[100.0, 100.0], [300.0, 260.0]]])
    lab = torch.tensor([[2.0, 3.0]])
    dargs = (emb, h0, h1, pts, lab, torch.zeros(1, 1, 256, 256), torch.zeros(1))
    out = os.path.join(ROOT, 'sam2-tiny')
    os.makedirs(out, exist_ok=True)
    export(enc, os.path.join(out, 'encoder.onnx'), (img,), ['image'],
           ['high_res_feats_0', 'high_res_feats_1', 'image_embed'], None)
    export(dec, os.path.join(out, 'decoder.onnx'), dargs, dec_in, ['masks', 'iou_predictions'], dyn)
    bad = os.path.join(ROOT, 'sam2-bad')
    os.makedirs(bad, exist_ok=True)
    torch.manual_seed(13)
    export(Decoder(nan=True).eval(), os.path.join(bad, 'decoder_nan.onnx'), dargs, dec_in,
           ['masks', 'iou_predictions'], dyn)
    torch.manual_seed(13)
    export(Decoder(k=2).eval(), os.path.join(bad, 'decoder_k2.onnx'), dargs, dec_in, ['masks', 'iou_predictions'],
           dyn)


if __name__ == '__main__':
    main()
