"""Whatever the flows and ``zarrflow`` land opens in xarray with its defaults (``xr.open_zarr(destination)``),
Zarr v2 and v3: every array has dimension names (given, the source's own, else ``dim_0``...), under a
root group, with the attributes asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr

import zarrcore
from flows.cli import main as zarrflow

pytestmark = pytest.mark.usefixtures("prefect_api")
FORMATS = [2, 3]


def opened(path: Path, **kwargs: object) -> xr.Dataset:
    return xr.open_zarr(path, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("zarr_format", FORMATS)
def test_an_ingested_array_opens_with_default_names_or_the_ones_given(tmp_path: Path, zarr_format: int) -> None:
    data = np.arange(24 * 16, dtype="float32").reshape(24, 16)
    np.save(tmp_path / "field.npy", data)
    dest = tmp_path / "out.zarr"
    fmt = ["--zarr-format", str(zarr_format)]
    assert zarrflow(["ingest", str(tmp_path / "field.npy"), str(dest), "--chunks", "8,8", *fmt]) == 0
    ds = opened(dest)
    assert ds["data"].dims == ("dim_0", "dim_1") and ds["data"].dtype == np.float32
    np.testing.assert_array_equal(ds["data"].values, data)
    assert zarrflow(["ingest", str(tmp_path / "field.npy"), str(dest), "--array", "t2m", "--chunks", "8,8", *fmt,
                     "--dimension-names", "lat,lon", "--attributes", '{"units": "K"}']) == 0  # fmt: skip
    ds = opened(dest)
    assert ds["t2m"].dims == ("lat", "lon") and ds["t2m"].attrs == {"units": "K"}
    assert sorted(ds.data_vars) == ["data", "t2m"]


@pytest.mark.parametrize("zarr_format", FORMATS)
def test_a_nested_array_opens_with_its_group(tmp_path: Path, zarr_format: int) -> None:
    dest = tmp_path / "out.zarr"
    assert zarrflow(["ingest", "synthetic:32x32:float32:1", str(dest), "--array", "model/run1/field", "--chunks",
                     "16,16", "--zarr-format", str(zarr_format)]) == 0  # fmt: skip
    assert opened(dest, group="model/run1")["field"].shape == (32, 32)


@pytest.mark.parametrize("zarr_format", FORMATS)
def test_a_table_lands_with_row_and_column_dimensions(tmp_path: Path, zarr_format: int) -> None:
    table = pa.table({"a": np.arange(50, dtype="float64"), "b": np.arange(50, dtype="float64") * 2})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=20)
    dest = tmp_path / "out.zarr"
    assert zarrflow(["ingest", str(tmp_path / "t.parquet"), str(dest), "--zarr-format", str(zarr_format)]) == 0
    ds = opened(dest)
    assert ds["data"].dims == ("row", "column") and ds["data"].shape == (50, 2)
    np.testing.assert_array_equal(ds["data"].values[:, 1], np.arange(50) * 2)


@pytest.mark.parametrize("zarr_format", FORMATS)
def test_a_copy_keeps_the_source_dimension_names_across_formats(tmp_path: Path, zarr_format: int) -> None:
    src = tmp_path / "src.zarr"
    source = zarrcore.create(str(src), path="v", shape=(20, 10), chunks=(5, 5), dtype="int16", zarr_format=3,
                             dimension_names=["time", "station"], attributes={"long_name": "counts"})  # fmt: skip
    source[...] = np.arange(200, dtype="int16").reshape(20, 10)
    dest = tmp_path / "dst.zarr"
    assert zarrflow(["copy", str(src), str(dest), "--source-path", "v", "--array", "counts", "--chunks", "10,10",
                     "--zarr-format", str(zarr_format)]) == 0  # fmt: skip
    ds = opened(dest)
    assert ds["counts"].dims == ("time", "station") and ds["counts"].attrs == {"long_name": "counts"}
    np.testing.assert_array_equal(ds["counts"].values, source[...])
