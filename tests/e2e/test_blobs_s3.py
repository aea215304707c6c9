"""--blobs / VBATCH_BLOBS: the blob store on S3-compatible object storage.

Start-up errors (one line on stderr, exit status 2, never the secret): a
bad URL, missing credentials, an unreachable endpoint; with VBATCH_TEST_S3
(scripts/test.sh starts a throwaway radosgw with scripts/s3-up.sh) also
wrong credentials and a missing bucket, and a server whose blobs are all on
radosgw: single uploads, tar shards through vbatch's signed URLs, a job
with persisted images and its export downloads; the objects of an expired
batch are deleted."""
import json
import os
import socket
import subprocess
import time
import uuid
import urllib.parse

import pytest

from conftest import BIN, E2E_PG, MULT, Proxy, Server, db_env, need_s3, png_bytes, s3_blobs, s3_prefix_url, s3_proxy
from jobs_helpers import CROP_WF, bp, download_export, job_body, list_files, put_workflow, results_rows, stage_pngs, wait_job

S3 = os.environ.get('VBATCH_TEST_S3', '')
SECRET = 'sEcReT-never-printed-42'
# every test here sets its own --blobs / VBATCH_BLOBS: not run again in the
# suite's S3 pass (VBATCH_E2E_BLOBS=s3)
pytestmark = pytest.mark.picks_its_blobs


def run(*args, env=None, timeout=60):
    e = dict(os.environ)
    for k in ('VBATCH_DB', 'VBATCH_BLOBS', 'VBATCH_BLOBS_CREDENTIALS', 'AWS_SESSION_TOKEN'):
        e.pop(k, None)
    e.update({'AWS_ACCESS_KEY_ID': 'AKIDTEST', 'AWS_SECRET_ACCESS_KEY': SECRET})
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout * MULT, env=e)


def error_lines(p):
    """stderr without the log lines (timestamped)."""
    return [l for l in p.stderr.splitlines() if l and not l[:4].isdigit()]


def one_error(p, want):
    assert p.returncode == 2, p.stderr
    lines = error_lines(p)
    assert len(lines) == 1 and want in lines[0], p.stderr
    assert SECRET not in p.stderr + p.stdout
    return lines[0]


COMMANDS = (['serve'], ['worker'], ['model', 'list'])


def test_bad_url_exit_2(tmp_path):
    for cmd in COMMANDS:
        for url in ('s3://', 'file:///x', 's3://Bad_Bucket', 's3://bucket?endpoint=ftp://h',
                    's3://bucket?what=1', 's3://bucket/../x'):
            p = run(*cmd, '--data', str(tmp_path), '--blobs', url)
            one_error(p, 'bad blob store URL')
    p = run('serve', '--data', str(tmp_path), env={'VBATCH_BLOBS': 's3://bucket?path_style=yes'})
    one_error(p, 'path_style must be 0 or 1')


def test_missing_credentials_exit_2(tmp_path):
    env = {'AWS_ACCESS_KEY_ID': '', 'AWS_SECRET_ACCESS_KEY': ''}
    p = run('serve', '--data', str(tmp_path), '--blobs', 's3://bucket?endpoint=http://127.0.0.1:1', env=env)
    one_error(p, 'no object store credentials')
    p = run('serve', '--data', str(tmp_path), '--blobs', 's3://bucket?endpoint=http://127.0.0.1:1',
            '--blobs-credentials', str(tmp_path / 'nope'), env=env)
    one_error(p, 'cannot read the credentials file')


def test_unreachable_endpoint_exit_2(tmp_path):
    for cmd in COMMANDS:
        p = run(*cmd, '--data', str(tmp_path), '--blobs', 's3://bucket?endpoint=http://127.0.0.1:1&path_style=1')
        one_error(p, 'cannot reach the object store at http://127.0.0.1:1')


def s3_parts():
    u = urllib.parse.urlsplit(S3)
    q = dict(urllib.parse.parse_qsl(u.query))
    return u.netloc, u.path.strip('/'), q




@need_s3
def test_wrong_credentials_and_missing_bucket_exit_2(tmp_path):
    creds = tmp_path / 'creds'
    creds.write_text(f'AWS_ACCESS_KEY_ID={os.environ["AWS_ACCESS_KEY_ID"]}\nAWS_SECRET_ACCESS_KEY={SECRET}\n')
    for cmd in COMMANDS:
        p = run(*cmd, '--data', str(tmp_path), '--blobs', S3, '--blobs-credentials', str(creds))
        one_error(p, 'refused the credentials')
    bucket, pre, q = s3_parts()
    env = {'AWS_ACCESS_KEY_ID': os.environ['AWS_ACCESS_KEY_ID'],
           'AWS_SECRET_ACCESS_KEY': os.environ['AWS_SECRET_ACCESS_KEY']}
    p = run('serve', '--data', str(tmp_path), '--blobs', 's3://no-such-bucket-e2e?' + urllib.parse.urlencode(q),
            env=env)
    one_error(p, "no such bucket 'no-such-bucket-e2e'")
    assert os.environ['AWS_SECRET_ACCESS_KEY'] not in p.stderr


def with_prefix(prefix):
    """The VBATCH_BLOBS of PREFIX of the test bucket (conftest.s3_prefix_url;
    under this name for the modules that import it from here)."""
    return s3_prefix_url(prefix)


def s3_keys(prefix):
    """Keys under prefix in the test bucket."""
    return s3_blobs(prefix).keys()


def s3_get(prefix, key):
    """The bytes of object prefix/key (a signed GET with curl)."""
    bucket, pre, q = s3_parts()
    full = f'{pre}/{prefix}' if pre else prefix
    return subprocess.run(['curl', '-sf', '--aws-sigv4', f'aws:amz:{q.get("region", "us-east-1")}:s3', '--user',
                           f'{os.environ["AWS_ACCESS_KEY_ID"]}:{os.environ["AWS_SECRET_ACCESS_KEY"]}',
                           '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD', f'{q["endpoint"]}/{bucket}/{full}/{key}'],
                          capture_output=True, timeout=30, check=True).stdout


@need_s3
def test_serve_with_blobs_on_s3(tmp_path):
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    env = {'VBATCH_BLOBS': s3_prefix_url(prefix)}
    s = Server(str(tmp_path), env=env).start()
    try:
        put_workflow(s, 'crop', CROP_WF)
        stage_pngs(s, 'single', 6)
        stage_pngs(s, 'bulk', 20, bulk=True, seed=100)
        keys = s3_keys(prefix)
        # a single upload is an object, a tar shard one object for all its
        # images (kept whole); nothing is kept in the data folder
        bkeys = [k for k in keys if k.startswith('b/')]
        assert len([k for k in bkeys if '/i/' in k]) == 6, keys
        assert len([k for k in bkeys if '/s/' in k and k.endswith('.tar')]) == 1 and len(bkeys) == 7, keys
        local = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(s.data, 'blobs')) for f in fs]
        assert local == [], local
        # an item downloads from its /list URL
        files = list_files(s, 'single')
        r = s.raw('GET', files[0]['downloadURL'])
        assert r.status == 200 and r.body[:4] == b'\x89PNG', r
        # an image of the shard downloads as exactly its bytes (a range of the shard)
        fb = {f['fileName']: f for f in list_files(s, 'bulk')}
        r = s.raw('GET', fb['img-0003.png']['downloadURL'])
        assert r.status == 200 and r.body == png_bytes(103), r
        # a job reads its items from the store and writes results and images there
        r = bp(s, 'POST', '/e2e-s3', job_body('bulk', 'crop', fmt='csv', persist=True,
                                              spec={'imagesOutputsToBePersisted': ['crop']}))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-s3')
        assert job['error'] is False, job
        exp = download_export(s, 'e2e-s3')
        rows = results_rows(exp, 'csv')
        assert sorted(r['image'] for r in rows) == [f'img-{i:04d}.png' for i in range(20)]
        assert sorted(exp['members']) == sorted(f'img-{i:04d}.png/crop.jpg' for i in range(20))
        local = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(s.data, 'blobs')) for f in fs]
        assert local == [], local
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()
    assert os.environ['AWS_SECRET_ACCESS_KEY'] not in s.tail_log(100000)


@need_s3
def test_expiry_deletes_the_objects(tmp_path):
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--batch-expiry', '3', '--sweep-interval', '1'],
               env={'VBATCH_BLOBS': s3_prefix_url(prefix)}).start()
    try:
        stage_pngs(s, 'short', 3)
        stage_pngs(s, 'short-bulk', 5, bulk=True)
        assert len(s3_keys(prefix)) == 4  # 3 single uploads, the shard kept whole as one object
        deadline = time.time() + 30 * MULT
        while time.time() < deadline and s3_keys(prefix):
            time.sleep(0.5)
        assert s3_keys(prefix) == []
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_video_upload_and_job_on_s3(tmp_path):
    from test_jobs_video import FRAMES, VID, stage_video, video_body
    if not os.path.exists(VID):
        pytest.skip(f'{VID} missing (python3-imageio)')
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), env={'VBATCH_BLOBS': s3_prefix_url(prefix)}).start()
    try:
        put_workflow(s, 'crop', CROP_WF)
        with open(VID, 'rb') as f:
            stage_video(s, 'clips', 'a.mp4', f.read())
        assert s.wait_count('clips', 1) == 1
        assert any(k.startswith('b/') and '/v/' in k for k in s3_keys(prefix))
        r = bp(s, 'POST', '/vs3', video_body('clips', 'crop'))
        assert r.status == 200, r
        job = wait_job(s, 'vs3')
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'vs3'), 'jsonl')
        assert [r['frame_number'] for r in rows] == list(range(1, FRAMES + 1))
        local = [f for _, _, fs in os.walk(os.path.join(s.data, 'blobs')) for f in fs]
        assert local == [], local
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_model_commands_on_s3(tmp_path):
    from conftest import REPO
    det = os.path.join(REPO, 'tests', 'data', 'models', 'synth-det')
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    env = {'AWS_ACCESS_KEY_ID': os.environ['AWS_ACCESS_KEY_ID'],
           'AWS_SECRET_ACCESS_KEY': os.environ['AWS_SECRET_ACCESS_KEY'], 'VBATCH_BLOBS': s3_prefix_url(prefix)}
    data = tmp_path / 'data'
    env.update(db_env(str(data)))  # the database the server below opens (the [pg] pass: PostgreSQL)
    p = run('model', 'register', 'cli/1', det, '--data', str(data), env=env)
    assert p.returncode == 0 and 'registered: cli/1' in p.stdout, p.stderr
    keys = s3_keys(prefix)
    assert sorted(k.rsplit('/', 1)[1] for k in keys) == ['metadata.json', 'weights.onnx'], keys
    assert all(k.startswith('models/cli--1/') for k in keys), keys
    assert not [f for _, _, fs in os.walk(data / 'blobs') for f in fs]
    # a server on the same data folder and bucket runs a job with it
    from jobs_helpers import DET_WF, ort_env
    s = Server(str(tmp_path), env=dict(ort_env(str(tmp_path)), VBATCH_BLOBS=s3_prefix_url(prefix))).start()
    try:
        wf = json.loads(json.dumps(DET_WF).replace('synth-det', 'cli/1'))
        put_workflow(s, 'det', wf)
        stage_pngs(s, 'pics', 3)
        r = bp(s, 'POST', '/e2e-det', job_body('pics', 'det'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-det')
        assert job['error'] is False, job
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()
    p = run('model', 'delete', 'cli/1', '--data', str(data), env=env)
    assert p.returncode == 0 and 'deleted: cli/1' in p.stdout, p.stderr
    assert [k for k in s3_keys(prefix) if k.startswith('models/')] == []


@need_s3
def test_store_going_away_gives_503_and_jobs_wait(tmp_path):
    px = s3_proxy()
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), env={'VBATCH_BLOBS': s3_prefix_url(prefix, endpoint=f'http://127.0.0.1:{px.port}')}).start()
    try:
        put_workflow(s, 'crop', CROP_WF)
        stage_pngs(s, 'pics', 6)
        px.down()
        from conftest import png_bytes
        t0 = time.time()
        r = s.upload_image('pics', 'late.png', png_bytes(99))
        assert r.status == 503, r
        assert 'blob store cannot be reached' in r.json()['error'], r
        assert time.time() - t0 < 20 * MULT
        # a job started now waits for the store instead of failing its images
        r = bp(s, 'POST', '/e2e-away', job_body('pics', 'crop'))
        assert r.status == 200, r
        time.sleep(3)
        job = bp(s, 'GET', '/e2e-away').json()['job']
        assert job['isTerminal'] is False, job
        px.up()
        job = wait_job(s, 'e2e-away')
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'e2e-away'), 'jsonl')
        assert sorted(r['image'] for r in rows) == [f'img-{i:04d}.png' for i in range(6)]
        r = s.upload_image('pics', 'late.png', png_bytes(99))
        assert r.status == 200, r
        assert 'waiting for storage' in s.tail_log(200000)
    finally:
        rc = s.stop()
        px.down()
    assert rc == 0, s.tail_log()


@need_s3
def test_a_job_with_sidecars_waits_for_the_store(tmp_path):
    """A job whose images take parameters from their sidecars
    (imagesMetadataInputsMapping) started while the store is away and
    back while its task runs: no image is failed for want of the store
    (a sidecar that cannot be read for that reason hands the task back,
    as the image's own bytes do), and every image runs with its own
    parameter."""
    from conftest import make_tar
    px = s3_proxy()
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), env={'VBATCH_BLOBS': s3_prefix_url(prefix, endpoint=f'http://127.0.0.1:{px.port}'),
                                   'VBATCH_JOBS_ITEM_DELAY_MS': '300'}).start()
    try:
        put_workflow(s, 'crop', CROP_WF)
        ents = []
        for i in range(12):
            ents += [(f'i{i:02d}.png', png_bytes(i)), (f'i{i:02d}.png.json', json.dumps({'label': f'L{i}'}).encode())]
        _, put = s.put_shard('meta', make_tar(ents))
        assert put.status == 200, put
        assert s.wait_count('meta', 24) == 24
        px.down()
        r = bp(s, 'POST', '/meta-away', job_body('meta', 'crop', spec={'imagesMetadataInputsMapping': {'tag': 'label'}}))
        assert r.status == 200, r
        time.sleep(2)  # the store comes back while the task runs (images 0.3 s each)
        assert bp(s, 'GET', '/meta-away').json()['job']['isTerminal'] is False
        px.up()
        job = wait_job(s, 'meta-away')
        assert job['error'] is False and job['lastNotification']['imagesFailed'] == 0, job
        rows = results_rows(download_export(s, 'meta-away'), 'jsonl')
        assert sorted((r['image'], r['tag']) for r in rows) == [(f'i{i:02d}.png', f'L{i}') for i in range(12)]
    finally:
        rc = s.stop()
        px.down()
    assert rc == 0, s.tail_log()


class SlowRangeProxy(Proxy):
    """A Proxy that, while `slow` is set, holds the answer to each ranged
    GET (a request with a "Range:" header) for `delay` seconds: reading a
    staged image from a slow store, and nothing else slowed."""
    slow, delay = False, 0.0

    def seen(self, data, from_target, conn):
        if not from_target:  # ranged requests sent on this connection, not yet answered
            conn['ranges'] = conn.get('ranges', 0) + data.count(b'\r\nRange: bytes=')
        elif conn.get('ranges', 0) > 0:
            conn['ranges'] -= 1
            if self.slow:
                time.sleep(self.delay)


@need_s3
def test_the_lease_is_kept_while_an_image_is_read_from_a_slow_store(tmp_path):
    """Each read of a staged image takes longer than the task lease (1.5 s
    lease, a 2.5 s store): the worker renews the lease while it waits for
    the decode-ahead thread, so no other worker takes the task over
    (before: a lease-expired takeover every image, the task's attempts
    burnt by a slow store)."""
    px = s3_proxy(SlowRangeProxy)
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    via = s3_prefix_url(prefix, endpoint=f'http://127.0.0.1:{px.port}')
    s = Server(str(tmp_path), args=['--upload-poll-ms', '100', '--task-lease-ms', '1500'],
               env={'VBATCH_BLOBS': via}).start()
    try:
        put_workflow(s, 'crop', CROP_WF)
        from conftest import make_tar
        tar = make_tar([(f'x{i}.png', png_bytes(300 + i)) for i in range(2)])
        _, put = s.put_shard('slowb', tar)
        assert put.status == 200, put
        assert s.wait_count('slowb', 2) == 2
        px.slow, px.delay = True, 2.5
        r = bp(s, 'POST', '/slow1', job_body('slowb', 'crop'))
        assert r.status == 200, r
        job = wait_job(s, 'slow1')
        assert job['error'] is False, job
        logs = bp(s, 'GET', '/slow1/logs', query={'pageSize': 1000}).json()['logs']
        assert not [e for e in logs if e['logType'] == 'lease-expired'], logs
        assert len(results_rows(download_export(s, 'slow1'), 'jsonl')) == 2
    finally:
        px.slow = False
        rc = s.stop()
    assert rc == 0, s.tail_log()


# ---- clients talk to the object store (presigned PUT/GET, arrival poller) ----

def s3_netloc():
    return urllib.parse.urlsplit(s3_parts()[2]['endpoint']).netloc


def presigned(url):
    """The URL is a presigned URL of the object store itself (not of vbatch)."""
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    assert u.netloc == s3_netloc(), url
    assert q.get('X-Amz-Algorithm') == 'AWS4-HMAC-SHA256' and q.get('X-Amz-Signature'), url
    return q


def bulk_url(s, batch):
    r = s.ds('POST', f'/{batch}/bulk-upload/image-files', query={'displayName': batch})
    assert r.status == 200, r
    return r.json()['signedURLDetails']


def shard_status(s, batch, shard_id):
    for x in s.ds('GET', f'/{batch}/shards', query={'pageSize': 1000}).json()['shards']:
        if x['shardId'] == shard_id:
            return x
    raise AssertionError(f'no shard {shard_id}')


def poll_metric(s, what):
    r = s.raw('GET', '/metrics')
    assert r.status == 200, r
    import re
    m = re.search(r'^vbatch_upload_poll_total\{what="%s"\} (\d+)' % what, r.body.decode(), re.M)
    return int(m.group(1)) if m else 0


def shard_tar(n, seed=0):
    from conftest import make_tar
    return make_tar([(f'img-{i:04d}.png', png_bytes(seed + i)) for i in range(n)])


@need_s3
def test_inference_cli_flow_puts_straight_to_the_store(tmp_path):
    """POST bulk-upload, PUT (http.client, the extensionHeaders) to the
    returned URL, which is radosgw's; vbatch is never called and notices
    the shard by polling and indexes it where it landed; a reused URL is
    refused by the store (If-None-Match); a video the same way; /list URLs of whole objects are radosgw's too."""
    from test_jobs_video import VID
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--upload-poll-ms', '200'], env={'VBATCH_BLOBS': s3_prefix_url(prefix)}).start()
    try:
        d = bulk_url(s, 'direct')
        q = presigned(d['uploadURL'])
        assert q['X-Amz-Expires'] == '86400' and d['method'] == 'PUT', q
        t0 = time.time()
        put = s.raw('PUT', d['uploadURL'], body=shard_tar(20), headers=d.get('extensionHeaders') or {})
        assert put.status == 200, put  # radosgw's answer
        assert s.wait_count('direct', 20) == 20
        latency = time.time() - t0
        print(f'PUT to indexed (20 images, poll 200 ms): {latency:.2f} s')
        assert shard_status(s, 'direct', d['shardId'])['statusName'] == 'ingested'
        # radosgw honours If-None-Match: the URL is the shard's own key,
        # written once and indexed where it landed: no upload object, no copy
        assert d['extensionHeaders'] == {'If-None-Match': '*'}, d
        assert urllib.parse.urlsplit(d['uploadURL']).path.endswith(f'/s/{d["shardId"]}.tar'), d
        keys = s3_keys(prefix)
        assert [k for k in keys if '/s/' in k] == [k for k in keys if k.endswith(f'/s/{d["shardId"]}.tar')], keys
        assert not [k for k in keys if '/u/' in k], keys
        assert 'arrived in place' in s.tail_log(100000)
        # a second PUT to the same URL is refused by the store (412): what
        # was indexed cannot change under its items' offsets
        put = s.raw('PUT', d['uploadURL'], body=shard_tar(3, seed=500), headers=d.get('extensionHeaders') or {})
        assert put.status == 412, put
        # without the header the signature does not match
        put = s.raw('PUT', d['uploadURL'], body=shard_tar(3, seed=500))
        assert put.status == 403, put
        time.sleep(1.5 * MULT)
        assert s.ds('GET', '/direct/count').json()['count'] == 20
        fb = {f['fileName']: f for f in list_files(s, 'direct')}
        r = s.raw('GET', fb['img-0001.png']['downloadURL'])
        assert r.status == 200 and r.body == png_bytes(1), r
        # a video the same way
        if os.path.exists(VID):
            r = s.ds('POST', '/clips/upload/video', query={'fileName': 'a.mp4', 'displayName': 'clips'})
            assert r.status == 200, r
            vd = r.json()['signedURLDetails']
            presigned(vd['uploadURL'])
            with open(VID, 'rb') as f:
                put = s.raw('PUT', vd['uploadURL'], body=f.read(), headers=vd.get('extensionHeaders') or {})
            assert put.status == 200, put
            assert s.wait_count('clips', 1) == 1
            vf = list_files(s, 'clips')[0]
            presigned(vf['downloadURL'])  # a whole object: straight from radosgw
            with open(VID, 'rb') as f:
                assert s.raw('GET', vf['downloadURL']).body == f.read()
        # a single upload's /list URL is a presigned GET of radosgw
        stage_pngs(s, 'single', 2)
        f = list_files(s, 'single')[0]
        presigned(f['downloadURL'])
        r = s.raw('GET', f['downloadURL'])
        assert r.status == 200 and r.body[:4] == b'\x89PNG', r
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()
    assert os.environ['AWS_SECRET_ACCESS_KEY'] not in s.tail_log(100000)


@need_s3
def test_export_downloads_straight_from_the_store(tmp_path):
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), env={'VBATCH_BLOBS': s3_prefix_url(prefix)}).start()
    try:
        put_workflow(s, 'crop', CROP_WF)
        stage_pngs(s, 'pics', 4)
        r = bp(s, 'POST', '/e2e-s3x', job_body('pics', 'crop', fmt='csv'))
        assert r.status == 200, r
        assert wait_job(s, 'e2e-s3x')['error'] is False
        files = list_files(s, 'e2e-s3x-export')
        assert files
        for f in files:
            presigned(f['downloadURL'])
        rows = results_rows(download_export(s, 'e2e-s3x'), 'csv')
        assert sorted(r['image'] for r in rows) == [f'img-{i:04d}.png' for i in range(4)]
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_tampered_expired_partial_and_oversized_uploads(tmp_path):
    """radosgw refuses a tampered or expired presigned URL (403) and a
    partial PUT never appears: nothing is indexed.  An object over the
    shard limit (S3 cannot refuse it: a presigned PUT signs no maximum)
    fails the shard as shard-size-limit-exceeded and is deleted, never
    indexed."""
    import socket
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    tar = shard_tar(10)
    s = Server(str(tmp_path), args=['--upload-poll-ms', '200', '--upload-url-ttl', '2',
                                    '--max-shard-bytes', str(len(tar) + 1024)],
               env={'VBATCH_BLOBS': s3_prefix_url(prefix)}).start()
    try:
        d = bulk_url(s, 'bad')
        u = urllib.parse.urlsplit(d['uploadURL'])
        q = dict(urllib.parse.parse_qsl(u.query))
        sig = q['X-Amz-Signature']
        q['X-Amz-Signature'] = ('0' if sig[0] != '0' else '1') + sig[1:]
        tampered = urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))
        hdrs = d.get('extensionHeaders') or {}
        assert s.raw('PUT', tampered, body=tar, headers=hdrs).status == 403
        other = d['uploadURL'].replace(d['shardId'], str(uuid.uuid4()))
        assert s.raw('PUT', other, body=tar, headers=hdrs).status == 403
        # a partial PUT: the headers promise more bytes than are sent
        host, port = u.hostname, u.port
        c = socket.create_connection((host, port))
        extra = ''.join(f'{k}: {v}\r\n' for k, v in hdrs.items())
        c.sendall(f'PUT {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\n{extra}Content-Length: {len(tar)}\r\n\r\n'
                  .encode() + tar[:len(tar) // 2])
        time.sleep(0.3)
        c.close()
        time.sleep(2.5 * MULT)  # several poll rounds; the URL has expired by now
        assert s.raw('PUT', d['uploadURL'], body=tar, headers=hdrs).status == 403  # expired
        time.sleep(1)
        assert s.ds('GET', '/bad/count').json()['count'] == 0
        assert shard_status(s, 'bad', d['shardId'])['statusName'] == 'awaiting-upload'
        assert not [k for k in s3_keys(prefix) if '/u/' in k or '/s/' in k]
        # over the limit: S3 takes it, vbatch fails the shard and deletes it
        d2 = bulk_url(s, 'big')
        put = s.raw('PUT', d2['uploadURL'], body=shard_tar(30), headers=d2.get('extensionHeaders') or {})
        assert put.status == 200, put
        deadline = time.time() + 20 * MULT
        while time.time() < deadline and shard_status(s, 'big', d2['shardId'])['statusName'] == 'awaiting-upload':
            time.sleep(0.2)
        st = shard_status(s, 'big', d2['shardId'])
        assert st['statusName'] == 'shard-size-limit-exceeded' and st['statusType'] == 'error', st
        assert 'Max size of a shard' in json.dumps(st)
        assert s.ds('GET', '/big/count').json()['count'] == 0
        assert not [k for k in s3_keys(prefix) if '/u/' in k or '/s/' in k]
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_thousand_pending_urls_polled_within_the_bound(tmp_path):
    """1,000 pending upload URLs (one batch) cost one list request a poll
    round (the shard folder; the upload folder every 10th round), not 1,000
    HEADs; an upload among them is still noticed.  A batch with few
    pending shards is looked at with a HEAD each."""
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--upload-poll-ms', '250'], env={'VBATCH_BLOBS': s3_prefix_url(prefix)}).start()
    try:
        urls = [bulk_url(s, 'many') for _ in range(1000)]
        r0, l0, h0, t0 = poll_metric(s, 'round'), poll_metric(s, 'list'), poll_metric(s, 'head'), time.time()
        time.sleep(3)
        r1, l1, h1, t1 = poll_metric(s, 'round'), poll_metric(s, 'list'), poll_metric(s, 'head'), time.time()
        rounds, lists = r1 - r0, l1 - l0
        print(f'1000 pending URLs: {rounds} rounds, {lists} list requests, {h1 - h0} HEADs in {t1 - t0:.1f} s')
        # a list a round, the upload folder's every 10th round (at most
        # ceil(rounds / 10) of them in a window), and one of a round that
        # began before the window (the counters are read apart)
        assert rounds >= 2 and lists <= rounds + (rounds + 9) // 10 + 1 and h1 == h0, (rounds, lists, h1 - h0)
        assert lists / (t1 - t0) <= 1.1 / 0.25 + 1
        d = urls[777]
        t0 = time.time()
        assert s.raw('PUT', d['uploadURL'], body=shard_tar(5), headers=d['extensionHeaders']).status == 200
        assert s.wait_count('many', 5) == 5
        print(f'PUT to indexed among 1000 pending: {time.time() - t0:.2f} s')
        assert shard_status(s, 'many', d['shardId'])['statusName'] == 'ingested'
        # few pending shards in a batch: a HEAD each, no listing
        few = [bulk_url(s, 'few') for _ in range(3)]
        time.sleep(1)
        assert poll_metric(s, 'head') > h1
        assert s.raw('PUT', few[1]['uploadURL'], body=shard_tar(4), headers=few[1]['extensionHeaders']).status == 200
        assert s.wait_count('few', 4) == 4
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()



@need_s3
def test_arrivals_polled_faster_while_shards_stream_in(tmp_path):
    """After an arrival the poller runs hot rounds (a fifth of the interval,
    young batches only) for a few intervals: the next shard of a client
    that streams its shards is indexed long before the next normal round;
    an idle poller keeps its interval."""
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--upload-poll-ms', '6000'], env={'VBATCH_BLOBS': s3_prefix_url(prefix)}).start()
    try:
        a, b = bulk_url(s, 'stream'), bulk_url(s, 'stream')
        r0, t0 = poll_metric(s, 'round'), time.time()
        time.sleep(7)  # idle: one round per interval
        r1 = poll_metric(s, 'round')
        assert r1 - r0 <= 2, (r1 - r0, time.time() - t0)
        assert s.raw('PUT', a['uploadURL'], body=shard_tar(5), headers=a['extensionHeaders']).status == 200
        assert s.wait_count('stream', 5, timeout=20) == 5  # at the next normal round
        # the next normal round is ~6 s away; hot rounds come every 1.2 s:
        # the second shard's arrival is noticed by one of them
        arrivals, rounds, t0 = poll_metric(s, 'arrival'), poll_metric(s, 'round'), time.time()
        assert s.raw('PUT', b['uploadURL'], body=shard_tar(6, seed=50), headers=b['extensionHeaders']).status == 200
        while poll_metric(s, 'arrival') == arrivals and time.time() - t0 < 20 * MULT:
            time.sleep(0.05)
        took = time.time() - t0
        print(f'second shard PUT to noticed while hot (poll 6 s): {took:.2f} s')
        assert took < 4.0, took
        time.sleep(max(0.0, 3.6 - took))
        assert poll_metric(s, 'round') - rounds >= 2  # at most 1 in 3.6 s without hot rounds
        assert s.wait_count('stream', 11, timeout=20) == 11
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_hot_rounds_stop_a_few_intervals_after_the_last_arrival(tmp_path):
    """The hot rounds after an arrival last POLL_HOT_HOLD (5) poll
    intervals: with nothing more arriving the poller is back to one round
    an interval, though another URL of the batch is still pending."""
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--upload-poll-ms', '1000'], env={'VBATCH_BLOBS': s3_prefix_url(prefix)}).start()
    try:
        a, _ = bulk_url(s, 'calm'), bulk_url(s, 'calm')  # the second stays pending
        arrivals = poll_metric(s, 'arrival')
        assert s.raw('PUT', a['uploadURL'], body=shard_tar(3), headers=a['extensionHeaders']).status == 200
        deadline = time.time() + 20 * MULT
        while poll_metric(s, 'arrival') == arrivals and time.time() < deadline:
            time.sleep(0.02)
        t_arrival = time.time()
        assert poll_metric(s, 'arrival') > arrivals
        time.sleep(0.5)
        r0 = poll_metric(s, 'round')
        time.sleep(2.0)
        hot = poll_metric(s, 'round') - r0
        assert hot >= 4, hot  # rounds every 0.2 s between the normal ones (2 normal ones in 2 s)
        time.sleep(max(0.0, t_arrival + 6.5 - time.time()))  # hot until 5 s after the round that saw it
        r1, t1 = poll_metric(s, 'round'), time.time()
        time.sleep(3.0)
        calm = poll_metric(s, 'round') - r1
        print(f'rounds after the arrival: {hot} in 2 s while hot, {calm} in {time.time() - t1:.1f} s from 6.5 s on')
        assert calm <= 4, calm  # one an interval (+1 begun before the window)
        assert s.wait_count('calm', 3, timeout=20) == 3
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
@pytest.mark.skipif(bool(E2E_PG), reason='a SQLite trigger stands in for the database failure')
def test_a_shard_put_once_is_kept_when_its_arrival_cannot_be_recorded(tmp_path):
    """The object a client PUT to the shard's own key (put-once) is its only
    copy, acknowledged by the store: when the database cannot record the
    arrival (busy, unreachable; here a trigger makes the update fail) the
    object stays, and a later round records and indexes it."""
    import sqlite3
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--upload-poll-ms', '100'], env={'VBATCH_BLOBS': with_prefix(prefix)}).start()
    try:
        d = bulk_url(s, 'kept')
        assert d['extensionHeaders'] == {'If-None-Match': '*'}, d
        db = sqlite3.connect(os.path.join(s.data, 'vbatch.db'), timeout=10)
        db.execute("CREATE TRIGGER e2e_no_done BEFORE UPDATE OF state ON uploads WHEN NEW.state='done'"
                   " BEGIN SELECT RAISE(ABORT, 'e2e: the database cannot take it now'); END")
        db.commit()
        put = s.raw('PUT', d['uploadURL'], body=shard_tar(6), headers=d['extensionHeaders'])
        assert put.status == 200, put  # acknowledged by the store
        a0 = poll_metric(s, 'arrival')
        deadline = time.time() + 10 * MULT
        while time.time() < deadline and poll_metric(s, 'arrival') == a0:
            time.sleep(0.05)
        assert poll_metric(s, 'arrival') > a0  # seen, not recorded
        time.sleep(1)  # several rounds
        assert [k for k in s3_keys(prefix) if k.endswith(d['shardId'] + '.tar')], (s3_keys(prefix), s.tail_log())
        assert shard_status(s, 'kept', d['shardId'])['statusName'] == 'awaiting-upload'
        db.execute('DROP TRIGGER e2e_no_done')
        db.commit()
        db.close()
        assert s.wait_count('kept', 6) == 6
        assert shard_status(s, 'kept', d['shardId'])['statusName'] == 'ingested'
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_many_batches_with_pending_urls_each_get_their_turn(tmp_path):
    """More batches with a young pending URL than one round's requests
    (POLL_REQS_MAX): a round goes on where the last one stopped, so every
    batch is looked at within a few rounds, not once every (batches - 64)
    rounds."""
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    # a URL younger than 10 poll intervals has its batch looked at every round
    s = Server(str(tmp_path), args=['--upload-poll-ms', '1000'], env={'VBATCH_BLOBS': with_prefix(prefix)}).start()
    try:
        urls = [bulk_url(s, f'many-{i:03d}') for i in range(300)]
        import random
        picked = random.Random(7).sample(range(300), 8)
        r0 = poll_metric(s, 'round')
        for i in picked:
            d = urls[i]
            assert s.raw('PUT', d['uploadURL'], body=shard_tar(1, seed=i), headers=d['extensionHeaders']).status == 200
        deadline = time.time() + 8 * MULT  # 300 / 64 rounds, and some
        left = set(picked)
        while left and time.time() < deadline:
            left = {i for i in left if s.ds('GET', f'/many-{i:03d}/count').json()['count'] != 1}
            time.sleep(0.1)
        rounds = poll_metric(s, 'round') - r0
        assert not left, (sorted(left), rounds)
        print(f'8 PUTs among 300 batches noticed in {rounds} rounds')
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_declared_size_is_signed_and_the_store_refuses_another(tmp_path):
    """A client that declares its shard's size (contentLength, as `vbatch
    batch upload` does) gets a URL with that content-length signed:
    radosgw refuses a PUT of any other size (403) and writes nothing, so an
    oversized shard is never indexed; the declared size goes through.  A
    declared size over the shard limit is refused up front (413), a bad
    one is a 400."""
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    tar = shard_tar(10)
    s = Server(str(tmp_path), args=['--upload-poll-ms', '200', '--max-shard-bytes', str(len(tar) + 4096)],
               env={'VBATCH_BLOBS': with_prefix(prefix)}).start()
    try:
        r = s.ds('POST', '/sized/bulk-upload/image-files', query={'displayName': 'sized', 'contentLength': len(tar)})
        assert r.status == 200, r
        d = r.json()['signedURLDetails']
        q = presigned(d['uploadURL'])
        assert q['X-Amz-SignedHeaders'] == 'content-length;host;if-none-match', q
        hdrs = d['extensionHeaders']
        bigger = tar + bytes(1024)  # within vbatch's limit, over the declared size
        for body in (bigger, tar[:-512]):
            put = s.raw('PUT', d['uploadURL'], body=body, headers=hdrs)
            assert put.status == 403 and b'SignatureDoesNotMatch' in put.body, put
        time.sleep(1.0 * MULT)  # several poll rounds
        assert not [k for k in s3_keys(prefix) if '/s/' in k or '/u/' in k]
        assert s.ds('GET', '/sized/count').json()['count'] == 0
        assert shard_status(s, 'sized', d['shardId'])['statusName'] == 'awaiting-upload'
        put = s.raw('PUT', d['uploadURL'], body=tar, headers=hdrs)
        assert put.status == 200, put
        assert s.wait_count('sized', 10) == 10
        # over the limit: no URL; not a byte count: 400
        r = s.ds('POST', '/sized/bulk-upload/image-files', query={'contentLength': len(tar) + 4097})
        assert r.status == 413 and 'exceeds the shard limit' in r.json()['error'], r
        for bad in ('abc', '-1', '+5', '1e3', '99999999999999999999999'):
            r = s.ds('POST', '/sized/bulk-upload/image-files', query={'contentLength': bad})
            assert r.status == 400 and 'contentLength' in r.json()['error'], (bad, r)
        assert len(s.ds('GET', '/sized/shards').json()['shards']) == 1
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


# ---- copy-ins: an unsigned x-amz-copy-source on a presigned URL --------------

def copy_in(s, d, src_key, body=b''):
    """PUT to an upload URL with an unsigned x-amz-copy-source header (radosgw
    16 takes it, AWS refuses it)."""
    bucket, pre, _ = s3_parts()
    h = dict(d.get('extensionHeaders') or {})
    h['x-amz-copy-source'] = f'{bucket}/{src_key}'
    return s.raw('PUT', d['uploadURL'], body=body, headers=h)


def full_key(prefix, key):
    pre = s3_parts()[1]
    return f'{pre}/{prefix}/{key}' if pre else f'{prefix}/{key}'


presign_creds = os.environ.get('VBATCH_TEST_S3_PRESIGN_CREDENTIALS', '')
need_presign = pytest.mark.skipif(not presign_creds, reason='VBATCH_TEST_S3_PRESIGN_CREDENTIALS not set')


@need_s3
@need_presign
def test_copy_in_through_an_upload_url_is_refused(tmp_path):
    """URLs presigned with the PUT-only credential (--blobs-presign-credentials,
    scripts/s3-up.sh's second user): a client that adds an unsigned
    x-amz-copy-source to its upload URL can neither copy another batch's
    shard into its own batch nor replace its indexed put-once shard with a
    copy; put-once stays on."""
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--upload-poll-ms', '100'],
               env={'VBATCH_BLOBS': with_prefix(prefix), 'VBATCH_BLOBS_PRESIGN_CREDENTIALS': presign_creds}).start()
    try:
        v = bulk_url(s, 'victim')
        assert v['extensionHeaders'] == {'If-None-Match': '*'}, v
        assert s.raw('PUT', v['uploadURL'], body=shard_tar(3, seed=100), headers=v['extensionHeaders']).status == 200
        assert s.wait_count('victim', 3) == 3
        vkey = [k for k in s3_keys(prefix) if k.endswith(v['shardId'] + '.tar')][0]
        # (b) a copy of another batch's shard into a new upload
        d = bulk_url(s, 'attacker')
        put = copy_in(s, d, full_key(prefix, vkey))
        assert put.status == 403, put
        # (a) a copy over one's own indexed shard
        m = bulk_url(s, 'mine')
        assert s.raw('PUT', m['uploadURL'], body=shard_tar(2, seed=0), headers=m['extensionHeaders']).status == 200
        assert s.wait_count('mine', 2) == 2
        before = s3_get(prefix, [k for k in s3_keys(prefix) if k.endswith(m['shardId'] + '.tar')][0])
        put = copy_in(s, m, full_key(prefix, vkey))
        assert put.status in (403, 412), put
        time.sleep(1.0 * MULT)
        assert s.ds('GET', '/attacker/count').json()['count'] == 0
        assert s3_get(prefix, [k for k in s3_keys(prefix) if k.endswith(m['shardId'] + '.tar')][0]) == before
        assert 'SECURITY' not in s.tail_log()
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_copy_ins_without_presign_credentials_turn_put_once_off(tmp_path):
    """Without a separate presign credential on a store that takes copy-ins
    (radosgw): a loud warning at start, and no put-once URLs, so an indexed
    shard cannot be replaced by a copy (If-None-Match does not stop one):
    a copy to a used upload URL lands in the upload folder and is never
    read."""
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--upload-poll-ms', '100'],
               env={'VBATCH_BLOBS': with_prefix(prefix), 'VBATCH_BLOBS_PRESIGN_CREDENTIALS': ''}).start()
    try:
        assert 'SECURITY: the object store' in s.tail_log() and '--blobs-presign-credentials' in s.tail_log()
        v = bulk_url(s, 'other')
        assert s.raw('PUT', v['uploadURL'], body=shard_tar(3, seed=100), headers=v.get('extensionHeaders') or {}).status == 200
        assert s.wait_count('other', 3) == 3
        m = bulk_url(s, 'mine')
        assert not m.get('extensionHeaders'), m  # put-once off
        assert '/u/' in urllib.parse.urlsplit(m['uploadURL']).path, m
        assert s.raw('PUT', m['uploadURL'], body=shard_tar(2, seed=0)).status == 200
        assert s.wait_count('mine', 2) == 2
        skey = [k for k in s3_keys(prefix) if k.endswith(m['shardId'] + '.tar') and '/s/' in k][0]
        before = s3_get(prefix, skey)
        okey = [k for k in s3_keys(prefix) if k.endswith(v['shardId'] + '.tar') and '/s/' in k][0]
        copy_in(s, m, full_key(prefix, okey))
        time.sleep(1.0 * MULT)
        assert s3_get(prefix, skey) == before
        assert s.ds('GET', '/mine/count').json()['count'] == 2
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_presign_credentials_that_can_read_exit_2(tmp_path):
    """--blobs-presign-credentials with a credential that can still copy
    (here vbatch's own): one line naming the fix, exit status 2."""
    creds = tmp_path / 'same.cred'
    creds.write_text(f"AWS_ACCESS_KEY_ID={os.environ['AWS_ACCESS_KEY_ID']}\n"
                     f"AWS_SECRET_ACCESS_KEY={os.environ['AWS_SECRET_ACCESS_KEY']}\n")
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    env = {k: os.environ[k] for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY')}
    p = run('serve', '--data', str(tmp_path / 'd'), '--blobs', with_prefix(prefix),
            '--blobs-presign-credentials', str(creds), env=env)
    assert p.returncode == 2, p.stderr
    lines = error_lines(p)
    assert len(lines) == 1 and 'PutObject only, no GetObject' in lines[0], p.stderr


class ListCountingProxy(Proxy):
    """A Proxy that counts the list requests (ListObjectsV2) going through."""
    lists = 0

    def seen(self, data, from_target, conn):
        if not from_target:
            self.lists += data.count(b'list-type=2')


class RangeCountingProxy(Proxy):
    """A Proxy that counts the ranged GETs going through (a "Range:" header
    vbatch sends; split across two reads it would be missed, not
    doubled)."""
    ranges = 0

    def seen(self, data, from_target, conn):
        if not from_target:
            self.ranges += data.count(b'\r\nRange: bytes=')


@need_s3
def test_a_jobs_images_of_one_shard_are_read_in_few_range_gets(tmp_path):
    """The images of a tar shard lie one after the other in its object: a
    job's worker reads a run of them with one range GET (up to 64 images
    or 4 MiB), not one GET an image, and every image is still its own in
    the results."""
    px = s3_proxy(RangeCountingProxy)
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    via = s3_prefix_url(prefix, endpoint=f'http://127.0.0.1:{px.port}')
    s = Server(str(tmp_path), args=['--upload-poll-ms', '100'], env={'VBATCH_BLOBS': via}).start()
    try:
        names = stage_pngs(s, 'runs', 100, bulk=True)
        put_workflow(s, 'crop', CROP_WF)
        r0 = px.ranges
        r = bp(s, 'POST', '/runs', job_body('runs', 'crop', spec={'workflowParameters': {'tag': 'T'}}))
        assert r.status == 200, r
        job = wait_job(s, 'runs')
        assert job['error'] is False, job
        ranges = px.ranges - r0
        rows = results_rows(download_export(s, 'runs'), 'jsonl')
        print(f'100 images of one shard: {ranges} range GETs')
        assert len(rows) == 100 and all(row['tag'] == 'T' and row['crop'] for row in rows), rows[:2]
        assert sorted(row['image'] for row in rows) == sorted(names)
        # a run of at most 64 images in each task (2 for a task of more than
        # 64); one GET an image would be 100
        tasks = bp(s, 'GET', '/runs/stages/processing/tasks').json()['tasks']
        assert 1 <= ranges <= 2 * len(tasks) and ranges <= 25, (ranges, len(tasks))
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
def test_a_big_shard_folder_is_paged_around_the_pending_shards(tmp_path):
    """A batch with more pending shards than HEADs (16) and a shard folder
    of 2,500 other objects that all sort after its pending keys: a round
    lists the one page that holds the pending keys, not the whole folder
    (3 pages), and an arrival among them is still noticed."""
    from concurrent.futures import ThreadPoolExecutor
    from conftest import Blobs
    px = s3_proxy(ListCountingProxy)
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    url = with_prefix(prefix)
    via = s3_prefix_url(prefix, endpoint=f'http://127.0.0.1:{px.port}')
    s = Server(str(tmp_path), args=['--upload-poll-ms', '250'], env={'VBATCH_BLOBS': via}).start()
    try:
        path = urllib.parse.urlsplit(bulk_url(s, 'wide')['uploadURL']).path
        bid = path.split('/b/')[1].split('/')[0]
        b = Blobs(s.data, url)
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: b._req('PUT', f'b/{bid}/s/zz-{i:05d}', body=b'x'), range(2500)))
        # young URLs: the batch is looked at every round (no back-off)
        urls = [bulk_url(s, 'wide') for _ in range(20)]
        r0, l0 = poll_metric(s, 'round'), px.lists
        time.sleep(3)
        rounds, lists = poll_metric(s, 'round') - r0, px.lists - l0  # list requests the store got
        print(f'20 pending among 2,500 objects: {rounds} rounds, {lists} list requests')
        # one page a round (+ the upload folder every 10th round); the whole
        # folder would be 3 pages a round
        assert rounds >= 3 and lists <= rounds + rounds // 10 + 2, (rounds, lists)
        d = urls[13]
        assert s.raw('PUT', d['uploadURL'], body=shard_tar(2), headers=d['extensionHeaders']).status == 200
        assert s.wait_count('wide', 2) == 2
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@need_s3
@need_presign
def test_a_poller_without_put_once_notices_put_once_shards_of_another_process(tmp_path):
    """Two processes on one database and bucket: the one holding the poller
    lease found no put-once at start (here: no presign credential on a store
    that takes copy-ins), the other hands out put-once shard URLs.  The
    poller still looks at the shard folder (every 10th round) and records
    the shard."""
    from conftest import db_env
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    a_dir, b_dir = tmp_path / 'a', tmp_path / 'b'
    a_dir.mkdir()
    b_dir.mkdir()
    a = Server(str(a_dir), args=['--upload-poll-ms', '100'],
               env={'VBATCH_BLOBS': with_prefix(prefix), 'VBATCH_BLOBS_PRESIGN_CREDENTIALS': presign_creds})
    b = Server(str(b_dir), args=['--upload-poll-ms', '100'],
               env={'VBATCH_BLOBS': with_prefix(prefix), 'VBATCH_BLOBS_PRESIGN_CREDENTIALS': '',
                    **db_env(a.data)})
    b.data = a.data  # one database (SQLite: one folder)
    b.start()
    try:
        deadline = time.time() + 20 * MULT
        while 'upload poller lease taken' not in b.tail_log() and time.time() < deadline:
            time.sleep(0.1)
        assert 'upload poller lease taken' in b.tail_log(), b.tail_log()
        a.key = b.key
        a.start()
        try:
            assert 'upload poller lease held by another process' in a.tail_log() or 'lease taken' not in a.tail_log()
            d = bulk_url(a, 'mixed')
            assert d['extensionHeaders'] == {'If-None-Match': '*'}, d
            assert a.raw('PUT', d['uploadURL'], body=shard_tar(3), headers=d['extensionHeaders']).status == 200
            assert a.wait_count('mixed', 3, timeout=20) == 3
            assert 'upload poller lease taken' not in a.tail_log()
        finally:
            rca = a.stop()
        assert rca == 0, a.tail_log()
    finally:
        rc = b.stop()
    assert rc == 0, b.tail_log()


@need_s3
@pytest.mark.skipif(bool(E2E_PG), reason='a SQLite trigger stands in for the database failure')
def test_an_upload_object_is_kept_when_its_arrival_cannot_be_recorded(tmp_path):
    """The copy path (a store without put-once): when the database cannot
    record the arrival (busy, full; here a trigger makes the update fail)
    the upload object b/<bid>/u/… (the client's only copy, acknowledged by
    the store) is kept, and a later round records and indexes it."""
    import sqlite3
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), args=['--upload-poll-ms', '100'],
               env={'VBATCH_BLOBS': with_prefix(prefix), 'VBATCH_BLOBS_PRESIGN_CREDENTIALS': ''}).start()
    try:
        d = bulk_url(s, 'kept')
        assert not d.get('extensionHeaders'), d  # the copy path
        db = sqlite3.connect(os.path.join(s.data, 'vbatch.db'), timeout=10)
        db.execute("CREATE TRIGGER e2e_no_done BEFORE UPDATE OF state ON uploads WHEN NEW.state='done'"
                   " BEGIN SELECT RAISE(ABORT, 'e2e: the database cannot take it now'); END")
        db.commit()
        assert s.raw('PUT', d['uploadURL'], body=shard_tar(4)).status == 200
        a0 = poll_metric(s, 'arrival')
        deadline = time.time() + 10 * MULT
        while time.time() < deadline and poll_metric(s, 'arrival') == a0:
            time.sleep(0.05)
        assert poll_metric(s, 'arrival') > a0  # seen, not recorded
        time.sleep(1)  # several rounds
        assert [k for k in s3_keys(prefix) if '/u/' in k and k.endswith(d['shardId'] + '.tar')], s3_keys(prefix)
        db.execute('DROP TRIGGER e2e_no_done')
        db.commit()
        db.close()
        assert s.wait_count('kept', 4) == 4
        time.sleep(0.5)
        assert not [k for k in s3_keys(prefix) if '/u/' in k]  # deleted once recorded
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()
