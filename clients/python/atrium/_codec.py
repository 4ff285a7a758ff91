"""Queue items and dict values as JSON text.

What you put is what you get, equal and of the same type. Items that are
plain JSON (None, bool, int, finite float, str, lists, dicts with str keys)
travel as that JSON, so a C program, curl or the browser reads them as they
are. Anything else travels inside an envelope, a JSON object whose
"$atrium" member says what it holds:

  {"$atrium": "tuple", "items": [...]}   a tuple (its items encoded alike)
  {"$atrium": "bytes", "b64": "..."}     bytes, base64
  {"$atrium": "pickle", "b64": "..."}    anything else: pickle, base64

Envelopes nest: a list of tuples is a JSON list of tuple envelopes. A dict
that itself has a "$atrium" key, or a key that is not a str, is pickled
whole, so no plain item is ever read back as an envelope.
"""
import base64
import json
import math
import pickle

MARK = "$atrium"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode
try:
    # json's own C encoder, made once: JSONEncoder.encode makes one per
    # call, which is two thirds of the cost of a small item. The same
    # settings as _dumps; checked, and _dumps where it is missing.
    _c_encode = json.encoder.c_make_encoder(
        None, None, json.encoder.encode_basestring, None, ":", ",", False,
        False, False)
    if "".join(_c_encode((1, "é", [None]), 0)) != '[1,"é",[null]]':
        raise ValueError
    _dumps = lambda obj: "".join(_c_encode(obj, 0))  # noqa: E731
except (AttributeError, TypeError, ValueError):
    pass


# What a queue's get returns when nothing came (None is an item), and
# what a dict's transport returns for a key that is not there.
EMPTY = object()
MISSING = object()


class _NotPlain(Exception):
    pass


def _tree(obj):
    """obj as a tree of JSON values with envelopes, or _NotPlain."""
    t = type(obj)
    if t is str or t is int or t is bool or obj is None:
        return obj
    if t is float:
        if math.isfinite(obj):
            return obj
        raise _NotPlain
    if t is tuple:
        return {MARK: "tuple", "items": [_tree(x) for x in obj]}
    if t is list:
        return [_tree(x) for x in obj]
    if t is dict:
        out = {}
        for k, v in obj.items():
            if type(k) is not str or k == MARK:
                raise _NotPlain
            out[k] = _tree(v)
        return out
    if t is bytes:
        return {MARK: "bytes", "b64": base64.b64encode(obj).decode("ascii")}
    raise _NotPlain


_SCALARS = frozenset((str, int, float, bool, type(None)))
_TUPLE_HEAD = '{"%s":"tuple","items":' % MARK
_TUPLE_HEAD_B = _TUPLE_HEAD.encode()


def encode(obj):
    """The JSON text (UTF-8 bytes) that stands for obj."""
    if type(obj) is tuple and {type(x) for x in obj} <= _SCALARS:
        # The common item, a tuple of scalars, without the walk.
        try:
            return (_TUPLE_HEAD + _dumps(obj) + "}").encode("utf-8")
        except ValueError:  # NaN or an infinity: pickled below
            pass
    try:
        tree = _tree(obj)
    except (_NotPlain, RecursionError):
        tree = {MARK: "pickle", "b64": base64.b64encode(
            pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)).decode("ascii")}
    return _dumps(tree).encode("utf-8")


def _hook(d):
    kind = d.get(MARK)
    if kind is None:
        return d
    if kind == "tuple":
        return tuple(d["items"])
    if kind == "bytes":
        return base64.b64decode(d["b64"])
    if kind == "pickle":
        return pickle.loads(base64.b64decode(d["b64"]))
    raise ValueError("unknown atrium envelope %r" % (kind,))


_decoder = json.JSONDecoder(object_hook=_hook)
_loads = _decoder.decode
_scan = _decoder.scan_once


def decode(text):
    """The object that JSON text (str or UTF-8 bytes) stands for. Bytes that
    are not JSON (put by a C program) come back as a str, as atriumd hands
    them out."""
    if type(text) is not str:
        if text.startswith(_TUPLE_HEAD_B) and text.endswith(b"}"):
            # A tuple envelope (as encode writes it): its items are one
            # JSON array, scanned without the object hook's round.
            items = text[len(_TUPLE_HEAD_B):-1].decode("utf-8", "replace")
            try:
                obj, end = _scan(items, 0)
                if end == len(items) and type(obj) is list:
                    return tuple(obj)
            except (StopIteration, ValueError):
                pass  # not that after all: the general way
        text = text.decode("utf-8", "replace")
    try:
        return _loads(text)
    except json.JSONDecodeError:
        return text


object_hook = _hook
