"""Workflows registry over HTTP and the --workflows-dir loader."""
import json
import os

import pytest

from conftest import SHARED

WF = '/workflows/v1/external'

DEF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [],
    'outputs': [{'type': 'JsonField', 'name': 'img', 'selector': '$inputs.image'}],
}


def test_workflow_crud(server):
    ws = server.workspace
    path = f'{WF}/{ws}/workflows/wf-one'
    r = server.request('PUT', path, body=json.dumps(DEF), headers={'Content-Type': 'application/json'})
    assert r.status == 200, r
    assert r.json()['workflowId'] == 'wf-one'
    r = server.request('GET', path)
    assert r.status == 200, r
    assert r.json()['definition'] == DEF
    # replace, wrapped form
    d2 = dict(DEF, version='1.1')
    r = server.request('PUT', path, body=json.dumps({'specification': d2}))
    assert r.status == 200, r
    assert server.request('GET', path).json()['definition']['version'] == '1.1'
    r = server.request('GET', f'{WF}/{ws}/workflows')
    assert r.status == 200
    assert 'wf-one' in [w['workflowId'] for w in r.json()['workflows']]
    r = server.request('DELETE', path)
    assert r.status == 200, r
    assert server.request('GET', path).status == 404
    assert server.request('DELETE', path).status == 404


def test_workflow_errors(server):
    ws = server.workspace
    path = f'{WF}/{ws}/workflows/wf-bad'
    for body in [b'{nope', b'[]', b'"x"', json.dumps({'steps': 'x'}).encode()]:
        r = server.request('PUT', path, body=body)
        assert r.status == 400, (body, r)
        assert r.json()['error']
    r = server.request('PUT', f'{WF}/{ws}/workflows/BAD%20ID', body=json.dumps(DEF))
    assert r.status in (400, 404)
    r = server.request('PUT', path, body=json.dumps(DEF), auth=False)
    assert r.status == 401
    r = server.request('GET', f'{WF}/someone-else/workflows', )
    assert r.status == 403
    r = server.request('PUT', path, body=b'x' * (5 << 20))
    assert r.status == 413
    # the compiler message comes back
    ok = server.request('PUT', path, body=json.dumps(DEF))
    assert ok.status == 200
    if ok.json()['validated']:
        bad = dict(DEF, outputs=[{'type': 'JsonField', 'name': 'x', 'selector': '$steps.nosuch.predictions'}])
        r = server.request('PUT', path, body=json.dumps(bad))
        assert r.status == 400, r
        assert 'nosuch' in r.json()['error'], r.json()
        # the stored definition was not replaced
        assert server.request('GET', path).json()['definition'] == DEF


def test_workflows_dir_loaded_at_start(server_factory):
    src = os.path.join(SHARED, 'workflows')
    if not os.path.isdir(src):
        pytest.skip(f'no shared workflows folder at {src}')
    s = server_factory(['--workflows-dir', src]).start()
    r = s.request('GET', f'{WF}/default/workflows')
    assert r.status == 200, r
    ids = {w['workflowId'] for w in r.json()['workflows']}
    want = {f[:-5] for f in os.listdir(src) if f.endswith('.json')}
    assert ids and ids <= want
    one = sorted(ids)[0]
    with open(os.path.join(src, one + '.json')) as f:
        on_disk = json.load(f)
    got = s.request('GET', f'{WF}/default/workflows/{one}').json()['definition']
    assert got == on_disk.get('specification', on_disk)
