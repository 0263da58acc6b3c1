"""The Array: numpy-style slicing, chunk-level I/O, resize and append, over any store."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from zarrcore import telemetry
from zarrcore._pool import run_all
from zarrcore.attributes import Attributes
from zarrcore.codecs import CodecPipeline, default_codecs
from zarrcore.codecs.pipeline import codec_configs
from zarrcore.codecs.sharding import ByteRun, IndexCache, box_selection, selection_box, sharding_codecs
from zarrcore.errors import ChunkError, CodecError, MetadataError, NotFound, PreconditionFailed, SelectionError
from zarrcore.grid import ChunkGrid, Projection, normalize_selection, selection_shape
from zarrcore.metadata import ArrayMetadata, parse_dtype
from zarrcore.metadata.dtypes import is_fill, normalize_fill_value
from zarrcore.nodes import Node, write_node
from zarrcore.storage.base import RangeRequest, Store, join_key

__all__ = ["Array", "build_array_metadata"]

ChunkIndex = tuple[int, ...]


def _row(p: Projection) -> ChunkIndex:
    """A chunk's row: its index without the last dimension (its folder, with the '/' key separator)."""
    return p.index[:-1]


def _normalize_shape(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, int | np.integer):
        value = (int(value),)
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise MetadataError(f"{name} must be an integer or a sequence of integers, got {value!r}") from None
    if any(isinstance(v, bool) for v in value):
        raise MetadataError(f"{name} must contain integers, got {value!r}")
    return out


def build_array_metadata(
    *,
    shape: Any,
    chunks: Any,
    dtype: Any,
    fill_value: Any = None,
    zarr_format: Literal[2, 3] = 3,
    codecs: Sequence[dict[str, Any]] | None = None,
    compressor: dict[str, Any] | Literal["auto"] | None = "auto",
    filters: Sequence[dict[str, Any]] | None = None,
    order: Literal["C", "F"] = "C",
    dimension_separator: Literal["/", "."] | None = None,
    attributes: dict[str, Any] | None = None,
    dimension_names: Sequence[str | None] | None = None,
    chunk_key_encoding: Literal["default", "v2"] | None = None,
    shards: Any = None,
) -> ArrayMetadata:
    """Validate user arguments into :class:`ArrayMetadata` (and its codec pipeline), writing nothing.

    With ``shards`` (v3), ``chunks`` is the inner chunk shape and each stored object is a shard of
    ``shards`` shape holding those chunks (``codecs`` then encode each inner chunk)."""
    if zarr_format not in (2, 3):
        raise MetadataError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    shape_t = _normalize_shape(shape, "shape")
    if any(s < 0 for s in shape_t):
        raise MetadataError(f"shape must be >= 0 in every dimension, got {list(shape_t)}")
    chunks_t = _normalize_shape(chunks, "chunks")
    if len(chunks_t) != len(shape_t):
        raise MetadataError(
            f"chunks: rank {len(chunks_t)} does not match shape rank {len(shape_t)} "
            f"(shape {list(shape_t)}, chunks {list(chunks_t)})"
        )
    if any(c < 1 for c in chunks_t):
        raise MetadataError(f"chunks must be >= 1 in every dimension, got {list(chunks_t)}")
    if order not in ("C", "F"):
        raise MetadataError(f"order must be 'C' or 'F', got {order!r}")
    if dimension_separator not in (None, "/", "."):
        raise MetadataError(f"dimension_separator must be '/' or '.', got {dimension_separator!r}")
    if chunk_key_encoding not in (None, "default", "v2") or (zarr_format == 2 and chunk_key_encoding == "default"):
        raise MetadataError(f"chunk_key_encoding must be 'default' or 'v2' (v3 only), got {chunk_key_encoding!r}")
    dt = parse_dtype(dtype, zarr_format)
    fill = normalize_fill_value(fill_value, dt, zarr_format)
    if zarr_format == 3:
        if compressor != "auto" or filters is not None:
            raise MetadataError("compressor and filters are Zarr v2 options; for v3 pass codecs=[...]")
        codec_list = codec_configs(codecs, "codecs", "name") if codecs is not None else default_codecs(dt)
        if order == "F" and len(shape_t) > 1 and not any(c.get("name") == "transpose" for c in codec_list):
            codec_list.insert(0, {"name": "transpose", "configuration": {"order": list(range(len(shape_t)))[::-1]}})
        if shards is not None:
            chunks_t, codec_list = _sharded(shape_t, chunks_t, _normalize_shape(shards, "shards"), codec_list)
        meta = ArrayMetadata(
            zarr_format=3,
            shape=shape_t,
            chunks=chunks_t,
            dtype=dt,
            fill_value=fill,
            codecs=tuple(codec_list),
            separator=dimension_separator or ("." if chunk_key_encoding == "v2" else "/"),
            key_encoding=chunk_key_encoding or "default",
            dimension_names=tuple(dimension_names) if dimension_names is not None else None,
            attributes=dict(attributes or {}),
        )
    else:
        if codecs is not None:
            raise MetadataError("codecs is a Zarr v3 option; for v2 pass compressor= and filters=")
        if shards is not None:
            raise MetadataError("shards are a Zarr v3 feature; for v2 leave shards=None")
        if dimension_names is not None:
            raise MetadataError("dimension_names are a Zarr v3 feature; store them as attributes for v2")
        comp = {"id": "zstd", "level": 3} if compressor == "auto" else compressor
        if comp is not None and not (isinstance(comp, dict) and isinstance(comp.get("id"), str)):
            raise CodecError(f"compressor: expected None or a numcodecs config with an 'id', got {comp!r}")
        filters = codec_configs(filters, "filters", "id") if filters is not None else None
        if dt.kind == "O" and filters is None:  # variable-length strings: the filter zarr-python uses
            filters = [{"id": "vlen-utf8"}]
        meta = ArrayMetadata(
            zarr_format=2,
            shape=shape_t,
            chunks=chunks_t,
            dtype=dt,
            fill_value=fill,
            order=order,
            compressor=dict(comp) if comp else None,
            filters=tuple(dict(f) for f in filters) if filters else None,
            separator=dimension_separator or ".",
            key_encoding="v2",
            attributes=dict(attributes or {}),
        )
    CodecPipeline(meta)  # fail now, not at the first write
    return meta


def _sharded(
    shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...], codecs: list[dict[str, Any]]
) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """The chunk shape and codec list of an array stored as ``shards`` of ``chunks``-shaped chunks."""
    if len(shards) != len(shape):
        raise MetadataError(f"shards: rank {len(shards)} does not match shape rank {len(shape)}")
    if any(s < 1 or s % c for s, c in zip(shards, chunks, strict=True)):
        raise MetadataError(
            f"shards must be a multiple of chunks in every dimension, got shards {list(shards)} and "
            f"chunks {list(chunks)}"
        )
    if any(c.get("name") == "sharding_indexed" for c in codecs):
        raise MetadataError("pass either shards= or a 'sharding_indexed' codec, not both")
    return shards, sharding_codecs(chunks, codecs)


class Array(Node):
    """A Zarr array in a store. Thread-safe for concurrent chunk reads and writes.

    Open or create one with :func:`zarrcore.open` / :func:`zarrcore.create`.
    """

    kind = "array"

    def __init__(
        self,
        store: Store,
        path: str,
        metadata: ArrayMetadata,
        *,
        read_only: bool = False,
        write_empty_chunks: bool = False,
    ) -> None:
        super().__init__(store, path, read_only=read_only)
        #: Store chunks that hold only the fill value (default: delete them instead, like zarr-python).
        self.write_empty_chunks = write_empty_chunks
        self._set_metadata(metadata)

    def _set_metadata(self, metadata: ArrayMetadata) -> None:
        self._meta = metadata
        self._pipeline = CodecPipeline(metadata)
        self._grid = ChunkGrid(metadata.shape, metadata.chunks)
        self._attrs = Attributes(metadata.attributes, self._save_attributes)
        self._fill_chunk: np.ndarray | None = None
        #: Shard indexes read by partial reads, with the shard version each came from.
        self._indexes = IndexCache()
        # Chunk keys are this prefix plus the index joined by the separator (a 0-d array has one key).
        base = join_key(self.path, "c" if metadata.key_encoding == "default" else "")
        self._key_prefix = base + (metadata.separator if metadata.key_encoding == "default" else "/" if base else "")

    # -- description -----------------------------------------------------------------------------
    @property
    def metadata(self) -> ArrayMetadata:
        return self._meta

    @property
    def shape(self) -> tuple[int, ...]:
        return self._meta.shape

    @property
    def chunks(self) -> tuple[int, ...]:
        return self._meta.chunks

    @property
    def inner_chunks(self) -> tuple[int, ...] | None:
        """For a sharded array (``sharding_indexed``), the shape of the chunks inside each shard;
        ``chunks`` is then the shard shape, the unit of storage. ``None`` when not sharded."""
        sharding = self._pipeline.sharding
        return sharding.inner_shape if sharding is not None else None

    @property
    def dtype(self) -> np.dtype:
        return self._meta.dtype

    @property
    def fill_value(self) -> Any:
        return self._meta.fill_value

    @property
    def ndim(self) -> int:
        return len(self._meta.shape)

    @property
    def size(self) -> int:
        return math.prod(self._meta.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def order(self) -> str:
        return self._meta.order

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Number of chunks along each dimension."""
        return self._grid.grid_shape

    @property
    def nchunks(self) -> int:
        return self._grid.nchunks

    def nchunks_stored(self) -> int:
        """How many chunk objects exist in the store (lists the array's keys). Keys whose first segment
        starts with ``.`` (``.zattrs``, bookkeeping such as ``.zarrcore/``) are never chunks."""
        base = self.path + "/" if self.path else ""
        skip = {base + name for name in (*self._meta.metadata_keys(), ".zattrs")}
        return sum(1 for key in self.store.list(base) if key not in skip and not key[len(base) :].startswith("."))

    @property
    def info(self) -> str:
        """A human-readable summary."""
        m = self._meta
        codecs = m.codecs if m.zarr_format == 3 else {"filters": m.filters, "compressor": m.compressor}
        rows = [
            ("Type", "Array"),
            ("Zarr format", m.zarr_format),
            ("URL", self.url),
            ("Shape", m.shape),
            ("Chunk shape", m.chunks),
            ("Data type", m.dtype),
            ("Fill value", m.fill_value),
            ("Order", m.order),
            ("Codecs", codecs),
            ("Chunks", self.nchunks),
            ("Bytes (uncompressed)", self.nbytes),
            ("Read-only", self.read_only),
        ]
        if self.inner_chunks is not None:
            rows.insert(5, ("Inner chunk shape", self.inner_chunks))
        if m.dimension_names:
            rows.insert(5, ("Dimension names", m.dimension_names))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)

    def __repr__(self) -> str:
        inner = f" inner_chunks={self.inner_chunks}" if self.inner_chunks is not None else ""
        return f"<zarrcore.Array {self.url} shape={self.shape} dtype={self.dtype} chunks={self.chunks}{inner}>"

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    # -- chunk addressing ------------------------------------------------------------------------
    def chunk_key(self, index: Sequence[int]) -> str:
        """The store key of a chunk."""
        return self._key(tuple(index))

    def _key(self, idx: ChunkIndex) -> str:
        if not idx:
            return join_key(self.path, self._meta.chunk_key(idx))
        return self._key_prefix + self._meta.separator.join(map(str, idx))

    def chunk_indices(self) -> Iterator[ChunkIndex]:
        """Every chunk index in C order."""
        return self._grid.indices()

    def chunk_region(self, index: Sequence[int]) -> tuple[slice, ...]:
        """The region of the array a chunk covers, clipped to the array bounds."""
        return self._grid.region(self._grid.check_index(index))

    def _full_fill(self) -> np.ndarray:
        if self._fill_chunk is None:
            chunk = np.full(self.chunks, self._meta.fill, dtype=self.dtype)
            chunk.flags.writeable = False
            self._fill_chunk = chunk
        return self._fill_chunk

    def _span_meta(self, index: ChunkIndex, key: str) -> dict[str, Any]:
        urls = self.__dict__.get("_urls")
        if urls is None:  # computed once: building URLs costs more than a small chunk's I/O
            urls = self.__dict__["_urls"] = (self.url, self.store.url)
        return {"array": urls[0], "store": urls[1], "index": index, "key": key}

    # -- chunk bytes -----------------------------------------------------------------------------
    def encode_chunk(self, index: Sequence[int], data: Any) -> bytes | memoryview | None:
        """Encode a chunk as it would be stored; ``None`` when it holds only the fill value and
        empty chunks are not written. ``data`` has the chunk's region shape or the full chunk shape."""
        idx = self._grid.check_index(index)
        return self._encode(idx, self._as_full_chunk(idx, data))

    def _encode(self, idx: ChunkIndex, chunk: np.ndarray) -> bytes | memoryview | None:
        if not self.write_empty_chunks and is_fill(chunk, self._meta.fill):
            return None
        try:
            return self._pipeline.encode(chunk)
        except Exception as exc:
            raise ChunkError(idx, CodecError(f"encoding failed: {exc}"), key=self.chunk_key(idx)) from exc

    def decode_chunk(self, index: Sequence[int], data: bytes | memoryview) -> np.ndarray:
        """Decode stored chunk bytes to a full chunk-shaped array (raises ``ChunkError`` if corrupt)."""
        idx = tuple(index)
        try:
            return self._pipeline.decode(data)
        except Exception as exc:
            raise ChunkError(idx, exc if isinstance(exc, CodecError) else CodecError(str(exc)),
                             key=self.chunk_key(idx)) from exc  # fmt: skip

    def _as_full_chunk(self, idx: ChunkIndex, data: Any) -> np.ndarray:
        arr = np.asarray(data)
        region_shape = self._grid.region_shape(idx)
        if arr.shape == self.chunks:
            return arr
        if arr.shape != region_shape:
            raise SelectionError(
                f"chunk {idx}: data of shape {arr.shape} fits neither the chunk shape {self.chunks} "
                f"nor its region {region_shape}"
            )
        full = np.array(self._full_fill())
        full[tuple(slice(0, n) for n in region_shape)] = arr
        return full

    def read_chunk_bytes(self, index: Sequence[int]) -> bytes | None:
        """The stored bytes of a chunk, or ``None`` if it is not stored."""
        try:
            return self.store.get(self.chunk_key(self._grid.check_index(index)))
        except NotFound:
            return None

    def write_chunk_bytes(self, index: Sequence[int], data: bytes | memoryview | None) -> None:
        """Store already-encoded bytes for a chunk (``None`` deletes it); one atomic PUT."""
        self._check_writable()
        self._put(self._grid.check_index(index), data)

    def _put(self, idx: ChunkIndex, data: bytes | memoryview | None) -> None:
        key = self._key(idx)
        if self._pipeline.sharding is not None:
            self._indexes.drop(key)  # its version is about to change: spare a refused read
        if not telemetry.enabled():  # no span to build, as in _load
            if data is None:
                self.store.delete(key)
            else:
                self.store.put(key, data)
            return
        with telemetry.span(("zarrcore", "chunk", "write"), self._span_meta(idx, key)) as m:
            if data is None:
                self.store.delete(key)
                m["meta_stored"] = False
                m["encoded_bytes"] = 0
            else:
                self.store.put(key, data)
                m["meta_stored"] = True
                m["encoded_bytes"] = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
            m["decoded_bytes"] = self._pipeline.nbytes

    # -- chunk arrays ----------------------------------------------------------------------------
    def _load(self, idx: ChunkIndex) -> np.ndarray | None:
        """A full chunk-shaped array, or ``None`` when the chunk is not stored."""
        key = self._key(idx)
        if not telemetry.enabled():  # no span to build: this path runs once per chunk of every slice
            try:
                return self.decode_chunk(idx, self.store.get(key))
            except NotFound:
                return None
        with telemetry.span(("zarrcore", "chunk", "read"), self._span_meta(idx, key)) as m:
            try:
                data = self.store.get(key)
            except NotFound:
                m["meta_stored"] = False
                m["encoded_bytes"] = 0
                m["decoded_bytes"] = 0
                return None
            chunk = self.decode_chunk(idx, data)
            m["meta_stored"] = True
            m["encoded_bytes"] = len(data)
            m["decoded_bytes"] = chunk.nbytes
        return chunk

    def _partial_reads(self) -> bool:
        """Whether a part of a chunk can be read without the whole: a shard whose codecs are only
        ``sharding_indexed`` (no array codec before it, nothing after it)."""
        pipeline = self._pipeline
        return pipeline.sharding is not None and not pipeline.array_stages and not pipeline.bytes_codecs

    def _load_part(self, p: Projection) -> np.ndarray | Any | None:
        """``shard[p.chunk_selection]`` from the shard's index and only the inner chunks it touches;
        ``None`` if the shard is not stored. The ranges are read only from the version of the shard
        whose index was read (where the store can tell versions), so an index seen before is reused:
        a shard replaced since is refused and its index read again. ``NotImplemented`` sends the
        caller to read the whole shard in one request: when the selection touches more than half the
        inner chunks, when the shard changed between the requests, and when the parts read do not
        decode (a damaged shard, which the whole read then names)."""
        sharding = self._pipeline.sharding
        assert sharding is not None
        box = selection_box(p.chunk_selection)
        if 2 * sharding.count_in(box) > sharding.count:
            return NotImplemented
        key = self._key(p.index)
        with telemetry.span(("zarrcore", "chunk", "read"), self._span_meta(p.index, key)) as m:
            fetched: list[int] = []
            cached = self._indexes.get(key)
            if cached is not None:
                part = self._read_runs(key, box, *cached, fetched)
                if part is None:
                    self._indexes.drop(key)  # replaced (or gone) since: read its index again
            if cached is None or part is None:
                try:
                    raw_index, version = self.store.get_versioned(key, sharding.index_range())
                except NotFound:
                    m.update(meta_stored=False, encoded_bytes=sum(fetched), decoded_bytes=0, requests=len(fetched))
                    return None
                fetched.append(len(raw_index))
                try:
                    index = sharding.decode_index(raw_index)
                except CodecError:
                    index = None
                part = None if index is None else self._read_runs(key, box, version, index, fetched, verify=False)
                if part is None:
                    m.update(meta_stored=True, encoded_bytes=sum(fetched), decoded_bytes=0, requests=len(fetched),
                             meta_whole_read=True)  # fmt: skip
                    return NotImplemented
                if version is not None and index is not None:
                    self._indexes.put(key, version, index)
            m.update(meta_stored=True, encoded_bytes=sum(fetched), decoded_bytes=part.nbytes, requests=len(fetched))
        return part[box_selection(p.chunk_selection, box)]

    def _read_runs(
        self, key: str, box: tuple[slice, ...], version: str | None, index: np.ndarray, fetched: list[int],
        *, verify: bool = True,
    ) -> np.ndarray | None:
        """``box`` of the shard at ``key`` from its ``index``, the ranges read only from ``version``;
        ``None`` when that version is gone or the bytes do not decode. With ``verify`` (an index kept
        from earlier), a box that needs no range still makes one request, so that a replaced shard
        is never answered from an old index."""
        sharding = self._pipeline.sharding
        assert sharding is not None
        runs = sharding.ranges_for(box, index)
        if verify and not runs:
            return None  # nothing to read would check the version: read the index instead
        part = sharding.empty_box(box)

        def fetch(run: ByteRun) -> None:
            data, _ = self.store.get_versioned(key, RangeRequest(run.start, run.stop), version=version)
            fetched.append(len(data))
            sharding.place(part, box, run, data)

        try:
            run_all(fetch, runs, self.store)  # the runs of one shard at once, like the shards of a slice
        except (CodecError, NotFound, PreconditionFailed):
            return None
        return part

    def _update_part(self, p: Projection, values: np.ndarray) -> None:
        """Write ``values`` into part of a shard: decode and encode only the inner chunks it touches."""
        sharding = self._pipeline.sharding
        assert sharding is not None
        key = self._key(p.index)
        try:
            old = self.store.get(key)
        except NotFound:
            old = None
        try:
            new = sharding.update(old, p.chunk_selection, values, keep_empty=self.write_empty_chunks)
        except CodecError as exc:
            raise ChunkError(p.index, exc, key=key) from exc
        self._put(p.index, new)

    def read_chunk(self, index: Sequence[int], *, full: bool = False) -> np.ndarray:
        """A chunk's data, clipped to the array bounds (or the whole chunk shape with ``full=True``);
        the fill value where the chunk is not stored."""
        idx = self._grid.check_index(index)
        chunk = self._load(idx)
        if chunk is None:
            chunk = np.array(self._full_fill())
        elif not chunk.flags.writeable:
            chunk = chunk.copy()
        if full:
            return chunk
        region = self._grid.region_shape(idx)
        return chunk if region == self.chunks else chunk[tuple(slice(0, n) for n in region)]

    def load_chunk(self, index: Sequence[int]) -> np.ndarray | None:
        """A full chunk-shaped (possibly read-only) array, or ``None`` if the chunk is not stored."""
        return self._load(self._grid.check_index(index))

    def write_chunk(self, index: Sequence[int], data: Any) -> bool:
        """Write one chunk as one atomic PUT; ``data`` has the chunk's region or full chunk shape.

        A chunk equal to the fill value is deleted instead of stored (unless ``write_empty_chunks``).
        Returns whether an object was stored.
        """
        self._check_writable()
        idx = self._grid.check_index(index)
        encoded = self.encode_chunk(idx, data)
        self.write_chunk_bytes(idx, encoded)
        return encoded is not None

    def delete_chunk(self, index: Sequence[int]) -> None:
        """Remove a chunk (it then reads as the fill value)."""
        self._check_writable()
        self.store.delete(self.chunk_key(self._grid.check_index(index)))

    # -- slicing ---------------------------------------------------------------------------------
    def __getitem__(self, selection: Any) -> Any:
        sel = normalize_selection(selection, self.shape)
        out = np.empty(selection_shape(sel), dtype=self.dtype)
        fill = self._meta.fill

        partial = self._partial_reads()

        def read(p: Projection) -> None:
            if partial and not p.complete:
                part = self._load_part(p)
                if part is not NotImplemented:
                    out[p.out_selection] = fill if part is None else part
                    return
            chunk = self._load(p.index)
            if chunk is None:
                out[p.out_selection] = fill
            else:
                out[p.out_selection] = chunk[p.chunk_selection]

        light = self._pipeline.light  # quick to decode: one thread is fastest on memory and local disk
        run_all(read, self._grid.project(sel), self.store, row=_row, cpu_workers=1 if light else None)
        return out[()] if out.ndim == 0 else out

    def __setitem__(self, selection: Any, value: Any) -> None:
        self._check_writable()
        sel = normalize_selection(selection, self.shape)
        target_shape = selection_shape(sel)
        value = np.asarray(value)
        if value.shape != target_shape:
            try:
                value = np.broadcast_to(value, target_shape)
            except ValueError:
                raise SelectionError(
                    f"cannot assign data of shape {value.shape} to a selection of shape {target_shape}"
                ) from None
        if value.dtype != self.dtype:
            value = value.astype(self.dtype)

        partial = self._partial_reads()

        def write(p: Projection) -> None:
            region = self._grid.region_shape(p.index)
            if partial and not p.complete:
                self._update_part(p, value[p.out_selection])
                return
            if p.complete and region == self.chunks:
                # integer indices drop dimensions: restore them (and keep 0-d chunks 0-d)
                chunk = np.asarray(value[p.out_selection], order="C").reshape(self.chunks)
            else:
                old = None if p.complete else self._load(p.index)
                chunk = np.array(self._full_fill() if old is None else old)
                chunk[p.chunk_selection] = value[p.out_selection]
            self._put(p.index, self._encode(p.index, chunk))

        run_all(write, self._grid.project(sel), self.store, row=_row)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return np.asarray(data, dtype=dtype)

    # -- metadata changes ------------------------------------------------------------------------
    def _save_attributes(self, attrs: dict[str, Any]) -> None:
        self._check_writable()
        meta = self._meta.replace(attributes=attrs)
        write_node(self.store, self.path, meta)
        self._meta = meta

    def resize(self, *shape: Any) -> None:
        """Change the shape. Chunks wholly outside the new shape are deleted; in chunks cut by the new
        bounds the cut-off part is reset to the fill value, so growing again never resurrects old data."""
        self._check_writable()
        new_shape = _normalize_shape(shape[0] if len(shape) == 1 else shape, "shape")
        if len(new_shape) != self.ndim:
            raise SelectionError(f"resize: new shape {new_shape} has rank {len(new_shape)}, array has {self.ndim}")
        if any(s < 0 for s in new_shape):
            raise SelectionError(f"resize: shape must be >= 0, got {new_shape}")
        old_grid = self._grid
        new_grid = ChunkGrid(new_shape, self.chunks)
        new_meta = self._meta.replace(shape=new_shape)
        new_counts = new_grid.grid_shape
        for idx in old_grid.indices():
            if any(i >= n for i, n in zip(idx, new_counts, strict=True)):
                self.store.delete(self.chunk_key(idx))
            elif new_grid.region_shape(idx) != old_grid.region_shape(idx) and any(
                new < old for new, old in zip(new_grid.region_shape(idx), old_grid.region_shape(idx), strict=True)
            ):
                chunk = self._load(idx)
                if chunk is None:
                    continue
                chunk = np.array(chunk)
                keep = new_grid.region_shape(idx)
                mask = np.ones(self.chunks, dtype=bool)
                mask[tuple(slice(0, n) for n in keep)] = False
                chunk[mask] = self._meta.fill
                self.write_chunk_bytes(idx, self._encode(idx, chunk))
        write_node(self.store, self.path, new_meta)
        self._set_metadata(new_meta)

    def append(self, data: Any, axis: int = 0) -> tuple[int, ...]:
        """Grow the array along ``axis`` and write ``data`` there; returns the new shape."""
        self._check_writable()
        arr = np.asarray(data)
        if arr.ndim != self.ndim:
            raise SelectionError(f"append: data has rank {arr.ndim}, array has rank {self.ndim}")
        axis = axis + self.ndim if axis < 0 else axis
        if not 0 <= axis < self.ndim:
            raise SelectionError(f"append: axis {axis} is out of range for rank {self.ndim}")
        others = [d for d in range(self.ndim) if d != axis]
        if any(arr.shape[d] != self.shape[d] for d in others):
            raise SelectionError(
                f"append: data shape {arr.shape} must match the array shape {self.shape} except on axis {axis}"
            )
        old = self.shape
        new_shape = tuple(s + arr.shape[axis] if d == axis else s for d, s in enumerate(old))
        self.resize(new_shape)
        region = tuple(slice(old[axis], None) if d == axis else slice(None) for d in range(self.ndim))
        self[region] = arr
        return new_shape

    # -- streaming -------------------------------------------------------------------------------
    def stream_chunks(
        self,
        *,
        concurrency: int = 16,
        ordered: bool = False,
        timeout: float | None = 120.0,
        on_error: Any = "raise",
        filter: Any = None,
        include_missing: bool = False,
        retry: Any = None,
    ) -> Any:
        """Iterate ``(index, data)`` over the chunks, ``data`` as :meth:`read_chunk` returns it.

        At most ``concurrency`` chunks are in flight or waiting for the consumer; ``ordered=True``
        yields in C order, else as chunks complete. ``timeout`` (s) bounds each chunk. ``on_error`` is
        ``"raise"`` (a :class:`~zarrcore.errors.ChunkError`), ``"skip"``, or a callable told
        ``(index, error)``. ``filter(index) -> bool`` drops indices before any I/O; chunks not stored are
        skipped unless ``include_missing=True`` (then they come as the fill value). ``retry`` is a
        :class:`~zarrcore.retry.RetryPolicy` applied per chunk. Returns a
        :class:`~zarrcore.streaming.ChunkStream` whose ``summary`` counts what happened.
        """
        from zarrcore.streaming import stream_chunks

        return stream_chunks(self, concurrency=concurrency, ordered=ordered, timeout=timeout, on_error=on_error,
                             filter=filter, include_missing=include_missing, retry=retry)  # fmt: skip

    def write_stream(
        self,
        chunks: Any,
        *,
        concurrency: int = 16,
        checkpoint: Any = None,
        on_error: Any = "raise",
        retry: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """Write ``(index, data)`` pairs from an iterable, taken lazily with at most ``concurrency``
        pending; each chunk is one atomic PUT. ``checkpoint`` is a :class:`~zarrcore.Checkpoint`
        (marked per finished chunk, flushed at the end) or a callable told the progress. Returns a
        :class:`~zarrcore.streaming.WriteSummary`.
        """
        from zarrcore.streaming import write_stream

        return write_stream(self, chunks, concurrency=concurrency, checkpoint=checkpoint, on_error=on_error,
                            retry=retry, timeout=timeout)  # fmt: skip
