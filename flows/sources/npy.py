"""``.npy`` files, memory-mapped, and the reader of any numpy array (also used for ``.npz`` members)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from flows.sources.base import FileSourceModel, Region, SourceError, SourceReader

__all__ = ["NpySource", "ArrayReader"]


class ArrayReader(SourceReader):
    """Regions of an in-memory or memory-mapped numpy array."""

    def __init__(self, data: np.ndarray, name: str) -> None:
        if data.dtype.fields is not None or data.dtype.hasobject:
            raise SourceError(f"{name}: structured and object arrays are not supported (dtype {data.dtype})")
        self._data = data
        self._name = name
        self.shape = tuple(int(n) for n in data.shape)
        self.dtype = data.dtype

    def read(self, region: Region) -> np.ndarray:
        return np.asarray(self._data[region])

    def describe(self) -> str:
        return f"{self._name} shape={self.shape} dtype={self.dtype}"


class NpySource(FileSourceModel):
    """A ``.npy`` file, memory-mapped (never loaded whole)."""

    kind: Literal["npy"] = Field("npy", description="Source type: a NumPy .npy file.")
    path: str = Field(description="Path of the .npy file, readable by every worker.")

    def _reader(self) -> SourceReader:
        try:
            data = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{self.path}: not a readable .npy file: {exc}") from None
        return ArrayReader(data, self.path)
