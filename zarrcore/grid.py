"""The regular chunk grid: chunk counts, chunk regions, and selections projected onto chunks."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from zarrcore.errors import SelectionError

__all__ = [
    "ChunkGrid", "Projection", "assigned_value", "grown_shape", "normalize_selection", "padded_chunk",
    "selection_shape",
]  # fmt: skip

Selection = tuple[int | slice, ...]


def normalize_selection(selection: Any, shape: tuple[int, ...]) -> Selection:
    """Expand ``...`` and missing dimensions; resolve negative ints and slices against ``shape``.

    Ints become in-range ints; slices become ``slice(start, stop, step)`` with ``0 <= start <= stop``
    and ``step >= 1``. Negative steps, arrays and ``None`` are refused with :class:`SelectionError`.
    """
    if not isinstance(selection, tuple):
        selection = (selection,)
    n_ellipsis = sum(1 for s in selection if s is Ellipsis)
    if n_ellipsis > 1:
        raise SelectionError("an index can only have a single ellipsis ('...')")
    if n_ellipsis:
        i = next(i for i, s in enumerate(selection) if s is Ellipsis)
        fill = len(shape) - (len(selection) - 1)
        selection = selection[:i] + (slice(None),) * fill + selection[i + 1 :]
    if len(selection) > len(shape):
        raise SelectionError(f"too many indices: {len(selection)} for an array of rank {len(shape)}")
    selection = selection + (slice(None),) * (len(shape) - len(selection))
    out: list[int | slice] = []
    for dim, (sel, size) in enumerate(zip(selection, shape, strict=True)):
        if isinstance(sel, slice):
            start, stop, step = sel.indices(size)
            if step < 1:
                raise SelectionError(f"dimension {dim}: only positive slice steps are supported, got {sel.step}")
            out.append(slice(start, max(start, stop), step))
        elif hasattr(sel, "__index__") and not isinstance(sel, bool):
            i = int(sel.__index__())
            if not -size <= i < size:
                raise SelectionError(f"dimension {dim}: index {i} is out of bounds for size {size}")
            out.append(i + size if i < 0 else i)
        else:
            raise SelectionError(
                f"dimension {dim}: unsupported index {sel!r}; use integers, slices and '...'"
            )
    return tuple(out)


def selection_shape(selection: Selection) -> tuple[int, ...]:
    """The shape of the result of a normalized selection (integer dimensions dropped)."""
    return tuple(len(range(s.start, s.stop, s.step)) for s in selection if isinstance(s, slice))


def assigned_value(value: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """``value`` as an array of ``shape`` and ``dtype`` to assign to a selection (broadcast if it can be)."""
    value = np.asarray(value)
    if value.shape != shape:
        try:
            value = np.broadcast_to(value, shape)
        except ValueError:
            raise SelectionError(f"cannot assign data of shape {value.shape} to a selection of shape {shape}") from None
    return value if value.dtype == dtype else value.astype(dtype)


def grown_shape(shape: tuple[int, ...], data_shape: tuple[int, ...], axis: int) -> tuple[tuple[int, ...], int]:
    """The shape after appending data of ``data_shape`` to an array of ``shape`` along ``axis``, and
    that axis made non-negative."""
    ndim = len(shape)
    if len(data_shape) != ndim:
        raise SelectionError(f"append: data has rank {len(data_shape)}, array has rank {ndim}")
    axis = axis + ndim if axis < 0 else axis
    if not 0 <= axis < ndim:
        raise SelectionError(f"append: axis {axis} is out of range for rank {ndim}")
    if any(data_shape[d] != shape[d] for d in range(ndim) if d != axis):
        raise SelectionError(
            f"append: data shape {data_shape} must match the array shape {shape} except on axis {axis}"
        )
    return tuple(s + data_shape[axis] if d == axis else s for d, s in enumerate(shape)), axis


def padded_chunk(idx: tuple[int, ...], data: Any, chunk_shape: tuple[int, ...], region_shape: tuple[int, ...],
                 fill: Callable[[], np.ndarray]) -> np.ndarray:  # fmt: skip
    """Chunk ``idx``'s data, of its region's shape or the whole chunk shape, as a whole chunk: a
    region is padded with ``fill()``'s values (a read-only chunk of the fill value)."""
    arr = np.asarray(data)
    if arr.shape == chunk_shape:
        return arr
    if arr.shape != region_shape:
        raise SelectionError(
            f"chunk {idx}: data of shape {arr.shape} fits neither the stored shape {chunk_shape} "
            f"nor its region {region_shape}"
        )
    full = np.array(fill())
    full[tuple(slice(0, n) for n in region_shape)] = arr
    return full


class Projection(NamedTuple):
    """One chunk's part of a selection: where it sits in the chunk and in the output.

    A named tuple: slicing makes one per chunk, and a tuple is the cheapest object to build."""

    index: tuple[int, ...]
    chunk_selection: tuple[int | slice, ...]
    out_selection: tuple[slice, ...]
    #: Whether the selection covers the chunk's whole in-bounds region (no read needed to write).
    complete: bool


@dataclass(frozen=True)
class ChunkGrid:
    """A regular grid of ``chunks``-shaped chunks over ``shape``."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Chunks per dimension."""
        return tuple(math.ceil(s / c) for s, c in zip(self.shape, self.chunks, strict=True))

    @property
    def nchunks(self) -> int:
        return math.prod(self.grid_shape)

    def indices(self) -> Iterator[tuple[int, ...]]:
        """Every chunk index, in C order."""
        return itertools.product(*(range(n) for n in self.grid_shape))

    def check_index(self, index: Any) -> tuple[int, ...]:
        """Validate a chunk index; returns it as a tuple of ints."""
        try:
            idx = tuple(int(i) for i in index)
        except TypeError:
            raise SelectionError(f"chunk index {index!r} is not a sequence of integers") from None
        grid = self.grid_shape
        if len(idx) != len(grid) or any(not 0 <= i < n for i, n in zip(idx, grid, strict=True)):
            raise SelectionError(f"chunk index {idx} is out of bounds for a chunk grid of shape {grid}")
        return idx

    def region(self, index: tuple[int, ...]) -> tuple[slice, ...]:
        """The array region a chunk covers, clipped to the array bounds."""
        return tuple(
            slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, self.chunks, self.shape, strict=True)
        )

    def region_shape(self, index: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(min(c, s - i * c) for i, c, s in zip(index, self.chunks, self.shape, strict=True))

    def project(self, selection: Selection) -> Iterator[Projection]:
        """Split a normalized selection into per-chunk projections."""
        per_dim: list[list[tuple[int, int | slice, slice | None, bool]]] = []
        for dim, sel in enumerate(selection):
            c, size = self.chunks[dim], self.shape[dim]
            entries: list[tuple[int, int | slice, slice | None, bool]] = []
            if isinstance(sel, int):
                ci = sel // c
                entries.append((ci, sel - ci * c, None, min(c, size - ci * c) == 1))
            else:
                start, stop, step = sel.start, sel.stop, sel.step
                if start < stop:
                    for ci in range(start // c, (stop - 1) // c + 1):
                        c0, c1 = ci * c, min((ci + 1) * c, size)
                        first = start if start >= c0 else start + -(-(c0 - start) // step) * step
                        if first >= min(stop, c1):
                            continue
                        last = min(stop, c1)
                        n = len(range(first, last, step))
                        o0 = (first - start) // step
                        complete = step == 1 and first == c0 and last == c1
                        entries.append((ci, slice(first - c0, last - c0, step), slice(o0, o0 + n), complete))
            per_dim.append(entries)
        if not per_dim:  # a 0-d array: one chunk
            yield Projection((), (), (), True)
            return
        dropped = any(isinstance(sel, int) for sel in selection)
        for combo in itertools.product(*per_dim):
            # one zip per chunk rather than a generator per field: this runs for every chunk of a slice
            index, chunk_sel, out_sel, complete = zip(*combo, strict=True)
            if dropped:
                out_sel = tuple(o for o in out_sel if o is not None)
            yield Projection(index, chunk_sel, out_sel, False not in complete)
