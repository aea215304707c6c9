"""vbatch's own OpenAPI document (GET /openapi.json, src/api/openapi.json):
served without a key, an OpenAPI 3.1 document; every documented operation
is called for real (a success and an error at least) and each answer's
status, Content-Type and body are validated against the operation's
documented response (python3-jsonschema, Draft 2020-12 — the dialect of
OpenAPI 3.1).  The check that every route of the router is documented and
every documented operation is routed is the unit test
tests/unit/test_api_openapi.c (it enumerates the router itself)."""
import json
import os
import re
import time
import urllib.parse

import pytest

from conftest import BP, DS, E2E_S3, MULT, Server, drop_pg_schema, make_tar, multipart, png_bytes
from jobs_helpers import CROP_WF, MODELS, job_body, ort_env

jsonschema = pytest.importorskip('jsonschema')

MR = '/models/v1/external'
WF = '/workflows/v1/external'
DET = os.path.join(MODELS, 'synth-det')
METHODS = ('get', 'put', 'post', 'delete', 'head', 'patch', 'options')


def _read(*p):
    with open(os.path.join(*p), 'rb') as f:
        return f.read()


class Doc:
    """The served document: finds an operation by method and path,
    validates answers, records which (operation, status) were seen."""

    def __init__(self, doc):
        self.doc = doc
        self.ops = []  # (regex, template, method)
        for template, item in doc['paths'].items():
            rx = '^' + re.sub(r'\\\{[^}]+\\\}', '[^/]+', re.escape(template)) + '$'
            if template.endswith('{model_id}') or template.endswith('{key}'):
                rx = rx[:-len('[^/]+$')] + '.+$'  # the rest of the path
            for m in item:
                if m in METHODS:
                    self.ops.append((re.compile(rx), template, m))
        self.seen = {}

    def find(self, method, path):
        for rx, template, m in self.ops:
            if m == method.lower() and rx.match(path):
                return template
        return None

    def check(self, method, url, r):
        path = urllib.parse.urlsplit(url).path
        template = self.find(method, path)
        assert template, f'{method} {path} is not documented'
        op = self.doc['paths'][template][method.lower()]
        resp = op['responses'].get(str(r.status))
        if resp is None:
            resp = op['responses'].get(f'{r.status // 100}XX')
        assert resp is not None, f'{method} {template}: status {r.status} is not documented ({r})'
        self.seen.setdefault((template, method.lower()), set()).add(r.status)
        if '$ref' in resp:
            resp = self.resolve(resp['$ref'])
        content = resp.get('content')
        if method.upper() == 'HEAD' or not content:
            return
        ctype = r.headers.get('Content-Type', '').split(';')[0].strip()
        media = next((m for m in (ctype, ctype.split('/')[0] + '/*', '*/*') if m in content), None)
        assert media, f'{method} {template} {r.status}: Content-Type {ctype} not in {list(content)}'
        schema = content[media].get('schema')
        if schema is None or ctype != 'application/json':
            return
        body = json.loads(r.body)
        v = jsonschema.Draft202012Validator(self.with_components(schema))
        errs = [f'{"/".join(map(str, e.absolute_path)) or "(body)"}: {e.message}' for e in v.iter_errors(body)]
        assert not errs, f'{method} {template} {r.status}: {errs}\n{json.dumps(body)[:1500]}'

    def resolve(self, ref):
        node = self.doc
        for part in ref.lstrip('#/').split('/'):
            node = node[part]
        return node

    def with_components(self, schema):
        s = dict(schema)
        s['components'] = self.doc.get('components', {})
        return s


class Walker:
    def __init__(self, s, doc):
        self.s = s
        self.doc = doc

    def call(self, method, path, want, query=None, body=None, headers=None, auth=True, key=None, raw=False):
        if raw:
            r = self.s.raw(method, path, body=body, headers=headers)
        else:
            r = self.s.request(method, path, query=query, body=body, headers=headers, auth=auth, key=key)
        assert r.status == want, f'{method} {path}: wanted {want}, got {r}'
        self.doc.check(method, path, r)
        return r

    def json(self, method, path, want, obj, **kw):
        return self.call(method, path, want, body=json.dumps(obj).encode(),
                         headers={'Content-Type': 'application/json'}, **kw)


def register_model(w, ws, model_id, want=200, metadata=None):
    env = json.loads(_read(DET, 'environment.json'))
    names = _read(DET, 'class_names.txt').decode().split()
    meta = metadata if metadata is not None else {'task': 'object-detection', 'class_names': names,
                                                  'environment': env}
    ctype, body = multipart([('weights', 'weights.onnx', _read(DET, 'weights.onnx')),
                             ('metadata', None, json.dumps(meta).encode())])
    return ctype, body


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('openapi'))
    s = Server(d, args=['--allow-private-urls', '--max-model-bytes', '1000000', '--workers', '0'],
               env=ort_env(d)).start()
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def test_document_served_without_key(srv):
    r = srv.request('GET', '/openapi.json', auth=False)
    assert r.status == 200, r
    assert r.headers['Content-Type'].startswith('application/json')
    doc = r.json()
    assert doc['openapi'].startswith('3.1')
    assert doc['info']['title'] and doc['info']['version']
    # The document itself is valid JSON Schema wherever it holds a schema.
    for name, schema in doc['components']['schemas'].items():
        jsonschema.Draft202012Validator.check_schema(schema)
    # HEAD answers the same without a body; another method is 405.
    h = srv.raw('HEAD', '/openapi.json')
    assert h.status == 200 and h.body == b''
    assert srv.raw('POST', '/openapi.json').status == 405


def test_every_operation_against_the_document(srv):
    doc = Doc(srv.request('GET', '/openapi.json', auth=False).json())
    w = Walker(srv, doc)
    ws = srv.workspace
    other = srv.cli('workspace', 'create', 'other')
    assert other.returncode == 0, other.stderr
    okey = next(l.split()[1] for l in other.stdout.splitlines() if l.startswith('api_key:'))
    ds = f'{DS}/{ws}/batches'
    bp = f'{BP}/{ws}/jobs'

    # -- service
    w.call('GET', '/healthz', 200, auth=False)
    w.call('GET', '/', 200)
    w.call('GET', '/', 401, auth=False)
    w.call('GET', '/', 401, key='vb_nosuchkey0000000000000000000000')
    w.call('GET', '/openapi.json', 200, auth=False)
    w.call('GET', '/metrics', 200, auth=False)
    w.call('GET', '/nowhere', 404, auth=False) if doc.find('GET', '/nowhere') else None

    # -- the dashboard (docs/UI.md) and the Bearer form of the key
    w.call('GET', '/', 302, auth=False, headers={'Accept': 'text/html'})
    w.call('GET', '/', 200, auth=False, headers={'Authorization': f'Bearer {srv.key}'})
    w.call('GET', '/', 400, headers={'Authorization': 'Bearer vb_nosuchkey0000000000000000000000'})
    w.call('GET', '/ui', 301, auth=False)
    w.call('GET', '/ui/', 200, auth=False)
    w.call('GET', '/ui/app.js', 200, auth=False)
    w.call('GET', '/ui/nosuch.js', 404, auth=False)

    # -- staging: single image, bulk shard, references, video URL
    ctype, body = multipart([('img.png', 'img.png', png_bytes(1))])
    w.call('POST', f'{ds}/b1/upload/image', 200, query={'fileName': 'img.png'}, body=body,
           headers={'Content-Type': ctype})
    w.call('POST', f'{ds}/b1/upload/image', 400, query={'fileName': 'bad.png'},
           body=multipart([('bad.png', 'bad.png', b'not an image')])[1], headers={'Content-Type': ctype})
    w.call('POST', f'{ds}/b1/upload/image', 403, key=okey, query={'fileName': 'x.png'}, body=body,
           headers={'Content-Type': ctype})
    r = w.call('POST', f'{ds}/b2/bulk-upload/image-files', 200, query={'displayName': 'b2'})
    d = r.json()['signedURLDetails']
    tar = make_tar([(f'i{i}.png', png_bytes(10 + i)) for i in range(3)])
    if E2E_S3:  # the URL is the object store's (presigned): its answer is not vbatch's
        r = srv.raw('PUT', d['uploadURL'], body=tar, headers=d.get('extensionHeaders') or {})
        assert r.status == 200, r
    else:
        w.call('PUT', d['uploadURL'], 200, body=tar, headers=d.get('extensionHeaders') or {}, raw=True)
        w.call('PUT', d['uploadURL'], 409, body=tar, headers=d.get('extensionHeaders') or {}, raw=True)
        w.call('PUT', d['uploadURL'].replace('signature=', 'signature=00'), 403, body=tar, raw=True)
    w.call('POST', f'{ds}/BAD!/bulk-upload/image-files', 400)
    srv.wait_count('b2', 3)
    srv.wait_count('b1', 1)
    w.call('POST', f'{ds}/b3/upload/video', 200, query={'fileName': 'v.mp4'})
    w.call('POST', f'{ds}/b3/upload/video', 401, auth=False, query={'fileName': 'v.mp4'})
    url = srv.base + '/nothing-here.png'
    w.json('POST', f'{ds}/b4/bulk-upload/image-references', 200,
           {'imageReferences': [{'name': 'r.png', 'url': url}]}, query={'displayName': 'b4'})
    w.json('POST', f'{ds}/b4/bulk-upload/image-references', 400, {'nope': 1})
    w.json('POST', f'{ds}/b5/bulk-upload/video-references', 200,
           {'videoReferences': [{'name': 'r.mp4', 'url': srv.base + '/nothing.mp4'}]})
    w.call('POST', f'{ds}/b5/bulk-upload/video-references', 400, body=b'{',
           headers={'Content-Type': 'application/json'})

    # -- staging: reads
    w.call('GET', ds, 200)
    w.call('GET', ds, 400, query={'pageSize': '0'})
    w.call('GET', f'{ds}/b2', 200)
    w.call('GET', f'{ds}/nope', 404)
    w.call('GET', f'{ds}/b2/count', 200)
    w.call('GET', f'{ds}/nope/count', 404)
    w.call('GET', f'{ds}/b2/parts', 200)
    w.call('GET', f'{ds}/nope/parts', 404)
    r = w.call('GET', f'{ds}/b2/list', 200, query={'pageSize': '2'})
    files = r.json()['filesMetadata']
    w.call('GET', f'{ds}/b2/list', 400, query={'nextPageToken': 'garbage'})
    w.call('GET', f'{ds}/b2/shards', 200)
    w.call('GET', f'{ds}/nope/shards', 404)
    dl = files[0]['downloadURL']
    if E2E_S3:  # a presigned GET of the object store
        assert srv.raw('GET', dl).status == 200
    else:
        w.call('GET', dl, 200, raw=True)
        w.call('HEAD', dl, 200, raw=True)
        w.call('GET', dl.replace('signature=', 'signature=00'), 403, raw=True)
        w.call('HEAD', dl.replace('signature=', 'signature=00'), 403, raw=True)

    # -- workflows
    wf = f'{WF}/{ws}/workflows'
    w.json('PUT', f'{wf}/crop', 200, CROP_WF)
    w.json('PUT', f'{wf}/broken', 400, {'version': '1.0', 'inputs': [], 'steps': [{'type': 'nope'}],
                                        'outputs': []})
    w.call('GET', f'{wf}/crop', 200)
    w.call('GET', f'{wf}/missing', 404)
    w.call('GET', wf, 200)
    w.call('GET', wf, 403, key=okey)
    w.json('PUT', f'{wf}/gone', 200, CROP_WF)
    w.call('DELETE', f'{wf}/gone', 200)
    w.call('DELETE', f'{wf}/gone', 404)

    # -- models
    mr = f'{MR}/{ws}/models'
    ctype, body = register_model(w, ws, 'm/1')
    w.call('PUT', f'{mr}/m/1', 200, body=body, headers={'Content-Type': ctype})
    w.call('POST', f'{mr}/m/2', 200, body=body, headers={'Content-Type': ctype})
    w.call('PUT', f'{mr}/m/3', 400, body=b'not onnx', headers={'Content-Type': 'application/octet-stream'})
    w.call('POST', f'{mr}/m/3', 413, body=b'x' * 1000001, headers={'Content-Type': 'application/octet-stream'})
    w.call('GET', f'{mr}/m/1', 200)
    w.call('GET', f'{mr}/m/9', 404)
    w.call('GET', mr, 200)
    w.call('GET', mr, 401, key='vb_nosuchkey0000000000000000000000')
    w.call('DELETE', f'{mr}/m/2', 200)
    w.call('DELETE', f'{mr}/m/2', 404)

    # -- jobs
    # The server runs no job workers: j3 stays queued until aborted; j1
    # runs on a separate `vbatch worker` started for it.
    w.json('POST', f'{bp}/j3', 200, job_body('b2', 'crop', ws=ws))
    w.call('POST', f'{bp}/j3/abort', 200)
    w.call('POST', f'{bp}/j3/restart', 200)
    w.call('DELETE', f'{bp}/j3', 409)
    w.call('POST', f'{bp}/j3/abort', 200)
    w.call('DELETE', f'{bp}/j3', 200)
    w.call('DELETE', f'{bp}/j3', 404)
    w.json('POST', f'{bp}/j1', 200, job_body('b2', 'crop', ws=ws))
    w.json('POST', f'{bp}/j1', 409, job_body('b1', 'crop', ws=ws))
    w.json('POST', f'{bp}/j2', 404, job_body('nope', 'crop', ws=ws))
    worker = srv.worker()
    try:
        deadline = time.time() + 120 * MULT
        while True:
            job = w.call('GET', f'{bp}/j1', 200).json()['job']
            if job['isTerminal'] or time.time() > deadline:
                break
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait()
    assert job['isTerminal'] and not job['error'], job
    w.call('GET', f'{bp}/nope', 404)
    w.call('GET', bp, 200)
    w.call('GET', bp, 400, query={'pageSize': 'x'})
    stages = w.call('GET', f'{bp}/j1/stages', 200).json()['stages']
    w.call('GET', f'{bp}/nope/stages', 404)
    w.call('GET', f'{bp}/j1/stages/{stages[0]["processingStageId"]}/tasks', 200)
    w.call('GET', f'{bp}/j1/stages/nope/tasks', 404)
    w.call('GET', f'{bp}/j1/logs', 200)
    w.call('GET', f'{bp}/j1/logs', 400, query={'severity': 'loud'})
    w.call('POST', f'{bp}/nope/abort', 404)
    w.call('POST', f'{bp}/j1/restart', 409)
    w.call('POST', f'{bp}/nope/restart', 404)

    # -- deletion of batches
    w.call('DELETE', f'{ds}/b1', 200)
    w.call('DELETE', f'{ds}/b1', 404)

    # /metrics behind a token: a second server on its own data folder.
    os.makedirs(os.path.join(srv.tmpdir, 'tok'))
    t = Server(os.path.join(srv.tmpdir, 'tok'), args=['--metrics-token', 'sesame', '--workers', '0'])
    try:
        t.start()
        tw = Walker(t, doc)
        tw.call('GET', '/metrics', 401, auth=False)
        tw.call('GET', '/metrics', 200, auth=False, headers={'Authorization': 'Bearer sesame'})
    finally:
        try:
            assert t.stop() == 0, t.tail_log()
        finally:
            drop_pg_schema(t.data)

    # Every documented operation was answered at least once with a success
    # and once with an error, each validated above (the operations that take
    # no input at all cannot be made to fail from outside: /healthz,
    # /openapi.json and the dashboard's page and redirect).
    missing = []
    for _, template, m in doc.ops:
        if E2E_S3 and template == '/blobs/{key}':
            continue  # on S3 clients PUT and GET the object store's presigned URLs, not vbatch's
        got = doc.seen.get((template, m), set())
        documented = doc.doc['paths'][template][m]['responses']
        redirect_only = not any(k.startswith('2') for k in documented)  # GET /ui
        if not any(200 <= s < 300 or (redirect_only and 300 <= s < 400) for s in got):
            missing.append(f'{m.upper()} {template}: no success')
        if not any(s >= 400 for s in got) and template not in ('/healthz', '/openapi.json', '/ui', '/ui/'):
            missing.append(f'{m.upper()} {template}: no error')
    assert not missing, missing
