"""Token auth, refusals at start, CORS, and the configuration surface."""
import os
import subprocess
import unittest

import gw


def run_atriumd(*args, env=None, timeout=15):
    """Runs atriumd expecting it to refuse to start."""
    store = gw.fresh_store()
    try:
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.run([gw.ATRIUMD, "--store", store] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=full_env)
        return p.returncode, p.stderr.decode()
    finally:
        gw.remove(store)


class TokenAuth(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.gw = gw.Gateway(token="  s3cret-token\n\n").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()

    def test_needs_token(self):
        for method, path in [("GET", "/v1/objects"), ("GET", "/v1/values/x"),
                             ("PUT", "/v1/values/x"), ("GET", "/metrics"),
                             ("GET", "/v1/nothing"), ("POST", "/v1/queues/q/pop")]:
            r = self.gw.request(method, path)
            self.assertEqual((r.status, r.error), (401, "unauthorized"), path)
        for bad in ["Bearer wrong", "Bearer s3cret-toke", "Bearer s3cret-tokenx",
                    "Basic czNjcmV0LXRva2Vu", "s3cret-token"]:
            r = self.gw.get("/v1/objects", headers={"Authorization": bad})
            self.assertEqual(r.status, 401, bad)

    def test_token_ok(self):
        auth = {"Authorization": "Bearer s3cret-token"}
        r = self.gw.put("/v1/values/authed", {"type": "i", "value": 4}, headers=auth)
        self.assertEqual(r.status, 201)
        r = self.gw.get("/v1/values/authed", headers={"Authorization": "bearer s3cret-token"})
        self.assertEqual(r.json["value"], 4)
        self.assertEqual(self.gw.get("/metrics", headers=auth).status, 200)

    def test_open_routes(self):
        self.assertEqual(self.gw.get("/healthz").status, 200)
        self.assertEqual(self.gw.get("/openapi.json").status, 200)


class Refusals(unittest.TestCase):

    def test_non_loopback_listen_needs_token(self):
        rc, err = run_atriumd("--listen", "0.0.0.0:0")
        self.assertEqual(rc, 2)
        self.assertIn("--token-file", err)
        rc, err = run_atriumd(env={"ATRIUM_LISTEN": "0.0.0.0:0"})
        self.assertEqual(rc, 2)

    def test_non_loopback_events_needs_insecure(self):
        rc, err = run_atriumd("--listen", "127.0.0.1:0", "--events", "tcp://0.0.0.0:7451")
        self.assertEqual(rc, 2)
        self.assertIn("--insecure", err)

    def test_bad_flags(self):
        for args in [["--listen", "nope"], ["--listen", "127.0.0.1:99999"],
                     ["--max-wait", "-1"], ["--max-body", "x"], ["--bogus"],
                     ["--events", "nonsense"], ["--token-file", "/nonexistent/token"]]:
            rc, _ = run_atriumd(*args)
            self.assertEqual(rc, 2, args)

    def test_help(self):
        p = subprocess.run([gw.ATRIUMD, "--help"], stdout=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"--listen", p.stdout)

    def test_booleans_are_read_strictly(self):
        # A word that says no keeps insecure mode off (the non-loopback
        # events URL is refused); one that is no boolean stops the start.
        for word in ["false", "no", "off", "0", "FALSE"]:
            rc, err = run_atriumd("--listen", "127.0.0.1:0", "--events",
                                  "tcp://0.0.0.0:7451",
                                  env={"ATRIUM_INSECURE": word})
            self.assertEqual(rc, 2, word)
            self.assertIn("--insecure", err, word)
        for word in ["", "maybe", "2", "truee"]:
            rc, err = run_atriumd("--listen", "127.0.0.1:0",
                                  env={"ATRIUM_INSECURE": word})
            self.assertEqual(rc, 2, word)
            self.assertIn("ATRIUM_INSECURE", err, word)
        for word in ["true", "yes", "on", "1"]:
            g = gw.Gateway("--events", "tcp://0.0.0.0:0",
                           env={"ATRIUM_INSECURE": word}).start()
            try:
                self.assertIn("events on tcp://0.0.0.0:", g.stderr)
            finally:
                g.stop()

    def test_store_mode(self):
        # The store is created with the mode asked for (umask aside), 0600
        # by default; a mode with execute or set-id bits, or without the
        # owner's read and write, is refused.
        old = os.umask(0)
        try:
            for args, env, want in [((), None, 0o600),
                                    (("--store-mode", "0660"), None, 0o660),
                                    ((), {"ATRIUM_STORE_MODE": "640"}, 0o640)]:
                g = gw.Gateway(*args, env=env).start()
                try:
                    self.assertEqual(os.stat(g.store).st_mode & 0o7777, want)
                finally:
                    g.stop()
        finally:
            os.umask(old)
        for mode in ["0755", "4660", "0400", "0060", "abc", "", "0o660", "08"]:
            rc, err = run_atriumd("--listen", "127.0.0.1:0", "--store-mode", mode)
            self.assertEqual(rc, 2, mode)

    def test_insecure_events_and_env_listen(self):
        g = gw.Gateway("--events", "tcp://0.0.0.0:7459", "--insecure").start()
        try:
            self.assertIn("events on tcp://0.0.0.0:7459", g.stderr)
        finally:
            g.stop()


class Limits(unittest.TestCase):

    def test_max_body_and_max_wait(self):
        g = gw.Gateway("--max-body", "1K", "--max-wait", "0.2").start()
        try:
            r = g.request("PUT", "/v1/values/x", body='{"type":"i","p":"' + "x" * 2000 + '"}')
            self.assertEqual((r.status, r.error), (413, "body_too_large"))
            g.put("/v1/queues/q")
            r = g.post("/v1/queues/q/pop?timeout=100")  # capped at 0.2 s
            self.assertEqual(r.status, 204)
        finally:
            g.stop()


class Cors(unittest.TestCase):

    def test_cors(self):
        g = gw.Gateway("--cors-origin", "http://app.example").start()
        try:
            r = g.get("/v1/objects", headers={"Origin": "http://app.example"})
            self.assertEqual(r.header("Access-Control-Allow-Origin"), "http://app.example")
            r = g.get("/v1/objects", headers={"Origin": "http://evil.example"})
            self.assertIsNone(r.header("Access-Control-Allow-Origin"))
            r = g.request("OPTIONS", "/v1/values/x", headers={
                "Origin": "http://app.example", "Access-Control-Request-Method": "PUT"})
            self.assertEqual(r.status, 204)
            self.assertIn("PUT", r.header("Access-Control-Allow-Methods"))
        finally:
            g.stop()
        g = gw.Gateway().start()
        try:
            r = g.get("/v1/objects", headers={"Origin": "http://app.example"})
            self.assertIsNone(r.header("Access-Control-Allow-Origin"))
        finally:
            g.stop()


if __name__ == "__main__":
    gw.main()
