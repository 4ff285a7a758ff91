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

    def test_locks_not_faked(self):
        v = atrium.Value("i", 5, store=self.store)
        with self.assertRaises(atrium.AtriumError) as cm:
            v.get_lock()
        self.assertEqual(cm.exception.name, "ENOKIND")
        self.assertIn("lock", str(cm.exception))
        with self.assertRaises(atrium.AtriumError):
            with v:
                pass
        self.assertEqual(v.get_obj().value, 5)
        raw = atrium.Value("i", 5, lock=False, store=self.store)
        self.assertFalse(hasattr(raw, "get_lock") or hasattr(raw, "get_obj"))
        with self.assertRaises(AttributeError):
            atrium.Value("i", lock="notalock", store=self.store)
        for factory in (atrium.Lock, atrium.RLock, atrium.Event, atrium.JoinableQueue,
                        atrium.Manager, atrium.shared_memory.SharedMemory):
            with self.assertRaises(atrium.AtriumError):
                factory()
        # A lock the caller gives is used as it is.
        lock = multiprocessing.Lock()
        v2 = atrium.Value("i", lock=lock, store=self.store)
        self.assertIs(v2.get_lock(), lock)
        with v2:
            v2.value += 1
        self.assertEqual(v2.value, 1)

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
                    atrium.Queue(store=s), atrium.RawValue("q", store=s)]
            gone = atrium.Value("i", store=s)
            name = gone.name
            del gone
            named = atrium.Value("i", name=%r, store=s)
            # A forked child that exits leaves its parent's objects alone.
            p = multiprocessing.get_context("fork").Process(target=lambda: None)
            p.start(); p.join()
            print(name, *[o.name for o in kept], flush=True)
            sys.stdin.readline()
            """ % (self.store.url, unique("named")))
        p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        names = p.stdout.readline().split()
        try:
            self.assertEqual(len(names), 5)
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


if __name__ == "__main__":
    pyc.main()
