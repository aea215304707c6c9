"""The live worker pool (issue 11, item 3): every process that runs job
workers registers in the database and heartbeats, and the planner cuts a
job for the whole pool.  An API-only `serve --workers 0` with three
`vbatch worker` processes (one thread each) plans a 2,000-image job for 3
threads — 6 runs of at most 334 images, cut again at the 4 shards of 500:
8 tasks — where it planned as if one worker existed before (4 tasks of
500), and the tasks are spread over the three processes."""
import re
import subprocess
import time

from conftest import BIN, MULT, make_tar, png_bytes
from jobs_helpers import CROP_WF, bp, download_export, job_body, put_workflow, results_rows, wait_job


def start_worker(s, i, threads=1):
    env = s.child_env()  # the server's database too (the e2e suite's PostgreSQL pass)
    log = s.log_path + f'.worker{i}'
    p = subprocess.Popen([BIN, 'worker', '--data', s.data, '--workers', str(threads)], stdout=subprocess.DEVNULL,
                         stderr=open(log, 'wb'), env=env)
    return p, log


def wait_pool(s, procs, timeout=30):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        logs = [open(f'{s.log_path}.worker{i}', 'rb').read() for i in range(procs)]
        if all(b'joined the worker pool' in lg for lg in logs):
            return
        time.sleep(0.1)
    raise AssertionError('the workers did not join the pool')


def test_api_only_server_plans_for_the_worker_processes(server_factory):
    s = server_factory(['--allow-private-urls', '--workers', '0']).start()
    put_workflow(s, 'crop', CROP_WF)
    names = [f'img-{i:04d}.png' for i in range(2000)]
    for k in range(0, 2000, 500):  # 4 tar shards of 500 (the most one may hold)
        tar = make_tar([(nm, png_bytes(i)) for i, nm in enumerate(names[k:k + 500], k)])
        _, put = s.put_shard('pool', tar)
        assert put.status == 200, put
    assert s.wait_count('pool', 2000, timeout=120) == 2000
    workers = [start_worker(s, i) for i in range(3)]
    try:
        wait_pool(s, 3)
        assert bp(s, 'POST', '/pool1', job_body('pool', 'crop')).status == 200
        r = bp(s, 'GET', '/pool1/stages')
        ntasks = r.json()['stages'][0]['tasksNumber']
        assert ntasks >= 6, r.json()
        assert ntasks == 8, r.json()
        job = wait_job(s, 'pool1', timeout=300)
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'pool1'))
        assert sorted(r['image'] for r in rows) == names
    finally:
        for p, _ in workers:
            p.terminate()
        for p, _ in workers:
            assert p.wait(timeout=30 * MULT) == 0
    done = {}
    for i, (_, log) in enumerate(workers):
        with open(log, 'rb') as f:
            done[i] = re.findall(rb'task done job=pool1 task=(\d+)', f.read())
    ran = sorted(int(t) for ts in done.values() for t in ts)
    assert ran == list(range(1, 9)), done  # each processing task ran to completion once
    assert all(len(ts) >= 1 for ts in done.values()), done  # every process took some
