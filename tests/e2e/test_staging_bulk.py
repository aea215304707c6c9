"""Bulk ingest end to end: 1,000 images through tar shards PUT to signed
URLs, counted and listed to the last page; hostile tar entries, over-size
and corrupt shards; tampered, wrong-method and expired signed URLs."""
import io
import json
import tarfile
import time
import urllib.parse

from conftest import MULT, jpeg_bytes, png_bytes, make_tar


def shard_statuses(server, batch):
    out, token = [], None
    while True:
        q = {'pageSize': 50}
        if token:
            q['nextPageToken'] = token
        r = server.ds('GET', f'/{batch}/shards', query=q)
        assert r.status == 200, r
        d = r.json()
        out += d['shards']
        token = d['nextPageToken']
        if token is None:
            return out


def wait_shards_final(server, batch, n, timeout=60):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        sh = shard_statuses(server, batch)
        done = [s for s in sh if s['statusType'] != 'info' and 'pending' not in s['statusName'].lower()
                and 'progress' not in s['statusName'].lower() and 'upload' not in s['statusName'].lower()]
        if len(sh) >= n and len(done) >= n:
            return sh
        time.sleep(0.1)
    raise AssertionError(f'shards of {batch} did not settle: {shard_statuses(server, batch)}')


def test_thousand_images_through_tar_shards(server):
    batch = 'bulk-1000'
    names = []
    jpg = jpeg_bytes()
    for shard in range(4):
        members = []
        for i in range(250):
            n = shard * 250 + i
            name = f'im{n:04d}.png' if n % 2 else f'im{n:04d}.jpg'
            members.append((name, png_bytes(n) if n % 2 else jpg))
            names.append(name)
        if shard == 0:
            members.append(('notification_config.json',
                            json.dumps({'ingestId': 'bulk-ing', 'notificationsURL': 'http://127.0.0.1:9/hook'}).encode()))
        d, put = server.put_shard(batch, make_tar(members))
        assert put.status == 200, put
        # the same URL cannot be used twice (blobs on S3: the store refuses
        # a second PUT with the signed If-None-Match: *, 412)
        again = server.raw('PUT', d['uploadURL'], body=make_tar(members[:1]),
                           headers=d.get('extensionHeaders') or {})
        assert again.status in ((412,) if server.blobs.s3 else (403, 409)), again
    assert server.wait_count(batch, 1000, timeout=120) == 1000
    sh = wait_shards_final(server, batch, 4)
    assert all('error' not in s['statusType'] for s in sh), sh
    assert sum(s['shardObjectsCount'] for s in sh) == 1000

    r = server.ds('GET', f'/{batch}')
    assert r.json()['batch']['batchType'] == 'sharded-batch'

    listed, token, pages = [], None, 0
    while True:
        q = {'pageSize': 100}
        if token:
            q['nextPageToken'] = token
        r = server.ds('GET', f'/{batch}/list', query=q)
        assert r.status == 200, r
        d = r.json()
        listed += [f['fileName'] for f in d['filesMetadata']]
        pages += 1
        token = d['nextPageToken']
        if token is None:
            break
    assert pages in (10, 11)
    assert sorted(listed) == sorted(names)
    assert 'notification_config.json' not in listed
    # one download from the middle of the list
    r = server.ds('GET', f'/{batch}/list', query={'pageSize': 1})
    f = r.json()['filesMetadata'][0]
    assert f.get('shardId')
    g = server.raw('GET', f['downloadURL'])
    assert g.status == 200 and len(g.body) > 0


def test_hostile_and_failing_shards(server):
    batch = 'bulk-hostile'
    good = png_bytes(1)
    link = tarfile.TarInfo('link.png')
    link.type = tarfile.SYMTYPE
    link.linkname = '/etc/passwd'
    hard = tarfile.TarInfo('hard.png')
    hard.type = tarfile.LNKTYPE
    hard.linkname = 'ok1.png'
    dirent = tarfile.TarInfo('adir')
    dirent.type = tarfile.DIRTYPE
    members = [('ok1.png', good), ('../escape.png', good), ('sub/dir.png', good),
               ('/abs.png', good), link, hard, dirent, ('notes.txt', b'not an image'),
               ('ok2.png', png_bytes(2))]
    d, put = server.put_shard(batch, make_tar(members))
    assert put.status == 200, put
    # a corrupt tar fails its own shard, not the batch
    d2, put2 = server.put_shard(batch, b'this is not a tar archive' * 100)
    assert put2.status in (200, 400), put2
    # over 500 images: the shard fails with a reason
    many = [(f'm{i}.png', good) for i in range(501)]
    d3, put3 = server.put_shard(batch, make_tar(many))
    assert put3.status in (200, 400, 413), put3
    # a later good shard still works
    d4, put4 = server.put_shard(batch, make_tar([('ok3.png', png_bytes(3))]))
    assert put4.status == 200
    assert server.wait_count(batch, 3) == 3
    time.sleep(0.5)
    r = server.ds('GET', f'/{batch}/list', query={'pageSize': 1000})
    names = sorted(f['fileName'] for f in r.json()['filesMetadata'])
    assert names == ['ok1.png', 'ok2.png', 'ok3.png'], names
    sh = shard_statuses(server, batch)
    by_id = {s['shardId']: s for s in sh}
    for dd, pp in ((d2, put2), (d3, put3)):
        sid = dd.get('shardId')
        if pp.status == 200 and sid in by_id:
            deadline = time.time() + 30 * MULT
            while 'error' not in by_id[sid]['statusType'] and time.time() < deadline:
                time.sleep(0.1)
                by_id = {s['shardId']: s for s in shard_statuses(server, batch)}
            assert 'error' in by_id[sid]['statusType'], by_id[sid]


def tamper(url, key, value):
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    q[key] = value
    return urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, urllib.parse.urlencode(q), ''))


def test_signed_url_tampering(server):
    batch = 'bulk-signed'
    r = server.ds('POST', f'/{batch}/bulk-upload/image-files')
    url = r.json()['signedURLDetails']['uploadURL']
    hdrs = r.json()['signedURLDetails'].get('extensionHeaders') or {}
    tar = make_tar([('a.png', png_bytes(1))])
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    s3 = server.blobs.s3
    if s3:  # the store's presigned URL (SigV4 query signing): the store refuses
        sig = q['X-Amz-Signature']
        flipped = ('0' if sig[0] != '0' else '1') + sig[1:]
        bads = [tamper(url, 'X-Amz-Signature', flipped), tamper(url, 'X-Amz-Expires', '604800'),
                tamper(url, 'X-Amz-Date', '20250101T000000Z')]
    else:
        sig = q['signature']
        flipped = ('A' if sig[0] != 'A' else 'B') + sig[1:]
        bads = [tamper(url, 'signature', flipped), tamper(url, 'expires', str(int(q['expires']) + 1000)),
                tamper(url, 'limit', str(int(q['limit']) + 1)), tamper(url, 'method', 'GET')]
    for bad in bads + [url.replace(u.path, u.path + 'x'), url.split('?')[0]]:
        p = server.raw('PUT', bad, body=tar, headers=hdrs)
        assert p.status in (403, 404), (bad, p)
        if not s3:
            assert 'error' in p.json()
    # a PUT URL does not download, a download URL does not upload
    g = server.raw('GET', url)
    assert g.status == 403, g
    p = server.raw('PUT', url, body=tar, headers=hdrs)
    assert p.status == 200, p
    server.wait_count(batch, 1)
    assert server.ds('GET', f'/{batch}/count').json()['count'] == 1  # no tampered PUT got through
    f = server.ds('GET', f'/{batch}/list').json()['filesMetadata'][0]
    p = server.raw('PUT', f['downloadURL'], body=b'x')
    assert p.status == 403, p
    g = server.raw('GET', tamper(f['downloadURL'], 'signature', 'AAAA'))
    assert g.status == 403, g
    g = server.raw('GET', '/blobs/../../etc/passwd?method=GET&expires=9999999999&limit=0&signature=x')
    assert g.status in (400, 403, 404), g


def test_signed_url_expiry_and_limit(server_factory):
    s = server_factory(['--upload-url-ttl', '2', '--max-shard-bytes', '50000']).start()
    r = s.ds('POST', '/exp/bulk-upload/image-files')
    d = r.json()['signedURLDetails']
    time.sleep(3.5)
    p = s.raw('PUT', d['uploadURL'], body=make_tar([('a.png', png_bytes(1))]), headers=d.get('extensionHeaders') or {})
    assert p.status == 403, p
    big = make_tar([(f'b{i}.png', png_bytes(i, w=40, h=40)) for i in range(20)])
    assert len(big) > 50000
    r = s.ds('POST', '/exp/bulk-upload/image-files')
    d = r.json()['signedURLDetails']
    p = s.raw('PUT', d['uploadURL'], body=big, headers=d.get('extensionHeaders') or {})
    if s.blobs.s3:
        # the store cannot refuse it (a presigned PUT signs no maximum):
        # vbatch fails the shard on arrival and never indexes it
        assert p.status == 200, p
        deadline = time.time() + 20 * MULT
        while True:
            st = [x for x in shard_statuses(s, 'exp') if x['shardId'] == d['shardId']][0]
            if st['statusName'] != 'awaiting-upload' or time.time() > deadline:
                break
            time.sleep(0.2)
        assert st['statusName'] == 'shard-size-limit-exceeded', st
    else:
        assert p.status == 413, p
        assert 'error' in p.json()
    # nothing half-written is visible and the batch is empty
    r = s.ds('GET', '/exp/count')
    assert r.status == 404 or r.json()['count'] == 0


def test_declared_shard_size(server):
    """contentLength (vbatch's own): the URL takes exactly the declared
    size.  More bytes are refused — by vbatch's own URL (413) on the local
    folder, by the store on S3 (the content-length is signed: 403) — and
    nothing is indexed; the declared bytes go through."""
    tar = make_tar([(f'd{i}.png', png_bytes(40 + i)) for i in range(3)])
    r = server.ds('POST', '/declared/bulk-upload/image-files', query={'contentLength': str(len(tar))})
    assert r.status == 200, r
    d = r.json()['signedURLDetails']
    hdrs = d.get('extensionHeaders') or {}
    p = server.raw('PUT', d['uploadURL'], body=tar + bytes(1024), headers=hdrs)
    assert p.status == (403 if server.blobs.s3 else 413), p
    time.sleep(0.5 * MULT)
    r = server.ds('GET', '/declared/count')
    assert r.status == 200 and r.json()['count'] == 0, r
    p = server.raw('PUT', d['uploadURL'], body=tar, headers=hdrs)
    assert p.status == 200, p
    assert server.wait_count('declared', 3) == 3
    for bad in ('x1', '0'):  # 0: no tar is empty (and the local URL would take any size)
        r = server.ds('POST', '/declared/bulk-upload/image-files', query={'contentLength': bad})
        assert r.status == 400 and 'contentLength' in r.json()['error'], (bad, r)
