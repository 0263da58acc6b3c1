"""``make demo`` end to end in a temporary folder: the first run on Prefect's embedded server (nothing
started by hand, Prefect's home under the demo folder) lands and verifies the array; a second run
writes nothing and says every batch was skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from flows.demo import DEMO_SOURCE
from flows.sources import SyntheticSource
from tests.fixtures.paths import REPO


def demo(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    return subprocess.run([sys.executable, "-m", "flows.demo", "--dir", str(folder / "data")], cwd=folder,
                          env={**base, "PYTHONPATH": str(REPO), "COLUMNS": "80", **env},
                          capture_output=True, text=True, timeout=240)  # fmt: skip


@pytest.mark.usefixtures("prefect_api")
def test_demo_runs_on_a_fresh_machine_and_then_skips_everything(tmp_path: Path) -> None:
    first = demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Prefect's embedded server" in first.stdout and "64 chunks written" in first.stdout
    assert "verify completed" in first.stdout and "chunks stored        : 64 of 64" in first.stdout
    assert (tmp_path / "data" / ".prefect").is_dir()  # Prefect's home went under the demo folder
    opened = f"Open it with zarr-python: zarr.open_group({str(tmp_path / 'data' / 'demo.zarr')!r})['synthetic']"
    assert opened in first.stdout.splitlines()  # one line at 80 columns, not a terminal: nothing wrapped
    arr = zarr.open_group(str(tmp_path / "data" / "demo.zarr"), mode="r")["synthetic"]
    shape = tuple(DEMO_SOURCE["shape"])  # type: ignore[arg-type]
    expected = SyntheticSource(**DEMO_SOURCE).open().read(tuple(slice(0, n) for n in shape))  # type: ignore[arg-type]
    np.testing.assert_array_equal(arr[:], expected)
    import xarray as xr

    landed = xr.open_zarr(tmp_path / "data" / "demo.zarr")  # xarray's defaults open the array the demo lands
    assert landed["synthetic"].dims == ("dim_0", "dim_1")
    np.testing.assert_array_equal(landed["synthetic"].values, expected)
    assert "3 new files landed, 0 already there" in first.stdout and "3 new files landed, 3 already" in first.stdout

    def expected_file(f: Path) -> xr.Dataset:
        with xr.open_dataset(f, engine="h5netcdf") as ds:
            return ds.load()

    data = tmp_path / "data"
    files = sorted((data / "raw").glob("day-*.nc"))
    want = xr.concat([expected_file(f) for f in files], "time", data_vars="minimal", coords="minimal",
                     compat="override")
    xr.testing.assert_identical(xr.open_zarr(data / "dataset.zarr").load(), want)
    assert "Dimensions:  (lat: 72, lon: 144, time: 144)" in first.stdout

    from prefect.settings import PREFECT_API_URL

    again = demo(tmp_path, PREFECT_API_URL=str(PREFECT_API_URL.value()))  # another server: the ledger is in the array
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "every batch skipped" in again.stdout and "chunks_written : 0" in again.stdout
    assert again.stdout.count("0 new files landed, 6 already there") == 2
