"""torch.save's two formats: the zip archive (torch >= 1.6, and torch.jit.save's archives
of the same layout) and the legacy stream."""

import numpy as np

from fastrnn.io import _torchscript, _unpickle
from fastrnn.io._zip import Archive
from fastrnn.io.errors import CheckpointError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


def _check_size(path, key, data, nbytes):
    if data.size != nbytes:
        raise CheckpointError(
            f"{path}: storage {key!r} is declared as {nbytes} bytes but its record holds "
            f"{data.size}")
    return data


def read_zip(path, buffer, archive=None):
    archive = archive or Archive(path, buffer)
    names = archive.names()
    script = _torchscript.is_torchscript(names)
    pkls = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1
            and n.rsplit("/", 1)[-1] == "data.pkl"]
    if len(pkls) != 1:
        raise CheckpointError(
            f"{path}: not a torch.save archive: expected one <name>/data.pkl, "
            f"found {pkls or 'none'}")
    prefix = pkls[0][:-len("data.pkl")]
    order = "<"
    if prefix + "byteorder" in archive.infos:
        text = bytes(archive.read(prefix + "byteorder")).decode("ascii", "replace").strip()
        if text not in ("little", "big"):
            raise CheckpointError(f"{path}: unknown byteorder {text!r}")
        order = "<" if text == "little" else ">"

    def load_storage(key, dtype, nbytes):
        return _check_size(path, key, archive.read(f"{prefix}data/{key}"), nbytes)

    if script:  # the module tree, its __torch__ classes as inert attribute holders
        return _torchscript.attributes(_unpickle.unpickle(
            bytes(archive.read(pkls[0])), load_storage, f"{path} (TorchScript)", order,
            resolve=_torchscript.resolve))
    return _unpickle.unpickle(bytes(archive.read(pkls[0])), load_storage, path, order)


def read_legacy(path, buffer):
    """The pre-1.6 stream: magic, protocol, sys_info, the main pickle, its storage
    keys, then each storage as an 8-byte element count and its bytes."""
    where = f"{path} (legacy torch format)"
    magic, pos = _unpickle.unpickle_at(buffer, _unpickle.no_storages, where)
    if magic != LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a torch checkpoint (bad magic number)")
    protocol, pos = _unpickle.unpickle_at(buffer, _unpickle.no_storages, where, start=pos)
    if protocol != LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: unsupported legacy protocol version {protocol!r}")
    sys_info, pos = _unpickle.unpickle_at(buffer, _unpickle.no_storages, where, start=pos)
    if not isinstance(sys_info, dict):
        raise CheckpointError(f"{path}: malformed legacy header")
    order = "<" if sys_info.get("little_endian", True) else ">"
    main_start = pos
    # First pass: which storages the main pickle names, with their dtypes and sizes.
    wanted = {}

    def gather(key, dtype, nbytes):
        wanted[key] = (dtype, nbytes)
        return None

    _, main_end = _unpickle.unpickle_at(buffer, gather, where, order, start=main_start)
    keys, pos = _unpickle.unpickle_at(buffer, _unpickle.no_storages, where, start=main_end)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointError(f"{path}: malformed legacy storage list")
    located = {}
    for key in keys:
        if key not in wanted:
            raise CheckpointError(f"{path}: legacy storage {key!r} is listed but never used")
        dtype, nbytes = wanted[key]
        if pos + 8 > len(buffer):
            raise CheckpointError(f"{path}: truncated before storage {key!r}")
        count = int.from_bytes(bytes(buffer[pos:pos + 8]), "little" if order == "<" else "big")
        item = _unpickle.ITEMSIZE[dtype] if dtype is not None else 1
        if count * item != nbytes:
            raise CheckpointError(
                f"{path}: storage {key!r} is declared as {nbytes} bytes but its record "
                f"holds {count * item}")
        if pos + 8 + nbytes > len(buffer):
            raise CheckpointError(
                f"{path}: storage {key!r} runs past the end of the file (truncated?)")
        located[key] = np.frombuffer(buffer, np.uint8, nbytes, pos + 8)
        pos += 8 + nbytes
    missing = set(wanted) - set(located)
    if missing:
        raise CheckpointError(f"{path}: legacy storages {sorted(missing)} have no data")

    def load_storage(key, dtype, nbytes):
        return _check_size(path, key, located[key], nbytes)

    return _unpickle.unpickle_at(buffer, load_storage, where, order, start=main_start)[0]
