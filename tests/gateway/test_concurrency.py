"""Parallel clients, many parked requests, and an orderly stop."""
import json
import select
import socket
import threading
import time
import unittest

import gw


def raw_request(port, method, path, body=b""):
    """Opens a connection and sends one request without reading the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
            % (method, path, len(body)))
    if body:
        head += "Content-Type: application/json\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    return s


def read_answers(socks, timeout):
    """Reads one whole answer from every socket; returns {sock: (status,
    body)} for those that answered within timeout."""
    bufs = {s: b"" for s in socks}
    done = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(socks):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # poll, not select: a test of ten thousand parked requests has
        # descriptors past select's 1024.
        poller = select.poll()
        by_fd = {}
        for s in socks:
            if s not in done:
                poller.register(s, select.POLLIN)
                by_fd[s.fileno()] = s
        ready = [by_fd[fd] for fd, _ in poller.poll(min(left, 1.0) * 1000)]
        for s in ready:
            chunk = s.recv(65536)
            bufs[s] += chunk
            head, sep, body = bufs[s].partition(b"\r\n\r\n")
            if not sep and chunk:
                continue
            lines = head.decode().split("\r\n")
            status = int(lines[0].split()[1])
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.lower() == "content-length":
                    length = int(v)
            if len(body) >= length or not chunk:
                done[s] = (status, body[:length])
    return done


class Concurrency(gw.GatewayCase):

    def test_parallel_adds_exact(self):
        self.assertEqual(self.gw.put("/v1/values/hits", {"type": "q"}).status, 201)
        errors = []

        def client():
            conn = self.gw.connect()
            try:
                for _ in range(2000):
                    r = self.gw.request("POST", "/v1/values/hits/add", conn=conn)
                    if r.status != 200:
                        errors.append(r)
                        return
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            finally:
                conn.close()
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(self.gw.get("/v1/values/hits").json["value"], 8 * 2000)

    def test_thousand_parked_pops(self):
        n = 1000
        self.gw.put("/v1/queues/many")
        self.gw.put("/v1/values/busy", {"type": "q"})
        socks = [raw_request(self.gw.port, "POST", "/v1/queues/many/pop?timeout=60")
                 for _ in range(n)]
        try:
            while self.gw.metric("atrium_parked_requests") < n:
                pass
            # Adds are served at once while the pops wait: no worker is held.
            conn = self.gw.connect()
            t0 = time.monotonic()
            for _ in range(500):
                self.assertEqual(
                    self.gw.request("POST", "/v1/values/busy/add", conn=conn).status, 200)
            took = time.monotonic() - t0
            conn.close()
            self.assertLess(took, 10)
            self.assertEqual(self.gw.get("/v1/values/busy").json["value"], 500)
            # One batch feeds every waiter one item.
            items = [{"job": i, "big": 2**63 + i} for i in range(n)]
            r = self.gw.request("POST", "/v1/queues/many/batch", body=json.dumps(items))
            self.assertEqual(r.status, 201)
            answers = read_answers(socks, 30)
            self.assertEqual(len(answers), n)
            got = []
            for status, body in answers.values():
                self.assertEqual(status, 200)
                got.extend(json.loads(body)["items"])
            self.assertEqual(sorted(got, key=lambda x: x["job"]), items)
            self.assertEqual(self.gw.get("/v1/queues/many").json["size"], 0)
            self.assertEqual(self.gw.metric("atrium_parked_requests"), 0)
        finally:
            for s in socks:
                s.close()

    def test_left_client_takes_nothing(self):
        self.gw.put("/v1/queues/gone")
        s = raw_request(self.gw.port, "POST", "/v1/queues/gone/pop?timeout=30")
        while self.gw.metric("atrium_parked_requests") < 1:
            pass
        s.close()
        self.gw.post("/v1/queues/gone/items", "precious")
        # The abandoned pop must not have eaten the item.
        deadline = time.monotonic() + 5
        while self.gw.metric("atrium_parked_requests") > 0 and time.monotonic() < deadline:
            pass
        r = self.gw.post("/v1/queues/gone/pop?timeout=5")
        self.assertEqual(r.json, {"items": ["precious"]})


class Shutdown(unittest.TestCase):

    def test_sigterm_answers_parked_at_once(self):
        g = gw.Gateway().start()
        try:
            g.put("/v1/queues/sq")
            g.put("/v1/values/sv", {"type": "i"})
            ver = g.get("/v1/values/sv").json["version"]
            pops = [raw_request(g.port, "POST", "/v1/queues/sq/pop?timeout=120")
                    for _ in range(50)]
            watches = [raw_request(g.port, "GET", "/v1/values/sv?wait=%d&timeout=120" % ver)
                       for _ in range(10)]
            while g.metric("atrium_parked_requests") < 60:
                pass
            t0 = time.monotonic()
            g.proc.send_signal(15)
            answers = read_answers(pops + watches, 10)
            took = time.monotonic() - t0
            self.assertEqual(len(answers), 60)
            self.assertLess(took, 5)
            for s in pops:
                self.assertEqual(answers[s][0], 204)
            for s in watches:
                self.assertEqual(answers[s][0], 200)
                self.assertEqual(json.loads(answers[s][1])["version"], ver)
            for s in pops + watches:
                s.close()
        finally:
            g.stop()  # checks exit status 0 and sanitizer reports


if __name__ == "__main__":
    gw.main()
