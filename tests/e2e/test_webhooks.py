"""Webhook delivery (issue 9 item 6): a receiver that hangs does not hold up
another workspace's webhooks, retries follow the documented backoff measured
from each failure, and one ingest's webhooks arrive in order while its
receiver is slow and failing.  Webhooks are triggered by tar shards whose
notification_config.json names an ingest and a URL (one files-status
notification per shard)."""
import http.server
import json
import socket
import threading
import time

import pytest

from conftest import MULT, make_tar, png_bytes

# store_outbox_opts defaults (docs/STORAGE.md, Webhook outbox)
PER_DEST = 4


class HangingReceiver:
    """Accepts connections, reads what comes, never answers.  Counts the
    connections open at once."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.url = f'http://127.0.0.1:{self.sock.getsockname()[1]}/hook'
        self.lock = threading.Lock()
        self.open = 0
        self.max_open = 0
        self.accepted = 0
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.stopped:
                    c.close()
                    return
                self.conns.append(c)
                self.open += 1
                self.accepted += 1
                self.max_open = max(self.max_open, self.open)
            threading.Thread(target=self._drain, args=(c,), daemon=True).start()

    def _drain(self, c):
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        with self.lock:
            self.open -= 1

    def close(self):
        with self.lock:
            self.stopped = True
            conns = list(self.conns)
        self.sock.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


class ScriptedReceiver:
    """Records every POST as a dict {t, done, body}: arrival time, time the
    answer was sent, parsed JSON body.  policy(body, calls_so_far) returns
    (delay_s, status)."""

    def __init__(self, policy=lambda body, calls: (0, 200)):
        self.calls = []
        self.lock = threading.Lock()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                t = time.time()
                n = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(n))
                entry = {'t': t, 'done': None, 'body': body}
                with rec.lock:
                    prior = list(rec.calls)
                    rec.calls.append(entry)
                delay, status = policy(body, prior)
                if delay:
                    time.sleep(delay)
                entry['done'] = time.time()
                self.send_response(status)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/hook'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def of(self, ingest):
        with self.lock:
            return [c for c in self.calls if c['body'].get('ingest_id') == ingest]

    def wait(self, pred, timeout=30, what='webhooks'):
        deadline = time.time() + timeout * MULT
        while time.time() < deadline:
            with self.lock:
                got = pred(list(self.calls))
            if got:
                return got
            time.sleep(0.02)
        raise AssertionError(f'timed out waiting for {what}: {self.calls}')


def new_workspace(s, name):
    out = s.cli('workspace', 'create', name)
    assert out.returncode == 0, out.stderr
    return [ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith('api_key: ')][0]


def put_hooked_shard(s, batch, ingest, url, seed, n=2, workspace=None, key=None):
    """One tar shard of n PNGs plus a notification_config.json."""
    kw = {'workspace': workspace or s.workspace}
    if key:
        kw['key'] = key
    members = [(f'i{seed}-{i}.png', png_bytes(seed * 100 + i)) for i in range(n)]
    members.append(('notification_config.json', json.dumps({'ingestId': ingest, 'notificationsURL': url}).encode()))
    r = s.ds('POST', f'/{batch}/bulk-upload/image-files', query={'displayName': batch}, **kw)
    assert r.status == 200, r
    d = r.json()['signedURLDetails']
    put = s.raw('PUT', d['uploadURL'], body=make_tar(members), headers=d.get('extensionHeaders') or {})
    assert put.status == 200, put
    return d['shardId']


def wait_count(s, batch, want, workspace, key, timeout=60):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        r = s.ds('GET', f'/{batch}/count', workspace=workspace, key=key)
        if r.status == 200 and r.json()['count'] >= want:
            return time.time()
        time.sleep(0.02)
    raise AssertionError(f'{batch} did not reach {want} images')


@pytest.mark.serial  # asserts a latency under 2 s
def test_hanging_receiver_does_not_delay_another_workspace(server_factory):
    hang, ok = HangingReceiver(), ScriptedReceiver()
    try:
        s = server_factory(['--allow-private-urls']).start()
        other_key = new_workspace(s, 'healthy-ws')
        # 20 ingests of the default workspace notify the hanging receiver:
        # more than the sender's slots, so only the per-destination limit
        # keeps slots free for others.
        for i in range(20):
            put_hooked_shard(s, 'hang-batch', f'hang-{i}', hang.url, seed=i)
        wait_count(s, 'hang-batch', 40, s.workspace, s.key)
        deadline = time.time() + 30 * MULT
        while hang.accepted < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert hang.accepted >= 1
        time.sleep(0.5)  # let the sender take what it will take of the 20
        # another workspace's ingest ends; its webhook must not wait for
        # the hanging deliveries (10 s timeout each)
        put_hooked_shard(s, 'ok-batch', 'ok-1', ok.url, seed=99, workspace='healthy-ws', key=other_key)
        t_end = wait_count(s, 'ok-batch', 2, 'healthy-ws', other_key)
        call = ok.wait(lambda cs: [c for c in cs if c['body'].get('ingest_id') == 'ok-1'], timeout=60,
                       what='the healthy webhook')[0]
        latency = call['t'] - t_end
        print(f'healthy webhook {latency:.3f} s after its ingest ended; hanging receiver held {hang.max_open}')
        assert latency < 2.0, f'healthy receiver got its webhook {latency:.1f} s after the ingest ended'
        assert call['body']['delivery_attempt'] == 1
        assert call['body']['batch_id'] == 'ok-batch'
        # the hanging destination never held more than its share of slots
        assert 1 <= hang.max_open <= PER_DEST, hang.max_open
    finally:
        hang.close()
        ok.close()


@pytest.mark.serial  # retry gaps measured to 0.25 s
def test_retry_backoff_measured_from_each_failure(server_factory):
    # a receiver that answers 500 after 1 s, next to a hanging one
    hang = HangingReceiver()
    bad = ScriptedReceiver(lambda body, calls: (1.0, 500))
    try:
        s = server_factory(['--allow-private-urls']).start()
        other_key = new_workspace(s, 'retry-ws')
        for i in range(3):
            put_hooked_shard(s, 'hang-b', f'h-{i}', hang.url, seed=i)
        put_hooked_shard(s, 'retry-b', 'bo', bad.url, seed=50, workspace='retry-ws', key=other_key)
        calls = bad.wait(lambda cs: len(cs) >= 4 and cs[2]['done'] and cs, timeout=60, what='4 attempts')
        calls = calls[:4]
        assert [c['body']['delivery_attempt'] for c in calls] == [1, 2, 3, 4]
        assert len({c['body']['event_id'] for c in calls}) == 1
        # next attempt = time of the failure + 1 s, 2 s, 4 s (docs: 1 s doubling)
        gaps = [calls[k + 1]['t'] - calls[k]['done'] for k in range(3)]
        print('gaps after each failure: ' + ', '.join(f'{g:.3f}' for g in gaps))
        for want, got in zip([1, 2, 4], gaps):
            assert want - 0.25 <= got <= want + 1.0, f'retry gaps after each failure {gaps}, want 1, 2, 4 s'
    finally:
        hang.close()
        bad.close()


def test_order_per_ingest_kept_with_slow_failing_receiver(server_factory):
    # 'ord' webhooks: the first two attempts fail slowly; 'free' answers at once
    def policy(body, calls):
        if body['ingest_id'] == 'ord':
            n = len([c for c in calls if c['body']['ingest_id'] == 'ord'])
            return (0.5, 500) if n < 2 else (0.5, 200)
        return (0, 200)
    rec = ScriptedReceiver(policy)
    try:
        s = server_factory(['--allow-private-urls']).start()
        first = put_hooked_shard(s, 'ord-b', 'ord', rec.url, seed=1)
        rec.wait(lambda cs: [c for c in cs if c['body']['ingest_id'] == 'ord'], what='the first attempt')
        # later events of the same ingest, queued while the first is failing
        second = put_hooked_shard(s, 'ord-b', 'ord', rec.url, seed=2)
        third = put_hooked_shard(s, 'ord-b', 'ord', rec.url, seed=3)
        # another ingest to the same receiver is not held back by 'ord'
        put_hooked_shard(s, 'ord-b', 'free', rec.url, seed=4)
        free = rec.wait(lambda cs: [c for c in cs if c['body']['ingest_id'] == 'free'], what='the free webhook')[0]
        ords = rec.wait(lambda cs: len([c for c in cs if c['body']['ingest_id'] == 'ord']) >= 5 and
                        [c for c in cs if c['body']['ingest_id'] == 'ord'], timeout=60, what='the ord webhooks')
        shards = [c['body']['shard_id'] for c in ords]
        assert shards[:5] == [first, first, first, second, third], shards
        assert [c['body']['delivery_attempt'] for c in ords[:5]] == [1, 2, 3, 1, 1]
        # each delivery of a later event starts after the earlier one was answered
        assert ords[3]['t'] >= ords[2]['done'] - 0.05 and ords[4]['t'] >= ords[3]['done'] - 0.05
        assert free['t'] < ords[2]['t'], 'another ingest waited for the failing one'
        time.sleep(0.5)
        assert len(rec.of('ord')) == 5, 'an event was delivered twice'
    finally:
        rec.close()


@pytest.mark.serial  # asserts a latency under 2 s
def test_job_webhooks_from_a_worker_process_with_a_hanging_neighbour(server_factory):
    """Jobs run by a separate `vbatch worker` process: their webhooks are
    queued there and sent by the serve process's sender, which notices
    them within a second; a hanging receiver of workspace A's jobs does not
    hold up workspace B's."""
    import copy
    from jobs_helpers import CROP_WF, bp, job_body, put_workflow, stage_pngs, wait_job
    hang, ok = HangingReceiver(), ScriptedReceiver()
    s = server_factory(['--allow-private-urls', '--workers', '0']).start()
    w = s.worker('--workers', '2')
    try:
        b = copy.copy(s)
        b.workspace, b.key = 'team-b', new_workspace(s, 'team-b')
        for srv in (s, b):
            put_workflow(srv, 'crop', CROP_WF)
            stage_pngs(srv, 'imgs', 1)
        for i in range(6):
            assert bp(s, 'POST', f'/hang{i}', job_body('imgs', 'crop', notificationsURL=hang.url)).status == 200
        for i in range(6):
            wait_job(s, f'hang{i}', timeout=120)
        deadline = time.time() + 30 * MULT
        while hang.accepted < 4 and time.time() < deadline:
            time.sleep(0.02)
        assert bp(b, 'POST', '/okjob', job_body('imgs', 'crop', ws='team-b', notificationsURL=ok.url)).status == 200
        job = wait_job(b, 'okjob', timeout=120)
        t_end = time.time()
        assert job['error'] is False, job
        call = ok.wait(lambda cs: cs, timeout=60, what='the healthy job webhook')[0]
        latency = call['t'] - t_end
        print(f'job webhook {latency:.3f} s after the job was seen ended; hanging receiver held {hang.max_open}')
        assert latency < 2.0, f'healthy job webhook came {latency:.1f} s after the job ended'
        assert call['body']['job_id'] == 'okjob' and call['body']['job_state'] == 'success'
        assert 1 <= hang.max_open <= PER_DEST, hang.max_open
    finally:
        w.terminate()
        assert w.wait(timeout=30 * MULT) == 0
        hang.close()
        ok.close()
