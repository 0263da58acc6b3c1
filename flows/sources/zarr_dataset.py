"""Zarr datasets written by xarray (``ds.to_zarr``, v2 or v3) as sources of a dataset, read with zarrcore.

:func:`open_zarr_dataset` gives a :class:`ZarrDatasetSource` shaped like
:class:`~flows.sources.netcdf.NetcdfSource`: every array of the group with its dims (v3
``dimension_names``, v2 ``_ARRAY_DIMENSIONS``), its stored values read lazily (nothing decoded:
packed integers stay packed, times stay numbers in their ``units``) and its attributes as xarray's
CF decoding sees them, ``_FillValue`` included (v2: the array's ``fill_value``; v3: xarray's
``_FillValue`` attribute, floats as base64 of a little-endian double), and the group's attributes.

A store's identity (:func:`zarr_identity`) covers every object under it: ``size`` is their total
bytes, ``version`` a digest of each object's key, size and store version (ETag, generation, the
local file's identity), and the content hash a SHA-256 of each object's key and bytes, read once,
object by object, as a NetCDF file's is. Any changed chunk or metadata document changes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

import zarrcore
from flows.sources.base import SourceError
from flows.sources.listing import ZARR_ROOTS, FileIdentity, locate
from zarrcore.errors import MetadataError, NotFound
from zarrcore.storage import RangeRequest, Store

__all__ = ["ZarrDatasetSource", "ZarrVariable", "is_zarr_store", "open_zarr_dataset", "zarr_identity"]

V2_DIMS = "_ARRAY_DIMENSIONS"


class ZarrData:
    """A Zarr array's stored values, read on indexing (``data[region]`` reads only its chunks)."""

    def __init__(self, array: zarrcore.Array) -> None:
        self._array = array
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.dtype: np.dtype = np.dtype(array.dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self._array[key])


@dataclass(frozen=True)
class ZarrVariable:
    """One array of a Zarr dataset: its dims, lazily read stored values and attributes as xarray sees them."""

    name: str
    dims: tuple[str, ...]
    data: ZarrData
    attrs: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype


def _fill_attr(value: Any, dtype: np.dtype) -> Any:
    """xarray's v3 ``_FillValue`` attribute as a value of ``dtype`` (floats are base64 of a double)."""
    if dtype.kind == "f" and isinstance(value, str):
        value = struct.unpack("<d", base64.standard_b64decode(value))[0]
    return np.array(value).astype(dtype)[()]


def _variable(name: str, array: zarrcore.Array, where: str) -> ZarrVariable:
    meta = array.metadata
    attrs = dict(meta.attributes)
    if meta.zarr_format == 3:
        dims = meta.dimension_names
        if "_FillValue" in attrs:
            attrs["_FillValue"] = _fill_attr(attrs["_FillValue"], np.dtype(array.dtype))
    else:
        dims = attrs.pop(V2_DIMS, None)
        if meta.fill_value is not None:
            attrs["_FillValue"] = np.array(meta.fill_value).astype(array.dtype)[()]
    if dims is None or len(dims) != len(meta.shape) or not all(isinstance(d, str) for d in dims):
        raise SourceError(f"{where}: array {name!r} has no dimension names (not a dataset written by xarray)")
    return ZarrVariable(name, tuple(str(d) for d in dims), ZarrData(array), attrs)


class ZarrDatasetSource:
    """An opened Zarr dataset: ``variables`` (by name, coordinates included), the group's ``attrs`` and
    its ``identity`` (computed on first use: it reads every object once)."""

    def __init__(self, url: str, store: Store, path: str, group: zarrcore.Group) -> None:
        self.url, self._store, self._path = url, store, path
        self.attrs: dict[str, Any] = dict(group.attrs)
        self.variables = {name: _variable(name, arr, url) for name, arr in sorted(group.arrays().items())}
        self._identity: FileIdentity | None = None

    @property
    def identity(self) -> FileIdentity:
        if self._identity is None:
            self._identity = zarr_identity(self._store, self._path, self.url, with_hash=True)
        return self._identity

    def close(self) -> None:
        """Nothing to release (the store is shared); here for the interface of a NetCDF source."""

    def __enter__(self) -> ZarrDatasetSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ZarrDatasetSource({self.url!r}, variables={list(self.variables)})"


def is_zarr_store(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether ``url`` names a Zarr group (a folder or prefix holding ``zarr.json`` or ``.zgroup``)."""
    here = locate(url, storage_options)
    if here.local_path is not None:
        return any(os.path.isfile(os.path.join(here.local_path, n)) for n in ZARR_ROOTS)
    store = here.store.open()
    return any(store.exists(f"{here.key.rstrip('/')}/{n}") for n in ZARR_ROOTS)


def open_zarr_dataset(url: str, storage_options: dict[str, Any] | None = None) -> ZarrDatasetSource:
    """Open the Zarr dataset at ``url`` (a path or store URL) through zarrcore's stores; nothing is decoded."""
    here = locate(url, storage_options)
    store = here.store.open()
    try:
        group = zarrcore.open_group(store, path=here.key.rstrip("/"))
    except (KeyError, MetadataError) as exc:
        raise SourceError(f"{here.url}: not a readable Zarr group: {exc}") from None
    return ZarrDatasetSource(here.url, store, here.key.rstrip("/"), group)


def zarr_identity(store: Store, path: str, url: str, *, with_hash: bool) -> FileIdentity:
    """The identity of the Zarr store under ``path`` (see the module docstring); ``with_hash=False``
    reads no object's bytes (one size and one 1-byte read per object for its version)."""
    prefix = f"{path}/" if path else ""
    keys = sorted(store.list(prefix))
    if not keys:
        raise NotFound(f"no Zarr store at {url!r}", key=path, store=store.url)
    digest, listing, total = hashlib.sha256(), [], 0
    for key in keys:
        rel = key[len(prefix) :]
        if with_hash:
            data, version = store.get_versioned(key)
            size = len(data)
            digest.update(json.dumps([rel, size]).encode())
            digest.update(data)
        else:
            size = store.size(key)
            _, version = store.get_versioned(key, RangeRequest(0, 1) if size else None)
        total += size
        listing.append([rel, size, version])
    known = all(v is not None for _, _, v in listing)
    version = hashlib.sha256(json.dumps(listing).encode()).hexdigest() if known else None
    return FileIdentity(url, total, version, None, digest.hexdigest() if with_hash else None)
