"""API keys (docs/API.md "API keys"): `vbatch workspace keys list|add|revoke`
on a running installation.  A key revoked with the CLI is refused by every
`vbatch serve` process on the database within a second (each process caches
verified keys and reads the revocation generation at most every 250 ms),
with the same 401 JSON as an unknown key; a key's last use is recorded;
listings never show a clear key nor another workspace's keys, and another
workspace's key cannot be revoked through this one.  Runs on SQLite (two
processes on one data folder) and on the PostgreSQL database of
VBATCH_TEST_PG (skipped when it is unset)."""
import json
import os
import subprocess
import time
import urllib.parse

import pytest

from conftest import DS, MULT, Server

PG = os.environ.get('VBATCH_TEST_PG', '')


def _psql(sql):
    subprocess.run(['psql', '-X', '-q', PG, '-c', sql], check=True, capture_output=True, timeout=30)


@pytest.fixture(params=['sqlite', 'pg'])
def backend(request):
    """The VBATCH_DB both servers share ('' = SQLite in the data folder)."""
    if request.param == 'sqlite':
        yield ''
        return
    if not PG:
        pytest.skip('VBATCH_TEST_PG is not set')
    name = f'keys_{os.getpid()}_{int(time.time() * 1000)}'
    _psql('CREATE SCHEMA ' + name)
    sep = '&' if '?' in PG else '?'
    yield PG + sep + 'options=' + urllib.parse.quote('-csearch_path=' + name)
    _psql(f'DROP SCHEMA IF EXISTS {name} CASCADE')


def _keys(s, ws):
    r = s.cli('workspace', 'keys', 'list', ws, '--json')
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _add(s, ws, name=None):
    r = s.cli('workspace', 'keys', 'add', ws, *(['--name', name] if name else []))
    assert r.returncode == 0, r.stderr
    out = dict(line.split(': ', 1) for line in r.stdout.splitlines())
    assert out['workspace'] == ws and out['api_key'][3:11] == out['key_id']
    return out['api_key'], out['key_id']


def _whoami(s, key):
    return s.request('GET', '/', key=key)


@pytest.mark.serial  # asserts a latency under 1 s
def test_revoked_key_refused_by_both_servers_within_a_second(tmpdir_path, backend):
    env = {'VBATCH_DB': backend}
    if backend:
        env['VBATCH_PG_EXPERIMENTAL'] = '1'
    s1 = Server(tmpdir_path, args=['--workers', '0'], env=env)
    s2 = Server(tmpdir_path, args=['--workers', '0'], env=env)
    s2.log_path = os.path.join(tmpdir_path, 'server2.log')
    try:
        s1.start()
        s2.key = s1.key
        s2.start()
        leaked, leaked_id = _add(s1, 'default', 'leaked')
        for s in (s1, s2):
            for _ in range(3):  # verified, then served from each process's cache
                r = _whoami(s, leaked)
                assert r.status == 200 and r.json() == {'workspace': 'default'}, r
            r = s.ds('GET', '', key=leaked)
            assert r.status == 200, r
        listed = {k['keyId']: k for k in _keys(s1, 'default')}
        assert listed[leaked_id]['lastUsedAt'] is not None
        assert listed[leaked_id]['active'] is True and listed[leaked_id]['name'] == 'leaked'

        r = s1.cli('workspace', 'keys', 'revoke', 'default', leaked_id)
        assert r.returncode == 0 and 'revoked' in r.stdout, r.stderr
        t0 = time.monotonic()
        pending = {id(s1): s1, id(s2): s2}
        refused_after = {}
        while pending and time.monotonic() - t0 < 5:
            for k, s in list(pending.items()):
                if _whoami(s, leaked).status != 200:
                    refused_after[k] = time.monotonic() - t0
                    del pending[k]
            time.sleep(0.01)
        assert not pending, 'a server still accepts the revoked key after 5 s'
        assert max(refused_after.values()) < 1.0, refused_after

        # the revoked key is answered like an unknown one, on every route
        unknown = 'vb_' + 'x' * 37
        for s in (s1, s2):
            for path in ('/', f'{DS}/default/batches'):
                r, u = s.request('GET', path, key=leaked), s.request('GET', path, key=unknown)
                assert r.status == 401 and r.headers.get('Content-Type', '').startswith('application/json'), r
                assert r.json() == u.json() == {'error': 'unknown api_key'}, (r, u)
            # the workspace's other key still works everywhere
            assert _whoami(s, s1.key).status == 200
        listed = {k['keyId']: k for k in _keys(s1, 'default')}
        assert listed[leaked_id]['active'] is False and listed[leaked_id]['revokedAt']
        # revoking again says so and changes nothing
        r = s1.cli('workspace', 'keys', 'revoke', 'default', leaked_id)
        assert r.returncode == 0 and 'already revoked' in r.stdout, r
    finally:
        for s in (s2, s1):
            if s.proc and s.proc.poll() is None:
                assert s.stop() == 0, s.tail_log()


def test_list_hides_clear_keys_and_other_workspaces(server_factory):
    s = server_factory(args=['--workers', '0']).start()
    extra, extra_id = _add(s, 'default', 'ci')
    r = s.cli('workspace', 'create', 'other')
    assert r.returncode == 0, r.stderr
    other = r.stdout.split('api_key: ')[1].split()[0]
    other_id = other[3:11]

    assert _whoami(s, s.key).status == 200
    listing = _keys(s, 'default')
    assert {k['keyId'] for k in listing} == {s.key[3:11], extra_id}
    text = json.dumps(listing) + s.cli('workspace', 'keys', 'list', 'default').stdout
    for secret in (s.key, extra, other):
        assert secret not in text and secret[11:] not in text
    assert other_id not in text
    assert set(listing[0]) == {'keyId', 'name', 'createdAt', 'lastUsedAt', 'revokedAt', 'active'}
    # the startup key was just used; the new one not yet
    byid = {k['keyId']: k for k in listing}
    assert isinstance(byid[s.key[3:11]]['lastUsedAt'], str)
    assert byid[extra_id]['lastUsedAt'] is None

    # another workspace's key cannot be revoked through this one
    r = s.cli('workspace', 'keys', 'revoke', 'default', other_id)
    assert r.returncode == 1 and "has no key" in r.stderr, r
    assert _whoami(s, other).json() == {'workspace': 'other'}
    assert [k['active'] for k in _keys(s, 'other')] == [True]
    # nor can a workspace key reach another workspace's routes
    r = s.request('GET', f'{DS}/other/batches', key=extra)
    assert r.status == 403 and 'error' in r.json(), r

    # bad input: clear messages, no crash
    r = s.cli('workspace', 'keys', 'revoke', 'default', 'NOT-AN-ID')
    assert r.returncode == 1 and 'not a key id' in r.stderr, r
    r = s.cli('workspace', 'keys', 'list', 'nosuch')
    assert r.returncode == 1 and "no workspace 'nosuch'" in r.stderr, r
    r = s.cli('workspace', 'keys', 'add', 'default', '--name', 'x' * 65)
    assert r.returncode == 2 and 'key names' in r.stderr, r
    r = s.cli('workspace', 'keys', 'frobnicate', 'default')
    assert r.returncode == 2 and 'usage' in r.stderr, r
    assert _whoami(s, s.key).status == 200
