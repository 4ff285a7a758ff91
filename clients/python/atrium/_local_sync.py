"""The local transport's synchronisation objects: locks, semaphores, flags
(Event), barriers and conditions of libatrium (include/atrium.h,
"synchronisation objects"), through ctypes.

A hold is the calling thread's, in the core: a lock taken by one thread is
released by that thread, and one whose thread dies (the process killed) is
given back by the kernel at once; the next acquire says ATR_ABANDONED.

Waits: the core sleeps on a futex and returns ATR_EINTR when a signal
arrived, so that Python runs its handler (PyErr_CheckSignals): a handler
that raises (Ctrl-C: KeyboardInterrupt) ends the wait, any other lets it
go on with what is left of the timeout. A signal that arrives just before
the futex sleep starts is not seen by it, so lock, semaphore and flag waits
(which may be resumed without changing their meaning) sleep in slices of
SLICE seconds at most; barrier and condition waits cannot be cut so (a
barrier's timeout breaks it, and a condition wait ends in its lock) and
rely on ATR_EINTR alone.

With the extension (atrium._fast, see _local's header) a lock's and a
semaphore's acquire and release are C methods of its objects, with the
same codes, exceptions, waits and signal handling as below. Without it,
the uncontended lock path is one PyDLL call (keeping the GIL, no argtypes
to convert: see _local's header), the first try of every acquire too;
only a wait goes through the declared CDLL function, which releases the
GIL.
"""
import ctypes
import threading
import time
from operator import index
from ctypes import byref, c_double, c_int, c_uint64

from . import _local
from ._errors import AtriumError, abandoned_warning, not_held, over_released

SLICE = 1.0
UINT64_MAX = (1 << 64) - 1
ABANDONED = 2
_NOWAIT = c_double(0.0)

# PyErr_CheckSignals through the C API: runs the pending Python signal
# handlers now; one that raises makes the call raise (ctypes.pythonapi
# keeps the GIL and checks for an exception after each call).
_check_signals = ctypes.pythonapi.PyErr_CheckSignals
_check_signals.restype = c_int
_check_signals.argtypes = []


def _need(store, fn, kind):
    """The declared function fn of libatrium, or ENOKIND when this
    library has no such kind of object."""
    f = getattr(store.lib, fn, None)
    if f is None or f.argtypes is None:
        raise AtriumError("ENOKIND", "this libatrium (%s) has no %s objects: "
                          "an older build?" % (store.lib._name, kind))
    return f


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + max(timeout, 0.0)


def _left(deadline, cap):
    """Seconds to wait next: at most cap (None: no cap, -1 for ever when
    there is no deadline); <= 0 once the deadline passed."""
    if deadline is None:
        return -1.0 if cap is None else cap
    left = deadline - time.monotonic()
    return left if cap is None else min(left, cap)


def wait_call(call, timeout, codes, sliced):
    """Runs call(t) (a core call taking a timeout) until it returns
    something other than ETIMEDOUT (before the deadline) or EINTR, in
    slices of SLICE seconds if sliced. On EINTR, Python's signal handlers
    run (KeyboardInterrupt propagates). timeout: None for ever, else
    seconds. Returns the last code (ETIMEDOUT at the deadline)."""
    EINTR, ETIMEDOUT = codes["EINTR"], codes["ETIMEDOUT"]
    deadline = _deadline(timeout)
    while True:
        t = _left(deadline, SLICE if sliced else None)
        if deadline is not None and t <= 0:
            return ETIMEDOUT
        rc = call(t)
        if rc == EINTR:
            _check_signals()
            continue
        if rc == ETIMEDOUT and (deadline is None or sliced):
            continue
        return rc


class _SyncObject(_local._Object):
    def __init__(self, store, name):
        super().__init__(store, name, None)
        self.codes = store.codes

    def _opened(self, rc):
        if rc < 0:
            raise _local.error(rc)
        self.created = rc == 1


class LocalLock(_SyncObject):
    """A lock (reentrant or not) held by threads of this process. acquire
    and release are closures with multiprocessing's signatures."""

    def __init__(self, store, name, reentrant, mode, ttl=None):
        super().__init__(store, name)
        lopen = _need(store, "atr_lock_open", "lock")
        self._opened(lopen(store.ptr, name.encode(), _local._FLAGS[mode],
                           1 if reentrant else 0, self.href))
        self.reentrant = bool(self.info().reentrant)
        href = self.href
        grant = self.grant = _local.Grant()
        ENOTHELD = self.codes["ENOTHELD"]
        reentrant_ = self.reentrant
        if store.ext is not None:
            # acquire, release, `with` and `abandoned` in C.
            def fail(rc):
                err = _local.error(rc)
                return not_held(reentrant_, err) if rc == ENOTHELD else err
            self.c = store.ext.Lock(ctypes.addressof(self.handle),
                                    ctypes.addressof(grant), (self.handle, grant),
                                    name, fail)
            self.acquire, self.release = self.c.acquire, self.c.release
            return
        self.c = None
        self._abandoned = False
        gref = byref(grant)
        now = store.fast.atr_lock_acquire
        slow = store.lib.atr_lock_acquire
        release_now = store.fast.atr_lock_release
        ETIMEDOUT = self.codes["ETIMEDOUT"]
        impl = self

        def acquire(block=True, timeout=None):
            rc = now(href, _NOWAIT, gref)
            if rc == 0:
                if impl._abandoned:
                    impl._abandoned = False
                return True
            if rc == ETIMEDOUT and block and (timeout is None or timeout > 0):
                rc = wait_call(lambda t: slow(href, t, gref), timeout,
                               impl.codes, True)
            if rc == 0:
                impl._abandoned = False
                return True
            if rc == ABANDONED:
                impl._abandoned = True
                abandoned_warning(name)
                return True
            if rc == ETIMEDOUT:
                return False
            raise _local.error(rc)

        def release(*_exc):
            # (also the lock's __exit__, which passes the exception: see
            # _sync.Lock)
            rc = release_now(href)
            if rc:
                if rc == ENOTHELD:
                    raise not_held(reentrant_, _local.error(rc))
                raise _local.error(rc)

        self.acquire, self.release = acquire, release

    @property
    def abandoned(self):
        """The latest acquisition took the lock from a holder that died."""
        return self.c.abandoned if self.c is not None else self._abandoned

    @abandoned.setter
    def abandoned(self, value):
        if self.c is not None:
            self.c.abandoned = bool(value)
        else:
            self._abandoned = bool(value)

    def fence(self):
        """The fence of the calling thread's acquisition (valid while it
        holds the lock)."""
        return self.grant.fence

    def count(self):
        return self.info().count

    def check_fence(self, fence):
        """AtriumError ESTALE unless the lock is held under fence now."""
        rc = self.store.lib.atr_lock_fenced(self.store.ptr, self.name.encode(),
                                            fence, _NOTHING, None)
        if rc < 0:
            raise _local.error(rc)


# The function atr_lock_fenced runs to check a fence and do nothing else.
_NOTHING = ctypes.CFUNCTYPE(c_int, ctypes.c_void_p)(lambda arg: 0)


class LocalSemaphore(_SyncObject):
    def __init__(self, store, name, value, bound, mode):
        super().__init__(store, name)
        sopen = _need(store, "atr_sem_open", "semaphore")
        self._opened(sopen(store.ptr, name.encode(), _local._FLAGS[mode],
                           value, bound, self.href))
        self.bound = self.info().bound
        href = self.href
        EOVER = self.codes["EOVERRELEASE"]
        if store.ext is not None:
            def fail(rc):
                err = _local.error(rc)
                return over_released(err) if rc == EOVER else err
            c = store.ext.Semaphore(ctypes.addressof(self.handle), self.handle, fail)
            self.acquire, self.release = c.acquire, c.release
            return
        now, slow = store.fast.atr_sem_acquire, store.lib.atr_sem_acquire
        ETIMEDOUT = self.codes["ETIMEDOUT"]
        codes = self.codes
        rel = store.lib.atr_sem_release

        def acquire(block=True, timeout=None):
            rc = now(href, _NOWAIT, None)
            if rc == ETIMEDOUT and block and (timeout is None or timeout > 0):
                rc = wait_call(lambda t: slow(href, t, None), timeout, codes, True)
            if rc == 0 or rc == ABANDONED:
                return True
            if rc == ETIMEDOUT:
                return False
            raise _local.error(rc)

        def release(n=1):
            rc = rel(href, index(n), None)  # (TypeError, as the C path)
            if rc:
                if rc == EOVER:
                    raise over_released(_local.error(rc))
                raise _local.error(rc)

        self.acquire, self.release = acquire, release

    def value(self):
        return self.info().count


class LocalFlag(_SyncObject):
    def __init__(self, store, name, set_, mode):
        super().__init__(store, name)
        fopen = _need(store, "atr_flag_open", "flag")
        self._opened(fopen(store.ptr, name.encode(), _local._FLAGS[mode],
                           1 if set_ else 0, self.href))

    def _call(self, rc):
        if rc < 0:
            raise _local.error(rc)

    def set(self):
        self._call(self.store.lib.atr_flag_set(self.href))

    def clear(self):
        self._call(self.store.lib.atr_flag_clear(self.href))

    def is_set(self):
        return bool(self.info().set)

    def wait(self, timeout=None):
        L, href = self.store.lib, self.href
        rc = self.store.fast.atr_flag_wait(href, _NOWAIT, None)
        ETIMEDOUT = self.codes["ETIMEDOUT"]
        if rc == ETIMEDOUT and (timeout is None or timeout > 0):
            rc = wait_call(lambda t: L.atr_flag_wait(href, t, None), timeout,
                           self.codes, True)
        if rc == 0:
            return True
        if rc == ETIMEDOUT:
            return False
        raise _local.error(rc)


class LocalBarrier(_SyncObject):
    def __init__(self, store, name, parties, mode):
        super().__init__(store, name)
        bopen = _need(store, "atr_barrier_open", "barrier")
        self._opened(bopen(store.ptr, name.encode(), _local._FLAGS[mode],
                           parties, self.href))
        self.parties = self.info().parties

    def wait(self, timeout):
        """The arrival index, or raises threading.BrokenBarrierError."""
        L, href = self.store.lib, self.href
        index = c_uint64()
        rc = wait_call(lambda t: L.atr_barrier_wait(href, t, byref(index), None),
                       timeout, self.codes, False)
        if rc == 0:
            return index.value
        if rc in (self.codes["EBROKEN"], self.codes["ETIMEDOUT"]):
            raise threading.BrokenBarrierError
        raise _local.error(rc)

    def abort(self):
        rc = self.store.lib.atr_barrier_abort(self.href)
        if rc < 0:
            raise _local.error(rc)

    def reset(self):
        rc = self.store.lib.atr_barrier_reset(self.href)
        if rc < 0:
            raise _local.error(rc)

    def n_waiting(self):
        return self.info().n_waiting

    def broken(self):
        return bool(self.info().broken)


class LocalCondition(_SyncObject):
    """A condition bound to a LocalLock."""

    def __init__(self, store, name, lock, mode):
        super().__init__(store, name)
        copen = _need(store, "atr_cond_open", "condition")
        self.lock = lock
        self._opened(copen(store.ptr, name.encode(), _local._FLAGS[mode],
                           lock.name.encode() if mode != "open" else None,
                           self.href))
        self.lock_name = self.info().lock.decode()

    def wait(self, timeout):
        """True if notified, False at the timeout; the lock is held again
        either way (KeyboardInterrupt too leaves it held)."""
        L, href, lock = self.store.lib, self.href, self.lock
        notified = c_int()
        codes = self.codes
        EINTR, ETIMEDOUT = codes["EINTR"], codes["ETIMEDOUT"]
        deadline = _deadline(timeout)
        while True:
            t = _left(deadline, None)
            rc = L.atr_cond_wait(href, t if deadline is None or t > 0 else 0.0,
                                 byref(notified), byref(lock.grant))
            if rc == EINTR:
                _check_signals()  # the lock is ours again: raising is safe
                if deadline is None or deadline > time.monotonic():
                    continue
                return False
            if rc == ABANDONED:
                lock.abandoned = True
                abandoned_warning(lock.name)
                return bool(notified.value)
            if rc == 0:
                return True
            if rc == ETIMEDOUT:
                return False
            if rc == codes["ENOTHELD"]:
                raise AssertionError("must acquire() condition before using wait()")
            raise _local.error(rc)

    def notify(self, n):
        woken = c_uint64()
        rc = self.store.lib.atr_cond_notify(self.href, 0, min(n, UINT64_MAX),
                                            byref(woken))
        if rc == self.codes["ENOTHELD"]:
            raise AssertionError("lock is not owned")
        if rc < 0:
            raise _local.error(rc)
        return woken.value


_local.Store.kinds.update(lock=LocalLock, semaphore=LocalSemaphore, flag=LocalFlag,
                          barrier=LocalBarrier, condition=LocalCondition)
__all__ = ["AtriumError"]
