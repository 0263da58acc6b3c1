"""Reads and writes of part of a shard: only its index and the inner chunks a selection touches.

A shard whose codecs are only ``sharding_indexed`` (no array codec before it, nothing after it) can
be read in parts: its index first, then the byte ranges of the inner chunks wanted, in one
:meth:`~zarrcore.storage.base.Store.get_ranges` call (the store merges nearby ranges). The ranges
are read only from the version of the shard whose index was read, where the store can tell
versions, so a reader never mixes two shards. Indexes are kept (:class:`IndexCache`) with that
version: a later read needs only its ranges, and a shard replaced since is refused and its index read
again. When a part cannot be read on its own terms the caller reads the whole shard instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from zarrcore import telemetry
from zarrcore.codecs.sharding import ShardingCodec, box_selection, selection_box
from zarrcore.errors import ChunkError, CodecError, NotFound, PreconditionFailed
from zarrcore.grid import Projection
from zarrcore.pool import run_all
from zarrcore.storage.base import RangeRequest, Store
from zarrcore.storage.ranges import coalesce

__all__ = ["IndexCache", "PartRead", "ShardParts"]

ChunkIndex = tuple[int, ...]


class IndexCache:
    """Decoded shard indexes by shard key, each with the version of the shard it was read from.
    Least recently used entries go first beyond ``max_bytes``."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[str, np.ndarray] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, version: str, index: np.ndarray) -> None:
        with self._lock:
            self._drop(key)
            self._entries[key] = (version, index)
            self._bytes += index.nbytes
            while self._bytes > self.max_bytes and self._entries:
                self._drop(next(iter(self._entries)))

    def drop(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1].nbytes

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class PartRead:
    """What a partial read found: ``"values"`` (the selection's values), ``"placed"`` (they were
    decoded straight into the caller's ``into``), ``"missing"`` (the shard is not stored: all fill
    value) or ``"whole"`` (read the whole shard instead: the selection touches most of it, the shard
    changed between the requests, or its parts do not decode)."""

    outcome: Literal["values", "placed", "missing", "whole"]
    values: np.ndarray | None = None


_MISSING = PartRead("missing")
_PLACED = PartRead("placed")
_WHOLE = PartRead("whole")


#: A thread keeps its read buffer for the next partial read up to this size: memory used again is not
#: faulted in again (fresh memory costs a page fault per 4 KiB, as much as the copy into it).
SCRATCH_MAX = 4 << 20
_scratch_of = threading.local()


def _scratch(nbytes: int) -> memoryview:
    """``nbytes`` of the calling thread's read buffer, valid until the thread's next partial read."""
    buf: bytearray | None = getattr(_scratch_of, "buf", None)
    if buf is None or len(buf) < nbytes:
        buf = bytearray(nbytes)
        if nbytes <= SCRATCH_MAX:
            _scratch_of.buf = buf
    return memoryview(buf)[:nbytes]


@dataclass
class _Fetch:
    """The requests one partial read made: their count and bytes, for its telemetry."""

    requests: int = 0
    nbytes: int = 0

    def add(self, parts: list[bytes | memoryview], requests: int = 1) -> None:
        self.requests += requests
        self.nbytes += sum(memoryview(p).nbytes for p in parts)


@dataclass
class ShardParts:
    """Partial reads and writes of the shards of one array (``key`` names a shard's store key,
    ``span_meta`` its telemetry metadata)."""

    sharding: ShardingCodec
    store: Store
    key: Callable[[ChunkIndex], str]
    span_meta: Callable[[ChunkIndex, str], dict[str, Any]]
    indexes: IndexCache = field(default_factory=IndexCache)

    def forget(self, key: str) -> None:
        """The shard at ``key`` is about to change: its kept index would only be refused."""
        self.indexes.drop(key)

    def read(self, p: Projection, into: np.ndarray | None = None) -> PartRead:
        """``shard[p.chunk_selection]`` of the shard at ``p.index``. ``into``: the selection's place
        in the caller's result; a box selection (slices of step 1) is decoded straight into it."""
        sharding = self.sharding
        box = selection_box(p.chunk_selection)
        if 2 * sharding.count_in(box) > sharding.count:
            return _WHOLE
        if into is not None and (into.shape != tuple(b.stop - b.start for b in box)  # an integer index dropped an axis
                                 or any(s.step not in (None, 1) for s in p.chunk_selection)):  # type: ignore[union-attr]
            into = None  # not a box of the result: decode into a box of the shard, then copy the selection
        key = self.key(p.index)
        with telemetry.span(("zarrcore", "chunk", "read"), self.span_meta(p.index, key)) as m:
            fetched = _Fetch()
            part: np.ndarray | None = None
            cached = self.indexes.get(key)
            if cached is not None:
                part = self._read_box(key, box, *cached, fetched, into=into)
                if part is None:
                    self.indexes.drop(key)  # replaced (or gone) since: read its index again
            if part is None:
                try:
                    raw_index, version = self.store.get_versioned(key, sharding.index_range())
                except NotFound:
                    m.update(meta_stored=False, encoded_bytes=fetched.nbytes, decoded_bytes=0,
                             requests=fetched.requests)  # fmt: skip
                    return _MISSING
                fetched.add([raw_index])
                try:
                    index: np.ndarray | None = sharding.decode_index(raw_index)
                except CodecError:
                    index = None
                if index is not None:
                    part = self._read_box(key, box, version, index, fetched, verify=False, into=into)
                if part is None:
                    m.update(meta_stored=True, encoded_bytes=fetched.nbytes, decoded_bytes=0,
                             requests=fetched.requests, meta_whole_read=True)  # fmt: skip
                    return _WHOLE
                if version is not None and index is not None:
                    self.indexes.put(key, version, index)
            m.update(meta_stored=True, encoded_bytes=fetched.nbytes, decoded_bytes=part.nbytes,
                     requests=fetched.requests)  # fmt: skip
        return _PLACED if into is not None else PartRead("values", part[box_selection(p.chunk_selection, box)])

    def _read_box(
        self, key: str, box: tuple[slice, ...], version: str | None, index: np.ndarray, fetched: _Fetch,
        *, verify: bool = True, into: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """``box`` of the shard at ``key`` from its ``index``, the ranges read only from ``version``,
        in ``into`` when given (of the box's shape) or in a new array; ``None`` when that version is
        gone or the bytes do not decode. With ``verify`` (an index kept from earlier), a box that needs
        no range still makes one request, so that a replaced shard is never answered from an old index."""
        parts = self.sharding.parts_in(box, index)
        if verify and not parts:
            return None  # nothing to read would check the version: read the index instead
        if into is None:
            out = self.sharding.empty_box(box)
        else:
            out = into
            if len(parts) < self.sharding.count_in(box):  # inner chunks not stored read as the fill value
                out[...] = self.sharding.fill
        if not parts:
            return out
        try:
            ranges = [RangeRequest(p.start, p.stop) for p in parts]
            into_ = _scratch(sum(p.stop - p.start for p in parts))
            datas = self.store.get_ranges(key, ranges, version=version, into=into_)
            fetched.add(datas, len(coalesce(ranges, gap=self.store.range_gap)))
            light = self.sharding.inner.light  # as in Array.__getitem__: quick codecs read on one thread
            run_all(lambda pd: self.sharding.place(out, box, *pd), zip(parts, datas, strict=True), self.store,
                    cpu_workers=1 if light else None)  # fmt: skip
        except (CodecError, NotFound, PreconditionFailed):
            return None
        return out

    def write(self, p: Projection, values: np.ndarray, *, keep_empty: bool) -> list[bytes | memoryview] | None:
        """The shard at ``p.index`` with ``values`` written into ``p.chunk_selection``, as the buffers
        to store one after another (``None``: it holds only the fill value); only the inner chunks
        touched are re-encoded."""
        key = self.key(p.index)
        try:
            old = self.store.get(key)
        except NotFound:
            old = None
        try:
            return self.sharding.update(old, p.chunk_selection, values, keep_empty=keep_empty)
        except CodecError as exc:
            raise ChunkError(p.index, exc, key=key) from exc
