#!/usr/bin/env python3
"""py_bench.py - the Python client (clients/python) beside its peers, in
the same run. Prints `name: value unit` lines, as mp_bench.py does, whose
calibration and process pairs it uses:

  py_value_add_2p      atrium.Value('q').add(1) from two processes at once
                       (local transport; aggregate ops/s)
                       (its peer, mp_value_add_2p, is mp_bench.py's:
                       multiprocessing.Value('q') += 1 under get_lock(),
                       two processes, in the same make bench run)
  py_queue_tuple_2p    atrium.Queue, one producer and one consumer process,
                       small tuples (items/s)
  mp_queue_tuple_2p    its peer: multiprocessing.Queue, the same tuples
  py_lock_1p           atrium.Lock(): acquire() + release() from one
                       process, uncontended (pairs per CPU second of the
                       loop's thread; local transport)
  mp_lock_1p           its peer: multiprocessing.Lock(), the same loop;
                       the ratio py_lock_1p / mp_lock_1p is printed after
  py_value_getlock_2p  atrium.Value('q'): value += 1 under get_lock() from
                       two processes (ops/s)
  mp_value_getlock_2p  its peer (and py_value_add_2p's): mp_bench.py's
                       mp_value_add_2p, multiprocessing.Value('q') += 1
                       under get_lock() from two processes, in this run
  py_http_value_add_c1 atrium.Value over HTTP (atriumd): add(1) round
                       trips on one connection (ops/s)
  webdis_incr_c1_py    its peer: http.client GET /INCR/k against Webdis +
                       Redis, one connection (ops/s)

The ratios to the targets of issue 12 follow, each from figures of this
run, and a line saying whether the local transport ran on the C extension
(atrium._fast) or on ctypes (ATRIUM_NO_FAST=1, or not built).

The servers (atriumd on its own store, Redis and Webdis on free loopback
ports, in a temp dir) are started here and stopped on exit.
  py_bench.py BUILD [NAME...]
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mp_bench  # noqa: E402  (calibrate, run_pair, REPEATS)

ROOT = os.path.dirname(HERE)
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
os.environ.setdefault("ATRIUM_LIB", os.path.join(BUILD, "libatrium.so"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
os.environ["PYTHONPATH"] = os.path.join(ROOT, "clients", "python")
import atrium  # noqa: E402

mp = mp_bench.mp
ITEM = (12345, "resize", 2.5)
QUEUE_BOUND = 100000  # items: the bench store holds them many times over
STORE = "/dev/shm/atrium-pybench-%d" % os.getpid()


def add_child(value, count, barrier):
    barrier.wait()
    add = value.add
    for _ in range(count):
        add(1)


def produce(q, count, barrier):
    barrier.wait()
    put = q.put
    for _ in range(count):
        put(ITEM)


def consume(q, count, barrier):
    barrier.wait()
    get = q.get
    for _ in range(count):
        if get() != ITEM:
            raise SystemExit("py_bench: wrong item")


def py_value_add_2p(count):
    v = atrium.RawValue("q", store=atrium.connect(STORE))
    elapsed = mp_bench.run_pair([(add_child, (v,)), (add_child, (v,))], count)
    if v.value != 2 * count:
        raise SystemExit("py_bench: %d adds made %d" % (2 * count, v.value))
    return elapsed


def lock_loop(lock, count):
    # The thread's CPU time, not the wall clock's: a one-process loop of
    # 30 ns steps on a shared machine otherwise measures the other
    # programs' turns (both peers run this same loop).
    acquire, release = lock.acquire, lock.release
    start = time.thread_time()
    for _ in range(count):
        acquire()
        release()
    return time.thread_time() - start


def py_lock_1p(count):
    return lock_loop(atrium.Lock(store=atrium.connect(STORE)), count)


def mp_lock_1p(count):
    return lock_loop(mp.Lock(), count)


def py_value_getlock_2p(count):
    v = atrium.Value("q", store=atrium.connect(STORE))
    v.get_lock()  # made before the children start: both open it
    elapsed = mp_bench.run_pair([(mp_bench.value_add_child, (v,)),
                                 (mp_bench.value_add_child, (v,))], count)
    if v.value != 2 * count:
        raise SystemExit("py_bench: %d locked adds made %d" % (2 * count, v.value))
    return elapsed


def py_queue_tuple_2p(count):
    q = atrium.Queue(QUEUE_BOUND, store=atrium.connect(STORE))
    return mp_bench.run_pair([(produce, (q,)), (consume, (q,))], count)


def mp_queue_tuple_2p(count):
    q = mp.Queue()
    return mp_bench.run_pair([(produce, (q,)), (consume, (q,))], count)


# ------------------------------------------------------------ over HTTP

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Servers:
    """atriumd, Redis and Webdis as children, in a temp dir."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="atrium-pybench.")
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             **kw)
        self.procs.append(p)
        return p

    def wait(self, what, fn):
        for _ in range(100):
            try:
                if fn():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("py_bench: %s did not start" % what)

    def atriumd(self):
        log = open(os.path.join(self.tmp, "atriumd.log"), "w+")
        self.start([os.path.join(BUILD, "atriumd"), "--store", STORE + "-gw",
                    "--listen", "127.0.0.1:0", "--events",
                    "ipc://" + os.path.join(self.tmp, "events.ipc")], stderr=log)
        ready = re.compile(r"listening on http://127\.0\.0\.1:(\d+),")
        found = []

        def up():
            log.seek(0)
            m = ready.search(log.read())
            if m:
                found.append(int(m.group(1)))
            return bool(m)
        self.wait("atriumd", up)
        return "http://127.0.0.1:%d" % found[0]

    def webdis(self):
        for tool in ("redis-server", "webdis"):
            if not shutil.which(tool):
                raise SystemExit("py_bench: %s not found (make bench installs it)" % tool)
        rport, wport = free_port(), free_port()
        self.start(["redis-server", "--bind", "127.0.0.1", "--port", str(rport),
                    "--save", "", "--appendonly", "no", "--dir", self.tmp],
                   stderr=subprocess.DEVNULL)
        conf = os.path.join(self.tmp, "webdis.json")
        with open(conf, "w") as f:
            json.dump({"redis_host": "127.0.0.1", "redis_port": rport, "redis_auth": None,
                       "http_host": "127.0.0.1", "http_port": wport,
                       "threads": os.cpu_count(), "daemonize": False, "database": 0,
                       "verbosity": 1, "logfile": os.path.join(self.tmp, "webdis.log")}, f)
        self.start(["webdis", conf], stderr=subprocess.DEVNULL)

        def up():
            c = http.client.HTTPConnection("127.0.0.1", wport, timeout=2)
            c.request("GET", "/PING")
            return c.getresponse().status == 200
        self.wait("Webdis", up)
        return wport

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
        for path in (STORE + "-gw",):
            if os.path.exists(path):
                os.unlink(path)


def timed_loop(fn):
    def run(count):
        start = time.perf_counter()
        fn(count)
        return time.perf_counter() - start
    return run


def http_cases(servers):
    url = servers.atriumd()
    v = atrium.RawValue("q", store=atrium.connect(url))

    def adds(count):
        add = v.add
        for _ in range(count):
            add(1)
    wport = servers.webdis()
    conn = http.client.HTTPConnection("127.0.0.1", wport)

    def incrs(count):
        for _ in range(count):
            conn.request("GET", "/INCR/k")
            resp = conn.getresponse()
            if resp.status != 200:
                raise SystemExit("py_bench: Webdis answered %d" % resp.status)
            resp.read()
    return [("py_http_value_add_c1", timed_loop(adds), 1, "ops/s"),
            ("webdis_incr_c1_py", timed_loop(incrs), 1, "ops/s")]


CASES = [
    ("py_value_add_2p", py_value_add_2p, 2, "ops/s"),
    ("py_queue_tuple_2p", py_queue_tuple_2p, 1, "items/s"),
    ("mp_queue_tuple_2p", mp_queue_tuple_2p, 1, "items/s"),
    ("py_lock_1p", py_lock_1p, 1, "pairs/s"),
    ("mp_lock_1p", mp_lock_1p, 1, "pairs/s"),
    ("py_value_getlock_2p", py_value_getlock_2p, 2, "ops/s"),
    ("mp_value_getlock_2p", mp_bench.mp_value_add_2p, 2, "ops/s"),
]
# Ratios printed here, for peers measured in this script (issue 12).
RATIOS = [("py_value_getlock_2p", "mp_value_getlock_2p", 1.5),
          ("py_lock_1p", "mp_lock_1p", 1.0),
          ("py_value_add_2p", "mp_value_getlock_2p", 5.0),
          ("py_queue_tuple_2p", "mp_queue_tuple_2p", 2.0),
          ("py_http_value_add_c1", "webdis_incr_c1_py", 1.2)]


def main(argv):
    target = float(os.environ.get("ATRIUM_BENCH_TIME") or 1.2)
    wanted = set(argv[2:])
    servers = Servers()
    results = {}
    try:
        http = not wanted or wanted & {"py_http_value_add_c1", "webdis_incr_c1_py"}
        cases = CASES + (http_cases(servers) if http else [])
        for name, fn, per_count, unit in cases:
            if wanted and name not in wanted:
                continue
            count = mp_bench.calibrate(fn, target)
            best = max(per_count * count / fn(count) for _ in range(mp_bench.REPEATS))
            results[name] = best
            print("%s: %.0f %s" % (name, best, unit), flush=True)
        for mine, peer, target in RATIOS:
            if mine in results and peer in results:
                print("# %s / %s = %.2f (target >= %g)"
                      % (mine, peer, results[mine] / results[peer], target))
        ext = atrium._local.ext()
        print("# local transport: %s" % ("atrium._fast (%s)" % ext.__file__ if ext
                                         else "ctypes"))
    finally:
        servers.stop()
        if os.path.exists(STORE):
            os.unlink(STORE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
