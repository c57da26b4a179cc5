"""Validation at the Python boundary. Every message names the argument, what was
expected and what was given; after these, the kernels may trust their arrays."""
import operator

import numpy as np

DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def check_dtype(dtype):
    """'float32' / 'float64' / np.float32 / np.dtype / torch.float32 -> np.dtype."""
    if dtype is not None:
        name = str(dtype).replace("torch.", "")
        name = {"float": "float32", "double": "float64"}.get(name, name)
        if name in DTYPES:
            return DTYPES[name]
        try:
            # np.dtype(None) would be float64: None is refused above, not defaulted
            dt = np.dtype(dtype)
        except TypeError:
            dt = None
        if dt is not None and dt.name in DTYPES:
            return DTYPES[dt.name]
    raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def check_positive_int(value, name, minimum=1):
    try:
        as_int = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if isinstance(value, bool) or as_int < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return as_int


def to_numpy(value, name):
    """A numpy array from an array-like or a torch tensor, without importing torch."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            value = value.float()
        return value.numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # ragged lists, objects without an array form
        raise TypeError(f"{name} must be an array, got {type(value).__name__}: {exc}") from None


def as_float_array(value, name, dtype):
    """A C-contiguous array of `dtype` from a real floating array-like.

    Integers, booleans and complex numbers are refused rather than cast: a model fed
    token ids or a complex signal by mistake should say so, not compute garbage.
    """
    arr = to_numpy(value, name)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must hold real floating-point values ({dtype.name}), got dtype {arr.dtype}"
        )
    return np.ascontiguousarray(arr, dtype=dtype)


def check_shape(arr, expected, name):
    if tuple(arr.shape) != tuple(expected):
        raise ValueError(
            f"{name} has the wrong shape: expected {tuple(expected)}, got {tuple(arr.shape)}"
        )


def check_finite(arr, name):
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")


def check_real(value, name, minimum=None):
    """A finite real number (not a bool) >= minimum, as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                    np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    as_float = float(value)
    if not np.isfinite(as_float) or (minimum is not None and as_float < minimum):
        bound = f" >= {minimum} and" if minimum is not None else ""
        raise ValueError(f"{name} must be{bound} finite, got {value!r}")
    return as_float


def check_lengths(lengths, batch, steps):
    """Sequence lengths -> int64 array of shape (batch,), each in [1, steps]. The range
    is checked in the given dtype, before the cast, so that 2**63 is reported as given."""
    if isinstance(lengths, (list, tuple)) and lengths and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in lengths):
        # Python ints as they are: numpy would make [1, 2**63] a float64 array
        if len(lengths) == batch:
            if min(lengths) < 1 or max(lengths) > steps:
                raise ValueError(
                    f"lengths must lie in [1, {steps}] (the sequence length of x), "
                    f"got values from {min(lengths)} to {max(lengths)}")
            lengths = np.array(lengths, np.int64)
    arr = to_numpy(lengths, "lengths")
    if arr.dtype.kind not in "iu":
        if not (arr.dtype.kind == "f" and arr.size and np.all(arr == np.round(arr))):
            raise TypeError(f"lengths must hold integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(
            f"lengths has the wrong shape: expected ({batch},) (one per sequence), "
            f"got {tuple(arr.shape)}"
        )
    if batch and (arr.min() < 1 or arr.max() > steps):
        raise ValueError(
            f"lengths must lie in [1, {steps}] (the sequence length of x), "
            f"got values from {arr.min()} to {arr.max()}"
        )
    return arr.astype(np.int64)


def check_out(out, shape, dtype, name):
    """A buffer the kernels will write: a writeable, C-contiguous ndarray of `dtype` in
    native byte order and of `shape`, or a ValueError saying which of these it is not."""
    want = (f"{name} must be a C-contiguous {dtype.name} array of shape {tuple(shape)}, "
            "writeable and in native byte order")
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{want}; got a {type(out).__name__}")
    problems = []
    if out.dtype.newbyteorder("=") != dtype:
        problems.append(f"dtype {out.dtype}")
    elif not out.dtype.isnative:
        problems.append(f"byte order {out.dtype.str!r}")
    if tuple(out.shape) != tuple(shape):
        problems.append(f"shape {tuple(out.shape)}")
    if not out.flags.c_contiguous:
        problems.append("non-contiguous strides")
    if not out.flags.writeable:
        problems.append("a read-only buffer")
    if problems:
        raise ValueError(f"{want}; it has {', '.join(problems)}")
