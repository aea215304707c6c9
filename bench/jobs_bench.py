#!/usr/bin/python3
"""Batch job benchmark: images/s of a one-model detection workflow over a
staged batch, against the model-only figure (model_registry_infer alone over
the same decoded images, bench_jobs_model) measured in the same run; the
export stage's MB/s (a second job persisting a 320x240 crop of every image,
packed into .tar.gz archives); and the server's RSS during both.

    /usr/bin/python3 bench/jobs_bench.py [--images 10000] [--model synth-det|yolov8n]
                                        [--workers 2] [--build build]

Staging goes through the real API (tar shards of 500 JPEGs through signed
URLs).  The images are 64 distinct synthetic 640x480 JPEGs repeated under
unique names.  Figures come from the stages' own timestamps (first task
claimed to last task finished).  One line per figure:
    jobs_bench <name> <value> <unit> [details]
"""
import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import http.client

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(port, method, path, key, query=None, body=None, raw_url=None):
    q = dict(query or {})
    q['api_key'] = key
    url = raw_url or (path + '?' + urllib.parse.urlencode(q))
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
    c.request(method, url, body=body, headers={'Content-Type': 'application/json'} if body else {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def make_images(d, n=64):
    import numpy as np
    import imageio
    rng = np.random.default_rng(1)
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        img = np.full((480, 640, 3), rng.integers(40, 200, 3), dtype=np.uint8)
        for _ in range(6):
            x, y = rng.integers(0, 560), rng.integers(0, 400)
            w, h = rng.integers(30, 80, 2)
            img[y:y + h, x:x + w] = rng.integers(0, 255, 3)
        img = (img.astype(np.int16) + rng.integers(-12, 12, img.shape)).clip(0, 255).astype(np.uint8)
        imageio.imwrite(os.path.join(d, f'base{i:02d}.jpg'), img, quality=90)
    return sorted(os.path.join(d, f) for f in os.listdir(d))


def rss_mb(pid):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], False

    def run(self):
        while not self.stop:
            self.samples.append((time.time(), rss_mb(self.pid)))
            time.sleep(0.1)

    def max_between(self, t0, t1):
        v = [m for t, m in self.samples if t0 <= t <= t1]
        return max(v) if v else 0.0


def iso_s(ts):
    from datetime import datetime
    return datetime.fromisoformat(ts.replace('Z', '+00:00')).timestamp()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--images', type=int, default=10000)
    ap.add_argument('--model', default='synth-det', help='synth-det (tests/data/models) or yolov8n '
                    '(~/.cache/vbatch/bench/yolov8n-random, made by scripts/make-bench-model.py)')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--build', default='build')
    ap.add_argument('--model-calls', type=int, default=1000)
    a = ap.parse_args()
    binp = os.path.join(REPO, a.build, 'vbatch')
    mbench = os.path.join(REPO, a.build, 'bench', 'bench_jobs_model')
    tmp = tempfile.mkdtemp(prefix='vbatch-jobs-bench-')
    proc = None
    try:
        models = os.path.join(tmp, 'models')
        if a.model == 'yolov8n':
            src = os.path.expanduser('~/.cache/vbatch/bench/yolov8n-random')
            shutil.copytree(src, os.path.join(models, 'yolov8n-random'))
            model_id = 'yolov8n-random'
        else:
            shutil.copytree(os.path.join(REPO, 'tests', 'data', 'models', 'synth-det'),
                            os.path.join(models, 'synth-det'))
            model_id = 'synth-det'
        base = make_images(os.path.join(tmp, 'base'))
        blobs = [open(p, 'rb').read() for p in base]

        port = 18000 + os.getpid() % 2000
        out = open(os.path.join(tmp, 'stdout'), 'w+')
        err = open(os.path.join(tmp, 'server.log'), 'w')
        proc = subprocess.Popen([binp, 'serve', '--listen', f'127.0.0.1:{port}', '--data', os.path.join(tmp, 'data'),
                                 '--quiet', '--workers', str(a.workers), '--models-dir', models],
                                stdout=out, stderr=err)
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
        ws = 'default'
        sampler = RssSampler(proc.pid)
        sampler.start()

        # stage
        t0 = time.time()
        n = a.images
        staged_bytes = 0
        for k in range(0, n, 500):
            bio = io.BytesIO()
            with tarfile.open(fileobj=bio, mode='w') as t:
                for i in range(k, min(n, k + 500)):
                    data = blobs[i % len(blobs)]
                    ti = tarfile.TarInfo(f'img-{i:06d}.jpg')
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
                    staged_bytes += len(data)
            st, body = call(port, 'POST', f'/data-staging/v1/external/{ws}/batches/bench/bulk-upload/image-files', key)
            assert st == 200, body
            u = json.loads(body)['signedURLDetails']['uploadURL']
            pu = urllib.parse.urlsplit(u)
            st, body = call(port, 'PUT', None, key, body=bio.getvalue(), raw_url=pu.path + '?' + pu.query)
            assert st == 200, body
        while True:
            st, body = call(port, 'GET', f'/data-staging/v1/external/{ws}/batches/bench/count', key)
            if json.loads(body)['count'] >= n:
                break
            time.sleep(0.2)
        print(f'jobs_bench staging_images_per_s {n / (time.time() - t0):.1f} img/s images={n}', flush=True)

        det = {'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
               'steps': [{'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
                          'images': '$inputs.image', 'model_id': model_id}],
               'outputs': [{'type': 'JsonField', 'name': 'predictions', 'selector': '$steps.det.predictions'}]}
        crop = {'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
                'steps': [{'type': 'roboflow_core/absolute_static_crop@v1', 'name': 'crop', 'images': '$inputs.image',
                           'x_center': 320, 'y_center': 240, 'width': 320, 'height': 240}],
                'outputs': [{'type': 'JsonField', 'name': 'crop', 'selector': '$steps.crop.crops'}]}
        for wid, d in (('det', det), ('crop', crop)):
            st, body = call(port, 'PUT', f'/workflows/v1/external/{ws}/workflows/{wid}', key, body=json.dumps(d))
            assert st in (200, 201), body

        def run_job(job, wf, persist, fmt):
            b = {'type': 'simple-image-processing-v1',
                 'jobInput': {'type': 'staging-batch-input-v1', 'batchId': 'bench'},
                 'computeConfiguration': {'type': 'compute-configuration-v2', 'machineType': 'cpu'},
                 'processingTimeoutSeconds': 86400,
                 'processingSpecification': {'type': 'workflows-processing-specification-v1', 'workspace': ws,
                                             'workflowId': wf, 'persistImagesOutputs': persist,
                                             'aggregationFormat': fmt}}
            st, body = call(port, 'POST', f'/batch-processing/v1/external/{ws}/jobs/{job}', key, body=json.dumps(b))
            assert st == 200, body
            while True:
                st, body = call(port, 'GET', f'/batch-processing/v1/external/{ws}/jobs/{job}', key)
                j = json.loads(body)['job']
                if j['isTerminal']:
                    break
                time.sleep(0.2)
            assert not j['error'], j
            st, body = call(port, 'GET', f'/batch-processing/v1/external/{ws}/jobs/{job}/stages', key)
            stages = {s['processingStageId']: s for s in json.loads(body)['stages']}
            st, body = call(port, 'GET', f'/data-staging/v1/external/{ws}/batches/{job}-export/list', key,
                            query={'pageSize': 1000})
            size = 0
            for f in json.loads(body)['filesMetadata']:
                pu = urllib.parse.urlsplit(f['downloadURL'])
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
                c.request('HEAD', pu.path + '?' + pu.query)
                r = c.getresponse()
                size += int(r.getheader('Content-Length') or 0)
                r.read()
                c.close()
            span = {k: (iso_s(s['startTimestamp']), iso_s(s['lastEventTimestamp'])) for k, s in stages.items()}
            return span, size

        span, _ = run_job('bench-det', 'det', False, 'jsonl')
        p0, p1 = span['processing']
        ips = n / max(p1 - p0, 1e-6)
        print(f'jobs_bench job_images_per_s {ips:.1f} img/s images={n} workers={a.workers} model={model_id}',
              flush=True)
        print(f'jobs_bench rss_max_processing_mb {sampler.max_between(p0, p1):.1f} MB', flush=True)

        r = subprocess.run([mbench, models, model_id, os.path.join(tmp, 'base'), str(a.model_calls),
                            str(a.workers)], capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr[-2000:])
        mo = [float(line.split()[2]) for line in r.stdout.splitlines() if 'model_only_images_per_s' in line]
        if mo:
            print(f'jobs_bench job_vs_model_only_ratio {ips / mo[0]:.3f} (job img/s / model-only img/s)', flush=True)

        span, size = run_job('bench-exp', 'crop', True, 'csv')
        e0, e1 = span['export']
        print(f'jobs_bench export_mb_per_s {size / 1e6 / max(e1 - e0, 1e-6):.1f} MB/s export_bytes={size} '
              f'seconds={e1 - e0:.2f}', flush=True)
        print(f'jobs_bench rss_max_export_mb {sampler.max_between(e0, e1):.1f} MB', flush=True)
        p0, p1 = span['processing']
        print(f'jobs_bench crop_persist_images_per_s {n / max(p1 - p0, 1e-6):.1f} img/s', flush=True)
        sampler.stop = True
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
