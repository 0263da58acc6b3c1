"""The array API after the renovation: metadata built once and created from, ranges read through the
store, stream ids carried by telemetry events, and write_stream's on_written hook."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zarrcore
from tests.fixtures.instrumented import InstrumentedStore
from zarrcore import telemetry
from zarrcore.errors import AccessDenied, ChunkError, MetadataError, NotFound, PreconditionFailed
from zarrcore.spec import build_array_metadata
from zarrcore.storage import LocalStore, MemoryStore
from zarrcore.storage.base import RangeRequest
from zarrcore.storage.ranges import COALESCE_GAP, COALESCE_MAX, coalesce

# ------------------------------------------------------------------------------------------ names


def test_names_follow_zarr_python_for_sharded_and_plain_arrays(tmp_path: Path) -> None:
    import zarr

    sharded = zarrcore.create(tmp_path / "s", shape=(100, 90), chunks=(10, 15), shards=(40, 30), dtype="u1")
    plain = zarrcore.create(tmp_path / "p", shape=(100, 90), chunks=(10, 15), dtype="u1")
    for ours in (sharded, plain):
        theirs = zarr.open_array(str(tmp_path / ("s" if ours is sharded else "p")), mode="r")
        assert (ours.chunks, ours.shards) == (theirs.chunks, theirs.shards)
        assert (ours.cdata_shape, ours.nchunks) == (theirs.cdata_shape, theirs.nchunks)
    # Chunk-level I/O addresses stored objects: shards when sharded.
    assert sharded.grid_shape == (3, 3) and sharded.nshards == 9 and sharded.nchunks == 10 * 6
    assert plain.grid_shape == plain.cdata_shape == (10, 6) and plain.nshards == plain.nchunks == 60
    assert sharded.read_chunk((0, 0)).shape == (40, 30)
    assert sharded.chunk_region((2, 2)) == (slice(80, 100), slice(60, 90))
    # One name per key: the metadata's key is relative, the array's is the store key.
    group = zarrcore.create_group(tmp_path / "g")
    child = group.create_array("x", shape=(4,), chunks=(2,), dtype="u1")
    assert child.metadata.encode_chunk_key((1,)) == "c/1" and child.chunk_key((1,)) == "x/c/1"
    assert not hasattr(child, "inner_chunks") and not hasattr(child.metadata, "chunk_key")


# -------------------------------------------------------------------------------- built metadata


def test_create_takes_metadata_built_once(tmp_path: Path) -> None:
    meta = build_array_metadata(shape=(6, 4), chunks=(2, 2), shards=(6, 4), dtype="i2", fill_value=-1,
                                attributes={"units": "m"})  # fmt: skip
    a = zarrcore.create(tmp_path / "a", metadata=meta)
    assert a.metadata == meta and a.chunks == (2, 2) and a.shards == (6, 4) and dict(a.attrs) == {"units": "m"}
    # The same metadata again attaches to the array written from it.
    assert zarrcore.create(tmp_path / "a", metadata=meta).metadata == meta
    group = zarrcore.create_group(tmp_path / "g")
    b = group.create_array("x/y", metadata=meta)
    assert b.metadata == meta and zarrcore.open_array(tmp_path / "g", path="x/y").shards == (6, 4)


def test_metadata_and_array_arguments_do_not_mix(tmp_path: Path) -> None:
    meta = build_array_metadata(shape=(4,), chunks=(2,), dtype="u1")
    with pytest.raises(MetadataError, match=r"either metadata= or the array arguments.*'chunks'"):
        zarrcore.create(tmp_path / "a", metadata=meta, chunks=(4,))
    with pytest.raises(MetadataError, match="'compressor'"):
        zarrcore.create(tmp_path / "a", metadata=meta, compressor=None)
    with pytest.raises(TypeError, match="needs dtype"):
        zarrcore.create(tmp_path / "a", shape=(4,), chunks=(2,))
    with pytest.raises(TypeError, match="ArrayMetadata"):
        zarrcore.create(tmp_path / "a", metadata={"shape": [4]})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected array arguments"):
        zarrcore.create_group(tmp_path / "g").create_array("x", shape=(4,), chunks=(2,), dtype="u1", chunk=2)
    assert not (tmp_path / "a").exists()


# ----------------------------------------------------------------------------------- byte ranges


def test_coalescing_merges_near_ranges_up_to_the_limit() -> None:
    r = RangeRequest
    runs = coalesce([r(10, 20), r(0, 5), r(20 + COALESCE_GAP + 1, 30 + COALESCE_GAP)])
    assert [(run.start, run.stop, run.members) for run in runs] == [
        (0, 20, (1, 0)), (20 + COALESCE_GAP + 1, 30 + COALESCE_GAP, (2,))
    ]
    big = [r(n << 20, (n + 1) << 20) for n in range(20)]
    assert [run.stop - run.start for run in coalesce(big)] == [COALESCE_MAX, 4 << 20]


def test_get_ranges_returns_each_range_in_the_order_asked(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    data = bytes(range(256)) * 64
    local.put("k", data)
    counted = InstrumentedStore(local)
    asked = [RangeRequest(300, 310), RangeRequest(0, 4), RangeRequest(16000, 16500)]
    got = counted.get_ranges("k", asked)
    assert [bytes(g) for g in got] == [data[300:310], data[0:4], data[16000:16384]]  # the last one is short
    assert [type(r) for _, r, _ in counted.gets] == [RangeRequest]  # one request for all three
    with pytest.raises(NotFound):
        counted.get_ranges("missing", asked)
    memory = MemoryStore()
    memory.put("k", data)
    _, version = memory.get_versioned("k")
    assert version is not None
    assert [bytes(g) for g in memory.get_ranges("k", asked[:1], version=version)] == [data[300:310]]
    memory.put("k", data[::-1])
    with pytest.raises(PreconditionFailed):
        memory.get_ranges("k", asked, version=version)


# ---------------------------------------------------------------------------------------- streams


def test_chunk_events_of_a_stream_carry_its_id(tmp_path: Path) -> None:
    arr = zarrcore.create(tmp_path, shape=(8, 8), chunks=(4, 4), dtype="u1")
    arr[...] = 1
    events: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    lock = threading.Lock()

    def record(event: tuple[str, ...], _: dict[str, Any], metadata: dict[str, Any]) -> None:
        with lock:
            events.append((event, metadata))

    handler = telemetry.attach(("zarrcore",), record)
    try:
        assert len(dict(arr.stream_chunks())) == 4
        arr[0, 0]  # outside any stream
    finally:
        telemetry.detach(handler)
    start = next(md for ev, md in events if ev == ("zarrcore", "stream", "start"))
    chunk_reads = [md for ev, md in events if ev[:3] == ("zarrcore", "chunk", "read")]
    assert [md.get("stream_id") for md in chunk_reads[:-2]] == [start["stream_id"]] * 8
    assert "stream_id" not in chunk_reads[-1] and telemetry.current_stream_id() is None


def test_on_written_hears_of_every_stored_chunk_in_the_callers_thread(tmp_path: Path) -> None:
    arr = zarrcore.create(tmp_path, shape=(8, 8), chunks=(4, 4), dtype="u1", codecs=[{"name": "bytes"}])
    caller = threading.get_ident()
    heard: dict[tuple[int, ...], str | None] = {}
    threads: set[int] = set()

    def on_written(index: tuple[int, ...], encoded: bytes | memoryview | None) -> None:
        threads.add(threading.get_ident())
        heard[index] = None if encoded is None else hashlib.sha256(encoded).hexdigest()

    grid = [(i, j) for i in range(2) for j in range(2)]
    chunks = [(index, np.full((4, 4), 0 if index == (1, 1) else 1 + sum(index), "u1")) for index in grid]
    summary = arr.write_stream(chunks, concurrency=3, on_written=on_written)
    assert summary.ok and summary.written == 3 and summary.skipped == 1 and threads == {caller}
    assert heard == {
        index: None if index == (1, 1) else hashlib.sha256(arr.store.get(arr.chunk_key(index))).hexdigest()
        for index, _ in chunks
    }


def test_on_written_is_not_told_of_failed_chunks(tmp_path: Path) -> None:
    arr = zarrcore.create(tmp_path, shape=(8, 8), chunks=(4, 4), dtype="u1")
    bad = (0, 1)
    store = InstrumentedStore(arr.store, fail={arr.chunk_key(bad): AccessDenied("no")})
    failing = zarrcore.open_array(store, mode="r+")
    heard: list[tuple[int, ...]] = []
    summary = failing.write_stream(
        (((i, j), np.ones((4, 4), "u1")) for i in range(2) for j in range(2)),
        on_error="skip", on_written=lambda index, _: heard.append(index),
    )
    assert [i for i, _ in summary.failed] == [bad] and sorted(heard) == [(0, 0), (1, 0), (1, 1)]
    with pytest.raises(ChunkError):
        failing.write_stream([(bad, np.ones((4, 4), "u1"))], on_written=lambda index, _: heard.append(index))
    assert bad not in heard
    with pytest.raises(TypeError, match="on_written"):
        arr.write_stream([], on_written=3)  # type: ignore[arg-type]
