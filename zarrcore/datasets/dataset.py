"""Datasets: create one, open its published state, append pieces, land pieces into regions.

>>> import numpy as np, zarrcore
>>> from zarrcore.datasets import Piece, Variable, create_dataset
>>> def day(t):
...     return Piece({"time": Variable(("time",), np.array([t]), {"units": "days since 2000-01-01"}),
...                   "x": Variable(("time",), np.array([t * 10.0]))})
>>> store = zarrcore.storage.MemoryStore()
>>> ds = create_dataset(store, "d", template=day(0), dim="time", chunks={"time": 2})
>>> ds = ds.append([day(1), day(0)])
>>> ds.sizes, ds.extent
({'time': 2}, 2)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from zarrcore.datasets.layout import Layout, build_layout
from zarrcore.datasets.ledger import (
    DATASET,
    CommitRecord,
    Landed,
    Ledger,
    Placement,
    dataset_key,
    gaps,
    mark,
    read_ledger,
    read_record,
    write_intent,
)
from zarrcore.datasets.model import Piece
from zarrcore.datasets.plan import check_piece, coordinate, new_pieces
from zarrcore.datasets.rewrite import plan_rewrite
from zarrcore.datasets.transaction import Transaction, read_layout_of
from zarrcore.errors import AlreadyExists, DatasetError, LayoutMismatchError, NotFound, OrderError
from zarrcore.group import consolidated_metadata, write_consolidated
from zarrcore.metadata import GroupMetadata, json_dumps, json_loads
from zarrcore.nodes import try_read_node, write_node
from zarrcore.storage.base import Store, join_key
from zarrcore.storage.registry import open_store

__all__ = ["Dataset", "create_dataset", "open_dataset"]

Mode = Literal["append", "region"]
OnChanged = Literal["error", "rewrite"]


def _store(store: str | Store, options: dict[str, Any] | None) -> Store:
    return open_store(store, **(options or {}))


def _where(store: Store, path: str) -> str:
    return f"{store.url.rstrip('/')}/{path}" if path else store.url


class Dataset:
    """A dataset's published state: its layout (read from consolidated metadata), its dimension and mode.

    Appends and region writes go through a :class:`Transaction`; this object does not change, each
    commit returns a new one."""

    def __init__(self, store: Store, path: str, dim: str, mode: Mode, layout: Layout, uid: str = "") -> None:
        #: Made when the dataset is created: a dataset deleted and created again has another.
        self.uid = uid
        self.store = store
        self.path = path
        self.dim = dim
        self.mode = mode
        self.layout = layout

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}: {v}" for k, v in self.sizes.items())
        return f"<Dataset {_where(self.store, self.path)} ({self.mode} along {self.dim!r}; {sizes})>"

    @property
    def zarr_format(self) -> int:
        return self.layout.zarr_format

    @property
    def sizes(self) -> dict[str, int]:
        """Each published dimension's length."""
        return self.layout.sizes()

    @property
    def extent(self) -> int:
        """The published length along the dimension."""
        return self.layout.extent

    @property
    def variables(self) -> list[str]:
        return sorted(self.layout.arrays)

    def coordinate(self) -> np.ndarray:
        """The published values of the coordinate along the dimension (encoded, as stored)."""
        return np.asarray(self.layout.array(self.store, self.path, self.dim)[...])

    def ledger(self, *, snapshot: bool = True) -> Ledger:
        """The published commits' sources (see :func:`~zarrcore.datasets.read_ledger`)."""
        return read_ledger(self.store, self.path, self.extent, self.layout.keys(), snapshot=snapshot)

    def landed(self) -> dict[str, Landed]:
        """The landed sources by key (URL), with the commit and the range along the dimension of each."""
        return self.ledger().landed

    def missing(self) -> list[tuple[int, int]]:
        """The ``[start, stop)`` ranges along the dimension that no landed source covers."""
        return gaps(self.landed().values(), self.extent)

    def _statics(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(self.layout.array(self.store, self.path, name)[...])
                for name in self.layout.arrays if self.layout.axis_of(name) is None}  # fmt: skip

    def _require(self, mode: Mode) -> None:
        if self.mode != mode:
            other = "begin_region/write_region" if self.mode == "region" else "begin_append/append"
            raise DatasetError(f"{_where(self.store, self.path)} was created in {self.mode} mode; use {other}")

    def _checked(self, pieces: Sequence[Piece]) -> tuple[Ledger, list[tuple[np.ndarray, Piece]]]:
        ledger = self.ledger()
        todo = new_pieces(pieces, ledger.landed)
        statics = self._statics() if todo else {}
        for piece in todo:
            check_piece(self.layout, piece, statics)
        return ledger, sorted(((coordinate(p, self.dim), p) for p in todo), key=lambda cp: cp[0][0].item())

    def _begin(self, ledger: Ledger, record: CommitRecord, pieces: list[Piece], layout: Layout) -> Transaction:
        pending = ledger.pending
        if pending is not None and _plan(pending) == _plan(record):
            # the same plan as an unpublished commit: complete that one (its written units stand)
            return Transaction(self.store, self.path, layout, pending, pieces, self._reopen)
        if pending is not None:  # another plan: the unpublished commit changed nothing a reader sees
            for name in pending.keys or {}:  # a rewrite may have moved an array's own metadata: move it back
                write_node(self.store, join_key(self.path, name), self.layout.arrays[name])
            mark(self.store, self.path, pending, "discarded")
        for done in ledger.unmarked:  # published before a crash: say so while it can still be told
            mark(self.store, self.path, done, "published")
        write_intent(self.store, self.path, record)
        return Transaction(self.store, self.path, layout, record, pieces, self._reopen)

    def _reopen(self) -> Dataset:
        return open_dataset(self.store, self.path)

    # -- append mode -----------------------------------------------------------------------------
    def begin_append(self, pieces: Sequence[Piece]) -> Transaction | None:
        """Check ``pieces``, skip the landed ones, order the rest along the dimension and record the
        intent of one commit after the published end; ``None`` when nothing is new.

        Refuses (before any write) pieces that do not fit the layout, static variables that differ,
        landed sources that changed, and pieces that overlap each other or start at or before the
        published end."""
        self._require("append")
        ledger, ordered = self._checked(pieces)
        if not ordered:
            return None
        last, last_name = None, "the dataset"
        if self.extent:
            last = self.coordinate()[self.extent - 1]
        placements, at = [], self.extent
        for values, piece in ordered:
            if last is not None and values[0] <= last:
                raise OrderError(
                    f"{piece.name}: its first {self.dim!r} value {values[0]} is not after {last}, the last of "
                    f"{last_name}; a source that overlaps or precedes the end is refused (region mode lands "
                    "sources in any order)",
                    source=piece.name, variable=self.dim,
                )  # fmt: skip
            placements.append(Placement(piece.source, at, at + len(values)))
            at, last, last_name = at + len(values), values[-1], piece.name
        record = CommitRecord(ledger.last + 1, "append", self.extent, at, tuple(placements))
        return self._begin(ledger, record, [p for _, p in ordered], self.layout.grown(at))

    def append(self, pieces: Sequence[Piece], *, concurrency: int = 8, on_changed: OnChanged = "error") -> Dataset:
        """Land ``pieces`` after the published end in one commit and return the new published state.

        With ``on_changed="rewrite"``, the regions of landed sources that changed are rewritten first
        (:meth:`rewrite`, its own commit), then the new ones appended."""
        ds = self.rewrite(pieces, concurrency=concurrency) if on_changed == "rewrite" else self
        txn = ds.begin_append(pieces)
        if txn is None:
            return ds
        txn.write_all(concurrency=concurrency)
        return txn.commit()

    # -- rewrites of changed sources -------------------------------------------------------------
    def begin_rewrite(self, pieces: Sequence[Piece]) -> Transaction | None:
        """Plan one commit that rewrites the regions of the landed sources among ``pieces`` whose
        content changed (pieces not landed, or unchanged, are left out); ``None`` when none changed.

        The new values are written at the arrays' other chunk keys and published by the commit's one
        consolidated PUT (see :mod:`zarrcore.datasets.rewrite`); the ledger then holds the sources' new
        identities. Refuses (before any write) a piece whose coordinate values differ from those it
        landed with, whose static variables differ, or that does not fit the layout."""
        ledger = self.ledger()
        where = _where(self.store, self.path)
        planned = plan_rewrite(self.layout, ledger, pieces, self.coordinate(), self._statics(), where)
        if planned is None:
            return None
        record, ordered = planned
        return self._begin(ledger, record, ordered, self.layout.rekeyed(record.keys or {}))

    def rewrite(self, pieces: Sequence[Piece], *, concurrency: int = 8) -> Dataset:
        """Rewrite the regions of the changed landed sources among ``pieces`` in one commit."""
        txn = self.begin_rewrite(pieces)
        if txn is None:
            return self
        txn.write_all(concurrency=concurrency)
        return txn.commit()

    # -- region mode -----------------------------------------------------------------------------
    def begin_region(self, pieces: Sequence[Piece]) -> Transaction | None:
        """Check ``pieces``, skip the landed ones and place each where its coordinate values sit on
        the declared axis; ``None`` when nothing is new. A piece off the axis or overlapping another
        (landed or given) is refused before any write."""
        self._require("region")
        ledger, ordered = self._checked(pieces)
        if not ordered:
            return None
        axis = self.coordinate()
        taken = sorted((x.start, x.stop, key) for key, x in ledger.landed.items())
        placements: list[Placement] = []
        for values, piece in ordered:
            start = int(np.searchsorted(axis, values[0]))
            stop = start + len(values)
            if stop > len(axis) or not np.array_equal(axis[start:stop], values):
                raise OrderError(f"{piece.name}: its {self.dim!r} values are not on the dataset's axis "
                                 f"({axis[0]} .. {axis[-1]}, {len(axis)} steps)", source=piece.name)  # fmt: skip
            for lo, hi, other in [*taken, *((p.start, p.stop, p.source.key if p.source else "another piece")
                                            for p in placements)]:  # fmt: skip
                if start < hi and lo < stop:
                    raise OrderError(f"{piece.name}: its region [{start}, {stop}) overlaps {other} [{lo}, {hi})",
                                     source=piece.name)  # fmt: skip
            placements.append(Placement(piece.source, start, stop))
        record = CommitRecord(ledger.last + 1, "region", 0, len(axis), tuple(placements))
        return self._begin(ledger, record, [p for _, p in ordered], self.layout)

    def write_region(self, pieces: Sequence[Piece], *, concurrency: int = 8) -> Dataset:
        """Land ``pieces`` into their regions of the declared axis in one commit."""
        txn = self.begin_region(pieces)
        if txn is None:
            return self
        txn.write_all(concurrency=concurrency)
        return txn.commit()

    def transaction(self, number: int | str) -> Transaction:
        """The transaction of commit ``number``, rebuilt (e.g. in another process) from its record;
        :meth:`Transaction.write` then needs the pieces."""
        record = read_record(self.store, self.path, int(number))
        layout = self.layout.grown(record.target) if record.mode == "append" else self.layout
        if record.mode == "rewrite":
            layout = layout.rekeyed(record.keys or {})
        return Transaction(self.store, self.path, layout, record, None, self._reopen)


def _plan(record: CommitRecord) -> tuple[Any, ...]:
    return record.mode, record.base, record.target, [p.same_as() for p in record.placements], record.keys


def _read_doc(store: Store, path: str) -> dict[str, Any] | None:
    key = dataset_key(path, DATASET)
    try:
        return json_loads(store.get(key), key)
    except NotFound:
        return None


def open_dataset(store: str | Store, path: str = "", *, storage_options: dict[str, Any] | None = None) -> Dataset:
    """The published state of the dataset at ``path``, read from its consolidated metadata."""
    store = _store(store, storage_options)
    doc = _read_doc(store, path)
    node = try_read_node(store, path) if doc is not None else None
    if doc is None or not isinstance(node, GroupMetadata) or node.consolidated is None:
        raise NotFound(f"no dataset at {_where(store, path)} (create it with create_dataset)", key=path or None,
                       store=store.url)  # fmt: skip
    layout = read_layout_of(node, store, path, doc["dim"])
    return Dataset(store, path, doc["dim"], doc["mode"], layout, str(doc.get("uid", "")))


def create_dataset(
    store: str | Store,
    path: str = "",
    *,
    template: Piece,
    dim: str,
    chunks: dict[str, int] | None = None,
    shards: dict[str, int] | None = None,
    zarr_format: Literal[2, 3] = 3,
    axis: Any = None,
    exist_ok: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Dataset:
    """Create a dataset shaped like ``template`` (a piece: its variables, attributes and encodings).

    Append mode (``axis=None``): empty along ``dim``; static variables (without ``dim``) are written
    now, from the template. Region mode: ``axis`` holds every value of the coordinate ``dim``, encoded
    as in the template (same units); the dataset is created at that length and reads as fill until
    sources land. ``chunks`` gives chunk lengths per dimension (others aim at about 4 MiB per chunk),
    ``shards`` shard lengths (v3). With ``exist_ok`` an existing dataset is opened instead."""
    store = _store(store, storage_options)
    mode: Mode = "append" if axis is None else "region"
    doc = {"dim": dim, "mode": mode, "zarr_format": zarr_format, "uid": uuid.uuid4().hex}
    try:
        store.put(dataset_key(path, DATASET), json_dumps(doc), mode="create")
    except AlreadyExists:
        try:
            existing = open_dataset(store, path)
        except NotFound:  # an earlier create stopped before publishing: start again
            store.put(dataset_key(path, DATASET), json_dumps(doc))
        else:
            if exist_ok:
                return existing
            raise DatasetError(f"a dataset already exists at {_where(store, path)} (open it with open_dataset)")
    values = None
    if axis is not None:
        values = np.asarray(axis, dtype=template.variables[dim].dtype if dim in template.variables else None)
        if values.ndim != 1 or not len(values) or not bool(np.all(np.diff(values) > 0)):
            raise LayoutMismatchError(f"axis must be 1-D, not empty and strictly increasing along {dim!r}")
    layout = build_layout(template, dim=dim, extent=0 if values is None else len(values), chunks=chunks,
                          shards=shards, zarr_format=zarr_format)  # fmt: skip
    for name, meta in sorted(layout.arrays.items()):
        write_node(store, join_key(path, name), meta)
        if layout.axis_of(name) is None:
            layout.array(store, path, name)[...] = template.variables[name].read()
    if values is not None:
        layout.array(store, path, dim)[...] = values
    group = layout.group_metadata()
    if zarr_format == 2:
        write_node(store, path, group)
    write_consolidated(store, path, consolidated_metadata(group, dict(layout.arrays)))
    return open_dataset(store, path)
