"""The web dashboard (/ui/, docs/UI.md): how it is served (redirect,
security headers, the Bearer header form of the key, the batch sizes it
shows), then a real browser — headless Chromium driven over the DevTools
protocol (cdp.py) — signing in, watching a job to 100 % without a reload,
reading its logs, downloading its export, and a second workspace's key
seeing none of it."""
import json
import os
import re
import tempfile
import time
import urllib.parse

import pytest

import cdp
from conftest import MULT, make_tar, png_bytes
from jobs_helpers import CROP_WF, bp, job_body, put_workflow, wait_job


def _ui(s, path, headers=None):
    return s.raw('GET', path, headers=headers or {})


# ---- serving ---------------------------------------------------------------------


def test_root_redirects_browsers_and_keeps_the_workspace_lookup(server):
    r = _ui(server, '/', {'Accept': 'text/html,application/xhtml+xml,*/*;q=0.8'})
    assert r.status == 302 and r.headers['Location'] == '/ui/', r
    # the rf-cloud CLI's lookup: key in the query, JSON as before (even with text/html)
    r = server.request('GET', '/', headers={'Accept': 'text/html'})
    assert r.status == 200 and r.json() == {'workspace': server.workspace}, r
    r = server.request('GET', '/', auth=False, headers={'Accept': 'text/html', 'Authorization': 'Bearer ' + server.key})
    assert r.status == 200 and r.json() == {'workspace': server.workspace}, r
    # no text/html in Accept: no redirect, the API's own 401
    r = _ui(server, '/', {'Accept': 'application/json'})
    assert r.status == 401 and 'error' in r.json(), r
    r = _ui(server, '/')
    assert r.status == 401, r
    r = _ui(server, '/ui')
    assert r.status == 301 and r.headers['Location'] == '/ui/', r


def test_dashboard_files_are_served_with_a_strict_policy(server):
    r = _ui(server, '/ui/')
    assert r.status == 200 and r.headers['Content-Type'].startswith('text/html'), r
    html = r.body.decode()
    # no inline script or style, no event attribute: everything comes from /ui/ files
    assert re.findall(r'<script[^>]*>', html) == ['<script src="/ui/app.js" defer>']
    assert '<style' not in html and not re.search(r'\son[a-z]+=', html)
    csp = r.headers['Content-Security-Policy']
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(';') if d.strip()}
    assert directives['script-src'] == ["'self'"] and directives['default-src'] == ["'none'"]
    assert directives['frame-ancestors'] == ["'none'"] and directives['connect-src'] == ["'self'"]
    assert r.headers['X-Content-Type-Options'] == 'nosniff'
    assert r.headers['X-Frame-Options'] == 'DENY'
    for name, ctype in (('app.js', 'text/javascript'), ('app.css', 'text/css')):
        r = _ui(server, '/ui/' + name)
        assert r.status == 200 and r.headers['Content-Type'].startswith(ctype), r
        assert r.headers['Content-Security-Policy'] == csp
        with open(os.path.join(os.path.dirname(__file__), '..', '..', 'src', 'ui', name), 'rb') as f:
            assert r.body == f.read(), f'{name} served differs from src/ui/{name}'
    js = _ui(server, '/ui/app.js').body.decode()
    for bad in ('.innerHTML', '.outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'Function(',
                'localStorage.setItem'):
        assert bad not in js, bad
    assert 'api_key' not in js  # the key goes in a header, never in a URL
    r = _ui(server, '/ui/nothing.js')
    assert r.status == 404 and 'error' in r.json(), r
    r = server.raw('HEAD', '/ui/app.js')
    assert r.status == 200 and r.body == b''


def test_key_in_an_authorization_bearer_header(server_factory):
    s = server_factory().start()
    other = s.cli('workspace', 'create', 'other')
    assert other.returncode == 0, other.stderr
    okey = re.search(r'api_key: (\S+)', other.stdout).group(1)
    path = f'/data-staging/v1/external/{s.workspace}/batches'
    r = s.request('GET', path, auth=False, headers={'Authorization': 'Bearer ' + s.key})
    assert r.status == 200 and r.json()['batches'] == [], r
    r = s.request('GET', '/', auth=False, headers={'Authorization': 'Bearer ' + s.key})
    assert r.status == 200 and r.json() == {'workspace': s.workspace}, r
    # another workspace's key in the header: 403 as in the query
    r = s.request('GET', path, auth=False, headers={'Authorization': 'Bearer ' + okey})
    assert r.status == 403, r
    r = s.request('GET', path, auth=False, headers={'Authorization': 'Bearer vb_nope'})
    assert r.status == 401, r
    # the same key twice is fine; two different keys are ambiguous
    r = s.request('GET', path, headers={'Authorization': 'Bearer ' + s.key})
    assert r.status == 200, r
    r = s.request('GET', path, headers={'Authorization': 'Bearer ' + okey})
    assert r.status == 400 and 'two different api keys' in r.json()['error'], r
    # a scheme other than Bearer is no key
    r = s.request('GET', path, auth=False, headers={'Authorization': 'Basic ' + s.key})
    assert r.status == 401, r
    # and the header never lands in the request log (the path only)
    s.stop()
    assert s.key not in s.tail_log(10 ** 7) and okey not in s.tail_log(10 ** 7)


def test_batches_report_file_count_and_size(server):
    names = [f'f{i}.png' for i in range(3)]
    data = [png_bytes(900 + i, 16, 16) for i in range(3)]
    for n, d in zip(names, data):
        assert server.upload_image('sizes', n, d).status == 200
    r = server.ds('GET', '/sizes')
    assert r.status == 200, r
    b = r.json()['batch']
    assert b['fileCount'] == 3 and b['sizeBytes'] == sum(map(len, data)), b
    listed = [x for x in server.ds('GET', '', query={'pageSize': 100}).json()['batches'] if x['batchId'] == 'sizes']
    assert listed and listed[0]['fileCount'] == 3 and 'sizeBytes' not in listed[0], listed


# ---- in a real browser ------------------------------------------------------------------

NO_BROWSER = cdp.missing_reason()


def _sign_in(b, key):
    b.wait('document.getElementById("apikey")', what='the sign-in form')
    b.js(f'document.getElementById("apikey").value = {json.dumps(key)};'
         'document.querySelector("#signin button").click(); 1')
    b.wait('document.getElementById("nav") && !document.getElementById("nav").hidden', what='signed in')


def _go(b, hash_):
    """Go to a page of the dashboard (a new hash; the same one is shown again)."""
    b.js(f'if (location.hash === {json.dumps(hash_)}) window.dispatchEvent(new HashChangeEvent("hashchange"));'
         f' else location.hash = {json.dumps(hash_)}; 1')


def _text(b, sel):
    return b.js(f'(document.querySelector({json.dumps(sel)}) || {{}}).textContent || ""')


@pytest.mark.skipif(NO_BROWSER is not None, reason=NO_BROWSER or '')
def test_dashboard_in_headless_chromium(server_factory):
    s = server_factory().start()
    other = s.cli('workspace', 'create', 'other')
    assert other.returncode == 0, other.stderr
    okey = re.search(r'api_key: (\S+)', other.stdout).group(1)
    put_workflow(s, 'crop', CROP_WF)
    n_images = 24
    downloads = tempfile.mkdtemp(prefix='vbatch-dl-')
    T = 60 * MULT
    with cdp.Browser(timeout=T, download_dir=downloads) as b:
        # a browser asking for / lands on the dashboard, and signs in
        b.navigate(s.base + '/')
        assert b.js('location.pathname') == '/ui/'
        _sign_in(b, s.key)
        assert b.js('sessionStorage.getItem("vbatch.apiKey")') == s.key
        assert b.js('localStorage.length') == 0 and b.js('document.cookie') == ''
        b.js('window.__sameDocument = 42; 1')  # gone if the page ever reloads

        # stage a batch through the API (tar shards, a display name that is markup)
        tar = make_tar([(f'img-{i:03d}.png', png_bytes(100 + i, 12, 12)) for i in range(n_images)])
        r = s.ds('POST', '/dash/bulk-upload/image-files', query={'displayName': '<b id="xss">Dash</b>'})
        assert r.status == 200, r
        put = s.raw('PUT', r.json()['signedURLDetails']['uploadURL'], body=tar,
                    headers=r.json()['signedURLDetails'].get('extensionHeaders') or {})
        assert put.status == 200, put
        assert s.wait_count('dash', n_images) == n_images
        _go(b, '#/batches')
        b.wait('document.querySelector("tr[data-batch=dash] td:nth-child(6)") &&'
               ' !/…/.test(document.querySelector("tr[data-batch=dash] td:nth-child(6)").textContent)',
               what='the batch row with its size')
        row = b.js('Array.from(document.querySelectorAll("tr[data-batch=dash] td")).map(t => t.textContent)')
        assert row[0] == 'dash' and row[1] == '<b id="xss">Dash</b>' and row[4] == str(n_images), row
        assert b.js('document.getElementById("xss")') is None  # text, not markup
        # detail: shards with their status, files with thumbnails and download links
        _go(b, '#/batches/dash')
        b.wait(f'document.querySelectorAll("#files .file").length === {n_images}', what='the files')
        b.wait('Array.from(document.querySelectorAll("#files img")).every(i => i.complete && i.naturalWidth === 12)',
               what='the thumbnails')
        shard = s.ds('GET', '/dash/shards').json()['shards'][0]
        b.wait(f'document.body.innerText.includes({json.dumps(shard["shardId"])})', what='the shard row')
        assert shard['statusName'] in b.js('document.body.innerText')
        hrefs = b.js('Array.from(document.querySelectorAll("#files a.download")).map(a => a.href)')
        assert len(hrefs) == n_images and all('/blobs/' in h for h in hrefs)

        # the job page is opened first: it shows the job as soon as it exists
        _go(b, '#/jobs/dashjob')
        b.wait('!document.getElementById("error").hidden', what='"job not found" before the job exists')
        r = bp(s, 'POST', '/dashjob', job_body('dash', 'crop', ws=s.workspace))
        assert r.status == 200, r
        seen = []
        deadline = time.time() + 120 * MULT
        while time.time() < deadline:
            v = _text(b, '#job-progress')
            if v and (not seen or seen[-1] != v):
                seen.append(v)
            if v == '100%' and _text(b, '#job-status') == 'completed':
                break
            time.sleep(0.05)
        assert seen and seen[-1] == '100%', seen
        assert _text(b, '#job-status') == 'completed'
        assert b.js('window.__sameDocument') == 42, 'the page was reloaded'
        b.wait('document.querySelectorAll(".stage").length === 2 &&'
               ' /100%/.test(document.getElementById("stage-progress-processing").textContent)',
               what='both stages, processing at 100 %')
        assert b.js('document.getElementById("abort").disabled') is True
        assert b.js('document.getElementById("restart").disabled') is True  # a completed job is not restarted

        # logs, with the severity filter
        b.js('document.getElementById("show-logs").click(); 1')
        b.wait('document.querySelectorAll("#log-table tr.log").length > 0', what='the logs')
        sev = b.js('Array.from(document.querySelectorAll("#log-table tr.log")).map(r => r.dataset.severity)')
        assert 'info' in sev, sev
        api_logs = bp(s, 'GET', '/dashjob/logs', query={'pageSize': 200}).json()['logs']
        assert len(sev) == len(api_logs)
        b.js('const s = document.getElementById("log-severity"); s.value = "error";'
             's.dispatchEvent(new Event("change")); 1')
        b.wait('document.querySelectorAll("#log-table tr.log[data-severity=info]").length === 0',
               what='the info entries filtered out')
        errs = bp(s, 'GET', '/dashjob/logs', query={'severity': 'error'}).json()['logs']
        b.wait(f'document.querySelectorAll("#log-table tr.log").length === {len(errs)}')

        # the export, downloaded by the browser
        b.wait('document.querySelector("#export-files a.export-download")', what='the export links')
        links = b.js('Array.from(document.querySelectorAll("#export-files a.export-download"))'
                     '.map(a => [a.getAttribute("download"), a.href])')
        name, url = next(x for x in links if x[0].startswith('aggregated_results'))
        b.js(f'Array.from(document.querySelectorAll("#export-files a.export-download"))'
             f'.find(a => a.getAttribute("download") === {json.dumps(name)}).click(); 1')
        path = os.path.join(downloads, name)
        deadline = time.time() + 30 * MULT
        while time.time() < deadline and not os.path.exists(path):
            b.pump(0.1)
        assert os.path.exists(path), os.listdir(downloads)
        with open(path, 'rb') as f:
            got = f.read()
        assert got == s.raw('GET', url).body
        rows = [json.loads(x) for x in got.decode().splitlines() if x]
        assert len(rows) == n_images, rows[:2]

        # the workflow's graph: 2 inputs, 1 step, 2 outputs; 3 edges from the selectors
        _go(b, '#/workflows/crop')
        b.wait('document.querySelector("#workflow-graph")', what='the graph')
        nodes = b.js('Array.from(document.querySelectorAll("#workflow-graph g.node")).map(g => g.dataset.node).sort()')
        assert nodes == ['input:image', 'input:tag', 'output:crop', 'output:tag', 'step:crop'], nodes
        edges = b.js('Array.from(document.querySelectorAll("#workflow-graph path.edge"))'
                     '.map(p => p.dataset.from + ">" + p.dataset.to).sort()')
        assert edges == ['input:image>step:crop', 'input:tag>output:tag', 'step:crop>output:crop'], edges
        _go(b, '#/models')
        b.wait('/Models/.test(document.querySelector("main h1").textContent) &&'
               ' (document.getElementById("models") || /No models/.test(document.body.innerText))')
        _go(b, '#/jobs')
        b.wait('document.querySelector("[data-job=dashjob]")', what='the job list')
        assert 'completed' in _text(b, '[data-job=dashjob]')

        # the key never appeared in a URL the browser asked for
        b.pump(0.2)
        assert not [u for u in b.requests() if s.key in u or 'api_key' in u]

        # a second workspace's key sees none of it
        b.js('document.getElementById("signout").click(); 1')
        assert b.js('sessionStorage.getItem("vbatch.apiKey")') is None
        _sign_in(b, okey)
        _go(b, '#/batches')
        b.wait('/No batches yet/.test(document.body.innerText)', what='an empty batch list')
        _go(b, '#/jobs')
        b.wait('/No jobs yet/.test(document.body.innerText)', what='an empty job list')
        _go(b, '#/workflows')
        b.wait('/No workflows/.test(document.body.innerText)', what='no workflows')
        _go(b, '#/jobs/dashjob')
        b.wait('!document.getElementById("error").hidden', what='the job refused')
        assert not b.js('document.getElementById("job-status")')
        _go(b, '#/batches/dash')
        b.wait('!document.getElementById("error").hidden', what='the batch refused')
        assert b.js('document.querySelectorAll("#files .file").length') == 0
        body = b.js('document.body.innerText')
        assert 'img-0' not in body and 'Dash' not in body, body

        b.pump(0.2)
        assert b.problems() == [], b.problems()


@pytest.mark.skipif(NO_BROWSER is not None, reason=NO_BROWSER or '')
def test_dashboard_aborts_and_restarts_a_job(server_factory):
    # no worker threads: the job waits, so the buttons act on a running job
    s = server_factory(args=['--workers', '0']).start()
    put_workflow(s, 'crop', CROP_WF)
    for i in range(3):
        assert s.upload_image('held', f'h{i}.png', png_bytes(300 + i)).status == 200
    r = bp(s, 'POST', '/heldjob', job_body('held', 'crop', ws=s.workspace))
    assert r.status == 200, r
    with cdp.Browser(timeout=60 * MULT) as b:
        b.navigate(s.base + '/ui/#/jobs/heldjob')
        _sign_in(b, s.key)
        b.wait('document.getElementById("job-status")', what='the job')
        assert _text(b, '#job-status') == 'pending'
        assert b.js('document.getElementById("restart").disabled') is True
        b.js('window.confirm = () => true; document.getElementById("abort").click(); 1')
        b.wait('document.getElementById("job-status") &&'
               ' document.getElementById("job-status").textContent === "aborted"', what='aborted')
        assert bp(s, 'GET', '/heldjob').json()['jobStatus'] == 'aborted'
        b.wait('!document.getElementById("restart").disabled', what='restart enabled')
        b.js('document.getElementById("restart").click(); 1')
        b.wait('document.getElementById("job-status") &&'
               ' document.getElementById("job-status").textContent === "pending"', what='running again')
        assert bp(s, 'GET', '/heldjob').json()['job']['isTerminal'] is False
        assert b.problems() == [], b.problems()
