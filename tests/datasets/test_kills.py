"""SIGKILL a writer at every step of an append while a reader process polls with xarray's defaults:
the reader only ever sees published states, and a rerun completes the append to the same dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.datasets import poll_reader
from tests.datasets.pieces import expected, opened
from tests.fixtures.netcdf_files import write_series
from zarrcore.datasets import open_dataset
from zarrcore.storage import LocalStore

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STEPS = 4  # per file; chunks hold 3, so every append rewrites a partial chunk
# Where each round's writer dies: just before the n-th PUT of a kind. chunk:1 is right after the intent,
# meta:1 after every chunk, consolidated:1 after the arrays' metadata, record:2 after the commit point.
KILLS = ["chunk:1", "chunk:7", "meta:1", "meta:3", "consolidated:1", "record:2"]


def writer(root: Path, kill_at: str, files: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(HERE / "kill_writer.py"), str(root), kill_at, *map(str, files)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture
def series(tmp_path):
    return write_series(tmp_path / "raw", "2001-01-01", files=2 + 2 * len(KILLS), steps=STEPS, ny=8, nx=16)


def test_a_reader_sees_only_published_states_and_reruns_complete(tmp_path, series):
    root = tmp_path / "out"
    first = writer(root, "none", series[:2])
    assert first.returncode == 0, first.stderr
    log, stop = tmp_path / "reads.jsonl", tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = subprocess.Popen([sys.executable, str(HERE / "poll_reader.py"), str(root), str(log), str(stop),
                               str(STEPS), *map(str, series)], env=env)  # fmt: skip
    try:
        for i, kill_at in enumerate(KILLS):
            before, batch = series[: 2 + 2 * i], series[2 + 2 * i : 4 + 2 * i]
            died = writer(root, kill_at, batch)
            assert died.returncode == -9, (kill_at, died.stdout, died.stderr)
            published = before + batch if kill_at == "record:2" else before
            xr.testing.assert_identical(opened(root), expected(published))  # the last published state
            rerun = writer(root, "none", batch)
            assert rerun.returncode == 0, rerun.stderr
            xr.testing.assert_identical(opened(root), expected(before + batch))
            assert sorted(open_dataset(LocalStore(root)).landed()) == sorted(f.as_uri() for f in before + batch)
    finally:
        stop.touch()
        reader.wait(timeout=300)
    reads = [json.loads(line) for line in log.read_text().splitlines()]
    bad = [r for r in reads if not r["ok"]]
    assert not bad, bad[:3]
    seen = sorted({r["n"] for r in reads})
    assert len(reads) >= 2 and seen[-1] == STEPS * len(series), seen
    print(f"reader: {len(reads)} reads, lengths seen along time: {seen}")


def test_a_rerun_after_the_last_round_lands_nothing(tmp_path, series):
    root = tmp_path / "out"
    assert writer(root, "none", series[:4]).returncode == 0
    tree = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert writer(root, "none", series[:4]).returncode == 0
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == tree


def test_the_reader_check_sees_an_inconsistent_state(tmp_path, series):
    """Positive control: the reader flags a published axis longer than the data written."""
    root = tmp_path / "out"
    assert writer(root, "none", series[:2]).returncode == 0
    full = expected(series)
    assert poll_reader.check(str(root), full, STEPS)["ok"]
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    for chunk in (broken / "t2m" / "c").rglob("*"):
        if chunk.is_file() and chunk.relative_to(broken / "t2m" / "c").parts[0] == "2":
            chunk.unlink()  # steps 6..8 of t2m now read as missing
    result = poll_reader.check(str(broken), full, STEPS)
    assert not result["ok"] and "t2m" in result["error"]
    meta = json.loads((root / "zarr.json").read_text())
    meta["consolidated_metadata"]["metadata"]["t2m"]["shape"][0] = 12  # t2m longer than time
    (broken / "zarr.json").write_text(json.dumps(meta))
    assert not poll_reader.check(str(broken), full, STEPS)["ok"]
    assert np.isfinite(full.t2m.values).all()
