"""The store file object under h5netcdf: bounded cache, one request per run of missing blocks, reads
pinned to the version opened; and the ``netcdf`` source kind landed by the real ingest flow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from flows.ingest import ingest
from flows.sources.netcdf import StoreFile, open_netcdf
from flows.stores import shared_store
from tests.fixtures.flowkit import run_flow
from tests.fixtures.netcdf_files import netcdf_bytes, write_netcdf
from zarrcore.errors import PreconditionFailed
from zarrcore.storage import MemoryStore

RAW = {"decode_cf": False, "mask_and_scale": False, "decode_times": False}


def test_store_file_reads_like_a_file_with_a_bounded_cache() -> None:
    store = MemoryStore()
    data = bytes(range(256)) * 4000  # 1,024,000 bytes
    store.put("blob", data)
    f = StoreFile(store, "blob", block_size=1000, cache_blocks=8)
    assert f.seek(1500) == 1500 and f.read(10) == data[1500:1510] and f.tell() == 1510
    requests = f.requests
    assert f.read(20) == data[1510:1530] and f.requests == requests  # the same block: from the cache
    f.seek(2900)
    assert f.read(2200) == data[2900:5100] and f.requests == requests + 1  # blocks 2..5: one request
    f.seek(10_000)
    assert f.read(50_000) == data[10_000:60_000] and f.requests == requests + 2  # large: straight through
    for start in range(0, len(data), 997):
        f.seek(start)
        assert f.read(300) == data[start : start + 300]
    assert f.cached_blocks == 8  # the cache stays bounded
    f.seek(-5, 2)
    assert f.read() == data[-5:] and f.read(10) == b""
    buffer = bytearray(7)
    f.seek(3)
    assert f.readinto(buffer) == 7 and bytes(buffer) == data[3:10]


def test_a_file_replaced_while_open_is_never_mixed() -> None:
    store = shared_store("memory://nc-replaced")
    store.put("a.nc", netcdf_bytes("2001-01-01", 24, ny=64, nx=128))
    with open_netcdf("memory://nc-replaced/a.nc", block_size=4096, cache_blocks=4) as source:
        first = source.variables["t2m"].data[0, :2, :2]
        store.put("a.nc", netcdf_bytes("2001-01-01", 24, ny=64, nx=128, seed=9))
        with pytest.raises(PreconditionFailed):
            source.variables["t2m"].data[20:, :, :]
        with pytest.raises(PreconditionFailed):
            _ = source.identity
    with open_netcdf("memory://nc-replaced/a.nc") as again:
        assert not np.array_equal(again.variables["t2m"].data[0, :2, :2], first)


@pytest.mark.usefixtures("prefect_api")
def test_ingest_lands_a_netcdf_variable_as_stored(tmp_path: Path) -> None:
    path = write_netcdf(tmp_path / "a.nc", "2001-01-01", 12, ny=10, nx=20)
    dest = tmp_path / "out.zarr"
    state, _ = run_flow(ingest, source={"kind": "netcdf", "url": str(path), "variable": "precip"},
                        destination=str(dest), array="precip", layout={"chunks": [6, 5, 10]},
                        execution={"max_workers": 3, "max_chunks_per_batch": 2})  # fmt: skip
    assert state.is_completed(), state.message
    landed = zarr.open_array(str(dest / "precip"), mode="r")
    expected = xr.open_dataset(path, engine="h5netcdf", **RAW).precip
    assert landed.dtype == np.int16 and landed.fill_value == expected.attrs["_FillValue"]
    np.testing.assert_array_equal(landed[...], expected.values)
