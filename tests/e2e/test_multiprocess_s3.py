"""Many processes on one PostgreSQL database and one S3 store (issue 12,
"Tests"; the S3 variant of test_multiprocess_pg.py): two API processes
(`vbatch serve --workers 0`) and three `vbatch worker` processes, each with
a data folder of its own, share a fresh schema of VBATCH_TEST_PG and one
prefix of the radosgw bucket of VBATCH_TEST_S3 (blobs and the installation
secret travel through those two, not through a folder).

Tar shards are PUT straight to radosgw with the presigned URLs handed out by
API process A (the inference CLI's flow: vbatch is never called); during
the ingest the API process holding the arrival poller's lease is killed
with SIGKILL after the first shard was indexed, the other one takes the
poller over, and the killed one is started again.  The job is started on B;
during processing one worker with a running task is killed, during the
export the worker exporting.  Then:

- every uploaded image is counted exactly once (on both API processes);
- every image is exactly once in the exported results (JSONL rows) and in
  the exported image archives;
- each processing task was done by exactly one worker, the export once;
- the job ends completed.

Skipped without VBATCH_TEST_PG + psql or without VBATCH_TEST_S3 + AWS_*
(scripts/test.sh starts both)."""
import collections
import os
import re
import shutil
import time
import urllib.parse
import uuid

import pytest

from conftest import MULT, Server, make_tar, picks_its_database, png_bytes
from jobs_helpers import CROP_WF, bp, download_export, job_body, list_files, put_workflow, results_rows
from test_multiprocess_pg import PG, Worker, log, owner_pid, pg_schema, psql, task_rows, wait_until  # noqa: F401

S3 = os.environ.get('VBATCH_TEST_S3', '')
pytestmark = [pytest.mark.skipif(not PG or PG == 'off' or not shutil.which('psql'),
                                 reason='VBATCH_TEST_PG not set or no psql'),
              pytest.mark.skipif(not S3 or not os.environ.get('AWS_SECRET_ACCESS_KEY'),
                                 reason='VBATCH_TEST_S3 / AWS credentials not set'),
              picks_its_database,
              pytest.mark.picks_its_blobs]

N_IMAGES = 1200
SHARD = 200                  # 6 tar shards
ITEM_DELAY_MS = 6            # per image, in processing and in the export


def blobs_url(prefix):
    u = urllib.parse.urlsplit(S3)
    pre = u.path.strip('/')
    return f's3://{u.netloc}/{pre + "/" if pre else ""}{prefix}?{u.query}'


def lease_owner_pid(db, name):
    rows = psql(db, "SELECT owner FROM leases WHERE name='%s' AND until_ms > "
                    "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)" % name)
    if not rows:
        return None
    m = re.search(r'-(\d+)-[^-]+$', rows[0][0])
    return int(m.group(1)) if m else None


def test_two_api_and_three_worker_processes_on_s3_with_kills(tmpdir_path, pg_schema):
    prefix = 'e2e-mp-' + uuid.uuid4().hex[:10]
    common = {'VBATCH_DB': pg_schema, 'VBATCH_BLOBS': blobs_url(prefix)}
    api_args = ['--workers', '0', '--upload-poll-ms', '200']
    wenv = dict(common, VBATCH_JOBS_ITEM_DELAY_MS=str(ITEM_DELAY_MS))
    apis, workers, killed_pids = {}, [], set()

    def api(name, key=None):
        d = os.path.join(tmpdir_path, name)
        os.makedirs(d, exist_ok=True)
        s = Server(d, args=api_args, env=common, key=key)
        apis[name] = s
        return s.start()

    def worker():
        d = os.path.join(tmpdir_path, f'w{len(workers) + 1}')
        os.makedirs(d, exist_ok=True)
        w = Worker(tmpdir_path, len(workers) + 1, d, wenv).start()
        workers.append(w)
        return w

    try:
        a = api('a')
        b = api('b', key=a.key)
        for _ in range(3):
            worker()

        # -- shards PUT straight to radosgw; the poller's holder killed --------
        put_workflow(a, 'crop', CROP_WF)
        names = [f'img-{i:04d}.png' for i in range(N_IMAGES)]
        urls = []
        for k in range(0, N_IMAGES, SHARD):
            r = a.ds('POST', '/mp/bulk-upload/image-files', query={'displayName': 'mp'})
            assert r.status == 200, r
            d = r.json()['signedURLDetails']
            assert not d['uploadURL'].startswith((a.base, b.base)), d  # the store's URL
            urls.append((d, make_tar([(nm, png_bytes(i)) for i, nm in enumerate(names[k:k + SHARD], k)])))

        def put(d, tar):
            r = a.raw('PUT', d['uploadURL'], body=tar, headers=d.get('extensionHeaders') or {})
            assert r.status == 200, r

        put(*urls[0])
        assert b.wait_count('mp', SHARD, timeout=60) >= SHARD
        holder = wait_until(lambda: lease_owner_pid(pg_schema, 'upload-poller'), timeout=30,
                            what='the upload poller lease')
        victim = [s for s in apis.values() if s.proc.pid == holder]
        assert victim, (holder, [s.proc.pid for s in apis.values()])
        victim = victim[0]
        other = b if victim is a else a
        for d, tar in urls[1:4]:
            put(d, tar)
        victim.kill9()
        log(f'ingest: killed the poller holder (pid {holder}) with shards arriving')
        for d, tar in urls[4:]:
            put(d, tar)
        # the other process takes the poller over when the lease ends
        assert other.wait_count('mp', N_IMAGES, timeout=120) == N_IMAGES
        victim.start(same_port=True)
        time.sleep(1.0 * MULT)  # a second recording of an arrival would show now
        for s in (a, b):
            assert s.ds('GET', '/mp/count').json()['count'] == N_IMAGES
        listed = sorted(f['fileName'] for f in list_files(b, 'mp'))
        assert listed == names
        shards = b.ds('GET', '/mp/shards', query={'pageSize': 100}).json()['shards']
        assert len(shards) == len(urls) and all(x['statusName'] == 'ingested' for x in shards), shards

        # -- job on B; a worker killed in processing, the exporter in export ----
        r = bp(b, 'POST', '/mp1', job_body('mp', 'crop', persist=True))
        assert r.status == 200, r

        def running_proc():
            rows = task_rows(pg_schema, 'mp1')
            if any(t[0] == 'processing' and t[2] == 'done' for t in rows):
                pids = {owner_pid(t[4]) for t in rows if t[0] == 'processing' and t[2] == 'running'}
                return [w for w in workers if w.pid in pids]
            return None
        w = wait_until(running_proc, timeout=300, what='a done task and a running one')[0]
        w.kill9()
        killed_pids.add(w.pid)
        log(f'processing: killed worker {w.name} (pid {w.pid})')
        worker()

        def exporting():
            rows = [t for t in task_rows(pg_schema, 'mp1') if t[0] == 'export']
            return rows and rows[0][2] == 'running' and rows[0][4] and rows[0]
        t_exp = wait_until(exporting, timeout=300, what='the export task running', every=0.05)
        time.sleep(0.5)
        exp_w = [x for x in workers if x.pid == owner_pid(t_exp[4])]
        if [t for t in task_rows(pg_schema, 'mp1') if t[0] == 'export'][0][2] == 'running' and exp_w:
            exp_w[0].kill9()
            killed_pids.add(exp_w[0].pid)
            log(f'export: killed worker {exp_w[0].name} (pid {exp_w[0].pid})')
            worker()
        job = wait_until(lambda: (lambda j: j['isTerminal'] and j)(bp(a, 'GET', '/mp1').json()['job']),
                         timeout=400, what='the job to end', every=0.25)
        assert job['error'] is False, job
        assert job['lastNotification']['imagesFailed'] == 0, job

        # -- every image exactly once ---------------------------------------------
        exp = download_export(a, 'mp1')
        rows = results_rows(exp, 'jsonl')
        counts = collections.Counter(r['image'] for r in rows)
        assert sorted(counts) == names and max(counts.values()) == 1, \
            (len(rows), [n for n, c in counts.items() if c > 1][:10])
        assert sorted(exp['members']) == sorted(f'{n}/crop.jpg' for n in names)
        rows_t = task_rows(pg_schema, 'mp1')
        assert all(t[2] == 'done' for t in rows_t), rows_t
        done = collections.Counter()
        exports = 0
        for x in workers:
            text = x.log()
            done.update(int(m) for m in re.findall(r'task done job=mp1 task=(\d+) ', text))
            exports += len(re.findall(r'export done job=mp1 ', text))
        procs = sorted(t[1] for t in rows_t if t[0] == 'processing')
        assert sorted(done) == procs and max(done.values()) == 1, done
        assert exports == 1, exports
        # takeovers only of killed workers' leases
        logs = bp(b, 'GET', '/mp1/logs', query={'pageSize': 1000}).json()['logs']
        for entry in logs:
            if entry['logType'] == 'lease-expired':
                assert owner_pid(entry['payload']['previousOwner']) in killed_pids, entry
    finally:
        for x in workers:
            if x.proc.poll() is None:
                x.stop()
        for s in apis.values():
            if s.proc and s.proc.poll() is None:
                s.stop()
