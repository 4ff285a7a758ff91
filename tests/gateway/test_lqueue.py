"""Leased queue items over HTTP, against the real atriumd: pops under a
lease with receipts, ack, nack with a delay, touch, done and join,
dead letters; every bad input answered as documented and changing
nothing; leases that run out (an expired event, a parked pop woken by
it); leases and receipts across a gateway restart, and leases that run
out while it is down; and the chaos of HTTP producers and consumers that
vanish mid-lease."""
import os
import random
import re
import socket
import sys
import threading
import time
import unittest

import gw

sys.path.insert(0, os.path.join(gw.ROOT, "tests", "events"))
import evlib  # noqa: E402

RECEIPT = re.compile(r"^[0-9a-f]{16}$")


def state(g, name):
    r = g.get("/v1/queues/" + name)
    assert r.status == 200, r
    s = r.json
    return {k: s[k] for k in ("size", "leased", "unfinished", "dead_lettered", "dropped")}


def pop(g, name, lease, n=1, timeout=None):
    q = "/v1/queues/%s/pop?lease=%s&max=%d" % (name, lease, n)
    if timeout is not None:
        q += "&timeout=%s" % timeout
    r = g.post(q)
    if r.status == 204:
        return []
    assert r.status == 200, r
    for it in r.json["items"]:
        assert RECEIPT.match(it["receipt"]), it
    return r.json["items"]


class Basics(gw.GatewayCase):
    def setUp(self):
        self.name = "q%d" % random.randrange(1 << 30)
        self.assertEqual(self.gw.put("/v1/queues/" + self.name, {}).status, 201)

    def url(self, suffix=""):
        return "/v1/queues/%s%s" % (self.name, suffix)

    def test_ack_nack_touch_done_join(self):
        g = self.gw
        self.assertEqual(g.post(self.url("/batch"), ["a", "b", {"c": 1}]).status, 201)
        got = pop(g, self.name, 30, 2)
        self.assertEqual([i["item"] for i in got], ["a", "b"])
        self.assertEqual([i["deliveries"] for i in got], [1, 1])
        self.assertEqual(state(g, self.name), dict(size=1, leased=2, unfinished=3,
                                                  dead_lettered=0, dropped=0))
        r = g.post(self.url("/ack"), {"receipts": [got[0]["receipt"]]})
        self.assertEqual((r.status, r.json), (200, {"applied": 1, "unknown": []}))
        r = g.post(self.url("/touch?lease=60"), {"receipts": [got[1]["receipt"]]})
        self.assertEqual((r.status, r.json), (200, {"applied": 1, "unknown": [], "lease": 60}))
        r = g.post(self.url("/nack"), {"receipts": [got[1]["receipt"]]})
        self.assertEqual((r.status, r.json), (200, {"applied": 1, "unknown": [], "delay": 0}))
        # Back at the head, before {"c":1}, its deliveries counted.
        again = pop(g, self.name, 30, 2)
        self.assertEqual([(i["item"], i["deliveries"]) for i in again],
                         [("b", 2), ({"c": 1}, 1)])
        self.assertEqual(g.post(self.url("/ack"), {"receipts": [i["receipt"] for i in again]}).json,
                         {"applied": 2, "unknown": []})
        self.assertEqual(state(g, self.name)["unfinished"], 0)
        # A plain pop is done when done says so; join waits for it.
        g.post(self.url("/items"), 5)
        self.assertEqual(g.post(self.url("/pop")).json, {"items": [5]})
        joiner = threading.Thread(target=lambda: setattr(
            self, "joined", g.post(self.url("/join?timeout=10"))))
        t0 = time.monotonic()
        joiner.start()
        r = g.post(self.url("/join?timeout=0.2"))
        self.assertEqual((r.status, r.json), (200, {"unfinished": 1}))
        self.assertEqual(g.post(self.url("/done"), {"n": 1}).json, {"unfinished": 0})
        joiner.join(15)
        self.assertEqual((self.joined.status, self.joined.json), (200, {"unfinished": 0}))
        self.assertLess(time.monotonic() - t0, 5)

    def test_nack_delay(self):
        g = self.gw
        g.post(self.url("/items"), "x")
        r0 = pop(g, self.name, 30)[0]["receipt"]
        t0 = time.monotonic()
        self.assertEqual(g.post(self.url("/nack?delay=0.5"), {"receipts": [r0]}).json,
                         {"applied": 1, "unknown": [], "delay": 0.5})
        self.assertEqual(state(g, self.name)["leased"], 1)  # waiting out its delay
        self.assertEqual(pop(g, self.name, 30), [])
        # A parked pop is answered when the delay ends (the gateway's timer).
        got = pop(g, self.name, 30, timeout=5)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual((got[0]["item"], got[0]["deliveries"]), ("x", 2))

    def test_expiry_wakes_a_parked_pop(self):
        g = self.gw
        g.post(self.url("/items"), "x")
        first = pop(g, self.name, 0.3)[0]
        t0 = time.monotonic()
        got = pop(g, self.name, 30, timeout=5)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual((got[0]["item"], got[0]["deliveries"]), ("x", 2))
        # The first receipt ran out: unknown, and nothing changes.
        before = state(g, self.name)
        r = g.post(self.url("/ack"), {"receipts": [first["receipt"]]})
        self.assertEqual(r.json, {"applied": 0, "unknown": [first["receipt"]]})
        self.assertEqual(state(g, self.name), before)

    def test_dead_letters(self):
        g = self.gw
        dlq = self.name + "-dlq"
        self.assertEqual(g.put("/v1/queues/" + dlq, {}).status, 201)
        name = self.name + "-md"
        r = g.put("/v1/queues/" + name, {"max_deliveries": 2, "dead_letter": dlq})
        self.assertEqual(r.status, 201)
        self.assertEqual((r.json["max_deliveries"], r.json["dead_letter"]), (2, dlq))
        g.post("/v1/queues/%s/items" % name, {"job": 1})
        for d in (1, 2):
            it = pop(g, name, 30)[0]
            self.assertEqual(it["deliveries"], d)
            g.post("/v1/queues/%s/nack" % name, {"receipts": [it["receipt"]]})
        self.assertEqual(state(g, name), dict(size=0, leased=0, unfinished=0,
                                             dead_lettered=1, dropped=0))
        self.assertEqual(g.post("/v1/queues/%s/join?timeout=0" % name).json, {"unfinished": 0})
        self.assertEqual(g.post("/v1/queues/%s/pop" % dlq).json, {"items": [{"job": 1}]})
        # Its dead-letter queue gone: dropped, and counted.
        self.assertEqual(g.request("DELETE", "/v1/queues/" + dlq).status, 204)
        g.post("/v1/queues/%s/items" % name, 2)
        for _ in (1, 2):
            it = pop(g, name, 30)[0]
            g.post("/v1/queues/%s/nack" % name, {"receipts": [it["receipt"]]})
        self.assertEqual(state(g, name)["dropped"], 1)
        self.assertIn('atrium_queue_dropped{name="%s"} 1' % name,
                      g.get("/metrics").body.decode())

    def test_bad_inputs_change_nothing(self):
        g = self.gw
        g.post(self.url("/batch"), [1, 2])
        held = pop(g, self.name, 30)[0]["receipt"]
        before = state(g, self.name)
        version = g.get(self.url()).json["version"]
        cases = [
            ("/pop?lease=0", None, 400, "invalid_query"),
            ("/pop?lease=-1", None, 400, "invalid_query"),
            ("/pop?lease=nan", None, 400, "invalid_query"),
            ("/pop?lease=x", None, 400, "invalid_query"),
            ("/touch", {"receipts": [held]}, 400, "invalid_query"),
            ("/touch?lease=0", {"receipts": [held]}, 400, "invalid_query"),
            ("/touch?lease=inf", {"receipts": [held]}, 400, "invalid_query"),
            ("/nack?delay=-1", {"receipts": [held]}, 400, "invalid_query"),
            ("/nack?delay=nan", {"receipts": [held]}, 400, "invalid_query"),
            ("/ack", {}, 400, "invalid_body"),
            ("/ack", {"receipts": held}, 400, "invalid_body"),
            ("/ack", {"receipts": [1]}, 400, "invalid_body"),
            ("/ack", {"receipts": [held], "x": 1}, 400, "invalid_body"),
            ("/ack", None, 400, "invalid_body"),
            ("/done", {"n": 0}, 400, "invalid_body"),
            ("/done", {"n": "1"}, 400, "invalid_body"),
            ("/done", {"n": 3}, 409, "too_many_done"),
            ("/join?timeout=-1", None, 400, "invalid_query"),
        ]
        for path, body, status, code in cases:
            with self.subTest(path=path, body=body):
                r = g.post(self.url(path), body)
                self.assertEqual((r.status, r.error), (status, code), r)
        # Receipts that are no receipt, made up, or of another queue: unknown.
        other = self.name + "-o"
        g.put("/v1/queues/" + other, {})
        g.post("/v1/queues/%s/items" % other, 1)
        foreign = pop(g, other, 30)[0]["receipt"]
        bad = ["zz", "", "0000000000000000", held[:-1] + ("0" if held[-1] != "0" else "1"),
               held.upper(), foreign]
        for op in ("ack", "nack", "touch?lease=5"):
            r = g.post(self.url("/" + op), {"receipts": bad})
            self.assertEqual((r.status, r.json["applied"], r.json["unknown"]), (200, 0, bad))
        self.assertEqual(state(g, self.name), before)
        self.assertEqual(g.get(self.url()).json["version"], version)
        self.assertEqual(state(g, other)["leased"], 1)
        # A double ack: the second is unknown.
        self.assertEqual(g.post(self.url("/ack"), {"receipts": [held, held]}).json,
                         {"applied": 1, "unknown": [held]})
        self.assertEqual(g.post(self.url("/ack"), {"receipts": [held]}).json,
                         {"applied": 0, "unknown": [held]})
        self.assertEqual(g.post("/v1/queues/nosuchq/ack", {"receipts": []}).status, 404)
        self.assertEqual(g.put(self.url(), {"dead_letter": self.name}).status, 400)
        self.assertEqual(g.put(self.url(), {"dead_letter": "bad name"}).status, 400)
        self.assertEqual(g.put(self.url(), {"max_deliveries": 1.5}).status, 400)


class Events(gw.GatewayCase):
    def test_leased_acked_nacked_expired_done(self):
        """Each new queue op comes on SSE with the queue's state."""
        g = self.gw
        sse = evlib.SSE(g, "/v1/events?topics=queue/evq")
        try:
            g.put("/v1/queues/evq", {})
            g.post("/v1/queues/evq/batch", [1, 2, 3])
            a, b = pop(g, "evq", 30, 2)
            g.post("/v1/queues/evq/ack", {"receipts": [a["receipt"]]})
            g.post("/v1/queues/evq/nack?delay=0.2", {"receipts": [b["receipt"]]})
            g.post("/v1/queues/evq/pop")
            g.post("/v1/queues/evq/done", {"n": 1})
            for op in ("leased", "acked", "nacked", "expired", "done"):
                ev = sse.wait(lambda e, op=op: not e.comment and e.json["op"] == op, 5, op)
                self.assertEqual(ev.json["kind"], "queue")
                for member in ("leased", "unfinished", "version"):
                    self.assertIn(member, ev.json)
        finally:
            sse.close()


class Restart(unittest.TestCase):
    def test_leases_and_receipts_survive_a_restart(self):
        g1 = gw.Gateway(keep_store=True).start()
        try:
            g1.put("/v1/queues/rq", {})
            g1.post("/v1/queues/rq/batch", ["kept", "lapses"])
            kept = pop(g1, "rq", 60)[0]
            lapses = pop(g1, "rq", 0.5)[0]
        finally:
            g1.stop()
        time.sleep(0.8)  # the short lease runs out while nobody runs
        g2 = gw.Gateway(store=g1.store).start()
        try:
            t0 = time.monotonic()
            # The new gateway ends it at once (noted from the store).
            while state(g2, "rq")["size"] != 1 and time.monotonic() - t0 < 5:
                time.sleep(0.02)
            self.assertEqual(state(g2, "rq"), dict(size=1, leased=1, unfinished=2,
                                                  dead_lettered=0, dropped=0))
            r = g2.post("/v1/queues/rq/ack", {"receipts": [kept["receipt"], lapses["receipt"]]})
            self.assertEqual(r.json, {"applied": 1, "unknown": [lapses["receipt"]]})
            again = pop(g2, "rq", 60)[0]
            self.assertEqual((again["item"], again["deliveries"]), ("lapses", 2))
        finally:
            g2.stop()


class Chaos(gw.GatewayCase):
    """3 HTTP producers, 3 consumers taking leased items and acking; some
    consumers vanish mid-lease (take and never ack, or close the socket
    before the answer): every item is acked exactly once, none is lost,
    the ones delivered twice are only those a consumer abandoned or whose
    lease ran out, and join returns when the work is done."""
    PRODUCERS, CONSUMERS, PER = 3, 3, 300
    LEASE = 1.0

    def test_chaos(self):
        g = self.gw
        g.put("/v1/queues/chaos", {})
        n = self.PRODUCERS * self.PER
        lock = threading.Lock()
        acked = {}        # item -> acks applied
        seen = {}         # item -> deliveries seen
        maxd = {}         # item -> the highest deliveries count it came with
        allowed = set()   # items whose earlier delivery was abandoned or lapsed
        vanished = [0]    # pops whose answer nobody read
        stop = threading.Event()
        rng = random.Random(1234)

        def produce(p):
            for k in range(0, self.PER, 10):
                items = list(range(p * self.PER + k, p * self.PER + k + 10))
                r = g.post("/v1/queues/chaos/batch", items)
                assert r.status == 201, r

        def consume(c):
            r = random.Random(c)
            conn = g.connect()
            while not stop.is_set():
                if r.random() < 0.03:  # vanish mid-request: the answer is lost
                    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
                    s.sendall(b"POST /v1/queues/chaos/pop?lease=%.1f HTTP/1.1\r\n"
                              b"Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n" % self.LEASE)
                    time.sleep(0.01)
                    s.close()
                    with lock:
                        vanished[0] += 1
                    continue
                resp = g.request("POST", "/v1/queues/chaos/pop?lease=%s&timeout=0.2" % self.LEASE,
                                 conn=conn)
                if resp.status == 204:
                    continue
                assert resp.status == 200, resp
                it = resp.json["items"][0]
                item = it["item"]
                with lock:
                    seen[item] = seen.get(item, 0) + 1
                    maxd[item] = max(maxd.get(item, 0), it["deliveries"])
                if r.random() < 0.05:  # vanish mid-lease: never ack
                    with lock:
                        allowed.add(item)
                    continue
                ack = g.request("POST", "/v1/queues/chaos/ack", conn=conn,
                                json_body={"receipts": [it["receipt"]]}).json
                with lock:
                    if ack["applied"] == 1:
                        acked[item] = acked.get(item, 0) + 1
                    else:  # its lease ran out first: it comes again
                        allowed.add(item)
            conn.close()

        threads = [threading.Thread(target=produce, args=(p,)) for p in range(self.PRODUCERS)]
        threads += [threading.Thread(target=consume, args=(c,)) for c in range(self.CONSUMERS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads[:self.PRODUCERS]:
            t.join(60)
        r = g.post("/v1/queues/chaos/join?timeout=60")
        stop.set()
        for t in threads[self.PRODUCERS:]:
            t.join(30)
        self.assertEqual((r.status, r.json), (200, {"unfinished": 0}))
        print("# http chaos: %d items, %d abandoned or lapsed, %d vanished requests, %.1f s"
              % (n, len(allowed), vanished[0], time.monotonic() - t0))
        self.assertEqual(sorted(acked), list(range(n)))              # none lost
        self.assertEqual(set(acked.values()), {1})                   # acked once
        twice = {i for i, k in seen.items() if k > 1}
        self.assertLessEqual(twice, allowed)
        # Deliveries the test never saw went to vanished pops: at most one
        # each.
        unseen = sum(maxd[i] - seen[i] for i in seen)
        self.assertLessEqual(unseen, vanished[0])
        self.assertEqual(state(g, "chaos"), dict(size=0, leased=0, unfinished=0,
                                                dead_lettered=0, dropped=0))
        ev = g.get("/metrics").body.decode()
        self.assertIn('atrium_queue_unfinished{name="chaos"} 0', ev)


if __name__ == "__main__":
    gw.main()
