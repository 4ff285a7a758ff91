"""The Python client's containers on both transports: Manager().dict()
(Dict) as a full MutableMapping with its key encoding, Namespace, the
manager's lifetime of what it made, JoinableQueue's task accounting,
leased gets (ack, nack, touch, renewals, dead letters), kill -9 of a
process holding a lock and leased items, SharedMemory's zero-copy buffer;
and across languages and transports: a Python and a C process on one
dict, a Python process over HTTP and one local on one dict and one
JoinableQueue, exact counts.

ATRIUM_CHECK_LONG=1 runs the long version (more kill trials, bigger
counts)."""
import gc
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time
import unittest
import uuid

import pyc
from pyc import atrium, both

LONG = os.environ.get("ATRIUM_CHECK_LONG") == "1"
DICT_TOOL = os.path.join(pyc.gw.BUILD, "tests", "gateway", "dict_tool")


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class Point:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return type(other) is Point and other.x == self.x

    def __hash__(self):
        return hash(self.x)

    def __repr__(self):
        return "Point(%r)" % (self.x,)


# Children: module level, so that spawn finds them.
def write_keys(d, prefix, n):
    for i in range(n):
        d["%s%d" % (prefix, i)] = i


def count_key(d, key, n):
    """n increments of d[key] (this process its only writer)."""
    for _ in range(n):
        d[key] = d[key] + 1


def locked_count(url, dname, lname, n):
    """n increments of d["n"] under a lock, on the store at url (a path:
    local; an http:// URL: remote)."""
    store = atrium.connect(url)
    d = atrium.Dict(name=dname, store=store)
    lock = atrium.Lock(name=lname, store=store)
    for _ in range(n):
        with lock:
            d["n"] = d["n"] + 1


def consume_done(url, qname, n):
    store = atrium.connect(url)
    q = atrium.JoinableQueue(name=qname, store=store)
    for _ in range(n):
        q.get(timeout=60)
        q.task_done()


def hold_and_lease(url, lname, qname, lease, ready):
    """Takes the lock and two leased items, says so, and sleeps (to be
    killed with SIGKILL)."""
    store = atrium.connect(url, lease_ttl=lease)
    lock = atrium.Lock(name=lname, store=store)
    lock.acquire()
    q = atrium.Queue(name=qname, store=store)
    held = q.get_leased_many(2, timeout=30, lease=lease)
    assert len(held) == 2
    ready.set()
    time.sleep(600)


def attach_and_fill(path, name, value):
    from atrium import shared_memory
    atrium.connect(path)  # (a spawned child's own objects: its default store)
    sm = shared_memory.SharedMemory(name)
    for i in range(len(sm.buf)):
        sm.buf[i] = value
    sm.close()


def shareable_child(sl):
    sl[0] = sl[0] + 1
    sl[1] = "dos"  # (a str item keeps its room: at most 8 bytes here)


@both
class _Dicts:

    def test_mapping(self):
        d = atrium.Dict({1: "one"}, store=self.store, x=[1, 2])
        ref = {1: "one", "x": [1, 2]}
        ops = [
            lambda m: m.__setitem__("s", "str"),
            lambda m: m.__setitem__((1, "t"), {"nested": (1, 2)}),
            lambda m: m.__setitem__(b"\x00b", b"bytes"),
            lambda m: m.__setitem__(2.5, Point(3)),
            lambda m: m.__setitem__(Point(1), {3, 4}),
            lambda m: m.__setitem__("$:looks encoded", float("nan") != 0),
            lambda m: m.__setitem__("$atrium", "pickle"),
            lambda m: m.__setitem__("", None),
            lambda m: m.__setitem__("a/b%c d", 2 ** 70),
            lambda m: m.update({"u1": 1}, u2=(2,)),
            lambda m: m.update([("u3", 3)]),
        ]
        for op in ops:
            op(d)
            op(ref)
        self.assertEqual(d.copy(), ref)
        self.assertEqual(d, ref)
        self.assertNotEqual(d, {})
        self.assertEqual(len(d), len(ref))
        self.assertEqual(sorted(map(repr, d.keys())), sorted(map(repr, ref.keys())))
        self.assertEqual(sorted(map(repr, d.values())), sorted(map(repr, ref.values())))
        self.assertEqual(type(d[(1, "t")]["nested"]), tuple)
        self.assertEqual(d[Point(1)], {3, 4})
        # Numbers equal in Python are one key (stored as the int).
        self.assertIn(1.0, d)
        self.assertIn(True, d)
        self.assertEqual(d[1.0], "one")
        self.assertNotIn("nope", d)
        self.assertEqual(d.get("nope", 7), 7)
        self.assertEqual(d.setdefault("s", "other"), "str")
        self.assertEqual(d.setdefault("new", [0]), [0])
        self.assertEqual(d.pop("new"), [0])
        self.assertEqual(d.pop("new", "gone"), "gone")
        with self.assertRaises(KeyError):
            d.pop("new")
        with self.assertRaises(KeyError):
            d["new"]
        with self.assertRaises(KeyError):
            del d["new"]
        with self.assertRaises(TypeError):
            d[[1]] = 1  # unhashable, as a dict says
        with self.assertRaises(TypeError):
            [1] in d
        with self.assertRaises(atrium.AtriumError) as e:
            d[(1,) * 200] = 1
        self.assertEqual(e.exception.name, "EKEY")
        n = len(d)
        k, v = d.popitem()
        self.assertEqual(ref.pop(k), v)
        self.assertEqual(len(d), n - 1)
        self.assertEqual(d.copy(), ref)
        self.assertEqual(str(d), str(d.copy()))
        d.clear()
        self.assertEqual((len(d), d.copy(), list(d)), (0, {}, []))
        with self.assertRaises(KeyError):
            d.popitem()

    def test_keys_in_the_store(self):
        """What C, curl and the dashboard see: str keys as they are, others
        "$:" and their JSON (white-box: the transport's own page)."""
        d = atrium.Dict(store=self.store)
        d["plain"] = {"a": 1}
        d[1] = 1
        d[True] = 2  # the same key as 1
        d[(1, "x")] = 3
        d["$:x"] = 4
        keys = [k for k, _, _ in d._b.page(None, 0)[0]]
        self.assertEqual(keys, ['$:"$:x"', "$:1", '$:{"$atrium":"tuple","items":[1,"x"]}',
                                "plain"])
        self.assertEqual(d[1], 2)
        self.assertEqual(set(map(repr, d)), {"'plain'", "1", "(1, 'x')", "'$:x'"})

    def test_iteration(self):
        d = atrium.Dict(store=self.store)
        n = 250  # more than one page
        d.update(("k%03d" % i, i) for i in range(n))
        self.assertEqual(list(d), ["k%03d" % i for i in range(n)])
        it = iter(d)
        self.assertEqual(next(it), "k000")
        d["k999"] = 1  # seen at the next page
        with self.assertRaises(RuntimeError):
            for _ in it:
                pass

    def test_named_nested_and_pickled(self):
        name = unique("shared")
        a = atrium.Dict({"x": 1}, name=name, store=self.store)
        b = atrium.Dict({"x": 2}, name=name, store=self.store)  # opened: as it is
        self.assertEqual(b["x"], 1)
        b["y"] = 2
        self.assertEqual(a.copy(), {"x": 1, "y": 2})
        self.assertEqual(a, b)
        # A dict and a queue inside a dict (test_dict_proxy_nested's and
        # test_nested_queue's dict parts): they travel as references.
        with atrium.Manager(store=self.store) as m:
            pets = m.dict(ferrets=2, hamsters=4)
            outer = m.dict(pets=pets)
            q = m.Queue()
            outer["q"] = q
            del pets, q
            gc.collect()
            outer["pets"]["marmots"] = 1
            self.assertEqual(outer["pets"].copy(),
                             {"ferrets": 2, "hamsters": 4, "marmots": 1})
            outer["q"].put(456)
            self.assertEqual(outer["q"].get(timeout=10), 456)
        self.store.delete(name, "dict")

    def test_processes(self):
        d = atrium.Dict(store=self.store)
        d["count"] = 0
        n = 300 if LONG else 60
        for method in ("fork", "spawn"):
            ctx = multiprocessing.get_context(method)
            procs = [ctx.Process(target=write_keys, args=(d, "%s%d." % (method, i), n))
                     for i in range(2)]
            procs.append(ctx.Process(target=count_key, args=(d, "count", n)))
            for p in procs:
                p.start()
            for p in procs:
                p.join(120)
                self.assertEqual(p.exitcode, 0)
        self.assertEqual(len(d), 4 * n + 1)
        self.assertEqual(d["count"], 2 * n)
        self.assertEqual(d["spawn1.%d" % (n - 1)], n - 1)

    def test_manager(self):
        with atrium.Manager(store=self.store) as m:
            made = [m.dict(), m.Value("i", 1), m.Array("d", [0.5]), m.Queue(),
                    m.JoinableQueue(), m.Lock(), m.RLock(), m.Semaphore(),
                    m.BoundedSemaphore(2), m.Event(), m.Condition(), m.Barrier(2)]
            ns = m.Namespace(a=1)
            named = m.dict({"kept": True}, name=unique("mgr"))
            v = made[1]
            v.set(v.get() + 1)
            self.assertEqual(v.value, 2)
            ns.b = "two"
            ns._local = 3
            self.assertEqual(str(ns), "Namespace(a=1, b='two')")
            del ns.a
            self.assertFalse(hasattr(ns, "a"))
            names = [o.name for o in made] + [ns._dict.name]
            gc.collect()
            present = pyc.objects(self.path)
            self.assertTrue(set(names) <= present, set(names) - present)
            with self.assertRaises(atrium.AtriumError):
                m.list()
        left = pyc.objects(self.path)
        self.assertEqual(set(names) & left, set())
        self.assertIn(named.name, left)
        self.assertEqual(named["kept"], True)
        self.store.delete(named.name, "dict")


@both
class _Queues:

    def test_joinable(self):
        q = atrium.JoinableQueue(store=self.store)
        self.assertTrue(q.join(0))
        for i in range(3):
            q.put(i)
        self.assertFalse(q.join(0.2))
        for i in range(3):
            self.assertEqual(q.get(timeout=5), i)
            q.task_done()
        self.assertTrue(q.join(5))
        with self.assertRaises(ValueError):
            q.task_done()
        self.assertTrue(q.join(0))
        # Leased items count: an ack is done.
        q.put("x")
        with q.get_leased():
            self.assertFalse(q.join(0))
        self.assertTrue(q.join(0))

    def test_leased(self):
        q = atrium.Queue(store=self.store)
        for i in range(4):
            q.put(("job", i))
        job = q.get_leased(lease=30)
        self.assertEqual((job.item, job.deliveries), (("job", 0), 1))
        self.assertRegex(job.receipt, "^[0-9a-f]{16}$")
        self.assertEqual(q.qsize(), 3)  # a leased item is not waiting
        job.nack()
        again = q.get_leased()
        self.assertEqual((again.item, again.deliveries), (("job", 0), 2))
        again.touch(20)
        again.ack()
        with self.assertRaises(atrium.AtriumError) as e:
            again.ack()
        self.assertEqual(e.exception.name, "ENOTHELD")
        with self.assertRaises(ZeroDivisionError):
            with q.get_leased() as failing:
                1 / 0
        self.assertEqual(q.get_leased().item, failing.item)  # nacked back
        many = q.get_leased_many(10)
        self.assertEqual([x.item for x in many], [("job", 2), ("job", 3)])
        for x in many:
            x.ack()
        with self.assertRaises(queue.Empty):
            q.get_leased(timeout=0.2)
        with self.assertRaises(queue.Empty):
            q.get_leased(False)
        # A delayed nack: back after its delay.
        q.put("later")
        q.get_leased().nack(delay=0.5)
        with self.assertRaises(queue.Empty):
            q.get_leased(False)
        self.assertEqual(q.get_leased(timeout=10).deliveries, 2)

    def test_lease_runs_out_or_is_renewed(self):
        q = atrium.Queue(store=self.store)
        q.put("plain")
        taken = time.monotonic()
        q.get_leased(lease=0.5, renew=False)
        back = q.get_leased(timeout=20, renew=False, lease=0.5)  # after it ran out
        self.assertGreaterEqual(time.monotonic() - taken, 0.45)
        self.assertEqual((back.item, back.deliveries), ("plain", 2))
        with self.assertRaises(atrium.AtriumError):
            time.sleep(1.0)
            back.ack()  # ran out meanwhile
        # renew=True: held while this process lives, past several leases.
        kept = q.get_leased(timeout=20, lease=1.5)
        with self.assertRaises(queue.Empty):
            q.get_leased(timeout=4.0)  # past two leases
        kept.ack()
        self.assertEqual(q.qsize(), 0)

    def test_dead_letter(self):
        dlq = atrium.Queue(name=unique("dead"), store=self.store)
        q = atrium.Queue(store=self.store, max_deliveries=2, dead_letter=dlq.name)
        q.put({"poison": 1})
        q.get_leased().nack()
        q.get_leased().nack()
        with self.assertRaises(queue.Empty):
            q.get_leased(timeout=0.3)
        self.assertEqual(dlq.get(timeout=10), {"poison": 1})
        self.store.delete(dlq.name, "queue")

    def test_kill9_holder_of_lock_and_items(self):
        """A process holding a lock and leased items dies by SIGKILL: the
        others go on (locally at once, remotely once its leases ran out)."""
        lease = 2.0  # (renewed every 0.67 s while the holder lives)
        trials = 10 if LONG else 2
        ctx = multiprocessing.get_context("fork")
        for trial in range(trials):
            lname, qname = unique("k9lock"), unique("k9q")
            lock = atrium.Lock(name=lname, store=self.store)
            q = atrium.Queue(name=qname, store=self.store)
            q.put(("a", trial))
            q.put(("b", trial))
            ready = ctx.Event()
            p = ctx.Process(target=hold_and_lease,
                            args=(self.store.url, lname, qname, lease, ready))
            p.start()
            self.assertTrue(ready.wait(60))
            self.assertFalse(lock.acquire(timeout=0.1))
            with self.assertRaises(queue.Empty):
                q.get_leased(False)
            os.kill(p.pid, signal.SIGKILL)
            p.join(30)
            killed = time.monotonic()
            if self.transport == "local":  # the kernel gave it back
                with self.assertWarns(atrium.AbandonedWarning):
                    self.assertTrue(lock.acquire(timeout=30))
                self.assertTrue(lock.abandoned)
            else:  # its lease ran out
                self.assertTrue(lock.acquire(timeout=30))
            back = q.get_leased_many(2, timeout=30)
            if len(back) < 2:
                back += q.get_leased_many(1, timeout=30)
            waited = time.monotonic() - killed
            self.assertEqual(sorted(x.item for x in back), [("a", trial), ("b", trial)])
            self.assertEqual([x.deliveries for x in back], [2, 2])
            for x in back:
                x.ack()
            lock.release()
            if self.transport == "local":
                self.assertLess(waited, 10)  # at once (a remote one: a lease)
            self.store.delete(lname, "lock")
            self.store.delete(qname, "queue")


class TestCrossLanguage(pyc.LocalMixin, unittest.TestCase):
    """A Python and a C process on one dict (the C process: dict_tool,
    compare-and-set increments through libatrium)."""

    def test_python_and_c_on_one_dict(self):
        n = 2000 if LONG else 300
        name = unique("xdict")
        d = atrium.Dict({"p": 0}, name=name, store=self.store)
        c = subprocess.Popen([DICT_TOOL, "incr", self.path, name, "c", str(n)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(n):  # meanwhile: this process's own keys
            d["p"] = d["p"] + 1
            d["k%d" % i] = [i, "x"]
        out, err = c.communicate(timeout=120)
        self.assertEqual(c.returncode, 0, err)
        self.assertEqual(out.decode().split(), ["done", str(n)])
        self.assertEqual((d["c"], d["p"], len(d)), (n, n, n + 2))
        self.assertIs(type(d["c"]), int)  # C wrote JSON: Python reads an int
        # C reads what Python wrote, and adds to it.
        out = subprocess.run([DICT_TOOL, "incr", self.path, name, "p", "5"],
                             stdout=subprocess.PIPE, check=True, timeout=60).stdout
        self.assertEqual(out.decode().split(), ["done", str(n + 5)])
        self.assertEqual(d["p"], n + 5)
        self.store.delete(name, "dict")


class TestLocalAndRemote(pyc.RemoteMixin, unittest.TestCase):
    """A Python process over HTTP and one local, on the same dict (under
    one lock) and the same JoinableQueue."""

    def test_one_dict_two_transports(self):
        n = 500 if LONG else 100
        dname, lname = unique("ldict"), unique("llock")
        url = "http://127.0.0.1:%d" % self.gw.port
        d = atrium.Dict({"n": 0}, name=dname, store=self.store)
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=locked_count, args=(target, dname, lname, n))
                 for target in (url, self.path)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
            self.assertEqual(p.exitcode, 0)
        self.assertEqual(d["n"], 2 * n)
        local = atrium.Dict(name=dname, store=atrium.connect(self.path))
        self.assertEqual(local.copy(), {"n": 2 * n})
        self.store.delete(dname, "dict")
        self.store.delete(lname, "lock")

    def test_joinable_two_transports(self):
        n = 300 if LONG else 50
        qname = unique("jq")
        local = atrium.JoinableQueue(name=qname, store=atrium.connect(self.path))
        remote = atrium.JoinableQueue(name=qname, store=self.store)
        ctx = multiprocessing.get_context("fork")
        p = ctx.Process(target=consume_done,
                        args=("http://127.0.0.1:%d" % self.gw.port, qname, n))
        p.start()
        for i in range(n):
            local.put(("t", i))
        self.assertTrue(local.join(120))
        self.assertTrue(remote.join(0))
        p.join(60)
        self.assertEqual(p.exitcode, 0)
        with self.assertRaises(ValueError):
            remote.task_done()
        self.store.delete(qname, "queue")


class TestSharedMemory(pyc.LocalMixin, unittest.TestCase):

    def test_zero_copy(self):
        from atrium import shared_memory
        sm = shared_memory.SharedMemory(create=True, size=4096)
        self.assertEqual((sm.size, sm.buf.format, len(sm.buf)), (4096, "B", 4096))
        sm.buf[:3] = b"abc"
        arr = atrium.RawArray("B", 0, name=sm.name)  # the same bytes
        self.assertEqual(arr[:3], [97, 98, 99])
        arr[3] = 100
        self.assertEqual(bytes(sm.buf[:4]), b"abcd")  # no copy to refresh
        self.assertIn("97", pyc.cli(self.path, "get", sm.name))  # C sees it
        for method, value in (("fork", 7), ("spawn", 9)):
            p = multiprocessing.get_context(method).Process(
                target=attach_and_fill, args=(self.path, sm.name, value))
            p.start()
            p.join(60)
            self.assertEqual(p.exitcode, 0)
            self.assertEqual(bytes(sm.buf), bytes([value]) * 4096)
        # A pickled block attaches to the same memory.
        import pickle
        twin = pickle.loads(pickle.dumps(sm))
        twin.buf[0] = 1
        self.assertEqual(sm.buf[0], 1)
        twin.close()
        self.assertIsNone(twin.buf)
        import ctypes
        kept = (ctypes.c_char * 10).from_buffer(sm.buf)  # as numpy would
        sm.close()
        self.assertIsNone(sm.buf)
        self.assertEqual(kept[0], b"\x01")  # the store's memory, still there
        del kept
        sm.unlink()
        with self.assertRaises(FileNotFoundError):
            shared_memory.SharedMemory(sm.name)

    def test_errors_and_lifetime(self):
        from atrium import shared_memory
        name = unique("shm")
        with self.assertRaises(ValueError):
            shared_memory.SharedMemory(name, create=True, size=0)
        with self.assertRaises(ValueError):
            shared_memory.SharedMemory()
        with self.assertRaises(FileNotFoundError):
            shared_memory.SharedMemory(name)
        sm = shared_memory.SharedMemory(name, create=True, size=10)
        with self.assertRaises(FileExistsError):
            shared_memory.SharedMemory(name, create=True, size=10)
        d = atrium.RawArray("d", [1.5, 2.5])  # another type: its bytes
        raw = shared_memory.SharedMemory(d.name)
        import struct
        self.assertEqual(struct.unpack("2d", raw.buf), (1.5, 2.5))
        raw.close()
        sm.close()
        sm.unlink()
        # A generated block is unlinked at its maker's exit.
        code = textwrap.dedent("""
            import atrium
            from atrium import shared_memory
            atrium.connect(%r)
            sm = shared_memory.SharedMemory(create=True, size=8)
            print(sm.name)
        """ % self.path)
        out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             check=True, timeout=60).stdout.decode().strip()
        self.assertTrue(out.startswith("py."))
        self.assertNotIn(out, pyc.objects(self.path))

    def test_shareable_list(self):
        from atrium import shared_memory
        sl = shared_memory.ShareableList([1, "two", 3.0])
        p = multiprocessing.get_context("spawn").Process(target=shareable_child,
                                                         args=(sl,))
        p.start()
        p.join(60)
        self.assertEqual(p.exitcode, 0)
        self.assertEqual(list(sl), [2, "dos", 3.0])
        sl.shm.close()
        sl.shm.unlink()


class TestRemoteSharedMemory(pyc.RemoteMixin, unittest.TestCase):

    def test_needs_local(self):
        from atrium import shared_memory
        with self.assertRaises(atrium.AtriumError) as e:
            shared_memory.SharedMemory(create=True, size=8, store=self.store)
        self.assertEqual(e.exception.name, "ENOTLOCAL")
        self.assertIn("local transport", str(e.exception))


if __name__ == "__main__":
    pyc.main()
