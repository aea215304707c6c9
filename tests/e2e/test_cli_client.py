"""The client commands (src/cli/, docs/CLI.md) end to end against a real
server: vbatch batch upload (shards, sidecars, videos, resume after the
client was killed), job start/watch/list/logs/abort/restart, batch
list/show/export (unpacked, rows checked), workflow put/get/list, and the
error paths (one line on stderr, exit 1; bad usage exit 2).  The export's
refusal of hostile archives runs against a small fake server."""
import gzip
import http.server
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time

import pytest

from conftest import BIN, DS, MULT, png_bytes
from jobs_helpers import CROP_WF

VID = '/usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4'


def cli(s, *args, key=None, env=None, timeout=120):
    e = dict(os.environ)
    e.pop('VBATCH_API_KEY', None)
    e.pop('VBATCH_SERVER', None)
    if s is not None:
        e['VBATCH_SERVER'] = s.base
        e['VBATCH_API_KEY'] = key if key is not None else s.key
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=e, timeout=timeout * MULT)


def listed(s, batch, part=None):
    names, token = [], None
    while True:
        q = {'pageSize': 1000}
        if token:
            q['nextPageToken'] = token
        if part:
            q['partName'] = part
        r = s.ds('GET', f'/{batch}/list', query=q)
        assert r.status == 200, r
        page = r.json()
        names += [f['fileName'] for f in page['filesMetadata']]
        token = page.get('nextPageToken')
        if not token:
            return names


def make_images(d, n, sub_every=2, size=16, prefix='img'):
    os.makedirs(os.path.join(d, 'sub'), exist_ok=True)
    for i in range(n):
        folder = os.path.join(d, 'sub') if i % sub_every == 0 else d
        with open(os.path.join(folder, f'{prefix}{i:04d}.png'), 'wb') as f:
            f.write(png_bytes(i + 1, size, size))


def test_upload_job_export_workflow(server_factory, tmp_path):
    s = server_factory().start()
    imgs = tmp_path / 'imgs'
    make_images(str(imgs), 60)
    # two sidecars: per-image metadata the job maps onto a workflow input
    (imgs / 'img0001.png.json').write_text(json.dumps({'tag': 'red'}))
    (imgs / 'sub' / 'img0002.png.json').write_text(json.dumps({'tag': 'blue'}))
    (imgs / 'README.txt').write_text('not an image')
    (imgs / '.hidden.png').write_bytes(b'skipped: a dot file')

    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'photos', '--shard-size', '25', '--parallel', '3',
            '--name', 'my photos')
    assert r.returncode == 0, r.stderr
    assert '60 image(s), 2 sidecar(s), 0 video(s)' in r.stderr
    assert '1 other file(s) ignored' in r.stderr
    assert 'batch photos: 62 file(s) staged' in r.stdout
    names = listed(s, 'photos')
    assert sorted(names) == sorted([f'img{i:04d}.png' for i in range(60)] + ['img0001.png.json', 'img0002.png.json'])
    assert sorted(listed(s, 'photos', part='metadata')) == ['img0001.png.json', 'img0002.png.json']
    shards = s.ds('GET', '/photos/shards').json()['shards']
    assert len(shards) == 3 and all(sh['statusName'] == 'ingested' for sh in shards)
    assert s.ds('GET', '/photos').json()['batch']['displayName'] == 'my photos'

    # a second run finds everything on the server and sends nothing
    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'photos')
    assert r.returncode == 0, r.stderr
    assert '0 image(s), 0 sidecar(s), 0 video(s) to upload' in r.stderr and '62 already on the server' in r.stderr
    assert len(s.ds('GET', '/photos/shards').json()['shards']) == 3

    r = cli(s, 'batch', 'list')
    assert r.returncode == 0 and 'photos' in r.stdout and 'my photos' in r.stdout
    r = cli(s, 'batch', 'show', 'photos')
    assert r.returncode == 0, r.stderr
    assert 'files:    62' in r.stdout and r.stdout.count('shard:') == 3 and 'part:     metadata' in r.stdout

    # workflows
    wf = tmp_path / 'crop.json'
    wf.write_text(json.dumps(CROP_WF))
    r = cli(s, 'workflow', 'put', 'crop', str(wf))
    assert r.returncode == 0 and 'workflow crop stored (validated)' in r.stdout, r.stderr
    r = cli(s, 'workflow', 'get', 'crop')
    assert r.returncode == 0 and json.loads(r.stdout) == CROP_WF
    r = cli(s, 'workflow', 'list')
    assert r.returncode == 0 and any(l.split()[0] == 'crop' for l in r.stdout.splitlines()[1:])

    # job start --watch to completion
    r = cli(s, 'job', 'start', 'job-cli-1', '--batch', 'photos', '--workflow', 'crop', '--persist-images',
            '--metadata-inputs', '{"tag": "tag"}', '--name', 'cli run', '--watch')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('job: job-cli-1\n')
    assert 'job job-cli-1 completed: 60 image(s) processed, 0 failed' in r.stdout
    r = cli(s, 'job', 'list')
    line = next(l for l in r.stdout.splitlines() if l.startswith('job-cli-1 '))
    assert 'succeeded' in line and 'cli run' in line
    r = cli(s, 'job', 'logs', 'job-cli-1')
    assert r.returncode == 0 and 'job-created' in r.stdout and 'job-completed' in r.stdout
    r = cli(s, 'job', 'logs', 'job-cli-1', '--severity', 'error')
    assert r.returncode == 0 and r.stdout == ''
    r = cli(s, 'job', 'watch', 'job-cli-1')  # already over: one line, exit 0
    assert r.returncode == 0 and 'completed' in r.stdout

    # export: downloaded, the images archive unpacked, every image once
    out = tmp_path / 'export'
    r = cli(s, 'batch', 'export', '--job', 'job-cli-1', '--out', str(out))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (out / 'results' / 'aggregated_results.jsonl').read_text().splitlines()]
    assert sorted(row['image'] for row in rows) == [f'img{i:04d}.png' for i in range(60)]
    tags = {row['image']: row['tag'] for row in rows}
    assert tags['img0001.png'] == 'red' and tags['img0002.png'] == 'blue' and tags['img0003.png'] == 'none'
    crops = [p for p in (out / 'images').rglob('*') if p.is_file()]
    assert len(crops) >= 60, crops[:5]
    assert not list(out.rglob('.vbatch-download-*'))


def test_upload_resumes_after_kill(server_factory, tmp_path):
    """Kill the client in the middle of an upload, run it again: every image
    is in the batch exactly once."""
    s = server_factory().start()
    imgs = tmp_path / 'many'
    make_images(str(imgs), 300, size=48)
    env = dict(os.environ, VBATCH_SERVER=s.base, VBATCH_API_KEY=s.key)
    # one PUT at a time, throttled, so that the kill lands mid-way
    p = subprocess.Popen([BIN, 'batch', 'upload', str(imgs), '--batch', 'resume', '--shard-size', '20',
                          '--parallel', '1', '--max-rate', '150000'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60 * MULT
    count = 0
    while time.time() < deadline and p.poll() is None:
        r = s.ds('GET', '/resume/count', check=False)
        count = r.json().get('count', 0) if r.status == 200 else 0
        if count >= 60:
            break
        time.sleep(0.05)
    assert p.poll() is None, 'the upload ended before it could be interrupted'
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = len(listed(s, 'resume'))
    assert 60 <= before < 300

    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'resume', '--shard-size', '20', '--parallel', '4')
    assert r.returncode == 0, r.stderr
    skipped = int(r.stderr.split(' already on the server')[0].rsplit(';', 1)[1])
    assert skipped >= before
    names = listed(s, 'resume')
    assert len(names) == 300 and sorted(names) == [f'img{i:04d}.png' for i in range(300)]
    assert 'batch resume: 300 file(s) staged' in r.stdout


def test_video_upload(server_factory, tmp_path):
    if not os.path.exists(VID):
        pytest.skip('no sample video (python3-imageio)')
    s = server_factory().start()
    vids = tmp_path / 'vids'
    vids.mkdir()
    data = open(VID, 'rb').read()
    (vids / 'a.mp4').write_bytes(data)
    (vids / 'b.mp4').write_bytes(data)
    r = cli(s, 'batch', 'upload', str(vids), '--batch', 'clips')
    assert r.returncode == 0, r.stderr
    assert '0 image(s), 0 sidecar(s), 2 video(s)' in r.stderr
    assert sorted(listed(s, 'clips')) == ['a.mp4', 'b.mp4']
    r = cli(s, 'batch', 'upload', str(vids / 'a.mp4'), '--batch', 'clips')
    assert r.returncode == 0 and '1 already on the server' in r.stderr
    assert len(listed(s, 'clips')) == 2
    # a video job over them: one row per sampled frame
    wf = tmp_path / 'crop.json'
    wf.write_text(json.dumps(CROP_WF))
    assert cli(s, 'workflow', 'put', 'crop', str(wf)).returncode == 0
    r = cli(s, 'job', 'start', 'vjob', '--video', '--max-fps', '5', '--batch', 'clips', '--workflow', 'crop',
            '--watch')
    assert r.returncode == 0, r.stderr
    body = s.request('GET', f'/batch-processing/v1/external/{s.workspace}/jobs/vjob').json()['job']['jobDefinition']
    assert body['type'] == 'simple-video-processing-v1' and body['processingSpecification']['maxVideoFPS'] == 5
    r = cli(s, 'batch', 'export', '--job', 'vjob', '--out', str(tmp_path / 'vout'))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (tmp_path / 'vout' / 'results' / 'aggregated_results.jsonl').read_text().splitlines()]
    per = {n: sum(1 for row in rows if row['image'] == n) for n in ('a.mp4', 'b.mp4')}
    assert per['a.mp4'] == per['b.mp4'] > 1, per


def test_job_abort_and_restart(server_factory, tmp_path):
    s = server_factory(args=['--workers', '0']).start()  # nothing runs: the job stays pending
    imgs = tmp_path / 'imgs'
    make_images(str(imgs), 3)
    assert cli(s, 'batch', 'upload', str(imgs), '--batch', 'few').returncode == 0
    wf = tmp_path / 'crop.json'
    wf.write_text(json.dumps(CROP_WF))
    assert cli(s, 'workflow', 'put', 'crop', str(wf)).returncode == 0
    r = cli(s, 'job', 'start', '--batch', 'few', '--workflow', 'crop')
    assert r.returncode == 0, r.stderr
    job = r.stdout.split()[1]
    assert job.startswith('job-') and len(job) == 16
    r = cli(s, 'job', 'watch', job, '--timeout', '1')
    assert r.returncode == 1 and 'still pending' in r.stderr
    r = cli(s, 'job', 'abort', job)
    assert r.returncode == 0 and f'job {job} aborted' in r.stdout, r.stderr
    r = cli(s, 'job', 'watch', job)
    assert r.returncode == 1 and 'aborted' in r.stderr and len(r.stderr.splitlines()) == 1
    r = cli(s, 'job', 'restart', job, '--workers', '2', '--max-failure-rate', '0.5')
    assert r.returncode == 0 and f'job {job} restarted' in r.stdout, r.stderr
    meta = s.request('GET', f'/batch-processing/v1/external/{s.workspace}/jobs/{job}').json()['job']
    assert meta['restartParametersOverride'][-1]['maxImageFailureRate'] == 0.5


def test_errors_one_line(server_factory, tmp_path):
    s = server_factory().start()
    imgs = tmp_path / 'imgs'
    make_images(str(imgs), 2)

    def one_line(r, *words):
        assert r.returncode == 1, (r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        for w in words:
            assert w in lines[0], lines[0]
        return lines[0]

    line = one_line(cli(s, 'batch', 'list', key='vb_wrong'), '401', 'unknown api_key')
    assert 'vb_wrong' not in line
    one_line(cli(s, 'batch', 'upload', str(imgs), '--batch', 'x', key='vb_wrong'), '401')
    one_line(cli(s, 'batch', 'show', 'nosuch'), '404')
    one_line(cli(s, 'job', 'logs', 'nosuch'), '404')
    one_line(cli(s, 'batch', 'export', 'nosuch', '--out', str(tmp_path / 'o')), '404')
    bad_wf = tmp_path / 'bad.json'
    bad_wf.write_text(json.dumps({'version': '1.0', 'inputs': [], 'steps': [{'type': 'no/such@v1', 'name': 'x'}],
                                  'outputs': []}))
    one_line(cli(s, 'workflow', 'put', 'bad', str(bad_wf)), '400')
    one_line(cli(s, 'job', 'start', '--batch', 'nosuch', '--workflow', 'nosuch'), '404')
    # another workspace's name with this key
    one_line(cli(s, 'batch', 'list', '--workspace', 'other'), '403')
    # nothing listening
    dead = cli(None, 'batch', 'list', '--server', 'http://127.0.0.1:9', '--api-key', 'k')
    one_line(dead, 'cannot reach')

    # bad usage: exit 2
    for args in (['batch'], ['batch', 'nosuch'], ['batch', 'upload', str(imgs)],
                 ['batch', 'upload', str(imgs), '--batch', 'Bad Id'], ['batch', 'upload', '--batch', 'b'],
                 ['batch', 'upload', str(tmp_path / 'missing'), '--batch', 'b'],
                 ['batch', 'list', '--bogus'], ['job', 'start', '--batch', 'b'],
                 ['job', 'logs', 'j', '--severity', 'loud'], ['workflow', 'put', 'w'],
                 ['job', 'start', '--batch', 'b', '--workflow', 'w', '--format', 'xml'],
                 ['batch', 'upload', str(imgs), '--batch', 'b', '--parallel', 'many'],
                 ['batch', 'list', '--server', 'ftp://x']):
        r = cli(s, *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
    r = cli(None, 'batch', 'list')
    assert r.returncode == 2 and 'VBATCH_API_KEY' in r.stderr
    # two files of one name in two folders: refused before anything is sent
    (imgs / 'sub' / 'img0001.png').write_bytes(png_bytes(99))
    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'dups')
    assert r.returncode == 2 and "two files named 'img0001.png'" in r.stderr
    assert s.ds('GET', '/dups/count', check=False).status == 404


# ---- a hostile server for export ---------------------------------------------------

def tgz(members):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w:gz', format=tarfile.PAX_FORMAT) as t:
        for name, data, kind in members:
            ti = tarfile.TarInfo(name)
            if kind in ('link', 'hardlink'):
                ti.type = tarfile.SYMTYPE if kind == 'link' else tarfile.LNKTYPE
                ti.linkname = data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


class Hostile(http.server.BaseHTTPRequestHandler):
    files = {}

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype='application/json'):
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split('?', 1)[0]
        base = f'http://127.0.0.1:{self.server.server_port}'
        if path == '/':
            return self.send(200, b'{"workspace":"ws"}')
        if path == f'{DS}/ws/batches/evil/list':
            listing = [
                {'fileName': 'a.tar.gz', 'downloadURL': base + '/f/a', 'contentType': 'archives', 'partName': 'p'},
                {'fileName': '../up.jsonl', 'downloadURL': base + '/f/b', 'contentType': 'metadata'},
                {'fileName': 'ok.jsonl', 'downloadURL': base + '/f/c', 'contentType': 'metadata',
                 'partName': '../../x'},
                {'fileName': 'fine.jsonl', 'downloadURL': base + '/f/d', 'contentType': 'metadata'},
            ]
            return self.send(200, json.dumps({'filesMetadata': listing, 'nextPageToken': None}).encode())
        if path.startswith('/f/'):
            return self.send(200, self.files[path[3:]], 'application/octet-stream')
        self.send(404, b'{"error":"no"}')


def test_export_refuses_hostile_archives(tmp_path):
    Hostile.files = {
        'a': tgz([('good/one.txt', b'one', 'file'), ('../escape.txt', b'x', 'file'),
                  ('/abs.txt', b'x', 'file'), ('link', '/etc/passwd', 'link'),
                  ('good/../../up2.txt', b'x', 'file'), ('two.txt', b'two', 'file'),
                  ('hard', '/etc/passwd', 'hardlink')]),
        'b': b'{}', 'c': b'{}', 'd': b'{"fine":1}\n',
    }
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Hostile)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        out = tmp_path / 'deep' / 'out'
        r = cli(None, 'batch', 'export', 'evil', '--out', str(out), '--server',
                f'http://127.0.0.1:{srv.server_port}', '--api-key', 'k')
    finally:
        srv.shutdown()
    assert r.returncode == 1, r.stderr
    for bad in ('../escape.txt', '/abs.txt', "'link'", "'hard'", 'good/../../up2.txt', '../up.jsonl', '../../x'):
        assert bad in r.stderr, (bad, r.stderr)
    assert (out / 'p' / 'good' / 'one.txt').read_bytes() == b'one'
    assert (out / 'p' / 'two.txt').read_bytes() == b'two'
    assert (out / 'fine.jsonl').read_bytes() == b'{"fine":1}\n'
    assert not (out / 'p' / 'link').exists() and not os.path.lexists(out / 'p' / 'link')
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*') if p.is_file())
    assert found == ['deep/out/fine.jsonl', 'deep/out/p/good/one.txt', 'deep/out/p/two.txt'], found


def test_progress_bar_on_a_terminal(server_factory, tmp_path):
    """On a TTY the upload draws one bar line redrawn with \\r; piped, it
    prints plain lines and no escape codes."""
    import shlex
    import shutil
    if not shutil.which('script'):
        pytest.skip('no script(1)')
    s = server_factory().start()
    imgs = tmp_path / 'imgs'
    make_images(str(imgs), 40, size=32)
    cmd = ' '.join(shlex.quote(a) for a in [BIN, 'batch', 'upload', str(imgs), '--batch', 'tty',
                                             '--shard-size', '5', '--parallel', '1', '--max-rate', '20000'])
    r = subprocess.run(['script', '-qec', cmd, '/dev/null'], capture_output=True, timeout=120 * MULT,
                       env=dict(os.environ, TERM='xterm', VBATCH_SERVER=s.base, VBATCH_API_KEY=s.key))
    assert r.returncode == 0, r.stdout[-2000:]
    out = r.stdout.decode(errors='replace')
    assert '\r\x1b[Kupload [' in out and '#' in out and '100.0%' in out
    assert 'uploaded shard of' not in out  # the plain lines are for pipes
    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'tty2', '--shard-size', '5')
    assert r.returncode == 0 and '\x1b' not in r.stderr and '\r' not in r.stderr
    assert r.stderr.count('uploaded shard of 5 file(s)') == 8


def test_rejected_files_are_reported(server_factory, tmp_path):
    s = server_factory().start()
    imgs = tmp_path / 'imgs'
    make_images(str(imgs), 4)
    (imgs / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'mixed')
    assert r.returncode == 0, r.stderr
    assert 'batch mixed: 4 file(s) staged' in r.stdout
    assert "1 of the files sent were not staged" in r.stderr and "vbatch batch show mixed" in r.stderr
    r = cli(s, 'batch', 'show', 'mixed')
    assert r.returncode == 0 and 'broken.png' in r.stdout


def test_long_names_and_streamed_shards(server_factory, tmp_path):
    """Names that fit a ustar header are streamed; a longer one goes in a
    pax archive built in memory: both arrive intact."""
    s = server_factory().start()
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    long_name = 'x' * 150 + '.png'
    want = {long_name: png_bytes(1), 'b.png': png_bytes(2), 'c.png': png_bytes(3, 64, 64), 'd.png': png_bytes(4)}
    for n, d in want.items():
        (imgs / n).write_bytes(d)
    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'names', '--shard-size', '2')
    assert r.returncode == 0, r.stderr
    assert 'batch names: 4 file(s) staged' in r.stdout
    files = s.ds('GET', '/names/list').json()['filesMetadata']
    assert sorted(f['fileName'] for f in files) == sorted(want)
    for f in files:
        assert s.raw('GET', f['downloadURL']).body == want[f['fileName']]


def test_shard_over_the_server_limit(server_factory, tmp_path):
    """The shard's size is declared when its URL is asked for (contentLength)
    and the server refuses one over its limit (413): no retries, no URL
    handed out, the fix said in one line; smaller shards then go through."""
    s = server_factory(args=['--max-shard-bytes', '20000']).start()
    imgs = tmp_path / 'imgs'
    make_images(str(imgs), 10, size=32)
    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'big')
    assert r.returncode == 1
    assert r.stderr.count("over the server's shard limit (use a smaller --shard-mb or --shard-size)") == 2, r.stderr
    assert 'exceeds the shard limit of 20000 bytes' in r.stderr, r.stderr
    assert 'once fixed, the same command uploads only what is missing' in r.stderr
    r2 = s.ds('GET', '/big/shards')  # no URL handed out (a batch may not even exist)
    assert r2.status == 404 or len(r2.json()['shards']) == 0, r2
    r = cli(s, 'batch', 'upload', str(imgs), '--batch', 'big', '--shard-size', '3')
    assert r.returncode == 0, r.stderr
    assert sorted(listed(s, 'big')) == [f'img{i:04d}.png' for i in range(10)]
