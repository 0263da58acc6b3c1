"""Rewriting the region of a landed file whose content changed: equal to xarray's concatenation of the
current files, the neighbours' values in shared chunks kept, published in one PUT (a reader that opened
before sees every variable's old values), refused with nothing written when its region would move or
its static variables differ, and a rerun writes nothing. Local disk and S3 (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from tests.datasets.pieces import expected, opened, piece_of
from tests.fixtures.netcdf_files import encoding, make_dataset, write_netcdf, write_series
from tests.fixtures.zarr_python_stores import ZarrPythonStores
from zarrcore.datasets import create_dataset, open_dataset
from zarrcore.datasets.ledger import mark
from zarrcore.errors import ChangedSourceError, StaticMismatchError
from zarrcore.nodes import write_node
from zarrcore.storage import LocalStore

CHUNKS = {"time": 3, "lat": 8, "lon": 16}  # 4 steps per file: chunks straddle the files


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def change(path: Path, start: str, steps: int = 4, *, by: float = 1.0) -> Path:
    """Write the file again with other data values, the same times and static variables."""
    ds = make_dataset(start, steps)
    ds["t2m"] = ds.t2m + by
    ds["precip"] = ds.precip * 2
    ds.to_netcdf(path, engine="h5netcdf", encoding=encoding())
    return path


@pytest.fixture
def landed(tmp_path: Path, request: Any) -> tuple[Any, Path, list[Path]]:
    zarr_format = getattr(request, "param", 3)
    files = write_series(tmp_path / "raw", "2001-01-01", files=4, steps=4)
    store = LocalStore(tmp_path / "out")
    ds = create_dataset(store, "", template=piece_of(files[0]), dim="time", chunks=CHUNKS, zarr_format=zarr_format)
    return ds.append([piece_of(f) for f in files]), tmp_path / "out", files


@pytest.mark.parametrize("landed", [2, 3], indirect=True, ids=["v2", "v3"])
def test_a_changed_file_in_the_middle_is_rewritten_and_published_at_once(landed: Any, tmp_path: Path) -> None:
    ds, root, files = landed
    before = expected(files)
    reader = xr.open_zarr(root)  # opened before the rewrite, read after it
    old_id = ds.landed()[files[1].as_uri()].source
    change(files[1], "2001-01-01T04")
    new = write_netcdf(tmp_path / "raw" / "day-004.nc", "2001-01-01T16", 4)
    current = [*files, new]
    with pytest.raises(ChangedSourceError, match=r"day-001\.nc"):  # the default still refuses
        ds.append([piece_of(f) for f in current])
    txn = ds.begin_rewrite([piece_of(f) for f in current])
    assert txn is not None and [p.source.key for p in txn.placements] == [files[1].as_uri()]
    assert all(u.copy for u in txn.units if not u.placements) and any(u.merge for u in txn.units)
    txn.write_all()
    xr.testing.assert_identical(opened(root), before)  # written, not yet published: nothing seen
    ds = txn.commit()
    xr.testing.assert_identical(opened(root), expected(files))
    xr.testing.assert_identical(reader.load(), before)  # the early reader: every variable's old values
    new_id = ds.landed()[files[1].as_uri()].source
    assert new_id == piece_of(files[1]).source and new_id.version != old_id.version
    ds = ds.append([piece_of(f) for f in current], on_changed="rewrite")  # the new file lands after
    xr.testing.assert_identical(opened(root), expected(current))
    state = snapshot(root)
    assert ds.begin_rewrite([piece_of(f) for f in current]) is None  # rerun: nothing to do
    assert ds.append([piece_of(f) for f in current], on_changed="rewrite").extent == 20
    assert snapshot(root) == state
    change(files[2], "2001-01-01T08", by=3.0)  # a second rewrite moves the arrays back to their first keys
    ds = ds.rewrite([piece_of(f) for f in current])
    xr.testing.assert_identical(opened(root), expected(current))


def test_a_rewrite_whose_region_would_move_or_whose_statics_differ_is_refused(landed: Any, tmp_path: Path) -> None:
    ds, root, files = landed
    state = snapshot(root)
    write_netcdf(files[1], "2001-01-01T05", 4)  # its times moved by an hour
    with pytest.raises(ChangedSourceError, match=r"day-001\.nc.*region would move") as info:
        ds.begin_rewrite([piece_of(f) for f in files])
    assert info.value.source == files[1].as_uri()
    write_netcdf(files[1], "2001-01-01T04", 3)  # one step shorter
    with pytest.raises(ChangedSourceError, match="region would move"):
        ds.begin_rewrite([piece_of(files[1])])
    write_netcdf(files[1], "2001-01-01T04", 4, seed=7)  # same times, another orography
    with pytest.raises(StaticMismatchError, match="orog"):
        ds.begin_rewrite([piece_of(files[1])])
    assert snapshot(root) == state  # nothing written, not even an intent
    change(files[1], "2001-01-01T04")  # the positive control: a changed file that fits is rewritten
    assert ds.rewrite([piece_of(files[1])]).landed()[files[1].as_uri()].commit == 2


def test_an_unfinished_rewrite_is_completed_or_discarded(landed: Any) -> None:
    ds, root, files = landed
    change(files[2], "2001-01-01T08")
    txn = ds.begin_rewrite([piece_of(files[2])])
    assert txn is not None
    for unit in txn.units[: len(txn.units) // 2]:  # a crash halfway
        txn.write(unit)
    again = open_dataset(LocalStore(root)).begin_rewrite([piece_of(files[2])])  # the same plan: resumed
    assert again is not None and again.number == txn.number
    again.write_all()
    ds = again.commit()
    xr.testing.assert_identical(opened(root), expected(files))
    # published, then a crash before the record was marked: the ledger still has the new identity
    mark(ds.store, "", again.record, "intent")
    assert open_dataset(LocalStore(root)).begin_rewrite([piece_of(f) for f in files]) is None
    # an unfinished rewrite with another plan is discarded, the arrays' own metadata back on the published keys
    published = expected(files)
    change(files[0], "2001-01-01T00")
    first = open_dataset(LocalStore(root)).begin_rewrite([piece_of(files[0])])
    assert first is not None
    first.write_all()
    for name, meta in first.layout.arrays.items():  # as a commit stopped between the arrays' own metadata
        if meta != ds.layout.arrays[name]:
            write_node(ds.store, name, meta)
    assert not xr.open_zarr(root, consolidated=False).load().identical(published)  # the control
    change(files[0], "2001-01-01T00", by=2.0)
    second = open_dataset(LocalStore(root)).begin_rewrite([piece_of(files[0])])
    assert second is not None and second.number == first.number + 1
    xr.testing.assert_identical(xr.open_zarr(root, consolidated=False).load(), published)
    second.write_all()
    ds = second.commit()  # its keys are the first ones again: the unmarked commit was marked on the way
    xr.testing.assert_identical(opened(root), expected(files))
    assert ds.landed()[files[2].as_uri()].commit == again.number


def test_a_rewrite_in_region_mode_keeps_the_missing_regions_missing(tmp_path: Path) -> None:
    files = write_series(tmp_path / "raw", files=3, steps=4)
    hours = piece_of(files[0]).variables["time"].read()[0] + np.arange(12)
    store = LocalStore(tmp_path / "out")
    ds = create_dataset(store, "", template=piece_of(files[0]), dim="time", chunks=CHUNKS, axis=hours)
    ds = ds.write_region([piece_of(files[2]), piece_of(files[0])])
    change(files[2], "2001-01-01T08")
    ds = ds.rewrite([piece_of(f) for f in files])  # files[1] has not landed: it is not the rewrite's
    got, want = opened(store), expected([files[0], files[2]])
    xr.testing.assert_identical(got.isel(time=slice(8, 12)), want.isel(time=slice(4, 8)))
    assert ds.missing() == [(4, 8)] and bool(np.isnan(got.t2m[4:8]).all())
    ds = ds.write_region([piece_of(f) for f in files])  # a region landed after the rewrite, at the new keys
    xr.testing.assert_identical(opened(store), expected(files))


@pytest.fixture
def theirs() -> Iterator[ZarrPythonStores]:
    stores = ZarrPythonStores()
    yield stores
    stores.close()


def test_a_rewrite_on_s3_opens_in_xarray(s3_store: Any, s3_server: Any, s3_bucket: str, tmp_path: Path,
                                        theirs: ZarrPythonStores) -> None:  # fmt: skip
    files = write_series(tmp_path / "raw", files=3, steps=4)
    ds = create_dataset(s3_store, "ds", template=piece_of(files[0]), dim="time", chunks=CHUNKS)
    ds = ds.append([piece_of(f) for f in files])
    change(files[1], "2001-01-01T04")
    pieces = [piece_of(f) for f in files]
    ds = ds.append(pieces, on_changed="rewrite")
    assert ds.landed()[files[1].as_uri()].source == pieces[1].source
    zstore = theirs.open("s3", s3_server, s3_bucket, "root/ds", read_only=True)
    xr.testing.assert_identical(xr.open_zarr(zstore).load(), expected(files))
    assert ds.begin_rewrite(pieces) is None


@pytest.mark.usefixtures("prefect_api")
def test_cli_append_rewrite_changed_rewrites_a_changed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main as zarrflow

    files = write_series(tmp_path / "raw", files=4, steps=4)
    dest, pattern = tmp_path / "cli.zarr", str(tmp_path / "raw" / "*.nc")
    assert zarrflow(["append", pattern, str(dest), "--chunks", "time=3,lat=8,lon=16", "--workers", "2"]) == 0
    change(files[2], "2001-01-01T08")  # (without the flag it is refused: test_append_flow, test_zarr_sources)
    assert zarrflow(["append", pattern, str(dest), "--rewrite-changed"]) == 0
    assert "rewritten" in capsys.readouterr().out
    xr.testing.assert_identical(opened(dest), expected(files))
    published = (dest / "zarr.json").read_bytes()
    assert zarrflow(["append", pattern, str(dest), "--rewrite-changed"]) == 0  # rerun: nothing to do
    assert (dest / "zarr.json").read_bytes() == published
    assert len(list((dest / ".zarrcore" / "commits").iterdir())) == 2
