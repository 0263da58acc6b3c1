"""One store per location and options in each process, shared by the flow and its task runs."""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import zarrcore
from zarrcore.storage.base import Store

__all__ = ["shared_store"]


def shared_store(url: str, storage_options: dict[str, Any] | None = None) -> Store:
    """The store at ``url`` with these (non-secret) options, opened once per process.

    Stores are thread-safe, so every task run in the process shares one SDK client and its connection
    pool instead of building its own. A plain path is taken relative to the current folder at the
    first call. The store is never closed while the process runs: do not close it.
    """
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    return _open(url, json.dumps(storage_options or {}, sort_keys=True, default=str))


@functools.lru_cache(maxsize=32)
def _open(url: str, options: str) -> Store:
    return zarrcore.open_store(url, **json.loads(options))
