"""The installation secret lives in the database (issue 11, item 3): two
`serve` processes with DIFFERENT data folders on one PostgreSQL database
accept each other's page tokens and signed URLs.  `--secret-file` /
`VBATCH_SECRET_FILE` gives the secret explicitly (here to two SQLite
servers that share nothing else)."""
import os
import shutil
import subprocess
import urllib.parse
import uuid

import pytest

from conftest import E2E_S3, Server, picks_its_database, png_bytes

pytestmark = [picks_its_database,  # its own schema / both backends: not again in the [pg] pass
              # vbatch's own signed URLs shared between servers: with blobs on S3 the
              # store signs the /list URLs of whole objects
              pytest.mark.skipif(bool(E2E_S3), reason="vbatch's own signed URLs (on S3: the store's)")]

PG = os.environ.get('VBATCH_TEST_PG', '')
need_pg = pytest.mark.skipif(not PG or not shutil.which('psql'), reason='VBATCH_TEST_PG not set or no psql')


def psql(uri, sql):
    subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', uri, '-c', sql], check=True,
                   capture_output=True, text=True, timeout=30)


@pytest.fixture
def pg_schema():
    name = 't_e2e_' + uuid.uuid4().hex[:12]
    psql(PG, 'CREATE SCHEMA ' + name)
    sep = '&' if '?' in PG else '?'
    yield PG + sep + 'options=' + urllib.parse.quote('-csearch_path=' + name)
    psql(PG, 'DROP SCHEMA IF EXISTS %s CASCADE' % name)


@pytest.fixture
def servers():
    started = []
    yield started
    for s in started:
        if s.proc and s.proc.poll() is None:
            assert s.stop() == 0, s.tail_log()


def on(s, url):
    """The signed URL url (made by another server) sent to server s."""
    u = urllib.parse.urlsplit(url)
    return s.raw('GET', u.path + '?' + u.query)


@need_pg
def test_two_servers_with_own_data_folders_share_tokens_and_signed_urls(tmp_path, pg_schema, servers):
    env = {'VBATCH_DB': pg_schema}
    os.makedirs(tmp_path / 'a')
    os.makedirs(tmp_path / 'b')
    a = Server(str(tmp_path / 'a'), args=['--workers', '0'], env=env)
    servers.append(a)
    a.start()
    b = Server(str(tmp_path / 'b'), args=['--workers', '0'], env=env, key=a.key)
    servers.append(b)
    b.start()
    images = {f'img{i}.png': png_bytes(i) for i in range(7)}
    for name, data in images.items():  # uploaded on a: the blobs are in a's folder
        r = a.upload_image('shared', name, data)
        assert r.status == 200, r
    assert b.wait_count('shared', 7) == 7
    # pages alternate between the servers: each takes the other's token
    seen, token, pages = {}, None, 0
    while True:
        s = (a, b)[pages % 2]
        q = {'pageSize': 3}
        if token:
            q['nextPageToken'] = token
        r = s.ds('GET', '/shared/list', query=q)
        assert r.status == 200, r
        for f in r.json()['filesMetadata']:
            assert f['fileName'] not in seen
            seen[f['fileName']] = f
        pages += 1
        token = r.json()['nextPageToken']
        if token is None:
            break
    assert sorted(seen) == sorted(images) and pages == 3
    # b signs download URLs (naming b's address); a, which holds the
    # blobs, accepts b's signatures
    files = b.ds('GET', '/shared/list', query={'pageSize': 100}).json()['filesMetadata']
    assert sorted(f['fileName'] for f in files) == sorted(images)
    for f in files:
        assert f['downloadURL'].startswith(f'http://127.0.0.1:{b.port}/blobs/'), f
        g = on(a, f['downloadURL'])
        assert g.status == 200, (f['fileName'], g)
        assert g.body == images[f['fileName']]
    # a tampered signature is still refused
    url = files[0]['downloadURL']
    bad = url.replace('signature=', 'signature=A') if 'signature=A' not in url else url.replace('signature=A',
                                                                                               'signature=B')
    assert on(a, bad).status == 403
    # both data folders hold the same DATA/secret (what webhook receivers get)
    with open(os.path.join(a.data, 'secret'), 'rb') as fa, open(os.path.join(b.data, 'secret'), 'rb') as fb:
        assert fa.read() == fb.read()


def test_secret_file_given_to_two_sqlite_servers(tmp_path, servers):
    secret = tmp_path / 'secret.hex'
    secret.write_text(os.urandom(32).hex() + '\n')
    made = []
    for name, extra in (('c', ['--secret-file', str(secret)]), ('d', []), ('e', [])):
        os.makedirs(tmp_path / name)
        env = {'VBATCH_SECRET_FILE': str(secret)} if name == 'd' else {}
        s = Server(str(tmp_path / name), args=['--workers', '0'] + extra, env=env)
        servers.append(s)
        made.append(s.start())
    c, d, e = made
    assert c.upload_image('b1', 'x.png', png_bytes(1)).status == 200
    f = c.ds('GET', '/b1/list').json()['filesMetadata'][0]
    assert on(c, f['downloadURL']).status == 200
    # d has the same secret but not the blob (its own database): the
    # signature passes, the blob is not found; e signs with its own secret
    assert on(d, f['downloadURL']).status == 404
    assert on(e, f['downloadURL']).status == 403
    with open(os.path.join(d.data, 'secret'), 'rb') as fd:
        assert fd.read() == bytes.fromhex(secret.read_text().strip())
    # a bad secret file: one line, exit status 2
    bad = tmp_path / 'bad'
    bad.write_text('too short\n')
    from conftest import BIN
    p = subprocess.run([BIN, 'serve', '--data', str(tmp_path / 'f'), '--secret-file', str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert 'must hold 32 bytes or 64 hex digits' in p.stderr
