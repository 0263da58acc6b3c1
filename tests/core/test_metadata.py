"""Metadata models, dtypes and fill-value JSON: round trips, encodings, and what parsing refuses."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from zarrcore.errors import MetadataError, UnsupportedDtypeError
from zarrcore.metadata import (
    ArrayMetadata,
    GroupMetadata,
    json_dumps,
    json_loads,
    parse_array_v2,
    parse_array_v3,
    parse_dtype,
    parse_group_v3,
)
from zarrcore.metadata.dtypes import decode_fill_value, encode_fill_value, fill_blocks, is_fill, normalize_fill_value
from zarrcore.spec import build_array_metadata


def roundtrip(meta: ArrayMetadata) -> ArrayMetadata:
    """Serialize as the store would hold it, then parse back."""
    docs = {name: json.loads(json_dumps(doc)) for name, doc in meta.to_documents().items()}
    if meta.zarr_format == 3:
        return parse_array_v3(docs["zarr.json"])
    return parse_array_v2(docs[".zarray"], docs.get(".zattrs"))


BLOSC = {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 1, "shuffle": "bitshuffle", "typesize": 8,
                                           "blocksize": 0}}  # fmt: skip
ARRAYS: dict[str, dict[str, Any]] = {
    "v3-default": dict(shape=(10, 4), chunks=(3, 4), dtype="int16"),
    "v3-nan-F": dict(shape=(3, 4, 5), chunks=(2, 2, 2), dtype="float32", fill_value=math.nan, order="F"),
    "v3-names-attrs": dict(
        shape=(2, 2), chunks=(1, 2), dtype="complex128", dimension_names=("t", None),
        attributes={"a": [1, {"b": None}]}, fill_value=complex(1, -math.inf),
    ),
    "v3-v2-keys": dict(shape=(5,), chunks=(2,), dtype="bool", chunk_key_encoding="v2", fill_value=True),
    "v3-0d": dict(shape=(), chunks=(), dtype="uint64", fill_value=2**64 - 1),
    "v3-codecs": dict(
        shape=(8,), chunks=(8,), dtype="float64",
        codecs=[{"name": "bytes", "configuration": {"endian": "big"}}, BLOSC, {"name": "crc32c"}],
    ),
    "v2-default": dict(shape=(7, 3), chunks=(2, 2), dtype="int32", zarr_format=2),
    "v2-filters": dict(
        shape=(9,), chunks=(4,), dtype=">i8", zarr_format=2, order="F", fill_value=-1,
        filters=[{"id": "delta", "dtype": ">i8"}], compressor={"id": "zlib", "level": 1},
        dimension_separator="/", attributes={"k": "v"},
    ),
    "v2-datetime": dict(shape=(4,), chunks=(2,), dtype="M8[ms]", zarr_format=2, fill_value="NaT"),
    "v2-null-fill": dict(shape=(4,), chunks=(2,), dtype="f8", zarr_format=2, compressor=None),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ARRAYS))
def test_documents_round_trip(name: str) -> None:
    meta = build_array_metadata(**ARRAYS[name])
    again = roundtrip(meta)
    assert again.to_documents() == meta.to_documents()
    assert json_dumps(again.to_documents()) == json_dumps(meta.to_documents())  # deterministic bytes
    assert again.fingerprint() == meta.fingerprint()
    assert again.encode_chunk_key((0,) * len(meta.shape)) == meta.encode_chunk_key((0,) * len(meta.shape))


def test_v3_document_shape() -> None:
    doc = build_array_metadata(shape=(4, 6), chunks=(2, 3), dtype="float32", fill_value=math.nan,
                               dimension_names=("y", "x")).to_documents()["zarr.json"]  # fmt: skip
    assert doc == {
        "shape": [4, 6],
        "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 3]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": "NaN",
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
        "attributes": {},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
        "dimension_names": ["y", "x"],
    }  # fmt: skip
    assert b"NaN" in json_dumps(doc) and b"\n  " in json_dumps(doc)


def test_v2_documents() -> None:
    meta = build_array_metadata(shape=(3,), chunks=(2,), dtype="<u2", zarr_format=2)
    assert meta.to_documents() == {".zarray": {
        "shape": [3], "chunks": [2], "dtype": "<u2", "fill_value": None, "order": "C", "filters": None,
        "dimension_separator": ".", "compressor": {"id": "zstd", "level": 3}, "zarr_format": 2}}  # fmt: skip
    with_attrs = meta.replace(attributes={"a": 1}).to_documents()
    assert with_attrs[".zattrs"] == {"a": 1}


def test_v2_defaults_when_fields_are_absent() -> None:
    zarray = {"zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "<f8", "compressor": None,
              "fill_value": 0, "order": "C", "filters": None}  # fmt: skip
    meta = parse_array_v2(zarray)
    assert meta.separator == "." and meta.key_encoding == "v2" and meta.encode_chunk_key((1,)) == "1"
    assert meta.attributes == {}


def test_v3_chunk_key_encodings_and_bare_codec_names() -> None:
    doc = build_array_metadata(shape=(4, 4), chunks=(2, 2), dtype="u1").to_documents()["zarr.json"]
    doc["codecs"] = ["bytes"]
    doc["chunk_key_encoding"] = {"name": "v2"}
    meta = parse_array_v3(doc)
    assert meta.codecs == ({"name": "bytes"},)
    assert (meta.separator, meta.encode_chunk_key((1, 0))) == (".", "1.0")
    doc["chunk_key_encoding"] = {"name": "default"}
    assert parse_array_v3(doc).encode_chunk_key((1, 0)) == "c/1/0"


def test_fingerprint_ignores_attributes_only() -> None:
    meta = build_array_metadata(shape=(4,), chunks=(2,), dtype="i4")
    assert meta.replace(attributes={"x": 1}).fingerprint() == meta.fingerprint()
    for change in ({"shape": (5,)}, {"chunks": (4,)}, {"fill_value": np.int32(1)}, {"codecs": meta.codecs[:1]}):
        assert meta.replace(**change).fingerprint() != meta.fingerprint(), change


# -- extensions ----------------------------------------------------------------------------------------


def test_v3_extension_fields() -> None:
    doc = build_array_metadata(shape=(2,), chunks=(2,), dtype="u1").to_documents()["zarr.json"]
    optional = {"must_understand": False, "configuration": {"level": 2}}
    meta = parse_array_v3({**doc, "my_ext": optional})
    assert meta.extra == {"my_ext": optional}
    assert meta.to_documents()["zarr.json"]["my_ext"] == optional
    for required in ({"must_understand": True}, {"configuration": {}}, "on", 3):
        with pytest.raises(MetadataError, match="unknown field 'my_ext' that must be understood"):
            parse_array_v3({**doc, "my_ext": required})
    group = {"zarr_format": 3, "node_type": "group", "attributes": {}}
    assert parse_group_v3({**group, "x": optional}).attributes == {}
    with pytest.raises(MetadataError, match="unknown field 'x'"):
        parse_group_v3({**group, "x": 1})


# -- dtypes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("float32", 3, "<f4"), (">f8", 3, "<f8"), ("<i2", 3, "<i2"), ("bool", 3, "|b1"), (np.uint64, 3, "<u8"),
        ("complex64", 3, "<c8"), ("int32", 2, "<i4"), (">i4", 2, ">i4"), ("=u2", 2, "<u2"), ("|b1", 2, "|b1"),
        ("M8[ns]", 2, "<M8[ns]"), (">m8[D]", 2, ">m8[D]"), ("float16", 2, "<f2"),
        ("M8[ns]", 3, "<M8[ns]"), (">m8[10s]", 3, "<m8[10s]"), ("datetime64[D]", 3, "<M8[D]"),
        ({"name": "numpy.datetime64", "configuration": {"unit": "ms", "scale_factor": 1}}, 3, "<M8[ms]"),
        ({"name": "numpy.timedelta64", "configuration": {"unit": "μs", "scale_factor": 5}}, 3, "<m8[5us]"),
        ("U4", 3, "<U4"), (">U4", 3, "<U4"), ("S3", 3, "|S3"), ("U4", 2, "<U4"), (">U4", 2, ">U4"), ("S3", 2, "|S3"),
        ({"name": "fixed_length_utf32", "configuration": {"length_bytes": 12}}, 3, "<U3"),
        ({"name": "null_terminated_bytes", "configuration": {"length_bytes": 5}}, 3, "|S5"),
        ("string", 3, "|O"), (str, 3, "|O"), ("O", 2, "|O"), (object, 2, "|O"),
    ],
    ids=str,
)  # fmt: skip
def test_parse_dtype(value: Any, fmt: int, expected: str) -> None:
    assert parse_dtype(value, fmt).str == expected


@pytest.mark.parametrize(
    ("value", "fmt", "match"),
    [
        ("U", 3, "strings need a length"), ("S", 2, "strings need a length"), ("V8", 3, "not supported in Zarr v3"),
        ("V8", 2, "kind 'V'"), ([("a", "i1")], 2, "structured"), (("i4", (2,)), 2, "sub-array"),
        ("M8", 2, "need a unit"), ("m8", 3, "need a unit"), ("M8[0s]", 3, "scale factor"),
        ("nope", 3, "not a known data type"),
    ],
    ids=str,
)  # fmt: skip
def test_unsupported_dtypes(value: Any, fmt: int, match: str) -> None:
    with pytest.raises(UnsupportedDtypeError, match=match):
        parse_dtype(value, fmt, "the_field")
    with pytest.raises(UnsupportedDtypeError, match="the_field"):
        parse_dtype(value, fmt, "the_field")


# -- fill values ---------------------------------------------------------------------------------------

FILLS: list[tuple[str, int, Any, Any]] = [
    ("float32", 3, math.nan, "NaN"),
    ("float64", 3, math.inf, "Infinity"),
    ("float16", 3, -math.inf, "-Infinity"),
    ("float64", 3, -0.0, -0.0),
    ("float32", 3, 0.1, float(np.float32(0.1))),
    ("complex64", 3, complex(math.nan, math.inf), ["NaN", "Infinity"]),
    ("complex128", 2, complex(1.5, -2), [1.5, -2.0]),
    ("int64", 3, -(2**63), -(2**63)),
    ("uint64", 3, 2**64 - 1, 2**64 - 1),
    ("bool", 3, True, True),
    ("int8", 2, None, None),
    ("<M8[ns]", 2, np.datetime64("NaT", "ns"), -(2**63)),
    ("<m8[s]", 2, np.timedelta64(5, "s"), 5),
    ("M8[ns]", 3, np.datetime64("NaT", "ns"), -(2**63)),
    ("M8[10s]", 3, np.datetime64("1970-01-01T00:01:00"), 6),
    ("m8[h]", 3, np.timedelta64(-3, "h"), -3),
]


def _same_bits(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize(("dtype", "fmt", "value", "encoded"), FILLS, ids=lambda v: str(v))
def test_fill_value_encoding(dtype: str, fmt: int, value: Any, encoded: Any) -> None:
    dt = parse_dtype(dtype, fmt)
    fill = normalize_fill_value(value, dt, fmt)
    assert encode_fill_value(fill, dt, fmt) == encoded
    decoded = decode_fill_value(json.loads(json.dumps(encoded)), dt, fmt)
    assert _same_bits(decoded, fill)
    if decoded is not None:
        assert np.asarray(decoded).dtype == dt


@pytest.mark.parametrize(
    ("dtype", "hex_value", "bits"),
    [("float32", "0x7fc00001", 0x7FC00001), ("float32", "0x3F800000", 0x3F800000), ("float16", "0x3c00", 0x3C00),
     ("float64", "0x7ff0000000000000", 0x7FF0000000000000), ("float64", "0x8000000000000000", 1 << 63)],
)  # fmt: skip
def test_hex_fill_values_keep_every_bit(dtype: str, hex_value: str, bits: int) -> None:
    dt = np.dtype(dtype)
    value = decode_fill_value(hex_value, dt, 3)
    assert int(np.asarray(value).view(f"u{dt.itemsize}")) == bits
    complex_value = decode_fill_value([hex_value, 0], np.dtype(f"c{2 * dt.itemsize}"), 3) if dt.itemsize > 2 else None
    if complex_value is not None:
        assert int(np.asarray(complex_value.real, dtype=dt).view(f"u{dt.itemsize}")) == bits


@pytest.mark.parametrize(
    ("dtype", "fmt", "value", "match"),
    [
        ("int8", 3, 1.5, "not an integer"), ("uint8", 3, 256, "out of range"), ("int16", 3, "7", "not an integer"),
        ("bool", 3, "true", "not a boolean"), ("float32", 3, "nan", "not a number"), ("float32", 3, "0x7fc0", "8 hex"),
        ("float32", 3, "0xZZZZZZZZ", "hex fill value"), ("float32", 3, 1e300, "out of range"),
        ("float64", 3, True, "not a valid fill value"), ("complex64", 3, 1.0, r"\[real, imag\]"),
        ("complex64", 3, [1.0], r"\[real, imag\]"), ("float64", 3, None, "null is not allowed in Zarr v3"),
        ("<M8[s]", 2, "2020-01-01", "not an integer"), ("M8[s]", 3, 1.0, "not an integer or 'NaT'"),
        ("m8[s]", 3, 2**63, "out of the int64 range"),
    ],
    ids=str,
)  # fmt: skip
def test_invalid_fill_values(dtype: str, fmt: int, value: Any, match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        decode_fill_value(value, np.dtype(dtype), fmt, "zarr.json: fill_value")


@pytest.mark.parametrize(
    ("dtype", "value", "match"),
    [("int8", 2.5, "does not fit"), ("uint16", -1, "does not fit"), ("int32", math.nan, "does not fit"),
     ("float32", 1e39, "out of range"), ("int8", object(), "not a scalar")],
    ids=lambda v: type(v).__name__ if type(v) is object else str(v),
)  # fmt: skip
def test_invalid_user_fill_values(dtype: str, value: Any, match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        normalize_fill_value(value, np.dtype(dtype), 3)


@pytest.mark.parametrize(
    ("chunk", "fill", "expected"),
    [
        (np.full(3, np.nan), np.nan, True), (np.array([np.nan, 1.0]), np.nan, False),
        (np.array([complex(np.nan, 0)] * 2), complex(np.nan, 0), True),
        (np.array([complex(np.nan, 1)]), complex(np.nan, 0), False),
        (np.array(["NaT", "NaT"], dtype="M8[s]"), np.datetime64("NaT", "s"), True),
        (np.array(["NaT", "2020-01-01"], dtype="M8[s]"), np.datetime64("NaT", "s"), False),
        (np.zeros(4, dtype="i2"), None, True), (np.array([-0.0]), 0.0, True), (np.ones(2, dtype=bool), True, True),
    ],
)  # fmt: skip
def test_is_fill(chunk: np.ndarray, fill: Any, expected: bool) -> None:
    assert is_fill(chunk, fill) is expected


@pytest.mark.parametrize(
    ("dtype", "fill", "other"),
    [("float32", 0.0, 1.5), ("float64", np.nan, 0.0), ("int16", None, 7), ("uint8", 255, 0), ("bool", False, True),
     ("complex64", complex(np.nan, 0), complex(np.nan, 1)), ("complex128", 1 + 2j, 1 + 3j),
     ("M8[s]", np.datetime64("NaT", "s"), np.datetime64("2020-01-01", "s")), ("m8[ms]", np.timedelta64(0, "ms"),
     np.timedelta64(5, "ms")), ("U3", "ab", "zz"), ("S2", b"x", b"yz"),
     ("i4,f4", np.array((1, 2.0), dtype="i4,f4")[()], (1, 3.0))],
)  # fmt: skip
def test_fill_blocks_agrees_with_is_fill_block_by_block(dtype: str, fill: Any, other: Any) -> None:
    dt = np.dtype(dtype)
    same, different = np.array(fill if fill is not None else 0, dtype=dt), np.array(other, dtype=dt)
    blocks = np.empty((7, 4, 5), dtype=dt)
    blocks[...] = same
    blocks[1, 0, 0] = blocks[2, -1, -1] = blocks[3, 2, 2] = different  # differs first, last, in the middle
    blocks[4] = different  # differs everywhere; 0, 5 and 6 hold only the fill value
    expected = [is_fill(b, fill) for b in blocks]
    assert expected == [True, False, False, False, False, True, True]
    assert fill_blocks(blocks, fill) == expected
    assert fill_blocks(blocks[:0], fill) == []


# -- groups and JSON ---------------------------------------------------------------------------------


def test_group_documents() -> None:
    assert GroupMetadata(2).to_documents() == {".zgroup": {"zarr_format": 2}}
    assert GroupMetadata(2, {"a": 1}).to_documents()[".zattrs"] == {"a": 1}
    doc = GroupMetadata(3, {"a": 1}, {"x": {"node_type": "group"}}).to_documents()["zarr.json"]
    assert doc["consolidated_metadata"] == {"kind": "inline", "must_understand": False,
                                            "metadata": {"x": {"node_type": "group"}}}  # fmt: skip
    assert parse_group_v3(doc).consolidated == {"x": {"node_type": "group"}}


@pytest.mark.parametrize(
    ("data", "match"),
    [(b"{", "malformed JSON"), (b"\x80", "malformed JSON"), (b"null", "expected a JSON object"),
     (b'"text"', "expected a JSON object")],
)  # fmt: skip
def test_json_loads_names_the_key(data: bytes, match: str) -> None:
    with pytest.raises(MetadataError, match=f"some/key.json: {match}"):
        json_loads(data, "some/key.json")


def test_json_dumps_numpy_values() -> None:
    doc = {"i": np.int64(3), "f": np.float32(np.nan), "inf": np.float32(-np.inf), "b": np.bool_(True),
           "a": np.arange(2)}  # fmt: skip
    assert json.loads(json_dumps(doc)) == {"i": 3, "f": "NaN", "inf": "-Infinity", "b": True, "a": [0, 1]}
    with pytest.raises(TypeError):
        json_dumps({"x": object()})
