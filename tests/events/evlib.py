"""Helpers of the event tests: a gateway with its events URL, an nng
subscriber (the ev_tool helper, a C program built by make), a Server-Sent
Events client on a raw socket, and waiting for conditions with deadlines.

The gateway itself is started by tests/gateway/gw.py.
"""
import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "gateway"))
import gw  # noqa: E402

EV_TOOL = os.path.join(gw.BUILD, "tests", "events", "ev_tool")


def events_url(gateway):
    """The events URL the gateway's ready line names."""
    for line in gateway.lines:
        m = gw.READY.match(line.rstrip("\n"))
        if m:
            return m.group(3)
    raise AssertionError("no ready line: %r" % gateway.lines)


class TempDir:
    """A private directory for ipc:// sockets, removed by close()."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="atrium-ev-")

    def url(self, name="events.ipc"):
        return "ipc://" + os.path.join(self.path, name)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def start(*args, store=None, keep_store=False, env=None):
    """A gateway with its events on a free TCP port unless args name
    --events; .events is the URL it listens on."""
    if "--events" not in args:
        args = ("--events", "tcp://127.0.0.1:0") + tuple(args)
    g = gw.Gateway(*args, store=store, keep_store=keep_store, env=env).start()
    g.events = events_url(g)
    return g


def cli(gateway, *args):
    """Runs the atrium CLI (libatrium in a separate process) on the
    gateway's store."""
    p = subprocess.run([gw.ATRIUM, "--store", gateway.store] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError("atrium %s: %s" % (args, p.stderr.decode()))
    return p.stdout.decode().strip()


def tool(*args, timeout=120):
    p = subprocess.run([EV_TOOL] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("ev_tool %s: %s" % (args, p.stderr.decode()))
    return p.stdout.decode().strip()


def bump(gateway, name):
    """Adds 1 to the value name (created first if missing): one event."""
    gateway.put("/v1/values/%s" % name, {"type": "q"})
    r = gateway.post("/v1/values/%s/add" % name)
    assert r.status == 200, r
    return r.json["value"]


def wait_for(cond, timeout=10, what="condition"):
    """Calls cond until it returns something true; fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)


def wait_in(events, pull, pred, timeout, what, ended=lambda: False):
    """The first event of the list events (old or new) for which pred is
    true; pull(seconds) brings more into it. Fails after timeout seconds,
    or at once when ended() says no more can come."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        for ev in events[seen:]:
            if pred(ev):
                return ev
        seen = len(events)
        left = deadline - time.monotonic()
        if left <= 0 or ended():
            raise AssertionError("no %s within %ss; got %r" % (what, timeout,
                                                               events[-20:]))
        pull(min(left, 0.2))


class Event:
    """One event: its topic (nng only), seq, op and the JSON."""

    def __init__(self, data, topic=None, sse_id=None, comment=False):
        self.topic = topic
        self.data = data
        self.json = json.loads(data) if data else None
        self.id = sse_id
        self.comment = comment

    @property
    def op(self):
        return self.json["op"]

    @property
    def seq(self):
        return self.json["seq"]

    @property
    def name(self):
        return self.json["name"]

    def __repr__(self):
        return "<%s %s>" % (self.topic or ("id=%s" % self.id), self.data)


class Sub:
    """An nng subscriber in its own process (ev_tool sub)."""

    def __init__(self, url, *prefixes, recvbuf=None):
        args = [EV_TOOL, "sub", url] + list(prefixes)
        if recvbuf:
            args += ["--recvbuf", str(recvbuf)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.q = queue.Queue()
        self.events = []
        line = self._readline(10)
        if line != b"ready\n":
            self.close()
            raise AssertionError("ev_tool sub: %r %r" % (line, self.proc.stderr.read()))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _readline(self, timeout):
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            return b""
        return self.proc.stdout.readline()

    def _read(self):
        for line in self.proc.stdout:
            topic, _, data = line.decode().rstrip("\n").partition(" ")
            self.q.put(Event(data, topic=topic))

    def _pull(self, timeout):
        try:
            self.events.append(self.q.get(timeout=timeout))
            return True
        except queue.Empty:
            return False

    def wait(self, pred, timeout=10, what="an event"):
        """Returns the first event (old or new) for which pred is true."""
        return wait_in(self.events, self._pull, pred, timeout, what)

    def drain(self, quiet=0.3):
        """Takes what arrives until nothing came for quiet seconds."""
        while self._pull(quiet):
            pass
        return self.events

    def sync(self, poke, pred, timeout=15):
        """Waits until the subscriber is connected: pokes (makes a change it
        will see) until an event matching pred arrives. nng drops what was
        sent before the connection was up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            poke()
            until = time.monotonic() + 0.3
            while time.monotonic() < until:
                if any(pred(e) for e in self.events):
                    return
                self._pull(0.05)
        raise AssertionError("the subscriber never saw an event")

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.join(5)  # it ends at the pipe's end; then close it
        self.proc.stdout.close()
        self.proc.stderr.close()


class SSE:
    """A Server-Sent Events client on a raw socket, HTTP/1.1 with chunked
    transfer decoding, so a test can stop reading whenever it likes."""

    def __init__(self, gateway, path="/v1/events", headers=None, rcvbuf=None,
                 timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", gateway.port))
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" % path
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall((req + "\r\n").encode())
        self.raw = b""      # bytes received, not yet decoded
        self.text = b""     # decoded body, not yet split into events
        self.events = []    # Event, comments included
        self.ended = False
        self.body_bytes = 0
        self.status, self.headers = self._head(timeout)

    def _recv(self, timeout):
        if not select.select([self.sock], [], [], max(timeout, 0))[0]:
            return False
        data = self.sock.recv(1 << 16)
        if not data:
            self.ended = True
            return False
        self.raw += data
        return True

    def _head(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(deadline - time.monotonic()) and (
                    self.ended or time.monotonic() > deadline):
                raise AssertionError("no response head: %r" % self.raw)
        head, _, self.raw = self.raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if status != 200:
            # An error answer has a Content-Length body.
            n = int(headers.get("content-length", "0"))
            while len(self.raw) < n and self._recv(deadline - time.monotonic()):
                pass
            self.error_body = self.raw[:n]
        return status, headers

    def _decode(self):
        pos, raw, out = 0, self.raw, []
        while True:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(raw[pos:eol].split(b";")[0], 16)
            if size == 0:
                self.ended = True
                pos = len(raw)
                break
            if len(raw) < eol + 2 + size + 2:
                break
            out.append(raw[eol + 2:eol + 2 + size])
            self.body_bytes += size
            pos = eol + 2 + size + 2
        self.raw = raw[pos:]
        self.text += b"".join(out)

    def _split(self):
        pos, text = 0, self.text
        while True:
            end = text.find(b"\n\n", pos)
            if end < 0:
                break
            data, sse_id, comment = [], None, False
            for line in text[pos:end].decode().split("\n"):
                if line.startswith(":"):
                    comment = True
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line.startswith("id: "):
                    sse_id = int(line[4:])
            self.events.append(Event("\n".join(data), sse_id=sse_id,
                                     comment=comment and not data))
            pos = end + 2
        self.text = text[pos:]

    def poll(self, timeout):
        """Reads what is there (waiting up to timeout for the first bytes)."""
        got = self._recv(timeout)
        while got and self._recv(0):
            pass
        self._decode()
        self._split()
        return got

    def data_events(self):
        return [e for e in self.events if not e.comment]

    def wait(self, pred, timeout=10, what="an event"):
        """Returns the first event (old or new) for which pred is true."""
        return wait_in(self.events, self.poll, pred, timeout, what,
                       lambda: self.ended and not self.raw)

    def wait_end(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not self.ended:
            if time.monotonic() > deadline:
                raise AssertionError("the stream did not end")
            self.poll(deadline - time.monotonic())
        return True

    def close(self):
        self.sock.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
