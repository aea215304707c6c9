"""Sinks fire once per image even when a task is retried after a crash:
an image job with webhook_sink, slack_notification with an attachment
(files_upload_v2 against a fake Slack), s3_sink (radosgw, when
VBATCH_TEST_S3 is set) and local_file_sink, the server killed with SIGKILL
mid-job and started again.  The webhook, the Slack upload and the S3 PUT
are queued in the outbox once per job/image/frame/step (no webhook attempt
number arrives twice for an image; a delivery cut by the kill may be
repeated as the next attempt), the S3 object of an image has a deterministic key (one object
per image), and the folder sink writes one file per image under a name of
the job, image and step (a retried image replaces its own file)."""
import collections
import json
import os
import subprocess
import time
import urllib.parse
import uuid

from conftest import BIN, MULT
from jobs_helpers import Receiver, bp, download_export, job_body, put_workflow, results_rows, stage_pngs, wait_job
from sink_receivers import FakeSlack
from test_blobs_s3 import S3, need_s3, s3_keys, with_prefix

N = 40


def sinks_wf(url, with_s3, with_slack=False):
    steps = [
        {'type': 'roboflow_core/webhook_sink@v1', 'name': 'hook', 'url': url, 'method': 'POST',
         'json_payload': {'tag': '$inputs.tag'}, 'cooldown_seconds': 0},
        {'type': 'roboflow_core/local_file_sink@v1', 'name': 'file', 'content': '$inputs.tag',
         'output_mode': 'separate_files', 'file_type': 'txt', 'target_directory': 'crash',
         'file_name_prefix': 'row'},
    ]
    outputs = [{'type': 'JsonField', 'name': 'hook', 'selector': '$steps.hook.*'},
               {'type': 'JsonField', 'name': 'file', 'selector': '$steps.file.*'}]
    if with_slack:
        steps.append({'type': 'roboflow_core/slack_notification@v1', 'name': 'slack', 'slack_token': 'xoxb-crash',
                      'channel': 'C1', 'message': 'seen', 'attachments': {'frame.jpg': '$inputs.image'},
                      'cooldown_seconds': 0, 'cooldown_session_key': 'k'})
        outputs.append({'type': 'JsonField', 'name': 'slack', 'selector': '$steps.slack.*'})
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
    slack = FakeSlack()
    args = ['--allow-private-urls', '--task-lease-ms', '1500', '--sink-folder', str(sink),
            '--slack-api-url', slack.url]
    if S3:
        args += ['--sink-s3', with_prefix(prefix)]
    s = server_factory(args=args, env={'VBATCH_JOBS_ITEM_DELAY_MS': '150'}).start()
    rec = Receiver()
    try:
        put_workflow(s, 'sinks', sinks_wf(rec.url, bool(S3), with_slack=True))
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
        attempts = collections.defaultdict(list)
        for _, body in rec.calls:
            p = json.loads(body)
            attempts[p['idempotency_key']].append(p['delivery_attempt'])
        assert len(attempts) == N, (len(attempts), len(rec.calls))
        # queued once: no attempt of an image's webhook arrives twice (a POST
        # the kill cut is sent again as the next attempt; one claimed just
        # before the kill may never have left, so the first to arrive can be 2)
        assert all(len(a) == len(set(a)) for a in attempts.values()), \
            {k: a for k, a in attempts.items() if len(a) != len(set(a))}
        # every repeat is a POST the kill cut short (at most the ones in flight)
        assert len(rec.calls) - N <= 4, len(rec.calls)
        # the folder sink: one file per image, whole, no temporary left
        files = os.listdir(sink / 'crash')
        assert len(files) == N, sorted(files)
        assert all(f.startswith('row_crash-sinks_') and f.endswith('_0_file.txt') for f in files), files
        assert all((sink / 'crash' / f).read_text() == 'T\n' for f in files)
        # Slack: one completed message per image with its JPEG; a repeat only
        # for an upload the kill cut after Slack took the completion
        slack.wait_completes(N)
        time.sleep(2.0)
        assert all(r['slack']['error_status'] is False for r in rows), rows[0]
        assert not slack.other
        jpegs = collections.Counter()
        for h, form in slack.completes:
            assert form['channel_id'] == 'C1' and form['initial_comment'] == 'seen'
            (title, got), = slack.files_of(form)
            assert title == 'frame.jpg' and len(got) == 1 and got[0][:3] == b'\xff\xd8\xff'
            jpegs[got[0]] += 1
        assert len(jpegs) == N, (len(jpegs), len(slack.completes))
        assert len(slack.completes) - N <= 4, len(slack.completes)
        if S3:
            assert all(r['s3']['error_status'] is False for r in rows), rows[0]
            assert all(r['s3']['message'].startswith('Data queued for upload to s3://') for r in rows)
            deadline = time.time() + 60 * MULT  # PUT by the outbox after the step
            while len(s3_keys(prefix)) < N and time.time() < deadline:
                time.sleep(0.5)
            objs = s3_keys(prefix)
            assert len(objs) == N, objs
            assert all(k.startswith('out/row_crash-sinks_') and k.endswith('_s3.txt') for k in objs), objs
    finally:
        rec.close()
        slack.close()


@need_s3
def test_s3_sink_puts_after_the_step_when_the_bucket_is_away(server_factory, tmp_path):
    """s3_sink's PUT is the outbox's, after the step: with the operator's
    bucket unreachable while the job runs, every image still succeeds (the
    object is queued), and once the store is back the outbox's retries PUT
    one object per image (a PUT during the step failed the step and the
    object was lost)."""
    from test_s3_faults import Proxy, blobs_url
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(S3).query))
    ep = urllib.parse.urlsplit(q['endpoint'])
    px = Proxy(ep.hostname, ep.port)
    px.down()
    prefix = 'e2e-sinks-away-' + uuid.uuid4().hex[:10]
    (tmp_path / 'sink').mkdir()
    s = server_factory(args=['--allow-private-urls', '--sink-folder', str(tmp_path / 'sink'), '--sink-s3',
                             blobs_url(prefix, f'http://127.0.0.1:{px.port}')]).start()
    try:
        put_workflow(s, 's3away', sinks_wf('http://127.0.0.1:9/unused', True))
        stage_pngs(s, 'pics', 3)
        r = bp(s, 'POST', '/s3-away', job_body('pics', 's3away', spec={'workflowParameters': {'tag': 'A'}}))
        assert r.status == 200, r
        assert wait_job(s, 's3-away', timeout=120)['error'] is False
        rows = results_rows(download_export(s, 's3-away'))
        assert len(rows) == 3
        assert all(r['s3']['error_status'] is False for r in rows), rows[0]
        assert s3_keys(prefix) == []
        px.up()
        deadline = time.time() + 60 * MULT
        while len(s3_keys(prefix)) < 3 and time.time() < deadline:
            time.sleep(0.5)
        objs = s3_keys(prefix)
        assert len(objs) == 3, objs
        assert all(k.startswith('out/row_s3-away_') and k.endswith('_0_s3.txt') for k in objs), objs
    finally:
        px.down()


@need_s3
def test_s3_sink_of_a_worker_process(server_factory, tmp_path):
    """`vbatch worker --sink-s3` next to a `serve --workers 0` without it:
    the worker's steps queue the objects and the worker's own outbox sender
    PUTs them (before, no worker sent anything and serve claimed the rows
    and failed them "no bucket" until they were given up: no object)."""
    from test_worker_pool import wait_pool
    prefix = 'e2e-sinks-worker-' + uuid.uuid4().hex[:10]
    s = server_factory(args=['--allow-private-urls', '--workers', '0']).start()
    env = s.child_env()
    log = s.log_path + '.worker0'
    w = subprocess.Popen([BIN, 'worker', '--data', s.data, '--workers', '1', '--sink-s3', with_prefix(prefix),
                          '--sink-folder', str(tmp_path)], stdout=subprocess.DEVNULL, stderr=open(log, 'wb'),
                         env=env)
    try:
        wait_pool(s, 1)
        wf = sinks_wf('http://127.0.0.1:9/unused', True)
        wf['steps'] = [st for st in wf['steps'] if st['name'] == 's3']
        wf['outputs'] = [o for o in wf['outputs'] if o['name'] == 's3']
        put_workflow(s, 's3w', wf)
        stage_pngs(s, 'pics', 3)
        r = bp(s, 'POST', '/s3-worker', job_body('pics', 's3w', spec={'workflowParameters': {'tag': 'W'}}))
        assert r.status == 200, r
        assert wait_job(s, 's3-worker', timeout=120)['error'] is False
        rows = results_rows(download_export(s, 's3-worker'))
        assert len(rows) == 3 and all(r['s3']['error_status'] is False for r in rows), rows
        deadline = time.time() + 30 * MULT
        while len(s3_keys(prefix)) < 3 and time.time() < deadline:
            time.sleep(0.5)
        objs = s3_keys(prefix)
        assert len(objs) == 3, objs
        assert all(k.startswith('out/row_s3-worker_') and k.endswith('_0_s3.txt') for k in objs), objs
        # serve never took them
        assert b'no bucket for s3_sink' not in open(s.log_path, 'rb').read()
    finally:
        w.terminate()
        assert w.wait(timeout=30 * MULT) == 0
