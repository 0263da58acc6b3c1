"""A writer process for the kill tests: appends files to a dataset through the real store of its target
(local disk or an emulator), wrapped so that it SIGKILLs this process just before a chosen PUT (the
``kind:n``-th PUT of a kind: record, chunk, meta, consolidated).

Usage: python kill_writer.py TARGET_JSON KILL_AT FILE... (TARGET_JSON a :class:`Target`'s JSON; KILL_AT
``none`` lets the append finish)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.datasets.kill_targets import Target
from tests.datasets.pieces import piece_of
from tests.fixtures.delegating import Delegating
from zarrcore.datasets import Dataset, create_dataset
from zarrcore.storage import Store
from zarrcore.storage.base import PutMode

GROUP_DOCS = ("zarr.json", ".zmetadata", ".zgroup", ".zattrs")
CHUNKS = {"time": 3, "lat": 4, "lon": 16}


def kind_of(key: str) -> str:
    """What a PUT of ``key`` is in a dataset at the store's root."""
    if key.startswith(".zarrcore/commits/"):
        return "record"
    if key.startswith(".zarrcore/"):
        return "bookkeeping"
    if "/" not in key and key in GROUP_DOCS:
        return "consolidated"
    if key.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zattrs"):
        return "meta"
    return "chunk"


class KillingStore(Delegating):
    """A real store that kills its process before the ``n``-th PUT of ``kind``."""

    def __init__(self, inner: Store, kill_at: str) -> None:
        self.inner, self.io_kind = inner, inner.io_kind
        self.target = None if kill_at == "none" else (kill_at.split(":")[0], int(kill_at.split(":")[1]))
        self.counts: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.inner.url

    def put(self, key: str, data: bytes | bytearray | memoryview, *, mode: PutMode = "overwrite") -> None:
        kind = kind_of(key)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.target == (kind, self.counts[kind]):
            os.kill(os.getpid(), signal.SIGKILL)
        self.inner.put(key, data, mode=mode)


def append(store: Store, files: Sequence[str | Path]) -> Dataset:
    """Append ``files`` to the dataset at the root of ``store`` (created from the first, if new), in order."""
    pieces = [piece_of(f) for f in files]
    ds = create_dataset(store, "", template=pieces[0], dim="time", chunks=CHUNKS, exist_ok=True)
    return ds.append(pieces, concurrency=1)


def main(target: str, kill_at: str, files: list[str]) -> None:
    print(append(KillingStore(Target.from_json(target).store(), kill_at), files).extent, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
