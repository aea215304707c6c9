"""Crash safety and limits of batch jobs: kill -9 of the server during
processing and during export, then restart (every staged image appears
exactly once in the export); abort stops work within seconds and restart
re-runs only what is unfinished; processingTimeoutSeconds and
maxImageFailureRate end jobs with an error.  Workers are slowed with
VBATCH_JOBS_ITEM_DELAY_MS so that the kills land mid-stage."""
import json
import time

from conftest import MULT, png_bytes
from jobs_helpers import (CROP_WF, bp, damage_staged, download_export, job_body, list_files, put_workflow,
                          results_rows, stage_pngs, wait_job)

LEASE = ['--allow-private-urls', '--task-lease-ms', '1500']


def slow(ms):
    return {'VBATCH_JOBS_ITEM_DELAY_MS': str(ms)}


def tasks(s, job, stage='processing'):
    r = bp(s, 'GET', f'/{job}/stages/{stage}/tasks', query={'pageSize': 1000})
    assert r.status == 200, r
    return r.json()['tasks']


def wait_until(pred, timeout=60, what='condition'):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what}')


def restart(s):
    key = s.key
    s.kill9()
    s.start(same_port=True)
    s.key = key


def check_exactly_once(s, job, names, images=True):
    exp = download_export(s, job)
    rows = results_rows(exp, 'jsonl')
    got = sorted(r['image'] for r in rows)
    assert got == sorted(names), (len(got), len(names))
    if images:
        assert sorted(exp['members']) == sorted(f'{n}/crop.jpg' for n in names)
    proc = [f['fileName'] for f in list_files(s, f'{job}-processing')]
    assert len(proc) == len(set(proc))
    return exp


def test_kill9_during_processing_and_export(server_factory):
    s = server_factory(LEASE, env=slow(4)).start()
    put_workflow(s, 'crop', CROP_WF)
    names = stage_pngs(s, 'crash', 520, bulk=True)
    # one image in 40 fails when the job runs: the errors part lists each once
    bad = names[7::40]
    damage_staged(s, 'crash', {n: b'\x89PNG\r\n\x1a\n damaged' for n in bad})
    assert bp(s, 'POST', '/crash1', job_body('crash', 'crop', persist=True)).status == 200
    # shards of 256, 256, 8; a batch this small is cut into tasks of at most
    # ceil(520 / (2 x 2 workers)) = 130 so that both workers get a share
    assert len(tasks(s, 'crash1')) == 5
    wait_until(lambda: any((t.get('progress') or 0) > 0 for t in tasks(s, 'crash1')), what='progress')
    restart(s)
    wait_until(lambda: bp(s, 'GET', '/crash1').json()['job']['currentStage'] == 'export', timeout=120,
               what='export stage')
    restart(s)
    job = wait_job(s, 'crash1', timeout=180)
    assert job['error'] is False, job
    assert job['lastNotification']['imagesFailed'] == len(bad), job
    exp = check_exactly_once(s, 'crash1', sorted(set(names) - set(bad)))
    errors = [json.loads(line)['image'] for line in exp['files']['errors']['errors.jsonl'].decode().splitlines()]
    assert sorted(errors) == sorted(bad), errors
    # the lease takeovers are logged
    logs = bp(s, 'GET', '/crash1/logs', query={'severity': 'warning', 'pageSize': 1000}).json()['logs']
    assert any(entry['logType'] == 'lease-expired' for entry in logs)


def test_abort_then_restart(server_factory):
    s = server_factory(LEASE, env=slow(10)).start()
    put_workflow(s, 'crop', CROP_WF)
    names = stage_pngs(s, 'ab', 300, bulk=True)
    assert bp(s, 'POST', '/ab1', job_body('ab', 'crop', persist=True)).status == 200
    wait_until(lambda: any((t.get('progress') or 0) > 0 for t in tasks(s, 'ab1')), what='progress')
    # the job's own progress moves with the heartbeats, before any task ends
    wait_until(lambda: bp(s, 'GET', '/ab1').json()['job']['lastNotification']['progress'] > 0, what='job progress')
    r = bp(s, 'POST', '/ab1/abort')
    assert r.status == 200 and r.json()['job']['isTerminal'] and r.json()['job']['error']
    t0 = time.time()
    wait_until(lambda: all(t['statusType'] != 'info' for t in tasks(s, 'ab1')), timeout=5, what='tasks stop')
    assert time.time() - t0 < 5 * MULT
    snap = [(t['taskId'], t['statusType'], t.get('progress')) for t in tasks(s, 'ab1')]
    time.sleep(1)
    assert [(t['taskId'], t['statusType'], t.get('progress')) for t in tasks(s, 'ab1')] == snap
    r = bp(s, 'POST', '/ab1/restart')
    assert r.status == 200, r
    job = wait_job(s, 'ab1', timeout=120)
    assert job['error'] is False, job
    check_exactly_once(s, 'ab1', names)


def test_processing_timeout(server_factory):
    s = server_factory(LEASE, env=slow(20)).start()
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'to', 200, bulk=True)
    assert bp(s, 'POST', '/to1', job_body('to', 'crop', processingTimeoutSeconds=1)).status == 200
    job = wait_job(s, 'to1', timeout=60)
    assert job['error'] is True
    assert 'timeout' in job['lastNotification']['message']
    logs = bp(s, 'GET', '/to1/logs', query={'severity': 'error'}).json()['logs']
    assert any(entry['logType'] == 'processing-timeout' for entry in logs)


def test_failure_rate_and_restart_with_override(server_factory):
    s = server_factory(['--allow-private-urls']).start()
    put_workflow(s, 'crop', CROP_WF)
    good, bad = [], {}
    for i in range(16):
        data = png_bytes(100 + i)
        name = f'f{i:02d}.png'
        if i % 2:
            bad[name] = data[:len(data) // 2]  # truncated after staging: cannot be decoded
        else:
            good.append(name)
        r = s.upload_image('fr', name, data)
        assert r.status == 200, r
    damage_staged(s, 'fr', bad)
    assert bp(s, 'POST', '/fr1', job_body('fr', 'crop', maxImageFailureRate=0.2)).status == 200
    job = wait_job(s, 'fr1')
    assert job['error'] is True and 'failure rate' in job['lastNotification']['message']
    logs = bp(s, 'GET', '/fr1/logs', query={'severity': 'error', 'pageSize': 5}).json()
    assert len(logs['logs']) == 5 and logs['nextPageToken']
    more = bp(s, 'GET', '/fr1/logs', query={'severity': 'error', 'pageSize': 100,
                                             'nextPageToken': logs['nextPageToken']}).json()
    failed = [entry['payload'] for entry in logs['logs'] + more['logs'] if entry['logType'] == 'image-processing-failed']
    assert sorted(p['file_path'] for p in failed) == sorted(set(f'f{i:02d}.png' for i in range(1, 16, 2)))
    assert all('decode' in p['cause'] for p in failed)
    r = bp(s, 'POST', '/fr1/restart', {'type': 'parameters-override-v1', 'maxImageFailureRate': 0.9,
                                       'computeConfiguration': {'type': 'compute-configuration-v2',
                                                                'workersPerMachine': 1}})
    assert r.status == 200, r
    job = wait_job(s, 'fr1')
    assert job['error'] is False, job
    assert job['restartParametersOverride'][0]['maxImageFailureRate'] == 0.9
    rows = results_rows(download_export(s, 'fr1'), 'jsonl')
    assert sorted(r['image'] for r in rows) == good


def test_sigterm_hands_tasks_back(server_factory):
    # a lease far longer than the test: the job can only finish in time if
    # the stopping server handed its tasks back
    s = server_factory(['--allow-private-urls', '--task-lease-ms', '600000'], env=slow(10)).start()
    put_workflow(s, 'crop', CROP_WF)
    names = stage_pngs(s, 'st', 300, bulk=True)
    assert bp(s, 'POST', '/st1', job_body('st', 'crop')).status == 200
    wait_until(lambda: any((t.get('progress') or 0) > 0 for t in tasks(s, 'st1')), what='progress')
    key = s.key
    assert s.stop() == 0
    s.start(same_port=True)
    s.key = key
    job = wait_job(s, 'st1', timeout=60)
    assert job['error'] is False, job
    check_exactly_once(s, 'st1', names, images=False)


def test_separate_worker_process(server_factory):
    s = server_factory(['--allow-private-urls', '--workers', '0']).start()
    put_workflow(s, 'crop', CROP_WF)
    names = stage_pngs(s, 'wk', 20)
    assert bp(s, 'POST', '/wk1', job_body('wk', 'crop')).status == 200
    time.sleep(0.5)
    assert bp(s, 'GET', '/wk1').json()['job']['isTerminal'] is False  # no worker in the server
    w = s.worker('--workers', '1')
    try:
        job = wait_job(s, 'wk1', timeout=60)
        assert job['error'] is False, job
        check_exactly_once(s, 'wk1', names, images=False)
    finally:
        w.terminate()
        assert w.wait(timeout=30 * MULT) == 0


def test_kill9_at_random_moments(server_factory):
    import random
    rnd = random.Random(5)
    s = server_factory(['--allow-private-urls', '--task-lease-ms', '1000'], env=slow(3)).start()
    put_workflow(s, 'crop', CROP_WF)
    names = stage_pngs(s, 'rnd', 400, bulk=True)
    assert bp(s, 'POST', '/rnd1', job_body('rnd', 'crop', persist=True, fmt='csv')).status == 200
    for _ in range(4):  # fewer kills than the 8 claims a task may take
        time.sleep(rnd.uniform(0.05, 1.2) * MULT)
        if bp(s, 'GET', '/rnd1').json()['job']['isTerminal']:
            break
        restart(s)
    job = wait_job(s, 'rnd1', timeout=180)
    assert job['error'] is False, job
    exp = download_export(s, 'rnd1')
    rows = results_rows(exp, 'csv')
    assert sorted(r['image'] for r in rows) == sorted(names)
    assert sorted(exp['members']) == sorted(f'{n}/crop.jpg' for n in names)
