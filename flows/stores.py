"""Store references: a store's URL and options as one hashable value, opening one store per process.

The options are never secret: they may name a credentials block (:mod:`flows.credentials`), whose value
is read only when the store is opened, so a reference can be a task input, part of a cache key or a
result without carrying a credential."""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

import zarrcore
from flows.credentials import open_options
from zarrcore.storage import Store

__all__ = ["StoreRef", "shared_store"]


class StoreRef(BaseModel):
    """Where a store is: its URL and its non-secret options, frozen and hashable.

    A plain path is made absolute (relative to the current folder) when the reference is made, so a
    reference means the same store in every thread and task run of the process.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str = Field(description="Store URL (a path, file://, s3://, gs://, az://, memory://).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Non-secret store options (and the name of a credentials block)."
    )

    @field_validator("url")
    @classmethod
    def _absolute(cls, url: str) -> str:
        return url if "://" in url else os.path.abspath(os.path.expanduser(url))

    @classmethod
    def of(cls, url: str, options: dict[str, Any] | None = None) -> StoreRef:
        """The reference to ``url`` with ``options`` (none when ``None``)."""
        return cls(url=url, options=dict(options or {}))

    def key(self) -> str:
        """The canonical JSON of the reference: equal for equal references, used in cache keys."""
        return json.dumps([self.url, self.options], sort_keys=True, default=str, separators=(",", ":"))

    def __hash__(self) -> int:
        return hash(self.key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoreRef) and self.key() == other.key()

    def open(self) -> Store:
        """The store, opened once per process and shared by every thread and task run in it.

        Stores are thread-safe, so every task run shares one SDK client and its connection pool
        instead of building its own. The store is never closed while the process runs: do not close it.
        """
        return _open(self.key())

    def at(self, url: str) -> StoreRef:
        """The same options at another URL (e.g. the store's own normalised URL)."""
        return StoreRef(url=url, options=self.options)


def shared_store(url: str, storage_options: dict[str, Any] | None = None) -> Store:
    """The store at ``url`` with these (non-secret) options, opened once per process
    (``StoreRef.of(url, storage_options).open()``)."""
    return StoreRef.of(url, storage_options).open()


@functools.lru_cache(maxsize=32)
def _open(key: str) -> Store:
    url, options = json.loads(key)
    return zarrcore.open_store(url, **open_options(options))  # a named credentials block is read here only
