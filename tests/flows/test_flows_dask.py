"""The Dask task runner (prefect-dask, a local cluster in worker processes) lands a byte-identical array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from flows.ingest import ingest
from tests.fixtures.flowkit import run_flow

pytestmark = pytest.mark.usefixtures("prefect_api")


def stored_bytes(root: Path) -> dict[str, bytes]:
    """Every chunk and metadata object, flow bookkeeping (ledger ids differ per array) left out."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".zarrcore" not in p.parts}  # fmt: skip


def test_dask_runner_writes_the_same_bytes_as_threads(tmp_path: Path) -> None:
    data = np.random.default_rng(5).standard_normal((70, 50)).astype("float32")
    np.save(tmp_path / "src.npy", data)
    common = {"source": {"kind": "npy", "path": str(tmp_path / "src.npy")}, "array": "a",
              "layout": {"chunks": [16, 16], "compression": "blosc-zstd"}}  # fmt: skip
    threads, _ = run_flow(ingest, destination=str(tmp_path / "threads.zarr"), **common,
                          execution={"max_workers": 2, "max_chunks_per_batch": 5})  # fmt: skip
    dask, _ = run_flow(ingest, destination=str(tmp_path / "dask.zarr"), **common,
                       execution={"task_runner": "dask", "max_workers": 2, "max_chunks_per_batch": 5})  # fmt: skip
    assert threads.is_completed() and dask.is_completed(), dask.message
    assert dask.result()["targets"][0]["chunks_written"] == 20
    assert stored_bytes(tmp_path / "dask.zarr") == stored_bytes(tmp_path / "threads.zarr")
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "dask.zarr"), mode="r")["a"][:], data)
