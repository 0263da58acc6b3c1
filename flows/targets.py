"""The target arrays of a flow: their metadata from a layout and a source, their creation (create-only,
before any chunk), and the small references and chunk batches that task runs receive."""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

import zarrcore
from flows.params import ArrayLayout, Execution
from flows.sources import SourceReader
from flows.stores import shared_store
from zarrcore.errors import AlreadyExists, MetadataError, NotFound
from zarrcore.grid import ChunkGrid
from zarrcore.metadata import ArrayMetadata, json_loads
from zarrcore.metadata.dtypes import needs_endian
from zarrcore.spec import build_array_metadata
from zarrcore.storage.base import join_key

__all__ = [
    "LEDGER_DIR",
    "TargetRef",
    "ChunkBatch",
    "target_arguments",
    "auto_chunks",
    "create_target",
    "open_target",
    "plan_batches",
]

#: Flow bookkeeping lives under this prefix inside the array (it is not a chunk key in either format).
LEDGER_DIR = ".zarrcore"

_COMPRESSORS_V3 = {
    "zstd": lambda lvl: [{"name": "zstd", "configuration": {"level": 3 if lvl is None else lvl, "checksum": False}}],
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


def target_arguments(layout: ArrayLayout, reader: SourceReader) -> dict[str, Any]:
    """The :func:`zarrcore.create` arguments for ``reader`` under ``layout``, validated (a bad layout
    raises ``MetadataError``) without writing anything.

    Unset layout fields come from a Zarr source (its format, chunks, codecs, key encoding, fill value,
    attributes and dimension names), so a copy keeps the source's layout unless told otherwise.
    """
    src: ArrayMetadata | None = getattr(getattr(reader, "array", None), "metadata", None)
    zarr_format = layout.zarr_format or (src.zarr_format if src else 3)
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
    same_codecs = same_format and layout.compression is None and dtype == src.dtype  # type: ignore[union-attr]
    fill = layout.fill_value if layout.fill_value is not None else reader.fill_value
    args: dict[str, Any] = dict(
        shape=reader.shape, chunks=tuple(chunks), dtype=dtype, fill_value=fill, zarr_format=zarr_format,
        attributes=layout.attributes if layout.attributes is not None else (dict(src.attributes) if src else {}),
    )  # fmt: skip
    if same_format:
        args["dimension_separator"] = src.separator  # type: ignore[union-attr]
    if zarr_format == 3:
        if same_format:
            args["chunk_key_encoding"] = src.key_encoding  # type: ignore[union-attr]
        if same_codecs:
            args["codecs"] = list(src.codecs)  # type: ignore[union-attr]
            if layout.shards is not None and src_inner is not None:  # resharded: the source's inner codecs
                sharding = next(c for c in src.codecs if c["name"] == "sharding_indexed")  # type: ignore[union-attr]
                args["codecs"] = list(sharding["configuration"]["codecs"])
        else:
            serializer: dict[str, Any] = {"name": "vlen-utf8" if dtype.kind == "O" else "bytes"}
            if needs_endian(dtype) and dtype.kind != "O":
                serializer["configuration"] = {"endian": "little"}
            args["codecs"] = [serializer, *_COMPRESSORS_V3[layout.compression or "zstd"](layout.compression_level)]
        names = layout.dimension_names or (src.dimension_names if src else None)
        if names is not None:
            args["dimension_names"] = names
    else:
        if layout.dimension_names:
            raise MetadataError("dimension_names are a Zarr v3 feature; store them as attributes for v2")
        if same_codecs:
            args.update(compressor=src.compressor, filters=src.filters, order=src.order)  # type: ignore[union-attr]
        else:
            args["compressor"] = _COMPRESSORS_V2[layout.compression or "zstd"](layout.compression_level)
    if layout.shards is not None:
        args["shards"] = tuple(layout.shards)
    build_array_metadata(**args)
    return args


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

    url: str
    path: str
    storage_options: dict[str, Any] = {}
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    fingerprint: str
    incarnation: str

    @property
    def identity(self) -> str:
        """The array's URL (store URL plus path); never holds credentials."""
        return array_identity(self.url, self.path)

    @property
    def grid(self) -> ChunkGrid:
        return ChunkGrid(self.shape, self.chunks)

    def region(self, index: tuple[int, ...]) -> tuple[slice, ...]:
        return self.grid.region(index)

    def open(self) -> zarrcore.Array:
        """The array, opened for writing once per process; refuses an array whose metadata changed."""
        return _open_array(self.url, self.path, json.dumps(self.storage_options, sort_keys=True), self.fingerprint)


@functools.lru_cache(maxsize=32)
def _open_array(url: str, path: str, options: str, fingerprint: str) -> zarrcore.Array:
    array = zarrcore.open_array(shared_store(url, json.loads(options)), mode="r+", path=path)
    if array.metadata.fingerprint() != fingerprint:
        raise MetadataError(
            f"{array.url}: the array's metadata changed since the run was planned "
            "(it was replaced by another writer); rerun the flow"
        )
    return array


def _incarnation(array: zarrcore.Array) -> str:
    """The array's incarnation id: created once (create-only) with the array, gone when it is deleted,
    so results recorded for an earlier array at the same place are never taken for this one."""
    key = join_key(array.path, LEDGER_DIR, "incarnation.json")
    for _ in range(3):
        try:
            return str(json_loads(array.store.get(key), key)["id"])
        except NotFound:
            pass
        try:
            array.store.put(key, json.dumps({"id": uuid.uuid4().hex}).encode(), mode="create")
        except AlreadyExists:
            continue
    return str(json_loads(array.store.get(key), key)["id"])


def _ensure_parents(url: str, path: str, zarr_format: int, storage_options: dict[str, Any]) -> None:
    """Make sure every parent of ``path`` is a group (creating the missing ones)."""
    parts = path.split("/")[:-1]
    store = shared_store(url, storage_options)
    try:
        group = zarrcore.open_group(store, mode="r+")
    except NotFound:
        group = zarrcore.create_group(store, zarr_format=zarr_format)  # type: ignore[arg-type]
    for part in parts:
        group = group.require_group(part)


def create_target(url: str, path: str, args: dict[str, Any], *, overwrite: bool,
                  storage_options: dict[str, Any]) -> TargetRef:  # fmt: skip
    """Create the array with :func:`zarrcore.create` (a create-only metadata write: identical metadata
    attaches, a difference raises ``MetadataConflictError`` before any chunk) and return its reference."""
    if path:
        _ensure_parents(url, path, args["zarr_format"], storage_options)
    store = shared_store(url, storage_options)
    array = zarrcore.create(store, path=path, overwrite=overwrite, **args)
    return TargetRef(
        url=store.url, path=array.path, storage_options=storage_options, shape=array.shape,
        chunks=array.metadata.chunks, fingerprint=array.metadata.fingerprint(), incarnation=_incarnation(array),
    )  # fmt: skip


def open_target(url: str, path: str, storage_options: dict[str, Any]) -> tuple[zarrcore.Array, TargetRef]:
    """Open an existing array (read-only) and its reference."""
    store = shared_store(url, storage_options)
    array = zarrcore.open_array(store, path=path)
    key = join_key(array.path, LEDGER_DIR, "incarnation.json")
    try:
        incarnation = str(json_loads(store.get(key), key)["id"])
    except NotFound:
        incarnation = ""
    ref = TargetRef(
        url=store.url, path=array.path, storage_options=storage_options, shape=array.shape,
        chunks=array.metadata.chunks, fingerprint=array.metadata.fingerprint(), incarnation=incarnation,
    )  # fmt: skip
    return array, ref


def plan_batches(target: TargetRef, itemsize: int, execution: Execution) -> list[ChunkBatch]:
    """Split the chunk grid into runs of consecutive chunks of about ``batch_bytes`` each."""
    nchunks = target.grid.nchunks
    chunk_bytes = max(1, math.prod(target.chunks) * itemsize)
    per_batch = max(1, min(execution.max_chunks_per_batch, execution.batch_bytes // chunk_bytes))
    return [
        ChunkBatch(number=n, start=start, stop=min(start + per_batch, nchunks))
        for n, start in enumerate(range(0, nchunks, per_batch))
    ]
