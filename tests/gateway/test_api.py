"""Happy paths of every route, exact numbers, byte-identical queue items,
long-polls and conditional requests."""
import json
import threading
import time

import gw


class ApiTest(gw.GatewayCase):

    def test_healthz_openapi_store(self):
        r = self.gw.get("/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, {"status": "ok"})
        r = self.gw.get("/openapi.json")
        self.assertEqual(r.status, 200)
        spec = r.json
        self.assertEqual(spec["openapi"], "3.1.0")
        self.assertIn("/v1/values/{name}", spec["paths"])
        r = self.gw.get("/v1/store")
        self.assertEqual(r.status, 200)
        s = r.json
        self.assertEqual(s["path"], self.gw.store)
        self.assertGreater(s["capacity"], 0)
        self.assertLessEqual(s["used"], s["capacity"])
        self.assertIn("objects", s)
        # The dashboard (web/) at /, its files under /web/.
        r = self.gw.get("/")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        self.assertIn("default-src 'self'", r.header("Content-Security-Policy"))
        r = self.gw.get("/web/nothing.js")
        self.assertEqual((r.status, r.error), (404, "not_found"))

    def test_value_lifecycle(self):
        r = self.gw.put("/v1/values/life", {"type": "i"})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json["value"], 0)
        v1 = r.json["version"]
        self.assertEqual(r.header("ETag"), '"%d"' % v1)
        self.assertEqual(set(r.json),
                         {"name", "kind", "type", "value", "version"})
        self.assertEqual(r.json["kind"], "value")
        # Get-or-create leaves it as it is.
        r = self.gw.put("/v1/values/life", {"type": "i"})
        self.assertEqual((r.status, r.json["value"], r.json["version"]), (200, 0, v1))
        r = self.gw.put("/v1/values/life", {"type": "i", "value": 41})
        self.assertEqual((r.status, r.json["value"]), (200, 41))
        r = self.gw.post("/v1/values/life/add")
        self.assertEqual((r.status, r.json["value"]), (200, 42))
        r = self.gw.post("/v1/values/life/add", {"delta": -50})
        self.assertEqual(r.json["value"], -8)
        r = self.gw.get("/v1/values/life")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, {"name": "life", "kind": "value", "type": "i",
                                  "value": -8, "version": r.json["version"]})
        self.assertEqual(r.header("ETag"), '"%d"' % r.json["version"])
        names = [v["name"] for v in self.gw.objects("/v1/values", "values")]
        self.assertIn("life", names)
        r = self.gw.request("DELETE", "/v1/values/life")
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertEqual(self.gw.get("/v1/values/life").status, 404)
        # A re-created value's version starts above the old ones.
        r = self.gw.put("/v1/values/life", {"type": "i"})
        self.assertEqual(r.status, 201)
        self.assertGreater(r.json["version"], v1)

    def test_compare_and_set(self):
        r = self.gw.put("/v1/values/cas", {"type": "q", "value": 1})
        ver = r.json["version"]
        r = self.gw.put("/v1/values/cas", {"type": "q", "value": 2},
                        headers={"If-Match": '"%d"' % ver})
        self.assertEqual((r.status, r.json["value"]), (200, 2))
        r = self.gw.put("/v1/values/cas", {"type": "q", "value": 3},
                        headers={"If-Match": '"%d"' % ver})
        self.assertEqual((r.status, r.error), (412, "precondition_failed"))
        self.assertEqual(self.gw.get("/v1/values/cas").json["value"], 2)
        r = self.gw.put("/v1/values/cas", {"type": "q", "value": 3},
                        headers={"If-None-Match": "*"})
        self.assertEqual(r.status, 412)
        r = self.gw.put("/v1/values/cas-new", {"type": "q", "value": 3},
                        headers={"If-None-Match": "*"})
        self.assertEqual((r.status, r.json["value"]), (201, 3))

    def test_exact_numbers(self):
        cases = [("q", 2**53 + 1), ("q", -2**63), ("q", 2**63 - 1),
                 ("Q", 18446744073709551615), ("L", 2**53 + 1), ("b", -128),
                 ("B", 255), ("h", -32768), ("H", 65535), ("i", -2**31),
                 ("I", 2**32 - 1), ("l", -2**63)]
        for i, (t, v) in enumerate(cases):
            name = "num%d" % i
            body = '{"type":"%s","value":%d}' % (t, v)
            r = self.gw.request("PUT", "/v1/values/" + name, body=body)
            self.assertEqual(r.status, 201, (t, v, r))
            self.assertIn(b'"value":%d,' % v, r.body)
            r = self.gw.get("/v1/values/" + name)
            self.assertIn(b'"value":%d,' % v, r.body)
        r = self.gw.request("PUT", "/v1/values/dbl",
                            body='{"type":"d","value":0.30000000000000004}')
        self.assertIn(b'"value":0.30000000000000004,', r.body)
        r = self.gw.get("/v1/values/dbl")
        self.assertIn(b'"value":0.30000000000000004,', r.body)
        r = self.gw.request("PUT", "/v1/values/dbl2", body='{"type":"d","value":0.1}')
        self.assertIn(b'"value":0.1,', r.body)
        r = self.gw.request("PUT", "/v1/values/flt", body='{"type":"f","value":0.1}')
        self.assertIn(b'"value":0.1,', r.body)
        # Adding to 2^53 + 1 stays exact.
        r = self.gw.post("/v1/values/num0/add", {"delta": 2})
        self.assertIn(b'"value":%d,' % (2**53 + 3), r.body)
        # A float is rounded once, from the text: just above the midpoint
        # between 1 and the next float is the next float (through a
        # double, it rounded twice, down to 1).
        r = self.gw.request("PUT", "/v1/values/flt2",
                            body='{"type":"f","value":1.00000005960464477539062500001}')
        self.assertIn(b'"value":1.0000001,', r.body)
        # The shortest text that reads back, subnormals too.
        r = self.gw.request("PUT", "/v1/values/sub", body='{"type":"d","value":5e-324}')
        self.assertIn(b'"value":5e-324,', r.body)

    def test_bool_and_char(self):
        r = self.gw.put("/v1/values/flag", {"type": "?", "value": True})
        self.assertIs(r.json["value"], True)
        r = self.gw.put("/v1/values/flag", {"type": "?", "value": False})
        self.assertIs(r.json["value"], False)
        for ch in ["a", "\u00e9", "\u0000", "\u00ff", '"', "\n"]:
            r = self.gw.put("/v1/values/chr", {"type": "c", "value": ch})
            self.assertIn(r.status, (200, 201))
            self.assertEqual(self.gw.get("/v1/values/chr").json["value"], ch)

    def test_long_poll(self):
        r = self.gw.put("/v1/values/watched", {"type": "i"})
        ver = r.json["version"]
        # Already past: answers at once.
        r = self.gw.get("/v1/values/watched?wait=0&timeout=5")
        self.assertEqual(r.json["version"], ver)
        # Times out with the state unchanged.
        t0 = time.monotonic()
        r = self.gw.get("/v1/values/watched?wait=%d&timeout=0.3" % ver)
        took = time.monotonic() - t0
        self.assertEqual((r.status, r.json["version"]), (200, ver))
        self.assertGreaterEqual(took, 0.25)
        self.assertLess(took, 2)
        # Answers once someone changes it.
        got = {}

        def watch():
            got["r"] = self.gw.get("/v1/values/watched?wait=%d&timeout=10" % ver)
        th = threading.Thread(target=watch)
        t0 = time.monotonic()
        th.start()
        while self.gw.metric("atrium_parked_requests") < 1:
            pass
        self.gw.post("/v1/values/watched/add", {"delta": 5})
        th.join(10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(got["r"].json["value"], 5)
        self.assertGreater(got["r"].json["version"], ver)

    def test_array_routes(self):
        r = self.gw.put("/v1/arrays/arr", {"type": "d", "length": 5})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json["values"], [0, 0, 0, 0, 0])
        self.assertEqual(r.json["length"], 5)
        r = self.gw.put("/v1/arrays/arr", {"type": "d", "length": 5})
        self.assertEqual(r.status, 200)
        r = self.gw.put("/v1/arrays/arr", {"type": "d", "values": [1, 2, 3, 4, 5.5]})
        self.assertEqual((r.status, r.json["values"]), (200, [1, 2, 3, 4, 5.5]))
        r = self.gw.request("PATCH", "/v1/arrays/arr", json_body={"start": 1, "values": [20, 30]})
        self.assertEqual(r.json["values"], [1, 20, 30, 4, 5.5])
        r = self.gw.request("PATCH", "/v1/arrays/arr", json_body={"start": -1, "values": [50]})
        self.assertEqual(r.json["values"], [1, 20, 30, 4, 50])
        r = self.gw.post("/v1/arrays/arr/add", {"index": 0, "delta": 0.5})
        self.assertEqual(r.json["values"][0], 1.5)
        r = self.gw.post("/v1/arrays/arr/add", {"index": -1})
        self.assertEqual(r.json["values"][-1], 51)
        full = [1.5, 20, 30, 4, 51]
        for start, stop in [(None, None), (1, 3), (-2, None), (None, -1), (-100, 100),
                            (3, 1), (5, 9)]:
            q = []
            if start is not None:
                q.append("start=%d" % start)
            if stop is not None:
                q.append("stop=%d" % stop)
            r = self.gw.get("/v1/arrays/arr" + ("?" + "&".join(q) if q else ""))
            self.assertEqual(r.json["values"], full[start:stop], (start, stop))
        r = self.gw.put("/v1/arrays/big", {"type": "Q", "values": [2**64 - 1, 2**53 + 1]})
        self.assertEqual(r.status, 201)
        self.assertIn(b"[18446744073709551615,9007199254740993]", r.body)
        self.assertEqual(self.gw.request("DELETE", "/v1/arrays/big").status, 204)
        self.assertEqual(self.gw.get("/v1/arrays/big").status, 404)

    def test_queue_routes(self):
        r = self.gw.put("/v1/queues/jobs", {"maxsize": 10})
        self.assertEqual(r.status, 201)
        self.assertEqual((r.json["size"], r.json["maxsize"]), (0, 10))
        r = self.gw.put("/v1/queues/jobs", {"maxsize": 99})
        self.assertEqual((r.status, r.json["maxsize"]), (200, 10))
        item = ('{"id": 18446744073709551615, "n": -9223372036854775808,'
                ' "f": 0.30000000000000004, "s": "caf\\u00e9 \u2603 \U0001F600",'
                ' "e": 1E+400, "a": [ ]}')
        r = self.gw.request("POST", "/v1/queues/jobs/items", body=item)
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json["size"], 1)
        r = self.gw.request("POST", "/v1/queues/jobs/items", body=" 42 ")
        r = self.gw.request("POST", "/v1/queues/jobs/items", body='"text"')
        r = self.gw.request("POST", "/v1/queues/jobs/batch", body='[null, true, {"k": [1, 2]}]')
        self.assertEqual((r.status, r.json["size"]), (201, 6))
        self.assertEqual(self.gw.get("/v1/queues/jobs").json["size"], 6)
        r = self.gw.post("/v1/queues/jobs/pop")
        self.assertEqual(r.status, 200)
        # Byte for byte as it went in.
        self.assertEqual(r.body, b'{"items":[' + item.encode() + b"]}")
        r = self.gw.post("/v1/queues/jobs/pop?max=10")
        self.assertEqual(r.body, b'{"items":[42,"text",null,true,{"k": [1, 2]}]}')
        r = self.gw.post("/v1/queues/jobs/pop")
        self.assertEqual(r.status, 204)
        self.gw.post("/v1/queues/jobs/items", 1)
        r = self.gw.request("DELETE", "/v1/queues/jobs/items")
        self.assertEqual(r.status, 204)
        self.assertEqual(self.gw.get("/v1/queues/jobs").json["size"], 0)
        self.assertEqual(self.gw.request("DELETE", "/v1/queues/jobs").status, 204)
        self.assertEqual(self.gw.get("/v1/queues/jobs").status, 404)

    def test_queue_unbounded(self):
        r = self.gw.put("/v1/queues/unb")
        self.assertEqual((r.status, r.json["maxsize"]), (201, 0))
        r = self.gw.request("POST", "/v1/queues/unb/batch",
                            body=json.dumps(list(range(5000))))
        self.assertEqual((r.status, r.json["size"]), (201, 5000))
        r = self.gw.post("/v1/queues/unb/pop?max=10000")
        self.assertEqual(r.json["items"], list(range(5000)))

    def test_pop_waits_and_put_waits(self):
        self.gw.put("/v1/queues/w", {"maxsize": 1})
        got = {}

        def pop():
            got["pop"] = self.gw.post("/v1/queues/w/pop?timeout=10")
        th = threading.Thread(target=pop)
        th.start()
        while self.gw.metric("atrium_parked_requests") < 1:
            pass
        r = self.gw.post("/v1/queues/w/items", {"x": 1})
        self.assertEqual(r.status, 201)
        th.join(10)
        self.assertEqual(got["pop"].json, {"items": [{"x": 1}]})
        # A put on a full queue waits for room.
        self.gw.post("/v1/queues/w/items", 1)

        def put():
            got["put"] = self.gw.post("/v1/queues/w/items?timeout=10", 2)
        th = threading.Thread(target=put)
        th.start()
        while self.gw.metric("atrium_parked_requests") < 1:
            pass
        self.assertEqual(self.gw.post("/v1/queues/w/pop").json["items"], [1])
        th.join(10)
        self.assertEqual(got["put"].status, 201)
        self.assertEqual(self.gw.post("/v1/queues/w/pop").json["items"], [2])
        # Timed out: 204 / 409 full.
        t0 = time.monotonic()
        self.assertEqual(self.gw.post("/v1/queues/w/pop?timeout=0.2").status, 204)
        self.assertGreaterEqual(time.monotonic() - t0, 0.15)
        self.gw.post("/v1/queues/w/items", 3)
        r = self.gw.post("/v1/queues/w/items?timeout=0.2", 4)
        self.assertEqual((r.status, r.error), (409, "full"))

    def test_delete_answers_waiters_404(self):
        self.gw.put("/v1/queues/doomed")
        got = []

        def pop():
            got.append(self.gw.post("/v1/queues/doomed/pop?timeout=20"))
        ths = [threading.Thread(target=pop) for _ in range(3)]
        for th in ths:
            th.start()
        while self.gw.metric("atrium_parked_requests") < 3:
            pass
        t0 = time.monotonic()
        self.assertEqual(self.gw.request("DELETE", "/v1/queues/doomed").status, 204)
        # Re-created at once: the waiters belong to the old one all the same.
        self.gw.put("/v1/queues/doomed")
        for th in ths:
            th.join(10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual([(r.status, r.error) for r in got], [(404, "not_found")] * 3)

    def test_objects_and_metrics(self):
        self.gw.put("/v1/values/gauge1", {"type": "d", "value": 2.5})
        objs = {o["name"]: o for o in self.gw.objects()}
        self.assertEqual(objs["gauge1"]["kind"], "value")
        self.assertEqual(objs["gauge1"]["type"], "d")
        self.gw.put("/v1/queues/mq")
        self.assertEqual(self.gw.objects()[0]["name"],
                         sorted(o["name"] for o in self.gw.objects())[0])
        kinds = {o["name"]: o["kind"] for o in self.gw.objects()}
        self.assertEqual(kinds["mq"], "queue")
        r = self.gw.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        text = r.body.decode()
        self.assertIn('atrium_value{name="gauge1",type="d"} 2.5', text)
        self.assertIn('atrium_http_requests_total{route="value_put",status="201"}', text)
        self.assertIn("atrium_http_request_duration_seconds_bucket", text)
        self.assertIn("atrium_store_used_bytes", text)

    def test_one_shape_everywhere(self):
        """GET, /v1/objects and /v1/values give an object the same members
        with the same meaning: name, kind, the kind's own, version."""
        g = self.gw
        g.put("/v1/values/shape.v", {"type": "q", "value": -7})
        g.put("/v1/arrays/shape.a", {"type": "B", "values": [1, 2, 255]})
        g.put("/v1/queues/shape.q", {"maxsize": 9, "max_item": 100})
        g.post("/v1/queues/shape.q/items", {"job": 1})
        listed = {o["name"]: o for o in g.objects()}
        values = {o["name"]: o for o in g.objects("/v1/values", "values")}
        for kind, name, members in (
                ("values", "shape.v", {"name", "kind", "type", "value", "version"}),
                ("arrays", "shape.a",
                 {"name", "kind", "type", "length", "values", "version"}),
                ("queues", "shape.q",
                 {"name", "kind", "size", "maxsize", "bytes", "max_bytes",
                  "max_item", "leased", "unfinished", "dead_lettered",
                  "dropped", "max_deliveries", "dead_letter", "version"})):
            got = g.get("/v1/%s/%s" % (kind, name))
            self.assertEqual(got.status, 200)
            self.assertEqual(set(got.json), members, name)
            self.assertEqual(got.json["kind"], kind[:-1])
            self.assertEqual(listed[name], got.json, name)
            self.assertEqual(got.header("ETag"), '"%d"' % got.json["version"])
        self.assertEqual(values["shape.v"], g.get("/v1/values/shape.v").json)
        self.assertEqual(listed["shape.q"]["size"], 1)
        self.assertEqual(listed["shape.q"]["max_item"], 100)

    def test_long_array_listed_without_values(self):
        """Listings leave out the elements of an array longer than 256;
        GET gives them all."""
        g = self.gw
        g.put("/v1/arrays/shape.long", {"type": "b", "length": 257})
        listed = {o["name"]: o for o in g.objects()}["shape.long"]
        got = g.get("/v1/arrays/shape.long").json
        self.assertNotIn("values", listed)
        self.assertEqual(len(got["values"]), 257)
        del got["values"]
        self.assertEqual(listed, got)

    def test_head_and_405(self):
        self.gw.put("/v1/values/hv", {"type": "i"})
        r = self.gw.request("HEAD", "/v1/values/hv")
        self.assertEqual((r.status, r.body), (200, b""))
        r = self.gw.request("POST", "/v1/values/hv")
        self.assertEqual((r.status, r.error), (405, "method_not_allowed"))
        self.assertEqual(r.header("Allow"), "GET, HEAD, PUT, DELETE")

    def test_keep_alive(self):
        conn = self.gw.connect()
        self.gw.put("/v1/values/ka", {"type": "Q"})
        for i in range(100):
            r = self.gw.request("POST", "/v1/values/ka/add", conn=conn)
            self.assertEqual(r.status, 200)
        r = self.gw.request("POST", "/v1/values/ka/add", body='{"delta": 10}', conn=conn)
        self.assertEqual(r.json["value"], 110)
        conn.close()


if __name__ == "__main__":
    gw.main()
