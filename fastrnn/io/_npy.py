"""numpy's .npy and .npz formats, read without trusting their headers: an .npz's
records come through Archive (sizes checked against the file, inflation bounded), and
an .npy header's shape and dtype must account for exactly the bytes that follow it
before an array is made. Object arrays (pickles) are refused."""
import io
from collections import OrderedDict

import numpy as np

from fastrnn.io._zip import Archive
from fastrnn.io.errors import CheckpointError

MAGIC = b"\x93NUMPY"
# numpy's own default limit on the header's text (np.load(max_header_size=10000))
MAX_HEADER = 10000


def read_npy(where, record):
    """The array an .npy record (bytes, an mmap or a uint8 array) holds, as a native-order
    copy."""
    data = memoryview(record).cast("B") if not isinstance(record, np.ndarray) else \
        memoryview(record)
    size = len(data)
    if size < 10 or bytes(data[:6]) != MAGIC:
        raise CheckpointError(f"{where}: not an .npy record (no \\x93NUMPY magic)")
    major, minor = data[6], data[7]
    if (major, minor) not in ((1, 0), (2, 0)):
        raise CheckpointError(f"{where}: unsupported .npy format version {major}.{minor}")
    width = 2 if major == 1 else 4
    if size < 8 + width:
        raise CheckpointError(f"{where}: truncated .npy header")
    hlen = int.from_bytes(bytes(data[8:8 + width]), "little")
    start = 8 + width + hlen
    if hlen > MAX_HEADER or start > size:
        raise CheckpointError(
            f"{where}: the .npy header claims {hlen} bytes; the record holds {size - 8 - width} "
            f"after its length (at most {MAX_HEADER} are read)")
    reader = (np.lib.format.read_array_header_1_0 if major == 1
              else np.lib.format.read_array_header_2_0)
    try:
        shape, fortran, dtype = reader(io.BytesIO(bytes(data[8:start])), max_header_size=MAX_HEADER)
    except Exception as exc:  # ValueError / SyntaxError of a malformed header dict
        raise CheckpointError(f"{where}: malformed .npy header ({type(exc).__name__}: {exc})") \
            from None
    if dtype.hasobject:
        raise CheckpointError(
            f"{where}: an array of Python objects (dtype {dtype}), which would be a pickle: "
            "fastrnn reads numeric arrays only")
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != size - start:
        raise CheckpointError(
            f"{where}: the .npy header's shape {shape} and dtype {dtype} need "
            f"{count * dtype.itemsize} bytes; the record holds {size - start}")
    flat = np.frombuffer(data, dtype, count, start)
    arr = flat.reshape(shape, order="F" if fortran else "C")
    return np.array(arr, dtype=dtype.newbyteorder("=") if dtype.byteorder != "|" else dtype,
                    order="K")


def read_npz(path, buffer, archive=None):
    """{name: array} of an .npz archive, in the archive's order, names without .npy."""
    archive = archive or Archive(path, buffer)
    out = OrderedDict()
    for name in archive.names():
        if not name.endswith(".npy"):
            raise CheckpointError(f"{path}: the .npz entry {name!r} is not an .npy record")
        out[name[:-4]] = read_npy(f"{path}: {name!r}", archive.read(name))
    return out
