"""The fields the seed reference documents beside the ones the inference CLI
reads (issue 10 section 1), end to end through HTTP: "status": "ok" on
every 2xx answer of the Data Staging and Batch Processing APIs, "parts" on
list parts, GET job's jobStatus and progress while a job runs and after it
ends, nestedContentType on the export's image archives, workersPerMachine
(default 4) capping how many of a job's tasks one process runs at once,
the processingTimeoutSeconds default, inferenceBackend selecting the NMS,
400s naming the field for bad values; and the model result shapes of
WORKFLOWS.md 3.2 in the exported rows (section 4).  Every answer is also
checked against the published OpenAPI documents and the seed's snippets
(conftest.openapi_ok)."""
import json
import os
import time

import pytest

from conftest import MULT, make_tar, png_bytes
from jobs_helpers import (CROP_WF, MODELS, bp, download_export, job_body, list_files, ort_env, put_workflow,
                          results_rows, stage_pngs, wait_job)


def ok(r):
    assert r.status == 200, r
    body = r.json()
    assert body.get('status') == 'ok', body
    return body


def job_get(s, job_id):
    d = ok(bp(s, 'GET', f'/{job_id}'))
    # the seed's progress is the very value the CLI reads in lastNotification
    assert d['progress'] == d['job']['lastNotification']['progress'], d
    assert 0.0 <= d['progress'] <= 1.0
    return d


def default_compute(body):
    body['computeConfiguration'] = {'type': 'compute-configuration-v2', 'machineType': 'cpu'}
    return body


def test_staging_answers_carry_status(server):
    s = server
    # single uploads: upload, count, batch, list, parts, list batches
    ok(s.upload_image('st-one', 'a.png', png_bytes(1)))
    assert ok(s.ds('GET', '/st-one/count'))['count'] == 1
    assert ok(s.ds('GET', '/st-one'))['batch']['batchId'] == 'st-one'
    files = ok(s.ds('GET', '/st-one/list'))['filesMetadata']
    assert [f['fileName'] for f in files] == ['a.png']
    assert 'nestedContentType' not in files[0]  # a plain image: nothing nested
    parts = ok(s.ds('GET', '/st-one/parts'))
    assert parts['parts'] == parts['batchParts'] == []
    assert any(b['batchId'] == 'st-one' for b in ok(s.ds('GET', ''))['batches'])
    # bulk: signed URL, shard status
    ok(s.ds('POST', '/st-bulk/bulk-upload/image-files'))
    d, put = s.put_shard('st-bulk', make_tar([('b.png', png_bytes(2))]))
    assert put.status == 200, put
    if not s.blobs.s3:  # (on S3 the answer is the object store's, not vbatch's)
        assert put.json()['status'] == 'ok'
    s.wait_count('st-bulk', 1)
    assert ok(s.ds('GET', '/st-bulk/shards'))['shards']
    # references (the fetch itself may fail later: only the answer matters here)
    body = json.dumps({'imageReferences': [{'name': 'r.png', 'url': f'{s.base}/nothing.png'}],
                       'ingestId': 'st-refs-1'})
    first = ok(s.ds('POST', '/st-refs/bulk-upload/image-references', body=body,
                    headers={'Content-Type': 'application/json'}))
    assert first['duplicated'] is False and first['ingestId'] == 'st-refs-1'
    again = ok(s.ds('POST', '/st-refs/bulk-upload/image-references', body=body,
                    headers={'Content-Type': 'application/json'}))
    assert again['duplicated'] is True
    vbody = json.dumps({'videoReferences': [{'name': 'v.mp4', 'url': f'{s.base}/nothing.mp4'}]})
    assert ok(s.ds('POST', '/st-vrefs/bulk-upload/video-references', body=vbody,
                   headers={'Content-Type': 'application/json'}))['ingestId']
    assert ok(s.ds('POST', '/st-video/upload/video', query={'fileName': 'v.mp4'}))['signedURLDetails']


def running_tasks(s, job_id):
    tasks = ok(bp(s, 'GET', f'/{job_id}/stages/processing/tasks', query={'pageSize': 1000}))['tasks']
    return sum(1 for t in tasks if t['notification']['state'] == 'running')


def watch(s, job_id, timeout=120):
    """Poll a job to its end: (max tasks running at once, jobStatus seen,
    progress values seen while it ran, the final GET job)."""
    deadline = time.time() + timeout * MULT
    most, seen, progress = 0, [], []
    while time.time() < deadline:
        d = job_get(s, job_id)
        seen.append(d['jobStatus'])
        if d['job']['isTerminal']:
            return most, seen, progress, d
        assert d['jobStatus'] in ('pending', 'processing'), d
        progress.append(d['progress'])
        most = max(most, running_tasks(s, job_id))
        time.sleep(0.05)
    raise AssertionError(f'{job_id} did not end')


def test_job_answers_status_job_status_and_workers_per_machine(server_factory):
    # 6 worker threads in this process; each image takes 100 ms
    s = server_factory(['--allow-private-urls', '--workers', '6'],
                       env={'VBATCH_JOBS_ITEM_DELAY_MS': '100'}).start()
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'wp', 128, bulk=True)   # planned as 8 tasks of 16 images
    stage_pngs(s, 'wp2', 64, bulk=True, seed=500)  # 4 tasks of 16

    # no workersPerMachine: the default 4 caps the job at 4 of the 6 threads
    created = ok(bp(s, 'POST', '/wp-default', default_compute(job_body('wp', 'crop'))))
    assert created['jobId'] == 'wp-default'
    stages = ok(bp(s, 'GET', '/wp-default/stages'))['stages']
    assert [st['processingStageId'] for st in stages] == ['processing', 'export']
    assert any(j['jobId'] == 'wp-default' for j in ok(bp(s, 'GET', ''))['jobs'])
    most, seen, progress, final = watch(s, 'wp-default')
    assert most == 4, (most, seen)
    assert 'processing' in seen
    assert any(0.0 < p < 1.0 for p in progress), progress
    assert progress == sorted(progress)
    assert final['jobStatus'] == 'completed' and final['progress'] == 1.0
    assert final['job']['error'] is False
    logs = ok(bp(s, 'GET', '/wp-default/logs', query={'pageSize': 1000}))['logs']
    created_log = [e['payload'] for e in logs if e['logType'] == 'job-created'][0]
    assert created_log['workersPerMachine'] == 4
    assert created_log['processingTimeoutSeconds'] == 3600
    assert created_log['inferenceBackend'] == 'inference-models'
    assert ok(bp(s, 'GET', '/wp-default/stages/export/tasks'))['tasks']
    exp_parts = ok(s.ds('GET', '/wp-default-export/parts'))
    assert exp_parts['parts'] == exp_parts['batchParts'] and exp_parts['parts']

    # workersPerMachine 2: never more than 2 of its tasks at once
    ok(bp(s, 'POST', '/wp-two', job_body('wp2', 'crop')))
    most, _, _, final = watch(s, 'wp-two')
    assert most == 2, most
    assert final['jobStatus'] == 'completed'

    # abort: "aborted"; restart of an aborted job answers ok and runs again
    ok(bp(s, 'POST', '/wp-abort', job_body('wp2', 'crop')))
    ab = ok(bp(s, 'POST', '/wp-abort/abort'))
    assert ab['jobId'] == 'wp-abort'
    d = job_get(s, 'wp-abort')
    assert d['jobStatus'] == 'aborted' and d['job']['isTerminal'] is True
    ok(bp(s, 'POST', '/wp-abort/restart'))
    assert job_get(s, 'wp-abort')['jobStatus'] in ('pending', 'processing', 'completed')
    wait_job(s, 'wp-abort')
    assert job_get(s, 'wp-abort')['jobStatus'] == 'completed'

    # processingTimeoutSeconds honoured: 1 s of machine time ends the job failed
    ok(bp(s, 'POST', '/wp-timeout', job_body('wp', 'crop', processingTimeoutSeconds=1)))
    _, seen, _, final = watch(s, 'wp-timeout')
    assert final['jobStatus'] == 'failed' and final['job']['error'] is True, final
    assert 'processingTimeoutSeconds' in final['job']['lastNotification']['message']


def test_pending_job_and_bad_values(server_factory):
    s = server_factory(['--allow-private-urls', '--workers', '0']).start()
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'pd', 3)
    ok(bp(s, 'POST', '/pd-1', job_body('pd', 'crop')))
    d = job_get(s, 'pd-1')
    assert d['jobStatus'] == 'pending' and d['progress'] == 0.0, d
    assert d['job']['isTerminal'] is False
    assert running_tasks(s, 'pd-1') == 0
    ok(bp(s, 'POST', '/pd-1/abort'))
    assert job_get(s, 'pd-1')['jobStatus'] == 'aborted'

    bad = [
        ({'computeConfiguration': {'type': 'compute-configuration-v2', 'workersPerMachine': 0}},
         'workersPerMachine'),
        ({'computeConfiguration': {'type': 'compute-configuration-v2', 'workersPerMachine': 'four'}},
         'workersPerMachine'),
        ({'computeConfiguration': {'type': 'compute-configuration-v2', 'workersPerMachine': 65}},
         'workersPerMachine'),
        ({'computeConfiguration': {'type': 'compute-configuration-v2', 'workersPerMachine': 2.5}},
         'workersPerMachine'),
        ({'processingTimeoutSeconds': 0}, 'processingTimeoutSeconds'),
        ({'processingTimeoutSeconds': -5}, 'processingTimeoutSeconds'),
        ({'processingTimeoutSeconds': 'soon'}, 'processingTimeoutSeconds'),
        ({'inferenceBackend': 'fast'}, 'inferenceBackend'),
        ({'inferenceBackend': 3}, 'inferenceBackend'),
    ]
    for i, (extra, field) in enumerate(bad):
        r = bp(s, 'POST', f'/pd-bad-{i}', job_body('pd', 'crop', **extra))
        assert r.status == 400, (extra, r)
        assert field in r.json()['error'], (extra, r.json())
        assert bp(s, 'GET', f'/pd-bad-{i}').status == 404
    # the same checks on restart overrides
    r = bp(s, 'POST', '/pd-1/restart', {'type': 'parameters-override-v1', 'computeConfiguration': {
        'type': 'compute-configuration-v2', 'workersPerMachine': 0}})
    assert r.status == 400 and 'workersPerMachine' in r.json()['error'], r
    r = bp(s, 'POST', '/pd-1/restart', {'type': 'parameters-override-v1', 'processingTimeoutSeconds': 0})
    assert r.status == 400 and 'processingTimeoutSeconds' in r.json()['error'], r


def read(*p):
    with open(os.path.join(*p), 'rb') as f:
        return f.read()


def model_wf(block, model_id, **params):
    step = {'type': f'roboflow_core/{block}', 'name': 'm', 'images': '$inputs.image', 'model_id': model_id}
    step.update(params)
    return {'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}], 'steps': [step],
            'outputs': [{'type': 'JsonField', 'name': 'predictions', 'selector': '$steps.m.predictions'}]}


@pytest.fixture(scope='module')
def msrv(tmp_path_factory):
    from conftest import Server
    d = str(tmp_path_factory.mktemp('fields-models'))
    s = Server(d, args=['--allow-private-urls', '--models-dir', MODELS], env=ort_env(d)).start()
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def stage_dir(s, batch, folder, n=None):
    names = sorted(f for f in os.listdir(folder) if f.endswith('.png'))[:n]
    for name in names:
        assert s.upload_image(batch, name, read(folder, name)).status == 200
    assert s.wait_count(batch, len(names)) == len(names)
    return names


def run_rows(s, job_id, batch, wf_id, **extra):
    ok(bp(s, 'POST', f'/{job_id}', job_body(batch, wf_id, **extra)))
    job = wait_job(s, job_id)
    assert job['error'] is False, job
    return results_rows(download_export(s, job_id))


def test_inference_backend_selects_the_nms(msrv):
    s = msrv
    # max_candidates 1: the new path (inference-models) lets one candidate
    # into the NMS; the classic NMS accepts the parameter and ignores it
    # (WORKFLOWS.md 4.3), so it finds every shape
    put_workflow(s, 'det-nms', model_wf('roboflow_object_detection_model@v2', 'synth-det', max_candidates=1))
    stage_dir(s, 'nms', os.path.join(MODELS, 'synth-det', 'test'), n=8)
    new = run_rows(s, 'nms-new', 'nms', 'det-nms', inferenceBackend='inference-models')
    dflt = run_rows(s, 'nms-default', 'nms', 'det-nms')
    old = run_rows(s, 'nms-old', 'nms', 'det-nms', inferenceBackend='old-inference')

    def boxes(rows):
        return {r['image']: len(r['predictions']['predictions']) for r in rows}
    assert len(boxes(new)) == 8
    assert boxes(new) == boxes(dflt)
    assert all(n <= 1 for n in boxes(new).values()), boxes(new)
    assert all(boxes(old)[k] >= boxes(new)[k] for k in boxes(new))
    assert sum(boxes(old).values()) > len(boxes(old)), boxes(old)
    logs = ok(bp(s, 'GET', '/nms-old/logs', query={'pageSize': 1000}))['logs']
    assert [e['payload']['inferenceBackend'] for e in logs if e['logType'] == 'job-created'] == ['old-inference']


def test_nested_content_type_of_image_archives(msrv):
    s = msrv
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'nested', 5)
    ok(bp(s, 'POST', '/nested-1', job_body('nested', 'crop', persist=True)))
    assert wait_job(s, 'nested-1')['error'] is False
    parts = ok(s.ds('GET', '/nested-1-export/parts'))
    assert parts['parts'] == parts['batchParts']
    by_name = {p['partName']: p for p in parts['parts']}
    assert by_name['images']['contentType'] == 'archives'
    assert by_name['images']['nestedContentType'] == 'image'
    assert 'nestedContentType' not in by_name['results']
    archives = list_files(s, 'nested-1-export', part='images')
    assert archives and all(f['fileName'].endswith('.tar.gz') for f in archives)
    assert all(f['nestedContentType'] == 'image' for f in archives), archives
    results = list_files(s, 'nested-1-export', part='results')
    assert results and all('nestedContentType' not in f for f in results)
    # the unfiltered listing says the same per file
    for f in list_files(s, 'nested-1-export'):
        assert f.get('nestedContentType') == ('image' if f['partName'] == 'images' else None), f


# WORKFLOWS.md 3.2: the keys of each model's output, in Roboflow's order
CLS_KEYS = ['inference_id', 'time', 'image', 'predictions', 'top', 'confidence', 'prediction_type', 'parent_id',
            'root_parent_id']
MLC_KEYS = ['inference_id', 'time', 'image', 'predictions', 'predicted_classes', 'prediction_type', 'parent_id',
            'root_parent_id']
DET_KEYS = ['width', 'height', 'x', 'y', 'confidence', 'class_id', 'class', 'detection_id', 'parent_id']


@pytest.mark.parametrize('block,model,check', [
    ('roboflow_classification_model@v2', 'synth-cls', 'cls'),
    ('roboflow_multi_label_classification_model@v2', 'synth-mlc', 'mlc'),
    ('roboflow_object_detection_model@v2', 'synth-det', 'det'),
    ('roboflow_instance_segmentation_model@v2', 'synth-seg', 'seg'),
    ('roboflow_keypoint_detection_model@v2', 'synth-kpt', 'kpt'),
])
def test_result_shapes_as_roboflow(msrv, block, model, check):
    s = msrv
    wf = f'shape-{check}'
    put_workflow(s, wf, model_wf(block, model))
    batch = f'shape-{check}'
    stage_dir(s, batch, os.path.join(MODELS, model, 'test'), n=4)
    rows = run_rows(s, f'shape-{check}', batch, wf)
    assert len(rows) == 4
    for row in rows:
        out = row['predictions']
        if check in ('cls', 'mlc'):
            assert list(out) == (CLS_KEYS if check == 'cls' else MLC_KEYS), list(out)
            assert isinstance(out['time'], float) and out['time'] >= 0
            assert out['prediction_type'] == 'classification'
            continue
        assert list(out) == ['image', 'predictions'], list(out)
        if not out['predictions']:
            assert out['image'] == {'width': None, 'height': None}
            continue
        assert set(out['image']) == {'width', 'height'} and out['image']['width'] > 0
        for p in out['predictions']:
            want = list(DET_KEYS)
            if check == 'seg':
                want.insert(6, 'points')
                assert len(p['points']) >= 3 and list(p['points'][0]) == ['x', 'y']
            if check == 'kpt':
                want.append('keypoints')
                for kp in p['keypoints']:
                    assert list(kp) == ['class_id', 'class', 'confidence', 'x', 'y']
            assert list(p) == want, list(p)
            assert 'time' not in p and 'inference_id' not in p and 'prediction_type' not in p
