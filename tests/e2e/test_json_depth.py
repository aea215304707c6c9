"""JSON nesting limit on every JSON the API accepts (issue 9 item 5).

jansson alone accepts 2,048 levels; a job or workflow stored 2,000 levels
deep made the inference CLI's `GET …/jobs` fail for the whole workspace
(Python's parser stops near 1,000).  Every JSON body, metadata part, query
or header value and staged sidecar is now parsed by json_parse_outside
(src/base/json.c) and refused with 400 naming the limit past 64 levels of
arrays and objects; 64 levels are still accepted.
"""
import json
import os

import pytest

from conftest import DS, Server, make_tar, multipart, png_bytes
from jobs_helpers import BP, CROP_WF, MODELS, job_body, ort_env, put_workflow, wait_job

WF = '/workflows/v1/external'
MR = '/models/v1/external'
DET = os.path.join(MODELS, 'synth-det')
LIMIT = 64


def deep(n, leaf=1):
    """n levels of arrays around leaf (n = 0: leaf)."""
    return json.loads('[' * n + json.dumps(leaf) + ']' * n) if n < 900 else None


def deep_text(n):
    return '[' * n + '1' + ']' * n


def too_deep(r, what):
    assert r.status == 400, (what, r)
    msg = r.json()['error']
    assert f'limit of {LIMIT} levels' in msg, (what, msg)


def not_too_deep(r, what):
    if r.status >= 400:
        assert 'levels' not in r.json()['error'], (what, r)


def _read(*p):
    with open(os.path.join(*p), 'rb') as f:
        return f.read()


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('depth'))
    s = Server(d, args=['--allow-private-urls'], env=ort_env(d)).start()
    put_workflow(s, 'crop', CROP_WF)
    r = s.upload_image('pics', 'a.png', png_bytes(1))
    assert r.status == 200, r
    s.wait_count('pics', 1)
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def wf_with_param(levels):
    """CROP_WF with a parameter default nested so that the whole body
    {"specification": {"inputs": [{"default_value": ...}]}} is `levels` deep."""
    wf = json.loads(json.dumps(CROP_WF))
    wf['inputs'].append({'type': 'WorkflowParameter', 'name': 'deep', 'default_value': deep(levels - 4)})
    return {'specification': wf}


def test_workflow_put(srv):
    ws = srv.workspace
    hdr = {'Content-Type': 'application/json'}
    r = srv.request('PUT', f'{WF}/{ws}/workflows/deep-ok', body=json.dumps(wf_with_param(LIMIT)), headers=hdr)
    assert r.status == 200, r
    r = srv.request('GET', f'{WF}/{ws}/workflows/deep-ok')
    assert r.status == 200 and r.json()['definition']['inputs'][2]['default_value'] == deep(LIMIT - 4)
    r = srv.request('PUT', f'{WF}/{ws}/workflows/deep-no', body=json.dumps(wf_with_param(LIMIT + 1)), headers=hdr)
    too_deep(r, 'workflow')
    assert srv.request('GET', f'{WF}/{ws}/workflows/deep-no').status == 404
    for body in (deep_text(2000), '{"specification":' * 100 + '{}' + '}' * 100):
        too_deep(srv.request('PUT', f'{WF}/{ws}/workflows/deep-no', body=body, headers=hdr), 'workflow 2000')
    # the listing that a client reads back stays readable
    assert srv.request('GET', f'{WF}/{ws}/workflows').status == 200


def test_job_post_restart(srv):
    ws = srv.workspace
    hdr = {'Content-Type': 'application/json'}
    # the body is 1 level, processingSpecification 2, workflowParameters 3
    b = job_body('pics', 'crop', spec={'workflowParameters': {'tag': deep(LIMIT - 3)}})
    r = srv.request('POST', f'{BP}/{ws}/jobs/deep-ok', body=json.dumps(b), headers=hdr)
    not_too_deep(r, 'job at the limit')
    b = job_body('pics', 'crop', spec={'workflowParameters': {'tag': deep(LIMIT - 2)}})
    too_deep(srv.request('POST', f'{BP}/{ws}/jobs/deep-no', body=json.dumps(b), headers=hdr), 'job')
    too_deep(srv.request('POST', f'{BP}/{ws}/jobs/deep-no', body=deep_text(2000), headers=hdr), 'job 2000')
    assert srv.request('GET', f'{BP}/{ws}/jobs/deep-no').status == 404
    r = srv.request('GET', f'{BP}/{ws}/jobs')
    assert r.status == 200, r
    r = srv.request('POST', f'{BP}/{ws}/jobs/d1', body=json.dumps(job_body('pics', 'crop')), headers=hdr)
    assert r.status == 200, r
    wait_job(srv, 'd1')
    too_deep(srv.request('POST', f'{BP}/{ws}/jobs/d1/restart', body=deep_text(LIMIT + 1), headers=hdr), 'restart')


@pytest.mark.parametrize('kind', ['image', 'video'])
def test_references(srv, kind):
    key = f'{kind}References'
    url = 'http://127.0.0.1:9/x.' + ('jpg' if kind == 'image' else 'mp4')
    hdr = {'Content-Type': 'application/json'}
    ok = {key: [{'name': 'x', 'url': url, 'extra': deep(LIMIT - 3)}]}
    r = srv.ds('POST', f'/refs-ok-{kind}/bulk-upload/{kind}-references', body=json.dumps(ok), headers=hdr,
               check=False)
    not_too_deep(r, 'refs at the limit')
    bad = {key: [{'name': 'x', 'url': url, 'extra': deep(LIMIT - 2)}]}
    r = srv.ds('POST', f'/refs-no-{kind}/bulk-upload/{kind}-references', body=json.dumps(bad), headers=hdr,
               check=False)
    too_deep(r, 'refs')


def test_model_metadata(srv):
    ws = srv.workspace
    weights = _read(DET, 'weights.onnx')
    meta = {'task': 'object-detection', 'class_names': _read(DET, 'class_names.txt').decode().split(),
            'environment': json.loads(_read(DET, 'environment.json'))}
    ok = dict(meta, extra=deep(LIMIT - 1))
    bad = dict(meta, extra=deep(LIMIT))
    # multipart part
    for m, check in ((ok, not_too_deep), (bad, too_deep)):
        ctype, body = multipart([('weights', 'weights.onnx', weights), ('metadata', None, json.dumps(m).encode())])
        r = srv.request('PUT', f'{MR}/{ws}/models/deep-mp', body=body, headers={'Content-Type': ctype})
        check(r, 'multipart metadata')
    # query parameter and header of a raw upload
    raw = {'Content-Type': 'application/octet-stream'}
    too_deep(srv.request('PUT', f'{MR}/{ws}/models/deep-q', body=weights, query={'metadata': json.dumps(bad)},
                         headers=raw), 'query metadata')
    too_deep(srv.request('PUT', f'{MR}/{ws}/models/deep-h', body=weights,
                         headers=dict(raw, **{'X-Model-Metadata': json.dumps(bad)})), 'header metadata')
    assert srv.request('GET', f'{MR}/{ws}/models/deep-q').status == 404
    assert srv.request('GET', f'{MR}/{ws}/models/deep-h').status == 404
    assert srv.request('GET', f'{MR}/{ws}/models').status == 200


def test_sidecars(srv):
    # single upload of a sidecar: refused at once
    r = srv.upload_image('side', 'a.png.json', json.dumps({'k': deep(LIMIT)}).encode())
    assert r.status == 400 and '64 levels' in r.json()['error'], r
    r = srv.upload_image('side', 'b.png.json', json.dumps({'k': deep(LIMIT - 2)}).encode())
    assert r.status == 200, r
    # in a tar shard: that entry is refused, the others are staged
    tar = make_tar([('c.png', png_bytes(5)), ('c.png.json', json.dumps({'k': deep(LIMIT)}).encode()),
                    ('d.png.json', json.dumps({'k': deep(LIMIT - 2)}).encode())])
    _, put = srv.put_shard('side2', tar)
    assert put.status == 200, put
    assert srv.wait_count('side2', 2) == 2
    shards = srv.ds('GET', '/side2/shards').json()['shards']
    failed = shards[0]['statusMetadata']['failedFiles']
    assert [(f['file_name'], f['type']) for f in failed] == [('c.png.json', 'invalid-metadata-file')], failed
    assert '64 levels' in failed[0]['reason'], failed


def test_reference_list_fetched_from_a_url(srv):
    """A JSON Lines reference list is outside JSON too: a line nested too
    deep is one refused reference, the others are fetched."""
    from test_staging_refs import Origin
    o = Origin(n_images=3)
    try:
        lines = [{'name': f'j{i}.png', 'url': o.url(f'/img/{i}.png')} for i in range(3)]
        lines[1]['extra'] = deep(LIMIT)  # 65 levels with the line's object
        lines[2]['extra'] = deep(LIMIT - 1)
        o.jsonl = b''.join(json.dumps(x).encode() + b'\n' for x in lines)
        r = srv.ds('POST', '/refs-url/bulk-upload/image-references',
                   body=json.dumps({'imageReferencesURL': o.url('/refs.jsonl')}))
        assert r.status == 200, r
        assert srv.wait_count('refs-url', 2) == 2
        names = sorted(f['fileName'] for f in srv.ds('GET', '/refs-url/list').json()['filesMetadata'])
        assert names == ['j0.png', 'j2.png'], names
        shards = srv.ds('GET', '/refs-url/shards').json()['shards']
        failed = shards[0]['statusMetadata']['failedFiles']
        assert [(f['file_name'], f['type']) for f in failed] == [('line 2', 'invalid-reference')], failed
    finally:
        o.close()
