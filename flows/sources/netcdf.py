"""NetCDF4/HDF5 files on local disk or any zarrcore store, read with h5netcdf, their CF encoding kept.

:func:`open_netcdf` gives a :class:`NetcdfSource`: every variable (coordinates too) with its dims, dtype,
the attributes exactly as stored (``scale_factor``, ``add_offset``, ``_FillValue``, ``units``,
``calendar``...: nothing is decoded, packed integers stay packed) and lazily sliced data, the global
attributes and the file's identity. Files on object stores are read through :class:`StoreFile`, a
read-only file object over ranged reads with a bounded block cache, so one small variable of a large
file costs a few requests. :func:`order_by_coordinate` sorts sources by their first coordinate value.
"""

from __future__ import annotations

import atexit
import collections
import io
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from flows.credentials import CredentialsBlock, with_credentials
from flows.params import StorageOptions
from flows.sources.base import Region, SourceError, SourceModel, SourceReader
from flows.sources.listing import FileIdentity, content_hash, file_identity, locate
from zarrcore.storage import RangeRequest, Store

__all__ = [
    "NetcdfArraySource",
    "NetcdfSource",
    "NetcdfVariable",
    "StoreFile",
    "open_netcdf",
    "order_by_coordinate",
]

#: Block size and number of blocks the store file keeps: reads of HDF5 metadata hit the cache, and the
#: cache never holds more than ``BLOCK_SIZE * CACHE_BLOCKS`` bytes.
BLOCK_SIZE = 64 << 10
CACHE_BLOCKS = 64


class StoreFile(io.RawIOBase):
    """A read-only, seekable file over one object of a store: each read asks only for the bytes it
    needs (``Store.get_versioned`` with a byte range), small reads go through an LRU cache of whole
    blocks (a read of several missing blocks is one request), and a read of more than half the cache
    bypasses it. Every read is pinned to the version seen at open, so a file replaced while it is read
    raises :class:`~zarrcore.errors.PreconditionFailed` instead of mixing two files."""

    def __init__(self, store: Store, key: str, *, block_size: int = BLOCK_SIZE, cache_blocks: int = CACHE_BLOCKS):
        super().__init__()
        self.store, self.key, self.block_size, self.cache_blocks = store, key, block_size, cache_blocks
        self.size = store.size(key)
        first = RangeRequest(0, min(block_size, self.size))
        data, self.version = store.get_versioned(key, first)
        self._blocks: collections.OrderedDict[int, bytes] = collections.OrderedDict({0: data})
        self._pos = 0
        self._lock = threading.Lock()
        #: Requests made and bytes fetched so far (the first block included).
        self.requests, self.bytes_fetched = 1, len(data)

    @property
    def cached_blocks(self) -> int:
        """How many blocks the cache holds now (never more than ``cache_blocks``)."""
        return len(self._blocks)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _fetch(self, start: int, stop: int) -> bytes:
        data, _ = self.store.get_versioned(self.key, RangeRequest(start, stop), version=self.version)
        self.requests += 1
        self.bytes_fetched += len(data)
        return data

    def _block_run(self, first: int, last: int) -> None:
        """Fetch the missing blocks among ``first..last`` (one request per run of missing blocks)."""
        missing = [b for b in range(first, last + 1) if b not in self._blocks]
        while missing:
            run = [missing.pop(0)]
            while missing and missing[0] == run[-1] + 1:
                run.append(missing.pop(0))
            start, stop = run[0] * self.block_size, min((run[-1] + 1) * self.block_size, self.size)
            data = self._fetch(start, stop)
            for i, b in enumerate(run):
                self._blocks[b] = data[i * self.block_size : (i + 1) * self.block_size]
        for b in range(first, last + 1):
            self._blocks.move_to_end(b)
        while len(self._blocks) > self.cache_blocks:
            self._blocks.popitem(last=False)

    def pread(self, start: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``start`` (fewer at the end of the file)."""
        stop = min(start + n, self.size)
        if start >= stop:
            return b""
        with self._lock:
            first, last = start // self.block_size, (stop - 1) // self.block_size
            if last - first + 1 > self.cache_blocks // 2:  # a large read: straight from the store
                return self._fetch(start, stop)
            self._block_run(first, last)
            data = b"".join(self._blocks[b] for b in range(first, last + 1))
        offset = start - first * self.block_size
        return data[offset : offset + stop - start]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.pread(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        n = self.size - self._pos if size is None or size < 0 else size
        data = self.pread(self._pos, n)
        self._pos += len(data)
        return data


class LazyData:
    """A variable's stored (encoded) values, read on indexing: ``data[region]`` reads only that region."""

    def __init__(self, variable: Any, lock: threading.Lock) -> None:
        self._variable, self._lock = variable, lock
        self.dtype: np.dtype = np.dtype(variable.dtype)
        # h5netcdf's shape is its dimensions' sizes, looked up anew on every read, to pad a variable
        # shorter than an unlimited dimension. A dataset with no unlimited axis is as long as its
        # dimensions, so its own shape is the variable's, and a numeric one is read from the HDF5
        # dataset itself (strings and variables along unlimited dimensions still go through h5netcdf).
        dataset = variable._h5ds
        fixed = dataset.maxshape is not None and None not in dataset.maxshape
        self.shape: tuple[int, ...] = tuple(int(n) for n in (dataset.shape if fixed else variable.shape))
        self.ndim = len(self.shape)
        self._dataset = dataset if self.dtype.kind in "biufc" and tuple(dataset.shape) == self.shape else None

    def __getitem__(self, key: Any) -> np.ndarray:
        with self._lock:
            if self._dataset is not None:
                return np.asarray(self._dataset[key])
            return np.asarray(self._variable[key])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyData(shape={self.shape}, dtype={self.dtype})"


@dataclass(frozen=True)
class NetcdfVariable:
    """One variable of a file: its dims, lazily read stored values, its attributes exactly as stored,
    and its fill value (the ``_FillValue`` attribute; ``None`` when there is none)."""

    name: str
    dims: tuple[str, ...]
    data: LazyData
    attrs: dict[str, Any]
    fill_value: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype


class NetcdfSource:
    """An opened NetCDF4/HDF5 file: ``variables`` (by name, coordinates included), the global ``attrs``
    and its ``identity``, computed on first use (the content hash reads the whole file, pinned to the
    version being read). Close it (or use ``with``) to release the file."""

    def __init__(self, url: str, variables: dict[str, NetcdfVariable], attrs: dict[str, Any], *, file: StoreFile,
                 handle: Any, storage_options: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.url, self.variables, self.attrs = url, variables, attrs
        #: The file object the variables are read through (``requests``, ``bytes_fetched``, ``version``).
        self.file = file
        self._handle, self._options = handle, dict(storage_options or {})
        self._identity: FileIdentity | None = None

    @property
    def identity(self) -> FileIdentity:
        """The file's :class:`~flows.sources.listing.FileIdentity`, of the very version being read."""
        if self._identity is None:
            ident = file_identity(self.url, self._options, with_hash=False, version=self.file.version)
            digest = content_hash(self.file.store, self.file.key, self.file.size, version=self.file.version)
            self._identity = FileIdentity(ident.url, self.file.size, ident.version, ident.mtime_ns, digest)
        return self._identity

    def coordinate(self, dim: str) -> NetcdfVariable:
        """The coordinate variable of ``dim`` (the variable named like it, with that one dim)."""
        var = self.variables.get(dim)
        if var is None or var.dims != (dim,):
            raise SourceError(f"{self.url}: no coordinate variable for dimension {dim!r}")
        return var

    def coordinate_values(self, dim: str) -> np.ndarray:
        """The stored values of the coordinate of ``dim`` (times as numbers in its ``units``)."""
        return self.coordinate(dim).data[...]

    def close(self) -> None:
        """Release the file (again is a no-op)."""
        _live.discard(self)
        if not self.file.closed:
            self._handle.close()
            self.file.close()

    def __enter__(self) -> NetcdfSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NetcdfSource({self.url!r}, variables={list(self.variables)})"


def _attrs(mapping: Any) -> dict[str, Any]:
    return {str(k): mapping[k] for k in mapping}


def open_netcdf(
    url: str, storage_options: dict[str, Any] | None = None, *, block_size: int = BLOCK_SIZE,
    cache_blocks: int = CACHE_BLOCKS,
) -> NetcdfSource:  # fmt: skip
    """Open the NetCDF4/HDF5 file at ``url`` (a path or a store URL: ``file://``, ``memory://``, ``s3://``,
    ``gs://``, ``az://``), through zarrcore's stores with ``storage_options``. Nothing is decoded:
    attributes and values are the file's own. Raises :class:`SourceError` for a file h5netcdf cannot read
    and :class:`~zarrcore.errors.NotFound` for a missing one."""
    import h5netcdf

    here = locate(url, storage_options)
    file = StoreFile(here.store.open(), here.key, block_size=block_size, cache_blocks=cache_blocks)
    try:
        handle = h5netcdf.File(file, "r", phony_dims="access")
    except (OSError, ValueError) as exc:
        file.close()
        raise SourceError(f"{here.url}: not a readable NetCDF4/HDF5 file: {exc}") from None
    lock = threading.Lock()
    variables: dict[str, NetcdfVariable] = {}

    def collect(group: Any, prefix: str) -> None:
        for name, var in group.variables.items():
            attrs = _attrs(var.attrs)
            variables[prefix + name] = NetcdfVariable(prefix + name, tuple(var.dimensions), LazyData(var, lock),
                                                      attrs, attrs.get("_FillValue"))  # fmt: skip
        for name, sub in group.groups.items():
            collect(sub, f"{prefix}{name}/")

    collect(handle, "")
    source = NetcdfSource(here.url, variables, _attrs(handle.attrs), file=file, handle=handle,
                          storage_options=storage_options)  # fmt: skip
    _live.add(source)
    return source


#: Every source opened and not yet closed or collected.
_live: weakref.WeakSet[NetcdfSource] = weakref.WeakSet()


@atexit.register
def close_all() -> None:
    """Close every source still open. HDF5 must close a file read through a Python file object
    before the interpreter tears down, or the process crashes at exit; this runs at exit."""
    for source in list(_live):
        try:
            source.close()
        except Exception:  # a file already gone: nothing left to release
            _live.discard(source)


def _first_value(source: NetcdfSource, dim: str) -> tuple[float, str | None, str | None]:
    coord = source.coordinate(dim)
    if coord.shape[0] == 0:
        raise SourceError(f"{source.url}: dimension {dim!r} is empty")
    units, calendar = coord.attrs.get("units"), coord.attrs.get("calendar")
    if " since " in str(units or "") and calendar is None:
        calendar = "standard"  # CF's default calendar
    return float(coord.data[0:1][0]), None if units is None else str(units), None if calendar is None else str(calendar)


def order_by_coordinate(sources: list[NetcdfSource], dim: str) -> list[NetcdfSource]:
    """``sources`` sorted by the first value of their coordinate along ``dim`` (then by URL). Values are
    compared as stored, so every file must use the same ``units`` and ``calendar`` (for times, e.g.
    ``hours since 2000-01-01`` and ``standard``); mixed ones raise :class:`SourceError` naming the files."""
    keyed = [(_first_value(s, dim), s) for s in sources]
    for attr, index in (("units", 1), ("calendar", 2)):
        seen: dict[str | None, list[str]] = {}
        for key, s in keyed:
            seen.setdefault(key[index], []).append(s.url)
        if len(seen) > 1:
            parts = "; ".join(f"{value!r}: {', '.join(urls)}" for value, urls in seen.items())
            raise SourceError(f"coordinate {dim!r} has mixed {attr} across files, refusing to order them: {parts}")
    return [s for _, s in sorted(keyed, key=lambda item: (item[0][0], item[1].url))]


class _VariableReader(SourceReader):
    """One variable of a NetCDF file as a source array (stored values: packed integers stay packed)."""

    def __init__(self, source: NetcdfSource, variable: str) -> None:
        if variable not in source.variables:
            raise SourceError(f"{source.url}: no variable {variable!r}; it has {sorted(source.variables)}")
        self._source, self._var = source, source.variables[variable]
        self.shape, self.dtype, self.fill_value = self._var.shape, self._var.dtype, self._var.fill_value

    def read(self, region: Region) -> np.ndarray:
        return self._var.data[region]

    def describe(self) -> str:
        return f"{self._source.url}:{self._var.name} dims={self._var.dims} shape={self.shape} dtype={self.dtype}"


class NetcdfArraySource(SourceModel):
    """One variable of a NetCDF4/HDF5 file on local disk or any store, landed as one array of its stored
    values (with its ``_FillValue`` as the fill value)."""

    kind: Literal["netcdf"] = Field("netcdf", description="Source type: one variable of a NetCDF4/HDF5 file.")
    url: str = Field(description="Path or store URL of the file: /data/a.nc, s3://bucket/raw/a.nc, gs://..., az://...")
    variable: str = Field(description="Name of the variable to land (a path such as 'group/var' inside groups).")
    storage_options: StorageOptions = Field(default_factory=dict)
    credentials_block: CredentialsBlock = None

    @property
    def options(self) -> dict[str, Any]:
        """The file's store options, naming its credentials block, if any."""
        return with_credentials(self.storage_options, self.credentials_block)

    def _identity(self) -> tuple[Any, ...]:
        """The file's size and version: a reader is reopened when the file is replaced."""
        ident = file_identity(self.url, self.options, with_hash=False)
        return (ident.size, ident.version, ident.mtime_ns)

    def _reader(self) -> SourceReader:
        return _VariableReader(open_netcdf(self.url, self.options), self.variable)

    def __hash__(self) -> int:  # storage_options is a dict
        return hash((self.kind, self.url, self.variable, repr(sorted(self.options.items()))))
