"""User arguments -> validated :class:`~zarrcore.metadata.ArrayMetadata`, in one place.

:func:`build_array_metadata` turns the arguments of :func:`zarrcore.create` into metadata, with the
default codecs of :func:`zarrcore.codecs.default_codecs`. The result can be inspected, kept, and
given to ``zarrcore.create(..., metadata=meta)`` or ``Group.create_array(..., metadata=meta)``, so an
array is described once and created from that description.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from zarrcore.codecs import CodecPipeline, default_codecs
from zarrcore.codecs.pipeline import codec_configs
from zarrcore.codecs.sharding import sharding_codecs
from zarrcore.errors import CodecError, MetadataError
from zarrcore.metadata import ArrayMetadata, parse_dtype
from zarrcore.metadata.dtypes import normalize_fill_value

__all__ = ["build_array_metadata", "normalize_shape", "resolve_metadata"]


def normalize_shape(value: Any, name: str) -> tuple[int, ...]:
    """An integer or a sequence of integers as a shape tuple; ``name`` names the argument in errors."""
    if isinstance(value, int | np.integer):
        value = (int(value),)
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise MetadataError(f"{name} must be an integer or a sequence of integers, got {value!r}") from None
    if any(isinstance(v, bool) for v in value):
        raise MetadataError(f"{name} must contain integers, got {value!r}")
    return out


def build_array_metadata(
    *,
    shape: Any,
    chunks: Any,
    dtype: Any,
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
) -> ArrayMetadata:
    """Validate user arguments (those of :func:`zarrcore.create`) into :class:`ArrayMetadata`, its
    codec pipeline checked too, writing nothing.

    With ``shards`` (v3), ``chunks`` is the chunk shape and each stored object is a shard of
    ``shards`` shape holding those chunks (``codecs`` then encode each chunk). The metadata's
    ``chunks`` is then the shard shape, as the spec's chunk grid says."""
    if zarr_format not in (2, 3):
        raise MetadataError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    shape_t = normalize_shape(shape, "shape")
    if any(s < 0 for s in shape_t):
        raise MetadataError(f"shape must be >= 0 in every dimension, got {list(shape_t)}")
    chunks_t = normalize_shape(chunks, "chunks")
    if len(chunks_t) != len(shape_t):
        raise MetadataError(
            f"chunks: rank {len(chunks_t)} does not match shape rank {len(shape_t)} "
            f"(shape {list(shape_t)}, chunks {list(chunks_t)})"
        )
    if any(c < 1 for c in chunks_t):
        raise MetadataError(f"chunks must be >= 1 in every dimension, got {list(chunks_t)}")
    if order not in ("C", "F"):
        raise MetadataError(f"order must be 'C' or 'F', got {order!r}")
    if dimension_separator not in (None, "/", "."):
        raise MetadataError(f"dimension_separator must be '/' or '.', got {dimension_separator!r}")
    if chunk_key_encoding not in (None, "default", "v2") or (zarr_format == 2 and chunk_key_encoding == "default"):
        raise MetadataError(f"chunk_key_encoding must be 'default' or 'v2' (v3 only), got {chunk_key_encoding!r}")
    dt = parse_dtype(dtype, zarr_format)
    fill = normalize_fill_value(fill_value, dt, zarr_format)
    if zarr_format == 3:
        if compressor != "auto" or filters is not None:
            raise MetadataError("compressor and filters are Zarr v2 options; for v3 pass codecs=[...]")
        codec_list = codec_configs(codecs, "codecs", "name") if codecs is not None else default_codecs(dt)
        if order == "F" and len(shape_t) > 1 and not any(c.get("name") == "transpose" for c in codec_list):
            codec_list.insert(0, {"name": "transpose", "configuration": {"order": list(range(len(shape_t)))[::-1]}})
        if shards is not None:
            chunks_t, codec_list = _sharded(shape_t, chunks_t, normalize_shape(shards, "shards"), codec_list)
        meta = ArrayMetadata(
            zarr_format=3,
            shape=shape_t,
            chunks=chunks_t,
            dtype=dt,
            fill_value=fill,
            codecs=tuple(codec_list),
            separator=dimension_separator or ("." if chunk_key_encoding == "v2" else "/"),
            key_encoding=chunk_key_encoding or "default",
            dimension_names=tuple(dimension_names) if dimension_names is not None else None,
            attributes=dict(attributes or {}),
        )
    else:
        if codecs is not None:
            raise MetadataError("codecs is a Zarr v3 option; for v2 pass compressor= and filters=")
        if shards is not None:
            raise MetadataError("shards are a Zarr v3 feature; for v2 leave shards=None")
        if dimension_names is not None:
            raise MetadataError("dimension_names are a Zarr v3 feature; store them as attributes for v2")
        comp = {"id": "zstd", "level": 3} if compressor == "auto" else compressor
        if comp is not None and not (isinstance(comp, dict) and isinstance(comp.get("id"), str)):
            raise CodecError(f"compressor: expected None or a numcodecs config with an 'id', got {comp!r}")
        filters = codec_configs(filters, "filters", "id") if filters is not None else None
        if dt.kind == "O" and filters is None:  # variable-length strings: the filter zarr-python uses
            filters = [{"id": "vlen-utf8"}]
        meta = ArrayMetadata(
            zarr_format=2,
            shape=shape_t,
            chunks=chunks_t,
            dtype=dt,
            fill_value=fill,
            order=order,
            compressor=dict(comp) if comp else None,
            filters=tuple(dict(f) for f in filters) if filters else None,
            separator=dimension_separator or ".",
            key_encoding="v2",
            attributes=dict(attributes or {}),
        )
    CodecPipeline(meta)  # fail now, not at the first write
    return meta


def _sharded(
    shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...], codecs: list[dict[str, Any]]
) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """The chunk shape and codec list of an array stored as ``shards`` of ``chunks``-shaped chunks."""
    if len(shards) != len(shape):
        raise MetadataError(f"shards: rank {len(shards)} does not match shape rank {len(shape)}")
    if any(s < 1 or s % c for s, c in zip(shards, chunks, strict=True)):
        raise MetadataError(
            f"shards must be a multiple of chunks in every dimension, got shards {list(shards)} and "
            f"chunks {list(chunks)}"
        )
    if any(c.get("name") == "sharding_indexed" for c in codecs):
        raise MetadataError("pass either shards= or a 'sharding_indexed' codec, not both")
    return shards, sharding_codecs(chunks, codecs)


def resolve_metadata(metadata: ArrayMetadata | None, arguments: dict[str, Any]) -> ArrayMetadata:
    """The metadata of an array to create: ``metadata`` as given (its codecs checked), or built from
    ``arguments`` (named as in :func:`build_array_metadata`; ``shape``, ``chunks`` and ``dtype``
    ``None`` when not given). An argument set away from its default beside ``metadata`` is an error."""
    unknown = sorted(set(arguments) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"unexpected array arguments {unknown}")
    given = {k: v for k, v in arguments.items() if not _unset(v, _DEFAULTS[k])}
    if metadata is None:
        missing = [name for name in ("shape", "chunks", "dtype") if name not in given]
        if missing:
            raise TypeError(f"creating an array needs {', '.join(missing)} (or metadata=)")
        return build_array_metadata(**given)
    if not isinstance(metadata, ArrayMetadata):
        raise TypeError(f"metadata must be an ArrayMetadata (from build_array_metadata), got {type(metadata).__name__}")
    if given:
        raise MetadataError(f"pass either metadata= or the array arguments, not both (got {sorted(given)})")
    CodecPipeline(metadata)  # fail now, not at the first write
    return metadata


_DEFAULTS = {name: p.default for name, p in inspect.signature(build_array_metadata).parameters.items()}


def _unset(value: Any, default: Any) -> bool:
    if default is inspect.Parameter.empty:
        return value is None
    return value is default or (type(value) is type(default) and value == default)
