"""The remote transport's synchronisation objects: atriumd's locks,
semaphores, flags (Event), barriers and conditions over HTTP (DESIGN.md,
"HTTP API (v1): synchronisation objects").

Over HTTP a lock is held as a lease: a token with a ttl. This process
keeps its holds in one table, by store and lock name (whichever object
took it), each the hold of one thread, as the core's process holds are:
another thread's release is refused, a reentrant lock is re-entered by its
thread without a request, and a forked child holds nothing. A renewer
thread renews every lease at a third of its ttl while the process lives;
when the process dies the renewals stop and the lease runs out ttl
seconds later (the gateway gives it back then, and the next holder is
told it expired). A hold whose renewal failed (the lease ran out while
the process was stopped, or an operator broke the lock) is lost: its
release raises AtriumError ENOTHELD.

Waits are long-polls of at most _remote.SLICE seconds (the gateway caps
each at its --max-wait and answers "timeout"), repeated until the
caller's timeout; Ctrl-C interrupts the request in progress (its
connection is dropped; a grant the gateway could not deliver it gives
back).
"""
import json
import os
import threading
import time

from . import _remote
from ._errors import AtriumError, abandoned_warning, not_held, over_released

DEFAULT_TTL = 30.0
UINT64_MAX = (1 << 64) - 1


def _timed_out(status, data):
    """Whether an answer is a wait that ran out (409 timeout; 503
    timed_out from a gateway that answers the core's ETIMEDOUT so)."""
    return status in (409, 503) and (b'"timeout"' in data or b'"timed_out"' in data)


def _poll(store, path, query, body, timeout, busy=_timed_out):
    """POSTs path?query&timeout=... until an answer that busy() does not
    call "not yet", or the caller's timeout (None: for ever; 0: one try
    without a timeout parameter). (status, data), or (None, None) at the
    timeout."""
    sep = "&" if query else ""
    if timeout is not None and timeout <= 0:
        status, data = store.request("POST", "%s?%s" % (path, query), body)
        return (None, None) if busy(status, data) else (status, data)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = _remote.SLICE if deadline is None else \
            min(_remote.SLICE, deadline - time.monotonic())
        if left <= 0:
            return None, None
        status, data = store.request(
            "POST", "%s?%s%stimeout=%.3f" % (path, query, sep, left), body)
        if not busy(status, data):
            return status, data


def _ok(store, status, data):
    if status != 200:
        raise store.error(status, data)
    return json.loads(data)


class _Hold:
    """One thread's lease of one lock (see the module's comment)."""
    __slots__ = ("store", "path", "thread", "token", "fence", "count", "ttl",
                 "due", "lost", "left")

    def __init__(self, store, path, ttl, answer):
        self.store, self.path, self.ttl = store, path, ttl
        self.thread = threading.get_ident()
        self.count = 1
        self.lost = False
        self.left = False  # a condition wait interrupted: the lock is given up
        self.took(answer)

    def took(self, answer):
        self.token = answer["token"]
        self.fence = answer.get("fence")
        self.ttl = answer.get("ttl") or self.ttl

    def renew(self, token, ttl):
        """One renewal: the answer's status (200: renewed)."""
        status, _ = self.store.request("POST", "%s/renew?ttl=%g" % (self.path, ttl),
                                       json.dumps({"token": token}).encode())
        return status


class ItemHold:
    """A leased queue item's lease (see _leased), renewed as lock leases
    are: touched at a third of its lease while the process lives."""
    __slots__ = ("queue", "token", "ttl", "due", "lost")

    def __init__(self, queue, receipt, ttl):
        self.queue, self.token, self.ttl = queue, receipt, ttl
        self.lost = False

    def renew(self, token, ttl):
        return 409 if self.queue.settle("touch", [token], ttl) else 200


class _Renewer:
    """The thread that renews this process's leases: locks' (_Hold) and
    leased queue items' (ItemHold), each through its renew()."""

    def __init__(self):
        self.cond = threading.Condition(threading.Lock())
        self.holds = set()
        self.thread = None

    def add(self, hold):
        with self.cond:
            hold.due = time.monotonic() + hold.ttl / 3
            self.holds.add(hold)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True,
                                               name="atrium-lease-renewer")
                self.thread.start()
            self.cond.notify()

    def remove(self, hold):
        with self.cond:
            self.holds.discard(hold)

    def _run(self):
        while True:
            with self.cond:
                while True:
                    now = time.monotonic()
                    hold = min(self.holds, key=lambda h: h.due, default=None)
                    if hold is not None and hold.due <= now:
                        break
                    self.cond.wait(None if hold is None else hold.due - now)
                token, ttl = hold.token, hold.ttl
                hold.due = now + ttl / 3  # (no second renewal meanwhile)
            try:
                status = hold.renew(token, ttl)
            except Exception:  # the gateway is away: try again soon
                status = None
            with self.cond:
                if hold not in self.holds or hold.token != token:
                    continue  # released, or a condition wait took it meanwhile
                if status == 200:
                    hold.due = time.monotonic() + ttl / 3
                elif status is None:
                    hold.due = time.monotonic() + min(1.0, ttl / 10)
                else:
                    hold.lost = True
                    self.holds.discard(hold)


_holds = {}  # (store url, lock name, thread ident): _Hold
_renewer = _Renewer()


def _forked():
    """A forked child holds nothing of its parent's, and has no renewer."""
    global _renewer
    _holds.clear()
    _renewer = _Renewer()


os.register_at_fork(after_in_child=_forked)


def renewer():
    """This process's renewer (a forked child gets its own)."""
    return _renewer


class RemoteLock:
    def __init__(self, store, name, reentrant, mode, ttl=None):
        self.store, self.name = store, name
        self.path = "/v1/locks/" + name
        state, self.created = store.create(self.path, {"reentrant": bool(reentrant)},
                                           {}, mode)
        self.life = _remote._Life()
        self.reentrant = bool(state.get("reentrant"))
        self.ttl = (ttl or getattr(store, "lease_ttl", None)
                    or float(os.environ.get("ATRIUM_LEASE_TTL") or DEFAULT_TTL))
        self.key = (store.url, name)  # (+ the thread: see mine())
        self.abandoned = False

    def mine(self):
        """This thread's hold, or None. Holds are by thread: a thread in a
        condition's wait keeps its hold (to take the lock again at the
        same depth) while another thread takes the lock."""
        return _holds.get(self.key + (threading.get_ident(),))

    def acquire(self, block=True, timeout=None):
        hold = self.mine()
        if hold is not None and self.reentrant and not hold.lost:
            hold.count += 1
            return True
        query = "ttl=%g" % self.ttl
        status, data = _poll(self.store, self.path + "/acquire", query, None,
                             timeout if block else 0)
        if status is None:
            return False
        answer = _ok(self.store, status, data)
        hold = _Hold(self.store, self.path, self.ttl, answer)
        _holds[self.key + (hold.thread,)] = hold
        _renewer.add(hold)
        self.abandoned = bool(answer.get("abandoned"))
        if self.abandoned:
            abandoned_warning(self.name)
        return True

    def release(self, *_exc):  # (also the lock's __exit__: see _sync.Lock)
        hold = self.mine()
        if hold is None:
            raise not_held(self.reentrant)
        if hold.count > 1:
            hold.count -= 1
            return
        del _holds[self.key + (hold.thread,)]
        _renewer.remove(hold)
        if hold.left:
            return  # (so that `with cond:` lets a KeyboardInterrupt through)
        status, data = self.store.request("POST", self.path + "/release",
                                          json.dumps({"token": hold.token}).encode())
        if status != 200:
            raise self.store.error(status, data)

    def fence(self):
        hold = self.mine()
        return hold.fence if hold is not None else None

    def count(self):
        return self.store.call("GET", self.path).get("count", 0)


class RemoteSemaphore:
    def __init__(self, store, name, value, bound, mode):
        self.store, self.name = store, name
        self.path = "/v1/semaphores/" + name
        body = {"value": value}
        if bound:
            body["bound"] = bound
        state, self.created = store.create(self.path, body, {}, mode)
        self.life = _remote._Life()
        self.bound = state.get("bound") or 0

    def acquire(self, block=True, timeout=None):
        status, data = _poll(self.store, self.path + "/acquire", "", None,
                             timeout if block else 0)
        if status is None:
            return False
        _ok(self.store, status, data)
        return True

    def release(self, n=1):
        for _ in range(n):
            status, data = self.store.request("POST", self.path + "/release")
            if status == 409 and b'"over_released"' in data:
                raise over_released(self.store.error(status, data))
            _ok(self.store, status, data)

    def value(self):
        return self.store.call("GET", self.path)["value"]


class RemoteFlag:
    def __init__(self, store, name, set_, mode):
        self.store, self.name = store, name
        self.path = "/v1/flags/" + name
        state, self.created = store.create(self.path, {"set": bool(set_)}, {}, mode)
        self.life = _remote._Life()

    def set(self):
        self.store.call("POST", self.path + "/set")

    def clear(self):
        self.store.call("POST", self.path + "/clear")

    def is_set(self):
        return bool(self.store.call("GET", self.path)["set"])

    def wait(self, timeout=None):
        def unset(status, data):
            return status == 200 and not json.loads(data).get("set")
        if timeout is not None and timeout <= 0:
            return self.is_set()
        status, data = _poll(self.store, self.path + "/wait", "", None, timeout,
                             unset)
        if status is None:
            return False
        return bool(_ok(self.store, status, data).get("set"))


class RemoteBarrier:
    def __init__(self, store, name, parties, mode):
        self.store, self.name = store, name
        self.path = "/v1/barriers/" + name
        state, self.created = store.create(self.path, {"parties": parties}, {}, mode)
        self.life = _remote._Life()
        self.parties = state["parties"]

    def wait(self, timeout):
        """The arrival index, or threading.BrokenBarrierError. One request:
        a barrier's wait cannot be cut into polls (its timeout breaks it),
        so a wait lasts at most the gateway's --max-wait."""
        path = self.path + "/wait"
        if timeout is not None:
            path += "?timeout=%.3f" % max(timeout, 0.0)
        status, data = self.store.request("POST", path)
        if status == 200:
            return json.loads(data)["index"]
        if status == 409 or _timed_out(status, data):
            raise threading.BrokenBarrierError
        raise self.store.error(status, data)

    def abort(self):
        self.store.call("POST", self.path + "/abort")

    def reset(self):
        self.store.call("POST", self.path + "/reset")

    def n_waiting(self):
        return self.store.call("GET", self.path)["n_waiting"]

    def broken(self):
        return bool(self.store.call("GET", self.path)["broken"])


class RemoteCondition:
    def __init__(self, store, name, lock, mode):
        self.store, self.name, self.lock = store, name, lock
        self.path = "/v1/conditions/" + name
        state, self.created = store.create(self.path, {"lock": lock.name}, {}, mode)
        self.life = _remote._Life()
        self.lock_name = state["lock"]

    def wait(self, timeout):
        hold = self.lock.mine()
        if hold is None:
            raise AssertionError("must acquire() condition before using wait()")
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        # The lock is not held while the gateway waits: no renewals of the
        # token it spends.
        _renewer.remove(hold)
        try:
            while True:
                left = _remote.SLICE if deadline is None else \
                    min(_remote.SLICE, max(deadline - time.monotonic(), 0.0))
                status, data = self.store.request(
                    "POST", "%s/wait?timeout=%.3f&ttl=%g" % (self.path, left, hold.ttl),
                    json.dumps({"token": hold.token}).encode())
                if status == 409 and b'"not_held"' in data:
                    hold.lost = True
                    raise AssertionError("must acquire() condition before using wait()")
                answer = _ok(self.store, status, data)
                hold.took(answer)
                if answer.get("abandoned"):
                    self.lock.abandoned = True
                if answer.get("notified"):
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        except BaseException:
            # Interrupted (Ctrl-C) or failed mid-wait: the gateway never
            # gives a client that left the lock again.
            hold.lost = hold.left = True
            raise
        finally:
            if not hold.lost:
                _renewer.add(hold)

    def notify(self, n):
        hold = self.lock.mine()
        if hold is None:
            raise AssertionError("lock is not owned")
        body = {"token": hold.token}
        if n >= UINT64_MAX:
            body["all"] = True
        else:
            body["n"] = n
        status, data = self.store.request("POST", self.path + "/notify",
                                          json.dumps(body).encode())
        if status == 409 and b'"not_held"' in data:
            raise AssertionError("lock is not owned")
        return _ok(self.store, status, data).get("woken", 0)


_remote.Store.kinds.update(lock=RemoteLock, semaphore=RemoteSemaphore,
                           flag=RemoteFlag, barrier=RemoteBarrier,
                           condition=RemoteCondition)
__all__ = ["AtriumError"]
