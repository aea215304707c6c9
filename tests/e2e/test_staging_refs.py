"""Reference ingests fetched from a real (local) HTTP server, the SSRF guard,
and ingest webhooks delivered to a local receiver."""
import http.server
import json
import threading
import time

import pytest

from conftest import MULT, make_tar, png_bytes


class Origin:
    """A local HTTP server: GET /img/<n>.png serves a PNG, GET /refs.jsonl a
    references file, POST /hook records webhook deliveries."""

    def __init__(self, n_images=30):
        self.images = {f'/img/{i}.png': png_bytes(1000 + i) for i in range(n_images)}
        self.hooks = []
        self.jsonl = b''
        origin = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = origin.images.get(self.path)
                if self.path == '/refs.jsonl':
                    body = origin.jsonl
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n)
                origin.hooks.append((self.path, dict(self.headers), json.loads(body or b'null')))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f'http://127.0.0.1:{self.port}{path}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()


def wait_for(cond, timeout=30, what='condition'):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f'timed out waiting for {what}')


def test_image_references_fetched(server, origin):
    refs = [{'name': f'r{i}.png', 'url': origin.url(f'/img/{i}.png')} for i in range(20)]
    body = json.dumps({'imageReferences': refs, 'ingestId': 'refs-fetch-1',
                       'notificationsURL': origin.url('/hook')})
    r = server.ds('POST', '/refs-fetch/bulk-upload/image-references', body=body)
    assert r.status == 200, r
    assert r.json()['ingestId'] == 'refs-fetch-1'
    assert server.wait_count('refs-fetch', 20) == 20
    listed = server.ds('GET', '/refs-fetch/list', query={'pageSize': 100}).json()['filesMetadata']
    assert sorted(f['fileName'] for f in listed) == sorted(x['name'] for x in refs)
    one = [f for f in listed if f['fileName'] == 'r3.png'][0]
    assert server.raw('GET', one['downloadURL']).body == origin.images['/img/3.png']
    # the ingest webhook arrives, shaped as COMPAT.md section 4
    hooks = wait_for(lambda: [h for h in origin.hooks if h[2].get('ingest_id') == 'refs-fetch-1'],
                     what='an ingest webhook')
    path, headers, payload = hooks[0]
    assert payload['type'] == 'roboflow-data-staging-notification-v1'
    assert payload['batch_id'] == 'refs-fetch'
    assert payload['delivery_attempt'] >= 1
    assert payload['notification']['type'] in ('ingest-status-notification-v1',
                                                'ingest-files-status-notification-v1')
    assert headers.get('Authorization') == f'Bearer rf_{server.workspace}'


def test_references_jsonl_url(server, origin):
    origin.jsonl = b''.join(json.dumps({'name': f'j{i}.png', 'url': origin.url(f'/img/{i}.png')}).encode()
                            + b'\n' for i in range(7))
    r = server.ds('POST', '/refs-jsonl/bulk-upload/image-references',
                  body=json.dumps({'imageReferencesURL': origin.url('/refs.jsonl')}))
    assert r.status == 200, r
    assert server.wait_count('refs-jsonl', 7) == 7


def test_references_private_address_refused(server_factory, origin):
    s = server_factory().start()  # no allow-list: loopback is refused
    r = s.ds('POST', '/refs-ssrf/bulk-upload/image-references',
             body=json.dumps({'imageReferences': [{'name': 'a.png', 'url': origin.url('/img/1.png')}]}))
    assert r.status in (200, 400), r
    if r.status == 200:
        def failed():
            sh = s.ds('GET', '/refs-ssrf/shards').json()['shards']
            return sh and all('error' in x['statusType'] for x in sh)
        wait_for(failed, what='the shard to fail')
        assert s.ds('GET', '/refs-ssrf/count').json()['count'] == 0
    # nothing was fetched from the origin
    assert not origin.hooks
    # and an http(s)-only rule: other schemes are refused
    r = s.ds('POST', '/refs-ssrf2/bulk-upload/image-references',
             body=json.dumps({'imageReferences': [{'name': 'a.png', 'url': 'file:///etc/passwd'}]}))
    if r.status == 200:
        wait_for(lambda: all('error' in x['statusType']
                             for x in s.ds('GET', '/refs-ssrf2/shards').json()['shards'] or [{'statusType': ''}]),
                 what='the file:// shard to fail')
        assert s.ds('GET', '/refs-ssrf2/count').json()['count'] == 0
    else:
        assert r.status == 400


def test_tar_notification_config_webhook(server, origin):
    members = [(f't{i}.png', png_bytes(i)) for i in range(5)]
    members.append(('notification_config.json',
                    json.dumps({'ingestId': 'tar-hook', 'notificationsURL': origin.url('/hook')}).encode()))
    d, put = server.put_shard('refs-tarhook', make_tar(members))
    assert put.status == 200, put
    assert server.wait_count('refs-tarhook', 5) == 5
    hooks = wait_for(lambda: [h for h in origin.hooks if h[2].get('ingest_id') == 'tar-hook'],
                     what='the tar shard webhook')
    payload = hooks[0][2]
    assert payload['shard_id'] == d['shardId']
    files = [h[2] for h in hooks if h[2]['notification']['type'] == 'ingest-files-status-notification-v1']
    if files:
        assert sorted(files[0]['notification']['ingested_files']) == sorted(n for n, _ in members[:5])


def test_files_status_all_failed_is_not_success(server, origin):
    refs = [{'name': f'gone{i}.png', 'url': origin.url(f'/missing/{i}.png')} for i in range(3)]
    body = json.dumps({'imageReferences': refs, 'ingestId': 'refs-allfail',
                       'notificationsURL': origin.url('/hook'),
                       'notificationCategories': ['files-status']})
    r = server.ds('POST', '/refs-allfail/bulk-upload/image-references', body=body)
    assert r.status == 200, r
    hooks = wait_for(lambda: [h for h in origin.hooks if h[2].get('ingest_id') == 'refs-allfail'
                              and h[2]['notification']['type'] == 'ingest-files-status-notification-v1'],
                     what='the files-status webhook')
    n = hooks[0][2]['notification']
    assert n['ingested_files'] == []
    assert len(n['failed_files']) == 3
    assert n['success'] is False
