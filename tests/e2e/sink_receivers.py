"""Receivers the workflow sink tests deliver to, all on loopback: an SMTP
server, an HTTP server recording every request, and a fake Slack Web API
(chat.postMessage and the three calls of files_upload_v2)."""
import base64
import http.server
import json
import threading
import time
import urllib.parse

from conftest import MULT


class SmtpReceiver:
    """A minimal SMTP server on 127.0.0.1 (EHLO, AUTH PLAIN, MAIL, RCPT,
    DATA, QUIT): records each message with its envelope and login."""

    def __init__(self):
        import socketserver
        import threading
        self.mails = []
        rec = self

        class H(socketserver.StreamRequestHandler):
            def handle(self):
                w = self.wfile.write
                w(b'220 test ESMTP\r\n')
                env = {'rcpt': [], 'auth': None}
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode().rstrip('\r\n')
                    up = cmd.upper()
                    if up.startswith('EHLO') or up.startswith('HELO'):
                        w(b'250-test\r\n250 AUTH PLAIN\r\n')
                    elif up.startswith('AUTH PLAIN'):
                        arg = cmd[10:].strip()
                        if not arg:
                            w(b'334 \r\n')
                            arg = self.rfile.readline().decode().strip()
                        env['auth'] = base64.b64decode(arg)
                        w(b'235 ok\r\n')
                    elif up.startswith('MAIL FROM:'):
                        env['from'] = cmd[10:].strip()
                        w(b'250 ok\r\n')
                    elif up.startswith('RCPT TO:'):
                        env['rcpt'].append(cmd[8:].strip())
                        w(b'250 ok\r\n')
                    elif up == 'DATA':
                        w(b'354 go\r\n')
                        data = b''
                        while not data.endswith(b'\r\n.\r\n'):
                            chunk = self.rfile.readline()
                            if not chunk:
                                return
                            data += chunk
                        env['data'] = data[:-5].decode()
                        rec.mails.append(dict(env))
                        env = {'rcpt': [], 'auth': env['auth']}
                        w(b'250 queued\r\n')
                    elif up == 'QUIT':
                        w(b'221 bye\r\n')
                        return
                    else:
                        w(b'250 ok\r\n')

        self.srv = socketserver.ThreadingTCPServer(('127.0.0.1', 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class AnyReceiver:
    """HTTP receiver on 127.0.0.1 recording (method, path, headers, body) of
    every GET, POST and PUT."""

    def __init__(self):
        import http.server
        import threading
        self.calls = []
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def handle_any(self):
                n = int(self.headers.get('Content-Length') or 0)
                rec.calls.append((self.command, self.path, dict(self.headers), self.rfile.read(n)))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

            do_GET = do_POST = do_PUT = handle_any

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/hook'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, n, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.calls) < n:
            time.sleep(0.05)
        return self.calls

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeSlack:
    """Slack's Web API under /api on 127.0.0.1, as files_upload_v2 uses it:
    files.getUploadURLExternal (form filename, length) answers an
    upload_url under upload_base (this server by default) and a file id;
    a POST of the bytes there is kept per file id; files.completeUploadExternal
    (form files, channel_id, initial_comment) and chat.postMessage (JSON) are
    recorded.  Every API answer is {"ok": true, ...}, except chat.postMessage
    to a channel in unknown_channels: HTTP 200 with "ok": false, as Slack."""

    def __init__(self, upload_base=None):
        self.lock = threading.Lock()
        self.url_calls = []   # (headers, form)
        self.uploads = {}     # file id -> [bytes posted]
        self.completes = []   # (headers, form)
        self.posts = []       # (headers, json body)
        self.other = []       # paths nobody should call
        self.unknown_channels = {'#nope'}  # chat.postMessage answers "ok": false
        slack = self

        class H(http.server.BaseHTTPRequestHandler):
            def answer(self, code, obj):
                body = json.dumps(obj).encode() if obj is not None else b'OK'
                self.send_response(code)
                self.send_header('Content-Type', 'application/json' if obj is not None else 'text/plain')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n)
                h = dict(self.headers)
                form = lambda: {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
                with slack.lock:
                    if self.path == '/api/files.getUploadURLExternal':
                        slack.url_calls.append((h, form()))
                        fid = f'F{len(slack.url_calls):04d}'
                        return self.answer(200, {'ok': True, 'file_id': fid,
                                                 'upload_url': f'{slack.upload_base}/upload/{fid}'})
                    if self.path.startswith('/upload/'):
                        slack.uploads.setdefault(self.path[8:], []).append(body)
                        return self.answer(200, None)
                    if self.path == '/api/files.completeUploadExternal':
                        slack.completes.append((h, form()))
                        return self.answer(200, {'ok': True})
                    if self.path == '/api/chat.postMessage':
                        msg = json.loads(body)
                        slack.posts.append((h, msg))
                        if msg.get('channel') in slack.unknown_channels:  # Slack's errors are 200s
                            return self.answer(200, {'ok': False, 'error': 'channel_not_found'})
                        return self.answer(200, {'ok': True})
                    slack.other.append(self.path)
                return self.answer(404, {'ok': False, 'error': 'unknown_method'})

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.base = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.url = self.base + '/api'
        self.upload_base = upload_base or self.base
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_completes(self, n, timeout=60):
        deadline = time.time() + timeout * MULT
        while time.time() < deadline and len(self.completes) < n:
            time.sleep(0.05)
        return self.completes

    def files_of(self, form):
        """[(title, [bytes uploaded])] of one completeUploadExternal call."""
        return [(f['title'], self.uploads.get(f['id'], [])) for f in json.loads(form['files'])]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
