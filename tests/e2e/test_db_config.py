"""--db / VBATCH_DB: which database a command opens, and the start-up errors
(one line on stderr, exit status 2, never the password).

The PostgreSQL cases need VBATCH_TEST_PG (scripts/test.sh starts a
throwaway cluster with scripts/pg-up.sh and sets it) and psql; each uses a
schema of its own.  Every command runs on PostgreSQL (the whole e2e suite
runs there too: VBATCH_E2E_DB=pg, scripts/test.sh)."""
import os
import shutil
import sqlite3
import subprocess
import tempfile
import urllib.parse
import uuid

import pytest

from conftest import BIN, MULT, REPO, picks_its_database

pytestmark = picks_its_database  # its own schema / both backends: not again in the [pg] pass

PG = os.environ.get('VBATCH_TEST_PG', '')
need_pg = pytest.mark.skipif(not PG or not shutil.which('psql'), reason='VBATCH_TEST_PG not set or no psql')


def run(*args, env=None, timeout=60):
    e = dict(os.environ)
    e.pop('VBATCH_DB', None)
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout * MULT, env=e)


def error_lines(p):
    """stderr without the log lines (timestamped)."""
    return [l for l in p.stderr.splitlines() if l and not l[:4].isdigit()]


def psql(uri, sql):
    subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', uri, '-c', sql], check=True,
                   capture_output=True, text=True, timeout=30)


@pytest.fixture
def pg_schema():
    """A fresh schema on the test cluster: the URI whose search_path is it."""
    name = 't_e2e_' + uuid.uuid4().hex[:12]
    psql(PG, 'CREATE SCHEMA ' + name)
    sep = '&' if '?' in PG else '?'
    yield PG + sep + 'options=' + urllib.parse.quote('-csearch_path=' + name)
    psql(PG, 'DROP SCHEMA IF EXISTS %s CASCADE' % name)


def test_bad_url_and_unreachable_server_exit_2_without_password(tmp_path):
    for cmd in (['serve'], ['worker'], ['workspace', 'create', 'w1'], ['model', 'list']):
        p = run(*cmd, '--data', str(tmp_path), '--db', 'postgres://u:s3cret-pw@host:notaport/db')
        assert p.returncode == 2, (cmd, p.stderr)
        lines = error_lines(p)
        assert len(lines) == 1 and 'bad database URL' in lines[0], (cmd, p.stderr)
        assert 's3cret-pw' not in p.stderr + p.stdout
    # a URL of another scheme is a bad URL, not the name of a SQLite file
    p = run('serve', '--data', str(tmp_path), '--db', 'mysql://u:s3cret-pw@host/db')
    assert p.returncode == 2, p.stderr
    lines = error_lines(p)
    assert len(lines) == 1 and 'bad database URL' in lines[0] and "'mysql://'" in lines[0], p.stderr
    assert 's3cret-pw' not in p.stderr + p.stdout
    p = run('serve', '--data', str(tmp_path), env={'VBATCH_DB': 'postgresql://u:s3cret-pw@127.0.0.1:1/db'})
    assert p.returncode == 2, p.stderr
    lines = error_lines(p)
    assert len(lines) == 1 and 'cannot reach the server' in lines[0], p.stderr
    assert 'u:***@127.0.0.1:1' in lines[0] and 's3cret-pw' not in p.stderr + p.stdout


def test_sqlite_database_from_a_newer_vbatch_exit_2(tmp_path):
    p = run('workspace', 'create', 'w1', '--data', str(tmp_path))
    assert p.returncode == 0, p.stderr
    con = sqlite3.connect(str(tmp_path / 'vbatch.db'))
    con.execute("UPDATE schema_versions SET version=99 WHERE component='core'")
    con.commit()
    con.close()
    p = run('workspace', 'create', 'w2', '--data', str(tmp_path))
    assert p.returncode == 2, p.stderr
    lines = error_lines(p)
    assert len(lines) == 1 and 'newer vbatch' in lines[0], p.stderr


@need_pg
def test_wrong_password_exit_2(tmp_path):
    u = urllib.parse.urlsplit(PG)
    bad = PG.replace(':' + u.password + '@', ':wrong-pw-42@', 1)
    p = run('worker', '--data', str(tmp_path), '--db', bad)
    assert p.returncode == 2, p.stderr
    lines = error_lines(p)
    assert len(lines) == 1 and 'wrong user or password' in lines[0], p.stderr
    assert 'wrong-pw-42' not in p.stderr and u.password not in p.stderr


@need_pg
def test_workspace_create_on_postgres(tmp_path, pg_schema):
    p = run('workspace', 'create', 'team-a', '--data', str(tmp_path), '--db', pg_schema)
    assert p.returncode == 0, p.stderr
    assert 'api_key: vb_' in p.stdout
    # the row is in PostgreSQL, not in a SQLite file of the data folder
    assert not (tmp_path / 'vbatch.db').exists()
    other = tempfile.mkdtemp()
    try:
        p = run('workspace', 'create', 'team-a', '--data', other, env={'VBATCH_DB': pg_schema})
        assert p.returncode == 1 and 'already exists' in p.stderr, p.stderr
    finally:
        shutil.rmtree(other)


@need_pg
def test_models_on_postgres(tmp_path, pg_schema):
    det = os.path.join(REPO, 'tests', 'data', 'models', 'synth-det')
    assert run('workspace', 'create', 'ws1', '--data', str(tmp_path), '--db', pg_schema).returncode == 0
    p = run('model', 'register', 'cli/1', det, '--data', str(tmp_path), '--db', pg_schema)
    assert p.returncode == 0 and 'registered: cli/1' in p.stdout, p.stderr
    p = run('model', 'register', 'w/1', det, '--workspace', 'ws1', '--data', str(tmp_path),
            env={'VBATCH_DB': pg_schema})
    assert p.returncode == 0 and 'workspace ws1' in p.stdout, p.stderr
    p = run('model', 'list', '--workspace', 'ws1', '--data', str(tmp_path), '--db', pg_schema)
    assert p.returncode == 0, p.stderr
    assert [l.split('\t')[0] for l in p.stdout.splitlines()] == ['cli/1', 'w/1']
    p = run('model', 'delete', 'cli/1', '--data', str(tmp_path), '--db', pg_schema)
    assert p.returncode == 0 and 'deleted: cli/1' in p.stdout, p.stderr
    # the rows live in PostgreSQL: no SQLite file in the data folder
    assert not (tmp_path / 'vbatch.db').exists()
    out = subprocess.run(['psql', '-X', '-At', pg_schema, '-c', 'SELECT workspace, model_id FROM models'],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ['ws1|w/1']


@need_pg
def test_serve_and_worker_run_on_postgres(tmp_path, pg_schema):
    """serve and worker take a PostgreSQL database without any opt-in:
    serve answers /healthz and an authenticated call, a worker on the same
    database starts and stops cleanly, and nothing is written to a SQLite
    file of the data folder."""
    import http.client
    import signal
    import time
    from conftest import free_port
    pw = urllib.parse.urlsplit(PG).password
    e = dict(os.environ)
    e.pop('VBATCH_DB', None)
    e.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=1')
    out, err = tmp_path / 'out', tmp_path / 'err'
    key = None
    for attempt in range(5):
        # free_port's port can be taken by another process of the parallel
        # passes before vbatch binds it: another port, keeping the key the
        # first start printed (as conftest's Server.start)
        port = free_port()
        with open(out, 'wb') as fo, open(err, 'wb') as fe:
            srv = subprocess.Popen([BIN, 'serve', '--listen', f'127.0.0.1:{port}', '--data', str(tmp_path / 'd'),
                                    '--db', pg_schema], stdout=fo, stderr=fe, env=e)
        deadline, status = time.time() + 30 * MULT, None
        serving = f'main: serving listen=127.0.0.1:{port} '  # this process answers, not another one
        while time.time() < deadline and srv.poll() is None and not (status == 200 and serving in err.read_text()):
            try:
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
                c.request('GET', '/healthz')
                status = c.getresponse().status
                c.close()
            except OSError:
                pass
            time.sleep(0.05)
        key = key or next((ln.split()[1] for ln in out.read_text().splitlines() if ln.startswith('api_key: ')),
                          None)
        if srv.poll() is None or attempt == 4 or 'Address already in use' not in err.read_text():
            break
    try:
        assert srv.poll() is None, err.read_text()[-3000:]
        assert status == 200, err.read_text()[-3000:]
        assert key, out.read_text()
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=30 * MULT)
        c.request('GET', f'/data-staging/v1/external/default/batches?api_key={key}')
        r = c.getresponse()
        assert r.status == 200, r.read()
        c.close()
        wout = tmp_path / 'wout'
        with open(wout, 'wb') as fo:
            w = subprocess.Popen([BIN, 'worker', '--data', str(tmp_path / 'd'), '--workers', '1'],
                                 stdout=fo, stderr=subprocess.PIPE, env=dict(e, VBATCH_DB=pg_schema))
        # SIGTERM only once it runs ("worker: N threads ..."): before it has
        # blocked the signal (a loaded machine, ASan start-up) TERM kills it
        deadline = time.time() + 30 * MULT
        while time.time() < deadline and 'worker:' not in wout.read_text() and w.poll() is None:
            time.sleep(0.05)
        assert w.poll() is None, w.stderr.read()
        assert 'worker:' in wout.read_text()
        w.send_signal(signal.SIGTERM)
        _, werr = w.communicate(timeout=30 * MULT)
        assert w.returncode == 0, werr
        assert pw.encode() not in werr
    finally:
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(timeout=30 * MULT) == 0, err.read_text()[-3000:]
    assert pw not in err.read_text() + out.read_text()
    assert not (tmp_path / 'd' / 'vbatch.db').exists()
    # the workspace and its key are rows of the PostgreSQL schema
    rows = subprocess.run(['psql', '-X', '-At', pg_schema, '-c', 'SELECT name FROM workspaces'],
                          capture_output=True, text=True, check=True).stdout.split()
    assert rows == ['default'], rows


@need_pg
def test_postgres_database_from_a_newer_vbatch_exit_2(tmp_path, pg_schema):
    assert run('workspace', 'create', 'w1', '--data', str(tmp_path), '--db', pg_schema).returncode == 0
    psql(pg_schema, "UPDATE schema_versions SET version=99 WHERE component='core'")
    p = run('workspace', 'create', 'w2', '--data', str(tmp_path), '--db', pg_schema)
    assert p.returncode == 2, p.stderr
    lines = error_lines(p)
    assert len(lines) == 1 and 'newer vbatch' in lines[0], p.stderr
