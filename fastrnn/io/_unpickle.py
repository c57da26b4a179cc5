"""A restricted unpickler for torch checkpoints.

An allowlist, not a blocklist: only the globals a weights checkpoint needs resolve,
each to a local stand-in written here (never to torch's or Python's real object), and
nothing else resolves at all. Tensors are rebuilt from validated storages into numpy
arrays as the pickle is read; nothing from the file is ever called.
"""
import contextvars
import io
import pickle
import pickletools
from collections import OrderedDict

import numpy as np

from fastrnn.io.errors import CheckpointError

# torch's storage classes and dtype names -> numpy dtypes. bfloat16 has no numpy
# dtype: its storages are read as uint16 and widened to float32 (exactly).
BFLOAT16 = "bfloat16"
STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": BFLOAT16, "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
TORCH_DTYPES = {
    "float64": "float64", "double": "float64", "float32": "float32", "float": "float32",
    "float16": "float16", "half": "float16", "bfloat16": BFLOAT16, "int64": "int64",
    "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8", "bool": "bool", "complex64": "complex64",
    "cfloat": "complex64", "complex128": "complex128", "cdouble": "complex128",
}
# A tensor may address more elements than its storage holds (stride 0, as an expanded
# tensor does) only up to this many, and all of a file's tensors together only this
# many more than their storages hold: a header must not drive a huge allocation.
MAX_EXPANSION = 1 << 24
# What is left of that allowance in the pickle being read (set by unpickle_at)
_expansion_left = contextvars.ContextVar("fastrnn_expansion_left", default=MAX_EXPANSION)

ITEMSIZE = {name: (2 if name == BFLOAT16 else np.dtype(name).itemsize)
            for name in set(STORAGE_DTYPES.values())}


class StorageType:
    """Stand-in for torch.<X>Storage: only names a dtype (None for UntypedStorage)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def __reduce__(self):
        raise TypeError("not picklable")


class TorchDType:
    """Stand-in for a torch dtype such as torch.float16."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"

    def __eq__(self, other):
        return isinstance(other, TorchDType) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


class Storage:
    """A storage read from the file: its bytes (uint8), the dtype it was saved with
    (None when untyped: the tensor says), and the archive's byte order."""

    __slots__ = ("key", "dtype", "data", "order")

    def __init__(self, key, dtype, data, order):
        self.key, self.dtype, self.data, self.order = key, dtype, data, order


def _as_int(value, what):
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{what} must be an int, got {type(value).__name__}")
    return value


def _view(storage, dtype):
    """The storage's elements as `dtype` (bfloat16 as uint16 bits), in the archive's
    byte order."""
    if storage.dtype is not None and storage.dtype != dtype:
        raise CheckpointError(
            f"storage {storage.key!r} holds {storage.dtype} but a tensor reads it as {dtype}")
    np_dtype = np.dtype("uint16" if dtype == BFLOAT16 else dtype)
    if np_dtype.itemsize > 1:
        np_dtype = np_dtype.newbyteorder(storage.order)
    if storage.data.size % np_dtype.itemsize:
        raise CheckpointError(
            f"storage {storage.key!r} holds {storage.data.size} bytes, not a whole number of "
            f"{dtype} elements")
    return storage.data.view(np_dtype)


def rebuild_tensor(storage, storage_offset, size, stride, dtype=None, conj=False, neg=False):
    """A contiguous numpy copy of the tensor described by (offset, size, stride) into
    `storage`, after checking that every element it addresses lies inside it."""
    if not isinstance(storage, Storage):
        raise CheckpointError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
    if storage.data is None:  # a first pass that only gathers the storages (legacy files)
        return None
    dtype = dtype if dtype is not None else storage.dtype
    if dtype is None:
        raise CheckpointError(f"storage {storage.key!r} is untyped and the tensor gives no dtype")
    flat = _view(storage, dtype)
    offset = _as_int(storage_offset, "storage_offset")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        raise CheckpointError("a tensor's size and stride must be tuples")
    size = tuple(_as_int(s, "size") for s in size)
    stride = tuple(_as_int(s, "stride") for s in stride)
    if len(size) != len(stride):
        raise CheckpointError(f"a tensor has size {size} but stride {stride}")
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise CheckpointError(
            f"a tensor in storage {storage.key!r} has a negative offset, size or stride "
            f"(offset {offset}, size {size}, stride {stride})")
    numel = 1
    for s in size:
        numel *= s
    if numel > flat.size:
        left = _expansion_left.get()
        if numel - flat.size > left:
            raise CheckpointError(
                f"a tensor of size {size} (stride {stride}) would expand the {flat.size} "
                f"elements of storage {storage.key!r} into {numel}, beyond the {left} more "
                f"elements than their storages a file's tensors may hold together "
                f"({MAX_EXPANSION}): refusing that allocation")
        _expansion_left.set(left - (numel - flat.size))
    if numel:
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= flat.size:
            raise CheckpointError(
                f"a tensor (offset {offset}, size {size}, stride {stride}) runs past the end "
                f"of storage {storage.key!r}, which holds {flat.size} elements")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[st * flat.itemsize for st in stride],
            writeable=False)
        out = np.array(view, dtype=flat.dtype.newbyteorder("="), order="C")
    else:
        out = np.zeros(size, dtype=flat.dtype.newbyteorder("="))
    if dtype == BFLOAT16:
        out = (out.astype(np.uint32) << 16).view(np.float32)
    if conj:
        out = np.conj(out)
    if neg:
        out = np.negative(out)
    return out


def _metadata_flags(metadata):
    if metadata is None:
        return False, False
    if not isinstance(metadata, dict):
        raise CheckpointError(f"tensor metadata must be a dict, got {type(metadata).__name__}")
    unknown = set(metadata) - {"conj", "neg"}
    if unknown:
        raise CheckpointError(f"unknown tensor metadata {sorted(map(str, unknown))}")
    return bool(metadata.get("conj", False)), bool(metadata.get("neg", False))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    conj, neg = _metadata_flags(metadata)
    return rebuild_tensor(storage, storage_offset, size, stride, conj=conj, neg=neg)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    if not isinstance(dtype, TorchDType):
        raise CheckpointError(f"a tensor's dtype must be a torch dtype, got {type(dtype).__name__}")
    conj, neg = _metadata_flags(metadata)
    return rebuild_tensor(storage, storage_offset, size, stride, TORCH_DTYPES[dtype.name],
                          conj=conj, neg=neg)


def _check_array(data):
    if data is not None and not isinstance(data, np.ndarray):
        raise CheckpointError(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return _check_array(data)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return _check_array(data)


_TENSOR_TYPES = ("Tensor", "Parameter")


class _TensorType:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def _rebuild_from_type_v2(func, new_type, args, state):
    """torch._tensor._rebuild_from_type_v2 for plain tensors and parameters only."""
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter) \
            or not isinstance(new_type, _TensorType) or not isinstance(args, tuple):
        raise CheckpointError("a tensor of a custom subclass: fastrnn reads plain tensors only")
    return func(*args)


def _torch_size(dims=()):
    return tuple(_as_int(d, "a torch.Size entry") for d in dims)


def _torch_device(spec, index=None):
    if not isinstance(spec, str):
        raise CheckpointError("torch.device takes a string")
    return spec if index is None else f"{spec}:{_as_int(index, 'device index')}"


def _codecs_encode(text, encoding="latin1"):
    """How protocol 2 pickles bytes: _codecs.encode(str, 'latin1')."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("_codecs.encode is allowed only for latin-1 text (bytes)")
    return text.encode("latin1")


def _container(kind):
    def build(*args):
        for a in args:
            if not isinstance(a, (list, tuple, set, frozenset, dict, str, bytes)):
                raise CheckpointError(f"{kind.__name__}() of a {type(a).__name__}")
        return kind(*args)
    build.__name__ = kind.__name__
    return build


ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorType("Tensor"),
    ("torch.nn.parameter", "Parameter"): _TensorType("Parameter"),
    ("torch", "Size"): _torch_size,
    ("torch", "device"): _torch_device,
    ("torch", "UntypedStorage"): StorageType(None),
    ("torch.storage", "UntypedStorage"): StorageType(None),
    ("_codecs", "encode"): _codecs_encode,
}
ALLOWED.update({("torch", name): StorageType(dt) for name, dt in STORAGE_DTYPES.items()})
ALLOWED.update({("torch", name): TorchDType(name) for name in TORCH_DTYPES})
for _module in ("builtins", "__builtin__"):
    for _kind in (set, bytearray):  # as torch's weights_only allowlist (no frozenset)
        ALLOWED[(_module, _kind.__name__)] = _container(_kind)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles `data` resolving only ALLOWED globals. Storages come from
    `load_storage(key, dtype, nbytes)`, which returns that record's bytes as a uint8
    array (or None in a first pass that only gathers them) and raises CheckpointError
    if the record is missing or of another size."""

    def __init__(self, file, load_storage, where, byteorder="<", resolve=None):
        super().__init__(file, encoding="utf-8")
        self._resolve = resolve  # a reader's own stand-ins (numpy pickles, TorchScript)
        self._load_storage = load_storage
        self._storages = {}
        self._where = where
        self._order = byteorder

    def find_class(self, module, name):
        standin = ALLOWED.get((module, name))
        if standin is None and self._resolve is not None:
            standin = self._resolve(module, name)
        if standin is None:
            raise CheckpointError(
                f"{self._where}: refusing the global {module}.{name}: a weights checkpoint "
                "holds tensors and plain containers only, and fastrnn never runs code from a "
                "file. Save the model's state_dict (torch.save(model.state_dict(), path)) "
                "and load that.")
        return standin

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or len(pid) < 5:
            raise CheckpointError(f"{self._where}: unknown persistent id {str(pid)[:80]!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, StorageType):
            raise CheckpointError(f"{self._where}: a storage of unknown type")
        if not isinstance(key, str):
            raise CheckpointError(f"{self._where}: a storage key must be a string")
        numel = _as_int(numel, "a storage size")
        if numel < 0:
            raise CheckpointError(f"{self._where}: storage {key!r} has negative size {numel}")
        cached = self._storages.get(key)
        if cached is None:
            dtype = storage_type.dtype
            nbytes = numel * (ITEMSIZE[dtype] if dtype is not None else 1)
            data = self._load_storage(key, dtype, nbytes)
            cached = self._storages[key] = Storage(key, dtype, data, self._order)
        elif cached.dtype != storage_type.dtype:
            raise CheckpointError(f"{self._where}: storage {key!r} is declared with two dtypes")
        if len(pid) > 5 and pid[5] is not None:  # legacy view metadata
            if not isinstance(pid[5], tuple) or len(pid[5]) != 3:
                raise CheckpointError(f"{self._where}: malformed storage view of {key!r}")
            view_key, offset, view_size = pid[5]
            offset, view_size = _as_int(offset, "view offset"), _as_int(view_size, "view size")
            item = ITEMSIZE[cached.dtype] if cached.dtype is not None else 1
            if offset < 0 or view_size < 0 or (
                    cached.data is not None and (offset + view_size) * item > cached.data.size):
                raise CheckpointError(
                    f"{self._where}: storage view {view_key!r} runs past its storage")
            data = None if cached.data is None else \
                cached.data[offset * item:(offset + view_size) * item]
            return Storage(str(view_key), cached.dtype, data, self._order)
        return cached


def no_storages(key, dtype, nbytes):
    raise CheckpointError(f"a storage ({key!r}) where none belongs")


# How deep MARKs may nest: a state dict nests a few levels (dict, tuple of a tensor's
# arguments, its size tuple); the unpickler keeps a mark stack it grows without bound.
MAX_MARKS = 256
# Opcodes no torch.save of tensors and plain containers writes: instances built by
# calling a class (INST, OBJ, NEWOBJ*), the extension registry, text persistent ids and
# protocol 5's out-of-band buffers.
REFUSED_OPCODES = frozenset({"INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4",
                             "PERSID", "NEXT_BUFFER", "READONLY_BUFFER"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_POPS_MARK = frozenset(op.name for op in pickletools.opcodes
                       if pickletools.markobject in op.stack_before)


class _Window:
    """read / readline / tell over buffer[start:] (an mmap or bytes), copying only
    what is read: what pickletools.genops needs to walk a pickle in place."""

    def __init__(self, buffer, start=0):
        self._buf, self._start, self._pos = buffer, start, start

    def read(self, n=-1):
        end = len(self._buf) if n is None or n < 0 else min(len(self._buf), self._pos + n)
        data = bytes(self._buf[self._pos:end])
        self._pos = max(self._pos, end)
        return data

    def readline(self):
        end = self._buf.find(b"\n", self._pos)
        return self.read((len(self._buf) if end < 0 else end + 1) - self._pos)

    def tell(self):
        return self._pos - self._start


def prescan(buffer, where, start=0, refused=REFUSED_OPCODES):
    """Walk the opcodes of the pickle at buffer[start:] without building anything and
    return its length (through its STOP), or raise CheckpointError if unpickling it
    could take memory the file does not account for.

    Python's unpickler grows its memo table to the largest index a PUT names (a 3 KB
    file storing at index 2**28 took 4 GB) and its mark stack to the nesting; string
    and bytes lengths are read before the bytes. Here every memo index must be below
    the number of opcodes (a pickler numbers its memo entries 0, 1, 2, ...), every
    length must lie inside the record (genops reads at most what is there), MARKs nest
    at most MAX_MARKS deep, frames end inside the record, and opcodes that only build
    arbitrary objects are refused.
    """
    size = len(buffer) - start
    ops = marks = 0
    highest = -1
    try:
        for op, arg, pos in pickletools.genops(_Window(buffer, start)):
            ops += 1
            name = op.name
            if name in refused:
                raise CheckpointError(
                    f"{where}: the pickle uses {name} at byte {pos}, which builds arbitrary "
                    "objects: a weights checkpoint holds tensors and plain containers only")
            if name in _PUTS or name in _GETS:
                if not isinstance(arg, int) or arg < 0 or arg > size:
                    raise CheckpointError(
                        f"{where}: the pickle's {name} at byte {pos} names memo index {arg}, "
                        f"beyond anything a {size}-byte pickle can store")
                highest = max(highest, arg)
            elif name == "MARK":
                marks += 1
                if marks > MAX_MARKS:
                    raise CheckpointError(
                        f"{where}: the pickle nests more than {MAX_MARKS} marks deep (byte {pos})")
            elif name in _POPS_MARK:
                marks -= 1
            elif name == "FRAME" and pos + 9 + arg > size:
                raise CheckpointError(
                    f"{where}: the pickle's frame at byte {pos} claims {arg} bytes, past the end "
                    f"of its {size}-byte record")
            elif name == "STOP":
                if highest >= ops:
                    raise CheckpointError(
                        f"{where}: the pickle names memo index {highest} but has only {ops} "
                        "opcodes")
                return pos + 1
    except CheckpointError:
        raise
    except Exception as exc:  # genops' ValueError: unknown opcode, a length past the end
        raise CheckpointError(f"{where}: corrupt pickle ({type(exc).__name__}: {exc})") from None
    raise CheckpointError(f"{where}: the pickle ends without a STOP (truncated?)")


def unpickle(data, load_storage, where, byteorder="<", resolve=None):
    """Load the pickle that `data` (bytes, or a file-like object positioned at it)
    holds, after prescan() has bounded what it may ask for. Every failure, whatever
    the malformed pickle provokes, is a CheckpointError. `resolve(module, name)` may
    give a stand-in for a global outside ALLOWED (or None)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        data = data.read()
    return unpickle_at(bytes(data), load_storage, where, byteorder, resolve=resolve)[0]


def unpickle_at(data, load_storage, where, byteorder="<", start=0, resolve=None):
    """Load the pickle at data[start:] (bytes or an mmap), after prescan(); returns
    (the object, the offset just past its STOP), for streams of several pickles."""
    # TorchScript archives build their modules with NEWOBJ: a reader that resolves such
    # classes to its own inert stand-ins (resolve) allows it, since find_class still
    # decides what NEWOBJ may instantiate
    refused = REFUSED_OPCODES - {"NEWOBJ"} if resolve is not None else REFUSED_OPCODES
    end = start + prescan(data, where, start, refused)
    record = data[start:end] if start or end != len(data) or not isinstance(data, bytes) \
        else data
    budget = _expansion_left.set(MAX_EXPANSION)
    try:
        obj = RestrictedUnpickler(io.BytesIO(record), load_storage, where, byteorder,
                                  resolve).load()
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"{where}: the pickle nests too deeply") from None
    except MemoryError:
        raise CheckpointError(
            f"{where}: the pickle asks for more memory than it can hold") from None
    except Exception as exc:  # UnpicklingError, EOFError, KeyError (memo), TypeError ...
        raise CheckpointError(f"{where}: corrupt pickle ({type(exc).__name__}: {exc})") from None
    finally:
        _expansion_left.reset(budget)
    return obj, end
