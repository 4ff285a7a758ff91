"""No one can hold the gateway still (issue 9, section 3).

A process that takes one of the store's internal locks and is stopped
while holding it (tests/core/hold_lock.c, white-box, built by make tests)
must not hold the gateway: the stuck object's writes answer 503 busy with
Retry-After within --busy-wait and change nothing; /healthz, /metrics and
other objects keep answering meanwhile; after SIGCONT all is normal. And
a parked request whose client has gone is released within about a second,
taking or adding nothing.
"""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

import gw

HOLD_LOCK = os.path.join(gw.BUILD, "tests", "hold_lock")
BOUND = 1.0  # --busy-wait


def stopped(pid):
    """Whether pid is stopped (state T in /proc)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


class Holder:
    """hold_lock, stopped while it holds one lock."""

    def __init__(self, store, kind, name):
        self.proc = subprocess.Popen([HOLD_LOCK, store, kind, name],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        assert line == b"held\n", (line, self.proc.stderr.read())
        deadline = time.monotonic() + 10
        while not stopped(self.proc.pid):
            assert time.monotonic() < deadline, "hold_lock did not stop"
            time.sleep(0.01)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        out, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0 and out == b"released\n", (out, err)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


# What each lock stops: requests (method, path, body) that need it.
STUCK = {
    "array": [("PATCH", "/v1/arrays/a", {"start": 1, "values": [7, 8]}),
              ("POST", "/v1/arrays/a/add", {"index": 0, "delta": 5}),
              ("PUT", "/v1/arrays/a", {"type": "i", "values": [9, 9, 9, 9]})],
    "put": [("POST", "/v1/queues/q/items", {"n": 2}),
            ("POST", "/v1/queues/q/batch", [1, 2, 3]),
            ("POST", "/v1/queues/q/items?timeout=5", {"n": 3})],
    "get": [("POST", "/v1/queues/q/pop", None),
            ("POST", "/v1/queues/q/pop?max=100&timeout=5", None),
            ("DELETE", "/v1/queues/q/items", None)],
    "store": [("PUT", "/v1/values/new", {"type": "i"}),
              ("DELETE", "/v1/values/v", None),
              ("PUT", "/v1/queues/newq", {"maxsize": 3})],
}


class Busy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = gw.Gateway("--busy-wait", str(BOUND), "--threads", "2").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()

    def setUp(self):
        g = self.gw
        for path in ("/v1/arrays/a", "/v1/queues/q", "/v1/values/v",
                     "/v1/values/other", "/v1/values/new", "/v1/queues/newq"):
            g.request("DELETE", path)
        self.assertEqual(g.put("/v1/arrays/a", {"type": "i", "values": [1, 2, 3, 4]}).status, 201)
        self.assertEqual(g.put("/v1/queues/q", {"maxsize": 10}).status, 201)
        self.assertEqual(g.post("/v1/queues/q/items", {"n": 1}).status, 201)
        self.assertEqual(g.put("/v1/values/v", {"type": "i", "value": 1}).status, 201)
        self.assertEqual(g.put("/v1/values/other", {"type": "q"}).status, 201)

    def state(self):
        g = self.gw
        a = g.get("/v1/arrays/a").json
        q = g.get("/v1/queues/q").json
        return (a["values"], a["version"], q["size"], q["version"],
                g.get("/v1/values/v").status, g.get("/v1/values/new").status,
                g.get("/v1/queues/newq").status)

    def check_others(self, deadline):
        """Until deadline: requests that need no held lock answer fast."""
        g = self.gw
        adds = 0
        worst = 0.0
        conn = g.connect(10)
        while time.monotonic() < deadline:
            for method, path, body in (("GET", "/healthz", None), ("GET", "/metrics", None),
                                       ("POST", "/v1/values/other/add", {"delta": 1}),
                                       ("GET", "/v1/values/other", None),
                                       ("GET", "/v1/objects", None), ("GET", "/v1/store", None),
                                       ("GET", "/v1/arrays/a", None), ("GET", "/v1/queues/q", None)):
                r, took = timed(lambda: g.request(method, path, json_body=body, conn=conn))
                self.assertEqual(r.status, 200, (path, r))
                worst = max(worst, took)
                adds += path.endswith("/add")
        conn.close()
        return adds, worst

    def run_stuck(self, kind, results):
        def one(i, method, path, body):
            r, took = timed(lambda: self.gw.request(method, path, json_body=body, timeout=30))
            results[i] = (r, took)
        threads = []
        for i, (method, path, body) in enumerate(STUCK[kind] * 3):
            t = threading.Thread(target=one, args=(i, method, path, body))
            t.start()
            threads.append(t)
        return threads

    def test_stopped_holder(self):
        for kind, name in (("array", "a"), ("put", "q"), ("get", "q"), ("store", "-")):
            with self.subTest(lock=kind):
                self.setUp()
                before = self.state()
                holder = Holder(self.gw.store, kind, name)
                try:
                    results = {}
                    threads = self.run_stuck(kind, results)
                    # More stuck requests than worker threads: the others
                    # still answer at full speed.
                    adds, worst = self.check_others(time.monotonic() + BOUND + 0.5)
                    for t in threads:
                        t.join(30)
                    self.assertLess(worst, 0.5, "a request of another object waited")
                    self.assertEqual(len(results), len(STUCK[kind]) * 3)
                    for r, took in results.values():
                        self.assertEqual(r.status, 503, r)
                        self.assertEqual(r.error, "busy")
                        self.assertEqual(r.header("Retry-After"), "1")
                        self.assertGreaterEqual(took, BOUND - 0.05)
                        self.assertLess(took, BOUND + 1.5)
                    self.assertEqual(self.state(), before, "a 503 changed something")
                    self.assertEqual(self.gw.get("/v1/values/other").json["value"], adds)
                finally:
                    holder.resume() if holder.proc.poll() is None else None
                    holder.kill()
                # All is normal again.
                for method, path, body in STUCK[kind]:
                    r = self.gw.request(method, path.replace("timeout=5", "timeout=0"),
                                        json_body=body)
                    self.assertIn(r.status, (200, 201, 204), (path, r))

    def test_released_before_the_bound(self):
        """A request parked on a lock goes through once it is let go."""
        holder = Holder(self.gw.store, "array", "a")
        try:
            out = {}
            t = threading.Thread(target=lambda: out.update(r=timed(lambda: self.gw.request(
                "POST", "/v1/arrays/a/add", json_body={"index": 0, "delta": 5}))))
            t.start()
            time.sleep(0.3)
            self.assertNotIn("r", out)
            holder.resume()
            t.join(10)
            r, took = out["r"]
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["values"], [6, 2, 3, 4])
            self.assertLess(took, 0.8)  # resumed at 0.3 s; retried within ms
        finally:
            holder.kill()


    def test_writer_stopped_mid_copy(self):
        """A writer stopped in the middle of a slice's copy: even reads of
        that array need its lock. They answer 503 busy within the bound;
        listings, /metrics, other objects and a new event stream (whose
        snapshot the follower reads) go on without waiting for it."""
        g = self.gw
        holder = Holder(g.store, "midcopy", "a")
        try:
            out = {}
            t = threading.Thread(target=lambda: out.update(r=timed(lambda: g.get("/v1/arrays/a"))))
            t.start()
            s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
            s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = b""
            deadline = time.monotonic() + 3
            while b'"name":"q"' not in got:
                self.assertLess(time.monotonic(), deadline, "no snapshot: %r" % got)
                got += s.recv(65536)
            self.assertNotIn(b'"name":"a"', got)  # its state cannot be read now
            adds, worst = self.check_others_but_a(time.monotonic() + 0.5)
            self.assertLess(worst, 0.5)
            self.assertEqual(g.post("/v1/values/other/add").status, 200)
            got = b""
            while b'value/other/add' not in got and b'"name":"other","kind":"value","op":"add"' not in got:
                self.assertLess(time.monotonic(), deadline + 3, "no live event: %r" % got)
                got += s.recv(65536)
            s.close()
            t.join(10)
            r, took = out["r"]
            self.assertEqual((r.status, r.error, r.header("Retry-After")), (503, "busy", "1"), r)
            self.assertLess(took, BOUND + 1.5)
            holder.resume()
            r = g.get("/v1/arrays/a")
            self.assertEqual((r.status, r.json["values"]), (200, [1, 2, 3, 4]))
        finally:
            holder.kill()

    def check_others_but_a(self, deadline):
        worst, n = 0.0, 0
        while time.monotonic() < deadline:
            for path in ("/healthz", "/metrics", "/v1/objects", "/v1/store",
                         "/v1/values/other", "/v1/queues/q"):
                r, took = timed(lambda: self.gw.get(path))
                self.assertEqual(r.status, 200, (path, r))
                worst = max(worst, took)
                n += 1
        return n, worst


def send_and_close(port, request):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(request)
    s.close()


def pop_request(timeout):
    return ("POST /v1/queues/q/pop?timeout=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Length: 0\r\n\r\n" % timeout).encode()


def put_request(item):
    body = json.dumps(item).encode()
    return (b"POST /v1/queues/full/items?timeout=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body))


class Abandoned(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = gw.Gateway("--max-conns", "200").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()

    def wait_parked(self, n, within):
        deadline = time.monotonic() + within
        while self.gw.metric("atrium_parked_requests") != n:
            self.assertLess(time.monotonic(), deadline,
                            "parked: %s" % self.gw.metric("atrium_parked_requests"))
            time.sleep(0.05)

    def test_pops_of_clients_that_left(self):
        g = self.gw
        self.assertIn(g.put("/v1/queues/q", {}).status, (200, 201))
        for _ in range(250):
            try:
                send_and_close(g.port, pop_request(30))
            except OSError:
                pass  # refused past the connection limit
        t0 = time.monotonic()
        r = g.get("/healthz", timeout=10)
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.wait_parked(0, 3.0)
        # Nothing was taken: a put's item is there for the next pop.
        self.assertEqual(g.post("/v1/queues/q/items", {"n": 1}).status, 201)
        time.sleep(0.3)
        self.assertEqual(g.get("/v1/queues/q").json["size"], 1)
        r = g.post("/v1/queues/q/pop")
        self.assertEqual(r.json, {"items": [{"n": 1}]})

    def put_left(self, wait_before_pop):
        g = self.gw
        g.request("DELETE", "/v1/queues/full")
        self.assertEqual(g.put("/v1/queues/full", {"maxsize": 1}).status, 201)
        self.assertEqual(g.post("/v1/queues/full/items", "A").status, 201)
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(put_request("B"))
        self.wait_parked(1, 3.0)
        s.close()  # gone while parked, with no room yet
        time.sleep(wait_before_pop)
        r = g.post("/v1/queues/full/pop")  # room appears
        self.assertEqual(r.json, {"items": ["A"]})
        self.wait_parked(0, 3.0)
        time.sleep(0.3)
        self.assertEqual(g.get("/v1/queues/full").json["size"], 0,
                         "a put whose client left added its item")

    def test_put_resumed_after_client_left(self):
        self.put_left(0)

    def test_put_released_after_client_left(self):
        self.put_left(1.5)


if __name__ == "__main__":
    gw.main()
