"""What every source has: the :class:`SourceReader` interface and the base of the parameter models."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = ["Region", "SourceError", "SourceReader", "SourceModel", "FileSourceModel", "region_key", "hash_array"]

Region = tuple[slice, ...]


class SourceError(ValueError):
    """A source cannot be opened or read: missing file, unknown member or column, unsupported type."""


def region_key(region: Region) -> list[list[int]]:
    """A JSON-able form of a region."""
    return [[s.start, s.stop] for s in region]


def hash_array(data: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([data.dtype.str, list(data.shape)]).encode())
    if data.dtype.kind == "O":  # variable-length strings: their UTF-8 bytes (tobytes() gives addresses)
        import numcodecs

        h.update(numcodecs.VLenUTF8().encode(np.ascontiguousarray(data).reshape(-1)))
    else:
        h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()


class SourceReader(ABC):
    """An opened source. Implementations are safe to use from many threads."""

    shape: tuple[int, ...]
    dtype: np.dtype
    #: A natural chunk shape (a Zarr source's own chunks), used when the target gives none.
    chunks: tuple[int, ...] | None = None
    #: The fill value of a Zarr source, used when the target gives none.
    fill_value: Any = None
    #: The source's own names of its dimensions, if it has them (the target's default).
    dimension_names: tuple[str, ...] | None = None

    @abstractmethod
    def read(self, region: Region) -> np.ndarray:
        """The data in ``region`` (a tuple of ``slice(start, stop)``, one per dimension)."""

    def fingerprint(self, region: Region) -> str:
        """A digest that changes exactly when the data in ``region`` changes (default: hash of the data)."""
        return hash_array(self.read(region))

    def forget(self) -> None:  # noqa: B027 - an optional hook: most readers keep nothing
        """Drop whatever this thread kept from :meth:`fingerprint` for the :meth:`read` that would follow
        (called before fingerprinting a batch whose data is then never read, e.g. a cache hit).
        Default: nothing is kept."""

    def describe(self) -> str:
        return f"{type(self).__name__} shape={self.shape} dtype={self.dtype}"


class SourceModel(BaseModel):
    """The common base of the source parameter models: frozen, with ``open()`` and ``targets()``."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    def open(self) -> SourceReader:
        """Open the source (readers are cached per process while the underlying file is unchanged)."""
        return _open_cached(self, self._identity())

    def targets(self, array: str) -> list[tuple[str, SourceModel]]:
        """The arrays this source lands in, as ``(array path, source)``; one unless a table is split."""
        return [(array, self)]

    def _identity(self) -> tuple[Any, ...]:
        """What makes a cached reader stale (for files: inode, size and modification time)."""
        path = getattr(self, "file", None)
        if path is None:
            return ()
        try:
            st = os.stat(path)
        except OSError as exc:
            raise SourceError(f"source file {path!r} cannot be opened: {exc.strerror or exc}") from None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _reader(self) -> SourceReader:
        raise NotImplementedError


class FileSourceModel(SourceModel):
    """A source read from one local file (``path``): its reader is reopened when the file changes."""

    @property
    def file(self) -> str:
        return self.path  # type: ignore[attr-defined,no-any-return]


@functools.lru_cache(maxsize=16)
def _open_cached(source: SourceModel, identity: tuple[Any, ...]) -> SourceReader:
    return source._reader()
