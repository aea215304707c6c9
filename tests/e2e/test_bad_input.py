"""Hostile input against one running server, in the manner of h2o's
t/40bad-request.t and redis's protocol tests: protocol garbage over raw
sockets, multipart and JSON edge cases, bad ids and page tokens, tampered
signed URLs, hostile tar shards and corrupt images.

Every case expects a clear 4xx with a JSON {"error": "..."} body, except
where libmicrohttpd itself answers protocol garbage (any 4xx/505 there, or
a closed connection).  The last test checks that the server is alive and
that the data staged at the start is intact.
"""
import gzip
import io
import json
import os
import re
import socket
import struct
import tarfile
import time
import urllib.parse
import zlib

import pytest

from conftest import DS, MULT, REPO, jpeg_bytes, local_blobs_only, make_tar, multipart, png_bytes

KEEP = 'keep-batch'


# ---- helpers -------------------------------------------------------------------------

def raw_exchange(server, data, timeout=5, shut=False, head_only=False):
    """Send bytes on a fresh connection; return what came back before the
    server closed or `timeout` seconds of silence passed."""
    c = socket.create_connection(('127.0.0.1', server.port))
    c.settimeout(timeout * MULT)
    out = b''
    try:
        try:
            c.sendall(data)
            if shut:
                c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                break
            if not b:
                break
            out += b
            if parse_raw(out) is not None or (head_only and b'\r\n\r\n' in out):
                break
    finally:
        c.close()
    return out


def parse_raw(resp):
    """(status, body) once a whole response with Content-Length is in resp, else None."""
    head, sep, body = resp.partition(b'\r\n\r\n')
    if not sep:
        return None
    m = re.match(rb'HTTP/1\.[01] (\d{3})', head)
    if not m:
        return None
    cl = re.search(rb'(?i)\r\ncontent-length: *(\d+)', head)
    if cl and len(body) < int(cl.group(1)):
        return None
    return int(m.group(1)), body[:int(cl.group(1))] if cl else body


def assert_mhd_reject(resp):
    """libmicrohttpd's own answer to protocol garbage: a 4xx/505, or a close."""
    assert resp == b'' or re.match(rb'HTTP/1\.[01] (4\d\d|505) ', resp), resp[:200]


def assert_error(r, *statuses):
    assert r.status in statuses, r
    body = json.loads(r.body)
    assert isinstance(body, dict) and isinstance(body.get('error'), str) and body['error'], r


def assert_raw_error(resp, *statuses):
    p = parse_raw(resp)
    assert p is not None, resp[:300]
    st, body = p
    assert st in statuses, resp[:300]
    j = json.loads(body)
    assert isinstance(j.get('error'), str) and j['error'], resp[:300]


def path_for(server, rest):
    return f'{DS}/{server.workspace}/batches{rest}'


def alive(server):
    assert server.proc.poll() is None, server.tail_log()
    r = server.request('GET', '/healthz', auth=False)
    assert r.status == 200, r


# ---- setup ----------------------------------------------------------------------------

def test_setup_keep_batch(server):
    for i in range(3):
        r = server.upload_image(KEEP, f'k{i}.png', png_bytes(100 + i))
        assert r.status == 200, r
    assert server.wait_count(KEEP, 3) == 3


# ---- raw protocol ---------------------------------------------------------------------

def test_garbage_request_lines(server):
    for raw in [b'\x00\x01\x02\x03\r\n\r\n', b'GET\r\n\r\n', b'GET / HTTP/1.1 extra\r\n\r\n',
                b' / HTTP/1.1\r\nHost: x\r\n\r\n', b'GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n',
                b'GET /healthz HTTP/1.1\r\n: novalue\r\n\r\n', b'\r\n\r\n\r\n\r\n',
                b'G\xffT /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
                b'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
                b'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1e9\r\n\r\n',
                b'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n',
                b'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello']:
        resp = raw_exchange(server, raw, timeout=3, shut=True)
        assert resp == b'' or re.match(rb'HTTP/1\.[01] (\d\d\d) ', resp), (raw, resp[:200])
        st = int(resp[9:12]) if resp else 400
        assert st < 500 or st == 505, (raw, resp[:200])
    alive(server)


def test_huge_header_and_url(server):
    resp = raw_exchange(server, b'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * 200000 + b'\r\n\r\n')
    assert_mhd_reject(resp)
    many = b''.join(b'X-H%d: v\r\n' % i for i in range(5000))
    resp = raw_exchange(server, b'GET /healthz HTTP/1.1\r\nHost: x\r\n' + many + b'\r\n')
    assert_mhd_reject(resp)
    resp = raw_exchange(server, b'GET /' + b'a' * 300000 + b' HTTP/1.1\r\nHost: x\r\n\r\n')
    assert_mhd_reject(resp)
    # within the connection buffer but over the head limits: answered
    many = b''.join(b'X-H%d: %s\r\n' % (i, b'v' * 30) for i in range(1200))  # ~50 KB of headers
    p = parse_raw(raw_exchange(server, b'GET /healthz HTTP/1.1\r\nHost: x\r\n' + many + b'\r\n'))
    assert p and p[0] == 431 and 'header' in json.loads(p[1])['error'], p
    p = parse_raw(raw_exchange(server, b'GET /healthz?q=' + b'a' * 40000 + b' HTTP/1.1\r\nHost: x\r\n\r\n'))
    assert p and p[0] == 414 and 'target' in json.loads(p[1])['error'], p
    alive(server)


def test_bad_percent_encoding_and_nul(server):
    base = path_for(server, f'/{KEEP}/count')
    for url in [base.replace('/count', '/%zz'), base + '%', base + '%4', f'{DS}/%00/batches',
                base.replace(KEEP, 'keep%00batch'), base.replace(KEEP, '%ff%fe'),
                base.replace(KEEP, 'keep-b%C3%A4tch')]:
        resp = raw_exchange(server, f'GET {url}?api_key={server.key} HTTP/1.1\r\nHost: x\r\n\r\n'.encode())
        p = parse_raw(resp)
        if p is None:
            assert_mhd_reject(resp)
            continue
        assert 400 <= p[0] < 500, (url, resp[:300])
        json.loads(p[1])
    for q in ['api_key=%zz', 'api_key=%', f'api_key={server.key}&partName=%00x',
              f'api_key={server.key}&partName=%ff', f'api_key={server.key}%00']:
        resp = raw_exchange(server, f'GET {base}?{q} HTTP/1.1\r\nHost: x\r\n\r\n'.encode())
        p = parse_raw(resp)
        assert p is not None, (q, resp[:200])
        assert p[0] in (200, 400, 401, 404), (q, resp[:300])
        json.loads(p[1])
    alive(server)


def test_head_is_get_without_body(server):
    base = path_for(server, f'/{KEEP}/count') + f'?api_key={server.key}'
    resp = raw_exchange(server, f'HEAD {base} HTTP/1.1\r\nHost: x\r\n\r\n'.encode(), head_only=True)
    assert resp.startswith(b'HTTP/1.1 200 '), resp[:200]
    assert resp.endswith(b'\r\n\r\n'), resp  # no body
    resp = raw_exchange(server, f'HEAD {base.replace("count", "nothing")} HTTP/1.1\r\nHost: x\r\n\r\n'.encode(),
                        head_only=True)
    assert resp.startswith(b'HTTP/1.1 404 '), resp[:200]
    r = server.raw('HEAD', path_for(server, f'/{KEEP}/upload/image') + f'?api_key={server.key}')
    assert r.status == 405, r


def test_duplicate_api_key(server):
    base = path_for(server, f'/{KEEP}/count')
    for q in [f'api_key={server.key}&api_key=wrong', f'api_key=wrong&api_key={server.key}',
              f'api_key=&api_key={server.key}', f'api_key={server.key}&api_key={server.key}']:
        r = server.raw('GET', f'{base}?{q}')
        assert_error(r, 400)
    alive(server)


def test_chunked_bad_sizes(server):
    url = path_for(server, f'/refs-chunk/bulk-upload/image-references') + f'?api_key={server.key}'
    head = f'POST {url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'.encode()
    for body in [b'zz\r\nhello\r\n0\r\n\r\n', b'-5\r\nhello\r\n0\r\n\r\n',
                 b'ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n', b'5\r\nhelloEXTRA\r\n0\r\n\r\n',
                 b'5;ext=1\r\n{"a":\r\n0\r\n\r\n', b'3\r\n{}\r\n']:
        resp = raw_exchange(server, head + body, timeout=1, shut=True)
        assert resp == b'' or re.match(rb'HTTP/1\.[01] (4\d\d|505) ', resp), (body, resp[:300])
    alive(server)


def test_transfer_encodings(server):
    """Only plain chunked is decoded; anything else would be read until the
    client closes: 501.  Content-Length with Transfer-Encoding (smuggling) is 400."""
    url = path_for(server, '/te-bad/bulk-upload/image-references') + f'?api_key={server.key}'
    body = json.dumps({'imageReferences': [{'name': 'a.jpg', 'url': 'https://x/a.jpg'}]}).encode()
    ch = b'%x\r\n' % len(body) + body + b'\r\n0\r\n\r\n'
    for hdrs, want in [('Transfer-Encoding: chunked\r\nContent-Length: 5', 400),
                       ('Content-Length: 5\r\nTransfer-Encoding: chunked', 400),
                       ('Transfer-Encoding: gzip, chunked', 501), ('Transfer-Encoding: identity', 501),
                       ('Transfer-Encoding: xchunked', 501), ('Transfer-Encoding: chunked, chunked', 501)]:
        resp = raw_exchange(server, f'POST {url} HTTP/1.1\r\nHost: x\r\n{hdrs}\r\n\r\n'.encode() + ch, timeout=5)
        assert_raw_error(resp, want)
    resp = raw_exchange(server, f'POST {url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n'.encode() + ch)
    assert parse_raw(resp) and parse_raw(resp)[0] == 200, resp[:300]
    r = server.ds('GET', '/te-bad/count')
    assert r.status in (200, 404)
    alive(server)


def test_content_length_mismatch_then_close(server):
    url = path_for(server, f'/cl-mismatch/bulk-upload/image-references') + f'?api_key={server.key}'
    resp = raw_exchange(server, f'POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{"a":1}}'.encode(),
                        timeout=3, shut=True)
    assert resp == b'' or re.match(rb'HTTP/1\.[01] 4\d\d ', resp), resp[:200]
    # upload/image with a body shorter than declared, then close
    ctype, body = multipart([('a.png', 'a.png', png_bytes(7))])
    url = path_for(server, '/cl-mismatch/upload/image') + f'?api_key={server.key}&fileName=a.png'
    raw = (f'POST {url} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n'
           f'Content-Length: {len(body) + 5000}\r\n\r\n').encode() + body
    resp = raw_exchange(server, raw, timeout=3, shut=True)
    assert resp == b'' or re.match(rb'HTTP/1\.[01] 4\d\d ', resp), resp[:200]
    # a longer body than declared: the rest is a (bad) second request
    raw = (f'POST {url} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n'
           f'Content-Length: {len(body) - 10}\r\n\r\n').encode() + body
    resp = raw_exchange(server, raw, timeout=3, shut=True)
    p = parse_raw(resp)
    assert p is not None and p[0] == 400, resp[:300]
    r = server.ds('GET', '/cl-mismatch/count')
    assert r.status == 404 or r.json()['count'] == 0, r
    alive(server)


def test_slowloris_partial_body(server):
    url = path_for(server, '/slow/upload/image') + f'?api_key={server.key}&fileName=a.png'
    socks = []
    for _ in range(20):
        c = socket.create_connection(('127.0.0.1', server.port))
        c.sendall((f'POST {url} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n'
                   f'Content-Length: 100000\r\n\r\n--b\r\nContent-Disp').encode())
        socks.append(c)
    c2 = socket.create_connection(('127.0.0.1', server.port))
    c2.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ')
    socks.append(c2)
    time.sleep(0.5)
    # other clients are served meanwhile
    t0 = time.time()
    alive(server)
    assert time.time() - t0 < 5 * MULT
    for c in socks:
        c.close()
    alive(server)


# ---- multipart --------------------------------------------------------------------------

def up(server, body, ctype, batch='mp-bad', name='a.png'):
    return server.ds('POST', f'/{batch}/upload/image', query={'fileName': name}, body=body,
                     headers={'Content-Type': ctype})


def test_multipart_edge_cases(server):
    img = png_bytes(11)
    ok_ct, ok_body = multipart([('file', 'a.png', img)])
    r = up(server, ok_body, 'multipart/form-data')
    assert_error(r, 400)
    r = up(server, ok_body, 'multipart/form-data; boundary=')
    assert_error(r, 400)
    r = up(server, ok_body, 'multipart/form-data; boundary="' + 'x' * 300 + '"')
    assert_error(r, 400)
    r = up(server, ok_body, 'text/plain; boundary=vbatchtestboundary7d3a')
    assert_error(r, 400, 415)
    # missing closing boundary
    r = up(server, ok_body[:-len('--vbatchtestboundary7d3a--\r\n')], ok_ct)
    assert_error(r, 400)
    # zero parts
    r = up(server, b'--vbatchtestboundary7d3a--\r\n', ok_ct)
    assert_error(r, 400)
    r = up(server, b'', ok_ct)
    assert_error(r, 400)
    # boundary-like bytes in the content (not after CRLF): the image is not a valid PNG then
    ct, body = multipart([('file', 'a.png', b'--vbatchtestboundary7d3a' + img)])
    r = up(server, body, ct)
    assert_error(r, 400)
    # near-boundaries inside the file content are content: the stored bytes are exact
    # (the full delimiter followed by other bytes is refused: RFC 2046 forbids it in content)
    tricky = img + b'\r\n--vbatchtestboundary7d3\r\n--\r\n\r\r\n-\r\n--vbatchtestboundary7d3a'[:-1]
    ct, body = multipart([('file', 'tricky.png', tricky)])
    r = up(server, body, ct, batch='mp-tricky', name='tricky.png')
    assert r.status == 200, r
    server.wait_count('mp-tricky', 1)
    f = server.ds('GET', '/mp-tricky/list').json()['filesMetadata'][0]
    assert server.raw('GET', f['downloadURL']).body == tricky
    # 1000 tiny parts: over the part limit (256)
    fields = [(f'f{i}', None, b'x') for i in range(1000)] + [('file', 'a.png', img)]
    ct, body = multipart(fields)
    r = up(server, body, ct, batch='mp-many')
    assert_error(r, 400, 413)
    # 200 tiny parts, none with a filename, then the image: kept
    ct, body = multipart(fields[800:])
    r = up(server, body, ct, batch='mp-many')
    assert r.status == 200, r
    # a part with no filename only
    ct, body = multipart([('file', None, b'not an image')])
    r = up(server, body, ct)
    assert_error(r, 400)
    # a huge part header
    b = b'--bb\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\nX-Pad: ' + b'p' * 200000 + \
        b'\r\n\r\n' + img + b'\r\n--bb--\r\n'
    r = up(server, b, 'multipart/form-data; boundary=bb')
    assert_error(r, 400, 413)
    # a filename with NUL / non UTF-8
    b = b'--bb\r\nContent-Disposition: form-data; name="f"; filename="a\xff\xfe.png"\r\n\r\n' + img + b'\r\n--bb--\r\n'
    r = server.ds('POST', '/mp-bad/upload/image', body=b,
                  headers={'Content-Type': 'multipart/form-data; boundary=bb'})
    assert_error(r, 400)
    r = server.ds('GET', '/mp-many/count')
    assert r.json()['count'] == 1
    alive(server)


def test_non_utf8_and_odd_names(server):
    for name in ['\u00e9t\u00e9.png', 'a' * 5000 + '.png', ' .png', 'a\nb.png', 'a\x01.png', '.png',
                 'a%2Fb.png', 'C:\\x.png']:
        r = server.upload_image('names-1', name, png_bytes(12))
        assert r.status in (200, 400), (name, r)
        json.loads(r.body)
    url = path_for(server, '/names-1/upload/image')
    ct, body = multipart([('file', 'x.png', png_bytes(13))])
    r = server.raw('POST', f'{url}?api_key={server.key}&fileName=%ff%fe.png', body=body,
                   headers={'Content-Type': ct})
    assert_error(r, 400)  # not UTF-8: it could never be listed as JSON
    b = b'--bb\r\nContent-Disposition: form-data; name="f"; filename="a\xff\xfe.png"\r\n\r\n' + \
        png_bytes(14) + b'\r\n--bb--\r\n'
    r = server.raw('POST', f'{url}?api_key={server.key}', body=b,
                   headers={'Content-Type': 'multipart/form-data; boundary=bb'})
    assert_error(r, 400)
    r = server.raw('POST', path_for(server, '/names-2/upload/image') + f'?api_key={server.key}'
                   f'&fileName=x.png&displayName=%ff%fe', body=body, headers={'Content-Type': ct})
    assert_error(r, 400)
    r = server.ds('GET', '/names-1/list', query={'pageSize': 100})
    assert r.status == 200
    r = server.ds('GET', '', query={'pageSize': 1000})
    assert r.status == 200, r
    alive(server)


# ---- JSON bodies ---------------------------------------------------------------------------

def refs(server, body, batch='json-bad'):
    return server.ds('POST', f'/{batch}/bulk-upload/image-references', body=body,
                     headers={'Content-Type': 'application/json'})


def test_json_bodies(server):
    for body in [b'not json', b'', b'\xff\xfe{}', b'{"a":1}{"b":2}', b'{"imageReferences":[{"name":"a\\ud800"}]}',
                 b'[' * 100000 + b']' * 100000, b'{"a":' * 50000 + b'1' + b'}' * 50000,
                 json.dumps({'imageReferences': [{'name': 'a.jpg', 'url': 'https://x/' + 'a' * 3000000}]}).encode(),
                 b'{"imageReferences":[{"name":"a.jpg","url":"https://x/a.jpg","name":"b.jpg"}]}']:
        r = refs(server, body)
        assert_error(r, 400, 413)
    good_ref = {'name': 'a.jpg', 'url': 'https://example.invalid/a.jpg'}
    bad_values = [None, 1, 1.5, True, 'str', [], {}, [1], [None], ['a'], 'x' * 100000]
    for field in ['imageReferences', 'ingestId', 'imageReferencesURL', 'notificationsURL', 'notificationCategories']:
        for v in bad_values:
            body = {'imageReferences': [good_ref]}
            body[field] = v
            r = refs(server, json.dumps(body).encode())
            # null is "absent"; a string ingestId and an empty category list are valid
            if v is None and field not in ('imageReferences', 'imageReferencesURL') or (field, v) in (('ingestId', 'str'),
                                                                          ('notificationCategories', [])):
                assert r.status == 200, (field, v, r)
            else:
                assert_error(r, 400)
    for field in ['name', 'url']:
        for v in bad_values:
            ref = dict(good_ref)
            ref[field] = v
            r = refs(server, json.dumps({'imageReferences': [ref]}).encode(), batch='json-bad2')
            if (field, v) == ('name', 'str'):
                assert r.status == 200, r
            else:
                assert_error(r, 400)
    for v in bad_values:
        r = refs(server, json.dumps({'imageReferences': [v]}).encode())
        assert_error(r, 400)
    alive(server)


def test_another_workspace_key(server):
    out = server.cli('workspace', 'create', 'hostile-ws')
    assert out.returncode == 0, out.stderr
    other = [l.split()[1] for l in out.stdout.splitlines() if l.startswith('api_key: ')][0]
    ct, body = multipart([('file', 'x.png', png_bytes(60))])
    for method, rest, kw in [('GET', f'/{KEEP}/count', {}), ('GET', f'/{KEEP}/list', {}), ('GET', '', {}),
                             ('GET', f'/{KEEP}/shards', {}), ('GET', f'/{KEEP}/parts', {}),
                             ('POST', f'/{KEEP}/upload/image', {'body': body, 'headers': {'Content-Type': ct},
                                                                'query': {'fileName': 'x.png'}}),
                             ('POST', f'/{KEEP}/bulk-upload/image-files', {}),
                             ('POST', f'/{KEEP}/bulk-upload/image-references',
                              {'body': json.dumps({'imageReferences': [{'name': 'a.jpg', 'url': 'https://x/a.jpg'}]})})]:
        r = server.ds(method, rest, key=other, **kw)
        assert_error(r, 403)
    # its own workspace does not see the batch
    r = server.ds('GET', f'/{KEEP}/count', key=other, workspace='hostile-ws')
    assert_error(r, 404)
    r = server.ds('GET', '', key=other, workspace='hostile-ws')
    assert r.status == 200 and not r.json().get('batches'), r
    alive(server)


def test_workflow_put_bodies(server):
    wf = f'/workflows/v1/external/{server.workspace}/workflows'
    for body in [b'not json', b'', b'[]', b'"x"', b'{}', b'[' * 100000, b'{"specification": 5}',
                 b'{"version": "1.0", "inputs": [], "steps": [], "outputs": []}x',
                 json.dumps({'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'i' * 100000}],
                             'steps': [{'type': 'NoSuchBlock', 'name': 's'}], 'outputs': []}).encode(),
                 json.dumps({'version': '1.0', 'inputs': [1, None, [], {}], 'steps': {}, 'outputs': 'x'}).encode()]:
        r = server.request('PUT', f'{wf}/wf-bad', body=body, headers={'Content-Type': 'application/json'})
        assert_error(r, 400, 413)
    r = server.request('PUT', f'{wf}/wf-bad', body=b' ' * (5 << 20))
    assert_error(r, 413)
    for wid in ['UP', 'a' * 65, '..%2Fx', '%C3%A9']:
        r = server.request('PUT', f'{wf}/{wid}', body=b'{}')
        assert_error(r, 400, 404)
        r = server.request('GET', f'{wf}/{wid}')
        assert_error(r, 400, 404)
    r = server.request('GET', f'{wf}/wf-bad')
    assert_error(r, 404)
    alive(server)


def test_hostile_reference_targets(server):
    """References whose targets lie: huge, truncated, redirect loops, text,
    a PNG header claiming 100000x100000.  Each fails alone; the good one lands."""
    import http.server
    import threading
    good = png_bytes(70)

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            p = self.path
            if p == '/good.png':
                body = good
            elif p == '/loop':
                self.send_response(302)
                self.send_header('Location', '/loop')
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            elif p == '/huge.png':
                self.send_response(200)
                self.send_header('Content-Length', str(10 ** 12))
                self.end_headers()
                try:
                    self.wfile.write(good * 10)
                except OSError:
                    pass
                return
            elif p == '/trunc.png':
                self.send_response(200)
                self.send_header('Content-Length', '100000')
                self.end_headers()
                self.wfile.write(good[:50])
                self.close_connection = True
                return
            elif p == '/dims.png':
                body = png_header(100000, 100000)
            elif p == '/text.png':
                body = b'just text'
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        base = f'http://127.0.0.1:{httpd.server_address[1]}'
        names = ['good.png', 'loop', 'huge.png', 'trunc.png', 'dims.png', 'text.png', 'missing.png']
        body = {'imageReferences': [{'name': f'r{i}-{n.replace("/", "")}', 'url': f'{base}/{n}'}
                                    for i, n in enumerate(names)]}
        body['imageReferences'].append({'name': 'closed.png', 'url': 'http://127.0.0.1:1/x.png'})
        r = refs(server, json.dumps(body).encode(), batch='refs-hostile')
        assert r.status == 200, r
        assert server.wait_count('refs-hostile', 1) == 1
        deadline = time.time() + 30 * MULT
        while time.time() < deadline:
            sh = server.ds('GET', '/refs-hostile/shards').json()['shards']
            if sh and all(x['statusType'] != 'info' and 'progress' not in x['statusName'].lower()
                          and 'pending' not in x['statusName'].lower() for x in sh):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        r = server.ds('GET', '/refs-hostile/list')
        assert [f['fileName'] for f in r.json()['filesMetadata']] == ['r0-good.png'], r
    finally:
        httpd.shutdown()
        httpd.server_close()
    alive(server)


def test_ssrf_targets_refused(server_factory):
    """Without --allow-private-urls no reference reaches a private address,
    however it is spelled or redirected."""
    import http.server
    import threading
    hits = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header('Content-Length', str(len(png_bytes(80))))
            self.end_headers()
            self.wfile.write(png_bytes(80))

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    s = server_factory(sub='ssrf').start()
    try:
        port = httpd.server_address[1]
        urls = [f'http://127.0.0.1:{port}/a.png', f'http://localhost:{port}/b.png', f'http://[::1]:{port}/c.png',
                f'http://0177.0.0.1:{port}/d.png', f'http://2130706433:{port}/e.png', f'http://127.1:{port}/f.png',
                f'http://[::ffff:127.0.0.1]:{port}/g.png', 'http://169.254.169.254/latest/meta-data',
                f'http://0.0.0.0:{port}/h.png', f'file:///etc/passwd', f'gopher://127.0.0.1:{port}/x']
        for i, u in enumerate(urls):
            r = s.ds('POST', f'/ssrf-{i}/bulk-upload/image-references',
                     body=json.dumps({'imageReferences': [{'name': f'x{i}.png', 'url': u}]}).encode())
            assert r.status in (200, 400), (u, r)
            json.loads(r.body)
        for i in range(len(urls)):
            deadline = time.time() + 20 * MULT
            while True:
                r = s.ds('GET', f'/ssrf-{i}/shards')
                sh = r.json().get('shards', []) if r.status == 200 else []
                if all('error' in x['statusType'] or x['statusName'] == 'ingested' for x in sh):
                    break
                assert time.time() < deadline, (urls[i], sh)
                time.sleep(0.1)
            r = s.ds('GET', f'/ssrf-{i}/count')
            assert r.status == 404 or r.json()['count'] == 0, (urls[i], r)
        assert hits == [], hits
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- ids and pagination -----------------------------------------------------------------

def test_bad_ids(server):
    for bid in ['UPPER', 'a' * 65, '..%2F..%2Fetc', '%2E%2E', 'a%2Fb', '%C3%A9', 'a%20b', 'a.b', '-', '%00']:
        url = path_for(server, f'/{bid}/count') + f'?api_key={server.key}'
        r = server.raw('GET', url)
        assert r.status in (400, 404), (bid, r)
        assert_error(r, 400, 404)
    # non-ASCII bytes are refused before routing (issue 9 item 1), with a JSON message naming the byte
    for bid, byte in [('a' + '%C3%A9' * 65, '0xC3'), ('%ff%fe', '0xFF')]:
        r = server.raw('GET', path_for(server, f'/{bid}/count') + f'?api_key={server.key}')
        assert_error(r, 400)
        assert f'the request path holds the byte {byte}' in r.json()['error'], r
    # a long id is still quoted cut, as JSON
    r = server.raw('GET', path_for(server, '/' + 'a' * 300 + '/count') + f'?api_key={server.key}')
    assert_error(r, 400)
    assert 'invalid batch id' in r.json()['error'], r
    ok = path_for(server, '/' + 'a' * 64 + '/count') + f'?api_key={server.key}'
    assert_error(server.raw('GET', ok), 404)
    for ws in ['OTHER', 'other', '..', 'a' * 300]:
        r = server.raw('GET', f'{DS}/{ws}/batches/{KEEP}/count?api_key={server.key}')
        assert_error(r, 400, 403, 404)
    alive(server)


def test_pagination_tokens(server):
    r = server.upload_image('page-other', 'o.png', png_bytes(20))
    assert r.status == 200
    server.wait_count('page-other', 1)
    for q in [{'pageSize': '0'}, {'pageSize': '-1'}, {'pageSize': '99999999999999999999'}, {'pageSize': 'x'},
              {'pageSize': '1.5'}, {'pageSize': ''}, {'pageSize': '2000000'}]:
        for rest in [f'/{KEEP}/list', f'/{KEEP}/shards', '']:
            r = server.ds('GET', rest, query=q)
            assert_error(r, 400)
    r = server.ds('GET', f'/{KEEP}/list', query={'pageSize': 1})
    assert r.status == 200
    tok = r.json()['nextPageToken']
    assert tok
    r = server.ds('GET', '/page-other/list', query={'pageSize': 1})
    other_tok = r.json().get('nextPageToken')
    import base64
    forged = [base64.urlsafe_b64encode(x).decode().rstrip('=') for x in
              (b'k1:' + b'9' * 20, b'k1:' + b'9' * 19, b'k1:-1', b'k1:', b'k1:1\x00', b'k2:1')]
    for t in ['garbage', '', '%%%', 'A' * 10000, '\u00e9', tok[:-2], tok + 'x', '-1', '0', '9' * 40] + forged:
        r = server.ds('GET', f'/{KEEP}/list', query={'pageSize': 1, 'nextPageToken': t})
        assert r.status in (200, 400), (t, r)
        json.loads(r.body)
        r = server.ds('GET', '', query={'pageSize': 1, 'nextPageToken': t})
        assert r.status in (200, 400), (t, r)
        r = server.ds('GET', f'/{KEEP}/shards', query={'pageSize': 1, 'nextPageToken': t})
        assert r.status in (200, 400), (t, r)
    # a token of this batch used on another batch, or on another listing
    r = server.ds('GET', '/page-other/list', query={'pageSize': 1, 'nextPageToken': tok})
    assert_error(r, 400)
    assert 'nextPageToken' in r.json()['error']
    assert_error(server.ds('GET', f'/{KEEP}/shards', query={'pageSize': 1, 'nextPageToken': tok}), 400)
    assert_error(server.ds('GET', '', query={'pageSize': 1, 'nextPageToken': tok}), 400)
    assert_error(server.ds('GET', f'/{KEEP}/list', query={'pageSize': 1, 'nextPageToken': tok,
                                                         'partName': 'other'}), 400)
    # and it still works where it came from
    r = server.ds('GET', f'/{KEEP}/list', query={'pageSize': 1, 'nextPageToken': tok})
    assert r.status == 200, r
    del other_tok
    alive(server)


# ---- signed URLs --------------------------------------------------------------------------

def tamper_q(url, edit):
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    q = edit(q)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, urllib.parse.urlencode(q), ''))


def test_signed_urls(server):
    r = server.ds('POST', '/signed-bad/bulk-upload/image-files')
    assert r.status == 200, r
    url = r.json()['signedURLDetails']['uploadURL']
    hdrs = r.json()['signedURLDetails'].get('extensionHeaders') or {}
    tar = make_tar([('s.png', png_bytes(30))])
    fields = [k for k, _ in urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)]
    # blobs on S3 the URL is the store's presigned one (X-Amz-* fields):
    # the store refuses what does not match its signature (its own XML
    # errors; radosgw takes a field repeated with the same value), the
    # untampered URL works
    s3 = server.blobs.s3
    bads = []
    for f in fields:
        bads.append(tamper_q(url, lambda q, f=f: [kv for kv in q if kv[0] != f]))          # missing
        if not s3:
            bads.append(tamper_q(url, lambda q, f=f: q + [kv for kv in q if kv[0] == f]))  # duplicated, same
        bads.append(tamper_q(url, lambda q, f=f: q + [(f, 'x')]))                          # duplicated, other
        bads.append(tamper_q(url, lambda q, f=f: [(k, v + '0' if k == f else v) for k, v in q]))
        bads.append(tamper_q(url, lambda q, f=f: [(k, '' if k == f else v) for k, v in q]))
    exp_f, lim_f = ('X-Amz-Expires', None) if s3 else ('expires', 'limit')
    for exp in ['0', '-1', '99999999999999999999999', 'abc', '1e10', ' 1'] + ([] if s3 else ['1']):
        bads.append(tamper_q(url, lambda q, e=exp: [(k, e if k == exp_f else v) for k, v in q]))
    for lim in ['-1', 'abc', '99999999999999999999999'] if lim_f else []:
        bads.append(tamper_q(url, lambda q, e=lim: [(k, e if k == lim_f else v) for k, v in q]))
    for b in bads:
        p = server.raw('PUT', b, body=tar, headers=hdrs)
        assert p.status in (400, 403, 404), (b, url, p)
        if not s3:
            assert_error(p, 400, 403, 404)
    for m in ['GET', 'POST', 'DELETE', 'HEAD']:
        p = server.raw(m, url)
        assert p.status in (403, 404, 405), (m, p)
        if m != 'HEAD' and not s3:
            assert_error(p, 403, 404, 405)
    p = server.raw('PUT', url, body=tar, headers=hdrs)
    assert p.status == 200, p
    server.wait_count('signed-bad', 1)
    p = server.raw('PUT', url, body=tar, headers=hdrs)   # replay after success
    if s3:
        assert p.status == 412, p  # the store refuses it (If-None-Match: *)
        time.sleep(2)
        assert server.ds('GET', '/signed-bad/count').json()['count'] == 1
    else:
        assert_error(p, 403, 409)
    alive(server)


@local_blobs_only  # vbatch's own PUT handler (on S3 the store takes the PUTs: test_blobs_s3)
def test_signed_url_concurrent_put(server):
    """A second PUT to a URL whose first PUT is still streaming is refused,
    and the first one's upload is what gets indexed."""
    r = server.ds('POST', '/signed-race/bulk-upload/image-files')
    url = r.json()['signedURLDetails']['uploadURL']
    u = urllib.parse.urlsplit(url)
    target = u.path + '?' + u.query
    good = make_tar([('race.png', png_bytes(31))])
    a = socket.create_connection(('127.0.0.1', server.port))
    a.settimeout(30 * MULT)
    a.sendall(f'PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(good)}\r\n\r\n'.encode()
              + good[:1000])
    time.sleep(0.3)
    p = server.raw('PUT', url, body=b'garbage, not a tar' * 100)
    assert_error(p, 409)
    a.sendall(good[1000:])
    out = b''
    while parse_raw(out) is None:
        b = a.recv(65536)
        if not b:
            break
        out += b
    a.close()
    assert parse_raw(out) is not None and parse_raw(out)[0] == 200, out[:300]
    assert server.wait_count('signed-race', 1) == 1
    p = server.raw('PUT', url, body=good)   # and once done, the URL is spent
    assert_error(p, 409)
    # a PUT cut off half-way gives the URL back: the retry succeeds
    r = server.ds('POST', '/signed-race2/bulk-upload/image-files')
    url = r.json()['signedURLDetails']['uploadURL']
    u = urllib.parse.urlsplit(url)
    a = socket.create_connection(('127.0.0.1', server.port))
    a.sendall(f'PUT {u.path}?{u.query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(good)}\r\n\r\n'.encode()
              + good[:1000])
    time.sleep(0.2)
    a.close()
    deadline = time.time() + 10 * MULT
    while True:
        p = server.raw('PUT', url, body=good)
        if p.status != 409 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert p.status == 200, p
    assert server.wait_count('signed-race2', 1) == 1
    alive(server)


# ---- tar shards -----------------------------------------------------------------------------

def ti(name, kind, **kw):
    t = tarfile.TarInfo(name)
    t.type = kind
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def gnu_tar(members):
    """make_tar in GNU format (long names), raw bytes kept in names."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=tarfile.GNU_FORMAT, encoding='utf-8',
                      errors='surrogateescape') as t:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                t.addfile(m)
            else:
                t.addfile(ti(m[0], tarfile.REGTYPE, size=len(m[1]), mtime=1700000000), io.BytesIO(m[1]))
    return bio.getvalue()


def vbatch_answer(server, p):
    """A PUT's answer is vbatch's JSON (on S3 it is the store's)."""
    if not server.blobs.s3:
        json.loads(p.body)


def test_tar_shards(server):
    good = png_bytes(40)
    members = [('/abs.png', good), ('../up.png', good), ('a/../../up2.png', good),
               ti('sym.png', tarfile.SYMTYPE, linkname='/etc/passwd'),
               ti('hard.png', tarfile.LNKTYPE, linkname='ok.png'),
               ti('dev.png', tarfile.CHRTYPE, devmajor=1, devminor=3),
               ti('fifo.png', tarfile.FIFOTYPE), ('zero.png', b''), ('bad\udcff\udcfe.png', good),
               ('ctl\x01.png', good), ('n' * 300 + '.png', good), ('ok.png', good)]
    d, p = server.put_shard('tar-bad', gnu_tar(members))
    assert p.status == 200, p
    # 600 entries
    many = [(f'm{i}.png', b'') for i in range(600)]
    d, p = server.put_shard('tar-many', make_tar(many))
    assert p.status in (200, 400, 413), p
    vbatch_answer(server, p)
    # truncated
    t = make_tar([('t1.png', png_bytes(41)), ('t2.png', png_bytes(42))])
    d, p = server.put_shard('tar-trunc', t[:700])
    assert p.status in (200, 400), p
    vbatch_answer(server, p)
    # gzip instead of tar
    d, p = server.put_shard('tar-gz', gzip.compress(make_tar([('g.png', good)])))
    assert p.status in (200, 400, 415), p
    vbatch_answer(server, p)
    # a member claiming a huge size (sparse-like bomb) in a small archive
    hdr = tarfile.TarInfo('bomb.png')
    hdr.size = 10 ** 11
    buf = hdr.tobuf(format=tarfile.GNU_FORMAT) + b'\x00' * 1024
    d, p = server.put_shard('tar-bomb', buf)
    assert p.status in (200, 400, 413), p
    vbatch_answer(server, p)
    # a GNU sparse member
    sp = bytearray(tarfile.TarInfo('sparse.png').tobuf(format=tarfile.GNU_FORMAT))
    sp[156] = ord('S')
    sp[148:156] = b'        '
    chk = sum(sp[:512])
    sp[148:156] = ('%06o\x00 ' % chk).encode()
    d, p = server.put_shard('tar-bomb', bytes(sp) + b'\x00' * 1024)
    assert p.status in (200, 400, 413), p
    # a PAX header with a giant size and path
    pax = tarfile.TarInfo('pax.png')
    pax.size = 0
    pax.pax_headers = {'size': '99999999999999999999', 'path': 'x' * 100000}
    try:
        raw = pax.tobuf(format=tarfile.PAX_FORMAT)
    except Exception:
        raw = b''
    if raw:
        d, p = server.put_shard('tar-bomb', raw + b'\x00' * 1024)
        assert p.status in (200, 400, 413), p
    server.wait_count('tar-bad', 1)
    time.sleep(1)
    r = server.ds('GET', '/tar-bad/list', query={'pageSize': 100})
    names = sorted(f['fileName'] for f in r.json()['filesMetadata'])
    assert names == ['ok.png'], names
    for b in ['tar-bad', 'tar-many', 'tar-trunc', 'tar-gz', 'tar-bomb']:
        r = server.ds('GET', f'/{b}/shards')
        assert r.status == 200, r
    # a gzip is not an uncompressed tar: its shard fails with a reason
    deadline = time.time() + 20 * MULT
    while True:
        sh = server.ds('GET', '/tar-gz/shards').json()['shards']
        if sh[0]['statusType'] != 'info' or time.time() > deadline:
            break
        time.sleep(0.1)
    assert 'error' in sh[0]['statusType'] and sh[0]['statusMetadata']['reason'], sh
    alive(server)


# ---- images -----------------------------------------------------------------------------------

def png_header(w, h):
    def chunk(kind, data):
        c = struct.pack('>I', len(data)) + kind + data
        return c + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\x00' * 1000)) + chunk(b'IEND', b''))


def bmp(w, h):
    row = (w * 3 + 3) & ~3
    pix = b'\x00' * min(row * abs(h), 1000)
    hdr = struct.pack('<2sIHHI', b'BM', 54 + len(pix), 0, 0, 54)
    dib = struct.pack('<IiiHHIIiiII', 40, w, h, 1, 24, 0, len(pix), 2835, 2835, 0, 0)
    return hdr + dib + pix


def test_corrupt_images(server):
    jpg = jpeg_bytes()
    png = png_bytes(50, w=32, h=32)
    cases = [('tj.jpg', jpg[:len(jpg) // 2]), ('tp.png', png[:len(png) // 2]), ('tp2.png', png[:40]),
             ('huge.png', png_header(100000, 100000)), ('zero.png', png_header(0, 0)),
             ('neg.bmp', bmp(100, -2 ** 31)), ('negw.bmp', bmp(-5, 10)), ('huge.bmp', bmp(2 ** 30, 2 ** 30)),
             ('text.jpg', b'hello, I am text\n' * 10), ('empty.jpg', b''), ('soi.jpg', b'\xff\xd8'),
             ('gif.gif', b'GIF89a\xff\xff\xff\xff\x00\x00\x00;')]
    for name, data in cases:
        r = server.upload_image('img-bad', name, data)
        assert_error(r, 400, 413, 415)  # truncated ones too: staging checks the whole stream
    # the same through a tar shard: each member fails alone, the good one lands
    d, p = server.put_shard('img-bad-tar', make_tar(cases + [('fine.png', png)]))
    assert p.status == 200, p
    server.wait_count('img-bad-tar', 1)
    time.sleep(1)
    r = server.ds('GET', '/img-bad-tar/list', query={'pageSize': 100})
    names = sorted(f['fileName'] for f in r.json()['filesMetadata'])
    assert names == ['fine.png'], names
    r = server.ds('GET', '/img-bad/count')
    assert r.status == 404 or r.json()['count'] == 0, r
    alive(server)


def test_valid_images_still_accepted(server):
    """The header checks above do not refuse real files (top-down BMP, 16-bit PNG, EXIF JPEG...)."""
    d = os.path.join(REPO, 'tests', 'data', 'images')
    for name in sorted(os.listdir(d)):
        if name.endswith('.py') or name.startswith('anim'):
            continue
        with open(os.path.join(d, name), 'rb') as f:
            r = server.upload_image('img-valid', name, f.read())
        assert r.status == 200, (name, r)


# ---- afterwards ----------------------------------------------------------------------------

def test_zz_alive_and_intact(server):
    alive(server)
    r = server.ds('GET', f'/{KEEP}/count')
    assert r.status == 200 and r.json()['count'] == 3, r
    r = server.ds('GET', f'/{KEEP}/list', query={'pageSize': 10})
    files = r.json()['filesMetadata']
    assert sorted(f['fileName'] for f in files) == ['k0.png', 'k1.png', 'k2.png']
    for f in files:
        g = server.raw('GET', f['downloadURL'])
        assert g.status == 200 and g.body.startswith(b'\x89PNG'), g
