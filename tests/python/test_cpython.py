"""CPython's own multiprocessing tests against the atrium client.

Python's test suite (Debian: libpython3.11-testsuite) has the tests of
multiprocessing in test/_test_multiprocessing.py, as classes that take
their factories from a mixin (ProcessesMixin binds multiprocessing.Value
and so on). Here a mixin binds atrium's factories instead, and each test
class runs under fork and spawn, on the local and the remote transport.
Nothing of CPython's code is copied: the module is imported from the
installed test suite.

make check runs each class under one start method, make check-long
(ATRIUM_CHECK_LONG=1) under both: a spawned child starts a new
interpreter that imports CPython's test module again, which is most of
this file's time (tests/python/test_client.py starts the client's own
processes with spawn in make check).

Run: _TestValue, _TestArray, _TestQueue (JoinableQueue's task_done and
join included), _TestLock, _TestSemaphore, _TestCondition, _TestEvent,
_TestBarrier, the manager's _TestContainers (dict, Namespace) and
TestSyncManagerTypes (every type a manager makes, passed to a child).
Every test that cannot apply is skipped below with its reason, and the
closing lines give the counts.

The mixin is a ProcessesMixin whose factories are atrium's, so that the
tests that check multiprocessing's own behaviour for processes run too
(_TestCondition.test_wait_result sends SIGINT into a Condition.wait); the
manager classes get a ManagerMixin's properties bound to atrium.Manager()
(and TestSyncManagerTypes its manager_class).
"""
import operator
import os
import sys
import unittest

import pyc
from pyc import atrium

try:
    import test._test_multiprocessing as cpython
except ImportError:
    # Debian's python3 has the suite when libpython3.X-testsuite is
    # installed; another interpreter on the PATH may lack it.
    debian = "/usr/bin/python%d.%d" % sys.version_info[:2]
    if os.path.exists(debian) and os.path.realpath(sys.executable) != os.path.realpath(debian):
        os.execv(debian, [debian] + sys.argv)
    print("test_cpython: Python's test suite is missing "
          "(Debian: libpython3.11-testsuite, installed by deploy/install-deps.sh)")
    print("0 passed, 1 failed")
    sys.exit(1)
import multiprocessing  # noqa: E402

STDLIB = "exercises the standard library's own multiprocessing.Queue, not " \
         "the mixin's factory"
NO_LIST = "uses Manager().list(): the core has no list kind (atrium's " \
          "list() raises AtriumError ENOKIND)"
SKIPS = {
    ("_TestQueue", "test_no_import_lock_contention"): STDLIB,
    ("_TestQueue", "test_timeout"): STDLIB,
    ("_TestQueue", "test_closed_queue_put_get_exceptions"): STDLIB +
        " (and JoinableQueue, issue 11); tests/python/test_client.py checks "
        "that a closed atrium Queue raises ValueError 'is closed'",
    ("_TestQueue", "test_queue_feeder_donot_stop_onexc"):
        "multiprocessing's feeder thread: its put() pickles later, in the "
        "feeder, and logs a failure; atrium's put() stores the item at once "
        "and raises it to the caller",
    ("_TestQueue", "test_queue_feeder_on_queue_feeder_error"):
        "multiprocessing's feeder thread internals (a subclass of "
        "multiprocessing.queues.Queue and its _on_queue_feeder_error hook)",
    ("_TestContainers", "test_list"): NO_LIST,
    ("_TestContainers", "test_list_iter"): NO_LIST,
    ("_TestContainers", "test_list_proxy_in_list"): NO_LIST,
    ("_TestContainers", "test_dict_proxy_nested"): NO_LIST + " (its dict "
        "part runs in tests/python/test_containers_py.py)",
    ("_TestContainers", "test_nested_queue"): NO_LIST + " (a queue in a "
        "dict runs in tests/python/test_containers_py.py)",
    ("TestSyncManagerTypes", "test_list"): NO_LIST,
    ("TestSyncManagerTypes", "test_lock"):
        "a manager's Lock is a threading.Lock in the manager process that "
        "anyone may release; atrium's is held by the thread that took it (a "
        "child that exits holding it gives it back, abandoned, and the "
        "parent's release raises ValueError, not RuntimeError)",
    ("TestSyncManagerTypes", "test_pool"):
        "a manager's Pool is a proxy to a pool in the manager process, "
        "passed to the child; atrium's Manager().Pool is the standard "
        "library's Pool, which cannot be pickled",
}
CLASSES = ("_TestValue", "_TestArray", "_TestQueue", "_TestLock",
           "_TestSemaphore", "_TestCondition", "_TestEvent", "_TestBarrier",
           "_TestContainers", "TestSyncManagerTypes")
MANAGER_CLASSES = ("_TestContainers",)
# make check: every class under fork, but these under spawn (a child
# process per test, everything pickled: the stricter); make check-long:
# every class under both.
SPAWN_FIRST = ("TestSyncManagerTypes",)
LONG = pyc.gw.long_run()
METHODS = ("fork", "spawn")


class AtriumMixin(cpython.ProcessesMixin):
    """The factories under test are atrium's; the rest (Process, Pipe,
    Pool ...) is the standard library's, as `import atrium as
    multiprocessing` gives it."""
    TYPE = "processes"
    Lock = staticmethod(atrium.Lock)
    RLock = staticmethod(atrium.RLock)
    Semaphore = staticmethod(atrium.Semaphore)
    BoundedSemaphore = staticmethod(atrium.BoundedSemaphore)
    Condition = staticmethod(atrium.Condition)
    Event = staticmethod(atrium.Event)
    Barrier = staticmethod(atrium.Barrier)
    Value = staticmethod(atrium.Value)
    Array = staticmethod(atrium.Array)
    RawValue = staticmethod(atrium.RawValue)
    RawArray = staticmethod(atrium.RawArray)
    Queue = staticmethod(atrium.Queue)
    JoinableQueue = staticmethod(atrium.JoinableQueue)
    start_method = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.old_method = multiprocessing.get_start_method(allow_none=True)
        multiprocessing.set_start_method(cls.start_method, force=True)

    @classmethod
    def tearDownClass(cls):
        multiprocessing.set_start_method(cls.old_method, force=True)
        super().tearDownClass()


class AtriumManagerMixin(AtriumMixin):
    """A ManagerMixin's factories, bound to an atrium.Manager() of the
    class's store."""
    TYPE = "manager"
    for _f in ("Queue", "JoinableQueue", "Lock", "RLock", "Semaphore",
               "BoundedSemaphore", "Condition", "Event", "Barrier", "Value",
               "Array", "list", "dict", "Namespace"):
        locals()[_f] = property(operator.attrgetter("manager." + _f))
    del _f

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager = atrium.Manager()

    @classmethod
    def tearDownClass(cls):
        cls.manager.shutdown()
        cls.manager = None
        super().tearDownClass()


def _skip(reason):
    @unittest.skip(reason)
    def skipped(self):
        pass
    return skipped


# The classes, at module level under fixed names: a spawned child imports
# this file again and must find the class its target method belongs to.
for _transport in (pyc.LocalMixin, pyc.RemoteMixin):
    for _method in METHODS:
        for _base_name in CLASSES:
            if not LONG and (_method == "spawn") != (_base_name in SPAWN_FIRST):
                continue
            _base = getattr(cpython, _base_name)
            _name = "%s_%s%s" % (_transport.transport.capitalize(),
                                 _method.capitalize(), _base_name)
            _body = {"start_method": _method}
            _mixin = AtriumManagerMixin if _base_name in MANAGER_CLASSES \
                else AtriumMixin
            if _base_name == "TestSyncManagerTypes":
                _body["manager_class"] = atrium._managers.SyncManager
            for (_cls, _test), _reason in SKIPS.items():
                if _cls == _base_name:
                    _body[_test] = _skip(_reason)

            def _setup(cls, transport=_transport, mixin=_mixin):
                transport.setUpClass.__func__(cls)
                mixin.setUpClass.__func__(cls)

            def _teardown(cls, transport=_transport, mixin=_mixin):
                mixin.tearDownClass.__func__(cls)
                transport.tearDownClass.__func__(cls)
            _body["setUpClass"] = classmethod(_setup)
            _body["tearDownClass"] = classmethod(_teardown)
            _case = type(_name, (_base, _transport, _mixin, unittest.TestCase),
                         _body)
            _case.__module__ = __name__
            _case.__qualname__ = _name
            globals()[_name] = _case
del _case  # (or the loader would find the last class twice)


def main():
    loader = unittest.defaultTestLoader
    suite = loader.loadTestsFromModule(sys.modules[__name__])
    result = pyc.gw.run(suite)
    bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    ran = result.testsRun - skipped
    print("CPython's multiprocessing tests on atrium: %d run, %d passed, %d skipped"
          % (ran, ran - bad, skipped))
    print("%d passed, %d failed" % (ran - bad, bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
