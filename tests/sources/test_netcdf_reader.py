"""NetCDF4/HDF5 files written by xarray (h5netcdf) read back by ``open_netcdf``: the generator's files
decode as intended, the reader keeps the stored encoding exactly as xarray sees it without decoding,
regions are read lazily, identities follow the bytes, and sources are ordered by time, not by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from flows.sources import SourceError
from flows.sources.netcdf import NetcdfArraySource, open_netcdf, order_by_coordinate
from tests.fixtures.netcdf_files import (
    PRECIP_FILL,
    PRECIP_OFFSET,
    PRECIP_SCALE,
    fields,
    netcdf_bytes,
    write_h5py_file,
    write_netcdf,
    write_series,
)

RAW = {"decode_cf": False, "mask_and_scale": False, "decode_times": False}


def test_generated_file_decodes_as_intended(tmp_path: Path) -> None:
    path = write_netcdf(tmp_path / "a.nc", "2001-03-01T06", 12, ny=6, nx=10, seed=7)
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert ds.time.values[0] == np.datetime64("2001-03-01T06", "ns")
    assert (np.diff(ds.time.values) == np.timedelta64(1, "h")).all()
    hours = (ds.time.values - np.datetime64("2000-01-01", "ns")) // np.timedelta64(1, "h")
    t2m, packed, orog = fields(hours.astype(np.int64), 6, 10, 7)
    np.testing.assert_array_equal(ds.t2m.values, t2m)
    np.testing.assert_array_equal(ds.orog.values, orog)
    assert ds.t2m.dtype == np.float32 and ds.orog.dims == ("lat", "lon")
    missing = packed == PRECIP_FILL
    assert 0 < missing.sum() < missing.size // 10
    np.testing.assert_array_equal(np.isnan(ds.precip.values), missing)
    np.testing.assert_allclose(ds.precip.values[~missing], packed[~missing] * PRECIP_SCALE + PRECIP_OFFSET)
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.t2m.attrs["units"] == "K"
    raw = xr.open_dataset(path, engine="h5netcdf", **RAW)
    assert raw.time.dtype == np.int32 and raw.time.attrs["units"] == "hours since 2000-01-01"
    assert raw.precip.dtype == np.int16 and raw.precip.attrs["scale_factor"] == PRECIP_SCALE
    assert netcdf_bytes("2001-03-01T06", 12, ny=6, nx=10, seed=7) == path.read_bytes()  # deterministic


@pytest.mark.parametrize("variant", ["int32-time", "float-time-zlib", "h5py"])
def test_reader_keeps_the_stored_encoding(tmp_path: Path, variant: str) -> None:
    if variant == "h5py":
        path = write_h5py_file(tmp_path / "plain.h5", steps=5)
    elif variant == "int32-time":
        path = write_netcdf(tmp_path / "a.nc", "2001-01-01", 8, ny=5, nx=9)
    else:
        path = write_netcdf(tmp_path / "a.nc", "2001-01-01", 8, ny=5, nx=9, time_dtype="float64", zlib=True,
                            chunks=(2, 5, 9))  # fmt: skip
    expected = xr.open_dataset(path, engine="h5netcdf", phony_dims="access", **RAW)
    with open_netcdf(str(path)) as source:
        assert source.attrs.keys() == expected.attrs.keys()
        for key, value in expected.attrs.items():
            np.testing.assert_array_equal(source.attrs[key], value)
        assert set(source.variables) == set(expected.variables)
        for name, want in expected.variables.items():
            got = source.variables[name]
            assert got.dims == want.dims and got.shape == want.shape and got.dtype == want.dtype, name
            assert got.attrs.keys() == want.attrs.keys(), name
            for key, value in want.attrs.items():
                np.testing.assert_array_equal(got.attrs[key], value)
                assert np.asarray(got.attrs[key]).dtype == np.asarray(value).dtype, (name, key)
            np.testing.assert_array_equal(got.data[...], want.values)
            assert got.fill_value is want.attrs.get("_FillValue") or np.array_equal(
                got.fill_value, want.attrs.get("_FillValue"), equal_nan=True)  # fmt: skip
        precip = source.variables["precip"]
        assert precip.dtype == np.int16 and (precip.data[...] == PRECIP_FILL).any()  # still packed
        time = source.coordinate("time")
        assert time.attrs["units"] == "hours since 2000-01-01" and time.attrs["calendar"] == "standard"
        assert variant != "float-time-zlib" or time.dtype == np.float64
        np.testing.assert_array_equal(source.coordinate_values("time"), expected.time.values)


def test_region_reads_are_lazy(tmp_path: Path) -> None:
    path = write_netcdf(tmp_path / "big.nc", "2001-01-01", 24, ny=160, nx=320)  # about 7 MB
    size = path.stat().st_size
    with open_netcdf(str(path), block_size=64 << 10) as source:
        opened = source.file.bytes_fetched
        region = source.variables["t2m"].data[3:5, 10:20, 30:40]
        assert region.shape == (2, 10, 10)
        np.testing.assert_array_equal(region, xr.open_dataset(path, **RAW).t2m.values[3:5, 10:20, 30:40])
        assert source.file.bytes_fetched - opened < size // 20
        whole = source.variables["precip"].data[...]
        assert whole.shape == (24, 160, 320) and source.file.bytes_fetched > size // 4


def test_identity_changes_when_the_file_changes(tmp_path: Path) -> None:
    path = write_netcdf(tmp_path / "a.nc", "2001-01-01", 4, ny=4, nx=8)
    with open_netcdf(str(path)) as source:
        first = source.identity
    assert first.url == str(path) and first.size == path.stat().st_size and first.mtime_ns is not None
    assert first.sha256 is not None and first.version is not None
    with open_netcdf(str(path)) as again:
        assert again.identity == first  # nothing changed
    write_netcdf(path, "2001-01-01", 4, ny=4, nx=8, seed=1)  # same size, other values
    with open_netcdf(str(path)) as changed:
        assert changed.identity.sha256 != first.sha256 and changed.identity.version != first.version


def test_order_by_time_not_by_name(tmp_path: Path) -> None:
    paths = write_series(tmp_path, "2001-01-30", files=4, steps=24, name="{reverse}-part.nc", ny=3, nx=4)
    by_name = sorted(str(p) for p in paths)
    assert by_name != [str(p) for p in paths]  # names sort in the wrong order
    sources = [open_netcdf(p) for p in by_name]
    try:
        ordered = order_by_coordinate(sources, "time")
        assert [s.url for s in ordered] == [str(p) for p in paths]
        write_netcdf(tmp_path / "days.nc", "2001-03-01", 2, ny=3, nx=4, units="days since 2000-01-01",
                     time_dtype="float64")  # fmt: skip
        other = open_netcdf(str(tmp_path / "days.nc"))
        sources.append(other)
        with pytest.raises(SourceError, match="mixed units") as err:
            order_by_coordinate(sources, "time")
        assert "days.nc" in str(err.value) and "0-part.nc" in str(err.value)
        with pytest.raises(SourceError, match="no coordinate variable for dimension 'step'"):
            order_by_coordinate(sources[:1], "step")
    finally:
        for s in sources:
            s.close()


def test_netcdf_kind_reads_one_variable(tmp_path: Path) -> None:
    path = write_netcdf(tmp_path / "a.nc", "2001-01-01", 6, ny=4, nx=8)
    reader = NetcdfArraySource(url=str(path), variable="precip").open()
    assert reader.shape == (6, 4, 8) and reader.dtype == np.int16 and reader.fill_value == PRECIP_FILL
    np.testing.assert_array_equal(reader.read((slice(1, 3), slice(0, 4), slice(2, 5))),
                                  xr.open_dataset(path, **RAW).precip.values[1:3, :, 2:5])  # fmt: skip
    with pytest.raises(SourceError, match="no variable 'nope'"):
        NetcdfArraySource(url=str(path), variable="nope").open()


def test_benchmark_year_uses_the_same_files(tmp_path: Path) -> None:
    from bench.datasets_data import YearSpec, generate_year

    spec = YearSpec(start="2001-12-30", days=3, ny=4, nx=6, seed=2)
    files = generate_year(tmp_path / "year", spec, workers=1)
    assert [p.name for p in files] == ["era-2001-12-30.nc", "era-2001-12-31.nc", "era-2002-01-01.nc"]
    assert files[2].read_bytes() == netcdf_bytes("2002-01-01", 24, ny=4, nx=6, seed=2)
    stamp = files[0].stat().st_mtime_ns
    assert generate_year(tmp_path / "year", spec) == files and files[0].stat().st_mtime_ns == stamp  # reused
    ds = xr.open_mfdataset(files, engine="h5netcdf", combine="nested", concat_dim="time",
                           data_vars="minimal", coords="minimal", compat="override")
    assert ds.sizes["time"] == 72 and (np.diff(ds.time.values) == np.timedelta64(1, "h")).all()


EXIT_PROBE = """
import atexit, sys
from flows.sources import netcdf
if sys.argv[2] == "without-close-all":
    atexit.unregister(netcdf.close_all)
reader = netcdf.NetcdfArraySource(url=sys.argv[1], variable="precip").open()  # cached, never closed
print(reader.read((slice(0, 1), slice(0, 4), slice(0, 8))).shape)
"""


def test_a_process_exits_cleanly_with_files_left_open(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.fixtures.paths import REPO

    path = write_netcdf(tmp_path / "a.nc", "2001-01-01", 4, ny=4, nx=8)

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", EXIT_PROBE, str(path), mode], cwd=REPO, capture_output=True,
                              text=True, timeout=120)  # fmt: skip

    done = run("as-shipped")
    assert done.returncode == 0 and done.stdout.strip() == "(1, 4, 8)", done.stderr
    control = run("without-close-all")  # HDF5 closing a Python file object during teardown crashes
    assert control.stdout.strip() == "(1, 4, 8)" and control.returncode != 0
