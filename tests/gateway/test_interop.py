"""The gateway and C processes (the atrium CLI, linked with libatrium) see
the same objects; a restarted gateway finds the store as it was."""
import subprocess
import threading
import time
import unittest

import gw


class Interop(gw.GatewayCase):

    def cli(self, *args, check=True):
        p = subprocess.run([gw.ATRIUM, "--store", self.gw.store] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if check and p.returncode != 0:
            raise AssertionError("atrium %s: %s" % (args, p.stderr.decode()))
        return p.stdout.decode().strip()

    def test_http_to_c(self):
        r = self.gw.request("PUT", "/v1/values/h2c",
                            body='{"type":"q","value":9007199254740993}')
        self.assertEqual(r.status, 201)
        self.assertEqual(self.cli("get", "h2c"), "9007199254740993")
        self.gw.request("PUT", "/v1/values/h2cu",
                        body='{"type":"Q","value":18446744073709551615}')
        self.assertEqual(self.cli("get", "h2cu"), "18446744073709551615")
        self.gw.put("/v1/queues/h2cq")
        item = '{"n": 18446744073709551615, "s": "\\u00e9\u2603"}'
        self.gw.request("POST", "/v1/queues/h2cq/items", body=item)
        self.assertEqual(self.cli("pop", "h2cq"), item)

    def test_c_to_http(self):
        self.cli("set", "c2h", "q", "9007199254740993")
        self.cli("add", "c2h", "2")
        r = self.gw.get("/v1/values/c2h")
        self.assertEqual(r.status, 200)
        self.assertIn(b'"value":9007199254740995,', r.body)
        self.assertEqual(r.json["type"], "q")
        self.cli("set", "c2hd", "d", "0.30000000000000004")
        self.assertIn(b'"value":0.30000000000000004,', self.gw.get("/v1/values/c2hd").body)
        self.cli("put", "c2hq", '{"k": [1, 2]}')
        self.cli("put", "c2hq", "not json \x01")
        r = self.gw.post("/v1/queues/c2hq/pop?max=5")
        self.assertEqual(r.body, b'{"items":[{"k": [1, 2]},"not json \\u0001"]}')
        names = {o["name"] for o in self.gw.objects()}
        self.assertTrue({"c2h", "c2hd", "c2hq"} <= names)

    def test_c_wakes_parked_requests(self):
        self.gw.put("/v1/queues/wakeq")
        r = self.gw.put("/v1/values/wakev", {"type": "i"})
        ver = r.json["version"]
        got = {}

        def pop():
            got["pop"] = self.gw.post("/v1/queues/wakeq/pop?timeout=20")

        def watch():
            got["watch"] = self.gw.get("/v1/values/wakev?wait=%d&timeout=20" % ver)
        threads = [threading.Thread(target=pop), threading.Thread(target=watch)]
        for t in threads:
            t.start()
        while self.gw.metric("atrium_parked_requests") < 2:
            pass
        t0 = time.monotonic()
        self.cli("put", "wakeq", '"from C"')
        self.cli("add", "wakev", "3")
        for t in threads:
            t.join(20)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(got["pop"].json, {"items": ["from C"]})
        self.assertEqual(got["watch"].json["value"], 3)


class Restart(unittest.TestCase):

    def test_restart_keeps_objects(self):
        store = gw.fresh_store()
        try:
            a = gw.Gateway(store=store, keep_store=True).start()
            a.put("/v1/values/kept", {"type": "Q", "value": 2**64 - 1})
            a.put("/v1/arrays/kepta", {"type": "h", "values": [1, -2, 3]})
            a.put("/v1/queues/keptq", {"maxsize": 5})
            a.request("POST", "/v1/queues/keptq/items", body='{"x": 1}')
            before = a.objects()
            a.stop()
            b = gw.Gateway(store=store, keep_store=True).start()
            try:
                self.assertEqual(b.objects(), before)
                self.assertEqual(b.get("/v1/values/kept").json["value"], 2**64 - 1)
                self.assertEqual(b.get("/v1/arrays/kepta").json["values"], [1, -2, 3])
                old = b.get("/v1/values/kept").json["version"]
                r = b.put("/v1/values/kept", {"type": "Q", "value": 1})
                self.assertGreater(r.json["version"], old)
                self.assertEqual(b.post("/v1/queues/keptq/pop").body, b'{"items":[{"x": 1}]}')
            finally:
                b.stop()
        finally:
            gw.remove(store)


if __name__ == "__main__":
    gw.main()
