"""The target arrays of a flow: their metadata from a layout and a source, their creation (create-only,
before any chunk), and the small references and chunk batches that task runs receive."""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict

import zarrcore
from flows.bookkeeping import INCARNATION, bookkeeping_key
from flows.params import ArrayLayout, Execution
from flows.sources import SourceReader
from flows.stores import StoreRef
from zarrcore.codecs import default_codecs
from zarrcore.errors import AlreadyExists, MetadataError, NotFound
from zarrcore.spec import build_array_metadata

if TYPE_CHECKING:
    from zarrcore.metadata import ArrayMetadata

__all__ = [
    "TargetRef",
    "ChunkBatch",
    "target_metadata",
    "auto_chunks",
    "create_target",
    "open_target",
    "plan_batches",
]

_COMPRESSORS_V3 = {
    "zstd": lambda lvl: [{"name": "zstd", "configuration": {"level": lvl, "checksum": False}}],
    "gzip": lambda lvl: [{"name": "gzip", "configuration": {"level": 5 if lvl is None else lvl}}],
    "blosc-zstd": lambda lvl: [{"name": "blosc", "configuration": {
        "cname": "zstd", "clevel": 5 if lvl is None else lvl, "shuffle": "shuffle", "blocksize": 0}}],
    "blosc-lz4": lambda lvl: [{"name": "blosc", "configuration": {
        "cname": "lz4", "clevel": 5 if lvl is None else lvl, "shuffle": "shuffle", "blocksize": 0}}],
    "none": lambda lvl: [],
}  # fmt: skip
_COMPRESSORS_V2 = {
    "zstd": lambda lvl: {"id": "zstd", "level": 3 if lvl is None else lvl},
    "gzip": lambda lvl: {"id": "gzip", "level": 5 if lvl is None else lvl},
    "blosc-zstd": lambda lvl: {"id": "blosc", "cname": "zstd", "clevel": 5 if lvl is None else lvl, "shuffle": 1},
    "blosc-lz4": lambda lvl: {"id": "blosc", "cname": "lz4", "clevel": 5 if lvl is None else lvl, "shuffle": 1},
    "none": lambda lvl: None,
}


def auto_chunks(shape: tuple[int, ...], itemsize: int, target_bytes: int) -> tuple[int, ...]:
    """A chunk shape of at most ``target_bytes``: halve the largest dimension until it fits."""
    chunks = [max(1, n) for n in shape]
    while math.prod(chunks) * itemsize > target_bytes and max(chunks) > 1:
        d = chunks.index(max(chunks))
        chunks[d] = math.ceil(chunks[d] / 2)
    return tuple(chunks)


def _is_zero(value: Any) -> bool:
    try:
        return bool(np.asarray(value) == 0) and not isinstance(value, str | bytes)
    except (TypeError, ValueError):
        return False


def dimension_names(layout: ArrayLayout, reader: SourceReader) -> tuple[str, ...]:
    """The target's dimension names: the layout's, else the source's own (a Zarr source's, a table's
    ``row``/``column``), else ``dim_0``, ``dim_1``... as xarray names unnamed dimensions."""
    names = layout.dimension_names or reader.dimension_names or tuple(f"dim_{n}" for n in range(len(reader.shape)))
    if len(names) != len(reader.shape):
        raise MetadataError(f"dimension_names: {list(names)} has {len(names)} names but the source has shape "
                            f"{list(reader.shape)}")  # fmt: skip
    return tuple(names)


def target_metadata(layout: ArrayLayout, reader: SourceReader) -> ArrayMetadata:
    """The metadata of the array that lands ``reader`` under ``layout``, built and validated once by
    :func:`zarrcore.spec.build_array_metadata` (a bad layout raises ``MetadataError``) without writing
    anything.

    Unset layout fields come from a Zarr source (its format, chunks, codecs, key encoding, fill value,
    attributes and dimension names), so a copy keeps the source's layout unless told otherwise.
    """
    src: ArrayMetadata | None = getattr(getattr(reader, "array", None), "metadata", None)
    zarr_format = layout.given("zarr_format") or (src.zarr_format if src else 3)
    dtype = np.dtype(layout.dtype) if layout.dtype else reader.dtype
    src_array = getattr(reader, "array", None)
    src_inner = src_array.chunks if src_array is not None and src_array.shards else None
    if layout.shards is not None and not layout.chunks and src_inner is None:
        raise MetadataError("layout.shards needs layout.chunks, the shape of the chunks inside each shard")
    if layout.shards is not None:
        chunks = layout.chunks or src_inner
    else:
        chunks = layout.chunks or reader.chunks or auto_chunks(reader.shape, dtype.itemsize, layout.chunk_bytes)
    if len(chunks) != len(reader.shape):
        raise MetadataError(
            f"chunks: {list(chunks)} has rank {len(chunks)} but the source has shape {list(reader.shape)}"
        )
    same_format = src is not None and src.zarr_format == zarr_format
    same_codecs = same_format and layout.given("compression") is None and dtype == src.dtype  # type: ignore[union-attr]
    fill = layout.fill_value if layout.fill_value is not None else reader.fill_value
    if zarr_format == 2 and src is not None and src.zarr_format == 3 and layout.fill_value is None and _is_zero(fill):
        # xarray masks a v2 fill value as missing data; a v3 source's zero fill is only the chunks' default
        fill = None
    args: dict[str, Any] = dict(
        shape=reader.shape, chunks=tuple(chunks), dtype=dtype, fill_value=fill, zarr_format=zarr_format,
        attributes=layout.attributes if layout.attributes is not None else (dict(src.attributes) if src else {}),
    )  # fmt: skip
    if same_format:
        args["dimension_separator"] = src.separator  # type: ignore[union-attr]
    names = dimension_names(layout, reader)
    if zarr_format == 3:
        if same_format:
            args["chunk_key_encoding"] = src.key_encoding  # type: ignore[union-attr]
        if same_codecs:
            args["codecs"] = list(src.codecs)  # type: ignore[union-attr]
            if layout.shards is not None and src_inner is not None:  # resharded: the source's inner codecs
                sharding = next(c for c in src.codecs if c["name"] == "sharding_indexed")  # type: ignore[union-attr]
                args["codecs"] = list(sharding["configuration"]["codecs"])
        elif layout.compression == "zstd" and layout.compression_level is None:
            args["codecs"] = default_codecs(dtype)  # the library's own defaults (zstd)
        else:
            serializer = default_codecs(dtype)[0]
            args["codecs"] = [serializer, *_COMPRESSORS_V3[layout.compression or "zstd"](layout.compression_level)]
        args["dimension_names"] = names
    else:  # xarray's convention for v2: the attribute _ARRAY_DIMENSIONS
        args["attributes"] = {"_ARRAY_DIMENSIONS": list(names), **args["attributes"]}
        if same_codecs:
            args.update(compressor=src.compressor, filters=src.filters, order=src.order)  # type: ignore[union-attr]
        else:
            args["compressor"] = _COMPRESSORS_V2[layout.compression or "zstd"](layout.compression_level)
    if layout.shards is not None:
        args["shards"] = tuple(layout.shards)
    return build_array_metadata(**args)


class ChunkBatch(BaseModel):
    """Chunks ``start`` to ``stop`` (exclusive) in C order of the chunk grid: one task run's work."""

    model_config = ConfigDict(frozen=True)

    number: int
    start: int
    stop: int

    def indices(self, grid_shape: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if not grid_shape:  # a 0-d array: one chunk
            yield from (() for _ in range(self.start, self.stop))
            return
        coords = np.unravel_index(np.arange(self.start, self.stop), grid_shape)
        yield from zip(*(c.tolist() for c in coords), strict=True)

    @property
    def size(self) -> int:
        return self.stop - self.start


def array_identity(url: str, path: str) -> str:
    """An array's URL: its store's URL plus its path."""
    return f"{url.rstrip('/')}/{path}" if path else url


class TargetRef(BaseModel):
    """What a task run needs to reopen the target array and name its work; small and serializable."""

    model_config = ConfigDict(frozen=True)

    store: StoreRef
    path: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    fingerprint: str
    incarnation: str

    @property
    def identity(self) -> str:
        """The array's URL (store URL plus path); never holds credentials."""
        return array_identity(self.store.url, self.path)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Chunks along each dimension."""
        return tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks, strict=True))

    @property
    def nchunks(self) -> int:
        return math.prod(self.grid_shape)

    def open(self) -> zarrcore.Array:
        """The array, opened for writing once per process; refuses an array whose metadata changed."""
        return _open_array(self.store, self.path, self.fingerprint)

    def open_readonly(self) -> zarrcore.Array:
        """The array as it is now, opened read-only (its metadata read again)."""
        return zarrcore.open_array(self.store.open(), path=self.path)


@functools.lru_cache(maxsize=32)
def _open_array(store: StoreRef, path: str, fingerprint: str) -> zarrcore.Array:
    array = zarrcore.open_array(store.open(), mode="r+", path=path)
    if array.metadata.fingerprint() != fingerprint:
        raise MetadataError(
            f"{array.url}: the array's metadata changed since the run was planned "
            "(it was replaced by another writer); rerun the flow"
        )
    return array


def _incarnation(array: zarrcore.Array) -> str:
    """The array's incarnation id: created once (create-only) with the array, gone when it is deleted,
    so results recorded for an earlier array at the same place are never taken for this one."""
    key = bookkeeping_key(array.path, INCARNATION)
    for _ in range(3):
        try:
            return _read_incarnation(array.store.get(key), key)
        except NotFound:
            pass
        try:
            array.store.put(key, json.dumps({"id": uuid.uuid4().hex}).encode(), mode="create")
        except AlreadyExists:
            continue
    return _read_incarnation(array.store.get(key), key)


def _read_incarnation(data: bytes, key: str) -> str:
    try:
        return str(json.loads(data)["id"])
    except (ValueError, TypeError, KeyError) as exc:
        raise MetadataError(f"{key}: malformed incarnation record: {exc!r}") from None


def _ref(store: StoreRef, array: zarrcore.Array, incarnation: str) -> TargetRef:
    return TargetRef(
        store=store.at(array.store.url), path=array.path, shape=array.shape, chunks=array.metadata.chunks,
        fingerprint=array.metadata.fingerprint(), incarnation=incarnation,
    )  # fmt: skip


def create_target(store: StoreRef, path: str, metadata: ArrayMetadata, *, overwrite: bool) -> TargetRef:
    """Create the array with :func:`zarrcore.create` (a create-only metadata write: identical metadata
    attaches, a difference raises ``MetadataConflictError`` before any chunk; missing parent groups are
    made) and return its reference."""
    array = zarrcore.create(store.open(), path=path, metadata=metadata, overwrite=overwrite)
    return _ref(store, array, _incarnation(array))


def open_target(store: StoreRef, path: str) -> tuple[zarrcore.Array, TargetRef]:
    """Open an existing array (read-only) and its reference."""
    array = zarrcore.open_array(store.open(), path=path)
    key = bookkeeping_key(array.path, INCARNATION)
    try:
        incarnation = _read_incarnation(array.store.get(key), key)
    except NotFound:
        incarnation = ""
    return array, _ref(store, array, incarnation)


def plan_batches(target: TargetRef, itemsize: int, execution: Execution) -> list[ChunkBatch]:
    """Split the chunk grid into runs of consecutive chunks of about ``batch_bytes`` each."""
    nchunks = target.nchunks
    chunk_bytes = max(1, math.prod(target.chunks) * itemsize)
    per_batch = max(1, min(execution.max_chunks_per_batch, execution.batch_bytes // chunk_bytes))
    return [
        ChunkBatch(number=n, start=start, stop=min(start + per_batch, nchunks))
        for n, start in enumerate(range(0, nchunks, per_batch))
    ]
