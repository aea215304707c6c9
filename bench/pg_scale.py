#!/usr/bin/python3
"""Scale-out benchmarks (issue 11): the same figures on PostgreSQL and on
SQLite, measured in the same run, through the real binary.

    /usr/bin/python3 bench/pg_scale.py --pg URI [--bin build/vbatch] [--quick]
                                       [--parts workers,model,reads] [--procs 1,2,4,8]

--pg is a libpq URI (bench/pg_scale.sh starts a throwaway cluster with
scripts/pg-up.sh and passes it); each server gets a fresh schema there.
SQLite is the embedded default in the server's data folder.

  workers  completed tasks/s of a job whose workflow does almost nothing (a
           4x4 static crop of 8x8 PNGs, one image per task: every image is
           its own tar shard and the planner cuts tasks at shards) with 1, 2,
           4 and 8 `vbatch worker --workers 1` processes beside one
           `serve --workers 0`: the coordination cost of a task (claim,
           heartbeat, completion, the idle poll) through the whole program.
           The rate is the processing stage's own span (first claim to last
           completion).  Each task is claimed once, so claims/s = tasks/s.
           With it the CPU per task of the worker processes and (PostgreSQL
           of pg-up.sh) of the database server, from /proc between the POST
           and the end of the job: on a shared machine CPU per task is the
           steadier figure.
  model    images/s of a real job (the synth-det detector of scripts/demo.sh,
           640x480 JPEGs in shards of 100) with 1 vs 2 worker processes
           (each --workers 1, one ONNX Runtime thread), and images per CPU
           second of the worker processes.
  reads    GET count and list pages (pageSize 100: the first, and one 5 pages
           in) at 10k and 1M items: median and p95 of 200 calls on one
           keep-alive connection; the batch gets one real upload, then the
           rest of its rows are inserted in bulk SQL (server stopped: the
           cheap way to a 1M batch).  The server's RSS idle (before and
           after the batches exist) and its maximum while 8 clients walk
           list pages of the 1M batch for 8 s (with their pages/s).

One line per figure:  pg_scale <part> db=<sqlite|pg> <name>=<value> ...
with ratio lines (pg/sqlite, N procs/1 proc) after each part.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'e2e'))
sys.path.insert(0, HERE)
import conftest  # noqa: E402  (free_port, make_tar, png_bytes)
import jobs_helpers  # noqa: E402  (CROP_WF, DET_WF, job_body)

DS = '/data-staging/v1/external'
BP = '/batch-processing/v1/external'
WS = 'default'


def line(part, db, **kw):
    print(f'pg_scale {part} db={db} ' + ' '.join(f'{k}={v}' for k, v in kw.items()), flush=True)


def rss_kb(pid):
    try:
        with open(f'/proc/{pid}/status') as f:
            m = re.search(r'VmRSS:\s+(\d+)', f.read())
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def cpu_s(pid):
    """utime + stime of a live process, seconds (0 when gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            v = f.read().rsplit(')', 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return 0.0


def pg_server_pids(pg_uri):
    """The PostgreSQL server's processes (the postmaster and its children)
    when the URI names a socket folder of scripts/pg-up.sh (DIR/data)."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(pg_uri).query)
    host = (q.get('host') or [''])[0]
    try:
        with open(os.path.join(host, 'data', 'postmaster.pid')) as f:
            pm = int(f.readline())
    except (OSError, ValueError):
        return []
    pids = [pm]
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    if int(f.read().rsplit(')', 1)[1].split()[1]) == pm:
                        pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return pids


class CpuMeter:
    """CPU seconds spent by the worker processes, the serve process and
    (PostgreSQL from pg-up.sh) the database server between start() and
    stop(); processes that end in between are not counted."""

    def __init__(self, serve, workers, pg_uri):
        self.groups = {'workers': [p.pid for p in workers], 'serve': [serve.proc.pid],
                       'db': pg_server_pids(pg_uri) if serve.backend.kind == 'pg' else []}

    def snap(self):
        return {g: {pid: cpu_s(pid) for pid in pids} for g, pids in self.groups.items()}

    def start(self):
        self.t0 = self.snap()

    def stop(self):
        t1 = self.snap()
        return {g: sum(max(0.0, t1[g][pid] - self.t0[g].get(pid, 0.0)) for pid in t1[g] if t1[g][pid] > 0)
                for g in t1}


def iso_s(ts):
    from datetime import datetime
    return datetime.fromisoformat(ts.replace('Z', '+00:00')).timestamp()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]


class Conn:
    """One keep-alive HTTP connection to a server."""

    def __init__(self, port, key):
        self.port, self.key = port, key
        self.c = http.client.HTTPConnection('127.0.0.1', port, timeout=600)

    def call(self, method, path, query=None, body=None, headers=None, raw_url=None):
        q = dict(query or {})
        q['api_key'] = self.key
        url = raw_url or (path + '?' + urllib.parse.urlencode(q))
        for attempt in range(2):
            try:
                self.c.request(method, url, body=body, headers=headers or {})
                r = self.c.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=600)
                if attempt:
                    raise
        return None

    def json(self, method, path, query=None, body=None, want=200):
        data = json.dumps(body).encode() if body is not None else None
        st, b = self.call(method, path, query, data, {'Content-Type': 'application/json'} if data else None)
        assert st == want or (isinstance(want, tuple) and st in want), (method, path, st, b[:300])
        return json.loads(b) if b else None

    def close(self):
        self.c.close()


class Backend:
    """A database for the servers of one figure: SQLite in the data folder,
    or a fresh schema of the PostgreSQL database."""

    def __init__(self, kind, pg_uri, tmp):
        self.kind, self.pg_uri = kind, pg_uri
        self.schema = None
        self.env = {}
        if kind == 'pg':
            self.schema = 'pgscale_' + hashlib.sha1(tmp.encode()).hexdigest()[:12]
            self.psql(f'DROP SCHEMA IF EXISTS {self.schema} CASCADE; CREATE SCHEMA {self.schema}')
            sep = '&' if '?' in pg_uri else '?'
            self.env = {'VBATCH_DB': pg_uri + sep + 'options=' + urllib.parse.quote('-csearch_path=' + self.schema)}

    def psql(self, sql):
        env = dict(os.environ)
        env['PGOPTIONS'] = f'-csearch_path={self.schema}'
        r = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', self.pg_uri, '-c', sql],
                           capture_output=True, text=True, timeout=3600, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def drop(self):
        if self.schema:
            self.psql(f'DROP SCHEMA IF EXISTS {self.schema} CASCADE')


class Serve:
    def __init__(self, binp, tmp, backend, args):
        self.binp, self.tmp, self.backend, self.args = binp, tmp, backend, list(args)
        self.data = os.path.join(tmp, 'data')
        self.proc, self.key, self.port = None, None, None
        self.env = dict(os.environ)
        self.env.update(backend.env)

    def start(self):
        self.port = conftest.free_port()
        out = os.path.join(self.tmp, f'serve.{self.port}.out')
        with open(out, 'wb') as fo, open(os.path.join(self.tmp, 'serve.log'), 'ab') as fe:
            self.proc = subprocess.Popen([self.binp, 'serve', '--listen', f'127.0.0.1:{self.port}', '--data',
                                          self.data, '--quiet'] + self.args, stdout=fo, stderr=fe, env=self.env)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('serve exited: ' + open(os.path.join(self.tmp, 'serve.log')).read()[-2000:])
            with open(out) as f:
                for ln in f:
                    if ln.startswith('api_key: '):
                        self.key = ln.split()[1]
            try:
                c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=5)
                c.request('GET', '/healthz')
                ok = c.getresponse().status == 200
                c.close()
                if ok and self.key:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError('serve did not start')

    def conn(self):
        return Conn(self.port, self.key)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=120)


def start_workers(binp, serve, n, extra_env=None):
    env = dict(serve.env)
    env.update(extra_env or {})
    ps = []
    for i in range(n):
        log = open(os.path.join(serve.tmp, f'worker{i}.log'), 'ab')
        ps.append(subprocess.Popen([binp, 'worker', '--data', serve.data, '--workers', '1', '--models-dir',
                                    jobs_helpers.MODELS], stdout=subprocess.DEVNULL, stderr=log, env=env))
    time.sleep(1.0)  # let them connect, migrate-check and start polling
    for p in ps:
        assert p.poll() is None, f'worker exited with {p.returncode}'
    return ps


def stop_workers(ps):
    for p in ps:
        p.send_signal(signal.SIGTERM)
    for p in ps:
        p.wait(timeout=120)


def stage_shards(serve, batch, members_of, nshards, threads=4):
    """Stage nshards tar shards through signed URLs (members_of(k) gives the
    k-th shard's (name, bytes) list) and wait until every item is counted."""
    total = 0

    def one(k):
        c = serve.conn()
        members = members_of(k)
        d = c.json('POST', f'{DS}/{WS}/batches/{batch}/bulk-upload/image-files', {'displayName': batch})
        u = urllib.parse.urlsplit(d['signedURLDetails']['uploadURL'])
        st, b = c.call('PUT', None, body=conftest.make_tar(members), raw_url=u.path + '?' + u.query)
        assert st == 200, b
        c.close()
        return len(members)

    with ThreadPoolExecutor(threads) as ex:
        total = sum(ex.map(one, range(nshards)))
    c = serve.conn()
    deadline = time.time() + 1800
    while time.time() < deadline:
        if c.json('GET', f'{DS}/{WS}/batches/{batch}/count')['count'] >= total:
            break
        time.sleep(0.2)
    else:
        raise AssertionError('staging did not finish')
    c.close()
    return total


def run_job(serve, job, batch, wf, meter=None, timeout=3600):
    c = serve.conn()
    b = jobs_helpers.job_body(batch, wf)
    b['computeConfiguration']['workersPerMachine'] = 1
    b['processingTimeoutSeconds'] = 86400
    if meter:
        meter.start()
    c.json('POST', f'{BP}/{WS}/jobs/{job}', body=b)
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = c.json('GET', f'{BP}/{WS}/jobs/{job}')['job']
        if j['isTerminal']:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f'job {job} did not end')
    cpu = meter.stop() if meter else {}
    assert not j['error'], j
    stages = {s['processingStageId']: s for s in c.json('GET', f'{BP}/{WS}/jobs/{job}/stages')['stages']}
    p = stages['processing']
    ntasks = p.get('tasksNumber')
    c.close()
    return iso_s(p['startTimestamp']), iso_s(p['lastEventTimestamp']), ntasks, cpu


# ---- part 1: worker processes, a workflow that does almost nothing -----------------------

def part_workers(a, kinds):
    res = {}
    n = a.tasks
    for kind in kinds:
        tmp = tempfile.mkdtemp(prefix='vbatch-pgscale-w-', dir=a.dir)
        be = Backend(kind, a.pg, tmp)
        s = Serve(a.bin, tmp, be, ['--workers', '0']).start()
        try:
            c = s.conn()
            c.json('PUT', f'/workflows/v1/external/{WS}/workflows/crop', body=jobs_helpers.CROP_WF, want=(200, 201))
            t0 = time.time()
            stage_shards(s, 'tiny', lambda k: [(f'img-{k:05d}.png', conftest.png_bytes(k))], n)
            line('workers_setup', kind, images=n, shards=n, staging_s=f'{time.time() - t0:.1f}')
            for procs in a.procs:
                ws = start_workers(a.bin, s, procs)
                try:
                    job = f'noop-{procs}'
                    p0, p1, ntasks, cpu = run_job(s, job, 'tiny', 'crop', CpuMeter(s, ws, a.pg))
                finally:
                    stop_workers(ws)
                rate = ntasks / max(p1 - p0, 1e-3)
                res[(kind, procs)] = rate
                extra = {}
                if (kind, 1) in res and procs != 1:
                    extra['ratio_vs_1proc'] = f'{rate / res[(kind, 1)]:.2f}'
                if kind == 'pg' and ('sqlite', procs) in res:
                    extra['ratio_pg_vs_sqlite'] = f'{rate / res[("sqlite", procs)]:.2f}'
                for g, v in cpu.items():
                    if v > 0:
                        extra[f'cpu_ms_per_task_{g}'] = f'{1000 * v / ntasks:.1f}'
                line('workers', kind, procs=procs, tasks_per_s=f'{rate:.1f}', tasks=ntasks,
                     span_s=f'{p1 - p0:.2f}', **extra)
        finally:
            s.stop()
            be.drop()
            shutil.rmtree(tmp, ignore_errors=True)
    return res


# ---- part 2: a real model, 1 vs 2 worker processes ---------------------------------------

def part_model(a, kinds):
    import jobs_bench
    res = {}
    base_dir = tempfile.mkdtemp(prefix='vbatch-pgscale-img-', dir=a.dir)
    blobs = [open(p, 'rb').read() for p in jobs_bench.make_images(base_dir)]
    shutil.rmtree(base_dir, ignore_errors=True)
    n, per = a.images, 100
    for kind in kinds:
        tmp = tempfile.mkdtemp(prefix='vbatch-pgscale-m-', dir=a.dir)
        be = Backend(kind, a.pg, tmp)
        s = Serve(a.bin, tmp, be, ['--workers', '0', '--models-dir', jobs_helpers.MODELS]).start()
        try:
            c = s.conn()
            c.json('PUT', f'/workflows/v1/external/{WS}/workflows/det', body=jobs_helpers.DET_WF, want=(200, 201))

            def members(k):
                return [(f'img-{i:06d}.jpg', blobs[i % len(blobs)]) for i in range(k * per, min(n, (k + 1) * per))]
            stage_shards(s, 'photos', members, (n + per - 1) // per)
            for procs in (1, 2):
                ws = start_workers(a.bin, s, procs, {'VBATCH_MODEL_THREADS': '1'})
                try:
                    p0, p1, ntasks, cpu = run_job(s, f'det-{procs}', 'photos', 'det', CpuMeter(s, ws, a.pg))
                finally:
                    stop_workers(ws)
                rate = n / max(p1 - p0, 1e-3)
                res[(kind, procs)] = rate
                extra = {}
                if procs == 2:
                    extra['ratio_vs_1proc'] = f'{rate / res[(kind, 1)]:.2f}'
                if kind == 'pg' and ('sqlite', procs) in res:
                    extra['ratio_pg_vs_sqlite'] = f'{rate / res[("sqlite", procs)]:.2f}'
                if cpu.get('workers'):
                    extra['images_per_worker_cpu_s'] = f'{n / cpu["workers"]:.1f}'
                line('model', kind, procs=procs, images_per_s=f'{rate:.1f}', images=n, tasks=ntasks,
                     model='synth-det', ort_threads=1, **extra)
        finally:
            s.stop()
            be.drop()
            shutil.rmtree(tmp, ignore_errors=True)
    return res


# ---- part 3 + 4: count and list latency, server RSS ----------------------------------------

def fill(s, be, batch, n):
    """One real upload, then n-1 copies of its row in bulk SQL, server stopped."""
    c = s.conn()
    ctype, body = conftest.multipart([('seed.png', 'seed.png', conftest.png_bytes(1))])
    st, b = c.call('POST', f'{DS}/{WS}/batches/{batch}/upload/image', {'fileName': 'seed.png'}, body,
                   {'Content-Type': ctype})
    assert st == 200, b
    while c.json('GET', f'{DS}/{WS}/batches/{batch}/count')['count'] < 1:
        time.sleep(0.1)
    c.close()
    s.stop()
    t0 = time.time()
    if be.kind == 'sqlite':
        db = sqlite3.connect(os.path.join(s.data, 'vbatch.db'))
        bid, = db.execute('SELECT bid FROM batches WHERE batch_id=?', (batch,)).fetchone()
        db.execute("WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
                   "INSERT INTO items(bid, part, name, shard_id, content_type, mime, blob_key, size, created_ms) "
                   "SELECT it.bid, it.part, printf('f%07d.png', g.i), it.shard_id, it.content_type, it.mime, "
                   "it.blob_key, it.size, it.created_ms FROM items it, g WHERE it.bid=?", (n - 1, bid))
        db.execute('UPDATE batches SET item_count=? WHERE bid=?', (n, bid))
        db.execute('UPDATE part_counts SET n=? WHERE bid=?', (n, bid))
        db.commit()
        db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        db.close()
    else:
        be.psql(f"""
            INSERT INTO items(bid, part, name, shard_id, content_type, mime, blob_key, size, created_ms)
              SELECT it.bid, it.part, 'f' || lpad(g::text, 7, '0') || '.png', it.shard_id, it.content_type,
                     it.mime, it.blob_key, it.size, it.created_ms
              FROM items it JOIN batches b ON b.bid = it.bid, generate_series(1, {n - 1}) g
              WHERE b.batch_id = '{batch}';
            UPDATE batches SET item_count = {n} WHERE batch_id = '{batch}';
            UPDATE part_counts SET n = {n} WHERE bid = (SELECT bid FROM batches WHERE batch_id = '{batch}');
            ANALYZE items;""")
    fill_s = time.time() - t0
    s.start()
    return fill_s


def timed(c, path, query, n):
    for _ in range(10):  # warm-up
        st, _ = c.call('GET', path, query)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        st, body = c.call('GET', path, query)
        ts.append((time.perf_counter() - t0) * 1000)
        assert st == 200, body[:300]
    return statistics.median(ts), pct(ts, 0.95), json.loads(body)


def list_load(s, batch, seconds, clients=8):
    """clients threads walking list pages (pageSize 100) of batch for
    `seconds`; returns pages/s and the server's maximum RSS meanwhile."""
    stop = time.time() + seconds
    pages = [0] * clients
    peak = [rss_kb(s.proc.pid)]

    def walker(i):
        c = s.conn()
        tok = None
        while time.time() < stop:
            q = {'pageSize': 100}
            if tok:
                q['nextPageToken'] = tok
            st, b = c.call('GET', f'{DS}/{WS}/batches/{batch}/list', q)
            assert st == 200, b[:300]
            tok = json.loads(b).get('nextPageToken')
            pages[i] += 1
        c.close()

    ths = [threading.Thread(target=walker, args=(i,)) for i in range(clients)]
    for t in ths:
        t.start()
    while any(t.is_alive() for t in ths):
        peak.append(rss_kb(s.proc.pid))
        time.sleep(0.05)
    for t in ths:
        t.join()
    return sum(pages) / seconds, max(peak)


def part_reads(a, kinds):
    res = {}
    for kind in kinds:
        tmp = tempfile.mkdtemp(prefix='vbatch-pgscale-r-', dir=a.dir)
        be = Backend(kind, a.pg, tmp)
        s = Serve(a.bin, tmp, be, ['--workers', '0']).start()
        try:
            time.sleep(1.0)
            line('rss', kind, state='idle_fresh', server_rss_kb=rss_kb(s.proc.pid))
            for n in a.sizes:
                batch = f'big-{n}'
                fill_s = fill(s, be, batch, n)
                c = s.conn()
                base = f'{DS}/{WS}/batches/{batch}'
                c50, c95, body = timed(c, base + '/count', {}, a.calls)
                assert body['count'] == n, body
                l50, l95, body = timed(c, base + '/list', {'pageSize': 100}, a.calls)
                tok = body['nextPageToken']
                for _ in range(4):
                    st, b = c.call('GET', base + '/list', {'pageSize': 100, 'nextPageToken': tok})
                    tok = json.loads(b)['nextPageToken']
                d50, d95, _ = timed(c, base + '/list', {'pageSize': 100, 'nextPageToken': tok}, a.calls)
                c.close()
                res[(kind, n)] = (c50, l50, d50)
                line('reads', kind, items=n, fill_s=f'{fill_s:.1f}', count_ms_p50=f'{c50:.2f}',
                     count_ms_p95=f'{c95:.2f}', list_ms_p50=f'{l50:.2f}', list_ms_p95=f'{l95:.2f}',
                     list_page6_ms_p50=f'{d50:.2f}', list_page6_ms_p95=f'{d95:.2f}', calls=a.calls)
            time.sleep(1.0)
            line('rss', kind, state=f'idle_after_{a.sizes[-1]}_items', server_rss_kb=rss_kb(s.proc.pid))
            rate, peak = list_load(s, f'big-{a.sizes[-1]}', a.load_s)
            line('rss', kind, state='list_load', clients=8, seconds=a.load_s, pages_per_s=f'{rate:.0f}',
                 server_rss_max_kb=peak)
            res[(kind, 'load')] = rate
        finally:
            s.stop()
            be.drop()
            shutil.rmtree(tmp, ignore_errors=True)
    if ('pg', a.sizes[-1]) in res and ('sqlite', a.sizes[-1]) in res:
        for n in a.sizes:
            p, q = res[('pg', n)], res[('sqlite', n)]
            line('reads_ratio', 'pg_vs_sqlite', items=n, count=f'{p[0] / q[0]:.2f}', list=f'{p[1] / q[1]:.2f}',
                 list_page6=f'{p[2] / q[2]:.2f}')
        line('reads_ratio', 'pg_vs_sqlite', list_load_pages_per_s=f'{res[("pg", "load")] / res[("sqlite", "load")]:.2f}')
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=os.path.join(REPO, 'build', 'vbatch'))
    ap.add_argument('--pg', default=os.environ.get('BENCH_DB', ''), help='libpq URI (required for pg figures)')
    ap.add_argument('--parts', default='workers,model,reads')
    ap.add_argument('--dbs', default='sqlite,pg')
    ap.add_argument('--procs', default='1,2,4,8')
    ap.add_argument('--tasks', type=int, default=400, help='one-image tasks of the workers part')
    ap.add_argument('--images', type=int, default=2000, help='images of the model part')
    ap.add_argument('--sizes', default='10000,1000000')
    ap.add_argument('--calls', type=int, default=200)
    ap.add_argument('--load-s', type=float, default=8.0)
    ap.add_argument('--quick', action='store_true', help='small sizes (a smoke run)')
    ap.add_argument('--dir', default=os.environ.get('BENCH_DIR') or None)
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    a.procs = [int(x) for x in a.procs.split(',')]
    a.sizes = [int(x) for x in a.sizes.split(',')]
    if a.quick:
        a.tasks, a.images, a.sizes, a.calls, a.load_s = 40, 200, [1000, 20000], 50, 2.0
    kinds = [k for k in a.dbs.split(',') if k in ('sqlite', 'pg')]
    if 'pg' in kinds and not a.pg:
        print('pg_scale: no --pg URI (or BENCH_DB): SQLite only', file=sys.stderr)
        kinds = ['sqlite']
    with open('/proc/loadavg') as f:
        load = f.read().split()[0]
    print(f'pg_scale setup bin={a.bin} cpus={os.cpu_count()} loadavg={load} dbs={",".join(kinds)}', flush=True)
    parts = a.parts.split(',')
    if 'workers' in parts:
        part_workers(a, kinds)
    if 'model' in parts:
        part_model(a, kinds)
    if 'reads' in parts:
        part_reads(a, kinds)


if __name__ == '__main__':
    main()
