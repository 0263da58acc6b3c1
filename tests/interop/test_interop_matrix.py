"""Arrays written by zarrcore read exactly by zarr-python 3.x, and the other way round.

The cases are a covering set, not a cartesian product: every dtype x both formats x both directions,
every codec x a few dtypes, both memory orders, edge shapes (partial edge chunks, empty dimensions,
0-d), special fill values (NaN, +/-Infinity, v3 hex bit patterns), chunk key encodings and
separators, and dimension names. Each case writes data in which one chunk holds only the fill value
(so it is not stored and must read back as the fill), then checks the data bit for bit (NaN
positions included) and the metadata the reader sees.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, TransposeCodec, ZstdCodec

import zarrcore

V3_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip
V2_EXTRA_DTYPES = ["M8[ns]", "M8[ms]", "M8[D]", "m8[ns]", "m8[s]", "m8[h]", ">i4", ">f8", ">c16", ">u2"]
ATTRS = {"title": "interop", "nested": {"n": [1, 2.5, None], "flag": True}, "unicode": "µm"}
DIRECTIONS = ("zarrcore->zarr", "zarr->zarrcore")


# -- codecs: one name, its zarrcore and zarr-python spellings ----------------------------------------


@dataclass(frozen=True)
class Codec:
    """A codec setup expressed for both libraries (``dt`` is the array dtype)."""

    zarrcore: Callable[[np.dtype], dict[str, Any]]
    zarr: Callable[[np.dtype], dict[str, Any]]


def _v3_bytes(dt: np.dtype, endian: str = "little") -> dict[str, Any]:
    return {"name": "bytes", "configuration": {"endian": endian}} if dt.itemsize > 1 else {"name": "bytes"}


_ZARR_V3_CODECS = {"blosc": BloscCodec, "zstd": ZstdCodec, "gzip": GzipCodec, "crc32c": Crc32cCodec}


def _c(name: str, **config: Any) -> tuple[dict[str, Any], Any]:
    """A v3 bytes->bytes codec as (zarrcore spec, zarr-python codec)."""
    spec = {"name": name, "configuration": config} if config else {"name": name}
    return spec, _ZARR_V3_CODECS[name](**config)


def _v3(*compressors: tuple[dict[str, Any], Any], endian: str = "little") -> Codec:
    """A v3 codec chain: bytes (with ``endian``) then the given bytes->bytes codecs."""
    return Codec(
        zarrcore=lambda dt: {"codecs": [_v3_bytes(dt, endian), *(spec for spec, _ in compressors)]},
        zarr=lambda dt: {
            "serializer": BytesCodec(endian=endian if dt.itemsize > 1 else None),
            "compressors": [codec for _, codec in compressors] or None,
        },
    )


def _v2(compressor: Any = None, filters: Callable[[np.dtype], list[Any]] | None = None) -> Codec:
    """A v2 compressor (a numcodecs object) and filter chain, passed as configs to zarrcore."""

    def filter_list(dt: np.dtype) -> list[Any] | None:
        return filters(dt) if filters else None

    return Codec(
        zarrcore=lambda dt: {
            "compressor": compressor.get_config() if compressor else None,
            "filters": [f.get_config() for f in filter_list(dt)] if filters else None,
        },
        zarr=lambda dt: {"compressors": compressor, "filters": filter_list(dt)},
    )


CODECS: dict[int, dict[str, Codec]] = {
    3: {
        "none": _v3(),
        "big-endian": _v3(endian="big"),
        "blosc": _v3(_c("blosc", cname="lz4", clevel=5, shuffle="shuffle")),
        "blosc-bitshuffle": _v3(_c("blosc", cname="zstd", clevel=3, shuffle="bitshuffle")),
        "zstd": _v3(_c("zstd", level=5, checksum=True)),
        "gzip": _v3(_c("gzip", level=6)),
        "crc32c": _v3(_c("crc32c")),
        "gzip+crc32c": _v3(_c("gzip", level=1), _c("crc32c")),
    },
    2: {
        "none": _v2(),
        "blosc": _v2(numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)),
        "blosc-bitshuffle": _v2(numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)),
        "zstd": _v2(numcodecs.Zstd(level=5)),
        "gzip": _v2(numcodecs.GZip(level=6)),
        "zlib": _v2(numcodecs.Zlib(level=1)),
        "delta+shuffle+blosc": _v2(
            numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.NOSHUFFLE),
            lambda dt: [numcodecs.Delta(dtype=dt.str), numcodecs.Shuffle(elementsize=dt.itemsize)],
        ),
        "shuffle+zstd": _v2(numcodecs.Zstd(level=1), lambda dt: [numcodecs.Shuffle(elementsize=dt.itemsize)]),
    },
}


# -- cases --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One array layout. ``fill`` is what both libraries are given (``None``: the format's default)."""

    fmt: int
    dtype: str
    shape: tuple[int, ...] = (5, 7)
    chunks: tuple[int, ...] = (2, 3)
    codec: str = "default"
    order: str = "C"
    fill: Any = None
    separator: str | None = None
    key_encoding: str | None = None
    dimension_names: tuple[str | None, ...] | None = None
    hex_fill: str | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        parts = [f"v{self.fmt}", self.dtype, "x".join(map(str, self.shape)) or "0d",
                 "c" + ("x".join(map(str, self.chunks)) or "0d"), self.codec, self.order]  # fmt: skip
        if self.fill is not None:
            parts.append(f"fill={self.fill!r}")
        if self.hex_fill:
            parts.append(f"hexfill={self.hex_fill}")
        if self.separator:
            parts.append(f"sep={self.separator}")
        if self.key_encoding:
            parts.append(f"cke={self.key_encoding}")
        if self.dimension_names:
            parts.append("dims=" + ",".join(str(n) for n in self.dimension_names))
        return "-".join(parts)

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


def _build_cases() -> list[Case]:
    cases: list[Case] = []
    # Every dtype, both formats (v2 adds datetimes, timedeltas and big-endian dtypes).
    cases += [Case(3, dt) for dt in V3_DTYPES]
    cases += [Case(2, dt) for dt in V3_DTYPES + V2_EXTRA_DTYPES]
    # Every codec with a few dtypes.
    for fmt, codecs in CODECS.items():
        for name in codecs:
            dtypes = ["int16", "uint32", "int64"] if "delta" in name else ["uint8", "int32", "float64", "complex64"]
            cases += [Case(fmt, dt, codec=name) for dt in dtypes]
    # Memory order, in 2-d and 3-d, with partial edge chunks.
    for fmt in (2, 3):
        for order in ("C", "F"):
            for dt in ("int32", "float32", "complex128"):
                cases.append(Case(fmt, dt, shape=(7, 11, 5), chunks=(3, 4, 2), order=order))
            cases.append(Case(fmt, "uint16", shape=(9, 4), chunks=(4, 3), order=order, codec="blosc"))
    # Edge shapes: 0-d, empty dimensions, one chunk bigger than the array, exact fits, 1-d tails.
    edge = [((), ()), ((0,), (4,)), ((3, 0), (2, 2)), ((1,), (1,)), ((13,), (5,)), ((3,), (10,)),
            ((4, 4), (4, 4)), ((2, 3, 1, 5), (1, 2, 1, 3))]  # fmt: skip
    for fmt in (2, 3):
        for shape, chunks in edge:
            cases.append(Case(fmt, "float32", shape=shape, chunks=chunks))
            cases.append(Case(fmt, "int8", shape=shape, chunks=chunks, fill=-3))
    # Fill values, NaN and infinities included.
    fills: list[tuple[str, Any]] = [
        ("float16", math.nan), ("float32", math.nan), ("float64", math.nan), ("float64", math.inf),
        ("float32", -math.inf), ("float64", -0.0), ("float32", 1.5), ("complex64", complex(math.nan, 0)),
        ("complex128", complex(1, -math.inf)), ("int16", -7), ("uint64", 2**64 - 1), ("int64", -(2**63)),
        ("bool", True), ("uint8", 255),
    ]  # fmt: skip
    for fmt in (2, 3):
        cases += [Case(fmt, dt, fill=fill) for dt, fill in fills]
    cases += [Case(2, "M8[s]", fill=0), Case(2, "m8[ms]", fill=1234)]
    # v3 hex fill values: a NaN with a payload, a plain NaN, and an ordinary number as bits.
    for dt, hex_fill in (("float32", "0x7fc00001"), ("float64", "0x7ff8000000000000"), ("float32", "0x3fc00000"),
                         ("float16", "0x7e00")):  # fmt: skip
        cases.append(Case(3, dt, hex_fill=hex_fill))
    # Chunk key encodings and separators.
    for sep in ("/", "."):
        cases.append(Case(2, "int32", separator=sep, shape=(6, 5, 4), chunks=(4, 2, 3)))
        for enc in ("default", "v2"):
            cases.append(Case(3, "int32", separator=sep, key_encoding=enc, shape=(6, 5, 4), chunks=(4, 2, 3)))
    # Fixed-length strings: UTF-32 (U) and bytes (S), plain, with a fill value, compressed, in 2-d.
    for fmt in (2, 3):
        cases += [Case(fmt, "U5"), Case(fmt, "S4"), Case(fmt, "U5", fill="ab"), Case(fmt, "S4", fill=b"zz"),
                  Case(fmt, "U3", codec="blosc"), Case(fmt, "S4", codec="zstd"),
                  Case(fmt, "U2", shape=(7, 11, 5), chunks=(3, 4, 2), order="F")]  # fmt: skip
    cases.append(Case(2, ">U3"))
    # Dimension names (v3), some unnamed.
    cases.append(Case(3, "float64", dimension_names=("time", "x")))
    cases.append(Case(3, "int16", shape=(4, 3, 2), chunks=(3, 2, 2), dimension_names=("t", None, "z")))
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate interop cases"
    return cases


CASES = _build_cases()


# -- data ---------------------------------------------------------------------------------------------


def fill_scalar(case: Case) -> Any:
    """The fill value as a numpy scalar of the case's dtype (zero when the format default is used)."""
    dt = case.np_dtype
    if case.hex_fill:
        raw = int(case.hex_fill, 16).to_bytes(dt.itemsize, "big")
        return np.frombuffer(raw, dtype=dt.newbyteorder(">"))[0].astype(dt)
    if case.fill is None:
        return np.zeros((), dtype=dt)[()]
    if dt.kind in "Mm":
        return np.array(case.fill, dtype="i8").view(dt)[()]
    return np.asarray(case.fill).astype(dt)[()]


def sample(case: Case) -> np.ndarray:
    """Deterministic data with extremes and specials, whose first chunk holds only the fill value."""
    dt, shape = case.np_dtype, case.shape
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    if dt.kind == "b":
        data = rng.random(shape) > 0.5
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=shape, dtype=dt.newbyteorder("="), endpoint=True)
        if data.size >= 2:
            data.reshape(-1)[-2:] = [info.min, info.max]
    elif dt.kind in "fc":
        part = np.dtype(f"f{dt.itemsize // 2}") if dt.kind == "c" else dt
        data = (rng.standard_normal(shape) * 100).astype(part)
        if dt.kind == "c":
            data = data + 1j * (rng.standard_normal(shape) * 100).astype(part)
        flat = data.reshape(-1)
        specials = [np.nan, np.inf, -np.inf, -0.0] if dt.kind == "f" else [complex(np.nan, 1), complex(2, np.inf)]
        # Not in the last element: zarr-python 3 drops a chunk holding only (nan+1j) under a (nan+0j) fill.
        for i, value in enumerate(specials):
            if 2 + 2 * i <= flat.size:
                flat[-2 - 2 * i] = value
    elif dt.kind == "U":
        words = np.array(["", "a", "Zürich", "日本語", "x y z", "\U0001f600", "end"])
        data = np.array([w[: dt.itemsize // 4] for w in rng.choice(words, size=shape).reshape(-1)]).reshape(shape)
    elif dt.kind == "S":
        data = rng.integers(1, 256, size=(*shape, dt.itemsize), dtype="uint8")
        data[..., -1] = np.where(rng.random(shape) < 0.3, 0, data[..., -1])  # some shorter values
        data = np.ascontiguousarray(data).view(f"S{dt.itemsize}").reshape(shape)
    else:
        unit = np.datetime_data(dt)[0]
        data = rng.integers(-(10**6), 10**6, size=shape).astype(f"{dt.kind}8[{unit}]")
        if data.size:
            data.reshape(-1)[-1] = np.array("NaT", dtype=data.dtype)
    data = np.asarray(data, dtype=dt)
    if data.ndim and data.size:
        data[tuple(slice(0, c) for c in case.chunks)] = fill_scalar(case)
    return data


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of each element in native order, for comparisons that see -0.0 and NaN payloads."""
    a = np.ascontiguousarray(a)
    a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype.kind == "c":
        a = a.view(f"f{a.dtype.itemsize // 2}")
    if a.dtype.kind in "US":  # strings: their code points or bytes, one column each
        return a.view("u4" if a.dtype.kind == "U" else "u1").reshape(*a.shape, -1)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize > 1 else a.view("u1")


def assert_identical(got: Any, want: np.ndarray) -> None:
    """Same shape, same dtype, same bits; NaNs must sit in the same places (their payloads may differ)."""
    got = np.asarray(got)
    assert got.shape == want.shape
    assert got.dtype.newbyteorder("=") == want.dtype.newbyteorder("=")
    g, w = bits(got), bits(want)
    if want.dtype.kind in "fc":
        part = np.dtype(f"f{want.dtype.itemsize // 2}") if want.dtype.kind == "c" else want.dtype
        nan_g = np.isnan(g.view(part.newbyteorder("=")))
        nan_w = np.isnan(w.view(part.newbyteorder("=")))
        np.testing.assert_array_equal(nan_g, nan_w, err_msg="NaN positions differ")
        g, w = g[~nan_g], w[~nan_w]
    np.testing.assert_array_equal(g, w)


def same_scalar(a: Any, b: Any) -> bool:
    """Equality of fill values, NaN-aware (``None`` only equals ``None``)."""
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.array_equal(a.astype(complex), b.astype(complex), equal_nan=True))
    return bool(a == b)


# -- writers and readers ------------------------------------------------------------------------------


def _codec_kwargs(case: Case, library: str) -> dict[str, Any]:
    if case.codec == "default":
        return {}
    codec = CODECS[case.fmt][case.codec]
    return getattr(codec, library)(case.np_dtype)


def write_with_zarrcore(case: Case, path: Path, data: np.ndarray) -> None:
    kwargs = _codec_kwargs(case, "zarrcore")
    if case.key_encoding:
        kwargs["chunk_key_encoding"] = case.key_encoding
    a = zarrcore.create(
        str(path), shape=case.shape, chunks=case.chunks, dtype=case.dtype, zarr_format=case.fmt,
        fill_value=case.hex_fill or case.fill, order=case.order, dimension_separator=case.separator,
        dimension_names=case.dimension_names, attributes=ATTRS, **kwargs,
    )  # fmt: skip
    a[...] = data


def write_with_zarr(case: Case, path: Path, data: np.ndarray) -> None:
    kwargs = _codec_kwargs(case, "zarr")
    if case.fmt == 2:
        kwargs["order"] = case.order
        if case.separator:
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": case.separator}
    else:
        if case.order == "F" and len(case.shape) > 1:
            kwargs["filters"] = [TransposeCodec(order=tuple(reversed(range(len(case.shape)))))]
        if case.key_encoding or case.separator:
            enc = case.key_encoding or "default"
            kwargs["chunk_key_encoding"] = {"name": enc, "separator": case.separator or "/"}
        kwargs["dimension_names"] = case.dimension_names
    fill = fill_scalar(case) if case.hex_fill else case.fill
    z = zarr.create_array(
        store=str(path), shape=case.shape, chunks=case.chunks, dtype=case.dtype, zarr_format=case.fmt,
        fill_value=fill, attributes=ATTRS, **kwargs,
    )  # fmt: skip
    z[...] = data
    if case.hex_fill:  # store the fill value as its bit pattern, as the v3 spec allows
        doc_path = path / "zarr.json"
        doc = json.loads(doc_path.read_text())
        doc["fill_value"] = case.hex_fill
        doc_path.write_text(json.dumps(doc))


def expected_fill(case: Case) -> Any:
    """The fill value the reader should report: v2 without one reports ``None``."""
    return None if case.fmt == 2 and case.fill is None else fill_scalar(case)


def check_zarr_view(case: Case, path: Path, data: np.ndarray) -> None:
    z = zarr.open_array(str(path), mode="r")
    assert z.metadata.zarr_format == case.fmt
    assert z.shape == case.shape
    assert z.chunks == case.chunks
    assert z.dtype == case.np_dtype or (case.fmt == 3 and z.dtype == case.np_dtype.newbyteorder("="))
    assert same_scalar(z.fill_value, expected_fill(case)), (z.fill_value, expected_fill(case))
    assert dict(z.attrs) == ATTRS
    if case.fmt == 3:
        assert z.metadata.dimension_names == case.dimension_names
    assert_identical(z[...], data)


def check_zarrcore_view(case: Case, path: Path, data: np.ndarray) -> None:
    a = zarrcore.open_array(str(path))
    assert a.zarr_format == case.fmt
    assert a.shape == case.shape
    assert a.chunks == case.chunks
    assert a.dtype == (case.np_dtype if case.fmt == 2 else case.np_dtype.newbyteorder("="))
    assert same_scalar(a.fill_value, expected_fill(case)), (a.fill_value, expected_fill(case))
    assert a.attrs.asdict() == ATTRS
    if case.fmt == 3:
        assert a.metadata.dimension_names == case.dimension_names
        assert a.metadata.key_encoding == (case.key_encoding or "default")
    assert a.metadata.separator == (case.separator or ("/" if case.fmt == 3 and case.key_encoding != "v2" else "."))
    assert_identical(a[...], data)


def chunk_files(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {"zarr.json", ".zarray",
                                                                                         ".zattrs"}  # fmt: skip


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_interop(case: Case, direction: str, tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    data = sample(case)
    if direction == "zarrcore->zarr":
        write_with_zarrcore(case, path, data)
        check_zarr_view(case, path, data)
    else:
        write_with_zarr(case, path, data)
        check_zarrcore_view(case, path, data)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.codec in ("default", "none") and not c.hex_fill and c.dtype in ("int32", "float32")],
    ids=lambda c: c.id,
)
def test_same_chunk_keys_and_bytes(case: Case, tmp_path: Path) -> None:
    """Uncompressed layouts: both libraries store the same chunk keys, holding the same bytes."""
    data = sample(case)
    write_with_zarrcore(case, tmp_path / "ours", data)
    write_with_zarr(case, tmp_path / "theirs", data)
    ours, theirs = chunk_files(tmp_path / "ours"), chunk_files(tmp_path / "theirs")
    assert ours == theirs
    if case.codec == "none":
        for key in ours:
            assert (tmp_path / "ours" / key).read_bytes() == (tmp_path / "theirs" / key).read_bytes(), key


def test_case_count() -> None:
    """The matrix stays a broad covering set."""
    assert len(CASES) * len(DIRECTIONS) >= 200
    assert {c.dtype for c in CASES} >= set(V3_DTYPES + V2_EXTRA_DTYPES)
    assert {(c.fmt, c.codec) for c in CASES} >= {(f, n) for f, names in CODECS.items() for n in names}


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: zarr.create_array(store=p, shape=(2,), chunks=(2,), dtype=[("a", "i4")], zarr_format=2),
         zarrcore.errors.UnsupportedDtypeError, "dtype"),
    ],
    ids=["v2-structured"],
)  # fmt: skip
def test_unsupported_zarr_python_features_are_typed_errors(make: Any, error: type, match: str, tmp_path: Path) -> None:
    """What zarr-python can write and zarrcore cannot read is refused at open, naming the field."""
    make(str(tmp_path / "a.zarr"))
    with pytest.raises(error, match=match):
        zarrcore.open(str(tmp_path / "a.zarr"))


MODIFY_CASES = [
    c for c in CASES
    if c.codec in ("default", "blosc", "delta+shuffle+blosc") and c.dtype in ("int16", "int32") and len(c.shape) == 2
]  # fmt: skip


@pytest.mark.parametrize("case", MODIFY_CASES, ids=lambda c: c.id)
def test_each_library_updates_what_the_other_wrote(case: Case, tmp_path: Path) -> None:
    """Partial writes, resize, append and attribute changes by one library read back in the other."""
    path = tmp_path / "a.zarr"
    data = sample(case)
    write_with_zarr(case, path, data)
    ours = zarrcore.open_array(str(path), mode="r+")
    ours[1:4, ::2] = -1
    ours.append(data[:2])
    ours.attrs["step"] = 1
    expected = np.concatenate([data, data[:2]])
    expected[1:4, ::2] = -1
    theirs = zarr.open_array(str(path), mode="r+")
    assert_identical(theirs[...], expected)
    assert theirs.attrs["step"] == 1
    theirs.resize((3, case.shape[1] + 2))
    theirs[:, -2:] = 7
    theirs.attrs["step"] = 2
    expected = np.concatenate([expected[:3], np.full((3, 2), 7, dtype=expected.dtype)], axis=1)
    again = zarrcore.open_array(str(path))
    assert again.shape == expected.shape and again.attrs["step"] == 2
    assert_identical(again[...], expected)
