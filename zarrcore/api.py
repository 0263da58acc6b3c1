"""The top-level functions: create, open, open_array, open_group, create_group, consolidate_metadata."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from zarrcore.array import Array
from zarrcore.errors import MetadataError
from zarrcore.group import Group, consolidate, open_group_mode, open_node
from zarrcore.metadata import ArrayMetadata, GroupMetadata
from zarrcore.nodes import create_node, create_parents
from zarrcore.spec import resolve_metadata
from zarrcore.storage.base import Store
from zarrcore.storage.registry import open_store

__all__ = ["create", "open", "open_array", "open_group", "create_group", "consolidate_metadata"]

Mode = Literal["r", "r+", "a"]


def _store(url_or_store: str | Store, storage_options: dict[str, Any] | None) -> Store:
    return open_store(url_or_store, **(storage_options or {}))


def create(
    url_or_store: str | Store,
    *,
    shape: Any = None,
    chunks: Any = None,
    dtype: Any = None,
    fill_value: Any = None,
    zarr_format: Literal[2, 3] = 3,
    codecs: Sequence[dict[str, Any]] | None = None,
    compressor: dict[str, Any] | Literal["auto"] | None = "auto",
    filters: Sequence[dict[str, Any]] | None = None,
    order: Literal["C", "F"] = "C",
    dimension_separator: Literal["/", "."] | None = None,
    attributes: dict[str, Any] | None = None,
    dimension_names: Sequence[str | None] | None = None,
    chunk_key_encoding: Literal["default", "v2"] | None = None,
    shards: Any = None,
    metadata: ArrayMetadata | None = None,
    overwrite: bool = False,
    path: str = "",
    write_empty_chunks: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Array:
    """Create an array at a URL (``s3://bucket/x.zarr``, ``/data/x.zarr``, ...) or in a store.

    Metadata is validated first (bad dtype, chunks or codecs raise before anything is written), then
    written once with a create-only put. If an array with identical metadata already exists it is
    opened; if it differs, :class:`~zarrcore.errors.MetadataConflictError` is raised, unless
    ``overwrite=True``, which deletes everything at the location first.

    ``codecs`` is the v3 codec list (default: bytes + zstd level 3; ``order="F"`` adds a transpose).
    ``compressor`` and ``filters`` are v2 numcodecs configs (default compressor: zstd level 3;
    ``None`` stores uncompressed). ``chunk_key_encoding`` (v3) is ``"default"`` (``c/0/1``) or ``"v2"``
    (``0.1``); ``dimension_separator`` sets its separator.

    ``shards`` (v3) stores the array as shards of that shape, each holding ``chunks``-shaped chunks
    and an index (``sharding_indexed``): far fewer objects, while a small read still fetches only
    the chunks it needs. ``Array.chunks`` is then the chunk shape and ``Array.shards`` the shard
    shape, the unit of storage that chunk-level I/O addresses.

    ``metadata`` (from :func:`zarrcore.spec.build_array_metadata`) creates the array it describes,
    instead of the array arguments from ``shape`` to ``shards`` (giving both is an error).
    """
    meta = resolve_metadata(metadata, dict(
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=fill_value,
        zarr_format=zarr_format,
        codecs=codecs,
        compressor=compressor,
        filters=filters,
        order=order,
        dimension_separator=dimension_separator,
        attributes=attributes,
        dimension_names=dimension_names,
        chunk_key_encoding=chunk_key_encoding,
        shards=shards,
    ))  # fmt: skip
    store = _store(url_or_store, storage_options)
    create_parents(store, path, meta.zarr_format)
    written = create_node(store, path, meta, overwrite=overwrite)
    return Array(store, path, written, write_empty_chunks=write_empty_chunks)  # type: ignore[arg-type]


def open(
    url_or_store: str | Store,
    mode: Mode = "r",
    *,
    path: str = "",
    storage_options: dict[str, Any] | None = None,
) -> Array | Group:
    """Open the array or group at a location, detecting the format (v3 ``zarr.json`` first, then v2).

    ``mode="r"`` is read-only; ``"r+"`` (or ``"a"``) allows writes, unless the store itself is read-only.
    A missing node raises ``NotFound``.
    """
    if mode not in ("r", "r+", "a"):
        raise ValueError(f"mode must be 'r', 'r+' or 'a', got {mode!r}")
    store = _store(url_or_store, storage_options)
    return open_node(store, path, read_only=mode == "r" or store.read_only)


def open_array(
    url_or_store: str | Store, mode: Mode = "r", *, path: str = "", storage_options: dict[str, Any] | None = None
) -> Array:
    """Open an array (a group there is an error)."""
    node = open(url_or_store, mode, path=path, storage_options=storage_options)
    if not isinstance(node, Array):
        raise MetadataError(f"{node.url} is a group, not an array")
    return node


def open_group(
    url_or_store: str | Store, mode: Mode = "r", *, path: str = "", storage_options: dict[str, Any] | None = None
) -> Group:
    """Open a group (an array there is an error)."""
    if mode not in ("r", "r+", "a"):
        raise ValueError(f"mode must be 'r', 'r+' or 'a', got {mode!r}")
    store = _store(url_or_store, storage_options)
    try:
        return open_group_mode(store, path, "r" if mode == "r" or store.read_only else "r+")
    except TypeError as exc:
        raise MetadataError(str(exc)) from None


def create_group(
    url_or_store: str | Store,
    *,
    zarr_format: Literal[2, 3] = 3,
    attributes: dict[str, Any] | None = None,
    overwrite: bool = False,
    path: str = "",
    storage_options: dict[str, Any] | None = None,
) -> Group:
    """Create a group (attaching to an identical existing one)."""
    if zarr_format not in (2, 3):
        raise MetadataError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    store = _store(url_or_store, storage_options)
    create_parents(store, path, zarr_format)
    meta = create_node(store, path, GroupMetadata(zarr_format, dict(attributes or {})), overwrite=overwrite)
    return Group(store, path, meta)  # type: ignore[arg-type]


def consolidate_metadata(
    url_or_store: str | Store, *, path: str = "", storage_options: dict[str, Any] | None = None
) -> Group:
    """Write consolidated metadata for the group at the location and return it reopened."""
    return consolidate(_store(url_or_store, storage_options), path)
