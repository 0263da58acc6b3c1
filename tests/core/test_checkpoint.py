"""Checkpoint: durable, atomic, batched records of finished chunks, on local disk and in any store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zarrcore
from tests.fixtures.instrumented import InstrumentedStore
from zarrcore.checkpoint import CheckpointError
from zarrcore.storage import LocalStore, MemoryStore
from zarrcore.storage.local import TMP_PREFIX


def saved(path: Path) -> set[tuple[int, ...]]:
    return {tuple(i) for i in json.loads(path.read_bytes())["completed"]}


def test_marks_survive_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "job.json"
    ckpt = zarrcore.Checkpoint(path, flush_every=2)
    assert ckpt.completed == set() and not path.exists()
    ckpt.mark((0, 1))
    ckpt.mark([2, np.int64(3)])
    assert saved(path) == {(0, 1), (2, 3)}
    again = zarrcore.Checkpoint(str(path))
    assert again.completed == {(0, 1), (2, 3)} and (2, 3) in again and len(again) == 2
    assert zarrcore.Checkpoint(path.as_uri()).completed == again.completed


def test_saves_are_batched_unless_asked(tmp_path: Path) -> None:
    store = InstrumentedStore(LocalStore(tmp_path))
    ckpt = zarrcore.Checkpoint(store, "job.json", flush_every=3, flush_interval=None)
    for i in range(7):
        ckpt.mark((i,))
    assert store.calls.get("put") == 2  # after marks 3 and 6
    assert saved(tmp_path / "job.json") == {(i,) for i in range(6)}
    ckpt.mark((3,))  # already recorded: nothing new to save
    ckpt.flush()
    ckpt.flush()
    assert store.calls["put"] == 3
    every = zarrcore.Checkpoint(store, "each.json", flush_every=1)
    for i in range(4):
        every.mark((i,))
    assert store.calls["put"] == 3 + 4


def test_flush_interval_saves_a_slow_trickle(tmp_path: Path) -> None:
    ckpt = zarrcore.Checkpoint(tmp_path / "job.json", flush_every=1000, flush_interval=0.0)
    ckpt.mark((5,))
    assert saved(tmp_path / "job.json") == {(5,)}


def test_marks_become_durable_once_the_interval_has_passed(tmp_path: Path) -> None:
    """With a positive ``flush_interval`` and no flush asked for, a second reader sees the first mark
    once the interval has passed (while marks keep arriving), never before."""
    interval = 0.3
    path = tmp_path / "job.json"
    started = time.monotonic()
    ckpt = zarrcore.Checkpoint(path, flush_every=10**6, flush_interval=interval)
    ckpt.mark((0,))
    deadline = started + 30
    seen: set[tuple[int, ...]] = set()
    i = 1
    while (0,) not in seen:  # poll from a second reader, with a deadline
        now = time.monotonic()
        assert now < deadline, "the first mark never became durable"
        seen = zarrcore.Checkpoint(path).completed if path.exists() else set()
        assert not seen or now - started >= interval, "saved before the interval had passed"
        ckpt.mark((i,))  # a slow trickle of marks (this thread): each checks whether a save is due
        i += 1
        time.sleep(0.005)
    assert seen <= ckpt.completed and len(seen) < i  # a save of the marks so far, not a flush per mark


def test_saved_records_only_grow_and_are_never_torn(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    ckpt = zarrcore.Checkpoint(path, flush_every=1)
    previous: set[tuple[int, ...]] = set()
    for i in range(20):
        ckpt.mark((i, i % 3))
        now = saved(path)  # always parses: the file is replaced whole
        assert previous < now
        previous = now
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_checkpoint_in_a_store_by_url() -> None:
    ckpt = zarrcore.Checkpoint("memory://ckpt-test/runs/job.json", flush_every=1)
    ckpt.mark((1, 2))
    store = zarrcore.open_store("memory://ckpt-test")
    assert json.loads(store.get("runs/job.json"))["completed"] == [[1, 2]]
    assert zarrcore.Checkpoint("memory://ckpt-test/runs/job.json").completed == {(1, 2)}
    assert ckpt.url == "memory://ckpt-test/runs/job.json"


def test_context_manager_flushes_and_clear_deletes(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    with zarrcore.Checkpoint(path) as ckpt:
        ckpt.mark_many([(0,), (1,)])
        assert not path.exists()
    assert saved(path) == {(0,), (1,)}
    ckpt.clear()
    assert not path.exists() and ckpt.completed == set()
    assert zarrcore.Checkpoint(path).completed == set()


@pytest.mark.parametrize(
    "content", [b"{not json", b"[1, 2]", b'{"format": "other"}', b'{"format": "zarrcore-checkpoint", "version": 9}',
                b'{"format": "zarrcore-checkpoint", "version": 1, "completed": [["x"]]}'],
)  # fmt: skip
def test_a_malformed_record_is_a_typed_error_and_is_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "job.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"job\.json"):
        zarrcore.Checkpoint(path)
    assert path.read_bytes() == content
    assert issubclass(CheckpointError, zarrcore.errors.ZarrcoreError)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("memory://only-a-name.json",), {}),
        ((MemoryStore(),), {}),
        ((MemoryStore(), "../escape.json"), {}),
        (("/tmp/x.json", "key.json"), {}),
        (("/tmp/x.json",), {"flush_every": 0}),
    ],
)
def test_bad_arguments_are_refused(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        zarrcore.Checkpoint(*args, **kwargs)


def test_write_stream_marks_only_finished_chunks(tmp_path: Path) -> None:
    arr = zarrcore.create(LocalStore(tmp_path / "a"), shape=(16, 16), chunks=(4, 4), dtype="int32")
    data = np.arange(256, dtype="int32").reshape(16, 16)
    data[:4] = 0  # fill-value chunks are finished too (deleted, not stored)
    wrapped = zarrcore.open_array(
        InstrumentedStore(arr.store, fail={arr.chunk_key((3, 3)): zarrcore.errors.AccessDenied("no")}), mode="r+"
    )
    ckpt = zarrcore.Checkpoint(tmp_path / "job.json")
    summary = wrapped.write_stream(((i, data[arr.chunk_region(i)]) for i in arr.chunk_indices()),
                                   checkpoint=ckpt, on_error="skip")  # fmt: skip
    assert [i for i, _ in summary.failed] == [(3, 3)]
    assert saved(tmp_path / "job.json") == ckpt.completed == set(arr.chunk_indices()) - {(3, 3)}


def test_a_checkpoint_on_s3(s3_server: Any, s3_bucket: str) -> None:
    store = s3_server.store(s3_bucket, "jobs")
    ckpt = zarrcore.Checkpoint(store, "ingest-1.json", flush_every=2)
    for i in range(5):
        ckpt.mark((i, 0))
    ckpt.flush()
    again = zarrcore.Checkpoint(s3_server.store(s3_bucket, "jobs"), "ingest-1.json")
    assert again.completed == {(i, 0) for i in range(5)}
    assert again.url == f"s3://{s3_bucket}/jobs/ingest-1.json"
    by_url = zarrcore.Checkpoint(f"s3://{s3_bucket}/jobs/ingest-1.json", storage_options=s3_server.options())
    assert by_url.completed == again.completed and by_url.url == again.url
