"""Where ingest reads from: ``.npy``/``.npz`` files, Parquet/Arrow tables, Zarr arrays on any store,
and a deterministic synthetic generator.

A source is chosen by a parameter model (a pydantic discriminated union on ``kind``). Opening it gives
a :class:`SourceReader`: shape and dtype, ``read(region)`` for any rectangular region, and
``fingerprint(region)``, which changes exactly when the data in that region changes. Every region is
readable on its own, so chunk batches run anywhere and in any order.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

import zarrcore
from flows.params import StorageOptions, StoreURL
from flows.stores import shared_store
from zarrcore.errors import MetadataError
from zarrcore.metadata import json_dumps
from zarrcore.nodes import read_node
from zarrcore.storage.base import Store

__all__ = [
    "Region",
    "SourceReader",
    "NpySource",
    "NpzSource",
    "ParquetSource",
    "ZarrSource",
    "SyntheticSource",
    "SourceSpec",
    "SourceError",
]

Region = tuple[slice, ...]


class SourceError(ValueError):
    """A source cannot be opened or read: missing file, unknown member or column, unsupported type."""


def region_key(region: Region) -> list[list[int]]:
    """A JSON-able form of a region."""
    return [[s.start, s.stop] for s in region]


def _hash_array(data: np.ndarray) -> str:
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

    @abstractmethod
    def read(self, region: Region) -> np.ndarray:
        """The data in ``region`` (a tuple of ``slice(start, stop)``, one per dimension)."""

    def fingerprint(self, region: Region) -> str:
        """A digest that changes exactly when the data in ``region`` changes (default: hash of the data)."""
        return _hash_array(self.read(region))

    def describe(self) -> str:
        return f"{type(self).__name__} shape={self.shape} dtype={self.dtype}"


class _SourceModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def open(self) -> SourceReader:
        """Open the source (readers are cached per process while the underlying file is unchanged)."""
        return _open_cached(self, self._identity())

    def targets(self, array: str) -> list[tuple[str, _SourceModel]]:
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


class _FileSourceModel(_SourceModel):
    @property
    def file(self) -> str:
        return self.path  # type: ignore[attr-defined,no-any-return]


@functools.lru_cache(maxsize=16)
def _open_cached(source: _SourceModel, identity: tuple[Any, ...]) -> SourceReader:
    return source._reader()


# -- numpy files -----------------------------------------------------------------------------------


class _ArrayReader(SourceReader):
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


def _npz_member_memmap(path: str, member: str) -> np.ndarray | None:
    """Memory-map an uncompressed ``.npz`` member in place; ``None`` if it is compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        f.seek(start)
        version = np.lib.format.read_magic(f)
        fmt = np.lib.format
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        raise SourceError(f"{path}: member {member!r} holds Python objects, which are not supported")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class NpySource(_FileSourceModel):
    """A ``.npy`` file, memory-mapped (never loaded whole)."""

    kind: Literal["npy"] = Field("npy", description="Source type: a NumPy .npy file.")
    path: str = Field(description="Path of the .npy file, readable by every worker.")

    def _reader(self) -> SourceReader:
        try:
            data = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{self.path}: not a readable .npy file: {exc}") from None
        return _ArrayReader(data, self.path)


class NpzSource(_FileSourceModel):
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
        data = _npz_member_memmap(self.path, member)
        if data is None:  # compressed (np.savez_compressed): decompress the member once per process
            with np.load(self.path, allow_pickle=False) as npz:
                data = npz[self.key.removesuffix(".npy")]
        return _ArrayReader(data, f"{self.path}[{self.key}]")


# -- Parquet and Arrow -----------------------------------------------------------------------------


class _TableReader(SourceReader):
    """Numeric columns of a Parquet or Arrow IPC file, as a 2-D ``(rows, columns)`` or a 1-D array; a
    1-D array may also hold a string column (variable-length strings, nulls read as ``''``).

    Parquet is read by row group: a region reads only the row groups it overlaps, and each thread keeps
    its last decoded row group, so memory stays bounded by row-group size times concurrency.
    """

    def __init__(self, path: str, columns: tuple[str, ...] | None, matrix: bool, *, listing: bool = False) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc
        import pyarrow.parquet as pq

        self._path = path
        self._local = threading.local()
        self._parquet = not path.endswith((".arrow", ".feather", ".ipc"))
        try:
            if self._parquet:
                meta = pq.ParquetFile(path)
                schema = meta.schema_arrow
                self._group_rows = [meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups)]
                self._table = None
            else:
                self._table = ipc.open_file(pa.memory_map(path, "r")).read_all()
                schema = self._table.schema
                self._group_rows = [self._table.num_rows]
        except (OSError, pa.ArrowInvalid) as exc:
            raise SourceError(f"{path}: not a readable Parquet/Arrow file: {exc}") from None
        numeric = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                   or pa.types.is_boolean(f.type)]  # fmt: skip
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        with_strings = listing or not matrix  # string columns land only as arrays of their own
        if columns is None:
            columns = tuple(f.name for f in schema if f.name in numeric or (with_strings and f.name in strings))
            if not columns:
                raise SourceError(f"{path}: the table has no numeric{' or string' if with_strings else ''} columns")
        for c in columns:
            if c not in schema.names:
                raise SourceError(f"{path}: no column named {c!r}; columns: {', '.join(schema.names)}")
            if c in strings and not with_strings:
                raise SourceError(f"{path}: column {c!r} holds strings: land it with layout 'columns' (one array each)")
            if c not in numeric and c not in strings:
                raise SourceError(
                    f"{path}: column {c!r} has type {schema.field(c).type}, which is neither numeric nor a string"
                )
        self.columns = list(columns)
        if not matrix and len(self.columns) != 1:
            raise SourceError(f"{path}: a 1-D column source needs exactly one column, got {self.columns}")
        self._matrix = matrix
        self._starts = np.concatenate([[0], np.cumsum(self._group_rows)]).astype(np.int64)
        rows = int(self._starts[-1])
        self.dtype = np.result_type(*[schema.field(c).type.to_pandas_dtype() for c in self.columns])
        self.shape = (rows, len(self.columns)) if matrix else (rows,)

    def _group(self, i: int) -> np.ndarray:
        cached = getattr(self._local, "group", None)
        if cached is not None and cached[0] == i:
            return cached[1]
        if self._parquet:
            import pyarrow.parquet as pq

            table = pq.ParquetFile(self._path).read_row_group(i, columns=self.columns)
        else:
            table = self._table.select(self.columns)  # type: ignore[union-attr]
        cols = [self._values(table.column(c)) for c in self.columns]
        block = np.stack(cols, axis=1)
        self._local.group = (i, block)
        return block

    def _values(self, column: Any) -> np.ndarray:
        if self.dtype.kind == "O":  # strings: nulls become '' (the fill value), the rest stay str
            return np.array(["" if v is None else v for v in column.to_pylist()], dtype=object)
        return column.to_numpy(zero_copy_only=False).astype(self.dtype, copy=False)  # type: ignore[no-any-return]

    def read(self, region: Region) -> np.ndarray:
        rows = region[0]
        col_sel = region[1] if self._matrix else slice(0, 1)
        out = np.empty((rows.stop - rows.start, col_sel.stop - col_sel.start), dtype=self.dtype)
        first = int(np.searchsorted(self._starts, rows.start, side="right")) - 1
        for g in range(max(first, 0), len(self._group_rows)):
            g0, g1 = int(self._starts[g]), int(self._starts[g + 1])
            if g0 >= rows.stop:
                break
            lo, hi = max(rows.start, g0), min(rows.stop, g1)
            if lo < hi:
                out[lo - rows.start : hi - rows.start] = self._group(g)[lo - g0 : hi - g0, col_sel]
        return out if self._matrix else out[:, 0]

    def describe(self) -> str:
        return f"{self._path} columns={self.columns} shape={self.shape} dtype={self.dtype}"


class ParquetSource(_FileSourceModel):
    """Numeric columns of a Parquet (or Arrow IPC: ``.arrow``/``.feather``) file; with layout
    ``columns``, string columns too (each lands as an array of variable-length strings)."""

    kind: Literal["parquet"] = Field("parquet", description="Source type: a Parquet or Arrow IPC table.")
    path: str = Field(description="Path of the .parquet (or .arrow/.feather) file, readable by every worker.")
    columns: tuple[str, ...] | None = Field(
        None,
        description="Columns to land, in order; default: every integer, float and boolean column (and, with "
        "layout 'columns', every string column).",
    )
    layout: Literal["matrix", "columns"] = Field(
        "matrix",
        description="'matrix': one 2-D array (rows x columns) of a common dtype; "
        "'columns': a group holding one 1-D array per column, named after it.",
    )

    def targets(self, array: str) -> list[tuple[str, _SourceModel]]:
        if self.layout == "matrix":
            return [(array, self)]
        columns = self.columns or self.open().columns  # type: ignore[attr-defined]
        return [(f"{array}/{c}" if array else c, self.model_copy(update={"columns": (c,)})) for c in columns]

    def _reader(self) -> SourceReader:
        if self.layout == "columns" and (self.columns is None or len(self.columns) != 1):
            # the reader of the split table: only used to list the columns
            return _TableReader(self.path, self.columns, matrix=True, listing=True)
        return _TableReader(self.path, self.columns, matrix=self.layout == "matrix")


# -- Zarr ------------------------------------------------------------------------------------------


class _ZarrReader(SourceReader):
    """A Zarr array on any store. The last regions fingerprinted by a thread are kept (one batch at
    most) so that the write that follows does not read them again."""

    def __init__(self, store: Store, path: str) -> None:
        try:
            self._array = zarrcore.open_array(store, path=path)
        except (KeyError, MetadataError) as exc:
            raise SourceError(f"source array {store.url!r} (path {path!r}) cannot be opened: {exc}") from None
        self.shape = self._array.shape
        self.dtype = self._array.dtype
        self.chunks = self._array.metadata.chunks  # the stored object's shape
        self.fill_value = self._array.fill_value
        self._local = threading.local()

    @property
    def array(self) -> zarrcore.Array:
        return self._array

    def _memo(self) -> dict[tuple[tuple[int, int], ...], np.ndarray]:
        memo = getattr(self._local, "memo", None)
        if memo is None:
            memo = self._local.memo = {}
        return memo

    def read(self, region: Region) -> np.ndarray:
        data = self._memo().pop(tuple((s.start, s.stop) for s in region), None)
        return self._array[region] if data is None else data

    def fingerprint(self, region: Region) -> str:
        data = self._array[region]
        memo = self._memo()
        memo[tuple((s.start, s.stop) for s in region)] = data
        return _hash_array(data)

    def forget(self) -> None:
        """Drop what this thread kept from fingerprinting."""
        self._memo().clear()

    def describe(self) -> str:
        return f"{self._array.url} shape={self.shape} dtype={self.dtype}"


class ZarrSource(_SourceModel):
    """Another Zarr array (v2 or v3) on any store zarrcore opens."""

    kind: Literal["zarr"] = Field("zarr", description="Source type: a Zarr array.")
    url: StoreURL = Field(description="Store URL: a path, file://, s3://bucket/prefix, gs://..., az://...")
    path: str = Field("", description="Path of the array inside the store ('' when the URL is the array).")
    storage_options: StorageOptions = Field(default_factory=dict)

    def _store(self) -> Store:
        return shared_store(self.url, self.storage_options)

    def _identity(self) -> tuple[Any, ...]:
        """The source's metadata: a reader is reopened when the array is replaced or resized."""
        try:
            meta = read_node(self._store(), self.path)
        except (KeyError, MetadataError) as exc:
            raise SourceError(f"source array {self.url!r} (path {self.path!r}) cannot be opened: {exc}") from None
        return (hashlib.sha256(json_dumps(meta.to_documents())).hexdigest(),)

    def _reader(self) -> SourceReader:
        return _ZarrReader(self._store(), self.path)

    def __hash__(self) -> int:  # storage_options is a dict
        return hash((self.kind, self.url, self.path, json.dumps(self.storage_options, sort_keys=True, default=str)))


# -- synthetic -------------------------------------------------------------------------------------


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of each element (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


#: Elements computed at once by the synthetic source: its 64-bit temporaries stay near 1 MiB each.
_BLOCK = 1 << 16


def _blocks(region: Region, limit: int) -> Iterator[Region]:
    """Split ``region`` into sub-regions of at most ``limit`` elements (rows of the leading dimensions)."""
    if not region:
        yield region
        return
    head, rest = region[0], region[1:]
    inner = math.prod(s.stop - s.start for s in rest)
    if inner <= limit:
        step = max(1, limit // max(inner, 1))
        for start in range(head.start, head.stop, step):
            yield (slice(start, min(start + step, head.stop)), *rest)
        return
    for i in range(head.start, head.stop):
        for part in _blocks(rest, limit):
            yield (slice(i, i + 1), *part)


class _SyntheticReader(SourceReader):
    def __init__(self, spec: SyntheticSource) -> None:
        self._spec = spec
        self.shape = tuple(spec.shape)
        self.dtype = np.dtype(spec.dtype)
        self.chunks = tuple(spec.chunks) if spec.chunks else None
        self._token = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()

    def read(self, region: Region) -> np.ndarray:
        """The values of ``region``, computed a block of at most ``_BLOCK`` elements at a time in the
        target dtype, so a chunk needs only a few MiB of temporaries whatever its size."""
        shape = tuple(s.stop - s.start for s in region)
        if math.prod(shape) <= _BLOCK:
            return self._compute(region)
        out = np.empty(shape, dtype=self.dtype)
        for part in _blocks(region, _BLOCK):
            out[tuple(slice(p.start - r.start, p.stop - r.start) for p, r in zip(part, region, strict=True))] = (
                self._compute(part)
            )
        return out

    def _compute(self, region: Region) -> np.ndarray:
        """The values of a small region (each one a function of its global index and the seed only)."""
        grids = np.ogrid[tuple(slice(s.start, s.stop) for s in region)] if region else []
        strides = [math.prod(self.shape[d + 1 :]) for d in range(len(self.shape))]
        linear = np.zeros(tuple(s.stop - s.start for s in region), dtype=np.uint64)
        for g, stride in zip(grids, strides, strict=True):
            linear = linear + g.astype(np.uint64) * np.uint64(stride)
        seed = np.uint64(self._spec.seed & 0xFFFFFFFFFFFFFFFF)
        noise = _splitmix64(linear ^ _splitmix64(np.asarray(seed)))
        unit = (noise >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
        if self._spec.pattern == "smooth":
            value = np.zeros(linear.shape, dtype=np.float64)
            for d, g in enumerate(grids):
                value = value + np.sin(2 * np.pi * (d + 1) * g / max(self.shape[d], 1) + self._spec.seed)
            value = value + 0.01 * unit
        else:
            value = unit
        kind = self.dtype.kind
        if kind == "b":
            return (noise & np.uint64(1)).astype(bool) if self._spec.pattern == "noise" else value > 0
        if kind in "iu":
            info = np.iinfo(self.dtype)
            if self._spec.pattern == "noise":
                span = min(int(info.max), 2**31 - 1)
                return (noise % np.uint64(span)).astype(self.dtype)
            return np.clip(np.round(value * 1000), info.min, info.max).astype(self.dtype)
        return value.astype(self.dtype)

    def fingerprint(self, region: Region) -> str:
        return hashlib.sha256(f"{self._token}:{region_key(region)}".encode()).hexdigest()

    def describe(self) -> str:
        s = self._spec
        return f"synthetic pattern={s.pattern} seed={s.seed} shape={self.shape} dtype={self.dtype}"


class SyntheticSource(_SourceModel):
    """Deterministic generated data: each value is a function of its global index and a seed."""

    kind: Literal["synthetic"] = Field("synthetic", description="Source type: generated data (demo, benchmarks).")
    shape: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        description="Shape of the generated array, e.g. [1000, 1000]."
    )
    dtype: str = Field("float32", description="NumPy dtype name: float32, float64, int16, uint8, bool, ...")
    seed: int = Field(0, ge=0, description="Seed: the same seed always gives the same values.")
    pattern: Literal["smooth", "noise"] = Field(
        "smooth", description="'smooth': a field of sine waves plus a little noise; 'noise': uniform noise in [0, 1)."
    )
    chunks: tuple[Annotated[int, Field(ge=1)], ...] | None = Field(
        None, description="Natural chunk shape, used when the target gives none."
    )

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        try:
            dt = np.dtype(value)
        except TypeError:
            raise ValueError(f"unknown dtype {value!r}") from None
        if dt.kind not in "biuf":
            raise ValueError(f"synthetic data supports bool, integer and float dtypes, got {value!r}")
        return value

    def _reader(self) -> SourceReader:
        if self.chunks is not None and len(self.chunks) != len(self.shape):
            raise SourceError(f"synthetic source: chunks {self.chunks} do not match the rank of shape {self.shape}")
        return _SyntheticReader(self)


SourceSpec = Annotated[
    NpySource | NpzSource | ParquetSource | ZarrSource | SyntheticSource,
    Field(discriminator="kind", description="Where the data comes from; 'kind' selects the source type."),
]

