"""The remote transport: atriumd's HTTP/JSON API (DESIGN.md, "HTTP API").

One keep-alive connection per thread (and per process: a forked child
opens its own). A call that may wait is a long-poll of at most SLICE
seconds, repeated until the caller's timeout: the gateway caps each wait at
its --max-wait and answers "nothing yet" then, which only starts the next
poll. Integers travel exactly (Python's json reads and writes big ints).
An interrupted request (Ctrl-C) drops its connection, whose answer would
otherwise be read by the next call.
"""
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse

from . import _codec
from ._errors import AtriumError, from_http, std

SLICE = 30.0
# The writes that carry a lock's fence within its fenced().
_FENCED = ("/v1/values/", "/v1/arrays/", "/v1/queues/", "/v1/dicts/")
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_loads_items = json.JSONDecoder(object_hook=_codec.object_hook).decode


class _Connection(http.client.HTTPConnection):
    """An HTTP connection with TCP_NODELAY: a request is one small write
    and should leave at once (Nagle would hold a second write back for the
    peer's delayed ACK)."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Store:
    """A gateway at url (http://host:port), with an optional bearer token."""
    remote = True

    def __init__(self, url, token=None):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("atrium: not an http:// URL: %r" % (url,))
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base = parts.path.rstrip("/")
        self.token = token
        # Headers of a request without a body, and with one.
        self.bare = {"Authorization": "Bearer " + token} if token else {}
        self.headers = dict(self.bare, **{"Content-Type": "application/json"})
        self.tls = threading.local()

    def _conn(self):
        tls = self.tls
        conn = getattr(tls, "conn", None)
        if conn is None or tls.pid != os.getpid():
            conn = tls.conn = _Connection(self.host, self.port, timeout=SLICE + 30)
            tls.pid = os.getpid()
            tls.used = False
        return conn

    def _drop(self):
        conn = getattr(self.tls, "conn", None)
        self.tls.conn = None
        if conn is not None and self.tls.pid == os.getpid():
            conn.close()

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes) of one request; body is bytes or None."""
        hdrs = self.headers if body is not None else self.bare
        if headers:
            hdrs = dict(hdrs, **headers)
        fence = getattr(self.tls, "fence", None)
        if fence and method != "GET" and path.startswith(_FENCED):
            # (a lock's fenced(): see _sync)
            hdrs = dict(hdrs, **{"Atrium-Fence": fence})
        for attempt in (0, 1):
            conn = self._conn()
            reused = self.tls.used
            try:
                conn.request(method, self.base + path, body, hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as e:
                # A kept-alive connection the gateway closed while idle:
                # it never read this request, so one retry on a new one.
                self._drop()
                if reused and attempt == 0:
                    continue
                raise AtriumError("ESYS", "atriumd at %s: %s" % (self.url, e))
            except BaseException:
                self._drop()
                raise
            self.tls.used = True
            if resp.will_close:
                self._drop()
            return resp.status, data

    def call(self, method, path, obj=None, headers=None, ok=(200, 201, 204)):
        """The JSON answer of a request whose status is in ok, else the
        AtriumError of the answer."""
        status, data = self.request(method, path,
                                    None if obj is None else _dumps(obj).encode(),
                                    headers)
        if status in ok:
            return json.loads(data) if data else None
        raise self.error(status, data)

    def error(self, status, data):
        """The exception of an error answer (see _errors.std)."""
        try:
            err = json.loads(data)["error"]
            code, message = err["code"], err.get("message", "")
        except (ValueError, KeyError, TypeError):
            code, message = "http_%d" % status, data[:200].decode("utf-8", "replace")
        return std(from_http(status, code, message))

    def type_class(self, type_code):
        from . import _local  # the classes are the core's; no library needed
        if type_code in "fd":
            return _local.TFLOAT
        return _local.TUINT if type_code in "BHILQc" else _local.TINT

    def delete(self, name, kind):
        self.call("DELETE", "/v1/%ss/%s" % (kind, name))

    def create(self, path, body, fallback, mode):
        """PUT path: "new" must create it (If-None-Match: *); "any" creates
        it with body, or opens what is there with fallback (body without
        initial contents: an existing object keeps its state); "open" only
        reads it. The answer's JSON and whether it was created."""
        if mode == "open":
            return self.call("GET", path), False
        status, data = self.request("PUT", path, _dumps(body).encode(),
                                    {"If-None-Match": "*"})
        if status == 201:
            return json.loads(data), True
        if mode == "any":
            if status == 200:  # (queues answer an existing one so)
                return json.loads(data), False
            if status == 412:
                return self.call("PUT", path, fallback), False
        if status == 200:
            raise AtriumError("EEXIST", "object already exists")
        raise self.error(status, data)


class _Life:
    """What an object's life hangs on (see atrium._own): held by the
    object and by every closure of it."""
    __slots__ = ("__weakref__",)


def _json_conv(type_code):
    """(to JSON, from JSON) for the numbers the client layer speaks: 'c' is
    a one-character string and '?' a bool in JSON, an int in the core."""
    if type_code == "c":
        return (lambda v: chr(v)), ord
    if type_code == "?":
        return bool, int
    return None, None


class RemoteValue:
    def __init__(self, store, name, type_code, init, mode):
        self.store, self.name = store, name
        self.path = "/v1/values/" + name
        body = {"type": type_code} if type_code else {}
        fallback = dict(body)
        to_json, _ = _json_conv(type_code)
        if init is not None:
            body["value"] = to_json(init) if to_json else init
        state, self.created = store.create(self.path, body, fallback, mode)
        self.type = state["type"]
        self.tclass = store.type_class(self.type)
        call, path, add_path = store.call, self.path, self.path + "/add"
        type_ = self.type
        to_json, from_json = _json_conv(type_)
        life = self.life = _Life()

        def get():
            value = call("GET", path)["value"]
            return from_json(value) if from_json else value

        def set_(v):
            call("PUT", path, {"type": type_, "value": to_json(v) if to_json else v})

        def add(d=1):
            life  # (held: the object lives while this closure does)
            # A bodiless add is an add of 1: one write, no JSON to make.
            return call("POST", add_path, None if d == 1 and type(d) is int
                        else {"delta": d})["value"]
        self.get, self.set, self.add = get, set_, add


class RemoteArray:
    def __init__(self, store, name, type_code, length, init, mode):
        self.store, self.name = store, name
        self.path = "/v1/arrays/" + name
        body = {"type": type_code} if type_code else {}
        fallback = dict(body)
        if length:
            fallback["length"] = length
        to_json, _ = _json_conv(type_code)
        if init is not None:
            body["values"] = [to_json(v) for v in init] if to_json else list(init)
        else:
            body["length"] = length
        state, self.created = store.create(self.path, body, fallback, mode)
        self.life = _Life()
        self.type = state["type"]
        self.tclass = store.type_class(self.type)
        self.length = state["length"]
        self.to_json, self.from_json = _json_conv(self.type)

    def get(self, lo, hi):
        values = self.store.call("GET", "%s?start=%d&stop=%d"
                                 % (self.path, lo, hi))["values"]
        return [self.from_json(v) for v in values] if self.from_json else values

    def set(self, lo, values):
        if self.to_json:
            values = [self.to_json(v) for v in values]
        self.store.call("PATCH", self.path, {"start": lo, "values": list(values)})

    def add(self, index, delta):
        state = self.store.call("POST", self.path + "/add", {"index": index, "delta": delta})
        return state["values"][index]


class RemoteQueue:
    def __init__(self, store, name, maxsize, mode, max_deliveries=0,
                 dead_letter=None):
        self.store, self.name = store, name
        self.path = "/v1/queues/" + name
        body = {"maxsize": maxsize}
        if max_deliveries:
            body["max_deliveries"] = max_deliveries
        if dead_letter:
            body["dead_letter"] = dead_letter
        state, self.created = store.create(self.path, body, {}, mode)
        self.life = _Life()
        self.maxsize = state.get("maxsize") or 0
        self.items_path = self.path + "/items"
        self.pop_path = self.path + "/pop"

    def _waiting(self, path, body, timeout, busy):
        """Long-polls path until an answer that busy(status, data) does not
        call "not yet", or the timeout (None: for ever). The status and
        data, or (None, None) at the timeout."""
        request = self.store.request
        deadline = None if timeout is None else time.monotonic() + timeout
        left = 0.0
        while True:
            url = path if left <= 0 else "%s%stimeout=%.3f" % (
                path, "&" if "?" in path else "?", left)
            status, data = request("POST", url, body)
            if not busy(status, data):
                return status, data
            if deadline is None:
                left = SLICE
            else:
                left = min(SLICE, deadline - time.monotonic())
                if left <= 0:
                    return None, None

    def put(self, data, timeout):
        status, answer = self._waiting(self.items_path, data, timeout, _full)
        if status is None:
            return False
        if status != 201:
            raise self.store.error(status, answer)
        return True

    def get(self, timeout):
        """The oldest item, decoded, or _codec.EMPTY after timeout."""
        status, answer = self._waiting(self.pop_path, None, timeout, _empty)
        if status is None:
            return _codec.EMPTY
        if status != 200:
            raise self.store.error(status, answer)
        return _loads_items(answer.decode("utf-8"))["items"][0]

    def size(self):
        return self.store.call("GET", self.path)["size"]

    # Task accounting (JoinableQueue) and leased items.

    def done(self, n=1):
        """Marks n items done; the unfinished left. ValueError past zero,
        as task_done()."""
        status, data = self.store.request("POST", self.path + "/done",
                                          _dumps({"n": n}).encode())
        if status == 409 and b'"too_many_done"' in data:
            raise ValueError("task_done() called too many times") \
                from self.store.error(status, data)
        if status != 200:
            raise self.store.error(status, data)
        return json.loads(data)["unfinished"]

    def join(self, timeout):
        """True once no item is unfinished; False at the timeout. Polls of
        at most SLICE seconds (the gateway caps each at --max-wait)."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            left = SLICE if deadline is None else \
                min(SLICE, max(deadline - time.monotonic(), 0.0))
            answer = self.store.call("POST", "%s/join?timeout=%.3f" % (self.path, left))
            if answer["unfinished"] == 0:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def get_leased(self, max_, lease, timeout):
        """Up to max_ items under a lease of `lease` seconds (the gateway's
        detached leases: only their deadline ends them): [(item, receipt,
        deliveries)], [] after timeout."""
        status, answer = self._waiting(
            "%s?lease=%g&max=%d" % (self.pop_path, lease, max_), None, timeout,
            _empty)
        if status is None:
            return []
        if status != 200:
            raise self.store.error(status, answer)
        return [(x["item"], x["receipt"], x["deliveries"])
                for x in _loads_items(answer.decode("utf-8"))["items"]]

    def settle(self, op, receipts, arg=None):
        """ack, nack (arg: the delay) or touch (arg: the new lease) of
        receipts; the set of those that were not acted on (unknown, spent
        or run out)."""
        query = {"ack": "", "nack": "?delay=%g", "touch": "?lease=%g"}[op]
        if arg is not None:
            query %= arg
        answer = self.store.call("POST", "%s/%s%s" % (self.path, op, query),
                                 {"receipts": list(receipts)})
        return set(answer["unknown"])


def _full(status, data):
    return status == 409 and b'"full"' in data


def _empty(status, data):
    return status == 204


# The kinds of object of this transport, as atrium's objects open them:
# Kind(store, name, ...) (see atrium._make).
Store.kinds = {"value": RemoteValue, "array": RemoteArray, "queue": RemoteQueue}
