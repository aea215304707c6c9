"""Staging refuses what no job can decode (issue 10, section 3): truncated
JPEG/PNG/WebP/BMP, an animated WebP (refused: jobs decode still images
only) and garbage behind a valid magic are refused by content, with a 400
and a reason for a single upload, a per-file reason in a tar shard's
statusMetadata.failedFiles, and a failed reference with its reason; every
accepted image is one a job decodes."""
import http.server
import json
import os
import threading
import time

import pytest

from conftest import MULT, REPO, jpeg_bytes, make_tar, png_bytes
from jobs_helpers import CROP_WF, bp, job_body, put_workflow, wait_job

IMAGES = os.path.join(REPO, 'tests', 'data', 'images')


def read(name):
    with open(os.path.join(IMAGES, name), 'rb') as f:
        return f.read()


def bad_files():
    """(file name, bytes, failure type, words of the reason)"""
    jpg, png, webp, bmp = jpeg_bytes(), png_bytes(7, w=32, h=32), read('rgb16x8.webp'), read('rgb16x8_24.bmp')
    corrupt = 'corrupt-image-file'
    return [
        ('cut-half.jpg', jpg[:len(jpg) // 2], corrupt, 'truncated or corrupt JPEG'),
        ('cut-eoi.jpg', jpg[:-2], corrupt, 'truncated or corrupt JPEG'),
        ('cut-half.png', png[:len(png) // 2], corrupt, 'truncated or corrupt PNG'),
        ('cut-iend.png', png[:-12], corrupt, 'truncated or corrupt PNG'),
        ('cut.webp', webp[:-6], corrupt, 'truncated or corrupt WebP'),
        ('cut.bmp', bmp[:-10], corrupt, 'truncated or corrupt BMP'),
        ('anim.webp', read('anim.webp'), 'unsupported-file-type', 'animated WebP'),
        ('magic.jpg', b'\xff\xd8\xff\xe0' + b'\x5a' * 300, corrupt, 'JPEG'),
        ('magic.png', b'\x89PNG\r\n\x1a\n' + b'\x5a' * 300, corrupt, 'PNG'),
        ('magic.webp', b'RIFF\x40\x01\x00\x00WEBPVP8 ' + b'\x5a' * 300, corrupt, 'WebP'),
        ('flip.png', png[:60] + bytes([png[60] ^ 0xFF]) + png[61:], corrupt, 'truncated or corrupt PNG'),
    ]


def good_files():
    return [(n, read(n)) for n in sorted(os.listdir(IMAGES))
            if not n.endswith('.py') and not n.startswith('anim')] + [('tiny.jpg', jpeg_bytes())]


def test_single_uploads_refused_with_reason(server):
    for name, data, _, words in bad_files():
        r = server.upload_image('content-single', name, data)
        assert r.status == 400, (name, r)
        err = r.json().get('error') or r.json().get('message') or ''
        assert name in err and words in err, (name, err)
    r = server.ds('GET', '/content-single/count')
    assert r.status == 404 or r.json()['count'] == 0, r
    for name, data in good_files():
        r = server.upload_image('content-single-ok', name, data)
        assert r.status == 200, (name, r)


def test_tar_entries_refused_with_reason(server):
    bad = bad_files()
    good = good_files()
    d, put = server.put_shard('content-tar', make_tar([(n, b) for n, b, _, _ in bad] + good))
    assert put.status == 200, put
    assert server.wait_count('content-tar', len(good)) == len(good)
    deadline = time.time() + 30 * MULT
    while True:
        sh = [s for s in server.ds('GET', '/content-tar/shards').json()['shards'] if s['shardId'] == d['shardId']]
        if sh and sh[0]['statusMetadata'].get('failedFiles') is not None or time.time() > deadline:
            break
        time.sleep(0.1)
    failed = {f['file_name']: f for f in sh[0]['statusMetadata']['failedFiles']}
    assert sorted(failed) == sorted(n for n, _, _, _ in bad), failed
    for name, _, ftype, words in bad:
        assert failed[name]['type'] == ftype, failed[name]
        assert words in failed[name]['reason'], failed[name]
    listed = server.ds('GET', '/content-tar/list', query={'pageSize': 100}).json()['filesMetadata']
    assert sorted(f['fileName'] for f in listed) == sorted(n for n, _ in good)


def test_every_staged_image_decodes_in_a_job(server):
    """What staging accepted, a job decodes: no image of the batch fails."""
    put_workflow(server, 'crop', CROP_WF)
    good = good_files()
    for name, data in good:
        assert server.upload_image('content-job', name, data).status == 200
    assert bp(server, 'POST', '/content-job1', job_body('content-job', 'crop')).status == 200
    job = wait_job(server, 'content-job1')
    assert job['error'] is False, job
    assert job['lastNotification']['imagesFailed'] == 0, job
    assert job['lastNotification']['imagesProcessed'] == len(good)


@pytest.fixture
def origin():
    files = {f'/{n}': b for n, b, _, _ in bad_files()}
    files['/good.png'] = png_bytes(3)

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def test_references_refused_with_reason(server, origin):
    bad = bad_files()
    refs = [{'name': n, 'url': f'{origin}/{n}'} for n, _, _, _ in bad] + [{'name': 'good.png',
                                                                             'url': f'{origin}/good.png'}]
    r = server.ds('POST', '/content-refs/bulk-upload/image-references', body=json.dumps({'imageReferences': refs}))
    assert r.status == 200, r
    assert server.wait_count('content-refs', 1) == 1
    deadline = time.time() + 30 * MULT
    failed = {}
    while time.time() < deadline:
        sh = server.ds('GET', '/content-refs/shards').json()['shards']
        failed = {f['file_name']: f for s in sh for f in (s.get('statusMetadata') or {}).get('failedFiles') or []}
        if len(failed) == len(bad):
            break
        time.sleep(0.1)
    assert sorted(failed) == sorted(n for n, _, _, _ in bad), failed
    for name, _, ftype, words in bad:
        assert failed[name]['type'] == ftype and words in failed[name]['reason'], failed[name]
    listed = server.ds('GET', '/content-refs/list').json()['filesMetadata']
    assert [f['fileName'] for f in listed] == ['good.png']
