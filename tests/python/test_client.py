"""The Python client on both transports: values, arrays and queues with
multiprocessing's results and exceptions, objects shared by name with C
programs and HTTP, items that come back equal and of the same type,
objects passed to real processes (fork and spawn), generated names
removed when done with, Ctrl-C in a blocking get."""
import json
import math
import multiprocessing
import os
import pickle
import queue
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pyc
from pyc import atrium, both, cli


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class Point:
    """A class that is no JSON: its items travel pickled."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)


# Children of the process tests: module level, so spawn finds them.
def add_many(value, n):
    for _ in range(n):
        value.add(1)


def put_many(q, start, n):
    for i in range(start, start + n):
        q.put((i, "item", [i]))


def put_forever(q):
    i = 0
    while True:
        q.put((i, "x" * (i % 300)))
        i += 1


def array_prefix_sums(arr):
    for i in range(1, len(arr)):
        arr[i] += arr[i - 1]


def count_under(lock, value, n):
    """n read-then-write increments (not atomic alone) under lock."""
    for _ in range(n):
        with lock:
            x = value.value
            value.value = x + 1


def count_get_lock(value, n):
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def hold_forever(lock, ready):
    lock.acquire()
    ready.set()
    time.sleep(600)


def wait_then_put(event, q):
    q.put(("waiting", os.getpid()))
    q.put(("event", event.wait(60)))


def barrier_rounds(barrier, q, rounds):
    for r in range(rounds):
        q.put((r, barrier.wait(60)))


def consume_when_ready(cond, state, q):
    with cond:
        q.put("in")
        ok = cond.wait_for(lambda: state.value > 0, 60)
        q.put(("woke", ok, state.value))


def count_element(lock, arr, n):
    for _ in range(n):
        with lock:
            arr[0] = arr[0] + 1


def bounded_worker(sem, inside, most, n):
    for _ in range(n):
        with sem:
            now = inside.add(1)
            with most.get_lock():
                if now > most.value:
                    most.value = now
            inside.add(-1)


@both
class _Values:

    def test_types_round_trip(self):
        cases = [("b", -128), ("B", 255), ("h", -32768), ("H", 65535),
                 ("i", -2**31), ("I", 2**32 - 1), ("l", -2**63), ("L", 2**64 - 1),
                 ("q", 2**53 + 1), ("Q", 2**64 - 1), ("d", 0.1 + 0.2),
                 ("f", 0.5), ("?", True), ("c", b"\xe9")]
        for code, v in cases:
            with self.subTest(code=code):
                sv = atrium.RawValue(code, v, store=self.store)
                self.assertEqual(sv.value, v)
                self.assertIs(type(sv.value), type(v))
                self.assertEqual(atrium.RawValue(code, store=self.store).value,
                                 type(v)(0) if code != "c" else b"\0")

    def test_add_and_overflow(self):
        v = atrium.Value("q", 2**63 - 3, store=self.store)
        self.assertEqual(v.add(2), 2**63 - 1)
        with self.assertRaises(OverflowError):
            v.add(1)
        self.assertEqual(v.value, 2**63 - 1)
        v.value -= 2**63 - 1
        v.value += 1
        self.assertEqual(v.value, 1)
        d = atrium.RawValue("d", 0.1, store=self.store)
        self.assertEqual(d.add(0.2), 0.1 + 0.2)
        with self.assertRaises(OverflowError):
            atrium.RawValue("i", 2**31, store=self.store)
        b = atrium.RawValue("B", store=self.store)
        with self.assertRaises(OverflowError):
            b.value = 256
        with self.assertRaises(OverflowError):
            b.value = -1
        self.assertEqual(b.value, 0)

    def test_wrong_types(self):
        i = atrium.RawValue("i", store=self.store)
        with self.assertRaises(TypeError):
            i.value = 1.5
        with self.assertRaises(TypeError):
            i.value = "1"
        with self.assertRaises(TypeError):
            atrium.RawValue("u", store=self.store)
        with self.assertRaises(TypeError):
            atrium.RawValue("c", store=self.store).add(1)
        self.assertEqual(i.value, 0)

    def test_the_rest_is_the_standard_library(self):
        import multiprocessing.connection
        self.assertIs(atrium.Process, multiprocessing.Process)
        self.assertIs(atrium.Pool, multiprocessing.Pool)
        self.assertIs(atrium.get_context, multiprocessing.get_context)
        self.assertIs(atrium.current_process, multiprocessing.current_process)
        self.assertIs(atrium.connection, multiprocessing.connection)
        self.assertIn("Value", atrium.__all__)

    def test_bound_add_keeps_the_object(self):
        add = atrium.RawValue("q", store=self.store).add  # the object is dropped
        import gc
        gc.collect()
        self.assertEqual([add(), add(5)], [1, 6])
        raw = atrium.Value("i", 3, store=self.store).get_obj()
        gc.collect()
        self.assertEqual(raw.value, 3)

    def test_threads_get_their_own_results(self):
        import threading
        v = atrium.RawValue("Q", store=self.store)
        got = [[] for _ in range(4)]

        def adds(out):
            for _ in range(300):
                out.append(v.add(1))
        threads = [threading.Thread(target=adds, args=(out,)) for out in got]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # Every add returned its own result: no thread read another's.
        self.assertEqual(sorted(sum(got, [])), list(range(1, 1201)))

    def test_ctypes_types(self):
        import ctypes
        v = atrium.RawValue(ctypes.c_double, 2.5, store=self.store)
        self.assertEqual((v.value, v._type_), (2.5, "d"))

    def test_get_lock(self):
        v = atrium.Value("i", 5, store=self.store)
        lock = v.get_lock()
        self.assertIsInstance(lock, atrium.RLock)
        self.assertEqual(lock.name, v.name + ".lock")
        self.assertIs(v.get_lock(), lock)
        with v:
            with v.get_lock():  # an RLock: re-entered
                v.value += 1
        self.assertTrue(v.acquire(False))
        v.release()
        self.assertEqual(v.get_obj().value, 6)
        # Another process's object of the same name finds the same lock.
        again = pickle.loads(pickle.dumps(v))
        self.assertEqual(again.get_lock().name, lock.name)
        raw = atrium.Value("i", 5, lock=False, store=self.store)
        self.assertFalse(hasattr(raw, "get_lock") or hasattr(raw, "get_obj"))
        with self.assertRaises(AttributeError):
            atrium.Value("i", lock="notalock", store=self.store)
        # A lock the caller gives is used as it is.
        mine = atrium.Lock(store=self.store)
        v2 = atrium.Value("i", lock=mine, store=self.store)
        self.assertIs(v2.get_lock(), mine)
        with v2:
            v2.value += 1
            self.assertFalse(mine.acquire(False))
        self.assertEqual(v2.value, 1)
        arr = atrium.Array("d", 3, lock=multiprocessing.Lock(), store=self.store)
        with arr:
            arr[0] = 1.5
        self.assertEqual(arr[:], [1.5, 0.0, 0.0])

    def test_named_shared_with_c(self):
        name = unique("hits")
        v = atrium.Value("q", 5, name=name, store=self.store)
        again = atrium.Value("q", 9, name=name, store=self.store)
        self.assertEqual(again.value, 5)  # opened, not re-initialised
        self.assertEqual(cli(self.path, "get", name), "5")
        cli(self.path, "add", name, 2**40)
        self.assertEqual(v.add(1), 2**40 + 6)
        with self.assertRaises(atrium.AtriumError) as cm:
            atrium.Queue(name=name, store=self.store)
        self.assertEqual((cm.exception.name, cm.exception.code, cm.exception.status),
                         ("EKIND", "kind_mismatch", 409))
        self.assertIsInstance(cm.exception, OSError)
        with self.assertRaises(TypeError):
            atrium.Value("d", name=name, store=self.store)
        self.assertTrue(pyc.exists(self.path, name))
        self.store.delete(name, "value")  # named: ours to remove
        self.assertFalse(pyc.exists(self.path, name))

    def test_pickles_as_reference(self):
        v = atrium.Value("h", -7, store=self.store)
        data = pickle.dumps(v)
        self.assertLess(len(data), 400)
        w = pickle.loads(data)
        self.assertEqual((w.name, w.value), (v.name, -7))
        w.value = 3
        self.assertEqual(v.value, 3)

    def test_processes_fork_spawn_forkserver(self):
        for method in ("fork", "spawn", "forkserver"):
            with self.subTest(method=method):
                ctx = multiprocessing.get_context(method)
                v = atrium.Value("q", store=self.store)
                procs = [ctx.Process(target=add_many, args=(v, 500)) for _ in range(2)]
                for p in procs:
                    p.start()
                for p in procs:
                    p.join(60)
                self.assertEqual([p.exitcode for p in procs], [0, 0])
                self.assertEqual(v.value, 1000)


@both
class _Sync:
    """Locks, semaphores, events, conditions and barriers: multiprocessing's
    results and exceptions, between real processes."""
    # make check-long: 3000 and 150.
    N_LOCAL, N_REMOTE = pyc.gw.scaled(1000, 3000), pyc.gw.scaled(50, 150)

    def n(self):
        return self.N_LOCAL if self.transport == "local" else self.N_REMOTE

    def test_lock_and_rlock_results(self):
        lock = atrium.Lock(store=self.store)
        self.assertEqual((lock.acquire(), lock.acquire(False)), (True, False))
        t = time.monotonic()
        self.assertFalse(lock.acquire(timeout=0.3))
        self.assertGreaterEqual(time.monotonic() - t, 0.29)
        self.assertFalse(lock.abandoned)
        # Held by this thread: another thread's release is refused.
        import threading
        errors = []

        def other(lk):
            try:
                lk.release()
            except (ValueError, AssertionError) as e:
                errors.append(type(e))
        th = threading.Thread(target=other, args=(lock,))
        th.start()
        th.join(60)
        self.assertIsNone(lock.release())
        self.assertRaises(ValueError, lock.release)
        rlock = atrium.RLock(store=self.store)
        self.assertTrue(rlock.acquire() and rlock.acquire())
        th = threading.Thread(target=other, args=(rlock,))
        th.start()
        th.join(60)
        rlock.release()
        rlock.release()
        self.assertRaises(AssertionError, rlock.release)
        self.assertEqual(errors, [ValueError, AssertionError])
        with lock:
            self.assertFalse(lock.acquire(False))
        self.assertTrue(lock.acquire(False))
        lock.release()
        name = unique("lk")
        atrium.RLock(name=name, store=self.store)
        with self.assertRaises(TypeError):
            atrium.Lock(name=name, store=self.store)
        self.store.delete(name, "lock")

    def test_mutual_exclusion_between_processes(self):
        n = self.n()
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                ctx = multiprocessing.get_context(method)
                lock = atrium.Lock(store=self.store)
                v = atrium.RawValue("q", store=self.store)
                locked = atrium.Value("q", store=self.store)
                procs = [ctx.Process(target=count_under, args=(lock, v, n))
                         for _ in range(2)]
                procs += [ctx.Process(target=count_get_lock, args=(locked, n))
                          for _ in range(2)]
                for p in procs:
                    p.start()
                for p in procs:
                    p.join(120)
                self.assertEqual([p.exitcode for p in procs], [0] * 4)
                self.assertEqual((v.value, locked.value), (2 * n, 2 * n))

    def test_killed_holder(self):
        import warnings
        lock = atrium.Lock(store=self.store, ttl=1.0)
        ready = atrium.Event(store=self.store)
        p = multiprocessing.get_context("fork").Process(target=hold_forever,
                                                        args=(lock, ready))
        p.start()
        try:
            self.assertTrue(ready.wait(60))
            self.assertFalse(lock.acquire(timeout=0.2))
        finally:
            os.kill(p.pid, signal.SIGKILL)
            p.join(60)
        t = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.assertTrue(lock.acquire(timeout=30))
        took = time.monotonic() - t
        if self.transport == "local":
            # The kernel gave it back at the holder's death.
            self.assertLess(took, 1.0)
            self.assertTrue(lock.abandoned)
            self.assertEqual([w.category for w in caught], [atrium.AbandonedWarning])
        else:
            # Its lease (1 s) ran out when the renewals stopped.
            self.assertLess(took, 5.0)
        lock.release()
        self.assertTrue(lock.acquire(False))
        self.assertFalse(lock.abandoned)
        lock.release()

    def test_ctrl_c_interrupts_acquire(self):
        name = unique("held")
        lock = atrium.Lock(name=name, store=self.store)
        self.assertTrue(lock.acquire())
        pyc.ctrl_c_in_acquire(self, self.store.url, name)
        lock.release()
        self.assertTrue(lock.acquire(timeout=10))  # the child took nothing
        lock.release()
        self.store.delete(name, "lock")

    def test_semaphores(self):
        sem = atrium.Semaphore(2, store=self.store)
        self.assertEqual((sem.get_value(), sem.acquire(), sem.acquire()), (2, True, True))
        self.assertEqual((sem.acquire(False), sem.acquire(timeout=0.1)), (False, False))
        sem.release()
        sem.release()
        sem.release()
        self.assertEqual(sem.get_value(), 3)
        with self.assertRaises(ValueError):
            atrium.Semaphore(-1, store=self.store)
        bounded = atrium.BoundedSemaphore(2, store=self.store)
        self.assertRaises(ValueError, bounded.release)
        self.assertEqual(bounded.get_value(), 2)
        inside = atrium.RawValue("q", store=self.store)
        most = atrium.Value("q", store=self.store)
        ctx = multiprocessing.get_context("fork")
        n = self.n() // 10
        procs = [ctx.Process(target=bounded_worker, args=(bounded, inside, most, n))
                 for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        self.assertEqual([p.exitcode for p in procs], [0] * 4)
        self.assertEqual((inside.value, bounded.get_value()), (0, 2))
        self.assertIn(most.value, (1, 2))

    def test_event_between_processes(self):
        ev = atrium.Event(store=self.store)
        q = atrium.Queue(store=self.store)
        self.assertEqual((ev.is_set(), ev.wait(0), ev.wait(0.1)), (False, False, False))
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                ev.clear()
                p = multiprocessing.get_context(method).Process(
                    target=wait_then_put, args=(ev, q))
                p.start()
                self.assertEqual(q.get(timeout=60)[0], "waiting")
                time.sleep(0.2)
                self.assertTrue(q.empty())
                ev.set()
                self.assertEqual(q.get(timeout=60), ("event", True))
                p.join(60)
                self.assertEqual(p.exitcode, 0)
        self.assertRegex(repr(ev), r"<Event at .* set>")

    def test_condition_between_processes(self):
        cond = atrium.Condition(store=self.store)
        state = atrium.RawValue("i", store=self.store)
        q = atrium.Queue(store=self.store)
        with cond:
            self.assertFalse(cond.wait(0.1))
            self.assertEqual(cond.wait_for(lambda: False, 0.1), False)
        self.assertRaises(AssertionError, cond.notify)
        self.assertRaises(AssertionError, cond.wait, 0.1)
        procs = [multiprocessing.get_context(m).Process(
            target=consume_when_ready, args=(cond, state, q)) for m in ("fork", "spawn")]
        for p in procs:
            p.start()
        self.assertEqual([q.get(timeout=60) for _ in procs], ["in", "in"])
        time.sleep(0.3)  # both waiting (they hold the lock until they are)
        with cond:
            state.value = 7
            cond.notify_all()
        self.assertEqual([q.get(timeout=60) for _ in procs], [("woke", True, 7)] * 2)
        for p in procs:
            p.join(60)
        self.assertEqual([p.exitcode for p in procs], [0, 0])
        named = unique("cond")
        c1 = atrium.Condition(name=named, store=self.store)
        c2 = atrium.Condition(name=named, store=self.store)
        self.assertEqual(c1._lock.name, named + ".lock")
        with c1:
            self.assertFalse(c2.acquire(False) and False)
        self.store.delete(named, "condition")
        self.store.delete(named + ".lock", "lock")

    def test_barrier_between_processes(self):
        import threading
        barrier = atrium.Barrier(4, store=self.store)
        self.assertEqual((barrier.parties, barrier.n_waiting, barrier.broken), (4, 0, False))
        q = atrium.Queue(store=self.store)
        procs = [multiprocessing.get_context(m).Process(
            target=barrier_rounds, args=(barrier, q, 3)) for m in ("fork", "spawn", "fork")]
        for p in procs:
            p.start()
        mine = [barrier.wait(60) for _ in range(3)]
        got = [q.get(timeout=60) for _ in range(9)]
        for p in procs:
            p.join(60)
        self.assertEqual([p.exitcode for p in procs], [0] * 3)
        for r in range(3):
            self.assertEqual(sorted([i for rr, i in got if rr == r] + [mine[r]]),
                             [0, 1, 2, 3])
        with self.assertRaises(threading.BrokenBarrierError):
            barrier.wait(0.2)  # alone: the timeout breaks it
        self.assertTrue(barrier.broken)
        barrier.reset()
        self.assertFalse(barrier.broken)
        barrier.abort()
        self.assertRaises(threading.BrokenBarrierError, barrier.wait, 1)
        seen = []
        with_action = atrium.Barrier(1, action=lambda: seen.append(1), store=self.store)
        self.assertEqual((with_action.wait(), with_action.wait()), (0, 0))
        self.assertEqual(seen, [1, 1])

    def test_pickles_as_reference(self):
        for obj in (atrium.Lock(store=self.store), atrium.RLock(store=self.store),
                    atrium.Semaphore(3, store=self.store), atrium.Event(store=self.store),
                    atrium.Condition(store=self.store), atrium.Barrier(2, store=self.store)):
            with self.subTest(kind=type(obj).__name__):
                data = pickle.dumps(obj)
                self.assertLess(len(data), 700)
                back = pickle.loads(data)
                self.assertIs(type(back), type(obj))
                self.assertEqual(back.name, obj.name)


@both
class _Arrays:

    def test_slices_and_indexing(self):
        seq = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831]
        arr = atrium.Array("i", seq, store=self.store)
        self.assertEqual((len(arr), arr[3], arr[-1]), (10, 821, 831))
        self.assertEqual(arr[2:7], seq[2:7])
        self.assertEqual(arr[::3], seq[::3])
        self.assertEqual(arr[-3:], seq[-3:])
        self.assertEqual(arr[8:100], seq[8:100])
        self.assertEqual(arr[5:2], [])
        arr[4:8] = seq[4:8] = [1, 2, 3, 4]
        arr[::2] = seq[::2] = [0] * 5
        self.assertEqual(list(arr), seq)
        with self.assertRaises(IndexError):
            arr[10]
        with self.assertRaises(IndexError):
            arr[-11] = 1
        with self.assertRaises(ValueError):
            arr[0:2] = [1, 2, 3]
        with self.assertRaises(OverflowError):
            arr[0:2] = [1, 2**40]
        self.assertEqual(list(arr), seq)  # all or nothing
        self.assertEqual(arr.add(-1, 5), seq[-1] + 5)

    def test_sizes_types_and_names(self):
        z = atrium.RawArray("d", 4, store=self.store)
        self.assertEqual(z[:], [0.0] * 4)
        c = atrium.RawArray("c", b"hi\0x", store=self.store)
        self.assertEqual((c[:], c[1], c.value, c.raw), (b"hi\0x", b"i", b"hi", b"hi\0x"))
        c[0:2] = b"HO"
        self.assertEqual(c[:2], b"HO")
        name = unique("arr")
        a = atrium.Array("h", [1, -2, 3], name=name, store=self.store)
        self.assertEqual(atrium.Array("h", 3, name=name, store=self.store)[:], [1, -2, 3])
        with self.assertRaises(atrium.AtriumError) as cm:
            atrium.Array("h", 4, name=name, store=self.store)
        self.assertEqual(cm.exception.name, "ELENGTH")
        self.assertEqual(cli(self.path, "get", name), "1 -2 3")
        a[1] = 5
        self.store.delete(name, "array")

    def test_child_sees_and_writes(self):
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                seq = list(range(1, 11))
                arr = atrium.Array("q", seq, store=self.store)
                p = multiprocessing.get_context(method).Process(
                    target=array_prefix_sums, args=(arr,))
                p.start()
                p.join(60)
                self.assertEqual(p.exitcode, 0)
                self.assertEqual(arr[:], [sum(seq[:i + 1]) for i in range(10)])


ITEMS = [None, True, 0, -1, 2**64 + 1, 0.1, "x", "é☃", [], {}, [1, [2, "3"]],
         {"a": {"b": [None]}}, (), (1, "a"), [(1, 2), (3, (4,))], {"t": (1,)},
         b"\x00\xff", {1: 2}, {"$atrium": "pickle"}, float("inf"), Point(1, 2),
         {"set": frozenset({1})}, 10**40, "\x00"]


@both
class _Queues:

    def test_items_come_back_equal_and_same_type(self):
        q = atrium.Queue(store=self.store)
        for item in ITEMS:
            q.put(item)
        self.assertEqual(q.qsize(), len(ITEMS))
        for item in ITEMS:
            got = q.get_nowait()
            self.assertEqual(got, item)
            self.assertIs(type(got), type(item))
            if type(item) in (list, dict) and item:
                self.assertEqual(repr(got), repr(item))
        nan = float("nan")
        q.put(nan)
        self.assertTrue(math.isnan(q.get()))

    def test_plain_json_is_plain_for_others(self):
        name = unique("jq")
        q = atrium.Queue(name=name, store=self.store)
        q.put({"id": 12345, "tags": ["a"], "big": 2**64 - 1})
        q.put((1, 2))
        self.assertEqual(json.loads(cli(self.path, "pop", name)),
                         {"id": 12345, "tags": ["a"], "big": 2**64 - 1})
        self.assertEqual(json.loads(cli(self.path, "pop", name)),
                         {"$atrium": "tuple", "items": [1, 2]})
        cli(self.path, "put", name, '{"from": "C", "n": [1, 2.5]}')
        cli(self.path, "put", name, "not json \x01")
        self.assertEqual(q.get(timeout=10), {"from": "C", "n": [1, 2.5]})
        self.assertEqual(q.get(timeout=10), "not json \x01")
        self.store.delete(name, "queue")

    def test_block_timeout_full_empty(self):
        q = atrium.Queue(maxsize=3, store=self.store)
        self.assertTrue(q.empty())
        self.assertFalse(q.full())
        q.put(1)
        q.put(2, True)
        q.put_nowait(3)
        self.assertTrue(q.full())
        self.assertRaises(queue.Full, q.put, 4, False)
        self.assertRaises(queue.Full, q.put_nowait, 4)
        t = time.monotonic()
        self.assertRaises(queue.Full, q.put, 4, True, 0.2)
        self.assertGreaterEqual(time.monotonic() - t, 0.2)
        self.assertRaises(queue.Full, q.put, 4, False, 5)
        self.assertEqual([q.get(), q.get(True), q.get(True, 1)], [1, 2, 3])
        self.assertRaises(queue.Empty, q.get_nowait)
        self.assertRaises(queue.Empty, q.get, False, 5)
        t = time.monotonic()
        self.assertRaises(queue.Empty, q.get, timeout=0.2)
        self.assertGreaterEqual(time.monotonic() - t, 0.2)
        q.close()
        with self.assertRaisesRegex(ValueError, "is closed"):
            q.put(1)
        with self.assertRaisesRegex(ValueError, "is closed"):
            q.get()
        q.join_thread()
        q.cancel_join_thread()

    def test_simple_queue(self):
        sq = atrium.SimpleQueue(store=self.store)
        self.assertTrue(sq.empty())
        sq.put(("a", 1))
        self.assertFalse(sq.empty())
        self.assertEqual(sq.get(), ("a", 1))

    def test_processes_fork_and_spawn(self):
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                ctx = multiprocessing.get_context(method)
                q = atrium.Queue(maxsize=50, store=self.store)
                procs = [ctx.Process(target=put_many, args=(q, k * 1000, 300))
                         for k in range(2)]
                for p in procs:
                    p.start()
                got = [q.get(timeout=60) for _ in range(600)]
                for p in procs:
                    p.join(60)
                self.assertEqual([p.exitcode for p in procs], [0, 0])
                self.assertEqual(sorted(got), [(i, "item", [i]) for k in range(2)
                                               for i in range(k * 1000, k * 1000 + 300)])
                # Each producer's items keep their order.
                for k in range(2):
                    mine = [g[0] for g in got if g[0] // 1000 == k]
                    self.assertEqual(mine, sorted(mine))
                self.assertTrue(q.empty())

    def test_producer_killed_mid_put(self):
        q = atrium.Queue(store=self.store)
        p = multiprocessing.get_context("fork").Process(target=put_forever, args=(q,))
        p.start()
        try:
            first = q.get(timeout=60)  # it is putting
            while q.qsize() < 50:
                time.sleep(0.01)
        finally:
            os.kill(p.pid, signal.SIGKILL)
            p.join(60)
        self.assertEqual(p.exitcode, -signal.SIGKILL)
        # Every item that got in is whole, in order; the queue goes on.
        items = [first]
        while True:
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                break
        self.assertEqual(items, [(i, "x" * (i % 300)) for i in range(len(items))])
        q.put("after")
        self.assertEqual(q.get(timeout=10), "after")

    def test_ctrl_c_interrupts_get(self):
        name = unique("wait")
        atrium.Queue(name=name, store=self.store)
        code = textwrap.dedent("""
            import sys, atrium
            q = atrium.Queue(name=%r, store=atrium.connect(%r))
            print("waiting", flush=True)
            try:
                q.get()
            except KeyboardInterrupt:
                print("interrupted", flush=True)
                sys.exit(3)
            """ % (name, self.store.url))
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             text=True)
        try:
            self.assertEqual(p.stdout.readline().strip(), "waiting")
            time.sleep(0.3)  # into the wait (an earlier SIGINT passes too)
            p.send_signal(signal.SIGINT)
            out, _ = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual((p.returncode, out.strip()), (3, "interrupted"))
        # The interrupted get took nothing: the next item is still whole.
        q = atrium.Queue(name=name, store=self.store)
        q.put("after")
        self.assertEqual(q.get(timeout=10), "after")
        self.store.delete(name, "queue")


@both
class _Lifetime:

    def test_generated_names_removed(self):
        code = textwrap.dedent("""
            import multiprocessing, sys, atrium
            s = atrium.connect(%r)
            kept = [atrium.Value("i", store=s), atrium.Array("d", 3, store=s),
                    atrium.Queue(store=s), atrium.RawValue("q", store=s),
                    atrium.Lock(store=s), atrium.Condition(store=s),
                    atrium.Semaphore(store=s), atrium.Event(store=s)]
            kept[0].get_lock()  # its lock, named after it, goes with it
            gone = atrium.Value("i", store=s)
            name = gone.name
            del gone
            named = atrium.Value("i", name=%r, store=s)
            # A forked child that exits leaves its parent's objects alone.
            p = multiprocessing.get_context("fork").Process(target=lambda: None)
            p.start(); p.join()
            print(name, *[o.name for o in kept], kept[0].name + ".lock",
                  kept[5]._lock.name, flush=True)
            sys.stdin.readline()
            """ % (self.store.url, unique("named")))
        p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        names = p.stdout.readline().split()
        try:
            self.assertEqual(len(names), 11)
            live = pyc.objects(self.path)
            self.assertNotIn(names[0], live)  # garbage: removed at once
            self.assertTrue(set(names[1:]) <= live)
        finally:
            p.communicate("\n", timeout=60)
        self.assertEqual(p.returncode, 0)
        live = pyc.objects(self.path)
        self.assertFalse(set(names) & live)  # gone at the creator's exit
        self.assertTrue(any(n.startswith("named-") for n in live))


def put_later(q, item, delay):
    time.sleep(delay)
    q.put(item)


class TokenAndShortWaits(pyc.unittest.TestCase):
    """A gateway with a token and --max-wait 1: the client sends the token,
    and its waits outlast the gateway's cap by asking again."""

    @classmethod
    def setUpClass(cls):
        cls.gw = pyc.gw.Gateway("--max-wait", "1", token="py-s3cret\n").start()
        cls.url = "http://127.0.0.1:%d" % cls.gw.port

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()

    def test_token(self):
        store = atrium.connect(self.url, token="py-s3cret")
        v = atrium.RawValue("q", 5, store=store)
        self.assertEqual(v.add(), 6)
        with self.assertRaises(atrium.AtriumError) as cm:
            atrium.RawValue("q", store=atrium.connect(self.url, token="wrong"))
        self.assertEqual(cm.exception.status, 401)

    def test_waits_past_max_wait(self):
        store = atrium.connect(self.url, token="py-s3cret")
        q = atrium.Queue(maxsize=1, store=store)
        t = time.monotonic()
        self.assertRaises(queue.Empty, q.get, True, 2.5)
        self.assertGreaterEqual(time.monotonic() - t, 2.5)
        p = multiprocessing.get_context("fork").Process(target=put_later,
                                                        args=(q, ("late",), 2.5))
        p.start()
        self.assertEqual(q.get(timeout=60), ("late",))  # several polls
        p.join(60)
        q.put(1)
        p = multiprocessing.get_context("fork").Process(target=q.get)
        t = time.monotonic()
        with self.assertRaises(queue.Full):
            q.put(2, timeout=1.5)
        self.assertGreaterEqual(time.monotonic() - t, 1.5)
        p.start()
        q.put(2, timeout=60)  # room once the child took the first
        p.join(60)
        self.assertEqual(q.get_nowait(), 2)


class BothTransports(pyc.RemoteMixin, pyc.unittest.TestCase):
    """A local process and a remote one on the same objects of one store."""

    def test_local_and_remote_exact_counts(self):
        name, qname = unique("both"), unique("bothq")
        remote = atrium.Value("q", name=name, store=self.store)
        local_store = atrium.connect(self.path)
        local = atrium.Value("q", name=name, store=local_store)
        rq = atrium.Queue(name=qname, store=self.store)
        lq = atrium.Queue(name=qname, store=local_store)
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=add_many, args=(local, 2000)),
                 ctx.Process(target=add_many, args=(remote, 300)),
                 ctx.Process(target=put_many, args=(lq, 0, 100)),
                 ctx.Process(target=put_many, args=(rq, 1000, 100))]
        for p in procs:
            p.start()
        cli(self.path, "add", name, 7)
        got = [rq.get(timeout=60) if i % 2 else lq.get(timeout=60) for i in range(200)]
        for p in procs:
            p.join(60)
        self.assertEqual([p.exitcode for p in procs], [0] * 4)
        self.assertEqual(remote.value, 2307)
        self.assertEqual(local.value, 2307)
        self.assertEqual(self.gw.get("/v1/values/" + name).json["value"], 2307)
        self.assertEqual(sorted(got), [(i, "item", [i]) for i in
                                       list(range(100)) + list(range(1000, 1100))])

    def test_one_lock_for_python_c_and_http(self):
        """Local Python processes, one over HTTP and a C program, on one
        lock and one array element: exact count; then a local holder
        killed, and the HTTP client's acquire says abandoned."""
        lname, aname = unique("xlock"), unique("xarr")
        local_store = atrium.connect(self.path)
        llock = atrium.Lock(name=lname, store=local_store)
        rlock = atrium.Lock(name=lname, store=self.store)
        larr = atrium.RawArray("q", 1, name=aname, store=local_store)
        rarr = atrium.RawArray("q", 1, name=aname, store=self.store)
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=count_element, args=(llock, larr, 2000)),
                 ctx.Process(target=count_element, args=(llock, larr, 2000)),
                 ctx.Process(target=count_element, args=(rlock, rarr, 150))]
        for p in procs:
            p.start()
        c = subprocess.run([SYNC_TOOL, "incr", self.path, lname, aname, "0", "2000"],
                           stdout=subprocess.PIPE, text=True, timeout=120)
        for p in procs:
            p.join(120)
        self.assertEqual([p.exitcode for p in procs] + [c.returncode], [0] * 4)
        self.assertEqual(larr[0], 2000 + 2000 + 150 + 2000)
        self.assertEqual(rarr[0], larr[0])
        ready = atrium.Event(store=local_store)
        p = ctx.Process(target=hold_forever, args=(llock, ready))
        p.start()
        self.assertTrue(ready.wait(60))
        self.assertFalse(rlock.acquire(False))
        os.kill(p.pid, signal.SIGKILL)
        p.join(60)
        import warnings
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            self.assertTrue(rlock.acquire(timeout=30))
        self.assertTrue(rlock.abandoned)
        with rlock.fenced() as fence:
            self.assertGreater(fence, 0)
            rarr[0] = 1  # carries the fence: applied while held
            # An operator breaks the lock: the hold is gone, and so is
            # every write fenced by it.
            self.assertEqual(self.gw.post("/v1/locks/%s/break" % lname).status, 200)
            with self.assertRaises(atrium.AtriumError) as cm:
                rarr[0] = 2
            self.assertEqual((cm.exception.name, cm.exception.status), ("ESTALE", 412))
        self.assertEqual(larr[0], 1)
        with self.assertRaises(atrium.AtriumError) as cm:
            rlock.release()  # (the break spent its token)
        self.assertEqual(cm.exception.name, "ENOTHELD")
        rlock.acquire()
        with rlock.fenced() as newer:
            self.assertGreater(newer, fence)
            rarr[0] = 1
        rlock.release()
        with self.assertRaises(AssertionError):
            with rlock.fenced():
                pass
        self.assertEqual(larr[0], 1)
        self.store.delete(lname, "lock")
        self.store.delete(aname, "array")


SYNC_TOOL = os.path.join(pyc.gw.BUILD, "tests", "gateway", "sync_tool")

if __name__ == "__main__":
    pyc.main()
