#!/usr/bin/env python3
"""Staging throughput with and without the content check (issue 10).

usage: /usr/bin/python3 bench/staging_check_bench.py --before OLD_BIN [--after build/vbatch]
                                                      [--rounds 3] [--images 400]

Staging decodes every accepted image at a tiny scale (vis_check: JPEG at
1/8 to gray, PNG rows into one reused row, WebP scaled to 1/8, BMP copied)
so that nothing a job cannot decode is accepted.  This measures what that
costs: the same workloads against two binaries, OLD_BIN built from a commit
before the check (e.g. `git archive <commit> | tar -x -C /tmp/old && make
-C /tmp/old`) and the current one, alternating before/after for --rounds
rounds and taking each side's median:

  1. single-image uploads per second, 8 concurrent clients
  2. tar-shard ingest MB/s (4 shards PUT by 4 clients, until counted)

over realistic content (numpy + imageio, as bench/jobs_bench.py): 640x480
JPEGs at quality 90 (~90 KB of entropy-coded data each, not COM filler)
and 640x480 PNGs, half and half.

Prints one line per figure: "bench staging_check <name> before=… after=…
ratio=after/before" — for the rates the issue's bar is ratio >= 0.85; the
server CPU per image (utime+stime of the server process over the workload,
steadier than the rates on a shared machine) should stay near 1 too.
"""
import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'e2e'))
import conftest  # noqa: E402


def cpu_s(pid):
    """utime + stime of a process, seconds (less sensitive to other load on
    a shared machine than the wall-clock rates)."""
    with open(f'/proc/{pid}/stat') as f:
        parts = f.read().rsplit(')', 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf('SC_CLK_TCK')


def make_images(n=32):
    import numpy as np
    import imageio
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img = np.full((480, 640, 3), rng.integers(40, 200, 3), dtype=np.uint8)
        for _ in range(8):
            x, y = rng.integers(0, 560), rng.integers(0, 400)
            w, h = rng.integers(30, 120, 2)
            img[y:y + h, x:x + w] = rng.integers(0, 255, 3)
        img = (img.astype(np.int16) + rng.integers(-12, 12, img.shape)).clip(0, 255).astype(np.uint8)
        b = io.BytesIO()
        if i % 2:
            imageio.imwrite(b, img, format='png')
            out.append((f'.png', b.getvalue()))
        else:
            imageio.imwrite(b, img, format='jpeg', quality=90)
            out.append((f'.jpg', b.getvalue()))
    return out


def uploads(s, imgs, total, clients=8):
    counter = iter(range(total))
    lock = threading.Lock()
    errors = []
    path = f'{conftest.DS}/{s.workspace}/batches/single/upload/image'

    def worker():
        c = http.client.HTTPConnection('127.0.0.1', s.port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            ext, data = imgs[i % len(imgs)]
            name = f'img{i:06d}{ext}'
            ctype, body = conftest.multipart([(name, name, data)])
            q = urllib.parse.urlencode({'api_key': s.key, 'fileName': name})
            c.request('POST', f'{path}?{q}', body=body, headers={'Content-Type': ctype})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
        c.close()
    t0 = time.time()
    th = [threading.Thread(target=worker) for _ in range(clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    assert not errors, errors[:3]
    return total / dt


def tar_ingest(s, imgs, total, shards=4):
    per = total // shards
    tars = [conftest.make_tar([(f's{k}-{i}{imgs[i % len(imgs)][0]}', imgs[i % len(imgs)][1]) for i in range(per)])
            for k in range(shards)]
    size = sum(len(t) for t in tars)
    errors = []
    todo = list(range(shards))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                k = todo.pop()
            _, put = s.put_shard('tar', tars[k])
            if put.status != 200:
                errors.append(put.status)
    t0 = time.time()
    th = [threading.Thread(target=worker) for _ in range(shards)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not errors, errors[:3]
    s.wait_count('tar', per * shards, timeout=600)
    return size / (time.time() - t0) / 1e6


def one_round(binary, imgs, n):
    conftest.BIN = binary
    with tempfile.TemporaryDirectory(dir=os.environ.get('BENCH_DIR')) as d:
        s = conftest.Server(d, ['--quiet']).start()
        try:
            c0 = cpu_s(s.proc.pid)
            up = uploads(s, imgs, n)
            c1 = cpu_s(s.proc.pid)
            tar = tar_ingest(s, imgs, n)
            c2 = cpu_s(s.proc.pid)
        finally:
            s.stop()
    return up, tar, (c1 - c0) * 1000 / n, (c2 - c1) * 1000 / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--before', required=True, help='a vbatch binary without the content check')
    ap.add_argument('--after', default=os.path.join(REPO, 'build', 'vbatch'))
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--images', type=int, default=400)
    a = ap.parse_args()
    imgs = make_images()
    sizes = [len(d) for _, d in imgs]
    print(f'# {len(imgs)} distinct 640x480 images, {min(sizes)}..{max(sizes)} bytes; {a.images} per workload',
          flush=True)
    res = {'before': [], 'after': []}
    for r in range(a.rounds):
        for side, binary in (('before', a.before), ('after', a.after)):
            up, tar, cpu_up, cpu_tar = one_round(binary, imgs, a.images)
            res[side].append((up, tar, cpu_up, cpu_tar))
            print(f'# round {r + 1} {side}: uploads {up:.1f}/s ({cpu_up:.2f} ms server CPU each), '
                  f'tar ingest {tar:.1f} MB/s ({cpu_tar:.2f} ms server CPU per image)', flush=True)
    for i, (name, unit) in enumerate((('upload_image', 'per_s'), ('tar_ingest', 'mb_s'),
                                      ('upload_image_cpu', 'ms_per_image'), ('tar_ingest_cpu', 'ms_per_image'))):
        b = statistics.median(x[i] for x in res['before'])
        f = statistics.median(x[i] for x in res['after'])
        prec = 2 if unit == 'ms_per_image' else 1
        print(f'bench staging_check {name} unit={unit} before={b:.{prec}f} after={f:.{prec}f} ratio={f / b:.3f}',
              flush=True)


if __name__ == '__main__':
    main()
