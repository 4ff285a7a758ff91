"""Large stores over HTTP: listings that page (?prefix=, ?after=,
?limit=, "next") on /v1/objects and every per-kind list, bad paging
answered 400 with nothing changed, a walk that sees every object present
throughout it exactly once while others are created; /metrics modes
(every object's gauges up to --metrics-max, the --metrics-prefixes ones
past it, and the metric that says which); many parked requests on other
objects, of which a change wakes exactly the one it concerns.

ATRIUM_CHECK_LONG=1 parks 10,000 requests instead of 1,000."""
import json
import os
import threading
import time
import urllib.parse

import gw
from test_concurrency import raw_request, read_answers

LONG = os.environ.get("ATRIUM_CHECK_LONG") == "1"

# (route, list member or None when the kind has no list route, PUT body).
KINDS = [
    ("values", "values", {"type": "i"}),
    ("arrays", None, {"type": "d", "length": 2}),
    ("queues", None, {}),
    ("locks", "locks", {}),
    ("semaphores", "semaphores", {"value": 2}),
    ("flags", "flags", {}),
    ("barriers", "barriers", {"parties": 2}),
    ("dicts", "dicts", {}),
]


def q(path, **query):
    return path + "?" + urllib.parse.urlencode(query)


def scrape(g):
    """/metrics as {sample line's name and labels: value}."""
    r = g.get("/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


class Paging(gw.GatewayCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.made = {}  # name -> kind
        conn = cls.gw.connect()
        for i in range(40):
            route, _, body = KINDS[i % len(KINDS)]
            name = "pg.%02d" % i
            r = cls.gw.put("/v1/%s/%s" % (route, name), body, conn=conn)
            assert r.status == 201, r
            cls.made[name] = route
        for name in ("other", "pg", "pga", "ph.1"):
            assert cls.gw.put("/v1/values/" + name, {"type": "i"}, conn=conn).status == 201
            cls.made[name] = "values"
        conn.close()

    def test_pages_follow_next_in_name_order(self):
        for limit in (1, 3, 7, 44, 45, 1000):
            pages = []
            after = None
            while True:
                query = {"limit": limit}
                if after:
                    query["after"] = after
                r = self.gw.get(q("/v1/objects", **query))
                self.assertEqual(r.status, 200, r)
                names = [o["name"] for o in r.json["objects"]]
                self.assertLessEqual(len(names), limit)
                pages.append(names)
                if "next" not in r.json:
                    break
                self.assertEqual(r.json["next"], names[-1])
                self.assertEqual(len(names), limit)
                after = r.json["next"]
            flat = [n for p in pages for n in p]
            self.assertEqual(flat, sorted(self.made), "limit %d" % limit)
            # A last page exactly full says nothing more follows only when
            # nothing does: 44 objects in pages of 44 is one page.
            self.assertEqual(len(pages), max(1, -(-len(self.made) // limit)))

    def test_every_object_keeps_its_kind_and_state(self):
        objs = {o["name"]: o for o in self.gw.objects(limit=5)}
        self.assertEqual(set(objs), set(self.made))
        kind_of = {"values": "value", "arrays": "array", "queues": "queue",
                   "locks": "lock", "semaphores": "semaphore", "flags": "flag",
                   "barriers": "barrier", "dicts": "dict"}
        for name, route in self.made.items():
            self.assertEqual(objs[name]["kind"], kind_of[route], name)
            self.assertIn("version", objs[name])

    def test_prefix(self):
        got = [o["name"] for o in self.gw.objects(prefix="pg.1")]
        self.assertEqual(got, ["pg.%02d" % i for i in range(10, 20)])
        got = [o["name"] for o in self.gw.objects(prefix="pg")]
        self.assertEqual(got, sorted(n for n in self.made if n.startswith("pg")))
        self.assertEqual(len(got), 42)
        self.assertEqual(self.gw.objects(prefix="nothing"), [])
        # prefix with after and limit: the page starts after `after`.
        r = self.gw.get(q("/v1/objects", prefix="pg.", after="pg.05", limit=3))
        self.assertEqual([o["name"] for o in r.json["objects"]],
                         ["pg.06", "pg.07", "pg.08"])
        self.assertEqual(r.json["next"], "pg.08")
        # An empty prefix is every name.
        self.assertEqual(len(self.gw.objects(prefix="")), len(self.made))

    def test_every_kind_list_pages(self):
        for route, member, _ in KINDS:
            if member is None:
                continue  # (no list route: /v1/objects lists them)
            what = member
            want = sorted(n for n, k in self.made.items() if k == route)
            got = [o["name"] for o in self.gw.objects("/v1/" + route, what, limit=2)]
            self.assertEqual(got, want, route)
            got = [o["name"] for o in
                   self.gw.objects("/v1/" + route, what, prefix="pg.0", limit=1)]
            self.assertEqual(got, [n for n in want if n.startswith("pg.0")], route)

    def test_bad_paging_is_400_and_changes_nothing(self):
        before = self.gw.get("/v1/store").json
        for query in ["limit=0", "limit=-1", "limit=10001", "limit=abc",
                      "limit=1.5", "limit=", "after=", "after=a%2Fb",
                      "after=" + "x" * 65, "prefix=a%20b", "prefix=" + "y" * 65,
                      "prefix=%C3%A9"]:
            for path in ("/v1/objects", "/v1/values", "/v1/dicts"):
                r = self.gw.get(path + "?" + query)
                self.assertEqual(r.status, 400, (path, query, r))
                self.assertEqual(r.error, "invalid_query", (path, query))
        self.assertEqual(self.gw.get("/v1/store").json["objects"], before["objects"])
        # The bounds themselves are fine.
        self.assertEqual(self.gw.get("/v1/objects?limit=10000").status, 200)
        self.assertEqual(self.gw.get("/v1/objects?limit=1").status, 200)

    def test_default_limit(self):
        # The documented default (1000) without ?limit=.
        g = gw.Gateway().start()
        try:
            conn = g.connect()
            for i in range(1001):
                self.assertEqual(
                    g.put("/v1/values/d%04d" % i, {"type": "b"}, conn=conn).status, 201)
            conn.close()
            r = g.get("/v1/objects")
            self.assertEqual(len(r.json["objects"]), 1000)
            self.assertEqual(r.json["next"], "d0999")
            r = g.get("/v1/objects?after=d0999")
            self.assertEqual([o["name"] for o in r.json["objects"]], ["d1000"])
            self.assertNotIn("next", r.json)
            r = g.get("/v1/values?prefix=d100")
            self.assertEqual([o["name"] for o in r.json["values"]], ["d1000"])
        finally:
            g.stop()

    def test_walk_while_others_are_created_and_deleted(self):
        # Objects present throughout the walk are each seen exactly once;
        # those made or deleted meanwhile at most once.
        g = gw.Gateway().start()
        try:
            conn = g.connect()
            stay = ["w.%03d" % i for i in range(0, 300, 2)]
            gone = ["w.%03d" % i for i in range(1, 300, 4)]
            for name in stay + gone:
                self.assertEqual(g.put("/v1/values/" + name, {"type": "i"},
                                       conn=conn).status, 201)
            conn.close()
            stop = threading.Event()
            errors = []

            def churn():
                c = g.connect()
                i = 0
                try:
                    while not stop.is_set():
                        # New names before, between and after the walk's.
                        for name in ("w.%03d.n%d" % (i % 300, i), "a%d" % i, "z%d" % i):
                            r = g.put("/v1/values/" + name, {"type": "i"}, conn=c)
                            if r.status != 201:
                                errors.append(r)
                        if i < len(gone):
                            if g.request("DELETE", "/v1/values/" + gone[i],
                                         conn=c).status != 204:
                                errors.append(gone[i])
                        i += 1
                finally:
                    c.close()
            t = threading.Thread(target=churn)
            t.start()
            try:
                seen = [o["name"] for o in g.objects(prefix="w.", limit=7)]
            finally:
                stop.set()
                t.join(60)
            self.assertEqual(errors, [])
            self.assertEqual(len(seen), len(set(seen)), "an object seen twice")
            self.assertEqual(seen, sorted(seen))
            for name in stay:
                self.assertIn(name, seen)
        finally:
            g.stop()


class Metrics(gw.GatewayCase):
    """Below --metrics-max every object's gauges; past it the prefixes'."""
    gateway_args = ("--metrics-max", "6", "--metrics-prefixes", "hot.,hot.x,warm")

    def put_all(self, names):
        for name in names:
            self.assertIn(self.gw.put("/v1/values/" + name, {"type": "i", "value": 3}).status,
                          (200, 201))

    def test_modes(self):
        g = self.gw
        self.put_all(["hot.a", "cold.a", "warm1"])
        self.assertEqual(g.put("/v1/locks/hot.lock", {}).status, 201)
        self.assertEqual(g.put("/v1/dicts/cold.d", {}).status, 201)
        m = scrape(g)
        self.assertEqual(m["atrium_metrics_objects_all"], 1)
        self.assertEqual(m["atrium_metrics_objects_exported"], 5)
        self.assertEqual(m['atrium_value{name="cold.a",type="i"}'], 3)
        self.assertIn('atrium_dict_len{name="cold.d"}', m)
        # Past 6 objects: only hot.*, hot.x* (once) and warm*.
        self.put_all(["hot.xy", "cold.b", "cold.c"])
        m = scrape(g)
        self.assertEqual(m["atrium_metrics_objects_all"], 0)
        self.assertEqual(m["atrium_store_objects"], 8)
        values = sorted(k for k in m if k.startswith("atrium_value{"))
        self.assertEqual(values, ['atrium_value{name="hot.a",type="i"}',
                                  'atrium_value{name="hot.xy",type="i"}',
                                  'atrium_value{name="warm1",type="i"}'])
        self.assertEqual(m['atrium_lock_held{name="hot.lock"}'], 0)
        self.assertNotIn('atrium_dict_len{name="cold.d"}', m)
        self.assertEqual(m["atrium_metrics_objects_exported"], 4)

    def test_bad_flags_refused(self):
        for args in (["--metrics-objects", "some"], ["--metrics-max", "-1"],
                     ["--metrics-prefixes", "a/b"], ["--metrics-prefixes", "x" * 65]):
            g = gw.Gateway(*args)
            with self.assertRaises(AssertionError):
                g.start(timeout=10)
            self.assertIn("atriumd: bad --", g.stderr)

    def test_all_and_prefixes_modes(self):
        g = gw.Gateway("--metrics-objects", "all", "--metrics-max", "1").start()
        try:
            for n in ("a", "b", "c"):
                g.put("/v1/values/" + n, {"type": "i"})
            m = scrape(g)
            self.assertEqual(m["atrium_metrics_objects_all"], 1)
            self.assertEqual(m["atrium_metrics_objects_exported"], 3)
        finally:
            g.stop()
        g = gw.Gateway("--metrics-objects", "prefixes",
                       env={"ATRIUM_METRICS_PREFIXES": "b"}).start()
        try:
            for n in ("a", "b", "bb", "c"):
                g.put("/v1/values/" + n, {"type": "i"})
            m = scrape(g)
            self.assertEqual(m["atrium_metrics_objects_all"], 0)
            self.assertEqual(sorted(k for k in m if k.startswith("atrium_value{")),
                             ['atrium_value{name="b",type="i"}',
                              'atrium_value{name="bb",type="i"}'])
        finally:
            g.stop()


class StreamsByObject(gw.GatewayCase):
    """SSE streams whose topics name one object each get that object's
    snapshot and events only; broad ones (a kind, a name prefix, none)
    get every match; two topics of one stream matching one event give it
    once."""

    def test_matching(self):
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "events"))
        import evlib
        g = self.gw
        n = 40
        for i in range(n):
            self.assertEqual(g.put("/v1/values/s%02d" % i, {"type": "i"}).status, 201)
        self.assertEqual(g.put("/v1/queues/s05", {}).status, 409)  # (a value)
        self.assertEqual(g.put("/v1/queues/q", {}).status, 201)
        one = [evlib.SSE(g, "/v1/events?topics=value/s%02d/" % i) for i in range(n)]
        twice = evlib.SSE(g, "/v1/events?topics=value/s07/,value/s07/add,queue/q/")
        broad = evlib.SSE(g, "/v1/events?topics=value/s0")
        ops = evlib.SSE(g, "/v1/events?topics=value/s09/add")
        everything = evlib.SSE(g, "/v1/events")
        for i, st in enumerate(one):
            ev = st.wait(lambda e: not e.comment and e.op == "snapshot")
            self.assertEqual(ev.name, "s%02d" % i)
        twice.wait(lambda e: not e.comment and e.op == "snapshot" and e.name == "q")
        broad.wait(lambda e: not e.comment and e.name == "s09")
        everything.wait(lambda e: not e.comment and e.name == "s39")
        for i in (7, 9, 7):
            self.assertEqual(g.post("/v1/values/s%02d/add" % i).status, 200)
        last = g.get("/v1/values/s07").json["version"]
        for st in (one[7], twice, broad, everything):
            st.wait(lambda e: not e.comment and e.name == "s07" and e.op == "add" and
                    e.json["version"] == last)
        ops.wait(lambda e: not e.comment and e.name == "s09" and e.op == "add")
        for st in one + [twice, broad, ops, everything]:
            st.poll(0.2)
        seqs = [e.seq for e in twice.data_events() if e.op == "add"]
        self.assertEqual(len(seqs), len(set(seqs)), "an event given twice")
        for i, st in enumerate(one):
            names = {e.name for e in st.data_events()}
            self.assertEqual(names, {"s%02d" % i}, i)
        self.assertEqual({e.name for e in broad.data_events()},
                         {"s%02d" % i for i in range(10)})
        # A topic of one op takes no snapshot, and only that op.
        self.assertEqual({(e.name, e.op) for e in ops.data_events()}, {("s09", "add")})
        for st in one + [twice, broad, ops, everything]:
            st.close()


class ManyParked(gw.GatewayCase):
    """Pops parked on many queues: a put wakes exactly its queue's."""
    N = 10000 if LONG else 1000
    # A queue takes 64 KiB of the store (its ring).
    gateway_args = ("--store-size", "1G" if LONG else "128M")

    def test_wake_one_among_many(self):
        g = self.gw
        conn = g.connect()
        for i in range(self.N):
            self.assertEqual(g.put("/v1/queues/mp%05d" % i, {}, conn=conn).status, 201)
        conn.close()
        socks = []
        try:
            for i in range(self.N):
                socks.append(raw_request(g.port, "POST",
                                         "/v1/queues/mp%05d/pop?timeout=120" % i))
            deadline = time.monotonic() + 60
            while g.metric("atrium_parked_requests") != self.N:
                self.assertLess(time.monotonic(), deadline, "not all parked")
                time.sleep(0.05)
            for k in (17, self.N - 1, 0):
                t0 = time.monotonic()
                r = g.post("/v1/queues/mp%05d/items" % k, {"k": k})
                self.assertEqual(r.status, 201)
                got = read_answers([socks[k]], 10)
                self.assertEqual(got[socks[k]][0], 200)
                self.assertEqual(json.loads(got[socks[k]][1]), {"items": [{"k": k}]})
                self.assertLess(time.monotonic() - t0, 2.0)
            # Nobody else woke or took anything.
            self.assertEqual(g.metric("atrium_parked_requests"), self.N - 3)
            self.assertEqual(read_answers(socks[1:17], 0.2), {})
        finally:
            for s in socks:
                s.close()
        deadline = time.monotonic() + 30
        while g.metric("atrium_parked_requests") != 0:
            self.assertLess(time.monotonic() - deadline, 0, "parked requests stayed")
            time.sleep(0.1)


if __name__ == "__main__":
    gw.main()
