"""Per-image metadata end to end: a tar shard with images and sidecar files
"<image>.json" is staged (sidecars go to the "metadata" part, a bad one is
rejected with a reason), and a job with imagesMetadataInputsMapping runs
each image with its own sidecar value as a workflow parameter (the job's
workflowParameters or the workflow default for an image without one).
Sidecars are never processed as images."""
import json

import pytest

from conftest import Server, make_tar, png_bytes
from jobs_helpers import CROP_WF, bp, damage_staged, download_export, job_body, list_files, put_workflow, results_rows, wait_job


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('jobs-meta'))
    s = Server(d).start()
    put_workflow(s, 'crop', CROP_WF)
    tar = make_tar([
        ('a.png', png_bytes(1)),
        ('a.png.json', json.dumps({'label': 'alpha', 'n': 1}).encode()),
        ('b.png', png_bytes(2)),
        ('b.png.json', json.dumps({'label': 'beta'}).encode()),
        ('c.png', png_bytes(3)),
        ('bad.png.json', b'[1, 2]'),
    ])
    _, put = s.put_shard('meta', tar)
    assert put.status == 200, put
    assert s.wait_count('meta', 5) == 5
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def test_sidecars_are_staged_in_the_metadata_part(srv):
    assert srv.ds('GET', '/meta/count', query={'partName': 'metadata'}).json()['count'] == 2
    assert srv.ds('GET', '/meta').json()['batch']['batchContentType'] == 'images'
    parts = srv.ds('GET', '/meta/parts').json()['batchParts']
    assert [(p['partName'], p['contentType']) for p in parts] == [('metadata', 'metadata')]
    files = list_files(srv, 'meta')
    assert [f['fileName'] for f in files] == ['a.png', 'a.png.json', 'b.png', 'b.png.json', 'c.png']
    assert [f.get('partName') for f in files] == [None, 'metadata', None, 'metadata', None]
    meta = list_files(srv, 'meta', part='metadata')
    assert [f['fileName'] for f in meta] == ['a.png.json', 'b.png.json']
    r = srv.raw('GET', meta[0]['downloadURL'])
    assert r.status == 200 and json.loads(r.body) == {'label': 'alpha', 'n': 1}
    shards = srv.ds('GET', '/meta/shards').json()['shards']
    failed = shards[0]['statusMetadata']['failedFiles']
    assert [(f['file_name'], f['type']) for f in failed] == [('bad.png.json', 'invalid-metadata-file')]


def tags(srv, job_id):
    job = wait_job(srv, job_id)
    assert job['error'] is False, job
    rows = results_rows(download_export(srv, job_id), 'jsonl')
    return {r['image']: r['tag'] for r in rows}


def test_mapping_sets_each_images_parameter(srv):
    r = bp(srv, 'POST', '/meta-map', job_body('meta', 'crop', spec={'imagesMetadataInputsMapping': {'tag': 'label'}}))
    assert r.status == 200, r
    assert tags(srv, 'meta-map') == {'a.png': 'alpha', 'b.png': 'beta', 'c.png': 'none'}
    stages = bp(srv, 'GET', '/meta-map/stages').json()['stages']
    assert stages[0]['tasksNumber'] == 1


def test_mapping_overrides_workflow_parameters_and_missing_key(srv):
    body = job_body('meta', 'crop', spec={'workflowParameters': {'tag': 'param'},
                                          'imagesMetadataInputsMapping': {'tag': 'label'}})
    assert bp(srv, 'POST', '/meta-params', body).status == 200
    assert tags(srv, 'meta-params') == {'a.png': 'alpha', 'b.png': 'beta', 'c.png': 'param'}
    # a key no sidecar has leaves the parameter as it was
    body = job_body('meta', 'crop', spec={'imagesMetadataInputsMapping': {'tag': 'missing'}})
    assert bp(srv, 'POST', '/meta-nokey', body).status == 200
    assert tags(srv, 'meta-nokey') == {'a.png': 'none', 'b.png': 'none', 'c.png': 'none'}


def test_other_metadata_part_and_no_mapping(srv):
    body = job_body('meta', 'crop', spec={'imagesMetadataInputsMapping': {'tag': 'label'}})
    body['jobInput']['imagesMetadataPart'] = 'other'
    assert bp(srv, 'POST', '/meta-other', body).status == 200
    assert tags(srv, 'meta-other') == {'a.png': 'none', 'b.png': 'none', 'c.png': 'none'}
    # without a mapping sidecars are ignored, and never processed as images
    assert bp(srv, 'POST', '/meta-none', job_body('meta', 'crop')).status == 200
    assert tags(srv, 'meta-none') == {'a.png': 'none', 'b.png': 'none', 'c.png': 'none'}


def test_bad_metadata_part_name_rejected(srv):
    body = job_body('meta', 'crop')
    body['jobInput']['imagesMetadataPart'] = '../x'
    r = bp(srv, 'POST', '/meta-bad', body, check=False)
    assert r.status == 400 and 'imagesMetadataPart' in json.loads(r.body)['error']


def test_single_upload_sidecar(srv):
    r = srv.upload_image('single-meta', 'x.png.json', json.dumps({'label': 'ex'}).encode())
    assert r.status == 200, r
    r = srv.upload_image('single-meta', 'x.png', png_bytes(9))
    assert r.status == 200, r
    r = srv.upload_image('single-meta', 'y.png.json', b'"not an object"')
    assert r.status == 400, r
    assert srv.ds('GET', '/single-meta/count').json()['count'] == 2
    assert srv.ds('GET', '/single-meta/count', query={'partName': 'metadata'}).json()['count'] == 1
    body = job_body('single-meta', 'crop', spec={'imagesMetadataInputsMapping': {'tag': 'label'}})
    assert bp(srv, 'POST', '/meta-single', body).status == 200
    assert tags(srv, 'meta-single') == {'x.png': 'ex'}


def test_damaged_sidecar_fails_only_its_image(srv):
    """A sidecar that no longer parses (storage damage: staging validated it)
    fails that image with the cause in the job logs; the others run."""
    tar = make_tar([('p.png', png_bytes(11)), ('p.png.json', b'{"label": "pee"}'),
                    ('q.png', png_bytes(12)), ('q.png.json', b'{"label": "queue"}')])
    _, put = srv.put_shard('meta-dmg', tar)
    assert put.status == 200, put
    assert srv.wait_count('meta-dmg', 4) == 4
    damage_staged(srv, 'meta-dmg', {'q.png.json': b'{"label": '})
    body = job_body('meta-dmg', 'crop', spec={'imagesMetadataInputsMapping': {'tag': 'label'}})
    assert bp(srv, 'POST', '/meta-dmg', body).status == 200
    assert tags(srv, 'meta-dmg') == {'p.png': 'pee'}
    logs = bp(srv, 'GET', '/meta-dmg/logs', query={'severity': 'error'}).json()['logs']
    text = json.dumps(logs)
    assert "cannot parse the metadata file 'q.png.json'" in text and 'q.png' in text
