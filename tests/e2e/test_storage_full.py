"""A full disk (issue 9 items 2, 3 and 7): the data folder is a small tmpfs
(the tests run as root; they are skipped otherwise), filled with a filler
file to the wanted free space.

- Error text stays with its request: two workspaces' requests run at once
  while writes fail; no answer names the other workspace's batches, and a
  failure for want of space is 507 "storage full: …", never a 500.
- Workflow PUT and job POST on a full disk answer 507 naming the cause.
- An acknowledged tar shard is never lost: a PUT that would not fit (the
  archive plus the reserve: a shard is kept whole, its images take no more
  room) is refused with 507 before the 200, leaving nothing behind, and the
  same URL works once there is room; a shard acknowledged while there was
  room, whose indexing then finds the disk below its reserve, waits
  ("waiting-for-storage") and is indexed once space returns, every image
  exactly once and byte for byte.
- A job task that finds the disk full is handed back ("waiting for
  storage"), not failed, and the job finishes once space returns.
"""
import http.client
import io
import json
import os
import random
import struct
import subprocess
import tarfile
import threading
import time
import urllib.parse
import zlib

import pytest

from conftest import MULT, Server, local_blobs_only, multipart
from jobs_helpers import CROP_WF, bp, download_export, job_body, results_rows, stage_pngs, wait_job

WF = '/workflows/v1/external'
MIB = 1 << 20


def noise_png(seed, side=160):
    """A PNG of random pixels (incompressible: about 3 x side^2 bytes)."""
    rnd = random.Random(seed)
    raw = b''.join(b'\x00' + rnd.randbytes(side * 3) for _ in range(side))

    def chunk(kind, data):
        c = struct.pack('>I', len(data)) + kind + data
        return c + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', side, side, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(raw, 0)) + chunk(b'IEND', b''))


def tar_of(files):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=tarfile.USTAR_FORMAT) as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(data_dir, leave):
    """Grow data_dir/filler until `leave` bytes are free (or none)."""
    path = os.path.join(data_dir, 'filler')
    with open(path, 'ab') as f:
        while True:
            want = free_bytes(data_dir) - leave
            if want <= 0:
                break
            try:
                f.write(b'\0' * min(want, 4 * MIB))
                f.flush()
            except OSError:
                break
    return path


def unfill(data_dir):
    try:
        os.unlink(os.path.join(data_dir, 'filler'))
    except FileNotFoundError:
        pass


@pytest.fixture
def tmpfs_server(tmpdir_path):
    """make(size_mib, args, env): a server whose data folder is a tmpfs."""
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    made = []

    def make(size_mib, args=(), env=None):
        d = os.path.join(tmpdir_path, f's{len(made)}')
        data = os.path.join(d, 'data')
        os.makedirs(data)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_mib}m', 'tmpfs', data], check=True)
        s = Server(d, args=args, env=env)
        made.append(s)
        s.start()
        return s
    yield make
    for s in made:
        try:
            if s.proc and s.proc.poll() is None:
                rc = s.stop()
                assert rc == 0, f'vbatch exited with {rc} on SIGTERM: {s.tail_log()}'
        finally:
            subprocess.run(['umount', '-l', s.data], check=False)


def put_workflow(s, wf_id, definition):
    return s.request('PUT', f'{WF}/{s.workspace}/workflows/{wf_id}', body=json.dumps(definition).encode(),
                     headers={'Content-Type': 'application/json'})


def new_workspace(s, name):
    out = s.cli('workspace', 'create', name)
    assert out.returncode == 0, out.stderr
    return [l.split()[1] for l in out.stdout.splitlines() if l.startswith('api_key: ')][0]


def error_of(r):
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get('error'), str), (r.status, r.body[:300])
    return body['error']


def test_full_disk_errors_stay_with_their_request(tmpfs_server):
    # reserve 0: the writes themselves fail (ENOSPC, SQLITE_FULL), nothing is refused up front
    s = tmpfs_server(48, args=['--storage-reserve', '0'])
    keys = {'wsa': new_workspace(s, 'wsa'), 'wsb': new_workspace(s, 'wsb')}
    for ws in keys:
        ct, body = multipart([('a.png', 'a.png', noise_png(1, 16))])
        ok = s.ds('POST', f'/{ws}-private-kept/upload/image', workspace=ws, key=keys[ws],
                  query={'fileName': 'a.png'}, body=body, headers={'Content-Type': ct})
        assert ok.status == 200, ok
        wf = s.request('PUT', f'{WF}/{ws}/workflows/crop', key=keys[ws], body=json.dumps(CROP_WF).encode(),
                       headers={'Content-Type': 'application/json'})
        assert wf.status == 200, wf
    fill(s.data, 0)
    assert free_bytes(s.data) < 64 * 1024

    answers = []
    lock = threading.Lock()
    big_wf = dict(CROP_WF, description='x' * (512 * 1024))  # more pages than the WAL has room for

    def worker(ws, other):
        for i in range(6):
            calls = []
            ct, body = multipart([('p.png', 'p.png', noise_png(100 + i, 64))])
            calls.append(('upload', s.ds('POST', f'/{ws}-private-up{i}/upload/image', workspace=ws, key=keys[ws],
                                         query={'fileName': 'p.png'}, body=body, headers={'Content-Type': ct},
                                         check=False)))
            calls.append(('bulk', s.ds('POST', f'/{ws}-private-bulk{i}/bulk-upload/image-files', workspace=ws,
                                       key=keys[ws], check=False)))
            calls.append(('missing', s.ds('GET', f'/{ws}-private-missing{i}/count', workspace=ws, key=keys[ws],
                                          check=False)))
            calls.append(('workflow', s.request('PUT', f'{WF}/{ws}/workflows/big{i}', key=keys[ws],
                                                body=json.dumps(big_wf).encode(),
                                                headers={'Content-Type': 'application/json'})))
            r = s.request('POST', f'/batch-processing/v1/external/{ws}/jobs/{ws}-job{i}', key=keys[ws],
                          body=json.dumps(job_body(f'{ws}-private-kept', 'crop', ws=ws)).encode(),
                          headers={'Content-Type': 'application/json'})
            calls.append(('job', r))
            with lock:
                answers.extend((ws, other, kind, r) for kind, r in calls)

    ths = [threading.Thread(target=worker, args=('wsa', 'wsb')), threading.Thread(target=worker, args=('wsb', 'wsa'))]
    for t in ths:
        t.start()
    for t in ths:
        t.join(120 * MULT)
    assert len(answers) == 60
    full = 0
    for ws, other, kind, r in answers:
        text = r.body.decode(errors='replace')
        assert other not in text, (ws, kind, r.status, text)
        if r.status == 200:
            assert kind in ('bulk', 'job'), (ws, kind, text)  # a write that fit in the database's WAL
            continue
        msg = error_of(r)
        if kind == 'missing':
            assert r.status == 404 and f"'{ws}-private-missing" in msg, (r.status, msg)
            continue
        assert r.status == 507, (ws, kind, r.status, msg)
        assert msg.startswith('storage full'), msg
        full += 1
    by_kind = {k: [r.status for w, o, kk, r in answers if kk == k] for k in ('upload', 'workflow')}
    assert set(by_kind['upload']) == {507}, by_kind
    assert set(by_kind['workflow']) == {507}, by_kind
    assert full >= 24
    # space back: the same requests go through
    unfill(s.data)
    ct, body = multipart([('p.png', 'p.png', noise_png(7, 64))])
    r = s.ds('POST', '/wsa-private-up0/upload/image', workspace='wsa', key=keys['wsa'],
             query={'fileName': 'p.png'}, body=body, headers={'Content-Type': ct})
    assert r.status == 200, r


def test_workflow_put_and_job_post_name_a_full_disk(tmpfs_server):
    s = tmpfs_server(32, args=['--storage-reserve', str(2 * MIB)])
    assert put_workflow(s, 'crop', CROP_WF).status == 200
    ct, body = multipart([('a.png', 'a.png', noise_png(3, 16))])
    assert s.ds('POST', '/b1/upload/image', query={'fileName': 'a.png'}, body=body,
                headers={'Content-Type': ct}).status == 200
    fill(s.data, MIB)  # under the reserve
    r = put_workflow(s, 'crop2', CROP_WF)
    assert r.status == 507, r
    assert error_of(r).startswith('storage full'), r
    r = bp(s, 'POST', '/j1', body=job_body('b1', 'crop'), check=False)
    assert r.status == 507, r
    msg = error_of(r)
    assert msg.startswith('storage full') and 'job' in msg, msg
    assert bp(s, 'GET', '/j1', check=False).status == 404  # nothing half-made
    unfill(s.data)
    assert put_workflow(s, 'crop2', CROP_WF).status == 200
    assert bp(s, 'POST', '/j1', body=job_body('b1', 'crop')).status == 200


def shard_files(n, seed):
    return {f'img{i:03d}.png': noise_png(seed * 1000 + i) for i in range(n)}


def check_items(s, batch, files):
    r = s.ds('GET', f'/{batch}/list', query={'pageSize': 1000})
    assert r.status == 200, r
    got = {}
    for f in r.json()['filesMetadata']:
        d = s.raw('GET', f['downloadURL'])
        assert d.status == 200, d
        assert f['fileName'] not in got, f['fileName']  # exactly once
        got[f['fileName']] = d.body
    assert sorted(got) == sorted(files)
    for name, data in files.items():
        assert got[name] == data, name


@local_blobs_only  # the PUT's bytes on the full local disk (on S3 the client PUTs to the store)
def test_tar_put_refused_up_front_when_it_would_not_fit(tmpfs_server):
    s = tmpfs_server(24, args=['--storage-reserve', str(256 * 1024)])
    files = shard_files(26, 1)  # 26 x 77 KB: a 2 MiB archive
    tar = tar_of(files)
    assert 1.9 * MIB < len(tar) < 2.2 * MIB
    r = s.ds('POST', '/bulk1/bulk-upload/image-files')
    assert r.status == 200, r
    d = r.json()['signedURLDetails']
    fill(s.data, int(2.0 * MIB))  # less than the archive plus the reserve
    before = free_bytes(s.data)
    put = s.raw('PUT', d['uploadURL'], body=tar)
    assert put.status == 507, put
    msg = error_of(put)
    assert msg.startswith('storage full'), msg
    # nothing half-written: no temp file, no archive, the space is free again
    assert os.listdir(os.path.join(s.data, 'tmp')) == []
    blobs = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(s.data, 'blobs')) for f in fs]
    assert not [b for b in blobs if b.endswith('.tar')], blobs
    assert abs(free_bytes(s.data) - before) < 256 * 1024
    sh = s.ds('GET', '/bulk1/shards').json()['shards']
    assert [x['statusName'] for x in sh] == ['awaiting-upload'], sh
    # chunked (no Content-Length): refused before the 200 as well
    u = urllib.parse.urlsplit(d['uploadURL'])
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60 * MULT)
    c.request('PUT', u.path + '?' + u.query, body=iter([tar[:MIB], tar[MIB:]]), encode_chunked=True)
    resp = c.getresponse()
    status, text = resp.status, resp.read()
    c.close()
    assert status == 507, (status, text)
    assert os.listdir(os.path.join(s.data, 'tmp')) == []
    # with room again the same URL takes it, and every image arrives
    unfill(s.data)
    put = s.raw('PUT', d['uploadURL'], body=tar)
    assert put.status == 200, put
    assert s.wait_count('bulk1', len(files)) == len(files)
    check_items(s, 'bulk1', files)


@local_blobs_only  # a PUT to vbatch acknowledged on the full local disk (on S3: to the store)
def test_shard_that_finds_the_disk_full_waits_and_is_indexed_later(tmpfs_server):
    s = tmpfs_server(24, args=['--storage-reserve', str(256 * 1024)],
                     env={'VBATCH_STAGING_INDEX_DELAY_MS': str(int(1500 * MULT))})
    files = shard_files(26, 2)
    tar = tar_of(files)
    d, put = s.put_shard('bulk2', tar)
    assert put.status == 200, put  # acknowledged: there was room then
    fill(s.data, 128 * 1024)  # below the reserve: the index rows will not fit now
    deadline = time.time() + 30 * MULT
    status = None
    while time.time() < deadline:
        sh = s.ds('GET', '/bulk2/shards').json()['shards']
        status = sh[0]['statusName']
        if status == 'waiting-for-storage':
            break
        assert status == 'uploaded', sh
        time.sleep(0.1)
    assert status == 'waiting-for-storage', sh
    assert sh[0]['statusType'] == 'info'
    assert 'storage full' in sh[0]['statusMetadata']['reason'], sh
    assert s.ds('GET', '/bulk2/count').json()['count'] == 0
    time.sleep(2 * MULT)  # retried meanwhile, still waiting, nothing lost
    sh = s.ds('GET', '/bulk2/shards').json()['shards']
    assert sh[0]['statusName'] == 'waiting-for-storage', sh
    assert s.raw('PUT', d['uploadURL'], body=tar).status == 409  # the upload is kept, not asked again
    unfill(s.data)
    assert s.wait_count('bulk2', len(files), timeout=60) == len(files)
    sh = s.ds('GET', '/bulk2/shards').json()['shards']
    assert sh[0]['statusName'] == 'ingested' and sh[0]['shardObjectsCount'] == len(files), sh
    check_items(s, 'bulk2', files)


def test_job_that_finds_the_disk_full_waits_and_finishes_later(tmpfs_server):
    s = tmpfs_server(48, args=['--storage-reserve', str(256 * 1024)],
                     env={'VBATCH_JOBS_ITEM_DELAY_MS': str(int(300 * MULT))})
    assert put_workflow(s, 'crop', CROP_WF).status == 200
    names = stage_pngs(s, 'jb', 4)
    r = bp(s, 'POST', '/jf1', body=job_body('jb', 'crop', persist=True))
    assert r.status == 200, r
    fill(s.data, 96 * 1024)  # under the reserve: the task stops at its next image
    deadline = time.time() + 60 * MULT
    msg = None
    while time.time() < deadline:
        tasks = bp(s, 'GET', '/jf1/stages/processing/tasks').json()['tasks']
        msgs = [t['notification']['message'] for t in tasks]
        msg = next((m for m in msgs if m.startswith('waiting for storage')), None)
        if msg:
            break
        time.sleep(0.1)
    assert msg and 'storage full' in msg, msgs
    job = bp(s, 'GET', '/jf1').json()['job']
    assert not job['isTerminal'] and not job['error'], job
    unfill(s.data)
    job = wait_job(s, 'jf1', timeout=120)
    assert job['error'] is False, job
    rows = results_rows(download_export(s, 'jf1'))
    assert sorted(r['image'] for r in rows) == sorted(names)


@local_blobs_only  # fetched bytes written to the full local disk (on S3 they go to the store)
def test_reference_shard_that_finds_the_disk_full_waits_and_is_fetched_later(tmpfs_server):
    import http.server
    files = {f'r{i}.png': noise_png(5000 + i) for i in range(6)}  # 6 x 77 KB

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = files.get(self.path.lstrip('/'))
            self.send_response(200 if body else 404)
            self.send_header('Content-Length', str(len(body or b'')))
            self.end_headers()
            self.wfile.write(body or b'')

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        # reserve 0: the ingest is accepted, the fetched files then do not fit
        s = tmpfs_server(24, args=['--storage-reserve', '0', '--allow-private-urls'])
        fill(s.data, 160 * 1024)
        refs = [{'name': n, 'url': f'http://127.0.0.1:{httpd.server_address[1]}/{n}'} for n in files]
        r = s.ds('POST', '/refs1/bulk-upload/image-references', body=json.dumps({'imageReferences': refs}).encode(),
                 headers={'Content-Type': 'application/json'})
        assert r.status == 200, r
        deadline = time.time() + 30 * MULT
        status = None
        while time.time() < deadline:
            sh = s.ds('GET', '/refs1/shards').json()['shards']
            status = sh[0]['statusName']
            if status == 'waiting-for-storage':
                break
            assert sh[0]['statusType'] != 'error', sh
            time.sleep(0.1)
        assert status == 'waiting-for-storage', sh
        assert 'storage full' in sh[0]['statusMetadata']['reason'], sh
        assert s.ds('GET', '/refs1/count').json()['count'] == 0
        unfill(s.data)
        assert s.wait_count('refs1', len(files), timeout=60) == len(files)
        sh = s.ds('GET', '/refs1/shards').json()['shards']
        assert sh[0]['statusName'] == 'ingested' and sh[0]['shardObjectsCount'] == len(files), sh
        check_items(s, 'refs1', files)
    finally:
        httpd.shutdown()
        httpd.server_close()
