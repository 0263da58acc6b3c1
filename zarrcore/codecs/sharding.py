"""The ``sharding_indexed`` codec: many inner chunks in one stored object (a shard), with an index.

A shard holds the encoded inner chunks one after another and an index of ``(offset, nbytes)`` pairs,
one per inner chunk in C order (``2**64 - 1`` twice for a chunk that is not stored), encoded by its own
fixed-size codecs (``bytes`` and usually ``crc32c``) at the start or the end of the object. In zarrcore
a shard is the unit of storage, so it is what chunk keys, chunk-level I/O and chunk streams address;
:meth:`ShardingCodec.parts_in` says which byte ranges hold the inner chunks a reader needs, and
:meth:`ShardingCodec.place` decodes them (:mod:`zarrcore.shards` does the reading).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, Protocol

import numpy as np

from zarrcore.errors import CodecError
from zarrcore.metadata.dtypes import fill_blocks, is_fill
from zarrcore.metadata.model import ArrayMetadata
from zarrcore.storage.base import RangeRequest, SuffixRequest

__all__ = [
    "EMPTY", "InnerPart", "ShardingCodec", "box_selection", "default_index_codecs", "selection_box",
    "sharding_codecs",
]  # fmt: skip

#: The index value of an inner chunk that is not stored (both offset and length).
EMPTY = np.uint64(2**64 - 1)
#: A shard of at most this many inner chunks keeps their regions, made once (a list of slices each).
KEPT_REGIONS = 1 << 16
_INDEX_CODECS = {"bytes", "crc32c", "transpose"}  # the fixed-size codecs an index may use


class _Pipeline(Protocol):
    nbytes: int

    def encode(self, chunk: np.ndarray) -> bytes | memoryview: ...

    def decode(self, data: bytes | memoryview) -> np.ndarray: ...


def default_index_codecs() -> list[dict[str, Any]]:
    """The index codecs zarr-python writes: little-endian uint64 pairs and a CRC-32C checksum."""
    return [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]


def sharding_codecs(inner_chunks: tuple[int, ...], codecs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The v3 codec list of a sharded array: one ``sharding_indexed`` codec holding ``codecs``."""
    config = {"chunk_shape": list(inner_chunks), "codecs": codecs, "index_codecs": default_index_codecs(),
              "index_location": "end"}  # fmt: skip
    return [{"name": "sharding_indexed", "configuration": config}]


class ShardingCodec:
    """``sharding_indexed`` as the array -> bytes codec of a :class:`~zarrcore.codecs.CodecPipeline`.

    ``shard_shape`` is the shape the codec receives (the chunk shape after any ``transpose``);
    ``build`` makes a pipeline from metadata (the inner chunks' and the index's).
    """

    def __init__(
        self,
        config: dict[str, Any],
        meta: ArrayMetadata,
        shard_shape: tuple[int, ...],
        build: Callable[[ArrayMetadata], _Pipeline],
    ) -> None:
        unknown = set(config) - {"chunk_shape", "codecs", "index_codecs", "index_location"}
        if unknown:
            raise CodecError(f"unknown configuration keys {sorted(unknown)}")
        inner = config.get("chunk_shape")
        if (
            not isinstance(inner, list | tuple)
            or len(inner) != len(shard_shape)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in inner)
        ):
            raise CodecError(f"chunk_shape must be {len(shard_shape)} integers >= 1, got {inner!r}")
        self.inner_shape = tuple(inner)
        if any(s % c for s, c in zip(shard_shape, self.inner_shape, strict=True)):
            raise CodecError(
                f"the shard shape {list(shard_shape)} must be a multiple of the inner chunk shape "
                f"{list(self.inner_shape)} in every dimension"
            )
        self.location = config.get("index_location", "end")
        if self.location not in ("start", "end"):
            raise CodecError(f"index_location must be 'start' or 'end', got {self.location!r}")
        codecs, index_codecs = config.get("codecs"), config.get("index_codecs", default_index_codecs())
        for name, value in (("codecs", codecs), ("index_codecs", index_codecs)):
            if not isinstance(value, list | tuple) or not all(isinstance(c, dict) for c in value):
                raise CodecError(f"{name} must be a list of codec objects, got {value!r}")
        odd = [c.get("name") for c in index_codecs if not isinstance(c.get("name"), str)
               or c.get("name") not in _INDEX_CODECS]  # fmt: skip
        if odd:
            raise CodecError(f"index_codecs must have a fixed size (bytes, crc32c, transpose), got {odd}")
        self.shard_shape = shard_shape
        self.grid = tuple(s // c for s, c in zip(shard_shape, self.inner_shape, strict=True))
        self.count = math.prod(self.grid)
        #: How far apart neighbours along each axis of the grid are in the index (C order).
        self._grid_strides = tuple(math.prod(self.grid[i + 1 :]) for i in range(len(self.grid)))
        if self.count > 2**31:
            raise CodecError(f"{self.count} inner chunks per shard (shard {list(shard_shape)}, inner chunks "
                             f"{list(self.inner_shape)}); at most 2**31 are supported")
        self.dtype = meta.dtype
        self.fill = meta.fill
        try:
            self.inner = build(meta.replace(shape=self.inner_shape, chunks=self.inner_shape, codecs=tuple(codecs)))
        except CodecError as exc:
            raise CodecError(f"codecs: {exc}") from None
        index_meta = ArrayMetadata(zarr_format=3, shape=(*self.grid, 2), chunks=(*self.grid, 2),
                                   dtype=np.dtype("uint64"), fill_value=EMPTY, codecs=tuple(index_codecs))  # fmt: skip
        try:
            self.index_codec = build(index_meta)
        except CodecError as exc:
            raise CodecError(f"index_codecs: {exc}") from None
        #: The encoded index's size in bytes (fixed: 16 per inner chunk, plus 4 per checksum), known
        #: without encoding one: an index is never allocated before a shard's own size is checked.
        self.index_nbytes = 16 * self.count + 4 * sum(c.get("name") == "crc32c" for c in index_codecs)
        self._kept_regions: list[tuple[int, tuple[slice, ...]]] | None = None

    def _regions(self) -> Iterator[tuple[int, tuple[slice, ...]]] | list[tuple[int, tuple[slice, ...]]]:
        """Each inner chunk's position in the index and its region in the shard, in C order (made once
        and kept for up to :data:`KEPT_REGIONS` inner chunks)."""
        if self._kept_regions is not None:
            return self._kept_regions
        regions = (
            (n, tuple(slice(p * c, (p + 1) * c) for p, c in zip(position, self.inner_shape, strict=True)))
            for n, position in enumerate(np.ndindex(*self.grid))
        )
        if self.count > KEPT_REGIONS:
            return regions
        self._kept_regions = list(regions)
        return self._kept_regions

    # -- whole shards ------------------------------------------------------------------------------
    def encode(self, shard: np.ndarray) -> bytes:
        """Encode a shard (any strides): every inner chunk that holds more than the fill value, then the index."""
        return b"".join(self.encode_parts(shard))

    def encode_parts(self, shard: np.ndarray) -> list[bytes | memoryview]:
        """:meth:`encode`'s bytes as the buffers they are made of (the index and each stored inner chunk),
        not joined: a store that writes a list of buffers at once skips copying them into one."""
        blocks = self._blocks(shard)
        empty = fill_blocks(blocks, self.fill)
        return self._assemble((n, self.inner.encode(block)) for n, block in enumerate(blocks) if not empty[n])

    def _blocks(self, shard: np.ndarray) -> np.ndarray:
        """The shard's inner chunks in C order as one C-contiguous ``(count, *inner_shape)`` array: a
        single copy out of the shard (however strided), after which each inner chunk is contiguous."""
        nd = len(self.grid)
        split = shard.reshape([n for pair in zip(self.grid, self.inner_shape, strict=True) for n in pair])
        blocked = split.transpose([*range(0, 2 * nd, 2), *range(1, 2 * nd, 2)])
        return np.ascontiguousarray(blocked).reshape(self.count, *self.inner_shape)

    def _assemble(self, parts: Iterable[tuple[int, bytes | memoryview]]) -> list[bytes | memoryview]:
        """A stored shard's buffers, index included, from ``(index row, encoded bytes)`` of its stored
        inner chunks in row order."""
        index = np.full((self.count, 2), EMPTY, dtype="uint64")
        buffers: list[bytes | memoryview] = []
        offset = self.index_nbytes if self.location == "start" else 0
        for n, data in parts:
            size = memoryview(data).nbytes
            index[n] = (offset, size)
            buffers.append(data)
            offset += size
        encoded_index = self.index_codec.encode(index.reshape(*self.grid, 2))
        return [encoded_index, *buffers] if self.location == "start" else [*buffers, encoded_index]

    def decode(self, data: bytes | memoryview) -> np.ndarray:
        """Decode a whole shard to an array of the shard shape."""
        out = np.empty(self.shard_shape, dtype=self.dtype)
        self.decode_into(data, out)
        return out

    def decode_into(self, data: bytes | memoryview, out: np.ndarray) -> None:
        """Decode a whole shard into ``out``, of the shard shape and any strides (a shard's place in
        a larger array): each inner chunk is copied once, from its decoded bytes to its place."""
        view = memoryview(data).cast("B")
        rows = self.decode_index(self.index_bytes(view), len(view)).tolist()  # Python ints: cheap to slice with
        empty = int(EMPTY)
        for (offset, size), (_, region) in zip(rows, self._regions(), strict=True):
            if offset == empty:
                out[region] = self.fill
            else:
                out[region] = self.decode_inner(view[offset : offset + size])

    # -- parts of shards ---------------------------------------------------------------------------
    def index_bytes(self, shard: memoryview) -> memoryview:
        """The encoded index within a whole shard's bytes."""
        if len(shard) < self.index_nbytes:
            raise CodecError(f"shard of {len(shard)} bytes cannot hold its {self.index_nbytes}-byte index")
        return shard[: self.index_nbytes] if self.location == "start" else shard[len(shard) - self.index_nbytes :]

    def decode_index(self, data: bytes | memoryview, shard_nbytes: int | None = None) -> np.ndarray:
        """The index as ``(count, 2)`` uint64 ``(offset, nbytes)`` rows, checked against the shard's size."""
        if memoryview(data).nbytes != self.index_nbytes:
            raise CodecError(f"shard index of {memoryview(data).nbytes} bytes, expected {self.index_nbytes}")
        try:
            index = self.index_codec.decode(data).reshape(self.count, 2)
        except CodecError as exc:
            raise CodecError(f"shard index: {exc}") from None
        except Exception as exc:  # a checksum mismatch, from numcodecs
            raise CodecError(f"shard index: {exc}") from None
        empty = (index[:, 0] == EMPTY) & (index[:, 1] == EMPTY)
        stored = index[~empty]
        if ((index[:, 0] == EMPTY) != empty).any() or ((index[:, 1] == EMPTY) != empty).any():
            raise CodecError("shard index: an inner chunk is half empty (offset or length alone is 2**64-1)")
        if shard_nbytes is not None and len(stored):
            ends = stored[:, 0] + stored[:, 1]
            if (ends < stored[:, 0]).any() or int(ends.max()) > shard_nbytes:
                raise CodecError(f"shard index: an inner chunk ends past the shard's {shard_nbytes} bytes")
        return index

    def decode_inner(self, data: bytes | memoryview) -> np.ndarray:
        """Decode one inner chunk's bytes to an array of the inner chunk shape."""
        try:
            return self.inner.decode(data)
        except Exception as exc:  # numcodecs raises RuntimeError, ValueError...
            raise CodecError(f"inner chunk: {exc}") from None

    def index_range(self) -> RangeRequest | SuffixRequest:
        """Where the encoded index sits in a stored shard."""
        if self.location == "start":
            return RangeRequest(0, self.index_nbytes)
        return SuffixRequest(self.index_nbytes)

    def inner_chunks_in(self, box: tuple[slice, ...]) -> Iterator[tuple[int, tuple[slice, ...]]]:
        """The inner chunks (index row, region in the shard) that a box of the shard overlaps."""
        spans = [range(b.start // c, -(-b.stop // c)) for b, c in zip(box, self.inner_shape, strict=True)]
        inner, strides = self.inner_shape, self._grid_strides
        for cell in itertools.product(*spans):
            region = tuple(slice(k * c, (k + 1) * c) for k, c in zip(cell, inner, strict=True))
            yield sum(k * s for k, s in zip(cell, strides, strict=True)), region

    def count_in(self, box: tuple[slice, ...]) -> int:
        """How many inner chunks a box of the shard overlaps."""
        return math.prod(-(-b.stop // c) - b.start // c for b, c in zip(box, self.inner_shape, strict=True))

    def parts_in(self, box: tuple[slice, ...], index: np.ndarray) -> list[InnerPart]:
        """Where the stored inner chunks that ``box`` overlaps sit in the shard, as the decoded
        ``index`` says (inner chunks not stored have no part: they read as the fill value)."""
        return [
            InnerPart(int(index[n, 0]), int(index[n, 0]) + int(index[n, 1]), region)
            for n, region in self.inner_chunks_in(box)
            if index[n, 0] != EMPTY
        ]

    def empty_box(self, box: tuple[slice, ...]) -> np.ndarray:
        """An array of ``box``'s shape holding the fill value, for :meth:`place` to fill in."""
        return np.full(tuple(b.stop - b.start for b in box), self.fill, dtype=self.dtype)

    def place(self, out: np.ndarray, box: tuple[slice, ...], part: InnerPart, data: bytes | memoryview) -> None:
        """Decode the inner chunk at ``part`` from its bytes ``data`` into ``out`` (``box``'s values)."""
        if memoryview(data).nbytes != part.stop - part.start:
            raise CodecError(
                f"bytes {part.start}-{part.stop} of the shard: got {memoryview(data).nbytes}, the shard is "
                f"shorter than its index says"
            )
        into, source = _overlap(part.region, box)
        out[into] = self.decode_inner(data)[source]

    def update(
        self, old: bytes | memoryview | None, selection: tuple[int | slice, ...], values: Any, *, keep_empty: bool
    ) -> list[bytes | memoryview] | None:
        """The shard ``old`` (``None``: not stored) with ``shard[selection] = values``, as the buffers to
        store one after another: only the inner chunks the selection touches are decoded and encoded
        again; the others keep their bytes (views of ``old``). Returns ``None`` when no inner chunk
        holds more than the fill value, unless ``keep_empty``."""
        view = memoryview(old or b"").cast("B")
        index = self.decode_index(self.index_bytes(view), len(view)) if old is not None else None
        box = selection_box(selection)
        touched = list(self.inner_chunks_in(box))
        chunks = []
        for n, _ in touched:
            if index is not None and index[n, 0] != EMPTY:
                offset, size = int(index[n, 0]), int(index[n, 1])  # type: ignore[index]
                chunk = np.array(self.decode_inner(view[offset : offset + size]))
            else:
                chunk = np.full(self.inner_shape, self.fill, dtype=self.dtype)
            chunks.append(chunk)
        part = self.empty_box(box)
        for (_, region), chunk in zip(touched, chunks, strict=True):
            into, source = _overlap(region, box)
            part[into] = chunk[source]
        part[box_selection(selection, box)] = values
        encoded: dict[int, bytes | memoryview | None] = {}
        for (n, region), chunk in zip(touched, chunks, strict=True):
            into, source = _overlap(region, box)
            chunk[source] = part[into]
            encoded[n] = None if is_fill(chunk, self.fill) else self.inner.encode(chunk)
        if index is not None:  # the untouched stored inner chunks keep their bytes
            for n in np.flatnonzero(index[:, 0] != EMPTY).tolist():
                if n not in encoded:
                    encoded[n] = view[int(index[n, 0]) : int(index[n, 0]) + int(index[n, 1])]
        if all(data is None for data in encoded.values()) and not keep_empty:
            return None
        return self._assemble((n, encoded[n]) for n in sorted(encoded) if encoded[n] is not None)  # type: ignore[misc]


def _overlap(region: tuple[slice, ...], box: tuple[slice, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Where an inner chunk at ``region`` and ``box`` (both regions of a shard) overlap: as slices
    of an array of ``box``'s shape, and of the inner chunk."""
    bounds = [(max(r.start, b.start), min(r.stop, b.stop)) for r, b in zip(region, box, strict=True)]
    into = tuple(slice(lo - b.start, hi - b.start) for (lo, hi), b in zip(bounds, box, strict=True))
    source = tuple(slice(lo - r.start, hi - r.start) for (lo, hi), r in zip(bounds, region, strict=True))
    return into, source


class InnerPart(NamedTuple):
    """An inner chunk in a stored shard: its bytes ``[start, stop)`` and its region in the shard."""

    start: int
    stop: int
    region: tuple[slice, ...]


def selection_box(selection: tuple[int | slice, ...]) -> tuple[slice, ...]:
    """The smallest box (one slice per dimension) holding ``selection`` (ints and slices within a shard)."""
    return tuple(slice(s, s + 1) if isinstance(s, int) else slice(s.start, s.stop) for s in selection)


def box_selection(selection: tuple[int | slice, ...], box: tuple[slice, ...]) -> tuple[int | slice, ...]:
    """``selection`` (ints and slices within a shard) relative to the start of ``box``."""
    return tuple(
        s - b.start if isinstance(s, int) else slice(s.start - b.start, s.stop - b.start, s.step)
        for s, b in zip(selection, box, strict=True)
    )
