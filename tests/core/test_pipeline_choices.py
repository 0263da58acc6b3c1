"""What the codec pipeline decides once per array: which chunks are light enough to read on one
thread, that blosc runs without its own threads unless the user chose (set once at import, never by
building a pipeline), and that the short decode path gives what the general one gives."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numcodecs.blosc
import numpy as np
import pytest

import zarrcore
from zarrcore.codecs import CodecPipeline
from zarrcore.errors import ChunkError
from zarrcore.storage.memory import MemoryStore

RAW = [{"name": "bytes", "configuration": {"endian": "little"}}]
LZ4 = [*RAW, {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4}}]
ZSTD = [*RAW, {"name": "zstd", "configuration": {"level": 1, "checksum": False}}]


def pipeline(codecs: list[dict], chunks: tuple[int, ...] = (128, 128), fmt: int = 3) -> CodecPipeline:
    if fmt == 2:
        return zarrcore.create(MemoryStore(), shape=chunks, chunks=chunks, dtype="float32", zarr_format=2)._pipeline
    return zarrcore.create(MemoryStore(), shape=chunks, chunks=chunks, dtype="float32", codecs=codecs)._pipeline


@pytest.fixture
def blosc_threads() -> Iterator[None]:
    old = numcodecs.blosc.use_threads
    yield
    numcodecs.blosc.use_threads = old


def test_small_chunks_with_no_or_fast_codecs_are_light() -> None:
    assert pipeline(RAW).light and pipeline(LZ4).light
    assert not pipeline(ZSTD).light  # slow codec: spread over threads
    assert not pipeline(RAW, (1024, 1024)).light  # 4 MiB chunks: long copies, spread over threads
    assert not pipeline([], fmt=2).light  # v2 default: zstd


def test_building_a_pipeline_leaves_numcodecs_settings_alone(blosc_threads: None) -> None:
    for setting in (None, True, False):
        numcodecs.blosc.use_threads = setting
        pipeline(RAW), pipeline(LZ4), pipeline([], fmt=2)
        zarrcore.create(MemoryStore(), shape=(8, 8), chunks=(4, 4), dtype="float32", zarr_format=2,
                        compressor={"id": "blosc", "cname": "lz4"})  # fmt: skip
        assert numcodecs.blosc.use_threads is setting


@pytest.mark.parametrize(("before", "after"), [("", "False"), ("numcodecs.blosc.use_threads = True", "True")])
def test_blosc_runs_without_its_own_threads_unless_chosen_before_import(before: str, after: str) -> None:
    code = f"import numcodecs.blosc\n{before}\nimport zarrcore\nprint(numcodecs.blosc.use_threads)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == after


@pytest.mark.parametrize("codecs", [RAW, LZ4, ZSTD], ids=["raw", "blosc", "zstd"])
def test_reads_on_one_thread_or_many_give_the_same_data(codecs: list[dict]) -> None:
    data = np.random.default_rng(0).standard_normal((300, 260)).astype("float32")
    a = zarrcore.create(MemoryStore(), shape=data.shape, chunks=(64, 64), dtype="float32", codecs=codecs)
    a[...] = data
    assert np.array_equal(a[...], data)
    assert np.array_equal(a[17:250:3, 5:201], data[17:250:3, 5:201])
    assert np.array_equal(a[5], data[5])


@pytest.mark.parametrize("codecs", [RAW, LZ4, ZSTD], ids=["raw", "blosc", "zstd"])
def test_a_chunk_of_the_wrong_size_is_a_chunk_error(codecs: list[dict]) -> None:
    a = zarrcore.create(MemoryStore(), shape=(8, 8), chunks=(4, 4), dtype="float32", codecs=codecs)
    other = zarrcore.create(MemoryStore(), shape=(8, 8), chunks=(4, 2), dtype="float32", codecs=codecs)
    a.write_chunk_bytes((0, 0), other.encode_chunk((0, 0), np.ones((4, 2), "float32")))
    with pytest.raises(ChunkError, match="bytes"):
        a[...]
