"""multiprocessing's synchronisation objects in an atrium store: Lock,
RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier, with
multiprocessing's signatures, results and exceptions, plus name= and
store= (shared by name with C programs and HTTP clients).

The objects here are thin: each binds the calls of its transport's object
(_local_sync or _remote_sync), which implement the waiting, the signals
and the exceptions.
"""
import threading
import time
from operator import attrgetter

# (Imported at the end of the package's __init__, whose names these are.)
from . import _Shared, _generated_name, _own, default_store


def _impl(store, kind, name, *args):
    """The transport's object of kind (importing the transport's
    synchronisation module once)."""
    impl = store._impl
    if kind not in impl.kinds:
        if impl.remote:
            from . import _remote_sync  # noqa: F401
        else:
            from . import _local_sync  # noqa: F401
    return impl.kinds[kind](impl, name, *args)


class _SyncShared(_Shared):
    def _init(self, store, name, *args):
        """A new object: by name (opened, or created) or with a generated
        name (removed when done with)."""
        store = store or default_store()
        self._attach(store, name or _generated_name(),
                     ("any" if name else "new", None), *args)
        if not name:
            _own(self, store, self._name, self._kind)


class Lock(_SyncShared):
    """As multiprocessing.Lock: held by the thread that acquired it (its
    release from another thread raises ValueError); a holder that dies
    gives it back, and the next acquire sets `abandoned` (see README)."""
    _kind = "lock"
    _reentrant = False

    def __init__(self, *, name=None, store=None, ttl=None, ctx=None):
        # ttl: over HTTP, the seconds of this object's leases (default:
        # the store's lease_ttl, see connect()); locally nothing.
        self._init(store, name, ttl)

    def _attach(self, store, name, create, ttl=None):
        mode = create[0] if create else "open"
        self._store, self._name = store, name
        self._ttl = ttl
        b = self._b = _impl(store, "lock", name, self._reentrant, mode, ttl)
        if b.reentrant != self._reentrant:
            raise TypeError("atrium: %r is %s reentrant lock; open it with %s"
                            % (name, "a" if b.reentrant else "not a",
                               "RLock" if b.reentrant else "Lock"))
        # The hot paths, bound straight to the transport's.
        self.acquire, self.release = b.acquire, b.release

    def acquire(self, block=True, timeout=None):
        """True once taken; False if block is false or the timeout ran out
        first. (Each object binds this straight to its transport.)"""
        return self._b.acquire(block, timeout)

    def release(self):
        return self._b.release()

    # `with lock:` calls the transport's closures themselves (a property
    # whose getter is C code gives them to the with statement): no Python
    # frame of ours in between, a fifth of the time of `with` here. The
    # release closures take and ignore __exit__'s three arguments.
    __enter__ = property(attrgetter("acquire"))
    __exit__ = property(attrgetter("release"))

    @property
    def abandoned(self):
        """True if the latest acquisition took the lock from a holder that
        died holding it."""
        return self._b.abandoned

    @property
    def fence(self):
        """The fence of the calling thread's acquisition: it only grows for
        the name, so a write checked against it cannot come from a holder
        that lost the lock since (see fenced())."""
        return self._b.fence()

    def fenced(self):
        """A context in which this thread's writes to the store over HTTP
        carry Atrium-Fence: <lock>=<fence>, so that the gateway applies
        them only while this hold is still the lock's (412 stale_fence
        otherwise). Locally a process hold cannot be lost to anyone but
        an operator's break, and the context only checks it on entry."""
        return _Fenced(self)

    def _ref_args(self):
        return (self._ttl,)

    def __repr__(self):
        return "<atrium %s %r>" % (type(self).__name__, self._name)


class RLock(Lock):
    """As multiprocessing.RLock: re-entered by its holding thread; its
    release by any other thread raises AssertionError."""
    _reentrant = True


class _Fenced:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        lock = self.lock
        fence = lock.fence
        impl = lock._store._impl
        if fence is None:
            raise AssertionError("fenced() needs the lock held by this thread")
        if impl.remote:
            self.old = getattr(impl.tls, "fence", None)
            impl.tls.fence = "%s=%d" % (lock.name, fence)
        else:
            self.old = None
            lock._b.check_fence(fence)
        return fence

    def __exit__(self, *args):
        impl = self.lock._store._impl
        if impl.remote:
            impl.tls.fence = self.old


class Semaphore(_SyncShared):
    """As multiprocessing.Semaphore (get_value() included): permits that
    anyone may give back."""
    _kind = "semaphore"
    _bounded = False

    def __init__(self, value=1, *, name=None, store=None, ctx=None):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._init(store, name, value, value if self._bounded else 0)

    def _attach(self, store, name, create, value=0, bound=0):
        mode = create[0] if create else "open"
        self._store, self._name = store, name
        b = self._b = _impl(store, "semaphore", name, value, bound, mode)
        self.acquire, self.release = b.acquire, b.release

    def acquire(self, block=True, timeout=None):
        return self._b.acquire(block, timeout)

    def release(self, n=1):
        return self._b.release(n)

    def get_value(self):
        return self._b.value()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *args):
        self.release()

    def __repr__(self):
        return "<atrium %s %r value=%s>" % (type(self).__name__, self._name,
                                           self.get_value())


class BoundedSemaphore(Semaphore):
    """As multiprocessing.BoundedSemaphore: a release past the initial
    value raises ValueError and gives nothing back."""
    _bounded = True


class Event(_SyncShared):
    """As multiprocessing.Event (a "flag" in the store)."""
    _kind = "flag"

    def __init__(self, *, name=None, store=None, ctx=None):
        self._init(store, name)

    def _attach(self, store, name, create):
        mode = create[0] if create else "open"
        self._store, self._name = store, name
        self._b = _impl(store, "flag", name, False, mode)

    def is_set(self):
        return self._b.is_set()

    def set(self):
        self._b.set()

    def clear(self):
        self._b.clear()

    def wait(self, timeout=None):
        return self._b.wait(timeout)

    def __repr__(self):
        return "<Event at %#x %r %s>" % (id(self), self._name,
                                        "set" if self.is_set() else "unset")


class Condition(_SyncShared):
    """As multiprocessing.Condition: bound to an atrium Lock or RLock of
    the same store (by default a new RLock)."""
    _kind = "condition"

    def __init__(self, lock=None, *, name=None, store=None, ctx=None):
        store = store or (lock._store if isinstance(lock, Lock) else None) \
            or default_store()
        if lock is None:
            # A named condition's own lock is named after it, so that every
            # process opening the condition finds the same one.
            lock = RLock(name=name + ".lock" if name else None, store=store)
        elif not isinstance(lock, Lock) or lock._store is not store:
            raise TypeError("atrium: a Condition's lock must be an atrium "
                            "Lock or RLock of its store, not %r" % (lock,))
        self._init(store, name, lock)

    def _attach(self, store, name, create, lock):
        mode = create[0] if create else "open"
        self._store, self._name = store, name
        self._lock = lock
        self._b = _impl(store, "condition", name, lock._b, mode)
        if self._b.lock_name != lock.name:
            raise TypeError("atrium: condition %r is bound to lock %r, not %r"
                            % (name, self._b.lock_name, lock.name))
        self.acquire, self.release = lock.acquire, lock.release

    def _ref_args(self):
        return (self._lock,)

    def acquire(self, block=True, timeout=None):
        return self._lock.acquire(block, timeout)

    def release(self):
        return self._lock.release()

    __enter__ = property(attrgetter("acquire"))  # (see Lock)
    __exit__ = property(attrgetter("release"))

    def wait(self, timeout=None):
        return self._b.wait(timeout)

    def wait_for(self, predicate, timeout=None):
        result = predicate()
        if result:
            return result
        endtime = None if timeout is None else time.monotonic() + timeout
        waittime = timeout
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n=1):
        self._b.notify(n)

    def notify_all(self):
        self._b.notify(1 << 64)

    # multiprocessing's counters, which check_invariant() of CPython's
    # tests reads: atrium's condition keeps its waiters in the store, not
    # in three semaphores, so they are not implemented.
    _sleeping_count = _woken_count = _wait_semaphore = property(
        lambda self: _NotImplementedCounter())

    def __repr__(self):
        return "<atrium Condition %r lock=%r>" % (self._name, self._lock.name)


class _NotImplementedCounter:
    def get_value(self):
        raise NotImplementedError


class Barrier(_SyncShared):
    """As multiprocessing.Barrier (threading.BrokenBarrierError, abort,
    reset, parties, n_waiting, broken). With an action, each wait is two
    rounds in the store: the last to come runs the action between them,
    so no one leaves before it ran (every party's Barrier of one name must
    then have an action)."""
    _kind = "barrier"

    def __init__(self, parties, action=None, timeout=None, *, name=None,
                 store=None, ctx=None):
        if parties < 1:
            raise ValueError("parties must be >= 1")
        self._init(store, name, parties, action, timeout)

    def _attach(self, store, name, create, parties, action=None, timeout=None):
        mode = create[0] if create else "open"
        self._store, self._name = store, name
        self._b = _impl(store, "barrier", name, parties, mode)
        self._action, self._timeout = action, timeout

    def _ref_args(self):
        return (self._b.parties, self._action, self._timeout)

    def wait(self, timeout=None):
        if timeout is None:
            timeout = self._timeout
        index = self._b.wait(timeout)
        if self._action is None:
            return index
        if index == self.parties - 1:
            try:
                self._action()
            except BaseException:
                self._b.abort()
                raise
        self._b.wait(timeout)
        return index

    def abort(self):
        self._b.abort()

    def reset(self):
        self._b.reset()

    @property
    def parties(self):
        return self._b.parties

    @property
    def n_waiting(self):
        return self._b.n_waiting()

    @property
    def broken(self):
        return self._b.broken()

    def __repr__(self):
        return "<atrium Barrier %r parties=%d>" % (self._name, self.parties)


__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event",
           "Condition", "Barrier"]
