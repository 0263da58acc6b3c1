"""The shared I/O thread pool used by multi-chunk slicing."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["io_pool", "set_io_concurrency", "io_concurrency"]

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_size = int(os.environ.get("ZARRCORE_IO_CONCURRENCY", "16"))


def io_concurrency() -> int:
    """How many chunks slicing reads or writes at once."""
    return _size


def set_io_concurrency(n: int) -> None:
    """Set the slicing concurrency (the pool is rebuilt on next use)."""
    global _pool, _size
    if n < 1:
        raise ValueError("concurrency must be >= 1")
    with _lock:
        old, _pool, _size = _pool, None, n
    if old is not None:
        old.shutdown(wait=False)


def io_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_size, thread_name_prefix="zarrcore-io")
        return _pool
