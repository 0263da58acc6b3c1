"""Checking a dataset as it is published: its metadata, its ledger, every chunk, and (given the files)
each landed file's values.

Each check returns :class:`Finding` s rather than raising, so one run reports everything wrong at
once. Nothing here writes. An unfinished commit (a crash between writing and publishing) is not a
problem: its arrays may be ahead of the published extent, and the next append completes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zarrcore.datasets.dataset import Dataset
from zarrcore.datasets.layout import dims_of
from zarrcore.datasets.ledger import Landed, Ledger, gaps
from zarrcore.datasets.model import Piece
from zarrcore.datasets.plan import same_values
from zarrcore.errors import ZarrcoreError
from zarrcore.metadata import ArrayMetadata
from zarrcore.nodes import read_node
from zarrcore.storage.base import join_key
from zarrcore.streams.reads import stream_chunks

__all__ = ["ChunksRead", "Finding", "check_chunks", "check_dataset", "check_file", "check_structure"]


@dataclass(frozen=True)
class Finding:
    """Something wrong: where (a variable, a file, ``(ledger)``) and what."""

    where: str
    problem: str


@dataclass
class ChunksRead:
    """What reading one variable's stored chunks found."""

    variable: str
    chunks: int = 0
    bytes: int = 0
    problems: list[Finding] = field(default_factory=list)


def _same_fill(a: Any, b: Any) -> bool:
    try:
        return same_values(np.asarray(a), np.asarray(b))
    except TypeError:  # values numpy cannot compare (strings against numbers)
        return False


def _compare(own: ArrayMetadata, published: ArrayMetadata, axis: int | None, pending: bool) -> list[str]:
    """How a variable's own metadata differs from its consolidated entry."""
    out = []
    for what, a, b in (("dtype", own.dtype, published.dtype), ("chunks", own.chunks, published.chunks),
                       ("dimensions", dims_of(own), dims_of(published)),
                       ("attributes", own.attributes, published.attributes)):  # fmt: skip
        if a != b:
            out.append(f"its {what} {a!r} differ from the consolidated metadata's {b!r}")
    if not _same_fill(own.fill_value, published.fill_value):
        out.append(f"its fill value {own.fill_value!r} differs from the consolidated {published.fill_value!r}")
    for n, (a, b) in enumerate(zip(own.shape, published.shape, strict=False)):
        if a == b or (n == axis and a > b and pending):  # ahead of the extent: an unfinished commit
            continue
        out.append(f"its shape {list(own.shape)} differs from the consolidated {list(published.shape)}")
        break
    if len(own.shape) != len(published.shape):
        out.append(f"it has {len(own.shape)} dimensions, the consolidated metadata {len(published.shape)}")
    return out


def _coverage(ds: Dataset, landed: Iterable[Landed]) -> list[Finding]:
    """Landed files inside the extent, none overlapping another; in append mode they cover it all."""
    out: list[Finding] = []
    spans = sorted(landed, key=lambda x: (x.start, x.stop))
    for previous, x in zip([None, *spans], spans, strict=False):
        if x.stop > ds.extent or x.start < 0 or x.stop <= x.start:
            out.append(Finding(x.source.key, f"landed at [{x.start}, {x.stop}), outside the extent {ds.extent}"))
        if previous is not None and x.start < previous.stop:
            other = f"{previous.source.key} at [{previous.start}, {previous.stop})"
            out.append(Finding(x.source.key, f"landed at [{x.start}, {x.stop}), overlapping {other}"))
    if ds.mode == "append":
        out.extend(Finding("(ledger)", f"[{start}, {stop}) along {ds.dim!r} comes from no landed file")
                   for start, stop in gaps(spans, ds.extent))  # fmt: skip
    return out


def check_structure(ds: Dataset) -> tuple[list[Finding], Ledger | None]:
    """The variables' own metadata against the consolidated metadata, the coordinate's order (append
    mode) and the ledger's coverage of the extent; also the ledger, if it could be read."""
    out: list[Finding] = []
    try:
        ledger: Ledger | None = ds.ledger(snapshot=False)  # every record: a snapshot could hide one
    except ZarrcoreError as exc:
        return [Finding("(ledger)", str(exc))], None
    pending = ledger is not None and ledger.pending is not None
    for name, published in sorted(ds.layout.arrays.items()):
        try:
            own = read_node(ds.store, join_key(ds.path, name))
        except ZarrcoreError as exc:
            out.append(Finding(name, f"its metadata cannot be read: {exc}"))
            continue
        if not isinstance(own, ArrayMetadata):
            out.append(Finding(name, "the consolidated metadata lists an array, the store holds a group"))
            continue
        out.extend(Finding(name, p) for p in _compare(own, published, ds.layout.axis_of(name), pending))
    if ds.mode == "append" and ds.extent > 1:
        steps = np.diff(ds.coordinate())
        if not (steps > np.zeros((), dtype=steps.dtype)).all():
            at = int(np.argmin(steps > np.zeros((), dtype=steps.dtype)))
            out.append(Finding(ds.dim, f"the coordinate does not increase at index {at + 1}"))
    assert ledger is not None
    out.extend(_coverage(ds, ledger.landed.values()))
    quick = ds.ledger()  # what runs read: the snapshot and the records after it
    if quick.landed != ledger.landed:
        differ = sorted(set(quick.landed.items()) ^ set(ledger.landed.items()))
        out.append(Finding("(ledger)", f"the ledger's snapshot disagrees with the commit records on "
                                       f"{', '.join(sorted({k for k, _ in differ})[:5])}"))  # fmt: skip
    return out, ledger


def check_chunks(ds: Dataset, name: str, *, concurrency: int = 16) -> ChunksRead:
    """Read and decode every stored chunk of ``name`` inside the published extent."""
    found = ChunksRead(name)
    array = ds.layout.array(ds.store, ds.path, name)

    def failed(index: Any, error: BaseException) -> None:
        found.problems.append(Finding(name, str(error)))  # a ChunkError names the chunk and its key

    for _, data in stream_chunks(array, concurrency=concurrency, on_error=failed):
        found.chunks += 1
        found.bytes += data.nbytes
    return found


def check_file(ds: Dataset, landed: Landed, piece: Piece) -> list[Finding]:
    """A landed file's values, variable by variable, against its region of the dataset; and its identity."""
    key = landed.source.key
    out = []
    if piece.source is not None:
        changed = piece.source.differs_from(landed.source)
        if changed:
            out.append(Finding(key, f"the file changed since it landed ({', '.join(changed)})"))
    for name, var in sorted(piece.variables.items()):
        if name not in ds.layout.arrays:
            continue
        axis = ds.layout.axis_of(name)
        array = ds.layout.array(ds.store, ds.path, name)
        region = tuple(slice(landed.start, landed.stop) if n == axis else slice(None) for n in range(array.ndim))
        try:
            stored, values = np.asarray(array[region]), np.asarray(var.read())
        except ZarrcoreError as exc:
            out.append(Finding(key, f"{name}: cannot be compared: {exc}"))
            continue
        if stored.shape != values.shape or not same_values(stored, values):
            out.append(Finding(key, f"{name}: the dataset's values at [{landed.start}, {landed.stop}) along "
                                    f"{ds.dim!r} differ from the file's"))  # fmt: skip
    return out


def check_dataset(ds: Dataset, *, pieces: Sequence[Piece] = (), concurrency: int = 16) -> list[Finding]:
    """Every check above: structure and ledger, every chunk, and each of ``pieces`` that has landed
    (a piece given but not landed is a finding)."""
    out, ledger = check_structure(ds)
    for name in sorted(ds.layout.arrays):
        out.extend(check_chunks(ds, name, concurrency=concurrency).problems)
    landed = ledger.landed if ledger is not None else {}
    for piece in pieces:
        key = piece.source.key if piece.source is not None else piece.name
        if key not in landed:
            out.append(Finding(key, "not landed"))
        else:
            out.extend(check_file(ds, landed[key], piece))
    return out
