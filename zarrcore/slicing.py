"""Numpy-style slicing of an Array (``Array.__getitem__`` / ``__setitem__``), kept apart from the
Array's chunk I/O, which it drives: each selection is projected on the chunk grid and the touched
chunks are read or written over the shared pool, a shard's inner chunks read or written in part."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from zarrcore.grid import Projection, assigned_value, normalize_selection, selection_shape
from zarrcore.pool import run_all

if TYPE_CHECKING:
    from zarrcore.array import Array

__all__ = ["read_selection", "write_selection"]

ChunkIndex = tuple[int, ...]


def _row(p: Projection) -> ChunkIndex:
    """A chunk's row: its index without the last dimension (its folder, with the '/' key separator)."""
    return p.index[:-1]


def read_selection(array: Array, selection: Any) -> Any:
    """``array[selection]``: a new numpy array (a scalar for a 0-d result)."""
    sel = normalize_selection(selection, array.shape)
    out = np.empty(selection_shape(sel), dtype=array.dtype)
    pipeline, fill, parts = array._pipeline, array._meta.fill, array._parts
    into, takes = pipeline.decodes_into, pipeline.takes

    whole: set[ChunkIndex] = set()  # shards a partial read found changed or damaged: read them whole

    def read(p: Projection) -> None:
        if parts is not None and not p.complete and p.index not in whole:
            part = parts.read(p, out[p.out_selection])
            if part.outcome == "placed":
                return
            if part.outcome != "whole":
                out[p.out_selection] = fill if part.values is None else part.values
                return
        target = out[(*p.out_selection, ...)] if into and p.complete else None  # a whole chunk's place
        if target is not None and not takes(target):
            target = None
        chunk = array._load(p.index, target)
        if chunk is None:
            out[p.out_selection] = fill
        elif chunk is not target:
            out[p.out_selection] = chunk[p.chunk_selection]

    projections = list(array._grid.project(sel))
    if parts is not None and array.store.io_kind == "cpu":
        # memory and local disk: the shards' parts fetched in turn, their inner chunks decoded in one pool round
        rest, changed = parts.read_all([(p, out[p.out_selection]) for p in projections if not p.complete])
        whole.update(p.index for p in changed)
        projections = [p for p in projections if p.complete] + rest + changed
    light = pipeline.light  # quick to decode: one thread is fastest on memory and local disk
    run_all(read, projections, array.store, row=_row, cpu_workers=1 if light else None)
    return out[()] if out.ndim == 0 else out


def write_selection(array: Array, selection: Any, value: Any) -> None:
    """``array[selection] = value``: chunks wholly covered are encoded from ``value``; the others are
    read, updated and written back (a shard's touched inner chunks only)."""
    array.check_writable()
    sel = normalize_selection(selection, array.shape)
    value = assigned_value(value, selection_shape(sel), array.dtype)
    meta, parts, grid = array._meta, array._parts, array._grid
    order = "K" if array._pipeline.sharding is not None else "C"

    def write(p: Projection) -> None:
        region = grid.region_shape(p.index)
        if parts is not None and not p.complete:
            array._put(p.index, parts.write(p, value[p.out_selection], keep_empty=array.write_empty_chunks))
            return
        if p.complete and region == meta.chunks:
            # integer indices drop dimensions: restore them (and keep 0-d chunks 0-d); a shard stays
            # a view of ``value``: the sharding codec copies it out once, in inner-chunk order
            chunk = np.asarray(value[p.out_selection], order=order).reshape(meta.chunks)
        else:
            old = None if p.complete else array._load(p.index)
            chunk = np.array(array._full_fill() if old is None else old)
            chunk[p.chunk_selection] = value[p.out_selection]
        array._put(p.index, array._encode(p.index, chunk, joined=False))

    run_all(write, grid.project(sel), array.store, row=_row)
