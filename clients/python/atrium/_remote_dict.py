"""The remote transport's dicts: atriumd's /v1/dicts (DESIGN.md, "HTTP API
(v1): synchronisation objects, dicts, leased queue items").

Keys are the client's encoded keys (atrium._dict), %-encoded whole in the
path (the gateway decodes them from the raw request line, so any byte of
a key travels, "/" as %2F). Values go out as the JSON text the codec made
and come back parsed with its envelopes.
"""
import json
import urllib.parse

from . import _codec, _remote

_loads = _remote._loads_items


def _quote(key):
    return urllib.parse.quote(key, safe="")


def _no_key(status, data):
    return status == 404 and b'"no_such_key"' in data


class RemoteDict:
    def __init__(self, store, name, mode):
        self.store, self.name = store, name
        self.path = "/v1/dicts/" + name
        self.keys_path = self.path + "/keys/"
        state, self.created = store.create(self.path, {}, {}, mode)
        self.life = _remote._Life()

    def _key(self, method, key, body=None, headers=None):
        return self.store.request(method, self.keys_path + _quote(key), body,
                                  headers)

    def get(self, key):
        """The value of key, or _codec.MISSING."""
        status, data = self._key("GET", key)
        if status == 200:
            return _loads(data.decode("utf-8"))["value"]
        if _no_key(status, data):
            return _codec.MISSING
        raise self.store.error(status, data)

    def contains(self, key):
        return self.get(key) is not _codec.MISSING

    def set(self, key, value, absent=False):
        """Sets key to value (JSON text, bytes); with absent, only if the
        key is not there. Whether it was set."""
        status, data = self._key("PUT", key, value,
                                 {"If-None-Match": "*"} if absent else None)
        if status in (200, 201):
            return True
        if absent and status == 412:
            return False
        raise self.store.error(status, data)

    def pop(self, key):
        """Removes key: its value, or _codec.MISSING."""
        status, data = self._key("DELETE", key)
        if status == 200:
            return _loads(data.decode("utf-8"))["value"]
        if _no_key(status, data):
            return _codec.MISSING
        raise self.store.error(status, data)

    def update(self, sets, deletes):
        """One commit: sets [(key, JSON text)] and deletes [key]."""
        body = '{"set":{%s},"delete":%s}' % (
            ",".join(json.dumps(k) + ":" + v.decode("utf-8") for k, v in sets),
            json.dumps(list(deletes)))
        status, data = self.store.request("PATCH", self.path, body.encode("utf-8"))
        if status != 200:
            raise self.store.error(status, data)

    def page(self, after, limit):
        """([(key, value, None)], more, len): the first limit keys after
        `after` (None: from the first) in key order; limit 0: every key.
        (Over HTTP a page carries no versions.)"""
        query = []
        if limit:
            query.append("limit=%d" % limit)
        if after is not None:
            query.append("after=" + _quote(after))
        status, data = self.store.request(
            "GET", self.path + ("?" + "&".join(query) if query else ""))
        if status != 200:
            raise self.store.error(status, data)
        answer = _loads(data.decode("utf-8"))
        items = [(k, v, None) for k, v in answer["items"].items()]
        return items, "next" in answer, answer["len"]

    def len(self):
        return self.store.call("GET", self.path + "?limit=1")["len"]


_remote.Store.kinds["dict"] = RemoteDict
