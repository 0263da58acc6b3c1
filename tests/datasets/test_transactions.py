"""Transactions: units written anywhere and any number of times, a commit resumed by the same plan,
replaced by another, and refused when another writer published in between."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
import xarray as xr

from tests.datasets.pieces import expected, opened, piece_of
from tests.fixtures.delegating import Delegating
from tests.fixtures.netcdf_files import write_series
from zarrcore.datasets import create_dataset, open_dataset
from zarrcore.datasets.check import check_structure
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

    mark(ds.store, "", read_records(ds.store, "")[-1], "intent")  # a crash after the consolidated PUT,
    ds.store.delete(".zarrcore/ledger.json")  # before the mark and the ledger's snapshot
    assert sorted(open_dataset(ds.store).landed()) == [files[0].as_uri()]
    ds = open_dataset(ds.store).append([piece_of(f) for f in files[:2]])  # the next commit marks it first
    assert sorted(ds.landed()) == [files[0].as_uri(), files[1].as_uri()]
    assert [r.state for r in read_records(ds.store, "")] == ["published", "published"]


class CountingGets(Delegating):
    """A real local store that counts the GETs of commit records."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner, self.io_kind, self.record_gets = inner, inner.io_kind, 0

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str, byte_range: Any = None) -> bytes:
        self.record_gets += key.startswith(".zarrcore/commits/")
        return self.inner.get(key, byte_range)

    def put(self, key: str, data: Any, *, mode: Any = "overwrite") -> None:
        self.inner.put(key, data, mode=mode)


def test_a_run_reads_only_the_records_after_the_ledgers_snapshot(tmp_path):
    files = write_series(tmp_path / "raw", files=6, steps=2)
    store = CountingGets(LocalStore(tmp_path / "out"))
    ds = create_dataset(store, "", template=piece_of(files[0]), dim="time", chunks={"time": 4})
    for f in files:
        ds = ds.append([piece_of(f)])
    store.record_gets = 0
    quick = open_dataset(store).ledger()
    assert store.record_gets == 0  # six commits, all in the snapshot
    full = open_dataset(store).ledger(snapshot=False)
    assert store.record_gets == 6  # positive control: without the snapshot every record is read
    assert quick.landed == full.landed and quick.published == full.published == [1, 2, 3, 4, 5, 6]
    assert sorted(quick.landed) == sorted(f.as_uri() for f in files)


def test_a_missing_stale_or_broken_snapshot_gives_the_same_ledger(tmp_path):
    files = write_series(tmp_path / "raw", files=4, steps=2)
    store = LocalStore(tmp_path / "out")
    ds = create_dataset(store, "", template=piece_of(files[0]), dim="time", chunks={"time": 4})
    ds = ds.append([piece_of(files[0])])
    stale = store.get(".zarrcore/ledger.json")
    for f in files[1:]:
        ds = ds.append([piece_of(f)])
    truth = ds.ledger(snapshot=False)
    for damage in (None, stale, b"{not json", b'{"upto": 2}'):
        if damage is None:
            store.delete(".zarrcore/ledger.json")
        else:
            store.put(".zarrcore/ledger.json", damage)
        seen = open_dataset(store).ledger()
        assert (seen.landed, seen.published, seen.last) == (truth.landed, truth.published, truth.last), damage
    again = open_dataset(store).append([piece_of(f) for f in files])  # nothing new: lands nothing
    assert again.extent == 8 and sorted(again.landed()) == sorted(f.as_uri() for f in files)


def test_a_check_names_a_snapshot_that_disagrees_with_the_records(tmp_path):
    files = write_series(tmp_path / "raw", files=3, steps=2)
    store = LocalStore(tmp_path / "out")
    ds = create_dataset(store, "", template=piece_of(files[0]), dim="time", chunks={"time": 4})
    ds = ds.append([piece_of(f) for f in files])
    assert check_structure(ds)[0] == []
    doc = json.loads(store.get(".zarrcore/ledger.json"))
    doc["landed"] = doc["landed"][1:]  # a run would land that file again
    store.put(".zarrcore/ledger.json", json.dumps(doc).encode())
    findings = check_structure(open_dataset(store))[0]
    assert [f.where for f in findings] == ["(ledger)"] and files[0].as_uri() in findings[0].problem
