"""Sinks fire once per image even when a task is retried after a crash:
an image job with webhook_sink, s3_sink (radosgw, when VBATCH_TEST_S3 is
set) and local_file_sink, the server killed with SIGKILL mid-job and
started again.  The webhook is queued once per job/image/frame/step (each
image's first delivery attempt arrives exactly once; a POST cut by the
kill may be repeated with a higher delivery_attempt), the S3 object of an
image has a deterministic key (a retried image overwrites its own object:
one object per image), and the folder sink is at least once (its names
carry a timestamp, as Roboflow's)."""
import collections
import json
import os
import time
import uuid

from conftest import MULT
from jobs_helpers import Receiver, bp, download_export, job_body, put_workflow, results_rows, stage_pngs, wait_job
from test_blobs_s3 import S3, s3_keys, with_prefix

N = 40


def sinks_wf(url, with_s3):
    steps = [
        {'type': 'roboflow_core/webhook_sink@v1', 'name': 'hook', 'url': url, 'method': 'POST',
         'json_payload': {'tag': '$inputs.tag'}, 'cooldown_seconds': 0},
        {'type': 'roboflow_core/local_file_sink@v1', 'name': 'file', 'content': '$inputs.tag',
         'output_mode': 'separate_files', 'file_type': 'txt', 'target_directory': 'crash',
         'file_name_prefix': 'row'},
    ]
    outputs = [{'type': 'JsonField', 'name': 'hook', 'selector': '$steps.hook.*'},
               {'type': 'JsonField', 'name': 'file', 'selector': '$steps.file.*'}]
    if with_s3:
        bucket = S3.split('://', 1)[1].split('/', 1)[0].split('?', 1)[0]
        steps.append({'type': 'roboflow_core/s3_sink@v1', 'name': 's3', 'content': '$inputs.tag',
                      'output_mode': 'separate_files', 'file_type': 'txt', 'bucket_name': bucket,
                      's3_prefix': 'out/', 'file_name_prefix': 'row'})
        outputs.append({'type': 'JsonField', 'name': 's3', 'selector': '$steps.s3.*'})
    return {'version': '1.0',
            'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
                       {'type': 'WorkflowParameter', 'name': 'tag', 'default_value': 'none'}],
            'steps': steps, 'outputs': outputs}


def progress(s, job):
    r = bp(s, 'GET', f'/{job}/stages/processing/tasks', query={'pageSize': 1000})
    return sum((t.get('progress') or 0) for t in r.json()['tasks']) if r.status == 200 else 0


def test_sinks_once_per_image_after_kill9(server_factory, tmp_path):
    sink = tmp_path / 'sink'
    sink.mkdir()
    prefix = 'e2e-sinks-' + uuid.uuid4().hex[:10]
    args = ['--allow-private-urls', '--task-lease-ms', '1500', '--sink-folder', str(sink)]
    if S3:
        args += ['--sink-s3', with_prefix(prefix)]
    s = server_factory(args=args, env={'VBATCH_JOBS_ITEM_DELAY_MS': '150'}).start()
    rec = Receiver()
    try:
        put_workflow(s, 'sinks', sinks_wf(rec.url, bool(S3)))
        stage_pngs(s, 'pics', N)
        r = bp(s, 'POST', '/crash-sinks', job_body('pics', 'sinks', spec={'workflowParameters': {'tag': 'T'}}))
        assert r.status == 200, r
        deadline = time.time() + 120 * MULT
        while len(rec.calls) < 5 and time.time() < deadline:
            time.sleep(0.05)
        assert len(rec.calls) >= 5, 'no webhook before the kill'
        before = len(rec.calls)
        assert before < N, 'the job ended before the kill: slow it down'
        key = s.key
        s.kill9()
        s.start(same_port=True)
        s.key = key
        job = wait_job(s, 'crash-sinks', timeout=240)
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'crash-sinks'))
        assert len(rows) == N
        assert all(r['hook']['error_status'] is False for r in rows), rows[0]
        rec.wait(N)
        time.sleep(2.0)  # late duplicates would arrive now
        firsts = collections.Counter()
        keys = set()
        for _, body in rec.calls:
            p = json.loads(body)
            keys.add(p['idempotency_key'])
            if p['delivery_attempt'] == 1:
                firsts[p['idempotency_key']] += 1
        assert len(keys) == N, (len(keys), len(rec.calls))
        assert all(firsts[k] == 1 for k in keys), [k for k in keys if firsts[k] != 1]
        # every repeat is a POST the kill cut short (at most the ones in flight)
        assert len(rec.calls) - N <= 4, len(rec.calls)
        # the folder sink: at least once per image (timestamped names)
        files = os.listdir(sink / 'crash')
        assert len(files) >= N
        if S3:
            assert all(r['s3']['error_status'] is False for r in rows), rows[0]
            objs = s3_keys(prefix)
            assert len(objs) == N, objs
            assert all(k.startswith('out/row_crash-sinks_') and k.endswith('_s3.txt') for k in objs), objs
            assert all(r['s3']['message'].startswith('Data saved successfully to s3://') for r in rows)
    finally:
        rec.close()
