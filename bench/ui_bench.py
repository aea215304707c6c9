#!/usr/bin/env python3
"""Dashboard figures (docs/UI.md): page weight and time to first render of a
1,000-job list in headless Chromium.

    bench/ui_bench.py [--bin build/vbatch] [--jobs 1000] [--rounds 5]

- page weight: the bytes of /ui/ (HTML), /ui/app.js and /ui/app.css as
  served (and gzip -9 of them, for comparison; vbatch sends them
  uncompressed);
- first render: a `serve --workers 0` (jobs stay pending, nothing else
  runs) gets N jobs through the API on a one-image batch; the browser,
  signed in, loads /ui/#/jobs N times in the same tab (sessionStorage keeps
  the key; no cache: the page is re-fetched each time).  Reported per load,
  from the navigation's start (performance.timeOrigin): the page's own mark
  after the N rows are in the document (`vbatch-jobs-rows`), and two
  animation frames later (`vbatch-jobs-painted`: the rows were painted);
  baseline in the same run: the same GET /jobs?pageSize=1000 by Python
  (the server's part) and the browser's first contentful paint (the empty
  page).  Median of the rounds.
Needs Debian chromium and python3-websocket (scripts/install-deps.sh).
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'e2e'))
import cdp  # noqa: E402
from conftest import free_port, png_bytes, multipart  # noqa: E402


def req(base, method, path, key=None, body=None, headers=None):
    h = dict(headers or {})
    if key:
        h['Authorization'] = 'Bearer ' + key
    r = urllib.request.Request(base + path, data=body, method=method, headers=h)
    with urllib.request.urlopen(r, timeout=120) as resp:
        return resp.status, resp.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=os.path.join(REPO, 'build', 'vbatch'))
    ap.add_argument('--jobs', type=int, default=1000)
    ap.add_argument('--rounds', type=int, default=5)
    a = ap.parse_args()
    why = cdp.missing_reason()
    if why:
        sys.exit('ui_bench: ' + why)
    tmp = tempfile.mkdtemp(prefix='vbatch-uibench-')
    port = free_port()
    base = f'http://127.0.0.1:{port}'
    out = open(os.path.join(tmp, 'out'), 'w+')
    srv = subprocess.Popen([a.bin, 'serve', '--listen', f'127.0.0.1:{port}', '--data', os.path.join(tmp, 'data'),
                            '--workers', '0', '--quiet'], stdout=out, stderr=subprocess.DEVNULL)
    try:
        key = None
        for _ in range(600):
            out.seek(0)
            for line in out:
                if line.startswith('api_key: '):
                    key = line.split()[1]
            if key:
                try:
                    req(base, 'GET', '/healthz')
                    break
                except OSError:
                    pass
            time.sleep(0.05)
        ws = json.loads(req(base, 'GET', '/', key)[1])['workspace']

        weights = {}
        for p in ('/ui/', '/ui/app.js', '/ui/app.css'):
            b = req(base, 'GET', p)[1]
            weights[p] = (len(b), len(gzip.compress(b, 9)))
        total = sum(w[0] for w in weights.values())
        total_gz = sum(w[1] for w in weights.values())
        print('page weight: ' + ', '.join(f'{p} {w[0]} B' for p, w in weights.items())
              + f'; total {total} B ({total_gz} B if gzip -9)')

        ctype, body = multipart([('a.png', 'a.png', png_bytes(1))])
        req(base, 'POST', f'/data-staging/v1/external/{ws}/batches/bench/upload/image?fileName=a.png', key, body,
            {'Content-Type': ctype})
        wf = {'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}], 'steps': [],
              'outputs': [{'type': 'JsonField', 'name': 'image', 'selector': '$inputs.image'}]}
        req(base, 'PUT', f'/workflows/v1/external/{ws}/workflows/noop', key, json.dumps(wf).encode(),
            {'Content-Type': 'application/json'})
        job = {'type': 'simple-image-processing-v1',
               'jobInput': {'type': 'staging-batch-input-v1', 'batchId': 'bench'},
               'computeConfiguration': {'type': 'compute-configuration-v2', 'machineType': 'cpu'},
               'processingSpecification': {'type': 'workflows-processing-specification-v1', 'workspace': ws,
                                           'workflowId': 'noop'}}
        t0 = time.time()
        for i in range(a.jobs):
            req(base, 'POST', f'/batch-processing/v1/external/{ws}/jobs/bench-{i:05d}?name=bench%20job%20{i}', key,
                json.dumps(job).encode(), {'Content-Type': 'application/json'})
        print(f'created {a.jobs} jobs in {time.time() - t0:.1f} s')

        api_ms = []
        for _ in range(a.rounds):
            t = time.perf_counter()
            b = req(base, 'GET', f'/batch-processing/v1/external/{ws}/jobs?pageSize=1000', key)[1]
            api_ms.append((time.perf_counter() - t) * 1000)
        print(f'GET /jobs?pageSize=1000 by Python: median {statistics.median(api_ms):.1f} ms, {len(b)} B')

        rows_ms, paint_ms, fcp_ms = [], [], []
        with cdp.Browser(timeout=120) as br:
            br.navigate(base + '/ui/')
            br.wait('document.getElementById("apikey")')
            br.js(f'document.getElementById("apikey").value = {json.dumps(key)};'
                  'document.querySelector("#signin button").click(); 1')
            br.wait('!document.getElementById("nav").hidden')
            want = min(a.jobs, 1000)
            for _ in range(a.rounds):
                br.send('Network.setCacheDisabled', {'cacheDisabled': True}, session=True)
                br.send('Page.navigate', {'url': base + '/ui/?r=' + str(time.time()) + '#/jobs'}, session=True)
                br.wait(f'document.querySelector("main").getAttribute("data-rendered") === "{want}"'
                        ' && performance.getEntriesByName("vbatch-jobs-painted").length > 0')
                m = br.js('[performance.getEntriesByName("vbatch-jobs-rows")[0].startTime,'
                          ' performance.getEntriesByName("vbatch-jobs-painted")[0].startTime,'
                          ' (performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime || 0]')
                rows_ms.append(m[0])
                paint_ms.append(m[1])
                fcp_ms.append(m[2])
        print(f'{want}-job list, from navigation start (median of {a.rounds}): rows in the document '
              f'{statistics.median(rows_ms):.0f} ms, painted {statistics.median(paint_ms):.0f} ms '
              f'(min {min(paint_ms):.0f}, max {max(paint_ms):.0f}); first contentful paint of the page '
              f'{statistics.median(fcp_ms):.0f} ms; the API call alone {statistics.median(api_ms):.0f} ms')
    finally:
        srv.terminate()
        srv.wait()
        out.close()
        subprocess.run(['rm', '-rf', tmp])


if __name__ == '__main__':
    main()
