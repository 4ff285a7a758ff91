"""Shared helpers of the Python client's tests: the client from the
checkout on the build's libatrium, a fresh store per test class, a real
atriumd (tests/gateway/gw.py) for the remote transport, and both
transports as mixins, so that one test body runs on each.

Importing this module sets PYTHONPATH and ATRIUM_LIB in os.environ, so
child processes (spawn, subprocess) load the same client and library. A
sanitizer build's libatrium needs the sanitizer runtimes loaded first:
then the test script runs itself again with them in LD_PRELOAD.
"""
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
import gw  # noqa: E402  (the daemon helpers)

CLIENT = os.path.join(gw.ROOT, "clients", "python")
LIB = os.path.join(gw.BUILD, "libatrium.so")


def _sanitizer_runtimes():
    """The sanitizer runtimes LIB links, to preload (none: [])."""
    try:
        out = subprocess.run(["ldd", LIB], stdout=subprocess.PIPE, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    paths = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].startswith(("libasan", "libubsan")) and len(parts) > 2:
            paths.append(parts[2])
    # ASan must come first.
    return sorted(paths, key=lambda p: "libasan" not in p)


os.environ["PYTHONPATH"] = CLIENT + os.pathsep + os.environ.get("PYTHONPATH", "")
os.environ["ATRIUM_LIB"] = LIB
if "ATRIUM_TEST_PRELOADED" not in os.environ:
    _pre = _sanitizer_runtimes()
    if _pre:
        os.environ["ATRIUM_TEST_PRELOADED"] = "1"
        os.environ["LD_PRELOAD"] = " ".join(_pre)
        # CPython keeps its memory to the end: leaks are its, not ours.
        os.environ["ASAN_OPTIONS"] = "detect_leaks=0"
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable] + sys.argv)
sys.path.insert(0, CLIENT)

import atrium  # noqa: E402


def cli(store_path, *args, check=True, input=None):
    """Runs the atrium CLI (a C program on libatrium) on store_path."""
    p = subprocess.run([gw.ATRIUM, "--store", store_path] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                       input=input)
    if check and p.returncode != 0:
        raise AssertionError("atrium %s: %s" % (args, p.stderr.decode()))
    return p.stdout.decode().strip()


def exists(store_path, name):
    """Whether the store has an object called name (the CLI's get)."""
    return subprocess.run([gw.ATRIUM, "--store", store_path, "get", name],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=60).returncode == 0


def objects(store_path):
    """Names of the objects in the store, read by the CLI (whose info
    must not be asked about an empty store under UBSan: it passes qsort
    a null pointer)."""
    out = cli(store_path, "info")
    lines = out.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("NAME ")]
    return {line.split()[0] for line in lines[heads[0] + 1:]} if heads else set()


def ctrl_c_in_acquire(test, store_url, name, env=None):
    """Runs a child that blocks in the acquire of the lock called name
    (which the caller holds) on store_url, sends it SIGINT 0.3 s into
    its wait (by the child's own clock: CLOCK_MONOTONIC is the host's),
    and asserts that KeyboardInterrupt ended the wait at once: its line
    within 0.5 s, where a missed signal would wait for the end of a 1 s
    slice, 0.7 s later (the child's exit, slow under the sanitizers, is
    not counted). env: the child's environment (default: this one)."""
    import select
    import signal
    import textwrap
    import time
    code = textwrap.dedent("""
        import sys, time, atrium
        lock = atrium.Lock(name=%r, store=atrium.connect(%r))
        print("waiting", time.monotonic(), flush=True)
        try:
            lock.acquire()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
        """ % (name, store_url))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         text=True, env=env)
    try:
        word, started = p.stdout.readline().split()
        test.assertEqual(word, "waiting")
        time.sleep(max(0.0, float(started) + 0.3 - time.monotonic()))
        t = time.monotonic()
        p.send_signal(signal.SIGINT)
        # (A child that never ends its wait fails here, not at run.sh's
        # timeout.)
        ready = select.select([p.stdout], [], [], 10)[0]
        line = p.stdout.readline().strip() if ready else "(still waiting)"
        took = time.monotonic() - t
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    test.assertEqual((p.returncode, line), (3, "interrupted"))
    test.assertLess(took, 0.5)  # at once, not at the end of a slice


class LocalMixin:
    """The local transport, on a store of the class's own."""
    transport = "local"

    @classmethod
    def setUpClass(cls):
        cls.path = gw.fresh_store()
        cls.store = atrium.connect(cls.path)

    @classmethod
    def tearDownClass(cls):
        gw.remove(cls.path)


class RemoteMixin:
    """The remote transport: a real atriumd on a store of the class's own."""
    transport = "remote"
    gateway_args = ()

    @classmethod
    def setUpClass(cls):
        cls.gw = gw.Gateway(*cls.gateway_args).start()
        cls.path = cls.gw.store
        cls.store = atrium.connect("http://127.0.0.1:%d" % cls.gw.port)

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()


def both(cls):
    """Makes cls (a mixin of tests using self.store and self.path) into
    two TestCases, Local<name> and Remote<name>, in cls's module."""
    mod = sys.modules[cls.__module__]
    for mixin in (LocalMixin, RemoteMixin):
        name = mixin.transport.capitalize() + cls.__name__.lstrip("_")
        case = type(name, (mixin, cls, unittest.TestCase), {})
        case.__module__ = cls.__module__
        case.__qualname__ = name
        setattr(mod, name, case)
    return cls


main = gw.main
