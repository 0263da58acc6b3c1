"""A writer process for the kill tests: appends files to a dataset through a store that SIGKILLs this
process just before a chosen PUT (the ``kind:n``-th PUT of a kind: record, chunk, meta, consolidated).

Usage: python kill_writer.py ROOT KILL_AT FILE... (KILL_AT ``none`` lets the append finish)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from tests.datasets.pieces import piece_of
from zarrcore.datasets import create_dataset
from zarrcore.storage import LocalStore

GROUP_DOCS = ("zarr.json", ".zmetadata", ".zgroup", ".zattrs")


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


class KillingStore(LocalStore):
    """A local store that kills its process before the ``n``-th PUT of ``kind``."""

    def __init__(self, root: str, kill_at: str) -> None:
        super().__init__(root)
        self.target = None if kill_at == "none" else (kill_at.split(":")[0], int(kill_at.split(":")[1]))
        self.counts: dict[str, int] = {}

    def put(self, key: str, data: Any, **kwargs: Any) -> Any:
        kind = kind_of(key)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.target == (kind, self.counts[kind]):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().put(key, data, **kwargs)


def main(root: str, kill_at: str, files: list[str]) -> None:
    store = KillingStore(root, kill_at)
    pieces = [piece_of(f) for f in files]
    ds = create_dataset(store, "", template=pieces[0], dim="time", chunks={"time": 3, "lat": 4, "lon": 16},
                        exist_ok=True)  # fmt: skip
    ds = ds.append(pieces, concurrency=1)
    print(ds.extent, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
