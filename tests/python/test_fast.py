"""The Python client's two local paths: atrium._fast (the C extension, the
default when built) and ctypes (the fallback; ATRIUM_NO_FAST=1). The
extension is the one of this build (beside its libatrium, the sanitizer
build's under SANITIZER=); both paths give the same answers
(probe_paths.py, run on each), are interrupted by Ctrl-C in a blocking
acquire, count exactly between threads and processes, and a wait that
cannot be served at once sleeps rather than spins."""
import importlib.machinery
import json
import os
import subprocess
import sys
import textwrap
import threading
import unittest

import pyc
from pyc import atrium, gw

EXT = os.path.join(gw.BUILD, "python",
                   "_fast" + importlib.machinery.EXTENSION_SUFFIXES[0])
PROBE = os.path.join(pyc.HERE, "probe_paths.py")
# Probe answers whose messages are Python's own wording for a bad call
# (a closure's name, a C method's): only the exception's type must agree.
TYPE_ONLY = {"acquire 3 args", "acquire bad keyword", "acquire timeout='x' held",
             "sem release bad"}


def run_python(code_or_path, no_fast, store, *args, **kw):
    env = dict(os.environ, ATRIUM_STORE=store)
    env.pop("ATRIUM_NO_FAST", None)
    if no_fast:
        env["ATRIUM_NO_FAST"] = "1"
    argv = [sys.executable] + ([code_or_path] if code_or_path.endswith(".py")
                               else ["-c", code_or_path])
    return subprocess.run(argv + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120, **kw)


class Paths(pyc.LocalMixin, unittest.TestCase):

    def test_the_build_s_extension_is_used(self):
        """make builds the extension; the package loads it from beside the
        library it loaded (this build's), and the hot paths are its."""
        self.assertTrue(os.path.exists(EXT), EXT)
        ext = atrium._local.ext()
        self.assertIsNotNone(ext)
        self.assertEqual(os.path.realpath(ext.__file__), os.path.realpath(EXT))
        lock = atrium.Lock(store=self.store)
        self.assertIsInstance(lock._b.c, ext.Lock)
        self.assertEqual(type(lock.acquire).__name__, "builtin_function_or_method")
        v = atrium.Value("q", store=self.store)
        self.assertIsInstance(v._v, ext.Value)
        self.assertIsInstance(atrium.SharedValue.__dict__["value"], ext.ValueAttr)
        code = ("import atrium; l = atrium.Lock(); "
                "print(atrium._local.ext(), type(l.acquire).__name__)")
        out = run_python(code, True, self.path)
        self.assertEqual((out.returncode, out.stdout.split()), (0, ["None", "function"]),
                         out.stderr)

    def test_both_paths_answer_the_same(self):
        answers = []
        for no_fast in (False, True):
            store = gw.fresh_store()
            try:
                p = run_python(PROBE, no_fast, store)
            finally:
                gw.remove(store)
            self.assertEqual(p.returncode, 0, p.stderr)
            answers.append(json.loads(p.stdout))
        fast, slow = answers
        self.assertEqual((fast.pop("ext"), slow.pop("ext")), (True, False))
        self.assertEqual(sorted(fast), sorted(slow))
        for key in sorted(fast):
            with self.subTest(key=key):
                a, b = fast[key], slow[key]
                if key in TYPE_ONLY:
                    a, b = a[:2], b[:2]
                self.assertEqual(a, b)
        # And the answers are multiprocessing's.
        self.assertEqual(fast["acquire"], ["ok", "bool", "True"])
        self.assertEqual(fast["acquire timeout=0.05"], ["ok", "bool", "False"])
        self.assertEqual(fast["release again"][:2], ["raise", "ValueError"])
        self.assertEqual(fast["rlock release unowned"][:2], ["raise", "AssertionError"])
        self.assertEqual(fast["release by another thread"], ["ok", "list", "['ValueError']"])
        self.assertEqual(fast["abandoned acquire"], ["ok", "tuple", "(True, True)"])
        self.assertEqual(fast["abandoned warning"],
                         ["ok", "list", "[('AbandonedWarning', 'probe_paths.py', True)]"])
        self.assertEqual(fast["next acquire"], ["ok", "tuple", "(True, False, None)"])
        self.assertEqual(fast["get_lock adds"], ["ok", "tuple", "(106, 106)"])
        self.assertEqual(fast["forked child"], ["ok", "tuple", "(0, 1106)"])
        self.assertEqual(fast["set B 256"][:2] + fast["set B 256"][3:],
                         ["raise", "OverflowError", "ERANGE"])
        self.assertEqual(fast["sem over-release"][:2], ["raise", "ValueError"])

    def test_ctrl_c_in_a_blocking_acquire(self):
        for no_fast in (False, True):
            with self.subTest(no_fast=no_fast):
                name = "fast.held.%d" % no_fast
                lock = atrium.Lock(name=name, store=self.store)
                self.assertTrue(lock.acquire())
                env = dict(os.environ)
                env.pop("ATRIUM_NO_FAST", None)
                if no_fast:
                    env["ATRIUM_NO_FAST"] = "1"
                pyc.ctrl_c_in_acquire(self, self.path, name, env)
                lock.release()
                self.store.delete(name, "lock")

    def test_threads_count_exactly(self):
        """Threads of one process on one lock: a waiting thread spins and
        sleeps without the GIL, so the holder (needing it) goes on."""
        v = atrium.Value("q", store=self.store)
        lock = v.get_lock()
        n = 2000 if os.environ.get("ATRIUM_CHECK_LONG") != "1" else 20000

        def work():
            for _ in range(n):
                with lock:
                    v.value += 1
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(v.value, 4 * n)

    def test_a_long_wait_sleeps(self):
        """A blocking acquire spins a few microseconds at most, then
        sleeps: 0.5 s of waiting costs next to no CPU."""
        lock = atrium.Lock(name="fast.sleeper", store=self.store)
        code = textwrap.dedent("""
            import resource, time, atrium
            lock = atrium.Lock(name="fast.sleeper")
            t = time.monotonic()
            got = lock.acquire(timeout=0.5)
            took = time.monotonic() - t
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            print(got, took, cpu.ru_utime + cpu.ru_stime)
            """)
        lock.acquire()
        try:
            idle = run_python("import resource, atrium; r = resource.getrusage("
                              "resource.RUSAGE_SELF); print(r.ru_utime + r.ru_stime)",
                              False, self.path)
            p = run_python(code, False, self.path)
        finally:
            lock.release()
            self.store.delete("fast.sleeper", "lock")
        self.assertEqual(p.returncode, 0, p.stderr)
        got, took, cpu = p.stdout.split()
        self.assertEqual(got, "False")
        self.assertGreaterEqual(float(took), 0.49)
        # The interpreter's start is most of it; a spinning wait would add
        # the whole half second.
        self.assertLess(float(cpu) - float(idle.stdout), 0.2)

    def test_processes_on_one_lock(self):
        """Both paths at once, in processes of their own, on one value
        and its get_lock(): exact counts."""
        name = "fast.shared"
        v = atrium.Value("q", name=name, store=self.store)
        n = 3000
        code = textwrap.dedent("""
            import sys, atrium
            v = atrium.Value("q", name=%r)
            lock = v.get_lock()
            for _ in range(%d):
                with lock:
                    v.value += 1
            """ % (name, n))
        procs = []
        for no_fast in (False, True, False, True):
            env = dict(os.environ, ATRIUM_STORE=self.path)
            env.pop("ATRIUM_NO_FAST", None)
            if no_fast:
                env["ATRIUM_NO_FAST"] = "1"
            procs.append(subprocess.Popen([sys.executable, "-c", code], env=env))
        self.assertEqual([p.wait(120) for p in procs], [0] * 4)
        self.assertEqual(v.value, 4 * n)
        self.store.delete(name, "value")
        self.store.delete(name + ".lock", "lock")


if __name__ == "__main__":
    pyc.main()
