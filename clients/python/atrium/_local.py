"""The local transport: libatrium through ctypes, on the store file itself.

Every function used is declared once, with its argument and result types,
from include/atrium.h. A scalar passed by value (atr_scalar, a union of
int64, uint64 and double) is declared as a uint64 carrying its bits: the
union is one 8-byte integer-class word in the x86-64 and AArch64 calling
conventions, and ctypes cannot pass unions by value portably. Pointers to
scalars are void pointers to a c_int64, c_uint64 or c_double chosen by the
type's class, so results need no union.

Two ways in, measured (one process, atr_value_add, calls/s): a declared
CDLL function releases the GIL and converts every argument (1.3M); the
same function through PyDLL, keeping the GIL, with arguments that are
ctypes objects already and no argtypes to check, 3.0M. Hence the hot
paths (value get, set and add; a queue's first, non-waiting try) use
`fast`, the PyDLL functions without argtypes: the calls never wait for
long (lock-free, or a short robust lock), so holding the GIL is right, and
each argument is passed as the C type the prototype has (c_int64 for an
int scalar's word, c_size_t, c_double), never as a bare int. Everything
that may wait releases the GIL (the declared CDLL functions).

A call that may wait runs in slices of SLICE seconds, so Ctrl-C (any
signal whose handler raises) interrupts it within a slice: Python runs
signal handlers only between foreign calls.

Faster still: atrium._fast, a C extension (clients/python/atrium/_fast.c)
bound to the same library, does values (.value, add), locks and
semaphores in C, with no ctypes call at all. It is found by ext() (beside
the library in a build, else in the package); without it, or with
ATRIUM_NO_FAST=1 in the environment, everything goes through ctypes as
above.
"""
import ctypes
import importlib.machinery
import importlib.util
import os
import struct
import threading
import time
from ctypes import (POINTER, Structure, byref, c_char, c_char_p, c_double,
                    c_int, c_int64, c_size_t, c_ubyte, c_uint32, c_uint64,
                    c_void_p, string_at)
from operator import attrgetter

from ._codec import EMPTY, decode
from ._errors import AtriumError, std

SLICE = 0.1
NAME_MAX = 64
CREATE, EXCL = 1, 2
VALUE, ARRAY, QUEUE = 1, 2, 3
TINT, TUINT, TFLOAT = 1, 2, 3
_M64 = (1 << 64) - 1
_ZERO = c_uint64(0)
_NOWAIT = c_double(0.0)


class Handle(Structure):
    _fields_ = [("store", c_void_p), ("id", c_uint64), ("rec", c_void_p),
                ("slot", c_uint32), ("kind", c_int), ("type", c_char)]


class Info(Structure):
    """atr_info, every field (the core writes the whole struct)."""
    _fields_ = [("name", c_char * (NAME_MAX + 1)), ("kind", c_int),
                ("type", c_char), ("version", c_uint64), ("id", c_uint64),
                ("length", c_uint64), ("size", c_uint64), ("bytes", c_uint64),
                ("maxsize", c_uint64), ("max_bytes", c_uint64),
                ("max_item", c_uint64),
                ("waiters", c_uint64), ("fence", c_uint64), ("count", c_uint64),
                ("bound", c_uint64), ("leased", c_uint64), ("parties", c_uint64),
                ("n_waiting", c_uint64), ("generation", c_uint64),
                ("expires_in", c_double), ("reentrant", c_ubyte),
                ("lease", c_ubyte), ("set", c_ubyte), ("broken", c_ubyte),
                ("lock", c_char * (NAME_MAX + 1)),
                # a queue's leased items and task accounting
                ("unfinished", c_uint64), ("dead_lettered", c_uint64),
                ("dropped", c_uint64), ("max_deliveries", c_uint64),
                ("dead_letter", c_char * (NAME_MAX + 1))]


class Grant(Structure):
    """atr_grant: what an acquisition of a lock gives back."""
    _fields_ = [("fence", c_uint64), ("token", c_uint64), ("count", c_uint64),
                ("ttl", c_double)]


class QueueOpts(Structure):
    _fields_ = [("maxsize", c_uint64), ("max_bytes", c_uint64),
                ("max_item", c_uint64), ("max_deliveries", c_uint32),
                ("max_leased", c_uint32), ("dead_letter", c_char_p)]


_h = POINTER(Handle)
_u64p = POINTER(c_uint64)
# name: (result type, argument types)
_PROTOS = {
    "atr_strerror": (c_char_p, [c_int]),
    "atr_errname": (c_char_p, [c_int]),
    "atr_store_open": (c_int, [c_char_p, c_void_p, POINTER(c_void_p)]),
    "atr_type_size": (c_size_t, [c_char]),
    "atr_type_class": (c_int, [c_char]),
    "atr_stat": (c_int, [c_void_p, c_char_p, POINTER(Info)]),
    "atr_delete": (c_int, [c_void_p, c_char_p, c_int]),
    "atr_handle_stat": (c_int, [_h, POINTER(Info)]),
    "atr_value_open": (c_int, [c_void_p, c_char_p, c_char, c_int, c_void_p, _h]),
    "atr_value_get": (c_int, [_h, c_void_p, _u64p]),
    "atr_value_set": (c_int, [_h, c_uint64, c_uint64, _u64p]),
    "atr_value_add": (c_int, [_h, c_uint64, c_void_p, _u64p]),
    "atr_array_open": (c_int, [c_void_p, c_char_p, c_char, c_uint64, c_int,
                               c_void_p, _h]),
    "atr_array_get": (c_int, [_h, c_int64, c_int64, c_void_p, c_uint64,
                              _u64p, _u64p]),
    "atr_array_set": (c_int, [_h, c_int64, c_void_p, c_uint64, c_uint64, _u64p]),
    "atr_array_add": (c_int, [_h, c_int64, c_uint64, c_void_p, _u64p]),
    "atr_queue_opts_init": (None, [POINTER(QueueOpts)]),
    "atr_queue_open": (c_int, [c_void_p, c_char_p, c_int, POINTER(QueueOpts), _h]),
    "atr_queue_put": (c_int, [_h, c_char_p, c_size_t, c_double]),
    "atr_queue_get": (c_int, [_h, c_void_p, c_size_t, POINTER(c_size_t), c_double]),
    "atr_queue_size": (c_int, [_h, _u64p, _u64p, _u64p]),
    "atr_queue_clear": (c_int, [_h]),
}
_gp = POINTER(Grant)
_ip = POINTER(c_int)
# The synchronisation kinds: declared when the library has them (an older
# libatrium lacks them; their factories then raise ENOKIND).
_SYNC_PROTOS = {
    "atr_lock_open": (c_int, [c_void_p, c_char_p, c_int, c_int, _h]),
    "atr_lock_acquire": (c_int, [_h, c_double, _gp]),
    "atr_lock_release": (c_int, [_h]),
    "atr_lock_fenced": (c_int, [c_void_p, c_char_p, c_uint64, c_void_p, c_void_p]),
    "atr_sem_open": (c_int, [c_void_p, c_char_p, c_int, c_uint64, c_uint64, _h]),
    "atr_sem_acquire": (c_int, [_h, c_double, _u64p]),
    "atr_sem_release": (c_int, [_h, c_uint64, _u64p]),
    "atr_flag_open": (c_int, [c_void_p, c_char_p, c_int, c_int, _h]),
    "atr_flag_set": (c_int, [_h]),
    "atr_flag_clear": (c_int, [_h]),
    "atr_flag_wait": (c_int, [_h, c_double, _ip]),
    "atr_barrier_open": (c_int, [c_void_p, c_char_p, c_int, c_uint64, _h]),
    "atr_barrier_wait": (c_int, [_h, c_double, _u64p, _u64p]),
    "atr_barrier_abort": (c_int, [_h]),
    "atr_barrier_reset": (c_int, [_h]),
    "atr_cond_open": (c_int, [c_void_p, c_char_p, c_int, c_char_p, _h]),
    "atr_cond_wait": (c_int, [_h, c_double, _ip, _gp]),
    "atr_cond_notify": (c_int, [_h, c_uint64, c_uint64, _u64p]),
}


class Items(Structure):
    """atr_items: what a batch or leased get appends to."""
    _fields_ = [("data", c_void_p), ("off", POINTER(c_size_t)),
                ("len", POINTER(c_size_t)), ("count", c_size_t),
                ("data_cap", c_size_t), ("item_cap", c_size_t)]


class DictItem(Structure):
    _fields_ = [("key_off", c_size_t), ("key_len", c_size_t),
                ("value_off", c_size_t), ("value_len", c_size_t),
                ("version", c_uint64), ("deleted", c_int)]


class DictItems(Structure):
    """atr_dict_items: keys, values and versions copied out of a dict."""
    _fields_ = [("data", c_void_p), ("item", POINTER(DictItem)),
                ("count", c_size_t), ("data_len", c_size_t),
                ("data_cap", c_size_t), ("item_cap", c_size_t)]


class DictOp(Structure):
    _fields_ = [("key", c_char_p), ("key_len", c_size_t), ("value", c_char_p),
                ("value_len", c_size_t), ("del_", c_int), ("expect", c_uint64)]


class IoVec(Structure):
    _fields_ = [("base", c_char_p), ("len", c_size_t)]


_DITEMSP = POINTER(DictItems)
# Queue task accounting and leased items, dicts, an array's data in
# place: declared when the library has them (else their users raise
# ENOKIND, see _need).
_ITEMSP = POINTER(Items)
_MORE_PROTOS = {
    "atr_items_free": (None, [_ITEMSP]),
    "atr_queue_get_leased": (c_int, [_h, c_size_t, c_double, c_int, c_double,
                                     _ITEMSP, _u64p, POINTER(c_uint32)]),
    "atr_queue_ack": (c_int, [_h, _u64p, c_size_t, _u64p, POINTER(c_size_t)]),
    "atr_queue_nack": (c_int, [_h, _u64p, c_size_t, c_double, _u64p,
                               POINTER(c_size_t)]),
    "atr_queue_touch": (c_int, [_h, _u64p, c_size_t, c_double, _u64p,
                                POINTER(c_size_t)]),
    "atr_queue_done": (c_int, [_h, c_uint64, _u64p]),
    "atr_queue_join": (c_int, [_h, c_double, _u64p]),
    "atr_array_data": (c_int, [_h, POINTER(c_void_p), POINTER(c_size_t)]),
    "atr_dict_open": (c_int, [c_void_p, c_char_p, c_int, _h]),
    "atr_dict_items_free": (None, [_DITEMSP]),
    "atr_dict_get": (c_int, [_h, c_char_p, c_size_t, c_void_p, c_size_t,
                             POINTER(c_size_t), _u64p]),
    "atr_dict_read": (c_int, [_h, POINTER(IoVec), c_size_t, _DITEMSP, _u64p]),
    "atr_dict_set": (c_int, [_h, c_char_p, c_size_t, c_char_p, c_size_t,
                             c_uint64, _u64p]),
    "atr_dict_pop": (c_int, [_h, c_char_p, c_size_t, c_uint64, _DITEMSP]),
    "atr_dict_update": (c_int, [_h, POINTER(DictOp), c_size_t, _u64p]),
    "atr_dict_page": (c_int, [_h, c_char_p, c_size_t, c_size_t, _DITEMSP,
                              POINTER(c_int), _u64p]),
    "atr_dict_len": (c_int, [_h, _u64p, _u64p]),
}

_lib = None
_fast = None
_lib_lock = threading.Lock()


def _candidates():
    env = os.environ.get("ATRIUM_LIB")
    if env:
        return [env]
    try:
        from . import _installed  # written by make install
        return [os.path.join(_installed.LIBDIR, "libatrium.so.1"), "libatrium.so.1"]
    except ImportError:  # the checkout: its build
        here = os.path.dirname(os.path.abspath(__file__))
        return [os.path.join(here, "..", "..", "..", "build", "libatrium.so"),
                "libatrium.so.1"]


_ext = False  # not looked for yet


def _load_ext(path):
    loader = importlib.machinery.ExtensionFileLoader("atrium._fast", path)
    spec = importlib.util.spec_from_file_location("atrium._fast", path,
                                                  loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def ext():
    """atrium._fast (the hot paths in C), or None: with ATRIUM_NO_FAST set
    (and not "0"), or when it was not built. The one of the build whose
    libatrium lib() loads (BUILD/python/, beside BUILD/libatrium.so: a
    sanitizer build's for a sanitizer build's library), else the
    package's own (installed by make install)."""
    global _ext
    if _ext is not False:
        return _ext
    found = None
    if os.environ.get("ATRIUM_NO_FAST", "") in ("", "0"):
        for path in _candidates():
            if os.sep in path and os.path.exists(path):
                here = os.path.join(os.path.dirname(path), "python", "_fast" +
                                    importlib.machinery.EXTENSION_SUFFIXES[0])
                if os.path.exists(here):
                    found = _load_ext(here)
                break
        if found is None:
            try:
                from . import _fast as found
            except ImportError:
                found = None
    _ext = found
    return found


def lib():
    """libatrium, loaded and declared once per process: from ATRIUM_LIB,
    else the checkout's build/libatrium.so, else the installed one."""
    global _lib, _fast, _ext
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is None:
            errors = []
            for path in _candidates():
                if os.sep in path and not os.path.exists(path):
                    continue
                try:
                    loaded = ctypes.CDLL(path)
                    break
                except OSError as e:
                    errors.append("%s: %s" % (path, e))
            else:
                raise AtriumError("ESYS", "libatrium not found (set ATRIUM_LIB): "
                                  + ("; ".join(errors) or "no candidate exists"))
            for name, (res, args) in _PROTOS.items():
                fn = getattr(loaded, name)
                fn.restype = res
                fn.argtypes = args
            for name, (res, args) in list(_SYNC_PROTOS.items()) + \
                    list(_MORE_PROTOS.items()):
                fn = getattr(loaded, name, None)
                if fn is not None:
                    fn.restype = res
                    fn.argtypes = args
            # The same library again (dlopen counts it once): its own
            # function objects, undeclared, that keep the GIL.
            _fast = ctypes.PyDLL(loaded._name)
            x = ext()
            if x is not None:
                from ._errors import AbandonedWarning
                try:
                    x.bind(loaded._handle, AbandonedWarning)
                except ImportError:  # an older library: ctypes then
                    _ext = None
            _lib = loaded
    return _lib


_err_cache = {}


def error(rc):
    """The AtriumError of a negative core code."""
    e = _err_cache.get(rc)
    if e is None:
        L = lib()
        e = _err_cache[rc] = (L.atr_errname(rc).decode(),
                              L.atr_strerror(rc).decode())
    return std(AtriumError(e[0], e[1]))


_OUT = {TINT: c_int64, TUINT: c_uint64, TFLOAT: c_double}


class Scalar(ctypes.Union):
    """atr_scalar, for results."""
    _fields_ = [("i", c_int64), ("u", c_uint64), ("f", c_double)]


_tls = threading.local()


def _thread_word():
    """This thread's result word and a pointer to it, made once."""
    out = Scalar()
    _tls.out = (out, byref(out))
    return _tls.out


# Argument words of the usual deltas, made once (never written to).
_DELTAS = {d: c_int64(d) for d in (1, -1, 2, -2, 10, -10, 100, -100)}


def _delta_word(d):
    """The argument word of an integer delta d."""
    if not isinstance(d, int):
        raise TypeError("int expected instead of %s" % type(d).__name__)
    if not -(1 << 63) <= d < (1 << 63):
        raise std(AtriumError("EOVERFLOW", "result would leave the type's range"))
    return c_int64(d)
_pack_d = struct.Struct("<d").pack
_unpack_q = struct.Struct("<Q").unpack


def _bits(tclass, v):
    """The uint64 word of an atr_scalar holding v (an int or a float)."""
    if tclass == TFLOAT:
        return _unpack_q(_pack_d(v))[0]
    if tclass == TINT:
        if not -(1 << 63) <= v < (1 << 63):
            raise std(AtriumError("ERANGE", "value does not fit the object's type"))
        return v & _M64
    if not 0 <= v <= _M64:
        raise std(AtriumError("ERANGE", "value does not fit the object's type"))
    return v


def wait_loop(call, timeout, busy):
    """After a first try that found busy (the code of "not yet": EFULL,
    EEMPTY), runs call(t) (a core call taking a timeout) until it returns
    something else, waiting at most timeout seconds in all (None: for
    ever) in slices of SLICE, so that signal handlers run in between.
    Returns busy at the timeout."""
    if timeout is not None and timeout <= 0:
        return busy
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SLICE if deadline is None else min(SLICE, deadline - time.monotonic())
        if left <= 0:
            return busy
        rc = call(left)
        if rc != busy:
            return rc


class Store:
    """A store file opened through libatrium (one per path and process)."""
    remote = False

    def __init__(self, path):
        self.path = path
        self.url = path
        self.token = None
        self.lib = L = lib()
        self.fast = _fast
        self.ext = _ext  # atrium._fast, bound to L, or None
        ptr = c_void_p()
        rc = L.atr_store_open(os.fsencode(path), None, byref(ptr))
        if rc < 0:
            raise error(rc)
        self.ptr = ptr
        # The core's codes by name (ATR_EFULL is -CODES["EFULL"]...).
        self.codes = {}
        for i in range(1, 64):
            name = L.atr_errname(-i).decode()
            if name in self.codes:
                break
            self.codes[name] = -i

    def type_class(self, type_code):
        return self.lib.atr_type_class(type_code.encode("latin-1"))

    def delete(self, name, kind):
        rc = self.lib.atr_delete(self.ptr, name.encode(), _KINDS[kind])
        if rc < 0:
            raise error(rc)


_FLAGS = {"new": CREATE | EXCL, "any": CREATE, "open": 0}
_KINDS = {"value": VALUE, "array": ARRAY, "queue": QUEUE, "lock": 4,
          "semaphore": 5, "flag": 6, "barrier": 7, "condition": 8, "dict": 9}


class _Object:
    def __init__(self, store, name, type_code):
        self.store = store
        self.name = name
        # What the object's life hangs on: every closure below holds href,
        # which holds the handle (see atrium._own).
        self.handle = self.life = Handle()
        self.href = byref(self.handle)
        self.type = type_code
        self.tclass = store.type_class(type_code) if type_code else 0

    def _opened(self, rc):
        if rc < 0:
            raise error(rc)
        if not self.type:
            self.type = self.handle.type.decode("latin-1")
            self.tclass = self.store.type_class(self.type)
        self.created = rc == 1

    def info(self):
        info = Info()
        rc = self.store.lib.atr_handle_stat(self.href, byref(info))
        if rc < 0:
            raise error(rc)
        return info


class LocalValue(_Object):
    """A value: get, set, add, with ints and floats as the core holds them
    (conversions to bool and bytes are the caller's); `face`, with the
    extension, is the value as multiprocessing users see it (None
    without)."""

    def __init__(self, store, name, type_code, init, mode):
        super().__init__(store, name, type_code)
        L = store.lib
        ibuf = None
        if init is not None:
            ibuf = c_uint64(_bits(self.tclass, init))
        self._opened(L.atr_value_open(
            store.ptr, name.encode(), (type_code or "\0").encode("latin-1"),
            _FLAGS[mode], None if ibuf is None else byref(ibuf), self.href))
        href, tclass = self.href, self.tclass
        F = store.fast
        fget, fset, fadd = F.atr_value_get, F.atr_value_set, F.atr_value_add
        lo, hi = (0, _M64 + 1) if tclass == TUINT else (-(1 << 63), 1 << 63)
        word = c_uint64 if tclass == TUINT else c_int64
        member = {TINT: "i", TUINT: "u", TFLOAT: "f"}[tclass]
        read = attrgetter(member)
        tls = _tls

        # Closures over the cached handle and function objects: one
        # foreign call each, and the result lands in this thread's word
        # (a call keeps the GIL, but another thread may run between the
        # call and the read of the result: so one word per thread).
        def get():
            try:
                out, ref = tls.out
            except AttributeError:
                out, ref = _thread_word()
            rc = fget(href, ref, None)
            if rc < 0:
                raise error(rc)
            return read(out)

        if tclass == TFLOAT:
            def set_(v):
                rc = fset(href, c_uint64(_unpack_q(_pack_d(v))[0]), _ZERO, None)
                if rc < 0:
                    raise error(rc)

            def add(delta=1):
                try:
                    out, ref = tls.out
                except AttributeError:
                    out, ref = _thread_word()
                rc = fadd(href, c_uint64(_unpack_q(_pack_d(delta))[0]), ref, None)
                if rc < 0:
                    raise error(rc)
                return out.f
        else:
            def set_(v):
                if not lo <= v < hi:
                    raise std(AtriumError("ERANGE", "value does not fit the object's type"))
                rc = fset(href, word(v), _ZERO, None)
                if rc < 0:
                    raise error(rc)

            def add(delta=1):
                w = _DELTAS.get(delta) if type(delta) is int else None
                if w is None:
                    w = _delta_word(delta)
                try:
                    out, ref = tls.out
                except AttributeError:
                    out, ref = _thread_word()
                rc = fadd(href, w, ref, None)
                if rc < 0:
                    raise error(rc)
                return read(out)
        self.get, self.set, self.add = get, set_, add
        # With the extension, the value as the user sees it (`face.value`,
        # multiprocessing's conversions included) and add, in C.
        self.face = None
        if store.ext is not None:
            self.face = store.ext.Value(ctypes.addressof(self.handle), self.handle,
                                        self.type, error)
            self.add = self.face.add


class LocalArray(_Object):
    def __init__(self, store, name, type_code, length, init, mode):
        super().__init__(store, name, type_code)
        L = store.lib
        buf = None
        if init is not None:
            buf = self._buf(init)
        self._opened(L.atr_array_open(
            store.ptr, name.encode(), (type_code or "\0").encode("latin-1"),
            length, _FLAGS[mode], buf, self.href))
        self.length = self.info().length
        self.out = _OUT[self.tclass]

    def _buf(self, values):
        n = len(values)
        if self.tclass == TFLOAT:
            return (c_double * n)(*values)
        if self.tclass == TINT:
            for v in values:
                if not -(1 << 63) <= v < (1 << 63):
                    raise std(AtriumError("ERANGE", "value does not fit the object's type"))
            return (c_int64 * n)(*values)
        for v in values:
            if not 0 <= v <= _M64:
                raise std(AtriumError("ERANGE", "value does not fit the object's type"))
        return (c_uint64 * n)(*values)

    def get(self, lo, hi):
        """Elements [lo:hi) (0 <= lo <= hi <= length), as one snapshot."""
        n = hi - lo
        out = (self.out * n)()
        got = c_uint64()
        rc = self.store.lib.atr_array_get(self.href, lo, hi, out, n, byref(got), None)
        if rc < 0:
            raise error(rc)
        return out[:got.value]

    def set(self, lo, values):
        rc = self.store.lib.atr_array_set(self.href, lo, self._buf(values),
                                          len(values), 0, None)
        if rc < 0:
            raise error(rc)

    def add(self, index, delta):
        o = self.out()
        rc = self.store.lib.atr_array_add(self.href, index, _bits(self.tclass, delta),
                                          byref(o), None)
        if rc < 0:
            raise error(rc)
        return o.value


def _thread_buf(size):
    """This thread's item buffer (at least size bytes), with its capacity,
    a length word and a pointer to it, as atr_queue_get takes them."""
    cap = max(size, 65536)
    size_word = c_size_t()
    _tls.qbuf = (ctypes.create_string_buffer(cap), c_size_t(cap), size_word,
                 byref(size_word))
    return _tls.qbuf


def need(store, fn, what):
    """The declared function fn of libatrium, or ENOKIND when this
    library lacks it (an older build)."""
    f = getattr(store.lib, fn, None)
    if f is None or f.argtypes is None:
        raise AtriumError("ENOKIND", "this libatrium (%s) has no %s: an older "
                          "build?" % (store.lib._name, what))
    return f


def sliced(call, timeout, again):
    """Runs call(t) (a core call taking a timeout) in slices of SLICE
    seconds, so that signal handlers run in between, until it returns a
    code not in again, or timeout (None: for ever) passed. That code, or
    None at the timeout. The first call is made whatever the timeout (with
    t = 0 for 0)."""
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    while True:
        t = SLICE if deadline is None else \
            min(SLICE, max(deadline - time.monotonic(), 0.0))
        rc = call(t)
        if rc not in again:
            return rc
        if deadline is not None and time.monotonic() >= deadline:
            return None


class LocalQueue(_Object):
    def __init__(self, store, name, maxsize, mode, max_deliveries=0,
                 dead_letter=None):
        super().__init__(store, name, None)
        L = store.lib
        opts = QueueOpts()
        L.atr_queue_opts_init(byref(opts))
        opts.maxsize = maxsize
        # As multiprocessing: no bound on the bytes, only on the count.
        opts.max_bytes = 0
        opts.max_item = 0
        opts.max_deliveries = max_deliveries
        opts.dead_letter = dead_letter.encode() if dead_letter else None
        rc = L.atr_queue_open(store.ptr, name.encode(), _FLAGS[mode], byref(opts),
                              self.href)
        if rc < 0:
            raise error(rc)
        self.created = rc == 1
        self.maxsize = self.info().maxsize
        href, fput, fget = self.href, L.atr_queue_put, L.atr_queue_get
        put_now, get_now = store.fast.atr_queue_put, store.fast.atr_queue_get
        tls = _tls
        EFULL, EEMPTY, ETOOBIG = (store.codes[k] for k in ("EFULL", "EEMPTY", "ETOOBIG"))

        def put(data, timeout):
            """Appends data (bytes); False if still full after timeout."""
            n = len(data)
            rc = put_now(href, data, c_size_t(n), _NOWAIT)
            if rc == EFULL:
                rc = wait_loop(lambda t: fput(href, data, n, t), timeout, EFULL)
            if rc < 0:
                if rc == EFULL:
                    return False
                raise error(rc)
            return True

        def get(timeout):
            """The oldest item, decoded, or _codec.EMPTY after timeout."""
            while True:
                try:
                    buf, cap, size, sref = tls.qbuf
                except AttributeError:
                    buf, cap, size, sref = _thread_buf(0)
                rc = get_now(href, buf, cap, sref, _NOWAIT)
                if rc == EEMPTY:
                    n = cap.value
                    rc = wait_loop(lambda t: fget(href, buf, n, sref, t), timeout, EEMPTY)
                if rc == ETOOBIG:
                    _thread_buf(size.value)
                    continue
                if rc < 0:
                    if rc == EEMPTY:
                        return EMPTY
                    raise error(rc)
                return decode(string_at(buf, size.value))

        self.put, self.get = put, get

    def size(self):
        n = c_uint64()
        rc = self.store.lib.atr_queue_size(self.href, byref(n), None, None)
        if rc < 0:
            raise error(rc)
        return n.value

    # Task accounting (JoinableQueue) and leased items.

    def done(self, n=1):
        """Marks n items done; the unfinished left. ValueError past zero,
        as task_done()."""
        left = c_uint64()
        rc = need(self.store, "atr_queue_done", "queue task accounting")(
            self.href, n, byref(left))
        if rc == self.store.codes["EDONE"]:
            raise ValueError("task_done() called too many times") from error(rc)
        if rc < 0:
            raise error(rc)
        return left.value

    def join(self, timeout):
        """True once no item is unfinished; False at the timeout."""
        fn = need(self.store, "atr_queue_join", "queue task accounting")
        href, codes = self.href, self.store.codes
        rc = sliced(lambda t: fn(href, t, None), timeout,
                    (codes["ETIMEDOUT"], codes["EINTR"]))
        if rc is None:
            return False
        if rc < 0:
            raise error(rc)
        return True

    def get_leased(self, max_, lease, timeout):
        """Up to max_ items under a lease of `lease` seconds held by this
        thread (given back at once if it dies): [(item, receipt,
        deliveries)], [] after timeout."""
        fn = need(self.store, "atr_queue_get_leased", "leased queue items")
        items = Items()
        receipts = (c_uint64 * max_)()
        deliveries = (c_uint32 * max_)()
        href, codes = self.href, self.store.codes
        rc = sliced(lambda t: fn(href, max_, lease, 0, t, byref(items), receipts,
                                 deliveries),
                    timeout, (codes["EEMPTY"], codes["EINTR"]))
        try:
            if rc is None:
                return []
            if rc < 0:
                raise error(rc)
            return [(decode(string_at(items.data + items.off[k], items.len[k])),
                     receipts[k], deliveries[k]) for k in range(items.count)]
        finally:
            self.store.lib.atr_items_free(byref(items))

    def settle(self, op, receipts, arg=None):
        """ack, nack (arg: the delay) or touch (arg: the new lease) of
        receipts; the set of those that were not acted on (unknown,
        spent, run out, or another thread's)."""
        fn = need(self.store, "atr_queue_" + op, "leased queue items")
        n = len(receipts)
        given = (c_uint64 * n)(*receipts)
        unknown = (c_uint64 * n)()
        nu = c_size_t()
        if op == "ack":
            rc = fn(self.href, given, n, unknown, byref(nu))
        else:
            rc = fn(self.href, given, n, arg, unknown, byref(nu))
        if rc < 0:
            raise error(rc)
        return set(unknown[:nu.value])


# The kinds of object of this transport, as atrium's objects open them:
# Kind(store, name, ...) (see atrium._make); _local_sync adds its own.
Store.kinds = {"value": LocalValue, "array": LocalArray, "queue": LocalQueue}
