"""Bytes outside the grammar in the request target (issue 9 item 1).

libmicrohttpd's own decoder turned `%00` into a NUL that ended the C string,
so `…/workflows/victim%00x` named `victim`: a DELETE deleted it, a signed
URL with `%00.png` appended still downloaded the file, `api_key=KEY%00junk`
authenticated.  The server now decodes the path and the query itself and
refuses, with 400 and a JSON error before routing, a NUL or another byte no
path may hold (only printable ASCII other than space) and a NUL or control
byte in a query key or value.

Every path parameter of every route family is tried, and each victim is
checked to be untouched afterwards.
"""
import json
import os
import urllib.parse

import pytest

from conftest import DS, Server, make_tar, multipart, png_bytes
from jobs_helpers import BP, CROP_WF, MODELS, job_body, ort_env, put_workflow, wait_job

WF = '/workflows/v1/external'
MR = '/models/v1/external'
DET = os.path.join(MODELS, 'synth-det')
# after a valid value: a NUL (the cut), control bytes, space, DEL, non-ASCII, a bad escape
SUFFIXES = ['%00x', '%00', '%01', '%0a', '%20x', '%7f', '%c3%a9', '%ff', '%zz', '%4']


def _read(*p):
    with open(os.path.join(*p), 'rb') as f:
        return f.read()


def det_metadata(**extra):
    m = {'task': 'object-detection', 'class_names': _read(DET, 'class_names.txt').decode().split(),
         'environment': json.loads(_read(DET, 'environment.json'))}
    m.update(extra)
    return m


def refused(r, what):
    assert r.status == 400, (what, r)
    body = r.json()
    assert isinstance(body.get('error'), str) and body['error'], (what, body)
    return body['error']


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('target'))
    s = Server(d, args=['--allow-private-urls'], env=ort_env(d)).start()
    ws = s.workspace
    # victims: a workflow, a model, a batch with one image, a job
    put_workflow(s, 'victim', CROP_WF)
    ctype, body = multipart([('weights', 'weights.onnx', _read(DET, 'weights.onnx')),
                             ('metadata', None, json.dumps(det_metadata()).encode())])
    r = s.request('PUT', f'{MR}/{ws}/models/victim', body=body, headers={'Content-Type': ctype})
    assert r.status == 200, r
    r = s.upload_image('victim', 'a.png', png_bytes(1))
    assert r.status == 200, r
    s.wait_count('victim', 1)
    r = s.request('POST', f'{BP}/{ws}/jobs/victimjob', body=json.dumps(job_body('victim', 'victim')),
                  headers={'Content-Type': 'application/json'})
    assert r.status == 200, r
    wait_job(s, 'victimjob')
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def url(s, path, query=None):
    q = {'api_key': s.key}
    q.update(query or {})
    return path + '?' + urllib.parse.urlencode(q)


def victims_intact(s):
    ws = s.workspace
    r = s.request('GET', f'{WF}/{ws}/workflows/victim')
    assert r.status == 200, r
    r = s.request('GET', f'{MR}/{ws}/models/victim')
    assert r.status == 200 and r.json()['classNames'] == ['circle', 'square', 'triangle'], r
    assert s.ds('GET', '/victim/count').json()['count'] == 1
    r = s.request('GET', f'{BP}/{ws}/jobs/victimjob')
    assert r.status == 200 and r.json()['job']['isTerminal'], r
    r = s.request('GET', f'{BP}/{ws}/jobs/newjob')
    assert r.status == 404, r
    r = s.request('GET', f'{WF}/{ws}/workflows/newwf')
    assert r.status == 404, r


@pytest.mark.parametrize('suffix', SUFFIXES)
def test_path_parameters(srv, suffix):
    s, ws = srv, srv.workspace
    wf_body = json.dumps({'specification': CROP_WF}).encode()
    other = dict(CROP_WF, outputs=CROP_WF['outputs'][:1])
    ctype, model_body = multipart([('weights', 'weights.onnx', _read(DET, 'weights.onnx')),
                                   ('metadata', None, json.dumps(det_metadata(class_names=['x', 'y', 'z'])).encode())])
    img_ct, img_body = multipart([('file', 'b.png', png_bytes(2))])
    json_ct = {'Content-Type': 'application/json'}
    job = json.dumps(job_body('victim', 'victim')).encode()
    cases = [
        # the workspace segment of every family
        ('GET', f'{WF}/{ws}{suffix}/workflows', None, {}),
        ('GET', f'{MR}/{ws}{suffix}/models', None, {}),
        ('GET', f'{BP}/{ws}{suffix}/jobs', None, {}),
        ('GET', f'{DS}/{ws}{suffix}/batches', None, {}),
        # workflows
        ('GET', f'{WF}/{ws}/workflows/victim{suffix}', None, {}),
        ('PUT', f'{WF}/{ws}/workflows/victim{suffix}', json.dumps(other).encode(), json_ct),
        ('PUT', f'{WF}/{ws}/workflows/newwf{suffix}', wf_body, json_ct),
        ('DELETE', f'{WF}/{ws}/workflows/victim{suffix}', None, {}),
        # models (the id is the rest of the path: both segments)
        ('GET', f'{MR}/{ws}/models/victim{suffix}', None, {}),
        ('PUT', f'{MR}/{ws}/models/victim{suffix}', model_body, {'Content-Type': ctype}),
        ('POST', f'{MR}/{ws}/models/victim{suffix}/2', model_body, {'Content-Type': ctype}),
        ('DELETE', f'{MR}/{ws}/models/victim{suffix}', None, {}),
        # jobs
        ('POST', f'{BP}/{ws}/jobs/newjob{suffix}', job, json_ct),
        ('GET', f'{BP}/{ws}/jobs/victimjob{suffix}', None, {}),
        ('GET', f'{BP}/{ws}/jobs/victimjob{suffix}/stages', None, {}),
        ('GET', f'{BP}/{ws}/jobs/victimjob/stages/x{suffix}/tasks', None, {}),
        ('GET', f'{BP}/{ws}/jobs/victimjob{suffix}/logs', None, {}),
        ('POST', f'{BP}/{ws}/jobs/victimjob{suffix}/restart', b'{}', json_ct),
        ('POST', f'{BP}/{ws}/jobs/victimjob{suffix}/abort', b'{}', json_ct),
        # staging
        ('GET', f'{DS}/{ws}/batches/victim{suffix}', None, {}),
        ('GET', f'{DS}/{ws}/batches/victim{suffix}/count', None, {}),
        ('GET', f'{DS}/{ws}/batches/victim{suffix}/list', None, {}),
        ('GET', f'{DS}/{ws}/batches/victim{suffix}/parts', None, {}),
        ('GET', f'{DS}/{ws}/batches/victim{suffix}/shards', None, {}),
        ('POST', f'{DS}/{ws}/batches/victim{suffix}/upload/image', img_body, {'Content-Type': img_ct}),
        ('POST', f'{DS}/{ws}/batches/victim{suffix}/bulk-upload/image-files', None, {}),
        ('POST', f'{DS}/{ws}/batches/victim{suffix}/upload/video', None, {}),
        ('POST', f'{DS}/{ws}/batches/victim{suffix}/bulk-upload/image-references',
         json.dumps({'imageReferences': [{'name': 'r.jpg', 'url': 'http://127.0.0.1:1/r.jpg'}]}).encode(), json_ct),
        # a literal segment
        ('GET', f'{DS}/{ws}/batches/victim/count{suffix}', None, {}),
        ('GET', f'/healthz{suffix}', None, {}),
    ]
    for method, path, body, headers in cases:
        q = {'fileName': 'b.png'} if 'upload/image' in path else None
        r = s.raw(method, url(s, path, q), body=body, headers=headers)
        refused(r, (method, path))
    victims_intact(s)


# ... and bytes that are not UTF-8 (a stray byte, a cut sequence, a
# surrogate): PostgreSQL refuses such text, so both backends refuse it here
@pytest.mark.parametrize('suffix', ['%00', '%00x', '%01', '%1b', '%7f', '%ff', '%c3', '%ed%a0%80'])
def test_query_values(srv, suffix):
    s, ws = srv, srv.workspace
    # the key cut at the NUL would authenticate
    r = s.raw('GET', f'{DS}/{ws}/batches/victim/count?api_key={s.key}{suffix}')
    refused(r, 'api_key')
    r = s.raw('GET', f'{DS}/{ws}/batches/victim/count?api_key={s.key}&partName=x{suffix}')
    refused(r, 'partName')
    r = s.raw('GET', f'{DS}/{ws}/batches/victim/count?api_key={s.key}&partName{suffix}=x')
    refused(r, 'query key')
    r = s.raw('DELETE', f'{WF}/{ws}/workflows/victim?api_key={s.key}{suffix}')
    refused(r, 'api_key')
    victims_intact(s)


def test_query_tab_and_newline_still_allowed(srv):
    """JSON metadata in a query value may be pretty-printed."""
    s, ws = srv, srv.workspace
    meta = json.dumps(det_metadata(), indent='\t')
    assert '\n' in meta and '\t' in meta
    r = s.request('PUT', f'{MR}/{ws}/models/pretty-meta', body=_read(DET, 'weights.onnx'),
                  query={'metadata': meta}, headers={'Content-Type': 'application/octet-stream'})
    assert r.status == 200, r
    # an escaped '/' in a model id still splits it, a '+' in a query value is a space
    r = s.request('GET', f'{MR}/{ws}/models/pretty-meta')
    assert r.status == 200, r
    r = s.raw('GET', f'{DS}/{ws}/batches/victim/count?api_key={s.key}&partName=a+b')
    assert r.status == 200 and r.json()['count'] == 0, r


def test_signed_urls(srv):
    s, ws = srv, srv.workspace
    files = s.ds('GET', '/victim/list').json()['filesMetadata']
    assert len(files) == 1
    dl = files[0]['downloadURL']
    s3 = s.blobs.s3
    if s3:
        # blobs on S3: a single upload's URL is the store's presigned one;
        # vbatch signs (and parses) the range URLs of images in tar shards
        assert not urllib.parse.urlsplit(dl).path.startswith('/blobs/'), dl
        assert s.raw('GET', dl).body == png_bytes(1)
        d, put = s.put_shard('victim3', make_tar([('a.png', png_bytes(1))]))
        assert put.status == 200, put
        assert s.wait_count('victim3', 1) == 1
        dl = s.ds('GET', '/victim3/list').json()['filesMetadata'][0]['downloadURL']
        assert urllib.parse.urlsplit(dl).path.startswith('/blobs/'), dl
    assert s.raw('GET', dl).body == png_bytes(1)
    u = urllib.parse.urlsplit(dl)
    for suffix in ['%00.png', '%00', '%01.png', '%20', '%zz']:
        bad = f'{u.path}{suffix}?{u.query}'
        refused(s.raw('GET', bad), ('GET', suffix))
        assert s.raw('HEAD', bad).status == 400, ('HEAD', suffix)
    # a NUL inside a signed query value
    for k in ('expires', 'signature', 'method'):
        q = urllib.parse.parse_qs(u.query)
        q[k] = [q[k][0] + '\0junk']
        refused(s.raw('GET', f'{u.path}?{urllib.parse.urlencode(q, doseq=True)}'), k)
    # an upload URL with %00.png appended stores nothing; the real one still works once
    r = s.ds('POST', '/victim2/bulk-upload/image-files', query={'displayName': 'victim2'})
    assert r.status == 200, r
    put = r.json()['signedURLDetails']['uploadURL']
    hdrs = r.json()['signedURLDetails'].get('extensionHeaders') or {}
    pu = urllib.parse.urlsplit(put)
    tar = make_tar([('c.png', png_bytes(3))])
    if s3:  # the store's URL: the store refuses another path (SigV4 signs it)
        r = s.raw('PUT', f'http://{pu.netloc}{pu.path}%00.png?{pu.query}', body=tar, headers=hdrs)
        assert r.status in (400, 403), r
    else:
        refused(s.raw('PUT', f'{pu.path}%00.png?{pu.query}', body=tar), 'PUT %00')
    r = s.raw('PUT', put, body=tar, headers=hdrs)
    assert r.status == 200, r
    assert s.wait_count('victim2', 1) == 1
    assert s.raw('GET', dl).body == png_bytes(1)
