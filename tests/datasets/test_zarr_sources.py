"""Zarr datasets written by xarray (``to_zarr``, v2 and v3) as sources of the append flow, like NetCDF
files: a glob finds each store once, each lands once in coordinate order with its encoding kept, equal
to xarray's concatenation of the stores; a changed store is refused, or rewritten when asked. Local
disk and S3 (moto), through a real Prefect API."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from flows.append import append
from flows.sources.listing import list_sources, locate
from flows.sources.zarr_dataset import zarr_identity
from tests.fixtures.flowkit import run_flow
from tests.fixtures.netcdf_files import encoding, make_dataset, write_netcdf
from zarrcore.datasets import open_dataset
from zarrcore.storage import LocalStore

FAST = {"max_workers": 2, "max_chunks_per_batch": 4, "retry_delay_seconds": 0.01}
LAYOUT = {"chunks": {"time": 3, "lat": 8, "lon": 16}}
STARTS = ["2001-01-01T00", "2001-01-01T04", "2001-01-01T08", "2001-01-01T12"]


def write_store(path: Path, start: str, zarr_format: int, *, bump: float = 0.0) -> Path:
    ds = make_dataset(start, 4)
    ds["t2m"] = ds.t2m + bump
    ds.to_zarr(path, zarr_format=zarr_format, encoding=encoding(), mode="w", consolidated=True)
    return path


def stores(folder: Path, zarr_formats: list[int]) -> list[Path]:
    """Stores in time order, named in reverse order (the flow must order them by their time values)."""
    n = len(zarr_formats)
    return [write_store(folder / f"s-{n - 1 - i}.zarr", STARTS[i], fmt) for i, fmt in enumerate(zarr_formats)]


def concat(ordered: list[Path]) -> xr.Dataset:
    parts = [xr.open_zarr(p).load() for p in ordered]
    return xr.concat(parts, "time", data_vars="minimal", coords="minimal", compat="override", join="exact",
                     combine_attrs="override")  # fmt: skip


def published(dest: Path) -> tuple[bytes, int]:
    """What a reader sees and how many commits there are (a rerun that lands nothing changes neither)."""
    return (dest / "zarr.json").read_bytes(), len(list((dest / ".zarrcore" / "commits").iterdir()))


def _identity(path: Path) -> tuple[int, str | None, str | None]:
    here = locate(str(path))
    ident = zarr_identity(here.store.open(), here.key, here.url, with_hash=True)
    return ident.size, ident.version, ident.sha256


def test_a_glob_finds_each_store_once_and_its_identity_follows_its_bytes(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    a, b = stores(raw, [2, 3])
    nc = write_netcdf(raw / "x.nc", "2001-01-02", 2)
    assert list_sources(str(raw / "*.zarr")) == [str(b), str(a)]
    assert list_sources(str(raw / "*")) == [str(b), str(a), str(nc)]  # no object inside a store is a file
    assert list_sources(str(raw / "**" / "*.zarr")) == [str(b), str(a)]
    assert list_sources(str(a)) == [str(a)]

    def ident(path: Path, with_hash: bool = True) -> Any:
        here = locate(str(path))
        return zarr_identity(here.store.open(), here.key, here.url, with_hash=with_hash)

    first = ident(a)
    assert first == ident(a) and first.version == ident(a, with_hash=False).version
    write_store(a, STARTS[1], 3, bump=1.0)  # the same times, other values
    second = ident(a)
    assert second.sha256 != first.sha256 and second.version != first.version


@pytest.mark.usefixtures("prefect_api")
def test_zarr_stores_v2_and_v3_land_like_files_and_a_changed_one_is_refused_or_rewritten(tmp_path: Path) -> None:
    ordered = stores(tmp_path / "raw", [2, 3, 3, 2])
    dest = tmp_path / "ds.zarr"
    params = {"source": str(tmp_path / "raw" / "*.zarr"), "destination": str(dest), "layout": LAYOUT,
              "execution": FAST}  # fmt: skip
    state, _ = run_flow(append, **params)
    assert state.is_completed(), state.message
    assert [Path(r["file"]).name for r in state.result()["landed"]] == [p.name for p in ordered]
    got = xr.open_zarr(dest).load()
    xr.testing.assert_identical(got, concat(ordered))
    assert got.precip.encoding["dtype"] == "int16" and got.precip.encoding["scale_factor"] == pytest.approx(0.01)
    assert got.time.encoding["units"] == "hours since 2000-01-01" and got.time.encoding["dtype"] == "int32"
    landed = open_dataset(LocalStore(dest)).landed()[str(ordered[1])].source
    assert landed.content_hash and landed.size and landed.version

    before = published(dest)
    state, _ = run_flow(append, **params)  # the schedule fires again: nothing new
    assert state.is_completed() and state.result()["landed"] == [] and state.result()["skipped"] == 4
    assert published(dest) == before

    write_store(ordered[1], STARTS[1], 3, bump=2.0)  # a landed store changed
    state, _ = run_flow(append, **params)
    assert state.is_failed() and ordered[1].name in state.message and "changed" in state.message
    assert published(dest) == before
    state, _ = run_flow(append, **params, on_changed="rewrite")
    assert state.is_completed(), state.message
    assert [Path(r["file"]).name for r in state.result()["rewritten"]] == [ordered[1].name]
    xr.testing.assert_identical(xr.open_zarr(dest).load(), concat(ordered))
    landed = open_dataset(LocalStore(dest)).landed()[str(ordered[1])].source
    assert (landed.size, landed.version, landed.content_hash) == _identity(ordered[1])  # the new identity


def test_zarr_stores_on_s3_land_with_source_storage_options(tmp_path: Path, s3_server: Any, prefect_api: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    ordered = stores(tmp_path / "raw", [3, 2])
    bucket = s3_server.new_bucket()
    bucket_store = s3_server.store(bucket)
    for store in ordered:  # upload each store's objects as they are
        for f in sorted(p for p in store.rglob("*") if p.is_file()):
            bucket_store.put(f"raw/{f.relative_to(tmp_path / 'raw').as_posix()}", f.read_bytes())
    shutil.rmtree(ordered[0])  # the flow reads only S3 (the other local copies give the expected values)
    options = {"endpoint_url": s3_server.endpoint_url, "region": s3_server.region, "addressing_style": "path"}
    dest = tmp_path / "ds.zarr"
    params = {"source": f"s3://{bucket}/raw/*.zarr", "destination": str(dest), "layout": LAYOUT,
              "execution": FAST, "source_storage_options": options}  # fmt: skip
    state, _ = run_flow(append, **params)
    assert state.is_completed(), state.message
    assert [r["file"] for r in state.result()["landed"]] == [f"s3://{bucket}/raw/{p.name}" for p in ordered]
    write_store(ordered[0], STARTS[0], 3)
    xr.testing.assert_identical(xr.open_zarr(dest).load(), concat(ordered))
    before = published(dest)
    state, _ = run_flow(append, **params)
    assert state.is_completed() and state.result()["landed"] == [] and state.result()["skipped"] == 2
    assert published(dest) == before
