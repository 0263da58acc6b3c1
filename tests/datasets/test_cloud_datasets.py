"""Appends to S3, GCS and Azure (real emulators on 127.0.0.1), read back by xarray through
zarr-python's own stores with xarray's defaults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
