"""Idle workers wake on PostgreSQL LISTEN/NOTIFY (issue 11, item 3): a
separate `vbatch worker` process whose fallback poll is set to a minute
(VBATCH_JOBS_IDLE_POLL_MS) still claims each job posted to an API-only
`serve --workers 0` within moments: job creation NOTIFYs vbatch_tasks in
its transaction.  Measured with the job's createdAt and its processing
stage's startTimestamp (the first claim).  Idle, the worker no longer
polls the tasks table every 200 ms (PostgreSQL's scan counts of it)."""
import os
import shutil
import subprocess
import time
import urllib.parse
import uuid
from datetime import datetime

import pytest

from conftest import BIN, MULT, Server, picks_its_database, png_bytes
from jobs_helpers import CROP_WF, bp, job_body, put_workflow, wait_job

pytestmark = picks_its_database  # its own schema / both backends: not again in the [pg] pass

PG = os.environ.get('VBATCH_TEST_PG', '')
need_pg = pytest.mark.skipif(not PG or not shutil.which('psql'), reason='VBATCH_TEST_PG not set or no psql')


def psql(uri, sql):
    subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', uri, '-c', sql], check=True,
                   capture_output=True, text=True, timeout=30)


@pytest.fixture
def pg_schema():
    name = 't_e2e_' + uuid.uuid4().hex[:12]
    psql(PG, 'CREATE SCHEMA ' + name)
    sep = '&' if '?' in PG else '?'
    yield PG + sep + 'options=' + urllib.parse.quote('-csearch_path=' + name), name
    psql(PG, 'DROP SCHEMA IF EXISTS %s CASCADE' % name)


def task_scans(schema):
    """Scans of the schema's tasks table so far (each claim attempt is one
    or more); the server's statistics lag by up to a second or so."""
    out = subprocess.run(['psql', '-X', '-q', '-t', '-A', PG, '-c',
                          "SELECT COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0) FROM pg_stat_user_tables"
                          f" WHERE schemaname='{schema}' AND relname='tasks'"],
                         check=True, capture_output=True, text=True, timeout=30).stdout.strip()
    return int(out or 0)


def ms(ts):
    return datetime.fromisoformat(ts.replace('Z', '+00:00')).timestamp() * 1000


@need_pg
@pytest.mark.serial  # counts PostgreSQL's scan statistics in a time window: load shifts their flushes
def test_separate_worker_wakes_on_notify_not_poll(tmp_path, pg_schema):
    uri, schema = pg_schema
    env = {'VBATCH_DB': uri}
    s = Server(str(tmp_path), args=['--workers', '0'], env=env).start()
    w = None
    try:
        put_workflow(s, 'crop', CROP_WF)
        for i in range(4):
            assert s.upload_image('b', f'i{i}.png', png_bytes(i)).status == 200
        e = dict(os.environ)
        e.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=1')
        e.update(env)
        e.update({k: v for k, v in s.env.items() if k == 'VBATCH_BLOBS'})  # the S3 pass: the server's blobs
        e['VBATCH_JOBS_IDLE_POLL_MS'] = '60000'
        log = str(tmp_path / 'worker.log')
        w = subprocess.Popen([BIN, 'worker', '--data', s.data, '--workers', '1'], env=e,
                             stdout=subprocess.DEVNULL, stderr=open(log, 'wb'))
        deadline = time.time() + 30 * MULT
        while b'workers started' not in open(log, 'rb').read():
            assert time.time() < deadline and w.poll() is None, open(log, 'rb').read()[-2000:]
            time.sleep(0.05)
        lat = []
        for k in range(3):
            time.sleep(0.5)  # the worker has gone idle: its next poll is a minute away
            assert bp(s, 'POST', f'/n{k}', job_body('b', 'crop')).status == 200
            job = wait_job(s, f'n{k}', timeout=30)
            assert job['error'] is False, job
            st = bp(s, 'GET', f'/n{k}/stages').json()['stages'][0]
            lat.append(ms(st['startTimestamp']) - ms(job['createdAt']))
        assert max(lat) < 3000 * MULT, lat
        # idle, the worker does not poll the tasks table (it did every
        # 200 ms before): a few seconds without any request see (almost)
        # no scan of it.  PostgreSQL 15 backends that go idle flush their
        # table counters up to 10 s later (PGSTAT_IDLE_INTERVAL): wait past
        # that, so that the scans of the jobs above are not counted as idle
        # ones (21 once, with the listener connected all along).
        time.sleep(11)
        before = task_scans(schema)
        time.sleep(4)
        idle = task_scans(schema) - before
        assert idle <= 2, idle
    finally:
        if w:
            w.terminate()
            assert w.wait(timeout=30 * MULT) == 0
        assert s.stop() == 0, s.tail_log()
