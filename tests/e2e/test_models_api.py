"""Model registry over HTTP (/models/v1/external/{workspace}/models…):
register the synthetic detector's weights + metadata under new ids (multipart
and raw body), list and describe, refuse bad models with the registry's
message, auth (401/403), size limit (413), a workflow and one small job that
use the uploaded model, the model is stored in the blob store + models table
(DATA/blobs/models/…, nothing in DATA/models) and survives a restart,
DELETE, replacement (old generation's blobs gone), a legacy DATA/models
folder still loads, and a separate `vbatch worker` started before the
registration runs a job with the model.  Also the CLI: vbatch model
register / list / delete."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BIN, MULT, Server, blobs_env, blobs_for, data_env, db_rows, drop_pg_schema, multipart
from jobs_helpers import (MODELS, bp, download_export, job_body, ort_env, put_workflow, results_rows,
                          stage_pngs, wait_job)

MR = '/models/v1/external'
DET = os.path.join(MODELS, 'synth-det')
LIMIT = 1000000  # --max-model-bytes of the test server; synth-det is ~587 KB


def _read(*p):
    with open(os.path.join(*p), 'rb') as f:
        return f.read()


def det_metadata(**extra):
    env = json.loads(_read(DET, 'environment.json'))
    names = _read(DET, 'class_names.txt').decode().split()
    m = {'task': 'object-detection', 'class_names': names, 'environment': env}
    m.update(extra)
    return m


def model_blobs(data, dn, ws=None):
    """Blobs under models/<dn>/ (the operator's), or wsmodels/<ws>/<dn>/
    (workspace ws's), as paths relative to that folder (files under
    DATA/blobs, or objects of the data folder's S3 prefix)."""
    root = '/'.join((('wsmodels', ws) if ws else ('models',)) + (dn,)) + '/'
    return sorted(k[len(root):] for k in blobs_for(data).list(root))


def model_row(data, model_id):
    rows = db_rows(data, 'SELECT weights_key, meta_key, size, sha256, created_ms, updated_ms FROM models'
                   ' WHERE model_id=?', (model_id,))
    return rows[0] if rows else None


def register_multipart(s, model_id, weights, metadata, path_ws=None, **kw):
    fields = [('weights', 'weights.onnx', weights)]
    if metadata is not None:
        fields.append(('metadata', None, json.dumps(metadata).encode()))
    ctype, body = multipart(fields)
    return s.request('PUT', f'{MR}/{path_ws or s.workspace}/models/{model_id}', body=body,
                     headers={'Content-Type': ctype}, **kw)


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('models-api'))
    s = Server(d, args=['--allow-private-urls', '--max-model-bytes', str(LIMIT)], env=ort_env(d)).start()
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def test_register_list_describe(srv):
    weights = _read(DET, 'weights.onnx')
    r = register_multipart(srv, 'e2e-proj/7', weights, det_metadata(aliases=['e2e-alias']))
    assert r.status == 200, r
    b = r.json()
    assert b['status'] == 'ok' and b['modelId'] == 'e2e-proj/7'
    assert b['task'] == 'object-detection'
    assert b['inputSize'] == {'width': 128, 'height': 128}
    assert b['classNames'] == ['circle', 'square', 'triangle']
    assert b['aliases'] == ['e2e-alias']
    assert 'artefacts' not in b['details']

    r = srv.request('GET', f'{MR}/{srv.workspace}/models')
    assert r.status == 200, r
    listed = {m['modelId']: m for m in r.json()['models']}
    assert listed['e2e-proj/7']['task'] == 'object-detection'
    assert listed['e2e-proj/7']['classCount'] == 3

    # the id's '/' as a path separator, URL-encoded, or through the alias
    for path in ('e2e-proj/7', 'e2e-proj%2F7', 'e2e-alias'):
        r = srv.request('GET', f'{MR}/{srv.workspace}/models/{path}')
        assert r.status == 200, (path, r)
        assert r.json()['modelId'] == 'e2e-proj/7'
        assert r.json()['classNames'] == ['circle', 'square', 'triangle']

    # raw body, metadata in the query; POST works like PUT
    r = srv.request('POST', f'{MR}/{srv.workspace}/models/e2e-raw', body=weights,
                    query={'metadata': json.dumps(det_metadata())},
                    headers={'Content-Type': 'application/octet-stream'})
    assert r.status == 200, r
    assert r.json()['modelId'] == 'e2e-raw' and r.json()['inputSize']['width'] == 128
    # raw body, metadata in the header
    r = srv.request('PUT', f'{MR}/{srv.workspace}/models/e2e-hdr', body=weights,
                    headers={'Content-Type': 'application/octet-stream',
                             'X-Model-Metadata': json.dumps({'class_names': ['a', 'b', 'c']})})
    assert r.status == 200, r
    assert r.json()['classNames'] == ['a', 'b', 'c']

    # multipart without a metadata part: the query parameter is used
    r = register_multipart(srv, 'e2e-mpq', weights, None, query={'metadata': json.dumps({'class_names': ['p', 'q', 'r']})})
    assert r.status == 200, r
    assert r.json()['classNames'] == ['p', 'q', 'r']

    r = srv.request('GET', f'{MR}/{srv.workspace}/models/no-such-model')
    assert r.status == 404 and 'no-such-model' in r.json()['error'], r


@pytest.mark.parametrize('bad', sorted(d for d in os.listdir(os.path.join(MODELS, 'bad'))
                                       if os.path.exists(os.path.join(MODELS, 'bad', d, 'weights.onnx'))))
def test_bad_model_refused(srv, bad):
    d = os.path.join(MODELS, 'bad', bad)
    names = _read(d, 'class_names.txt').decode().split()
    r = register_multipart(srv, f'e2e-bad-{bad}', _read(d, 'weights.onnx'), {'class_names': names})
    assert r.status == 400, r
    msg = r.json()['error']
    assert f'e2e-bad-{bad}' in msg or 'onnx' in msg.lower(), msg
    assert srv.request('GET', f'{MR}/{srv.workspace}/models/e2e-bad-{bad}').status == 404


def test_request_errors(srv):
    weights = _read(DET, 'weights.onnx')
    ws = srv.workspace
    # bad metadata, bad id, no weights part
    r = register_multipart(srv, 'e2e-x', weights, None)  # this ONNX carries no class names
    assert r.status == 400 and 'no class names' in r.json()['error'], r
    ctype, body = multipart([('weights', 'w.onnx', weights), ('metadata', None, b'{nope')])
    r = srv.request('PUT', f'{MR}/{ws}/models/e2e-x', body=body, headers={'Content-Type': ctype})
    assert r.status == 400 and 'metadata' in r.json()['error'], r
    ctype, body = multipart([('metadata', None, b'{}')])
    r = srv.request('PUT', f'{MR}/{ws}/models/e2e-x', body=body, headers={'Content-Type': ctype})
    assert r.status == 400 and 'weights' in r.json()['error'], r
    r = register_multipart(srv, 'a/b/c', weights, det_metadata())
    assert r.status == 400 and 'invalid model id' in r.json()['error'], r
    r = srv.request('PUT', f'{MR}/{ws}/models/e2e-x', body=b'', headers={'Content-Type': 'application/octet-stream'})
    assert r.status == 400, r
    # auth
    r = register_multipart(srv, 'e2e-x', weights, det_metadata(), auth=False)
    assert r.status == 401, r
    r = register_multipart(srv, 'e2e-x', weights, det_metadata(), key='nope')
    assert r.status == 401, r
    r = srv.request('GET', f'{MR}/{ws}/models', key='wrong-key')
    assert r.status == 401, r
    r = srv.request('GET', f'{MR}/someone-else/models')
    assert r.status == 403, r
    r = srv.request('PUT', f'{MR}/someone-else/models/e2e-x', body=weights,
                    headers={'Content-Type': 'application/octet-stream'})
    assert r.status == 403, r
    # size limit: raw (Content-Length check) and multipart (streamed part)
    big = weights + b'\0' * (LIMIT + 1 - len(weights))
    r = srv.request('PUT', f'{MR}/{ws}/models/e2e-big', body=big, headers={'Content-Type': 'application/octet-stream'})
    assert r.status == 413, r
    r = register_multipart(srv, 'e2e-big', big, det_metadata())
    assert r.status == 413, r
    assert srv.request('GET', f'{MR}/{ws}/models/e2e-big').status == 404
    assert srv.request('GET', f'{MR}/{ws}/models/e2e-x').status == 404


def test_workflow_job_with_uploaded_model(srv):
    r = register_multipart(srv, 'e2e-job/1', _read(DET, 'weights.onnx'), det_metadata())
    assert r.status == 200, r
    wf = {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
        'steps': [{'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
                   'images': '$inputs.image', 'model_id': 'e2e-job/1', 'confidence': 0.3}],
        'outputs': [{'type': 'JsonField', 'name': 'predictions', 'selector': '$steps.det.predictions'}],
    }
    put_workflow(srv, 'uploaded-det', wf)
    stage_pngs(srv, 'mpics', 2)
    r = bp(srv, 'POST', '/e2e-uploaded', job_body('mpics', 'uploaded-det'))
    assert r.status == 200, r
    job = wait_job(srv, 'e2e-uploaded')
    assert job['error'] is False, job
    rows = results_rows(download_export(srv, 'e2e-uploaded'))
    assert len(rows) == 2
    assert all('predictions' in row['predictions'] for row in rows)


def test_upload_stored_in_blobs_survives_restart(server_factory, tmpdir_path):
    import hashlib
    s = server_factory(env=ort_env(tmpdir_path)).start()
    weights = _read(DET, 'weights.onnx')
    r = register_multipart(s, 'keep/2', weights, det_metadata(aliases=['keep-alias']))
    assert r.status == 200, r
    # the bytes are blobs of one generation, the row names them; nothing in DATA/models
    files = model_blobs(s.data, 'keep--2', s.workspace)
    assert len(files) == 2 and {os.path.basename(f) for f in files} == {'weights.onnx', 'metadata.json'}, files
    assert not os.path.exists(os.path.join(s.data, 'models', 'keep--2'))
    wkey, mkey, size, sha, created, updated = model_row(s.data, 'keep/2')
    # registered over HTTP: workspace default's model (issue 9), under wsmodels/<ws>/
    assert wkey.startswith(f'wsmodels/{s.workspace}/keep--2/') and wkey.endswith('/weights.onnx')
    assert blobs_for(s.data).read(wkey) == weights
    assert size == len(weights) and sha == hashlib.sha256(weights).hexdigest()
    meta = json.loads(blobs_for(s.data).read(mkey))
    assert meta['class_names'] == ['circle', 'square', 'triangle'] and meta['aliases'] == ['keep-alias']
    assert s.stop() == 0
    s.start()
    r = s.request('GET', f'{MR}/{s.workspace}/models/keep-alias')
    assert r.status == 200, r
    assert r.json()['modelId'] == 'keep/2' and r.json()['aliases'] == ['keep-alias']
    assert r.json()['classNames'] == ['circle', 'square', 'triangle']
    assert r.json()['details']['preprocessing'] == \
        register_multipart(s, 'keep-cmp', weights, det_metadata()).json()['details']['preprocessing']

    # replace: a new generation, the old one's blobs are gone, created kept
    r = register_multipart(s, 'keep/2', weights, det_metadata(class_names=['u', 'v', 'w']))
    assert r.status == 200, r
    wkey2, _, _, _, created2, updated2 = model_row(s.data, 'keep/2')
    assert wkey2 != wkey and created2 == created and updated2 >= updated
    files = model_blobs(s.data, 'keep--2', s.workspace)
    assert len(files) == 2 and all(f.startswith(wkey2.split('/')[3] + '/') for f in files), files
    # a bad replacement changes nothing and leaves no blobs behind
    r = register_multipart(s, 'keep/2', _read(MODELS, 'bad', 'garbage', 'weights.onnx'), det_metadata())
    assert r.status == 400, r
    assert model_blobs(s.data, 'keep--2', s.workspace) == files and model_row(s.data, 'keep/2')[0] == wkey2

    # delete: 200 like the workflows DELETE, then 404, row and blobs gone, alias unknown
    r = s.request('DELETE', f'{MR}/{s.workspace}/models/keep/2')
    assert r.status == 200 and r.json() == {'status': 'ok', 'modelId': 'keep/2'}, r
    assert s.request('GET', f'{MR}/{s.workspace}/models/keep/2').status == 404
    r = s.request('GET', f'{MR}/{s.workspace}/models/keep-alias')
    assert r.status == 404 and 'alias' in r.json()['error'], r
    assert model_row(s.data, 'keep/2') is None
    assert model_blobs(s.data, 'keep--2', s.workspace) == []
    assert 'keep/2' not in [m['modelId'] for m in s.request('GET', f'{MR}/{s.workspace}/models').json()['models']]
    r = s.request('DELETE', f'{MR}/{s.workspace}/models/keep/2')
    assert r.status == 404 and 'keep/2' in r.json()['error'], r
    r = s.request('DELETE', f'{MR}/{s.workspace}/models/keep-cmp', auth=False)
    assert r.status == 401, r
    r = s.request('DELETE', f'{MR}/someone-else/models/keep-cmp')
    assert r.status == 403, r
    assert s.stop() == 0
    s.start()
    assert s.request('GET', f'{MR}/{s.workspace}/models/keep/2').status == 404
    assert s.request('GET', f'{MR}/{s.workspace}/models/keep-cmp').status == 200


def test_legacy_models_folder_still_loads(server_factory, tmpdir_path):
    """DATA/models/<dn>/ of older versions loads at start; it is the
    operator's: PUT and DELETE refuse it with 409 (issue 9); a model the
    operator stores with the CLI under the same id wins."""
    s = server_factory(env=ort_env(tmpdir_path))
    os.makedirs(os.path.join(s.data, 'models'))
    shutil.copytree(DET, os.path.join(s.data, 'models', 'old--1'), ignore=shutil.ignore_patterns('test'))
    s.start()
    r = s.request('GET', f'{MR}/{s.workspace}/models/old/1')
    assert r.status == 200 and r.json()['classNames'] == ['circle', 'square', 'triangle'], r
    r = s.request('DELETE', f'{MR}/{s.workspace}/models/old/1')
    assert r.status == 409 and 'folder' in r.json()['error'], r
    r = register_multipart(s, 'old/1', _read(DET, 'weights.onnx'), det_metadata(class_names=['x', 'y', 'z']))
    assert r.status == 409 and 'operator' in r.json()['error'], r
    xyz = os.path.join(tmpdir_path, 'xyz')
    shutil.copytree(DET, xyz, ignore=shutil.ignore_patterns('test'))
    with open(os.path.join(xyz, 'class_names.txt'), 'w') as f:
        f.write('x\ny\nz\n')
    p = s.cli('model', 'register', 'old/1', xyz)
    assert p.returncode == 0, p.stderr
    assert s.stop() == 0
    s.start()
    assert s.request('GET', f'{MR}/{s.workspace}/models/old/1').json()['classNames'] == ['x', 'y', 'z']


def test_separate_worker_finds_model_registered_later(server_factory, tmpdir_path):
    """A `vbatch worker` started before the model existed runs a job that
    uses it (re-read of the models table on an unknown id)."""
    env = ort_env(tmpdir_path)
    s = server_factory(['--allow-private-urls', '--workers', '0'], env=env).start()
    w = s.worker('--workers', '1')
    try:
        time.sleep(1)
        r = register_multipart(s, 'late/1', _read(DET, 'weights.onnx'), det_metadata())
        assert r.status == 200, r
        wf = {
            'version': '1.0',
            'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
            'steps': [{'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
                       'images': '$inputs.image', 'model_id': 'late/1', 'confidence': 0.3}],
            'outputs': [{'type': 'JsonField', 'name': 'predictions', 'selector': '$steps.det.predictions'}],
        }
        put_workflow(s, 'late-det', wf)
        stage_pngs(s, 'lpics', 2)
        assert bp(s, 'POST', '/e2e-late', job_body('lpics', 'late-det')).status == 200
        job = wait_job(s, 'e2e-late', timeout=120)
        assert job['error'] is False, (job, open(s.log_path + '.worker').read()[-3000:])
        rows = results_rows(download_export(s, 'e2e-late'))
        assert len(rows) == 2 and all('predictions' in row['predictions'] for row in rows)
        wlog = open(s.log_path + '.worker').read()
        assert f"registered model 'late/1' workspace={s.workspace} tag=wsmodels/{s.workspace}/late--1/" in wlog, \
            wlog[-3000:]
    finally:
        w.terminate()
        assert w.wait(timeout=30 * MULT) == 0, open(s.log_path + '.worker').read()[-3000:]


def test_cli_register_and_list(tmpdir_path):
    data = os.path.join(tmpdir_path, 'cli-data')
    env = dict(os.environ)
    env.update(ort_env(tmpdir_path))
    env.update(data_env(data))

    def run(*args):
        return subprocess.run([BIN, 'model'] + list(args) + ['--data', data], capture_output=True, text=True,
                              env=env, timeout=120 * MULT)
    p = run('register', 'cli-proj/4', DET)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith('registered: cli-proj/4\tobject-detection\t128x128'), p.stdout
    assert not os.path.exists(os.path.join(data, 'models', 'cli-proj--4'))
    assert model_row(data, 'cli-proj/4')[0].startswith('models/cli-proj--4/')
    assert len(model_blobs(data, 'cli-proj--4')) == 2
    p = run('register', 'cli-bad', os.path.join(MODELS, 'bad', 'garbage'))
    assert p.returncode == 1 and 'cli-bad' in p.stderr, p.stderr
    assert model_row(data, 'cli-bad') is None and model_blobs(data, 'cli-bad') == []
    p = run('list')
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ['cli-proj/4\tobject-detection\t128x128\t3 classes\toperator'], p.stdout
    p = run('register', 'only-id')
    assert p.returncode == 2 and 'usage' in p.stderr
    # a server on the same data sees the CLI's model (re-read on an unknown id)
    s = Server(tmpdir_path, env=dict(ort_env(tmpdir_path), **blobs_env(data)))
    s.data = data
    s.start()
    try:
        r = s.request('GET', f'{MR}/{s.workspace}/models/cli-proj/4')
        assert r.status == 200 and r.json()['classNames'] == ['circle', 'square', 'triangle'], r
        p = run('register', 'cli-later', DET)
        assert p.returncode == 0, p.stderr
        r = s.request('GET', f'{MR}/{s.workspace}/models/cli-later')
        assert r.status == 200, r
        p = run('delete', 'cli-later')
        assert p.returncode == 0 and p.stdout == 'deleted: cli-later\n', (p.stdout, p.stderr)
        listed = [m['modelId'] for m in s.request('GET', f'{MR}/{s.workspace}/models').json()['models']]
        assert 'cli-later' not in listed and 'cli-proj/4' in listed, listed
    finally:
        assert s.stop() == 0, s.tail_log()
    p = run('delete', 'cli-later')
    assert p.returncode == 1 and 'unknown model' in p.stderr, p.stderr
    assert model_blobs(data, 'cli-later') == []
    drop_pg_schema(data)


def test_replace_and_bad_replacement_keeps_model(srv):
    ws = srv.workspace
    weights = _read(DET, 'weights.onnx')
    r = register_multipart(srv, 'e2e-repl', weights, det_metadata())
    assert r.status == 200, r
    r = register_multipart(srv, 'e2e-repl', weights, det_metadata(class_names=['x', 'y', 'z']))
    assert r.status == 200, r
    assert srv.request('GET', f'{MR}/{ws}/models/e2e-repl').json()['classNames'] == ['x', 'y', 'z']
    r = register_multipart(srv, 'e2e-repl', _read(MODELS, 'bad', 'garbage', 'weights.onnx'), det_metadata())
    assert r.status == 400, r
    d = srv.request('GET', f'{MR}/{ws}/models/e2e-repl')
    assert d.status == 200 and d.json()['classNames'] == ['x', 'y', 'z'], d


def test_concurrent_uploads_of_one_id(server_factory, tmpdir_path):
    """Parallel registrations of one id end with one whole upload, on disk too."""
    import threading
    s = server_factory(env=ort_env(tmpdir_path)).start()
    weights = _read(DET, 'weights.onnx')
    sets = [[f'{k}a', f'{k}b', f'{k}c'] for k in range(6)]
    codes = []

    def up(names):
        codes.append(register_multipart(s, 'race/1', weights, det_metadata(class_names=names)).status)
    ts = [threading.Thread(target=up, args=(n,)) for n in sets]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert codes == [200] * len(sets)
    live = s.request('GET', f'{MR}/{s.workspace}/models/race/1').json()['classNames']
    assert live in sets
    wkey, mkey = model_row(s.data, 'race/1')[:2]
    assert json.loads(blobs_for(s.data).read(mkey))['class_names'] == live
    assert model_blobs(s.data, 'race--1', s.workspace) == sorted([wkey.split('/', 3)[3], mkey.split('/', 3)[3]])
