"""Faults and crashes with the blobs on radosgw (VBATCH_TEST_S3), issue 12
items 3 and 6, and how the server reads items on S3:

- the store going away while shards wait to be indexed: they wait (status
  waiting-for-storage) and are indexed once it is back, never failed;
- kill -9 during tar-shard ingest (shards PUT straight to the store,
  noticed by the arrival poller) and during a job's processing and export:
  every image exactly once afterwards;
- a /list download of one image inside a kept-whole tar shard moves that
  image's bytes from the store (one range GET), not the shard; with the
  store away it is a 503 with a JSON error, and works again once it is back.
The store is reached through a TCP proxy that the test cuts and counts."""
import time
import uuid

import pytest

from conftest import MULT, Proxy, Server, make_tar, need_s3, png_bytes, s3_prefix_url, s3_proxy  # noqa: F401 (Proxy: imported from here)
from jobs_helpers import CROP_WF, bp, job_body, list_files, put_workflow, stage_pngs, wait_job
from test_jobs_crash import check_exactly_once, slow, tasks, wait_until

pytestmark = [need_s3, pytest.mark.picks_its_blobs]


def blobs_url(prefix, endpoint=None):
    """The VBATCH_BLOBS of PREFIX of the test bucket, through endpoint if
    given (conftest.s3_prefix_url; under this name for the modules that
    import it from here)."""
    return s3_prefix_url(prefix, endpoint=endpoint)


def proxied_server(tmp, args=(), env=None):
    px = s3_proxy()
    prefix = 'e2e-flt-' + uuid.uuid4().hex[:10]
    e = dict(env or {}, VBATCH_BLOBS=s3_prefix_url(prefix, endpoint=f'http://127.0.0.1:{px.port}'))
    return px, Server(str(tmp), args=list(args), env=e)


def bulk_url(s, batch):
    r = s.ds('POST', f'/{batch}/bulk-upload/image-files', query={'displayName': batch})
    assert r.status == 200, r
    return r.json()['signedURLDetails']


def shard_state(s, batch):
    r = s.ds('GET', f'/{batch}/shards', query={'pageSize': 1000})
    assert r.status == 200, r
    return {x['shardId']: x for x in r.json()['shards']}


def all_names(s, batch):
    names, token = [], None
    while True:
        q = {'pageSize': 500}
        if token:
            q['nextPageToken'] = token
        d = s.ds('GET', f'/{batch}/list', query=q).json()
        names += [f['fileName'] for f in d['filesMetadata']]
        token = d['nextPageToken']
        if token is None:
            return names


def test_store_away_while_shards_wait_to_be_indexed(tmp_path):
    """Shard A is being indexed (slowed) when shard B has arrived; the store
    goes away; a shard that cannot be read then (B; or A, when the indexer
    had not fetched it before the store went away — it is then retried
    first, and B waits behind it) waits, is not failed, and is indexed once
    the store is back.  Nothing acknowledged is lost."""
    px, s = proxied_server(tmp_path, ['--upload-poll-ms', '200'], env={'VBATCH_STAGING_INDEX_DELAY_MS': '5000'})
    s.start()
    try:
        a, b = bulk_url(s, 'away'), bulk_url(s, 'away')
        for k, d in enumerate((a, b)):
            tar = make_tar([(f's{k}-{i}.png', png_bytes(k * 100 + i)) for i in range(10)])
            put = s.raw('PUT', d['uploadURL'], body=tar, headers=d.get('extensionHeaders') or {})
            assert put.status == 200, put
        wait_until(lambda: all(x['statusName'] != 'awaiting-upload' for x in shard_state(s, 'away').values()),
                   timeout=20, what='both shards noticed')
        px.down()
        t0 = time.time()
        # A's delay ends, then B is tried while the store is away: it waits
        # (or A does, if its fetch came after the store went away)
        def one_waits():
            st = shard_state(s, 'away')
            assert all(x['statusType'] != 'error' for x in st.values()), st
            return any(x['statusName'] == 'waiting-for-storage' for x in st.values())
        wait_until(one_waits, timeout=30, what='a shard waiting for storage')
        print(f'a shard waiting for storage {time.time() - t0:.1f} s after the store went away')
        time.sleep(2)  # retried meanwhile (backoff 1 s, 2 s, ...): still waiting, not failed
        st = shard_state(s, 'away')
        assert all(x['statusType'] != 'error' for x in st.values()), st
        assert st[b['shardId']]['statusName'] in ('uploaded', 'waiting-for-storage'), st
        px.up()
        assert s.wait_count('away', 20, timeout=90) == 20
        st = shard_state(s, 'away')
        assert [x['statusName'] for x in st.values()] == ['ingested', 'ingested'], st
        names = all_names(s, 'away')
        assert sorted(names) == sorted(f's{k}-{i}.png' for k in range(2) for i in range(10))
        log = s.tail_log(400000)
        assert 'upload-missing' not in log
    finally:
        rc = s.stop()
        px.down()
    assert rc == 0, s.tail_log()


def test_kill9_during_ingest_on_s3(tmp_path):
    """Shards PUT straight to radosgw; the server is killed while the poller
    and the indexer work through them; after the restart every image is
    there exactly once."""
    prefix = 'e2e-flt-' + uuid.uuid4().hex[:10]
    env = {'VBATCH_BLOBS': s3_prefix_url(prefix), 'VBATCH_STAGING_INDEX_DELAY_MS': '400',
           'VBATCH_STAGING_CLAIM_LEASE_MS': '3000'}
    s = Server(str(tmp_path), args=['--upload-poll-ms', '200'], env=env).start()
    key = s.key
    total, urls = 0, [bulk_url(s, 'drill') for _ in range(8)]
    for k, d in enumerate(urls):
        tar = make_tar([(f's{k}-{i:03d}.png', png_bytes(k * 1000 + i)) for i in range(60)])
        put = s.raw('PUT', d['uploadURL'], body=tar, headers=d.get('extensionHeaders') or {})
        assert put.status == 200, put
        total += 60
    wait_until(lambda: s.ds('GET', '/drill/count').json()['count'] > 0, timeout=30, what='first shard indexed')
    got = s.ds('GET', '/drill/count').json()['count']
    s.kill9()
    s.start(same_port=True)
    s.key = key
    try:
        assert s.wait_count('drill', total, timeout=120) == total
        time.sleep(1)
        assert s.ds('GET', '/drill/count').json()['count'] == total
        names = all_names(s, 'drill')
        assert len(names) == total and len(set(names)) == total
        print(f'kill -9 after {got} of {total} images indexed')
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


def test_kill9_during_processing_and_export_on_s3(tmp_path):
    prefix = 'e2e-flt-' + uuid.uuid4().hex[:10]
    env = dict(slow(15), VBATCH_BLOBS=s3_prefix_url(prefix))
    s = Server(str(tmp_path), args=['--allow-private-urls', '--task-lease-ms', '1500'], env=env).start()
    key = s.key

    def restart():
        s.kill9()
        s.start(same_port=True)
        s.key = key
    try:
        put_workflow(s, 'crop', CROP_WF)
        names = stage_pngs(s, 'crash', 300, bulk=True)
        assert bp(s, 'POST', '/s3crash', job_body('crash', 'crop', persist=True)).status == 200
        wait_until(lambda: any((t.get('progress') or 0) > 0 for t in tasks(s, 's3crash')), what='progress')
        restart()
        wait_until(lambda: bp(s, 'GET', '/s3crash').json()['job']['currentStage'] == 'export', timeout=180,
                   what='export stage')
        restart()
        job = wait_job(s, 's3crash', timeout=240)
        assert job['error'] is False, job
        check_exactly_once(s, 's3crash', names)
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


def test_item_download_reads_only_its_range(tmp_path):
    """A /list URL of one image inside a kept-whole shard: vbatch answers
    exactly its bytes and moves about that many from the store, not the
    whole shard (≈ 400 KB here)."""
    px, s = proxied_server(tmp_path, ['--upload-poll-ms', '200'])
    s.start()
    try:
        members = [(f'img-{i:03d}.png', png_bytes(i)) for i in range(400)]
        tar = make_tar(members)
        d = bulk_url(s, 'ranged')
        assert s.raw('PUT', d['uploadURL'], body=tar, headers=d.get('extensionHeaders') or {}).status == 200
        assert s.wait_count('ranged', len(members)) == len(members)
        files = {f['fileName']: f for f in list_files(s, 'ranged')}
        before = px.down_bytes
        r = s.raw('GET', files['img-017.png']['downloadURL'])
        moved = px.down_bytes - before
        assert r.status == 200 and r.body == png_bytes(17), r
        print(f'item of {len(r.body)} bytes in a shard of {len(tar)} bytes: {moved} bytes from the store')
        assert moved < 16 * 1024, (moved, len(tar))
        # the store away: 503 with a JSON error, then the same URL works again
        px.down()
        t0 = time.time()
        r = s.raw('GET', files['img-017.png']['downloadURL'])
        assert r.status == 503 and 'blob store cannot be reached' in r.json()['error'], r
        assert time.time() - t0 < 20 * MULT
        r = s.upload_image('ranged-single', 'late.png', png_bytes(999))
        assert r.status == 503 and 'blob store cannot be reached' in r.json()['error'], r
        px.up()
        r = s.raw('GET', files['img-017.png']['downloadURL'])
        assert r.status == 200 and r.body == png_bytes(17), r
        assert s.upload_image('ranged-single', 'late.png', png_bytes(999)).status == 200
    finally:
        rc = s.stop()
        px.down()
    assert rc == 0, s.tail_log()
