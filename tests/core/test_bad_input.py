"""Every bad input raises its typed error, names the key, field or index at fault, and changes nothing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zarrcore
from zarrcore.errors import (
    ChunkError,
    CodecError,
    InvalidKey,
    MetadataConflictError,
    MetadataError,
    NotFound,
    ReadOnlyError,
    SelectionError,
    UnsupportedDtypeError,
)
from zarrcore.storage.local import LocalStore

LE = {"name": "bytes", "configuration": {"endian": "little"}}
SHAPE, CHUNKS = (4, 4), (2, 2)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file (temporary ones included) and folder below ``root``, with file contents."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix() + ("/" if p.is_dir() else ""): b"" if p.is_dir() else p.read_bytes()
            for p in root.rglob("*")}  # fmt: skip


@contextlib.contextmanager
def unchanged(root: Path) -> Iterator[None]:
    """Assert that the block leaves every file and folder under ``root`` byte-identical."""
    before = snapshot(root)
    yield
    assert snapshot(root) == before


def make_array(path: Path, fmt: int = 3, **kwargs: Any) -> zarrcore.Array:
    """A 4x4 float32 array with every chunk stored."""
    kwargs = {"zarr_format": fmt, **kwargs}
    a = zarrcore.create(str(path), shape=SHAPE, chunks=CHUNKS, dtype="float32", **kwargs)
    a[...] = np.arange(16, dtype="float32").reshape(SHAPE) + 1
    return a


def edit_document(path: Path, name: str, **changes: Any) -> None:
    """Rewrite a metadata document with fields changed (``...`` removes a field)."""
    doc = json.loads((path / name).read_text())
    doc.update(changes)
    (path / name).write_text(json.dumps({k: v for k, v in doc.items() if v is not ...}))


def _keys_id(value: Any) -> str | None:
    """Test ids from the changed fields."""
    return ",".join(value) if isinstance(value, dict) else None


# -- malformed and invalid metadata documents ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "content", "match"),
    [
        (3, "zarr.json", b"{not json", r"zarr\.json: malformed JSON"),
        (3, "zarr.json", b"[1, 2]", r"zarr\.json: expected a JSON object"),
        (3, "zarr.json", b"\xff\xfe\x00", r"zarr\.json: malformed JSON"),
        (2, ".zarray", b'{"zarr_format": 2,', r"\.zarray: malformed JSON"),
        (2, ".zattrs", b"{'single': 'quotes'}", r"\.zattrs: malformed JSON"),
        (2, ".zattrs", b"[]", r"\.zattrs: expected a JSON object"),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith(("{", "[", "\\")) else None,
)
def test_malformed_metadata_json(fmt: int, name: str, content: bytes, match: str, tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    make_array(path, fmt, attributes={"k": 1})
    (path / name).write_bytes(content)
    with unchanged(tmp_path), pytest.raises(MetadataError, match=match):
        zarrcore.open(str(path), mode="r+")


def test_malformed_consolidated_metadata(tmp_path: Path) -> None:
    path = tmp_path / "g.zarr"
    zarrcore.create_group(str(path), zarr_format=2)
    (path / ".zmetadata").write_bytes(b'{"metadata": ')
    with unchanged(tmp_path), pytest.raises(MetadataError, match=r"\.zmetadata: malformed JSON"):
        zarrcore.open_group(str(path))
    (path / ".zmetadata").write_text(json.dumps({"metadata": {"x/.zarray": 5}}))
    with unchanged(tmp_path), pytest.raises(MetadataError, match=r"x: \.zarray must be a JSON object"):
        zarrcore.open_group(str(path))["x"]


V3_BAD_DOCS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"codecs": [LE, {"name": "lzma"}]}, CodecError, r"codecs\[1\] \('lzma'\): unknown codec"),
    ({"codecs": [LE, {"name": "gzip", "configuration": {"level": 42}}]}, CodecError, r"codecs\[1\].*level"),
    ({"codecs": [LE, {"name": "zstd", "configuration": {"level": 1, "speed": 2}}]}, CodecError, r"\['speed'\]"),
    ({"codecs": [{"name": "bytes"}]}, CodecError, r"codecs\[0\] \('bytes'\): 'endian' is required"),
    ({"codecs": [LE, {"name": "sharding_indexed"}]}, CodecError, r"codecs\[1\].*sharding"),
    ({"data_type": "string", "fill_value": ""}, CodecError, r"\('bytes'\): variable-length strings are encoded by"),
    ({"data_type": "variable_length_bytes"}, UnsupportedDtypeError, r"zarr\.json: data_type 'variable_length_bytes'"),
    ({"data_type": {"name": "numpy.datetime64"}}, MetadataError, r"data_type: numpy\.datetime64 needs exactly"),
    ({"data_type": {"name": "numpy.void", "configuration": {}}}, UnsupportedDtypeError, r"'numpy\.void'.*supported:"),
    ({"data_type": ["int8"]}, MetadataError, r"zarr\.json: data_type must be a name or an object"),
    ({"data_type": {"name": "fixed_length_utf32", "configuration": {"length_bytes": 6}}}, MetadataError,
     r"fixed_length_utf32 needs configuration\.length_bytes, a positive multiple of 4"),
    ({"data_type": {"name": "fixed_length_utf32", "configuration": {"length_bytes": 8}}}, MetadataError,
     r"fill_value: 0\.0 is not a string of at most 2 characters"),
    ({"data_type": {"name": "null_terminated_bytes", "configuration": {"length_bytes": 2}}, "fill_value": "**"},
     MetadataError, r"fill_value: '\*\*' is not base64 of at most 2 bytes"),
    ({"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}}}, MetadataError, r"rank 1 .* rank 2"),
    ({"chunk_grid": {"name": "rectilinear"}}, MetadataError, r"chunk_grid: only the 'regular' grid"),
    ({"chunk_key_encoding": {"name": "default", "configuration": {"separator": "-"}}}, MetadataError, "separator"),
    ({"fill_value": "lots"}, MetadataError, r"zarr\.json: fill_value: 'lots'"),
    ({"fill_value": ...}, MetadataError, r"missing required field 'fill_value'"),
    ({"shape": [4, -4]}, MetadataError, r"zarr\.json: shape"),
    ({"dimension_names": ["x"]}, MetadataError, r"zarr\.json: dimension_names: 1 names"),
    ({"storage_transformers": [{"name": "x"}]}, MetadataError, "storage_transformers"),
    ({"zarr_format": 4}, MetadataError, r"zarr_format must be 3"),
    ({"future_extension": {"enabled": True}}, MetadataError, r"unknown field 'future_extension' that must be"),
    ({"future_flag": "on"}, MetadataError, r"unknown field 'future_flag'"),
]
V2_BAD_DOCS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"compressor": {"id": "no-such-codec"}}, CodecError, r"compressor: cannot build codec"),
    ({"compressor": {"id": "blosc", "cname": "nope", "clevel": 5, "shuffle": 1}}, CodecError, "compressor.*nope"),
    ({"compressor": {"id": "gzip", "level": 11}}, CodecError, r"compressor: invalid configuration"),
    ({"filters": [{"id": "delta"}]}, CodecError, r"filters\[0\]"),
    ({"dtype": "|O"}, CodecError, r"variable-length strings \(dtype '\|O'\) need a \{'id': 'vlen-utf8'\} filter"),
    ({"dtype": "<M8"}, UnsupportedDtypeError, r"\.zarray: dtype '<M8'.*unit"),
    ({"chunks": [2, 2, 2]}, MetadataError, r"\.zarray: chunks: rank 3"),
    ({"order": "K"}, MetadataError, r"order must be 'C' or 'F'"),
    ({"fill_value": [1, 2]}, MetadataError, r"\.zarray: fill_value"),
    ({"shape": "4x4"}, MetadataError, r"\.zarray: shape"),
    ({"compressor": ...}, MetadataError, r"missing required field 'compressor'"),
]


@pytest.mark.parametrize(
    ("fmt", "changes", "error", "match"),
    [(3, *bad) for bad in V3_BAD_DOCS] + [(2, *bad) for bad in V2_BAD_DOCS],
    ids=lambda v: _keys_id(v),
)
def test_invalid_metadata_fails_at_open(
    fmt: int, changes: dict[str, Any], error: type[Exception], match: str, tmp_path: Path
) -> None:
    """Unknown or misconfigured codecs, unsupported dtypes, wrong ranks...: the open fails, not a later read."""
    path = tmp_path / "a.zarr"
    make_array(path, fmt)
    edit_document(path, "zarr.json" if fmt == 3 else ".zarray", **changes)
    with unchanged(tmp_path), pytest.raises(error, match=match):
        zarrcore.open(str(path), mode="r+")


def test_v3_extension_fields_that_need_not_be_understood(tmp_path: Path) -> None:
    """``must_understand: false`` extensions are accepted, and kept when the metadata is rewritten."""
    path = tmp_path / "a.zarr"
    make_array(path)
    ext = {"must_understand": False, "configuration": {"x": 1}}
    edit_document(path, "zarr.json", optional_extension=ext)
    a = zarrcore.open(str(path), mode="r+")
    a.attrs["touched"] = True
    assert json.loads((path / "zarr.json").read_text())["optional_extension"] == ext
    assert a[0, 0] == 1


# -- bad arguments to create -----------------------------------------------------------------------------

BAD_CREATE: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"codecs": [LE, {"name": "snappy-ish"}]}, CodecError, r"codecs\[1\] \('snappy-ish'\): unknown codec"),
    ({"codecs": [LE, {"name": "blosc", "configuration": {"clevel": 12}}]}, CodecError, r"codecs\[1\].*clevel"),
    ({"codecs": [LE, {"name": "blosc", "configuration": {"blocksize": -1}}]}, CodecError, r"blocksize"),
    ({"codecs": [LE, {"name": "zstd", "configuration": {"checksum": "yes"}}]}, CodecError, r"checksum"),
    ({"codecs": [{"name": "gzip"}, LE]}, CodecError, r"codecs\[0\] \('gzip'\): bytes->bytes codecs must come"),
    ({"codecs": [LE, 3]}, CodecError, r"codecs\[1\]: expected an object"),
    ({"codecs": [{"name": "transpose", "configuration": {"order": [0, 0]}}, LE]}, CodecError, r"permutation"),
    ({"codecs": [LE, LE]}, CodecError, r"codecs\[1\].*only one array->bytes"),
    ({"zarr_format": 2, "compressor": {"id": "blosc", "cname": "snappy-ish"}}, CodecError, "compressor.*snappy"),
    ({"zarr_format": 2, "compressor": {"id": "zlib", "level": 99}}, CodecError, r"compressor: invalid"),
    ({"zarr_format": 2, "compressor": "zstd"}, CodecError, r"compressor: expected None or a numcodecs config"),
    ({"zarr_format": 2, "filters": [{"id": "delta"}]}, CodecError, r"filters\[0\]"),
    ({"zarr_format": 2, "filters": [{"no_id": 1}]}, CodecError, r"filters\[0\]: expected an object"),
    ({"dtype": "U"}, UnsupportedDtypeError, r"strings need a length, e.g. 'U8'"),
    ({"dtype": "U2", "fill_value": "abc"}, MetadataError, r"fill_value 'abc' is longer than <U2 holds"),
    ({"dtype": "S2", "fill_value": "é"}, MetadataError, r"fill_value 'é' does not fit \|S2"),
    ({"dtype": "U2", "fill_value": 3}, MetadataError, r"fill_value 3 is not a string for <U2"),
    ({"dtype": "V8"}, UnsupportedDtypeError, r"dtype 'V8' is not supported in Zarr v3"),
    ({"dtype": "M8"}, UnsupportedDtypeError, r"dtype 'M8': datetime64/timedelta64 need a unit"),
    ({"dtype": str, "fill_value": 0}, MetadataError, r"fill_value 0 is not a string for str"),
    ({"dtype": str, "codecs": [LE]}, CodecError, r"variable-length strings are encoded by 'vlen-utf8', not 'bytes'"),
    ({"codecs": [{"name": "vlen-utf8"}]}, CodecError, r"'vlen-utf8' encodes variable-length strings, not float32"),
    ({"dtype": str, "zarr_format": 2, "filters": [{"id": "zlib"}]}, CodecError, r"need a \{'id': 'vlen-utf8'\}"),
    ({"dtype": "V8", "zarr_format": 2}, UnsupportedDtypeError, r"kind 'V'"),
    ({"dtype": [("a", "i4")], "zarr_format": 2}, UnsupportedDtypeError, r"structured"),
    ({"dtype": "m8", "zarr_format": 2}, UnsupportedDtypeError, r"need a unit"),
    ({"dtype": "float99"}, UnsupportedDtypeError, r"'float99' is not a known data type"),
    ({"chunks": (2, 2, 2)}, MetadataError, r"chunks: rank 3 does not match shape rank 2"),
    ({"chunks": (2,)}, MetadataError, r"chunks: rank 1"),
    ({"chunks": (0, 2)}, MetadataError, r"chunks must be >= 1"),
    ({"shape": (4, -1)}, MetadataError, r"shape must be >= 0"),
    ({"shape": "big"}, MetadataError, r"shape must be an integer"),
    ({"fill_value": 1.5, "dtype": "int8"}, MetadataError, r"fill_value 1.5 does not fit int8"),
    ({"fill_value": 256, "dtype": "uint8"}, MetadataError, r"fill_value 256"),
    ({"fill_value": "0x7fc0", "dtype": "float32"}, MetadataError, r"fill_value: hex fill value '0x7fc0' must have 8"),
    ({"dimension_names": ["x"]}, MetadataError, r"dimension_names: 1 names for an array of rank 2"),
    ({"dimension_names": ["x", 7]}, MetadataError, r"dimension_names: expected strings"),
    ({"attributes": {"when": object()}}, MetadataError, r"attributes must be JSON-serializable"),
    ({"attributes": {"nan": float("nan")}}, MetadataError, r"attributes must be JSON-serializable"),
    ({"order": "Z"}, MetadataError, r"order must be 'C' or 'F'"),
    ({"dimension_separator": ":"}, MetadataError, r"dimension_separator"),
    ({"zarr_format": 4}, MetadataError, r"zarr_format must be 2 or 3"),
    ({"compressor": {"id": "zstd"}}, MetadataError, r"Zarr v2 options"),
    ({"zarr_format": 2, "codecs": [LE]}, MetadataError, r"codecs is a Zarr v3 option"),
    ({"zarr_format": 2, "chunk_key_encoding": "default"}, MetadataError, r"chunk_key_encoding"),
]


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite-existing"])
@pytest.mark.parametrize(("changes", "error", "match"), BAD_CREATE, ids=lambda v: _keys_id(v))
def test_bad_create_arguments(
    changes: dict[str, Any], error: type[Exception], match: str, existing: bool, tmp_path: Path
) -> None:
    """Nothing is created; with overwrite=True an existing array is left untouched."""
    path = tmp_path / "a.zarr"
    if existing:
        make_array(path)
    kwargs = {"shape": SHAPE, "chunks": CHUNKS, "dtype": "float32", **changes}
    with unchanged(tmp_path), pytest.raises(error, match=match):
        zarrcore.create(str(path), overwrite=existing, **kwargs)
    assert path.exists() == existing


def test_bad_group_attributes_create_nothing(tmp_path: Path) -> None:
    root = zarrcore.create_group(str(tmp_path / "g.zarr"))
    with unchanged(tmp_path), pytest.raises(MetadataError, match="attributes"):
        root.create_group("child", attributes={"bad": {1, 2}})
    with unchanged(tmp_path), pytest.raises(MetadataError, match="attributes"):
        root.attrs["bad"] = float("inf")


# -- damaged chunks --------------------------------------------------------------------------------------

CHUNK_CODECS: dict[str, dict[str, Any]] = {
    "v3-raw": {"codecs": [LE]},
    "v3-zstd": {},
    "v3-blosc": {"codecs": [LE, {"name": "blosc", "configuration": {"cname": "lz4", "shuffle": "shuffle"}}]},
    "v3-gzip": {"codecs": [LE, {"name": "gzip"}]},
    "v3-crc32c": {"codecs": [LE, {"name": "crc32c"}]},
    "v2-raw": {"zarr_format": 2, "compressor": None},
    "v2-blosc": {"zarr_format": 2, "compressor": {"id": "blosc", "cname": "zstd", "clevel": 1, "shuffle": 2}},
    "v2-zlib": {"zarr_format": 2, "compressor": {"id": "zlib", "level": 1}},
    "v2-delta-zstd": {
        "zarr_format": 2,
        "compressor": {"id": "zstd", "level": 1},
        "filters": [{"id": "delta", "dtype": "<f4"}],
    },
}
DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda b: b[: len(b) - 3],
    "half": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "padded": lambda b: b + b"\x00\x01",
}
# zlib streams end with their own marker and ignore trailing bytes, and a blosc frame states its own
# length (z5py writes frames with bytes after them; zarr-python reads them): padded, both still read.
PADDED_READ = {"v2-zlib", "v2-blosc", "v3-blosc"}
DAMAGE_CASES = [(c, d) for c in CHUNK_CODECS for d in DAMAGE if not (c in PADDED_READ and d == "padded")]


@pytest.mark.parametrize(("codec", "damage"), DAMAGE_CASES, ids=lambda v: v)
def test_damaged_chunk_bytes_raise_chunk_error(codec: str, damage: str, tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    a = make_array(path, **CHUNK_CODECS[codec])
    key = a.chunk_key((1, 0))
    (path / key).write_bytes(DAMAGE[damage]((path / key).read_bytes()))
    with unchanged(tmp_path):
        for read in (lambda: a[...], lambda: a.read_chunk((1, 0)), lambda: a[2:, :2]):
            with pytest.raises(ChunkError, match=r"chunk \(1, 0\)") as info:
                read()
            assert info.value.index == (1, 0)
            assert info.value.key == key
            assert isinstance(info.value.cause, CodecError)
        np.testing.assert_array_equal(a[:2, :], np.arange(1, 9).reshape(2, 4))  # other chunks still read


@pytest.mark.parametrize("codec", sorted(PADDED_READ))
def test_bytes_after_a_self_delimited_chunk_are_ignored(codec: str, tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    a = make_array(path, **CHUNK_CODECS[codec])
    expected = a[...]
    key = path / a.chunk_key((1, 0))
    key.write_bytes(DAMAGE["padded"](key.read_bytes()))
    np.testing.assert_array_equal(zarrcore.open_array(str(path))[...], expected)
    import zarr

    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], expected)  # as zarr-python reads it


def test_a_blosc_frame_shorter_than_it_states_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    a = make_array(path, **CHUNK_CODECS["v3-blosc"])
    key = path / a.chunk_key((1, 0))
    key.write_bytes(key.read_bytes()[:-1])
    with pytest.raises(ChunkError, match=r"blosc: the frame header states \d+ bytes but the chunk holds"):
        a[...]


def test_flipped_bits_are_caught_by_a_checksum(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    a = make_array(path, codecs=[LE, {"name": "crc32c"}])
    key = path / a.chunk_key((0, 1))
    data = bytearray(key.read_bytes())
    data[3] ^= 0x10
    key.write_bytes(bytes(data))
    with unchanged(tmp_path), pytest.raises(ChunkError, match=r"chunk \(0, 1\).*crc32c"):
        a[...]


# -- keys, shapes and paths ------------------------------------------------------------------------------

BAD_KEYS = ["../escape", "a/../../escape", "./a", "a//b", "/abs", "a\\b", ""]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused_by_the_store(key: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    store.put("inside", b"x")
    with unchanged(tmp_path):
        for op in (lambda: store.put(key, b"data"), lambda: store.get(key), lambda: store.delete(key),
                   lambda: store.put(key, b"data", mode="create"), lambda: store.size(key)):  # fmt: skip
            with pytest.raises(InvalidKey, match="invalid key"):
                op()


@pytest.mark.parametrize("path", ["../escape", "a/../../escape", "a/./b"])
def test_invalid_node_paths(path: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    root = zarrcore.create_group(store)
    with unchanged(tmp_path):
        for op in (
            lambda: zarrcore.create(store, path=path, shape=(1,), chunks=(1,), dtype="u1"),
            lambda: zarrcore.open(store, path=path),
            lambda: zarrcore.create_group(store, path=path),
            lambda: root[path],
            lambda: root.create_array(path, shape=(1,), chunks=(1,), dtype="u1"),
            lambda: root.create_group(path),
        ):
            with pytest.raises(InvalidKey, match=r"\.\.|'\.'"):
                op()


@pytest.mark.parametrize(
    ("write", "match"),
    [
        (lambda a: a.__setitem__(..., np.zeros((3, 4))), r"shape \(3, 4\) to a selection of shape \(4, 4\)"),
        (lambda a: a.__setitem__((0, slice(None)), np.zeros(3)), r"shape \(3,\) to a selection of shape \(4,\)"),
        (lambda a: a.__setitem__(slice(1, 3), np.zeros((4, 4))), r"selection of shape \(2, 4\)"),
        (lambda a: a.__setitem__((5, 0), 1.0), r"index 5 is out of bounds"),
        (lambda a: a.write_chunk((0, 0), np.zeros((2, 3))), r"chunk \(0, 0\): data of shape \(2, 3\)"),
        (lambda a: a.write_chunk((2, 0), np.zeros((2, 2))), r"chunk index \(2, 0\) is out of bounds"),
        (lambda a: a.append(np.zeros((1, 3))), r"append: data shape \(1, 3\)"),
        (lambda a: a.append(np.zeros((1, 4)), axis=2), r"axis 2"),
        (lambda a: a.resize(4), r"resize: new shape \(4,\)"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_writes_of_the_wrong_shape(write: Callable[[zarrcore.Array], Any], match: str, tmp_path: Path) -> None:
    a = make_array(tmp_path / "a.zarr")
    with unchanged(tmp_path), pytest.raises(SelectionError, match=match):
        write(a)
    assert a.shape == SHAPE


def test_opening_a_missing_path_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.zarr"
    with unchanged(tmp_path):
        for op in (
            lambda: zarrcore.open(str(missing)),
            lambda: zarrcore.open(str(missing), mode="r+"),
            lambda: zarrcore.open_array(str(missing), mode="a"),
            lambda: zarrcore.open_group(str(missing)),
            lambda: zarrcore.consolidate_metadata(str(missing)),
        ):
            with pytest.raises(NotFound, match=r"missing\.zarr"):
                op()
    assert not missing.exists()
    root = zarrcore.create_group(str(tmp_path / "g.zarr"))
    with unchanged(tmp_path), pytest.raises(NotFound, match="no array or group named 'nope'"):
        root["nope"]


# -- existing nodes ------------------------------------------------------------------------------------

CONFLICTS: list[tuple[int, dict[str, Any], str]] = [
    (3, {"shape": (5, 4)}, "shape"),
    (3, {"chunks": (4, 4)}, "chunk_grid"),
    (3, {"dtype": "float64"}, "data_type"),
    (3, {"fill_value": 7.0}, "fill_value"),
    (3, {"codecs": [LE]}, "codecs"),
    (3, {"attributes": {"new": 1}}, "attributes"),
    (3, {"dimension_names": ("y", "x")}, "dimension_names"),
    (3, {"dimension_separator": "."}, "chunk_key_encoding"),
    (3, {"zarr_format": 2}, "a Zarr v3 array already exists"),
    (2, {"order": "F"}, "order"),
    (2, {"compressor": None}, "compressor"),
    (2, {"dtype": ">f4"}, "dtype"),
    (2, {"zarr_format": 3}, "a Zarr v2 array already exists"),
]


@pytest.mark.parametrize(("fmt", "changes", "field"), CONFLICTS, ids=lambda v: v if isinstance(v, str) else None)
def test_create_over_different_metadata(fmt: int, changes: dict[str, Any], field: str, tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    make_array(path, fmt)
    kwargs = {"shape": SHAPE, "chunks": CHUNKS, "dtype": "float32", "zarr_format": fmt, **changes}
    with unchanged(tmp_path), pytest.raises(MetadataConflictError, match=field):
        zarrcore.create(str(path), **kwargs)


def test_group_and_array_do_not_replace_each_other(tmp_path: Path) -> None:
    array_path, group_path = tmp_path / "a.zarr", tmp_path / "g.zarr"
    make_array(array_path)
    zarrcore.create_group(str(group_path))
    with unchanged(tmp_path):
        with pytest.raises(MetadataConflictError, match="array already exists"):
            zarrcore.create_group(str(array_path))
        with pytest.raises(MetadataConflictError, match="group already exists"):
            zarrcore.create(str(group_path), shape=(1,), chunks=(1,), dtype="u1")
        with pytest.raises(MetadataError, match="is a group, not an array"):
            zarrcore.open_array(str(group_path))
        with pytest.raises(MetadataError, match="is an array, not a group"):
            zarrcore.open_group(str(array_path))


# -- read-only ---------------------------------------------------------------------------------------------

ARRAY_WRITES: dict[str, Callable[[zarrcore.Array], Any]] = {
    "setitem": lambda a: a.__setitem__((0, 0), 5.0),
    "setitem-fill": lambda a: a.__setitem__(..., 0.0),  # would delete every chunk
    "write_chunk": lambda a: a.write_chunk((0, 0), np.zeros((2, 2))),
    "write_chunk_bytes": lambda a: a.write_chunk_bytes((0, 0), b"x"),
    "delete_chunk": lambda a: a.delete_chunk((0, 0)),
    "resize": lambda a: a.resize(2, 2),
    "append": lambda a: a.append(np.zeros((1, 4))),
    "attrs-set": lambda a: a.attrs.__setitem__("x", 1),
    "attrs-del": lambda a: a.attrs.__delitem__("k"),
}
GROUP_WRITES: dict[str, Callable[[zarrcore.Group], Any]] = {
    "create_array": lambda g: g.create_array("x", shape=(1,), chunks=(1,), dtype="u1"),
    "create_group": lambda g: g.create_group("x"),
    "require_group": lambda g: g.require_group("x"),
    "attrs": lambda g: g.attrs.update(x=1),
    "consolidate": lambda g: g.consolidate(),
    "child-array": lambda g: g["a"].__setitem__(0, 1),
}


def _opened(kind: str, path: Path, group: bool) -> Any:
    """The node at ``path`` opened read-only: with ``mode="r"``, or ``"r+"`` on a read-only store."""
    target = str(path) if kind == "mode-r" else LocalStore(path, read_only=True)
    mode = "r" if kind == "mode-r" else "r+"
    return zarrcore.open_group(target, mode=mode) if group else zarrcore.open_array(target, mode=mode)


@pytest.mark.parametrize("kind", ["mode-r", "read-only-store"])
@pytest.mark.parametrize("write", list(ARRAY_WRITES))
@pytest.mark.parametrize("fmt", [2, 3], ids=["v2", "v3"])
def test_read_only_arrays_refuse_writes(fmt: int, write: str, kind: str, tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    make_array(path, fmt, attributes={"k": 1})
    a = _opened(kind, path, group=False)
    with unchanged(tmp_path), pytest.raises(ReadOnlyError, match="read-only"):
        ARRAY_WRITES[write](a)


@pytest.mark.parametrize("kind", ["mode-r", "read-only-store"])
@pytest.mark.parametrize("write", list(GROUP_WRITES))
def test_read_only_groups_refuse_writes(write: str, kind: str, tmp_path: Path) -> None:
    path = tmp_path / "g.zarr"
    zarrcore.create_group(str(path)).create_array("a", shape=(2,), chunks=(1,), dtype="u1")
    g = _opened(kind, path, group=True)
    with unchanged(tmp_path), pytest.raises(ReadOnlyError, match="read-only"):
        GROUP_WRITES[write](g)


def test_read_only_store_refuses_raw_writes(tmp_path: Path) -> None:
    LocalStore(tmp_path).put("k", b"v")
    store = LocalStore(tmp_path, read_only=True)
    with unchanged(tmp_path):
        for op in (lambda: store.put("k", b"w"), lambda: store.put("new", b"w", mode="create"),
                   lambda: store.delete("k"), lambda: store.delete_prefix("")):  # fmt: skip
            with pytest.raises(ReadOnlyError, match=r"'k'|'new'"):
                op()
