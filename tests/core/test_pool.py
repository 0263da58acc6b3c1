"""The loop that spreads chunks over threads: every item once, bounded threads, errors stop new work,
nested calls from pool threads finish, and each kind of store gets its pool."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import zarrcore
from zarrcore import pool as _pool
from zarrcore.storage.base import Store
from zarrcore.storage.local import LocalStore
from zarrcore.storage.memory import MemoryStore


@pytest.fixture
def cpu_threads() -> Iterator[int]:
    """Two threads for memory and local stores during the test, whatever the machine has."""
    old = _pool.cpu_concurrency()
    _pool.set_cpu_concurrency(2)
    yield 2
    _pool.set_cpu_concurrency(old)


def test_every_item_runs_once_on_bounded_threads(cpu_threads: int) -> None:
    seen: list[int] = []
    threads: set[int] = set()
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            seen.append(i)
            threads.add(threading.get_ident())

    _pool.run_all(work, range(500), MemoryStore())
    assert sorted(seen) == list(range(500))
    assert 1 <= len(threads) <= cpu_threads


def test_an_error_stops_new_items_and_is_raised_after_all_threads_stop(cpu_threads: int) -> None:
    started: list[int] = []
    running = 0
    lock = threading.Lock()

    def work(i: int) -> None:
        nonlocal running
        with lock:
            started.append(i)
            running += 1
        try:
            if i == 3:
                raise ValueError("chunk 3 is bad")
            time.sleep(0.001)
        finally:
            with lock:
                running -= 1

    with pytest.raises(ValueError, match="chunk 3 is bad"):
        _pool.run_all(work, range(1000), MemoryStore())
    assert running == 0  # nothing still running once the error reaches the caller
    assert len(started) < 50  # no new items after the error (a few were already taken)


def test_nested_calls_from_busy_pool_threads_finish(cpu_threads: int) -> None:
    store = MemoryStore()
    total = 0
    lock = threading.Lock()

    def inner(_: int) -> None:
        nonlocal total
        with lock:
            total += 1

    def outer(_: int) -> None:
        _pool.run_all(inner, range(20), store)

    # Two callers at once keep every pool thread inside an outer call: inner helpers cannot get a
    # thread, so they must be cancelled rather than waited for.
    callers = [threading.Thread(target=_pool.run_all, args=(outer, range(10), store)) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(30)
    assert not any(t.is_alive() for t in callers)
    assert total == 2 * 10 * 20


def _pool_threads(store: Store) -> set[str]:
    """The names of the pool threads ``run_all`` used on ``store``."""
    names: set[str] = set()
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=10)

    def work(i: int) -> None:
        with lock:
            names.add(threading.current_thread().name.rsplit("_", 1)[0])
        if i < 2:
            barrier.wait()  # two items at once: a pool thread is surely used

    _pool.run_all(work, range(20), store)
    return names - {threading.current_thread().name}


def test_each_store_kind_gets_its_pool(tmp_path: Path, cpu_threads: int) -> None:
    """The store says what its I/O costs (``io_kind``); slicing picks the pool from that alone."""
    assert (MemoryStore().io_kind, LocalStore(tmp_path).io_kind) == ("cpu", "cpu")
    assert LocalStore(tmp_path, fsync=True).io_kind == "latency"
    assert _pool_threads(MemoryStore()) == {"zarrcore-cpu"}
    assert _pool_threads(LocalStore(tmp_path)) == {"zarrcore-cpu"}
    assert _pool_threads(LocalStore(tmp_path, fsync=True)) == {"zarrcore-io"}

    class Waiting(MemoryStore):
        io_kind = "latency"  # a store of any class declares its kind

    assert _pool_threads(Waiting()) == {"zarrcore-io"}


def test_each_pool_has_its_own_knob(cpu_threads: int) -> None:
    old_io = _pool.io_concurrency()
    _pool.set_io_concurrency(5)
    try:
        assert (_pool.io_concurrency(), _pool.cpu_concurrency()) == (5, cpu_threads)
    finally:
        _pool.set_io_concurrency(old_io)
    _pool.set_cpu_concurrency(3)
    assert (_pool.io_concurrency(), _pool.cpu_concurrency()) == (old_io, 3)


def test_concurrency_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        _pool.set_io_concurrency(0)
    with pytest.raises(ValueError):
        _pool.set_cpu_concurrency(0)


def test_slicing_a_local_array_is_exact_on_the_cpu_pool(tmp_path: Path, cpu_threads: int) -> None:
    data = np.arange(300 * 200, dtype="float32").reshape(300, 200)
    a = zarrcore.create(str(tmp_path / "a.zarr"), shape=data.shape, chunks=(32, 32), dtype="float32")
    a[...] = data
    np.testing.assert_array_equal(a[...], data)
    np.testing.assert_array_equal(a[17:250:3, 5:190], data[17:250:3, 5:190])


def test_row_batches_keep_rows_together_and_interleave_them() -> None:
    items = [(r, c) for r in range(6) for c in range(10)]
    batches = _pool.row_batches(items, lambda i: i[0], workers=1)
    assert sorted(i for b in batches for i in b) == items  # every item once
    assert all(len({r for r, _ in b}) == 1 for b in batches)  # a batch is one row
    assert [b[0][0] for b in batches] == list(range(6))  # enough rows: one batch per row
    few = _pool.row_batches(items[:20], lambda i: i[0], workers=2)  # 2 rows, 2 threads: rows are cut
    assert sorted(i for b in few for i in b) == items[:20]
    assert len(few) == 8 and all(len({r for r, _ in b}) == 1 for b in few)
    assert all(a[0][0] != b[0][0] for a, b in itertools.pairwise(few))  # neighbours differ in row
    assert _pool.row_batches([], lambda i: i, workers=2) == []


def test_rows_spread_over_threads_on_local_disk(tmp_path: Path, cpu_threads: int) -> None:
    """Slicing a local array runs whole rows of chunks per thread, and writes and reads every chunk."""
    a = zarrcore.create(str(tmp_path / "a.zarr"), shape=(40, 50), chunks=(4, 5), dtype="int32", fill_value=0)
    data = np.arange(2000, dtype="int32").reshape(40, 50) + 1
    rows: dict[int, set[int]] = {}
    lock = threading.Lock()
    put = a.store.put

    def watched(key: str, value: bytes, **kw: object) -> None:
        with lock:
            rows.setdefault(int(key.split("/")[-2]), set()).add(threading.get_ident())
        put(key, value, **kw)  # type: ignore[arg-type]

    a.store.put = watched  # type: ignore[method-assign]
    a[...] = data
    assert sorted(rows) == list(range(10)) and all(len(t) == 1 for t in rows.values())
    assert np.array_equal(a[...], data)
    assert np.array_equal(a[3:37, 7:44], data[3:37, 7:44])


def test_workers_caps_the_threads(cpu_threads: int) -> None:
    threads: set[int] = set()
    _pool.run_all(lambda i: threads.add(threading.get_ident()), range(200), MemoryStore(), cpu_workers=1)
    assert threads == {threading.get_ident()}


def test_cpu_workers_leave_network_stores_their_concurrency(tmp_path: Path) -> None:
    """A store that waits on a network (here: local disk with fsync, which uses the same pool) keeps
    many requests in flight even for chunks light enough to decode on one thread."""
    store = LocalStore(tmp_path, fsync=True)
    threads: set[int] = set()
    lock = threading.Lock()
    barrier = threading.Barrier(3, timeout=10)

    def work(i: int) -> None:
        with lock:
            threads.add(threading.get_ident())
        if i < 3:
            barrier.wait()  # three items at once: only possible on three threads

    _pool.run_all(work, range(50), store, cpu_workers=1)
    assert len(threads) >= 3
