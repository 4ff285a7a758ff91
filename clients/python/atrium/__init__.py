"""atrium - multiprocessing's shared objects for any process.

    import atrium as multiprocessing

Value, Array, RawValue, RawArray, Queue, SimpleQueue, JoinableQueue,
Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier,
Manager().dict() (Dict) and shared_memory.SharedMemory live in an atrium
store, where C programs (libatrium), HTTP clients (atriumd) and the
dashboard see them too. Everything else (Process, Pool, current_process,
get_context, ...) is the standard library's multiprocessing, unchanged.

One API, two transports, chosen by connect() or the environment:

    atrium.connect("/dev/shm/atrium")                 # local: libatrium
    atrium.connect("http://127.0.0.1:7450", token=t)  # remote: atriumd

See clients/python/README.md for the mapping and what differs.
"""
import multiprocessing as _mp
import os
import secrets
import threading
import weakref
from operator import attrgetter
from queue import Empty, Full

from . import _codec, _local, shared_memory
from ._errors import AtriumError

__all__ = ["AtriumError", "Store", "connect", "default_store", "Value",
           "Array", "RawValue", "RawArray", "Queue", "SimpleQueue",
           "JoinableQueue", "Lock", "RLock", "Semaphore", "BoundedSemaphore",
           "Event", "Condition", "Barrier", "Manager", "Dict"]

DEFAULT_STORE = "/dev/shm/atrium"

# ------------------------------------------------------------------ stores

_stores = {}
_stores_lock = threading.Lock()
_default = None


class Store:
    """A connection to one store, by either transport. Its factories are
    those of the module, making their objects in this store."""

    def __init__(self, impl):
        self._impl = impl

    url = property(lambda self: self._impl.url)
    token = property(lambda self: self._impl.token)
    remote = property(lambda self: self._impl.remote)

    def __repr__(self):
        return "<atrium.Store %s>" % self.url

    def __reduce__(self):
        return (_store_for, (self.url, self.token))

    def delete(self, name, kind):
        """Deletes the object called name of kind ("value", "array",
        "queue", "lock", "semaphore", "flag", "barrier", "condition",
        "dict"):
        AtriumError if it is not there."""
        self._impl.delete(name, kind)

    def Value(self, typecode_or_type, *args, lock=True, name=None):
        return Value(typecode_or_type, *args, lock=lock, name=name, store=self)

    def RawValue(self, typecode_or_type, *args, name=None):
        return RawValue(typecode_or_type, *args, name=name, store=self)

    def Array(self, typecode_or_type, size_or_initializer, *, lock=True, name=None):
        return Array(typecode_or_type, size_or_initializer, lock=lock, name=name,
                     store=self)

    def RawArray(self, typecode_or_type, size_or_initializer, *, name=None):
        return RawArray(typecode_or_type, size_or_initializer, name=name, store=self)

    def Queue(self, maxsize=0, *, name=None):
        return Queue(maxsize, name=name, store=self)

    def SimpleQueue(self, *, name=None):
        return SimpleQueue(name=name, store=self)

    def JoinableQueue(self, maxsize=0, *, name=None):
        return JoinableQueue(maxsize, name=name, store=self)

    def Dict(self, *args, name=None, **kwargs):
        return Dict(*args, name=name, store=self, **kwargs)

    def Manager(self):
        return Manager(store=self)

    def Lock(self, *, name=None):
        return Lock(name=name, store=self)

    def RLock(self, *, name=None):
        return RLock(name=name, store=self)

    def Semaphore(self, value=1, *, name=None):
        return Semaphore(value, name=name, store=self)

    def BoundedSemaphore(self, value=1, *, name=None):
        return BoundedSemaphore(value, name=name, store=self)

    def Event(self, *, name=None):
        return Event(name=name, store=self)

    def Condition(self, lock=None, *, name=None):
        return Condition(lock, name=name, store=self)

    def Barrier(self, parties, action=None, timeout=None, *, name=None):
        return Barrier(parties, action, timeout, name=name, store=self)


def _store_for(url, token=None):
    """The Store of url (a path or an http:// URL), one per process."""
    key = (url, token)
    store = _stores.get(key)
    if store is None:
        with _stores_lock:
            store = _stores.get(key)
            if store is None:
                if url.startswith(("http://", "https://")):
                    from . import _remote
                    impl = _remote.Store(url, token)
                else:
                    from . import _local
                    impl = _local.Store(url)
                store = _stores[key] = Store(impl)
    return store


def connect(target=None, token=None, *, lease_ttl=None):
    """Connects to a store and makes it the default of the factories:
    target is a store path (local: libatrium on the file) or an http://
    URL of atriumd (remote; token: its bearer token). Without target: the
    environment's ATRIUM_URL (with ATRIUM_TOKEN), else ATRIUM_STORE, else
    /dev/shm/atrium. Returns the Store.

    lease_ttl (remote only; else $ATRIUM_LEASE_TTL, else 30): the seconds
    of the leases by which this process holds locks over HTTP; renewed at
    a third of it while the process lives, they run out that long after
    it died."""
    global _default
    if target is None:
        target = os.environ.get("ATRIUM_URL")
        if target:
            token = token or os.environ.get("ATRIUM_TOKEN")
        else:
            target = os.environ.get("ATRIUM_STORE") or DEFAULT_STORE
    _default = _store_for(target, token)
    if lease_ttl is not None:
        if not lease_ttl > 0:
            raise ValueError("lease_ttl must be > 0")
        _default._impl.lease_ttl = float(lease_ttl)
    return _default


def default_store():
    """The store the factories use without store=: the last connect()'s,
    else the one the environment names (see connect)."""
    return _default or connect()


# ------------------------------------------------------- names and cleanup

def _generated_name():
    return "py.%d.%s" % (os.getpid(), secrets.token_hex(6))


def _remove(store, name, kind, pid):
    # Only the process that created it: a forked child holds a copy of
    # the object (and its finalizer) but does not own it.
    if os.getpid() != pid:
        return
    try:
        store.delete(name, kind)
    except Exception:  # already gone, or the gateway is: nothing to do
        pass


def _remove_with_lock(store, name, kind, pid):
    _remove(store, name, kind, pid)
    # get_lock()'s lock, named after the object, wherever it was made.
    _remove(store, name + ".lock", "lock", pid)


def _own(obj, store, name, kind):
    """obj was made with a generated name: remove it from the store when
    it is garbage, or at the exit of this process at the latest (as
    multiprocessing's resource tracker does for its own objects). Garbage
    means its transport object's `life`, which the object and every
    function bound from it (v.add) hold."""
    remove = _remove_with_lock if isinstance(obj, _Synchronized) else _remove
    weakref.finalize(obj._b.life, remove, store, name, kind, os.getpid())


# ------------------------------------------------------------------ values

_TYPECODES = set("bBhHiIlLqQfd?c")


def _typecode(typecode_or_type):
    """A type code from a type code or a ctypes simple type (c_int ...)."""
    t = getattr(typecode_or_type, "_type_", typecode_or_type)
    if not isinstance(t, str) or t not in _TYPECODES:
        raise TypeError("atrium: unsupported type %r (type codes are %s)"
                        % (typecode_or_type, "".join(sorted(_TYPECODES))))
    return t


def _to_core(typecode, v):
    """v as the int or float the core holds for typecode, or TypeError."""
    if typecode == "c":
        if isinstance(v, (bytes, bytearray)) and len(v) == 1:
            return v[0]
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise TypeError("one character bytes, bytearray or integer expected")
    if typecode == "?":
        return 1 if v else 0
    if typecode in "fd":
        if isinstance(v, (int, float)):
            return float(v)
        raise TypeError("must be real number, not %s" % type(v).__name__)
    if isinstance(v, int):
        return int(v)
    raise TypeError("int expected instead of %s" % type(v).__name__)


def _from_core(typecode):
    """The function from the core's int or float to what multiprocessing
    gives for typecode (None: the number as it is)."""
    if typecode == "c":
        return lambda v: bytes((v,))
    if typecode == "?":
        return bool
    return None


def _init_args(typecode, args):
    if len(args) > 1:
        raise TypeError("Value takes at most one initial value")
    return _to_core(typecode, args[0]) if args else None


class _Shared:
    """What every object has: its name, store and kind, and pickling as a
    reference (so it passes to Process under fork, spawn and forkserver)."""
    _kind = None

    @property
    def name(self):
        return self._name

    @property
    def store(self):
        return self._store

    def __reduce__(self):
        return (_rebuild, (type(self), self._store.url, self._store.token,
                           self._name, self._ref_args()))

    def _ref_args(self):
        return ()


def _rebuild(cls, url, token, name, args):
    obj = cls.__new__(cls)
    obj._attach(_store_for(url, token), name, None, *args)
    return obj


def _make(cls, store, name, init, *args):
    """A new object of cls: with a generated name (removed when done with)
    or the given one (opened if it exists, else created)."""
    store = store or default_store()
    obj = cls.__new__(cls)
    mode = "any" if name else "new"
    obj._attach(store, name or _generated_name(), (mode, init), *args)
    if not name:
        _own(obj, store, obj._name, obj._kind)
    return obj


class _ValueFace:
    """A value as multiprocessing users see it (bool for '?', bytes for
    'c'), over a transport's get and set of the core's numbers: the face
    of the values whose transport has none of its own (the extension's
    Value is the local one's)."""
    __slots__ = ("_get", "_set", "_type")

    def __init__(self, b):
        conv = _from_core(b.type)
        self._get = b.get if conv is None else (lambda: conv(b.get()))
        self._set, self._type = b.set, b.type

    @property
    def value(self):
        return self._get()

    @value.setter
    def value(self, v):
        self._set(_to_core(self._type, v))


def _set_value(self, v):
    self._v.value = v


# .value of the value classes: through the instance's face (`_v`), with
# the extension in C (one attribute look-up, no Python frame: v.value += 1
# under a lock is that and the lock's two C calls), else in Python.
_EXT = _local.ext()
_VALUE = (_EXT.ValueAttr("_v") if _EXT is not None else
          property(attrgetter("_v.value"), _set_value))


class SharedValue(_Shared):
    """A value in the store: RawValue's result (Value's without a lock).
    .value reads and writes it; add(delta) adds atomically in the store and
    returns the new value."""
    _kind = "value"

    def _attach(self, store, name, create, typecode):
        mode, init = create or ("open", None)
        self._store, self._name = store, name
        b = store._impl.kinds["value"](store._impl, name, typecode, init, mode)
        self._b = b
        self._type = b.type
        face = getattr(b, "face", None)
        self._v = face if face is not None else _ValueFace(b)
        # The hot path, bound straight to the transport's closure (which
        # raises the standard exceptions itself).
        self.add = b.add

    def _ref_args(self):
        return (self._type,)

    @property
    def _type_(self):
        return self._type

    value = _VALUE

    def add(self, delta=1):
        """Adds delta in one atomic step in the store; the new value.
        OverflowError (nothing changed) if the result leaves the type.
        (Each object binds this straight to its transport.)"""
        return self._b.add(delta)

    def __repr__(self):
        return "<atrium %s %r %s=%r>" % (type(self).__name__, self._name,
                                        self._type, self.value)


class _Synchronized:
    """get_lock(), get_obj() and the lock's methods, as multiprocessing's
    Synchronized wrappers have. lock=True or None (the default): an RLock
    in the store named after the object ("<name>.lock"), opened or made at
    the first get_lock(), the same for every process that opens the
    object, removed with the object when its name was generated; lock= an
    object with acquire() is used as it is."""

    def _set_lock(self, lock):
        if lock is None or lock is True:
            self._lock = None
        elif hasattr(lock, "acquire"):
            self._lock = lock
        else:
            raise AttributeError("%r has no method 'acquire'" % (lock,))

    def _ref_args(self):
        return super()._ref_args() + (self._lock,)

    def get_lock(self):
        lock = self._lock
        if lock is None:
            lock = self._lock = RLock(name=self._name + ".lock", store=self._store)
        return lock

    def get_obj(self):
        raw = self._raw_class.__new__(self._raw_class)
        raw.__dict__.update(self.__dict__)
        raw._owner = self  # keeps the owner (and its name) alive
        return raw

    def acquire(self, *args, **kw):
        return self.get_lock().acquire(*args, **kw)

    def release(self):
        return self.get_lock().release()

    def __enter__(self):
        return self.get_lock().__enter__()

    def __exit__(self, *args):
        return self.get_lock().__exit__(*args)


class SynchronizedValue(_Synchronized, SharedValue):
    """Value's result: a SharedValue with get_lock() and get_obj()."""
    _raw_class = SharedValue

    def _attach(self, store, name, create, typecode, lock=True):
        self._set_lock(lock)
        SharedValue._attach(self, store, name, create, typecode)


def RawValue(typecode_or_type, *args, name=None, store=None):
    """A value of a type code (or ctypes type) with no lock, as
    multiprocessing.RawValue; name= opens or creates it by that name."""
    t = _typecode(typecode_or_type)
    return _make(SharedValue, store, name, _init_args(t, args), t)


def Value(typecode_or_type, *args, lock=True, name=None, store=None):
    """As multiprocessing.Value: lock=False gives a SharedValue; otherwise
    a SynchronizedValue with get_lock() and get_obj() (lock= a lock object
    is used as it is)."""
    t = _typecode(typecode_or_type)
    if lock is False:
        return RawValue(t, *args, name=name, store=store)
    if not (lock is None or lock is True or hasattr(lock, "acquire")):
        raise AttributeError("%r has no method 'acquire'" % (lock,))
    return _make(SynchronizedValue, store, name, _init_args(t, args), t, lock)


# ------------------------------------------------------------------ arrays

class SharedArray(_Shared):
    """An array in the store: RawArray's result. Indexing and slices (a
    slice reads one consistent snapshot and writes all or nothing), len,
    iteration, and add(index, delta) atomically in the store."""
    _kind = "array"

    def _attach(self, store, name, create, typecode, length=0):
        mode, init = create or ("open", None)
        self._store, self._name = store, name
        b = store._impl.kinds["array"](store._impl, name, typecode, length, init, mode)
        self._b = b
        self._type = b.type
        self._len = b.length
        self._conv = _from_core(b.type)

    def _ref_args(self):
        return (self._type,)

    def __len__(self):
        return self._len

    def _index(self, i):
        if not isinstance(i, int):
            i = i.__index__()
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError("invalid index")
        return i

    def _out(self, values):
        if self._type == "c":
            return bytes(values)
        return [self._conv(v) for v in values] if self._conv else list(values)

    def __getitem__(self, i):
        if isinstance(i, slice):
            lo, hi, step = i.indices(self._len)
            if step == 1:
                return self._out(self._b.get(lo, max(lo, hi)))
            whole = self._b.get(0, self._len)
            return self._out(whole[i])
        i = self._index(i)
        v = self._b.get(i, i + 1)[0]
        return self._conv(v) if self._conv else v

    def __setitem__(self, i, value):
        if not isinstance(i, slice):
            self._b.set(self._index(i), [_to_core(self._type, value)])
            return
        lo, hi, step = i.indices(self._len)
        values = [_to_core(self._type, self._item(v)) for v in value]
        if step == 1:
            if len(values) != max(hi - lo, 0):
                raise ValueError("Can only assign sequence of same size")
            if values:
                self._b.set(lo, values)
            return
        # An extended slice: element by element (each one atomic).
        idx = range(lo, hi, step)
        if len(values) != len(idx):
            raise ValueError("Can only assign sequence of same size")
        for k, v in zip(idx, values):
            self._b.set(k, [v])

    def _item(self, v):
        # Slicing a bytes object gives ints: a 'c' array takes them.
        return bytes((v,)) if self._type == "c" and isinstance(v, int) else v

    def __iter__(self):
        return iter(self[:])

    def add(self, index, delta=1):
        """Adds delta to element index atomically in the store; the new
        element. OverflowError (nothing changed) out of the type's range."""
        return self._b.add(self._index(index), delta)

    @property
    def value(self):
        """'c' arrays: the bytes up to the first NUL, as ctypes gives."""
        if self._type != "c":
            raise AttributeError("value")
        return self[:].split(b"\0", 1)[0]

    @property
    def raw(self):
        if self._type != "c":
            raise AttributeError("raw")
        return self[:]

    def __repr__(self):
        return "<atrium %s %r %s[%d]>" % (type(self).__name__, self._name,
                                         self._type, self._len)


class SynchronizedArray(_Synchronized, SharedArray):
    """Array's result: a SharedArray with get_lock() and get_obj()."""
    _raw_class = SharedArray

    def _attach(self, store, name, create, typecode, length=0, lock=True):
        self._set_lock(lock)
        SharedArray._attach(self, store, name, create, typecode, length)

    def _ref_args(self):
        return (self._type, 0, self._lock)


def _array_init(t, size_or_initializer):
    if isinstance(size_or_initializer, int):
        if size_or_initializer < 0:
            raise ValueError("array size must be non-negative")
        return size_or_initializer, None
    values = list(size_or_initializer)
    if t == "c" and isinstance(size_or_initializer, (bytes, bytearray)):
        return len(values), values
    return len(values), [_to_core(t, v) for v in values]


def RawArray(typecode_or_type, size_or_initializer, *, name=None, store=None):
    """As multiprocessing.RawArray; name= opens or creates it by that name
    (an existing array keeps its contents; its length must match, or be
    given as 0)."""
    t = _typecode(typecode_or_type)
    length, init = _array_init(t, size_or_initializer)
    return _make(SharedArray, store, name, init, t, length)


def Array(typecode_or_type, size_or_initializer, *, lock=True, name=None,
          store=None):
    """As multiprocessing.Array (see Value for lock=)."""
    t = _typecode(typecode_or_type)
    if lock is False:
        return RawArray(t, size_or_initializer, name=name, store=store)
    if not (lock is None or lock is True or hasattr(lock, "acquire")):
        raise AttributeError("%r has no method 'acquire'" % (lock,))
    length, init = _array_init(t, size_or_initializer)
    return _make(SynchronizedArray, store, name, init, t, length, lock)


# ------------------------------------------------------------------ queues

class Queue(_Shared):
    """As multiprocessing.Queue, in the store: put/get with block and
    timeout (queue.Full, queue.Empty), put_nowait, get_nowait, qsize,
    empty, full. An item is in the store when put returns (there is no
    feeder thread): close() only forbids this process further use, and
    join_thread() and cancel_join_thread() have nothing to wait for.
    Plus leased gets (get_leased, see atrium._leased) and, for a new
    queue, max_deliveries= and dead_letter= (the name of the queue that
    gets an item handed out that often)."""
    _kind = "queue"

    def __init__(self, maxsize=0, *, name=None, store=None, max_deliveries=0,
                 dead_letter=None):
        store = store or default_store()
        self._attach(store, name or _generated_name(),
                     ("any" if name else "new", None), maxsize, max_deliveries,
                     dead_letter)
        if not name:
            _own(self, store, self._name, self._kind)

    def _attach(self, store, name, create, maxsize=0, max_deliveries=0,
                dead_letter=None):
        mode = create[0] if create else "open"
        self._store, self._name = store, name
        self._b = store._impl.kinds["queue"](store._impl, name, max(maxsize, 0), mode,
                                             max_deliveries, dead_letter)
        self._maxsize = self._b.maxsize
        self._closed = False
        self._bput, self._bget = self._b.put, self._b.get

    def _check_closed(self):
        if self._closed:
            raise ValueError("Queue %r is closed" % self._name)

    def put(self, obj, block=True, timeout=None):
        if self._closed:
            self._check_closed()
        if not self._bput(_codec.encode(obj), timeout if block else 0):
            raise Full

    def get(self, block=True, timeout=None):
        if self._closed:
            self._check_closed()
        item = self._bget(timeout if block else 0)
        if item is _codec.EMPTY:
            raise Empty
        return item

    def get_leased(self, block=True, timeout=None, *, lease=None, renew=True):
        """An atrium extension: the oldest item under a lease, as a Leased
        (.item, .deliveries, .ack(), .nack(delay), .touch(lease); `with`
        acks, or nacks on an exception): hidden from other consumers until
        settled, given back if this process dies (at once locally, `lease`
        seconds later remotely; renew=False: `lease` seconds after it was
        taken, whatever happens). lease: seconds (default: connect()'s
        lease_ttl, $ATRIUM_LEASE_TTL, 30). queue.Empty as get()."""
        from ._leased import get_leased
        return get_leased(self, 1, block, timeout, lease, renew)[0]

    def get_leased_many(self, max, block=True, timeout=None, *, lease=None,
                        renew=True):
        """As get_leased, up to max items at once (a list, at least one)."""
        from ._leased import get_leased
        return get_leased(self, max, block, timeout, lease, renew)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def get_nowait(self):
        return self.get(False)

    def qsize(self):
        return self._b.size()

    def empty(self):
        return self.qsize() == 0

    def full(self):
        return self._maxsize > 0 and self.qsize() >= self._maxsize

    def close(self):
        self._closed = True

    def join_thread(self):
        # multiprocessing waits here for its feeder thread to flush; items
        # are already in the store, so there is nothing to wait for.
        assert self._closed, "Queue {0!r} not closed".format(self)

    def cancel_join_thread(self):
        pass

    def __repr__(self):
        return "<atrium Queue %r maxsize=%d>" % (self._name, self._maxsize)


class SimpleQueue(Queue):
    """As multiprocessing.SimpleQueue: put, get (waits for ever), empty,
    close."""

    def __init__(self, *, name=None, store=None):
        super().__init__(0, name=name, store=store)

    def put(self, obj):
        Queue.put(self, obj)

    def get(self):
        return Queue.get(self)


class JoinableQueue(Queue):
    """As multiprocessing.JoinableQueue: a Queue whose task_done() and
    join() are the store's task accounting (every process of the store
    counts: an item put is unfinished until someone calls task_done() for
    it, or acks it when it was taken with get_leased)."""

    def task_done(self):
        """ValueError if called more often than items were put."""
        self._b.done(1)

    def join(self, timeout=None):
        """Waits until every item put is done. An atrium extension:
        timeout= (seconds); True once done, False at the timeout."""
        return self._b.join(timeout)

# --------------------------------------------- synchronisation objects

from ._sync import (Barrier, BoundedSemaphore, Condition, Event,  # noqa: E402
                    Lock, RLock, Semaphore)
from ._errors import AbandonedWarning  # noqa: E402
from ._dict import Dict  # noqa: E402
from ._managers import Manager  # noqa: E402

# ------------------------------------- the rest: the standard library's own

for _name in _mp.__all__:
    if _name not in globals():
        globals()[_name] = getattr(_mp, _name)
        __all__.append(_name)


def __getattr__(name):
    # multiprocessing.connection, .queues, .managers ... as they are.
    return getattr(_mp, name)
