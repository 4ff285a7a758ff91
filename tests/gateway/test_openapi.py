"""gateway/openapi.json against the real atriumd: a table of requests on
every route, with their main answers (2xx and errors), each answer checked
against the spec: its status is documented for that path and method, its
content type is one documented for that status, its body validates against
the documented schema (a compact JSON-Schema validator below), required
headers are there; and on success the request itself (path name, query
parameters, body) is one the spec allows. Besides: the route table and the
spec name the same operations, every error code the gateway can answer is
in the spec, and /openapi.json serves the file as it is."""
import http.client
import json
import os
import re
import tempfile
import unittest
import urllib.parse

import gw

SPEC_FILE = os.path.join(gw.ROOT, "gateway", "openapi.json")
with open(SPEC_FILE, "rb") as f:
    SPEC_BYTES = f.read()
SPEC = json.loads(SPEC_BYTES)
METHODS = ("get", "put", "post", "patch", "delete")

# ------------------------------------------------------------------ schemas

# Keywords the validator checks, and those it may pass over (annotations).
CHECKED = {"$ref", "type", "properties", "required", "additionalProperties",
           "items", "enum", "const", "oneOf", "anyOf", "allOf", "minimum",
           "maximum", "pattern"}
IGNORED = {"description", "title", "format", "default", "examples", "example",
           "deprecated", "readOnly", "writeOnly", "$comment"}


def resolve(ref):
    """The object a local $ref ("#/a/b") points at."""
    if not ref.startswith("#/"):
        raise AssertionError("only local $refs are supported: %r" % ref)
    node = SPEC
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def is_type(value, t):
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    raise AssertionError("unknown type %r in the spec" % t)


def same(a, b):
    """JSON equality: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def validate(value, schema, where="$"):
    """The list of ways value breaks schema (empty if none)."""
    if schema is True or schema == {}:
        return []
    if schema is False:
        return ["%s: no value allowed" % where]
    unknown = set(schema) - CHECKED - IGNORED
    if unknown:
        raise AssertionError("%s: the validator does not know %s" % (where, sorted(unknown)))
    errors = []
    if "$ref" in schema:
        errors += validate(value, resolve(schema["$ref"]), where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(is_type(value, t) for t in types):
            return errors + ["%s: %r is not of type %s" % (where, value, "/".join(types))]
    if "enum" in schema and not any(same(value, e) for e in schema["enum"]):
        errors.append("%s: %r is not one of %r" % (where, value, schema["enum"]))
    if "const" in schema and not same(value, schema["const"]):
        errors.append("%s: %r is not %r" % (where, value, schema["const"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append("%s: %r < minimum %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append("%s: %r > maximum %r" % (where, value, schema["maximum"]))
    if isinstance(value, str) and "pattern" in schema:
        if not re.search(schema["pattern"], value):
            errors.append("%s: %r does not match %r" % (where, value, schema["pattern"]))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append("%s: required member %r is missing" % (where, key))
        for key, v in value.items():
            if key in props:
                errors += validate(v, props[key], "%s.%s" % (where, key))
            elif "additionalProperties" in schema:
                errors += validate(v, schema["additionalProperties"], "%s.%s" % (where, key))
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += validate(v, schema["items"], "%s[%d]" % (where, i))
    for sub in schema.get("allOf", []):
        errors += validate(value, sub, where)
    if "anyOf" in schema and not any(not validate(value, s, where) for s in schema["anyOf"]):
        errors.append("%s: %r matches none of anyOf" % (where, value))
    if "oneOf" in schema:
        n = sum(1 for s in schema["oneOf"] if not validate(value, s, where))
        if n != 1:
            errors.append("%s: %r matches %d of oneOf, not 1" % (where, value, n))
    return errors


class Validator(unittest.TestCase):
    """The validator itself: each keyword can fail."""

    def test_keywords(self):
        bad = [
            (1.5, {"type": "integer"}), (True, {"type": "integer"}), (1, {"type": "boolean"}),
            ("x", {"type": ["integer", "boolean"]}), (None, {"type": "object"}),
            ({}, {"required": ["a"]}), ({"b": 1}, {"properties": {}, "additionalProperties": False}),
            ({"a": "x"}, {"properties": {"a": {"type": "integer"}}}),
            ([1, "x"], {"items": {"type": "integer"}}), ("c", {"enum": ["a", "b"]}),
            (1, {"enum": [True]}), (2, {"const": 1}), (0, {"minimum": 1}), (5, {"maximum": 4}),
            ("a/b", {"pattern": "^[a-z]+$"}), (1, {"oneOf": [{"type": "integer"}, {"type": "number"}]}),
            ("x", {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
            ({"code": "nope", "message": "m"}, {"$ref": "#/components/schemas/Error/properties/error"}),
        ]
        for value, schema in bad:
            with self.subTest(value=value, schema=schema):
                self.assertTrue(validate(value, schema))
        good = [
            (1, {"type": "integer"}), (1.0, {"type": "integer"}), (2.5, {"type": "number"}),
            (None, {"type": ["null", "string"]}), ({"a": 1}, {"required": ["a"]}),
            ({"a": 1, "b": 2}, {"properties": {"a": {}}, "additionalProperties": {"type": "integer"}}),
            (1.5, {"oneOf": [{"type": "integer"}, {"type": "number"}]}), (3, {"minimum": 3, "maximum": 3}),
            ({"error": {"code": "full", "message": "m"}}, {"$ref": "#/components/schemas/Error"}),
        ]
        for value, schema in good:
            with self.subTest(value=value, schema=schema):
                self.assertEqual(validate(value, schema), [])
        with self.assertRaises(AssertionError):
            validate("x", {"minLength": 3})


# ----------------------------------------------------------------- the spec

def templates():
    """(regex, path template) for every path of the spec."""
    out = []
    for tpl in SPEC["paths"]:
        rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "([^/]+)", re.escape(tpl)) + "$"
        out.append((re.compile(rx), tpl))
    return out


TEMPLATES = templates()


def operation(method, path):
    """(path template, operation) that the spec has for method and the
    raw path (without its query); None if it has none."""
    for rx, tpl in TEMPLATES:
        if rx.match(path):
            op = SPEC["paths"][tpl].get(method.lower())
            return (tpl, op) if op is not None else None
    return None


def parameters(tpl, op):
    params = list(SPEC["paths"][tpl].get("parameters", [])) + list(op.get("parameters", []))
    return [resolve(p["$ref"]) if "$ref" in p else p for p in params]


def media(ctype):
    return (ctype or "").split(";")[0].strip().lower()


def query_value(text, schema):
    """A query parameter's text as the JSON value its schema speaks of."""
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    for t, conv in (("integer", int), ("number", float)):
        if t in types:
            try:
                return conv(text)
            except ValueError:
                return text
    return text


def check_exchange(method, path, headers, body, resp):
    """Every way the answer resp to the request breaks the spec."""
    raw_path, _, query = path.partition("?")
    found = operation(method, raw_path)
    if found is None:
        return ["the spec has no %s %s" % (method, raw_path)]
    tpl, op = found
    errors = []
    status = str(resp.status)
    responses = op["responses"]
    key = status if status in responses else status[0] + "XX"
    if key not in responses:
        key = "default" if "default" in responses else None
    if key is None:
        return ["%s %s: status %s is not documented (%s)"
                % (method, tpl, status, ", ".join(sorted(responses)))]
    doc = responses[key]
    if "$ref" in doc:
        doc = resolve(doc["$ref"])
    content = doc.get("content")
    if not content:
        if resp.body:
            errors.append("%s %s %s: a body where the spec has none: %r"
                          % (method, tpl, status, resp.body[:200]))
    else:
        got = media(resp.header("Content-Type"))
        if got not in content:
            errors.append("%s %s %s: content type %r, the spec has %s"
                          % (method, tpl, status, got, sorted(content)))
        else:
            schema = content[got].get("schema", {})
            if got == "application/json":
                try:
                    value = json.loads(resp.body)
                except ValueError as e:
                    return errors + ["%s %s %s: not JSON (%s): %r"
                                     % (method, tpl, status, e, resp.body[:200])]
            else:
                value = resp.body.decode("utf-8")
            errors += ["%s %s %s: %s" % (method, tpl, status, e)
                       for e in validate(value, schema)]
    for name, h in doc.get("headers", {}).items():
        h = resolve(h["$ref"]) if "$ref" in h else h
        value = resp.header(name)
        if value is None:
            if h.get("required"):
                errors.append("%s %s %s: header %s is missing" % (method, tpl, status, name))
            continue
        errors += ["%s %s %s: header %s: %s" % (method, tpl, status, name, e)
                   for e in validate(value, h.get("schema", {}))]
    if not status.startswith("2"):
        return errors
    # A request that succeeded is one the spec allows.
    params = parameters(tpl, op)
    names = re.findall(r"\{([a-z_]+)\}", tpl)
    m = next(rx for rx, t in TEMPLATES if t == tpl).match(raw_path)
    for pname, pvalue in zip(names, m.groups()):
        p = [p for p in params if p["in"] == "path" and p["name"] == pname]
        if not p:
            errors.append("%s %s: path parameter %s is not documented" % (method, tpl, pname))
        else:
            errors += ["%s %s: path %s: %s" % (method, tpl, pname, e)
                       for e in validate(pvalue, p[0].get("schema", {}))]
    for qname, qvalue in urllib.parse.parse_qsl(query, keep_blank_values=True):
        p = [p for p in params if p["in"] == "query" and p["name"] == qname]
        if not p:
            errors.append("%s %s: query parameter %s is not documented" % (method, tpl, qname))
        else:
            schema = p[0].get("schema", {})
            errors += ["%s %s: query %s: %s" % (method, tpl, qname, e)
                       for e in validate(query_value(qvalue, schema), schema)]
    rb = op.get("requestBody")
    if rb is not None and "$ref" in rb:
        rb = resolve(rb["$ref"])
    if body:
        ctype = media((headers or {}).get("Content-Type", "application/json"))
        if rb is None or ctype not in rb.get("content", {}):
            errors.append("%s %s: a %s body that the spec does not take" % (method, tpl, ctype))
        else:
            errors += ["%s %s: request body: %s" % (method, tpl, e)
                       for e in validate(json.loads(body), rb["content"][ctype].get("schema", {}))]
    elif rb is not None and rb.get("required"):
        errors.append("%s %s: succeeded without the body the spec requires" % (method, tpl))
    return errors


# ------------------------------------------------------------------- table

BIG = '"' + "x" * 70000 + '"'  # over the --max-body given below
TEXT = {"Content-Type": "text/plain"}
Q = 18446744073709551615


def J(v):
    return json.dumps(v)


# (method, path, body (JSON text or None), headers, status, error code)
CASES = [
    ("GET", "/healthz", None, {}, 200, None),
    ("GET", "/healthz", BIG, {}, 413, "body_too_large"),
    ("GET", "/openapi.json", None, {}, 200, None),
    ("GET", "/openapi.json", BIG, {}, 413, "body_too_large"),
    ("GET", "/metrics", None, {}, 200, None),
    # values
    ("PUT", "/v1/values/v", J({"type": "q", "value": 5}), {}, 201, None),
    ("PUT", "/v1/values/v", J({"type": "q"}), {}, 200, None),
    ("PUT", "/v1/values/v", J({"type": "q", "value": -9223372036854775808}), {}, 200, None),
    ("PUT", "/v1/values/v", J({"type": "q", "value": 1}), {"If-Match": '"999999"'}, 412,
     "precondition_failed"),
    ("PUT", "/v1/values/v", J({"type": "q"}), {"If-None-Match": "*"}, 412, "precondition_failed"),
    ("PUT", "/v1/values/v", J({"type": "d"}), {}, 409, "type_mismatch"),
    ("PUT", "/v1/values/v", J({"type": "z"}), {}, 400, "invalid_type"),
    ("PUT", "/v1/values/v", "not json", {}, 400, "invalid_json"),
    ("PUT", "/v1/values/v", J({"type": "i", "value": 2 ** 31}), {}, 400, "out_of_range"),
    ("PUT", "/v1/values/v", J({"type": "q"}), TEXT, 415, "unsupported_media_type"),
    ("PUT", "/v1/values/v", BIG, {}, 413, "body_too_large"),
    ("PUT", "/v1/values/bad%00name", J({"type": "q"}), {}, 400, "bad_name"),
    ("PUT", "/v1/values/f", J({"type": "f", "value": 0.1}), {}, 201, None),
    ("PUT", "/v1/values/d", J({"type": "d", "value": -2.5e-300}), {}, 201, None),
    ("PUT", "/v1/values/b", J({"type": "?", "value": True}), {}, 201, None),
    ("PUT", "/v1/values/c", J({"type": "c", "value": "\u00e9"}), {}, 201, None),
    ("PUT", "/v1/values/u", J({"type": "Q", "value": Q}), {}, 201, None),
    ("GET", "/v1/values/v", None, {}, 200, None),
    ("GET", "/v1/values/v?wait=0&timeout=1.5", None, {}, 200, None),
    ("GET", "/v1/values/v?wait=abc", None, {}, 400, "invalid_query"),
    ("GET", "/v1/values/missing", None, {}, 404, "not_found"),
    ("GET", "/v1/values/" + "n" * 65, None, {}, 400, "bad_name"),
    ("POST", "/v1/values/v/add", J({"delta": -1}), {}, 409, "overflow"),
    ("POST", "/v1/values/v/add", J({"delta": 9}), {}, 200, None),
    ("POST", "/v1/values/v/add", None, {}, 200, None),
    ("POST", "/v1/values/d/add", J({"delta": 0.5}), {}, 200, None),
    ("POST", "/v1/values/b/add", None, {}, 409, "type_mismatch"),
    ("POST", "/v1/values/missing/add", None, {}, 404, "not_found"),
    ("POST", "/v1/values/v/add", J({"delta": 1.5}), {}, 400, "invalid_value"),
    ("POST", "/v1/values/v/add", J({"delta": 1}), TEXT, 415, "unsupported_media_type"),
    ("POST", "/v1/values/v/add", BIG, {}, 413, "body_too_large"),
    ("GET", "/v1/values", None, {}, 200, None),
    ("GET", "/v1/values?limit=1", None, {}, 200, None),
    ("GET", "/v1/values?prefix=v&after=b&limit=2", None, {}, 200, None),
    ("GET", "/v1/values?limit=0", None, {}, 400, "invalid_query"),
    ("GET", "/v1/objects?limit=1", None, {}, 200, None),
    ("GET", "/v1/objects?prefix=a%2Fb", None, {}, 400, "invalid_query"),
    # arrays
    ("PUT", "/v1/arrays/a", J({"type": "h", "length": 4}), {}, 201, None),
    ("PUT", "/v1/arrays/a", J({"type": "h", "length": 4}), {}, 200, None),
    ("PUT", "/v1/arrays/a", J({"type": "h", "values": [1, 2, 3, 4]}), {}, 200, None),
    ("PUT", "/v1/arrays/a", J({"type": "h", "length": 5}), {}, 409, "length_mismatch"),
    ("PUT", "/v1/arrays/a", J({"type": "h", "length": 4}), {"If-None-Match": "*"}, 412,
     "precondition_failed"),
    ("PUT", "/v1/arrays/a", J({"type": "h"}), {}, 400, "invalid_body"),
    ("PUT", "/v1/arrays/v", J({"type": "h", "length": 1}), {}, 409, "kind_mismatch"),
    ("PUT", "/v1/arrays/a", J({"type": "h", "length": 4}), TEXT, 415, "unsupported_media_type"),
    ("PUT", "/v1/arrays/a", BIG, {}, 413, "body_too_large"),
    ("PUT", "/v1/arrays/dq", J({"type": "Q", "values": [0, Q]}), {}, 201, None),
    ("PUT", "/v1/arrays/fl", J({"type": "d", "values": [0.5, -1e300, 5e-324]}), {}, 201, None),
    ("GET", "/v1/arrays/a", None, {}, 200, None),
    ("GET", "/v1/arrays/a?start=-2&stop=10", None, {}, 200, None),
    ("GET", "/v1/arrays/a?start=x", None, {}, 400, "invalid_query"),
    ("GET", "/v1/arrays/missing", None, {}, 404, "not_found"),
    ("GET", "/v1/arrays/v", None, {}, 409, "kind_mismatch"),
    ("GET", "/v1/values/a", None, {}, 409, "kind_mismatch"),
    ("PATCH", "/v1/arrays/a", J({"start": 1, "values": [7, 8]}), {}, 200, None),
    ("PATCH", "/v1/arrays/a", J({"start": 3, "values": [7, 8]}), {}, 400, "out_of_range"),
    ("PATCH", "/v1/arrays/a", J({"values": [1]}), {"If-Match": '"999999"'}, 412,
     "precondition_failed"),
    ("PATCH", "/v1/arrays/missing", J({"values": [1]}), {}, 404, "not_found"),
    ("PATCH", "/v1/arrays/v", J({"values": [1]}), {}, 409, "kind_mismatch"),
    ("PATCH", "/v1/arrays/a", J({"values": [1]}), TEXT, 415, "unsupported_media_type"),
    ("PATCH", "/v1/arrays/a", BIG, {}, 413, "body_too_large"),
    ("POST", "/v1/arrays/a/add", J({"index": 0, "delta": 5}), {}, 200, None),
    ("POST", "/v1/arrays/a/add", J({"index": -1}), {}, 200, None),
    ("POST", "/v1/arrays/a/add", J({"index": 9}), {}, 400, "out_of_range"),
    ("POST", "/v1/arrays/a/add", J({"index": 0, "delta": 40000}), {}, 409, "overflow"),
    ("POST", "/v1/arrays/missing/add", J({"index": 0}), {}, 404, "not_found"),
    ("POST", "/v1/arrays/a/add", J({"index": 0}), TEXT, 415, "unsupported_media_type"),
    ("POST", "/v1/arrays/a/add", BIG, {}, 413, "body_too_large"),
    # queues
    ("PUT", "/v1/queues/q", J({"maxsize": 2}), {}, 201, None),
    ("PUT", "/v1/queues/q", None, {}, 200, None),
    ("PUT", "/v1/queues/q", J({"maxsize": -1}), {}, 400, "invalid_body"),
    ("PUT", "/v1/queues/v", None, {}, 409, "kind_mismatch"),
    ("PUT", "/v1/queues/q", J({}), TEXT, 415, "unsupported_media_type"),
    ("PUT", "/v1/queues/q", BIG, {}, 413, "body_too_large"),
    ("PUT", "/v1/queues/tiny", J({"max_item": 16}), {}, 201, None),
    ("GET", "/v1/queues/q", None, {}, 200, None),
    ("GET", "/v1/queues/missing", None, {}, 404, "not_found"),
    ("GET", "/v1/queues/v", None, {}, 409, "kind_mismatch"),
    ("GET", "/v1/queues/bad%00", None, {}, 400, "bad_name"),
    ("POST", "/v1/queues/q/items", '{"id": 12345678901234567890}', {}, 201, None),
    ("POST", "/v1/queues/q/batch", "[1]", {}, 201, None),
    ("POST", "/v1/queues/q/items", "3", {}, 409, "full"),
    ("POST", "/v1/queues/q/items?timeout=0.05", "3", {}, 409, "full"),
    ("POST", "/v1/queues/q/batch", "[4, 5]", {}, 409, "full"),
    ("POST", "/v1/queues/q/items", "not json", {}, 400, "invalid_json"),
    ("POST", "/v1/queues/q/batch", '{"a": 1}', {}, 400, "invalid_body"),
    ("POST", "/v1/queues/missing/items", "1", {}, 404, "not_found"),
    ("POST", "/v1/queues/missing/batch", "[1]", {}, 404, "not_found"),
    ("POST", "/v1/queues/tiny/items", J("x" * 40), {}, 413, "item_too_large"),
    ("POST", "/v1/queues/q/items", "1", TEXT, 415, "unsupported_media_type"),
    ("POST", "/v1/queues/q/items", BIG, {}, 413, "body_too_large"),
    ("POST", "/v1/queues/q/batch", "[1]", TEXT, 415, "unsupported_media_type"),
    ("POST", "/v1/queues/q/batch", "[" + BIG + "]", {}, 413, "body_too_large"),
    ("POST", "/v1/queues/v/items", "1", {}, 409, "kind_mismatch"),
    ("POST", "/v1/queues/q/pop?max=10", None, {}, 200, None),
    ("POST", "/v1/queues/q/pop", None, {}, 204, None),
    ("POST", "/v1/queues/q/pop?timeout=0.05", None, {}, 204, None),
    ("POST", "/v1/queues/q/pop?max=0", None, {}, 400, "invalid_query"),
    ("POST", "/v1/queues/missing/pop", None, {}, 404, "not_found"),
    ("POST", "/v1/queues/v/pop", None, {}, 409, "kind_mismatch"),
    ("POST", "/v1/queues/q/items?timeout=1", '"again"', {}, 201, None),
    ("DELETE", "/v1/queues/q/items", None, {}, 204, None),
    ("DELETE", "/v1/queues/missing/items", None, {}, 404, "not_found"),
    ("DELETE", "/v1/queues/v/items", None, {}, 409, "kind_mismatch"),
    ("DELETE", "/v1/queues/bad%2Fname/items", None, {}, 400, "bad_name"),
    # events (the stream's body is not read)
    ("GET", "/v1/events?topics=value/", None, {}, 200, None),
    ("GET", "/v1/events", None, {"Last-Event-ID": "x"}, 400, "invalid_query"),
    ("POST", "/v1/events/tickets", None, {}, 201, None),
    # listings
    ("GET", "/v1/objects", None, {}, 200, None),
    ("GET", "/v1/store", None, {}, 200, None),
    # deletes
    ("DELETE", "/v1/values/a", None, {}, 409, "kind_mismatch"),
    ("DELETE", "/v1/values/v", None, {}, 204, None),
    ("DELETE", "/v1/values/v", None, {}, 404, "not_found"),
    ("DELETE", "/v1/values/bad%00", None, {}, 400, "bad_name"),
    ("DELETE", "/v1/arrays/q", None, {}, 409, "kind_mismatch"),
    ("DELETE", "/v1/arrays/a", None, {}, 204, None),
    ("DELETE", "/v1/arrays/a", None, {}, 404, "not_found"),
    ("DELETE", "/v1/arrays/a.b%2e", None, {}, 400, "bad_name"),
    ("DELETE", "/v1/queues/fl", None, {}, 409, "kind_mismatch"),
    ("DELETE", "/v1/queues/q", None, {}, 204, None),
    ("DELETE", "/v1/queues/q", None, {}, 404, "not_found"),
    ("DELETE", "/v1/queues/" + "n" * 65, None, {}, 400, "bad_name"),
]


def exchange(g, method, path, body=None, headers=None, auth=None):
    """One request on a connection of its own; a text/event-stream answer
    is taken as its status and headers only (it does not end)."""
    hdrs = dict(headers or {})
    if auth:
        hdrs["Authorization"] = "Bearer " + auth
    data = body.encode("utf-8") if isinstance(body, str) else body
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        if media(resp.getheader("Content-Type")) == "text/event-stream":
            raw = b""
        else:
            raw = resp.read()
        return gw.Response(resp.status, resp.getheaders(), raw)
    finally:
        conn.close()


def error_code(resp):
    """The error code of a JSON error answer, else None."""
    if media(resp.header("Content-Type")) != "application/json" or not resp.body:
        return None
    try:
        body = json.loads(resp.body)
    except ValueError:
        return None
    return body["error"].get("code") if isinstance(body, dict) and \
        isinstance(body.get("error"), dict) else None


def probe_path(tpl):
    return tpl.replace("{name}", "probe").replace("{key}", "probe")


class OpenApi(unittest.TestCase):
    """One daemon for the table, one with a token (401s), one on a store
    small enough to fill (507s)."""

    @classmethod
    def setUpClass(cls):
        cls.tokdir = tempfile.TemporaryDirectory()
        tokfile = os.path.join(cls.tokdir.name, "token")
        with open(tokfile, "w") as f:
            f.write("t0ken\n")
        cls.gws = []
        cls.seen = {}  # (template, method) -> set of statuses
        try:
            cls.gw = cls.start("--max-body", "65536")
            cls.tok = cls.start("--token-file", tokfile)
            cls.small = cls.start("--store-size", "2M")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, *args):
        # Events on a socket of its own: three daemons at once need no
        # free TCP port for them.
        events = "ipc://%s/events-%d.ipc" % (cls.tokdir.name, len(cls.gws))
        g = gw.Gateway("--events", events, *args)
        cls.gws.append(g)
        return g.start()

    @classmethod
    def tearDownClass(cls):
        try:
            for g in cls.gws:
                g.stop()
        finally:
            cls.tokdir.cleanup()

    def run_exchange(self, g, method, path, body=None, headers=None, auth=None):
        resp = exchange(g, method, path, body, headers, auth)
        errors = check_exchange(method, path, headers, body, resp)
        found = operation(method, path.partition("?")[0])
        if found:
            self.seen.setdefault((found[0], method.lower()), set()).add(resp.status)
        return resp, errors

    def test_1_table(self):
        self.assertGreaterEqual(len(CASES), 100)
        for method, path, body, headers, status, code in CASES:
            with self.subTest(method=method, path=path[:70], body=(body or "")[:50]):
                resp, errors = self.run_exchange(self.gw, method, path, body, headers)
                self.assertEqual((resp.status, error_code(resp)), (status, code), resp)
                self.assertEqual(errors, [])

    def exchanger(self, g):
        """ex(method, path, body, status, code, headers): one exchange with
        g, its status and error code asserted and its answer checked
        against the spec; the answer's JSON."""
        def ex(method, path, body=None, status=200, code=None, headers=None):
            text = None if body is None else J(body)
            resp, errors = self.run_exchange(g, method, path, text, headers)
            with self.subTest(method=method, path=path, body=(text or "")[:50]):
                self.assertEqual((resp.status, error_code(resp)), (status, code), resp)
                self.assertEqual(errors, [])
            return resp.json if resp.body else None
        return ex

    def test_1b_sync(self):
        """The synchronisation routes, in order (tokens are the answers'),
        each answer checked against the spec."""
        g = self.gw
        state = {}

        ex = self.exchanger(g)

        ex("PUT", "/v1/locks/sl", {}, 201)
        ex("PUT", "/v1/locks/sl", {"reentrant": True}, 200)
        ex("PUT", "/v1/locks/slr", {"reentrant": True}, 201)
        ex("PUT", "/v1/locks/sl", {"reentrant": 1}, 400, "invalid_body")
        ex("PUT", "/v1/locks/v2", {}, 201)
        ex("GET", "/v1/locks/sl")
        ex("GET", "/v1/locks/nolock", None, 404, "not_found")
        ex("GET", "/v1/locks")
        ex("POST", "/v1/locks/sl/acquire", None, 400, "invalid_query")
        ex("POST", "/v1/locks/sl/acquire?ttl=nan", None, 400, "invalid_query")
        ex("POST", "/v1/locks/sl/acquire?ttl=1&timeout=-1", None, 400, "invalid_query")
        ex("POST", "/v1/locks/nolock/acquire?ttl=1", None, 404, "not_found")
        state["g"] = ex("POST", "/v1/locks/sl/acquire?ttl=30&timeout=0")
        ex("GET", "/v1/locks/sl")
        ex("POST", "/v1/locks/sl/acquire?ttl=30", None, 409, "timeout")
        ex("POST", "/v1/locks/sl/acquire?ttl=30", {"token": "x"}, 409, "not_held")
        tok = state["g"]["token"]
        fence = {"Atrium-Fence": "sl=%d" % state["g"]["fence"]}
        ex("POST", "/v1/locks/sl/renew?ttl=60", {"token": tok})
        ex("POST", "/v1/locks/sl/renew", {"token": tok}, 400, "invalid_query")
        ex("POST", "/v1/locks/sl/renew?ttl=60", {"token": "0000000000000001"}, 409, "not_held")
        ex("PUT", "/v1/values/fv", {"type": "q"}, 201, None, fence)
        ex("PUT", "/v1/values/fv", {"type": "q"}, 412, "stale_fence", {"Atrium-Fence": "sl=1"})
        ex("PUT", "/v1/values/fv", {"type": "q"}, 400, "invalid_header", {"Atrium-Fence": "sl"})
        ex("POST", "/v1/values/fv/add", {"delta": 1}, 200, None, fence)
        ex("POST", "/v1/locks/sl/release", {"token": tok})
        ex("POST", "/v1/locks/sl/release", {"token": tok}, 409, "not_held")
        ex("POST", "/v1/locks/sl/release", {}, 400, "invalid_body")
        g2 = ex("POST", "/v1/locks/slr/acquire?ttl=30")
        ex("POST", "/v1/locks/slr/acquire?ttl=30", {"token": g2["token"]})
        ex("GET", "/v1/locks/slr")
        ex("POST", "/v1/locks/slr/break")
        ex("POST", "/v1/locks/slr/release", {"token": g2["token"]}, 409, "not_held")
        ex("DELETE", "/v1/locks/v2", None, 204)
        # semaphores
        ex("PUT", "/v1/semaphores/ss", {"value": 1, "bound": 1}, 201)
        ex("PUT", "/v1/semaphores/ss", None, 200)
        ex("PUT", "/v1/semaphores/ss2", None, 201)
        ex("PUT", "/v1/semaphores/ss3", {"value": 2, "bound": 1}, 400, "invalid_body")
        ex("GET", "/v1/semaphores/ss")
        ex("GET", "/v1/semaphores")
        ex("POST", "/v1/semaphores/ss/acquire")
        ex("POST", "/v1/semaphores/ss/acquire?timeout=0.05", None, 409, "timeout")
        ex("POST", "/v1/semaphores/ss/release")
        ex("POST", "/v1/semaphores/ss/release", None, 409, "over_released")
        sg = ex("POST", "/v1/semaphores/ss/acquire?ttl=30")
        ex("POST", "/v1/semaphores/ss/release", {"token": sg["token"]})
        ex("POST", "/v1/semaphores/ss/acquire?ttl=0", None, 400, "invalid_query")
        ex("DELETE", "/v1/semaphores/ss2", None, 204)
        # flags
        ex("PUT", "/v1/flags/sf", {}, 201)
        ex("PUT", "/v1/flags/sf", {"set": "x"}, 400, "invalid_body")
        ex("GET", "/v1/flags/sf")
        ex("GET", "/v1/flags")
        ex("POST", "/v1/flags/sf/wait?timeout=0.05")
        ex("POST", "/v1/flags/sf/set")
        ex("POST", "/v1/flags/sf/wait")
        ex("POST", "/v1/flags/sf/clear")
        ex("POST", "/v1/flags/sf/wait?timeout=x", None, 400, "invalid_query")
        ex("DELETE", "/v1/flags/sf", None, 204)
        # barriers
        ex("PUT", "/v1/barriers/sb", {}, 400, "invalid_body")
        ex("PUT", "/v1/barriers/sb", {"parties": 1}, 201)
        ex("PUT", "/v1/barriers/sb", {"parties": 1}, 200)
        ex("GET", "/v1/barriers/sb")
        ex("GET", "/v1/barriers")
        ex("POST", "/v1/barriers/sb/wait")
        ex("POST", "/v1/barriers/sb/abort")
        ex("POST", "/v1/barriers/sb/wait", None, 409, "broken")
        ex("POST", "/v1/barriers/sb/reset")
        ex("DELETE", "/v1/barriers/sb", None, 204)
        # conditions
        ex("PUT", "/v1/conditions/sc", {}, 400, "invalid_body")
        ex("PUT", "/v1/conditions/sc", {"lock": "nolock"}, 404, "not_found")
        ex("PUT", "/v1/conditions/sc", {"lock": "sl"}, 201)
        ex("GET", "/v1/conditions/sc")
        ex("GET", "/v1/conditions")
        g3 = ex("POST", "/v1/locks/sl/acquire?ttl=30")
        ex("POST", "/v1/conditions/sc/notify", {"token": g3["token"], "all": True})
        ex("POST", "/v1/conditions/sc/notify", {"token": "0000000000000001"}, 409, "not_held")
        w = ex("POST", "/v1/conditions/sc/wait?timeout=0.05", {"token": g3["token"]})
        ex("POST", "/v1/conditions/sc/wait", {"token": g3["token"]}, 409, "not_held")
        ex("POST", "/v1/locks/sl/release", {"token": w["token"]})
        ex("DELETE", "/v1/conditions/sc", None, 204)
        ex("DELETE", "/v1/locks/sl", None, 204)

    def test_1c_leased_queue(self):
        """Leased pops, ack, nack, touch, done and join, in order (receipts
        are the answers'), each answer checked against the spec."""
        g = self.gw

        def ex(method, path, body=None, status=200, code=None):
            text = None if body is None else J(body)
            resp, errors = self.run_exchange(g, method, path, text)
            with self.subTest(method=method, path=path, body=(text or "")[:50]):
                self.assertEqual((resp.status, error_code(resp)), (status, code), resp)
                self.assertEqual(errors, [])
            return resp.json if resp.body else None

        ex("PUT", "/v1/queues/lqd", {}, 201)
        ex("PUT", "/v1/queues/lq", {"max_deliveries": 2, "dead_letter": "lqd"}, 201)
        ex("PUT", "/v1/queues/lq2", {"dead_letter": "lq2"}, 400, "invalid_body")
        ex("PUT", "/v1/queues/lq2", {"max_deliveries": -1}, 400, "invalid_body")
        ex("POST", "/v1/queues/lq/batch", [1, 2, 3], 201)
        got = ex("POST", "/v1/queues/lq/pop?lease=30&max=2")
        r = [i["receipt"] for i in got["items"]]
        ex("POST", "/v1/queues/lq/pop?lease=0", None, 400, "invalid_query")
        ex("POST", "/v1/queues/lq/touch?lease=60", {"receipts": r[:1]})
        ex("POST", "/v1/queues/lq/touch", {"receipts": r[:1]}, 400, "invalid_query")
        ex("POST", "/v1/queues/lq/ack", {"receipts": r[:1] + ["nope"]})
        ex("POST", "/v1/queues/lq/ack", {"receipts": "x"}, 400, "invalid_body")
        ex("POST", "/v1/queues/lq/ack", {}, 400, "invalid_body")
        ex("POST", "/v1/queues/lq/nack?delay=0", {"receipts": r[1:]})
        ex("POST", "/v1/queues/lq/nack?delay=-1", {"receipts": r[1:]}, 400, "invalid_query")
        ex("GET", "/v1/queues/lq")
        ex("POST", "/v1/queues/lq/pop?max=10")
        ex("POST", "/v1/queues/lq/done", {"n": 2})
        ex("POST", "/v1/queues/lq/done", None, 409, "too_many_done")
        ex("POST", "/v1/queues/lq/done", {"n": 0}, 400, "invalid_body")
        ex("POST", "/v1/queues/lq/join?timeout=0")
        ex("POST", "/v1/queues/lq/join?timeout=x", None, 400, "invalid_query")
        ex("POST", "/v1/queues/nolq/join", None, 404, "not_found")
        ex("DELETE", "/v1/queues/lq", None, 204)
        ex("DELETE", "/v1/queues/lqd", None, 204)

    def test_1c_dicts(self):
        """The dict routes, each answer checked against the spec."""
        g = self.gw

        ex = self.exchanger(g)

        ex("PUT", "/v1/dicts/sd", {}, 201)
        ex("PUT", "/v1/dicts/sd", {"items": {"a": 1, "b/c": [2]}})
        ex("PUT", "/v1/dicts/sd", {"other": 1}, 400, "invalid_body")
        ex("GET", "/v1/dicts")
        ex("GET", "/v1/dicts/sd")
        ex("GET", "/v1/dicts/sd?keys=a,b%2Fc,zz")
        ex("GET", "/v1/dicts/sd?after=a&limit=1")
        ex("GET", "/v1/dicts/sd?limit=0", None, 400, "invalid_query")
        k = ex("PUT", "/v1/dicts/sd/keys/n%2Fm", 12345678901234567890123, 201)
        ex("PUT", "/v1/dicts/sd/keys/n%2Fm", 1, 412, "precondition_failed",
           {"If-Match": '"%d"' % (k["version"] + 100)})
        ex("PUT", "/v1/dicts/sd/keys/n%2Fm", 1, 200, None,
           {"If-Match": '"%d"' % k["version"]})
        ex("PUT", "/v1/dicts/sd/keys/a%00", 1, 400, "bad_key")
        ex("GET", "/v1/dicts/sd/keys/n%2Fm")
        ex("GET", "/v1/dicts/sd/keys/n%%2Fm?wait=%d&timeout=0.05" % (k["version"] + 1))
        ex("GET", "/v1/dicts/sd/keys/zz", None, 404, "no_such_key")
        ex("PATCH", "/v1/dicts/sd", {"set": {"x": {"y": None}}, "delete": ["a"]})
        ex("PATCH", "/v1/dicts/sd", {"set": {"x": 1}, "delete": ["x"]}, 400, "invalid_body")
        ex("DELETE", "/v1/dicts/sd/keys/x")
        ex("DELETE", "/v1/dicts/sd/keys/x", None, 404, "no_such_key")
        ex("DELETE", "/v1/dicts/sd", None, 204)

    def test_2_unauthorized(self):
        """Without the token every route but the open ones is 401, as the
        spec says per operation (security: [] marks the open ones)."""
        for tpl, item in SPEC["paths"].items():
            for method in METHODS:
                op = item.get(method)
                if op is None:
                    continue
                open_route = op.get("security", SPEC.get("security")) == []
                with self.subTest(method=method, path=tpl):
                    resp, errors = self.run_exchange(self.tok, method.upper(), probe_path(tpl))
                    if open_route:
                        self.assertNotEqual(resp.status, 401, resp)
                    else:
                        self.assertEqual((resp.status, error_code(resp)), (401, "unauthorized"))
                        self.assertEqual(resp.header("WWW-Authenticate"), 'Bearer realm="atrium"')
                    self.assertEqual(errors, [])
        resp, errors = self.run_exchange(self.tok, "GET", "/v1/store", auth="t0ken")
        self.assertEqual((resp.status, errors), (200, []))

    def test_3_store_full(self):
        g = self.small
        resp, errors = self.run_exchange(g, "PUT", "/v1/queues/fill")
        self.assertEqual((resp.status, errors), (201, []))
        item = J("y" * 60000)
        for _ in range(100):
            resp, errors = self.run_exchange(g, "POST", "/v1/queues/fill/items", item)
            self.assertEqual(errors, [])
            if resp.status != 201:
                break
        self.assertEqual((resp.status, error_code(resp)), (507, "store_full"))
        resp, errors = self.run_exchange(g, "POST", "/v1/queues/fill/batch", "[" + item + "]")
        self.assertEqual((resp.status, error_code(resp), errors), (507, "store_full", []))
        resp, errors = self.run_exchange(g, "POST", "/v1/queues/fill/pop?max=10000")
        self.assertEqual((resp.status, errors), (200, []))

    def test_4_every_operation(self):
        """Operations the table does not name get a bare request (the
        answer must still be documented); then every operation of the
        spec must have answered at least one success."""
        for tpl, item in SPEC["paths"].items():
            for method in METHODS:
                if method in item and (tpl, method) not in self.seen:
                    with self.subTest(probe=method + " " + tpl):
                        resp, errors = self.run_exchange(self.gw, method.upper(),
                                                         probe_path(tpl))
                        self.assertEqual(errors, [])
        missing = [(m, tpl) for tpl, item in SPEC["paths"].items() for m in METHODS
                   if m in item and not any(200 <= s < 300
                                            for s in self.seen.get((tpl, m), ()))]
        self.assertEqual(missing, [], "operations never seen succeeding")

    def test_served_spec_is_the_file(self):
        resp = exchange(self.gw, "GET", "/openapi.json")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, SPEC_BYTES)
        self.assertEqual(SPEC["openapi"], "3.1.0")

    def test_routes_are_the_spec(self):
        """The route table (gateway/routes.c) and the spec name the same
        /v1, /healthz, /metrics and /openapi.json operations."""
        with open(os.path.join(gw.ROOT, "gateway", "routes.c")) as f:
            table = set(re.findall(r'\{GW_([A-Z]+),\s*"([^"]+)"', f.read()))
        routes = {(p, m.lower()) for m, p in table}
        self.assertGreater(len(routes), 20)
        spec_ops = {(tpl, m) for tpl, item in SPEC["paths"].items() for m in METHODS if m in item}
        api = {(p, m) for p, m in routes
               if p.startswith("/v1/") or p == "/v1" or p in ("/healthz", "/metrics", "/openapi.json")}
        self.assertEqual(sorted(api - spec_ops), [], "routes the spec does not document")
        self.assertEqual(sorted(spec_ops - routes), [], "operations the gateway does not have")

    def test_error_codes_are_the_spec(self):
        """Every error code in the gateway's sources is in the spec's list."""
        codes = set()
        gdir = os.path.join(gw.ROOT, "gateway")
        for name in sorted(os.listdir(gdir)):
            if not name.endswith(".c") or name.startswith("fuzz_"):
                continue
            with open(os.path.join(gdir, name)) as f:
                text = f.read()
            codes |= {(name, c) for c in re.findall(
                r'gw_reply_error\(\s*\w+,\s*\d+,\s*"([a-z_]+)"', text)}
            codes |= {(name, c) for c in re.findall(r'\{ATR_E[A-Z]+,\s*\d+,\s*"([a-z_]+)"\}', text)}
        self.assertGreater(len(codes), 20)
        enum = set(SPEC["components"]["schemas"]["Error"]["properties"]["error"]
                   ["properties"]["code"]["enum"])
        self.assertEqual(sorted((f, c) for f, c in codes if c not in enum), [])


if __name__ == "__main__":
    gw.main()
