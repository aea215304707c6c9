"""Deletion of batches and jobs, per-workspace quotas and the per-key
request rate limit (docs/API.md "Deletion", "Quotas and rate limits")."""
import os
import re
import time
import urllib.parse
import uuid

import pytest

from conftest import DS, MULT, Server, make_tar, openapi_ok, png_bytes
from jobs_helpers import CROP_WF, bp, job_body, put_workflow, stage_pngs, wait_job
from test_blobs_s3 import need_s3, s3_keys, with_prefix


def blob_files(s, sub=''):
    """Keys of the server's blobs under folder sub (files under DATA/blobs,
    or objects of its S3 prefix)."""
    return s.blobs.keys(sub.rstrip('/') + '/' if sub else '')


def delete_batch(s, batch, **kw):
    return s.request('DELETE', f'{DS}/{kw.pop("workspace", s.workspace)}/batches/{batch}', **kw)


def bid_of(s, batch):
    """The blob folder b/<bid> of a batch, from one of its signed URLs
    (vbatch's /blobs/b/<bid>/… or, with blobs on S3, the store's presigned
    …/b/<bid>/… URL)."""
    r = s.ds('GET', f'/{batch}/list')
    assert r.status == 200, r
    url = r.json()['filesMetadata'][0]['downloadURL']
    m = re.search(r'/b/(\d+)/', urllib.parse.urlsplit(url).path)
    assert m, url
    return m.group(1)


def test_batch_delete_refused_while_a_job_runs_then_removes_everything(server_factory):
    # --workers 0: a job stays running until aborted
    s = server_factory(['--workers', '0']).start()
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'pics', 3)
    stage_pngs(s, 'bulk', 5, bulk=True)
    bid = bid_of(s, 'pics')
    assert blob_files(s, f'b/{bid}')
    assert bp(s, 'POST', '/j1', job_body('pics', 'crop')).status == 200

    r = delete_batch(s, 'pics')
    assert r.status == 409, r
    assert "running job 'j1'" in r.json()['error'] and 'abort' in r.json()['error']
    assert s.ds('GET', '/pics').status == 200

    # another workspace's key cannot delete it
    out = s.cli('workspace', 'create', 'other')
    assert out.returncode == 0, out.stderr
    other_key = [ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith('api_key:')][0]
    r = delete_batch(s, 'pics', key=other_key)
    assert r.status == 403, r
    r = delete_batch(s, 'pics', workspace='other', key=other_key)
    assert r.status == 404, r

    assert bp(s, 'POST', '/j1/abort').status == 200
    r = delete_batch(s, 'pics')
    assert r.status == 200, r
    assert r.json() == {'status': 'ok', 'batchId': 'pics', 'deleted': True}
    assert s.ds('GET', '/pics').status == 404
    assert s.ds('GET', '/pics/count').status == 404
    assert blob_files(s, f'b/{bid}') == []
    assert delete_batch(s, 'pics').status == 404
    # the id can be used again, from nothing
    assert s.upload_image('pics', 'again.png', png_bytes(99)).status == 200
    assert s.wait_count('pics', 1) == 1

    # a bulk batch: its shards, items and tar blobs go too
    bid2 = bid_of(s, 'bulk')
    assert blob_files(s, f'b/{bid2}')
    assert delete_batch(s, 'bulk').status == 200
    assert blob_files(s, f'b/{bid2}') == []
    assert s.ds('GET', '/bulk/shards').status == 404


def test_pending_upload_url_stops_working_after_delete(server_factory):
    s = server_factory().start()
    r = s.ds('POST', '/up/bulk-upload/image-files', query={'displayName': 'up'})
    assert r.status == 200, r
    d = r.json()['signedURLDetails']
    assert delete_batch(s, 'up').status == 200
    put = s.raw('PUT', d['uploadURL'], body=make_tar([('a.png', png_bytes(1))]),
                headers=d.get('extensionHeaders') or {})
    if not s.blobs.s3:
        assert put.status in (404, 409), put
        assert 'error' in put.json()
        assert s.ds('GET', '/up').status == 404
        assert blob_files(s) == []
        return
    # blobs on S3: the URL is the store's, which takes the PUT (a presigned
    # URL cannot be revoked); vbatch never records it: after several poll
    # rounds the batch is still gone and the upload object is all there is
    # (an orphan, left to the orphan sweep)
    assert put.status == 200, put
    time.sleep(3)
    assert s.ds('GET', '/up').status == 404
    left = blob_files(s)
    assert len(left) == 1 and re.fullmatch(r'b/\d+/u/%s\.tar' % re.escape(d['shardId']), left[0]), left


def test_job_delete_refused_while_running_then_removes_job_and_outputs(server_factory):
    s = server_factory().start()
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'pics', 4)
    r = bp(s, 'POST', '/jd', job_body('pics', 'crop'))
    assert r.status == 200, r
    # it may finish fast: the 409 is checked on a job that cannot run below
    wait_job(s, 'jd')
    assert blob_files(s, 'jobs/default/jd')
    assert s.ds('GET', '/jd-processing').status == 200
    assert s.ds('GET', '/jd-export').status == 200
    before = len(blob_files(s))
    r = bp(s, 'DELETE', '/jd', check=False)
    assert r.status == 200, r
    assert r.json() == {'status': 'ok', 'jobId': 'jd', 'deleted': True}
    assert bp(s, 'GET', '/jd', check=False).status == 404
    assert bp(s, 'GET', '/jd/logs', check=False).status == 404
    assert s.ds('GET', '/jd-processing').status == 404
    assert s.ds('GET', '/jd-export').status == 404
    assert len(blob_files(s)) < before
    assert blob_files(s, 'jobs/default/jd') == []
    # the input batch stays
    assert s.ds('GET', '/pics/count').json()['count'] == 4
    assert bp(s, 'DELETE', '/jd', check=False).status == 404
    # the same job id can be used again
    assert bp(s, 'POST', '/jd', job_body('pics', 'crop')).status == 200
    wait_job(s, 'jd')


def test_job_delete_refused_while_running(server_factory):
    s = server_factory(['--workers', '0']).start()
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'pics', 2)
    assert bp(s, 'POST', '/run', job_body('pics', 'crop')).status == 200
    r = bp(s, 'DELETE', '/run', check=False)
    assert r.status == 409, r
    assert 'abort it first' in r.json()['error']
    # its output batch cannot be deleted under it either
    r = delete_batch(s, 'run-processing')
    assert r.status in (404, 409), r
    assert bp(s, 'POST', '/run/abort').status == 200
    assert bp(s, 'DELETE', '/run', check=False).status == 200
    assert bp(s, 'GET', '/run', check=False).status == 404


def test_staged_bytes_quota_flag_and_workspace_setting(server_factory):
    img = png_bytes(1, 64, 64)
    s = server_factory(['--quota-staged-bytes', str(2 * len(img) + 10)]).start()
    assert s.upload_image('q', 'a.png', png_bytes(1, 64, 64)).status == 200
    assert s.upload_image('q', 'b.png', png_bytes(2, 64, 64)).status == 200
    r = s.upload_image('q', 'c.png', png_bytes(3, 64, 64))
    assert r.status == 413, r
    assert 'quota' in r.json()['error'] and 'staged bytes' in r.json()['error']
    assert s.ds('GET', '/q/count').json()['count'] == 2
    # a new upload URL is refused too once the quota is reached
    r = s.ds('POST', '/q2/bulk-upload/image-files', query={'displayName': 'q2'})
    assert r.status == 200, r  # 2 images < quota: not reached yet
    # deleting frees the bytes
    assert delete_batch(s, 'q').status == 200
    assert s.upload_image('q', 'c.png', png_bytes(3, 64, 64)).status == 200

    # a workspace's own value wins over the flag (0: unlimited)
    out = s.cli('workspace', 'set', 'default', '--max-staged-bytes', '0')
    assert out.returncode == 0, out.stderr
    assert 'max-staged-bytes: 0' in out.stdout
    for i in range(4):
        assert s.upload_image('q', f'x{i}.png', png_bytes(10 + i, 64, 64)).status == 200
    out = s.cli('workspace', 'set', 'default', '--max-staged-bytes', str(len(img)))
    assert out.returncode == 0, out.stderr
    r = s.ds('POST', '/q3/bulk-upload/image-files', query={'displayName': 'q3'})
    assert r.status == 413, r
    assert s.upload_image('q', 'y.png', png_bytes(20, 64, 64)).status == 413
    out = s.cli('workspace', 'set', 'default', '--max-staged-bytes', 'default')
    assert out.returncode == 0, out.stderr
    bad = s.cli('workspace', 'set', 'default', '--max-jobs', '-3')
    assert bad.returncode == 2
    assert s.cli('workspace', 'set', 'nosuch', '--max-jobs', '1').returncode == 1


def test_concurrent_jobs_quota_429_with_retry_after(server_factory):
    s = server_factory(['--workers', '0', '--quota-jobs', '1']).start()
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'pics', 2)
    assert bp(s, 'POST', '/a', job_body('pics', 'crop')).status == 200
    r = bp(s, 'POST', '/b', job_body('pics', 'crop'), check=False)
    assert r.status == 429, r
    assert int(r.headers['Retry-After']) > 0
    assert 'running jobs' in r.json()['error']
    assert bp(s, 'POST', '/a/abort').status == 200
    assert bp(s, 'POST', '/b', job_body('pics', 'crop')).status == 200
    # a restart runs a job again: it counts too
    r = bp(s, 'POST', '/a/restart', check=False)
    assert r.status == 429, r
    assert int(r.headers['Retry-After']) > 0
    assert bp(s, 'POST', '/b/abort').status == 200
    assert bp(s, 'POST', '/a/restart').status == 200


def test_pending_upload_urls_quota(server_factory):
    s = server_factory(['--quota-pending-uploads', '2']).start()
    urls = []
    for i in range(2):
        r = s.ds('POST', '/pu/bulk-upload/image-files', query={'displayName': 'pu'})
        assert r.status == 200, r
        urls.append(r.json()['signedURLDetails'])
    r = s.ds('POST', '/pu/bulk-upload/image-files', query={'displayName': 'pu'}, check=False)
    assert r.status == 429, r
    assert int(r.headers['Retry-After']) > 0 and 'upload URLs' in r.json()['error']
    r = s.ds('POST', '/pu/upload/video', query={'fileName': 'v.mp4'}, check=False)
    assert r.status == 429, r
    # using one frees a place
    d = urls[0]
    put = s.raw('PUT', d['uploadURL'], body=make_tar([('a.png', png_bytes(1))]),
                headers=d.get('extensionHeaders') or {})
    assert put.status == 200, put
    # (blobs on S3: the PUT went to the store; the place is freed once the
    # arrival poller has recorded it, within a few poll rounds)
    deadline = time.time() + (10 * MULT if s.blobs.s3 else 0)
    while True:
        r = s.ds('POST', '/pu/bulk-upload/image-files', query={'displayName': 'pu'}, check=False)
        if r.status != 429 or time.time() >= deadline:
            break
        time.sleep(0.2)
    assert r.status == 200, r
    openapi_ok('POST', f'{DS}/{s.workspace}/batches/pu/bulk-upload/image-files', r)


def test_rate_limit_429_with_retry_after(server_factory):
    s = server_factory(['--rate-limit', '2', '--rate-burst', '3']).start()
    statuses = []
    last = None
    for _ in range(8):
        last = s.ds('GET', '', check=False)
        statuses.append(last.status)
        if last.status == 429:
            break
    assert statuses[:3] == [200, 200, 200], statuses
    assert 429 in statuses, statuses
    assert int(last.headers['Retry-After']) >= 1
    assert 'rate limit' in last.json()['error']
    # another key has its own bucket
    out = s.cli('workspace', 'create', 'other')
    other_key = [ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith('api_key:')][0]
    assert s.ds('GET', '', workspace='other', key=other_key, check=False).status == 200
    # tokens come back at the rate
    time.sleep(1.2 * MULT)
    assert s.ds('GET', '', check=False).status == 200
    # the health check needs no key and is never limited
    for _ in range(5):
        assert s.request('GET', '/healthz', auth=False).status == 200


@need_s3
@pytest.mark.picks_its_blobs
def test_delete_on_s3_removes_the_objects(tmp_path):
    """The same deletions with the blobs on an object store (radosgw that
    scripts/test.sh starts): batch and job outputs leave no object."""
    prefix = 'e2e-' + uuid.uuid4().hex[:10]
    s = Server(str(tmp_path), env={'VBATCH_BLOBS': with_prefix(prefix)}).start()
    try:
        put_workflow(s, 'crop', CROP_WF)
        stage_pngs(s, 'single', 3)
        stage_pngs(s, 'bulk', 5, bulk=True)
        bid = bid_of(s, 'single')
        assert [k for k in s3_keys(prefix) if k.startswith(f'b/{bid}/')]
        assert delete_batch(s, 'single').status == 200
        assert [k for k in s3_keys(prefix) if k.startswith(f'b/{bid}/')] == []
        assert bp(s, 'POST', '/s3j', job_body('bulk', 'crop', persist=True,
                                             spec={'imagesOutputsToBePersisted': ['crop']})).status == 200
        wait_job(s, 's3j')
        n_with_job = len(s3_keys(prefix))
        assert bp(s, 'DELETE', '/s3j', check=False).status == 200
        left = s3_keys(prefix)
        assert len(left) < n_with_job
        assert delete_batch(s, 'bulk').status == 200
        assert s3_keys(prefix) == []
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()
