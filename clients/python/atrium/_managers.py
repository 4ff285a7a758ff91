"""Manager(): multiprocessing's SyncManager with no manager process. Its
factories make atrium objects in the store (dict, Value, Array, Queue,
JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore, Event,
Condition, Barrier, Namespace); Pool is the standard library's.

The objects a manager makes without a name get a generated one and belong
to the manager, not to their Python object: they stay while anything may
still reach them (a dict held only inside another dict, as with a real
manager) and are deleted at shutdown() (or the `with` block's end), or at
the exit of the process that made them at the latest. Named ones stay,
as every named object does. start(), connect() and join() have nothing
to do.
"""
import atexit
import multiprocessing as _mp
import os
import threading

from . import (Array as _Array, Barrier as _Barrier, BoundedSemaphore as _BSem,
               Condition as _Condition, Event as _Event,
               JoinableQueue as _JQueue, Lock as _Lock, Queue as _Queue,
               RLock as _RLock, RawArray, RawValue, Semaphore as _Sem,
               SharedValue, _generated_name, _remove, default_store)
from ._dict import Dict, Namespace as _Namespace
from ._errors import missing_kind


class ValueProxy(SharedValue):
    """A manager's Value: .value, get() and set()."""

    def get(self):
        return self.value

    def set(self, value):
        self.value = value


class SyncManager:
    """As multiprocessing.managers.SyncManager (see the module's comment);
    store= the store its objects go to (default: default_store())."""

    def __init__(self, address=None, authkey=None, serializer="pickle",
                 ctx=None, *, shutdown_timeout=1.0, store=None):
        self._store = store
        self._made = []  # (store, name, kind) of the generated objects
        self._made_lock = threading.Lock()
        self._pid = os.getpid()
        self._state = "initial"
        self.address = address
        atexit.register(self._remove_made)

    # ------------------------------------------------------------ life

    def start(self, initializer=None, initargs=()):
        if self._state == "started":
            raise _mp.ProcessError("Already started server")
        self._state = "started"
        if initializer is not None:
            initializer(*initargs)

    def connect(self):
        self._state = "started"

    def get_server(self):
        raise NotImplementedError("an atrium manager has no server: the "
                                  "objects are in the store")

    def join(self, timeout=None):
        pass

    def shutdown(self):
        """Deletes the objects this manager made with generated names."""
        self._remove_made()
        self._state = "shutdown"

    def _remove_made(self):
        with self._made_lock:
            made, self._made = self._made, []
        for store, name, kind in made:
            _remove(store, name, kind, self._pid)
            if kind in ("value", "array"):
                _remove(store, name + ".lock", "lock", self._pid)

    def _number_of_objects(self):
        return len(self._made)

    def __enter__(self):
        if self._state == "initial":
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.shutdown()

    # ------------------------------------------------------- factories

    def _name(self, kind, name):
        """The name of a new object: name, or a generated one this manager
        owns."""
        if name:
            return name
        name = _generated_name()
        with self._made_lock:
            self._made.append((self._st(), name, kind))
        return name

    def _st(self):
        return self._store or default_store()

    def dict(self, *args, name=None, **kwargs):
        """A Dict; its initial contents as dict(*args, **kwargs) (name= is
        atrium's: a key "name" goes in a mapping)."""
        return Dict(*args, name=self._name("dict", name), store=self._st(), **kwargs)

    def list(self, *args, **kwargs):
        raise missing_kind("list (Manager().list())", "to come")

    def Namespace(self, *, name=None, **kwds):
        return _Namespace(name=self._name("dict", name), store=self._st(), **kwds)

    def Value(self, typecode, value, lock=True, *, name=None):
        v = RawValue(typecode, value, name=self._name("value", name), store=self._st())
        v.__class__ = ValueProxy
        return v

    def Array(self, typecode, sequence, lock=True, *, name=None):
        return RawArray(typecode, sequence, name=self._name("array", name),
                        store=self._st())

    def Queue(self, maxsize=0, *, name=None):
        return _Queue(maxsize, name=self._name("queue", name), store=self._st())

    def JoinableQueue(self, maxsize=0, *, name=None):
        return _JQueue(maxsize, name=self._name("queue", name), store=self._st())

    def Lock(self, *, name=None):
        return _Lock(name=self._name("lock", name), store=self._st())

    def RLock(self, *, name=None):
        return _RLock(name=self._name("lock", name), store=self._st())

    def Semaphore(self, value=1, *, name=None):
        return _Sem(value, name=self._name("semaphore", name), store=self._st())

    def BoundedSemaphore(self, value=1, *, name=None):
        return _BSem(value, name=self._name("semaphore", name), store=self._st())

    def Event(self, *, name=None):
        return _Event(name=self._name("flag", name), store=self._st())

    def Condition(self, lock=None, *, name=None):
        if lock is None and not name:  # (a named one's lock is "<name>.lock")
            lock = self.RLock()
        return _Condition(lock, name=self._name("condition", name), store=self._st())

    def Barrier(self, parties, action=None, timeout=None, *, name=None):
        return _Barrier(parties, action, timeout, name=self._name("barrier", name),
                        store=self._st())

    def Pool(self, *args, **kwargs):
        return _mp.Pool(*args, **kwargs)

    def __repr__(self):
        return "<atrium SyncManager %s %s>" % (self._st().url, self._state)


def Manager(*, store=None):
    """As multiprocessing.Manager(): a started SyncManager (no process)."""
    m = SyncManager(store=store)
    m.start()
    return m
