"""Transactions: units written anywhere and any number of times, a commit resumed by the same plan,
replaced by another, and refused when another writer published in between."""

from __future__ import annotations

import pickle

import pytest
import xarray as xr

from tests.datasets.pieces import expected, opened, piece_of
from tests.fixtures.netcdf_files import write_series
from zarrcore.datasets import create_dataset, open_dataset
from zarrcore.datasets.ledger import read_records
from zarrcore.errors import CommitConflictError
from zarrcore.storage import LocalStore


@pytest.fixture
def started(tmp_path):
    files = write_series(tmp_path / "raw", files=4, steps=5)
    ds = create_dataset(LocalStore(tmp_path / "out"), "", template=piece_of(files[0]), dim="time",
                        chunks={"time": 4})  # fmt: skip
    return ds.append([piece_of(files[0])]), files


def test_units_rebuilt_elsewhere_write_the_same_dataset(started):
    ds, files = started
    txn = ds.begin_append([piece_of(f) for f in files[1:]])
    units = pickle.loads(pickle.dumps(txn.units))  # what a task in another process receives
    elsewhere = open_dataset(LocalStore(ds.store.root)).transaction(txn.id)
    assert [u.token for u in elsewhere.units] == [u.token for u in units]
    for unit in reversed(units):  # any order, twice
        pieces = {i: piece_of(files[1:][i]) for i in unit.placements}
        elsewhere.write(unit, pieces)
        elsewhere.write(unit, pieces)
    assert opened(ds.store).sizes["time"] == 5  # nothing published before the commit
    ds = elsewhere.commit()
    xr.testing.assert_identical(opened(ds.store), expected(files))


def test_the_same_plan_resumes_the_unpublished_commit(started):
    ds, files = started
    first = ds.begin_append([piece_of(f) for f in files[1:3]])
    first.write(first.units[0])  # then the writer died
    again = open_dataset(ds.store).begin_append([piece_of(f) for f in reversed(files[1:3])])
    assert again.number == first.number and [u.token for u in again.units] == [u.token for u in first.units]
    again.write_all()
    again.commit()
    assert [r.state for r in read_records(ds.store, "")] == ["published", "published"]


def test_another_plan_discards_the_unpublished_commit(started):
    ds, files = started
    first = ds.begin_append([piece_of(f) for f in files[1:3]])
    first.write_all()  # written, never committed
    ds = open_dataset(ds.store).append([piece_of(files[1])])
    assert [r.state for r in read_records(ds.store, "")] == ["published", "discarded", "published"]
    xr.testing.assert_identical(opened(ds.store), expected(files[:2]))
    with pytest.raises(CommitConflictError, match="discarded"):
        first.commit()  # the writer that comes back late cannot publish


def test_a_commit_refuses_when_another_writer_published_first(started):
    ds, files = started
    txn = ds.begin_append([piece_of(files[1])])
    txn.write_all()
    txn.commit()
    with pytest.raises(CommitConflictError, match="published"):
        txn.commit()


def test_a_commit_published_but_not_marked_stays_landed_after_the_next_commit(started):
    ds, files = started
    from zarrcore.datasets.ledger import mark

    mark(ds.store, "", read_records(ds.store, "")[-1], "intent")  # a crash after the consolidated PUT
    assert sorted(open_dataset(ds.store).landed()) == [files[0].as_uri()]
    ds = open_dataset(ds.store).append([piece_of(f) for f in files[:2]])  # the next commit marks it first
    assert sorted(ds.landed()) == [files[0].as_uri(), files[1].as_uri()]
    assert [r.state for r in read_records(ds.store, "")] == ["published", "published"]
