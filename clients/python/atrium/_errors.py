"""The client's one error type, and how core codes and HTTP answers map to
the exceptions that multiprocessing users expect."""

import warnings

# Core error names (include/atrium.h, ATR_ERRNO_MAP) with the HTTP status
# and JSON code that atriumd answers for each (gateway/errors.c): one
# vocabulary for both transports.
ERRORS = {
    "EINVAL": (400, "invalid_request"),
    "ENAME": (400, "bad_name"),
    "ENOENT": (404, "not_found"),
    "EEXIST": (412, "precondition_failed"),
    "EKIND": (409, "kind_mismatch"),
    "ETYPE": (409, "type_mismatch"),
    "ERANGE": (400, "out_of_range"),
    "EOVERFLOW": (409, "overflow"),
    "EVERSION": (412, "precondition_failed"),
    "EBOUNDS": (400, "out_of_range"),
    "ELENGTH": (409, "length_mismatch"),
    "EFULL": (409, "full"),
    "EEMPTY": (409, "empty"),
    "ETOOBIG": (413, "item_too_large"),
    "ETIMEDOUT": (503, "timed_out"),
    "ENOSPC": (507, "store_full"),
    "ETOOMANY": (507, "store_full"),
    "ENOTSTORE": (500, "store_error"),
    "ELAYOUT": (500, "store_error"),
    "ECORRUPT": (500, "store_error"),
    "EBUSY": (503, "unavailable"),
    "EGAP": (500, "internal_error"),
    "ENOMEM": (500, "out_of_memory"),
    "ESYS": (500, "internal_error"),
    "EINTR": (503, "unavailable"),
    "ENOTHELD": (409, "not_held"),
    "EBROKEN": (409, "broken"),
    "EOVERRELEASE": (409, "over_released"),
    "ESTALE": (412, "stale_fence"),
    "ELOCKED": (503, "busy"),
    "EDONE": (409, "too_many_done"),
    "ENOKEY": (404, "no_such_key"),
    "EKEY": (400, "bad_key"),
    # Not core codes: what this client says when the store or gateway it
    # talks to lacks a kind of object (locks before issue 10, ...).
    "ENOKIND": (501, "no_such_kind"),
    # An object that only the local transport can give (SharedMemory's
    # buffer is the store's memory).
    "ENOTLOCAL": (501, "needs_local_transport"),
}
# The other way, for answers from atriumd: the first core name of a code.
_BY_HTTP = {}
for _name, (_status, _code) in ERRORS.items():
    _BY_HTTP.setdefault(_code, _name)
# atriumd's own: a JSON value of the wrong sort for the type code.
_BY_HTTP["invalid_value"] = "ETYPE"
# A wait of a synchronisation object that ran out.
_BY_HTTP["timeout"] = "ETIMEDOUT"


class AtriumError(OSError):
    """An error of the store or the gateway that multiprocessing has no
    exception for. `name` is the core's name of the error ("ENOENT"),
    `code` the JSON code atriumd answers for it ("not_found"), `status` the
    HTTP status (the one atriumd would answer, for local errors too)."""

    def __init__(self, name, message, code=None, status=None):
        super().__init__(message)
        if code is None:
            status, code = ERRORS.get(name, (500, "internal_error"))
        self.name = name
        self.code = code
        self.status = status

    def __str__(self):
        return "%s [%s, %s %s]" % (self.args[0], self.name, self.status, self.code)

    def __reduce__(self):
        return (AtriumError, (self.name, self.args[0], self.code, self.status))


def from_http(status, code, message):
    """The AtriumError of an error answer of atriumd."""
    return AtriumError(_BY_HTTP.get(code, "E" + code.upper()), message, code, status)


def missing_kind(kind, issue):
    """The error of a factory whose kind of object this store or gateway
    does not have yet: never a fake stand-in."""
    return AtriumError(
        "ENOKIND", "atrium has no %s objects yet (issue %s); "
        "this call needs one" % (kind, issue))


# The standard exceptions multiprocessing (or ctypes) raises where the core
# has a code of its own; every other code stays an AtriumError.
_STD = {"ERANGE": OverflowError, "EOVERFLOW": OverflowError,
        "ETYPE": TypeError, "EBOUNDS": IndexError, "EINVAL": ValueError}


def std(err):
    """The standard exception for AtriumError err (with err as its
    cause), or err itself."""
    cls = _STD.get(err.name)
    if cls is None:
        return err
    e = cls(str(err.args[0]))
    e.__cause__ = err
    return e


def not_held(reentrant, cause=None):
    """What multiprocessing raises for a release of a lock the caller does
    not hold: SemLock's ValueError for a Lock, its AssertionError for an
    RLock (whose holder is a thread). atrium's Lock is held by a thread
    too, so its release from another thread is refused the same way."""
    if reentrant:
        e = AssertionError("attempt to release recursive lock not owned by thread")
    else:
        e = ValueError("semaphore or lock released too many times "
                       "(or by a thread that does not hold it)")
    e.__cause__ = cause
    return e


def over_released(cause=None):
    """BoundedSemaphore's error for a release past its bound."""
    e = ValueError("semaphore or lock released too many times")
    e.__cause__ = cause
    return e


class AbandonedWarning(RuntimeWarning):
    """An acquire took a lock (or a semaphore's permit) whose last holder
    died holding it: what it protects may be half-changed."""


def abandoned_warning(name):
    warnings.warn("atrium: lock %r was abandoned by a holder that died; "
                  "it is now yours (what it protects may be inconsistent)"
                  % name, AbandonedWarning, stacklevel=3)
