"""NetCDF files on object stores (S3 on moto, GCS on fake-gcs-server, Azure on Azurite, memory): opened
through zarrcore's stores, one small variable of a large file costs a few ranged requests, listings match
globs through the store, and identities follow the store's versions and the bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5netcdf
import numpy as np
import pytest
import xarray as xr

from flows.sources.listing import file_identity, list_sources
from flows.sources.netcdf import StoreFile, open_netcdf, order_by_coordinate
from tests.fixtures.instrumented import InstrumentedStore
from tests.fixtures.netcdf_files import netcdf_bytes

RAW = {"decode_cf": False, "mask_and_scale": False, "decode_times": False}


@pytest.fixture
def cloud(request: pytest.FixtureRequest) -> Any:
    """``cloud(backend) -> (store, url of the store's root folder, storage options)`` on a fresh bucket."""

    def make(backend: str) -> tuple[Any, str, dict[str, Any]]:
        server = request.getfixturevalue(f"{backend}_server")
        if backend == "s3":
            bucket = server.new_bucket()
            return server.store(bucket, "root"), f"s3://{bucket}/root", server.options()
        if backend == "gcs":
            bucket = server.new_bucket()
            return server.store(bucket, "root"), f"gs://{bucket}/root", server.options()
        container = server.new_container()
        return server.store(container, "root"), f"az://{container}/root", server.options()

    return make


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_one_small_variable_of_a_large_file_costs_a_few_requests(cloud: Any, backend: str, tmp_path: Path) -> None:
    store, root, options = cloud(backend)
    data = netcdf_bytes("2001-01-01", 24, ny=200, nx=400)  # about 12 MB
    store.put("raw/big.nc", data)
    (tmp_path / "big.nc").write_bytes(data)
    expected = xr.open_dataset(tmp_path / "big.nc", engine="h5netcdf", **RAW)
    with open_netcdf(f"{root}/raw/big.nc", options) as source:
        orog = source.variables["orog"]
        np.testing.assert_array_equal(orog.data[...], expected.orog.values)
        assert orog.attrs.keys() == expected.orog.attrs.keys()
        assert source.attrs == expected.attrs
        np.testing.assert_array_equal(source.variables["precip"].data[5, :3, :4], expected.precip.values[5, :3, :4])
        assert source.file.bytes_fetched < len(data) // 10, source.file.bytes_fetched  # orog alone is 320 kB
        assert source.file.requests <= 8, source.file.requests
        ident = source.identity
    assert ident.url == f"{root}/raw/big.nc" and ident.size == len(data) and ident.version
    counted = InstrumentedStore(store)  # the requests as the store sees them
    with h5netcdf.File(StoreFile(counted, "raw/big.nc"), "r") as f:
        np.testing.assert_array_equal(f.variables["orog"][...], expected.orog.values)
    assert counted.calls["get"] <= 6 and sum(n for *_, n in counted.gets) < len(data) // 10, counted.gets
    assert ident == file_identity(f"{root}/raw/big.nc", options)
    store.put("raw/big.nc", netcdf_bytes("2001-01-01", 24, ny=200, nx=400, seed=3))
    changed = file_identity(f"{root}/raw/big.nc", options)
    assert changed.sha256 != ident.sha256 and changed.version != ident.version


def test_listing_and_ordering_on_s3(cloud: Any) -> None:
    store, root, options = cloud("s3")
    days = ["2001-01-03", "2001-01-01", "2001-01-02"]
    names = ["a.nc", "c.nc", "b.nc"]  # name order is not time order
    for name, day in zip(names, days, strict=True):
        store.put(f"raw/2001/{name}", netcdf_bytes(day, 24, ny=3, nx=4))
    store.put("raw/2001/notes.txt", b"not a netcdf file")
    store.put("raw/top.nc", netcdf_bytes("2000-12-31", 24, ny=3, nx=4))
    store.put("rawer/x.nc", b"outside the prefix")
    assert list_sources(f"{root}/raw/2001/*.nc", options) == [f"{root}/raw/2001/{n}" for n in sorted(names)]
    assert list_sources(f"{root}/raw/**/*.nc", options) == sorted(
        [f"{root}/raw/2001/{n}" for n in names] + [f"{root}/raw/top.nc"]
    )
    assert list_sources(f"{root}/raw/2001/[ab].nc", options) == [f"{root}/raw/2001/a.nc", f"{root}/raw/2001/b.nc"]
    assert list_sources(f"{root}/raw/top.nc", options) == [f"{root}/raw/top.nc"]
    assert list_sources(f"{root}/raw/missing.nc", options) == []
    sources = [open_netcdf(url, options) for url in list_sources(f"{root}/raw/**/*.nc", options)]
    try:
        ordered = [s.url.rsplit("/", 1)[1] for s in order_by_coordinate(sources, "time")]
    finally:
        for s in sources:
            s.close()
    assert ordered == ["top.nc", "c.nc", "b.nc", "a.nc"]


def test_listing_on_local_disk_and_memory(tmp_path: Path) -> None:
    for rel in ["raw/a.nc", "raw/b.nc", "raw/2001/01/c.nc", "raw/2001/d.txt", "other/e.nc"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    raw = tmp_path / "raw"
    assert list_sources(f"{raw}/*.nc") == [f"{raw}/a.nc", f"{raw}/b.nc"]
    assert list_sources(f"{raw}/**/*.nc") == [f"{raw}/2001/01/c.nc", f"{raw}/a.nc", f"{raw}/b.nc"]
    assert list_sources(f"{raw}/2001/*/*.nc") == [f"{raw}/2001/01/c.nc"]
    assert list_sources(f"file://{raw}/?.nc") == [f"file://{raw}/a.nc", f"file://{raw}/b.nc"]
    assert list_sources(f"{tmp_path}/*/e.nc") == [f"{tmp_path}/other/e.nc"]
    assert list_sources(f"{tmp_path}/nowhere/*.nc") == []
    assert list_sources(f"{raw}/a.nc") == [f"{raw}/a.nc"]
    from flows.stores import shared_store

    memory = shared_store("memory://nc-listing")
    memory.put("raw/x.nc", netcdf_bytes("2001-01-01", 2, ny=2, nx=3))
    memory.put("raw/y.txt", b"y")
    assert list_sources("memory://nc-listing/raw/*.nc") == ["memory://nc-listing/raw/x.nc"]
    with open_netcdf("memory://nc-listing/raw/x.nc") as source:
        assert source.variables["t2m"].shape == (2, 2, 3)
