"""Hostile metadata, prefixes and symlinks: every refusal is a typed ZarrcoreError; v2 documents
other writers make are read as zarr-python 3 reads them."""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import pytest

import zarrcore
from tests.fixtures.peak import peak_growth
from zarrcore.errors import InvalidKey, ZarrcoreError
from zarrcore.storage import LocalStore, MemoryStore

BYTES = {"name": "bytes", "configuration": {"endian": "little"}}


def v3(**over: Any) -> dict[str, Any]:
    doc = {"zarr_format": 3, "node_type": "array", "shape": [4, 4], "data_type": "float32",
           "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 2]}},
           "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
           "fill_value": 0, "codecs": [BYTES], "attributes": {}}  # fmt: skip
    return {**doc, **over}


def v2(**over: Any) -> dict[str, Any]:
    doc = {"zarr_format": 2, "shape": [4, 4], "chunks": [2, 2], "dtype": "<f4", "compressor": None,
           "fill_value": 0, "order": "C", "filters": None}  # fmt: skip
    return {**doc, **over}


def _shard(shard: int, inner: int) -> dict[str, Any]:
    config = {"chunk_shape": [inner, inner], "codecs": [BYTES], "index_codecs": [BYTES, {"name": "crc32c"}]}
    return v3(shape=[shard, shard], chunk_grid={"name": "regular", "configuration": {"chunk_shape": [shard, shard]}},
              codecs=[{"name": "sharding_indexed", "configuration": config}])  # fmt: skip


HOSTILE = {
    "deep": ("zarr.json", b'{"zarr_format": 3, "attributes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "huge_int": ("zarr.json", json.dumps(v3()).replace('"fill_value": 0', '"fill_value": ' + "9" * 5000).encode()),
    "chunk_1e30": ("zarr.json", json.dumps(v3(chunk_grid={"name": "regular",
                                                          "configuration": {"chunk_shape": [10**30, 2]}})).encode()),
    "codec_name_object": ("zarr.json", json.dumps(v3(codecs=[{"name": {"a": 1}}])).encode()),
    "transpose_nested": ("zarr.json", json.dumps(v3(codecs=[{"name": "transpose", "configuration": {"order": [[1], 0]}},
                                                            BYTES])).encode()),
    "utf32_2_40": ("zarr.json", json.dumps(v3(fill_value="", data_type={
        "name": "fixed_length_utf32", "configuration": {"length_bytes": 2**40}})).encode()),
    "dtype_name_list": ("zarr.json", json.dumps(v3(data_type={"name": [1, 2]})).encode()),
    "shard_ratio": ("zarr.json", json.dumps(_shard(2**20, 1)).encode()),
    "v2_chunk_1e30": (".zarray", json.dumps(v2(chunks=[10**30, 2])).encode()),
    "v2_deep": (".zarray", b'{"zarr_format": 2, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("entry", ["open", "open_group", "consolidated"])
def test_hostile_metadata_raises_typed_errors(case: str, entry: str) -> None:
    key, data = HOSTILE[case]
    store = MemoryStore()
    if entry == "consolidated":  # the hostile text itself as the member's entry (deep nesting included)
        root = {
            "zarr_format": 3,
            "node_type": "group",
            "attributes": {},
            "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": {"a": "DOC"}},
        }
        if key == ".zarray":
            store.put(".zgroup", b'{"zarr_format": 2}')
            zmeta = {"metadata": {"a/.zarray": "DOC"}, "zarr_consolidated_format": 1}
            store.put(".zmetadata", json.dumps(zmeta).encode().replace(b'"DOC"', data))
        else:
            store.put("zarr.json", json.dumps(root).encode().replace(b'"DOC"', data))
        with pytest.raises(ZarrcoreError):
            group = zarrcore.open_group(store)
            group["a"]
        return
    store.put(key, data)
    with pytest.raises(ZarrcoreError):
        zarrcore.open(store) if entry == "open" else zarrcore.open_group(store)


def test_a_shard_index_is_not_allocated_at_open() -> None:
    """2**26 inner chunks per shard: a 1 GiB index, of which nothing is made before a shard is read."""
    setup = f"""
import zarrcore
from zarrcore.storage import MemoryStore
store = MemoryStore()
store.put("zarr.json", {json.dumps(_shard(2**13, 1)).encode()!r})
"""
    seen = peak_growth(setup, "result = zarrcore.open(store).shards")
    assert seen["result"] == [2**13, 2**13]
    assert seen["grew"] < 32 << 20


@pytest.mark.parametrize("prefix", ["../outside/", "a/../../x", "/abs", "a\x00b", "a\\b", "a//b"])
@pytest.mark.parametrize("kind", ["local", "memory", "s3", "gcs", "azure"])
def test_every_listing_validates_its_prefix(
    tmp_path: Any, prefix: str, kind: str, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"x")
    stores = {"local": lambda: LocalStore(tmp_path / "root"), "memory": MemoryStore}
    store = stores[kind]() if kind in stores else request.getfixturevalue(f"{kind}_store")
    store.put("a/b", b"1")
    with pytest.raises(InvalidKey):
        store.list(prefix)
    if prefix.startswith("/"):
        return  # folder-like prefixes are given with or without their slashes
    with pytest.raises(InvalidKey):
        store.list_dir(prefix)
    with pytest.raises(InvalidKey):
        store.delete_prefix(prefix)


def test_symlinks_leading_outside_a_local_store_are_refused(tmp_path: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    store = LocalStore(tmp_path / "root")
    store.put("a/inside", b"1")
    os.symlink(outside, tmp_path / "root" / "out_dir")
    os.symlink(outside / "secret", tmp_path / "root" / "a" / "out_file")
    os.symlink(tmp_path / "root" / "a" / "inside", tmp_path / "root" / "a" / "in_file")
    for key in ("out_dir/secret", "a/out_file"):
        with pytest.raises(InvalidKey):
            store.get(key)
        with pytest.raises(InvalidKey):
            store.size(key)
    with pytest.raises(InvalidKey):
        store.put("out_dir/new", b"x")
    assert not (outside / "new").exists()
    assert store.get("a/in_file") == b"1"  # a link that stays inside is followed
    assert sorted(store.list("")) == ["a/in_file", "a/inside"]
    assert store.list_dir("") == ([], ["a"])


def test_v2_extra_keys_and_string_fill_zero_read_as_zarr_python_does(tmp_path: Any) -> None:
    zarr = pytest.importorskip("zarr")
    (tmp_path / ".zarray").write_text(json.dumps(
        {"chunks": [2], "compressor": None, "dtype": "|O", "fill_value": 0, "filters": [{"id": "vlen-utf8"}],
         "order": "C", "shape": [4], "zarr_format": 2, "node_type": "array"}))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = zarr.open_array(str(tmp_path), mode="r")
        with pytest.warns(UserWarning, match="node_type"):
            ours = zarrcore.open(str(tmp_path))
    assert ours.fill_value == theirs.fill_value == "0"
    assert list(ours[:]) == list(theirs[:])
