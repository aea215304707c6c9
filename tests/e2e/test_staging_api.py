"""Data Staging API end to end: auth, every read endpoint, single-image
uploads, signed video URLs, and the bad inputs (wrong keys, ids, bodies)."""
import json
import re
import socket
import time

from conftest import DS, jpeg_bytes, multipart, openapi_ok, png_bytes


def test_healthz_and_workspace_lookup(server):
    r = server.request('GET', '/healthz', auth=False)
    assert r.status == 200 and r.json() == {'status': 'ok'}
    r = server.request('GET', '/')
    assert r.status == 200, r
    assert r.json() == {'workspace': server.workspace}
    assert r.headers['Content-Type'] == 'application/json'


def test_auth_errors(server):
    other = server.cli('workspace', 'create', 'other-ws')
    assert other.returncode == 0, other.stderr
    other_key = [l.split()[1] for l in other.stdout.splitlines() if l.startswith('api_key: ')][0]
    assert other_key != server.key
    # the other key works for its own workspace
    r = server.request('GET', '/', key=other_key)
    assert r.status == 200 and r.json() == {'workspace': 'other-ws'}
    for method, rest in [('GET', ''), ('GET', '/b1'), ('GET', '/b1/count'), ('GET', '/b1/list'),
                         ('GET', '/b1/parts'), ('GET', '/b1/shards'),
                         ('POST', '/b1/bulk-upload/image-files'),
                         ('POST', '/b1/upload/video')]:
        q = {'fileName': 'v.mp4'}
        r = server.ds(method, rest, auth=False, query=q)
        assert r.status == 401, (method, rest, r)
        assert 'error' in r.json()
        r = server.ds(method, rest, key='vb_nosuchkeynosuchkeynosuchkeynosuchke', query=q)
        assert r.status == 401, (method, rest, r)
        r = server.ds(method, rest, key=other_key, query=q)
        assert r.status == 403, (method, rest, r)
        assert 'error' in r.json()
    r = server.request('GET', '/', auth=False)
    assert r.status == 401
    # a duplicate workspace name is refused
    again = server.cli('workspace', 'create', 'other-ws')
    assert again.returncode != 0


def test_bad_ids_and_unknown_batches(server):
    for bad in ['UPPER', 'a' * 65, 'sp%20ace', 'dot.dot', '%2e%2e']:
        r = server.ds('GET', f'/{bad}/count')
        assert r.status == 400, (bad, r)
        assert 'error' in r.json()
    for rest in ['/nosuch', '/nosuch/count', '/nosuch/list', '/nosuch/parts', '/nosuch/shards']:
        r = server.ds('GET', rest)
        assert r.status == 404, (rest, r)
    r = server.request('GET', f'{DS}/{server.workspace}/nothing-here')
    assert r.status == 404 and 'error' in r.json()
    r = server.request('DELETE', f'{DS}/{server.workspace}/batches/b1/count')
    assert r.status == 405 and 'error' in r.json()
    for q in [{'pageSize': 'x'}, {'pageSize': '0'}, {'pageSize': '-3'}, {'nextPageToken': '!!bad'}]:
        r = server.ds('GET', '', query=q)
        assert r.status == 400, (q, r)


def test_single_uploads_count_list_download(server):
    batch = 'singles-1'
    images = {f'img{i:02d}.png': png_bytes(i) for i in range(12)}
    images['photo.jpg'] = jpeg_bytes()
    for name, data in images.items():
        r = server.upload_image(batch, name, data)
        assert r.status == 200, (name, r)
    # the field name does not matter: the first file part is the image
    ctype, body = multipart([('whatever', 'other-name.png', png_bytes(99)),
                             ('second', 'ignored.png', b'not an image')])
    r = server.ds('POST', f'/{batch}/upload/image', query={'fileName': 'field.png'}, body=body,
                  headers={'Content-Type': ctype})
    assert r.status == 200, r
    images['field.png'] = png_bytes(99)

    assert server.wait_count(batch, len(images)) == len(images)
    r = server.ds('GET', f'/{batch}')
    assert r.status == 200, r
    meta = r.json()['batch']
    assert meta['batchId'] == batch and meta['displayName'] == batch
    assert meta['batchType'] == 'simple-batch'
    assert meta['batchContentType'] == 'images'
    for k in ('createdDate', 'expiryDate'):
        assert meta[k].endswith('Z') or meta[k].endswith('+00:00'), meta[k]

    r = server.ds('GET', '')
    assert r.status == 200
    assert batch in [b['batchId'] for b in r.json()['batches']]

    seen = {}
    token = None
    pages = 0
    while True:
        q = {'pageSize': 5}
        if token:
            q['nextPageToken'] = token
        r = server.ds('GET', f'/{batch}/list', query=q)
        assert r.status == 200, r
        d = r.json()
        assert 'nextPageToken' in d
        assert len(d['filesMetadata']) <= 5
        for f in d['filesMetadata']:
            assert f['fileName'] not in seen
            seen[f['fileName']] = f
        pages += 1
        token = d['nextPageToken']
        if token is None:
            break
    assert set(seen) == set(images)
    assert pages == 3
    for name in ('photo.jpg', 'img03.png', 'field.png'):
        f = seen[name]
        assert f['contentType'] == 'image'
        g = server.raw('GET', f['downloadURL'])
        assert g.status == 200, g
        assert g.body == images[name]
    # parts of a simple batch
    r = server.ds('GET', f'/{batch}/parts')
    assert r.status == 200 and isinstance(r.json()['batchParts'], list)


def test_upload_image_bad_inputs(server):
    batch = 'singles-bad'
    # corrupt image
    r = server.upload_image(batch, 'broken.jpg', b'\xff\xd8\xff this is not a jpeg')
    assert r.status == 400, r
    r = server.upload_image(batch, 'text.png', b'hello world')
    assert r.status == 400, r
    # not multipart
    r = server.ds('POST', f'/{batch}/upload/image', query={'fileName': 'a.png'}, body=png_bytes(1),
                  headers={'Content-Type': 'image/png'})
    assert r.status == 400, r
    # truncated multipart
    ctype, body = multipart([('a.png', 'a.png', png_bytes(1))])
    r = server.ds('POST', f'/{batch}/upload/image', query={'fileName': 'a.png'},
                  body=body[:-20], headers={'Content-Type': ctype})
    assert r.status == 400, r
    # no parts at all
    r = server.ds('POST', f'/{batch}/upload/image', query={'fileName': 'a.png'},
                  body=b'--x--\r\n', headers={'Content-Type': 'multipart/form-data; boundary=x'})
    assert r.status == 400, r
    # hostile file names
    for name in ['../evil.png', 'a/b.png', '..']:
        r = server.upload_image(batch, name, png_bytes(2))
        assert r.status == 400, (name, r)
    # bad batch id on upload
    r = server.upload_image('Bad_Batch', 'a.png', png_bytes(3))
    assert r.status == 400, r
    # nothing of the above was stored
    r = server.ds('GET', f'/{batch}/count')
    assert r.status in (200, 404)
    if r.status == 200:
        assert r.json()['count'] == 0


def test_oversize_image(server_factory):
    s = server_factory(['--max-image-bytes', '20000']).start()
    big = png_bytes(5, w=120, h=120)
    assert len(big) > 20000
    r = s.upload_image('big', 'big.png', big)
    assert r.status == 413, r
    assert 'error' in r.json()
    r = s.upload_image('big', 'small.png', png_bytes(6))
    assert r.status == 200, r
    # a declared body far over the limit is refused before it is read
    c = socket.create_connection(('127.0.0.1', s.port))
    c.sendall((f'POST {DS}/default/batches/big/upload/image?api_key={s.key}&fileName=x.png HTTP/1.1\r\n'
               f'Host: x\r\nContent-Type: multipart/form-data; boundary=b\r\n'
               f'Content-Length: 900000000\r\n\r\n').encode())
    resp = c.recv(4096)
    c.close()
    assert resp.startswith(b'HTTP/1.1 413'), resp[:100]
    assert s.wait_count('big', 1) == 1


def test_video_signed_url(server):
    batch = 'videos-1'
    r = server.ds('POST', f'/{batch}/upload/video', query={'fileName': 'clip.mp4', 'displayName': 'Clips'})
    assert r.status == 200, r
    d = r.json()['signedURLDetails']
    b = server.blobs
    # vbatch's own signed URL, or with blobs on S3 the store's presigned one
    assert d['uploadURL'].startswith((f'http://{b.host}:{b.port}' if b.s3 else server.base) + '/'), d
    assert isinstance(d['extensionHeaders'], dict)
    # not a video: refused when it arrives
    put = server.raw('PUT', d['uploadURL'], body=b'not a video at all' * 10,
                     headers=d['extensionHeaders'])
    assert put.status in (200, 400, 415), put
    r = server.ds('POST', f'/{batch}/upload/video', query={'displayName': 'Clips'})
    assert r.status == 400, r  # fileName is required


def test_mixing_upload_kinds(server):
    r = server.upload_image('mixed-1', 'a.png', png_bytes(1))
    assert r.status == 200
    r = server.ds('POST', '/mixed-1/bulk-upload/image-files')
    assert r.status in (400, 409), r
    assert 'error' in r.json()
    r = server.ds('POST', '/mixed-2/bulk-upload/image-files')
    assert r.status == 200, r
    r = server.upload_image('mixed-2', 'a.png', png_bytes(1))
    assert r.status in (400, 409), r


def test_references_ingest_shapes_and_errors(server):
    batch = 'refs-1'
    body = json.dumps({'imageReferences': [{'name': 'a.jpg', 'url': 'https://example.invalid/a.jpg'}],
                       'ingestId': 'ing-1'})
    r = server.ds('POST', f'/{batch}/bulk-upload/image-references', body=body,
                  headers={'Content-Type': 'application/json'})
    assert r.status == 200, r
    d = r.json()
    assert d['ingestId'] == 'ing-1'
    r2 = server.ds('POST', f'/{batch}/bulk-upload/image-references', body=body,
                   headers={'Content-Type': 'application/json'})
    assert r2.status == 200, r2
    assert r2.json().get('duplicated') is True
    r = server.ds('POST', '/refs-2/bulk-upload/video-references',
                  body=json.dumps({'videoReferences': [{'name': 'v.mp4', 'url': 'https://example.invalid/v.mp4'}]}))
    assert r.status == 200, r
    assert 'ingestId' in r.json()
    for bad in [b'{not json', b'[]', b'{}', b'{"imageReferences": "x"}',
                json.dumps({'imageReferences': [], 'imageReferencesURL': 'https://x/y'}).encode()]:
        r = server.ds('POST', '/refs-3/bulk-upload/image-references', body=bad)
        assert r.status == 400, (bad, r)
        assert 'error' in r.json()


def test_raw_protocol_garbage(server):
    for raw in [b'GARBAGE\r\n\r\n', b'GET /healthz HTTP/9.9\r\n\r\n',
                b'GET ' + b'/a' * 5000 + b' HTTP/1.1\r\nHost: x\r\n\r\n']:
        c = socket.create_connection(('127.0.0.1', server.port))
        c.sendall(raw)
        c.settimeout(10)
        try:
            resp = c.recv(4096)
        except OSError:
            resp = b''
        c.close()
        # libmicrohttpd answers protocol errors itself (400, 414, 431, 505)
        assert resp == b'' or re.match(rb'HTTP/1\.[01] (4\d\d|505) ', resp), resp[:80]
    assert server.request('GET', '/healthz', auth=False).status == 200


def test_request_log_lines_and_no_secrets(server):
    r = server.ds('GET', '/log-check/count')
    assert r.status == 404
    # The log line is written when libmicrohttpd reports the request done,
    # which can be just after the client has the response: wait for it.
    deadline = time.time() + 10
    while True:
        log = server.tail_log(200000)
        lines = [l for l in log.splitlines() if 'http: request ' in l and 'batches/log-check/count' in l]
        if lines or time.time() > deadline:
            break
        time.sleep(0.05)
    assert lines, log[-2000:]
    l = lines[-1]
    for k in ('method=GET', 'path=/data-staging/v1/external/', 'status=404', 'bytes_out=', 'ms='):
        assert k in l, l
    # neither keys nor signatures are ever logged
    assert server.key not in log
    assert 'api_key' not in log and 'signature=' not in log


def test_concurrent_uploads_and_reads(server):
    import threading
    errors = []

    def up(k):
        try:
            for i in range(10):
                r = server.upload_image('concurrent', f'c{k}-{i}.png', png_bytes(k * 100 + i))
                if r.status != 200:
                    errors.append(r)
                if server.ds('GET', '/concurrent/count').status != 200:
                    errors.append('count')
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    th = [threading.Thread(target=up, args=(k,)) for k in range(16)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not errors, errors[:3]
    assert server.wait_count('concurrent', 160) == 160
