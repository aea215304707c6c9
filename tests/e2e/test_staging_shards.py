"""Tar shards kept whole (issue 12, item 3): a shard is stored once as one
blob, its items are (shard blob, offset, length); jobs and the /list
download URLs read exactly an item's bytes; data folders of earlier versions
(one blob per extracted image) keep working; broken archives are refused as
before."""
import json
import os
import sqlite3
import tarfile
import io
import time
import urllib.parse

from conftest import MULT, blobs_for, jpeg_bytes, local_blobs_only, make_tar, png_bytes, sqlite_only
from jobs_helpers import bp, download_export, job_body, list_files, put_workflow, results_rows, wait_job

# The decoded size of each image: a job that gets the wrong bytes of a
# shard cannot report them.
SIZE_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [
        {'type': 'roboflow_core/property_definition@v1', 'name': 'w', 'data': '$inputs.image',
         'operations': [{'type': 'ExtractImageProperty', 'property_name': 'width'}]},
        {'type': 'roboflow_core/property_definition@v1', 'name': 'h', 'data': '$inputs.image',
         'operations': [{'type': 'ExtractImageProperty', 'property_name': 'height'}]},
    ],
    'outputs': [
        {'type': 'JsonField', 'name': 'width', 'selector': '$steps.w.output'},
        {'type': 'JsonField', 'name': 'height', 'selector': '$steps.h.output'},
    ],
}


def pax_tar(members):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def shard_images(n, base=0):
    """n PNGs of distinct sizes: {name: (bytes, w, h)}."""
    out = {}
    for i in range(n):
        w, h = 5 + (base + i) % 13, 4 + (base + i) % 7
        out[f'img-{base + i:04d}.png'] = (png_bytes(base + i, w, h), w, h)
    return out


def blob_files(data):
    """The blob keys of a data folder (files under DATA/blobs, or objects
    of its S3 prefix).  On S3 (a store without put-once) an upload object b/<bid>/u/…
    is deleted just after the shard is recorded: waited for (10 s)."""
    b = blobs_for(data)
    deadline = time.time() + (10 * MULT if b.s3 else 0)
    while True:
        keys = b.keys()
        if not any('/u/' in k for k in keys) or time.time() >= deadline:
            return keys
        time.sleep(0.1)


def run_size_job(s, batch, want):
    """Run SIZE_WF over batch; every image reports its own size."""
    put_workflow(s, 'sizes', SIZE_WF)
    job_id = f'sizes-{batch}'
    r = bp(s, 'POST', f'/{job_id}', job_body(batch, 'sizes', ws=s.workspace))
    assert r.status == 200, r
    job = wait_job(s, job_id)
    assert not job.get('error'), job
    rows = results_rows(download_export(s, job_id))
    got = {row['image']: (row['width'], row['height']) for row in rows}
    assert got == {n: (w, h) for n, (_, w, h) in want.items()}, (got, want)


def test_shard_items_read_by_offset_by_downloads_and_a_job(server_factory):
    s = server_factory().start()
    imgs = shard_images(40)
    jpg = jpeg_bytes()
    long_name = 'l' * 150 + '.jpg'  # a pax header before its data
    side = json.dumps({'tag': 'x'}).encode()
    members = [(n, d) for n, (d, _, _) in imgs.items()] + [(long_name, jpg), ('img-0003.png.json', side)]
    tar = pax_tar(members)
    d, put = s.put_shard('whole', tar)
    assert put.status == 200, put
    assert s.wait_count('whole', 42) == 42  # 41 images and a sidecar
    # one blob for the shard, exactly the bytes uploaded; nothing extracted
    files = blob_files(s.data)
    assert len(files) == 1 and files[0].endswith(d['shardId'] + '.tar'), files
    assert blobs_for(s.data).read(files[0]) == tar
    want = {n: b for n, b in members}
    ctype = {'.png': 'image/png', '.jpg': 'image/jpeg', '.json': 'application/json'}
    listed = list_files(s, 'whole')
    assert sorted(f['fileName'] for f in listed) == sorted(want)
    for f in listed:
        url = f['downloadURL']
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert 'offset' in q and 'length' in q, url
        r = s.raw('GET', url)
        assert r.status == 200, (f, r)
        assert r.body == want[f['fileName']], f['fileName']
        assert r.headers['Content-Type'] == ctype[os.path.splitext(f['fileName'])[1]], r.headers
        assert int(r.headers['Content-Length']) == len(want[f['fileName']])
        h = s.raw('HEAD', url)
        assert h.status == 200 and h.body == b'' and int(h.headers['Content-Length']) == len(want[f['fileName']])
    # the range is part of the signature: moved, widened or dropped -> 403
    u = listed[0]['downloadURL']
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(u).query)
    off, n = q['offset'][0], q['length'][0]
    for bad in (u.replace(f'offset={off}', 'offset=0'), u.replace(f'length={n}', f'length={int(n) + 512}'),
                u.replace(f'&offset={off}&length={n}', '')):
        r = s.raw('GET', bad)
        assert r.status == 403, (bad, r)
        assert 'error' in r.json()
    # a job reads each image by its range (tests/e2e/data/tiny.jpg is 24x16)
    run_size_job(s, 'whole', {**imgs, long_name: (jpg, 24, 16)})


def to_old_layout(data):
    """Rewrite a data folder as vbatch wrote it before shards were kept
    whole: each image of a shard its own blob b/<bid>/s/<shard>/<n>, the
    archive gone, items without blob_offset, staging schema version 4 (the
    one before blob_offset)."""
    db = sqlite3.connect(os.path.join(data, 'vbatch.db'))
    rows = db.execute('SELECT id, bid, shard_id, blob_key, blob_offset, size FROM items'
                      ' WHERE blob_offset IS NOT NULL ORDER BY id').fetchall()
    assert rows
    tars = set()
    for n, (iid, bid, shard, key, off, size) in enumerate(rows):
        with open(os.path.join(data, 'blobs', key), 'rb') as f:
            f.seek(off)
            b = f.read(size)
        new = f'b/{bid}/s/{shard}/{n + 1}'
        os.makedirs(os.path.dirname(os.path.join(data, 'blobs', new)), exist_ok=True)
        with open(os.path.join(data, 'blobs', new), 'wb') as f:
            f.write(b)
        db.execute('UPDATE items SET blob_key=?, blob_offset=NULL WHERE id=?', (new, iid))
        tars.add(key)
    db.executescript('DROP INDEX items_blob; ALTER TABLE items DROP COLUMN blob_offset;'
                     ' CREATE INDEX items_blob ON items(blob_key);'
                     ' DROP TABLE ws_usage; DROP TABLE ws_quotas; DROP TABLE blob_trash;'  # staging 6
                     ' DROP TABLE ws_rate;'  # staging 7
                     " UPDATE schema_versions SET version=4 WHERE component='staging';")
    db.commit()
    db.close()
    for key in tars:
        os.unlink(os.path.join(data, 'blobs', key))


@sqlite_only  # an older SQLite data folder, wound back with sqlite3
@local_blobs_only  # ... and its local blob folder (earlier versions had no S3 backend)
def test_data_folder_of_an_earlier_version_still_downloads_and_runs(server_factory):
    s = server_factory().start()
    imgs = shard_images(30, base=100)
    d, put = s.put_shard('old', make_tar([(n, b) for n, (b, _, _) in imgs.items()]))
    assert put.status == 200, put
    assert s.wait_count('old', 30) == 30
    key = s.key
    assert s.stop() == 0
    to_old_layout(s.data)
    s.start()
    s.key = key
    with open(s.log_path) as f:
        assert 'migrated component=staging version=5' in f.read()
    listed = list_files(s, 'old')
    assert len(listed) == 30
    for f in listed:
        assert 'offset=' not in f['downloadURL']  # a whole blob, as before
        r = s.raw('GET', f['downloadURL'])
        assert r.status == 200, r
        assert r.body == imgs[f['fileName']][0]
        assert r.headers['Content-Type'] == 'image/png'
    run_size_job(s, 'old', imgs)
    # new shards go whole into the same batch next to the old items
    more = shard_images(5, base=200)
    d, put = s.put_shard('old', make_tar([(n, b) for n, (b, _, _) in more.items()]))
    assert put.status == 200, put
    assert s.wait_count('old', 35) == 35
    for f in list_files(s, 'old'):
        if f['fileName'] in more:
            assert 'offset=' in f['downloadURL']
            assert s.raw('GET', f['downloadURL']).body == more[f['fileName']][0]


def test_expiry_deletes_the_shard_blob_and_old_item_blobs(server_factory):
    s = server_factory(args=['--batch-expiry', '4', '--sweep-interval', '1']).start()
    d, put = s.put_shard('gone', make_tar([(n, b) for n, (b, _, _) in shard_images(10).items()]))
    assert put.status == 200, put
    assert s.wait_count('gone', 10) == 10
    files = blob_files(s.data)
    assert len(files) == 1 and files[0] == f'b/1/s/{d["shardId"]}.tar', files  # one blob per shard
    # an item blob of the old layout in the same batch folder goes too
    blobs_for(s.data).write('b/1/s/old-shard/1', png_bytes(1))
    deadline = time.time() + 30 * MULT
    while blob_files(s.data) and time.time() < deadline:
        time.sleep(0.2)
    assert blob_files(s.data) == []
    assert s.ds('GET', '/gone/count').status == 404


def shard_status(s, batch, shard_id, timeout=30):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        for sh in s.ds('GET', f'/{batch}/shards').json()['shards']:
            if sh['shardId'] == shard_id and sh['statusName'] not in ('uploaded', 'awaiting-upload'):
                return sh
        time.sleep(0.05)
    raise AssertionError(f'shard {shard_id} never finished')


def test_broken_archives_refused_as_before(server_factory):
    s = server_factory().start()
    good = make_tar([('a.png', png_bytes(1)), ('b.png', png_bytes(2))])
    cases = {
        # cut in the middle of the second image's bytes
        'cut': good[:512 + 1024 + 512 + 40],
        # a header claiming more bytes than the archive holds
        'claims': tarfile.TarInfo('big.png').tobuf(format=tarfile.USTAR_FORMAT)[:124]
        + b'%011o\x00' % 5000 + tarfile.TarInfo('big.png').tobuf(format=tarfile.USTAR_FORMAT)[136:],
        'not-a-tar': b'this is not a tar archive' * 100,
    }
    # fix the checksum of the edited header
    h = bytearray(cases['claims'][:512])
    h[148:156] = b' ' * 8
    h[148:156] = b'%06o\x00 ' % sum(h)
    cases['claims'] = bytes(h) + png_bytes(3) + b'\x00' * 100
    for name, body in cases.items():
        d, put = s.put_shard('broken', body)
        assert put.status == 200, (name, put)
        sh = shard_status(s, 'broken', d['shardId'])
        assert sh['statusType'] == 'error', (name, sh)
        assert sh['statusName'] == 'corrupt-archive', (name, sh)
    assert s.ds('GET', '/broken/count').json()['count'] == 0
    # a failed shard leaves nothing behind: its archive is removed (right
    # after its failure is recorded: on an object store that DELETE can
    # come a moment after the status shows)
    deadline = time.time() + 10 * MULT
    while blob_files(s.data) and time.time() < deadline:
        time.sleep(0.05)
    assert blob_files(s.data) == []
    d, put = s.put_shard('broken', good)
    assert put.status == 200
    assert s.wait_count('broken', 2) == 2
