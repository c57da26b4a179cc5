"""safetensors: an 8-byte little-endian header length, a JSON header, the data.
Every claim of the header is checked against the file before a byte is used."""
import json

import numpy as np

from fastrnn.io.errors import CheckpointError

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
          "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "U16": "<u2",
          "U32": "<u4", "U64": "<u8"}
MAX_HEADER = 100 * 1024 * 1024


def looks_like(head, size):
    """An 8-byte length then '{': the header's honesty is read()'s to check."""
    return len(head) >= 9 and int.from_bytes(head[:8], "little") > 0 and head[8:9] == b"{"


def read(path, buffer):
    size = len(buffer)
    if size < 8:
        raise CheckpointError(f"{path}: truncated safetensors file")
    n = int.from_bytes(bytes(buffer[:8]), "little")
    if n > size - 8 or n > MAX_HEADER:
        raise CheckpointError(
            f"{path}: the safetensors header claims {n} bytes but the file holds {size - 8} after "
            "its length")
    try:
        header = json.loads(bytes(buffer[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    data_start = 8 + n
    data_len = size - data_start
    entries = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{path}: tensor {name!r}: malformed header entry")
        dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
        if dtype not in DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise CheckpointError(f"{path}: tensor {name!r}: bad shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(
                isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise CheckpointError(f"{path}: tensor {name!r}: bad data_offsets {offsets!r}")
        begin, end = offsets
        numel = 1
        for d in shape:
            numel *= d
        nbytes = numel * np.dtype(DTYPES[dtype]).itemsize
        if not 0 <= begin <= end <= data_len or end - begin != nbytes:
            raise CheckpointError(
                f"{path}: tensor {name!r}: data_offsets {offsets} do not fit its shape {shape} "
                f"and dtype {dtype} ({nbytes} bytes) within the {data_len} bytes of data")
        entries.append((begin, end, name, dtype, shape))
    entries.sort()
    expected = 0
    for begin, end, name, _, _ in entries:
        if begin != expected:
            raise CheckpointError(
                f"{path}: tensor {name!r} starts at {begin}, expected {expected}: the header's "
                "offsets overlap or leave a gap")
        expected = end
    if expected != data_len:
        raise CheckpointError(
            f"{path}: the header accounts for {expected} bytes of data, the file holds {data_len}")
    out = {}
    order = {name: i for i, name in enumerate(header)}
    for begin, end, name, dtype, shape in sorted(entries, key=lambda e: order[e[2]]):
        count = (end - begin) // np.dtype(DTYPES[dtype]).itemsize
        arr = np.frombuffer(buffer, DTYPES[dtype], count, data_start + begin).reshape(shape)
        arr = arr.astype(arr.dtype.newbyteorder("="))  # a copy, native order
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out
