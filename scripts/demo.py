#!/usr/bin/python3
"""The pictures of scripts/demo.sh and the score of its results.

  demo.py make DIR TRUTH.json [--images N]   synthetic shapes (with their ground
                                             truth in TRUTH.json) and two photos
  demo.py score TRUTH.json EXPORT_DIR        read the unpacked export, compare

The demo itself talks to the server with vbatch's client commands only
(vbatch batch upload, job start --watch, batch export).  Standard library only.
"""
import argparse, json, math, os, random, shutil, struct, sys, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = "/usr/lib/python3/dist-packages/imageio/resources/images"


def png_bytes(w, h, rgb_rows):
    """Encode rows of RGB bytes as a PNG (no dependency beyond zlib)."""
    raw = b"".join(b"\x00" + r for r in rgb_rows)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def synthetic_scene(rng, size=256):
    """Flat-coloured circles, squares and triangles on a flat background: the
    kind of picture the bundled test detector was trained on.  Returns the
    PNG bytes and the ground truth [(class, [x1, y1, x2, y2])]."""
    bg = [rng.randrange(256) for _ in range(3)]
    px = [bytearray(bytes(bg) * size) for _ in range(size)]
    shapes, placed = [], []
    for _ in range(rng.randint(1, 4) * 4):
        if len(shapes) >= 4:
            break
        s = rng.uniform(28, 80)
        cx, cy = rng.uniform(s * .6 + 2, size - s * .6 - 2), rng.uniform(s * .6 + 2, size - s * .6 - 2)
        if any(math.hypot(cx - a, cy - b) < (s + t) * .62 + 4 for a, b, t in placed):
            continue
        while True:
            col = [rng.randrange(256) for _ in range(3)]
            if sum(abs(a - b) for a, b in zip(col, bg)) > 180:
                break
        kind = rng.randrange(3)
        ang = rng.uniform(0, 2 * math.pi)
        r = s / 2 * 1.15
        vs = [(cx + r * math.sin(ang + k * 2 * math.pi / 3), cy - r * math.cos(ang + k * 2 * math.pi / 3)) for k in range(3)]
        box = [size, size, -1, -1]
        for y in range(int(cy - s), int(cy + s) + 1):
            for x in range(int(cx - s), int(cx + s) + 1):
                if not (0 <= x < size and 0 <= y < size):
                    continue
                fx, fy = x + .5, y + .5
                if kind == 0:
                    inside = (fx - cx) ** 2 + (fy - cy) ** 2 <= (s / 2) ** 2
                elif kind == 1:
                    inside = abs(fx - cx) <= s / 2 and abs(fy - cy) <= s / 2
                else:
                    inside = True
                    for k in range(3):
                        (x1, y1), (x2, y2) = vs[k], vs[(k + 1) % 3]
                        side = (x2 - x1) * (fy - y1) - (y2 - y1) * (fx - x1)
                        cs = (x2 - x1) * (cy - y1) - (y2 - y1) * (cx - x1)
                        inside &= side * cs >= 0
                if inside:
                    px[y][3 * x:3 * x + 3] = bytes(col)
                    box = [min(box[0], x), min(box[1], y), max(box[2], x + 1), max(box[3], y + 1)]
        shapes.append((("circle", "square", "triangle")[kind], box))
        placed.append((cx, cy, s))
    return png_bytes(size, size, [bytes(r) for r in px]), shapes


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def matches(truth, preds):
    """Greedy one-to-one matching of predictions to ground truth."""
    used, n = set(), 0
    for p in sorted(preds, key=lambda p: -p["confidence"]):
        pb = [p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2, p["y"] + p["height"] / 2]
        for i, (cls, tb) in enumerate(truth):
            if i not in used and cls == p["class"] and iou(pb, tb) >= 0.5:
                used.add(i)
                n += 1
                break
    return n



def make(args):
    os.makedirs(args.dir, exist_ok=True)
    for name in ("astronaut.png", "chelsea.png"):
        p = os.path.join(PHOTOS, name)
        if os.path.exists(p):
            shutil.copyfile(p, os.path.join(args.dir, "photo-" + name))
    rng = random.Random(7)
    truth = {}
    for i in range(args.images):
        data, shapes = synthetic_scene(rng)
        name = f"shapes-{i:04d}.png"
        with open(os.path.join(args.dir, name), "wb") as f:
            f.write(data)
        truth[name] = shapes
    with open(args.truth, "w") as f:
        json.dump(truth, f)


def score(args):
    expected = json.load(open(args.truth))
    rows = dets = hits = total = npred = 0
    photo_dets = {}
    for dp, _, fns in os.walk(args.export):
        for fn in fns:
            if not fn.endswith(".jsonl"):
                continue
            for line in open(os.path.join(dp, fn)):
                row = json.loads(line)
                if "predictions" not in row:
                    continue  # errors.jsonl and other parts
                rows += 1
                preds = (row.get("predictions") or {}).get("predictions") or []
                dets += len(preds)
                if str(row.get("image", "")).startswith("photo-"):
                    photo_dets[row["image"]] = len(preds)
                want = expected.get(row.get("image"))
                if want is not None:
                    total += len(want)
                    npred += len(preds)
                    hits += matches(want, preds)
    print(f"results: {rows} rows, {dets} detections")
    if total:
        print(f"synthetic images: {hits}/{total} shapes found with the right class at IoU>=0.5"
              f" (recall {hits / total:.3f}, precision {hits / max(npred, 1):.3f})")
    for name, n in sorted(photo_dets.items()):
        print(f"{name}: {n} detection(s) — a real photo, which the shapes model was never trained on:"
              " its boxes there show only that the job ran, not anything true about the photo")
    print(f"annotated images (boxes labelled with class and confidence): {args.export}/images/<image>/visualization.jpg")
    if not rows:
        sys.exit("demo: the export holds no result rows")


SIGNS = ["EXIT", "Platform 9", "No parking 8-18", "OPEN 24 HOURS", "Gate B12", "Fresh bread",
         "Invoice 2041", "Total: 42.50"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def make_text(args):
    """Pictures of known text (sign-like: coloured plate on a noisy background)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont
    os.makedirs(args.dir, exist_ok=True)
    rng = random.Random(11)
    truth = {}
    for i, text in enumerate(SIGNS):
        font = ImageFont.truetype(FONT, rng.choice([28, 34, 40]))
        tw = int(font.getlength(text))
        w, h = tw + 160, 200
        bg = tuple(rng.randrange(60, 200) for _ in range(3))
        img = Image.effect_noise((w, h), 40).convert("RGB")
        img = Image.blend(img, Image.new("RGB", (w, h), bg), 0.7)
        d = ImageDraw.Draw(img)
        plate = rng.choice([(250, 250, 245), (20, 90, 40), (20, 40, 120)])
        ink = (15, 15, 15) if plate[0] > 128 else (250, 250, 250)
        d.rounded_rectangle((50, 50, 50 + tw + 60, 150), 12, fill=plate)
        d.text((80, 100), text, fill=ink, font=font, anchor="lm")
        img = img.filter(ImageFilter.GaussianBlur(0.6))
        name = f"text-{i:02d}.png"
        img.save(os.path.join(args.dir, name))
        truth[name] = text
    with open(args.truth, "w") as f:
        json.dump(truth, f)


def score_text(args):
    expected = json.load(open(args.truth))
    chars = errs = exact = rows = 0

    def lev(a, b):
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j - 1] + (ca != cb), prev[j] + 1, cur[j - 1] + 1))
            prev = cur
        return prev[-1]
    for dp, _, fns in os.walk(args.export):
        for fn in fns:
            if not fn.endswith(".jsonl"):
                continue
            for line in open(os.path.join(dp, fn)):
                row = json.loads(line)
                want = expected.get(row.get("image"))
                if want is None or "text" not in row:
                    continue
                rows += 1
                got = row["text"] or ""
                e = lev(got.replace(" ", ""), want.replace(" ", ""))
                chars += len(want.replace(" ", ""))
                errs += e
                exact += e == 0
                print(f"{row['image']}: read {got!r} (written: {want!r})")
    if not rows:
        sys.exit("demo: the OCR export holds no result rows")
    print(f"OCR: {exact}/{rows} pictures read without a wrong character (spaces ignored),"
          f" character accuracy {1 - errs / max(chars, 1):.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("truth")
    m.add_argument("--images", type=int, default=120)
    sc = sub.add_parser("score")
    sc.add_argument("truth")
    sc.add_argument("export")
    t = sub.add_parser("make-text")
    t.add_argument("dir")
    t.add_argument("truth")
    st = sub.add_parser("score-text")
    st.add_argument("truth")
    st.add_argument("export")
    args = ap.parse_args()
    {"make": make, "score": score, "make-text": make_text, "score-text": score_text}[args.cmd](args)


if __name__ == "__main__":
    main()
