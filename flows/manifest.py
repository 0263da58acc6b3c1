"""The completion manifest of an array, and the content hash it records.

``manifest.json`` in the array's bookkeeping folder (:mod:`flows.bookkeeping`) maps every chunk key to
its stored size and content hash (or ``null`` for a chunk that holds only the fill value and is not
stored). It is written once every batch has finished; ``verify`` and ``zarrflow info`` read it. This
module never imports Prefect, so ``zarrflow info`` starts in a fraction of a second.

The content hash is CRC-32C (``crc32c:<8 hex digits>``), the checksum cloud object stores use for
integrity: hardware-accelerated (~25 GB/s here, against ~1.7 GB/s for SHA-256, about 8% of the CPU time of a
4 MiB-chunk ingest), and it catches corruption and accidental changes, not deliberate tampering.
Manifests of format 1 hold SHA-256 hex digests; they are still read and checked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import crc32c

from flows.bookkeeping import MANIFEST, bookkeeping_key
from zarrcore.errors import MetadataError, NotFound
from zarrcore.storage import Store

if TYPE_CHECKING:
    from flows.targets import TargetRef

__all__ = ["Manifest", "ChunkRecord", "write_manifest", "read_manifest", "content_hash", "content_hash_like",
           "MANIFEST_FORMAT"]  # fmt: skip

MANIFEST_FORMAT = "zarrcore-manifest/2"
#: Formats read: 1 recorded SHA-256 hex digests, 2 records ``crc32c:`` hashes (or either, after an upgrade).
READABLE_FORMATS = ("zarrcore-manifest/1", MANIFEST_FORMAT)
CRC32C_PREFIX = "crc32c:"

#: One chunk's record: ``[key, stored bytes, content hash]``; bytes 0 and hash ``None`` when not stored.
ChunkRecord = list[Any]


def content_hash(data: Any) -> str:
    """The content hash of stored chunk bytes (any buffer): ``crc32c:`` and 8 hex digits."""
    return f"{CRC32C_PREFIX}{crc32c.crc32c(data):08x}"


def content_hash_like(recorded: str, data: Any) -> str:
    """The hash of ``data`` computed as ``recorded`` was: CRC-32C, or SHA-256 for records of format 1."""
    return content_hash(data) if recorded.startswith(CRC32C_PREFIX) else hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """Chunk key -> ``(stored bytes, content hash)``, or ``None`` for a chunk not stored (fill value only)."""

    array: str
    fingerprint: str
    incarnation: str
    chunks: dict[str, tuple[int, str] | None]

    @property
    def stored_bytes(self) -> int:
        return sum(c[0] for c in self.chunks.values() if c is not None)


def _manifest_key(path: str) -> str:
    return bookkeeping_key(path, MANIFEST)


def write_manifest(target: TargetRef, records: list[ChunkRecord]) -> Manifest:
    """Write the completion manifest of a finished target (one atomic PUT; none when the stored manifest
    already holds these bytes, as after a rerun that found every batch finished)."""
    chunks = {key: (int(nbytes), sha) if sha else None for key, nbytes, sha in sorted(records)}
    manifest = Manifest(target.identity, target.fingerprint, target.incarnation, chunks)
    doc = {
        "format": MANIFEST_FORMAT,
        "array": manifest.array,
        "metadata_fingerprint": manifest.fingerprint,
        "incarnation": manifest.incarnation,
        "hash": "crc32c of the stored (encoded) chunk bytes, as crc32c:<8 hex>; a 64-hex-digit value is a sha256",
        "chunks": {k: (list(v) if v else None) for k, v in chunks.items()},
    }
    store, key = target.store.open(), _manifest_key(target.path)
    data = json.dumps(doc, separators=(",", ":")).encode()
    try:
        unchanged = store.get(key) == data
    except NotFound:
        unchanged = False
    if not unchanged:
        store.put(key, data)
    return manifest


def read_manifest(store: Store, path: str) -> Manifest | None:
    """The manifest of the array at ``path``, or ``None`` if none was written."""
    key = _manifest_key(path)
    try:
        data = store.get(key)
    except NotFound:
        return None
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise MetadataError(f"{key}: malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MetadataError(f"{key}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") not in READABLE_FORMATS:
        raise ValueError(f"{key}: unknown manifest format {doc.get('format')!r}")
    chunks = {k: (int(v[0]), str(v[1])) if v else None for k, v in doc["chunks"].items()}
    return Manifest(doc["array"], doc["metadata_fingerprint"], doc.get("incarnation", ""), chunks)
