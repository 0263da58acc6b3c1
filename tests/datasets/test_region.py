"""Region mode: a dataset created at its full length, files landed into their regions in any order."""

from __future__ import annotations

import random

import numpy as np
import pytest
import xarray as xr

from tests.datasets.pieces import expected, opened, piece_of
from tests.fixtures.netcdf_files import write_netcdf, write_series
from zarrcore.datasets import create_dataset, open_dataset
from zarrcore.datasets.ledger import read_records
from zarrcore.errors import OrderError
from zarrcore.storage import LocalStore

STEPS, FILES = 2, 8  # chunks of 3 steps: most chunks hold parts of two files


def axis_of(files):
    return np.concatenate([piece_of(f).variables["time"].read() for f in files])


@pytest.fixture
def region(tmp_path):
    files = write_series(tmp_path / "raw", "2001-01-01", files=FILES, steps=STEPS)
    ds = create_dataset(LocalStore(tmp_path / "out"), "", template=piece_of(files[0]), dim="time",
                        chunks={"time": 3}, axis=axis_of(files))  # fmt: skip
    return ds, files


def test_files_land_in_random_order_and_equal_xarray_at_the_end(region):
    ds, files = region
    order = list(range(FILES))
    random.Random(7).shuffle(order)
    assert ds.extent == STEPS * FILES and ds.missing() == [(0, STEPS * FILES)]
    for batch in (order[:3], order[3:4], order[4:]):
        ds = ds.write_region([piece_of(files[i]) for i in batch])
    xr.testing.assert_identical(opened(ds.store), expected(files))
    assert ds.missing() == []


def test_regions_not_landed_read_as_missing_and_are_listed(region):
    ds, files = region
    ds = ds.write_region([piece_of(files[i]) for i in (0, 3, 4)])
    assert ds.missing() == [(2, 6), (10, 16)]
    got, want = opened(ds.store), expected(files)
    landed = np.r_[0:2, 6:10]
    xr.testing.assert_identical(got.isel(time=landed), want.isel(time=landed))
    assert got.t2m.isel(time=slice(2, 6)).isnull().all() and got.precip.isel(time=slice(10, 16)).isnull().all()
    xr.testing.assert_identical(got.time, want.time)  # the axis is whole from the start


def test_rerun_and_overlap_and_off_axis_are_handled(region, tmp_path):
    ds, files = region
    ds = ds.write_region([piece_of(files[1])])
    assert ds.begin_region([piece_of(files[1])]) is None  # landed once
    for name, start, step in (("late.nc", "2002-01-01", 1), ("sparse.nc", "2001-01-01T08", 2)):
        with pytest.raises(OrderError, match=f"{name}: its 'time' values are not on the dataset's axis"):
            ds.begin_region([piece_of(write_netcdf(tmp_path / "raw" / name, start, 2, step_hours=step))])
    overlap = write_netcdf(tmp_path / "raw" / "overlap.nc", "2001-01-01T03", 2)  # steps 3..4: files 1 and 2
    with pytest.raises(OrderError, match=r"overlaps .*day-001\.nc"):
        ds.begin_region([piece_of(overlap)])
    assert open_dataset(ds.store).missing() == [(0, 2), (4, 16)]


def test_an_interrupted_region_commit_is_replaced_by_the_next(region):
    ds, files = region
    txn = ds.begin_region([piece_of(files[2]), piece_of(files[5])])
    for unit in txn.units[: len(txn.units) // 2]:
        txn.write(unit)  # a writer that died half way: its sources have not landed
    assert open_dataset(ds.store).landed() == {}
    ds = open_dataset(ds.store).write_region([piece_of(f) for f in files])
    xr.testing.assert_identical(opened(ds.store), expected(files))
    assert [r.state for r in read_records(ds.store, ds.path)] == ["discarded", "published"]
