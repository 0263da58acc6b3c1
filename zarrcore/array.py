"""The Array: numpy-style slicing, chunk-level I/O, resize and append, over any store.

Names follow zarr-python: ``chunks`` is the chunk shape and ``shards`` the shard shape (``None`` when
not sharded). Chunk-level I/O (``read_chunk``, ``write_chunk``, ``chunk_key``, ``grid_shape``...)
addresses the *stored objects*: a whole shard when the array is sharded, a chunk otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from zarrcore import grid, streams, telemetry
from zarrcore.attributes import Attributes
from zarrcore.codecs import CodecPipeline
from zarrcore.errors import ChunkError, CodecError, NotFound, SelectionError
from zarrcore.grid import ChunkGrid, grown_shape
from zarrcore.info import array_info
from zarrcore.metadata import ArrayMetadata
from zarrcore.metadata.dtypes import is_fill
from zarrcore.nodes import Node, write_node
from zarrcore.resizing import trim_chunks
from zarrcore.shards import ShardParts
from zarrcore.slicing import read_selection, write_selection
from zarrcore.spec import normalize_shape
from zarrcore.storage.base import Store, join_key

__all__ = ["Array"]

ChunkIndex = tuple[int, ...]
#: A chunk's stored bytes: one buffer, or a list of buffers stored one after another (a shard's parts).
Encoded = bytes | memoryview | list[bytes | memoryview]


def _nbytes(data: Encoded | None) -> int:
    if data is None:
        return 0
    return sum(memoryview(b).nbytes for b in data) if isinstance(data, list) else memoryview(data).nbytes


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
        pipeline = self._pipeline  # a shard whose only codec is sharding_indexed can be read in parts
        partial = pipeline.sharding is not None and not pipeline.array_stages and not pipeline.bytes_codecs
        self._parts = ShardParts(pipeline.sharding, self.store, self._key, self._span_meta) if partial else None  # type: ignore[arg-type]
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
        """The chunk shape (inside each shard when sharded), as in zarr-python."""
        sharding = self._pipeline.sharding
        return sharding.inner_shape if sharding is not None else self._meta.chunks

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The shard shape, the unit of storage of a sharded array; ``None`` when not sharded."""
        return self._meta.chunks if self._pipeline.sharding is not None else None

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
        """Stored objects along each dimension (shards when sharded, else chunks): the grid that
        chunk indices of chunk-level I/O and streams address."""
        return self._grid.grid_shape

    @property
    def cdata_shape(self) -> tuple[int, ...]:
        """Chunks along each dimension, counting the chunks inside shards (as in zarr-python)."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    @property
    def nchunks(self) -> int:
        """How many chunks the array has, counting the chunks inside shards (as in zarr-python)."""
        return math.prod(self.cdata_shape)

    @property
    def nshards(self) -> int:
        """How many stored objects the array has room for: shards when sharded, else chunks."""
        return self._grid.nchunks

    @property
    def nshards_initialized(self) -> int:
        """How many stored objects (shards when sharded, else chunks) exist in the store; lists the
        array's keys. Keys whose first segment starts with ``.`` (``.zattrs``, bookkeeping such as
        ``.zarrcore/``) are never chunks."""
        base = self.path + "/" if self.path else ""
        skip = {base + name for name in (*self._meta.metadata_keys(), ".zattrs")}
        return sum(1 for key in self.store.list(base) if key not in skip and not key[len(base) :].startswith("."))

    @property
    def info(self) -> str:
        """A human-readable summary."""
        return array_info(self)

    def __repr__(self) -> str:
        shards = f" shards={self.shards}" if self.shards is not None else ""
        return f"<zarrcore.Array {self.url} shape={self.shape} dtype={self.dtype} chunks={self.chunks}{shards}>"

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    # -- chunk addressing ------------------------------------------------------------------------
    def chunk_key(self, index: Sequence[int]) -> str:
        """The store key of a stored object (a shard when sharded): the array's path joined with
        :meth:`ArrayMetadata.encode_chunk_key`."""
        return self._key(tuple(index))

    def _key(self, idx: ChunkIndex) -> str:
        if not idx:
            return join_key(self.path, self._meta.encode_chunk_key(idx))
        return self._key_prefix + self._meta.separator.join(map(str, idx))

    def chunk_indices(self) -> Iterator[ChunkIndex]:
        """Every index of :attr:`grid_shape` (stored objects: shards when sharded) in C order."""
        return self._grid.indices()

    def chunk_region(self, index: Sequence[int]) -> tuple[slice, ...]:
        """The region of the array a stored object (a shard when sharded) covers, clipped to the bounds."""
        return self._grid.region(self._grid.check_index(index))

    def _full_fill(self) -> np.ndarray:
        if self._fill_chunk is None:
            chunk = np.full(self._meta.chunks, self._meta.fill, dtype=self.dtype)
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
        return self._encode(idx, grid.padded_chunk(idx, data, self._meta.chunks, self._grid.region_shape(idx),
                                                   self._full_fill))  # fmt: skip

    def _encode(self, idx: ChunkIndex, chunk: np.ndarray, *, joined: bool = True) -> Encoded | None:
        """The chunk's stored bytes; ``joined=False``: as a list of buffers, a shard's left unjoined."""
        if not self.write_empty_chunks and is_fill(chunk, self._meta.fill):
            return None
        try:
            return self._pipeline.encode(chunk) if joined else self._pipeline.encode_parts(chunk)
        except Exception as exc:
            raise ChunkError(idx, CodecError(f"encoding failed: {exc}"), key=self.chunk_key(idx)) from exc

    def decode_chunk(self, index: Sequence[int], data: bytes | memoryview) -> np.ndarray:
        """Decode stored chunk bytes to a full chunk-shaped array (raises ``ChunkError`` if corrupt)."""
        return self._decode(tuple(index), data)

    def _decode(self, idx: ChunkIndex, data: bytes | memoryview, into: np.ndarray | None = None) -> np.ndarray:
        try:
            if into is not None and self._pipeline.decode_into(data, into):
                return into
            return self._pipeline.decode(data)
        except Exception as exc:
            raise ChunkError(idx, exc if isinstance(exc, CodecError) else CodecError(str(exc)),
                             key=self.chunk_key(idx)) from exc  # fmt: skip

    def read_chunk_bytes(self, index: Sequence[int]) -> bytes | None:
        """The stored bytes of a chunk, or ``None`` if it is not stored."""
        try:
            return self.store.get(self.chunk_key(self._grid.check_index(index)))
        except NotFound:
            return None

    def write_chunk_bytes(self, index: Sequence[int], data: bytes | memoryview | None) -> None:
        """Store already-encoded bytes for a chunk (``None`` deletes it); one atomic PUT."""
        self.check_writable()
        self._put(self._grid.check_index(index), data)

    def _put(self, idx: ChunkIndex, data: Encoded | None) -> None:
        key = self._key(idx)
        if self._parts is not None:
            self._parts.forget(key)  # its version is about to change: spare a refused read
        if not telemetry.enabled():  # no span to build, as in _load
            self._store_object(key, data)
            return
        with telemetry.span(("zarrcore", "chunk", "write"), self._span_meta(idx, key)) as m:
            self._store_object(key, data)
            m.update(meta_stored=data is not None, encoded_bytes=_nbytes(data), decoded_bytes=self._pipeline.nbytes)

    def _store_object(self, key: str, data: Encoded | None) -> None:
        if data is None:
            self.store.delete(key)
        elif isinstance(data, list):
            self.store.put_parts(key, data)
        else:
            self.store.put(key, data)

    # -- chunk arrays ----------------------------------------------------------------------------
    def _load(self, idx: ChunkIndex, into: np.ndarray | None = None) -> np.ndarray | None:
        """A full stored-shape array, or ``None`` when the object is not stored. ``into``: an array the
        pipeline :meth:`~CodecPipeline.takes`, to decode into when the codecs allow (it is then what is returned)."""
        key = self._key(idx)
        if not telemetry.enabled():  # no span to build: this path runs once per chunk of every slice
            try:
                data = self.store.get(key)
            except NotFound:
                return None
            return self._decode(idx, data, into)
        with telemetry.span(("zarrcore", "chunk", "read"), self._span_meta(idx, key)) as m:
            try:
                data = self.store.get(key)
            except NotFound:
                m.update(meta_stored=False, encoded_bytes=0, decoded_bytes=0)
                return None
            chunk = self._decode(idx, data, into)
            m.update(meta_stored=True, encoded_bytes=len(data), decoded_bytes=chunk.nbytes)
        return chunk

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
        return chunk if region == self._meta.chunks else chunk[tuple(slice(0, n) for n in region)]

    def load_chunk(self, index: Sequence[int]) -> np.ndarray | None:
        """A full chunk-shaped (possibly read-only) array, or ``None`` if the chunk is not stored."""
        return self._load(self._grid.check_index(index))

    def write_chunk(self, index: Sequence[int], data: Any) -> bool:
        """Write one chunk as one atomic PUT; ``data`` has the chunk's region or full chunk shape.

        A chunk equal to the fill value is deleted instead of stored (unless ``write_empty_chunks``).
        Returns whether an object was stored.
        """
        self.check_writable()
        idx = self._grid.check_index(index)
        encoded = self.encode_chunk(idx, data)
        self.write_chunk_bytes(idx, encoded)
        return encoded is not None

    def delete_chunk(self, index: Sequence[int]) -> None:
        """Remove a chunk (it then reads as the fill value)."""
        self.check_writable()
        self.store.delete(self.chunk_key(self._grid.check_index(index)))

    # -- slicing (zarrcore.slicing) --------------------------------------------------------------
    def __getitem__(self, selection: Any) -> Any:
        return read_selection(self, selection)

    def __setitem__(self, selection: Any, value: Any) -> None:
        write_selection(self, selection, value)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return np.asarray(data, dtype=dtype)

    # -- metadata changes ------------------------------------------------------------------------
    def _save_attributes(self, attrs: dict[str, Any]) -> None:
        self.check_writable()
        meta = self._meta.replace(attributes=attrs)
        write_node(self.store, self.path, meta)
        self._meta = meta

    def resize(self, *shape: Any) -> None:
        """Change the shape. Chunks wholly outside the new shape are deleted; in chunks cut by the new
        bounds the cut-off part is reset to the fill value, so growing again never resurrects old data."""
        self.check_writable()
        new_shape = normalize_shape(shape[0] if len(shape) == 1 else shape, "shape")
        if len(new_shape) != self.ndim:
            raise SelectionError(f"resize: new shape {new_shape} has rank {len(new_shape)}, array has {self.ndim}")
        if any(s < 0 for s in new_shape):
            raise SelectionError(f"resize: shape must be >= 0, got {new_shape}")
        new_meta = self._meta.replace(shape=new_shape)
        trim_chunks(self, new_shape)
        write_node(self.store, self.path, new_meta)
        self._set_metadata(new_meta)

    def append(self, data: Any, axis: int = 0) -> tuple[int, ...]:
        """Grow the array along ``axis`` and write ``data`` there; returns the new shape."""
        self.check_writable()
        arr = np.asarray(data)
        old = self.shape
        new_shape, axis = grown_shape(old, arr.shape, axis)
        self.resize(new_shape)
        region = tuple(slice(old[axis], None) if d == axis else slice(None) for d in range(self.ndim))
        self[region] = arr
        return new_shape

    # -- streaming: the functions of zarrcore.streams, as methods ------------------------------
    stream_chunks = streams.stream_chunks
    write_stream = streams.write_stream
