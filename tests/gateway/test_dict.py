"""Dicts over HTTP, against the real atriumd: every route, keys %-decoded
from the raw request line (%2F a slash in a key), exact numbers inside
values, per-key If-Match / If-None-Match and versions as ETags, pages in
key order with "next", PATCH all or none, every bad input answered as
documented and changing nothing, a key's watch parked and woken by a C
process's set (dict_tool, through libatrium), fencing, and events that
name the keys on SSE."""
import os
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

import gw

sys.path.insert(0, os.path.join(gw.ROOT, "tests", "events"))
import evlib  # noqa: E402

DICT_TOOL = os.path.join(gw.BUILD, "tests", "gateway", "dict_tool")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_busy import Holder  # noqa: E402


def q(key):
    """A key as a path segment: every byte outside the unreserved set
    escaped (a slash too)."""
    return urllib.parse.quote(key, safe="")


class DictTest(gw.GatewayCase):
    gateway_args = ("--busy-wait", "1", "--events", "tcp://127.0.0.1:0")

    def put_key(self, d, key, value, headers=None):
        return self.gw.request("PUT", "/v1/dicts/%s/keys/%s" % (d, q(key)),
                               json_body=value, headers=headers)

    def get_key(self, d, key, query=""):
        return self.gw.get("/v1/dicts/%s/keys/%s%s" % (d, q(key), query))

    def state(self, d, query=""):
        r = self.gw.get("/v1/dicts/%s%s" % (d, query))
        self.assertEqual(r.status, 200, r)
        return r.json

    def assert_error(self, r, status, code):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.error, code, r)

    def test_create_get_and_list(self):
        r = self.gw.put("/v1/dicts/d.create", {})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json, {"name": "d.create", "kind": "dict", "len": 0,
                                  "version": r.json["version"]})
        self.assertEqual(r.header("ETag"), '"%d"' % r.json["version"])
        r = self.gw.put("/v1/dicts/d.create", {"items": {"a": 1}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["len"], 1)
        s = self.state("d.create")
        self.assertEqual(s["items"], {"a": 1})
        self.assertNotIn("next", s)
        names = [o["name"] for o in self.gw.get("/v1/dicts").json["dicts"]]
        self.assertIn("d.create", names)
        kinds = {o["name"]: o["kind"] for o in self.gw.objects()}
        self.assertEqual(kinds["d.create"], "dict")
        self.assert_error(self.gw.get("/v1/dicts/d.none"), 404, "not_found")
        self.gw.put("/v1/values/d.val", {"type": "i"})
        self.assert_error(self.gw.put("/v1/dicts/d.val", {}), 409, "kind_mismatch")
        r = self.gw.request("DELETE", "/v1/dicts/d.create")
        self.assertEqual(r.status, 204, r)
        self.assert_error(self.gw.get("/v1/dicts/d.create"), 404, "not_found")

    def test_one_key(self):
        self.gw.put("/v1/dicts/d.key", {})
        big = 12345678901234567890123456789
        r = self.put_key("d.key", "n", {"big": big, "f": 0.1, "l": [1, -9007199254740993]})
        self.assertEqual(r.status, 201, r)
        v1 = r.json["version"]
        self.assertEqual(r.header("ETag"), '"%d"' % v1)
        self.assertIn(b"12345678901234567890123456789", r.body)
        r = self.get_key("d.key", "n")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"key": "n", "value": {"big": big, "f": 0.1,
                                                        "l": [1, -9007199254740993]},
                                  "version": v1})
        self.assertIn(b"-9007199254740993", r.body)
        self.assertEqual(r.header("ETag"), '"%d"' % v1)
        r = self.put_key("d.key", "n", "two")
        self.assertEqual(r.status, 200, r)
        v2 = r.json["version"]
        self.assertGreater(v2, v1)
        # If-Match per key: a stale version changes nothing.
        r = self.put_key("d.key", "n", 3, headers={"If-Match": '"%d"' % v1})
        self.assert_error(r, 412, "precondition_failed")
        self.assertEqual(self.get_key("d.key", "n").json["value"], "two")
        r = self.put_key("d.key", "n", 3, headers={"If-Match": '"%d"' % v2})
        self.assertEqual(r.status, 200, r)
        v3 = r.json["version"]
        # If-None-Match: * creates only.
        r = self.put_key("d.key", "n", 4, headers={"If-None-Match": "*"})
        self.assert_error(r, 412, "precondition_failed")
        r = self.put_key("d.key", "m", 4, headers={"If-None-Match": "*"})
        self.assertEqual(r.status, 201, r)
        # DELETE answers what was removed, as dict.pop.
        r = self.gw.request("DELETE", "/v1/dicts/d.key/keys/n",
                            headers={"If-Match": '"%d"' % v2})
        self.assert_error(r, 412, "precondition_failed")
        r = self.gw.request("DELETE", "/v1/dicts/d.key/keys/n")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"key": "n", "value": 3, "version": v3})
        self.assert_error(self.gw.request("DELETE", "/v1/dicts/d.key/keys/n"),
                          404, "no_such_key")
        self.assert_error(self.get_key("d.key", "n"), 404, "no_such_key")
        # A re-set key never has an old version again.
        r = self.put_key("d.key", "n", 5)
        self.assertEqual(r.status, 201, r)
        self.assertGreater(r.json["version"], v3)
        self.assert_error(self.put_key("d.none", "n", 1), 404, "not_found")

    def test_keys_from_the_raw_request_line(self):
        self.gw.put("/v1/dicts/d.raw", {})
        keys = ["a/b", "x y", "caf\u00e9", "100%", "q?&=#", "\U0001F600", "k" * 256,
                "+plus", "."]
        for k in keys:
            r = self.put_key("d.raw", k, k)
            self.assertEqual(r.status, 201, (k, r))
            self.assertEqual(r.json["key"], k)
            r = self.get_key("d.raw", k)
            self.assertEqual(r.status, 200, (k, r))
            self.assertEqual(r.json["value"], k)
        self.assertEqual(sorted(self.state("d.raw")["items"]), sorted(keys))
        # %2F is a slash in a key; a raw slash is another path.
        self.assertEqual(self.gw.get("/v1/dicts/d.raw/keys/a%2fb").json["value"], "a/b")
        self.assert_error(self.gw.get("/v1/dicts/d.raw/keys/a/b"), 404, "not_found")
        # ?keys= decodes each key too (a comma escaped inside one).
        r = self.gw.get("/v1/dicts/d.raw?keys=%s,%s,nope" % (q("a/b"), q("q?&=#")))
        self.assertEqual(r.json["items"], {"a/b": "a/b", "q?&=#": "q?&=#"})

    def test_bad_inputs_change_nothing(self):
        self.gw.put("/v1/dicts/d.bad", {"items": {"a": 1}})
        before = self.state("d.bad")
        bad_paths = ["a%00b", "%00", "k" * 257, "%ff", "%c3%28", "%ed%a0%80",
                     "%zz", "a%2", ""]
        for p in bad_paths:
            for method in ("GET", "PUT", "DELETE"):
                body = "1" if method == "PUT" else None
                r = self.gw.request(method, "/v1/dicts/d.bad/keys/" + p, body=body)
                self.assert_error(r, 400, "bad_key")
        # Bad bodies: not JSON, trailing garbage, bad UTF-8.
        for body in (b"{", b"1 2", b'"\xff"', b""):
            r = self.gw.request("PUT", "/v1/dicts/d.bad/keys/a", body=body)
            self.assertEqual(r.status, 400, (body, r))
        bad_patches = [
            {"set": {"k" * 257: 1}},
            {"set": {"": 1}},
            {"set": {"ok": 1}, "delete": ["x" * 257]},
            {"set": {"x": 1}, "delete": ["x"]},   # one key twice
            {"set": [1]},
            {"delete": "a"},
            {"delete": [1]},
            {"other": 1},
        ]
        for body in bad_patches:
            r = self.gw.request("PATCH", "/v1/dicts/d.bad", json_body=body)
            self.assertEqual(r.status, 400, (body, r))
        r = self.gw.request("PATCH", "/v1/dicts/d.bad",
                            body=b'{"set":{"a\\u0000b":1}}')
        self.assertEqual(r.status, 400, r)
        r = self.gw.request("PATCH", "/v1/dicts/d.bad", body=b'{"delete":["a\\u0000"]}')
        self.assert_error(r, 400, "bad_key")
        r = self.gw.request("PUT", "/v1/dicts/d.bad", json_body={"items": {"k" * 257: 1}})
        self.assert_error(r, 400, "bad_key")
        r = self.gw.request("PUT", "/v1/dicts/d.bad2", json_body={"items": {"": 1}})
        self.assert_error(r, 400, "bad_key")
        self.assert_error(self.gw.get("/v1/dicts/d.bad2"), 404, "not_found")
        for query in ("?keys=a%00", "?keys=a,,b", "?after=%ff", "?limit=0",
                      "?limit=x", "?limit=10001", "?keys=a&limit=2"):
            r = self.gw.get("/v1/dicts/d.bad" + query)
            self.assertEqual(r.status, 400, (query, r))
        r = self.gw.get("/v1/dicts/d.bad/keys/a?wait=x")
        self.assert_error(r, 400, "invalid_query")
        self.assertEqual(self.state("d.bad"), before)

    def test_patch_all_or_none(self):
        self.gw.put("/v1/dicts/d.patch", {"items": {"a": 1, "b": 2}})
        v0 = self.state("d.patch")["version"]
        r = self.gw.request("PATCH", "/v1/dicts/d.patch",
                            json_body={"set": {"c": [3], "a": 10}, "delete": ["b", "zz"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["len"], 2)
        self.assertEqual(r.json["version"], v0 + 1)
        s = self.state("d.patch")
        self.assertEqual(s["items"], {"a": 10, "c": [3]})
        # One key at one version: all keys set by a commit share it.
        self.assertEqual(self.get_key("d.patch", "a").json["version"],
                         self.get_key("d.patch", "c").json["version"])

    def test_pages_in_key_order(self):
        keys = ["k%03d" % i for i in range(250)]
        self.gw.put("/v1/dicts/d.page", {"items": {k: i for i, k in enumerate(keys)}})
        got, after, pages = [], None, 0
        while True:
            query = "?limit=100" + ("&after=" + q(after) if after else "")
            s = self.state("d.page", query)
            pages += 1
            got += list(s["items"])
            if "next" not in s:
                break
            after = s["next"]
            self.assertEqual(after, list(s["items"])[-1])
        self.assertEqual(got, keys)
        self.assertEqual(pages, 3)
        s = self.state("d.page", "?after=" + q("k248"))
        self.assertEqual(list(s["items"]), ["k249"])
        self.assertNotIn("next", s)
        self.assertEqual(self.state("d.page", "?after=zzz")["items"], {})

    def test_watch_woken_by_a_c_process(self):
        self.gw.put("/v1/dicts/d.watch", {"items": {"w": 1}})
        v = self.get_key("d.watch", "w").json["version"]
        box = {}

        def watch():
            t0 = time.monotonic()
            box["r"] = self.get_key("d.watch", "w", "?wait=%d&timeout=20" % v)
            box["t"] = time.monotonic() - t0

        th = threading.Thread(target=watch)
        th.start()
        evlib.wait_for(lambda: self.gw.metric("atrium_parked_requests") >= 1, 10, "parked")
        out = subprocess.run([DICT_TOOL, "set", self.gw.store, "d.watch", "w", '"from C"'],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        th.join(30)
        r = box["r"]
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["value"], "from C")
        self.assertEqual(r.json["version"], int(out.stdout.split()[1]))
        self.assertLess(box["t"], 10)
        # A timeout answers the key as it is; a deleted key wakes a watch.
        r = self.get_key("d.watch", "w", "?wait=%d&timeout=0.2" % r.json["version"])
        self.assertEqual(r.json["value"], "from C")
        r = self.get_key("d.watch", "nokey", "?wait=0&timeout=0.2")
        self.assert_error(r, 404, "no_such_key")

    def test_fence(self):
        self.gw.put("/v1/dicts/d.fence", {})
        self.gw.put("/v1/locks/d.lock", {})
        r = self.put_key("d.fence", "a", 1, headers={"Atrium-Fence": "d.lock=1"})
        self.assert_error(r, 412, "stale_fence")
        r = self.gw.request("PATCH", "/v1/dicts/d.fence", json_body={"set": {"a": 1}},
                            headers={"Atrium-Fence": "d.lock=1"})
        self.assert_error(r, 412, "stale_fence")
        self.assertEqual(self.state("d.fence")["items"], {})
        g = self.gw.post("/v1/locks/d.lock/acquire?ttl=30").json
        r = self.put_key("d.fence", "a", 1,
                         headers={"Atrium-Fence": "d.lock=%d" % g["fence"]})
        self.assertEqual(r.status, 201, r)

    def test_events_name_the_keys(self):
        self.gw.put("/v1/dicts/d.ev", {})
        sse = evlib.SSE(self.gw, "/v1/events?topics=dict/d.ev/")
        try:
            sse.wait(lambda e: not e.comment and e.json["op"] == "snapshot", 5, "snapshot")
            self.put_key("d.ev", "a/b", 1)
            e = sse.wait(lambda e: not e.comment and e.json["op"] == "set", 5, "set")
            self.assertEqual(e.json["kind"], "dict")
            self.assertIn("a/b", e.json["keys"])
            self.assertFalse(e.json["keys_truncated"])
            self.gw.request("PATCH", "/v1/dicts/d.ev",
                            json_body={"set": {"x": 1}, "delete": ["a/b"]})
            e = sse.wait(lambda e: not e.comment and e.json["op"] == "delete", 5, "delete")
            self.assertEqual(e.json["keys"], ["a/b"])
            e = sse.wait(lambda e: not e.comment and e.json["op"] == "set"
                         and "x" in e.json["keys"], 5, "set x")
            self.assertNotIn("a/b", e.json["keys"])
            # A C process's commit of many keys: named, or said to be cut.
            out = subprocess.run([DICT_TOOL, "update", self.gw.store, "d.ev", "200"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            e = sse.wait(lambda e: not e.comment and e.json["op"] == "set"
                         and e.json["keys_truncated"], 5, "truncated set")
            self.assertLess(len(e.json["keys"]), 200)
        finally:
            sse.close()

    def test_busy_lock(self):
        """A process stopped holding the dict's record lock: writes answer
        503 busy within --busy-wait and change nothing; reads (a key, some
        keys, a page) take no lock and answer at once, as the dict was;
        once it goes on, all works."""
        self.gw.put("/v1/dicts/d.busy", {"items": {"a": 1, "b": 2}})
        before = self.state("d.busy")
        holder = Holder(self.gw.store, "dict", "d.busy")
        try:
            for method, path, body in (("PUT", "/v1/dicts/d.busy/keys/a", 2),
                                       ("PATCH", "/v1/dicts/d.busy", {"delete": ["a"]})):
                t0 = time.monotonic()
                r = self.gw.request(method, path, json_body=body)
                self.assertEqual((r.status, r.error), (503, "busy"), (method, path, r))
                self.assertLess(time.monotonic() - t0, 5)
            r = self.gw.get("/v1/dicts/d.busy/keys/a")
            self.assertEqual((r.status, r.json["value"]), (200, 1), r)
            r = self.gw.get("/v1/dicts/d.busy?keys=a,b")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["items"], {"a": 1, "b": 2})
            self.assertEqual(self.state("d.busy"), before)
            listed = {o["name"]: o for o in self.gw.get("/v1/dicts").json["dicts"]}
            self.assertEqual(listed["d.busy"]["len"], 2)
        finally:
            holder.resume()
        self.assertEqual(self.state("d.busy"), before)
        self.assertEqual(self.put_key("d.busy", "a", 2).status, 200)

    def test_events_name_the_keys_on_nng(self):
        self.gw.put("/v1/dicts/d.nng", {})
        sub = evlib.Sub(evlib.events_url(self.gw), "dict/d.nng/")
        try:
            sub.sync(lambda: self.put_key("d.nng", "poke", 1),
                     lambda e: e.topic == "dict/d.nng/set")
            self.gw.request("DELETE", "/v1/dicts/d.nng/keys/poke")
            e = sub.wait(lambda e: e.topic == "dict/d.nng/delete", 5, "delete")
            self.assertEqual(e.json["keys"], ["poke"])
            self.assertFalse(e.json["keys_truncated"])
        finally:
            sub.close()

    def test_metrics(self):
        self.gw.put("/v1/dicts/d.metric", {"items": {"a": 1, "b": 2}})
        r = self.gw.get("/metrics")
        self.assertIn('atrium_dict_len{name="d.metric"} 2', r.body.decode())


if __name__ == "__main__":
    gw.main()
