"""A dataset transaction: the recorded intent of one commit, its units, and the commit itself.

A unit can be written in any thread or process, in any order and any number of times: it writes the
whole stored object, from the pieces and (when it merges) the values already stored, which no
transaction changes inside the published extent. The commit is one PUT of the consolidated metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from zarrcore.datasets.layout import Layout, other_keys, read_layout
from zarrcore.datasets.ledger import CommitRecord, Placement, mark, read_record, write_snapshot
from zarrcore.datasets.model import Piece
from zarrcore.datasets.plan import Unit, cut_rewrite_units, cut_units
from zarrcore.errors import CommitConflictError, DatasetError
from zarrcore.group import Group, consolidated_metadata, write_consolidated
from zarrcore.metadata import GroupMetadata
from zarrcore.nodes import read_node, write_node
from zarrcore.pool import run_all
from zarrcore.storage.base import Store, join_key

__all__ = ["Transaction"]

#: The pieces a unit is written from: by placement index.
Pieces = Mapping[int, Piece] | Sequence[Piece]


class Transaction:
    """The commit ``number`` of the dataset at ``path``: its placements, its units, and :meth:`commit`.

    Build one with :meth:`Dataset.begin_append`, :meth:`Dataset.begin_region`, or, in another
    process, :meth:`Dataset.transaction`. ``pieces`` (in the placements' order) are what
    :meth:`write` reads from unless it is given others."""

    def __init__(
        self,
        store: Store,
        path: str,
        layout: Layout,
        record: CommitRecord,
        pieces: Sequence[Piece] | None,
        reopen: Callable[[], Any],
    ) -> None:
        self.store = store
        self.path = path
        self.layout = layout
        self.record = record
        self.pieces = list(pieces) if pieces is not None else None
        self._reopen = reopen
        #: Where merged and copied values are read: the published arrays (a rewrite writes the same
        #: arrays at their other chunk keys, :func:`~zarrcore.datasets.layout.other_keys`).
        self.published = layout
        if record.mode == "rewrite":
            keys = record.keys or {}
            self.published = layout.rekeyed({n: other_keys(layout.arrays[n]) or k for n, k in keys.items()})
            self.units: list[Unit] = cut_rewrite_units(layout, record.placements, sorted(keys))
        else:
            self.units = cut_units(layout, record.placements, base=self.base)

    @property
    def number(self) -> int:
        return self.record.number

    @property
    def id(self) -> str:
        """The transaction id (the commit number as text), what :meth:`Dataset.transaction` takes."""
        return self.record.id

    @property
    def mode(self) -> str:
        return self.record.mode

    @property
    def base(self) -> int | None:
        """The published extent the commit grows from (append mode), else ``None``."""
        return self.record.base if self.record.mode == "append" else None

    @property
    def placements(self) -> tuple[Placement, ...]:
        return self.record.placements

    def __repr__(self) -> str:
        return (f"<Transaction {self.number} ({self.mode}) of {self.store.url}/{self.path}: "
                f"{len(self.placements)} sources, {len(self.units)} units>")  # fmt: skip

    # -- units -----------------------------------------------------------------------------------
    def write(self, unit: Unit, pieces: Pieces | None = None) -> bool:
        """Write one unit; ``pieces`` maps the unit's placement indices to their pieces (by default
        the transaction's own). Returns whether an object was stored (not deleted as all fill)."""
        arr = self.layout.array(self.store, self.path, unit.array)
        published = self.published.array(self.store, self.path, unit.array)
        if unit.copy:  # a rewrite's object outside the new values: the same bytes at the new key
            data = published.read_chunk_bytes(unit.index)
            arr.write_chunk_bytes(unit.index, data)
            return data is not None
        source = pieces if pieces is not None else self.pieces
        if source is None:
            raise DatasetError(f"transaction {self.number}: no pieces to write unit {unit.array}{unit.index} from")
        axis = self.layout.axis_of(unit.array)
        assert axis is not None
        region = arr.chunk_region(unit.index)
        block = published.read_chunk(unit.index) if unit.merge else np.full(
            tuple(s.stop - s.start for s in region), arr.metadata.fill, dtype=arr.dtype)  # fmt: skip
        lo, hi = region[axis].start, region[axis].stop
        for i in unit.placements:
            p = self.placements[i]
            start, stop = max(lo, p.start), min(hi, p.stop)
            if start >= stop:
                continue
            var = source[i].variables[unit.array]
            sel = list(region)
            sel[axis] = slice(start - p.start, stop - p.start)
            out = [slice(None)] * len(region)
            out[axis] = slice(start - lo, stop - lo)
            block[tuple(out)] = var.read(tuple(sel))
        return arr.write_chunk(unit.index, block)

    def write_all(self, units: Sequence[Unit] | None = None, pieces: Pieces | None = None, *,
                  concurrency: int = 8) -> int:  # fmt: skip
        """Write ``units`` (by default all of them) from ``pieces`` (see :meth:`write`); returns how many
        objects were stored. Units are written on zarrcore's shared pools, at most ``concurrency`` at
        once per call, and on memory or local disk at most one per core in the whole process (see
        :mod:`zarrcore.pool`): a unit holds a few chunk-sized buffers while it is written, so the
        units in flight set the memory a writer needs."""
        stored: list[bool] = []
        todo = self.units if units is None else units
        run_all(lambda unit: stored.append(self.write(unit, pieces)), todo, self.store, max_workers=concurrency)
        return sum(stored)

    # -- the commit ------------------------------------------------------------------------------
    def _check_ours(self) -> None:
        current = read_record(self.store, self.path, self.number)
        if current.state != "intent":
            raise CommitConflictError(f"{self.store.url}/{self.path}: commit {self.number} is already "
                                      f"{current.state}; another writer took over")  # fmt: skip

    def commit(self) -> Any:
        """Publish the commit (every unit must have been written) and return the dataset as now published.

        Append mode: the grown arrays' metadata, then the consolidated metadata in one PUT (the
        commit point), then the record is marked published. A rewrite the same, with the rewritten
        arrays' metadata moved to their new chunk keys. Region mode: the record is marked."""
        self._check_ours()
        if self.mode in ("append", "rewrite"):
            node = read_node(self.store, self.path)
            assert isinstance(node, GroupMetadata)
            published = read_layout_of(node, self.store, self.path, self.layout.dim)
            moved = {n: published.keys()[n] for n in self.record.keys or {}}
            if self.record.keys and moved == self.record.keys:  # published before a crash: only the mark is missing
                mark(self.store, self.path, self.record, "published")
                return self._reopen()
            if published.extent != self.record.base or moved != {n: self.published.keys()[n] for n in moved}:
                raise CommitConflictError(
                    f"{self.store.url}/{self.path}: the published extent is {published.extent}, commit "
                    f"{self.number} starts from {self.record.base}; another writer published in between"
                )
            for name, meta in sorted(self.layout.arrays.items()):
                if meta != published.arrays[name]:
                    write_node(self.store, join_key(self.path, name), meta)
            write_consolidated(self.store, self.path, consolidated_metadata(node, dict(self.layout.arrays)))
        mark(self.store, self.path, self.record, "published")
        published = self._reopen()
        write_snapshot(self.store, self.path, published.ledger())  # later runs read the records after it
        return published


def read_layout_of(node: GroupMetadata, store: Store, path: str, dim: str) -> Layout:
    """The layout that the group metadata ``node`` (with consolidated entries) publishes."""
    return read_layout(Group(store, path, node, read_only=True), dim)
