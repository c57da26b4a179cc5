"""Reading zip archives (torch.save's format, .npz) without trusting them.

zipfile parses the central directory; every record is then read from the file by us:
its local header checked against the central directory, stored records sliced from
a memory map without a copy, deflated ones inflated with a bound. zipfile's CRC check
is not applied, as torch does not apply it either (it reads archives written with
torch.serialization.set_crc32_options(False)).
"""
import mmap
import struct
import zipfile
import zlib

import numpy as np

from fastrnn.io.errors import CheckpointError

_LOCAL = struct.Struct("<4sHHHHHIIIHH")

# A deflated record may not inflate past its declared size, nor past this many
# times its compressed size (a zip bomb stops here, not in memory).
MAX_RATIO = 1024


class Archive:
    def __init__(self, path, buffer):
        self.path = path
        self.buffer = buffer
        try:
            import io
            self._zip = zipfile.ZipFile(io.BytesIO(buffer) if not isinstance(buffer, mmap.mmap)
                                        else _MmapFile(buffer))
            infos = self._zip.infolist()
        except Exception as exc:  # zipfile raises many kinds on a damaged directory
            raise CheckpointError(
                f"{path}: not a readable zip archive ({type(exc).__name__}: {exc})") from None
        self.infos = {}
        for info in infos:
            name = info.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                raise CheckpointError(f"{path}: refusing the archive entry name {name!r}")
            if name in self.infos:
                raise CheckpointError(f"{path}: the archive holds {name!r} twice")
            self.infos[name] = info

    def names(self):
        return list(self.infos)

    def read(self, name):
        """The record's bytes as a read-only uint8 array (a view of the file when the
        record is stored, as torch stores every record)."""
        info = self.infos.get(name)
        if info is None:
            raise CheckpointError(f"{self.path}: the record {name!r} is missing")
        buf = self.buffer
        start = info.header_offset
        if start < 0 or start + _LOCAL.size > len(buf):
            raise CheckpointError(f"{self.path}: {name!r}: local header past the end of the file")
        sig, _ver, flags, method, _t, _d, _crc, csize, usize, nlen, xlen = \
            _LOCAL.unpack_from(buf, start)
        if sig != b"PK\x03\x04":
            raise CheckpointError(f"{self.path}: {name!r}: bad local header signature")
        raw_name = bytes(buf[start + _LOCAL.size:start + _LOCAL.size + nlen])
        local_name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        if local_name != name or method != info.compress_type:
            raise CheckpointError(
                f"{self.path}: {name!r}: the local header ({local_name!r}, method {method}) "
                f"disagrees with the central directory (method {info.compress_type})")
        if not flags & 0x08 and csize != 0xFFFFFFFF and (
                csize != info.compress_size or usize != info.file_size):
            raise CheckpointError(
                f"{self.path}: {name!r}: the local header's sizes ({csize}, {usize}) "
                f"disagree with the central directory ({info.compress_size}, {info.file_size})")
        data_start = start + _LOCAL.size + nlen + xlen
        data_end = data_start + info.compress_size
        if data_end > len(buf):
            raise CheckpointError(
                f"{self.path}: {name!r} runs past the end of the file (truncated?)")
        if method == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise CheckpointError(f"{self.path}: {name!r}: stored record with two sizes")
            return np.frombuffer(buf, np.uint8, info.file_size, data_start)
        if method == zipfile.ZIP_DEFLATED:
            limit = min(info.file_size, MAX_RATIO * max(info.compress_size, 1))
            inflater = zlib.decompressobj(-15)
            try:
                out = inflater.decompress(bytes(buf[data_start:data_end]), limit + 1)
            except zlib.error as exc:
                raise CheckpointError(
                    f"{self.path}: {name!r}: corrupt deflate data ({exc})") from None
            if len(out) != info.file_size or inflater.unconsumed_tail:
                raise CheckpointError(
                    f"{self.path}: {name!r} inflates to other than its declared "
                    f"{info.file_size} bytes (limit {limit})")
            return np.frombuffer(out, np.uint8)
        raise CheckpointError(f"{self.path}: {name!r}: unsupported compression method {method}")


class _MmapFile:
    """A read-only file object over an mmap, for zipfile (which wants seek/tell/read)."""

    def __init__(self, mm):
        self._mm = mm
        self._pos = 0

    def seek(self, offset, whence=0):
        base = (0, self._pos, len(self._mm))[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self):
        return self._pos

    def read(self, n=-1):
        end = len(self._mm) if n is None or n < 0 else min(len(self._mm), self._pos + n)
        data = self._mm[self._pos:end]
        self._pos = max(self._pos, end)
        return data

    def seekable(self):
        return True
