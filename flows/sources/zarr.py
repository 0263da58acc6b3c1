"""Zarr arrays (v2 or v3) on any store zarrcore opens."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Literal

import numpy as np
from pydantic import Field

import zarrcore
from flows.credentials import CredentialsBlock, with_credentials
from flows.params import StorageOptions, StoreURL
from flows.sources.base import Region, SourceError, SourceModel, SourceReader, hash_array
from flows.stores import StoreRef
from zarrcore.errors import MetadataError
from zarrcore.storage import Store

__all__ = ["ZarrSource", "ZarrReader"]


def _dimension_names(meta: Any) -> tuple[str, ...] | None:
    """A Zarr array's dimension names: v3 ``dimension_names``, or xarray's v2 ``_ARRAY_DIMENSIONS``."""
    names = meta.dimension_names or meta.attributes.get("_ARRAY_DIMENSIONS")
    if isinstance(names, list | tuple) and len(names) == len(meta.shape) and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None


class ZarrReader(SourceReader):
    """A Zarr array on any store. The last regions fingerprinted by a thread are kept (one batch at
    most) so that the write that follows does not read them again."""

    def __init__(self, store: Store, path: str) -> None:
        try:
            self._array = zarrcore.open_array(store, path=path)
        except (KeyError, MetadataError) as exc:
            raise SourceError(f"source array {store.url!r} (path {path!r}) cannot be opened: {exc}") from None
        self.shape = self._array.shape
        self.dtype = self._array.dtype
        self.chunks = self._array.metadata.chunks  # the stored object's shape
        self.fill_value = self._array.fill_value
        self.dimension_names = _dimension_names(self._array.metadata)
        self._local = threading.local()

    @property
    def array(self) -> zarrcore.Array:
        return self._array

    def _memo(self) -> dict[tuple[tuple[int, int], ...], np.ndarray]:
        memo = getattr(self._local, "memo", None)
        if memo is None:
            memo = self._local.memo = {}
        return memo

    def read(self, region: Region) -> np.ndarray:
        data = self._memo().pop(tuple((s.start, s.stop) for s in region), None)
        return self._array[region] if data is None else data

    def fingerprint(self, region: Region) -> str:
        data = self._array[region]
        memo = self._memo()
        memo[tuple((s.start, s.stop) for s in region)] = data
        return hash_array(data)

    def forget(self) -> None:
        """Drop what this thread kept from fingerprinting."""
        self._memo().clear()

    def describe(self) -> str:
        return f"{self._array.url} shape={self.shape} dtype={self.dtype}"


class ZarrSource(SourceModel):
    """Another Zarr array (v2 or v3) on any store zarrcore opens."""

    kind: Literal["zarr"] = Field("zarr", description="Source type: a Zarr array.")
    url: StoreURL = Field(description="Store URL: a path, file://, s3://bucket/prefix, gs://..., az://...")
    path: str = Field("", description="Path of the array inside the store ('' when the URL is the array).")
    storage_options: StorageOptions = Field(default_factory=dict)
    credentials_block: CredentialsBlock = None

    @property
    def store(self) -> StoreRef:
        """The source's store (naming its credentials block, if any)."""
        return StoreRef.of(self.url, with_credentials(self.storage_options, self.credentials_block))

    def _identity(self) -> tuple[Any, ...]:
        """The source's metadata: a reader is reopened when the array is replaced or resized."""
        try:
            array = zarrcore.open_array(self.store.open(), path=self.path)
        except (KeyError, MetadataError) as exc:
            raise SourceError(f"source array {self.url!r} (path {self.path!r}) cannot be opened: {exc}") from None
        documents = json.dumps(array.metadata.to_documents(), sort_keys=True, default=str)
        return (hashlib.sha256(documents.encode()).hexdigest(),)

    def _reader(self) -> SourceReader:
        return ZarrReader(self.store.open(), self.path)

    def __hash__(self) -> int:  # storage_options is a dict
        return hash((self.kind, self.path, self.store))
