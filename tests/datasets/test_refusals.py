"""Pieces that do not fit are refused before anything is written, with an error naming the culprit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.datasets.pieces import piece_of
from tests.fixtures.netcdf_files import write_netcdf, write_series
from zarrcore.datasets import SourceId, Variable, create_dataset, open_dataset
from zarrcore.errors import ChangedSourceError, DatasetError, LayoutMismatchError, OrderError, StaticMismatchError
from zarrcore.storage import LocalStore


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def landed(tmp_path):
    """A dataset with the first two of four daily files landed, and the files."""
    files = write_series(tmp_path / "raw", "2001-01-01", files=4, steps=4)
    store = LocalStore(tmp_path / "out")
    ds = create_dataset(store, "", template=piece_of(files[0]), dim="time", chunks={"time": 3})
    ds = ds.append([piece_of(f) for f in files[:2]])
    return tmp_path / "out", ds, files


def with_attrs(var, **attrs):
    return Variable(var.dims, var.data, {**var.attrs, **attrs})


def refused(root, ds, pieces, error, match):
    before = snapshot(root)
    with pytest.raises(error, match=match) as info:
        ds.begin_append(pieces)
    assert snapshot(root) == before  # nothing written, not even an intent
    return info.value


def test_rerun_of_landed_files_lands_nothing(landed):
    root, ds, files = landed
    before = snapshot(root)
    assert ds.begin_append([piece_of(f) for f in files[:2]]) is None
    assert ds.append([piece_of(f) for f in files[:2]]).extent == 8
    assert snapshot(root) == before
    assert sorted(ds.landed()) == sorted(f.as_uri() for f in files[:2])


def test_a_file_before_the_end_is_refused_naming_it(landed, tmp_path):
    root, ds, _ = landed
    early = write_netcdf(tmp_path / "raw" / "early.nc", "2000-12-31", 4)
    err = refused(root, ds, [piece_of(early)], OrderError, "early.nc.*not after")
    assert err.source.endswith("early.nc")


def test_a_file_overlapping_the_end_is_refused(landed, tmp_path):
    root, ds, _ = landed
    overlap = write_netcdf(tmp_path / "raw" / "overlap.nc", "2001-01-01T06", 4)  # 06..09, the end is 07
    refused(root, ds, [piece_of(overlap)], OrderError, "overlap.nc")


def test_two_new_files_overlapping_each_other_are_refused(landed, tmp_path):
    root, ds, files = landed
    twin = write_netcdf(tmp_path / "raw" / "twin.nc", "2001-01-01T09", 4)
    refused(root, ds, [piece_of(files[2]), piece_of(twin)], OrderError, "(twin|day-002).nc")


def test_a_landed_file_that_changed_is_refused_naming_it(landed):
    root, ds, files = landed
    piece = piece_of(files[1])
    changed = dataclasses.replace(piece, source=dataclasses.replace(piece.source, size=piece.source.size + 1))
    err = refused(root, ds, [piece_of(files[2]), changed], ChangedSourceError, "day-001.nc.*size")
    assert err.source == files[1].as_uri()


def test_content_hash_decides_when_both_sides_have_one(tmp_path):
    files = write_series(tmp_path / "raw", files=2, steps=2)
    ds = create_dataset(LocalStore(tmp_path / "out"), "", template=piece_of(files[0]), dim="time")
    ds = ds.append([piece_of(files[0], content_hash="aa")])
    same = piece_of(files[0], content_hash="aa")
    same = dataclasses.replace(same, source=dataclasses.replace(same.source, version="touched"))
    assert ds.begin_append([same]) is None  # touched, same content: landed
    with pytest.raises(ChangedSourceError, match="content_hash"):
        ds.begin_append([piece_of(files[0], content_hash="bb")])


def test_a_static_variable_that_differs_is_refused_naming_it(landed, tmp_path):
    root, ds, _ = landed
    other = write_netcdf(tmp_path / "raw" / "seed.nc", "2001-01-03", 4, seed=1)  # orog depends on the seed
    err = refused(root, ds, [piece_of(other)], StaticMismatchError, "orog")
    assert err.variable == "orog"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda v: {k: x for k, x in v.items() if k != "precip"}, "'precip' of the dataset is missing"),
        (lambda v: {**v, "extra": v["orog"]}, "'extra' is not in the dataset"),
        (lambda v: {**v, "t2m": Variable(v["t2m"].dims, v["t2m"].data.astype("f8"), v["t2m"].attrs)}, "dtype"),
        (lambda v: {**v, "precip": with_attrs(v["precip"], scale_factor=0.1)}, "encoded"),
        (lambda v: {**v, "time": with_attrs(v["time"], units="days since 2000-01-01")}, "encoded"),
        (lambda v: {**v, "t2m": Variable(("time", "lon", "lat"), np.swapaxes(v["t2m"].data, 1, 2))}, "dims"),
    ],
    ids=["missing", "extra", "dtype", "packing", "time-units", "dims"],
)
def test_a_piece_of_another_layout_is_refused_naming_the_variable(landed, change, match):
    root, ds, files = landed
    piece = piece_of(files[2])
    bad = dataclasses.replace(piece, variables=change(piece.variables))
    refused(root, ds, [bad], LayoutMismatchError, match)


def test_a_source_given_twice_is_refused(landed):
    root, ds, files = landed
    refused(root, ds, [piece_of(files[2]), piece_of(files[2])], OrderError, "given twice")


def test_time_values_must_increase_within_a_file(landed):
    root, ds, files = landed
    piece = piece_of(files[2])
    t = piece.variables["time"]
    bad = dataclasses.replace(piece, variables={**piece.variables, "time": Variable(("time",), t.data[::-1], t.attrs)})
    refused(root, ds, [bad], OrderError, "increase")


def test_create_refuses_an_existing_dataset_unless_exist_ok(landed):
    _, ds, files = landed
    with pytest.raises(DatasetError, match="already exists"):
        create_dataset(ds.store, "", template=piece_of(files[0]), dim="time")
    again = create_dataset(ds.store, "", template=piece_of(files[0]), dim="time", exist_ok=True)
    assert again.extent == 8


def test_open_without_a_dataset_names_the_place(tmp_path):
    with pytest.raises(KeyError, match="no dataset at"):
        open_dataset(LocalStore(tmp_path / "nothing"))


def test_region_calls_on_an_append_dataset_are_refused(landed):
    _, ds, files = landed
    with pytest.raises(DatasetError, match="append mode"):
        ds.begin_region([piece_of(files[2])])


def test_sources_without_identity_are_written_but_not_recorded(tmp_path):
    files = write_series(tmp_path / "raw", files=2, steps=2)
    ds = create_dataset(LocalStore(tmp_path / "out"), "", template=piece_of(files[0]), dim="time")
    anonymous = dataclasses.replace(piece_of(files[0]), source=None)
    ds = ds.append([anonymous])
    assert ds.extent == 2 and ds.landed() == {}
    assert SourceId("x").key == "x"
