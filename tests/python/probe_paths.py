"""What the local transport answers, as JSON on stdout: results, exception
types, messages and causes of values, locks and semaphores, so that
test_fast.py can run it on both paths (atrium._fast and ctypes, by
ATRIUM_NO_FAST) and require the same answers. Run with ATRIUM_STORE set
to a fresh store (and the environment pyc.py sets)."""
import json
import os
import pickle
import sys
import threading
import warnings

import atrium

out = {"ext": atrium._local.ext() is not None}


def rec(name, fn):
    try:
        r = fn()
        out[name] = ["ok", type(r).__name__, repr(r)]
    except BaseException as e:  # noqa: B902 (every outcome is recorded)
        cause = e.__cause__
        out[name] = ["raise", type(e).__name__, str(e),
                     getattr(cause, "name", type(cause).__name__ if cause else None)]


def setter(obj, v):
    def set_():
        obj.value = v
        return obj.value
    return set_


# ------------------------------------------------------------------ values
for code, v in [("b", -128), ("B", 255), ("h", -32768), ("H", 65535),
                ("i", -2**31), ("I", 2**32 - 1), ("l", -2**63), ("L", 2**64 - 1),
                ("q", 2**53 + 1), ("Q", 2**64 - 1), ("d", 0.1 + 0.2),
                ("f", 0.1), ("?", True), ("c", b"\xe9")]:
    rec("init " + code, lambda: atrium.RawValue(code, v).value)
    rec("zero " + code, lambda: atrium.RawValue(code).value)
cases = [("B", 256), ("B", -1), ("b", 200), ("q", 2**63), ("q", -2**63 - 1),
         ("Q", 2**64), ("Q", -1), ("i", 1.5), ("i", "1"), ("i", True),
         ("d", "x"), ("d", 3), ("d", 2**1100), ("f", 1e300), ("c", b"ab"),
         ("c", 300), ("c", 65), ("c", bytearray(b"z")), ("c", "a"),
         ("?", []), ("?", "yes"), ("q", None)]
for code, v in cases:
    rec("set %s %r" % (code, v), setter(atrium.RawValue(code), v))
q = atrium.Value("q", 2**63 - 3)
rec("add 2", lambda: q.add(2))
rec("add over", lambda: q.add(1))
rec("add huge", lambda: q.add(2**70))
rec("add float to q", lambda: q.add(1.5))
rec("add True", lambda: atrium.RawValue("q").add(True))
rec("add delta=", lambda: atrium.RawValue("q").add(delta=3))
rec("add nothing", lambda: atrium.RawValue("H", 7).add())
rec("add negative to Q", lambda: atrium.RawValue("Q", 1).add(-2))
rec("add to c", lambda: atrium.RawValue("c").add(1))
rec("add to ?", lambda: atrium.RawValue("?").add(1))
d = atrium.RawValue("d", 0.5)
rec("add d", lambda: d.add(0.25))
rec("add d int", lambda: d.add(2))
rec("add d over", lambda: d.add(1.7e308) and d.add(1.7e308))
rec("value after", lambda: (q.value, d.value))
v = atrium.Value("i", 5)


def locked_adds():
    with v:
        with v.get_lock():
            v.value += 1
    lock = v.get_lock()
    for _ in range(100):
        with lock:
            v.value += 1
    return v.value, v.get_obj().value


rec("get_lock adds", locked_adds)
rec("pickled value", lambda: pickle.loads(pickle.dumps(v)).value)
gone = atrium.RawValue("q", name="probe.gone")
atrium.default_store().delete("probe.gone", "value")
rec("deleted get", lambda: gone.value)
rec("deleted add", lambda: gone.add(1))

# ------------------------------------------------------------------- locks
lock = atrium.Lock()
rec("acquire", lock.acquire)
rec("acquire False", lambda: lock.acquire(False))
rec("acquire block=False", lambda: lock.acquire(block=False))
rec("acquire timeout=0.05", lambda: lock.acquire(timeout=0.05))
rec("acquire True, 0", lambda: lock.acquire(True, 0))
rec("acquire timeout=-1", lambda: lock.acquire(timeout=-1))
rec("acquire timeout='x' held", lambda: lock.acquire(timeout="x"))
rec("acquire 3 args", lambda: lock.acquire(True, 1, 2))
rec("acquire bad keyword", lambda: lock.acquire(blocking=True))
rec("release", lock.release)
rec("release again", lock.release)
rec("acquire timeout='x' free", lambda: (lock.acquire(timeout="x"), lock.release()))


def other_thread_release(lk):
    got = []

    def other():
        try:
            lk.release()
            got.append("released")
        except BaseException as e:  # noqa: B902
            got.append(type(e).__name__)
    th = threading.Thread(target=other)
    th.start()
    th.join(60)
    return got


lock.acquire()
rec("release by another thread", lambda: other_thread_release(lock))
rec("exit", lambda: lock.__exit__(None, None, None))
rlock = atrium.RLock()
rec("rlock twice", lambda: (rlock.acquire(), rlock.acquire(), rlock._b.count()))
rec("rlock release by another thread", lambda: other_thread_release(rlock))
rec("rlock releases", lambda: (rlock.release(), rlock.release()))
rec("rlock release unowned", rlock.release)
rec("with", lambda: [lock.acquire(False) for _ in [0] if lock.__enter__()])
lock.release()
rec("fence grows", lambda: (lock.acquire(), lock.fence > 0, lock.release()))
again = pickle.loads(pickle.dumps(lock))
rec("pickled lock", lambda: (lock.acquire(), again.acquire(False), lock.release(),
                             again.acquire(False), again.release()))
# A holder that dies: a forked child takes the lock and exits holding it.
pid = os.fork()
if pid == 0:
    lock.acquire()
    os._exit(0)
os.waitpid(pid, 0)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    rec("abandoned acquire", lambda: (lock.acquire(timeout=10), lock.abandoned))
rec("abandoned warning", lambda: [(w.category.__name__, os.path.basename(w.filename),
                                   "abandoned by a holder that died" in str(w.message))
                                  for w in caught])
rec("release after abandoned", lock.release)
rec("next acquire", lambda: (lock.acquire(), lock.abandoned, lock.release()))
# A forked child uses the parent's objects: its own holds, its own adds.
pid = os.fork()
if pid == 0:
    ok = lock.acquire(timeout=10) and v.add(1000) > 0
    lock.release()
    os._exit(0 if ok else 1)
rec("forked child", lambda: (os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), v.value))
dead = atrium.Lock(name="probe.lock")
atrium.default_store().delete("probe.lock", "lock")
rec("deleted acquire", dead.acquire)

# -------------------------------------------------------------- semaphores
sem = atrium.BoundedSemaphore(2)
rec("sem acquires", lambda: (sem.acquire(), sem.acquire(), sem.acquire(False),
                             sem.acquire(timeout=0.05), sem.get_value()))
rec("sem releases", lambda: (sem.release(), sem.release(), sem.get_value()))
rec("sem over-release", sem.release)
plain = atrium.Semaphore(0)
rec("sem release 3", lambda: (plain.release(3), plain.get_value()))
rec("sem release bad", lambda: plain.release("x"))
rec("sem with", lambda: [plain.get_value() for _ in [0] if plain.__enter__()])

json.dump(out, sys.stdout, indent=0, sort_keys=True)
