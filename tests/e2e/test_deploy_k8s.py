"""deploy/k8s/: the Kubernetes manifests hang together, and the command
lines they give their containers really run a multi-process vbatch.

No cluster runs here.  What can be checked is checked: every resource the
kustomization names exists; the Deployments' selectors match their pods,
the Service selects the API pods, the Secret and the volume claim they use
exist, the API's readiness probe asks /healthz on the port it listens on;
and, on the test PostgreSQL (VBATCH_TEST_PG), the API Deployment's command
line is started twice and the worker Deployment's once, with the
manifests' environment (the listen address and data folder moved to a
free port and a temporary folder): both API processes answer the probe,
an image uploaded through one is counted through the other, and a job
started through one is run by the worker process."""
import os
import shutil
import subprocess
import urllib.parse
import uuid

import pytest
import yaml

from conftest import BIN, MULT, REPO, Server, free_port, picks_its_database, png_bytes
from jobs_helpers import CROP_WF, bp, job_body, put_workflow, results_rows, download_export, wait_job

pytestmark = picks_its_database  # its own schema / both backends: not again in the [pg] pass

K8S = os.path.join(REPO, 'deploy', 'k8s')
PG = os.environ.get('VBATCH_TEST_PG', '')


def load():
    with open(os.path.join(K8S, 'kustomization.yaml')) as f:
        kust = yaml.safe_load(f)
    docs = []
    for name in kust['resources']:
        with open(os.path.join(K8S, name)) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return kust, docs


def by_kind(docs, kind):
    return {d['metadata']['name']: d for d in docs if d['kind'] == kind}


def test_manifests_hang_together():
    kust, docs = load()
    deps, svcs = by_kind(docs, 'Deployment'), by_kind(docs, 'Service')
    secrets, pvcs = by_kind(docs, 'Secret'), by_kind(docs, 'PersistentVolumeClaim')
    assert set(deps) == {'vbatch-api', 'vbatch-worker'}
    assert 'VBATCH_DB' in secrets['vbatch-db']['stringData']
    assert pvcs['vbatch-blobs']['spec']['accessModes'] == ['ReadWriteMany']
    images = {i['name'] for i in kust['images']}
    for name, d in deps.items():
        spec = d['spec']
        pod = spec['template']
        for k, v in spec['selector']['matchLabels'].items():
            assert pod['metadata']['labels'][k] == v, name
        c = pod['spec']['containers'][0]
        assert c['image'] in images, name
        assert c['command'] == ['/usr/bin/vbatch'], name
        assert [s['secretRef']['name'] for s in c['envFrom']] == ['vbatch-db'], name
        vols = {v['name']: v for v in pod['spec']['volumes']}
        for m in c['volumeMounts']:
            assert vols[m['name']]['persistentVolumeClaim']['claimName'] in pvcs, name
    api = deps['vbatch-api']['spec']['template']['spec']['containers'][0]
    env = {e['name']: e['value'] for e in api['env']}
    port = int(env['VBATCH_LISTEN'].rsplit(':', 1)[1])
    ports = {p['name']: p['containerPort'] for p in api['ports']}
    assert ports[api['readinessProbe']['httpGet']['port']] == port
    assert api['readinessProbe']['httpGet']['path'] == '/healthz'
    assert api['args'][:1] == ['serve'] and '--workers' in api['args']
    svc = svcs['vbatch']['spec']
    labels = deps['vbatch-api']['spec']['template']['metadata']['labels']
    assert all(labels.get(k) == v for k, v in svc['selector'].items())
    assert svc['ports'][0]['targetPort'] in ports
    worker = deps['vbatch-worker']['spec']['template']['spec']['containers'][0]
    assert worker['args'][0] == 'worker'
    # the worker's data folder is the API's: one shared blob volume
    assert worker['args'][worker['args'].index('--data') + 1] == env['VBATCH_DATA']


def psql(uri, sql):
    subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', uri, '-c', sql], check=True,
                   capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not PG or not shutil.which('psql'), reason='VBATCH_TEST_PG not set or no psql')
def test_manifest_command_lines_run_on_postgres(tmp_path):
    _, docs = load()
    deps = by_kind(docs, 'Deployment')
    api = deps['vbatch-api']['spec']['template']['spec']['containers'][0]
    wk = deps['vbatch-worker']['spec']['template']['spec']['containers'][0]
    schema = 't_k8s_' + uuid.uuid4().hex[:12]
    psql(PG, 'CREATE SCHEMA ' + schema)
    db = PG + ('&' if '?' in PG else '?') + 'options=' + urllib.parse.quote('-csearch_path=' + schema)
    data = str(tmp_path / 'blobs')  # the shared volume
    procs, servers = [], []
    try:
        for i in range(2):
            s = Server(str(tmp_path / f'api{i}'))
            os.makedirs(s.tmpdir, exist_ok=True)
            s.key = servers[0].key if servers else None  # printed by the first start only
            for attempt in range(5):
                port = free_port()
                env = dict(os.environ)
                env.pop('VBATCH_DB', None)
                env.update({e['name']: e['value'] for e in api['env']})
                env.update({'VBATCH_LISTEN': f'127.0.0.1:{port}', 'VBATCH_DATA': data,
                            'VBATCH_PUBLIC_URL': f'http://127.0.0.1:{port}', 'VBATCH_DB': db})
                s.port, s.env = port, env
                s.out_path = os.path.join(s.tmpdir, f'stdout.{port}')
                s._out, s._log = open(s.out_path, 'wb'), open(s.log_path, 'ab')
                s._log_from = s._log.tell()
                s.proc = subprocess.Popen([BIN] + api['args'], stdout=s._out, stderr=s._log, env=env)
                procs.append(s.proc)
                try:
                    s.wait_healthy()
                    break
                except RuntimeError as e:
                    # free_port's port taken by another process of the
                    # parallel passes before vbatch bound it: another port
                    # (as Server.start), keeping the key a first start printed
                    if attempt == 4 or 'Address already in use' not in str(e):
                        raise
                    s.proc.wait()  # it exited: not one of the processes whose exit is checked
                    procs.remove(s.proc)
                    s._out.close()
                    s._log.close()
                    s._read_key()
            servers.append(s)
        a, b = servers
        wenv = dict(os.environ, VBATCH_DB=db)
        args = list(wk['args'])
        args[args.index('--data') + 1] = data
        wlog = open(tmp_path / 'worker.log', 'wb')
        w = subprocess.Popen([BIN] + args, stdout=wlog, stderr=subprocess.STDOUT, env=wenv)
        procs.append(w)
        for n in range(3):
            assert a.upload_image('k8s', f'im{n}.png', png_bytes(n, 32, 32)).status == 200
        assert b.wait_count('k8s', 3) == 3
        # the API pods run no jobs (--workers 0): the worker pod runs this one
        put_workflow(a, 'crop', CROP_WF)
        r = bp(a, 'POST', '/k8s-job', body=job_body('k8s', 'crop'))
        assert r.status == 200, r
        job = wait_job(b, 'k8s-job')
        assert job['error'] is False and job['lastNotification']['state'] == 'succeeded', job
        assert job['lastNotification']['imagesProcessed'] == 3, job
        assert len(results_rows(download_export(b, 'k8s-job'))) == 3
        assert w.poll() is None, open(tmp_path / 'worker.log', 'rb').read()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        rcs = []
        for p in procs:
            try:
                rcs.append(p.wait(timeout=20 * MULT))
            except subprocess.TimeoutExpired:
                p.kill()
                rcs.append('hung')
        for s in servers:
            s._out.close(), s._log.close()
        psql(PG, f'DROP SCHEMA IF EXISTS {schema} CASCADE')
    assert rcs == [0, 0, 0], rcs
