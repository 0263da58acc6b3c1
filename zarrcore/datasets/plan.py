"""Planning a dataset write: check pieces against the layout, order and place them, cut the units.

Nothing here writes. Every refusal happens before a transaction records its intent, so a refused
append leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from zarrcore.datasets.layout import ENCODING_ATTRS, Layout, dims_of, fill_and_attrs
from zarrcore.datasets.ledger import Landed, Placement
from zarrcore.datasets.model import Piece
from zarrcore.errors import ChangedSourceError, LayoutMismatchError, OrderError, StaticMismatchError
from zarrcore.grid import ChunkGrid

__all__ = ["Unit", "check_piece", "coordinate", "cut_rewrite_units", "cut_units", "new_pieces", "same_values"]


@dataclass(frozen=True)
class Unit:
    """One stored object to write (a chunk, or a shard when sharded).

    ``placements`` are the indices of the transaction's placements whose values it holds; ``merge``
    says whether values already stored in it are kept (read and merged); ``token`` identifies what
    it writes independently of the run (the sources' identities and positions), for caching.
    ``copy`` (rewrites) says that it copies the published object's bytes to its new key unchanged."""

    array: str
    index: tuple[int, ...]
    placements: tuple[int, ...]
    merge: bool
    token: str
    copy: bool = False


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes and values, NaN equal to NaN for floats."""
    if a.shape != b.shape:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc"))


def coordinate(piece: Piece, dim: str) -> np.ndarray:
    """The piece's values of the coordinate ``dim``, checked to increase strictly."""
    var = piece.variables.get(dim)
    if var is None or var.dims != (dim,):
        raise LayoutMismatchError(f"{piece.name}: the coordinate variable {dim!r} ({dim},) is missing",
                                  variable=dim, source=piece.name)  # fmt: skip
    values = var.read()
    if values.size == 0:
        raise LayoutMismatchError(f"{piece.name}: {dim!r} is empty", variable=dim, source=piece.name)
    if values.size > 1 and not bool(np.all(np.diff(values) > 0)):
        raise OrderError(f"{piece.name}: the values of {dim!r} do not increase strictly", variable=dim,
                         source=piece.name)  # fmt: skip
    return values


def _encoding(attrs: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in attrs.items() if k in ENCODING_ATTRS}


def check_piece(layout: Layout, piece: Piece, statics: Mapping[str, np.ndarray]) -> None:
    """Refuse ``piece`` unless it has the dataset's variables with the same dims, dtypes, sizes
    off the dimension and encoding, and static variables equal to ``statics`` (the stored values)."""
    names, wanted = set(piece.variables), set(layout.arrays)
    for name, what in [(n, "of the dataset is missing") for n in sorted(wanted - names)] + [
        (n, "is not in the dataset") for n in sorted(names - wanted)
    ]:
        raise LayoutMismatchError(f"{piece.name}: variable {name!r} {what}", variable=name, source=piece.name)
    for name in sorted(wanted):
        var, meta = piece.variables[name], layout.arrays[name]
        dims = dims_of(meta)

        def refuse(what: str, name: str = name) -> LayoutMismatchError:
            return LayoutMismatchError(f"{piece.name}: variable {name!r} {what}", variable=name, source=piece.name)

        if var.dims != dims:
            raise refuse(f"has dims {var.dims}, the dataset has {dims}")
        if var.dtype != meta.dtype:
            raise refuse(f"has dtype {var.dtype}, the dataset has {meta.dtype}")
        for d, n, m in zip(dims, var.shape, meta.shape, strict=True):
            if d != layout.dim and n != m:
                raise refuse(f"has {d}={n}, the dataset has {d}={m}")
        fill, attrs = fill_and_attrs(name, var, layout.zarr_format)
        if _encoding(attrs) != _encoding(meta.attributes) or not same_values(
            np.asarray(fill if fill is not None else meta.fill, meta.dtype), np.asarray(meta.fill, meta.dtype)
        ):
            raise refuse(f"is encoded with {_encoding(var.attrs)}, the dataset with {layout.fill_attrs(name)}")
        if name in statics and not same_values(var.read(), statics[name]):
            raise StaticMismatchError(
                f"{piece.name}: static variable {name!r} (without {layout.dim!r}) differs from the one in the dataset",
                variable=name, source=piece.name,
            )  # fmt: skip


def new_pieces(pieces: Sequence[Piece], landed: Mapping[str, Landed]) -> list[Piece]:
    """The pieces whose sources have not landed; a landed source that changed is refused."""
    seen: set[str] = set()
    out = []
    for piece in pieces:
        src = piece.source
        if src is None:
            out.append(piece)
            continue
        if src.key in seen:
            raise OrderError(f"{src.key} is given twice", source=src.key)
        seen.add(src.key)
        done = landed.get(src.key)
        if done is None:
            out.append(piece)
            continue
        changed = src.differs_from(done.source)
        if changed:
            raise ChangedSourceError(
                f"{src.key} landed in commit {done.commit} and has changed since ({', '.join(changed)} differ)",
                source=src.key,
            )
    return out


def _token(name: str, index: tuple[int, ...], placements: Sequence[Placement], keep: int) -> str:
    doc = [name, list(index), keep, [p.same_as() for p in placements]]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def cut_units(layout: Layout, placements: Sequence[Placement], *, base: int | None) -> list[Unit]:
    """The stored objects the placements touch, each once, for every variable along the dimension,
    in order along the dimension.

    ``layout`` is the layout after the write. In append mode (``base`` given) an object that starts
    before ``base`` keeps its first values; in region mode (``base=None``) an object keeps what the
    placements do not cover."""
    spans = sorted((p.start, p.stop, i) for i, p in enumerate(placements))
    if not spans:
        return []
    units: list[tuple[int, str, Unit]] = []
    for name, meta in sorted(layout.arrays.items()):
        axis = layout.axis_of(name)
        if axis is None:
            continue
        grid = ChunkGrid(meta.shape, meta.chunks)
        step = meta.chunks[axis]
        along: dict[int, list[int]] = {}
        for start, stop, i in spans:
            for c in range(start // step, (stop - 1) // step + 1):
                along.setdefault(c, []).append(i)
        others = [range(n) for k, n in enumerate(grid.grid_shape) if k != axis]
        for c, members in sorted(along.items()):
            lo, hi = c * step, min((c + 1) * step, meta.shape[axis])
            covered = sum(min(hi, placements[i].stop) - max(lo, placements[i].start) for i in members)
            keep = (base - lo if base is not None and lo < base else 0) if base is not None else hi - lo - covered
            for rest in np.ndindex(*(len(r) for r in others)) if others else [()]:
                index = (*rest[:axis], c, *rest[axis:])
                token = _token(name, index, [placements[i] for i in members], keep)
                units.append((c, name, Unit(name, index, tuple(members), keep > 0, token)))
    # By position along the dimension first: consecutive units read the same few sources.
    return [u for _, _, u in sorted(units, key=lambda cu: (cu[0], cu[1], cu[2].index))]


def cut_rewrite_units(layout: Layout, placements: Sequence[Placement], arrays: Sequence[str]) -> list[Unit]:
    """The units of a rewrite of ``arrays``: every stored object of each is written at its new key,
    those the placements touch with their new values (merged with the published ones they do not
    cover), the others copied as they are."""
    rewritten = {(u.array, u.index): u for u in cut_units(layout, placements, base=None) if u.array in arrays}
    units = []
    for name in sorted(arrays):
        meta = layout.arrays[name]
        for index in np.ndindex(*ChunkGrid(meta.shape, meta.chunks).grid_shape):
            unit = rewritten.get((name, index))
            if unit is None:
                unit = Unit(name, index, (), False, _token(name, index, [], -1), copy=True)
            units.append(unit)
    return units
