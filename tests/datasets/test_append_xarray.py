"""Appends of real NetCDF files give what xarray gives for the files concatenated (v2 and v3)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from tests.datasets.pieces import expected, opened, piece_of
from tests.fixtures.netcdf_files import write_series
from zarrcore.datasets import create_dataset, open_dataset
from zarrcore.storage import LocalStore


@pytest.fixture
def files(tmp_path):
    return write_series(tmp_path / "raw", "2001-01-01", files=5, steps=6)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_appends_equal_xarray_concat_after_every_step(tmp_path, files, zarr_format):
    store = LocalStore(tmp_path / "out")
    ds = create_dataset(store, "d", template=piece_of(files[0]), dim="time",
                        chunks={"time": 8, "lat": 8, "lon": 16}, zarr_format=zarr_format)  # fmt: skip
    assert ds.extent == 0
    for n in (1, 3, 5):  # one file, then two, then two more: the chunk of 8 steps is rewritten unaligned
        ds = ds.append([piece_of(f) for f in files[:n]])
        got = opened(store, "d")
        xr.testing.assert_identical(got, expected(files[:n]))
        assert ds.extent == 6 * n
    with xr.open_dataset(files[0], engine="h5netcdf") as first:
        for name in ("t2m", "precip", "orog"):
            assert got[name].encoding["dtype"] == first[name].encoding["dtype"]
    assert got["precip"].encoding["scale_factor"] == pytest.approx(0.01)
    assert got.time.encoding["units"] == "hours since 2000-01-01"


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_python_reads_the_dataset_with_its_dimension_names(tmp_path, files, zarr_format):
    store = LocalStore(tmp_path / "out")
    ds = create_dataset(store, "", template=piece_of(files[0]), dim="time", zarr_format=zarr_format)
    ds.append([piece_of(f) for f in files])
    group = zarr.open_group(str(tmp_path / "out"), mode="r")
    t2m = group["t2m"]
    assert t2m.shape == (30, 16, 32)
    if zarr_format == 3:
        assert t2m.metadata.dimension_names == ("time", "lat", "lon")
    else:
        assert t2m.attrs["_ARRAY_DIMENSIONS"] == ["time", "lat", "lon"]
    with xr.open_dataset(files[2], engine="h5netcdf", mask_and_scale=False, decode_times=False) as ds:
        raw = ds.load()
    np.testing.assert_array_equal(t2m[12:18], raw.t2m.values)
    np.testing.assert_array_equal(group["precip"][12:18], raw.precip.values)


def test_bookkeeping_is_invisible_to_xarray_and_zarr_python(tmp_path, files):
    store = LocalStore(tmp_path / "out")
    create_dataset(store, "", template=piece_of(files[0]), dim="time").append([piece_of(files[0])])
    assert (tmp_path / "out" / ".zarrcore" / "commits").is_dir()  # the control: it exists
    assert set(opened(store).variables) == {"t2m", "precip", "orog", "time", "lat", "lon"}
    assert sorted(zarr.open_group(str(tmp_path / "out"), mode="r").keys()) == ["lat", "lon", "orog", "precip", "t2m",
                                                                                "time"]  # fmt: skip


def test_default_chunks_aim_at_about_4_mib(tmp_path):
    files = write_series(tmp_path / "raw", files=1, steps=2, ny=512, nx=1024)
    ds = create_dataset(LocalStore(tmp_path / "out"), "", template=piece_of(files[0]), dim="time")
    meta = ds.layout.arrays["t2m"]
    nbytes = np.prod(meta.chunks) * meta.dtype.itemsize
    assert 2 * 2**20 <= nbytes <= 4 * 2**20, meta.chunks
    assert open_dataset(LocalStore(tmp_path / "out")).layout.arrays["t2m"].chunks == meta.chunks
