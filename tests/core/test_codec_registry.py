"""The v3 codec registry and the chains it builds: each name has an adapter of the right kind, a
codec list is checked in one pass that names the failing codec, and a built pipeline is immutable."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

from zarrcore.codecs import CodecPipeline
from zarrcore.codecs.base import located
from zarrcore.codecs.registry import lookup
from zarrcore.errors import CodecError
from zarrcore.metadata.model import ArrayMetadata

LE = {"name": "bytes", "configuration": {"endian": "little"}}
ZSTD = {"name": "zstd", "configuration": {"level": 1}}
T = {"name": "transpose", "configuration": {"order": [1, 0]}}
DELTA = {"name": "numcodecs.delta", "configuration": {"dtype": "<f4"}}


def v3(codecs: list[dict[str, Any]], dtype: str = "float32") -> CodecPipeline:
    meta = ArrayMetadata(zarr_format=3, shape=(4, 6), chunks=(4, 6), dtype=np.dtype(dtype), fill_value=0,
                         codecs=tuple(codecs))  # fmt: skip
    return CodecPipeline(meta)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("transpose", "array->array"), ("numcodecs.delta", "array->array"), ("numcodecs.astype", "array->array"),
        ("bytes", "array->bytes"), ("vlen-utf8", "array->bytes"), ("sharding_indexed", "array->bytes"),
        ("blosc", "bytes->bytes"), ("zstd", "bytes->bytes"), ("gzip", "bytes->bytes"), ("crc32c", "bytes->bytes"),
        ("numcodecs.zlib", "bytes->bytes"), ("numcodecs.lzma", "bytes->bytes"),
    ],
)  # fmt: skip
def test_every_v3_codec_name_has_an_adapter_of_its_kind(name: str, kind: str) -> None:
    assert lookup(name).kind == kind


@pytest.mark.parametrize("name", ["nosuch", None, 3, "numcodec.zlib"])
def test_unknown_names_are_refused(name: Any) -> None:
    with pytest.raises(CodecError, match=r"^unknown codec "):
        lookup(name)


@pytest.mark.parametrize(
    ("codecs", "message"),
    [
        ([LE, {"name": "zstd", "configuration": {"level": 99}}],
         "codecs[1] ('zstd'): level must be an integer <= 22, got 99"),
        ([LE, {"name": "gzip", "configuration": {"x": 1}}], "codecs[1] ('gzip'): unknown configuration keys ['x']"),
        ([LE, {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                                                  "typesize": 0}}],
         "codecs[1] ('blosc'): typesize must be an integer >= 1, got 0"),
        ([T, LE, T], "codecs[2] ('transpose'): array->array codecs must come before the 'bytes' codec"),
        ([LE, {"name": "vlen-utf8"}], "codecs[1] ('vlen-utf8'): only one array->bytes codec is allowed"),
        ([ZSTD, LE], "codecs[0] ('zstd'): bytes->bytes codecs must come after the 'bytes' codec"),
        ([LE, {"name": "nosuch"}], "codecs[1] ('nosuch'): unknown codec 'nosuch'"),
        ([LE, {"name": "zstd", "configuration": [1]}], "codecs[1] ('zstd'): configuration must be an object"),
        ([T], "codecs: an array->bytes codec ('bytes' or 'sharding_indexed') is required"),
        ([{"name": "sharding_indexed", "configuration": {"chunk_shape": [2, 3], "codecs": [ZSTD]}}],
         "codecs[0] ('sharding_indexed'): codecs: codecs[0] ('zstd'): bytes->bytes codecs must come after the "
         "'bytes' codec"),
    ],
)  # fmt: skip
def test_a_bad_codec_list_names_the_codec(codecs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(CodecError) as info:
        v3(codecs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("filters", "compressor", "message"),
    [
        ([{"id": "nosuch"}], None, "filters[0]: cannot build codec {'id': 'nosuch'}"),
        (None, {"id": "gzip", "level": 11}, "compressor: invalid configuration"),
        (None, None, "filters: variable-length strings"),
    ],
)
def test_a_bad_v2_chain_names_the_filter_or_compressor(filters: Any, compressor: Any, message: str) -> None:
    dtype = np.dtype("O") if filters is None and compressor is None else np.dtype("<f4")
    meta = ArrayMetadata(zarr_format=2, shape=(4, 6), chunks=(4, 6), dtype=dtype, fill_value=None,
                         filters=tuple(filters) if filters else None, compressor=compressor)  # fmt: skip
    with pytest.raises(CodecError) as info:
        CodecPipeline(meta)
    assert str(info.value).startswith(message)


def test_located_prefixes_codec_errors_only() -> None:
    with pytest.raises(CodecError, match=r"^codecs\[4\] \('x'\): bad$"), located("codecs[4] ('x')"):
        raise CodecError("bad")
    with pytest.raises(ValueError, match=r"^other$"), located("codecs[4] ('x')"):
        raise ValueError("other")


def test_the_chain_keeps_its_stages_in_order() -> None:
    p = v3([T, DELTA, LE, ZSTD, {"name": "crc32c"}])
    assert [type(s).__name__ for s in p.array_stages] == ["Transpose", "ElementWise"]
    assert [c.codec_id for c in p.bytes_codecs] == ["zstd", "crc32c"]
    assert p.sharding is None and not p.light
    data = np.arange(24, dtype="float32").reshape(4, 6)
    np.testing.assert_array_equal(p.decode(p.encode(data)), data)


def test_a_built_pipeline_is_immutable() -> None:
    p = v3([LE])
    for name in ("light", "nbytes", "sharding", "something_new"):
        with pytest.raises(AttributeError):
            setattr(p, name, None)
    assert p.light and p.nbytes == 4 * 6 * 4


@pytest.mark.parametrize("codecs", [[LE], [T, DELTA, LE, ZSTD]], ids=["plain", "chain"])
def test_a_pipeline_pickles_and_copies(codecs: list[dict[str, Any]]) -> None:
    p = v3(codecs)
    data = np.arange(24, dtype="float32").reshape(4, 6)
    for other in (pickle.loads(pickle.dumps(p)), copy.copy(p), copy.deepcopy(p)):
        assert bytes(other.encode(data)) == bytes(p.encode(data))
        np.testing.assert_array_equal(other.decode(p.encode(data)), data)
