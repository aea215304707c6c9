"""Helpers for the Batch Processing end-to-end tests (tests/e2e/test_jobs_*.py):
Batch Processing calls checked against the published OpenAPI document,
staging a batch, waiting for a job, downloading and unpacking its export,
and a webhook receiver (http.server thread on 127.0.0.1)."""
import hashlib
import hmac
import http.server
import io
import json
import os
import tarfile
import threading
import time
import urllib.parse

from conftest import MULT, REPO, blob_of_url, openapi_ok, png_bytes

BP = '/batch-processing/v1/external'
MODELS = os.path.join(REPO, 'tests', 'data', 'models')

# A workflow without models: a static crop (an image output) and a
# parameter echoed as an output (workflowParameters reach the run).
CROP_WF = {
    'version': '1.0',
    'inputs': [
        {'type': 'WorkflowImage', 'name': 'image'},
        {'type': 'WorkflowParameter', 'name': 'tag', 'default_value': 'none'},
    ],
    'steps': [
        {'type': 'roboflow_core/absolute_static_crop@v1', 'name': 'crop', 'images': '$inputs.image',
         'x_center': 4, 'y_center': 4, 'width': 4, 'height': 4},
    ],
    'outputs': [
        {'type': 'JsonField', 'name': 'crop', 'selector': '$steps.crop.crops'},
        {'type': 'JsonField', 'name': 'tag', 'selector': '$inputs.tag'},
    ],
}

# One-model detection workflow over the project's synthetic test detector.
DET_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [
        {'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
         'images': '$inputs.image', 'model_id': 'synth-det', 'confidence': 0.3},
    ],
    'outputs': [{'type': 'JsonField', 'name': 'predictions', 'selector': '$steps.det.predictions'}],
}


def ort_env(tmpdir):
    """Environment for a server that runs ONNX Runtime under LeakSanitizer:
    ORT keeps a few global allocations until exit (not ours), suppressed."""
    supp = os.path.join(tmpdir, 'lsan-ort.supp')
    with open(supp, 'w') as f:
        f.write('leak:libonnxruntime.so\n')
    opts = os.environ.get('LSAN_OPTIONS', '')
    return {'LSAN_OPTIONS': (opts + ':' if opts else '') + f'suppressions={supp}'}


def bp_ok(method, path, r):
    return openapi_ok(method, path, r)


def bp(s, method, rest, body=None, query=None, check=True, raw_body=None):
    """Batch Processing call under /batch-processing/v1/external/<ws>/jobs…"""
    path = f'{BP}/{s.workspace}/jobs{rest}'
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {'Content-Type': 'application/json'} if data is not None else {}
    r = s.request(method, path, query=query, body=data, headers=hdrs)
    if check:
        bp_ok(method, path, r)
    return r


def put_workflow(s, wf_id, definition):
    r = s.request('PUT', f'/workflows/v1/external/{s.workspace}/workflows/{wf_id}',
                  body=json.dumps(definition), headers={'Content-Type': 'application/json'})
    assert r.status in (200, 201), r


def stage_pngs(s, batch, n, bulk=False, seed=0):
    """Stage n unique 8x8 PNGs named img-XXXX.png; returns the names."""
    names = [f'img-{i:04d}.png' for i in range(n)]
    if bulk:
        from conftest import make_tar
        for k in range(0, n, 256):
            tar = make_tar([(nm, png_bytes(seed + i)) for i, nm in enumerate(names[k:k + 256], k)])
            _, put = s.put_shard(batch, tar)
            assert put.status == 200, put
    else:
        for i, nm in enumerate(names):
            r = s.upload_image(batch, nm, png_bytes(seed + i))
            assert r.status == 200, r
    assert s.wait_count(batch, n) == n
    return names


def job_body(batch, wf_id, ws='default', fmt='jsonl', persist=False, **extra):
    spec = {'type': 'workflows-processing-specification-v1', 'workspace': ws, 'workflowId': wf_id,
            'persistImagesOutputs': persist, 'aggregationFormat': fmt}
    spec.update(extra.pop('spec', {}))
    b = {'type': 'simple-image-processing-v1',
         'jobInput': {'type': 'staging-batch-input-v1', 'batchId': batch},
         'computeConfiguration': {'type': 'compute-configuration-v2', 'machineType': 'cpu',
                                  'workersPerMachine': 2},
         'processingSpecification': spec}
    b.update(extra)
    return b


def wait_job(s, job_id, timeout=120, want_terminal=True):
    deadline = time.time() + timeout * MULT
    last = None
    while time.time() < deadline:
        r = bp(s, 'GET', f'/{job_id}')
        assert r.status == 200, r
        last = r.json()['job']
        if last['isTerminal'] == want_terminal:
            return last
        time.sleep(0.1)
    raise AssertionError(f'job {job_id} did not end: {last}')


def list_files(s, batch, part=None):
    out, token = [], None
    while True:
        q = {'pageSize': 100}
        if part:
            q['partName'] = part
        if token:
            q['nextPageToken'] = token
        r = s.ds('GET', f'/{batch}/list', query=q)
        assert r.status == 200, r
        d = r.json()
        out += d['filesMetadata']
        token = d.get('nextPageToken')
        if not token:
            return out


def damage_staged(s, batch, damage):
    """Rewrite the stored bytes of staged images ({file name: new bytes}),
    as storage damage would: staging refuses undecodable images, so this is
    how a test gets images that fail when the job runs."""
    files = {f['fileName']: f for f in list_files(s, batch)}
    blobs = s.blobs  # the local folder or the S3 prefix
    for name, data in damage.items():
        key, off, n = blob_of_url(s, files[name]['downloadURL'])
        if off is not None:
            # an image of a tar shard kept whole: its range of the shard's
            # blob is overwritten in place (cut or padded with zeros)
            blobs.patch(key, off, data[:n].ljust(n, b'\0'))
            continue
        blobs.write(key, data)


def download_export(s, job_id):
    """Download every file of <job>-export as the CLI does: .tar.gz are
    unpacked.  Returns {'parts': [...], 'files': {part: {name: bytes}},
    'members': {arcname: bytes}}."""
    batch = f'{job_id}-export'
    parts = s.ds('GET', f'/{batch}/parts').json()['batchParts']
    files, members = {}, {}
    for f in list_files(s, batch):
        r = s.raw('GET', f['downloadURL'])
        assert r.status == 200, (f, r.status)
        files.setdefault(f.get('partName'), {})[f['fileName']] = r.body
        if f['fileName'].endswith('.tar.gz'):
            with tarfile.open(fileobj=io.BytesIO(r.body), mode='r:gz') as t:
                for m in t.getmembers():
                    assert m.isfile() and not m.name.startswith('/') and '..' not in m.name
                    assert m.name not in members, f'{m.name} in two archives'
                    members[m.name] = t.extractfile(m).read()
    return {'parts': parts, 'files': files, 'members': members}


def results_rows(exp, fmt='jsonl'):
    data = exp['files']['results'][f'aggregated_results.{fmt}'].decode()
    if fmt == 'jsonl':
        return [json.loads(line) for line in data.splitlines() if line]
    import csv
    return list(csv.DictReader(io.StringIO(data)))


class Receiver:
    """Webhook receiver on 127.0.0.1: records (headers, body) of each POST;
    answers 503 to the first fail_first requests."""

    def __init__(self, fail_first=0):
        self.calls = []
        self.fail_first = fail_first
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n)
                rec.calls.append((dict(self.headers), body))
                code = 503 if len(rec.calls) <= rec.fail_first else 200
                self.send_response(code)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/hook'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait(self, n, timeout=60):
        deadline = time.time() + timeout * MULT
        while time.time() < deadline and len(self.calls) < n:
            time.sleep(0.05)
        return self.calls


def verify_signature(data_dir, headers, body):
    with open(os.path.join(data_dir, 'secret'), 'rb') as f:
        secret = f.read()
    want = 'sha256=' + hmac.new(secret, body, hashlib.sha256).hexdigest()
    got = {k.lower(): v for k, v in headers.items()}.get('x-vbatch-signature')
    return got is not None and hmac.compare_digest(got, want)


def quoted(s):
    return urllib.parse.quote(s)
