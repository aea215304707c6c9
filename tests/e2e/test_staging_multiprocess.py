"""Two `vbatch serve` processes on one database and one data folder
(docs/STORAGE.md, "Claims across processes"): a tar shard is indexed and a
reference shard fetched by one process at a time, a killed process's shard is taken over by the other
once its claim expires (not before: the live owner renews it), every image
is indexed exactly once, and the expiry sweeper runs in one process at a
time.  Runs on SQLite (two processes on one data folder) and on the
PostgreSQL database of VBATCH_TEST_PG (skipped when it is unset)."""
import collections
import http.server
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import MULT, Server, make_tar, picks_its_database, png_bytes

pytestmark = picks_its_database  # its own schema / both backends: not again in the [pg] pass

PG = os.environ.get('VBATCH_TEST_PG', '')
LEASE_MS = 3000
SHARDS, PER_SHARD = 8, 5


def _psql(sql):
    subprocess.run(['psql', '-X', '-q', PG, '-c', sql], check=True, capture_output=True, timeout=30)


@pytest.fixture(params=['sqlite', 'pg'])
def backend(request):
    """The VBATCH_DB both servers share ('' = SQLite in the data folder)."""
    if request.param == 'sqlite':
        yield ''
        return
    if not PG:
        pytest.skip('VBATCH_TEST_PG is not set')
    name = f'mp_{os.getpid()}_{int(time.time() * 1000)}'
    _psql('CREATE SCHEMA ' + name)
    sep = '&' if '?' in PG else '?'
    yield PG + sep + 'options=' + urllib.parse.quote('-csearch_path=' + name)
    _psql(f'DROP SCHEMA IF EXISTS {name} CASCADE')


def _log(s):
    with open(s.log_path, 'rb') as f:
        return f.read().decode(errors='replace')


def _claims(s):
    return re.findall(r'shard claimed shard=(\S+)', _log(s))


def _ingested(s):
    return re.findall(r'shard ingested shard=(\S+)', _log(s))


def _sweeper_taken(s):
    return len(re.findall(r'expiry sweeper lease taken', _log(s)))


def _wait(pred, timeout, what):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError('timed out waiting for ' + what)


def test_two_serve_processes_share_the_shard_work(tmpdir_path, backend):
    env = {'VBATCH_DB': backend, 'VBATCH_STAGING_CLAIM_LEASE_MS': str(LEASE_MS)}
    args = ['--workers', '0', '--sweep-interval', '1']
    # one data folder (blobs, secret) for both; a log each.  s1 is slow: it
    # holds the first shard it claims for 60 s, long enough to be killed
    # with the claim in hand
    s1 = Server(tmpdir_path, args=args, env=dict(env, VBATCH_STAGING_INDEX_DELAY_MS='60000'))
    s2 = Server(tmpdir_path, args=args, env=dict(env, VBATCH_STAGING_INDEX_DELAY_MS='300'))
    s2.log_path = os.path.join(tmpdir_path, 'server2.log')
    try:
        s1.start()
        s2.key = s1.key  # the second start on one database prints no new key
        s2.start()
        # upload through both processes
        for k in range(SHARDS):
            s = (s1, s2)[k % 2]
            tar = make_tar([(f's{k}-{i}.png', png_bytes(k * 100 + i)) for i in range(PER_SHARD)])
            d, put = s.put_shard('mp', tar)
            assert put.status == 200, put
        _wait(lambda: _claims(s1), 30, 'a claim by the first process')
        held = _claims(s1)[0]
        # the holder renews its claim: the other process leaves the shard
        # alone well past one lease, and does the rest meanwhile
        time.sleep(1.5 * LEASE_MS / 1000)
        assert held not in _claims(s2)
        assert _claims(s1) == [held]  # one shard at a time, still the first
        # exactly one process holds the sweeper's lease
        _wait(lambda: _sweeper_taken(s1) + _sweeper_taken(s2) >= 1, 20, 'the sweeper lease')
        assert _sweeper_taken(s1) + _sweeper_taken(s2) == 1
        sweeper_was_s1 = _sweeper_taken(s1) == 1
        # kill -9 the holder: its shard is taken over once the claim expires
        s1.kill9()
        killed = time.time()
        assert s2.wait_count('mp', SHARDS * PER_SHARD, timeout=60) == SHARDS * PER_SHARD
        assert time.time() - killed < (LEASE_MS / 1000 + 30) * MULT
        c2 = _claims(s2)
        assert sorted(c2) == sorted(set(c2)), c2  # no shard claimed twice
        assert held in c2 and len(c2) == SHARDS, (held, c2)
        assert sorted(_ingested(s2)) == sorted(c2) and _ingested(s1) == []
        # every image exactly once
        names, token = [], None
        while True:
            q = {'pageSize': 100}
            if token:
                q['nextPageToken'] = token
            page = s2.ds('GET', '/mp/list', query=q).json()
            names += [f['fileName'] for f in page['filesMetadata']]
            token = page['nextPageToken']
            if token is None:
                break
        want = sorted(f's{k}-{i}.png' for k in range(SHARDS) for i in range(PER_SHARD))
        assert sorted(names) == want
        # the sweeper moves to the survivor when the dead holder's lease ends
        if sweeper_was_s1:
            _wait(lambda: _sweeper_taken(s2) == 1, 20, 'the sweeper lease taken over')
        # a restart of the killed process finds nothing left to do
        s1.start(same_port=True)
        time.sleep(1.5)
        assert _claims(s1) == [held]
        r = s1.ds('GET', '/mp/count')
        assert r.status == 200 and r.json()['count'] == SHARDS * PER_SHARD
    finally:
        for s in (s1, s2):
            if s.proc and s.proc.poll() is None:
                rc = s.stop()
                assert rc == 0, f'vbatch exited with {rc} on SIGTERM: {s.tail_log()}'


class SlowOrigin:
    """GET /img/<n>.png: a PNG after a short wait; counts the GETs per path."""

    def __init__(self, n, delay):
        self.images = {f'/img/{i}.png': png_bytes(5000 + i) for i in range(n)}
        self.gets = collections.Counter()
        lock = threading.Lock()
        origin = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                with lock:
                    origin.gets[self.path] += 1
                time.sleep(delay)
                body = origin.images.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header('Content-Length', str(len(body or b'')))
                self.end_headers()
                self.wfile.write(body or b'')

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_two_serve_processes_fetch_each_reference_once(tmpdir_path, backend):
    env = {'VBATCH_DB': backend, 'VBATCH_STAGING_CLAIM_LEASE_MS': str(LEASE_MS)}
    args = ['--workers', '0', '--allow-private-urls']
    ingests, per = 8, 4
    origin = SlowOrigin(ingests * per, 0.3)
    s1 = Server(tmpdir_path, args=args, env=env)
    s2 = Server(tmpdir_path, args=args, env=env)
    s2.log_path = os.path.join(tmpdir_path, 'server2.log')
    try:
        s1.start()
        s2.key = s1.key
        s2.start()
        for k in range(ingests):
            refs = [{'name': f'r{k}-{i}.png', 'url': f'http://127.0.0.1:{origin.port}/img/{k * per + i}.png'}
                    for i in range(per)]
            r = (s1, s2)[k % 2].ds('POST', '/mpr/bulk-upload/image-references',
                                   body=json.dumps({'imageReferences': refs, 'ingestId': f'mpr-{k}'}))
            assert r.status == 200, r
        total = ingests * per
        assert s1.wait_count('mpr', total, timeout=60) == total
        time.sleep(0.5)
        # every reference fetched once, by one process or the other
        assert sorted(origin.gets) == sorted(origin.images), origin.gets
        assert set(origin.gets.values()) == {1}, origin.gets
        c1, c2 = _claims(s1), _claims(s2)
        assert len(c1) + len(c2) == len(set(c1) | set(c2)) == ingests, (c1, c2)
        assert c1 and c2  # both processes took part
        assert s2.ds('GET', '/mpr/count').json()['count'] == total
    finally:
        origin.close()
        for s in (s1, s2):
            if s.proc and s.proc.poll() is None:
                rc = s.stop()
                assert rc == 0, f'vbatch exited with {rc} on SIGTERM: {s.tail_log()}'
