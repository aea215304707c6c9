"""A job's outcome tells the truth (issue 10, section 2): a job in which no
image succeeded ends failed with the cause and a `fail` webhook; without
maxImageFailureRate the default failure budget (10 consecutive images
failing with the same cause in a task) stops a broken workflow fast; every
failed image is listed with its cause in the export's `errors` part; a
partial success stays a success with imagesFailed visible in the job, stage
and task answers.  Images that fail at job time are made by damaging the
stored bytes after staging (staging refuses undecodable files)."""
import json
import time

import pytest

from conftest import blob_of_url, png_bytes
from jobs_helpers import (CROP_WF, bp, damage_staged, download_export, job_body, list_files, put_workflow,
                          results_rows, stage_pngs, wait_job, Receiver)

# a workflow that fails on every image when it runs: its model is not there
NO_MODEL_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [
        {'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
         'images': '$inputs.image', 'model_id': 'no-such-model', 'confidence': 0.3},
    ],
    'outputs': [{'type': 'JsonField', 'name': 'predictions', 'selector': '$steps.det.predictions'}],
}


def errors_lines(exp):
    text = exp['files']['errors']['errors.jsonl'].decode()
    return [json.loads(line) for line in text.splitlines()]


def error_logs(s, job):
    logs = bp(s, 'GET', f'/{job}/logs', query={'severity': 'error', 'pageSize': 1000}).json()['logs']
    return logs


def test_all_failed_job_ends_failed_with_fail_webhook(server_factory):
    rec = Receiver()
    try:
        s = server_factory(['--allow-private-urls']).start()
        put_workflow(s, 'crop', CROP_WF)
        names = stage_pngs(s, 'allbad', 4)
        damage_staged(s, 'allbad', {n: b'\x89PNG\r\n\x1a\n damaged' for n in names})
        r = bp(s, 'POST', '/allbad1', job_body('allbad', 'crop', notificationsURL=rec.url))
        assert r.status == 200, r
        job = wait_job(s, 'allbad1')
        n = job['lastNotification']
        assert job['error'] is True and n['state'] == 'failed', job
        assert n['imagesFailed'] == 4 and n['imagesProcessed'] == 0, n
        # the cause is in the last notification and in the logs
        assert 'no image succeeded' in n['message'] and 'cannot decode the image' in n['message'], n
        logs = error_logs(s, 'allbad1')
        assert any(e['logType'] == 'all-images-failed' and 'cannot decode' in e['payload']['message']
                   for e in logs), logs
        failed = sorted(e['payload']['file_path'] for e in logs if e['logType'] == 'image-processing-failed')
        assert failed == names
        # the webhook says fail
        calls = rec.wait(1)
        assert calls, 'no webhook'
        body = json.loads(calls[0][1])
        assert body['job_id'] == 'allbad1' and body['job_state'] == 'fail', body
        # the export is there, with every failed image in the errors part
        exp = download_export(s, 'allbad1')
        assert sorted(p['partName'] for p in exp['parts']) == ['errors', 'results']
        errs = errors_lines(exp)
        assert sorted(e['image'] for e in errs) == names
        assert all(e['stage'] == 'processing' and 'cannot decode the image' in e['cause'] for e in errs), errs
        assert results_rows(exp) == []
    finally:
        rec.close()


def test_a_shard_cut_short_fails_only_its_lost_images(server_factory):
    """A job reads a tar shard's images in runs (one ranged read for many
    of them).  Storage damage stays each image's own: a shard whose blob
    was cut short fails the images past the cut (the one cut in half
    included) with "cannot read the staged file", a damaged image in the
    middle of a run fails alone, and every other image of those runs is
    processed."""
    s = server_factory().start()
    put_workflow(s, 'crop', CROP_WF)
    names = stage_pngs(s, 'cut', 30, bulk=True)
    files = {f['fileName']: f for f in list_files(s, 'cut')}
    key, off, n = blob_of_url(s, files[names[27]]['downloadURL'])
    assert off is not None  # kept whole in its shard
    damage_staged(s, 'cut', {names[5]: b'\xff\xd8\xff\xe0 damaged'})
    s.blobs.write(key, s.blobs.read(key)[:off + n // 2])  # image 27 cut in half, 28 and 29 gone
    r = bp(s, 'POST', '/cut1', job_body('cut', 'crop'))
    assert r.status == 200, r
    job = wait_job(s, 'cut1')
    assert job['error'] is False and job['lastNotification']['imagesFailed'] == 4, job['lastNotification']
    exp = download_export(s, 'cut1')
    assert sorted(r['image'] for r in results_rows(exp)) == sorted(set(names[:27]) - {names[5]})
    errs = {e['image']: e['cause'] for e in errors_lines(exp)}
    assert sorted(errs) == sorted([names[5]] + names[27:]), errs
    assert 'cannot decode the image' in errs[names[5]], errs
    assert all('cannot read the staged file' in errs[nm] for nm in names[27:]), errs


def test_partial_success_shows_images_failed(server_factory):
    rec = Receiver()
    try:
        s = server_factory(['--allow-private-urls']).start()
        put_workflow(s, 'crop', CROP_WF)
        names = stage_pngs(s, 'part', 12)
        bad = {names[3]: b'\xff\xd8\xff\xe0 damaged', names[8]: png_bytes(5)[:40]}
        damage_staged(s, 'part', bad)
        r = bp(s, 'POST', '/part1', job_body('part', 'crop', notificationsURL=rec.url))
        assert r.status == 200, r
        job = wait_job(s, 'part1')
        assert job['error'] is False and job['lastNotification']['state'] == 'succeeded', job
        assert job['lastNotification']['imagesFailed'] == 2
        assert job['lastNotification']['imagesProcessed'] == 10
        stages = bp(s, 'GET', '/part1/stages').json()['stages']
        proc = [st for st in stages if st['processingStageId'] == 'processing'][0]
        assert proc['notification']['imagesFailed'] == 2, proc
        assert proc['notification']['imagesProcessed'] == 10, proc
        tasks = bp(s, 'GET', '/part1/stages/processing/tasks').json()['tasks']
        assert sum(t['notification']['imagesFailed'] for t in tasks) == 2
        assert json.loads(rec.wait(1)[0][1])['job_state'] == 'success'
        exp = download_export(s, 'part1')
        assert sorted(r['image'] for r in results_rows(exp)) == sorted(set(names) - set(bad))
        errs = errors_lines(exp)
        assert sorted(e['image'] for e in errs) == sorted(bad)
        by = {e['image']: e['cause'] for e in errs}
        assert all('cannot decode the image' in c for c in by.values()), by
        # the same causes as the job logs
        logs = {e['payload']['file_path']: e['payload']['cause'] for e in error_logs(s, 'part1')
                if e['logType'] == 'image-processing-failed'}
        assert logs == by
    finally:
        rec.close()


@pytest.mark.serial  # asserts a duration under 10 s
def test_default_failure_budget_stops_a_broken_workflow(server_factory):
    # 200 images at 100 ms each on 2 workers: processing them all would take
    # at least 10 s; the budget stops the job after 10 images of a task
    delay_ms, n = 100, 200
    s = server_factory(['--allow-private-urls'], env={'VBATCH_JOBS_ITEM_DELAY_MS': str(delay_ms)}).start()
    put_workflow(s, 'nomodel', NO_MODEL_WF)
    stage_pngs(s, 'broken', n, bulk=True)
    t0 = time.time()
    r = bp(s, 'POST', '/broken1', job_body('broken', 'nomodel'))
    assert r.status == 200, r
    job = wait_job(s, 'broken1', timeout=60)
    elapsed = time.time() - t0
    assert job['error'] is True, job
    msg = job['lastNotification']['message']
    assert 'failure budget spent: 10 consecutive images failed with the same cause' in msg, msg
    assert 'no-such-model' in msg, msg
    assert elapsed < n * delay_ms / 1000 / 2, elapsed  # less than processing every image would take
    logs = error_logs(s, 'broken1')
    failed = [e for e in logs if e['logType'] == 'image-processing-failed']
    assert 10 <= len(failed) <= 20, len(failed)  # one task's 10, not the 200
    assert job['lastNotification']['imagesFailed'] == len(failed), job['lastNotification']
    assert any(e['logType'] == 'failure-budget-spent' for e in logs)
    # the stopped task is not done: a restart would run it again
    tasks = bp(s, 'GET', '/broken1/stages/processing/tasks', query={'pageSize': 100}).json()['tasks']
    assert not any(t['statusType'] == 'success' for t in tasks), tasks


def test_failure_rate_rules_instead_of_the_budget(server_factory):
    """With maxImageFailureRate the budget does not apply: 12 images failing
    the same way are all tried, and the job then fails as no image succeeded."""
    s = server_factory(['--allow-private-urls']).start()
    put_workflow(s, 'nomodel', NO_MODEL_WF)
    names = stage_pngs(s, 'rate', 12)
    r = bp(s, 'POST', '/rate1', job_body('rate', 'nomodel', maxImageFailureRate=1.0))
    assert r.status == 200, r
    job = wait_job(s, 'rate1')
    assert job['error'] is True and job['lastNotification']['imagesFailed'] == 12, job
    assert 'no image succeeded' in job['lastNotification']['message']
    exp = download_export(s, 'rate1')
    errs = errors_lines(exp)
    assert sorted(e['image'] for e in errs) == names
    assert all('no-such-model' in e['cause'] for e in errs), errs
