"""SSE memory has a total bound (issue 9, section 3): stalled readers cost
at most --sse-memory together; past it the slowest streams are dropped and
get a resync once they read again, a reader that keeps up loses nothing,
and the memory comes back when the streams close. RSS is read from /proc
before, during and after.
"""
import os
import socket
import subprocess
import threading
import time
import unittest

import gw

EV_TOOL = os.path.join(gw.BUILD, "tests", "events", "ev_tool")
STALLED = 40
SSE_BUFFER = 1 << 20
SSE_MEMORY = 4 << 20
MIB = 1 << 20
RING = 8 * MIB  # the replay ring for Last-Event-ID (sse.c), bounded apart


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_stream(port, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /v1/events?topics=array/big/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return s


class AfterResync:
    """Whether want has come after the last resync of a growing stream.
    The stream comes in 4 KiB reads (its small receive buffer) and grows
    to megabytes: each byte is scanned about once (scanning all of it at
    every read took seconds, and timed the test out on a busy machine)."""
    MARKER = b'"op":"resync"'

    def __init__(self, want):
        self.want, self.resync, self.scanned = want, -1, 0

    def __call__(self, got):
        at = got.rfind(self.MARKER, max(0, self.scanned - len(self.MARKER)))
        if at >= 0:
            self.resync = at
        found = self.resync >= 0 and got.find(
            self.want, max(self.resync, self.scanned - len(self.want))) >= 0
        self.scanned = len(got)
        return found


class SseMemory(unittest.TestCase):
    def test_stalled_readers(self):
        # Under ASan freed memory waits in a quarantine and goes back to
        # the system on a timer of its own: make both as plain malloc's.
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (asan + ":" if asan else "") +
               "quarantine_size_mb=0:allocator_release_to_os_interval_ms=50"}
        g = gw.Gateway("--sse-buffer", str(SSE_BUFFER), "--sse-memory", str(SSE_MEMORY),
                       env=env).start()
        stalled = []
        try:
            pid = g.proc.pid
            # ASan's shadow memory and allocator keep some more.
            with open("/proc/%d/maps" % pid) as f:
                slack = (16 if "libasan" in f.read() else 6) * MIB
            self.assertEqual(g.put("/v1/arrays/big", {"type": "q", "length": 256}).status, 201)
            for _ in range(20):
                g.get("/v1/arrays/big")
            before = rss(pid)

            # One reader that keeps up, many that never read.
            live = open_stream(g.port)
            seen = bytearray()
            def read_live():
                live.settimeout(30)
                while True:
                    try:
                        chunk = live.recv(1 << 16)
                    except OSError:
                        return
                    if not chunk:
                        return
                    seen.extend(chunk)
            reader = threading.Thread(target=read_live, daemon=True)
            reader.start()
            for _ in range(STALLED):
                stalled.append(open_stream(g.port, rcvbuf=4096))
            # Each event carries the array's 256 values (some 2 KiB):
            # unbounded, every stalled stream would queue --sse-buffer.
            peak = 0
            writer = subprocess.Popen([EV_TOOL, "arrays", g.store, "big", "2000", "800"],
                                      stdout=subprocess.PIPE)
            while writer.poll() is None:
                peak = max(peak, rss(pid))
                time.sleep(0.05)
            last = int(writer.stdout.read().split()[-1])
            self.assertEqual(writer.returncode, 0)
            for _ in range(20):
                peak = max(peak, rss(pid))
                time.sleep(0.05)
            grown = peak - before
            print("rss before %.1f MiB, peak %.1f MiB (+%.1f), bound %.1f MiB"
                  % (before / MIB, peak / MIB, grown / MIB, SSE_MEMORY / MIB))
            self.assertLess(grown, SSE_MEMORY + RING + slack,
                            "stalled streams took %.1f MiB" % (grown / MIB))

            # The reader that kept up got the last change.
            want = b'"version":%d' % last
            deadline = time.monotonic() + 10
            while want not in seen:
                self.assertLess(time.monotonic(), deadline, "the live reader missed the end")
                time.sleep(0.05)
            self.assertNotIn(b'"op":"resync"', bytes(seen))

            # A stalled stream that reads again drains, then gets a resync
            # with the state now.
            s = stalled[0]
            s.settimeout(10)
            got = bytearray()
            deadline = time.monotonic() + 10
            done = AfterResync(want)
            while not done(got):
                self.assertLess(time.monotonic(), deadline, "no resync: %r" % got[-300:])
                got += s.recv(1 << 16)

            # Closed: the memory comes back.
            for s in stalled:
                s.close()
            stalled = []
            live.close()
            deadline = time.monotonic() + 5
            while rss(pid) > before + RING + slack:
                self.assertLess(time.monotonic(), deadline,
                                "rss stayed at %.1f MiB (before %.1f)"
                                % (rss(pid) / MIB, before / MIB))
                time.sleep(0.1)
            self.assertEqual(g.get("/healthz").status, 200)
        finally:
            for s in stalled:
                s.close()
            g.stop()


if __name__ == "__main__":
    gw.main()
