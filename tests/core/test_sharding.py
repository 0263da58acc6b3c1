"""Sharded arrays (``sharding_indexed``): what we write opens in zarr-python and the other way round,
small reads fetch only the index and the inner chunks they touch, and bad configurations or damaged
shards fail clearly without losing anything."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zarrcore
from tests.fixtures.instrumented import InstrumentedStore
from zarrcore import shards, telemetry
from zarrcore.codecs.sharding import EMPTY, ShardingCodec
from zarrcore.errors import ChunkError, CodecError, MetadataError
from zarrcore.storage import LocalStore
from zarrcore.storage.base import RangeRequest, SuffixRequest

zarr = pytest.importorskip("zarr")

BYTES = {"name": "bytes", "configuration": {"endian": "little"}}
BIG_ENDIAN = {"name": "bytes", "configuration": {"endian": "big"}}
BLOSC = {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 8,
                                           "blocksize": 0}}  # fmt: skip
ZSTD = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
TWO_LEVELS = {"name": "sharding_indexed", "configuration": {"chunk_shape": [2, 2], "codecs": [BYTES]}}


def sample(shape: tuple[int, ...], dtype: str = "float32", seed: int = 0) -> np.ndarray:
    """Values with some regions left at the fill value 0, so some inner chunks are empty."""
    data = np.random.default_rng(seed).integers(1, 1000, size=shape).astype(dtype)
    data[: shape[0] // 3] = 0
    return data


def shard_of(array: zarrcore.Array, index: tuple[int, ...]) -> bytes:
    data = array.read_chunk_bytes(index)
    assert data is not None
    return data


def stored_index(array: zarrcore.Array, index: tuple[int, ...]) -> np.ndarray:
    """The decoded index of a stored shard: ``(offset, nbytes)`` per inner chunk."""
    sharding = array._pipeline.sharding
    assert sharding is not None
    shard = memoryview(shard_of(array, index))
    return sharding.decode_index(sharding.index_bytes(shard), len(shard))


# ----------------------------------------------------------------------------------- round trips


def test_shards_hold_inner_chunks_and_read_back(tmp_path: Path) -> None:
    data = sample((100, 90))
    a = zarrcore.create(tmp_path / "a.zarr", shape=data.shape, chunks=(10, 15), shards=(40, 30), dtype="float32",
                        fill_value=0)  # fmt: skip
    assert a.shards == (40, 30) and a.chunks == (10, 15) and a.grid_shape == (3, 3)
    assert repr(a).endswith("chunks=(10, 15) shards=(40, 30)>") and "Shard shape          : (40, 30)" in a.info
    a[...] = data
    np.testing.assert_array_equal(a[...], data)
    # The first shard row holds only zeros except its last 7 rows: its upper inner chunks are not stored.
    index = stored_index(a, (0, 0))
    assert [bool(row[0] == EMPTY) for row in index[::2]] == [True, True, True, False]
    assert a.nshards_initialized == 9  # one object per shard
    codec = a.metadata.codecs[0]
    assert codec["name"] == "sharding_indexed" and codec["configuration"]["chunk_shape"] == [10, 15]
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    assert z.shards == (40, 30) and z.chunks == (10, 15)
    np.testing.assert_array_equal(z[...], data)


def test_a_shard_of_only_the_fill_value_is_not_stored(tmp_path: Path) -> None:
    a = zarrcore.create(tmp_path, shape=(20, 20), chunks=(5, 5), shards=(10, 10), dtype="int16", fill_value=-1)
    a[...] = -1
    a[12, 3] = 7
    assert a.nshards_initialized == 1
    index = stored_index(a, (1, 0))
    assert (index[:, 0] != EMPTY).sum() == 1  # the one inner chunk holding the 7
    a[12, 3] = -1
    assert a.nshards_initialized == 0
    assert (a[...] == -1).all()


@pytest.mark.parametrize(
    "inner_codecs",
    [
        pytest.param([BYTES], id="raw"),
        pytest.param([BYTES, {"name": "zstd", "configuration": {"level": 1}}], id="zstd"),
        pytest.param([BYTES, BLOSC], id="blosc"),
        pytest.param([BIG_ENDIAN, {"name": "gzip", "configuration": {"level": 3}}, {"name": "crc32c"}],
                     id="big-endian-gzip-crc32c"),
        pytest.param([{"name": "transpose", "configuration": {"order": [1, 0]}}, BYTES], id="transposed"),
        pytest.param([{"name": "sharding_indexed", "configuration": {"chunk_shape": [5, 2], "codecs": [BYTES]}}],
                     id="nested"),
    ],
)
@pytest.mark.parametrize("location", ["end", "start"])
def test_zarr_python_reads_every_layout_we_write(tmp_path: Path, inner_codecs: list[dict[str, Any]],
                                                 location: str) -> None:  # fmt: skip
    data = sample((30, 44), "float64")
    config = {"chunk_shape": [5, 4], "codecs": inner_codecs, "index_location": location}
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(10, 8), dtype="float64", fill_value=0,
                        codecs=[{"name": "sharding_indexed", "configuration": config}])  # fmt: skip
    a[...] = data
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path), mode="r")[...], data)
    np.testing.assert_array_equal(a[3:27:2, 5], data[3:27:2, 5])  # partial reads of each shard


@pytest.mark.parametrize("location", ["end", "start"])
@pytest.mark.parametrize("order", ["morton", "lexicographic"])
def test_we_read_what_zarr_python_writes(tmp_path: Path, location: str, order: str) -> None:
    from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec

    data = sample((64, 50), "int32")
    codec = ShardingCodec(chunk_shape=(8, 5), codecs=[BytesCodec(), BloscCodec(cname="zstd", clevel=3)],
                          index_location=location, subchunk_write_order=order)  # fmt: skip
    z = zarr.create_array(str(tmp_path), shape=data.shape, chunks=(32, 25), dtype="int32", fill_value=0,
                          serializer=codec, compressors=None)  # fmt: skip
    z[...] = data
    a = zarrcore.open_array(tmp_path)
    assert a.shards == (32, 25) and a.chunks == (8, 5)
    np.testing.assert_array_equal(a[...], data)
    rng = np.random.default_rng(1)
    for _ in range(100):  # whole shards, parts of shards, strides and single elements
        sel = []
        for n in data.shape:
            lo = int(rng.integers(0, n))
            hi = int(rng.integers(lo, n + 1))
            sel.append(slice(lo, hi, int(rng.integers(1, 4))) if rng.random() < 0.8 else lo)
        np.testing.assert_array_equal(a[tuple(sel)], data[tuple(sel)])
    # A write to part of a shard keeps the rest of it, and zarr-python reads the result.
    a = zarrcore.open_array(tmp_path, mode="r+")
    a[40:42, 3:30] = -5
    data[40:42, 3:30] = -5
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path), mode="r")[...], data)


V3_DTYPES = ["bool", "int8", "uint16", "int32", "uint64", "float16", "float32", "float64", "complex64", "complex128"]


@pytest.mark.parametrize("dtype", V3_DTYPES)
def test_every_dtype_both_ways(tmp_path: Path, dtype: str) -> None:
    """Edge shards cut by the array's bounds; NaN as the fill value for floats."""
    rng = np.random.default_rng(5)
    data = (rng.random((13, 11)) * 100).astype(dtype)
    fill = np.nan if np.dtype(dtype).kind in "fc" else 0
    data[:4] = fill  # the first inner chunks hold only the fill value
    ours = zarrcore.create(tmp_path / "ours", shape=data.shape, chunks=(2, 3), shards=(4, 6), dtype=dtype,
                           fill_value=fill)  # fmt: skip
    ours[...] = data
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "ours"), mode="r")[...], data)
    theirs = zarr.create_array(str(tmp_path / "theirs"), shape=data.shape, chunks=(2, 3), shards=(4, 6),
                               dtype=dtype, fill_value=fill)  # fmt: skip
    theirs[...] = data
    np.testing.assert_array_equal(zarrcore.open_array(tmp_path / "theirs")[...], data)
    np.testing.assert_array_equal(zarrcore.open_array(tmp_path / "theirs")[5, 1:10:3], data[5, 1:10:3])


def test_f_order_and_a_group_child_and_streams(tmp_path: Path) -> None:
    data = sample((24, 36), "uint16")
    g = zarrcore.create_group(tmp_path / "g.zarr")
    a = g.create_array("x", shape=data.shape, chunks=(6, 6), shards=(12, 18), dtype="uint16", order="F")
    summary = a.write_stream(((i, data[a.chunk_region(i)]) for i in a.chunk_indices()), concurrency=2)
    assert summary.written == a.nshards == 4
    out = np.zeros_like(data)
    for index, chunk in a.stream_chunks(concurrency=2):
        out[a.chunk_region(index)] = chunk
    np.testing.assert_array_equal(out, data)
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "g.zarr"), mode="r")["x"][...], data)


@pytest.mark.parametrize("view", ["transposed", "strided", "3-d slab"])
def test_shards_written_from_views_store_the_bytes_of_a_contiguous_copy(tmp_path: Path, view: str) -> None:
    """A whole-shard write takes the caller's array as it is (no copy in C order first): any strides
    give the same stored shards as a contiguous copy, which zarr-python reads."""
    base = sample((48, 72, 3), "int32")
    data = {"transposed": base[:, :, 0].T, "strided": base[::2, ::3, 1], "3-d slab": base[:, :36, :]}[view]
    assert not data.flags.c_contiguous
    chunks = (6, 4, 3)[: data.ndim]
    shards = tuple(c * m for c, m in zip(chunks, (2, 3, 1), strict=False))
    arrays = {}
    for name, values in (("views", data), ("copies", np.ascontiguousarray(data))):
        a = zarrcore.create(tmp_path / f"{name}.zarr", shape=data.shape, chunks=chunks, shards=shards, dtype="int32",
                            codecs=[BYTES, ZSTD])  # fmt: skip
        a[...] = values
        arrays[name] = a
    stored = {i: arrays["copies"].read_chunk_bytes(i) for i in arrays["copies"].chunk_indices()}
    assert sum(v is not None for v in stored.values()) > 1
    assert all(arrays["views"].read_chunk_bytes(i) == v for i, v in stored.items())
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "views.zarr"), mode="r")[...], data)


def test_a_whole_shard_decodes_into_its_place_in_a_larger_array(tmp_path: Path) -> None:
    """A shard decodes straight into a strided place (empty inner chunks there become the fill value);
    the array's reads take that path for whole shards, and the edge shards still read right."""
    data = sample((50, 47), "int16")
    a = zarrcore.create(tmp_path / "a.zarr", shape=data.shape, chunks=(5, 4), shards=(20, 12), dtype="int16",
                        fill_value=0)  # fmt: skip
    a[...] = data
    sharding = a._pipeline.sharding
    assert sharding is not None and a._pipeline.takes(np.empty((40, 36), "int16")[::2, ::3])
    for index in [(0, 0), (1, 2)]:  # a shard with empty inner chunks, one with none
        stored = shard_of(a, index)
        big = np.full((60, 60), -1, dtype="int16")
        place = big[5:45:2, 10:46:3]
        sharding.decode_into(stored, place)
        np.testing.assert_array_equal(place, sharding.decode(stored))
        assert (big[5:45:2, 10:46:3] == place).all() and (big[:5] == -1).all() and (big[5:45:2, :10] == -1).all()
    np.testing.assert_array_equal(a[...], data)
    np.testing.assert_array_equal(a[3:50, 1:47], data[3:50, 1:47])


def test_resize_and_append_work_shard_by_shard(tmp_path: Path) -> None:
    data = np.arange(900, dtype="int32").reshape(30, 30)
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(5, 5), shards=(10, 10), dtype="int32", fill_value=-1)
    a[...] = data
    a.resize(17, 23)  # cuts shards: what lies outside is cleared, whole shards outside are deleted
    a.resize(30, 30)
    expected = np.full((30, 30), -1, dtype="int32")
    expected[:17, :23] = data[:17, :23]
    np.testing.assert_array_equal(a[...], expected)
    a.append(np.zeros((5, 30), dtype="int32"))
    expected = np.concatenate([expected, np.zeros((5, 30), dtype="int32")])
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path), mode="r")[...], expected)


# ---------------------------------------------------------------------------------- partial writes


def inner_bytes(array: zarrcore.Array, index: tuple[int, ...]) -> list[bytes | None]:
    """Each inner chunk's stored bytes in a shard (None: not stored)."""
    shard = shard_of(array, index)
    return [None if off == EMPTY else shard[int(off) : int(off) + int(n)] for off, n in stored_index(array, index)]


@pytest.mark.parametrize("location", ["end", "start"])
def test_random_partial_writes_match_numpy_and_zarr_python(tmp_path: Path, location: str) -> None:
    rng = np.random.default_rng(8)
    config = {"chunk_shape": [4, 5], "codecs": [BYTES, {"name": "zstd", "configuration": {"level": 1}}],
              "index_location": location}  # fmt: skip
    a = zarrcore.create(tmp_path, shape=(37, 41), chunks=(16, 20), dtype="int32", fill_value=0,
                        codecs=[{"name": "sharding_indexed", "configuration": config}])  # fmt: skip
    mirror = np.zeros((37, 41), dtype="int32")
    for step in range(150):
        sel = []
        for n in mirror.shape:
            lo = int(rng.integers(0, n))
            hi = int(rng.integers(lo + 1, n + 1))
            sel.append(slice(lo, hi, int(rng.integers(1, 4))) if rng.random() < 0.8 else lo)
        value = 0 if step % 7 == 0 else rng.integers(1, 100, size=mirror[tuple(sel)].shape)  # zeros empty chunks
        a[tuple(sel)] = value
        mirror[tuple(sel)] = value
    np.testing.assert_array_equal(a[...], mirror)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path), mode="r")[...], mirror)
    a[...] = 0
    assert a.nshards_initialized == 0


def test_a_partial_write_re_encodes_only_the_inner_chunks_it_touches(tmp_path: Path) -> None:
    data = sample((40, 40), seed=9) + 1
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(10, 10), shards=(40, 40), dtype="float32")
    a[...] = data
    before = inner_bytes(a, (0, 0))
    a[12:15, 21] = -1  # inside inner chunk (1, 2), row-major number 6
    after = inner_bytes(a, (0, 0))
    assert [n for n in range(16) if before[n] != after[n]] == [6]
    data[12:15, 21] = -1
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path), mode="r")[...], data)
    a[10:20, 20:30] = 0  # that inner chunk now holds only the fill value: no longer stored
    assert inner_bytes(a, (0, 0))[6] is None and inner_bytes(a, (0, 0))[5] == before[5]
    # Untouched inner chunks are not even decoded: a damaged one stays as it was (and still fails to read).
    path = tmp_path / a.chunk_key((0, 0))
    shard = bytearray(path.read_bytes())
    offset = int(stored_index(a, (0, 0))[0, 0])
    shard[offset : offset + 8] = b"garbage!"
    path.write_bytes(bytes(shard))
    damaged_first = inner_bytes(a, (0, 0))[0]
    a[35, 35] = 7
    assert inner_bytes(a, (0, 0))[0] == damaged_first
    with pytest.raises(ChunkError, match="inner chunk"):
        a[0, 0]


def test_a_partial_write_into_a_damaged_shard_fails_and_changes_nothing(tmp_path: Path) -> None:
    a, _ = damaged(tmp_path)
    path = tmp_path / a.chunk_key((0, 1))
    path.write_bytes(path.read_bytes()[:-3])
    broken = path.read_bytes()
    with pytest.raises(ChunkError, match="shard index") as info:
        a[2, 20] = 5
    assert info.value.index == (0, 1)
    assert path.read_bytes() == broken


# ---------------------------------------------------------------------------------- partial reads


def test_random_small_reads_match_numpy_with_and_without_kept_indexes(tmp_path: Path) -> None:
    """Small reads (boxes decoded straight into the result, steps, integer indices) give numpy's values,
    over empty inner chunks too, on a cold array and again with its shard indexes kept."""
    data = sample((96, 90), "float64", seed=5)
    data[40:52, 30:45] = 0  # whole empty inner chunks inside stored shards
    a = zarrcore.create(tmp_path / "a.zarr", shape=data.shape, chunks=(6, 5), shards=(24, 30), dtype="float64",
                        fill_value=0)  # fmt: skip
    a[...] = data
    rng = np.random.default_rng(11)
    selections: list[Any] = []
    for _ in range(60):
        y0, x0 = int(rng.integers(0, 90)), int(rng.integers(0, 85))
        y1, x1 = y0 + int(rng.integers(1, 7)), x0 + int(rng.integers(1, 6))
        selections += [(slice(y0, y1), slice(x0, x1)), (y0, slice(x0, x1)), (slice(y0, y1, 2), slice(x0, x1))]
    for opened in (zarrcore.open_array(tmp_path / "a.zarr"), a):  # cold, then the writer's kept indexes
        for sel in selections:
            np.testing.assert_array_equal(opened[sel], data[sel], err_msg=str(sel))


def test_small_reads_from_many_threads_at_once_each_get_their_own_values(tmp_path: Path) -> None:
    """Each thread reads a shard's ranges into a buffer of its own, used again by its next read:
    reads from four threads at once (each also using the pool's threads) never see another's bytes."""
    data = sample((240, 240), "float32", seed=8)
    a = zarrcore.create(tmp_path / "a.zarr", shape=data.shape, chunks=(12, 12), shards=(60, 60), dtype="float32")
    a[...] = data
    rng = np.random.default_rng(3)
    corners = [(int(y), int(x)) for y, x in rng.integers(0, 210, size=(200, 2))]
    windows = [(slice(y, y + 30), slice(x, x + 25)) for y, x in corners]

    def reads(part: list[Any]) -> list[np.ndarray]:
        return [a[w] for w in part]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(reads, [windows[n::4] for n in range(4)]))
    for n, answer in enumerate(answers):
        for w, got in zip(windows[n::4], answer, strict=True):
            np.testing.assert_array_equal(got, data[w], err_msg=str(w))


def test_a_thread_keeps_a_read_buffer_only_up_to_its_bound() -> None:
    first = shards._scratch(1000)
    assert np.shares_memory(np.frombuffer(shards._scratch(500), np.uint8), np.frombuffer(first, np.uint8))
    big = shards._scratch(shards.SCRATCH_MAX + 1)  # a read this large gets a buffer of its own, not kept
    assert not np.shares_memory(np.frombuffer(shards._scratch(1000), np.uint8), np.frombuffer(big, np.uint8))
    assert np.shares_memory(np.frombuffer(shards._scratch(1000), np.uint8), np.frombuffer(first, np.uint8))


def test_small_reads_fetch_the_index_and_only_the_inner_chunks_they_touch(tmp_path: Path) -> None:
    data = sample((100, 100), seed=2)
    data[:] += 1  # no empty inner chunks
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(10, 10), shards=(50, 50), dtype="float32",
                        codecs=[BYTES])  # fmt: skip
    a[...] = data
    counted = InstrumentedStore(LocalStore(tmp_path))
    b = zarrcore.open_array(counted)
    key = b.chunk_key((0, 1))
    shard_size = len(shard_of(b, (0, 1)))
    inner = 10 * 10 * 4

    def gets_of(selection: Any) -> list[tuple[Any, int]]:
        counted.gets.clear()
        np.testing.assert_array_equal(b[selection], data[selection])
        return [(r, n) for k, r, n in counted.gets if k == key]

    # One element: the index (a suffix), then one inner chunk.
    one = gets_of((3, 57))
    assert [type(r) for r, _ in one] == [SuffixRequest, RangeRequest]
    assert one[0][1] == 25 * 16 + 4 and one[1][1] == inner
    # The index is kept: later reads of that shard need only their ranges (pinned to its version).
    # A row across the shard: five inner chunks side by side in the file, fetched as one range.
    assert gets_of((slice(3, 4), slice(50, 100))) == [(RangeRequest(0, 5 * inner), 5 * inner)]
    # A column: five inner chunks 4 chunks apart (1.6 KB gaps, under the 1 MiB gap): one range too.
    assert len(gets_of((slice(0, 50), 73))) == 1
    # More than half the shard: the whole object in one request.
    whole = gets_of((slice(0, 40), slice(50, 100)))
    assert whole == [(None, shard_size)]
    # Across shards: each shard is read on its own terms (three indexes not seen yet).
    counted.gets.clear()
    np.testing.assert_array_equal(b[45:55, 45:55], data[45:55, 45:55])
    assert len({k for k, _, _ in counted.gets}) == 4 and len(counted.gets) == 7


def test_a_window_across_shards_is_one_span_per_shard_and_sees_each_shards_own_state(tmp_path: Path) -> None:
    """A small read across four shards on local disk fetches each shard's parts in turn and decodes them
    together; each shard is still read on its own terms: one telemetry span each, with its own bytes and
    requests; a missing shard reads as the fill value, a shard replaced since its index was kept is read
    again, and a damaged one is read whole and named."""
    data = sample((80, 80), seed=21) + 1
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(10, 10), shards=(40, 40), dtype="float32",
                        codecs=[BYTES], fill_value=-1)  # fmt: skip
    a[...] = data
    a.write_chunk_bytes((1, 1), None)
    expected = data.copy()
    expected[40:, 40:] = -1
    counted = InstrumentedStore(LocalStore(tmp_path))
    b = zarrcore.open_array(counted)
    window = (slice(35, 45), slice(32, 48))  # 5 x 8 of each shard: one inner chunk of each
    stops: list[tuple[dict[str, Any], dict[str, Any]]] = []
    hid = telemetry.attach(("zarrcore", "chunk", "read", "stop"), lambda e, m, md: stops.append((m, md)))
    try:
        np.testing.assert_array_equal(b[window], expected[window])  # cold: each index read, then its range
        index_bytes, inner = 16 * 16 + 4, 10 * 10 * 4
        assert sorted((md["index"], md["stored"], m["requests"], m["encoded_bytes"]) for m, md in stops) == [
            ((0, 0), True, 2, index_bytes + inner), ((0, 1), True, 2, index_bytes + inner),
            ((1, 0), True, 2, index_bytes + inner), ((1, 1), False, 0, 0),
        ]  # fmt: skip
        stops.clear()
        np.testing.assert_array_equal(b[window], expected[window])  # the kept indexes: one range each
        assert sorted((md["index"], m["requests"]) for m, md in stops if md["stored"]) == [((0, 0), 1), ((0, 1), 1),
                                                                                             ((1, 0), 1)]  # fmt: skip
        other = zarrcore.open_array(tmp_path, mode="r+")
        other[0:40, 0:40] = -data[0:40, 0:40]  # shard (0, 0) replaced: its kept index is refused
        expected[0:40, 0:40] = -data[0:40, 0:40]
        stops.clear()
        np.testing.assert_array_equal(b[window], expected[window])
        assert sorted(md["index"] for _, md in stops) == [(0, 0), (0, 1), (1, 0), (1, 1)]  # one span each
        path = tmp_path / a.chunk_key((0, 1))
        path.write_bytes(path.read_bytes()[:-1])  # shard (0, 1) a byte short: its index no longer checks
        for reader in (b, zarrcore.open_array(tmp_path)):  # with its index kept, and cold
            with pytest.raises(ChunkError, match="shard index") as info:
                reader[window]
            assert info.value.index == (0, 1)
    finally:
        telemetry.detach(hid)


def test_a_kept_index_is_checked_against_the_shard_it_came_from(tmp_path: Path) -> None:
    data = sample((40, 40), seed=12) + 1
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(10, 10), shards=(40, 40), dtype="float32")
    a[...] = data
    counted = InstrumentedStore(LocalStore(tmp_path))
    b = zarrcore.open_array(counted)
    assert b[5, 5] == data[5, 5] and b[25, 35] == data[25, 35]
    assert [type(r) for _, r, _ in counted.gets[-3:]] == [SuffixRequest, RangeRequest, RangeRequest]
    # Another writer replaces the shard: the range pinned to the kept index's version is refused,
    # the index is read again, and the reads see the new values.
    other = zarrcore.open_array(tmp_path, mode="r+")
    other[...] = -data
    counted.gets.clear()
    counted.keys["get"].clear()
    assert b[25, 35] == -data[25, 35]
    assert len(counted.keys["get"]) == 3  # the refused range, then the index and the range afresh
    assert [type(r) for _, r, _ in counted.gets] == [SuffixRequest, RangeRequest]  # (refused reads return nothing)
    counted.gets.clear()
    assert b[0:3, 0] .tolist() == (-data[0:3, 0]).tolist() and len(counted.gets) == 1  # kept again
    # A read with no stored inner chunk under it still asks the store (the index, afresh): a shard
    # that gained data since is never answered from an old index.
    other[...] = 0
    assert b[7, 7] == 0 and other.nshards_initialized == 0
    other[7, 7] = 3
    counted.gets.clear()
    assert b[7, 7] == 3


def test_distant_inner_chunks_of_one_shard_are_fetched_at_once(tmp_path: Path) -> None:
    data = sample((768, 1536), seed=6) + 1
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(256, 256), shards=(768, 1536), dtype="float32",
                        codecs=[BYTES])  # fmt: skip
    a[...] = data
    counted = InstrumentedStore(LocalStore(tmp_path), delay=0.05)
    b = zarrcore.open_array(counted)
    counted.gets.clear()
    np.testing.assert_array_equal(b[:, 7], data[:, 7])
    # Three 256 KiB inner chunks of one column, 5 chunks (1.25 MiB) apart: more than the 1 MiB gap, so
    # three ranges, in flight together.
    assert [(type(r), n) for _, r, n in counted.gets] == [(SuffixRequest, 18 * 16 + 4)] + [(RangeRequest, 1 << 18)] * 3
    assert counted.max_in_flight["get"] == 3


def test_neighbouring_ranges_are_merged_up_to_16_mib(tmp_path: Path) -> None:
    data = sample((8192, 1024), seed=7) + 1
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(512, 512), shards=(8192, 1024), dtype="float32",
                        codecs=[BYTES])  # fmt: skip
    a[...] = data
    counted = InstrumentedStore(LocalStore(tmp_path))
    b = zarrcore.open_array(counted)
    counted.gets.clear()
    np.testing.assert_array_equal(b[:, 700], data[:, 700])
    # 16 of the shard's 32 inner chunks (1 MiB each), 1 MiB apart: merged, but no range over 16 MiB, so
    # two ranges of 15 MiB (8 chunks and the 7 gaps between them) after the index.
    assert [n for _, _, n in counted.gets] == [32 * 16 + 4, 15 << 20, 15 << 20]


def test_partial_reads_of_missing_shards_and_empty_inner_chunks_give_the_fill_value(tmp_path: Path) -> None:
    a = zarrcore.create(tmp_path, shape=(40, 40), chunks=(4, 4), shards=(20, 20), dtype="float32", fill_value=-2)
    a[0, 0] = 5
    counted = InstrumentedStore(LocalStore(tmp_path))
    b = zarrcore.open_array(counted)
    counted.keys["get"].clear()
    assert b[30, 30] == -2  # no shard: one request, for the index, that finds nothing
    assert counted.keys["get"] == [b.chunk_key((1, 1))]
    counted.gets.clear()
    assert (b[1:3, 5:9] == -2).all()  # the shard exists, that inner chunk does not: the index only
    assert len(counted.gets) == 1 and b[0, 0] == 5


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_partial_reads_on_cloud_stores(request: pytest.FixtureRequest, backend: str) -> None:
    server = request.getfixturevalue(f"{backend}_server")
    bucket = server.new_container() if backend == "azure" else server.new_bucket()
    data = np.arange(1, 64 * 64 + 1, dtype="int64").reshape(64, 64)
    store = server.store(bucket, "sharded.zarr")
    a = zarrcore.create(store, shape=data.shape, chunks=(16, 16), shards=(64, 64), dtype="int64", codecs=[BYTES])
    a[...] = data
    counted = InstrumentedStore(store)
    b = zarrcore.open_array(counted)
    counted.gets.clear()
    np.testing.assert_array_equal(b[17:20, 30:34], data[17:20, 30:34])
    # The index (16 rows of 16 bytes and a checksum), then two neighbouring 2 KiB inner chunks in one range.
    assert [n for _, _, n in counted.gets] == [260, 2 * 2048] and len(shard_of(a, (0, 0))) == 260 + 16 * 2048
    np.testing.assert_array_equal(b[...], data)


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunks": (4, 4), "shards": (10, 8)}, r"shards must be a multiple of chunks.*\[10, 8\].*\[4, 4\]"),
        ({"chunks": (4, 4), "shards": (8,)}, "shards: rank 1 does not match shape rank 2"),
        ({"chunks": (4, 4), "shards": (8, 0)}, "shards must be a multiple of chunks"),
        ({"chunks": (4, 4), "shards": (8, 8), "zarr_format": 2}, "shards are a Zarr v3 feature"),
        ({"chunks": (4, 4), "shards": (8, 8), "codecs": [TWO_LEVELS]}, "either shards= or a 'sharding_indexed' codec"),
    ],
)
def test_bad_shards_are_refused_before_anything_is_written(tmp_path: Path, kwargs: dict[str, Any],
                                                           message: str) -> None:  # fmt: skip
    with pytest.raises(MetadataError, match=message):
        zarrcore.create(tmp_path / "a", shape=(16, 16), dtype="float32", **kwargs)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"chunk_shape": [3, 4], "codecs": [BYTES]}, r"shard shape \[8, 8\] must be a multiple of the inner chunk"),
        ({"chunk_shape": [4], "codecs": [BYTES]}, "chunk_shape must be 2 integers >= 1"),
        ({"chunk_shape": [4, True], "codecs": [BYTES]}, "chunk_shape must be 2 integers >= 1"),
        ({"chunk_shape": [4, 4]}, "codecs must be a list of codec objects"),
        ({"chunk_shape": [4, 4], "codecs": [{"name": "zstd"}]}, r"codecs: codecs\[0\] \('zstd'\): bytes->bytes"),
        ({"chunk_shape": [4, 4], "codecs": [BYTES], "index_codecs": [BYTES, {"name": "zstd"}]},
         r"index_codecs must have a fixed size .*\['zstd'\]"),
        ({"chunk_shape": [4, 4], "codecs": [BYTES], "index_location": "middle"}, "index_location must be"),
        ({"chunk_shape": [4, 4], "codecs": [BYTES], "x": 1}, r"unknown configuration keys \['x'\]"),
    ],
)
def test_bad_sharding_configurations_name_the_problem(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    codecs = [{"name": "sharding_indexed", "configuration": config}]
    with pytest.raises(CodecError, match=message) as info:
        zarrcore.create(tmp_path / "a", shape=(16, 16), chunks=(8, 8), dtype="float32", codecs=codecs)
    assert "codecs[0] ('sharding_indexed')" in str(info.value)
    assert not (tmp_path / "a").exists()


def test_sharding_after_another_array_to_bytes_codec_is_refused(tmp_path: Path) -> None:
    codecs = [BYTES, {"name": "sharding_indexed", "configuration": {"chunk_shape": [4, 4], "codecs": [BYTES]}}]
    with pytest.raises(CodecError, match="only one array->bytes codec"):
        zarrcore.create(tmp_path / "a", shape=(16, 16), chunks=(8, 8), dtype="float32", codecs=codecs)


def damaged(tmp_path: Path) -> tuple[zarrcore.Array, np.ndarray]:
    data = sample((32, 32), seed=4) + 1
    a = zarrcore.create(tmp_path, shape=data.shape, chunks=(4, 4), shards=(16, 16), dtype="float32")
    a[...] = data
    return zarrcore.open_array(tmp_path, mode="r+"), data


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-1], "shard index"),  # a byte short: the checksum no longer matches
        (lambda b: b[:-20] + bytes([b[-20] ^ 0xFF]) + b[-19:], "shard index"),  # a flipped index byte
        (lambda b: b[:10], "cannot hold its|shard index of 10 bytes, expected 260"),  # cut short
        (lambda b: b"\0" * 16 + b, "decompression error"),  # bytes added in front: offsets point wrong
    ],
)
def test_a_damaged_shard_is_a_chunk_error_and_the_others_still_read(tmp_path: Path, damage: Any,
                                                                    message: str) -> None:  # fmt: skip
    a, data = damaged(tmp_path)
    path = tmp_path / a.chunk_key((1, 0))
    path.write_bytes(damage(path.read_bytes()))
    for selection in ((slice(16, 32), slice(0, 16)), (20, 3)):  # the whole shard, then a partial read
        with pytest.raises(ChunkError, match=message) as info:
            a[selection]
        assert info.value.index == (1, 0) and a.chunk_key((1, 0)) in str(info.value)
    for index in ((0, 0), (0, 1), (1, 1)):
        np.testing.assert_array_equal(a.read_chunk(index), data[a.chunk_region(index)])


def test_an_index_pointing_past_the_end_is_refused(tmp_path: Path) -> None:
    a, _ = damaged(tmp_path)
    sharding = a._pipeline.sharding
    assert isinstance(sharding, ShardingCodec)
    shard = bytearray(shard_of(a, (0, 0)))
    index = sharding.decode_index(sharding.index_bytes(memoryview(shard)), len(shard)).copy()
    index[3, 1] += 1_000_000
    shard[-sharding.index_nbytes :] = bytes(memoryview(sharding.index_codec.encode(index.reshape(4, 4, 2))))
    (tmp_path / a.chunk_key((0, 0))).write_bytes(bytes(shard))
    with pytest.raises(ChunkError, match="ends past the shard"):
        a.read_chunk((0, 0))
    with pytest.raises(ChunkError, match="ends past the shard"):
        a[1, 13]  # inner chunk 3: the range falls short, and the whole-shard read names the damage


class ReplacingStore(InstrumentedStore):
    """A real store that, right after the first read of a shard's index, replaces the shard with
    ``new`` (another writer finishing its write between a reader's requests). ``versions=False``
    hides the store's versions, as a store that cannot tell them would."""

    def __init__(self, inner: LocalStore, key: str, new: bytes) -> None:
        super().__init__(inner)
        self.key, self.new, self.versions, self.replaced = key, new, True, False

    def get_versioned(self, key: str, byte_range: Any = None, *, version: str | None = None) -> tuple[bytes, Any]:
        data, current = super().get_versioned(key, byte_range, version=version)
        if key == self.key and isinstance(byte_range, SuffixRequest) and not self.replaced:
            self.inner.put(key, self.new)
            self.replaced = True
        return data, current if self.versions else None


def replaced_mid_read(where: Path, old: np.ndarray, new: np.ndarray, **kwargs: Any) -> tuple[ReplacingStore, Any]:
    """An array holding ``old`` whose one shard becomes ``new`` after a reader reads its index."""
    a = zarrcore.create(where, shape=old.shape, chunks=(4, 4), shards=old.shape, dtype=old.dtype, **kwargs)
    a[...] = new
    replacement = shard_of(a, (0, 0))
    a[...] = old
    store = ReplacingStore(LocalStore(where), a.chunk_key((0, 0)), replacement)
    return store, zarrcore.open_array(store)


def shard_requests(store: InstrumentedStore) -> list[type]:
    return [type(r) for k, r, _ in store.gets if k == "c/0/0"]


@pytest.mark.parametrize("versions", [True, False], ids=["versions", "no-versions"])
def test_a_shard_replaced_between_a_partial_reads_requests_is_read_whole(tmp_path: Path, versions: bool) -> None:
    old = sample((32, 32), seed=10) + 1
    new = np.arange(32 * 32, dtype="float32").reshape(32, 32) % 7 + 1  # compresses far better: other offsets
    store, b = replaced_mid_read(tmp_path, old, new)
    store.versions = versions
    # With versions the range is read only from the version whose index was read: the store refuses
    # it. Without, the range is read from the new shard at the old offsets and does not decode. Either
    # way the read falls back to one whole-shard request and sees the new shard, never a mix.
    np.testing.assert_array_equal(b[5:7, 9:14], new[5:7, 9:14])
    assert store.replaced
    assert shard_requests(store) == [SuffixRequest, *([] if versions else [RangeRequest]), type(None)]


def test_versions_catch_a_replaced_shard_whose_offsets_line_up(tmp_path: Path) -> None:
    """Raw inner chunks of one size sit at the same offsets in the old and the new shard, so ranges
    read at the old offsets would decode: only the version tells that the shard changed."""
    old = sample((32, 32), seed=10) + 1
    store, b = replaced_mid_read(tmp_path, old, -old, codecs=[BYTES])
    np.testing.assert_array_equal(b[2:6, 2:6], -old[2:6, 2:6])
    assert shard_requests(store) == [SuffixRequest, type(None)]  # the range was refused: one whole read
