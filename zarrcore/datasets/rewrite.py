"""Planning a rewrite: the regions of landed sources whose content changed, written with their new values.

A rewrite cannot write where readers look (the region is published), so each array along the
dimension is written whole at its other chunk keys (:func:`~zarrcore.datasets.layout.other_keys`: the
other separator, ``t2m/c.0.1.0`` instead of ``t2m/c/0/1/0``): the changed regions with their new values
merged into the published chunks they share with neighbours, every other object copied as stored.
The commit moves the arrays' metadata to those keys in the one consolidated PUT, so a reader sees
every variable's old values or every variable's new ones. The keys left behind keep the old values
for readers that opened the dataset before the commit; the next rewrite writes over them.

Nothing here writes: every refusal happens before the transaction records its intent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from zarrcore.datasets.layout import Layout, other_keys
from zarrcore.datasets.ledger import CommitRecord, KeySpace, Landed, Ledger, Placement
from zarrcore.datasets.model import Piece
from zarrcore.datasets.plan import check_piece, coordinate, same_values
from zarrcore.errors import ChangedSourceError, DatasetError, OrderError

__all__ = ["changed_pieces", "plan_rewrite", "rewrite_keys"]


def changed_pieces(pieces: Sequence[Piece], landed: Mapping[str, Landed]) -> list[tuple[Piece, Landed]]:
    """The pieces whose sources landed and changed since, with what landed; others are left out."""
    out, seen = [], set()
    for piece in pieces:
        src = piece.source
        if src is None:
            continue
        if src.key in seen:
            raise OrderError(f"{src.key} is given twice", source=src.key)
        seen.add(src.key)
        done = landed.get(src.key)
        if done is not None and src.differs_from(done.source):
            out.append((piece, done))
    return out


def rewrite_keys(layout: Layout, where: str) -> dict[str, KeySpace]:
    """The chunk keys each array along the dimension moves to (the coordinate ``dim`` stays: a
    rewrite never changes it)."""
    out = {}
    for name, meta in sorted(layout.arrays.items()):
        if layout.axis_of(name) is None or name == layout.dim:
            continue
        keys = other_keys(meta)
        if keys is None:
            raise DatasetError(f"{where}: {name!r} is a 1-D Zarr v2 array, whose chunk keys are the same with "
                               "either separator, so its region cannot be rewritten atomically")  # fmt: skip
        out[name] = keys
    return out


def plan_rewrite(
    layout: Layout,
    ledger: Ledger,
    pieces: Sequence[Piece],
    published_coordinate: np.ndarray,
    statics: Mapping[str, np.ndarray],
    where: str,
) -> tuple[CommitRecord, list[Piece]] | None:
    """The commit that rewrites the regions of the changed landed sources among ``pieces``, with the
    pieces in placement order; ``None`` when none changed. Refuses (before any write) a piece that
    does not fit the layout, whose static variables differ, or whose coordinate values differ from
    those it landed with (its region would move)."""
    changed = changed_pieces(pieces, ledger.landed)
    if not changed:
        return None
    for piece, done in changed:
        check_piece(layout, piece, statics)
        values, stored = coordinate(piece, layout.dim), published_coordinate[done.start : done.stop]
        if not same_values(values, stored):
            raise ChangedSourceError(
                f"{piece.name}: its {layout.dim!r} values ({len(values)} from {values[0]}) differ from those it "
                f"landed with ({len(stored)} from {stored[0] if len(stored) else '-'}); its region would move, "
                "so it cannot be rewritten (land it under another name, or rebuild the dataset)",
                source=piece.name, variable=layout.dim,
            )  # fmt: skip
    changed.sort(key=lambda pd: pd[1].start)
    placements = tuple(Placement(p.source, d.start, d.stop) for p, d in changed)
    record = CommitRecord(ledger.last + 1, "rewrite", layout.extent, layout.extent, placements,
                          keys=rewrite_keys(layout, where))  # fmt: skip
    return record, [p for p, _ in changed]
