"""Dict: Manager().dict() in an atrium store, a full MutableMapping whose
keys and values every process of the store sees (C through atr_dict_*,
HTTP through /v1/dicts, the dashboard).

Keys. multiprocessing allows any hashable key; an atrium key is a string
(1-256 bytes of UTF-8, no NUL). So:
- a str key is stored as it is (what C, curl and the browser see), unless
  it is empty, longer than 256 bytes, holds a NUL, starts with "$:" or is
  "$atrium": such a str is encoded as below;
- any other hashable key is stored as "$:" followed by the JSON text the
  codec makes of it (_codec: 1 is "$:1", (1, "a") is
  '$:{"$atrium":"tuple","items":[1,"a"]}', b"x" a bytes envelope, other
  objects a pickle envelope), and comes back as the object it was;
- keys that Python calls equal are one key when they are numbers: True
  and 1.0 are stored as 1 (and read back as 1); other equal keys are one
  key only if they encode the same (a frozenset may not);
- a key whose encoding passes 256 bytes raises AtriumError EKEY.
Values are queue items: plain JSON travels as JSON, the rest in envelopes.
"""
from collections import deque
from collections.abc import Mapping, MutableMapping

from . import _Shared, _codec, _generated_name, _own, default_store
from ._errors import AtriumError

PREFIX = "$:"
KEY_MAX = 256
PAGE = 100
_NO = object()


def encode_key(key):
    """The store's key (a str) for a Python key (see the module's comment);
    TypeError if it is not hashable, AtriumError EKEY if too long."""
    t = type(key)
    if t is str:
        if key and not key.startswith(PREFIX) and key != _codec.MARK \
                and "\0" not in key and len(key) <= KEY_MAX:
            try:
                if len(key.encode("utf-8")) <= KEY_MAX:
                    return key
            except UnicodeEncodeError:
                pass
    elif t is bool:
        key = int(key)
    elif t is float and key.is_integer() and abs(key) < 2 ** 53:
        key = int(key)
    hash(key)  # TypeError: unhashable type, as a dict says
    k = PREFIX + _codec.encode(key).decode("utf-8")
    if len(k.encode("utf-8")) > KEY_MAX:
        raise AtriumError("EKEY", "dict key %.60r... takes %d bytes once encoded "
                          "(at most %d)" % (key, len(k.encode("utf-8")), KEY_MAX))
    return k


def decode_key(k):
    """The Python key of a store's key."""
    if k.startswith(PREFIX):
        return _codec.decode(k[len(PREFIX):])
    return k


def _impl(store, name, mode):
    impl = store._impl
    if "dict" not in impl.kinds:
        if impl.remote:
            from . import _remote_dict  # noqa: F401
        else:
            from . import _local_dict  # noqa: F401
    return impl.kinds["dict"](impl, name, mode)


class Dict(_Shared, MutableMapping):
    """A dict in the store (Manager().dict()'s result): every MutableMapping
    method, each one call to the store. update() (and the initial
    contents) is one commit: every other process sees all of it or none.
    keys(), values(), items() and copy() read one consistent snapshot
    (lists, as a manager's DictProxy gives); iteration reads pages of 100
    keys in key order and raises RuntimeError when it sees the dict's size
    change, as a dict's does."""
    _kind = "dict"

    def __init__(self, *args, name=None, store=None, **kwargs):
        init = dict(*args, **kwargs)
        store = store or default_store()
        self._attach(store, name or _generated_name(),
                     ("any" if name else "new", init))
        if not name:
            _own(self, store, self._name, self._kind)

    def _attach(self, store, name, create):
        mode, init = create or ("open", None)
        self._store, self._name = store, name
        self._b = _impl(store, name, mode)
        if init and self._b.created:
            self._update(init.items())

    def _update(self, pairs):
        sets = {}
        for k, v in pairs:
            sets[encode_key(k)] = _codec.encode(v)
        if sets:
            self._b.update(list(sets.items()), ())

    def __getitem__(self, key):
        v = self._b.get(encode_key(key))
        if v is _codec.MISSING:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        self._b.set(encode_key(key), _codec.encode(value))

    def __delitem__(self, key):
        if self._b.pop(encode_key(key)) is _codec.MISSING:
            raise KeyError(key)

    def __contains__(self, key):
        try:
            k = encode_key(key)
        except AtriumError:
            return False  # too long to be a key of any atrium dict
        return self._b.contains(k)

    def __len__(self):
        return self._b.len()

    def __iter__(self):
        return _Iter(self._b)

    def get(self, key, default=None):
        v = self._b.get(encode_key(key))
        return default if v is _codec.MISSING else v

    def pop(self, key, default=_NO):
        v = self._b.pop(encode_key(key))
        if v is _codec.MISSING:
            if default is _NO:
                raise KeyError(key)
            return default
        return v

    def popitem(self):
        """Removes and returns a (key, value) pair: the first key in key
        order (not the last inserted, as a dict's is: the store keeps no
        insertion order). KeyError if empty."""
        while True:
            items, _, _ = self._b.page(None, 1)
            if not items:
                raise KeyError("popitem(): dictionary is empty")
            k = items[0][0]
            v = self._b.pop(k)
            if v is not _codec.MISSING:  # (else another process took it first)
                return decode_key(k), v

    def setdefault(self, key, default=None):
        """d[key] if there, else sets it to default, atomically."""
        k = encode_key(key)
        text = _codec.encode(default)
        while True:
            if self._b.set(k, text, absent=True):
                return default
            v = self._b.get(k)
            if v is not _codec.MISSING:
                return v

    def update(self, *args, **kwargs):
        """As dict.update, in one commit (all or none)."""
        if len(args) > 1:
            raise TypeError("update expected at most 1 argument, got %d" % len(args))
        pairs = []
        if args:
            other = args[0]
            if isinstance(other, Mapping) or hasattr(other, "keys"):
                pairs.extend((k, other[k]) for k in other.keys())
            else:
                pairs.extend(other)
        pairs.extend(kwargs.items())
        self._update(pairs)

    def _snapshot(self):
        return self._b.page(None, 0)[0]

    def keys(self):
        return [decode_key(k) for k, _, _ in self._snapshot()]

    def values(self):
        return [v for _, v, _ in self._snapshot()]

    def items(self):
        return [(decode_key(k), v) for k, v, _ in self._snapshot()]

    def copy(self):
        """A plain dict of the contents (as DictProxy.copy gives)."""
        return dict(self.items())

    def clear(self):
        """Removes every key there was (one commit; keys set meanwhile by
        others may stay)."""
        keys = [k for k, _, _ in self._snapshot()]
        if keys:
            self._b.update((), keys)

    def __eq__(self, other):
        if isinstance(other, Dict) and other._store is self._store \
                and other._name == self._name:
            return True
        if isinstance(other, Mapping):
            return self.copy() == dict(other.items())
        return NotImplemented

    __hash__ = None

    def __str__(self):
        return str(self.copy())

    def __repr__(self):
        return "<atrium Dict %r>" % (self._name,)


class _Iter:
    """Keys page by page; RuntimeError once a page shows another size than
    the dict had when the iteration began."""

    def __init__(self, b):
        self._b = b
        self._len = b.len()
        self._page = deque()
        self._after = None
        self._more = True

    def __iter__(self):
        return self

    def __next__(self):
        if not self._page:
            if not self._more:
                raise StopIteration
            items, more, n = self._b.page(self._after, PAGE)
            if n != self._len:
                self._more = False
                raise RuntimeError("dictionary changed size during iteration")
            self._more = more and bool(items)
            if not items:
                raise StopIteration
            self._page.extend(k for k, _, _ in items)
            self._after = items[-1][0]
        return decode_key(self._page.popleft())


class Namespace:
    """As a manager's Namespace: attributes kept in a Dict of the store
    (names starting with "_" stay on this object, as on a NamespaceProxy)."""

    def __init__(self, *, name=None, store=None, _dict=None, **kwds):
        object.__setattr__(self, "_dict", _dict if _dict is not None
                           else Dict(kwds, name=name, store=store))

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._dict[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            self._dict[key] = value

    def __delattr__(self, key):
        if key.startswith("_"):
            object.__delattr__(self, key)
            return
        try:
            del self._dict[key]
        except KeyError:
            raise AttributeError(key) from None

    def __reduce__(self):
        return (_namespace, (self._dict,))

    def __repr__(self):
        items = sorted((k, v) for k, v in self._dict.items()
                       if isinstance(k, str) and not k.startswith("_"))
        return "Namespace(%s)" % ", ".join("%s=%r" % kv for kv in items)


def _namespace(d):
    return Namespace(_dict=d)
