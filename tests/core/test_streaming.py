"""stream_chunks and write_stream on real stores: bounds, order, timeouts, error policies, filters,
checkpoints and resume after an exception or a SIGKILL."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zarrcore
from tests.fixtures.instrumented import InstrumentedStore, chunk_gets
from tests.fixtures.paths import REPO
from zarrcore import telemetry
from zarrcore.errors import AccessDenied, ChunkError, ReadOnlyError, SelectionError, TransientStoreError
from zarrcore.retry import RetryPolicy
from zarrcore.storage import LocalStore, Store


def stored_objects(store: Store) -> dict[str, bytes]:
    """Every object in a store, by key."""
    return {key: store.get(key) for key in sorted(store.list())}


def source_data(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype="float32")


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "data")


def make_array(store: Store, shape: tuple[int, ...] = (60, 50), chunks: tuple[int, ...] = (8, 8),
               fill: bool = True, **kw: Any) -> tuple[zarrcore.Array, np.ndarray]:  # fmt: skip
    """An array on ``store`` filled with random data (if ``fill``); returns it and its contents."""
    arr = zarrcore.create(store, shape=shape, chunks=chunks, dtype="float32", **kw)
    data = source_data(shape)
    if fill:
        arr.write_stream(((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices()), concurrency=4)
    return arr, data


def wrapped(arr: zarrcore.Array, **options: Any) -> tuple[zarrcore.Array, InstrumentedStore]:
    store = InstrumentedStore(arr.store, **options)
    return zarrcore.open_array(store, mode="r+", path=arr.path), store


# ------------------------------------------------------------------------------------------ reads


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_stream_yields_every_chunk_as_read_chunk_returns_it(local: LocalStore, zarr_format: int) -> None:
    arr, data = make_array(local, zarr_format=zarr_format)
    seen = {}
    for index, chunk in arr.stream_chunks(concurrency=3):
        assert index not in seen
        np.testing.assert_array_equal(chunk, arr.read_chunk(index))
        assert chunk.flags.writeable
        seen[index] = chunk
    assert set(seen) == set(arr.chunk_indices())
    out = np.empty_like(data)
    for index, chunk in seen.items():
        out[arr.chunk_region(index)] = chunk
    np.testing.assert_array_equal(out, data)


def test_in_flight_bound_holds_for_reads(local: LocalStore) -> None:
    arr, _ = make_array(local)
    arr, store = wrapped(arr, delay=0.005)
    n = sum(1 for _ in arr.stream_chunks(concurrency=4))
    assert n == arr.nchunks
    assert 1 < store.max_in_flight["get"] <= 4


def test_buffered_results_stay_bounded_with_a_slow_consumer(local: LocalStore) -> None:
    arr, _ = make_array(local)
    arr, store = wrapped(arr)
    concurrency = 4
    consumed = 0
    worst = 0

    def after_get() -> None:  # loads finished minus chunks the consumer has taken
        nonlocal worst
        with store._lock:
            worst = max(worst, chunk_gets(store) - store.in_flight["get"] - consumed)

    store.on_get_done = after_get
    stream = arr.stream_chunks(concurrency=concurrency)
    for _ in stream:
        consumed += 1
        time.sleep(0.002)
        if consumed == 1:
            time.sleep(0.1)  # backpressure: nothing beyond the window is requested while we dawdle
            assert chunk_gets(store) <= concurrency + 1
    assert consumed == arr.nchunks
    assert 0 < worst <= concurrency


def test_ordered_yields_in_c_order_and_unordered_as_completed(local: LocalStore) -> None:
    arr, _ = make_array(local)
    slow_first = {arr.chunk_key((0, 0)): 0.3}
    ordered_arr, _ = wrapped(arr, delays=slow_first)
    assert [i for i, _ in ordered_arr.stream_chunks(concurrency=4, ordered=True)] == list(arr.chunk_indices())
    unordered_arr, _ = wrapped(arr, delays=slow_first)
    got = [i for i, _ in unordered_arr.stream_chunks(concurrency=4)]
    assert sorted(got) == list(arr.chunk_indices())
    assert got[0] != (0, 0)  # the slow chunk did not hold back the others


@pytest.mark.parametrize("ordered", [False, True])
def test_a_stalled_chunk_times_out_and_the_stream_finishes_the_rest(local: LocalStore, ordered: bool) -> None:
    arr, data = make_array(local)
    stalled = (2, 3)
    arr, store = wrapped(arr, stall={arr.chunk_key(stalled)})
    told: list[tuple[tuple[int, ...], BaseException]] = []
    try:
        got = {}
        stream = arr.stream_chunks(concurrency=2, ordered=ordered, timeout=0.3,
                                   on_error=lambda i, e: told.append((i, e)))  # fmt: skip
        for index, chunk in stream:
            got[index] = chunk
        assert store.in_flight["get"] == 1  # the stalled request is still stuck, yet the stream is done
    finally:
        store.release.set()
    assert [i for i, _ in told] == [stalled]
    err = told[0][1]
    assert isinstance(err, ChunkError) and err.index == stalled and isinstance(err.cause, TimeoutError)
    assert err.key == arr.chunk_key(stalled)
    assert set(got) == set(arr.chunk_indices()) - {stalled}
    for index, chunk in got.items():
        np.testing.assert_array_equal(chunk, data[arr.chunk_region(index)])
    assert stream.summary.failed == [(stalled, f"TimeoutError: {err.cause}")]


def test_a_stalled_chunk_raises_a_typed_timeout_by_default(local: LocalStore) -> None:
    arr, _ = make_array(local)
    arr, store = wrapped(arr, stall={arr.chunk_key((0, 1))})
    try:
        with pytest.raises(ChunkError) as info:
            for _ in arr.stream_chunks(concurrency=2, timeout=0.2, ordered=True):
                pass
    finally:
        store.release.set()
    assert info.value.index == (0, 1) and isinstance(info.value.cause, TimeoutError)


def test_on_error_raise_names_the_chunk_and_stops_submitting(local: LocalStore) -> None:
    arr, _ = make_array(local)
    bad = (1, 0)
    arr, store = wrapped(arr, fail={arr.chunk_key(bad): AccessDenied("no", key="k")})
    events: list[tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = []
    hid = telemetry.attach(("zarrcore", "stream"), lambda e, m, md: events.append((e, m, md)))
    try:
        with pytest.raises(ChunkError) as info:
            for _ in arr.stream_chunks(concurrency=3, ordered=True):
                pass
    finally:
        telemetry.detach(hid)
    assert info.value.index == bad and isinstance(info.value.cause, AccessDenied)
    assert info.value.key == arr.chunk_key(bad)
    position = list(arr.chunk_indices()).index(bad)
    time.sleep(0.05)  # let workers that were already running finish
    assert chunk_gets(store) <= position + 1 + 3  # nothing submitted after the failure was seen
    stop = [x for x in events if x[0][-1] == "stop"]
    assert len(stop) == 1 and stop[0][1]["failed"] == 1 and isinstance(stop[0][2]["error"], ChunkError)


def test_on_error_skip_and_callable_go_on(local: LocalStore) -> None:
    arr, _ = make_array(local)
    bad = {(0, 0), (3, 4)}
    arr, _ = wrapped(arr, fail={arr.chunk_key(i): AccessDenied("no") for i in bad})
    stream = arr.stream_chunks(on_error="skip")
    assert {i for i, _ in stream} == set(arr.chunk_indices()) - bad
    assert {i for i, _ in stream.summary.failed} == bad
    told: list[Any] = []
    got = {i for i, _ in arr.stream_chunks(on_error=lambda i, e: told.append((i, type(e.cause))))}
    assert got == set(arr.chunk_indices()) - bad
    assert sorted(told) == sorted((i, AccessDenied) for i in bad)


def test_a_corrupt_chunk_is_a_chunk_error(local: LocalStore) -> None:
    arr, _ = make_array(local)
    local.put(arr.chunk_key((1, 1)), b"not zstd")
    with pytest.raises(ChunkError) as info:
        list(arr.stream_chunks())
    assert info.value.index == (1, 1)


def test_filter_skips_indices_before_any_io(local: LocalStore) -> None:
    arr, _ = make_array(local)
    arr, store = wrapped(arr)
    before = dict(store.calls)
    stream = arr.stream_chunks(filter=lambda i: i[0] == 2)
    got = [i for i, _ in stream]
    assert sorted(got) == [i for i in arr.chunk_indices() if i[0] == 2]
    calls = {op: n - before.get(op, 0) for op, n in store.calls.items() if n - before.get(op, 0)}
    assert calls == {"get": len(got)}  # one GET per kept chunk; no list, size or exists calls
    assert stream.summary.filtered == arr.nchunks - len(got) == stream.summary.skipped


def test_missing_chunks_are_skipped_or_yielded_as_fill(local: LocalStore) -> None:
    arr = zarrcore.create(local, shape=(20, 13), chunks=(8, 5), dtype="int16", fill_value=-7)
    arr[0:8, 0:5] = 1
    arr[16:20, 10:13] = 2  # the clipped corner chunk
    stored = {(0, 0), (2, 2)}
    stream = arr.stream_chunks()
    assert {i for i, _ in stream} == stored
    assert stream.summary.missing == stream.summary.skipped == arr.nchunks - 2
    everything = dict(arr.stream_chunks(include_missing=True, ordered=True))
    assert list(everything) == list(arr.chunk_indices())
    for index, chunk in everything.items():
        np.testing.assert_array_equal(chunk, arr.read_chunk(index))
    assert everything[(2, 2)].shape == (4, 3)
    assert (everything[(1, 1)] == -7).all()


def test_retry_policy_retries_transient_chunk_errors(local: LocalStore) -> None:
    arr, data = make_array(local)
    flaky = arr.chunk_key((0, 2))
    retrying, store = wrapped(arr, fail={flaky: TransientStoreError("503", key=flaky)}, fail_times=2)
    got = dict(retrying.stream_chunks(retry=RetryPolicy(attempts=3, base_delay=0.0)))
    np.testing.assert_array_equal(got[(0, 2)], data[arr.chunk_region((0, 2))])
    assert store.attempts[flaky] == 3  # two failures, then success
    no_retry, _ = wrapped(arr, fail={flaky: TransientStoreError("503", key=flaky)}, fail_times=2)
    with pytest.raises(ChunkError) as info:
        list(no_retry.stream_chunks())
    assert isinstance(info.value.cause, TransientStoreError)


@pytest.mark.parametrize(
    "options", [{"concurrency": 0}, {"concurrency": 2.5}, {"timeout": 0}, {"timeout": -1}, {"on_error": "ignore"}]
)
def test_bad_stream_options_are_refused_before_any_io(local: LocalStore, options: dict[str, Any]) -> None:
    arr, _ = make_array(local)
    arr, store = wrapped(arr)
    before = dict(store.calls)
    with pytest.raises(ValueError):
        arr.stream_chunks(**options)
    with pytest.raises(ValueError):
        arr.write_stream([((0, 0), np.zeros((8, 8), "float32"))], **options)
    assert store.calls == before


def test_closing_a_stream_early_stops_its_workers(local: LocalStore) -> None:
    arr, _ = make_array(local)
    arr, store = wrapped(arr, delay=0.01)
    with arr.stream_chunks(concurrency=3) as stream:
        next(stream)
    time.sleep(0.1)
    assert chunk_gets(store) <= 1 + 3
    assert not [t for t in threading.enumerate() if t.name.startswith("zarrcore-stream")]


# ----------------------------------------------------------------------------------------- writes


def test_write_stream_bounds_puts_and_pulls_the_source_lazily(local: LocalStore) -> None:
    arr, data = make_array(local, fill=False)
    arr, store = wrapped(arr, delay=0.005)
    concurrency = 3
    pulled = 0
    worst = 0

    def source() -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        nonlocal pulled, worst
        for index in arr.chunk_indices():
            pulled += 1
            with store._lock:
                done = len(store.keys["put"]) - store.in_flight["put"]
                worst = max(worst, pulled - done)
            yield index, data[arr.chunk_region(index)]

    summary = arr.write_stream(source(), concurrency=concurrency)
    assert summary.written == arr.nchunks and summary.ok
    assert 1 < store.max_in_flight["put"] <= concurrency
    assert worst <= concurrency + 1  # the item being pulled plus at most `concurrency` pending
    np.testing.assert_array_equal(arr[...], data)


def test_write_summary_counts_written_fill_and_bytes(local: LocalStore) -> None:
    arr, data = make_array(local, fill=False)
    data[:16] = 0  # the first two chunk rows hold only the fill value
    summary = arr.write_stream((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices())
    fill_chunks = sum(1 for i in arr.chunk_indices() if i[0] < 2)
    assert summary.skipped == fill_chunks
    assert summary.written == arr.nchunks - fill_chunks == arr.nshards_initialized
    assert summary.bytes == sum(local.size(arr.chunk_key(i)) for i in arr.chunk_indices() if i[0] >= 2)
    assert summary.last_index == list(arr.chunk_indices())[-1]
    assert summary.failed == [] and summary.ok


def test_checkpoint_callable_sees_monotonic_progress(local: LocalStore) -> None:
    arr, data = make_array(local, fill=False)
    arr, _ = wrapped(arr, delays={arr.chunk_key((0, 0)): 0.1})  # the first chunk finishes late
    seen: list[dict[str, Any]] = []
    order = list(arr.chunk_indices())
    arr.write_stream(((i, data[arr.chunk_region(i)]) for i in order), concurrency=4, checkpoint=seen.append)
    assert len(seen) == arr.nchunks
    for before, after in itertools.pairwise(seen):
        assert after["written"] >= before["written"] and after["failed"] >= before["failed"]
        pos = [order.index(x["last_index"]) if x["last_index"] is not None else -1 for x in (before, after)]
        assert pos[1] >= pos[0]
    assert seen[0]["last_index"] is None  # (0, 0) was not done yet, so nothing is contiguous
    assert seen[-1]["last_index"] == order[-1] and seen[-1]["written"] == arr.nchunks


def test_a_failed_put_never_touches_chunks_already_written(local: LocalStore, tmp_path: Path) -> None:
    arr, data = make_array(local, fill=False)
    reference, _ = make_array(LocalStore(tmp_path / "reference"))
    bad = (4, 2)
    arr, _ = wrapped(arr, fail={arr.chunk_key(bad): AccessDenied("denied", key=arr.chunk_key(bad))})
    with pytest.raises(ChunkError) as info:
        arr.write_stream(((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices()), concurrency=4)
    assert info.value.index == bad
    written = stored_objects(local)
    expected = stored_objects(reference.store)
    assert arr.chunk_key(bad) not in written
    assert all(written[key] == expected[key] for key in written)  # every object present is whole and right
    assert len(written) < len(expected)  # it stopped early


def test_write_stream_skip_policy_lists_failures(local: LocalStore) -> None:
    arr, data = make_array(local, fill=False)
    bad = {(0, 1), (6, 6)}
    arr, _ = wrapped(arr, fail={arr.chunk_key(i): AccessDenied("denied") for i in bad})
    summary = arr.write_stream(((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices()), on_error="skip")
    assert {i for i, _ in summary.failed} == bad and not summary.ok
    assert summary.written == arr.nchunks - len(bad)
    assert all(reason.startswith("AccessDenied") for _, reason in summary.failed)


def test_bad_chunk_data_is_a_typed_error_and_writes_nothing_for_it(local: LocalStore) -> None:
    arr, _ = make_array(local, fill=False)
    with pytest.raises(ChunkError) as info:
        arr.write_stream([((1, 1), np.ones((3, 3), "float32"))])
    assert info.value.index == (1, 1) and isinstance(info.value.cause, SelectionError)
    with pytest.raises(ChunkError) as info:
        arr.write_stream([((99, 0), np.ones((8, 8), "float32"))])
    assert isinstance(info.value.cause, SelectionError)
    assert arr.nshards_initialized == 0


def test_write_stream_on_a_read_only_array_writes_nothing(local: LocalStore) -> None:
    make_array(local)
    before = stored_objects(local)
    ro = zarrcore.open_array(local, mode="r")
    with pytest.raises(ReadOnlyError):
        ro.write_stream([((0, 0), np.zeros((8, 8), "float32"))])
    assert stored_objects(local) == before


def test_retry_policy_retries_transient_put_errors(local: LocalStore) -> None:
    arr, data = make_array(local, fill=False)
    key = arr.chunk_key((2, 2))
    arr, store = wrapped(arr, fail={key: TransientStoreError("503", key=key)}, fail_times=2)
    summary = arr.write_stream(((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices()),
                               retry=RetryPolicy(attempts=3, base_delay=0.0))  # fmt: skip
    assert summary.ok and store.attempts[key] == 3
    np.testing.assert_array_equal(arr[...], data)


# ------------------------------------------------------------------------------------------ resume


def count_chunk_writes(fn: Callable[[], Any]) -> list[tuple[int, ...]]:
    """The chunk indices written (telemetry write stops) while ``fn`` runs."""
    written: list[tuple[int, ...]] = []
    lock = threading.Lock()

    def on_stop(event: Any, measurements: Any, metadata: dict[str, Any]) -> None:
        if metadata.get("stored"):
            with lock:
                written.append(metadata["index"])

    hid = telemetry.attach(("zarrcore", "chunk", "write", "stop"), on_stop)
    try:
        fn()
    finally:
        telemetry.detach(hid)
    return written


def test_resume_after_an_exception_gives_a_byte_identical_array(tmp_path: Path) -> None:
    reference, data = make_array(LocalStore(tmp_path / "reference"))
    store = LocalStore(tmp_path / "data")
    arr = zarrcore.create(store, shape=data.shape, chunks=(8, 8), dtype="float32")
    checkpoint = zarrcore.Checkpoint(tmp_path / "job.ckpt.json")
    concurrency = 4

    def interrupted() -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        for n, index in enumerate(arr.chunk_indices()):
            if n == 25:
                raise KeyboardInterrupt("operator pressed ^C")
            yield index, data[arr.chunk_region(index)]

    with pytest.raises(KeyboardInterrupt):
        arr.write_stream(interrupted(), concurrency=concurrency, checkpoint=checkpoint)
    first_run = {i for i in arr.chunk_indices() if store.exists(arr.chunk_key(i))}
    # Chunks in flight at the interruption were finished and recorded (flushed on the way out); ones
    # not yet started were dropped.
    assert zarrcore.Checkpoint(tmp_path / "job.ckpt.json").completed == first_run
    assert 25 - concurrency <= len(first_run) <= 25

    resumed = zarrcore.Checkpoint(tmp_path / "job.ckpt.json")
    rewrites = count_chunk_writes(
        lambda: arr.write_stream(
            ((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices() if i not in resumed.completed),
            checkpoint=resumed,
        )
    )
    assert len(set(rewrites) & first_run) <= concurrency  # here none: in-flight chunks were recorded
    assert len(rewrites) == arr.nchunks - len(first_run)
    assert stored_objects(store) == stored_objects(reference.store)
    assert resumed.completed == set(arr.chunk_indices())


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import zarrcore
    from zarrcore.storage import LocalStore

    class SlowStore(LocalStore):
        def put(self, key, data, *, mode="overwrite"):
            time.sleep(0.05)
            super().put(key, data, mode=mode)

    root, ckpt = sys.argv[1], sys.argv[2]
    arr = zarrcore.open_array(SlowStore(root), mode="r+")
    data = np.random.default_rng(0).random(arr.shape, dtype="float32")
    checkpoint = zarrcore.Checkpoint(ckpt, flush_every=1)
    arr.write_stream(
        ((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices() if i not in checkpoint.completed),
        concurrency=int(sys.argv[3]),
        checkpoint=checkpoint,
    )
    print("finished")
    """
)


def test_resume_after_sigkill_gives_a_byte_identical_array(tmp_path: Path) -> None:
    reference, data = make_array(LocalStore(tmp_path / "reference"))
    root = tmp_path / "data"
    arr = zarrcore.create(LocalStore(root), shape=data.shape, chunks=(8, 8), dtype="float32")
    ckpt = tmp_path / "job.ckpt.json"
    concurrency = 4
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root), str(ckpt), str(concurrency)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and len(json.loads(ckpt.read_bytes())["completed"]) >= 12:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    store = LocalStore(root)
    killed_run = {i for i in arr.chunk_indices() if store.exists(arr.chunk_key(i))}
    checkpoint = zarrcore.Checkpoint(ckpt)
    assert checkpoint.completed <= killed_run < set(arr.chunk_indices())
    rewrites = count_chunk_writes(
        lambda: arr.write_stream(
            ((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices() if i not in checkpoint.completed),
            checkpoint=checkpoint,
            concurrency=concurrency,
        )
    )
    assert len(set(rewrites) & killed_run) <= concurrency  # only chunks in flight at the kill are redone
    assert stored_objects(store) == stored_objects(reference.store)
    assert zarrcore.Checkpoint(ckpt).completed == set(arr.chunk_indices())


def test_read_stream_resumes_with_a_checkpoint_filter(local: LocalStore, tmp_path: Path) -> None:
    arr, data = make_array(local)
    checkpoint = zarrcore.Checkpoint(tmp_path / "verify.json", flush_every=5)
    for n, (index, chunk) in enumerate(arr.stream_chunks(ordered=True)):
        if n == 10:
            break  # interrupted
        np.testing.assert_array_equal(chunk, data[arr.chunk_region(index)])
        checkpoint.mark(index)
    checkpoint.flush()
    resumed = zarrcore.Checkpoint(tmp_path / "verify.json")
    arr2, store = wrapped(arr)
    rest = [i for i, _ in arr2.stream_chunks(filter=lambda i: i not in resumed.completed)]
    assert len(resumed.completed) == 10 and chunk_gets(store) == len(rest) == arr.nchunks - 10
    assert set(rest) | resumed.completed == set(arr.chunk_indices())


# -------------------------------------------------------------------------- S3 through a fault proxy

S3_FAULTS = {"503": 0.08, "reset": 0.05, "stall": 0.05}
S3_RETRY = RetryPolicy(attempts=6, base_delay=0.005, max_delay=0.05, deadline=30)


def s3_through_proxy(
    s3_server: Any, fault_proxy: Any, bucket: str, *, read_timeout: float = 0.3, retry: RetryPolicy = S3_RETRY,
    **proxy: Any,
) -> tuple[Store, Any]:
    """An S3Store on ``bucket/root`` whose requests pass through a fault proxy."""
    proxy_ = fault_proxy(s3_server.endpoint_url, **proxy)
    store = s3_server.store(bucket, "root", endpoint_url=proxy_.url, read_timeout=read_timeout,
                            connect_timeout=2, retry=retry)  # fmt: skip
    return store, proxy_


def test_s3_streams_stay_bounded_and_byte_identical_under_faults(
    s3_server: Any, s3_bucket: str, fault_proxy: Any, tmp_path: Path
) -> None:
    reference, data = make_array(LocalStore(tmp_path / "reference"))
    store, proxy = s3_through_proxy(s3_server, fault_proxy, s3_bucket, faults=S3_FAULTS, seed=7,
                                    stall_seconds=1.0, max_consecutive=3)  # fmt: skip
    counted = InstrumentedStore(store)
    arr = zarrcore.create(counted, shape=data.shape, chunks=(8, 8), dtype="float32")
    summary = arr.write_stream(((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices()), concurrency=6)
    assert summary.written == arr.nchunks and summary.ok
    assert counted.max_in_flight["put"] <= 6
    direct = s3_server.store(s3_bucket, "root")
    assert stored_objects(direct) == stored_objects(reference.store)

    out = np.empty_like(data)
    order = []
    for index, chunk in arr.stream_chunks(concurrency=6, ordered=True, timeout=30):
        out[arr.chunk_region(index)] = chunk
        order.append(index)
    assert order == list(arr.chunk_indices())
    np.testing.assert_array_equal(out, data)
    assert counted.max_in_flight["get"] <= 6
    assert proxy.injected > 0 and {"503", "reset", "stall"} <= set(proxy.faults)


def test_s3_write_interrupted_then_resumed_with_a_checkpoint_in_s3(
    s3_server: Any, s3_bucket: str, fault_proxy: Any, tmp_path: Path
) -> None:
    reference, data = make_array(LocalStore(tmp_path / "reference"))
    store, _ = s3_through_proxy(s3_server, fault_proxy, s3_bucket, faults={"503": 0.1, "reset": 0.05}, seed=3)
    arr = zarrcore.create(store, shape=data.shape, chunks=(8, 8), dtype="float32")
    checkpoint = zarrcore.Checkpoint(s3_server.store(s3_bucket, "jobs"), "ingest.json", flush_every=8)
    concurrency = 4

    def interrupted() -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        for n, index in enumerate(arr.chunk_indices()):
            if n == 30:
                raise RuntimeError("source went away")
            yield index, data[arr.chunk_region(index)]

    with pytest.raises(RuntimeError, match="source went away"):
        arr.write_stream(interrupted(), concurrency=concurrency, checkpoint=checkpoint)
    direct = s3_server.store(s3_bucket, "root")
    first_run = {i for i in arr.chunk_indices() if direct.exists(arr.chunk_key(i))}

    resumed = zarrcore.Checkpoint(s3_server.store(s3_bucket, "jobs"), "ingest.json")
    assert resumed.completed == first_run
    rewrites = count_chunk_writes(
        lambda: arr.write_stream(
            ((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices() if i not in resumed.completed),
            checkpoint=resumed,
            concurrency=concurrency,
        )
    )
    assert len(set(rewrites) & first_run) <= concurrency
    assert stored_objects(direct) == stored_objects(reference.store)


def test_s3_stalled_requests_time_out_in_the_stream_or_in_the_store(
    s3_server: Any, s3_bucket: str, fault_proxy: Any, tmp_path: Path
) -> None:
    source, data = make_array(s3_server.store(s3_bucket, "root"))
    # The store would wait 5 s and not retry: only the stream's own timeout ends a stall.
    store, proxy = s3_through_proxy(s3_server, fault_proxy, s3_bucket, read_timeout=5.0, retry=RetryPolicy(attempts=1),
                                    faults={"stall": 0.15}, seed=11, stall_seconds=3.0)  # fmt: skip
    arr = zarrcore.Array(store, "", source.metadata)
    failed: dict[tuple[int, ...], BaseException] = {}
    # 1.5 s: well below the 3 s stall, and well above what a request takes on a loaded 2-core machine.
    got = dict(arr.stream_chunks(concurrency=4, timeout=1.5, on_error=lambda i, e: failed.setdefault(i, e)))
    stalled = {p.path for p in proxy.seen if p.fault == "stall"}
    assert failed and {f"/{s3_bucket}/root/{arr.chunk_key(i)}" for i in failed} == stalled
    assert all(isinstance(e.cause, TimeoutError) for e in failed.values())
    assert set(got) | set(failed) == set(arr.chunk_indices())
    for index, chunk in got.items():
        np.testing.assert_array_equal(chunk, data[arr.chunk_region(index)])

    # With a store read timeout below the stall and retries, the store recovers on its own.
    store, proxy = s3_through_proxy(s3_server, fault_proxy, s3_bucket, read_timeout=0.3,
                                    faults={"stall": 0.15}, seed=11, stall_seconds=3.0)  # fmt: skip
    arr = zarrcore.Array(store, "", source.metadata)
    stream = arr.stream_chunks(concurrency=4, timeout=30)
    assert len(dict(stream)) == arr.nchunks and stream.summary.failed == []
    assert proxy.faults["stall"] > 0


def test_a_stalled_write_times_out_and_the_others_are_written(local: LocalStore) -> None:
    arr, data = make_array(local, fill=False)
    stalled = (3, 3)
    arr, store = wrapped(arr, stall={arr.chunk_key(stalled)})
    try:
        summary = arr.write_stream(((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices()),
                                   concurrency=3, timeout=0.3, on_error="skip")  # fmt: skip
    finally:
        store.release.set()
    assert [i for i, _ in summary.failed] == [stalled] and summary.failed[0][1].startswith("TimeoutError")
    assert summary.written == arr.nchunks - 1


def test_concurrency_for_shares_the_cores_on_local_disk_and_keeps_requests_on_object_stores(tmp_path, s3_store):
    from zarrcore.pool import cpu_concurrency, set_cpu_concurrency
    from zarrcore.storage import LocalStore
    from zarrcore.streams import concurrency_for

    before = cpu_concurrency()
    set_cpu_concurrency(4)
    try:
        local = LocalStore(tmp_path)
        assert [concurrency_for(local, 8, streams=n) for n in (1, 2, 3, 4, 16)] == [4, 2, 2, 1, 1]
        assert concurrency_for(local, 2) == 2  # never more than asked
        assert concurrency_for(LocalStore(tmp_path, fsync=True), 8, streams=16) == 8  # a flush waits: latency
        assert concurrency_for(s3_store, 8, streams=16) == 8
        with pytest.raises(ValueError):
            concurrency_for(local, 0)
    finally:
        set_cpu_concurrency(before)
