"""Many processes on one PostgreSQL database (issue 11, "Tests"): two API
processes (`vbatch serve --workers 0`) and three `vbatch worker` processes
share one database (a fresh schema of VBATCH_TEST_PG) and one blob folder
(the same --data: blobs and DATA/secret are shared through the folder until
they move to object storage).

A 2,000-image batch is uploaded as tar shards through API process A (the
signed-URL flow), counted and listed on B (page tokens and signed URLs made
by one process are accepted by the other), the job is started on A and
followed on B.  During processing one worker and API process B are killed
with SIGKILL and one of each is started again; during the export the worker
running the export and API process A are killed.  Then:

- every staged image is exactly once in the exported results (JSONL rows)
  and in the exported image archives;
- no task was carried out twice to completion: each task is logged "task
  done" by exactly one worker, its claims are its first claim plus one
  `lease-expired` takeover per extra attempt, and every takeover took a
  task from a process that was killed (a live worker never lost a lease,
  so no work was done twice);
- no webhook was delivered twice with different event ids (the tar shards'
  files-status webhooks and the job's webhook; redeliveries of one event
  keep its event id);
- the job ends completed (not an error), as all 2,000 images succeeded.

Skipped without VBATCH_TEST_PG (scripts/test.sh starts a throwaway cluster)
or psql.  The workers are slowed with VBATCH_JOBS_ITEM_DELAY_MS so that the
kills land inside each stage."""
import collections
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest

from conftest import BIN, E2E_S3, MULT, Server, make_tar, picks_its_database, png_bytes
from jobs_helpers import (CROP_WF, bp, download_export, job_body, list_files, put_workflow, results_rows,
                          verify_signature)

PG = os.environ.get('VBATCH_TEST_PG', '')
pytestmark = [pytest.mark.skipif(not PG or PG == 'off' or not shutil.which('psql'),
                                 reason='VBATCH_TEST_PG not set or no psql'),
              picks_its_database,
              # the scenario PUTs to vbatch's own signed URLs through two API
              # processes (one killed mid-PUT): an S3 variant is not written yet
              pytest.mark.skipif(bool(E2E_S3), reason="PUTs to vbatch's own upload URLs (S3 variant not written)")]

N_IMAGES = 2000
SHARD = 250                  # 8 tar shards (at most 500 images each)
LEASE_MS = 4000              # a killed worker's task is taken over after this
ITEM_DELAY_MS = 4            # per image, in processing and in the export


def psql(uri, sql):
    p = subprocess.run(['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', uri, '-c', sql],
                       check=True, capture_output=True, text=True, timeout=30 * MULT)
    return [line.split('|') for line in p.stdout.splitlines() if line]


@pytest.fixture
def pg_schema():
    """A fresh schema on the test cluster: the URI whose search_path is it."""
    name = 't_mp_' + uuid.uuid4().hex[:12]
    psql(PG, 'CREATE SCHEMA ' + name)
    sep = '&' if '?' in PG else '?'
    yield PG + sep + 'options=' + urllib.parse.quote('-csearch_path=' + name)
    psql(PG, 'DROP SCHEMA IF EXISTS %s CASCADE' % name)


def log(msg):
    print(f'{time.strftime("%H:%M:%S")} {msg}', flush=True)


def wait_until(pred, timeout=60, what='condition', every=0.1):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f'timed out waiting for {what}')


class Worker:
    """One `vbatch worker` process on the shared data folder and database."""

    def __init__(self, tmpdir, n, data, env):
        self.name = f'w{n}'
        self.log_path = os.path.join(tmpdir, f'worker-{n}.log')
        self.cmd = [BIN, 'worker', '--data', data, '--workers', '1', '--task-lease-ms', str(LEASE_MS)]
        self.env = env
        self.proc = None

    def start(self):
        env = dict(os.environ)
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=1')
        env.update(self.env)
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self._log, env=env)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30 * MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f'worker {self.name} did not stop on SIGTERM')
        self._log.close()
        return self.proc.returncode

    def log(self):
        with open(self.log_path, 'rb') as f:
            return f.read().decode(errors='replace')


class Hooks:
    """Webhook receiver on 127.0.0.1.  A staging notification's first
    attempt gets a 503 (so the senders of both API processes retry);
    the job notification's first attempt is held open until release() (the
    test kills the API processes meanwhile); everything else gets a 200."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(n)
                body = json.loads(raw)
                with rec.lock:
                    rec.calls.append({'t': time.time(), 'body': body, 'raw': raw, 'headers': dict(self.headers)})
                first = body.get('delivery_attempt') == 1
                code = 200
                if first and body['type'] == 'roboflow-data-staging-notification-v1':
                    code = 503
                elif first:
                    rec.released.wait(120)
                try:
                    self.send_response(code)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                except OSError:
                    pass  # the sender was killed meanwhile

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/hook'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def bodies(self):
        with self.lock:
            return [c['body'] for c in self.calls]

    def wait(self, pred, timeout=60, what='webhooks'):
        return wait_until(lambda: pred(self.bodies()), timeout=timeout, what=what, every=0.05)

    def close(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def owner_pid(owner):
    """The pid in a lease owner '<host>-<pid>-<random>-w<i>'."""
    m = re.search(r'-(\d+)-[^-]+-w\d+$', owner or '')
    assert m, owner
    return int(m.group(1))


def task_rows(db, job):
    rows = psql(db, "SELECT t.stage_id, t.task_no, t.state, t.attempts, COALESCE(t.lease_owner, '')"
                    " FROM tasks t JOIN jobs j ON j.pk=t.job_pk WHERE j.job_id='%s'"
                    " ORDER BY t.stage_id DESC, t.task_no" % job)
    return [(r[0], int(r[1]), r[2], int(r[3]), r[4]) for r in rows]


def half_put_then_kill(s, url, body):
    """Send the headers and half the body of a PUT to s, then kill -9 s."""
    import http.client
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection('127.0.0.1', s.port, timeout=30 * MULT)
    c.putrequest('PUT', u.path + '?' + u.query)
    c.putheader('Content-Length', str(len(body)))
    c.endheaders()
    c.send(body[:len(body) // 2])
    time.sleep(0.3)  # the server is streaming it to a temp file
    s.kill9()
    c.close()


def hooked_shard(names, first, ingest, url):
    members = [(nm, png_bytes(i)) for i, nm in enumerate(names, first)]
    members.append(('notification_config.json', json.dumps({'ingestId': ingest, 'notificationsURL': url}).encode()))
    return make_tar(members)


def test_two_api_and_three_worker_processes_with_kills(tmpdir_path, pg_schema):
    data = os.path.join(tmpdir_path, 'shared')  # blobs and secret of every process
    common = {'VBATCH_DB': pg_schema}
    api_args = ['--allow-private-urls', '--workers', '0']
    wenv = dict(common, VBATCH_JOBS_ITEM_DELAY_MS=str(ITEM_DELAY_MS))
    hooks = Hooks()
    apis, workers, killed_pids = [], [], set()

    def api(sub, key=None, wait=True):
        d = os.path.join(tmpdir_path, sub)
        os.makedirs(d, exist_ok=True)
        s = Server(d, args=api_args, env=common, key=key)
        s.data = data
        apis.append(s)
        return s.start(wait=wait)

    def worker():
        w = Worker(tmpdir_path, len(workers) + 1, data, wenv).start()
        workers.append(w)
        return w

    try:
        # all five start at once on the empty schema and data folder, as a
        # deployment starts them: one of the API processes makes the default
        # workspace (and prints its key), all share one secret
        a, b = api('a', wait=False), api('b', wait=False)
        for _ in range(3):
            worker()

        def printed_key():
            keys = []
            for s in (a, b):
                with open(s.out_path) as f:
                    keys += [ln.split()[1] for ln in f if ln.startswith('api_key: ')]
            return keys
        a.key = b.key = wait_until(printed_key, timeout=60, what='the first key')[0]
        a.wait_healthy()
        b.wait_healthy()  # both past their start-up: a second key would be printed by now
        assert len(printed_key()) == 1, printed_key()
        assert all(w.proc.poll() is None for w in workers), [w.log()[-2000:] for w in workers]

        # -- upload through A (signed-URL PUTs of tar shards), count on B -----
        put_workflow(a, 'crop', CROP_WF)
        names = [f'img-{i:04d}.png' for i in range(N_IMAGES)]
        shards = {}
        for k in range(0, N_IMAGES, SHARD):
            r = a.ds('POST', '/mp/bulk-upload/image-files', query={'displayName': 'mp'})
            assert r.status == 200, r
            d = r.json()['signedURLDetails']
            assert d['uploadURL'].startswith(a.base + '/'), d
            tar = hooked_shard(names[k:k + SHARD], k, f'ing-{k // SHARD}', hooks.url)
            if k == 3 * SHARD:
                # A dies in the middle of this PUT; the client sends it again
                # to B (as a load balancer in front of both would): the
                # signed URL is valid there, the half upload is not taken
                half_put_then_kill(a, d['uploadURL'], tar)
                log('upload: killed API A in the middle of a shard PUT')
                put = b.raw('PUT', d['uploadURL'].replace(a.base, b.base, 1), body=tar,
                            headers=d.get('extensionHeaders') or {})
                assert put.status == 200, put
                a.start(same_port=True)
            else:
                put = a.raw('PUT', d['uploadURL'], body=tar, headers=d.get('extensionHeaders') or {})
                assert put.status == 200, put
            shards[d['shardId']] = f'ing-{k // SHARD}'
        assert b.wait_count('mp', N_IMAGES, timeout=180) == N_IMAGES
        assert b.ds('GET', '/mp/count').json()['count'] == N_IMAGES
        # a page token made by B is taken by A; a download URL signed by A
        # is served by B from the shared folder
        p1 = b.ds('GET', '/mp/list', query={'pageSize': 1000}).json()
        p2 = a.ds('GET', '/mp/list', query={'pageSize': 1000, 'nextPageToken': p1['nextPageToken']}).json()
        listed = [f['fileName'] for f in p1['filesMetadata'] + p2['filesMetadata']]
        assert sorted(listed) == names
        f0 = p2['filesMetadata'][0]
        got = b.raw('GET', f0['downloadURL'].replace(a.base, b.base, 1))
        assert got.status == 200 and got.body == png_bytes(names.index(f0['fileName'])), got

        # -- job started on A, followed on B ----------------------------------
        r = bp(a, 'POST', '/mp1', job_body('mp', 'crop', persist=True, notificationsURL=hooks.url))
        assert r.status == 200, r
        assert bp(b, 'GET', '/mp1').json()['job']['isTerminal'] is False
        # tasks never cross a shard: at least 8 for 8 shards of 250, enough
        # for the 3 workers (how much finer the planner cuts for the live
        # pool is the planner's business: not fixed here)
        n_proc = len([t for t in task_rows(pg_schema, 'mp1') if t[0] == 'processing'])
        assert n_proc >= 8, n_proc

        # -- during processing: kill -9 a worker with a running task and B ------
        def running_proc():
            rows = task_rows(pg_schema, 'mp1')
            if any(t[0] == 'processing' and t[2] == 'done' for t in rows):
                pids = {owner_pid(t[4]) for t in rows if t[0] == 'processing' and t[2] == 'running'}
                return [w for w in workers if w.pid in pids]
            return None
        victim = wait_until(running_proc, timeout=180, what='a done task and a running one')[0]
        victim.kill9()
        killed_pids.add(victim.pid)
        b.kill9()
        log(f'processing: killed worker {victim.name} (pid {victim.pid}) and API B: {task_rows(pg_schema, "mp1")}')
        st = bp(a, 'GET', '/mp1').json()['job']
        assert st['isTerminal'] is False and st['currentStage'] == 'processing', st
        worker()
        b.start(same_port=True)  # same port: URLs B handed out stay valid

        # -- during the export: kill -9 the worker exporting, and A -------------
        def exporting():
            rows = [t for t in task_rows(pg_schema, 'mp1') if t[0] == 'export']
            return rows and rows[0][2] == 'running' and rows[0][4] and rows[0]
        t_exp = wait_until(exporting, timeout=300, what='the export task running', every=0.05)
        log(f'export running: {t_exp}')
        time.sleep(1.0)  # into the archive (4 ms per persisted image: about 8 s)
        assert [t for t in task_rows(pg_schema, 'mp1') if t[0] == 'export'][0][2] == 'running', \
            'the export ended before the kill: slow it down (ITEM_DELAY_MS)'
        exp_w = [w for w in workers if w.pid == owner_pid(t_exp[4])][0]
        exp_w.kill9()
        killed_pids.add(exp_w.pid)
        a.kill9()
        log(f'export: killed worker {exp_w.name} (pid {exp_w.pid}) and API A')
        a.start(same_port=True)

        # -- B follows to the end ------------------------------------------------
        job = wait_until(lambda: (lambda j: j['isTerminal'] and j)(bp(b, 'GET', '/mp1').json()['job']),
                         timeout=300, what='the job to end', every=0.25)
        log('job ended')
        assert job['error'] is False, job
        assert job['lastNotification']['imagesFailed'] == 0, job

        # -- the job's webhook in flight: kill -9 both API processes ------------
        first = hooks.wait(lambda bs: [x for x in bs if x['type'] == 'roboflow-batch-job-notification-v1'],
                           timeout=60, what="the job's webhook")[0]
        a.kill9()
        b.kill9()
        hooks.released.set()
        b.start(same_port=True)
        log('job webhook in flight: killed A and B, B started again')
        # taken over when the dead sender's lease ends (15 s)
        again = hooks.wait(lambda bs: [x for x in bs if x['type'] == 'roboflow-batch-job-notification-v1'
                                       and x['delivery_attempt'] == 2], timeout=60, what='the redelivery')[0]
        assert again['event_id'] == first['event_id'] and again['job_id'] == 'mp1', (first, again)
        assert bp(b, 'GET', '/mp1').json()['job']['isTerminal'] is True

        # every image exactly once in the export (rows and archive members)
        exp = download_export(b, 'mp1')
        rows = results_rows(exp, 'jsonl')
        counts = collections.Counter(r['image'] for r in rows)
        assert sorted(counts) == names and max(counts.values()) == 1, \
            (len(rows), [n for n, c in counts.items() if c > 1][:10])
        assert sorted(exp['members']) == sorted(f'{n}/crop.jpg' for n in names)
        proc_files = [f['fileName'] for f in list_files(b, 'mp1-processing')]
        assert len(proc_files) == len(set(proc_files)) == n_proc, proc_files

        # -- no task carried out twice to completion ----------------------------
        rows = task_rows(pg_schema, 'mp1')
        assert all(t[2] == 'done' for t in rows), rows
        logs = bp(b, 'GET', '/mp1/logs', query={'pageSize': 1000}).json()['logs']
        takeovers = collections.Counter()
        for entry in logs:
            if entry['logType'] == 'lease-expired':
                p = entry['payload']
                takeovers[entry.get('taskId')] += 1
                assert owner_pid(p['previousOwner']) in killed_pids, \
                    f'a live worker lost its lease (its work was done twice): {entry}'
        assert sum(takeovers.values()) >= 2, logs  # the two killed workers' tasks
        # each claim after a task's first is a takeover of a killed worker's lease
        failed = [ln for w in workers for ln in w.log().splitlines() if 'task failed' in ln or 'database' in ln]
        assert {f'{t[0]}-{t[1]:05d}': t[3] for t in rows} == \
            {f'{t[0]}-{t[1]:05d}': 1 + takeovers[f'{t[0]}-{t[1]:05d}'] for t in rows}, \
            (rows, takeovers, [e for e in logs if e['logType'] != 'lease-expired'], failed)
        assert [e['logType'] for e in logs].count('stage-completed') == 1, logs  # processing; the export's end is job-completed
        assert [e['logType'] for e in logs].count('job-completed') == 1, logs
        done = collections.Counter()
        exports = 0
        for w in workers:
            text = w.log()
            done.update(int(m) for m in re.findall(r'task done job=mp1 task=(\d+) ', text))
            exports += len(re.findall(r'export done job=mp1 ', text))
        procs = sorted(t[1] for t in rows if t[0] == 'processing')
        assert sorted(done) == procs and max(done.values()) == 1, done
        assert exports == 1, exports

        # -- webhooks: one event id per event ------------------------------------
        hooks.wait(lambda bs: len({x['shard_id'] for x in bs if x.get('shard_id')
                                   and x['delivery_attempt'] >= 2}) == len(shards),
                   timeout=60, what="every shard's files-status webhook delivered")
        time.sleep(1.0 * MULT)  # a late redelivery would show now
        events = collections.defaultdict(set)
        for d in hooks.bodies():
            if d['type'] == 'roboflow-data-staging-notification-v1':
                key = ('staging', d.get('ingest_id'), d.get('shard_id'), d['notification']['type'])
            else:
                key = ('job', d.get('job_id'), d.get('job_state'))
            events[key].add(d['event_id'])
        twice = {k: v for k, v in events.items() if len(v) > 1}
        assert not twice, f'webhooks delivered twice with different event ids: {twice}'
        assert [k for k in events if k[0] == 'job'] == [('job', 'mp1', 'success')], list(events)
        # every API process signed with the one installation secret
        with hooks.lock:
            calls = list(hooks.calls)
        signed = [c for c in calls if c['body']['type'] == 'roboflow-batch-job-notification-v1']
        assert len(signed) >= 2 and all(verify_signature(data, c['headers'], c['raw']) for c in signed), signed
        assert all(verify_signature(data, c['headers'], c['raw']) for c in calls
                   if 'x-vbatch-signature' in {h.lower() for h in c['headers']}), calls
        assert {k[2] for k in events if k[0] == 'staging'} == set(shards), list(events)
        assert {k[1] for k in events if k[0] == 'staging'} == set(shards.values()), list(events)
        # one outbox row per event, each delivered
        rows = psql(pg_schema, "SELECT state, count(*) FROM outbox GROUP BY state")
        assert rows == [['delivered', str(len(shards) + 1)]], rows
    finally:
        rcs = {}
        for s in apis:
            if s.proc and s.proc.poll() is None:
                rcs[f'api {s.tmpdir}'] = (s.stop(), s.tail_log())
        for w in workers:
            if w.proc and w.proc.poll() is None:
                rcs[w.name] = (w.stop(), w.log()[-3000:])
        hooks.close()
    bad = {k: v for k, v in rcs.items() if v[0] != 0}
    assert not bad, f'processes exited badly on SIGTERM: {bad}'
