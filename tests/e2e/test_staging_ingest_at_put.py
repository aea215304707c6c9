"""Tar shards indexed as their PUT ends (issue 12, local blob folder): a
shard PUT to vbatch's own signed URL is scanned from the bytes the server
kept in memory while writing them, and answered once its blob is synced at
its key; its items are committed right after by the committer thread
(src/staging/commits.c), or — with VBATCH_STAGING_COMMIT_BEHIND=0 — in the
transaction before the answer.  Hostile entries are refused as before; a
kill -9 while shards stream in leaves every acknowledged shard counted at
the first request after the restart, never part of a shard."""
import json
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import DS, MULT, db_exec, db_rows, jpeg_bytes, local_blobs_only, make_tar, png_bytes, sqlite_only

pytestmark = local_blobs_only  # on S3 the client PUTs to the object store, not to vbatch


def list_names(s, batch):
    names, token = [], None
    while True:
        q = {'pageSize': 500}
        if token:
            q['nextPageToken'] = token
        r = s.ds('GET', f'/{batch}/list', query=q)
        assert r.status == 200, r
        d = r.json()
        names += [f['fileName'] for f in d['filesMetadata']]
        token = d['nextPageToken']
        if token is None:
            return names


INLINE = {'VBATCH_STAGING_COMMIT_BEHIND': '0'}  # the items committed before the answer


def wait_count(s, batch, want, within=30):
    deadline = time.time() + within * MULT
    while True:
        got = s.ds('GET', f'/{batch}/count').json()['count']
        if got >= want or time.time() > deadline:
            return got
        time.sleep(0.01)


def test_shard_counted_when_its_put_is_answered(server_factory):
    s = server_factory(env=INLINE).start()
    batch = 'at-put'
    jpg = jpeg_bytes()
    members = [(f'a{i:04d}.png', png_bytes(i)) for i in range(498)]
    members.append(('a0000.png.json', b'{"label": "x"}'))  # a sidecar: metadata, not an image
    members.append(('../evil.png', png_bytes(9999)))  # refused, the rest goes in
    members.append(('b.jpg', jpg))
    d, put = s.put_shard(batch, make_tar(members))
    assert put.status == 200, put
    # no waiting: the answer came after the commit of the items
    r = s.ds('GET', f'/{batch}/count')
    assert r.status == 200 and r.json()['count'] == 500, r  # every staged file, the sidecar included
    assert s.ds('GET', f'/{batch}/count', query={'partName': 'metadata'}).json()['count'] == 1
    sh = s.ds('GET', f'/{batch}/shards').json()['shards']
    assert len(sh) == 1 and sh[0]['statusName'] == 'ingested', sh
    assert sh[0]['shardObjectsCount'] == 500  # 499 images and the sidecar
    names = list_names(s, batch)
    assert sorted(names) == sorted([f'a{i:04d}.png' for i in range(498)] + ['b.jpg', 'a0000.png.json'])
    # an item's download is exactly its bytes of the shard, with its type
    r = s.ds('GET', f'/{batch}/list', query={'pageSize': 1000})
    files = {x['fileName']: x for x in r.json()['filesMetadata']}
    g = s.raw('GET', files['a0377.png']['downloadURL'])
    assert g.status == 200 and g.body == png_bytes(377)
    assert g.headers['Content-Type'] == 'image/png', g.headers
    g = s.raw('GET', files['b.jpg']['downloadURL'])
    assert g.status == 200 and g.body == jpg and g.headers['Content-Type'] == 'image/jpeg', g.headers
    g = s.raw('GET', files['a0000.png.json']['downloadURL'])
    assert g.status == 200 and g.body == b'{"label": "x"}', g
    assert g.headers['Content-Type'] == 'application/json', g.headers
    # the URL is used up
    again = s.raw('PUT', d['uploadURL'], body=make_tar(members[:1]))
    assert again.status in (403, 409), again
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 500


def jpeg_sized(size, seed):
    """A valid JPEG of `size` bytes (the tiny JPEG with a COM segment of
    seeded filler), as in bench/ingest_tar.py."""
    base = jpeg_bytes()
    need = size - len(base) - 4
    fill = (seed.to_bytes(4, 'big') * (need // 4 + 1))[:need]
    return base[:2] + b'\xff\xfe' + (need + 2).to_bytes(2, 'big') + fill + base[2:]


def test_shard_committed_behind_its_answer(server_factory):
    """The default: the 200 comes once the bytes are on disk; the committer
    records the items after it (held back 3 s here to see the window)."""
    s = server_factory(env={'VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS': '3000'}).start()
    batch = 'behind'
    members = [(f'c{i:03d}.png', png_bytes(i)) for i in range(300)] + [('../evil.png', png_bytes(9))]
    d, put = s.put_shard(batch, make_tar(members))
    assert put.status == 200, put
    # answered before its rows: not counted yet, and its URL cannot be
    # used a second time meanwhile
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 0
    again = s.raw('PUT', d['uploadURL'], body=make_tar(members[:1]))
    assert again.status == 409, again
    assert wait_count(s, batch, 300) == 300
    sh = s.ds('GET', f'/{batch}/shards').json()['shards']
    assert len(sh) == 1 and sh[0]['statusName'] == 'ingested' and sh[0]['shardObjectsCount'] == 300, sh
    assert sorted(list_names(s, batch)) == [f'c{i:03d}.png' for i in range(300)]
    r = s.ds('GET', f'/{batch}/list', query={'pageSize': 1000})
    f = [x for x in r.json()['filesMetadata'] if x['fileName'] == 'c123.png'][0]
    assert s.raw('GET', f['downloadURL']).body == png_bytes(123)
    # used up for good once recorded
    again = s.raw('PUT', d['uploadURL'], body=make_tar(members[:1]))
    assert again.status in (403, 409), again
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 300


def test_reads_after_the_answer_show_the_shard(server_factory):
    """Read your answers: a count, the listings, the batch and a job
    started right after a shard's 200 wait (at most 1 s) for that shard's
    rows, here held back 200 ms by the committer; beyond that second they
    answer without them (the 3 s test above)."""
    from jobs_helpers import CROP_WF, bp, download_export, job_body, put_workflow, results_rows, wait_job
    s = server_factory(env={'VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS': '200'}).start()
    batch = 'readback'
    put_workflow(s, 'crop', CROP_WF)
    members = [(f'r{i:03d}.png', png_bytes(i)) for i in range(40)]
    _, put = s.put_shard(batch, make_tar(members))
    assert put.status == 200, put
    t0 = time.time()
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 40
    assert time.time() - t0 < 1.0 * MULT + 0.5
    _, put = s.put_shard(batch, make_tar([(f'q{i:03d}.png', png_bytes(100 + i)) for i in range(30)]))
    assert put.status == 200, put
    assert len(list_names(s, batch)) == 70
    _, put = s.put_shard(batch, make_tar([(f'p{i:03d}.png', png_bytes(200 + i)) for i in range(20)]))
    assert put.status == 200, put
    sh = s.ds('GET', f'/{batch}/shards').json()['shards']
    assert [x['statusName'] for x in sh] == ['ingested'] * 3, sh
    _, put = s.put_shard(batch, make_tar([(f'o{i:03d}.png', png_bytes(300 + i)) for i in range(10)]))
    assert put.status == 200, put
    b = s.ds('GET', f'/{batch}').json()['batch']
    assert b['fileCount'] == 100, b
    _, put = s.put_shard(batch, make_tar([(f'm{i:03d}.png', png_bytes(500 + i)) for i in range(3)]))
    assert put.status == 200, put
    r = s.request('GET', f'{DS}/{s.workspace}/batches')
    assert r.status == 200, r
    assert [x['fileCount'] for x in r.json()['batches'] if x['batchId'] == batch] == [103], r.json()
    _, put = s.put_shard(batch, make_tar([(f'n{i:03d}.png', png_bytes(400 + i)) for i in range(2)]))
    assert put.status == 200, put
    r = bp(s, 'POST', '/readback-job', job_body(batch, 'crop'))
    assert r.status == 200, r
    job = wait_job(s, 'readback-job')
    assert job['error'] is False, job
    rows = results_rows(download_export(s, 'readback-job'), 'jsonl')
    assert len(rows) == 105 and any(x['image'] == 'n001.png' for x in rows), len(rows)


def test_parts_after_the_answer_show_the_sidecars_part(server_factory):
    """The metadata part is made by the commit of the first shard with
    sidecars: a parts listing right after that shard's 200 waits for it
    (held back 200 ms here), as the other reads above do."""
    s = server_factory(env={'VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS': '200'}).start()
    batch = 'parts-readback'
    _, put = s.put_shard(batch, make_tar([('x.png', png_bytes(9))]))
    assert put.status == 200, put
    assert s.ds('GET', f'/{batch}/parts').json()['batchParts'] == []
    _, put = s.put_shard(batch, make_tar([('a.png', png_bytes(1)),
                                          ('a.png.json', json.dumps({'label': 'alpha'}).encode())]))
    assert put.status == 200, put
    parts = s.ds('GET', f'/{batch}/parts').json()['batchParts']
    assert [(p['partName'], p['contentType']) for p in parts] == [('metadata', 'metadata')], parts


def put_in_parallel(s, batch, prefix, after_answer=None):
    """4 clients each PUT 3 shards of 500 images of 16 KB (names
    <prefix><client>-<shard>-<i>.jpg), calling after_answer() after each
    200; every PUT must be answered 200."""
    tars = [[make_tar([(f'{prefix}{t}-{k}-{i}.jpg', jpeg_sized(16000, t * 100000 + k * 1000 + i))
                       for i in range(500)]) for k in range(3)] for t in range(4)]
    errors = []

    def worker(t):
        try:
            for k in range(3):
                _, put = s.put_shard(batch, tars[t][k])
                assert put.status == 200, put
                if after_answer:
                    after_answer()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    th = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not errors, errors


def test_parallel_puts_each_counted_at_its_answer(server_factory):
    """4 clients PUT shards of 500 images of 16 KB: a count read after any
    answer holds every shard answered before it (no indexer lag)."""
    s = server_factory(env=INLINE).start()
    batch = 'at-put-par'
    lock, answered, short = threading.Lock(), [0], []

    def after_answer():
        with lock:
            answered[0] += 1
            want = 500 * answered[0]
        got = s.ds('GET', f'/{batch}/count').json()['count']
        if got < want:
            short.append((got, want))
    put_in_parallel(s, batch, 't', after_answer)
    assert not short, short
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 6000
    names = list_names(s, batch)
    assert len(names) == 6000 and len(set(names)) == 6000


def test_parallel_puts_committed_behind(server_factory):
    """The same 4 clients with the default (commit behind the answer): every
    shard counted shortly after the last answer, every image once."""
    s = server_factory().start()
    batch = 'behind-par'
    put_in_parallel(s, batch, 'u')
    assert wait_count(s, batch, 6000) == 6000
    names = list_names(s, batch)
    assert len(names) == 6000 and len(set(names)) == 6000
    sh = s.ds('GET', f'/{batch}/shards', query={'pageSize': 100}).json()['shards']
    assert len(sh) == 12 and all(x['statusName'] == 'ingested' for x in sh), sh


@pytest.mark.parametrize('held', [0, 2000], ids=['committer', 'held-back'])
def test_kill9_while_shards_stream_in(server_factory, held):
    """held-back: the committer waits 2 s before each commit, so the kill
    lands between answers and commits: the acknowledged shards are found
    again at the restart (commits.c, staging__recover_acked)."""
    env = {'VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS': str(held)} if held else None
    s = server_factory(['--upload-url-ttl', '3600'], env=env).start()
    key = s.key
    batch = 'at-put-kill'
    shards = []  # (url, tar, names)
    for k in range(16):
        names = [f'k{k:02d}-{i:03d}.png' for i in range(250)]
        tar = make_tar([(n, png_bytes(k * 1000 + i)) for i, n in enumerate(names)])
        r = s.ds('POST', f'/{batch}/bulk-upload/image-files')
        assert r.status == 200, r
        shards.append((r.json()['signedURLDetails']['uploadURL'], tar, names))
    acked, lock, todo = set(), threading.Lock(), list(range(len(shards)))

    def put_raw(k):
        """PUT a shard on a raw socket: 200 or None (the server died)."""
        url, tar, _ = shards[k]
        u = urllib.parse.urlsplit(url)
        try:
            c = socket.create_connection((u.hostname, u.port), timeout=30 * MULT)
            c.sendall(f'PUT {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(tar)}\r\n'
                      'Connection: close\r\n\r\n'.encode())
            for off in range(0, len(tar), 64 * 1024):  # in pieces: a kill lands mid-body too
                c.sendall(tar[off:off + 64 * 1024])
            head = c.recv(64)
            c.close()
            return 200 if head.startswith(b'HTTP/1.1 200') else None
        except OSError:
            return None

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                k = todo.pop(0)
            if put_raw(k) == 200:
                with lock:
                    acked.add(k)
    th = [threading.Thread(target=worker) for _ in range(4)]
    for t in th:
        t.start()
    deadline = time.time() + 60 * MULT
    while len(acked) < 5 and time.time() < deadline:
        time.sleep(0.005)
    with lock:
        todo.clear()  # no new PUTs; those in flight die with the server
    s.kill9()
    for t in th:
        t.join()
    with lock:
        acked_now = set(acked)
    assert len(acked_now) >= 5
    s.start(same_port=True)
    s.key = key
    # every acknowledged shard counted from the first answer after the
    # restart (committed by the committer, or found again before the
    # restarted server listened)
    first = s.ds('GET', f'/{batch}/count').json()['count']
    assert first >= 250 * len(acked_now), (first, sorted(acked_now))
    if held:  # at most one was committed before the kill: the others were found again
        with open(s.log_path, errors='replace') as f:
            log = f.read()
        assert 'acknowledged before a stop or crash and not recorded' in log, s.tail_log()
    # no shard is there in part: each is all there or not at all
    present = set(list_names(s, batch))
    assert len(present) == first
    whole = set()
    for k, (_, _, names) in enumerate(shards):
        got = present.intersection(names)
        assert len(got) in (0, len(names)), (k, len(got))
        if got:
            whole.add(k)
    assert acked_now <= whole
    # the rest completes through the same URLs: every image exactly once
    for k, (url, tar, _) in enumerate(shards):
        if k not in whole:
            p = s.raw('PUT', url, body=tar)
            assert p.status == 200, (k, p)
    assert wait_count(s, batch, 16 * 250, within=60) == 16 * 250
    names = list_names(s, batch)
    assert len(names) == 16 * 250 and len(set(names)) == 16 * 250


def test_acked_shard_of_an_old_url_found_again_at_start(server_factory):
    """A shard answered 200 and killed before its commit is found again at
    the restart however long ago its URL was made: the URL was valid when
    the PUT was answered (here made 26 h before the restart, past the 24 h
    URL lifetime + 1 h that bounds the periodic look)."""
    s = server_factory(env={'VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS': '60000'}).start()
    key = s.key
    batch = 'behind-old'
    members = [(f'o{i:03d}.png', png_bytes(i)) for i in range(50)]
    d, put = s.put_shard(batch, make_tar(members))
    assert put.status == 200, put
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 0  # held back: not committed
    s.kill9()
    db_exec(s.data, "UPDATE uploads SET created_ms=created_ms-?", (26 * 3600 * 1000,))
    s.env.pop('VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS')
    s.start(same_port=True)
    s.key = key
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 50


@sqlite_only
def test_unanswered_shard_not_recorded_at_restart(server_factory):
    """A shard committed inline (before its answer) whose server dies after
    the rename and before the commit was never answered: the restart must
    not record it (only blobs marked as answered for are), or a client that
    retries with a fresh URL (the vbatch CLI does) gets every image twice."""
    import glob
    import os
    import sqlite3
    s = server_factory(env=dict(INLINE)).start()
    key = s.key
    batch = 'unanswered'
    members = [(f'u{i:03d}.png', png_bytes(i)) for i in range(50)]
    url = s.ds('POST', f'/{batch}/bulk-upload/image-files').json()['signedURLDetails']['uploadURL']
    db = sqlite3.connect(os.path.join(s.data, 'vbatch.db'), timeout=30, isolation_level=None)
    db.execute('BEGIN IMMEDIATE')  # the database busy: the PUT's commit waits after the rename
    res = {}

    def put():
        try:
            res['put'] = s.raw('PUT', url, body=make_tar(members)).status
        except Exception as e:  # noqa: BLE001 - the server dies under it
            res['put'] = repr(e)
    t = threading.Thread(target=put)
    t.start()
    deadline = time.time() + 10 * MULT
    while not glob.glob(os.path.join(s.data, '**', '*.tar'), recursive=True) and time.time() < deadline:
        time.sleep(0.01)
    s.kill9()
    db.execute('ROLLBACK')
    db.close()
    t.join()
    assert res['put'] != 200
    s.env.clear()
    s.start(same_port=True)
    s.key = key
    # not answered: the client sends these images again (the CLI through a fresh URL)
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 0


def test_quota_refusal_of_another_workspace_does_not_wait_for_the_committer(server_factory):
    """An upload-URL request over the pending-uploads quota waits for the
    committer only for shards of its own workspace (those URLs are used):
    another workspace's refusal is answered at once, not after someone
    else's queued commits (review r2)."""
    s = server_factory(['--quota-pending-uploads', '1'],
                       env={'VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS': '8000'}).start()
    out = s.cli('workspace', 'create', 'other')
    other_key = [ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith('api_key:')][0]
    # the other workspace: one URL, its quota
    r = s.ds('POST', '/ob/bulk-upload/image-files', query={'displayName': 'ob'}, workspace='other',
             key=other_key)
    assert r.status == 200, r
    # this workspace: a shard answered and held in the committer's queue
    d, put = s.put_shard('held', make_tar([('a.png', png_bytes(1))]))
    assert put.status == 200, put
    t0 = time.time()
    r = s.ds('POST', '/ob/bulk-upload/image-files', query={'displayName': 'ob'}, workspace='other',
             key=other_key, check=False)
    took = time.time() - t0
    assert r.status == 429, r
    assert took < 2.5, took  # (it waited 5 s for the first workspace's shard)
    assert wait_count(s, 'held', 1) == 1


# ---- upload URLs answered before their rows (staging_opts.url_behind) ----

def shard_url(s, batch):
    r = s.ds('POST', f'/{batch}/bulk-upload/image-files', query={'displayName': batch})
    assert r.status == 200, r
    return r.json()['signedURLDetails']


def uploads_of(s, shard_id):
    return db_rows(s.data, 'SELECT state FROM uploads WHERE shard_id=?', (shard_id,))


def test_url_answered_before_its_rows_takes_a_put_at_once(server_factory):
    """A second URL of a bulk batch is answered before its rows are written
    (here held back 3 s); a PUT to it right away is taken — its rows are
    written before its answer — counted, listed once, and the URL is used
    up.  The first URL of a new batch is written before its answer."""
    s = server_factory(env={'VBATCH_STAGING_URL_BEHIND_DELAY_MS': '3000'}).start()
    batch = 'url-behind'
    d1 = shard_url(s, batch)
    assert uploads_of(s, d1['shardId']) == [('pending',)]  # a new batch: recorded with its answer
    d2 = shard_url(s, batch)
    assert uploads_of(s, d2['shardId']) == []  # answered, not yet written
    members = [(f'n{i:03d}.png', png_bytes(i)) for i in range(40)]
    put = s.raw('PUT', d2['uploadURL'], body=make_tar(members))
    assert put.status == 200, put
    assert uploads_of(s, d2['shardId']) != []  # written before the answer (committed after it)
    assert wait_count(s, batch, 40) == 40
    assert uploads_of(s, d2['shardId']) == [('done',)]
    again = s.raw('PUT', d2['uploadURL'], body=make_tar(members))
    assert again.status == 409, again
    time.sleep(3.5 * MULT)  # the committer writes it too: nothing changes
    assert uploads_of(s, d2['shardId']) == [('done',)]
    assert s.ds('GET', f'/{batch}/count').json()['count'] == 40
    shards = s.ds('GET', f'/{batch}/shards').json()['shards']
    assert sorted(x['shardId'] for x in shards) == sorted([d1['shardId'], d2['shardId']])
    assert sorted(list_names(s, batch)) == sorted(n for n, _ in members)


def test_shards_listing_shows_the_url_just_answered(server_factory):
    """The shards listing waits for the URLs answered before their rows:
    a client sees the shard of the URL it was given (awaiting-upload)."""
    s = server_factory(env={'VBATCH_STAGING_URL_BEHIND_DELAY_MS': '400'}).start()
    ids = {}
    for batch in ('url-listed', 'url-listed-2'):  # two batches' URLs written together
        shard_url(s, batch)  # makes the batch
    for batch in ('url-listed', 'url-listed-2'):
        ids[batch] = [shard_url(s, batch)['shardId'] for _ in range(3)]  # written 400 ms later
    for batch in ('url-listed', 'url-listed-2'):
        shards = s.ds('GET', f'/{batch}/shards').json()['shards']
        got = sorted(x['shardId'] for x in shards if x['shardId'] in ids[batch])
        assert got == sorted(ids[batch]), (batch, shards)
        assert len(shards) == 4 and {x['statusName'] for x in shards} == {'awaiting-upload'}


def test_shards_listing_shows_the_url_while_the_committer_is_held_up(server_factory):
    """The committer busy with a shard (its commit held back 3 s): a URL
    answered meanwhile is still in the listing asked for right after (the
    listing writes its rows itself after waiting 1 s), and takes its PUT."""
    s = server_factory(env={'VBATCH_STAGING_COMMIT_BEHIND_DELAY_MS': '3000'}).start()
    batch = 'url-held'
    members = [(f'h{i:03d}.png', png_bytes(i)) for i in range(20)]
    d1, put = s.put_shard(batch, make_tar(members))
    assert put.status == 200, put
    d2 = shard_url(s, batch)
    t0 = time.time()
    shards = s.ds('GET', f'/{batch}/shards').json()['shards']
    assert time.time() - t0 < 2.5 * MULT  # not after the held-back commit
    assert d2['shardId'] in [x['shardId'] for x in shards], shards
    more = [(f'i{i:03d}.png', png_bytes(100 + i)) for i in range(20)]
    assert s.raw('PUT', d2['uploadURL'], body=make_tar(more)).status == 200
    assert wait_count(s, batch, 40) == 40


def test_url_whose_rows_a_crash_lost_still_takes_its_put(server_factory):
    """kill -9 after a URL was answered and before its rows were written:
    after the restart a PUT to it is taken (its target built from its
    signed key), counted once, and the URL is used up."""
    s = server_factory(env={'VBATCH_STAGING_URL_BEHIND_DELAY_MS': '60000'}).start()
    key = s.key
    batch = 'url-lost'
    shard_url(s, batch)  # makes the batch
    d2 = shard_url(s, batch)
    assert uploads_of(s, d2['shardId']) == []
    s.kill9()
    s.env.pop('VBATCH_STAGING_URL_BEHIND_DELAY_MS')
    s.start(same_port=True)
    s.key = key
    members = [(f'l{i:03d}.png', png_bytes(i)) for i in range(30)]
    put = s.raw('PUT', d2['uploadURL'], body=make_tar(members))
    assert put.status == 200, put
    assert wait_count(s, batch, 30) == 30
    assert s.raw('PUT', d2['uploadURL'], body=make_tar(members)).status == 409
    assert uploads_of(s, d2['shardId']) == [('done',)]
    assert wait_count(s, batch, 31, within=1) == 30


def test_url_of_a_batch_removed_before_its_rows_refused(server_factory):
    """A batch removed between a URL's answer and its rows: a PUT to the
    URL is refused (404) and nothing of it is kept."""
    s = server_factory(env={'VBATCH_STAGING_URL_BEHIND_DELAY_MS': '60000'}).start()
    batch = 'url-gone'
    shard_url(s, batch)
    d2 = shard_url(s, batch)
    r = s.ds('DELETE', f'/{batch}', check=False)
    assert r.status == 200, r
    put = s.raw('PUT', d2['uploadURL'], body=make_tar([('g.png', png_bytes(1))]))
    assert put.status == 404, put
    assert uploads_of(s, d2['shardId']) == []
