"""Whole chunks whose place in the result is contiguous (chunks spanning the trailing dimensions, 1-D
arrays) are decoded by blosc and zstd straight into the result: no buffer of the chunk's size is
allocated per chunk. Everything else is decoded as before, and hostile frames are still refused."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numcodecs
import numpy as np
import pytest

import zarrcore
from zarrcore.errors import ChunkError
from zarrcore.storage.memory import MemoryStore

CHUNK = (4, 128, 256)  # 512 KiB of float32, spanning the two trailing dimensions
SHAPE = (32, 128, 256)  # 8 chunks, 4 MiB
V3 = {
    "zstd": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 1}}],
    "blosc": [{"name": "bytes", "configuration": {"endian": "little"}},
              {"name": "blosc", "configuration": {"cname": "lz4", "shuffle": "shuffle"}}],
}  # fmt: skip
V2 = {"zstd": {"id": "zstd", "level": 1}, "blosc": {"id": "blosc", "cname": "lz4", "shuffle": 1}}
LAYOUTS = [(3, "zstd"), (3, "blosc"), (2, "zstd"), (2, "blosc")]


def values(shape: tuple[int, ...]) -> np.ndarray:
    """Compressible, non-fill values: stored chunks stay far smaller than decoded ones."""
    return (np.arange(int(np.prod(shape)), dtype=np.float32) % 7 + 1).reshape(shape)


def create(fmt: int, codec: str, shape: tuple[int, ...] = SHAPE, chunks: tuple[int, ...] = CHUNK, **kw: Any):
    coding = {"codecs": V3[codec]} if fmt == 3 else {"compressor": V2[codec]}
    return zarrcore.create(MemoryStore(), shape=shape, chunks=chunks, dtype="float32", zarr_format=fmt,
                           **coding, **kw)  # fmt: skip


def extra_peak(read: Any) -> tuple[int, Any]:
    """The most bytes allocated beyond the result while ``read()`` runs (numpy and Python buffers)."""
    tracemalloc.start()
    try:
        result = read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - result.nbytes, result


@pytest.mark.parametrize(("fmt", "codec"), LAYOUTS)
def test_whole_chunks_are_decoded_into_the_result(fmt: int, codec: str) -> None:
    a = create(fmt, codec)
    data = values(SHAPE)
    a[...] = data
    assert a._pipeline.decodes_into
    chunk_bytes = int(np.prod(CHUNK)) * 4
    extra, got = extra_peak(lambda: a[...])
    np.testing.assert_array_equal(got, data)
    assert extra < chunk_bytes // 2, f"{extra} bytes beyond the result: a chunk buffer was allocated"
    # positive control: cutting each chunk (half of its last axis) decodes whole chunks, then copies
    extra, got = extra_peak(lambda: a[:, :, :128])
    np.testing.assert_array_equal(got, data[:, :, :128])
    assert extra >= chunk_bytes


@pytest.mark.parametrize(("fmt", "codec"), LAYOUTS)
def test_any_selection_reads_what_was_written(fmt: int, codec: str) -> None:
    shape = (30, 100, 256)  # edge chunks along the first two axes
    a = create(fmt, codec, shape=shape, chunks=(4, 100, 256))
    data = values(shape)
    a[...] = data
    for sel in [np.s_[...], np.s_[4:12], np.s_[3:13], np.s_[28:], np.s_[5], np.s_[::2], np.s_[4:8, :, 1:]]:
        np.testing.assert_array_equal(a[sel], data[sel])
    a[0:4] = 0  # a fill-value chunk is not stored and reads as the fill value
    np.testing.assert_array_equal(a[0:8], np.concatenate([np.zeros((4, 100, 256), np.float32), data[4:8]]))
    one = create(fmt, codec, shape=(1000,), chunks=(64,))
    one[...] = values((1000,))
    np.testing.assert_array_equal(one[...], values((1000,)))
    np.testing.assert_array_equal(one[64:640], values((1000,))[64:640])


def test_only_plain_chains_of_one_blosc_or_zstd_codec_decode_into() -> None:
    zstd = {"name": "zstd", "configuration": {"level": 1}}
    plain = [{"name": "bytes", "configuration": {"endian": "little"}}]
    big = [{"name": "bytes", "configuration": {"endian": "big"}}]
    transpose = [{"name": "transpose", "configuration": {"order": [1, 0]}}]
    refused = {
        "no codec": plain,
        "gzip": [*plain, {"name": "gzip", "configuration": {"level": 1}}],
        "zstd then crc32c": [*plain, zstd, {"name": "crc32c"}],
        "big-endian bytes": [*big, zstd],
        "transpose": [*transpose, *plain, zstd],
    }
    for codecs in refused.values():
        a = zarrcore.create(MemoryStore(), shape=(8, 8), chunks=(4, 8), dtype="float32", codecs=codecs)
        assert not a._pipeline.decodes_into, codecs
    assert zarrcore.create(MemoryStore(), shape=(8, 8), chunks=(4, 8), dtype="float32",
                           codecs=[*plain, zstd])._pipeline.decodes_into  # fmt: skip
    for kw in [{"order": "F"}, {"filters": [{"id": "delta", "dtype": "<f4"}]}]:
        a = zarrcore.create(MemoryStore(), shape=(8, 8), chunks=(4, 8), dtype="float32", zarr_format=2,
                            compressor=V2["zstd"], **kw)  # fmt: skip
        assert not a._pipeline.decodes_into, kw


def zstd_stating(size: int, payload: bytes) -> bytes:
    """A single-segment zstd frame of one raw block holding ``payload``, stating ``size``."""
    header = (0xFD2FB528).to_bytes(4, "little") + bytes([0xE0]) + size.to_bytes(8, "little")
    block = (1 | (0 << 1) | (len(payload) << 3)).to_bytes(3, "little")
    return header + block + payload


def hostile(nbytes: int) -> dict[str, tuple[str, bytes]]:
    raw = bytes(values((nbytes // 4,)).tobytes())
    lz4 = bytearray(numcodecs.Blosc("lz4").encode(raw))
    lz4_short = bytearray(lz4)
    lz4_short[4:8] = (nbytes - 4).to_bytes(4, "little")  # states fewer bytes than a chunk holds
    lz4_long = bytearray(lz4)
    lz4_long[4:8] = (nbytes + 4).to_bytes(4, "little")
    corrupt = bytearray(numcodecs.Zstd(1).encode(raw))
    corrupt[len(corrupt) // 2 :] = bytes(len(corrupt) - len(corrupt) // 2)
    return {
        "zstd stating less": ("zstd", zstd_stating(nbytes - 4, raw[:-4])),
        "zstd stating more": ("zstd", zstd_stating(nbytes + 4, raw + bytes(4))),
        "zstd stating the size, holding less": ("zstd", zstd_stating(nbytes, raw[:-4])),
        "zstd with a corrupt body": ("zstd", bytes(corrupt)),
        "blosc stating less": ("blosc", bytes(lz4_short)),
        "blosc stating more": ("blosc", bytes(lz4_long)),
        "blosc cut short": ("blosc", bytes(lz4[: len(lz4) // 2])),
    }


@pytest.mark.parametrize("kind", list(hostile(64)))
@pytest.mark.parametrize("fmt", [2, 3])
def test_frames_that_are_not_the_chunk_are_refused(kind: str, fmt: int) -> None:
    shape = (8, 16)
    codec, stored = hostile(int(np.prod(shape)) * 4)[kind]
    a = create(fmt, codec, shape=(16, 16), chunks=shape)
    a[...] = values((16, 16))
    a.write_chunk_bytes((1, 0), stored)
    with pytest.raises(ChunkError) as caught:
        a[...]
    assert caught.value.index == (1, 0)
    np.testing.assert_array_equal(a[0:8], values((16, 16))[0:8])  # the chunk beside it still reads
