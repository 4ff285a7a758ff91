"""multiprocessing.shared_memory's SharedMemory and ShareableList, on the
store: a block of shared memory is an atrium array of bytes ('B'), so C
(atr_array_data), HTTP (/v1/arrays/NAME) and the dashboard see it too.

Locally `buf` is a memoryview straight into the store (libatrium's
atr_array_data): zero copies, numpy can wrap it. Writes through it are
plain memory writes: no lock, no version, no change event (HTTP and the
dashboard read the bytes, but hear of no change) - order them yourself,
as with the standard library's. Attaching to an array of another type
gives its bytes (a 'd' array of 8 elements is 64 bytes of doubles).

Remotely there is no memory to map: SharedMemory raises AtriumError
ENOTLOCAL (use an Array over HTTP, or connect() to the store's path).

unlink() deletes the array. Unlike POSIX shared memory, whose mappings
outlive the name, the store then gives that memory to later objects:
every process must be done with `buf` (close()) before anyone unlinks.
A block made without a name gets a generated one and is unlinked at the
exit of the process that made it unless it was unlinked before (as the
standard library's resource tracker does); it is not unlinked when the
object is garbage, since other processes may still use it by name.
"""
import atexit
import errno
import functools
import multiprocessing.shared_memory as _std
import os
import threading
import types

from ._errors import AtriumError

__all__ = ["SharedMemory", "ShareableList"]

# Generated blocks to unlink at exit: (store, name) -> pid of the maker.
_owned = {}
_owned_lock = threading.Lock()


@atexit.register
def _unlink_owned():
    with _owned_lock:
        owned = [(st, n) for (st, n), pid in _owned.items() if pid == os.getpid()]
        _owned.clear()
    for store, name in owned:
        try:
            store.delete(name, "array")
        except Exception:  # already gone: nothing to do
            pass


def _os_error(err, name):
    """FileExistsError / FileNotFoundError where the standard library
    raises them, else the AtriumError itself."""
    if err.name == "EEXIST":
        e = FileExistsError(errno.EEXIST, "File exists", name)
    elif err.name == "ENOENT":
        e = FileNotFoundError(errno.ENOENT, "No such file or directory", name)
    else:
        return err
    e.__cause__ = err
    return e


class SharedMemory:
    """As multiprocessing.shared_memory.SharedMemory(name=None,
    create=False, size=0), plus store= (default: default_store())."""
    _buf = None
    _view = None

    def __init__(self, name=None, create=False, size=0, *, store=None):
        from . import _generated_name, default_store
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create and size == 0:
            raise ValueError("'size' must be a positive number different from zero")
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        store = store or default_store()
        if store.remote:
            raise AtriumError(
                "ENOTLOCAL", "SharedMemory needs the local transport: its buf is "
                "the store's own memory, which HTTP cannot map (connect() to "
                "the store's path, or use an Array over HTTP)")
        generated = name is None
        name = _generated_name() if generated else name.lstrip("/")
        from . import _local_dict
        try:
            self._arr, raw = _local_dict.array_data(
                store._impl, name, "B" if create else None, size if create else 0,
                "new" if create else "open")
        except AtriumError as err:
            raise _os_error(err, name) from None
        self._store, self._name = store, name
        self._size = len(raw)
        self._view = memoryview(raw)
        self._buf = self._view.cast("B")
        if generated:
            with _owned_lock:
                _owned[(store, name)] = os.getpid()

    @property
    def buf(self):
        """The block's bytes in place (a memoryview of format 'B')."""
        return self._buf

    @property
    def name(self):
        return self._name

    @property
    def size(self):
        return self._size

    def close(self):
        """Releases this object's view; the block stays. (Views made from
        buf, a numpy array say, stay usable: the store's memory is mapped
        while the store is open, until unlink().)"""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._view is not None:
            self._view.release()
            self._view = None

    def unlink(self):
        """Deletes the block (see the module's comment: close() it in every
        process first)."""
        with _owned_lock:
            _owned.pop((self._store, self._name), None)
        try:
            self._store.delete(self._name, "array")
        except AtriumError as err:
            raise _os_error(err, self._name) from None

    def __del__(self):
        try:
            self.close()
        except (OSError, BufferError):
            pass

    def __reduce__(self):
        return (_attach, (self._store.url, self._store.token, self._name))

    def __repr__(self):
        return "%s(%r, size=%d)" % (type(self).__name__, self._name, self._size)


def _attach(url, token, name):
    from . import _store_for
    return SharedMemory(name, store=_store_for(url, token))


def _ours(fn, store):
    """fn (a function of the standard library's shared_memory module) with
    SharedMemory in its globals ours, on store: the same code, made on our
    blocks."""
    g = dict(vars(_std), SharedMemory=functools.partial(SharedMemory, store=store))
    f = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__,
                           fn.__closure__)
    f.__kwdefaults__ = fn.__kwdefaults__
    return f


class ShareableList(_std.ShareableList):
    """As multiprocessing.shared_memory.ShareableList (the standard
    library's own code and format) on our SharedMemory, plus store= (default:
    default_store()); it pickles with its store."""

    def __init__(self, sequence=None, *, name=None, store=None):
        from . import default_store
        self._store = store or default_store()
        _ours(_std.ShareableList.__init__, self._store)(self, sequence, name=name)

    def __reduce__(self):
        return (_shareable, (self._store.url, self._store.token, self.shm.name))


def _shareable(url, token, name):
    from . import _store_for
    return ShareableList(name=name, store=_store_for(url, token))
