"""End-to-end harness: start the real vbatch binary on a free port with a
temporary data folder, wait for /healthz, talk to it over HTTP with the
standard library only, kill it afterwards.

VBATCH_BIN selects the binary (default: build-san/vbatch, as scripts/test.sh
sets it).  TEST_TIMEOUT_MULT scales the waits (sanitizer builds are slower).
Responses under /data-staging/ and /batch-processing/ are checked against
the published OpenAPI documents with ../shared/tools/openapi_check.py and
against the OpenAPI snippets of the seed reference (../shared/seed/*.md) (the
shared folder sits next to the repository, in CI as here).
"""
import http.client
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import zlib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The read-only reference folder: $VBATCH_SHARED, else next to the
# repository, else where this machine keeps it (a clean clone elsewhere
# still validates against the OpenAPI documents).
SHARED = next((d for d in (os.environ.get('VBATCH_SHARED'),
                           os.path.normpath(os.path.join(REPO, '..', 'shared')), '/work/shared')
               if d and os.path.isdir(d)), os.path.normpath(os.path.join(REPO, '..', 'shared')))
sys.path.insert(0, os.path.join(SHARED, 'tools'))
try:
    from openapi_check import check as _openapi_check  # noqa: E402
except ImportError:  # pragma: no cover - shared folder missing
    _openapi_check = None

BIN = os.environ.get('VBATCH_BIN') or os.path.join(REPO, 'build-san', 'vbatch')
MULT = max(1, int(os.environ.get('TEST_TIMEOUT_MULT', '1') or 1))
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')
DS = '/data-staging/v1/external'
BP = '/batch-processing/v1/external'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def png_bytes(seed, w=8, h=8):
    """A valid, unique RGB PNG written by hand (zlib + CRCs)."""
    def chunk(kind, data):
        c = struct.pack('>I', len(data)) + kind + data
        return c + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    rows = b''
    state = (seed * 2654435761 + 12345) & 0xffffffff
    for y in range(h):
        row = bytearray(b'\x00')
        for _ in range(w * 3):  # xorshift noise: barely compressible
            state ^= (state << 13) & 0xffffffff
            state ^= state >> 17
            state ^= (state << 5) & 0xffffffff
            row.append(state & 0xff)
        rows += bytes(row)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def jpeg_bytes():
    with open(os.path.join(DATA, 'tiny.jpg'), 'rb') as f:
        return f.read()


def make_tar(members):
    """members: list of (name, bytes) or tarfile.TarInfo with data None."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=tarfile.USTAR_FORMAT) as t:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                t.addfile(m)
            else:
                name, data = m
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                ti.mtime = 1700000000
                t.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def multipart(fields):
    """fields: list of (name, filename or None, bytes).  Returns (ctype, body)."""
    boundary = 'vbatchtestboundary7d3a'
    out = b''
    for name, filename, data in fields:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else '')
        out += f'--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n'.encode() + data + b'\r\n'
    out += f'--{boundary}--\r\n'.encode()
    return f'multipart/form-data; boundary={boundary}', out


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f'<{self.status} {self.body[:300]!r}>'


# VBATCH_E2E_DB=pg runs the servers — and every other process a test
# starts on a data folder: `vbatch worker`, CLI commands, restarts — on the
# PostgreSQL database of VBATCH_TEST_PG instead of SQLite: each data folder
# gets a schema of its own (a restart on the same folder finds its rows),
# through VBATCH_DB (db_env).  scripts/test.sh runs the suite this way a
# second time, its tests named [pg].  Tests about SQLite itself (its file,
# its migrations) are marked sqlite_only and skipped there.
E2E_PG = os.environ.get('VBATCH_TEST_PG', '') if os.environ.get('VBATCH_E2E_DB') == 'pg' else ''
_pg_schemas = set()


def _pg_schema(data):
    import hashlib
    return 'e2e_' + hashlib.sha1(os.path.abspath(data).encode()).hexdigest()[:16]


def pg_db_for(data):
    """The VBATCH_DB of a data folder on E2E_PG: a fresh schema the first time."""
    name = _pg_schema(data)
    if name not in _pg_schemas:
        subprocess.run(['psql', '-X', '-q', E2E_PG, '-c', 'CREATE SCHEMA IF NOT EXISTS ' + name],
                       check=True, capture_output=True, timeout=30)
        _pg_schemas.add(name)
    sep = '&' if '?' in E2E_PG else '?'
    return E2E_PG + sep + 'options=' + urllib.parse.quote('-csearch_path=' + name)


def _drop_schemas(names):
    """Best effort: a schema still locked by a straggler stays (the test
    cluster goes away with its folder)."""
    try:
        subprocess.run(['psql', '-X', '-q', E2E_PG, '-c', "SET lock_timeout = '10s'", '-c',
                        '; '.join('DROP SCHEMA IF EXISTS %s CASCADE' % n for n in names)],
                       capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        pass


def drop_pg_schema(data):
    """Drop the schema of a data folder whose test is over (on PostgreSQL)."""
    name = _pg_schema(data)
    if E2E_PG and name in _pg_schemas:
        _pg_schemas.discard(name)
        _drop_schemas([name])


def db_env(data):
    """The environment that puts a vbatch process on data's database: {} on
    SQLite (the file in the folder), VBATCH_DB on PostgreSQL."""
    return {'VBATCH_DB': pg_db_for(data)} if E2E_PG else {}


def _pg_inline(sql, params):
    """sql with its ? parameters replaced by PostgreSQL literals."""
    parts = sql.split('?')
    assert len(parts) == len(params) + 1, sql
    lit = []
    for v in params:
        if v is None:
            lit.append('NULL')
        elif isinstance(v, (int, float)):
            lit.append(repr(v))
        else:
            lit.append("'" + str(v).replace("'", "''") + "'")
    return parts[0] + ''.join(l + p for l, p in zip(lit, parts[1:]))


def db_exec(data, sql, params=()):
    """Run one statement that changes rows of a data folder's database
    behind vbatch's back (committed), on either backend (SQLite's dialect,
    ? parameters as db_rows)."""
    if not E2E_PG:
        import sqlite3
        db = sqlite3.connect(os.path.join(data, 'vbatch.db'), timeout=30)
        try:
            with db:
                db.execute(sql, tuple(params))
        finally:
            db.close()
        return
    subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', pg_db_for(data), '-c', _pg_inline(sql, params)],
                   check=True, capture_output=True, text=True, timeout=30)


def db_rows(data, sql, params=()):
    """Rows of a query on the database of a data folder, as tuples, on
    either backend (sql in SQLite's dialect with ? parameters; on
    PostgreSQL the parameters are inlined as literals and the rows come
    back typed through JSON)."""
    if not E2E_PG:
        import sqlite3
        db = sqlite3.connect(os.path.join(data, 'vbatch.db'), timeout=10)
        try:
            return db.execute(sql, tuple(params)).fetchall()
        finally:
            db.close()
    q = _pg_inline(sql, params)
    out = subprocess.run(['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', pg_db_for(data), '-c',
                          'SELECT coalesce(json_agg(row_to_json(t)), \'[]\') FROM (%s) t' % q],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return [tuple(r.values()) for r in json.loads(out)]  # columns in order, uniquely named


sqlite_only = pytest.mark.skipif(bool(E2E_PG), reason='about SQLite itself (VBATCH_E2E_DB=pg)')
# A module whose tests choose their databases themselves (a schema of
# VBATCH_TEST_PG, or both backends as parameters): they run once, in the
# SQLite pass; the PostgreSQL pass would repeat them as they are.
picks_its_database = pytest.mark.picks_its_database


# VBATCH_E2E_BLOBS=s3 runs the servers — and every other process a test
# starts on a data folder: workers, CLI commands (Server.child_env,
# data_env) — with their blobs on the S3 store of VBATCH_TEST_S3 (AWS_*
# credentials set, as scripts/test.sh does), each data folder under a prefix
# of its own.  scripts/test.sh runs the suite this way a third time, on
# PostgreSQL too, its tests named [pg][s3].  Tests look at stored bytes
# through Blobs (below), whatever the backend; the few about the local
# folder itself are marked local_blobs_only; modules that choose their blob
# stores themselves (test_blobs_s3) are marked picks_its_blobs and run in
# the other passes only.
S3_PRESIGN_CREDS = os.environ.get('VBATCH_TEST_S3_PRESIGN_CREDENTIALS', '')
E2E_S3 = os.environ.get('VBATCH_TEST_S3', '') if os.environ.get('VBATCH_E2E_BLOBS') == 's3' else ''


# The test store of VBATCH_TEST_S3 with its credentials, whatever the pass
# (the tests that pick their own blob stores use it in every pass).
TEST_S3 = os.environ.get('VBATCH_TEST_S3', '') if os.environ.get('AWS_SECRET_ACCESS_KEY') else ''
need_s3 = pytest.mark.skipif(not TEST_S3, reason='VBATCH_TEST_S3 / AWS credentials not set')


def s3_prefix_url(prefix, base=None, endpoint=None):
    """The s3:// VBATCH_BLOBS URL of the objects under PREFIX of the bucket of
    base (default VBATCH_TEST_S3); endpoint replaces the store's endpoint
    (a proxy in front of it)."""
    u = urllib.parse.urlsplit(base or os.environ.get('VBATCH_TEST_S3', ''))
    query = u.query
    if endpoint:
        query = urllib.parse.urlencode(dict(urllib.parse.parse_qsl(u.query), endpoint=endpoint))
    pre = u.path.strip('/')
    return f's3://{u.netloc}/{pre + "/" if pre else ""}{prefix}?{query}'


def s3_blobs_for(data):
    """The VBATCH_BLOBS of a data folder on E2E_S3: the bucket under a prefix
    named after the folder."""
    import hashlib
    return s3_prefix_url('e2e-' + hashlib.sha1(os.path.abspath(data).encode()).hexdigest()[:16], E2E_S3)


def blobs_env(data):
    """The VBATCH_BLOBS that puts a vbatch process on data's blob store: {}
    on the local folder, the data folder's prefix of E2E_S3 on S3."""
    return {'VBATCH_BLOBS': s3_blobs_for(data)} if E2E_S3 else {}


def data_env(data):
    """Everything a vbatch process on data needs besides --data: its
    database (db_env) and its blob store (blobs_env)."""
    env = db_env(data)
    env.update(blobs_env(data))
    return env


# ---- blobs whatever the backend ---------------------------------------------
# Tests that look at, damage or plant stored bytes (a shard cut short, an
# orphan model folder, "nothing left after a delete") do it through Blobs:
# files under DATA/blobs on the local folder, objects of the bucket under the
# data folder's prefix on S3 (a small SigV4 client on the standard library,
# credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY as vbatch's).

def _sigv4_headers(method, host, path, query, region, access, secret, token=None, payload=b''):
    """Headers of a SigV4-signed S3 request (header signing; path already
    URI-encoded; query a list of (key, value) pairs)."""
    import hashlib
    import hmac
    now = time.gmtime()
    amz_date = time.strftime('%Y%m%dT%H%M%SZ', now)
    day = amz_date[:8]
    phash = hashlib.sha256(payload).hexdigest()
    headers = {'host': host, 'x-amz-content-sha256': phash, 'x-amz-date': amz_date}
    if token:
        headers['x-amz-security-token'] = token
    enc = lambda s: urllib.parse.quote(str(s), safe='-_.~')  # noqa: E731
    cquery = '&'.join(f'{enc(k)}={enc(v)}' for k, v in sorted(query))
    names = sorted(headers)
    creq = '\n'.join([method, path, cquery, ''.join(f'{n}:{headers[n]}\n' for n in names),
                      ';'.join(names), phash])
    scope = f'{day}/{region}/s3/aws4_request'
    sts = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ('AWS4' + secret).encode()
    for part in (day, region, 's3', 'aws4_request'):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    headers['authorization'] = (f'AWS4-HMAC-SHA256 Credential={access}/{scope}, '
                                f'SignedHeaders={";".join(names)}, Signature={sig}')
    return headers


class Blobs:
    """The blob store of a data folder: the local folder DATA/blobs, or the
    objects under the prefix of an s3:// VBATCH_BLOBS URL.  Keys are blob
    keys (b/<bid>/s/<shard>.tar, models/<dn>/<gen>/weights.onnx, ...)."""

    def __init__(self, data, blobs_url=None, env=None):
        self.root = os.path.join(data, 'blobs')
        self.url = blobs_url or None
        if self.url:
            u = urllib.parse.urlsplit(self.url)
            q = dict(urllib.parse.parse_qsl(u.query))
            self.bucket = u.netloc
            self.prefix = u.path.strip('/')
            ep = urllib.parse.urlsplit(q.get('endpoint') or f'https://s3.{q.get("region", "us-east-1")}.amazonaws.com')
            assert ep.scheme == 'http', 'the e2e S3 client speaks plain http (radosgw on loopback)'
            self.host, self.port = ep.hostname, ep.port or 80
            self.region = q.get('region', 'us-east-1')
            self.path_style = q.get('path_style', '0') == '1'
            e = env or os.environ
            self.creds = (e['AWS_ACCESS_KEY_ID'], e['AWS_SECRET_ACCESS_KEY'], e.get('AWS_SESSION_TOKEN'))

    @property
    def s3(self):
        return bool(self.url)

    def describe(self):
        return self.url or self.root

    # -- S3 ---------------------------------------------------------------
    def _object(self, key):
        return f'{self.prefix}/{key}' if self.prefix else key

    def _req(self, method, key=None, query=(), body=b'', headers=None, ok=(200, 204, 206)):
        host = f'{self.host}:{self.port}'
        path = '/'
        if self.path_style:
            path += self.bucket + ('/' if key is not None else '')
        else:
            host = f'{self.bucket}.{host}'
        if key is not None:
            path += urllib.parse.quote(self._object(key), safe='/-_.~')
        h = _sigv4_headers(method, host, path, list(query), self.region, *self.creds, payload=body)
        h.update(headers or {})
        url = path + ('?' + '&'.join(f'{urllib.parse.quote(str(k), safe="-_.~")}='
                                     f'{urllib.parse.quote(str(v), safe="-_.~")}' for k, v in query)
                      if query else '')
        c = http.client.HTTPConnection(self.host, self.port, timeout=60 * MULT)
        try:
            c.request(method, url, body=body, headers=h)
            r = c.getresponse()
            resp = Response(r.status, dict(r.getheaders()), r.read())
        finally:
            c.close()
        if ok is not None and resp.status not in ok:
            raise AssertionError(f'S3 {method} {url}: {resp}')
        return resp

    # -- the interface ----------------------------------------------------
    def list(self, prefix=''):
        """{key: size} of every blob whose key starts with prefix (a folder
        'b/3' or 'b/3/' or a key's beginning)."""
        if not self.s3:
            out = {}
            for d, _, files in os.walk(self.root):
                for f in files:
                    p = os.path.join(d, f)
                    k = os.path.relpath(p, self.root)
                    if k.startswith(prefix):
                        try:
                            out[k] = os.path.getsize(p)
                        except FileNotFoundError:
                            pass  # deleted meanwhile
            return out
        import re
        full = self._object(prefix) if prefix else (self.prefix + '/' if self.prefix else '')
        out, token = {}, None
        while True:
            q = [('list-type', '2'), ('max-keys', '1000'), ('prefix', full)]
            if token:
                q.append(('continuation-token', token))
            body = self._req('GET', query=q).body.decode()
            for c in re.findall(r'<Contents>(.*?)</Contents>', body, re.S):
                k = re.search(r'<Key>([^<]*)</Key>', c).group(1)
                k = k.replace('&amp;', '&').replace('&lt;', '<').replace('&gt;', '>').replace('&quot;', '"').replace('&apos;', "'")
                size = int(re.search(r'<Size>(\d+)</Size>', c).group(1))
                out[k[len(self.prefix) + 1:] if self.prefix else k] = size
            m = re.search(r'<NextContinuationToken>([^<]*)</NextContinuationToken>', body)
            if '<IsTruncated>true</IsTruncated>' not in body or not m:
                return out
            token = m.group(1)

    def keys(self, prefix=''):
        return sorted(self.list(prefix))

    def exists(self, key):
        if not self.s3:
            return os.path.isfile(os.path.join(self.root, key))
        return self._req('HEAD', key, ok=(200, 404)).status == 200

    def read(self, key):
        if not self.s3:
            with open(os.path.join(self.root, key), 'rb') as f:
                return f.read()
        return self._req('GET', key).body

    def write(self, key, data):
        """Create or replace a blob (behind vbatch's back)."""
        if not self.s3:
            p = os.path.join(self.root, key)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, 'wb') as f:
                f.write(data)
            return
        self._req('PUT', key, body=data)

    def patch(self, key, offset, data):
        """Overwrite len(data) bytes at offset in place (S3: the object is
        rewritten whole)."""
        if not self.s3:
            with open(os.path.join(self.root, key), 'r+b') as f:
                f.seek(offset)
                f.write(data)
            return
        old = self.read(key)
        self.write(key, old[:offset] + data + old[offset + len(data):])

    def delete(self, key):
        if not self.s3:
            os.unlink(os.path.join(self.root, key))
            return
        self._req('DELETE', key, ok=(204, 200, 404))

    def mtime(self, key):
        """Modification time (unix seconds)."""
        if not self.s3:
            return os.path.getmtime(os.path.join(self.root, key))
        import email.utils
        r = self._req('HEAD', key)
        return email.utils.parsedate_to_datetime(r.headers['Last-Modified']).timestamp()


def blob_of_url(s, url):
    """(key, offset, length) of the blob a signed download URL reads:
    vbatch's /blobs/<key>?… (offset and length for an image of a tar shard,
    else None) or, with blobs on S3, the store's presigned URL of object
    <prefix>/<key>."""
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qs(u.query)
    if u.path.startswith('/blobs/'):
        key = urllib.parse.unquote(u.path[len('/blobs/'):])
        if 'offset' in q:
            return key, int(q['offset'][0]), int(q['length'][0])
        return key, None, None
    b = s.blobs
    assert b.s3, url
    path = urllib.parse.unquote(u.path).lstrip('/')
    if b.path_style:
        assert path.startswith(b.bucket + '/'), url
        path = path[len(b.bucket) + 1:]
    if b.prefix:
        assert path.startswith(b.prefix + '/'), url
        path = path[len(b.prefix) + 1:]
    return path, None, None


def s3_blobs(prefix, endpoint=None):
    """Blobs of the objects under PREFIX of the test bucket (VBATCH_TEST_S3),
    for the tests that pick their own blob stores; .url is its VBATCH_BLOBS
    (endpoint: reached through that endpoint instead, e.g. a Proxy's; the
    test itself still talks to the store directly)."""
    b = Blobs('', s3_prefix_url(prefix))
    if endpoint:
        b.url = s3_prefix_url(prefix, endpoint=endpoint)
    return b


def blobs_for(data):
    """The Blobs of a data folder as the suite sets it up (the local folder,
    or its prefix of E2E_S3)."""
    return Blobs(data, s3_blobs_for(data) if E2E_S3 else None)


class Proxy:
    """A TCP forwarder 127.0.0.1:port -> (host, port), the object store
    going away while vbatch runs: down() cuts the listener and every
    connection, up() listens again on the same port; down_bytes counts
    what came from the target."""

    def __init__(self, host, port):
        import threading
        self.target = (host, port)
        self.port = free_port()
        self.conns, self.lsock, self.down_bytes = [], None, 0
        self.mu = threading.Lock()
        self.up()

    def up(self):
        import threading
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(('127.0.0.1', self.port))
        ls.listen(64)
        self.lsock = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        import threading
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target)
            except OSError:
                c.close()
                continue
            self.conns += [c, u]
            conn = {}  # what seen() keeps of this connection
            threading.Thread(target=self._pipe, args=(c, u, False, conn), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, True, conn), daemon=True).start()

    def seen(self, data, from_target, conn):
        """Called with each piece before it is passed on (a subclass counts
        requests or holds answers here); conn: a dict of the connection's
        own, shared by its two directions."""

    def _pipe(self, a, b, from_target, conn):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if from_target:
                    with self.mu:
                        self.down_bytes += len(d)
                self.seen(d, from_target, conn)
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self):
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        except OSError:
            pass
        self.lsock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns = []


def s3_proxy(cls=Proxy):
    """A Proxy (or a subclass: cls) in front of the test store's endpoint
    (VBATCH_TEST_S3); s3_prefix_url(prefix, endpoint=f'http://127.0.0.1:{px.port}')
    is a VBATCH_BLOBS through it."""
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(os.environ['VBATCH_TEST_S3']).query))
    ep = urllib.parse.urlsplit(q['endpoint'])
    return cls(ep.hostname, ep.port)


local_blobs_only = pytest.mark.skipif(bool(E2E_S3), reason='about the local blob folder itself (VBATCH_E2E_BLOBS=s3)')


class Server:
    def __init__(self, tmpdir, args=(), env=None, key=None):
        self.tmpdir = tmpdir
        self.data = os.path.join(tmpdir, 'data')
        self.args = list(args)
        self.env = dict(env or {})
        if E2E_S3 and 'VBATCH_BLOBS' not in self.env:
            self.env['VBATCH_BLOBS'] = s3_blobs_for(self.data)
        # radosgw takes copy-ins on presigned URLs: sign them with the
        # PUT-only user of scripts/s3-up.sh (docs/DEPLOY.md); a test that
        # wants none sets VBATCH_BLOBS_PRESIGN_CREDENTIALS to ''
        if (self.env.get('VBATCH_BLOBS', '').startswith('s3://') and S3_PRESIGN_CREDS
                and 'VBATCH_BLOBS_PRESIGN_CREDENTIALS' not in self.env):
            self.env['VBATCH_BLOBS_PRESIGN_CREDENTIALS'] = S3_PRESIGN_CREDS
        self.proc = None
        self.port = None
        self.key = key
        self.workspace = 'default'
        self.log_path = os.path.join(tmpdir, 'server.log')

    # -- process --------------------------------------------------------------
    def start(self, wait=True, same_port=False):
        """same_port: restart on the previous port, so that signed URLs
        handed out before a restart stay valid."""
        for attempt in range(5):
            if not (same_port and self.port):
                self.port = free_port()
            env = self.child_env()
            self.out_path = os.path.join(self.tmpdir, f'stdout.{self.port}')
            self._out = open(self.out_path, 'wb')
            self._log = open(self.log_path, 'ab')
            self._log_from = self._log.tell()
            cmd = [BIN, 'serve', '--listen', f'127.0.0.1:{self.port}', '--data', self.data] + self.args
            self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._log, env=env)
            if not wait:
                return self
            try:
                self.wait_healthy()
                return self
            except RuntimeError as e:
                # free_port's port can be taken by another process of the
                # parallel passes before vbatch binds it: another port
                if same_port or attempt == 4 or 'Address already in use' not in str(e):
                    raise
                self._out.close()
                self._log.close()
                self._read_key()  # the first start printed it before it failed to listen
        return self

    def wait_healthy(self, timeout=30):
        deadline = time.time() + timeout * MULT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'vbatch exited with {self.proc.returncode}: {self.tail_log()}')
            try:
                r = self.request('GET', '/healthz', auth=False)
                # and it is this process that answers: it logged that it
                # listens (another one may hold a port free_port gave out)
                if r.status == 200 and self._serving():
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError('vbatch did not become healthy: ' + self.tail_log())
        self._read_key()
        assert self.key, 'no api_key printed on first start'

    def _read_key(self):
        with open(self.out_path) as f:
            for line in f:
                if line.startswith('api_key: '):
                    self.key = line.split()[1]
                if line.startswith('workspace: '):
                    self.workspace = line.split()[1]

    def _serving(self):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(getattr(self, '_log_from', 0))
                return f'main: serving listen=127.0.0.1:{self.port} '.encode() in f.read()
        except OSError:
            return False

    def tail_log(self, n=4000):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read()[-n:].decode(errors='replace')
        except OSError:
            return ''

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout * MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError('vbatch did not stop on SIGTERM')
        rc = self.proc.returncode if self.proc else 0
        for f in ('_out', '_log'):
            if hasattr(self, f):
                getattr(self, f).close()
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._out.close()
        self._log.close()

    def child_env(self):
        """The environment of a process on this server's data folder and
        database (the server's own, a worker, a CLI command)."""
        env = dict(os.environ)
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=1')
        env.update(db_env(self.data))  # self.data as it is now: a test may point it elsewhere
        env.update(self.env)
        return env

    @property
    def blobs(self):
        """This server's blob store (Blobs): DATA/blobs, or its S3 prefix."""
        env = self.child_env()
        url = env.get('VBATCH_BLOBS', '')
        return Blobs(self.data, url if url.startswith('s3://') else None, env)

    def cli(self, *args):
        return subprocess.run([BIN] + list(args) + ['--data', self.data], capture_output=True,
                              text=True, env=self.child_env(), timeout=60 * MULT)

    def worker(self, *args, env=None):
        """Start `vbatch worker` on this server's data folder and database
        (stderr in server.log.worker); the caller stops it."""
        e = self.child_env()
        e.update(env or {})
        with open(self.log_path + '.worker', 'ab') as log:
            return subprocess.Popen([BIN, 'worker', '--data', self.data] + list(args),
                                    stdout=subprocess.DEVNULL, stderr=log, env=e)

    # -- HTTP -------------------------------------------------------------------
    @property
    def base(self):
        return f'http://127.0.0.1:{self.port}'

    def request(self, method, path, query=None, body=None, headers=None, auth=True, key=None,
                timeout=60):
        q = dict(query or {})
        if auth:
            q.setdefault('api_key', key if key is not None else self.key)
        url = path + ('?' + urllib.parse.urlencode(q) if q else '')
        return self.raw(method, url, body, headers, timeout)

    def raw(self, method, url, body=None, headers=None, timeout=60):
        """url: path+query on this server, or a full http://127.0.0.1:PORT/… URL."""
        if url.startswith('http://'):
            u = urllib.parse.urlsplit(url)
            host, port = u.hostname, u.port
            url = u.path + ('?' + u.query if u.query else '')
        else:
            host, port = '127.0.0.1', self.port
        c = http.client.HTTPConnection(host, port, timeout=timeout * MULT)
        try:
            try:
                c.request(method, url, body=body, headers=headers or {})
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered early (413, 401...): read that answer
            r = c.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        finally:
            c.close()

    def ds(self, method, rest, check=True, **kw):
        """Data Staging call under /data-staging/v1/external/<ws>/batches…;
        the response is checked against the OpenAPI document."""
        path = f'{DS}/{kw.pop("workspace", self.workspace)}/batches{rest}'
        r = self.request(method, path, **kw)
        if check:
            openapi_ok(method, path, r)
        return r

    def wait_count(self, batch, want, timeout=60, part=None):
        deadline = time.time() + timeout * MULT
        last = None
        while time.time() < deadline:
            q = {'partName': part} if part else None
            r = self.ds('GET', f'/{batch}/count', query=q)
            if r.status == 200:
                last = r.json()['count']
                if last >= want:
                    return last
            time.sleep(0.1)
        raise AssertionError(f'count of {batch} stayed at {last}, wanted {want}')

    def upload_image(self, batch, name, data, field=None, query=None):
        ctype, body = multipart([(field or name, name, data)])
        q = {'fileName': name, 'displayName': batch}
        q.update(query or {})
        return self.ds('POST', f'/{batch}/upload/image', query=q, body=body,
                       headers={'Content-Type': ctype})

    def put_shard(self, batch, tar_bytes):
        r = self.ds('POST', f'/{batch}/bulk-upload/image-files', query={'displayName': batch})
        assert r.status == 200, r
        d = r.json()['signedURLDetails']
        put = self.raw('PUT', d['uploadURL'], body=tar_bytes, headers=d.get('extensionHeaders') or {})
        return d, put


_seed_cache = None


def _seed_operations():
    """(regex, method, 200 schema) of every OpenAPI snippet of the seed
    reference: each is a one-line document in a markdown file."""
    global _seed_cache
    if _seed_cache is None:
        import re
        _seed_cache = []
        seed = os.path.join(SHARED, 'seed')
        for name in sorted(os.listdir(seed)) if os.path.isdir(seed) else []:
            with open(os.path.join(seed, name)) as f:
                for line in f:
                    if not line.startswith('{"openapi"'):
                        continue
                    doc = json.loads(line)
                    for template, ops in doc.get('paths', {}).items():
                        rx = '^' + re.sub(r'\\\{[^}]+\\\}', '[^/]+', re.escape(template)) + '$'
                        for method, op in ops.items():
                            schema = (op.get('responses', {}).get('200', {}).get('content', {})
                                      .get('application/json', {}).get('schema'))
                            if schema is not None:
                                _seed_cache.append((re.compile(rx), method.lower(), schema))
    return _seed_cache


def seed_errors(method, path, status, body):
    """Errors of a 2xx body against the seed's snippet for this path (none
    when the seed documents no such call)."""
    if status // 100 != 2:
        return []
    try:
        from openapi_schema_validator import OAS30Validator as V
    except ImportError:  # pragma: no cover
        from jsonschema import Draft4Validator as V
    if isinstance(body, dict) and body.get('nextPageToken', '') is None:
        body = {k: v for k, v in body.items() if k != 'nextPageToken'}
    errs = []
    for rx, m, schema in _seed_operations():
        if m == method.lower() and rx.match(path):
            errs += [f'seed: {"/".join(map(str, e.absolute_path)) or "(body)"}: {e.message}'
                     for e in V(schema).iter_errors(body)]
    return errs


def openapi_ok(method, path, r):
    """Check an answer of the Data Staging or Batch Processing API against
    the published documents and the seed's snippets; returns the body."""
    path = path.split('?', 1)[0]
    if not (path.startswith(DS) or path.startswith(BP)):
        return None
    try:
        body = json.loads(r.body)
    except ValueError:
        raise AssertionError(f'{method} {path}: body is not JSON: {r.body[:200]!r}')
    if r.status >= 400:
        assert isinstance(body, dict) and isinstance(body.get('error'), str), body
        return body
    if _openapi_check is None:
        return body
    errs = _openapi_check(method, path, r.status, body)
    # Error statuses that the published document does not list are fine as
    # long as the body is {"error": "..."} (checked above).
    errs = [e for e in errs if not e.startswith('status ')]
    errs += seed_errors(method, path, r.status, body)
    assert not errs, f'{method} {path} -> {r.status}: {errs}'
    return body


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix='vbatch-e2e-') as d:
        yield d


@pytest.fixture
def server_factory(tmpdir_path):
    started = []

    def make(args=(), env=None, sub=None):
        d = os.path.join(tmpdir_path, sub) if sub else tmpdir_path
        os.makedirs(d, exist_ok=True)
        s = Server(d, args=args, env=env)
        started.append(s)
        return s
    yield make
    try:
        for s in started:
            if s.proc and s.proc.poll() is None:
                rc = s.stop()
                assert rc == 0, f'vbatch exited with {rc} on SIGTERM: {s.tail_log()}'
    finally:
        for s in started:
            drop_pg_schema(s.data)


@pytest.fixture(scope='module')
def server():
    """One server shared by a module's read-mostly tests."""
    with tempfile.TemporaryDirectory(prefix='vbatch-e2e-') as d:
        s = Server(d, args=['--allow-private-urls']).start()
        try:
            yield s
            rc = s.stop()
            assert rc == 0, f'vbatch exited with {rc} on SIGTERM: {s.tail_log()}'
        finally:
            drop_pg_schema(s.data)


# scripts/test.sh runs the e2e passes at once, each on several pytest-xdist
# workers, and sets VBATCH_E2E_LOCK to a lock file: every test holds it
# shared while it runs, and a test marked `serial` (it asserts latencies
# that a loaded machine would miss) holds it alone, so it runs while no
# other test of any pass does.  A gate file in front keeps a serial test
# that waits from being overtaken forever: no test starts while it waits.
E2E_LOCK = os.environ.get('VBATCH_E2E_LOCK', '')


@pytest.fixture(autouse=True)
def _e2e_lock(request):
    if not E2E_LOCK:
        yield
        return
    import fcntl
    alone = request.node.get_closest_marker('serial') is not None
    with open(E2E_LOCK + '.gate', 'a') as gate, open(E2E_LOCK, 'a') as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def pytest_sessionfinish(session, exitstatus):
    """Drop the schemas of the module servers that a test module made itself."""
    if E2E_PG and _pg_schemas:
        _drop_schemas(sorted(_pg_schemas))
    _pg_schemas.clear()


def pytest_configure(config):
    config.addinivalue_line('markers', 'picks_its_database: the test chooses its databases itself '
                            '(run in the SQLite pass only)')
    config.addinivalue_line('markers', 'picks_its_blobs: the test chooses its blob stores itself '
                            '(not run again in the S3 pass)')
    config.addinivalue_line('markers', 'serial: the test asserts latencies: while the passes run at '
                            'once (VBATCH_E2E_LOCK) no other test runs with it')


def pytest_collection_modifyitems(config, items):
    """On PostgreSQL every test is named with [pg], so that a failure of
    that pass reads apart from the SQLite pass's (scripts/test.sh runs both);
    the tests that pick their own databases ran in the SQLite pass."""
    if E2E_PG:
        skip = pytest.mark.skip(reason='picks its databases itself: run in the SQLite pass')
        for item in items:
            item._nodeid += '[pg]'
            # (in the S3 pass they run again: their blobs on S3 is what is new)
            if item.get_closest_marker('picks_its_database') and not E2E_S3:
                item.add_marker(skip)
    if E2E_S3:
        skip = pytest.mark.skip(reason='picks its blob stores itself: run in the local-folder passes')
        for item in items:
            item._nodeid += '[s3]'
            if item.get_closest_marker('picks_its_blobs'):
                item.add_marker(skip)


def pytest_report_header(config):
    return ('e2e database: ' + ('PostgreSQL (VBATCH_E2E_DB=pg, a schema per data folder)' if E2E_PG else 'SQLite')
            + '; blobs: ' + ('S3 (VBATCH_E2E_BLOBS=s3, a prefix per data folder)' if E2E_S3 else 'local folder'))
