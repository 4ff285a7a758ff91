"""A hostile web page and hostile request shapes: Host and Origin without a
token (DNS rebinding, cross-site requests), CORS-simple requests, the
framing the gateway answers itself (414, 431, Content-Length), %00 in a
query, both conditional headers, the log a bad client could flood. Raw
sockets throughout: an HTTP client would normalise what is sent here."""
import json
import unittest

import gw


def raw(port, data):
    """(status, error code, headers, body) of the answer to data."""
    status, hdrs, body = gw.raw(port, data)
    code = None
    if hdrs.get("content-type") == "application/json" and body:
        code = json.loads(body).get("error", {}).get("code")
    return status, code, hdrs, body


def request(port, method, path, headers=(), body=None, host=None):
    """A request as written: headers is a list of (name, value), sent in
    order (twice the same name is two headers); Host is 127.0.0.1:port
    unless host is given (False: none)."""
    head = "%s %s HTTP/1.1\r\n" % (method, path)
    if host is None:
        host = "127.0.0.1:%d" % port
    if host is not False:
        head += "Host: %s\r\n" % host
    head += "Connection: close\r\n"
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    if body is not None and not any(k.lower() == "content-length" for k, _ in headers):
        head += "Content-Length: %d\r\n" % len(body)
    return raw(port, head.encode("latin-1") + b"\r\n" + (body or b""))


def queue_length(g, name):
    r = g.get("/v1/queues/" + name)
    assert r.status == 200, r
    return r.json["size"]


class OneGateway(unittest.TestCase):
    """A class of tests on one atriumd started with ARGS."""
    ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.gw = gw.Gateway(*cls.ARGS).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()


class NoToken(OneGateway):
    """Without a token: Host and Origin keep web pages out."""

    def fill(self, name):
        g = self.gw
        self.assertIn(g.put("/v1/queues/" + name, {}).status, (200, 201))
        self.assertEqual(g.post("/v1/queues/%s/items" % name, 1).status, 201)
        self.assertEqual(queue_length(g, name), 1)

    def test_rebinding(self):
        """The audit's reproduction: a page on attacker.example that
        rebound its name to 127.0.0.1 takes an item with a simple POST."""
        self.fill("rb")
        port = self.gw.port
        status, code, _, _ = request(
            port, "POST", "/v1/queues/rb/pop",
            [("Origin", "http://attacker.example:%d" % port),
             ("Content-Type", "text/plain")], b"x",
            host="attacker.example:%d" % port)
        self.assertEqual((status, code), (403, "forbidden_host"))
        self.assertEqual(queue_length(self.gw, "rb"), 1)

    def test_hosts(self):
        port = self.gw.port
        good = ["127.0.0.1:%d" % port, "127.0.0.1", "localhost:%d" % port,
                "LocalHost", "localhost:1", "127.1.2.3:80", "[::1]:%d" % port,
                "[::1]", "[0:0:0:0:0:0:0:1]:9"]
        for host in good:
            status, code, _, _ = request(port, "GET", "/v1/objects", host=host)
            self.assertEqual(status, 200, host)
        bad = ["attacker.example", "attacker.example:%d" % port,
               "127.0.0.1.attacker.example", "localhost.attacker.example",
               "[::2]:%d" % port, "0.0.0.0", "10.0.0.1:%d" % port, "[::1",
               "127.0.0.1:x", "127.0.0.1:99999", ":%d" % port, "127.1"]
        for host in bad:
            for path in ("/v1/objects", "/healthz", "/", "/v1/nothing"):
                status, code, _, _ = request(port, "GET", path, host=host)
                self.assertEqual((status, code), (403, "forbidden_host"), (host, path))

    def test_origins(self):
        self.fill("or")
        port = self.gw.port
        bad = ["http://attacker.example:%d" % port, "http://127.0.0.1:%d" % (port + 1),
               "http://127.0.0.1", "https://localhost", "null",
               "file://", "ftp://127.0.0.1:%d" % port, "http://127.0.0.1:%d.x" % port,
               "http://localhost.attacker.example:%d" % port]
        for origin in bad:
            for method, path in (("POST", "/v1/queues/or/pop"), ("GET", "/v1/objects"),
                                 ("GET", "/v1/events"), ("POST", "/v1/events/tickets")):
                status, code, _, _ = request(port, method, path, [("Origin", origin)])
                self.assertEqual((status, code), (403, "forbidden_origin"), (origin, path))
        self.assertEqual(queue_length(self.gw, "or"), 1)
        good = ["http://127.0.0.1:%d" % port, "http://localhost:%d" % port,
                "https://127.0.0.1:%d" % port, "http://[::1]:%d" % port,
                "HTTP://LOCALHOST:%d" % port]
        for origin in good:
            status, code, _, _ = request(port, "GET", "/v1/objects", [("Origin", origin)])
            self.assertEqual(status, 200, origin)
        status, _, _, _ = request(port, "POST", "/v1/queues/or/pop",
                                  [("Origin", "http://localhost:%d" % port)])
        self.assertEqual(status, 200)

    def test_cors_simple_changes_nothing(self):
        """A page may send these content types without a preflight: no
        request that changes state takes one, with a body or without."""
        self.fill("cs")
        port = self.gw.port
        for ctype in ("text/plain", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "text/plain; charset=utf-8"):
            for body in (b"x", b"", None):
                status, code, _, _ = request(port, "POST", "/v1/queues/cs/pop",
                                             [("Content-Type", ctype)], body)
                self.assertEqual((status, code), (415, "unsupported_media_type"),
                                 (ctype, body))
            status, code, _, _ = request(port, "PUT", "/v1/values/cs.v",
                                         [("Content-Type", ctype)], b'{"type":"i"}')
            self.assertEqual(status, 415, ctype)
            status, code, _, _ = request(port, "DELETE", "/v1/queues/cs",
                                         [("Content-Type", ctype)])
            self.assertEqual(status, 415, ctype)
        self.assertEqual(queue_length(self.gw, "cs"), 1)
        self.assertEqual(self.gw.get("/v1/values/cs.v").status, 404)
        # A client that is not a browser still pops with a bare POST.
        status, _, _, _ = request(port, "POST", "/v1/queues/cs/pop")
        self.assertEqual(status, 200)

    def test_judged_before_routing_and_body(self):
        port = self.gw.port
        host = "attacker.example"
        for method, path, headers, body in [
                ("GET", "/v1/nowhere", [], None),
                ("DELETE", "/v1/objects", [], None),
                ("PUT", "/v1/values/%2F", [], None),
                ("PUT", "/v1/values/x", [("Content-Type", "application/json")], b"not json"),
                ("PUT", "/v1/values/x", [("Content-Length", "99999999999")], b""),
                ("PUT", "/v1/values/x", [("Content-Type", "text/plain")], b"x")]:
            status, code, _, _ = request(port, method, path, headers, body, host=host)
            self.assertEqual((status, code), (403, "forbidden_host"), path)
            status, code, _, _ = request(port, method, path,
                                         headers + [("Origin", "http://" + host)], body)
            self.assertEqual((status, code), (403, "forbidden_origin"), path)

    def test_no_host(self):
        """HTTP/1.0 may send no Host: nothing to judge (no browser does)."""
        status, _, _, _ = raw(self.gw.port, b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 200)


class AllowHost(OneGateway):
    """--allow-host and --cors-origin widen what passes without a token."""
    ARGS = ("--allow-host", "atrium.example,[fd00::7]",
            "--cors-origin", "http://app.example:8080")

    def test_allowed(self):
        port = self.gw.port
        for host in ("atrium.example", "ATRIUM.example:8443", "[fd00::7]:1",
                     "127.0.0.1:%d" % port):
            status, _, _, _ = request(port, "GET", "/v1/objects", host=host)
            self.assertEqual(status, 200, host)
        for host in ("other.example", "www.atrium.example", "[fd00::8]"):
            status, code, _, _ = request(port, "GET", "/v1/objects", host=host)
            self.assertEqual((status, code), (403, "forbidden_host"), host)
        for origin in ("http://app.example:8080", "http://atrium.example:%d" % port):
            status, _, hdrs, _ = request(port, "GET", "/v1/objects", [("Origin", origin)])
            self.assertEqual(status, 200, origin)
        status, _, hdrs, _ = request(port, "GET", "/v1/objects",
                                     [("Origin", "http://app.example:8080")])
        self.assertEqual(hdrs.get("access-control-allow-origin"), "http://app.example:8080")
        for origin in ("http://app.example", "http://atrium.example:1"):
            status, code, _, _ = request(port, "GET", "/v1/objects", [("Origin", origin)])
            self.assertEqual((status, code), (403, "forbidden_origin"), origin)
        # The preflight of an allowed origin passes too.
        status, _, hdrs, _ = request(port, "OPTIONS", "/v1/objects",
                                     [("Origin", "http://app.example:8080"),
                                      ("Access-Control-Request-Method", "GET")])
        self.assertEqual(status, 204)

    def test_star_and_environment(self):
        g = gw.Gateway(env={"ATRIUM_ALLOW_HOST": "*"}).start()
        try:
            status, _, _, _ = request(g.port, "GET", "/v1/objects", host="any.example")
            self.assertEqual(status, 200)
        finally:
            g.stop()


class WithToken(unittest.TestCase):
    """With a token the token decides; a trailing space is white space."""

    @classmethod
    def setUpClass(cls):
        cls.gw = gw.Gateway(token="tok-en\n").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()

    def test_token(self):
        port = self.gw.port
        for auth in ("Bearer tok-en", "Bearer tok-en ", "Bearer  tok-en\t", "bearer tok-en  "):
            status, _, _, _ = request(port, "GET", "/v1/objects", [("Authorization", auth)],
                                      host="proxy.example")
            self.assertEqual(status, 200, repr(auth))
        for auth in ("Bearer tok-en x", "Bearer tok-e", "Bearer tok-en\x0b1"):
            status, code, _, _ = request(port, "GET", "/v1/objects",
                                         [("Authorization", auth)])
            self.assertEqual((status, code), (401, "unauthorized"), repr(auth))


class Framing(OneGateway):
    """Request shapes the gateway answers itself, as JSON, changing
    nothing."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        assert cls.gw.put("/v1/queues/fq", {}).status == 201
        assert cls.gw.post("/v1/queues/fq/items", 1).status == 201

    def test_nul_in_query(self):
        port = self.gw.port
        for path in ("/v1/queues/fq/pop?max=1%00junk", "/v1/queues/fq/pop?timeout=0%00",
                     "/v1/queues/fq/pop?x%00=1"):
            status, code, _, _ = request(port, "POST", path)
            self.assertEqual((status, code), (400, "invalid_query"), path)
        status, code, _, _ = request(port, "GET", "/v1/arrays/a?start=0%00")
        self.assertEqual((status, code), (400, "invalid_query"))
        self.assertEqual(queue_length(self.gw, "fq"), 1)

    def test_content_length(self):
        port = self.gw.port
        item = b"7"
        J = ("Content-Type", "application/json")
        # 2^63 and beyond: 413 at once, not after the idle timeout.
        for n in ("9223372036854775808", "18446744073709551615"):
            status, code, _, _ = request(port, "POST", "/v1/queues/fq/items",
                                         [J, ("Content-Length", n)], b"")
            self.assertEqual((status, code), (413, "body_too_large"), n)
        # Two that differ: a request-smuggling shape.
        status, code, _, _ = request(port, "POST", "/v1/queues/fq/items",
                                     [J, ("Content-Length", "1"), ("Content-Length", "2")],
                                     item + b"8")
        self.assertEqual((status, code), (400, "invalid_header"))
        self.assertEqual(queue_length(self.gw, "fq"), 1)
        # Two that agree are one.
        status, _, _, _ = request(port, "POST", "/v1/queues/fq/items",
                                  [J, ("Content-Length", "1"), ("Content-Length", "1")], item)
        self.assertEqual(status, 201)
        self.assertEqual(queue_length(self.gw, "fq"), 2)
        self.assertEqual(self.gw.post("/v1/queues/fq/pop").status, 200)

    def test_sizes(self):
        port = self.gw.port
        status, code, hdrs, _ = request(port, "GET", "/v1/values/x?" + "a" * 5000)
        self.assertEqual((status, code), (414, "uri_too_long"))
        status, code, hdrs, _ = request(port, "GET", "/healthz", [("X-Pad", "a" * 9000)])
        self.assertEqual((status, code), (431, "headers_too_large"))
        status, code, hdrs, _ = request(port, "GET", "/healthz",
                                        [("X-Pad%d" % i, "a" * 100) for i in range(90)])
        self.assertEqual((status, code), (431, "headers_too_large"))
        # Just below: served.
        status, _, _, _ = request(port, "GET", "/v1/queues/fq?" + "a" * 4000)
        self.assertEqual(status, 200)
        status, _, _, _ = request(port, "GET", "/healthz", [("X-Pad", "a" * 7000)])
        self.assertEqual(status, 200)


class Conditions(OneGateway):
    """If-Match and If-None-Match: * together never both hold (RFC 9110
    13.2.2); a 412 changes nothing."""

    def test_both(self):
        g = self.gw
        for im in ('"0"', '"7"', '"1"', "*"):
            h = {"If-None-Match": "*", "If-Match": im}
            r = g.put("/v1/arrays/nx", {"type": "i", "length": 2}, headers=h)
            self.assertEqual((r.status, r.error), (412, "precondition_failed"), im)
            r = g.put("/v1/values/nv", {"type": "i", "value": 3}, headers=h)
            self.assertEqual((r.status, r.error), (412, "precondition_failed"), im)
        self.assertEqual(g.get("/v1/arrays/nx").status, 404)
        self.assertEqual(g.get("/v1/values/nv").status, 404)
        self.assertEqual(g.put("/v1/values/ev", {"type": "i", "value": 1}).status, 201)
        for im in ('"1"', "*"):
            r = g.put("/v1/values/ev", {"type": "i", "value": 9},
                      headers={"If-None-Match": "*", "If-Match": im})
            self.assertEqual(r.status, 412, im)
        r = g.get("/v1/values/ev")
        self.assertEqual((r.json["value"], r.json["version"]), (1, 1))
        # If-Match: "0" alone never holds either, and creates nothing.
        r = g.put("/v1/arrays/n0", {"type": "i", "length": 1}, headers={"If-Match": '"0"'})
        self.assertEqual(r.status, 412)
        self.assertEqual(g.get("/v1/arrays/n0").status, 404)


class LogFlood(unittest.TestCase):
    """libmicrohttpd logs one line per malformed request: a client may not
    flood the log with them."""

    def test_rate_limited(self):
        g = gw.Gateway().start()
        try:
            bad = (b"POST /v1/queues/q/items HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Connection: close\r\nTransfer-Encoding: chunked\r\n"
                   b"Content-Type: application/json\r\n\r\nzz\r\n1\r\n0\r\n\r\n")
            for _ in range(60):
                self.assertEqual(raw(g.port, bad)[0], 400)
        finally:
            g.stop()
        lines = [l for l in g.stderr.splitlines() if l.startswith("atriumd: http: ")]
        # 10 a window of 10 seconds; 60 requests take far less than 50 s.
        self.assertGreater(len(lines), 0)
        self.assertLess(len(lines), 60)


if __name__ == "__main__":
    gw.main()
