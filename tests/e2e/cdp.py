"""A small driver of headless Chromium over the DevTools protocol (CDP),
for the dashboard tests (tests/e2e/test_ui.py) and bench/ui_bench.py.

Debian's `chromium` runs headless with a throwaway profile; the driver
talks to it over one WebSocket (Debian's python3-websocket) in the
protocol's flat session mode: one page target, commands answered in
order, events kept for the caller (console messages, exceptions, CSP
reports).  No other library: docs/ARCHITECTURE.md ("Dashboard tests").
"""
import json
import os
import shutil
import subprocess
import tempfile
import time


def chromium_path():
    """The Chromium binary, or None when it is not installed."""
    for name in ('chromium', 'chromium-browser'):
        p = shutil.which(name)
        if p:
            return p
    return None


def missing_reason():
    """Why a browser test cannot run here, or None when it can."""
    if not chromium_path():
        return 'chromium is not installed (scripts/install-deps.sh installs Debian chromium)'
    try:
        import websocket  # noqa: F401
    except ImportError:
        return 'python3-websocket is not installed (scripts/install-deps.sh installs it)'
    return None


class CDPError(Exception):
    pass


class Browser:
    """One headless Chromium with one page.  Use as a context manager."""

    def __init__(self, timeout=30, download_dir=None):
        import websocket
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix='vbatch-chromium-')
        self.download_dir = download_dir
        args = [chromium_path(), '--headless=new', '--no-sandbox', '--disable-gpu',
                '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
                '--disable-extensions', '--disable-background-networking', '--disable-sync',
                '--metrics-recording-only', '--mute-audio', '--remote-debugging-port=0',
                '--user-data-dir=' + self.profile, 'about:blank']
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, 'DevToolsActivePort')
        deadline = time.time() + timeout
        lines = []
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f'chromium exited with {self.proc.returncode}')
            try:
                with open(port_file) as f:
                    lines = f.read().split()
                if len(lines) >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            self.close()
            raise CDPError('chromium did not open its DevTools port')
        self.ws = websocket.create_connection(f'ws://127.0.0.1:{lines[0]}{lines[1]}', timeout=timeout,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        target = self.send('Target.createTarget', {'url': 'about:blank'})['targetId']
        self.session = self.send('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
        for domain in ('Page', 'Runtime', 'Log', 'Network'):
            self.send(domain + '.enable', session=True)
        if download_dir:
            self.send('Browser.setDownloadBehavior', {'behavior': 'allow', 'downloadPath': download_dir,
                                                      'eventsEnabled': True})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            if getattr(self, 'ws', None):
                self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- protocol ---------------------------------------------------------------
    def send(self, method, params=None, session=False, timeout=None):
        self.next_id += 1
        msg = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session:
            msg['sessionId'] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.time() + (timeout or self.timeout)
        while time.time() < deadline:
            m = json.loads(self.ws.recv())
            if m.get('id') == self.next_id:
                if 'error' in m:
                    raise CDPError(f'{method}: {m["error"]}')
                return m.get('result', {})
            if 'method' in m:
                self.events.append(m)
        raise CDPError(f'{method}: no answer in time')

    def pump(self, seconds=0.0):
        """Read the events that arrived (for up to `seconds`)."""
        deadline = time.time() + seconds
        self.ws.settimeout(0.05)
        try:
            while True:
                try:
                    m = json.loads(self.ws.recv())
                except Exception:
                    if time.time() >= deadline:
                        break
                    continue
                if 'method' in m:
                    self.events.append(m)
        finally:
            self.ws.settimeout(self.timeout)

    # -- page -------------------------------------------------------------------
    def navigate(self, url):
        self.send('Page.navigate', {'url': url}, session=True)
        self.wait('document.readyState === "complete" && location.href !== "about:blank"')

    def js(self, expr):
        """Evaluate expr in the page (promises awaited); its value as JSON."""
        r = self.send('Runtime.evaluate', {'expression': expr, 'returnByValue': True, 'awaitPromise': True},
                      session=True)
        if 'exceptionDetails' in r:
            d = r['exceptionDetails']
            raise CDPError(f'{expr[:80]}: {d.get("exception", {}).get("description") or d.get("text")}')
        return r.get('result', {}).get('value')

    def wait(self, expr, timeout=None, what=None):
        """Poll expr until it is truthy; returns its value."""
        deadline = time.time() + (timeout or self.timeout)
        last = None
        wrapped = f'(() => {{ const v = ({expr}); return v instanceof Node ? true : v; }})()'
        while time.time() < deadline:
            try:
                last = self.js(wrapped)
            except CDPError as e:  # the page is between documents
                last = str(e)
                time.sleep(0.05)
                continue
            if last:
                return last
            time.sleep(0.05)
        raise AssertionError(f'timed out waiting for {what or expr} (last: {last!r})')

    def problems(self):
        """Uncaught exceptions and security (CSP) reports seen so far."""
        out = []
        for e in self.events:
            if e.get('method') == 'Runtime.exceptionThrown':
                out.append('exception: ' + json.dumps(e['params'].get('exceptionDetails', {}))[:400])
            elif e.get('method') == 'Log.entryAdded':
                entry = e['params']['entry']
                if entry.get('source') == 'security' or 'Content Security Policy' in entry.get('text', ''):
                    out.append('security: ' + entry.get('text', ''))
            elif e.get('method') == 'Runtime.consoleAPICalled' and e['params'].get('type') == 'error':
                out.append('console.error: ' + json.dumps(e['params'].get('args'))[:400])
        return out

    def requests(self):
        """URLs of every request the page made (Network.requestWillBeSent)."""
        return [e['params']['request']['url'] for e in self.events
                if e.get('method') == 'Network.requestWillBeSent']
