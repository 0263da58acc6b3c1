"""What a resize does to the stored chunks (``Array.resize``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zarrcore.grid import ChunkGrid

if TYPE_CHECKING:
    from zarrcore.array import Array

__all__ = ["trim_chunks"]


def trim_chunks(array: Array, new_shape: tuple[int, ...]) -> None:
    """Prepare ``array``'s stored objects for ``new_shape``: objects wholly outside it are deleted; in
    objects cut by the new bounds the cut-off part is reset to the fill value, so growing again never
    resurrects old data. Uses only the array's public chunk I/O."""
    meta = array.metadata
    old_grid, new_grid = ChunkGrid(meta.shape, meta.chunks), ChunkGrid(new_shape, meta.chunks)
    new_counts = new_grid.grid_shape
    for idx in old_grid.indices():
        if any(i >= n for i, n in zip(idx, new_counts, strict=True)):
            array.delete_chunk(idx)
            continue
        keep, had = new_grid.region_shape(idx), old_grid.region_shape(idx)
        if not any(new < old for new, old in zip(keep, had, strict=True)):
            continue
        chunk = array.load_chunk(idx)
        if chunk is None:
            continue
        chunk = np.array(chunk)
        mask = np.ones(meta.chunks, dtype=bool)
        mask[tuple(slice(0, n) for n in keep)] = False
        chunk[mask] = meta.fill
        array.write_chunk_bytes(idx, array.encode_chunk(idx, chunk))
