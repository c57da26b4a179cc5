"""Plain pickles of numpy arrays: what pickle.dump(dict_of_numpy_arrays) writes.

numpy pickles an array as a call of numpy's reconstruction functions followed by a
state tuple (shape, dtype, raw bytes). Here those globals resolve to stand-ins that
check the dtype is numeric (bool, int, uint, float, complex) and the byte count
matches the shape, and build the array from the bytes; object, string and structured
dtypes are refused, and every other global is refused as in a torch checkpoint.
"""
import re

import numpy as np

from fastrnn.io import _unpickle
from fastrnn.io.errors import CheckpointError

_NUMERIC = re.compile(r"^[biufc]\d{1,2}$")
MAX_DEPTH = 64


class _DType:
    """Stand-in for numpy.dtype(spec, align, copy) and the state BUILD gives it."""

    __slots__ = ("dtype",)

    def __init__(self, spec, align=False, copy=True):
        if not isinstance(spec, str) or not _NUMERIC.match(spec):
            raise CheckpointError(
                f"a numpy array of dtype {str(spec)[:20]!r}: fastrnn reads numeric arrays only "
                "(bool, int, uint, float, complex), never object, string or structured ones")
        try:
            self.dtype = np.dtype(spec)
        except TypeError:
            raise CheckpointError(f"unknown numpy dtype {spec!r}") from None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise CheckpointError(f"malformed numpy dtype state {str(state)[:60]}")
        if len(state) > 3 and state[3] is not None:
            raise CheckpointError("a structured numpy dtype: fastrnn reads numeric arrays only")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _check_dtype(dtype):
    if not isinstance(dtype, _DType):
        raise CheckpointError(f"a numpy array's dtype is a {type(dtype).__name__}")
    return dtype.dtype


def _from_bytes(data, dtype, shape, fortran):
    if not isinstance(shape, tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise CheckpointError(
            f"a numpy array's shape must be a tuple of sizes, got {str(shape)[:60]}")
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError(f"a numpy array's data is a {type(data).__name__}, not bytes")
    count = 1
    for s in shape:
        count *= s
    if count * dtype.itemsize != len(data):
        raise CheckpointError(
            f"a numpy array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} "
            f"bytes; its pickle holds {len(data)}")
    flat = np.frombuffer(bytes(data), dtype, count)
    out = flat.reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(out, dtype=dtype.newbyteorder("="))


class _Array:
    """Stand-in for numpy's _reconstruct(ndarray, (0,), b'b'): the array arrives with
    BUILD's state, (version, shape, dtype, is_fortran, raw bytes)."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise CheckpointError(f"malformed numpy array state {str(state)[:60]}")
        shape, dtype, fortran, data = state[-4:]
        self.array = _from_bytes(data, _check_dtype(dtype), shape, bool(fortran))


_NDARRAY = object()   # numpy.ndarray, only ever an argument of _reconstruct


def _reconstruct(cls, shape, dummy):
    if cls is not _NDARRAY:
        raise CheckpointError("numpy _reconstruct of something other than numpy.ndarray")
    return _Array()


def _frombuffer(data, dtype, shape, order):
    """numpy's pickle protocol 5 form: the bytes in-band, then dtype, shape, order."""
    return _from_bytes(data, _check_dtype(dtype), tuple(shape), order == "F")


def _scalar(dtype, data=None):
    dtype = _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CheckpointError(f"a numpy {dtype} scalar needs {dtype.itemsize} bytes")
    return np.frombuffer(data, dtype, 1)[0]


def _empty_bytes(*args):
    """Protocol 2 writes b"" (an empty array's data) as a call of bytes()."""
    if args:
        raise CheckpointError("bytes() is allowed without arguments only")
    return b""


def _resolve(module, name):
    if module in ("builtins", "__builtin__") and name == "bytes":
        return _empty_bytes
    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        return {"_reconstruct": _reconstruct, "scalar": _scalar}.get(name)
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return _frombuffer
    if module == "numpy":
        return {"ndarray": _NDARRAY, "dtype": _DType}.get(name)
    return None


def _arrays(obj, seen, depth=0):
    """The unpickled object with every stand-in replaced by its numpy array."""
    if depth > MAX_DEPTH:
        raise CheckpointError(f"the pickle nests deeper than {MAX_DEPTH} levels")
    if isinstance(obj, _Array):
        if obj.array is None:
            raise CheckpointError("a numpy array without its data")
        return obj.array
    if isinstance(obj, (_DType,)) or obj is _NDARRAY:
        raise CheckpointError("a bare numpy dtype or class where a value belongs")
    if not isinstance(obj, (dict, list, tuple)):
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, dict):
        out = seen[id(obj)] = type(obj)()
        for k, v in obj.items():
            out[k] = _arrays(v, seen, depth + 1)
        return out
    if isinstance(obj, list):
        out = seen[id(obj)] = []
        out.extend(_arrays(v, seen, depth + 1) for v in obj)
        return out
    return tuple(_arrays(v, seen, depth + 1) for v in obj)


def read(path, buffer):
    """The pickle's dicts, lists and numbers, its numpy arrays as numpy arrays."""
    where = f"{path} (a pickle)"
    try:
        obj = _unpickle.unpickle(bytes(buffer), _unpickle.no_storages, where, resolve=_resolve)
        return _arrays(obj, {})
    except CheckpointError as exc:
        text = str(exc)
        raise CheckpointError(text if text.startswith(where) else f"{where}: {text}") from None
