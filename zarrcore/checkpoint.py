"""A durable record of finished chunks, so an interrupted stream resumes where it stopped.

The record is one small JSON object, rewritten whole with one atomic put: on local disk a temp file
renamed over the old one (:class:`~zarrcore.storage.LocalStore`), on object storage one PUT. A reader
therefore sees the previous record or the new one, never a torn one, even if the writer is killed.
One writer per checkpoint.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zarrcore.errors import NotFound, ZarrcoreError
from zarrcore.storage.base import Store, validate_key
from zarrcore.storage.registry import open_store
from zarrcore.storage.urls import parse_url

__all__ = ["Checkpoint", "CheckpointError"]

_FORMAT = "zarrcore-checkpoint"
_VERSION = 1

ChunkIndex = tuple[int, ...]


class CheckpointError(ZarrcoreError, ValueError):
    """A checkpoint object exists but is not a checkpoint (or not one this version reads)."""


def _locate(location: str | os.PathLike[str], options: dict[str, Any]) -> tuple[Store, str]:
    text = os.fspath(location)
    parsed = parse_url(text)
    if parsed.scheme == "file":
        path = Path(parsed.path).expanduser().absolute()
        if not path.name:
            raise ValueError(f"checkpoint path {text!r} must name a file")
        return open_store(str(path.parent), **options), path.name
    if parsed.scheme == "memory":  # memory://store-name/key
        root, _, name = parsed.path.partition("/")
        store_url = f"memory://{root}"
    else:
        root, name, store_url = parsed.bucket, parsed.path, parsed.root_url
    if not root or not name:
        raise ValueError(f"checkpoint URL {text!r} must name an object in a bucket or store: scheme://root/key")
    return open_store(store_url, **options), validate_key(name)


class Checkpoint:
    """The set of finished chunk indices of one job, kept at a path, a URL or a key of a store.

    ``Checkpoint("/data/job.ckpt.json")``, ``Checkpoint("s3://bucket/jobs/job1.json")`` or
    ``Checkpoint(store, "job1.json")``. What exists there is loaded at once. :meth:`mark` records an
    index in :attr:`completed` and saves every ``flush_every`` marks or ``flush_interval`` seconds
    (``flush_every=1`` saves on every mark); :meth:`flush` saves now. Passing it as ``checkpoint=`` to
    :meth:`zarrcore.Array.write_stream` marks each chunk written and flushes at the end, even on error.
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | Store,
        key: str | None = None,
        *,
        flush_every: int = 1000,
        flush_interval: float | None = 10.0,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        if isinstance(location, Store):
            if key is None:
                raise ValueError("a key is needed with a store: Checkpoint(store, 'job.json')")
            if storage_options:
                raise TypeError("storage_options cannot be applied to an already opened store")
            self.store, self.key = location, validate_key(key)
        else:
            if key is not None:
                raise ValueError("key is only for Checkpoint(store, key); put the name in the path or URL")
            self.store, self.key = _locate(location, storage_options or {})
        self.flush_every = flush_every
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._unsaved = 0
        self._saved_at = time.monotonic()
        #: The finished chunk indices (live: :meth:`mark` adds to it).
        self.completed: set[ChunkIndex] = self._load()

    @property
    def url(self) -> str:
        """Where the checkpoint is kept."""
        return f"{self.store.url.rstrip('/')}/{self.key}"

    def _load(self) -> set[ChunkIndex]:
        try:
            raw = self.store.get(self.key)
        except NotFound:
            return set()
        try:
            doc = json.loads(raw)
            if doc.get("format") != _FORMAT:
                raise CheckpointError(f"{self.url} is not a zarrcore checkpoint (no format {_FORMAT!r})")
            if doc.get("version") != _VERSION:
                raise CheckpointError(f"{self.url}: checkpoint version {doc.get('version')!r} is not {_VERSION}")
            return {tuple(int(i) for i in index) for index in doc["completed"]}
        except CheckpointError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{self.url} holds a malformed checkpoint: {exc}") from exc

    def __contains__(self, index: object) -> bool:
        return index in self.completed

    def __len__(self) -> int:
        return len(self.completed)

    def mark(self, index: Sequence[int]) -> None:
        """Record a finished chunk; saves when ``flush_every`` marks or ``flush_interval`` s have passed."""
        idx = tuple(int(i) for i in index)
        with self._lock:
            if idx not in self.completed:
                self.completed.add(idx)
                self._unsaved += 1
            due = self._unsaved >= self.flush_every or (
                self.flush_interval is not None
                and self._unsaved
                and time.monotonic() - self._saved_at >= self.flush_interval
            )
        if due:
            self.flush()

    def mark_many(self, indices: Iterable[Sequence[int]]) -> None:
        """Record several finished chunks, then save if due."""
        for index in indices:
            self.mark(index)

    def flush(self) -> None:
        """Save the record now (one atomic put) if anything changed since the last save."""
        with self._lock:
            if not self._unsaved:
                return
            doc = {"format": _FORMAT, "version": _VERSION, "completed": sorted(self.completed)}
            self.store.put(self.key, json.dumps(doc, separators=(",", ":")).encode())
            self._unsaved = 0
            self._saved_at = time.monotonic()

    def clear(self) -> None:
        """Forget every mark and delete the saved record."""
        with self._lock:
            self.completed.clear()
            self._unsaved = 0
            self.store.delete(self.key)

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def __repr__(self) -> str:
        return f"Checkpoint({self.url!r}, completed={len(self.completed)})"
