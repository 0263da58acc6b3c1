"""``verify`` of a dataset: a sound dataset passes with every chunk read and every landed file compared;
each kind of damage (an undecodable chunk, values that differ from their file, metadata that differs
from the consolidated entry, a ledger that no longer covers the extent) is found and named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import zarrcore
from flows.append import append
from flows.cli import main as zarrflow
from flows.verify import verify
from tests.datasets.pieces import piece_of
from tests.fixtures.flowkit import run_flow
from tests.fixtures.netcdf_files import write_series
from zarrcore.datasets import create_dataset, open_dataset
from zarrcore.datasets.check import check_dataset
from zarrcore.datasets.ledger import read_records
from zarrcore.storage import LocalStore


@pytest.fixture
def landed(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Four daily files of six steps landed in chunks of four steps (chunks straddle files)."""
    files = write_series(tmp_path / "raw", "2001-01-01", files=4, steps=6)
    store = LocalStore(tmp_path / "out")
    ds = create_dataset(store, "", template=piece_of(files[0]), dim="time", chunks={"time": 4})
    ds.append([piece_of(f) for f in files[:2]])
    open_dataset(store).append([piece_of(f) for f in files[2:]])
    return tmp_path / "out", files


def findings(root: Path, files: list[Path]) -> list[tuple[str, str]]:
    ds = open_dataset(LocalStore(root))
    return [(f.where, f.problem) for f in check_dataset(ds, pieces=[piece_of(f) for f in files])]


def test_a_sound_dataset_has_no_findings(landed: tuple[Path, list[Path]]) -> None:
    root, files = landed
    assert findings(root, files) == []


def test_an_undecodable_chunk_is_named(landed: tuple[Path, list[Path]]) -> None:
    root, files = landed
    chunk = root / "t2m" / "c" / "1" / "0" / "0"
    chunk.write_bytes(b"not a chunk")
    (where, problem), *compared = findings(root, files)
    assert where == "t2m" and problem.startswith("chunk (1, 0, 0) (key 't2m/c/1/0/0'): CodecError"), problem
    # steps 4-7 are the first file's last two and the second's first two: neither can be compared
    assert [w for w, _ in compared] == [files[0].as_uri(), files[1].as_uri()]
    assert all(p.startswith("t2m: cannot be compared: chunk (1, 0, 0)") for _, p in compared)


def test_values_that_differ_from_their_file_are_named_with_the_file(landed: tuple[Path, list[Path]]) -> None:
    root, files = landed
    array = zarrcore.open_array(LocalStore(root), mode="r+", path="precip")
    array[13, 0, 0] = array[13, 0, 0] + 1  # step 13 is the third file's second step
    found = findings(root, files)
    differ = "precip: the dataset's values at [12, 18) along 'time' differ from the file's"
    assert found == [(files[2].as_uri(), differ)]
    assert check_dataset(open_dataset(LocalStore(root))) == []  # without the files, only decoding is checked


def test_metadata_that_differs_from_the_consolidated_entry_is_named(landed: tuple[Path, list[Path]]) -> None:
    root, files = landed
    doc_path = root / "orog" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    doc["attributes"]["units"] = "ft"
    doc_path.write_text(json.dumps(doc))
    [(where, problem)] = findings(root, files)
    assert where == "orog" and "attributes" in problem and "'ft'" in problem, problem


def test_a_ledger_that_no_longer_covers_the_extent_is_found(landed: tuple[Path, list[Path]]) -> None:
    root, files = landed
    store = LocalStore(root)
    [first, _] = read_records(store, "")
    store.delete(next(k for k in store.list(".zarrcore/") if k.endswith(f"{first.number:08d}.json")))
    found = findings(root, files)
    assert ("(ledger)", "[0, 12) along 'time' comes from no landed file") in found
    assert (files[0].as_uri(), "not landed") in found and (files[1].as_uri(), "not landed") in found


def test_region_mode_lists_what_is_missing_without_failing(tmp_path: Path) -> None:
    files = write_series(tmp_path / "raw", "2001-01-01", files=3, steps=4)
    axis = np.concatenate([piece_of(f).variables["time"].read() for f in files])
    ds = create_dataset(LocalStore(tmp_path / "out"), "", template=piece_of(files[0]), dim="time",
                        chunks={"time": 3}, axis=axis)  # fmt: skip
    ds = ds.write_region([piece_of(files[2])])
    assert check_dataset(ds, pieces=[piece_of(files[2])]) == []
    assert ds.missing() == [(0, 8)]


@pytest.mark.usefixtures("prefect_api")
def test_the_verify_flow_checks_a_dataset_and_fails_naming_the_damage(tmp_path: Path) -> None:
    files = write_series(tmp_path / "raw", "2001-01-01", files=4, steps=6)
    root, pattern = tmp_path / "out", str(tmp_path / "raw" / "*.nc")
    state, _ = run_flow(append, source=pattern, destination=str(root), layout={"chunks": {"time": 4}})
    assert state.is_completed(), state.message
    late = write_series(tmp_path / "raw", "2001-01-02", files=1, steps=6, name="late-{index}.nc")  # not landed
    state, _ = run_flow(verify, destination=str(root), array="", files=pattern, execution={"max_workers": 2})
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["files_compared"] == 4 and summary["not_landed"] == [str(late[0])]
    rows = {r["variable"]: r for r in summary["variables"]}
    assert sorted(rows) == ["lat", "lon", "orog", "precip", "t2m", "time"]
    assert rows["t2m"]["chunks"] == 6 and rows["t2m"]["problems"] == 0  # 24 steps in chunks of 4

    array = zarrcore.open_array(LocalStore(root), mode="r+", path="t2m")
    array[0, 0, 0] = -1.0
    assert zarrflow(["verify", str(root), "--array", "", "--files", pattern]) == 1  # the CLI: a failed run
    state, _ = run_flow(verify, destination=str(root), array="", files=pattern)
    assert state.is_failed() and "VerificationFailed" in state.message
    assert f"{files[0]}: t2m: the dataset's values at [0, 6)" in str(state.result(raise_on_failure=False))
