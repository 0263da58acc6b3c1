"""The ingest, verify and copy flows on the local store, against a real Prefect API: what lands reads
back exactly in zarr-python, a rerun writes nothing (every batch Cached), a changed region rewrites only
its batches, bad parameters fail before any write, and verify catches what does not match."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import crc32c
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

import zarrcore
from flows.cli import main as zarrflow
from flows.copy import copy_array
from flows.ingest import ingest
from flows.ledger import read_manifest
from flows.verify import verify
from tests.fixtures.flowkit import artifacts, batch_states, count_chunk_writes, run_flow, task_runs

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = {"max_workers": 3, "max_chunks_per_batch": 4, "retry_delay_seconds": 0.01}


def chunk_files(root: Path) -> dict[str, int]:
    """Chunk file -> inode (a rewrite through os.replace gives a new inode); flow bookkeeping left out."""
    return {
        str(p.relative_to(root)): p.stat().st_ino
        for p in root.rglob("*")
        if p.is_file() and ".zarrcore" not in p.parts and p.name not in ("zarr.json", ".zarray", ".zattrs",
                                                                           ".zgroup", ".zmetadata")
    }  # fmt: skip


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(7).standard_normal((60, 45)).astype("float32")
    data[:20, :15] = 0  # one chunk of fill values only: recorded, not stored
    np.save(tmp_path / "src.npy", data)
    return tmp_path / "src.npy", data


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_npy_lands_exactly_and_zarr_python_reads_it(tmp_path: Path, source: tuple[Path, np.ndarray],
                                                     zarr_format: int) -> None:  # fmt: skip
    path, data = source
    dest = tmp_path / "out.zarr"
    state, run_id = run_flow(ingest, source={"kind": "npy", "path": str(path)}, destination=str(dest), array="a/b",
                             layout={"chunks": [20, 15], "zarr_format": zarr_format}, execution=FAST)  # fmt: skip
    assert state.is_completed(), state.message
    group = zarr.open_group(str(dest), mode="r", use_consolidated=True)  # consolidated metadata is there
    arr = group["a/b"]
    assert arr.metadata.zarr_format == zarr_format and arr.chunks == (20, 15)
    np.testing.assert_array_equal(arr[:], data)
    manifest = read_manifest(zarrcore.open_store(str(dest)), "a/b")
    assert manifest is not None and len(manifest.chunks) == 9
    assert sum(v is None for v in manifest.chunks.values()) == 1  # the all-zero chunk is recorded as not stored
    assert zarrcore.open(str(dest), path="a/b").nshards_initialized == 8  # bookkeeping under .zarrcore/ not counted
    summary = state.result()["targets"][0]
    assert (summary["chunks_written"], summary["chunks_skipped"], summary["batches"]) == (9, 0, 3)
    progress = artifacts(run_id, "ingest-progress")
    assert progress and progress[-1].data == 100.0
    assert len(progress) == 1 and progress[0].description.endswith(": 3 of 3 batches")  # one, updated in place
    (row,) = json.loads(artifacts(run_id, "ingest-summary")[-1].data)
    assert row["array"] == f"file://{dest}/a/b" and row["written / skipped / failed"] == "9 / 0 / 0"
    assert (row["shape"], row["dtype"], row["chunks"]) == ("60 x 45", "float32", "20 x 15")
    assert len(row) <= 8 and all(len(str(v)) <= 24 for k, v in row.items() if k != "array")  # narrow


def test_every_source_kind_lands_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-1000, 1000, (33, 10)).astype("int16")
    np.savez_compressed(tmp_path / "arrays.npz", x=x)
    columns = {"t": np.arange(100, dtype="int64"), "v": rng.random(100)}
    labels = [None if i % 7 == 0 else f"row {i} é" for i in range(100)]  # a string column, with nulls
    pq.write_table(pa.table({**columns, "label": labels}), tmp_path / "t.parquet", row_group_size=30)
    dest = str(tmp_path / "all.zarr")
    runs = [
        ({"kind": "npz", "path": str(tmp_path / "arrays.npz"), "key": "x"}, "npz", {"chunks": [8, 8]}),
        ({"kind": "parquet", "path": str(tmp_path / "t.parquet")}, "matrix", {"chunks": [25, 2]}),
        ({"kind": "parquet", "path": str(tmp_path / "t.parquet"), "layout": "columns"}, "cols", {"chunks": [40]}),
        ({"kind": "synthetic", "shape": [17, 9, 4], "dtype": "uint8", "seed": 5}, "synth", {"chunks": [5, 5, 2]}),
        ({"kind": "zarr", "url": dest, "path": "npz"}, "copied", {"chunks": [11, 5]}),
    ]
    for spec, array, layout in runs:
        state, _ = run_flow(ingest, source=spec, destination=dest, array=array, layout=layout, execution=FAST)
        assert state.is_completed(), state.message
    group = zarr.open_group(dest, mode="r", use_consolidated=True)
    np.testing.assert_array_equal(group["npz"][:], x)
    np.testing.assert_array_equal(group["matrix"][:], np.stack([columns["t"], columns["v"]], axis=1))
    np.testing.assert_array_equal(group["cols/t"][:], columns["t"])
    np.testing.assert_array_equal(group["cols/v"][:], columns["v"])
    assert group["cols/t"].dtype == np.dtype("int64")
    assert [str(v) for v in group["cols/label"][:]] == ["" if v is None else v for v in labels]  # nulls: ''
    with count_chunk_writes() as writes:  # the string column's fingerprints are stable: a rerun writes nothing
        state, _ = run_flow(ingest, source=runs[2][0], destination=dest, array="cols", layout=runs[2][2],
                            execution=FAST)  # fmt: skip
    assert state.is_completed() and writes.total == 0
    synth = zarrcore.open(dest, path="synth")
    np.testing.assert_array_equal(group["synth"][:], synth[...])
    np.testing.assert_array_equal(group["copied"][:], x)
    assert group["copied"].chunks == (11, 5)


def test_rerun_writes_nothing_and_a_changed_region_rewrites_only_its_batches(
    tmp_path: Path, source: tuple[Path, np.ndarray]
) -> None:
    path, data = source
    params = {"source": {"kind": "npy", "path": str(path)}, "destination": str(tmp_path / "out.zarr"), "array": "a",
              "layout": {"chunks": [10, 15]}, "execution": {**FAST, "max_chunks_per_batch": 3}}  # fmt: skip
    with count_chunk_writes() as first:
        state, _ = run_flow(ingest, **params)
    assert state.is_completed() and first.total == 18  # 6 x 3 chunks, 6 batches

    with count_chunk_writes() as second:
        state, run_id = run_flow(ingest, **params)
    assert state.is_completed()
    assert second.total == 0
    states = batch_states(run_id)
    assert len(states) == 6 and set(states.values()) == {"Cached"}
    assert state.result()["targets"][0]["chunks_skipped"] == 18

    changed = data.copy()
    changed[35, 40] = 99.0  # chunk (3, 2): the last chunk of batch 3 (chunks 9-12)
    np.save(path, changed)
    with count_chunk_writes() as third:
        state, run_id = run_flow(ingest, **params)
    assert state.is_completed()
    assert sorted(third.keys) == ["a/c/3/0", "a/c/3/1", "a/c/3/2"]
    states = batch_states(run_id)
    assert states.pop("write chunks 9-12") == "Completed"
    assert set(states.values()) == {"Cached"}
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["a"][:], changed)


def test_overwrite_replaces_the_array_and_its_ledger(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    path, data = source
    params = {"source": {"kind": "npy", "path": str(path)}, "destination": str(tmp_path / "out.zarr"),
              "array": "", "layout": {"chunks": [30, 45]}, "execution": FAST}  # fmt: skip
    assert run_flow(ingest, **params)[0].is_completed()
    with count_chunk_writes() as writes:
        state, run_id = run_flow(ingest, **{**params, "layout": {"chunks": [30, 45], "overwrite": True}})
    assert state.is_completed()
    assert writes.total == 2 and set(batch_states(run_id).values()) == {"Completed"}  # nothing vouched for
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[:], data)


def test_refresh_and_a_ledger_kept_elsewhere(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    path, data = source
    ledger = tmp_path / "ledger"
    params = {"source": {"kind": "npy", "path": str(path)}, "destination": str(tmp_path / "out.zarr"), "array": "a",
              "layout": {"chunks": [30, 45]}, "execution": FAST, "results_url": str(ledger)}  # fmt: skip
    assert run_flow(ingest, **params)[0].is_completed()
    assert any(ledger.rglob("*")) and not (tmp_path / "out.zarr" / "a" / ".zarrcore" / "results").exists()
    with count_chunk_writes() as writes:
        state, run_id = run_flow(ingest, **params)
    assert writes.total == 0 and set(batch_states(run_id).values()) == {"Cached"}
    with count_chunk_writes() as writes:
        state, run_id = run_flow(ingest, **{**params, "execution": {**FAST, "refresh": True}})
    assert writes.total == 2 and set(batch_states(run_id).values()) == {"Completed"}
    # The array is replaced but the ledger elsewhere survives: a new incarnation keeps it from vouching.
    with count_chunk_writes() as writes:
        state, run_id = run_flow(ingest, **{**params, "layout": {"chunks": [30, 45], "overwrite": True}})
    assert state.is_completed() and writes.total == 2 and set(batch_states(run_id).values()) == {"Completed"}
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["a"][:], data)


def test_different_metadata_fails_before_any_chunk_is_written(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    path, _ = source
    dest = tmp_path / "out.zarr"
    params = {"source": {"kind": "npy", "path": str(path)}, "destination": str(dest), "array": "a",
              "execution": FAST}  # fmt: skip
    assert run_flow(ingest, **params, layout={"chunks": [20, 15]})[0].is_completed()
    before = chunk_files(dest)
    with count_chunk_writes() as writes:
        state, run_id = run_flow(ingest, **params, layout={"chunks": [20, 20]})
    assert state.is_failed()
    assert "MetadataConflictError" in state.message and "chunk_grid" in state.message
    assert writes.total == 0 and chunk_files(dest) == before
    assert task_runs(run_id, "write chunks") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"execution": {"max_workers": 0}}, "greater than or equal to 1"),
        ({"layout": {"chunks": [10]}}, "has rank 1 but the source has shape"),
        ({"layout": {"dtype": "float7"}}, "unknown dtype"),
        ({"source": {"kind": "npy", "path": "/no/such/file.npy"}}, "cannot be opened"),
        ({"destination": "nosuch://bucket/x"}, "unknown URL scheme 'nosuch'"),
        ({"array": "a/../../escape"}, "'..' segments are not allowed"),
        ({"storage_options": {"password": "hunter2"}}, "look like credentials"),
        ({"layout": {"shards": [40, 30]}}, "layout.shards needs layout.chunks"),
        ({"layout": {"chunks": [20, 15], "shards": [30, 30]}}, "shards must be a multiple of chunks"),
        ({"layout": {"chunks": [20, 15], "shards": [40, 30], "zarr_format": 2}}, "shards are a Zarr v3 feature"),
    ],
)
def test_bad_parameters_fail_before_any_write(tmp_path: Path, source: tuple[Path, np.ndarray], change: dict,
                                              message: str) -> None:  # fmt: skip
    path, _ = source
    dest = tmp_path / "out.zarr"
    params = {"source": {"kind": "npy", "path": str(path)}, "destination": str(dest), "array": "a",
              "layout": {"chunks": [20, 15]}, "execution": FAST, **change}  # fmt: skip
    state, _ = run_flow(ingest, **params)
    assert state.is_failed()
    assert message in str(state.result(raise_on_failure=False))
    assert not dest.exists()


def test_verify_lists_every_chunk_that_does_not_match(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    path, data = source
    dest = tmp_path / "out.zarr"
    spec = {"kind": "npy", "path": str(path)}
    assert run_flow(ingest, source=spec, destination=str(dest), array="a", layout={"chunks": [20, 15]},
                    execution=FAST)[0].is_completed()  # fmt: skip
    state, _ = run_flow(verify, destination=str(dest), array="", execution=FAST)  # every array of the group
    assert state.is_completed() and state.result()["arrays"][0]["chunks_checked"] == 9
    state, _ = run_flow(verify, destination=str(dest), array="a", source=spec, execution=FAST)
    assert state.is_completed(), state.message

    corrupt = dest / "a" / "c" / "1" / "1"
    raw = bytearray(corrupt.read_bytes())
    raw[-1] ^= 0xFF
    corrupt.write_bytes(bytes(raw))
    (dest / "a" / "c" / "2" / "0").unlink()
    state, run_id = run_flow(verify, destination=str(dest), array="a", execution=FAST)
    assert state.is_failed()
    error = str(state.result(raise_on_failure=False))
    assert "2 chunks do not match" in error and "c/1/1" in error and "c/2/0" in error
    table = json.loads(artifacts(run_id, "verify-mismatches")[-1].data)
    assert {(row["chunk"], row["problem"].split(":")[0].split(" ")[0]) for row in table} == {
        ("c/1/1", "content"), ("c/2/0", "missing")}  # fmt: skip

    changed = data.copy()
    changed[0, 0] = 1.0  # the fill-only chunk (0, 0) would now hold data
    np.save(path, changed)
    state, _ = run_flow(verify, destination=str(dest), array="a", source=spec, execution=FAST)
    assert "c/0/0: data differs from the source" in str(state.result(raise_on_failure=False))


def test_manifest_hashes_are_crc32c_and_format_1_sha256_manifests_still_verify(
        tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:  # fmt: skip
    path, _ = source
    dest = tmp_path / "out.zarr"
    assert run_flow(ingest, source={"kind": "npy", "path": str(path)}, destination=str(dest), array="a",
                    layout={"chunks": [20, 15]}, execution=FAST)[0].is_completed()  # fmt: skip
    manifest_file = dest / "a" / ".zarrcore" / "manifest.json"
    doc = json.loads(manifest_file.read_bytes())
    assert doc["format"] == "zarrcore-manifest/2"
    stored = {key: (dest / "a" / key).read_bytes() for key, rec in doc["chunks"].items() if rec}
    assert len(stored) == 8
    assert {key: rec for key, rec in doc["chunks"].items() if rec} == {
        key: [len(raw), f"crc32c:{crc32c.crc32c(raw):08x}"] for key, raw in stored.items()}  # fmt: skip

    # A manifest written by format 1 recorded SHA-256 hex digests: verify still checks it, chunk by chunk.
    doc["format"] = "zarrcore-manifest/1"
    doc["chunks"] = {key: ([len(stored[key]), hashlib.sha256(stored[key]).hexdigest()] if rec else None)
                     for key, rec in doc["chunks"].items()}  # fmt: skip
    manifest_file.write_text(json.dumps(doc))
    state, _ = run_flow(verify, destination=str(dest), array="a", execution=FAST)
    assert state.is_completed() and state.result()["arrays"][0]["chunks_checked"] == 9
    corrupt = dest / "a" / "c" / "0" / "1"
    raw = bytearray(corrupt.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    corrupt.write_bytes(bytes(raw))
    state, _ = run_flow(verify, destination=str(dest), array="a", execution=FAST)
    error = str(state.result(raise_on_failure=False))
    assert state.is_failed() and "1 chunks do not match" in error and "c/0/1" in error
    assert hashlib.sha256(bytes(raw)).hexdigest() in error  # the hash seen, computed the way it was recorded
    doc["format"] = "zarrcore-manifest/9"
    manifest_file.write_text(json.dumps(doc))
    state, _ = run_flow(verify, destination=str(dest), array="a", execution=FAST)
    assert state.is_failed() and "unknown manifest format 'zarrcore-manifest/9'" in str(
        state.result(raise_on_failure=False))  # fmt: skip


def test_verify_needs_a_finished_ingest(tmp_path: Path) -> None:
    zarrcore.create(str(tmp_path / "plain.zarr"), shape=(4,), chunks=(2,), dtype="i4")
    state, _ = run_flow(verify, destination=str(tmp_path / "plain.zarr"), array="")
    assert state.is_failed() and "no completion manifest" in str(state.result(raise_on_failure=False))


def test_copy_rechunks_between_formats_and_reruns_as_cache_hits(tmp_path: Path) -> None:
    data = np.random.default_rng(2).random((50, 40))
    src = zarrcore.create(str(tmp_path / "src.zarr"), shape=data.shape, chunks=(10, 10), dtype="float64",
                          fill_value=np.nan, attributes={"units": "K"}, dimension_names=["y", "x"])  # fmt: skip
    src[:] = data
    params = {"source": str(tmp_path / "src.zarr"), "destination": str(tmp_path / "dst.zarr"), "array": "",
              "layout": {"chunks": [25, 40], "zarr_format": 2, "compression": "blosc-lz4"},
              "execution": FAST}  # fmt: skip
    state, _ = run_flow(copy_array, **params)
    assert state.is_completed(), state.message
    out = zarr.open_array(str(tmp_path / "dst.zarr"), mode="r")
    assert out.metadata.zarr_format == 2 and out.chunks == (25, 40)
    assert dict(out.attrs) == {"_ARRAY_DIMENSIONS": ["y", "x"], "units": "K"}  # v2: the dims as xarray keeps them
    assert np.isnan(out.fill_value)
    np.testing.assert_array_equal(out[:], data)
    with count_chunk_writes() as writes:
        state, run_id = run_flow(copy_array, **params)
    assert state.is_completed() and writes.total == 0 and set(batch_states(run_id).values()) == {"Cached"}
    same = run_flow(copy_array, source=str(tmp_path / "src.zarr"), destination=str(tmp_path / "same.zarr"),
                    array="", execution=FAST)[0]  # fmt: skip
    assert same.is_completed()
    kept = zarr.open_array(str(tmp_path / "same.zarr"), mode="r")
    assert kept.chunks == (10, 10) and kept.metadata.dimension_names == ("y", "x")
    np.testing.assert_array_equal(kept[:], data)


def test_ingest_into_shards_verifies_and_reruns_as_cache_hits(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    path, data = source
    dest = tmp_path / "out.zarr"
    params = {"source": {"kind": "npy", "path": str(path)}, "destination": str(dest), "array": "a",
              "layout": {"chunks": [10, 15], "shards": [20, 45]}, "execution": FAST}  # fmt: skip
    state, _ = run_flow(ingest, **params)
    assert state.is_completed(), state.message
    out = zarr.open_array(str(dest), path="a", mode="r")
    assert out.shards == (20, 45) and out.chunks == (10, 15)
    np.testing.assert_array_equal(out[:], data)
    assert zarrcore.open_array(str(dest), path="a").nshards_initialized == 3  # one object per shard
    summary = state.result()["targets"][0]
    assert summary["chunks_written"] == 3  # the flow's unit of work is the shard
    assert run_flow(verify, destination=str(dest), array="a", execution=FAST)[0].is_completed()
    with count_chunk_writes() as writes:
        state, run_id = run_flow(ingest, **params)
    assert state.is_completed() and writes.total == 0 and set(batch_states(run_id).values()) == {"Cached"}


def test_copy_keeps_a_sharded_layout_or_reshards_it(tmp_path: Path) -> None:
    data = np.random.default_rng(3).integers(0, 1000, size=(48, 40)).astype("int32")
    src = zarr.create_array(str(tmp_path / "src.zarr"), shape=data.shape, chunks=(8, 10), shards=(24, 20),
                            dtype="int32", fill_value=0)  # fmt: skip
    src[...] = data
    kept = run_flow(copy_array, source=str(tmp_path / "src.zarr"), destination=str(tmp_path / "kept.zarr"),
                    array="", execution=FAST)[0]  # fmt: skip
    assert kept.is_completed(), kept.message
    out = zarr.open_array(str(tmp_path / "kept.zarr"), mode="r")
    assert (out.shards, out.chunks) == ((24, 20), (8, 10)) and out.compressors == src.compressors
    np.testing.assert_array_equal(out[:], data)
    resharded = run_flow(copy_array, source=str(tmp_path / "src.zarr"), destination=str(tmp_path / "re.zarr"),
                         array="", layout={"shards": [48, 40]}, execution=FAST)[0]  # fmt: skip
    assert resharded.is_completed(), resharded.message
    out = zarr.open_array(str(tmp_path / "re.zarr"), mode="r")
    assert (out.shards, out.chunks) == ((48, 40), (8, 10)) and out.compressors == src.compressors
    np.testing.assert_array_equal(out[:], data)


def test_copy_of_strings_reruns_as_cache_hits(tmp_path: Path) -> None:
    """Fingerprints of variable-length strings hash their text, so a rerun finds every batch done."""
    words = np.array(["", "a", "Zürich", "日本語", "long words here"], dtype=object)
    data = np.random.default_rng(4).choice(words, size=(24, 10))
    src = zarrcore.create(str(tmp_path / "src.zarr"), shape=data.shape, chunks=(6, 5), dtype=str)
    src[...] = data
    fixed = zarrcore.create(str(tmp_path / "fixed.zarr"), shape=data.shape, chunks=(6, 5), dtype="U15")
    fixed[...] = data.astype("U15")
    for name in ("src", "fixed"):
        params = {"source": str(tmp_path / f"{name}.zarr"), "destination": str(tmp_path / f"{name}-copy.zarr"),
                  "array": "", "layout": {"chunks": [12, 10]}, "execution": FAST}  # fmt: skip
        state, _ = run_flow(copy_array, **params)
        assert state.is_completed(), state.message
        out = zarr.open_array(str(tmp_path / f"{name}-copy.zarr"), mode="r")
        assert [str(v) for v in out[...].reshape(-1)] == [str(v) for v in data.reshape(-1)]
        with count_chunk_writes() as writes:
            state, run_id = run_flow(copy_array, **params)
        assert state.is_completed() and writes.total == 0 and set(batch_states(run_id).values()) == {"Cached"}


def test_cli_ingest_verify_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = str(tmp_path / "cli.zarr")
    assert zarrflow(["ingest", "synthetic:64x48:int32:3", dest, "--array", "s", "--chunks", "16,16",
                     "--max-chunks-per-batch", "4"]) == 0  # fmt: skip
    assert zarrflow(["verify", dest, "--array", "s", "--source", "synthetic:64x48:int32:3"]) == 0
    capsys.readouterr()
    assert zarrflow(["info", dest, "--path", "s"]) == 0
    out = capsys.readouterr().out
    assert "shape                : (64, 48)" in out and "chunks stored        : 12 of 12" in out
    assert "manifest             : 12 chunks recorded" in out
    assert zarrflow(["ingest", "synthetic:64x48:int32:3", dest, "--array", "s", "--chunks", "8,8"]) == 1
    err = capsys.readouterr().err
    assert "MetadataConflictError" in err and "pass --overwrite" in err
    assert os.path.isdir(dest)
    assert zarrflow(["ingest", "synthetic:64x48:int32:3", dest, "--array", "sharded", "--chunks", "8,8",
                     "--shards", "32,48"]) == 0  # fmt: skip
    capsys.readouterr()
    assert zarrflow(["info", dest, "--path", "sharded"]) == 0
    out = capsys.readouterr().out
    assert "chunks               : (8, 8) in shards of (32, 48)" in out and "shards stored        : 2 of 2" in out
    assert zarrflow(["ingest", "synthetic:64x48:int32:3", dest, "--array", "bad", "--chunks", "8,8",
                     "--shards", "30,48"]) == 1  # fmt: skip
    assert "shards must be a multiple of chunks" in capsys.readouterr().err
