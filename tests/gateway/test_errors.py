"""A catalogue of bad requests: each gets its status and error code, and
changes nothing in the store."""
import json

import gw

J = {"Content-Type": "application/json"}
DEEP = '{"type":"i","value":' + "[" * 100 + "]" * 100 + "}"
BIG = '{"type":"i","value":1,"pad":"' + "x" * (1 << 20) + '"}'
LONG = "n" * 65

# (method, path, body, extra headers, status, error code)
CATALOGUE = [
    # JSON itself
    ("PUT", "/v1/values/x", "not json", {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", '{"type":"i"', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", '{"type":"i"} x', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", '{"type":"i"}{}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", b'{"type":"c","value":"\xff"}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", b'{"type":"c","value":"\xc3\x28"}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", b'{"type":"c","value":"\xed\xa0\x80"}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", '{"type":"i","value":01}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", '{"type":"i","value":1.}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", '{"type":"i","value":NaN}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", '{"type":"c","value":"\\ud800"}', {}, 400, "invalid_json"),
    # a U+0000 would cut a C string short: "value\0x" is not "value"
    ("PUT", "/v1/values/x", '{"type":"i","value\\u0000x":1}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", '{"type":"i\\u0000"}', {}, 400, "invalid_type"),
    ("PUT", "/v1/values/x", '{"type":"i",}', {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", "   ", {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", DEEP, {}, 400, "invalid_json"),
    ("PUT", "/v1/values/x", BIG, {}, 413, "body_too_large"),
    ("PUT", "/v1/values/x", '{"type":"i"}', {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("PUT", "/v1/values/x", None, {}, 400, "invalid_body"),
    # value bodies
    ("PUT", "/v1/values/x", '{"type":"z"}', {}, 400, "invalid_type"),
    ("PUT", "/v1/values/x", '{"type":"ii"}', {}, 400, "invalid_type"),
    ("PUT", "/v1/values/x", '{"value":1}', {}, 400, "invalid_type"),
    ("PUT", "/v1/values/x", '{"type":"i","valu":1}', {}, 400, "invalid_body"),
    ("PUT", "/v1/values/x", '{"type":"i","type":"i"}', {}, 400, "invalid_body"),
    ("PUT", "/v1/values/x", "[1]", {}, 400, "invalid_body"),
    ("PUT", "/v1/values/x", '{"type":"i","value":1.5}', {}, 400, "invalid_value"),
    ("PUT", "/v1/values/x", '{"type":"i","value":1e3}', {}, 400, "invalid_value"),
    ("PUT", "/v1/values/x", '{"type":"i","value":"1"}', {}, 400, "invalid_value"),
    ("PUT", "/v1/values/x", '{"type":"i","value":null}', {}, 400, "invalid_value"),
    ("PUT", "/v1/values/x", '{"type":"i","value":2147483648}', {}, 400, "out_of_range"),
    ("PUT", "/v1/values/x", '{"type":"b","value":128}', {}, 400, "out_of_range"),
    ("PUT", "/v1/values/x", '{"type":"B","value":-1}', {}, 400, "out_of_range"),
    ("PUT", "/v1/values/x", '{"type":"Q","value":18446744073709551616}', {}, 400,
     "out_of_range"),
    ("PUT", "/v1/values/x", '{"type":"q","value":-9223372036854775809}', {}, 400,
     "out_of_range"),
    ("PUT", "/v1/values/x", '{"type":"f","value":1e39}', {}, 400, "out_of_range"),
    ("PUT", "/v1/values/x", '{"type":"d","value":1e400}', {}, 400, "out_of_range"),
    ("PUT", "/v1/values/x", '{"type":"d","value":"1.5"}', {}, 400, "invalid_value"),
    ("PUT", "/v1/values/x", '{"type":"?","value":1}', {}, 400, "invalid_value"),
    ("PUT", "/v1/values/x", '{"type":"c","value":"ab"}', {}, 400, "invalid_value"),
    ("PUT", "/v1/values/x", '{"type":"c","value":""}', {}, 400, "invalid_value"),
    ("PUT", "/v1/values/x", '{"type":"c","value":"\u2603"}', {}, 400, "out_of_range"),
    ("PUT", "/v1/values/x", '{"type":"c","value":65}', {}, 400, "invalid_value"),
    # conflicts with what exists
    ("PUT", "/v1/values/v", '{"type":"d"}', {}, 409, "type_mismatch"),
    ("PUT", "/v1/values/arr", '{"type":"i"}', {}, 409, "kind_mismatch"),
    ("PUT", "/v1/values/v", '{"type":"i","value":5}', {"If-Match": '"999999"'}, 412,
     "precondition_failed"),
    ("PUT", "/v1/values/v", '{"type":"i","value":5}', {"If-Match": '"0"'}, 412,
     "precondition_failed"),
    ("PUT", "/v1/values/v", '{"type":"i","value":5}', {"If-None-Match": "*"}, 412,
     "precondition_failed"),
    ("PUT", "/v1/values/x", '{"type":"i","value":5}', {"If-Match": '"1"'}, 412,
     "precondition_failed"),
    ("PUT", "/v1/values/v", '{"type":"i","value":5}', {"If-Match": "seven"}, 400,
     "invalid_header"),
    # reads and names
    ("GET", "/v1/values/x", None, {}, 404, "not_found"),
    ("GET", "/v1/values/arr", None, {}, 409, "kind_mismatch"),
    ("GET", "/v1/values/v?wait=abc", None, {}, 400, "invalid_query"),
    ("GET", "/v1/values/v?wait=-1", None, {}, 400, "invalid_query"),
    ("GET", "/v1/values/v?wait=1&timeout=-1", None, {}, 400, "invalid_query"),
    ("GET", "/v1/values/v?wait=1&timeout=inf", None, {}, 400, "invalid_query"),
    ("GET", "/v1/values/%00", None, {}, 400, "bad_name"),
    ("GET", "/v1/values/v%00x", None, {}, 400, "bad_name"),
    ("GET", "/v1/values/%76", None, {}, 400, "bad_name"),
    ("GET", "/v1/values/a!b", None, {}, 400, "bad_name"),
    ("GET", "/v1/values/" + LONG, None, {}, 400, "bad_name"),
    ("GET", "/v1/values/", None, {}, 400, "bad_name"),
    ("PUT", "/v1/values/a%2Fb", '{"type":"i"}', {}, 400, "bad_name"),
    ("GET", "/v1/nothing", None, {}, 404, "not_found"),
    ("GET", "/web/nothing.js", None, {}, 404, "not_found"),
    ("POST", "/", None, {}, 405, "method_not_allowed"),
    ("GET", "/v1/values/v/", None, {}, 404, "not_found"),
    ("PATCH", "/v1/values/v", '{}', {}, 405, "method_not_allowed"),
    ("FOO", "/v1/values/v", None, {}, 405, "method_not_allowed"),
    ("POST", "/v1/objects", None, {}, 405, "method_not_allowed"),
    ("GET", "/v1/values/v/add", None, {}, 405, "method_not_allowed"),
    # add
    ("POST", "/v1/values/v/add", '{"delta":1.5}', {}, 400, "invalid_value"),
    ("POST", "/v1/values/v/add", '{"delta":"1"}', {}, 400, "invalid_value"),
    ("POST", "/v1/values/v/add", '{"delta":9223372036854775808}', {}, 400, "out_of_range"),
    ("POST", "/v1/values/v/add", '{"delt":1}', {}, 400, "invalid_body"),
    ("POST", "/v1/values/v/add", "1", {}, 400, "invalid_body"),
    ("POST", "/v1/values/v/add", '{"delta":1}', {"Content-Type": "text/json"}, 415,
     "unsupported_media_type"),
    ("POST", "/v1/values/big/add", None, {}, 409, "overflow"),
    ("POST", "/v1/values/small/add", '{"delta":-1}', {}, 409, "overflow"),
    ("POST", "/v1/values/dmax/add", '{"delta":1e308}', {}, 409, "overflow"),
    ("POST", "/v1/values/flag/add", None, {}, 409, "type_mismatch"),
    ("POST", "/v1/values/ch/add", None, {}, 409, "type_mismatch"),
    ("POST", "/v1/values/x/add", None, {}, 404, "not_found"),
    ("POST", "/v1/values/q/add", None, {}, 409, "kind_mismatch"),
    ("DELETE", "/v1/values/x", None, {}, 404, "not_found"),
    ("DELETE", "/v1/values/arr", None, {}, 409, "kind_mismatch"),
    # arrays
    ("PUT", "/v1/arrays/arr", '{"type":"I","length":5}', {}, 409, "length_mismatch"),
    ("PUT", "/v1/arrays/arr", '{"type":"I","values":[1,2,3]}', {}, 409, "length_mismatch"),
    ("PUT", "/v1/arrays/arr", '{"type":"d","length":4}', {}, 409, "type_mismatch"),
    ("PUT", "/v1/arrays/v", '{"type":"i","length":4}', {}, 409, "kind_mismatch"),
    ("PUT", "/v1/arrays/x", '{"type":"i","length":0}', {}, 400, "invalid_body"),
    ("PUT", "/v1/arrays/x", '{"type":"i","length":-3}', {}, 400, "invalid_body"),
    ("PUT", "/v1/arrays/x", '{"type":"i"}', {}, 400, "invalid_body"),
    ("PUT", "/v1/arrays/x", '{"type":"i","length":2,"values":[1]}', {}, 400, "invalid_body"),
    ("PUT", "/v1/arrays/x", '{"type":"i","values":[1,"a"]}', {}, 400, "invalid_value"),
    ("PUT", "/v1/arrays/x", '{"type":"i","values":7}', {}, 400, "invalid_body"),
    ("PUT", "/v1/arrays/x", '{"type":"i","length":1000000000000}', {}, 507, "store_full"),
    ("PATCH", "/v1/arrays/arr", '{"start":3,"values":[1,2]}', {}, 400, "out_of_range"),
    ("PATCH", "/v1/arrays/arr", '{"start":-5,"values":[1]}', {}, 400, "out_of_range"),
    ("PATCH", "/v1/arrays/arr", '{"start":0,"values":[1,1e10]}', {}, 400, "invalid_value"),
    ("PATCH", "/v1/arrays/arr", '{"start":0,"values":[1,4294967296]}', {}, 400,
     "out_of_range"),
    ("PATCH", "/v1/arrays/arr", '{"values":[1],"x":1}', {}, 400, "invalid_body"),
    ("PATCH", "/v1/arrays/arr", '{"start":0}', {}, 400, "invalid_body"),
    ("PATCH", "/v1/arrays/arr", '{"values":[1]}', {"If-Match": '"999999"'}, 412,
     "precondition_failed"),
    ("POST", "/v1/arrays/arr/add", '{"index":4}', {}, 400, "out_of_range"),
    ("POST", "/v1/arrays/arr/add", '{"index":-5}', {}, 400, "out_of_range"),
    ("POST", "/v1/arrays/arr/add", '{"delta":1}', {}, 400, "invalid_body"),
    ("POST", "/v1/arrays/arr/add", '{"index":3,"delta":1}', {}, 409, "overflow"),
    ("GET", "/v1/arrays/arr?start=x", None, {}, 400, "invalid_query"),
    ("GET", "/v1/arrays/arr?stop=1.5", None, {}, 400, "invalid_query"),
    ("GET", "/v1/arrays/x", None, {}, 404, "not_found"),
    ("DELETE", "/v1/arrays/v", None, {}, 409, "kind_mismatch"),
    # queues
    ("POST", "/v1/queues/q/items", '{"a":1}', {}, 409, "full"),
    ("POST", "/v1/queues/q/items?timeout=0.05", '{"a":1}', {}, 409, "full"),
    ("POST", "/v1/queues/q/items", "nope", {}, 400, "invalid_json"),
    ("POST", "/v1/queues/q/items", b'"\xff"', {}, 400, "invalid_json"),
    ("POST", "/v1/queues/q/items", "[" * 100 + "]" * 100, {}, 400, "invalid_json"),
    ("POST", "/v1/queues/q/items", None, {}, 400, "invalid_body"),
    ("POST", "/v1/queues/q/items", "1", {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("POST", "/v1/queues/q/items?timeout=x", "1", {}, 400, "invalid_query"),
    ("POST", "/v1/queues/q/batch", '{"a":1}', {}, 400, "invalid_body"),
    ("POST", "/v1/queues/q/batch", "[1,2", {}, 400, "invalid_json"),
    ("POST", "/v1/queues/q/batch", "[1,2]", {}, 409, "full"),
    ("POST", "/v1/queues/x/items", "1", {}, 404, "not_found"),
    ("POST", "/v1/queues/v/items", "1", {}, 409, "kind_mismatch"),
    ("POST", "/v1/queues/q/pop?max=0", None, {}, 400, "invalid_query"),
    ("POST", "/v1/queues/q/pop?max=100001", None, {}, 400, "invalid_query"),
    ("POST", "/v1/queues/q/pop?timeout=abc", None, {}, 400, "invalid_query"),
    ("POST", "/v1/queues/v/pop", None, {}, 409, "kind_mismatch"),
    ("POST", "/v1/queues/x/pop", None, {}, 404, "not_found"),
    ("PUT", "/v1/queues/q2", '{"maxsize":-1}', {}, 400, "invalid_body"),
    ("PUT", "/v1/queues/q2", '{"maxsize":"3"}', {}, 400, "invalid_body"),
    ("PUT", "/v1/queues/q2", '{"size":3}', {}, 400, "invalid_body"),
    ("PUT", "/v1/queues/v", "{}", {}, 409, "kind_mismatch"),
    ("GET", "/v1/queues/x", None, {}, 404, "not_found"),
    ("GET", "/v1/queues/v", None, {}, 409, "kind_mismatch"),
    ("DELETE", "/v1/queues/x/items", None, {}, 404, "not_found"),
    ("DELETE", "/v1/queues/v", None, {}, 409, "kind_mismatch"),
    ("GET", "/v1/queues/q/pop", None, {}, 405, "method_not_allowed"),
]


class ErrorCatalogue(gw.GatewayCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        g = cls.gw
        for path, body in [("/v1/values/v", {"type": "i", "value": 7}),
                           ("/v1/values/big", {"type": "b", "value": 127}),
                           ("/v1/values/small", {"type": "B", "value": 0}),
                           ("/v1/values/dmax", {"type": "d", "value": 1.7e308}),
                           ("/v1/values/flag", {"type": "?", "value": True}),
                           ("/v1/values/ch", {"type": "c", "value": "a"}),
                           ("/v1/arrays/arr", {"type": "I", "values": [1, 2, 3, 4294967295]}),
                           ("/v1/queues/q", {"maxsize": 1})]:
            assert g.put(path, body).status == 201, path
        assert g.post("/v1/queues/q/items", {"first": 1}).status == 201

    def snapshot(self):
        g = self.gw
        objs = g.objects()
        state = [json.dumps(objs)]
        for o in objs:
            state.append(g.get("/v1/%ss/%s" % (o["kind"], o["name"])).body)
        return state

    def send(self, method, path, body, headers):
        """A raw request, so that paths, methods and bodies go out exactly
        as written; returns (status, error code, headers)."""
        if isinstance(body, str):
            body = body.encode()
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers)
        head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, path)
        for k, v in hdrs.items():
            head += "%s: %s\r\n" % (k, v)
        if body is not None:
            head += "Content-Length: %d\r\n" % len(body)
        status, rh, payload = gw.raw(self.gw.port, head.encode() + b"\r\n" + (body or b""),
                                     timeout=10)
        code = json.loads(payload)["error"]["code"] if payload else None
        return status, code, rh

    def test_catalogue(self):
        self.assertGreaterEqual(len(CATALOGUE), 50)
        before = self.snapshot()
        for method, path, body, headers, status, code in CATALOGUE:
            with self.subTest(method=method, path=path[:60], body=str(body)[:60]):
                got, got_code, rh = self.send(method, path, body, headers)
                self.assertEqual((got, got_code), (status, code))
                if status == 405:
                    self.assertTrue(rh.get("allow"))
                self.assertEqual(self.snapshot(), before, "the store changed")

    def test_error_shape(self):
        r = self.gw.get("/v1/values/nope")
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(set(r.json), {"error"})
        self.assertEqual(set(r.json["error"]), {"code", "message"})
        self.assertTrue(r.json["error"]["message"])


# Offsets of the store layout (core/internal.h, layout 2) that the damage
# test writes; the test reads the old bytes first, so a layout change
# fails it loudly instead of damaging something else.
SLOTS_OFF = 48       # header: the object records' offset (u64)
SLOT_SIZE = 512
NAME_AT = 64         # record: the name
ARRAY_LENGTH_AT = 208  # record: an array's length (u64)


class Damage(gw.GatewayCase):
    """A damaged object answers 500 store_damaged naming it; the rest of
    the store keeps working."""

    def test_damaged_array(self):
        g = self.gw
        self.assertEqual(g.put("/v1/arrays/dmg.a", {"type": "d", "length": 4}).status, 201)
        self.assertEqual(g.put("/v1/values/dmg.v", {"type": "q", "value": 7}).status, 201)
        with open(g.store, "r+b") as f:
            f.seek(SLOTS_OFF)
            slots = int.from_bytes(f.read(8), "little")
            for slot in range(4096):
                f.seek(slots + slot * SLOT_SIZE + NAME_AT)
                if f.read(6) == b"dmg.a\0":
                    break
            else:
                self.fail("no record named dmg.a")
            at = slots + slot * SLOT_SIZE + ARRAY_LENGTH_AT
            f.seek(at)
            self.assertEqual(int.from_bytes(f.read(8), "little"), 4, "layout moved")
            f.seek(at)
            f.write((1 << 32).to_bytes(8, "little"))
        for method, path, body in [("GET", "/v1/arrays/dmg.a", None),
                                   ("PATCH", "/v1/arrays/dmg.a", {"start": 0, "values": [1.0]}),
                                   ("POST", "/v1/arrays/dmg.a/add", {"index": 0, "delta": 1})]:
            r = g.request(method, path, json_body=body)
            self.assertEqual((r.status, r.error), (500, "store_damaged"), path)
            self.assertIn("dmg.a", r.json["error"]["message"])
        r = g.post("/v1/values/dmg.v/add", {"delta": 1})
        self.assertEqual((r.status, r.json["value"]), (200, 8))
        self.assertEqual(g.get("/healthz").status, 200)
        self.assertEqual(g.get("/v1/objects").status, 200)
        self.assertEqual(g.request("DELETE", "/v1/values/dmg.v").status, 204)
        # The operator's way out: the damaged object can be deleted, and
        # its name is free again.
        self.assertEqual(g.request("DELETE", "/v1/arrays/dmg.a").status, 204)
        self.assertEqual(g.put("/v1/arrays/dmg.a", {"type": "d", "length": 4}).status, 201)


if __name__ == "__main__":
    gw.main()
