"""The local transport's dicts (libatrium's atr_dict_*, include/atrium.h
"dicts") and an array's data in place (atr_array_data, for SharedMemory).

Keys are the client's encoded keys (atrium._dict) as UTF-8; values are the
JSON text the codec made, decoded on the way out, as queue items are.
"""
import ctypes
import threading
from ctypes import byref, c_int, c_size_t, c_uint64, c_void_p, string_at

from . import _codec, _local
from ._local import DictItems, DictOp, error, need

_tls = threading.local()


def _buf(size):
    """This thread's value buffer, at least size bytes."""
    cur = getattr(_tls, "buf", None)
    if cur is None or len(cur) < size:
        cur = _tls.buf = ctypes.create_string_buffer(max(size, 65536))
    return cur


def _read(items):
    """[(key, value, version)] of an atr_dict_items, then frees it."""
    try:
        base = items.data
        out = []
        for k in range(items.count):
            x = items.item[k]
            out.append((string_at(base + x.key_off, x.key_len).decode("utf-8", "replace"),
                        _codec.decode(string_at(base + x.value_off, x.value_len)),
                        x.version))
        return out
    finally:
        _local.lib().atr_dict_items_free(byref(items))


class LocalDict(_local._Object):
    def __init__(self, store, name, mode):
        super().__init__(store, name, None)
        rc = need(store, "atr_dict_open", "dict objects")(
            store.ptr, name.encode(), _local._FLAGS[mode], self.href)
        if rc < 0:
            raise error(rc)
        self.created = rc == 1
        L, codes = store.lib, store.codes
        self._get, self._set, self._pop = L.atr_dict_get, L.atr_dict_set, L.atr_dict_pop
        self.ENOKEY, self.ETOOBIG, self.EEXIST = (codes[k] for k in
                                                  ("ENOKEY", "ETOOBIG", "EEXIST"))

    def get(self, key):
        """The value of key, or _codec.MISSING."""
        k = key.encode("utf-8")
        n = c_size_t()
        while True:
            buf = _buf(0)
            rc = self._get(self.href, k, len(k), buf, len(buf), byref(n), None)
            if rc == self.ETOOBIG:
                _buf(n.value)
                continue
            if rc == self.ENOKEY:
                return _codec.MISSING
            if rc < 0:
                raise error(rc)
            return _codec.decode(string_at(buf, n.value))

    def contains(self, key):
        k = key.encode("utf-8")
        rc = self._get(self.href, k, len(k), None, 0, None, None)
        if rc == 0 or rc == self.ETOOBIG:
            return True
        if rc == self.ENOKEY:
            return False
        raise error(rc)

    def set(self, key, value, absent=False):
        """Sets key to value (JSON text, bytes); with absent, only if the
        key is not there. Whether it was set."""
        k = key.encode("utf-8")
        rc = self._set(self.href, k, len(k), value, len(value),
                       _ABSENT if absent else 0, None)
        if rc == self.EEXIST and absent:
            return False
        if rc < 0:
            raise error(rc)
        return True

    def pop(self, key):
        """Removes key: its value, or _codec.MISSING."""
        k = key.encode("utf-8")
        old = DictItems()
        rc = self._pop(self.href, k, len(k), 0, byref(old))
        if rc == self.ENOKEY:
            return _codec.MISSING
        if rc < 0:
            raise error(rc)
        return _read(old)[0][1]

    def update(self, sets, deletes):
        """One commit: sets [(key, JSON text)] and deletes [key]."""
        n = len(sets) + len(deletes)
        if n == 0:
            return
        ops = (DictOp * n)()
        keep = []  # the bytes the ops point into, alive until the call returns
        for i, (key, value) in enumerate(sets):
            k = key.encode("utf-8")
            keep.append(k)
            ops[i].key, ops[i].key_len = k, len(k)
            ops[i].value, ops[i].value_len = value, len(value)
            keep.append(value)
        for i, key in enumerate(deletes, len(sets)):
            k = key.encode("utf-8")
            keep.append(k)
            ops[i].key, ops[i].key_len, ops[i].del_ = k, len(k), 1
        rc = self.store.lib.atr_dict_update(self.href, ops, n, None)
        if rc < 0:
            raise error(rc)

    def page(self, after, limit):
        """([(key, value, version)], more, len): the first limit keys after
        `after` (None: from the first) in key order; limit 0: every key."""
        items = DictItems()
        more = c_int()
        a = None if after is None else after.encode("utf-8")
        rc = self.store.lib.atr_dict_page(self.href, a, 0 if a is None else len(a),
                                          limit, byref(items), byref(more), None)
        if rc < 0:
            self.store.lib.atr_dict_items_free(byref(items))
            raise error(rc)
        return _read(items), bool(more.value), self.len()

    def len(self):
        n = c_uint64()
        rc = self.store.lib.atr_dict_len(self.href, byref(n), None)
        if rc < 0:
            raise error(rc)
        return n.value


_ABSENT = (1 << 64) - 1  # ATR_DICT_ABSENT


def array_data(store, name, type_code, length, mode):
    """An array's elements in place: (the LocalArray, whose handle keeps it
    open, a ctypes c_ubyte array over its bytes in this process's mapping).
    See atr_array_data for what writing through it means."""
    arr = _local.LocalArray(store, name, type_code, length, None, mode)
    ptr, n = c_void_p(), c_size_t()
    rc = need(store, "atr_array_data", "data pointers")(arr.href, byref(ptr),
                                                         byref(n))
    if rc < 0:
        raise error(rc)
    return arr, (ctypes.c_ubyte * n.value).from_address(ptr.value)


_local.Store.kinds["dict"] = LocalDict
__all__ = ["LocalDict", "array_data"]
