"""One store per location and options in each process, shared by a flow and its task runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.stores import StoreRef, shared_store
from zarrcore.storage.local import LocalStore


def test_one_store_per_location_and_options(tmp_path: Path) -> None:
    url = str(tmp_path / "a.zarr")
    store = shared_store(url)
    assert isinstance(store, LocalStore)
    assert shared_store(url) is store
    assert shared_store(url, {}) is store
    assert shared_store(str(tmp_path / "b.zarr")) is not store
    assert shared_store(url, {"fsync": True}) is not store
    assert shared_store(url, {"fsync": True}).fsync is True


def test_a_relative_path_is_taken_from_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    first = shared_store("out.zarr")
    monkeypatch.chdir(tmp_path / "two")
    second = shared_store("out.zarr")
    assert first is not second
    assert first.url == (tmp_path / "one" / "out.zarr").as_uri()
    assert second.url == (tmp_path / "two" / "out.zarr").as_uri()
    second.put("k", b"v")
    assert os.path.exists(tmp_path / "two" / "out.zarr" / "k")
    assert not os.path.exists(tmp_path / "one" / "out.zarr" / "k")


def test_a_store_reference_is_hashable_with_one_canonical_key(tmp_path: Path) -> None:
    url = str(tmp_path / "c.zarr")
    a = StoreRef.of(url, {"fsync": True, "read_only": False})
    b = StoreRef(url=url, options={"read_only": False, "fsync": True})
    assert a == b and hash(a) == hash(b) and a.key() == b.key() and len({a, b}) == 1
    assert a != StoreRef.of(url) and a.key() != StoreRef.of(url).key()
    assert a.open() is b.open() is shared_store(url, {"read_only": False, "fsync": True})
    assert StoreRef.model_validate_json(a.model_dump_json()) == a  # what task runs receive
    with pytest.raises(ValidationError):
        a.url = "elsewhere"  # type: ignore[misc]
