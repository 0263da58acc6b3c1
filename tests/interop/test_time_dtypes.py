"""datetime64 and timedelta64 arrays in Zarr v3, both ways with zarr-python 3.

zarr-python 3 writes them as its extension types ``numpy.datetime64`` / ``numpy.timedelta64``:
``{"name": ..., "configuration": {"unit": ..., "scale_factor": n}}``, the fill value an int64 count of
the unit (``NaT`` as ``-2**63``; the spec allows the string ``"NaT"`` too). Each case covers several
units and scale factors, the default (``NaT``) fill, ``"NaT"`` given explicitly and a real value; the
data holds ``NaT`` among real values, and chunks never written read as the fill value on both sides.
"""

from __future__ import annotations

import datetime
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BytesCodec

import zarrcore
from zarrcore.errors import MetadataError, UnsupportedDtypeError

SHAPE, CHUNKS = (5, 7), (2, 3)
#: The region written; every chunk with a row below 2 or a column below 3 is never written.
WRITTEN = (slice(2, None), slice(3, None))
DATETIMES = ["datetime64[ns]", "datetime64[s]", "datetime64[D]", "datetime64[10ms]", "datetime64[M]"]
TIMEDELTAS = ["timedelta64[ns]", "timedelta64[ms]", "timedelta64[h]", "timedelta64[3us]"]
#: A real fill value each unit above holds exactly.
REAL_FILL = {"M": np.datetime64("2001-02-01", "D"), "m": np.timedelta64(3, "h")}
FILLS = ("default", "NaT", "real")
DIRECTIONS = ("zarr->zarrcore", "zarrcore->zarr")
NAT = -(2**63)


def fill_arg(dtype: str, fill: str) -> Any:
    """The fill value both libraries are given (``None``: their default, NaT)."""
    return {"default": None, "NaT": "NaT", "real": REAL_FILL[np.dtype(dtype).kind]}[fill]


def fill_scalar(dtype: str, fill: str) -> Any:
    """The fill value as a scalar of ``dtype``."""
    dt = np.dtype(dtype)
    return np.array("NaT", dtype=dt)[()] if fill != "real" else np.asarray(REAL_FILL[dt.kind]).astype(dt)[()]


def counts(a: Any) -> np.ndarray:
    """The int64 counts of a datetime64/timedelta64 array (NaT is -2**63), in native byte order."""
    a = np.asarray(a)
    return a.astype(a.dtype.newbyteorder("=")).view("i8")


def sample(dtype: str) -> np.ndarray:
    """Values of the written region: real times, some NaT, one chunk all NaT (stored unless NaT is the fill)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(zlib.crc32(dtype.encode()))
    shape = (SHAPE[0] - 2, SHAPE[1] - 3)
    data = rng.integers(-(10**6), 10**6, size=shape).view(dt)
    data[0, 1] = data[2, 1] = np.array("NaT", dtype=dt)
    data[:2, :3] = np.array("NaT", dtype=dt)  # chunk (1, 1)
    return data


def expected(dtype: str, fill: str) -> np.ndarray:
    out = np.full(SHAPE, fill_scalar(dtype, fill), dtype=dtype)
    out[WRITTEN] = sample(dtype)
    return out


def chunk_keys(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {"zarr.json"}


def write_with_zarr(path: Path, dtype: str, fill: str, **kwargs: Any) -> None:
    z = zarr.create_array(store=str(path), shape=SHAPE, chunks=CHUNKS, dtype=dtype, fill_value=fill_arg(dtype, fill),
                          **kwargs)  # fmt: skip
    z[WRITTEN] = sample(dtype)


def write_with_zarrcore(path: Path, dtype: str, fill: str, **kwargs: Any) -> None:
    a = zarrcore.create(str(path), shape=SHAPE, chunks=CHUNKS, dtype=dtype, fill_value=fill_arg(dtype, fill),
                        zarr_format=3, **kwargs)  # fmt: skip
    a[WRITTEN] = sample(dtype)


def read_with_zarr(path: Path) -> tuple[np.dtype, Any, np.ndarray]:
    z = zarr.open_array(str(path), mode="r")
    return z.dtype, z.fill_value, z[...]


def read_with_zarrcore(path: Path) -> tuple[np.dtype, Any, np.ndarray]:
    a = zarrcore.open_array(str(path))
    return a.dtype, a.fill_value, a[...]


CASES = [(dtype, fill) for dtype in DATETIMES + TIMEDELTAS for fill in FILLS]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(("dtype", "fill"), CASES, ids=[f"{d}-fill={f}" for d, f in CASES])
def test_values_and_fill_values_read_back(dtype: str, fill: str, direction: str, tmp_path: Path) -> None:
    """Values with NaT inside read back exactly; never-written chunks are absent and read as the fill."""
    path = tmp_path / "a.zarr"
    write, read = (write_with_zarr, read_with_zarrcore) if direction == "zarr->zarrcore" else \
                  (write_with_zarrcore, read_with_zarr)  # fmt: skip
    write(path, dtype, fill)
    got_dtype, got_fill, values = read(path)
    assert got_dtype == np.dtype(dtype)
    assert counts(got_fill) == counts(fill_scalar(dtype, fill))
    assert values.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(counts(values), counts(expected(dtype, fill)))
    stored = {"c/1/1", "c/1/2", "c/2/1", "c/2/2"} - ({"c/1/1"} if fill != "real" else set())
    assert chunk_keys(path) == stored


@pytest.mark.parametrize(("dtype", "fill"), CASES, ids=[f"{d}-fill={f}" for d, f in CASES])
def test_same_metadata_and_chunks_as_zarr_python(dtype: str, fill: str, tmp_path: Path) -> None:
    """zarrcore writes the data_type and fill_value JSON zarr-python writes, and the same chunks."""
    write_with_zarr(tmp_path / "theirs", dtype, fill)
    write_with_zarrcore(tmp_path / "ours", dtype, fill)
    theirs = json.loads((tmp_path / "theirs" / "zarr.json").read_text())
    ours = json.loads((tmp_path / "ours" / "zarr.json").read_text())
    assert ours["data_type"] == theirs["data_type"]
    assert ours["fill_value"] == theirs["fill_value"]
    assert ours["codecs"][0] == theirs["codecs"][0] == {"name": "bytes", "configuration": {"endian": "little"}}
    assert chunk_keys(tmp_path / "ours") == chunk_keys(tmp_path / "theirs")


@pytest.mark.parametrize(
    ("dtype", "data_type"),
    [
        ("datetime64[ns]", {"name": "numpy.datetime64", "configuration": {"unit": "ns", "scale_factor": 1}}),
        ("datetime64[10ms]", {"name": "numpy.datetime64", "configuration": {"unit": "ms", "scale_factor": 10}}),
        (">M8[D]", {"name": "numpy.datetime64", "configuration": {"unit": "D", "scale_factor": 1}}),
        ("timedelta64[3us]", {"name": "numpy.timedelta64", "configuration": {"unit": "us", "scale_factor": 3}}),
        ("m8[h]", {"name": "numpy.timedelta64", "configuration": {"unit": "h", "scale_factor": 1}}),
    ],
)
def test_data_type_json(dtype: str, data_type: dict[str, Any], tmp_path: Path) -> None:
    """The exact v3 data_type zarrcore writes; NaT, the default fill value, is written as -2**63."""
    zarrcore.create(str(tmp_path / "a.zarr"), shape=(2,), chunks=(2,), dtype=dtype, zarr_format=3)
    doc = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    assert doc["data_type"] == data_type
    assert doc["fill_value"] == NAT


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("dtype", ["datetime64[ms]", "timedelta64[10s]"])
def test_big_endian_bytes_codec(dtype: str, direction: str, tmp_path: Path) -> None:
    """The bytes codec's endian applies as for int64: big-endian chunks read back in both libraries."""
    path = tmp_path / "a.zarr"
    if direction == "zarr->zarrcore":
        write_with_zarr(path, dtype, "real", serializer=BytesCodec(endian="big"), compressors=None)
        _, _, values = read_with_zarrcore(path)
    else:
        write_with_zarrcore(path, dtype, "real", codecs=[{"name": "bytes", "configuration": {"endian": "big"}}])
        _, _, values = read_with_zarr(path)
    np.testing.assert_array_equal(counts(values), counts(expected(dtype, "real")))
    assert (path / "c/1/1").read_bytes() == counts(sample(dtype)[:2, :3]).astype(">i8").tobytes()


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_sharded_arrays(direction: str, tmp_path: Path) -> None:
    """Inner chunks never written read as NaT inside a shard, and whole shards never written too."""
    path, dt = tmp_path / "a.zarr", np.dtype("datetime64[us]")
    values = np.array(["2020-01-01", "NaT", "1969-07-20T20:17", "2038-01-19T03:14:08"], dtype=dt)
    if direction == "zarr->zarrcore":
        z = zarr.create_array(store=str(path), shape=(12,), chunks=(2,), shards=(4,), dtype=dt)
        z[3:7] = values
    else:
        a = zarrcore.create(str(path), shape=(12,), chunks=(2,), shards=(4,), dtype=dt)
        a[3:7] = values
    want = np.full(12, np.datetime64("NaT", "us"))
    want[3:7] = values
    got = read_with_zarrcore(path)[2] if direction == "zarr->zarrcore" else read_with_zarr(path)[2]
    np.testing.assert_array_equal(counts(got), counts(want))
    assert chunk_keys(path) == {"c/0", "c/1"}


def _rewrite(path: Path, **changes: Any) -> None:
    doc_path = path / "zarr.json"
    doc = json.loads(doc_path.read_text())
    doc.update(changes)
    doc_path.write_text(json.dumps(doc, ensure_ascii=False))


@pytest.mark.parametrize("dtype", ["datetime64[s]", "timedelta64[5ms]"])
def test_fill_value_nat_as_a_string(dtype: str, tmp_path: Path) -> None:
    """The spec's other form of NaT, ``"fill_value": "NaT"``, is read by both libraries alike."""
    path = tmp_path / "a.zarr"
    write_with_zarr(path, dtype, "default")
    _rewrite(path, fill_value="NaT")
    for read in (read_with_zarr, read_with_zarrcore):
        _, fill, values = read(path)
        assert np.isnat(fill)
        np.testing.assert_array_equal(counts(values), counts(expected(dtype, "default")))


def test_micro_sign_unit_is_microseconds(tmp_path: Path) -> None:
    """The spec allows ``"μs"`` for ``"us"``; zarrcore reads it as zarr-python does, and writes ``"us"``."""
    path = tmp_path / "a.zarr"
    write_with_zarr(path, "datetime64[2us]", "real")
    _rewrite(path, data_type={"name": "numpy.datetime64", "configuration": {"unit": "μs", "scale_factor": 2}})
    a = zarrcore.open_array(str(path))
    assert a.dtype == np.dtype("M8[2us]")
    np.testing.assert_array_equal(counts(a[...]), counts(read_with_zarr(path)[2]))
    assert a.metadata.to_documents()["zarr.json"]["data_type"]["configuration"] == {"unit": "us", "scale_factor": 2}


def _time_type(name: str = "numpy.datetime64", **config: Any) -> dict[str, Any]:
    return {"name": name, "configuration": {"unit": "s", "scale_factor": 1, **config}}


BAD_DOCS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"data_type": _time_type(unit="fortnight")}, MetadataError, r"configuration\.unit 'fortnight' is not one of"),
    ({"data_type": _time_type(unit=None)}, MetadataError, r"configuration\.unit None is not one of"),
    ({"data_type": _time_type(unit="generic")}, UnsupportedDtypeError, r"numpy\.datetime64 with the 'generic' unit"),
    ({"data_type": _time_type("numpy.timedelta64", unit="generic")}, UnsupportedDtypeError, r"'generic' unit"),
    ({"data_type": _time_type(scale_factor=0)}, MetadataError, r"scale_factor must be an integer from 1 to 2\*\*31"),
    ({"data_type": _time_type(scale_factor=-10)}, MetadataError, r"scale_factor .*, got -10"),
    ({"data_type": _time_type(scale_factor=1.5)}, MetadataError, r"scale_factor .*, got 1\.5"),
    ({"data_type": _time_type(scale_factor=True)}, MetadataError, r"scale_factor .*, got True"),
    ({"data_type": _time_type(scale_factor="1")}, MetadataError, r"scale_factor .*, got '1'"),
    ({"data_type": _time_type(scale_factor=2**31)}, MetadataError, r"scale_factor .*, got 2147483648"),
    ({"data_type": _time_type(endian="little")}, MetadataError, r"needs exactly 'unit' and 'scale_factor'"),
    ({"data_type": {"name": "numpy.datetime64", "configuration": {"unit": "s"}}}, MetadataError, r"exactly 'unit'"),
    ({"data_type": {"name": "numpy.timedelta64"}}, MetadataError, r"needs exactly 'name' and a 'configuration'"),
    ({"data_type": {"name": "numpy.datetime64", "configuration": "s"}}, MetadataError, r"a 'configuration' object"),
    ({"fill_value": "2020-01-01"}, MetadataError, r"fill_value: '2020-01-01' is not an integer or 'NaT'"),
    ({"fill_value": "nat"}, MetadataError, r"fill_value: 'nat' is not an integer or 'NaT'"),
    ({"fill_value": 1.5}, MetadataError, r"fill_value: 1\.5 is not an integer or 'NaT'"),
    ({"fill_value": True}, MetadataError, r"fill_value: True is not an integer or 'NaT'"),
    ({"fill_value": None}, MetadataError, r"fill_value: null is not allowed"),
    ({"fill_value": 2**63}, MetadataError, r"fill_value: 9223372036854775808 is out of the int64 range"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "error", "match"), BAD_DOCS, ids=[json.dumps(c[0]) for c in BAD_DOCS])
def test_bad_configurations_are_typed_errors(changes: dict[str, Any], error: type, match: str, tmp_path: Path) -> None:
    """A bad unit, scale factor, configuration or fill value is refused at open, naming the field."""
    path = tmp_path / "a.zarr"
    write_with_zarr(path, "datetime64[s]", "default")
    _rewrite(path, **changes)
    with pytest.raises(error, match=match) as info:
        zarrcore.open_array(str(path))
    assert type(info.value) is error
    assert f"zarr.json: {next(iter(changes))}" in str(info.value)


@pytest.mark.parametrize(
    ("dtype", "fill_value", "error", "match"),
    [
        ("datetime64", None, UnsupportedDtypeError, r"need a unit"),
        ("m8", None, UnsupportedDtypeError, r"need a unit"),
        ("datetime64[s]", "yesterday", MetadataError, r"'yesterday' does not fit"),
        ("datetime64[s]", np.timedelta64(1, "s"), MetadataError, r"is not a datetime for datetime64\[s\]"),
        ("timedelta64[s]", np.datetime64(1, "s"), MetadataError, r"is not a timedelta for timedelta64\[s\]"),
        ("timedelta64[s]", "1 day", MetadataError, r"is not a timedelta"),
        ("datetime64[s]", np.datetime64("2020-01-01T00:00:00.5"), MetadataError, r"not a whole number of"),
        ("timedelta64[10s]", np.timedelta64(15, "s"), MetadataError, r"not a whole number of"),
        ("datetime64[s]", 1.0, MetadataError, r"is not a datetime"),
        ("datetime64[s]", 2**63, MetadataError, r"out of the int64 range"),
    ],
    ids=str,
)  # fmt: skip
def test_bad_create_arguments(dtype: str, fill_value: Any, error: type, match: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=match):
        zarrcore.create(str(tmp_path / "a.zarr"), shape=(2,), chunks=(2,), dtype=dtype, fill_value=fill_value)
    assert not (tmp_path / "a.zarr").exists()


@pytest.mark.parametrize(
    ("dtype", "fill_value", "encoded"),
    [
        ("datetime64[s]", np.datetime64("2020-01-02"), 1577923200),
        ("datetime64[s]", datetime.datetime(2020, 1, 2, 0, 0, 5), 1577923205),
        ("datetime64[D]", datetime.date(1969, 12, 31), -1),
        ("datetime64[ms]", "2020-01-02T00:00:00.250", 1577923200250),
        ("datetime64[10s]", np.datetime64(60, "s"), 6),
        ("datetime64[ns]", np.datetime64("NaT", "s"), NAT),
        ("timedelta64[ms]", datetime.timedelta(seconds=-1.5), -1500),
        ("timedelta64[us]", np.timedelta64(2, "m"), 120_000_000),
        ("timedelta64[3us]", np.timedelta64("NaT", "us"), NAT),
        ("timedelta64[h]", 7, 7),
        ("datetime64[s]", np.int64(-3), -3),
    ],
    ids=str,
)  # fmt: skip
def test_fill_values_given_in_other_forms(dtype: str, fill_value: Any, encoded: int, tmp_path: Path) -> None:
    """A fill value given as a numpy or Python datetime/timedelta, an ISO string or a count of units is
    written as its count of the array's unit, and zarr-python reads the same value back."""
    path = tmp_path / "a.zarr"
    a = zarrcore.create(str(path), shape=(3,), chunks=(2,), dtype=dtype, fill_value=fill_value)
    assert json.loads((path / "zarr.json").read_text())["fill_value"] == encoded
    assert counts(a.fill_value) == encoded
    assert counts(zarr.open_array(str(path), mode="r").fill_value) == encoded
    np.testing.assert_array_equal(counts(a[...]), [encoded] * 3)
