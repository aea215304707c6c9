#!/usr/bin/python3
"""Job images/s with the blobs in the local folder vs on the object store
(issue 12), the same job in the same run.

    /usr/bin/python3 bench/jobs_s3_bench.py [--images 2000] [--workers 2]
                                            [--build build] [--rounds 1]

Needs VBATCH_TEST_S3 and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
(`eval "$(scripts/s3-up.sh DIR)"` starts radosgw).  For each backend (local,
then s3 under a fresh prefix; repeated --rounds times, alternating) a fresh
server stages the same images (tar shards of 500 JPEGs through the upload
URLs: vbatch's on the local folder, the store's presigned PUTs on S3) and
runs the one-model detection job of bench/jobs_bench.py (synth-det);
images/s from the processing stage's own timestamps.  The images are the
64 synthetic 640x480 JPEGs of jobs_bench.py repeated under unique names.
On S3 every image is a range GET of its shard.  One line per figure:
    jobs_s3_bench job_images_per_s <local|s3> <value> img/s ...
    jobs_s3_bench ratio_s3_over_local <value>
"""
import argparse
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import jobs_bench  # noqa: E402  (call, make_images, iso_s)


def put(url, body, headers=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    c.request('PUT', u.path + '?' + u.query, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def one(binp, tmp, models, blobs_env, shards, n, workers, label):
    import socket
    with socket.socket() as so:
        so.bind(('127.0.0.1', 0))
        port = so.getsockname()[1]
    data = os.path.join(tmp, f'data-{label}-{uuid.uuid4().hex[:6]}')
    out = open(os.path.join(tmp, f'stdout-{label}'), 'w+')
    err = open(os.path.join(tmp, f'server-{label}.log'), 'w')
    env = dict(os.environ)
    env.pop('VBATCH_BLOBS', None)
    env.update(blobs_env)
    proc = subprocess.Popen([binp, 'serve', '--listen', f'127.0.0.1:{port}', '--data', data, '--quiet',
                             '--workers', str(workers), '--models-dir', models, '--upload-poll-ms', '200'],
                            stdout=out, stderr=err, env=env)
    try:
        key, listening = None, False
        for _ in range(600):
            time.sleep(0.1)
            out.seek(0)
            for line in out:
                if line.startswith('api_key: '):
                    key = line.split()[1]
                if line.startswith('listening: '):
                    listening = True
            if key and listening:
                break
        assert key, 'server did not start'
        call = jobs_bench.call
        ws = 'default'
        t0 = time.time()
        for tar in shards:
            st, body = call(port, 'POST', f'/data-staging/v1/external/{ws}/batches/bench/bulk-upload/image-files', key)
            assert st == 200, body
            sd = json.loads(body)['signedURLDetails']
            u = sd['uploadURL']
            if u.startswith('/'):
                u = f'http://127.0.0.1:{port}{u}'
            st, body = put(u, tar, sd.get('extensionHeaders'))
            assert st == 200, body
        while True:
            st, body = call(port, 'GET', f'/data-staging/v1/external/{ws}/batches/bench/count', key)
            if json.loads(body)['count'] >= n:
                break
            time.sleep(0.1)
        stage_s = time.time() - t0
        det = {'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
               'steps': [{'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
                          'images': '$inputs.image', 'model_id': 'synth-det'}],
               'outputs': [{'type': 'JsonField', 'name': 'predictions', 'selector': '$steps.det.predictions'}]}
        st, body = call(port, 'PUT', f'/workflows/v1/external/{ws}/workflows/det', key, body=json.dumps(det))
        assert st in (200, 201), body
        b = {'type': 'simple-image-processing-v1',
             'jobInput': {'type': 'staging-batch-input-v1', 'batchId': 'bench'},
             'computeConfiguration': {'type': 'compute-configuration-v2', 'machineType': 'cpu'},
             'processingTimeoutSeconds': 86400,
             'processingSpecification': {'type': 'workflows-processing-specification-v1', 'workspace': ws,
                                         'workflowId': 'det', 'persistImagesOutputs': False,
                                         'aggregationFormat': 'jsonl'}}
        st, body = call(port, 'POST', f'/batch-processing/v1/external/{ws}/jobs/bench-det', key, body=json.dumps(b))
        assert st == 200, body
        while True:
            st, body = call(port, 'GET', f'/batch-processing/v1/external/{ws}/jobs/bench-det', key)
            j = json.loads(body)['job']
            if j['isTerminal']:
                break
            time.sleep(0.2)
        assert not j['error'], j
        st, body = call(port, 'GET', f'/batch-processing/v1/external/{ws}/jobs/bench-det/stages', key)
        stages = {s['processingStageId']: s for s in json.loads(body)['stages']}
        p = stages['processing']
        p0, p1 = jobs_bench.iso_s(p['startTimestamp']), jobs_bench.iso_s(p['lastEventTimestamp'])
        ips = n / max(p1 - p0, 1e-6)
        print(f'jobs_s3_bench job_images_per_s {label} {ips:.1f} img/s images={n} workers={workers} '
              f'processing_s={p1 - p0:.2f} staging_s={stage_s:.2f}', flush=True)
        return ips
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        out.close()
        err.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--images', type=int, default=2000)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--build', default='build')
    ap.add_argument('--rounds', type=int, default=1)
    a = ap.parse_args()
    s3 = os.environ.get('VBATCH_TEST_S3', '')
    assert s3 and os.environ.get('AWS_SECRET_ACCESS_KEY'), 'VBATCH_TEST_S3 and AWS_* needed (scripts/s3-up.sh)'
    binp = os.path.join(REPO, a.build, 'vbatch')
    tmp = tempfile.mkdtemp(prefix='vbatch-jobs-s3-bench-')
    try:
        models = os.path.join(tmp, 'models')
        shutil.copytree(os.path.join(REPO, 'tests', 'data', 'models', 'synth-det'), os.path.join(models, 'synth-det'))
        base = jobs_bench.make_images(os.path.join(tmp, 'base'))
        blobs = [open(p, 'rb').read() for p in base]
        shards = []
        for k in range(0, a.images, 500):
            bio = io.BytesIO()
            with tarfile.open(fileobj=bio, mode='w') as t:
                for i in range(k, min(a.images, k + 500)):
                    ti = tarfile.TarInfo(f'img-{i:06d}.jpg')
                    ti.size = len(blobs[i % len(blobs)])
                    t.addfile(ti, io.BytesIO(blobs[i % len(blobs)]))
            shards.append(bio.getvalue())
        u = urllib.parse.urlsplit(s3)
        pre = u.path.strip('/')
        res = {'local': [], 's3': []}
        for r in range(a.rounds):
            res['local'].append(one(binp, tmp, models, {}, shards, a.images, a.workers, 'local'))
            prefix = (pre + '/' if pre else '') + 'jobs-bench-' + uuid.uuid4().hex[:8]
            res['s3'].append(one(binp, tmp, models, {'VBATCH_BLOBS': f's3://{u.netloc}/{prefix}?{u.query}'},
                                 shards, a.images, a.workers, 's3'))
        lo, so = max(res['local']), max(res['s3'])
        print(f'jobs_s3_bench ratio_s3_over_local {so / lo:.3f} (best of {a.rounds}: s3 {so:.1f} / local {lo:.1f} '
              f'img/s)', flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
