#!/usr/bin/env python3
"""Reference CLIP image pre-processing for test_model_clip: what Roboflow's
CLIP path runs (clip.clip._transform(R): torchvision Resize(R) on a PIL image
= PIL bicubic resize of the shorter side to R and the longer to
int(R * long / short), CenterCrop(R) with offsets round((size - R) / 2),
ToTensor, Normalize with CLIP's mean and std), in numpy + PIL.

Usage: clip_pre_ref.py IMAGE R OUT.f32   (OUT: 3*R*R float32, RGB planes)
"""
import sys

import numpy as np
from PIL import Image

MEAN = np.array((0.48145466, 0.4578275, 0.40821073), dtype=np.float32)
STD = np.array((0.26862954, 0.26130258, 0.27577711), dtype=np.float32)


def main():
    img = Image.open(sys.argv[1]).convert("RGB")
    r = int(sys.argv[2])
    w, h = img.size
    if w <= h:
        nw, nh = r, int(r * h / w)
    else:
        nw, nh = int(r * w / h), r
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - r) / 2.0)), int(round((nw - r) / 2.0))
    img = img.crop((left, top, left + r, top + r))
    a = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255)
    a = (a - MEAN) / STD
    a.transpose(2, 0, 1).astype(np.float32).tofile(sys.argv[3])


if __name__ == "__main__":
    main()
