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

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from zarrcore import telemetry
from zarrcore.codecs.sharding import InnerPart, ShardingCodec, box_selection, selection_box
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

    def close(self, m: dict[str, Any], *, stored: bool = True, whole: bool = False, decoded: int = 0) -> None:
        """Fill a read's telemetry measurements: the shard ``stored`` or not, read in ``whole`` after
        this part, ``decoded`` bytes."""
        m.update(meta_stored=stored, encoded_bytes=self.nbytes, decoded_bytes=decoded, requests=self.requests)
        if whole:
            m["meta_whole_read"] = True


@dataclass(eq=False)
class _Box:
    """One shard's part of a read: where it goes, its inner chunks and, once fetched, their bytes."""

    p: Projection | None
    out: np.ndarray
    key: str
    box: tuple[slice, ...]
    parts: list[InnerPart]
    version: str | None
    index: np.ndarray
    kept: bool = False
    fetched: _Fetch = field(default_factory=_Fetch)
    span: dict[str, Any] = field(default_factory=dict)
    datas: list[bytes | memoryview] = field(default_factory=list)
    failed: bool = False

    @property
    def nbytes(self) -> int:
        return sum(part.stop - part.start for part in self.parts)


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

    def _box(self, p: Projection, into: np.ndarray | None) -> tuple[tuple[slice, ...], np.ndarray | None] | None:
        """The box of the shard a partial read of ``p`` decodes, and ``into`` if that box is a box of
        the caller's result (else ``None``); ``None`` when the selection touches most of the shard."""
        sharding = self.sharding
        box = selection_box(p.chunk_selection)
        if 2 * sharding.count_in(box) > sharding.count:
            return None
        if into is not None and (into.shape != tuple(b.stop - b.start for b in box)  # an integer index dropped an axis
                                 or any(s.step not in (None, 1) for s in p.chunk_selection)):  # type: ignore[union-attr]
            into = None  # not a box of the result: decode into a box of the shard, then copy the selection
        return box, into

    def _fresh_index(self, key: str, fetched: _Fetch) -> tuple[str | None, np.ndarray | None] | None:
        """The shard's index read from the store with the shard's version (the index ``None`` when it
        does not decode); ``None`` when the shard is not stored."""
        try:
            raw_index, version = self.store.get_versioned(key, self.sharding.index_range())
        except NotFound:
            return None
        fetched.add([raw_index])
        try:
            return version, self.sharding.decode_index(raw_index)
        except CodecError:
            return version, None

    def read(self, p: Projection, into: np.ndarray | None = None) -> PartRead:
        """``shard[p.chunk_selection]`` of the shard at ``p.index``. ``into``: the selection's place
        in the caller's result; a box selection (slices of step 1) is decoded straight into it."""
        planned = self._box(p, into)
        if planned is None:
            return _WHOLE
        box, into = planned
        key = self.key(p.index)
        with telemetry.span(("zarrcore", "chunk", "read"), self.span_meta(p.index, key)) as m:
            fetched = _Fetch()
            part: np.ndarray | PartRead | None = None
            cached = self.indexes.get(key)
            if cached is not None:
                part = self._read_box(key, box, *cached, fetched, into=into)
                if part is not None:
                    fetched.close(m, decoded=part.nbytes)
            if part is None:
                part = self._afresh(key, box, into, fetched, m)
        if isinstance(part, PartRead):
            return part
        return _PLACED if into is not None else PartRead("values", part[box_selection(p.chunk_selection, box)])

    def _afresh(
        self, key: str, box: tuple[slice, ...], into: np.ndarray | None, fetched: _Fetch, m: dict[str, Any]
    ) -> np.ndarray | PartRead:
        """``box`` of the shard at ``key`` with its index read from the store (any kept one dropped):
        the box's values, or ``_MISSING`` / ``_WHOLE``; fills the read's telemetry ``m``."""
        self.indexes.drop(key)
        found = self._fresh_index(key, fetched)
        if found is None:
            fetched.close(m, stored=False)
            return _MISSING
        version, index = found
        part = None if index is None else self._read_box(key, box, version, index, fetched, verify=False, into=into)
        if part is None:
            fetched.close(m, whole=True)
            return _WHOLE
        if version is not None:
            self.indexes.put(key, version, index)  # type: ignore[arg-type]
        fetched.close(m, decoded=part.nbytes)
        return part

    def read_all(self, reads: list[tuple[Projection, np.ndarray]]) -> tuple[list[Projection], list[Projection]]:
        """Partial reads of several shards for one selection, on a store where a chunk costs only CPU
        (memory, local disk). ``reads``: projections and their places in the caller's result.

        Each shard's index (kept, or read) and inner-chunk bytes are read one shard after another on
        the calling thread, into one buffer; then all their inner chunks are decoded over the pool at
        once, straight into those places: one round of the pool for the selection, not one per shard.
        Returns the projections left to :meth:`read` (most of a shard, not a box of the result, nothing
        to read that would check a kept index), and those to read whole (the shard changed while read,
        or its parts do not decode)."""
        sharding, rest, whole, boxes = self.sharding, [], [], []
        with contextlib.ExitStack() as spans:
            for p, into in reads:
                planned = self._box(p, into)
                if planned is None or planned[1] is None:  # most of the shard, or not a box of the result
                    rest.append(p)
                    continue
                box, key = planned[0], self.key(p.index)
                kept = self.indexes.get(key)
                parts = sharding.parts_in(box, kept[1]) if kept is not None else None
                if kept is not None and not parts:  # nothing to read would check the kept index's version
                    rest.append(p)
                    continue
                m = spans.enter_context(telemetry.span(("zarrcore", "chunk", "read"), self.span_meta(p.index, key)))
                fetched = _Fetch()
                if kept is None:
                    found = self._fresh_index(key, fetched)
                    if found is None or found[1] is None:
                        if found is None:
                            into[...] = sharding.fill
                        else:
                            whole.append(p)
                        fetched.close(m, stored=found is not None, whole=found is not None)
                        continue
                    parts = sharding.parts_in(box, found[1])
                    version, index = found
                else:
                    version, index = kept
                assert parts is not None
                if len(parts) < sharding.count_in(box):  # inner chunks not stored read as the fill value
                    into[...] = sharding.fill
                boxes.append(_Box(p, into, key, box, parts, version, index, kept is not None, fetched, m))
            buffer, offset = _scratch(sum(b.nbytes for b in boxes)), 0
            for b in boxes:
                try:
                    if b.parts:
                        b.datas = self._fetch(b.key, b.parts, b.version, buffer[offset : offset + b.nbytes], b.fetched)
                except (NotFound, PreconditionFailed):
                    b.failed = True
                offset += b.nbytes
            self._decode([b for b in boxes if not b.failed])
            for b in boxes:
                if not b.failed:
                    if not b.kept and b.version is not None:
                        self.indexes.put(b.key, b.version, b.index)
                    b.fetched.close(b.span, decoded=b.out.nbytes)
                    continue
                # a kept index the shard no longer matches: read with its index afresh; else read it whole
                got = self._afresh(b.key, b.box, b.out, b.fetched, b.span) if b.kept else _WHOLE
                if got is _MISSING:
                    b.out[...] = sharding.fill
                elif got is _WHOLE:
                    if not b.kept:
                        b.fetched.close(b.span, whole=True)
                    whole.append(b.p)  # type: ignore[arg-type]
        return rest, whole

    def _fetch(
        self, key: str, parts: list[InnerPart], version: str | None, into: memoryview, fetched: _Fetch
    ) -> list[bytes | memoryview]:
        """The bytes of ``parts`` of the shard at ``key`` (only from ``version``), read into ``into``."""
        ranges = [RangeRequest(p.start, p.stop) for p in parts]
        datas = self.store.get_ranges(key, ranges, version=version, into=into)
        fetched.add(datas, len(coalesce(ranges, gap=self.store.range_gap)))
        return datas

    def _decode(self, boxes: list[_Box]) -> None:
        """Decode every box's inner chunks into its ``out``, over the pool in one round; a box whose
        bytes do not decode is marked ``failed``."""
        sharding = self.sharding

        def place(job: tuple[_Box, InnerPart, bytes | memoryview]) -> None:
            b, part, data = job
            if not b.failed:
                try:
                    sharding.place(b.out, b.box, part, data)
                except CodecError:
                    b.failed = True

        jobs = [(b, part, data) for b in boxes for part, data in zip(b.parts, b.datas, strict=True)]
        light = sharding.inner.light  # as in slicing.read_selection: quick codecs read on one thread
        run_all(place, jobs, self.store, cpu_workers=1 if light else None)

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
        out = self.sharding.empty_box(box) if into is None else into
        if into is not None and len(parts) < self.sharding.count_in(box):  # not stored: the fill value
            out[...] = self.sharding.fill
        if not parts:
            return out
        b = _Box(None, out, key, box, parts, version, index)
        try:
            b.datas = self._fetch(key, parts, version, _scratch(b.nbytes), fetched)
        except (NotFound, PreconditionFailed):
            return None
        self._decode([b])
        return None if b.failed else out

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
