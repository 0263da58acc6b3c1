"""Members of ``.npz`` archives: memory-mapped in place when stored uncompressed (``np.savez``)."""

from __future__ import annotations

import struct
import zipfile
from typing import Literal

import numpy as np
from pydantic import Field

from flows.sources.base import FileSourceModel, SourceError, SourceReader
from flows.sources.npy import ArrayReader

__all__ = ["NpzSource", "member_memmap"]

#: A ZIP local file header (APPNOTE 4.3.7): its fixed part, then the name and the extra field.
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"


def member_memmap(path: str, member: str) -> np.ndarray | None:
    """Memory-map an uncompressed ``.npz`` member in place; ``None`` if it is compressed.

    :mod:`zipfile` gives the member's header offset, compression and sizes; the data starts after the
    member's local header (whose name and extra field lengths may differ from the central directory's).
    """
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        if fields[0] != _LOCAL_SIGNATURE:
            raise SourceError(f"{path}: member {member!r} has no valid local header")
        start = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]  # + name + extra field
        f.seek(start)
        fmt = np.lib.format
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        raise SourceError(f"{path}: member {member!r} holds Python objects, which are not supported")
    if offset - start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != info.file_size:
        raise SourceError(f"{path}: member {member!r} is not a complete .npy file")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class NpzSource(FileSourceModel):
    """One member of a ``.npz`` archive; memory-mapped when stored uncompressed (``np.savez``)."""

    kind: Literal["npz"] = Field("npz", description="Source type: a member of a NumPy .npz archive.")
    path: str = Field(description="Path of the .npz file, readable by every worker.")
    key: str = Field(description="Name of the array inside the archive (as passed to np.savez).")

    def _reader(self) -> SourceReader:
        member = self.key if self.key.endswith(".npy") else self.key + ".npy"
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = zf.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise SourceError(f"{self.path}: not a readable .npz file: {exc}") from None
        if member not in names:
            known = ", ".join(n.removesuffix(".npy") for n in names)
            raise SourceError(f"{self.path}: no array named {self.key!r} in the archive; it holds: {known}")
        data = member_memmap(self.path, member)
        if data is None:  # compressed (np.savez_compressed): decompress the member once per process
            with np.load(self.path, allow_pickle=False) as npz:
                data = npz[self.key.removesuffix(".npy")]
        return ArrayReader(data, f"{self.path}[{self.key}]")
