"""The binary's command line: help, unknown commands and options, workspace create."""
import os
import subprocess

from conftest import BIN, MULT


def run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=60 * MULT, env=e)


def test_help_and_errors(tmp_path):
    r = run('--help')
    assert r.returncode == 0 and 'serve' in r.stdout and 'workspace' in r.stdout
    r = run('serve', '--help')
    assert r.returncode == 0 and '--listen' in r.stdout and 'VBATCH_DATA' in r.stdout
    r = run()
    assert r.returncode == 2
    r = run('nosuchcommand')
    assert r.returncode == 2 and 'unknown command' in r.stderr
    r = run('serve', '--nosuchoption')
    assert r.returncode == 2 and 'unknown option' in r.stderr
    r = run('serve', '--threads', 'many')
    assert r.returncode == 2
    r = run('serve', '--listen', 'not-an-address:xx', '--data', str(tmp_path / 'd'))
    assert r.returncode != 0 and 'listen' in r.stderr


def test_workspace_create(tmp_path):
    data = str(tmp_path / 'data')
    r = run('workspace', 'create', 'team-a', '--data', data)
    assert r.returncode == 0, r.stderr
    lines = dict(l.split(': ', 1) for l in r.stdout.splitlines() if ': ' in l)
    assert lines['workspace'] == 'team-a'
    assert lines['api_key'].startswith('vb_')
    r2 = run('workspace', 'create', 'team-b', env={'VBATCH_DATA': data})
    assert r2.returncode == 0
    assert r2.stdout != r.stdout
    assert run('workspace', 'create', 'team-a', '--data', data).returncode == 1
    assert run('workspace', 'create', 'Bad Name', '--data', data).returncode == 2
    assert run('workspace', 'create', '--data', data).returncode == 2
    assert run('workspace', 'delete', 'x').returncode == 2
