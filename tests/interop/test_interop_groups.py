"""Groups, attributes and consolidated metadata shared with zarr-python and xarray, both ways."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

import zarrcore

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning")
FORMATS = (2, 3)


@dataclass(frozen=True)
class ArraySpec:
    path: str
    data: np.ndarray
    chunks: tuple[int, ...]
    fill: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)


ROOT_ATTRS = {"title": "hierarchy", "version": 2, "tags": ["a", "b"]}
GROUPS = {"sub": {"kind": "sub"}, "sub/deeper": {}, "empty": {"note": "no children"}}
ARRAYS = [
    ArraySpec("b", np.arange(10, dtype="float64") / 3, (4,), math.nan, {"units": "m"}),
    ArraySpec("sub/a", np.arange(35, dtype="int32").reshape(5, 7), (2, 3), -1, {"long_name": "ints"}),
    ArraySpec("sub/deeper/c", np.array([True, False, True]), (2,)),
]


def build_with_zarrcore(path: Path, fmt: int) -> None:
    root = zarrcore.create_group(str(path), zarr_format=fmt, attributes=ROOT_ATTRS)
    for name, attrs in GROUPS.items():
        root.create_group(name, attributes=attrs)
    for spec in ARRAYS:
        a = root.create_array(spec.path, shape=spec.data.shape, chunks=spec.chunks, dtype=spec.data.dtype,
                              fill_value=spec.fill, attributes=spec.attrs)  # fmt: skip
        a[...] = spec.data


def build_with_zarr(path: Path, fmt: int) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt, attributes=ROOT_ATTRS)
    for name, attrs in GROUPS.items():
        root.create_group(name, attributes=attrs)
    for spec in ARRAYS:
        a = root.create_array(spec.path, shape=spec.data.shape, chunks=spec.chunks, dtype=spec.data.dtype,
                              fill_value=spec.fill, attributes=spec.attrs)  # fmt: skip
        a[...] = spec.data


def consolidate_with(library: str, path: Path, fmt: int) -> None:
    if library == "zarrcore":
        zarrcore.consolidate_metadata(str(path))
    else:
        zarr.consolidate_metadata(str(path), zarr_format=fmt)


def check_with_zarr(path: Path, fmt: int, consolidated: bool) -> None:
    root = zarr.open_group(str(path), mode="r", use_consolidated=consolidated)
    assert root.metadata.zarr_format == fmt
    assert (root.metadata.consolidated_metadata is not None) == consolidated
    assert dict(root.attrs) == ROOT_ATTRS
    assert sorted(root.group_keys()) == ["empty", "sub"]
    assert sorted(root["sub"].keys()) == ["a", "deeper"]
    for name, attrs in GROUPS.items():
        assert dict(root[name].attrs) == attrs
    for spec in ARRAYS:
        a = root[spec.path]
        assert dict(a.attrs) == spec.attrs
        np.testing.assert_array_equal(a[...], spec.data)


def check_with_zarrcore(path: Path, fmt: int, consolidated: bool) -> None:
    root = zarrcore.open_group(str(path))
    assert root.zarr_format == fmt
    assert (root.metadata.consolidated is not None) == consolidated
    assert root.attrs.asdict() == ROOT_ATTRS
    assert sorted(root.groups()) == ["empty", "sub"]
    assert list(root["sub"]) == ["a", "deeper"]
    for name, attrs in GROUPS.items():
        assert root[name].attrs.asdict() == attrs
    for spec in ARRAYS:
        a = root[spec.path]
        assert isinstance(a, zarrcore.Array)
        assert a.attrs.asdict() == spec.attrs
        np.testing.assert_array_equal(a[...], spec.data)
    assert root.tree().splitlines() == [
        "/",
        "├── b (10,) float64",
        "├── empty",
        "└── sub",
        "    ├── a (5, 7) int32",
        "    └── deeper",
        "        └── c (3,) bool",
    ]


BUILDERS = {"zarrcore": build_with_zarrcore, "zarr": build_with_zarr}
CHECKERS = {"zarrcore": check_with_zarrcore, "zarr": check_with_zarr}
PAIRS = [("zarrcore", "zarr"), ("zarr", "zarrcore")]


@pytest.mark.parametrize("consolidated", [False, True], ids=["listed", "consolidated"])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"v{f}")
@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=lambda p: p)
def test_hierarchy(writer: str, reader: str, fmt: int, consolidated: bool, tmp_path: Path) -> None:
    path = tmp_path / "h.zarr"
    BUILDERS[writer](path, fmt)
    if consolidated:
        consolidate_with(writer, path, fmt)
    CHECKERS[reader](path, fmt, consolidated)


def _metadata_files(path: Path, fmt: int) -> list[Path]:
    names = {"zarr.json"} if fmt == 3 else {".zarray", ".zgroup", ".zattrs"}
    return [p for p in path.rglob("*") if p.name in names and p.parent != path]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"v{f}")
@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=lambda p: p)
def test_consolidated_metadata_alone_suffices(writer: str, reader: str, fmt: int, tmp_path: Path) -> None:
    """With the children's own documents gone, the reader still finds everything through the
    consolidated metadata the other library wrote (so it really uses it)."""
    path = tmp_path / "h.zarr"
    BUILDERS[writer](path, fmt)
    consolidate_with(writer, path, fmt)
    for doc in _metadata_files(path, fmt):
        doc.unlink()
    CHECKERS[reader](path, fmt, consolidated=True)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"v{f}")
def test_attribute_updates_cross_over(fmt: int, tmp_path: Path) -> None:
    """Attributes changed by one library are what the other reads, on groups and arrays."""
    path = tmp_path / "h.zarr"
    build_with_zarr(path, fmt)
    ours = zarrcore.open_group(str(path), mode="r+")
    ours.attrs["added"] = {"by": "zarrcore"}
    ours["sub/a"].attrs.update(units="s", scale=0.5)
    theirs = zarr.open_group(str(path), mode="r+")
    assert dict(theirs.attrs) == {**ROOT_ATTRS, "added": {"by": "zarrcore"}}
    assert dict(theirs["sub/a"].attrs) == {"long_name": "ints", "units": "s", "scale": 0.5}
    theirs["b"].attrs["from"] = "zarr"
    assert zarrcore.open_group(str(path))["b"].attrs.asdict() == {"units": "m", "from": "zarr"}


# -- xarray --------------------------------------------------------------------------------------------


def build_dataset_with_zarrcore(path: Path) -> dict[str, np.ndarray]:
    """A v3 group laid out as xarray expects: dimension_names name the dimensions."""
    values = {
        "x": np.linspace(0, 1, 5),
        "time": np.arange(3, dtype="int64"),
        "temp": np.arange(15, dtype="float32").reshape(3, 5) - 7,
        "count": np.array([4, 5, 6], dtype="int16"),
        "station": np.array(["Zürich", "Bern", "Chur", "Sion", "Aarau"]),  # a string coordinate, U6
    }
    dims = {"x": ("x",), "time": ("time",), "temp": ("time", "x"), "count": ("time",), "station": ("x",)}
    root = zarrcore.create_group(str(path), attributes={"title": "from zarrcore"})
    for name, data in values.items():
        fill = math.nan if data.dtype.kind == "f" else "" if data.dtype.kind == "U" else None
        a = root.create_array(name, shape=data.shape, chunks=tuple(max(1, n // 2) for n in data.shape),
                              dtype=data.dtype, fill_value=fill, dimension_names=dims[name],
                              attributes={"units": "K"} if name == "temp" else {})  # fmt: skip
        a[...] = data
    return values


@pytest.mark.parametrize(
    "open_dataset",
    [
        lambda p, c: xr.open_zarr(p, consolidated=c),
        lambda p, c: xr.open_dataset(p, engine="zarr", consolidated=c),
    ],
    ids=["open_zarr", "open_dataset"],
)
@pytest.mark.parametrize("consolidated", [False, True], ids=["listed", "consolidated"])
def test_xarray_opens_a_zarrcore_v3_group(open_dataset: Any, consolidated: bool, tmp_path: Path) -> None:
    path = tmp_path / "ds.zarr"
    values = build_dataset_with_zarrcore(path)
    if consolidated:
        zarrcore.consolidate_metadata(str(path))
    with open_dataset(str(path), consolidated) as ds:
        assert dict(ds.sizes) == {"time": 3, "x": 5}
        assert set(ds.coords) == {"x", "time"} and ds["station"].dims == ("x",)
        assert ds["temp"].dims == ("time", "x")
        assert ds["count"].dims == ("time",)
        assert ds["temp"].attrs["units"] == "K"
        assert ds.attrs["title"] == "from zarrcore"
        for name, data in values.items():
            np.testing.assert_array_equal(ds[name].values, data)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_zarrcore_reads_an_xarray_dataset(tmp_path: Path, zarr_format: int) -> None:
    """The other way: xarray's output (dimension_names or _ARRAY_DIMENSIONS, attributes, consolidated,
    string coordinates) opens in zarrcore."""
    path = tmp_path / "xr.zarr"
    temp = np.arange(12, dtype="float64").reshape(3, 4)
    names = np.array(["a", "bé", "日本", "dddd"])
    ds = xr.Dataset({"temp": (("time", "x"), temp, {"units": "K"})},
                    coords={"x": np.arange(4) * 10, "name": ("x", names)})  # fmt: skip
    ds.to_zarr(str(path), zarr_format=zarr_format, consolidated=True)
    root = zarrcore.open_group(str(path))
    assert root.metadata.consolidated is not None
    if zarr_format == 3:
        assert root["temp"].metadata.dimension_names == ("time", "x")
    else:
        assert root["temp"].attrs["_ARRAY_DIMENSIONS"] == ["time", "x"]
    assert root["temp"].attrs["units"] == "K"
    np.testing.assert_array_equal(root["temp"][...], temp)
    np.testing.assert_array_equal(root["x"][...], np.arange(4) * 10)
    assert root["name"].dtype.kind == "U"
    np.testing.assert_array_equal(root["name"][...], names)
