#!/usr/bin/env python3
"""Tar-shard ingest against the disk (issue 12, local blob backend), or
against plain PUTs to the object store (--s3).

usage: bench/ingest_tar.py [--bin build/vbatch] [--shards 20] [--images 500]
                           [--kb 16] [--clients 4] [--rounds 3]
                           [--s3 [--poll-ms 1000]]

The inference CLI's way of staging a folder of images: tar shards of
`images` images of about `kb` KB each; for each shard a signed upload URL
(POST bulk-upload/image-files), then a PUT of the shard to it, `clients`
shards at a time; done when every image is counted (GET count, polled
every 5 ms).  The clock runs from the first URL request to the last count.

Baseline in the same run: `dd` of the same bytes (the shards concatenated,
read from the page cache) to a file on the same disk as the data folder
with conv=fsync, before and after each round (the disk is shared: the mean
of the two).  Prints one line per round and a summary:

  bench ingest_tar round=1 mb=172.3 seconds=0.21 mb_s=820.4 dd_mb_s=950.1 ratio=0.863
  bench ingest_tar best_ratio=... median_ratio=...

Each round stages into a fresh batch of the same server (a fresh data folder
per run, on $BENCH_DIR or the disk of /tmp).

--compare BIN: a second vbatch (e.g. main's build), run in the same rounds
right after the first, each with its own dd before and after;
--compare-env NAME=VALUE (repeatable) sets its environment (the same
binary with a knob off: --compare build/vbatch --compare-env
VBATCH_STAGING_URL_BEHIND=0).  --sink BIN
(build/bench/bench_http_sink): the floor of HTTP ingest on this machine in
the same rounds: a bare libmicrohttpd server that only stores the bodies
(no database, no index; modes none = the bytes dropped, buffered = write +
fsync, direct = O_DIRECT from a 1 MiB buffer + fdatasync), counted the
same way; --sink-modes direct runs only that one.  Each variant prints its rounds and its median:

  bench ingest_tar variant=floor-direct round=1 ... ratio=0.790
  bench ingest_tar variant=floor-direct median_ratio=...

--s3: the blobs on the object store of VBATCH_TEST_S3 (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY; `eval "$(scripts/s3-up.sh DIR)"` starts radosgw),
under a fresh prefix.  The shards then go straight to the store (vbatch's
presigned PUTs) and the arrival poller (--upload-poll-ms = --poll-ms)
notices them; the clock runs from the first URL request to the last count
as above.  Baseline in the same round, instead of dd: plain PUTs of the
same shards to the same store (presigned by this script with SigV4, the
same client code, `clients` at a time), before and after each round:

  bench ingest_tar_s3 round=1 ... mb_s=210.0 plain_mb_s=260.0 ratio=0.808

Each round keeps its 169 MB (the batch's shards) and the baseline 169 MB
more: scripts/s3-up.sh's radosgw keeps objects in 2 GiB of memory, and a
full one stalls PUTs, so start a fresh one for each run of 3 rounds.
"""
import argparse
import http.client
import os
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


def jpeg_sized(size, seed):
    """A valid JPEG of `size` bytes: the committed tiny JPEG with a COM
    segment of seeded filler after SOI (decoders skip COM)."""
    base = conftest.jpeg_bytes()
    need = size - len(base) - 4
    assert 0 < need < 65000, 'size out of range for one COM segment'
    fill = (seed.to_bytes(4, 'big') * (need // 4 + 1))[:need]
    return base[:2] + b'\xff\xfe' + (need + 2).to_bytes(2, 'big') + fill + base[2:]


def dd_mb_s(src, folder):
    """MB/s of dd copying src (in the page cache) to folder, fsynced."""
    dst = os.path.join(folder, 'dd.out')
    n = os.path.getsize(src)
    with open(src, 'rb') as f:  # warm the page cache: dd measures the write
        while f.read(1 << 20):
            pass
    t0 = time.time()
    subprocess.run(['dd', f'if={src}', f'of={dst}', 'bs=1M', 'conv=fsync'], check=True, capture_output=True)
    dt = time.time() - t0
    os.unlink(dst)
    # the unlink's block discard (a file system mounted with `discard`:
    # ~46 ms for 169 MB here) happens at the next journal commit: synced
    # now, outside every clock, not charged to whatever runs next
    os.sync()
    return n / dt / 1e6


class Client:
    """The CLI's calls, one connection per request (as the CLI's HTTP
    library does across threads)."""

    def __init__(self, s):
        self.s = s

    def call(self, method, url, body=None, headers=None):
        u = urllib.parse.urlsplit(url)
        c = http.client.HTTPConnection(u.hostname or '127.0.0.1', u.port or self.s.port, timeout=600)
        try:
            c.request(method, u.path + ('?' + u.query if u.query else ''), body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def ds_url(self, batch, rest, query=None):
        q = {'api_key': self.s.key}
        q.update(query or {})
        return (f'{self.s.base}{conftest.DS}/{self.s.workspace}/batches/{batch}{rest}?'
                + urllib.parse.urlencode(q))


def presign_put(endpoint, bucket, key, access, secret, region, expires=3600):
    """A SigV4 query-signed PUT URL (path style, payload unsigned)."""
    import datetime
    import hashlib
    import hmac
    from urllib.parse import quote
    u = urllib.parse.urlsplit(endpoint)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz, day = now.strftime('%Y%m%dT%H%M%SZ'), now.strftime('%Y%m%d')
    scope = f'{day}/{region}/s3/aws4_request'
    path = quote(f'/{bucket}/{key}', safe='/-_.~')
    q = {'X-Amz-Algorithm': 'AWS4-HMAC-SHA256', 'X-Amz-Credential': f'{access}/{scope}', 'X-Amz-Date': amz,
         'X-Amz-Expires': str(expires), 'X-Amz-SignedHeaders': 'host'}
    cq = '&'.join(f'{quote(k, safe="-_.~")}={quote(v, safe="-_.~")}' for k, v in sorted(q.items()))
    creq = '\n'.join(['PUT', path, cq, f'host:{u.netloc}', '', 'host', 'UNSIGNED-PAYLOAD'])
    sts = '\n'.join(['AWS4-HMAC-SHA256', amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ('AWS4' + secret).encode()
    for part in (day, region, 's3', 'aws4_request'):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return f'{u.scheme}://{u.netloc}{path}?{cq}&X-Amz-Signature={sig}'


def plain_put_mb_s(cl, tars, clients, store, prefix):
    """MB/s of PUTting the shards straight to the store, `clients` at a time."""
    endpoint, bucket, region, access, secret = store
    todo, lock, errors = list(range(len(tars))), threading.Lock(), []
    total = sum(len(t[0]) for t in tars)

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                k = todo.pop(0)
            url = presign_put(endpoint, bucket, f'{prefix}/plain/{k}.tar', access, secret, region)
            st, body = cl.call('PUT', url, body=tars[k][0])
            if st != 200:
                errors.append((st, body[:200]))
    t0 = time.time()
    th = [threading.Thread(target=worker) for _ in range(clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not errors, errors[:3]
    return total / (time.time() - t0) / 1e6


def run_round(s, batch, tars, clients):
    import json
    cl = Client(s)
    todo = list(range(len(tars)))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                k = todo.pop(0)
            st, body = cl.call('POST', cl.ds_url(batch, '/bulk-upload/image-files', {'displayName': batch}))
            if st != 200:
                errors.append((st, body[:200]))
                return
            d = json.loads(body)['signedURLDetails']
            st, body = cl.call('PUT', d['uploadURL'], body=tars[k], headers=d.get('extensionHeaders') or {})
            if st != 200:
                errors.append((st, body[:200]))

    want = sum(t[1] for t in tars)
    tars = [t[0] for t in tars]
    t0 = time.time()
    th = [threading.Thread(target=worker) for _ in range(clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    t_put = time.time() - t0
    assert not errors, errors[:3]
    count_url = cl.ds_url(batch, '/count')
    while True:
        st, body = cl.call('GET', count_url)
        if st == 200 and json.loads(body)['count'] >= want:
            break
        if time.time() - t0 > 600:
            raise AssertionError(f'count stayed at {body!r}, wanted {want}')
        time.sleep(0.005)
    return t_put, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=os.path.join(REPO, 'build', 'vbatch'))
    ap.add_argument('--shards', type=int, default=20)
    ap.add_argument('--images', type=int, default=500)
    ap.add_argument('--kb', type=int, default=16)
    ap.add_argument('--clients', type=int, default=4)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--s3', action='store_true', help='blobs on VBATCH_TEST_S3; baseline: plain PUTs to it')
    ap.add_argument('--poll-ms', type=int, default=1000, help='--s3: the arrival poller period')
    ap.add_argument('--compare', help='another vbatch binary run in the same rounds')
    ap.add_argument('--compare-env', action='append', default=[], metavar='NAME=VALUE',
                    help='environment of the --compare server (e.g. the same binary with a knob off); repeatable')
    ap.add_argument('--sink', help='bench_http_sink binary: the floor variants in the same rounds')
    ap.add_argument('--sink-modes', default='none,buffered,direct',
                    help='--sink: the floor variants to run, comma-separated (e.g. direct)')
    a = ap.parse_args()
    conftest.BIN = os.path.abspath(a.bin)
    tars = []
    for k in range(a.shards):
        members = [(f's{k:03d}-{i:04d}.jpg', jpeg_sized(a.kb * 1000, k * 100000 + i)) for i in range(a.images)]
        tars.append((conftest.make_tar(members), a.images))
    total = sum(len(t[0]) for t in tars)
    with tempfile.TemporaryDirectory(dir=os.environ.get('BENCH_DIR')) as d:
        src = os.path.join(d, 'shards.bin')
        with open(src, 'wb') as f:
            for t in tars:
                f.write(t[0])
        if a.s3:
            return s3_rounds(a, d, tars, total)
        variants = []  # (name, server-like object, data folder, stop)
        try:
            cenv = dict(kv.split('=', 1) for kv in a.compare_env)
            bins = [('vbatch', os.path.abspath(a.bin), {})] + (
                [('compare', os.path.abspath(a.compare), cenv)] if a.compare else [])
            for name, b, env in bins:
                sub = os.path.join(d, name)
                os.makedirs(sub)
                conftest.BIN = b
                s = conftest.Server(sub, args=['--quiet'], env=env).start()
                variants.append((name, s, s.data, s.stop))
            for mode in (a.sink_modes.split(',') if a.sink else ()):
                variants.append(sink_start(a.sink, d, mode, a.images))
            ratios = {v[0]: [] for v in variants}
            for r in range(1, a.rounds + 1):
                for name, s, data, _ in variants:
                    dd0 = dd_mb_s(src, data)
                    t_put, dt = run_round(s, f'bench-{r}', tars, a.clients)
                    dd1 = dd_mb_s(src, data)
                    dd = (dd0 + dd1) / 2
                    mb_s = total / dt / 1e6
                    ratios[name].append(mb_s / dd)
                    tag = '' if name == 'vbatch' else f'variant={name} '
                    print(f'bench ingest_tar {tag}round={r} shards={a.shards} images={a.shards * a.images} '
                          f'mb={total / 1e6:.1f} put_s={t_put:.3f} seconds={dt:.3f} mb_s={mb_s:.1f} '
                          f'dd_mb_s={dd:.1f} dd_before={dd0:.1f} dd_after={dd1:.1f} ratio={mb_s / dd:.3f}',
                          flush=True)
        finally:
            for v in variants:
                v[3]()
    for name, rs in ratios.items():
        tag = '' if name == 'vbatch' else f'variant={name} '
        print(f'bench ingest_tar {tag}best_ratio={max(rs):.3f} median_ratio={statistics.median(rs):.3f}', flush=True)


class SinkServer:
    """bench_http_sink seen as the client sees a server."""

    def __init__(self, port):
        self.port, self.base, self.key, self.workspace = port, f'http://127.0.0.1:{port}', 'k', 'w'


def sink_start(binary, d, mode, images):
    data = os.path.join(d, 'sink-' + mode)
    os.makedirs(data)
    port = conftest.free_port()
    p = subprocess.Popen([binary, str(port), data, mode, str(images)], stdout=subprocess.PIPE)
    assert p.stdout.readline().startswith(b'listening'), 'bench_http_sink did not start'

    def stop():
        p.terminate()
        p.wait()
    return ('floor-' + mode, SinkServer(port), data, stop)


def s3_rounds(a, d, tars, total):
    import uuid
    url = os.environ.get('VBATCH_TEST_S3', '')
    assert url and os.environ.get('AWS_SECRET_ACCESS_KEY'), 'VBATCH_TEST_S3 and AWS_* needed (scripts/s3-up.sh)'
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    pre = u.path.strip('/')
    prefix = (pre + '/' if pre else '') + 'bench-' + uuid.uuid4().hex[:8]
    store = (q['endpoint'], u.netloc, q.get('region', 'us-east-1'), os.environ['AWS_ACCESS_KEY_ID'],
             os.environ['AWS_SECRET_ACCESS_KEY'])
    blobs = f's3://{u.netloc}/{prefix}?{u.query}'
    s = conftest.Server(d, args=['--quiet', '--upload-poll-ms', str(a.poll_ms)], env={'VBATCH_BLOBS': blobs}).start()
    ratios = []
    try:
        cl = Client(s)
        for r in range(1, a.rounds + 1):
            p0 = plain_put_mb_s(cl, tars, a.clients, store, prefix)
            t_put, dt = run_round(s, f'bench-{r}', tars, a.clients)
            p1 = plain_put_mb_s(cl, tars, a.clients, store, prefix)
            plain = (p0 + p1) / 2
            mb_s = total / dt / 1e6
            ratios.append(mb_s / plain)
            print(f'bench ingest_tar_s3 round={r} shards={a.shards} images={a.shards * a.images} '
                  f'mb={total / 1e6:.1f} poll_ms={a.poll_ms} put_s={t_put:.3f} seconds={dt:.3f} mb_s={mb_s:.1f} '
                  f'plain_mb_s={plain:.1f} plain_before={p0:.1f} plain_after={p1:.1f} ratio={mb_s / plain:.3f}',
                  flush=True)
    finally:
        s.stop()
    print(f'bench ingest_tar_s3 best_ratio={max(ratios):.3f} median_ratio={statistics.median(ratios):.3f}',
          flush=True)


if __name__ == '__main__':
    main()
