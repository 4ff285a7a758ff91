"""Events on the nng pub socket: changes made over HTTP and by separate C
processes (libatrium, through the atrium CLI), topic filtering, sequence
numbers (gaps, resync, restarts), the events address."""
import errno
import socket
import time
import unittest

import evlib
from evlib import gw


def named(name, op=None):
    return lambda e: e.json["name"] == name and (op is None or e.json["op"] == op)


class Events(unittest.TestCase):
    """One gateway, its events on an ipc:// socket."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = evlib.TempDir()
        cls.gw = evlib.start("--events", cls.tmp.url())

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.tmp.close()

    def setUp(self):
        self.subs = []

    def tearDown(self):
        for s in self.subs:
            s.close()

    def sub(self, *prefixes, probe=None, **kw):
        """A connected subscriber: probe is a value name it also hears, poked
        until an event about it arrives."""
        if probe:
            prefixes = prefixes + ("value/%s/" % probe,)
        s = evlib.Sub(self.gw.events, *prefixes, **kw)
        self.subs.append(s)
        if probe:
            s.sync(lambda: evlib.bump(self.gw, probe), named(probe))
        return s

    def test_ready_line_names_ipc_url(self):
        self.assertEqual(self.gw.events, self.tmp.url())

    def test_http_changes(self):
        s = self.sub("value/h.", "array/h.", "queue/h.", probe="h.probe")
        g = self.gw
        g.request("PUT", "/v1/values/h.v", body='{"type":"q","value":9007199254740993}')
        e = s.wait(named("h.v", "created"))
        self.assertEqual(e.topic, "value/h.v/created")
        self.assertIn('"value":9007199254740993,', e.data)
        self.assertEqual(e.json["type"], "q")
        g.post("/v1/values/h.v/add", {"delta": 2})
        e = s.wait(named("h.v", "add"))
        self.assertIn('"value":9007199254740995,', e.data)
        self.assertEqual(e.json["version"], g.get("/v1/values/h.v").json["version"])
        g.put("/v1/values/h.v", {"type": "q", "value": 7})
        self.assertEqual(s.wait(named("h.v", "set")).json["value"], 7)

        g.put("/v1/arrays/h.a", {"type": "h", "values": [1, 2, 3]})
        e = s.wait(named("h.a", "created"))
        self.assertEqual((e.topic, e.json["length"], e.json["values"]),
                         ("array/h.a/created", 3, [1, 2, 3]))
        g.request("PATCH", "/v1/arrays/h.a", json_body={"start": 1, "values": [5, 6]})
        e = s.wait(lambda e: named("h.a", "set")(e) and e.json["values"] == [1, 5, 6])
        self.assertEqual(e.json["version"], g.get("/v1/arrays/h.a").json["version"])
        g.post("/v1/arrays/h.a/add", {"index": 0, "delta": 10})
        self.assertEqual(s.wait(named("h.a", "add")).json["values"], [11, 5, 6])

        g.put("/v1/queues/h.q", {"maxsize": 10})
        s.wait(named("h.q", "created"))
        g.request("POST", "/v1/queues/h.q/items", body='{"job": 1}')
        g.request("POST", "/v1/queues/h.q/items", body='{"job": 2}')
        # Two puts may come as one event: the last carries the latest state.
        e = s.wait(lambda e: named("h.q", "put")(e) and e.json["size"] == 2)
        self.assertEqual((e.topic, e.json["maxsize"]), ("queue/h.q/put", 10))
        g.post("/v1/queues/h.q/pop")
        self.assertEqual(s.wait(named("h.q", "pop")).json["size"], 1)
        g.request("DELETE", "/v1/queues/h.q/items")
        self.assertEqual(s.wait(named("h.q", "clear")).json["size"], 0)
        g.request("DELETE", "/v1/queues/h.q")
        e = s.wait(named("h.q", "deleted"))
        self.assertEqual(e.json, {"seq": e.seq, "kind": "queue", "name": "h.q",
                                  "op": "deleted"})
        seqs = [e.seq for e in s.events]
        self.assertEqual(seqs, sorted(set(seqs)))

    def test_c_process_changes(self):
        s = self.sub("value/c.", "queue/c.", probe="c.probe")
        evlib.cli(self.gw, "set", "c.v", "q", "18446744073709551")
        e = s.wait(named("c.v", "created"))
        self.assertEqual(e.json["value"], 18446744073709551)
        evlib.cli(self.gw, "add", "c.v", "-1")
        self.assertEqual(s.wait(named("c.v", "add")).json["value"], 18446744073709550)
        evlib.cli(self.gw, "put", "c.q", '{"from": "C"}')
        s.wait(named("c.q", "created"))
        self.assertEqual(s.wait(named("c.q", "put")).json["size"], 1)
        evlib.cli(self.gw, "pop", "c.q")
        self.assertEqual(s.wait(named("c.q", "pop")).json["size"], 0)
        evlib.cli(self.gw, "rm", "c.v")
        s.wait(named("c.v", "deleted"))

    def test_topic_filter(self):
        g = self.gw
        g.put("/v1/queues/jobs")
        g.put("/v1/queues/jobs2")
        g.put("/v1/values/jobs", {"type": "i"})
        s = self.sub("queue/jobs/")
        s.sync(lambda: g.request("POST", "/v1/queues/jobs/items", body="0"),
               named("jobs"))
        for i in range(3):
            g.request("POST", "/v1/queues/jobs2/items", body=str(i))
            g.post("/v1/values/jobs/add")
        g.post("/v1/queues/jobs/pop?max=1000")
        size = g.get("/v1/queues/jobs").json["size"]
        s.wait(lambda e: named("jobs", "pop")(e) and e.json["size"] == size)
        s.drain()
        self.assertTrue(s.events)
        for e in s.events:
            self.assertTrue(e.topic.startswith("queue/jobs/"), e)
            self.assertEqual((e.json["kind"], e.json["name"]), ("queue", "jobs"))

    def test_seq_contiguous_without_loss(self):
        # Everything an unfiltered subscriber gets, in order, no hole.
        s = self.sub()
        s.sync(lambda: evlib.bump(self.gw, "n.probe"), named("n.probe"))
        for i in range(100):
            evlib.bump(self.gw, "n.%d" % (i % 7))
        self.gw.put("/v1/values/n.last", {"type": "i", "value": 1})
        s.wait(named("n.last"))
        seqs = [e.seq for e in s.events]
        start = seqs.index(s.wait(named("n.probe")).seq)
        self.assertEqual(seqs[start:], list(range(seqs[start], seqs[start] + len(seqs) - start)))


class Gaps(unittest.TestCase):
    """Lost events show as a jump in seq; a follower that fell behind the
    store's feed publishes every object's state with op "resync"."""

    def test_slow_subscriber_sees_gap(self):
        tmp = evlib.TempDir()
        g = evlib.start("--events", tmp.url())
        s = None
        try:
            s = evlib.Sub(g.events, recvbuf=2)
            s.sync(lambda: evlib.bump(g, "s.probe"), named("s.probe"))
            s.pause()
            # The publisher never waits for it: 40000 events go out while it
            # sleeps; the oldest of its queue are dropped.
            evlib.tool("burst", g.store, 20000)
            g.put("/v1/values/s.anchor", {"type": "i", "value": 42})
            s.resume()
            last = s.wait(named("s.anchor"), timeout=60)
            self.assertEqual(last.json["value"], 42)
            # Changes carry each their own seq. If the burst also outran
            # the store's feed, the follower publishes every object's state
            # as "resync" events, which carry the seq before the resync
            # point (DESIGN): those may repeat it, and are left out here.
            seqs = [e.seq for e in s.events if e.op != "resync"]
            self.assertEqual(seqs, sorted(set(seqs)))
            jumps = [b - a for a, b in zip(seqs, seqs[1:]) if b - a > 1]
            self.assertTrue(jumps, "no gap seen in %d events" % len(seqs))
        finally:
            if s:
                s.close()
            g.stop()
            tmp.close()

    def test_feed_gap_publishes_resync(self):
        store = gw.fresh_store()
        evlib.tool("mkstore", store, 16)  # a tiny change feed, easy to lap
        g = evlib.start(store=store)
        s = sse = None
        try:
            g.put("/v1/values/eg.anchor", {"type": "i", "value": 7})
            g.put("/v1/queues/eg.q")
            s = evlib.Sub(g.events, "value/eg.", "queue/eg.")
            s.sync(lambda: evlib.bump(g, "eg.probe"), named("eg.probe"))
            sse = evlib.SSE(g, "/v1/events?topics=value/eg.anchor/")
            sse.wait(lambda e: e.json and e.op == "snapshot")
            resync = None
            deadline = time.monotonic() + 60
            while resync is None and time.monotonic() < deadline:
                evlib.tool("burst", g.store, 20000)
                v = evlib.bump(g, "eg.probe")
                s.wait(lambda e: named("eg.probe")(e) and e.json["value"] == v)
                resync = next((e for e in s.events if e.op == "resync"), None)
            self.assertIsNotNone(resync, "the follower was never lapped")
            e = s.wait(named("eg.anchor", "resync"))
            self.assertEqual((e.topic, e.json["value"], e.json["type"]),
                             ("value/eg.anchor/resync", 7, "i"))
            q = s.wait(named("eg.q", "resync"))
            self.assertEqual(q.json["size"], 0)
            # Resync events carry the seq just before the resync point, so
            # later events are numbered above them. (The last bump may
            # have come inside a resync itself: make new changes until
            # one comes as itself.)
            s.sync(lambda: evlib.bump(g, "eg.probe"),
                   lambda x: x.seq > e.seq and x.op != "resync")
            # SSE streams get the state again as well.
            r = sse.wait(lambda x: x.json and x.op == "resync")
            self.assertEqual((r.name, r.json["value"]), ("eg.anchor", 7))
        finally:
            for x in (s, sse):
                if x:
                    x.close()
            g.stop()


class Lifecycle(unittest.TestCase):

    def test_seq_grows_across_restarts(self):
        store = gw.fresh_store()
        try:
            seqs = []
            for _ in range(2):
                g = evlib.start(store=store, keep_store=True)
                s = evlib.Sub(g.events, "value/r.v/")
                try:
                    s.sync(lambda: evlib.bump(g, "r.v"), named("r.v"))
                    seqs.append(s.events[-1].seq)
                finally:
                    s.close()
                    g.stop()
            self.assertGreater(seqs[1], seqs[0])
        finally:
            gw.remove(store)

    def test_tcp_port_zero_names_real_port(self):
        g = evlib.start("--events", "tcp://127.0.0.1:0")
        try:
            self.assertRegex(g.events, r"^tcp://127\.0\.0\.1:[1-9][0-9]*$")
            s = evlib.Sub(g.events, "value/p0/")
            s.sync(lambda: evlib.bump(g, "p0"), named("p0"))
            s.close()
        finally:
            g.stop()

    def test_busy_address_that_was_asked_for_fails(self):
        a = evlib.start()
        try:
            b = gw.Gateway("--events", a.events)
            with self.assertRaises(AssertionError):
                b.start()
            self.assertIn("cannot listen for events on " + a.events, b.stderr)
            self.assertNotEqual(b.proc.returncode, 0)
            gw.remove(b.store)
        finally:
            a.stop()

    def test_busy_default_address_falls_back(self):
        hold = socket.socket()
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            hold.bind(("127.0.0.1", 7451))
            hold.listen(1)
        except OSError as e:  # someone else holds it: just as good
            self.assertEqual(e.errno, errno.EADDRINUSE)
        try:
            g = gw.Gateway().start()
            try:
                url = evlib.events_url(g)
                self.assertRegex(url, r"^tcp://127\.0\.0\.1:[0-9]+$")
                self.assertNotEqual(url, "tcp://127.0.0.1:7451")
                evlib.wait_for(lambda: "7451 was in use; events on " + url in g.stderr,
                               what="the warning")
            finally:
                g.stop()
        finally:
            hold.close()


if __name__ == "__main__":
    gw.main()
