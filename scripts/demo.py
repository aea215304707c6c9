#!/usr/bin/python3
"""vbatch demo client: stage sample images, run a workflow job, fetch results.

Talks to vbatch only through its HTTP API, the way Roboflow's own clients do:
bulk tar shards PUT to signed URLs, POST job, poll job/stages/tasks, list the
export batch and download its parts.  Uses the standard library only.
"""
import argparse, io, json, math, os, random, shutil, signal, socket, struct
import subprocess, sys, tarfile, time, urllib.error, urllib.parse, urllib.request, zlib

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


class Api:
    def __init__(self, base, key):
        self.base, self.key = base, key

    def call(self, method, path, body=None, query=None, ctype="application/json"):
        q = dict(query or {}, api_key=self.key)
        url = self.base + path + "?" + urllib.parse.urlencode(q)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            sys.exit(f"demo: {method} {path} failed: {e.code} {e.read().decode(errors='replace')}")


def put(url, data, headers):
    req = urllib.request.Request(url, data=data, method="PUT", headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=120, help="synthetic images to stage (plus the photos)")
    ap.add_argument("--data", default=os.path.join(ROOT, "var", "demo"), help="data folder (recreated)")
    ap.add_argument("--format", default="jsonl", choices=["jsonl", "csv"])
    ap.add_argument("--keep-running", action="store_true", help="leave the server running at the end")
    args = ap.parse_args()

    binary = os.environ.get("VBATCH_BIN", os.path.join(ROOT, "build", "vbatch"))
    shutil.rmtree(args.data, ignore_errors=True)
    os.makedirs(args.data)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(args.data, "server.log"), "w")
    srv = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data", args.data,
                            "--models-dir", os.path.join(ROOT, "tests", "data", "models"),
                            "--workflows-dir", os.path.join(ROOT, "examples", "workflows"), "--quiet"],
                           stdout=subprocess.PIPE, stderr=log, text=True)
    key = ws = None
    try:
        for line in srv.stdout:
            if line.startswith("workspace:"):
                ws = line.split(":", 1)[1].strip()
            if line.startswith("api_key:"):
                key = line.split(":", 1)[1].strip()
                break
        if not key:
            sys.exit(f"demo: server did not start, see {args.data}/server.log")
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        print(f"vbatch serving {base} (data {args.data}), workspace '{ws}'")
        print("model: 'synth-det', a small detector the tests train on synthetic pictures; it knows only"
              " circles, squares and triangles on flat backgrounds (tests/data/models/synth-det)")
        api = Api(base, key)

        # ---- stage: photos + synthetic shapes, as tar shards of up to 256 images
        rng = random.Random(7)
        files = []
        for name in ("astronaut.png", "chelsea.png"):
            p = os.path.join(PHOTOS, name)
            if os.path.exists(p):
                files.append(("photo-" + name, open(p, "rb").read()))
        expected = {}
        for i in range(args.images):
            data, shapes = synthetic_scene(rng)
            name = f"shapes-{i:04d}.png"
            files.append((name, data))
            expected[name] = shapes
        batch = "demo-input"
        ds = f"/data-staging/v1/external/{ws}/batches/{batch}"
        for start in range(0, len(files), 256):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for name, data in files[start:start + 256]:
                    ti = tarfile.TarInfo(name)
                    ti.size = len(data)
                    tar.addfile(ti, io.BytesIO(data))
            r = api.call("POST", ds + "/bulk-upload/image-files", query={"displayName": "demo input"})
            d = r["signedURLDetails"]
            put(d["uploadURL"], buf.getvalue(), d.get("extensionHeaders"))
        t0 = time.time()
        while True:
            n = api.call("GET", ds + "/count")["count"]
            print(f"\rstaged {n}/{len(files)} images", end="", flush=True)
            if n >= len(files) or time.time() - t0 > 120:
                break
            time.sleep(0.3)
        print()

        # ---- run the job
        job = "job-demo" + "".join(random.SystemRandom().choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
        bp = f"/batch-processing/v1/external/{ws}/jobs"
        api.call("POST", f"{bp}/{job}", {
            "type": "simple-image-processing-v1",
            "jobInput": {"type": "staging-batch-input-v1", "batchId": batch},
            "computeConfiguration": {"type": "compute-configuration-v2", "machineType": "cpu", "workersPerMachine": 2},
            "processingSpecification": {"type": "workflows-processing-specification-v1", "workspace": ws,
                                        "workflowId": "detect-shapes", "persistImagesOutputs": True,
                                        "aggregationFormat": args.format},
        }, query={"name": "vbatch demo"})
        print(f"job {job} started")
        while True:
            meta = api.call("GET", f"{bp}/{job}")["job"]
            stages = api.call("GET", f"{bp}/{job}/stages")["stages"]
            parts = []
            for st in stages:
                tasks = api.call("GET", f"{bp}/{job}/stages/{st['processingStageId']}/tasks",
                                 query={"pageSize": 1000})["tasks"]
                prog = sum(t.get("progress") or 0 for t in tasks) / max(1, st["tasksNumber"])
                parts.append(f"{st['processingStageName']} {prog * 100:5.1f}%")
            print(f"\r[{meta.get('currentStage') or '-'}] " + "  ".join(parts), end="   ", flush=True)
            if meta.get("isTerminal"):
                break
            time.sleep(0.5)
        print()
        if meta.get("error"):
            logs = api.call("GET", f"{bp}/{job}/logs", query={"severity": "error"})["logs"]
            for l in logs[:10]:
                print("  error:", json.dumps(l["payload"]))
            sys.exit(f"demo: job {job} failed: {json.dumps(meta.get('lastNotification'))}")

        # ---- download the export
        out_dir = os.path.join(args.data, "results", job)
        os.makedirs(out_dir, exist_ok=True)
        export = f"/data-staging/v1/external/{ws}/batches/{job}-export"
        token, n_files = None, 0
        while True:
            q = {"pageSize": 100}
            if token:
                q["nextPageToken"] = token
            page = api.call("GET", export + "/list", query=q)
            for fm in page["filesMetadata"]:
                dest = os.path.join(out_dir, fm.get("partName") or "")
                os.makedirs(dest, exist_ok=True)
                with urllib.request.urlopen(fm["downloadURL"], timeout=120) as r:
                    blob = r.read()
                name = fm["fileName"]
                if name.endswith(".tar.gz") or name.endswith(".tar"):
                    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
                        tar.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest)
                else:
                    open(os.path.join(dest, os.path.basename(name)), "wb").write(blob)
                n_files += 1
            token = page.get("nextPageToken")
            if not token:
                break
        rows = dets = hits = total = npred = 0
        photo_dets = {}
        for dp, _, fns in os.walk(out_dir):
            for fn in fns:
                if fn.endswith(".jsonl"):
                    for line in open(os.path.join(dp, fn)):
                        row = json.loads(line)
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
        print(f"export: {n_files} file(s) downloaded and unpacked into {out_dir}")
        if rows:
            print(f"results: {rows} rows, {dets} detections")
            if total:
                print(f"synthetic images: {hits}/{total} shapes found with the right class at IoU>=0.5"
                      f" (recall {hits / total:.3f}, precision {hits / max(npred, 1):.3f})")
        for name, n in sorted(photo_dets.items()):
            print(f"{name}: {n} detection(s) — a real photo, which the shapes model was never trained on:"
                  " its boxes there show only that the job ran, not anything true about the photo")
        print(f"annotated images (boxes labelled with class and confidence): {out_dir}/images/<image>/visualization.jpg")
        print(f"RESULTS: {out_dir}")
    finally:
        if args.keep_running:
            print(f"server left running (pid {srv.pid}); api key {key}")
        else:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(10)
            except subprocess.TimeoutExpired:
                srv.kill()


if __name__ == "__main__":
    main()
