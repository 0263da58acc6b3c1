"""A dataset's layout: one array per variable and coordinate, in xarray's conventions.

Dimensions are ``dimension_names`` (v3) or the ``_ARRAY_DIMENSIONS`` attribute (v2). The fill value
follows xarray: in v2 the ``_FillValue`` attribute becomes the array's ``fill_value``; in v3 it stays
an attribute (encoded as xarray encodes it) and the array's ``fill_value`` is that value too (else
NaN for floats), so regions not written read as missing.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from zarrcore.array import Array
from zarrcore.datasets.model import Piece, Variable, plain_attrs
from zarrcore.errors import LayoutMismatchError, MetadataError
from zarrcore.group import Group
from zarrcore.metadata import ArrayMetadata, GroupMetadata
from zarrcore.spec import build_array_metadata
from zarrcore.storage.base import Store, join_key

__all__ = ["Layout", "build_layout", "chunk_sizes", "dims_of", "read_layout", "DEFAULT_CHUNK_BYTES", "fill_and_attrs",
           "other_keys"]  # fmt: skip

#: The size a chunk aims at when a dimension's chunk length is not given.
DEFAULT_CHUNK_BYTES = 4 * 2**20
#: Attributes that decide how xarray decodes values: a piece must agree with the dataset on them.
ENCODING_ATTRS = ("scale_factor", "add_offset", "_FillValue", "missing_value", "units", "calendar", "dtype",
                  "_Unsigned")  # fmt: skip
V2_DIMS = "_ARRAY_DIMENSIONS"


def other_keys(meta: ArrayMetadata) -> tuple[str, str] | None:
    """The chunk key encoding whose keys never meet ``meta``'s: the other separator (``None`` when
    both give the same keys: a 1-D array with v2 keys)."""
    if meta.key_encoding == "v2" and len(meta.shape) < 2:
        return None
    return meta.key_encoding, "." if meta.separator == "/" else "/"


def dims_of(meta: ArrayMetadata) -> tuple[str, ...]:
    """An array's dimension names, from either format's convention."""
    if meta.zarr_format == 3:
        return tuple(str(d) for d in meta.dimension_names or ())
    return tuple(meta.attributes.get(V2_DIMS, ()))


def _encode_fill_attr(value: Any, dtype: np.dtype) -> Any:
    """``_FillValue`` as xarray writes it in a v3 attribute (floats as base64 of a little-endian double)."""
    if dtype.kind == "f":
        return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    return plain_attrs({"v": value}, "_FillValue")["v"]


def fill_and_attrs(name: str, var: Variable, zarr_format: int) -> tuple[Any, dict[str, Any]]:
    attrs = dict(var.attrs)
    fill = attrs.pop("_FillValue", None)
    out = plain_attrs(attrs, f"variable {name!r}")
    if zarr_format == 2:
        out[V2_DIMS] = list(var.dims)
        return (var.fill_value if var.fill_value is not None else fill), out
    if fill is not None:
        out["_FillValue"] = _encode_fill_attr(fill, var.dtype)
    if var.fill_value is not None:
        return var.fill_value, out
    if fill is not None:
        return fill, out
    return (np.nan if var.dtype.kind == "f" else None), out


def chunk_sizes(piece: Piece, dim: str, chunks: Mapping[str, int] | None) -> dict[str, int]:
    """The chunk length of every dimension: as given, else the largest that keeps the biggest
    variable's chunk near :data:`DEFAULT_CHUNK_BYTES` (other dimensions are halved first, the append
    dimension then grows to fill the budget)."""
    given = {k: int(v) for k, v in (chunks or {}).items()}
    sizes = piece.sizes()
    unknown = sorted(set(given) - set(sizes))
    if unknown:
        raise LayoutMismatchError(f"chunks names dimensions the dataset does not have: {unknown}")
    out = dict(given)
    biggest = max(piece.variables.values(), key=lambda v: (v.dtype.itemsize * math.prod(
        n for d, n in zip(v.dims, v.shape, strict=True) if d != dim)), default=None)  # fmt: skip
    if biggest is None:
        return out
    budget = max(1, DEFAULT_CHUNK_BYTES // biggest.dtype.itemsize)
    free = {d: max(1, sizes[d]) for d in biggest.dims if d != dim and d not in given}
    fixed = math.prod(out.get(d, 1) for d in biggest.dims if d != dim and d in given)
    while free and fixed * math.prod(free.values()) > budget:
        largest = max(free, key=lambda d: free[d])
        if free[largest] == 1:
            break
        free[largest] = -(-free[largest] // 2)
    out.update(free)
    if dim not in out:
        out[dim] = max(1, budget // max(1, fixed * math.prod(free.values())))
    for d, n in sizes.items():
        out.setdefault(d, max(1, n))
    return out


@dataclass(frozen=True)
class Layout:
    """The published arrays of a dataset (by variable name), their format and the dimension."""

    zarr_format: Literal[2, 3]
    dim: str
    arrays: dict[str, ArrayMetadata]
    attrs: dict[str, Any]

    def axis_of(self, name: str) -> int | None:
        """The position of the dimension in ``name``'s dims, or ``None`` for a static variable."""
        dims = dims_of(self.arrays[name])
        return dims.index(self.dim) if self.dim in dims else None

    @property
    def extent(self) -> int:
        """The published length along the dimension (0 for a dataset without appends)."""
        for name, meta in self.arrays.items():
            axis = self.axis_of(name)
            if axis is not None:
                return meta.shape[axis]
        return 0

    def sizes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for meta in self.arrays.values():
            out.update(zip(dims_of(meta), meta.shape, strict=True))
        return dict(sorted(out.items()))

    def grown(self, extent: int) -> Layout:
        """The layout with every variable along the dimension at length ``extent``."""
        arrays = {}
        for name, meta in self.arrays.items():
            axis = self.axis_of(name)
            if axis is not None:
                meta = meta.replace(shape=(*meta.shape[:axis], extent, *meta.shape[axis + 1 :]))
            arrays[name] = meta
        return Layout(self.zarr_format, self.dim, arrays, self.attrs)

    def keys(self) -> dict[str, tuple[str, str]]:
        """Each array's chunk key encoding, ``(name, separator)``."""
        return {name: (meta.key_encoding, meta.separator) for name, meta in self.arrays.items()}

    def rekeyed(self, keys: Mapping[str, tuple[str, str]]) -> Layout:
        """The layout with the arrays named in ``keys`` using those chunk key encodings."""
        arrays = dict(self.arrays)
        for name, (encoding, separator) in keys.items():
            arrays[name] = arrays[name].replace(key_encoding=encoding, separator=separator)
        return Layout(self.zarr_format, self.dim, arrays, self.attrs)

    def array(self, store: Store, path: str, name: str) -> Array:
        meta = self.arrays[name]
        return Array(store, join_key(path, name), meta, write_empty_chunks=meta.fill_value is None)

    def group_metadata(self) -> GroupMetadata:
        return GroupMetadata(self.zarr_format, dict(self.attrs))

    def fill_attrs(self, name: str) -> dict[str, Any]:
        """The encoding attributes of ``name`` as a piece would give them (``_FillValue`` included)."""
        meta = self.arrays[name]
        attrs = {k: v for k, v in meta.attributes.items() if k in ENCODING_ATTRS}
        if self.zarr_format == 2 and meta.fill_value is not None:
            attrs["_FillValue"] = meta.fill_value
        return attrs


def build_layout(
    template: Piece,
    *,
    dim: str,
    extent: int,
    chunks: Mapping[str, int] | None,
    shards: Mapping[str, int] | None,
    zarr_format: Literal[2, 3],
) -> Layout:
    """The layout of a new dataset shaped like ``template``, ``extent`` long along ``dim``."""
    if zarr_format == 2 and shards:
        raise MetadataError("shards are a Zarr v3 feature; for v2 leave shards=None")
    sizes = template.sizes()
    if dim not in sizes:
        raise LayoutMismatchError(f"{template.name}: no variable has the dimension {dim!r}", source=template.name)
    if dim not in template.variables or template.variables[dim].dims != (dim,):
        raise LayoutMismatchError(f"{template.name}: the coordinate variable {dim!r} ({dim},) is missing",
                                  variable=dim, source=template.name)  # fmt: skip
    per_dim = chunk_sizes(template, dim, chunks)
    shard_of = {k: int(v) for k, v in (shards or {}).items()}
    arrays = {}
    for name, var in template.variables.items():
        shape = tuple(extent if d == dim else n for d, n in zip(var.dims, var.shape, strict=True))
        fill, attrs = fill_and_attrs(name, var, zarr_format)
        shard = tuple(shard_of.get(d, per_dim[d]) for d in var.dims) if shard_of and var.dims else None
        arrays[name] = build_array_metadata(
            shape=shape,
            chunks=tuple(per_dim[d] for d in var.dims),
            dtype=var.dtype,
            fill_value=fill,
            zarr_format=zarr_format,
            attributes=attrs,
            dimension_names=var.dims if zarr_format == 3 else None,
            shards=shard,
        )
    return Layout(zarr_format, dim, arrays, plain_attrs(template.attrs, "global attributes"))


def read_layout(group: Group, dim: str) -> Layout:
    """The layout a group's consolidated metadata publishes."""
    arrays = {name: arr.metadata for name, arr in group.arrays().items()}
    return Layout(group.zarr_format, dim, arrays, dict(group.attrs))  # type: ignore[arg-type]
