#!/usr/bin/python3
"""Build a tiny random-weight replica of Roboflow's CLIP model package into
tests/data/models/clip-tiny/, and malformed encoders into
tests/data/models/clip-bad/.

    VBATCH_WITH_TORCH=1 scripts/install-deps.sh   # Debian python3-torch, python3-onnx
    /usr/bin/python3 scripts/models/make-clip-models.py

Conventions copied from Roboflow's CLIP path (inference/models/clip/
clip_model.py, the OpenAI CLIP model it exports):
  visual.onnx   one float input (N, 3, 224, 224) (Roboflow reads the
                resolution from its shape[2]), one output (N, D): the image
                embedding, not normalised; dynamic batch
  textual.onnx  one int32 input (N, 77) of clip.tokenize ids (Roboflow casts
                them to int32), one output (N, D): the text embedding taken
                at the position of the highest id (<|endoftext|>, argmax as
                OpenAI CLIP's encode_text), projected; dynamic batch
  merges.txt    the BPE merges file ("#version: 0.2" then "a b" lines)
The real encoders are ViTs of 88-300 MB; here a patch convolution + MLP and
a one-layer token MLP whose <|endoftext|> feature gets the
mean of the tokens' (D = 32).  The real merges (48894 of them, vocabulary
49408) would make the token embedding 6 MB, so the replica has 400 merges
learnt here from a small word list (vocabulary 914) — the tokenizer itself
is tested on the real merges (scripts/fetch-clip.sh).  Input/output names:
"input" / "output" (Roboflow uses get_inputs()[0] and output [0]).

test/picture.png (300x200, so that the shorter-side resize and the centre
crop both work) and test/torch.json: PyTorch's embeddings of it (PIL bicubic
resize + centre crop + CLIP normalisation, as clip.clip._transform) and of a
few texts (ids from tests/unit/clip_bpe_ref.py), for tests/unit/test_model_clip.c.

clip-bad/: visual-2out.onnx (two outputs), visual-rank3.onnx (output
(N, 4, D)), textual-nan.onnx (NaN embedding), textual-dim16.onnx
(D = 16, not the image encoder's 32).
"""
import collections
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
import clip_bpe_ref  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data", "models", "clip-tiny")
BAD = os.path.join(ROOT, "tests", "data", "models", "clip-bad")
D = 32
R = 224
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
WORDS = """a photo of the cat dog car person bicycle truck bird horse sheep cow
elephant bear zebra giraffe red green blue yellow black white orange street road
tree house sky picture image animal vehicle people man woman child playing running
standing sitting small big large tiny there is an on in with and""".split()
TEXTS = ["a photo of a cat", "a photo of a dog", "a red car on the road",
         "people playing in the street", "zebra"]


def learn_merges(n):
    enc = clip_bpe_ref.bytes_to_unicode()
    words = collections.Counter()
    for w in WORDS:
        s = [enc[b] for b in w.encode()]
        s[-1] += "</w>"
        words[tuple(s)] += 1
    merges = []
    while len(merges) < n:
        pairs = collections.Counter()
        for w, c in words.items():
            for i in range(len(w) - 1):
                pairs[(w[i], w[i + 1])] += c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        nw = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] += c
        words = nw
    # pad with merges of single byte characters (never used by the word list)
    chars = list(enc.values())
    k = 0
    while len(merges) < n:
        p = (chars[k % 188], chars[(k // 188 + 5) % 188])
        if p not in merges:
            merges.append(p)
        k += 1
    return merges


class Visual(torch.nn.Module):
    def __init__(self, d=D, outs=1, rank3=False):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, 8, kernel_size=32, stride=32)
        self.fc = torch.nn.Linear(8 * 7 * 7, 64)
        self.proj = torch.nn.Linear(64, d)
        self.outs, self.rank3 = outs, rank3

    def forward(self, x):
        h = self.patch(x).flatten(1)
        e = self.proj(torch.nn.functional.gelu(self.fc(h)))
        if self.rank3:
            return e.unsqueeze(1).repeat(1, 4, 1)
        if self.outs == 2:
            return e, e * 2
        return e


class Textual(torch.nn.Module):
    def __init__(self, vocab, d=D, nan=False):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, 32)
        self.pos = torch.nn.Parameter(torch.randn(77, 32) * 0.1)
        self.ln = torch.nn.LayerNorm(32)
        self.fc = torch.nn.Linear(32, 32)
        self.proj = torch.nn.Linear(32, d, bias=False)
        self.nan = nan

    def forward(self, ids):
        ids = ids.long()
        x = self.tok(ids) + self.pos
        x = x + torch.tanh(self.fc(self.ln(x)))
        # the real encoder's attention mixes the tokens: here the mean of
        # the non-padding positions is added to the <|endoftext|> one
        mask = (ids > 0).float().unsqueeze(-1)
        mean = (x * mask).sum(1) / mask.sum(1)
        x = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] + mean
        e = self.proj(self.ln(x))
        if self.nan:
            e = e * torch.sqrt(torch.tensor(-1.0))
        return e


def export(model, x, path, in_name):
    torch.onnx.export(model, x, path, opset_version=17, input_names=[in_name],
                      output_names=["output"] if not getattr(model, "outs", 1) == 2
                      else ["output", "output2"],
                      dynamic_axes={in_name: {0: "batch"}}, do_constant_folding=True)


def preprocess(img):
    w, h = img.size
    if w <= h:
        nw, nh = R, int(R * h / w)
    else:
        nw, nh = int(R * w / h), R
    img = img.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - R) / 2.0)), int(round((nw - R) / 2.0))
    img = img.crop((left, top, left + R, top + R))
    a = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255
    return ((a - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))[None]


def main():
    torch.manual_seed(7)
    os.makedirs(os.path.join(OUT, "test"), exist_ok=True)
    os.makedirs(BAD, exist_ok=True)
    merges = learn_merges(400)
    mpath = os.path.join(OUT, "merges.txt")
    with open(mpath, "w", encoding="utf-8") as f:
        # no newline after the last merge: simple_tokenizer would take the
        # empty line after it as a merge of nothing (the real file is cut
        # before its end)
        f.write("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges))
    tok = clip_bpe_ref.Tokenizer(mpath)
    vocab = len(tok.encoder)
    vis, txt = Visual().eval(), Textual(vocab).eval()
    export(vis, torch.zeros(1, 3, R, R), os.path.join(OUT, "visual.onnx"), "input")
    ids0 = torch.zeros(1, 77, dtype=torch.int32)
    export(txt, ids0, os.path.join(OUT, "textual.onnx"), "input")
    with open(os.path.join(OUT, "model.json"), "w") as f:
        json.dump({"family": "clip", "model_id": "clip/ViT-B-16", "aliases": ["clip/ViT-B-32"]},
                  f, indent=1)
    # test picture: smooth gradients + a few shapes, 300x200
    yy, xx = np.mgrid[0:200, 0:300]
    pic = np.stack([(xx * 255 // 299), (yy * 255 // 199), ((xx + yy) * 3) % 256], -1)
    pic[60:120, 100:180] = (250, 30, 40)
    pic[20:50, 220:290] = (20, 200, 60)
    img = Image.fromarray(pic.astype(np.uint8), "RGB")
    img.save(os.path.join(OUT, "test", "picture.png"))
    with torch.no_grad():
        iemb = vis(preprocess(img))[0].tolist()
        ids = []
        for t in TEXTS:
            e = [tok.encoder["<|startoftext|>"]] + tok.encode(t) + [tok.encoder["<|endoftext|>"]]
            ids.append(e + [0] * (77 - len(e)))
        temb = txt(torch.tensor(ids, dtype=torch.int32)).tolist()
    with open(os.path.join(OUT, "test", "torch.json"), "w") as f:
        json.dump({"image_embedding": iemb, "texts": TEXTS, "text_ids": ids,
                   "text_embeddings": temb}, f)
    # malformed encoders
    export(Visual(outs=2).eval(), torch.zeros(1, 3, R, R), os.path.join(BAD, "visual-2out.onnx"),
           "input")
    export(Visual(rank3=True).eval(), torch.zeros(1, 3, R, R),
           os.path.join(BAD, "visual-rank3.onnx"), "input")
    export(Textual(vocab, nan=True).eval(), ids0, os.path.join(BAD, "textual-nan.onnx"), "input")
    export(Textual(vocab, d=16).eval(), ids0, os.path.join(BAD, "textual-dim16.onnx"), "input")
    print("vocabulary", vocab, "written", OUT, BAD)


if __name__ == "__main__":
    main()
