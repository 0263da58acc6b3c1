"""Where finished work is recorded: a Prefect result storage over any zarrcore store, and the
completion manifest.

* **The ledger.** Batch task results (per chunk: key, stored bytes, content hash of the encoded chunk) are
  Prefect persisted results, kept by :class:`ZarrcoreResultStorage` in the array's bookkeeping folder
  (:mod:`flows.bookkeeping`, ``results/``) in the destination store itself by default. Every worker that
  can write the array can read the ledger, nothing needs configuring, and the ledger is deleted with the
  array (``overwrite``), so it never vouches for chunks that are gone. A results store given instead
  (``results_url`` and its ``results_storage_options``) holds the ledgers of many arrays.
* **The manifest** (:mod:`flows.manifest`, re-exported here) records every chunk's content hash once
  every batch has finished; ``verify`` checks the stored chunks against it.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import anyio.to_thread
from prefect.exceptions import ObjectAlreadyExists
from prefect.filesystems import WritableFileSystem
from prefect.settings import PREFECT_API_URL
from pydantic import Field

from flows.bookkeeping import MANIFEST, RESULTS, bookkeeping_key
from flows.manifest import Manifest, content_hash, content_hash_like, read_manifest, write_manifest
from flows.stores import StoreRef
from flows.targets import TargetRef, array_identity
from zarrcore.errors import NotFound
from zarrcore.storage import Store, join_key

__all__ = ["ZarrcoreResultStorage", "ledger_for", "ledger_at", "Manifest", "write_manifest", "read_manifest",
           "MANIFEST", "content_hash", "content_hash_like"]


class ZarrcoreResultStorage(WritableFileSystem):
    """Prefect result storage on any zarrcore store (local path, s3://, gs://, az://, memory://).

    Each result is one object written with one atomic PUT, so a crash never leaves a torn record.
    """

    _block_type_name = "Zarrcore Result Storage"
    _block_type_slug = "zarrcore-result-storage"
    _description = "Prefect results kept as objects in any zarrcore store (the flows' idempotency ledger)."

    url: str = Field(description="Store URL (a path, file://, s3://, gs://, az://, memory://).")
    prefix: str = Field("", description="Key prefix of the results inside the store.")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="Non-secret store options.")

    def _key(self, path: str) -> str:
        return join_key(self.prefix, path)

    @property
    def store(self) -> StoreRef:
        """The store the results are kept in."""
        return StoreRef.of(self.url, self.storage_options)

    def _open(self) -> Store:
        return self.store.open()

    def read_path(self, path: str, **_: Any) -> bytes:
        """The stored bytes; a missing record raises ``ValueError`` (as Prefect's local storage does)."""
        try:
            return self._open().get(self._key(path))
        except NotFound:
            raise ValueError(f"no result at {self._key(path)!r} in {self.url}") from None

    def write_path(self, path: str, content: bytes, **_: Any) -> str:
        self._open().put(self._key(path), content)
        return path

    async def aread_path(self, path: str) -> bytes:
        return await anyio.to_thread.run_sync(self.read_path, path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        return await anyio.to_thread.run_sync(self.write_path, path, content)


def ledger_for(target: TargetRef, results: StoreRef | None = None) -> ZarrcoreResultStorage:
    """The saved result storage for a target: inside the array, or in the ``results`` store if given."""
    return ledger_at(target.store, target.path, results)


def ledger_at(store: StoreRef, path: str, results: StoreRef | None = None) -> ZarrcoreResultStorage:
    """The saved result storage for the array at ``path`` in ``store`` (at the store's own URL).

    Prefect needs result storage saved as a block so that any process can resolve it; the block's
    name is derived from its location, so every run for the same array shares one block, and a
    process saves it once (two API round trips).
    """
    if results is not None:
        prefix = hashlib.sha256(array_identity(store.url, path).encode()).hexdigest()[:32]
        storage = ZarrcoreResultStorage(url=results.url, prefix=prefix, storage_options=results.options)
    else:
        storage = ZarrcoreResultStorage(
            url=store.url, prefix=bookkeeping_key(path, RESULTS), storage_options=store.options
        )
    where = f"{storage.url}|{storage.prefix}"
    if results is not None and results.options:  # another endpoint of the same URL is another block
        where += "|" + results.key()
    name = "zarrcore-results-" + hashlib.sha256(where.encode()).hexdigest()[:20]
    return _saved(storage, name, str(PREFECT_API_URL.value() or ""))


_saved_blocks: dict[tuple[str, str, str], ZarrcoreResultStorage] = {}
_saved_lock = threading.Lock()


def _saved(storage: ZarrcoreResultStorage, name: str, api: str) -> ZarrcoreResultStorage:
    """``storage`` saved as block ``name``; an identical block already saved by this process to the same
    API is reused instead of being saved again (a save is two API round trips). Prefect registers a block
    type by reading it, then creating it if missing, so the first runs on a new server can race: the
    loser's conflict is retried (the type then exists)."""
    key = (api, name, storage.model_dump_json())
    with _saved_lock:
        known = _saved_blocks.get(key)
        if known is not None:
            return known
    for attempt in range(3):
        try:
            storage.save(name, overwrite=True)
            break
        except ObjectAlreadyExists:  # another process registered the block type or schema at the same moment
            if attempt == 2:
                raise
    with _saved_lock:
        _saved_blocks[key] = storage
    return storage
