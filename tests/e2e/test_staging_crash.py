"""Crash safety: kill -9 during a tar upload and during indexing, restart
on the same data folder, nothing half-ingested and nothing lost.  Also a
clean SIGTERM stop and the key printed only on the first start."""
import os
import socket
import time
import urllib.parse

from conftest import DS, MULT, make_tar, png_bytes


def visible_files(s):
    """The server's blobs (files under DATA/blobs, or objects of its S3
    prefix)."""
    return s.blobs.keys()


def test_kill9_during_tar_upload(server_factory):
    s = server_factory(['--upload-url-ttl', '3600']).start()
    key = s.key
    r = s.ds('POST', '/crash-up/bulk-upload/image-files')
    d = r.json()['signedURLDetails']
    tar = make_tar([(f'c{i}.png', png_bytes(i)) for i in range(50)])
    # send the headers and half the body, then kill the server (blobs on
    # S3: the PUT goes to the store, cut off when vbatch dies)
    u = urllib.parse.urlsplit(d['uploadURL'])
    hdrs = d.get('extensionHeaders') or {}
    extra = ''.join(f'{k}: {v}\r\n' for k, v in hdrs.items())
    c = socket.create_connection((u.hostname, u.port))
    c.sendall((f'PUT {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\n{extra}Content-Length: {len(tar)}\r\n\r\n')
              .encode() + tar[:len(tar) // 2])
    time.sleep(0.3)
    before = set(visible_files(s))
    s.kill9()
    c.close()
    s.start(same_port=True)
    s.key = key
    # the half upload left no item and no visible blob; the batch is empty
    r = s.ds('GET', '/crash-up/count')
    assert r.status == 404 or r.json()['count'] == 0, r
    time.sleep(0.5)
    r = s.ds('GET', '/crash-up/count')
    assert r.status == 404 or r.json()['count'] == 0, r
    assert set(visible_files(s)) <= before
    # the same URL can still be used for a complete upload
    p = s.raw('PUT', d['uploadURL'], body=tar, headers=hdrs)
    assert p.status == 200, p
    assert s.wait_count('crash-up', 50) == 50


def test_kill9_during_indexing(server_factory):
    s = server_factory().start()
    key = s.key
    total = 0
    for k in range(6):
        tar = make_tar([(f's{k}-{i}.png', png_bytes(k * 1000 + i)) for i in range(200)])
        d, put = s.put_shard('crash-idx', tar)
        assert put.status == 200, put
        total += 200
    # acknowledged uploads; kill before (or while) the indexer finishes
    s.kill9()
    s.start(same_port=True)
    s.key = key
    assert s.wait_count('crash-idx', total, timeout=120) == total
    time.sleep(0.5)
    r = s.ds('GET', '/crash-idx/count')
    assert r.json()['count'] == total
    names, token = [], None
    while True:
        q = {'pageSize': 500}
        if token:
            q['nextPageToken'] = token
        d = s.ds('GET', '/crash-idx/list', query=q).json()
        names += [f['fileName'] for f in d['filesMetadata']]
        token = d['nextPageToken']
        if token is None:
            break
    assert len(names) == total and len(set(names)) == total


def test_restart_keeps_key_and_prints_it_once(server_factory):
    s = server_factory().start()
    key = s.key
    assert s.upload_image('keep', 'a.png', png_bytes(1)).status == 200
    assert s.stop() == 0
    s.key = None
    s.start(wait=False)
    deadline = time.time() + 30 * MULT
    while time.time() < deadline:
        try:
            if s.request('GET', '/healthz', auth=False).status == 200:
                break
        except OSError:
            time.sleep(0.05)
    with open(s.out_path) as f:
        assert 'api_key:' not in f.read()
    s.key = key
    assert s.request('GET', '/').json() == {'workspace': 'default'}
    assert s.ds('GET', '/keep/count').json()['count'] == 1


def test_sigint_stops_cleanly(server_factory):
    import signal
    s = server_factory().start()
    assert s.upload_image('sigint', 'a.png', png_bytes(1)).status == 200
    assert s.stop(sig=signal.SIGINT) == 0
    assert 'stopping signal=2' in s.tail_log()
