"""Appends to S3, GCS and Azure (real emulators on 127.0.0.1), read back by xarray through
zarr-python's own stores with xarray's defaults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import xarray as xr

from tests.datasets.pieces import expected, piece_of
from tests.fixtures.netcdf_files import write_series
from tests.fixtures.zarr_python_stores import ZarrPythonStores
from zarrcore.datasets import create_dataset, open_dataset

BUCKET_FIXTURE = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}


@pytest.fixture
def theirs() -> Iterator[ZarrPythonStores]:
    stores = ZarrPythonStores()
    yield stores
    stores.close()


@pytest.mark.parametrize("zarr_format", [3, 2])
@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_appends_on_object_stores_open_in_xarray(backend: str, zarr_format: int, request: Any, tmp_path: Any,
                                                 theirs: ZarrPythonStores) -> None:  # fmt: skip
    store = request.getfixturevalue(f"{backend}_store")  # a store on a fresh bucket, under "root"
    bucket = request.getfixturevalue(BUCKET_FIXTURE[backend])
    server = request.getfixturevalue(f"{backend}_server")
    files = write_series(tmp_path / "raw", files=4, steps=3)
    ds = create_dataset(store, "ds", template=piece_of(files[0]), dim="time", chunks={"time": 4},
                        zarr_format=zarr_format)  # fmt: skip
    ds = ds.append([piece_of(f) for f in files[:2]])
    ds = ds.append([piece_of(f) for f in files])
    assert ds.extent == 12 and sorted(open_dataset(store, "ds").landed()) == sorted(f.as_uri() for f in files)
    zstore = theirs.open(backend, server, bucket, "root/ds", read_only=True)
    xr.testing.assert_identical(xr.open_zarr(zstore).load(), expected(files))


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_region_mode_on_object_stores_lands_files_in_any_order(backend: str, request: Any, tmp_path: Any,
                                                               theirs: ZarrPythonStores) -> None:  # fmt: skip
    store = request.getfixturevalue(f"{backend}_store")
    bucket = request.getfixturevalue(BUCKET_FIXTURE[backend])
    server = request.getfixturevalue(f"{backend}_server")
    files = write_series(tmp_path / "raw", files=5, steps=2)
    pieces = [piece_of(f) for f in files]
    axis = np.concatenate([p.variables["time"].read() for p in pieces])
    ds = create_dataset(store, "ds", template=pieces[0], dim="time", chunks={"time": 3}, axis=axis)
    order = [3, 0, 4]
    ds = ds.write_region([pieces[i] for i in order[:2]])
    ds = ds.write_region([pieces[order[2]]])
    assert ds.missing() == [(2, 6)]  # files 1 and 2 not landed
    zstore = theirs.open(backend, server, bucket, "root/ds", read_only=True)
    seen = xr.open_zarr(zstore).load()
    assert seen.sizes["time"] == 10 and bool(seen.t2m.isel(time=slice(2, 6)).isnull().all())
    xr.testing.assert_identical(seen.isel(time=slice(6, 10)), expected(files[3:]))
    ds = open_dataset(store, "ds").write_region([pieces[2], pieces[1]])
    assert ds.missing() == []
    xr.testing.assert_identical(xr.open_zarr(theirs.open(backend, server, bucket, "root/ds", read_only=True)).load(),
                                expected(files))  # fmt: skip
