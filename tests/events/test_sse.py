"""Server-Sent Events (GET /v1/events): snapshot, live events from HTTP
and from C processes, Last-Event-ID resumes (replayed from the ring, or a
resync when too old), topics, heartbeats, the token and its tickets, a
stalled reader, SIGTERM with streams open."""
import os
import signal
import subprocess
import threading
import time
import unittest

import evlib
from evlib import gw


def ev(name, op=None):
    return lambda e: e.json is not None and e.name == name and (op is None or e.op == op)


def asan_env():
    """A small ASan quarantine, so that freed memory does not count as
    growth in the memory check (harmless without ASan)."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=4"}


class Streams(unittest.TestCase):
    """One gateway with quick heartbeats."""

    @classmethod
    def setUpClass(cls):
        cls.gw = evlib.start("--sse-heartbeat", "0.2")

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()

    def setUp(self):
        self.streams = []

    def tearDown(self):
        for s in self.streams:
            s.close()

    def stream(self, path="/v1/events", **kw):
        s = evlib.SSE(self.gw, path, **kw)
        self.streams.append(s)
        return s

    def test_snapshot_then_live(self):
        g = self.gw
        g.request("PUT", "/v1/values/sn.v", body='{"type":"Q","value":18446744073709551615}')
        g.put("/v1/arrays/sn.a", {"type": "d", "values": [0.1, 2.5]})
        g.put("/v1/queues/sn.q", {"maxsize": 4})
        g.put("/v1/values/other.v", {"type": "i"})
        s = self.stream("/v1/events?topics=value/sn.,array/sn.,queue/sn.")
        self.assertEqual(s.status, 200)
        self.assertEqual(s.headers["content-type"], "text/event-stream")
        s.wait(ev("sn.v", "snapshot"))
        snap = [e for e in s.data_events()]
        self.assertEqual([e.name for e in snap], ["sn.a", "sn.q", "sn.v"])
        self.assertTrue(all(e.op == "snapshot" for e in snap))
        # Only the batch's last event carries the id: a client cut off in
        # the middle gets the whole batch again.
        self.assertEqual([e.id is not None for e in snap], [False, False, True])
        self.assertEqual(snap[-1].id, snap[-1].seq)
        self.assertEqual(snap[0].json["values"], [0.1, 2.5])
        self.assertEqual(snap[0].json["length"], 2)
        self.assertEqual((snap[1].json["size"], snap[1].json["maxsize"]), (0, 4))
        self.assertIn('"value":18446744073709551615,', snap[2].data)
        self.assertEqual(snap[2].json["version"], g.get("/v1/values/sn.v").json["version"])

        g.post("/v1/values/sn.v/add", {"delta": -5})
        e = s.wait(ev("sn.v", "add"))
        self.assertEqual((e.id, e.json["value"]), (e.seq, 18446744073709551610))
        self.assertGreater(e.seq, snap[-1].seq)
        evlib.cli(g, "put", "sn.q", '"from C"')
        e = s.wait(ev("sn.q", "put"))
        self.assertEqual(e.json["size"], 1)
        evlib.cli(g, "add", "other.v", "1")
        evlib.cli(g, "rm", "sn.a")
        s.wait(ev("sn.a", "deleted"))
        self.assertFalse([e for e in s.data_events() if e.name == "other.v"])

    def test_events_carry_what_get_gives(self):
        """A snapshot event and a live event of an object are its GET
        answer plus seq and op, for every kind."""
        g = self.gw
        g.put("/v1/values/gs.v", {"type": "d", "value": 0.5})
        g.put("/v1/arrays/gs.a", {"type": "h", "values": [-1, 7]})
        g.put("/v1/queues/gs.q", {"maxsize": 3})
        g.post("/v1/queues/gs.q/items", [1, 2])
        s = self.stream("/v1/events?topics=value/gs.,array/gs.,queue/gs.")
        s.wait(ev("gs.v", "snapshot"))
        for e in s.data_events():
            state = dict(e.json)
            del state["seq"], state["op"]
            got = g.get("/v1/%ss/%s" % (state["kind"], e.name)).json
            self.assertEqual(state, got, e.name)
        g.post("/v1/queues/gs.q/items", "three")
        e = s.wait(ev("gs.q", "put"))
        state = dict(e.json)
        del state["seq"], state["op"]
        self.assertEqual(state, g.get("/v1/queues/gs.q").json)
        self.assertEqual(state["size"], 2)

    def test_same_json_as_nng(self):
        g = self.gw
        sub = evlib.Sub(g.events, "value/sj.")
        try:
            sub.sync(lambda: evlib.bump(g, "sj.v"), ev("sj.v"))
            s = self.stream("/v1/events?topics=value/sj.")
            s.wait(ev("sj.v", "snapshot"))
            evlib.bump(g, "sj.v")
            a = s.wait(ev("sj.v", "add"))
            b = sub.wait(lambda e: e.seq == a.seq)
            self.assertEqual(a.data, b.data)
            self.assertEqual(b.topic, "value/sj.v/add")
        finally:
            sub.close()

    def test_resume_replays(self):
        g = self.gw
        evlib.bump(g, "rs.v")
        s = self.stream("/v1/events?topics=value/rs.")
        s.wait(ev("rs.v", "snapshot"))
        evlib.bump(g, "rs.v")
        first = s.wait(lambda e: ev("rs.v", "add")(e) and e.json["value"] == 2)
        s.close()
        # One add at a time, each seen published before the next, so that
        # each has an event of its own with its own value.
        watch = self.stream("/v1/events?topics=value/rs.v/")
        watch.wait(ev("rs.v", "snapshot"))
        for v in (3, 4, 5):
            self.assertEqual(evlib.bump(g, "rs.v"), v)
            watch.wait(lambda e: ev("rs.v", "add")(e) and e.json["value"] == v)
        evlib.bump(g, "rs.other")
        for how in ("header", "query"):
            if how == "header":
                r = self.stream("/v1/events?topics=value/rs.v/",
                                headers={"Last-Event-ID": str(first.id)})
            else:
                r = self.stream("/v1/events?topics=value/rs.v/&lastEventId=%d" % first.id)
            r.wait(lambda e: ev("rs.v")(e) and e.json["value"] == 5)
            got = r.data_events()
            self.assertEqual([e.json["value"] for e in got], [3, 4, 5], how)
            self.assertTrue(all(e.op == "add" and e.id == e.seq for e in got), how)

    def test_resume_too_old_resyncs(self):
        g = self.gw
        g.put("/v1/values/old.v", {"type": "i", "value": 3})
        s = self.stream("/v1/events?topics=value/old.")
        first = s.wait(ev("old.v", "snapshot"))
        s.close()
        # More events than the ring keeps (4096); a witness stream shows
        # when the gateway has followed them all (it may lag the burst).
        evlib.tool("burst", g.store, 3000)
        w = self.stream("/v1/events?topics=value/old.")
        w.wait(ev("old.v", "snapshot"))
        evlib.bump(g, "old.v")
        w.wait(lambda e: ev("old.v")(e) and e.op == "add" and e.json["value"] == 4)
        w.close()
        r = self.stream("/v1/events?topics=value/old.", headers={"Last-Event-ID": str(first.id)})
        e = r.wait(ev("old.v"))
        self.assertEqual((e.op, e.json["value"], e.id), ("resync", 4, e.seq))
        # An id from the future (another store, say) is no better.
        f = self.stream("/v1/events?topics=value/old.", headers={"Last-Event-ID": "999999999999"})
        self.assertEqual(f.wait(ev("old.v")).op, "resync")

    def test_topics(self):
        g = self.gw
        g.put("/v1/queues/tj")
        g.put("/v1/queues/tj2")
        s = self.stream("/v1/events?topics=queue/tj/")
        s.wait(ev("tj", "snapshot"))
        g.request("POST", "/v1/queues/tj2/items", body="1")
        g.request("POST", "/v1/queues/tj/items", body="1")
        s.wait(ev("tj", "put"))
        self.assertEqual({e.name for e in s.data_events()}, {"tj"})
        # A prefix with the op picks one op; no snapshot then.
        p = self.stream("/v1/events?topics=queue/tj/pop")
        g.post("/v1/queues/tj/pop")
        s.wait(ev("tj", "pop"))
        e = p.wait(ev("tj"))
        self.assertEqual(e.op, "pop")
        self.assertEqual(len(p.data_events()), 1)

    def test_first_change_after_answer(self):
        """With nobody listening the follower pauses; a stream that comes
        then gets every change made after its answer, however late the
        follower wakes (CPU hogs make it late now and then)."""
        logged = len(self.gw.lines)
        trials = gw.scaled(40, 100)  # each sleeps 60 ms for the pause
        hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(3)]
        try:
            out = evlib.tool("sse-first", self.gw.store, self.gw.port, "first.v", trials)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
        self.assertEqual(out, "missed 0 of %d" % trials)
        # Clients that close their streams are no news for the log.
        self.assertEqual("".join(self.gw.lines[logged:]), "")

    def test_heartbeat(self):
        s = self.stream("/v1/events?topics=nothing/")
        s.wait(lambda e: e.comment, timeout=5, what="a heartbeat")
        self.assertEqual(s.data_events(), [])

    def test_bad_requests(self):
        g = self.gw
        r = g.get("/v1/events", headers={"Last-Event-ID": "abc"})
        self.assertEqual((r.status, r.error), (400, "invalid_query"))
        r = g.get("/v1/events?topics=" + ",".join("t%d" % i for i in range(40)))
        self.assertEqual((r.status, r.error), (400, "invalid_query"))
        r = g.request("DELETE", "/v1/events")
        self.assertEqual(r.status, 405)
        # Without a token set, a ticket is not needed, but works.
        r = g.post("/v1/events/tickets")
        self.assertEqual(r.status, 201)
        s = self.stream("/v1/events?ticket=" + r.json["ticket"])
        self.assertEqual(s.status, 200)


class Tickets(unittest.TestCase):
    """With --token-file: the Bearer header, or a single-use ticket."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = evlib.TempDir()
        cls.token = "s3cret-token-for-events"
        path = os.path.join(cls.tmp.path, "token")
        with open(path, "w") as f:
            f.write(cls.token + "\n")
        cls.gw = evlib.start("--token-file", path)
        cls.auth = {"Authorization": "Bearer " + cls.token}

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.tmp.close()

    def test_token_or_ticket(self):
        g = self.gw
        r = g.get("/v1/events")
        self.assertEqual((r.status, r.error), (401, "unauthorized"))
        s = evlib.SSE(g, "/v1/events", headers=self.auth)
        self.assertEqual(s.status, 200)
        s.close()
        self.assertEqual(g.post("/v1/events/tickets").status, 401)
        r = g.post("/v1/events/tickets", headers=self.auth)
        self.assertEqual(r.status, 201)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        ticket = r.json["ticket"]
        self.assertRegex(ticket, "^[0-9a-f]{32}$")
        self.assertEqual(r.json["expires_in"], 30)
        g.put("/v1/values/tk.v", {"type": "i"}, headers=self.auth)
        s = evlib.SSE(g, "/v1/events?topics=value/tk.&ticket=" + ticket)
        self.assertEqual(s.status, 200)
        s.wait(ev("tk.v", "snapshot"))
        s.close()
        # Single use.
        again = evlib.SSE(g, "/v1/events?ticket=" + ticket)
        self.assertEqual(again.status, 401)
        again.close()
        for bad in ("0" * 32, "x", ""):
            r = g.get("/v1/events?ticket=" + bad)
            self.assertEqual(r.status, 401, bad)
        # A ticket opens the stream only, nothing else.
        t2 = g.post("/v1/events/tickets", headers=self.auth).json["ticket"]
        self.assertEqual(g.get("/v1/objects?ticket=" + t2).status, 401)

    def test_refused_request_keeps_ticket(self):
        """A stream refused for its Last-Event-ID or topics (400) does not
        use up its ticket."""
        g = self.gw
        ticket = g.post("/v1/events/tickets", headers=self.auth).json["ticket"]
        r = g.get("/v1/events?ticket=" + ticket, headers={"Last-Event-ID": "x"})
        self.assertEqual((r.status, r.error), (400, "invalid_query"))
        r = g.get("/v1/events?lastEventId=-1&ticket=" + ticket)
        self.assertEqual(r.status, 400)
        r = g.get("/v1/events?topics=%s&ticket=%s" % ("v" * 300, ticket))
        self.assertEqual(r.status, 400)
        s = evlib.SSE(g, "/v1/events?ticket=" + ticket)
        self.assertEqual(s.status, 200)
        s.close()
        again = evlib.SSE(g, "/v1/events?ticket=" + ticket)
        self.assertEqual(again.status, 401)
        again.close()


class Stalled(unittest.TestCase):
    """A client that stops reading costs nothing to writers or to other
    streams; its queue stays bounded; when it reads again it gets the
    current state (resync). SIGTERM still ends everything at once."""

    def test_stalled_reader(self):
        g = evlib.start("--sse-buffer", "256K", env=asan_env())
        streams = []
        try:
            g.put("/v1/values/st.v", {"type": "q"})
            g.put("/v1/arrays/big", {"type": "q", "length": 256})
            healthy = evlib.SSE(g, "/v1/events?topics=array/big/,value/st.v/")
            streams.append(healthy)
            healthy.wait(ev("big", "snapshot"))

            def adds(n):
                """n adds on one connection; the last value."""
                conn = g.connect()
                for _ in range(n):
                    r = g.post("/v1/values/st.v/add", conn=conn)
                    assert r.status == 200, r
                conn.close()
                healthy.poll(0)
                return r.json["value"]

            adds(300)

            stalled = evlib.SSE(g, "/v1/events", rcvbuf=4096)
            streams.append(stalled)
            stalled.wait(ev("big", "snapshot"))
            rss0 = evlib.rss_kib(g.proc.pid)
            # About 10 MB of events (at a pace the healthy reader keeps up
            # with) while the stalled client reads nothing.
            flood = subprocess.Popen([evlib.EV_TOOL, "arrays", g.store, "big", "3000", "600"],
                                     stdout=subprocess.PIPE)
            while flood.poll() is None:
                healthy.poll(0.05)
            final_version = int(flood.stdout.read())
            flood.stdout.close()
            self.assertEqual(flood.returncode, 0)
            healthy.wait(lambda e: ev("big")(e) and e.json["version"] == final_version,
                         timeout=30)
            # What a stalled stream may hold: its queue, the kernel's socket
            # buffers (the server's send buffer grows up to tcp_wmem's
            # maximum) and MHD's block; far less than went by.
            with open("/proc/sys/net/ipv4/tcp_wmem") as f:
                bound = (256 << 10) + int(f.read().split()[2]) + (1 << 20)
            self.assertGreater(healthy.body_bytes, bound)
            self.assertFalse([e for e in healthy.data_events() if e.op == "resync"])
            grown = evlib.rss_kib(g.proc.pid) - rss0
            self.assertLess(grown, 64 << 10, "atriumd grew %d KiB" % grown)

            # Writers are not held up (how fast they go is make bench's
            # http_value_add_stalled_sub); the other stream gets every add.
            last = adds(300)
            healthy.wait(lambda e: ev("st.v")(e) and e.json["value"] == last)
            values = [e.json["value"] for e in healthy.data_events()
                      if e.name == "st.v" and e.op == "add"]
            # Adds the follower had not read yet may come as one event, and
            # an event's state is read when it is published, so it may
            # already hold the next add too: never backwards, though.
            self.assertEqual(values, sorted(values))

            # The stalled client reads again: what was queued before the
            # overflow (bounded), then the current state as "resync".
            r = stalled.wait(lambda e: e.json is not None and e.op == "resync", timeout=30)
            self.assertLess(stalled.body_bytes, bound)
            print("stalled stream: %d bytes before its resync; healthy: %d"
                  % (stalled.body_bytes, healthy.body_bytes))
            self.assertIn(r.name, ("big", "st.v"))
            big = stalled.wait(ev("big", "resync"))
            self.assertEqual(big.json["version"], final_version)
            evlib.bump(g, "st.v")
            stalled.wait(lambda e: ev("st.v", "add")(e) and e.json["value"] == last + 1)

            # SIGTERM with a stalled stream open.
            stalled2 = evlib.SSE(g, "/v1/events", rcvbuf=4096)
            streams.append(stalled2)
            evlib.tool("arrays", g.store, "big", "2000")
            t0 = time.monotonic()
            g.stop()
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            for s in streams:
                s.close()
            g.stop()

    def test_sigterm_ends_streams(self):
        g = evlib.start()
        streams = []
        try:
            g.put("/v1/values/tt.v", {"type": "i"})
            for path in ("/v1/events", "/v1/events?topics=value/tt.v/", "/v1/events?topics=x/"):
                s = evlib.SSE(g, path)
                streams.append(s)
            streams[0].wait(ev("tt.v", "snapshot"))
            waiter = {}

            def pop():
                waiter["r"] = g.post("/v1/queues/tt.q/pop?timeout=30")
            g.put("/v1/queues/tt.q")
            t = threading.Thread(target=pop)
            t.start()
            evlib.wait_for(lambda: g.metric("atrium_parked_requests") == 1, what="a parked pop")
            t0 = time.monotonic()
            g.proc.send_signal(signal.SIGTERM)
            for s in streams:
                s.wait_end(10)  # the chunked body is ended properly
            t.join(10)
            self.assertEqual(waiter["r"].status, 204)
            g.stop()
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            for s in streams:
                s.close()
            g.stop()


if __name__ == "__main__":
    gw.main()
