"""Batch Processing API end to end: upload → job → tasks → export download
(JSONL and CSV, with and without persisted images), validation errors,
idempotent re-POST, pagination, logs, and job webhooks with retries and an
HMAC signature.  Every 2xx body is checked against the published OpenAPI
document (jobs_helpers.bp_ok)."""
import json
import os

import pytest

from conftest import Server
from jobs_helpers import (CROP_WF, DET_WF, MODELS, Receiver, bp, download_export, job_body, list_files, ort_env,
                          put_workflow, results_rows, stage_pngs, verify_signature, wait_job)


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('jobs-api'))
    s = Server(d, args=['--allow-private-urls', '--models-dir', MODELS], env=ort_env(d)).start()
    put_workflow(s, 'crop', CROP_WF)
    put_workflow(s, 'det', DET_WF)
    stage_pngs(s, 'pics', 30)
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def test_jsonl_without_images(srv):
    r = bp(srv, 'POST', '/e2e-jsonl', job_body('pics', 'crop', spec={'workflowParameters': {'tag': 'x1'}}),
           query={'name': 'first job'})
    assert r.status == 200, r
    job = wait_job(srv, 'e2e-jsonl')
    assert job['error'] is False and job['name'] == 'first job'
    assert job['createdAt'].endswith('Z') and job['lastUpdate'].endswith('Z')
    exp = download_export(srv, 'e2e-jsonl')
    assert [p['partName'] for p in exp['parts']] == ['results']
    rows = results_rows(exp, 'jsonl')
    assert sorted(r['image'] for r in rows) == [f'img-{i:04d}.png' for i in range(30)]
    assert all(r['tag'] == 'x1' and r['crop'] == '<deducted_image>' for r in rows)
    assert list(rows[0]) == ['crop', 'tag', 'image']
    # the processing batch lists one results file per task: 30 images for
    # 2 workers are cut into tasks of 16 and 14 (docs/JOBS.md, planner)
    files = list_files(srv, 'e2e-jsonl-processing')
    assert sorted(f['fileName'] for f in files) == ['task-00001.jsonl', 'task-00002.jsonl']


def test_csv_with_persisted_images(srv):
    r = bp(srv, 'POST', '/e2e-csv', job_body('pics', 'crop', fmt='csv', persist=True,
                                             spec={'imagesOutputsToBePersisted': ['crop']}))
    assert r.status == 200, r
    job = wait_job(srv, 'e2e-csv')
    assert job['error'] is False
    exp = download_export(srv, 'e2e-csv')
    assert sorted(p['partName'] for p in exp['parts']) == ['images', 'results']
    text = exp['files']['results']['aggregated_results.csv'].decode()
    assert text.splitlines()[0] == 'crop,tag,image'
    rows = results_rows(exp, 'csv')
    assert len(rows) == 30 and rows[0]['tag'] == 'none'
    assert sorted(exp['members']) == sorted(f'img-{i:04d}.png/crop.jpg' for i in range(30))
    assert all(v[:2] == b'\xff\xd8' for v in exp['members'].values())


def test_detection_workflow_with_model(srv):
    r = bp(srv, 'POST', '/e2e-det', job_body('pics', 'det', fmt='csv'))
    assert r.status == 200, r
    job = wait_job(srv, 'e2e-det')
    assert job['error'] is False, job
    rows = results_rows(download_export(srv, 'e2e-det'), 'csv')
    assert len(rows) == 30
    pred = json.loads(rows[0]['predictions'])
    assert 'predictions' in pred and 'image' in pred


def test_stages_tasks_logs_and_listing(srv):
    stages = bp(srv, 'GET', '/e2e-jsonl/stages').json()['stages']
    assert [s['processingStageId'] for s in stages] == ['processing', 'export']
    assert all(s['tasksNumber'] >= 1 and s['statusType'] == 'success' and s['notification'] for s in stages)
    assert stages[1]['outputBatches'] == ['e2e-jsonl-export']
    t = bp(srv, 'GET', '/e2e-jsonl/stages/processing/tasks').json()
    assert 'nextPageToken' in t and t['nextPageToken'] is None
    assert t['tasks'][0]['progress'] == 1.0 and t['tasks'][0]['statusType'] == 'success'
    logs = bp(srv, 'GET', '/e2e-jsonl/logs', query={'severity': 'info'}).json()
    assert logs['logs'] and all(entry['severity'] == 'info' for entry in logs['logs'])
    assert bp(srv, 'GET', '/e2e-jsonl/logs', query={'severity': 'error'}).json()['logs'] == []
    assert bp(srv, 'GET', '/e2e-jsonl/logs', query={'severity': 'bad'}).status == 400
    # paginated job list: pageSize 1 walks every job once, ends with null
    seen, token = [], None
    while True:
        q = {'pageSize': 1}
        if token:
            q['nextPageToken'] = token
        d = bp(srv, 'GET', '', query=q).json()
        assert 'nextPageToken' in d
        seen += [j['jobId'] for j in d['jobs']]
        token = d['nextPageToken']
        if token is None:
            break
    assert len(seen) == len(set(seen)) and {'e2e-jsonl', 'e2e-csv'} <= set(seen)


def test_validation_idempotency_and_errors(srv):
    body = job_body('pics', 'crop', maxParallelTasks=2, processingTimeoutSeconds=600,
                    maxImageFailureRate=0.5, notificationsURL=None,
                    spec={'imageInputName': 'image', 'imagesMetadataInputsMapping': {}})
    assert bp(srv, 'POST', '/idem', body).status == 200
    r = bp(srv, 'POST', '/idem', body)
    assert r.status == 200 and r.json()['created'] is False
    body2 = dict(body, maxParallelTasks=3)
    r = bp(srv, 'POST', '/idem', body2)
    assert r.status == 409 and 'different definition' in r.json()['error']

    def bad(job, b, status, text):
        r = bp(srv, 'POST', f'/{job}', b)
        assert r.status == status, r
        assert text in r.json()['error'], r.json()
    bad('v1', job_body('nope', 'crop'), 404, "batch 'nope' not found")
    bad('v2', job_body('pics', 'nope'), 404, "workflow 'nope' not found")
    bad('v3', job_body('pics', 'crop', maxImageFailureRate=1.5), 400, 'maxImageFailureRate')
    bad('v4', dict(job_body('pics', 'crop'), type='simple-video-processing-v1'), 400, 'video')
    bad('v5', job_body('pics', 'crop', spec={'imageInputName': 'other'}), 400, 'imageInputName')
    bad('v6', job_body('pics', 'crop', spec={'aggregationFormat': 'xml'}), 400, 'aggregationFormat')
    bad('v7', job_body('pics', 'crop', computeConfiguration={'type': 'compute-configuration-v1',
                                                             'machineSize': 'huge'}), 400, 'machineSize')
    bad('v8', job_body('pics', 'crop', spec={'imagesOutputsToBePersisted': ['zzz']}), 400, 'zzz')
    bad('v9', {'type': 'trt-compilation-v1', 'modelId': 'x/1'}, 400, 'not supported')
    r = bp(srv, 'POST', '/BAD', job_body('pics', 'crop'))
    assert r.status == 400
    r = bp(srv, 'POST', '/v10', raw_body=b'{not json')
    assert r.status == 400
    # the legacy machine size is accepted and mapped
    ok = job_body('pics', 'crop', computeConfiguration={'type': 'compute-configuration-v1', 'machineType': 'cpu',
                                                        'machineSize': 'xs'})
    assert bp(srv, 'POST', '/legacy', ok).status == 200
    assert bp(srv, 'GET', '/missing').status == 404
    assert bp(srv, 'GET', '/idem/stages/nostage/tasks').status == 404
    r = srv.request('GET', f'/batch-processing/v1/external/{srv.workspace}/jobs/idem', auth=False)
    assert r.status == 401
    wait_job(srv, 'idem')
    wait_job(srv, 'legacy')
    r = bp(srv, 'POST', '/idem/restart')
    assert r.status == 409 and 'already completed' in r.json()['error']
    r = bp(srv, 'POST', '/idem/abort')
    assert r.status == 200 and r.json()['status'] == 'ok'
    assert r.json()['job']['error'] is False  # terminal jobs are left as they were


def test_webhook_retried_and_signed(server_factory):
    rec = Receiver(fail_first=2)
    try:
        s = server_factory(['--allow-private-urls']).start()
        put_workflow(s, 'crop', CROP_WF)
        stage_pngs(s, 'hook', 3)
        r = bp(s, 'POST', '/hooked', job_body('hook', 'crop', notificationsURL=rec.url))
        assert r.status == 200, r
        job = wait_job(s, 'hooked')
        assert job['error'] is False
        calls = rec.wait(3)
        assert len(calls) >= 3, calls
        bodies = [json.loads(b) for _, b in calls]
        assert [b['delivery_attempt'] for b in bodies[:3]] == [1, 2, 3]
        for (h, raw), b in zip(calls, bodies):
            hd = {k.lower(): v for k, v in h.items()}
            assert hd['authorization'] == 'Bearer rf_default'
            assert b['type'] == 'roboflow-batch-job-notification-v1'
            assert b['job_id'] == 'hooked' and b['job_state'] == 'success'
            assert b['event_id'] == bodies[0]['event_id']
            assert verify_signature(s.data, h, raw)
        # a private URL without the allow-list option is refused at POST
        s2 = server_factory(sub='noallow').start()
        put_workflow(s2, 'crop', CROP_WF)
        stage_pngs(s2, 'hook', 1)
        r = bp(s2, 'POST', '/hooked', job_body('hook', 'crop', notificationsURL=rec.url))
        assert r.status == 400 and 'notificationsURL' in r.json()['error']
    finally:
        rec.close()


def _log_text(s):
    with open(s.log_path, 'rb') as f:
        return f.read().decode(errors='replace')


def test_gpu_machine_type_refused_without_gpu_provider(srv):
    """The ONNX Runtime here is CPU-only: machineType gpu is refused at POST
    (and at restart with an override) with a clear 400, nothing is created,
    and the check loads no model (no new "models loaded" log line)."""
    gpu = {'type': 'compute-configuration-v2', 'machineType': 'gpu', 'workersPerMachine': 1}
    loads_before = _log_text(srv).count('models loaded')
    assert loads_before >= 1  # the start-up load is logged, so a gpu load would be seen
    for wf in ('det', 'crop'):
        r = bp(srv, 'POST', f'/gpu-{wf}', job_body('pics', wf, computeConfiguration=gpu))
        assert r.status == 400, r
        err = r.json()['error']
        assert 'gpu' in err and ('CUDA' in err or 'TensorRT' in err), err
        assert bp(srv, 'GET', f'/gpu-{wf}').status == 404
    assert _log_text(srv).count('models loaded') == loads_before
    r = bp(srv, 'POST', '/e2e-jsonl/restart', {'type': 'parameters-override-v1', 'computeConfiguration': gpu})
    assert r.status == 400 and 'gpu' in r.json()['error'], r
    # a cpu override is not refused for the machine type (the job succeeded: 409)
    cpu = dict(gpu, machineType='cpu')
    r = bp(srv, 'POST', '/e2e-jsonl/restart', {'type': 'parameters-override-v1', 'computeConfiguration': cpu})
    assert r.status == 409, r


def test_model_workflow_refused_when_onnx_runtime_missing(server_factory, tmp_path):
    """ONNX Runtime cannot be loaded: a job whose workflow has model steps is
    refused with a clear 400; a workflow without models still runs."""
    env = dict(ort_env(str(tmp_path)), VBATCH_ORT_LIB=str(tmp_path / 'no-such-libonnxruntime.so'))
    s = server_factory(['--models-dir', MODELS], env=env, sub='noort').start()
    put_workflow(s, 'crop', CROP_WF)
    put_workflow(s, 'det', DET_WF)
    stage_pngs(s, 'pics', 2)
    r = bp(s, 'POST', '/det-noort', job_body('pics', 'det'))
    assert r.status == 400, r
    assert 'ONNX Runtime' in r.json()['error'] and 'model steps' in r.json()['error'], r.json()
    r = bp(s, 'POST', '/crop-noort', job_body('pics', 'crop'))
    assert r.status == 200, r
    assert wait_job(s, 'crop-noort')['error'] is False


def test_model_threads_option(server_factory):
    """--model-threads / VBATCH_MODEL_THREADS sets ONNX Runtime's intra-op
    threads (serve and worker); it is listed in --help and validated."""
    import subprocess
    s = server_factory(['--model-threads', '3'], sub='mt').start()
    assert 'model runtime intra_op_threads=3' in _log_text(s), s.tail_log()
    assert s.stop() == 0, s.tail_log()
    s2 = server_factory(env={'VBATCH_MODEL_THREADS': '5'}, sub='mt-env').start()
    assert 'model runtime intra_op_threads=5' in _log_text(s2), s2.tail_log()
    from conftest import BIN
    h = subprocess.run([BIN, 'serve', '--help'], capture_output=True, text=True, timeout=30)
    text = h.stdout + h.stderr
    assert '--model-threads' in text and 'VBATCH_MODEL_THREADS' in text, text
    r = subprocess.run([BIN, 'serve', '--model-threads', 'many'], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and 'model-threads' in r.stderr, r.stderr
    w = subprocess.run([BIN, 'worker', '--bogus'], capture_output=True, text=True, timeout=30)
    assert w.returncode != 0 and '--model-threads' in w.stderr, w.stderr
    w = subprocess.run([BIN, 'worker', '--model-threads', 'x'], capture_output=True, text=True, timeout=30)
    assert w.returncode == 2 and 'non-negative integer' in w.stderr, w.stderr
    w = subprocess.run([BIN, 'worker'], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, VBATCH_MODEL_THREADS='-1'))
    assert w.returncode == 2 and 'non-negative integer' in w.stderr, w.stderr
