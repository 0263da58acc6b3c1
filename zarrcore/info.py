"""The human-readable summary of an array (``Array.info``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zarrcore.array import Array
    from zarrcore.metadata import ArrayMetadata

__all__ = ["array_info", "codecs_of"]


def codecs_of(metadata: ArrayMetadata) -> Any:
    """The codecs as the metadata states them: the v3 codec list, or v2's filters and compressor."""
    if metadata.zarr_format == 3:
        return metadata.codecs
    return {"filters": metadata.filters, "compressor": metadata.compressor}


def array_info(array: Array) -> str:
    """Rows of ``name : value`` describing ``array``: format, URL, shape, chunks, codecs, counts."""
    m = array.metadata
    rows = [
        ("Type", "Array"),
        ("Zarr format", m.zarr_format),
        ("URL", array.url),
        ("Shape", m.shape),
        ("Chunk shape", array.chunks),
        ("Data type", m.dtype),
        ("Fill value", m.fill_value),
        ("Order", m.order),
        ("Codecs", codecs_of(m)),
        ("Chunks", array.nchunks),
        ("Stored objects", array.nshards),
        ("Bytes (uncompressed)", array.nbytes),
        ("Read-only", array.read_only),
    ]
    if array.shards is not None:
        rows.insert(5, ("Shard shape", array.shards))
    if m.dimension_names:
        rows.insert(5, ("Dimension names", m.dimension_names))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)
