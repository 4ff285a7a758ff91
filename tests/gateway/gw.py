"""Shared helpers of the gateway tests: start the real atriumd on a fresh
store and a free port, talk HTTP to it, stop it and check what it printed.

Every test script ends with gw.main(), which prints "N passed, N failed"
as tests/run.sh expects and exits non-zero on failure.
"""
import http.client
import json
import os
import re
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
ATRIUMD = os.path.join(BUILD, "atriumd")
ATRIUM = os.path.join(BUILD, "atrium")

READY = re.compile(r"^atriumd: listening on http://([^ ]+):(\d+), events on (\S+)$")
SANITIZER = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
             "WARNING: ThreadSanitizer")


def fresh_store():
    """A store path on tmpfs that no one else uses."""
    return "/dev/shm/atrium-gwtest-%d-%s" % (os.getpid(), uuid.uuid4().hex[:12])


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def error(self):
        j = self.json
        return j["error"]["code"] if j and "error" in j else None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Gateway:
    """One atriumd process on its own store (removed by stop unless
    keep_store). With token, the text of its --token-file (written as it
    is, removed by stop)."""

    def __init__(self, *args, store=None, env=None, keep_store=False, token=None):
        self.args = list(args)
        self.token_file = None
        if token is not None:
            self.token_file = "%s/atrium-token-%s" % (
                os.environ.get("TMPDIR", "/tmp"), uuid.uuid4().hex[:12])
            with open(self.token_file, "w") as f:
                f.write(token)
            self.args += ["--token-file", self.token_file]
        self.store = store or fresh_store()
        self.env = env
        self.keep_store = keep_store
        self.proc = None
        self.lines = []
        self.host = None
        self.port = None

    def start(self, timeout=15):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(
            [ATRIUMD, "--store", self.store, "--listen", "127.0.0.1:0"] + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env)
        # One thread reads stderr from the start (so the daemon never blocks
        # on a full pipe) and hands lines over; select() on the buffered
        # pipe could miss lines that arrived together.
        self.ready_lines = queue.Queue()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + timeout
        while self.port is None:
            left = deadline - time.monotonic()
            try:
                text = self.ready_lines.get(timeout=max(left, 0))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError("atriumd did not get ready: %r" % self.lines)
            if text is None:
                self.proc.wait()
                raise AssertionError("atriumd exited (%s) before it was ready: %s"
                                     % (self.proc.returncode, "".join(self.lines)))
            m = READY.match(text.rstrip("\n"))
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
        # Ready means bound and serving: /healthz must answer at once.
        r = self.request("GET", "/healthz")
        if r.status != 200:
            raise AssertionError("/healthz answered %r" % r)
        return self

    def _drain(self):
        for line in self.proc.stderr:
            text = line.decode("utf-8", "replace")
            self.lines.append(text)
            self.ready_lines.put(text)
        self.ready_lines.put(None)

    @property
    def stderr(self):
        return "".join(self.lines)

    def check_sanitizers(self):
        for mark in SANITIZER:
            if mark in self.stderr:
                raise AssertionError("sanitizer report from atriumd:\n" + self.stderr)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stops the daemon; it must exit 0 and print no sanitizer report."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("atriumd did not stop within %ss" % timeout)
        self.reader.join(5)
        if not self.keep_store:
            remove(self.store)
        if self.token_file:
            remove(self.token_file)
        self.check_sanitizers()
        if rc != 0:
            raise AssertionError("atriumd exited %d:\n%s" % (rc, self.stderr))
        return rc

    def connect(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None, json_body=None,
                timeout=30):
        """One request; body may be bytes, str or (json_body) any JSON value.
        A body gets Content-Type application/json unless headers name one."""
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        own = conn is None
        if own:
            conn = self.connect(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.getheaders(), data)
        finally:
            if own:
                conn.close()

    # Shorthands.
    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, obj=None, **kw):
        return self.request("PUT", path, json_body=obj, **kw)

    def post(self, path, obj=None, **kw):
        return self.request("POST", path, json_body=obj, **kw)

    def objects(self, path="/v1/objects", what="objects", **query):
        """Every object of a listing, following "next" page by page."""
        out, after = [], None
        while True:
            q = dict(query)
            if after is not None:
                q["after"] = after
            r = self.get(path + ("?" + urllib.parse.urlencode(q) if q else ""))
            assert r.status == 200, r
            out += r.json[what]
            if "next" not in r.json:
                return out
            after = r.json["next"]

    def metric(self, name):
        r = self.get("/metrics")
        assert r.status == 200, r
        for line in r.body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None


def raw(port, data, timeout=30):
    """Sends data as it is on a new connection and reads until the server
    closes it (the request should say Connection: close); returns
    (status, headers as a dict with lower-case names, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered before all was sent (413)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip()
               for l in lines[1:] if ":" in l}
    return int(lines[0].split()[1]), headers, body


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class GatewayCase(unittest.TestCase):
    """A test class sharing one daemon across its tests."""
    gateway_args = ()

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(*cls.gateway_args).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()


def long_run():
    """Whether this is the long run (make check-long sets
    ATRIUM_CHECK_LONG=1): loops and counts at their full length."""
    return os.environ.get("ATRIUM_CHECK_LONG", "") not in ("", "0")


def scaled(short, full):
    """A count or duration: short in make check, full in make check-long."""
    return full if long_run() else short


class TimedResult(unittest.TextTestResult):
    """Keeps each test's time, for the slowest ones run() prints."""

    def startTest(self, test):
        self.t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.times = getattr(self, "times", [])
        self.times.append((time.monotonic() - self.t0, test.id()))


def run(suite):
    """Runs suite verbosely, then names its tests over a second, slowest
    first (a test's share of make check's time)."""
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=TimedResult)
    result = runner.run(suite)
    for secs, name in sorted(getattr(result, "times", []), reverse=True)[:5]:
        if secs >= 1:
            print("%6.1f s  %s" % (secs, name))
    return result


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    result = run(suite)
    # Count tests, not subtests: a test with failing subtests fails once.
    bad = {str(t).split(" (")[0] + str(type(t)) for t, _ in result.failures + result.errors}
    bad |= {str(t) for t in result.unexpectedSuccesses}
    failed = len(bad)
    passed = max(result.testsRun - len(result.skipped) - failed, 0)
    sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
