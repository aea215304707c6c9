"""The orphan blob sweeper (docs/STORAGE.md "Orphan objects"), on the local
folder and on radosgw (VBATCH_TEST_S3): blobs that no row names, older than
--orphan-grace-ms, are deleted within grace + --orphan-sweep-ms; referenced
blobs (items, a tar shard kept whole, a job's folder, a stored model) are
never deleted, and an upload URL handed out but not used yet still works
after many sweeps.  A kill -9 between a single upload's blob write and its
row's commit leaves nothing visible, and the blob goes with the next sweeps."""
import threading
import time
import uuid

import pytest

from conftest import MULT, Blobs, Server, db_rows, make_tar, need_s3, png_bytes, s3_blobs
from jobs_helpers import CROP_WF, bp, job_body, list_files, put_workflow, stage_pngs, wait_job

BACKENDS = ['local', pytest.param('s3', marks=need_s3)]
pytestmark = pytest.mark.picks_its_blobs  # each test runs on both backends itself

GRACE_MS = 3000
SWEEP_MS = 500


def store(backend, data):
    """The blob store of one server (conftest's Blobs): its local folder, or
    a prefix of its own of the test bucket; .url its VBATCH_BLOBS on S3."""
    return s3_blobs('e2e-orph-' + uuid.uuid4().hex[:10]) if backend == 's3' else Blobs(data)


def store_env(blobs):
    return {'VBATCH_BLOBS': blobs.url} if blobs.s3 else {}


def bid_of(s, batch):
    rows = db_rows(s.data, 'SELECT bid FROM batches WHERE batch_id=?', (batch,))
    return rows[0][0]


def sweeper_args(grace=GRACE_MS, period=SWEEP_MS):
    return ['--orphan-grace-ms', str(grace), '--orphan-sweep-ms', str(period)]


@pytest.mark.parametrize('backend', BACKENDS)
def test_orphans_swept_and_referenced_blobs_kept(tmp_path, backend):
    blobs = store(backend, str(tmp_path / 'data'))
    s = Server(str(tmp_path), args=sweeper_args(), env=store_env(blobs)).start()
    try:
        put_workflow(s, 'crop', CROP_WF)
        stage_pngs(s, 'single', 3)
        stage_pngs(s, 'bulk', 6, bulk=True, seed=100)
        r = bp(s, 'POST', '/orph-job', job_body('bulk', 'crop', fmt='csv', persist=True,
                                                 spec={'imagesOutputsToBePersisted': ['crop']}))
        assert r.status == 200, r
        assert wait_job(s, 'orph-job')['error'] is False
        # an upload URL handed out and not used yet
        r = s.ds('POST', '/later/bulk-upload/image-files', query={'displayName': 'later'})
        assert r.status == 200, r
        later = r.json()['signedURLDetails']
        referenced = blobs.keys()
        assert any('/i/' in k for k in referenced) and any(k.endswith('.tar') for k in referenced)
        assert any(k.startswith('jobs/default/orph-job/') for k in referenced), referenced
        # orphans, written behind vbatch's back: under a live batch, under a
        # batch that does not exist, in the folder of a job that does not
        # exist, a model generation no row names, a stale upload object
        b = bid_of(s, 'single')
        orphans = [f'b/{b}/i/{uuid.uuid4()}', f'b/{b}/s/{uuid.uuid4()}.tar', f'b/{b}/u/{uuid.uuid4()}.tar',
                   f'b/{b}/r/{uuid.uuid4()}/0', 'b/987654/i/x', 'jobs/default/no-such-job/processing/task-00000.jsonl',
                   'models/nobody--1/0f0f/weights.onnx']
        t0 = time.time()
        for k in orphans:
            blobs.write(k, b'orphan bytes')
        # young: kept through the first sweeps
        time.sleep(GRACE_MS / 1000 * 0.5)
        keys = blobs.keys()
        assert all(k in keys for k in orphans), keys
        deadline = time.time() + 30 * MULT
        while time.time() < deadline and any(k in blobs.keys() for k in orphans):
            time.sleep(0.2)
        linger = time.time() - t0
        keys = blobs.keys()
        assert not [k for k in orphans if k in keys], keys
        print(f'{backend}: orphans deleted {linger:.2f} s after their write (grace {GRACE_MS} ms, '
              f'period {SWEEP_MS} ms)')
        assert linger >= GRACE_MS / 1000 - 1.0  # S3 LastModified has whole seconds
        # referenced blobs are all still there after many more sweeps
        time.sleep(4 * SWEEP_MS / 1000 + 1)
        keys = blobs.keys()
        assert [k for k in referenced if k not in keys] == [], keys
        assert s.ds('GET', '/single/count').json()['count'] == 3
        fb = {f['fileName']: f for f in list_files(s, 'bulk')}
        r = s.raw('GET', fb['img-0002.png']['downloadURL'])
        assert r.status == 200 and r.body == png_bytes(102), r
        # the URL handed out long ago still works
        tar = make_tar([(f'late-{i}.png', png_bytes(300 + i)) for i in range(4)])
        put = s.raw('PUT', later['uploadURL'], body=tar, headers=later.get('extensionHeaders') or {})
        assert put.status == 200, put
        assert s.wait_count('later', 4) == 4
        log = s.tail_log(400000)
        assert 'orphan sweep: deleted' in log
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


@pytest.mark.parametrize('backend', BACKENDS)
def test_kill9_between_blob_write_and_commit(tmp_path, backend):
    """A single upload dies after its bytes are written and before its row
    commits: nothing is visible, and the blob is swept after the restart."""
    blobs = store(backend, str(tmp_path / 'data'))
    # the killed server's sweeper lease lapses after 2 s instead of a minute
    env = dict(store_env(blobs), VBATCH_STAGING_LEASE_FLOOR_MS='2000')
    s = Server(str(tmp_path), args=sweeper_args(), env=env).start()
    stage_pngs(s, 'pics', 1)  # committed at once: the delay below is for the doomed upload only
    assert s.stop() == 0, s.tail_log()
    before = blobs.keys()
    assert len(before) == 1, before
    s.env = dict(env, VBATCH_STAGING_COMMIT_DELAY_MS='60000')
    s.start()
    res = {}
    try:
        def upload():
            try:
                res['r'] = s.upload_image('pics', 'doomed.png', png_bytes(7))
            except Exception as e:  # the server dies under it
                res['e'] = e
        th = threading.Thread(target=upload, daemon=True)
        th.start()
        deadline = time.time() + 20 * MULT
        new = []
        while time.time() < deadline and not new:
            new = [k for k in blobs.keys() if k not in before]
            time.sleep(0.1)
        assert len(new) == 1 and '/i/' in new[0], new
    finally:  # also when the test fails here: no server left behind holding the upload
        s.kill9()
    th.join(10)
    assert 'r' not in res or res['r'].status != 200, res
    s.env = env
    t0 = time.time()
    s.start()
    try:
        assert s.ds('GET', '/pics/count').json()['count'] == 1
        assert [f['fileName'] for f in list_files(s, 'pics')] == ['img-0000.png']
        deadline = time.time() + 30 * MULT
        while time.time() < deadline and new[0] in blobs.keys():
            time.sleep(0.2)
        keys = blobs.keys()
        assert new[0] not in keys and all(k in keys for k in before), keys
        print(f'{backend}: the orphan went {time.time() - t0:.1f} s after the restart')
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()
