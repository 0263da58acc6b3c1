"""The shared thread pools used by multi-chunk slicing, and the loop that spreads chunks over them.

Two pools, because two kinds of store want different thread counts; a store says which it is in
:attr:`Store.io_kind <zarrcore.storage.Store.io_kind>`. Where a chunk costs CPU only (``"cpu"``:
memory, local disk without fsync: codecs, copies and page-cache writes, all of which release the GIL)
one thread per core is fastest, and more threads only add switching and memory. Where a chunk waits
on a network or a disk flush (``"latency"``), many requests must be in flight to hide the latency.

One knob per pool: :func:`set_cpu_concurrency` (env ``ZARRCORE_CPU_CONCURRENCY``, default the cores)
and :func:`set_io_concurrency` (env ``ZARRCORE_IO_CONCURRENCY``, default 16).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from zarrcore.storage.base import IOKind, Store

__all__ = [
    "cpu_concurrency", "io_concurrency", "row_batches", "run_all", "set_cpu_concurrency", "set_io_concurrency",
]  # fmt: skip

T = TypeVar("T")

_lock = threading.Lock()
_pools: dict[IOKind, ThreadPoolExecutor] = {}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_sizes: dict[IOKind, int] = {
    "latency": int(os.environ.get("ZARRCORE_IO_CONCURRENCY", "16")),
    "cpu": int(os.environ.get("ZARRCORE_CPU_CONCURRENCY", "0")) or _cores(),
}
#: Pool thread names: ``zarrcore-io-N`` and ``zarrcore-cpu-N``.
_NAMES: dict[IOKind, str] = {"latency": "zarrcore-io", "cpu": "zarrcore-cpu"}


def io_concurrency() -> int:
    """How many chunks slicing reads or writes at once on a store that waits (network, fsync)."""
    return _sizes["latency"]


def cpu_concurrency() -> int:
    """How many chunks slicing reads or writes at once on memory or local disk (default: the cores)."""
    return _sizes["cpu"]


def _resize(kind: IOKind, n: int) -> None:
    if n < 1:
        raise ValueError(f"concurrency must be >= 1, got {n}")
    with _lock:
        _sizes[kind] = n
        old = _pools.pop(kind, None)
    if old is not None:
        old.shutdown(wait=False)


def set_io_concurrency(n: int) -> None:
    """Set how many chunks slicing handles at once on stores that wait on a network or a disk flush
    (``io_kind == "latency"``: the cloud stores, local disk with fsync); that pool is rebuilt on next use."""
    _resize("latency", n)


def set_cpu_concurrency(n: int) -> None:
    """Set how many chunks slicing handles at once on stores where a chunk costs only CPU
    (``io_kind == "cpu"``: memory, local disk without fsync); that pool is rebuilt on next use."""
    _resize("cpu", n)


def _pool(kind: IOKind) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(kind)
        if pool is None:
            pool = _pools[kind] = ThreadPoolExecutor(max_workers=_sizes[kind], thread_name_prefix=_NAMES[kind])
        return pool


def row_batches(items: Sequence[T], row: Callable[[T], Hashable], workers: int) -> list[list[T]]:
    """Runs of consecutive ``items`` of one row (equal ``row(item)``), ordered so that runs taken
    one after the other belong to different rows. A row is cut into pieces only when there are too
    few rows for ``workers`` threads to get about four runs each."""
    rows: list[list[T]] = []
    last: Any = object()
    for item in items:
        key = row(item)
        if rows and key == last:
            rows[-1].append(item)
        else:
            rows.append([item])
            last = key
    if not rows:
        return []
    per_row = -(-4 * workers // len(rows))
    pieces = []
    for run in rows:
        size = -(-len(run) // min(per_row, len(run)))
        pieces.append([run[i : i + size] for i in range(0, len(run), size)])
    return [p[j] for j in range(max(map(len, pieces))) for p in pieces if j < len(p)]


def run_all(
    fn: Callable[[T], object],
    items: Iterable[T],
    store: Store,
    *,
    row: Callable[[T], Hashable] | None = None,
    cpu_workers: int | None = None,
    max_workers: int | None = None,
) -> None:
    """Call ``fn`` on every item, on the calling thread plus pool threads, as many in all as the
    concurrency that suits ``store``; re-raise the first error once every thread has stopped.

    Each thread pulls the next item from a shared iterator, so a chunk costs one ``next()`` rather
    than a future; after an error no new item is started. The calling thread works too, and helpers
    that never got a thread are cancelled, so a call made from inside a pool thread still finishes
    when the pool is busy.

    ``row`` names an item's folder (a chunk's index without its last dimension). On memory and local
    disk each thread then takes runs of one row (:func:`row_batches`): two threads creating files in
    one folder queue for that folder's lock, and fewer, longer runs mean fewer thread handoffs.
    ``cpu_workers`` lowers the number of threads (the calling one included) on memory and local
    disk, where a chunk costs only CPU; network stores always get their full concurrency, unless
    ``max_workers`` lowers it (on every kind of store).
    """
    kind = store.io_kind
    n = min(_sizes[kind], cpu_workers or _sizes[kind]) if kind == "cpu" else _sizes[kind]
    n = min(n, max_workers or n)
    if row is not None and kind == "cpu" and n > 1:
        _run(fn, row_batches(list(items), row, n), kind, n)
    else:
        _run(fn, [[item] for item in items], kind, n)


def _run(fn: Callable[[T], object], batches: list[list[T]], kind: IOKind, workers: int) -> None:
    if len(batches) <= 1 or workers <= 1:
        for batch in batches:
            for item in batch:
                fn(item)
        return
    it = iter(batches)
    failed = threading.Event()

    def drain() -> None:
        for batch in it:  # next() on a list iterator is atomic: each batch is taken once
            for item in batch:
                if failed.is_set():
                    return
                try:
                    fn(item)
                except BaseException:
                    failed.set()
                    raise

    pool = _pool(kind)
    helpers = [pool.submit(drain) for _ in range(min(len(batches), workers) - 1)]
    error: BaseException | None = None
    try:
        drain()
    except BaseException as exc:
        error = exc
    for future in helpers:
        # A helper still queued has nothing left to do: cancel it rather than wait for a free thread
        # (waiting could deadlock when every pool thread is itself inside run_all).
        if future.cancel():
            continue
        exc = future.exception()
        if error is None and exc is not None:
            error = exc
    if error is not None:
        raise error
