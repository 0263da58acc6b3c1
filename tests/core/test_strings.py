"""Variable-length UTF-8 strings (v3 ``string`` + ``vlen-utf8``, v2 ``|O`` + the ``vlen-utf8`` filter):
both ways with zarr-python and xarray, in shards, with fill values, partial writes and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import zarrcore
from zarrcore.errors import ChunkError

WORDS = ["", "a", "Zürich", "日本語", "a much longer string than the others, with spaces", "\U0001f600", "end"]


def words(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array(rng.choice(np.array(WORDS, dtype=object), size=shape), dtype=object)


def as_list(a: Any) -> list[str]:
    return [str(v) for v in np.asarray(a, dtype=object).reshape(-1)]


@pytest.mark.parametrize("zarr_format", [3, 2])
@pytest.mark.parametrize("order", ["C", "F"])
def test_we_write_and_zarr_python_reads(tmp_path: Path, zarr_format: int, order: str) -> None:
    data = words((9, 7))
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(4, 3), dtype=str, zarr_format=zarr_format, order=order)
    assert a.dtype == np.dtype(object) and a.fill_value == ""
    a[...] = data
    a[8, 6] = "changed"  # a partial write: the chunk is read, changed and written back
    data[8, 6] = "changed"
    np.testing.assert_array_equal(a[...], data)
    z = zarr.open_array(str(tmp_path), mode="r")
    assert as_list(z[...]) == as_list(data)
    assert a.nshards_initialized == 9  # every chunk holds a non-empty string somewhere


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_zarr_python_writes_and_we_read(tmp_path: Path, zarr_format: int) -> None:
    data = words((10, 6), seed=1)
    z = zarr.create_array(str(tmp_path), shape=data.shape, chunks=(3, 4), dtype=str, zarr_format=zarr_format,
                          fill_value="n/a")  # fmt: skip
    z[:9] = data[:9].astype(str)
    a = zarrcore.open_array(tmp_path)
    assert a.fill_value == "n/a"
    expected = data.copy()
    expected[9] = "n/a"  # never written: the fill value
    assert as_list(a[...]) == as_list(expected)
    assert as_list(a[2:8:3, 5]) == as_list(expected[2:8:3, 5])


def test_a_chunk_of_empty_strings_is_not_stored(tmp_path: Path) -> None:
    a = zarrcore.create(tmp_path, shape=(6,), chunks=(3,), dtype=str)
    a[...] = np.array(["", "", "", "x", "", ""], dtype=object)
    assert a.nshards_initialized == 1
    a[3] = ""
    assert a.nshards_initialized == 0 and as_list(a[...]) == [""] * 6


def test_strings_in_shards_with_partial_reads_and_writes(tmp_path: Path) -> None:
    data = words((40, 30), seed=2)
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(5, 5), shards=(20, 30), dtype=str)
    a[...] = data
    a[7, 3:9] = "new"
    data[7, 3:9] = "new"
    assert as_list(a[6:9, 2:10]) == as_list(data[6:9, 2:10])  # a partial read of one shard
    assert as_list(zarr.open_array(str(tmp_path), mode="r")[...]) == as_list(data)


def test_xarray_string_variables_both_ways(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    names = np.array(["north", "Süd", "東"], dtype=object)
    root = zarrcore.create_group(tmp_path / "ours.zarr")
    station = root.create_array("station", shape=(3,), chunks=(3,), dtype=str, dimension_names=["station"])
    station[...] = names
    level = root.create_array("level", shape=(3,), chunks=(3,), dtype="float32", dimension_names=["station"])
    level[...] = [1.5, 2.5, 3.5]
    with xr.open_zarr(str(tmp_path / "ours.zarr"), consolidated=False) as ds:
        assert as_list(ds["station"].values) == as_list(names)
    ds = xr.Dataset({"label": (("x",), np.array(["one", "two", "three"], dtype=object))})
    ds.to_zarr(str(tmp_path / "theirs.zarr"), zarr_format=3, consolidated=False)
    label = zarrcore.open_group(tmp_path / "theirs.zarr")["label"]
    assert label.dtype == np.dtype(object) and as_list(label[...]) == ["one", "two", "three"]


def test_a_value_that_is_not_a_string_fails_and_leaves_the_chunk(tmp_path: Path) -> None:
    a = zarrcore.create(tmp_path, shape=(4,), chunks=(4,), dtype=str)
    a[...] = np.array(["a", "b", "c", "d"], dtype=object)
    before = (tmp_path / "c" / "0").read_bytes()
    with pytest.raises(ChunkError, match="encoding failed"):
        a[1] = 7
    assert (tmp_path / "c" / "0").read_bytes() == before
    assert as_list(a[...]) == ["a", "b", "c", "d"]


def test_a_damaged_string_chunk_is_a_chunk_error(tmp_path: Path) -> None:
    a = zarrcore.create(tmp_path, shape=(4,), chunks=(4,), dtype=str, codecs=[{"name": "vlen-utf8"}])
    a[...] = np.array(["a", "b", "c", "d"], dtype=object)
    path = tmp_path / "c" / "0"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ChunkError, match=r"chunk \(0,\)"):
        a[...]
