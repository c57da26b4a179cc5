"""Checkpoint readers: a file -> numpy arrays and plain containers, and state-dict
names -> a layer configuration. Imports nothing else of fastrnn, and never torch."""
import mmap
import os
from typing import Any

from fastrnn.io import _npy, _numpy_pickle, _safetensors, _torch_formats
from fastrnn.io._config import RecurrentConfig, find_recurrent, flatten
from fastrnn.io._zip import Archive
from fastrnn.io.errors import CheckpointError

# torch's legacy magic number as pickled first in the file (LONG1 of 10 bytes), after
# the PROTO opcode (and, from protocol 4, a FRAME opcode)
LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

__all__ = ["CheckpointError", "load_checkpoint", "find_recurrent", "flatten",
           "RecurrentConfig", "detect_format", "is_onnx", "read_onnx", "onnx_models"]


def _open(path):
    if hasattr(path, "read"):  # a binary file object, as torch.load accepts
        data = path.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("load_checkpoint needs a path or a binary file object")
        if not data:
            raise CheckpointError("the file object is empty")
        return getattr(path, "name", "<file object>"), bytes(data)
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(
            f"path must be a str, os.PathLike or binary file object, got {type(path).__name__}"
        ) from None
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise CheckpointError(f"{path}: the file is empty")
            return path, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from None


def detect_format(head, size, archive_names=None):
    """'torch-zip', 'npz', 'safetensors', 'torch-legacy', 'pickle', 'npy', 'onnx' or None,
    by content."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        if archive_names is not None and archive_names and all(
                n.endswith(".npy") for n in archive_names):
            return "npz"
        return "torch-zip"
    if _safetensors.looks_like(head, size):
        return "safetensors"
    if head[:1] == b"\x80" and LEGACY_MAGIC in head[2:2 + 9 + len(LEGACY_MAGIC)]:
        return "torch-legacy"  # torch's magic number, pickled first
    if len(head) > 2 and head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return "pickle"  # any other pickle: plain containers of numpy arrays
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if len(head) > 1 and head[0] == 0x08 and 1 <= head[1] <= 20:
        return "onnx"  # a ModelProto starts with field 1, ir_version
    return None


def load_checkpoint(path: Any) -> Any:
    r"""What ``torch.load(path, weights_only=True)`` returns, tensors as numpy arrays.

    Reads torch.save's zip and legacy formats, safetensors, ``.npz``, numpy pickles
    and TorchScript archives (as weights), recognised by content, without torch and
    without running anything from the file: the pickles are checked opcode by opcode
    and only an allowlist of torch's rebuild functions resolves, to local stand-ins.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        The file (a file object is read whole).

    Returns
    -------
    object
        Dicts (OrderedDict too), lists, tuples, numbers, strings and None, with every
        tensor a numpy array. float16 stays float16; bfloat16, which numpy lacks,
        becomes float32 (exactly: the same values).

    Raises
    ------
    CheckpointError
        Anything unreadable, truncated, inconsistent or asking to run code, with what
        and where.
    ImportError
        A format whose optional extra is not installed (ONNX).

    Examples
    --------
    >>> np.savez(tmp / "weights.npz", w=np.eye(2, dtype=np.float32))
    >>> fastrnn.load_checkpoint(tmp / "weights.npz")["w"]
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    >>> _ = (tmp / "evil.pt").write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")
    >>> fastrnn.load_checkpoint(tmp / "evil.pt")   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastrnn.io.errors.CheckpointError: ...
    """
    path, mm = _open(path)
    try:
        return _read(path, mm)
    except (CheckpointError, ImportError):  # ImportError: an optional extra is missing
        raise
    except (MemoryError, RecursionError, OverflowError) as exc:
        raise CheckpointError(f"{path}: the file asks for more than it can hold "
                              f"({type(exc).__name__})") from None
    except Exception as exc:  # a reader bug must still honour the contract
        raise CheckpointError(
            f"{path}: unreadable (internal error {type(exc).__name__}: {exc}); please report "
            "this file") from None
    finally:
        try:
            if isinstance(mm, mmap.mmap):
                mm.close()
        except BufferError:  # an array still views the map: it closes when that goes
            pass


def _read(path, mm):
    """Dispatch on the content, not the file name."""
    head = bytes(mm[:32])
    archive = Archive(path, mm) if head.startswith(b"PK") else None
    kind = detect_format(head, len(mm), archive.names() if archive else None)
    if kind == "torch-zip":
        return _torch_formats.read_zip(path, mm, archive)
    if kind == "npz":
        return _npy.read_npz(path, mm, archive)
    if kind == "safetensors":
        return _safetensors.read(path, mm)
    if kind == "torch-legacy":
        return _torch_formats.read_legacy(path, mm)
    if kind == "pickle":
        return _numpy_pickle.read(path, mm)
    if kind == "npy":
        return _npy.read_npy(path, mm)
    if kind == "onnx":
        from fastrnn.io import _onnx
        return _onnx.initializers(path, mm)
    raise CheckpointError(
        f"{path}: not a checkpoint fastrnn reads (torch.save zip or legacy, TorchScript, "
        f"safetensors, .npz, a pickle of numpy arrays, ONNX): it starts with {head[:8]!r}")


def is_onnx(path):
    """True when the file at `path` is an ONNX model (by content)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return detect_format(head, len(head)) == "onnx"


def read_onnx(path, node=None):
    """The recurrent model of an ONNX file (see _onnx.read): torch-named weights and
    what the graph says of the layer. Needs the onnx package (fastrnn[onnx])."""
    from fastrnn.io import _onnx
    return _guarded(path, _onnx.read, path, node)


def onnx_models(path):
    """Every recurrent model (stack of LSTM / GRU / RNN nodes) in an ONNX file."""
    from fastrnn.io import _onnx
    return _guarded(path, _onnx.recurrent_stacks, path)


def _guarded(path, read, *args):
    """A reader's unexpected exception on a malformed file, as a CheckpointError."""
    try:
        return read(*args)
    except (ValueError, ImportError, OSError):  # CheckpointError is a ValueError
        raise
    except (MemoryError, RecursionError, OverflowError) as exc:
        raise CheckpointError(f"{path}: the file asks for more than it can hold "
                              f"({type(exc).__name__})") from None
    except Exception as exc:
        raise CheckpointError(
            f"{path}: unreadable (internal error {type(exc).__name__}: {exc}); please report "
            "this file") from None
