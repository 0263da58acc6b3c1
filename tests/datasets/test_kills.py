"""SIGKILL a writer at every step of an append while a reader process polls with xarray's defaults:
the reader only ever sees published states, and a rerun completes the append to the same dataset. On
local disk and on each emulator (S3 on moto, GCS on fake-gcs-server, Azure on Azurite): the writer
appends through the real store, the reader reads through zarr-python's own store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from tests.datasets import poll_reader
from tests.datasets.kill_targets import Target, opened
from tests.datasets.kill_writer import append
from tests.datasets.pieces import expected
from tests.fixtures.netcdf_files import write_series
from tests.fixtures.zarr_python_stores import ZarrPythonStores, endpoint_of
from zarrcore.datasets import open_dataset

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STEPS = 4  # per file; chunks hold 3, so every append rewrites a partial chunk
# Where each round's writer dies: just before the n-th PUT of a kind. chunk:1 is right after the intent,
# meta:1 after every chunk, consolidated:1 after the arrays' metadata, record:2 after the commit point.
# Local disk takes every point; each emulator one of each kind (every point is taken by one at least).
KILLS = {
    "local": ["chunk:1", "chunk:7", "meta:1", "meta:3", "consolidated:1", "record:2"],
    "s3": ["chunk:1", "meta:3", "consolidated:1", "record:2"],
    "gcs": ["chunk:7", "meta:1", "consolidated:1", "record:2"],
    "azure": ["chunk:7", "meta:3", "consolidated:1", "record:2"],
}
BUCKETS = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}


def writer(target: Target, kill_at: str, files: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(HERE / "kill_writer.py"), target.to_json(), kill_at,
                           *map(str, files)], env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(params=list(KILLS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """The dataset's root: a folder, or the prefix ``out`` of a fresh bucket on the backend's emulator."""
    backend = request.param
    if backend == "local":
        return Target.local(tmp_path / "out")
    server = request.getfixturevalue(f"{backend}_server")
    bucket = request.getfixturevalue(BUCKETS[backend])
    return Target(backend, "out", bucket, server.options(), endpoint_of(backend, server))


@pytest.fixture
def series(tmp_path: Path, target: Target) -> list[Path]:
    return write_series(tmp_path / "raw", "2001-01-01", files=2 + 2 * len(KILLS[target.backend]), steps=STEPS,
                        ny=8, nx=16)  # fmt: skip


@pytest.fixture
def stores() -> Iterator[ZarrPythonStores]:
    opened_stores = ZarrPythonStores()
    yield opened_stores
    opened_stores.close()


def test_a_reader_sees_only_published_states_and_reruns_complete(tmp_path: Path, target: Target, series: list[Path],
                                                                 stores: ZarrPythonStores) -> None:  # fmt: skip
    kills, store, readable = KILLS[target.backend], target.store(), target.readable(stores)
    append(store, series[:2])  # the first state, written in this process
    log, stop = tmp_path / "reads.jsonl", tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = subprocess.Popen([sys.executable, str(HERE / "poll_reader.py"), target.to_json(), str(log), str(stop),
                               str(STEPS), *map(str, series)], env=env)  # fmt: skip
    try:
        for i, kill_at in enumerate(kills):
            before, batch = series[: 2 + 2 * i], series[2 + 2 * i : 4 + 2 * i]
            died = writer(target, kill_at, batch)
            assert died.returncode == -9, (kill_at, died.stdout, died.stderr)
            published = before + batch if kill_at == "record:2" else before
            xr.testing.assert_identical(opened(readable), expected(published))  # the last published state
            append(store, batch)  # the rerun, here: the dead writer's process is gone either way
            xr.testing.assert_identical(opened(readable), expected(before + batch))
            assert sorted(open_dataset(store).landed()) == sorted(f.as_uri() for f in before + batch)
    finally:
        stop.touch()
        reader.wait(timeout=300)
        store.close()
    reads = [json.loads(line) for line in log.read_text().splitlines()]
    bad = [r for r in reads if not r["ok"]]
    assert not bad, bad[:3]
    seen = sorted({r["n"] for r in reads})
    assert len(reads) >= 2 and seen[-1] == STEPS * len(series), seen
    print(f"reader on {target.backend}: {len(reads)} reads, lengths seen along time: {seen}")


def test_a_rerun_after_the_last_round_lands_nothing(tmp_path: Path) -> None:
    root, files = tmp_path / "out", write_series(tmp_path / "raw", "2001-01-01", files=4, steps=STEPS, ny=8, nx=16)
    assert writer(Target.local(root), "none", files).returncode == 0
    tree = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert writer(Target.local(root), "none", files).returncode == 0
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == tree


def test_the_reader_check_sees_an_inconsistent_state(target: Target, series: list[Path],
                                                     stores: ZarrPythonStores) -> None:  # fmt: skip
    """Positive control: the reader (on the target's backend, as it reads there) flags a published axis
    longer than the data written."""
    store, broken_target = target.store(), target.sibling("broken")
    broken = broken_target.store()
    append(store, series[:2])
    full = expected(series)
    assert poll_reader.check(target.readable(stores), full, STEPS)["ok"]
    for key in list(store.list()):
        broken.put(key, store.get(key))
    for key in list(broken.list("t2m/c/2/")):
        broken.delete(key)  # steps 6..8 of t2m now read as missing
    result = poll_reader.check(broken_target.readable(stores), full, STEPS)
    assert not result["ok"] and "t2m" in result["error"] and result["n"] == 8  # read, but t2m's values differ
    meta: dict[str, Any] = json.loads(store.get("zarr.json"))
    meta["consolidated_metadata"]["metadata"]["t2m"]["shape"][0] = 12  # t2m longer than time
    broken.put("zarr.json", json.dumps(meta).encode())
    result = poll_reader.check(broken_target.readable(stores), full, STEPS)
    assert not result["ok"] and "conflicting sizes" in result["error"], result
    assert np.isfinite(full.t2m.values).all()
    store.close()
    broken.close()
