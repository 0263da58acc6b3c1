"""zarr-python's ``numcodecs.<id>`` v3 codecs (numcodecs.zarr3): what zarr-python writes with them
opens in zarrcore, what zarrcore writes with the same codec list opens in zarr-python, and codecs
that cannot work are refused by name before anything is written."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import zarrcore
from zarrcore.errors import CodecError

nz = pytest.importorskip("numcodecs.zarr3")

LE = {"name": "bytes", "configuration": {"endian": "little"}}
DELTA = {"name": "numcodecs.delta", "configuration": {"dtype": "<f4"}}
SHARDED = {"name": "sharding_indexed", "configuration": {"chunk_shape": [2, 2], "codecs": [LE]}}

CASES: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "delta+lz4": ("int32", lambda: {"filters": [nz.Delta(dtype="<i4")], "compressors": [nz.LZ4()]}),
    "bitround+zlib": ("float64", lambda: {"filters": [nz.BitRound(keepbits=10)], "compressors": [nz.Zlib(level=3)]}),
    "fixedscaleoffset-to-int16+shuffle+bz2": (
        "float64",
        lambda: {
            "filters": [nz.FixedScaleOffset(offset=10, scale=100, dtype="<f8", astype="<i2")],
            "compressors": [nz.Shuffle(elementsize=2), nz.BZ2()],
        },
    ),
    "quantize+crc32": (
        "float32",
        lambda: {"filters": [nz.Quantize(digits=3, dtype="<f4")], "compressors": [nz.CRC32()]},
    ),
    "astype-to-float32": (
        "float64",
        lambda: {"filters": [nz.AsType(encode_dtype="<f4", decode_dtype="<f8")], "compressors": None},
    ),
    "lzma": ("uint16", lambda: {"compressors": [nz.LZMA(preset=1)]}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_numcodecs_codecs_both_ways(tmp_path: Path, case: str) -> None:
    dtype, codecs = CASES[case]
    data = (np.random.default_rng(3).random((13, 7)) * 50).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numcodecs.zarr3 warns that its codecs' specs are not final
        theirs = zarr.create_array(str(tmp_path / "theirs"), shape=data.shape, chunks=(4, 3), dtype=dtype,
                                   fill_value=0, **codecs())  # fmt: skip
        theirs[...] = data
        expected = theirs[...]  # after any lossy codec (bitround, quantize, fixedscaleoffset, astype)
    spec = json.loads((tmp_path / "theirs" / "zarr.json").read_text())["codecs"]
    assert any(c["name"].startswith("numcodecs.") for c in spec)
    np.testing.assert_array_equal(zarrcore.open_array(tmp_path / "theirs")[...], expected)
    ours = zarrcore.create(tmp_path / "ours", shape=data.shape, chunks=(4, 3), dtype=dtype, fill_value=0, codecs=spec)
    ours[...] = data
    np.testing.assert_array_equal(ours[...], expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "ours"), mode="r")[...], expected)
    for key in ("c/0/0", "c/3/2"):  # the same codecs make the same bytes
        assert (tmp_path / "ours" / key).read_bytes() == (tmp_path / "theirs" / key).read_bytes()


@pytest.mark.parametrize(
    ("codecs", "match"),
    [
        ([{"name": "numcodecs.nosuch"}, LE], r"codecs\[0\] \('numcodecs.nosuch'\): only \["),
        ([LE, {"name": "numcodecs.nosuch"}], r"codecs\[1\] \('numcodecs.nosuch'\): cannot build codec"),
        ([{"name": "numcodecs.pcodec"}], r"codecs\[0\].*may come before the array->bytes codec"),
        ([LE, DELTA], r"must come before the 'bytes'"),
        ([DELTA, SHARDED], r"codecs\[1\].*put numcodecs array codecs inside the shard's own codecs"),
        ([{"name": "numcodecs.zlib", "configuration": {"level": 42}}, LE], r"codecs\[0\]"),
        ([LE, {"name": "numcodecs.zlib", "configuration": {"level": 42}}], r"codecs\[1\].*invalid configuration"),
    ],
)
def test_unusable_numcodecs_codecs_are_refused_before_any_write(tmp_path: Path, codecs: list[Any], match: str) -> None:
    with pytest.raises(CodecError, match=match):
        zarrcore.create(tmp_path / "a", shape=(8, 8), chunks=(4, 4), dtype="float32", codecs=codecs)
    assert not (tmp_path / "a").exists()
