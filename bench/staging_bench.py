#!/usr/bin/env python3
"""Data Staging benchmarks against the real server (issue 2).

usage: bench/staging_bench.py [--bin build/vbatch] [--quick] [--big N]

Prints one machine-readable line per figure ("bench staging <name> k=v ...").
  1. single-image uploads per second: 100 KB JPEGs, 8 concurrent clients
  2. tar-shard ingest MB/s (PUT to signed URLs until every image is counted)
     divided by `dd` write MB/s to the same disk, measured in the same run
  3. GET count and one list page for batches of 10k and 1M items (items are
     inserted straight into the SQLite database while the server is stopped:
     that is the cheap way to a 1M batch) and the server's RSS at 1M items.

The server runs with --quiet (no per-request log line) from a temporary data
folder on the same disk as /tmp (or $BENCH_DIR).
"""
import argparse
import http.client
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'e2e'))
import conftest  # noqa: E402  (the e2e harness: Server, make_tar, jpeg_bytes)


def jpeg_100k(seed):
    """A valid JPEG of ~100 KB: the committed tiny JPEG with COM segments
    of seeded filler after SOI (decoders skip COM)."""
    base = conftest.jpeg_bytes()
    assert base[:2] == b'\xff\xd8'
    need = 100 * 1024 - len(base)
    segs = b''
    rnd = (seed.to_bytes(4, 'big') * 20000)
    while need > 4:
        n = min(need - 4, 65000)
        segs += b'\xff\xfe' + (n + 2).to_bytes(2, 'big') + rnd[:n]
        need -= n + 4
    return base[:2] + segs + base[2:]


def line(name, **kw):
    print('bench staging ' + name + ' ' + ' '.join(f'{k}={v}' for k, v in kw.items()), flush=True)


def rss_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        m = re.search(r'VmRSS:\s+(\d+)', f.read())
    return int(m.group(1)) if m else -1


def cpu_s(pid):
    """utime + stime of a process, seconds."""
    with open(f'/proc/{pid}/stat') as f:
        parts = f.read().rsplit(')', 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf('SC_CLK_TCK')


def bench_uploads(s, total, clients=8):
    """8 clients, each on its own kept-alive connection, POST upload/image
    with a 100 KB JPEG as the CLI does (multipart, part named after the file)."""
    imgs = [jpeg_100k(i) for i in range(16)]
    errors = []
    counter = iter(range(total))
    lock = threading.Lock()
    path = f'{conftest.DS}/{s.workspace}/batches/bench-single/upload/image'

    def worker():
        c = http.client.HTTPConnection('127.0.0.1', s.port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            name = f'img{i:06d}.jpg'
            ctype, body = conftest.multipart([(name, name, imgs[i % len(imgs)])])
            q = urllib.parse.urlencode({'api_key': s.key, 'fileName': name, 'displayName': 'bench'})
            c.request('POST', f'{path}?{q}', body=body, headers={'Content-Type': ctype})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
        c.close()
    cpu0 = cpu_s(s.proc.pid)
    t0 = time.time()
    th = [threading.Thread(target=worker) for _ in range(clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    cpu = cpu_s(s.proc.pid) - cpu0
    assert not errors, errors[:3]
    line('upload_image', images=total, clients=clients, bytes_each=len(imgs[0]),
         seconds=f'{dt:.2f}', per_s=f'{total / dt:.1f}', mb_s=f'{total * len(imgs[0]) / dt / 1e6:.1f}',
         server_cpu_ms_per_image=f'{cpu * 1000 / total:.2f}')


def dd_mb_s(folder, mb):
    path = os.path.join(folder, 'dd.tmp')
    t0 = time.time()
    subprocess.run(['dd', 'if=/dev/zero', f'of={path}', 'bs=1M', f'count={mb}', 'conv=fdatasync'],
                   check=True, capture_output=True)
    dt = time.time() - t0
    os.unlink(path)
    return mb * 1048576 / dt / 1e6


def bench_tar(s, shards, per_shard, clients=4):
    img = jpeg_100k(1)
    tars = [conftest.make_tar([(f's{k}-{i}.jpg', img) for i in range(per_shard)]) for k in range(shards)]
    total_bytes = sum(len(t) for t in tars)
    todo = list(range(shards))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                k = todo.pop()
            d, put = s.put_shard('bench-tar', tars[k])
            if put.status != 200:
                errors.append(put)
    dd_before = dd_mb_s(s.data, max(64, total_bytes // 1048576))
    t0 = time.time()
    th = [threading.Thread(target=worker) for _ in range(clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    t_up = time.time() - t0
    assert not errors, errors[:3]
    s.wait_count('bench-tar', shards * per_shard, timeout=600)
    dt = time.time() - t0
    ingest = total_bytes / dt / 1e6
    dd_after = dd_mb_s(s.data, max(64, total_bytes // 1048576))
    dd = (dd_before + dd_after) / 2  # the disk is shared: average two runs around the ingest
    line('tar_ingest', shards=shards, images=shards * per_shard, mb=f'{total_bytes / 1e6:.1f}',
         upload_s=f'{t_up:.2f}', total_s=f'{dt:.2f}', mb_s=f'{ingest:.1f}', dd_mb_s=f'{dd:.1f}',
         dd_before=f'{dd_before:.1f}', dd_after=f'{dd_after:.1f}', ratio=f'{ingest / dd:.3f}')


def timed_get(s, path, query, n=20):
    for _ in range(3):  # warm-up
        s.request('GET', path, query=query)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = s.request('GET', path, query=query)
        ts.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, r
    return statistics.median(ts), r


def fill_batch(s, batch, n):
    """Make batch with one real upload, then clone its item row n-1 times
    straight in SQLite (server stopped)."""
    key = s.key
    r = s.upload_image(batch, 'seed.jpg', conftest.jpeg_bytes())
    assert r.status == 200, r
    s.wait_count(batch, 1)
    assert s.stop() == 0
    db = sqlite3.connect(os.path.join(s.data, 'vbatch.db'))
    bid, = db.execute('SELECT bid FROM batches WHERE batch_id=?', (batch,)).fetchone()
    row = db.execute('SELECT part, shard_id, content_type, mime, blob_key, size, created_ms FROM items '
                     'WHERE bid=?', (bid,)).fetchone()
    chunk = 50000
    done = 1
    while done < n:
        k = min(chunk, n - done)
        db.executemany('INSERT INTO items(bid, part, name, shard_id, content_type, mime, blob_key, size,'
                       ' created_ms) VALUES (?,?,?,?,?,?,?,?,?)',
                       ((bid, row[0], f'f{done + i:07d}.jpg', row[1], row[2], row[3], row[4], row[5],
                         row[6]) for i in range(k)))
        done += k
    db.execute('UPDATE batches SET item_count=? WHERE bid=?', (n, bid))
    db.commit()
    db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    db.close()
    s.key = key
    s.start()
    s.key = key


def bench_big(s, n):
    batch = f'bench-{n}'
    t0 = time.time()
    fill_batch(s, batch, n)
    fill_s = time.time() - t0
    base = f'{conftest.DS}/{s.workspace}/batches/{batch}'
    c_ms, r = timed_get(s, base + '/count', {})
    assert r.json()['count'] == n, r
    p1_ms, r = timed_get(s, base + '/list', {'pageSize': 100})
    tok = r.json()['nextPageToken']
    deep = None
    # walk a few pages in to show that a later page costs the same
    for _ in range(3):
        r = s.request('GET', base + '/list', query={'pageSize': 100, 'nextPageToken': tok})
        tok = r.json()['nextPageToken']
    p4_ms, r = timed_get(s, base + '/list', {'pageSize': 100, 'nextPageToken': tok})
    deep = p4_ms
    line('batch_reads', items=n, fill_s=f'{fill_s:.1f}', count_ms=f'{c_ms:.2f}',
         list_page100_ms=f'{p1_ms:.2f}', list_page100_later_ms=f'{deep:.2f}',
         server_rss_kb=rss_kb(s.proc.pid))
    return c_ms, p1_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=os.environ.get('VBATCH_BIN', os.path.join(REPO, 'build', 'vbatch')))
    ap.add_argument('--quick', action='store_true', help='small sizes (smoke test)')
    ap.add_argument('--big', type=int, default=1000000, help='items of the large batch')
    a = ap.parse_args()
    conftest.BIN = os.path.abspath(a.bin)
    root = os.environ.get('BENCH_DIR') or None
    with tempfile.TemporaryDirectory(prefix='vbatch-bench-', dir=root) as d:
        s = conftest.Server(d, args=['--quiet']).start()
        try:
            line('server', bin=conftest.BIN, threads='auto', cpus=os.cpu_count())
            bench_uploads(s, 200 if a.quick else 2000)
            bench_tar(s, 2 if a.quick else 8, 50 if a.quick else 250)
            c10, p10 = bench_big(s, 10000)
            c1m, p1m = bench_big(s, 20000 if a.quick else a.big)
            line('page_cost_ratio', big_over_10k_list=f'{p1m / p10:.2f}', big_over_10k_count=f'{c1m / c10:.2f}')
        finally:
            s.stop()


if __name__ == '__main__':
    main()
